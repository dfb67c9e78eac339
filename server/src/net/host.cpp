#include "cordon/server/net/host.hpp"

#include "utf8.hpp"

#include <idn2.h>

#include <array>
#include <charconv>
#include <cstring>

namespace cordon::server::net {

namespace ip = boost::asio::ip;

namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_hex(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// One IPv4 part: decimal, octal (leading 0) or hex (0x). nullopt when not a number.
std::optional<std::uint64_t> parse_v4_part(std::string_view s) {
    if (s.empty()) return std::nullopt;
    int base = 10;
    if (s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s.remove_prefix(2);
        if (s.empty()) return 0; // "0x" is zero (WHATWG)
    } else if (s.size() >= 2 && s[0] == '0') {
        base = 8;
        s.remove_prefix(1);
    }
    std::uint64_t v = 0;
    for (char c : s) {
        int d;
        if (base == 16) {
            if (!is_hex(c)) return std::nullopt;
            d = is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
        } else {
            if (!is_digit(c)) return std::nullopt;
            d = c - '0';
            if (d >= base) return std::nullopt;
        }
        v = v * base + d;
        if (v > 0xffffffffull) return 0x100000000ull; // too big; caller rejects
    }
    return v;
}

// WHATWG "ends in a number": the last label is all digits or a 0x-hex number.
bool ends_in_number(std::string_view s) {
    auto dot = s.rfind('.');
    std::string_view last = dot == std::string_view::npos ? s : s.substr(dot + 1);
    if (last.empty()) return false;
    bool digits = true;
    for (char c : last)
        digits = digits && is_digit(c);
    if (digits) return true;
    return parse_v4_part(last).has_value() && last.size() >= 2 && last[0] == '0' &&
           (last[1] == 'x' || last[1] == 'X');
}

bool allowed_name_char(char c) {
    return (c >= 'a' && c <= 'z') || is_digit(c) || c == '-' || c == '_';
}

// UTS#46 processing to A-labels. nullopt (with error) on failure.
std::optional<std::string> to_ascii(const std::string& in, std::string& error) {
    char* out = nullptr;
    int rc =
        idn2_lookup_u8(reinterpret_cast<const uint8_t*>(in.c_str()),
                       reinterpret_cast<uint8_t**>(&out), IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
    if (rc != IDN2_OK) {
        error = std::string("not a valid internationalised name: ") + idn2_strerror(rc);
        return std::nullopt;
    }
    std::string s(out);
    idn2_free(out);
    return s;
}

} // namespace

std::string Host::url_host() const {
    if (is_ip() && address.is_v6()) return "[" + name + "]";
    return name;
}

std::string Host::authority(std::uint16_t port) const {
    return url_host() + ":" + std::to_string(port);
}

std::optional<ip::address_v4> parse_ipv4_any(std::string_view s) {
    if (s.empty() || s.size() > 64) return std::nullopt;
    std::array<std::uint64_t, 4> parts{};
    std::size_t n = 0;
    std::size_t start = 0;
    while (true) {
        auto dot = s.find('.', start);
        auto part = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
        if (n == 4) return std::nullopt;
        auto v = parse_v4_part(part);
        if (!v) return std::nullopt;
        parts[n++] = *v;
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    for (std::size_t i = 0; i + 1 < n; ++i)
        if (parts[i] > 255) return std::nullopt;
    std::uint64_t last_max = (n == 1) ? 0xffffffffull : (1ull << (8 * (5 - n))) - 1;
    if (parts[n - 1] > last_max) return std::nullopt;
    std::uint64_t v = parts[n - 1];
    for (std::size_t i = 0; i + 1 < n; ++i)
        v |= parts[i] << (8 * (3 - i));
    return ip::address_v4(static_cast<std::uint32_t>(v));
}

Address unmap(const Address& a) {
    if (a.is_v6() && a.to_v6().is_v4_mapped()) return ip::make_address_v4(ip::v4_mapped, a.to_v6());
    return a;
}

std::optional<Address> parse_ip_literal(std::string_view s) {
    if (s.size() >= 2 && s.front() == '[' && s.back() == ']') {
        s = s.substr(1, s.size() - 2);
        if (s.find(':') == s.npos) return std::nullopt; // [1.2.3.4] is not a literal
    }
    if (s.find('%') != s.npos) return std::nullopt; // zone ids refused
    if (s.find(':') != s.npos) {
        boost::system::error_code ec;
        auto a = ip::make_address_v6(std::string(s), ec);
        if (ec || a.scope_id() != 0) return std::nullopt;
        return unmap(Address(a));
    }
    auto v4 = parse_ipv4_any(s);
    if (!v4) return std::nullopt;
    return Address(*v4);
}

std::optional<Host> parse_host(std::string_view text, std::string& error) {
    if (text.empty()) {
        error = "empty host";
        return std::nullopt;
    }
    if (text.size() > 1024) {
        error = "host too long";
        return std::nullopt;
    }
    for (unsigned char c : text) {
        if (c <= 0x20 || c == 0x7f) {
            error = "control character or space in host";
            return std::nullopt;
        }
    }
    // Bracketed IPv6.
    if (text.front() == '[') {
        if (text.back() != ']') {
            error = "unterminated '[' in host";
            return std::nullopt;
        }
        auto inner = text.substr(1, text.size() - 2);
        if (inner.find('%') != inner.npos) {
            error = "IPv6 zone ids are not allowed";
            return std::nullopt;
        }
        auto a = parse_ip_literal(text);
        if (!a) {
            error = "invalid IPv6 address";
            return std::nullopt;
        }
        return Host{Host::Kind::ip, unmap(*a).to_string(), unmap(*a)};
    }
    if (text.find(':') != text.npos) {
        if (text.find('%') != text.npos) {
            error = "IPv6 zone ids are not allowed";
            return std::nullopt;
        }
        auto a = parse_ip_literal(text);
        if (!a) {
            error = "invalid host (':' outside an IPv6 address)";
            return std::nullopt;
        }
        return Host{Host::Kind::ip, a->to_string(), *a};
    }
    std::string s(text);
    bool ascii = true;
    for (unsigned char c : s)
        ascii = ascii && c < 0x80;
    if (!ascii) {
        if (!valid_utf8(s)) {
            error = "host is not valid UTF-8";
            return std::nullopt;
        }
        auto a = to_ascii(s, error);
        if (!a) return std::nullopt;
        s = *a;
    }
    for (auto& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (!s.empty() && s.back() == '.') s.pop_back();
    if (s.empty()) {
        error = "empty host";
        return std::nullopt;
    }
    if (ends_in_number(s)) {
        auto v4 = parse_ipv4_any(s);
        if (!v4) {
            error = "invalid IPv4 address";
            return std::nullopt;
        }
        return Host{Host::Kind::ip, v4->to_string(), Address(*v4)};
    }
    if (s.size() > 253) {
        error = "host name longer than 253 characters";
        return std::nullopt;
    }
    std::size_t start = 0;
    bool has_xn = false;
    while (start <= s.size()) {
        auto dot = s.find('.', start);
        auto end = dot == std::string::npos ? s.size() : dot;
        auto label = std::string_view(s).substr(start, end - start);
        if (label.empty()) {
            error = "empty label in host name";
            return std::nullopt;
        }
        if (label.size() > 63) {
            error = "label longer than 63 characters";
            return std::nullopt;
        }
        for (char c : label) {
            if (!allowed_name_char(c)) {
                error = std::string("character '") + c + "' not allowed in a host name";
                return std::nullopt;
            }
        }
        if (label.starts_with("xn--")) has_xn = true;
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    if (has_xn) {
        // A-labels must be valid punycode that maps back to themselves.
        char* u = nullptr;
        int rc = idn2_to_unicode_8z8z(s.c_str(), &u, 0);
        if (rc != IDN2_OK) {
            error = std::string("invalid A-label: ") + idn2_strerror(rc);
            return std::nullopt;
        }
        std::string uni(u);
        idn2_free(u);
        std::string err2;
        auto back = to_ascii(uni, err2);
        if (!back || *back != s) {
            error = "A-label does not round-trip through IDNA";
            return std::nullopt;
        }
    }
    return Host{Host::Kind::name, s, {}};
}

std::optional<HostPort> parse_host_port(std::string_view text, std::uint16_t default_port,
                                        std::string& error) {
    std::string_view host = text;
    std::string_view port;
    bool has_port = false;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == text.npos) {
            error = "unterminated '['";
            return std::nullopt;
        }
        host = text.substr(0, close + 1);
        auto rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                error = "garbage after ']'";
                return std::nullopt;
            }
            port = rest.substr(1);
            has_port = true;
        }
    } else {
        auto colon = text.rfind(':');
        if (colon != text.npos) {
            if (text.find(':') != colon) {
                error = "IPv6 address must be in brackets when a port is given";
                return std::nullopt;
            }
            host = text.substr(0, colon);
            port = text.substr(colon + 1);
            has_port = true;
        }
    }
    HostPort hp;
    if (has_port) {
        unsigned v = 0;
        auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
        if (port.empty() || ec != std::errc() || p != port.data() + port.size() || v == 0 ||
            v > 65535) {
            error = "invalid port";
            return std::nullopt;
        }
        hp.port = static_cast<std::uint16_t>(v);
    } else {
        if (default_port == 0) {
            error = "port required";
            return std::nullopt;
        }
        hp.port = default_port;
    }
    auto h = parse_host(host, error);
    if (!h) return std::nullopt;
    hp.host = std::move(*h);
    return hp;
}

namespace {

bool in4(std::uint32_t a, std::uint32_t base, unsigned prefix) {
    std::uint32_t mask = prefix == 0 ? 0 : ~std::uint32_t(0) << (32 - prefix);
    return (a & mask) == (base & mask);
}

AddressClass classify4(std::uint32_t a) {
    if (a == 0xa9fea9fe) return AddressClass::metadata; // 169.254.169.254
    if (in4(a, 0x00000000, 8)) return AddressClass::unspecified;
    if (in4(a, 0x7f000000, 8)) return AddressClass::loopback;
    if (in4(a, 0x0a000000, 8) || in4(a, 0xac100000, 12) || in4(a, 0xc0a80000, 16))
        return AddressClass::private_use;
    if (in4(a, 0xa9fe0000, 16)) return AddressClass::link_local;
    if (in4(a, 0x64400000, 10)) return AddressClass::shared;
    if (in4(a, 0xe0000000, 4)) return AddressClass::multicast;
    if (in4(a, 0xf0000000, 4)) return AddressClass::reserved; // incl. 255.255.255.255
    if (in4(a, 0xc0000000, 24) || in4(a, 0xc0000200, 24) || in4(a, 0xc6120000, 15) ||
        in4(a, 0xc6336400, 24) || in4(a, 0xcb007100, 24))
        return AddressClass::reserved;
    return AddressClass::global;
}

} // namespace

AddressClass classify(const Address& addr) {
    if (addr.is_v4()) return classify4(addr.to_v4().to_uint());
    auto b = addr.to_v6().to_bytes();
    auto v4_at = [&](std::size_t off) {
        return (std::uint32_t(b[off]) << 24) | (std::uint32_t(b[off + 1]) << 16) |
               (std::uint32_t(b[off + 2]) << 8) | std::uint32_t(b[off + 3]);
    };
    bool zero80 = true;
    for (int i = 0; i < 10; ++i)
        zero80 = zero80 && b[i] == 0;
    if (zero80 && b[10] == 0xff && b[11] == 0xff) return classify4(v4_at(12)); // v4-mapped
    if (zero80 && b[10] == 0 && b[11] == 0) {
        std::uint32_t v = v4_at(12);
        if (v == 0) return AddressClass::unspecified; // ::
        if (v == 1) return AddressClass::loopback;    // ::1
        return classify4(v);                          // v4-compatible (deprecated)
    }
    // NAT64 64:ff9b::/96 and 64:ff9b:1::/48
    if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b) return classify4(v4_at(12));
    if (b[0] == 0x20 && b[1] == 0x02) return classify4(v4_at(2)); // 6to4
    static const std::array<std::uint8_t, 16> ec2_metadata = {0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0,
                                                              0,    0, 0,    0,    0, 0, 2, 0x54};
    if (b == ec2_metadata) return AddressClass::metadata;
    if (b[0] == 0xff) return AddressClass::multicast;
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return AddressClass::link_local;
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return AddressClass::reserved; // site-local
    if ((b[0] & 0xfe) == 0xfc) return AddressClass::unique_local;
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
        return AddressClass::reserved; // documentation
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0) return AddressClass::reserved;
    return AddressClass::global;
}

const char* to_string(AddressClass c) {
    switch (c) {
    case AddressClass::global:
        return "global";
    case AddressClass::unspecified:
        return "unspecified";
    case AddressClass::loopback:
        return "loopback";
    case AddressClass::private_use:
        return "private";
    case AddressClass::link_local:
        return "link-local";
    case AddressClass::metadata:
        return "cloud metadata";
    case AddressClass::shared:
        return "shared (CGNAT)";
    case AddressClass::unique_local:
        return "unique-local";
    case AddressClass::multicast:
        return "multicast";
    case AddressClass::reserved:
        return "reserved";
    case AddressClass::host_interface:
        return "this host's own interface";
    }
    return "?";
}

namespace {
template <std::size_t N>
bool prefix_equal(const std::array<unsigned char, N>& a, const std::array<unsigned char, N>& b,
                  unsigned prefix) {
    for (unsigned i = 0; i < N * 8 && i < prefix; ++i) {
        unsigned byte = i / 8, bit = 7 - i % 8;
        if (((a[byte] >> bit) & 1) != ((b[byte] >> bit) & 1)) return false;
    }
    return true;
}
} // namespace

bool Cidr::contains(const Address& raw) const {
    Address a = unmap(raw);
    if (a.is_v4() != base.is_v4()) return false;
    if (a.is_v4()) return prefix_equal(a.to_v4().to_bytes(), base.to_v4().to_bytes(), prefix);
    return prefix_equal(a.to_v6().to_bytes(), base.to_v6().to_bytes(), prefix);
}

bool Cidr::covers(const Cidr& o) const {
    return o.prefix >= prefix && contains(o.base);
}

std::string Cidr::to_string() const {
    return base.to_string() + "/" + std::to_string(prefix);
}

std::optional<Cidr> parse_cidr(std::string_view text, std::string& error) {
    std::string_view addr = text;
    std::optional<unsigned> len;
    auto slash = text.find('/');
    if (slash != text.npos) {
        addr = text.substr(0, slash);
        auto l = text.substr(slash + 1);
        unsigned v = 0;
        auto [p, ec] = std::from_chars(l.data(), l.data() + l.size(), v);
        if (l.empty() || ec != std::errc() || p != l.data() + l.size()) {
            error = "invalid prefix length";
            return std::nullopt;
        }
        len = v;
    }
    if (addr.find('%') != addr.npos) {
        error = "IPv6 zone ids are not allowed";
        return std::nullopt;
    }
    auto a = parse_ip_literal(addr);
    if (!a) {
        error = "invalid IP address";
        return std::nullopt;
    }
    // A v4-mapped CIDR ("::ffff:10.0.0.0/104") is written in IPv6 bits: convert.
    bool mapped = addr.find(':') != addr.npos && a->is_v4();
    unsigned max = a->is_v4() ? 32 : 128;
    unsigned p = len.value_or(mapped ? 128 : max);
    if (mapped) {
        if (p < 96) {
            error = "prefix length too short for a v4-mapped address";
            return std::nullopt;
        }
        p -= 96;
    }
    if (p > max) {
        error = "prefix length too long";
        return std::nullopt;
    }
    Cidr c{*a, p};
    // Mask the base.
    if (a->is_v4()) {
        auto b = a->to_v4().to_bytes();
        for (unsigned i = p; i < 32; ++i)
            b[i / 8] &= ~(1u << (7 - i % 8));
        c.base = boost::asio::ip::address_v4(b);
    } else {
        auto b = a->to_v6().to_bytes();
        for (unsigned i = p; i < 128; ++i)
            b[i / 8] &= ~(1u << (7 - i % 8));
        c.base = boost::asio::ip::address_v6(b);
    }
    return c;
}

} // namespace cordon::server::net
