// net_bench: what the proxy costs on loopback, measured against the direct path in the
// same run.
//   1. throughput: download N bytes (default 1 GiB) through a CONNECT tunnel vs directly;
//      prints both rates and the ratio (target >= 0.8).
//   2. latency: median time of a small HTTP request through the HTTP proxy vs directly,
//      on a kept-alive connection and on a new connection per request.
// The origin runs on its own thread, the proxy (EgressGate + ProxyServer) on another, the
// client is blocking code on the main thread. Nothing leaves 127.0.0.1.
//
// Usage: net_bench [--bytes N] [--requests N] [--splice on|off] [--pipe BYTES]
#include "cordon/server/net/proxy.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace cordon::server::net;
using Clock = std::chrono::steady_clock;
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);

namespace {

std::uint64_t g_bytes = 1ull << 30;
int g_requests = 2000;
bool g_splice = true;
std::size_t g_pipe = ProxyLimits{}.splice_pipe_bytes; // what the server uses

// Origin: "GET /stream" -> raw g_bytes then close; anything else -> small HTTP response,
// keep-alive.
asio::awaitable<void> origin_conn(tcp::socket s) {
    boost::system::error_code ec;
    s.set_option(tcp::no_delay(true), ec);
    asio::streambuf in;
    static const std::string small =
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: text/plain\r\n\r\n" +
        std::string(100, 'x');
    for (;;) {
        auto [rec, n] = co_await asio::async_read_until(s, in, "\r\n\r\n", tuple_awaitable);
        if (rec) co_return;
        std::string head(asio::buffers_begin(in.data()), asio::buffers_begin(in.data()) + n);
        in.consume(n);
        if (head.find("/stream") != std::string::npos) {
            std::vector<char> chunk(1 << 20, 'z');
            std::uint64_t left = g_bytes;
            while (left > 0) {
                auto k = std::min<std::uint64_t>(left, chunk.size());
                auto [wec, w] =
                    co_await asio::async_write(s, asio::buffer(chunk.data(), k), tuple_awaitable);
                if (wec) co_return;
                left -= k;
            }
            s.shutdown(tcp::socket::shutdown_send, ec);
            co_return;
        }
        auto [wec, w] = co_await asio::async_write(s, asio::buffer(small), tuple_awaitable);
        if (wec) co_return;
    }
}

asio::awaitable<void> origin_accept(tcp::acceptor& a) {
    for (;;) {
        auto [ec, s] = co_await a.async_accept(tuple_awaitable);
        if (ec) co_return;
        asio::co_spawn(a.get_executor(), origin_conn(std::move(s)), asio::detached);
    }
}

int listen_loopback(std::uint16_t* port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd, 1024);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    *port = ntohs(a.sin_port);
    return fd;
}

int connect_to(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        std::perror("connect");
        std::exit(1);
    }
    return fd;
}

void send_all(int fd, const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
        auto n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
        if (n <= 0) {
            std::perror("send");
            std::exit(1);
        }
        off += static_cast<std::size_t>(n);
    }
}

// Reads one HTTP response head (+ Content-Length body); returns the status line.
std::string read_response(int fd, std::string& buf) {
    for (;;) {
        auto e = buf.find("\r\n\r\n");
        if (e != std::string::npos) {
            std::size_t len = 0;
            auto cl = buf.find("Content-Length: ");
            if (cl != std::string::npos && cl < e) len = std::stoul(buf.substr(cl + 16));
            if (buf.size() >= e + 4 + len) {
                std::string status = buf.substr(0, buf.find("\r\n"));
                buf.erase(0, e + 4 + len);
                return status;
            }
        }
        char tmp[65536];
        auto n = ::recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0) {
            std::fprintf(stderr, "connection closed while reading a response\n");
            std::exit(1);
        }
        buf.append(tmp, static_cast<std::size_t>(n));
    }
}

double download(int fd) {
    std::vector<char> buf(1 << 20);
    std::uint64_t got = 0;
    auto start = Clock::now();
    for (;;) {
        auto n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n <= 0) break;
        got += static_cast<std::uint64_t>(n);
    }
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    if (got != g_bytes) {
        std::fprintf(stderr, "download: got %llu of %llu bytes\n",
                     static_cast<unsigned long long>(got),
                     static_cast<unsigned long long>(g_bytes));
        std::exit(1);
    }
    return static_cast<double>(got) / secs;
}

double thread_cpu_seconds(std::thread& t) {
    clockid_t id;
    if (pthread_getcpuclockid(t.native_handle(), &id) != 0) return 0;
    timespec ts{};
    clock_gettime(id, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

} // namespace

int main(int argc, char** argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--bytes")) g_bytes = std::stoull(argv[i + 1]);
        if (!std::strcmp(argv[i], "--requests")) g_requests = std::stoi(argv[i + 1]);
        if (!std::strcmp(argv[i], "--pipe")) g_pipe = std::stoul(argv[i + 1]);
        if (!std::strcmp(argv[i], "--splice")) g_splice = std::string(argv[i + 1]) != "off";
    }
    g_requests = std::clamp(g_requests, 10, 100000);

    // Origin thread.
    asio::io_context origin_io;
    std::uint16_t origin_port = 0;
    tcp::acceptor acceptor(origin_io, tcp::v4(), listen_loopback(&origin_port));
    asio::co_spawn(origin_io, origin_accept(acceptor), asio::detached);
    std::thread origin_thread([&] { origin_io.run(); });

    // Proxy thread: one io_context, as in the server.
    asio::io_context proxy_io;
    auto gate = std::make_shared<EgressGate>(
        proxy_io.get_executor(),
        NetworkPolicy::from_strings({"bench.test:*", "127.0.0.1:" + std::to_string(origin_port)},
                                    {}),
        nullptr, nullptr);
    gate->set_resolver([](std::string) -> asio::awaitable<std::vector<Address>> {
        co_return std::vector<Address>{asio::ip::make_address("127.0.0.1")};
    });
    ProxyLimits limits;
    limits.splice_pipe_bytes = g_pipe;
    limits.splice = g_splice;
    ProxyServer proxy(proxy_io.get_executor(), gate, limits);
    std::uint16_t http_port = 0;
    http_port = proxy.add_listener(listen_loopback(&http_port), ProxyProtocol::http);
    proxy.start();
    auto work = asio::make_work_guard(proxy_io);
    std::thread proxy_thread([&] { proxy_io.run(); });

    const std::string target = "bench.test:" + std::to_string(origin_port);
    std::printf("net_bench: loopback, %.0f MiB download, %d small requests\n",
                static_cast<double>(g_bytes) / (1 << 20), g_requests);

    // 1. Throughput. Wall-clock rates, plus the CPU time all threads spent per GiB (origin
    // + client, + proxy for the tunnel): on a machine shared with other work the wall-clock
    // ratio mostly measures the scheduler, the CPU ratio what the proxy costs.
    double direct_rate = 0, tunnel_rate = 0, proxy_cpu = 1e9;
    double direct_cpu = 1e9, tunnel_cpu = 1e9;
    std::thread::native_handle_type self = pthread_self();
    auto cpu_of = [](pthread_t t) {
        clockid_t id;
        timespec ts{};
        if (pthread_getcpuclockid(t, &id) != 0 || clock_gettime(id, &ts) != 0) return 0.0;
        return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
    };
    auto all_cpu = [&](bool with_proxy) {
        return cpu_of(self) + cpu_of(origin_thread.native_handle()) +
               (with_proxy ? cpu_of(proxy_thread.native_handle()) : 0.0);
    };
    const int rounds = 3;
    for (int round = 0; round < rounds; ++round) { // best of 3 each, interleaved
        int d = connect_to(origin_port);
        send_all(d, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
        double c0 = all_cpu(false);
        direct_rate = std::max(direct_rate, download(d));
        direct_cpu = std::min(direct_cpu, all_cpu(false) - c0);
        ::close(d);

        int t = connect_to(http_port);
        send_all(t, "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n");
        std::string buf;
        while (buf.find("\r\n\r\n") == std::string::npos) {
            char c[256];
            auto n = ::recv(t, c, sizeof c, 0);
            if (n <= 0) return 1;
            buf.append(c, static_cast<std::size_t>(n));
        }
        if (!buf.starts_with("HTTP/1.1 200")) {
            std::fprintf(stderr, "CONNECT refused: %s\n", buf.c_str());
            return 1;
        }
        send_all(t, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
        double cpu0 = thread_cpu_seconds(proxy_thread);
        double t0 = all_cpu(true);
        tunnel_rate = std::max(tunnel_rate, download(t));
        proxy_cpu = std::min(proxy_cpu, thread_cpu_seconds(proxy_thread) - cpu0);
        tunnel_cpu = std::min(tunnel_cpu, all_cpu(true) - t0);
        ::close(t);
    }
    const double gib = static_cast<double>(g_bytes) / (1ull << 30);
    std::printf("throughput  direct   %8.1f MiB/s   CPU %.2f s/GiB\n", direct_rate / (1 << 20),
                direct_cpu / gib);
    std::printf(
        "throughput  CONNECT  %8.1f MiB/s   CPU %.2f s/GiB (proxy thread %.2f, splice %s)\n",
        tunnel_rate / (1 << 20), tunnel_cpu / gib, proxy_cpu / gib, g_splice ? "on" : "off");
    std::printf("ratio       wall-clock %.2f   CPU-bound estimate %.2f   (target >= 0.80)\n",
                tunnel_rate / direct_rate, direct_cpu / tunnel_cpu);

    // 2. Latency, kept-alive connections.
    auto measure = [&](bool via_proxy, bool keep) {
        std::vector<double> us;
        us.reserve(static_cast<std::size_t>(g_requests));
        std::string req =
            via_proxy ? "GET http://" + target + "/small HTTP/1.1\r\nHost: " + target + "\r\n\r\n"
                      : "GET /small HTTP/1.1\r\nHost: " + target + "\r\n\r\n";
        int fd = -1;
        std::string buf;
        for (int i = 0; i < g_requests; ++i) {
            auto start = Clock::now();
            if (fd < 0) fd = connect_to(via_proxy ? http_port : origin_port);
            send_all(fd, req);
            auto status = read_response(fd, buf);
            if (!status.starts_with("HTTP/1.1 200")) {
                std::fprintf(stderr, "unexpected: %s\n", status.c_str());
                std::exit(1);
            }
            if (!keep) {
                ::close(fd);
                fd = -1;
                buf.clear();
            }
            us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
        }
        if (fd >= 0) ::close(fd);
        return median(us);
    };
    double d_keep = measure(false, true), p_keep = measure(true, true);
    double d_new = measure(false, false), p_new = measure(true, false);
    std::printf("latency     keep-alive      direct %7.1f us   proxy %7.1f us   added %7.1f us\n",
                d_keep, p_keep, p_keep - d_keep);
    std::printf("latency     new connection  direct %7.1f us   proxy %7.1f us   added %7.1f us\n",
                d_new, p_new, p_new - d_new);

    asio::post(proxy_io, [&] { proxy.stop(); });
    work.reset();
    proxy_io.stop();
    proxy_thread.join();
    origin_io.stop();
    origin_thread.join();
    return 0;
}
