'use strict';
// A client built on plain vscode-jsonrpc (StreamMessageReader/Writer over the child's pipes,
// nothing cordon-specific) talks to `cordon serve --stdio` unchanged: the lifecycle, errors
// with the codes of PROTOCOL.md, streamed notifications, cancellation, and exit codes.

const test = require('node:test');
const assert = require('node:assert/strict');
const cp = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const rpc = require('vscode-jsonrpc/node');
const { cordonBinary } = require('./support/harness');

function startServer(t) {
    const bin = cordonBinary();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cordon-jsonrpc-'));
    const proc = cp.spawn(bin, ['serve', '--stdio', '--state-dir', path.join(tmp, 'state')],
                          { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d) => { stderr += d; });
    const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    const conn = rpc.createMessageConnection(new rpc.StreamMessageReader(proc.stdout),
                                             new rpc.StreamMessageWriter(proc.stdin));
    conn.listen();
    t.after(async () => {
        conn.dispose();
        if (proc.exitCode === null && proc.signalCode === null) {
            proc.kill('SIGKILL');
            await exited;
        }
        fs.rmSync(tmp, { recursive: true, force: true });
    });
    const workspace = path.join(tmp, 'ws');
    fs.mkdirSync(workspace);
    /** Resolves with the exit status, or fails the test after `ms`. */
    const exitWithin = (ms) => Promise.race([exited, new Promise((_, rej) =>
        setTimeout(() => rej(new Error(`server still running after ${ms} ms; stderr:\n${stderr}`)), ms).unref())]);
    return { conn, proc, exitWithin, workspace, stderr: () => stderr };
}

async function rejectsWith(promise, code) {
    await assert.rejects(promise, (err) => {
        assert.ok(err instanceof rpc.ResponseError, `a ResponseError, got ${err}`);
        assert.equal(err.code, code, `error code (message: ${err.message})`);
        return true;
    });
    return promise.catch((e) => e);
}

test('vscode-jsonrpc client: lifecycle, errors, shutdown then exit → 0', { timeout: 30000 }, async (t) => {
    const s = startServer(t);
    const { conn } = s;

    await t.test('a request before initialize is -32002', async () => {
        await rejectsWith(conn.sendRequest('session/list', {}), -32002);
    });

    await t.test('initialize answers serverInfo and the isolation report', async () => {
        const r = await conn.sendRequest('initialize', { clientInfo: { name: 'vscode-jsonrpc-test', version: '1' },
                                                         capabilities: { approvals: false } });
        assert.equal(r.serverInfo.name, 'cordon');
        assert.equal(typeof r.serverInfo.version, 'string');
        for (const k of ['userns', 'overlay', 'seccomp', 'landlock', 'cgroups']) {
            assert.equal(typeof r.capabilities.isolation[k], 'boolean', `isolation.${k}`);
        }
    });

    await t.test('unknown method is -32601, bad params -32602 with data.path, unknown session -32001', async () => {
        await rejectsWith(conn.sendRequest('no/such/method', {}), -32601);
        const e = await rejectsWith(conn.sendRequest('session/create', { workspace: '/nonexistent/dir' }), -32602);
        assert.equal(e.data.path, '/workspace');
        const e2 = await rejectsWith(conn.sendRequest('session/create', { workspace: 42 }), -32602);
        assert.equal(e2.data.path, '/workspace');
        await rejectsWith(conn.sendRequest('session/close', { sessionId: 's-nope' }), -32001);
        // The server still serves after errors.
        assert.deepEqual((await conn.sendRequest('session/list', {})).sessions, []);
    });

    await t.test('notifications are accepted and never answered', async () => {
        await conn.sendNotification('no/such/notification', { x: 1 });
        assert.ok(Array.isArray((await conn.sendRequest('session/list', {})).sessions));
    });

    await t.test('session, streamed exec/output notifications tied to the request', async () => {
        const { sessionId, workspace } = await conn.sendRequest('session/create', { workspace: s.workspace });
        assert.equal(workspace, fs.realpathSync(s.workspace));
        const seen = [];
        const sub = conn.onNotification('exec/output', (p) => seen.push(p));
        const r = await conn.sendRequest('exec', { sessionId, command: 'echo out; echo err >&2', stream: true });
        sub.dispose();
        assert.equal(r.exitCode, 0);
        assert.equal(r.stdout, 'out\n');
        assert.equal(r.stderr, 'err\n');
        assert.equal(seen.filter((p) => p.stream === 'stdout').map((p) => p.data).join(''), 'out\n');
        assert.equal(seen.filter((p) => p.stream === 'stderr').map((p) => p.data).join(''), 'err\n');
        assert.ok(seen.every((p) => p.sessionId === sessionId && p.requestId !== undefined));
        assert.equal(new Set(seen.map((p) => p.requestId)).size, 1);
    });

    await t.test('a CancellationToken sends $/cancelRequest: -32800', async () => {
        const { sessions } = await conn.sendRequest('session/list', {});
        const cts = new rpc.CancellationTokenSource();
        const started = Date.now();
        const p = conn.sendRequest('exec', { sessionId: sessions[0].sessionId, command: 'sleep 30' }, cts.token);
        setTimeout(() => cts.cancel(), 300);
        await rejectsWith(p, -32800);
        assert.ok(Date.now() - started < 10000);
    });

    await t.test('shutdown answers null, exit ends the process with code 0', async () => {
        assert.equal(await conn.sendRequest('shutdown'), null);
        await conn.sendNotification('exit');
        const { code } = await s.exitWithin(10000);
        assert.equal(code, 0);
    });
});

test('vscode-jsonrpc client: exit without shutdown → 1', { timeout: 20000 }, async (t) => {
    const s = startServer(t);
    await s.conn.sendRequest('initialize', {});
    await s.conn.sendNotification('exit');
    const { code } = await s.exitWithin(10000);
    assert.equal(code, 1);
});

test('vscode-jsonrpc client: EOF on stdin ends the server', { timeout: 20000 }, async (t) => {
    const s = startServer(t);
    await s.conn.sendRequest('initialize', {});
    s.proc.stdin.end();
    const { code, signal } = await s.exitWithin(10000);
    assert.equal(signal, null);
    assert.equal(typeof code, 'number');
});
