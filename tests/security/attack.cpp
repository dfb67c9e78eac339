// cordon-attack NAME [ARGS...]: performs one attack from SECURITY-CASES.md inside the
// sandbox and prints one line per attempt: "<what>: blocked (<why>)" when the sandbox held,
// "<what>: ESCAPED (<what happened>)" when it did not, or "<what>: info (...)" for facts the
// test checks itself. Statically linked so it runs in any mount view.
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/mount.h>
#include <linux/perf_event.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <pty.h>
#include <sched.h>
#include <string>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace {

int failures = 0;

void blocked(const std::string& what, const std::string& why) {
    printf("%s: blocked (%s)\n", what.c_str(), why.c_str());
}
void escaped(const std::string& what, const std::string& how) {
    printf("%s: ESCAPED (%s)\n", what.c_str(), how.c_str());
    ++failures;
}
void info(const std::string& what, const std::string& text) {
    printf("%s: info (%s)\n", what.c_str(), text.c_str());
}

// The call must fail with one of `ok` errnos (a filter/kernel refusal, never the kernel
// code running and complaining about our bogus arguments).
void expect_fail(const std::string& what, long rc, std::initializer_list<int> ok) {
    int e = errno;
    if (rc >= 0) return escaped(what, "succeeded, rc=" + std::to_string(rc));
    for (int o : ok)
        if (e == o) return blocked(what, strerror(e));
    escaped(what, std::string("unexpected errno ") + strerror(e) + " (kernel code reached)");
}

#define ERRS(...)                                                                                  \
    { __VA_ARGS__ }

void attack_tiocsti() {
    // Make a fresh pty our controlling terminal: without seccomp TIOCSTI on one's own ctty
    // works when dev.tty.legacy_tiocsti=1.
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0) return blocked("tiocsti", std::string("no pty: ") + strerror(errno));
    grantpt(master);
    unlockpt(master);
    const char* name = ptsname(master);
    int slave = open(name, O_RDWR); // we are a session leader without a ctty: becomes ctty
    if (slave < 0) return blocked("tiocsti", std::string("open slave: ") + strerror(errno));
    char c = 'X';
    expect_fail("tiocsti", syscall(SYS_ioctl, slave, TIOCSTI, &c), ERRS(EPERM));
    expect_fail("tiocsti+2^32", syscall(SYS_ioctl, slave, (1ul << 32) | TIOCSTI, &c), ERRS(EPERM));
    // Anything pushed would be readable from the slave's input.
    fcntl(slave, F_SETFL, O_NONBLOCK);
    char buf[8];
    if (read(slave, buf, sizeof(buf)) > 0) escaped("tiocsti-input", "characters were injected");
    // The inherited stdio: no controlling terminal to reach.
    int tty = open("/dev/tty", O_RDWR);
    if (tty >= 0) {
        expect_fail("tiocsti-/dev/tty", syscall(SYS_ioctl, tty, TIOCSTI, &c), ERRS(EPERM, EIO));
    } else {
        blocked("open /dev/tty", strerror(errno));
    }
    expect_fail("tiocsti-stdin", syscall(SYS_ioctl, 0, TIOCSTI, &c), ERRS(EPERM));
}

void attack_tioclinux() {
    char sub[2] = {2, 0}; // TIOCL_SETSEL-ish
    expect_fail("tioclinux", syscall(SYS_ioctl, 0, TIOCLINUX, sub), ERRS(EPERM));
    expect_fail("tioclinux+2^32", syscall(SYS_ioctl, 0, (1ul << 32) | TIOCLINUX, sub), ERRS(EPERM));
    for (const char* vt : {"/dev/tty0", "/dev/tty1", "/dev/console", "/dev/vcs", "/dev/mem",
                           "/dev/kmsg", "/dev/sda", "/dev/vda", "/dev/kvm", "/dev/input"}) {
        struct stat st;
        if (stat(vt, &st) == 0)
            escaped(std::string("device ") + vt, "present");
        else
            blocked(std::string("device ") + vt, strerror(errno));
    }
}

void attack_namespaces() {
    struct {
        std::uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
    } args{};
    args.flags = CLONE_NEWUSER;
    args.exit_signal = SIGCHLD;
    long rc = syscall(SYS_clone3, &args, sizeof(args));
    if (rc == 0) _exit(0);
    expect_fail("clone3(CLONE_NEWUSER)", rc, ERRS(ENOSYS));
    for (int flag : {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWUTS,
                     CLONE_NEWIPC, CLONE_NEWCGROUP}) {
        expect_fail("unshare(" + std::to_string(flag) + ")", unshare(flag), ERRS(EPERM));
        rc = syscall(SYS_clone, flag | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
        if (rc == 0) _exit(0);
        if (rc > 0) waitpid(static_cast<pid_t>(rc), nullptr, 0);
        expect_fail("clone(" + std::to_string(flag) + ")", rc, ERRS(EPERM));
    }
    int fd = open("/proc/1/ns/mnt", O_RDONLY);
    expect_fail("setns(/proc/1/ns/mnt)", fd < 0 ? -1 : setns(fd, 0), ERRS(EPERM, EACCES));
    fd = open("/proc/self/ns/user", O_RDONLY);
    expect_fail("setns(own userns)", fd < 0 ? -1 : setns(fd, CLONE_NEWUSER), ERRS(EPERM));
    // Plain fork still works.
    pid_t p = fork();
    if (p == 0) _exit(0);
    if (p > 0) {
        waitpid(p, nullptr, 0);
        info("fork", "works");
    } else {
        escaped("fork", std::string("plain fork broken: ") + strerror(errno));
    }
}

void attack_syscalls() {
    char params[120] = {};
    expect_fail("io_uring_setup", syscall(SYS_io_uring_setup, 4, params), ERRS(EPERM, ENOSYS));
    expect_fail("io_uring_enter", syscall(SYS_io_uring_enter, 0, 0, 0, 0, nullptr, 0),
                ERRS(EPERM, ENOSYS));
    expect_fail("io_uring_register", syscall(SYS_io_uring_register, 0, 0, nullptr, 0),
                ERRS(EPERM, ENOSYS));
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    expect_fail("bpf", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr)), ERRS(EPERM, ENOSYS));
    expect_fail("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0),
                ERRS(EPERM, ENOSYS));
    expect_fail("add_key", syscall(SYS_add_key, "user", "cordon", "x", 1, KEY_SPEC_SESSION_KEYRING),
                ERRS(EPERM, ENOSYS));
    expect_fail("request_key",
                syscall(SYS_request_key, "user", "cordon", nullptr, KEY_SPEC_SESSION_KEYRING),
                ERRS(EPERM, ENOSYS));
    perf_event_attr pe{};
    pe.size = sizeof(pe);
    pe.type = PERF_TYPE_SOFTWARE;
    pe.config = PERF_COUNT_SW_CPU_CLOCK;
    expect_fail("perf_event_open", syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0),
                ERRS(EPERM, ENOSYS));
    expect_fail("userfaultfd", syscall(SYS_userfaultfd, 0), ERRS(EPERM, ENOSYS));
    char handle[128] = {};
    expect_fail("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, handle, O_RDONLY),
                ERRS(EPERM, ENOSYS));
    char buf[16];
    iovec local{buf, sizeof(buf)}, remote{reinterpret_cast<void*>(0x400000), sizeof(buf)};
    expect_fail("process_vm_readv(1)", syscall(SYS_process_vm_readv, 1, &local, 1, &remote, 1, 0),
                ERRS(EPERM, ENOSYS));
    expect_fail("process_vm_writev(1)", syscall(SYS_process_vm_writev, 1, &local, 1, &remote, 1, 0),
                ERRS(EPERM, ENOSYS));
    expect_fail("ptrace(ATTACH, 1)", ptrace(PTRACE_ATTACH, 1, nullptr, nullptr), ERRS(EPERM));
    expect_fail("ptrace(ATTACH, ppid)", ptrace(PTRACE_ATTACH, getppid(), nullptr, nullptr),
                ERRS(EPERM));
    expect_fail("ptrace(TRACEME)", ptrace(PTRACE_TRACEME, 0, nullptr, nullptr), ERRS(EPERM));
    expect_fail("kexec_load", syscall(SYS_kexec_load, 0, 0, nullptr, 0), ERRS(EPERM, ENOSYS));
    expect_fail("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 0, "", 0),
                ERRS(EPERM, ENOSYS));
    expect_fail("init_module", syscall(SYS_init_module, nullptr, 0, ""), ERRS(EPERM, ENOSYS));
    expect_fail("finit_module", syscall(SYS_finit_module, -1, "", 0), ERRS(EPERM, ENOSYS));
    expect_fail("delete_module", syscall(SYS_delete_module, "loop", 0), ERRS(EPERM, ENOSYS));
    gid_t none[1] = {0};
    expect_fail("setgroups", setgroups(0, none), ERRS(EPERM));
    expect_fail("swapon", syscall(SYS_swapon, "/tmp/x", 0), ERRS(EPERM, ENOSYS));
}

void attack_sockets() {
    struct Case {
        const char* name;
        long domain;
        int type, proto;
    };
    const Case cases[] = {
        {"AF_PACKET", AF_PACKET, SOCK_RAW, 0},
        {"AF_NETLINK(NETFILTER)", AF_NETLINK, SOCK_RAW, 12},
        {"AF_NETLINK(ROUTE)", AF_NETLINK, SOCK_RAW, 0},
        {"AF_VSOCK", AF_VSOCK, SOCK_STREAM, 0},
        {"AF_ALG", AF_ALG, SOCK_SEQPACKET, 0},
        {"AF_TIPC", AF_TIPC, SOCK_RDM, 0},
        {"AF_BLUETOOTH", AF_BLUETOOTH, SOCK_RAW, 0},
        {"AF_KEY", AF_KEY, SOCK_RAW, 2},
        {"AF_XDP", 44, SOCK_RAW, 0},
        {"AF_NETLINK+2^32", (1l << 32) | AF_NETLINK, SOCK_RAW, 0},
        {"AF_PACKET+2^32", (1l << 32) | AF_PACKET, SOCK_RAW, 0},
        {"family 200", 200, SOCK_RAW, 0},
    };
    for (const auto& c : cases) {
        expect_fail(std::string("socket(") + c.name + ")",
                    syscall(SYS_socket, c.domain, c.type, c.proto), ERRS(EAFNOSUPPORT));
    }
    int ok = socket(AF_UNIX, SOCK_STREAM, 0);
    if (ok < 0)
        escaped("socket(AF_UNIX)", std::string("legit family refused: ") + strerror(errno));
    else
        info("socket(AF_UNIX)", "works");
}

void attack_mounts(const char* mask) {
    expect_fail(std::string("umount2(") + mask + ")", umount2(mask, MNT_DETACH), ERRS(EPERM));
    expect_fail("remount / rw", mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND, nullptr),
                ERRS(EPERM));
    expect_fail("remount /usr rw", mount(nullptr, "/usr", nullptr, MS_REMOUNT | MS_BIND, nullptr),
                ERRS(EPERM));
    expect_fail("mount tmpfs over mask", mount("tmpfs", mask, "tmpfs", 0, nullptr), ERRS(EPERM));
    expect_fail("bind / over mask", mount("/", mask, nullptr, MS_BIND, nullptr), ERRS(EPERM));
    expect_fail("mount proc", mount("proc", "/tmp", "proc", 0, nullptr), ERRS(EPERM));
    expect_fail("mount cgroup v1", mount("cgroup", "/tmp", "cgroup", 0, "memory"), ERRS(EPERM));
    expect_fail("mount cgroup2", mount("cgroup2", "/tmp", "cgroup2", 0, nullptr), ERRS(EPERM));
    expect_fail("fsopen(tmpfs)", syscall(SYS_fsopen, "tmpfs", 0), ERRS(EPERM, ENOSYS));
    expect_fail("fspick(/)", syscall(SYS_fspick, AT_FDCWD, "/", 0), ERRS(EPERM, ENOSYS));
    expect_fail("open_tree(/)", syscall(SYS_open_tree, AT_FDCWD, "/", 1 /* CLONE */),
                ERRS(EPERM, ENOSYS));
    expect_fail("move_mount", syscall(SYS_move_mount, AT_FDCWD, mask, AT_FDCWD, "/tmp", 0),
                ERRS(EPERM, ENOSYS));
    mount_attr attr{};
    expect_fail("mount_setattr", syscall(SYS_mount_setattr, AT_FDCWD, "/", 0, &attr, sizeof(attr)),
                ERRS(EPERM, ENOSYS));
    expect_fail("fsmount", syscall(SYS_fsmount, -1, 0, 0), ERRS(EPERM, ENOSYS));
    expect_fail("fsconfig", syscall(SYS_fsconfig, -1, 0, nullptr, nullptr, 0), ERRS(EPERM, ENOSYS));
    expect_fail("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"), ERRS(EPERM));
    expect_fail("chroot", chroot("/tmp"), ERRS(EPERM));
}

std::string status_field(const char* name) {
    FILE* f = fopen("/proc/self/status", "r");
    if (!f) return "";
    char line[256];
    std::string out;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, name, strlen(name)) == 0 && line[strlen(name)] == ':') {
            out = line + strlen(name) + 1;
            while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
                out.pop_back();
            while (!out.empty() && (out.front() == '\t' || out.front() == ' '))
                out.erase(0, 1);
        }
    }
    fclose(f);
    return out;
}

void attack_privileges() {
    auto check = [](const char* field, const char* want) {
        std::string v = status_field(field);
        if (v == want)
            blocked(field, v);
        else
            escaped(field, "is " + v + ", want " + want);
    };
    check("NoNewPrivs", "1");
    check("CapInh", "0000000000000000");
    check("CapPrm", "0000000000000000");
    check("CapEff", "0000000000000000");
    check("CapBnd", "0000000000000000");
    check("CapAmb", "0000000000000000");
    check("Seccomp", "2");
    // A setuid binary from the read-only host view does not change our euid.
    for (const char* suid : {"/usr/bin/su", "/usr/bin/passwd", "/usr/bin/mount", "/usr/bin/newgrp",
                             "/usr/bin/chfn", "/bin/ping", "/usr/bin/sudo"}) {
        struct stat st;
        if (stat(suid, &st) != 0 || !(st.st_mode & (S_ISUID | S_ISGID))) continue;
        info("setuid binary", std::string(suid) + " present (nosuid mount + no_new_privs)");
    }
    struct statfs_like {};
    FILE* m = fopen("/proc/self/mountinfo", "r");
    char line[4096];
    bool usr_nosuid = false;
    while (m && fgets(line, sizeof(line), m)) {
        if (strstr(line, " /usr ") && strstr(line, "nosuid")) usr_nosuid = true;
    }
    if (m) fclose(m);
    if (usr_nosuid)
        blocked("/usr mount", "nosuid");
    else
        escaped("/usr mount", "not nosuid");
}

void attack_proc() {
    // Only the session's processes are visible.
    int count = 0;
    DIR* d = opendir("/proc");
    std::string names;
    while (dirent* e = d ? readdir(d) : nullptr) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        ++count;
        std::string comm = "/proc/" + std::string(e->d_name) + "/comm";
        FILE* f = fopen(comm.c_str(), "r");
        char c[64] = {};
        if (f && fgets(c, sizeof(c), f)) names += std::string(e->d_name) + ":" + c;
        if (f) fclose(f);
    }
    if (d) closedir(d);
    for (auto& ch : names)
        if (ch == '\n') ch = ' ';
    if (count <= 10)
        blocked("pid count", std::to_string(count) + " visible: " + names);
    else
        escaped("pid count", std::to_string(count) + " processes visible: " + names);
    char link[256] = {};
    ssize_t n = readlink("/proc/1/root", link, sizeof(link) - 1);
    if (n < 0)
        blocked("/proc/1/root", strerror(errno));
    else if (std::string(link) == "/")
        blocked("/proc/1/root", "is the sandbox root");
    else
        escaped("/proc/1/root", link);
    int fd = open("/proc/1/root/etc/hostname", O_RDONLY);
    expect_fail("open /proc/1/root/...", fd, ERRS(EACCES, EPERM));
    fd = open("/proc/1/environ", O_RDONLY);
    expect_fail("open /proc/1/environ", fd, ERRS(EACCES, EPERM));
    fd = open("/proc/1/mem", O_RDONLY);
    expect_fail("open /proc/1/mem", fd, ERRS(EACCES, EPERM));
    fd = open("/proc/kcore", O_RDONLY);
    char buf[64];
    if (fd < 0)
        blocked("/proc/kcore", strerror(errno));
    else if (read(fd, buf, sizeof(buf)) <= 0)
        blocked("/proc/kcore", "empty");
    else
        escaped("/proc/kcore", "readable");
    expect_fail("syslog(dmesg)", syscall(SYS_syslog, 3, buf, sizeof(buf)), ERRS(EPERM, ENOSYS));
    FILE* ks = fopen("/proc/kallsyms", "r");
    char sym[128] = {};
    if (!ks || !fgets(sym, sizeof(sym), ks))
        blocked("/proc/kallsyms", "unreadable");
    else if (strncmp(sym, "0000000000000000", 16) == 0)
        blocked("/proc/kallsyms", "addresses zeroed");
    else
        escaped("/proc/kallsyms", std::string("kernel addresses visible: ") + sym);
    if (ks) fclose(ks);
    char host[64] = {};
    gethostname(host, sizeof(host));
    if (std::string(host) == "cordon")
        blocked("hostname", host);
    else
        escaped("hostname", host);
}

void attack_knobs() {
    for (const char* p :
         {"/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe", "/proc/sysrq-trigger",
          "/proc/sys/fs/binfmt_misc/register", "/sys/kernel/uevent_helper",
          "/proc/sys/vm/drop_caches", "/proc/sys/kernel/hostname", "/proc/sys/kernel/pid_max",
          "/sys/kernel/mm/transparent_hugepage/enabled"}) {
        int fd = open(p, O_WRONLY);
        if (fd >= 0) {
            ssize_t w = write(fd, "1", 1);
            if (w < 0 && (errno == EACCES || errno == EPERM || errno == EROFS)) {
                blocked(std::string("write ") + p, strerror(errno));
            } else if (w < 0) {
                blocked(std::string("write ") + p, std::string("write: ") + strerror(errno));
            } else {
                escaped(std::string("write ") + p, "written");
            }
            close(fd);
        } else {
            blocked(std::string("open ") + p, strerror(errno));
        }
    }
}

void attack_cgroups() {
    DIR* d = opendir("/sys/fs/cgroup");
    int entries = 0;
    while (dirent* e = d ? readdir(d) : nullptr)
        if (e->d_name[0] != '.') ++entries;
    if (d) closedir(d);
    info("/sys/fs/cgroup entries", std::to_string(entries));
    for (const char* p :
         {"/sys/fs/cgroup/cgroup.procs", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max",
          "/sys/fs/cgroup/unified/cgroup.procs", "/sys/fs/cgroup/cgroup.subtree_control"}) {
        int fd = open(p, O_WRONLY);
        if (fd >= 0) {
            if (write(fd, "0", 1) < 0)
                blocked(std::string("write ") + p, strerror(errno));
            else
                escaped(std::string("write ") + p, "written");
            close(fd);
        } else {
            blocked(std::string("open ") + p, strerror(errno));
        }
    }
    expect_fail("mount cgroup (release_agent)", mount("cgroup", "/tmp", "cgroup", 0, "rdma"),
                ERRS(EPERM));
}

void attack_fds() {
    DIR* d = opendir("/proc/self/fd");
    int self = d ? dirfd(d) : -1;
    std::string extra;
    while (dirent* e = d ? readdir(d) : nullptr) {
        if (e->d_name[0] == '.') continue;
        int fd = atoi(e->d_name);
        if (fd <= 2 || fd == self) continue;
        char target[256] = {};
        readlink(("/proc/self/fd/" + std::string(e->d_name)).c_str(), target, sizeof(target) - 1);
        extra += std::string(e->d_name) + "->" + target + " ";
    }
    if (d) closedir(d);
    if (extra.empty())
        blocked("inherited fds", "only 0-2");
    else
        escaped("inherited fds", extra);
    char cwd[4096] = {};
    if (getcwd(cwd, sizeof(cwd)))
        blocked("cwd", cwd);
    else
        escaped("cwd", std::string("unreachable cwd: ") + strerror(errno));
    // Climbing from the cwd or a std fd stays inside the new root.
    int up = open("../../../../../../..", O_RDONLY | O_DIRECTORY);
    struct stat a, b;
    if (up >= 0 && fstat(up, &a) == 0 && stat("/", &b) == 0 && a.st_ino == b.st_ino &&
        a.st_dev == b.st_dev)
        blocked("climb ../..", "reaches the sandbox root only");
    else if (up >= 0)
        escaped("climb ../..", "reached something other than the sandbox root");
    // Reopening stdio through /proc/self/fd gives a pipe, never a host file.
    for (int fd = 0; fd <= 2; ++fd) {
        struct stat st;
        if (fstat(fd, &st) == 0 && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode) &&
            !S_ISSOCK(st.st_mode))
            escaped("stdio " + std::to_string(fd), "is a regular file or directory");
    }
}

void sweep(const std::string& dir, int depth, std::vector<std::string>& sockets, int& visited) {
    if (depth > 12 || visited > 200000) return;
    DIR* d = opendir(dir.c_str());
    if (!d) return;
    while (dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        std::string p = (dir == "/" ? "" : dir) + "/" + name;
        if (p == "/proc" || p == "/sys") continue;
        ++visited;
        struct stat st;
        if (lstat(p.c_str(), &st) != 0) continue;
        if (S_ISSOCK(st.st_mode))
            sockets.push_back(p);
        else if (S_ISDIR(st.st_mode))
            sweep(p, depth + 1, sockets, visited);
    }
    closedir(d);
}

bool unix_connect(const std::string& path, bool abstract) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    socklen_t len;
    if (abstract) {
        addr.sun_path[0] = '\0';
        memcpy(addr.sun_path + 1, path.data(), std::min(path.size(), sizeof(addr.sun_path) - 2));
        len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + path.size());
    } else {
        strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
        len = sizeof(addr);
    }
    bool ok = connect(s, reinterpret_cast<sockaddr*>(&addr), len) == 0;
    close(s);
    return ok;
}

void attack_unix(const char* abstract_name) {
    std::vector<std::string> sockets;
    int visited = 0;
    sweep("/", 0, sockets, visited);
    int connectable = 0;
    for (const auto& s : sockets) {
        if (unix_connect(s, false)) {
            escaped("connect " + s, "connected");
            ++connectable;
        }
    }
    if (connectable == 0)
        blocked("pathname socket sweep", std::to_string(sockets.size()) +
                                             " sockets, none connectable (" +
                                             std::to_string(visited) + " entries)");
    for (const char* p : {"/var/run/docker.sock", "/run/docker.sock", "/run/dbus/system_bus_socket",
                          "/tmp/.X11-unix/X0", "/run/user/0/bus", "/run/user/1001/bus"}) {
        if (unix_connect(p, false))
            escaped(std::string("connect ") + p, "connected");
        else
            blocked(std::string("connect ") + p, strerror(errno));
    }
    if (abstract_name) {
        if (unix_connect(abstract_name, true))
            escaped(std::string("connect @") + abstract_name, "connected");
        else
            blocked(std::string("connect @") + abstract_name, strerror(errno));
        FILE* f = fopen("/proc/net/unix", "r");
        char line[512];
        bool seen = false;
        while (f && fgets(line, sizeof(line), f))
            if (strstr(line, abstract_name)) seen = true;
        if (f) fclose(f);
        if (seen)
            escaped("/proc/net/unix", "lists the host's abstract socket");
        else
            blocked("/proc/net/unix", "host socket not listed");
    }
    for (const char* var : {"SSH_AUTH_SOCK", "GPG_AGENT_INFO", "DISPLAY", "WAYLAND_DISPLAY",
                            "DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR", "VSCODE_IPC_HOOK_CLI"}) {
        if (getenv(var)) escaped(std::string("env ") + var, getenv(var));
    }
}

// Landlock ABI 6 scoping: listens on an abstract socket until killed.
void listen_abstract(const char* name) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::size_t len = std::min(strlen(name), sizeof(addr.sun_path) - 2);
    memcpy(addr.sun_path + 1, name, len);
    if (bind(s, reinterpret_cast<sockaddr*>(&addr),
             static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + len)) != 0 ||
        listen(s, 4) != 0) {
        info("listen @" + std::string(name), strerror(errno));
        return;
    }
    info("listen @" + std::string(name), "listening");
    for (;;)
        pause();
}

void connect_abstract(const char* name) {
    if (unix_connect(name, true))
        escaped(std::string("connect @") + name, "connected across commands");
    else
        blocked(std::string("connect @") + name, strerror(errno));
}

void attack_tcp(int port) {
    for (const char* host : {"127.0.0.1", "10.0.2.2", "8.8.8.8", "169.254.169.254"}) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(static_cast<std::uint16_t>(port));
        inet_pton(AF_INET, host, &addr.sin_addr);
        int rc = connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
        if (rc == 0) {
            write(s, "LEAK", 4);
            escaped(std::string("tcp ") + host + ":" + std::to_string(port), "connected");
        } else {
            blocked(std::string("tcp ") + host + ":" + std::to_string(port), strerror(errno));
        }
        close(s);
    }
    int s6 = socket(AF_INET6, SOCK_STREAM, 0);
    sockaddr_in6 a6{};
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(static_cast<std::uint16_t>(port));
    a6.sin6_addr = in6addr_loopback;
    if (connect(s6, reinterpret_cast<sockaddr*>(&a6), sizeof(a6)) == 0)
        escaped("tcp [::1]", "connected");
    else
        blocked("tcp [::1]", strerror(errno));
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(53);
    inet_pton(AF_INET, "8.8.8.8", &addr.sin_addr);
    if (sendto(u, "q", 1, 0, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) >= 0)
        escaped("udp 8.8.8.8:53", "sent");
    else
        blocked("udp 8.8.8.8:53", strerror(errno));
}

void print_read(const std::string& what, int fd) {
    if (fd < 0) return blocked(what, strerror(errno));
    char buf[256];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0) return blocked(what, std::string("read: ") + strerror(errno));
    buf[n] = 0;
    // The test checks the printed bytes against the real secret.
    info(what,
         "read " + std::to_string(n) + " bytes: " + std::string(buf, static_cast<std::size_t>(n)));
}

// Every spelling of one path.
void attack_read(const std::string& path) {
    auto base = path.substr(path.rfind('/') + 1);
    auto dir = path.substr(0, path.rfind('/'));
    std::vector<std::string> spellings = {path,
                                          "/proc/self/root" + path,
                                          "/proc/1/root" + path,
                                          "/" + path,
                                          dir + "/./" + base,
                                          dir + "/../" + dir.substr(dir.rfind('/') + 1) + "/" +
                                              base,
                                          "/proc/thread-self/root" + path};
    for (const auto& s : spellings)
        print_read("read " + s, open(s.c_str(), O_RDONLY));
    int opath = open(path.c_str(), O_PATH);
    if (opath >= 0) {
        std::string via = "/proc/self/fd/" + std::to_string(opath);
        print_read("O_PATH reopen " + path, open(via.c_str(), O_RDONLY));
    } else {
        blocked("O_PATH " + path, strerror(errno));
    }
    // A symlink and a hard link made from inside.
    std::string link = "/tmp/cordon-link-" + std::to_string(getpid());
    if (symlink(path.c_str(), link.c_str()) == 0)
        print_read("symlink to " + path, open(link.c_str(), O_RDONLY));
    std::string hard = "/tmp/cordon-hard-" + std::to_string(getpid());
    if (::link(path.c_str(), hard.c_str()) == 0)
        print_read("hard link to " + path, open(hard.c_str(), O_RDONLY));
    else
        blocked("link " + path, strerror(errno));
}

void attack_write(const std::string& path, const std::string& content) {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) return blocked("write " + path, strerror(errno));
    if (write(fd, content.data(), content.size()) < 0)
        blocked("write " + path, strerror(errno));
    else
        info("write " + path, "written inside the sandbox");
    close(fd);
}

void attack_forkbomb(int max) {
    int made = 0;
    int err = 0;
    std::vector<pid_t> kids;
    for (int i = 0; i < max; ++i) {
        pid_t p = fork();
        if (p == 0) {
            pause();
            _exit(0);
        }
        if (p < 0) {
            err = errno;
            break;
        }
        kids.push_back(p);
        ++made;
    }
    info("forkbomb",
         "forked " + std::to_string(made) + (err ? std::string(" then ") + strerror(err) : ""));
    fflush(stdout);
    for (pid_t p : kids)
        kill(p, SIGKILL);
    for (pid_t p : kids)
        waitpid(p, nullptr, 0);
}

void attack_memory(long mb) {
    long got = 0;
    for (long i = 0; i < mb; ++i) {
        void* p =
            mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) break;
        memset(p, 1, 1 << 20);
        ++got;
    }
    info("memory", "allocated " + std::to_string(got) + " MiB");
}

void attack_flood(long mb) {
    std::string chunk(1 << 16, 'A');
    for (long i = 0; i < mb * 16; ++i) {
        if (write(1, chunk.data(), chunk.size()) < 0) break;
    }
}

// Leaves daemons behind in every way: double fork + setsid, a renamed argv, ignoring
// SIGTERM/SIGHUP; each sleeps with `marker` in its argv (checked on the host).
void attack_daemons(const char* marker) {
    for (int i = 0; i < 3; ++i) {
        pid_t p = fork();
        if (p == 0) {
            setsid();
            if (fork() == 0) {
                signal(SIGTERM, SIG_IGN);
                signal(SIGHUP, SIG_IGN);
                std::string script = std::string("/bin/sleep 1000; : ") + marker;
                execl("/bin/sh", "sh", "-c", script.c_str(), (char*)nullptr);
                _exit(1);
            }
            _exit(0);
        }
        waitpid(p, nullptr, 0);
    }
    info("daemons", "started");
}

} // namespace

int main(int argc, char** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: cordon-attack NAME [ARGS]\n");
        return 2;
    }
    std::string name = argv[1];
    const char* a = argc > 2 ? argv[2] : nullptr;
    const char* b = argc > 3 ? argv[3] : nullptr;
    if (name == "tiocsti")
        attack_tiocsti();
    else if (name == "tioclinux")
        attack_tioclinux();
    else if (name == "namespaces")
        attack_namespaces();
    else if (name == "syscalls")
        attack_syscalls();
    else if (name == "sockets")
        attack_sockets();
    else if (name == "mounts")
        attack_mounts(a ? a : "/proc/kcore");
    else if (name == "privileges")
        attack_privileges();
    else if (name == "proc")
        attack_proc();
    else if (name == "knobs")
        attack_knobs();
    else if (name == "cgroups")
        attack_cgroups();
    else if (name == "fds")
        attack_fds();
    else if (name == "unix")
        attack_unix(a);
    else if (name == "tcp")
        attack_tcp(a ? atoi(a) : 80);
    else if (name == "listen-abstract")
        listen_abstract(a ? a : "cordon");
    else if (name == "connect-abstract")
        connect_abstract(a ? a : "cordon");
    else if (name == "read")
        attack_read(a ? a : "/etc/shadow");
    else if (name == "write")
        attack_write(a ? a : "/tmp/x", b ? b : "pwned\n");
    else if (name == "forkbomb")
        attack_forkbomb(a ? atoi(a) : 1000);
    else if (name == "memory")
        attack_memory(a ? atol(a) : 1024);
    else if (name == "flood")
        attack_flood(a ? atol(a) : 64);
    else if (name == "daemons")
        attack_daemons(a ? a : "cordon-marker");
    else {
        fprintf(stderr, "unknown attack %s\n", name.c_str());
        return 2;
    }
    return failures == 0 ? 0 : 1;
}
