#include "cordon/protocol/jsonrpc.hpp"
#include "cordon/server/paths.hpp"

#include <catch2/catch.hpp>

using namespace cordon::server;

TEST_CASE("workspace paths are normalised component by component", "[paths]") {
    CHECK(resolve_in_workspace("/ws", "a/b", "/path").relative == "a/b");
    CHECK(resolve_in_workspace("/ws", "./a//b/", "/path").relative == "a/b");
    CHECK(resolve_in_workspace("/ws", "/ws/a", "/path").absolute == "/ws/a");
    CHECK(resolve_in_workspace("/ws", "", "/path").absolute == "/ws");
}

TEST_CASE("paths leaving the workspace are rejected before any filesystem call", "[paths]") {
    for (std::string bad :
         std::vector<std::string>{"../x", "a/../../x", "/ws-evil/x", "/etc/passwd", "/w", "a/\n/b",
                                  std::string("a\0b", 3), "/proc/self/root/etc"}) {
        INFO(bad);
        try {
            resolve_in_workspace("/ws", bad, "/path");
            FAIL("accepted");
        } catch (const cordon::protocol::RpcError& e) {
            CHECK(e.code == cordon::protocol::code::invalid_params);
            CHECK(e.data["path"] == "/path");
        }
    }
}
