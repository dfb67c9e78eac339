// Per-command resource limits (rlimits; cgroup v2 is not used, see docs/sandbox.md) and the
// capability drop. Both run in a spare reaper or its payload, which share the init's memory:
// no allocation, and raw syscalls that leave errno alone (raw_syscall.hpp).
#include "raw_syscall.hpp"
#include "steps.hpp"

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

namespace cordon::sandbox::steps {
namespace {
constexpr std::uint32_t kDefaultMaxProcesses = 4096;
int set(int resource, std::uint64_t value) {
    rlimit rl{static_cast<rlim_t>(value), static_cast<rlim_t>(value)};
    return raw_errno(raw_syscall(SYS_prlimit64, 0, resource, reinterpret_cast<long>(&rl), 0));
}
} // namespace

int apply_limits(const Limits& l) {
    if (l.open_files)
        if (int e = set(RLIMIT_NOFILE, l.open_files)) return e;
    if (l.cpu_seconds)
        if (int e = set(RLIMIT_CPU, l.cpu_seconds)) return e;
    if (l.file_size_bytes)
        if (int e = set(RLIMIT_FSIZE, l.file_size_bytes)) return e;
    if (l.max_processes)
        if (int e = set(RLIMIT_NPROC, l.max_processes)) return e;
    if (l.memory_bytes) {
        if (int e = set(RLIMIT_DATA, l.memory_bytes)) return e;
    }
    // 1 (not 0): the kernel also skips piped core handlers (core_pattern "|...") at 1, so
    // a crash never starts a host-side helper on the sandbox's behalf.
    return set(RLIMIT_CORE, 1);
}

int open_pid_max(int dir) {
    if (dir < 0) return -EBADF;
    return static_cast<int>(
        raw_syscall(SYS_openat, dir, reinterpret_cast<long>("pid_max"), O_WRONLY | O_CLOEXEC));
}

int limit_pid_namespace(int fd, std::uint32_t max_processes) {
    if (fd < 0) return EBADF;
    // pid allocation wraps to 300 (RESERVED_PIDS) in a namespace: keep that much headroom
    // so a long build's sequential forks never run out of numbers.
    const std::uint64_t value = 300ull + (max_processes ? max_processes : kDefaultMaxProcesses);
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%llu", static_cast<unsigned long long>(value));
    long rc = raw_syscall(SYS_pwrite64, fd, reinterpret_cast<long>(buf), n, 0);
    return rc == n ? 0 : (raw_errno(rc) ? raw_errno(rc) : EIO);
}

bool kernel_at_least(int major, int minor) {
    utsname u{};
    if (uname(&u) != 0) return false;
    int ma = 0, mi = 0;
    if (std::sscanf(u.release, "%d.%d", &ma, &mi) != 2) return false;
    return ma > major || (ma == major && mi >= minor);
}

int drop_capabilities() {
    for (int cap = 0; cap < 64; ++cap) {
        if (int e = raw_errno(raw_syscall(SYS_prctl, PR_CAPBSET_DROP, cap))) {
            if (e == EINVAL) break; // past CAP_LAST_CAP
            return e;
        }
    }
    int e = raw_errno(raw_syscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL));
    if (e && e != EINVAL) return e;
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    return raw_errno(
        raw_syscall(SYS_capset, reinterpret_cast<long>(&hdr), reinterpret_cast<long>(data)));
}

} // namespace cordon::sandbox::steps
