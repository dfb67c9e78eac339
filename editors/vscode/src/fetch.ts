// `fetch`: an HTTP request made by the server through the session's network policy.

import * as rpc from 'vscode-jsonrpc/node';

export interface FetchParams {
    sessionId: string;
    url: string;
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    maxBytes?: number;
    timeoutMs?: number;
}
export interface FetchResult {
    status: number;
    headers: Record<string, string | string[]>;
    body: string;
    encoding: 'utf-8' | 'base64';
    truncated: boolean;
}

export const FetchRequest = new rpc.RequestType<FetchParams, FetchResult, void>('fetch');
