#include "cordon/server/dispatcher.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace cordon::server {

using namespace protocol;

// Replies to the members of one batch are collected and sent as one array.
struct Dispatcher::Batch {
    json replies = json::array();
    std::size_t outstanding = 0;
};

struct Dispatcher::Pending {
    explicit Pending(asio::io_context& io) : done(io) {
        done.expires_at(asio::steady_timer::time_point::max());
    }
    asio::steady_timer done;
    std::optional<json> result;
    std::optional<RpcError> error;
};

Dispatcher::Dispatcher(asio::io_context& io, MessageSink& sink, ParseLimits limits)
    : io_(io), sink_(sink), limits_(limits), alive_(std::make_shared<bool>(true)) {}

Dispatcher::~Dispatcher() {
    *alive_ = false;
    for (auto& [id, f] : in_flight_)
        f->signal.emit(asio::cancellation_type::terminal);
}

void Dispatcher::add(std::string method, Handler handler) {
    handlers_[std::move(method)] = std::move(handler);
}

void Dispatcher::on_frame(FrameEvent&& ev) {
    if (!ev.ok) {
        spdlog::warn("framing: {} ({})", to_string(ev.error), ev.detail);
        if (ev.error == FrameError::truncated) return; // the client is gone
        int c = ev.error == FrameError::body_too_large ? code::invalid_request : code::parse_error;
        sink_.send(make_error(nullptr, c, std::string(to_string(ev.error)) + ": " + ev.detail));
        return;
    }
    Payload p = parse_payload(ev.body, limits_);
    if (p.error) {
        spdlog::warn("rejected message: {}", p.error->what());
        sink_.send(make_error(nullptr, *p.error));
        return;
    }
    std::shared_ptr<Batch> batch;
    if (p.batch) {
        batch = std::make_shared<Batch>();
        batch->outstanding = 1; // held until every member is dispatched
    }
    for (auto& m : p.messages)
        handle_message(std::move(m), batch);
    if (batch && --batch->outstanding == 0 && !batch->replies.empty()) sink_.send(batch->replies);
}

void Dispatcher::reply(const std::shared_ptr<Batch>& batch, json msg) {
    if (!batch) {
        sink_.send(msg);
        return;
    }
    batch->replies.push_back(std::move(msg));
    if (--batch->outstanding == 0) sink_.send(batch->replies);
}

void Dispatcher::handle_message(Message&& m, const std::shared_ptr<Batch>& batch) {
    if (auto* r = std::get_if<Request>(&m)) {
        if (batch) ++batch->outstanding;
        handle_request(std::move(*r), batch);
    } else if (auto* n = std::get_if<Notification>(&m)) {
        handle_notification(std::move(*n));
    } else if (auto* resp = std::get_if<Response>(&m)) {
        handle_response(std::move(*resp));
    } else if (auto* bad = std::get_if<Invalid>(&m)) {
        spdlog::warn("invalid message: {}", bad->error.what());
        if (batch) ++batch->outstanding;
        reply(batch, make_error(bad->id, bad->error));
    }
}

void Dispatcher::handle_request(Request&& r, const std::shared_ptr<Batch>& batch) {
    const auto started = std::chrono::steady_clock::now();
    const std::string key = r.id.dump();
    auto log_done = [started, method = r.method, key](std::string_view outcome) {
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count();
        spdlog::info("{} id={} {} {:.3f}ms", method, key, outcome, us / 1000.0);
    };

    if (r.method == "shutdown" && initialized_) {
        shutdown_ = true;
        log_done("ok");
        reply(batch, make_result(r.id, nullptr));
        return;
    }
    Handler* handler = nullptr;
    if (r.method == "initialize") {
        if (initialized_) {
            reply(batch, make_error(r.id, code::invalid_request, "already initialized"));
            return;
        }
        handler = &initialize_;
    } else if (!initialized_) {
        log_done("rejected: not initialized");
        reply(batch, make_error(r.id, code::server_not_initialized, "server not initialized"));
        return;
    } else if (shutdown_) {
        reply(batch, make_error(r.id, code::invalid_request, "server is shutting down"));
        return;
    } else if (auto it = handlers_.find(r.method); it != handlers_.end()) {
        handler = &it->second;
    }
    if (!handler || !*handler) {
        log_done("method not found");
        reply(batch, make_error(r.id, code::method_not_found, "method not found: " + r.method));
        return;
    }
    if (in_flight_.count(key)) {
        reply(batch, make_error(r.id, code::invalid_request, "duplicate request id " + key));
        return;
    }

    auto flight = std::make_shared<InFlight>();
    in_flight_[key] = flight;
    auto call = std::make_shared<Call>(Call{r.id, r.method, std::move(r.params), *this});
    bool is_initialize = r.method == "initialize";
    auto alive = alive_;

    auto body = [](std::shared_ptr<Call> call, Handler h) -> asio::awaitable<json> {
        co_return co_await h(*call);
    };
    asio::co_spawn(io_, body(call, *handler),
                   asio::bind_cancellation_slot(
                       flight->signal.slot(), [this, alive, key, flight, call, batch, log_done,
                                               is_initialize](std::exception_ptr ep, json result) {
                           if (!*alive) return;
                           in_flight_.erase(key);
                           json msg;
                           if (flight->cancelled) {
                               // Cancelled requests are answered -32800 whatever the handler did.
                               msg = make_error(call->id, code::request_cancelled,
                                                "request cancelled");
                               log_done("cancelled");
                           } else if (!ep) {
                               msg = make_result(call->id, std::move(result));
                               if (is_initialize) initialized_ = true;
                               log_done("ok");
                           } else {
                               try {
                                   std::rethrow_exception(ep);
                               } catch (const RpcError& e) {
                                   msg = make_error(call->id, e);
                                   log_done(fmt::format("error {} {}", e.code, e.what()));
                               } catch (const boost::system::system_error& e) {
                                   msg = make_error(call->id, code::internal_error, e.what());
                                   log_done(fmt::format("internal error: {}", e.what()));
                               } catch (const std::exception& e) {
                                   msg = make_error(call->id, code::internal_error, e.what());
                                   log_done(fmt::format("internal error: {}", e.what()));
                               }
                           }
                           reply(batch, std::move(msg));
                       }));
}

void Dispatcher::handle_notification(Notification&& n) {
    if (n.method == "exit") {
        finish_exit(shutdown_ ? 0 : 1);
        return;
    }
    if (n.method == "$/cancelRequest") {
        if (!n.params.is_object() || !n.params.contains("id")) return;
        auto it = in_flight_.find(n.params["id"].dump());
        if (it == in_flight_.end()) return; // already answered: nothing to do
        spdlog::info("$/cancelRequest id={}", it->first);
        it->second->cancelled = true;
        it->second->signal.emit(asio::cancellation_type::terminal);
        return;
    }
    // Other notifications from the client are ignored (e.g. $/setTrace).
    spdlog::debug("ignored notification {}", n.method);
}

void Dispatcher::handle_response(Response&& r) {
    if (!r.id.is_number_integer()) return;
    auto it = pending_.find(r.id.get<std::int64_t>());
    if (it == pending_.end()) {
        spdlog::warn("response to unknown request id {}", r.id.dump());
        return;
    }
    auto p = it->second;
    pending_.erase(it);
    if (r.error) {
        const json& e = *r.error;
        p->error = RpcError(e.value("code", code::internal_error),
                            e.value("message", std::string("error from client")));
    } else {
        p->result = std::move(r.result);
    }
    p->done.cancel();
}

void Dispatcher::on_eof() {
    for (auto& [id, f] : in_flight_) {
        f->cancelled = true;
        f->signal.emit(asio::cancellation_type::terminal);
    }
    for (auto& [id, p] : pending_) {
        p->error = RpcError(code::internal_error, "client disconnected");
        p->done.cancel();
    }
    pending_.clear();
}

void Dispatcher::finish_exit(int code) {
    if (exit_code_) return;
    exit_code_ = code;
    spdlog::info("exit (code {})", code);
    if (on_exit_) on_exit_(code);
}

void Dispatcher::notify(std::string_view method, json params) {
    sink_.send(make_notification(method, std::move(params)));
}

asio::awaitable<void> Dispatcher::notify_when_ready(std::string_view method, json params) {
    co_await sink_.send_when_ready(make_notification(method, std::move(params)));
}

asio::awaitable<json> Dispatcher::request(std::string_view method, json params,
                                          std::chrono::milliseconds timeout) {
    auto id = next_request_id_++;
    auto p = std::make_shared<Pending>(io_);
    pending_[id] = p;
    p->done.expires_after(timeout);
    sink_.send(make_request(id, method, std::move(params)));
    boost::system::error_code ec;
    co_await p->done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (p->result) co_return std::move(*p->result);
    if (p->error) throw *p->error;
    pending_.erase(id);
    if (ec == asio::error::operation_aborted) // our own caller was cancelled
        throw RpcError(code::request_cancelled, "request cancelled");
    throw RpcError(code::internal_error, std::string(method) + ": no answer from the client");
}

} // namespace cordon::server
