#include "cordon/protocol/messages.hpp"

#include "cordon/protocol/params.hpp"

namespace cordon::protocol {

InitializeParams parse_initialize(const json& params) {
    ParamReader r(params);
    InitializeParams p;
    auto info = r.object("clientInfo");
    p.client_name = info.value_or<std::string>("name", "");
    p.client_version = info.value_or<std::string>("version", "");
    p.approvals = r.object("capabilities").value_or("approvals", false);
    return p;
}

void to_json(json& j, const Isolation& v) {
    j = {{"userns", v.userns},
         {"overlay", v.overlay},
         {"seccomp", v.seccomp},
         {"landlock", v.landlock},
         {"cgroups", v.cgroups}};
}

bool valid_env_name(const std::string& name) {
    if (name.empty() || name.size() > 256) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        char c = name[i];
        bool ok = c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

namespace {

std::map<std::string, std::string> read_env(const ParamReader& r, const std::string& key) {
    auto env = r.value_or<std::map<std::string, std::string>>(key, {});
    for (auto& [k, v] : env) {
        if (!valid_env_name(k))
            throw invalid_params(r.child(key) + "/" + k, "not a valid environment variable name");
        if (v.find('\0') != std::string::npos)
            throw invalid_params(r.child(key) + "/" + k, "value contains a NUL byte");
    }
    return env;
}

void check_strings(const std::vector<std::string>& v, const std::string& path) {
    for (std::size_t i = 0; i < v.size(); ++i)
        if (v[i].find('\0') != std::string::npos)
            throw invalid_params(path + "/" + std::to_string(i), "contains a NUL byte");
}

} // namespace

PolicyDoc parse_policy(const json& j, const std::string& path) {
    ParamReader r(j, path);
    PolicyDoc p;
    // Kept as given: its rules (strings or {host, methods, paths} objects), approvals and
    // budget are validated where they are merged with the user's and the workspace's
    // config, with errors naming the JSON pointer (server/src/net/policy.cpp).
    if (r.has("network") && !j["network"].is_null()) {
        if (!j["network"].is_object()) throw invalid_params(path + "/network", "must be an object");
        p.network = j["network"];
    }
    auto fs = r.object("filesystem");
    p.deny_read = fs.optional<std::vector<std::string>>("denyRead");
    p.allow_read = fs.optional<std::vector<std::string>>("allowRead");
    p.allow_write = fs.optional<std::vector<std::string>>("allowWrite");
    for (auto* list : {&p.deny_read, &p.allow_read, &p.allow_write})
        if (*list) check_strings(**list, fs.path());
    auto lim = r.object("limits");
    p.limits.timeout_ms = lim.optional<std::uint64_t>("timeoutMs");
    p.limits.memory_bytes = lim.optional<std::uint64_t>("memoryBytes");
    p.limits.max_processes = lim.optional<std::uint32_t>("maxProcesses");
    p.limits.max_output_bytes = lim.optional<std::uint64_t>("maxOutputBytes");
    p.env = read_env(r, "env");
    return p;
}

void to_json(json& j, const PolicyDoc& v) {
    j = json::object();
    if (v.network.is_object()) j["network"] = v.network;
    if (v.deny_read) j["filesystem"]["denyRead"] = *v.deny_read;
    if (v.allow_read) j["filesystem"]["allowRead"] = *v.allow_read;
    if (v.allow_write) j["filesystem"]["allowWrite"] = *v.allow_write;
    if (v.limits.timeout_ms) j["limits"]["timeoutMs"] = *v.limits.timeout_ms;
    if (v.limits.memory_bytes) j["limits"]["memoryBytes"] = *v.limits.memory_bytes;
    if (v.limits.max_processes) j["limits"]["maxProcesses"] = *v.limits.max_processes;
    if (v.limits.max_output_bytes) j["limits"]["maxOutputBytes"] = *v.limits.max_output_bytes;
    if (!v.env.empty()) j["env"] = v.env;
}

SessionCreateParams parse_session_create(const json& params) {
    ParamReader r(params);
    SessionCreateParams p;
    p.workspace = r.required<std::string>("workspace");
    if (p.workspace.empty() || p.workspace[0] != '/')
        throw invalid_params("/workspace", "must be an absolute path");
    if (p.workspace.find('\0') != std::string::npos)
        throw invalid_params("/workspace", "contains a NUL byte");
    if (r.has("policy") && !params["policy"].is_null())
        p.policy = parse_policy(params["policy"], "/policy");
    return p;
}

SessionCloseParams parse_session_close(const json& params) {
    ParamReader r(params);
    SessionCloseParams p;
    p.session_id = r.required<std::string>("sessionId");
    p.discard = r.value_or("discard", false);
    return p;
}

std::string parse_session_id(const json& params) {
    return ParamReader(params).required<std::string>("sessionId");
}

ExecParams parse_exec(const json& params) {
    ParamReader r(params);
    ExecParams p;
    p.session_id = r.required<std::string>("sessionId");
    p.command = r.optional<std::string>("command");
    p.argv = r.optional<std::vector<std::string>>("argv");
    if (p.command.has_value() == p.argv.has_value())
        throw invalid_params(p.command ? "/argv" : "/command",
                             "exactly one of \"command\" and \"argv\" is required");
    if (p.argv) {
        if (p.argv->empty()) throw invalid_params("/argv", "must not be empty");
        check_strings(*p.argv, "/argv");
    }
    if (p.command && p.command->find('\0') != std::string::npos)
        throw invalid_params("/command", "contains a NUL byte");
    p.cwd = r.value_or<std::string>("cwd", "");
    p.env = read_env(r, "env");
    p.stdin_data = r.optional<std::string>("stdin");
    p.timeout_ms = r.optional<std::uint64_t>("timeoutMs");
    p.max_output_bytes = r.optional<std::uint64_t>("maxOutputBytes");
    p.stream = r.value_or("stream", false);
    return p;
}

void to_json(json& j, const FileChange& v) {
    j = {{"path", v.path}, {"status", v.status}};
}

void to_json(json& j, const ExecResult& v) {
    j = {{"exitCode", v.exit_code ? json(*v.exit_code) : json(nullptr)},
         {"signal", v.signal ? json(*v.signal) : json(nullptr)},
         {"reason", v.reason},
         {"stdout", v.stdout_data},
         {"stderr", v.stderr_data},
         {"stdoutTruncated", v.stdout_truncated},
         {"stderrTruncated", v.stderr_truncated},
         {"durationMs", v.duration_ms},
         {"changes", v.changes},
         {"violations", v.violations}};
}

} // namespace cordon::protocol
