// Bulk relay (internal to cordon_net): one direction of a busy tunnel relayed on a dedicated
// thread, so that a bulk transfer costs no event-loop round trip per chunk.
//
// The thread works on duplicates of the two socket descriptors (the sockets stay owned by
// the proxy's connection and stay non-blocking): it recv()s into a buffer that grows from
// `initial_buffer` to `max_buffer` while reads fill it, send()s it on, and poll()s only
// when a socket would block. It ends
//   - at EOF from `from` (after half-closing `to`): BulkEnd::eof;
//   - on an error of either socket, e.g. after the connection was shut down by the proxy
//     (ProxyServer::stop, idle timeout): BulkEnd::error;
//   - when RelayTraffic::account reports an exhausted budget (after sending that chunk,
//     like the event-loop relay): BulkEnd::budget;
//   - when `from` had nothing to read for `idle_handback` with nothing buffered:
//     BulkEnd::idle, and the caller relays on the event loop again (the thread slot is
//     freed for busier tunnels).
// Nothing the thread touches belongs to the event loop: counters are atomics shared through
// shared_ptr, and completion is signalled through an eventfd the awaiting coroutine waits
// on, so the thread stays safe even if the coroutine (or its io_context) is destroyed
// first. To end a thread early, shut the sockets down (shutdown(2) wakes its poll).
#pragma once

#include "cordon/server/net/egress.hpp"

#include <boost/asio/awaitable.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace cordon::server::net {

// Bytes relayed by one ProxyServer (both relay paths, all threads) and its budgets.
struct RelayTraffic {
    std::atomic<std::uint64_t> up{0};     // client -> destination
    std::atomic<std::uint64_t> down{0};   // destination -> client
    std::uint64_t max_total = 0;          // 0: unlimited
    std::uint64_t max_upload = 0;         // 0: unlimited
    std::shared_ptr<EgressBudget> egress; // the session's (gate's); uploads are charged to it

    // Counts n relayed bytes; false when a budget is now exceeded.
    bool account(std::uint64_t n, bool upload);
    // Whether any budget is left (a new request / tunnel may start).
    bool budget_left() const;
};

enum class BulkEnd { eof, error, budget, idle, no_thread };

struct BulkJob {
    int from = -1; // borrowed; duplicated for the thread
    int to = -1;
    bool upload = false;
    std::shared_ptr<RelayTraffic> traffic;
    // steady_clock ticks of the last relayed chunk (the proxy's idle watchdog reads it).
    std::shared_ptr<std::atomic<std::int64_t>> activity;
    std::size_t initial_buffer = 64 * 1024;
    std::size_t max_buffer = 4 << 20;
    std::chrono::milliseconds idle_handback{2000};
    std::size_t process_cap = 32; // bulk relay threads in the whole process
};

struct BulkResult {
    BulkEnd end = BulkEnd::no_thread;
    std::uint64_t bytes = 0; // relayed by the thread
};

// Runs the job on a new thread; completes when the thread has finished. BulkEnd::no_thread
// (nothing relayed) when `process_cap` threads run already, or no thread, descriptor or
// eventfd could be had; BulkEnd::error when the awaiting coroutine was cancelled (the
// caller must then shut the connection down).
boost::asio::awaitable<BulkResult> relay_on_thread(BulkJob job);

// On a short path (smoothed RTT of `fd` at most max_rtt), fixes the receive buffer of `fd`
// at `bytes` instead of letting the kernel grow it (up to net.ipv4.tcp_rmem's maximum, 32 MiB
// by default). A window far beyond bandwidth x RTT only queues data in cache-cold memory:
// on loopback it costs the sender and the relay about twice the CPU per byte. Does nothing
// (false) on longer paths, where the kernel's autotuning matters, or when net.core.rmem_max
// is below `bytes` (a smaller fixed buffer would cap throughput).
bool limit_receive_window(int fd, std::size_t bytes, std::chrono::microseconds max_rtt);

// Bulk relay threads running in this process.
std::size_t bulk_threads_running();

} // namespace cordon::server::net
