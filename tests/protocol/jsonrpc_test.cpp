#include "cordon/protocol/jsonrpc.hpp"

#include <catch2/catch.hpp>

using namespace cordon::protocol;

TEST_CASE("requests, notifications and responses are classified", "[jsonrpc]") {
    auto p = parse_payload(R"({"jsonrpc":"2.0","id":1,"method":"a","params":{"x":1}})");
    REQUIRE(p.messages.size() == 1);
    auto* r = std::get_if<Request>(&p.messages[0]);
    REQUIRE(r);
    CHECK(r->id == 1);
    CHECK(r->method == "a");
    CHECK(r->params["x"] == 1);

    p = parse_payload(R"({"jsonrpc":"2.0","method":"n"})");
    CHECK(std::holds_alternative<Notification>(p.messages[0]));

    p = parse_payload(R"({"jsonrpc":"2.0","id":"s","result":null})");
    CHECK(std::holds_alternative<Response>(p.messages[0]));

    p = parse_payload(R"({"jsonrpc":"2.0","id":3,"error":{"code":1,"message":"m"}})");
    REQUIRE(std::holds_alternative<Response>(p.messages[0]));
    CHECK(std::get<Response>(p.messages[0]).error);
}

TEST_CASE("invalid JSON, invalid UTF-8 and duplicate keys are parse errors", "[jsonrpc]") {
    for (std::string body : {std::string("{"), std::string("{\"a\":}"), std::string("nul"),
                             std::string("{\"jsonrpc\":\"2.0\",\"method\":\"\xff\xfe\"}"),
                             std::string(R"({"jsonrpc":"2.0","id":1,"id":2,"method":"a"})"),
                             std::string(R"({"a":{"b":1,"b":2}})")}) {
        INFO(body);
        auto p = parse_payload(body);
        REQUIRE(p.error);
        CHECK(p.error->code == code::parse_error);
    }
}

TEST_CASE("nesting deeper than the limit is refused without recursion", "[jsonrpc]") {
    std::string deep(200000, '[');
    auto p = parse_payload(deep);
    REQUIRE(p.error);
    CHECK(p.error->code == code::parse_error);
    std::string ok = std::string(100, '[') + std::string(100, ']');
    auto q = parse_payload(ok);
    CHECK_FALSE(q.error);
}

TEST_CASE("numbers beyond double range are a parse error, not a crash", "[jsonrpc]") {
    auto p = parse_payload(R"({"jsonrpc":"2.0","id":1,"method":"a","params":{"n":1e400}})");
    REQUIRE(p.error);
    CHECK(p.error->code == code::parse_error);
    auto q = parse_payload(R"({"jsonrpc":"2.0","id":1,"method":"a","params":{"n":1e300}})");
    CHECK_FALSE(q.error);
}

TEST_CASE("batches: empty and oversized are invalid, members are classified", "[jsonrpc]") {
    auto p = parse_payload("[]");
    REQUIRE(p.error);
    CHECK(p.error->code == code::invalid_request);

    std::string big = "[";
    for (int i = 0; i < 1001; ++i)
        big += std::string(i ? "," : "") + "1";
    big += "]";
    p = parse_payload(big);
    REQUIRE(p.error);
    CHECK(p.error->code == code::invalid_request);

    p = parse_payload(
        R"([{"jsonrpc":"2.0","id":1,"method":"a"},1,{"jsonrpc":"2.0","method":"n"}])");
    REQUIRE_FALSE(p.error);
    CHECK(p.batch);
    REQUIRE(p.messages.size() == 3);
    CHECK(std::holds_alternative<Request>(p.messages[0]));
    CHECK(std::holds_alternative<Invalid>(p.messages[1]));
    CHECK(std::holds_alternative<Notification>(p.messages[2]));
}

TEST_CASE("malformed envelopes are invalid requests keeping a usable id", "[jsonrpc]") {
    struct Case {
        const char* body;
        json id;
    } cases[] = {
        {R"({"id":1,"method":"a"})", 1},                             // no jsonrpc
        {R"({"jsonrpc":"1.0","id":1,"method":"a"})", 1},             // wrong version
        {R"({"jsonrpc":"2.0","id":2,"method":5})", 2},               // method not a string
        {R"({"jsonrpc":"2.0","id":{"x":1},"method":"a"})", nullptr}, // bad id type
        {R"({"jsonrpc":"2.0","id":3,"method":"a","params":1})", 3},  // params scalar
        {R"({"jsonrpc":"2.0","id":null,"method":"a"})", nullptr},
        {R"("just a string")", nullptr},
        {R"({"jsonrpc":"2.0","id":4,"result":1,"error":{}})", 4},
    };
    for (auto& c : cases) {
        INFO(c.body);
        auto p = parse_payload(c.body);
        REQUIRE_FALSE(p.error);
        auto* bad = std::get_if<Invalid>(&p.messages[0]);
        REQUIRE(bad);
        CHECK(bad->error.code == code::invalid_request);
        CHECK(bad->id == c.id);
    }
}

TEST_CASE("message builders produce JSON-RPC 2.0", "[jsonrpc]") {
    auto e =
        make_error(7, RpcError(code::unknown_session, "unknown session", {{"sessionId", "x"}}));
    CHECK(e["jsonrpc"] == "2.0");
    CHECK(e["id"] == 7);
    CHECK(e["error"]["code"] == -32001);
    CHECK(e["error"]["data"]["sessionId"] == "x");
    auto n = make_notification("exec/output", {{"data", "x"}});
    CHECK_FALSE(n.contains("id"));
}
