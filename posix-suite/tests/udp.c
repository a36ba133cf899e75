/* udp: datagram semantics. ICMP errors on connected sockets, zero-length
 * and maximum-size datagrams, truncation, boundaries, source addresses,
 * connect filtering, broadcast permission, FIONREAD, corking, errors. */
#include "../harness.h"

#include <linux/errqueue.h>

/* ---- helpers (static: harness.h is shared) ---- */

static int udp4(void) { return CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0)); }

static int udp4_bound(void) {
    int fd = udp4();
    struct sockaddr_in a = ps_sin(ps_local4(), 0);
    CHECK_OK(bind(fd, (struct sockaddr *)&a, sizeof a));
    return fd;
}

static void udp_connect(int fd, const char *ip, uint16_t port) {
    struct sockaddr_in a = ps_sin(ip, port);
    CHECK_OK(connect(fd, (struct sockaddr *)&a, sizeof a));
}

static int echo_udp(void) {
    int fd = udp4_bound();
    udp_connect(fd, ps_peer4(), PORT_ECHO);
    return fd;
}

static ssize_t send_to(int fd, const void *b, size_t n, const char *ip, uint16_t port) {
    struct sockaddr_in a = ps_sin(ip, port);
    return sendto(fd, b, n, 0, (struct sockaddr *)&a, sizeof a);
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

static void wait_pollerr(int fd) {
    if (!(poll1(fd, 0, 3000) & POLLERR)) FAIL("no POLLERR within 3 s (no ICMP error?)");
}

static uint32_t addr4(const char *ip) { return ps_sin(ip, 0).sin_addr.s_addr; }

static int fionread(int fd) {
    int n = -1;
    CHECK_OK(ioctl(fd, FIONREAD, &n));
    return n;
}

/* ---- echo, addresses ---- */

TEST(udp_echo_sendto_recvfrom, "sendto the ECHO service; recvfrom returns the payload and the peer's address", "udp(7), recvfrom(2)") {
    int fd = udp4();
    CHECK_EQ(send_to(fd, "ping", 4, ps_peer4(), PORT_ECHO), 4);
    wait_readable(fd);
    char b[16];
    struct sockaddr_in from;
    memset(&from, 0xee, sizeof from);
    socklen_t len = sizeof from;
    CHECK_EQ(recvfrom(fd, b, sizeof b, 0, (struct sockaddr *)&from, &len), 4);
    CHECK(memcmp(b, "ping", 4) == 0);
    CHECK_EQ(len, sizeof(struct sockaddr_in));
    CHECK_EQ(from.sin_family, AF_INET);
    CHECK_EQ(ntohs(from.sin_port), PORT_ECHO);
    CHECK_EQ(from.sin_addr.s_addr, addr4(ps_peer4()));
}

TEST(udp_connected_send_recv, "a connected UDP socket exchanges datagrams with send/recv and read/write", "udp(7), connect(2)") {
    int fd = echo_udp();
    CHECK_EQ(send(fd, "abc", 3, 0), 3);
    char b[8];
    wait_readable(fd);
    CHECK_EQ(recv(fd, b, sizeof b, 0), 3);
    CHECK(memcmp(b, "abc", 3) == 0);
    CHECK_EQ(write(fd, "de", 2), 2);
    wait_readable(fd);
    CHECK_EQ(read(fd, b, sizeof b), 2);
    CHECK(memcmp(b, "de", 2) == 0);
}

TEST(udp_autobind_on_sendto, "an unbound UDP socket gets an ephemeral port on its first sendto; address stays 0.0.0.0", "udp(7), ip(7) ip_local_port_range") {
    int fd = udp4();
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    CHECK_OK(getsockname(fd, (struct sockaddr *)&a, &len));
    CHECK_EQ(a.sin_port, 0);
    CHECK_EQ(send_to(fd, "x", 1, ps_peer4(), PORT_ECHO), 1);
    len = sizeof a;
    CHECK_OK(getsockname(fd, (struct sockaddr *)&a, &len));
    CHECK(ntohs(a.sin_port) != 0);
    CHECK_EQ(a.sin_addr.s_addr, htonl(INADDR_ANY));
}

TEST(udp_connect_sets_local_address, "connect on an unbound UDP socket binds the source address for the route and a port", "udp(7), connect(2)") {
    int fd = udp4();
    udp_connect(fd, ps_peer4(), PORT_ECHO);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    CHECK_OK(getsockname(fd, (struct sockaddr *)&a, &len));
    CHECK_EQ(a.sin_addr.s_addr, addr4(ps_local4()));
    CHECK(ntohs(a.sin_port) != 0);
    len = sizeof a;
    CHECK_OK(getpeername(fd, (struct sockaddr *)&a, &len));
    CHECK_EQ(a.sin_addr.s_addr, addr4(ps_peer4()));
    CHECK_EQ(ntohs(a.sin_port), PORT_ECHO);
}

TEST(udp_getpeername_unconnected, "getpeername on an unconnected UDP socket fails with ENOTCONN", "getpeername(2) ENOTCONN") {
    int fd = udp4_bound();
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    CHECK_ERR(getpeername(fd, (struct sockaddr *)&a, &len), ENOTCONN);
}

TEST(udp_recvfrom_short_addrlen, "recvfrom with a 4-byte address buffer truncates the address but reports its full length 16", "recvfrom(2)") {
    int fd = udp4();
    CHECK_EQ(send_to(fd, "x", 1, ps_peer4(), PORT_ECHO), 1);
    wait_readable(fd);
    unsigned char a[16];
    memset(a, 0xee, sizeof a);
    socklen_t len = 4;
    char b[4];
    CHECK_EQ(recvfrom(fd, b, sizeof b, 0, (struct sockaddr *)a, &len), 1);
    CHECK_EQ(len, sizeof(struct sockaddr_in));
    CHECK_EQ(a[0] | a[1] << 8, AF_INET);
    CHECK_EQ(a[2] << 8 | a[3], PORT_ECHO);
    CHECK_EQ(a[4], 0xee);
}

TEST(udp_recvfrom_null_addr, "recvfrom with a NULL address just returns the datagram", "recvfrom(2)") {
    int fd = udp4();
    CHECK_EQ(send_to(fd, "nul", 3, ps_peer4(), PORT_ECHO), 3);
    wait_readable(fd);
    char b[8];
    CHECK_EQ(recvfrom(fd, b, sizeof b, 0, NULL, NULL), 3);
}

/* ---- ICMP port unreachable ---- */

TEST(udp_connected_econnrefused_recv, "a connected UDP socket gets ECONNREFUSED on recv after ICMP port unreachable, once", "udp(7) ERRORS, RFC 1122 4.1.3.3") {
    int fd = udp4_bound();
    udp_connect(fd, ps_peer4(), PORT_CLOSED);
    CHECK_EQ(send(fd, "x", 1, 0), 1);
    wait_pollerr(fd);
    char b[4];
    CHECK_ERR(recv(fd, b, sizeof b, 0), ECONNREFUSED);
    CHECK_ERR(recv(fd, b, sizeof b, MSG_DONTWAIT), EAGAIN);
}

TEST(udp_connected_econnrefused_send, "after ICMP port unreachable the next send fails with ECONNREFUSED, the one after succeeds", "udp(7) ERRORS") {
    int fd = udp4_bound();
    udp_connect(fd, ps_peer4(), PORT_CLOSED);
    CHECK_EQ(send(fd, "x", 1, 0), 1);
    wait_pollerr(fd);
    CHECK_ERR(send(fd, "y", 1, 0), ECONNREFUSED);
    CHECK_EQ(send(fd, "z", 1, 0), 1);
}

TEST(udp_connected_icmp_so_error, "ICMP port unreachable sets SO_ERROR to ECONNREFUSED; reading it clears it and POLLERR", "socket(7) SO_ERROR, udp(7)") {
    int fd = udp4_bound();
    udp_connect(fd, ps_peer4(), PORT_CLOSED);
    CHECK_EQ(send(fd, "x", 1, 0), 1);
    wait_pollerr(fd);
    CHECK_EQ(poll1(fd, POLLIN | POLLOUT, 0), POLLOUT | POLLERR);
    int e = -1;
    socklen_t l = sizeof e;
    CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l));
    CHECK_EQ(e, ECONNREFUSED);
    CHECK_EQ(poll1(fd, POLLIN | POLLOUT, 0), POLLOUT);
    char b[4];
    CHECK_ERR(recv(fd, b, sizeof b, MSG_DONTWAIT), EAGAIN);
}

TEST(udp_unconnected_ignores_icmp, "an unconnected UDP socket (no IP_RECVERR) is not told about ICMP port unreachable", "udp(7) ERRORS, ip(7) IP_RECVERR") {
    int fd = udp4_bound();
    CHECK_EQ(send_to(fd, "x", 1, ps_peer4(), PORT_CLOSED), 1);
    /* Round trip through ECHO after the refused datagram: the ICMP error,
     * if it were reported, is in by the time the echo is back. */
    CHECK_EQ(send_to(fd, "e", 1, ps_peer4(), PORT_ECHO), 1);
    wait_readable(fd);
    CHECK_EQ(poll1(fd, POLLIN | POLLOUT, 0), POLLIN | POLLOUT);
    char b[4];
    CHECK_EQ(recv(fd, b, sizeof b, 0), 1);
    CHECK_EQ(b[0], 'e');
    CHECK_ERR(recv(fd, b, sizeof b, MSG_DONTWAIT), EAGAIN);
}

TEST(udp_recverr_errqueue, "with IP_RECVERR the ICMP error is queued: MSG_ERRQUEUE yields ECONNREFUSED from ICMP type 3 code 3 and the offender", "ip(7) IP_RECVERR") {
    int fd = udp4_bound();
    int one = 1;
    CHECK_OK(setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one));
    CHECK_EQ(send_to(fd, "lost", 4, ps_peer4(), PORT_CLOSED), 4);
    wait_pollerr(fd);
    char b[64];
    union { char buf[512]; struct cmsghdr align; } cb;
    struct sockaddr_in to;
    struct iovec r = {b, sizeof b};
    struct msghdr m = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &r, .msg_iovlen = 1,
                       .msg_control = cb.buf, .msg_controllen = sizeof cb.buf};
    CHECK_EQ(recvmsg(fd, &m, MSG_ERRQUEUE), 4);
    CHECK(memcmp(b, "lost", 4) == 0);
    CHECK(m.msg_flags & MSG_ERRQUEUE);
    CHECK_EQ(to.sin_addr.s_addr, addr4(ps_peer4()));
    CHECK_EQ(ntohs(to.sin_port), PORT_CLOSED);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (!c || c->cmsg_level != IPPROTO_IP || c->cmsg_type != IP_RECVERR) FAIL("no IP_RECVERR control message");
    struct sock_extended_err ee;
    memcpy(&ee, CMSG_DATA(c), sizeof ee);
    CHECK_EQ(ee.ee_errno, ECONNREFUSED);
    CHECK_EQ(ee.ee_origin, SO_EE_ORIGIN_ICMP);
    CHECK_EQ(ee.ee_type, 3);
    CHECK_EQ(ee.ee_code, 3);
    struct sockaddr_in off;
    memcpy(&off, SO_EE_OFFENDER((struct sock_extended_err *)CMSG_DATA(c)), sizeof off);
    CHECK_EQ(off.sin_family, AF_INET);
    CHECK_EQ(off.sin_addr.s_addr, addr4(ps_peer4()));
    CHECK_ERR(recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT), EAGAIN);
}

TEST(udp_recverr_unconnected_error, "with IP_RECVERR an unconnected socket reports the ICMP error on recv; reading the error queue clears it", "ip(7) IP_RECVERR, net/ipv4/udp.c __udp4_lib_err") {
    int a = udp4_bound(), b = udp4_bound();
    int one = 1;
    CHECK_OK(setsockopt(a, IPPROTO_IP, IP_RECVERR, &one, sizeof one));
    CHECK_OK(setsockopt(b, IPPROTO_IP, IP_RECVERR, &one, sizeof one));
    CHECK_EQ(send_to(a, "1", 1, ps_peer4(), PORT_CLOSED), 1);
    CHECK_EQ(send_to(b, "2", 1, ps_peer4(), PORT_CLOSED), 1);
    wait_pollerr(a);
    wait_pollerr(b);
    char buf[8];
    /* a: the error comes first on a plain recv (and is gone after it) */
    CHECK_ERR(recv(a, buf, sizeof buf, MSG_DONTWAIT), ECONNREFUSED);
    /* b: the error queue is read; the socket's error goes with it */
    union { char c[256]; struct cmsghdr align; } cb;
    struct iovec r = {buf, sizeof buf};
    struct msghdr m = {.msg_iov = &r, .msg_iovlen = 1, .msg_control = cb.c, .msg_controllen = sizeof cb.c};
    CHECK_EQ(recvmsg(b, &m, MSG_ERRQUEUE), 1);
    CHECK_EQ(buf[0], '2');
    int e = -1;
    socklen_t l = sizeof e;
    CHECK_OK(getsockopt(b, SOL_SOCKET, SO_ERROR, &e, &l));
    CHECK_EQ(e, 0);
    CHECK_EQ(poll1(b, 0, 0) & POLLERR, 0);
    /* Without IP_RECVERR an unconnected socket ignores the error. */
    int c = udp4_bound();
    CHECK_EQ(send_to(c, "3", 1, ps_peer4(), PORT_CLOSED), 1);
    ps_sleep_ms(200);
    CHECK_EQ(poll1(c, 0, 0) & POLLERR, 0);
    CHECK_ERR(recv(c, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
}

/* ---- sizes ---- */

TEST(udp_zero_length_echo, "a zero-length datagram is sent, echoed and received as a 0-byte read with the source address", "udp(7), recv(2)") {
    int fd = udp4();
    CHECK_EQ(send_to(fd, "", 0, ps_peer4(), PORT_ECHO), 0);
    CHECK_EQ(poll1(fd, POLLIN, 3000), POLLIN);
    char b[8];
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    CHECK_EQ(recvfrom(fd, b, sizeof b, 0, (struct sockaddr *)&from, &len), 0);
    CHECK_EQ(len, sizeof from);
    CHECK_EQ(ntohs(from.sin_port), PORT_ECHO);
    CHECK_ERR(recv(fd, b, sizeof b, MSG_DONTWAIT), EAGAIN);
}

TEST(udp_zero_length_local, "a zero-length datagram between two local sockets is one 0-byte datagram, boundaries kept", "udp(7)") {
    int rx = udp4_bound(), tx = udp4_bound();
    udp_connect(tx, ps_local4(), ps_local_port(rx));
    CHECK_EQ(send(tx, NULL, 0, 0), 0);
    CHECK_EQ(send(tx, "after", 5, 0), 5);
    wait_readable(rx);
    char b[8];
    CHECK_EQ(recv(rx, b, sizeof b, 0), 0);
    wait_readable(rx);
    CHECK_EQ(recv(rx, b, sizeof b, 0), 5);
}

TEST(udp_max_datagram_65507, "a 65507-byte datagram (the IPv4 maximum) is sent, echoed back whole and intact", "udp(7), RFC 791") {
    int fd = echo_udp();
    const size_t n = 65507;
    unsigned char *out = malloc(n), *in = malloc(n + 16);
    for (size_t i = 0; i < n; i++) out[i] = (unsigned char)(i * 7 + 3);
    CHECK_EQ(send(fd, out, n, 0), n);
    wait_readable(fd);
    CHECK_EQ(recv(fd, in, n + 16, 0), n);
    CHECK(memcmp(in, out, n) == 0);
}

TEST(udp_emsgsize_65508, "a 65508-byte datagram fails with EMSGSIZE", "udp(7) EMSGSIZE") {
    int fd = echo_udp();
    char *b = calloc(1, 70000);
    CHECK_ERR(send(fd, b, 65508, 0), EMSGSIZE);
    CHECK_ERR(send_to(fd, b, 65536, ps_peer4(), PORT_ECHO), EMSGSIZE);
}

TEST(udp_fragmented_8k, "an 8000-byte datagram (fragmented on a 1500-byte MTU) is echoed back whole", "udp(7), ip(7)") {
    int fd = echo_udp();
    static unsigned char out[8000], in[9000];
    for (size_t i = 0; i < sizeof out; i++) out[i] = (unsigned char)(i ^ (i >> 8));
    CHECK_EQ(send(fd, out, sizeof out, 0), sizeof out);
    wait_readable(fd);
    CHECK_EQ(recv(fd, in, sizeof in, 0), sizeof out);
    CHECK(memcmp(in, out, sizeof out) == 0);
}

/* ---- truncation, boundaries ---- */

TEST(udp_truncation_discards_rest, "reading a datagram into a short buffer returns the prefix and drops the rest", "udp(7), recv(2)") {
    int fd = echo_udp();
    CHECK_EQ(send(fd, "0123456789", 10, 0), 10);
    CHECK_EQ(send(fd, "next", 4, 0), 4);
    wait_readable(fd);
    char b[16];
    CHECK_EQ(recv(fd, b, 4, 0), 4);
    CHECK(memcmp(b, "0123", 4) == 0);
    wait_readable(fd);
    CHECK_EQ(recv(fd, b, sizeof b, 0), 4);
    CHECK(memcmp(b, "next", 4) == 0);
}

TEST(udp_msg_trunc_real_length, "recv(MSG_TRUNC) on UDP returns the full datagram length", "udp(7) MSG_TRUNC, recv(2)") {
    int fd = echo_udp();
    CHECK_EQ(send(fd, "0123456789", 10, 0), 10);
    wait_readable(fd);
    char b[4];
    CHECK_EQ(recv(fd, b, sizeof b, MSG_TRUNC), 10);
    CHECK(memcmp(b, "0123", 4) == 0);
    CHECK_ERR(recv(fd, b, sizeof b, MSG_DONTWAIT), EAGAIN);
}

TEST(udp_peek_trunc_length, "MSG_PEEK|MSG_TRUNC with a 0-byte buffer gives the next datagram's size without consuming it", "recv(2) MSG_TRUNC") {
    int fd = echo_udp();
    CHECK_EQ(send(fd, "abcdefg", 7, 0), 7);
    wait_readable(fd);
    CHECK_EQ(recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC), 7);
    char b[16];
    CHECK_EQ(recv(fd, b, sizeof b, 0), 7);
}

TEST(udp_recvmsg_trunc_flag, "recvmsg into a short buffer sets MSG_TRUNC in msg_flags; a big enough buffer does not", "recvmsg(2) MSG_TRUNC") {
    int fd = echo_udp();
    CHECK_EQ(send(fd, "0123456789", 10, 0), 10);
    CHECK_EQ(send(fd, "01234", 5, 0), 5);
    char b[8];
    struct iovec r = {b, sizeof b};
    struct msghdr m = {.msg_iov = &r, .msg_iovlen = 1};
    wait_readable(fd);
    CHECK_EQ(recvmsg(fd, &m, 0), 8);
    CHECK_EQ(m.msg_flags, MSG_TRUNC);
    wait_readable(fd);
    CHECK_EQ(recvmsg(fd, &m, 0), 5);
    CHECK_EQ(m.msg_flags, 0);
}

TEST(udp_boundaries_preserved, "three datagrams of 1, 100 and 1000 bytes come back as three reads of those sizes", "udp(7)") {
    int fd = echo_udp();
    static char b[2000];
    size_t sz[3] = {1, 100, 1000};
    for (int i = 0; i < 3; i++) {
        memset(b, 'a' + i, sz[i]);
        CHECK_EQ(send(fd, b, sz[i], 0), sz[i]);
    }
    int seen = 0;
    for (int i = 0; i < 3; i++) {
        wait_readable(fd);
        ssize_t n = recv(fd, b, sizeof b, 0);
        int k = n == 1 ? 0 : n == 100 ? 1 : n == 1000 ? 2 : -1;
        if (k < 0) FAIL("datagram of %zd bytes", n);
        CHECK_EQ(b[0], 'a' + k);
        CHECK_EQ(b[n - 1], 'a' + k);
        seen |= 1 << k;
    }
    CHECK_EQ(seen, 7);
}

TEST(udp_readv_spans_one_datagram, "readv scatters one datagram across buffers and never joins two", "readv(2), udp(7)") {
    int fd = echo_udp();
    CHECK_EQ(send(fd, "abc", 3, 0), 3);
    CHECK_EQ(send(fd, "def", 3, 0), 3);
    char x[2], y[8];
    struct iovec v[2] = {{x, 2}, {y, 8}};
    wait_readable(fd);
    CHECK_EQ(readv(fd, v, 2), 3);
    CHECK(memcmp(x, "ab", 2) == 0 && y[0] == 'c');
}

/* ---- connect filtering ---- */

TEST(udp_connect_filters_sources, "a connected UDP socket drops datagrams from any address but its peer's", "udp(7), connect(2)") {
    int fd = echo_udp();
    int other = udp4_bound();
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    CHECK_OK(getsockname(fd, (struct sockaddr *)&me, &len));
    CHECK_EQ(sendto(other, "intruder", 8, 0, (struct sockaddr *)&me, sizeof me), 8);
    CHECK_EQ(send(fd, "peer", 4, 0), 4);
    wait_readable(fd);
    char b[16];
    CHECK_EQ(recv(fd, b, sizeof b, 0), 4);
    CHECK(memcmp(b, "peer", 4) == 0);
    CHECK_ERR(recv(fd, b, sizeof b, MSG_DONTWAIT), EAGAIN);
}

TEST(udp_unconnected_accepts_all, "an unconnected UDP socket receives from every sender", "udp(7)") {
    int fd = udp4_bound();
    int other = udp4_bound();
    CHECK_EQ(send_to(other, "local", 5, ps_local4(), ps_local_port(fd)), 5);
    CHECK_EQ(send_to(fd, "peer", 4, ps_peer4(), PORT_ECHO), 4);
    char b[16];
    int seen = 0;
    for (int i = 0; i < 2; i++) {
        wait_readable(fd);
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(fd, b, sizeof b, 0, (struct sockaddr *)&from, &len);
        if (n == 5 && from.sin_port == htons(ps_local_port(other))) seen |= 1;
        else if (n == 4 && from.sin_port == htons(PORT_ECHO)) seen |= 2;
        else FAIL("unexpected datagram of %zd bytes", n);
    }
    CHECK_EQ(seen, 3);
}

TEST(udp_connected_sendto_other, "a connected UDP socket may still sendto another destination (Linux)", "udp(7), sendto(2)") {
    int fd = udp4_bound();
    int rx = udp4_bound();
    udp_connect(fd, ps_peer4(), PORT_ECHO);
    CHECK_EQ(send_to(fd, "side", 4, ps_local4(), ps_local_port(rx)), 4);
    wait_readable(rx);
    char b[8];
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    CHECK_EQ(recvfrom(rx, b, sizeof b, 0, (struct sockaddr *)&from, &len), 4);
    CHECK_EQ(ntohs(from.sin_port), ps_local_port(fd));
}

TEST(udp_reconnect_changes_peer, "connecting a UDP socket again switches its peer and its filter", "connect(2), udp(7)") {
    int fd = udp4_bound();
    int first = udp4_bound();
    udp_connect(fd, ps_local4(), ps_local_port(first));
    udp_connect(fd, ps_peer4(), PORT_ECHO);
    CHECK_EQ(send(fd, "2nd", 3, 0), 3);
    wait_readable(fd);
    char b[8];
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    CHECK_EQ(recvfrom(fd, b, sizeof b, 0, (struct sockaddr *)&from, &len), 3);
    CHECK_EQ(ntohs(from.sin_port), PORT_ECHO);
    CHECK_ERR(recv(first, b, sizeof b, MSG_DONTWAIT), EAGAIN);
}

/* ---- errors ---- */

TEST(udp_send_unconnected_edestaddrreq, "send() without a destination on an unconnected UDP socket fails with EDESTADDRREQ", "send(2) EDESTADDRREQ") {
    int fd = udp4_bound();
    CHECK_ERR(send(fd, "x", 1, 0), EDESTADDRREQ);
    CHECK_ERR(write(fd, "x", 1), EDESTADDRREQ);
}

TEST(udp_sendto_port_zero, "sendto port 0 fails with EINVAL", "udp(7)") {
    int fd = udp4();
    CHECK_ERR(send_to(fd, "x", 1, ps_peer4(), 0), EINVAL);
}

TEST(udp_sendto_bad_address, "sendto with a short address length fails with EINVAL; with AF_INET6 in an AF_INET socket, EAFNOSUPPORT", "udp(7), ip(7)") {
    int fd = udp4();
    struct sockaddr_in a = ps_sin(ps_peer4(), PORT_ECHO);
    CHECK_ERR(sendto(fd, "x", 1, 0, (struct sockaddr *)&a, sizeof a - 1), EINVAL);
    a.sin_family = AF_INET6;
    CHECK_ERR(sendto(fd, "x", 1, 0, (struct sockaddr *)&a, sizeof a), EAFNOSUPPORT);
}

TEST(udp_recv_nonblocking_eagain, "recv on an empty non-blocking UDP socket fails with EAGAIN", "udp(7), recv(2)") {
    int fd = CHECK_OK(socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0));
    char b[4];
    CHECK_ERR(recv(fd, b, sizeof b, 0), EAGAIN);
}

TEST(udp_msg_oob, "send(MSG_OOB) on UDP fails with EOPNOTSUPP; recv(MSG_OOB) ignores the flag and returns the datagram", "udp(7), send(2)") {
    int fd = echo_udp();
    CHECK_ERR(send(fd, "x", 1, MSG_OOB), EOPNOTSUPP);
    CHECK_EQ(send(fd, "y", 1, 0), 1);
    wait_readable(fd);
    char b[4];
    CHECK_EQ(recv(fd, b, sizeof b, MSG_OOB), 1);
    CHECK_EQ(b[0], 'y');
}

/* ---- broadcast ---- */

static const char *bcast4(void) {
    static char s[INET_ADDRSTRLEN];
    struct in_addr a = {.s_addr = addr4(ps_local4()) | htonl(0xff)};
    return inet_ntop(AF_INET, &a, s, sizeof s);
}

TEST(udp_broadcast_needs_so_broadcast, "sendto the subnet broadcast address fails with EACCES until SO_BROADCAST is set", "ip(7) SO_BROADCAST, socket(7)") {
    int fd = udp4();
    int v = -1;
    socklen_t l = sizeof v;
    CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_BROADCAST, &v, &l));
    CHECK_EQ(v, 0);
    CHECK_ERR(send_to(fd, "b", 1, bcast4(), 9), EACCES);
    int one = 1;
    CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one));
    CHECK_EQ(send_to(fd, "b", 1, bcast4(), 9), 1);
}

TEST(udp_broadcast_connect_eacces, "connect to the broadcast address without SO_BROADCAST fails with EACCES", "ip(7) SO_BROADCAST") {
    int fd = udp4();
    struct sockaddr_in a = ps_sin(bcast4(), 9);
    CHECK_ERR(connect(fd, (struct sockaddr *)&a, sizeof a), EACCES);
    int one = 1;
    CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one));
    CHECK_OK(connect(fd, (struct sockaddr *)&a, sizeof a));
}

TEST(udp_broadcast_looped_back, "a broadcast datagram is also delivered to a local wildcard-bound socket on that port", "ip(7) SO_BROADCAST") {
    int rx = udp4();
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
    CHECK_OK(bind(rx, (struct sockaddr *)&any, sizeof any));
    int tx = udp4();
    int one = 1;
    CHECK_OK(setsockopt(tx, SOL_SOCKET, SO_BROADCAST, &one, sizeof one));
    CHECK_EQ(send_to(tx, "all", 3, bcast4(), ps_local_port(rx)), 3);
    wait_readable(rx);
    char b[8];
    CHECK_EQ(recv(rx, b, sizeof b, 0), 3);
    CHECK(memcmp(b, "all", 3) == 0);
}

/* ---- FIONREAD ---- */

TEST(udp_fionread_next_datagram, "FIONREAD on UDP gives the size of the next datagram, not the total queued", "udp(7) FIONREAD") {
    int fd = echo_udp();
    CHECK_EQ(fionread(fd), 0);
    static char b[512];
    CHECK_EQ(send(fd, b, 100, 0), 100);
    wait_readable(fd);
    CHECK_EQ(send(fd, b, 200, 0), 200);
    /* Once the second echo is surely in (a third round trip), the answer
     * is still the first datagram's size. */
    int w = echo_udp();
    CHECK_EQ(send(w, "w", 1, 0), 1);
    wait_readable(w);
    ps_sleep_ms(10);
    CHECK_EQ(fionread(fd), 100);
    CHECK_EQ(recv(fd, b, sizeof b, 0), 100);
    wait_readable(fd);
    CHECK_EQ(fionread(fd), 200);
    CHECK_EQ(recv(fd, b, sizeof b, 0), 200);
    CHECK_EQ(fionread(fd), 0);
}

TEST(udp_fionread_zero_length, "FIONREAD is 0 for a queued zero-length datagram even though the socket is readable", "udp(7) FIONREAD") {
    int fd = echo_udp();
    CHECK_EQ(send(fd, "", 0, 0), 0);
    wait_readable(fd);
    CHECK_EQ(fionread(fd), 0);
    char b[4];
    CHECK_EQ(recv(fd, b, sizeof b, MSG_DONTWAIT), 0);
    CHECK_ERR(recv(fd, b, sizeof b, MSG_DONTWAIT), EAGAIN);
}

/* ---- corking, poll ---- */

TEST(udp_cork_joins, "UDP_CORK gathers several sends into one datagram, sent when uncorked", "udp(7) UDP_CORK") {
    int fd = echo_udp();
    int on = 1, off = 0;
    CHECK_OK(setsockopt(fd, IPPROTO_UDP, UDP_CORK, &on, sizeof on));
    CHECK_EQ(send(fd, "ab", 2, 0), 2);
    CHECK_EQ(send(fd, "cd", 2, 0), 2);
    CHECK_EQ(poll1(fd, POLLIN, 50), 0);
    CHECK_OK(setsockopt(fd, IPPROTO_UDP, UDP_CORK, &off, sizeof off));
    wait_readable(fd);
    char b[8];
    CHECK_EQ(recv(fd, b, sizeof b, 0), 4);
    CHECK(memcmp(b, "abcd", 4) == 0);
}

TEST(udp_cork_oversize_drops_all, "a corked datagram that would pass 65507 bytes fails EMSGSIZE and is dropped whole", "udp(7) UDP_CORK, net/ipv4/udp.c udp_sendmsg") {
    int fd = echo_udp();
    static char big[40000];
    memset(big, 'z', sizeof big);
    CHECK_EQ(send(fd, big, sizeof big, MSG_MORE), (ssize_t)sizeof big);
    CHECK_ERR(send(fd, big, sizeof big, MSG_MORE), EMSGSIZE);
    /* What was gathered is gone: the next datagram is only this one. */
    CHECK_EQ(send(fd, "q", 1, 0), 1);
    wait_readable(fd);
    char b[8];
    CHECK_EQ(recv(fd, b, sizeof b, MSG_TRUNC), 1);
    CHECK_EQ(b[0], 'q');
}

TEST(udp_cork_first_destination, "a corked datagram goes to the first send's address; later sendto addresses are ignored", "udp(7) UDP_CORK, net/ipv4/udp.c udp_sendmsg") {
    int fd = udp4_bound();
    int on = 1, off = 0;
    CHECK_OK(setsockopt(fd, IPPROTO_UDP, UDP_CORK, &on, sizeof on));
    CHECK_EQ(send_to(fd, "ab", 2, ps_peer4(), PORT_ECHO), 2);
    CHECK_EQ(send_to(fd, "cd", 2, ps_peer4(), 9), 2);
    CHECK_OK(setsockopt(fd, IPPROTO_UDP, UDP_CORK, &off, sizeof off));
    wait_readable(fd);
    char b[8];
    CHECK_EQ(recv(fd, b, sizeof b, 0), 4);
    CHECK(memcmp(b, "abcd", 4) == 0);
}

TEST(udp_poll_readable, "a UDP socket polls POLLOUT when idle and POLLIN|POLLOUT with a datagram queued", "poll(2), udp(7)") {
    int fd = echo_udp();
    CHECK_EQ(poll1(fd, POLLIN | POLLOUT, 0), POLLOUT);
    CHECK_EQ(send(fd, "x", 1, 0), 1);
    wait_readable(fd);
    CHECK_EQ(poll1(fd, POLLIN | POLLOUT, 0), POLLIN | POLLOUT);
}

TEST(udp_many_datagrams_echo, "200 datagrams sent one at a time through ECHO all come back intact", "udp(7)") {
    int fd = echo_udp();
    int seen[200] = {0};
    for (int i = 0; i < 200; i++) {
        char b[64];
        int n = snprintf(b, sizeof b, "dgram %d", i);
        CHECK_EQ(send(fd, b, (size_t)n, 0), n);
        wait_readable(fd);
        char r[64] = "";
        ssize_t got = recv(fd, r, sizeof r - 1, 0);
        CHECK_EQ(got, n);
        int k = -1;
        if (sscanf(r, "dgram %d", &k) != 1 || k < 0 || k >= 200) FAIL("bad datagram '%s'", r);
        seen[k]++;
    }
    for (int i = 0; i < 200; i++) CHECK_EQ(seen[i], 1);
}
