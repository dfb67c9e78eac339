#include "cordon/sandbox/environment.hpp"

namespace cordon::sandbox {

const std::vector<std::string>& environment_allowlist() {
    static const std::vector<std::string> names = {"PATH", "HOME",   "USER", "LOGNAME", "SHELL",
                                                   "LANG", "LC_ALL", "TERM", "TZ",      "TMPDIR"};
    return names;
}

namespace {
bool valid_name(const std::string& n) {
    return !n.empty() && n.find('=') == std::string::npos && n.find('\0') == std::string::npos;
}
} // namespace

std::vector<std::string> build_environment(const EnvironmentBase& base,
                                           const std::map<std::string, std::string>& session,
                                           const std::map<std::string, std::string>& request) {
    std::map<std::string, std::string> env = {
        {"PATH", base.path},   {"HOME", base.home}, {"USER", base.user}, {"LOGNAME", base.user},
        {"SHELL", base.shell}, {"LANG", "C.UTF-8"}, {"TERM", "dumb"},    {"TMPDIR", "/tmp"},
    };
    for (const auto* layer : {&session, &request}) {
        for (const auto& [k, v] : *layer) {
            if (!valid_name(k) || v.find('\0') != std::string::npos) continue;
            env[k] = v;
        }
    }
    std::vector<std::string> out;
    out.reserve(env.size());
    for (const auto& [k, v] : env)
        out.push_back(k + "=" + v);
    return out;
}

} // namespace cordon::sandbox
