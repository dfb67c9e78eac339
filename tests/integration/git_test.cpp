// git from inside a real sandbox, through the real server's git proxy, to a real
// `git http-backend` over TLS that requires a token. The token lives only in the server's
// environment: the sandbox must be able to clone and push where allowed, be refused
// elsewhere, and never contain the token.
#include "cordon/server/client.hpp"
#include "git_fixture.hpp"
#include "test_servers.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace cordon::server;
using namespace cordon::protocol;
namespace fs = std::filesystem;

namespace {

struct SandboxGit {
    cordon::test::GitWorld world;
    fs::path root, ws;
    std::unique_ptr<ServerProcess> server;
    std::string sid;

    SandboxGit() {
        root = cordon::test::make_temp_dir("cordon-git-int");
        ws = root / "ws";
        fs::create_directories(ws);
        json config = {{"git",
                        {{"caFile", cordon::test::TestCerts::get().ca_pem},
                         {"remotes",
                          {{{"url", world.url("owner/repo.git")},
                            {"credential", {{"env", "CORDON_TEST_GIT_TOKEN"}}}}}}}}};
        std::ofstream(root / "config.json") << config.dump(2);
        // Only the server process has the token.
        ::setenv("CORDON_TEST_GIT_TOKEN", world.token.c_str(), 1);
        server = std::make_unique<ServerProcess>(
            CORDON_EXE,
            std::vector<std::string>{"--state-dir", (root / "state").string(), "--config",
                                     (root / "config.json").string(), "--log-level", "warn"});
        ::unsetenv("CORDON_TEST_GIT_TOKEN");
        server->initialize();
        sid = server->result("session/create", {{"workspace", ws.string()}})["sessionId"];
    }
    ~SandboxGit() {
        server.reset();
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    json sh(const std::string& command, const std::function<void(const json&)>& on = {}) {
        return server->result("exec",
                              {{"sessionId", sid},
                               {"command", command},
                               {"timeoutMs", 60000},
                               {"env",
                                {{"GIT_AUTHOR_NAME", "agent"},
                                 {"GIT_AUTHOR_EMAIL", "agent@sandbox"},
                                 {"GIT_COMMITTER_NAME", "agent"},
                                 {"GIT_COMMITTER_EMAIL", "agent@sandbox"}}}},
                              on);
    }
};

} // namespace

TEST_CASE("git clone, fetch and an allowed push work from inside; the token never enters",
          "[git][sandbox-git]") {
    SandboxGit g;
    auto url = g.world.url("owner/repo.git");
    auto clone = g.sh("git clone -q " + url + " repo 2>&1 && git -C repo log --oneline | wc -l");
    INFO(clone.dump());
    REQUIRE(clone["exitCode"] == 0);
    CHECK(clone["stdout"] == "2\n");
    auto push = g.sh("cd repo && echo three >> a.txt && git commit -qam third && "
                     "git push -q origin HEAD:refs/heads/cordon/agent 2>&1 && git fetch -q 2>&1");
    INFO(push.dump());
    CHECK(push["exitCode"] == 0);
    CHECK(g.world.remote_refs().find("refs/heads/cordon/agent") != std::string::npos);
    // Search everything the sandbox can see: environment, processes, files.
    // The token is spelled in two halves so the search command itself does not contain it.
    const std::string& t = g.world.token;
    std::string halves = "a='" + t.substr(0, 6) + "'; b='" + t.substr(6) + "'; ";
    auto search = g.sh(halves + "env; cat /proc/*/environ /proc/*/cmdline 2>/dev/null | "
                                "tr '\\0' '\\n'; grep -rIl --exclude-dir=proc --exclude-dir=sys "
                                "-e \"$a$b\" / 2>/dev/null; echo searched");
    CHECK(search["stdout"].get<std::string>().find(t) == std::string::npos);
    CHECK(search["stdout"].get<std::string>().find("searched") != std::string::npos);
    // Positive control: the same search finds the token when it is there.
    auto control = g.sh(halves + "echo \"$a$b\" > planted.txt; grep -rIl -e \"$a$b\" " +
                        g.ws.string() + " 2>/dev/null; rm planted.txt");
    CHECK(control["stdout"].get<std::string>().find("planted.txt") != std::string::npos);
    // The workspace's own .git/config is untouched by the routing.
    auto cfg = g.sh("cat repo/.git/config");
    CHECK(cfg["stdout"].get<std::string>().find("127.0.0.1") == std::string::npos);
}

TEST_CASE("pushes outside the allowed refs are refused with git's own error",
          "[git][sandbox-git]") {
    SandboxGit g;
    auto url = g.world.url("owner/repo.git");
    REQUIRE(g.sh("git clone -q " + url + " repo")["exitCode"] == 0);
    auto before = g.world.remote_refs();
    std::vector<json> violations;
    auto collect = [&](const json& m) {
        if (m.value("method", "") == "sandbox/violation") violations.push_back(m["params"]);
    };
    auto main_push = g.sh("cd repo && echo x >> a.txt && git commit -qam x && "
                          "git push origin HEAD:main 2>&1",
                          collect);
    CHECK(main_push["exitCode"] != 0);
    CHECK(main_push["stdout"].get<std::string>().find("refs/heads/main") != std::string::npos);
    auto tag = g.sh("cd repo && git tag v1 && git push origin v1 2>&1", collect);
    CHECK(tag["exitCode"] != 0);
    auto del = g.sh("cd repo && git push origin :refs/heads/cordon/existing 2>&1", collect);
    CHECK(del["exitCode"] != 0);
    auto mixed =
        g.sh("cd repo && git push origin HEAD:refs/heads/cordon/ok HEAD:main 2>&1", collect);
    CHECK(mixed["exitCode"] != 0);
    auto option = g.sh("cd repo && git push origin HEAD:refs/heads/--mirror 2>&1", collect);
    CHECK(option["exitCode"] != 0);
    CHECK(g.world.remote_refs() == before);
    CHECK(violations.size() >= 4);
    for (auto& v : violations)
        CHECK(v["kind"] == "git");
}

TEST_CASE("a repository that is not configured is refused, without a credential",
          "[git][sandbox-git]") {
    SandboxGit g;
    auto other = g.world.url("owner/other.git");
    auto r = g.sh("git clone -q " + other + " other 2>&1; echo rc=$?");
    CHECK(r["stdout"].get<std::string>().find("rc=0") == std::string::npos);
    // The proxy refuses it itself: the remote never sees a request for it, let alone a token.
    for (auto& req : g.world.remote->requests())
        if (req.value("path", "").find("other") != std::string::npos)
            CHECK(req["authorization"].is_null());
}
