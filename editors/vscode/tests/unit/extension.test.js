'use strict';
// The compiled extension, activated with a stub `vscode`, driven through its commands against
// the real cordon server on a temporary workspace: run a command in the sandbox, see the
// change in the tree and the status bar, open its diff (the cordon: document is read with
// fs/read), apply it, and check the real file. Then conflicts, protected files, discard.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { startExtension, waitFor } = require('./support/harness');

test('run, review and apply a change through the extension', { timeout: 60000 }, async (t) => {
    const h = await startExtension({ files: { 'a.txt': 'one\n' } });
    t.after(() => h.stop());

    await t.test('activation opens a session and shows it in the status bar', async () => {
        assert.match(h.ui.statusBar.text, /cordon: 0 changes/);
        assert.match(h.ui.statusBar.tooltip, /1 session/);
        assert.match(await h.api.sessionId(), /\S/);
    });

    await t.test('cordon.runCommand streams neutralised output and returns the result', async () => {
        h.ui.answers.input.push("printf 'hello\\n' > hello.txt; echo two > a.txt; echo streamed; printf '\\033]52;c;SGk=\\007\\033[2Jdone\\n' >&2");
        const r = await h.exec('cordon.runCommand');
        assert.ok(r, 'the command returned a result');
        assert.equal(r.exitCode, 0, `stderr: ${r.stderr}`);
        assert.equal(r.stdout, 'streamed\n');
        assert.deepEqual(r.changes.map((c) => c.path).sort(), ['a.txt', 'hello.txt']);
        assert.match(h.ui.output, /\$ printf 'hello/);
        assert.match(h.ui.output, /streamed\n/);
        // TTY-04: the escape sequences arrive as visible text, never as raw controls.
        assert.match(h.ui.output, /␛\]52;c;SGk=␇␛\[2Jdone/);
        assert.doesNotMatch(h.ui.output, /[\x1b\x07]/);
        assert.match(h.ui.output, /\[exit code 0, \d+ ms, 2 changed files\]/);
        // Nothing reached the real workspace.
        assert.equal(h.realFile('a.txt'), 'one\n');
        assert.equal(fs.existsSync(path.join(h.workspace, 'hello.txt')), false);
    });

    await t.test('the changes view and the status bar list the pending changes', async () => {
        const files = await waitFor(async () => {
            const f = await h.treeFiles();
            return f.length === 2 && f;
        }, 'two pending changes in the tree');
        const byName = Object.fromEntries(files.map((f) => [f.label, f]));
        assert.match(byName['hello.txt'].description, /^added · \+1 −0$/);
        assert.match(byName['a.txt'].description, /^modified · \+1 −1$/);
        await waitFor(() => /cordon: 2 changes/.test(h.ui.statusBar.text), 'the status bar count');
        assert.equal(h.ui.treeViews.cordonChanges.badge.value, 2);
    });

    await t.test('opening a change shows the native diff of the real file and the sandbox content', async () => {
        const [node] = (await h.treeFiles()).filter((f) => f.label === 'a.txt');
        await h.exec('cordon.openChange', node.node);
        const d = h.ui.diffs.at(-1);
        assert.equal(d.left.scheme, 'file');
        assert.equal(d.left.fsPath, path.join(h.workspace, 'a.txt'));
        assert.equal(d.right.scheme, 'cordon');
        assert.match(d.title, /a\.txt/);
        const provider = h.ui.contentProviders.cordon;
        assert.equal(await provider.provideTextDocumentContent(d.right), 'two\n');

        // An added file: the left side is an empty cordon: document; chosen from a quick pick.
        h.ui.answers.quickPick.push((q) => q.items.find((i) => i.label === 'hello.txt'));
        assert.equal(await h.exec('cordon.openChange'), 'hello.txt');
        const d2 = h.ui.diffs.at(-1);
        assert.equal(d2.left.scheme, 'cordon');
        assert.equal(await provider.provideTextDocumentContent(d2.left), '');
        assert.equal(await provider.provideTextDocumentContent(d2.right), 'hello\n');
    });

    await t.test('apply one file writes the real file and leaves the other pending', async () => {
        const [node] = (await h.treeFiles()).filter((f) => f.label === 'hello.txt');
        const r = await h.exec('cordon.applyChange', node.node);
        assert.deepEqual(r.applied, ['hello.txt']);
        assert.deepEqual(r.conflicts, []);
        assert.equal(h.realFile('hello.txt'), 'hello\n');
        const files = await waitFor(async () => {
            const f = await h.treeFiles();
            return f.length === 1 && f;
        }, 'one pending change left');
        assert.equal(files[0].label, 'a.txt');
        await waitFor(() => /cordon: 1 change\b/.test(h.ui.statusBar.text), 'the status bar count');
    });

    await t.test('a file changed on disk after its diff was shown is a conflict, not overwritten', async () => {
        const [node] = (await h.treeFiles()).filter((f) => f.label === 'a.txt');
        fs.writeFileSync(path.join(h.workspace, 'a.txt'), 'edited by the user\n');
        const r = await h.exec('cordon.applyChange', node.node);
        assert.deepEqual(r.applied, []);
        assert.deepEqual(r.conflicts.map((c) => c.path), ['a.txt']);
        assert.equal(h.realFile('a.txt'), 'edited by the user\n');
        assert.ok(h.ui.messages.some((m) => m.level === 'warning' && /conflict/.test(m.message) && /a\.txt/.test(m.message)));
    });

    await t.test('apply all, after a refresh, applies with the new hashes', async () => {
        await h.exec('cordon.refreshChanges');
        const r = await h.exec('cordon.applyAll');
        assert.deepEqual(r.applied, ['a.txt']);
        assert.equal(h.realFile('a.txt'), 'two\n');
        await waitFor(async () => (await h.treeFiles()).length === 0, 'no pending change');
        await waitFor(() => /cordon: 0 changes/.test(h.ui.statusBar.text), 'the status bar count');
    });
});

test('protected files need a confirmation per file; discard drops a change', { timeout: 60000 }, async (t) => {
    const h = await startExtension();
    t.after(() => h.stop());
    const r = await h.exec('cordon.runCommand',
                           'mkdir -p .vscode && echo "{}" > .vscode/tasks.json && echo x > scratch.txt && echo y > keep.txt');
    assert.equal(r.exitCode, 0, r.stderr);
    const files = await waitFor(async () => {
        const f = await h.treeFiles();
        return f.length === 3 && f;
    }, 'three pending changes');
    const tasks = files.find((f) => f.label === '.vscode/tasks.json');
    assert.match(tasks.description, /protected/);
    assert.equal(tasks.contextValue, 'cordon.change.protected');

    await t.test('declining the modal leaves a protected file unapplied', async () => {
        h.ui.answers.message.push(undefined); // the user closes the modal
        const s = await h.exec('cordon.applyChange', tasks.node);
        assert.deepEqual(s.applied, []);
        assert.deepEqual(s.declined, ['.vscode/tasks.json']);
        const modal = h.ui.messages.at(-1);
        assert.equal(modal.options.modal, true);
        assert.match(modal.message, /\.vscode\/tasks\.json.*protected/);
        assert.equal(fs.existsSync(path.join(h.workspace, '.vscode/tasks.json')), false);
    });

    await t.test('confirming it applies it with confirmProtected', async () => {
        h.ui.answers.message.push('Apply Protected File');
        const s = await h.exec('cordon.applyChange', tasks.node);
        assert.deepEqual(s.applied, ['.vscode/tasks.json']);
        assert.equal(h.realFile('.vscode/tasks.json'), '{}\n');
    });

    await t.test('discard asks, then drops the change from the sandbox', async () => {
        const scratch = (await h.treeFiles()).find((f) => f.label === 'scratch.txt');
        h.ui.answers.message.push('Discard');
        assert.equal(await h.exec('cordon.discardChange', scratch.node), true);
        const left = await waitFor(async () => {
            const f = await h.treeFiles();
            return f.length === 1 && f;
        }, 'one pending change');
        assert.equal(left[0].label, 'keep.txt');
        const ls = await h.exec('cordon.runCommand', 'test -e scratch.txt && echo present || echo gone');
        assert.equal(ls.stdout, 'gone\n');
        assert.equal(fs.existsSync(path.join(h.workspace, 'scratch.txt')), false);
    });
});

test('a change whose text hides characters is marked and warned about when opened', { timeout: 30000 }, async (t) => {
    const h = await startExtension();
    t.after(() => h.stop());
    const r = await h.exec('cordon.runCommand', "printf 'ok = 1 /* \\342\\200\\256 } */\\n' > trojan.js");
    assert.equal(r.exitCode, 0, r.stderr);
    const [f] = await waitFor(async () => {
        const x = await h.treeFiles();
        return x.length === 1 && x;
    }, 'one pending change');
    assert.match(f.description, /⚠ bidi-control/);
    await h.exec('cordon.openChange', f.node);
    assert.ok(h.ui.messages.some((m) => m.level === 'warning' && /trojan\.js contains bidirectional control/.test(m.message)));
});

test('after a restart the folder resumes its session and its pending changes', { timeout: 60000 }, async (t) => {
    const first = await startExtension();
    let dirs;
    try {
        const r = await first.exec('cordon.runCommand', 'echo kept > kept.txt');
        assert.equal(r.exitCode, 0, r.stderr);
        const id = await first.api.sessionId();
        dirs = await first.keep();
        const second = await startExtension({ reuse: dirs });
        t.after(() => second.stop());
        assert.equal(await second.api.sessionId(), id);
        assert.match(second.ui.output, /resumed, 1 pending file/);
        const cat = await second.api.runCommand('cat kept.txt');
        assert.equal(cat.stdout, 'kept\n');
        assert.equal(fs.existsSync(path.join(second.workspace, 'kept.txt')), false);
    } finally {
        await first.stop();
    }
});

test('cancelling a running command stops it ($/cancelRequest)', { timeout: 30000 }, async (t) => {
    const h = await startExtension();
    t.after(() => h.stop());
    const started = Date.now();
    const run = h.exec('cordon.runCommand', 'echo started; sleep 30');
    await waitFor(() => /started/.test(h.ui.output), 'the command to start');
    h.ui.progressToken.cancel();
    const r = await run;
    assert.equal(r, undefined);
    assert.ok(Date.now() - started < 10000, 'the command was stopped well before it ended');
    assert.match(h.ui.output, /\[cancelled: the command and its processes were stopped\]/);
    assert.ok(!h.ui.messages.some((m) => m.level === 'error'), 'a cancel the user asked for is not an error');
});

test('the status bar and the output report a server that cannot start', { timeout: 20000 }, async () => {
    const { createStub, install } = require('./support/vscode-stub');
    const s = createStub({ workspaceFolders: [process.cwd()], settings: { 'cordon.path': '/nonexistent/cordon' } });
    install(s);
    for (const k of Object.keys(require.cache)) if (k.includes(`${path.sep}out${path.sep}src${path.sep}`)) delete require.cache[k];
    const ext = require('../../out/src/extension.js');
    const ctx = { subscriptions: [], extension: { packageJSON: { version: '0.0.0' } } };
    await ext.activate(ctx);
    await waitFor(() => /cordon: stopped/.test(s.ui.statusBar.text), 'the error state');
    assert.match(s.ui.output, /cannot start \/nonexistent\/cordon/);
    assert.ok(s.ui.messages.some((m) => m.level === 'error'));
    await ext.deactivate();
    for (const d of ctx.subscriptions) d.dispose();
});
