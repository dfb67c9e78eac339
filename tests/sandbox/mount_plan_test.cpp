// build_mount_plan is pure: these tests give it hand-made host facts.
#include "cordon/sandbox/mount_plan.hpp"

#include <algorithm>
#include <catch2/catch.hpp>

using namespace cordon::sandbox;

namespace {

SandboxSpec spec() {
    SandboxSpec s;
    s.workspace = "/home/u/proj";
    s.state_dir = "/home/u/.local/state/cordon/s1";
    s.host_home = "/home/u";
    return s;
}

HostFacts facts() {
    HostFacts f;
    f.user = "u";
    for (const char* d : {"/usr", "/etc", "/opt", "/var", "/var/lib", "/var/cache"})
        f.kinds[d] = PathKind::Directory;
    f.kinds["/bin"] = PathKind::Symlink;
    f.resolved["/bin"] = "/usr/bin";
    f.kinds["/home/u/.cargo/bin"] = PathKind::Directory;
    f.kinds["/home/u/.ssh"] = PathKind::Directory;
    f.kinds["/etc/shadow"] = PathKind::File;
    return f;
}

std::ptrdiff_t index_of(const MountPlan& p, MountKind kind, const std::string& target) {
    auto it = std::find_if(p.ops.begin(), p.ops.end(), [&](const MountOp& op) {
        return op.kind == kind && op.target == target;
    });
    return it == p.ops.end() ? -1 : it - p.ops.begin();
}

} // namespace

TEST_CASE("path normalisation is lexical and component-wise", "[sandbox][unit][mount_plan]") {
    CHECK(normalize_path("//a/./b/../c/") == "/a/c");
    CHECK(normalize_path("/../..") == "/");
    CHECK(normalize_policy_path("~/.ssh", "/home/u", "/ws") == "/home/u/.ssh");
    CHECK(normalize_policy_path("~", "/home/u", "/ws") == "/home/u");
    CHECK(normalize_policy_path("secrets/../x", "/home/u", "/ws") == "/ws/x");
    CHECK(path_within("/ws/a", "/ws"));
    CHECK(path_within("/ws", "/ws"));
    CHECK_FALSE(path_within("/ws-evil/a", "/ws"));
    CHECK(path_within("/anything", "/"));
}

TEST_CASE("system dirs are read-only binds, symlinked dirs stay symlinks",
          "[sandbox][unit][mount_plan]") {
    auto p = build_mount_plan(spec(), facts());
    CHECK(index_of(p, MountKind::BindReadOnly, "/usr") >= 0);
    CHECK(index_of(p, MountKind::BindReadOnly, "/etc") >= 0);
    auto bin = index_of(p, MountKind::Symlink, "/bin");
    REQUIRE(bin >= 0);
    CHECK(p.ops[static_cast<std::size_t>(bin)].source == "/usr/bin");
    // Missing dirs are skipped; /home and /root never appear.
    CHECK(index_of(p, MountKind::BindReadOnly, "/lib32") == -1);
    for (const auto& op : p.ops) {
        CHECK(op.target != "/home");
        CHECK(op.target != "/root");
        CHECK(op.source != "/home/u");
    }
}

TEST_CASE("private /tmp, empty /run, minimal /dev, fresh /proc", "[sandbox][unit][mount_plan]") {
    auto s = spec();
    s.tmp_size_bytes = 1 << 20;
    auto p = build_mount_plan(s, facts());
    auto tmp = index_of(p, MountKind::Tmpfs, "/tmp");
    REQUIRE(tmp >= 0);
    CHECK(p.ops[static_cast<std::size_t>(tmp)].data.find("size=1048576") != std::string::npos);
    CHECK(p.ops[static_cast<std::size_t>(tmp)].data.find("nr_inodes=") != std::string::npos);
    CHECK(index_of(p, MountKind::Tmpfs, "/run") >= 0);
    CHECK(index_of(p, MountKind::Symlink, "/var/run") >= 0);
    for (const char* d :
         {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"})
        CHECK(index_of(p, MountKind::DevNode, d) >= 0);
    CHECK(index_of(p, MountKind::DevNode, "/dev/console") == -1);
    CHECK(index_of(p, MountKind::Devpts, "/dev/pts") >= 0);
    CHECK(index_of(p, MountKind::Proc, "/proc") >= 0);
    CHECK(index_of(p, MountKind::MaskFile, "/proc/sysrq-trigger") >= 0);
    CHECK(index_of(p, MountKind::BindReadOnly, "/proc/sys") >= 0);
    CHECK(index_of(p, MountKind::Sysfs, "/sys") >= 0);
}

TEST_CASE("home is private, toolchains allowed, the workspace is an overlay",
          "[sandbox][unit][mount_plan]") {
    auto p = build_mount_plan(spec(), facts());
    CHECK(p.home == "/home/u");
    auto home = index_of(p, MountKind::BindReadWrite, "/home/u");
    REQUIRE(home >= 0);
    CHECK(p.ops[static_cast<std::size_t>(home)].source == "/home/u/.local/state/cordon/s1/home");
    auto cargo = index_of(p, MountKind::BindReadOnly, "/home/u/.cargo/bin");
    auto ws = index_of(p, MountKind::Overlay, "/home/u/proj");
    REQUIRE(cargo > home);
    REQUIRE(ws > home); // the workspace lies inside the home: mounted after it
    const auto& ov = p.ops[static_cast<std::size_t>(ws)];
    CHECK(ov.source == "/home/u/proj");
    CHECK(ov.upper == "/home/u/.local/state/cordon/s1/upper");
    CHECK(ov.work == "/home/u/.local/state/cordon/s1/work");
    CHECK(index_of(p, MountKind::BindReadOnly, "/home/u/.rustup") == -1); // does not exist
    CHECK(std::find(p.writable.begin(), p.writable.end(), "/home/u/proj") != p.writable.end());
}

TEST_CASE("masks come after every bind and cover what is visible", "[sandbox][unit][mount_plan]") {
    auto s = spec();
    s.filesystem.allow_read = {"~/.config"};
    s.filesystem.deny_read = {"secret.env", "/opt/vault"};
    auto f = facts();
    f.kinds["/home/u/.config"] = PathKind::Directory;
    f.kinds["/home/u/.config/gh"] = PathKind::Directory;
    f.kinds["/home/u/proj/secret.env"] = PathKind::File;
    f.kinds["/opt/vault"] = PathKind::Directory;
    f.hardlinks_to_masked = {"/home/u/proj/leak"};
    auto p = build_mount_plan(s, f);
    auto last_bind = std::ptrdiff_t{-1};
    auto first_mask = static_cast<std::ptrdiff_t>(p.ops.size());
    for (std::size_t i = 0; i < p.ops.size(); ++i) {
        const auto& op = p.ops[i];
        bool user_bind =
            op.kind == MountKind::Overlay ||
            ((op.kind == MountKind::BindReadOnly || op.kind == MountKind::BindReadWrite) &&
             op.target.rfind("/home/", 0) == 0);
        bool mask = (op.kind == MountKind::MaskFile || op.kind == MountKind::MaskDirectory) &&
                    op.target.rfind("/proc", 0) != 0;
        if (user_bind) last_bind = static_cast<std::ptrdiff_t>(i);
        if (mask) first_mask = std::min(first_mask, static_cast<std::ptrdiff_t>(i));
    }
    CHECK(last_bind < first_mask);
    CHECK(index_of(p, MountKind::BindReadOnly, "/home/u/.config") >= 0);
    CHECK(index_of(p, MountKind::MaskDirectory, "/home/u/.config/gh") > 0);
    CHECK(index_of(p, MountKind::MaskFile, "/home/u/proj/secret.env") > 0);
    CHECK(index_of(p, MountKind::MaskDirectory, "/opt/vault") > 0);
    CHECK(index_of(p, MountKind::MaskFile, "/home/u/proj/leak") > 0);
    CHECK(index_of(p, MountKind::MaskFile, "/etc/shadow") > 0);
    // ~/.ssh is not visible at all (private home): nothing to mask there.
    CHECK(index_of(p, MountKind::MaskDirectory, "/home/u/.ssh") == -1);
    CHECK(p.ops.back().kind == MountKind::RemountReadOnly);
    CHECK(p.ops.back().target == "/");
}

TEST_CASE("a secret reached through an allowed symlink is masked at its target",
          "[sandbox][unit][mount_plan]") {
    auto s = spec();
    s.filesystem.allow_read = {"/srv/shared"};
    auto f = facts();
    f.kinds["/srv/shared"] = PathKind::Directory;
    f.kinds["/home/u/.netrc"] = PathKind::Symlink;
    f.resolved["/home/u/.netrc"] = "/srv/shared/netrc";
    f.kinds["/srv/shared/netrc"] = PathKind::File;
    auto p = build_mount_plan(s, f);
    CHECK(index_of(p, MountKind::MaskFile, "/srv/shared/netrc") > 0);
}

TEST_CASE("root's home and a home under a system dir are replaced too",
          "[sandbox][unit][mount_plan]") {
    auto s = spec();
    s.host_home = "/opt/homes/u";
    s.workspace = "/srv/ws";
    auto p = build_mount_plan(s, facts());
    auto home = index_of(p, MountKind::BindReadWrite, "/opt/homes/u");
    auto opt = index_of(p, MountKind::BindReadOnly, "/opt");
    REQUIRE(home > opt);
    s.host_home = "";
    HostFacts rootf = facts();
    rootf.user = "root";
    CHECK(build_mount_plan(s, rootf).home == "/root");
}

TEST_CASE("fact_query asks about every path the plan depends on", "[sandbox][unit][mount_plan]") {
    auto s = spec();
    s.filesystem.deny_read = {"**/*.pem"};
    auto q = fact_query(s, "u");
    CHECK(std::find(q.paths.begin(), q.paths.end(), "/home/u/.ssh") != q.paths.end());
    CHECK(std::find(q.paths.begin(), q.paths.end(), "/usr") != q.paths.end());
    CHECK(std::find(q.globs.begin(), q.globs.end(), "/home/u/proj/**/*.pem") != q.globs.end());
    CHECK(std::find(q.masked_roots.begin(), q.masked_roots.end(), "/home/u/.aws") !=
          q.masked_roots.end());
}
