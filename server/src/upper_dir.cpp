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
