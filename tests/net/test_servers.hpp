// Test fixtures for the network tests: a self-signed test CA generated at run time, an
// origin HTTP(S) server, a proxy fixture (EgressGate + ProxyServer on their own io thread),
// and a helper running client commands (curl, python3). Everything listens on 127.0.0.1.
#pragma once

#include "cordon/server/net/egress.hpp"
#include "cordon/server/net/fetch.hpp"
#include "cordon/server/net/proxy.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cordon::test {

namespace asio = boost::asio;
using namespace cordon::server::net;

// A test CA and a server certificate for allowed.test, *.example.test, localhost,
// 127.0.0.1, generated once per process with the openssl CLI into a temp dir.
struct TestCerts {
    std::string dir, ca_pem, cert_pem, key_pem;
    static const TestCerts& get();
};

// A listening socket on 127.0.0.1:0 (fd owned by the caller).
int listen_loopback(std::uint16_t* port = nullptr);

// One io_context run by a background thread; everything of a test lives on it.
struct IoThread {
    IoThread();
    ~IoThread();
    asio::io_context io;
    // Runs `f` on the io thread and waits for it.
    void sync(std::function<void()> f);
    template <class T> T get(std::function<T()> f) {
        T out{};
        sync([&] { out = f(); });
        return out;
    }

  private:
    std::thread thread_;
    std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>> work_;
};

// Origin server. Routes: /hello, /echo (method, target, headers, body), /bytes?n=N (binary),
// /utf8?n=N, /html, /redirect?to=URL (302), /slow (never answers), anything else 404.
class OriginServer {
  public:
    OriginServer(asio::io_context& io, bool tls);
    ~OriginServer();
    std::uint16_t port() const { return port_; }
    std::atomic<int> requests{0};
    struct Impl;

  private:
    std::shared_ptr<Impl> impl_;
    std::uint16_t port_ = 0;
};

// An EgressGate + ProxyServer (one HTTP/CONNECT listener, one SOCKS5 listener).
struct ProxyFixture {
    ProxyFixture(IoThread& t, std::vector<std::string> allow, std::vector<std::string> deny,
                 ProxyLimits limits = {}, EgressOptions opts = {});
    ~ProxyFixture();

    IoThread& t;
    std::shared_ptr<EgressGate> gate;
    std::unique_ptr<ProxyServer> proxy;
    std::uint16_t http_port = 0, socks_port = 0;

    // Name -> addresses used by the resolver hook; "localhost" goes to the system
    // resolver (/etc/hosts); any other name fails without any DNS traffic.
    std::map<std::string, std::vector<Address>> names;
    std::atomic<int> resolver_calls{0};

    // The user's answers.
    std::function<Decision(const ApprovalQuestion&)> answer = [](auto&) { return Decision::deny; };
    std::chrono::milliseconds ask_delay{0};
    std::atomic<int> asks{0};

    std::mutex m;
    std::vector<ApprovalQuestion> questions;
    std::vector<json> violations;
    std::vector<RequestRecord> records;

    std::vector<json> violations_copy() {
        std::lock_guard lk(m);
        return violations;
    }
    // The request log; waits up to 2 s for at least `n` records (a record is written when
    // its connection ends, which may be just after the client saw the response).
    std::vector<RequestRecord> records_copy(std::size_t n = 1) {
        for (int i = 0; i < 200; ++i) {
            {
                std::lock_guard lk(m);
                if (records.size() >= n) break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        std::lock_guard lk(m);
        return records;
    }
    std::vector<ApprovalQuestion> questions_copy() {
        std::lock_guard lk(m);
        return questions;
    }
    std::uint64_t lookups() {
        return t.get<std::uint64_t>([&] { return gate->lookups(); });
    }
    std::string http_proxy() const { return "http://127.0.0.1:" + std::to_string(http_port); }
    std::string socks_proxy() const { return "127.0.0.1:" + std::to_string(socks_port); }
};

struct CommandResult {
    int status = -1; // exit code
    std::string out; // stdout
};
// Runs a shell command (stdout captured; stderr to /dev/null unless redirected).
CommandResult run(const std::string& cmd);

// A raw exchange: connects to 127.0.0.1:port, sends `data`, reads until EOF or timeout.
std::string raw_exchange(std::uint16_t port, const std::string& data,
                         std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

} // namespace cordon::test
