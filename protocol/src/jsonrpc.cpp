#include "cordon/protocol/jsonrpc.hpp"

#include <set>

namespace cordon::protocol {

RpcError invalid_params(const std::string& path, const std::string& why) {
    std::string where = path.empty() ? "params" : path;
    return RpcError(code::invalid_params, "invalid params: " + where + ": " + why,
                    json{{"path", path}});
}

namespace {

// Builds the DOM like nlohmann's own SAX DOM parser, and additionally enforces a nesting
// limit and rejects duplicate keys. The parse is iterative, so deep input cannot overflow
// the stack before the limit trips.
class StrictSax {
  public:
    StrictSax(json& root, std::size_t max_depth) : dom_(root, true), max_depth_(max_depth) {}

    bool null() { return dom_.null(); }
    bool boolean(bool v) { return dom_.boolean(v); }
    bool number_integer(json::number_integer_t v) { return dom_.number_integer(v); }
    bool number_unsigned(json::number_unsigned_t v) { return dom_.number_unsigned(v); }
    bool number_float(json::number_float_t v, const json::string_t& s) {
        return dom_.number_float(v, s);
    }
    bool string(json::string_t& v) { return dom_.string(v); }
    bool binary(json::binary_t& v) { return dom_.binary(v); }
    bool start_object(std::size_t n) {
        if (!push()) return false;
        keys_.emplace_back();
        return dom_.start_object(n);
    }
    bool key(json::string_t& k) {
        if (!keys_.back().insert(k).second) {
            error_ = "duplicate key '" + k.substr(0, 64) + "'";
            return false;
        }
        return dom_.key(k);
    }
    bool end_object() {
        keys_.pop_back();
        --depth_;
        return dom_.end_object();
    }
    bool start_array(std::size_t n) {
        if (!push()) return false;
        return dom_.start_array(n);
    }
    bool end_array() {
        --depth_;
        return dom_.end_array();
    }
    bool parse_error(std::size_t pos, const std::string& tok,
                     const nlohmann::detail::exception& e) {
        error_ = e.what();
        return false;
    }

    const std::string& error() const { return error_; }

  private:
    bool push() {
        if (++depth_ > max_depth_) {
            error_ = "nesting deeper than " + std::to_string(max_depth_);
            return false;
        }
        return true;
    }

    nlohmann::detail::json_sax_dom_parser<json> dom_;
    std::size_t max_depth_;
    std::size_t depth_ = 0;
    std::vector<std::set<std::string>> keys_;
    std::string error_;
};

bool valid_id(const json& id) {
    return id.is_string() || id.is_number_integer() || id.is_number_unsigned() || id.is_null();
}

Message classify(json&& m) {
    if (!m.is_object())
        return Invalid{nullptr, RpcError(code::invalid_request, "invalid request: not an object")};
    json id = nullptr;
    bool has_id = false;
    if (auto it = m.find("id"); it != m.end()) {
        has_id = true;
        if (valid_id(*it)) id = *it;
    }
    auto fail = [&](std::string why) {
        return Invalid{id, RpcError(code::invalid_request, "invalid request: " + why)};
    };
    auto v = m.find("jsonrpc");
    if (v == m.end() || *v != "2.0") return fail("\"jsonrpc\" must be \"2.0\"");
    if (has_id && !valid_id(m["id"])) return fail("\"id\" must be a string or an integer");

    auto method = m.find("method");
    if (method != m.end()) {
        if (!method->is_string()) return fail("\"method\" must be a string");
        json params = nullptr;
        if (auto p = m.find("params"); p != m.end()) {
            if (!p->is_object() && !p->is_array())
                return fail("\"params\" must be an object or an array");
            params = std::move(*p);
        }
        if (!has_id) return Notification{method->get<std::string>(), std::move(params)};
        if (id.is_null()) return fail("a request \"id\" must not be null");
        return Request{std::move(id), method->get<std::string>(), std::move(params)};
    }
    bool has_result = m.contains("result"), has_error = m.contains("error");
    if (has_id && (has_result != has_error)) {
        Response r;
        r.id = std::move(id);
        if (has_result)
            r.result = std::move(m["result"]);
        else
            r.error = std::move(m["error"]);
        return r;
    }
    return fail("neither a request nor a response");
}

} // namespace

json parse_strict(std::string_view text, std::size_t max_depth) {
    json root;
    StrictSax sax(root, max_depth);
    bool ok = json::sax_parse(text.begin(), text.end(), &sax, json::input_format_t::json, true);
    if (!ok) {
        std::string why = sax.error().empty() ? "invalid JSON" : sax.error();
        throw RpcError(code::parse_error, "parse error: " + why);
    }
    return root;
}

Payload parse_payload(std::string_view body, const ParseLimits& limits) {
    Payload out;
    json root;
    try {
        root = parse_strict(body, limits.max_depth);
    } catch (const RpcError& e) {
        out.error = e;
        return out;
    }
    if (root.is_array()) {
        out.batch = true;
        if (root.empty()) {
            out.error = RpcError(code::invalid_request, "invalid request: empty batch");
            return out;
        }
        if (root.size() > limits.max_batch) {
            out.error = RpcError(code::invalid_request,
                                 "invalid request: batch of " + std::to_string(root.size()) +
                                     " exceeds the limit of " + std::to_string(limits.max_batch));
            return out;
        }
        out.messages.reserve(root.size());
        for (auto& m : root)
            out.messages.push_back(classify(std::move(m)));
        return out;
    }
    out.messages.push_back(classify(std::move(root)));
    return out;
}

json make_request(const json& id, std::string_view method, json params) {
    json m = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
    if (!params.is_null()) m["params"] = std::move(params);
    return m;
}

json make_notification(std::string_view method, json params) {
    json m = {{"jsonrpc", "2.0"}, {"method", method}};
    if (!params.is_null()) m["params"] = std::move(params);
    return m;
}

json make_result(const json& id, json result) {
    return {{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

json make_error(const json& id, int code, std::string_view message, json data) {
    json err = {{"code", code}, {"message", message}};
    if (!data.is_null()) err["data"] = std::move(data);
    return {{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(err)}};
}

json make_error(const json& id, const RpcError& err) {
    return make_error(id, err.code, err.what(), err.data);
}

} // namespace cordon::protocol
