// File tools and the review-and-apply methods: thin JSON-RPC bindings of the changes
// engine (server/src/changes), each call recorded in the session's audit log.
#include "cordon/server/changes/apply.hpp"
#include "cordon/server/changes/diff.hpp"
#include "cordon/server/changes/fs_tools.hpp"
#include "cordon/server/server.hpp"

#include "cordon/protocol/params.hpp"

#include <spdlog/spdlog.h>

namespace cordon::server {

using namespace protocol;

asio::awaitable<json> Server::session_tool(Call& c, bool needs_sandbox,
                                           const std::function<json(Session&)>& fn) {
    auto s = session_for(c);
    const auto started = std::chrono::steady_clock::now();
    auto record = [&](const std::string& outcome) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count();
        try {
            s->audit().tool_call(c.method, changes::summarize_params(c.params), outcome, ms);
        } catch (const std::exception& e) {
            spdlog::error("session {}: audit log write failed: {}", s->id(), e.what());
        }
    };
    // Any tool may change the upper dir (fs/write, apply, discard, ...): the next exec takes
    // a fresh snapshot before it runs.
    s->forget_upper_snapshot();
    try {
        if (needs_sandbox) s->start();
        json r = fn(*s);
        record("ok");
        co_return r;
    } catch (const RpcError& e) {
        record("error " + std::to_string(e.code) + ": " + e.what());
        throw;
    }
}

void Server::register_tools(Dispatcher& d) {
    auto tool = [this](bool needs_sandbox, std::function<json(Session&, const json&)> fn) {
        return [this, needs_sandbox, fn](Call& c) -> asio::awaitable<json> {
            co_return co_await session_tool(c, needs_sandbox,
                                            [&](Session& s) { return fn(s, c.params); });
        };
    };
    d.add("fs/read",
          tool(true, [](Session& s, const json& p) { return changes::fs_read(s.files(), p); }));
    d.add("fs/list",
          tool(true, [](Session& s, const json& p) { return changes::fs_list(s.files(), p); }));
    d.add("fs/write",
          tool(true, [](Session& s, const json& p) { return changes::fs_write(s.files(), p); }));
    d.add("fs/edit",
          tool(true, [](Session& s, const json& p) { return changes::fs_edit(s.files(), p); }));
    d.add("changes/diff", tool(false, [](Session& s, const json& p) {
              auto opts = changes::diff_options_from_json(p, s.info().workspace);
              return changes::to_json(changes::compute_changes(s.files(), opts));
          }));
    d.add("changes/apply", tool(false, [](Session& s, const json& p) {
              auto req = changes::apply_request_from_json(p);
              auto result = changes::apply_changes(s.files(), req);
              s.audit().apply(changes::audit_json(result));
              if (!result.protected_paths.empty())
                  s.audit().denial("protected", json{{"paths", result.protected_paths}});
              return changes::to_json(result);
          }));
    d.add("changes/discard", tool(false, [](Session& s, const json& p) {
              ParamReader r(p);
              auto paths = r.value_or<std::vector<std::string>>("paths", {});
              auto discarded = s.running() ? changes::discard_changes_through_view(s.files(), paths)
                                           : changes::discard_changes_offline(s.files(), paths);
              s.audit().append(json{{"kind", "discard"}, {"paths", discarded}}, true);
              return json(nullptr);
          }));
}

} // namespace cordon::server
