// The status bar item: server/session state and the number of pending changed files.

import * as vscode from 'vscode';
import { CordonContext, formatIsolation } from './sessions';
import { ChangesModel } from './changes';

export function activate(ctx: CordonContext, model: ChangesModel): void {
    const item = vscode.window.createStatusBarItem('cordon.status', vscode.StatusBarAlignment.Left, 10);
    item.name = 'cordon';
    item.command = 'cordonChanges.focus';
    const update = async () => {
        const sessions = await ctx.openSessions();
        switch (ctx.state) {
            case 'ready': {
                const n = model.count;
                item.text = sessions.length
                    ? `$(shield) cordon: ${n} change${n === 1 ? '' : 's'}`
                    : '$(shield) cordon: no session';
                item.tooltip = [`cordon sandbox: ${sessions.length} session${sessions.length === 1 ? '' : 's'}`,
                                ...sessions.map((s) => `${s.folder.name}: ${s.id}`),
                                `isolation: ${formatIsolation(ctx.initializeResult?.capabilities?.isolation)}`,
                                `${n} pending changed file${n === 1 ? '' : 's'}: click to review`].join('\n');
                item.backgroundColor = undefined;
                break;
            }
            case 'starting':
                item.text = '$(sync~spin) cordon: starting';
                item.tooltip = 'Starting the cordon server';
                item.backgroundColor = undefined;
                break;
            case 'error':
                item.text = '$(error) cordon: stopped';
                item.tooltip = `cordon is not running: ${ctx.lastError ?? 'unknown error'}`;
                item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
                break;
            case 'stopped':
                item.text = '$(circle-slash) cordon: off';
                item.tooltip = 'The cordon server is not running';
                item.backgroundColor = undefined;
                break;
        }
        item.show();
    };
    ctx.subscriptions.push(item, ctx.onDidChangeState(() => void update()), model.onDidChange(() => void update()));
    void update();
}
