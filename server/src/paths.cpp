#include "cordon/server/paths.hpp"

#include "cordon/protocol/jsonrpc.hpp"

#include <vector>

namespace cordon::server {

namespace {

std::vector<std::string> split(const std::string& p) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= p.size()) {
        auto end = p.find('/', start);
        if (end == std::string::npos) end = p.size();
        if (end > start) out.push_back(p.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

std::string printable(const std::string& p) {
    std::string out;
    for (unsigned char c : p.substr(0, 512)) {
        if (c < 0x20 || c == 0x7f) {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02x", c);
            out += b;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

} // namespace

WorkspacePath resolve_in_workspace(const std::string& workspace, const std::string& path,
                                   const std::string& field) {
    auto reject = [&](const std::string& why) -> protocol::RpcError {
        return protocol::RpcError(protocol::code::invalid_params,
                                  "invalid params: " + field + ": path '" + printable(path) + "' " +
                                      why,
                                  protocol::json{{"path", field}, {"value", printable(path)}});
    };
    for (unsigned char c : path)
        if (c < 0x20 || c == 0x7f) throw reject("contains a control character");
    if (path.size() > 4096) throw reject("is too long");
    auto comps = split(path);
    if (!path.empty() && path[0] == '/') {
        auto ws = split(workspace);
        if (comps.size() < ws.size() || !std::equal(ws.begin(), ws.end(), comps.begin()))
            throw reject("is outside the workspace");
        comps.erase(comps.begin(), comps.begin() + ws.size());
    }
    std::string rel;
    for (auto& c : comps) {
        if (c == ".") continue;
        if (c == "..") throw reject("leaves the workspace ('..')");
        if (c.size() > 255) throw reject("has a component longer than 255 bytes");
        if (!rel.empty()) rel += '/';
        rel += c;
    }
    return {rel, rel.empty() ? workspace : workspace + "/" + rel};
}

} // namespace cordon::server
