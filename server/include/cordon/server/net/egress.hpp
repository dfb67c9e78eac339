// EgressGate: the one place that decides whether a connection to host:port may be made,
// shared by the proxy (ProxyServer) and `fetch`. One gate per session.
//
// authorize(host, port, via, request) does, in this order:
//   1. policy.check_host (no DNS yet, with the HTTP request line when there is one: method /
//      path rules, NET-06): deny -> refused; allow -> step 3; ask -> step 2.
//   2. a remembered `allow-session` for host:port, else ONE question to `ask` (concurrent
//      requests for the same host:port share it); no answer within ask_timeout -> deny.
//      Questions are rate-limited per gate (policy.limits(): at most N waiting at once and
//      M per window); beyond that the destination is refused at once, without asking, with
//      a reason starting "too many approval questions".
//      A name that is denied (by rule, by the user, or by timeout) is never resolved.
//   3. resolve the name ONCE (IP literals are not resolved) through the resolver hook.
//   4. check EVERY address (policy.check_address). A non-global address not listed by the
//      policy needs the user's approval of that exact host + address (a second question
//      naming the address; allow-session remembers host+address); otherwise refused.
//   5. return the checked addresses: the caller dials exactly these (pinned, no second
//      lookup), so DNS rebinding cannot swap in another address.
// Each refusal calls `violation` with {kind:"network", host, port, address?, reason, rule,
// via} and returns allowed=false with the reason.
//
// Thread-safety: single-threaded; use on the executor given to the constructor.
#pragma once

#include "cordon/server/net/policy.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace cordon::server::net {

namespace asio = boost::asio;

// The user's answer to sandbox/approve.
enum class Decision { allow_once, allow_session, deny };
const char* to_string(Decision d);
// "allow-once" | "allow-session" | anything else -> deny.
Decision parse_decision(std::string_view s);

// One question for the user. Maps to sandbox/approve {kind:"network", host, port, address?,
// detail}; `via` ("http", "connect", "socks5", "fetch") and `reason` belong in `detail`.
struct ApprovalQuestion {
    std::string host; // canonical
    std::uint16_t port = 0;
    std::optional<std::string> address; // set when the question is about a resolved address
    std::string via;
    std::string reason; // why the policy did not decide by itself
};
json to_json(const ApprovalQuestion& q); // {kind:"network", host, port, address?, detail}

// Asks the user. Should return deny when the client has no approvals capability. May throw
// (treated as deny). The gate applies its own timeout.
using AskFn = std::function<asio::awaitable<Decision>(ApprovalQuestion)>;
// Receives every refusal: {kind:"network", host, port, address?, reason, rule, via}.
using ViolationFn = std::function<void(const json& detail)>;
// Resolves a canonical name to addresses (throws boost::system::system_error on failure).
using ResolveFn = std::function<asio::awaitable<std::vector<Address>>(std::string name)>;

// The default resolver: asio's getaddrinfo-based tcp::resolver, queried with the name
// fully qualified (trailing dot) so that resolv.conf search domains cannot change it.
ResolveFn system_resolver(asio::any_io_executor ex);

struct EgressOptions {
    std::chrono::milliseconds ask_timeout{60000};
    // This host's interface addresses are refused like loopback; refreshed this often.
    std::chrono::seconds interface_refresh{10};
    // Whether anyone can answer a question now (e.g. the client declared approvals). When
    // set and false, undecided destinations are refused at once, saying so.
    std::function<bool()> can_ask;
};

// The session's egress byte budget (NetworkLimits::max_egress_bytes): bytes sent out by
// the proxy (tunnel and SOCKS uploads, HTTP request heads and bodies) and by fetch.
// Thread-safe: the proxy's bulk relay threads charge it too.
class EgressBudget {
  public:
    explicit EgressBudget(std::uint64_t max = 0) : max_(max) {}
    // Counts n bytes; false when the budget is now exceeded.
    bool charge(std::uint64_t n) {
        std::uint64_t used = used_.fetch_add(n, std::memory_order_relaxed) + n;
        std::uint64_t m = max_.load(std::memory_order_relaxed);
        return m == 0 || used <= m;
    }
    // Whether anything may still be sent.
    bool left() const {
        std::uint64_t m = max_.load(std::memory_order_relaxed);
        return m == 0 || used_.load(std::memory_order_relaxed) < m;
    }
    std::uint64_t used() const { return used_.load(std::memory_order_relaxed); }
    std::uint64_t max() const { return max_.load(std::memory_order_relaxed); }
    void set_max(std::uint64_t m) { max_.store(m, std::memory_order_relaxed); }

  private:
    std::atomic<std::uint64_t> used_{0};
    std::atomic<std::uint64_t> max_;
};

struct Authorization {
    bool allowed = false;
    std::vector<asio::ip::tcp::endpoint> endpoints; // checked, pinned; dial these only
    std::string reason;                             // why refused (or which rule allowed)
    std::string rule;
    std::optional<std::string> address; // the address that was refused, if any
    std::string decision; // "policy", "allow-once", "allow-session", "deny", "timeout"
    bool failed = false;  // refused for a non-policy reason (name did not resolve): no
                          // violation is reported; proxies answer 502, not 403
};

class EgressGate {
  public:
    EgressGate(asio::any_io_executor ex, NetworkPolicy policy, AskFn ask, ViolationFn violation,
               EgressOptions opts = {});

    // `request`: the HTTP request (HTTP proxy, fetch); nullptr for an opaque tunnel.
    asio::awaitable<Authorization> authorize(const Host& host, std::uint16_t port, std::string via,
                                             const RequestLine* request = nullptr);
    // For a further request on a connection authorize() already allowed (HTTP keep-alive):
    // refuses it (violation reported) when a method/path rule does not permit it, or when
    // the egress budget is exhausted. nullopt: go ahead.
    std::optional<Authorization> check_request(const Host& host, std::uint16_t port,
                                               const std::string& via, const RequestLine& request);
    // The session's egress budget, shared with the proxy (and its relay threads) and fetch.
    const std::shared_ptr<EgressBudget>& egress_budget() const { return egress_; }
    // Refuses (violation reported) because the egress budget is exhausted.
    Authorization refuse_egress(const Host& host, std::uint16_t port, const std::string& via);
    // A refusal decided by the caller (e.g. a protocol rule of the proxy): reports the
    // violation {kind:"network", host, port, address?, reason, rule, via} and returns it.
    Authorization refuse(const Host& h, std::uint16_t port, const std::string& via,
                         std::string reason, std::string rule, std::optional<std::string> address,
                         std::string decision);

    // Replaces the resolver (tests count lookups or map names to 127.0.0.1 with it).
    void set_resolver(ResolveFn r) { resolve_ = std::move(r); }
    // Replaces the policy (e.g. after the user edited the config); approvals are kept.
    void set_policy(NetworkPolicy p) {
        policy_ = std::move(p);
        egress_->set_max(policy_.limits().max_egress_bytes);
    }
    const NetworkPolicy& policy() const { return policy_; }
    // Sets the interface addresses explicitly (tests); disables the periodic refresh.
    void set_own_addresses(std::vector<Address> a);

    // Name lookups performed so far (NET-02 tests assert none happen for denied names).
    std::uint64_t lookups() const { return lookups_; }
    // Questions actually sent to `ask` (shared questions count once).
    std::uint64_t questions() const { return questions_; }

    asio::any_io_executor get_executor() const { return ex_; }

  private:
    struct Pending;
    struct Answer {
        Decision decision;
        bool timed_out = false;
        std::string refused; // set when the question was not asked (rate limit)
    };
    asio::awaitable<Answer> ask_shared(ApprovalQuestion q, std::string key);
    // Why a new question may not be asked now ("" when it may).
    std::string question_limit_reached();
    const std::vector<Address>& own_addresses();

    asio::any_io_executor ex_;
    NetworkPolicy policy_;
    AskFn ask_;
    ViolationFn violation_;
    EgressOptions opts_;
    ResolveFn resolve_;
    std::set<std::string> session_allowed_; // "host:port" and "host:port|address"
    std::map<std::string, std::shared_ptr<Pending>> pending_;
    std::deque<std::chrono::steady_clock::time_point> asked_at_; // within the window
    std::shared_ptr<EgressBudget> egress_;
    std::vector<Address> own_;
    bool own_fixed_ = false;
    std::chrono::steady_clock::time_point own_at_{};
    std::uint64_t lookups_ = 0;
    std::uint64_t questions_ = 0;
};

// One line of the request log (for the audit log): every proxied request / tunnel / fetch.
struct RequestRecord {
    std::string via;    // "http", "connect", "socks5", "fetch"
    std::string method; // HTTP method, "CONNECT" for tunnels and SOCKS
    std::string host;
    std::uint16_t port = 0;
    std::string address; // dialled address ("" when not dialled)
    std::string target;  // request path for plain HTTP ("" otherwise)
    bool allowed = false;
    std::string decision; // "policy", "allow-once", "allow-session", "deny", ...
    std::string reason;
    int status = 0;               // HTTP status returned to the client (0: none / not HTTP)
    std::uint64_t bytes_up = 0;   // client -> destination
    std::uint64_t bytes_down = 0; // destination -> client
    std::uint64_t duration_ms = 0;
};
json to_json(const RequestRecord& r);
using RequestLogFn = std::function<void(const RequestRecord&)>;

} // namespace cordon::server::net
