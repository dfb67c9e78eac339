// Moves JSON-RPC messages over a byte stream (stdio pipes or a Unix socket connection).
//
// Reading: bytes -> FrameDecoder -> `on_frame` callback, one frame at a time.
// Writing: a bounded outbound queue with one write in flight, so replies, notifications and
// streamed output never interleave inside a frame. `send` always enqueues (replies must not
// be dropped); `send_when_ready` waits while the queue holds more than its limit, which is
// how streamed command output is throttled to the client's reading speed.
//
// Thread-safety: all members run on the io_context's single thread.
#pragma once

#include "cordon/protocol/framing.hpp"
#include "cordon/protocol/jsonrpc.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <deque>
#include <functional>
#include <memory>
#include <string>

namespace cordon::server {

namespace asio = boost::asio;
using protocol::json;

// Where outgoing messages go. Implemented by StreamTransport and by test doubles.
class MessageSink {
  public:
    virtual ~MessageSink() = default;
    virtual void send(const json& msg) = 0;
    virtual asio::awaitable<void> send_when_ready(const json& msg) = 0;
};

// Serialises a message; invalid UTF-8 in strings is replaced, never thrown.
std::string serialize(const json& msg);

class StreamTransport : public MessageSink {
  public:
    // Takes ownership of both fds (they may be the same descriptor for a socket).
    StreamTransport(asio::io_context& io, int in_fd, int out_fd, protocol::FrameLimits limits,
                    std::size_t max_queue_bytes = 8u << 20);
    ~StreamTransport() override;

    // Reads until EOF or a read error, handing every frame event to `on_frame`.
    asio::awaitable<void> read_loop(std::function<void(protocol::FrameEvent&&)> on_frame);

    void send(const json& msg) override;
    asio::awaitable<void> send_when_ready(const json& msg) override;

    // Completes once everything queued so far is written (or the peer is gone).
    asio::awaitable<void> flush();
    // Ends read_loop (queued output is still written); close() ends both directions.
    void stop_reading();
    void close();

    std::size_t queued_bytes() const { return queued_bytes_; }

  private:
    void enqueue(std::string frame);
    asio::awaitable<void> write_loop();

    asio::posix::stream_descriptor in_;
    asio::posix::stream_descriptor out_; // dup of in_ for sockets
    protocol::FrameDecoder decoder_;
    std::deque<std::string> queue_;
    std::size_t queued_bytes_ = 0;
    std::size_t max_queue_bytes_;
    bool writing_ = false;
    bool broken_ = false;
    asio::steady_timer queue_changed_; // signalled (cancelled) when the queue shrinks/grows
};

} // namespace cordon::server
