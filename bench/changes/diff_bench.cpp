// changes/diff with 10 changed files in generated workspaces of 1k, 10k and 100k files,
// against `git status` on the same trees, measured in the same run.
//
//   bench_changes_diff [N...]      (default: 1000 10000 100000)
//
// Each workspace is a git repository (committed), mounted as the lower dir of a real
// overlay; 10 files change through the overlay (5 modified, 3 added, 2 deleted). Both tools
// run warm: one untimed run, then the median of 15. Prints per size: diff ms, git status
// ms, their ratio, and at the end diff(largest)/diff(smallest) against the 1.5x target.
#include "cordon/server/changes/diff.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace cordon::server::changes;
using Clock = std::chrono::steady_clock;

namespace {

void write(const fs::path& p, const std::string& s) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << s;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

template <class F> double time_ms(F f, int runs = 15) {
    f(); // warm
    std::vector<double> t;
    for (int i = 0; i < runs; ++i) {
        auto a = Clock::now();
        f();
        t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - a).count());
    }
    return median(t);
}

int sh(const std::string& cmd) {
    int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

const char* kGit = "GIT_CONFIG_NOSYSTEM=1 HOME=/nonexistent git -c core.hooksPath=/dev/null "
                   "-c core.fsmonitor= -c gc.auto=0 -c user.name=b -c user.email=b@b ";

struct Result {
    std::size_t files;
    double diff_ms, git_ms;
};

Result run_one(const fs::path& base, std::size_t n) {
    fs::path root = base / std::to_string(n);
    fs::path ws = root / "ws", upper = root / "state/upper", work = root / "state/work",
             sbroot = root / "sbroot", merged = sbroot / ws.relative_path();
    for (const auto& d : {ws, upper, work, merged})
        fs::create_directories(d);
    const std::size_t per_dir = 100;
    for (std::size_t i = 0; i < n; ++i) {
        fs::path dir = ws / ("d" + std::to_string(i / per_dir));
        if (i % per_dir == 0) fs::create_directories(dir);
        write(dir / ("f" + std::to_string(i) + ".txt"),
              "file " + std::to_string(i) + "\nline two\nline three\n");
    }
    if (sh("cd " + ws.string() + " && " + kGit + "init -q . && " + kGit + "add -A && " + kGit +
           "commit -qm gen") != 0) {
        std::fprintf(stderr, "git setup failed\n");
        std::exit(1);
    }
    std::string opts = "lowerdir=" + ws.string() + ",upperdir=" + upper.string() +
                       ",workdir=" + work.string() + ",userxattr";
    if (::mount("overlay", merged.c_str(), "overlay", 0, opts.c_str()) != 0) {
        std::fprintf(stderr, "mount overlay: %s (run as root or under unshare -Urm)\n",
                     std::strerror(errno));
        std::exit(1);
    }
    for (int i = 0; i < 5; ++i)
        write(merged / ("d" + std::to_string(i)) / ("f" + std::to_string(i * per_dir) + ".txt"),
              "changed\n");
    for (int i = 0; i < 3; ++i)
        write(merged / ("new" + std::to_string(i) + ".txt"), "added\n");
    for (int i = 0; i < 2; ++i)
        fs::remove(merged / ("d" + std::to_string(5 + i)) /
                   ("f" + std::to_string((5 + i) * per_dir) + ".txt"));

    int root_fd = ::open(sbroot.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    SessionFiles s{ws.string(), root_fd, upper, root / "state"};
    std::size_t changed = 0;
    double diff_ms = time_ms([&] { changed = compute_changes(s).files.size(); });
    if (changed != 10) std::fprintf(stderr, "warning: %zu changes, expected 10\n", changed);
    double git_ms = time_ms([&] {
        sh(std::string("cd ") + merged.string() + " && " + kGit + "status --porcelain >/dev/null");
    });
    ::close(root_fd);
    ::umount2(merged.c_str(), MNT_DETACH);
    return {n, diff_ms, git_ms};
}

} // namespace

int main(int argc, char** argv) {
    std::vector<std::size_t> sizes;
    for (int i = 1; i < argc; ++i)
        sizes.push_back(std::stoul(argv[i]));
    if (sizes.empty()) sizes = {1000, 10000, 100000};
    char tmpl[] = "/tmp/cordon-bench.XXXXXX";
    if (!::mkdtemp(tmpl)) return 1;
    fs::path base = tmpl;
    std::vector<Result> results;
    std::printf("%10s %12s %16s %10s\n", "files", "diff ms", "git status ms", "diff/git");
    for (auto n : sizes) {
        results.push_back(run_one(base, n));
        const auto& r = results.back();
        std::printf("%10zu %12.3f %16.3f %10.3f\n", r.files, r.diff_ms, r.git_ms,
                    r.diff_ms / r.git_ms);
        std::fflush(stdout);
    }
    if (results.size() > 1) {
        double ratio = results.back().diff_ms / results.front().diff_ms;
        std::printf("diff(%zu)/diff(%zu) = %.2fx (target <= 1.5x): %s\n", results.back().files,
                    results.front().files, ratio, ratio <= 1.5 ? "met" : "MISSED");
    }
    std::error_code ec;
    fs::remove_all(base, ec);
    return 0;
}
