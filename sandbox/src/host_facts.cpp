// The impure half of the mount plan: look at the host once, before any namespace exists.
#include "cordon/sandbox/mount_plan.hpp"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fnmatch.h>
#include <ftw.h>
#include <glob.h>
#include <map>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

namespace cordon::sandbox {
namespace {

PathKind kind_of(const std::string& p) {
    struct stat st;
    if (lstat(p.c_str(), &st) != 0) return PathKind::Missing;
    if (S_ISDIR(st.st_mode)) return PathKind::Directory;
    if (S_ISREG(st.st_mode)) return PathKind::File;
    if (S_ISLNK(st.st_mode)) return PathKind::Symlink;
    return PathKind::Other;
}

void record(HostFacts& facts, const std::string& p) {
    if (facts.kinds.count(p)) return;
    PathKind k = kind_of(p);
    facts.kinds[p] = k;
    if (k == PathKind::Symlink) {
        char buf[PATH_MAX];
        if (realpath(p.c_str(), buf)) {
            facts.resolved[p] = buf;
            facts.kinds[buf] = kind_of(buf);
        }
    }
}

// State of the nftw() callbacks (the init is single-threaded).
const std::string* g_glob_pattern = nullptr;
std::vector<std::string>* g_glob_found = nullptr;
std::size_t g_glob_count = 0;

int visit_glob(const char* path, const struct stat*, int, FTW*) {
    if (++g_glob_count > 100000) return 1;
    if (fnmatch(g_glob_pattern->c_str(), path, 0) == 0) g_glob_found->emplace_back(path);
    return 0;
}

// Expands a glob: "*" within a component via glob(3); "**" by a bounded walk of the part
// before it, matching the rest with fnmatch without FNM_PATHNAME (so "*" spans "/").
std::vector<std::string> expand_glob(const std::string& pattern) {
    std::vector<std::string> out;
    auto star2 = pattern.find("**");
    if (star2 == std::string::npos) {
        glob_t g{};
        if (glob(pattern.c_str(), GLOB_NOSORT, nullptr, &g) == 0) {
            for (std::size_t i = 0; i < g.gl_pathc; ++i)
                out.emplace_back(g.gl_pathv[i]);
        }
        globfree(&g);
        return out;
    }
    std::string root = pattern.substr(0, pattern.rfind('/', star2));
    if (root.empty()) root = "/";
    g_glob_pattern = &pattern;
    g_glob_found = &out;
    g_glob_count = 0;
    nftw(root.c_str(), visit_glob, 32, FTW_PHYS | FTW_MOUNT);
    return out;
}

struct Inode {
    dev_t dev;
    ino_t ino;
    bool operator<(const Inode& o) const { return dev != o.dev ? dev < o.dev : ino < o.ino; }
};

// State for the nftw() callbacks (the init is single-threaded).
struct Scan {
    std::map<Inode, std::vector<std::string>> linked; // workspace files with st_nlink > 1
    std::vector<std::string>* hardlinks = nullptr;
    std::size_t max = 0;
    std::size_t count = 0;
    bool truncated = false;
    unsigned uid = 0, gid = 0;
    bool all_mapped = false;
    std::size_t foreign = 0;
    std::string foreign_example;
};
Scan* g_scan = nullptr;

int scan_workspace(const char* path, const struct stat* st, int type, FTW*) {
    Scan& s = *g_scan;
    if (++s.count > s.max) {
        s.truncated = true;
        return 1;
    }
    if (type == FTW_NS) return 0;
    if (!s.all_mapped && (st->st_uid != s.uid || st->st_gid != s.gid)) {
        if (s.foreign++ == 0) s.foreign_example = path;
    }
    if (S_ISREG(st->st_mode) && st->st_nlink > 1)
        s.linked[{st->st_dev, st->st_ino}].push_back(path);
    return 0;
}

// Walks a masked root; every masked inode also linked from the workspace is reported.
int collect_masked(const char*, const struct stat* st, int type, FTW*) {
    Scan& s = *g_scan;
    if (++s.count > 100000) return 1;
    if (type == FTW_F && S_ISREG(st->st_mode)) {
        auto it = s.linked.find({st->st_dev, st->st_ino});
        if (it != s.linked.end()) {
            s.hardlinks->insert(s.hardlinks->end(), it->second.begin(), it->second.end());
            s.linked.erase(it);
        }
    }
    return 0;
}

// The login name from /etc/passwd, read directly: no NSS modules loaded into the init
// (it is linked statically and starts in well under a millisecond). Falls back to "user".
std::string user_name(uid_t uid) {
    FILE* f = fopen("/etc/passwd", "re");
    if (!f) return "user";
    char line[1024];
    std::string name = "user";
    while (fgets(line, sizeof(line), f)) {
        char* first = std::strchr(line, ':');
        if (!first) continue;
        char* second = std::strchr(first + 1, ':');
        if (!second) continue;
        if (second[1] != ':' && std::strtoul(second + 1, nullptr, 10) == uid) {
            name.assign(line, first);
            break;
        }
    }
    fclose(f);
    return name;
}

} // namespace

std::string gather_host_facts(const SandboxSpec& spec, const FactOptions& opts, HostFacts& facts,
                              std::vector<std::string>& notes) {
    facts.user = user_name(geteuid());
    FactQuery q = fact_query(spec, facts.user);
    for (const auto& p : q.paths)
        record(facts, p);
    for (const auto& g : q.globs) {
        auto matches = expand_glob(g);
        for (const auto& m : matches)
            record(facts, m);
        facts.glob_matches[g] = std::move(matches);
    }

    // One bounded walk of the workspace: files whose owner the user namespace cannot map
    // (copy-up of those fails) and files with more than one link. Only when there are such
    // links are the masked roots walked, to find links to masked inodes (FS-02).
    struct stat ws_st;
    if (stat(spec.workspace.c_str(), &ws_st) != 0)
        return "workspace " + spec.workspace + " is not accessible";
    Scan scan;
    g_scan = &scan;
    scan.hardlinks = &facts.hardlinks_to_masked;
    scan.max = opts.max_scan_entries;
    scan.uid = opts.caller_uid;
    scan.gid = static_cast<unsigned>(getegid());
    scan.all_mapped = opts.all_uids_mapped;
    nftw(spec.workspace.c_str(), scan_workspace, 32, FTW_PHYS | FTW_MOUNT);
    auto masked_paths = [&](const std::string& root) {
        auto it = facts.glob_matches.find(root);
        return it != facts.glob_matches.end() ? it->second : std::vector<std::string>{root};
    };
    bool secrets_on_workspace_fs = false;
    for (const auto& root : q.masked_roots) {
        for (const auto& p : masked_paths(root)) {
            struct stat st;
            if (lstat(p.c_str(), &st) != 0 || st.st_dev != ws_st.st_dev) continue;
            secrets_on_workspace_fs = true;
            if (!scan.linked.empty()) {
                scan.count = 0;
                nftw(p.c_str(), collect_masked, 16, FTW_PHYS);
            }
        }
    }
    g_scan = nullptr;
    if (scan.truncated && secrets_on_workspace_fs) {
        return "workspace has more than " + std::to_string(opts.max_scan_entries) +
               " entries on the same filesystem as masked secrets: cannot rule out hard links "
               "to them";
    }
    if (scan.truncated) {
        notes.push_back("workspace ownership scan stopped after " +
                        std::to_string(opts.max_scan_entries) + " entries");
    }
    if (scan.foreign > 0) {
        notes.push_back(std::to_string(scan.foreign) +
                        " workspace entries are owned by another user or group (e.g. " +
                        scan.foreign_example +
                        "); inside the sandbox they show as nobody and modifying them fails "
                        "(overlay copy-up cannot preserve an unmapped owner)");
    }
    if (!facts.hardlinks_to_masked.empty()) {
        notes.push_back(std::to_string(facts.hardlinks_to_masked.size()) +
                        " workspace file(s) are hard links to masked secrets and are masked "
                        "(e.g. " +
                        facts.hardlinks_to_masked.front() + ")");
    }
    return "";
}

} // namespace cordon::sandbox
