#include "cordon/protocol/messages.hpp"
#include "cordon/protocol/params.hpp"

#include <catch2/catch.hpp>

using namespace cordon::protocol;

namespace {
std::string error_path(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const RpcError& e) {
        CHECK(e.code == code::invalid_params);
        return e.data.value("path", "?");
    }
    FAIL("no error thrown");
    return "";
}
} // namespace

TEST_CASE("bad params name the offending field", "[params]") {
    CHECK(error_path([] { parse_session_create(json::object()); }) == "/workspace");
    CHECK(error_path([] { parse_session_create({{"workspace", 5}}); }) == "/workspace");
    CHECK(error_path([] { parse_session_create({{"workspace", "rel/path"}}); }) == "/workspace");
    CHECK(error_path([] {
              parse_session_create(
                  {{"workspace", "/tmp"}, {"policy", {{"limits", {{"timeoutMs", -1}}}}}});
          }) == "/policy/limits/timeoutMs");
    // The network section's content is validated where it is merged (server/src/net).
    CHECK(error_path([] {
              parse_session_create({{"workspace", "/tmp"}, {"policy", {{"network", 5}}}});
          }) == "/policy/network");
    CHECK(error_path([] {
              parse_session_create({{"workspace", "/tmp"}, {"policy", {{"env", {{"A=B", "x"}}}}}});
          }) == "/policy/env/A=B");
    CHECK(error_path([] { parse_exec({{"sessionId", "s"}}); }) == "/command");
    CHECK(error_path([] {
              parse_exec({{"sessionId", "s"}, {"command", "x"}, {"argv", {"x"}}});
          }) == "/argv");
    CHECK(error_path([] { parse_exec({{"sessionId", "s"}, {"argv", json::array()}}); }) == "/argv");
    CHECK(error_path([] { parse_exec({{"command", "x"}}); }) == "/sessionId");
    CHECK(error_path([] {
              parse_exec({{"sessionId", "s"}, {"command", "x"}, {"timeoutMs", "10"}});
          }) == "/timeoutMs");
    CHECK(error_path([] {
              parse_exec({{"sessionId", "s"}, {"command", "x"}, {"stream", 1}});
          }) == "/stream");
}

TEST_CASE("a session policy's network section is kept whole (object rules, approvals)",
          "[params]") {
    json network = {
        {"allow", {"example.com", {{"host", "registry.npmjs.org"}, {"methods", {"GET", "HEAD"}}}}},
        {"approvals", {{"maxPending", 2}}},
        {"maxEgressBytes", 1000}};
    auto p = parse_session_create({{"workspace", "/tmp"}, {"policy", {{"network", network}}}});
    REQUIRE(p.policy);
    CHECK(p.policy->network == network);
    json back;
    to_json(back, *p.policy);
    CHECK(back["network"] == network);
}

TEST_CASE("valid params are read with defaults", "[params]") {
    auto e = parse_exec({{"sessionId", "s"}, {"command", "ls"}, {"env", {{"FOO", "1"}}}});
    CHECK(*e.command == "ls");
    CHECK(e.env.at("FOO") == "1");
    CHECK_FALSE(e.stream);
    CHECK_FALSE(e.timeout_ms);
    auto i = parse_initialize(nullptr);
    CHECK_FALSE(i.approvals);
    auto i2 = parse_initialize({{"capabilities", {{"approvals", true}}}});
    CHECK(i2.approvals);
}

TEST_CASE("policy round-trips through JSON", "[params]") {
    json j = {{"network", {{"allow", {"example.com"}}, {"deny", {"*.evil.com"}}}},
              {"filesystem", {{"denyRead", {"~/.secret"}}}},
              {"limits", {{"timeoutMs", 5}, {"maxProcesses", 10}}},
              {"env", {{"A", "b"}}}};
    auto p = parse_policy(j, "/policy");
    CHECK(json(p) == j);
}
