#include "cordon/server/changes/fs_tools.hpp"

#include "cordon/server/changes/fd.hpp"
#include "cordon/server/changes/request_path.hpp"
#include "internal.hpp"

#include <git2.h>

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace cordon::server::changes {

namespace {

using protocol::RpcError;
namespace code = protocol::code;

UniqueFd sandbox_workspace(const SessionFiles& s) {
    if (s.sandbox_root_fd < 0)
        throw RpcError(code::sandbox_unavailable, "the session's sandbox is not running",
                       json{{"facility", "sandbox"}, {"fix", "start the session's sandbox"}});
    try {
        return open_in_root(s.sandbox_root_fd, s.workspace, O_PATH | O_DIRECTORY);
    } catch (const FsError& e) {
        throw RpcError(code::sandbox_unavailable,
                       std::string("cannot reach the workspace inside the sandbox: ") + e.what(),
                       json{{"facility", "sandbox"}, {"errno", e.err}});
    }
}

RpcError path_error(const std::string& field, const std::string& rel, const std::string& why) {
    return RpcError(code::invalid_params,
                    "invalid params: " + field + ": path '" + printable_path(rel) + "' " + why,
                    json{{"path", field}, {"value", printable_path(rel)}, {"reason", why}});
}

std::string why_of(int err) {
    switch (err) {
    case EXDEV:
        return "resolves outside the workspace (a symlink leading out, or a masked mount)";
    case ELOOP:
        return "has too many levels of symlinks";
    case ENOENT:
        return "does not exist";
    case ENOTDIR:
        return "has a component that is not a directory";
    case EISDIR:
        return "is a directory";
    case EACCES:
    case EPERM:
        return "is not accessible";
    case EFBIG:
        return "is too large";
    default:
        return std::strerror(err);
    }
}

const json& require(const json& params, const char* key, const char* type) {
    if (!params.is_object()) throw protocol::invalid_params("", "params must be an object");
    if (!params.contains(key))
        throw protocol::invalid_params(std::string("/") + key, "is required");
    const json& v = params[key];
    if (std::string(type) == "string" && !v.is_string())
        throw protocol::invalid_params(std::string("/") + key, "must be a string");
    if (std::string(type) == "array" && !v.is_array())
        throw protocol::invalid_params(std::string("/") + key, "must be an array");
    return v;
}

std::string rel_of(const SessionFiles& s, const json& params, bool required) {
    if (!required && (!params.is_object() || !params.contains("path") || params["path"].is_null()))
        return "";
    const json& p = require(params, "path", "string");
    return validate_request_path(s.workspace, p.get<std::string>(), "/path");
}

std::string read_text_or_bytes(int ws, const std::string& rel, std::uint64_t max,
                               struct stat* st_out) {
    // Look before opening for reading: a FIFO or device is never opened.
    int pfd = openat2_raw(ws, rel, O_PATH, Resolve::beneath);
    if (pfd < 0) throw path_error("/path", rel, why_of(errno));
    UniqueFd pf(pfd);
    struct stat pst;
    if (::fstat(pf.get(), &pst) != 0) throw path_error("/path", rel, why_of(errno));
    if (S_ISDIR(pst.st_mode)) throw path_error("/path", rel, "is a directory");
    if (!S_ISREG(pst.st_mode)) throw path_error("/path", rel, "is not a regular file");
    int fd = openat2_raw(ws, rel, O_RDONLY | O_NONBLOCK, Resolve::beneath);
    if (fd < 0) throw path_error("/path", rel, why_of(errno));
    UniqueFd f(fd);
    struct stat st;
    if (::fstat(f.get(), &st) != 0) throw path_error("/path", rel, why_of(errno));
    if (!S_ISREG(st.st_mode) || st.st_ino != pst.st_ino || st.st_dev != pst.st_dev)
        throw path_error("/path", rel, "changed while being opened");
    if (static_cast<std::uint64_t>(st.st_size) > max)
        throw path_error("/path", rel, "is larger than " + std::to_string(max) + " bytes");
    if (st_out) *st_out = st;
    try {
        return read_fd(f.get(), max);
    } catch (const FsError& e) {
        throw path_error("/path", rel, why_of(e.err));
    }
}

// Opens the parent directory of `rel`, creating missing directories one component at a
// time; every open is from the workspace with RESOLVE_BENEATH.
UniqueFd open_parent_creating(int ws, const std::string& rel) {
    std::string parent = split_parent(rel).first;
    int fd = openat2_raw(ws, parent, O_RDONLY | O_DIRECTORY, Resolve::beneath);
    if (fd >= 0) return UniqueFd(fd);
    if (errno != ENOENT) throw path_error("/path", parent, why_of(errno));
    UniqueFd cur(openat2_raw(ws, "", O_RDONLY | O_DIRECTORY, Resolve::beneath));
    std::string done;
    for (const auto& c : split_rel(parent)) {
        done = done.empty() ? c : done + "/" + c;
        int next = openat2_raw(ws, done, O_RDONLY | O_DIRECTORY, Resolve::beneath);
        if (next < 0 && errno == ENOENT) {
            if (::mkdirat(cur.get(), c.c_str(), 0755) != 0 && errno != EEXIST)
                throw path_error("/path", done,
                                 std::string("cannot be created: ") + std::strerror(errno));
            next = openat2_raw(ws, done, O_RDONLY | O_DIRECTORY, Resolve::beneath);
        }
        if (next < 0) throw path_error("/path", done, why_of(errno));
        cur.reset(next);
    }
    return cur;
}

// Writes `data` at `rel` in the sandbox: a symlink (to a file beneath the workspace) is
// written through in place; anything else is replaced by temp file + rename. Returns
// whether the file existed.
bool write_sandbox_file(int ws, const std::string& rel, const std::string& data) {
    if (rel.empty()) throw path_error("/path", rel, "is the workspace root");
    UniqueFd dir = open_parent_creating(ws, rel);
    std::string name = split_parent(rel).second;
    EntryStat st = stat_at(dir.get(), name);
    if (st.type == EntryType::dir) throw path_error("/path", rel, "is a directory");
    if (st.type == EntryType::special) throw path_error("/path", rel, "is not a regular file");
    if (st.type == EntryType::symlink) {
        int fd = openat2_raw(ws, rel, O_WRONLY | O_TRUNC | O_NONBLOCK, Resolve::beneath);
        if (fd < 0) throw path_error("/path", rel, why_of(errno));
        UniqueFd f(fd);
        struct stat fst;
        if (::fstat(f.get(), &fst) != 0 || !S_ISREG(fst.st_mode))
            throw path_error("/path", rel, "is not a regular file");
        write_all(f.get(), data, rel);
        return true;
    }
    char rnd[8];
    if (::getrandom(rnd, sizeof rnd, 0) != sizeof rnd) throw std::runtime_error("getrandom");
    char tmp[64];
    std::snprintf(tmp, sizeof tmp, ".cordon-write-%02x%02x%02x%02x%02x%02x%02x%02x",
                  static_cast<unsigned char>(rnd[0]), static_cast<unsigned char>(rnd[1]),
                  static_cast<unsigned char>(rnd[2]), static_cast<unsigned char>(rnd[3]),
                  static_cast<unsigned char>(rnd[4]), static_cast<unsigned char>(rnd[5]),
                  static_cast<unsigned char>(rnd[6]), static_cast<unsigned char>(rnd[7]));
    UniqueFd out(
        ::openat(dir.get(), tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!out)
        throw path_error("/path", rel, std::string("cannot be written: ") + std::strerror(errno));
    try {
        write_all(out.get(), data, rel);
        if (st.type == EntryType::file) ::fchmod(out.get(), st.mode & 0777);
    } catch (...) {
        ::unlinkat(dir.get(), tmp, 0);
        throw;
    }
    if (::renameat(dir.get(), tmp, dir.get(), name.c_str()) != 0) {
        int e = errno;
        ::unlinkat(dir.get(), tmp, 0);
        throw path_error("/path", rel, std::string("cannot be written: ") + std::strerror(e));
    }
    return st.type == EntryType::file;
}

std::string unified_diff(const std::string& rel, const std::string& before,
                         const std::string& after) {
    detail::init_libgit2();
    git_patch* patch = nullptr;
    git_diff_options opts;
    git_diff_options_init(&opts, GIT_DIFF_OPTIONS_VERSION);
    opts.context_lines = 3;
    if (git_patch_from_buffers(&patch, before.data(), before.size(), rel.c_str(), after.data(),
                               after.size(), rel.c_str(), &opts) != 0)
        return {};
    git_buf buf = GIT_BUF_INIT;
    std::string out;
    if (git_patch_to_buf(&buf, patch) == 0) out.assign(buf.ptr, buf.size);
    git_buf_dispose(&buf);
    git_patch_free(patch);
    return out;
}

} // namespace

std::string base64_encode(std::string_view in) {
    static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        std::uint32_t v = (static_cast<unsigned char>(in[i]) << 16) |
                          (static_cast<unsigned char>(in[i + 1]) << 8) |
                          static_cast<unsigned char>(in[i + 2]);
        out += t[v >> 18];
        out += t[(v >> 12) & 63];
        out += t[(v >> 6) & 63];
        out += t[v & 63];
    }
    if (i < in.size()) {
        std::uint32_t v = static_cast<unsigned char>(in[i]) << 16;
        if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
        out += t[v >> 18];
        out += t[(v >> 12) & 63];
        out += i + 1 < in.size() ? t[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
    auto val = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    std::string clean;
    for (char c : in)
        if (c != '\n' && c != '\r') clean += c;
    if (clean.size() % 4 != 0) return std::nullopt;
    std::string out;
    for (std::size_t i = 0; i < clean.size(); i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; ++k) {
            char c = clean[i + k];
            if (c == '=' && i + 4 == clean.size() && k >= 2) {
                v[k] = 0;
                ++pad;
            } else {
                if (pad) return std::nullopt;
                v[k] = val(c);
                if (v[k] < 0) return std::nullopt;
            }
        }
        std::uint32_t x = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
        out += static_cast<char>(x >> 16);
        if (pad < 2) out += static_cast<char>((x >> 8) & 0xff);
        if (pad < 1) out += static_cast<char>(x & 0xff);
    }
    return out;
}

json fs_read(const SessionFiles& s, const json& params, const FsLimits& l) {
    std::string rel = rel_of(s, params, true);
    UniqueFd ws = sandbox_workspace(s);
    std::string data = read_text_or_bytes(ws.get(), rel, l.max_read_bytes, nullptr);
    json j = json::object();
    bool text = is_valid_utf8(data);
    j["size"] = data.size();
    j["encoding"] = text ? "utf-8" : "base64";
    j["content"] = text ? data : base64_encode(data);
    return j;
}

json fs_list(const SessionFiles& s, const json& params, const FsLimits& l) {
    std::string rel = rel_of(s, params, false);
    UniqueFd ws = sandbox_workspace(s);
    int fd = openat2_raw(ws.get(), rel, O_RDONLY | O_DIRECTORY, Resolve::beneath);
    if (fd < 0) throw path_error("/path", rel, why_of(errno));
    UniqueFd dir(fd);
    std::vector<std::string> names;
    try {
        names = list_dir(dir.get());
    } catch (const FsError& e) {
        throw path_error("/path", rel, why_of(e.err));
    }
    std::sort(names.begin(), names.end());
    json entries = json::array();
    std::size_t omitted = 0;
    for (const auto& name : names) {
        if (bad_name_reason(name)) {
            ++omitted;
            continue;
        }
        EntryStat st;
        try {
            st = stat_at(dir.get(), name);
        } catch (const FsError&) {
            continue;
        }
        const char* type = st.type == EntryType::file      ? "file"
                           : st.type == EntryType::dir     ? "dir"
                           : st.type == EntryType::symlink ? "symlink"
                                                           : nullptr;
        if (!type) {
            ++omitted;
            continue;
        }
        if (entries.size() >= l.max_list_entries) {
            ++omitted;
            continue;
        }
        entries.push_back(json{{"name", name}, {"type", type}, {"size", st.size}});
    }
    json j = json::object();
    j["entries"] = std::move(entries);
    if (omitted) j["omitted"] = omitted; // special files, unprintable names, over the cap
    return j;
}

json fs_write(const SessionFiles& s, const json& params, const FsLimits& l) {
    std::string rel = rel_of(s, params, true);
    const json& content = require(params, "content", "string");
    std::string encoding = "utf-8";
    if (params.contains("encoding") && !params["encoding"].is_null()) {
        if (!params["encoding"].is_string())
            throw protocol::invalid_params("/encoding", "must be a string");
        encoding = params["encoding"].get<std::string>();
    }
    std::string data;
    if (encoding == "utf-8") {
        data = content.get<std::string>();
    } else if (encoding == "base64") {
        auto d = base64_decode(content.get<std::string>());
        if (!d) throw protocol::invalid_params("/content", "is not valid base64");
        data = std::move(*d);
    } else {
        throw protocol::invalid_params("/encoding", "must be \"utf-8\" or \"base64\"");
    }
    if (data.size() > l.max_write_bytes)
        throw protocol::invalid_params(
            "/content", "is larger than " + std::to_string(l.max_write_bytes) + " bytes");
    UniqueFd ws = sandbox_workspace(s);
    bool existed;
    try {
        existed = write_sandbox_file(ws.get(), rel, data);
    } catch (const FsError& e) {
        throw path_error("/path", rel, why_of(e.err));
    }
    json j = json::object();
    j["path"] = rel;
    j["status"] = existed ? "modified" : "added";
    return j;
}

json fs_edit(const SessionFiles& s, const json& params, const FsLimits& l) {
    std::string rel = rel_of(s, params, true);
    const json& edits = require(params, "edits", "array");
    if (edits.empty()) throw protocol::invalid_params("/edits", "must not be empty");
    struct Edit {
        std::string old_text, new_text;
        bool all = false;
    };
    std::vector<Edit> list;
    for (std::size_t i = 0; i < edits.size(); ++i) {
        const json& e = edits[i];
        std::string at = "/edits/" + std::to_string(i);
        if (!e.is_object()) throw protocol::invalid_params(at, "must be an object");
        if (!e.contains("oldText") || !e["oldText"].is_string())
            throw protocol::invalid_params(at + "/oldText", "must be a string");
        if (!e.contains("newText") || !e["newText"].is_string())
            throw protocol::invalid_params(at + "/newText", "must be a string");
        Edit ed{e["oldText"].get<std::string>(), e["newText"].get<std::string>(), false};
        if (e.contains("replaceAll") && !e["replaceAll"].is_null()) {
            if (!e["replaceAll"].is_boolean())
                throw protocol::invalid_params(at + "/replaceAll", "must be a boolean");
            ed.all = e["replaceAll"].get<bool>();
        }
        if (ed.old_text.empty())
            throw protocol::invalid_params(at + "/oldText", "must not be empty");
        list.push_back(std::move(ed));
    }
    UniqueFd ws = sandbox_workspace(s);
    std::string before = read_text_or_bytes(ws.get(), rel, l.max_read_bytes, nullptr);
    if (!is_valid_utf8(before))
        throw path_error("/path", rel, "is not a UTF-8 text file (use fs/write)");
    std::string text = before;
    for (std::size_t i = 0; i < list.size(); ++i) {
        const Edit& e = list[i];
        std::vector<std::size_t> hits;
        for (std::size_t pos = text.find(e.old_text); pos != std::string::npos;
             pos = text.find(e.old_text, pos + e.old_text.size()))
            hits.push_back(pos);
        std::string at = "/edits/" + std::to_string(i) + "/oldText";
        if (hits.empty())
            throw RpcError(
                code::invalid_params,
                "invalid params: edit " + std::to_string(i) + ": oldText not found in '" + rel +
                    "'; nothing was changed",
                json{{"path", at}, {"edit", i}, {"reason", "not found"}, {"matches", 0}});
        if (hits.size() > 1 && !e.all)
            throw RpcError(code::invalid_params,
                           "invalid params: edit " + std::to_string(i) + ": oldText matches " +
                               std::to_string(hits.size()) + " times in '" + rel +
                               "' (add context or set replaceAll); nothing was changed",
                           json{{"path", at},
                                {"edit", i},
                                {"reason", std::to_string(hits.size()) + " matches"},
                                {"matches", hits.size()}});
        std::string next;
        std::size_t last = 0;
        for (auto pos : hits) {
            next.append(text, last, pos - last);
            next += e.new_text;
            last = pos + e.old_text.size();
        }
        next.append(text, last, std::string::npos);
        text = std::move(next);
    }
    try {
        write_sandbox_file(ws.get(), rel, text);
    } catch (const FsError& e) {
        throw path_error("/path", rel, why_of(e.err));
    }
    json j = json::object();
    j["path"] = rel;
    j["diff"] = unified_diff(rel, before, text);
    return j;
}

} // namespace cordon::server::changes
