// Landlock, built once in the init (in the final mount view) and enforced per payload with
// landlock_restrict_self. Reads and execution anywhere in the (already minimal) view; writes
// only beneath the workspace, /tmp, the private home, /dev/shm, the policy's allow_write and
// the few /dev nodes. Every right the running kernel's ABI knows is handled; abstract unix
// sockets and signals are scoped to the payload's domain from ABI 6.
#include "raw_syscall.hpp"
#include "steps.hpp"

#include <cerrno>
#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace cordon::sandbox::steps {
namespace {

struct RulesetAttr { // the ABI 6 layout; older kernels are given a shorter size
    std::uint64_t handled_access_fs;
    std::uint64_t handled_access_net;
    std::uint64_t scoped;
};
struct PathBeneath {
    std::uint64_t allowed_access;
    std::int32_t parent_fd;
} __attribute__((packed));

constexpr std::uint64_t kTruncate = 1ull << 14; // ABI 3
constexpr std::uint64_t kIoctlDev = 1ull << 15; // ABI 5
constexpr std::uint64_t kScopeAbstractUnix = 1ull << 0;
constexpr std::uint64_t kScopeSignal = 1ull << 1;
constexpr std::uint64_t kRead = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;

std::uint64_t fs_rights(int abi) {
    std::uint64_t r = (1ull << 13) - 1; // ABI 1: EXECUTE .. MAKE_SYM
    if (abi >= 2) r |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3) r |= kTruncate;
    if (abi >= 5) r |= kIoctlDev;
    return r;
}

} // namespace

int landlock_abi() {
    long abi = syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi < 0 ? 0 : static_cast<int>(abi);
}

std::variant<LandlockRuleset, SetupError> build_landlock(const std::vector<std::string>& writable) {
    LandlockRuleset rs;
    rs.abi = landlock_abi();
    if (rs.abi <= 0)
        return failure("landlock", EOPNOTSUPP, "",
                       "boot with Landlock enabled (CONFIG_SECURITY_LANDLOCK=y and "
                       "lsm=landlock,lockdown,yama,integrity,apparmor,bpf), or set "
                       "require_landlock=false to accept running without it");
    const std::uint64_t all = fs_rights(rs.abi);
    RulesetAttr attr{all, 0, rs.abi >= 6 ? (kScopeAbstractUnix | kScopeSignal) : 0};
    std::size_t size = rs.abi >= 6 ? sizeof(RulesetAttr) : rs.abi >= 4 ? 16 : 8;
    int fd = static_cast<int>(syscall(SYS_landlock_create_ruleset, &attr, size, 0));
    if (fd < 0) return failure("landlock", errno, "", "landlock_create_ruleset failed");
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    auto add = [&](const std::string& path, std::uint64_t access) -> int {
        int dir = open(path.c_str(), O_PATH | O_CLOEXEC);
        if (dir < 0) return errno == ENOENT ? 0 : errno;
        PathBeneath pb{access & all, dir};
        long rc = syscall(SYS_landlock_add_rule, fd, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
        int e = rc == 0 ? 0 : errno;
        close(dir);
        return e;
    };
    struct Rule {
        std::string path;
        std::uint64_t access;
    };
    std::vector<Rule> rules = {
        {"/", kRead | LANDLOCK_ACCESS_FS_EXECUTE},
        {"/dev", kRead | LANDLOCK_ACCESS_FS_WRITE_FILE | kTruncate | kIoctlDev},
        {"/proc", kRead | LANDLOCK_ACCESS_FS_WRITE_FILE},
    };
    for (const auto& w : writable)
        rules.push_back({w, all});
    for (const auto& r : rules) {
        if (int e = add(r.path, r.access)) {
            close(fd);
            return failure("landlock", e, r.path);
        }
    }
    rs.fd = fd;
    return rs;
}

int apply_landlock(const LandlockRuleset& rs) {
    if (rs.fd < 0) return 0;
    return raw_errno(raw_syscall(SYS_landlock_restrict_self, rs.fd, 0)); // errno untouched
}

} // namespace cordon::sandbox::steps
