// cordon: the command-line entry point. `serve` runs the JSON-RPC server; `doctor` probes
// the host; the other commands are headless front ends (headless.cpp).
#include "cordon/protocol/jsonrpc.hpp"
#include "cordon/sandbox/sandbox.hpp"
#include "cordon/server/client.hpp"
#include "cordon/server/server.hpp"
#include "headless.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>
#include <sys/resource.h>
#include <unistd.h>

namespace fs = std::filesystem;
using cordon::protocol::json;
using namespace cordon::server;

namespace {

void setup_logging(const std::string& log_file, const std::string& level) {
    std::shared_ptr<spdlog::logger> logger;
    if (!log_file.empty())
        logger = spdlog::basic_logger_mt("cordon", log_file);
    else
        logger = spdlog::stderr_color_mt("cordon");
    logger->set_level(spdlog::level::from_str(level));
    logger->flush_on(spdlog::level::info);
    spdlog::set_default_logger(logger);
}

int run_doctor() {
    auto facilities = cordon::sandbox::probe_host();
    bool ok = true;
    std::printf("%-10s %-10s %s\n", "facility", "status", "detail");
    for (auto& f : facilities) {
        const char* status = f.available ? "ok" : (f.required ? "MISSING" : "absent");
        std::printf("%-10s %-10s %s\n", f.name.c_str(), status, f.detail.c_str());
        if (!f.available && !f.fix.empty())
            std::printf("%-10s %-10s fix: %s\n", "", "", f.fix.c_str());
        if (!f.available && f.required) ok = false;
    }
    std::printf("\n%s\n", ok ? "cordon can sandbox commands on this host."
                             : "cordon cannot sandbox commands on this host: see the fixes above.");
    return ok ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"cordon: sandboxed tool calls for AI coding agents, over JSON-RPC.\n"
                 "Commands run in a per-workspace sandbox; their file changes come back as diffs\n"
                 "that you review and apply."};
    app.set_version_flag("--version", std::string("cordon ") + kVersion);
    app.require_subcommand(1);

    std::string log_file, log_level = "info", state_dir, config_file, ca_file;
    std::uint64_t approval_timeout_ms = 60000;
    std::size_t max_message_bytes = 64u << 20;
    auto add_common = [&](CLI::App* sub) {
        sub->add_option("--log-file", log_file, "Write logs to this file instead of stderr");
        sub->add_option("--log-level", log_level, "trace, debug, info, warn, error, off")
            ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
        sub->add_option("--state-dir", state_dir,
                        "Where sessions live (default $XDG_STATE_HOME/cordon)");
        sub->add_option("--config", config_file,
                        "User config file (default $XDG_CONFIG_HOME/cordon/config.json)");
        sub->add_option("--ca-file", ca_file,
                        "Extra PEM CA bundle trusted by fetch (self-hosted servers)");
    };

    auto* serve = app.add_subcommand("serve", "Run the JSON-RPC server (stdio by default)");
    bool stdio = true;
    std::string listen;
    serve->add_flag("--stdio", stdio, "Serve on stdin/stdout (LSP base-protocol frames)");
    serve->add_option("--listen", listen, "Serve on a Unix socket instead: unix:PATH (mode 0600)");
    serve->add_option("--max-message-bytes", max_message_bytes,
                      "Largest accepted message body (default 64 MiB)");
    serve->add_option("--approval-timeout-ms", approval_timeout_ms,
                      "How long a sandbox/approve question waits before it denies (default 60000)");
    add_common(serve);

    auto* call = app.add_subcommand(
        "call", "Start a server, initialize, call METHOD with PARAMS (JSON), print the result");
    std::string method, params_text = "{}";
    call->add_option("method", method, "Method name, e.g. session/list")->required();
    call->add_option("params", params_text, "Params as a JSON object (default {})");
    add_common(call);

    // Review commands share: which workspace / session.
    std::string workspace, session;
    auto add_target = [&](CLI::App* sub) {
        sub->add_option("--workspace,-w", workspace, "The workspace directory (default: .)");
        sub->add_option("--session,-s", session,
                        "Session id (default: the workspace's only session)");
        add_common(sub);
    };

    auto* run = app.add_subcommand(
        "run", "Run a command in the workspace's sandbox session (created if none)");
    std::vector<std::string> command;
    bool new_session = false;
    run->add_flag("--new-session", new_session, "Always start a new session");
    run->add_option("command", command, "The command and its arguments (after --)")->required();
    add_target(run);

    auto* sessions = app.add_subcommand("sessions", "List sessions and their pending changes");
    add_common(sessions);

    auto* diff = app.add_subcommand("diff", "Show a session's pending changes as a git diff");
    std::vector<std::string> paths, confirm;
    bool stat_only = false;
    diff->add_flag("--stat", stat_only, "Only the list of changed files");
    diff->add_option("paths", paths, "Only these paths");
    add_target(diff);

    auto* apply = app.add_subcommand(
        "apply", "Write a session's pending changes (all, or the given paths) to the workspace");
    apply->add_option("paths", paths, "Only these paths");
    apply->add_option("--confirm-protected", confirm,
                      "Also write this protected path (it runs code on the host later)");
    add_target(apply);

    auto* discard = app.add_subcommand("discard", "Drop a session's pending changes");
    discard->add_option("paths", paths, "Only these paths");
    add_target(discard);

    auto* audit = app.add_subcommand("audit", "Inspect a session's audit log");
    auto* verify = audit->add_subcommand("verify", "Check the audit log's hash chain");
    verify->add_option("session", session, "Session id")->required();
    add_common(verify);
    audit->require_subcommand(1);

    auto* doctor = app.add_subcommand("doctor", "Check that this host can run cordon's sandbox");

    CLI11_PARSE(app, argc, argv);

    if (log_level.empty()) log_level = "info";
    ServerOptions opts;
    opts.state_dir = state_dir.empty() ? default_state_dir() : fs::path(state_dir);
    opts.sandbox_exe = default_sandbox_exe();
    opts.max_message_bytes = max_message_bytes;
    if (!config_file.empty()) opts.user_config = fs::absolute(config_file);
    opts.extra_ca_file = ca_file;
    opts.ask_timeout = std::chrono::milliseconds(approval_timeout_ms);

    try {
        if (*doctor) return run_doctor();

        if (*serve) {
            setup_logging(log_file, log_level);
            // Each proxied tunnel holds several fds; sessions hold pipes and sockets.
            rlimit nofile{};
            if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
                nofile.rlim_cur = nofile.rlim_max;
                ::setrlimit(RLIMIT_NOFILE, &nofile);
            }
            if (!listen.empty()) {
                if (listen.rfind("unix:", 0) != 0) {
                    std::cerr << "cordon: --listen takes unix:PATH\n";
                    return 2;
                }
                return serve_unix(opts, listen.substr(5));
            }
            return serve_stdio(opts);
        }

        // Headless front ends: a private server process, quiet unless told otherwise.
        std::vector<std::string> server_args{"--log-level", log_file.empty() ? "warn" : log_level};
        if (!log_file.empty()) server_args.insert(server_args.end(), {"--log-file", log_file});
        if (!state_dir.empty()) server_args.insert(server_args.end(), {"--state-dir", state_dir});
        if (!config_file.empty()) server_args.insert(server_args.end(), {"--config", config_file});
        if (!ca_file.empty()) server_args.insert(server_args.end(), {"--ca-file", ca_file});

        cordon::cli::HeadlessOptions h{server_args, workspace, session};
        if (*call) return cordon::cli::call(h, method, params_text);
        if (*run) return cordon::cli::run(h, command, new_session);
        if (*sessions) return cordon::cli::sessions(h);
        if (*diff) return cordon::cli::diff(h, paths, stat_only);
        if (*apply) return cordon::cli::apply(h, paths, confirm);
        if (*discard) return cordon::cli::discard(h, paths);
        if (*verify) return cordon::cli::audit_verify(opts.state_dir.string(), session);
    } catch (const cordon::protocol::RpcError& e) {
        std::cerr << "cordon: " << e.what();
        if (!e.data.is_null()) std::cerr << "\n" << e.data.dump(2);
        std::cerr << "\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "cordon: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
