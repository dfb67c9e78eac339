// Entry point: composes the feature modules. Each feature's `activate` registers its
// commands, views and handlers and pushes its disposables onto the shared context.

import * as vscode from 'vscode';
import { CordonContext } from './sessions';
import { ChangesModel } from './changes';
import { CordonApi, createApi } from './api';
import * as approvals from './approvals';
import * as changes from './changes';
import * as exec from './exec';
import * as files from './files';
import * as lmTools from './lmTools';
import * as statusBar from './statusBar';

let ctx: CordonContext | undefined;

export async function activate(extension: vscode.ExtensionContext): Promise<CordonApi> {
    const c = new CordonContext(extension);
    ctx = c;
    extension.subscriptions.push(c);
    const model = new ChangesModel(c);
    c.subscriptions.push(model);

    // Handlers for server→client messages first: they attach to each new connection.
    approvals.activate(c);
    exec.activate(c);
    files.activate(c);
    changes.activate(c, model);
    statusBar.activate(c, model);
    const api = createApi(c);
    lmTools.activate(c, api);

    c.subscriptions.push(
        vscode.commands.registerCommand('cordon.restart', async () => {
            await c.restart();
            await c.openAll();
        }),
        vscode.commands.registerCommand('cordon.showOutput', () => c.output.show()),
        vscode.workspace.onDidChangeWorkspaceFolders((e) => {
            for (const f of e.removed) c.forgetFolder(f);
            if (e.added.length) void c.openAll();
        }),
        vscode.workspace.onDidChangeConfiguration((e) => {
            if (e.affectsConfiguration('cordon.path') || e.affectsConfiguration('cordon.stateDir')) {
                void vscode.window.showInformationMessage('cordon: restart the server to use the new settings.',
                                                          'Restart').then((a) => {
                    if (a) void vscode.commands.executeCommand('cordon.restart');
                });
            }
        }),
    );

    // Start in the background: activation must not wait on the server.
    void c.start().then(() => c.openAll()).then(() => model.refresh(), (err) => {
        void vscode.window.showErrorMessage(`cordon: ${err instanceof Error ? err.message : String(err)}`,
                                            'Show Output').then((a) => { if (a) c.output.show(); });
    });
    return api;
}

export async function deactivate(): Promise<void> {
    const c = ctx;
    ctx = undefined;
    await c?.stop();
}
