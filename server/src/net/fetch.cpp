#include "cordon/server/net/fetch.hpp"

#include "utf8.hpp"

#include "cordon/protocol/params.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <mutex>

namespace cordon::server::net {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using asio::ip::tcp;
using protocol::RpcError;
using Clock = std::chrono::steady_clock;

namespace {

bool token_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string lower(std::string s) {
    for (auto& c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string base64(std::string_view in) {
    static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        std::uint32_t v =
            (std::uint8_t(in[i]) << 16) | (std::uint8_t(in[i + 1]) << 8) | std::uint8_t(in[i + 2]);
        out += t[v >> 18];
        out += t[(v >> 12) & 63];
        out += t[(v >> 6) & 63];
        out += t[v & 63];
    }
    if (i + 1 == in.size()) {
        std::uint32_t v = std::uint8_t(in[i]) << 16;
        out += t[v >> 18];
        out += t[(v >> 12) & 63];
        out += "==";
    } else if (i + 2 == in.size()) {
        std::uint32_t v = (std::uint8_t(in[i]) << 16) | (std::uint8_t(in[i + 1]) << 8);
        out += t[v >> 18];
        out += t[(v >> 12) & 63];
        out += t[(v >> 6) & 63];
        out += '=';
    }
    return out;
}

struct Url {
    bool tls = false;
    HostPort hp;
    std::string path; // origin-form, starts with '/'
    std::string origin() const {
        return std::string(tls ? "https://" : "http://") + hp.host.authority(hp.port);
    }
    std::string text() const { return origin() + path; }
};

std::optional<Url> parse_url(std::string_view s, std::string& err) {
    Url u;
    auto starts = [&](std::string_view p) {
        return s.size() >= p.size() && beast::iequals(s.substr(0, p.size()), p);
    };
    if (starts("https://")) {
        u.tls = true;
        s.remove_prefix(8);
    } else if (starts("http://")) {
        s.remove_prefix(7);
    } else {
        err = "only http:// and https:// URLs are supported";
        return std::nullopt;
    }
    for (unsigned char c : s) {
        if (c <= 0x20 || c == 0x7f) {
            err = "control character or space in URL";
            return std::nullopt;
        }
    }
    auto end = s.find_first_of("/?#");
    auto authority = s.substr(0, end);
    std::string path(end == std::string_view::npos ? std::string_view("/") : s.substr(end));
    if (auto h = path.find('#'); h != std::string::npos) path.resize(h);
    if (path.empty() || path[0] != '/') path = "/" + path;
    if (authority.find('@') != std::string_view::npos) {
        err = "user information in URLs is not supported";
        return std::nullopt;
    }
    auto hp = parse_host_port(authority, u.tls ? 443 : 80, err);
    if (!hp) return std::nullopt;
    u.hp = std::move(*hp);
    u.path = std::move(path);
    return u;
}

std::optional<Url> resolve_location(const Url& base, std::string_view loc, std::string& err) {
    if (loc.size() >= 7 && (beast::iequals(loc.substr(0, 7), "http://") ||
                            (loc.size() >= 8 && beast::iequals(loc.substr(0, 8), "https://"))))
        return parse_url(loc, err);
    if (loc.starts_with("//"))
        return parse_url(std::string(base.tls ? "https:" : "http:") + std::string(loc), err);
    if (loc.find("://") != std::string_view::npos) {
        err = "redirect to an unsupported scheme";
        return std::nullopt;
    }
    std::string path;
    if (loc.starts_with("/")) {
        path = std::string(loc);
    } else {
        std::string dir = base.path.substr(0, base.path.find('?'));
        dir = dir.substr(0, dir.rfind('/') + 1);
        path = dir + std::string(loc);
    }
    return parse_url(base.origin() + path, err);
}

std::shared_ptr<ssl::context> tls_context(const std::string& extra_ca) {
    static std::mutex m;
    static std::map<std::string, std::shared_ptr<ssl::context>> cache;
    std::lock_guard lk(m);
    if (auto it = cache.find(extra_ca); it != cache.end()) return it->second;
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    ctx->set_default_verify_paths();
    if (!extra_ca.empty()) ctx->load_verify_file(extra_ca);
    ctx->set_verify_mode(ssl::verify_peer);
    cache[extra_ca] = ctx;
    return ctx;
}

struct Hop {
    int status = 0;
    json headers = json::object();
    std::string location;
    std::string body;
    bool truncated = false;
    std::uint64_t bytes_up = 0;
};

template <class Stream>
asio::awaitable<Hop> exchange(Stream& s, http::request<http::string_body>& req,
                              std::uint64_t max_bytes, std::size_t header_limit,
                              bool read_body_of_redirect) {
    Hop hop;
    auto [wec, wn] = co_await http::async_write(s, req, asio::as_tuple(asio::use_awaitable));
    if (wec) throw boost::system::system_error(wec, "sending the request");
    hop.bytes_up = wn;
    beast::flat_buffer buf;
    std::optional<http::response_parser<http::buffer_body>> p;
    for (;;) {
        p.emplace();
        p->header_limit(static_cast<std::uint32_t>(header_limit));
        p->body_limit(boost::none);
        if (req.method() == http::verb::head) p->skip(true);
        auto [ec, n] =
            co_await http::async_read_header(s, buf, *p, asio::as_tuple(asio::use_awaitable));
        if (ec) throw boost::system::system_error(ec, "reading the response");
        int st = p->get().result_int();
        if (st >= 100 && st < 200 && st != 101) continue;
        break;
    }
    auto& res = p->get();
    hop.status = res.result_int();
    for (auto& f : res) {
        std::string name = lower(std::string(f.name_string()));
        std::string value(f.value());
        if (!valid_utf8(value)) value = base64(value);
        if (hop.headers.contains(name))
            hop.headers[name] = hop.headers[name].get<std::string>() + ", " + value;
        else
            hop.headers[name] = value;
    }
    if (auto it = res.find(http::field::location); it != res.end())
        hop.location = std::string(it->value());
    bool redirect =
        !hop.location.empty() && (hop.status == 301 || hop.status == 302 || hop.status == 303 ||
                                  hop.status == 307 || hop.status == 308);
    if (redirect && !read_body_of_redirect) co_return hop;
    std::vector<char> chunk(64 * 1024);
    while (!p->is_done()) {
        res.body().data = chunk.data();
        res.body().size = chunk.size();
        auto [ec, n] = co_await http::async_read(s, buf, *p, asio::as_tuple(asio::use_awaitable));
        if (ec == http::error::need_buffer) ec = {};
        if (ec) throw boost::system::system_error(ec, "reading the response body");
        std::size_t got = chunk.size() - res.body().size;
        if (hop.body.size() + got > max_bytes) {
            hop.body.append(chunk.data(), max_bytes - hop.body.size());
            hop.truncated = true;
            break;
        }
        hop.body.append(chunk.data(), got);
    }
    co_return hop;
}

[[noreturn]] void fetch_failed(const std::string& url, const std::string& reason) {
    json data;
    data["url"] = url;
    data["reason"] = reason;
    throw RpcError(protocol::code::internal_error, "fetch failed: " + reason, data);
}

} // namespace

FetchRequest parse_fetch_request(const json& params) {
    protocol::ParamReader r(params);
    FetchRequest f;
    f.url = r.required<std::string>("url");
    std::string err;
    if (!parse_url(f.url, err)) throw protocol::invalid_params("/url", err);
    f.method = r.value_or<std::string>("method", "GET");
    if (f.method.empty() || f.method.size() > 32)
        throw protocol::invalid_params("/method", "invalid method");
    for (char c : f.method)
        if (!token_char(c)) throw protocol::invalid_params("/method", "invalid method");
    for (auto& c : f.method)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (f.method == "CONNECT" || f.method == "TRACE")
        throw protocol::invalid_params("/method", f.method + " is not allowed");
    auto headers = r.value_or<std::map<std::string, std::string>>("headers", {});
    for (auto& [k, v] : headers) {
        if (k.empty()) throw protocol::invalid_params("/headers", "empty header name");
        for (char c : k)
            if (!token_char(c))
                throw protocol::invalid_params("/headers/" + k, "invalid header name");
        for (unsigned char c : v)
            if (c == '\r' || c == '\n' || c == 0)
                throw protocol::invalid_params("/headers/" + k, "invalid header value");
        f.headers.emplace_back(k, v);
    }
    f.body = r.optional<std::string>("body");
    f.max_bytes = r.value_or<std::uint64_t>("maxBytes", f.max_bytes);
    f.timeout_ms = r.value_or<std::uint64_t>("timeoutMs", f.timeout_ms);
    if (f.timeout_ms == 0) throw protocol::invalid_params("/timeoutMs", "must be positive");
    f.format = r.value_or<std::string>("format", "");
    if (!f.format.empty() && f.format != "text" && f.format != "raw")
        throw protocol::invalid_params("/format", "must be \"text\" or \"raw\"");
    if (f.format == "raw") f.format.clear();
    return f;
}

asio::awaitable<json> fetch(const FetchRequest& in, EgressGate& gate, const FetchOptions& opts) {
    std::string err;
    auto url = parse_url(in.url, err);
    if (!url) throw protocol::invalid_params("/url", err);
    auto ex = gate.get_executor();
    const auto deadline =
        Clock::now() + std::chrono::milliseconds(std::min(in.timeout_ms, opts.max_timeout_ms));
    const std::uint64_t max_bytes = std::min(in.max_bytes, opts.max_bytes_cap);
    std::string method = in.method;
    std::optional<std::string> body = in.body;
    auto headers = in.headers;
    const std::string first_origin = url->origin();
    int redirects = 0;

    for (;;) {
        auto hop_start = Clock::now();
        RequestRecord rec;
        rec.via = "fetch";
        rec.method = method;
        rec.host = url->hp.host.name;
        rec.port = url->hp.port;
        rec.target = url->path.size() > 2048 ? url->path.substr(0, 2048) : url->path;
        auto log = [&]() {
            rec.duration_ms = static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - hop_start)
                    .count());
            if (opts.log) opts.log(rec);
        };

        auto denied = [&](const Authorization& auth) {
            rec.reason = auth.reason;
            log();
            if (auth.failed) fetch_failed(url->text(), auth.reason);
            json data;
            data["host"] = url->hp.host.name;
            data["port"] = url->hp.port;
            data["reason"] = auth.reason;
            data["rule"] = auth.rule;
            if (auth.address) data["address"] = *auth.address;
            throw RpcError(protocol::code::policy_denied,
                           "denied by policy: " + url->hp.host.authority(url->hp.port), data);
        };
        const RequestLine line{method, url->path};
        std::string content_type;
        for (auto& [k, v] : headers)
            if (beast::iequals(k, "content-type")) content_type = v;
        if (is_git_push_request(url->path, content_type))
            denied(gate.refuse(url->hp.host, url->hp.port, "fetch", kGitPushRefusal, "",
                               std::nullopt, "policy"));
        Authorization auth = co_await gate.authorize(url->hp.host, url->hp.port, "fetch", &line);
        rec.decision = auth.decision;
        if (!auth.allowed) denied(auth);
        rec.allowed = true;

        http::request<http::string_body> req;
        if (auto v = http::string_to_verb(method); v != http::verb::unknown)
            req.method(v);
        else
            req.method_string(method);
        req.target(url->path);
        req.version(11);
        bool has_ua = false;
        for (auto& [k, v] : headers) {
            static const char* skip[] = {
                "host",  "connection", "content-length", "transfer-encoding", "keep-alive",
                "te",    "trailer",    "upgrade",        "proxy-connection",  "proxy-authorization",
                "expect"};
            bool skipped = false;
            for (auto* s : skip)
                skipped = skipped || beast::iequals(k, s);
            if (skipped) continue;
            if (beast::iequals(k, "user-agent")) has_ua = true;
            req.insert(k, v);
        }
        req.set(http::field::host,
                url->hp.host.url_host() + ((url->hp.port == (url->tls ? 443 : 80))
                                               ? ""
                                               : ":" + std::to_string(url->hp.port)));
        if (!has_ua) req.set(http::field::user_agent, "cordon-fetch/0.1");
        req.set(http::field::connection, "close");
        if (body) req.body() = *body;
        req.prepare_payload();
        // What this hop sends out is charged to the session's egress budget.
        std::size_t egress = method.size() + url->path.size() + 12 + req.body().size();
        for (auto& f : req)
            egress += f.name_string().size() + f.value().size() + 4;
        if (!gate.egress_budget()->charge(egress))
            denied(gate.refuse_egress(url->hp.host, url->hp.port, "fetch"));

        Hop hop;
        try {
            beast::tcp_stream tcp(ex);
            tcp.expires_at(deadline);
            auto [cec, ep] =
                co_await tcp.async_connect(auth.endpoints, asio::as_tuple(asio::use_awaitable));
            if (cec) {
                rec.reason = cec == beast::error::timeout ? "timeout" : cec.message();
                log();
                fetch_failed(url->text(), "cannot connect to " +
                                              url->hp.host.authority(url->hp.port) + ": " +
                                              rec.reason);
            }
            rec.address = ep.address().to_string();
            bool follow = redirects < opts.max_redirects;
            if (url->tls) {
                auto ctx = tls_context(opts.extra_ca_file);
                beast::ssl_stream<beast::tcp_stream> s(std::move(tcp), *ctx);
                if (!url->hp.host.is_ip() &&
                    !SSL_set_tlsext_host_name(s.native_handle(), url->hp.host.name.c_str()))
                    fetch_failed(url->text(), "cannot set TLS SNI");
                s.set_verify_mode(ssl::verify_peer);
                s.set_verify_callback(ssl::host_name_verification(url->hp.host.name));
                auto [hec] = co_await s.async_handshake(ssl::stream_base::client,
                                                        asio::as_tuple(asio::use_awaitable));
                if (hec) {
                    rec.reason = "TLS handshake failed: " + hec.message();
                    log();
                    fetch_failed(url->text(), "TLS handshake with " + url->hp.host.name +
                                                  " failed: " + hec.message());
                }
                hop = co_await exchange(s, req, max_bytes, opts.max_header_bytes, !follow);
            } else {
                hop = co_await exchange(tcp, req, max_bytes, opts.max_header_bytes, !follow);
            }
        } catch (const boost::system::system_error& e) {
            bool timeout = e.code() == beast::error::timeout || Clock::now() >= deadline;
            rec.reason = timeout ? "timeout" : e.what();
            log();
            fetch_failed(url->text(),
                         timeout ? "timed out after " + std::to_string(in.timeout_ms) + " ms"
                                 : std::string(e.what()));
        }
        rec.status = hop.status;
        rec.bytes_up = hop.bytes_up;
        rec.bytes_down = hop.body.size();

        bool is_redirect =
            !hop.location.empty() && (hop.status == 301 || hop.status == 302 || hop.status == 303 ||
                                      hop.status == 307 || hop.status == 308);
        if (is_redirect && redirects < opts.max_redirects) {
            log();
            auto next = resolve_location(*url, hop.location, err);
            if (!next) fetch_failed(url->text(), "invalid redirect location: " + err);
            ++redirects;
            if (hop.status == 303 ||
                ((hop.status == 301 || hop.status == 302) && method == "POST")) {
                if (method != "HEAD") method = "GET";
                body.reset();
            }
            if (next->origin() != url->origin()) {
                std::erase_if(headers, [](auto& h) {
                    return beast::iequals(h.first, "authorization") ||
                           beast::iequals(h.first, "cookie") ||
                           beast::iequals(h.first, "proxy-authorization");
                });
            }
            url = std::move(next);
            continue;
        }
        log();

        json out;
        out["status"] = hop.status;
        out["headers"] = std::move(hop.headers);
        out["truncated"] = hop.truncated;
        out["url"] = url->text();
        out["redirects"] = redirects;
        std::string text = std::move(hop.body);
        if (hop.truncated && !valid_utf8(text)) {
            // Do not let the cut split a UTF-8 sequence.
            for (std::size_t k = 1; k <= 3 && k <= text.size(); ++k) {
                if (valid_utf8(std::string_view(text).substr(0, text.size() - k))) {
                    text.resize(text.size() - k);
                    break;
                }
            }
        }
        if (valid_utf8(text)) {
            bool html = false;
            if (out["headers"].contains("content-type"))
                html = lower(out["headers"]["content-type"].get<std::string>()).find("html") !=
                       std::string::npos;
            if (in.format == "text" && html) text = html_to_text(text);
            out["body"] = std::move(text);
            out["encoding"] = "utf-8";
        } else {
            out["body"] = base64(text);
            out["encoding"] = "base64";
        }
        co_return out;
    }
}

// --- HTML to text ------------------------------------------------------------------------

namespace {

void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) cp = 0xfffd;
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xc0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xe0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
        out += static_cast<char>(0xf0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    }
}

bool is_block(std::string_view t) {
    static const char* blocks[] = {"p",     "div",   "br",         "li",      "ul",     "ol",
                                   "h1",    "h2",    "h3",         "h4",      "h5",     "h6",
                                   "tr",    "table", "section",    "article", "header", "footer",
                                   "nav",   "pre",   "blockquote", "hr",      "title",  "main",
                                   "aside", "dt",    "dd",         "dl",      "figure", "form"};
    for (auto* b : blocks)
        if (t == b) return true;
    return false;
}

} // namespace

std::string html_to_text(std::string_view h) {
    std::string raw;
    raw.reserve(h.size());
    std::size_t i = 0;
    while (i < h.size()) {
        char c = h[i];
        if (c == '<') {
            if (h.substr(i, 4) == "<!--") {
                auto e = h.find("-->", i + 4);
                i = e == std::string_view::npos ? h.size() : e + 3;
                continue;
            }
            auto e = h.find('>', i);
            if (e == std::string_view::npos) break;
            std::string_view tag = h.substr(i + 1, e - i - 1);
            bool closing = !tag.empty() && tag[0] == '/';
            if (closing) tag.remove_prefix(1);
            std::size_t n = 0;
            while (n < tag.size() && std::isalnum(static_cast<unsigned char>(tag[n])))
                ++n;
            std::string name = lower(std::string(tag.substr(0, n)));
            i = e + 1;
            if (!closing && (name == "script" || name == "style" || name == "noscript" ||
                             name == "template" || name == "svg")) {
                std::string close = "</" + name;
                std::size_t k = i;
                for (;;) {
                    k = h.find("</", k);
                    if (k == std::string_view::npos) {
                        i = h.size();
                        break;
                    }
                    if (lower(std::string(h.substr(k, close.size()))) == close) {
                        auto ce = h.find('>', k);
                        i = ce == std::string_view::npos ? h.size() : ce + 1;
                        break;
                    }
                    k += 2;
                }
                continue;
            }
            if (name == "li" && !closing)
                raw += "\n- ";
            else if (is_block(name))
                raw += '\n';
            else if (name == "td" || name == "th")
                raw += '\t';
            continue;
        }
        if (c == '&') {
            auto e = h.find(';', i);
            if (e != std::string_view::npos && e - i <= 10) {
                std::string ent(h.substr(i + 1, e - i - 1));
                std::optional<std::uint32_t> cp;
                if (ent == "amp")
                    cp = '&';
                else if (ent == "lt")
                    cp = '<';
                else if (ent == "gt")
                    cp = '>';
                else if (ent == "quot")
                    cp = '"';
                else if (ent == "apos")
                    cp = '\'';
                else if (ent == "nbsp")
                    cp = ' ';
                else if (ent.size() > 1 && ent[0] == '#') {
                    try {
                        cp =
                            (ent[1] == 'x' || ent[1] == 'X')
                                ? static_cast<std::uint32_t>(std::stoul(ent.substr(2), nullptr, 16))
                                : static_cast<std::uint32_t>(std::stoul(ent.substr(1)));
                    } catch (...) {
                    }
                }
                if (cp) {
                    append_utf8(raw, *cp);
                    i = e + 1;
                    continue;
                }
            }
        }
        raw += c;
        ++i;
    }
    // Collapse whitespace: runs of spaces within lines, no empty lines.
    std::string out;
    std::string line;
    auto flush = [&]() {
        while (!line.empty() && line.back() == ' ')
            line.pop_back();
        if (!line.empty()) {
            out += line;
            out += '\n';
        }
        line.clear();
    };
    for (char c : raw) {
        if (c == '\n') {
            flush();
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f') {
            if (!line.empty() && line.back() != ' ') line += ' ';
        } else {
            line += c;
        }
    }
    flush();
    while (!out.empty() && (out.back() == '\n'))
        out.pop_back();
    return out;
}

} // namespace cordon::server::net
