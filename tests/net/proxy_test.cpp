// Integration tests of the ProxyServer with real servers and real clients (curl, python3),
// all on 127.0.0.1. Names like allowed.test are mapped to 127.0.0.1 by the fixture's
// resolver hook; no DNS query ever leaves the process (except `localhost`, /etc/hosts).
#include "test_servers.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

using namespace cordon::test;
using namespace std::chrono_literals;

namespace {

const Address kLoopback = boost::asio::ip::make_address("127.0.0.1");

std::string P(std::uint16_t p) {
    return std::to_string(p);
}

// curl through the HTTP proxy; prints the status code (and the body when asked).
CommandResult curl_http(const ProxyFixture& f, const std::string& url,
                        const std::string& extra = "") {
    return run("curl -s -o /dev/null -w '%{http_code}' --max-time 15 --noproxy '' --proxy " +
               f.http_proxy() + " " + extra + " '" + url + "'");
}
CommandResult curl_body(const ProxyFixture& f, const std::string& url,
                        const std::string& extra = "") {
    return run("curl -s --max-time 15 --noproxy '' --proxy " + f.http_proxy() + " " + extra + " '" +
               url + "'");
}
CommandResult curl_socks(const ProxyFixture& f, const std::string& url,
                         const std::string& extra = "") {
    return run("curl -s --max-time 15 --noproxy '' --socks5-hostname " + f.socks_proxy() + " " +
               extra + " '" + url + "'");
}

struct World {
    IoThread t;
    OriginServer http{t.io, false};
    OriginServer https{t.io, true};
    std::string origin() const { return "allowed.test:" + P(http.port()); }
    std::string tls_origin() const { return "allowed.test:" + P(https.port()); }
};

void map_test_names(ProxyFixture& f) {
    f.names["allowed.test"] = {kLoopback};
    f.names["other.test"] = {kLoopback};
    f.names["rebind.example.test"] = {kLoopback};
}

} // namespace

TEST_CASE("HTTP proxy: allowed / denied and never-resolved", "[net][proxy]") {
    World w;
    ProxyFixture f(w.t, {w.origin(), "127.0.0.1:" + P(w.http.port())}, {"*.evil.test"});
    map_test_names(f);

    SECTION("allowed host whose address is listed explicitly") {
        auto r = curl_body(f, "http://" + w.origin() + "/hello");
        CHECK(r.out == "hello from origin");
        auto recs = f.records_copy();
        REQUIRE(recs.size() == 1);
        CHECK(recs[0].via == "http");
        CHECK(recs[0].method == "GET");
        CHECK(recs[0].host == "allowed.test");
        CHECK(recs[0].allowed);
        CHECK(recs[0].status == 200);
        CHECK(recs[0].address == "127.0.0.1");
        CHECK(recs[0].bytes_down == 17);
    }
    SECTION("denied name: 403 with the reason, violation, no lookup") {
        auto r = run("curl -s -i --max-time 15 --noproxy '' --proxy " + f.http_proxy() +
                     " http://secret-data.evil.test/x");
        CHECK(r.out.starts_with("HTTP/1.1 403"));
        CHECK(r.out.find("denied by rule \"*.evil.test\"") != std::string::npos);
        CHECK(r.out.find("X-Cordon-Reason:") != std::string::npos);
        auto v = f.violations_copy();
        REQUIRE(v.size() == 1);
        CHECK(v[0]["kind"] == "network");
        CHECK(v[0]["host"] == "secret-data.evil.test");
        CHECK(v[0]["port"] == 80);
        CHECK(v[0]["rule"] == "*.evil.test");
        CHECK(f.lookups() == 0);
        CHECK(f.resolver_calls == 0);
        CHECK(w.http.requests == 0);
    }
    SECTION("a name not in the allow list is asked first and never resolved when denied") {
        auto r = curl_http(f, "http://exfil-secret.attacker.test/");
        CHECK(r.out == "403");
        CHECK(f.asks == 1);
        CHECK(f.resolver_calls == 0);
    }
    SECTION("denied names are never resolved, whatever the protocol") {
        curl_http(f, "http://a.evil.test:" + P(w.http.port()) + "/");
        run("curl -s --max-time 15 --noproxy '' --proxy " + f.http_proxy() +
            " https://b.evil.test/ -o /dev/null");
        curl_socks(f, "http://c.evil.test/");
        CHECK(f.violations_copy().size() == 3);
        CHECK(f.resolver_calls == 0);
        CHECK(f.lookups() == 0);
    }
}

TEST_CASE("HTTP proxy: resolved loopback refused unless listed", "[net][proxy]") {
    World w;
    SECTION("localhost allowed by name resolves to loopback: refused") {
        ProxyFixture f(w.t, {"localhost:" + P(w.http.port())}, {});
        auto r = run("curl -s -i --max-time 15 --noproxy '' --proxy " + f.http_proxy() +
                     " http://localhost:" + P(w.http.port()) + "/hello");
        CHECK(r.out.starts_with("HTTP/1.1 403"));
        CHECK(r.out.find("loopback") != std::string::npos);
        CHECK(w.http.requests == 0);
        // The user was asked about that exact address (and said no).
        auto q = f.questions_copy();
        REQUIRE(q.size() == 1);
        CHECK(q[0].address.has_value());
        auto v = f.violations_copy();
        REQUIRE(v.size() == 1);
        CHECK(v[0].contains("address"));
    }
    SECTION("allowed name that rebinds to 127.0.0.1: refused, server untouched") {
        ProxyFixture f(w.t, {"*.example.test:*"}, {});
        map_test_names(f);
        CHECK(curl_http(f, "http://rebind.example.test:" + P(w.http.port()) + "/hello").out ==
              "403");
        CHECK(curl_socks(f, "http://rebind.example.test:" + P(w.http.port()) + "/hello").status ==
              97);
        CHECK(w.http.requests == 0);
    }
    SECTION("the user approving the exact host+address makes it reachable") {
        ProxyFixture f(w.t, {"localhost:" + P(w.http.port())}, {});
        f.answer = [](auto&) { return Decision::allow_once; };
        CHECK(curl_body(f, "http://localhost:" + P(w.http.port()) + "/hello").out ==
              "hello from origin");
    }
    SECTION("listing the address explicitly makes it reachable") {
        ProxyFixture f(w.t, {"allowed.test:*"}, {});
        map_test_names(f);
        CHECK(curl_http(f, "http://" + w.origin() + "/hello").out == "403");
        ProxyFixture g(w.t, {"allowed.test:*", "127.0.0.0/8:" + P(w.http.port())}, {});
        map_test_names(g);
        CHECK(curl_http(g, "http://" + w.origin() + "/hello").out == "200");
    }
    SECTION("IP literals in any encoding: canonical check, metadata never reached") {
        ProxyFixture f(w.t, {"127.0.0.1:" + P(w.http.port())}, {"169.254.0.0/16"});
        for (auto host : {"2130706433", "0x7f.1", "0177.0.0.1", "127.1", "[::ffff:127.0.0.1]"}) {
            INFO(host);
            auto req = std::string("GET http://") + host + ":" + P(w.http.port()) +
                       "/hello HTTP/1.1\r\nConnection: close\r\n\r\n";
            auto out = raw_exchange(f.http_port, req);
            CHECK(out.starts_with("HTTP/1.1 200"));
        }
        for (auto host : {"169.254.169.254", "0xa9fea9fe", "2852039166", "[::ffff:a9fe:a9fe]"}) {
            INFO(host);
            auto req = std::string("GET http://") + host +
                       "/latest/meta-data/ HTTP/1.1\r\nConnection: close\r\n\r\n";
            auto out = raw_exchange(f.http_port, req);
            CHECK(out.starts_with("HTTP/1.1 403"));
        }
        CHECK(f.asks == 0);
        CHECK(f.lookups() == 0);
    }
    SECTION("CONNECT to the JSON-RPC-style host loopback port is refused (RPC-06)") {
        ProxyFixture f(w.t, {"*.example.test"}, {});
        auto out = raw_exchange(
            f.http_port, "CONNECT 127.0.0.1:" + P(w.http.port()) +
                             " HTTP/1.1\r\nHost: 127.0.0.1:" + P(w.http.port()) + "\r\n\r\n");
        CHECK(out.starts_with("HTTP/1.1 403"));
        out = raw_exchange(f.http_port, "CONNECT [::1]:" + P(w.http.port()) + " HTTP/1.1\r\n\r\n");
        CHECK(out.starts_with("HTTP/1.1 403"));
        CHECK(w.http.requests == 0);
    }
}

TEST_CASE("HTTP proxy: request hygiene", "[net][proxy]") {
    World w;
    ProxyFixture f(w.t, {w.origin(), "127.0.0.1:" + P(w.http.port())}, {});
    map_test_names(f);
    SECTION("Host header must agree with the request target") {
        auto out = raw_exchange(f.http_port, "GET http://" + w.origin() +
                                                 "/hello HTTP/1.1\r\nHost: evil.test\r\n\r\n");
        CHECK(out.starts_with("HTTP/1.1 400"));
        CHECK(out.find("Host header does not match") != std::string::npos);
        out = raw_exchange(f.http_port, "GET http://" + w.origin() + "/hello HTTP/1.1\r\nHost: " +
                                            w.origin() + "\r\nHost: evil.test\r\n\r\n");
        CHECK(out.starts_with("HTTP/1.1 400"));
        out = raw_exchange(f.http_port, "CONNECT " + w.tls_origin() +
                                            " HTTP/1.1\r\nHost: evil.test:443\r\n\r\n");
        CHECK(out.starts_with("HTTP/1.1 400"));
        CHECK(w.http.requests == 0);
    }
    SECTION("origin-form and https:// targets are refused") {
        auto out =
            raw_exchange(f.http_port, "GET /hello HTTP/1.1\r\nHost: " + w.origin() + "\r\n\r\n");
        CHECK(out.starts_with("HTTP/1.1 400"));
        out = raw_exchange(f.http_port, "GET https://" + w.origin() + "/ HTTP/1.1\r\n\r\n");
        CHECK(out.starts_with("HTTP/1.1 400"));
        out = raw_exchange(f.http_port, "GET http://user:pw@" + w.origin() + "/ HTTP/1.1\r\n\r\n");
        CHECK(out.starts_with("HTTP/1.1 400"));
    }
    SECTION("hop-by-hop headers are not forwarded; Host is the canonical one") {
        auto r = curl_body(f, "http://ALLOWED.test.:" + P(w.http.port()) + "/echo",
                           "-H 'Connection: X-Secret' -H 'X-Secret: 1' -H 'Proxy-Authorization: "
                           "Basic Zm9vOmJhcg==' -H 'X-Kept: yes'");
        CHECK(r.out.starts_with("GET /echo\n"));
        CHECK(r.out.find("X-Secret") == std::string::npos);
        CHECK(r.out.find("Proxy-Authorization") == std::string::npos);
        CHECK(r.out.find("X-Kept: yes") != std::string::npos);
        CHECK(r.out.find("Host: allowed.test:" + P(w.http.port())) != std::string::npos);
    }
    SECTION("request bodies are forwarded (chunked and sized), keep-alive works") {
        auto r = curl_body(f, "http://" + w.origin() + "/echo",
                           "--data-binary 'a=1&b=2' -H 'Expect: 100-continue'");
        CHECK(r.out.starts_with("POST /echo\n"));
        CHECK(r.out.ends_with("\na=1&b=2"));
        r = curl_body(f, "http://" + w.origin() + "/echo",
                      "--data-binary 'chunky' -H 'Transfer-Encoding: chunked'");
        CHECK(r.out.ends_with("\nchunky"));
        // Two URLs in one curl: one proxy connection, two requests.
        r = run("curl -s --max-time 15 --noproxy '' --proxy " + f.http_proxy() + " http://" +
                w.origin() + "/hello http://" + w.origin() + "/hello");
        CHECK(r.out == "hello from originhello from origin");
        CHECK(w.http.requests >= 4);
    }
    SECTION("binary bodies pass unchanged") {
        auto r = run("curl -s --max-time 15 --noproxy '' --proxy " + f.http_proxy() + " http://" +
                     w.origin() + "/bytes?n=300000 | sha256sum");
        auto d = run("curl -s --max-time 15 --noproxy '*' http://127.0.0.1:" + P(w.http.port()) +
                     "/bytes?n=300000 | sha256sum");
        CHECK(r.out == d.out);
    }
    SECTION("oversized request heads are refused with 431") {
        std::string req = "GET http://" + w.origin() +
                          "/hello HTTP/1.1\r\nX-Big: " + std::string(70 * 1024, 'a') + "\r\n\r\n";
        auto out = raw_exchange(f.http_port, req);
        CHECK(out.starts_with("HTTP/1.1 431"));
        CHECK(w.http.requests == 0);
    }
    SECTION("ambiguous message framing is refused (request smuggling)") {
        auto head = "POST http://" + w.origin() + "/echo HTTP/1.1\r\nHost: " + w.origin() + "\r\n";
        for (std::string framing :
             {"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
              "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
              "Transfer-Encoding: identity\r\n\r\n", "Transfer-Encoding: chunked, gzip\r\n\r\n"}) {
            INFO(framing);
            CHECK(raw_exchange(f.http_port, head + framing, 2000ms).starts_with("HTTP/1.1 400"));
        }
        CHECK(w.http.requests == 0);
        // A pipelined second request is judged on its own.
        auto out = raw_exchange(
            f.http_port,
            head + "Content-Length: 3\r\n\r\nabcGET http://" + "x.test/ HTTP/1.1\r\n\r\n", 2000ms);
        CHECK(out.find("HTTP/1.1 200") == 0);
        CHECK(out.find("HTTP/1.1 403") != std::string::npos);
    }
    SECTION("malformed requests get 400") {
        auto out = raw_exchange(f.http_port, "GARBAGE\r\n\r\n");
        CHECK(out.starts_with("HTTP/1.1 400"));
    }
}

TEST_CASE("CONNECT tunnels and SOCKS5", "[net][proxy]") {
    World w;
    const auto& certs = TestCerts::get();
    ProxyFixture f(w.t, {"allowed.test:*", "127.0.0.1:*"}, {"*.evil.test"});
    map_test_names(f);
    SECTION("CONNECT to an allowed HTTPS server, TLS end to end") {
        auto r = curl_body(f, "https://" + w.tls_origin() + "/hello", "--cacert " + certs.ca_pem);
        CHECK(r.out == "hello from origin");
        auto recs = f.records_copy();
        REQUIRE(recs.size() == 1);
        CHECK(recs[0].via == "connect");
        CHECK(recs[0].bytes_down > 17);
    }
    SECTION("bulk transfers (splice path) arrive intact through CONNECT and SOCKS5") {
        auto direct =
            run("curl -s --max-time 30 --noproxy '*' http://127.0.0.1:" + P(w.http.port()) +
                "/bytes?n=5000000 | sha256sum");
        auto via_connect =
            run("curl -s --max-time 30 --noproxy '' --proxy " + f.http_proxy() + " --cacert " +
                certs.ca_pem + " https://" + w.tls_origin() + "/bytes?n=5000000 | sha256sum");
        auto via_socks =
            run("curl -s --max-time 30 --noproxy '' --socks5-hostname " + f.socks_proxy() +
                " http://" + w.origin() + "/bytes?n=5000000 | sha256sum");
        auto upload =
            run("head -c 3000000 /dev/zero | curl -s --max-time 30 --noproxy '' "
                "--socks5-hostname " +
                f.socks_proxy() + " --data-binary @- http://" + w.origin() + "/echo | wc -c");
        CHECK(direct.out == via_connect.out);
        CHECK(direct.out == via_socks.out);
        CHECK(std::stoul(upload.out) > 3000000);
        auto recs = f.records_copy(3);
        REQUIRE(recs.size() >= 3);
        CHECK(recs[0].bytes_down > 5000000);
        CHECK(recs[2].bytes_up > 3000000);
    }
    SECTION("CONNECT denied: 403 and a violation") {
        auto r = run("curl -s -o /dev/null -w '%{http_connect}' --max-time 15 --noproxy '' "
                     "--proxy " +
                     f.http_proxy() + " https://x.evil.test/");
        CHECK(r.out == "403");
        CHECK(f.violations_copy().size() == 1);
    }
    SECTION("CONNECT ports are limited to what the rule allows") {
        ProxyFixture g(w.t, {"allowed.test", "127.0.0.1:*"}, {});
        map_test_names(g);
        auto r = run("curl -s -o /dev/null -w '%{http_connect}' --max-time 15 --noproxy '' "
                     "--proxy " +
                     g.http_proxy() + " --cacert " + certs.ca_pem + " https://" + w.tls_origin() +
                     "/hello");
        CHECK(r.out == "403");
        auto q = g.questions_copy();
        REQUIRE(q.size() == 1);
        CHECK(q[0].reason.find("port " + P(w.https.port())) != std::string::npos);
        CHECK(g.lookups() == 0);
    }
    SECTION("SOCKS5 with a domain name, allowed") {
        auto r = curl_socks(f, "http://" + w.origin() + "/hello");
        CHECK(r.out == "hello from origin");
        r = curl_socks(f, "https://" + w.tls_origin() + "/hello", "--cacert " + certs.ca_pem);
        CHECK(r.out == "hello from origin");
    }
    SECTION("SOCKS5 with an IP address (socks5 without h)") {
        auto r = run("curl -s --max-time 15 --noproxy '' --socks5 " + f.socks_proxy() +
                     " http://127.0.0.1:" + P(w.http.port()) + "/hello");
        CHECK(r.out == "hello from origin");
    }
    SECTION("SOCKS5 denied: reply 0x02, violation, never resolved") {
        auto r = curl_socks(f, "http://secret.evil.test/");
        CHECK(r.status == 97);
        CHECK(f.violations_copy().size() == 1);
        CHECK(f.lookups() == 0);
        // Raw: greeting, then CONNECT x.evil.test:80 -> 05 02.
        std::string req("\x05\x01\x00", 3);
        std::string name = "x.evil.test";
        req += std::string("\x05\x01\x00\x03", 4) + static_cast<char>(name.size()) + name +
               std::string("\x00\x50", 2);
        auto out = raw_exchange(f.socks_port, req, 3000ms);
        REQUIRE(out.size() >= 4);
        CHECK(out.substr(0, 2) == std::string("\x05\x00", 2));
        CHECK(out[2] == 5);
        CHECK(out[3] == 2);
    }
    SECTION("SOCKS5 address types: loopback IPv4 / IPv6 / v4-mapped refused unless listed") {
        ProxyFixture g(w.t, {"allowed.test:*"}, {});
        auto port_hi = static_cast<char>(w.http.port() >> 8);
        auto port_lo = static_cast<char>(w.http.port() & 0xff);
        auto connect = [&](std::string atyp_addr) {
            std::string req("\x05\x01\x00", 3);
            req += std::string("\x05\x01\x00", 3) + atyp_addr + port_hi + port_lo;
            return raw_exchange(g.socks_port, req, 3000ms);
        };
        auto v4 = connect(std::string("\x01\x7f\x00\x00\x01", 5));
        auto v6 = connect(std::string("\x04", 1) + std::string(15, '\0') + "\x01");
        auto mapped = connect(std::string("\x04", 1) + std::string(10, '\0') +
                              std::string("\xff\xff\x7f\x00\x00\x01", 6));
        for (auto* out : {&v4, &v6, &mapped}) {
            REQUIRE(out->size() >= 4);
            CHECK((*out)[3] == 2);
        }
        auto q = g.questions_copy();
        REQUIRE(q.size() == 3);
        CHECK(q[0].host == "127.0.0.1");
        CHECK(q[1].host == "::1");
        CHECK(q[2].host == "127.0.0.1");
        CHECK(w.http.requests == 0);
    }
    SECTION("SOCKS5 BIND and UDP ASSOCIATE are refused; garbage closes") {
        for (char cmd : {'\x02', '\x03'}) {
            std::string req("\x05\x01\x00", 3);
            req +=
                std::string("\x05", 1) + cmd + std::string("\x00\x01\x7f\x00\x00\x01\x00\x50", 8);
            auto out = raw_exchange(f.socks_port, req, 3000ms);
            REQUIRE(out.size() >= 4);
            CHECK(out[3] == 7);
        }
        CHECK(raw_exchange(f.socks_port, "GET / HTTP/1.1\r\n\r\n", 3000ms).empty());
        CHECK(raw_exchange(f.socks_port, std::string("\x05\x01\x02", 3), 3000ms) ==
              std::string("\x05\xff", 2)); // no acceptable method
        std::string bad("\x05\x01\x00", 3);
        bad += std::string("\x05\x01\x00\x09", 4); // unknown address type
        auto out = raw_exchange(f.socks_port, bad, 3000ms);
        REQUIRE(out.size() >= 4);
        CHECK(out[3] == 8);
    }
}

TEST_CASE("approvals: once / session / deny / timeout / one shared question", "[net][proxy]") {
    World w;
    auto url = "http://other.test:" + P(w.http.port()) + "/hello";
    auto rules = std::vector<std::string>{"127.0.0.1:" + P(w.http.port())};
    SECTION("allow-once asks every time") {
        ProxyFixture f(w.t, rules, {});
        map_test_names(f);
        f.answer = [](auto&) { return Decision::allow_once; };
        CHECK(curl_http(f, url).out == "200");
        CHECK(curl_http(f, url).out == "200");
        CHECK(f.asks == 2);
        auto q = f.questions_copy();
        CHECK(q[0].host == "other.test");
        CHECK(q[0].port == w.http.port());
        CHECK(q[0].via == "http");
        CHECK(to_json(q[0])["kind"] == "network");
    }
    SECTION("allow-session is remembered (across HTTP, CONNECT, SOCKS)") {
        ProxyFixture f(w.t, rules, {});
        map_test_names(f);
        f.answer = [](auto&) { return Decision::allow_session; };
        CHECK(curl_http(f, url).out == "200");
        CHECK(curl_http(f, url).out == "200");
        CHECK(curl_socks(f, url).out == "hello from origin");
        CHECK(f.asks == 1);
        auto recs = f.records_copy(3);
        REQUIRE(recs.size() == 3);
        CHECK(recs[0].decision == "allow-session");
    }
    SECTION("deny: 403, violation, not resolved") {
        ProxyFixture f(w.t, rules, {});
        map_test_names(f);
        auto r = run("curl -s -i --max-time 15 --noproxy '' --proxy " + f.http_proxy() + " " + url);
        CHECK(r.out.starts_with("HTTP/1.1 403"));
        CHECK(r.out.find("denied by the user") != std::string::npos);
        CHECK(f.resolver_calls == 0);
        CHECK(f.violations_copy().size() == 1);
    }
    SECTION("no answer within the timeout denies") {
        EgressOptions o;
        o.ask_timeout = 300ms;
        ProxyFixture f(w.t, rules, {}, {}, o);
        map_test_names(f);
        f.ask_delay = 3000ms;
        f.answer = [](auto&) { return Decision::allow_session; };
        auto start = std::chrono::steady_clock::now();
        auto r = run("curl -s -i --max-time 15 --noproxy '' --proxy " + f.http_proxy() + " " + url);
        CHECK(std::chrono::steady_clock::now() - start < 2500ms);
        CHECK(r.out.starts_with("HTTP/1.1 403"));
        CHECK(r.out.find("no answer") != std::string::npos);
        CHECK(f.resolver_calls == 0);
    }
    SECTION("concurrent requests for the same host:port share one question") {
        ProxyFixture f(w.t, rules, {});
        map_test_names(f);
        f.ask_delay = 700ms;
        f.answer = [](auto&) { return Decision::allow_once; };
        std::string cmd = "for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{http_code}\\n' "
                          "--max-time 15 --noproxy '' --proxy " +
                          f.http_proxy() + " " + url + " & done; wait";
        auto r = run(cmd);
        CHECK(r.out == "200\n200\n200\n200\n200\n200\n");
        CHECK(f.asks == 1);
        CHECK(w.http.requests == 6);
    }
}

namespace {
void set_limits(ProxyFixture& f, NetworkLimits l) {
    f.t.sync([&] {
        auto p = f.gate->policy();
        p.set_limits(l);
        f.gate->set_policy(p);
    });
}
std::size_t count_rate_limited(const std::vector<json>& v) {
    std::size_t n = 0;
    for (auto& d : v)
        if (d["reason"].get<std::string>().starts_with("too many approval questions")) ++n;
    return n;
}
} // namespace

TEST_CASE("approval questions are rate-limited per session", "[net][proxy][approvals]") {
    World w;
    auto rules = std::vector<std::string>{"127.0.0.1:*"};
    SECTION("at most N questions wait for an answer; more are refused at once") {
        ProxyFixture f(w.t, rules, {});
        NetworkLimits l;
        l.max_pending_questions = 3;
        set_limits(f, l);
        f.ask_delay = 1500ms;
        std::string cmd;
        for (int i = 1; i <= 6; ++i)
            cmd += "curl -s -o /dev/null -w '%{http_code}\\n' --max-time 15 --noproxy '' "
                   "--proxy " +
                   f.http_proxy() + " http://q" + std::to_string(i) + ".test/ & ";
        auto start = std::chrono::steady_clock::now();
        auto r = run(cmd + "wait");
        CHECK(r.out == "403\n403\n403\n403\n403\n403\n");
        CHECK(f.asks == 3);
        auto v = f.violations_copy();
        CHECK(v.size() == 6);
        CHECK(count_rate_limited(v) == 3);
        for (auto& d : v)
            if (d["reason"].get<std::string>().starts_with("too many"))
                CHECK(d["reason"].get<std::string>().find("3 waiting for an answer (limit 3)") !=
                      std::string::npos);
        CHECK(f.resolver_calls == 0);
        CHECK(std::chrono::steady_clock::now() - start < 5s);
        // Once answered, questions may be asked again.
        f.ask_delay = 0ms;
        CHECK(curl_http(f, "http://q7.test/").out == "403");
        CHECK(f.asks == 4);
    }
    SECTION("at most M questions per window, shared questions counted once") {
        ProxyFixture f(w.t, rules, {});
        NetworkLimits l;
        l.max_questions_per_window = 3;
        l.question_window = std::chrono::seconds(600);
        set_limits(f, l);
        f.ask_delay = 500ms;
        // Three concurrent requests for one host: one question.
        auto same = run("for i in 1 2 3; do curl -s -o /dev/null --max-time 15 --noproxy '' "
                        "--proxy " +
                        f.http_proxy() + " http://same.test/ & done; wait");
        CHECK(f.asks == 1);
        f.ask_delay = 0ms;
        for (int i = 1; i <= 4; ++i)
            CHECK(curl_http(f, "http://w" + std::to_string(i) + ".test/").out == "403");
        CHECK(f.asks == 3);
        auto v = f.violations_copy();
        REQUIRE(count_rate_limited(v) == 2);
        auto reason = v.back()["reason"].get<std::string>();
        CHECK(reason.find("too many approval questions: 3 in the last 600 s (limit 3)") !=
              std::string::npos);
        CHECK(reason.find("not asked") != std::string::npos);
        // CONNECT and SOCKS are refused the same way, without asking.
        auto c = run("curl -s -o /dev/null -w '%{http_connect}' --max-time 15 --noproxy '' "
                     "--proxy " +
                     f.http_proxy() + " https://w5.test/");
        CHECK(c.out == "403");
        CHECK(curl_socks(f, "http://w6.test/").status == 97);
        CHECK(f.asks == 3);
        CHECK(count_rate_limited(f.violations_copy()) == 4);
        // Allowed destinations are not affected.
        map_test_names(f);
        CHECK(curl_http(f, "http://127.0.0.1:" + P(w.http.port()) + "/hello").out == "200");
    }
    SECTION("0 means no limit") {
        ProxyFixture f(w.t, rules, {});
        NetworkLimits l;
        l.max_pending_questions = 0;
        l.max_questions_per_window = 0;
        set_limits(f, l);
        for (int i = 1; i <= 25; ++i)
            curl_http(f, "http://n" + std::to_string(i) + ".test/");
        CHECK(f.asks == 25);
        CHECK(count_rate_limited(f.violations_copy()) == 0);
    }
}

TEST_CASE("method/path rules in the HTTP proxy and refused for tunnels (NET-06)",
          "[net][proxy][net06]") {
    World w;
    const auto& certs = TestCerts::get();
    ProxyFixture f(w.t, {}, {});
    map_test_names(f);
    f.t.sync([&] {
        f.gate->set_policy(NetworkPolicy::from_json(
            {json{{"host", "allowed.test:*"}, {"methods", {"GET", "HEAD"}}},
             json{{"host", "other.test:*"}, {"paths", {"/hello"}}}, json("127.0.0.1:*")},
            {}));
    });
    auto hello = "http://" + w.origin() + "/hello";
    SECTION("GET allowed, POST refused with 403, reason and violation; never asked") {
        CHECK(curl_http(f, hello).out == "200");
        auto r = run("curl -s -i --max-time 15 --noproxy '' --proxy " + f.http_proxy() +
                     " -d secret=1 " + hello);
        CHECK(r.out.starts_with("HTTP/1.1 403"));
        CHECK(r.out.find("X-Cordon-Reason: method POST is not allowed by rule") !=
              std::string::npos);
        auto v = f.violations_copy();
        REQUIRE(v.size() == 1);
        CHECK(v[0]["via"] == "http");
        CHECK(v[0]["rule"] == R"({"host":"allowed.test:*","methods":["GET","HEAD"]})");
        CHECK(f.asks == 0);
        CHECK(w.http.requests == 1);
    }
    SECTION("every request on a kept-alive connection is judged") {
        std::string get = "GET " + hello + " HTTP/1.1\r\nHost: " + w.origin() + "\r\n\r\n";
        std::string put =
            "PUT " + hello + " HTTP/1.1\r\nHost: " + w.origin() + "\r\nContent-Length: 2\r\n\r\nhi";
        auto out = raw_exchange(f.http_port, get + put, 3000ms);
        CHECK(out.starts_with("HTTP/1.1 200"));
        CHECK(out.find("HTTP/1.1 403") != std::string::npos);
        CHECK(out.find("method PUT is not allowed") != std::string::npos);
        CHECK(w.http.requests == 1);
    }
    SECTION("path rules") {
        CHECK(curl_http(f, "http://other.test:" + P(w.http.port()) + "/hello").out == "200");
        CHECK(curl_http(f, "http://other.test:" + P(w.http.port()) + "/echo").out == "403");
        CHECK(
            curl_http(f, "http://other.test:" + P(w.http.port()) + "/hello/../echo", "--path-as-is")
                .out == "403");
        CHECK(w.http.requests == 1);
    }
    SECTION("CONNECT and SOCKS5 to a host with method/path rules are refused, saying why") {
        auto r = run("curl -s -i --max-time 15 --noproxy '' --proxy " + f.http_proxy() +
                     " --cacert " + certs.ca_pem + " https://" + w.tls_origin() + "/hello");
        CHECK(r.out.starts_with("HTTP/1.1 403"));
        CHECK(r.out.find("cannot be enforced on an opaque tunnel") != std::string::npos);
        CHECK(curl_socks(f, hello).status == 97);
        auto v = f.violations_copy();
        REQUIRE(v.size() == 2);
        CHECK(v[1]["via"] == "socks5");
        CHECK(w.https.requests == 0);
        CHECK(w.http.requests == 0);
        CHECK(f.lookups() == 0);
    }
}

TEST_CASE("git push over plain HTTP is refused by the proxy, pointing at the git proxy",
          "[net][proxy][net06]") {
    World w;
    ProxyFixture f(w.t, {w.origin(), "127.0.0.1:*"}, {});
    map_test_names(f);
    auto req = [&](const std::string& method, const std::string& target,
                   const std::string& extra = "") {
        return raw_exchange(f.http_port,
                            method + " http://" + w.origin() + target +
                                " HTTP/1.1\r\nHost: " + w.origin() + "\r\nConnection: close\r\n" +
                                extra + "Content-Length: 0\r\n\r\n",
                            3000ms);
    };
    for (auto* target : {"/o/r.git/info/refs?service=git-receive-pack", "/o/r.git/git-receive-pack",
                         "/o/r.git/GIT-RECEIVE-PACK", "/o/r.git/git%2dreceive%2Dpack",
                         "/o/r.git/info/refs?service=git%2Dreceive-pack"}) {
        INFO(target);
        auto out = req(std::string(target).find("info/refs") != std::string::npos ? "GET" : "POST",
                       target);
        CHECK(out.starts_with("HTTP/1.1 403"));
        CHECK(out.find("only allowed through cordon's git proxy") != std::string::npos);
    }
    auto ct =
        req("POST", "/o/r.git/other", "Content-Type: application/x-git-receive-pack-request\r\n");
    CHECK(ct.starts_with("HTTP/1.1 403"));
    CHECK(w.http.requests == 0);
    CHECK(f.violations_copy().size() == 6);
    CHECK(f.violations_copy()[0]["reason"].get<std::string>().find("git-receive-pack") !=
          std::string::npos);
    // Fetching (upload-pack) is not a push.
    CHECK(req("GET", "/hello?service=git-upload-pack").starts_with("HTTP/1.1 200"));
}

TEST_CASE("the session's egress budget (network.maxEgressBytes)", "[net][proxy][net06]") {
    World w;
    ProxyFixture f(w.t, {w.origin(), "127.0.0.1:*"}, {});
    map_test_names(f);
    f.t.sync([&] {
        auto p = f.gate->policy();
        NetworkLimits l;
        l.max_egress_bytes = 100000;
        p.set_limits(l);
        f.gate->set_policy(p);
    });
    auto echo = "http://" + w.origin() + "/echo";
    CHECK(curl_http(f, "http://" + w.origin() + "/hello").out == "200");
    // Downloads are not egress.
    auto down = run("curl -s --max-time 15 --noproxy '' --proxy " + f.http_proxy() + " http://" +
                    w.origin() + "/bytes?n=300000 | wc -c");
    CHECK(std::stoul(down.out) == 300000);
    SECTION("an upload over the budget is cut and refused, and so is what follows") {
        auto r = run("head -c 1000000 /dev/zero | curl -s -o /dev/null -w '%{http_code}' "
                     "--max-time 15 --noproxy '' --proxy " +
                     f.http_proxy() + " --data-binary @- " + echo);
        CHECK(r.out == "403");
        CHECK(curl_http(f, "http://" + w.origin() + "/hello").out == "403");
        auto c = run("curl -s -o /dev/null -w '%{http_connect}' --max-time 15 --noproxy '' "
                     "--proxy " +
                     f.http_proxy() + " https://" + w.tls_origin() + "/hello");
        CHECK(c.out == "403");
        auto v = f.violations_copy();
        REQUIRE(v.size() >= 2);
        CHECK(v.back()["reason"].get<std::string>().find("egress byte budget (100000 bytes) is "
                                                         "exhausted") != std::string::npos);
    }
    SECTION("tunnel uploads count, on the bulk path too") {
        auto upload =
            run("head -c 3000000 /dev/zero | curl -s --max-time 30 --noproxy '' "
                "--socks5-hostname " +
                f.socks_proxy() + " --data-binary @- http://" + w.origin() + "/echo | wc -c");
        CHECK(std::stoul(upload.out) < 3000000);
        CHECK(f.t.get<std::uint64_t>([&] { return f.gate->egress_budget()->used(); }) < 400000);
        CHECK(curl_socks(f, "http://" + w.origin() + "/hello").status == 97);
    }
}

TEST_CASE("approvals apply to CONNECT and SOCKS5 too", "[net][proxy]") {
    World w;
    const auto& certs = TestCerts::get();
    auto rules = std::vector<std::string>{"127.0.0.1:*"};
    auto https_url = "https://allowed.test:" + P(w.https.port()) + "/hello";
    auto http_url = "http://other.test:" + P(w.http.port()) + "/hello";
    SECTION("allow-once") {
        ProxyFixture f(w.t, rules, {});
        map_test_names(f);
        f.answer = [](auto&) { return Decision::allow_once; };
        CHECK(curl_body(f, https_url, "--cacert " + certs.ca_pem).out == "hello from origin");
        CHECK(curl_socks(f, http_url).out == "hello from origin");
        CHECK(curl_socks(f, https_url, "--cacert " + certs.ca_pem).out == "hello from origin");
        CHECK(f.asks == 3);
        auto q = f.questions_copy();
        CHECK(q[0].via == "connect");
        CHECK(q[1].via == "socks5");
    }
    SECTION("deny") {
        ProxyFixture f(w.t, rules, {});
        map_test_names(f);
        auto r = run("curl -s -o /dev/null -w '%{http_connect}' --max-time 15 --noproxy '' "
                     "--proxy " +
                     f.http_proxy() + " --cacert " + certs.ca_pem + " " + https_url);
        CHECK(r.out == "403");
        CHECK(curl_socks(f, http_url).status == 97);
        CHECK(f.asks == 2);
        CHECK(f.resolver_calls == 0);
        CHECK(f.violations_copy().size() == 2);
    }
    SECTION("one shared question for concurrent SOCKS5 and CONNECT clients") {
        ProxyFixture f(w.t, rules, {});
        map_test_names(f);
        f.ask_delay = 700ms;
        f.answer = [](auto&) { return Decision::allow_once; };
        std::string cmd =
            "for i in 1 2 3; do curl -s --max-time 15 --noproxy '' --socks5-hostname " +
            f.socks_proxy() + " " + https_url + " --cacert " + certs.ca_pem +
            " -o /dev/null -w '%{http_code}\\n' & curl -s --max-time 15 --noproxy '' "
            "--proxy " +
            f.http_proxy() + " " + https_url + " --cacert " + certs.ca_pem +
            " -o /dev/null -w '%{http_code}\\n' & done; wait";
        auto r = run(cmd);
        CHECK(r.out == "200\n200\n200\n200\n200\n200\n");
        CHECK(f.asks == 1);
    }
}

TEST_CASE("python urllib through the proxy environment", "[net][proxy]") {
    World w;
    const auto& certs = TestCerts::get();
    ProxyFixture f(w.t, {"allowed.test:*", "127.0.0.1:*"}, {"*.evil.test"});
    map_test_names(f);
    std::string script = certs.dir + "/client.py";
    std::ofstream(script)
        << "import sys, ssl, urllib.request, urllib.error\n"
           "ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
           "try:\n"
           "    r = urllib.request.urlopen(sys.argv[1], context=ctx, timeout=10)\n"
           "    print(r.status, r.read().decode())\n"
           "except urllib.error.HTTPError as e:\n"
           "    print(e.code)\n"
           "except Exception as e:\n"
           "    print('error', e)\n";
    std::string env;
    for (auto& [k, v] : proxy_env(f.http_port, f.socks_port))
        env += k + "='" + v + "' ";
    auto py = [&](const std::string& url) {
        return run("env -i PATH=\"$PATH\" " + env + " python3 " + script + " '" + url + "' " +
                   certs.ca_pem + " 2>&1")
            .out;
    };
    CHECK(py("http://" + w.origin() + "/hello") == "200 hello from origin\n");
    CHECK(py("https://" + w.tls_origin() + "/hello") == "200 hello from origin\n");
    CHECK(py("http://x.evil.test/") == "403\n");
    CHECK(py("https://x.evil.test/").starts_with("error"));
    CHECK(f.lookups() == 0 + 2); // allowed.test twice; the denied names never
}

TEST_CASE("proxy_env", "[net][proxy]") {
    auto env = proxy_env(3128, 1080);
    CHECK(env["HTTP_PROXY"] == "http://127.0.0.1:3128");
    CHECK(env["https_proxy"] == "http://127.0.0.1:3128");
    CHECK(env["ALL_PROXY"] == "socks5h://127.0.0.1:1080");
    CHECK(env["all_proxy"] == "socks5h://127.0.0.1:1080");
    CHECK(env["NO_PROXY"] == "localhost,127.0.0.1,::1");
    CHECK(env["no_proxy"] == "localhost,127.0.0.1,::1");
    CHECK(env.size() == 8);
}

namespace {
// Opens `n` TCP connections to 127.0.0.1:port that never send anything.
std::vector<int> half_open(std::uint16_t port, int n) {
    std::vector<int> fds;
    for (int i = 0; i < n; ++i) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) break;
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
        fds.push_back(fd);
    }
    return fds;
}
} // namespace

TEST_CASE("abuse of one ProxyServer does not starve another (NET-08)", "[net][proxy][abuse]") {
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 8192 && rl.rlim_max >= 8192) {
        rl.rlim_cur = 8192;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
    World w;
    ProxyLimits la;
    la.max_connections = 64;
    la.handshake_timeout = 1500ms;
    ProxyFixture a(w.t, {w.origin(), "127.0.0.1:*"}, {}, la);
    ProxyFixture b(w.t, {w.origin(), "127.0.0.1:*"}, {});
    map_test_names(a);
    map_test_names(b);

    auto flood = half_open(a.http_port, 2000);
    auto socks_flood = half_open(a.socks_port, 200);
    // Slowloris: a request head trickling in, one byte at a time.
    int slow = half_open(a.http_port, 1)[0];
    std::this_thread::sleep_for(300ms);
    std::string head = "GET http://" + w.origin() + "/hello HTTP/1.1\r\nX-Slow: ";
    ::send(slow, head.data(), head.size(), MSG_NOSIGNAL);

    auto start = std::chrono::steady_clock::now();
    auto r = curl_body(b, "http://" + w.origin() + "/hello");
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(r.out == "hello from origin");
    CHECK(took < 2s);
    CHECK(a.t.get<std::uint64_t>([&] { return a.proxy->rejected_connections(); }) > 1000);
    CHECK(a.t.get<std::size_t>([&] { return a.proxy->active_connections(); }) <= 64);

    // Keep the slowloris alive with a byte every 200 ms: the handshake deadline still ends it.
    bool closed = false;
    for (int i = 0; i < 20 && !closed; ++i) {
        std::this_thread::sleep_for(200ms);
        if (::send(slow, "a", 1, MSG_NOSIGNAL) < 0) closed = true;
        char c;
        if (::recv(slow, &c, 1, MSG_DONTWAIT) == 0) closed = true;
    }
    CHECK(closed);
    // Once the flood stops, nothing is left open and A serves again.
    for (int fd : flood)
        ::close(fd);
    for (int fd : socks_flood)
        ::close(fd);
    ::close(slow);
    std::this_thread::sleep_for(300ms);
    CHECK(a.t.get<std::size_t>([&] { return a.proxy->active_connections(); }) == 0);
    CHECK(curl_body(a, "http://" + w.origin() + "/hello").out == "hello from origin");
}

TEST_CASE("an unreachable destination times out with 502 / SOCKS 0x04", "[net][proxy]") {
    IoThread t;
    // A listener whose accept queue is full: further SYNs are dropped, connects hang.
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd, 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    std::uint16_t port = ntohs(a.sin_port);
    auto fillers = half_open(port, 4);
    std::this_thread::sleep_for(100ms);

    ProxyLimits l;
    l.connect_timeout = 500ms;
    ProxyFixture f(t, {"127.0.0.1:*"}, {}, l);
    auto start = std::chrono::steady_clock::now();
    auto out = raw_exchange(
        f.http_port, "GET http://127.0.0.1:" + P(port) + "/ HTTP/1.1\r\nConnection: close\r\n\r\n",
        5000ms);
    CHECK(std::chrono::steady_clock::now() - start < 3s);
    CHECK(out.starts_with("HTTP/1.1 502"));
    CHECK(out.find("timed out") != std::string::npos);
    auto r = run("curl -s --max-time 15 --noproxy '' --socks5 " + f.socks_proxy() +
                 " http://127.0.0.1:" + P(port) + "/");
    CHECK(r.status == 97);
    for (int x : fillers)
        ::close(x);
    ::close(fd);
}

TEST_CASE("byte budget closes the session's proxy traffic", "[net][proxy]") {
    World w;
    ProxyLimits l;
    l.max_total_bytes = 100000;
    ProxyFixture f(w.t, {w.origin(), "127.0.0.1:*"}, {}, l);
    map_test_names(f);
    auto r = run("curl -s --max-time 15 --noproxy '' --proxy " + f.http_proxy() + " http://" +
                 w.origin() + "/bytes?n=1000000 | wc -c");
    CHECK(std::stoul(r.out) < 1000000);
    CHECK(curl_http(f, "http://" + w.origin() + "/hello").out == "403");
}
