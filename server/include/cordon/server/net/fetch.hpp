// The `fetch` tool (PROTOCOL.md): one HTTP(S) request made by the server on the agent's
// behalf, through the same EgressGate as the sandbox's proxy.
//
//   fetch {url, method?, headers?, body?, maxBytes?, timeoutMs?, format?}
//     -> {status, headers, body, encoding:"utf-8"|"base64", truncated, url, redirects}
//
// - http:// and https:// only. TLS is verified against the system trust store (OpenSSL
//   default paths) plus FetchOptions::extra_ca_file, with SNI and host name verification
//   (IP SANs for IP literals).
// - Every hop, redirects included (at most 5), goes through gate.authorize: a denied host
//   throws RpcError -32003 with data {host, port, reason, rule, address?}; the gate has
//   already reported the violation. Cross-origin redirects drop Authorization, Cookie and
//   Proxy-Authorization; 303 (and 301/302 after POST) continue as GET without body.
// - The body is read up to maxBytes (default 1 MiB, capped by FetchOptions::max_bytes_cap);
//   more sets `truncated`. Valid UTF-8 -> encoding "utf-8", else "base64". Response header
//   names are lower case; repeated headers are joined with ", ".
// - timeoutMs (default 30000) bounds the whole call, redirects included.
// - format:"text": an HTML body is turned into readable plain text (scripts and styles
//   dropped, block elements on their own lines, entities decoded).
// - Network failures (no route, refused, TLS verification, timeout) throw RpcError -32603
//   "fetch failed: ..." with data {url, reason}.
//
// Thread-safety: runs on the gate's executor.
#pragma once

#include "cordon/server/net/egress.hpp"

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cordon::server::net {

struct FetchRequest {
    std::string url;
    std::string method = "GET";
    std::vector<std::pair<std::string, std::string>> headers;
    std::optional<std::string> body;
    std::uint64_t max_bytes = 1u << 20;
    std::uint64_t timeout_ms = 30000;
    std::string format; // "" (raw) or "text"
};

// Reads fetch params (sessionId is ignored here); throws RpcError -32602 naming the field.
FetchRequest parse_fetch_request(const json& params);

struct FetchOptions {
    std::string extra_ca_file; // PEM CA bundle trusted in addition to the system's
    int max_redirects = 5;
    std::uint64_t max_bytes_cap = 64u << 20; // maxBytes is clamped to this
    std::uint64_t max_timeout_ms = 600000;   // timeoutMs is clamped to this
    std::size_t max_header_bytes = 64 * 1024;
    RequestLogFn log; // one record per hop
};

asio::awaitable<json> fetch(const FetchRequest& req, EgressGate& gate,
                            const FetchOptions& opts = {});

// The text of an HTML document (format:"text"). Pure.
std::string html_to_text(std::string_view html);

} // namespace cordon::server::net
