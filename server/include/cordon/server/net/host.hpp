// Canonical destination hosts and address classes for the network policy (DESIGN.md
// decision 5). Everything here is pure: no I/O, no DNS.
//
// A host is parsed ONCE into its canonical form, and that form is what the policy checks
// and what the proxy dials ("the name that is checked is the name that is dialled"):
//   - names: lower case, one trailing dot removed, IDNA (UTS#46, non-transitional) to
//     A-labels, labels 1..63 of [a-z0-9-_], total <= 253; NUL, control characters, spaces
//     and URL delimiters refused; `xn--` labels must round-trip.
//   - IP literals in every encoding: dotted, decimal `2130706433`, octal `0177.0.0.1`,
//     hex `0x7f.1`, short `127.1` (WHATWG URL host rules: a name whose last label is a
//     number must be an IPv4 address, else it is invalid), IPv6 with or without brackets,
//     v4-mapped `::ffff:127.0.0.1` (normalised to the IPv4 address); zone ids refused.
//
// Thread-safety: all functions are reentrant.
#pragma once

#include <boost/asio/ip/address.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cordon::server::net {

using Address = boost::asio::ip::address;

struct Host {
    enum class Kind { name, ip };
    Kind kind = Kind::name;
    std::string name; // canonical name, or the address's canonical text (IPv6 unbracketed)
    Address address;  // valid when kind == ip

    bool is_ip() const { return kind == Kind::ip; }
    // "name:port", "1.2.3.4:port" or "[v6]:port".
    std::string authority(std::uint16_t port) const;
    // The host as written in a URL / Host header ("[v6]" bracketed).
    std::string url_host() const;
    friend bool operator==(const Host& a, const Host& b) { return a.name == b.name; }
};

// Parses a host (no port). On failure returns nullopt and sets `error` to the reason.
std::optional<Host> parse_host(std::string_view text, std::string& error);

// Splits "host:port" / "[v6]:port" / "host" (default_port used when absent; 0 = required).
// On failure returns nullopt and sets `error`.
struct HostPort {
    Host host;
    std::uint16_t port = 0;
};
std::optional<HostPort> parse_host_port(std::string_view text, std::uint16_t default_port,
                                        std::string& error);

// IPv4 in any inet_aton/WHATWG encoding (1..4 parts, each decimal, octal or hex).
std::optional<boost::asio::ip::address_v4> parse_ipv4_any(std::string_view text);
// Any IP literal: IPv4 (any encoding), IPv6 with or without brackets (no zone id).
// v4-mapped IPv6 addresses are returned as IPv4.
std::optional<Address> parse_ip_literal(std::string_view text);

// v4-mapped IPv6 -> IPv4; any other address unchanged.
Address unmap(const Address& a);

// What kind of address this is, for the resolved-address check. Anything other than
// `global` is refused unless the policy lists it or the user approved it.
enum class AddressClass {
    global,
    unspecified,    // 0.0.0.0/8, ::
    loopback,       // 127/8, ::1
    private_use,    // 10/8, 172.16/12, 192.168/16
    link_local,     // 169.254/16, fe80::/10
    metadata,       // 169.254.169.254, fd00:ec2::254
    shared,         // CGNAT 100.64/10
    unique_local,   // fc00::/7
    multicast,      // 224/4, ff00::/8
    reserved,       // 240/4, broadcast, 192.0.0/24, 198.18/15, fec0::/10, docs ranges
    host_interface, // one of this host's own interface addresses (set by the caller)
};
// Classifies `a`; IPv6 forms embedding IPv4 (v4-mapped, v4-compatible, NAT64 64:ff9b::/96,
// 6to4 2002::/16) are classified by the embedded IPv4 address.
AddressClass classify(const Address& a);
const char* to_string(AddressClass c);

// A CIDR block ("10.0.0.0/8", "fd00::/8"); a single address is a /32 or /128.
struct Cidr {
    Address base; // masked
    unsigned prefix = 0;
    bool contains(const Address& a) const;
    // true when every address of `other` is in this block
    bool covers(const Cidr& other) const;
    std::string to_string() const;
};
// Parses "addr" or "addr/len" (IPv4 any encoding, IPv6 possibly bracketed).
std::optional<Cidr> parse_cidr(std::string_view text, std::string& error);

} // namespace cordon::server::net
