// git inside a real sandbox: the session's wiring in miniature. The sandbox init creates the
// listener on 127.0.0.1:8418 inside the sandbox's network namespace; the GitProxy (outside)
// accepts on it; git inside gets only git_env. The token never enters the sandbox.
#include "git_fixture.hpp"
#include "harness.hpp"

#include <catch2/catch.hpp>

using namespace cordon::test;
namespace sb = cordon::sandbox;

TEST_CASE("git proxy: clone and push from inside a sandbox; the token is nowhere inside",
          "[git][sandbox]") {
    GitWorld w; // its own loopback listener is unused here
    sb::testing::TestSandbox box([&](sb::SandboxSpec& spec) {
        spec.listen_ports = {kGitProxyPort};
        for (auto& [k, v] : git_env(w.config, kGitProxyPort))
            spec.env[k] = v;
    });
    if (!box.ok()) {
        WARN("sandbox unavailable: " << box.error());
        return;
    }
    REQUIRE(box.init().listener_fds.size() == 1);
    int fd = box.init().listener_fds[0];
    w.t.sync([&] { w.proxy->add_listener(fd); });

    std::string url = w.url("owner/repo.git");
    sb::testing::RunOptions o;
    o.env = {{"GIT_AUTHOR_NAME", "agent"},
             {"GIT_AUTHOR_EMAIL", "agent@test"},
             {"GIT_COMMITTER_NAME", "agent"},
             {"GIT_COMMITTER_EMAIL", "agent@test"}};
    auto r = box.sh("cd /tmp && git clone -q " + url +
                        " w && cd w && git commit -q --allow-empty -m inside && "
                        "git push -q origin HEAD:refs/heads/cordon/sandboxed && echo pushed",
                    o);
    INFO(r.describe());
    CHECK(r.out.find("pushed") != std::string::npos);
    CHECK(w.remote_refs().find("refs/heads/cordon/sandboxed") != std::string::npos);

    r = box.sh("cd /tmp/w && git push origin HEAD:main", o);
    INFO(r.describe());
    CHECK(r.exit_code() != 0);
    CHECK(r.err.find("cordon: ref outside the allowed refs") != std::string::npos);

    // Search everything the sandbox can read: environment and argv of every process, files.
    // The patterns match the token (and its Basic form) without containing it, so that the
    // search's own argv does not count.
    auto hide = [](std::string s) { return s.substr(0, 3) + "[" + s[3] + "]" + s.substr(4); };
    std::string basic =
        run("printf %s " + shell_quote("x-access-token:" + w.token) + " | base64 -w0").out;
    std::string pat = "-e " + shell_quote(hide(w.token)) + " -e " + shell_quote(hide(basic));
    std::string skip;
    for (auto* d : {"proc", "sys", "dev", "usr", "lib", "lib64", "bin", "sbin"})
        skip += std::string(" --exclude-dir=") + d;
    r = box.sh("for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do cat $f 2>/dev/null; "
               "done | tr '\\0' '\\n' | grep -c " +
                   pat + "; grep -rIls" + skip + " " + pat + " / 2>/dev/null | head -5; true",
               o);
    INFO(r.describe());
    CHECK(r.out == "0\n");
    // Control: the same search does find a token that is there.
    std::string search = "grep -rIls" + skip + " " + pat + " / 2>/dev/null | head -5";
    r = box.sh("printf '%s%s' " + shell_quote(w.token.substr(0, 5)) + " " +
                   shell_quote(w.token.substr(5)) + " > /tmp/w/control; " + search,
               o);
    CHECK(r.out.find("/tmp/w/control") != std::string::npos);
}
