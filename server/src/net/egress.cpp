#include "cordon/server/net/egress.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>

namespace cordon::server::net {

using asio::ip::tcp;

const char* to_string(Decision d) {
    switch (d) {
    case Decision::allow_once:
        return "allow-once";
    case Decision::allow_session:
        return "allow-session";
    case Decision::deny:
        return "deny";
    }
    return "deny";
}

Decision parse_decision(std::string_view s) {
    if (s == "allow-once") return Decision::allow_once;
    if (s == "allow-session") return Decision::allow_session;
    return Decision::deny;
}

json to_json(const ApprovalQuestion& q) {
    json j = {{"kind", "network"}, {"host", q.host}, {"port", q.port}};
    if (q.address) j["address"] = *q.address;
    j["detail"] = {{"via", q.via}, {"reason", q.reason}};
    return j;
}

json to_json(const RequestRecord& r) {
    json j = {{"via", r.via},          {"method", r.method},        {"host", r.host},
              {"port", r.port},        {"allowed", r.allowed},      {"decision", r.decision},
              {"bytesUp", r.bytes_up}, {"bytesDown", r.bytes_down}, {"durationMs", r.duration_ms}};
    if (!r.address.empty()) j["address"] = r.address;
    if (!r.target.empty()) j["target"] = r.target;
    if (!r.reason.empty()) j["reason"] = r.reason;
    if (r.status) j["status"] = r.status;
    return j;
}

ResolveFn system_resolver(asio::any_io_executor ex) {
    return [ex](std::string name) -> asio::awaitable<std::vector<Address>> {
        tcp::resolver r(ex);
        // A trailing dot makes the name fully qualified: no resolv.conf search-domain
        // expansion, so the name that was checked is the name that is looked up.
        // (`localhost` is left alone: /etc/hosts does not match "localhost.".)
        std::string query = name == "localhost" ? name : name + ".";
        auto results = co_await r.async_resolve(query, "", asio::use_awaitable);
        std::vector<Address> out;
        for (auto& e : results) {
            auto a = e.endpoint().address();
            if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
        }
        co_return out;
    };
}

struct EgressGate::Pending {
    explicit Pending(const asio::any_io_executor& ex) : done(ex), timeout(ex) {
        done.expires_at(asio::steady_timer::time_point::max());
    }
    void finish(Decision d, bool by_timeout) {
        if (result) return;
        result = d;
        timed_out = by_timeout;
        done.cancel();
        timeout.cancel();
    }
    asio::steady_timer done;
    asio::steady_timer timeout;
    std::optional<Decision> result;
    bool timed_out = false;
};

EgressGate::EgressGate(asio::any_io_executor ex, NetworkPolicy policy, AskFn ask,
                       ViolationFn violation, EgressOptions opts)
    : ex_(ex), policy_(std::move(policy)), ask_(std::move(ask)), violation_(std::move(violation)),
      opts_(opts), resolve_(system_resolver(ex)),
      egress_(std::make_shared<EgressBudget>(policy_.limits().max_egress_bytes)) {}

void EgressGate::set_own_addresses(std::vector<Address> a) {
    own_ = std::move(a);
    own_fixed_ = true;
}

const std::vector<Address>& EgressGate::own_addresses() {
    auto now = std::chrono::steady_clock::now();
    if (own_fixed_ || (now - own_at_ < opts_.interface_refresh && own_at_ != decltype(now){}))
        return own_;
    own_at_ = now;
    own_.clear();
    ifaddrs* ifa = nullptr;
    if (getifaddrs(&ifa) == 0) {
        for (auto* i = ifa; i; i = i->ifa_next) {
            if (!i->ifa_addr) continue;
            if (i->ifa_addr->sa_family == AF_INET) {
                auto* sin = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
                own_.push_back(asio::ip::address_v4(ntohl(sin->sin_addr.s_addr)));
            } else if (i->ifa_addr->sa_family == AF_INET6) {
                auto* sin6 = reinterpret_cast<sockaddr_in6*>(i->ifa_addr);
                asio::ip::address_v6::bytes_type b;
                std::copy(std::begin(sin6->sin6_addr.s6_addr), std::end(sin6->sin6_addr.s6_addr),
                          b.begin());
                own_.push_back(asio::ip::address_v6(b));
            }
        }
        freeifaddrs(ifa);
    }
    return own_;
}

std::string EgressGate::question_limit_reached() {
    const NetworkLimits& l = policy_.limits();
    // Answered questions whose waiters have all gone are not pending any more.
    std::size_t waiting = 0;
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->second->result) {
            it = pending_.erase(it);
        } else {
            ++waiting;
            ++it;
        }
    }
    if (l.max_pending_questions && waiting >= l.max_pending_questions)
        return "too many approval questions: " + std::to_string(waiting) +
               " waiting for an answer (limit " + std::to_string(l.max_pending_questions) + ")";
    auto now = std::chrono::steady_clock::now();
    while (!asked_at_.empty() && now - asked_at_.front() >= l.question_window)
        asked_at_.pop_front();
    if (l.max_questions_per_window && asked_at_.size() >= l.max_questions_per_window)
        return "too many approval questions: " + std::to_string(asked_at_.size()) +
               " in the last " + std::to_string(l.question_window.count()) + " s (limit " +
               std::to_string(l.max_questions_per_window) + ")";
    return "";
}

asio::awaitable<EgressGate::Answer> EgressGate::ask_shared(ApprovalQuestion q, std::string key) {
    std::shared_ptr<Pending> p;
    if (auto it = pending_.find(key); it != pending_.end() && !it->second->result) {
        p = it->second; // join the question already asked
    } else {
        if (std::string why = question_limit_reached(); !why.empty())
            co_return Answer{Decision::deny, false, std::move(why)};
        asked_at_.push_back(std::chrono::steady_clock::now());
        p = std::make_shared<Pending>(ex_);
        pending_[key] = p;
        ++questions_;
        if (!ask_) {
            p->finish(Decision::deny, false);
        } else {
            asio::co_spawn(
                ex_, [ask = ask_, q]() -> asio::awaitable<Decision> { co_return co_await ask(q); },
                [p](std::exception_ptr e, Decision d) {
                    p->finish(e ? Decision::deny : d, false);
                });
            p->timeout.expires_after(opts_.ask_timeout);
            p->timeout.async_wait([p](boost::system::error_code ec) {
                if (!ec) p->finish(Decision::deny, true);
            });
        }
    }
    if (!p->result) co_await p->done.async_wait(asio::as_tuple(asio::use_awaitable));
    if (auto it = pending_.find(key); it != pending_.end() && it->second == p) pending_.erase(it);
    co_return Answer{p->result.value_or(Decision::deny), p->timed_out, ""};
}

Authorization EgressGate::refuse(const Host& h, std::uint16_t port, const std::string& via,
                                 std::string reason, std::string rule,
                                 std::optional<std::string> address, std::string decision) {
    Authorization a;
    a.allowed = false;
    a.reason = std::move(reason);
    a.rule = std::move(rule);
    a.address = std::move(address);
    a.decision = std::move(decision);
    if (violation_) {
        json d = {{"kind", "network"},  {"host", h.name}, {"port", port},
                  {"reason", a.reason}, {"rule", a.rule}, {"via", via}};
        if (a.address) d["address"] = *a.address;
        violation_(d);
    }
    return a;
}

Authorization EgressGate::refuse_egress(const Host& host, std::uint16_t port,
                                        const std::string& via) {
    return refuse(host, port, via,
                  "the session's egress byte budget (" + std::to_string(egress_->max()) +
                      " bytes) is exhausted",
                  "", std::nullopt, "budget");
}

std::optional<Authorization> EgressGate::check_request(const Host& host, std::uint16_t port,
                                                       const std::string& via,
                                                       const RequestLine& request) {
    PolicyDecision d = policy_.check_host(host, port, &request);
    if (d.verdict == Verdict::deny)
        return refuse(host, port, via, d.reason, d.rule, std::nullopt, "policy");
    if (!egress_->left()) return refuse_egress(host, port, via);
    return std::nullopt;
}

asio::awaitable<Authorization> EgressGate::authorize(const Host& host, std::uint16_t port,
                                                     std::string via, const RequestLine* request) {
    const std::string key = host.authority(port);
    std::string decision = "policy";
    std::string rule;
    bool literal_approved = false;

    PolicyDecision d = policy_.check_host(host, port, request);
    if (d.verdict == Verdict::deny)
        co_return refuse(host, port, via, d.reason, d.rule, std::nullopt, "policy");
    if (!egress_->left()) co_return refuse_egress(host, port, via);
    rule = d.rule;
    if (d.verdict == Verdict::ask) {
        if (session_allowed_.count(key)) {
            decision = "allow-session";
        } else if (opts_.can_ask && !opts_.can_ask()) {
            co_return refuse(host, port, via,
                             d.reason + "; no one to ask (the client does not "
                                        "answer approval questions)",
                             "", std::nullopt, "deny");
        } else {
            ApprovalQuestion q{host.name, port, std::nullopt, via, d.reason};
            if (host.is_ip()) q.address = host.name; // the question names the exact address
            Answer ans = co_await ask_shared(std::move(q), key);
            if (!ans.refused.empty())
                co_return refuse(host, port, via, ans.refused + "; not asked (" + d.reason + ")",
                                 "", std::nullopt, "rate-limited");
            if (ans.decision == Decision::deny) {
                std::string why = ans.timed_out ? "no answer to the approval question within " +
                                                      std::to_string(opts_.ask_timeout.count()) +
                                                      " ms (" + d.reason + ")"
                                                : "denied by the user (" + d.reason + ")";
                co_return refuse(host, port, via, why, "", std::nullopt,
                                 ans.timed_out ? "timeout" : "deny");
            }
            if (ans.decision == Decision::allow_session) session_allowed_.insert(key);
            decision = to_string(ans.decision);
        }
        literal_approved = host.is_ip();
    }

    std::vector<Address> addrs;
    if (host.is_ip()) {
        addrs.push_back(host.address);
    } else {
        ++lookups_;
        try {
            addrs = co_await resolve_(host.name);
        } catch (const std::exception& e) {
            Authorization a;
            a.failed = true;
            a.decision = decision;
            a.reason = "cannot resolve " + host.name + ": " + e.what();
            co_return a;
        }
        if (addrs.empty()) {
            Authorization a;
            a.failed = true;
            a.decision = decision;
            a.reason = "cannot resolve " + host.name + ": no addresses";
            co_return a;
        }
    }

    Authorization ok;
    for (const auto& raw : addrs) {
        Address a = unmap(raw);
        PolicyDecision ad = policy_.check_address(a, port, own_addresses());
        if (ad.verdict == Verdict::deny)
            co_return refuse(host, port, via, ad.reason, ad.rule, a.to_string(), "policy");
        if (ad.verdict == Verdict::ask && !literal_approved) {
            std::string akey = key + "|" + a.to_string();
            if (!session_allowed_.count(akey) && opts_.can_ask && !opts_.can_ask()) {
                co_return refuse(host, port, via,
                                 ad.reason + "; no one to ask (the client does not answer "
                                             "approval questions)",
                                 "", a.to_string(), "deny");
            }
            if (!session_allowed_.count(akey)) {
                ApprovalQuestion q{host.name, port, a.to_string(), via, ad.reason};
                Answer ans = co_await ask_shared(std::move(q), akey);
                if (!ans.refused.empty())
                    co_return refuse(host, port, via,
                                     ans.refused + "; not asked (" + ad.reason + ")", "",
                                     a.to_string(), "rate-limited");
                if (ans.decision == Decision::deny)
                    co_return refuse(host, port, via,
                                     ans.timed_out ? ad.reason + "; no answer to the approval "
                                                                 "question"
                                                   : ad.reason,
                                     "", a.to_string(), ans.timed_out ? "timeout" : "deny");
                if (ans.decision == Decision::allow_session) session_allowed_.insert(akey);
                decision = to_string(ans.decision);
            }
        }
        ok.endpoints.emplace_back(a, port);
    }
    ok.allowed = true;
    ok.decision = decision;
    ok.rule = rule;
    ok.reason = d.reason;
    co_return ok;
}

} // namespace cordon::server::net
