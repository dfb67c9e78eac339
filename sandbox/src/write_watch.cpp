// Refused filesystem writes, seen by the init through the seccomp notifications of the
// `writes` filter (seccomp.cpp). Reporting only: the call always continues, and the
// mounts and Landlock decide. The init resolves paths in its own view, which is the
// payloads' (same mount namespace and root).
#include "cordon/sandbox/mount_plan.hpp"
#include "steps.hpp"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace cordon::sandbox::steps {
namespace {

std::string read_link(const std::string& p) {
    char buf[PATH_MAX];
    ssize_t n = readlink(p.c_str(), buf, sizeof(buf) - 1);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// A NUL-terminated string from the target's memory (at most PATH_MAX bytes).
std::optional<std::string> read_string(int mem_fd, std::uint64_t addr) {
    std::string out;
    char buf[256];
    while (out.size() < PATH_MAX) {
        ssize_t n = pread(mem_fd, buf, sizeof(buf), static_cast<off_t>(addr + out.size()));
        if (n <= 0) return std::nullopt;
        for (ssize_t i = 0; i < n; ++i) {
            if (buf[i] == '\0') return out;
            out.push_back(buf[i]);
        }
    }
    return std::nullopt;
}

struct Shape {
    long nr;
    const char* operation;
    int dirfd_arg; // -1: relative to the cwd
    int path_arg;
    int dirfd2_arg = -1; // second path (rename/link target), or -1
    int path2_arg = -1;
};

// Which arguments hold the path(s) a write-like call changes.
const Shape* shape_of(long nr) {
    static const Shape shapes[] = {
#ifdef SYS_open
        {SYS_open, "open for writing", -1, 0},
        {SYS_creat, "create", -1, 0},
        {SYS_mkdir, "mkdir", -1, 0},
        {SYS_unlink, "unlink", -1, 0},
        {SYS_rmdir, "rmdir", -1, 0},
        {SYS_rename, "rename", -1, 0, -1, 1},
        {SYS_link, "link", -1, 1},
        {SYS_symlink, "symlink", -1, 1},
        {SYS_mknod, "mknod", -1, 0},
#endif
        {SYS_openat, "open for writing", 0, 1},
        {SYS_mkdirat, "mkdir", 0, 1},
        {SYS_unlinkat, "unlink", 0, 1},
        {SYS_renameat, "rename", 0, 1, 2, 3},
#ifdef SYS_renameat2
        {SYS_renameat2, "rename", 0, 1, 2, 3},
#endif
        {SYS_linkat, "link", 2, 3},
        {SYS_symlinkat, "symlink", 1, 2},
        {SYS_mknodat, "mknod", 0, 1},
        {SYS_truncate, "truncate", -1, 0},
#ifdef SYS_chmod
        {SYS_chmod, "chmod", -1, 0},
        {SYS_chown, "chown", -1, 0},
        {SYS_lchown, "chown", -1, 0},
#endif
        {SYS_fchmodat, "chmod", 0, 1},
#ifdef SYS_fchmodat2
        {SYS_fchmodat2, "chmod", 0, 1},
#endif
        {SYS_fchownat, "chown", 0, 1},
        {SYS_utimensat, "set times", 0, 1}, // a NULL path (futimens) is skipped
        {SYS_setxattr, "set xattr", -1, 0},
        {SYS_lsetxattr, "set xattr", -1, 0},
        {SYS_removexattr, "remove xattr", -1, 0},
        {SYS_lremovexattr, "remove xattr", -1, 0},
    };
    for (const auto& s : shapes)
        if (s.nr == nr) return &s;
    return nullptr;
}

} // namespace

std::optional<WriteAttempt> read_write_attempt(pid_t pid, long nr, const std::uint64_t args[6]) {
    const Shape* shape = shape_of(nr);
    if (!shape) return std::nullopt;
    const std::string proc = "/proc/" + std::to_string(pid);
    int mem = open((proc + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
    if (mem < 0) return std::nullopt;
    WriteAttempt w;
    w.operation = shape->operation;
    for (auto [dirfd_arg, path_arg] : {std::pair{shape->dirfd_arg, shape->path_arg},
                                       std::pair{shape->dirfd2_arg, shape->path2_arg}}) {
        if (path_arg < 0) continue;
        auto path = read_string(mem, args[path_arg]);
        if (!path || path->empty()) continue;
        std::string abs = *path;
        if (abs[0] != '/') {
            int dirfd = dirfd_arg < 0 ? AT_FDCWD : static_cast<int>(args[dirfd_arg]);
            std::string base = dirfd == AT_FDCWD ? read_link(proc + "/cwd")
                                                 : read_link(proc + "/fd/" + std::to_string(dirfd));
            if (base.empty() || base[0] != '/') continue; // not a directory we can name
            abs = base + "/" + abs;
        }
        // "/proc/self" names the target, not us.
        if (abs.rfind("/proc/self/", 0) == 0) abs = proc + abs.substr(10);
        w.paths.push_back(normalize_path(abs)); // mount_plan.hpp
    }
    close(mem);
    if (w.paths.empty()) return std::nullopt;
    return w;
}

bool refused_write(const std::string& path, const std::vector<std::string>& writable) {
    if (path == "/proc" || path.rfind("/proc/", 0) == 0) return false; // not judged here
    // The place as this view resolves it (symlinks followed): the file itself when it
    // exists, else its directory.
    std::string resolved;
    char buf[PATH_MAX];
    struct stat st;
    if (lstat(path.c_str(), &st) == 0) {
        // Device nodes, fifos and sockets are written through, not changed.
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) return false;
        if (!realpath(path.c_str(), buf)) return false;
        resolved = buf;
        if (stat(resolved.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
            return false;
    } else {
        auto slash = path.rfind('/');
        std::string dir = slash == 0 ? "/" : path.substr(0, slash);
        if (!realpath(dir.c_str(), buf)) return false; // no such directory: fails anyway
        resolved = std::string(buf) + (std::string(buf) == "/" ? "" : "/") + path.substr(slash + 1);
    }
    if (resolved.rfind("/proc/", 0) == 0) return false;
    for (const auto& root : writable)
        if (path_within(resolved, root)) return false;
    return true;
}

} // namespace cordon::sandbox::steps
