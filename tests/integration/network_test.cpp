// The network boundary, attacked from inside a real sandbox through the real server:
// real clients (curl, python urllib) against real HTTP/HTTPS servers on 127.0.0.1 that the
// test starts. Nothing here sends traffic anywhere but 127.0.0.1.
#include "cordon/server/client.hpp"
#include "test_servers.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace cordon::server;
using namespace cordon::protocol;
using cordon::test::IoThread;
using cordon::test::OriginServer;
using cordon::test::TestCerts;
namespace fs = std::filesystem;

namespace {

struct NetEnv {
    fs::path root, ws;
    std::unique_ptr<ServerProcess> server;

    // `user_config`: the server's user config file (the tests' policies mostly come from
    // session/create).
    explicit NetEnv(std::vector<std::string> extra = {}, const std::string& user_config = "{}") {
        std::string tmpl = (fs::temp_directory_path() / "cordon-net-XXXXXX").string();
        root = ::mkdtemp(tmpl.data());
        ws = root / "ws";
        fs::create_directories(ws);
        fs::copy_file(TestCerts::get().ca_pem, ws / "test-ca.pem");
        std::ofstream(root / "config.json") << user_config << "\n";
        std::vector<std::string> args{"--state-dir", (root / "state").string(),
                                      "--config",    (root / "config.json").string(),
                                      "--log-level", "warn",
                                      "--ca-file",   TestCerts::get().ca_pem};
        args.insert(args.end(), extra.begin(), extra.end());
        server = std::make_unique<ServerProcess>(CORDON_EXE, args);
    }
    ~NetEnv() {
        server.reset();
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    std::string session(const std::vector<std::string>& allow,
                        const std::vector<std::string>& deny = {}) {
        json policy = {{"network", {{"allow", allow}, {"deny", deny}}}};
        return server->result("session/create",
                              {{"workspace", ws.string()}, {"policy", policy}})["sessionId"];
    }
    // A session whose network policy is the user config's alone.
    std::string session_from_config() {
        return server->result("session/create", {{"workspace", ws.string()}})["sessionId"];
    }
    // Runs `command` in the session; `on_other` sees notifications and approval questions.
    json exec(const std::string& sid, const std::string& command,
              const std::function<void(const json&)>& on_other = {}) {
        json params = {{"sessionId", sid},
                       {"command", command},
                       {"timeoutMs", 30000},
                       {"env", {{"NO_PROXY", ""}, {"no_proxy", ""}}}};
        return server->result("exec", params, on_other);
    }
};

std::string url(std::uint16_t port, const std::string& path = "/hello", bool tls = false,
                const std::string& host = "127.0.0.1") {
    return std::string(tls ? "https" : "http") + "://" + host + ":" + std::to_string(port) + path;
}

} // namespace

TEST_CASE("allowed destinations work through HTTP, CONNECT and SOCKS5 from inside",
          "[net][sandbox-net]") {
    IoThread t;
    OriginServer http(t.io, false), https(t.io, true);
    NetEnv e;
    e.server->initialize();
    auto p = std::to_string(http.port()), ps = std::to_string(https.port());
    auto sid = e.session({"127.0.0.1:" + p, "localhost:" + ps, "127.0.0.1:" + ps});

    auto r = e.exec(sid, "curl -sS " + url(http.port()));
    CHECK(r["exitCode"] == 0);
    CHECK(r["stdout"].get<std::string>().find("hello") != std::string::npos);

    auto s5 = e.exec(sid, "curl -sS --proxy socks5h://127.0.0.1:1080 " + url(http.port()));
    CHECK(s5["exitCode"] == 0);
    CHECK(s5["stdout"].get<std::string>().find("hello") != std::string::npos);

    auto tls = e.exec(sid, "curl -sS --cacert test-ca.pem " +
                               url(https.port(), "/hello", true, "localhost"));
    INFO(tls.dump());
    CHECK(tls["exitCode"] == 0);
    CHECK(tls["stdout"].get<std::string>().find("hello") != std::string::npos);

    auto py = e.exec(sid, "python3 -c 'import urllib.request,sys; "
                          "sys.stdout.write(urllib.request.urlopen(\"" +
                              url(http.port()) + "\").read().decode())'");
    CHECK(py["exitCode"] == 0);
    CHECK(py["stdout"].get<std::string>().find("hello") != std::string::npos);
    CHECK(r["violations"].empty());
}

TEST_CASE("denied destinations are refused, reported, and never reached", "[net][sandbox-net]") {
    IoThread t;
    OriginServer http(t.io, false);
    NetEnv e;
    e.server->initialize();
    auto p = std::to_string(http.port());
    // localhost is allowed by name, but it resolves to loopback, which is not listed.
    auto sid = e.session({"localhost:" + p}, {"evil.example"});

    std::vector<json> notified;
    auto collect = [&](const json& m) {
        if (m.value("method", "") == "sandbox/violation") notified.push_back(m["params"]);
    };
    auto lo = e.exec(sid,
                     "curl -sS -o /dev/null -w '%{http_code}' " +
                         url(http.port(), "/hello", false, "localhost"),
                     collect);
    CHECK(lo["stdout"] == "403");
    REQUIRE(lo["violations"].size() == 1);
    CHECK(lo["violations"][0]["detail"]["reason"].get<std::string>().find("no one to ask") !=
          std::string::npos);
    auto denied =
        e.exec(sid, "curl -sS -o /dev/null -w '%{http_code}' http://evil.example/", collect);
    CHECK(denied["stdout"] == "403");
    REQUIRE(denied["violations"].size() == 1);
    CHECK(denied["violations"][0]["kind"] == "network");
    CHECK(denied["violations"][0]["detail"]["host"] == "evil.example");
    auto s5 = e.exec(
        sid, "curl -sS --proxy socks5h://127.0.0.1:1080 http://evil.example/; echo rc=$?", collect);
    CHECK(s5["stdout"].get<std::string>().find("rc=97") != std::string::npos);
    // A CONNECT tunnel to a port the rule does not allow.
    auto port =
        e.exec(sid, "curl -sS -o /dev/null -w '%{http_code}' -p http://localhost:22/", collect);
    CHECK(port["stdout"] != "200");
    CHECK(http.requests == 0);
    CHECK(notified.size() >= 3);
    for (auto& n : notified) {
        CHECK(n["sessionId"] == sid);
        CHECK(n["kind"] == "network");
    }
}

TEST_CASE("the sandbox has no network but the proxy: direct connections and DNS fail",
          "[net][sandbox-net]") {
    IoThread t;
    OriginServer http(t.io, false);
    NetEnv e;
    e.server->initialize();
    auto sid = e.session({"127.0.0.1:" + std::to_string(http.port())});
    // Ignoring the proxy: the sandbox's 127.0.0.1 is its own loopback, not the host's.
    auto direct = e.exec(sid, "curl -sS --noproxy '*' -m 3 " + url(http.port()) + "; echo rc=$?");
    CHECK(direct["stdout"].get<std::string>().find("rc=7") != std::string::npos);
    auto py = e.exec(sid, "python3 - <<'EOF'\n"
                          "import socket\n"
                          "for fam, addr in [(socket.AF_INET, ('127.0.0.1', " +
                              std::to_string(http.port()) +
                              ")), (socket.AF_INET6, ('::1', 80))]:\n"
                              "    s = socket.socket(fam, socket.SOCK_STREAM)\n"
                              "    try:\n"
                              "        s.connect(addr); print('connected')\n"
                              "    except OSError as e: print('refused', e.errno)\n"
                              "try:\n"
                              "    socket.getaddrinfo('example.com', 80); print('resolved')\n"
                              "except OSError as e: print('no dns')\n"
                              "EOF");
    CHECK(py["stdout"].get<std::string>().find("connected") == std::string::npos);
    CHECK(py["stdout"].get<std::string>().find("resolved") == std::string::npos);
    CHECK(py["stdout"].get<std::string>().find("no dns") != std::string::npos);
    auto ifs = e.exec(sid, "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '");
    CHECK(ifs["stdout"] == "lo\n");
    CHECK(http.requests == 0);
}

TEST_CASE("undecided hosts are asked: allow-once, allow-session, deny and timeout",
          "[net][sandbox-net][approvals]") {
    IoThread t;
    OriginServer http(t.io, false);
    NetEnv e({"--approval-timeout-ms", "700"});
    e.server->initialize({{"approvals", true}});
    auto sid = e.session({}); // nothing allowed: everything is asked
    std::string target = "curl -sS -o /dev/null -w '%{http_code}' " + url(http.port());
    std::string answer, asking = sid;
    int questions = 0;
    auto approve = [&](const json& m) {
        if (m.value("method", "") != "sandbox/approve") return;
        ++questions;
        CHECK(m["params"]["sessionId"] == asking);
        CHECK(m["params"]["kind"] == "network");
        CHECK(m["params"]["host"] == "127.0.0.1");
        CHECK(m["params"]["port"] == http.port());
        if (answer != "silence") e.server->send(make_result(m["id"], {{"decision", answer}}));
    };
    answer = "deny";
    CHECK(e.exec(sid, target, approve)["stdout"] == "403");
    answer = "allow-once";
    CHECK(e.exec(sid, target, approve)["stdout"] == "200");
    int before = questions;
    CHECK(e.exec(sid, target, approve)["stdout"] == "200"); // asked again: once means once
    CHECK(questions > before);
    answer = "allow-session";
    CHECK(e.exec(sid, target, approve)["stdout"] == "200");
    before = questions;
    CHECK(e.exec(sid, target, approve)["stdout"] == "200");
    CHECK(questions == before); // remembered for the session
    auto other = e.session({});
    asking = other;
    answer = "silence";
    auto timed_out = e.server->result("exec",
                                      {{"sessionId", other},
                                       {"command", target + " 2>&1"},
                                       {"env", {{"NO_PROXY", ""}, {"no_proxy", ""}}}},
                                      approve);
    INFO(timed_out.dump());
    CHECK(timed_out["stdout"] == "403");
}

TEST_CASE("fetch follows the same policy, redirects re-checked", "[net][fetch]") {
    IoThread t;
    OriginServer http(t.io, false), https(t.io, true);
    NetEnv e;
    e.server->initialize();
    auto sid = e.session({"127.0.0.1:" + std::to_string(http.port()),
                          "localhost:" + std::to_string(https.port()),
                          "127.0.0.1:" + std::to_string(https.port())});
    auto ok = e.server->result("fetch", {{"sessionId", sid}, {"url", url(http.port())}});
    CHECK(ok["status"] == 200);
    CHECK(ok["encoding"] == "utf-8");
    auto tls = e.server->result(
        "fetch", {{"sessionId", sid}, {"url", url(https.port(), "/hello", true, "localhost")}});
    CHECK(tls["status"] == 200);
    auto denied = e.server->call("fetch", {{"sessionId", sid}, {"url", "http://denied.example/"}});
    CHECK(denied["error"]["code"] == code::policy_denied);
    CHECK(denied["error"]["data"]["host"] == "denied.example");
    auto redirect = e.server->call(
        "fetch",
        {{"sessionId", sid}, {"url", url(http.port(), "/redirect?to=http://denied.example/x")}});
    CHECK(redirect["error"]["code"] == code::policy_denied);
}

TEST_CASE("a proxy flood in one session does not stop another session", "[net][sandbox-net]") {
    IoThread t;
    OriginServer http(t.io, false);
    NetEnv e;
    e.server->initialize();
    auto allow = std::vector<std::string>{"127.0.0.1:" + std::to_string(http.port())};
    auto attacker = e.session(allow);
    auto victim = e.session(allow);
    // Slowloris + half-open flood against the attacker session's own proxy, in the background.
    e.server->send(make_request(
        991, "exec",
        {{"sessionId", attacker},
         {"timeoutMs", 20000},
         {"command", "python3 - <<'EOF'\n"
                     "import socket, time\n"
                     "socks = []\n"
                     "for i in range(2000):\n"
                     "    try:\n"
                     "        s = socket.create_connection(('127.0.0.1', 3128), timeout=1)\n"
                     "        s.send(b'GET http://127.0.0.1/ HTTP/1.1\\r\\nX-a: ')\n"
                     "        socks.append(s)\n"
                     "    except OSError:\n"
                     "        pass\n"
                     "print(len(socks), flush=True)\n"
                     "time.sleep(3)\n"
                     "EOF"}}));
    ::usleep(1500 * 1000);
    auto r = e.exec(victim, "curl -sS -m 10 -o /dev/null -w '%{http_code}' " + url(http.port()));
    CHECK(r["stdout"] == "200");
    for (;;) {
        auto m = e.server->read(std::chrono::seconds(30));
        REQUIRE(m);
        if ((*m).value("id", json()) == 991) break;
    }
}

TEST_CASE("approval questions beyond the session's limit are refused without asking",
          "[net][sandbox-net][approvals]") {
    NetEnv e({}, R"({"network": {"approvals": {"maxPerWindow": 2}}})");
    e.server->initialize({{"approvals", true}});
    auto sid = e.session({});
    int questions = 0;
    auto deny = [&](const json& m) {
        if (m.value("method", "") != "sandbox/approve") return;
        ++questions;
        e.server->send(make_result(m["id"], {{"decision", "deny"}}));
    };
    auto r = e.exec(sid,
                    "for h in a b c d; do curl -s -o /dev/null -w '%{http_code} ' "
                    "http://$h.flood.invalid/; done",
                    deny);
    CHECK(r["stdout"] == "403 403 403 403 ");
    CHECK(questions == 2);
    REQUIRE(r["violations"].size() == 4);
    int limited = 0;
    for (auto& v : r["violations"])
        if (v["detail"]["reason"].get<std::string>().starts_with("too many approval questions"))
            ++limited;
    CHECK(limited == 2);
}

TEST_CASE("method rules from the user config: GET allowed, POST refused, tunnels refused",
          "[net][sandbox-net][net06]") {
    IoThread t;
    OriginServer http(t.io, false), https(t.io, true);
    auto p = std::to_string(http.port()), ps = std::to_string(https.port());
    json config = {{"network",
                    {{"allow",
                      {json{{"host", "127.0.0.1:" + p}, {"methods", {"GET", "HEAD"}}},
                       json{{"host", "127.0.0.1:" + ps}, {"methods", {"GET"}}}}}}}};
    NetEnv e({}, config.dump());
    e.server->initialize();
    auto sid = e.session_from_config();
    auto get = e.exec(sid, "curl -sS " + url(http.port()));
    CHECK(get["exitCode"] == 0);
    CHECK(get["stdout"].get<std::string>().find("hello") != std::string::npos);
    CHECK(get["violations"].empty());

    auto post = e.exec(sid, "curl -sS -i -d token=secret " + url(http.port(), "/echo"));
    auto out = post["stdout"].get<std::string>();
    CHECK(out.starts_with("HTTP/1.1 403"));
    CHECK(out.find("method POST is not allowed") != std::string::npos);
    REQUIRE(post["violations"].size() == 1);
    CHECK(post["violations"][0]["kind"] == "network");
    CHECK(post["violations"][0]["detail"]["reason"].get<std::string>().find(
              "method POST is not allowed") != std::string::npos);
    // HTTPS goes through CONNECT, which such a rule cannot police: refused, saying why.
    auto tls = e.exec(sid, "curl -sS -o /dev/null -w '%{http_connect}' --cacert test-ca.pem " +
                               url(https.port(), "/hello", true));
    CHECK(tls["stdout"] == "403");
    REQUIRE(tls["violations"].size() == 1);
    CHECK(tls["violations"][0]["detail"]["reason"].get<std::string>().find("opaque tunnel") !=
          std::string::npos);
    CHECK(http.requests == 1);
    CHECK(https.requests == 0);
}

TEST_CASE("method rules given in session/create's policy apply; a bad rule refuses the session",
          "[net][sandbox-net][net06]") {
    IoThread t;
    OriginServer http(t.io, false);
    NetEnv e;
    e.server->initialize();
    json rule = {{"host", "127.0.0.1:" + std::to_string(http.port())}, {"methods", {"GET"}}};
    json policy = {{"network", {{"allow", {rule}}, {"approvals", {{"maxPending", 1}}}}}};
    auto sid = e.server->result("session/create",
                                {{"workspace", e.ws.string()}, {"policy", policy}})["sessionId"];
    auto get = e.exec(sid, "curl -sS " + url(http.port()));
    CHECK(get["exitCode"] == 0);
    auto post = e.exec(sid, "curl -sS -i -d x=1 " + url(http.port(), "/echo"));
    CHECK(post["stdout"].get<std::string>().starts_with("HTTP/1.1 403"));
    CHECK(http.requests == 1);

    json bad = {{"network", {{"allow", {json{{"host", "example.com"}, {"methods", "GET"}}}}}}};
    auto r = e.server->call("session/create", {{"workspace", e.ws.string()}, {"policy", bad}});
    REQUIRE(r.contains("error"));
    CHECK(r["error"]["code"] == -32602);
    CHECK(r["error"]["message"].get<std::string>().find("network") != std::string::npos);
}

namespace {

// A public smart-HTTP git remote (git http-backend, no authentication, pushes enabled in
// the repository) over plain HTTP or HTTPS (test CA) on 127.0.0.1, as a child process.
// Every request is logged ("METHOD path?query" lines) so tests can tell what reached it.
const char* kGitHttpServer = R"PY(
import http.server, os, ssl, subprocess, sys, threading
root, log, cert, key = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def handle_any(self):
        path, _, query = self.path.partition("?")
        with lock, open(log, "a") as f: f.write(self.command + " " + self.path + "\n")
        n = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline(); break
                body += self.rfile.read(size); self.rfile.readline()
            body = bytes(body)
        else:
            body = self.rfile.read(n) if n else b""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_PROJECT_ROOT": root,
               "GIT_HTTP_EXPORT_ALL": "1", "REQUEST_METHOD": self.command, "PATH_INFO": path,
               "QUERY_STRING": query, "CONTENT_TYPE": self.headers.get("Content-Type", ""),
               "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1"}
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        out = subprocess.run(["git", "http-backend"], env=env, input=body,
                             capture_output=True).stdout
        head, _, rest = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().split("\r\n"):
            k, _, v = line.partition(":")
            if k.lower() == "status": status = int(v.split()[0])
            elif k: headers.append((k, v.strip()))
        self.send_response(status)
        for k, v in headers: self.send_header(k, v)
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        self.wfile.write(rest)
    do_GET = handle_any
    do_POST = handle_any
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
if cert:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
)PY";

struct GitHttpRemote {
    fs::path dir;
    std::uint16_t port = 0;
    pid_t pid = -1;

    GitHttpRemote(const fs::path& root, bool tls) : dir(root) {
        auto script = root / "git_http_server.py";
        if (!fs::exists(script)) std::ofstream(script) << kGitHttpServer;
        int out[2];
        REQUIRE(::pipe(out) == 0);
        std::string log = (root / (tls ? "https.log" : "http.log")).string();
        std::string cert = tls ? TestCerts::get().cert_pem : "";
        std::string key = tls ? TestCerts::get().key_pem : "";
        pid = ::fork();
        if (pid == 0) {
            ::dup2(out[1], 1);
            ::close(out[0]);
            ::execlp("python3", "python3", script.c_str(), (root / "repos").c_str(), log.c_str(),
                     cert.c_str(), key.c_str(), nullptr);
            ::_exit(127);
        }
        ::close(out[1]);
        std::string line;
        char c;
        while (::read(out[0], &c, 1) == 1 && c != '\n')
            line += c;
        ::close(out[0]);
        REQUIRE(!line.empty());
        port = static_cast<std::uint16_t>(std::stoi(line));
    }
    ~GitHttpRemote() {
        ::kill(pid, SIGTERM);
        ::waitpid(pid, nullptr, 0);
    }
};

int sh(const std::string& cmd) {
    return std::system(cmd.c_str());
}

std::string capture(const std::string& cmd) {
    std::string out;
    if (FILE* f = ::popen(cmd.c_str(), "r")) {
        char buf[4096];
        std::size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
            out.append(buf, n);
        ::pclose(f);
    }
    return out;
}

} // namespace

TEST_CASE("git clone through the HTTP proxy and CONNECT works and git push straight through "
          "the HTTP proxy is refused",
          "[net][sandbox-net][net06][git]") {
    NetEnv e;
    // A bare repository with one commit; http-backend accepts anonymous pushes to it.
    auto repos = e.root / "repos";
    fs::create_directories(repos);
    std::string bare = (repos / "project.git").string();
    std::string seed = (e.root / "seed").string();
    REQUIRE(sh("git init -q --bare -b main " + bare + " && git -C " + bare +
               " config http.receivepack true && git init -q -b main " + seed + " && cd " + seed +
               " && echo one > a.txt && git add a.txt && git -c user.name=t -c user.email=t@t "
               "commit -qm one && git push -q " +
               bare + " main") == 0);
    auto refs = [&] { return capture("git -C " + bare + " for-each-ref"); };
    const std::string before = refs();

    GitHttpRemote http(e.root, false), https(e.root, true);
    auto hp = std::to_string(http.port), hs = std::to_string(https.port);
    std::string plain_url = "http://127.0.0.1:" + hp + "/project.git";
    std::string tls_url = "https://127.0.0.1:" + hs + "/project.git";
    // The remote does accept pushes when asked directly (so a refusal below is the proxy's).
    REQUIRE(sh("cd " + seed + " && git push -q " + plain_url + " main:refs/heads/direct") == 0);
    const std::string with_direct = refs();
    REQUIRE(with_direct != before);
    auto receive_pack_requests = [&] {
        return capture("grep -c receive-pack " + (e.root / "http.log").string());
    };
    const std::string direct_requests = receive_pack_requests();
    CHECK(direct_requests == "2\n");

    e.server->initialize();
    // Allowed hosts; no git proxy is configured for them.
    auto sid = e.session({"127.0.0.1:" + hp, "127.0.0.1:" + hs});
    const std::string git = "git -c user.name=agent -c user.email=agent@sandbox ";

    auto clone = e.exec(sid, git + "clone -q " + plain_url + " c1 2>&1 && git -C c1 log --oneline");
    INFO(clone.dump());
    CHECK(clone["exitCode"] == 0);
    CHECK(clone["stdout"].get<std::string>().find("one") != std::string::npos);
    auto tls =
        e.exec(sid, "export GIT_SSL_CAINFO=$PWD/test-ca.pem; " + git + "clone -q " + tls_url +
                        " c2 2>&1 && git -C c2 fetch -q 2>&1 && git -C c2 log --oneline");
    INFO(tls.dump());
    CHECK(tls["exitCode"] == 0);
    CHECK(tls["stdout"].get<std::string>().find("one") != std::string::npos);
    CHECK(clone["violations"].empty());
    CHECK(tls["violations"].empty());

    auto push = e.exec(sid, "cd c1 && echo two >> a.txt && " + git + "commit -qam two && " + git +
                                "push origin HEAD:main 2>&1");
    INFO(push.dump());
    CHECK(push["exitCode"] != 0);
    CHECK(push["stdout"].get<std::string>().find("403") != std::string::npos);
    REQUIRE(push["violations"].size() >= 1);
    CHECK(push["violations"][0]["detail"]["reason"].get<std::string>().find(
              "only allowed through cordon's git proxy") != std::string::npos);
    CHECK(refs() == with_direct);
    // Nothing of the push reached the remote: only the direct push's two requests.
    CHECK(receive_pack_requests() == direct_requests);
}
