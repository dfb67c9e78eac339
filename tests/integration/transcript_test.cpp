// Raw transcripts against the real `cordon serve --stdio`: good, malformed and oversized
// frames, every protocol error code reachable without a sandbox, and lifecycle exit codes.
#include "cordon/protocol/framing.hpp"
#include "cordon/server/client.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <set>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace cordon::server;
using namespace cordon::protocol;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "cordon-test-XXXXXX").string();
        path = ::mkdtemp(tmpl.data());
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

std::vector<std::string> server_args(const TempDir& t, std::vector<std::string> extra = {}) {
    std::vector<std::string> a{"--state-dir", (t.path / "state").string(), "--log-level", "warn"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
}

json next(ServerProcess& s) {
    auto m = s.read(std::chrono::seconds(10));
    REQUIRE(m);
    return *m;
}

// The server still serves after whatever came before.
void still_serving(ServerProcess& s) {
    auto r = s.call("session/list", json::object());
    REQUIRE(r.contains("result"));
    CHECK(r["result"]["sessions"].is_array());
}

} // namespace

TEST_CASE("initialize reports the server and the host's isolation", "[transcript]") {
    TempDir t;
    ServerProcess s(CORDON_EXE, server_args(t));
    auto r = s.call("initialize", {{"clientInfo", {{"name", "test"}}}});
    REQUIRE(r.contains("result"));
    CHECK(r["result"]["serverInfo"]["name"] == "cordon");
    CHECK(r["result"]["serverInfo"]["version"].is_string());
    auto iso = r["result"]["capabilities"]["isolation"];
    for (auto k : {"userns", "overlay", "seccomp", "landlock", "cgroups"})
        CHECK(iso[k].is_boolean());
}

TEST_CASE("requests before initialize get -32002, then work", "[transcript]") {
    TempDir t;
    ServerProcess s(CORDON_EXE, server_args(t));
    auto r = s.call("session/list", json::object());
    CHECK(r["error"]["code"] == code::server_not_initialized);
    s.initialize();
    still_serving(s);
}

TEST_CASE("malformed frames are answered and the next frame is served", "[transcript]") {
    TempDir t;
    ServerProcess s(CORDON_EXE, server_args(t, {"--max-message-bytes", "4096"}));
    s.initialize();

    struct Case {
        std::string bytes;
        int code;
    };
    std::vector<Case> cases = {
        {"Content-Type: x\r\n\r\n", code::parse_error},                          // no length
        {"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}", code::parse_error}, // duplicate
        {"Content-Length: -1\r\n\r\n", code::parse_error},                       // negative
        {"Content-Length: ten\r\n\r\n", code::parse_error},                      // non-numeric
        {"Content-Length: 5000\r\n\r\n" + std::string(5000, 'x'), code::invalid_request},
        {encode_frame("{\"jsonrpc\":"), code::parse_error}, // invalid JSON
        {encode_frame("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xc3\x28\"}"), code::parse_error},
        {encode_frame(R"({"jsonrpc":"2.0","id":1,"id":1,"method":"x"})"), code::parse_error},
        {encode_frame(std::string(3000, '[')), code::parse_error}, // too deep
        {encode_frame(R"({"jsonrpc":"2.0","id":1})"), code::invalid_request},
        {encode_frame("[]"), code::invalid_request},
    };
    for (auto& c : cases) {
        INFO(c.bytes.substr(0, 80));
        s.write_raw(c.bytes);
        json m = next(s);
        CHECK(m["error"]["code"] == c.code);
        still_serving(s);
    }
}

TEST_CASE("a huge Content-Length is refused without the server buffering it", "[transcript]") {
    TempDir t;
    ServerProcess s(CORDON_EXE, server_args(t));
    s.initialize();
    s.write_raw("Content-Length: 9223372036854775807\r\n\r\n");
    CHECK(next(s)["error"]["code"] == code::invalid_request);
}

TEST_CASE("an unterminated 8 MiB header is answered and the stream resyncs", "[transcript]") {
    TempDir t;
    ServerProcess s(CORDON_EXE, server_args(t));
    s.initialize();
    s.write_raw(std::string(8 << 20, 'H'));
    CHECK(next(s)["error"]["code"] == code::parse_error);
    s.write_raw("\r\n\r\n");
    still_serving(s);
}

TEST_CASE("unknown methods, bad params and unknown sessions", "[transcript]") {
    TempDir t;
    ServerProcess s(CORDON_EXE, server_args(t));
    s.initialize();
    CHECK(s.call("no/such/method", json::object())["error"]["code"] == code::method_not_found);
    auto bad = s.call("session/create", {{"workspace", 42}});
    CHECK(bad["error"]["code"] == code::invalid_params);
    CHECK(bad["error"]["data"]["path"] == "/workspace");
    auto missing = s.call("session/create", {{"workspace", (t.path / "nope").string()}});
    CHECK(missing["error"]["code"] == code::invalid_params);
    auto unknown = s.call("exec", {{"sessionId", "s-nope"}, {"command", "true"}});
    CHECK(unknown["error"]["code"] == code::unknown_session);
    auto close = s.call("session/close", {{"sessionId", "s-nope"}});
    CHECK(close["error"]["code"] == code::unknown_session);
}

TEST_CASE("batches over the wire get one array reply", "[transcript]") {
    TempDir t;
    ServerProcess s(CORDON_EXE, server_args(t));
    s.initialize();
    s.send(json::array({make_request(100, "session/list", json::object()),
                        make_notification("$/setTrace", {{"value", "off"}}),
                        make_request(101, "nope", json::object())}));
    json m = next(s);
    REQUIRE(m.is_array());
    REQUIRE(m.size() == 2);
    std::set<int> ids{m[0]["id"].get<int>(), m[1]["id"].get<int>()};
    CHECK(ids == std::set<int>{100, 101});
}

TEST_CASE("200k-element batch is refused, the server stays up", "[transcript]") {
    TempDir t;
    ServerProcess s(CORDON_EXE, server_args(t));
    s.initialize();
    std::string big = "[";
    for (int i = 0; i < 200000; ++i)
        big += i ? ",1" : "1";
    big += "]";
    s.write_raw(encode_frame(big));
    CHECK(next(s)["error"]["code"] == code::invalid_request);
    still_serving(s);
}

TEST_CASE("shutdown then exit ends with code 0", "[transcript][lifecycle]") {
    TempDir t;
    ServerProcess s(CORDON_EXE, server_args(t));
    s.initialize();
    auto r = s.call("shutdown", nullptr);
    CHECK(r["result"].is_null());
    CHECK(s.call("session/list", json::object())["error"]["code"] == code::invalid_request);
    s.send(make_notification("exit", nullptr));
    CHECK(s.wait() == 0);
}

TEST_CASE("exit without shutdown ends with code 1", "[transcript][lifecycle]") {
    TempDir t;
    ServerProcess s(CORDON_EXE, server_args(t));
    s.initialize();
    s.send(make_notification("exit", nullptr));
    CHECK(s.wait() == 1);
}

TEST_CASE("EOF on stdin ends the server in order", "[transcript][lifecycle]") {
    TempDir t;
    ServerProcess s(CORDON_EXE, server_args(t));
    s.initialize();
    s.close_stdin();
    CHECK(s.wait() == 0);
}

TEST_CASE("a body shorter than announced at EOF does not hang the server", "[transcript]") {
    TempDir t;
    ServerProcess s(CORDON_EXE, server_args(t));
    s.initialize();
    s.write_raw("Content-Length: 100\r\n\r\n{\"jsonrpc\"");
    s.close_stdin();
    CHECK(s.wait() == 0);
}

TEST_CASE("serve --listen unix: serves on a 0600 socket", "[transcript]") {
    TempDir t;
    auto sock = (t.path / "cordon.sock").string();
    int pid = ::fork();
    if (pid == 0) {
        ::execl(CORDON_EXE, CORDON_EXE, "serve", "--listen", ("unix:" + sock).c_str(),
                "--state-dir", (t.path / "state").c_str(), "--log-level", "warn", nullptr);
        ::_exit(127);
    }
    struct stat st {};
    for (int i = 0; i < 500 && ::stat(sock.c_str(), &st) != 0; ++i)
        ::usleep(10000);
    REQUIRE(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 0777) == 0600);

    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, sock.c_str(), sizeof addr.sun_path - 1);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    std::string req = encode_frame(make_request(1, "initialize", json::object()).dump());
    REQUIRE(::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size()));
    FrameDecoder dec;
    std::optional<FrameEvent> ev;
    char buf[4096];
    while (!ev) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        REQUIRE(n > 0);
        dec.feed(std::string_view(buf, n));
        ev = dec.next();
    }
    CHECK(json::parse(ev->body)["result"]["serverInfo"]["name"] == "cordon");
    ::close(fd);
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
}
