#include "cordon/server/changes/apply.hpp"

#include "cordon/server/changes/hash.hpp"
#include "cordon/server/changes/protected_paths.hpp"
#include "cordon/server/changes/request_path.hpp"
#include "internal.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

namespace cordon::server::changes {

using namespace detail;

namespace {

std::string random_hex(std::size_t bytes) {
    std::string raw(bytes, '\0');
    if (::getrandom(raw.data(), raw.size(), 0) != static_cast<ssize_t>(raw.size()))
        throw std::runtime_error("getrandom failed");
    static const char* d = "0123456789abcdef";
    std::string out;
    for (unsigned char c : raw) {
        out += d[c >> 4];
        out += d[c & 15];
    }
    return out;
}

bool valid_hash(const std::string& h) {
    if (h.empty()) return true;
    if (h.size() != 64) return false;
    return std::all_of(h.begin(), h.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// The state of `name` in `dirfd`: type, full hash (symlink: of its target).
struct Current {
    EntryType type = EntryType::absent;
    std::string hash;
};

Current current_at(int dirfd, const std::string& name, const Limits& l) {
    Current c;
    EntryStat st = stat_at(dirfd, name);
    c.type = st.type;
    if (st.type == EntryType::symlink) {
        c.hash = sha256_hex(read_link_at(dirfd, name));
    } else if (st.type == EntryType::file) {
        if (st.size > l.max_file_bytes) throw FsError(EFBIG, name, "real file too large");
        UniqueFd fd = open_at(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, Resolve::strict);
        Sha256 h;
        char buf[1 << 16];
        for (;;) {
            ssize_t n = ::read(fd.get(), buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) throw FsError(errno, name, "cannot read");
            if (n == 0) break;
            h.update(std::string_view(buf, static_cast<std::size_t>(n)));
        }
        c.hash = h.hex();
    }
    return c;
}

// Does `target`, as the symlink at `rel` would resolve it lexically, stay in the workspace?
bool link_target_inside(const std::string& workspace, const std::string& rel,
                        const std::string& target) {
    if (target.empty()) return false;
    std::vector<std::string> stack;
    std::vector<std::string> comps = split_rel(target);
    if (target[0] == '/') {
        auto ws = split_rel(workspace);
        if (comps.size() < ws.size() || !std::equal(ws.begin(), ws.end(), comps.begin()))
            return false;
        comps.erase(comps.begin(), comps.begin() + static_cast<std::ptrdiff_t>(ws.size()));
    } else {
        stack = split_rel(split_parent(rel).first);
    }
    for (const auto& c : comps) {
        if (c == ".") continue;
        if (c == "..") {
            if (stack.empty()) return false;
            stack.pop_back();
            continue;
        }
        stack.push_back(c);
    }
    return true;
}

// Removes `name` in `dirfd` when it is a tree of empty directories only.
bool remove_empty_tree(int dirfd, const std::string& name, int depth = 0) {
    if (depth > 256) return false;
    int fd = openat2_raw(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, Resolve::strict);
    if (fd < 0) return false;
    UniqueFd d(fd);
    for (const auto& child : list_dir(d.get())) {
        if (stat_at(d.get(), child).type != EntryType::dir) return false;
        if (!remove_empty_tree(d.get(), child, depth + 1)) return false;
    }
    return ::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) == 0;
}

// Removes everything at `name` in `dirfd` (never following links).
void remove_tree(int dirfd, const std::string& name, int depth = 0) {
    EntryStat st = stat_at(dirfd, name);
    if (st.type == EntryType::absent) return;
    if (st.type == EntryType::dir) {
        if (depth > 512) /* one fd per level: stay under RLIMIT_NOFILE */
            throw FsError(ELOOP, name, "tree deeper than 512 levels, not removed");
        UniqueFd d = open_at(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, Resolve::strict);
        for (const auto& child : list_dir(d.get()))
            remove_tree(d.get(), child, depth + 1);
        if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
            throw FsError(errno, name, "cannot remove directory");
    } else if (::unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT) {
        throw FsError(errno, name, "cannot remove");
    }
}

std::string reason_of(const FsError& e, const std::string& what) {
    switch (e.err) {
    case ELOOP:
        return what + ": '" + e.path + "' is a symlink in the real workspace (never followed)";
    case ENOTDIR:
        return what + ": '" + e.path + "' is not a directory in the real workspace";
    case EXDEV:
        return what + ": '" + e.path + "' crosses a mount point";
    default:
        return what + ": " + e.what();
    }
}

struct Journal {
    std::string prefix;
    std::set<std::string> dirs;
};

void write_journal(const SessionFiles& s, const Journal& j) {
    json doc = json::object();
    doc["prefix"] = j.prefix;
    doc["dirs"] = json(std::vector<std::string>(j.dirs.begin(), j.dirs.end()));
    write_file_atomic(s.state_dir, "apply.journal", doc.dump());
}

struct PlanItem {
    std::string path;
    std::string base_hash, new_hash;
    const FileChange* change = nullptr;
};

class Applier {
  public:
    Applier(const SessionFiles& s, const ApplyOptions& o, Roots& r, Journal& j, ApplyResult& res)
        : s_(s), o_(o), r_(r), j_(j), res_(res) {}

    void conflict(const std::string& path, const std::string& why) {
        res_.conflicts.push_back({path, why});
    }

    // Returns true when the real state now equals the request's new state.
    bool remove(const PlanItem& it) {
        auto [parent, name] = split_parent(it.path);
        // The sandbox must still not have it (it may have recreated it since the diff).
        Loaded sb;
        try {
            sb = load(r_.content.get(), it.path, o_.limits, false);
        } catch (const FsError&) {
            sb.side.type = EntryType::special;
        }
        if (sb.side.type != EntryType::absent || sb.raw == EntryType::special) {
            conflict(it.path, "the sandbox's file changed since the diff (newHash mismatch)");
            return false;
        }
        UniqueFd dir;
        try {
            dir = open_dir_chain(r_.real.get(), parent, false);
        } catch (const FsError& e) {
            if (e.err == ENOENT && it.base_hash.empty()) return true;
            conflict(it.path, e.err == ENOENT ? "the real file is gone (changed since the diff)"
                                              : reason_of(e, "cannot reach the real file"));
            return false;
        }
        Current cur;
        try {
            cur = current_at(dir.get(), name, o_.limits);
        } catch (const FsError& e) {
            conflict(it.path, reason_of(e, "cannot read the real file"));
            return false;
        }
        if (cur.type == EntryType::absent) {
            if (it.base_hash.empty()) return true;
            conflict(it.path, "the real file is gone (changed since the diff)");
            return false;
        }
        if (cur.type == EntryType::dir || cur.type == EntryType::special) {
            conflict(it.path, std::string("the real path is a ") + type_name(cur.type));
            return false;
        }
        if (cur.hash != it.base_hash) {
            conflict(it.path, "the real file changed since the diff (baseHash mismatch)");
            return false;
        }
        if (::unlinkat(dir.get(), name.c_str(), 0) != 0) {
            conflict(it.path, std::string("cannot delete: ") + std::strerror(errno));
            return false;
        }
        touched_dirs_.insert(parent);
        return true;
    }

    // After deletions: directories the sandbox no longer has, left empty, go too.
    void prune_dirs(const std::string& path) {
        std::string dir = split_parent(path).first;
        while (!dir.empty()) {
            Loaded sb = load(r_.content.get(), dir, o_.limits, false);
            if (sb.raw == EntryType::dir) break;
            auto [parent, name] = split_parent(dir);
            try {
                UniqueFd p = open_dir_chain(r_.real.get(), parent, false);
                if (::unlinkat(p.get(), name.c_str(), AT_REMOVEDIR) != 0) break;
            } catch (const FsError&) {
                break;
            }
            dir = parent;
        }
    }

    bool write(const PlanItem& it, std::size_t index) {
        auto [parent, name] = split_parent(it.path);
        // The sandbox's side: open it first, strictly (the upper or the sandbox view).
        UniqueFd src_dir;
        EntryStat sst;
        try {
            src_dir = open_dir_chain(r_.content.get(), parent, false);
            sst = stat_at(src_dir.get(), name);
        } catch (const FsError&) {
            sst = {};
        }
        if (sst.type != EntryType::file && sst.type != EntryType::symlink) {
            conflict(it.path, "the sandbox's file changed since the diff (now " +
                                  std::string(type_name(sst.type)) + ")");
            return false;
        }
        // The real side.
        UniqueFd dir;
        try {
            dir = open_dir_chain(r_.real.get(), parent, true);
        } catch (const FsError& e) {
            conflict(it.path, reason_of(e, "cannot reach the real directory"));
            return false;
        }
        touched_dirs_.insert(parent);
        if (j_.dirs.insert(parent).second) write_journal(s_, j_);
        Current cur;
        try {
            cur = current_at(dir.get(), name, o_.limits);
        } catch (const FsError& e) {
            conflict(it.path, reason_of(e, "cannot read the real file"));
            return false;
        }
        if (cur.type == EntryType::dir) {
            // dir -> file: the real directory's files were deleted above; empty dirs go.
            if (!it.base_hash.empty() || !remove_empty_tree(dir.get(), name)) {
                conflict(it.path, "a non-empty directory is in the way in the real workspace");
                return false;
            }
            cur = {};
        }
        if (cur.type == EntryType::special) {
            conflict(it.path, "a special file is in the way in the real workspace");
            return false;
        }
        if (cur.hash != it.base_hash) {
            conflict(it.path, "the real file changed since the diff (baseHash mismatch)");
            return false;
        }
        std::string tmp = j_.prefix + std::to_string(index);
        bool ok = sst.type == EntryType::symlink
                      ? stage_symlink(it, src_dir.get(), name, dir.get(), tmp)
                      : stage_file(it, src_dir.get(), name, dir.get(), tmp);
        if (!ok) return false;
        // Last check right before the rename: the user's bytes are never lost.
        Current again;
        try {
            again = current_at(dir.get(), name, o_.limits);
        } catch (const FsError&) {
            again.hash = "?";
        }
        if (again.hash != it.base_hash) {
            ::unlinkat(dir.get(), tmp.c_str(), 0);
            conflict(it.path, "the real file changed during apply (baseHash mismatch)");
            return false;
        }
        if (::renameat(dir.get(), tmp.c_str(), dir.get(), name.c_str()) != 0) {
            int e = errno;
            ::unlinkat(dir.get(), tmp.c_str(), 0);
            conflict(it.path, std::string("cannot rename into place: ") + std::strerror(e));
            return false;
        }
        return true;
    }

    void sync_dirs() {
        if (!o_.fsync) return;
        for (const auto& d : touched_dirs_) {
            try {
                UniqueFd fd = open_dir_chain(r_.real.get(), d, false);
                ::fsync(fd.get());
            } catch (const FsError&) {
            }
        }
    }

  private:
    bool stage_symlink(const PlanItem& it, int src_dir, const std::string& name, int dir,
                       const std::string& tmp) {
        std::string target;
        try {
            target = read_link_at(src_dir, name);
        } catch (const FsError& e) {
            conflict(it.path, reason_of(e, "cannot read the sandbox's symlink"));
            return false;
        }
        if (sha256_hex(target) != it.new_hash) {
            conflict(it.path, "the sandbox's file changed since the diff (newHash mismatch)");
            return false;
        }
        if (!link_target_inside(s_.workspace, it.path, target)) {
            conflict(it.path, "symlink target '" + printable_path(target) +
                                  "' leaves the workspace: refused");
            return false;
        }
        if (::symlinkat(target.c_str(), dir, tmp.c_str()) != 0) {
            conflict(it.path, std::string("cannot create symlink: ") + std::strerror(errno));
            return false;
        }
        return true;
    }

    bool stage_file(const PlanItem& it, int src_dir, const std::string& name, int dir,
                    const std::string& tmp) {
        UniqueFd src;
        struct stat st;
        try {
            src = open_at(src_dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, Resolve::strict);
        } catch (const FsError& e) {
            conflict(it.path, reason_of(e, "cannot open the sandbox's file"));
            return false;
        }
        if (::fstat(src.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
            conflict(it.path, "the sandbox's file is not a regular file");
            return false;
        }
        if (static_cast<std::uint64_t>(st.st_size) > o_.limits.max_file_bytes) {
            conflict(it.path, "the sandbox's file is larger than the cap");
            return false;
        }
        UniqueFd out(
            ::openat(dir, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!out) {
            conflict(it.path, std::string("cannot create temp file: ") + std::strerror(errno));
            return false;
        }
        auto fail = [&](const std::string& why) {
            ::unlinkat(dir, tmp.c_str(), 0);
            conflict(it.path, why);
            return false;
        };
        Sha256 h;
        std::uint64_t total = 0;
        char buf[1 << 16];
        for (;;) {
            ssize_t n = ::read(src.get(), buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0)
                return fail(std::string("cannot read the sandbox's file: ") + std::strerror(errno));
            if (n == 0) break;
            total += static_cast<std::uint64_t>(n);
            if (total > o_.limits.max_file_bytes)
                return fail("the sandbox's file grew over the cap");
            std::string_view chunk(buf, static_cast<std::size_t>(n));
            h.update(chunk);
            try {
                write_all(out.get(), chunk, it.path);
            } catch (const FsError& e) {
                return fail(std::string("cannot write: ") + std::strerror(e.err));
            }
        }
        if (h.hex() != it.new_hash)
            return fail("the sandbox's file changed since the diff (newHash mismatch)");
        // Mode kept without setuid/setgid/sticky; xattrs never copied.
        if (::fchmod(out.get(), st.st_mode & 0777) != 0)
            return fail(std::string("cannot chmod: ") + std::strerror(errno));
        if (o_.fsync && ::fsync(out.get()) != 0)
            return fail(std::string("cannot fsync: ") + std::strerror(errno));
        return true;
    }

    const SessionFiles& s_;
    const ApplyOptions& o_;
    Roots& r_;
    Journal& j_;
    ApplyResult& res_;
    std::set<std::string> touched_dirs_;
};

} // namespace

std::size_t recover_apply(const SessionFiles& s) {
    std::ifstream in(s.state_dir / "apply.journal");
    if (!in) return 0;
    std::size_t removed = 0;
    json doc;
    try {
        doc = json::parse(in);
    } catch (const std::exception&) {
        doc = json::object();
    }
    std::string prefix = doc.value("prefix", "");
    UniqueFd real(::open(s.workspace.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (real && prefix.rfind(".cordon-apply-", 0) == 0 && doc.contains("dirs") &&
        doc["dirs"].is_array()) {
        for (const auto& d : doc["dirs"]) {
            if (!d.is_string()) continue;
            try {
                UniqueFd dir = open_dir_chain(real.get(), d.get<std::string>(), false);
                for (const auto& name : list_dir(dir.get()))
                    if (name.rfind(prefix, 0) == 0 && ::unlinkat(dir.get(), name.c_str(), 0) == 0)
                        ++removed;
            } catch (const FsError&) {
            }
        }
    }
    ::unlink((s.state_dir / "apply.journal").c_str());
    return removed;
}

static ApplyResult apply_changes_unchecked(const SessionFiles& s, const ApplyRequest& req,
                                           const ApplyOptions& opts) {
    // 1. Every path is checked before anything is touched.
    std::vector<PlanItem> requested;
    std::set<std::string> seen;
    if (req.files) {
        for (std::size_t i = 0; i < req.files->size(); ++i) {
            const auto& f = (*req.files)[i];
            std::string field = "/files/" + std::to_string(i);
            std::string rel = validate_request_path(s.workspace, f.path, field + "/path");
            if (rel.empty())
                throw protocol::invalid_params(field + "/path", "the workspace root is not a file");
            if (!valid_hash(f.base_hash))
                throw protocol::invalid_params(field + "/baseHash", "not a SHA-256 hex digest");
            if (!valid_hash(f.new_hash))
                throw protocol::invalid_params(field + "/newHash", "not a SHA-256 hex digest");
            if (!seen.insert(rel).second)
                throw protocol::invalid_params(field + "/path", "'" + rel + "' is listed twice");
            requested.push_back({rel, f.base_hash, f.new_hash, nullptr});
        }
    }
    std::set<std::string> confirmed;
    for (std::size_t i = 0; i < req.confirm_protected.size(); ++i)
        confirmed.insert(validate_request_path(s.workspace, req.confirm_protected[i],
                                               "/confirmProtected/" + std::to_string(i)));

    recover_apply(s);
    DiffOptions dopts;
    dopts.with_patch = false;
    dopts.with_git = false;
    dopts.limits = opts.limits;
    ChangeSet now = compute_changes(s, dopts);
    std::map<std::string, const FileChange*> pending;
    for (const auto& f : now.files)
        pending[f.path] = &f;
    std::map<std::string, std::string> skipped;
    for (const auto& k : now.skipped)
        skipped.emplace(k.path, k.reason);

    ApplyResult res;
    Roots roots = open_roots(s);
    auto applied_state = load_applied(s.state_dir);

    std::vector<PlanItem> plan;
    if (!req.files) {
        for (const auto& f : now.files)
            plan.push_back({f.path, f.base.hash, f.sandbox.hash, &f});
    } else {
        for (auto& it : requested) {
            if (has_git_component(it.path)) {
                res.conflicts.push_back({it.path, "changes under .git are never applied"});
                continue;
            }
            auto p = pending.find(it.path);
            if (p == pending.end()) {
                if (auto k = skipped.find(it.path); k != skipped.end()) {
                    res.conflicts.push_back({it.path, "not appliable: " + k->second});
                    continue;
                }
                // Already in the requested state (a retried apply): nothing to write.
                Loaded real = load(roots.real.get(), it.path, opts.limits, false);
                Loaded sb = load(roots.content.get(), it.path, opts.limits, false);
                if (real.side.hash == it.new_hash && sb.side.hash == it.new_hash &&
                    real.side.type == sb.side.type) {
                    res.applied.push_back(it.path);
                    continue;
                }
                res.conflicts.push_back(
                    {it.path, "not a pending change (the sandbox's file changed since the diff, "
                              "or the path was never changed)"});
                continue;
            }
            it.change = p->second;
            plan.push_back(it);
        }
    }

    // 2. Protected paths need a per-file confirmation; hashes must match what is pending now.
    std::vector<PlanItem> deletions, writes;
    for (auto& it : plan) {
        if (is_protected_path(it.path) && !confirmed.count(it.path)) {
            res.protected_paths.push_back(it.path);
            continue;
        }
        if (it.change->sandbox.hash != it.new_hash) {
            res.conflicts.push_back(
                {it.path, "the sandbox's file changed since the diff (newHash mismatch)"});
            continue;
        }
        if (it.change->base.hash != it.base_hash) {
            res.conflicts.push_back(
                {it.path, "the real file changed since the diff (baseHash mismatch)"});
            continue;
        }
        (it.change->sandbox.type == EntryType::absent ? deletions : writes).push_back(it);
    }
    std::sort(deletions.begin(), deletions.end(),
              [](const PlanItem& a, const PlanItem& b) { return a.path > b.path; });
    std::sort(writes.begin(), writes.end(),
              [](const PlanItem& a, const PlanItem& b) { return a.path < b.path; });

    // 3. Write. The journal names the temp-file prefix and every directory that may hold
    // one, before the first temp file exists.
    Journal journal{".cordon-apply-" + random_hex(8) + "-", {}};
    std::size_t index = 0;
    Applier ap(s, opts, roots, journal, res);
    auto record = [&](const PlanItem& it) {
        res.applied.push_back(it.path);
        res.written.push_back({it.path, it.base_hash, it.new_hash});
        applied_state[it.path] = it.change->sandbox;
        if (opts.after_file) opts.after_file(index, it.path);
        ++index;
    };
    for (const auto& it : deletions)
        if (ap.remove(it)) record(it);
    for (const auto& it : deletions)
        ap.prune_dirs(it.path);
    for (const auto& it : writes)
        if (ap.write(it, index)) record(it);
    ap.sync_dirs();

    // 4. Applied paths leave the pending set while the sandbox keeps what was applied;
    // records the sandbox has moved away from are dropped.
    for (auto it = applied_state.begin(); it != applied_state.end();) {
        Loaded sb = load(roots.content.get(), it->first, opts.limits, false);
        if (sb.side.type != it->second.type || sb.side.hash != it->second.hash ||
            sb.side.mode != it->second.mode)
            it = applied_state.erase(it);
        else
            ++it;
    }
    save_applied(s.state_dir, applied_state);
    ::unlink((s.state_dir / "apply.journal").c_str());
    std::sort(res.applied.begin(), res.applied.end());
    std::sort(res.protected_paths.begin(), res.protected_paths.end());
    return res;
}

// ---- discard --------------------------------------------------------------------------

namespace {

bool is_opaque_fd(int fd) {
    char v[4];
    ssize_t n = ::fgetxattr(fd, "user.overlay.opaque", v, sizeof v);
    return n == 1 && v[0] == 'y';
}

// Makes the real file at `rel` visible again in an upper dir that hides it: the hiding
// ancestor becomes an opaque directory (its other real entries stay hidden) and the file is
// copied from the real workspace.
void restore_hidden(int upper, int real, const std::string& rel, const Limits& l) {
    auto comps = split_rel(rel);
    UniqueFd cur = open_dir_chain(upper, "", false);
    bool hidden = false;
    for (std::size_t i = 0; i + 1 < comps.size(); ++i) {
        const auto& c = comps[i];
        EntryStat st = stat_at(cur.get(), c);
        if (!hidden && st.type == EntryType::absent) return; // the real file shows through
        if (st.type != EntryType::dir) {
            if (st.type != EntryType::absent) remove_tree(cur.get(), c);
            if (::mkdirat(cur.get(), c.c_str(), 0755) != 0)
                throw FsError(errno, c, "cannot create upper directory");
            UniqueFd d =
                open_at(cur.get(), c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, Resolve::strict);
            if (!hidden && ::fsetxattr(d.get(), "user.overlay.opaque", "y", 1, 0) != 0)
                throw FsError(errno, c, "cannot mark opaque");
            hidden = true;
            cur = std::move(d);
            continue;
        }
        UniqueFd d = open_at(cur.get(), c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, Resolve::strict);
        if (is_opaque_fd(d.get())) hidden = true;
        cur = std::move(d);
    }
    if (!hidden) return;
    const std::string& name = comps.back();
    Loaded src = load(real, rel, l, true);
    if (src.side.type == EntryType::absent || src.too_large) return;
    std::string tmp = ".cordon-discard-" + random_hex(6);
    if (src.side.type == EntryType::symlink) {
        if (::symlinkat(src.data.c_str(), cur.get(), tmp.c_str()) != 0)
            throw FsError(errno, rel, "cannot restore symlink");
    } else {
        UniqueFd out(::openat(cur.get(), tmp.c_str(),
                              O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!out) throw FsError(errno, rel, "cannot restore");
        write_all(out.get(), src.data, rel);
        auto [parent, n] = split_parent(rel);
        UniqueFd rdir = open_dir_chain(real, parent, false);
        EntryStat rst = stat_at(rdir.get(), n);
        ::fchmod(out.get(), rst.mode & 0777);
    }
    if (::renameat(cur.get(), tmp.c_str(), cur.get(), name.c_str()) != 0)
        throw FsError(errno, rel, "cannot restore");
}

} // namespace

static std::vector<std::string>
discard_changes_offline_unchecked(const SessionFiles& s, const std::vector<std::string>& paths,
                                  const Limits& limits) {
    std::vector<std::string> rels;
    for (std::size_t i = 0; i < paths.size(); ++i)
        rels.push_back(validate_request_path(s.workspace, paths[i], "/paths/" + std::to_string(i)));
    Roots roots = open_roots(SessionFiles{s.workspace, -1, s.upper, s.state_dir});
    std::vector<std::string> out;
    if (!roots.upper) return out;
    auto applied = load_applied(s.state_dir);
    if (rels.empty()) {
        // Everything, .git included.
        DiffOptions d;
        d.with_patch = false;
        d.with_git = false;
        d.limits = limits;
        for (const auto& f :
             compute_changes(SessionFiles{s.workspace, -1, s.upper, s.state_dir}, d).files)
            out.push_back(f.path);
        for (const auto& name : list_dir(roots.upper.get()))
            remove_tree(roots.upper.get(), name);
        applied.clear();
        save_applied(s.state_dir, applied);
        return out;
    }
    DiffOptions d;
    d.with_patch = false;
    d.with_git = false;
    d.limits = limits;
    d.paths = rels;
    ChangeSet pending = compute_changes(SessionFiles{s.workspace, -1, s.upper, s.state_dir}, d);
    for (const auto& f : pending.files) {
        auto [parent, name] = split_parent(f.path);
        try {
            UniqueFd dir = open_dir_chain(roots.upper.get(), parent, false);
            remove_tree(dir.get(), name);
        } catch (const FsError& e) {
            if (e.err != ENOENT && e.err != ENOTDIR && e.err != ELOOP) throw;
        }
        restore_hidden(roots.upper.get(), roots.real.get(), f.path, limits);
        applied.erase(f.path);
        out.push_back(f.path);
    }
    save_applied(s.state_dir, applied);
    return out;
}

static std::vector<std::string>
discard_changes_through_view_unchecked(const SessionFiles& s, const std::vector<std::string>& paths,
                                       const Limits& limits) {
    std::vector<std::string> rels;
    for (std::size_t i = 0; i < paths.size(); ++i)
        rels.push_back(validate_request_path(s.workspace, paths[i], "/paths/" + std::to_string(i)));
    if (s.sandbox_root_fd < 0)
        throw protocol::RpcError(protocol::code::sandbox_unavailable,
                                 "discard through the sandbox needs a running sandbox",
                                 json{{"facility", "sandbox"}});
    Roots roots = open_roots(s);
    DiffOptions d;
    d.with_patch = false;
    d.with_git = false;
    d.limits = limits;
    d.paths = rels;
    ChangeSet pending = compute_changes(s, d);
    auto applied = load_applied(s.state_dir);
    std::vector<std::string> out;
    // Sandbox-only entries first (deepest first), then real content back (shallow first), so
    // that a file <-> directory change is undone in the right order.
    std::vector<const FileChange*> added, restore;
    for (const auto& f : pending.files)
        (f.base.type == EntryType::absent ? added : restore).push_back(&f);
    std::sort(added.begin(), added.end(),
              [](const FileChange* a, const FileChange* b) { return a->path > b->path; });
    int view = roots.content.get();
    for (const FileChange* f : added) {
        auto [parent, name] = split_parent(f->path);
        try {
            UniqueFd dir = open_dir_chain(view, parent, false);
            remove_tree(dir.get(), name);
        } catch (const FsError& e) {
            if (e.err != ENOENT && e.err != ENOTDIR && e.err != ELOOP) throw;
        }
        applied.erase(f->path);
        out.push_back(f->path);
    }
    for (const FileChange* f : restore) {
        Loaded real = load(roots.real.get(), f->path, limits, true);
        if (real.side.type == EntryType::absent || real.too_large) continue;
        auto [parent, name] = split_parent(f->path);
        // Make every parent a directory in the sandbox again.
        UniqueFd dir = open_dir_chain(view, "", false);
        for (const auto& c : split_rel(parent)) {
            EntryStat st = stat_at(dir.get(), c);
            if (st.type != EntryType::dir) {
                if (st.type != EntryType::absent) remove_tree(dir.get(), c);
                if (::mkdirat(dir.get(), c.c_str(), 0755) != 0 && errno != EEXIST)
                    throw FsError(errno, c, "cannot create directory in the sandbox");
            }
            dir = open_at(dir.get(), c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, Resolve::strict);
        }
        if (stat_at(dir.get(), name).type == EntryType::dir) remove_tree(dir.get(), name);
        std::string tmp = ".cordon-discard-" + random_hex(6);
        if (real.side.type == EntryType::symlink) {
            if (::symlinkat(real.data.c_str(), dir.get(), tmp.c_str()) != 0)
                throw FsError(errno, f->path, "cannot restore symlink");
        } else {
            UniqueFd o(::openat(dir.get(), tmp.c_str(),
                                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
            if (!o) throw FsError(errno, f->path, "cannot restore");
            write_all(o.get(), real.data, f->path);
            UniqueFd rdir = open_dir_chain(roots.real.get(), parent, false);
            ::fchmod(o.get(), stat_at(rdir.get(), name).mode & 0777);
        }
        if (::renameat(dir.get(), tmp.c_str(), dir.get(), name.c_str()) != 0) {
            int e = errno;
            ::unlinkat(dir.get(), tmp.c_str(), 0);
            throw FsError(e, f->path, "cannot restore");
        }
        applied[f->path] = real.side;
        out.push_back(f->path);
    }
    save_applied(s.state_dir, applied);
    std::sort(out.begin(), out.end());
    return out;
}

// ---- JSON ---------------------------------------------------------------------------

json audit_json(const ApplyResult& r) {
    json j = to_json(r);
    json written = json::array();
    for (const auto& w : r.written)
        written.push_back(
            json{{"path", w.path}, {"baseHash", w.base_hash}, {"newHash", w.new_hash}});
    j["written"] = std::move(written);
    return j;
}

json to_json(const ApplyResult& r) {
    json conflicts = json::array();
    for (const auto& c : r.conflicts)
        conflicts.push_back(json{{"path", c.path}, {"reason", c.reason}});
    json j = json::object();
    j["applied"] = r.applied;
    j["conflicts"] = std::move(conflicts);
    j["protected"] = r.protected_paths;
    return j;
}

ApplyRequest apply_request_from_json(const json& params) {
    ApplyRequest req;
    if (!params.is_object()) throw protocol::invalid_params("", "params must be an object");
    if (params.contains("files") && !params["files"].is_null()) {
        const json& files = params["files"];
        if (!files.is_array()) throw protocol::invalid_params("/files", "must be an array");
        req.files.emplace();
        for (std::size_t i = 0; i < files.size(); ++i) {
            const json& f = files[i];
            std::string at = "/files/" + std::to_string(i);
            if (!f.is_object()) throw protocol::invalid_params(at, "must be an object");
            ApplyFile af;
            for (auto [key, dst] :
                 {std::pair{"path", &af.path}, std::pair{"baseHash", &af.base_hash},
                  std::pair{"newHash", &af.new_hash}}) {
                if (!f.contains(key) || !f[key].is_string())
                    throw protocol::invalid_params(at + "/" + key, "must be a string");
                *dst = f[key].get<std::string>();
            }
            req.files->push_back(std::move(af));
        }
    }
    if (params.contains("confirmProtected") && !params["confirmProtected"].is_null()) {
        const json& c = params["confirmProtected"];
        if (!c.is_array()) throw protocol::invalid_params("/confirmProtected", "must be an array");
        for (std::size_t i = 0; i < c.size(); ++i) {
            if (!c[i].is_string())
                throw protocol::invalid_params("/confirmProtected/" + std::to_string(i),
                                               "must be a string");
            req.confirm_protected.push_back(c[i].get<std::string>());
        }
    }
    return req;
}

namespace {

// Runs one public entry point, turning a filesystem failure into -32603 naming the step.
template <class F> auto as_rpc_errors(const char* step, const char* what, F&& fn) {
    try {
        return fn();
    } catch (const FsError& e) {
        throw protocol::RpcError(
            protocol::code::internal_error, std::string(what) + ": " + e.what(),
            json{{"step", step}, {"errno", e.err}, {"path", printable_path(e.path)}});
    }
}

} // namespace

ApplyResult apply_changes(const SessionFiles& s, const ApplyRequest& req,
                          const ApplyOptions& opts) {
    return as_rpc_errors("apply_changes", "apply changes",
                         [&] { return apply_changes_unchecked(s, req, opts); });
}

std::vector<std::string> discard_changes_offline(const SessionFiles& s,
                                                 const std::vector<std::string>& paths,
                                                 const Limits& limits) {
    return as_rpc_errors("discard_changes_offline", "discard changes offline",
                         [&] { return discard_changes_offline_unchecked(s, paths, limits); });
}

std::vector<std::string> discard_changes_through_view(const SessionFiles& s,
                                                      const std::vector<std::string>& paths,
                                                      const Limits& limits) {
    return as_rpc_errors("discard_changes_through_view", "discard changes through view",
                         [&] { return discard_changes_through_view_unchecked(s, paths, limits); });
}

} // namespace cordon::server::changes
