'use strict';
// Activates the compiled extension (out/src/extension.js) against a stub `vscode` and the
// real cordon binary named by $CORDON_BIN, on a fresh temporary workspace and state dir.
// Missing prerequisites throw: a test that cannot run fails, it does not skip.

const fs = require('fs');
const os = require('os');
const path = require('path');
const stub = require('./vscode-stub');

const root = path.resolve(__dirname, '../../..');
const extensionMain = path.join(root, 'out/src/extension.js');

function cordonBinary() {
    const bin = process.env.CORDON_BIN;
    if (!bin) throw new Error('CORDON_BIN is not set: point it at the cordon binary (build/bin/cordon)');
    if (!fs.existsSync(bin)) throw new Error(`CORDON_BIN=${bin} does not exist`);
    return bin;
}

function requireExtension() {
    if (!fs.existsSync(extensionMain)) throw new Error(`${extensionMain} is missing: run \`npm run compile\` first`);
    for (const k of Object.keys(require.cache)) {
        if (k.startsWith(path.join(root, 'out') + path.sep)) delete require.cache[k];
    }
    return require(extensionMain);
}

/** Polls `fn` until it returns a truthy value; fails after `timeoutMs`. */
async function waitFor(fn, what, timeoutMs = 15000) {
    const end = Date.now() + timeoutMs;
    let last;
    for (;;) {
        try {
            const v = await fn();
            if (v) return v;
        } catch (err) {
            if (err && err.fatal) throw err;
            last = err;
        }
        if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
        await new Promise((r) => setTimeout(r, 50));
    }
}

/**
 * Starts the extension. Returns { api, ui, vscode, workspace, stateDir, exec(cmd, ...args), stop() }.
 * `files` seeds the workspace ({relative path: content}).
 */
async function startExtension({ files = {}, settings = {}, reuse } = {}) {
    const bin = cordonBinary();
    // `reuse: h.keep()` starts again on a previous run's workspace and state dir.
    const tmp = reuse ?? fs.mkdtempSync(path.join(os.tmpdir(), 'cordon-vscode-'));
    const workspace = path.join(tmp, 'workspace');
    const stateDir = path.join(tmp, 'state');
    fs.mkdirSync(workspace, { recursive: true });
    for (const [rel, content] of Object.entries(files)) {
        fs.mkdirSync(path.dirname(path.join(workspace, rel)), { recursive: true });
        fs.writeFileSync(path.join(workspace, rel), content);
    }
    const s = stub.createStub({
        workspaceFolders: [workspace],
        settings: { 'cordon.path': bin, 'cordon.stateDir': stateDir, ...settings },
    });
    stub.install(s);
    const ext = requireExtension();
    const extensionContext = {
        subscriptions: [],
        extension: { packageJSON: JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) },
        extensionPath: root,
    };
    const api = await ext.activate(extensionContext);
    let stopped = false;
    let keep = false;
    const stop = async () => {
        if (stopped) return;
        stopped = true;
        await ext.deactivate();
        for (const d of extensionContext.subscriptions) d.dispose();
        if (!keep) fs.rmSync(tmp, { recursive: true, force: true });
    };
    const h = {
        api, ui: s.ui, vscode: s.vscode, workspace, stateDir, stop,
        /** Stops the extension but keeps its directories; returns them for `reuse`. */
        keep: async () => { keep = true; await stop(); return tmp; },
        exec: (id, ...args) => s.vscode.commands.executeCommand(id, ...args),
        /** The file nodes the "cordon changes" view shows now, as {label, description}. */
        treeFiles: async () => {
            const view = s.ui.treeViews.cordonChanges;
            const nodes = await view.provider.getChildren();
            return Promise.all(nodes.map(async (n) => {
                const item = await view.provider.getTreeItem(n);
                if (!item.contextValue) {
                    // A message in place of the files: the server could not list changes.
                    const err = new Error(`the changes view shows: ${item.label}`);
                    err.fatal = true;
                    throw err;
                }
                return { node: n, label: item.label, description: item.description, contextValue: item.contextValue };
            }));
        },
        realFile: (rel) => fs.readFileSync(path.join(workspace, rel), 'utf8'),
    };
    // The session for the folder opens in the background; wait for it.
    try {
        await waitFor(() => s.ui.statusBar && /cordon: \d+ change/.test(s.ui.statusBar.text), 'the session to open');
    } catch (err) {
        await stop();
        throw new Error(`${err.message}\noutput:\n${s.ui.output}`);
    }
    return h;
}

module.exports = { startExtension, waitFor, cordonBinary, root };
