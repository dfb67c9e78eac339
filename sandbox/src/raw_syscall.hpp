// Syscalls that leave errno alone.
//
// The init's spare reapers share its memory (clone with CLONE_VM: no page tables to copy
// per command, none to tear down), and with it the init's thread-local errno. Code that
// runs in a spare - its hardening, the reaper loop, the payload until execve - therefore
// calls the kernel through here and gets -errno back, so the init never sees its errno
// change under it. Async-signal-safe, no allocation.
#pragma once

namespace cordon::sandbox::steps {

inline long raw_syscall(long nr, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0,
                        long f = 0) {
#if defined(__x86_64__)
    register long r10 asm("r10") = d;
    register long r8 asm("r8") = e;
    register long r9 asm("r9") = f;
    long ret;
    asm volatile("syscall"
                 : "=a"(ret)
                 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                 : "rcx", "r11", "memory");
    return ret;
#elif defined(__aarch64__)
    register long x8 asm("x8") = nr;
    register long x0 asm("x0") = a;
    register long x1 asm("x1") = b;
    register long x2 asm("x2") = c;
    register long x3 asm("x3") = d;
    register long x4 asm("x4") = e;
    register long x5 asm("x5") = f;
    asm volatile("svc 0"
                 : "+r"(x0)
                 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                 : "memory", "cc");
    return x0;
#else
#error "cordon-sandbox: raw_syscall is written for x86_64 and aarch64"
#endif
}

// 0 or the errno of a raw_syscall result.
inline int raw_errno(long rc) {
    return rc < 0 && rc > -4096 ? static_cast<int>(-rc) : 0;
}

} // namespace cordon::sandbox::steps
