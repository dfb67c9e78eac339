// Language Model Tools, so an agent in VS Code's chat can call cordon directly: run a
// command, edit or create a file, fetch a URL — all inside the sandbox. Declared in
// package.json (`contributes.languageModelTools`) and registered here.

import * as vscode from 'vscode';
import { CordonContext } from './sessions';
import { CordonApi } from './api';
import { errorMessage } from './server';
import { TextEdit } from './files';

interface ExecInput { command: string; cwd?: string; timeoutMs?: number }
interface EditInput { path: string; edits?: TextEdit[]; content?: string }
interface FetchInput { url: string; method?: string; headers?: Record<string, string>; body?: string }

const MAX_TEXT = 64 * 1024;

function clip(s: string): string {
    return s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}\n…(${s.length - MAX_TEXT} more characters)` : s;
}

function text(s: string): vscode.LanguageModelToolResult {
    return new vscode.LanguageModelToolResult([new vscode.LanguageModelTextPart(s)]);
}

/** Runs a tool body; an error becomes the tool's text result so the model can react to it. */
async function answer(body: () => Promise<string>): Promise<vscode.LanguageModelToolResult> {
    try {
        return text(await body());
    } catch (err) {
        return text(`Error: ${errorMessage(err)}`);
    }
}

export function activate(ctx: CordonContext, api: CordonApi): void {
    const lm = (vscode as { lm?: typeof vscode.lm }).lm;
    if (!lm || typeof lm.registerTool !== 'function') {
        ctx.log('this VS Code has no Language Model Tools API: cordon tools not registered');
        return;
    }
    ctx.subscriptions.push(
        lm.registerTool<ExecInput>('cordon_exec', {
            prepareInvocation: (o) => ({ invocationMessage: `Running \`${o.input.command}\` in the cordon sandbox` }),
            invoke: (o, token) => answer(async () => {
                const r = await api.runCommand(o.input.command, {
                    ...(o.input.cwd !== undefined ? { cwd: o.input.cwd } : {}),
                    ...(o.input.timeoutMs !== undefined ? { timeoutMs: o.input.timeoutMs } : {}),
                    token });
                return [`exit: ${r.reason === 'exited' ? r.exitCode : `${r.reason}${r.signal ? ` (${r.signal})` : ''}`}`,
                        `stdout${r.stdoutTruncated ? ' (truncated)' : ''}:\n${clip(r.stdout)}`,
                        `stderr${r.stderrTruncated ? ' (truncated)' : ''}:\n${clip(r.stderr)}`,
                        `changed files (pending the user's review): ${(r.changes ?? []).map((c) => `${c.path} (${c.status})`).join(', ') || 'none'}`,
                ].join('\n');
            }),
        }),
        lm.registerTool<EditInput>('cordon_edit', {
            prepareInvocation: (o) => ({ invocationMessage: `Editing ${o.input.path} in the cordon sandbox` }),
            invoke: (o, token) => answer(async () => {
                if (typeof o.input.content === 'string') {
                    const r = await api.writeFile(o.input.path, o.input.content, { token });
                    return `wrote ${r.path} (${r.status}); the change is pending the user's review`;
                }
                if (!o.input.edits?.length) throw new Error('give either `content` or a non-empty `edits`');
                const r = await api.edit(o.input.path, o.input.edits, { token });
                return `edited ${r.path}; the change is pending the user's review\n${clip(r.diff)}`;
            }),
        }),
        lm.registerTool<FetchInput>('cordon_fetch', {
            prepareInvocation: (o) => ({ invocationMessage: `Fetching ${o.input.url} through the cordon network policy` }),
            invoke: (o, token) => answer(async () => {
                const { url, ...rest } = o.input;
                const r = await api.fetch(url, { ...rest, token });
                const body = r.encoding === 'base64' ? `(binary body, ${r.body.length} base64 characters)` : clip(r.body);
                return `status: ${r.status}${r.truncated ? ' (body truncated)' : ''}\n${body}`;
            }),
        }),
    );
}
