// Git proxy test fixtures: a smart-HTTP remote (git_remote.py: git http-backend behind
// HTTPS with the test CA, token required) on 127.0.0.1, bare repositories in a temp dir,
// a GitProxy on its own io thread, and git clients run with exactly the environment the
// sandbox would get (env -i + git_env).
#pragma once

#include "../net/test_servers.hpp"
#include "cordon/server/git/proxy.hpp"

#include <sys/types.h>

#include <mutex>
#include <string>
#include <vector>

namespace cordon::test {

using namespace cordon::server::git;

std::string shell_quote(const std::string& s);
std::string make_temp_dir(const std::string& prefix);
std::string read_text(const std::string& path);

// git_remote.py as a child process.
struct GitRemote {
    GitRemote(const std::string& root, const std::string& token, const std::string& log,
              const std::string& redirect = "");
    ~GitRemote();
    GitRemote(const GitRemote&) = delete;
    std::uint16_t port = 0;
    std::string log;
    // Requests received so far (one JSON object per line of the log).
    std::vector<json> requests() const;

  private:
    pid_t pid_ = -1;
};

struct GitWorld {
    // Creates repositories owner/repo.git (main: 2 commits, cordon/existing) and
    // owner/other.git under a temp root, starts the remote and the proxy.
    explicit GitWorld(GitProxyOptions opts = {}, GitAskFn ask = {});
    ~GitWorld();

    std::string dir, root, home, token = "tok-s3cr3t-4c9e2a";
    std::unique_ptr<GitRemote> remote, other_origin;
    IoThread t;
    std::unique_ptr<GitProxy> proxy;
    std::uint16_t proxy_port = 0;
    GitConfig config;
    std::map<std::string, std::string> env; // the sandbox's git env

    std::mutex m;
    std::vector<json> logs, violations;
    std::vector<json> logs_copy() {
        std::lock_guard lk(m);
        return logs;
    }
    std::vector<json> violations_copy() {
        std::lock_guard lk(m);
        return violations;
    }

    std::string url(const std::string& repo) const; // https://localhost:<port>/<repo>
    // Runs `git <args>` in `cwd` as the sandbox would (stdout+stderr captured).
    CommandResult git(const std::string& cwd, const std::string& args);
    // The remote's refs: "refname id" lines.
    std::string remote_refs(const std::string& repo = "owner/repo.git");
    std::string client_env_string() const;
};

} // namespace cordon::test
