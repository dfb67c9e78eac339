// Pending changes: `changes/diff|apply|discard`, the "cordon changes" tree view, the native
// diff of a change (real file ↔ sandbox content), and apply / apply all / discard.
//
// Apply always sends the hashes of the diff the user was shown, so a file that changed on
// either side since then comes back as a conflict instead of being overwritten. A protected
// file is applied only after a modal confirmation for that file, with `confirmProtected`.

import * as vscode from 'vscode';
import * as rpc from 'vscode-jsonrpc/node';
import { CordonContext, Session, absolutePath, relativePath } from './sessions';
import { ErrorCodes, errorMessage, isResponseError } from './server';
import { SCHEME, sandboxUri, sessionIdOf } from './files';
import { neutralizeLine } from './sanitize';

export interface ChangedFile {
    path: string;
    status: 'added' | 'modified' | 'deleted';
    type: 'file' | 'symlink';
    binary: boolean;
    protected: boolean;
    baseHash: string;
    newHash: string;
    unified: string;
    /** Changed lines (text files), when the server reports them. */
    additions?: number;
    deletions?: number;
    /** What a reviewer could miss in the new text: bidi-control, zero-width, ansi-escape, bare-cr, control-char. */
    warnings?: string[];
}
export interface ChangesDiffResult { files: ChangedFile[]; patch: string; git?: unknown }
export interface FileHashes { path: string; baseHash: string; newHash: string }
export interface ChangesApplyParams { sessionId: string; files?: FileHashes[]; confirmProtected?: string[] }
export interface ChangesApplyResult {
    applied: string[];
    conflicts: { path: string; reason: string }[];
    protected: string[];
}

export const ChangesDiffRequest = new rpc.RequestType<{ sessionId: string; paths?: string[] }, ChangesDiffResult, void>(
    'changes/diff');
export const ChangesApplyRequest = new rpc.RequestType<ChangesApplyParams, ChangesApplyResult, void>('changes/apply');
export const ChangesDiscardRequest = new rpc.RequestType<{ sessionId: string; paths?: string[] }, null, void>(
    'changes/discard');

export interface SessionChanges {
    session: Session;
    files: ChangedFile[];
    error?: string;
}

/** The pending changes of every open session, as last fetched with `changes/diff`. */
export class ChangesModel implements vscode.Disposable {
    private readonly emitter = new vscode.EventEmitter<void>();
    readonly onDidChange = this.emitter.event;
    private state: SessionChanges[] = [];
    private refreshing: Promise<void> | undefined;
    private again = false;

    constructor(private readonly ctx: CordonContext) {}

    get sessions(): readonly SessionChanges[] { return this.state; }
    get count(): number { return this.state.reduce((n, s) => n + s.files.length, 0); }

    find(session: Session, rel: string): ChangedFile | undefined {
        return this.state.find((s) => s.session.id === session.id)?.files.find((f) => f.path === rel);
    }

    /** Re-reads every open session's changes; concurrent calls coalesce. */
    refresh(): Promise<void> {
        if (this.refreshing) { this.again = true; return this.refreshing; }
        this.refreshing = (async () => {
            do {
                this.again = false;
                await this.load();
            } while (this.again);
        })().finally(() => { this.refreshing = undefined; });
        return this.refreshing;
    }

    private async load(): Promise<void> {
        if (this.ctx.state !== 'ready') {
            this.state = [];
            this.emitter.fire();
            return;
        }
        const next: SessionChanges[] = [];
        for (const session of await this.ctx.openSessions()) {
            try {
                const r = await this.ctx.request(ChangesDiffRequest, { sessionId: session.id });
                next.push({ session, files: r.files });
            } catch (err) {
                const msg = isResponseError(err, ErrorCodes.MethodNotFound)
                    ? 'this cordon server has no changes/diff' : errorMessage(err);
                next.push({ session, files: [], error: msg });
            }
        }
        this.state = next;
        this.emitter.fire();
    }

    dispose(): void { this.emitter.dispose(); }
}

// --- tree view ------------------------------------------------------------------------------

class SessionNode {
    constructor(readonly changes: SessionChanges) {}
}
class FileNode {
    constructor(readonly session: Session, readonly file: ChangedFile) {}
}
class MessageNode {
    constructor(readonly text: string) {}
}
type Node = SessionNode | FileNode | MessageNode;

export function marks(f: ChangedFile): string {
    const m: string[] = [f.status];
    if (f.protected) m.push('protected');
    if (f.binary) m.push('binary');
    if (f.type === 'symlink') m.push('symlink');
    if (!f.binary && (f.additions || f.deletions)) m.push(`+${f.additions ?? 0} −${f.deletions ?? 0}`);
    if (f.warnings?.length) m.push(`⚠ ${f.warnings.join(', ')}`);
    return m.join(' · ');
}

const WARNING_TEXT: Record<string, string> = {
    'bidi-control': 'bidirectional control characters (text may display in a different order than it runs)',
    'zero-width': 'zero-width characters',
    'ansi-escape': 'terminal escape sequences',
    'bare-cr': 'bare carriage returns (text can hide other text when printed)',
    'control-char': 'control characters',
};

class ChangesTree implements vscode.TreeDataProvider<Node> {
    private readonly emitter = new vscode.EventEmitter<Node | undefined>();
    readonly onDidChangeTreeData = this.emitter.event;
    constructor(private readonly model: ChangesModel) {
        model.onDidChange(() => this.emitter.fire(undefined));
    }

    getChildren(node?: Node): Node[] {
        if (node instanceof SessionNode) return this.filesOf(node.changes);
        if (node) return [];
        const s = this.model.sessions;
        if (s.length === 1) return this.filesOf(s[0]!);
        return s.map((c) => new SessionNode(c));
    }

    private filesOf(c: SessionChanges): Node[] {
        if (c.error) return [new MessageNode(c.error)];
        return c.files.map((f) => new FileNode(c.session, f));
    }

    getTreeItem(node: Node): vscode.TreeItem {
        if (node instanceof MessageNode) {
            const t = new vscode.TreeItem(node.text);
            t.iconPath = new vscode.ThemeIcon('warning');
            return t;
        }
        if (node instanceof SessionNode) {
            const t = new vscode.TreeItem(node.changes.session.folder.name, vscode.TreeItemCollapsibleState.Expanded);
            t.description = `${node.changes.files.length} pending`;
            t.contextValue = 'cordon.session';
            t.iconPath = new vscode.ThemeIcon('shield');
            return t;
        }
        const f = node.file;
        const t = new vscode.TreeItem(vscode.Uri.file(absolutePath(node.session, f.path)));
        t.label = f.path;
        t.description = marks(f);
        t.tooltip = `${f.path}\n${marks(f)}` +
            (f.protected ? '\nProtected: can run code on this machine later; applying asks for confirmation.' : '') +
            (f.warnings ?? []).map((w) => `\nContains ${WARNING_TEXT[w] ?? w}.`).join('');
        t.contextValue = f.protected ? 'cordon.change.protected' : 'cordon.change';
        t.iconPath = new vscode.ThemeIcon(
            f.protected || f.warnings?.length ? 'warning' : f.status === 'added' ? 'diff-added' : f.status === 'deleted' ? 'diff-removed' : 'diff-modified');
        t.command = { command: 'cordon.openChange', title: 'Open Change', arguments: [node] };
        return t;
    }
}

// --- actions --------------------------------------------------------------------------------

export interface Target { session: Session; file: ChangedFile }

export async function openDiff(t: Target): Promise<void> {
    const { session, file } = t;
    const real = vscode.Uri.file(absolutePath(session, file.path));
    const left = file.status === 'added' ? sandboxUri(session, file.path, true) : real;
    const right = file.status === 'deleted' ? sandboxUri(session, file.path, true) : sandboxUri(session, file.path);
    const extra = file.protected || file.binary ? ` [${marks(file)}]` : '';
    await vscode.commands.executeCommand('vscode.diff', left, right,
                                         `${file.path} (workspace ↔ sandbox)${extra}`, { preview: true });
    if (file.warnings?.length) {
        void vscode.window.showWarningMessage(
            `cordon: the sandbox's ${neutralizeLine(file.path)} contains ` +
            `${file.warnings.map((w) => WARNING_TEXT[w] ?? w).join(', ')}. Review it with care.`);
    }
}

export interface ApplySummary extends ChangesApplyResult {
    /** Protected files the user declined to apply. */
    declined: string[];
}

/** Applies `files` with the hashes shown; asks per protected file; reports conflicts. */
export async function applyFiles(ctx: CordonContext, session: Session, files: ChangedFile[]): Promise<ApplySummary> {
    const hashes = (f: ChangedFile): FileHashes => ({ path: f.path, baseHash: f.baseHash, newHash: f.newHash });
    const r = await ctx.request(ChangesApplyRequest, { sessionId: session.id, files: files.map(hashes) });
    const summary: ApplySummary = { applied: [...r.applied], conflicts: [...r.conflicts], protected: [], declined: [] };
    for (const p of r.protected) {
        const f = files.find((x) => x.path === p);
        const choice = await vscode.window.showWarningMessage(
            `"${neutralizeLine(p)}" is a protected path. Apply the sandbox's version to your workspace?`,
            { modal: true,
              detail: 'Protected files (git hooks and config, editor tasks, shell startup files, cordon\'s own ' +
                      'configuration...) can run code on this machine later. Review the diff before applying.' },
            'Apply Protected File');
        if (choice !== 'Apply Protected File' || !f) { summary.declined.push(p); continue; }
        const r2 = await ctx.request(ChangesApplyRequest,
                                     { sessionId: session.id, files: [hashes(f)], confirmProtected: [p] });
        summary.applied.push(...r2.applied);
        summary.conflicts.push(...r2.conflicts);
        summary.protected.push(...r2.protected);
    }
    ctx.touched(session);
    for (const c of summary.conflicts) {
        ctx.log(`conflict, not applied: ${c.path}: ${c.reason}`);
    }
    if (summary.conflicts.length) {
        void vscode.window.showWarningMessage(
            `cordon: not applied (conflict): ${summary.conflicts.map((c) => `${neutralizeLine(c.path)} (${neutralizeLine(c.reason)})`).join(', ')}. ` +
            'The file changed since the diff was shown: review it again.');
    }
    if (summary.applied.length) {
        ctx.log(`applied: ${summary.applied.join(', ')}`);
        void vscode.window.showInformationMessage(
            `cordon: applied ${summary.applied.length === 1 ? summary.applied[0] : `${summary.applied.length} files`}`);
    }
    return summary;
}

export async function discardFiles(ctx: CordonContext, session: Session, paths: string[] | undefined): Promise<void> {
    const params: { sessionId: string; paths?: string[] } = { sessionId: session.id };
    if (paths) params.paths = paths;
    await ctx.request(ChangesDiscardRequest, params);
    ctx.log(`discarded: ${paths ? paths.join(', ') : 'all pending changes'} (${session.folder.name})`);
    ctx.touched(session);
}

export function activate(ctx: CordonContext, model: ChangesModel): void {
    const tree = new ChangesTree(model);
    const view = vscode.window.createTreeView('cordonChanges', { treeDataProvider: tree, showCollapseAll: false });
    const updateBadge = () => {
        view.badge = model.count ? { value: model.count, tooltip: `${model.count} pending changes` } : undefined;
        view.message = ctx.state === 'ready' ? (model.count ? undefined : 'No pending changes in the sandbox.')
            : ctx.state === 'error' ? `cordon is not running: ${ctx.lastError ?? ''}` : 'cordon is starting…';
    };
    ctx.subscriptions.push(view, model.onDidChange(updateBadge), ctx.onDidChangeState(updateBadge));
    ctx.subscriptions.push(ctx.onDidTouchWorkspace(() => void model.refresh()),
                           ctx.onDidChangeState(() => void model.refresh()));

    /** The change a command is about: a tree node, a URI (cordon: or file:), or a pick. */
    const target = async (arg: unknown, placeHolder: string): Promise<Target | undefined> => {
        if (arg instanceof FileNode) return { session: arg.session, file: arg.file };
        if (arg instanceof vscode.Uri || (typeof arg === 'string' && arg)) {
            const uri = arg instanceof vscode.Uri ? arg : vscode.Uri.file(arg);
            await model.refresh();
            for (const c of model.sessions) {
                const sid = sessionIdOf(uri);
                if (sid && sid !== c.session.id) continue;
                if (!sid && uri.scheme !== 'file') continue;
                let rel: string;
                try { rel = relativePath(c.session, uri.fsPath); } catch { continue; }
                const file = c.files.find((f) => f.path === rel);
                if (file) return { session: c.session, file };
            }
            void vscode.window.showWarningMessage(`cordon: no pending change for ${uri.fsPath}`);
            return undefined;
        }
        await model.refresh();
        const items = model.sessions.flatMap((c) => c.files.map((file) => ({
            label: file.path, description: marks(file),
            detail: model.sessions.length > 1 ? c.session.folder.name : undefined,
            target: { session: c.session, file } })));
        if (!items.length) {
            void vscode.window.showInformationMessage('cordon: no pending changes');
            return undefined;
        }
        return (await vscode.window.showQuickPick(items, { placeHolder, matchOnDescription: true }))?.target;
    };
    /** The session a whole-session command is about: a session node, else the only/picked one. */
    const sessionTarget = async (arg: unknown): Promise<SessionChanges | undefined> => {
        if (arg instanceof SessionNode) return arg.changes;
        await model.refresh();
        const s = model.sessions;
        if (s.length <= 1) return s[0];
        return (await vscode.window.showQuickPick(s.map((c) => ({ label: c.session.folder.name, c })),
                                                  { placeHolder: 'Which workspace folder?' }))?.c;
    };
    const guard = <A extends unknown[], R>(f: (...a: A) => Promise<R>) => async (...a: A): Promise<R | undefined> => {
        try {
            return await f(...a);
        } catch (err) {
            void vscode.window.showErrorMessage(`cordon: ${errorMessage(err)}`);
            return undefined;
        }
    };

    ctx.subscriptions.push(
        vscode.commands.registerCommand('cordon.refreshChanges', guard(async () => {
            await model.refresh();
            return model.sessions.map((c) => ({ sessionId: c.session.id, files: c.files, error: c.error }));
        })),
        vscode.commands.registerCommand('cordon.openChange', guard(async (arg?: unknown) => {
            const t = await target(arg, 'Open which change?');
            if (t) await openDiff(t);
            return t?.file.path;
        })),
        vscode.commands.registerCommand('cordon.applyChange', guard(async (arg?: unknown) => {
            // From the diff editor's title the argument is the cordon: (or real) URI shown.
            const t = await target(arg ?? activeChangeUri(), 'Apply which change to the workspace?');
            return t ? applyFiles(ctx, t.session, [t.file]) : undefined;
        })),
        vscode.commands.registerCommand('cordon.applyAll', guard(async (arg?: unknown) => {
            const c = await sessionTarget(arg);
            if (!c || !c.files.length) {
                void vscode.window.showInformationMessage('cordon: no pending changes');
                return undefined;
            }
            return applyFiles(ctx, c.session, c.files);
        })),
        vscode.commands.registerCommand('cordon.discardChange', guard(async (arg?: unknown) => {
            const t = await target(arg ?? activeChangeUri(), 'Discard which change?');
            if (!t) return false;
            const ok = await vscode.window.showWarningMessage(
                `Discard the sandbox's change to "${neutralizeLine(t.file.path)}"?`,
                { modal: true, detail: 'The sandbox goes back to the workspace\'s version of this file.' }, 'Discard');
            if (ok !== 'Discard') return false;
            await discardFiles(ctx, t.session, [t.file.path]);
            return true;
        })),
        vscode.commands.registerCommand('cordon.discardAll', guard(async (arg?: unknown) => {
            const c = await sessionTarget(arg);
            if (!c || !c.files.length) return false;
            const ok = await vscode.window.showWarningMessage(
                `Discard all ${c.files.length} pending changes in the sandbox of ${c.session.folder.name}?`,
                { modal: true }, 'Discard All');
            if (ok !== 'Discard All') return false;
            await discardFiles(ctx, c.session, undefined);
            return true;
        })),
    );
}

function activeChangeUri(): vscode.Uri | undefined {
    const uri = vscode.window.activeTextEditor?.document.uri;
    return uri?.scheme === SCHEME ? uri : undefined;
}
