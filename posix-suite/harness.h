/* posix-suite harness: each category is one C file of TEST()s, linked with
 * harness.c into one binary. Every test runs in its own forked child with
 * a time limit, so a crash, a hang or a leaked fd cannot touch the next.
 *
 *   ./build/<category> --list           name<TAB>description<TAB>reference
 *   ./build/<category> [NAME...]        run all (or the named) tests:
 *                                       "PASS name" / "FAIL name: reason"
 *
 * The environment (set by run.py) says where the peers are:
 *   PS_LOCAL4 / PS_LOCAL6   this side's address (kernel on Linux, shunt's)
 *   PS_PEER4  / PS_PEER6    the peer namespace, which runs peer.py
 */
#ifndef PS_HARNESS_H
#define PS_HARNESS_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Peer services (peer.py), on PS_PEER4 and PS_PEER6. */
#define PORT_ECHO 7001       /* TCP and UDP: echo everything back */
#define PORT_DISCARD 7002    /* TCP: read and drop until EOF, then close */
#define PORT_RESET 7003      /* TCP: accept, then close with SO_LINGER {1,0} (RST) */
#define PORT_SOURCE 7004     /* TCP: send 1 MiB (byte i = i % 251), then close */
#define PORT_HOLD 7005       /* TCP: accept, never read, close when the client does */
#define PORT_COUNT 7006      /* TCP: read until EOF, reply "bytes=N\n", close */
#define PORT_CALLBACK 7009   /* TCP: "CONNECT <port> <count>\n": peer connects back */
#define PORT_BLACKHOLE 7010  /* TCP: SYNs silently dropped (connect never completes) */
#define PORT_CLOSED 7999     /* TCP and UDP: nothing listens (RST / ICMP port unreachable) */
#define SOURCE_BYTES (1 << 20)

typedef void (*ps_fn)(void);
void ps_register(const char *name, const char *desc, const char *ref, ps_fn fn, int timeout_s);

/* TEST(name, "one-line behaviour", "man page or RFC section") { body } */
#define TEST_T(name, desc, ref, timeout_s)                                      \
    static void test_##name(void);                                              \
    __attribute__((constructor)) static void reg_##name(void) {                 \
        ps_register(#name, desc, ref, test_##name, timeout_s);                  \
    }                                                                           \
    static void test_##name(void)
#define TEST(name, desc, ref) TEST_T(name, desc, ref, 10)

/* Failing ends the test's child process with the reason. */
void ps_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
#define FAIL(...) ps_fail(__FILE__, __LINE__, __VA_ARGS__)
#define CHECK(cond)                                                             \
    do { if (!(cond)) FAIL("check failed: %s (errno %d %s)", #cond, errno,      \
                           strerror(errno)); } while (0)
/* CHECK_ERR(call, E): call returns -1 with errno E. */
#define CHECK_ERR(call, E)                                                      \
    do { errno = 0; long r_ = (long)(call);                                     \
         if (r_ != -1 || errno != (E))                                          \
             FAIL("%s: expected -1/%s, got %ld/%s", #call, #E, r_,               \
                  strerrorname_np(errno) ? strerrorname_np(errno) : "0");        \
    } while (0)
/* CHECK_OK(call): call returns >= 0; evaluates to the result. */
#define CHECK_OK(call)                                                          \
    ({ errno = 0; long r_ = (long)(call);                                       \
       if (r_ < 0) FAIL("%s failed: %s", #call,                                 \
                        strerrorname_np(errno) ? strerrorname_np(errno) : "?"); \
       r_; })
#define CHECK_EQ(a, b)                                                          \
    do { long a_ = (long)(a), b_ = (long)(b);                                   \
         if (a_ != b_) FAIL("%s == %s: %ld != %ld", #a, #b, a_, b_); } while (0)

/* Addresses from the environment. */
const char *ps_local4(void);
const char *ps_peer4(void);
const char *ps_local6(void);
const char *ps_peer6(void);
struct sockaddr_in ps_sin(const char *ip, uint16_t port);
struct sockaddr_in6 ps_sin6(const char *ip, uint16_t port);

/* Helpers that FAIL on error. */
int ps_tcp_connect4(const char *ip, uint16_t port);  /* blocking connect */
int ps_tcp_connect6(const char *ip, uint16_t port);
int ps_tcp_listen4(const char *ip, uint16_t port, int backlog); /* port 0 ok */
uint16_t ps_local_port(int fd);
void ps_write_all(int fd, const void *buf, size_t len);
void ps_read_exact(int fd, void *buf, size_t len);
/* Connect to peer's CALLBACK service and ask it to open `count`
 * connections back to this side's `port` (on IPv6 if v6). Returns the
 * control fd; keep it open while the connections are in use. */
int ps_callback(int v6, uint16_t port, int count);
/* Milliseconds on CLOCK_MONOTONIC. */
long ps_now_ms(void);
void ps_sleep_ms(long ms);

#endif
