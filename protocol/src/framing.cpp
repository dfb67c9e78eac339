#include "cordon/protocol/framing.hpp"

#include <algorithm>
#include <charconv>
#include <limits>

namespace cordon::protocol {

const char* to_string(FrameError e) {
    switch (e) {
    case FrameError::header_too_large:
        return "header block too large";
    case FrameError::missing_content_length:
        return "missing Content-Length header";
    case FrameError::bad_content_length:
        return "invalid Content-Length value";
    case FrameError::duplicate_content_length:
        return "duplicate Content-Length header";
    case FrameError::malformed_header:
        return "malformed header line";
    case FrameError::body_too_large:
        return "message body exceeds the size limit";
    case FrameError::truncated:
        return "input ended inside a frame";
    }
    return "framing error";
}

namespace {

constexpr std::string_view kTerminator = "\r\n\r\n";

FrameEvent error_event(FrameError e, std::string detail) {
    FrameEvent ev;
    ev.ok = false;
    ev.error = e;
    ev.detail = std::move(detail);
    return ev;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

} // namespace

void FrameDecoder::feed(std::string_view bytes) {
    // Bodies being skipped are never stored.
    while (!bytes.empty() && state_ == State::skip_body && pos_ == buf_.size()) {
        auto n = std::min<std::uint64_t>(remaining_, bytes.size());
        remaining_ -= n;
        bytes.remove_prefix(n);
        if (remaining_ == 0) state_ = State::header;
    }
    buf_.append(bytes);
}

void FrameDecoder::compact() {
    if (pos_ > 0 && (pos_ >= 4096 || pos_ * 2 >= buf_.size())) {
        buf_.erase(0, pos_);
        pos_ = 0;
    }
}

std::optional<FrameEvent> FrameDecoder::parse_header_block(std::string_view block) {
    std::optional<std::uint64_t> length;
    bool duplicate = false, bad = false, malformed = false;
    std::string bad_value;
    while (!block.empty()) {
        auto eol = block.find("\r\n");
        std::string_view line = block.substr(0, eol);
        block.remove_prefix(eol == std::string_view::npos ? block.size() : eol + 2);
        if (line.empty()) continue;
        auto colon = line.find(':');
        if (colon == std::string_view::npos) {
            malformed = true;
            continue;
        }
        auto name = trim(line.substr(0, colon));
        auto value = trim(line.substr(colon + 1));
        if (!iequals(name, "Content-Length")) continue; // Content-Type and others: ignored
        if (length || bad) {
            duplicate = true;
            continue;
        }
        std::uint64_t n = 0;
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (value.empty() || ec != std::errc() || p != value.data() + value.size()) {
            bad = true;
            bad_value = std::string(value.substr(0, 64));
            continue;
        }
        length = n;
    }
    if (duplicate)
        return error_event(FrameError::duplicate_content_length, "Content-Length given twice");
    if (bad)
        return error_event(FrameError::bad_content_length,
                           "Content-Length is not a non-negative integer: '" + bad_value + "'");
    if (malformed && !length)
        return error_event(FrameError::malformed_header, "header line without ':'");
    if (!length) return error_event(FrameError::missing_content_length, "no Content-Length");
    if (*length > limits_.max_body_bytes) {
        remaining_ = *length;
        state_ = State::skip_body;
        return error_event(FrameError::body_too_large,
                           "Content-Length " + std::to_string(*length) + " exceeds the limit of " +
                               std::to_string(limits_.max_body_bytes) + " bytes");
    }
    remaining_ = *length;
    state_ = State::body;
    return std::nullopt;
}

std::optional<FrameEvent> FrameDecoder::next() {
    for (;;) {
        std::string_view avail(buf_.data() + pos_, buf_.size() - pos_);
        switch (state_) {
        case State::header: {
            // Tolerate stray CR/LF between frames.
            std::size_t skip = 0;
            while (skip < avail.size() && (avail[skip] == '\r' || avail[skip] == '\n'))
                ++skip;
            pos_ += skip;
            avail.remove_prefix(skip);
            auto end = avail.find(kTerminator);
            if (end == std::string_view::npos) {
                if (avail.size() > limits_.max_header_bytes) {
                    // Keep only the tail that might begin a terminator.
                    pos_ = buf_.size() - (kTerminator.size() - 1);
                    state_ = State::skip_header;
                    compact();
                    return error_event(FrameError::header_too_large,
                                       "no end of header within " +
                                           std::to_string(limits_.max_header_bytes) + " bytes");
                }
                compact();
                return std::nullopt;
            }
            if (end > limits_.max_header_bytes) {
                pos_ += end + kTerminator.size();
                compact();
                return error_event(FrameError::header_too_large,
                                   "header block of " + std::to_string(end) + " bytes");
            }
            auto block = avail.substr(0, end);
            pos_ += end + kTerminator.size();
            if (auto err = parse_header_block(block)) {
                if (state_ == State::header) state_ = State::resync;
                if (state_ == State::skip_body) {
                    // Drop what of the oversized body is already buffered.
                    auto have = buf_.size() - pos_;
                    auto n = std::min<std::uint64_t>(remaining_, have);
                    pos_ += n;
                    remaining_ -= n;
                    if (remaining_ == 0) state_ = State::header;
                }
                compact();
                return err;
            }
            continue;
        }
        case State::body: {
            if (avail.size() < remaining_) {
                compact();
                return std::nullopt;
            }
            FrameEvent ev;
            ev.ok = true;
            ev.body.assign(avail.substr(0, remaining_));
            pos_ += remaining_;
            remaining_ = 0;
            state_ = State::header;
            compact();
            return ev;
        }
        case State::skip_body: {
            auto n = std::min<std::uint64_t>(remaining_, avail.size());
            pos_ += n;
            remaining_ -= n;
            if (remaining_ == 0) {
                state_ = State::header;
                continue;
            }
            compact();
            return std::nullopt;
        }
        case State::resync: {
            static constexpr std::string_view kName = "content-length:";
            auto it = std::search(
                avail.begin(), avail.end(), kName.begin(), kName.end(),
                [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; });
            if (it == avail.end()) {
                if (avail.size() >= kName.size()) pos_ = buf_.size() - (kName.size() - 1);
                compact();
                return std::nullopt;
            }
            pos_ += it - avail.begin();
            state_ = State::header;
            continue;
        }
        case State::skip_header: {
            auto end = avail.find(kTerminator);
            if (end == std::string_view::npos) {
                if (avail.size() > kTerminator.size() - 1)
                    pos_ = buf_.size() - (kTerminator.size() - 1);
                compact();
                return std::nullopt;
            }
            pos_ += end + kTerminator.size();
            state_ = State::header;
            continue;
        }
        }
    }
}

std::optional<FrameEvent> FrameDecoder::finish() {
    std::string_view avail(buf_.data() + pos_, buf_.size() - pos_);
    bool only_space = std::all_of(avail.begin(), avail.end(), [](char c) {
        return c == '\r' || c == '\n' || c == ' ' || c == '\t';
    });
    bool in_frame = state_ == State::body || state_ == State::skip_body ||
                    state_ == State::resync || (state_ == State::header && !only_space);
    buf_.clear();
    pos_ = 0;
    state_ = State::header;
    if (!in_frame) return std::nullopt;
    return error_event(FrameError::truncated, "end of input inside a frame");
}

std::string encode_frame(std::string_view body) {
    std::string out = "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    out.append(body);
    return out;
}

} // namespace cordon::protocol
