#include "cordon/server/changes/audit_log.hpp"

#include "cordon/server/changes/hash.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <ctime>
#include <fstream>
#include <system_error>

namespace cordon::server::changes {

namespace {

std::string now_iso8601() {
    auto now = std::chrono::system_clock::now();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms % 1000));
    return buf;
}

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

} // namespace

AuditLog::AuditLog(std::filesystem::path path, FsyncPolicy policy)
    : path_(std::move(path)), policy_(policy), prev_(kSha256Empty) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd_ < 0) throw_errno("cannot open audit log " + path_.string());
    // Continue the chain from the last complete line; cut off a torn tail.
    std::ifstream in(path_, std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::size_t torn = 0;
    if (!content.empty() && content.back() != '\n') {
        auto nl = content.rfind('\n');
        std::size_t keep = nl == std::string::npos ? 0 : nl + 1;
        torn = content.size() - keep;
        if (::ftruncate(fd_, static_cast<off_t>(keep)) != 0)
            throw_errno("cannot truncate audit log");
        content.resize(keep);
    }
    std::size_t start = 0;
    std::string last;
    while (start < content.size()) {
        auto nl = content.find('\n', start);
        last = content.substr(start, nl - start);
        ++seq_;
        start = nl + 1;
    }
    if (!last.empty()) prev_ = sha256_hex(last);
    if (torn) {
        json e = json::object();
        e["kind"] = "recovered";
        e["truncatedBytes"] = torn;
        append(std::move(e), true);
    }
}

AuditLog::~AuditLog() {
    if (fd_ >= 0) ::close(fd_);
}

void AuditLog::append(json entry, bool important) {
    std::lock_guard lock(mu_);
    json line = json::object();
    line["seq"] = seq_ + 1;
    line["ts"] = now_iso8601();
    line["prev"] = prev_;
    for (auto& [k, v] : entry.items())
        if (k != "seq" && k != "ts" && k != "prev") line[k] = v;
    std::string text = line.dump(-1, ' ', false, json::error_handler_t::replace);
    std::string buf = text + "\n";
    ssize_t n = ::write(fd_, buf.data(), buf.size());
    if (n != static_cast<ssize_t>(buf.size())) {
        if (n >= 0) errno = EIO;
        throw_errno("cannot append to audit log");
    }
    if (policy_ == FsyncPolicy::always || (policy_ == FsyncPolicy::important && important))
        ::fdatasync(fd_);
    prev_ = sha256_hex(text);
    ++seq_;
}

void AuditLog::tool_call(const std::string& method, const json& params_summary,
                         const std::string& outcome, std::uint64_t duration_ms) {
    json e = json::object();
    e["kind"] = "tool";
    e["method"] = method;
    e["params"] = params_summary;
    e["outcome"] = outcome;
    e["durationMs"] = duration_ms;
    append(std::move(e), false);
}

void AuditLog::apply(const json& apply_result_with_hashes) {
    json e = json::object();
    e["kind"] = "apply";
    e["result"] = apply_result_with_hashes;
    append(std::move(e), true);
}

void AuditLog::denial(const std::string& kind, const json& detail) {
    json e = json::object();
    e["kind"] = "denial";
    e["denied"] = kind;
    e["detail"] = detail;
    append(std::move(e), true);
}

std::string AuditLog::head() const {
    std::lock_guard lock(mu_);
    return prev_;
}

std::uint64_t AuditLog::lines() const {
    std::lock_guard lock(mu_);
    return seq_;
}

AuditVerdict verify_audit_log(const std::filesystem::path& path) {
    AuditVerdict v;
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        v.ok = false;
        v.reason = "cannot open " + path.string();
        return v;
    }
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string prev = kSha256Empty;
    std::size_t start = 0;
    std::uint64_t lineno = 0;
    auto bad = [&](const std::string& why) {
        v.ok = false;
        v.first_bad = lineno;
        v.reason = why;
        v.head = prev;
        return v;
    };
    while (start < content.size()) {
        auto nl = content.find('\n', start);
        ++lineno;
        if (nl == std::string::npos) return bad("torn last line (no newline)");
        std::string line = content.substr(start, nl - start);
        start = nl + 1;
        json j;
        try {
            j = json::parse(line);
        } catch (const std::exception&) {
            return bad("not JSON");
        }
        if (!j.is_object() || !j.contains("prev") || !j["prev"].is_string())
            return bad("no prev field");
        if (j["prev"].get<std::string>() != prev)
            return bad("prev does not match the SHA-256 of the previous line");
        if (!j.contains("seq") || !j["seq"].is_number_unsigned() ||
            j["seq"].get<std::uint64_t>() != lineno)
            return bad("seq out of order");
        prev = sha256_hex(line);
        v.lines = lineno;
    }
    v.head = prev;
    return v;
}

json summarize_params(const json& params) {
    if (params.is_string()) {
        const auto& s = params.get_ref<const std::string&>();
        if (s.size() <= 200) return params;
        return json(s.substr(0, 200) + "...(" + std::to_string(s.size()) + " bytes)");
    }
    if (params.is_array()) {
        json out = json::array();
        for (std::size_t i = 0; i < params.size() && i < 50; ++i)
            out.push_back(summarize_params(params[i]));
        if (params.size() > 50) out.push_back("...(" + std::to_string(params.size()) + " items)");
        return out;
    }
    if (params.is_object()) {
        json out = json::object();
        for (auto& [k, v] : params.items()) {
            if ((k == "content" || k == "newText" || k == "oldText" || k == "stdin") &&
                v.is_string()) {
                const auto& s = v.get_ref<const std::string&>();
                out[k] = json{{"bytes", s.size()}, {"sha256", sha256_hex(s)}};
            } else {
                out[k] = summarize_params(v);
            }
        }
        return out;
    }
    return params;
}

} // namespace cordon::server::changes
