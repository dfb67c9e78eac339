// Neutralising terminal control sequences before text from the sandbox is shown
// (SECURITY-CASES TTY-04): a command's output, a violation's detail or an approval's host
// must not be able to move the cursor, erase what ran, write the clipboard (OSC 52), hide a
// link (OSC 8), or reorder text (bidi overrides). Every C0 control except LF and TAB, DEL and
// every C1 control becomes visible text, so what is displayed stands for the bytes that came.

const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function visible(ch: string): string {
    const c = ch.codePointAt(0)!;
    if (c === 0x1b) return '\u241b';                 // ␛ ESC
    if (c < 0x20) return String.fromCodePoint(0x2400 + c); // ␀..␟ control pictures
    if (c === 0x7f) return '\u2421';                 // ␡ DEL
    const hex = c.toString(16).toUpperCase();
    return c <= 0xff ? `\\x${hex}` : `<U+${hex.padStart(4, '0')}>`;
}

/** `text` with control characters replaced by visible stand-ins; CRLF becomes LF. */
export function neutralize(text: string): string {
    return text.replace(/\r\n/g, '\n').replace(CONTROL, visible);
}

/** For one-line contexts (messages, modal titles): newlines and tabs become visible too. */
export function neutralizeLine(text: string): string {
    return neutralize(text).replace(/\n/g, '\u2424').replace(/\t/g, '\u2409');
}

/**
 * One neutralised line for a `detail` from the server: a string as it is; an object as
 * `host:port: reason (rule R, via V)` with any other fields as `key=value`.
 */
export function describeDetail(detail: unknown): string {
    if (detail === undefined || detail === null) return '';
    if (typeof detail !== 'object') return neutralizeLine(String(detail));
    const o = { ...(detail as Record<string, unknown>) };
    const take = (k: string): string | undefined => {
        const v = o[k];
        delete o[k];
        return v === undefined || v === null || v === '' ? undefined : typeof v === 'string' ? v : JSON.stringify(v);
    };
    delete o['kind'];
    const host = take('host');
    const port = take('port');
    const reason = take('reason');
    const extras = [take('rule'), take('via')];
    const parts: string[] = [];
    if (host) parts.push(port ? `${host}:${port}` : host);
    if (reason) parts.push(reason);
    let line = parts.join(': ');
    const notes = [extras[0] ? `rule ${extras[0]}` : '', extras[1] ? `via ${extras[1]}` : '',
                   ...Object.entries(o).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)]
        .filter(Boolean);
    if (notes.length) line += `${line ? ' ' : ''}(${notes.join(', ')})`;
    return neutralizeLine(line);
}
