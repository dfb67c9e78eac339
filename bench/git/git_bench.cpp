// Git proxy benchmark: clone of a generated repository (random, incompressible blobs) through
// the GitProxy vs directly from the same loopback HTTPS remote (git http-backend behind
// tests/git/git_remote.py). Prints both throughputs and the ratio (target >= 0.8x).
//
//   git_bench [MiB=64] [rounds=3]
#include "git_fixture.hpp"

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

using namespace cordon::test;

namespace {

double seconds_of(const std::function<void()>& f) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::uint64_t pack_bytes(const std::string& repo) {
    auto r = run("cat " + shell_quote(repo) + "/.git/objects/pack/*.pack | wc -c");
    return std::strtoull(r.out.c_str(), nullptr, 10);
}

// CPU time of this process (the proxy's io thread; git and the remote are children).
double self_cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

} // namespace

int main(int argc, char** argv) {
    int mib = argc > 1 ? std::atoi(argv[1]) : 64;
    int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
    GitWorld w;
    // 4 MiB random files, one commit, pushed straight into the bare repository and repacked
    // so that every clone reuses the pack as is.
    std::string gen = "set -e; cd " + shell_quote(w.dir + "/seed") + "; for i in $(seq 1 " +
                      std::to_string((mib + 3) / 4) +
                      "); do head -c 4194304 /dev/urandom > blob$i.bin; done; "
                      "git add . && GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@t GIT_COMMITTER_NAME=b "
                      "GIT_COMMITTER_EMAIL=b@t git commit -q -m blobs && git push -q " +
                      shell_quote(w.root + "/owner/repo.git") + " main && git -C " +
                      shell_quote(w.root + "/owner/repo.git") + " repack -q -a -d && echo ok";
    if (run("sh -c " + shell_quote(gen) + " 2>&1").out.find("ok") == std::string::npos) {
        std::fprintf(stderr, "could not generate the repository\n");
        return 1;
    }
    const std::string auth =
        "Authorization: Basic " +
        run("printf %s " + shell_quote("x-access-token:" + w.token) + " | base64 -w0").out;
    double best_direct = 1e9, best_proxy = 1e9, proxy_cpu = 0;
    std::uint64_t bytes = 0;
    for (int i = 0; i < rounds; ++i) {
        std::string d = w.dir + "/direct" + std::to_string(i);
        std::string p = w.dir + "/proxy" + std::to_string(i);
        int st_d = 0, st_p = 0;
        // Direct: the same git, the same remote, the token given to git itself.
        double td = seconds_of([&] {
            st_d = run("cd " + shell_quote(w.dir) + " && env -i PATH=/usr/bin:/bin HOME=" +
                       shell_quote(w.home) + " GIT_CONFIG_NOSYSTEM=1 GIT_SSL_CAINFO=" +
                       shell_quote(TestCerts::get().ca_pem) +
                       " git -c http.extraHeader=" + shell_quote(auth) + " clone -q " +
                       w.url("owner/repo.git") + " " + shell_quote(d) + " 2>&1")
                       .status;
        });
        double cpu0 = self_cpu_seconds();
        double tp = seconds_of([&] {
            st_p =
                w.git(w.dir, "clone -q " + w.url("owner/repo.git") + " " + shell_quote(p)).status;
        });
        proxy_cpu += self_cpu_seconds() - cpu0;
        if (st_d != 0 || st_p != 0) {
            std::fprintf(stderr, "clone failed (direct %d, proxy %d)\n", st_d, st_p);
            return 1;
        }
        bytes = pack_bytes(p);
        best_direct = std::min(best_direct, td);
        best_proxy = std::min(best_proxy, tp);
        std::printf("round %d: direct %.2f s, proxy %.2f s\n", i + 1, td, tp);
        run("rm -rf " + shell_quote(d) + " " + shell_quote(p));
    }
    double mb = double(bytes) / (1024.0 * 1024.0);
    std::printf("clone of %.1f MiB pack (best of %d)\n", mb, rounds);
    std::printf("  direct: %.1f MiB/s\n", mb / best_direct);
    std::printf("  proxy:  %.1f MiB/s\n", mb / best_proxy);
    std::printf("  ratio:  %.2fx (target >= 0.80x)\n", best_direct / best_proxy);
    std::printf("  proxy CPU: %.2f s per GiB relayed (TLS decrypt + HTTP relay)\n",
                proxy_cpu / (mb * rounds / 1024.0));
    return 0;
}
