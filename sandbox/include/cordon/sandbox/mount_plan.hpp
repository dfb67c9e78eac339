// The filesystem view of a session, as data. `build_mount_plan` is pure: it turns a
// SandboxSpec plus facts gathered from the host (which paths exist, of what kind, which
// workspace files are hard links to masked inodes) into an ordered list of MountOps. The
// init executes that list in one loop (mount.cpp); the unit tests check it without any
// syscall.
//
// Paths: `source` is a host path, `target` a path inside the new root. Every bind is at the
// same absolute path as on the host except the private home (state_dir/home mounted at the
// real home's path). Order: system view, private /tmp /run /dev /proc /sys, then user binds
// by depth (home, toolchains, allow_read, allow_write, the workspace overlay), then every
// mask, then the root made read-only. Masks come last so no bind can uncover them.
#pragma once

#include "cordon/sandbox/sandbox.hpp"

#include <map>
#include <string>
#include <vector>

namespace cordon::sandbox {

enum class PathKind { Missing, Directory, File, Symlink, Other };

// What the planner needs to know about the host. Filled by gather_host_facts() (syscalls),
// or by hand in tests.
struct HostFacts {
    std::string user = "user";                   // login name of the caller (USER, default home)
    std::map<std::string, PathKind> kinds;       // lstat() of host paths
    std::map<std::string, std::string> resolved; // realpath() of symlinks
    std::map<std::string, std::vector<std::string>> glob_matches; // pattern -> paths
    std::vector<std::string> hardlinks_to_masked; // workspace files sharing a masked inode
    PathKind kind(const std::string& path) const;
};

enum class MountKind {
    BindReadOnly,    // recursive bind, then recursively MS_RDONLY|MS_NOSUID|MS_NODEV
    BindReadWrite,   // recursive bind, MS_NOSUID|MS_NODEV
    Tmpfs,           // data = tmpfs options; read_only: remounted read-only at once
    Proc,            // fresh procfs of the session's pid namespace
    Sysfs,           // fresh sysfs of the session's net namespace, read-only
    Devpts,          // newinstance devpts
    DevNode,         // bind one host device node onto an empty file
    Overlay,         // lower = source, upper/work from `upper` / `work`
    Symlink,         // target -> source (link text)
    MaskDirectory,   // empty read-only tmpfs over a directory
    MaskFile,        // empty read-only file bound over a file
    RemountReadOnly, // make an already mounted target read-only (non-recursive)
};

struct MountOp {
    MountOp() = default;
    MountOp(MountKind k, std::string src, std::string dst, std::string opts = {},
            std::string up = {}, std::string wk = {}, bool ro = false)
        : kind(k), source(std::move(src)), target(std::move(dst)), data(std::move(opts)),
          upper(std::move(up)), work(std::move(wk)), read_only(ro) {}
    MountKind kind = MountKind::BindReadOnly;
    std::string source;
    std::string target;
    std::string data;  // fs options (tmpfs size, ...)
    std::string upper; // Overlay only
    std::string work;  // Overlay only
    bool read_only = false;
    bool optional = false; // a missing source/target is skipped, not an error
    bool operator==(const MountOp&) const = default;
};

struct MountPlan {
    std::vector<MountOp> ops;
    std::string home;                  // $HOME inside the sandbox
    std::vector<std::string> writable; // Landlock write roots (inside the sandbox)
    std::vector<std::string> masked;   // every path masked (for tests and notes)
};

// Host directories bound read-only into every sandbox (when they exist).
const std::vector<std::string>& system_directories();
// $HOME-relative toolchain dirs visible read-only when they exist.
const std::vector<std::string>& default_home_allowlist();
// $HOME-relative secrets always masked; plus system files (/etc/shadow...).
const std::vector<std::string>& default_home_denylist();
const std::vector<std::string>& default_system_denylist();

// "~", "~/x", "relative" (to the workspace) and absolute paths -> absolute, lexically
// normalised ("//", ".", ".." collapsed). Returns "" for an empty input.
std::string normalize_policy_path(const std::string& path, const std::string& home,
                                  const std::string& workspace);
// Lexical normalisation of an absolute path.
std::string normalize_path(const std::string& path);
// True when `path` is `dir` or lies beneath it (component-wise, never a string prefix).
bool path_within(const std::string& path, const std::string& dir);

// Every host path (and glob pattern) the planner will ask HostFacts about.
struct FactQuery {
    std::vector<std::string> paths;
    std::vector<std::string> globs;
    std::vector<std::string> masked_roots; // deny paths whose inodes hard links may share
};
FactQuery fact_query(const SandboxSpec& spec, const std::string& user);

MountPlan build_mount_plan(const SandboxSpec& spec, const HostFacts& facts);

// Fills HostFacts with lstat/realpath/glob results and the bounded hard-link scan of the
// workspace. `notes` receives degradations (scan bounds, unmapped owners). Returns
// non-empty error text when the workspace cannot be proven free of hard links to masked
// files (scan bound exceeded on the same filesystem).
struct FactOptions {
    std::size_t max_scan_entries = 1000000;
    unsigned caller_uid = 0;
    bool all_uids_mapped = false;
};
std::string gather_host_facts(const SandboxSpec& spec, const FactOptions& opts, HostFacts& facts,
                              std::vector<std::string>& notes);

} // namespace cordon::sandbox
