'use strict';
// A stub of the `vscode` module, just large enough to activate the compiled extension under
// plain Node and drive its commands. `install()` hooks Module._load so that `require('vscode')`
// from the extension returns the stub. The `ui` object scripts the user: queue answers for
// input boxes, quick picks and message boxes, and read back what was shown.

const Module = require('module');
const path = require('path');
const { EventEmitter: NodeEmitter } = require('events');

class Disposable {
    constructor(fn) { this._fn = fn; }
    static from(...ds) { return new Disposable(() => ds.forEach((d) => d.dispose())); }
    dispose() { if (this._fn) { const f = this._fn; this._fn = undefined; f(); } }
}

class EventEmitter {
    constructor() {
        this._listeners = new Set();
        this.event = (listener, thisArg, disposables) => {
            const l = thisArg ? listener.bind(thisArg) : listener;
            this._listeners.add(l);
            const d = new Disposable(() => this._listeners.delete(l));
            if (Array.isArray(disposables)) disposables.push(d);
            return d;
        };
    }
    fire(e) { for (const l of [...this._listeners]) l(e); }
    dispose() { this._listeners.clear(); }
}

class Uri {
    constructor(scheme, authority, p, query, fragment) {
        this.scheme = scheme; this.authority = authority || ''; this.path = p; this.query = query || '';
        this.fragment = fragment || '';
    }
    static file(p) { return new Uri('file', '', path.resolve(p)); }
    static parse(s) {
        const m = /^([a-z][\w+.-]*):(?:\/\/([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$/i.exec(s);
        if (!m) throw new Error(`bad uri ${s}`);
        return new Uri(m[1], m[2], decodeURIComponent(m[3]), m[4], m[5]);
    }
    get fsPath() { return this.path; }
    with(c) {
        return new Uri(c.scheme ?? this.scheme, c.authority ?? this.authority, c.path ?? this.path,
                       c.query ?? this.query, c.fragment ?? this.fragment);
    }
    toString() {
        return `${this.scheme}://${this.authority}${encodeURI(this.path)}${this.query ? `?${this.query}` : ''}` +
            `${this.fragment ? `#${this.fragment}` : ''}`;
    }
    toJSON() { return this.toString(); }
}

class CancellationTokenSource {
    constructor() {
        const em = new EventEmitter();
        this._em = em;
        this.token = { isCancellationRequested: false, onCancellationRequested: em.event };
    }
    cancel() { if (!this.token.isCancellationRequested) { this.token.isCancellationRequested = true; this._em.fire(); } }
    dispose() {}
}

class TreeItem {
    constructor(labelOrUri, collapsibleState) {
        if (labelOrUri instanceof Uri) this.resourceUri = labelOrUri; else this.label = labelOrUri;
        this.collapsibleState = collapsibleState ?? 0;
    }
}
class ThemeIcon { constructor(id, color) { this.id = id; this.color = color; } }
class ThemeColor { constructor(id) { this.id = id; } }
class LanguageModelTextPart { constructor(value) { this.value = value; } }
class LanguageModelToolResult { constructor(content) { this.content = content; } }

/** Creates a fresh stub and its scripted UI. */
function createStub({ workspaceFolders = [], settings = {} } = {}) {
    const ui = {
        output: '',                 // everything appended to any output channel
        outputShown: 0,
        messages: [],               // {level, message, options, items}
        answers: { input: [], quickPick: [], message: [] }, // queues; a function is called with the question
        diffs: [],                  // vscode.diff calls: {left, right, title}
        statusBar: undefined,
        treeViews: {},
        contentProviders: {},
        tools: {},
        commandsExecuted: [],
        events: new NodeEmitter(),
    };
    const take = (queue, question, fallback) => {
        if (!queue.length) return fallback;
        const a = queue.shift();
        return typeof a === 'function' ? a(question) : a;
    };
    const commands = new Map();
    const folders = workspaceFolders.map((p, index) => ({ uri: Uri.file(p), name: path.basename(p), index }));
    const config = (section) => ({
        get: (key, dflt) => {
            const full = `${section}.${key}`;
            return Object.prototype.hasOwnProperty.call(settings, full) ? settings[full] : dflt;
        },
        has: (key) => Object.prototype.hasOwnProperty.call(settings, `${section}.${key}`),
        update: async (key, value) => { settings[`${section}.${key}`] = value; },
    });
    const message = (level) => async (msg, ...rest) => {
        let options;
        if (rest.length && typeof rest[0] === 'object' && rest[0] !== null && !('title' in rest[0])) options = rest.shift();
        const items = rest;
        const entry = { level, message: msg, options, items };
        ui.messages.push(entry);
        ui.events.emit('message', entry);
        // Only modal questions consume scripted answers; toasts are dismissed (undefined).
        if (options && options.modal) return take(ui.answers.message, entry, undefined);
        return undefined;
    };

    const vscode = {
        Disposable, EventEmitter, Uri, CancellationTokenSource, TreeItem, ThemeIcon, ThemeColor,
        LanguageModelTextPart, LanguageModelToolResult,
        TreeItemCollapsibleState: { None: 0, Collapsed: 1, Expanded: 2 },
        StatusBarAlignment: { Left: 1, Right: 2 },
        ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
        version: '1.100.0',
        window: {
            createOutputChannel: (name) => ({
                name,
                append: (s) => { ui.output += s; ui.events.emit('output', s); },
                appendLine: (s) => { ui.output += `${s}\n`; ui.events.emit('output', `${s}\n`); },
                replace: (s) => { ui.output = s; },
                clear: () => {},
                show: () => { ui.outputShown++; },
                hide: () => {},
                dispose: () => {},
            }),
            createStatusBarItem: (id) => {
                const item = { id, text: '', tooltip: '', show() { this.visible = true; }, hide() { this.visible = false; },
                               dispose() {} };
                ui.statusBar = item;
                return item;
            },
            createTreeView: (id, opts) => {
                const view = { id, provider: opts.treeDataProvider, badge: undefined, message: undefined, dispose() {} };
                ui.treeViews[id] = view;
                return view;
            },
            showInputBox: async (opts) => take(ui.answers.input, opts, undefined),
            showQuickPick: async (items, opts) => {
                const list = await items;
                return take(ui.answers.quickPick, { items: list, options: opts }, undefined);
            },
            showInformationMessage: message('info'),
            showWarningMessage: message('warning'),
            showErrorMessage: message('error'),
            withProgress: async (_opts, task) => {
                const cts = new CancellationTokenSource();
                ui.progressToken = cts;
                return task({ report() {} }, cts.token);
            },
            activeTextEditor: undefined,
        },
        workspace: {
            workspaceFolders: folders,
            textDocuments: [],
            getConfiguration: (section) => config(section),
            getWorkspaceFolder: (uri) => folders.find((f) => {
                const r = path.relative(f.uri.fsPath, uri.fsPath);
                return uri.scheme === 'file' && !r.startsWith('..') && !path.isAbsolute(r);
            }),
            registerTextDocumentContentProvider: (scheme, provider) => {
                ui.contentProviders[scheme] = provider;
                return new Disposable(() => delete ui.contentProviders[scheme]);
            },
            onDidChangeWorkspaceFolders: new EventEmitter().event,
            onDidChangeConfiguration: new EventEmitter().event,
        },
        commands: {
            registerCommand: (id, fn) => {
                if (commands.has(id)) throw new Error(`command ${id} registered twice`);
                commands.set(id, fn);
                return new Disposable(() => commands.delete(id));
            },
            executeCommand: async (id, ...args) => {
                ui.commandsExecuted.push(id);
                if (id === 'vscode.diff') {
                    const [left, right, title] = args;
                    ui.diffs.push({ left, right, title });
                    return undefined;
                }
                const fn = commands.get(id);
                if (!fn) {
                    if (id.endsWith('.focus')) return undefined;
                    throw new Error(`command '${id}' not found`);
                }
                return fn(...args);
            },
            getCommands: async () => [...commands.keys()],
        },
        lm: {
            registerTool: (name, tool) => {
                ui.tools[name] = tool;
                return new Disposable(() => delete ui.tools[name]);
            },
        },
    };
    return { vscode, ui };
}

let current;
let hooked = false;

/** Makes `require('vscode')` return `stub.vscode` (the most recently installed stub). */
function install(stub) {
    current = stub;
    if (hooked) return;
    hooked = true;
    const load = Module._load;
    Module._load = function (request, parent, isMain) {
        if (request === 'vscode') {
            if (!current) throw new Error('no vscode stub installed');
            return current.vscode;
        }
        return load.call(this, request, parent, isMain);
    };
}

module.exports = { createStub, install, Uri, CancellationTokenSource };
