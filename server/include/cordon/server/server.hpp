// The cordon server: sessions shared by every connection, and the JSON-RPC methods.
// `serve_stdio` and `serve_unix` run it until the client exits (stdio) or forever (socket).
#pragma once

#include "cordon/protocol/messages.hpp"
#include "cordon/sandbox/sandbox.hpp"
#include "cordon/server/dispatcher.hpp"
#include "cordon/server/session.hpp"

#include <boost/asio/io_context.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace cordon::server {

struct ServerOptions {
    std::filesystem::path state_dir; // sessions live in state_dir/sessions/<id>
    std::string sandbox_exe;         // the cordon-sandbox binary
    std::size_t max_message_bytes = 64u << 20;
    std::size_t max_batch = 1000;
    std::size_t max_depth = 128;
    // The user config (network policy); default: $XDG_CONFIG_HOME/cordon/config.json.
    std::optional<std::filesystem::path> user_config;
    // PEM CA bundle trusted by `fetch` besides the system's (self-hosted servers, tests).
    std::string extra_ca_file;
    // How long a sandbox/approve question waits for the user before it denies.
    std::chrono::milliseconds ask_timeout{60000};
};

// Default locations: $XDG_STATE_HOME/cordon (else ~/.local/state/cordon); cordon-sandbox
// next to the running executable.
std::filesystem::path default_state_dir();
std::string default_sandbox_exe();

extern const char* const kVersion;

class Server {
  public:
    Server(asio::io_context& io, ServerOptions opts);
    ~Server();

    // Serves one client on the given descriptors until `exit` or EOF; returns the exit code.
    asio::awaitable<int> serve_connection(int in_fd, int out_fd);
    // Kills every session's sandbox (state stays on disk).
    void stop_all();

    const ServerOptions& options() const { return opts_; }

  private:
    void register_methods(Dispatcher& d);
    void load_sessions();
    const protocol::Isolation& isolation();
    std::shared_ptr<Session> find_session(const std::string& id);
    // Finds the call's session and attaches the calling connection to it.
    std::shared_ptr<Session> session_for(Call& c);
    // A Session object for `info` (sandbox not started). `strict`: a broken network config
    // throws -32602; otherwise (restored sessions) it denies all network with a log line.
    std::shared_ptr<Session> make_session(const SessionInfo& info, bool strict);
    std::optional<git::GitConfig> load_git_config(const SessionInfo& info, bool strict);
    asio::awaitable<json> fetch(Call& c);

    asio::awaitable<json> session_create(Call& c);
    // A session state dir made ahead (sessions/.spare-*, with upper/ work/ home/ and empty
    // lock, session.json and audit.jsonl files) that session/create renames into place: making directories is a slow part
    // of a start on some filesystems. Replaced after each use, off the request's path.
    void make_spare_state_dir();
    std::optional<std::filesystem::path> spare_state_dir_;
    asio::awaitable<json> session_list(Call& c);
    asio::awaitable<json> session_close(Call& c);
    asio::awaitable<json> exec(Call& c);

    // The file and change tools (tools.cpp): run `fn` on the call's session and record the
    // call in the session's audit log. `needs_sandbox` starts the session's sandbox first.
    asio::awaitable<json> session_tool(Call& c, bool needs_sandbox,
                                       const std::function<json(Session&)>& fn);
    void register_tools(Dispatcher& d);

    asio::io_context& io_;
    ServerOptions opts_;
    std::optional<protocol::Isolation> isolation_;
    std::vector<sandbox::Facility> facilities_;
    std::map<std::string, std::shared_ptr<Session>> sessions_;
};

int serve_stdio(const ServerOptions& opts);
int serve_unix(const ServerOptions& opts, const std::string& socket_path);

} // namespace cordon::server
