// SHA-256 (OpenSSL EVP), streaming and one-shot, as lowercase hex.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace cordon::server::changes {

class Sha256 {
  public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    void update(std::string_view data);
    std::string hex(); // finishes; the object is then spent

  private:
    struct Ctx;
    std::unique_ptr<Ctx> ctx_;
};

std::string sha256_hex(std::string_view data);

// The hash of "" (first line of an audit log, absent files are "" not this).
inline constexpr const char* kSha256Empty =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

} // namespace cordon::server::changes
