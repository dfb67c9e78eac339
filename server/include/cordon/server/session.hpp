// A session: one workspace, one warm sandbox (a cordon-sandbox init), its state dir.
//
// The session owns the init's control socket and multiplexes commands over it: each exec
// sends an ExecRequest with its own pipes, streams the pipes' output, and waits for the
// matching ExecExited. Timeouts and cancellation send a KillRequest, which kills the
// command's whole process tree. Closing the session kills the init, and with it every
// process of the sandbox.
//
// Thread-safety: single-threaded (the io_context's thread).
#pragma once

#include "cordon/protocol/messages.hpp"
#include "cordon/sandbox/sandbox.hpp"
#include "cordon/server/changes/audit_log.hpp"
#include "cordon/server/changes/context.hpp"
#include "cordon/server/git/config.hpp"
#include "cordon/server/git/proxy.hpp"
#include "cordon/server/net/egress.hpp"
#include "cordon/server/net/policy.hpp"
#include "cordon/server/net/proxy.hpp"
#include "cordon/server/upper_dir.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace cordon::server {

namespace asio = boost::asio;
using protocol::json;

// How exec output reaches the client while a command runs.
using OutputSink =
    std::function<asio::awaitable<void>(std::string_view stream, std::string_view data)>;

class Dispatcher;

// A session's network settings, fixed when it is created (or restored).
struct SessionNetwork {
    net::NetworkPolicy policy;
    std::chrono::milliseconds ask_timeout{60000};
    net::ProxyLimits proxy_limits;
    // Remotes the git proxy serves (user config "git"); none: no git proxy.
    std::optional<git::GitConfig> git;
};

struct SessionInfo {
    std::string id;
    std::string workspace; // canonical absolute path
    std::filesystem::path state_dir;
    protocol::PolicyDoc policy;
};

class Session : public std::enable_shared_from_this<Session> {
  public:
    Session(asio::io_context& io, SessionInfo info, sandbox::SandboxSpec spec, std::string init_exe,
            SessionNetwork network);
    ~Session();

    const SessionInfo& info() const { return info_; }
    const std::string& id() const { return info_.id; }
    const sandbox::InitReady& ready() const { return init_.ready; }
    bool running() const { return init_.pid > 0; }

    // Starts the warm sandbox (idempotent). Throws RpcError -32004 naming the failed step.
    void start();
    // Kills the sandbox and every process in it; running commands end with "cancelled".
    void stop();

    // Runs one command; `output` receives stream chunks when set. Cancellation of the
    // awaiting coroutine kills the command's tree and throws RpcError -32800.
    // `request_id` is the JSON-RPC id of the exec call (ties violations to it).
    asio::awaitable<protocol::ExecResult> exec(const protocol::ExecParams& p, OutputSink output,
                                               json request_id = nullptr);

    // The overlay's upper dir: what changed relative to the real workspace.
    std::filesystem::path upper_dir() const { return info_.state_dir / "upper"; }
    // Where the changes engine finds this session's files (root fd -1 when stopped).
    changes::SessionFiles files() const {
        return {info_.workspace, init_.root_fd, upper_dir(), info_.state_dir};
    }
    // The session's append-only audit log (state_dir/audit.jsonl), opened on first use.
    changes::AuditLog& audit();

    // The client connection that drives the session now: approvals are asked there and
    // violations are sent there. Every tool call attaches its connection.
    void attach(Dispatcher& client);
    // The egress gate shared by the sandbox's proxy and the fetch tool.
    net::EgressGate& gate() { return *gate_; }
    // A policy denial or limit kill: sent as sandbox/violation, written to the audit log,
    // and added to the results of the commands running now.
    // To the client (sandbox/violation), the audit log and the running execs' results;
    // with exec_id, to that exec only.
    void report_violation(const std::string& kind, const json& detail,
                          std::optional<std::uint64_t> exec_id = std::nullopt);
    // The exec request id a violation can be tied to (only when exactly one command runs).
    std::optional<json> single_running_request() const;

    // The upper dir as the last exec left it is reused as the next exec's "before"; a
    // server-side change (any tool call) must drop it.
    void forget_upper_snapshot() { last_upper_.reset(); }

  private:
    struct Running;
    asio::awaitable<void> control_loop();
    bool drain_control();
    void fail_all(const std::string& why);
    asio::awaitable<net::Decision> ask_client(net::ApprovalQuestion q);
    // Puts a question to the attached client (sandbox/approve); deny without one.
    asio::awaitable<std::string> ask_decision(json params);
    void release_init();

    asio::io_context& io_;
    SessionInfo info_;
    sandbox::SandboxSpec spec_;
    std::string init_exe_;
    sandbox::InitProcess init_;
    std::unique_ptr<asio::posix::stream_descriptor> control_;
    std::map<std::uint64_t, std::shared_ptr<Running>> running_;
    std::optional<UpperSnapshot> last_upper_; // after the last exec, none running since
    std::uint64_t next_exec_id_ = 1;
    int lock_fd_ = -1; // flock on state_dir/lock while this server runs the session
    std::unique_ptr<changes::AuditLog> audit_;
    SessionNetwork network_;
    std::shared_ptr<net::EgressGate> gate_;
    std::unique_ptr<net::ProxyServer> proxy_;
    std::unique_ptr<git::GitProxy> git_proxy_;
    Dispatcher* client_ = nullptr;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true); // expires with the session
    std::weak_ptr<bool> client_alive_;
};

} // namespace cordon::server
