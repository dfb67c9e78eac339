#include "cordon/server/net/policy.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace cordon::server::net {

namespace {

bool is_strict_subdomain(const std::string& name, const std::string& parent) {
    return name.size() > parent.size() + 1 && name.ends_with(parent) &&
           name[name.size() - parent.size() - 1] == '.';
}

bool parse_port(std::string_view s, NetworkRule& r, std::string& error) {
    if (s == "*") {
        r.ports = NetworkRule::Ports::any;
        return true;
    }
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v == 0 || v > 65535) {
        error = "invalid port '" + std::string(s) + "'";
        return false;
    }
    r.ports = NetworkRule::Ports::one;
    r.port = static_cast<std::uint16_t>(v);
    return true;
}

bool set_cidr(std::string_view text, NetworkRule& r, std::string& error) {
    auto c = parse_cidr(text, error);
    if (!c) return false;
    r.kind = NetworkRule::Kind::cidr;
    r.cidr = *c;
    return true;
}

// A path a prefix rule can judge: starts with '/', no dot segments, no encoded '/', '\' or
// '.', no backslash (each could make the server see another path than the one checked).
bool plain_path(std::string_view path) {
    if (path.empty() || path.front() != '/') return false;
    if (path.find('\\') != path.npos) return false;
    for (std::size_t i = 0; i + 2 < path.size(); ++i) {
        if (path[i] != '%') continue;
        char a = path[i + 1], b = static_cast<char>(path[i + 2] | 0x20);
        if ((a == '2' && (b == 'f' || b == 'e')) || (a == '5' && b == 'c')) return false;
    }
    std::size_t start = 1;
    for (;;) {
        auto end = path.find('/', start);
        auto seg = path.substr(start, end == path.npos ? path.npos : end - start);
        if (seg == "." || seg == "..") return false;
        if (end == path.npos) return true;
        start = end + 1;
    }
}

// `path` is under `prefix`: equal, or longer with a '/' boundary (or the prefix ends with '/').
bool under_prefix(std::string_view path, std::string_view prefix) {
    if (!path.starts_with(prefix)) return false;
    return path.size() == prefix.size() || prefix.back() == '/' || path[prefix.size()] == '/';
}

bool token_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (auto& x : v)
        out += (out.empty() ? "" : ", ") + x;
    return out;
}

} // namespace

bool NetworkRule::permits(std::string_view method, std::string_view target,
                          std::string& why) const {
    if (!methods.empty() && std::find(methods.begin(), methods.end(), method) == methods.end()) {
        why = "method " + std::string(method.substr(0, 32)) + " is not allowed by rule " + text +
              " (allowed: " + join(methods) + ")";
        return false;
    }
    if (paths.empty()) return true;
    auto path = target.substr(0, target.find_first_of("?#"));
    std::string shown(path.substr(0, 200));
    if (!plain_path(path)) {
        why = "path " + shown + " has dot segments or encoded '/', '\\' or '.', which rule " +
              text + " cannot judge";
        return false;
    }
    for (auto& p : paths)
        if (under_prefix(path, p)) return true;
    why = "path " + shown + " is not allowed by rule " + text + " (allowed: " + join(paths) + ")";
    return false;
}

bool NetworkRule::matches_host(const Host& h) const {
    switch (kind) {
    case Kind::exact_name:
        return !h.is_ip() && h.name == name;
    case Kind::wildcard_name:
        return !h.is_ip() && is_strict_subdomain(h.name, name);
    case Kind::cidr:
        return h.is_ip() && cidr.contains(h.address);
    }
    return false;
}

bool NetworkRule::matches_address(const Address& a) const {
    return kind == Kind::cidr && cidr.contains(a);
}

bool NetworkRule::matches_port(std::uint16_t p, bool deny_rule) const {
    switch (ports) {
    case Ports::any:
        return true;
    case Ports::one:
        return p == port;
    case Ports::unspecified:
        if (deny_rule) return true;
        for (auto d : kDefaultAllowedPorts)
            if (p == d) return true;
        return false;
    }
    return false;
}

bool NetworkRule::covers(const NetworkRule& o) const {
    // Methods and paths: `o` may only be narrower.
    if (!methods.empty()) {
        if (o.methods.empty()) return false;
        for (auto& m : o.methods)
            if (std::find(methods.begin(), methods.end(), m) == methods.end()) return false;
    }
    if (!paths.empty()) {
        if (o.paths.empty()) return false;
        for (auto& op : o.paths)
            if (std::none_of(paths.begin(), paths.end(),
                             [&](const std::string& p) { return under_prefix(op, p); }))
                return false;
    }
    // Ports.
    bool ports_ok = false;
    switch (ports) {
    case Ports::any:
        ports_ok = true;
        break;
    case Ports::one:
        ports_ok = o.ports == Ports::one && o.port == port;
        break;
    case Ports::unspecified:
        ports_ok =
            o.ports == Ports::unspecified || (o.ports == Ports::one && matches_port(o.port, false));
        break;
    }
    if (!ports_ok) return false;
    switch (kind) {
    case Kind::exact_name:
        return o.kind == Kind::exact_name && o.name == name;
    case Kind::wildcard_name:
        if (o.kind == Kind::exact_name) return is_strict_subdomain(o.name, name);
        if (o.kind == Kind::wildcard_name)
            return o.name == name || is_strict_subdomain(o.name, name);
        return false;
    case Kind::cidr:
        return o.kind == Kind::cidr && cidr.covers(o.cidr);
    }
    return false;
}

std::optional<NetworkRule> parse_rule(std::string_view text, std::string& error) {
    NetworkRule r;
    r.text = std::string(text);
    if (text.empty()) {
        error = "empty rule";
        return std::nullopt;
    }
    for (unsigned char c : text) {
        if (c <= 0x20 || c == 0x7f) {
            error = "control character or space in rule";
            return std::nullopt;
        }
    }
    // Bracketed IPv6, optionally with /len inside or after, optionally :port.
    if (text.front() == '[') {
        auto close = text.find(']');
        if (close == text.npos) {
            error = "unterminated '['";
            return std::nullopt;
        }
        std::string addr(text.substr(1, close - 1));
        auto rest = text.substr(close + 1);
        if (rest.starts_with("/")) {
            auto colon = rest.find(':');
            addr += std::string(rest.substr(0, colon));
            rest = colon == rest.npos ? std::string_view() : rest.substr(colon);
        }
        if (!rest.empty()) {
            if (rest.front() != ':') {
                error = "garbage after ']'";
                return std::nullopt;
            }
            if (!parse_port(rest.substr(1), r, error)) return std::nullopt;
        }
        if (addr.find(':') == std::string::npos) {
            error = "brackets are for IPv6 addresses only";
            return std::nullopt;
        }
        if (!set_cidr(addr, r, error)) return std::nullopt;
        return r;
    }
    auto first_colon = text.find(':');
    if (first_colon != text.npos && text.find(':', first_colon + 1) != text.npos) {
        // Unbracketed IPv6 (no port possible).
        if (!set_cidr(text, r, error)) return std::nullopt;
        return r;
    }
    std::string_view host = text;
    if (first_colon != text.npos) {
        host = text.substr(0, first_colon);
        if (!parse_port(text.substr(first_colon + 1), r, error)) return std::nullopt;
    }
    if (host.find('/') != host.npos) {
        if (!set_cidr(host, r, error)) return std::nullopt;
        return r;
    }
    bool wildcard = false;
    if (host.starts_with("*.")) {
        wildcard = true;
        host.remove_prefix(2);
    }
    if (host.find('*') != host.npos) {
        error = "'*' is only allowed as a whole first label (\"*.example.com\")";
        return std::nullopt;
    }
    auto h = parse_host(host, error);
    if (!h) return std::nullopt;
    if (h->is_ip()) {
        if (wildcard) {
            error = "a wildcard cannot apply to an IP address";
            return std::nullopt;
        }
        r.kind = NetworkRule::Kind::cidr;
        r.cidr = Cidr{h->address, h->address.is_v4() ? 32u : 128u};
        return r;
    }
    if (wildcard && h->name.find('.') == std::string::npos) {
        error = "a wildcard needs at least two labels after it (\"*.example.com\")";
        return std::nullopt;
    }
    r.kind = wildcard ? NetworkRule::Kind::wildcard_name : NetworkRule::Kind::exact_name;
    r.name = h->name;
    return r;
}

std::optional<NetworkRule> parse_rule_spec(const json& spec, std::string& error) {
    if (spec.is_string())
        return parse_rule(std::string_view(spec.get_ref<const std::string&>()), error);
    if (!spec.is_object()) {
        error = "must be a string or an object {host, methods?, paths?}";
        return std::nullopt;
    }
    auto host = spec.find("host");
    if (host == spec.end() || !host->is_string()) {
        error = "\"host\" (a rule string) is required";
        return std::nullopt;
    }
    auto r = parse_rule(std::string_view(host->get_ref<const std::string&>()), error);
    if (!r) return std::nullopt;
    for (auto& [key, value] : spec.items()) {
        if (key == "host") continue;
        if (key != "methods" && key != "paths") {
            error = "unknown key \"" + key + "\" (expected \"host\", \"methods\", \"paths\")";
            return std::nullopt;
        }
        if (!value.is_array() || value.empty()) {
            error = "\"" + key + "\" must be a non-empty array of strings (omit it for any)";
            return std::nullopt;
        }
        for (auto& v : value) {
            if (!v.is_string() || v.get<std::string>().empty() ||
                v.get<std::string>().size() > (key == "methods" ? 32u : 1024u)) {
                error = "\"" + key + "\" must hold non-empty strings";
                return std::nullopt;
            }
            std::string x = v.get<std::string>();
            if (key == "methods") {
                if (!std::all_of(x.begin(), x.end(), token_char)) {
                    error = "invalid method \"" + x + "\"";
                    return std::nullopt;
                }
                for (auto& c : x)
                    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
                if (x == "CONNECT") {
                    error = "CONNECT is not a method a rule can allow (tunnels are opaque)";
                    return std::nullopt;
                }
                r->methods.push_back(x);
            } else {
                bool ok = plain_path(x) && x.find_first_of("?#") == std::string::npos &&
                          std::none_of(x.begin(), x.end(),
                                       [](unsigned char c) { return c <= 0x20 || c == 0x7f; });
                if (!ok) {
                    error = "invalid path prefix \"" + x +
                            "\" (must start with '/', no dot segments, query or spaces)";
                    return std::nullopt;
                }
                r->paths.push_back(x);
            }
        }
    }
    r->text = spec.dump();
    return r;
}

bool is_git_push_request(std::string_view target, std::string_view content_type) {
    std::string t;
    t.reserve(target.size());
    for (std::size_t i = 0; i < target.size(); ++i) {
        char c = target[i];
        if (c == '%' && i + 2 < target.size() &&
            std::isxdigit(static_cast<unsigned char>(target[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(target[i + 2]))) {
            c = static_cast<char>(std::stoi(std::string(target.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        }
        t += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    std::string ct(content_type.substr(0, 200));
    for (auto& c : ct)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return t.find("git-receive-pack") != std::string::npos ||
           ct.find("x-git-receive-pack") != std::string::npos;
}

const char* to_string(Verdict v) {
    switch (v) {
    case Verdict::allow:
        return "allow";
    case Verdict::deny:
        return "deny";
    case Verdict::ask:
        return "ask";
    }
    return "?";
}

NetworkPolicy NetworkPolicy::from_strings(const std::vector<std::string>& allow,
                                          const std::vector<std::string>& deny) {
    std::vector<NetworkRule> a, d;
    for (auto* list : {&allow, &deny}) {
        for (auto& s : *list) {
            std::string err;
            auto r = parse_rule(s, err);
            if (!r) throw std::invalid_argument("invalid network rule \"" + s + "\": " + err);
            (list == &allow ? a : d).push_back(std::move(*r));
        }
    }
    return NetworkPolicy(std::move(a), std::move(d));
}

NetworkPolicy NetworkPolicy::from_json(const std::vector<json>& allow,
                                       const std::vector<json>& deny) {
    std::vector<NetworkRule> a, d;
    for (auto* list : {&allow, &deny}) {
        for (auto& spec : *list) {
            std::string err;
            auto r = parse_rule_spec(spec, err);
            if (!r) throw std::invalid_argument("invalid network rule " + spec.dump() + ": " + err);
            if (list == &deny && r->restricted())
                throw std::invalid_argument("invalid network rule " + spec.dump() +
                                            ": methods and paths only apply to allow rules");
            (list == &allow ? a : d).push_back(std::move(*r));
        }
    }
    return NetworkPolicy(std::move(a), std::move(d));
}

NetworkPolicy NetworkPolicy::deny_all(std::string reason) {
    NetworkPolicy p;
    p.closed_ = std::move(reason);
    return p;
}

PolicyDecision NetworkPolicy::check_host(const Host& h, std::uint16_t port,
                                         const RequestLine* request) const {
    if (closed_) return {Verdict::deny, "", *closed_};
    for (auto& r : deny_)
        if (r.matches_host(h) && r.matches_port(port, true))
            return {Verdict::deny, r.text, "denied by rule \"" + r.text + "\""};
    const NetworkRule* host_only = nullptr;
    const NetworkRule* restricted = nullptr; // matched host and port, did not permit
    std::string why;
    for (auto& r : allow_) {
        if (!r.matches_host(h)) continue;
        if (!r.matches_port(port, false)) {
            if (!host_only) host_only = &r;
            continue;
        }
        if (!r.restricted()) return {Verdict::allow, r.text, "allowed by rule \"" + r.text + "\""};
        std::string w;
        if (request && r.permits(request->method, request->target, w))
            return {Verdict::allow, r.text, "allowed by rule " + r.text};
        if (!restricted) {
            restricted = &r;
            why = request ? w
                          : "rule " + r.text +
                                " restricts methods/paths, which cannot be enforced on an opaque "
                                "tunnel (CONNECT, SOCKS5); use plain http:// through the proxy, "
                                "or fetch";
        }
    }
    if (restricted) return {Verdict::deny, restricted->text, why};
    if (host_only)
        return {Verdict::ask, "",
                "port " + std::to_string(port) + " is not allowed by rule \"" + host_only->text +
                    "\""};
    return {Verdict::ask, "", "not in the allow list"};
}

PolicyDecision NetworkPolicy::check_address(const Address& raw, std::uint16_t port,
                                            const std::vector<Address>& own) const {
    Address a = unmap(raw);
    if (closed_) return {Verdict::deny, "", *closed_};
    for (auto& r : deny_)
        if (r.matches_address(a) && r.matches_port(port, true))
            return {Verdict::deny, r.text,
                    "address " + a.to_string() + " denied by rule \"" + r.text + "\""};
    AddressClass c = classify(a);
    if (c == AddressClass::global) {
        for (auto& o : own)
            if (unmap(o) == a) c = AddressClass::host_interface;
    }
    if (c == AddressClass::global) return {Verdict::allow, "", ""};
    for (auto& r : allow_)
        if (r.matches_address(a) && r.matches_port(port, false))
            return {Verdict::allow, r.text,
                    "address " + a.to_string() + " listed by rule \"" + r.text + "\""};
    return {Verdict::ask, "",
            "address " + a.to_string() + " is " + to_string(c) +
                " and not listed explicitly in the policy"};
}

// --- configuration ---------------------------------------------------------------------

std::string ConfigError::text() const {
    return file + ": " + (path.empty() ? "" : path + ": ") + message;
}

std::filesystem::path default_user_config_path() {
    if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && *x && x[0] == '/')
        return std::filesystem::path(x) / "cordon" / "config.json";
    const char* home = std::getenv("HOME");
    return std::filesystem::path(home && *home ? home : "/") / ".config" / "cordon" / "config.json";
}

namespace {

struct Section {
    std::optional<std::vector<json>> allow, deny;
    std::optional<std::uint64_t> max_egress;
    std::optional<std::size_t> max_pending, max_per_window;
    std::optional<std::chrono::seconds> window;
};

// A non-negative integer at most `max`; records an error otherwise.
std::optional<std::uint64_t> read_count(const json& v, const std::string& file,
                                        const std::string& path, std::uint64_t max,
                                        std::vector<ConfigError>& errors) {
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::uint64_t>() > max) {
        errors.push_back({file, path, "must be an integer from 0 to " + std::to_string(max)});
        return std::nullopt;
    }
    return v.get<std::uint64_t>();
}

void read_approvals(const json& v, const std::string& file, Section& s,
                    std::vector<ConfigError>& errors) {
    const std::string path = "/network/approvals";
    if (!v.is_object()) {
        errors.push_back({file, path, "must be an object"});
        return;
    }
    for (auto& [key, value] : v.items()) {
        std::string p = path + "/" + key;
        if (key == "maxPending") {
            if (auto n = read_count(value, file, p, 1000, errors)) s.max_pending = *n;
        } else if (key == "maxPerWindow") {
            if (auto n = read_count(value, file, p, 100000, errors)) s.max_per_window = *n;
        } else if (key == "windowSeconds") {
            auto n = read_count(value, file, p, 86400 * 7, errors);
            if (n && *n == 0)
                errors.push_back({file, p, "must be at least 1"});
            else if (n)
                s.window = std::chrono::seconds(*n);
        } else {
            errors.push_back({file, p,
                              "unknown key (expected \"maxPending\", \"maxPerWindow\" or "
                              "\"windowSeconds\")"});
        }
    }
}

Section read_network(const json& doc, const std::string& file, std::vector<ConfigError>& errors) {
    Section s;
    if (doc.is_null()) return s;
    if (!doc.is_object()) {
        errors.push_back({file, "", "must be a JSON object"});
        return s;
    }
    auto it = doc.find("network");
    if (it == doc.end() || it->is_null()) return s;
    if (!it->is_object()) {
        errors.push_back({file, "/network", "must be an object"});
        return s;
    }
    for (auto& [key, value] : it->items()) {
        if (key == "approvals") {
            read_approvals(value, file, s, errors);
            continue;
        }
        if (key == "maxEgressBytes") {
            s.max_egress = read_count(value, file, "/network/maxEgressBytes",
                                      std::numeric_limits<std::int64_t>::max(), errors);
            continue;
        }
        if (key != "allow" && key != "deny") {
            errors.push_back({file, "/network/" + key,
                              "unknown key (expected \"allow\", \"deny\", \"approvals\" or "
                              "\"maxEgressBytes\")"});
            continue;
        }
        std::string path = "/network/" + key;
        if (!value.is_array()) {
            errors.push_back({file, path, "must be an array of rules"});
            continue;
        }
        std::vector<json> rules;
        for (std::size_t i = 0; i < value.size(); ++i) {
            auto& v = value[i];
            std::string p = path + "/" + std::to_string(i);
            if (!v.is_string() && !(key == "allow" && v.is_object())) {
                errors.push_back({file, p,
                                  key == "allow" ? "must be a string or an object {host, "
                                                   "methods?, paths?}"
                                                 : "must be a string"});
                continue;
            }
            std::string err;
            if (!parse_rule_spec(v, err)) {
                std::string shown = v.is_string() ? v.get<std::string>() : v.dump();
                errors.push_back({file, p, "invalid rule \"" + shown + "\": " + err});
                continue;
            }
            rules.push_back(v);
        }
        (key == "allow" ? s.allow : s.deny) = std::move(rules);
    }
    return s;
}

// Reads a JSON file; a missing file yields null. Errors are recorded.
json read_json_file(const std::filesystem::path& p, std::vector<ConfigError>& errors) {
    std::error_code ec;
    if (!std::filesystem::exists(p, ec)) return nullptr;
    std::ifstream in(p, std::ios::binary);
    if (!in) {
        errors.push_back({p.string(), "", "cannot be read"});
        return nullptr;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    if (ss.str().size() > (4u << 20)) {
        errors.push_back({p.string(), "", "larger than 4 MiB"});
        return nullptr;
    }
    try {
        return json::parse(ss.str());
    } catch (const json::parse_error& e) {
        errors.push_back({p.string(), "", std::string("invalid JSON: ") + e.what()});
        return nullptr;
    }
}

// The stricter of two counts where 0 means "no limit".
std::size_t stricter(std::size_t a, std::size_t b) {
    if (a == 0) return b;
    if (b == 0) return a;
    return std::min(a, b);
}

void merge_limits(NetworkLimits& l, const Section& s, bool narrow_only) {
    if (!narrow_only) {
        if (s.max_pending) l.max_pending_questions = *s.max_pending;
        if (s.max_per_window) l.max_questions_per_window = *s.max_per_window;
        if (s.window) l.question_window = *s.window;
        if (s.max_egress) l.max_egress_bytes = *s.max_egress;
        return;
    }
    if (s.max_pending) l.max_pending_questions = stricter(l.max_pending_questions, *s.max_pending);
    if (s.max_per_window)
        l.max_questions_per_window = stricter(l.max_questions_per_window, *s.max_per_window);
    if (s.window) l.question_window = std::max(l.question_window, *s.window);
    if (s.max_egress) l.max_egress_bytes = stricter(l.max_egress_bytes, *s.max_egress);
}

void append_unique(std::vector<json>& to, const std::vector<json>& from) {
    for (auto& s : from)
        if (std::find(to.begin(), to.end(), s) == to.end()) to.push_back(s);
}

} // namespace

std::vector<ConfigError> validate_network_config(const json& doc, const std::string& file) {
    std::vector<ConfigError> errors;
    read_network(doc, file, errors);
    return errors;
}

std::vector<json> intersect_allow_rules(const std::vector<json>& current,
                                        const std::vector<json>& narrowing) {
    std::vector<std::pair<NetworkRule, json>> u, w;
    std::string err;
    for (auto& s : current)
        if (auto r = parse_rule_spec(s, err)) u.emplace_back(*r, s);
    for (auto& s : narrowing)
        if (auto r = parse_rule_spec(s, err)) w.emplace_back(*r, s);
    std::vector<json> out;
    auto add = [&](const json& s) {
        if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
    };
    for (auto& b : w)
        for (auto& a : u)
            if (a.first.covers(b.first)) {
                add(b.second);
                break;
            }
    for (auto& a : u)
        for (auto& b : w)
            if (b.first.covers(a.first)) {
                add(a.second);
                break;
            }
    return out;
}

std::vector<std::string> intersect_allow(const std::vector<std::string>& current,
                                         const std::vector<std::string>& narrowing) {
    std::vector<json> out =
        intersect_allow_rules(std::vector<json>(current.begin(), current.end()),
                              std::vector<json>(narrowing.begin(), narrowing.end()));
    std::vector<std::string> strings;
    for (auto& j : out)
        strings.push_back(j.get<std::string>());
    return strings;
}

LoadedNetworkPolicy load_network_policy(const PolicySources& src) {
    LoadedNetworkPolicy out;
    auto user_path = src.user_config.value_or(default_user_config_path());
    json user = read_json_file(user_path, out.errors);
    Section us = read_network(user, user_path.string(), out.errors);
    Section ss = read_network(src.session_policy, "session/create policy", out.errors);
    Section ws;
    if (src.workspace) {
        auto wpath = *src.workspace / ".cordon" / "config.json";
        json wdoc = read_json_file(wpath, out.errors);
        ws = read_network(wdoc, wpath.string(), out.errors);
    }
    NetworkRuleLists l;
    if (us.allow) l.allow = *us.allow;
    if (us.deny) l.deny = *us.deny;
    if (ss.allow) l.allow = *ss.allow;
    if (ss.deny) append_unique(l.deny, *ss.deny);
    if (ws.allow) l.allow = intersect_allow_rules(l.allow, *ws.allow);
    if (ws.deny) append_unique(l.deny, *ws.deny);
    out.lists = l;
    merge_limits(out.limits, us, false);
    merge_limits(out.limits, ss, false);
    merge_limits(out.limits, ws, true);
    if (!out.errors.empty()) {
        out.policy = NetworkPolicy::deny_all("the network policy could not be loaded: " +
                                             out.errors.front().text());
        return out;
    }
    out.policy = NetworkPolicy::from_json(l.allow, l.deny);
    out.policy.set_limits(out.limits);
    return out;
}

} // namespace cordon::server::net
