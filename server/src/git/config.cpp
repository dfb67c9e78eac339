#include "cordon/server/git/config.hpp"

#include <openssl/evp.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace cordon::server::git {

namespace {

bool is_lower_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

[[noreturn]] void bad(const std::string& path, const std::string& why) {
    throw cordon::protocol::invalid_params(path, why);
}

std::string get_string(const json& o, const std::string& key, const std::string& path) {
    auto it = o.find(key);
    if (it == o.end() || !it->is_string() || it->get<std::string>().empty())
        bad(path + "." + key, "must be a non-empty string");
    return it->get<std::string>();
}

bool get_bool(const json& o, const std::string& key, const std::string& path, bool def) {
    auto it = o.find(key);
    if (it == o.end()) return def;
    if (!it->is_boolean()) bad(path + "." + key, "must be a boolean");
    return it->get<bool>();
}

void only_keys(const json& o, std::initializer_list<const char*> keys, const std::string& path) {
    for (auto& [k, v] : o.items()) {
        bool known = false;
        for (auto* key : keys)
            known = known || k == key;
        if (!known) bad(path + "." + k, "unknown field");
    }
}

// A ref pattern: "refs/..." with at most one '*', no "..", no control characters or spaces.
bool valid_ref_pattern(const std::string& p) {
    if (p.rfind("refs/", 0) != 0 || p.size() <= 5) return false;
    if (p.find("..") != std::string::npos || p.find("//") != std::string::npos) return false;
    int stars = 0;
    for (char c : p) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x21 || u == 0x7f || c == '~' || c == '^' || c == ':' || c == '?' || c == '[' ||
            c == '\\')
            return false;
        stars += c == '*';
    }
    return stars <= 1;
}

Remote parse_remote(const json& r, const std::string& path) {
    if (!r.is_object()) bad(path, "must be an object");
    only_keys(r, {"url", "credential", "push"}, path);
    Remote out;
    out.url = get_string(r, "url", path);
    const std::string upath = path + ".url";
    const std::string scheme = "https://";
    if (out.url.rfind(scheme, 0) != 0) bad(upath, "must start with https://");
    std::string rest = out.url.substr(scheme.size());
    auto slash = rest.find('/');
    if (slash == std::string::npos) bad(upath, "must name a repository: https://host/owner/repo");
    std::string hostport = rest.substr(0, slash);
    std::string p = rest.substr(slash + 1);
    if (hostport.find('@') != std::string::npos) bad(upath, "must not contain user information");
    std::string host = hostport, port;
    if (auto c = hostport.find(':'); c != std::string::npos) {
        host = hostport.substr(0, c);
        port = hostport.substr(c + 1);
    }
    for (auto& ch : host)
        ch = lower(ch);
    if (host.empty() || host.front() == '.' || host.front() == '-' || host.back() == '.')
        bad(upath, "bad host name");
    for (char ch : host)
        if (!is_lower_alnum(ch) && ch != '.' && ch != '-') bad(upath, "bad host name");
    out.host = host;
    if (!port.empty()) {
        if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
            bad(upath, "bad port");
        int n = std::stoi(port);
        if (n < 1 || n > 65535) bad(upath, "bad port");
        out.port = static_cast<std::uint16_t>(n);
    }
    out.origin = out.port == 443 ? host : host + ":" + std::to_string(out.port);
    while (!p.empty() && p.back() == '/')
        p.pop_back();
    auto key = canonical_repo_key(p);
    if (!key) bad(upath, "bad repository path (plain owner/repo segments only)");
    out.path = p;
    out.key = *key;

    auto c = r.find("credential");
    const std::string cpath = path + ".credential";
    if (c == r.end() || !c->is_object()) bad(cpath, "must be an object");
    only_keys(*c, {"env", "file", "helper", "username"}, cpath);
    int sources = int(c->contains("env")) + int(c->contains("file")) + int(c->contains("helper"));
    if (sources != 1) bad(cpath, "needs exactly one of env, file, helper");
    if (c->contains("env")) {
        out.credential.kind = CredentialSource::Kind::env;
        out.credential.name = get_string(*c, "env", cpath);
    } else if (c->contains("file")) {
        out.credential.kind = CredentialSource::Kind::file;
        out.credential.name = get_string(*c, "file", cpath);
        if (out.credential.name.front() != '/') bad(cpath + ".file", "must be an absolute path");
    } else {
        if (!get_bool(*c, "helper", cpath, false)) bad(cpath + ".helper", "must be true");
        out.credential.kind = CredentialSource::Kind::helper;
    }
    if (c->contains("username")) out.credential.username = get_string(*c, "username", cpath);

    if (auto pp = r.find("push"); pp != r.end()) {
        const std::string ppath = path + ".push";
        if (!pp->is_object()) bad(ppath, "must be an object");
        only_keys(*pp, {"refs", "allowDelete", "allowTags", "allowForce"}, ppath);
        if (auto refs = pp->find("refs"); refs != pp->end()) {
            if (!refs->is_array()) bad(ppath + ".refs", "must be an array of ref patterns");
            out.push.refs.clear();
            for (std::size_t i = 0; i < refs->size(); ++i) {
                const auto& v = (*refs)[i];
                std::string rp = ppath + ".refs[" + std::to_string(i) + "]";
                if (!v.is_string() || !valid_ref_pattern(v.get<std::string>()))
                    bad(rp, "must be a ref pattern like refs/heads/cordon/*");
                out.push.refs.push_back(v.get<std::string>());
            }
        }
        out.push.allow_delete = get_bool(*pp, "allowDelete", ppath, false);
        out.push.allow_tags = get_bool(*pp, "allowTags", ppath, false);
        out.push.allow_force = get_bool(*pp, "allowForce", ppath, false);
    }
    return out;
}

std::string base64(std::string_view s) {
    std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(s.data()),
                            static_cast<int>(s.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::string trim_line_end(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
        s.pop_back();
    return s;
}

// `git credential fill` outside the sandbox: no terminal, no askpass, bounded in time.
Credential credential_fill(const Remote& r) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0) throw std::runtime_error("git credential fill: pipe");
    if (::pipe2(out, O_CLOEXEC) != 0) {
        ::close(in[0]);
        ::close(in[1]);
        throw std::runtime_error("git credential fill: pipe");
    }
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(in[0], 0);
        ::dup2(out[1], 1);
        int devnull = ::open("/dev/null", O_WRONLY);
        if (devnull >= 0) ::dup2(devnull, 2);
        ::setsid(); // no controlling terminal
        ::setenv("GIT_TERMINAL_PROMPT", "0", 1);
        ::setenv("GIT_ASKPASS", "/bin/false", 1);
        ::setenv("SSH_ASKPASS", "/bin/false", 1);
        ::unsetenv("DISPLAY");
        ::unsetenv("GIT_TRACE");
        ::unsetenv("GIT_TRACE_CURL");
        ::unsetenv("GIT_CURL_VERBOSE");
        ::execlp("git", "git", "credential", "fill", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    if (pid < 0) {
        ::close(in[1]);
        ::close(out[0]);
        throw std::runtime_error("git credential fill: fork");
    }
    std::string q = "protocol=https\nhost=" + r.origin + "\npath=" + r.path + "\n\n";
    ::signal(SIGPIPE, SIG_IGN);
    [[maybe_unused]] auto w = ::write(in[1], q.data(), q.size());
    ::close(in[1]);
    std::string text;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
        if (left <= 0) break;
        pollfd pfd{out[0], POLLIN, 0};
        if (::poll(&pfd, 1, static_cast<int>(left)) <= 0) break;
        char buf[4096];
        auto n = ::read(out[0], buf, sizeof buf);
        if (n <= 0) break;
        text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(out[0]);
    ::kill(pid, SIGKILL); // no-op when it has exited
    int st = 0;
    ::waitpid(pid, &st, 0);
    Credential c;
    std::istringstream is(text);
    std::string line;
    while (std::getline(is, line)) {
        if (line.rfind("username=", 0) == 0) c.username = trim_line_end(line.substr(9));
        if (line.rfind("password=", 0) == 0) c.password = trim_line_end(line.substr(9));
    }
    if (c.password.empty())
        throw std::runtime_error("git credential fill gave no password for " + r.origin);
    if (c.username.empty()) c.username = r.credential.username;
    return c;
}

} // namespace

std::optional<std::string> canonical_repo_key(std::string_view path) {
    if (path.empty() || path.size() > 1024) return std::nullopt;
    std::string key;
    std::size_t start = 0;
    for (;;) {
        auto end = path.find('/', start);
        auto seg = path.substr(start, end == std::string_view::npos ? path.npos : end - start);
        if (seg.empty() || seg == "." || seg == "..") return std::nullopt;
        for (char c : seg) {
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-' || c == '~';
            if (!ok) return std::nullopt;
        }
        if (!key.empty()) key += '/';
        for (char c : seg)
            key += lower(c);
        if (end == std::string_view::npos) break;
        start = end + 1;
    }
    if (key.size() > 4 && key.compare(key.size() - 4, 4, ".git") == 0) key.resize(key.size() - 4);
    if (key.empty() || key.back() == '/' || key.find('/') == std::string::npos) return std::nullopt;
    if (key.size() >= 2 && key.compare(key.size() - 2, 2, "/.") == 0) return std::nullopt;
    return key;
}

GitConfig parse_git_config(const json& j, const std::string& path) {
    if (!j.is_object()) bad(path, "must be an object");
    only_keys(j, {"caFile", "remotes"}, path);
    GitConfig c;
    if (auto ca = j.find("caFile"); ca != j.end()) {
        c.ca_file = get_string(j, "caFile", path);
        if (c.ca_file.front() != '/') bad(path + ".caFile", "must be an absolute path");
    }
    auto remotes = j.find("remotes");
    if (remotes == j.end()) return c;
    if (!remotes->is_array()) bad(path + ".remotes", "must be an array");
    for (std::size_t i = 0; i < remotes->size(); ++i) {
        std::string rp = path + ".remotes[" + std::to_string(i) + "]";
        auto r = parse_remote((*remotes)[i], rp);
        for (auto& other : c.remotes)
            if (other.origin == r.origin && other.key == r.key)
                bad(rp + ".url", "repository configured twice");
        c.remotes.push_back(std::move(r));
    }
    return c;
}

std::string Credential::authorization() const {
    return "Basic " + base64(username + ":" + password);
}

Credential resolve_credential(const Remote& r) {
    const auto& src = r.credential;
    Credential c;
    c.username = src.username;
    switch (src.kind) {
    case CredentialSource::Kind::env: {
        const char* v = std::getenv(src.name.c_str());
        if (!v || !*v) throw std::runtime_error("credential variable " + src.name + " is not set");
        c.password = v;
        break;
    }
    case CredentialSource::Kind::file: {
        std::ifstream f(src.name, std::ios::binary);
        if (!f) throw std::runtime_error("credential file " + src.name + " cannot be read");
        std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        c.password = trim_line_end(s.substr(0, s.find('\n')));
        if (c.password.empty())
            throw std::runtime_error("credential file " + src.name + " is empty");
        break;
    }
    case CredentialSource::Kind::helper:
        return credential_fill(r);
    }
    for (char ch : c.password + c.username)
        if (static_cast<unsigned char>(ch) < 0x20)
            throw std::runtime_error("credential for " + r.origin + " has control characters");
    return c;
}

} // namespace cordon::server::git
