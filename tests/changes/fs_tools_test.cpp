#include "fixture.hpp"

#include "cordon/protocol/jsonrpc.hpp"
#include "cordon/server/changes/fs_tools.hpp"

using namespace cordon::server::changes;
using cordon::protocol::json;
using cordon::protocol::RpcError;
using namespace cordon_test;

namespace {

int code_of(const std::function<void()>& f, std::string* message = nullptr, json* data = nullptr) {
    try {
        f();
    } catch (const RpcError& e) {
        if (message) *message = e.what();
        if (data) *data = e.data;
        return e.code;
    }
    return 0;
}

} // namespace

TEST_CASE("fs/read returns text as utf-8 and other bytes as base64", "[changes][fs]") {
    Overlay o;
    spit(o.real("t.txt"), "héllo\n");
    spit(o.real("b.bin"), std::string("\x00\xff\x01", 3));
    spit(o.real("latin1.txt"), "caf\xe9");
    o.mount();
    auto s = o.files();
    json r = fs_read(s, {{"path", "t.txt"}});
    CHECK(r["encoding"] == "utf-8");
    CHECK(r["content"] == "héllo\n");
    CHECK(r["size"] == 7);
    r = fs_read(s, {{"path", o.ws.string() + "/b.bin"}});
    CHECK(r["encoding"] == "base64");
    CHECK(r["content"] == base64_encode(std::string("\x00\xff\x01", 3)));
    CHECK(fs_read(s, {{"path", "latin1.txt"}})["encoding"] == "base64");
    CHECK(code_of([&] { fs_read(s, {{"path", "missing"}}); }) == -32602);
    CHECK(code_of([&] { fs_read(s, {{"path", "."}}); }) == -32602);
    CHECK(code_of([&] { fs_read(s, json::object()); }) == -32602);
}

TEST_CASE("fs/write creates parent dirs, writes through the overlay, keeps the real file",
          "[changes][fs]") {
    Overlay o;
    spit(o.real("a.txt"), "real\n");
    o.mount();
    auto s = o.files();
    json r = fs_write(s, {{"path", "deep/er/new.txt"}, {"content", "new\n"}});
    CHECK(r["path"] == "deep/er/new.txt");
    CHECK(r["status"] == "added");
    CHECK(slurp(o.sb("deep/er/new.txt")) == "new\n");
    CHECK(fs::exists(o.upper / "deep/er/new.txt"));
    CHECK_FALSE(fs::exists(o.real("deep")));
    r = fs_write(
        s, {{"path", "a.txt"}, {"content", base64_encode("\x01\x02")}, {"encoding", "base64"}});
    CHECK(r["status"] == "modified");
    CHECK(slurp(o.sb("a.txt")) == "\x01\x02");
    CHECK(slurp(o.real("a.txt")) == "real\n");
    CHECK(code_of([&] {
              fs_write(s, {{"path", "x"}, {"content", "!!"}, {"encoding", "base64"}});
          }) == -32602);
    CHECK(code_of([&] {
              fs_write(s, {{"path", "x"}, {"content", "a"}, {"encoding", "latin1"}});
          }) == -32602);
    // No sandbox: the tools refuse rather than touch the real files.
    CHECK(code_of([&] { fs_write(o.files(false), {{"path", "y"}, {"content", "a"}}); }) == -32004);
}

TEST_CASE("fs/list lists the sandbox's view", "[changes][fs]") {
    Overlay o;
    spit(o.real("d/a.txt"), "aa");
    spit(o.real("d/gone.txt"), "g");
    fs::create_symlink("a.txt", o.real("d/l"));
    o.mount();
    fs::remove(o.sb("d/gone.txt"));
    spit(o.sb("d/sub/x"), "x");
    json r = fs_list(o.files(), {{"path", "d"}});
    json names = json::array();
    for (auto& e : r["entries"])
        names.push_back(e["name"].get<std::string>() + ":" + e["type"].get<std::string>());
    CHECK(names == json{"a.txt:file", "l:symlink", "sub:dir"});
    CHECK(fs_list(o.files(), json::object())["entries"].size() == 1);
}

TEST_CASE("fs/edit replaces exact matches or fails as a whole", "[changes][fs]") {
    Overlay o;
    spit(o.real("f.txt"), "alpha beta\ngamma beta\n");
    o.mount();
    auto s = o.files();
    std::string msg;
    json data;
    // Edit 1 matches twice: nothing changes, even though edit 0 was fine.
    int c = code_of(
        [&] {
            fs_edit(s, {{"path", "f.txt"},
                        {"edits",
                         {{{"oldText", "alpha"}, {"newText", "A"}},
                          {{"oldText", "beta"}, {"newText", "B"}}}}});
        },
        &msg, &data);
    CHECK(c == -32602);
    CHECK(msg.find("edit 1") != std::string::npos);
    CHECK(data["reason"] == "2 matches");
    CHECK(data["path"] == "/edits/1/oldText");
    CHECK(slurp(o.sb("f.txt")) == "alpha beta\ngamma beta\n");
    c = code_of(
        [&] {
            fs_edit(s, {{"path", "f.txt"}, {"edits", {{{"oldText", "zeta"}, {"newText", ""}}}}});
        },
        &msg, &data);
    CHECK(c == -32602);
    CHECK(data["reason"] == "not found");
    CHECK(msg.find("edit 0") != std::string::npos);

    json r = fs_edit(s, {{"path", "f.txt"},
                         {"edits",
                          {{{"oldText", "alpha"}, {"newText", "A"}},
                           {{"oldText", "beta"}, {"newText", "B"}, {"replaceAll", true}}}}});
    CHECK(slurp(o.sb("f.txt")) == "A B\ngamma B\n");
    CHECK(r["path"] == "f.txt");
    CHECK(r["diff"].get<std::string>().find("+A B") != std::string::npos);
    CHECK(slurp(o.real("f.txt")) == "alpha beta\ngamma beta\n");
}

TEST_CASE("fs tools refuse paths and symlinks leading out of the workspace (RPC-05)",
          "[changes][fs][security]") {
    Overlay o;
    spit(o.real("in.txt"), "inside");
    fs::create_symlink("../fakehome/.bashrc", o.real("out"));
    fs::create_symlink(o.fakehome, o.real("outdir"));
    fs::create_symlink("in.txt", o.real("ok"));
    fs::create_directories(o.real("sub"));
    fs::create_symlink("../in.txt", o.real("sub/up"));
    // The sandbox root also holds a "host" file outside the workspace.
    spit(o.sbroot / "etc/passwd", "root:x:0:0\n");
    o.mount();
    auto s = o.files();
    CHECK(fs_read(s, {{"path", "ok"}})["content"] == "inside");
    CHECK(fs_read(s, {{"path", "sub/up"}})["content"] == "inside");
    for (const char* p : {"out", "outdir/.bashrc", "../fakehome/.bashrc", "/etc/passwd",
                          "sub/../../x", "/proc/self/root/etc/passwd"}) {
        INFO(p);
        std::string msg;
        CHECK(code_of([&] { fs_read(s, {{"path", p}}); }, &msg) == -32602);
        CHECK(msg.find("path '") != std::string::npos);
        CHECK(code_of([&] { fs_write(s, {{"path", p}, {"content", "pwned"}}); }) == -32602);
    }
    CHECK(code_of([&] { fs_write(s, {{"path", "outdir/new"}, {"content", "pwned"}}); }) == -32602);
    CHECK(code_of([&] {
              fs_write(s, {{"path", std::string("a\0b", 3)}, {"content", "x"}});
          }) == -32602);
    CHECK(slurp(o.fakehome / ".bashrc") == "# the user's real bashrc\n");
    CHECK_FALSE(fs::exists(o.fakehome / "new"));
    CHECK(slurp(o.sbroot / "etc/passwd") == "root:x:0:0\n");
}

TEST_CASE("fs/read never opens a FIFO for reading", "[changes][fs][security]") {
    Overlay o;
    o.mount();
    REQUIRE(::mkfifo(o.sb("pipe").c_str(), 0644) == 0);
    std::string msg;
    CHECK(code_of([&] { fs_read(o.files(), {{"path", "pipe"}}); }, &msg) == -32602);
    CHECK(msg.find("not a regular file") != std::string::npos);
    CHECK(fs_list(o.files(), json::object())["omitted"] == 1);
}
