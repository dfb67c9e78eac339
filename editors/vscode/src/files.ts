// The sandbox's files: `fs/read|list|write|edit`, and the read-only `cordon:` document
// provider that shows the sandbox's content of a file (the right side of a change's diff).
//
// A `cordon:` URI has the real file's absolute path as its path (so the editor picks the
// language and shows the file name) and `session=<id>` in its query; `side=empty` stands for
// a file that does not exist on that side (added or deleted).

import * as path from 'path';
import * as vscode from 'vscode';
import * as rpc from 'vscode-jsonrpc/node';
import { CordonContext, Session, absolutePath, relativePath } from './sessions';
import { errorMessage } from './server';

export interface FsReadResult { content: string; encoding: 'utf-8' | 'base64'; size: number }
export interface FsListResult { entries: { name: string; type: 'file' | 'dir' | 'symlink'; size: number }[] }
export interface FsWriteResult { path: string; status: string }
export interface TextEdit { oldText: string; newText: string; replaceAll?: boolean }
export interface FsEditResult { path: string; diff: string }

export const FsReadRequest = new rpc.RequestType<{ sessionId: string; path: string }, FsReadResult, void>('fs/read');
export const FsListRequest = new rpc.RequestType<{ sessionId: string; path?: string }, FsListResult, void>('fs/list');
export const FsWriteRequest = new rpc.RequestType<
    { sessionId: string; path: string; content: string; encoding?: 'utf-8' | 'base64' }, FsWriteResult, void>('fs/write');
export const FsEditRequest = new rpc.RequestType<
    { sessionId: string; path: string; edits: TextEdit[] }, FsEditResult, void>('fs/edit');

export const SCHEME = 'cordon';

export function sandboxUri(session: Session, rel: string, empty = false): vscode.Uri {
    const query = `session=${encodeURIComponent(session.id)}` + (empty ? '&side=empty' : '');
    return vscode.Uri.file(absolutePath(session, rel)).with({ scheme: SCHEME, query });
}

function queryParam(uri: vscode.Uri, name: string): string | undefined {
    for (const part of uri.query.split('&')) {
        const eq = part.indexOf('=');
        if (eq > 0 && part.slice(0, eq) === name) return decodeURIComponent(part.slice(eq + 1));
    }
    return undefined;
}

export function sessionIdOf(uri: vscode.Uri): string | undefined {
    return uri.scheme === SCHEME ? queryParam(uri, 'session') : undefined;
}

/** Text shown for content that is not UTF-8. */
export function binaryPlaceholder(size: number): string {
    return `(binary file, ${size} bytes: not shown)\n`;
}

export function decodeContent(r: FsReadResult): string {
    return r.encoding === 'base64' ? binaryPlaceholder(r.size) : r.content;
}

class SandboxDocuments implements vscode.TextDocumentContentProvider {
    private readonly emitter = new vscode.EventEmitter<vscode.Uri>();
    readonly onDidChange = this.emitter.event;
    constructor(private readonly ctx: CordonContext) {}

    async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
        if (queryParam(uri, 'side') === 'empty') return '';
        const id = queryParam(uri, 'session');
        const session = id ? await this.ctx.sessionById(id) : undefined;
        if (!session) return `(cordon: session ${id ?? '?'} is not open)\n`;
        try {
            const r = await this.ctx.request(FsReadRequest, {
                sessionId: session.id, path: relativePath(session, uri.fsPath) });
            return decodeContent(r);
        } catch (err) {
            return `(cordon: cannot read ${path.basename(uri.fsPath)} from the sandbox: ${errorMessage(err)})\n`;
        }
    }

    /** Refreshes every open `cordon:` document. */
    refreshAll(): void {
        for (const d of vscode.workspace.textDocuments) {
            if (d.uri.scheme === SCHEME) this.emitter.fire(d.uri);
        }
    }

    dispose(): void { this.emitter.dispose(); }
}

export function activate(ctx: CordonContext): void {
    const docs = new SandboxDocuments(ctx);
    ctx.subscriptions.push(docs, vscode.workspace.registerTextDocumentContentProvider(SCHEME, docs),
                           ctx.onDidTouchWorkspace(() => docs.refreshAll()));
}
