// The bulk path of CONNECT tunnels: after the first bulk_after_bytes a busy direction is
// relayed on a dedicated thread (ProxyLimits). These tests drive a raw origin that sends a
// known byte pattern in phases, and check that the thread path keeps every guarantee of the
// event-loop path: bytes intact and counted, budgets, idle timeout, ProxyServer::stop(), the
// thread caps, and the hand-back to the event loop when a tunnel goes quiet.
#include "test_servers.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>

using namespace cordon::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t MiB = 1 << 20;

char pattern(std::uint64_t i) {
    return static_cast<char>((i * 7 + i / 4096) % 251);
}

// A TCP origin on 127.0.0.1: each accepted connection is served by `serve(fd)` on its own
// thread. Threads are joined in the destructor.
class RawOrigin {
  public:
    explicit RawOrigin(std::function<void(int)> serve) : serve_(std::move(serve)) {
        fd_ = listen_loopback(&port_);
        acceptor_ = std::thread([this] {
            for (;;) {
                int c = ::accept(fd_, nullptr, nullptr);
                if (c < 0) return;
                std::lock_guard lk(m_);
                workers_.emplace_back([this, c] {
                    serve_(c);
                    ::close(c);
                });
            }
        });
    }
    ~RawOrigin() {
        ::shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        acceptor_.join();
        std::lock_guard lk(m_);
        for (auto& w : workers_)
            w.join();
    }
    std::uint16_t port() const { return port_; }

  private:
    std::function<void(int)> serve_;
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::thread acceptor_;
    std::mutex m_;
    std::vector<std::thread> workers_;
};

// Sends bytes [from, from + n) of the pattern; false when the peer went away.
bool send_pattern(int fd, std::uint64_t from, std::uint64_t n) {
    std::vector<char> buf(256 * 1024);
    while (n > 0) {
        std::size_t k = std::min<std::uint64_t>(n, buf.size());
        for (std::size_t i = 0; i < k; ++i)
            buf[i] = pattern(from + i);
        std::size_t off = 0;
        while (off < k) {
            auto m = ::send(fd, buf.data() + off, k - off, MSG_NOSIGNAL);
            if (m <= 0) return false;
            off += static_cast<std::size_t>(m);
        }
        from += k;
        n -= k;
    }
    return true;
}

// Waits until the peer closes (or `limit` passes).
void wait_closed(int fd, std::chrono::milliseconds limit = 20000ms) {
    pollfd p{fd, POLLIN, 0};
    char c[4096];
    auto end = Clock::now() + limit;
    while (Clock::now() < end) {
        if (::poll(&p, 1, 100) > 0 && ::recv(fd, c, sizeof c, 0) <= 0) return;
    }
}

// Opens a CONNECT tunnel to 127.0.0.1:port through the proxy; -1 unless 200.
int open_tunnel(std::uint16_t proxy_port, std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(proxy_port);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
    std::string t = "127.0.0.1:" + std::to_string(port);
    std::string req = "CONNECT " + t + " HTTP/1.1\r\nHost: " + t + "\r\n\r\n";
    ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    std::string head;
    char c;
    while (head.find("\r\n\r\n") == std::string::npos && ::recv(fd, &c, 1, 0) == 1)
        head += c;
    if (!head.starts_with("HTTP/1.1 200")) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// Reads up to `n` bytes (less at EOF / error / timeout) and checks them against the pattern
// starting at `from`. Returns the count read; `intact` is false on the first wrong byte.
std::uint64_t read_pattern(int fd, std::uint64_t from, std::uint64_t n, bool& intact,
                           std::chrono::milliseconds limit = 20000ms) {
    std::vector<char> buf(1 << 20);
    std::uint64_t got = 0;
    auto end = Clock::now() + limit;
    pollfd p{fd, POLLIN, 0};
    while (got < n && Clock::now() < end) {
        if (::poll(&p, 1, 100) <= 0) continue;
        auto k = ::recv(fd, buf.data(), std::min<std::uint64_t>(buf.size(), n - got), 0);
        if (k <= 0) break;
        for (ssize_t i = 0; i < k; ++i)
            if (buf[static_cast<std::size_t>(i)] != pattern(from + got + i)) intact = false;
        got += static_cast<std::uint64_t>(k);
    }
    return got;
}

// true when the connection is closed by the peer within `limit`.
bool closed_within(int fd, std::chrono::milliseconds limit) {
    char c[65536];
    pollfd p{fd, POLLIN, 0};
    auto end = Clock::now() + limit;
    while (Clock::now() < end) {
        if (::poll(&p, 1, 20) <= 0) continue;
        if (::recv(fd, c, sizeof c, 0) <= 0) return true;
    }
    return false;
}

struct BulkWorld {
    explicit BulkWorld(ProxyLimits l = {}) : f(t, {"127.0.0.1:*"}, {}, l) {}
    IoThread t;
    ProxyFixture f;
    std::size_t threads() {
        return t.get<std::size_t>([&] { return f.proxy->bulk_threads(); });
    }
};

} // namespace

TEST_CASE("bulk tunnels move to a relay thread and back when they go quiet", "[net][bulk]") {
    std::atomic<bool> second{false};
    RawOrigin origin([&](int fd) {
        send_pattern(fd, 0, 8 * MiB);
        while (!second)
            std::this_thread::sleep_for(10ms);
        send_pattern(fd, 8 * MiB, 8 * MiB);
    });
    ProxyLimits l;
    l.bulk_idle_handback = 200ms;
    BulkWorld w(l);
    int fd = open_tunnel(w.f.http_port, origin.port());
    REQUIRE(fd >= 0);
    bool intact = true;
    CHECK(read_pattern(fd, 0, 8 * MiB, intact) == 8 * MiB);
    CHECK(w.threads() == 1); // the download direction; the upload one stays on the loop
    std::this_thread::sleep_for(600ms);
    CHECK(w.threads() == 0); // quiet for longer than bulk_idle_handback
    second = true;
    CHECK(read_pattern(fd, 8 * MiB, 8 * MiB, intact) == 8 * MiB);
    CHECK(intact);
    ::close(fd);
    auto recs = w.f.records_copy();
    REQUIRE(recs.size() == 1);
    CHECK(recs[0].bytes_down == 16 * MiB);
    CHECK(w.t.get<std::uint64_t>([&] { return w.f.proxy->bytes_down(); }) == 16 * MiB);
}

TEST_CASE("uploads take the bulk path too", "[net][bulk]") {
    std::atomic<std::uint64_t> received{0};
    std::atomic<bool> upload_intact{true};
    RawOrigin origin([&](int fd) {
        std::vector<char> buf(1 << 20);
        std::uint64_t got = 0;
        for (;;) {
            auto k = ::recv(fd, buf.data(), buf.size(), 0);
            if (k <= 0) break;
            for (ssize_t i = 0; i < k; ++i)
                if (buf[static_cast<std::size_t>(i)] != pattern(got + i)) upload_intact = false;
            got += static_cast<std::uint64_t>(k);
        }
        received = got;
        ::send(fd, "done", 4, MSG_NOSIGNAL);
    });
    BulkWorld w;
    int fd = open_tunnel(w.f.http_port, origin.port());
    REQUIRE(fd >= 0);
    REQUIRE(send_pattern(fd, 0, 12 * MiB));
    ::shutdown(fd, SHUT_WR); // EOF travels through the thread as a half-close
    char reply[8] = {};
    std::size_t n = 0;
    for (ssize_t k; n < 4 && (k = ::recv(fd, reply + n, 4 - n, 0)) > 0;)
        n += static_cast<std::size_t>(k);
    CHECK(std::string(reply, n) == "done");
    CHECK(received == 12 * MiB);
    CHECK(upload_intact);
    ::close(fd);
    auto recs = w.f.records_copy();
    REQUIRE(recs.size() == 1);
    CHECK(recs[0].bytes_up == 12 * MiB);
}

TEST_CASE("stop() ends bulk tunnels and their threads at once", "[net][bulk]") {
    RawOrigin origin([&](int fd) {
        send_pattern(fd, 0, 4 * MiB);
        wait_closed(fd);
    });
    ProxyLimits l;
    l.bulk_idle_handback = 60s; // only the shutdown can end the thread
    BulkWorld w(l);
    int fd = open_tunnel(w.f.http_port, origin.port());
    REQUIRE(fd >= 0);
    bool intact = true;
    CHECK(read_pattern(fd, 0, 4 * MiB, intact) == 4 * MiB);
    CHECK(w.threads() == 1);
    auto start = Clock::now();
    w.t.sync([&] { w.f.proxy->stop(); });
    CHECK(closed_within(fd, 2000ms));
    for (int i = 0; i < 200 && w.threads() > 0; ++i)
        std::this_thread::sleep_for(10ms);
    CHECK(w.threads() == 0);
    CHECK(Clock::now() - start < 2s);
    ::close(fd);
}

TEST_CASE("idle timeout applies to bulk tunnels and a steady trickle keeps them open",
          "[net][bulk]") {
    ProxyLimits l;
    l.idle_timeout = 500ms;
    l.bulk_idle_handback = 60s;
    SECTION("silent after the bulk part: closed after the idle timeout") {
        RawOrigin origin([&](int fd) {
            send_pattern(fd, 0, 4 * MiB);
            wait_closed(fd);
        });
        BulkWorld w(l);
        int fd = open_tunnel(w.f.http_port, origin.port());
        REQUIRE(fd >= 0);
        bool intact = true;
        CHECK(read_pattern(fd, 0, 4 * MiB, intact) == 4 * MiB);
        CHECK(w.threads() == 1);
        auto start = Clock::now();
        CHECK(closed_within(fd, 3000ms));
        CHECK(Clock::now() - start >= 300ms);
        for (int i = 0; i < 200 && w.threads() > 0; ++i)
            std::this_thread::sleep_for(10ms);
        CHECK(w.threads() == 0);
        ::close(fd);
    }
    SECTION("data every 100 ms for 1.5 s on the thread: not idle") {
        RawOrigin origin([&](int fd) {
            send_pattern(fd, 0, 2 * MiB);
            for (int i = 0; i < 15; ++i) {
                std::this_thread::sleep_for(100ms);
                send_pattern(fd, 2 * MiB + i * 65536ull, 65536);
            }
        });
        BulkWorld w(l);
        int fd = open_tunnel(w.f.http_port, origin.port());
        REQUIRE(fd >= 0);
        bool intact = true;
        CHECK(read_pattern(fd, 0, 2 * MiB + 15 * 65536, intact) == 2 * MiB + 15 * 65536);
        CHECK(intact);
        ::close(fd);
    }
}

TEST_CASE("the byte budget ends a bulk tunnel", "[net][bulk]") {
    RawOrigin origin([&](int fd) {
        send_pattern(fd, 0, 32 * MiB);
        wait_closed(fd);
    });
    ProxyLimits l;
    l.max_total_bytes = 6 * MiB;
    BulkWorld w(l);
    int fd = open_tunnel(w.f.http_port, origin.port());
    REQUIRE(fd >= 0);
    bool intact = true;
    auto got = read_pattern(fd, 0, 32 * MiB, intact, 10000ms);
    CHECK(got >= 6 * MiB - 64 * 1024);
    CHECK(got < 12 * MiB); // at most a chunk beyond the budget, then closed
    CHECK(intact);
    ::close(fd);
    // Later tunnels are refused.
    CHECK(open_tunnel(w.f.http_port, origin.port()) == -1);
}

TEST_CASE("over the thread cap, bulk tunnels stay on the event loop", "[net][bulk]") {
    RawOrigin origin([&](int fd) { send_pattern(fd, 0, 24 * MiB); });
    ProxyLimits l;
    l.max_bulk_threads = 1;
    BulkWorld w(l);
    int a = open_tunnel(w.f.http_port, origin.port());
    int b = open_tunnel(w.f.http_port, origin.port());
    REQUIRE(a >= 0);
    REQUIRE(b >= 0);
    bool ia = true, ib = true;
    std::uint64_t ga = 0, gb = 0;
    std::size_t most = 0;
    // Read both in turns, 1 MiB at a time.
    while (ga < 24 * MiB || gb < 24 * MiB) {
        std::uint64_t before = ga + gb;
        if (ga < 24 * MiB)
            ga += read_pattern(a, ga, std::min<std::uint64_t>(MiB, 24 * MiB - ga), ia);
        if (gb < 24 * MiB)
            gb += read_pattern(b, gb, std::min<std::uint64_t>(MiB, 24 * MiB - gb), ib);
        most = std::max(most, w.threads());
        if (ga + gb == before) break;
    }
    CHECK(ga == 24 * MiB);
    CHECK(gb == 24 * MiB);
    CHECK(ia);
    CHECK(ib);
    CHECK(most == 1);
    ::close(a);
    ::close(b);
}
