#include "cordon/server/changes/fd.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cordon::server::changes {

void UniqueFd::reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

FsError::FsError(int e, std::string p, const std::string& what)
    : std::runtime_error(what + " '" + p + "': " + std::strerror(e)), err(e), path(std::move(p)) {}

int openat2_raw(int dirfd, const std::string& rel, int flags, Resolve how, mode_t mode) {
    struct open_how oh {};
    oh.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
    oh.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    oh.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
    if (how == Resolve::strict) oh.resolve |= RESOLVE_NO_SYMLINKS;
    const char* p = rel.empty() ? "." : rel.c_str();
    long r;
    do {
        r = ::syscall(SYS_openat2, dirfd, p, &oh, sizeof oh);
    } while (r < 0 && (errno == EAGAIN || errno == EINTR));
    return static_cast<int>(r);
}

UniqueFd open_at(int dirfd, const std::string& rel, int flags, Resolve how, mode_t mode) {
    int fd = openat2_raw(dirfd, rel, flags, how, mode);
    if (fd < 0) throw FsError(errno, rel, "cannot open");
    return UniqueFd(fd);
}

UniqueFd open_in_root(int root_fd, const std::string& abs_path, int flags) {
    struct open_how oh {};
    oh.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
    oh.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS;
    long r;
    do {
        r = ::syscall(SYS_openat2, root_fd, abs_path.c_str(), &oh, sizeof oh);
    } while (r < 0 && (errno == EAGAIN || errno == EINTR));
    if (r < 0) throw FsError(errno, abs_path, "cannot open in sandbox root");
    return UniqueFd(static_cast<int>(r));
}

std::vector<std::string> split_rel(std::string_view rel) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= rel.size()) {
        auto end = rel.find('/', start);
        if (end == std::string_view::npos) end = rel.size();
        if (end > start) out.emplace_back(rel.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

std::pair<std::string, std::string> split_parent(const std::string& rel) {
    auto slash = rel.rfind('/');
    if (slash == std::string::npos) return {"", rel};
    return {rel.substr(0, slash), rel.substr(slash + 1)};
}

UniqueFd open_dir_chain(int root, const std::string& rel, bool create) {
    UniqueFd cur(openat2_raw(root, "", O_RDONLY | O_DIRECTORY, Resolve::strict));
    if (!cur) throw FsError(errno, "", "cannot open workspace");
    std::string done;
    for (const auto& comp : split_rel(rel)) {
        done = done.empty() ? comp : done + "/" + comp;
        int fd = openat2_raw(cur.get(), comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, Resolve::strict);
        if (fd < 0 && errno == ENOENT && create) {
            if (::mkdirat(cur.get(), comp.c_str(), 0755) != 0 && errno != EEXIST)
                throw FsError(errno, done, "cannot create directory");
            fd = openat2_raw(cur.get(), comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, Resolve::strict);
        }
        if (fd < 0) {
            int err = errno;
            struct stat st;
            if ((err == ENOTDIR || err == ELOOP) &&
                ::fstatat(cur.get(), comp.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
                err = S_ISLNK(st.st_mode) ? ELOOP : ENOTDIR;
            throw FsError(err, done, "cannot open directory");
        }
        cur.reset(fd);
    }
    return cur;
}

EntryStat stat_of(const struct stat& st) {
    EntryStat e;
    e.mode = st.st_mode;
    e.size = static_cast<std::uint64_t>(st.st_size);
    e.nlink = st.st_nlink;
    e.rdev = st.st_rdev;
    if (S_ISREG(st.st_mode))
        e.type = EntryType::file;
    else if (S_ISLNK(st.st_mode))
        e.type = EntryType::symlink;
    else if (S_ISDIR(st.st_mode))
        e.type = EntryType::dir;
    else if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 0 && minor(st.st_rdev) == 0)
        e.type = EntryType::whiteout;
    else
        e.type = EntryType::special;
    return e;
}

EntryStat stat_at(int dirfd, const std::string& name) {
    struct stat st;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) return {};
        throw FsError(errno, name, "cannot stat");
    }
    return stat_of(st);
}

const char* type_name(EntryType t) {
    switch (t) {
    case EntryType::absent:
        return "absent";
    case EntryType::file:
        return "file";
    case EntryType::symlink:
        return "symlink";
    case EntryType::dir:
        return "dir";
    case EntryType::whiteout:
        return "whiteout";
    case EntryType::special:
        return "special";
    }
    return "?";
}

std::string read_fd(int fd, std::uint64_t max_bytes) {
    std::string out;
    char buf[1 << 16];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw FsError(errno, "", "cannot read");
        }
        if (n == 0) break;
        if (out.size() + static_cast<std::size_t>(n) > max_bytes)
            throw FsError(EFBIG, "", "file too large");
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

std::string read_link_at(int dirfd, const std::string& name) {
    std::string buf(4096, '\0');
    ssize_t n = ::readlinkat(dirfd, name.c_str(), buf.data(), buf.size());
    if (n < 0) throw FsError(errno, name, "cannot read symlink");
    buf.resize(static_cast<std::size_t>(n));
    return buf;
}

void write_all(int fd, std::string_view data, const std::string& what) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            throw FsError(errno, what, "cannot write");
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

std::vector<std::string> list_dir(int dirfd) {
    std::vector<std::string> out;
    int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw FsError(errno, ".", "cannot list");
    DIR* d = ::fdopendir(fd);
    if (!d) {
        int e = errno;
        ::close(fd);
        throw FsError(e, ".", "cannot list");
    }
    while (auto* de = ::readdir(d)) {
        if (std::strcmp(de->d_name, ".") == 0 || std::strcmp(de->d_name, "..") == 0) continue;
        out.emplace_back(de->d_name);
    }
    ::closedir(d);
    return out;
}

} // namespace cordon::server::changes
