// Snapshots of an overlayfs upper dir, to tell which paths one command touched. Cost is
// O(entries in the upper dir), never O(workspace). Walks iteratively with a depth cap.
// What those paths mean for the real workspace is the changes engine's (changes/diff.hpp).
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

// The paths whose upper entries differ between two snapshots.
std::vector<std::string> touched_between(const UpperSnapshot& before, const UpperSnapshot& after);

bool under_git_dir(const std::string& rel);

} // namespace cordon::server
