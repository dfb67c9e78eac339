// Pure: no syscalls here (see host_facts.cpp for the part that looks at the host).
#include "cordon/sandbox/mount_plan.hpp"

#include <algorithm>
#include <set>

namespace cordon::sandbox {

PathKind HostFacts::kind(const std::string& path) const {
    auto it = kinds.find(path);
    return it == kinds.end() ? PathKind::Missing : it->second;
}

const std::vector<std::string>& system_directories() {
    static const std::vector<std::string> dirs = {"/usr",   "/bin",    "/sbin", "/lib", "/lib32",
                                                  "/lib64", "/libx32", "/etc",  "/opt"};
    return dirs;
}

const std::vector<std::string>& default_home_allowlist() {
    static const std::vector<std::string> dirs = {".cargo/bin", ".rustup", ".local/bin", ".nvm",
                                                  ".pyenv"};
    return dirs;
}

const std::vector<std::string>& default_home_denylist() {
    static const std::vector<std::string> dirs = {".ssh",
                                                  ".aws",
                                                  ".gnupg",
                                                  ".netrc",
                                                  ".config/gh",
                                                  ".docker",
                                                  ".kube",
                                                  ".git-credentials",
                                                  ".npmrc",
                                                  ".pypirc",
                                                  ".config/gcloud",
                                                  ".azure",
                                                  ".password-store",
                                                  ".local/share/keyrings",
                                                  ".cargo/credentials.toml",
                                                  ".cargo/credentials"};
    return dirs;
}

const std::vector<std::string>& default_system_denylist() {
    static const std::vector<std::string> paths = {"/etc/shadow",
                                                   "/etc/shadow-",
                                                   "/etc/gshadow",
                                                   "/etc/gshadow-",
                                                   "/etc/sudoers",
                                                   "/etc/sudoers.d",
                                                   "/etc/ssh/ssh_host_*_key",
                                                   "/var/lib/sss/pipes",
                                                   "/var/lib/docker",
                                                   "/var/lib/containerd",
                                                   "/var/lib/libvirt",
                                                   "/var/lib/lxd",
                                                   "/var/lib/private",
                                                   "/var/lib/sudo",
                                                   "/var/cache/private"};
    return paths;
}

std::string normalize_path(const std::string& path) {
    std::vector<std::string> parts;
    std::size_t i = 0;
    while (i <= path.size()) {
        std::size_t j = path.find('/', i);
        if (j == std::string::npos) j = path.size();
        std::string part = path.substr(i, j - i);
        if (part == "..") {
            if (!parts.empty()) parts.pop_back();
        } else if (!part.empty() && part != ".") {
            parts.push_back(part);
        }
        i = j + 1;
    }
    std::string out;
    for (const auto& p : parts)
        out += "/" + p;
    return out.empty() ? "/" : out;
}

std::string normalize_policy_path(const std::string& path, const std::string& home,
                                  const std::string& workspace) {
    if (path.empty()) return "";
    if (path == "~") return normalize_path(home);
    if (path.rfind("~/", 0) == 0) return normalize_path(home + "/" + path.substr(2));
    if (path[0] == '/') return normalize_path(path);
    return normalize_path(workspace + "/" + path);
}

bool path_within(const std::string& path, const std::string& dir) {
    if (dir == "/") return true;
    if (path.size() < dir.size() || path.compare(0, dir.size(), dir) != 0) return false;
    return path.size() == dir.size() || path[dir.size()] == '/';
}

namespace {

bool is_glob(const std::string& p) {
    return p.find_first_of("*?[") != std::string::npos;
}

std::size_t depth(const std::string& p) {
    return std::count(p.begin(), p.end(), '/');
}

std::string home_of(const SandboxSpec& spec, const std::string& user) {
    if (!spec.host_home.empty()) return normalize_path(spec.host_home);
    return user == "root" ? "/root" : "/home/" + user;
}

// Patterns (absolute, normalised) of everything the policy denies.
std::vector<std::string> deny_patterns(const SandboxSpec& spec, const std::string& home,
                                       const std::string& ws) {
    std::vector<std::string> out;
    for (const auto& rel : default_home_denylist())
        out.push_back(normalize_path(home + "/" + rel));
    for (const auto& p : default_system_denylist())
        out.push_back(p);
    for (const auto& p : spec.filesystem.deny_read) {
        auto n = normalize_policy_path(p, home, ws);
        if (!n.empty()) out.push_back(n);
    }
    return out;
}

std::vector<std::string> expand(const std::string& pattern, const HostFacts& facts) {
    if (!is_glob(pattern)) return {pattern};
    auto it = facts.glob_matches.find(pattern);
    return it == facts.glob_matches.end() ? std::vector<std::string>{} : it->second;
}

} // namespace

FactQuery fact_query(const SandboxSpec& spec, const std::string& user) {
    FactQuery q;
    const std::string home = home_of(spec, user);
    const std::string ws = normalize_path(spec.workspace);
    auto add = [&q](const std::string& p) {
        if (p.empty()) return;
        (is_glob(p) ? q.globs : q.paths).push_back(p);
    };
    for (const auto& d : system_directories())
        add(d);
    for (const char* p : {"/var", "/var/lib", "/var/cache"})
        add(p);
    for (const auto& rel : default_home_allowlist())
        add(normalize_path(home + "/" + rel));
    for (const auto& p : spec.filesystem.allow_read)
        add(normalize_policy_path(p, home, ws));
    for (const auto& p : spec.filesystem.allow_write)
        add(normalize_policy_path(p, home, ws));
    for (const auto& p : deny_patterns(spec, home, ws)) {
        add(p);
        q.masked_roots.push_back(p);
    }
    add(normalize_path(spec.state_dir));
    return q;
}

MountPlan build_mount_plan(const SandboxSpec& spec, const HostFacts& facts) {
    MountPlan plan;
    const std::string ws = normalize_path(spec.workspace);
    const std::string state = normalize_path(spec.state_dir);
    const std::string home = home_of(spec, facts.user);
    plan.home = home;
    auto& ops = plan.ops;
    std::vector<std::string> visible; // host paths the sandbox can see

    auto symlink_text = [&facts](const std::string& p) {
        auto it = facts.resolved.find(p);
        return it == facts.resolved.end() ? std::string() : it->second;
    };

    // 1. The read-only system view.
    for (const auto& d : system_directories()) {
        switch (facts.kind(d)) {
        case PathKind::Directory:
            ops.push_back({MountKind::BindReadOnly, d, d});
            visible.push_back(d);
            break;
        case PathKind::Symlink:
            if (auto t = symlink_text(d); !t.empty()) ops.push_back({MountKind::Symlink, t, d});
            break;
        default:
            break;
        }
    }
    // /var: an empty tmpfs with the parts tools read (package databases, caches); run and
    // lock lead to the empty /run, so host sockets under /var/run never appear.
    ops.push_back({MountKind::Tmpfs, "tmpfs", "/var", "mode=0755,size=1m,nr_inodes=256"});
    ops.push_back({MountKind::Symlink, "/run", "/var/run"});
    ops.push_back({MountKind::Symlink, "/run/lock", "/var/lock"});
    ops.push_back({MountKind::Symlink, "/tmp", "/var/tmp"});
    for (const char* d : {"/var/lib", "/var/cache"}) {
        if (facts.kind(d) == PathKind::Directory) {
            ops.push_back({MountKind::BindReadOnly, d, d});
            visible.push_back(d);
        }
    }
    ops.push_back({MountKind::RemountReadOnly, "", "/var"});

    // 2. Private /tmp, empty /run, minimal /dev, fresh /proc and /sys.
    const std::uint64_t tmp_size = spec.tmp_size_bytes ? spec.tmp_size_bytes : (512ull << 20);
    const std::uint64_t inodes = std::clamp<std::uint64_t>(tmp_size / 8192, 1024, 1u << 20);
    ops.push_back(
        {MountKind::Tmpfs, "tmpfs", "/tmp",
         "mode=1777,size=" + std::to_string(tmp_size) + ",nr_inodes=" + std::to_string(inodes)});
    ops.push_back(
        {MountKind::Tmpfs, "tmpfs", "/run", "mode=0755,size=64k,nr_inodes=64", "", "", true});
    ops.push_back({MountKind::Tmpfs, "tmpfs", "/dev", "mode=0755,size=64k,nr_inodes=64"});
    for (const char* n : {"null", "zero", "full", "random", "urandom", "tty"}) {
        std::string p = std::string("/dev/") + n;
        ops.push_back({MountKind::DevNode, p, p});
    }
    ops.push_back({MountKind::Devpts, "devpts", "/dev/pts", "newinstance,ptmxmode=0666,mode=0620"});
    ops.push_back({MountKind::Symlink, "pts/ptmx", "/dev/ptmx"});
    ops.push_back({MountKind::Symlink, "/proc/self/fd", "/dev/fd"});
    ops.push_back({MountKind::Symlink, "/proc/self/fd/0", "/dev/stdin"});
    ops.push_back({MountKind::Symlink, "/proc/self/fd/1", "/dev/stdout"});
    ops.push_back({MountKind::Symlink, "/proc/self/fd/2", "/dev/stderr"});
    const std::uint64_t shm = std::min<std::uint64_t>(tmp_size, 64ull << 20);
    ops.push_back({MountKind::Tmpfs, "tmpfs", "/dev/shm",
                   "mode=1777,size=" + std::to_string(shm) + ",nr_inodes=4096"});
    ops.push_back({MountKind::RemountReadOnly, "", "/dev"});

    ops.push_back({MountKind::Proc, "proc", "/proc"});
    // As runc's maskedPaths / readonlyPaths.
    for (const char* f : {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                          "/proc/sysrq-trigger", "/proc/latency_stats", "/proc/timer_stats"}) {
        MountOp op{MountKind::MaskFile, "", f};
        op.optional = true;
        ops.push_back(op);
    }
    for (const char* d : {"/proc/acpi", "/proc/scsi"}) {
        MountOp op{MountKind::MaskDirectory, "", d};
        op.optional = true;
        ops.push_back(op);
    }
    for (const char* d : {"/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq"}) {
        MountOp op{MountKind::BindReadOnly, "", d}; // empty source: bind the target onto itself
        op.optional = true;
        ops.push_back(op);
    }
    ops.push_back({MountKind::Sysfs, "sysfs", "/sys", "", "", "", true});

    // 3. User binds, parents before children.
    std::vector<MountOp> user;
    user.push_back({MountKind::BindReadWrite, state + "/home", home});
    plan.writable = {ws, "/tmp", home, "/dev/shm"};
    for (const auto& rel : default_home_allowlist()) {
        std::string p = normalize_path(home + "/" + rel);
        PathKind k = facts.kind(p);
        std::string src = k == PathKind::Symlink ? symlink_text(p) : p;
        if (k == PathKind::Directory || (k == PathKind::Symlink && !src.empty())) {
            user.push_back({MountKind::BindReadOnly, src, p});
            visible.push_back(src);
        }
    }
    auto policy_binds = [&](const std::vector<std::string>& list, MountKind kind) {
        for (const auto& raw : list) {
            for (const auto& p : expand(normalize_policy_path(raw, home, ws), facts)) {
                if (path_within(p, ws)) continue; // the overlay already shows it
                PathKind k = facts.kind(p);
                if (k == PathKind::Missing) continue;
                std::string src = k == PathKind::Symlink ? symlink_text(p) : p;
                if (src.empty()) continue;
                user.push_back({kind, src, p});
                visible.push_back(src);
                if (kind == MountKind::BindReadWrite) plan.writable.push_back(p);
            }
        }
    };
    policy_binds(spec.filesystem.allow_read, MountKind::BindReadOnly);
    policy_binds(spec.filesystem.allow_write, MountKind::BindReadWrite);
    MountOp overlay{MountKind::Overlay, ws, ws};
    overlay.upper = state + "/upper";
    overlay.work = state + "/work";
    user.push_back(overlay);
    visible.push_back(ws);
    std::stable_sort(user.begin(), user.end(), [](const MountOp& a, const MountOp& b) {
        return depth(a.target) < depth(b.target);
    });
    ops.insert(ops.end(), user.begin(), user.end());

    // 4. Masks, after every bind: deny wins over any allow, whatever the spelling.
    auto is_visible = [&visible](const std::string& p) {
        return std::any_of(visible.begin(), visible.end(), [&p](const std::string& v) {
            return path_within(p, v) || path_within(v, p);
        });
    };
    std::set<std::string> done;
    auto mask = [&](const std::string& p) {
        PathKind k = facts.kind(p);
        if (k == PathKind::Missing || !is_visible(p) || !done.insert(p).second) return;
        MountOp op{k == PathKind::Directory ? MountKind::MaskDirectory : MountKind::MaskFile, "",
                   p};
        op.optional = true;
        ops.push_back(op);
        plan.masked.push_back(p);
    };
    std::vector<std::string> denied = deny_patterns(spec, home, ws);
    denied.push_back(state);
    for (const auto& pattern : denied) {
        for (const auto& p : expand(pattern, facts)) {
            mask(p);
            if (facts.kind(p) == PathKind::Symlink) {
                if (auto t = symlink_text(p); !t.empty()) mask(t);
            }
        }
    }
    for (const auto& p : facts.hardlinks_to_masked) {
        if (!done.insert(p).second) continue;
        ops.push_back({MountKind::MaskFile, "", p});
        plan.masked.push_back(p);
    }

    // 5. Nothing else may be created in the new root.
    ops.push_back({MountKind::RemountReadOnly, "", "/"});
    return plan;
}

} // namespace cordon::sandbox
