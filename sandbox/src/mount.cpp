// Executes a MountPlan. Targets are resolved under /newroot one component at a time with
// O_NOFOLLOW (a symlink planted in a persistent dir - private home, overlay upper - can never
// redirect a mount), and every mount is made on an fd (open_tree/move_mount or the
// /proc/self/fd magic link), never on a path string that could be swapped.
#include "steps.hpp"

#include <cerrno>
#include <fcntl.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace cordon::sandbox::steps {
namespace {

constexpr const char* kBase = "/tmp";
constexpr const char* kMaskFile = "/mask-file"; // empty, in the scratch root
int g_sysctl_kernel = -1; // /proc/sys/kernel of the fresh procfs, before it is made read-only

class Fd {
  public:
    explicit Fd(int fd = -1) : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    Fd& operator=(Fd&& o) noexcept {
        reset(o.fd_);
        o.fd_ = -1;
        return *this;
    }
    ~Fd() { reset(); }
    void reset(int fd = -1) {
        if (fd_ >= 0) close(fd_);
        fd_ = fd;
    }
    int get() const { return fd_; }

  private:
    int fd_;
};

std::string fd_path(int fd) {
    return "/oldroot/proc/self/fd/" + std::to_string(fd);
}

enum class Want { Existing, Directory, File };

// Opens `path` (absolute, inside the new root) as O_PATH, creating missing components as
// directories (and the last one as `want`). Returns an errno; ELOOP for any symlink.
int open_target(int root, const std::string& path, Want want, Fd& out) {
    Fd cur(fcntl(root, F_DUPFD_CLOEXEC, 0));
    if (cur.get() < 0) return errno;
    std::vector<std::string> parts;
    for (std::size_t i = 1; i <= path.size();) {
        std::size_t j = path.find('/', i);
        if (j == std::string::npos) j = path.size();
        if (j > i) parts.push_back(path.substr(i, j - i));
        i = j + 1;
    }
    for (std::size_t k = 0; k < parts.size(); ++k) {
        const bool last = k + 1 == parts.size();
        const char* name = parts[k].c_str();
        int flags = O_PATH | O_NOFOLLOW | O_CLOEXEC | (last ? 0 : O_DIRECTORY);
        int fd = openat(cur.get(), name, flags);
        if (fd < 0 && errno == ENOENT && want != Want::Existing) {
            if (!last || want == Want::Directory) {
                if (mkdirat(cur.get(), name, 0755) != 0 && errno != EEXIST) return errno;
            } else {
                int f = openat(cur.get(), name,
                               O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0444);
                if (f < 0) return errno;
                close(f);
            }
            fd = openat(cur.get(), name, flags);
        }
        if (fd < 0) return errno == ENOTDIR ? ELOOP : errno;
        struct stat st;
        if (fstat(fd, &st) != 0 || S_ISLNK(st.st_mode)) {
            close(fd);
            return ELOOP;
        }
        cur.reset(fd);
    }
    out = std::move(cur);
    return 0;
}

int set_attr(int fd, std::uint64_t set, bool recursive) {
    mount_attr attr{};
    attr.attr_set = set;
    unsigned flags = AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0);
    return syscall(SYS_mount_setattr, fd, "", flags, &attr, sizeof(attr)) == 0 ? 0 : errno;
}

// Clones the mount tree at `source` (a path in the init's current root), applies `attrs`
// recursively and attaches it on `target`.
int bind(const std::string& source, int root, const std::string& target, std::uint64_t attrs,
         bool recursive, bool optional, bool& skipped) {
    skipped = false;
    Fd tree(open_tree(AT_FDCWD, source.c_str(),
                      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0)));
    if (tree.get() < 0) {
        if (optional && errno == ENOENT) {
            skipped = true;
            return 0;
        }
        return errno;
    }
    struct stat st;
    if (fstat(tree.get(), &st) != 0) return errno;
    Fd dst;
    if (int e = open_target(root, target, S_ISDIR(st.st_mode) ? Want::Directory : Want::File, dst))
        return e;
    if (attrs) {
        if (int e = set_attr(tree.get(), attrs, recursive)) return e;
    }
    if (move_mount(tree.get(), "", dst.get(), "",
                   MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH))
        return errno;
    return 0;
}

std::string escape_overlay(const std::string& p) {
    std::string out;
    for (char c : p) {
        if (c == ',' || c == ':' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

Result run(const MountOp& op, int root) {
    const std::string& t = op.target;
    auto fail = [&](const char* step, int e, std::string fix = {}) {
        return failure(step, e, t, std::move(fix));
    };
    Fd dst;
    bool skipped = false;
    switch (op.kind) {
    case MountKind::BindReadOnly:
    case MountKind::BindReadWrite:
    case MountKind::DevNode: {
        std::string src = op.source.empty() ? "/newroot" + t : "/oldroot" + op.source;
        std::uint64_t attrs = MOUNT_ATTR_NOSUID;
        if (op.kind != MountKind::DevNode) attrs |= MOUNT_ATTR_NODEV;
        if (op.kind == MountKind::BindReadOnly) attrs |= MOUNT_ATTR_RDONLY;
        if (op.kind == MountKind::DevNode) attrs |= MOUNT_ATTR_NOEXEC;
        if (int e = bind(src, root, t, attrs, op.kind != MountKind::DevNode, op.optional, skipped))
            return fail("bind", e,
                        e == ELOOP ? "a symlink sits on the mount path; remove it from the "
                                     "session state dir"
                                   : "");
        return std::nullopt;
    }
    case MountKind::Tmpfs:
    case MountKind::Proc:
    case MountKind::Sysfs:
    case MountKind::Devpts: {
        if (int e = open_target(root, t, Want::Directory, dst)) return fail("mkdir", e);
        const char* type = op.kind == MountKind::Tmpfs   ? "tmpfs"
                           : op.kind == MountKind::Proc  ? "proc"
                           : op.kind == MountKind::Sysfs ? "sysfs"
                                                         : "devpts";
        unsigned long flags = MS_NOSUID | MS_NODEV;
        if (op.kind != MountKind::Tmpfs || t == "/dev" || t == "/run") flags |= MS_NOEXEC;
        if (op.kind == MountKind::Sysfs) flags |= MS_RDONLY;
        if (op.kind == MountKind::Devpts) flags &= ~static_cast<unsigned long>(MS_NODEV);
        if (mount(type, fd_path(dst.get()).c_str(), type, flags,
                  op.data.empty() ? nullptr : op.data.c_str()) != 0) {
            int e = errno;
            if (op.kind == MountKind::Proc)
                return fail("proc", e,
                            "procfs must be fully visible on the host (no masks over "
                            "/proc) for an unprivileged mount");
            return fail(type, e);
        }
        if (op.kind == MountKind::Proc && g_sysctl_kernel < 0)
            g_sysctl_kernel =
                open(("/newroot" + t + "/sys/kernel").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (op.read_only && op.kind == MountKind::Tmpfs) {
            Fd top;
            if (int e = open_target(root, t, Want::Existing, top)) return fail("remount", e);
            if (int e = set_attr(top.get(), MOUNT_ATTR_RDONLY, false)) return fail("remount", e);
        }
        return std::nullopt;
    }
    case MountKind::Overlay: {
        if (int e = open_target(root, t, Want::Directory, dst)) return fail("overlay", e);
        std::string opts = "lowerdir=" + escape_overlay("/oldroot" + op.source) +
                           ",upperdir=" + escape_overlay("/oldroot" + op.upper) +
                           ",workdir=" + escape_overlay("/oldroot" + op.work) + ",userxattr";
        if (mount("overlay", fd_path(dst.get()).c_str(), "overlay", MS_NOSUID | MS_NODEV,
                  opts.c_str()) != 0) {
            int e = errno;
            return failure("overlay", e, op.source,
                           "overlayfs in a user namespace needs Linux >= 5.11 and a state dir on a "
                           "filesystem with user.* xattrs (ext4, xfs, btrfs, tmpfs >= 6.6), not "
                           "on overlayfs/NFS; upper=" +
                               op.upper);
        }
        return std::nullopt;
    }
    case MountKind::Symlink: {
        auto slash = t.rfind('/');
        std::string parent = slash == 0 ? "/" : t.substr(0, slash);
        if (int e = open_target(root, parent, Want::Directory, dst)) return fail("symlink", e);
        if (symlinkat(op.source.c_str(), dst.get(), t.c_str() + slash + 1) != 0 && errno != EEXIST)
            return fail("symlink", errno);
        return std::nullopt;
    }
    case MountKind::MaskDirectory:
    case MountKind::MaskFile: {
        if (int e = open_target(root, t, Want::Existing, dst)) {
            if (op.optional && e == ENOENT) return std::nullopt;
            return fail("mask", e);
        }
        struct stat st;
        if (fstat(dst.get(), &st) != 0) return fail("mask", errno);
        if (S_ISDIR(st.st_mode)) {
            if (mount("tmpfs", fd_path(dst.get()).c_str(), "tmpfs",
                      MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      "mode=0555,size=4k,nr_inodes=2") != 0)
                return fail("mask", errno);
            return std::nullopt;
        }
        Fd tree(open_tree(AT_FDCWD, kMaskFile, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
        if (tree.get() < 0) return fail("mask", errno);
        if (int e = set_attr(tree.get(),
                             MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                 MOUNT_ATTR_NOEXEC,
                             false))
            return fail("mask", e);
        if (move_mount(tree.get(), "", dst.get(), "",
                       MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0)
            return fail("mask", errno);
        return std::nullopt;
    }
    case MountKind::RemountReadOnly: {
        if (int e = open_target(root, t, Want::Existing, dst)) return fail("remount", e);
        if (int e = set_attr(dst.get(), MOUNT_ATTR_RDONLY, false)) return fail("remount", e);
        return std::nullopt;
    }
    }
    return fail("mount-plan", EINVAL);
}

} // namespace

int sysctl_kernel_dir() {
    return g_sysctl_kernel;
}

Result make_mounts_private() {
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        return failure("mount-private", errno, "/");
    return std::nullopt;
}

Result prepare_new_root() {
    if (mount("tmpfs", kBase, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k,nr_inodes=16"))
        return failure("scratch-root", errno, kBase);
    if (chdir(kBase) != 0) return failure("scratch-root", errno, kBase);
    if (mkdir("newroot", 0755) != 0 || mkdir("oldroot", 0755) != 0)
        return failure("scratch-root", errno, kBase);
    int f = open("mask-file", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0444);
    if (f < 0) return failure("scratch-root", errno, "mask-file");
    close(f);
    if (syscall(SYS_pivot_root, kBase, "oldroot") != 0) return failure("pivot_root", errno, kBase);
    if (chdir("/") != 0) return failure("pivot_root", errno, "/");
    if (mount("tmpfs", "/newroot", "tmpfs", MS_NOSUID | MS_NODEV,
              "mode=0755,size=1m,nr_inodes=4096"))
        return failure("new-root", errno, "/newroot");
    return std::nullopt;
}

Result execute_mount_plan(const MountPlan& plan) {
    Fd root(open("/newroot", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (root.get() < 0) return failure("new-root", errno, "/newroot");
    for (const auto& op : plan.ops) {
        if (auto r = run(op, root.get())) return r;
    }
    return std::nullopt;
}

Result enter_new_root() {
    if (umount2("/oldroot", MNT_DETACH) != 0) return failure("pivot_root", errno, "/oldroot");
    if (chdir("/newroot") != 0) return failure("pivot_root", errno, "/newroot");
    if (syscall(SYS_pivot_root, ".", ".") != 0) return failure("pivot_root", errno, "/newroot");
    if (umount2(".", MNT_DETACH) != 0) return failure("pivot_root", errno, "/");
    if (chdir("/") != 0) return failure("pivot_root", errno, "/");
    return std::nullopt;
}

} // namespace cordon::sandbox::steps
