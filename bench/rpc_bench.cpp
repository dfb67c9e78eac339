// JSON-RPC throughput and latency over stdio, beside the same loop through `cat` (a pipe
// that echoes frames back: the cost of the pipes and framing alone).
//   rpc_bench [--requests N] [--roundtrips N]
#include "cordon/protocol/framing.hpp"
#include "cordon/protocol/jsonrpc.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <poll.h>
#include <signal.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace cordon::protocol;
using Clock = std::chrono::steady_clock;

namespace {

struct Child {
    int pid, to, from;
    FrameDecoder dec;
};

Child spawn(std::vector<std::string> args) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) std::exit(1);
    int pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        execvp(argv[0], argv.data());
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    return {pid, in[1], out[0], FrameDecoder{}};
}

void write_all(int fd, const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
        ssize_t n = write(fd, s.data() + off, s.size() - off);
        if (n <= 0) {
            std::perror("write");
            std::exit(1);
        }
        off += n;
    }
}

// Reads until `count` frames have arrived.
void read_frames(Child& c, std::size_t count) {
    char buf[1 << 16];
    std::size_t got = 0;
    while (got < count) {
        while (auto ev = c.dec.next()) {
            if (!ev->ok) {
                std::fprintf(stderr, "bad frame\n");
                std::exit(1);
            }
            ++got;
        }
        if (got >= count) break;
        ssize_t n = read(c.from, buf, sizeof buf);
        if (n <= 0) {
            std::fprintf(stderr, "peer closed after %zu frames\n", got);
            std::exit(1);
        }
        c.dec.feed(std::string_view(buf, n));
    }
}

struct Result {
    double rps;
    double median_us, p99_us;
};

Result measure(Child& c, int requests, int roundtrips) {
    // Pipelined: a writer thread streams every request while this thread reads replies.
    std::string req = encode_frame(make_request(1, "session/list", json::object()).dump());
    auto t0 = Clock::now();
    std::thread writer([&] {
        std::string batch;
        for (int i = 0; i < requests; ++i) {
            batch += req;
            if (batch.size() > 60000) {
                write_all(c.to, batch);
                batch.clear();
            }
        }
        write_all(c.to, batch);
    });
    read_frames(c, requests);
    writer.join();
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();

    std::vector<double> lat;
    for (int i = 0; i < roundtrips; ++i) {
        auto s = Clock::now();
        write_all(c.to, req);
        read_frames(c, 1);
        lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - s).count());
    }
    std::sort(lat.begin(), lat.end());
    return {requests / secs, lat[lat.size() / 2], lat[lat.size() * 99 / 100]};
}

void finish(Child& c) {
    close(c.to);
    int st;
    waitpid(c.pid, &st, 0);
    close(c.from);
}

} // namespace

int main(int argc, char** argv) {
    int requests = 100000, roundtrips = 2000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--requests")) requests = std::atoi(argv[i + 1]);
        if (!std::strcmp(argv[i], "--roundtrips")) roundtrips = std::atoi(argv[i + 1]);
    }
    signal(SIGPIPE, SIG_IGN);
    char tmpl[] = "/tmp/cordon-bench-XXXXXX";
    std::string state = mkdtemp(tmpl);

    Child cat = spawn({"cat"});
    Result base = measure(cat, requests, roundtrips);
    finish(cat);

    Child srv = spawn({CORDON_EXE, "serve", "--stdio", "--log-level", "off", "--state-dir", state});
    write_all(srv.to, encode_frame(make_request(0, "initialize", json::object()).dump()));
    read_frames(srv, 1);
    Result r = measure(srv, requests, roundtrips);
    finish(srv);
    std::filesystem::remove_all(state);

    std::printf("JSON-RPC over stdio, %d pipelined requests (session/list), %d round trips\n",
                requests, roundtrips);
    std::printf("%-22s %14s %14s %12s\n", "", "requests/s", "median RTT us", "p99 RTT us");
    std::printf("%-22s %14.0f %14.1f %12.1f\n", "cat (pipe baseline)", base.rps, base.median_us,
                base.p99_us);
    std::printf("%-22s %14.0f %14.1f %12.1f\n", "cordon serve --stdio", r.rps, r.median_us,
                r.p99_us);
    std::printf("ratio cordon/cat: throughput %.2fx, median latency %.2fx\n", r.rps / base.rps,
                r.median_us / base.median_us);
    return 0;
}
