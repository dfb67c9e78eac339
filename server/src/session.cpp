#include "cordon/server/session.hpp"

#include "cordon/server/changes/diff.hpp"
#include "cordon/server/dispatcher.hpp"
#include "cordon/server/paths.hpp"
#include "cordon/server/upper_dir.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <set>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

namespace cordon::server {

using namespace protocol;
using namespace asio::experimental::awaitable_operators;

namespace {

// Owns a file descriptor until released.
struct Fd {
    int fd = -1;
    Fd() = default;
    explicit Fd(int f) : fd(f) {}
    Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
    Fd& operator=(Fd&& o) noexcept {
        reset();
        fd = std::exchange(o.fd, -1);
        return *this;
    }
    ~Fd() { reset(); }
    void reset() {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
    int release() { return std::exchange(fd, -1); }
};

void make_pipe(Fd& r, Fd& w) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0)
        throw RpcError(code::internal_error, std::string("pipe: ") + std::strerror(errno));
    r = Fd(p[0]);
    w = Fd(p[1]);
}

std::string signal_name(int sig) {
    if (const char* abbrev = sigabbrev_np(sig)) return std::string("SIG") + abbrev;
    return "SIG" + std::to_string(sig);
}

// Length of the longest prefix of `s` that does not end inside a UTF-8 sequence.
std::size_t utf8_complete_prefix(std::string_view s) {
    std::size_t n = s.size();
    for (std::size_t back = 1; back <= 3 && back <= n; ++back) {
        unsigned char c = s[n - back];
        if ((c & 0xC0) == 0x80) continue; // continuation byte: keep looking
        std::size_t need = (c & 0xE0) == 0xC0   ? 2
                           : (c & 0xF0) == 0xE0 ? 3
                           : (c & 0xF8) == 0xF0 ? 4
                                                : 1;
        return need > back ? n - back : n;
    }
    return n;
}

struct Capture {
    std::string data;
    bool truncated = false;
    std::uint64_t total = 0;
};

} // namespace

namespace {

// One spare sandbox init, started ahead (sandbox::spawn_init) so that a session start skips
// the namespace setup, which is the same for every session. Process-wide, io thread only;
// replaced after each use, off the path of the request that used it.
class SpareInits {
  public:
    ~SpareInits() {
        if (spare_.pid > 0) sandbox::discard_init(spare_);
    }

    std::variant<sandbox::InitProcess, sandbox::SetupError>
    start(asio::io_context& io, const sandbox::SandboxSpec& spec, const std::string& exe) {
        sandbox::SpareInit spare = exe == exe_ ? std::exchange(spare_, {}) : sandbox::SpareInit{};
        if (spare_.pid > 0) sandbox::discard_init(spare_); // made for another executable
        asio::post(io, [this, exe] { refill(exe); });
        if (spare.pid <= 0) return sandbox::start_init(spec, exe);
        auto r = sandbox::start_init(spare, spec, exe);
        // A spare that died while waiting (not one that reported a failed step): start afresh.
        if (auto* e = std::get_if<sandbox::SetupError>(&r); e && e->step == "init")
            return sandbox::start_init(spec, exe);
        return r;
    }

  private:
    void refill(const std::string& exe) {
        if (spare_.pid > 0) return;
        auto r = sandbox::spawn_init(exe);
        if (auto* s = std::get_if<sandbox::SpareInit>(&r)) {
            spare_ = *s;
            exe_ = exe;
        }
    }

    sandbox::SpareInit spare_;
    std::string exe_;
};

SpareInits& spare_inits() {
    static SpareInits pool;
    return pool;
}

} // namespace

struct Session::Running {
    explicit Running(asio::io_context& io) : done(io) {
        done.expires_at(asio::steady_timer::time_point::max());
    }
    asio::steady_timer done;
    std::optional<sandbox::ExecExited> exited;
    sandbox::StatusReader status; // the status pipe's records
    std::string failure;          // the sandbox died under the command
    bool cancelled_by_close = false;
    json request_id;                 // the exec call's JSON-RPC id
    json violations = json::array(); // reported while the command ran
};

Session::Session(asio::io_context& io, SessionInfo info, sandbox::SandboxSpec spec,
                 std::string init_exe, SessionNetwork network)
    : io_(io), info_(std::move(info)), spec_(std::move(spec)), init_exe_(std::move(init_exe)),
      network_(std::move(network)) {
    // The sandbox reaches the network only through the proxy listeners inside its netns.
    spec_.listen_ports = {net::kHttpProxyPort, net::kSocksProxyPort};
    for (auto& [k, v] : net::proxy_env(net::kHttpProxyPort, net::kSocksProxyPort))
        spec_.env[k] = v;
    // git reaches configured remotes through the git proxy (credentials stay outside).
    if (network_.git && !network_.git->remotes.empty()) {
        spec_.listen_ports.push_back(git::kGitProxyPort);
        for (auto& [k, v] : git::git_env(*network_.git, git::kGitProxyPort))
            spec_.env[k] = v;
    }

    net::EgressOptions eo;
    eo.ask_timeout = network_.ask_timeout;
    eo.can_ask = [this] {
        auto alive = client_alive_.lock();
        return alive && *alive && client_ && client_->client_approvals();
    };
    auto ask = [this](net::ApprovalQuestion q) -> asio::awaitable<net::Decision> {
        return ask_client(std::move(q));
    };
    auto violation = [this](const json& detail) { report_violation("network", detail); };
    gate_ =
        std::make_shared<net::EgressGate>(io_.get_executor(), network_.policy, ask, violation, eo);
}

asio::awaitable<std::string> Session::ask_decision(json params) {
    auto alive = client_alive_.lock();
    if (!alive || !*alive || !client_ || !client_->client_approvals()) co_return "deny";
    params["sessionId"] = id();
    if (auto rid = single_running_request()) params["requestId"] = *rid;
    Dispatcher* client = client_;
    std::weak_ptr<bool> session_alive = alive_;
    json answer = co_await client->request("sandbox/approve", params,
                                           network_.ask_timeout + std::chrono::seconds(1));
    if (session_alive.expired()) co_return "deny"; // closed meanwhile
    std::string decision = answer.is_object() ? answer.value("decision", "") : "";
    try {
        json entry = {{"kind", "approval"}, {"question", params}, {"decision", decision}};
        audit().append(entry, true);
    } catch (const std::exception& e) {
        spdlog::error("session {}: audit log write failed: {}", id(), e.what());
    }
    co_return decision;
}

asio::awaitable<net::Decision> Session::ask_client(net::ApprovalQuestion q) {
    std::string decision = co_await ask_decision(net::to_json(q));
    co_return net::parse_decision(decision);
}

void Session::attach(Dispatcher& client) {
    client_ = &client;
    client_alive_ = client.liveness();
}

std::optional<json> Session::single_running_request() const {
    if (running_.size() != 1) return std::nullopt;
    return running_.begin()->second->request_id;
}

void Session::report_violation(const std::string& kind, const json& detail,
                               std::optional<std::uint64_t> exec_id) {
    json params = {{"sessionId", id()}, {"kind", kind}, {"detail", detail}};
    // Tied to the exec that caused it: known for filesystem writes and limit kills; for
    // network requests only when a single exec is running.
    auto own = exec_id ? running_.find(*exec_id) : running_.end();
    if (own != running_.end())
        params["requestId"] = own->second->request_id;
    else if (auto rid = single_running_request(); rid && !exec_id)
        params["requestId"] = *rid;
    spdlog::info("session {}: violation: {}", id(), serialize(params));
    for (auto& [eid, r] : running_) {
        if (exec_id && eid != *exec_id) continue;
        json v = {{"kind", kind}, {"detail", detail}};
        r->violations.push_back(std::move(v));
    }
    if (auto alive = client_alive_.lock(); alive && *alive && client_)
        client_->notify("sandbox/violation", params);
    try {
        audit().denial(kind, params);
    } catch (const std::exception& e) {
        spdlog::error("session {}: audit log write failed: {}", id(), e.what());
    }
}

Session::~Session() {
    alive_.reset();
    stop();
}

void Session::start() {
    if (running()) return;
    // One server at a time may run a session: two sandboxes on one upper dir would corrupt it.
    if (lock_fd_ < 0) {
        int fd = ::open((info_.state_dir / "lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0 || ::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            if (fd >= 0) ::close(fd);
            throw RpcError(code::internal_error,
                           "session " + id() + " is in use by another cordon server (" +
                               std::strerror(e) + ")",
                           json{{"sessionId", id()}});
        }
        lock_fd_ = fd;
    }
    auto r = spare_inits().start(io_, spec_, init_exe_);
    if (auto* err = std::get_if<sandbox::SetupError>(&r)) {
        spdlog::error("session {}: sandbox setup failed: {}", id(), err->message());
        throw RpcError(code::sandbox_unavailable, "sandbox unavailable: " + err->message(),
                       json{{"facility", err->step},
                            {"errno", err->err},
                            {"path", err->path},
                            {"fix", err->fix}});
    }
    init_ = std::get<sandbox::InitProcess>(std::move(r));
    // The control loop reads until EAGAIN: the socket must not block the io thread.
    ::fcntl(init_.control_fd, F_SETFL, ::fcntl(init_.control_fd, F_GETFL) | O_NONBLOCK);
    control_ = std::make_unique<asio::posix::stream_descriptor>(io_, init_.control_fd);
    spdlog::info("session {}: sandbox ready (init pid {}, landlock ABI {})", id(), init_.pid,
                 init_.ready.landlock_abi);
    for (auto& note : init_.ready.notes)
        spdlog::warn("session {}: {}", id(), note);
    asio::co_spawn(io_, control_loop(), asio::detached);

    // The network proxy accepts on the listeners the init created inside the sandbox.
    auto log = [this](const net::RequestRecord& r) {
        try {
            json entry = {{"kind", "network"}, {"request", net::to_json(r)}};
            audit().append(entry, !r.allowed);
        } catch (const std::exception& e) {
            spdlog::error("session {}: audit log write failed: {}", id(), e.what());
        }
    };
    proxy_ =
        std::make_unique<net::ProxyServer>(io_.get_executor(), gate_, network_.proxy_limits, log);
    auto& fds = init_.listener_fds;
    if (fds.size() >= 2) {
        proxy_->add_listener(fds[0], net::ProxyProtocol::http);
        proxy_->add_listener(fds[1], net::ProxyProtocol::socks5);
        proxy_->start();
    }
    if (fds.size() == 3 && network_.git) {
        auto git_log = [this](const json& entry) {
            try {
                json e = {{"kind", "git"}, {"operation", entry}};
                audit().append(e, true);
            } catch (const std::exception& e) {
                spdlog::error("session {}: audit log write failed: {}", id(), e.what());
            }
        };
        auto git_violation = [this](const json& detail) { report_violation("git", detail); };
        auto git_ask = [this](json question) -> asio::awaitable<bool> {
            std::string decision = co_await ask_decision(std::move(question));
            co_return decision == "allow-once" || decision == "allow-session";
        };
        git_proxy_ = std::make_unique<git::GitProxy>(io_.get_executor(), *network_.git,
                                                     git::GitProxyOptions{}, git_ask, git_log,
                                                     git_violation);
        git_proxy_->add_listener(fds[2]);
        git_proxy_->start();
    }
    fds.clear(); // owned by the proxies now
}

// Kills the init (and so every process of the sandbox) and drops what it handed over.
void Session::release_init() {
    if (proxy_) {
        proxy_->stop();
        proxy_.reset();
    }
    if (git_proxy_) {
        git_proxy_->stop();
        git_proxy_.reset();
    }
    if (init_.pid > 0) {
        ::kill(init_.pid, SIGKILL);
        ::waitpid(init_.pid, nullptr, 0);
        init_.pid = -1;
    }
    for (int fd : init_.listener_fds)
        ::close(fd);
    init_.listener_fds.clear();
    if (init_.root_fd >= 0) ::close(init_.root_fd);
    init_.root_fd = -1;
}

void Session::stop() {
    if (!running()) return;
    release_init();
    for (auto& [id, r] : running_)
        r->cancelled_by_close = true;
    fail_all("the session was closed");
    if (control_) {
        boost::system::error_code ec;
        control_->close(ec); // also closes control_fd
        control_.reset();
    }
}

changes::AuditLog& Session::audit() {
    if (!audit_) audit_ = std::make_unique<changes::AuditLog>(info_.state_dir / "audit.jsonl");
    return *audit_;
}

void Session::fail_all(const std::string& why) {
    for (auto& [id, r] : running_) {
        if (!r->exited && r->failure.empty()) r->failure = why;
        r->done.cancel();
    }
}

asio::awaitable<void> Session::control_loop() {
    auto self = shared_from_this();
    while (control_ && control_->is_open()) {
        boost::system::error_code ec;
        co_await control_->async_wait(asio::posix::stream_descriptor::wait_read,
                                      asio::redirect_error(asio::use_awaitable, ec));
        if (ec || !control_) break;
        if (!drain_control()) co_return;
    }
}

// Handles every message the init has queued; false once the init is gone.
bool Session::drain_control() {
    for (;;) {
        if (!control_) return false;
        std::vector<int> fds;
        int err = 0;
        auto msg = sandbox::recv_control(control_->native_handle(), fds, err);
        for (int fd : fds)
            ::close(fd); // the init passes none to us after setup
        if (!msg) {
            if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) return true;
            spdlog::error("session {}: sandbox init is gone ({})", id(),
                          err ? std::strerror(err) : "EOF");
            fail_all("the sandbox init exited unexpectedly");
            release_init();
            boost::system::error_code cec;
            if (control_) control_->close(cec);
            control_.reset();
            return false;
        }
        if (auto* ex = std::get_if<sandbox::ExecExited>(&*msg)) {
            auto it = running_.find(ex->id);
            if (it != running_.end() && !it->second->exited) {
                it->second->exited = *ex;
                it->second->done.cancel();
            }
        } else if (auto* v = std::get_if<sandbox::FsViolation>(&*msg)) {
            json detail = json::object();
            if (!v->path.empty()) {
                detail["operation"] = v->operation;
                detail["path"] = v->path;
            }
            if (v->more) detail["moreNotListed"] = v->more;
            report_violation("filesystem", detail, v->id);
        }
    }
}

asio::awaitable<ExecResult> Session::exec(const ExecParams& p, OutputSink output, json request_id) {
    auto self = shared_from_this();
    if (!running()) start();
    const auto started = std::chrono::steady_clock::now();

    // Everything the command needs, resolved before anything is started.
    std::string cwd = info_.workspace;
    if (!p.cwd.empty()) cwd = resolve_in_workspace(info_.workspace, p.cwd, "/cwd").absolute;
    sandbox::ExecRequest req;
    req.id = next_exec_id_++;
    req.argv = p.command ? std::vector<std::string>{"/bin/sh", "-c", *p.command} : *p.argv;
    req.env = p.env;
    req.cwd = cwd;
    req.limits = spec_.limits;
    if (p.timeout_ms) req.limits.timeout_ms = *p.timeout_ms;
    std::uint64_t cap = p.max_output_bytes.value_or(spec_.limits.max_output_bytes);

    Fd in_r, in_w, out_r, out_w, err_r, err_w, st_r, st_w;
    make_pipe(in_r, in_w);
    make_pipe(out_r, out_w);
    make_pipe(err_r, err_w);
    make_pipe(st_r, st_w); // the outcome, straight from the command's reaper
    // Between execs only the server changes the upper dir (every sandboxed process dies with
    // its command, and tool calls drop the snapshot), so the last exec's "after" is this
    // one's "before" unless another exec is running: one walk of the upper dir per exec.
    UpperSnapshot before =
        last_upper_ && running_.empty() ? std::move(*last_upper_) : snapshot_upper(upper_dir());
    last_upper_.reset();

    auto run = std::make_shared<Running>(io_);
    run->request_id = std::move(request_id);
    running_[req.id] = run;
    struct Erase {
        Session* s;
        std::uint64_t id;
        ~Erase() { s->running_.erase(id); }
    } erase{this, req.id};

    if (int e = sandbox::send_control(control_->native_handle(), req,
                                      {in_r.fd, out_w.fd, err_w.fd, st_w.fd})) {
        throw RpcError(code::internal_error,
                       std::string("cannot reach the sandbox init: ") + std::strerror(e));
    }
    in_r.reset();
    out_w.reset();
    err_w.reset();
    st_w.reset();

    // The command runs to completion in its own coroutine, untouched by cancellation of
    // this one: cancelling only sends the kill, and the result is still collected.
    struct State {
        explicit State(asio::io_context& io) : finished(io) {
            finished.expires_at(asio::steady_timer::time_point::max());
        }
        asio::steady_timer finished;
        bool complete = false;
        bool timed_out = false;
        Capture out, err;
    };
    auto st = std::make_shared<State>(io_);
    auto stdin_pipe = std::make_shared<asio::posix::stream_descriptor>(io_, in_w.release());
    auto out_pipe = std::make_shared<asio::posix::stream_descriptor>(io_, out_r.release());
    auto err_pipe = std::make_shared<asio::posix::stream_descriptor>(io_, err_r.release());
    auto status_pipe = std::make_shared<asio::posix::stream_descriptor>(io_, st_r.release());
    std::string stdin_data = p.stdin_data.value_or("");
    const std::uint64_t exec_id = req.id;
    const auto timeout = std::chrono::milliseconds(req.limits.timeout_ms);

    auto feed_stdin = [stdin_pipe, stdin_data]() -> asio::awaitable<void> {
        boost::system::error_code ec;
        if (!stdin_data.empty())
            co_await asio::async_write(*stdin_pipe, asio::buffer(stdin_data),
                                       asio::redirect_error(asio::use_awaitable, ec));
        stdin_pipe->close(ec);
    };
    auto drain = [cap, output](std::shared_ptr<asio::posix::stream_descriptor> pipe, Capture& c,
                               std::string_view name) -> asio::awaitable<void> {
        std::string buf(64 * 1024, '\0');
        std::string carry; // an incomplete UTF-8 sequence held for the next chunk
        for (;;) {
            boost::system::error_code ec;
            std::size_t n = co_await pipe->async_read_some(
                asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
            if (ec) break;
            c.total += n;
            std::size_t room = c.data.size() < cap ? cap - c.data.size() : 0;
            std::size_t keep = std::min<std::size_t>(room, n);
            if (keep < n) c.truncated = true;
            if (keep == 0) continue; // past the cap: drained and dropped
            c.data.append(buf.data(), keep);
            if (output) {
                carry.append(buf.data(), keep);
                std::size_t k = c.truncated ? carry.size() : utf8_complete_prefix(carry);
                if (k > 0) {
                    co_await output(name, std::string_view(carry).substr(0, k));
                    carry.erase(0, k);
                }
            }
        }
        if (output && !carry.empty()) co_await output(name, carry);
        boost::system::error_code ec;
        pipe->close(ec);
    };
    // The reaper's status record; without one (killed, could not start) the init sends
    // ExecExited instead, and an 'E' record read here still gives the reason.
    auto read_status = [run, status_pipe]() -> asio::awaitable<void> {
        char buf[512];
        for (;;) {
            boost::system::error_code ec;
            std::size_t n = co_await status_pipe->async_read_some(
                asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
            if (ec) break;
            if (auto done = run->status.feed({buf, n})) {
                if (!run->exited) {
                    run->exited = std::move(*done);
                    run->done.cancel();
                }
                break;
            }
        }
        boost::system::error_code ec;
        status_pipe->close(ec);
    };
    auto wait_exit = [this, run, st, exec_id, timeout]() -> asio::awaitable<void> {
        boost::system::error_code ec;
        run->done.expires_after(timeout);
        if (!run->exited && run->failure.empty())
            co_await run->done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (!run->exited && run->failure.empty()) {
            st->timed_out = true;
            if (control_)
                sandbox::send_control(control_->native_handle(), sandbox::KillRequest{exec_id});
            run->done.expires_at(asio::steady_timer::time_point::max());
            while (!run->exited && run->failure.empty())
                co_await run->done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
    };
    auto body = [=, &st = *st]() -> asio::awaitable<void> {
        co_await (feed_stdin() && drain(out_pipe, st.out, "stdout") &&
                  drain(err_pipe, st.err, "stderr") && read_status() && wait_exit());
    };
    asio::co_spawn(io_, body(), [st](std::exception_ptr) {
        st->complete = true;
        st->finished.cancel();
    });

    // Wait for completion; a cancellation of this request kills the command's tree.
    co_await asio::this_coro::throw_if_cancelled(false);
    bool cancelled = false;
    while (!st->complete) {
        boost::system::error_code ec;
        co_await st->finished.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        auto cs = co_await asio::this_coro::cancellation_state;
        if (!st->complete && cs.cancelled() != asio::cancellation_type::none && !cancelled) {
            cancelled = true;
            if (control_)
                sandbox::send_control(control_->native_handle(), sandbox::KillRequest{exec_id});
            co_await asio::this_coro::reset_cancellation_state();
        }
    }
    if (cancelled) throw RpcError(code::request_cancelled, "request cancelled");
    // The init queues a refused write's report before the write can even fail, so what is
    // in the socket now belongs in this result.
    if (control_) drain_control();

    ExecResult res;
    res.stdout_data = std::move(st->out.data);
    res.stderr_data = std::move(st->err.data);
    res.stdout_truncated = st->out.truncated;
    res.stderr_truncated = st->err.truncated;
    res.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - started)
                          .count();
    if (!run->exited) {
        if (run->cancelled_by_close) {
            res.reason = "cancelled";
        } else {
            throw RpcError(code::internal_error, "command lost: " + run->failure);
        }
    } else {
        auto ex = *run->exited;
        if (ex.error.empty()) ex.error = run->status.error();
        // A failed execve is the command's own failure (exit 126/127 and a message on its
        // stderr, as a shell reports it); any earlier step failing means no sandbox.
        if (!ex.error.empty() && ex.error.rfind("exec ", 0) != 0)
            throw RpcError(code::sandbox_unavailable, "command could not start: " + ex.error,
                           json{{"facility", ex.error.substr(0, ex.error.find(' '))}});
        int ws = ex.wait_status;
        if (WIFEXITED(ws)) {
            res.exit_code = WEXITSTATUS(ws);
            res.reason = "exited";
        } else if (WIFSIGNALED(ws)) {
            res.signal = signal_name(WTERMSIG(ws));
            res.reason = "signaled";
        }
        // Limit kills are violations like policy denials: reported to the client and the
        // audit log, and (through run->violations) in this result.
        if (st->timed_out) {
            res.reason = "timeout";
            json detail = {{"limit", "timeout"}, {"timeoutMs", req.limits.timeout_ms}};
            report_violation("limit", detail, exec_id);
        } else if (ex.reason == "memory-limit") {
            res.reason = ex.reason;
        }
        if (!ex.reason.empty() && ex.reason != "killed") {
            json detail = {{"limit", ex.reason}};
            report_violation("limit", detail, exec_id);
        }
    }

    for (auto& v : run->violations)
        res.violations.push_back(v);
    auto after = snapshot_upper(upper_dir());
    auto touched = touched_between(before, after);
    if (running_.size() == 1) last_upper_ = after; // only this exec ran meanwhile
    if (!touched.empty()) {
        // What this command changed, judged like changes/diff (applied files included).
        changes::DiffOptions opts;
        opts.with_patch = false;
        opts.with_git = false;
        for (auto& t : touched)
            if (!under_git_dir(t)) opts.paths.push_back(t);
        if (!opts.paths.empty())
            for (auto& c : changes::compute_changes(files(), opts).files)
                res.changes.push_back({c.path, c.status});
    }
    co_return res;
}

} // namespace cordon::server
