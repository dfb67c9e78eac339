// Headless front ends: each starts a private `cordon serve --stdio` on the same state dir,
// so sessions and their pending changes are shared with editors and later invocations.
#pragma once

#include <string>
#include <vector>

namespace cordon::cli {

struct HeadlessOptions {
    std::vector<std::string> server_args; // passed to `cordon serve --stdio`
    std::string workspace;                // default: the current directory
    std::string session;                  // explicit session id, else the workspace's one
};

int call(const HeadlessOptions& o, const std::string& method, const std::string& params_json);
int run(const HeadlessOptions& o, const std::vector<std::string>& command, bool new_session);
int sessions(const HeadlessOptions& o);
int diff(const HeadlessOptions& o, const std::vector<std::string>& paths, bool stat_only);
int apply(const HeadlessOptions& o, const std::vector<std::string>& paths,
          const std::vector<std::string>& confirm_protected);
int discard(const HeadlessOptions& o, const std::vector<std::string>& paths);
int audit_verify(const std::string& state_dir, const std::string& session);

} // namespace cordon::cli
