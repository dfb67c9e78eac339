// cordon-sandbox: the session init. Started by start_init() with an empty environment and
// one inherited fd (the SOCK_SEQPACKET control socket); nothing secret is in argv.
//
//   outer process (host pid ns)          session init (pid 1 of the new pid ns)
//   ---------------------------          --------------------------------------
//   receive SandboxSpec + seccomp BPF    gather host facts, build the mount plan
//   unshare user/mnt/pid/ipc/uts         mount propagation private, hostname
//   write id maps, non-dumpable          scratch root; join the netns from the outer
//   fork --------------------------->    execute the mount plan, pivot_root
//   unshare net, lo up, listeners ---->  lock mounts (nested userns + mntns)
//     (in parallel with the child)       build the Landlock ruleset once
//   wait for the child, exit with it     send InitReady (or SetupError), seccomp itself,
//                                        serve ExecRequest / KillRequest until EOF
//
// Every failure is sent back as SetupError{step, errno, path, fix}; nothing runs
// unsandboxed. Single-threaded throughout.
#include "../src/steps.hpp"
#include "cordon/sandbox/environment.hpp"
#include "cordon/sandbox/mount_plan.hpp"
#include "cordon/sandbox/wire.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace cordon::sandbox;

namespace {

struct Session {
    int control = -1;
    SandboxSpec spec;
    MountPlan plan;
    std::string user;
    std::vector<std::string> notes;
    uid_t uid = 0;
    gid_t gid = 0;
    bool root = false;
    steps::LandlockRuleset landlock;
    steps::SeccompProgram seccomp;
    sigset_t original_mask;
};

[[noreturn]] void report_and_exit(int control, const SetupError& e) {
    wire::send_datagram(control, wire::encode(wire::SetupReply{e}), {});
    _exit(1);
}

void write_all(int fd, const char* data, std::size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        data += n;
        len -= static_cast<std::size_t>(n);
    }
}

// Status pipe records, child -> init: 'E' u16 length + text (could not start), then
// 'S' + int (wait status of the payload, written by the reaper).
void record_error(int fd, const char* what, const char* arg, int err) {
    char buf[512];
    int n = *arg ? snprintf(buf + 3, sizeof(buf) - 3, "%s %s: %s", what, arg, strerror(err))
                 : snprintf(buf + 3, sizeof(buf) - 3, "%s: %s", what, strerror(err));
    if (n < 0) return;
    std::uint16_t len = static_cast<std::uint16_t>(std::min(n, 508));
    buf[0] = 'E';
    std::memcpy(buf + 1, &len, 2);
    write_all(fd, buf, 3u + len);
}

struct Prepared {
    std::vector<std::string> argv_s, env_s, path_dirs; // path_dirs: PATH candidates for argv[0]
    std::vector<char*> argv, env;
    std::string cwd;
    Limits limits;
};

// The payload: last steps before exec, in the order of DESIGN decision 6.
[[noreturn]] void run_payload(const Session& s, Prepared& p, const int stdio[3], int status_fd) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    setsid(); // no controlling terminal: TIOCSTI has nothing to push into
    for (int i = 0; i < 3; ++i) {
        if (dup2(stdio[i], i) < 0) {
            record_error(status_fd, "stdio", "", errno);
            _exit(126);
        }
    }
    syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */);
    if (chdir(p.cwd.c_str()) != 0) {
        record_error(status_fd, "chdir", p.cwd.c_str(), errno);
        _exit(126);
    }
    umask(022);
    if (int e = steps::apply_limits(p.limits)) {
        record_error(status_fd, "rlimit", "", e);
        _exit(126);
    }
    if (int e = steps::drop_capabilities()) {
        record_error(status_fd, "capabilities", "", e);
        _exit(126);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        record_error(status_fd, "no_new_privs", "", errno);
        _exit(126);
    }
    if (int e = steps::apply_landlock(s.landlock)) {
        record_error(status_fd, "landlock", "", e);
        _exit(126);
    }
    if (int e = steps::apply_seccomp_payload(s.seccomp)) {
        record_error(status_fd, "seccomp", "", e);
        _exit(126);
    }
    const char* file = p.argv[0];
    int err = ENOENT;
    if (std::strchr(file, '/')) {
        execve(file, p.argv.data(), p.env.data());
        err = errno;
    } else {
        bool eacces = false;
        for (const auto& full : p.path_dirs) { // already "<dir>/<file>": no allocation here
            execve(full.c_str(), p.argv.data(), p.env.data());
            if (errno == EACCES)
                eacces = true;
            else if (errno != ENOENT && errno != ENOTDIR) {
                err = errno;
                break;
            }
        }
        if (err == ENOENT && eacces) err = EACCES;
    }
    record_error(status_fd, "exec", file, err);
    char msg[512];
    int n = snprintf(msg, sizeof(msg), "cordon: %s: %s\n", file, strerror(err));
    if (n > 0) write_all(2, msg, static_cast<std::size_t>(std::min(n, 511)));
    _exit(err == ENOENT ? 127 : 126);
}

// pid 1 of the command's own pid namespace: runs the payload, and when it exits kills
// whatever it left behind (daemons, double forks, setsid) and reports its wait status.
[[noreturn]] void run_reaper(const Session& s, Prepared& p, const int stdio[3], int status_fd) {
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    steps::limit_pid_namespace(steps::sysctl_kernel_dir(), p.limits.max_processes); // see probe
    // vfork: the reaper has nothing to do until the payload has exec'd, and the payload's
    // steps are syscalls on prepared data (no allocation), so sharing memory is safe and
    // saves copying the page tables on every command.
    pid_t payload = vfork();
    if (payload == 0) run_payload(s, p, stdio, status_fd);
    if (payload < 0) {
        record_error(status_fd, "fork", "", errno);
        _exit(1);
    }
    // Keep only the status pipe: the stdio pipes must reach EOF when the tree is gone.
    if (status_fd != 3) dup2(status_fd, 3);
    constexpr int kStatusFd = 3;
    syscall(SYS_close_range, 4u, ~0u, 0u);
    for (int i = 0; i < 3; ++i)
        close(i);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    int main_status = 0;
    for (;;) {
        int st;
        pid_t w = waitpid(-1, &st, 0);
        if (w < 0) {
            if (errno == EINTR) continue;
            break; // ECHILD: the namespace is empty
        }
        if (w == payload) {
            main_status = st;
            kill(-1, SIGKILL);
        }
    }
    char rec[1 + sizeof(int)];
    rec[0] = 'S';
    std::memcpy(rec + 1, &main_status, sizeof(int));
    write_all(kStatusFd, rec, sizeof(rec));
    _exit(0);
}

// Everything the payload needs, built before vfork (no allocation after it).
void prepare(const Session& s, const ExecRequest& req, Prepared& p) {
    p.argv_s = req.argv;
    EnvironmentBase base;
    base.home = s.plan.home;
    base.user = s.user;
    p.env_s = build_environment(base, s.spec.env, req.env);
    std::string path = base.path;
    for (const auto& e : p.env_s)
        if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
    for (std::size_t i = 0; i <= path.size();) {
        std::size_t j = path.find(':', i);
        if (j == std::string::npos) j = path.size();
        std::string dir = path.substr(i, j - i);
        p.path_dirs.push_back((dir.empty() ? "." : dir) + "/" + req.argv[0]);
        i = j + 1;
    }
    for (auto& a : p.argv_s)
        p.argv.push_back(a.data());
    p.argv.push_back(nullptr);
    for (auto& e : p.env_s)
        p.env.push_back(e.data());
    p.env.push_back(nullptr);
    p.cwd = req.cwd.empty() ? s.spec.workspace : req.cwd;
    p.limits = req.limits;
}

// A reaper made ahead of time (clone(CLONE_NEWPID) is ~15% of an exec): it waits for one
// job - the ExecRequest, its 3 stdio fds and the status pipe - on its own socket, then
// becomes that command's reaper. Keeps only the fds it needs.
[[noreturn]] void run_spare(const Session& s, int job_fd) {
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    int keep[] = {job_fd, s.landlock.fd, steps::sysctl_kernel_dir()};
    std::sort(std::begin(keep), std::end(keep));
    unsigned from = 3;
    for (int k : keep) {
        if (k < 0) continue;
        if (static_cast<unsigned>(k) > from) syscall(SYS_close_range, from, k - 1u, 0u);
        from = static_cast<unsigned>(k) + 1;
    }
    syscall(SYS_close_range, from, ~0u, 0u);
    std::vector<int> fds;
    int err = 0;
    auto bytes = wire::recv_datagram(job_fd, fds, err);
    close(job_fd);
    if (!bytes) _exit(0); // the init is gone or dropped the spare
    auto msg = wire::decode_control(*bytes);
    if (!msg || !std::holds_alternative<ExecRequest>(*msg) || fds.size() != 4) _exit(1);
    Prepared p;
    prepare(s, std::get<ExecRequest>(*msg), p);
    int stdio[3] = {fds[0], fds[1], fds[2]};
    run_reaper(s, p, stdio, fds[3]);
}

struct Running {
    std::uint64_t id;
    int status_fd;
    bool killed = false;
};

class CommandLoop {
  public:
    explicit CommandLoop(Session& s) : s_(s) {}

    [[noreturn]] void run() {
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
        make_spare();
        for (;;) {
            pollfd pfds[2] = {{s_.control, POLLIN, 0}, {sfd, POLLIN, 0}};
            if (poll(pfds, 2, -1) < 0) {
                if (errno == EINTR) continue;
                shutdown_all(1);
            }
            if (pfds[1].revents & POLLIN) {
                signalfd_siginfo si;
                while (read(sfd, &si, sizeof(si)) > 0) {
                }
                reap();
            }
            if (pfds[0].revents & (POLLIN | POLLHUP | POLLERR)) on_control();
            if (spare_pid_ < 0) make_spare(); // off the critical path of the next exec
        }
    }

  private:
    [[noreturn]] void shutdown_all(int code) {
        for (auto& [pid, r] : running_)
            kill(pid, SIGKILL);
        if (spare_pid_ > 0) kill(spare_pid_, SIGKILL);
        _exit(code);
    }

    void on_control() {
        std::vector<int> fds;
        int err = 0;
        auto msg = recv_control(s_.control, fds, err);
        if (!msg) {
            if (err == 0 || (err != EAGAIN && err != EINTR && err != EBADMSG && err != EMSGSIZE))
                shutdown_all(0); // the server is gone: so is the sandbox
            return;
        }
        if (auto* req = std::get_if<ExecRequest>(&*msg)) {
            start(*req, fds);
        } else if (auto* k = std::get_if<KillRequest>(&*msg)) {
            for (auto& [pid, r] : running_) {
                if (r.id == k->id) {
                    r.killed = true;
                    kill(pid, SIGKILL);
                }
            }
        }
        for (int f : fds)
            close(f);
    }

    void fail(std::uint64_t id, const std::string& error) {
        ExecExited done;
        done.id = id;
        done.wait_status = 127 << 8;
        done.error = error;
        send_control(s_.control, done);
    }

    void start(const ExecRequest& req, const std::vector<int>& fds) {
        if (fds.size() != 3) return fail(req.id, "exec: expected 3 fds (stdin, stdout, stderr)");
        if (req.argv.empty() || req.argv[0].empty()) return fail(req.id, "exec: empty argv");
        int sp[2];
        if (pipe2(sp, O_CLOEXEC) != 0) return fail(req.id, std::string("pipe: ") + strerror(errno));
        if (spare_pid_ < 0) make_spare();
        if (spare_pid_ < 0) {
            close(sp[0]);
            close(sp[1]);
            return fail(req.id, std::string("clone: ") + strerror(spare_errno_));
        }
        int e = wire::send_datagram(spare_fd_, wire::encode(ControlMessage{req}),
                                    {fds[0], fds[1], fds[2], sp[1]});
        close(sp[1]);
        close(spare_fd_);
        const pid_t pid = spare_pid_;
        spare_fd_ = -1;
        spare_pid_ = -1;
        if (e) {
            kill(pid, SIGKILL);
            close(sp[0]);
            return fail(req.id, std::string("dispatch: ") + strerror(e));
        }
        running_[pid] = Running{req.id, sp[0]};
        send_control(s_.control, ExecStarted{req.id});
    }

    void make_spare() {
        int js[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, js) != 0) {
            spare_errno_ = errno;
            return;
        }
        long pid = syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
        if (pid == 0) {
            close(js[0]);
            run_spare(s_, js[1]);
        }
        close(js[1]);
        if (pid < 0) {
            spare_errno_ = errno;
            close(js[0]);
            return;
        }
        spare_pid_ = static_cast<pid_t>(pid);
        spare_fd_ = js[0];
    }

    void reap() {
        for (;;) {
            int st;
            pid_t pid = waitpid(-1, &st, WNOHANG);
            if (pid <= 0) return;
            if (pid == spare_pid_) { // died before getting a job: make another later
                close(spare_fd_);
                spare_fd_ = -1;
                spare_pid_ = -1;
                continue;
            }
            auto it = running_.find(pid);
            if (it == running_.end()) continue;
            Running r = it->second;
            running_.erase(it);
            ExecExited done;
            done.id = r.id;
            done.wait_status = SIGKILL; // the reaper died without a record: killed
            char buf[1024];
            ssize_t n = read(r.status_fd, buf, sizeof(buf));
            close(r.status_fd);
            bool have_status = false;
            for (ssize_t i = 0; i < n;) {
                if (buf[i] == 'E' && i + 3 <= n) {
                    std::uint16_t len;
                    std::memcpy(&len, buf + i + 1, 2);
                    if (i + 3 + len > n) break;
                    done.error.assign(buf + i + 3, len);
                    i += 3 + len;
                } else if (buf[i] == 'S' && i + 1 + static_cast<ssize_t>(sizeof(int)) <= n) {
                    std::memcpy(&done.wait_status, buf + i + 1, sizeof(int));
                    have_status = true;
                    i += 1 + sizeof(int);
                } else {
                    break;
                }
            }
            if (r.killed)
                done.reason = "killed";
            else if (!have_status && !WIFSIGNALED(st))
                done.wait_status = st;
            if (WIFSIGNALED(done.wait_status) && done.reason.empty()) {
                if (WTERMSIG(done.wait_status) == SIGXCPU) done.reason = "cpu-limit";
                if (WTERMSIG(done.wait_status) == SIGXFSZ) done.reason = "file-size-limit";
            }
            send_control(s_.control, done);
        }
    }

    Session& s_;
    std::map<pid_t, Running> running_;
    pid_t spare_pid_ = -1; // the next command's reaper, already in its pid namespace
    int spare_fd_ = -1;
    int spare_errno_ = 0;
};

// pid 1 of the session's namespaces: the setup steps, top to bottom.
[[noreturn]] void session_init(Session& s, int parent_alive, int net_channel) {
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    pollfd pfd{parent_alive, POLLIN, 0};
    if (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP)) _exit(1); // outer already gone
    close(parent_alive);
    auto check = [&s](steps::Result r) {
        if (r) report_and_exit(s.control, *r);
    };
    // While the outer process builds the net namespace: look at the host, plan the view.
    HostFacts facts;
    FactOptions opts;
    opts.caller_uid = s.uid;
    opts.all_uids_mapped = false;
    if (auto e = gather_host_facts(s.spec, opts, facts, s.notes); !e.empty())
        report_and_exit(s.control, steps::failure("workspace-scan", EMLINK, s.spec.workspace, e));
    s.user = facts.user;
    s.plan = build_mount_plan(s.spec, facts);
    check(steps::make_mounts_private());
    check(steps::set_hostname("cordon"));
    check(steps::prepare_new_root());
    // Join the net namespace (only lo, up) before mounting /sys: sysfs shows the mounter's.
    std::vector<int> listeners;
    {
        std::vector<int> fds;
        int err = 0;
        auto bytes = wire::recv_datagram(net_channel, fds, err);
        close(net_channel);
        if (!bytes) report_and_exit(s.control, steps::failure("netns", err ? err : EPIPE));
        if (auto reply = wire::decode_setup_reply(*bytes))
            if (auto* e = std::get_if<SetupError>(&*reply)) report_and_exit(s.control, *e);
        if (fds.empty()) report_and_exit(s.control, steps::failure("netns", EPROTO));
        check(steps::join_net_namespace(fds[0]));
        close(fds[0]);
        listeners.assign(fds.begin() + 1, fds.end());
        if (listeners.size() != s.spec.listen_ports.size())
            report_and_exit(s.control, steps::failure("listen", EPROTO));
    }
    check(steps::execute_mount_plan(s.plan));
    check(steps::enter_new_root());
    check(steps::lock_mounts(s.uid, s.gid, s.root));
    if (steps::landlock_abi() > 0 || s.spec.require_landlock) {
        auto ll = steps::build_landlock(s.plan.writable);
        if (auto* e = std::get_if<SetupError>(&ll)) report_and_exit(s.control, *e);
        s.landlock = std::get<steps::LandlockRuleset>(ll);
    } else {
        s.notes.push_back("Landlock unavailable and not required: payloads run without it");
    }
    if (chdir("/") != 0) report_and_exit(s.control, steps::failure("chdir", errno, "/"));

    // Per-namespace pid_max arrived in Linux 6.14 (a reaper's write fails harmlessly before).
    const bool pid_max_ok = steps::kernel_at_least(6, 14);
    if (!pid_max_ok)
        s.notes.push_back("per-namespace pid_max unavailable (needs Linux >= 6.14): "
                          "max_processes relies on RLIMIT_NPROC alone");
    if (s.root)
        s.notes.push_back(pid_max_ok ? "running as root: RLIMIT_NPROC does not bind uid 0; "
                                       "each command is capped at max_processes + 300 pids by "
                                       "its pid namespace's pid_max"
                                     : "running as root: RLIMIT_NPROC does not bind uid 0 and "
                                       "pid_max is unavailable, so max_processes is NOT enforced");

    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &s.original_mask);

    InitReady ready;
    ready.landlock_abi = s.landlock.abi;
    ready.cgroups = false;
    ready.notes = s.notes;
    auto fds = listeners;
    // Last: the sandbox's root, so the server can reach files as the sandbox sees them
    // (through the overlay, masks included) without entering it.
    int root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) report_and_exit(s.control, steps::failure("root fd", errno, "/"));
    fds.push_back(root_fd);
    if (int e = wire::send_datagram(s.control, wire::encode(wire::SetupReply{ready}), fds))
        _exit(e);
    for (int f : fds)
        close(f);
    // From here on the init itself runs under the payload filters (minus the CLONE_NEWPID
    // check it needs for reapers): cheaper per exec, and a safety net for the init. Done
    // after InitReady to keep it off the start latency; no command is read before it, and
    // if it fails the init exits (the server sees EOF): fail closed.
    if (steps::apply_seccomp_init(s.seccomp) != 0) _exit(1);
    CommandLoop(s).run();
}

} // namespace

int main(int argc, char** argv) {
    // fds 0-2 are closed by start_init: occupy them so received fds never land there.
    for (int fd = 0; fd < 3; ++fd)
        if (fcntl(fd, F_GETFD) < 0) open("/dev/null", O_RDWR | O_CLOEXEC);
    Session s;
    pid_t parent = 0;
    for (int i = 1; i < argc; ++i) {
        if (std::strncmp(argv[i], "--control-fd=", 13) == 0) s.control = std::atoi(argv[i] + 13);
        if (std::strncmp(argv[i], "--parent-pid=", 13) == 0) parent = std::atoi(argv[i] + 13);
    }
    if (s.control < 0) {
        const char msg[] = "cordon-sandbox: started by cordon (start_init), not by hand\n";
        write_all(2, msg, sizeof(msg) - 1);
        return 2;
    }
    fcntl(s.control, F_SETFD, FD_CLOEXEC);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (parent != 0 && getppid() != parent) _exit(1); // the server died before we armed it

    std::vector<int> fds;
    int err = 0;
    auto bytes = wire::recv_datagram(s.control, fds, err);
    for (int f : fds)
        close(f);
    auto spec = bytes ? wire::decode_spec(*bytes) : std::nullopt;
    if (!spec) report_and_exit(s.control, steps::failure("spec", err ? err : EBADMSG));
    s.spec = std::move(*spec);
    bytes = wire::recv_datagram(s.control, fds, err);
    for (int f : fds)
        close(f);
    auto blobs = bytes ? wire::decode_seccomp(*bytes) : std::nullopt;
    auto seccomp = blobs ? steps::deserialize_seccomp(*blobs) : std::nullopt;
    if (!seccomp) report_and_exit(s.control, steps::failure("seccomp", err ? err : EBADMSG));
    s.seccomp = std::move(*seccomp);
    s.uid = getuid();
    s.gid = getgid();
    s.root = s.uid == 0;
    umask(022);

    struct stat st;
    if (s.spec.workspace.empty() || s.spec.workspace[0] != '/' ||
        stat(s.spec.workspace.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        report_and_exit(s.control, steps::failure("workspace", errno ? errno : ENOTDIR,
                                                  s.spec.workspace, "pass an absolute directory"));
    const mode_t workspace_mode = st.st_mode;
    if (s.spec.state_dir.empty() || s.spec.state_dir[0] != '/' ||
        stat(s.spec.state_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        report_and_exit(s.control,
                        steps::failure("state-dir", errno ? errno : ENOTDIR, s.spec.state_dir,
                                       "create the session state dir (0700) first"));
    for (const char* sub : {"/upper", "/work", "/home"}) {
        std::string p = s.spec.state_dir + sub;
        if (mkdir(p.c_str(), 0700) != 0 && errno != EEXIST)
            report_and_exit(s.control, steps::failure("state-dir", errno, p));
    }
    // The overlay root takes the upper dir's mode: give it the workspace's (the state dir
    // itself stays 0700).
    chmod((s.spec.state_dir + "/upper").c_str(), workspace_mode & 07777);

    if (auto r = steps::enter_namespaces()) report_and_exit(s.control, *r);
    if (auto r = steps::write_id_maps(s.uid, s.gid, s.root)) report_and_exit(s.control, *r);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    int alive[2], net[2];
    if (pipe2(alive, O_CLOEXEC) != 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, net) != 0)
        report_and_exit(s.control, steps::failure("pipe", errno));
    // Opened now: the child's pivot_root moves the root of every process in this mount
    // namespace, ours included, so "/proc" will not be there later.
    int proc_self = open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (proc_self < 0) report_and_exit(s.control, steps::failure("proc", errno, "/proc/self"));
    pid_t child = fork();
    if (child < 0) report_and_exit(s.control, steps::failure("fork", errno));
    if (child == 0) {
        close(proc_self);
        close(alive[1]);
        close(net[0]);
        session_init(s, alive[0], net[1]);
    }
    close(alive[0]);
    close(net[1]);
    close(s.control);

    // In parallel with the child's mount work: the net namespace with only lo, up, and the
    // proxy's listening sockets in it; handed to the child (which joins it) over `net`.
    std::vector<int> net_fds;
    std::optional<SetupError> failed = steps::enter_net_namespace();
    if (!failed) failed = steps::bring_up_loopback();
    if (!failed) {
        int ns = openat(proc_self, "ns/net", O_RDONLY | O_CLOEXEC);
        if (ns < 0)
            failed = steps::failure("netns", errno, "/proc/self/ns/net");
        else
            net_fds.push_back(ns);
    }
    if (!failed) {
        auto listeners = steps::open_listeners(s.spec.listen_ports);
        if (auto* e = std::get_if<SetupError>(&listeners))
            failed = *e;
        else
            for (int f : std::get<std::vector<int>>(listeners))
                net_fds.push_back(f);
    }
    wire::send_datagram(net[0], failed ? wire::encode(wire::SetupReply{*failed}) : "N", net_fds);
    for (int f : net_fds)
        close(f);
    close(net[0]);
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}
