// SECURITY-CASES.md rows TTY, FD, PROC, CG, NS, SOCK, SEC, LL, FS, RES: each attack is
// performed for real inside a real sandbox (mostly by cordon-attack), then the outcome and
// the host (fake secrets, real workspace, marker files, processes) are checked.
#include "harness.hpp"

#include <arpa/inet.h>
#include <catch2/catch.hpp>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace cordon::sandbox;
using namespace cordon::sandbox::testing;

namespace {

// Every attack line either says "blocked" or "info"; none says "ESCAPED".
void require_held(const RunResult& r, int min_blocked = 1) {
    INFO(r.describe());
    CHECK(r.out.find("ESCAPED") == std::string::npos);
    std::size_t blocked = 0;
    for (std::size_t pos = 0; (pos = r.out.find(": blocked", pos)) != std::string::npos; ++pos)
        ++blocked;
    CHECK(blocked >= static_cast<std::size_t>(min_blocked));
    CHECK(r.exit_code() == 0);
}

// The host side is untouched: fake secrets byte-identical, real workspace as created.
void require_host_untouched(TempTree& t) {
    for (const auto& [rel, bytes] : kFakeSecrets) {
        INFO(rel);
        CHECK(read_file(t.home + "/" + rel) == bytes);
    }
    CHECK(read_file(t.workspace + "/README.md") == "original readme\n");
    CHECK(read_file(t.workspace + "/.git/config") == "[core]\n\tbare = false\n");
    std::vector<std::string> names;
    DIR* d = opendir(t.workspace.c_str());
    while (dirent* e = d ? readdir(d) : nullptr)
        if (e->d_name[0] != '.' || std::strlen(e->d_name) > 2) names.push_back(e->d_name);
    if (d) closedir(d);
    std::sort(names.begin(), names.end());
    std::vector<std::string> expected = {".git", "README.md", "bin", "src"};
    for (const auto& extra : {"leak", "link"})
        if (exists(t.workspace + "/" + extra)) expected.push_back(extra);
    std::sort(expected.begin(), expected.end());
    CHECK(names == expected);
    std::vector<std::string> home_names;
    d = opendir(t.home.c_str());
    while (dirent* e = d ? readdir(d) : nullptr)
        home_names.push_back(e->d_name);
    if (d) closedir(d);
    CHECK(std::find(home_names.begin(), home_names.end(), ".profile") == home_names.end());
}

void require_no_secret(const std::string& out) {
    for (const auto& [rel, bytes] : kFakeSecrets) {
        if (rel == ".bashrc" || rel == ".config/other/settings") continue;
        INFO(rel);
        CHECK(out.find(bytes.substr(0, 20)) == std::string::npos);
    }
}

int listen_tcp_loopback(int& port) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(s, 16);
    socklen_t len = sizeof(a);
    getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    return s;
}

// Processes on the host whose argv contains `marker`.
int count_host_processes(const std::string& marker) {
    int n = 0;
    DIR* d = opendir("/proc");
    while (dirent* e = d ? readdir(d) : nullptr) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        std::string cmd = read_file("/proc/" + std::string(e->d_name) + "/cmdline");
        if (cmd.find(marker) != std::string::npos) ++n;
    }
    if (d) closedir(d);
    return n;
}

} // namespace

TEST_CASE("TTY-01/03: TIOCSTI (also +2^32) and TIOCLINUX are refused, no VT devices",
          "[sandbox][security][TTY]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    require_held(sb.attack("tiocsti"), 4);
    require_held(sb.attack("tioclinux"), 4);
    require_host_untouched(sb.tree());
}

TEST_CASE("FD-01/03: only stdio is inherited, cwd inside the root, no climbing out",
          "[sandbox][security][FD]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    // The server's own descriptors (a host directory fd among them) must not leak.
    int leak = open("/", O_RDONLY | O_DIRECTORY); // deliberately not CLOEXEC
    TestSandbox sb2;
    REQUIRE(sb2.error() == "");
    require_held(sb2.attack("fds"), 3);
    close(leak);
    require_held(sb.attack("fds"), 3);
}

TEST_CASE("PROC-02/03: fresh procfs, pid 1 protected, kernel knobs read-only",
          "[sandbox][security][PROC]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    require_held(sb.attack("proc"), 6);
    require_held(sb.attack("knobs"), 8);
    auto m = sb.sh("cat /proc/self/mountinfo");
    CHECK(m.out.find(" /proc/sys ro,") != std::string::npos);
    CHECK(m.out.find(" /sys ro,") != std::string::npos);
    CHECK(m.out.find("docker.sock") == std::string::npos);
}

TEST_CASE("CG-01: cgroup files not writable, cgroupfs mounts denied", "[sandbox][security][CG]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    require_held(sb.attack("cgroups"), 5);
}

TEST_CASE("NS-01/03: masks cannot be unmounted, nothing remounted, no mount API",
          "[sandbox][security][NS]") {
    TestSandbox sb([](SandboxSpec& s) { s.filesystem.allow_read = {"~/.config"}; });
    REQUIRE(sb.error() == "");
    const std::string mask = sb.spec().host_home + "/.config/gh";
    require_held(sb.attack("mounts", {mask}), 15);
    require_held(sb.attack("mounts", {"/etc/shadow"}), 15);
    auto r = sb.sh("cat " + mask + "/hosts.yml; ls -A " + mask);
    require_no_secret(r.out);
    require_host_untouched(sb.tree());
}

TEST_CASE("NS-02/SEC-03/SEC-05: namespaces, clone3 and high-risk syscalls are filtered",
          "[sandbox][security][NS][SEC]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    require_held(sb.attack("namespaces"), 15);
    require_held(sb.attack("syscalls"), 20);
}

TEST_CASE("NS-05: no_new_privs, no capabilities, nosuid system view", "[sandbox][security][NS]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    require_held(sb.attack("privileges"), 8);
}

TEST_CASE("NS-06: minimal /dev, setgroups denied", "[sandbox][security][NS]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    auto r = sb.sh("ls /dev | sort | tr '\\n' ' '");
    INFO(r.describe());
    CHECK(r.out == "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero ");
    CHECK(sb.sh("echo x > /dev/null && head -c 4 /dev/urandom | wc -c").out == "4\n");
}

TEST_CASE("NS-08: private IPC namespace and /dev/shm", "[sandbox][security][NS]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    std::string marker = "cordon-shm-" + std::to_string(getpid());
    auto r =
        sb.sh("echo x > /dev/shm/" + marker + " && ls /dev/shm && cat /proc/sysvipc/shm | wc -l");
    INFO(r.describe());
    CHECK(r.exit_code() == 0);
    CHECK(r.out.find(marker) != std::string::npos);
    CHECK(r.out.find("\n1\n") != std::string::npos); // header line only
    CHECK_FALSE(exists("/dev/shm/" + marker));
}

TEST_CASE("NS-07/SOCK-01..05: no host sockets, abstract or pathname, no socket env",
          "[sandbox][security][SOCK][NS]") {
    // A host abstract socket (like X11's @/tmp/.X11-unix/X0) and a pathname socket inside a
    // directory the sandbox could see if /tmp were shared.
    std::string abstract_name = "cordon-test-abstract-" + std::to_string(getpid());
    int a = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, abstract_name.data(), abstract_name.size());
    REQUIRE(bind(a, reinterpret_cast<sockaddr*>(&addr),
                 static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 +
                                        abstract_name.size())) == 0);
    REQUIRE(listen(a, 4) == 0);
    setenv("SSH_AUTH_SOCK", "/tmp/ssh-agent.sock", 1);
    setenv("DISPLAY", ":0", 1);
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    require_held(sb.attack("unix", {abstract_name}), 8);
    CHECK(accept(a, nullptr, nullptr) < 0); // nothing arrived
    close(a);
    unsetenv("SSH_AUTH_SOCK");
    unsetenv("DISPLAY");
}

TEST_CASE("NET-01: direct connections reach nothing, the host listener sees nothing",
          "[sandbox][security][SOCK]") {
    int port = 0;
    int l = listen_tcp_loopback(port);
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    require_held(sb.attack("tcp", {std::to_string(port)}), 5);
    CHECK(accept(l, nullptr, nullptr) < 0);
    close(l);
    auto lo = sb.sh("cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '");
    CHECK(lo.out == "lo\n");
}

TEST_CASE("SEC-01/04: io_uring and exotic socket families are refused",
          "[sandbox][security][SEC]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    require_held(sb.attack("sockets"), 12);
}

TEST_CASE("LL-01: Landlock is enforced and its ABI reported", "[sandbox][security][LL]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    INFO("Landlock missing on this kernel: the sandbox must refuse to start instead");
    REQUIRE(sb.init().ready.landlock_abi >= 1);
    auto r = sb.sh("grep '^Seccomp:' /proc/self/status");
    CHECK(r.out == "Seccomp:\t2\n");
    INFO("Landlock ABI " << sb.init().ready.landlock_abi
                         << " < 6: abstract-socket and signal scoping unavailable");
    REQUIRE(sb.init().ready.landlock_abi >= 6);
    {
        // Each command is its own Landlock domain with abstract-unix scoping: it cannot
        // reach another command's abstract socket although they share the net namespace.
        const std::string name = "cordon-ll-" + std::to_string(getpid());
        auto listener = sb.spawn({sb.attack_path(), "listen-abstract", name});
        auto within = sb.sh("sleep 0.3; " + sb.attack_path() + " connect-abstract " + name);
        INFO(within.describe());
        CHECK(within.out.find(": blocked (Operation not permitted)") != std::string::npos);
        sb.kill(listener);
        auto l = sb.wait(listener);
        INFO(l.describe());
        CHECK(l.out.find("listening") != std::string::npos);
    }
}

TEST_CASE("FS-01/02: secrets unreadable by any spelling, hard links masked",
          "[sandbox][security][FS]") {
    TempTree t;
    // Pre-existing links in the repo: a hard link and a symlink to the real key.
    REQUIRE(link((t.home + "/.ssh/id_rsa").c_str(), (t.workspace + "/leak").c_str()) == 0);
    REQUIRE(symlink((t.home + "/.ssh/id_rsa").c_str(), (t.workspace + "/link").c_str()) == 0);
    TestSandbox sb([](SandboxSpec& s) { s.filesystem.allow_read = {"~/.config"}; }, &t);
    REQUIRE(sb.error() == "");
    bool noted = false;
    for (const auto& n : sb.init().ready.notes)
        noted |= n.find("hard link") != std::string::npos;
    CHECK(noted);
    std::string all;
    for (const auto& rel :
         {".ssh/id_rsa", ".aws/credentials", ".netrc", ".config/gh/hosts.yml",
          ".gnupg/private-keys-v1.d/key", ".docker/config.json", ".kube/config"}) {
        auto r = sb.attack("read", {t.home + "/" + rel});
        INFO(r.describe());
        CHECK(r.out.find("ESCAPED") == std::string::npos);
        all += r.out;
    }
    for (const std::string& p :
         std::vector<std::string>{t.workspace + "/leak", t.workspace + "/link"}) {
        auto r = sb.attack("read", {p});
        all += r.out;
    }
    auto c = sb.sh("cat ~/.ssh/id_rsa leak link; ls -la ~ ~/.config; cat ~/.config/other/settings");
    all += c.out + c.err;
    INFO(all);
    require_no_secret(all);
    CHECK(c.out.find("not a secret") != std::string::npos); // the allowed part is readable
    // Nothing of the real home outside the allowlist is visible.
    auto home = sb.sh("ls -A ~ | sort | tr '\\n' ' '");
    CHECK(home.out == ".cargo .config ");
    // Other homes (and root's, even when cordon runs as root) are not in the view at all.
    auto others = sb.sh("ls -d /root /home 2>&1; echo rc=$?");
    INFO(others.describe());
    CHECK(others.out.find("No such file or directory") != std::string::npos);
    CHECK(others.out.find("rc=0") == std::string::npos);
    require_host_untouched(t);
}

TEST_CASE("FS-01: policy deny_read masks workspace files", "[sandbox][security][FS]") {
    TempTree t;
    write_file(t.workspace + "/secret.env", "TOKEN=cordon-test-env\n");
    TestSandbox sb([](SandboxSpec& s) { s.filesystem.deny_read = {"secret.env"}; }, &t);
    REQUIRE(sb.error() == "");
    auto r = sb.sh("cat secret.env; rm secret.env; mv secret.env x");
    INFO(r.describe());
    CHECK(r.out.find("cordon-test-env") == std::string::npos);
    CHECK(read_file(t.workspace + "/secret.env") == "TOKEN=cordon-test-env\n");
}

TEST_CASE("FS-03: persistence writes never reach the host", "[sandbox][security][FS]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    const std::string home = sb.spec().host_home;
    for (const std::string& p :
         std::vector<std::string>{home + "/.bashrc", home + "/.profile", home + "/.gitconfig",
                                  "/proc/self/root" + home + "/.bashrc", "/etc/profile",
                                  "/usr/local/bin/git", home + "/.cargo/bin/cargo-fake",
                                  sb.spec().state_dir + "/upper/x", "/var/spool/cron/crontabs/u"}) {
        auto r = sb.attack("write", {p, "touch /tmp/cordon-pwned\n"});
        INFO(r.describe());
        CHECK(r.out.find("ESCAPED") == std::string::npos);
    }
    CHECK(read_file(home + "/.cargo/bin/cargo-fake") == "#!/bin/sh\necho cargo-fake\n");
    CHECK_FALSE(exists("/tmp/cordon-pwned"));
    require_host_untouched(sb.tree());
}

TEST_CASE("FS-04: the environment is an allowlist", "[sandbox][security][FS]") {
    setenv("GITHUB_TOKEN", "ghp_cordon_test_token", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "cordon-test-aws-env", 1);
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    auto r = sb.run({"/usr/bin/env"});
    CHECK(r.out.find("cordon_test_token") == std::string::npos);
    CHECK(r.out.find("cordon-test-aws-env") == std::string::npos);
    auto p = sb.sh("cat /proc/1/environ; cat /proc/$PPID/environ");
    CHECK(p.out.find("cordon") == std::string::npos);
    unsetenv("GITHUB_TOKEN");
    unsetenv("AWS_SECRET_ACCESS_KEY");
}

TEST_CASE("FS-05: no credential oracle answers", "[sandbox][security][FS]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    auto r = sb.sh("printf 'protocol=https\\nhost=github.com\\n\\n' | "
                   "GIT_TERMINAL_PROMPT=0 GIT_ASKPASS=/bin/false git credential fill; echo rc=$?; "
                   "ls /run/user /run/dbus 2>&1; gh auth token 2>&1");
    INFO(r.describe());
    CHECK(r.out.find("password=") == std::string::npos);
    CHECK(r.out.find("rc=0") == std::string::npos);
}

TEST_CASE("FS-06: a symlink planted in the private home cannot redirect the next session",
          "[sandbox][security][FS]") {
    TempTree t;
    {
        TestSandbox sb(nullptr, &t);
        REQUIRE(sb.error() == "");
        // ~/.cargo/bin is a mount target at every session start.
        auto r = sb.sh("mv ~/.cargo ~/.cargo-old 2>/dev/null; ln -s /etc ~/.cargo; ls -la ~");
        INFO(r.describe());
    }
    // The next start refuses to mount through the planted link (fail closed, with the fix).
    TestSandbox again(nullptr, &t);
    INFO(again.error());
    CHECK_FALSE(again.ok());
    CHECK(again.error().find("bind") == 0);
    CHECK(again.error().find("symlink") != std::string::npos);
    require_host_untouched(t);
}

TEST_CASE("RES-01: a fork bomb is bounded and leaves nothing behind", "[sandbox][security][RES]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    RunOptions o;
    o.limits.max_processes = 50;
    auto r = sb.attack("forkbomb", {"3000"}, o);
    INFO(r.describe());
    auto pos = r.out.find("forked ");
    REQUIRE(pos != std::string::npos);
    int forked = std::atoi(r.out.c_str() + pos + 7);
    CHECK(forked <= 50 + 300);
    CHECK(forked < 3000);
    CHECK(sb.sh("echo alive").out == "alive\n"); // the session still works
}

TEST_CASE("RES-02: memory and tmpfs are bounded", "[sandbox][security][RES]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    RunOptions o;
    o.limits.memory_bytes = 64ull << 20;
    auto r = sb.attack("memory", {"512"}, o);
    INFO(r.describe());
    auto pos = r.out.find("allocated ");
    REQUIRE(pos != std::string::npos);
    CHECK(std::atoi(r.out.c_str() + pos + 10) < 64);
    // /tmp is a 64 MiB tmpfs in these tests: filling it stops at ENOSPC.
    auto fill = sb.sh("dd if=/dev/zero of=/tmp/fill bs=1M count=200 2>&1; rm -f /tmp/fill");
    INFO(fill.describe());
    CHECK(fill.out.find("No space left") != std::string::npos);
}

TEST_CASE("RES-03: file size limit", "[sandbox][security][RES]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    RunOptions o;
    o.limits.file_size_bytes = 1 << 20;
    auto r = sb.run({"/bin/dd", "if=/dev/zero", "of=big", "bs=1M", "count=8"}, o);
    INFO(r.describe());
    CHECK(r.exit_code() != 0);
    CHECK(r.reason == "file-size-limit");
}

TEST_CASE("RES-04: an output flood is drained without deadlock", "[sandbox][security][RES]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    auto r = sb.attack("flood", {"32"});
    CHECK(r.exit_code() == 0);
    CHECK(r.out.size() == (32u << 20) / 2); // the harness caps capture at 16 MiB
}

TEST_CASE("RES-05/06: kill removes the whole tree, daemons included", "[sandbox][security][RES]") {
    TestSandbox sb;
    REQUIRE(sb.error() == "");
    const std::string marker = "cordon-marker-" + std::to_string(getpid());
    // Daemons that setsid, double-fork and ignore SIGTERM; the command then exits.
    auto r = sb.attack("daemons", {marker});
    INFO(r.describe());
    CHECK(r.exit_code() == 0);
    CHECK(count_host_processes(marker) == 0); // gone with the command's pid namespace
    // A running command that ignores signals, killed from outside.
    const std::string sleeper = "'/bin/sleep 1000; : " + marker + "'";
    auto id = sb.spawn({"/bin/sh", "-c",
                        "trap '' TERM INT HUP; /bin/sh -c " + sleeper + " & setsid /bin/sh -c " +
                            sleeper + " & wait"});
    for (int i = 0; i < 100 && count_host_processes(marker) < 3; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(count_host_processes(marker) >= 3); // the shell, both sleepers, maybe a transient fork
    sb.kill(id);
    auto k = sb.wait(id);
    CHECK(k.reason == "killed");
    CHECK(WIFSIGNALED(k.wait_status));
    CHECK(count_host_processes(marker) == 0);
}

TEST_CASE("RES-06: SIGKILL of the server side leaves no sandboxed process",
          "[sandbox][security][RES]") {
    const std::string marker = "cordon-orphan-" + std::to_string(getpid());
    TempTree t;
    int ready[2];
    REQUIRE(pipe(ready) == 0);
    pid_t server = fork();
    if (server == 0) {
        // A stand-in for the server: starts a session, runs a daemon, then waits to die.
        close(ready[0]);
        TestSandbox sb(nullptr, &t);
        if (!sb.ok()) _exit(1);
        const std::string sleeper = "'/bin/sleep 1000; : " + marker + "'";
        sb.spawn({"/bin/sh", "-c", "setsid /bin/sh -c " + sleeper + " & /bin/sh -c " + sleeper});
        for (int i = 0; i < 200 && count_host_processes(marker) < 2; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        int pid = sb.init().pid;
        (void)!write(ready[1], &pid, sizeof(pid));
        pause();
        _exit(0);
    }
    close(ready[1]);
    int init_pid = 0;
    REQUIRE(read(ready[0], &init_pid, sizeof(init_pid)) == sizeof(init_pid));
    CHECK(count_host_processes(marker) >= 2);
    kill(server, SIGKILL);
    waitpid(server, nullptr, 0);
    for (int i = 0; i < 100 && count_host_processes(marker) > 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK(count_host_processes(marker) == 0);
    // The init itself is gone too (or a zombie waiting for the host's reaper).
    auto alive = [init_pid] {
        std::string st = read_file("/proc/" + std::to_string(init_pid) + "/stat");
        auto close_paren = st.rfind(')');
        return !st.empty() && close_paren != std::string::npos && st[close_paren + 2] != 'Z';
    };
    for (int i = 0; i < 100 && alive(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK_FALSE(alive());
    close(ready[0]);
}
