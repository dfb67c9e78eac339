// GitProxy: one session's git smart-HTTP proxy. The sandbox's git reaches it over plain HTTP
// on a loopback listener inside the sandbox's network namespace (git_env rewrites
// https://<host>/ to http://127.0.0.1:<port>/<host>/ through GIT_CONFIG_* variables); the
// proxy forwards to the configured remote over HTTPS, adding the credential there.
//
// Routing (GIT-02). Only these requests are forwarded:
//   GET  /<origin>/<repo path>/info/refs?service=git-upload-pack|git-receive-pack
//   POST /<origin>/<repo path>/git-upload-pack
//   POST /<origin>/<repo path>/git-receive-pack
// where <origin> is "host" or "host:port" and <repo path> canonicalises (case, ".git"
// suffix; no '%', "//", ".", "..", '@', ':') to exactly a configured remote. The request
// that goes upstream is rebuilt from the configured URL (never from the client's bytes),
// with Authorization from the remote's credential; client Authorization/Cookie headers are
// dropped. Everything else is answered 403 and never reaches a remote.
//
// Responses stream back (no whole clone in memory). Redirects are not followed: a Location
// into a configured origin is rewritten to go through this proxy again (and is routed like
// any request); one to another origin is passed on untouched, so the client goes there
// without any credential (inside the sandbox: through the network proxy and its policy).
//
// Pushes (GIT-01): the receive-pack body (dechunked, gunzipped for parsing; forwarded as
// received) is parsed before anything is forwarded and checked against the remote's
// PushPolicy (receive_pack.hpp). A refusal is put to `ask` when set (kind "git"); if not
// approved, the client gets git's report-status with the reasons and nothing is forwarded.
// Every operation is reported to `log`; refusals also to `violation`.
//
// Upstream TLS: system trust store + GitConfig::ca_file, SNI, host name / IP verification.
// Upstream addresses come from `GitProxyOptions::resolve` (default: the system resolver);
// remotes are the user's configuration, not the agent's, so they bypass the EgressGate.
//
// Wiring (integrator):
//   spec.listen_ports = {kHttpProxyPort, kSocksProxyPort, kGitProxyPort};
//   git_proxy.add_listener(init.listener_fds[2]); git_proxy.start();
//   exec env += git_env(config, kGitProxyPort);
//
// Thread-safety: single-threaded; every member on the executor given to the constructor.
#pragma once

#include "cordon/server/git/config.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace cordon::server::git {

namespace asio = boost::asio;

inline constexpr std::uint16_t kGitProxyPort = 8418;

// The sandbox's git environment: GIT_CONFIG_COUNT / GIT_CONFIG_KEY_n / GIT_CONFIG_VALUE_n
// with url.http://127.0.0.1:<port>/<origin>/.insteadOf=https://<origin>/ per configured
// origin, and GIT_TERMINAL_PROMPT=0. Never a credential.
std::map<std::string, std::string> git_env(const GitConfig& config,
                                           std::uint16_t port = kGitProxyPort);

enum class GitService { upload_pack, receive_pack };
const char* to_string(GitService s); // "git-upload-pack" | "git-receive-pack"

struct GitRoute {
    std::size_t remote = 0; // index into GitConfig::remotes
    GitService service = GitService::upload_pack;
    bool advertisement = false;  // GET info/refs (else POST to the service)
    std::string upstream_target; // "/owner/repo.git/info/refs?service=..." (configured path)
};
// Decides a request. nullopt (with *why) for everything that must be refused. Pure.
std::optional<GitRoute> route_request(const GitConfig& config, std::string_view method,
                                      std::string_view target, std::string* why = nullptr);

using GitAskFn = std::function<asio::awaitable<bool>(json question)>;
using GitReportFn = std::function<void(const json&)>;
using GitResolveFn = std::function<asio::awaitable<std::vector<asio::ip::tcp::endpoint>>(
    std::string host, std::uint16_t port)>;

struct GitProxyOptions {
    std::size_t max_push_bytes = std::size_t(2) << 30;     // receive-pack body (held in memory)
    std::size_t max_request_bytes = std::size_t(64) << 20; // upload-pack body
    std::size_t max_header_bytes = 64 * 1024;
    std::size_t max_ancestry_bytes = std::size_t(256) << 20; // fast-forward proof fetch
    std::size_t max_connections = 64;
    std::size_t relay_buffer_bytes = 256 * 1024;
    std::chrono::milliseconds connect_timeout{15000};
    std::chrono::milliseconds idle_timeout{300000}; // no byte either way
    GitResolveFn resolve;                           // empty: system resolver
};

class GitProxy {
  public:
    // ask: may be empty (refusals are final). log / violation: may be empty.
    // The question passed to ask is {kind:"git", host, port, repo, service, reason,
    // refs:[{ref, old, new, allowed, reason}], commits:[{id, summary, author}]}; ask applies
    // its own timeout (no answer: false).
    GitProxy(asio::any_io_executor ex, GitConfig config, GitProxyOptions options = {},
             GitAskFn ask = {}, GitReportFn log = {}, GitReportFn violation = {});
    ~GitProxy(); // stop()
    GitProxy(const GitProxy&) = delete;
    GitProxy& operator=(const GitProxy&) = delete;

    // Takes ownership of a bound, listening TCP socket fd. Returns its local port.
    std::uint16_t add_listener(int fd);
    void start();
    // Closes listeners and connections, forgets the credentials, and drops the callbacks:
    // none is called after stop() returns. Idempotent. The destructor calls it.
    void stop();

    struct State;

  private:
    std::shared_ptr<State> state_;
};

} // namespace cordon::server::git
