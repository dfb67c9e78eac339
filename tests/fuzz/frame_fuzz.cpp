// libFuzzer target: arbitrary bytes through the frame decoder (in arbitrary chunks) and every
// decoded body through the JSON-RPC envelope parser. Must never crash, hang, or buffer more
// than the limits allow.
#include "cordon/protocol/framing.hpp"
#include "cordon/protocol/jsonrpc.hpp"

#include <cstdint>
#include <cstdlib>

using namespace cordon::protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    FrameLimits limits;
    limits.max_header_bytes = 256;
    limits.max_body_bytes = 4096;
    FrameDecoder decoder(limits);
    // The first byte picks the chunk size, so splits across reads are explored too.
    std::size_t chunk = 1 + data[0] % 64;
    std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
    auto handle = [](const FrameEvent& ev) {
        if (!ev.ok) return;
        ParseLimits pl;
        pl.max_depth = 32;
        pl.max_batch = 16;
        Payload p = parse_payload(ev.body, pl);
        for (auto& m : p.messages)
            if (auto* bad = std::get_if<Invalid>(&m)) (void)make_error(bad->id, bad->error).dump();
    };
    for (std::size_t off = 0; off < input.size(); off += chunk) {
        decoder.feed(input.substr(off, chunk));
        while (auto ev = decoder.next())
            handle(*ev);
        if (decoder.buffered() > limits.max_header_bytes + limits.max_body_bytes + 64) std::abort();
    }
    if (auto ev = decoder.finish()) handle(*ev);
    return 0;
}
