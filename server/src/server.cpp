#include "cordon/server/server.hpp"

#include "cordon/protocol/params.hpp"
#include "cordon/server/changes/audit_log.hpp"
#include "cordon/server/changes/diff.hpp"
#include "cordon/server/net/fetch.hpp"
#include "cordon/server/upper_dir.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <pwd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

namespace cordon::server {

namespace fs = std::filesystem;
using namespace protocol;

const char* const kVersion = "0.1.0";

fs::path default_state_dir() {
    if (const char* s = std::getenv("XDG_STATE_HOME"); s && *s == '/')
        return fs::path(s) / "cordon";
    const char* home = std::getenv("HOME");
    if (!home || *home != '/') {
        if (auto* pw = getpwuid(getuid())) home = pw->pw_dir;
    }
    return fs::path(home ? home : "/tmp") / ".local/state/cordon";
}

std::string default_sandbox_exe() {
    std::error_code ec;
    auto self = fs::read_symlink("/proc/self/exe", ec);
    return (self.parent_path() / "cordon-sandbox").string();
}

namespace {

std::string new_session_id() {
    unsigned char b[12];
    if (getrandom(b, sizeof b, 0) != sizeof b) throw std::runtime_error("getrandom failed");
    static const char* hex = "0123456789abcdef";
    std::string id = "s-";
    for (unsigned char c : b) {
        id += hex[c >> 4];
        id += hex[c & 15];
    }
    return id;
}

std::string host_home() {
    if (auto* pw = getpwuid(getuid())) return pw->pw_dir;
    const char* h = std::getenv("HOME");
    return h ? h : "/";
}

sandbox::SandboxSpec spec_for(const SessionInfo& info) {
    sandbox::SandboxSpec spec;
    spec.workspace = info.workspace;
    spec.state_dir = info.state_dir.string();
    spec.host_home = host_home();
    const auto& p = info.policy;
    if (p.deny_read) spec.filesystem.deny_read = *p.deny_read;
    if (p.allow_read) spec.filesystem.allow_read = *p.allow_read;
    if (p.allow_write) spec.filesystem.allow_write = *p.allow_write;
    if (p.limits.timeout_ms) spec.limits.timeout_ms = *p.limits.timeout_ms;
    if (p.limits.memory_bytes) spec.limits.memory_bytes = *p.limits.memory_bytes;
    if (p.limits.max_processes) spec.limits.max_processes = *p.limits.max_processes;
    if (p.limits.max_output_bytes) spec.limits.max_output_bytes = *p.limits.max_output_bytes;
    spec.env = p.env;
    return spec;
}

} // namespace

Server::Server(asio::io_context& io, ServerOptions opts) : io_(io), opts_(std::move(opts)) {
    load_sessions();
}

// Sessions outlive the server: every state dir with readable metadata is listed again, and
// its sandbox is re-created on the first tool call.
void Server::load_sessions() {
    std::error_code ec;
    for (auto& entry : fs::directory_iterator(opts_.state_dir / "sessions", ec)) {
        if (entry.path().filename().string().rfind(".spare-", 0) == 0) {
            std::error_code rec; // a state dir made ahead by an earlier server, never used
            fs::remove_all(entry.path(), rec);
            continue;
        }
        auto meta_path = entry.path() / "session.json";
        try {
            std::ifstream f(meta_path);
            if (!f) continue;
            json meta = json::parse(f);
            SessionInfo info;
            info.id = meta.at("sessionId").get<std::string>();
            info.workspace = meta.at("workspace").get<std::string>();
            info.state_dir = entry.path();
            if (meta.contains("policy")) info.policy = parse_policy(meta["policy"], "/policy");
            if (info.id != entry.path().filename().string()) continue;
            sessions_[info.id] = make_session(info, false);
        } catch (const std::exception& e) {
            spdlog::warn("ignoring session state {}: {}", meta_path.string(), e.what());
        }
    }
    if (!sessions_.empty())
        spdlog::info("{} session(s) restored from {}", sessions_.size(), opts_.state_dir.string());
}

Server::~Server() {
    stop_all();
    std::error_code ec;
    if (spare_state_dir_) fs::remove_all(*spare_state_dir_, ec);
}

void Server::stop_all() {
    for (auto& [id, s] : sessions_)
        s->stop();
}

const Isolation& Server::isolation() {
    if (!isolation_) {
        facilities_ = sandbox::probe_host();
        Isolation iso;
        for (auto& f : facilities_) {
            if (f.name == "userns")
                iso.userns = f.available;
            else if (f.name == "overlay")
                iso.overlay = f.available;
            else if (f.name == "seccomp")
                iso.seccomp = f.available;
            else if (f.name == "landlock")
                iso.landlock = f.available;
            else if (f.name == "cgroups")
                iso.cgroups = f.available;
        }
        isolation_ = iso;
    }
    return *isolation_;
}

// The "git" section of the user config: the remotes the git proxy serves.
std::optional<git::GitConfig> Server::load_git_config(const SessionInfo& info, bool strict) {
    auto path = opts_.user_config.value_or(net::default_user_config_path());
    std::ifstream f(path);
    if (!f) return std::nullopt;
    try {
        json doc = parse_strict(std::string(std::istreambuf_iterator<char>(f), {}));
        if (!doc.is_object() || !doc.contains("git")) return std::nullopt;
        return git::parse_git_config(doc["git"], "git");
    } catch (const RpcError& e) {
        if (strict)
            throw RpcError(code::invalid_params,
                           "invalid git configuration in " + path.string() + ": " + e.what(),
                           json{{"path", "/policy"}, {"file", path.string()}});
        spdlog::error("session {}: invalid git configuration in {}, no git proxy: {}", info.id,
                      path.string(), e.what());
        return std::nullopt;
    }
}

std::shared_ptr<Session> Server::make_session(const SessionInfo& info, bool strict) {
    net::PolicySources src;
    src.user_config = opts_.user_config;
    src.session_policy = json(info.policy);
    src.workspace = info.workspace;
    auto loaded = net::load_network_policy(src);
    if (!loaded.ok()) {
        json errors = json::array();
        std::string text;
        for (auto& e : loaded.errors) {
            errors.push_back({{"file", e.file}, {"path", e.path}, {"message", e.message}});
            text += (text.empty() ? "" : "; ") + e.text();
        }
        if (strict)
            throw RpcError(code::invalid_params, "invalid network policy: " + text,
                           json{{"path", "/policy/network"}, {"errors", errors}});
        spdlog::error("session {}: invalid network policy, all network denied: {}", info.id, text);
    }
    SessionNetwork network;
    network.policy = loaded.policy;
    network.git = load_git_config(info, strict);
    network.ask_timeout = opts_.ask_timeout;
    return std::make_shared<Session>(io_, info, spec_for(info), opts_.sandbox_exe,
                                     std::move(network));
}

std::shared_ptr<Session> Server::session_for(Call& c) {
    auto s = find_session(parse_session_id(c.params));
    s->attach(c.dispatcher);
    return s;
}

std::shared_ptr<Session> Server::find_session(const std::string& id) {
    auto it = sessions_.find(id);
    if (it == sessions_.end())
        throw RpcError(code::unknown_session, "unknown session: " + id, json{{"sessionId", id}});
    return it->second;
}

asio::awaitable<int> Server::serve_connection(int in_fd, int out_fd) {
    FrameLimits fl;
    fl.max_body_bytes = opts_.max_message_bytes;
    StreamTransport transport(io_, in_fd, out_fd, fl);
    ParseLimits pl;
    pl.max_batch = opts_.max_batch;
    pl.max_depth = opts_.max_depth;
    Dispatcher d(io_, transport, pl);
    register_methods(d);
    bool exited = false;
    d.set_exit_callback([&](int) {
        exited = true;
        transport.close(); // ends the read loop
    });
    co_await transport.read_loop([&](FrameEvent&& ev) {
        if (!exited) d.on_frame(std::move(ev));
    });
    d.on_eof();
    // Let cancelled requests answer and queued replies go out before closing.
    for (int i = 0; i < 100 && d.in_flight() > 0; ++i) {
        asio::steady_timer t(io_, std::chrono::milliseconds(10));
        co_await t.async_wait(asio::use_awaitable);
    }
    co_await transport.flush();
    co_return d.exit_code().value_or(d.initialized() ? 0 : 0);
}

void Server::register_methods(Dispatcher& d) {
    d.on_initialize([this](Call& c) -> asio::awaitable<json> {
        auto p = parse_initialize(c.params);
        c.dispatcher.set_client_approvals(p.approvals);
        spdlog::info("client {} {}", p.client_name.empty() ? "(unnamed)" : p.client_name,
                     p.client_version);
        co_return json{{"serverInfo", {{"name", "cordon"}, {"version", kVersion}}},
                       {"capabilities", {{"isolation", isolation()}}}};
    });
    auto bind = [this](auto fn) {
        return [this, fn](Call& c) -> asio::awaitable<json> { co_return co_await (this->*fn)(c); };
    };
    d.add("session/create", bind(&Server::session_create));
    d.add("session/list", bind(&Server::session_list));
    d.add("session/close", bind(&Server::session_close));
    d.add("exec", bind(&Server::exec));
    d.add("fetch", bind(&Server::fetch));
    register_tools(d);
}

void Server::make_spare_state_dir() {
    if (spare_state_dir_) return;
    fs::path dir = opts_.state_dir / "sessions" / (".spare-" + new_session_id());
    if (::mkdir(dir.c_str(), 0700) != 0) return;
    bool ok = true;
    for (const char* sub : {"upper", "work", "home"})
        ok = ok && ::mkdir((dir / sub).c_str(), 0700) == 0;
    for (const char* file : {"lock", "session.json", "audit.jsonl"}) { // empty until used
        int fd = ::open((dir / file).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        ok = ok && fd >= 0;
        if (fd >= 0) ::close(fd);
    }
    if (!ok) {
        std::error_code ec;
        fs::remove_all(dir, ec);
        return;
    }
    spare_state_dir_ = dir;
}

asio::awaitable<json> Server::session_create(Call& c) {
    auto p = parse_session_create(c.params);
    std::error_code ec;
    fs::path ws = fs::canonical(p.workspace, ec);
    if (ec || !fs::is_directory(ws))
        throw invalid_params("/workspace", "'" + p.workspace + "' is not an existing directory");
    // Fail closed: every required facility must be present.
    isolation();
    for (auto& f : facilities_) {
        if (f.required && !f.available)
            throw RpcError(code::sandbox_unavailable,
                           "sandbox unavailable: " + f.name + " is missing: " + f.detail,
                           json{{"facility", f.name}, {"detail", f.detail}, {"fix", f.fix}});
    }
    SessionInfo info;
    info.id = new_session_id();
    info.workspace = ws.string();
    info.state_dir = opts_.state_dir / "sessions" / info.id;
    if (p.policy) info.policy = *p.policy;
    fs::create_directories(info.state_dir.parent_path());
    ::chmod(opts_.state_dir.c_str(), 0700);
    bool renamed = false;
    if (spare_state_dir_) {
        renamed = ::rename(spare_state_dir_->c_str(), info.state_dir.c_str()) == 0;
        spare_state_dir_.reset();
    }
    asio::post(io_, [this] { make_spare_state_dir(); });
    if (!renamed && ::mkdir(info.state_dir.c_str(), 0700) != 0)
        throw RpcError(code::internal_error, "cannot create session state dir " +
                                                 info.state_dir.string() + ": " +
                                                 std::strerror(errno));
    {
        json meta = {
            {"sessionId", info.id}, {"workspace", info.workspace}, {"policy", info.policy}};
        std::ofstream(info.state_dir / "session.json") << meta.dump(2) << "\n";
    }
    std::shared_ptr<Session> s;
    try {
        s = make_session(info, true);
    } catch (...) {
        fs::remove_all(info.state_dir, ec);
        throw;
    }
    s->attach(c.dispatcher);
    try {
        s->start();
    } catch (...) {
        fs::remove_all(info.state_dir, ec);
        throw;
    }
    sessions_[info.id] = s;
    Isolation iso = isolation();
    iso.landlock = s->ready().landlock_abi > 0;
    iso.cgroups = s->ready().cgroups;
    co_return json{{"sessionId", info.id}, {"workspace", info.workspace}, {"isolation", iso}};
}

asio::awaitable<json> Server::session_list(Call& c) {
    json list = json::array();
    for (auto& [id, s] : sessions_) {
        changes::DiffOptions opts;
        opts.with_patch = false;
        opts.with_git = false;
        auto pending = changes::compute_changes(s->files(), opts).files.size();
        list.push_back({{"sessionId", id},
                        {"workspace", s->info().workspace},
                        {"changedFiles", pending},
                        {"running", s->running()}});
    }
    co_return json{{"sessions", list}};
}

namespace {

// Removes a session's state dir. Directories the sandbox (or overlayfs, for its work dir)
// left without write or search permission are opened up first: they are ours.
void remove_state_dir(const fs::path& dir) {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_directory(ec) && !it->is_symlink(ec))
            fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
    // Unreadable directories are skipped by the walk above: retry on what is left.
    for (int i = 0; i < 8 && fs::exists(dir, ec); ++i) {
        fs::remove_all(dir, ec);
        if (!ec) break;
        for (auto it = fs::recursive_directory_iterator(
                 dir, fs::directory_options::skip_permission_denied, ec);
             !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
            fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
        fs::permissions(dir, fs::perms::owner_all, fs::perm_options::add, ec);
    }
    if (fs::exists(dir, ec)) spdlog::error("could not remove {} completely", dir.string());
}

} // namespace

asio::awaitable<json> Server::session_close(Call& c) {
    auto p = parse_session_close(c.params);
    auto s = find_session(p.session_id);
    s->stop();
    // Without discard the session keeps its state and stays listed: its pending changes
    // can still be reviewed and applied, and a tool call re-creates its sandbox.
    if (p.discard) {
        sessions_.erase(p.session_id);
        remove_state_dir(s->info().state_dir);
    }
    co_return nullptr;
}

asio::awaitable<json> Server::exec(Call& c) {
    auto p = parse_exec(c.params);
    auto s = session_for(c);
    OutputSink sink;
    if (p.stream) {
        sink = [d = &c.dispatcher, request_id = c.id, sid = p.session_id](std::string_view stream,
                                                                          std::string_view data) {
            return d->notify_when_ready("exec/output", json{{"sessionId", sid},
                                                            {"requestId", request_id},
                                                            {"stream", stream},
                                                            {"data", data}});
        };
    }
    const auto started = std::chrono::steady_clock::now();
    ExecResult r;
    try {
        r = co_await s->exec(p, std::move(sink), c.id);
    } catch (const RpcError& e) {
        try {
            s->audit().tool_call("exec", changes::summarize_params(c.params),
                                 "error " + std::to_string(e.code) + ": " + e.what(),
                                 std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now() - started)
                                     .count());
        } catch (const std::exception&) {
        }
        throw;
    }
    std::string outcome = r.reason + (r.exit_code ? " " + std::to_string(*r.exit_code) : "") +
                          (r.signal ? " " + *r.signal : "");
    try {
        s->audit().tool_call("exec", changes::summarize_params(c.params), outcome, r.duration_ms);
    } catch (const std::exception& e) {
        spdlog::error("session {}: audit log write failed: {}", s->id(), e.what());
    }
    co_return json(r);
}

asio::awaitable<json> Server::fetch(Call& c) {
    auto s = session_for(c);
    auto req = net::parse_fetch_request(c.params);
    net::FetchOptions fo;
    fo.extra_ca_file = opts_.extra_ca_file;
    fo.log = [s](const net::RequestRecord& r) {
        try {
            json entry = {{"kind", "network"}, {"request", net::to_json(r)}};
            s->audit().append(entry, !r.allowed);
        } catch (const std::exception& e) {
            spdlog::error("session {}: audit log write failed: {}", s->id(), e.what());
        }
    };
    const auto started = std::chrono::steady_clock::now();
    std::string outcome = "ok";
    json result;
    try {
        result = co_await net::fetch(req, s->gate(), fo);
    } catch (const RpcError& e) {
        outcome = "error " + std::to_string(e.code) + ": " + e.what();
        s->audit().tool_call("fetch", changes::summarize_params(c.params), outcome,
                             std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - started)
                                 .count());
        throw;
    }
    s->audit().tool_call("fetch", changes::summarize_params(c.params), outcome,
                         std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - started)
                             .count());
    co_return result;
}

int serve_stdio(const ServerOptions& opts) {
    asio::io_context io(1);
    Server server(io, opts);
    int code = 0;
    // stdout carries frames only: keep our own handles on the pipes and point fds 0/1 at
    // /dev/null so a stray write from anywhere cannot corrupt the stream.
    int in = ::dup(0), out = ::dup(1);
    int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::close(devnull);
    ::fcntl(in, F_SETFD, FD_CLOEXEC);
    ::fcntl(out, F_SETFD, FD_CLOEXEC);
    asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
    signals.async_wait([&](auto ec, int sig) {
        if (ec) return;
        spdlog::info("signal {}: stopping", sig);
        server.stop_all();
        code = 1;
        io.stop();
    });
    asio::co_spawn(io, server.serve_connection(in, out), [&](std::exception_ptr ep, int c) {
        if (ep) {
            try {
                std::rethrow_exception(ep);
            } catch (const std::exception& e) {
                spdlog::critical("server failed: {}", e.what());
            }
            c = 1;
        }
        code = c;
        signals.cancel();
        server.stop_all();
    });
    io.run();
    return code;
}

int serve_unix(const ServerOptions& opts, const std::string& socket_path) {
    asio::io_context io(1);
    Server server(io, opts);
    using asio::local::stream_protocol;
    ::unlink(socket_path.c_str());
    mode_t old = ::umask(0177); // the socket is created 0600
    stream_protocol::acceptor acceptor(io, stream_protocol::endpoint(socket_path));
    ::umask(old);
    ::chmod(socket_path.c_str(), 0600);
    spdlog::info("listening on unix:{}", socket_path);
    asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
    signals.async_wait([&](auto ec, int) {
        if (ec) return;
        boost::system::error_code e;
        acceptor.close(e);
        server.stop_all();
        io.stop();
    });
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            for (;;) {
                auto sock = co_await acceptor.async_accept(asio::use_awaitable);
                int fd = sock.release();
                asio::co_spawn(io, server.serve_connection(fd, fd), asio::detached);
            }
        },
        asio::detached);
    io.run();
    ::unlink(socket_path.c_str());
    return 0;
}

} // namespace cordon::server
