// The `cordon serve --stdio` child process and the JSON-RPC connection to it.
//
// Owns: the process, the vscode-jsonrpc connection and the lifecycle requests (initialize,
// shutdown, exit). Feature modules declare their own request types and call `request()`;
// they register server→client handlers through `connection`. Everything here runs on the
// extension host's single thread.

import * as cp from 'child_process';
import * as rpc from 'vscode-jsonrpc/node';

// --- lifecycle (PROTOCOL.md, Lifecycle) ----------------------------------------------------

export interface Isolation {
    userns: boolean;
    overlay: boolean;
    seccomp: boolean;
    landlock: boolean;
    cgroups: boolean;
}

export interface InitializeParams {
    clientInfo?: { name: string; version?: string };
    capabilities?: { approvals?: boolean };
}

export interface InitializeResult {
    serverInfo: { name: string; version: string };
    capabilities: { isolation: Isolation };
}

export const InitializeRequest = new rpc.RequestType<InitializeParams, InitializeResult, void>(
    'initialize');
export const ShutdownRequest = new rpc.RequestType0<null, void>('shutdown');
export const ExitNotification = new rpc.NotificationType0('exit');

/** Error codes of PROTOCOL.md beyond JSON-RPC's own. */
export const ErrorCodes = {
    MethodNotFound: -32601,
    InvalidParams: -32602,
    ServerNotInitialized: -32002,
    RequestCancelled: -32800,
    UnknownSession: -32001,
    DeniedByPolicy: -32003,
    SandboxUnavailable: -32004,
} as const;

export interface ServerOptions {
    /** Path of the `cordon` binary. */
    path: string;
    /** `--state-dir`; empty: the server's default. */
    stateDir?: string;
    /** `--log-file`; empty: logs go to stderr (forwarded to `log`). */
    logFile?: string;
    clientVersion: string;
    /** Receives our own diagnostics about the process (start, exit, connection errors). */
    log: (line: string) => void;
    /** Receives the server's stderr (its log), line by line. */
    serverLog: (line: string) => void;
}

/** Called with the request id of each `exec` request as it is written (see ExecIdTap). */
type RequestWriteListener = (message: rpc.RequestMessage) => void;

/**
 * A MessageWriter that tells a listener about each request as it is written. vscode-jsonrpc
 * picks request ids itself and writes synchronously inside sendRequest, so this is how a
 * caller learns the id that `exec/output {requestId}` notifications refer to.
 */
class TappedWriter implements rpc.MessageWriter {
    constructor(private readonly inner: rpc.MessageWriter, private readonly tap: RequestWriteListener) {}
    get onError() { return this.inner.onError; }
    get onClose() { return this.inner.onClose; }
    write(msg: rpc.Message): Promise<void> {
        if (rpc.Message.isRequest(msg)) this.tap(msg);
        return this.inner.write(msg);
    }
    end(): void { this.inner.end(); }
    dispose(): void { this.inner.dispose(); }
}

export class CordonServer {
    readonly connection: rpc.MessageConnection;
    readonly initialized: Promise<InitializeResult>;
    /** Resolves with the process's exit code (null when killed by a signal). */
    readonly exited: Promise<number | null>;
    private readonly proc: cp.ChildProcess;
    private writeListener: RequestWriteListener | undefined;
    private stopping = false;
    private alive = true;

    private constructor(opts: ServerOptions) {
        const args = ['serve', '--stdio'];
        if (opts.stateDir) args.push('--state-dir', opts.stateDir);
        if (opts.logFile) args.push('--log-file', opts.logFile);
        opts.log(`starting ${opts.path} ${args.join(' ')}`);
        this.proc = cp.spawn(opts.path, args, { stdio: ['pipe', 'pipe', 'pipe'] });
        this.exited = new Promise((resolve) => {
            this.proc.on('error', (err) => {
                opts.log(`cannot start ${opts.path}: ${err.message}`);
                this.alive = false;
                resolve(null);
            });
            this.proc.on('exit', (code, signal) => {
                this.alive = false;
                opts.log(`server exited (${signal ?? `code ${code}`})`);
                resolve(code);
            });
        });
        let partial = '';
        this.proc.stderr!.setEncoding('utf8');
        this.proc.stderr!.on('data', (chunk: string) => {
            const lines = (partial + chunk).split('\n');
            partial = lines.pop() ?? '';
            for (const l of lines) opts.serverLog(l);
        });
        const reader = new rpc.StreamMessageReader(this.proc.stdout!);
        const writer = new TappedWriter(new rpc.StreamMessageWriter(this.proc.stdin!),
                                        (m) => this.writeListener?.(m));
        this.connection = rpc.createMessageConnection(reader, writer);
        this.connection.onError(([err]) => opts.log(`connection error: ${err.message}`));
        this.connection.listen();
        // Once the process's pipes are closed nothing more can arrive: fail pending requests.
        this.proc.on('close', () => this.disposeConnection());
        const started = new Promise<void>((resolve, reject) => {
            this.proc.on('spawn', () => resolve());
            this.proc.on('error', reject);
        });
        this.initialized = started.then(() => this.connection.sendRequest(InitializeRequest, {
            clientInfo: { name: 'cordon-vscode', version: opts.clientVersion },
            capabilities: { approvals: true },
        }));
    }

    /**
     * Starts the server. Handlers for server→client messages must be registered through
     * `onConnection` before `initialize` is sent, so no early request is missed.
     */
    static start(opts: ServerOptions, onConnection: (c: rpc.MessageConnection) => void): CordonServer {
        const s = new CordonServer(opts);
        onConnection(s.connection);
        return s;
    }

    get running(): boolean { return this.alive && !this.stopping; }

    /**
     * Sends a request and returns the id vscode-jsonrpc gave it along with the result.
     * `onId` runs synchronously, before any reply or notification for that id can arrive.
     */
    requestWithId<P, R>(type: rpc.RequestType<P, R, void>, params: P, onId: (id: number | string) => void,
                        token?: rpc.CancellationToken): Promise<R> {
        const prev = this.writeListener;
        this.writeListener = (m) => {
            if (m.method === type.method && m.id !== null) onId(m.id);
        };
        try {
            return this.connection.sendRequest(type, params, token);
        } finally {
            this.writeListener = prev;
        }
    }

    /** shutdown + exit, then waits (bounded) for the process; kills it if it lingers. */
    async stop(timeoutMs = 3000): Promise<void> {
        if (this.stopping) return;
        this.stopping = true;
        const deadline = new Promise<void>((r) => setTimeout(r, timeoutMs).unref());
        if (this.alive) {
            try {
                await Promise.race([this.connection.sendRequest(ShutdownRequest), deadline]);
                await this.connection.sendNotification(ExitNotification);
            } catch {
                // the process is gone or the pipe closed: the kill below settles it
            }
        }
        await Promise.race([this.exited, deadline]);
        if (this.alive) {
            this.proc.kill('SIGKILL');
            await this.exited;
        }
        this.disposeConnection();
    }

    private disposed = false;
    private disposeConnection(): void {
        if (this.disposed) return;
        this.disposed = true;
        this.connection.dispose();
    }
}

/** The message of an error from the server or the connection, for display. */
export function errorMessage(err: unknown): string {
    if (err instanceof rpc.ResponseError) return `${err.message} (${err.code})`;
    if (err instanceof Error) return err.message;
    return String(err);
}

export function isResponseError(err: unknown, code?: number): err is rpc.ResponseError<unknown> {
    return err instanceof rpc.ResponseError && (code === undefined || err.code === code);
}
