#include "harness.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <ftw.h>
#include <memory>
#include <poll.h>
#include <sstream>
#include <stdexcept>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace cordon::sandbox::testing {

std::string init_exe() {
    return CORDON_SANDBOX_EXE;
}
std::string attack_exe() {
    return CORDON_ATTACK_EXE;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return "";
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_file(const std::string& path, const std::string& content, int mode) {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) throw std::runtime_error("create " + path + ": " + strerror(errno));
    if (write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size()))
        throw std::runtime_error("write " + path);
    fchmod(fd, static_cast<mode_t>(mode));
    close(fd);
}

bool exists(const std::string& path) {
    struct stat st;
    return lstat(path.c_str(), &st) == 0;
}

const std::map<std::string, std::string> kFakeSecrets = {
    {".ssh/id_rsa", "-----BEGIN FAKE OPENSSH PRIVATE KEY----- cordon-test-ssh\n"},
    {".aws/credentials", "[default]\naws_secret_access_key = cordon-test-aws\n"},
    {".netrc", "machine example.com login u password cordon-test-netrc\n"},
    {".config/gh/hosts.yml", "github.com:\n  oauth_token: cordon-test-gh\n"},
    {".gnupg/private-keys-v1.d/key", "cordon-test-gnupg\n"},
    {".docker/config.json", "{\"auths\":{\"x\":{\"auth\":\"cordon-test-docker\"}}}\n"},
    {".kube/config", "token: cordon-test-kube\n"},
    {".bashrc", "# fake bashrc cordon-test\n"},
    {".config/other/settings", "not a secret\n"},
};

namespace {

void mkdirs(const std::string& path, int mode = 0755) {
    for (std::size_t i = 1; i <= path.size(); ++i) {
        if (i == path.size() || path[i] == '/') {
            std::string p = path.substr(0, i);
            if (mkdir(p.c_str(), static_cast<mode_t>(mode)) != 0 && errno != EEXIST)
                throw std::runtime_error("mkdir " + p + ": " + strerror(errno));
        }
    }
}

int remove_entry(const char* path, const struct stat*, int, FTW*) {
    if (::remove(path) != 0) {
        chmod(path, 0700);
        ::remove(path);
    }
    return 0;
}

int make_writable(const char* path, const struct stat* st, int type, FTW*) {
    if (type == FTW_D || type == FTW_DNR) chmod(path, (st->st_mode & 07777) | 0700);
    return 0;
}

} // namespace

TempTree::TempTree() {
    const char* base = getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/cordon-test-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp: " + std::string(strerror(errno)));
    root = tmpl;
    chmod(root.c_str(), 0755);
    workspace = root + "/ws";
    home = root + "/home";
    state = root + "/state";
    mkdirs(workspace);
    mkdirs(home);
    mkdirs(state, 0700);
    for (const auto& [rel, bytes] : kFakeSecrets) {
        std::string p = home + "/" + rel;
        mkdirs(p.substr(0, p.rfind('/')), 0700);
        write_file(p, bytes, 0600);
    }
    mkdirs(home + "/.cargo/bin");
    write_file(home + "/.cargo/bin/cargo-fake", "#!/bin/sh\necho cargo-fake\n", 0755);
    mkdirs(workspace + "/src");
    mkdirs(workspace + "/.git");
    write_file(workspace + "/README.md", "original readme\n");
    write_file(workspace + "/src/main.c", "int main(void) { return 0; }\n");
    write_file(workspace + "/.git/config", "[core]\n\tbare = false\n");
}

TempTree::~TempTree() {
    nftw(root.c_str(), make_writable, 32, FTW_PHYS);
    nftw(root.c_str(), remove_entry, 32, FTW_DEPTH | FTW_PHYS);
}

int RunResult::exit_code() const {
    return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1;
}

std::string RunResult::describe() const {
    std::ostringstream ss;
    ss << "status=" << wait_status;
    if (WIFEXITED(wait_status)) ss << " (exit " << WEXITSTATUS(wait_status) << ")";
    if (WIFSIGNALED(wait_status)) ss << " (signal " << WTERMSIG(wait_status) << ")";
    if (!reason.empty()) ss << " reason=" << reason;
    if (!error.empty()) ss << " error=" << error;
    if (timed_out) ss << " TIMED OUT";
    ss << "\n--- stdout ---\n"
       << out.substr(0, 4000) << "\n--- stderr ---\n"
       << err.substr(0, 4000);
    return ss.str();
}

TestSandbox::TestSandbox(std::function<void(SandboxSpec&)> customize, TempTree* tree,
                         SpareInit spare) {
    if (!tree) {
        owned_ = std::make_unique<TempTree>();
        tree = owned_.get();
    }
    tree_ = tree;
    spec_.workspace = tree->workspace;
    spec_.state_dir = tree->state;
    spec_.host_home = tree->home;
    spec_.tmp_size_bytes = 64ull << 20;
    // The attack program, visible inside as <workspace>/bin/cordon-attack.
    mkdir((tree->workspace + "/bin").c_str(), 0755);
    std::string dst = tree->workspace + "/bin/cordon-attack";
    if (!exists(dst)) write_file(dst, read_file(attack_exe()), 0755);
    if (customize) customize(spec_);
    auto r = spare.pid > 0 ? start_init(spare, spec_, init_exe()) : start_init(spec_, init_exe());
    if (auto* e = std::get_if<SetupError>(&r)) {
        error_ = e->message();
        return;
    }
    init_ = std::get<InitProcess>(r);
}

TestSandbox::~TestSandbox() {
    for (auto& [id, p] : pending_) {
        if (p.out >= 0) close(p.out);
        if (p.err >= 0) close(p.err);
        if (p.status >= 0) close(p.status);
    }
    for (int f : init_.listener_fds)
        close(f);
    if (init_.control_fd >= 0) close(init_.control_fd);
    if (init_.root_fd >= 0) close(init_.root_fd);
    if (init_.pid > 0) {
        ::kill(init_.pid, SIGKILL);
        waitpid(init_.pid, nullptr, 0);
    }
}

std::string TestSandbox::attack_path() const {
    return spec_.workspace + "/bin/cordon-attack";
}

std::uint64_t TestSandbox::spawn(const std::vector<std::string>& argv, const RunOptions& opts) {
    int in[2], out[2], err[2], status[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) ||
        pipe2(status, O_CLOEXEC))
        throw std::runtime_error("pipe");
    ExecRequest req;
    req.id = next_id_++;
    req.argv = argv;
    req.env = opts.env;
    req.cwd = opts.cwd.empty() ? spec_.workspace : opts.cwd;
    req.limits = opts.limits;
    int rc = send_control(init_.control_fd, req, {in[0], out[1], err[1], status[1]});
    close(in[0]);
    close(out[1]);
    close(err[1]);
    close(status[1]);
    if (rc != 0) throw std::runtime_error("send_control: " + std::string(strerror(rc)));
    if (!opts.stdin_data.empty()) {
        // Small inputs only (fits in the pipe buffer).
        (void)!write(in[1], opts.stdin_data.data(), opts.stdin_data.size());
    }
    close(in[1]);
    Pending& p = pending_[req.id];
    p.out = out[0];
    p.err = err[0];
    p.status = status[0];
    return req.id;
}

// The first outcome wins (status pipe or the init's ExecExited, whichever is read first).
void TestSandbox::record_outcome(Pending& p, const ExecExited& done) {
    if (p.exited) return;
    p.exited = true;
    p.result.wait_status = done.wait_status;
    p.result.reason = done.reason;
    p.result.error = done.error;
}

void TestSandbox::pump(int timeout_ms) {
    std::vector<pollfd> pfds{{init_.control_fd, POLLIN, 0}};
    std::vector<std::pair<int*, std::string*>> targets;
    std::vector<Pending*> status_of; // per pfds entry past the control socket; null: output
    for (auto& [id, p] : pending_) {
        if (p.status >= 0) {
            pfds.push_back({p.status, POLLIN, 0});
            targets.push_back({&p.status, nullptr});
            status_of.push_back(&p);
        }
        if (p.out >= 0) {
            pfds.push_back({p.out, POLLIN, 0});
            targets.push_back({&p.out, &p.result.out});
            status_of.push_back(nullptr);
        }
        if (p.err >= 0) {
            pfds.push_back({p.err, POLLIN, 0});
            targets.push_back({&p.err, &p.result.err});
            status_of.push_back(nullptr);
        }
    }
    if (poll(pfds.data(), pfds.size(), timeout_ms) <= 0) return;
    if (pfds[0].revents) {
        std::vector<int> fds;
        int err = 0;
        auto msg = recv_control(init_.control_fd, fds, err);
        for (int f : fds)
            close(f);
        if (!msg) throw std::runtime_error("control socket closed: " + std::string(strerror(err)));
        if (auto* v = std::get_if<FsViolation>(&*msg)) {
            if (auto it = pending_.find(v->id); it != pending_.end()) {
                if (!v->path.empty())
                    it->second.result.refused_writes.push_back(v->operation + " " + v->path);
                it->second.result.more_refused += v->more;
            }
        }
        if (auto* done = std::get_if<ExecExited>(&*msg)) {
            Pending& p = pending_[done->id];
            ExecExited outcome = *done;
            if (outcome.error.empty()) outcome.error = p.reader.error();
            record_outcome(p, outcome);
        }
    }
    for (std::size_t i = 1; i < pfds.size(); ++i) {
        if (!pfds[i].revents) continue;
        char buf[65536];
        ssize_t n = read(pfds[i].fd, buf, sizeof(buf));
        auto [fdp, str] = targets[i - 1];
        if (Pending* p = status_of[i - 1]) {
            auto done = n > 0 ? p->reader.feed({buf, static_cast<std::size_t>(n)}) : std::nullopt;
            if (done) record_outcome(*p, *done);
            if (n <= 0 || done) {
                close(*fdp);
                *fdp = -1;
            }
            continue;
        }
        if (n > 0) {
            if (str->size() < (16u << 20)) str->append(buf, static_cast<std::size_t>(n));
        } else {
            close(*fdp);
            *fdp = -1;
        }
    }
}

RunResult TestSandbox::wait(std::uint64_t id, int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    bool killed = false;
    for (;;) {
        Pending& p = pending_.at(id);
        if (p.exited && p.out < 0 && p.err < 0) break;
        if (!killed && std::chrono::steady_clock::now() > deadline) {
            p.result.timed_out = true;
            kill(id);
            killed = true;
        }
        pump(100);
    }
    Pending& p = pending_.at(id);
    if (p.status >= 0) close(p.status);
    RunResult r = p.result;
    pending_.erase(id);
    return r;
}

void TestSandbox::kill(std::uint64_t id) {
    send_control(init_.control_fd, KillRequest{id});
}

RunResult TestSandbox::run(const std::vector<std::string>& argv, const RunOptions& opts) {
    return wait(spawn(argv, opts), opts.timeout_ms);
}

RunResult TestSandbox::sh(const std::string& script, const RunOptions& opts) {
    return run({"/bin/sh", "-c", script}, opts);
}

RunResult TestSandbox::attack(const std::string& name, const std::vector<std::string>& args,
                              const RunOptions& opts) {
    std::vector<std::string> argv{attack_path(), name};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, opts);
}

} // namespace cordon::sandbox::testing
