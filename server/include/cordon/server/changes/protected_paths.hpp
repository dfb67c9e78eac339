// Paths whose content runs code on the host later (editor tasks, shell rc files, agent and
// cordon configs, CI workflows, git hooks). `changes/apply` writes them only when the
// request lists them in `confirmProtected`. Anything under a `.git` directory is outside
// this list: it is never in `files` and never applied.
#pragma once

#include <string_view>

namespace cordon::server::changes {

// Matching is per component, ASCII case-insensitive, at any depth (a nested project's
// `.vscode/tasks.json` runs as well as the top one's).
bool is_protected_path(std::string_view rel);

} // namespace cordon::server::changes
