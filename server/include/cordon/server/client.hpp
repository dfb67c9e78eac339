// A small blocking JSON-RPC client that starts `cordon serve --stdio` as a child process.
// Used by the headless CLI commands (`cordon call`, `cordon run`, ...) and by tests.
// Not thread-safe.
#pragma once

#include "cordon/protocol/framing.hpp"
#include "cordon/protocol/jsonrpc.hpp"

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace cordon::server {

using protocol::json;

class ServerProcess {
  public:
    // argv[0] is the cordon executable; "serve --stdio" and `extra_args` are appended.
    ServerProcess(const std::string& cordon_exe, const std::vector<std::string>& extra_args = {},
                  bool quiet_stderr = false);
    ~ServerProcess();
    ServerProcess(const ServerProcess&) = delete;
    ServerProcess& operator=(const ServerProcess&) = delete;

    // Sends raw bytes (tests use this for malformed frames).
    void write_raw(const std::string& bytes);
    void send(const json& msg);
    // The next message from the server, or nullopt on EOF / timeout.
    std::optional<json> read(std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // Sends a request and returns its response, handing any notifications and server ->
    // client requests that arrive first to `on_other`.
    json call(const std::string& method, json params,
              const std::function<void(const json&)>& on_other = {},
              std::chrono::milliseconds timeout = std::chrono::seconds(60));
    // call() that throws protocol::RpcError on an error response.
    json result(const std::string& method, json params,
                const std::function<void(const json&)>& on_other = {});
    json initialize(json capabilities = json::object());

    void close_stdin();
    // Waits for the process; returns its exit code (or 128+signal).
    int wait(std::chrono::milliseconds timeout = std::chrono::seconds(30));
    int pid() const { return pid_; }
    // The server's resident memory (VmRSS) in KiB, -1 when unreadable.
    long rss_kib() const;
    void kill(int sig);

  private:
    int pid_ = -1;
    int to_ = -1, from_ = -1;
    protocol::FrameDecoder decoder_;
    std::int64_t next_id_ = 1;
    std::optional<int> status_;
};

} // namespace cordon::server
