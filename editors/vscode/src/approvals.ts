// Server→client traffic about the sandbox's boundaries: `sandbox/approve` (a request the
// server sends when a connection is neither allowed nor denied by policy; we declared
// `capabilities.approvals`) answered through a modal, and `sandbox/violation` notifications
// shown as warnings and logged. Every string from the server is neutralised before display.

import * as vscode from 'vscode';
import * as rpc from 'vscode-jsonrpc/node';
import { CordonContext } from './sessions';
import { describeDetail, neutralizeLine } from './sanitize';

export interface ApproveParams {
    sessionId: string;
    requestId?: number | string;
    kind: 'network' | 'git';
    host: string;
    port: number;
    address?: string;
    /** A string, or an object such as {via, reason}. */
    detail?: unknown;
}
export type Decision = 'allow-once' | 'allow-session' | 'deny';
export interface ApproveResult { decision: Decision }
export interface ViolationParams {
    sessionId: string;
    requestId?: number | string;
    kind: 'network' | 'filesystem' | 'git' | 'limit';
    /** A string, or an object such as {host, port, reason, rule, via}. */
    detail: unknown;
}

export const ApproveRequest = new rpc.RequestType<ApproveParams, ApproveResult, void>('sandbox/approve');
export const ViolationNotification = new rpc.NotificationType<ViolationParams>('sandbox/violation');

const CHOICES: { title: string; decision: Decision }[] = [
    { title: 'Allow Once', decision: 'allow-once' },
    { title: 'Allow for This Session', decision: 'allow-session' },
    { title: 'Deny', decision: 'deny' },
];

export async function askApproval(ctx: CordonContext, p: ApproveParams, token?: rpc.CancellationToken): Promise<ApproveResult> {
    const session = await ctx.sessionById(p.sessionId);
    const where = session ? ` (sandbox of ${session.folder.name})` : '';
    const host = neutralizeLine(String(p.host));
    const port = Number(p.port);
    const address = p.address ? neutralizeLine(String(p.address)) : '';
    const what = p.kind === 'git' ? 'a git operation with' : 'a connection to';
    const message = `cordon: allow ${what} ${host}:${port}${address ? ` (address ${address})` : ''}?`;
    const detail = [`The agent's command${where} asks to reach ${host} on port ${port}` +
                    (address ? `, resolved to ${address}` : '') + '.',
                    p.detail ? `Detail: ${describeDetail(p.detail)}` : '',
                    'Not answering denies it.'].filter(Boolean).join('\n');
    ctx.log(`approval asked: ${p.kind} ${host}:${port}${address ? ` (${address})` : ''}`);
    const pick = vscode.window.showWarningMessage(message, { modal: true, detail }, ...CHOICES.map((c) => c.title));
    const cancelled = new Promise<undefined>((resolve) => token?.onCancellationRequested(() => resolve(undefined)));
    const choice = await Promise.race([pick, cancelled]);
    const decision = CHOICES.find((c) => c.title === choice)?.decision ?? 'deny';
    ctx.log(`approval answered: ${decision} for ${host}:${port}`);
    return { decision };
}

export function activate(ctx: CordonContext): void {
    ctx.subscriptions.push(ctx.onDidConnect((c) => {
        c.onRequest(ApproveRequest, (p, token) => askApproval(ctx, p, token));
        c.onNotification(ViolationNotification, (p) => {
            const line = `blocked (${neutralizeLine(String(p.kind))}): ${describeDetail(p.detail)}`;
            ctx.log(line);
            void vscode.window.showWarningMessage(`cordon: ${line}`, 'Show Output').then((a) => {
                if (a) ctx.output.show(true);
            });
        });
    }));
}
