#include "cordon/server/net/policy.hpp"

#include <catch2/catch.hpp>

using namespace cordon::server::net;

namespace {
Verdict host_verdict(const NetworkPolicy& p, std::string_view host, std::uint16_t port = 443) {
    std::string err;
    auto h = parse_host(host, err);
    REQUIRE(h);
    return p.check_host(*h, port).verdict;
}
Verdict addr_verdict(const NetworkPolicy& p, const char* a, std::uint16_t port = 443,
                     std::vector<Address> own = {}) {
    return p.check_address(boost::asio::ip::make_address(a), port, own).verdict;
}
bool rule_ok(std::string_view r) {
    std::string err;
    return parse_rule(r, err).has_value();
}
} // namespace

TEST_CASE("exact name rules do not match lookalikes", "[net][policy]") {
    auto p = NetworkPolicy::from_strings({"example.com"}, {});
    CHECK(host_verdict(p, "example.com") == Verdict::allow);
    CHECK(host_verdict(p, "EXAMPLE.com.") == Verdict::allow);
    CHECK(host_verdict(p, "example.com.evil.com") == Verdict::ask);
    CHECK(host_verdict(p, "evil-example.com") == Verdict::ask);
    CHECK(host_verdict(p, "www.example.com") == Verdict::ask);
    CHECK(host_verdict(p, "example.co") == Verdict::ask);
    CHECK(host_verdict(p, "ex\xd0\xb0mple.com") == Verdict::ask); // homograph
}

TEST_CASE("wildcards match strict subdomains only", "[net][policy]") {
    auto p = NetworkPolicy::from_strings({"*.example.com"}, {});
    CHECK(host_verdict(p, "a.example.com") == Verdict::allow);
    CHECK(host_verdict(p, "a.b.example.com") == Verdict::allow);
    CHECK(host_verdict(p, "A.Example.Com.") == Verdict::allow);
    CHECK(host_verdict(p, "example.com") == Verdict::ask);
    CHECK(host_verdict(p, "evil-example.com") == Verdict::ask);
    CHECK(host_verdict(p, "xexample.com") == Verdict::ask);
    CHECK(host_verdict(p, "example.com.evil.com") == Verdict::ask);
}

TEST_CASE("ports: default 80 and 443 / explicit / any", "[net][policy]") {
    auto p = NetworkPolicy::from_strings({"example.com", "api.test:8443", "any.test:*"}, {});
    CHECK(host_verdict(p, "example.com", 443) == Verdict::allow);
    CHECK(host_verdict(p, "example.com", 80) == Verdict::allow);
    CHECK(host_verdict(p, "example.com", 22) == Verdict::ask);
    CHECK(host_verdict(p, "example.com", 8443) == Verdict::ask);
    CHECK(host_verdict(p, "api.test", 8443) == Verdict::allow);
    CHECK(host_verdict(p, "api.test", 443) == Verdict::ask);
    CHECK(host_verdict(p, "any.test", 6379) == Verdict::allow);
    std::string err;
    auto h = parse_host("example.com", err);
    auto d = p.check_host(*h, 22);
    CHECK(d.reason.find("port 22") != std::string::npos);
}

TEST_CASE("deny wins over allow - a deny without port denies every port", "[net][policy]") {
    auto p = NetworkPolicy::from_strings({"*.example.com", "example.org:*"},
                                         {"bad.example.com", "example.org:25"});
    CHECK(host_verdict(p, "good.example.com") == Verdict::allow);
    CHECK(host_verdict(p, "bad.example.com", 443) == Verdict::deny);
    CHECK(host_verdict(p, "bad.example.com", 8080) == Verdict::deny);
    CHECK(host_verdict(p, "sub.bad.example.com") == Verdict::allow); // exact deny only
    CHECK(host_verdict(p, "example.org", 25) == Verdict::deny);
    CHECK(host_verdict(p, "example.org", 587) == Verdict::allow);
    std::string err;
    auto d = p.check_host(*parse_host("bad.example.com", err), 443);
    CHECK(d.rule == "bad.example.com");
}

TEST_CASE("IP and CIDR rules match IP literals only / in any encoding", "[net][policy]") {
    auto p = NetworkPolicy::from_strings({"127.0.0.1:8080", "10.0.0.0/8", "[::1]:9000"}, {});
    CHECK(host_verdict(p, "127.0.0.1", 8080) == Verdict::allow);
    CHECK(host_verdict(p, "2130706433", 8080) == Verdict::allow);
    CHECK(host_verdict(p, "0x7f.1", 8080) == Verdict::allow);
    CHECK(host_verdict(p, "[::ffff:127.0.0.1]", 8080) == Verdict::allow);
    CHECK(host_verdict(p, "localhost", 8080) == Verdict::ask); // a name is not an IP rule
    CHECK(host_verdict(p, "127.0.0.1", 80) == Verdict::ask);
    CHECK(host_verdict(p, "10.9.8.7", 443) == Verdict::allow);
    CHECK(host_verdict(p, "[::1]", 9000) == Verdict::allow);
    // A name rule never matches an IP literal.
    auto q = NetworkPolicy::from_strings({"127.0.0.1.nip.io", "*.nip.io"}, {});
    CHECK(host_verdict(q, "127.0.0.1") == Verdict::ask);
}

TEST_CASE("denied CIDR blocks apply to IP literals in any encoding", "[net][policy]") {
    auto p = NetworkPolicy::from_strings({"*.example.com"}, {"169.254.0.0/16"});
    CHECK(host_verdict(p, "169.254.169.254", 80) == Verdict::deny);
    CHECK(host_verdict(p, "0xa9fea9fe", 80) == Verdict::deny);
    CHECK(host_verdict(p, "[::ffff:a9fe:a9fe]", 80) == Verdict::deny);
}

TEST_CASE("resolved addresses: non-global refused unless listed", "[net][policy]") {
    auto p = NetworkPolicy::from_strings({"*.example.com"}, {});
    CHECK(addr_verdict(p, "93.184.216.34") == Verdict::allow);
    for (auto a : {"127.0.0.1", "::1", "10.0.0.1", "172.16.5.4", "192.168.0.10", "169.254.169.254",
                   "169.254.1.1", "100.64.1.1", "fd00::1", "fe80::1", "0.0.0.0", "::", "224.0.0.1",
                   "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::7f00:1"}) {
        INFO(a);
        CHECK(addr_verdict(p, a) == Verdict::ask);
    }
    // The host's own (global) interface address is treated like loopback.
    CHECK(addr_verdict(p, "93.184.216.34", 443, {boost::asio::ip::make_address("93.184.216.34")}) ==
          Verdict::ask);
    // Listing the address (or a CIDR containing it) for the port allows it.
    auto q = NetworkPolicy::from_strings({"127.0.0.1:8080", "10.0.0.0/8"}, {"8.8.0.0/16"});
    CHECK(addr_verdict(q, "127.0.0.1", 8080) == Verdict::allow);
    CHECK(addr_verdict(q, "::ffff:127.0.0.1", 8080) == Verdict::allow);
    CHECK(addr_verdict(q, "127.0.0.1", 8081) == Verdict::ask);
    CHECK(addr_verdict(q, "127.0.0.2", 8080) == Verdict::ask);
    CHECK(addr_verdict(q, "10.1.1.1", 443) == Verdict::allow);
    CHECK(addr_verdict(q, "8.8.8.8", 443) == Verdict::deny);
    auto d = q.check_address(boost::asio::ip::make_address("127.0.0.1"), 9);
    CHECK(d.reason.find("loopback") != std::string::npos);
}

TEST_CASE("rule syntax", "[net][policy]") {
    CHECK(rule_ok("example.com"));
    CHECK(rule_ok("*.example.com"));
    CHECK(rule_ok("example.com:443"));
    CHECK(rule_ok("example.com:*"));
    CHECK(rule_ok("bücher.de"));
    CHECK(rule_ok("10.0.0.0/8"));
    CHECK(rule_ok("10.0.0.0/8:443"));
    CHECK(rule_ok("fd00::/8"));
    CHECK(rule_ok("[fd00::]/8:443"));
    CHECK(rule_ok("[fd00::/8]:443"));
    CHECK(rule_ok("[::1]:8080"));
    CHECK(rule_ok("::1"));
    CHECK_FALSE(rule_ok(""));
    CHECK_FALSE(rule_ok("*"));
    CHECK_FALSE(rule_ok("*.com"));
    CHECK_FALSE(rule_ok("ex*.com"));
    CHECK_FALSE(rule_ok("a.*.example.com"));
    CHECK_FALSE(rule_ok("*.10.0.0.1"));
    CHECK_FALSE(rule_ok("example.com:0"));
    CHECK_FALSE(rule_ok("example.com:99999"));
    CHECK_FALSE(rule_ok("example .com"));
    CHECK_FALSE(rule_ok("10.0.0.0/40"));
    CHECK_FALSE(rule_ok("[1.2.3.4]"));
    CHECK_FALSE(rule_ok("fe80::1%eth0"));
    CHECK_THROWS_AS(NetworkPolicy::from_strings({"ok.com", "bad rule"}, {}), std::invalid_argument);
}

TEST_CASE("deny_all denies without asking", "[net][policy]") {
    auto p = NetworkPolicy::deny_all("broken config");
    CHECK(host_verdict(p, "example.com") == Verdict::deny);
    CHECK(addr_verdict(p, "8.8.8.8") == Verdict::deny);
}

TEST_CASE("rule coverage and allow-list intersection", "[net][policy]") {
    std::string err;
    auto r = [&](const char* s) { return *parse_rule(s, err); };
    CHECK(r("*.github.com").covers(r("api.github.com")));
    CHECK(r("*.github.com").covers(r("*.api.github.com")));
    CHECK_FALSE(r("*.github.com").covers(r("github.com")));
    CHECK_FALSE(r("api.github.com").covers(r("*.github.com")));
    CHECK(r("example.com").covers(r("example.com:443")));
    CHECK_FALSE(r("example.com").covers(r("example.com:8080")));
    CHECK_FALSE(r("example.com:443").covers(r("example.com")));
    CHECK(r("example.com:*").covers(r("example.com:8080")));
    CHECK(r("10.0.0.0/8").covers(r("10.1.2.3")));
    CHECK_FALSE(r("10.1.2.3").covers(r("10.0.0.0/8")));

    CHECK(intersect_allow({"*.github.com", "example.com"}, {"api.github.com", "evil.com"}) ==
          std::vector<std::string>{"api.github.com"});
    CHECK(intersect_allow({"api.github.com"}, {"*.github.com"}) ==
          std::vector<std::string>{"api.github.com"});
    CHECK(intersect_allow({"example.com:*"}, {"example.com"}) ==
          std::vector<std::string>{"example.com"});
    CHECK(intersect_allow({"example.com"}, {"example.com:*"}) ==
          std::vector<std::string>{"example.com"});
    CHECK(intersect_allow({"example.com"}, {}).empty());
}

TEST_CASE("method and path rules (NET-06)", "[net][policy][net06]") {
    std::string err;
    auto host = [&](const char* h) { return *parse_host(h, err); };
    auto check = [&](const NetworkPolicy& p, const char* h, std::uint16_t port, const char* m,
                     const char* target) {
        RequestLine line{m, target};
        return p.check_host(host(h), port, &line);
    };
    auto p = NetworkPolicy::from_json(
        {json{{"host", "registry.npmjs.org"}, {"methods", {"GET", "head"}}},
         json{{"host", "api.example.test"}, {"paths", {"/v1/", "/status"}}},
         json{{"host", "mixed.test"}, {"methods", {"GET"}}}, json("mixed.test:8080")},
        {});
    SECTION("methods") {
        CHECK(check(p, "registry.npmjs.org", 443, "GET", "/react").verdict == Verdict::allow);
        CHECK(check(p, "registry.npmjs.org", 80, "HEAD", "/react").verdict == Verdict::allow);
        auto post = check(p, "registry.npmjs.org", 443, "POST", "/-/v1/login");
        CHECK(post.verdict == Verdict::deny); // denied, not asked
        CHECK(post.reason.find("method POST is not allowed by rule") != std::string::npos);
        CHECK(post.reason.find("(allowed: GET, HEAD)") != std::string::npos);
        CHECK(check(p, "registry.npmjs.org", 443, "get", "/").verdict == Verdict::deny);
        // Ports of the host part still apply: another port is not covered by the rule.
        CHECK(check(p, "registry.npmjs.org", 8443, "GET", "/").verdict == Verdict::ask);
    }
    SECTION("paths: prefixes at a '/' boundary, query ignored, tricks refused") {
        CHECK(check(p, "api.example.test", 443, "POST", "/v1/repos?x=1").verdict == Verdict::allow);
        CHECK(check(p, "api.example.test", 443, "GET", "/status").verdict == Verdict::allow);
        CHECK(check(p, "api.example.test", 443, "GET", "/status/x").verdict == Verdict::allow);
        CHECK(check(p, "api.example.test", 443, "GET", "/statusx").verdict == Verdict::deny);
        CHECK(check(p, "api.example.test", 443, "GET", "/v1").verdict == Verdict::deny);
        CHECK(check(p, "api.example.test", 443, "GET", "/gists").verdict == Verdict::deny);
        CHECK(check(p, "api.example.test", 443, "GET", "/?/v1/").verdict == Verdict::deny);
        for (auto* t : {"/v1/../gists", "/v1/./x", "/v1/%2e%2e/gists", "/v1/%2E%2e/gists",
                        "/v1/..%2fgists", "/v1\\..\\gists", "/v1/x%2Fy", "/v1/%5c"}) {
            auto d = check(p, "api.example.test", 443, "GET", t);
            INFO(t);
            CHECK(d.verdict == Verdict::deny);
            CHECK(d.reason.find("cannot judge") != std::string::npos);
        }
    }
    SECTION("an opaque tunnel cannot be allowed by a method/path rule") {
        std::string err2;
        auto d = p.check_host(host("registry.npmjs.org"), 443);
        CHECK(d.verdict == Verdict::deny);
        CHECK(d.reason.find("cannot be enforced on an opaque tunnel") != std::string::npos);
        // An unrestricted rule for that host and port still allows tunnels.
        CHECK(p.check_host(host("mixed.test"), 8080).verdict == Verdict::allow);
        CHECK(p.check_host(host("mixed.test"), 443).verdict == Verdict::deny);
        CHECK(check(p, "mixed.test", 8080, "POST", "/").verdict == Verdict::allow);
    }
    SECTION("object rules: parsing, text, coverage") {
        auto r = parse_rule_spec(json{{"host", "*.npmjs.org"}, {"methods", {"get"}}}, err);
        REQUIRE(r);
        CHECK(r->methods == std::vector<std::string>{"GET"});
        CHECK(r->text == R"({"host":"*.npmjs.org","methods":["get"]})");
        auto bad = [&](json j) {
            bool ok = parse_rule_spec(j, err).has_value();
            INFO(j.dump() << ": " << err);
            CHECK_FALSE(ok);
        };
        bad(json{{"methods", {"GET"}}});
        bad(json{{"host", "x.test"}, {"methods", json::array()}});
        bad(json{{"host", "x.test"}, {"methods", {"GE T"}}});
        bad(json{{"host", "x.test"}, {"methods", {"CONNECT"}}});
        bad(json{{"host", "x.test"}, {"paths", {"relative"}}});
        bad(json{{"host", "x.test"}, {"paths", {"/a/../b"}}});
        bad(json{{"host", "x.test"}, {"paths", {"/a?b"}}});
        bad(json{{"host", "x.test"}, {"verbs", {"GET"}}});
        bad(json(7));
        CHECK_THROWS_AS(
            NetworkPolicy::from_json({}, {json{{"host", "x.test"}, {"methods", {"GET"}}}}),
            std::invalid_argument);
        auto any = *parse_rule("registry.npmjs.org", err);
        auto get =
            *parse_rule_spec(json{{"host", "registry.npmjs.org"}, {"methods", {"GET"}}}, err);
        auto gh = *parse_rule_spec(
            json{{"host", "registry.npmjs.org"}, {"methods", {"GET", "HEAD"}}, {"paths", {"/a/"}}},
            err);
        CHECK(any.covers(get));
        CHECK_FALSE(get.covers(any));
        CHECK(get.covers(gh) == false); // gh allows HEAD
        auto g_a = *parse_rule_spec(
            json{{"host", "registry.npmjs.org"}, {"methods", {"GET"}}, {"paths", {"/a/b"}}}, err);
        CHECK(gh.covers(g_a));
        CHECK_FALSE(g_a.covers(gh));
        // Workspace narrowing keeps the narrower rule.
        auto out =
            intersect_allow_rules({json("registry.npmjs.org")},
                                  {json{{"host", "registry.npmjs.org"}, {"methods", {"GET"}}}});
        REQUIRE(out.size() == 1);
        CHECK(out[0].is_object());
        out = intersect_allow_rules({json{{"host", "registry.npmjs.org"}, {"methods", {"GET"}}}},
                                    {json("registry.npmjs.org")});
        REQUIRE(out.size() == 1);
        CHECK(out[0].is_object()); // the workspace cannot lift the restriction
    }
}
