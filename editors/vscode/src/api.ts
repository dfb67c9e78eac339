// The API this extension exports to other extensions (an agent living in another extension
// gets it with `vscode.extensions.getExtension('cordon.cordon')?.activate()`).
//
// Every call works in the sandbox session of one workspace folder: `options.folder` (a
// WorkspaceFolder or a URI inside one), else the active editor's folder, else the first.
// Paths are workspace-relative (`/` separators) or absolute inside the workspace.

import * as vscode from 'vscode';
import { CordonContext, Session, relativePath } from './sessions';
import { ExecResult, OutputListener, runInSandbox } from './exec';
import { FsEditRequest, FsEditResult, FsReadRequest, FsReadResult, FsWriteRequest, FsWriteResult, TextEdit } from './files';
import { FetchRequest, FetchResult } from './fetch';
import { ChangesDiffRequest, ChangesDiffResult } from './changes';

export interface CallOptions {
    folder?: vscode.WorkspaceFolder | vscode.Uri;
    token?: vscode.CancellationToken;
}
export interface RunCommandOptions extends CallOptions {
    cwd?: string;
    env?: Record<string, string>;
    stdin?: string;
    timeoutMs?: number;
    /** Streamed output as it arrives (the result still carries all of it, up to the cap). */
    onOutput?: OutputListener;
}
export interface FetchOptions extends CallOptions {
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    maxBytes?: number;
    timeoutMs?: number;
}

export interface CordonApi {
    /** The id of the folder's sandbox session (opened if needed). */
    sessionId(options?: CallOptions): Promise<string>;
    /** Runs a shell command (a string, run by /bin/sh -c) or an argv in the sandbox. */
    runCommand(command: string | string[], options?: RunCommandOptions): Promise<ExecResult>;
    /** The sandbox's view of a file (pending changes included). */
    readFile(path: string, options?: CallOptions): Promise<FsReadResult>;
    /** Writes a file in the sandbox (a string is UTF-8; bytes are sent base64). */
    writeFile(path: string, content: string | Uint8Array, options?: CallOptions): Promise<FsWriteResult>;
    /** Exact-text edits; fails as a whole if an oldText is absent or ambiguous. */
    edit(path: string, edits: TextEdit[], options?: CallOptions): Promise<FsEditResult>;
    /** An HTTP request through the session's network policy. */
    fetch(url: string, options?: FetchOptions): Promise<FetchResult>;
    /** The pending changes (all, or of `paths`). */
    diff(paths?: string[], options?: CallOptions): Promise<ChangesDiffResult>;
}

export function createApi(ctx: CordonContext): CordonApi {
    const session = (o?: CallOptions): Promise<Session> => ctx.session(o?.folder);
    return {
        async sessionId(o) { return (await session(o)).id; },
        async runCommand(command, o = {}) {
            const s = await session(o);
            return runInSandbox(ctx, s, command, o);
        },
        async readFile(path, o) {
            const s = await session(o);
            return ctx.request(FsReadRequest, { sessionId: s.id, path: relativePath(s, path) }, o?.token);
        },
        async writeFile(path, content, o) {
            const s = await session(o);
            const params = typeof content === 'string'
                ? { sessionId: s.id, path: relativePath(s, path), content, encoding: 'utf-8' as const }
                : { sessionId: s.id, path: relativePath(s, path), content: Buffer.from(content).toString('base64'),
                    encoding: 'base64' as const };
            try {
                return await ctx.request(FsWriteRequest, params, o?.token);
            } finally {
                ctx.touched(s);
            }
        },
        async edit(path, edits, o) {
            const s = await session(o);
            try {
                return await ctx.request(FsEditRequest, { sessionId: s.id, path: relativePath(s, path), edits }, o?.token);
            } finally {
                ctx.touched(s);
            }
        },
        async fetch(url, o = {}) {
            const s = await session(o);
            const { folder: _f, token, ...rest } = o;
            return ctx.request(FetchRequest, { sessionId: s.id, url, ...rest }, token);
        },
        async diff(paths, o) {
            const s = await session(o);
            const params: { sessionId: string; paths?: string[] } = { sessionId: s.id };
            if (paths) params.paths = paths.map((p) => relativePath(s, p));
            return ctx.request(ChangesDiffRequest, params, o?.token);
        },
    };
}
