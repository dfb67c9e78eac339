// Shared by diff.cpp and apply.cpp: opening the three trees, reading one side of a change,
// the applied-state file. Not installed.
#pragma once

#include "cordon/server/changes/context.hpp"
#include "cordon/server/changes/diff.hpp"
#include "cordon/server/changes/fd.hpp"

#include <map>
#include <string>

namespace cordon::server::changes::detail {

struct Roots {
    UniqueFd real;    // O_PATH, the real workspace
    UniqueFd upper;   // O_RDONLY, the upper dir (empty when it does not exist yet)
    UniqueFd content; // where the sandbox's content is read: the workspace in the sandbox
                      // root when running, else the upper dir
};
Roots open_roots(const SessionFiles& s);

// git's mode for an entry: 0100644 / 0100755 / 0120000 (0 for anything else).
std::uint32_t git_mode_of(const EntryStat& st);

struct Loaded {
    Side side;
    std::string data;                  // content (file) or target (symlink), when kept
    bool too_large = false;            // apparent size over the cap: not read, no hash
    EntryType raw = EntryType::absent; // what is really there (dir/special/whiteout too)
};
// Reads what is at `rel` beneath `root` with strict resolution. A missing path, or one whose
// parent is not reachable without following a symlink, is absent.
Loaded load(int root, const std::string& rel, const Limits& l, bool keep_data);

// applied.json
std::map<std::string, Side> load_applied(const std::filesystem::path& state_dir);
void save_applied(const std::filesystem::path& state_dir, const std::map<std::string, Side>& m);

// Writes `data` to `dir/name` atomically (temp + fsync + rename + fsync dir).
void write_file_atomic(const std::filesystem::path& dir, const std::string& name,
                       const std::string& data);

void init_libgit2();

} // namespace cordon::server::changes::detail
