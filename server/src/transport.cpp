#include "cordon/server/transport.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include <unistd.h>

namespace cordon::server {

std::string serialize(const json& msg) {
    return msg.dump(-1, ' ', false, json::error_handler_t::replace);
}

StreamTransport::StreamTransport(asio::io_context& io, int in_fd, int out_fd,
                                 protocol::FrameLimits limits, std::size_t max_queue_bytes)
    : in_(io, in_fd), out_(io, in_fd == out_fd ? ::dup(out_fd) : out_fd), decoder_(limits),
      max_queue_bytes_(max_queue_bytes), queue_changed_(io) {
    queue_changed_.expires_at(asio::steady_timer::time_point::max());
}

StreamTransport::~StreamTransport() {
    close();
}

void StreamTransport::stop_reading() {
    boost::system::error_code ec;
    if (in_.is_open()) in_.close(ec);
}

void StreamTransport::close() {
    boost::system::error_code ec;
    if (in_.is_open()) in_.close(ec);
    if (out_.is_open()) out_.close(ec);
}

asio::awaitable<void>
StreamTransport::read_loop(std::function<void(protocol::FrameEvent&&)> on_frame) {
    std::string buf(64 * 1024, '\0');
    while (in_.is_open()) {
        boost::system::error_code ec;
        std::size_t n = co_await in_.async_read_some(asio::buffer(buf),
                                                     asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (ec != asio::error::eof && ec != asio::error::operation_aborted)
                spdlog::warn("transport: read failed: {}", ec.message());
            break;
        }
        decoder_.feed(std::string_view(buf.data(), n));
        while (auto ev = decoder_.next())
            on_frame(std::move(*ev));
    }
    if (auto ev = decoder_.finish()) on_frame(std::move(*ev));
}

void StreamTransport::enqueue(std::string frame) {
    if (broken_) return;
    queued_bytes_ += frame.size();
    queue_.push_back(std::move(frame));
    if (!writing_) {
        writing_ = true;
        asio::co_spawn(out_.get_executor(), write_loop(), asio::detached);
    }
}

void StreamTransport::send(const json& msg) {
    enqueue(protocol::encode_frame(serialize(msg)));
}

asio::awaitable<void> StreamTransport::send_when_ready(const json& msg) {
    while (!broken_ && queued_bytes_ > max_queue_bytes_) {
        boost::system::error_code ec;
        co_await queue_changed_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    send(msg);
}

asio::awaitable<void> StreamTransport::flush() {
    while (!broken_ && (writing_ || !queue_.empty())) {
        boost::system::error_code ec;
        co_await queue_changed_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
}

asio::awaitable<void> StreamTransport::write_loop() {
    while (!queue_.empty()) {
        // Coalesce small frames into one write; frames are never split between writers.
        std::string chunk = std::move(queue_.front());
        queue_.pop_front();
        while (!queue_.empty() && chunk.size() < 64 * 1024) {
            chunk += queue_.front();
            queue_.pop_front();
        }
        boost::system::error_code ec;
        co_await asio::async_write(out_, asio::buffer(chunk),
                                   asio::redirect_error(asio::use_awaitable, ec));
        queued_bytes_ -= chunk.size();
        queue_changed_.cancel();
        if (ec) {
            spdlog::warn("transport: write failed: {}", ec.message());
            broken_ = true;
            queue_.clear();
            queued_bytes_ = 0;
            break;
        }
    }
    writing_ = false;
    queue_changed_.cancel();
}

} // namespace cordon::server
