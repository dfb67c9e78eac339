// The git proxy end to end: real git clients, real `git http-backend` behind HTTPS with the
// test CA and a token, the GitProxy on 127.0.0.1 in between.
#include "git_fixture.hpp"

#include "cordon/server/git/receive_pack.hpp"

#include <catch2/catch.hpp>
#include <zlib.h>

using namespace cordon::test;

namespace {

bool any_auth(const std::vector<json>& reqs) {
    for (auto& r : reqs)
        if (!r["authorization"].is_null()) return true;
    return false;
}

// Every file under `dir` and the client environment: no token anywhere.
void check_no_token(GitWorld& w, const std::string& dir) {
    auto r = run("grep -rl " + shell_quote(w.token) + " " + shell_quote(dir) + " " +
                 shell_quote(w.home) + " 2>/dev/null");
    CHECK(r.out.empty());
    CHECK(w.client_env_string().find(w.token) == std::string::npos);
}

std::string clone(GitWorld& w, const std::string& name = "work") {
    auto r = w.git(w.dir, "clone -q " + w.url("owner/repo.git") + " " + name);
    INFO(r.out);
    REQUIRE(r.status == 0);
    return w.dir + "/" + name;
}

std::string commit(GitWorld& w, const std::string& work, const std::string& msg) {
    auto r = w.git(work, "commit -q --allow-empty -m " + shell_quote(msg));
    REQUIRE(r.status == 0);
    return run("git -C " + shell_quote(work) + " rev-parse HEAD").out;
}

} // namespace

TEST_CASE("git proxy: clone, fetch and push to an allowed branch; no token on the client",
          "[git]") {
    GitWorld w;
    auto work = clone(w);
    CHECK(read_text(work + "/a.txt") == "one\ntwo\n");
    // The workspace's config names the real remote, untouched by the routing.
    CHECK(read_text(work + "/.git/config").find(w.url("owner/repo.git")) != std::string::npos);

    // Fetch new upstream commits.
    run("cd " + shell_quote(w.dir + "/seed") +
        " && GIT_AUTHOR_NAME=s GIT_AUTHOR_EMAIL=s@t GIT_COMMITTER_NAME=s GIT_COMMITTER_EMAIL=s@t "
        "git commit -q --allow-empty -m third && git push -q " +
        shell_quote(w.root + "/owner/repo.git") + " main");
    auto f = w.git(work, "fetch -q origin");
    INFO(f.out);
    CHECK(f.status == 0);
    CHECK(w.git(work, "log -1 --format=%s origin/main").out == "third\n");

    // Push a new allowed branch, then a fast-forward of it, then a big one (chunked body).
    commit(w, work, "agent work");
    auto p = w.git(work, "push origin HEAD:refs/heads/cordon/feature");
    INFO(p.out);
    CHECK(p.status == 0);
    CHECK(w.remote_refs().find("refs/heads/cordon/feature") != std::string::npos);
    commit(w, work, "more work");
    p = w.git(work, "push origin HEAD:refs/heads/cordon/feature");
    INFO(p.out);
    CHECK(p.status == 0);
    run("head -c 3000000 /dev/urandom > " + shell_quote(work + "/big.bin"));
    w.git(work, "add big.bin");
    auto head = commit(w, work, "big");
    p = w.git(work, "push origin HEAD:refs/heads/cordon/feature");
    INFO(p.out);
    CHECK(p.status == 0);
    CHECK(w.remote_refs().find("refs/heads/cordon/feature " + head) != std::string::npos);

    // The sandbox also has HTTP(S)_PROXY set (the network proxy); git must still come here
    // directly (and NO_PROXY is not needed for that).
    auto pr = run("cd " + shell_quote(w.dir) + " && " + w.client_env_string() +
                  " http_proxy=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 "
                  "ALL_PROXY=socks5h://127.0.0.1:9 git clone -q " +
                  w.url("owner/repo.git") + " via-proxy-env 2>&1");
    INFO(pr.out);
    CHECK(pr.status == 0);

    check_no_token(w, work);
    // Every request the remote saw carried the token (added by the proxy).
    for (auto& r : w.remote->requests())
        CHECK(r["authorization"].is_string());
    auto logs = w.logs_copy();
    bool pushed = false;
    for (auto& l : logs)
        if (l["service"] == "git-receive-pack" && l.contains("refs") && l["decision"] == "allowed")
            pushed = true;
    CHECK(pushed);
    for (auto& l : logs)
        CHECK(l.dump().find(w.token) == std::string::npos);
    CHECK(w.violations_copy().empty());
}

TEST_CASE("git proxy: off-policy pushes are refused whole, with git's own error", "[git]") {
    GitWorld w;
    auto work = clone(w);
    auto before = w.remote_refs();
    commit(w, work, "agent work");

    struct Case {
        const char* name;
        std::string args;
        const char* reason;
    };
    std::vector<Case> cases = {
        {"push to main", "push origin HEAD:main", "outside the allowed refs"},
        {"mixed batch", "push origin HEAD:refs/heads/cordon/ok HEAD:refs/heads/main",
         "outside the allowed refs"},
        {"branch named --mirror", "push origin -- HEAD:refs/heads/--mirror",
         "outside the allowed refs"},
        {"magic ref", "push origin HEAD:refs/for/main", "outside the allowed refs"},
        {"tag", "push origin HEAD:refs/tags/v1", "tag pushes are not allowed"},
        {"deletion", "push origin :refs/heads/cordon/existing", "deleting refs is not allowed"},
        {"force push", "push --force origin HEAD~2:refs/heads/cordon/existing", "non-fast-forward"},
        {"push option", "push -o ci.skip origin HEAD:refs/heads/cordon/opt",
         "push options are not allowed"},
        {"all branches", "push --all origin", "outside the allowed refs"},
    };
    w.git(work, "branch cordon/x"); // --all also carries an allowed ref
    for (auto& c : cases) {
        SECTION(c.name) {
            auto r = w.git(work, c.args);
            INFO(r.out);
            CHECK(r.status != 0);
            CHECK(r.out.find("cordon:") != std::string::npos);
            CHECK(r.out.find(c.reason) != std::string::npos);
            CHECK(w.remote_refs() == before);
            CHECK_FALSE(w.violations_copy().empty());
        }
    }
}

TEST_CASE("git proxy: fast-forward proven from the pack; rewritten history refused", "[git]") {
    GitWorld w;
    auto work = clone(w);
    w.git(work, "checkout -q -b cordon/existing origin/cordon/existing");
    commit(w, work, "ff");
    auto r = w.git(work, "push origin cordon/existing");
    INFO(r.out);
    CHECK(r.status == 0);
    // Rewrite: amend and force.
    w.git(work, "commit -q --amend --allow-empty -m rewritten");
    auto before = w.remote_refs();
    r = w.git(work, "push --force origin cordon/existing");
    INFO(r.out);
    CHECK(r.status != 0);
    CHECK(r.out.find("non-fast-forward") != std::string::npos);
    CHECK(w.remote_refs() == before);
}

TEST_CASE("git proxy: a fast-forward through commits the remote already had is proven by "
          "asking the remote",
          "[git]") {
    GitWorld w;
    // main moves ahead of cordon/existing on the remote; the agent builds on main and pushes
    // cordon/existing: the pack holds only the new commit, whose parent the remote has.
    run("cd " + shell_quote(w.dir + "/seed") +
        " && GIT_AUTHOR_NAME=s GIT_AUTHOR_EMAIL=s@t GIT_COMMITTER_NAME=s GIT_COMMITTER_EMAIL=s@t "
        "git commit -q --allow-empty -m upstream && git push -q " +
        shell_quote(w.root + "/owner/repo.git") + " main");
    auto work = clone(w);
    w.git(work, "checkout -q -b cordon/existing origin/main");
    auto head = commit(w, work, "on top of main");
    auto r = w.git(work, "push origin cordon/existing");
    INFO(r.out);
    CHECK(r.status == 0);
    CHECK(w.remote_refs().find("refs/heads/cordon/existing " + head) != std::string::npos);
    bool asked = false;
    for (auto& l : w.logs_copy())
        asked = asked || (l.value("ancestryFetched", false) && l["decision"] == "allowed");
    CHECK(asked);
    // And a branch rewound to an older commit is not a fast-forward, whatever the remote has.
    w.git(work, "reset -q --hard HEAD~3");
    r = w.git(work, "push --force origin cordon/existing");
    CHECK(r.status != 0);
    CHECK(r.out.find("non-fast-forward") != std::string::npos);
    CHECK(w.remote_refs().find("refs/heads/cordon/existing " + head) != std::string::npos);
}

TEST_CASE("git proxy: an approved off-policy push goes through; the question names refs and "
          "commits",
          "[git]") {
    std::mutex m;
    std::vector<json> questions;
    GitWorld w({}, [&](json q) -> boost::asio::awaitable<bool> {
        std::lock_guard lk(m);
        questions.push_back(q);
        co_return q["refs"][0]["ref"] == "refs/heads/main";
    });
    auto work = clone(w);
    auto head = commit(w, work, "approved change");
    auto r = w.git(work, "push origin HEAD:main");
    INFO(r.out);
    CHECK(r.status == 0);
    CHECK(w.remote_refs().find("refs/heads/main " + head) != std::string::npos);
    r = w.git(work, "push origin HEAD:refs/heads/release");
    CHECK(r.status != 0);
    std::lock_guard lk(m);
    REQUIRE(questions.size() == 2);
    CHECK(questions[0]["kind"] == "git");
    CHECK(questions[0]["repo"] == w.url("owner/repo.git"));
    CHECK(questions[0]["host"] == "localhost");
    CHECK(questions[0]["port"] == w.remote->port);
    CHECK(questions[0]["commits"][0]["summary"] == "approved change");
    CHECK(questions[0]["refs"][0]["new"] == head.substr(0, 40));
}

TEST_CASE("git proxy: other repositories and non-git requests get 403 and no credential", "[git]") {
    GitWorld w;
    // Same host, not configured.
    auto r = w.git(w.dir, "clone -q " + w.url("owner/other.git") + " o1");
    CHECK(r.status != 0);
    CHECK(r.out.find("403") != std::string::npos);
    // Path tricks.
    for (std::string path : {"owner/repo.git/../other.git", "owner%2fother.git", "OWNER//repo.git",
                             "x/../owner/other.git"}) {
        auto target = "/localhost:" + std::to_string(w.remote->port) + "/" + path +
                      "/info/refs?service=git-upload-pack";
        auto out = raw_exchange(w.proxy_port, "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n");
        CHECK(out.rfind("HTTP/1.1 403", 0) == 0);
    }
    // Non-git paths of the configured repository, and a client Authorization.
    auto base = "/localhost:" + std::to_string(w.remote->port) + "/owner/repo.git";
    for (std::string t : {base + "/HEAD", base + "/objects/info/packs", base + "/info/refs",
                          base + "/info/refs?service=git-upload-pack&x=1", std::string("/"),
                          "/localhost:" + std::to_string(w.remote->port) + "/robots.txt"}) {
        auto out = raw_exchange(w.proxy_port, "GET " + t + " HTTP/1.1\r\nHost: x\r\n\r\n");
        CHECK(out.rfind("HTTP/1.1 403", 0) == 0);
    }
    // The backend never saw any of it.
    CHECK(w.remote->requests().empty());
    CHECK(w.violations_copy().size() >= 10);

    // A configured path still works, and a client's own Authorization is replaced.
    auto out = raw_exchange(w.proxy_port, "GET " + base +
                                              "/info/refs?service=git-upload-pack HTTP/1.1\r\n"
                                              "Host: x\r\nAuthorization: Basic Zm9vOmJhcg==\r\n"
                                              "Connection: close\r\n\r\n");
    CHECK(out.rfind("HTTP/1.1 200", 0) == 0);
    auto reqs = w.remote->requests();
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0]["authorization"] != "Basic Zm9vOmJhcg==");
    CHECK(reqs[0]["path"] == "/owner/repo.git/info/refs");
}

TEST_CASE("git proxy: a redirect to another origin carries no credential", "[git]") {
    GitWorld w;
    // /moved/repo.git is configured; its remote answers 302 to another origin (127.0.0.1 on
    // another port). The client may follow it, but only with what it has: no token.
    auto r = run("cd " + shell_quote(w.dir) + " && " + w.client_env_string() +
                 " GIT_SSL_CAINFO=" + shell_quote(TestCerts::get().ca_pem) + " git clone -q " +
                 w.url("moved/repo.git") + " m1 2>&1");
    INFO(r.out);
    CHECK(r.status != 0);
    auto first = w.remote->requests();
    REQUIRE_FALSE(first.empty());
    CHECK(first[0]["path"] == "/moved/repo.git/info/refs");
    auto other = w.other_origin->requests();
    CHECK_FALSE(other.empty()); // the client did follow it
    CHECK_FALSE(any_auth(other));
    // The redirect that reached the client pointed to the other origin, as sent.
    bool seen = false;
    for (auto& l : w.logs_copy())
        if (l.contains("redirect"))
            seen = l["redirect"].get<std::string>().find("https://127.0.0.1:" +
                                                         std::to_string(w.other_origin->port)) == 0;
    CHECK(seen);
}

TEST_CASE("git proxy: gzip and chunked receive-pack bodies are parsed before forwarding", "[git]") {
    GitWorld w;
    std::string zero(cordon::server::git::kZeroId);
    std::string id = "1111111111111111111111111111111111111111";
    std::string body =
        cordon::server::git::pkt_line(zero + " " + id + " refs/heads/main" + std::string(1, '\0') +
                                      "report-status side-band-64k\n") +
        "0000";
    // gzip it
    z_stream z{};
    deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    std::string gz(1024, '\0');
    z.next_in = reinterpret_cast<Bytef*>(body.data());
    z.avail_in = static_cast<uInt>(body.size());
    z.next_out = reinterpret_cast<Bytef*>(gz.data());
    z.avail_out = static_cast<uInt>(gz.size());
    deflate(&z, Z_FINISH);
    gz.resize(z.total_out);
    deflateEnd(&z);
    char hex[16];
    std::snprintf(hex, sizeof hex, "%zx", gz.size());
    auto target =
        "/localhost:" + std::to_string(w.remote->port) + "/owner/repo.git/git-receive-pack";
    auto out =
        raw_exchange(w.proxy_port, "POST " + target +
                                       " HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
                                       "Content-Type: application/x-git-receive-pack-request\r\n"
                                       "Transfer-Encoding: chunked\r\n\r\n" +
                                       hex + "\r\n" + gz + "\r\n0\r\n\r\n");
    CHECK(out.rfind("HTTP/1.1 200", 0) == 0);
    CHECK(out.find("ng refs/heads/main cordon: ref outside") != std::string::npos);
    CHECK(w.remote->requests().empty());

    // Expect: 100-continue is answered before the body is read.
    out = raw_exchange(w.proxy_port,
                       "POST " + target +
                           " HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                           "Content-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n",
                       std::chrono::milliseconds(500));
    CHECK(out.rfind("HTTP/1.1 100 Continue", 0) == 0);
}
