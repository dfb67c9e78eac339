#include "cordon/server/changes/diff.hpp"

#include "cordon/server/changes/fs_tools.hpp"
#include "cordon/server/changes/hash.hpp"
#include "cordon/server/changes/protected_paths.hpp"
#include "cordon/server/changes/request_path.hpp"
#include "internal.hpp"

#include <git2.h>
#include <git2/sys/mempack.h>
#include <git2/sys/repository.h>

#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>

namespace cordon::server::changes {

namespace detail {

void init_libgit2() {
    static std::once_flag once;
    std::call_once(once, [] {
        git_libgit2_init();
        // We only ever read repositories and never run anything from them (no hooks, no
        // filters, no external diff): ownership checks guard against what we never do.
        git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
    });
}

Roots open_roots(const SessionFiles& s) {
    Roots r;
    r.real.reset(::open(s.workspace.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!r.real)
        throw protocol::RpcError(protocol::code::internal_error,
                                 "cannot open the real workspace '" + s.workspace + "'",
                                 json{{"step", "open-workspace"}, {"errno", errno}});
    r.upper.reset(::open(s.upper.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!r.upper && errno != ENOENT)
        throw protocol::RpcError(protocol::code::internal_error,
                                 "cannot open the upper dir '" + s.upper.string() + "'",
                                 json{{"step", "open-upper"}, {"errno", errno}});
    if (s.sandbox_root_fd >= 0) {
        try {
            r.content = open_in_root(s.sandbox_root_fd, s.workspace, O_PATH | O_DIRECTORY);
        } catch (const FsError& e) {
            throw protocol::RpcError(
                protocol::code::sandbox_unavailable,
                std::string("cannot reach the workspace inside the sandbox: ") + e.what(),
                json{{"step", "open-sandbox-workspace"}, {"errno", e.err}});
        }
    } else if (r.upper) {
        r.content.reset(::dup(r.upper.get()));
    }
    return r;
}

std::uint32_t git_mode_of(const EntryStat& st) {
    if (st.type == EntryType::symlink) return 0120000;
    if (st.type == EntryType::file) return (st.mode & 0111) ? 0100755 : 0100644;
    return 0;
}

Loaded load(int root, const std::string& rel, const Limits& l, bool keep_data) {
    Loaded out;
    if (root < 0) return out;
    auto [parent, name] = split_parent(rel);
    UniqueFd dir;
    try {
        dir = open_dir_chain(root, parent, false);
    } catch (const FsError& e) {
        if (e.err == ENOENT || e.err == ENOTDIR || e.err == ELOOP || e.err == EXDEV) return out;
        throw;
    }
    EntryStat st = stat_at(dir.get(), name);
    out.raw = st.type;
    if (st.type != EntryType::file && st.type != EntryType::symlink) return out;
    out.side.type = st.type;
    out.side.mode = git_mode_of(st);
    out.side.size = st.size;
    if (st.size > l.max_file_bytes) {
        out.too_large = true;
        return out;
    }
    if (st.type == EntryType::symlink) {
        std::string target = read_link_at(dir.get(), name);
        out.side.hash = sha256_hex(target);
        out.side.size = target.size();
        if (keep_data) out.data = std::move(target);
        return out;
    }
    UniqueFd fd = open_at(dir.get(), name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, Resolve::strict);
    struct stat fst;
    if (::fstat(fd.get(), &fst) != 0 || !S_ISREG(fst.st_mode))
        throw FsError(EINVAL, rel, "changed type while reading");
    Sha256 h;
    char buf[1 << 16];
    std::uint64_t total = 0;
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw FsError(errno, rel, "cannot read");
        }
        if (n == 0) break;
        total += static_cast<std::uint64_t>(n);
        if (total > l.max_file_bytes) {
            out.too_large = true;
            out.data.clear();
            return out;
        }
        std::string_view chunk(buf, static_cast<std::size_t>(n));
        h.update(chunk);
        if (keep_data) out.data.append(chunk);
    }
    out.side.size = total;
    out.side.hash = h.hex();
    return out;
}

std::map<std::string, Side> load_applied(const std::filesystem::path& state_dir) {
    std::map<std::string, Side> m;
    std::ifstream in(state_dir / "applied.json");
    if (!in) return m;
    try {
        json j = json::parse(in);
        for (auto& [path, v] : j.at("files").items()) {
            Side s;
            std::string t = v.value("type", "absent");
            s.type = t == "file"      ? EntryType::file
                     : t == "symlink" ? EntryType::symlink
                                      : EntryType::absent;
            s.mode = v.value("mode", 0u);
            s.hash = v.value("hash", "");
            m.emplace(path, s);
        }
    } catch (const std::exception&) {
        // A damaged record only makes applied paths show as pending again: safe.
        m.clear();
    }
    return m;
}

void write_file_atomic(const std::filesystem::path& dir, const std::string& name,
                       const std::string& data) {
    UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!d) throw FsError(errno, dir.string(), "cannot open state dir");
    std::string tmp = "." + name + ".tmp";
    UniqueFd f(::openat(d.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                        0600));
    if (!f) throw FsError(errno, tmp, "cannot create");
    write_all(f.get(), data, tmp);
    if (::fsync(f.get()) != 0) throw FsError(errno, tmp, "cannot fsync");
    if (::renameat(d.get(), tmp.c_str(), d.get(), name.c_str()) != 0)
        throw FsError(errno, name, "cannot rename");
    ::fsync(d.get());
}

void save_applied(const std::filesystem::path& state_dir, const std::map<std::string, Side>& m) {
    json files = json::object();
    for (const auto& [path, s] : m)
        files[path] = json{{"type", type_name(s.type)}, {"mode", s.mode}, {"hash", s.hash}};
    json j = json::object();
    j["version"] = 1;
    j["files"] = std::move(files);
    write_file_atomic(state_dir, "applied.json", j.dump(1));
}

} // namespace detail

using namespace detail;

std::vector<std::string> content_warnings(std::string_view t) {
    bool bidi = false, zw = false, ansi = false, cr = false, ctl = false;
    for (std::size_t i = 0; i < t.size(); ++i) {
        auto c = static_cast<unsigned char>(t[i]);
        if (c == 0x1b) {
            ansi = true;
        } else if (c == '\r') {
            if (i + 1 >= t.size() || t[i + 1] != '\n') cr = true;
        } else if ((c < 0x20 && c != '\t' && c != '\n' && c != '\f') || c == 0x7f) {
            ctl = true;
        } else if (c == 0xc2 && i + 1 < t.size()) {
            auto d = static_cast<unsigned char>(t[i + 1]);
            if (d == 0x9b)
                ansi = true; // C1 CSI
            else if (d >= 0x80 && d <= 0x9f)
                ctl = true;
        } else if (c == 0xe2 && i + 2 < t.size()) {
            auto d = static_cast<unsigned char>(t[i + 1]), e = static_cast<unsigned char>(t[i + 2]);
            // U+202A..U+202E, U+2066..U+2069, U+200E/U+200F (marks); U+200B..U+200D, U+2060
            if (d == 0x80 && e >= 0xaa && e <= 0xae) bidi = true;
            if (d == 0x81 && e >= 0xa6 && e <= 0xa9) bidi = true;
            if (d == 0x80 && (e == 0x8e || e == 0x8f)) bidi = true;
            if (d == 0x80 && e >= 0x8b && e <= 0x8d) zw = true;
            if (d == 0x81 && e == 0xa0) zw = true;
        } else if (c == 0xef && i + 2 < t.size() && i > 0) {
            if (static_cast<unsigned char>(t[i + 1]) == 0xbb &&
                static_cast<unsigned char>(t[i + 2]) == 0xbf)
                zw = true; // U+FEFF not at the start
        }
    }
    std::vector<std::string> out;
    if (bidi) out.push_back("bidi-control");
    if (zw) out.push_back("zero-width");
    if (ansi) out.push_back("ansi-escape");
    if (cr) out.push_back("bare-cr");
    if (ctl) out.push_back("control-char");
    return out;
}

std::string git_mode_string(std::uint32_t mode) {
    if (mode == 0) return "";
    char b[16];
    std::snprintf(b, sizeof b, "%06o", mode);
    return b;
}

namespace {

bool is_opaque(int dirfd) {
    char v[4];
    for (const char* name : {"user.overlay.opaque", "trusted.overlay.opaque"}) {
        ssize_t n = ::fgetxattr(dirfd, name, v, sizeof v);
        if (n == 1 && v[0] == 'y') return true;
    }
    return false;
}

std::string join(const std::string& a, const std::string& b) {
    return a.empty() ? b : a + "/" + b;
}

std::string special_kind(const EntryStat& st) {
    if (S_ISFIFO(st.mode)) return "fifo";
    if (S_ISSOCK(st.mode)) return "socket";
    if (S_ISCHR(st.mode) || S_ISBLK(st.mode)) return "device";
    return "special";
}

struct UpperItem {
    EntryStat st;
    bool opaque = false;
};

struct Walk {
    std::map<std::string, UpperItem> items;
    std::vector<SkippedEntry> skipped;
    std::vector<std::string> git_dirs; // rel of every ".git" entry in the upper
};

// Iterative walk of a tree beneath `root` (strict resolution, never following symlinks).
// `visit(rel, stat, dirfd_of_entry_or_-1)` returns whether to descend into a directory.
template <class Visit>
void walk_tree(int root, const std::string& start, const Limits& l,
               std::vector<SkippedEntry>& skipped, Visit visit) {
    // Only the directory being listed holds an fd; pending ones are reopened from the root
    // (strictly, one component at a time), so a wide tree never exhausts descriptors.
    struct Dir {
        std::string rel;
        std::size_t depth;
    };
    std::vector<Dir> stack{{start, 0}};
    std::size_t seen = 0;
    while (!stack.empty()) {
        Dir d = std::move(stack.back());
        stack.pop_back();
        UniqueFd dfd;
        std::vector<std::string> names;
        try {
            dfd = open_dir_chain(root, d.rel, false);
            names = list_dir(dfd.get());
        } catch (const FsError& e) {
            if (d.rel != start)
                skipped.push_back(
                    {printable_path(d.rel), "dir", std::string("cannot list: ") + e.what()});
            continue;
        }
        std::sort(names.begin(), names.end());
        for (const auto& name : names) {
            std::string rel = join(d.rel, name);
            if (++seen > l.max_entries) {
                skipped.push_back(
                    {printable_path(d.rel), "dir",
                     "more than " + std::to_string(l.max_entries) + " entries: walk stopped"});
                return;
            }
            EntryStat st;
            try {
                st = stat_at(dfd.get(), name);
            } catch (const FsError&) {
                continue;
            }
            if (auto why = bad_name_reason(name)) {
                skipped.push_back({printable_path(rel), type_name(st.type), "name " + *why});
                continue;
            }
            bool descend;
            if (st.type == EntryType::dir) {
                int fd = openat2_raw(dfd.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW,
                                     Resolve::strict);
                if (fd < 0) {
                    skipped.push_back({printable_path(rel), "dir", "cannot open"});
                    continue;
                }
                UniqueFd sub(fd);
                descend = visit(rel, name, st, sub.get());
            } else {
                descend = visit(rel, name, st, -1);
            }
            if (descend && st.type == EntryType::dir) {
                if (d.depth + 1 >= l.max_depth) {
                    skipped.push_back(
                        {printable_path(rel), "dir",
                         "deeper than " + std::to_string(l.max_depth) + " levels: not examined"});
                    continue;
                }
                stack.push_back({rel, d.depth + 1});
            }
        }
    }
}

Walk walk_upper(int upper, const Limits& l) {
    Walk w;
    if (upper < 0) return w;
    walk_tree(upper, "", l, w.skipped,
              [&](const std::string& rel, const std::string& name, const EntryStat& st, int fd) {
                  if (name == ".git") {
                      w.git_dirs.push_back(rel);
                      return false;
                  }
                  UpperItem it{st, false};
                  if (st.type == EntryType::dir && fd >= 0) it.opaque = is_opaque(fd);
                  w.items.emplace(rel, it);
                  return st.type == EntryType::dir;
              });
    return w;
}

// Files and symlinks of the real tree below `rel` (never below a .git).
void real_files_under(int real, const std::string& rel, const Limits& l,
                      std::vector<SkippedEntry>& skipped, std::vector<std::string>& out) {
    walk_tree(real, rel, l, skipped,
              [&](const std::string& r, const std::string& name, const EntryStat& st, int) {
                  if (name == ".git") return false;
                  if (st.type == EntryType::file || st.type == EntryType::symlink) out.push_back(r);
                  return st.type == EntryType::dir;
              });
}

// Whether `path` is one of `filter`'s paths or below one of them. Looks up the path and each
// of its ancestors, so a large filter (exec reports every path a command touched) stays
// O(depth log n) per entry.
bool selected(const std::string& path, const std::set<std::string>& filter) {
    if (filter.empty() || filter.count("")) return true;
    for (std::size_t end = path.size();; end = path.rfind('/', end - 1)) {
        if (filter.count(path.substr(0, end))) return true;
        if (end == 0 || end == std::string::npos || path.rfind('/', end - 1) == std::string::npos)
            break;
    }
    return false;
}

bool looks_binary(const std::string& data) {
    return data.find('\0') != std::string::npos || !is_valid_utf8(data);
}

// ---- libgit2 helpers ----------------------------------------------------------------

template <class T, void (*F)(T*)> struct GitDel {
    void operator()(T* p) const { F(p); }
};
using RepoPtr = std::unique_ptr<git_repository, GitDel<git_repository, git_repository_free>>;
using OdbPtr = std::unique_ptr<git_odb, GitDel<git_odb, git_odb_free>>;
using IndexPtr = std::unique_ptr<git_index, GitDel<git_index, git_index_free>>;
using TreePtr = std::unique_ptr<git_tree, GitDel<git_tree, git_tree_free>>;
using DiffPtr = std::unique_ptr<git_diff, GitDel<git_diff, git_diff_free>>;
using PatchPtr = std::unique_ptr<git_patch, GitDel<git_patch, git_patch_free>>;
using CommitPtr = std::unique_ptr<git_commit, GitDel<git_commit, git_commit_free>>;
using WalkPtr = std::unique_ptr<git_revwalk, GitDel<git_revwalk, git_revwalk_free>>;

std::string git_err(const char* step) {
    const git_error* e = git_error_last();
    return std::string(step) + ": " + (e && e->message ? e->message : "libgit2 error");
}

struct PatchInput {
    FileChange* change;
    const std::string* base;
    const std::string* sandbox;
};

// Builds two in-memory trees (before/after) holding only the changed entries and lets
// libgit2 diff them: real git headers (modes, new/deleted file, symlinks, binary patches
// with full index lines) and hunks, nothing hand-written.
void make_patches(std::vector<PatchInput>& in, bool force_binary) {
    if (in.empty()) return;
    git_repository* raw_repo = nullptr;
    if (git_repository_new(&raw_repo) != 0) throw std::runtime_error(git_err("repository"));
    RepoPtr repo(raw_repo);
    git_odb* raw_odb = nullptr;
    git_odb_backend* mempack = nullptr;
    if (git_odb_new(&raw_odb) != 0) throw std::runtime_error(git_err("odb"));
    OdbPtr odb(raw_odb);
    if (git_mempack_new(&mempack) != 0 || git_odb_add_backend(odb.get(), mempack, 1) != 0)
        throw std::runtime_error(git_err("mempack"));
    git_repository_set_odb(repo.get(), odb.get());

    git_index *raw_old = nullptr, *raw_new = nullptr;
    git_index_new(&raw_old);
    git_index_new(&raw_new);
    IndexPtr old_idx(raw_old), new_idx(raw_new);
    std::map<std::string, PatchInput*> by_path;
    for (auto& p : in) {
        by_path[p.change->path] = &p;
        auto add = [&](git_index* idx, const Side& side, const std::string& data) {
            if (side.type == EntryType::absent) return;
            git_index_entry e{};
            if (git_blob_create_from_buffer(&e.id, repo.get(), data.data(), data.size()) != 0)
                throw std::runtime_error(git_err("blob"));
            e.mode = side.mode;
            e.path = p.change->path.c_str();
            if (git_index_add(idx, &e) != 0)
                throw std::runtime_error(git_err(("index " + p.change->path).c_str()));
        };
        add(old_idx.get(), p.change->base, *p.base);
        add(new_idx.get(), p.change->sandbox, *p.sandbox);
    }
    git_oid old_tree_id, new_tree_id;
    if (git_index_write_tree_to(&old_tree_id, old_idx.get(), repo.get()) != 0 ||
        git_index_write_tree_to(&new_tree_id, new_idx.get(), repo.get()) != 0)
        throw std::runtime_error(git_err("write tree"));
    git_tree *raw_ot = nullptr, *raw_nt = nullptr;
    git_tree_lookup(&raw_ot, repo.get(), &old_tree_id);
    git_tree_lookup(&raw_nt, repo.get(), &new_tree_id);
    TreePtr old_tree(raw_ot), new_tree(raw_nt);

    git_diff_options opts;
    git_diff_options_init(&opts, GIT_DIFF_OPTIONS_VERSION);
    opts.flags = GIT_DIFF_SHOW_BINARY;
    if (force_binary) opts.flags |= GIT_DIFF_FORCE_BINARY;
    opts.context_lines = 3;
    opts.id_abbrev = force_binary ? GIT_OID_HEXSZ : 7;
    git_diff* raw_diff = nullptr;
    if (git_diff_tree_to_tree(&raw_diff, repo.get(), old_tree.get(), new_tree.get(), &opts) != 0)
        throw std::runtime_error(git_err("diff"));
    DiffPtr diff(raw_diff);
    std::size_t n = git_diff_num_deltas(diff.get());
    for (std::size_t i = 0; i < n; ++i) {
        const git_diff_delta* d = git_diff_get_delta(diff.get(), i);
        const char* path = d->new_file.path ? d->new_file.path : d->old_file.path;
        auto it = by_path.find(path ? path : "");
        if (it == by_path.end()) continue;
        git_patch* raw_patch = nullptr;
        if (git_patch_from_diff(&raw_patch, diff.get(), i) != 0 || !raw_patch) continue;
        PatchPtr patch(raw_patch);
        git_buf buf = GIT_BUF_INIT;
        if (git_patch_to_buf(&buf, patch.get()) == 0) {
            it->second->change->unified.append(buf.ptr, buf.size);
            if (d->flags & GIT_DIFF_FLAG_BINARY) it->second->change->binary = true;
            std::size_t ctx = 0, adds = 0, dels = 0;
            if (git_patch_line_stats(&ctx, &adds, &dels, patch.get()) == 0) {
                it->second->change->additions += adds;
                it->second->change->deletions += dels;
            }
        }
        git_buf_dispose(&buf);
    }
}

// ---- the sandbox's repository -----------------------------------------------------------

std::string read_small(int dirfd, const std::string& rel) {
    try {
        UniqueFd fd = open_at(dirfd, rel, O_RDONLY | O_NOFOLLOW, Resolve::strict);
        return read_fd(fd.get(), 1 << 20);
    } catch (const FsError&) {
        return {};
    }
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
        s.pop_back();
    return s;
}

// The repository as the sandbox sees it: the real repository's objects plus the upper's
// `.git/objects` as an alternate; refs read from the upper first.
struct SandboxRepo {
    RepoPtr repo;
    git_oid real_head{};
    bool has_real_head = false;
    git_oid sandbox_head{};
    bool has_sandbox_head = false;
    std::string branch;
};

std::string resolve_ref_in_upper(int upper_git, const std::string& ref) {
    std::string direct = trim(read_small(upper_git, ref));
    if (!direct.empty()) return direct;
    std::string packed = read_small(upper_git, "packed-refs");
    std::size_t pos = 0;
    while (pos < packed.size()) {
        auto end = packed.find('\n', pos);
        if (end == std::string::npos) end = packed.size();
        std::string line = packed.substr(pos, end - pos);
        pos = end + 1;
        if (line.size() > 41 && line[40] == ' ' && line.substr(41) == ref)
            return line.substr(0, 40);
    }
    return {};
}

std::optional<SandboxRepo> open_sandbox_repo(const SessionFiles& s, int upper, std::string& error) {
    init_libgit2();
    SandboxRepo r;
    git_repository* raw = nullptr;
    if (git_repository_open_ext(&raw, s.workspace.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH,
                                nullptr) != 0) {
        error = git_err("open real repository");
        return std::nullopt;
    }
    r.repo.reset(raw);
    if (git_reference_name_to_id(&r.real_head, r.repo.get(), "HEAD") == 0) r.has_real_head = true;

    UniqueFd upper_git;
    try {
        upper_git = open_dir_chain(upper, ".git", false);
    } catch (const FsError&) {
    }
    if (upper_git) {
        git_odb* odb = nullptr;
        if (git_repository_odb(&odb, r.repo.get()) == 0) {
            std::string objects = (s.upper / ".git" / "objects").string();
            git_odb_add_disk_alternate(odb, objects.c_str());
            git_odb_free(odb);
        }
    }
    // HEAD: the upper's when the sandbox changed it, else the real one; a branch is
    // resolved in the upper's refs first (the sandbox committed on it), then the real ones.
    std::string head = upper_git ? trim(read_small(upper_git.get(), "HEAD")) : "";
    if (head.empty()) {
        git_reference* ref = nullptr;
        if (git_reference_lookup(&ref, r.repo.get(), "HEAD") == 0) {
            if (git_reference_type(ref) == GIT_REFERENCE_SYMBOLIC)
                head = std::string("ref: ") + git_reference_symbolic_target(ref);
            else if (const git_oid* t = git_reference_target(ref)) {
                char h[GIT_OID_HEXSZ + 1];
                head = git_oid_tostr(h, sizeof h, t);
            }
            git_reference_free(ref);
        }
    }
    std::string id;
    if (head.rfind("ref: ", 0) == 0) {
        r.branch = head.substr(5);
        if (upper_git) id = resolve_ref_in_upper(upper_git.get(), r.branch);
        if (id.empty()) {
            git_oid oid;
            if (git_reference_name_to_id(&oid, r.repo.get(), r.branch.c_str()) == 0) {
                r.sandbox_head = oid;
                r.has_sandbox_head = true;
            }
        }
    } else {
        id = head;
    }
    if (!id.empty() && git_oid_fromstr(&r.sandbox_head, id.c_str()) == 0) r.has_sandbox_head = true;
    return r;
}

GitSummary summarize_git(const SessionFiles& s, int upper,
                         const std::vector<std::string>& git_dirs) {
    GitSummary g;
    bool root = false;
    for (const auto& d : git_dirs) {
        if (d == ".git")
            root = true;
        else
            g.nested.push_back(d);
    }
    g.changed = !git_dirs.empty();
    if (!root) {
        g.available = !g.changed;
        if (g.changed) g.error = "only nested repositories changed";
        return g;
    }
    std::string error;
    auto r = open_sandbox_repo(s, upper, error);
    if (!r) {
        g.error = error;
        return g;
    }
    g.available = true;
    char hex[GIT_OID_HEXSZ + 1];
    if (r->has_real_head) g.real_head = git_oid_tostr(hex, sizeof hex, &r->real_head);
    if (r->has_sandbox_head) g.sandbox_head = git_oid_tostr(hex, sizeof hex, &r->sandbox_head);
    g.sandbox_branch = is_valid_utf8(r->branch) && !has_control_chars(r->branch)
                           ? r->branch
                           : printable_path(r->branch);
    g.head_moved = g.real_head != g.sandbox_head;
    if (!r->has_sandbox_head || !g.head_moved) return g;
    git_revwalk* raw_walk = nullptr;
    if (git_revwalk_new(&raw_walk, r->repo.get()) != 0) return g;
    WalkPtr walk(raw_walk);
    git_revwalk_sorting(walk.get(), GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME);
    if (git_revwalk_push(walk.get(), &r->sandbox_head) != 0) {
        g.error = git_err("sandbox HEAD");
        return g;
    }
    if (r->has_real_head) git_revwalk_hide(walk.get(), &r->real_head);
    git_oid oid;
    while (git_revwalk_next(&oid, walk.get()) == 0) {
        if (g.commits.size() >= 100) {
            g.commits_truncated = true;
            break;
        }
        git_commit* raw_c = nullptr;
        if (git_commit_lookup(&raw_c, r->repo.get(), &oid) != 0) break;
        CommitPtr c(raw_c);
        GitCommitInfo info;
        info.id = git_oid_tostr(hex, sizeof hex, &oid);
        const char* summary = git_commit_summary(c.get());
        info.summary = summary ? summary : "";
        if (!is_valid_utf8(info.summary)) info.summary = printable_path(info.summary);
        const git_signature* a = git_commit_author(c.get());
        if (a) {
            info.author =
                std::string(a->name ? a->name : "") + " <" + (a->email ? a->email : "") + ">";
            if (!is_valid_utf8(info.author)) info.author = printable_path(info.author);
            info.time = a->when.time;
        }
        g.commits.push_back(std::move(info));
    }
    return g;
}

} // namespace

static ChangeSet compute_changes_unchecked(const SessionFiles& s, const DiffOptions& opts) {
    const Limits& l = opts.limits;
    Roots roots = open_roots(s);
    ChangeSet out;
    Walk w = walk_upper(roots.upper.get(), l);
    out.skipped = std::move(w.skipped);

    std::set<std::string> candidates; // paths present in the sandbox as file/symlink (upper)
    std::set<std::string> deleted;    // real files the sandbox no longer has
    auto real_type = [&](const std::string& rel) {
        auto [parent, name] = split_parent(rel);
        try {
            UniqueFd dir = open_dir_chain(roots.real.get(), parent, false);
            return stat_at(dir.get(), name).type;
        } catch (const FsError&) {
            return EntryType::absent;
        }
    };
    auto delete_below = [&](const std::string& rel) {
        std::vector<std::string> files;
        real_files_under(roots.real.get(), rel, l, out.skipped, files);
        for (auto& f : files)
            if (!w.items.count(f)) deleted.insert(std::move(f));
    };
    for (const auto& [rel, it] : w.items) {
        switch (it.st.type) {
        case EntryType::whiteout: {
            EntryType t = real_type(rel);
            if (t == EntryType::file || t == EntryType::symlink)
                deleted.insert(rel);
            else if (t == EntryType::dir)
                delete_below(rel);
            break;
        }
        case EntryType::dir: {
            EntryType t = real_type(rel);
            if (t == EntryType::file || t == EntryType::symlink)
                deleted.insert(rel);
            else if (t == EntryType::dir && it.opaque)
                delete_below(rel);
            break;
        }
        case EntryType::file:
        case EntryType::symlink: {
            candidates.insert(rel);
            if (real_type(rel) == EntryType::dir) delete_below(rel);
            break;
        }
        case EntryType::special:
            out.skipped.push_back(
                {printable_path(rel), special_kind(it.st), "special files are never carried over"});
            break;
        case EntryType::absent:
            break;
        }
    }

    auto applied = load_applied(s.state_dir);
    struct Pending {
        FileChange change;
        std::string base_data, sandbox_data;
    };
    std::vector<Pending> pending;
    std::set<std::string> all(candidates.begin(), candidates.end());
    all.insert(deleted.begin(), deleted.end());
    const std::set<std::string> filter(opts.paths.begin(), opts.paths.end());
    for (const auto& rel : all) {
        if (!selected(rel, filter)) continue;
        Loaded base, sb;
        try {
            base = load(roots.real.get(), rel, l, opts.with_patch);
            if (candidates.count(rel)) sb = load(roots.content.get(), rel, l, opts.with_patch);
        } catch (const FsError& e) {
            out.skipped.push_back({printable_path(rel), "file", e.what()});
            continue;
        }
        // The upper has a file here but the sandbox's view shows none (a mask mounted over
        // it, or it changed while we read): never turn that into a deletion.
        if (candidates.count(rel) && !sb.too_large && sb.side.type == EntryType::absent) {
            out.skipped.push_back({rel, type_name(sb.raw),
                                   "not readable in the sandbox's view (masked, or changed "
                                   "while reading)"});
            continue;
        }
        if (base.too_large || sb.too_large) {
            out.skipped.push_back({rel, "file",
                                   "larger than " + std::to_string(l.max_file_bytes) +
                                       " bytes (apparent size): not read, not applied"});
            continue;
        }
        // In the sandbox a special file may sit where the upper walk saw a file (race) or the
        // real side may be a special file: never carried over either way.
        if (base.raw == EntryType::special || sb.raw == EntryType::special) {
            out.skipped.push_back({rel, "special", "special files are never carried over"});
            continue;
        }
        if (base.side.type == sb.side.type && base.side.mode == sb.side.mode &&
            base.side.hash == sb.side.hash)
            continue; // copied up but unchanged, or already applied
        if (auto a = applied.find(rel); a != applied.end() && a->second.type == sb.side.type &&
                                        a->second.mode == sb.side.mode &&
                                        a->second.hash == sb.side.hash)
            continue;
        bool unprintable = false;
        for (const Loaded* side : {&base, &sb})
            if (side->side.type == EntryType::symlink && opts.with_patch &&
                (!is_valid_utf8(side->data) || has_control_chars(side->data)))
                unprintable = true;
        if (unprintable) {
            out.skipped.push_back({rel, "symlink", "symlink target is not printable UTF-8"});
            continue;
        }
        {
            Pending p;
            p.change.path = rel;
            p.change.base = base.side;
            p.change.sandbox = sb.side;
            p.change.status = base.side.type == EntryType::absent ? "added"
                              : sb.side.type == EntryType::absent ? "deleted"
                                                                  : "modified";
            p.change.is_protected = is_protected_path(rel);
            p.change.binary = (base.side.type == EntryType::file && looks_binary(base.data)) ||
                              (sb.side.type == EntryType::file && looks_binary(sb.data));
            if (!p.change.binary && sb.side.type == EntryType::file)
                p.change.warnings = content_warnings(sb.data);
            p.base_data = std::move(base.data);
            p.sandbox_data = std::move(sb.data);
            pending.push_back(std::move(p));
        }
    }

    if (opts.with_patch && !pending.empty()) {
        init_libgit2();
        std::vector<PatchInput> text, binary;
        for (auto& p : pending)
            (p.change.binary ? binary : text).push_back({&p.change, &p.base_data, &p.sandbox_data});
        try {
            make_patches(text, false);
            make_patches(binary, true);
        } catch (const std::exception& e) {
            throw protocol::RpcError(protocol::code::internal_error,
                                     std::string("cannot build the diff: ") + e.what(),
                                     json{{"step", "patch"}});
        }
    }
    for (auto& p : pending) {
        if (opts.with_patch) out.patch += p.change.unified;
        out.files.push_back(std::move(p.change));
    }
    if (opts.with_git)
        out.git = summarize_git(s, roots.upper.get(), w.git_dirs);
    else
        out.git.changed = !w.git_dirs.empty();
    return out;
}

std::string export_git_series(const SessionFiles& s, std::size_t max_commits) {
    Roots roots = open_roots(s);
    std::string error;
    auto r = open_sandbox_repo(s, roots.upper.get(), error);
    if (!r || !r->has_sandbox_head) return {};
    git_revwalk* raw_walk = nullptr;
    if (git_revwalk_new(&raw_walk, r->repo.get()) != 0) return {};
    WalkPtr walk(raw_walk);
    git_revwalk_sorting(walk.get(), GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE);
    if (git_revwalk_push(walk.get(), &r->sandbox_head) != 0) return {};
    if (r->has_real_head) git_revwalk_hide(walk.get(), &r->real_head);
    std::vector<git_oid> ids;
    git_oid oid;
    while (git_revwalk_next(&oid, walk.get()) == 0 && ids.size() < max_commits)
        ids.push_back(oid);
    std::string out;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        git_commit* raw_c = nullptr;
        if (git_commit_lookup(&raw_c, r->repo.get(), &ids[i]) != 0) break;
        CommitPtr c(raw_c);
        // `git format-patch` numbering: [PATCH i/n] (plain [PATCH] for a single commit).
        git_tree *raw_tree = nullptr, *raw_parent_tree = nullptr;
        git_commit* raw_parent = nullptr;
        if (git_commit_tree(&raw_tree, c.get()) != 0) break;
        TreePtr tree(raw_tree);
        if (git_commit_parentcount(c.get()) > 0 &&
            git_commit_parent(&raw_parent, c.get(), 0) == 0) {
            CommitPtr parent(raw_parent);
            git_commit_tree(&raw_parent_tree, parent.get());
        }
        TreePtr parent_tree(raw_parent_tree);
        git_diff_options dopts;
        git_diff_options_init(&dopts, GIT_DIFF_OPTIONS_VERSION);
        dopts.flags = GIT_DIFF_SHOW_BINARY;
        git_diff* raw_diff = nullptr;
        if (git_diff_tree_to_tree(&raw_diff, r->repo.get(), parent_tree.get(), tree.get(),
                                  &dopts) != 0)
            break;
        DiffPtr diff(raw_diff);
        git_email_create_options eo = GIT_EMAIL_CREATE_OPTIONS_INIT;
        if (ids.size() == 1) eo.flags |= GIT_EMAIL_CREATE_OMIT_NUMBERS;
        git_buf buf = GIT_BUF_INIT;
        if (git_email_create_from_diff(&buf, diff.get(), i + 1, ids.size(), &ids[i],
                                       git_commit_summary(c.get()), git_commit_body(c.get()),
                                       git_commit_author(c.get()), &eo) == 0)
            out.append(buf.ptr, buf.size);
        git_buf_dispose(&buf);
    }
    return out;
}

DiffOptions diff_options_from_json(const json& params, const std::string& workspace) {
    DiffOptions o;
    if (!params.is_object() || !params.contains("paths") || params["paths"].is_null()) return o;
    const json& p = params["paths"];
    if (!p.is_array()) throw protocol::invalid_params("/paths", "must be an array");
    for (std::size_t i = 0; i < p.size(); ++i) {
        if (!p[i].is_string())
            throw protocol::invalid_params("/paths/" + std::to_string(i), "must be a string");
        o.paths.push_back(validate_request_path(workspace, p[i].get<std::string>(),
                                                "/paths/" + std::to_string(i)));
    }
    return o;
}

json to_json(const GitSummary& g) {
    json commits = json::array();
    for (const auto& c : g.commits)
        commits.push_back(
            json{{"id", c.id}, {"summary", c.summary}, {"author", c.author}, {"time", c.time}});
    json j = json::object();
    j["changed"] = g.changed;
    j["available"] = g.available;
    if (!g.error.empty()) j["error"] = g.error;
    j["realHead"] = g.real_head;
    j["sandboxHead"] = g.sandbox_head;
    j["sandboxBranch"] = g.sandbox_branch;
    j["headMoved"] = g.head_moved;
    j["commits"] = std::move(commits);
    j["commitsTruncated"] = g.commits_truncated;
    j["nestedRepositories"] = g.nested;
    j["applied"] = false; // never: the user exports the series and applies it on the host
    return j;
}

json to_json(const ChangeSet& c) {
    json files = json::array();
    for (const auto& f : c.files) {
        const Side& shown = f.sandbox.type != EntryType::absent ? f.sandbox : f.base;
        json j = json::object();
        j["path"] = f.path;
        j["status"] = f.status;
        j["type"] = type_name(shown.type);
        j["binary"] = f.binary;
        j["protected"] = f.is_protected;
        j["baseHash"] = f.base.hash;
        j["newHash"] = f.sandbox.hash;
        j["oldMode"] = git_mode_string(f.base.mode);
        j["newMode"] = git_mode_string(f.sandbox.mode);
        j["oldSize"] = f.base.size;
        j["newSize"] = f.sandbox.size;
        j["additions"] = f.additions;
        j["deletions"] = f.deletions;
        j["warnings"] = f.warnings;
        j["unified"] = f.unified;
        files.push_back(std::move(j));
    }
    json skipped = json::array();
    for (const auto& s : c.skipped)
        skipped.push_back(json{{"path", s.path}, {"kind", s.kind}, {"reason", s.reason}});
    json j = json::object();
    j["files"] = std::move(files);
    j["patch"] = c.patch;
    j["git"] = to_json(c.git);
    j["skipped"] = std::move(skipped);
    return j;
}

ChangeSet compute_changes(const SessionFiles& s, const DiffOptions& opts) {
    try {
        return compute_changes_unchecked(s, opts);
    } catch (const FsError& e) {
        throw protocol::RpcError(
            protocol::code::internal_error, std::string("compute changes: ") + e.what(),
            json{{"step", "compute_changes"}, {"errno", e.err}, {"path", printable_path(e.path)}});
    }
}

} // namespace cordon::server::changes
