#include "cordon/server/changes/hash.hpp"

#include <openssl/evp.h>

#include <stdexcept>

namespace cordon::server::changes {

struct Sha256::Ctx {
    EVP_MD_CTX* md = nullptr;
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
    ctx_->md = EVP_MD_CTX_new();
    if (!ctx_->md || EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("SHA-256 unavailable");
}

Sha256::~Sha256() {
    if (ctx_ && ctx_->md) EVP_MD_CTX_free(ctx_->md);
}

void Sha256::update(std::string_view data) {
    if (!data.empty()) EVP_DigestUpdate(ctx_->md, data.data(), data.size());
}

std::string Sha256::hex() {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_->md, out, &n);
    static const char* digits = "0123456789abcdef";
    std::string s;
    s.reserve(n * 2);
    for (unsigned int i = 0; i < n; ++i) {
        s += digits[out[i] >> 4];
        s += digits[out[i] & 15];
    }
    return s;
}

std::string sha256_hex(std::string_view data) {
    Sha256 h;
    h.update(data);
    return h.hex();
}

} // namespace cordon::server::changes
