#include "cordon/sandbox/wire.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <memory>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace cordon::sandbox::wire {
namespace {

enum Tag : std::uint8_t {
    kExecRequest = 1,
    kKillRequest = 2,
    // 3 was ExecStarted (no longer sent: nothing needed it)
    kExecExited = 4,
    kFsViolation = 5,
    kSpec = 0x10,
    kReady = 0x11,
    kSetupError = 0x12,
    kSeccomp = 0x13,
};

class Writer {
  public:
    void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
    void u32(std::uint32_t v) {
        for (int i = 0; i < 4; ++i)
            u8(static_cast<std::uint8_t>(v >> (8 * i)));
    }
    void u64(std::uint64_t v) {
        for (int i = 0; i < 8; ++i)
            u8(static_cast<std::uint8_t>(v >> (8 * i)));
    }
    void i32(std::int32_t v) { u32(static_cast<std::uint32_t>(v)); }
    void str(const std::string& s) {
        u32(static_cast<std::uint32_t>(s.size()));
        out_ += s;
    }
    void strings(const std::vector<std::string>& v) {
        u32(static_cast<std::uint32_t>(v.size()));
        for (const auto& s : v)
            str(s);
    }
    void map(const std::map<std::string, std::string>& m) {
        u32(static_cast<std::uint32_t>(m.size()));
        for (const auto& [k, v] : m) {
            str(k);
            str(v);
        }
    }
    void limits(const Limits& l) {
        u64(l.timeout_ms);
        u64(l.memory_bytes);
        u32(l.max_processes);
        u64(l.max_output_bytes);
        u64(l.cpu_seconds);
        u64(l.file_size_bytes);
        u32(l.open_files);
    }
    std::string take() { return std::move(out_); }

  private:
    std::string out_;
};

class Reader {
  public:
    explicit Reader(std::string_view in) : in_(in) {}
    bool ok() const { return ok_; }
    bool done() const { return ok_ && pos_ == in_.size(); }
    std::uint8_t u8() {
        if (!need(1)) return 0;
        return static_cast<std::uint8_t>(in_[pos_++]);
    }
    std::uint32_t u32() {
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i)
            v |= static_cast<std::uint32_t>(u8()) << (8 * i);
        return v;
    }
    std::uint64_t u64() {
        std::uint64_t v = 0;
        for (int i = 0; i < 8; ++i)
            v |= static_cast<std::uint64_t>(u8()) << (8 * i);
        return v;
    }
    std::int32_t i32() { return static_cast<std::int32_t>(u32()); }
    std::string str() {
        std::uint32_t n = u32();
        if (!need(n)) return {};
        std::string s(in_.substr(pos_, n));
        pos_ += n;
        return s;
    }
    std::vector<std::string> strings() {
        std::uint32_t n = u32();
        std::vector<std::string> v;
        // Each element takes at least 4 bytes: reject counts the datagram cannot hold.
        if (!need_count(n, 4)) return v;
        v.reserve(n);
        for (std::uint32_t i = 0; i < n && ok_; ++i)
            v.push_back(str());
        return v;
    }
    std::map<std::string, std::string> map() {
        std::uint32_t n = u32();
        std::map<std::string, std::string> m;
        if (!need_count(n, 8)) return m;
        for (std::uint32_t i = 0; i < n && ok_; ++i) {
            std::string k = str();
            std::string v = str();
            m[std::move(k)] = std::move(v);
        }
        return m;
    }
    Limits limits() {
        Limits l;
        l.timeout_ms = u64();
        l.memory_bytes = u64();
        l.max_processes = u32();
        l.max_output_bytes = u64();
        l.cpu_seconds = u64();
        l.file_size_bytes = u64();
        l.open_files = u32();
        return l;
    }

  private:
    bool need(std::size_t n) {
        if (!ok_ || in_.size() - pos_ < n) ok_ = false;
        return ok_;
    }
    bool need_count(std::uint32_t n, std::size_t min_each) {
        if (!ok_ || (in_.size() - pos_) / min_each < n) ok_ = false;
        return ok_;
    }
    std::string_view in_;
    std::size_t pos_ = 0;
    bool ok_ = true;
};

template <typename T> std::optional<T> finish(Reader& r, T value) {
    if (!r.done()) return std::nullopt;
    return value;
}

} // namespace

std::string encode(const ControlMessage& msg) {
    Writer w;
    std::visit(
        [&w](const auto& m) {
            using M = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<M, ExecRequest>) {
                w.u8(kExecRequest);
                w.u64(m.id);
                w.strings(m.argv);
                w.map(m.env);
                w.str(m.cwd);
                w.limits(m.limits);
            } else if constexpr (std::is_same_v<M, KillRequest>) {
                w.u8(kKillRequest);
                w.u64(m.id);
            } else if constexpr (std::is_same_v<M, FsViolation>) {
                w.u8(kFsViolation);
                w.u64(m.id);
                w.str(m.operation);
                w.str(m.path);
                w.u32(m.more);
            } else {
                w.u8(kExecExited);
                w.u64(m.id);
                w.i32(m.wait_status);
                w.str(m.reason);
                w.str(m.error);
            }
        },
        msg);
    return w.take();
}

std::optional<ControlMessage> decode_control(std::string_view bytes) {
    Reader r(bytes);
    switch (r.u8()) {
    case kExecRequest: {
        ExecRequest m;
        m.id = r.u64();
        m.argv = r.strings();
        m.env = r.map();
        m.cwd = r.str();
        m.limits = r.limits();
        return finish<ControlMessage>(r, std::move(m));
    }
    case kKillRequest: {
        KillRequest m;
        m.id = r.u64();
        return finish<ControlMessage>(r, m);
    }
    case kFsViolation: {
        FsViolation m;
        m.id = r.u64();
        m.operation = r.str();
        m.path = r.str();
        m.more = r.u32();
        return finish<ControlMessage>(r, std::move(m));
    }
    case kExecExited: {
        ExecExited m;
        m.id = r.u64();
        m.wait_status = r.i32();
        m.reason = r.str();
        m.error = r.str();
        return finish<ControlMessage>(r, std::move(m));
    }
    default:
        return std::nullopt;
    }
}

std::string encode(const SandboxSpec& s) {
    Writer w;
    w.u8(kSpec);
    w.str(s.workspace);
    w.str(s.state_dir);
    w.str(s.host_home);
    w.strings(s.filesystem.deny_read);
    w.strings(s.filesystem.allow_read);
    w.strings(s.filesystem.allow_write);
    w.limits(s.limits);
    w.map(s.env);
    w.u64(s.tmp_size_bytes);
    w.u32(static_cast<std::uint32_t>(s.listen_ports.size()));
    for (auto p : s.listen_ports)
        w.u32(p);
    w.u8(s.require_landlock ? 1 : 0);
    return w.take();
}

std::optional<SandboxSpec> decode_spec(std::string_view bytes) {
    Reader r(bytes);
    if (r.u8() != kSpec) return std::nullopt;
    SandboxSpec s;
    s.workspace = r.str();
    s.state_dir = r.str();
    s.host_home = r.str();
    s.filesystem.deny_read = r.strings();
    s.filesystem.allow_read = r.strings();
    s.filesystem.allow_write = r.strings();
    s.limits = r.limits();
    s.env = r.map();
    s.tmp_size_bytes = r.u64();
    std::uint32_t n = r.u32();
    if (n > 1024) return std::nullopt;
    for (std::uint32_t i = 0; i < n && r.ok(); ++i) {
        std::uint32_t p = r.u32();
        if (p == 0 || p > 65535) return std::nullopt;
        s.listen_ports.push_back(static_cast<std::uint16_t>(p));
    }
    s.require_landlock = r.u8() != 0;
    return finish(r, std::move(s));
}

std::string encode(const SetupReply& reply) {
    Writer w;
    if (const auto* ready = std::get_if<InitReady>(&reply)) {
        w.u8(kReady);
        w.i32(ready->landlock_abi);
        w.u8(ready->cgroups ? 1 : 0);
        w.strings(ready->notes);
    } else {
        const auto& e = std::get<SetupError>(reply);
        w.u8(kSetupError);
        w.str(e.step);
        w.i32(e.err);
        w.str(e.path);
        w.str(e.fix);
    }
    return w.take();
}

std::optional<SetupReply> decode_setup_reply(std::string_view bytes) {
    Reader r(bytes);
    switch (r.u8()) {
    case kReady: {
        InitReady ready;
        ready.landlock_abi = r.i32();
        ready.cgroups = r.u8() != 0;
        ready.notes = r.strings();
        return finish<SetupReply>(r, std::move(ready));
    }
    case kSetupError: {
        SetupError e;
        e.step = r.str();
        e.err = r.i32();
        e.path = r.str();
        e.fix = r.str();
        return finish<SetupReply>(r, std::move(e));
    }
    default:
        return std::nullopt;
    }
}

std::string encode_seccomp(const std::vector<std::string>& programs) {
    Writer w;
    w.u8(kSeccomp);
    w.strings(programs);
    return w.take();
}

std::optional<std::vector<std::string>> decode_seccomp(std::string_view bytes) {
    Reader r(bytes);
    if (r.u8() != kSeccomp) return std::nullopt;
    auto programs = r.strings();
    return finish(r, std::move(programs));
}

int send_datagram(int fd, std::string_view bytes, const std::vector<int>& fds) {
    if (bytes.size() > kMaxDatagram) return EMSGSIZE;
    if (fds.size() > kMaxFds) return EINVAL;
    iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    if (!fds.empty()) {
        std::size_t len = sizeof(int) * fds.size();
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(len);
        std::memset(control, 0, sizeof(control));
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(len);
        std::memcpy(CMSG_DATA(c), fds.data(), len);
    }
    for (;;) {
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n >= 0) return 0;
        if (errno != EINTR) return errno;
    }
}

std::optional<std::string> recv_datagram(int fd, std::vector<int>& fds, int& err) {
    err = 0;
    fds.clear();
    // Not zero-filled, never shrunk: one allocation per thread, pages touched only as used.
    thread_local std::unique_ptr<char[]> buf(new char[kMaxDatagram]);
    iovec iov{buf.get(), kMaxDatagram};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n;
    do {
        n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        err = errno;
        return std::nullopt;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < count; ++i) {
                int f;
                std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                fds.push_back(f);
            }
        }
    }
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        for (int f : fds)
            close(f);
        fds.clear();
        err = EMSGSIZE;
        return std::nullopt;
    }
    if (n == 0) {
        for (int f : fds)
            close(f);
        fds.clear();
        return std::nullopt; // EOF: SEQPACKET peers never send empty datagrams here
    }
    return std::string(buf.get(), static_cast<std::size_t>(n));
}

} // namespace cordon::sandbox::wire

namespace cordon::sandbox {

int send_control(int fd, const ControlMessage& msg, const std::vector<int>& fds) {
    return wire::send_datagram(fd, wire::encode(msg), fds);
}

std::optional<ControlMessage> recv_control(int fd, std::vector<int>& fds, int& err) {
    for (;;) {
        auto bytes = wire::recv_datagram(fd, fds, err);
        if (!bytes) return std::nullopt;
        if (auto msg = wire::decode_control(*bytes)) return msg;
        for (int f : fds)
            close(f);
        fds.clear();
        err = EBADMSG;
        return std::nullopt;
    }
}

std::string SetupError::message() const {
    std::string m = step + ": " + (err ? std::strerror(err) : "failed");
    if (!path.empty()) m += " (" + path + ")";
    if (!fix.empty()) m += "; fix: " + fix;
    return m;
}

std::optional<ExecExited> StatusReader::feed(std::string_view bytes) {
    buf_.append(bytes);
    std::size_t i = 0;
    std::optional<ExecExited> out;
    while (i < buf_.size() && !out) {
        if (buf_[i] == 'E' && i + 3 <= buf_.size()) {
            std::uint16_t len;
            std::memcpy(&len, buf_.data() + i + 1, 2);
            if (i + 3 + len > buf_.size()) break;
            error_.assign(buf_, i + 3, len);
            i += 3 + len;
        } else if (buf_[i] == 'S' && i + 1 + sizeof(int) <= buf_.size()) {
            ExecExited done;
            std::memcpy(&done.wait_status, buf_.data() + i + 1, sizeof(int));
            done.reason = limit_reason(done.wait_status);
            done.error = error_;
            out = std::move(done);
            i += 1 + sizeof(int);
        } else {
            break;
        }
    }
    buf_.erase(0, i);
    return out;
}

std::string limit_reason(int wait_status) {
    if (!WIFSIGNALED(wait_status)) return "";
    if (WTERMSIG(wait_status) == SIGXCPU) return "cpu-limit";
    if (WTERMSIG(wait_status) == SIGXFSZ) return "file-size-limit";
    return "";
}

} // namespace cordon::sandbox
