// Real sandboxes: start, exec, copy-on-write workspace, lifecycle.
#include "harness.hpp"

#include <algorithm>

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace cordon::sandbox;
using namespace cordon::sandbox::testing;

TEST_CASE("a session starts and runs /bin/echo", "[sandbox][session]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    auto r = sb.run({"/bin/echo", "hello", "world"});
    INFO(r.describe());
    CHECK(r.exit_code() == 0);
    CHECK(r.out == "hello world\n");
}

TEST_CASE("an init started ahead (spawn_init) becomes the same sandbox once given a spec",
          "[sandbox][session]") {
    auto spawned = spawn_init(init_exe());
    REQUIRE(std::holds_alternative<SpareInit>(spawned));
    SpareInit spare = std::get<SpareInit>(spawned);
    usleep(50 * 1000); // let it build its namespaces and wait
    REQUIRE(kill(spare.pid, 0) == 0);
    TestSandbox sb({}, nullptr, spare);
    REQUIRE(sb.error() == "");
    auto r = sb.sh("echo hi > new.txt && cat new.txt");
    INFO(r.describe());
    CHECK(r.exit_code() == 0);
    CHECK(r.out == "hi\n");
    CHECK(!exists(sb.tree().workspace + "/new.txt")); // copy-on-write as with a fresh start
    auto secret = sb.sh("cat " + sb.tree().home + "/.ssh/id_rsa 2>&1; echo done");
    INFO(secret.describe());
    CHECK(secret.out.find("cordon-test-ssh") == std::string::npos);
}

TEST_CASE("a spare init that is dropped exits; one that died is reported, never used",
          "[sandbox][session]") {
    auto a = spawn_init(init_exe());
    REQUIRE(std::holds_alternative<SpareInit>(a));
    SpareInit dropped = std::get<SpareInit>(a);
    const pid_t pid = dropped.pid;
    close(dropped.control_fd); // the server lets it go without a spec
    int st = 0;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st));

    auto b = spawn_init(init_exe());
    REQUIRE(std::holds_alternative<SpareInit>(b));
    SpareInit dead = std::get<SpareInit>(b);
    usleep(20 * 1000);
    kill(dead.pid, SIGKILL);
    TempTree tree;
    SandboxSpec spec;
    spec.workspace = tree.workspace;
    spec.state_dir = tree.state;
    spec.host_home = tree.home;
    auto r = start_init(dead, spec, init_exe());
    REQUIRE(std::holds_alternative<SetupError>(r));
    CHECK(std::get<SetupError>(r).step == "init");
}

TEST_CASE("argv[0] is resolved through PATH inside the sandbox", "[sandbox][session]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    auto r = sb.run({"echo", "via-path"});
    INFO(r.describe());
    CHECK(r.out == "via-path\n");
    auto missing = sb.run({"no-such-command-cordon"});
    CHECK(missing.exit_code() == 127);
    CHECK(missing.error.find("exec") != std::string::npos);
}

TEST_CASE("writes land in the upper dir, never in the real workspace", "[sandbox][session]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    auto& t = sb.tree();
    auto r = sb.sh("echo changed > README.md && echo new > created.txt && "
                   "echo hook > .git/hooks-test && cat README.md");
    INFO(r.describe());
    CHECK(r.exit_code() == 0);
    CHECK(r.out == "changed\n");
    CHECK(read_file(t.workspace + "/README.md") == "original readme\n");
    CHECK_FALSE(exists(t.workspace + "/created.txt"));
    CHECK(read_file(t.state + "/upper/README.md") == "changed\n");
    CHECK(read_file(t.state + "/upper/created.txt") == "new\n");
    CHECK(read_file(t.state + "/upper/.git/hooks-test") == "hook\n");
}

TEST_CASE("cwd, env and the scrubbed environment", "[sandbox][session]") {
    setenv("CORDON_TEST_SERVER_SECRET", "server-secret-value", 1);
    TestSandbox sb([](SandboxSpec& s) { s.env["FROM_POLICY"] = "p"; });
    REQUIRE(sb.error() == "");
    RunOptions o;
    o.cwd = sb.spec().workspace + "/src";
    o.env["FROM_REQUEST"] = "r";
    auto r = sb.run({"/usr/bin/env"}, o);
    INFO(r.describe());
    CHECK(r.out.find("FROM_POLICY=p\n") != std::string::npos);
    CHECK(r.out.find("FROM_REQUEST=r\n") != std::string::npos);
    CHECK(r.out.find("HOME=" + sb.spec().host_home + "\n") != std::string::npos);
    CHECK(r.out.find("server-secret-value") == std::string::npos);
    CHECK(r.out.find("SSH_AUTH_SOCK") == std::string::npos);
    auto pwd = sb.run({"/bin/pwd"}, o);
    CHECK(pwd.out == sb.spec().workspace + "/src\n");
    unsetenv("CORDON_TEST_SERVER_SECRET");
}

TEST_CASE("the private home persists across commands, the real home is untouched",
          "[sandbox][session]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    auto w = sb.sh("echo cache > ~/.cache-file && ls -A ~");
    INFO(w.describe());
    CHECK(w.exit_code() == 0);
    auto r = sb.sh("cat ~/.cache-file");
    CHECK(r.out == "cache\n");
    CHECK_FALSE(exists(sb.spec().host_home + "/.cache-file"));
    CHECK(read_file(sb.spec().state_dir + "/home/.cache-file") == "cache\n");
    // The toolchain allowlist is visible read-only.
    auto c = sb.run({sb.spec().host_home + "/.cargo/bin/cargo-fake"});
    INFO(c.describe());
    CHECK(c.out == "cargo-fake\n");
}

TEST_CASE("two sessions on one workspace do not see each other's changes", "[sandbox][session]") {
    TempTree shared;
    TempTree other; // only its state dir is used
    TestSandbox a(nullptr, &shared);
    REQUIRE(a.error() == "");
    TestSandbox b([&other](SandboxSpec& s) { s.state_dir = other.state; }, &shared);
    REQUIRE(b.error() == "");
    CHECK(a.sh("echo from-a > mine.txt").exit_code() == 0);
    auto r = b.sh("cat mine.txt");
    CHECK(r.exit_code() != 0);
    CHECK(r.out == "");
    CHECK(a.sh("cat mine.txt").out == "from-a\n");
}

TEST_CASE("several commands run at once", "[sandbox][session]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    auto slow = sb.spawn({"/bin/sh", "-c", "sleep 0.5; echo slow"});
    auto fast = sb.spawn({"/bin/sh", "-c", "echo fast"});
    auto f = sb.wait(fast);
    CHECK(f.out == "fast\n");
    auto s = sb.wait(slow);
    CHECK(s.out == "slow\n");
}

TEST_CASE("setup failures name the step and the fix", "[sandbox][session]") {
    TestSandbox sb([](SandboxSpec& s) { s.workspace = "/nonexistent/cordon/workspace"; });
    CHECK(sb.error().find("workspace") != std::string::npos);
    auto r = start_init(SandboxSpec{}, "/nonexistent/cordon-sandbox");
    REQUIRE(std::holds_alternative<SetupError>(r));
    CHECK(std::get<SetupError>(r).step == "exec");
    CHECK(std::get<SetupError>(r).err == ENOENT);
}

TEST_CASE("listen_ports: the server accepts connections made inside the sandbox",
          "[sandbox][session]") {
    TestSandbox sb([](SandboxSpec& s) { s.listen_ports = {18080}; });
    REQUIRE(sb.error() == "");
    REQUIRE(sb.init().listener_fds.size() == 1);
    auto id = sb.spawn({"/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/18080; echo via-proxy >&3"});
    int conn = accept4(sb.init().listener_fds[0], nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(conn >= 0);
    char buf[64] = {};
    ssize_t n = read(conn, buf, sizeof(buf) - 1);
    close(conn);
    CHECK(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0) == "via-proxy\n");
    CHECK(sb.wait(id).exit_code() == 0);
}

TEST_CASE("workspace files owned by another user are reported at start", "[sandbox][session]") {
    TempTree t;
    std::string ws = t.workspace;
    if (geteuid() == 0) {
        write_file(t.workspace + "/foreign.txt", "x\n");
        REQUIRE(chown((t.workspace + "/foreign.txt").c_str(), 65534, 65534) == 0);
    } else {
        ws = "/etc/skel"; // root-owned files a regular user can read
    }
    TestSandbox sb([&ws](SandboxSpec& s) { s.workspace = ws; }, &t);
    REQUIRE(sb.error() == "");
    bool noted = false;
    for (const auto& n : sb.init().ready.notes)
        noted |= n.find("owned by another user") != std::string::npos;
    CHECK(noted);
}

TEST_CASE("probe_host reports every facility quickly", "[sandbox][session]") {
    auto t0 = std::chrono::steady_clock::now();
    auto facilities = probe_host();
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    CHECK(ms < 100);
    std::vector<std::string> names;
    for (const auto& f : facilities) {
        names.push_back(f.name);
        INFO(f.name << ": " << f.detail << " fix: " << f.fix);
        if (f.required) {
            CHECK(f.available); // this host has every required facility: fail loudly if not
        }
        if (!f.available) CHECK_FALSE(f.fix.empty());
    }
    CHECK(names == std::vector<std::string>{"userns", "overlay", "seccomp", "landlock", "cgroups"});
    CHECK_FALSE(facilities.back().required);
}

TEST_CASE("bad requests get an ExecExited with an error, the session lives on",
          "[sandbox][session]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    RunOptions o;
    o.cwd = "/nonexistent/dir";
    auto r = sb.run({"/bin/true"}, o);
    CHECK(r.error.rfind("chdir /nonexistent/dir: ", 0) == 0);
    CHECK(r.exit_code() == 126);
    // Wrong number of fds.
    int p[2];
    REQUIRE(pipe2(p, O_CLOEXEC) == 0);
    ExecRequest req;
    req.id = 999;
    req.argv = {"/bin/true"};
    REQUIRE(send_control(sb.init().control_fd, req, {p[1]}) == 0);
    close(p[0]);
    close(p[1]);
    std::vector<int> fds;
    int err = 0;
    std::optional<ControlMessage> msg;
    do {
        msg = recv_control(sb.init().control_fd, fds, err);
        REQUIRE(msg);
    } while (!std::holds_alternative<ExecExited>(*msg));
    CHECK(std::get<ExecExited>(*msg).id == 999);
    CHECK(std::get<ExecExited>(*msg).error.find("4 fds") != std::string::npos);
    // Killing an unknown id is harmless; the session still runs commands.
    sb.kill(12345);
    CHECK(sb.run({"/bin/echo", "still"}).out == "still\n");
}

TEST_CASE("everyday tools work under the filters", "[sandbox][session]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    // Threads, subprocesses, pipes, a compiler writing and running a binary in /tmp, git
    // writing its object store inside the overlay, a loopback server.
    std::string script = "set -e; cd /tmp; echo sh-ok; ";
    if (exists("/usr/bin/python3"))
        script +=
            "/usr/bin/python3 -c 'import subprocess,multiprocessing,socket;"
            "print(subprocess.run([\"echo\",\"py-ok\"],capture_output=True).stdout.decode().strip()"
            ");"
            "multiprocessing.Pool(2).map(abs,[1]); s=socket.socket(); s.bind((\"127.0.0.1\",0))'; ";
    if (exists("/usr/bin/cc"))
        script += "printf 'int main(void){return 0;}' > t.c && cc t.c -o t && ./t && echo cc-ok; ";
    if (exists("/usr/bin/git"))
        script += "cd " + sb.spec().workspace +
                  " && git init -q repo && cd repo && "
                  "git -c user.email=a@b -c user.name=n commit -q --allow-empty -m m && "
                  "git log --oneline | wc -l; ";
    auto r = sb.sh(script);
    INFO(r.describe());
    CHECK(r.exit_code() == 0);
    CHECK(r.out.find("sh-ok") != std::string::npos);
    if (exists("/usr/bin/python3")) CHECK(r.out.find("py-ok") != std::string::npos);
    if (exists("/usr/bin/cc")) CHECK(r.out.find("cc-ok") != std::string::npos);
    if (exists("/usr/bin/git")) CHECK_FALSE(exists(sb.spec().workspace + "/repo"));
}

TEST_CASE("refused filesystem writes are reported with their paths, allowed ones are not",
          "[sandbox][session][violations]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    auto r = sb.sh("echo x > /etc/cordon-probe; mkdir /usr/cordon-probe; touch /cordon-probe;"
                   "(cd /etc && rm -f hostname); mv /etc/passwd /tmp/pw;"
                   "echo ok > in-ws.txt; mkdir -p sub && (cd sub && echo y > ../rel.txt);"
                   "echo ok > /tmp/t; echo ok > /var/tmp/vt; echo ok > \"$HOME/h\";"
                   "echo ok > /dev/null; chmod 600 in-ws.txt; chmod 777 /etc/hostname; true");
    INFO(r.describe());
    auto has = [&r](const std::string& w) {
        return std::find(r.refused_writes.begin(), r.refused_writes.end(), w) !=
               r.refused_writes.end();
    };
    CHECK(has("open for writing /etc/cordon-probe"));
    CHECK(has("mkdir /usr/cordon-probe"));
    CHECK(has("open for writing /cordon-probe"));
    CHECK(has("unlink /etc/hostname")); // relative to the caller's cwd
    CHECK(has("rename /etc/passwd"));
    CHECK(has("chmod /etc/hostname"));
    for (const auto& w : r.refused_writes) {
        INFO(w);
        CHECK(w.find(sb.tree().workspace) == std::string::npos);
        CHECK(w.find(" /tmp/") == std::string::npos);
        CHECK(w.find("/var/tmp") == std::string::npos); // a symlink into /tmp: allowed
        CHECK(w.find("/dev/null") == std::string::npos);
        CHECK(w.find("/h") != w.size() - 2);
    }
    // Tools may retry another way (mv unlinks after a cross-device rename; touch sets times
    // after a failed create): never more than a few per attempt.
    CHECK(r.refused_writes.size() <= 10);
    CHECK(!exists("/etc/cordon-probe"));
    CHECK(!exists("/usr/cordon-probe"));
    CHECK(exists(sb.tree().state + "/upper/rel.txt"));

    // One command's reports are capped; the rest are counted.
    auto flood = sb.sh("for i in $(seq 1 30); do touch /etc/flood-$i 2>/dev/null; done; true");
    INFO(flood.describe());
    CHECK(flood.refused_writes.size() == 20);
    CHECK(flood.more_refused >= 1); // the count of the rest follows the outcome
}
