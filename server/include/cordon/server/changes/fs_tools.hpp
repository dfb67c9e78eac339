// fs/read, fs/list, fs/write, fs/edit on the sandbox's view of the workspace.
//
// Every path is validated lexically first (request_path.hpp), then opened from the
// workspace directory inside the sandbox root with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV): symlinks are followed only while they stay
// beneath the workspace (absolute symlink targets are refused by the kernel), a symlink
// leading out, a mount crossing (a deny-read mask) or a magic link fails with -32602 naming
// the path. Writes go through the overlay, so they land in the upper dir.
//
// Content: UTF-8-valid bytes are returned as "utf-8", anything else as "base64".
// Thread-safety: free functions; the caller serialises per session.
#pragma once

#include "cordon/protocol/jsonrpc.hpp"
#include "cordon/server/changes/context.hpp"

#include <string>

namespace cordon::server::changes {

using protocol::json;

struct FsLimits {
    std::uint64_t max_read_bytes = 16ull << 20;  // fs/read and fs/edit refuse larger files
    std::uint64_t max_write_bytes = 64ull << 20; // decoded content of fs/write
    std::size_t max_list_entries = 100'000;
};

// Each takes the request params object as sent by the client (sessionId is ignored here)
// and returns the result object of PROTOCOL.md. Errors: RpcError -32602 (bad params, bad
// path, not found, not a file, edit failures), -32004 when the sandbox is not running
// (sandbox_root_fd < 0).
json fs_read(const SessionFiles& s, const json& params, const FsLimits& l = {});
json fs_list(const SessionFiles& s, const json& params, const FsLimits& l = {});
json fs_write(const SessionFiles& s, const json& params, const FsLimits& l = {});
json fs_edit(const SessionFiles& s, const json& params, const FsLimits& l = {});

// Helpers also used by the diff.
bool is_valid_utf8(std::string_view s);
std::string base64_encode(std::string_view in);
std::optional<std::string> base64_decode(std::string_view in); // nullopt when malformed

} // namespace cordon::server::changes
