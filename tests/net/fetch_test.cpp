// fetch against real HTTP and HTTPS servers on 127.0.0.1 (test CA generated at run time).
#include "test_servers.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>

#include "cordon/protocol/jsonrpc.hpp"

using namespace cordon::test;
using cordon::protocol::RpcError;
using namespace std::chrono_literals;

namespace {

std::string P(std::uint16_t p) {
    return std::to_string(p);
}

struct FetchWorld {
    IoThread t;
    OriginServer http{t.io, false};
    OriginServer https{t.io, true};
    std::unique_ptr<ProxyFixture> f; // only its gate is used
    FetchOptions opts;
    std::vector<RequestRecord> log;
    std::mutex m;

    explicit FetchWorld(std::vector<std::string> allow, std::vector<std::string> deny = {}) {
        f = std::make_unique<ProxyFixture>(t, allow, deny);
        f->names["allowed.test"] = {boost::asio::ip::make_address("127.0.0.1")};
        f->names["api.example.test"] = {boost::asio::ip::make_address("127.0.0.1")};
        f->names["denied.test"] = {boost::asio::ip::make_address("127.0.0.1")};
        opts.extra_ca_file = TestCerts::get().ca_pem;
        opts.log = [this](const RequestRecord& r) {
            std::lock_guard lk(m);
            log.push_back(r);
        };
    }
    json fetch(FetchRequest req) {
        auto fut =
            asio::co_spawn(t.io, cordon::server::net::fetch(req, *f->gate, opts), asio::use_future);
        return fut.get();
    }
    json fetch(const std::string& url) {
        FetchRequest r;
        r.url = url;
        return fetch(r);
    }
    RpcError fetch_error(FetchRequest req) {
        try {
            fetch(req);
        } catch (const RpcError& e) {
            return e;
        }
        FAIL("fetch did not fail");
        return RpcError(0, "");
    }
    RpcError fetch_error(const std::string& url) {
        FetchRequest r;
        r.url = url;
        return fetch_error(r);
    }
    std::string plain(const std::string& path) {
        return "http://allowed.test:" + P(http.port()) + path;
    }
    std::string tls(const std::string& path) {
        return "https://allowed.test:" + P(https.port()) + path;
    }
};

std::string pct(const std::string& s) {
    std::string o;
    for (char c : s) {
        if (c == ':' || c == '/' || c == '?' || c == '=' || c == '&') {
            char b[4];
            std::snprintf(b, sizeof b, "%%%02X", static_cast<unsigned char>(c));
            o += b;
        } else {
            o += c;
        }
    }
    return o;
}

const std::vector<std::string> kAllowAll = {"allowed.test:*", "api.example.test:*", "127.0.0.1:*"};

} // namespace

TEST_CASE("fetch: plain HTTP / text and binary bodies / caps", "[net][fetch]") {
    FetchWorld w(kAllowAll);
    auto r = w.fetch(w.plain("/hello"));
    CHECK(r["status"] == 200);
    CHECK(r["body"] == "hello from origin");
    CHECK(r["encoding"] == "utf-8");
    CHECK(r["truncated"] == false);
    CHECK(r["headers"]["content-type"] == "text/plain");
    CHECK(r["headers"]["server"] == "origin");

    r = w.fetch(w.plain("/bytes?n=1000"));
    CHECK(r["encoding"] == "base64");
    CHECK(r["body"].get<std::string>().starts_with("AAECAwQF"));

    FetchRequest big;
    big.url = w.plain("/bytes?n=200000");
    big.max_bytes = 1000;
    r = w.fetch(big);
    CHECK(r["truncated"] == true);
    CHECK(r["body"].get<std::string>().size() == 1336); // base64 of 1000 bytes

    // A cut in the middle of a UTF-8 sequence still yields utf-8 text.
    FetchRequest u;
    u.url = w.plain("/utf8?n=100");
    u.max_bytes = 11;
    r = w.fetch(u);
    CHECK(r["encoding"] == "utf-8");
    CHECK(r["body"] == "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    CHECK(r["truncated"] == true);

    FetchRequest post;
    post.url = w.plain("/echo");
    post.method = "POST";
    post.body = "payload";
    post.headers = {{"X-Test", "1"}, {"Host", "evil.test"}, {"Connection", "keep-alive"}};
    r = w.fetch(post);
    auto body = r["body"].get<std::string>();
    CHECK(body.starts_with("POST /echo\n"));
    CHECK(body.find("X-Test: 1") != std::string::npos);
    CHECK(body.find("evil.test") == std::string::npos);
    CHECK(body.ends_with("\npayload"));
    CHECK(w.log.size() == 5);
    CHECK(w.log.back().via == "fetch");
}

TEST_CASE("fetch: HTTPS verified with the extra CA - refused without it", "[net][fetch]") {
    FetchWorld w(kAllowAll);
    auto r = w.fetch(w.tls("/hello"));
    CHECK(r["status"] == 200);
    CHECK(r["body"] == "hello from origin");
    r = w.fetch("https://api.example.test:" + P(w.https.port()) + "/hello"); // wildcard SAN
    CHECK(r["status"] == 200);

    w.opts.extra_ca_file.clear();
    auto e = w.fetch_error(w.tls("/hello"));
    CHECK(e.code == -32603);
    CHECK(std::string(e.what()).find("certificate verify failed") != std::string::npos);
    CHECK(e.data["reason"].get<std::string>().find("TLS") != std::string::npos);
}

TEST_CASE("fetch: TLS host name verification", "[net][fetch]") {
    FetchWorld w({"allowed.test:*", "other.test:*", "127.0.0.1:*"});
    w.f->names["other.test"] = {boost::asio::ip::make_address("127.0.0.1")};
    // The certificate does not name other.test.
    auto e = w.fetch_error("https://other.test:" + P(w.https.port()) + "/hello");
    CHECK(e.code == -32603);
    CHECK(std::string(e.what()).find("TLS") != std::string::npos);
}

TEST_CASE("fetch: policy / redirects", "[net][fetch]") {
    FetchWorld w(kAllowAll, {"denied.test"});
    SECTION("denied host -> -32003 with host and reason, never resolved") {
        auto e = w.fetch_error("http://denied.test/secret");
        CHECK(e.code == -32003);
        CHECK(e.data["host"] == "denied.test");
        CHECK(e.data["reason"].get<std::string>().find("denied by rule") != std::string::npos);
        CHECK(w.f->lookups() == 0);
        CHECK(w.f->violations_copy().size() == 1);
        CHECK(w.f->violations_copy()[0]["via"] == "fetch");
    }
    SECTION("redirect to an allowed URL is followed") {
        auto r = w.fetch(w.plain("/redirect?to=" + pct(w.tls("/hello"))));
        CHECK(r["status"] == 200);
        CHECK(r["body"] == "hello from origin");
        CHECK(r["redirects"] == 1);
        CHECK(r["url"] == w.tls("/hello"));
    }
    SECTION("relative redirects") {
        auto r = w.fetch(w.plain("/redirect?to=/hello"));
        CHECK(r["body"] == "hello from origin");
    }
    SECTION("redirect to a denied host is refused and not resolved") {
        auto e = w.fetch_error(
            w.plain("/redirect?to=" + pct("http://denied.test:" + P(w.http.port()) + "/hello")));
        CHECK(e.code == -32003);
        CHECK(e.data["host"] == "denied.test");
        CHECK(w.f->lookups() == 1); // allowed.test only
    }
    SECTION("redirect to an unlisted host is asked (and the user says no)") {
        auto e = w.fetch_error(w.plain("/redirect?to=" + pct("http://unlisted.test/")));
        CHECK(e.code == -32003);
        CHECK(w.f->asks == 1);
    }
    SECTION("redirect to a loopback IP literal not listed is refused") {
        FetchWorld v({"allowed.test:*"});
        auto url = "http://allowed.test:" + P(v.http.port()) +
                   "/redirect?to=" + pct("http://127.0.0.1:" + P(v.http.port()) + "/hello");
        auto e = v.fetch_error(url);
        CHECK(e.code == -32003); // allowed.test itself resolves to 127.0.0.1: refused first
    }
    SECTION("at most 5 redirects are followed") {
        std::string url = w.plain("/hello");
        for (int i = 0; i < 6; ++i)
            url = w.plain("/redirect?to=" + pct(url));
        auto r = w.fetch(url);
        CHECK(r["status"] == 302);
        CHECK(r["redirects"] == 5);
    }
}

TEST_CASE("fetch: method/path rules and the egress budget (NET-06)", "[net][fetch][net06]") {
    FetchWorld w(kAllowAll);
    w.t.sync([&] {
        auto p = NetworkPolicy::from_json(
            {json{{"host", "allowed.test:*"}, {"methods", {"GET"}}, {"paths", {"/hello"}}},
             json("127.0.0.1:*")},
            {});
        NetworkLimits l;
        l.max_egress_bytes = 20000;
        p.set_limits(l);
        w.f->gate->set_policy(p);
    });
    FetchRequest get;
    get.url = w.plain("/hello");
    CHECK(w.fetch(get)["status"] == 200);
    FetchRequest post = get;
    post.method = "POST";
    post.body = "secret";
    auto e = w.fetch_error(post);
    CHECK(e.code == -32003);
    CHECK(e.data["reason"].get<std::string>().find("method POST is not allowed") !=
          std::string::npos);
    FetchRequest other = get;
    other.url = w.plain("/echo");
    CHECK(w.fetch_error(other).data["reason"].get<std::string>().find("path /echo is not") !=
          std::string::npos);
    CHECK(w.http.requests == 1);
    CHECK(w.f->violations_copy().size() == 2);
    // Egress: a GET whose headers carry 30 kB is over the 20 kB budget.
    FetchRequest big = get;
    big.headers.push_back({"X-Data", std::string(30000, 'a')});
    e = w.fetch_error(big);
    CHECK(e.code == -32003);
    CHECK(e.data["reason"].get<std::string>().find("egress byte budget") != std::string::npos);
    CHECK(w.http.requests == 1);
    e = w.fetch_error(get); // exhausted for good
    CHECK(e.data["reason"].get<std::string>().find("egress byte budget") != std::string::npos);
}

TEST_CASE("fetch: no git push through fetch", "[net][fetch][net06]") {
    FetchWorld w(kAllowAll);
    FetchRequest push;
    push.url = w.plain("/o/r.git/git-receive-pack");
    push.method = "POST";
    push.body = "0000";
    auto e = w.fetch_error(push);
    CHECK(e.code == -32003);
    CHECK(e.data["reason"].get<std::string>().find("cordon's git proxy") != std::string::npos);
    FetchRequest ct;
    ct.url = w.plain("/echo");
    ct.method = "POST";
    ct.headers.push_back({"Content-Type", "application/x-git-receive-pack-request"});
    CHECK(w.fetch_error(ct).code == -32003);
    CHECK(w.http.requests == 0);
}

TEST_CASE("fetch: timeout and connection failures", "[net][fetch]") {
    FetchWorld w(kAllowAll);
    FetchRequest slow;
    slow.url = w.plain("/slow");
    slow.timeout_ms = 300;
    auto start = std::chrono::steady_clock::now();
    auto e = w.fetch_error(slow);
    CHECK(std::chrono::steady_clock::now() - start < 2s);
    CHECK(e.code == -32603);
    CHECK(std::string(e.what()).find("timed out") != std::string::npos);

    std::uint16_t closed_port = 0;
    ::close(listen_loopback(&closed_port));
    e = w.fetch_error("http://127.0.0.1:" + P(closed_port) + "/");
    CHECK(e.code == -32603);
    CHECK(std::string(e.what()).find("cannot connect") != std::string::npos);
}

TEST_CASE("fetch: format text", "[net][fetch]") {
    FetchWorld w(kAllowAll);
    FetchRequest r;
    r.url = w.plain("/html");
    r.format = "text";
    auto out = w.fetch(r);
    CHECK(out["body"] == "T\nHead&line\nFirst para\n- one\n- two\ncafé <ok>");
}

TEST_CASE("fetch params", "[net][fetch]") {
    auto f = parse_fetch_request({{"sessionId", "s"},
                                  {"url", "https://example.com/x"},
                                  {"method", "post"},
                                  {"headers", {{"A", "b"}}},
                                  {"maxBytes", 10},
                                  {"timeoutMs", 5}});
    CHECK(f.method == "POST");
    CHECK(f.max_bytes == 10);
    CHECK(f.timeout_ms == 5);
    CHECK(f.headers.size() == 1);
    auto bad = [](json j) {
        try {
            parse_fetch_request(j);
        } catch (const RpcError& e) {
            return e.data["path"].get<std::string>();
        }
        return std::string("no error");
    };
    CHECK(bad({{"url", "ftp://x/"}}) == "/url");
    CHECK(bad({{"url", "http://exa mple.com/"}}) == "/url");
    CHECK(bad(json::object()) == "/url");
    CHECK(bad({{"url", "http://x.com/"}, {"method", "GE T"}}) == "/method");
    CHECK(bad({{"url", "http://x.com/"}, {"headers", {{"X", "a\r\nB: c"}}}}) == "/headers/X");
    CHECK(bad({{"url", "http://x.com/"}, {"maxBytes", -1}}) == "/maxBytes");
    CHECK(bad({{"url", "http://x.com/"}, {"format", "pdf"}}) == "/format");
}

TEST_CASE("html_to_text", "[net][fetch]") {
    CHECK(html_to_text("<p>a</p><p>b</p>") == "a\nb");
    CHECK(html_to_text("x<script>var a='<p>'</script>y") == "xy");
    CHECK(html_to_text("a&nbsp;&amp;&#x41;&#66;") == "a &AB");
    CHECK(html_to_text("<div>one<br>two</div>") == "one\ntwo");
}
