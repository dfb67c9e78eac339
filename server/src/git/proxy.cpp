#include "cordon/server/git/proxy.hpp"

#include "cordon/server/git/receive_pack.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <list>
#include <stdexcept>

namespace cordon::server::git {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using asio::ip::tcp;
namespace {
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
std::string lower(std::string_view s) {
    std::string o(s);
    for (auto& c : o)
        c = lower(c);
    return o;
}
bool ends_with(std::string_view s, std::string_view suf) {
    return s.size() >= suf.size() && s.substr(s.size() - suf.size()) == suf;
}

std::string gunzip(std::string_view in, std::size_t limit) {
    z_stream z{};
    if (inflateInit2(&z, 15 + 32) != Z_OK) throw std::runtime_error("zlib");
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    std::string out;
    char buf[65536];
    int rc = Z_OK;
    while (rc == Z_OK) {
        z.next_out = reinterpret_cast<Bytef*>(buf);
        z.avail_out = sizeof buf;
        rc = inflate(&z, Z_NO_FLUSH);
        out.append(buf, sizeof buf - z.avail_out);
        if (out.size() > limit) rc = Z_MEM_ERROR;
        if (rc == Z_BUF_ERROR && z.avail_in == 0) break;
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END) throw std::runtime_error("bad gzip request body");
    return out;
}

// Request headers passed upstream (everything else is dropped, Authorization and Cookie
// included).
bool forwarded_request_header(std::string_view name) {
    auto n = lower(name);
    return n == "user-agent" || n == "content-type" || n == "accept" || n == "accept-encoding" ||
           n == "accept-language" || n == "content-encoding" || n == "git-protocol" ||
           n == "pragma";
}
bool forwarded_response_header(std::string_view name) {
    auto n = lower(name);
    return !(n == "connection" || n == "keep-alive" || n == "transfer-encoding" ||
             n == "content-length" || n == "proxy-authenticate" || n == "set-cookie" ||
             n == "upgrade" || n == "trailer" || n == "te" || n == "strict-transport-security");
}

} // namespace

const char* to_string(GitService s) {
    return s == GitService::receive_pack ? "git-receive-pack" : "git-upload-pack";
}

std::map<std::string, std::string> git_env(const GitConfig& config, std::uint16_t port) {
    std::map<std::string, std::string> env;
    std::vector<std::string> origins;
    for (auto& r : config.remotes)
        if (std::find(origins.begin(), origins.end(), r.origin) == origins.end())
            origins.push_back(r.origin);
    std::size_t i = 0;
    const std::string base = "http://127.0.0.1:" + std::to_string(port) + "/";
    for (auto& o : origins) {
        env["GIT_CONFIG_KEY_" + std::to_string(i)] = "url." + base + o + "/.insteadOf";
        env["GIT_CONFIG_VALUE_" + std::to_string(i)] = "https://" + o + "/";
        ++i;
        if (o.find(':') == std::string::npos) { // https://host:443/ spelled out
            env["GIT_CONFIG_KEY_" + std::to_string(i)] = "url." + base + o + "/.insteadOf";
            env["GIT_CONFIG_VALUE_" + std::to_string(i)] = "https://" + o + ":443/";
            ++i;
        }
    }
    // The proxy is on the sandbox's own loopback: never send it through HTTP_PROXY.
    env["GIT_CONFIG_KEY_" + std::to_string(i)] = "http." + base + ".proxy";
    env["GIT_CONFIG_VALUE_" + std::to_string(i)] = "";
    ++i;
    env["GIT_CONFIG_COUNT"] = std::to_string(i);
    env["GIT_TERMINAL_PROMPT"] = "0";
    return env;
}

std::optional<GitRoute> route_request(const GitConfig& config, std::string_view method,
                                      std::string_view target, std::string* why) {
    auto refuse = [&](const char* w) -> std::optional<GitRoute> {
        if (why) *why = w;
        return std::nullopt;
    };
    if (target.empty() || target.front() != '/') return refuse("not an origin-form request");
    if (target.find('#') != std::string_view::npos) return refuse("fragment in request");
    auto q = target.find('?');
    std::string_view path = target.substr(0, q);
    std::string_view query = q == std::string_view::npos ? "" : target.substr(q + 1);
    path.remove_prefix(1);
    auto slash = path.find('/');
    if (slash == std::string_view::npos) return refuse("not a git smart-HTTP request");
    std::string origin = lower(path.substr(0, slash));
    std::string_view rest = path.substr(slash + 1);
    GitRoute r;
    std::string_view repo;
    if (ends_with(rest, "/info/refs")) {
        if (method != "GET") return refuse("info/refs needs GET");
        if (query == "service=git-upload-pack")
            r.service = GitService::upload_pack;
        else if (query == "service=git-receive-pack")
            r.service = GitService::receive_pack;
        else
            return refuse("not a git smart-HTTP request (dumb protocol or unknown service)");
        r.advertisement = true;
        repo = rest.substr(0, rest.size() - 10);
    } else if (ends_with(rest, "/git-upload-pack") || ends_with(rest, "/git-receive-pack")) {
        if (method != "POST") return refuse("git service needs POST");
        if (!query.empty()) return refuse("unexpected query");
        r.service = ends_with(rest, "/git-upload-pack") ? GitService::upload_pack
                                                        : GitService::receive_pack;
        repo = rest.substr(0, rest.rfind('/'));
    } else {
        return refuse("not a git smart-HTTP request");
    }
    auto key = canonical_repo_key(repo);
    if (!key) return refuse("repository path is not canonical");
    for (std::size_t i = 0; i < config.remotes.size(); ++i) {
        auto& rm = config.remotes[i];
        if (rm.origin != origin || rm.key != *key) continue;
        r.remote = i;
        r.upstream_target = "/" + rm.path;
        if (r.advertisement)
            r.upstream_target += std::string("/info/refs?service=") + to_string(r.service);
        else
            r.upstream_target += std::string("/") + to_string(r.service);
        return r;
    }
    return refuse("repository not configured");
}

struct GitProxy::State : std::enable_shared_from_this<GitProxy::State> {
    State(asio::any_io_executor ex, GitConfig c, GitProxyOptions o)
        : ex(ex), config(std::move(c)), opts(std::move(o)), tls(ssl::context::tls_client) {
        tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
        tls.set_default_verify_paths();
        if (!config.ca_file.empty()) tls.load_verify_file(config.ca_file);
        tls.set_verify_mode(ssl::verify_peer);
    }
    asio::any_io_executor ex;
    GitConfig config;
    GitProxyOptions opts;
    GitAskFn ask;
    GitReportFn log, violation;
    ssl::context tls;
    std::list<tcp::acceptor> acceptors;
    std::list<std::weak_ptr<beast::tcp_stream>> clients;
    std::map<std::size_t, Credential> credentials; // by remote index, read once
    bool started = false, stopped = false;
    std::size_t active = 0;

    void report(const json& j) {
        if (log) try {
                log(j);
            } catch (...) {
            }
    }
    void report_violation(const json& j) {
        if (violation) try {
                violation(j);
            } catch (...) {
            }
    }

    static asio::awaitable<void> accept_loop(std::shared_ptr<State> self, tcp::acceptor& acc) {
        for (;;) {
            auto [ec, sock] = co_await acc.async_accept(tuple_awaitable);
            if (self->stopped) co_return;
            if (ec) {
                if (ec == asio::error::operation_aborted) co_return;
                continue;
            }
            if (self->active >= self->opts.max_connections) continue; // closes sock
            self->clients.remove_if([](auto& w) { return w.expired(); });
            auto stream = std::make_shared<beast::tcp_stream>(std::move(sock));
            self->clients.push_back(stream);
            ++self->active;
            asio::co_spawn(self->ex, serve(self, stream), [self](std::exception_ptr e) {
                --self->active;
                if (e) try {
                        std::rethrow_exception(e);
                    } catch (const std::exception& x) {
                        spdlog::debug("git proxy connection: {}", x.what());
                    }
            });
        }
    }

    template <class Body>
    static asio::awaitable<void> send_simple(beast::tcp_stream& s, http::status st,
                                             const std::string& text, bool keep_alive) {
        http::response<http::string_body> res{st, 11};
        res.set(http::field::content_type, "text/plain; charset=utf-8");
        res.set(http::field::cache_control, "no-cache");
        res.keep_alive(keep_alive);
        res.body() = text;
        res.prepare_payload();
        s.expires_after(std::chrono::seconds(30));
        co_await http::async_write(s, res, tuple_awaitable);
    }

    static asio::awaitable<void> serve(std::shared_ptr<State> self,
                                       std::shared_ptr<beast::tcp_stream> client) {
        beast::flat_buffer buf;
        std::string local_base;
        {
            boost::system::error_code ec;
            auto le = client->socket().local_endpoint(ec);
            local_base = "http://127.0.0.1:" + std::to_string(ec ? 0 : le.port());
        }
        for (;;) {
            client->expires_after(self->opts.idle_timeout);
            http::request_parser<http::empty_body> hp;
            hp.header_limit(static_cast<std::uint32_t>(self->opts.max_header_bytes));
            auto [ec, n] = co_await http::async_read_header(*client, buf, hp, tuple_awaitable);
            if (ec || self->stopped) co_return;
            std::string method(hp.get().method_string());
            std::string target(hp.get().target());
            std::string why;
            auto route = route_request(self->config, method, target, &why);
            if (!route) {
                json v = {{"kind", "git"},    {"target", target.substr(0, target.find('?'))},
                          {"method", method}, {"decision", "denied"},
                          {"reason", why},    {"status", 403}};
                self->report(v);
                self->report_violation(v);
                co_await send_simple<void>(*client, http::status::forbidden,
                                           "cordon git proxy: " + why + "\n", false);
                co_return;
            }
            const bool keep_alive = hp.get().keep_alive();
            if (beast::iequals(hp.get()[http::field::expect], "100-continue")) {
                http::response<http::empty_body> cont{http::status::continue_, 11};
                auto [cec, cn] = co_await http::async_write(*client, cont, tuple_awaitable);
                if (cec) co_return;
            }
            http::request_parser<http::string_body> p{std::move(hp)};
            p.body_limit(route->service == GitService::receive_pack ? self->opts.max_push_bytes
                                                                    : self->opts.max_request_bytes);
            auto [rec, rn] = co_await http::async_read(*client, buf, p, tuple_awaitable);
            if (rec) {
                if (rec == http::error::body_limit)
                    co_await send_simple<void>(*client, http::status::payload_too_large,
                                               "cordon git proxy: request too large\n", false);
                co_return;
            }
            auto req = p.release();
            bool ok = co_await handle(self, *client, *route, req, keep_alive, local_base);
            if (!ok || !keep_alive) co_return;
        }
    }

    using Upstream = beast::ssl_stream<beast::tcp_stream>;

    // A verified TLS connection to the remote; nullptr and *err on failure.
    static asio::awaitable<std::unique_ptr<Upstream>>
    connect_upstream(std::shared_ptr<State> self, const Remote& remote, std::string& err) {
        auto up = std::make_unique<Upstream>(self->ex, self->tls);
        std::vector<tcp::endpoint> eps;
        try {
            if (self->opts.resolve) {
                eps = co_await self->opts.resolve(remote.host, remote.port);
            } else {
                tcp::resolver res(self->ex);
                auto [rec, results] = co_await res.async_resolve(
                    remote.host, std::to_string(remote.port), tuple_awaitable);
                if (rec) throw boost::system::system_error(rec);
                for (auto& e : results)
                    eps.push_back(e.endpoint());
            }
        } catch (const std::exception& e) {
            err = std::string("cannot resolve ") + remote.host + ": " + e.what();
            co_return nullptr;
        }
        beast::get_lowest_layer(*up).expires_after(self->opts.connect_timeout);
        auto [cec, ep] = co_await beast::get_lowest_layer(*up).async_connect(eps, tuple_awaitable);
        if (cec) {
            err = "cannot connect to " + remote.origin + ": " + cec.message();
            co_return nullptr;
        }
        boost::system::error_code aec;
        asio::ip::make_address(remote.host, aec);
        if (aec && !SSL_set_tlsext_host_name(up->native_handle(), remote.host.c_str())) {
            err = "SNI";
            co_return nullptr;
        }
        up->set_verify_mode(ssl::verify_peer);
        up->set_verify_callback(ssl::host_name_verification(remote.host));
        auto [hec] = co_await up->async_handshake(ssl::stream_base::client, tuple_awaitable);
        if (hec) {
            err = "TLS with " + remote.origin + " failed: " + hec.message();
            co_return nullptr;
        }
        co_return up;
    }

    // "Basic ..." for remote `i` (read once per proxy; never logged), or "" and *err.
    std::string authorization_for(std::size_t i, std::string& err) {
        try {
            auto it = credentials.find(i);
            if (it == credentials.end())
                it = credentials.emplace(i, resolve_credential(config.remotes[i])).first;
            return it->second.authorization();
        } catch (const std::exception& e) {
            err = e.what();
            return "";
        }
    }

    // The commits reachable from `wants` and not from `have`, asked of the remote with a
    // protocol v2 fetch (the proof of a fast-forward through commits the remote already
    // had). nullopt when the remote cannot answer.
    static asio::awaitable<std::optional<PackCommits>>
    fetch_ancestry(std::shared_ptr<State> self, std::size_t remote_index,
                   const std::vector<std::string>& wants, const std::string& have) {
        const Remote& remote = self->config.remotes[remote_index];
        std::string err;
        std::string authorization = self->authorization_for(remote_index, err);
        if (authorization.empty()) co_return std::nullopt;
        auto up = co_await connect_upstream(self, remote, err);
        if (!up) co_return std::nullopt;
        http::request<http::string_body> out{http::verb::post,
                                             "/" + remote.path + "/git-upload-pack", 11};
        out.set(http::field::host, remote.origin);
        out.set(http::field::user_agent, "cordon-git-proxy");
        out.set(http::field::content_type, "application/x-git-upload-pack-request");
        out.set(http::field::accept, "application/x-git-upload-pack-result");
        out.set("Git-Protocol", "version=2");
        out.set(http::field::authorization, authorization);
        out.keep_alive(false);
        out.body() = upload_pack_fetch_request(wants, have);
        out.prepare_payload();
        beast::get_lowest_layer(*up).expires_after(self->opts.idle_timeout);
        auto [wec, wn] = co_await http::async_write(*up, out, tuple_awaitable);
        if (wec) co_return std::nullopt;
        beast::flat_buffer buf;
        http::response_parser<http::string_body> p;
        p.body_limit(self->opts.max_ancestry_bytes);
        auto [rec, rn] = co_await http::async_read(*up, buf, p, tuple_awaitable);
        if (rec || p.get().result() != http::status::ok) co_return std::nullopt;
        std::optional<PackCommits> commits;
        try {
            commits = scan_pack(upload_pack_response_pack(p.get().body()));
        } catch (const std::exception& e) {
            spdlog::debug("git proxy: ancestry fetch from {}: {}", remote.origin, e.what());
        }
        beast::get_lowest_layer(*up).expires_after(std::chrono::seconds(2));
        co_await up->async_shutdown(tuple_awaitable);
        co_return commits;
    }

    // The push decision; true when the request may be forwarded. On refusal the client has
    // been answered.
    static asio::awaitable<bool> check_receive_pack(std::shared_ptr<State> self,
                                                    beast::tcp_stream& client,
                                                    std::size_t remote_index,
                                                    const http::request<http::string_body>& req,
                                                    json& record) {
        const Remote& remote = self->config.remotes[remote_index];
        std::string plain;
        std::string_view body = req.body();
        ReceivePackRequest rp;
        PackCommits pack;
        std::string error;
        try {
            auto enc = lower(std::string(req[http::field::content_encoding]));
            if (enc == "gzip" || enc == "x-gzip") {
                plain = gunzip(body, self->opts.max_push_bytes);
                body = plain;
            } else if (!enc.empty() && enc != "identity") {
                throw std::runtime_error("unsupported Content-Encoding " + enc);
            }
            rp = parse_receive_pack(body);
            pack = scan_pack(body.substr(rp.pack_offset));
        } catch (const std::exception& e) {
            error = e.what();
        }
        if (!error.empty()) {
            record["decision"] = "denied";
            record["reason"] = error;
            self->report(record);
            self->report_violation(record);
            co_await send_simple<void>(client, http::status::bad_request,
                                       "cordon git proxy: " + error + "\n", false);
            co_return false;
        }
        // Updates the pushed pack alone cannot prove fast-forward: ask the remote for the
        // ancestry of the commits where the walk left the pack.
        PackCommits known = pack;
        for (auto& u : rp.commands) {
            bool candidate = !u.is_create() && !u.is_delete() && !remote.push.allow_force &&
                             std::any_of(remote.push.refs.begin(), remote.push.refs.end(),
                                         [&](auto& p) { return ref_matches(p, u.ref); });
            if (!candidate || proven_fast_forward(known, u.old_id, u.new_id)) continue;
            auto fetched = co_await fetch_ancestry(self, remote_index,
                                                   pack_boundaries(known, u.new_id), u.old_id);
            if (fetched) known.commits.insert(fetched->commits.begin(), fetched->commits.end());
            record["ancestryFetched"] = fetched.has_value();
        }
        auto d = check_push(rp, known, remote.push);
        json refs = json::array();
        for (auto& r : d.refs) {
            json one = {{"ref", r.update.ref},
                        {"old", r.update.old_id},
                        {"new", r.update.new_id},
                        {"allowed", r.allowed}};
            if (!r.allowed) one["reason"] = r.reason;
            refs.push_back(std::move(one));
        }
        record["refs"] = refs;
        if (!rp.push_options.empty()) record["pushOptions"] = rp.push_options;
        if (d.allowed) {
            record["decision"] = "allowed";
            co_return true;
        }
        record["reason"] = d.summary;
        bool approved = false;
        if (self->ask) {
            json q = {{"kind", "git"},
                      {"repo", remote.url},
                      {"service", "git-receive-pack"},
                      {"reason", d.summary},
                      {"refs", refs}};
            json commits = json::array();
            for (auto& [id, c] : pack.commits) {
                if (commits.size() >= 50) break;
                json one = {{"id", id}, {"summary", c.summary}, {"author", c.author}};
                commits.push_back(std::move(one));
            }
            q["commits"] = commits;
            q["host"] = remote.host; // sandbox/approve names host and port
            q["port"] = remote.port;
            try {
                // A copy: the callback's captures must outlive the suspended call even if
                // stop() clears the member meanwhile.
                auto ask = self->ask;
                approved = co_await ask(std::move(q));
            } catch (...) {
                approved = false;
            }
        }
        if (self->stopped) co_return false; // the session ended while the user was asked
        if (approved) {
            record["decision"] = "approved";
            co_return true;
        }
        record["decision"] = "denied";
        self->report(record);
        self->report_violation(record);
        http::response<http::string_body> res{http::status::ok, 11};
        res.set(http::field::content_type, "application/x-git-receive-pack-result");
        res.set(http::field::cache_control, "no-cache");
        res.keep_alive(false);
        res.body() = report_status(rp, d, "cordon: push refused: " + d.summary);
        res.prepare_payload();
        client.expires_after(std::chrono::seconds(30));
        co_await http::async_write(client, res, tuple_awaitable);
        co_return false;
    }

    static asio::awaitable<bool> handle(std::shared_ptr<State> self, beast::tcp_stream& client,
                                        const GitRoute& route,
                                        http::request<http::string_body>& req, bool keep_alive,
                                        const std::string& local_base) {
        const Remote& remote = self->config.remotes[route.remote];
        json record = {{"kind", "git"},
                       {"repo", remote.url},
                       {"service", to_string(route.service)},
                       {"phase", route.advertisement ? "advertisement" : "request"}};
        if (route.service == GitService::receive_pack && !route.advertisement) {
            bool go = co_await check_receive_pack(self, client, route.remote, req, record);
            if (!go) co_return false;
        } else {
            record["decision"] = "allowed";
        }

        std::string err;
        std::string authorization = self->authorization_for(route.remote, err);
        std::unique_ptr<Upstream> upp;
        if (!authorization.empty())
            upp = co_await connect_upstream(self, remote, err);
        else
            err = "no credential: " + err;
        if (!upp) {
            record["decision"] = "error";
            record["reason"] = err;
            self->report(record);
            co_await send_simple<void>(client, http::status::bad_gateway,
                                       "cordon git proxy: " + err + "\n", false);
            co_return false;
        }
        auto& up = *upp;

        http::request<http::string_body> out{req.method(), route.upstream_target, 11};
        out.set(http::field::host, remote.origin);
        for (auto& f : req)
            if (forwarded_request_header(f.name_string())) out.set(f.name_string(), f.value());
        out.set(http::field::authorization, authorization);
        out.keep_alive(false);
        out.body() = std::move(req.body());
        if (req.method() == http::verb::post) out.prepare_payload();
        beast::get_lowest_layer(up).expires_after(self->opts.idle_timeout);
        auto [wec, wn] = co_await http::async_write(up, out, tuple_awaitable);
        authorization.assign(authorization.size(), '\0');
        out.set(http::field::authorization, "");
        if (wec) {
            record["decision"] = "error";
            record["reason"] = "upstream write: " + wec.message();
            self->report(record);
            co_return false;
        }

        beast::flat_buffer ubuf;
        http::response_parser<http::buffer_body> rp;
        rp.body_limit(boost::none);
        rp.header_limit(static_cast<std::uint32_t>(self->opts.max_header_bytes));
        auto [hec, hn] = co_await http::async_read_header(up, ubuf, rp, tuple_awaitable);
        if (hec) {
            record["decision"] = "error";
            record["reason"] = "upstream response: " + hec.message();
            self->report(record);
            co_await send_simple<void>(
                client, http::status::bad_gateway,
                "cordon git proxy: bad response from " + remote.origin + "\n", false);
            co_return false;
        }
        auto& uh = rp.get();
        record["status"] = uh.result_int();
        http::response<http::buffer_body> res{uh.result(), 11};
        for (auto& f : uh.base())
            if (forwarded_response_header(f.name_string())) res.insert(f.name_string(), f.value());
        if (uh.result_int() >= 300 && uh.result_int() < 400) {
            std::string loc(uh[http::field::location]);
            for (auto& rm : self->config.remotes) {
                std::string pre = "https://" + rm.origin + "/";
                if (lower(loc.substr(0, pre.size())) == pre) {
                    loc = local_base + "/" + rm.origin + "/" + loc.substr(pre.size());
                    break;
                }
            }
            if (!loc.empty() && loc.front() == '/') loc = local_base + "/" + remote.origin + loc;
            if (!loc.empty()) res.set(http::field::location, loc);
            record["redirect"] = loc;
        }
        if (auto cl = rp.content_length())
            res.content_length(*cl);
        else if (!rp.is_done())
            res.chunked(true);
        res.keep_alive(keep_alive);
        res.body().data = nullptr;
        res.body().more = !rp.is_done();
        http::response_serializer<http::buffer_body> sr{res};
        client.expires_after(self->opts.idle_timeout);
        auto [whc, whn] = co_await http::async_write_header(client, sr, tuple_awaitable);
        if (whc) co_return false;
        std::vector<char> chunk(self->opts.relay_buffer_bytes);
        std::uint64_t bytes = 0;
        bool failed = false;
        while (!sr.is_done()) {
            if (!rp.is_done()) {
                rp.get().body().data = chunk.data();
                rp.get().body().size = chunk.size();
                beast::get_lowest_layer(up).expires_after(self->opts.idle_timeout);
                auto [e, k] = co_await http::async_read(up, ubuf, rp, tuple_awaitable);
                if (e == http::error::need_buffer) e = {};
                if (e) {
                    failed = true;
                    break;
                }
                res.body().data = chunk.data();
                res.body().size = chunk.size() - rp.get().body().size;
                res.body().more = !rp.is_done();
            } else {
                res.body().data = nullptr;
                res.body().size = 0;
                res.body().more = false;
            }
            bytes += res.body().size;
            client.expires_after(self->opts.idle_timeout);
            auto [e, k] = co_await http::async_write(client, sr, tuple_awaitable);
            if (e == http::error::need_buffer) e = {};
            if (e) {
                failed = true;
                break;
            }
        }
        record["bytes"] = bytes;
        if (failed) record["error"] = "relay interrupted";
        self->report(record);
        beast::get_lowest_layer(up).expires_after(std::chrono::seconds(2));
        co_await up.async_shutdown(tuple_awaitable);
        co_return !failed;
    }
};

GitProxy::GitProxy(asio::any_io_executor ex, GitConfig config, GitProxyOptions options,
                   GitAskFn ask, GitReportFn log, GitReportFn violation)
    : state_(std::make_shared<State>(ex, std::move(config), std::move(options))) {
    state_->ask = std::move(ask);
    state_->log = std::move(log);
    state_->violation = std::move(violation);
}

GitProxy::~GitProxy() {
    stop();
}

std::uint16_t GitProxy::add_listener(int fd) {
    auto& acc = state_->acceptors.emplace_back(state_->ex);
    acc.assign(tcp::v4(), fd);
    boost::system::error_code ec;
    auto port = acc.local_endpoint(ec).port();
    if (state_->started)
        asio::co_spawn(state_->ex, State::accept_loop(state_, acc), asio::detached);
    return port;
}

void GitProxy::start() {
    if (state_->started) return;
    state_->started = true;
    for (auto& acc : state_->acceptors)
        asio::co_spawn(state_->ex, State::accept_loop(state_, acc), asio::detached);
}

void GitProxy::stop() {
    if (state_->stopped) return;
    state_->stopped = true;
    boost::system::error_code ec;
    for (auto& acc : state_->acceptors)
        acc.close(ec);
    for (auto& w : state_->clients)
        if (auto c = w.lock()) c->socket().close(ec);
    state_->clients.clear();
    for (auto& [i, c] : state_->credentials)
        c.password.assign(c.password.size(), '\0');
    state_->credentials.clear();
    // No callback into the owner after stop (connections still unwinding only log nothing).
    state_->ask = {};
    state_->log = {};
    state_->violation = {};
}

} // namespace cordon::server::git
