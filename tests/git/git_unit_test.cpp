// Pure parts of the git proxy: config parsing, routing and canonicalisation, the sandbox's
// git environment, pkt-line parsing, push policy, report-status.
#include "cordon/server/git/config.hpp"
#include "cordon/server/git/proxy.hpp"
#include "cordon/server/git/receive_pack.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <unistd.h>

using namespace cordon::server::git;
using json = nlohmann::json;

namespace {

GitConfig sample() {
    return parse_git_config(json::parse(R"({
        "caFile": "/etc/ca.pem",
        "remotes": [
          {"url": "https://Git.Example.com/Owner/Repo.git", "credential": {"env": "TOK"}},
          {"url": "https://forge.test:8443/group/sub/proj", "credential": {"file": "/t"},
           "push": {"refs": ["refs/heads/agent/*", "refs/heads/exact"], "allowDelete": true}}
        ]})"));
}

std::string error_of(const std::string& text) {
    try {
        parse_git_config(json::parse(text));
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

std::string cmd(const std::string& old_id, const std::string& new_id, const std::string& ref,
                const std::string& caps = "") {
    std::string line = old_id + " " + new_id + " " + ref;
    if (!caps.empty()) line += std::string(1, '\0') + caps;
    return pkt_line(line + "\n");
}

const std::string A = "1111111111111111111111111111111111111111";
const std::string B = "2222222222222222222222222222222222222222";
const std::string Z(kZeroId);

} // namespace

TEST_CASE("git config: parsed and validated with JSON paths", "[git]") {
    auto c = sample();
    REQUIRE(c.remotes.size() == 2);
    CHECK(c.ca_file == "/etc/ca.pem");
    CHECK(c.remotes[0].host == "git.example.com");
    CHECK(c.remotes[0].origin == "git.example.com");
    CHECK(c.remotes[0].path == "Owner/Repo.git");
    CHECK(c.remotes[0].key == "owner/repo");
    CHECK(c.remotes[0].push.refs == std::vector<std::string>{"refs/heads/cordon/*"});
    CHECK_FALSE(c.remotes[0].push.allow_force);
    CHECK(c.remotes[1].origin == "forge.test:8443");
    CHECK(c.remotes[1].port == 8443);
    CHECK(c.remotes[1].key == "group/sub/proj");
    CHECK(c.remotes[1].push.allow_delete);

    CHECK_THAT(error_of(R"({"remotes": [{"url": "http://h/o/r", "credential": {"env": "X"}}]})"),
               Catch::Contains("git.remotes[0].url"));
    CHECK_THAT(
        error_of(R"({"remotes": [{"url": "https://u:p@h/o/r", "credential": {"env": "X"}}]})"),
        Catch::Contains("git.remotes[0].url"));
    CHECK_THAT(
        error_of(R"({"remotes": [{"url": "https://h/o/../r", "credential": {"env": "X"}}]})"),
        Catch::Contains("git.remotes[0].url"));
    CHECK_THAT(error_of(R"({"remotes": [{"url": "https://h/o/r"}]})"),
               Catch::Contains("git.remotes[0].credential"));
    CHECK_THAT(
        error_of(
            R"({"remotes": [{"url": "https://h/o/r", "credential": {"env": "X", "file": "/f"}}]})"),
        Catch::Contains("git.remotes[0].credential"));
    CHECK_THAT(
        error_of(R"({"remotes": [{"url": "https://h/o/r", "credential": {"helper": false}}]})"),
        Catch::Contains("git.remotes[0].credential.helper"));
    CHECK_THAT(error_of(R"({"remotes": [{"url": "https://h/o/r", "credential": {"env": "X"},
                          "push": {"refs": ["heads/x"]}}]})"),
               Catch::Contains("git.remotes[0].push.refs[0]"));
    CHECK_THAT(error_of(R"({"remotes": [{"url": "https://h/o/r", "credential": {"env": "X"},
                          "push": {"allowForce": "yes"}}]})"),
               Catch::Contains("git.remotes[0].push.allowForce"));
    CHECK_THAT(
        error_of(R"({"remotes": [{"url": "https://h/o/r", "credential": {"env": "X"}, "x": 1}]})"),
        Catch::Contains("git.remotes[0].x"));
    CHECK_THAT(error_of(R"({"caFile": "rel.pem"})"), Catch::Contains("git.caFile"));
}

TEST_CASE("git config: repository paths are canonical or refused", "[git]") {
    CHECK(canonical_repo_key("Owner/Repo.git") == "owner/repo");
    CHECK(canonical_repo_key("owner/repo") == "owner/repo");
    CHECK_FALSE(canonical_repo_key("owner//repo"));
    CHECK_FALSE(canonical_repo_key("owner/../repo"));
    CHECK_FALSE(canonical_repo_key("owner/./repo"));
    CHECK_FALSE(canonical_repo_key("owner%2frepo"));
    CHECK_FALSE(canonical_repo_key("owner/repo%2egit"));
    CHECK_FALSE(canonical_repo_key("user@owner/repo"));
    CHECK_FALSE(canonical_repo_key("owner/re\npo"));
    CHECK_FALSE(canonical_repo_key("repo"));
    CHECK_FALSE(canonical_repo_key("owner/.git"));
    CHECK_FALSE(canonical_repo_key("/owner/repo"));
    CHECK_FALSE(canonical_repo_key("owner/repo/"));
}

TEST_CASE("git proxy: routes exactly the smart-HTTP endpoints of configured repositories",
          "[git]") {
    auto c = sample();
    std::string why;
    auto r =
        route_request(c, "GET", "/git.example.com/owner/repo/info/refs?service=git-upload-pack");
    REQUIRE(r);
    CHECK(r->remote == 0);
    CHECK(r->advertisement);
    CHECK(r->upstream_target == "/Owner/Repo.git/info/refs?service=git-upload-pack");
    r = route_request(c, "POST", "/GIT.example.com/OWNER/Repo.git/git-receive-pack");
    REQUIRE(r);
    CHECK(r->service == GitService::receive_pack);
    CHECK(r->upstream_target == "/Owner/Repo.git/git-receive-pack");
    r = route_request(c, "POST", "/forge.test:8443/group/sub/proj.git/git-upload-pack");
    REQUIRE(r);
    CHECK(r->remote == 1);

    auto refused = [&](std::string m, std::string t) { return !route_request(c, m, t, &why); };
    CHECK(refused("GET", "/git.example.com/owner/other/info/refs?service=git-upload-pack"));
    CHECK(why == "repository not configured");
    CHECK(refused("GET", "/git.example.com/attacker/repo/info/refs?service=git-upload-pack"));
    CHECK(refused("GET", "/forge.test/group/sub/proj/info/refs?service=git-upload-pack"));
    CHECK(refused("GET", "/git.example.com/owner%2frepo/info/refs?service=git-upload-pack"));
    CHECK(refused("GET", "/git.example.com/owner//repo/info/refs?service=git-upload-pack"));
    CHECK(refused("GET", "/git.example.com/x/../owner/repo/info/refs?service=git-upload-pack"));
    CHECK(refused("GET", "/git.example.com/owner/repo/info/refs?service=git-upload-pack&x=1"));
    CHECK(refused("GET", "/git.example.com/owner/repo/info/refs"));
    CHECK(refused("GET", "/git.example.com/owner/repo/HEAD"));
    CHECK(refused("GET", "/git.example.com/owner/repo/objects/info/packs"));
    CHECK(refused("GET", "/git.example.com/owner/repo/git-upload-pack"));
    CHECK(refused("POST", "/git.example.com/owner/repo/info/refs?service=git-upload-pack"));
    CHECK(refused("POST", "/git.example.com/owner/repo/git-upload-pack?x"));
    CHECK(refused("GET",
                  "/git.example.com%0ahost=evil/owner/repo/info/refs?service=git-upload-pack"));
    CHECK(refused("GET", "//git.example.com/owner/repo/info/refs?service=git-upload-pack"));
    CHECK(refused("GET", "/user@git.example.com/owner/repo/info/refs?service=git-upload-pack"));
    CHECK(refused("GET", "http://git.example.com/owner/repo/info/refs?service=git-upload-pack"));
    CHECK(refused("GET", "/"));
}

TEST_CASE("git proxy: the sandbox's environment routes git and holds no credential", "[git]") {
    auto env = git_env(sample(), 8418);
    CHECK(env.at("GIT_TERMINAL_PROMPT") == "0");
    int n = std::stoi(env.at("GIT_CONFIG_COUNT"));
    std::map<std::string, std::string> cfg;
    for (int i = 0; i < n; ++i)
        cfg[env.at("GIT_CONFIG_VALUE_" + std::to_string(i))] =
            env.at("GIT_CONFIG_KEY_" + std::to_string(i));
    CHECK(cfg.at("https://git.example.com/") ==
          "url.http://127.0.0.1:8418/git.example.com/.insteadOf");
    CHECK(cfg.at("https://forge.test:8443/") ==
          "url.http://127.0.0.1:8418/forge.test:8443/.insteadOf");
    for (auto& [k, v] : env) {
        CHECK(k.find("TOK") == std::string::npos);
        CHECK(v.find("TOK") == std::string::npos);
    }
}

TEST_CASE("receive-pack: commands, capabilities and push options are parsed", "[git]") {
    std::string body =
        cmd(A, B, "refs/heads/cordon/x", "report-status side-band-64k push-options") +
        cmd(Z, B, "refs/heads/--mirror") + "0000" + pkt_line("ci.skip\n") + "0000";
    auto r = parse_receive_pack(body);
    REQUIRE(r.commands.size() == 2);
    CHECK(r.commands[0].old_id == A);
    CHECK(r.commands[0].ref == "refs/heads/cordon/x");
    CHECK(r.commands[1].ref == "refs/heads/--mirror");
    CHECK(r.commands[1].is_create());
    CHECK(r.has("side-band-64k"));
    CHECK(r.push_options == std::vector<std::string>{"ci.skip"});
    CHECK(r.pack_offset == body.size());
    CHECK_THROWS(parse_receive_pack("00"));
    CHECK_THROWS(parse_receive_pack(pkt_line("garbage\n") + "0000"));
    CHECK_THROWS(parse_receive_pack("ffff"));
}

TEST_CASE("push policy: refs, deletions, tags, force, mixed batches", "[git]") {
    PushPolicy pol;
    PackCommits pack;
    pack.commits[B] = PackCommit{{A}, "s", "a"};
    auto decide = [&](std::string body) {
        return check_push(parse_receive_pack(body + "0000"), pack, pol);
    };
    CHECK(decide(cmd(A, B, "refs/heads/cordon/x", "report-status")).allowed); // fast-forward
    CHECK(decide(cmd(Z, B, "refs/heads/cordon/new")).allowed);
    CHECK_FALSE(decide(cmd(A, B, "refs/heads/main")).allowed);
    CHECK_FALSE(decide(cmd(A, B, "refs/heads/--mirror")).allowed);
    CHECK_FALSE(decide(cmd(A, B, "refs/for/main")).allowed);
    CHECK_FALSE(decide(cmd(A, B, "refs/heads/cordon/../main")).allowed);
    CHECK_FALSE(decide(cmd(B, Z, "refs/heads/cordon/x")).allowed);
    CHECK_FALSE(decide(cmd(Z, B, "refs/tags/cordon/v1")).allowed);
    CHECK_FALSE(decide(cmd(B, A, "refs/heads/cordon/x")).allowed); // not proven FF
    auto mixed = decide(cmd(Z, B, "refs/heads/cordon/ok") + cmd(A, B, "refs/heads/main"));
    CHECK_FALSE(mixed.allowed);
    CHECK(mixed.refs[0].allowed);
    CHECK_FALSE(mixed.refs[1].allowed);
    pol.allow_force = true;
    pol.allow_delete = true;
    CHECK(decide(cmd(B, A, "refs/heads/cordon/x")).allowed);
    CHECK(decide(cmd(B, Z, "refs/heads/cordon/x")).allowed);
    CHECK_FALSE(decide(cmd(B, A, "refs/heads/main")).allowed);
    CHECK(ref_matches("refs/heads/cordon/*", "refs/heads/cordon/a/b"));
    CHECK_FALSE(ref_matches("refs/heads/cordon/*", "refs/heads/cordon/"));
    CHECK_FALSE(ref_matches("refs/heads/cordon/*", "refs/heads/cordonx"));
}

TEST_CASE("report-status: side-band wrapped, one ng per command", "[git]") {
    auto req = parse_receive_pack(cmd(Z, B, "refs/heads/cordon/ok", "report-status side-band-64k") +
                                  cmd(A, B, "refs/heads/main") + "0000");
    auto d = check_push(req, PackCommits{}, PushPolicy{});
    auto out = report_status(req, d, "cordon: push refused");
    CHECK(out.substr(0, 4) != "0000");
    CHECK(out.find("\2cordon: push refused\n") != std::string::npos);
    CHECK(out.find("unpack ok\n") != std::string::npos);
    CHECK(out.find("ng refs/heads/main cordon: ref outside") != std::string::npos);
    CHECK(out.find("ng refs/heads/cordon/ok cordon: refused with the rest") != std::string::npos);
    CHECK(out.substr(out.size() - 4) == "0000");
    req.capabilities = {"report-status"};
    auto plain = report_status(req, d, "x");
    CHECK(plain.substr(0, 4) == "000e"); // "unpack ok\n"
}

TEST_CASE("credentials: env, file, and the host's git credential fill", "[git]") {
    char tmpl[] = "/tmp/cordon-git-cred-XXXXXX";
    REQUIRE(::mkdtemp(tmpl));
    std::string dir = tmpl;
    Remote r;
    r.origin = "forge.test:8443";
    r.path = "group/proj.git";
    r.credential.kind = CredentialSource::Kind::file;
    r.credential.name = dir + "/tok";
    std::ofstream(r.credential.name) << "file-token\nignored\n";
    auto c = resolve_credential(r);
    CHECK(c.password == "file-token");
    CHECK(c.authorization() == "Basic eC1hY2Nlc3MtdG9rZW46ZmlsZS10b2tlbg==");

    r.credential.kind = CredentialSource::Kind::env;
    r.credential.name = "CORDON_GIT_UNIT_TOKEN_UNSET";
    CHECK_THROWS_WITH(resolve_credential(r), Catch::Contains("CORDON_GIT_UNIT_TOKEN_UNSET"));

    // A helper configured in the (host's) global git config; it is asked for this host.
    std::ofstream(dir + "/gitconfig")
        << "[credential]\n\thelper = \"!f() { cat > " << dir
        << "/asked; echo username=bot; echo password=helper-token; }; f\"\n";
    const char* old = std::getenv("GIT_CONFIG_GLOBAL");
    std::string saved = old ? old : "";
    ::setenv("GIT_CONFIG_GLOBAL", (dir + "/gitconfig").c_str(), 1);
    r.credential.kind = CredentialSource::Kind::helper;
    c = resolve_credential(r);
    if (old)
        ::setenv("GIT_CONFIG_GLOBAL", saved.c_str(), 1);
    else
        ::unsetenv("GIT_CONFIG_GLOBAL");
    CHECK(c.username == "bot");
    CHECK(c.password == "helper-token");
    std::ifstream asked(dir + "/asked");
    std::string q((std::istreambuf_iterator<char>(asked)), std::istreambuf_iterator<char>());
    CHECK_THAT(q, Catch::Contains("host=forge.test:8443"));
    // (path reaches helpers only with credential.useHttpPath, as for git itself.)
    std::system(("rm -rf " + dir).c_str());
}
