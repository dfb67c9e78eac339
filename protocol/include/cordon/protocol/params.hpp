// Reading typed values out of JSON params, with errors that name the offending field.
// Every failure is an RpcError -32602 whose data.path is a JSON pointer ("/limits/timeoutMs").
#pragma once

#include "cordon/protocol/jsonrpc.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cordon::protocol {

class ParamReader {
  public:
    // `j` must be an object; null (params omitted) reads as an empty object.
    explicit ParamReader(const json& j, std::string path = "");

    template <class T> T required(const std::string& key) const {
        auto* v = find(key);
        if (!v) throw invalid_params(child(key), "required field is missing");
        T out{};
        read(*v, child(key), out);
        return out;
    }
    template <class T> std::optional<T> optional(const std::string& key) const {
        auto* v = find(key);
        if (!v || v->is_null()) return std::nullopt;
        T out{};
        read(*v, child(key), out);
        return out;
    }
    template <class T> T value_or(const std::string& key, T def) const {
        auto v = optional<T>(key);
        return v ? std::move(*v) : std::move(def);
    }
    // A nested object (absent or null: an empty object).
    ParamReader object(const std::string& key) const;
    bool has(const std::string& key) const { return find(key) != nullptr; }
    const std::string& path() const { return path_; }
    std::string child(const std::string& key) const;

    static void read(const json& v, const std::string& path, std::string& out);
    static void read(const json& v, const std::string& path, bool& out);
    static void read(const json& v, const std::string& path, std::int64_t& out);
    static void read(const json& v, const std::string& path, std::uint64_t& out);
    static void read(const json& v, const std::string& path, std::uint32_t& out);
    static void read(const json& v, const std::string& path, json& out);
    static void read(const json& v, const std::string& path, std::vector<std::string>& out);
    static void read(const json& v, const std::string& path,
                     std::map<std::string, std::string>& out);

  private:
    const json* find(const std::string& key) const;
    const json* obj_;
    std::string path_;
};

} // namespace cordon::protocol
