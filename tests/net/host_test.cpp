#include "cordon/server/net/host.hpp"

#include <catch2/catch.hpp>

using namespace cordon::server::net;

namespace {
std::string canon(std::string_view s) {
    std::string err;
    auto h = parse_host(s, err);
    return h ? h->name : "ERROR: " + err;
}
bool invalid(std::string_view s) {
    std::string err;
    return !parse_host(s, err).has_value();
}
} // namespace

TEST_CASE("host names are canonicalised: case / trailing dot", "[net][host]") {
    CHECK(canon("EXAMPLE.com.") == "example.com");
    CHECK(canon("Example.COM") == "example.com");
    CHECK(invalid("example.com.."));
    CHECK(invalid(".example.com"));
    CHECK(invalid("exa..mple.com"));
    CHECK(invalid(""));
    CHECK(invalid("."));
}

TEST_CASE("host names refuse NUL / control characters / spaces and delimiters", "[net][host]") {
    CHECK(invalid(std::string("example.com\0.evil.com", 21)));
    CHECK(invalid("example.com\r\nX-Injected: 1"));
    CHECK(invalid("exa mple.com"));
    CHECK(invalid("example.com\t"));
    CHECK(invalid("example.com/evil"));
    CHECK(invalid("user@example.com"));
    CHECK(invalid("example.com%2f"));
    CHECK(invalid("example.com\\evil.com"));
    CHECK(invalid("exa*mple.com"));
    CHECK(invalid(std::string(64, 'a') + ".com"));
    CHECK(invalid("\xff\xfe.com")); // not UTF-8
}

TEST_CASE("IDN names become A-labels (UTS#46) - homographs stay distinct", "[net][host]") {
    CHECK(canon("bücher.de") == "xn--bcher-kva.de");
    CHECK(canon("BÜCHER.de") == "xn--bcher-kva.de");
    CHECK(canon("xn--bcher-kva.de") == "xn--bcher-kva.de");
    // Cyrillic 'а' (U+0430) in "exаmple.com" is another name, not example.com.
    auto homograph = canon("ex\xd0\xb0mple.com");
    CHECK(homograph.starts_with("xn--"));
    CHECK(homograph != "example.com");
    // Full-width letters and the ideographic full stop map to ASCII.
    CHECK(canon("\xef\xbd\x85\xef\xbd\x98\xef\xbd\x81\xef\xbd\x8d\xef\xbd\x90\xef\xbd\x8c"
                "\xef\xbd\x85\xe3\x80\x82\xef\xbd\x83\xef\xbd\x8f\xef\xbd\x8d") == "example.com");
    // Bogus A-labels are refused.
    CHECK(invalid("xn--zzzzzzzzz-.com"));
    // Full-width solidus maps to '/', which is not a host character.
    CHECK(invalid("example.com\xef\xbc\x8f"
                  "evil"));
}

TEST_CASE("every encoding of 127.0.0.1 is the same IP literal", "[net][host]") {
    for (auto s : {"127.0.0.1", "2130706433", "0177.0.0.1", "0x7f.1", "0X7F.0.0.1", "127.1",
                   "127.0.1", "0x7f000001", "017700000001", "127.0.0.1.", "0177.0.0.01",
                   "[::ffff:127.0.0.1]", "::ffff:127.0.0.1", "[::ffff:7f00:1]",
                   "\xef\xbc\x91\xef\xbc\x92\xef\xbc\x97.0.0.1" /* full-width 127 */}) {
        INFO(s);
        std::string err;
        auto h = parse_host(s, err);
        REQUIRE(h);
        CHECK(h->is_ip());
        CHECK(h->name == "127.0.0.1");
        CHECK(classify(h->address) == AddressClass::loopback);
    }
}

TEST_CASE("every encoding of 169.254.169.254 is the metadata address", "[net][host]") {
    for (auto s : {"169.254.169.254", "2852039166", "0xa9fea9fe", "0251.0376.0251.0376",
                   "169.254.43518", "0xa9.0xfe.0xa9.0xfe", "169.16689662",
                   "[::ffff:169.254.169.254]", "[::ffff:a9fe:a9fe]"}) {
        INFO(s);
        std::string err;
        auto h = parse_host(s, err);
        REQUIRE(h);
        CHECK(h->name == "169.254.169.254");
        CHECK(classify(h->address) == AddressClass::metadata);
    }
}

TEST_CASE("invalid IP literals and names ending in a number are refused", "[net][host]") {
    CHECK(invalid("1.2.3.4.5"));
    CHECK(invalid("256.1.1.1"));
    CHECK(invalid("1.2.3.256"));
    CHECK(invalid("example.123"));
    CHECK(invalid("0x100000000"));
    CHECK(invalid("4294967296"));
    CHECK(invalid("08.0.0.1")); // 8 is not octal
    CHECK(invalid("[fe80::1%eth0]"));
    CHECK(invalid("fe80::1%25eth0"));
    CHECK(invalid("[::1"));
    CHECK(invalid("[1.2.3.4]"));
    CHECK(invalid("example.0x")); // "0x" is a number (WHATWG), so this must be IPv4
}

TEST_CASE("IPv6 literals", "[net][host]") {
    std::string err;
    auto h = parse_host("[::1]", err);
    REQUIRE(h);
    CHECK(h->name == "::1");
    CHECK(h->url_host() == "[::1]");
    CHECK(h->authority(443) == "[::1]:443");
    CHECK(classify(h->address) == AddressClass::loopback);
    CHECK(canon("[2001:DB8::1]") == "2001:db8::1");
    CHECK(canon("2001:db8:0:0:0:0:0:1") == "2001:db8::1");
}

TEST_CASE("host:port parsing", "[net][host]") {
    std::string err;
    auto hp = parse_host_port("Example.com:8443", 0, err);
    REQUIRE(hp);
    CHECK(hp->host.name == "example.com");
    CHECK(hp->port == 8443);
    hp = parse_host_port("[::1]:80", 0, err);
    REQUIRE(hp);
    CHECK(hp->host.name == "::1");
    CHECK(hp->port == 80);
    hp = parse_host_port("example.com", 443, err);
    REQUIRE(hp);
    CHECK(hp->port == 443);
    CHECK_FALSE(parse_host_port("example.com", 0, err));
    CHECK_FALSE(parse_host_port("example.com:0", 0, err));
    CHECK_FALSE(parse_host_port("example.com:65536", 0, err));
    CHECK_FALSE(parse_host_port("example.com:80x", 0, err));
    CHECK_FALSE(parse_host_port("::1:80", 0, err));
    CHECK_FALSE(parse_host_port("[::1]x:80", 0, err));
}

TEST_CASE("address classes", "[net][host]") {
    auto cls = [](const char* s) { return classify(boost::asio::ip::make_address(s)); };
    CHECK(cls("8.8.8.8") == AddressClass::global);
    CHECK(cls("2606:4700::1111") == AddressClass::global);
    CHECK(cls("0.0.0.0") == AddressClass::unspecified);
    CHECK(cls("::") == AddressClass::unspecified);
    CHECK(cls("127.255.0.1") == AddressClass::loopback);
    CHECK(cls("10.1.2.3") == AddressClass::private_use);
    CHECK(cls("172.16.0.1") == AddressClass::private_use);
    CHECK(cls("172.31.255.255") == AddressClass::private_use);
    CHECK(cls("172.32.0.1") == AddressClass::global);
    CHECK(cls("192.168.1.1") == AddressClass::private_use);
    CHECK(cls("169.254.1.1") == AddressClass::link_local);
    CHECK(cls("100.64.0.1") == AddressClass::shared);
    CHECK(cls("100.127.255.255") == AddressClass::shared);
    CHECK(cls("100.128.0.1") == AddressClass::global);
    CHECK(cls("224.0.0.1") == AddressClass::multicast);
    CHECK(cls("255.255.255.255") == AddressClass::reserved);
    CHECK(cls("fe80::1") == AddressClass::link_local);
    CHECK(cls("fc00::1") == AddressClass::unique_local);
    CHECK(cls("fd12:3456::1") == AddressClass::unique_local);
    CHECK(cls("ff02::1") == AddressClass::multicast);
    CHECK(cls("::ffff:10.0.0.1") == AddressClass::private_use);
    CHECK(cls("::127.0.0.1") == AddressClass::loopback);        // v4-compatible
    CHECK(cls("64:ff9b::a9fe:a9fe") == AddressClass::metadata); // NAT64
    CHECK(cls("2002:7f00:1::1") == AddressClass::loopback);     // 6to4 of 127.0.0.1
    CHECK(cls("fd00:ec2::254") == AddressClass::metadata);
}

TEST_CASE("CIDR blocks", "[net][host]") {
    std::string err;
    auto c = parse_cidr("10.0.0.0/8", err);
    REQUIRE(c);
    CHECK(c->contains(boost::asio::ip::make_address("10.200.1.1")));
    CHECK(c->contains(boost::asio::ip::make_address("::ffff:10.1.1.1")));
    CHECK_FALSE(c->contains(boost::asio::ip::make_address("11.0.0.1")));
    auto m = parse_cidr("10.1.2.3/8", err); // base is masked
    REQUIRE(m);
    CHECK(m->base.to_string() == "10.0.0.0");
    auto v6 = parse_cidr("fd00::/8", err);
    REQUIRE(v6);
    CHECK(v6->contains(boost::asio::ip::make_address("fdff::1")));
    CHECK_FALSE(v6->contains(boost::asio::ip::make_address("fe00::1")));
    CHECK(c->covers(*parse_cidr("10.1.0.0/16", err)));
    CHECK_FALSE(parse_cidr("10.1.0.0/16", err)->covers(*c));
    CHECK_FALSE(parse_cidr("10.0.0.0/33", err));
    CHECK_FALSE(parse_cidr("10.0.0.0/", err));
    CHECK_FALSE(parse_cidr("fe80::/10%eth0", err));
    auto mapped = parse_cidr("::ffff:10.0.0.0/104", err);
    REQUIRE(mapped);
    CHECK(mapped->base.is_v4());
    CHECK(mapped->prefix == 8);
}

TEST_CASE("canonical forms are fixed points and parsing never crashes", "[net][host]") {
    std::uint32_t seed = 12345;
    auto rnd = [&] {
        seed = seed * 1103515245u + 12345u;
        return (seed >> 16) & 0x7fff;
    };
    const std::string alphabet = "aZ09-._:[]%*/@\\ \t\x01\x7f\xc3\xa9\xe3\x80\x82\xef\xbc\x8e"
                                 "0x7f";
    for (int i = 0; i < 20000; ++i) {
        std::string s;
        int len = static_cast<int>(rnd() % 24);
        for (int k = 0; k < len; ++k)
            s += alphabet[rnd() % alphabet.size()];
        std::string err;
        auto h = parse_host(s, err);
        if (!h) {
            CHECK(!err.empty());
            continue;
        }
        INFO(s);
        std::string err2;
        auto again = parse_host(h->url_host(), err2);
        REQUIRE(again);
        CHECK(again->name == h->name);
        CHECK(again->is_ip() == h->is_ip());
    }
}
