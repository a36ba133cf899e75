/* Small helpers shared by the socket-API categories (socket, bind, listen,
 * connect, shutdown, fcntl, sockopt). Static, so each category binary is
 * self-contained; everything here FAILs the test on an unexpected error. */
#ifndef PS_API_UTIL_H
#define PS_API_UTIL_H

#include "harness.h"

#include <limits.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define SA(p) ((struct sockaddr *)(p))

static inline int tcp4(void) { return (int)CHECK_OK(socket(AF_INET, SOCK_STREAM, 0)); }
static inline int udp4(void) { return (int)CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0)); }
static inline int tcp6(void) { return (int)CHECK_OK(socket(AF_INET6, SOCK_STREAM, 0)); }
static inline int udp6(void) { return (int)CHECK_OK(socket(AF_INET6, SOCK_DGRAM, 0)); }

static inline int geti(int fd, int level, int opt) {
    int v = 0;
    socklen_t l = sizeof v;
    if (getsockopt(fd, level, opt, &v, &l) < 0)
        FAIL("getsockopt(%d, %d): %s", level, opt, strerrorname_np(errno));
    if (l != sizeof v) FAIL("getsockopt(%d, %d): optlen %u", level, opt, (unsigned)l);
    return v;
}
static inline void seti(int fd, int level, int opt, int v) {
    if (setsockopt(fd, level, opt, &v, sizeof v) < 0)
        FAIL("setsockopt(%d, %d, %d): %s", level, opt, v, strerrorname_np(errno));
}
static inline int seti_r(int fd, int level, int opt, int v) {
    return setsockopt(fd, level, opt, &v, sizeof v);
}

static inline void set_nonblock(int fd, int on) {
    int fl = (int)CHECK_OK(fcntl(fd, F_GETFL));
    CHECK_OK(fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK));
}

/* poll one fd; returns revents (0 on timeout). */
static inline int pollfd1(int fd, short events, int ms) {
    struct pollfd p = {.fd = fd, .events = events};
    int r;
    do r = poll(&p, 1, ms); while (r < 0 && errno == EINTR);
    if (r < 0) FAIL("poll: %s", strerrorname_np(errno));
    return r ? p.revents : 0;
}
/* Wait until fd is readable or FAIL. */
static inline void wait_readable(int fd, int ms) {
    if (!(pollfd1(fd, POLLIN, ms) & (POLLIN | POLLERR | POLLHUP)))
        FAIL("fd %d not readable after %d ms", fd, ms);
}

static inline struct sockaddr_in sin_any(uint16_t port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    return a;
}
static inline struct sockaddr_in local4(uint16_t port) { return ps_sin(ps_local4(), port); }
static inline struct sockaddr_in peer4(uint16_t port) { return ps_sin(ps_peer4(), port); }
static inline struct sockaddr_in lo4(uint16_t port) { return ps_sin("127.0.0.1", port); }

static inline void bind4(int fd, struct sockaddr_in a) {
    if (bind(fd, SA(&a), sizeof a) < 0) {
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
        FAIL("bind %s:%u: %s", ip, ntohs(a.sin_port), strerrorname_np(errno));
    }
}
static inline int bind4_r(int fd, struct sockaddr_in a) { return bind(fd, SA(&a), sizeof a); }
static inline int connect4_r(int fd, struct sockaddr_in a) { return connect(fd, SA(&a), sizeof a); }

static inline struct sockaddr_in sockname4(int fd) {
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    CHECK_OK(getsockname(fd, SA(&a), &l));
    CHECK_EQ(l, sizeof a);
    return a;
}
static inline struct sockaddr_in peername4(int fd) {
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    CHECK_OK(getpeername(fd, SA(&a), &l));
    CHECK_EQ(l, sizeof a);
    return a;
}
static inline int sin_is(struct sockaddr_in a, const char *ip) {
    struct in_addr x;
    if (inet_pton(AF_INET, ip, &x) != 1) FAIL("bad ip %s", ip);
    return a.sin_family == AF_INET && a.sin_addr.s_addr == x.s_addr;
}
#define CHECK_SIN(a, ip, port)                                                  \
    do { struct sockaddr_in s_ = (a); char b_[INET_ADDRSTRLEN];                  \
         inet_ntop(AF_INET, &s_.sin_addr, b_, sizeof b_);                        \
         int want_ = (port);                                                     \
         if (!sin_is(s_, ip) || (want_ >= 0 && ntohs(s_.sin_port) != want_))     \
             FAIL("%s is %s:%u (family %d), expected %s:%d", #a, b_,             \
                  ntohs(s_.sin_port), s_.sin_family, ip, (int)(port)); } while (0)

/* A TCP listener on this side's address (kernel or shunt), ephemeral port. */
static inline int listen_local(int backlog) { return ps_tcp_listen4(ps_local4(), 0, backlog); }

/* A connected pair over this side's own address: *cli connected to a
 * listener on PS_LOCAL4, *srv the accepted end. */
static inline void local_pair(int *cli, int *srv) {
    int l = listen_local(4);
    *cli = ps_tcp_connect4(ps_local4(), ps_local_port(l));
    *srv = (int)CHECK_OK(accept(l, NULL, NULL));
    close(l);
}
/* The same over the kernel's loopback. */
static inline void lo_pair(int *cli, int *srv) {
    int l = ps_tcp_listen4("127.0.0.1", 0, 4);
    *cli = ps_tcp_connect4("127.0.0.1", ps_local_port(l));
    *srv = (int)CHECK_OK(accept(l, NULL, NULL));
    close(l);
}

/* Connect to a peer service over IPv4. */
static inline int peer_tcp(uint16_t port) { return ps_tcp_connect4(ps_peer4(), port); }

/* Read exactly len bytes, waiting at most ms for each chunk. */
static inline void read_exact_ms(int fd, void *buf, size_t len, int ms) {
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        if (!(pollfd1(fd, POLLIN, ms) & (POLLIN | POLLHUP | POLLERR)))
            FAIL("timed out after %zu of %zu bytes", got, len);
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n < 0) FAIL("read: %s after %zu of %zu bytes", strerrorname_np(errno), got, len);
        if (n == 0) FAIL("read: EOF after %zu of %zu bytes", got, len);
        got += (size_t)n;
    }
}
/* Send and read back through the peer's ECHO service. */
static inline void echo_roundtrip(int fd, const char *msg) {
    size_t n = strlen(msg);
    char buf[256];
    if (n > sizeof buf) FAIL("message too long");
    ps_write_all(fd, msg, n);
    read_exact_ms(fd, buf, n, 3000);
    if (memcmp(buf, msg, n)) FAIL("echo mismatch");
}
/* Read until EOF (at most cap bytes), each wait bounded; returns the count. */
static inline size_t read_to_eof(int fd, char *buf, size_t cap, int ms) {
    size_t got = 0;
    for (;;) {
        if (!(pollfd1(fd, POLLIN, ms) & (POLLIN | POLLHUP | POLLERR)))
            FAIL("no EOF within %d ms (%zu bytes read)", ms, got);
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) FAIL("read: %s after %zu bytes", strerrorname_np(errno), got);
        if (n == 0) return got;
        got += (size_t)n;
        if (got == cap) FAIL("more than %zu bytes before EOF", cap);
    }
}
static inline long read_proc_long(const char *path, int field) {
    FILE *f = fopen(path, "r");
    if (!f) FAIL("open %s: %s", path, strerror(errno));
    long v = 0;
    for (int i = 0; i <= field; i++)
        if (fscanf(f, "%ld", &v) != 1) FAIL("parse %s", path);
    fclose(f);
    return v;
}
/* Elapsed-time check with slack for a loaded machine. */
#define CHECK_ELAPSED(t0, lo_ms, hi_ms)                                         \
    do { long e_ = ps_now_ms() - (t0);                                          \
         if (e_ < (lo_ms) || e_ > (hi_ms))                                       \
             FAIL("took %ld ms, expected %d..%d", e_, (int)(lo_ms), (int)(hi_ms)); \
    } while (0)

#endif
