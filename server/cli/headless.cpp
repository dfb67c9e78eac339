#include "headless.hpp"

#include "cordon/protocol/jsonrpc.hpp"
#include "cordon/server/changes/audit_log.hpp"
#include "cordon/server/client.hpp"

#include <filesystem>
#include <iostream>
#include <unistd.h>

namespace cordon::cli {

namespace fs = std::filesystem;
using protocol::json;
using protocol::RpcError;
using server::ServerProcess;

namespace {

std::string self_exe() {
    return fs::read_symlink("/proc/self/exe").string();
}

// A private server for one command; shut down in order when done.
struct Client {
    ServerProcess server;
    explicit Client(const HeadlessOptions& o) : server(self_exe(), o.server_args) {
        server.initialize();
    }
    ~Client() {
        try {
            server.send(protocol::make_request(0, "shutdown", nullptr));
            server.send(protocol::make_notification("exit", nullptr));
        } catch (...) {
        }
    }
};

std::string canonical_workspace(const HeadlessOptions& o) {
    std::error_code ec;
    auto p = fs::canonical(o.workspace.empty() ? fs::current_path() : fs::path(o.workspace), ec);
    if (ec) throw std::runtime_error("no such workspace: " + o.workspace);
    return p.string();
}

// The session to work on: --session, else the only session of the workspace.
std::string pick_session(Client& c, const HeadlessOptions& o, bool may_be_missing = false) {
    if (!o.session.empty()) return o.session;
    auto ws = canonical_workspace(o);
    std::vector<std::string> ids;
    json listed = c.server.result("session/list", json::object());
    for (auto& s : listed["sessions"])
        if (s["workspace"] == ws) ids.push_back(s["sessionId"]);
    if (ids.size() == 1) return ids[0];
    if (ids.empty()) {
        if (may_be_missing) return "";
        throw std::runtime_error("no session for " + ws + ": start one with `cordon run -w " + ws +
                                 " -- COMMAND`");
    }
    std::string list;
    for (auto& id : ids)
        list += "\n  " + id;
    throw std::runtime_error(ws + " has several sessions; pick one with --session:" + list);
}

json paths_json(const std::vector<std::string>& paths) {
    json a = json::array();
    for (auto& p : paths)
        a.push_back(p);
    return a;
}

} // namespace

int call(const HeadlessOptions& o, const std::string& method, const std::string& params_json) {
    json params;
    try {
        params = json::parse(params_json);
    } catch (const std::exception& e) {
        std::cerr << "cordon call: params are not valid JSON: " << e.what() << "\n";
        return 2;
    }
    Client c(o);
    json r = c.server.call(method, params, [](const json& other) {
        if (other.value("method", "") == "exec/output")
            std::cerr << other["params"].value("data", "");
    });
    if (r.contains("error")) {
        std::cerr << "cordon call: " << method << " failed: " << r["error"].dump(2) << "\n";
        return 1;
    }
    std::cout << r["result"].dump(2) << "\n";
    return 0;
}

int run(const HeadlessOptions& o, const std::vector<std::string>& command, bool new_session) {
    Client c(o);
    std::string sid = new_session ? "" : pick_session(c, o, true);
    if (sid.empty())
        sid =
            c.server.result("session/create", {{"workspace", canonical_workspace(o)}})["sessionId"];
    json r = c.server.result(
        "exec", {{"sessionId", sid}, {"argv", command}, {"stream", true}}, [](const json& other) {
            auto method = other.value("method", "");
            if (method == "exec/output") {
                auto& p = other["params"];
                auto& os = p.value("stream", "") == "stderr" ? std::cerr : std::cout;
                os << p.value("data", "") << std::flush;
            } else if (method == "sandbox/violation") {
                std::cerr << "[cordon] denied: " << other["params"]["detail"].dump() << "\n";
            }
        });
    std::cerr << "[cordon] session " << sid << ": " << r["reason"].get<std::string>();
    if (!r["exitCode"].is_null()) std::cerr << ", exit code " << r["exitCode"];
    if (!r["signal"].is_null()) std::cerr << ", " << r["signal"].get<std::string>();
    std::cerr << ", " << r["durationMs"] << " ms\n";
    for (auto& ch : r["changes"])
        std::cerr << "[cordon]   " << ch["status"].get<std::string>() << "  "
                  << ch["path"].get<std::string>() << "\n";
    if (!r["changes"].empty())
        std::cerr << "[cordon] your workspace is unchanged: review with `cordon diff`, "
                     "then `cordon apply` or `cordon discard`.\n";
    return r["exitCode"].is_null() ? 1 : r["exitCode"].get<int>();
}

int sessions(const HeadlessOptions& o) {
    Client c(o);
    auto list = c.server.result("session/list", json::object())["sessions"];
    if (list.empty()) {
        std::cout << "no sessions\n";
        return 0;
    }
    std::printf("%-28s %-8s %-8s %s\n", "SESSION", "CHANGED", "RUNNING", "WORKSPACE");
    for (auto& s : list)
        std::printf("%-28s %-8d %-8s %s\n", s["sessionId"].get<std::string>().c_str(),
                    s["changedFiles"].get<int>(), s.value("running", false) ? "yes" : "no",
                    s["workspace"].get<std::string>().c_str());
    return 0;
}

int diff(const HeadlessOptions& o, const std::vector<std::string>& paths, bool stat_only) {
    Client c(o);
    auto sid = pick_session(c, o);
    json params = {{"sessionId", sid}};
    if (!paths.empty()) params["paths"] = paths_json(paths);
    auto d = c.server.result("changes/diff", params);
    if (!stat_only) std::cout << d["patch"].get<std::string>();
    std::cerr << "[cordon] session " << sid << ": " << d["files"].size() << " changed file(s)\n";
    for (auto& f : d["files"]) {
        std::string marks;
        if (f.value("protected", false))
            marks += " [protected: runs on the host; needs --confirm-protected]";
        if (f.value("binary", false)) marks += " [binary]";
        if (f.contains("warnings") && !f["warnings"].empty())
            marks += " [hidden characters: " + f["warnings"].dump() + "]";
        std::cerr << "  " << f["status"].get<std::string>() << "  " << f["path"].get<std::string>()
                  << marks << "\n";
    }
    if (d.contains("git") && d["git"].value("changed", false)) {
        auto& g = d["git"];
        std::cerr << "[cordon] the repository inside the sandbox changed too (never applied)";
        if (g.contains("commits") && !g["commits"].empty()) {
            std::cerr << ": " << g["commits"].size() << " new commit(s)\n";
            for (auto& cm : g["commits"])
                std::cerr << "  " << cm.value("id", "").substr(0, 12) << " "
                          << cm.value("summary", "") << "\n";
        } else {
            std::cerr << "\n";
        }
    }
    return 0;
}

int apply(const HeadlessOptions& o, const std::vector<std::string>& paths,
          const std::vector<std::string>& confirm_protected) {
    Client c(o);
    auto sid = pick_session(c, o);
    json params = {{"sessionId", sid}, {"confirmProtected", paths_json(confirm_protected)}};
    if (!paths.empty()) {
        // Bind the apply to what the diff shows now: each file's real and sandbox hashes.
        auto d =
            c.server.result("changes/diff", {{"sessionId", sid}, {"paths", paths_json(paths)}});
        json files = json::array();
        for (auto& f : d["files"])
            files.push_back(
                {{"path", f["path"]}, {"baseHash", f["baseHash"]}, {"newHash", f["newHash"]}});
        params["files"] = files;
    }
    auto r = c.server.result("changes/apply", params);
    for (auto& p : r["applied"])
        std::cout << "applied     " << p.get<std::string>() << "\n";
    for (auto& p : r["protected"])
        std::cout << "protected   " << p.get<std::string>()
                  << "  (runs on the host: apply with --confirm-protected " << p.get<std::string>()
                  << ")\n";
    for (auto& cf : r["conflicts"])
        std::cout << "conflict    " << cf["path"].get<std::string>() << "  ("
                  << cf["reason"].get<std::string>() << ")\n";
    return r["conflicts"].empty() && r["protected"].empty() ? 0 : 1;
}

int discard(const HeadlessOptions& o, const std::vector<std::string>& paths) {
    Client c(o);
    auto sid = pick_session(c, o);
    json params = {{"sessionId", sid}};
    if (!paths.empty()) params["paths"] = paths_json(paths);
    c.server.result("changes/discard", params);
    std::cout << "discarded "
              << (paths.empty() ? "every pending change"
                                : std::to_string(paths.size()) + " path(s)")
              << " of session " << sid << "\n";
    return 0;
}

int audit_verify(const std::string& state_dir, const std::string& session) {
    if (session.find('/') != std::string::npos || session.empty()) {
        std::cerr << "cordon audit verify: not a session id: " << session << "\n";
        return 2;
    }
    auto path = fs::path(state_dir) / "sessions" / session / "audit.jsonl";
    if (!fs::exists(path)) {
        std::cerr << "cordon audit verify: no audit log at " << path << "\n";
        return 2;
    }
    auto v = server::changes::verify_audit_log(path);
    if (v.ok) {
        std::cout << path.string() << ": " << v.lines << " line(s), chain intact (head " << v.head
                  << ")\n";
        return 0;
    }
    std::cout << path.string() << ": TAMPERED at line " << v.first_bad << ": " << v.reason << "\n";
    return 1;
}

} // namespace cordon::cli
