#include "cordon/server/git/receive_pack.hpp"

#include <openssl/evp.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace cordon::server::git {

namespace {

[[noreturn]] void malformed(const std::string& what) {
    throw std::runtime_error("malformed receive-pack request: " + what);
}

bool is_hex_id(std::string_view s) {
    return s.size() == 40 && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

// Reads one pkt-line at `pos`; returns false for a flush packet. `line` has no trailing LF.
bool read_pkt(std::string_view body, std::size_t& pos, std::string_view& line) {
    if (body.size() - pos < 4) malformed("truncated pkt-line");
    unsigned len = 0;
    for (int i = 0; i < 4; ++i) {
        char c = body[pos + static_cast<std::size_t>(i)];
        unsigned v;
        if (c >= '0' && c <= '9')
            v = static_cast<unsigned>(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = static_cast<unsigned>(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v = static_cast<unsigned>(c - 'A' + 10);
        else
            malformed("bad pkt-line length");
        len = len * 16 + v;
    }
    if (len == 0) {
        pos += 4;
        return false;
    }
    if (len < 4 || len > 65520 || body.size() - pos < len) malformed("bad pkt-line length");
    line = body.substr(pos + 4, len - 4);
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    pos += len;
    return true;
}

std::string to_hex(const unsigned char* d, std::size_t n) {
    static const char* x = "0123456789abcdef";
    std::string s;
    for (std::size_t i = 0; i < n; ++i) {
        s += x[d[i] >> 4];
        s += x[d[i] & 15];
    }
    return s;
}

std::string object_id(std::string_view type, std::string_view data) {
    std::string head = std::string(type) + " " + std::to_string(data.size());
    head.push_back('\0');
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha1(), nullptr);
    EVP_DigestUpdate(ctx, head.data(), head.size());
    EVP_DigestUpdate(ctx, data.data(), data.size());
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    return to_hex(md, mdlen);
}

// Inflates the zlib stream at `pos`; advances pos past it.
std::string inflate_at(std::string_view pack, std::size_t& pos, std::size_t expect) {
    z_stream z{};
    if (inflateInit(&z) != Z_OK) malformed("zlib");
    std::string out(expect, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(pack.data() + pos));
    z.avail_in = static_cast<uInt>(std::min<std::size_t>(pack.size() - pos, 1u << 30));
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(expect);
    int rc = Z_OK;
    unsigned char spare[1];
    while (rc == Z_OK) {
        if (z.avail_out == 0) { // must end now; give zlib room to say so
            z.next_out = spare;
            z.avail_out = sizeof spare;
            rc = inflate(&z, Z_NO_FLUSH);
            if (rc == Z_OK || z.avail_out == 0) rc = Z_DATA_ERROR;
            break;
        }
        rc = inflate(&z, Z_NO_FLUSH);
    }
    std::size_t used = z.total_in;
    std::size_t produced = z.total_out;
    inflateEnd(&z);
    if (rc != Z_STREAM_END || produced != expect) malformed("bad zlib stream in pack");
    pos += used;
    return out;
}

std::uint64_t delta_varint(std::string_view d, std::size_t& p) {
    std::uint64_t v = 0;
    int shift = 0;
    for (;;) {
        if (p >= d.size() || shift > 56) malformed("bad delta");
        auto c = static_cast<unsigned char>(d[p++]);
        v |= std::uint64_t(c & 0x7f) << shift;
        shift += 7;
        if (!(c & 0x80)) return v;
    }
}

std::string apply_delta(std::string_view base, std::string_view delta) {
    std::size_t p = 0;
    if (delta_varint(delta, p) != base.size()) malformed("delta base size");
    auto size = delta_varint(delta, p);
    std::string out;
    out.reserve(size);
    while (p < delta.size()) {
        auto op = static_cast<unsigned char>(delta[p++]);
        if (op & 0x80) {
            std::uint64_t off = 0, n = 0;
            for (int i = 0; i < 4; ++i)
                if (op & (1 << i)) {
                    if (p >= delta.size()) malformed("delta");
                    off |= std::uint64_t(static_cast<unsigned char>(delta[p++])) << (8 * i);
                }
            for (int i = 0; i < 3; ++i)
                if (op & (0x10 << i)) {
                    if (p >= delta.size()) malformed("delta");
                    n |= std::uint64_t(static_cast<unsigned char>(delta[p++])) << (8 * i);
                }
            if (n == 0) n = 0x10000;
            if (off + n > base.size()) malformed("delta copy");
            out.append(base.substr(off, n));
        } else if (op) {
            if (p + op > delta.size()) malformed("delta insert");
            out.append(delta.substr(p, op));
            p += op;
        } else {
            malformed("delta opcode 0");
        }
    }
    if (out.size() != size) malformed("delta result size");
    return out;
}

PackCommit parse_commit(std::string_view c) {
    PackCommit pc;
    std::size_t p = 0;
    while (p < c.size()) {
        auto e = c.find('\n', p);
        if (e == std::string_view::npos) e = c.size();
        auto line = c.substr(p, e - p);
        p = e + 1;
        if (line.empty()) break;
        if (line.rfind("parent ", 0) == 0) pc.parents.emplace_back(line.substr(7));
        if (line.rfind("author ", 0) == 0) {
            auto a = line.substr(7);
            auto gt = a.find('>');
            pc.author = std::string(a.substr(0, gt == a.npos ? a.size() : gt + 1));
        }
    }
    if (p < c.size()) {
        auto e = c.find('\n', p);
        pc.summary = std::string(c.substr(p, e == std::string_view::npos ? c.npos : e - p));
        if (pc.summary.size() > 200) pc.summary.resize(200);
    }
    return pc;
}

} // namespace

bool ReceivePackRequest::has(std::string_view cap) const {
    return std::find(capabilities.begin(), capabilities.end(), cap) != capabilities.end();
}

ReceivePackRequest parse_receive_pack(std::string_view body) {
    ReceivePackRequest r;
    std::size_t pos = 0;
    std::string_view line;
    bool first = true;
    for (;;) {
        if (!read_pkt(body, pos, line)) break;
        if (line.rfind("shallow ", 0) == 0 && first) {
            r.shallow.emplace_back(line.substr(8));
            continue;
        }
        if (first) {
            auto nul = line.find('\0');
            if (nul != std::string_view::npos) {
                auto caps = line.substr(nul + 1);
                line = line.substr(0, nul);
                std::size_t s = 0;
                while (s < caps.size()) {
                    auto e = caps.find(' ', s);
                    if (e == std::string_view::npos) e = caps.size();
                    if (e > s) r.capabilities.emplace_back(caps.substr(s, e - s));
                    s = e + 1;
                }
            }
            first = false;
        }
        if (line.size() < 83 || line[40] != ' ' || line[81] != ' ') malformed("bad command");
        RefUpdate u{std::string(line.substr(0, 40)), std::string(line.substr(41, 40)),
                    std::string(line.substr(82))};
        if (!is_hex_id(u.old_id) || !is_hex_id(u.new_id)) malformed("bad object id");
        if (u.ref.find('\0') != std::string::npos) malformed("NUL in ref name");
        r.commands.push_back(std::move(u));
    }
    if (r.commands.empty() && pos < body.size()) malformed("no commands");
    if (r.has("push-options") && pos < body.size()) {
        while (read_pkt(body, pos, line))
            r.push_options.emplace_back(line);
    }
    r.pack_offset = pos;
    return r;
}

PackCommits scan_pack(std::string_view pack) {
    PackCommits out;
    if (pack.empty()) return out;
    if (pack.size() < 12 + 20 || pack.substr(0, 4) != "PACK") malformed("no pack header");
    auto be32 = [&](std::size_t p) {
        return (std::uint32_t(static_cast<unsigned char>(pack[p])) << 24) |
               (std::uint32_t(static_cast<unsigned char>(pack[p + 1])) << 16) |
               (std::uint32_t(static_cast<unsigned char>(pack[p + 2])) << 8) |
               std::uint32_t(static_cast<unsigned char>(pack[p + 3]));
    };
    auto version = be32(4);
    if (version != 2 && version != 3) malformed("pack version");
    std::uint32_t count = be32(8);
    std::size_t pos = 12;
    // offset -> resolved type (1..4, 0 unknown); commit bodies by offset and by id.
    std::map<std::size_t, int> types;
    std::map<std::size_t, std::string> commit_data;
    std::map<std::string, std::size_t> commit_offsets;
    const std::size_t end = pack.size() - 20;
    for (std::uint32_t i = 0; i < count; ++i) {
        std::size_t start = pos;
        if (pos >= end) malformed("truncated pack");
        auto c = static_cast<unsigned char>(pack[pos++]);
        int type = (c >> 4) & 7;
        std::uint64_t size = c & 15;
        int shift = 4;
        while (c & 0x80) {
            if (pos >= end || shift > 57) malformed("bad object header");
            c = static_cast<unsigned char>(pack[pos++]);
            size |= std::uint64_t(c & 0x7f) << shift;
            shift += 7;
        }
        if (size > (1ull << 32)) malformed("object too large");
        std::optional<std::size_t> base_off;
        std::string base_id;
        if (type == 6) {
            if (pos >= end) malformed("truncated pack");
            c = static_cast<unsigned char>(pack[pos++]);
            std::uint64_t ofs = c & 0x7f;
            while (c & 0x80) {
                if (pos >= end || ofs > (1ull << 50)) malformed("bad delta offset");
                c = static_cast<unsigned char>(pack[pos++]);
                ofs = ((ofs + 1) << 7) | (c & 0x7f);
            }
            if (ofs == 0 || ofs > start) malformed("bad delta offset");
            base_off = start - ofs;
        } else if (type == 7) {
            if (end - pos < 20) malformed("truncated pack");
            base_id = to_hex(reinterpret_cast<const unsigned char*>(pack.data() + pos), 20);
            pos += 20;
        } else if (type < 1 || type > 4) {
            malformed("bad object type");
        }
        std::string data = inflate_at(pack, pos, static_cast<std::size_t>(size));
        ++out.objects;
        int resolved = type;
        if (type == 6 || type == 7) {
            std::optional<std::size_t> b = base_off;
            if (type == 7) {
                if (auto it = commit_offsets.find(base_id); it != commit_offsets.end())
                    b = it->second;
            }
            resolved = 0;
            if (b) {
                auto t = types.find(*b);
                if (t == types.end()) malformed("delta base not at an object");
                resolved = t->second;
                if (resolved == 1) data = apply_delta(commit_data.at(*b), data);
            }
            // A REF_DELTA whose base is not a commit of this pack: a tree, blob or tag of the
            // pack, or an object the remote has (thin pack). Its type stays unknown.
            if (resolved == 0) ++out.unresolved;
        }
        types[start] = resolved;
        if (resolved == 1) {
            auto id = object_id("commit", data);
            out.commits[id] = parse_commit(data);
            commit_offsets[id] = start;
            commit_data[start] = std::move(data);
        }
    }
    return out;
}

bool proven_fast_forward(const PackCommits& pack, const std::string& old_id,
                         const std::string& new_id) {
    if (old_id == new_id) return true;
    std::vector<std::string> todo{new_id};
    std::map<std::string, bool> seen;
    while (!todo.empty()) {
        auto id = todo.back();
        todo.pop_back();
        if (id == old_id) return true;
        if (seen[id]) continue;
        seen[id] = true;
        auto it = pack.commits.find(id);
        if (it == pack.commits.end()) continue; // outside the pack: cannot walk further
        for (auto& p : it->second.parents)
            todo.push_back(p);
    }
    return false;
}

std::vector<std::string> pack_boundaries(const PackCommits& pack, const std::string& new_id) {
    std::vector<std::string> out, todo{new_id};
    std::map<std::string, bool> seen;
    while (!todo.empty()) {
        auto id = todo.back();
        todo.pop_back();
        if (seen[id]) continue;
        seen[id] = true;
        auto it = pack.commits.find(id);
        if (it == pack.commits.end()) {
            out.push_back(id);
            continue;
        }
        for (auto& p : it->second.parents)
            todo.push_back(p);
    }
    return out;
}

std::string upload_pack_fetch_request(const std::vector<std::string>& wants,
                                      const std::string& have) {
    std::string s = pkt_line("command=fetch\n") + pkt_line("agent=cordon\n") + "0001" +
                    pkt_line("no-progress\n") + pkt_line("ofs-delta\n");
    for (auto& w : wants)
        s += pkt_line("want " + w + "\n");
    if (have != kZeroId) s += pkt_line("have " + have + "\n");
    s += pkt_line("done\n") + "0000";
    return s;
}

std::string upload_pack_response_pack(std::string_view body) {
    std::size_t pos = 0;
    std::string_view line;
    bool in_pack = false;
    std::string pack;
    while (pos < body.size()) {
        if (body.size() - pos >= 4 && body.substr(pos, 4) == "0001") { // delimiter
            pos += 4;
            continue;
        }
        if (!read_pkt(body, pos, line)) {
            if (in_pack) return pack;
            continue;
        }
        if (!in_pack) {
            if (line.rfind("ERR ", 0) == 0) throw std::runtime_error(std::string(line));
            if (line == "packfile") in_pack = true;
            continue;
        }
        // read_pkt drops one trailing LF; pack data must stay byte-exact, so re-read raw.
        std::size_t payload = static_cast<std::size_t>(line.data() - body.data());
        std::string_view raw = body.substr(payload, pos - payload);
        if (raw.empty()) continue;
        if (raw[0] == 1)
            pack.append(raw.substr(1));
        else if (raw[0] == 3)
            throw std::runtime_error("remote error: " + std::string(raw.substr(1)));
    }
    throw std::runtime_error("no packfile in the upload-pack response");
}

bool ref_matches(std::string_view pattern, std::string_view ref) {
    auto star = pattern.find('*');
    if (star == std::string_view::npos) return pattern == ref;
    auto pre = pattern.substr(0, star), post = pattern.substr(star + 1);
    return ref.size() > pre.size() + post.size() && ref.substr(0, pre.size()) == pre &&
           ref.substr(ref.size() - post.size()) == post;
}

bool valid_ref_name(std::string_view ref) {
    if (ref.rfind("refs/", 0) != 0 || ref.size() > 1024) return false;
    if (ref.back() == '/' || ref.back() == '.') return false;
    if (ref.find("..") != std::string_view::npos || ref.find("//") != std::string_view::npos ||
        ref.find("@{") != std::string_view::npos || ref.find("/.") != std::string_view::npos)
        return false;
    if (ref.size() >= 5 && ref.substr(ref.size() - 5) == ".lock") return false;
    for (char c : ref) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f || c == ' ' || c == '~' || c == '^' || c == ':' || c == '?' ||
            c == '*' || c == '[' || c == '\\')
            return false;
    }
    return true;
}

PushDecision check_push(const ReceivePackRequest& req, const PackCommits& pack,
                        const PushPolicy& policy) {
    PushDecision d;
    d.allowed = true;
    std::string patterns;
    for (auto& p : policy.refs)
        patterns += (patterns.empty() ? "" : ", ") + p;
    for (auto& u : req.commands) {
        RefDecision r{u, true, ""};
        bool tag = u.ref.rfind("refs/tags/", 0) == 0;
        bool matches = std::any_of(policy.refs.begin(), policy.refs.end(),
                                   [&](auto& p) { return ref_matches(p, u.ref); }) ||
                       (tag && policy.allow_tags);
        if (!valid_ref_name(u.ref)) {
            r.reason = "cordon: invalid ref name";
        } else if (!req.push_options.empty()) {
            r.reason = "cordon: push options are not allowed";
        } else if (tag && !policy.allow_tags) {
            r.reason = "cordon: tag pushes are not allowed";
        } else if (!matches) {
            r.reason = "cordon: ref outside the allowed refs (" + patterns + ")";
        } else if (u.is_delete() && !policy.allow_delete) {
            r.reason = "cordon: deleting refs is not allowed";
        } else if (!u.is_delete() && !u.is_create() && !policy.allow_force &&
                   !proven_fast_forward(pack, u.old_id, u.new_id)) {
            r.reason = "cordon: non-fast-forward update (force push) is not allowed";
        }
        r.allowed = r.reason.empty();
        if (!r.allowed && d.allowed) {
            d.allowed = false;
            d.summary = u.ref + ": " + r.reason;
        }
        d.refs.push_back(std::move(r));
    }
    if (req.commands.empty()) d.allowed = true;
    return d;
}

std::string pkt_line(std::string_view data) {
    if (data.empty()) return "0000";
    char len[5];
    std::snprintf(len, sizeof len, "%04x", static_cast<unsigned>(data.size() + 4));
    return std::string(len, 4) + std::string(data);
}

std::string report_status(const ReceivePackRequest& req, const PushDecision& d,
                          const std::string& message) {
    std::string report = pkt_line("unpack ok\n");
    for (auto& r : d.refs) {
        std::string reason = r.allowed ? "cordon: refused with the rest of this push" : r.reason;
        report += pkt_line("ng " + r.update.ref + " " + reason + "\n");
    }
    report += "0000";
    if (!req.has("side-band-64k") && !req.has("side-band")) return report;
    const std::size_t max = req.has("side-band-64k") ? 65515 : 995;
    std::string out;
    if (!message.empty()) out += pkt_line(std::string("\2") + message + "\n");
    for (std::size_t p = 0; p < report.size(); p += max)
        out += pkt_line(std::string("\1") + report.substr(p, max));
    out += "0000";
    return out;
}

} // namespace cordon::server::git
