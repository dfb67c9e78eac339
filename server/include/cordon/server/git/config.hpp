// Git proxy configuration: the "git" object of the user config file (docs/git.md).
//
//   "git": {"caFile"?: "/path/ca.pem",
//           "remotes": [{"url": "https://host[:port]/owner/repo(.git)?",
//                        "credential": {"env": "VAR"} | {"file": "/path"} | {"helper": true},
//                                      (+ optional "username", default "x-access-token")
//                        "push"?: {"refs": ["refs/heads/cordon/*"], "allowDelete": false,
//                                  "allowTags": false, "allowForce": false}}]}
//
// parse_git_config validates everything and throws RpcError -32602 whose message names the
// JSON path of the bad field (e.g. "git.remotes[1].credential"). Credentials are not read
// here: resolve_credential reads them when a request needs one; their values are never
// logged and never written to a file.
//
// Thread-safety: plain values; resolve_credential blocks (file read or a helper process).
#pragma once

#include "cordon/protocol/jsonrpc.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cordon::server::git {

using json = nlohmann::json;

struct PushPolicy {
    std::vector<std::string> refs{"refs/heads/cordon/*"}; // `*` matches any characters
    bool allow_delete = false;
    bool allow_tags = false;
    bool allow_force = false; // non-fast-forward updates
};

struct CredentialSource {
    enum class Kind { env, file, helper } kind = Kind::env;
    std::string name;                        // variable name or file path
    std::string username = "x-access-token"; // for Basic (env / file)
};

struct Remote {
    std::string url;  // as configured
    std::string host; // lower case, no port
    std::uint16_t port = 443;
    std::string origin; // "host" or "host:port" (port only when not 443): proxy path segment
    std::string path;   // "owner/repo.git" as configured, without leading '/'
    std::string key;    // canonical match key: lower case, no ".git" suffix
    CredentialSource credential;
    PushPolicy push;
};

struct GitConfig {
    std::string ca_file;
    std::vector<Remote> remotes;
};

// `j` is the value of "git" (object); `path` is its JSON path, for error messages.
GitConfig parse_git_config(const json& j, const std::string& path = "git");

// Canonical key of a repository path: segments joined by '/', lower case, without a final
// ".git". Returns nullopt for anything that is not a plain path: empty segments ("//"),
// "." or "..", '%' (no percent-encoding accepted), '\\', control characters, '@', ':',
// or characters outside [A-Za-z0-9._~-].
std::optional<std::string> canonical_repo_key(std::string_view path);

struct Credential {
    std::string username, password;
    std::string authorization() const; // "Basic base64(username:password)"
};

// Reads the credential of `remote` (env of this process, a file, or `git credential fill`
// run outside the sandbox with GIT_TERMINAL_PROMPT=0, no askpass, a 20 s limit). Throws
// std::runtime_error naming the source (never the value) when it is missing or empty.
Credential resolve_credential(const Remote& remote);

} // namespace cordon::server::git
