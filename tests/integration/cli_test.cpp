// The command-line front ends, run as a user would.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
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
