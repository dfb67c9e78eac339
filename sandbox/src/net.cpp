// The session's network namespace: only `lo`, up. The network proxy's listening sockets are
// created here, inside the namespace, and handed to the server (DESIGN decision 5).
#include "steps.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace cordon::sandbox::steps {

Result enter_net_namespace() {
    if (unshare(CLONE_NEWNET) != 0) return failure("netns", errno, "", userns_fix(errno));
    return std::nullopt;
}

Result join_net_namespace(int fd) {
    if (setns(fd, CLONE_NEWNET) != 0) return failure("netns", errno, "setns");
    return std::nullopt;
}

Result bring_up_loopback() {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return failure("net-lo", errno);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    int err = 0;
    if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
        err = errno;
    } else {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) err = errno;
    }
    close(s);
    if (err) return failure("net-lo", err, "lo");
    return std::nullopt;
}

Result set_hostname(const char* name) {
    if (sethostname(name, std::strlen(name)) != 0) return failure("uts", errno);
    return std::nullopt;
}

std::variant<std::vector<int>, SetupError> open_listeners(const std::vector<std::uint16_t>& ports) {
    std::vector<int> fds;
    for (auto port : ports) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
            bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(s, 128) != 0) {
            int e = errno;
            if (s >= 0) close(s);
            for (int f : fds)
                close(f);
            return failure("listen", e, "127.0.0.1:" + std::to_string(port));
        }
        fds.push_back(s);
    }
    return fds;
}

} // namespace cordon::sandbox::steps
