// cordon: the command-line entry point. `serve` runs the JSON-RPC server; `call`, `run` and
// `doctor` are headless front ends that start a server of their own.
#include "cordon/protocol/jsonrpc.hpp"
#include "cordon/sandbox/sandbox.hpp"
#include "cordon/server/client.hpp"
#include "cordon/server/server.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>
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

std::string self_exe() {
    return fs::read_symlink("/proc/self/exe").string();
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

    auto* run =
        app.add_subcommand("run", "Run one command in a new sandbox session on a workspace");
    std::string workspace = ".";
    std::vector<std::string> command;
    run->add_option("--workspace,-w", workspace, "The workspace directory (default: .)");
    run->add_option("command", command, "The command and its arguments (after --)")->required();
    add_common(run);

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

        if (*call) {
            json params;
            try {
                params = json::parse(params_text);
            } catch (const std::exception& e) {
                std::cerr << "cordon call: params are not valid JSON: " << e.what() << "\n";
                return 2;
            }
            ServerProcess server(self_exe(), server_args);
            server.initialize();
            json r = server.call(method, params, [](const json& other) {
                if (other.value("method", "") == "exec/output")
                    std::cerr << other["params"].value("data", "");
            });
            server.send(cordon::protocol::make_request(0, "shutdown", nullptr));
            server.send(cordon::protocol::make_notification("exit", nullptr));
            if (r.contains("error")) {
                std::cerr << "cordon call: " << method << " failed: " << r["error"].dump(2) << "\n";
                return 1;
            }
            std::cout << r["result"].dump(2) << "\n";
            return 0;
        }

        if (*run) {
            ServerProcess server(self_exe(), server_args);
            server.initialize();
            json created = server.result(
                "session/create", {{"workspace", fs::absolute(workspace).lexically_normal()}});
            std::string sid = created["sessionId"];
            json r =
                server.result("exec", {{"sessionId", sid}, {"argv", command}, {"stream", true}},
                              [](const json& other) {
                                  if (other.value("method", "") != "exec/output") return;
                                  auto& p = other["params"];
                                  auto& os =
                                      p.value("stream", "") == "stderr" ? std::cerr : std::cout;
                                  os << p.value("data", "") << std::flush;
                              });
            std::cerr << "\n[cordon] session " << sid << ": " << r["reason"].get<std::string>();
            if (!r["exitCode"].is_null()) std::cerr << ", exit code " << r["exitCode"];
            if (!r["signal"].is_null()) std::cerr << ", " << r["signal"].get<std::string>();
            std::cerr << ", " << r["durationMs"] << " ms\n";
            for (auto& c : r["changes"])
                std::cerr << "[cordon]   " << c["status"].get<std::string>() << "  "
                          << c["path"].get<std::string>() << "\n";
            if (!r["changes"].empty())
                std::cerr << "[cordon] the real workspace is unchanged; the changes stay in the "
                             "session's state dir.\n";
            server.send(cordon::protocol::make_request(0, "shutdown", nullptr));
            server.send(cordon::protocol::make_notification("exit", nullptr));
            return r["exitCode"].is_null() ? 1 : r["exitCode"].get<int>();
        }
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
