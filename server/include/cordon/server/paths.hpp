// Workspace-relative paths from requests, checked component by component before any
// filesystem call: no "..", no NUL or control characters, absolute paths only inside the
// workspace (compared by components, never by string prefix).
#pragma once

#include <string>

namespace cordon::server {

struct WorkspacePath {
    std::string relative; // "a/b" ("" for the workspace root), '/'-separated, normalised
    std::string absolute; // workspace + "/" + relative
};

// Throws RpcError -32602 whose data.path is `field` and whose message names `path`.
WorkspacePath resolve_in_workspace(const std::string& workspace, const std::string& path,
                                   const std::string& field);

} // namespace cordon::server
