// Internal: the setup steps of the session init, one file per kernel facility. Each step
// captures errno at the failing call and returns a SetupError naming itself, the path and a
// remedy; std::nullopt means success. Used by init/main.cpp, start_init and probe_host.
#pragma once

#include "cordon/sandbox/mount_plan.hpp"
#include "cordon/sandbox/sandbox.hpp"

#include <linux/filter.h>
#include <optional>
#include <string>
#include <sys/types.h>
#include <variant>
#include <vector>

namespace cordon::sandbox::steps {

using Result = std::optional<SetupError>;
SetupError failure(std::string step, int err, std::string path = {}, std::string fix = {});

// userns.cpp
std::string userns_fix(int err);
// unshare(CLONE_NEWUSER|NEWNS|NEWPID|NEWIPC|NEWUTS); the caller forks afterwards so its
// child is pid 1 of the new pid namespace. The net namespace is made separately (below), in
// parallel with the child's mount work: it is the slowest namespace to create.
Result enter_namespaces();
// Writes setgroups=deny, uid_map and gid_map of the current (fresh) user namespace:
// uid->uid, gid->gid, or the identity of the full range when `full_range` (root).
Result write_id_maps(uid_t uid, gid_t gid, bool full_range);
// Enters a nested user + mount namespace so every mount made so far is MNT_LOCKED for
// whatever runs afterwards (mount_namespaces(7)); maps ids the same way.
Result lock_mounts(uid_t uid, gid_t gid, bool full_range);

// mount.cpp
Result make_mounts_private();
// Mounts a scratch tmpfs on /tmp, pivots into it (host root at /oldroot) and mounts the
// future root tmpfs at /newroot.
Result prepare_new_root();
// Executes the plan: sources under /oldroot, targets under /newroot, every target opened
// component by component without following symlinks, mounts done on fds.
Result execute_mount_plan(const MountPlan& plan);
// O_PATH fd of the session procfs' sys/kernel taken before /proc/sys was made read-only
// (-1 if none): command reapers write their own pid namespace's pid_max through it.
int sysctl_kernel_dir();
// Drops the host root and pivots into /newroot.
Result enter_new_root();

// net.cpp
Result enter_net_namespace();      // unshare(CLONE_NEWNET)
Result join_net_namespace(int fd); // setns(fd, CLONE_NEWNET)
Result bring_up_loopback();
Result set_hostname(const char* name);
std::variant<std::vector<int>, SetupError> open_listeners(const std::vector<std::uint16_t>& ports);

// seccomp.cpp: built once. The init installs `allowlist` and `arguments` on itself once
// its setup is done (it needs nothing they deny), so every reaper and payload inherits them
// for free; each payload then adds only the small `payload` filter, which denies the one
// thing the init still needs: clone(CLONE_NEWPID). Attaching a 350-instruction filter costs
// ~300 us (the kernel pre-computes its syscall cache), attaching the small one ~10 us.
struct SeccompProgram {
    std::vector<sock_filter> allowlist; // default ENOSYS, explicit EPERM for dangerous calls
    std::vector<sock_filter> arguments; // default ALLOW, EPERM/EAFNOSUPPORT on argument checks
    std::vector<sock_filter> payload;   // default ALLOW, clone(CLONE_NEWPID) -> EPERM
    std::vector<sock_filter> writes;    // default ALLOW, filesystem writes -> NOTIFY (or empty)
};
std::variant<SeccompProgram, SetupError> build_seccomp();
// Compiled once per process (libseccomp takes ~1 ms): what start_init sends to the init.
const std::variant<SeccompProgram, SetupError>& compiled_seccomp();
std::vector<std::string> serialize(const SeccompProgram& prog);
std::optional<SeccompProgram> deserialize_seccomp(const std::vector<std::string>& blobs);
int apply_seccomp_init(const SeccompProgram& prog);    // returns 0 or errno
int apply_seccomp_payload(const SeccompProgram& prog); // returns 0 or errno; async-signal-safe
// Attaches `writes` with a user-notification listener: returns its fd, or -errno (-ENOSYS
// when there is no such program). Async-signal-safe.
int apply_seccomp_writes(const SeccompProgram& prog);

// landlock.cpp
int landlock_abi(); // 0 when unavailable
struct LandlockRuleset {
    int fd = -1;
    int abi = 0;
};
std::variant<LandlockRuleset, SetupError> build_landlock(const std::vector<std::string>& writable);
int apply_landlock(const LandlockRuleset& rs); // returns 0 or errno; async-signal-safe

// limits.cpp / capabilities
int apply_limits(const Limits& limits); // returns 0 or errno
// Caps the calling pid namespace (the caller is its pid 1) so at most about
// `max_processes` + 300 pids exist in it: a fork-bomb bound that also holds for uid 0,
// where RLIMIT_NPROC does not apply. Needs Linux >= 6.14 (per-namespace pid_max).
// In two steps: the open needs CAP_SYS_ADMIN over the namespace, the write does not, so
// a spare reaper opens before dropping its capabilities and writes once it has a job.
int open_pid_max(int sysctl_kernel_dir);                              // returns an fd, or -errno
int limit_pid_namespace(int pid_max_fd, std::uint32_t max_processes); // returns 0 or errno
bool kernel_at_least(int major, int minor);                           // from uname(2)
int drop_capabilities(); // bounding, ambient, effective/permitted/inheritable

// write_watch.cpp: refused filesystem writes, for reporting (never enforcement).
struct WriteAttempt {
    std::string operation;          // "open for writing", "mkdir", "rename", ...
    std::vector<std::string> paths; // absolute, lexically normalised
};
// The paths a notified write-like call names, read from the target's memory; nullopt when
// the call is not one of them or the target is gone.
std::optional<WriteAttempt> read_write_attempt(pid_t pid, long nr, const std::uint64_t args[6]);
// Whether the sandbox refuses a write at `path` (in this view): outside every writable root
// once symlinks are resolved. Devices, fifos, sockets and /proc are never reported.
bool refused_write(const std::string& path, const std::vector<std::string>& writable);

} // namespace cordon::sandbox::steps
