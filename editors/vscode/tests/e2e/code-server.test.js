'use strict';
// The real editor: code-server (VS Code 1.100 in a browser) with the packaged .vsix
// installed, driven through Debian's chromium by playwright-core, offline. From the command
// palette: run a command in the sandbox, open the change in the diff editor (screenshot kept
// as a test artifact), apply it, and check the real file on disk.
//
// Needs: CORDON_BIN (the cordon binary), CORDON_VSIX (the packaged extension), code-server
// (CODE_SERVER, default: where scripts/setup-test-env installs it) and /usr/bin/chromium.
// Artifacts go to CORDON_TEST_ARTIFACTS (default editors/vscode/test-artifacts).

const test = require('node:test');
const assert = require('node:assert/strict');
const cp = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.resolve(__dirname, '../..');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const defaultCodeServer = path.join(process.env.CORDON_VSCODE_TEST_CACHE ||
    path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'cordon-vscode-test'),
    'code-server-4.100.3/node_modules/.bin/code-server');

function required(name, value, hint) {
    if (!value) throw new Error(`${name} is not set: ${hint}`);
    if (!fs.existsSync(value)) throw new Error(`${name}=${value} does not exist: ${hint}`);
    return value;
}

function step(msg) { process.stderr.write(`[e2e ${new Date().toISOString().slice(11, 19)}] ${msg}\n`); }

/** Starts code-server in its own process group; resolves with { url, stop }. */
async function startCodeServer(bin, dirs) {
    const proc = cp.spawn(bin, [
        '--config', dirs.config, '--bind-addr', '127.0.0.1:0', '--auth', 'none',
        '--user-data-dir', dirs.userData, '--extensions-dir', dirs.extensions,
        '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust',
        '--disable-getting-started-override', '--ignore-last-opened',
    ], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CS_DISABLE_FILE_DOWNLOADS: '1' } });
    let log = '';
    const exited = new Promise((r) => proc.on('exit', r));
    const url = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`code-server did not start within 60 s:\n${log}`)), 60000);
        const onData = (d) => {
            log += d;
            const m = /HTTP server listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
            if (m) { clearTimeout(timer); resolve(m[1]); }
        };
        proc.stdout.on('data', onData);
        proc.stderr.on('data', onData);
        proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`code-server exited (${code}):\n${log}`)); });
    });
    const stop = async () => {
        try { process.kill(-proc.pid, 'SIGTERM'); } catch { return; }
        const t = setTimeout(() => { try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ } }, 5000);
        await exited;
        clearTimeout(t);
        // The extension host and the cordon server it started are in the same group.
        try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* all gone */ }
    };
    return { url, stop, log: () => log };
}

test('code-server: run in the sandbox, review the diff, apply it', { timeout: 200000 }, async (t) => {
    const cordon = required('CORDON_BIN', process.env.CORDON_BIN, 'point it at build/bin/cordon');
    const vsix = required('CORDON_VSIX', process.env.CORDON_VSIX, 'package the extension (npm run package)');
    const codeServer = required('CODE_SERVER', process.env.CODE_SERVER || defaultCodeServer,
                                'run editors/vscode/scripts/setup-test-env');
    required('CHROMIUM', CHROMIUM, 'apt-get install chromium (scripts/setup-test-env)');
    const { chromium } = require('playwright-core');
    const artifacts = path.resolve(process.env.CORDON_TEST_ARTIFACTS || path.join(root, 'test-artifacts'));
    fs.mkdirSync(artifacts, { recursive: true });

    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cordon-e2e-'));
    t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
    const dirs = {
        workspace: path.join(tmp, 'workspace'), userData: path.join(tmp, 'user-data'),
        extensions: path.join(tmp, 'extensions'), state: path.join(tmp, 'state'), config: path.join(tmp, 'config.yaml'),
    };
    for (const d of [dirs.workspace, dirs.extensions, path.join(dirs.userData, 'User')]) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(dirs.config, 'auth: none\ncert: false\n');
    fs.writeFileSync(path.join(dirs.workspace, 'greeting.txt'), 'hello from the workspace\n');
    fs.writeFileSync(path.join(dirs.userData, 'User/settings.json'), JSON.stringify({
        'cordon.path': cordon,
        'cordon.stateDir': dirs.state,
        'workbench.startupEditor': 'none',
        'workbench.tips.enabled': false,
        'workbench.enableExperiments': false,
        'security.workspace.trust.enabled': false,
        'telemetry.telemetryLevel': 'off',
        'extensions.autoCheckUpdates': false,
        'extensions.autoUpdate': false,
        'extensions.ignoreRecommendations': true,
        'update.mode': 'none',
        'chat.commandCenter.enabled': false,
        'window.commandCenter': false,
        'diffEditor.renderSideBySide': true,
    }, null, 2));

    step('installing the .vsix');
    const inst = cp.spawnSync(codeServer, ['--config', dirs.config, '--user-data-dir', dirs.userData,
                                           '--extensions-dir', dirs.extensions, '--install-extension', vsix],
                              { encoding: 'utf8', timeout: 60000 });
    assert.equal(inst.status, 0, `--install-extension failed:\n${inst.stdout}\n${inst.stderr}`);
    assert.match(inst.stdout, /successfully installed/i);

    step('starting code-server');
    const server = await startCodeServer(codeServer, dirs);
    t.after(() => server.stop());
    step(`code-server at ${server.url}`);

    const browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        timeout: 30000,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
               '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    t.after(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.setDefaultTimeout(30000);
    const shot = (name) => page.screenshot({ path: path.join(artifacts, name) }).catch(() => undefined);

    /** Runs `fn` as a subtest; on failure keeps a screenshot and the code-server log. */
    let workbenchReady = false;
    const phase = (name, fn) => t.test(name, async () => {
        if (name !== 'workbench' && !workbenchReady) throw new Error('the workbench did not load (see above)');
        try {
            await fn();
        } catch (err) {
            const file = `vscode-failure-${name.replace(/[^a-z0-9]+/gi, '-')}.png`;
            await shot(file);
            step(`failed; screenshot ${path.join(artifacts, file)}; code-server log:\n${server.log().slice(-4000)}`);
            throw err;
        }
    });

    const statusItem = page.locator('.statusbar-item', { hasText: /cordon:/ });
    await phase('workbench', async () => {
        await page.goto(`${server.url}/?folder=${encodeURIComponent(dirs.workspace)}`, { timeout: 60000 });
        await page.locator('.monaco-workbench').waitFor({ timeout: 60000 });
        step('workbench loaded; waiting for the extension');
        await statusItem.filter({ hasText: /cordon: 0 changes/ }).waitFor({ timeout: 60000 });
        workbenchReady = true;
    });

    /** Runs a command from the command palette by its title. */
    const palette = async (title) => {
        await page.locator('.monaco-workbench').click({ position: { x: 700, y: 400 } }).catch(() => undefined);
        await page.keyboard.press('F1');
        const input = page.locator('.quick-input-widget .quick-input-box input');
        await input.waitFor({ state: 'visible' });
        await input.fill(`>${title}`);
        await page.locator('.quick-input-widget .monaco-list-row', { hasText: title }).first().waitFor();
        await page.keyboard.press('Enter');
    };
    /** Answers the quick input now open (an input box or a quick pick) with `text`. */
    const answer = async (text, rowText) => {
        const input = page.locator('.quick-input-widget .quick-input-box input');
        await input.waitFor({ state: 'visible' });
        await input.fill(text);
        if (rowText) await page.locator('.quick-input-widget .monaco-list-row', { hasText: rowText }).first().waitFor();
        await page.keyboard.press('Enter');
        await page.locator('.quick-input-widget').waitFor({ state: 'hidden' });
    };

    await phase('run, diff, apply', async () => {
        step('cordon: Run Command in Sandbox');
        await palette('cordon: Run Command in Sandbox');
        await answer("printf 'hello from the sandbox\\n' > greeting.txt; echo computed-in-sandbox-$((6*7))");
        // The output channel shows the streamed output and the result line.
        // (the command line is echoed too: only the command's own output says 42)
        await page.locator('.part.panel', { hasText: 'computed-in-sandbox-42' }).waitFor({ timeout: 30000 });
        await page.locator('.part.panel', { hasText: /\[exit\scode\s0,/ }).waitFor({ timeout: 30000 });
        assert.equal(fs.readFileSync(path.join(dirs.workspace, 'greeting.txt'), 'utf8'), 'hello from the workspace\n',
                     'the real file is untouched until applied');
        await statusItem.filter({ hasText: /cordon: 1 change\b/ }).waitFor({ timeout: 30000 });
        // The status bar item opens the "cordon changes" view, which lists it.
        await statusItem.click();
        const sidebar = page.locator('.part.sidebar');
        await sidebar.locator('.title', { hasText: /cordon/i }).first().waitFor({ timeout: 30000 });
        await sidebar.locator('.monaco-list-row', { hasText: /greeting\.txt\s*modified/ }).first().waitFor({ timeout: 30000 });

        step('cordon: Open Change');
        await palette('cordon: Open Change');
        await answer('greeting.txt', 'greeting.txt');
        const diff = page.locator('.monaco-diff-editor');
        await diff.waitFor({ timeout: 30000 });
        await diff.locator('.editor.original .view-lines', { hasText: /hello\sfrom\sthe\sworkspace/ }).waitFor();
        await diff.locator('.editor.modified .view-lines', { hasText: /hello\sfrom\sthe\ssandbox/ }).waitFor();
        await page.locator('.tab', { hasText: /greeting\.txt\s\(workspace\s↔\ssandbox\)/ }).first().waitFor();
        await page.waitForTimeout(500); // let the diff decorations paint
        await page.screenshot({ path: path.join(artifacts, 'vscode-diff.png') });
        step(`diff screenshot: ${path.join(artifacts, 'vscode-diff.png')}`);

        step('cordon: Apply Change (from the diff editor)');
        await palette('cordon: Apply Change');
        // With the diff active the change is known; otherwise a pick list asks which.
        const pick = page.locator('.quick-input-widget .quick-input-box input');
        if (await pick.isVisible().catch(() => false)) await answer('greeting.txt', 'greeting.txt');
        const deadline = Date.now() + 30000;
        let content;
        while (Date.now() < deadline) {
            content = fs.readFileSync(path.join(dirs.workspace, 'greeting.txt'), 'utf8');
            if (content === 'hello from the sandbox\n') break;
            await new Promise((r) => setTimeout(r, 200));
        }
        assert.equal(content, 'hello from the sandbox\n', 'the applied change reached the real file');
        await statusItem.filter({ hasText: /cordon: 0 changes/ }).waitFor({ timeout: 30000 });
        await page.locator('.notifications-toasts', { hasText: /applied greeting\.txt/ }).waitFor({ timeout: 15000 });
        await shot('vscode-applied.png');
    });

    await phase('approval modal', async () => {
        // A host server on 127.0.0.1: the sandbox reaches it only through the proxy, which
        // asks the editor; the modal names host and port; Allow Once lets this request through.
        const http = require('http');
        const hostServer = http.createServer((req, res) => res.end(`host says hi to ${req.url}`));
        await new Promise((r) => hostServer.listen(0, '127.0.0.1', r));
        t.after(() => new Promise((r) => hostServer.close(r)));
        const port = hostServer.address().port;
        await palette('cordon: Run Command in Sandbox');
        // NO_PROXY names the sandbox's own loopback; --noproxy '' sends this request to the proxy.
        await answer(`curl --noproxy '' -fsS -m 20 http://127.0.0.1:${port}/approved; r=$?; echo; echo curl-exit-$r`);
        const dialog = page.locator('.monaco-dialog-box');
        await dialog.filter({ hasText: new RegExp(`127\\.0\\.0\\.1:${port}`) }).waitFor({ timeout: 30000 });
        await shot('vscode-approval.png');
        await dialog.locator('.monaco-button', { hasText: 'Allow Once' }).click();
        await page.locator('.part.panel', { hasText: /host\ssays\shi\sto\s\/approved/ }).waitFor({ timeout: 30000 });
        await page.locator('.part.panel', { hasText: 'curl-exit-0' }).waitFor({ timeout: 30000 });
    });
});
