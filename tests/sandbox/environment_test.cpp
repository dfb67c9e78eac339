#include "cordon/sandbox/environment.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>

using namespace cordon::sandbox;

TEST_CASE("the environment is built from the allowlist, never inherited", "[sandbox][unit][env]") {
    setenv("AWS_SECRET_ACCESS_KEY", "leak", 1);
    setenv("SSH_AUTH_SOCK", "/run/user/1/ssh", 1);
    EnvironmentBase base;
    base.home = "/home/u";
    base.user = "u";
    auto env =
        build_environment(base, {{"POLICY", "p"}, {"LANG", "de_DE.UTF-8"}},
                          {{"REQ", "r"}, {"POLICY", "override"}, {"BAD=NAME", "x"}, {"", "y"}});
    auto has = [&env](const std::string& kv) {
        return std::find(env.begin(), env.end(), kv) != env.end();
    };
    CHECK(has("HOME=/home/u"));
    CHECK(has("USER=u"));
    CHECK(has("LOGNAME=u"));
    CHECK(has("TMPDIR=/tmp"));
    CHECK(has("LANG=de_DE.UTF-8"));
    CHECK(has("POLICY=override"));
    CHECK(has("REQ=r"));
    for (const auto& kv : env) {
        CHECK(kv.find("leak") == std::string::npos);
        CHECK(kv.rfind("SSH_AUTH_SOCK", 0) != 0);
        CHECK(kv.rfind("BAD", 0) != 0);
        CHECK(kv[0] != '=');
    }
    CHECK(std::is_sorted(env.begin(), env.end()));
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("SSH_AUTH_SOCK");
}
