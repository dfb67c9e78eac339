// The command-line front ends, run as a user would.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <sys/wait.h>

namespace {
struct Run {
    int code;
    std::string out;
};
Run run(const std::string& args, bool with_stderr = true) {
    std::string cmd =
        std::string(CORDON_EXE) + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
    FILE* p = ::popen(cmd.c_str(), "r");
    std::string out;
    std::array<char, 4096> buf;
    while (auto n = std::fread(buf.data(), 1, buf.size(), p))
        out.append(buf.data(), n);
    int st = ::pclose(p);
    return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}
} // namespace

TEST_CASE("cordon --help lists the commands", "[cli]") {
    auto r = run("--help");
    CHECK(r.code == 0);
    for (auto word : {"serve", "call", "run", "doctor"})
        CHECK(r.out.find(word) != std::string::npos);
}

TEST_CASE("cordon --version prints the version", "[cli]") {
    auto r = run("--version");
    CHECK(r.code == 0);
    CHECK(r.out.rfind("cordon ", 0) == 0);
}

TEST_CASE("cordon with a bad option fails with a message", "[cli]") {
    auto r = run("serve --no-such-flag");
    CHECK(r.code != 0);
    CHECK(r.out.find("no-such-flag") != std::string::npos);
    CHECK(run("").code != 0);
}

TEST_CASE("cordon call runs one method headlessly", "[cli]") {
    char tmpl[] = "/tmp/cordon-cli-XXXXXX";
    std::string dir = ::mkdtemp(tmpl);
    auto r = run("call session/list --state-dir " + dir + "/state", false);
    INFO(r.out);
    REQUIRE(r.code == 0);
    auto j = nlohmann::json::parse(r.out);
    CHECK(j["sessions"].is_array());
    auto bad = run("call session/create '{\"workspace\": 1}' --state-dir " + dir + "/state");
    CHECK(bad.code == 1);
    CHECK(bad.out.find("-32602") != std::string::npos);
    auto badjson = run("call session/list '{nope' --state-dir " + dir + "/state");
    CHECK(badjson.code == 2);
    std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("headless review: run, sessions, diff, apply, discard, audit verify", "[cli]") {
    char tmpl[] = "/tmp/cordon-cli-XXXXXX";
    std::string dir = ::mkdtemp(tmpl);
    std::string ws = dir + "/ws", st = " --state-dir " + dir + "/state";
    std::system(("mkdir -p " + ws + "/.vscode && echo one > " + ws + "/a.txt && echo '{}' > " + ws +
                 "/.vscode/tasks.json")
                    .c_str());
    auto ran = run("run -w " + ws + st +
                   " -- sh -c 'echo two >> a.txt; echo new > b.txt; echo \"{\\\"x\\\":1}\" > "
                   ".vscode/tasks.json'");
    INFO(ran.out);
    REQUIRE(ran.code == 0);
    CHECK(ran.out.find("modified  a.txt") != std::string::npos);
    auto sessions = run("sessions" + st);
    CHECK(sessions.out.find(ws) != std::string::npos);
    auto diff = run("diff -w " + ws + st, false);
    CHECK(diff.out.find("+two") != std::string::npos);
    CHECK(diff.out.find("diff --git a/b.txt b/b.txt") != std::string::npos);
    // Protected files are held back until named.
    auto applied = run("apply -w " + ws + st);
    CHECK(applied.code == 1);
    CHECK(applied.out.find("protected   .vscode/tasks.json") != std::string::npos);
    std::ifstream a(ws + "/a.txt");
    std::string content((std::istreambuf_iterator<char>(a)), {});
    CHECK(content == "one\ntwo\n");
    std::ifstream tasks(ws + "/.vscode/tasks.json");
    std::string tasks_content((std::istreambuf_iterator<char>(tasks)), {});
    CHECK(tasks_content == "{}\n");
    auto discarded = run("discard -w " + ws + st);
    CHECK(discarded.code == 0);
    auto after = run("diff --stat -w " + ws + st);
    CHECK(after.out.find("0 changed file(s)") != std::string::npos);
    // The audit log's chain verifies, and fails once a line is edited.
    std::string sid = sessions.out.substr(sessions.out.find("s-"), 26);
    auto verify = run("audit verify " + sid + st);
    CHECK(verify.code == 0);
    std::string log = dir + "/state/sessions/" + sid + "/audit.jsonl";
    std::system(("sed -i '1s/exec/EXEC/' " + log).c_str());
    auto tampered = run("audit verify " + sid + st);
    CHECK(tampered.code == 1);
    CHECK(tampered.out.find("TAMPERED") != std::string::npos);
    std::system(("rm -rf " + dir).c_str());
}
