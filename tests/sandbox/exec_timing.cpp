// cordon-sandbox-timing: the numbers behind DESIGN decision 1, measured in one run.
//   bare:    fork + execve(/bin/true) + waitpid from C++
//   exec:    ExecRequest -> ExecExited round trip of /bin/true through a warm sandbox
//   start:   start_init() until InitReady, and teardown
//   bwrap:   a cold `bwrap --unshare-all --ro-bind / / /bin/true`
// Prints medians and ratios. Not a test: run by hand (or by bench/) when tuning.
#include "harness.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace cordon::sandbox;
using namespace cordon::sandbox::testing;
using Clock = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

double us_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

double run_cmd(const std::vector<const char*>& argv) {
    auto t0 = Clock::now();
    pid_t p = fork();
    if (p == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        char* envp[] = {nullptr};
        execve(argv[0], const_cast<char* const*>(argv.data()), envp);
        _exit(127);
    }
    int st;
    waitpid(p, &st, 0);
    return us_since(t0);
}

} // namespace

int main(int argc, char** argv) {
    const int n = argc > 1 ? std::atoi(argv[1]) : 300;
    std::vector<double> bare, exec, start, bwrap;
    TestSandbox sb;
    if (!sb.ok()) {
        fprintf(stderr, "sandbox: %s\n", sb.error().c_str());
        return 1;
    }
    for (int i = 0; i < 20; ++i)
        sb.run({"/bin/true"}); // warm up
    for (int i = 0; i < n; ++i) {
        bare.push_back(run_cmd({"/bin/true", nullptr})); // interleaved with the sandboxed one
        auto t0 = Clock::now();
        auto r = sb.run({"/bin/true"});
        exec.push_back(us_since(t0));
        if (r.exit_code() != 0) {
            fprintf(stderr, "exec failed: %s\n", r.describe().c_str());
            return 1;
        }
    }
    TempTree tree;
    // Interleaved, so background load hits both sides alike.
    for (int i = 0; i < 40; ++i) {
        SandboxSpec spec;
        spec.workspace = tree.workspace;
        spec.state_dir = tree.state;
        spec.host_home = tree.home;
        auto t0 = Clock::now();
        auto r = start_init(spec, init_exe());
        start.push_back(us_since(t0));
        if (auto* e = std::get_if<SetupError>(&r)) {
            fprintf(stderr, "start: %s\n", e->message().c_str());
            return 1;
        }
        auto& p = std::get<InitProcess>(r);
        close(p.control_fd);
        kill(p.pid, SIGKILL);
        waitpid(p.pid, nullptr, 0);
        bwrap.push_back(run_cmd(
            {"/usr/bin/bwrap", "--unshare-all", "--ro-bind", "/", "/", "/bin/true", nullptr}));
    }
    auto t0 = Clock::now();
    auto facilities = probe_host();
    double probe = us_since(t0);

    printf("bare fork+exec+wait /bin/true : %8.0f us (median of %d)\n", median(bare), n);
    printf("sandbox exec round trip        : %8.0f us  ratio %.2f (target <= 1.5)\n", median(exec),
           median(exec) / median(bare));
    printf("session start (start_init)     : %8.0f us\n", median(start));
    printf("cold bwrap --unshare-all       : %8.0f us  ratio start/bwrap %.2f (target <= 1)\n",
           median(bwrap), median(start) / median(bwrap));
    printf("probe_host                     : %8.0f us (target < 100000)\n", probe);
    for (const auto& f : facilities)
        printf("  %-9s %s  %s%s%s\n", f.name.c_str(), f.available ? "yes" : "NO ", f.detail.c_str(),
               f.fix.empty() ? "" : "  fix: ", f.fix.c_str());
    return 0;
}
