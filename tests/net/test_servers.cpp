#include "test_servers.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <future>
#include <stdexcept>

namespace cordon::test {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using asio::ip::tcp;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

CommandResult run(const std::string& cmd) {
    CommandResult r;
    FILE* f = ::popen(cmd.c_str(), "r");
    if (!f) return r;
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
        r.out.append(buf, n);
    int st = ::pclose(f);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

const TestCerts& TestCerts::get() {
    static TestCerts c = [] {
        TestCerts t;
        char tmpl[] = "/tmp/cordon-net-certs-XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
        t.dir = tmpl;
        t.ca_pem = t.dir + "/ca.pem";
        t.cert_pem = t.dir + "/server.pem";
        t.key_pem = t.dir + "/server.key";
        std::string d = t.dir;
        std::string script =
            "cd " + d +
            " && "
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
            "-keyout ca.key -out ca.pem -days 2 -subj '/CN=cordon test CA' "
            "-addext 'basicConstraints=critical,CA:TRUE' "
            "-addext 'keyUsage=critical,keyCertSign,cRLSign' 2>/dev/null && "
            "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
            "-keyout server.key -out server.csr -subj '/CN=allowed.test' 2>/dev/null && "
            "printf 'subjectAltName=DNS:allowed.test,DNS:*.example.test,DNS:localhost,"
            "IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nkeyUsage=digitalSignature\\n"
            "extendedKeyUsage=serverAuth\\n' > ext.cnf && "
            "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
            "-out server.pem -days 2 -extfile ext.cnf 2>/dev/null && echo ok";
        auto r = run(script);
        if (r.out.find("ok") == std::string::npos)
            throw std::runtime_error("could not generate the test certificates");
        return t;
    }();
    return c;
}

int listen_loopback(std::uint16_t* port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 4096) != 0)
        throw std::runtime_error("listen_loopback");
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    if (port) *port = ntohs(a.sin_port);
    return fd;
}

IoThread::IoThread()
    : work_(std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
          io.get_executor())) {
    thread_ = std::thread([this] { io.run(); });
}

IoThread::~IoThread() {
    work_.reset();
    io.stop();
    thread_.join();
}

void IoThread::sync(std::function<void()> f) {
    std::promise<void> p;
    asio::post(io, [&] {
        try {
            f();
            p.set_value();
        } catch (...) {
            p.set_exception(std::current_exception());
        }
    });
    p.get_future().get();
}

// --- origin server ---------------------------------------------------------------------

struct OriginServer::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::io_context& io, bool tls)
        : io(io), acceptor(io), tls(tls), ctx(ssl::context::tls_server) {}
    asio::io_context& io;
    tcp::acceptor acceptor;
    bool tls;
    ssl::context ctx;
    std::atomic<int>* requests = nullptr;
    bool stopped = false;

    static std::string query_param(std::string_view target, std::string_view key) {
        auto q = target.find('?');
        if (q == std::string_view::npos) return "";
        auto qs = target.substr(q + 1);
        std::string k = std::string(key) + "=";
        auto p = qs.find(k);
        if (p == std::string_view::npos) return "";
        auto v = qs.substr(p + k.size());
        return std::string(v.substr(0, v.find('&')));
    }

    http::response<http::string_body> handle(const http::request<http::string_body>& req,
                                             bool& hang) {
        http::response<http::string_body> res{http::status::ok, req.version()};
        res.set(http::field::server, "origin");
        res.set(http::field::content_type, "text/plain");
        std::string target(req.target());
        std::string path = target.substr(0, target.find('?'));
        if (path == "/hello") {
            res.body() = "hello from origin";
        } else if (path == "/echo") {
            std::string s = std::string(req.method_string()) + " " + target + "\n";
            for (auto& f : req)
                s += std::string(f.name_string()) + ": " + std::string(f.value()) + "\n";
            s += "\n" + req.body();
            res.body() = s;
        } else if (path == "/bytes") {
            std::size_t n = std::stoul(query_param(target, "n"));
            std::string b(n, '\0');
            for (std::size_t i = 0; i < n; ++i)
                b[i] = static_cast<char>(i % 256);
            res.set(http::field::content_type, "application/octet-stream");
            res.body() = std::move(b);
        } else if (path == "/utf8") {
            std::size_t n = std::stoul(query_param(target, "n"));
            std::string b;
            while (b.size() < n)
                b += "\xc3\xa9"; // é
            res.body() = b;
        } else if (path == "/html") {
            res.set(http::field::content_type, "text/html; charset=utf-8");
            res.body() = "<html><head><title>T</title><style>p{x:y}</style>"
                         "<script>alert(1)</script></head><body><h1>Head&amp;line</h1>"
                         "<p>First   para</p><ul><li>one</li><li>two</li></ul>"
                         "<!-- hidden --><p>caf&#233; &lt;ok&gt;</p></body></html>";
        } else if (path == "/redirect") {
            res.result(http::status::found);
            std::string to = query_param(target, "to");
            // minimal %-decoding of ':' and '/'
            std::string dec;
            for (std::size_t i = 0; i < to.size(); ++i) {
                if (to[i] == '%' && i + 2 < to.size()) {
                    dec += static_cast<char>(std::stoi(to.substr(i + 1, 2), nullptr, 16));
                    i += 2;
                } else {
                    dec += to[i];
                }
            }
            res.set(http::field::location, dec);
            res.body() = "moved";
        } else if (path == "/slow") {
            hang = true;
        } else {
            res.result(http::status::not_found);
            res.body() = "not found";
        }
        res.keep_alive(req.keep_alive());
        res.prepare_payload();
        return res;
    }

    template <class Stream> asio::awaitable<void> session(Stream& s) {
        beast::flat_buffer buf;
        for (;;) {
            http::request_parser<http::string_body> p;
            p.body_limit(64u << 20);
            auto [ec, n] = co_await http::async_read(s, buf, p, tuple_awaitable);
            if (ec) co_return;
            ++*requests;
            bool hang = false;
            auto res = handle(p.get(), hang);
            if (hang) {
                asio::steady_timer t(io, std::chrono::seconds(30));
                co_await t.async_wait(tuple_awaitable);
                co_return;
            }
            auto [wec, wn] = co_await http::async_write(s, res, tuple_awaitable);
            if (wec || !res.keep_alive()) co_return;
        }
    }

    static asio::awaitable<void> serve(std::shared_ptr<Impl> self, tcp::socket sock) {
        if (self->tls) {
            ssl::stream<tcp::socket> s(std::move(sock), self->ctx);
            auto [ec] = co_await s.async_handshake(ssl::stream_base::server, tuple_awaitable);
            if (ec) co_return;
            co_await self->session(s);
            co_await s.async_shutdown(tuple_awaitable);
        } else {
            co_await self->session(sock);
            boost::system::error_code ig;
            sock.shutdown(tcp::socket::shutdown_send, ig);
        }
    }

    static asio::awaitable<void> accept_loop(std::shared_ptr<Impl> self) {
        for (;;) {
            auto [ec, sock] = co_await self->acceptor.async_accept(tuple_awaitable);
            if (ec || self->stopped) co_return;
            asio::co_spawn(self->io, serve(self, std::move(sock)), asio::detached);
        }
    }
};

OriginServer::OriginServer(asio::io_context& io, bool tls)
    : impl_(std::make_shared<Impl>(io, tls)) {
    impl_->requests = &requests;
    if (tls) {
        auto& c = TestCerts::get();
        impl_->ctx.use_certificate_chain_file(c.cert_pem);
        impl_->ctx.use_private_key_file(c.key_pem, ssl::context::pem);
    }
    int fd = listen_loopback(&port_);
    impl_->acceptor.assign(tcp::v4(), fd);
    asio::co_spawn(io, Impl::accept_loop(impl_), asio::detached);
}

OriginServer::~OriginServer() {
    std::promise<void> done;
    asio::post(impl_->io, [&] {
        impl_->stopped = true;
        boost::system::error_code ec;
        impl_->acceptor.close(ec);
        done.set_value();
    });
    done.get_future().wait();
}

// --- proxy fixture ---------------------------------------------------------------------

ProxyFixture::ProxyFixture(IoThread& th, std::vector<std::string> allow,
                           std::vector<std::string> deny, ProxyLimits limits, EgressOptions opts)
    : t(th) {
    t.sync([&] {
        auto ex = t.io.get_executor();
        AskFn ask = [this](ApprovalQuestion q) -> asio::awaitable<Decision> {
            ++asks;
            {
                std::lock_guard lk(m);
                questions.push_back(q);
            }
            if (ask_delay.count() > 0) {
                asio::steady_timer timer(co_await asio::this_coro::executor, ask_delay);
                co_await timer.async_wait(asio::use_awaitable);
            }
            co_return answer(q);
        };
        ViolationFn violation = [this](const json& d) {
            std::lock_guard lk(m);
            violations.push_back(d);
        };
        gate = std::make_shared<EgressGate>(ex, NetworkPolicy::from_strings(allow, deny), ask,
                                            violation, opts);
        auto system = system_resolver(ex);
        gate->set_resolver(
            [this, system](std::string name) -> asio::awaitable<std::vector<Address>> {
                ++resolver_calls;
                if (auto it = names.find(name); it != names.end()) co_return it->second;
                if (name == "localhost") co_return co_await system(name);
                throw boost::system::system_error(asio::error::host_not_found, name);
            });
        proxy = std::make_unique<ProxyServer>(ex, gate, limits, [this](const RequestRecord& r) {
            std::lock_guard lk(m);
            records.push_back(r);
        });
        http_port = proxy->add_listener(listen_loopback(), ProxyProtocol::http);
        socks_port = proxy->add_listener(listen_loopback(), ProxyProtocol::socks5);
        proxy->start();
    });
}

ProxyFixture::~ProxyFixture() {
    t.sync([&] {
        proxy->stop();
        proxy.reset();
    });
    // Let closed connections' coroutines finish before the gate goes.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    t.sync([&] { gate.reset(); });
}

std::string raw_exchange(std::uint16_t port, const std::string& data,
                         std::chrono::milliseconds timeout) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return "";
    }
    std::size_t off = 0;
    while (off < data.size()) {
        auto n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += static_cast<std::size_t>(n);
    }
    std::string out;
    auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            end - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
        char buf[65536];
        auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
}

} // namespace cordon::test
