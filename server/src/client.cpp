#include "cordon/server/client.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <stdexcept>
#include <sys/wait.h>
#include <unistd.h>

namespace cordon::server {

using namespace protocol;

ServerProcess::ServerProcess(const std::string& cordon_exe,
                             const std::vector<std::string>& extra_args, bool quiet_stderr) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0)
        throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    std::vector<std::string> args{cordon_exe, "serve", "--stdio"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid_ == 0) {
        ::dup2(in[0], 0);
        ::dup2(out[1], 1);
        if (quiet_stderr) {
            int devnull = ::open("/dev/null", O_WRONLY);
            ::dup2(devnull, 2);
        }
        ::execv(argv[0], argv.data());
        std::fprintf(stderr, "cannot run %s: %s\n", argv[0], std::strerror(errno));
        ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    to_ = in[1];
    from_ = out[0];
    ::signal(SIGPIPE, SIG_IGN);
}

ServerProcess::~ServerProcess() {
    if (to_ >= 0) ::close(to_);
    if (pid_ > 0 && !status_) {
        if (wait(std::chrono::seconds(5)) < 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    if (from_ >= 0) ::close(from_);
}

void ServerProcess::write_raw(const std::string& bytes) {
    std::size_t off = 0;
    while (off < bytes.size()) {
        ssize_t n = ::write(to_, bytes.data() + off, bytes.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw std::runtime_error(std::string("write to server: ") + std::strerror(errno));
        }
        off += n;
    }
}

void ServerProcess::send(const json& msg) {
    write_raw(encode_frame(msg.dump(-1, ' ', false, json::error_handler_t::replace)));
}

std::optional<json> ServerProcess::read(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (auto ev = decoder_.next()) {
            if (!ev->ok)
                throw std::runtime_error(std::string("bad frame from server: ") + ev->detail);
            return json::parse(ev->body);
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return std::nullopt;
        pollfd pfd{from_, POLLIN, 0};
        int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return std::nullopt;
        char buf[65536];
        ssize_t n = ::read(from_, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return std::nullopt;
        decoder_.feed(std::string_view(buf, n));
    }
}

json ServerProcess::call(const std::string& method, json params,
                         const std::function<void(const json&)>& on_other,
                         std::chrono::milliseconds timeout) {
    auto id = next_id_++;
    send(make_request(id, method, std::move(params)));
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        auto msg = read(std::max(left, std::chrono::milliseconds(1)));
        if (!msg)
            throw std::runtime_error("no response to " + method + " (server gone or timeout)");
        if (msg->is_object() && msg->contains("id") && (*msg)["id"] == id &&
            !msg->contains("method"))
            return *msg;
        if (on_other) on_other(*msg);
    }
}

json ServerProcess::result(const std::string& method, json params,
                           const std::function<void(const json&)>& on_other) {
    json r = call(method, std::move(params), on_other);
    if (r.contains("error")) {
        const auto& e = r["error"];
        throw RpcError(e.value("code", 0), e.value("message", std::string()),
                       e.value("data", json(nullptr)));
    }
    return r["result"];
}

json ServerProcess::initialize(json capabilities) {
    return result("initialize", {{"clientInfo", {{"name", "cordon-cli"}}},
                                 {"capabilities", std::move(capabilities)}});
}

void ServerProcess::close_stdin() {
    if (to_ >= 0) ::close(to_);
    to_ = -1;
}

int ServerProcess::wait(std::chrono::milliseconds timeout) {
    if (status_) return *status_;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int st = 0;
        pid_t r = ::waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
            status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return *status_;
        }
        if (std::chrono::steady_clock::now() > deadline) return -1;
        ::usleep(2000);
    }
}

long ServerProcess::rss_kib() const {
    std::ifstream f("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
}

void ServerProcess::kill(int sig) {
    if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

} // namespace cordon::server
