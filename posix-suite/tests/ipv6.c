/* ipv6: AF_INET6 sockets, dual stack and IPV6_V6ONLY, v4-mapped peers,
 * address-family errors, IPv6 socket options and ancillary data, scope ids,
 * literal addresses. */
#include "../harness.h"

#include <linux/errqueue.h>
#include <net/if.h>

/* ---- helpers (static: harness.h is shared) ---- */

static int tcp6(void) { return CHECK_OK(socket(AF_INET6, SOCK_STREAM, 0)); }
static int udp6(void) { return CHECK_OK(socket(AF_INET6, SOCK_DGRAM, 0)); }

static int echo6(void) { return ps_tcp_connect6(ps_peer6(), PORT_ECHO); }

static struct in6_addr in6(const char *s) { return ps_sin6(s, 0).sin6_addr; }

/* "::ffff:a.b.c.d" for an IPv4 literal. */
static const char *mapped(const char *v4) {
    static char buf[2][64];
    static int i;
    i ^= 1;
    snprintf(buf[i], sizeof buf[i], "::ffff:%s", v4);
    return buf[i];
}

static int in6_eq(const struct in6_addr *a, const struct in6_addr *b) { return memcmp(a, b, sizeof *a) == 0; }

static void set_v6only(int fd, int v) {
    CHECK_OK(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof v));
}
static int get_int(int fd, int level, int opt) {
    int v = -12345;
    socklen_t l = sizeof v;
    CHECK_OK(getsockopt(fd, level, opt, &v, &l));
    CHECK_EQ(l, sizeof v);
    return v;
}

static void bind6(int fd, const char *ip, uint16_t port) {
    struct sockaddr_in6 a = ps_sin6(ip, port);
    CHECK_OK(bind(fd, (struct sockaddr *)&a, sizeof a));
}

/* A listener on [::]:0 (dual stack unless v6only). */
static int listen_any6(int v6only) {
    int l = tcp6();
    set_v6only(l, v6only);
    bind6(l, "::", 0);
    CHECK_OK(listen(l, 8));
    return l;
}

static short poll1(int fd, short events, int ms) {
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, ms);
    if (n < 0) FAIL("poll: %s", strerrorname_np(errno));
    return n ? p.revents : 0;
}
static void wait_readable(int fd) {
    if (!(poll1(fd, POLLIN, 3000) & POLLIN)) FAIL("fd %d not readable within 3 s", fd);
}

static void echo_roundtrip(int fd, const char *msg) {
    size_t n = strlen(msg);
    ps_write_all(fd, msg, n);
    char b[128];
    ps_read_exact(fd, b, n);
    if (memcmp(b, msg, n) != 0) FAIL("echo mismatch");
}

static struct sockaddr_in6 peer_of(int fd) {
    struct sockaddr_in6 a;
    memset(&a, 0xee, sizeof a);
    socklen_t len = sizeof a;
    CHECK_OK(getpeername(fd, (struct sockaddr *)&a, &len));
    CHECK_EQ(len, sizeof(struct sockaddr_in6));
    return a;
}
static struct sockaddr_in6 name_of(int fd) {
    struct sockaddr_in6 a;
    memset(&a, 0xee, sizeof a);
    socklen_t len = sizeof a;
    CHECK_OK(getsockname(fd, (struct sockaddr *)&a, &len));
    CHECK_EQ(len, sizeof(struct sockaddr_in6));
    return a;
}

static struct cmsghdr *find_cmsg(struct msghdr *m, int level, int type) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c))
        if (c->cmsg_level == level && c->cmsg_type == type) return c;
    return NULL;
}

/* ---- TCP and UDP over IPv6 ---- */

TEST(tcp6_echo, "an AF_INET6 TCP socket connects to the peer's ECHO over IPv6 and data round-trips", "ipv6(7), tcp(7)") {
    int fd = echo6();
    echo_roundtrip(fd, "over IPv6");
}

TEST(tcp6_peer_and_local_names, "getpeername/getsockname give 28-byte sockaddr_in6 with the addresses, port, flowinfo 0 and scope 0", "ipv6(7) Address format") {
    int fd = echo6();
    struct sockaddr_in6 p = peer_of(fd), n = name_of(fd);
    CHECK_EQ(p.sin6_family, AF_INET6);
    CHECK_EQ(ntohs(p.sin6_port), PORT_ECHO);
    struct in6_addr peer = in6(ps_peer6()), local = in6(ps_local6());
    CHECK(in6_eq(&p.sin6_addr, &peer));
    CHECK_EQ(p.sin6_flowinfo, 0);
    CHECK_EQ(p.sin6_scope_id, 0);
    CHECK_EQ(n.sin6_family, AF_INET6);
    CHECK(in6_eq(&n.sin6_addr, &local));
    CHECK(ntohs(n.sin6_port) != 0);
    CHECK_EQ(n.sin6_scope_id, 0);
}

TEST(tcp6_large_transfer, "1 MiB from SOURCE over IPv6 arrives whole and in order", "ipv6(7), tcp(7)") {
    int fd = ps_tcp_connect6(ps_peer6(), PORT_SOURCE);
    unsigned char *b = malloc(SOURCE_BYTES);
    ps_read_exact(fd, b, SOURCE_BYTES);
    for (size_t i = 0; i < SOURCE_BYTES; i++)
        if (b[i] != i % 251) FAIL("byte %zu wrong", i);
    char x;
    CHECK_EQ(read(fd, &x, 1), 0);
}

TEST(tcp6_refused, "connect to a closed IPv6 port fails with ECONNREFUSED", "connect(2) ECONNREFUSED, ipv6(7)") {
    int fd = tcp6();
    struct sockaddr_in6 a = ps_sin6(ps_peer6(), PORT_CLOSED);
    CHECK_ERR(connect(fd, (struct sockaddr *)&a, sizeof a), ECONNREFUSED);
}

TEST(tcp6_maxseg_1500_mtu, "TCP_MAXSEG on an IPv6 connection over a 1500-byte MTU is 1428 (1440 less 12 bytes of timestamps)", "tcp(7) TCP_MAXSEG, RFC 8200") {
    int fd = echo6();
    echo_roundtrip(fd, "m");
    CHECK_EQ(get_int(fd, IPPROTO_TCP, TCP_MAXSEG), 1428);
}

TEST(udp6_echo, "an AF_INET6 UDP socket exchanges a datagram with ECHO; recvfrom gives the peer's sockaddr_in6", "ipv6(7), udp(7)") {
    int fd = udp6();
    struct sockaddr_in6 to = ps_sin6(ps_peer6(), PORT_ECHO);
    CHECK_EQ(sendto(fd, "six", 3, 0, (struct sockaddr *)&to, sizeof to), 3);
    wait_readable(fd);
    char b[8];
    struct sockaddr_in6 from;
    socklen_t len = sizeof from;
    CHECK_EQ(recvfrom(fd, b, sizeof b, 0, (struct sockaddr *)&from, &len), 3);
    CHECK_EQ(len, sizeof from);
    CHECK_EQ(from.sin6_family, AF_INET6);
    CHECK_EQ(ntohs(from.sin6_port), PORT_ECHO);
    CHECK(in6_eq(&from.sin6_addr, &to.sin6_addr));
}

TEST(udp6_max_datagram_65527, "a 65527-byte datagram (IPv6's UDP maximum) is echoed back whole; 65528 is EMSGSIZE", "udp(7), RFC 8200 5") {
    int fd = udp6();
    struct sockaddr_in6 to = ps_sin6(ps_peer6(), PORT_ECHO);
    CHECK_OK(connect(fd, (struct sockaddr *)&to, sizeof to));
    const size_t n = 65527;
    unsigned char *out = malloc(n + 1), *in = malloc(n + 16);
    for (size_t i = 0; i < n; i++) out[i] = (unsigned char)(i * 13 + 1);
    CHECK_ERR(send(fd, out, n + 1, 0), EMSGSIZE);
    CHECK_EQ(send(fd, out, n, 0), n);
    wait_readable(fd);
    CHECK_EQ(recv(fd, in, n + 16, 0), n);
    CHECK(memcmp(in, out, n) == 0);
}

TEST(udp6_connected_econnrefused, "a connected IPv6 UDP socket gets ECONNREFUSED after ICMPv6 port unreachable", "udp(7), RFC 4443 3.1") {
    int fd = udp6();
    struct sockaddr_in6 to = ps_sin6(ps_peer6(), PORT_CLOSED);
    CHECK_OK(connect(fd, (struct sockaddr *)&to, sizeof to));
    CHECK_EQ(send(fd, "x", 1, 0), 1);
    if (!(poll1(fd, 0, 3000) & POLLERR)) FAIL("no ICMPv6 error within 3 s");
    char b[4];
    CHECK_ERR(recv(fd, b, sizeof b, 0), ECONNREFUSED);
    CHECK_ERR(recv(fd, b, sizeof b, MSG_DONTWAIT), EAGAIN);
}

/* ---- dual stack, IPV6_V6ONLY ---- */

TEST(v6only_default_zero, "IPV6_V6ONLY defaults to 0 (net.ipv6.bindv6only=0) on TCP and UDP sockets", "ipv6(7) IPV6_V6ONLY") {
    CHECK_EQ(get_int(tcp6(), IPPROTO_IPV6, IPV6_V6ONLY), 0);
    CHECK_EQ(get_int(udp6(), IPPROTO_IPV6, IPV6_V6ONLY), 0);
}

TEST(v6only_set_get, "IPV6_V6ONLY can be set to 1 and back to 0 before bind", "ipv6(7) IPV6_V6ONLY") {
    int fd = tcp6();
    set_v6only(fd, 1);
    CHECK_EQ(get_int(fd, IPPROTO_IPV6, IPV6_V6ONLY), 1);
    set_v6only(fd, 0);
    CHECK_EQ(get_int(fd, IPPROTO_IPV6, IPV6_V6ONLY), 0);
    set_v6only(fd, 7);
    CHECK_EQ(get_int(fd, IPPROTO_IPV6, IPV6_V6ONLY), 1);
}

TEST(v6only_after_bind_einval, "setting IPV6_V6ONLY on a bound socket fails with EINVAL", "ipv6(7) IPV6_V6ONLY") {
    int fd = tcp6();
    bind6(fd, "::", 0);
    int one = 1;
    CHECK_ERR(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one), EINVAL);
}

TEST(v6only_on_ipv4_socket, "IPV6_V6ONLY on an AF_INET TCP socket: getsockopt fails with EOPNOTSUPP, setsockopt with ENOPROTOOPT", "ipv6(7), ip(7)") {
    int fd = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
    int v = 1;
    socklen_t l = sizeof v;
    CHECK_ERR(getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &l), EOPNOTSUPP);
    CHECK_ERR(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof v), ENOPROTOOPT);
}

TEST(dual_stack_accepts_v6, "a dual-stack [::] listener accepts an IPv6 connection from the peer (CALLBACK)", "ipv6(7)") {
    int l = listen_any6(0);
    int ctl = ps_callback(1, ps_local_port(l), 1);
    struct sockaddr_in6 from;
    socklen_t len = sizeof from;
    int s = CHECK_OK(accept(l, (struct sockaddr *)&from, &len));
    CHECK_EQ(len, sizeof from);
    struct in6_addr peer = in6(ps_peer6());
    CHECK(in6_eq(&from.sin6_addr, &peer));
    char b[8];
    ps_read_exact(s, b, 8);
    CHECK(memcmp(b, "hello 0\n", 8) == 0);
    close(ctl);
}

TEST(dual_stack_accepts_v4_mapped, "a dual-stack [::] listener accepts an IPv4 connection; accept and getpeername give ::ffff:192.0.2.2", "ipv6(7) IPv4-mapped") {
    int l = listen_any6(0);
    int ctl = ps_callback(0, ps_local_port(l), 1);
    struct sockaddr_in6 from;
    socklen_t len = sizeof from;
    int s = CHECK_OK(accept(l, (struct sockaddr *)&from, &len));
    CHECK_EQ(len, sizeof from);
    CHECK_EQ(from.sin6_family, AF_INET6);
    CHECK(IN6_IS_ADDR_V4MAPPED(&from.sin6_addr));
    struct in6_addr want = in6(mapped(ps_peer4()));
    CHECK(in6_eq(&from.sin6_addr, &want));
    struct sockaddr_in6 p = peer_of(s), n = name_of(s);
    CHECK(in6_eq(&p.sin6_addr, &want));
    struct in6_addr me = in6(mapped(ps_local4()));
    CHECK(in6_eq(&n.sin6_addr, &me));
    CHECK_EQ(ntohs(n.sin6_port), ps_local_port(l));
    char txt[INET6_ADDRSTRLEN];
    CHECK(inet_ntop(AF_INET6, &from.sin6_addr, txt, sizeof txt) != NULL);
    CHECK(strcmp(txt, mapped(ps_peer4())) == 0);
    char b[8];
    ps_read_exact(s, b, 8);
    CHECK(memcmp(b, "hello 0\n", 8) == 0);
    close(ctl);
}

TEST(dual_stack_mapped_socket_is_v6, "an accepted v4-mapped connection is still an AF_INET6 socket (SO_DOMAIN)", "socket(7) SO_DOMAIN, ipv6(7)") {
    int l = listen_any6(0);
    int ctl = ps_callback(0, ps_local_port(l), 1);
    int s = CHECK_OK(accept(l, NULL, NULL));
    CHECK_EQ(get_int(s, SOL_SOCKET, SO_DOMAIN), AF_INET6);
    close(ctl);
}

TEST(v6only_listener_refuses_v4, "a V6ONLY [::] listener does not take IPv4: a local IPv4 connect to its port is refused", "ipv6(7) IPV6_V6ONLY") {
    int l = listen_any6(1);
    int fd = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in a = ps_sin(ps_local4(), ps_local_port(l));
    CHECK_ERR(connect(fd, (struct sockaddr *)&a, sizeof a), ECONNREFUSED);
}

TEST(dual_stack_local_v4_connect, "a local IPv4 connect reaches a dual-stack [::] listener", "ipv6(7)") {
    int l = listen_any6(0);
    int c = ps_tcp_connect4(ps_local4(), ps_local_port(l));
    struct sockaddr_in6 from;
    socklen_t len = sizeof from;
    int s = CHECK_OK(accept(l, (struct sockaddr *)&from, &len));
    struct in6_addr want = in6(mapped(ps_local4()));
    CHECK(in6_eq(&from.sin6_addr, &want));
    CHECK_EQ(ntohs(from.sin6_port), ps_local_port(c));
    close(s);
}

TEST(v4_mapped_connect_dual_stack, "an AF_INET6 socket connects to ::ffff:192.0.2.2 (IPv4 ECHO); names are v4-mapped", "ipv6(7) IPv4-mapped") {
    int fd = tcp6();
    struct sockaddr_in6 a = ps_sin6(mapped(ps_peer4()), PORT_ECHO);
    CHECK_OK(connect(fd, (struct sockaddr *)&a, sizeof a));
    echo_roundtrip(fd, "mapped");
    struct sockaddr_in6 p = peer_of(fd), n = name_of(fd);
    CHECK(in6_eq(&p.sin6_addr, &a.sin6_addr));
    struct in6_addr me = in6(mapped(ps_local4()));
    CHECK(in6_eq(&n.sin6_addr, &me));
}

TEST(v4_mapped_connect_v6only_enetunreach, "connecting a V6ONLY socket to a v4-mapped address fails with ENETUNREACH", "ipv6(7) IPV6_V6ONLY") {
    int fd = tcp6();
    set_v6only(fd, 1);
    struct sockaddr_in6 a = ps_sin6(mapped(ps_peer4()), PORT_ECHO);
    CHECK_ERR(connect(fd, (struct sockaddr *)&a, sizeof a), ENETUNREACH);
}

TEST(v4_mapped_udp_dual_stack, "an AF_INET6 UDP socket sends to ::ffff:192.0.2.2 and recvfrom reports the v4-mapped source", "ipv6(7) IPv4-mapped") {
    int fd = udp6();
    struct sockaddr_in6 to = ps_sin6(mapped(ps_peer4()), PORT_ECHO);
    CHECK_EQ(sendto(fd, "m4", 2, 0, (struct sockaddr *)&to, sizeof to), 2);
    wait_readable(fd);
    char b[4];
    struct sockaddr_in6 from;
    socklen_t len = sizeof from;
    CHECK_EQ(recvfrom(fd, b, sizeof b, 0, (struct sockaddr *)&from, &len), 2);
    CHECK_EQ(len, sizeof from);
    CHECK_EQ(from.sin6_family, AF_INET6);
    CHECK(in6_eq(&from.sin6_addr, &to.sin6_addr));
    CHECK_EQ(ntohs(from.sin6_port), PORT_ECHO);
}

TEST(v4_mapped_udp_v6only_enetunreach, "sendto a v4-mapped address on a V6ONLY UDP socket fails with ENETUNREACH", "ipv6(7) IPV6_V6ONLY") {
    int fd = udp6();
    set_v6only(fd, 1);
    struct sockaddr_in6 to = ps_sin6(mapped(ps_peer4()), PORT_ECHO);
    CHECK_ERR(sendto(fd, "x", 1, 0, (struct sockaddr *)&to, sizeof to), ENETUNREACH);
}

TEST(bind_v4_mapped, "bind to ::ffff:<local v4> works on a dual-stack socket and fails with EINVAL under V6ONLY", "ipv6(7) IPv4-mapped") {
    int fd = tcp6();
    bind6(fd, mapped(ps_local4()), 0);
    struct sockaddr_in6 n = name_of(fd);
    struct in6_addr want = in6(mapped(ps_local4()));
    CHECK(in6_eq(&n.sin6_addr, &want));
    int fd2 = tcp6();
    set_v6only(fd2, 1);
    struct sockaddr_in6 a = ps_sin6(mapped(ps_local4()), 0);
    CHECK_ERR(bind(fd2, (struct sockaddr *)&a, sizeof a), EINVAL);
}

TEST(dual_stack_port_conflict, "a dual-stack [::]:P bind conflicts with 0.0.0.0:P (EADDRINUSE); a V6ONLY one does not", "ipv6(7) IPV6_V6ONLY, bind(2)") {
    int v4 = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in any4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
    CHECK_OK(bind(v4, (struct sockaddr *)&any4, sizeof any4));
    uint16_t port = ps_local_port(v4);
    int dual = tcp6();
    struct sockaddr_in6 a = ps_sin6("::", port);
    CHECK_ERR(bind(dual, (struct sockaddr *)&a, sizeof a), EADDRINUSE);
    int only = tcp6();
    set_v6only(only, 1);
    CHECK_OK(bind(only, (struct sockaddr *)&a, sizeof a));
}

TEST(dual_stack_blocks_v4_bind, "after a dual-stack [::]:P bind, binding 0.0.0.0:P fails with EADDRINUSE", "ipv6(7), bind(2)") {
    int dual = tcp6();
    bind6(dual, "::", 0);
    uint16_t port = ps_local_port(dual);
    int v4 = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in any4 = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
    CHECK_ERR(bind(v4, (struct sockaddr *)&any4, sizeof any4), EADDRINUSE);
}

/* ---- address family errors ---- */

TEST(v6_connect_sockaddr_in_einval, "connect on an AF_INET6 socket with a 16-byte sockaddr_in fails with EINVAL", "ipv6(7), connect(2)") {
    int fd = tcp6();
    struct sockaddr_in a = ps_sin(ps_peer4(), PORT_ECHO);
    CHECK_ERR(connect(fd, (struct sockaddr *)&a, sizeof a), EINVAL);
}

TEST(v6_connect_wrong_family, "connect on an AF_INET6 socket with a full-size address of family AF_INET fails with EAFNOSUPPORT", "ipv6(7), connect(2) EAFNOSUPPORT") {
    int fd = tcp6();
    struct sockaddr_in6 a = ps_sin6(ps_peer6(), PORT_ECHO);
    a.sin6_family = AF_INET;
    CHECK_ERR(connect(fd, (struct sockaddr *)&a, sizeof a), EAFNOSUPPORT);
}

TEST(v6_bind_wrong_family, "bind on an AF_INET6 socket: a short address is EINVAL, family AF_INET is EAFNOSUPPORT", "ipv6(7), bind(2)") {
    int fd = tcp6();
    struct sockaddr_in6 a = ps_sin6("::", 0);
    CHECK_ERR(bind(fd, (struct sockaddr *)&a, 23), EINVAL);
    a.sin6_family = AF_INET;
    CHECK_ERR(bind(fd, (struct sockaddr *)&a, sizeof a), EAFNOSUPPORT);
}

TEST(v4_connect_sockaddr_in6, "connect on an AF_INET socket with a sockaddr_in6 fails with EAFNOSUPPORT", "ip(7), connect(2) EAFNOSUPPORT") {
    int fd = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in6 a = ps_sin6(ps_peer6(), PORT_ECHO);
    CHECK_ERR(connect(fd, (struct sockaddr *)&a, sizeof a), EAFNOSUPPORT);
}

TEST(v6_rfc2133_length_accepted, "a 24-byte sockaddr_in6 (RFC 2133 size, no scope id) is accepted by connect", "ipv6(7), RFC 2133") {
    int fd = tcp6();
    struct sockaddr_in6 a = ps_sin6(ps_peer6(), PORT_ECHO);
    CHECK_OK(connect(fd, (struct sockaddr *)&a, 24));
    echo_roundtrip(fd, "24");
}

TEST(v6_udp_sendto_sockaddr_in, "a dual-stack AF_INET6 UDP socket accepts a plain sockaddr_in in sendto and sends IPv4; the reply comes back v4-mapped", "ipv6(7), udp(7)") {
    int fd = udp6();
    struct sockaddr_in a = ps_sin(ps_peer4(), PORT_ECHO);
    CHECK_EQ(sendto(fd, "v4", 2, 0, (struct sockaddr *)&a, sizeof a), 2);
    wait_readable(fd);
    char b[4];
    struct sockaddr_in6 from;
    socklen_t len = sizeof from;
    CHECK_EQ(recvfrom(fd, b, sizeof b, 0, (struct sockaddr *)&from, &len), 2);
    CHECK_EQ(len, sizeof from);
    CHECK_EQ(from.sin6_family, AF_INET6);
    struct in6_addr want = in6(mapped(ps_peer4()));
    CHECK(in6_eq(&from.sin6_addr, &want));
}

TEST(v6only_udp_sendto_sockaddr_in, "a V6ONLY AF_INET6 UDP socket given a sockaddr_in in sendto fails with ENETUNREACH", "ipv6(7) IPV6_V6ONLY") {
    int fd = udp6();
    set_v6only(fd, 1);
    struct sockaddr_in a = ps_sin(ps_peer4(), PORT_ECHO);
    CHECK_ERR(sendto(fd, "x", 1, 0, (struct sockaddr *)&a, sizeof a), ENETUNREACH);
}

TEST(v6_bind_foreign_address, "binding an IPv6 address this host does not have fails with EADDRNOTAVAIL", "bind(2) EADDRNOTAVAIL, ipv6(7)") {
    int fd = tcp6();
    struct sockaddr_in6 a = ps_sin6("2001:db8::99", 0);
    CHECK_ERR(bind(fd, (struct sockaddr *)&a, sizeof a), EADDRNOTAVAIL);
}

/* ---- scope ids ---- */

TEST(link_local_bind_needs_scope, "binding a link-local address without a scope id fails with EINVAL", "ipv6(7) sin6_scope_id") {
    int fd = tcp6();
    struct sockaddr_in6 a = ps_sin6("fe80::1", 0);
    CHECK_ERR(bind(fd, (struct sockaddr *)&a, sizeof a), EINVAL);
}

TEST(link_local_bind_bad_scope, "binding a link-local address with a scope id naming no interface fails with ENODEV", "ipv6(7) sin6_scope_id") {
    int fd = tcp6();
    struct sockaddr_in6 a = ps_sin6("fe80::1", 0);
    a.sin6_scope_id = 999999;
    CHECK_ERR(bind(fd, (struct sockaddr *)&a, sizeof a), ENODEV);
}

TEST(link_local_connect_needs_scope, "a TCP connect to a link-local address without a scope id fails with EINVAL", "ipv6(7) sin6_scope_id") {
    int fd = tcp6();
    struct sockaddr_in6 a = ps_sin6("fe80::2", PORT_ECHO);
    CHECK_ERR(connect(fd, (struct sockaddr *)&a, sizeof a), EINVAL);
}

TEST(global_scope_id_ignored, "a scope id on a global address is ignored: connect works and getpeername reports scope 0", "ipv6(7) sin6_scope_id") {
    int fd = tcp6();
    struct sockaddr_in6 a = ps_sin6(ps_peer6(), PORT_ECHO);
    a.sin6_scope_id = 4242;
    CHECK_OK(connect(fd, (struct sockaddr *)&a, sizeof a));
    echo_roundtrip(fd, "scoped");
    CHECK_EQ(peer_of(fd).sin6_scope_id, 0);
}

/* ---- IPv6 socket options ---- */

TEST(unicast_hops_option, "IPV6_UNICAST_HOPS reads 64 by default, takes 1..255, -1 restores the default, 256 and -2 are EINVAL", "ipv6(7) IPV6_UNICAST_HOPS") {
    int fd = udp6();
    CHECK_EQ(get_int(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS), 64);
    int v = 7;
    CHECK_OK(setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &v, sizeof v));
    CHECK_EQ(get_int(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS), 7);
    v = -1;
    CHECK_OK(setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &v, sizeof v));
    CHECK_EQ(get_int(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS), 64);
    v = 256;
    CHECK_ERR(setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &v, sizeof v), EINVAL);
    v = -2;
    CHECK_ERR(setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &v, sizeof v), EINVAL);
}

TEST(tclass_option, "IPV6_TCLASS reads 0 by default, takes 0..255, -1 means 0, 256 is EINVAL", "ipv6(7) IPV6_TCLASS, RFC 3542 6.5") {
    int fd = tcp6();
    CHECK_EQ(get_int(fd, IPPROTO_IPV6, IPV6_TCLASS), 0);
    int v = 0x28;
    CHECK_OK(setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &v, sizeof v));
    CHECK_EQ(get_int(fd, IPPROTO_IPV6, IPV6_TCLASS), 0x28);
    v = -1;
    CHECK_OK(setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &v, sizeof v));
    CHECK_EQ(get_int(fd, IPPROTO_IPV6, IPV6_TCLASS), 0);
    v = 256;
    CHECK_ERR(setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &v, sizeof v), EINVAL);
}

/* Receive one datagram with a control buffer; returns the cmsg or FAILs. */
static int recv_cmsg_int(int fd, int type) {
    char b[16];
    union { char buf[256]; struct cmsghdr align; } cb;
    struct iovec r = {b, sizeof b};
    struct msghdr m = {.msg_iov = &r, .msg_iovlen = 1, .msg_control = cb.buf, .msg_controllen = sizeof cb.buf};
    wait_readable(fd);
    CHECK(recvmsg(fd, &m, 0) >= 0);
    struct cmsghdr *c = find_cmsg(&m, IPPROTO_IPV6, type);
    if (!c) FAIL("no control message of type %d", type);
    CHECK_EQ(c->cmsg_len, CMSG_LEN(sizeof(int)));
    int v;
    memcpy(&v, CMSG_DATA(c), sizeof v);
    return v;
}

TEST(tclass_received, "a datagram sent with IPV6_TCLASS 0x28 arrives with traffic class 0x28 in IPV6_RECVTCLASS", "ipv6(7), RFC 3542 6.5") {
    int rx = udp6(), tx = udp6();
    bind6(rx, ps_local6(), 0);
    int one = 1, tc = 0x28;
    CHECK_OK(setsockopt(rx, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof one));
    CHECK_OK(setsockopt(tx, IPPROTO_IPV6, IPV6_TCLASS, &tc, sizeof tc));
    struct sockaddr_in6 to = ps_sin6(ps_local6(), ps_local_port(rx));
    CHECK_EQ(sendto(tx, "t", 1, 0, (struct sockaddr *)&to, sizeof to), 1);
    CHECK_EQ(recv_cmsg_int(rx, IPV6_TCLASS), 0x28);
}

TEST(hoplimit_received_wire, "IPV6_RECVHOPLIMIT reports hop limit 64 on a datagram from the directly attached peer", "ipv6(7), RFC 3542 6.3") {
    int fd = udp6();
    int one = 1;
    CHECK_OK(setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof one));
    struct sockaddr_in6 to = ps_sin6(ps_peer6(), PORT_ECHO);
    CHECK_EQ(sendto(fd, "h", 1, 0, (struct sockaddr *)&to, sizeof to), 1);
    CHECK_EQ(recv_cmsg_int(fd, IPV6_HOPLIMIT), 64);
}

TEST(hoplimit_sent, "IPV6_UNICAST_HOPS 9 on the sender shows as hop limit 9 at a local receiver", "ipv6(7) IPV6_UNICAST_HOPS") {
    int rx = udp6(), tx = udp6();
    bind6(rx, ps_local6(), 0);
    int one = 1, hops = 9;
    CHECK_OK(setsockopt(rx, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof one));
    CHECK_OK(setsockopt(tx, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof hops));
    struct sockaddr_in6 to = ps_sin6(ps_local6(), ps_local_port(rx));
    CHECK_EQ(sendto(tx, "9", 1, 0, (struct sockaddr *)&to, sizeof to), 1);
    CHECK_EQ(recv_cmsg_int(rx, IPV6_HOPLIMIT), 9);
}

TEST(hoplimit_tclass_cmsg_sent, "IPV6_HOPLIMIT 7 and IPV6_TCLASS 0x20 control messages on sendmsg set that datagram's hop limit and traffic class only", "ipv6(7), RFC 3542 6.3, 6.5") {
    int rx = udp6(), tx = udp6();
    bind6(rx, ps_local6(), 0);
    int one = 1;
    CHECK_OK(setsockopt(rx, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof one));
    CHECK_OK(setsockopt(rx, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof one));
    struct sockaddr_in6 to = ps_sin6(ps_local6(), ps_local_port(rx));
    union { char buf[2 * CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } cb;
    memset(&cb, 0, sizeof cb);
    struct iovec v = {"c", 1};
    struct msghdr m = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &v, .msg_iovlen = 1,
                       .msg_control = cb.buf, .msg_controllen = sizeof cb.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    int hl = 7, tc = 0x20;
    c->cmsg_level = IPPROTO_IPV6, c->cmsg_type = IPV6_HOPLIMIT, c->cmsg_len = CMSG_LEN(sizeof hl);
    memcpy(CMSG_DATA(c), &hl, sizeof hl);
    c = CMSG_NXTHDR(&m, c);
    c->cmsg_level = IPPROTO_IPV6, c->cmsg_type = IPV6_TCLASS, c->cmsg_len = CMSG_LEN(sizeof tc);
    memcpy(CMSG_DATA(c), &tc, sizeof tc);
    CHECK_EQ(sendmsg(tx, &m, 0), 1);
    /* Both control messages arrive with the one datagram. */
    char b[8];
    union { char buf[256]; struct cmsghdr align; } rb;
    struct iovec r = {b, sizeof b};
    struct msghdr rm = {.msg_iov = &r, .msg_iovlen = 1, .msg_control = rb.buf, .msg_controllen = sizeof rb.buf};
    wait_readable(rx);
    CHECK_EQ(recvmsg(rx, &rm, 0), 1);
    struct cmsghdr *h = find_cmsg(&rm, IPPROTO_IPV6, IPV6_HOPLIMIT), *t = find_cmsg(&rm, IPPROTO_IPV6, IPV6_TCLASS);
    if (!h || !t) FAIL("IPV6_HOPLIMIT or IPV6_TCLASS missing");
    int got;
    memcpy(&got, CMSG_DATA(h), sizeof got);
    CHECK_EQ(got, 7);
    memcpy(&got, CMSG_DATA(t), sizeof got);
    CHECK_EQ(got, 0x20);
    /* The next plain send has the socket's defaults again. */
    CHECK_EQ(sendto(tx, "d", 1, 0, (struct sockaddr *)&to, sizeof to), 1);
    CHECK_EQ(recv_cmsg_int(rx, IPV6_HOPLIMIT), 64);
    /* A hop limit out of range: EINVAL. */
    hl = 256;
    memcpy(CMSG_DATA(CMSG_FIRSTHDR(&m)), &hl, sizeof hl);
    CHECK_ERR(sendmsg(tx, &m, 0), EINVAL);
}

/* The IPV6_RECVERR control message of one MSG_ERRQUEUE read, which must
 * carry `payload`. */
static struct sock_extended_err read_err6(int fd, const char *payload, struct sockaddr_in6 *name,
                                          struct sockaddr_in6 *offender) {
    if (!(poll1(fd, 0, 3000) & POLLERR)) FAIL("no POLLERR within 3 s (no ICMPv6 error?)");
    char b[64];
    union { char buf[512]; struct cmsghdr align; } cb;
    struct iovec r = {b, sizeof b};
    struct msghdr m = {.msg_name = name, .msg_namelen = sizeof *name, .msg_iov = &r, .msg_iovlen = 1,
                       .msg_control = cb.buf, .msg_controllen = sizeof cb.buf};
    size_t n = strlen(payload);
    CHECK_EQ(recvmsg(fd, &m, MSG_ERRQUEUE), (ssize_t)n);
    CHECK(memcmp(b, payload, n) == 0);
    CHECK(m.msg_flags & MSG_ERRQUEUE);
    CHECK_EQ(m.msg_namelen, sizeof *name);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (!c || c->cmsg_level != IPPROTO_IPV6 || c->cmsg_type != IPV6_RECVERR) FAIL("no IPV6_RECVERR control message");
    CHECK_EQ(c->cmsg_len, CMSG_LEN(sizeof(struct sock_extended_err) + sizeof(struct sockaddr_in6)));
    struct sock_extended_err ee;
    memcpy(&ee, CMSG_DATA(c), sizeof ee);
    memcpy(offender, SO_EE_OFFENDER((struct sock_extended_err *)CMSG_DATA(c)), sizeof *offender);
    CHECK_ERR(recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT), EAGAIN);
    return ee;
}

TEST(recverr6_errqueue, "with IPV6_RECVERR an ICMPv6 port unreachable is queued: ECONNREFUSED, origin ICMP6, type 1 code 4, the peer as offender", "ipv6(7) IPV6_RECVERR") {
    int fd = udp6();
    int one = 1;
    CHECK_OK(setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof one));
    struct sockaddr_in6 to = ps_sin6(ps_peer6(), PORT_CLOSED);
    CHECK_EQ(sendto(fd, "lost6", 5, 0, (struct sockaddr *)&to, sizeof to), 5);
    struct sockaddr_in6 name, off;
    struct sock_extended_err ee = read_err6(fd, "lost6", &name, &off);
    CHECK_EQ(ee.ee_errno, ECONNREFUSED);
    CHECK_EQ(ee.ee_origin, SO_EE_ORIGIN_ICMP6);
    CHECK_EQ(ee.ee_type, 1);
    CHECK_EQ(ee.ee_code, 4);
    CHECK_EQ(name.sin6_family, AF_INET6);
    CHECK(in6_eq(&name.sin6_addr, &to.sin6_addr));
    CHECK_EQ(ntohs(name.sin6_port), PORT_CLOSED);
    CHECK_EQ(off.sin6_family, AF_INET6);
    CHECK(in6_eq(&off.sin6_addr, &to.sin6_addr));
    /* Reading the queue took the socket's error with it. */
    CHECK_EQ(poll1(fd, 0, 0) & POLLERR, 0);
}

TEST(recverr_dual_stack_v4, "an IPv6 socket's IP_RECVERR queues ICMP errors about its v4-mapped datagrams, reported as IPV6_RECVERR with a v4-mapped offender", "ipv6(7), ip(7) IP_RECVERR, net/ipv6/datagram.c ipv6_recv_error") {
    int fd = udp6();
    int one = 1;
    CHECK_OK(setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one));
    struct sockaddr_in6 to = ps_sin6(mapped(ps_peer4()), PORT_CLOSED);
    CHECK_EQ(sendto(fd, "lost4", 5, 0, (struct sockaddr *)&to, sizeof to), 5);
    struct sockaddr_in6 name, off;
    struct sock_extended_err ee = read_err6(fd, "lost4", &name, &off);
    CHECK_EQ(ee.ee_errno, ECONNREFUSED);
    CHECK_EQ(ee.ee_origin, SO_EE_ORIGIN_ICMP);
    CHECK_EQ(ee.ee_type, 3);
    CHECK_EQ(ee.ee_code, 3);
    CHECK(in6_eq(&name.sin6_addr, &to.sin6_addr));
    CHECK_EQ(off.sin6_family, AF_INET6);
    CHECK(in6_eq(&off.sin6_addr, &to.sin6_addr));
    /* IP_RECVERR alone does not queue ICMPv6 errors (that is IPV6_RECVERR). */
    struct sockaddr_in6 to6 = ps_sin6(ps_peer6(), PORT_CLOSED);
    CHECK_EQ(sendto(fd, "x", 1, 0, (struct sockaddr *)&to6, sizeof to6), 1);
    ps_sleep_ms(300);
    CHECK_EQ(poll1(fd, 0, 0) & POLLERR, 0);
}

TEST(pktinfo6_received, "IPV6_RECVPKTINFO delivers the destination address and a non-loopback ifindex", "ipv6(7), RFC 3542 6.1") {
    int fd = udp6();
    int one = 1;
    CHECK_OK(setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one));
    struct sockaddr_in6 to = ps_sin6(ps_peer6(), PORT_ECHO);
    CHECK_EQ(sendto(fd, "p", 1, 0, (struct sockaddr *)&to, sizeof to), 1);
    wait_readable(fd);
    char b[8];
    union { char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))]; struct cmsghdr align; } cb;
    struct iovec r = {b, sizeof b};
    struct msghdr m = {.msg_iov = &r, .msg_iovlen = 1, .msg_control = cb.buf, .msg_controllen = sizeof cb.buf};
    CHECK_EQ(recvmsg(fd, &m, 0), 1);
    CHECK_EQ(m.msg_flags, 0);
    struct cmsghdr *c = find_cmsg(&m, IPPROTO_IPV6, IPV6_PKTINFO);
    if (!c) FAIL("no IPV6_PKTINFO control message");
    struct in6_pktinfo pi;
    memcpy(&pi, CMSG_DATA(c), sizeof pi);
    struct in6_addr me = in6(ps_local6());
    CHECK(in6_eq(&pi.ipi6_addr, &me));
    CHECK(pi.ipi6_ifindex > 1);
}

TEST(v6_udp_connect_filters, "a connected IPv6 UDP socket only receives from its peer", "udp(7), ipv6(7)") {
    int fd = udp6();
    bind6(fd, ps_local6(), 0);
    struct sockaddr_in6 peer = ps_sin6(ps_peer6(), PORT_ECHO);
    CHECK_OK(connect(fd, (struct sockaddr *)&peer, sizeof peer));
    int other = udp6();
    struct sockaddr_in6 me = ps_sin6(ps_local6(), ps_local_port(fd));
    CHECK_EQ(sendto(other, "no", 2, 0, (struct sockaddr *)&me, sizeof me), 2);
    CHECK_EQ(send(fd, "yes", 3, 0), 3);
    wait_readable(fd);
    char b[8];
    CHECK_EQ(recv(fd, b, sizeof b, 0), 3);
    CHECK_ERR(recv(fd, b, sizeof b, MSG_DONTWAIT), EAGAIN);
}

/* ---- literal addresses (no getaddrinfo) ---- */

TEST(literal_forms_same_peer, "the long and compressed literal forms of the peer's address reach the same ECHO", "inet_pton(3), RFC 4291 2.2") {
    struct in6_addr a = in6(ps_peer6());
    char full[64];
    snprintf(full, sizeof full, "%x:%x:%x:%x:%x:%x:%x:%x",
             a.s6_addr[0] << 8 | a.s6_addr[1], a.s6_addr[2] << 8 | a.s6_addr[3],
             a.s6_addr[4] << 8 | a.s6_addr[5], a.s6_addr[6] << 8 | a.s6_addr[7],
             a.s6_addr[8] << 8 | a.s6_addr[9], a.s6_addr[10] << 8 | a.s6_addr[11],
             a.s6_addr[12] << 8 | a.s6_addr[13], a.s6_addr[14] << 8 | a.s6_addr[15]);
    struct in6_addr b = in6(full);
    CHECK(in6_eq(&a, &b));
    int fd = ps_tcp_connect6(full, PORT_ECHO);
    echo_roundtrip(fd, "long form");
    struct sockaddr_in6 p = peer_of(fd);
    char txt[INET6_ADDRSTRLEN];
    CHECK(inet_ntop(AF_INET6, &p.sin6_addr, txt, sizeof txt) != NULL);
    char canon[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &a, canon, sizeof canon);
    CHECK(strcmp(txt, canon) == 0);
}

TEST(literal_parsing_rules, "inet_pton accepts ::, ::1 and ::ffff:a.b.c.d, rejects two '::' and a 5th IPv4 octet", "inet_pton(3), RFC 4291 2.2") {
    struct in6_addr a;
    CHECK_EQ(inet_pton(AF_INET6, "::", &a), 1);
    CHECK(IN6_IS_ADDR_UNSPECIFIED(&a));
    CHECK_EQ(inet_pton(AF_INET6, "::1", &a), 1);
    CHECK(IN6_IS_ADDR_LOOPBACK(&a));
    CHECK_EQ(inet_pton(AF_INET6, "::ffff:192.0.2.2", &a), 1);
    CHECK(IN6_IS_ADDR_V4MAPPED(&a));
    CHECK_EQ(a.s6_addr[12], 192);
    CHECK_EQ(a.s6_addr[15], 2);
    CHECK_EQ(inet_pton(AF_INET6, "2001:db8::1::2", &a), 0);
    CHECK_EQ(inet_pton(AF_INET6, "::ffff:192.0.2.2.1", &a), 0);
    CHECK_EQ(inet_pton(AF_INET6, "fe80::1%1", &a), 0);
}
