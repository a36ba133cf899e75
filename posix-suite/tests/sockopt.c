/* getsockopt/setsockopt with Linux's quirks: buffer doubling and clamps,
 * read-only identity options, SO_ERROR, keepalive and TCP options, IP_TTL,
 * IP_TOS, timeouts, SO_BROADCAST, and the errors for unknown options and
 * short option lengths. */
#include "api_util.h"

#include <linux/sockios.h>
#include <net/if.h>

/* glibc's struct tcp_info stops at tcpi_total_retrans; the kernel's goes on. */
struct tcp_info_ext {
    struct tcp_info base;
    uint64_t pacing_rate, max_pacing_rate, bytes_acked, bytes_received;
    uint32_t segs_out, segs_in;
};

static long proc(const char *path, int field) { return read_proc_long(path, field); }

static struct tcp_info tinfo(int fd) {
    struct tcp_info ti;
    socklen_t l = sizeof ti;
    memset(&ti, 0, sizeof ti);
    CHECK_OK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l));
    return ti;
}

static void set_tv(int fd, int opt, long sec, long usec) {
    struct timeval tv = {sec, usec};
    CHECK_OK(setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv));
}

/* --- identity ----------------------------------------------------------- */

TEST(so_type, "SO_TYPE is SOCK_STREAM / SOCK_DGRAM", "socket(7) SO_TYPE") {
    CHECK_EQ(geti(tcp4(), SOL_SOCKET, SO_TYPE), SOCK_STREAM);
    CHECK_EQ(geti(udp4(), SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
}

TEST(so_type_flags_stripped, "SO_TYPE does not include SOCK_NONBLOCK|SOCK_CLOEXEC", "socket(7) SO_TYPE") {
    int fd = (int)CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_TYPE), SOCK_STREAM);
}

TEST(so_domain, "SO_DOMAIN is AF_INET / AF_INET6", "socket(7) SO_DOMAIN") {
    CHECK_EQ(geti(tcp4(), SOL_SOCKET, SO_DOMAIN), AF_INET);
    CHECK_EQ(geti(udp6(), SOL_SOCKET, SO_DOMAIN), AF_INET6);
}

TEST(so_protocol, "SO_PROTOCOL is IPPROTO_TCP / IPPROTO_UDP even when created with 0", "socket(7) SO_PROTOCOL") {
    CHECK_EQ(geti(tcp6(), SOL_SOCKET, SO_PROTOCOL), IPPROTO_TCP);
    CHECK_EQ(geti(udp4(), SOL_SOCKET, SO_PROTOCOL), IPPROTO_UDP);
}

TEST(identity_read_only, "SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ACCEPTCONN cannot be set: ENOPROTOOPT", "socket(7)") {
    int fd = tcp4();
    CHECK_ERR(seti_r(fd, SOL_SOCKET, SO_TYPE, SOCK_DGRAM), ENOPROTOOPT);
    CHECK_ERR(seti_r(fd, SOL_SOCKET, SO_DOMAIN, AF_INET6), ENOPROTOOPT);
    CHECK_ERR(seti_r(fd, SOL_SOCKET, SO_PROTOCOL, 0), ENOPROTOOPT);
    CHECK_ERR(seti_r(fd, SOL_SOCKET, SO_ACCEPTCONN, 1), ENOPROTOOPT);
}

TEST(so_acceptconn, "SO_ACCEPTCONN is 1 only while listening", "socket(7) SO_ACCEPTCONN") {
    int fd = tcp4();
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_ACCEPTCONN), 0);
    bind4(fd, local4(0));
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_ACCEPTCONN), 0);
    CHECK_OK(listen(fd, 1));
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_ACCEPTCONN), 1);
    CHECK_EQ(geti(udp4(), SOL_SOCKET, SO_ACCEPTCONN), 0);
    CHECK_EQ(geti(peer_tcp(PORT_ECHO), SOL_SOCKET, SO_ACCEPTCONN), 0);
}

/* --- SO_ERROR ------------------------------------------------------------- */

TEST(so_error_fresh, "SO_ERROR of a new or healthy socket is 0", "socket(7) SO_ERROR") {
    CHECK_EQ(geti(tcp4(), SOL_SOCKET, SO_ERROR), 0);
    CHECK_EQ(geti(peer_tcp(PORT_ECHO), SOL_SOCKET, SO_ERROR), 0);
}

TEST(so_error_read_clears, "reading SO_ERROR returns the pending error once and clears it", "socket(7) SO_ERROR") {
    int fd = (int)CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    CHECK_ERR(connect4_r(fd, peer4(PORT_CLOSED)), EINPROGRESS);
    pollfd1(fd, POLLOUT, 3000);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_ERROR), ECONNREFUSED);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_ERROR), 0);
}

TEST(so_error_udp_icmp, "a connected UDP socket's SO_ERROR is ECONNREFUSED after port unreachable, then 0", "udp(7), socket(7) SO_ERROR") {
    int fd = udp4();
    CHECK_OK(connect4_r(fd, peer4(PORT_CLOSED)));
    CHECK_EQ(send(fd, "x", 1, 0), 1);
    CHECK(pollfd1(fd, POLLIN, 3000) & POLLERR);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_ERROR), ECONNREFUSED);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_ERROR), 0);
    CHECK_EQ(pollfd1(fd, POLLIN, 0), 0);
}

TEST(so_error_reset, "after the peer's RST, SO_ERROR is ECONNRESET", "socket(7) SO_ERROR, tcp(7)") {
    int fd = peer_tcp(PORT_RESET);
    wait_readable(fd, 3000);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_ERROR), ECONNRESET);
    char c;
    CHECK_EQ(read(fd, &c, 1), 0); /* the error was consumed */
}

TEST(so_error_read_only, "SO_ERROR cannot be set: ENOPROTOOPT", "socket(7) SO_ERROR") {
    CHECK_ERR(seti_r(tcp4(), SOL_SOCKET, SO_ERROR, 1), ENOPROTOOPT);
}

/* --- buffers -------------------------------------------------------------- */

TEST(rcvbuf_default_tcp, "a new TCP socket's SO_RCVBUF is tcp_rmem[1]", "tcp(7) tcp_rmem") {
    CHECK_EQ(geti(tcp4(), SOL_SOCKET, SO_RCVBUF), proc("/proc/sys/net/ipv4/tcp_rmem", 1));
}

TEST(sndbuf_default_tcp, "a new TCP socket's SO_SNDBUF is tcp_wmem[1]", "tcp(7) tcp_wmem") {
    CHECK_EQ(geti(tcp4(), SOL_SOCKET, SO_SNDBUF), proc("/proc/sys/net/ipv4/tcp_wmem", 1));
}

TEST(bufs_default_udp, "a new UDP socket's buffers are rmem_default / wmem_default", "socket(7), udp(7)") {
    int fd = udp4();
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_RCVBUF), proc("/proc/sys/net/core/rmem_default", 0));
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_SNDBUF), proc("/proc/sys/net/core/wmem_default", 0));
}

TEST(rcvbuf_doubled, "SO_RCVBUF is doubled: set 65536, get 131072", "socket(7) SO_RCVBUF") {
    int fd = tcp4();
    seti(fd, SOL_SOCKET, SO_RCVBUF, 65536);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_RCVBUF), 131072);
    int u = udp4();
    seti(u, SOL_SOCKET, SO_RCVBUF, 10000);
    CHECK_EQ(geti(u, SOL_SOCKET, SO_RCVBUF), 20000);
}

TEST(sndbuf_doubled, "SO_SNDBUF is doubled: set 65536, get 131072", "socket(7) SO_SNDBUF") {
    int fd = tcp4();
    seti(fd, SOL_SOCKET, SO_SNDBUF, 65536);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_SNDBUF), 131072);
    int u = udp4();
    seti(u, SOL_SOCKET, SO_SNDBUF, 12345);
    CHECK_EQ(geti(u, SOL_SOCKET, SO_SNDBUF), 24690);
}

TEST(rcvbuf_min_clamp, "SO_RCVBUF below the minimum is raised to it; 0 and 1 give the same", "socket(7) SO_RCVBUF") {
    int a = tcp4(), b = tcp4();
    seti(a, SOL_SOCKET, SO_RCVBUF, 0);
    seti(b, SOL_SOCKET, SO_RCVBUF, 1);
    int min = geti(a, SOL_SOCKET, SO_RCVBUF);
    CHECK_EQ(geti(b, SOL_SOCKET, SO_RCVBUF), min);
    if (min < 1024 || min > 8192) FAIL("minimum SO_RCVBUF %d is implausible", min);
    int c = tcp4();
    seti(c, SOL_SOCKET, SO_RCVBUF, min / 2);
    CHECK_EQ(geti(c, SOL_SOCKET, SO_RCVBUF), min); /* the smallest value that doubles to it */
}

TEST(sndbuf_min_clamp, "SO_SNDBUF below the minimum is raised to it, twice the SO_RCVBUF minimum", "socket(7) SO_SNDBUF, include/net/sock.h SOCK_MIN_SNDBUF") {
    int a = tcp4(), b = tcp4();
    seti(a, SOL_SOCKET, SO_SNDBUF, 0);
    seti(b, SOL_SOCKET, SO_RCVBUF, 0);
    CHECK_EQ(geti(a, SOL_SOCKET, SO_SNDBUF), 2 * geti(b, SOL_SOCKET, SO_RCVBUF));
}

TEST(rcvbuf_max_clamp, "SO_RCVBUF above rmem_max is clamped: get 2 * rmem_max", "socket(7) SO_RCVBUF, rmem_max") {
    long max = proc("/proc/sys/net/core/rmem_max", 0);
    int fd = tcp4();
    seti(fd, SOL_SOCKET, SO_RCVBUF, INT_MAX);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_RCVBUF), 2 * max);
}

TEST(sndbuf_max_clamp, "SO_SNDBUF above wmem_max is clamped: get 2 * wmem_max", "socket(7) SO_SNDBUF, wmem_max") {
    long max = proc("/proc/sys/net/core/wmem_max", 0);
    int fd = udp4();
    seti(fd, SOL_SOCKET, SO_SNDBUF, (int)max + 1);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_SNDBUF), 2 * max);
}

TEST(rcvbuf_negative, "a negative SO_RCVBUF is taken as huge: clamped to 2 * rmem_max", "net/core/sock.c sk_setsockopt") {
    long max = proc("/proc/sys/net/core/rmem_max", 0);
    int fd = tcp4();
    seti(fd, SOL_SOCKET, SO_RCVBUF, -1);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_RCVBUF), 2 * max);
}

TEST(rcvbufforce_root, "SO_RCVBUFFORCE (root) goes beyond rmem_max, still doubled", "socket(7) SO_RCVBUFFORCE") {
    long max = proc("/proc/sys/net/core/rmem_max", 0);
    int fd = tcp4();
    seti(fd, SOL_SOCKET, SO_RCVBUFFORCE, (int)max * 2);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_RCVBUF), 4 * max);
}

TEST(sndbufforce_user, "SO_SNDBUFFORCE without CAP_NET_ADMIN fails EPERM", "socket(7) SO_SNDBUFFORCE") {
    CHECK_OK(setgid(65534));
    CHECK_OK(setuid(65534));
    CHECK_ERR(seti_r(tcp4(), SOL_SOCKET, SO_SNDBUFFORCE, 1 << 20), EPERM);
}

TEST(rcvbuf_short_optlen, "setsockopt SO_RCVBUF with optlen < sizeof(int) fails EINVAL", "net/core/sock.c sk_setsockopt") {
    int fd = tcp4();
    short v = 4096;
    CHECK_ERR(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v), EINVAL);
    CHECK_ERR(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &v, 0), EINVAL);
}

/* --- option lengths ------------------------------------------------------- */

TEST(getsockopt_short_optlen, "getsockopt with optlen 2 returns 2 bytes, no error", "net/core/sock.c sk_getsockopt") {
    int fd = tcp4();
    unsigned char buf[4] = {0xAA, 0xAA, 0xAA, 0xAA};
    socklen_t l = 2;
    CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_TYPE, buf, &l));
    CHECK_EQ(l, 2);
    CHECK_EQ(buf[0], SOCK_STREAM);
    CHECK_EQ(buf[2], 0xAA);
}

TEST(getsockopt_long_optlen, "getsockopt with a long buffer sets optlen to sizeof(int)", "getsockopt(2)") {
    int fd = tcp4();
    long long v = 0;
    socklen_t l = sizeof v;
    CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l));
    CHECK_EQ(l, sizeof(int));
}

TEST(getsockopt_negative_optlen, "getsockopt with a negative optlen fails EINVAL", "getsockopt(2) ERRORS") {
    int fd = tcp4();
    int v;
    socklen_t l = (socklen_t)-1;
    CHECK_ERR(getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l), EINVAL);
    l = (socklen_t)-1;
    CHECK_ERR(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &l), EINVAL);
}

TEST(tcp_opt_short_optlen, "setsockopt TCP_NODELAY with optlen < sizeof(int) fails EINVAL", "net/ipv4/tcp.c do_tcp_setsockopt") {
    int fd = tcp4();
    char v = 1;
    CHECK_ERR(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, 1), EINVAL);
}

TEST(sockopt_notsock, "socket options on a pipe fail ENOTSOCK, on a bad fd EBADF", "getsockopt(2) ERRORS") {
    int p[2];
    CHECK_OK(pipe(p));
    int v;
    socklen_t l = sizeof v;
    CHECK_ERR(getsockopt(p[0], SOL_SOCKET, SO_TYPE, &v, &l), ENOTSOCK);
    CHECK_ERR(getsockopt(999, SOL_SOCKET, SO_TYPE, &v, &l), EBADF);
    CHECK_ERR(setsockopt(p[0], SOL_SOCKET, SO_REUSEADDR, &v, sizeof v), ENOTSOCK);
}

/* --- unknown options ------------------------------------------------------ */

TEST(unknown_sol_socket, "an unknown SOL_SOCKET option fails ENOPROTOOPT", "getsockopt(2) ERRORS") {
    int fd = tcp4(), v = 1;
    socklen_t l = sizeof v;
    CHECK_ERR(getsockopt(fd, SOL_SOCKET, 9999, &v, &l), ENOPROTOOPT);
    CHECK_ERR(setsockopt(fd, SOL_SOCKET, 9999, &v, sizeof v), ENOPROTOOPT);
}

TEST(unknown_tcp, "an unknown IPPROTO_TCP option fails ENOPROTOOPT", "getsockopt(2) ERRORS") {
    int fd = tcp4(), v = 1;
    socklen_t l = sizeof v;
    CHECK_ERR(getsockopt(fd, IPPROTO_TCP, 9999, &v, &l), ENOPROTOOPT);
    CHECK_ERR(setsockopt(fd, IPPROTO_TCP, 9999, &v, sizeof v), ENOPROTOOPT);
}

TEST(unknown_ip, "an unknown IPPROTO_IP option fails ENOPROTOOPT", "getsockopt(2) ERRORS") {
    int fd = udp4(), v = 1;
    socklen_t l = sizeof v;
    CHECK_ERR(getsockopt(fd, IPPROTO_IP, 9999, &v, &l), ENOPROTOOPT);
    CHECK_ERR(setsockopt(fd, IPPROTO_IP, 9999, &v, sizeof v), ENOPROTOOPT);
}

TEST(unknown_level, "an unknown level: setsockopt fails ENOPROTOOPT, getsockopt EOPNOTSUPP", "net/ipv4/ip_sockglue.c do_ip_getsockopt") {
    int fd = tcp4(), v = 1;
    socklen_t l = sizeof v;
    CHECK_ERR(getsockopt(fd, 9999, 1, &v, &l), EOPNOTSUPP);
    CHECK_ERR(setsockopt(fd, 9999, 1, &v, sizeof v), ENOPROTOOPT);
    int u = udp4();
    CHECK_ERR(getsockopt(u, 9999, 1, &v, &l), EOPNOTSUPP);
    CHECK_ERR(setsockopt(u, 9999, 1, &v, sizeof v), ENOPROTOOPT);
}

TEST(tcp_opt_on_udp, "a TCP option on a UDP socket: set fails ENOPROTOOPT, get EOPNOTSUPP", "udp(7), net/ipv4/ip_sockglue.c") {
    int fd = udp4(), v = 1;
    socklen_t l = sizeof v;
    CHECK_ERR(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v), ENOPROTOOPT);
    CHECK_ERR(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &l), EOPNOTSUPP);
    CHECK_ERR(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &v, &l), EOPNOTSUPP);
}

TEST(udp_opt_on_tcp, "a UDP option on a TCP socket: set fails ENOPROTOOPT, get EOPNOTSUPP", "net/ipv4/ip_sockglue.c") {
    int fd = tcp4(), v = 1;
    socklen_t l = sizeof v;
    CHECK_ERR(setsockopt(fd, IPPROTO_UDP, 1 /* UDP_CORK */, &v, sizeof v), ENOPROTOOPT);
    CHECK_ERR(getsockopt(fd, IPPROTO_UDP, 1, &v, &l), EOPNOTSUPP);
}

TEST(ipv6_opt_on_inet, "an IPPROTO_IPV6 option on an AF_INET socket: set ENOPROTOOPT, get EOPNOTSUPP", "ipv6(7)") {
    int fd = tcp4(), v = 1;
    socklen_t l = sizeof v;
    CHECK_ERR(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof v), ENOPROTOOPT);
    CHECK_ERR(getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &l), EOPNOTSUPP);
}

/* --- booleans ------------------------------------------------------------- */

TEST(so_reuseaddr_roundtrip, "SO_REUSEADDR defaults to 0 and reads back as a boolean", "socket(7) SO_REUSEADDR") {
    int fd = tcp4();
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_REUSEADDR), 0);
    seti(fd, SOL_SOCKET, SO_REUSEADDR, 42);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_REUSEADDR), 1);
    seti(fd, SOL_SOCKET, SO_REUSEADDR, 0);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_REUSEADDR), 0);
}

TEST(so_reuseport_roundtrip, "SO_REUSEPORT defaults to 0 and reads back as a boolean", "socket(7) SO_REUSEPORT") {
    int fd = udp4();
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_REUSEPORT), 0);
    seti(fd, SOL_SOCKET, SO_REUSEPORT, 7);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_REUSEPORT), 1);
}

TEST(so_keepalive_roundtrip, "SO_KEEPALIVE defaults to 0, reads back as a boolean", "socket(7) SO_KEEPALIVE") {
    int fd = tcp4();
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
    seti(fd, SOL_SOCKET, SO_KEEPALIVE, 5);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    seti(fd, SOL_SOCKET, SO_KEEPALIVE, 0);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
}

TEST(so_keepalive_connected, "SO_KEEPALIVE turned on for an established connection reads 1; the connection keeps working", "socket(7) SO_KEEPALIVE") {
    int fd = peer_tcp(PORT_ECHO);
    seti(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    echo_roundtrip(fd, "alive");
}

TEST(so_broadcast_roundtrip, "SO_BROADCAST defaults to 0 and reads back", "socket(7) SO_BROADCAST") {
    int fd = udp4();
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_BROADCAST), 0);
    seti(fd, SOL_SOCKET, SO_BROADCAST, 1);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_BROADCAST), 1);
}

TEST(so_oobinline_roundtrip, "SO_OOBINLINE defaults to 0 and reads back", "socket(7) SO_OOBINLINE") {
    int fd = tcp4();
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_OOBINLINE), 0);
    seti(fd, SOL_SOCKET, SO_OOBINLINE, 1);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_OOBINLINE), 1);
}

/* --- keepalive tuning ----------------------------------------------------- */

TEST(keepidle_roundtrip, "TCP_KEEPIDLE defaults to tcp_keepalive_time and round-trips", "tcp(7) TCP_KEEPIDLE") {
    int fd = tcp4();
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_KEEPIDLE), proc("/proc/sys/net/ipv4/tcp_keepalive_time", 0));
    seti(fd, IPPROTO_TCP, TCP_KEEPIDLE, 30);
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_KEEPIDLE), 30);
}

TEST(keepidle_limits, "TCP_KEEPIDLE outside 1..32767 fails EINVAL", "tcp(7) TCP_KEEPIDLE, include/net/tcp.h MAX_TCP_KEEPIDLE") {
    int fd = tcp4();
    CHECK_ERR(seti_r(fd, IPPROTO_TCP, TCP_KEEPIDLE, 0), EINVAL);
    CHECK_ERR(seti_r(fd, IPPROTO_TCP, TCP_KEEPIDLE, 32768), EINVAL);
    CHECK_ERR(seti_r(fd, IPPROTO_TCP, TCP_KEEPIDLE, -1), EINVAL);
    CHECK_OK(seti_r(fd, IPPROTO_TCP, TCP_KEEPIDLE, 32767));
    CHECK_OK(seti_r(fd, IPPROTO_TCP, TCP_KEEPIDLE, 1));
}

TEST(keepintvl_roundtrip, "TCP_KEEPINTVL defaults to tcp_keepalive_intvl and round-trips", "tcp(7) TCP_KEEPINTVL") {
    int fd = tcp4();
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_KEEPINTVL), proc("/proc/sys/net/ipv4/tcp_keepalive_intvl", 0));
    seti(fd, IPPROTO_TCP, TCP_KEEPINTVL, 5);
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_KEEPINTVL), 5);
}

TEST(keepintvl_limits, "TCP_KEEPINTVL outside 1..32767 fails EINVAL", "tcp(7) TCP_KEEPINTVL") {
    int fd = tcp4();
    CHECK_ERR(seti_r(fd, IPPROTO_TCP, TCP_KEEPINTVL, 0), EINVAL);
    CHECK_ERR(seti_r(fd, IPPROTO_TCP, TCP_KEEPINTVL, 32768), EINVAL);
    CHECK_OK(seti_r(fd, IPPROTO_TCP, TCP_KEEPINTVL, 32767));
}

TEST(keepcnt_roundtrip, "TCP_KEEPCNT defaults to tcp_keepalive_probes and round-trips", "tcp(7) TCP_KEEPCNT") {
    int fd = tcp4();
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_KEEPCNT), proc("/proc/sys/net/ipv4/tcp_keepalive_probes", 0));
    seti(fd, IPPROTO_TCP, TCP_KEEPCNT, 3);
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_KEEPCNT), 3);
}

TEST(keepcnt_limits, "TCP_KEEPCNT outside 1..127 fails EINVAL", "tcp(7) TCP_KEEPCNT, include/net/tcp.h MAX_TCP_KEEPCNT") {
    int fd = tcp4();
    CHECK_ERR(seti_r(fd, IPPROTO_TCP, TCP_KEEPCNT, 0), EINVAL);
    CHECK_ERR(seti_r(fd, IPPROTO_TCP, TCP_KEEPCNT, 128), EINVAL);
    CHECK_OK(seti_r(fd, IPPROTO_TCP, TCP_KEEPCNT, 127));
}

TEST(keepalive_probes_keep_alive, "with keepalive every second, an idle connection to a live peer stays up", "tcp(7) TCP_KEEPIDLE, RFC 1122 4.2.3.6") {
    int fd = peer_tcp(PORT_ECHO);
    seti(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
    seti(fd, IPPROTO_TCP, TCP_KEEPIDLE, 1);
    seti(fd, IPPROTO_TCP, TCP_KEEPINTVL, 1);
    seti(fd, IPPROTO_TCP, TCP_KEEPCNT, 1);
    ps_sleep_ms(2500);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_ERROR), 0);
    CHECK_EQ(tinfo(fd).tcpi_state, TCP_ESTABLISHED);
    echo_roundtrip(fd, "still here");
}

/* --- TCP options ---------------------------------------------------------- */

TEST(tcp_nodelay_roundtrip, "TCP_NODELAY defaults to 0 and reads back as a boolean", "tcp(7) TCP_NODELAY") {
    int fd = tcp4();
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_NODELAY), 0);
    seti(fd, IPPROTO_TCP, TCP_NODELAY, 9);
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_NODELAY), 1);
    seti(fd, IPPROTO_TCP, TCP_NODELAY, 0);
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_NODELAY), 0);
}

TEST(tcp_cork_roundtrip, "TCP_CORK defaults to 0 and reads back as a boolean", "tcp(7) TCP_CORK") {
    int fd = tcp4();
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_CORK), 0);
    seti(fd, IPPROTO_TCP, TCP_CORK, 3);
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_CORK), 1);
}

TEST(tcp_cork_holds_data, "a corked small write is held until uncorked", "tcp(7) TCP_CORK") {
    int fd = peer_tcp(PORT_ECHO);
    echo_roundtrip(fd, "warm"); /* nothing in flight now */
    seti(fd, IPPROTO_TCP, TCP_CORK, 1);
    ps_write_all(fd, "corked", 6);
    CHECK_EQ(pollfd1(fd, POLLIN, 100), 0);
    seti(fd, IPPROTO_TCP, TCP_CORK, 0);
    char buf[6];
    read_exact_ms(fd, buf, 6, 3000);
    CHECK(!memcmp(buf, "corked", 6));
}

TEST(tcp_cork_full_segment, "a corked write of a full segment is sent at once", "tcp(7) TCP_CORK") {
    int fd = peer_tcp(PORT_ECHO);
    echo_roundtrip(fd, "warm");
    seti(fd, IPPROTO_TCP, TCP_CORK, 1);
    static char buf[4000];
    memset(buf, 'c', sizeof buf);
    ps_write_all(fd, buf, sizeof buf);
    wait_readable(fd, 1000); /* at least the first full segment came back */
}

TEST(tcp_maxseg_default, "TCP_MAXSEG of an unconnected socket is 536", "tcp(7) TCP_MAXSEG, RFC 9293 3.7.1") {
    CHECK_EQ(geti(tcp4(), IPPROTO_TCP, TCP_MAXSEG), 536);
}

TEST(tcp_maxseg_connected, "TCP_MAXSEG on a 1500-MTU link with timestamps is 1448", "tcp(7) TCP_MAXSEG, RFC 7323") {
    if (proc("/proc/sys/net/ipv4/tcp_timestamps", 0) != 1) FAIL("tcp_timestamps is not 1");
    int fd = peer_tcp(PORT_ECHO);
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_MAXSEG), 1448);
}

TEST(tcp_maxseg_set, "TCP_MAXSEG set before connect reads back; the MSS then honours it", "tcp(7) TCP_MAXSEG") {
    int fd = tcp4();
    seti(fd, IPPROTO_TCP, TCP_MAXSEG, 1000);
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_MAXSEG), 1000);
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    int mss = geti(fd, IPPROTO_TCP, TCP_MAXSEG);
    if (mss > 1000 || mss < 900) FAIL("MSS %d after asking for 1000", mss);
    echo_roundtrip(fd, "small segments");
}

TEST(tcp_maxseg_limits, "TCP_MAXSEG below 88 or above 32767 fails EINVAL; 0 is accepted", "tcp(7) TCP_MAXSEG, include/net/tcp.h TCP_MIN_MSS") {
    int fd = tcp4();
    CHECK_ERR(seti_r(fd, IPPROTO_TCP, TCP_MAXSEG, 87), EINVAL);
    CHECK_ERR(seti_r(fd, IPPROTO_TCP, TCP_MAXSEG, 65536), EINVAL);
    CHECK_OK(seti_r(fd, IPPROTO_TCP, TCP_MAXSEG, 88));
    CHECK_OK(seti_r(fd, IPPROTO_TCP, TCP_MAXSEG, 0));
}

TEST(tcp_info_states, "TCP_INFO state: CLOSE new, LISTEN listening, ESTABLISHED connected", "tcp(7) TCP_INFO") {
    CHECK_EQ(tinfo(tcp4()).tcpi_state, TCP_CLOSE);
    CHECK_EQ(tinfo(listen_local(1)).tcpi_state, TCP_LISTEN);
    CHECK_EQ(tinfo(peer_tcp(PORT_ECHO)).tcpi_state, TCP_ESTABLISHED);
}

TEST(tcp_info_syn_sent, "TCP_INFO state during a pending connect is SYN_SENT", "tcp(7) TCP_INFO") {
    int fd = (int)CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    CHECK_ERR(connect4_r(fd, peer4(PORT_BLACKHOLE)), EINPROGRESS);
    CHECK_EQ(tinfo(fd).tcpi_state, TCP_SYN_SENT);
}

TEST(tcp_info_rtt, "TCP_INFO on a connected socket has an RTT, MSS 1448 and timestamps", "tcp(7) TCP_INFO") {
    int fd = peer_tcp(PORT_ECHO);
    echo_roundtrip(fd, "measure me");
    struct tcp_info ti = tinfo(fd);
    CHECK(ti.tcpi_rtt > 0);
    CHECK(ti.tcpi_rtt < 1000000);
    CHECK_EQ(ti.tcpi_snd_mss, 1448);
    CHECK(ti.tcpi_options & TCPI_OPT_TIMESTAMPS);
    CHECK(ti.tcpi_options & TCPI_OPT_SACK);
    CHECK(ti.tcpi_options & TCPI_OPT_WSCALE);
    CHECK(ti.tcpi_snd_cwnd >= 10);
}

TEST(tcp_info_bytes, "TCP_INFO counts bytes acked and received", "tcp(7) TCP_INFO") {
    int fd = peer_tcp(PORT_ECHO);
    static char buf[1000];
    memset(buf, 'b', sizeof buf);
    ps_write_all(fd, buf, sizeof buf);
    read_exact_ms(fd, buf, sizeof buf, 3000);
    struct tcp_info_ext ti;
    memset(&ti, 0, sizeof ti);
    socklen_t l = sizeof ti;
    CHECK_OK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l));
    CHECK_EQ(l, sizeof ti);
    if (ti.bytes_acked < 1000 || ti.bytes_received < 1000 || ti.segs_out < 2 || ti.segs_in < 2)
        FAIL("acked %llu received %llu segs out %u in %u", (unsigned long long)ti.bytes_acked,
             (unsigned long long)ti.bytes_received, ti.segs_out, ti.segs_in);
}

TEST(tcp_info_short_optlen, "TCP_INFO with a short buffer returns that many bytes", "tcp(7) TCP_INFO") {
    int fd = peer_tcp(PORT_ECHO);
    unsigned char buf[8];
    socklen_t l = sizeof buf;
    CHECK_OK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, buf, &l));
    CHECK_EQ(l, 8);
    CHECK_EQ(buf[0], TCP_ESTABLISHED);
}

TEST(tcp_info_long_optlen, "TCP_INFO with a large buffer reports the kernel's struct size", "tcp(7) TCP_INFO") {
    int fd = tcp4();
    char buf[4096];
    socklen_t l = sizeof buf;
    CHECK_OK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, buf, &l));
    CHECK(l >= sizeof(struct tcp_info));
    CHECK(l < sizeof buf);
}

TEST(tcp_syncnt_limits, "TCP_SYNCNT outside 1..127 fails EINVAL; default is tcp_syn_retries", "tcp(7) TCP_SYNCNT") {
    int fd = tcp4();
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_SYNCNT), proc("/proc/sys/net/ipv4/tcp_syn_retries", 0));
    CHECK_ERR(seti_r(fd, IPPROTO_TCP, TCP_SYNCNT, 0), EINVAL);
    CHECK_ERR(seti_r(fd, IPPROTO_TCP, TCP_SYNCNT, 128), EINVAL);
    seti(fd, IPPROTO_TCP, TCP_SYNCNT, 2);
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_SYNCNT), 2);
}

TEST(tcp_user_timeout_roundtrip, "TCP_USER_TIMEOUT round-trips; negative fails EINVAL", "tcp(7) TCP_USER_TIMEOUT") {
    int fd = tcp4();
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 0);
    seti(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, 1500);
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 1500);
    CHECK_ERR(seti_r(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, -1), EINVAL);
}

TEST(tcp_congestion, "TCP_CONGESTION reads the algorithm, accepts reno, rejects unknown with ENOENT", "tcp(7) TCP_CONGESTION") {
    int fd = tcp4();
    char name[16] = "";
    socklen_t l = sizeof name;
    CHECK_OK(getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &l));
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_congestion_control", "r");
    char want[16] = "";
    CHECK(f && fscanf(f, "%15s", want) == 1);
    fclose(f);
    if (strcmp(name, want)) FAIL("TCP_CONGESTION %s, default %s", name, want);
    CHECK_OK(setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "reno", 4));
    l = sizeof name;
    CHECK_OK(getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &l));
    CHECK(!strcmp(name, "reno"));
    CHECK_ERR(setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "nosuchcc", 8), ENOENT);
}

TEST(tcp_defer_accept_roundtrip, "TCP_DEFER_ACCEPT is rounded to retransmission steps (5 s -> 7)", "tcp(7) TCP_DEFER_ACCEPT") {
    int fd = tcp4();
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT), 0);
    seti(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, 5);
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT), 7);
}

TEST(tcp_quickack_default, "TCP_QUICKACK reads 1 on a new socket", "tcp(7) TCP_QUICKACK") {
    CHECK_EQ(geti(tcp4(), IPPROTO_TCP, TCP_QUICKACK), 1);
}

/* --- IP options ----------------------------------------------------------- */

TEST(ip_ttl_default, "IP_TTL defaults to ip_default_ttl (64)", "ip(7) IP_TTL") {
    long def = proc("/proc/sys/net/ipv4/ip_default_ttl", 0);
    CHECK_EQ(geti(tcp4(), IPPROTO_IP, IP_TTL), def);
    CHECK_EQ(geti(udp4(), IPPROTO_IP, IP_TTL), def);
}

TEST(ip_ttl_roundtrip, "IP_TTL set 10 reads 10; -1 restores the default", "ip(7) IP_TTL") {
    int fd = udp4();
    seti(fd, IPPROTO_IP, IP_TTL, 10);
    CHECK_EQ(geti(fd, IPPROTO_IP, IP_TTL), 10);
    seti(fd, IPPROTO_IP, IP_TTL, -1);
    CHECK_EQ(geti(fd, IPPROTO_IP, IP_TTL), proc("/proc/sys/net/ipv4/ip_default_ttl", 0));
    seti(fd, IPPROTO_IP, IP_TTL, 255);
    CHECK_EQ(geti(fd, IPPROTO_IP, IP_TTL), 255);
}

TEST(ip_ttl_limits, "IP_TTL 0, 256 and -2 fail EINVAL", "ip(7) IP_TTL") {
    int fd = tcp4();
    CHECK_ERR(seti_r(fd, IPPROTO_IP, IP_TTL, 0), EINVAL);
    CHECK_ERR(seti_r(fd, IPPROTO_IP, IP_TTL, 256), EINVAL);
    CHECK_ERR(seti_r(fd, IPPROTO_IP, IP_TTL, -2), EINVAL);
}

TEST(ip_ttl_connected_works, "a TCP connection with IP_TTL 2 still reaches the on-link peer", "ip(7) IP_TTL") {
    int fd = tcp4();
    seti(fd, IPPROTO_IP, IP_TTL, 2);
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    echo_roundtrip(fd, "ttl 2");
}

TEST(ip_tos_udp, "IP_TOS on UDP reads back all eight bits", "ip(7) IP_TOS") {
    int fd = udp4();
    CHECK_EQ(geti(fd, IPPROTO_IP, IP_TOS), 0);
    seti(fd, IPPROTO_IP, IP_TOS, 0x13);
    CHECK_EQ(geti(fd, IPPROTO_IP, IP_TOS), 0x13);
}

TEST(ip_tos_tcp_ecn_masked, "IP_TOS on TCP keeps the ECN bits to the stack: set 0x13, read 0x10", "ip(7) IP_TOS, RFC 3168") {
    int fd = tcp4();
    seti(fd, IPPROTO_IP, IP_TOS, 0x13);
    CHECK_EQ(geti(fd, IPPROTO_IP, IP_TOS), 0x10);
}

TEST(ip_tos_one_byte, "IP_TOS accepts a one-byte option value", "net/ipv4/ip_sockglue.c do_ip_setsockopt") {
    int fd = udp4();
    unsigned char v = 0x20;
    CHECK_OK(setsockopt(fd, IPPROTO_IP, IP_TOS, &v, 1));
    CHECK_EQ(geti(fd, IPPROTO_IP, IP_TOS), 0x20);
}

TEST(ip_tos_one_byte_get, "getsockopt IP_TOS with optlen 1 returns one byte", "net/ipv4/ip_sockglue.c do_ip_getsockopt") {
    int fd = udp4();
    seti(fd, IPPROTO_IP, IP_TOS, 0x28);
    unsigned char v = 0;
    socklen_t l = 1;
    CHECK_OK(getsockopt(fd, IPPROTO_IP, IP_TOS, &v, &l));
    CHECK_EQ(l, 1);
    CHECK_EQ(v, 0x28);
}

TEST(ip_mtu_connected, "IP_MTU of a connected socket is the path MTU (1500)", "ip(7) IP_MTU") {
    int fd = peer_tcp(PORT_ECHO);
    CHECK_EQ(geti(fd, IPPROTO_IP, IP_MTU), 1500);
}

TEST(ip_mtu_unconnected, "IP_MTU of an unconnected socket fails ENOTCONN", "ip(7) IP_MTU") {
    int fd = udp4(), v;
    socklen_t l = sizeof v;
    CHECK_ERR(getsockopt(fd, IPPROTO_IP, IP_MTU, &v, &l), ENOTCONN);
}

TEST(ip_mtu_discover_default, "IP_MTU_DISCOVER defaults to IP_PMTUDISC_WANT", "ip(7) IP_MTU_DISCOVER") {
    if (proc("/proc/sys/net/ipv4/ip_no_pmtu_disc", 0) != 0) FAIL("ip_no_pmtu_disc is set");
    CHECK_EQ(geti(tcp4(), IPPROTO_IP, IP_MTU_DISCOVER), IP_PMTUDISC_WANT);
    CHECK_EQ(geti(udp4(), IPPROTO_IP, IP_MTU_DISCOVER), IP_PMTUDISC_WANT);
}

TEST(ip_mtu_discover_limits, "IP_MTU_DISCOVER above IP_PMTUDISC_OMIT fails EINVAL", "ip(7) IP_MTU_DISCOVER") {
    int fd = udp4();
    seti(fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO);
    CHECK_EQ(geti(fd, IPPROTO_IP, IP_MTU_DISCOVER), IP_PMTUDISC_DO);
    CHECK_ERR(seti_r(fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_OMIT + 1), EINVAL);
}

TEST(ip_multicast_defaults, "IP_MULTICAST_TTL defaults to 1, IP_MULTICAST_LOOP to 1", "ip(7) IP_MULTICAST_TTL") {
    int fd = udp4();
    CHECK_EQ(geti(fd, IPPROTO_IP, IP_MULTICAST_TTL), 1);
    CHECK_EQ(geti(fd, IPPROTO_IP, IP_MULTICAST_LOOP), 1);
}

TEST(ip_recvtos_roundtrip, "IP_RECVTOS and IP_PKTINFO default to 0 and read back", "ip(7) IP_RECVTOS, IP_PKTINFO") {
    int fd = udp4();
    CHECK_EQ(geti(fd, IPPROTO_IP, IP_RECVTOS), 0);
    CHECK_EQ(geti(fd, IPPROTO_IP, IP_PKTINFO), 0);
    seti(fd, IPPROTO_IP, IP_RECVTOS, 1);
    seti(fd, IPPROTO_IP, IP_PKTINFO, 1);
    CHECK_EQ(geti(fd, IPPROTO_IP, IP_RECVTOS), 1);
    CHECK_EQ(geti(fd, IPPROTO_IP, IP_PKTINFO), 1);
}

/* --- timeouts ------------------------------------------------------------- */

TEST(rcvtimeo_eagain, "SO_RCVTIMEO: a blocking recv fails EAGAIN after the timeout", "socket(7) SO_RCVTIMEO") {
    int fd = peer_tcp(PORT_ECHO);
    set_tv(fd, SO_RCVTIMEO, 0, 200000);
    char c;
    long t0 = ps_now_ms();
    CHECK_ERR(recv(fd, &c, 1, 0), EAGAIN);
    CHECK_ELAPSED(t0, 180, 1500);
}

TEST(rcvtimeo_udp, "SO_RCVTIMEO on UDP: recvfrom fails EAGAIN after the timeout", "socket(7) SO_RCVTIMEO") {
    int fd = udp4();
    bind4(fd, local4(0));
    set_tv(fd, SO_RCVTIMEO, 0, 150000);
    char c;
    long t0 = ps_now_ms();
    CHECK_ERR(recvfrom(fd, &c, 1, 0, NULL, NULL), EAGAIN);
    CHECK_ELAPSED(t0, 130, 1500);
}

TEST(rcvtimeo_accept, "SO_RCVTIMEO also bounds accept: EAGAIN", "socket(7) SO_RCVTIMEO") {
    int l = listen_local(4);
    set_tv(l, SO_RCVTIMEO, 0, 150000);
    long t0 = ps_now_ms();
    CHECK_ERR(accept(l, NULL, NULL), EAGAIN);
    CHECK_ELAPSED(t0, 130, 1500);
}

TEST(rcvtimeo_data_in_time, "SO_RCVTIMEO does not fire when data arrives in time", "socket(7) SO_RCVTIMEO") {
    int fd = peer_tcp(PORT_ECHO);
    set_tv(fd, SO_RCVTIMEO, 2, 0);
    ps_write_all(fd, "x", 1);
    char c;
    CHECK_EQ(recv(fd, &c, 1, 0), 1);
}

TEST(rcvtimeo_roundtrip, "SO_RCVTIMEO reads back the timeval set; default is {0,0}", "socket(7) SO_RCVTIMEO") {
    int fd = tcp4();
    struct timeval tv;
    socklen_t l = sizeof tv;
    CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &l));
    CHECK_EQ(l, sizeof tv);
    CHECK(tv.tv_sec == 0 && tv.tv_usec == 0);
    set_tv(fd, SO_RCVTIMEO, 1, 500000);
    l = sizeof tv;
    CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &l));
    CHECK_EQ(tv.tv_sec, 1);
    CHECK_EQ(tv.tv_usec, 500000);
}

TEST(rcvtimeo_edom, "SO_RCVTIMEO with tv_usec outside 0..999999 fails EDOM", "socket(7) SO_RCVTIMEO, net/core/sock.c sock_set_timeout") {
    int fd = tcp4();
    struct timeval tv = {1, 1000000};
    CHECK_ERR(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), EDOM);
    tv.tv_usec = -1;
    CHECK_ERR(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), EDOM);
    CHECK_ERR(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), EDOM);
}

TEST(rcvtimeo_short_optlen, "SO_RCVTIMEO with optlen < sizeof(struct timeval) fails EINVAL", "net/core/sock.c sock_set_timeout") {
    int fd = tcp4();
    struct timeval tv = {1, 0};
    CHECK_ERR(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv - 1), EINVAL);
}

TEST(rcvtimeo_negative_nonblocking, "a negative SO_RCVTIMEO is accepted and makes recv fail EAGAIN at once", "net/core/sock.c sock_set_timeout") {
    int fd = peer_tcp(PORT_ECHO);
    set_tv(fd, SO_RCVTIMEO, -1, 0);
    struct timeval tv;
    socklen_t l = sizeof tv;
    CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &l));
    CHECK(tv.tv_sec == 0 && tv.tv_usec == 0);
    char c;
    long t0 = ps_now_ms();
    CHECK_ERR(recv(fd, &c, 1, 0), EAGAIN);
    CHECK_ELAPSED(t0, 0, 100);
}

TEST(sndtimeo_eagain, "SO_SNDTIMEO: a send blocked on a full peer returns after the timeout, EAGAIN if nothing went", "socket(7) SO_SNDTIMEO") {
    int fd = peer_tcp(PORT_HOLD);
    seti(fd, SOL_SOCKET, SO_SNDBUF, 4096);
    set_nonblock(fd, 1);
    static char buf[65536];
    long t0 = ps_now_ms();
    for (;;) {
        ssize_t n = send(fd, buf, sizeof buf, 0);
        if (n > 0) continue;
        if (errno != EAGAIN) FAIL("send: %s", strerrorname_np(errno));
        if (pollfd1(fd, POLLOUT, 300) == 0) break;
        if (ps_now_ms() - t0 > 5000) FAIL("never filled");
    }
    set_nonblock(fd, 0);
    set_tv(fd, SO_SNDTIMEO, 0, 200000);
    /* Each call returns after the timeout: with the bytes it could queue
     * (the peer's window may still open a little), or EAGAIN with none. */
    for (int i = 0; i < 6; i++) {
        t0 = ps_now_ms();
        errno = 0;
        ssize_t n = send(fd, buf, sizeof buf, 0);
        CHECK_ELAPSED(t0, 180, 1500);
        if (n < 0) {
            CHECK_EQ(errno, EAGAIN);
            return;
        }
        if (n == 0 || n == (ssize_t)sizeof buf) FAIL("send returned %zd", n);
    }
    FAIL("send never failed EAGAIN");
}

TEST(sndtimeo_roundtrip, "SO_SNDTIMEO reads back the timeval set", "socket(7) SO_SNDTIMEO") {
    int fd = udp4();
    set_tv(fd, SO_SNDTIMEO, 3, 200000);
    struct timeval tv;
    socklen_t l = sizeof tv;
    CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &l));
    CHECK_EQ(tv.tv_sec, 3);
    CHECK_EQ(tv.tv_usec, 200000);
}

/* --- low-water marks, linger, misc ---------------------------------------- */

TEST(rcvlowat_roundtrip, "SO_RCVLOWAT defaults to 1; 0 reads back as 1", "socket(7) SO_RCVLOWAT") {
    int fd = tcp4();
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_RCVLOWAT), 1);
    seti(fd, SOL_SOCKET, SO_RCVLOWAT, 10);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_RCVLOWAT), 10);
    seti(fd, SOL_SOCKET, SO_RCVLOWAT, 0);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_RCVLOWAT), 1);
}

TEST(rcvlowat_poll, "with SO_RCVLOWAT 10, 5 bytes do not make the socket readable, 10 do", "socket(7) SO_RCVLOWAT") {
    int fd = peer_tcp(PORT_ECHO);
    seti(fd, SOL_SOCKET, SO_RCVLOWAT, 10);
    ps_write_all(fd, "12345", 5);
    CHECK_EQ(pollfd1(fd, POLLIN, 300), 0);
    ps_write_all(fd, "67890", 5);
    CHECK(pollfd1(fd, POLLIN, 3000) & POLLIN);
    char buf[10];
    CHECK_EQ(recv(fd, buf, sizeof buf, 0), 10);
}

TEST(sndlowat_fixed, "SO_SNDLOWAT reads 1 and cannot be set: ENOPROTOOPT", "socket(7) SO_SNDLOWAT") {
    int fd = tcp4();
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_SNDLOWAT), 1);
    CHECK_ERR(seti_r(fd, SOL_SOCKET, SO_SNDLOWAT, 100), ENOPROTOOPT);
}

TEST(so_linger_roundtrip, "SO_LINGER defaults to {0,0} and reads back what was set", "socket(7) SO_LINGER") {
    int fd = tcp4();
    struct linger lg;
    socklen_t l = sizeof lg;
    CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &l));
    CHECK_EQ(l, sizeof lg);
    CHECK(lg.l_onoff == 0 && lg.l_linger == 0);
    struct linger set = {1, 5};
    CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &set, sizeof set));
    CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &l));
    CHECK(lg.l_onoff == 1 && lg.l_linger == 5);
}

TEST(so_linger_short_optlen, "SO_LINGER with optlen < sizeof(struct linger) fails EINVAL", "socket(7) SO_LINGER") {
    int fd = tcp4();
    struct linger set = {1, 5};
    CHECK_ERR(setsockopt(fd, SOL_SOCKET, SO_LINGER, &set, sizeof(int)), EINVAL);
}

TEST(so_priority, "SO_PRIORITY round-trips (root may go above 6)", "socket(7) SO_PRIORITY") {
    int fd = tcp4();
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_PRIORITY), 0);
    seti(fd, SOL_SOCKET, SO_PRIORITY, 6);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_PRIORITY), 6);
    seti(fd, SOL_SOCKET, SO_PRIORITY, 7);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_PRIORITY), 7);
}

TEST(so_priority_user, "SO_PRIORITY above 6 without CAP_NET_ADMIN fails EPERM", "socket(7) SO_PRIORITY") {
    CHECK_OK(setgid(65534));
    CHECK_OK(setuid(65534));
    int fd = tcp4();
    seti(fd, SOL_SOCKET, SO_PRIORITY, 6);
    CHECK_ERR(seti_r(fd, SOL_SOCKET, SO_PRIORITY, 7), EPERM);
}

TEST(so_bindtodevice, "SO_BINDTODEVICE names the device; an unknown one fails ENODEV", "socket(7) SO_BINDTODEVICE") {
    int fd = udp4();
    CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3));
    char name[IFNAMSIZ] = "";
    socklen_t l = sizeof name;
    CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, &l));
    CHECK(!strcmp(name, "lo"));
    CHECK_ERR(setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "nosuchdev0", 11), ENODEV);
}

TEST(so_broadcast_eacces, "sendto the subnet broadcast without SO_BROADCAST fails EACCES", "socket(7) SO_BROADCAST, ip(7)") {
    int fd = udp4();
    struct sockaddr_in b = ps_sin("192.0.2.255", PORT_ECHO);
    CHECK_ERR(sendto(fd, "b", 1, 0, SA(&b), sizeof b), EACCES);
}

TEST(so_broadcast_allows, "with SO_BROADCAST, sendto the subnet broadcast succeeds", "socket(7) SO_BROADCAST") {
    int fd = udp4();
    seti(fd, SOL_SOCKET, SO_BROADCAST, 1);
    struct sockaddr_in b = ps_sin("192.0.2.255", PORT_CLOSED);
    CHECK_EQ(sendto(fd, "b", 1, 0, SA(&b), sizeof b), 1);
}

TEST(so_broadcast_connect, "UDP connect to the broadcast address without SO_BROADCAST fails EACCES", "socket(7) SO_BROADCAST, udp(7)") {
    int fd = udp4();
    CHECK_ERR(connect4_r(fd, ps_sin("192.0.2.255", PORT_ECHO)), EACCES);
    int ok = udp4();
    seti(ok, SOL_SOCKET, SO_BROADCAST, 1);
    CHECK_OK(connect4_r(ok, ps_sin("192.0.2.255", PORT_CLOSED)));
}

TEST(so_mark_root, "SO_MARK round-trips for root", "socket(7) SO_MARK") {
    int fd = tcp4();
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_MARK), 0);
    seti(fd, SOL_SOCKET, SO_MARK, 5);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_MARK), 5);
}

TEST(so_timestamp_roundtrip, "SO_TIMESTAMP defaults to 0 and reads back", "socket(7) SO_TIMESTAMP") {
    int fd = udp4();
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_TIMESTAMP), 0);
    seti(fd, SOL_SOCKET, SO_TIMESTAMP, 1);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_TIMESTAMP), 1);
}

TEST(options_survive_connect, "options set before connect hold after it", "socket(7)") {
    int fd = tcp4();
    seti(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    seti(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
    seti(fd, IPPROTO_IP, IP_TTL, 33);
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_NODELAY), 1);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    CHECK_EQ(geti(fd, IPPROTO_IP, IP_TTL), 33);
}
