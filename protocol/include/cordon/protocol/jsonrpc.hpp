// JSON-RPC 2.0 envelope: strict parsing of a frame body into messages (request,
// notification, response, invalid element), batch classification, and builders for
// outgoing messages. Pure: no I/O.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cordon::protocol {

using json = nlohmann::json;

// Error codes of the wire contract (PROTOCOL.md).
namespace code {
inline constexpr int parse_error = -32700;
inline constexpr int invalid_request = -32600;
inline constexpr int method_not_found = -32601;
inline constexpr int invalid_params = -32602;
inline constexpr int internal_error = -32603;
inline constexpr int unknown_session = -32001;
inline constexpr int server_not_initialized = -32002;
inline constexpr int policy_denied = -32003;
inline constexpr int sandbox_unavailable = -32004;
inline constexpr int request_cancelled = -32800;
} // namespace code

// A JSON-RPC error, thrown by handlers and carried in responses.
struct RpcError : std::runtime_error {
    int code;
    json data; // null when absent
    RpcError(int c, std::string msg, json d = nullptr)
        : std::runtime_error(std::move(msg)), code(c), data(std::move(d)) {}
};

// -32602 with data.path naming the offending field (a JSON pointer into params).
RpcError invalid_params(const std::string& path, const std::string& why);

struct Request {
    json id; // number or string
    std::string method;
    json params; // object, array or null when absent
};
struct Notification {
    std::string method;
    json params;
};
struct Response {
    json id;
    json result;               // when !error
    std::optional<json> error; // the error object as received
};
// An element that is not a valid message; answered with `error` and `id` (null if unknown).
struct Invalid {
    json id;
    RpcError error;
};

using Message = std::variant<Request, Notification, Response, Invalid>;

struct ParseLimits {
    std::size_t max_depth = 128;
    std::size_t max_batch = 1000;
};

struct Payload {
    bool batch = false;
    std::vector<Message> messages; // empty when `error` is set
    std::optional<RpcError> error; // whole-payload failure: parse error, empty/oversized batch
};

// Parses one frame body. Rejects invalid JSON and UTF-8, duplicate object keys and nesting
// deeper than max_depth with -32700; an empty or oversized batch with -32600.
Payload parse_payload(std::string_view body, const ParseLimits& limits = {});

// Strict JSON parse with the same rules (depth, duplicate keys); throws RpcError(-32700).
json parse_strict(std::string_view text, std::size_t max_depth = 128);

json make_request(const json& id, std::string_view method, json params);
json make_notification(std::string_view method, json params);
json make_result(const json& id, json result);
json make_error(const json& id, const RpcError& err);
json make_error(const json& id, int code, std::string_view message, json data = nullptr);

} // namespace cordon::protocol
