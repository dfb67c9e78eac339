#include "cordon/protocol/jsonrpc.hpp"
#include "cordon/server/changes/protected_paths.hpp"
#include "cordon/server/changes/request_path.hpp"

#include <catch2/catch.hpp>

using namespace cordon::server::changes;

TEST_CASE("request paths are normalised component by component", "[changes][paths]") {
    CHECK(validate_request_path("/ws", "a/b", "/path") == "a/b");
    CHECK(validate_request_path("/ws", "./a//b/", "/path") == "a/b");
    CHECK(validate_request_path("/ws", "/ws/a", "/path") == "a");
    CHECK(validate_request_path("/ws", "/ws", "/path") == "");
    CHECK(validate_request_path("/ws", "%2e%2e/x", "/path") == "%2e%2e/x"); // a literal name
    CHECK(validate_request_path("/ws", "a\\..\\..\\x", "/path") == "a\\..\\..\\x");
    CHECK(validate_request_path("/ws", std::string(255, 'n'), "/path").size() == 255);
}

TEST_CASE("traversal in every spelling is rejected before any filesystem call (RPC-05, APPLY-02)",
          "[changes][paths][security]") {
    const std::string long_name(4096, 'a');
    const std::string long_comp(256, 'b');
    for (std::string bad : std::vector<std::string>{"../x",
                                                    "a/../../x",
                                                    "a/..",
                                                    "..",
                                                    "/ws-evil/x",
                                                    "/ws-evil",
                                                    "/w",
                                                    "/etc/passwd",
                                                    "/proc/self/root/etc/passwd",
                                                    "file:///etc/passwd",
                                                    "a/\n/b",
                                                    "a\rb",
                                                    "a\tb",
                                                    std::string("a\0b", 3),
                                                    "x\x7f",
                                                    "\xc2\x85name",
                                                    "\xff\xfe",
                                                    long_name,
                                                    "a/" + long_comp,
                                                    "/ws/../etc"}) {
        INFO(printable_path(bad));
        try {
            validate_request_path("/ws", bad, "/files/0/path");
            FAIL("accepted");
        } catch (const cordon::protocol::RpcError& e) {
            CHECK(e.code == cordon::protocol::code::invalid_params);
            CHECK(e.data["path"] == "/files/0/path");
            CHECK(std::string(e.what()).find("path '") != std::string::npos);
        }
    }
}

TEST_CASE("upper-dir names that cannot be carried are recognised", "[changes][paths]") {
    CHECK(bad_name_reason("ok.txt") == std::nullopt);
    CHECK(bad_name_reason("a\nb").has_value());
    CHECK(bad_name_reason("a\rb").has_value());
    CHECK(bad_name_reason("..").has_value());
    CHECK(bad_name_reason("\xff").has_value());
    CHECK(bad_name_reason(std::string(256, 'x')).has_value());
    CHECK(printable_path("a\nb") == "a\\x0ab");
}

TEST_CASE("paths that run code on the host are protected (APPLY-03)", "[changes][paths]") {
    for (const char* p : {".git/hooks/pre-commit",
                          "sub/.git/config",
                          ".vscode/settings.json",
                          ".vscode/tasks.json",
                          ".vscode/launch.json",
                          ".devcontainer/devcontainer.json",
                          ".envrc",
                          ".bashrc",
                          "home/.zshrc",
                          ".profile",
                          ".mcp.json",
                          ".claude/settings.json",
                          ".cursor/rules/x.mdc",
                          ".github/workflows/ci.yml",
                          ".cordon/policy.json",
                          ".husky/pre-commit",
                          ".githooks/pre-push",
                          "pkg/.VSCode/Tasks.json",
                          "proj.code-workspace",
                          ".pre-commit-config.yaml"}) {
        INFO(p);
        CHECK(is_protected_path(p));
    }
    for (const char* p : {"src/main.cpp", ".vscode/notes.md", "README.md", "github/workflows.txt",
                          "bashrc", ".gitignore"}) {
        INFO(p);
        CHECK_FALSE(is_protected_path(p));
    }
}

#include "cordon/server/changes/diff.hpp"

TEST_CASE("changes/diff params: paths are validated", "[changes][paths]") {
    using cordon::protocol::json;
    CHECK(diff_options_from_json(json::object(), "/ws").paths.empty());
    CHECK(diff_options_from_json(json{{"paths", {"/ws/a", "b/"}}}, "/ws").paths ==
          std::vector<std::string>{"a", "b"});
    CHECK_THROWS_AS(diff_options_from_json(json{{"paths", {"../x"}}}, "/ws"),
                    cordon::protocol::RpcError);
    CHECK_THROWS_AS(diff_options_from_json(json{{"paths", "a"}}, "/ws"),
                    cordon::protocol::RpcError);
}
