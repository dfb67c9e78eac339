#include "cordon/server/net/policy.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace cordon::server::net;
namespace fs = std::filesystem;

namespace {
struct TempDir {
    fs::path path;
    TempDir() {
        char t[] = "/tmp/cordon-net-config-XXXXXX";
        path = ::mkdtemp(t);
    }
    ~TempDir() { fs::remove_all(path); }
    fs::path write(const std::string& rel, const std::string& text) {
        auto p = path / rel;
        fs::create_directories(p.parent_path());
        std::ofstream(p) << text;
        return p;
    }
};
Verdict verdict(const NetworkPolicy& p, const char* host, std::uint16_t port = 443) {
    std::string err;
    return p.check_host(*parse_host(host, err), port).verdict;
}
} // namespace

TEST_CASE("config: user file / session override / workspace narrowing", "[net][config]") {
    TempDir d;
    auto user = d.write("user/config.json", R"({
        "network": {"allow": ["*.github.com", "pypi.org", "example.com"], "deny": ["gist.github.com"]},
        "filesystem": {"denyRead": ["~/.ssh"]}
    })");
    auto ws = d.path / "ws";
    fs::create_directories(ws);

    SECTION("user config alone") {
        auto r = load_network_policy({user, nullptr, ws});
        REQUIRE(r.ok());
        CHECK(verdict(r.policy, "api.github.com") == Verdict::allow);
        CHECK(verdict(r.policy, "gist.github.com") == Verdict::deny);
        CHECK(verdict(r.policy, "pypi.org") == Verdict::allow);
    }
    SECTION("session policy replaces allow and adds deny") {
        json session = {{"network", {{"allow", {"crates.io"}}, {"deny", {"evil.test"}}}}};
        auto r = load_network_policy({user, session, ws});
        REQUIRE(r.ok());
        CHECK(verdict(r.policy, "crates.io") == Verdict::allow);
        CHECK(verdict(r.policy, "pypi.org") == Verdict::ask);
        CHECK(verdict(r.policy, "evil.test") == Verdict::deny);
        CHECK(verdict(r.policy, "gist.github.com") == Verdict::deny); // user's deny stays
    }
    SECTION("workspace config can only narrow") {
        d.write("ws/.cordon/config.json", R"({"network": {
            "allow": ["api.github.com", "attacker.example", "*.pypi.org", "example.com:*"],
            "deny": ["pypi.org"]}})");
        auto r = load_network_policy({user, nullptr, ws});
        REQUIRE(r.ok());
        CHECK(verdict(r.policy, "api.github.com") == Verdict::allow);
        CHECK(verdict(r.policy, "raw.github.com") == Verdict::ask);   // narrowed away
        CHECK(verdict(r.policy, "attacker.example") == Verdict::ask); // not widened
        CHECK(verdict(r.policy, "files.pypi.org") == Verdict::ask);
        CHECK(verdict(r.policy, "pypi.org") == Verdict::deny);
        CHECK(verdict(r.policy, "example.com", 443) == Verdict::allow);
        CHECK(verdict(r.policy, "example.com", 8080) == Verdict::ask); // port not widened
    }
    SECTION("a workspace file without network.allow keeps the allow list") {
        d.write("ws/.cordon/config.json", R"({"network": {"deny": ["pypi.org"]}})");
        auto r = load_network_policy({user, nullptr, ws});
        REQUIRE(r.ok());
        CHECK(verdict(r.policy, "api.github.com") == Verdict::allow);
        CHECK(verdict(r.policy, "pypi.org") == Verdict::deny);
    }
}

TEST_CASE("config: errors name the file and the JSON path - fail closed", "[net][config]") {
    TempDir d;
    SECTION("bad rule") {
        auto user = d.write("config.json", R"({"network": {"allow": ["ok.com", "bad rule", 7]}})");
        auto r = load_network_policy({user, nullptr, std::nullopt});
        REQUIRE(r.errors.size() == 2);
        CHECK(r.errors[0].file == user.string());
        CHECK(r.errors[0].path == "/network/allow/1");
        CHECK(r.errors[1].path == "/network/allow/2");
        CHECK(r.errors[0].text().find("bad rule") != std::string::npos);
        CHECK(verdict(r.policy, "ok.com") == Verdict::deny);
    }
    SECTION("invalid JSON") {
        auto user = d.write("config.json", R"({"network": )");
        auto r = load_network_policy({user, nullptr, std::nullopt});
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].message.find("invalid JSON") != std::string::npos);
    }
    SECTION("wrong shapes") {
        auto user = d.write("config.json", R"({"network": {"allow": "x.com", "alow": []}})");
        auto r = load_network_policy({user, nullptr, std::nullopt});
        REQUIRE(r.errors.size() == 2);
        CHECK(r.errors[0].path == "/network/allow");
        CHECK(r.errors[1].path == "/network/alow");
    }
    SECTION("session policy errors") {
        json session = {{"network", {{"deny", {"*"}}}}};
        auto r = load_network_policy({d.path / "missing.json", session, std::nullopt});
        REQUIRE(r.errors.size() == 1);
        CHECK(r.errors[0].file == "session/create policy");
        CHECK(r.errors[0].path == "/network/deny/0");
    }
    SECTION("a missing user config is fine") {
        auto r = load_network_policy({d.path / "missing.json", nullptr, d.path});
        CHECK(r.ok());
        CHECK(verdict(r.policy, "example.com") == Verdict::ask);
    }
}

TEST_CASE("config: default user config path follows XDG_CONFIG_HOME", "[net][config]") {
    const char* old = std::getenv("XDG_CONFIG_HOME");
    std::string saved = old ? old : "";
    ::setenv("XDG_CONFIG_HOME", "/tmp/xdg-test", 1);
    CHECK(default_user_config_path() == fs::path("/tmp/xdg-test/cordon/config.json"));
    ::unsetenv("XDG_CONFIG_HOME");
    const char* home = std::getenv("HOME");
    CHECK(default_user_config_path() == fs::path(home ? home : "/") / ".config/cordon/config.json");
    if (old) ::setenv("XDG_CONFIG_HOME", saved.c_str(), 1);
}

TEST_CASE("config: approval question limits", "[net][config][approvals]") {
    TempDir d;
    auto ws = d.path / "ws";
    fs::create_directories(ws);
    SECTION("defaults") {
        auto r = load_network_policy({d.path / "missing.json", nullptr, ws});
        REQUIRE(r.ok());
        CHECK(r.policy.limits().max_pending_questions == 4);
        CHECK(r.policy.limits().max_questions_per_window == 20);
        CHECK(r.policy.limits().question_window == std::chrono::seconds(600));
    }
    SECTION("user sets, session overrides, workspace may only tighten") {
        auto user = d.write("config.json", R"({"network": {"approvals":
            {"maxPending": 2, "maxPerWindow": 50, "windowSeconds": 60}}})");
        json session = {{"network", {{"approvals", {{"maxPerWindow", 10}}}}}};
        d.write("ws/.cordon/config.json", R"({"network": {"approvals":
            {"maxPending": 0, "maxPerWindow": 5, "windowSeconds": 30}}})");
        auto r = load_network_policy({user, session, ws});
        REQUIRE(r.ok());
        CHECK(r.policy.limits().max_pending_questions == 2);    // 0 (no limit) is looser
        CHECK(r.policy.limits().max_questions_per_window == 5); // tighter: taken
        CHECK(r.policy.limits().question_window == std::chrono::seconds(60)); // shorter: not
        d.write("ws/.cordon/config.json",
                R"({"network": {"approvals": {"maxPending": 1, "windowSeconds": 3600}}})");
        r = load_network_policy({user, nullptr, ws});
        CHECK(r.policy.limits().max_pending_questions == 1);
        CHECK(r.policy.limits().max_questions_per_window == 50);
        CHECK(r.policy.limits().question_window == std::chrono::seconds(3600));
    }
    SECTION("bad values are errors with their path") {
        auto user = d.write("config.json", R"({"network": {"approvals":
            {"maxPending": -1, "maxPerWindow": "x", "windowSeconds": 0, "other": 1}}})");
        auto r = load_network_policy({user, nullptr, std::nullopt});
        REQUIRE(r.errors.size() == 4);
        CHECK(r.errors[0].path == "/network/approvals/maxPending");
        CHECK(r.errors[1].path == "/network/approvals/maxPerWindow");
        CHECK(r.errors[2].path == "/network/approvals/other");
        CHECK(r.errors[3].path == "/network/approvals/windowSeconds");
        CHECK(verdict(r.policy, "example.com") == Verdict::deny); // fail closed
    }
}

TEST_CASE("config: object rules and the egress budget", "[net][config][net06]") {
    TempDir d;
    auto ws = d.path / "ws";
    fs::create_directories(ws);
    SECTION("object rules load; deny rules must be strings") {
        auto user = d.write("config.json", R"({"network": {
            "allow": ["pypi.org", {"host": "registry.npmjs.org", "methods": ["GET", "HEAD"]}],
            "maxEgressBytes": 1000000}})");
        auto r = load_network_policy({user, nullptr, ws});
        REQUIRE(r.ok());
        CHECK(r.policy.limits().max_egress_bytes == 1000000);
        std::string err;
        RequestLine post{"POST", "/"};
        CHECK(r.policy.check_host(*parse_host("registry.npmjs.org", err), 443, &post).verdict ==
              Verdict::deny);
        user = d.write("config.json", R"({"network": {
            "deny": [{"host": "x.test"}], "allow": [{"host": "y.test", "paths": ["a"]}, 5]}})");
        r = load_network_policy({user, nullptr, ws});
        REQUIRE(r.errors.size() == 3);
        CHECK(r.errors[0].path == "/network/allow/0");
        CHECK(r.errors[0].message.find("invalid path prefix") != std::string::npos);
        CHECK(r.errors[1].path == "/network/allow/1");
        CHECK(r.errors[2].path == "/network/deny/0");
    }
    SECTION("the workspace may lower the egress budget, not raise it") {
        auto user = d.write("config.json", R"({"network": {"maxEgressBytes": 1000}})");
        d.write("ws/.cordon/config.json", R"({"network": {"maxEgressBytes": 0}})");
        CHECK(load_network_policy({user, nullptr, ws}).policy.limits().max_egress_bytes == 1000);
        d.write("ws/.cordon/config.json", R"({"network": {"maxEgressBytes": 10}})");
        CHECK(load_network_policy({user, nullptr, ws}).policy.limits().max_egress_bytes == 10);
    }
}
