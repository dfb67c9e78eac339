#include "cordon/protocol/params.hpp"

namespace cordon::protocol {

namespace {
const json& empty_object() {
    static const json e = json::object();
    return e;
}
std::string escape_pointer(const std::string& key) {
    std::string out;
    for (char c : key) {
        if (c == '~')
            out += "~0";
        else if (c == '/')
            out += "~1";
        else
            out += c;
    }
    return out;
}
} // namespace

ParamReader::ParamReader(const json& j, std::string path) : obj_(&j), path_(std::move(path)) {
    if (j.is_null())
        obj_ = &empty_object();
    else if (!j.is_object())
        throw invalid_params(path_, "must be an object");
}

std::string ParamReader::child(const std::string& key) const {
    return path_ + "/" + escape_pointer(key);
}

const json* ParamReader::find(const std::string& key) const {
    auto it = obj_->find(key);
    return it == obj_->end() ? nullptr : &*it;
}

ParamReader ParamReader::object(const std::string& key) const {
    auto* v = find(key);
    if (!v) return ParamReader(empty_object(), child(key));
    return ParamReader(*v, child(key));
}

void ParamReader::read(const json& v, const std::string& path, std::string& out) {
    if (!v.is_string()) throw invalid_params(path, "must be a string");
    out = v.get<std::string>();
}
void ParamReader::read(const json& v, const std::string& path, bool& out) {
    if (!v.is_boolean()) throw invalid_params(path, "must be a boolean");
    out = v.get<bool>();
}
void ParamReader::read(const json& v, const std::string& path, std::int64_t& out) {
    if (!v.is_number_integer()) throw invalid_params(path, "must be an integer");
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > INT64_MAX)
        throw invalid_params(path, "is out of range");
    out = v.get<std::int64_t>();
}
void ParamReader::read(const json& v, const std::string& path, std::uint64_t& out) {
    if (!v.is_number_integer()) throw invalid_params(path, "must be a non-negative integer");
    if (!v.is_number_unsigned() && v.get<std::int64_t>() < 0)
        throw invalid_params(path, "must be a non-negative integer");
    out = v.get<std::uint64_t>();
}
void ParamReader::read(const json& v, const std::string& path, std::uint32_t& out) {
    std::uint64_t n;
    read(v, path, n);
    if (n > UINT32_MAX) throw invalid_params(path, "is out of range");
    out = static_cast<std::uint32_t>(n);
}
void ParamReader::read(const json& v, const std::string& path, json& out) {
    out = v;
}
void ParamReader::read(const json& v, const std::string& path, std::vector<std::string>& out) {
    if (!v.is_array()) throw invalid_params(path, "must be an array of strings");
    out.clear();
    for (std::size_t i = 0; i < v.size(); ++i) {
        std::string s;
        read(v[i], path + "/" + std::to_string(i), s);
        out.push_back(std::move(s));
    }
}
void ParamReader::read(const json& v, const std::string& path,
                       std::map<std::string, std::string>& out) {
    if (!v.is_object()) throw invalid_params(path, "must be an object of strings");
    out.clear();
    for (auto& [k, val] : v.items()) {
        std::string s;
        read(val, path + "/" + escape_pointer(k), s);
        out.emplace(k, std::move(s));
    }
}

} // namespace cordon::protocol
