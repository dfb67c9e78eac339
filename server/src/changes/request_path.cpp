#include "cordon/server/changes/request_path.hpp"

#include "cordon/protocol/jsonrpc.hpp"
#include "cordon/server/changes/fd.hpp"
#include "cordon/server/changes/fs_tools.hpp"

#include <cstdio>

namespace cordon::server::changes {

bool is_valid_utf8(std::string_view s) {
    std::size_t i = 0, n = s.size();
    while (i < n) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t len;
        std::uint32_t cp;
        if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n) return false;
        for (std::size_t k = 1; k < len; ++k) {
            auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

std::string printable_path(std::string_view p) {
    std::string out;
    bool utf8 = is_valid_utf8(p);
    for (unsigned char c : p.substr(0, 1024)) {
        if (c < 0x20 || c == 0x7f || (!utf8 && c >= 0x80)) {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02x", c);
            out += b;
        } else {
            out += static_cast<char>(c);
        }
    }
    if (p.size() > 1024) out += "...";
    return out;
}

// C0, DEL and C1 (U+0080..U+009F, encoded C2 80..C2 9F).
bool has_control_chars(std::string_view s) {
    for (std::size_t i = 0; i < s.size(); ++i) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == 0x7f) return true;
        if (c == 0xc2 && i + 1 < s.size()) {
            auto d = static_cast<unsigned char>(s[i + 1]);
            if (d >= 0x80 && d <= 0x9f) return true;
        }
    }
    return false;
}

namespace {

bool looks_like_uri(std::string_view p) {
    auto colon = p.find("://");
    if (colon == std::string_view::npos || colon == 0) return false;
    for (std::size_t i = 0; i < colon; ++i) {
        char c = p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (i > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '.' || c == '-'));
        if (!ok) return false;
    }
    return true;
}

} // namespace

std::optional<std::string> bad_name_reason(std::string_view name) {
    if (name.empty() || name == "." || name == "..") return "is not a file name";
    if (name.find('/') != std::string_view::npos) return "contains '/'";
    if (name.size() > 255) return "is longer than 255 bytes";
    if (!is_valid_utf8(name)) return "is not valid UTF-8";
    if (has_control_chars(name)) return "contains a control character";
    return std::nullopt;
}

std::string validate_request_path(const std::string& workspace, const std::string& path,
                                  const std::string& field) {
    auto reject = [&](const std::string& why) {
        return protocol::RpcError(
            protocol::code::invalid_params,
            "invalid params: " + field + ": path '" + printable_path(path) + "' " + why,
            protocol::json{{"path", field}, {"value", printable_path(path)}, {"reason", why}});
    };
    if (path.size() > 4095) throw reject("is longer than 4095 bytes");
    if (!is_valid_utf8(path)) throw reject("is not valid UTF-8");
    if (has_control_chars(path)) throw reject("contains a control character");
    if (looks_like_uri(path)) throw reject("is a URI, not a path");
    auto comps = split_rel(path);
    if (!path.empty() && path[0] == '/') {
        auto ws = split_rel(workspace);
        if (comps.size() < ws.size() || !std::equal(ws.begin(), ws.end(), comps.begin()))
            throw reject("is outside the workspace");
        comps.erase(comps.begin(), comps.begin() + static_cast<std::ptrdiff_t>(ws.size()));
    }
    std::string rel;
    for (const auto& c : comps) {
        if (c == ".") continue;
        if (c == "..") throw reject("leaves the workspace ('..')");
        if (c.size() > 255) throw reject("has a component longer than 255 bytes");
        if (!rel.empty()) rel += '/';
        rel += c;
    }
    return rel;
}

bool has_git_component(std::string_view rel) {
    for (const auto& c : split_rel(rel))
        if (c == ".git") return true;
    return false;
}

} // namespace cordon::server::changes
