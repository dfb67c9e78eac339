// Dispatcher rules with an in-memory sink: no process, no pipes.
#include "cordon/server/dispatcher.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <catch2/catch.hpp>

using namespace cordon::server;
using namespace cordon::protocol;
namespace asio = boost::asio;

namespace {

struct MemorySink : MessageSink {
    std::vector<json> sent;
    void send(const json& m) override { sent.push_back(m); }
    asio::awaitable<void> send_when_ready(const json& m) override {
        sent.push_back(m);
        co_return;
    }
};

struct Fixture {
    asio::io_context io;
    MemorySink sink;
    Dispatcher d{io, sink};
    bool slow_finished = false;

    Fixture() {
        d.on_initialize([](Call&) -> asio::awaitable<json> { co_return json{{"ok", true}}; });
        d.add("echo", [](Call& c) -> asio::awaitable<json> { co_return c.params; });
        d.add("fail", [](Call& c) -> asio::awaitable<json> {
            throw RpcError(code::unknown_session, "nope");
            co_return nullptr;
        });
        d.add("crash", [](Call& c) -> asio::awaitable<json> {
            throw std::runtime_error("boom");
            co_return nullptr;
        });
        d.add("slow", [this](Call& c) -> asio::awaitable<json> {
            asio::steady_timer t(io, std::chrono::seconds(30));
            co_await t.async_wait(asio::use_awaitable); // throws when cancelled
            slow_finished = true;
            co_return "late";
        });
    }
    void feed(const std::string& body) {
        FrameEvent ev;
        ev.ok = true;
        ev.body = body;
        d.on_frame(std::move(ev));
        io.run_for(std::chrono::milliseconds(20));
        io.restart();
    }
    void feed(const json& msg) { feed(msg.dump()); }
    void init() {
        feed(make_request(0, "initialize", json::object()));
        sink.sent.clear();
    }
};

} // namespace

TEST_CASE("requests before initialize get -32002", "[dispatcher]") {
    Fixture f;
    f.feed(make_request(1, "echo", {{"a", 1}}));
    REQUIRE(f.sink.sent.size() == 1);
    CHECK(f.sink.sent[0]["error"]["code"] == code::server_not_initialized);
    CHECK(f.sink.sent[0]["id"] == 1);
    f.feed(make_request(2, "initialize", json::object()));
    CHECK(f.sink.sent[1]["result"]["ok"] == true);
    f.feed(make_request(3, "initialize", json::object()));
    CHECK(f.sink.sent[2]["error"]["code"] == code::invalid_request);
}

TEST_CASE("each request is answered exactly once, errors mapped", "[dispatcher]") {
    Fixture f;
    f.init();
    f.feed(make_request(1, "echo", {{"a", 1}}));
    f.feed(make_request(2, "fail", json::object()));
    f.feed(make_request(3, "crash", json::object()));
    f.feed(make_request(4, "nope/nope", json::object()));
    f.feed(make_request(5, "__proto__", json::object()));
    REQUIRE(f.sink.sent.size() == 5);
    CHECK(f.sink.sent[0]["result"]["a"] == 1);
    CHECK(f.sink.sent[1]["error"]["code"] == code::unknown_session);
    CHECK(f.sink.sent[2]["error"]["code"] == code::internal_error);
    CHECK(f.sink.sent[3]["error"]["code"] == code::method_not_found);
    CHECK(f.sink.sent[4]["error"]["code"] == code::method_not_found);
}

TEST_CASE("parse errors and invalid requests are answered with id null", "[dispatcher]") {
    Fixture f;
    f.init();
    f.feed(std::string("{not json"));
    f.feed(std::string(R"({"jsonrpc":"2.0","id":1,"id":2,"method":"echo"})"));
    f.feed(std::string(R"({"foo":1})"));
    REQUIRE(f.sink.sent.size() == 3);
    CHECK(f.sink.sent[0]["error"]["code"] == code::parse_error);
    CHECK(f.sink.sent[0]["id"].is_null());
    CHECK(f.sink.sent[1]["error"]["code"] == code::parse_error);
    CHECK(f.sink.sent[2]["error"]["code"] == code::invalid_request);
}

TEST_CASE("framing errors are answered and the next frame served", "[dispatcher]") {
    Fixture f;
    f.init();
    FrameEvent big;
    big.ok = false;
    big.error = FrameError::body_too_large;
    f.d.on_frame(std::move(big));
    FrameEvent bad;
    bad.ok = false;
    bad.error = FrameError::bad_content_length;
    f.d.on_frame(std::move(bad));
    f.feed(make_request(1, "echo", {{"x", 2}}));
    REQUIRE(f.sink.sent.size() == 3);
    CHECK(f.sink.sent[0]["error"]["code"] == code::invalid_request);
    CHECK(f.sink.sent[1]["error"]["code"] == code::parse_error);
    CHECK(f.sink.sent[2]["result"]["x"] == 2);
}

TEST_CASE("$/cancelRequest stops a slow request with -32800", "[dispatcher]") {
    Fixture f;
    f.init();
    f.feed(make_request(9, "slow", json::object()));
    CHECK(f.sink.sent.empty());
    CHECK(f.d.in_flight() == 1);
    f.feed(make_notification("$/cancelRequest", {{"id", 9}}));
    REQUIRE(f.sink.sent.size() == 1);
    CHECK(f.sink.sent[0]["id"] == 9);
    CHECK(f.sink.sent[0]["error"]["code"] == code::request_cancelled);
    CHECK_FALSE(f.slow_finished);
    CHECK(f.d.in_flight() == 0);
    // Cancelling an unknown or finished id does nothing.
    f.feed(make_notification("$/cancelRequest", {{"id", 9}}));
    CHECK(f.sink.sent.size() == 1);
}

TEST_CASE("batches get one array reply; notifications get none", "[dispatcher]") {
    Fixture f;
    f.init();
    f.feed(json::array({make_request(1, "echo", {{"i", 1}}), make_notification("x", nullptr),
                        make_request(2, "fail", json::object()), json(5)}));
    REQUIRE(f.sink.sent.size() == 1);
    auto& arr = f.sink.sent[0];
    REQUIRE(arr.is_array());
    CHECK(arr.size() == 3);
    f.feed(json::array({make_notification("x", nullptr)}));
    CHECK(f.sink.sent.size() == 1);
    f.feed(std::string("[]"));
    CHECK(f.sink.sent.back()["error"]["code"] == code::invalid_request);
}

TEST_CASE("shutdown then exit gives 0; exit alone gives 1", "[dispatcher]") {
    {
        Fixture f;
        f.init();
        f.feed(make_request(1, "shutdown", nullptr));
        CHECK(f.sink.sent[0]["result"].is_null());
        f.feed(make_request(2, "echo", json::object()));
        CHECK(f.sink.sent[1]["error"]["code"] == code::invalid_request);
        f.feed(make_notification("exit", nullptr));
        CHECK(f.d.exit_code() == 0);
    }
    {
        Fixture f;
        f.init();
        f.feed(make_notification("exit", nullptr));
        CHECK(f.d.exit_code() == 1);
    }
}

TEST_CASE("server-to-client requests resolve with the client's response", "[dispatcher]") {
    Fixture f;
    f.init();
    json got;
    asio::co_spawn(
        f.io,
        [&]() -> asio::awaitable<void> {
            json params = {{"host", "x"}}; // (built outside co_await: GCC 12 bug)
            got = co_await f.d.request("sandbox/approve", params, std::chrono::seconds(5));
        },
        asio::detached);
    f.io.run_for(std::chrono::milliseconds(10));
    f.io.restart();
    REQUIRE(f.sink.sent.size() == 1);
    auto id = f.sink.sent[0]["id"];
    f.feed(json{{"jsonrpc", "2.0"}, {"id", id}, {"result", {{"decision", "deny"}}}});
    CHECK(got["decision"] == "deny");
}
