// The dispatcher owns the cross-cutting JSON-RPC rules for one client connection:
// `initialize` first (-32002 before it), every request answered exactly once, cancellation
// by id (`$/cancelRequest` -> -32800), batches, `shutdown`/`exit`, framing errors answered,
// each call logged with its latency. Method handlers are coroutines registered by name; they
// return a result or throw protocol::RpcError, and never write to the transport themselves.
//
// Thread-safety: single-threaded (the io_context's thread).
#pragma once

#include "cordon/protocol/framing.hpp"
#include "cordon/protocol/jsonrpc.hpp"
#include "cordon/server/transport.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace cordon::server {

class Dispatcher;

// What a handler gets for one call.
struct Call {
    json id; // null for notifications
    std::string method;
    json params;
    Dispatcher& dispatcher;
};

using Handler = std::function<asio::awaitable<json>(Call&)>;

class Dispatcher {
  public:
    Dispatcher(asio::io_context& io, MessageSink& sink, protocol::ParseLimits limits = {});
    ~Dispatcher();

    // Registers a request handler. `initialize`, `shutdown`, `exit` and `$/cancelRequest`
    // are built in; `initialize` calls `on_initialize` for the result.
    void add(std::string method, Handler handler);
    void on_initialize(Handler handler) { initialize_ = std::move(handler); }

    // Feed one decoded frame (or framing error) from the transport.
    void on_frame(protocol::FrameEvent&& ev);
    // The transport reached EOF: cancel everything in flight.
    void on_eof();

    // Server -> client.
    void notify(std::string_view method, json params);
    asio::awaitable<void> notify_when_ready(std::string_view method, json params);
    // A request to the client; the result, or RpcError on error / timeout.
    asio::awaitable<json> request(std::string_view method, json params,
                                  std::chrono::milliseconds timeout);

    bool initialized() const { return initialized_; }
    bool client_approvals() const { return client_approvals_; }
    void set_client_approvals(bool v) { client_approvals_ = v; }
    // Set once `exit` arrives: 0 after `shutdown`, 1 otherwise.
    std::optional<int> exit_code() const { return exit_code_; }
    void set_exit_callback(std::function<void(int)> cb) { on_exit_ = std::move(cb); }
    std::size_t in_flight() const { return in_flight_.size(); }
    // Expires when the dispatcher is destroyed (for objects that outlive a connection).
    std::weak_ptr<bool> liveness() const { return alive_; }

  private:
    struct Batch;
    struct InFlight {
        asio::cancellation_signal signal;
        bool cancelled = false;
    };
    void handle_message(protocol::Message&& m, const std::shared_ptr<Batch>& batch);
    void handle_request(protocol::Request&& r, const std::shared_ptr<Batch>& batch);
    void handle_notification(protocol::Notification&& n);
    void handle_response(protocol::Response&& r);
    void reply(const std::shared_ptr<Batch>& batch, json msg);
    void finish_exit(int code);

    asio::io_context& io_;
    MessageSink& sink_;
    protocol::ParseLimits limits_;
    std::map<std::string, Handler> handlers_;
    Handler initialize_;
    std::map<std::string, std::shared_ptr<InFlight>> in_flight_; // by id.dump()
    struct Pending;
    std::map<std::int64_t, std::shared_ptr<Pending>> pending_; // server -> client requests
    std::int64_t next_request_id_ = 1;
    bool initialized_ = false;
    bool shutdown_ = false;
    bool client_approvals_ = false;
    std::optional<int> exit_code_;
    std::function<void(int)> on_exit_;
    std::shared_ptr<bool> alive_;
};

} // namespace cordon::server
