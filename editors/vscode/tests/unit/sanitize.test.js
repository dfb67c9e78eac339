'use strict';
// TTY-04: text from the sandbox is shown with every control character made visible.

const test = require('node:test');
const assert = require('node:assert/strict');
const { describeDetail, neutralize, neutralizeLine } = require('../../out/src/sanitize.js');

test('escape sequences become visible text', () => {
    assert.equal(neutralize('\x1b]52;c;SGVsbG8=\x07'), '␛]52;c;SGVsbG8=␇');          // OSC 52 clipboard write
    assert.equal(neutralize('\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\'),
                 '␛]8;;http://evil␛\\link␛]8;;␛\\');                                // OSC 8 hidden link
    assert.equal(neutralize('rm -rf ~\r\x1b[2K\x1b[1Aecho safe'), 'rm -rf ~␍␛[2K␛[1Aecho safe'); // erase tricks
    assert.equal(neutralize('\x1b[6n'), '␛[6n');                                     // DSR query
    assert.equal(neutralize('a\x00b\x7fc'), 'a␀b␡c');
});

test('C1 controls and bidi overrides are shown as code points', () => {
    assert.equal(neutralize('\u009b2J'), '\\x9B2J');                                 // 8-bit CSI
    assert.equal(neutralize('\u009d52;c;x\u009c'), '\\x9D52;c;x\\x9C');             // 8-bit OSC / ST
    assert.equal(neutralize('abc\u202edef'), 'abc<U+202E>def');
    assert.equal(neutralize('\u2066x\u2069'), '<U+2066>x<U+2069>');
});

test('ordinary text, newlines, tabs and non-ASCII pass unchanged; CRLF becomes LF', () => {
    assert.equal(neutralize('line 1\n\tline 2 — é 日本\n'), 'line 1\n\tline 2 — é 日本\n');
    assert.equal(neutralize('a\r\nb\r\n'), 'a\nb\n');
});

test('one-line form makes newlines and tabs visible too', () => {
    assert.equal(neutralizeLine('evil.com\nAllow?\t'), 'evil.com␤Allow?␉');
});

test('a detail object from the server reads as one line', () => {
    assert.equal(describeDetail({ kind: 'network', host: 'evil.example', port: 443, reason: 'denied by policy',
                                  rule: 'evil.example', via: 'connect' }),
                 'evil.example:443: denied by policy (rule evil.example, via connect)');
    assert.equal(describeDetail({ via: 'http', reason: 'not in the allow list' }), 'not in the allow list (via http)');
    assert.equal(describeDetail('plain\x1b[31m text'), 'plain␛[31m text');
    assert.equal(describeDetail({ host: 'a\nb', extra: { n: 1 } }), 'a␤b (extra={"n":1})');
    assert.equal(describeDetail(undefined), '');
});
