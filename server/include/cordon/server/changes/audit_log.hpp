// Per-session append-only audit log (JSON Lines) with a hash chain.
//
// Every line is one compact JSON object with at least {"seq", "ts", "prev", "kind"}:
// `prev` is the SHA-256 hex of the previous line's bytes (without its newline); the first
// line's `prev` is SHA-256 of "" (e3b0c442...). Editing, inserting, removing or reordering a
// line breaks the chain at the line after it; verify_audit_log() names the first bad line.
// (Truncating the tail is only detectable against a head kept elsewhere: head() returns it.)
//
// Writes: one write(2) per line on an O_APPEND fd, so a crash leaves whole lines (a torn
// last line, possible only on power loss or a full disk, is cut off when the log is opened
// again and recorded in a "recovered" entry). fsync policy: `important` entries (apply,
// denial, recovered) are fdatasync'ed before append() returns; tool-call entries are not
// (they reach the page cache at once and survive a server crash, not a power loss) unless
// the policy is `always`.
//
// Thread-safety: append() is serialised by an internal mutex.
#pragma once

#include "cordon/protocol/jsonrpc.hpp"

#include <filesystem>
#include <mutex>
#include <optional>
#include <string>

namespace cordon::server::changes {

using protocol::json;

enum class FsyncPolicy { never, important, always };

class AuditLog {
  public:
    // Opens (creating, mode 0600) the log; reads its last line to continue the chain.
    explicit AuditLog(std::filesystem::path path, FsyncPolicy policy = FsyncPolicy::important);
    ~AuditLog();
    AuditLog(const AuditLog&) = delete;
    AuditLog& operator=(const AuditLog&) = delete;

    // Appends `entry` (an object; "seq", "ts", "prev" are set here). Throws
    // std::system_error when the write fails.
    void append(json entry, bool important = false);

    // Convenience entries.
    void tool_call(const std::string& method, const json& params_summary,
                   const std::string& outcome, std::uint64_t duration_ms);
    void apply(const json& apply_result_with_hashes);
    void denial(const std::string& kind, const json& detail);

    std::string head() const; // SHA-256 of the last line ("" hash when empty)
    std::uint64_t lines() const;
    const std::filesystem::path& path() const { return path_; }

  private:
    std::filesystem::path path_;
    FsyncPolicy policy_;
    int fd_ = -1;
    std::string prev_;
    std::uint64_t seq_ = 0;
    mutable std::mutex mu_;
};

struct AuditVerdict {
    bool ok = true;
    std::uint64_t lines = 0;     // complete lines checked
    std::uint64_t first_bad = 0; // 1-based line number, 0 when ok
    std::string reason;
    std::string head; // SHA-256 of the last good line
};
AuditVerdict verify_audit_log(const std::filesystem::path& path);

// A short summary of request params for the log: strings longer than 200 bytes are cut and
// `content`/`newText`/`oldText`/`stdin` replaced by their length and SHA-256.
json summarize_params(const json& params);

} // namespace cordon::server::changes
