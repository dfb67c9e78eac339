// net_bench: what the proxy costs on loopback, measured against the direct path in the
// same run.
//   1. throughput: download N bytes (default 1 GiB) through a CONNECT tunnel vs directly,
//      `--runs` interleaved rounds (default 5); prints the median rates, the median of the
//      per-round ratios (target >= 0.8) and the CPU time per GiB of each thread.
//   2. latency: median time of a small HTTP request through the HTTP proxy vs directly,
//      on a kept-alive connection and on a new connection per request.
// The origin runs on its own thread, the proxy (EgressGate + ProxyServer) on another (plus
// its bulk relay threads), the client is blocking code on the main thread. Nothing leaves
// 127.0.0.1.
//
// Usage: net_bench [--bytes N] [--requests N] [--runs N]
//                  proxy settings (ProxyLimits): [--threads on|off] [--splice on|off]
//                  [--pipe BYTES] [--window on|off] [--client-cc NAME|default]
//                  the bench's own sockets: [--origin-cc NAME] [--client-rcvbuf BYTES]
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
bool g_threads = true;
int g_runs = 5;
bool g_window = true;
int g_client_rcvbuf = 0;                              // 0: autotuned
std::string g_origin_cc;                              // "": the system default
std::string g_proxy_cc = "-";                         // "-": the proxy's default
std::size_t g_pipe = ProxyLimits{}.splice_pipe_bytes; // what the server uses

// Origin: "GET /stream" -> raw g_bytes then close; anything else -> small HTTP response,
// keep-alive.
asio::awaitable<void> origin_conn(tcp::socket s) {
    boost::system::error_code ec;
    s.set_option(tcp::no_delay(true), ec);
    if (!g_origin_cc.empty())
        ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_CONGESTION, g_origin_cc.data(),
                     static_cast<socklen_t>(g_origin_cc.size()));
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
    if (g_client_rcvbuf)
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &g_client_rcvbuf, sizeof g_client_rcvbuf);
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
        if (!std::strcmp(argv[i], "--threads")) g_threads = std::string(argv[i + 1]) != "off";
        if (!std::strcmp(argv[i], "--runs")) g_runs = std::stoi(argv[i + 1]);
        if (!std::strcmp(argv[i], "--origin-cc")) g_origin_cc = argv[i + 1];
        if (!std::strcmp(argv[i], "--window")) g_window = std::string(argv[i + 1]) != "off";
        if (!std::strcmp(argv[i], "--client-rcvbuf")) g_client_rcvbuf = std::stoi(argv[i + 1]);
        if (!std::strcmp(argv[i], "--client-cc")) g_proxy_cc = argv[i + 1];
    }
    g_requests = std::clamp(g_requests, 10, 100000);
    g_runs = std::clamp(g_runs, 1, 101);

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
    limits.bulk_threads = g_threads;
    if (!g_window) limits.bulk_receive_buffer_bytes = 0;
    if (g_proxy_cc != "-")
        limits.client_congestion_control = g_proxy_cc == "default" ? "" : g_proxy_cc;
    ProxyServer proxy(proxy_io.get_executor(), gate, limits);
    std::uint16_t http_port = 0;
    http_port = proxy.add_listener(listen_loopback(&http_port), ProxyProtocol::http);
    proxy.start();
    auto work = asio::make_work_guard(proxy_io);
    std::thread proxy_thread([&] { proxy_io.run(); });

    const std::string target = "bench.test:" + std::to_string(origin_port);
    std::printf("net_bench: loopback, %.0f MiB download, %d small requests\n",
                static_cast<double>(g_bytes) / (1 << 20), g_requests);

    // 1. Throughput, `runs` interleaved rounds of direct and CONNECT, medians reported.
    // Besides wall-clock rates: the CPU time each thread spent per GiB. On a machine shared
    // with other work the wall-clock ratio mostly measures the scheduler; the CPU figures
    // say what the proxy costs. "relay" is the process's CPU time outside the named threads
    // (the proxy's bulk relay threads, if any).
    auto cpu_of = [](pthread_t t) {
        clockid_t id;
        timespec ts{};
        if (pthread_getcpuclockid(t, &id) != 0 || clock_gettime(id, &ts) != 0) return 0.0;
        return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
    };
    auto process_cpu = [] {
        timespec ts{};
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
    };
    const pthread_t client_thread = pthread_self();
    struct Cpu {
        double client = 0, origin = 0, proxy = 0, relay = 0;
        double total() const { return client + origin + proxy + relay; }
    };
    auto cpu_now = [&] {
        Cpu c;
        c.client = cpu_of(client_thread);
        c.origin = cpu_of(origin_thread.native_handle());
        c.proxy = cpu_of(proxy_thread.native_handle());
        c.relay = process_cpu() - c.client - c.origin - c.proxy;
        return c;
    };
    auto cpu_diff = [](const Cpu& a, const Cpu& b) {
        return Cpu{b.client - a.client, b.origin - a.origin, b.proxy - a.proxy, b.relay - a.relay};
    };
    struct Run {
        double rate;
        Cpu cpu;
    };
    std::vector<Run> direct_runs, tunnel_runs;
    for (int round = 0; round < g_runs; ++round) {
        int d = connect_to(origin_port);
        send_all(d, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
        Cpu c0 = cpu_now();
        double rate = download(d);
        direct_runs.push_back({rate, cpu_diff(c0, cpu_now())});
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
        c0 = cpu_now();
        rate = download(t);
        tunnel_runs.push_back({rate, cpu_diff(c0, cpu_now())});
        ::close(t);
    }
    // Medians of each figure separately.
    auto med = [](const std::vector<Run>& runs, auto field) {
        std::vector<double> v;
        for (auto& r : runs)
            v.push_back(field(r));
        return median(v);
    };
    const double gib = static_cast<double>(g_bytes) / (1ull << 30);
    auto report = [&](const char* name, const std::vector<Run>& runs) {
        std::vector<double> rates;
        for (auto& r : runs)
            rates.push_back(r.rate / (1 << 20));
        std::sort(rates.begin(), rates.end());
        std::printf("throughput  %-8s %8.1f MiB/s (median of %zu, %.0f..%.0f)\n", name,
                    median(rates), rates.size(), rates.front(), rates.back());
        std::printf("            CPU s/GiB  total %.2f = origin %.2f + client %.2f + proxy %.2f "
                    "+ relay threads %.2f\n",
                    med(runs, [](const Run& r) { return r.cpu.total(); }) / gib,
                    med(runs, [](const Run& r) { return r.cpu.origin; }) / gib,
                    med(runs, [](const Run& r) { return r.cpu.client; }) / gib,
                    med(runs, [](const Run& r) { return r.cpu.proxy; }) / gib,
                    med(runs, [](const Run& r) { return r.cpu.relay; }) / gib);
    };
    report("direct", direct_runs);
    report("CONNECT", tunnel_runs);
    std::vector<double> ratios;
    for (std::size_t i = 0; i < direct_runs.size(); ++i)
        ratios.push_back(tunnel_runs[i].rate / direct_runs[i].rate);
    double direct_cpu = med(direct_runs, [](const Run& r) { return r.cpu.total(); });
    double tunnel_cpu = med(tunnel_runs, [](const Run& r) { return r.cpu.total(); });
    std::printf("ratio       wall-clock %.2f (median of per-round ratios)   CPU-bound estimate "
                "%.2f   (target >= 0.80; splice %s, bulk threads %s)\n",
                median(ratios), direct_cpu / tunnel_cpu, g_splice ? "on" : "off",
                g_threads ? "on" : "off");

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
