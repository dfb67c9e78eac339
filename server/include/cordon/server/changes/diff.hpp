// changes/diff: what the sandbox changed relative to the real workspace, built from the
// overlay's upper dir, so it costs O(changed files), never O(workspace) (except below a
// deleted or opaque directory, whose real files are listed).
//
// A path is a change when the sandbox's view and the real workspace differ in type
// (file/symlink/absent), in the executable bit, or in content. Special files (devices,
// FIFOs, sockets), unusable names, files over the size cap and entries deeper than the depth
// cap are never changes: they are listed in `skipped` with the reason. setuid/setgid/sticky
// bits and xattrs are never carried over (modes are git's 100644/100755/120000). Nothing
// under a `.git` directory is a change; `git` summarises the sandbox's repository instead.
// Paths recorded as applied (applied.json) with the sandbox's current content are not
// pending any more.
//
// Thread-safety: free functions, no shared state; one call per session at a time.
#pragma once

#include "cordon/protocol/jsonrpc.hpp"
#include "cordon/server/changes/context.hpp"
#include "cordon/server/changes/fd.hpp"

#include <optional>
#include <string>
#include <vector>

namespace cordon::server::changes {

using protocol::json;

// One side of a change.
struct Side {
    EntryType type = EntryType::absent; // absent | file | symlink
    std::uint32_t mode = 0;             // 0100644 / 0100755 / 0120000, 0 when absent
    std::uint64_t size = 0;
    std::string hash; // SHA-256 hex of the content (symlink: of its target), "" when absent
};

struct FileChange {
    std::string path;   // workspace-relative
    std::string status; // added | modified | deleted
    Side base;          // the real workspace now
    Side sandbox;       // the sandbox's view now
    bool binary = false;
    std::size_t additions = 0, deletions = 0; // lines, from the patch (text files)
    // What a reviewer could miss in the sandbox's content (APPLY-06): "bidi-control",
    // "zero-width", "ansi-escape", "bare-cr", "control-char". Text files only.
    std::vector<std::string> warnings;
    bool is_protected = false;
    std::string unified; // git-style diff of this file (empty unless with_patch)
};

struct SkippedEntry {
    std::string path; // printable (control characters escaped)
    std::string kind; // fifo | socket | device | file | symlink | dir | name
    std::string reason;
};

struct GitCommitInfo {
    std::string id, summary, author;
    std::int64_t time = 0;
};
struct GitSummary {
    bool changed = false;       // something under a .git directory differs in the upper
    bool available = false;     // the repository could be read (sandbox running)
    std::string error;          // why not, when !available and changed
    std::string real_head;      // commit id of the real repository's HEAD ("" none)
    std::string sandbox_head;   // commit id of the sandbox's HEAD
    std::string sandbox_branch; // "refs/heads/x" or "" (detached)
    bool head_moved = false;
    std::vector<GitCommitInfo> commits; // in the sandbox, not in the real repo; newest first
    bool commits_truncated = false;
    std::vector<std::string> nested; // other .git dirs touched (nested repos), relative
};

struct ChangeSet {
    std::vector<FileChange> files; // sorted by path
    std::vector<SkippedEntry> skipped;
    std::string patch; // every `unified`, concatenated (with_patch only)
    GitSummary git;
};

struct DiffOptions {
    // Report only these paths (exact, or everything below a directory path); validated
    // relative paths. Empty = all.
    std::vector<std::string> paths;
    bool with_patch = true; // false: statuses and hashes only (cheap: exec results, apply)
    bool with_git = true;
    Limits limits;
};

// Throws protocol::RpcError (-32603 naming the step) when the real workspace or the upper
// dir cannot be opened.
ChangeSet compute_changes(const SessionFiles& s, const DiffOptions& opts = {});

// DiffOptions from `changes/diff` params ({paths?}); paths validated (RpcError -32602).
DiffOptions diff_options_from_json(const json& params, const std::string& workspace);

// The `changes/diff` result: {files:[{path,status,type,binary,protected,baseHash,newHash,
// oldMode,newMode,oldSize,newSize,additions,deletions,warnings,unified}], patch, git:{...},
// skipped:[{path,kind,reason}]}.
json to_json(const ChangeSet& c);
json to_json(const GitSummary& g);

// The sandbox's new commits (GitSummary::commits) as an mbox patch series, oldest first, in
// `git format-patch` format (libgit2; no hooks, no external programs). Empty when none.
std::string export_git_series(const SessionFiles& s, std::size_t max_commits = 100);

// Characters in UTF-8 text that render invisibly or deceptively (see FileChange::warnings).
std::vector<std::string> content_warnings(std::string_view text);

// Lowercase mode string as git prints it ("100644"), "" for 0.
std::string git_mode_string(std::uint32_t mode);

} // namespace cordon::server::changes
