// The sandbox layer's public contract, used by the server.
//
// A session's sandbox is one `cordon-sandbox` process (the session init) that owns the
// session's namespaces and filesystem view. The server starts it with `start_init`, then
// talks to it over a SOCK_SEQPACKET control socket: one datagram per message, file
// descriptors (pipes) passed with SCM_RIGHTS. Nothing here uses Asio or JSON-RPC; the
// server wraps `InitProcess::control_fd` in its own event loop and calls
// `send_control` / `recv_control` when the socket is writable / readable.
//
// Thread-safety: free functions are reentrant; an InitProcess is owned by one session.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cordon::sandbox {

// --- policy --------------------------------------------------------------------------

struct FilesystemPolicy {
    // Absolute, "~/"-relative or workspace-relative paths; "*" and "**" globs allowed.
    std::vector<std::string> deny_read;
    std::vector<std::string> allow_read;
    std::vector<std::string> allow_write;
};

struct Limits {
    std::uint64_t timeout_ms = 120000;
    std::uint64_t memory_bytes = 0;  // 0: no limit
    std::uint32_t max_processes = 0; // 0: default (RLIMIT_NPROC / pids.max)
    std::uint64_t max_output_bytes = 1u << 20;
    std::uint64_t cpu_seconds = 0;     // 0: no limit (RLIMIT_CPU)
    std::uint64_t file_size_bytes = 0; // 0: no limit (RLIMIT_FSIZE)
    std::uint32_t open_files = 4096;   // RLIMIT_NOFILE
};

// Everything the init needs to build one session's sandbox.
struct SandboxSpec {
    std::string workspace; // absolute, canonical path of the real workspace
    std::string state_dir; // session state dir (created by the server, 0700):
                           // upper/, work/, home/ live beneath it
    std::string host_home; // the user's real $HOME (masked; toolchain dirs allowed)
    FilesystemPolicy filesystem;
    Limits limits;
    std::map<std::string, std::string> env; // policy env, added to the allowlisted env
    std::uint64_t tmp_size_bytes = 512ull << 20;
    // Loopback ports inside the sandbox's net namespace on which the init creates
    // listening sockets and hands them to the server (network proxy). Empty: none.
    std::vector<std::uint16_t> listen_ports;
    // Landlock is part of the defence in depth: when the kernel lacks it the init refuses
    // to start (SetupError step "landlock") unless this is explicitly set to false, in which
    // case InitReady::landlock_abi is 0 and a note says so (SECURITY-CASES LL-01).
    bool require_landlock = true;
};

// --- errors ----------------------------------------------------------------------------

// A setup failure: which step, errno captured at the failing call, the path involved,
// and what the user can do about it.
struct SetupError {
    std::string step; // e.g. "userns", "overlay", "seccomp", "landlock", "pivot_root"
    int err = 0;      // errno
    std::string path;
    std::string fix; // human-readable remedy
    std::string message() const;
};

// --- host probe (cordon doctor, initialize capabilities) ---------------------------------

struct Facility {
    std::string name; // "userns", "overlay", "seccomp", "landlock", "cgroups"
    bool available = false;
    bool required = true; // cgroups is optional: rlimits + pid namespaces are the fallback
    std::string detail;   // e.g. "Landlock ABI 6"
    std::string fix;      // empty when available
};

// Probes the host for each facility by trying it for real (in a short-lived child).
std::vector<Facility> probe_host();

// --- session init ------------------------------------------------------------------------

// What the init reports once its sandbox is built.
struct InitReady {
    int landlock_abi = 0;           // ABI applied to payloads (0: none available)
    bool cgroups = false;           // per-command cgroup limits in force
    std::vector<std::string> notes; // degradations worth telling the user
};

struct InitProcess {
    int pid = -1;        // host pid of the cordon-sandbox process
    int control_fd = -1; // SOCK_SEQPACKET, CLOEXEC, owned by the caller
    InitReady ready;
    std::vector<int> listener_fds; // one per SandboxSpec::listen_ports, same order
    // O_PATH fd of the sandbox's root directory as payloads see it (overlay workspace,
    // masks), owned by the caller. Only the server holds it; nothing in the sandbox does.
    int root_fd = -1;
};

// Starts `init_exe` (the cordon-sandbox binary) for `spec` with an empty environment and
// waits until the sandbox is built. Never runs anything unsandboxed: on any failure the
// init is killed and the error names the step.
std::variant<InitProcess, SetupError> start_init(const SandboxSpec& spec,
                                                 const std::string& init_exe);

// A cordon-sandbox started before its session: its namespaces exist (user, mount, pid,
// ipc, uts, and net with lo up) and it waits for a spec. That is a good part of a session
// start and the same for every session, so a server keeps one ready and session/create
// pays only the rest. A spare that could not build its namespaces reports that when it
// is given a spec.
struct SpareInit {
    int pid = -1;        // host pid
    int control_fd = -1; // as InitProcess::control_fd
};
std::variant<SpareInit, SetupError> spawn_init(const std::string& init_exe);
// Gives a spare its spec and waits until the sandbox is built; consumes the spare (on
// failure it is killed). start_init(spec, exe) is spawn_init + this.
std::variant<InitProcess, SetupError> start_init(SpareInit spare, const SandboxSpec& spec,
                                                 const std::string& init_exe);
// Ends a spare that will not be used (kill + reap).
void discard_init(SpareInit& spare);

// --- control messages (server <-> init) --------------------------------------------------

// server -> init. Carries 4 fds: stdin read end, stdout write end, stderr write end, and
// the write end of the command's status pipe (see StatusReader).
struct ExecRequest {
    std::uint64_t id = 0;
    std::vector<std::string> argv;          // argv[0] resolved via PATH inside the sandbox
    std::map<std::string, std::string> env; // extra env on top of the session env
    std::string cwd;                        // absolute path inside the sandbox
    Limits limits;
};

// server -> init: kill the whole process tree of command `id` (SIGKILL).
struct KillRequest {
    std::uint64_t id = 0;
};

// A command's outcome; every process of its tree is gone. Normally read from the status
// pipe (the reaper writes it there the moment its namespace is empty: one hop fewer than
// through the init). The init sends it on the control socket instead when the command
// ended without writing one: killed, or it could not be started.
struct ExecExited {
    std::uint64_t id = 0;
    int wait_status = 0; // as from waitpid
    std::string reason;  // "" or "killed" / "cpu-limit" / "file-size-limit"
    std::string error;   // non-empty: the command could not be started (setup step)
};

// init -> server: command `id` tried to change the filesystem where the sandbox does not
// let it (read-only or outside the writable places); the call itself failed (EROFS/EACCES).
// Seen through a seccomp notification of the write-like calls; best effort (a path reached
// through a symlink inside a writable place may not be seen), never part of enforcement.
struct FsViolation {
    std::uint64_t id = 0;
    std::string operation; // "open for writing", "mkdir", "unlink", "rename", ...
    std::string path;      // absolute, as the sandbox sees it
    // Past 20 reports per command the rest are counted: one message with more = 1 when
    // the cap is reached, one with the remaining count when the command has ended.
    std::uint32_t more = 0;
};

using ControlMessage = std::variant<ExecRequest, KillRequest, ExecExited, FsViolation>;

// Parses a command's status pipe: 'E' u16 length + text (a step before exec failed; may
// come alone), then 'S' + int wait status, written last by the command's reaper.
class StatusReader {
  public:
    // Feeds bytes read from the pipe. Returns the outcome (id unset) once 'S' is in.
    std::optional<ExecExited> feed(std::string_view bytes);
    const std::string& error() const { return error_; } // from an 'E' record, if any

  private:
    std::string buf_, error_;
};

// "cpu-limit" / "file-size-limit" when the wait status is the kill by that rlimit, else "".
std::string limit_reason(int wait_status);

// Sends one message (and fds) on a SOCK_SEQPACKET socket. Returns 0 or an errno.
int send_control(int fd, const ControlMessage& msg, const std::vector<int>& fds = {});

// Receives one message; received fds are CLOEXEC and owned by the caller.
// Returns std::nullopt on EOF (peer gone); sets `err` on failure (EAGAIN included).
std::optional<ControlMessage> recv_control(int fd, std::vector<int>& fds, int& err);

} // namespace cordon::sandbox
