// cordon-sandbox: the session init. Started by spawn_init() with an empty environment and
// one inherited fd (the SOCK_SEQPACKET control socket); nothing secret is in argv. Everything
// before the spec arrives is the same for every session, so the server may start one ahead.
//
//   outer process (host pid ns)          session init (pid 1 of the new pid ns)
//   ---------------------------          --------------------------------------
//   unshare user/mnt/pid/ipc/uts
//   write id maps, non-dumpable
//   fork --------------------------->    receive SandboxSpec + seccomp BPF (waits here)
//   unshare net, lo up                   state dir; listen ports --> outer
//   listeners <-- ports; send ------->   gather host facts, build the mount plan
//     (in parallel with the child)       mount propagation private, hostname
//   wait for the child, exit with it     scratch root; join the netns from the outer
//                                        execute the mount plan, pivot_root
//                                        lock mounts (nested userns + mntns)
//                                        build the Landlock ruleset once
//                                        send InitReady (or SetupError), seccomp itself,
//                                        serve ExecRequest / KillRequest until EOF
//
// Every failure is sent back as SetupError{step, errno, path, fix}; nothing runs
// unsandboxed. Single-threaded throughout.
#include "../src/raw_syscall.hpp"
#include "../src/steps.hpp"
#include "cordon/sandbox/environment.hpp"
#include "cordon/sandbox/mount_plan.hpp"
#include "cordon/sandbox/wire.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <map>
#include <memory>
#include <poll.h>
#include <sched.h>
#include <set>
#include <sys/ioctl.h>
#include <sys/mman.h>
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

using steps::raw_errno;
using steps::raw_syscall;

// Everything below up to CommandLoop runs in a spare reaper or its payload: in the init's
// memory (CLONE_VM), so no allocation, no locks, and raw syscalls only (errno is the
// init's). The only libc calls left are vfork() and snprintf() into stack buffers.

void write_all(int fd, const char* data, std::size_t len) {
    while (len > 0) {
        long n = raw_syscall(SYS_write, fd, reinterpret_cast<long>(data), static_cast<long>(len));
        if (n == -EINTR) continue;
        if (n <= 0) return;
        data += n;
        len -= static_cast<std::size_t>(n);
    }
}

[[noreturn]] void exit_now(int code) {
    for (;;)
        raw_syscall(SYS_exit_group, code);
}

// Status pipe records, child -> init: 'E' u16 length + text (could not start), then
// 'S' + int (wait status of the payload, written by the reaper).
void record_error(int fd, const char* what, const char* arg, int err) {
    char buf[512];
    const char* text = strerrordesc_np(err); // untranslated: no locale lookup, no lock
    if (!text) text = "unknown error";
    int n = *arg ? snprintf(buf + 3, sizeof(buf) - 3, "%s %s: %s", what, arg, text)
                 : snprintf(buf + 3, sizeof(buf) - 3, "%s: %s", what, text);
    if (n < 0) return;
    std::uint16_t len = static_cast<std::uint16_t>(std::min(n, 508));
    buf[0] = 'E';
    std::memcpy(buf + 1, &len, 2);
    write_all(fd, buf, 3u + len);
}

int unblock_all_signals() {
    std::uint64_t none = 0;
    return raw_errno(raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(&none), 0,
                                 sizeof(none)));
}

// Everything a command needs, built by the init before it is handed to a spare.
struct Prepared {
    std::vector<std::string> argv_s, env_s, path_dirs; // path_dirs: PATH candidates for argv[0]
    std::vector<char*> argv, env;
    std::string cwd;
    Limits limits;
};

// The payload: per-command steps, then exec. The spare it was vforked from has already
// done the hardening of DESIGN decision 6 (caps, no_new_privs, Landlock, seccomp), which
// the payload inherits.
[[noreturn]] void run_payload(const Prepared& p, const int stdio[3], int status_fd) {
    unblock_all_signals();
    raw_syscall(SYS_setsid); // no controlling terminal: TIOCSTI has nothing to push into
    for (int i = 0; i < 3; ++i) {
        if (int e = raw_errno(raw_syscall(SYS_dup2, stdio[i], i))) {
            record_error(status_fd, "stdio", "", e);
            exit_now(126);
        }
    }
    raw_syscall(SYS_close_range, 3, ~0u, 4 /* CLOSE_RANGE_CLOEXEC */);
    if (int e = raw_errno(raw_syscall(SYS_chdir, reinterpret_cast<long>(p.cwd.c_str())))) {
        record_error(status_fd, "chdir", p.cwd.c_str(), e);
        exit_now(126);
    }
    raw_syscall(SYS_umask, 022);
    if (int e = steps::apply_limits(p.limits)) {
        record_error(status_fd, "rlimit", "", e);
        exit_now(126);
    }
    const char* file = p.argv[0];
    auto exec = [&p](const char* path) {
        return raw_errno(raw_syscall(SYS_execve, reinterpret_cast<long>(path),
                                     reinterpret_cast<long>(p.argv.data()),
                                     reinterpret_cast<long>(p.env.data())));
    };
    int err = ENOENT;
    if (std::strchr(file, '/')) {
        err = exec(file);
    } else {
        bool eacces = false;
        for (const auto& full : p.path_dirs) { // already "<dir>/<file>": no allocation here
            int e = exec(full.c_str());
            if (e == EACCES)
                eacces = true;
            else if (e != ENOENT && e != ENOTDIR) {
                err = e;
                break;
            }
        }
        if (err == ENOENT && eacces) err = EACCES;
    }
    record_error(status_fd, "exec", file, err);
    char msg[512];
    int n = snprintf(msg, sizeof(msg), "cordon: %s: %s\n", file, strerrordesc_np(err));
    if (n > 0) write_all(2, msg, static_cast<std::size_t>(std::min(n, 511)));
    exit_now(err == ENOENT ? 127 : 126);
}

// pid 1 of the command's own pid namespace: runs the payload, and when it exits kills
// whatever it left behind (daemons, double forks, setsid) and reports its wait status.
// The status record is written once the namespace is empty and before this process
// exits, so the init can answer without waiting for the reaper's own exit.
[[noreturn]] void run_reaper(const Prepared& p, const int stdio[3], int status_fd) {
    // vfork: the reaper has nothing to do until the payload has exec'd, and the payload's
    // steps are syscalls on prepared data, so sharing memory is safe and copies nothing.
    pid_t payload = vfork();
    if (payload == 0) run_payload(p, stdio, status_fd);
    if (payload < 0) {
        record_error(status_fd, "fork", "", ENOMEM);
        exit_now(1);
    }
    // Keep only the status pipe: the stdio pipes must reach EOF when the tree is gone.
    for (int i = 0; i < 3; ++i)
        raw_syscall(SYS_close, stdio[i]);
    unblock_all_signals();
    int main_status = 0;
    for (;;) {
        int st = 0;
        long w = raw_syscall(SYS_wait4, -1, reinterpret_cast<long>(&st), 0, 0);
        if (w == -EINTR) continue;
        if (w < 0) break; // ECHILD: the namespace is empty
        if (w == payload) {
            main_status = st;
            raw_syscall(SYS_kill, -1, SIGKILL);
        }
    }
    char rec[1 + sizeof(int)];
    rec[0] = 'S';
    std::memcpy(rec + 1, &main_status, sizeof(int));
    write_all(status_fd, rec, sizeof(rec));
    exit_now(0);
}

// Built by the init (which may allocate) before the job goes to a spare.
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

// The hardening every payload gets, in the order of DESIGN decision 6, done by the spare
// before it has a job: each payload inherits it through vfork, so none of it is on the
// path of an exec. Returns the failed step, or nullptr.
const char* harden_spare(const Session& s, int& err) {
    if ((err = steps::drop_capabilities())) return "capabilities";
    if ((err = raw_errno(raw_syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1)))) return "no_new_privs";
    if ((err = steps::apply_landlock(s.landlock))) return "landlock";
    if (s.landlock.fd >= 0) raw_syscall(SYS_close, s.landlock.fd);
    if ((err = steps::apply_seccomp_payload(s.seccomp))) return "seccomp";
    return nullptr;
}

// Sends 'L' with the writes filter's listener attached (none when it could not be made),
// then closes the spare's copy.
void send_listener(int job_fd, int listener) {
    char tag = 'L';
    iovec iov{&tag, 1};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (listener >= 0) {
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &listener, sizeof(int));
    }
    raw_syscall(SYS_sendmsg, job_fd, reinterpret_cast<long>(&msg), MSG_NOSIGNAL);
    if (listener >= 0) raw_syscall(SYS_close, listener);
}

// A spare: the next command's reaper, made ahead of time in its own pid namespace. Owned
// by the init; the stack and the job stay allocated until the spare has been reaped.
struct Spare {
    const Session* session = nullptr;
    int job_fd = -1; // the spare's end (in its own fd table)
    void* stack = nullptr;
    std::size_t stack_size = 0;
    Prepared job; // filled by the init before it sends the go-ahead

    Spare() = default;
    Spare(const Spare&) = delete;
    Spare& operator=(const Spare&) = delete;
    ~Spare() { // only once the spare is gone (reaped, or never started)
        if (stack) munmap(stack, stack_size);
    }
};

// What the init sends a spare: which job (by address: same memory), with the 3 stdio fds
// and the status pipe's write end attached.
struct JobMessage {
    const Prepared* job;
};

// The spare's life (clone(CLONE_VM | CLONE_NEWPID)): harden itself, wait for one job, then
// become that command's reaper. clone() and the hardening are most of what a sandboxed
// exec costs beyond fork+exec, and none of it is on the exec's path. A hardening failure
// is reported to the job as the command's error: nothing runs without it.
int run_spare(void* arg) {
    const Spare& spare = *static_cast<const Spare*>(arg);
    const Session& s = *spare.session;
    const int job_fd = spare.job_fd;
    raw_syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL);
    // Before the capabilities go: opening this namespace's pid_max needs CAP_SYS_ADMIN
    // (fails harmlessly before Linux 6.14, see the note at startup); written per job.
    const int pid_max = steps::open_pid_max(steps::sysctl_kernel_dir());
    int keep[] = {job_fd, s.landlock.fd, pid_max};
    std::sort(std::begin(keep), std::end(keep));
    unsigned from = 3;
    for (int k : keep) {
        if (k < 0) continue;
        if (static_cast<unsigned>(k) > from) raw_syscall(SYS_close_range, from, k - 1, 0);
        from = static_cast<unsigned>(k) + 1;
    }
    raw_syscall(SYS_close_range, from, ~0u, 0);
    int harden_err = 0;
    const char* failed = harden_spare(s, harden_err);
    // Last: the filter that shows filesystem writes to the init. Its listener goes to the
    // init in a message that is always sent, so the init never waits for nothing.
    send_listener(job_fd, failed ? -ENOSYS : steps::apply_seccomp_writes(s.seccomp));

    JobMessage m{};
    iovec iov{&m, sizeof(m)};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    long n;
    do {
        n = raw_syscall(SYS_recvmsg, job_fd, reinterpret_cast<long>(&msg), MSG_CMSG_CLOEXEC);
    } while (n == -EINTR);
    if (n != static_cast<long>(sizeof(m))) exit_now(0); // the init is gone or dropped us
    int fds[4] = {-1, -1, -1, -1};
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(fds)) || !m.job)
        exit_now(1);
    std::memcpy(fds, CMSG_DATA(c), sizeof(fds));
    raw_syscall(SYS_close, job_fd);
    if (failed) {
        record_error(fds[3], failed, "", harden_err);
        exit_now(126);
    }
    if (pid_max >= 0) {
        steps::limit_pid_namespace(pid_max, m.job->limits.max_processes);
        raw_syscall(SYS_close, pid_max);
    }
    run_reaper(*m.job, fds, fds[3]);
}

struct Running {
    std::uint64_t id = 0;
    bool killed = false;
    bool answered = false;          // ExecExited already sent
    std::unique_ptr<Spare> spare;   // its stack and job, freed once reaped
    int listener = -1;              // the writes filter's notifications (-1: none)
    std::set<std::string> reported; // refused writes already sent (operation + path)
    std::uint32_t unsent = 0;       // refused writes past the per-command cap
};

// Sizes of the notification structs as this kernel has them (read before the init's own
// seccomp filter, which has no reason to allow the query).
seccomp_notif_sizes g_notif_sizes{};

class CommandLoop {
  public:
    explicit CommandLoop(Session& s) : s_(s) {}

    [[noreturn]] void run() {
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
        make_spare();
        std::vector<pollfd> pfds;
        std::vector<pid_t> owners;
        for (;;) {
            pfds.assign({{s_.control, POLLIN, 0}, {sfd, POLLIN, 0}});
            owners.assign(2, 0);
            for (auto& [pid, r] : running_) {
                if (r.listener < 0) continue;
                pfds.push_back({r.listener, POLLIN, 0});
                owners.push_back(pid);
            }
            if (poll(pfds.data(), pfds.size(), -1) < 0) {
                if (errno == EINTR) continue;
                shutdown_all(1);
            }
            // Notified writes first: their callers are blocked until answered.
            for (std::size_t i = 2; i < pfds.size(); ++i)
                if (pfds[i].revents) on_notification(owners[i], pfds[i].revents);
            if (pfds[1].revents & POLLIN) {
                signalfd_siginfo si;
                while (read(sfd, &si, sizeof(si)) > 0) {
                }
                reap();
            }
            if (pfds[0].revents & (POLLIN | POLLHUP | POLLERR)) on_control();
            if (!spare_) make_spare(); // off the critical path of the next exec
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

    // Hands the command to the spare. The init keeps none of its fds: the reaper writes the
    // outcome straight to the status pipe, and the stdio pipes reach EOF with the tree.
    void start(const ExecRequest& req, const std::vector<int>& fds) {
        if (fds.size() != 4)
            return fail(req.id, "exec: expected 4 fds (stdin, stdout, stderr, status)");
        if (req.argv.empty() || req.argv[0].empty()) return fail(req.id, "exec: empty argv");
        if (!spare_) make_spare();
        if (!spare_) return fail(req.id, std::string("clone: ") + strerror(spare_errno_));
        std::unique_ptr<Spare> spare = std::move(spare_);
        const pid_t pid = spare_pid_;
        const int job_fd = spare_fd_;
        spare_pid_ = -1;
        spare_fd_ = -1;
        // The spare's first message, sent once it is hardened: the writes listener, if any.
        std::vector<int> lfds;
        int lerr = 0;
        wire::recv_datagram(job_fd, lfds, lerr);
        for (std::size_t i = 1; i < lfds.size(); ++i)
            close(lfds[i]);
        prepare(s_, req, spare->job); // before the go-ahead: the spare reads it from here on
        JobMessage m{&spare->job};
        int e = wire::send_datagram(job_fd, std::string_view(reinterpret_cast<char*>(&m), sizeof m),
                                    fds);
        close(job_fd);
        Running r;
        r.id = req.id;
        r.spare = std::move(spare); // freed when reaped, whatever happens next
        if (!lfds.empty()) {
            r.listener = lfds[0];
            fcntl(r.listener, F_SETFL, O_NONBLOCK);
        }
        r.answered = e != 0; // answered below; reap() only frees it
        running_[pid] = std::move(r);
        if (e) {
            kill(pid, SIGKILL);
            return fail(req.id, std::string("dispatch: ") + strerror(e));
        }
    }

    // A write-like call of command `pid`'s tree is waiting: note its path(s), let it
    // continue (the kernel then refuses it or not), report it when the sandbox refuses it.
    void on_notification(pid_t pid, short revents) {
        auto it = running_.find(pid);
        if (it == running_.end() || it->second.listener < 0) return;
        Running& r = it->second;
        if (!(revents & POLLIN)) { // every task of the filter is gone
            close(r.listener);
            r.listener = -1;
            return;
        }
        std::vector<char> req_buf(
            std::max<std::size_t>(g_notif_sizes.seccomp_notif, sizeof(seccomp_notif)));
        std::vector<char> resp_buf(
            std::max<std::size_t>(g_notif_sizes.seccomp_notif_resp, sizeof(seccomp_notif_resp)));
        auto* req = reinterpret_cast<seccomp_notif*>(req_buf.data());
        if (ioctl(r.listener, SECCOMP_IOCTL_NOTIF_RECV, req) != 0) return; // gone already
        std::uint64_t args[6];
        for (int i = 0; i < 6; ++i)
            args[i] = req->data.args[i];
        // Judged while the caller waits, so a report is on the control socket before the
        // command can end (the server reads it before the command's outcome).
        auto attempt = steps::read_write_attempt(static_cast<pid_t>(req->pid), req->data.nr, args);
        if (attempt) {
            for (const auto& path : attempt->paths) {
                if (!steps::refused_write(path, s_.plan.writable)) continue;
                constexpr std::size_t kMaxReported = 20; // per command; the rest are counted
                if (r.reported.size() >= kMaxReported) {
                    // The first one past the cap says so at once; the count follows at the end.
                    if (r.unsent++ == 0) {
                        FsViolation v;
                        v.id = r.id;
                        v.more = 1;
                        send_control(s_.control, v);
                    }
                } else if (r.reported.insert(attempt->operation + " " + path).second) {
                    FsViolation v;
                    v.id = r.id;
                    v.operation = attempt->operation;
                    v.path = path;
                    send_control(s_.control, v);
                }
                break;
            }
        }
        auto* resp = reinterpret_cast<seccomp_notif_resp*>(resp_buf.data());
        resp->id = req->id;
        resp->val = 0;
        resp->error = 0;
        resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        ioctl(r.listener, SECCOMP_IOCTL_NOTIF_SEND, resp); // ENOENT: the caller was killed
    }

    void make_spare() {
        constexpr std::size_t kStack = 256 * 1024; // a guard page at the bottom
        auto spare = std::make_unique<Spare>();
        spare->session = &s_;
        void* stack = mmap(nullptr, kStack, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
        if (stack == MAP_FAILED) {
            spare_errno_ = errno;
            return;
        }
        spare->stack = stack;
        spare->stack_size = kStack;
        mprotect(stack, static_cast<std::size_t>(sysconf(_SC_PAGESIZE)), PROT_NONE);
        int js[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, js) != 0) {
            spare_errno_ = errno;
            return;
        }
        spare->job_fd = js[1];
        // CLONE_VM: the spare shares this memory (see raw_syscall.hpp), so making one copies
        // no page tables and its exit tears none down. Its fd table is its own.
        pid_t pid = clone(run_spare, static_cast<char*>(stack) + kStack,
                          CLONE_VM | CLONE_NEWPID | SIGCHLD, spare.get());
        close(js[1]);
        if (pid < 0) {
            spare_errno_ = errno;
            close(js[0]);
            return;
        }
        spare_ = std::move(spare);
        spare_pid_ = pid;
        spare_fd_ = js[0];
    }

    // A reaper that wrote the outcome exits 0; any other end (killed, could not start) is
    // answered here, so every command gets exactly one outcome.
    void reap() {
        for (;;) {
            int st;
            pid_t pid = waitpid(-1, &st, WNOHANG);
            if (pid <= 0) return;
            if (pid == spare_pid_) { // died before getting a job: make another later
                close(spare_fd_);
                spare_fd_ = -1;
                spare_pid_ = -1;
                spare_.reset();
                continue;
            }
            auto it = running_.find(pid);
            if (it == running_.end()) continue;
            const Running& r = it->second;
            const bool reported = WIFEXITED(st) && WEXITSTATUS(st) == 0;
            if (!reported && !r.answered) {
                ExecExited done;
                done.id = r.id;
                done.wait_status = WIFSIGNALED(st) ? SIGKILL : st;
                if (r.killed) done.reason = "killed";
                send_control(s_.control, done);
            }
            if (r.unsent > 1) {
                FsViolation v;
                v.id = r.id;
                v.more = r.unsent - 1;
                send_control(s_.control, v);
            }
            if (r.listener >= 0) close(r.listener);
            running_.erase(it);
        }
    }

    Session& s_;
    std::map<pid_t, Running> running_;
    std::unique_ptr<Spare> spare_; // the next command's reaper, already in its pid namespace
    pid_t spare_pid_ = -1;
    int spare_fd_ = -1;
    int spare_errno_ = 0;
};

void receive_spec(Session& s);

// pid 1 of the session's namespaces: the setup steps, top to bottom.
[[noreturn]] void session_init(Session& s, int parent_alive, int net_channel) {
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    pollfd pfd{parent_alive, POLLIN, 0};
    if (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP)) _exit(1); // outer already gone
    close(parent_alive);
    auto check = [&s](steps::Result r) {
        if (r) report_and_exit(s.control, *r);
    };
    // Everything so far was the same for every session, so the server may have started us
    // ahead of time (spawn_init): only now does the session's spec arrive.
    receive_spec(s);
    {
        std::string ports = "P"; // never empty: an empty datagram reads as EOF
        for (auto port : s.spec.listen_ports)
            ports.append(reinterpret_cast<const char*>(&port), sizeof port);
        if (int e = wire::send_datagram(net_channel, ports, {}))
            report_and_exit(s.control, steps::failure("netns", e));
    }
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

// Reads the spec and the seccomp programs, then prepares the state dir.
void receive_spec(Session& s) {
    std::vector<int> fds;
    int err = 0;
    auto bytes = wire::recv_datagram(s.control, fds, err);
    for (int f : fds)
        close(f);
    if (!bytes && err == 0) _exit(0); // the server dropped a spare init: nothing to report
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
}

} // namespace

int main(int argc, char** argv) {
    // fds 0-2 are closed by spawn_init: occupy them so received fds never land there.
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
    raw_syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, reinterpret_cast<long>(&g_notif_sizes));

    // The namespaces first: they do not depend on the session, so this may happen before
    // the spec exists (spawn_init); the session init reads it once forked.
    s.uid = getuid();
    s.gid = getgid();
    s.root = s.uid == 0;
    umask(022);
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

    // In parallel with the child: the net namespace with only lo, up; then, once the child
    // has the spec, the proxy's listening sockets in it. Handed to the child (which joins
    // it) over `net`.
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
    std::vector<int> unused;
    int err = 0;
    auto ports_bytes = wire::recv_datagram(net[0], unused, err);
    for (int f : unused)
        close(f);
    if (!ports_bytes || ports_bytes->empty() || (*ports_bytes)[0] != 'P')
        _exit(0); // the child is gone (a dropped spare, or it reported)
    if (!failed) {
        std::vector<std::uint16_t> ports((ports_bytes->size() - 1) / sizeof(std::uint16_t));
        std::memcpy(ports.data(), ports_bytes->data() + 1, ports.size() * sizeof(std::uint16_t));
        auto listeners = steps::open_listeners(ports);
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
