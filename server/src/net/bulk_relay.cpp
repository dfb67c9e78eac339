#include "bulk_relay.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <memory>
#include <system_error>
#include <thread>

namespace cordon::server::net {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

bool RelayTraffic::account(std::uint64_t n, bool upload) {
    std::uint64_t u = up.load(std::memory_order_relaxed);
    std::uint64_t d = down.load(std::memory_order_relaxed);
    if (upload)
        u = up.fetch_add(n, std::memory_order_relaxed) + n;
    else
        d = down.fetch_add(n, std::memory_order_relaxed) + n;
    if (max_upload && u > max_upload) return false;
    if (max_total && u + d > max_total) return false;
    if (upload && egress && !egress->charge(n)) return false;
    return true;
}

bool RelayTraffic::budget_left() const {
    std::uint64_t u = up.load(std::memory_order_relaxed);
    std::uint64_t d = down.load(std::memory_order_relaxed);
    return !(max_upload && u >= max_upload) && !(max_total && u + d >= max_total) &&
           (!egress || egress->left());
}

namespace {

std::atomic<std::size_t> g_bulk_threads{0};

// What the thread reports; read by the coroutine after the eventfd fired.
struct Outcome {
    std::atomic<BulkEnd> end{BulkEnd::error};
    std::atomic<std::uint64_t> bytes{0};
};

// Waits until `fd` is ready for `events`; false on timeout. Errors and hang-ups count as
// ready: the next recv/send reports them.
bool wait_for(int fd, short events, int timeout_ms) {
    pollfd p{fd, events, 0};
    for (;;) {
        int r = ::poll(&p, 1, timeout_ms);
        if (r > 0) return true;
        if (r == 0) return false;
        if (errno != EINTR) return true;
    }
}

BulkEnd relay_loop(int from, int to, const BulkJob& job, Outcome& out) {
    std::size_t size = job.initial_buffer;
    std::unique_ptr<char[]> buf(new char[size]);
    const int idle_ms = static_cast<int>(job.idle_handback.count());
    for (;;) {
        ssize_t n = ::recv(from, buf.get(), size, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return BulkEnd::error;
            if (!wait_for(from, POLLIN, idle_ms)) return BulkEnd::idle;
            continue;
        }
        if (n == 0) {
            ::shutdown(to, SHUT_WR);
            return BulkEnd::eof;
        }
        job.activity->store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
        bool ok = job.traffic->account(static_cast<std::uint64_t>(n), job.upload);
        std::size_t off = 0;
        while (off < static_cast<std::size_t>(n)) {
            ssize_t m =
                ::send(to, buf.get() + off, static_cast<std::size_t>(n) - off, MSG_NOSIGNAL);
            if (m < 0) {
                if (errno == EINTR) continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK) return BulkEnd::error;
                wait_for(to, POLLOUT, -1);
                continue;
            }
            off += static_cast<std::size_t>(m);
            out.bytes.fetch_add(static_cast<std::uint64_t>(m), std::memory_order_relaxed);
        }
        job.activity->store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
        if (!ok) return BulkEnd::budget;
        // A read that filled the buffer: more is queued; read bigger chunks (fewer calls).
        if (static_cast<std::size_t>(n) == size && size < job.max_buffer) {
            size = std::min(size * 2, job.max_buffer);
            buf.reset(new char[size]);
        }
    }
}

bool try_acquire_bulk_thread(std::size_t cap) {
    std::size_t n = g_bulk_threads.load();
    do {
        if (n >= cap) return false;
    } while (!g_bulk_threads.compare_exchange_weak(n, n + 1));
    return true;
}

// net.core.rmem_max: the largest SO_RCVBUF an unprivileged process may set.
std::size_t rmem_max() {
    static const std::size_t value = [] {
        std::ifstream f("/proc/sys/net/core/rmem_max");
        std::size_t v = 0;
        f >> v;
        return v;
    }();
    return value;
}

} // namespace

bool limit_receive_window(int fd, std::size_t bytes, std::chrono::microseconds max_rtt) {
    if (bytes == 0 || rmem_max() < bytes) return false;
    tcp_info info{};
    socklen_t len = sizeof info;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 || info.tcpi_rtt == 0 ||
        info.tcpi_rtt > static_cast<std::uint64_t>(max_rtt.count()))
        return false;
    int v = static_cast<int>(bytes);
    return ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) == 0;
}

std::size_t bulk_threads_running() {
    return g_bulk_threads.load();
}

asio::awaitable<BulkResult> relay_on_thread(BulkJob job) {
    constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
    auto ex = co_await asio::this_coro::executor;
    if (!try_acquire_bulk_thread(job.process_cap)) co_return BulkResult{};
    // From here the slot is released by the thread when it ends, or below if none starts.
    int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) {
        g_bulk_threads.fetch_sub(1);
        co_return BulkResult{};
    }
    asio::posix::stream_descriptor done(ex, efd); // owns efd
    int from = ::fcntl(job.from, F_DUPFD_CLOEXEC, 0);
    int to = ::fcntl(job.to, F_DUPFD_CLOEXEC, 0);
    int signal = ::fcntl(efd, F_DUPFD_CLOEXEC, 0);
    auto close_all = [&] {
        for (int fd : {from, to, signal})
            if (fd >= 0) ::close(fd);
        g_bulk_threads.fetch_sub(1);
    };
    if (from < 0 || to < 0 || signal < 0) {
        close_all();
        co_return BulkResult{};
    }
    auto out = std::make_shared<Outcome>();
    try {
        std::thread([from, to, signal, job, out] {
            BulkEnd end = BulkEnd::error;
            try {
                end = relay_loop(from, to, job, *out);
            } catch (const std::bad_alloc&) {
            }
            out->end.store(end);
            ::close(from);
            ::close(to);
            g_bulk_threads.fetch_sub(1);
            std::uint64_t one = 1;
            [[maybe_unused]] auto w = ::write(signal, &one, sizeof one);
            ::close(signal);
        }).detach();
    } catch (const std::system_error&) {
        close_all();
        co_return BulkResult{};
    }
    for (;;) {
        auto [ec] =
            co_await done.async_wait(asio::posix::stream_descriptor::wait_read, tuple_awaitable);
        std::uint64_t v = 0;
        if (::read(efd, &v, sizeof v) == sizeof v) break;
        if (ec) co_return BulkResult{BulkEnd::error, out->bytes.load()};
    }
    co_return BulkResult{out->end.load(), out->bytes.load()};
}

} // namespace cordon::server::net
