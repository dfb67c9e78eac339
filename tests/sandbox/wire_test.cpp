// Control-message encoding: round trips, fds, and hostile input.
#include "cordon/sandbox/wire.hpp"

#include <catch2/catch.hpp>
#include <csignal>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace cordon::sandbox;

TEST_CASE("every control message round-trips", "[sandbox][unit][wire]") {
    ExecRequest req;
    req.id = 0x1234567890abcdefull;
    req.argv = {"/bin/sh", "-c", std::string("a\0b", 3), ""};
    req.env = {{"A", "1"}, {"EMPTY", ""}};
    req.cwd = "/ws/sub dir";
    req.limits.memory_bytes = 1ull << 33;
    req.limits.max_processes = 7;
    req.limits.cpu_seconds = 3;
    auto back = wire::decode_control(wire::encode(ControlMessage{req}));
    REQUIRE(back);
    auto& r = std::get<ExecRequest>(*back);
    CHECK(r.id == req.id);
    CHECK(r.argv == req.argv);
    CHECK(r.env == req.env);
    CHECK(r.cwd == req.cwd);
    CHECK(r.limits.memory_bytes == req.limits.memory_bytes);
    CHECK(r.limits.max_processes == 7);
    CHECK(r.limits.cpu_seconds == 3);
    CHECK(r.limits.open_files == req.limits.open_files);

    ExecExited ex{9, 0x8b00, "memory-limit", "exec x: nope"};
    auto e = std::get<ExecExited>(*wire::decode_control(wire::encode(ControlMessage{ex})));
    CHECK(e.id == 9);
    CHECK(e.wait_status == 0x8b00);
    CHECK(e.reason == "memory-limit");
    CHECK(e.error == "exec x: nope");
    CHECK(std::get<KillRequest>(*wire::decode_control(wire::encode(ControlMessage{KillRequest{5}})))
              .id == 5);
    FsViolation fv{11, "mkdir", "/usr/x", 3};
    auto f = std::get<FsViolation>(*wire::decode_control(wire::encode(ControlMessage{fv})));
    CHECK(f.id == 11);
    CHECK(f.operation == "mkdir");
    CHECK(f.path == "/usr/x");
    CHECK(f.more == 3);
}

TEST_CASE("the status pipe reader: error records, then the wait status", "[sandbox][unit][wire]") {
    StatusReader r;
    std::string e = "E";
    std::uint16_t len = 9;
    e.append(reinterpret_cast<const char*>(&len), 2);
    e += "exec x: y";
    int status = SIGXCPU; // killed by the CPU rlimit
    std::string s = "S" + std::string(reinterpret_cast<const char*>(&status), sizeof status);
    std::string all = e + s;
    // Fed a byte at a time: nothing until the status is complete.
    for (std::size_t i = 0; i + 1 < all.size(); ++i)
        CHECK(!r.feed(all.substr(i, 1)));
    auto done = r.feed(all.substr(all.size() - 1));
    REQUIRE(done);
    CHECK(done->wait_status == SIGXCPU);
    CHECK(done->reason == "cpu-limit");
    CHECK(done->error == "exec x: y");
    CHECK(r.error() == "exec x: y");
}

TEST_CASE("spec and setup replies round-trip", "[sandbox][unit][wire]") {
    SandboxSpec s;
    s.workspace = "/ws";
    s.state_dir = "/st";
    s.host_home = "/home/u";
    s.filesystem.deny_read = {"~/.x"};
    s.filesystem.allow_read = {"/a", "/b"};
    s.filesystem.allow_write = {"~/.cache"};
    s.env = {{"K", "V"}};
    s.tmp_size_bytes = 42;
    s.listen_ports = {8080, 1};
    s.require_landlock = false;
    auto d = wire::decode_spec(wire::encode(s));
    REQUIRE(d);
    CHECK(d->workspace == "/ws");
    CHECK(d->filesystem.allow_read == s.filesystem.allow_read);
    CHECK(d->filesystem.allow_write == s.filesystem.allow_write);
    CHECK(d->env == s.env);
    CHECK(d->tmp_size_bytes == 42);
    CHECK(d->listen_ports == s.listen_ports);
    CHECK_FALSE(d->require_landlock);

    InitReady ready{6, false, {"n1", "n2"}};
    auto r = wire::decode_setup_reply(wire::encode(wire::SetupReply{ready}));
    REQUIRE(r);
    CHECK(std::get<InitReady>(*r).landlock_abi == 6);
    CHECK(std::get<InitReady>(*r).notes == ready.notes);
    SetupError err;
    err.step = "overlay";
    err.err = 22;
    err.path = "/ws";
    err.fix = "do x";
    auto e = std::get<SetupError>(*wire::decode_setup_reply(wire::encode(wire::SetupReply{err})));
    CHECK(e.step == "overlay");
    CHECK(e.err == 22);
    CHECK(e.message() == "overlay: Invalid argument (/ws); fix: do x");
}

TEST_CASE("malformed datagrams decode to nothing", "[sandbox][unit][wire]") {
    CHECK_FALSE(wire::decode_control(""));
    CHECK_FALSE(wire::decode_control(std::string(1, '\x7f')));
    std::string good = wire::encode(ControlMessage{ExecRequest{1, {"a"}, {}, "/", {}}});
    for (std::size_t cut = 0; cut < good.size(); ++cut)
        CHECK_FALSE(wire::decode_control(good.substr(0, cut)));
    CHECK_FALSE(wire::decode_control(good + "x")); // trailing garbage
    // A huge element count with no bytes behind it must not allocate or crash.
    std::string huge = std::string(1, '\x01') + std::string(8, '\0') + "\xff\xff\xff\xff";
    CHECK_FALSE(wire::decode_control(huge));
    CHECK_FALSE(wire::decode_spec(wire::encode(ControlMessage{KillRequest{1}})));
}

TEST_CASE("send_control / recv_control carry fds over SOCK_SEQPACKET", "[sandbox][unit][wire]") {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    int p[2];
    REQUIRE(pipe(p) == 0);
    ExecRequest req;
    req.id = 3;
    req.argv = {"true"};
    REQUIRE(send_control(sv[0], req, {p[0], p[1], p[1]}) == 0);
    std::vector<int> fds;
    int err = -1;
    auto msg = recv_control(sv[1], fds, err);
    REQUIRE(msg);
    CHECK(std::get<ExecRequest>(*msg).id == 3);
    REQUIRE(fds.size() == 3);
    for (int f : fds) {
        CHECK((fcntl(f, F_GETFD) & FD_CLOEXEC) != 0);
        close(f);
    }
    close(sv[0]);
    msg = recv_control(sv[1], fds, err);
    CHECK_FALSE(msg);
    CHECK(err == 0); // EOF
    close(sv[1]);
    close(p[0]);
    close(p[1]);
}
