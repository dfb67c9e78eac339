// CordonContext: the state every feature module shares — the server, one cordon session
// per workspace folder, the "cordon" output channel and the events features react to.
//
// Sessions (PROTOCOL.md, Sessions): on start, a folder reuses the server's existing session
// for that workspace (sessions and their unapplied changes survive a restart), else gets a
// new one created with the `cordon.policy` setting.

import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import * as rpc from 'vscode-jsonrpc/node';
import { CordonServer, InitializeResult, Isolation, errorMessage } from './server';
import { neutralize } from './sanitize';

export interface SessionCreateParams {
    workspace: string;
    policy?: Record<string, unknown>;
}
export interface SessionCreateResult {
    sessionId: string;
    workspace: string;
    isolation: Isolation;
}
export interface SessionListResult {
    sessions: { sessionId: string; workspace: string; changedFiles: number }[];
}
export const SessionCreateRequest = new rpc.RequestType<SessionCreateParams, SessionCreateResult, void>(
    'session/create');
export const SessionListRequest = new rpc.RequestType<Record<string, never>, SessionListResult, void>(
    'session/list');
export const SessionCloseRequest = new rpc.RequestType<{ sessionId: string; discard?: boolean }, null, void>(
    'session/close');

export interface Session {
    readonly id: string;
    /** The workspace as the server canonicalised it. */
    readonly workspace: string;
    readonly folder: vscode.WorkspaceFolder;
    readonly isolation?: Isolation;
}

export type ServerState = 'stopped' | 'starting' | 'ready' | 'error';

export class CordonContext implements vscode.Disposable {
    readonly subscriptions: vscode.Disposable[] = [];
    /** What the user follows: commands run, their output, results, approvals, violations. */
    readonly output: vscode.OutputChannel;
    /** The server's own log (its stderr). */
    readonly serverOutput: vscode.OutputChannel;
    /** Fires when the server or a session starts, stops or fails. */
    readonly onDidChangeState: vscode.Event<void>;
    /** Fires when a session's pending changes may have changed (after exec, write, apply...). */
    readonly onDidTouchWorkspace: vscode.Event<Session | undefined>;
    /** Fires with each new connection, before `initialize`: register server→client handlers. */
    readonly onDidConnect: vscode.Event<rpc.MessageConnection>;

    state: ServerState = 'stopped';
    lastError: string | undefined;
    initializeResult: InitializeResult | undefined;

    private server: CordonServer | undefined;
    private starting: Promise<void> | undefined;
    private readonly sessions = new Map<string, Promise<Session>>(); // key: folder uri
    private readonly stateEmitter = new vscode.EventEmitter<void>();
    private readonly touchEmitter = new vscode.EventEmitter<Session | undefined>();
    private readonly connectEmitter = new vscode.EventEmitter<rpc.MessageConnection>();

    constructor(readonly extension: vscode.ExtensionContext) {
        this.output = vscode.window.createOutputChannel('cordon');
        this.serverOutput = vscode.window.createOutputChannel('cordon server');
        this.onDidChangeState = this.stateEmitter.event;
        this.onDidTouchWorkspace = this.touchEmitter.event;
        this.onDidConnect = this.connectEmitter.event;
        this.subscriptions.push(this.output, this.serverOutput, this.stateEmitter, this.touchEmitter, this.connectEmitter);
    }

    log(line: string): void {
        this.output.appendLine(neutralize(line));
    }

    private setState(s: ServerState, err?: string): void {
        this.state = s;
        this.lastError = err;
        this.stateEmitter.fire();
    }

    /** Starts the server if it is not running; resolves once `initialize` answered. */
    start(): Promise<void> {
        if (this.server?.running && this.starting) return this.starting;
        this.starting = this.doStart();
        return this.starting;
    }

    private async doStart(): Promise<void> {
        const cfg = vscode.workspace.getConfiguration('cordon');
        const version = String(this.extension.extension?.packageJSON?.version ?? '0.0.0');
        this.setState('starting');
        const server = CordonServer.start({
            path: cfg.get<string>('path') || 'cordon',
            stateDir: expandHome(cfg.get<string>('stateDir') ?? ''),
            logFile: expandHome(cfg.get<string>('logFile') ?? ''),
            clientVersion: version,
            log: (l) => { this.log(l); this.serverOutput.appendLine(neutralize(l)); },
            serverLog: (l) => this.serverOutput.appendLine(neutralize(l)),
        }, (c) => this.connectEmitter.fire(c));
        this.server = server;
        this.sessions.clear();
        void server.exited.then(() => {
            if (this.server !== server) return;
            this.sessions.clear();
            if (this.state !== 'stopped') {
                this.setState('error', 'the cordon server exited');
                void vscode.window.showErrorMessage('cordon: the server exited (see the "cordon" output).',
                                                    'Restart').then((a) => {
                    if (a === 'Restart') void vscode.commands.executeCommand('cordon.restart');
                });
            }
        });
        try {
            this.initializeResult = await server.initialized;
            const iso = this.initializeResult.capabilities?.isolation;
            this.log(`connected to ${this.initializeResult.serverInfo.name} ${this.initializeResult.serverInfo.version}` +
                     (iso ? `; isolation: ${formatIsolation(iso)}` : ''));
            this.setState('ready');
        } catch (err) {
            const msg = errorMessage(err);
            this.setState('error', msg);
            this.log(`cannot start the cordon server: ${msg}`);
            await server.stop(1000);
            throw new Error(`cannot start the cordon server: ${msg}`);
        }
    }

    async stop(): Promise<void> {
        const server = this.server;
        this.server = undefined;
        this.starting = undefined;
        this.sessions.clear();
        this.setState('stopped');
        await server?.stop();
    }

    async restart(): Promise<void> {
        await this.stop();
        await this.start();
        this.touchEmitter.fire(undefined);
    }

    /** The running server, started if needed. */
    async connection(): Promise<CordonServer> {
        await this.start();
        if (!this.server) throw new Error('the cordon server is not running');
        return this.server;
    }

    /** Sends a request, starting the server first if needed. */
    async request<P, R>(type: rpc.RequestType<P, R, void>, params: P, token?: rpc.CancellationToken): Promise<R> {
        const server = await this.connection();
        return server.connection.sendRequest(type, params, token);
    }

    /**
     * The session for `folder` (default: the folder of the active editor, else the first),
     * created on first use.
     */
    session(folder?: vscode.WorkspaceFolder | vscode.Uri): Promise<Session> {
        const f = this.resolveFolder(folder);
        const key = f.uri.toString();
        let s = this.sessions.get(key);
        if (!s) {
            s = this.openSession(f);
            this.sessions.set(key, s);
            s.then(() => this.stateEmitter.fire(),
                   () => { if (this.sessions.get(key) === s) this.sessions.delete(key); });
        }
        return s;
    }

    /** Sessions that are open (or opening) now, in folder order. */
    async openSessions(): Promise<Session[]> {
        const out: Session[] = [];
        for (const f of vscode.workspace.workspaceFolders ?? []) {
            const s = this.sessions.get(f.uri.toString());
            if (!s) continue;
            try { out.push(await s); } catch { /* reported where it was opened */ }
        }
        return out;
    }

    /** Opens a session for every workspace folder. */
    async openAll(): Promise<void> {
        await Promise.all((vscode.workspace.workspaceFolders ?? []).map((f) => this.session(f).catch((err) => {
            this.log(`no session for ${f.uri.fsPath}: ${errorMessage(err)}`);
            void vscode.window.showErrorMessage(`cordon: no sandbox session for ${f.name}: ${errorMessage(err)}`);
        })));
    }

    async sessionById(id: string): Promise<Session | undefined> {
        for (const s of this.sessions.values()) {
            try {
                const v = await s;
                if (v.id === id) return v;
            } catch { /* skip */ }
        }
        return undefined;
    }

    forgetFolder(folder: vscode.WorkspaceFolder): void {
        this.sessions.delete(folder.uri.toString());
        this.stateEmitter.fire();
    }

    touched(session?: Session): void {
        this.touchEmitter.fire(session);
    }

    resolveFolder(folder?: vscode.WorkspaceFolder | vscode.Uri): vscode.WorkspaceFolder {
        const folders = vscode.workspace.workspaceFolders ?? [];
        if (folder && 'uri' in folder) return folder;
        const uri = folder ?? vscode.window.activeTextEditor?.document.uri;
        if (uri) {
            const f = vscode.workspace.getWorkspaceFolder(uri) ??
                folders.find((w) => isInside(w.uri.fsPath, uri.fsPath));
            if (f) return f;
            if (folder) throw new Error(`${uri.fsPath} is not inside a workspace folder`);
        }
        if (!folders.length) throw new Error('cordon needs an open workspace folder');
        return folders[0]!;
    }

    private async openSession(folder: vscode.WorkspaceFolder): Promise<Session> {
        const server = await this.connection();
        const c = server.connection;
        let workspace = folder.uri.fsPath;
        try { workspace = fs.realpathSync(workspace); } catch { /* the server reports it */ }
        const existing = (await c.sendRequest(SessionListRequest, {})).sessions
            .find((s) => s.workspace === workspace);
        if (existing) {
            this.log(`session ${existing.sessionId} for ${workspace} (resumed, ${existing.changedFiles} pending files)`);
            return { id: existing.sessionId, workspace: existing.workspace, folder };
        }
        const policy = vscode.workspace.getConfiguration('cordon', folder.uri).get<Record<string, unknown>>('policy');
        const params: SessionCreateParams = { workspace };
        if (policy && Object.keys(policy).length) params.policy = policy;
        const r = await c.sendRequest(SessionCreateRequest, params);
        this.log(`session ${r.sessionId} for ${r.workspace}; isolation: ${formatIsolation(r.isolation)}`);
        return { id: r.sessionId, workspace: r.workspace, folder, isolation: r.isolation };
    }

    dispose(): void {
        for (const d of this.subscriptions.splice(0).reverse()) d.dispose();
    }
}

export function formatIsolation(iso: Isolation | undefined): string {
    if (!iso) return 'unknown';
    return (Object.keys(iso) as (keyof Isolation)[]).map((k) => `${k} ${iso[k] ? 'yes' : 'no'}`).join(', ');
}

/** `p` relative to the session's workspace with `/` separators; throws if it leaves it. */
export function relativePath(session: Session, p: string): string {
    const abs = path.isAbsolute(p) ? p : path.join(session.workspace, p);
    let rel = path.relative(session.workspace, abs);
    if (rel.startsWith('..') || path.isAbsolute(rel)) {
        // The folder path may differ from the canonical workspace (a symlinked folder).
        rel = path.relative(session.folder.uri.fsPath, abs);
    }
    if (rel.startsWith('..') || path.isAbsolute(rel)) throw new Error(`${p} is outside the workspace`);
    return rel.split(path.sep).join('/');
}

export function absolutePath(session: Session, rel: string): string {
    return path.join(session.folder.uri.fsPath, ...rel.split('/'));
}

function isInside(dir: string, p: string): boolean {
    const r = path.relative(dir, p);
    return !r.startsWith('..') && !path.isAbsolute(r);
}

function expandHome(p: string): string {
    if (p.startsWith('~/')) return path.join(process.env['HOME'] ?? '', p.slice(2));
    return p;
}
