// Reading an overlayfs upper dir: what changed in a session relative to the real workspace.
// Cost is O(entries in the upper dir), never O(workspace). Walks iteratively with a depth cap.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace cordon::server {

struct UpperEntry {
    enum class Kind { file, symlink, dir, whiteout, other } kind = Kind::other;
    bool opaque = false; // a directory that hides everything below it in the lower dir
    std::int64_t mtime_ns = 0;
    std::uint64_t size = 0;
    std::uint64_t ino = 0;
    std::uint32_t mode = 0;
};

// Workspace-relative path ("a/b.txt") -> entry, for every entry of the upper dir.
using UpperSnapshot = std::map<std::string, UpperEntry>;

UpperSnapshot snapshot_upper(const std::filesystem::path& upper, std::size_t max_depth = 256);

struct PathChange {
    std::string path;
    std::string status; // added | modified | deleted
};

// Working-tree changes the upper dir records against `lower` (the real workspace), files
// and symlinks only, nothing under any `.git/` directory. Sorted by path.
std::vector<PathChange> changes_from_upper(const UpperSnapshot& upper,
                                           const std::filesystem::path& upper_path,
                                           const std::filesystem::path& lower);

// The paths whose upper entries differ between two snapshots.
std::vector<std::string> touched_between(const UpperSnapshot& before, const UpperSnapshot& after);

bool under_git_dir(const std::string& rel);

} // namespace cordon::server
