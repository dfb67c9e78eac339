// Binary encoding of the messages exchanged on the control socket between start_init /
// the server and the session init. One message per SOCK_SEQPACKET datagram; the first
// byte is the message tag, integers are little-endian, strings are u32 length + bytes.
// Decoders never trust the peer: every read is bounds-checked and a malformed datagram
// decodes to std::nullopt.
//
// The public ControlMessage round trip (send_control / recv_control) is declared in
// sandbox.hpp; this header adds the setup-time messages that only start_init and the init
// use (spec, ready, setup error). Thread-safety: all functions are reentrant.
#pragma once

#include "cordon/sandbox/sandbox.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cordon::sandbox::wire {

// Largest datagram either side sends or accepts.
inline constexpr std::size_t kMaxDatagram = 256 * 1024;
// Most fds carried by one datagram.
inline constexpr std::size_t kMaxFds = 64;

std::string encode(const ControlMessage& msg);
std::optional<ControlMessage> decode_control(std::string_view bytes);

std::string encode(const SandboxSpec& spec);
std::optional<SandboxSpec> decode_spec(std::string_view bytes);

// init -> start_init: the sandbox is built (InitReady) or could not be (SetupError).
using SetupReply = std::variant<InitReady, SetupError>;
std::string encode(const SetupReply& reply);
std::optional<SetupReply> decode_setup_reply(std::string_view bytes);

// start_init -> init, right after the spec: the seccomp programs, compiled once per server
// process (raw `struct sock_filter` arrays, in the order of steps::SeccompProgram).
std::string encode_seccomp(const std::vector<std::string>& programs);
std::optional<std::vector<std::string>> decode_seccomp(std::string_view bytes);

// Sends one datagram with optional fds (SCM_RIGHTS). Returns 0 or an errno.
int send_datagram(int fd, std::string_view bytes, const std::vector<int>& fds);
// Receives one datagram; received fds are CLOEXEC. std::nullopt with err == 0 on EOF.
std::optional<std::string> recv_datagram(int fd, std::vector<int>& fds, int& err);

} // namespace cordon::sandbox::wire
