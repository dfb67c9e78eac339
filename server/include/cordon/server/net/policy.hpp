// The network policy: which destinations the sandbox (through the proxy) and `fetch` may
// reach. Pure: no I/O except `load_network_policy`, which reads the config files.
//
// Rules (PROTOCOL.md "Sessions"), each a string:
//   example.com          that name exactly
//   *.example.com        strict subdomains of example.com (not example.com itself)
//   example.com:8443     with a port; `:*` means any port
//   203.0.113.7, [2001:db8::1], 10.0.0.0/8, fd00::/8, [fd00::]/8:443
//                        IP literals and CIDR blocks; they match only IP literals the
//                        client wrote and (for the resolved-address check) the addresses a
//                        name resolved to. A name rule never matches an IP literal.
// Without a port, an allow rule allows ports 80 and 443 only; a deny rule denies every port.
// Host parts of rules are canonicalised like requested hosts (host.hpp).
//
// An allow rule may also be an object restricting what may be sent to that host (NET-06):
//   {"host": "registry.npmjs.org", "methods": ["GET", "HEAD"], "paths": ["/-/", "/react"]}
// `host` is a rule string as above; `methods` (exact, upper case) and `paths` (prefixes of
// the request path, matched at a `/` boundary unless the prefix ends with `/`; the query is
// not part of it) are optional, absent meaning "any". Such a rule allows a plain-HTTP
// request (HTTP proxy, fetch) only when its method and path match; a request path with dot
// segments or encoded `/`, `\` or `.` is refused under a path rule (it could mean another
// path to the server). An opaque tunnel (CONNECT, SOCKS5) cannot be checked, so a
// destination allowed only by such rules is refused for tunnels, saying why. When several
// allow rules match a host, any one allowing the request is enough.
//
// Order: deny rules first, then allow rules, then "ask" (the user decides), else deny.
// After a name is allowed and resolved, every resolved address is checked: addresses in a
// deny CIDR are refused; non-global addresses (loopback, private, link-local, CGNAT, ULA,
// multicast, metadata, unspecified, this host's interfaces) are refused unless an allow
// rule lists that address or a CIDR containing it (for that port), or the user approved
// that exact host + address (EgressGate).
//
// Thread-safety: a NetworkPolicy is immutable after construction; share it freely.
#pragma once

#include "cordon/server/net/host.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace cordon::server::net {

using json = nlohmann::json;

inline constexpr std::uint16_t kDefaultAllowedPorts[] = {80, 443};

struct NetworkRule {
    enum class Kind { exact_name, wildcard_name, cidr };
    std::string text; // as written
    Kind kind = Kind::exact_name;
    std::string name; // canonical name; for wildcard_name the parent ("example.com")
    Cidr cidr;        // for Kind::cidr
    enum class Ports { unspecified, one, any };
    Ports ports = Ports::unspecified;
    std::uint16_t port = 0;           // for Ports::one
    std::vector<std::string> methods; // allowed request methods; empty: any
    std::vector<std::string> paths;   // allowed path prefixes; empty: any

    // Whether the rule restricts methods or paths (an object rule with either).
    bool restricted() const { return !methods.empty() || !paths.empty(); }
    // Whether a request with this method and target (path?query) is within the rule's
    // method and path restrictions; `why` says what is not.
    bool permits(std::string_view method, std::string_view target, std::string& why) const;

    bool matches_host(const Host& h) const;
    bool matches_address(const Address& a) const; // cidr rules only
    // Port check; an unspecified port means {80,443} for allow rules, any for deny rules.
    bool matches_port(std::uint16_t p, bool deny_rule) const;
    // true when every (host, port, method, path) this allow rule matches is also matched by
    // `this`.
    bool covers(const NetworkRule& other) const;
};

// Parses one rule; nullopt with `error` set when invalid.
std::optional<NetworkRule> parse_rule(std::string_view text, std::string& error);
// Parses a rule given as JSON: a string, or an object {host, methods?, paths?}. The rule's
// `text` is the string, or the object's compact JSON.
std::optional<NetworkRule> parse_rule_spec(const json& spec, std::string& error);

// The request an HTTP-level check is about (HTTP proxy, fetch). Tunnels have none.
struct RequestLine {
    std::string_view method;
    std::string_view target; // origin-form: path?query
};

// Whether a plain-HTTP request is (part of) a git push over smart HTTP: its target, percent-
// decoded and compared without case, names git-receive-pack (the ref advertisement
// `info/refs?service=git-receive-pack` or the `POST .../git-receive-pack` itself), or its
// Content-Type is application/x-git-receive-pack-request. Pushes go only through cordon's
// git proxy (docs/git.md), which checks what is pushed; the HTTP proxy and fetch refuse
// them with kGitPushRefusal, whatever the network policy says (NET-06).
bool is_git_push_request(std::string_view target, std::string_view content_type);
inline constexpr const char* kGitPushRefusal =
    "git push (git-receive-pack) is only allowed through cordon's git proxy, for the remotes "
    "configured in the user config's \"git\" section (docs/git.md)";

enum class Verdict { allow, deny, ask };
const char* to_string(Verdict v);

struct PolicyDecision {
    Verdict verdict = Verdict::deny;
    std::string rule;   // the rule that decided ("" when none did)
    std::string reason; // human-readable
};

// Session-wide limits that come with the policy (config `network.approvals`).
struct NetworkLimits {
    // Approval questions (sandbox/approve) one session may put to the user: at most
    // max_pending_questions waiting for an answer at once, and max_questions_per_window
    // questions asked within question_window. Beyond either, an undecided destination is
    // refused at once ("too many approval questions ...") and the user is not asked, so a
    // sandboxed process cannot flood the user with questions about thousands of hosts.
    // 0: no limit. A question shared by concurrent requests counts once.
    std::size_t max_pending_questions = 4;
    std::size_t max_questions_per_window = 20;
    std::chrono::seconds question_window{600};
    // Bytes the session may send out (config `network.maxEgressBytes`): tunnel and SOCKS
    // uploads, HTTP proxy request heads and bodies, fetch requests. Beyond it, requests
    // and tunnels are refused (403 / -32003) and open tunnels closed. 0: no limit.
    std::uint64_t max_egress_bytes = 0;
};

class NetworkPolicy {
  public:
    NetworkPolicy() = default; // no rules: every destination is "ask"
    NetworkPolicy(std::vector<NetworkRule> allow, std::vector<NetworkRule> deny)
        : allow_(std::move(allow)), deny_(std::move(deny)) {}

    // Builds from rule strings; throws std::invalid_argument naming the first bad rule.
    static NetworkPolicy from_strings(const std::vector<std::string>& allow,
                                      const std::vector<std::string>& deny);
    // Builds from rules as JSON (strings or objects); throws like from_strings.
    static NetworkPolicy from_json(const std::vector<json>& allow, const std::vector<json>& deny);
    // A policy that denies everything without asking (used when the config is broken).
    static NetworkPolicy deny_all(std::string reason);

    // Step 1, before any DNS lookup: deny, then allow, then ask. `request`: the HTTP request
    // being made (HTTP proxy, fetch), checked against method/path rules; nullptr for an
    // opaque tunnel (CONNECT, SOCKS5), which a method/path rule cannot allow. A host that
    // only method/path rules allow, for a request they do not permit, is denied (not asked).
    PolicyDecision check_host(const Host& h, std::uint16_t port,
                              const RequestLine* request = nullptr) const;

    // Step 2, for each resolved (or literal) address: `deny` when a deny CIDR contains it;
    // `allow` when it is global or an allow CIDR lists it for `port`; otherwise `ask` with
    // the reason (the caller denies unless the user approves this host + address).
    // `own_addresses`: this host's interface addresses (treated like loopback).
    PolicyDecision check_address(const Address& a, std::uint16_t port,
                                 const std::vector<Address>& own_addresses = {}) const;

    const std::vector<NetworkRule>& allow() const { return allow_; }
    const std::vector<NetworkRule>& deny() const { return deny_; }
    const NetworkLimits& limits() const { return limits_; }
    void set_limits(NetworkLimits l) { limits_ = l; }

  private:
    std::vector<NetworkRule> allow_;
    std::vector<NetworkRule> deny_;
    NetworkLimits limits_;
    std::optional<std::string> closed_; // deny_all: the reason
};

// --- configuration ---------------------------------------------------------------------

// One problem in a config source: the file (or "session/create policy"), the JSON pointer
// of the bad value, and what is wrong.
struct ConfigError {
    std::string file;
    std::string path;
    std::string message;
    std::string text() const; // "file: /network/allow/2: message"
};

struct NetworkRuleLists {
    std::vector<json> allow; // each a rule string or a rule object
    std::vector<json> deny;
};

struct PolicySources {
    // The user's config; default_user_config_path() when unset. A missing file is fine.
    std::optional<std::filesystem::path> user_config;
    // session/create's `policy` object (null/absent: none).
    json session_policy;
    // The real workspace; its `.cordon/config.json`, if present, may only narrow.
    std::optional<std::filesystem::path> workspace;
};

struct LoadedNetworkPolicy {
    NetworkPolicy policy;            // NetworkPolicy::deny_all when errors is non-empty
    NetworkRuleLists lists;          // the merged rule strings
    NetworkLimits limits;            // the merged limits (also in `policy`)
    std::vector<ConfigError> errors; // empty on success
    bool ok() const { return errors.empty(); }
};

// $XDG_CONFIG_HOME/cordon/config.json, else ~/.config/cordon/config.json.
std::filesystem::path default_user_config_path();

// Loads and merges the network part of the policy:
//   1. user config `network.allow` / `network.deny`;
//   2. session policy: `network.allow`, when present, REPLACES the allow list;
//      `network.deny`, when present, is ADDED (a session cannot lift the user's denies);
//   3. workspace `.cordon/config.json` may only narrow: its `network.allow`, when present,
//      is intersected with the allow list so far (a rule survives when a rule of the other
//      list covers it), its `network.deny` is added.
// `network.approvals` {maxPending, maxPerWindow, windowSeconds} and `network.maxEgressBytes`
// (NetworkLimits): the user config sets them, the session policy overrides what it names,
// the workspace may only tighten (a smaller non-zero count, a longer window).
// Errors name the file and JSON pointer; on any error `policy` allows nothing (fail closed)
// and the caller should refuse the session with the errors' text.
LoadedNetworkPolicy load_network_policy(const PolicySources& sources);

// Validates one config/policy document's network part (and its shape) without merging.
std::vector<ConfigError> validate_network_config(const json& doc, const std::string& file);

// Intersection used for workspace narrowing (exposed for tests).
std::vector<json> intersect_allow_rules(const std::vector<json>& current,
                                        const std::vector<json>& narrowing);
std::vector<std::string> intersect_allow(const std::vector<std::string>& current,
                                         const std::vector<std::string>& narrowing);

} // namespace cordon::server::net
