// start_init: the server side of session start. Creates the control socketpair, forks and
// execs cordon-sandbox with an empty environment and only fd 3 (FD-01), sends the spec and
// waits for InitReady or SetupError. Any failure kills the init: fail closed.
#include "cordon/sandbox/sandbox.hpp"
#include "cordon/sandbox/wire.hpp"
#include "steps.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace cordon::sandbox {
bool cgroup_delegated(std::string& detail); // probe.cpp
namespace {

constexpr int kReadyTimeoutMs = 30000;

void kill_and_reap(pid_t pid) {
    kill(pid, SIGKILL);
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
}

} // namespace

std::variant<SpareInit, SetupError> spawn_init(const std::string& init_exe) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return steps::failure("socketpair", errno, "", "");
    // posix_spawn (vfork-style in glibc): no copy of the server's page tables, signal mask
    // and handlers reset in the child, exec errors returned here. The child gets the control
    // socket as fd 3 and nothing else (FD-01): stdio is closed too, the init reopens
    // /dev/null on it.
    std::string arg_fd = "--control-fd=3";
    std::string arg_parent = "--parent-pid=" + std::to_string(getpid());
    std::string arg0 = "cordon-sandbox";
    char* argv[] = {arg0.data(), arg_fd.data(), arg_parent.data(), nullptr};
    char* envp[] = {nullptr};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 3); // clears CLOEXEC, also when sv[1] == 3
    posix_spawn_file_actions_addclosefrom_np(&fa, 4);
    for (int fd = 0; fd < 3; ++fd)
        posix_spawn_file_actions_addclose(&fa, fd);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, init_exe.c_str(), &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(sv[1]);
    if (rc != 0) {
        close(sv[0]);
        return steps::failure("exec", rc, init_exe,
                              "install cordon-sandbox next to cordon and make it executable");
    }
    return SpareInit{pid, sv[0]};
}

void discard_init(SpareInit& spare) {
    if (spare.control_fd >= 0) close(spare.control_fd);
    if (spare.pid > 0) kill_and_reap(spare.pid);
    spare = SpareInit{};
}

std::variant<InitProcess, SetupError> start_init(const SandboxSpec& spec,
                                                 const std::string& init_exe) {
    auto spare = spawn_init(init_exe);
    if (auto* e = std::get_if<SetupError>(&spare)) return *e;
    return start_init(std::get<SpareInit>(spare), spec, init_exe);
}

std::variant<InitProcess, SetupError> start_init(SpareInit spare, const SandboxSpec& spec,
                                                 const std::string& init_exe) {
    const pid_t pid = spare.pid;
    const int control = spare.control_fd;
    auto fail = [&](SetupError e) -> std::variant<InitProcess, SetupError> {
        kill_and_reap(pid);
        close(control);
        return e;
    };
    const auto& compiled = steps::compiled_seccomp();
    if (const auto* e = std::get_if<SetupError>(&compiled)) return fail(*e);
    const std::string filters =
        wire::encode_seccomp(steps::serialize(std::get<steps::SeccompProgram>(compiled)));
    const std::string encoded = wire::encode(spec);
    if (encoded.size() > wire::kMaxDatagram)
        return fail(steps::failure("spec", EMSGSIZE, "", "the sandbox spec is too large"));
    // A send that fails means the init is gone; what it reported (a namespace step that
    // failed before the spec came) is read below.
    for (const std::string* msg : {&encoded, &filters})
        if (wire::send_datagram(control, *msg, {}) != 0) break;

    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(kReadyTimeoutMs);
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
        if (left <= 0)
            return fail(steps::failure("start", ETIMEDOUT, init_exe,
                                       "the sandbox did not become ready in time"));
        pollfd pfd{control, POLLIN, 0};
        int rc = poll(&pfd, 1, static_cast<int>(left));
        if (rc < 0 && errno == EINTR) continue;
        if (rc < 0) return fail(steps::failure("start", errno, "", ""));
        if (rc == 0) continue;
        std::vector<int> fds;
        int err = 0;
        auto bytes = wire::recv_datagram(control, fds, err);
        if (!bytes) {
            if (err == EINTR || err == EAGAIN) continue;
            // The init closed with our spec unread: the error comes first, its report after.
            if (err == ECONNRESET) continue;
            int status = 0;
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            close(control);
            return steps::failure("init", err ? err : ECHILD, init_exe,
                                  "cordon-sandbox exited before reporting (status " +
                                      std::to_string(status) + ")");
        }
        auto reply = wire::decode_setup_reply(*bytes);
        if (!reply) {
            for (int f : fds)
                close(f);
            return fail(
                steps::failure("start", EBADMSG, "", "unexpected message from cordon-sandbox"));
        }
        if (auto* e = std::get_if<SetupError>(&*reply)) {
            for (int f : fds)
                close(f);
            return fail(*e);
        }
        InitProcess proc;
        // Host facts that do not change per session: computed once per server process.
        static const std::string cgroup_note = [] {
            std::string detail;
            return cgroup_delegated(detail) ? std::string()
                                            : "cgroup v2 limits unavailable (" + detail +
                                                  "): using rlimits and per-command pid namespaces";
        }();
        if (!cgroup_note.empty()) std::get<InitReady>(*reply).notes.push_back(cgroup_note);
        proc.pid = pid;
        proc.control_fd = control;
        proc.ready = std::get<InitReady>(*reply);
        if (fds.size() != spec.listen_ports.size() + 1) {
            for (int f : fds)
                close(f);
            return fail(steps::failure("listen", EPROTO, "", "listener count mismatch"));
        }
        proc.root_fd = fds.back();
        fds.pop_back();
        proc.listener_fds = fds;
        return proc;
    }
}

} // namespace cordon::sandbox
