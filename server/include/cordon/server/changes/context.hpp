// Where a session's files are: the real workspace, the sandbox's view of it, the overlay's
// upper dir and the session's state dir. Plain data; the caller owns the fd.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace cordon::server::changes {

struct SessionFiles {
    // Canonical absolute path of the real workspace; the sandbox mounts its overlay at the
    // same path inside its root.
    std::string workspace;
    // O_PATH fd of the sandbox's root directory (from the sandbox init), or -1 when the
    // sandbox is not running. fs/* tools need it; diff/apply read the sandbox's content
    // through it when set and from the upper dir otherwise (identical with userxattr mounts,
    // which imply metacopy=off and redirect_dir=nofollow).
    int sandbox_root_fd = -1;
    // The overlay's upper dir (<state dir>/upper): the list of what changed.
    std::filesystem::path upper;
    // The session's state dir: applied.json, apply.journal live here.
    std::filesystem::path state_dir;
};

struct Limits {
    std::uint64_t max_file_bytes = 64ull << 20; // larger files (apparent size) are skipped
    std::size_t max_depth = 256;                // deeper upper entries are skipped
    std::size_t max_entries = 1'000'000;        // upper/lower entries visited per walk
};

} // namespace cordon::server::changes
