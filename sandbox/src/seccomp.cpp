// Seccomp filters, compiled once in the init (see steps.hpp for who installs which):
//  1. an allowlist (default ENOSYS, so unknown and future syscalls fail the way old kernels
//     do) with explicit EPERM for the dangerous calls; non-native arches kill the process.
//  2. argument checks (default ALLOW): ioctl TIOCSTI/TIOCLINUX on the low 32 bits (the
//     kernel truncates the command, so 2^32+TIOCSTI is caught too), clone with any
//     CLONE_NEW* flag, socket families other than AF_UNIX/AF_INET/AF_INET6.
// The kernel runs both and keeps the most restrictive verdict.
#include "raw_syscall.hpp"
#include "steps.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <utility>

namespace cordon::sandbox::steps {
namespace {

const char* const kAllowed[] = {
    "read",
    "write",
    "open",
    "close",
    "stat",
    "fstat",
    "lstat",
    "poll",
    "lseek",
    "mmap",
    "mprotect",
    "munmap",
    "brk",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "ioctl",
    "pread64",
    "pwrite64",
    "readv",
    "writev",
    "access",
    "pipe",
    "select",
    "sched_yield",
    "mremap",
    "msync",
    "mincore",
    "madvise",
    "shmget",
    "shmat",
    "shmctl",
    "dup",
    "dup2",
    "pause",
    "nanosleep",
    "getitimer",
    "alarm",
    "setitimer",
    "getpid",
    "sendfile",
    "socket",
    "connect",
    "accept",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "shutdown",
    "bind",
    "listen",
    "getsockname",
    "getpeername",
    "socketpair",
    "setsockopt",
    "getsockopt",
    "clone",
    "fork",
    "vfork",
    "execve",
    "exit",
    "wait4",
    "kill",
    "uname",
    "semget",
    "semop",
    "semctl",
    "shmdt",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "fcntl",
    "flock",
    "fsync",
    "fdatasync",
    "truncate",
    "ftruncate",
    "getdents",
    "getcwd",
    "chdir",
    "fchdir",
    "rename",
    "mkdir",
    "rmdir",
    "creat",
    "link",
    "unlink",
    "symlink",
    "readlink",
    "chmod",
    "fchmod",
    "chown",
    "fchown",
    "lchown",
    "umask",
    "gettimeofday",
    "getrlimit",
    "getrusage",
    "sysinfo",
    "times",
    "getuid",
    "getgid",
    "setuid",
    "setgid",
    "geteuid",
    "getegid",
    "setpgid",
    "getppid",
    "getpgrp",
    "setsid",
    "setreuid",
    "setregid",
    "getgroups",
    "setresuid",
    "getresuid",
    "setresgid",
    "getresgid",
    "getpgid",
    "setfsuid",
    "setfsgid",
    "getsid",
    "capget",
    "capset",
    "rt_sigpending",
    "rt_sigtimedwait",
    "rt_sigqueueinfo",
    "rt_sigsuspend",
    "sigaltstack",
    "utime",
    "mknod",
    "statfs",
    "fstatfs",
    "getpriority",
    "setpriority",
    "sched_setparam",
    "sched_getparam",
    "sched_setscheduler",
    "sched_getscheduler",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_rr_get_interval",
    "mlock",
    "munlock",
    "mlockall",
    "munlockall",
    "prctl",
    "arch_prctl",
    "setrlimit",
    "sync",
    "gettid",
    "readahead",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "getxattr",
    "lgetxattr",
    "fgetxattr",
    "listxattr",
    "llistxattr",
    "flistxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "tkill",
    "time",
    "futex",
    "sched_setaffinity",
    "sched_getaffinity",
    "set_thread_area",
    "get_thread_area",
    "io_setup",
    "io_destroy",
    "io_getevents",
    "io_submit",
    "io_cancel",
    "getdents64",
    "set_tid_address",
    "restart_syscall",
    "semtimedop",
    "fadvise64",
    "timer_create",
    "timer_settime",
    "timer_gettime",
    "timer_getoverrun",
    "timer_delete",
    "clock_gettime",
    "clock_getres",
    "clock_nanosleep",
    "exit_group",
    "epoll_create",
    "epoll_wait",
    "epoll_ctl",
    "tgkill",
    "utimes",
    "mbind",
    "set_mempolicy",
    "get_mempolicy",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
    "waitid",
    "inotify_init",
    "inotify_add_watch",
    "inotify_rm_watch",
    "openat",
    "mkdirat",
    "mknodat",
    "fchownat",
    "futimesat",
    "newfstatat",
    "unlinkat",
    "renameat",
    "linkat",
    "symlinkat",
    "readlinkat",
    "fchmodat",
    "faccessat",
    "pselect6",
    "ppoll",
    "set_robust_list",
    "get_robust_list",
    "splice",
    "tee",
    "sync_file_range",
    "vmsplice",
    "utimensat",
    "epoll_pwait",
    "signalfd",
    "timerfd_create",
    "eventfd",
    "fallocate",
    "timerfd_settime",
    "timerfd_gettime",
    "accept4",
    "signalfd4",
    "eventfd2",
    "epoll_create1",
    "dup3",
    "pipe2",
    "inotify_init1",
    "preadv",
    "pwritev",
    "rt_tgsigqueueinfo",
    "recvmmsg",
    "prlimit64",
    "name_to_handle_at",
    "syncfs",
    "sendmmsg",
    "getcpu",
    "sched_setattr",
    "sched_getattr",
    "renameat2",
    "seccomp",
    "getrandom",
    "memfd_create",
    "execveat",
    "membarrier",
    "copy_file_range",
    "preadv2",
    "pwritev2",
    "pkey_mprotect",
    "pkey_alloc",
    "pkey_free",
    "statx",
    "rseq",
    "pidfd_send_signal",
    "pidfd_open",
    "pidfd_getfd",
    "close_range",
    "openat2",
    "faccessat2",
    "epoll_pwait2",
    "landlock_create_ruleset",
    "landlock_add_rule",
    "landlock_restrict_self",
    "futex_waitv",
    "mlock2",
    "ioprio_get",
    "ioprio_set",
    "remap_file_pages",
    "process_madvise",
    "get_mempolicy",
    "clock_adjtime",
    "ugetrlimit",
    "_llseek",
    "mmap2",
    "fstat64",
    "stat64",
    "lstat64",
    "fcntl64",
    "getdents",
    "send",
    "recv",
};

// Newer than libseccomp 2.5.4's tables: x86_64 numbers.
struct RawSyscall {
    const char* name;
    int nr;
};
const RawSyscall kAllowedRaw[] = {
    {"cachestat", 451},     {"fchmodat2", 452}, {"futex_wake", 454},      {"futex_wait", 455},
    {"futex_requeue", 456}, {"mseal", 462},     {"map_shadow_stack", 453}};

const char* const kDenied[] = {"ptrace",
                               "process_vm_readv",
                               "process_vm_writev",
                               "mount",
                               "umount2",
                               "umount",
                               "pivot_root",
                               "chroot",
                               "fsopen",
                               "fsconfig",
                               "fsmount",
                               "fspick",
                               "open_tree",
                               "move_mount",
                               "mount_setattr",
                               "unshare",
                               "setns",
                               "bpf",
                               "add_key",
                               "keyctl",
                               "request_key",
                               "perf_event_open",
                               "userfaultfd",
                               "io_uring_setup",
                               "io_uring_enter",
                               "io_uring_register",
                               "kexec_load",
                               "kexec_file_load",
                               "init_module",
                               "finit_module",
                               "delete_module",
                               "open_by_handle_at",
                               "setgroups",
                               "kcmp",
                               "acct",
                               "swapon",
                               "swapoff",
                               "reboot",
                               "settimeofday",
                               "clock_settime",
                               "adjtimex",
                               "syslog",
                               "quotactl",
                               "iopl",
                               "ioperm",
                               "modify_ldt",
                               "vhangup",
                               "uselib",
                               "lookup_dcookie",

                               "sethostname",
                               "setdomainname",
                               "nfsservctl",
                               "migrate_pages",
                               "move_pages"};

int export_filter(scmp_filter_ctx ctx, std::vector<sock_filter>& out) {
    int fd = memfd_create("cordon-seccomp", MFD_CLOEXEC);
    if (fd < 0) return errno;
    int rc = seccomp_export_bpf(ctx, fd);
    if (rc < 0) {
        close(fd);
        return -rc;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0 || size % sizeof(sock_filter) != 0) {
        close(fd);
        return EINVAL;
    }
    out.resize(static_cast<std::size_t>(size) / sizeof(sock_filter));
    ssize_t n = pread(fd, out.data(), static_cast<std::size_t>(size), 0);
    close(fd);
    return n == size ? 0 : EIO;
}

struct Ctx {
    scmp_filter_ctx ctx;
    ~Ctx() { seccomp_release(ctx); }
};

} // namespace

std::variant<SeccompProgram, SetupError> build_seccomp() {
    auto fail = [](int e, const char* what) {
        return failure("seccomp", e, what,
                       "the kernel needs CONFIG_SECCOMP_FILTER=y; libseccomp >= 2.5 required");
    };
    SeccompProgram prog;
    {
        Ctx c{seccomp_init(SCMP_ACT_ERRNO(ENOSYS))};
        if (!c.ctx) return fail(ENOMEM, "seccomp_init");
        seccomp_attr_set(c.ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        seccomp_attr_set(c.ctx, SCMP_FLTATR_CTL_NNP, 0);
        // A binary tree instead of a linear list of ~300 compares: fewer instructions per
        // syscall and a much cheaper attach (the kernel emulates the filter per syscall
        // number to precompute its cache).
        seccomp_attr_set(c.ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
        for (const char* name : kAllowed) {
            int nr = seccomp_syscall_resolve_name(name);
            if (nr == __NR_SCMP_ERROR || nr < 0) continue;
            if (int rc = seccomp_rule_add(c.ctx, SCMP_ACT_ALLOW, nr, 0); rc < 0 && rc != -EEXIST)
                return fail(-rc, name);
        }
#if defined(__x86_64__)
        for (const auto& raw : kAllowedRaw) {
            int nr = seccomp_syscall_resolve_name(raw.name);
            if (nr == __NR_SCMP_ERROR || nr < 0) nr = raw.nr;
            seccomp_rule_add(c.ctx, SCMP_ACT_ALLOW, nr, 0);
        }
#endif
        for (const char* name : kDenied) {
            int nr = seccomp_syscall_resolve_name(name);
            if (nr == __NR_SCMP_ERROR || nr < 0) continue;
            if (int rc = seccomp_rule_add(c.ctx, SCMP_ACT_ERRNO(EPERM), nr, 0); rc < 0)
                return fail(-rc, name);
        }
        // personality: only the query and the default persona (as Docker's profile); others,
        // e.g. READ_IMPLIES_EXEC or ADDR_NO_RANDOMIZE, fall to the default ENOSYS.
        for (scmp_datum_t persona : {0x0ul, 0x8ul, 0xfffffffful}) {
            if (int rc = seccomp_rule_add(c.ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
                                          SCMP_A0(SCMP_CMP_EQ, persona));
                rc < 0)
                return fail(-rc, "personality rule");
        }
        // clone3 passes its flags in memory seccomp cannot read: ENOSYS makes libc fall back
        // to clone(), whose flags the second filter checks.
        seccomp_rule_add(c.ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
        if (int e = export_filter(c.ctx, prog.allowlist)) return fail(e, "export allowlist");
    }
    {
        Ctx c{seccomp_init(SCMP_ACT_ALLOW)};
        if (!c.ctx) return fail(ENOMEM, "seccomp_init");
        seccomp_attr_set(c.ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        seccomp_attr_set(c.ctx, SCMP_FLTATR_CTL_NNP, 0);
        for (unsigned long cmd :
             {static_cast<unsigned long>(TIOCSTI), static_cast<unsigned long>(TIOCLINUX)}) {
            if (int rc = seccomp_rule_add(c.ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                                          SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, cmd));
                rc < 0)
                return fail(-rc, "ioctl rule");
        }
        for (unsigned long flag : {CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
                                   CLONE_NEWUSER, CLONE_NEWNET}) {
            if (int rc = seccomp_rule_add(c.ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                          SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
                rc < 0)
                return fail(-rc, "clone rule");
        }
        constexpr int kFamilyLimit = 64; // above AF_MAX of any kernel we know
        for (int family = 0; family < kFamilyLimit; ++family) {
            if (family == AF_UNIX || family == AF_INET || family == AF_INET6) continue;
            if (int rc = seccomp_rule_add(
                    c.ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                    SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, static_cast<scmp_datum_t>(family)));
                rc < 0)
                return fail(-rc, "socket rule");
        }
        if (int rc =
                seccomp_rule_add(c.ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                                 SCMP_A0(SCMP_CMP_GE, static_cast<scmp_datum_t>(kFamilyLimit)));
            rc < 0)
            return fail(-rc, "socket rule");
        if (int e = export_filter(c.ctx, prog.arguments)) return fail(e, "export arguments");
    }
    {
        Ctx c{seccomp_init(SCMP_ACT_ALLOW)};
        if (!c.ctx) return fail(ENOMEM, "seccomp_init");
        seccomp_attr_set(c.ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        seccomp_attr_set(c.ctx, SCMP_FLTATR_CTL_NNP, 0);
        if (int rc = seccomp_rule_add(c.ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                      SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWPID, CLONE_NEWPID));
            rc < 0)
            return fail(-rc, "clone rule");
        if (int e = export_filter(c.ctx, prog.payload)) return fail(e, "export payload");
    }
    // Writes: the calls that create, change or remove filesystem entries are shown to the
    // init (user notification) so it can report the ones the sandbox refuses. Enforcement
    // is the mounts' and Landlock's; the init only looks and lets the call continue. Left
    // empty where the kernel cannot notify: then nothing is reported, nothing breaks.
    if (seccomp_api_get() >= 5) {
        Ctx c{seccomp_init(SCMP_ACT_ALLOW)};
        if (!c.ctx) return fail(ENOMEM, "seccomp_init");
        seccomp_attr_set(c.ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        seccomp_attr_set(c.ctx, SCMP_FLTATR_CTL_NNP, 0);
        for (const char* name :
             {"creat",     "mkdir",       "mkdirat",     "unlink",   "unlinkat",  "rmdir",
              "rename",    "renameat",    "renameat2",   "link",     "linkat",    "symlink",
              "symlinkat", "mknod",       "mknodat",     "truncate", "chmod",     "fchmodat",
              "fchmodat2", "chown",       "lchown",      "fchownat", "utimensat", "setxattr",
              "lsetxattr", "removexattr", "lremovexattr"}) {
            int nr = seccomp_syscall_resolve_name(name);
            if (nr == __NR_SCMP_ERROR || nr < 0) continue;
            if (int rc = seccomp_rule_add(c.ctx, SCMP_ACT_NOTIFY, nr, 0); rc < 0)
                return fail(-rc, name);
        }
        // open/openat only with a flag that asks for writing (reads stay unnotified).
        for (auto [name, arg] : {std::pair{"open", 1u}, std::pair{"openat", 2u}}) {
            int nr = seccomp_syscall_resolve_name(name);
            if (nr == __NR_SCMP_ERROR || nr < 0) continue;
            for (scmp_datum_t bit : {O_WRONLY, O_RDWR, O_CREAT, O_TRUNC}) {
                scmp_arg_cmp cmp{arg, SCMP_CMP_MASKED_EQ, bit, bit};
                if (int rc = seccomp_rule_add_array(c.ctx, SCMP_ACT_NOTIFY, nr, 1, &cmp); rc < 0)
                    return fail(-rc, name);
            }
        }
        if (int e = export_filter(c.ctx, prog.writes)) return fail(e, "export writes");
    }
    return prog;
}

const std::variant<SeccompProgram, SetupError>& compiled_seccomp() {
    static const std::variant<SeccompProgram, SetupError> compiled = build_seccomp();
    return compiled;
}

std::vector<std::string> serialize(const SeccompProgram& prog) {
    std::vector<std::string> out;
    for (const auto* f : {&prog.allowlist, &prog.arguments, &prog.payload, &prog.writes})
        out.emplace_back(reinterpret_cast<const char*>(f->data()), f->size() * sizeof(sock_filter));
    return out;
}

std::optional<SeccompProgram> deserialize_seccomp(const std::vector<std::string>& blobs) {
    if (blobs.size() != 4) return std::nullopt;
    SeccompProgram prog;
    std::vector<sock_filter>* dst[] = {&prog.allowlist, &prog.arguments, &prog.payload,
                                       &prog.writes};
    for (std::size_t i = 0; i < 4; ++i) {
        const auto& b = blobs[i];
        if ((b.empty() && i != 3) || b.size() % sizeof(sock_filter) != 0 ||
            b.size() / sizeof(sock_filter) > BPF_MAXINSNS)
            return std::nullopt;
        dst[i]->resize(b.size() / sizeof(sock_filter));
        std::memcpy(dst[i]->data(), b.data(), b.size());
    }
    return prog;
}

namespace {
int attach(const std::vector<sock_filter>& f) {
    sock_fprog fp{static_cast<unsigned short>(f.size()), const_cast<sock_filter*>(f.data())};
    // Raw: a spare reaper attaches the payload filter in the init's memory (errno untouched).
    return raw_errno(
        raw_syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, reinterpret_cast<long>(&fp)));
}
} // namespace

int apply_seccomp_init(const SeccompProgram& prog) {
    if (int e = attach(prog.arguments)) return e;
    return attach(prog.allowlist);
}

int apply_seccomp_payload(const SeccompProgram& prog) {
    return attach(prog.payload);
}

int apply_seccomp_writes(const SeccompProgram& prog) {
    if (prog.writes.empty()) return -ENOSYS;
    sock_fprog fp{static_cast<unsigned short>(prog.writes.size()),
                  const_cast<sock_filter*>(prog.writes.data())};
    return static_cast<int>(raw_syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                                        SECCOMP_FILTER_FLAG_NEW_LISTENER,
                                        reinterpret_cast<long>(&fp)));
}

} // namespace cordon::sandbox::steps
