// probe_host: each facility is tried for real in a short-lived child (no setup is left
// behind), so `cordon doctor` reports what session/create would hit. Takes a few ms.
#include "cordon/sandbox/sandbox.hpp"
#include "steps.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace cordon::sandbox {
namespace {

// Runs `fn` in a forked child; returns its result (an errno, 0 for success).
int in_child(const std::function<int()>& fn) {
    pid_t pid = fork();
    if (pid < 0) return errno;
    if (pid == 0) _exit(fn() & 0xff);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return EINTR;
}

// Reads up to 4 KiB (no iostreams: this runs in every session start).
std::string read_small(const char* path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "";
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
}

int write_file(const char* path, const std::string& s) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    int e = write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size()) ? 0 : errno;
    close(fd);
    return e;
}

} // namespace

bool cgroup_delegated(std::string& detail) {
    std::string all = read_small("/proc/self/cgroup"), path;
    for (std::size_t i = 0; i < all.size();) {
        std::size_t j = all.find('\n', i);
        if (j == std::string::npos) j = all.size();
        if (all.compare(i, 3, "0::") == 0) path = all.substr(i + 3, j - i - 3);
        i = j + 1;
    }
    if (path.empty()) {
        detail = "no cgroup v2 hierarchy for this process";
        return false;
    }
    for (const char* mnt : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
        std::string dir = std::string(mnt) + (path == "/" ? "" : path);
        if (access((dir + "/cgroup.controllers").c_str(), R_OK) != 0) continue;
        std::string controllers = read_small((dir + "/cgroup.controllers").c_str());
        bool pids = controllers.find("pids") != std::string::npos;
        bool memory = controllers.find("memory") != std::string::npos;
        if (!pids || !memory) {
            detail = "cgroup " + dir + " has controllers [" +
                     controllers.substr(0, controllers.find('\n')) + "], needs pids and memory";
            return false;
        }
        if (access((dir + "/cgroup.subtree_control").c_str(), W_OK) != 0) {
            detail = "cgroup " + dir + " is not writable by this user";
            return false;
        }
        detail = "delegated cgroup " + dir;
        return true;
    }
    detail = "no cgroup v2 mount with this process's cgroup";
    return false;
}

std::vector<Facility> probe_host() {
    std::vector<Facility> out;
    const uid_t uid = getuid();
    const gid_t gid = getgid();
    const std::string uid_map = std::to_string(uid) + " " + std::to_string(uid) + " 1\n";
    const std::string gid_map = std::to_string(gid) + " " + std::to_string(gid) + " 1\n";
    auto enter_userns = [&]() -> int {
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
                    CLONE_NEWUTS) != 0)
            return errno;
        write_file("/proc/self/setgroups", "deny");
        if (int e = write_file("/proc/self/uid_map", uid_map)) return e;
        if (int e = write_file("/proc/self/gid_map", gid_map)) return e;
        return 0;
    };

    Facility userns;
    userns.name = "userns";
    int e = in_child(enter_userns);
    userns.available = e == 0;
    userns.detail = e == 0 ? "user, mount, pid, net, ipc and uts namespaces"
                           : std::string("unshare: ") + strerror(e);
    if (e) userns.fix = steps::userns_fix(e);
    out.push_back(userns);

    Facility overlay;
    overlay.name = "overlay";
    e = userns.available ? in_child([&]() -> int {
        if (int r = enter_userns()) return r;
        if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return errno;
        if (mount("tmpfs", "/tmp", "tmpfs", 0, "size=1m") != 0) return errno;
        for (const char* d : {"/tmp/l", "/tmp/u", "/tmp/w", "/tmp/m"})
            if (mkdir(d, 0755) != 0) return errno;
        if (mount("overlay", "/tmp/m", "overlay", 0,
                  "lowerdir=/tmp/l,upperdir=/tmp/u,workdir=/tmp/w,userxattr") != 0)
            return errno;
        return 0;
    })
                         : ENOSYS;
    overlay.available = e == 0;
    overlay.detail = e == 0 ? "overlayfs with userxattr in a user namespace"
                            : std::string("mount overlay: ") + strerror(e);
    if (e)
        overlay.fix = userns.available ? "Linux >= 5.11 with CONFIG_OVERLAY_FS is required for "
                                         "overlayfs in a user namespace"
                                       : "enable user namespaces first";
    out.push_back(overlay);

    Facility seccomp;
    seccomp.name = "seccomp";
    e = in_child([]() -> int {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
        sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
        sock_fprog prog{1, &allow};
        return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0 ? 0 : errno;
    });
    seccomp.available = e == 0;
    seccomp.detail = e == 0 ? "seccomp-bpf filters" : std::string("seccomp: ") + strerror(e);
    if (e) seccomp.fix = "use a kernel built with CONFIG_SECCOMP_FILTER=y";
    out.push_back(seccomp);

    Facility landlock;
    landlock.name = "landlock";
    const int abi = steps::landlock_abi();
    e = abi > 0 ? in_child([]() -> int {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
        std::uint64_t handled = LANDLOCK_ACCESS_FS_WRITE_FILE;
        int fd =
            static_cast<int>(syscall(SYS_landlock_create_ruleset, &handled, sizeof(handled), 0));
        if (fd < 0) return errno;
        return syscall(SYS_landlock_restrict_self, fd, 0) == 0 ? 0 : errno;
    })
                : EOPNOTSUPP;
    landlock.available = e == 0;
    landlock.detail =
        e == 0 ? "Landlock ABI " + std::to_string(abi) : std::string("landlock: ") + strerror(e);
    if (e)
        landlock.fix = "boot with CONFIG_SECURITY_LANDLOCK=y and landlock in lsm= (e.g. "
                       "lsm=landlock,lockdown,yama,integrity,apparmor,bpf)";
    out.push_back(landlock);

    Facility cgroups;
    cgroups.name = "cgroups";
    cgroups.required = false;
    std::string detail;
    cgroups.available = false; // per-command cgroup limits are not implemented yet
    bool delegated = cgroup_delegated(detail);
    cgroups.detail = detail + (delegated ? " (not used yet: rlimits + pid namespaces)"
                                         : "; fallback: rlimits + pid namespaces");
    cgroups.fix = delegated ? ""
                            : "run cordon in a delegated cgroup, e.g. systemd-run --user "
                              "-p Delegate=yes --scope cordon serve";
    out.push_back(cgroups);
    return out;
}

} // namespace cordon::sandbox
