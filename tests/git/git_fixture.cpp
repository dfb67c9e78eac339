#include "git_fixture.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#ifndef CORDON_GIT_TEST_DIR
#error "CORDON_GIT_TEST_DIR must name tests/git"
#endif

namespace cordon::test {

std::string shell_quote(const std::string& s) {
    std::string o = "'";
    for (char c : s) {
        if (c == '\'')
            o += "'\\''";
        else
            o += c;
    }
    return o + "'";
}

std::string make_temp_dir(const std::string& prefix) {
    std::string t = "/tmp/" + prefix + "-XXXXXX";
    if (!::mkdtemp(t.data())) throw std::runtime_error("mkdtemp");
    return t;
}

std::string read_text(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

GitRemote::GitRemote(const std::string& root, const std::string& token, const std::string& l,
                     const std::string& redirect)
    : log(l) {
    auto& certs = TestCerts::get();
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
        ::dup2(p[1], 1);
        std::string script = std::string(CORDON_GIT_TEST_DIR) + "/git_remote.py";
        std::vector<std::string> a = {"python3", script,         "--root", root,
                                      "--token", token,          "--log",  l,
                                      "--cert",  certs.cert_pem, "--key",  certs.key_pem};
        if (!redirect.empty()) {
            a.push_back("--redirect");
            a.push_back(redirect);
        }
        std::vector<char*> argv;
        for (auto& s : a)
            argv.push_back(s.data());
        argv.push_back(nullptr);
        ::execvp("python3", argv.data());
        ::_exit(127);
    }
    ::close(p[1]);
    std::string line;
    char c;
    while (::read(p[0], &c, 1) == 1 && c != '\n')
        line += c;
    ::close(p[0]);
    if (line.empty()) throw std::runtime_error("git_remote.py did not start");
    port = static_cast<std::uint16_t>(std::stoi(line));
}

GitRemote::~GitRemote() {
    if (pid_ > 0) {
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
    }
}

std::vector<json> GitRemote::requests() const {
    std::vector<json> out;
    std::istringstream is(read_text(log));
    std::string line;
    while (std::getline(is, line))
        if (!line.empty()) out.push_back(json::parse(line));
    return out;
}

GitWorld::GitWorld(GitProxyOptions opts, GitAskFn ask) {
    dir = make_temp_dir("cordon-git-test");
    root = dir + "/remote";
    home = dir + "/home";
    std::string seed = dir + "/seed";
    std::string sh = "set -e; mkdir -p " + root + "/owner " + root + "/moved " + home + " " + seed +
                     "; export HOME=" + home +
                     " GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=seed GIT_AUTHOR_EMAIL=seed@test "
                     "GIT_COMMITTER_NAME=seed GIT_COMMITTER_EMAIL=seed@test; "
                     "git init -q --bare -b main " +
                     root +
                     "/owner/repo.git; "
                     "git -C " +
                     root +
                     "/owner/repo.git config receive.advertisePushOptions true; "
                     "git init -q --bare -b main " +
                     root +
                     "/owner/other.git; "
                     "git init -q --bare -b main " +
                     root +
                     "/moved/repo.git; "
                     "cd " +
                     seed +
                     " && git init -q -b main && echo one > a.txt && git add a.txt && "
                     "git commit -q -m first && echo two >> a.txt && git commit -q -am second && "
                     "git push -q " +
                     root +
                     "/owner/repo.git main main:refs/heads/cordon/existing && "
                     "git push -q " +
                     root +
                     "/owner/other.git main && "
                     "git push -q " +
                     root + "/moved/repo.git main && echo ok";
    auto r = run("sh -c " + shell_quote(sh) + " 2>&1");
    if (r.out.find("ok") == std::string::npos) throw std::runtime_error("seed: " + r.out);
    other_origin = std::make_unique<GitRemote>(root, token, dir + "/other.log");
    remote = std::make_unique<GitRemote>(root, token, dir + "/remote.log",
                                         "https://127.0.0.1:" + std::to_string(other_origin->port));
    // The token file of the second remote; the first one reads an env variable of the server
    // process (this test process), which the clients never inherit (env -i).
    std::ofstream(dir + "/token") << token << "\n";
    ::setenv("CORDON_GIT_TEST_TOKEN", token.c_str(), 1);
    std::string base = "https://localhost:" + std::to_string(remote->port);
    json cfg = {
        {"caFile", TestCerts::get().ca_pem},
        {"remotes",
         {{{"url", base + "/owner/repo.git"}, {"credential", {{"env", "CORDON_GIT_TEST_TOKEN"}}}},
          {{"url", base + "/moved/repo.git"}, {"credential", {{"file", dir + "/token"}}}}}}};
    config = parse_git_config(cfg);
    t.sync([&] {
        proxy = std::make_unique<GitProxy>(
            t.io.get_executor(), config, opts, ask,
            [this](const json& j) {
                std::lock_guard lk(m);
                logs.push_back(j);
            },
            [this](const json& j) {
                std::lock_guard lk(m);
                violations.push_back(j);
            });
        proxy_port = proxy->add_listener(listen_loopback());
        proxy->start();
    });
    env = git_env(config, proxy_port);
}

GitWorld::~GitWorld() {
    t.sync([&] { proxy->stop(); });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    t.sync([&] { proxy.reset(); });
    remote.reset();
    other_origin.reset();
    run("rm -rf " + shell_quote(dir));
}

std::string GitWorld::url(const std::string& repo) const {
    return "https://localhost:" + std::to_string(remote->port) + "/" + repo;
}

std::string GitWorld::client_env_string() const {
    std::string s = "env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=" + shell_quote(home) +
                    " GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=agent GIT_AUTHOR_EMAIL=agent@test "
                    "GIT_COMMITTER_NAME=agent GIT_COMMITTER_EMAIL=agent@test";
    for (auto& [k, v] : env)
        s += " " + k + "=" + shell_quote(v);
    return s;
}

CommandResult GitWorld::git(const std::string& cwd, const std::string& args) {
    return run("cd " + shell_quote(cwd) + " && " + client_env_string() + " git " + args + " 2>&1");
}

std::string GitWorld::remote_refs(const std::string& repo) {
    return run("git --git-dir=" + shell_quote(root + "/" + repo) +
               " for-each-ref --format='%(refname) %(objectname)'")
        .out;
}

} // namespace cordon::test
