// The environment of a sandboxed command. Built from scratch, never inherited: a fixed
// allowlist with values chosen by the init (HOME is the private home), then the session's
// policy env (SandboxSpec::env), then the request's env (ExecRequest::env), later entries
// overriding earlier ones. Names must be non-empty and contain no '='; values no NUL.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace cordon::sandbox {

struct EnvironmentBase {
    std::string home; // $HOME inside the sandbox
    std::string user; // USER / LOGNAME
    std::string path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    std::string shell = "/bin/sh";
};

// Names the init sets itself (the allowlist); SandboxSpec::env and ExecRequest::env may
// override them.
const std::vector<std::string>& environment_allowlist();

// Returns "NAME=value" strings, sorted by name. Invalid names are dropped.
std::vector<std::string> build_environment(const EnvironmentBase& base,
                                           const std::map<std::string, std::string>& session,
                                           const std::map<std::string, std::string>& request);

} // namespace cordon::sandbox
