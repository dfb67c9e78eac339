// ProxyServer: one session's network proxy. It accepts on listening sockets that the
// sandbox init created INSIDE the sandbox's network namespace (SandboxSpec::listen_ports ->
// InitProcess::listener_fds) and serves, per listener:
//   ProxyProtocol::http   - HTTP forward proxy (absolute-form `GET http://host/path`,
//                           plain HTTP only, keep-alive, hop-by-hop headers removed,
//                           request target and Host must agree) and `CONNECT host:port`
//                           tunnels (byte relay; the TLS stays end-to-end).
//   ProxyProtocol::socks5 - SOCKS5, no authentication, CONNECT with a domain name, IPv4
//                           or IPv6 address; BIND / UDP ASSOCIATE refused (reply 0x07);
//                           malformed input closes the connection.
// Every destination goes through the session's EgressGate (egress.hpp): policy before DNS,
// one shared question per host:port, resolved addresses checked and pinned for the dial.
// A refusal answers `403 Forbidden` (text body and `X-Cordon-Reason` header saying why) or
// SOCKS reply 0x02 "connection not allowed by ruleset"; the gate reports the violation.
// Every request / tunnel is reported to `log` (RequestRecord) when it ends.
//
// Abuse limits (NET-08) are per ProxyServer, i.e. per session: at most max_connections
// open connections (more are closed at once), a handshake deadline (request head or SOCKS
// negotiation complete within handshake_timeout, whatever the pace: slowloris), an idle
// timeout on established connections and tunnels, a header size cap, and byte budgets.
// Everything is asynchronous on one executor, so a flooded ProxyServer costs the others
// only its share of the event loop.
//
// Wiring (integrator): ports are arbitrary inside the private netns, e.g.
//   spec.listen_ports = {kHttpProxyPort, kSocksProxyPort};
//   ... after start_init: proxy.add_listener(init.listener_fds[0], ProxyProtocol::http);
//                         proxy.add_listener(init.listener_fds[1], ProxyProtocol::socks5);
//   proxy.start();  spec.env / exec env += proxy_env(kHttpProxyPort, kSocksProxyPort);
// and stop() (or destroy) the ProxyServer when the session closes.
//
// Thread-safety: single-threaded; every member on the executor given to the constructor.
#pragma once

#include "cordon/server/net/egress.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace cordon::server::net {

// Default ports of the proxy listeners inside the sandbox's own network namespace.
inline constexpr std::uint16_t kHttpProxyPort = 3128;
inline constexpr std::uint16_t kSocksProxyPort = 1080;

enum class ProxyProtocol { http, socks5 };

struct ProxyLimits {
    std::size_t max_connections = 128;        // open client connections at once (a tunnel
                                              // holds 6 fds: client, destination, 2 pipes)
    std::uint64_t max_total_bytes = 0;        // both directions, lifetime; 0: unlimited
    std::uint64_t max_upload_bytes = 0;       // client -> destination (egress); 0: unlimited
    std::size_t max_header_bytes = 64 * 1024; // request / response head
    std::chrono::milliseconds handshake_timeout{10000}; // request head / SOCKS negotiation
    std::chrono::milliseconds idle_timeout{300000};     // no byte either way
    std::chrono::milliseconds connect_timeout{10000};   // dialling the destination
    std::size_t relay_buffer_bytes = 64 * 1024;         // per direction per connection
    // Bulk tunnel traffic. The first bulk_after_bytes of each direction of a tunnel go
    // through relay_buffer_bytes on the event loop. After that the direction moves to a
    // dedicated thread (no event-loop round trip per chunk; its buffer grows to
    // bulk_buffer_bytes while reads fill it), if bulk_threads is set and fewer than
    // max_bulk_threads (this ProxyServer) and max_bulk_threads_process (all sessions) run;
    // the thread hands the direction back to the event loop after bulk_idle_handback
    // without data. Otherwise it stays on the event loop: splice(2) through a pipe of
    // splice_pipe_bytes when `splice` is set (no copy through user space), else copies.
    std::uint64_t bulk_after_bytes = 1 << 20;
    bool bulk_threads = true;
    std::size_t max_bulk_threads = 4;
    std::size_t max_bulk_threads_process = 32;
    std::size_t bulk_buffer_bytes = 4 << 20;
    std::chrono::milliseconds bulk_idle_handback{2000};
    bool splice = true;
    std::size_t splice_pipe_bytes = 1 << 20;
    // When a direction goes bulk over a short path (smoothed RTT <= the max below), its
    // receive buffer is fixed at bulk_receive_buffer_bytes instead of autotuned up to 32 MiB:
    // such a window only queues data in cache-cold memory and, on loopback, doubles the CPU
    // per byte of sender and relay. Longer paths keep the kernel's autotuning; nothing is
    // changed either when net.core.rmem_max is smaller. 0: never.
    std::size_t bulk_receive_buffer_bytes = 4 << 20;
    std::chrono::microseconds bulk_receive_buffer_max_rtt{1000};
    // TCP congestion control of the client connections (the sandbox side, which is always a
    // loopback hop). Not a pacing one: the system default may be BBR, whose pacing timers
    // cost more than the copy on a loopback hop and halve a tunnel's throughput in a VM.
    // Empty: the system default. Connections to destinations keep the system default.
    std::string client_congestion_control = "reno";
};

// The environment the sandbox's commands need to use the proxy (PROTOCOL.md "Inside the
// sandbox"): HTTP_PROXY/HTTPS_PROXY/http_proxy/https_proxy = http://127.0.0.1:<http>,
// ALL_PROXY/all_proxy = socks5h://127.0.0.1:<socks>, NO_PROXY/no_proxy =
// localhost,127.0.0.1,::1. A port of 0 leaves that group out.
std::map<std::string, std::string> proxy_env(std::uint16_t http_port, std::uint16_t socks_port);

class ProxyServer {
  public:
    ProxyServer(asio::any_io_executor ex, std::shared_ptr<EgressGate> gate, ProxyLimits limits = {},
                RequestLogFn log = {});
    ~ProxyServer(); // stop()
    ProxyServer(const ProxyServer&) = delete;
    ProxyServer& operator=(const ProxyServer&) = delete;

    // Takes ownership of a bound, listening TCP socket fd. Returns its local port.
    std::uint16_t add_listener(int fd, ProxyProtocol protocol);
    // Starts accepting on every listener (listeners added later start at once).
    void start();
    // Closes the listeners and every connection. Idempotent.
    void stop();

    EgressGate& gate() { return *gate_; }
    std::size_t active_connections() const;
    std::uint64_t rejected_connections() const; // closed because max_connections was reached
    std::uint64_t bytes_up() const;
    std::uint64_t bytes_down() const;
    std::size_t bulk_threads() const; // bulk relay threads of this ProxyServer running now

    struct State; // implementation

  private:
    std::shared_ptr<EgressGate> gate_;
    std::shared_ptr<State> state_;
};

} // namespace cordon::server::net
