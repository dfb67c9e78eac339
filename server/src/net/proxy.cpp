#include "cordon/server/net/proxy.hpp"

#include "bulk_relay.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <limits>
#include <list>

namespace cordon::server::net {

namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

std::map<std::string, std::string> proxy_env(std::uint16_t http_port, std::uint16_t socks_port) {
    std::map<std::string, std::string> env;
    if (http_port) {
        std::string url = "http://127.0.0.1:" + std::to_string(http_port);
        for (const char* k : {"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"})
            env[k] = url;
    }
    if (socks_port) {
        std::string url = "socks5h://127.0.0.1:" + std::to_string(socks_port);
        for (const char* k : {"ALL_PROXY", "all_proxy"})
            env[k] = url;
    }
    for (const char* k : {"NO_PROXY", "no_proxy"})
        env[k] = "localhost,127.0.0.1,::1";
    return env;
}

namespace {

// One client connection, its destination socket and its deadline watchdog.
struct Conn {
    Conn(tcp::socket s, const asio::any_io_executor& ex)
        : client(std::move(s)), upstream(ex), watchdog(ex) {}
    tcp::socket client;
    tcp::socket upstream;
    asio::steady_timer watchdog;
    Clock::time_point deadline = Clock::time_point::max();
    Clock::duration idle{};
    bool idle_mode = false; // deadline moves with activity
    bool closed = false;
    // Time of the last relayed bytes (steady_clock ticks); bulk relay threads write it too.
    std::shared_ptr<std::atomic<std::int64_t>> activity =
        std::make_shared<std::atomic<std::int64_t>>(0);

    void set_deadline(Clock::duration d) {
        idle_mode = false;
        deadline = Clock::now() + d;
        watchdog.cancel(); // re-arm
    }
    void set_idle(Clock::duration d) {
        idle_mode = true;
        idle = d;
        deadline = Clock::now() + d;
        watchdog.cancel();
    }
    void no_deadline() {
        idle_mode = false;
        deadline = Clock::time_point::max();
        watchdog.cancel();
    }
    // Records activity; the watchdog moves an idle deadline when it wakes up.
    void touch() {
        activity->store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    }
    // The deadline, moved by the activity recorded since it was set (idle mode).
    Clock::time_point effective_deadline() const {
        if (!idle_mode) return deadline;
        Clock::time_point last{Clock::duration(activity->load(std::memory_order_relaxed))};
        return std::max(deadline, last + idle);
    }
    // Shuts both sockets down before closing them: that also wakes a bulk relay thread
    // working on duplicates of their descriptors.
    void close() {
        if (closed) return;
        closed = true;
        boost::system::error_code ec;
        client.shutdown(tcp::socket::shutdown_both, ec);
        upstream.shutdown(tcp::socket::shutdown_both, ec);
        client.close(ec);
        upstream.close(ec);
        watchdog.cancel();
    }
};

std::string sanitize_header_value(std::string s) {
    for (auto& c : s)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    if (s.size() > 300) s.resize(300);
    return s;
}

bool iequals(std::string_view a, std::string_view b) {
    return beast::iequals(a, b);
}

void remove_hop_by_hop(http::fields& f) {
    // Headers named in Connection are hop-by-hop too.
    std::vector<std::string> named;
    for (auto it = f.find(http::field::connection);
         it != f.end() && it->name() == http::field::connection; ++it) {
        for (auto tok : http::token_list(it->value()))
            named.emplace_back(tok);
    }
    for (auto& n : named) {
        if (iequals(n, "transfer-encoding") || iequals(n, "content-length")) continue;
        f.erase(n);
    }
    for (auto name :
         {http::field::connection, http::field::keep_alive, http::field::proxy_connection,
          http::field::proxy_authorization, http::field::proxy_authenticate, http::field::te,
          http::field::trailer, http::field::upgrade})
        f.erase(name);
}

} // namespace

struct ProxyServer::State : std::enable_shared_from_this<State> {
    State(asio::any_io_executor ex, std::shared_ptr<EgressGate> g, ProxyLimits l, RequestLogFn lg)
        : ex(ex), gate(std::move(g)), limits(l), log(std::move(lg)) {}

    struct Listener {
        tcp::acceptor acceptor;
        ProxyProtocol protocol;
        bool running = false;
    };

    asio::any_io_executor ex;
    std::shared_ptr<EgressGate> gate;
    ProxyLimits limits;
    RequestLogFn log;
    std::list<Listener> listeners;
    std::list<std::weak_ptr<Conn>> conns;
    std::size_t active = 0;
    std::uint64_t rejected = 0;
    std::shared_ptr<RelayTraffic> traffic = make_traffic(limits, *gate);
    std::size_t bulk_threads = 0; // this server's bulk relay threads running now
    bool started = false;
    bool stopped = false;

    void start_listener(Listener& l) {
        if (l.running) return;
        l.running = true;
        asio::co_spawn(ex, accept_loop(shared_from_this(), &l), asio::detached);
    }

    static std::shared_ptr<RelayTraffic> make_traffic(const ProxyLimits& l, EgressGate& g) {
        auto t = std::make_shared<RelayTraffic>();
        t->max_total = l.max_total_bytes;
        t->max_upload = l.max_upload_bytes;
        t->egress = g.egress_budget();
        return t;
    }
    // Why no new request or tunnel may start ("" when one may). An exhausted session egress
    // budget is reported as a violation by the gate.
    std::string budget_refusal(const Host& h, std::uint16_t port, const std::string& via) {
        if (!traffic->egress->left()) return gate->refuse_egress(h, port, via).reason;
        if (!budget_left()) return "the session's network byte budget is exhausted";
        return "";
    }
    // Counts relayed bytes against the budgets; false when a budget is exhausted.
    bool account(std::size_t n, bool upload) { return traffic->account(n, upload); }
    bool budget_left() const { return traffic->budget_left(); }

    void emit(RequestRecord& r, Clock::time_point start) {
        r.duration_ms = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
        if (log) {
            try {
                log(r);
            } catch (const std::exception& e) {
                spdlog::warn("proxy request log callback failed: {}", e.what());
            }
        }
    }

    static asio::awaitable<void> accept_loop(std::shared_ptr<State> self, Listener* l) {
        for (;;) {
            auto [ec, sock] = co_await l->acceptor.async_accept(tuple_awaitable);
            if (self->stopped) co_return;
            if (ec) {
                if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor)
                    co_return;
                // EMFILE and friends: back off instead of spinning.
                spdlog::warn("proxy accept failed: {}", ec.message());
                asio::steady_timer t(self->ex, 100ms);
                co_await t.async_wait(tuple_awaitable);
                continue;
            }
            if (self->active >= self->limits.max_connections) {
                ++self->rejected;
                boost::system::error_code ignored;
                sock.close(ignored);
                continue;
            }
            sock.set_option(tcp::no_delay(true), ec);
            const auto& cc = self->limits.client_congestion_control;
            if (!cc.empty()) // best effort: the kernel's default stays when it is not allowed
                ::setsockopt(sock.native_handle(), IPPROTO_TCP, TCP_CONGESTION, cc.data(),
                             static_cast<socklen_t>(cc.size()));
            auto c = std::make_shared<Conn>(std::move(sock), self->ex);
            self->conns.push_back(c);
            auto it = std::prev(self->conns.end());
            ++self->active;
            asio::co_spawn(self->ex, watchdog(c), asio::detached);
            asio::co_spawn(self->ex, serve(self, c, l->protocol),
                           [self, c, it](std::exception_ptr e) {
                               if (e) {
                                   try {
                                       std::rethrow_exception(e);
                                   } catch (const std::exception& ex) {
                                       spdlog::warn("proxy connection failed: {}", ex.what());
                                   }
                               }
                               c->close();
                               --self->active;
                               self->conns.erase(it);
                           });
        }
    }

    static asio::awaitable<void> watchdog(std::shared_ptr<Conn> c) {
        while (!c->closed) {
            auto deadline = c->effective_deadline();
            if (Clock::now() >= deadline) {
                c->close();
                co_return;
            }
            c->watchdog.expires_at(deadline);
            co_await c->watchdog.async_wait(tuple_awaitable);
        }
    }

    static asio::awaitable<void> serve(std::shared_ptr<State> self, std::shared_ptr<Conn> c,
                                       ProxyProtocol p) {
        if (p == ProxyProtocol::socks5)
            co_await self->serve_socks(c);
        else
            co_await self->serve_http(c);
    }

    // --- dialling --------------------------------------------------------------------

    // Connects c->upstream to the first reachable pinned endpoint. Empty string or error.
    asio::awaitable<std::string> dial(std::shared_ptr<Conn> c,
                                      const std::vector<tcp::endpoint>& eps, std::string& dialled) {
        using namespace asio::experimental::awaitable_operators;
        std::string last = "no address";
        c->set_idle(limits.idle_timeout + limits.connect_timeout);
        for (auto& ep : eps) {
            boost::system::error_code ec;
            c->upstream.close(ec);
            asio::steady_timer timer(ex, limits.connect_timeout);
            auto r = co_await (c->upstream.async_connect(ep, tuple_awaitable) ||
                               timer.async_wait(tuple_awaitable));
            if (c->closed) co_return "connection closed";
            if (r.index() == 1) {
                last = ep.address().to_string() + ": connection timed out";
                continue;
            }
            auto [cec] = std::get<0>(r);
            if (!cec) {
                c->upstream.set_option(tcp::no_delay(true), ec);
                dialled = ep.address().to_string();
                c->set_idle(limits.idle_timeout);
                co_return "";
            }
            last = ep.address().to_string() + ": " + cec.message();
        }
        boost::system::error_code ig;
        c->upstream.close(ig);
        c->set_idle(limits.idle_timeout);
        co_return last;
    }

    // --- relay -----------------------------------------------------------------------

    // Moves bytes from `from` to `to` until EOF (then half-closes `to`) or an error (then
    // closes the connection). The first bulk_after_bytes go through a small user-space
    // buffer on the event loop; a bulk transfer then moves to a dedicated thread (see
    // ProxyLimits), and back when it goes quiet. Over the thread caps it stays on the event
    // loop and relays with splice(2) through a pipe, so only busy tunnels hold big pipes.
    asio::awaitable<void> pump(std::shared_ptr<Conn> c, tcp::socket& from, tcp::socket& to,
                               bool upload, std::uint64_t& counter) {
        constexpr auto forever = std::numeric_limits<std::uint64_t>::max();
        bool window_limited = false;
        for (;;) {
            if (!co_await copy_pump(c, from, to, upload, counter, limits.bulk_after_bytes))
                co_return;
            if (!window_limited)
                window_limited =
                    limit_receive_window(from.native_handle(), limits.bulk_receive_buffer_bytes,
                                         limits.bulk_receive_buffer_max_rtt);
            if (!limits.bulk_threads || bulk_threads >= limits.max_bulk_threads) break;
            BulkJob job;
            job.from = from.native_handle();
            job.to = to.native_handle();
            job.upload = upload;
            job.traffic = traffic;
            job.activity = c->activity;
            job.initial_buffer = limits.relay_buffer_bytes;
            job.max_buffer = std::max(limits.bulk_buffer_bytes, limits.relay_buffer_bytes);
            job.idle_handback = limits.bulk_idle_handback;
            job.process_cap = limits.max_bulk_threads_process;
            ++bulk_threads;
            BulkResult r = co_await relay_on_thread(std::move(job));
            --bulk_threads;
            counter += r.bytes;
            if (r.end == BulkEnd::no_thread) break;
            if (r.end == BulkEnd::idle && !c->closed) continue;
            if (r.end == BulkEnd::budget)
                spdlog::warn("proxy: network byte budget exhausted; closing connection");
            if (r.end != BulkEnd::eof) c->close();
            co_return;
        }
        if (!limits.splice) {
            co_await copy_pump(c, from, to, upload, counter, forever);
            co_return;
        }
        int p[2];
        if (::pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
            co_await copy_pump(c, from, to, upload, counter, forever);
            co_return;
        }
        // May fail (pipe-max-size, pipe-user-pages-soft): the default size still works.
        ::fcntl(p[1], F_SETPIPE_SZ, static_cast<int>(limits.splice_pipe_bytes));
        bool fallback = false;
        co_await splice_pump(c, from, to, upload, counter, p, fallback);
        ::close(p[0]);
        ::close(p[1]);
        if (fallback) co_await copy_pump(c, from, to, upload, counter, forever);
    }

    asio::awaitable<void> splice_pump(std::shared_ptr<Conn> c, tcp::socket& from, tcp::socket& to,
                                      bool upload, std::uint64_t& counter, int p[2],
                                      bool& fallback) {
        boost::system::error_code ig;
        from.native_non_blocking(true, ig);
        to.native_non_blocking(true, ig);
        const std::size_t chunk = limits.splice_pipe_bytes;
        bool first = true;
        for (;;) {
            if (c->closed) co_return;
            ssize_t n = ::splice(from.native_handle(), nullptr, p[1], nullptr, chunk,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n < 0) {
                if (errno == EAGAIN) {
                    auto [wec] = co_await from.async_wait(tcp::socket::wait_read, tuple_awaitable);
                    if (wec) {
                        c->close();
                        co_return;
                    }
                    continue;
                }
                if (errno == EINVAL && first) {
                    fallback = true;
                    co_return;
                }
                c->close();
                co_return;
            }
            first = false;
            if (n == 0) {
                to.shutdown(tcp::socket::shutdown_send, ig);
                co_return;
            }
            c->touch();
            bool ok = account(static_cast<std::size_t>(n), upload);
            std::size_t pending = static_cast<std::size_t>(n);
            while (pending > 0) {
                ssize_t m = ::splice(p[0], nullptr, to.native_handle(), nullptr, pending,
                                     SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (m < 0 && errno == EAGAIN) {
                    auto [wec] = co_await to.async_wait(tcp::socket::wait_write, tuple_awaitable);
                    if (wec || c->closed) {
                        c->close();
                        co_return;
                    }
                    continue;
                }
                if (m <= 0) {
                    c->close();
                    co_return;
                }
                pending -= static_cast<std::size_t>(m);
                counter += static_cast<std::uint64_t>(m);
                c->touch();
            }
            if (!ok) {
                spdlog::warn("proxy: network byte budget exhausted; closing connection");
                c->close();
                co_return;
            }
        }
    }

    // Returns true when it stopped after `stop_after` bytes with the connection still up.
    asio::awaitable<bool> copy_pump(std::shared_ptr<Conn> c, tcp::socket& from, tcp::socket& to,
                                    bool upload, std::uint64_t& counter, std::uint64_t stop_after) {
        std::vector<char> buf(limits.relay_buffer_bytes);
        std::uint64_t moved = 0;
        while (moved < stop_after) {
            auto [ec, n] = co_await from.async_read_some(asio::buffer(buf), tuple_awaitable);
            if (ec) {
                boost::system::error_code ig;
                if (ec == asio::error::eof)
                    to.shutdown(tcp::socket::shutdown_send, ig);
                else
                    c->close();
                co_return false;
            }
            c->touch();
            bool ok = account(n, upload);
            auto [wec, m] =
                co_await asio::async_write(to, asio::buffer(buf.data(), n), tuple_awaitable);
            if (wec) {
                c->close();
                co_return false;
            }
            counter += n;
            moved += n;
            c->touch();
            if (!ok) {
                spdlog::warn("proxy: network byte budget exhausted; closing connection");
                c->close();
                co_return false;
            }
        }
        co_return !c->closed;
    }

    asio::awaitable<void> relay(std::shared_ptr<Conn> c, RequestRecord& rec) {
        using namespace asio::experimental::awaitable_operators;
        co_await (pump(c, c->client, c->upstream, true, rec.bytes_up) &&
                  pump(c, c->upstream, c->client, false, rec.bytes_down));
    }

    // --- HTTP ------------------------------------------------------------------------

    asio::awaitable<void> send_error(std::shared_ptr<Conn> c, http::status s,
                                     const std::string& reason, RequestRecord* rec) {
        http::response<http::string_body> res{s, 11};
        res.set(http::field::server, "cordon");
        res.set(http::field::content_type, "text/plain; charset=utf-8");
        res.set("X-Cordon-Reason", sanitize_header_value(reason));
        res.body() = "cordon: " + reason + "\n";
        res.keep_alive(false);
        res.prepare_payload();
        if (rec) rec->status = static_cast<int>(s);
        c->set_deadline(limits.handshake_timeout);
        co_await http::async_write(c->client, res, tuple_awaitable);
    }

    asio::awaitable<void> serve_http(std::shared_ptr<Conn> c) {
        beast::flat_buffer cbuf; // client -> proxy
        beast::flat_buffer ubuf; // destination -> proxy
        std::string up_key;      // destination of the open upstream connection
        std::string up_addr;
        std::string up_decision;
        for (;;) {
            c->set_deadline(limits.handshake_timeout);
            http::request_parser<http::buffer_body> p;
            p.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
            p.body_limit(boost::none);
            auto [ec, n] = co_await http::async_read_header(c->client, cbuf, p, tuple_awaitable);
            if (ec) {
                if (c->closed || ec == http::error::end_of_stream || ec == asio::error::eof ||
                    ec == asio::error::connection_reset || ec == asio::error::operation_aborted)
                    co_return;
                if (ec == http::error::header_limit)
                    co_await send_error(c, http::status::request_header_fields_too_large,
                                        "request head larger than " +
                                            std::to_string(limits.max_header_bytes) + " bytes",
                                        nullptr);
                else
                    co_await send_error(c, http::status::bad_request,
                                        "malformed request: " + ec.message(), nullptr);
                co_return;
            }
            c->set_idle(limits.idle_timeout);
            if (p.get().method() == http::verb::connect) {
                co_await handle_connect(c, cbuf, p);
                co_return;
            }
            bool keep = co_await handle_forward(c, cbuf, ubuf, p, up_key, up_addr, up_decision);
            if (!keep || c->closed) co_return;
        }
    }

    asio::awaitable<void> handle_connect(std::shared_ptr<Conn> c, beast::flat_buffer& cbuf,
                                         http::request_parser<http::buffer_body>& p) {
        auto start = Clock::now();
        auto& req = p.get();
        RequestRecord rec;
        rec.via = "connect";
        rec.method = "CONNECT";
        std::string err;
        auto hp = parse_host_port(std::string(req.target()), 0, err);
        if (!hp) {
            rec.host = sanitize_header_value(std::string(req.target()));
            rec.reason = "invalid CONNECT target: " + err;
            co_await send_error(c, http::status::bad_request, rec.reason, &rec);
            emit(rec, start);
            co_return;
        }
        rec.host = hp->host.name;
        rec.port = hp->port;
        if (req.count(http::field::host) > 1) {
            rec.reason = "more than one Host header";
            co_await send_error(c, http::status::bad_request, rec.reason, &rec);
            emit(rec, start);
            co_return;
        }
        if (auto h = req.find(http::field::host); h != req.end()) {
            auto hh = parse_host_port(std::string(h->value()), hp->port, err);
            if (!hh || !(hh->host == hp->host) || hh->port != hp->port) {
                rec.reason = "Host header does not match the CONNECT target";
                co_await send_error(c, http::status::bad_request, rec.reason, &rec);
                emit(rec, start);
                co_return;
            }
        }
        if (std::string why = budget_refusal(hp->host, hp->port, "connect"); !why.empty()) {
            rec.reason = why;
            co_await send_error(c, http::status::forbidden, rec.reason, &rec);
            emit(rec, start);
            co_return;
        }
        c->no_deadline();
        Authorization auth = co_await gate->authorize(hp->host, hp->port, "connect");
        c->set_idle(limits.idle_timeout);
        rec.decision = auth.decision;
        if (c->closed) co_return;
        if (!auth.allowed) {
            rec.reason = auth.reason;
            if (auth.address) rec.address = *auth.address;
            co_await send_error(c,
                                auth.failed ? http::status::bad_gateway : http::status::forbidden,
                                auth.reason, &rec);
            emit(rec, start);
            co_return;
        }
        rec.allowed = true;
        std::string derr = co_await dial(c, auth.endpoints, rec.address);
        if (!derr.empty()) {
            rec.reason = "cannot connect: " + derr;
            co_await send_error(c, http::status::bad_gateway, rec.reason, &rec);
            emit(rec, start);
            co_return;
        }
        static const std::string ok = "HTTP/1.1 200 Connection established\r\n\r\n";
        auto [wec, wn] = co_await asio::async_write(c->client, asio::buffer(ok), tuple_awaitable);
        rec.status = 200;
        if (!wec && cbuf.size() > 0) {
            // Bytes the client sent after the head (e.g. a TLS ClientHello).
            rec.bytes_up += cbuf.size();
            account(cbuf.size(), true);
            co_await asio::async_write(c->upstream, cbuf.data(), tuple_awaitable);
            cbuf.consume(cbuf.size());
        }
        if (!wec) co_await relay(c, rec);
        emit(rec, start);
    }

    // Relays one HTTP message whose head `p` has read from `in`: writes the head and streams
    // the body (Content-Length, chunked, or until EOF for a response) to `out` through `buf`
    // (Beast's buffer_body relay pattern). Body bytes are added to `counter` and to the
    // session's budget: an upload chunk that would exceed the budget is not forwarded, a
    // download chunk is (its bytes have arrived already) and then the relay stops. Returns
    // false on a read/write error or an exhausted budget: the message is incomplete.
    template <bool isRequest>
    asio::awaitable<bool>
    relay_message(std::shared_ptr<Conn> c, tcp::socket& in, beast::flat_buffer& inbuf,
                  http::parser<isRequest, http::buffer_body>& p, tcp::socket& out,
                  http::serializer<isRequest, http::buffer_body>& sr, std::vector<char>& buf,
                  bool upload, std::uint64_t& counter) {
        auto& body = p.get().body();
        bool within_budget = true;
        do {
            if (!p.is_done()) {
                body.data = buf.data();
                body.size = buf.size();
                auto [ec, n] = co_await http::async_read(in, inbuf, p, tuple_awaitable);
                if (ec == http::error::need_buffer) ec = {};
                if (ec) co_return false;
                body.size = buf.size() - body.size;
                body.data = buf.data();
                body.more = !p.is_done();
                counter += body.size;
                within_budget = account(body.size, upload);
                if (!within_budget && upload) co_return false;
            } else {
                body.data = nullptr;
                body.size = 0;
                body.more = false;
            }
            c->touch();
            auto [ec, n] = co_await http::async_write(out, sr, tuple_awaitable);
            if (ec == http::error::need_buffer) ec = {};
            if (ec || !within_budget) co_return false;
        } while (!p.is_done() || !sr.is_done());
        co_return true;
    }

    // Forwards one absolute-form request; returns whether the client connection stays open.
    asio::awaitable<bool> handle_forward(std::shared_ptr<Conn> c, beast::flat_buffer& cbuf,
                                         beast::flat_buffer& ubuf,
                                         http::request_parser<http::buffer_body>& p,
                                         std::string& up_key, std::string& up_addr,
                                         std::string& up_decision) {
        auto start = Clock::now();
        auto& req = p.get();
        RequestRecord rec;
        rec.via = "http";
        rec.method = std::string(req.method_string());
        std::string target(req.target());
        auto fail = [&](http::status s, std::string why) -> asio::awaitable<bool> {
            rec.reason = std::move(why);
            co_await send_error(c, s, rec.reason, &rec);
            emit(rec, start);
            co_return false;
        };
        // absolute-form: http://authority/path?query
        if (target.size() < 7 || !iequals(target.substr(0, 7), "http://")) {
            if (target.size() >= 8 && iequals(target.substr(0, 8), "https://"))
                co_return co_await fail(http::status::bad_request,
                                        "https:// targets must use CONNECT");
            co_return co_await fail(http::status::bad_request,
                                    "a proxy request needs an absolute http:// target");
        }
        std::string rest = target.substr(7);
        auto end = rest.find_first_of("/?#");
        std::string authority = rest.substr(0, end);
        std::string path = end == std::string::npos ? "/" : rest.substr(end);
        if (auto h = path.find('#'); h != std::string::npos) path.resize(h);
        if (path.empty() || path[0] == '?') path = "/" + path;
        if (authority.find('@') != std::string::npos)
            co_return co_await fail(http::status::bad_request,
                                    "user information in the request target is not allowed");
        std::string err;
        auto hp = parse_host_port(authority, 80, err);
        if (!hp)
            co_return co_await fail(http::status::bad_request, "invalid request target: " + err);
        rec.host = hp->host.name;
        rec.port = hp->port;
        rec.target = path.size() > 2048 ? path.substr(0, 2048) : path;
        if (req.count(http::field::host) > 1)
            co_return co_await fail(http::status::bad_request, "more than one Host header");
        if (auto h = req.find(http::field::host); h != req.end()) {
            auto hh = parse_host_port(std::string(h->value()), 80, err);
            if (!hh || !(hh->host == hp->host) || hh->port != hp->port)
                co_return co_await fail(http::status::bad_request,
                                        "Host header does not match the request target");
        }
        if (req.find(http::field::transfer_encoding) != req.end() && !req.chunked())
            co_return co_await fail(http::status::bad_request,
                                    "Transfer-Encoding without a final \"chunked\"");
        if (std::string why = budget_refusal(hp->host, hp->port, "http"); !why.empty())
            co_return co_await fail(http::status::forbidden, why);
        auto ct = req.find(http::field::content_type);
        if (is_git_push_request(path, ct == req.end() ? std::string_view()
                                                      : std::string_view(ct->value()))) {
            std::string why = gate->refuse(hp->host, hp->port, "http", kGitPushRefusal, "",
                                           std::nullopt, "policy")
                                  .reason;
            co_return co_await fail(http::status::forbidden, std::move(why));
        }

        const std::string method(req.method_string());
        const RequestLine line{method, path};
        std::string key = hp->host.authority(hp->port);
        if (key == up_key && c->upstream.is_open()) {
            // A further request on this connection: method/path rules judge each request.
            if (auto refused = gate->check_request(hp->host, hp->port, "http", line))
                co_return co_await fail(http::status::forbidden, refused->reason);
        } else {
            boost::system::error_code ig;
            c->upstream.close(ig);
            ubuf.consume(ubuf.size());
            up_key.clear();
            c->no_deadline();
            Authorization auth = co_await gate->authorize(hp->host, hp->port, "http", &line);
            c->set_idle(limits.idle_timeout);
            if (c->closed) co_return false;
            rec.decision = auth.decision;
            if (!auth.allowed) {
                if (auth.address) rec.address = *auth.address;
                co_return co_await fail(
                    auth.failed ? http::status::bad_gateway : http::status::forbidden, auth.reason);
            }
            std::string derr = co_await dial(c, auth.endpoints, up_addr);
            if (!derr.empty()) {
                rec.allowed = true;
                co_return co_await fail(http::status::bad_gateway, "cannot connect: " + derr);
            }
            up_key = key;
            up_decision = auth.decision;
        }
        rec.decision = up_decision;
        rec.address = up_addr;
        rec.allowed = true;

        bool client_keep = req.keep_alive();
        bool expect_continue = false;
        if (auto e = req.find(http::field::expect); e != req.end()) {
            if (iequals(e->value(), "100-continue")) expect_continue = true;
            req.erase(http::field::expect);
        }
        remove_hop_by_hop(req);
        req.target(path);
        req.version(11);
        req.set(http::field::host,
                hp->host.url_host() + (hp->port == 80 ? "" : ":" + std::to_string(hp->port)));
        // The head is egress too (URL and headers can carry data): charged to the budget.
        std::size_t head_bytes = method.size() + path.size() + 12;
        for (auto& f : req)
            head_bytes += f.name_string().size() + f.value().size() + 4;
        if (!traffic->egress->charge(head_bytes)) {
            boost::system::error_code ig;
            c->upstream.close(ig);
            up_key.clear();
            std::string why = gate->refuse_egress(hp->host, hp->port, "http").reason;
            co_return co_await fail(http::status::forbidden, std::move(why));
        }
        if (expect_continue && !p.is_done()) {
            static const std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
            co_await asio::async_write(c->client, asio::buffer(cont), tuple_awaitable);
        }

        // Request: head + streamed body.
        std::vector<char> buf(limits.relay_buffer_bytes);
        {
            http::request_serializer<http::buffer_body> sr{req};
            bool failed = !co_await relay_message(c, c->client, cbuf, p, c->upstream, sr, buf, true,
                                                  rec.bytes_up);
            if (failed) {
                boost::system::error_code ig;
                c->upstream.close(ig);
                up_key.clear();
                if (c->closed) {
                    emit(rec, start);
                    co_return false;
                }
                if (!traffic->egress->left()) {
                    std::string why = gate->refuse_egress(hp->host, hp->port, "http").reason;
                    co_return co_await fail(http::status::forbidden, std::move(why));
                }
                co_return co_await fail(http::status::bad_gateway,
                                        "the request could not be forwarded");
            }
        }

        // Response: skip 1xx interim responses, then relay head + body.
        for (;;) {
            http::response_parser<http::buffer_body> rp;
            rp.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
            rp.body_limit(boost::none);
            if (req.method() == http::verb::head) rp.skip(true);
            auto [hec, hn] =
                co_await http::async_read_header(c->upstream, ubuf, rp, tuple_awaitable);
            if (hec) {
                boost::system::error_code ig;
                c->upstream.close(ig);
                up_key.clear();
                if (c->closed) {
                    emit(rec, start);
                    co_return false;
                }
                co_return co_await fail(http::status::bad_gateway,
                                        "invalid response from the destination: " + hec.message());
            }
            auto& res = rp.get();
            int code = res.result_int();
            if (code >= 100 && code < 200) {
                if (code == 101) {
                    boost::system::error_code ig;
                    c->upstream.close(ig);
                    co_return co_await fail(http::status::bad_gateway,
                                            "protocol upgrades are not supported by the proxy");
                }
                continue; // 100/102/103: dropped (we answered 100 ourselves)
            }
            rec.status = code;
            bool upstream_keep = res.keep_alive();
            remove_hop_by_hop(res);
            bool eof_body = !rp.is_done() && !res.has_content_length() && !res.chunked();
            bool keep = client_keep && !eof_body;
            res.keep_alive(keep);
            http::response_serializer<http::buffer_body> sr{res};
            bool failed = !co_await relay_message(c, c->upstream, ubuf, rp, c->client, sr, buf,
                                                  false, rec.bytes_down);
            if (!upstream_keep || failed) {
                boost::system::error_code ig;
                c->upstream.close(ig);
                up_key.clear();
            }
            emit(rec, start);
            co_return keep && !failed;
        }
    }

    // --- SOCKS5 ----------------------------------------------------------------------

    asio::awaitable<void> serve_socks(std::shared_ptr<Conn> c) {
        auto start = Clock::now();
        c->set_deadline(limits.handshake_timeout);
        std::array<std::uint8_t, 262> b{};
        auto read = [&](std::size_t n) -> asio::awaitable<bool> {
            auto [ec, m] =
                co_await asio::async_read(c->client, asio::buffer(b.data(), n), tuple_awaitable);
            co_return !ec && m == n;
        };
        auto reply = [&](std::uint8_t code) -> asio::awaitable<void> {
            std::array<std::uint8_t, 10> r = {5, code, 0, 1, 0, 0, 0, 0, 0, 0};
            co_await asio::async_write(c->client, asio::buffer(r), tuple_awaitable);
        };
        if (!co_await read(2) || b[0] != 5 || b[1] == 0) co_return;
        std::size_t nmethods = b[1];
        if (!co_await read(nmethods)) co_return;
        bool noauth = false;
        for (std::size_t i = 0; i < nmethods; ++i)
            noauth = noauth || b[i] == 0;
        if (!noauth) {
            std::array<std::uint8_t, 2> r = {5, 0xff};
            co_await asio::async_write(c->client, asio::buffer(r), tuple_awaitable);
            co_return;
        }
        {
            std::array<std::uint8_t, 2> r = {5, 0};
            auto [ec, n] = co_await asio::async_write(c->client, asio::buffer(r), tuple_awaitable);
            if (ec) co_return;
        }
        if (!co_await read(4) || b[0] != 5 || b[2] != 0) co_return;
        std::uint8_t cmd = b[1], atyp = b[3];
        RequestRecord rec;
        rec.via = "socks5";
        rec.method = "CONNECT";
        std::optional<Host> host;
        std::string err = "invalid address";
        if (atyp == 1) {
            if (!co_await read(4)) co_return;
            asio::ip::address_v4::bytes_type a;
            std::copy(b.begin(), b.begin() + 4, a.begin());
            Address addr(asio::ip::address_v4{a});
            host = Host{Host::Kind::ip, addr.to_string(), addr};
        } else if (atyp == 4) {
            if (!co_await read(16)) co_return;
            asio::ip::address_v6::bytes_type a;
            std::copy(b.begin(), b.begin() + 16, a.begin());
            Address addr = unmap(Address(asio::ip::address_v6{a}));
            host = Host{Host::Kind::ip, addr.to_string(), addr};
        } else if (atyp == 3) {
            if (!co_await read(1) || b[0] == 0) co_return;
            std::size_t len = b[0];
            if (!co_await read(len)) co_return;
            std::string name(reinterpret_cast<const char*>(b.data()), len);
            host = parse_host(name, err);
            rec.host = sanitize_header_value(name);
        } else {
            co_await reply(0x08); // address type not supported
            co_return;
        }
        if (!co_await read(2)) co_return;
        std::uint16_t port = static_cast<std::uint16_t>((b[0] << 8) | b[1]);
        if (cmd != 1) {
            co_await reply(0x07); // command not supported (BIND, UDP ASSOCIATE)
            co_return;
        }
        if (!host || port == 0) {
            co_await reply(0x01);
            rec.port = port;
            rec.reason = host ? "port 0" : "invalid host: " + err;
            emit(rec, start);
            co_return;
        }
        rec.host = host->name;
        rec.port = port;
        if (std::string why = budget_refusal(*host, port, "socks5"); !why.empty()) {
            co_await reply(0x02);
            rec.reason = why;
            emit(rec, start);
            co_return;
        }
        c->no_deadline();
        Authorization auth = co_await gate->authorize(*host, port, "socks5");
        c->set_idle(limits.idle_timeout);
        rec.decision = auth.decision;
        if (c->closed) co_return;
        if (!auth.allowed) {
            rec.reason = auth.reason;
            if (auth.address) rec.address = *auth.address;
            co_await reply(auth.failed ? 0x04 : 0x02); // host unreachable / not allowed
            emit(rec, start);
            co_return;
        }
        rec.allowed = true;
        std::string derr = co_await dial(c, auth.endpoints, rec.address);
        if (!derr.empty()) {
            rec.reason = "cannot connect: " + derr;
            co_await reply(derr.find("refused") != std::string::npos ? 0x05 : 0x04);
            emit(rec, start);
            co_return;
        }
        co_await reply(0x00);
        co_await relay(c, rec);
        emit(rec, start);
    }
};

ProxyServer::ProxyServer(asio::any_io_executor ex, std::shared_ptr<EgressGate> gate,
                         ProxyLimits limits, RequestLogFn log)
    : gate_(gate), state_(std::make_shared<State>(ex, std::move(gate), limits, std::move(log))) {}

ProxyServer::~ProxyServer() {
    stop();
}

std::uint16_t ProxyServer::add_listener(int fd, ProxyProtocol protocol) {
    boost::system::error_code ec;
    tcp::acceptor a(state_->ex);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
        throw std::system_error(errno, std::generic_category(), "proxy listener getsockname");
    a.assign(ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
    if (ec) throw boost::system::system_error(ec, "proxy listener");
    auto& l = state_->listeners.emplace_back(State::Listener{std::move(a), protocol});
    if (state_->started && !state_->stopped) state_->start_listener(l);
    return l.acceptor.local_endpoint().port();
}

void ProxyServer::start() {
    if (state_->started || state_->stopped) return;
    state_->started = true;
    for (auto& l : state_->listeners)
        state_->start_listener(l);
}

void ProxyServer::stop() {
    if (state_->stopped) return;
    state_->stopped = true;
    boost::system::error_code ec;
    for (auto& l : state_->listeners)
        l.acceptor.close(ec);
    for (auto& w : state_->conns)
        if (auto c = w.lock()) c->close();
}

std::size_t ProxyServer::active_connections() const {
    return state_->active;
}
std::uint64_t ProxyServer::rejected_connections() const {
    return state_->rejected;
}
std::uint64_t ProxyServer::bytes_up() const {
    return state_->traffic->up.load();
}
std::uint64_t ProxyServer::bytes_down() const {
    return state_->traffic->down.load();
}
std::size_t ProxyServer::bulk_threads() const {
    return state_->bulk_threads;
}

} // namespace cordon::server::net
