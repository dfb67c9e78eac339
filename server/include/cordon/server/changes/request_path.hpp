// Paths from requests and names from the upper dir, checked lexically before any
// filesystem call.
//
// A request path is workspace-relative ("a/b") or absolute inside the workspace
// ("/ws/a/b", compared component by component, never by string prefix: "/ws-evil" is
// outside "/ws"). Rejected: "..", NUL and every C0/C1 control character (incl. CR/LF/TAB),
// DEL, invalid UTF-8, components over 255 bytes, paths over 4095 bytes, `file://` URIs are
// just paths that are not absolute and start with "file:" (rejected too), and a path naming
// the workspace root where a file is needed (callers say which). `.` and empty components are
// dropped.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace cordon::server::changes {

// Returns the normalised relative path ("" = workspace root). Throws protocol::RpcError
// -32602 with data {path: field, value: <printable path>} and a message naming the path.
std::string validate_request_path(const std::string& workspace, const std::string& path,
                                  const std::string& field);

// Why a single directory-entry name from the upper or the real tree is unusable in a
// result or an apply (control characters, invalid UTF-8, "." / "..", '/', too long), or
// nullopt when it is fine.
std::optional<std::string> bad_name_reason(std::string_view name);

// C0 controls, DEL, or C1 controls (U+0080..U+009F) anywhere in `s`.
bool has_control_chars(std::string_view s);

// The path with control characters and invalid bytes shown as \xNN (for messages).
std::string printable_path(std::string_view p);

// True when some component of `rel` is exactly ".git" (any nested repository too).
bool has_git_component(std::string_view rel);

} // namespace cordon::server::changes
