// changes/apply and changes/discard: the only door from the sandbox to the real workspace.
//
// apply: for every selected file, the real file's hash must equal `baseHash` and the
// sandbox's must equal `newHash`, otherwise it is a conflict and nothing is written for it.
// Writes go through fds opened one component at a time from an O_PATH fd of the real
// workspace (RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV), as a
// temp file in the target's directory + fsync + renameat, so no symlink or hard link in the
// real tree redirects a write and every file is either old or new after a crash. Modes keep
// only the 0777 bits. Deletions are unlinkat (never following). Symlinks are created as
// symlinks and refused when their target leaves the workspace. Protected paths
// (protected_paths.hpp) are written only when listed in confirm_protected; `.git/**` never.
//
// State kept in SessionFiles::state_dir:
//   applied.json   {"version":1,"files":{path:{"type","mode","hash"}}} — what apply wrote;
//                  a path whose sandbox state still equals its record is not pending.
//   apply.journal  present only while an apply runs: the temp-file prefix and the
//                  directories that may hold temp files; recover_apply() removes them.
//
// Thread-safety: one apply/discard per session at a time (the caller serialises).
#pragma once

#include "cordon/server/changes/diff.hpp"

#include <optional>
#include <set>
#include <string>
#include <vector>

namespace cordon::server::changes {

struct ApplyFile {
    std::string path; // as sent (validated by apply_changes)
    std::string base_hash;
    std::string new_hash;
};

struct ApplyRequest {
    // nullopt: every pending file, hashes taken now (protected ones only when confirmed).
    std::optional<std::vector<ApplyFile>> files;
    std::vector<std::string> confirm_protected; // paths as sent
};

struct ApplyConflict {
    std::string path;
    std::string reason;
};

struct ApplyResult {
    std::vector<std::string> applied;
    std::vector<ApplyConflict> conflicts;
    std::vector<std::string> protected_paths; // not written: need confirmation
    // For the audit log: what was written, with hashes.
    std::vector<ApplyFile> written;
};

struct ApplyOptions {
    Limits limits;
    bool fsync = true; // fsync each file before rename and each directory after
    // Test hook: called after each file is renamed into place (index, path).
    void (*after_file)(std::size_t, const std::string&) = nullptr;
};

// Throws protocol::RpcError -32602 (bad path in files/confirmProtected, duplicates) before
// touching anything; -32603 when the real workspace cannot be opened.
ApplyResult apply_changes(const SessionFiles& s, const ApplyRequest& req,
                          const ApplyOptions& opts = {});

// Removes temp files left by an apply that was killed (apply.journal) and the journal.
// Idempotent; apply_changes calls it first. Returns the number of temp files removed.
std::size_t recover_apply(const SessionFiles& s);

// changes/discard while the overlay is NOT mounted (sandbox stopped): edits the upper dir so
// that the listed pending paths (all when empty) show the real workspace again — added
// entries are removed, whiteouts removed, a file hidden by an opaque or deleted directory is
// copied back from the real workspace into an opaque upper dir. Changes under `.git` are
// discarded only with `all` (no paths). Returns the paths discarded. Throws RpcError -32602
// on a bad path.
std::vector<std::string> discard_changes_offline(const SessionFiles& s,
                                                 const std::vector<std::string>& paths,
                                                 const Limits& limits = {});

// changes/discard while the sandbox runs (overlay mounted), through the sandbox's view only
// (SessionFiles::sandbox_root_fd required): for each pending path (all when empty) the
// sandbox's entry is made equal to the real workspace's — added entries are unlinked,
// modified/deleted ones get the real content (temp + rename through the overlay), and the
// path is recorded in applied.json as settled so a later edit of the real file does not show
// as the sandbox reverting it. Legal while the overlay is mounted (no direct upper-dir
// writes); the upper keeps copies equal to the real files. `.git` changes are left alone
// (they are never applied anyway). Returns the paths discarded; throws RpcError -32602 on a
// bad path, -32004 without a sandbox.
std::vector<std::string> discard_changes_through_view(const SessionFiles& s,
                                                      const std::vector<std::string>& paths,
                                                      const Limits& limits = {});

json to_json(const ApplyResult& r);
// The audit-log record of an apply: applied/conflicts/protected plus each written file's
// baseHash and newHash.
json audit_json(const ApplyResult& r);
ApplyRequest apply_request_from_json(const json& params); // throws RpcError -32602

} // namespace cordon::server::changes
