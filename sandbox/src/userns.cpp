#include "steps.hpp"

#include <cerrno>
#include <fcntl.h>
#include <sched.h>
#include <string>
#include <sys/prctl.h>
#include <unistd.h>

namespace cordon::sandbox::steps {

SetupError failure(std::string step, int err, std::string path, std::string fix) {
    SetupError e;
    e.step = std::move(step);
    e.err = err;
    e.path = std::move(path);
    e.fix = std::move(fix);
    return e;
}

namespace {

std::string read_small(const char* path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "";
    char buf[64];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
}

int write_file(const std::string& path, const std::string& content) {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    ssize_t n = write(fd, content.data(), content.size());
    int err = n == static_cast<ssize_t>(content.size()) ? 0 : (n < 0 ? errno : EIO);
    close(fd);
    return err;
}

} // namespace

std::string userns_fix(int err) {
    if (read_small("/proc/sys/kernel/unprivileged_userns_clone").rfind("0", 0) == 0)
        return "sysctl -w kernel.unprivileged_userns_clone=1";
    if (read_small("/proc/sys/user/max_user_namespaces").rfind("0", 0) == 0)
        return "sysctl -w user.max_user_namespaces=15000";
    if (read_small("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").rfind("1", 0) == 0)
        return "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or install an AppArmor "
               "profile allowing userns for cordon-sandbox";
    if (err == ENOSPC) return "sysctl -w user.max_user_namespaces=15000 (limit reached)";
    return "enable user namespaces (CONFIG_USER_NS=y); inside a container, allow unshare/clone "
           "in its seccomp profile";
}

Result enter_namespaces() {
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS) != 0) {
        int e = errno;
        return failure("userns", e, "", userns_fix(e));
    }
    return std::nullopt;
}

Result write_id_maps(uid_t uid, gid_t gid, bool full_range) {
    (void)full_range; // a process cannot map more than its own ids into its own userns
    const std::string uid_map = std::to_string(uid) + " " + std::to_string(uid) + " 1\n";
    const std::string gid_map = std::to_string(gid) + " " + std::to_string(gid) + " 1\n";
    if (int e = write_file("/proc/self/setgroups", "deny"); e && e != ENOENT)
        return failure("userns", e, "/proc/self/setgroups", "kernel >= 3.19 required");
    if (int e = write_file("/proc/self/uid_map", uid_map))
        return failure("userns", e, "/proc/self/uid_map", userns_fix(e));
    if (int e = write_file("/proc/self/gid_map", gid_map))
        return failure("userns", e, "/proc/self/gid_map", userns_fix(e));
    return std::nullopt;
}

Result lock_mounts(uid_t uid, gid_t gid, bool full_range) {
    // The id maps of a non-dumpable process are owned by the initial namespace's root, which
    // the caller cannot open: become dumpable for the two writes (no payload exists yet).
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    Result r;
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
        int e = errno;
        r = failure("lock-mounts", e, "", userns_fix(e) + " (nested user namespace)");
    } else {
        r = write_id_maps(uid, gid, full_range);
        if (r) r->step = "lock-mounts";
    }
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    return r;
}

} // namespace cordon::sandbox::steps
