// LSP base-protocol framing ("Content-Length: N\r\n\r\n" + N bytes), as a pure incremental
// decoder and an encoder. No I/O: feed bytes in, take frames or framing errors out.
//
// The decoder never buffers more than one header block (bounded by max_header_bytes) plus
// one body (bounded by max_body_bytes). A body over the limit is skipped without being
// stored; a malformed header block is dropped, and decoding resynchronises at the next
// "Content-Length:" header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cordon::protocol {

struct FrameLimits {
    std::size_t max_header_bytes = 8 * 1024;
    std::size_t max_body_bytes = 64u << 20;
};

enum class FrameError {
    header_too_large,         // no "\r\n\r\n" within max_header_bytes
    missing_content_length,   // header block without Content-Length
    bad_content_length,       // negative, non-numeric, overflowing
    duplicate_content_length, // Content-Length given twice
    malformed_header,         // a header line without ':'
    body_too_large,           // Content-Length over max_body_bytes: body skipped
    truncated,                // EOF inside a header block or a body
};

const char* to_string(FrameError e);

struct FrameEvent {
    bool ok = false;
    std::string body; // when ok
    FrameError error{};
    std::string detail; // when !ok: what was wrong, for the log and the error message
};

class FrameDecoder {
  public:
    explicit FrameDecoder(FrameLimits limits = {}) : limits_(limits) {}

    // Appends bytes; consumes nothing until next() is called.
    void feed(std::string_view bytes);
    // The next complete frame or framing error, if any is available.
    std::optional<FrameEvent> next();
    // At end of input: a truncation error if a frame was in progress.
    std::optional<FrameEvent> finish();

    const FrameLimits& limits() const { return limits_; }
    // Bytes held in the decoder's buffer (for tests of boundedness).
    std::size_t buffered() const { return buf_.size() - pos_; }

  private:
    // skip_header: dropping an over-long header up to its "\r\n\r\n".
    // resync: after a malformed header block, dropping bytes (its body, if any) up to the
    // next "Content-Length:", where the next frame's header must be.
    enum class State { header, body, skip_body, skip_header, resync };
    std::optional<FrameEvent> parse_header_block(std::string_view block);
    void compact();

    FrameLimits limits_;
    State state_ = State::header;
    std::string buf_;
    std::size_t pos_ = 0;         // start of unconsumed bytes in buf_
    std::uint64_t remaining_ = 0; // body bytes still expected / to skip
};

// "Content-Length: N\r\n\r\n" + body.
std::string encode_frame(std::string_view body);

} // namespace cordon::protocol
