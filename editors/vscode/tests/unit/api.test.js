'use strict';
// The API the extension exports to other extensions, its Language Model Tools, and the
// server→client traffic (sandbox/approve as a modal, sandbox/violation as a warning), all
// against the real server. Network checks only ever target 127.0.0.1 or a name the policy
// denies before any lookup.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const http = require('http');
const path = require('path');
const { startExtension, waitFor } = require('./support/harness');

test('exported API: writeFile, readFile, edit, diff, runCommand', { timeout: 60000 }, async (t) => {
    const h = await startExtension({ files: { 'src/main.c': 'int main(void) { return 1; }\n' } });
    t.after(() => h.stop());
    const { api } = h;

    await t.test('runCommand streams output to onOutput and returns the result', async () => {
        const chunks = [];
        const r = await api.runCommand(['sh', '-c', 'echo a; echo b >&2'], { onOutput: (s, d) => chunks.push([s, d]) });
        assert.equal(r.exitCode, 0);
        assert.equal(chunks.filter(([s]) => s === 'stdout').map(([, d]) => d).join(''), 'a\n');
        assert.equal(chunks.filter(([s]) => s === 'stderr').map(([, d]) => d).join(''), 'b\n');
    });

    await t.test('writeFile then readFile sees the sandbox content, the real file is untouched', async () => {
        const w = await api.writeFile('notes/todo.txt', 'first\nsecond\n');
        assert.equal(w.path, 'notes/todo.txt');
        const r = await api.readFile(path.join(h.workspace, 'notes/todo.txt')); // absolute inside the workspace
        assert.equal(r.content, 'first\nsecond\n');
        assert.equal(r.encoding, 'utf-8');
        assert.equal(fs.existsSync(path.join(h.workspace, 'notes')), false);
        const bin = await api.writeFile('blob.bin', new Uint8Array([0, 255, 1, 2]));
        assert.equal(bin.path, 'blob.bin');
        const rb = await api.readFile('blob.bin');
        assert.equal(rb.encoding, 'base64');
        assert.deepEqual([...Buffer.from(rb.content, 'base64')], [0, 255, 1, 2]);
    });

    await t.test('edit replaces exact text; an absent oldText fails the whole call', async () => {
        const e = await api.edit('src/main.c', [{ oldText: 'return 1', newText: 'return 0' }]);
        assert.equal(e.path, 'src/main.c');
        assert.match(e.diff, /-int main\(void\) \{ return 1; \}/);
        assert.match(e.diff, /\+int main\(void\) \{ return 0; \}/);
        await assert.rejects(api.edit('src/main.c', [{ oldText: 'return 0', newText: 'x' },
                                                     { oldText: 'not there', newText: 'y' }]),
                             (err) => err.code === -32602);
        assert.equal((await api.readFile('src/main.c')).content, 'int main(void) { return 0; }\n');
    });

    await t.test('a path that leaves the workspace is refused', async () => {
        await assert.rejects(api.readFile('/etc/passwd'));
        await assert.rejects(api.writeFile('../outside.txt', 'x'));
    });

    await t.test('diff lists every pending change with hashes, marks and a unified diff', async () => {
        const d = await api.diff();
        const byPath = Object.fromEntries(d.files.map((f) => [f.path, f]));
        assert.deepEqual(Object.keys(byPath).sort(), ['blob.bin', 'notes/todo.txt', 'src/main.c']);
        assert.equal(byPath['src/main.c'].status, 'modified');
        assert.equal(byPath['notes/todo.txt'].status, 'added');
        assert.equal(byPath['notes/todo.txt'].baseHash, '');
        assert.match(byPath['notes/todo.txt'].newHash, /^[0-9a-f]{64}$/);
        assert.equal(byPath['blob.bin'].binary, true);
        assert.equal(byPath['src/main.c'].protected, false);
        assert.match(byPath['src/main.c'].unified, /^\+int main\(void\) \{ return 0; \}$/m);
        const only = await api.diff(['src/main.c']);
        assert.deepEqual(only.files.map((f) => f.path), ['src/main.c']);
        // The tree shows the binary mark.
        await h.exec('cordon.refreshChanges');
        const blob = (await h.treeFiles()).find((f) => f.label === 'blob.bin');
        assert.match(blob.description, /binary/);
    });
});

test('Language Model Tools: cordon_exec, cordon_edit, cordon_fetch are registered and work', { timeout: 60000 }, async (t) => {
    const h = await startExtension({ files: { 'README.md': 'Hello world\n' },
                                     settings: { 'cordon.policy': { network: { deny: ['denied.invalid'] } } } });
    t.after(() => h.stop());
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '../../package.json'), 'utf8'));
    const declared = pkg.contributes.languageModelTools.map((x) => x.name).sort();
    assert.deepEqual(Object.keys(h.ui.tools).sort(), declared);
    assert.deepEqual(declared, ['cordon_edit', 'cordon_exec', 'cordon_fetch']);
    const text = (r) => r.content.map((p) => p.value).join('');
    const token = new h.vscode.CancellationTokenSource().token;

    await t.test('cordon_exec runs a command and lists the changed files', async () => {
        const ex = await h.ui.tools.cordon_exec.invoke({ input: { command: 'echo hi > out.txt; cat README.md' } }, token);
        assert.match(text(ex), /exit: 0/);
        assert.match(text(ex), /Hello world/);
        assert.match(text(ex), /out\.txt \(added\)/);
    });

    await t.test('cordon_edit edits or writes in the sandbox; a failed edit is an Error result', async () => {
        const ed = await h.ui.tools.cordon_edit.invoke(
            { input: { path: 'README.md', edits: [{ oldText: 'world', newText: 'sandbox' }] } }, token);
        assert.match(text(ed), /edited README\.md/);
        assert.equal((await h.api.readFile('README.md')).content, 'Hello sandbox\n');
        const wr = await h.ui.tools.cordon_edit.invoke({ input: { path: 'new/file.txt', content: 'x\n' } }, token);
        assert.match(text(wr), /wrote new\/file\.txt/);
        const bad = await h.ui.tools.cordon_edit.invoke(
            { input: { path: 'README.md', edits: [{ oldText: 'absent', newText: '' }] } }, token);
        assert.match(text(bad), /^Error: /);
        assert.equal(h.realFile('README.md'), 'Hello world\n');
    });

    await t.test('cordon_fetch goes through the policy: a denied host is an Error result (-32003)', async () => {
        const fe = await h.ui.tools.cordon_fetch.invoke({ input: { url: 'http://denied.invalid/' } }, token);
        assert.match(text(fe), /^Error: .*-32003/);
    });
});

function httpServer(t) {
    const server = http.createServer((req, res) => { res.end(`hello from ${req.url}`); });
    return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
        t.after(() => new Promise((r) => server.close(r)));
        resolve(server.address().port);
    }));
}

test('sandbox/approve is a modal naming host, port and address; the answer decides', { timeout: 60000 }, async (t) => {
    const port = await httpServer(t);
    const h = await startExtension();
    t.after(() => h.stop());
    const url = `http://127.0.0.1:${port}/approved`;

    await t.test('allow once: the fetch goes through', async () => {
        h.ui.answers.message.push((q) => {
            assert.equal(q.options.modal, true);
            assert.deepEqual(q.items, ['Allow Once', 'Allow for This Session', 'Deny']);
            assert.match(q.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
            return 'Allow Once';
        });
        const r = await h.api.fetch(url);
        assert.equal(r.status, 200);
        assert.equal(r.body, 'hello from /approved');
        assert.match(h.ui.output, /approval answered: allow-once/);
    });

    await t.test('deny: the fetch fails with -32003', async () => {
        h.ui.answers.message.push('Deny');
        await assert.rejects(h.api.fetch(url), (err) => err.code === -32003);
    });

    await t.test('closing the modal denies', async () => {
        h.ui.answers.message.push(undefined);
        await assert.rejects(h.api.fetch(url), (err) => err.code === -32003);
        assert.match(h.ui.output, /approval answered: deny/);
    });
});

test('sandbox/violation shows a warning and goes to the output', { timeout: 60000 }, async (t) => {
    const h = await startExtension({ settings: { 'cordon.policy': { network: { deny: ['denied.invalid'] } } } });
    t.after(() => h.stop());
    const r = await h.api.runCommand('curl -fsS -m 5 -o /dev/null http://denied.invalid/ ; echo "curl exit $?"');
    assert.match(r.stdout, /curl exit [1-9]/);
    const warning = await waitFor(() => h.ui.messages.find((m) => m.level === 'warning' && /blocked \(network\)/.test(m.message)),
                                  'a violation warning', 10000);
    assert.match(warning.message, /denied\.invalid/);
    assert.match(h.ui.output, /blocked \(network\): .*denied\.invalid/);
});
