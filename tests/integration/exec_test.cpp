// exec through the real server and a real sandbox: results, streaming, limits, cancellation,
// and that nothing survives a call or the server.
#include "cordon/server/client.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <dirent.h>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <unistd.h>

using namespace cordon::server;
using namespace cordon::protocol;
namespace fs = std::filesystem;

namespace {

struct Env {
    fs::path root;
    fs::path ws;
    std::unique_ptr<ServerProcess> server;
    std::string sid;

    Env() {
        std::string tmpl = (fs::temp_directory_path() / "cordon-exec-XXXXXX").string();
        root = ::mkdtemp(tmpl.data());
        ws = root / "ws";
        fs::create_directories(ws / "src");
        std::ofstream(ws / "hello.txt") << "hello\n";
        std::ofstream(ws / "src/main.c") << "int main(void) { return 0; }\n";
        start();
        sid = create();
    }
    ~Env() {
        server.reset();
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    void start() {
        server = std::make_unique<ServerProcess>(
            CORDON_EXE, std::vector<std::string>{"--state-dir", (root / "state").string(),
                                                 "--log-level", "warn"});
        server->initialize();
    }
    std::string create() {
        return server->result("session/create", {{"workspace", ws.string()}})["sessionId"];
    }
    json exec(json params) {
        params["sessionId"] = sid;
        return server->result("exec", params);
    }
};

std::string read_file(const fs::path& p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// Any process on the host whose command line contains `needle`.
bool host_has_process(const std::string& needle) {
    DIR* d = ::opendir("/proc");
    bool found = false;
    while (auto* e = ::readdir(d)) {
        if (!std::isdigit(static_cast<unsigned char>(e->d_name[0]))) continue;
        std::string cmd = read_file(fs::path("/proc") / e->d_name / "cmdline");
        if (cmd.find(needle) != std::string::npos) found = true;
    }
    ::closedir(d);
    return found;
}

bool eventually_gone(const std::string& needle) {
    for (int i = 0; i < 200; ++i) {
        if (!host_has_process(needle)) return true;
        ::usleep(10000);
    }
    return false;
}

} // namespace

TEST_CASE("exec returns output, exit code and reason", "[exec]") {
    Env e;
    auto r = e.exec({{"command", "cat hello.txt; echo err >&2; exit 3"}});
    CHECK(r["stdout"] == "hello\n");
    CHECK(r["stderr"] == "err\n");
    CHECK(r["exitCode"] == 3);
    CHECK(r["reason"] == "exited");
    CHECK(r["signal"].is_null());
    CHECK(r["durationMs"].is_number());
    CHECK(r["violations"].is_array());

    auto a = e.exec(
        {{"argv", {"/bin/sh", "-c", "pwd; echo $FOO"}}, {"cwd", "src"}, {"env", {{"FOO", "bar"}}}});
    CHECK(a["stdout"] == (e.ws / "src").string() + "\nbar\n");

    auto in = e.exec({{"command", "tr a-z A-Z"}, {"stdin", "shout\n"}});
    CHECK(in["stdout"] == "SHOUT\n");

    auto sig = e.exec({{"command", "kill -KILL $$"}});
    CHECK(sig["reason"] == "signaled");
    CHECK(sig["signal"] == "SIGKILL");
    CHECK(sig["exitCode"].is_null());

    auto missing = e.exec({{"argv", {"/no/such/binary"}}});
    CHECK(missing["exitCode"] == 127);
}

TEST_CASE("exec rejects a cwd outside the workspace", "[exec]") {
    Env e;
    auto r = e.server->call("exec", {{"sessionId", e.sid}, {"command", "true"}, {"cwd", "../"}});
    CHECK(r["error"]["code"] == code::invalid_params);
    CHECK(r["error"]["data"]["path"] == "/cwd");
}

TEST_CASE("streamed output arrives as exec/output notifications", "[exec]") {
    Env e;
    std::string streamed;
    json request_id;
    auto r = e.server->call("exec",
                            {{"sessionId", e.sid},
                             {"command", "for i in 1 2 3; do echo line$i; done"},
                             {"stream", true}},
                            [&](const json& m) {
                                if (m.value("method", "") != "exec/output") return;
                                CHECK(m["params"]["sessionId"] == e.sid);
                                CHECK(m["params"]["stream"] == "stdout");
                                request_id = m["params"]["requestId"];
                                streamed += m["params"]["data"].get<std::string>();
                            });
    CHECK(r["result"]["stdout"] == "line1\nline2\nline3\n");
    CHECK(streamed == "line1\nline2\nline3\n");
    CHECK(request_id == r["id"]);
}

TEST_CASE("writes land in the session's upper dir, never in the real workspace", "[exec]") {
    Env e;
    auto before = read_file(e.ws / "hello.txt");
    auto r =
        e.exec({{"command", "echo changed >> hello.txt && echo new > added.txt && rm src/main.c"}});
    REQUIRE(r["exitCode"] == 0);
    CHECK(read_file(e.ws / "hello.txt") == before);
    CHECK_FALSE(fs::exists(e.ws / "added.txt"));
    CHECK(fs::exists(e.ws / "src/main.c"));
    std::map<std::string, std::string> changes;
    for (auto& c : r["changes"])
        changes[c["path"]] = c["status"];
    CHECK(changes == std::map<std::string, std::string>{{"added.txt", "added"},
                                                        {"hello.txt", "modified"},
                                                        {"src/main.c", "deleted"}});
    // The sandbox sees its own changes.
    auto again = e.exec({{"command", "cat hello.txt added.txt; ls src"}});
    CHECK(again["stdout"] == "hello\nchanged\nnew\n");
    auto list = e.server->result("session/list", json::object());
    REQUIRE(list["sessions"].size() == 1);
    CHECK(list["sessions"][0]["changedFiles"] == 3);
}

TEST_CASE("two sessions on one workspace do not see each other's changes", "[exec]") {
    Env e;
    std::string other = e.create();
    e.exec({{"command", "echo mine > only-in-first.txt"}});
    auto r = e.server->result("exec", {{"sessionId", other}, {"command", "ls only-in-first.txt"}});
    CHECK(r["exitCode"] != 0);
}

TEST_CASE("a timeout kills the whole tree, daemons included", "[exec][limits]") {
    Env e;
    std::vector<json> notified;
    auto r =
        e.server->result("exec",
                         {{"sessionId", e.sid},
                          {"command", "setsid -f sleep 987651; (sleep 987652 &); sleep 987653"},
                          {"timeoutMs", 500}},
                         [&](const json& m) {
                             if (m.value("method", "") == "sandbox/violation")
                                 notified.push_back(m["params"]);
                         });
    CHECK(r["reason"] == "timeout");
    REQUIRE(r["violations"].size() == 1);
    CHECK(r["violations"][0]["kind"] == "limit");
    CHECK(r["violations"][0]["detail"]["limit"] == "timeout");
    REQUIRE(notified.size() == 1);
    CHECK(notified[0]["kind"] == "limit");
    CHECK(notified[0]["sessionId"] == e.sid);
    CHECK(eventually_gone("987651"));
    CHECK(eventually_gone("987652"));
    CHECK(eventually_gone("987653"));
}

TEST_CASE("refused filesystem writes are reported: result, notification and audit log",
          "[exec][violations]") {
    Env e;
    std::vector<json> notified;
    json params = {{"sessionId", e.sid},
                   {"command", "echo x > /etc/cordon-probe; echo ok > fine.txt; "
                               "echo ok > /tmp/fine; true"}};
    auto r = e.server->result("exec", params, [&](const json& m) {
        if (m.value("method", "") == "sandbox/violation") notified.push_back(m["params"]);
    });
    INFO(r.dump());
    CHECK(r["exitCode"] == 0);
    REQUIRE(r["violations"].size() == 1);
    CHECK(r["violations"][0]["kind"] == "filesystem");
    CHECK(r["violations"][0]["detail"]["path"] == "/etc/cordon-probe");
    CHECK(r["violations"][0]["detail"]["operation"] == "open for writing");
    REQUIRE(notified.size() == 1);
    CHECK(notified[0]["kind"] == "filesystem");
    CHECK(notified[0].contains("requestId"));
    CHECK(!fs::exists("/etc/cordon-probe"));
    std::string audit = read_file(e.root / "state/sessions" / e.sid / "audit.jsonl");
    CHECK(audit.find("/etc/cordon-probe") != std::string::npos);

    // Another command's writes are its own: nothing refused, nothing reported.
    auto clean = e.exec({{"command", "echo again > fine.txt"}});
    CHECK(clean["violations"].empty());
}

TEST_CASE("a state dir made ahead is used by the next session and never listed", "[persist]") {
    Env e;
    auto sessions = e.root / "state/sessions";
    auto spare = [&]() -> std::optional<fs::path> {
        for (int i = 0; i < 100; ++i) { // made right after the create that used the last one
            for (auto& d : fs::directory_iterator(sessions))
                if (d.path().filename().string().rfind(".spare-", 0) == 0) return d.path();
            ::usleep(10 * 1000);
        }
        return std::nullopt;
    };
    auto first = spare();
    REQUIRE(first);
    CHECK(fs::is_directory(*first / "upper"));
    std::string sid = e.create();
    CHECK(!fs::exists(*first)); // renamed into place
    CHECK(fs::exists(sessions / sid / "session.json"));
    auto listed = e.server->result("session/list", json::object())["sessions"];
    CHECK(listed.size() == 2);
    for (auto& s : listed)
        CHECK(s["sessionId"].get<std::string>().rfind("s-", 0) == 0);
    auto second = spare();
    REQUIRE(second);
    // One left behind by a server that died is removed by the next one.
    e.server.reset();
    fs::create_directories(sessions / ".spare-stale/upper");
    e.start();
    CHECK(!fs::exists(sessions / ".spare-stale"));
    CHECK(e.server->result("session/list", json::object())["sessions"].size() == 2);
}

TEST_CASE("background processes do not outlive the call", "[exec]") {
    Env e;
    auto r = e.exec(
        {{"command", "nohup sleep 987654 >/dev/null 2>&1 & setsid -f sleep 987655; echo started"}});
    CHECK(r["stdout"] == "started\n");
    CHECK(eventually_gone("987654"));
    CHECK(eventually_gone("987655"));
}

TEST_CASE("$/cancelRequest kills a running command and answers -32800", "[exec][cancel]") {
    Env e;
    e.server->send(make_request(4242, "exec", {{"sessionId", e.sid}, {"command", "sleep 987656"}}));
    for (int i = 0; i < 200 && !host_has_process("987656"); ++i)
        ::usleep(10000);
    REQUIRE(host_has_process("987656"));
    e.server->send(make_notification("$/cancelRequest", {{"id", 4242}}));
    auto m = e.server->read(std::chrono::seconds(10));
    REQUIRE(m);
    CHECK((*m)["id"] == 4242);
    CHECK((*m)["error"]["code"] == code::request_cancelled);
    CHECK(eventually_gone("987656"));
}

TEST_CASE("closing the session ends its running commands with reason cancelled", "[exec]") {
    Env e;
    e.server->send(make_request(77, "exec", {{"sessionId", e.sid}, {"command", "sleep 987657"}}));
    for (int i = 0; i < 200 && !host_has_process("987657"); ++i)
        ::usleep(10000);
    auto closed = e.server->call("session/close", {{"sessionId", e.sid}}, [&](const json& m) {
        if (m.value("id", json()) == 77) CHECK(m["result"]["reason"] == "cancelled");
    });
    CHECK(closed["result"].is_null());
    CHECK(eventually_gone("987657"));
}

TEST_CASE("a 1 GiB output flood is capped while server memory stays flat", "[exec][limits]") {
    Env e;
    long before = e.server->rss_kib();
    auto r =
        e.exec({{"command", "head -c 1073741824 /dev/zero; echo done >&2"}, {"stream", false}});
    long after = e.server->rss_kib();
    CHECK(r["exitCode"] == 0);
    CHECK(r["stdoutTruncated"] == true);
    CHECK(r["stdout"].get<std::string>().size() == 1u << 20);
    CHECK(r["stderr"] == "done\n");
    INFO("server RSS before " << before << " KiB, after " << after << " KiB");
    CHECK(after - before < 64 * 1024);
}

TEST_CASE("maxOutputBytes caps each stream and the stream notifications", "[exec][limits]") {
    Env e;
    std::size_t streamed = 0;
    auto r = e.server->call("exec",
                            {{"sessionId", e.sid},
                             {"command", "seq 1 100000"},
                             {"maxOutputBytes", 1000},
                             {"stream", true}},
                            [&](const json& m) {
                                if (m.value("method", "") == "exec/output")
                                    streamed += m["params"]["data"].get<std::string>().size();
                            });
    CHECK(r["result"]["stdout"].get<std::string>().size() == 1000);
    CHECK(r["result"]["stdoutTruncated"] == true);
    CHECK(streamed == 1000);
}

TEST_CASE("killing the server with SIGKILL leaves no sandboxed process", "[exec][lifecycle]") {
    Env e;
    e.server->send(make_request(
        5, "exec", {{"sessionId", e.sid}, {"command", "setsid -f sleep 987658; sleep 987659"}}));
    for (int i = 0; i < 200 && !host_has_process("987659"); ++i)
        ::usleep(10000);
    REQUIRE(host_has_process("987659"));
    // The server's own children are the session inits.
    std::vector<std::string> inits;
    for (auto& entry : fs::directory_iterator("/proc")) {
        auto stat = read_file(entry.path() / "stat");
        auto close_paren = stat.rfind(')');
        if (close_paren == std::string::npos) continue;
        std::istringstream rest(stat.substr(close_paren + 2));
        std::string state;
        int ppid = 0;
        rest >> state >> ppid;
        if (ppid == e.server->pid()) inits.push_back(entry.path().filename());
    }
    REQUIRE_FALSE(inits.empty());
    e.server->kill(SIGKILL);
    e.server->wait();
    CHECK(eventually_gone("987658"));
    CHECK(eventually_gone("987659"));
    for (auto& pid : inits) {
        bool gone = false;
        for (int i = 0; i < 200 && !gone; ++i) {
            gone = !fs::exists("/proc/" + pid + "/stat") ||
                   read_file("/proc/" + pid + "/stat").find(") Z") != std::string::npos;
            if (!gone) ::usleep(10000);
        }
        CHECK(gone);
    }
}

TEST_CASE("sessions and their changes survive a server restart", "[exec][persist]") {
    Env e;
    e.exec({{"command", "echo kept > kept.txt"}});
    e.server->send(make_request(90, "shutdown", nullptr));
    e.server->read();
    e.server->send(make_notification("exit", nullptr));
    CHECK(e.server->wait() == 0);

    e.start();
    auto list = e.server->result("session/list", json::object());
    REQUIRE(list["sessions"].size() == 1);
    CHECK(list["sessions"][0]["sessionId"] == e.sid);
    CHECK(list["sessions"][0]["changedFiles"] == 1);
    CHECK(list["sessions"][0]["running"] == false);
    // A tool call re-creates the warm sandbox on the same upper dir.
    auto r = e.exec({{"command", "cat kept.txt"}});
    CHECK(r["stdout"] == "kept\n");
    CHECK_FALSE(fs::exists(e.ws / "kept.txt"));
}

TEST_CASE("session/close keeps state unless discarded", "[exec][persist]") {
    Env e;
    e.exec({{"command", "echo x > x.txt"}});
    e.server->result("session/close", {{"sessionId", e.sid}});
    auto list = e.server->result("session/list", json::object());
    REQUIRE(list["sessions"].size() == 1);
    CHECK(list["sessions"][0]["changedFiles"] == 1);
    CHECK(e.exec({{"command", "cat x.txt"}})["stdout"] == "x\n");
    e.server->result("session/close", {{"sessionId", e.sid}, {"discard", true}});
    CHECK(e.server->result("session/list", json::object())["sessions"].empty());
    CHECK_FALSE(fs::exists(e.root / "state/sessions" / e.sid));
    auto gone = e.server->call("exec", {{"sessionId", e.sid}, {"command", "true"}});
    CHECK(gone["error"]["code"] == code::unknown_session);
}

TEST_CASE("a session runs in one server at a time", "[exec][persist]") {
    Env e;
    ServerProcess second(CORDON_EXE,
                         {"--state-dir", (e.root / "state").string(), "--log-level", "off"});
    second.initialize();
    auto r = second.call("exec", {{"sessionId", e.sid}, {"command", "true"}});
    REQUIRE(r.contains("error"));
    CHECK(r["error"]["message"].get<std::string>().find("in use by another cordon server") !=
          std::string::npos);
}

TEST_CASE("no user namespaces: session/create fails closed naming the facility and the fix",
          "[exec][failclosed]") {
    std::string tmpl = (fs::temp_directory_path() / "cordon-fc-XXXXXX").string();
    fs::path root = ::mkdtemp(tmpl.data());
    fs::create_directories(root / "ws");
    // A user namespace of our own where no further user namespace may be created: the
    // server inside it sees a host without user namespaces.
    auto wrapper = root / "cordon-without-userns";
    std::ofstream(wrapper)
        << "#!/bin/sh\n"
           "exec unshare -U -r sh -c 'echo 0 > /proc/sys/user/max_user_namespaces"
           " && exec \"$0\" \"$@\"' "
        << CORDON_EXE << " \"$@\"\n";
    fs::permissions(wrapper, fs::perms::owner_all);
    ServerProcess s(wrapper.string(),
                    {"--state-dir", (root / "state").string(), "--log-level", "off"});
    auto init = s.call("initialize", json::object());
    REQUIRE(init.contains("result"));
    CHECK(init["result"]["capabilities"]["isolation"]["userns"] == false);
    auto r = s.call("session/create", {{"workspace", (root / "ws").string()}});
    REQUIRE(r.contains("error"));
    CHECK(r["error"]["code"] == code::sandbox_unavailable);
    CHECK(r["error"]["data"]["facility"] == "userns");
    CHECK_FALSE(r["error"]["data"]["fix"].get<std::string>().empty());
    CHECK(s.result("session/list", json::object())["sessions"].empty());
    s.close_stdin();
    s.wait();
    fs::remove_all(root);
}

TEST_CASE("an exec's changes are its own: earlier execs and tool writes are not listed again",
          "[exec]") {
    Env e;
    auto first = e.exec({{"command", "echo a > a.txt"}});
    REQUIRE(first["changes"].size() == 1);
    CHECK(first["changes"][0]["path"] == "a.txt");
    auto idle = e.exec({{"command", "cat a.txt"}}); // reads only
    CHECK(idle["changes"].empty());
    // A write by the server (fs/write) between execs is not the next exec's change.
    e.server->result("fs/write", {{"sessionId", e.sid}, {"path", "b.txt"}, {"content", "b\n"}});
    auto after_tool = e.exec({{"command", "ls > /dev/null"}});
    CHECK(after_tool["changes"].empty());
    auto second = e.exec({{"command", "echo more >> b.txt"}});
    REQUIRE(second["changes"].size() == 1);
    CHECK(second["changes"][0]["path"] == "b.txt");
}

TEST_CASE("exec reports only real changes: rewrites with equal bytes and applied files are not",
          "[exec]") {
    Env e;
    auto same = e.exec(
        {{"command", "cat hello.txt > /tmp/h && cat /tmp/h > hello.txt && touch hello.txt"}});
    CHECK(same["changes"].empty());
    auto changed = e.exec({{"command", "echo more >> hello.txt"}});
    REQUIRE(changed["changes"].size() == 1);
    e.server->result("changes/apply", {{"sessionId", e.sid}});
    auto again = e.exec({{"command", "touch hello.txt; mkdir -p d && echo n > d/new.txt"}});
    REQUIRE(again["changes"].size() == 1);
    CHECK(again["changes"][0]["path"] == "d/new.txt");
    CHECK(again["changes"][0]["status"] == "added");
    auto removed = e.exec({{"command", "rm -rf src"}});
    REQUIRE(removed["changes"].size() == 1);
    CHECK(removed["changes"][0]["path"] == "src/main.c");
    CHECK(removed["changes"][0]["status"] == "deleted");
}
