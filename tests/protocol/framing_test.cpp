#include "cordon/protocol/framing.hpp"

#include <catch2/catch.hpp>

#include <vector>

using namespace cordon::protocol;

namespace {
std::vector<FrameEvent> drain(FrameDecoder& d) {
    std::vector<FrameEvent> out;
    while (auto ev = d.next())
        out.push_back(std::move(*ev));
    return out;
}
} // namespace

TEST_CASE("a frame split across many reads is decoded once complete", "[framing]") {
    FrameDecoder d;
    std::string frame = encode_frame(R"({"jsonrpc":"2.0","method":"x"})");
    for (std::size_t i = 0; i + 1 < frame.size(); ++i) {
        d.feed(frame.substr(i, 1));
        REQUIRE(drain(d).empty());
    }
    d.feed(frame.substr(frame.size() - 1));
    auto evs = drain(d);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].ok);
    CHECK(evs[0].body == R"({"jsonrpc":"2.0","method":"x"})");
}

TEST_CASE("several frames in one read are all decoded in order", "[framing]") {
    FrameDecoder d;
    d.feed(encode_frame("1") + encode_frame("[2]") + encode_frame("\"three\""));
    auto evs = drain(d);
    REQUIRE(evs.size() == 3);
    CHECK(evs[0].body == "1");
    CHECK(evs[1].body == "[2]");
    CHECK(evs[2].body == "\"three\"");
}

TEST_CASE("Content-Type and other headers are accepted and ignored", "[framing]") {
    FrameDecoder d;
    d.feed("Content-Type: application/vscode-jsonrpc; charset=utf-8\r\ncontent-length: 2\r\n"
           "X-Other: y\r\n\r\n{}");
    auto evs = drain(d);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].ok);
    CHECK(evs[0].body == "{}");
}

TEST_CASE("a header block without Content-Length is an error and decoding resyncs", "[framing]") {
    FrameDecoder d;
    d.feed("Content-Type: x\r\n\r\n" + encode_frame("{}"));
    auto evs = drain(d);
    REQUIRE(evs.size() == 2);
    CHECK_FALSE(evs[0].ok);
    CHECK(evs[0].error == FrameError::missing_content_length);
    CHECK(evs[1].ok);
    CHECK(evs[1].body == "{}");
}

TEST_CASE("duplicate, negative and non-numeric Content-Length are errors", "[framing]") {
    struct Case {
        const char* header;
        FrameError error;
    } cases[] = {
        {"Content-Length: 2\r\nContent-Length: 2\r\n\r\n", FrameError::duplicate_content_length},
        {"Content-Length: -5\r\n\r\n", FrameError::bad_content_length},
        {"Content-Length: abc\r\n\r\n", FrameError::bad_content_length},
        {"Content-Length: 12abc\r\n\r\n", FrameError::bad_content_length},
        {"Content-Length: \r\n\r\n", FrameError::bad_content_length},
        {"Content-Length: 99999999999999999999999999\r\n\r\n", FrameError::bad_content_length},
        {"garbage line\r\n\r\n", FrameError::malformed_header},
    };
    for (auto& c : cases) {
        INFO(c.header);
        FrameDecoder d;
        d.feed(std::string(c.header) + encode_frame("{}"));
        auto evs = drain(d);
        REQUIRE(evs.size() >= 2);
        CHECK_FALSE(evs[0].ok);
        CHECK(evs[0].error == c.error);
        CHECK(evs.back().ok);
        CHECK(evs.back().body == "{}");
    }
}

TEST_CASE("a body over the limit is skipped without being stored", "[framing]") {
    FrameLimits lim;
    lim.max_body_bytes = 100;
    FrameDecoder d(lim);
    d.feed("Content-Length: 100000\r\n\r\n");
    auto evs = drain(d);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].error == FrameError::body_too_large);
    std::string chunk(10000, 'x');
    for (int i = 0; i < 10; ++i) {
        d.feed(chunk);
        CHECK(drain(d).empty());
        CHECK(d.buffered() == 0);
    }
    d.feed(encode_frame("{}"));
    evs = drain(d);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].ok);
}

TEST_CASE("an int64-max Content-Length is refused as too large", "[framing]") {
    FrameDecoder d;
    d.feed("Content-Length: 9223372036854775807\r\n\r\n");
    auto evs = drain(d);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].error == FrameError::body_too_large);
}

TEST_CASE("a header without terminator is bounded and decoding resyncs", "[framing]") {
    FrameLimits lim;
    lim.max_header_bytes = 1024;
    FrameDecoder d(lim);
    std::string junk(8 << 20, 'A');
    d.feed(junk.substr(0, 4096));
    auto evs = drain(d);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].error == FrameError::header_too_large);
    for (std::size_t off = 4096; off < junk.size(); off += 65536) {
        d.feed(junk.substr(off, 65536));
        CHECK(drain(d).empty());
        CHECK(d.buffered() < 16);
    }
    d.feed("\r\n\r\n" + encode_frame("[]"));
    evs = drain(d);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].ok);
    CHECK(evs[0].body == "[]");
}

TEST_CASE("a body shorter than announced is reported at end of input", "[framing]") {
    FrameDecoder d;
    d.feed("Content-Length: 10\r\n\r\n{}");
    CHECK(drain(d).empty());
    auto ev = d.finish();
    REQUIRE(ev);
    CHECK(ev->error == FrameError::truncated);
}

TEST_CASE("clean end of input reports nothing", "[framing]") {
    FrameDecoder d;
    d.feed(encode_frame("{}") + "\r\n");
    CHECK(drain(d).size() == 1);
    CHECK_FALSE(d.finish());
}

TEST_CASE("a zero-length body is a frame", "[framing]") {
    FrameDecoder d;
    d.feed("Content-Length: 0\r\n\r\n");
    auto evs = drain(d);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].ok);
    CHECK(evs[0].body.empty());
}
