// File-descriptor based path walking for the changes engine.
//
// Every path the engine touches is reached from a directory fd with openat2(2), one
// component at a time where creation is involved, so that no symlink, magic link, mount
// crossing or `..` redirects a read or a write. Errors are reported as FsError carrying the
// errno and the workspace-relative path that failed; callers turn them into RPC errors or
// apply conflicts.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cordon::server::changes {

// An owned file descriptor (-1 when empty).
class UniqueFd {
  public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& o) noexcept {
        if (this != &o) reset(std::exchange(o.fd_, -1));
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    int release() { return std::exchange(fd_, -1); }
    void reset(int fd = -1);

  private:
    int fd_ = -1;
};

struct FsError : std::runtime_error {
    int err;          // errno
    std::string path; // workspace-relative path (or what was being resolved)
    FsError(int e, std::string p, const std::string& what);
};

// Resolution modes.
//  strict:   RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV
//            (apply, diff, upper-dir reads: no symlink anywhere in the path)
//  beneath:  RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV
//            (fs/* tools: symlinks are followed while they stay beneath the workspace)
enum class Resolve { strict, beneath };

// openat2(dirfd, rel, flags | O_CLOEXEC, mode) with the given resolution; -1 + errno.
int openat2_raw(int dirfd, const std::string& rel, int flags, Resolve how, mode_t mode = 0);
// Same, throwing FsError on failure.
UniqueFd open_at(int dirfd, const std::string& rel, int flags, Resolve how, mode_t mode = 0);
// openat2 with RESOLVE_IN_ROOT (the sandbox root): used once to reach the workspace inside
// the sandbox's root directory.
UniqueFd open_in_root(int root_fd, const std::string& abs_path, int flags);

// Splits a validated relative path "a/b/c" into components.
std::vector<std::string> split_rel(std::string_view rel);
// "a/b/c" -> {"a/b", "c"}; "c" -> {"", "c"}.
std::pair<std::string, std::string> split_parent(const std::string& rel);

// Opens the directory `rel` beneath `root` one component at a time (O_RDONLY|O_DIRECTORY,
// strict resolution). With `create`, missing components are made with mkdirat(0755) and
// opened the same way (a component that appears concurrently is simply opened). A
// component that is a symlink or not a directory fails with ELOOP/ENOTDIR.
UniqueFd open_dir_chain(int root, const std::string& rel, bool create);

// What lies at `name` in `dirfd` (lstat semantics).
enum class EntryType { absent, file, symlink, dir, whiteout, special };
struct EntryStat {
    EntryType type = EntryType::absent;
    std::uint32_t mode = 0; // st_mode
    std::uint64_t size = 0; // apparent size
    std::uint64_t nlink = 0;
    dev_t rdev = 0;
};
EntryStat stat_at(int dirfd, const std::string& name);
EntryStat stat_of(const struct stat& st);
const char* type_name(EntryType t);

// Reads the whole of `fd` (up to max_bytes, else FsError EFBIG).
std::string read_fd(int fd, std::uint64_t max_bytes);
// readlinkat(dirfd, name).
std::string read_link_at(int dirfd, const std::string& name);
// Writes all of `data`; throws FsError.
void write_all(int fd, std::string_view data, const std::string& what);

// Directory listing of `dirfd` (names only, without "." and "..").
std::vector<std::string> list_dir(int dirfd);

} // namespace cordon::server::changes
