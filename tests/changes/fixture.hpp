// A real overlay for changes tests: <base>/ws is the real workspace (lowerdir), <base>/state
// holds upper/ and work/, <base>/sbroot stands in for the sandbox's root directory with the
// overlay mounted at <base>/sbroot/<base>/ws (the same absolute path inside), and
// <base>/fakehome is a directory outside the workspace that attacks aim at.
// Needs CAP_SYS_ADMIN in the current user namespace: as root it mounts directly; otherwise
// the test process first moves itself into a new user + mount namespace (as `unshare -Urm`
// would), so the tests run unprivileged too (needs unprivileged user namespaces).
#pragma once

#include "cordon/server/changes/context.hpp"
#include "cordon/server/changes/diff.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace cordon_test {

namespace fs = std::filesystem;

inline std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline void spit(const fs::path& p, const std::string& data) {
    fs::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << data;
}

inline int run(const std::string& cmd) {
    int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// Once per process: become root of a private user + mount namespace unless already root.
inline void ensure_mount_capability() {
    static bool done = false;
    if (done || ::geteuid() == 0) return;
    done = true;
    uid_t uid = ::geteuid();
    gid_t gid = ::getegid();
    REQUIRE(::unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0);
    auto put = [](const char* file, const std::string& text) {
        int fd = ::open(file, O_WRONLY | O_CLOEXEC);
        REQUIRE(fd >= 0);
        REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
        ::close(fd);
    };
    put("/proc/self/setgroups", "deny");
    put("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1");
    put("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1");
    ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
}

struct Overlay {
    fs::path base, ws, fakehome, state, upper, work, sbroot, merged;
    int root_fd = -1;
    bool mounted = false;

    Overlay() {
        ensure_mount_capability();
        char tmpl[] = "/tmp/chtest.XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        base = fs::canonical(tmpl);
        ws = base / "ws";
        fakehome = base / "fakehome";
        state = base / "state";
        upper = state / "upper";
        work = state / "work";
        sbroot = base / "sbroot";
        merged = sbroot / ws.relative_path();
        for (const auto& d : {ws, fakehome, upper, work, merged})
            fs::create_directories(d);
        spit(fakehome / ".bashrc", "# the user's real bashrc\n");
        root_fd = ::open(sbroot.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
        REQUIRE(root_fd >= 0);
    }
    ~Overlay() {
        unmount();
        if (root_fd >= 0) ::close(root_fd);
        std::error_code ec;
        fs::remove_all(base, ec);
    }

    void mount() {
        std::string opts = "lowerdir=" + ws.string() + ",upperdir=" + upper.string() +
                           ",workdir=" + work.string() + ",userxattr";
        int rc = ::mount("overlay", merged.c_str(), "overlay", 0, opts.c_str());
        INFO("mount overlay: " << std::strerror(errno));
        REQUIRE(rc == 0);
        mounted = true;
    }
    void unmount() {
        if (mounted) {
            ::umount2(merged.c_str(), MNT_DETACH);
            mounted = false;
        }
    }
    void remount() {
        unmount();
        mount();
    }

    cordon::server::changes::SessionFiles files(bool with_view = true) const {
        return {ws.string(), with_view ? root_fd : -1, upper, state};
    }

    // The real workspace and the sandbox's view.
    fs::path real(const std::string& rel) const { return ws / rel; }
    fs::path sb(const std::string& rel) const { return merged / rel; }
};

inline bool is_root() {
    return ::geteuid() == 0;
}

// The change for `path` in a diff, or nullptr.
inline const cordon::server::changes::FileChange* find(const cordon::server::changes::ChangeSet& c,
                                                       const std::string& path) {
    for (const auto& f : c.files)
        if (f.path == path) return &f;
    return nullptr;
}

} // namespace cordon_test
