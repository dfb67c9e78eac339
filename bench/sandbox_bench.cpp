// The cost of sandboxing one command, in one run:
//   (a) bare fork+exec+wait of /bin/true from C++          (the floor)
//   (b) bwrap --unshare-all --ro-bind / / /bin/true, cold  (a sandbox per command)
//   (c) cordon exec of /bin/true over JSON-RPC, warm session
//   (d) cordon session/create                              (starting a warm sandbox)
// Targets: (c) <= 1.5x (a), (d) <= 1x (b). Also the server's RSS idle and with 50 sessions.
// (a) and (c) are sampled alternately so load hits both sides alike; (b) and (d) in blocks
// (see below).
//   sandbox_bench [--iterations N] [--dir DIR]
#include "cordon/server/client.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <tuple>
#include <unistd.h>
#include <utility>
#include <vector>

using cordon::server::ServerProcess;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;
extern char** environ;

namespace {

struct Stats {
    double median_us, p99_us;
};

Stats stats(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return {v[v.size() / 2], v[std::min(v.size() - 1, v.size() * 99 / 100)]};
}

template <class F> double time_once(F&& f) {
    auto s = Clock::now();
    f();
    return std::chrono::duration<double, std::micro>(Clock::now() - s).count();
}

template <class F> Stats time_it(int n, F&& f) {
    std::vector<double> v;
    for (int i = 0; i < n; ++i)
        v.push_back(time_once(f));
    return stats(std::move(v));
}

// A baseline and the measured operation, alternated sample by sample so that background
// load (other processes, frequency changes) hits both alike.
template <class F, class G> std::pair<Stats, Stats> time_pair(int n, F&& base, G&& measured) {
    std::vector<double> a, b;
    for (int i = 0; i < n; ++i) {
        a.push_back(time_once(base));
        b.push_back(time_once(measured));
    }
    return {stats(std::move(a)), stats(std::move(b))};
}

int spawn_wait(std::vector<std::string> args) {
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[0], argv.data());
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void row(const char* name, Stats s, double base = 0) {
    std::printf("%-44s %10.1f %10.1f", name, s.median_us, s.p99_us);
    if (base > 0) std::printf("   %5.2fx", s.median_us / base);
    std::printf("\n");
}

} // namespace

int main(int argc, char** argv) {
    int n = 500;
    std::string base = "/tmp";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--iterations")) n = std::atoi(argv[i + 1]);
        if (!std::strcmp(argv[i], "--dir")) base = argv[i + 1];
    }

    // The workspace and the server's state dir (--dir: e.g. a tmpfs, to tell filesystem
    // costs of session/create from the sandbox's own).
    std::string tmpl = base + "/cordon-sbench-XXXXXX";
    fs::path dir = mkdtemp(tmpl.data());
    fs::create_directories(dir / "ws");
    std::ofstream(dir / "ws/README") << "bench\n";

    std::string bwrap = fs::exists("/usr/bin/bwrap") ? "/usr/bin/bwrap" : "";
    if (bwrap.empty()) {
        std::fprintf(stderr, "bubblewrap is not installed (apt-get install bubblewrap); (b) not "
                             "measured\n");
    } else if (spawn_wait({bwrap, "--unshare-all", "--ro-bind", "/", "/", "/bin/true"}) != 0) {
        std::fprintf(stderr, "bwrap cannot run here; (b) not measured\n");
        bwrap.clear();
    }

    ServerProcess srv(CORDON_EXE, {"--state-dir", (dir / "state").string(), "--log-level", "off"},
                      true);
    srv.initialize();
    long rss_idle = srv.rss_kib();
    // session/create and a cold bwrap, each in its own block (not alternated): bwrap's net
    // namespace is torn down by the kernel after bwrap exits (cleanup_net, deferred), and
    // alternating would charge that teardown to the session/create that follows. The
    // sessions are closed (and discarded) after timing.
    std::vector<std::string> created;
    auto create_one = [&] {
        created.push_back(
            srv.result("session/create", {{"workspace", (dir / "ws").string()}})["sessionId"]);
    };
    const int creates = std::max(20, n / 5);
    Stats bw{0, 0};
    if (!bwrap.empty())
        bw = time_it(creates, [&] {
            spawn_wait({bwrap, "--unshare-all", "--ro-bind", "/", "/", "/bin/true"});
        });
    ::usleep(200 * 1000); // let the last namespaces go
    Stats create = time_it(creates, create_one);
    std::string sid = created.front();
    for (std::size_t i = 1; i < created.size(); ++i)
        srv.result("session/close", {{"sessionId", created[i]}, {"discard", true}});
    json exec_params = {{"sessionId", sid}, {"argv", {"/bin/true"}}};
    for (int i = 0; i < 20; ++i)
        srv.result("exec", exec_params); // warm-up
    auto [bare, ex] = time_pair(
        n, [] { spawn_wait({"/bin/true"}); }, [&] { srv.result("exec", exec_params); });

    for (int i = 0; i < 49; ++i)
        srv.result("session/create", {{"workspace", (dir / "ws").string()}});
    long rss_50 = srv.rss_kib();

    std::printf("Sandboxing /bin/true, %d iterations (microseconds)\n", n);
    std::printf("%-44s %10s %10s   %s\n", "", "median", "p99", "vs (a)");
    row("(a) bare fork+exec+wait", bare);
    if (!bwrap.empty()) row("(b) bwrap --unshare-all --ro-bind / / (cold)", bw, bare.median_us);
    row("(c) cordon exec, warm session, JSON-RPC", ex, bare.median_us);
    row("(d) cordon session/create", create, bare.median_us);
    std::printf("targets: (c)/(a) = %.2f (<= 1.5)", ex.median_us / bare.median_us);
    if (!bwrap.empty()) std::printf(", (d)/(b) = %.2f (<= 1.0)", create.median_us / bw.median_us);
    std::printf("\nserver RSS: idle %ld KiB, with 50 open sessions %ld KiB\n", rss_idle, rss_50);

    srv.send(json{{"jsonrpc", "2.0"}, {"id", 999}, {"method", "shutdown"}});
    srv.send(json{{"jsonrpc", "2.0"}, {"method", "exit"}});
    srv.wait();
    fs::remove_all(dir);
    return 0;
}
