// Typed params and results of cordon's methods (PROTOCOL.md), with field names as on the
// wire. `parse_*` functions validate and throw RpcError -32602 naming the bad field;
// `to_json` functions build results.
#pragma once

#include "cordon/protocol/jsonrpc.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cordon::protocol {

// --- lifecycle ---------------------------------------------------------------------------

struct InitializeParams {
    std::string client_name;
    std::string client_version;
    bool approvals = false;
};
InitializeParams parse_initialize(const json& params);

struct Isolation {
    bool userns = false, overlay = false, seccomp = false, landlock = false, cgroups = false;
};
void to_json(json& j, const Isolation& v);

// --- policy ------------------------------------------------------------------------------

struct LimitsDoc {
    std::optional<std::uint64_t> timeout_ms, memory_bytes, max_output_bytes;
    std::optional<std::uint32_t> max_processes;
};
struct PolicyDoc {
    nlohmann::json network; // the `network` object as given (null: none); see parse_policy
    std::optional<std::vector<std::string>> deny_read, allow_read, allow_write;
    LimitsDoc limits;
    std::map<std::string, std::string> env;
};
// `path` is where the policy sits in params ("/policy").
PolicyDoc parse_policy(const json& j, const std::string& path);
void to_json(json& j, const PolicyDoc& v);

// An environment variable name a sandbox accepts: [A-Za-z_][A-Za-z0-9_]*.
bool valid_env_name(const std::string& name);

// --- sessions ----------------------------------------------------------------------------

struct SessionCreateParams {
    std::string workspace;
    std::optional<PolicyDoc> policy;
};
SessionCreateParams parse_session_create(const json& params);

struct SessionCloseParams {
    std::string session_id;
    bool discard = false;
};
SessionCloseParams parse_session_close(const json& params);

// Every tool call names its session.
std::string parse_session_id(const json& params);

// --- exec --------------------------------------------------------------------------------

struct ExecParams {
    std::string session_id;
    std::optional<std::string> command;
    std::optional<std::vector<std::string>> argv;
    std::string cwd; // workspace-relative, "" = root
    std::map<std::string, std::string> env;
    std::optional<std::string> stdin_data;
    std::optional<std::uint64_t> timeout_ms;
    std::optional<std::uint64_t> max_output_bytes;
    bool stream = false;
};
ExecParams parse_exec(const json& params);

struct FileChange {
    std::string path;
    std::string status; // added | modified | deleted
};
void to_json(json& j, const FileChange& v);

struct ExecResult {
    std::optional<int> exit_code;
    std::optional<std::string> signal;
    std::string reason; // exited | signaled | timeout | cancelled | output-limit | memory-limit
    std::string stdout_data, stderr_data;
    bool stdout_truncated = false, stderr_truncated = false;
    std::uint64_t duration_ms = 0;
    std::vector<FileChange> changes;
    json violations = json::array();
};
void to_json(json& j, const ExecResult& v);

} // namespace cordon::protocol
