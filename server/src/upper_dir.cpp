#include "cordon/server/upper_dir.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <set>

namespace cordon::server {

namespace fs = std::filesystem;

bool under_git_dir(const std::string& rel) {
    std::size_t start = 0;
    while (start <= rel.size()) {
        auto end = rel.find('/', start);
        auto comp = rel.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (comp == ".git") return true;
        if (end == std::string::npos) break;
        start = end + 1;
    }
    return false;
}

namespace {

bool is_opaque(int dirfd) {
    char v[4];
    for (const char* name : {"user.overlay.opaque", "trusted.overlay.opaque"}) {
        ssize_t n = fgetxattr(dirfd, name, v, sizeof v);
        if (n == 1 && v[0] == 'y') return true;
    }
    return false;
}

UpperEntry entry_of(const struct stat& st) {
    UpperEntry e;
    if (S_ISREG(st.st_mode))
        e.kind = UpperEntry::Kind::file;
    else if (S_ISLNK(st.st_mode))
        e.kind = UpperEntry::Kind::symlink;
    else if (S_ISDIR(st.st_mode))
        e.kind = UpperEntry::Kind::dir;
    else if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 0 && minor(st.st_rdev) == 0)
        e.kind = UpperEntry::Kind::whiteout;
    e.mtime_ns = st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    e.size = st.st_size;
    e.ino = st.st_ino;
    e.mode = st.st_mode;
    return e;
}

} // namespace

UpperSnapshot snapshot_upper(const fs::path& upper, std::size_t max_depth) {
    UpperSnapshot out;
    struct Dir {
        int fd;
        std::string rel;
        std::size_t depth;
    };
    int root = ::open(upper.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (root < 0) return out;
    std::vector<Dir> stack{{root, "", 0}};
    while (!stack.empty()) {
        Dir d = stack.back();
        stack.pop_back();
        DIR* dir = fdopendir(d.fd);
        if (!dir) {
            ::close(d.fd);
            continue;
        }
        while (auto* de = readdir(dir)) {
            std::string name = de->d_name;
            if (name == "." || name == "..") continue;
            struct stat st;
            if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
            std::string rel = d.rel.empty() ? name : d.rel + "/" + name;
            UpperEntry e = entry_of(st);
            if (e.kind == UpperEntry::Kind::dir) {
                int fd =
                    openat(dirfd(dir), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                if (fd >= 0) {
                    e.opaque = is_opaque(fd);
                    if (d.depth + 1 < max_depth)
                        stack.push_back({fd, rel, d.depth + 1});
                    else
                        ::close(fd);
                }
            }
            out.emplace(std::move(rel), e);
        }
        closedir(dir);
    }
    return out;
}

namespace {

bool same_content(const fs::path& a, const fs::path& b, std::uint64_t size) {
    if (size > (64u << 20)) return false; // large files: treat as changed
    int fa = ::open(a.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int fb = ::open(b.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    bool same = fa >= 0 && fb >= 0;
    char ba[65536], bb[65536];
    while (same) {
        ssize_t na = ::read(fa, ba, sizeof ba);
        ssize_t nb = ::read(fb, bb, sizeof bb);
        if (na != nb || na < 0)
            same = false;
        else if (na == 0)
            break;
        else
            same = std::equal(ba, ba + na, bb);
    }
    if (fa >= 0) ::close(fa);
    if (fb >= 0) ::close(fb);
    return same;
}

// Lower-dir files below `rel` (for opaque dirs and whited-out dirs), iteratively.
void lower_files_under(const fs::path& lower, const std::string& rel,
                       std::vector<std::string>& out) {
    std::error_code ec;
    fs::path base = lower / rel;
    if (!fs::is_directory(fs::symlink_status(base, ec))) return;
    for (auto it = fs::recursive_directory_iterator(base, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        auto st = it->symlink_status(ec);
        if (ec) break;
        if (fs::is_directory(st)) continue;
        out.push_back(rel + "/" + fs::relative(it->path(), base, ec).string());
    }
}

} // namespace

std::vector<PathChange> changes_from_upper(const UpperSnapshot& upper, const fs::path& upper_path,
                                           const fs::path& lower) {
    std::map<std::string, std::string> result;
    for (const auto& [rel, e] : upper) {
        if (under_git_dir(rel)) continue;
        struct stat lst;
        bool in_lower = ::lstat((lower / rel).c_str(), &lst) == 0;
        switch (e.kind) {
        case UpperEntry::Kind::whiteout: {
            if (!in_lower) break;
            if (S_ISDIR(lst.st_mode)) {
                std::vector<std::string> files;
                lower_files_under(lower, rel, files);
                for (auto& f : files)
                    if (!under_git_dir(f)) result[f] = "deleted";
            } else {
                result[rel] = "deleted";
            }
            break;
        }
        case UpperEntry::Kind::dir: {
            if (in_lower && !S_ISDIR(lst.st_mode)) result[rel] = "deleted"; // file -> dir
            if (e.opaque && in_lower && S_ISDIR(lst.st_mode)) {
                std::vector<std::string> files;
                lower_files_under(lower, rel, files);
                for (auto& f : files)
                    if (!upper.count(f) && !under_git_dir(f)) result[f] = "deleted";
            }
            break;
        }
        case UpperEntry::Kind::file:
        case UpperEntry::Kind::symlink: {
            if (!in_lower || S_ISDIR(lst.st_mode)) {
                result[rel] = "added";
                break;
            }
            bool same_type = (e.kind == UpperEntry::Kind::file) == S_ISREG(lst.st_mode) &&
                             (e.kind == UpperEntry::Kind::symlink) == S_ISLNK(lst.st_mode);
            bool same = same_type && (e.mode & 0777) == (lst.st_mode & 0777) &&
                        e.size == static_cast<std::uint64_t>(lst.st_size);
            if (same && e.kind == UpperEntry::Kind::file)
                same = same_content(lower / rel, upper_path / rel, e.size);
            if (same && e.kind == UpperEntry::Kind::symlink) {
                std::error_code ec1, ec2;
                same =
                    fs::read_symlink(lower / rel, ec1) == fs::read_symlink(upper_path / rel, ec2) &&
                    !ec1 && !ec2;
            }
            if (!same) result[rel] = "modified";
            break;
        }
        case UpperEntry::Kind::other:
            break; // special files are never carried over
        }
    }
    std::vector<PathChange> out;
    for (auto& [p, s] : result)
        out.push_back({p, s});
    return out;
}

std::vector<std::string> touched_between(const UpperSnapshot& before, const UpperSnapshot& after) {
    std::vector<std::string> out;
    for (const auto& [rel, e] : after) {
        auto it = before.find(rel);
        if (it == before.end() || it->second.mtime_ns != e.mtime_ns || it->second.size != e.size ||
            it->second.ino != e.ino || it->second.kind != e.kind || it->second.mode != e.mode)
            out.push_back(rel);
    }
    for (const auto& [rel, e] : before)
        if (!after.count(rel)) out.push_back(rel);
    return out;
}

} // namespace cordon::server
