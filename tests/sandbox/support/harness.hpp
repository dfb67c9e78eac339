// Synchronous test harness for the sandbox layer: a temp tree (workspace, fake $HOME with
// fake secrets, state dir) under $TMPDIR or /tmp, a real session init started with
// start_init, and commands run over the control socket with their output captured.
// Not thread-safe; one TestSandbox per test.
#pragma once

#include "cordon/sandbox/sandbox.hpp"

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cordon::sandbox::testing {

// Paths of the executables under test (set by CMake).
std::string init_exe();
std::string attack_exe();

std::string read_file(const std::string& path); // "" when missing
void write_file(const std::string& path, const std::string& content, int mode = 0644);
bool exists(const std::string& path);

// A temp directory tree removed on destruction.
struct TempTree {
    TempTree();
    ~TempTree();
    TempTree(const TempTree&) = delete;
    TempTree& operator=(const TempTree&) = delete;
    std::string root, workspace, home, state;
};

// Fake secrets written into the fake $HOME, with their exact bytes.
extern const std::map<std::string, std::string> kFakeSecrets; // home-relative path -> bytes

struct RunOptions {
    std::string cwd; // default: the workspace
    std::map<std::string, std::string> env;
    Limits limits;
    std::string stdin_data;
    int timeout_ms = 20000;
};

struct RunResult {
    int wait_status = -1;
    std::string out, err;
    std::string reason, error;
    std::vector<std::string> refused_writes; // "operation path" from FsViolation
    std::uint32_t more_refused = 0;
    bool timed_out = false;
    int exit_code() const; // -1 when killed by a signal
    std::string describe() const;
};

class TestSandbox {
  public:
    // `customize` may edit the spec (policy, limits) before start.
    // `spare`: an init from spawn_init to hand the spec to (default: start a new one).
    explicit TestSandbox(std::function<void(SandboxSpec&)> customize = {}, TempTree* tree = nullptr,
                         SpareInit spare = {});
    ~TestSandbox();
    TestSandbox(const TestSandbox&) = delete;
    TestSandbox& operator=(const TestSandbox&) = delete;

    bool ok() const { return error_.empty(); }
    const std::string& error() const { return error_; }
    const InitProcess& init() const { return init_; }
    const SandboxSpec& spec() const { return spec_; }
    TempTree& tree() { return *tree_; }

    RunResult run(const std::vector<std::string>& argv, const RunOptions& opts = {});
    RunResult sh(const std::string& script, const RunOptions& opts = {});
    // Runs the attack program (copied into the workspace as bin/cordon-attack).
    RunResult attack(const std::string& name, const std::vector<std::string>& args = {},
                     const RunOptions& opts = {});
    std::string attack_path() const;

    // Asynchronous pieces for kill / concurrency tests.
    std::uint64_t spawn(const std::vector<std::string>& argv, const RunOptions& opts = {});
    RunResult wait(std::uint64_t id, int timeout_ms = 20000);
    void kill(std::uint64_t id);

  private:
    struct Pending {
        int out = -1, err = -1, status = -1;
        StatusReader reader;
        RunResult result;
        bool exited = false;
    };
    void pump(int timeout_ms);
    static void record_outcome(Pending& p, const ExecExited& done);

    std::unique_ptr<TempTree> owned_;
    TempTree* tree_ = nullptr;
    SandboxSpec spec_;
    InitProcess init_;
    std::string error_;
    std::uint64_t next_id_ = 1;
    std::map<std::uint64_t, Pending> pending_;
};

} // namespace cordon::sandbox::testing
