// Running shell commands in the sandbox: the `exec` request, its streamed `exec/output`
// notifications, and the "cordon: Run Command in Sandbox" command, whose output streams into
// the "cordon" output channel with control sequences neutralised.

import * as vscode from 'vscode';
import * as rpc from 'vscode-jsonrpc/node';
import { CordonContext, Session } from './sessions';
import { ErrorCodes, errorMessage, isResponseError } from './server';
import { describeDetail, neutralize, neutralizeLine } from './sanitize';

export interface ExecParams {
    sessionId: string;
    command?: string;
    argv?: string[];
    cwd?: string;
    env?: Record<string, string>;
    stdin?: string;
    timeoutMs?: number;
    maxOutputBytes?: number;
    stream?: boolean;
}

export interface ExecResult {
    exitCode: number | null;
    signal: string | null;
    reason: 'exited' | 'signaled' | 'timeout' | 'cancelled' | 'output-limit' | 'memory-limit';
    stdout: string;
    stderr: string;
    stdoutTruncated: boolean;
    stderrTruncated: boolean;
    durationMs: number;
    changes: { path: string; status: string }[];
    violations?: unknown[];
}

export interface ExecOutputParams {
    sessionId: string;
    requestId: number | string;
    stream: 'stdout' | 'stderr';
    data: string;
}

export const ExecRequest = new rpc.RequestType<ExecParams, ExecResult, void>('exec');
export const ExecOutputNotification = new rpc.NotificationType<ExecOutputParams>('exec/output');

export type OutputListener = (stream: 'stdout' | 'stderr', data: string) => void;

export interface RunOptions {
    cwd?: string;
    env?: Record<string, string>;
    stdin?: string;
    timeoutMs?: number;
    onOutput?: OutputListener;
    token?: vscode.CancellationToken;
}

/** Routes `exec/output` notifications to the exec request they belong to. */
class OutputRouter {
    private readonly listeners = new Map<string, OutputListener>();
    attach(c: rpc.MessageConnection): void {
        c.onNotification(ExecOutputNotification, (p) => {
            this.listeners.get(String(p.requestId))?.(p.stream, p.data);
        });
    }
    add(id: number | string, l: OutputListener): void { this.listeners.set(String(id), l); }
    remove(id: number | string): void { this.listeners.delete(String(id)); }
}

let router: OutputRouter | undefined;

/** Runs `command` (a shell string or an argv) in `session`'s sandbox, streaming its output. */
export async function runInSandbox(ctx: CordonContext, session: Session, command: string | string[],
                                   opts: RunOptions = {}): Promise<ExecResult> {
    if (!router) throw new Error('the exec feature is not activated');
    const r = router;
    const server = await ctx.connection();
    const params: ExecParams = { sessionId: session.id, stream: true };
    if (typeof command === 'string') params.command = command; else params.argv = command;
    if (opts.cwd !== undefined) params.cwd = opts.cwd;
    if (opts.env !== undefined) params.env = opts.env;
    if (opts.stdin !== undefined) params.stdin = opts.stdin;
    if (opts.timeoutMs !== undefined) params.timeoutMs = opts.timeoutMs;
    let id: number | string | undefined;
    const sink = opts.onOutput ?? (() => undefined);
    try {
        return await server.requestWithId(ExecRequest, params, (i) => { id = i; r.add(i, sink); }, opts.token);
    } finally {
        if (id !== undefined) r.remove(id);
        ctx.touched(session);
    }
}

/** Writes streamed output to a channel, neutralised, keeping a CR that may begin a CRLF. */
export class OutputRenderer {
    private pendingCR = '';
    constructor(private readonly channel: vscode.OutputChannel) {}
    write(data: string): void {
        let text = this.pendingCR + data;
        this.pendingCR = '';
        if (text.endsWith('\r')) { this.pendingCR = '\r'; text = text.slice(0, -1); }
        if (text) this.channel.append(neutralize(text));
    }
    flush(): void {
        if (this.pendingCR) this.channel.append(neutralize(this.pendingCR));
        this.pendingCR = '';
    }
}

export function describeResult(r: ExecResult): string {
    const how = r.reason === 'exited' ? `exit code ${r.exitCode}`
        : r.reason === 'signaled' ? `killed by ${r.signal}` : r.reason;
    const n = r.changes?.length ?? 0;
    const trunc = r.stdoutTruncated || r.stderrTruncated ? ', output truncated' : '';
    return `[${how}, ${r.durationMs} ms, ${n} changed file${n === 1 ? '' : 's'}${trunc}]`;
}

/** One line for a violation carried in an exec result ({kind, detail}, as in sandbox/violation). */
export function describeViolation(v: unknown): string {
    if (v && typeof v === 'object' && 'detail' in v) {
        const o = v as { kind?: unknown; detail?: unknown };
        return `${neutralizeLine(String(o.kind ?? 'violation'))}: ${describeDetail(o.detail)}`;
    }
    return describeDetail(v);
}

export function activate(ctx: CordonContext): void {
    router = new OutputRouter();
    const rt = router;
    ctx.subscriptions.push(ctx.onDidConnect((c) => rt.attach(c)));

    ctx.subscriptions.push(vscode.commands.registerCommand('cordon.runCommand',
        async (command?: string, folder?: vscode.Uri): Promise<ExecResult | undefined> => {
        if (typeof command !== 'string') {
            command = await vscode.window.showInputBox({
                title: 'cordon: run in the sandbox',
                prompt: 'Shell command (run by /bin/sh -c inside the sandbox; file changes stay in the sandbox until applied)',
                placeHolder: 'make test',
                ignoreFocusOut: true,
            });
        }
        if (!command) return undefined;
        const cmd = command;
        let session: Session;
        try {
            session = await ctx.session(folder);
        } catch (err) {
            void vscode.window.showErrorMessage(`cordon: ${errorMessage(err)}`);
            return undefined;
        }
        const out = new OutputRenderer(ctx.output);
        ctx.output.show(true);
        ctx.output.appendLine(`$ ${neutralize(cmd)}    (sandbox of ${session.folder.name})`);
        return vscode.window.withProgress({
            location: vscode.ProgressLocation.Notification,
            title: `cordon: running ${cmd.length > 40 ? cmd.slice(0, 40) + '…' : cmd}`,
            cancellable: true,
        }, async (_progress, token) => {
            try {
                const r = await runInSandbox(ctx, session, cmd, { onOutput: (_s, d) => out.write(d), token });
                out.flush();
                ctx.output.appendLine(`\n${describeResult(r)}`);
                for (const v of r.violations ?? []) ctx.output.appendLine(`  blocked: ${describeViolation(v)}`);
                return r;
            } catch (err) {
                out.flush();
                if (token.isCancellationRequested && isResponseError(err, ErrorCodes.RequestCancelled)) {
                    ctx.output.appendLine('\n[cancelled: the command and its processes were stopped]');
                    return undefined;
                }
                ctx.output.appendLine(`\n[failed: ${neutralize(errorMessage(err))}]`);
                void vscode.window.showErrorMessage(`cordon: ${errorMessage(err)}`);
                return undefined;
            }
        });
    }));
}
