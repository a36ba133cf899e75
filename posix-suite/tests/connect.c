/* connect(): success, refusal, non-blocking progress, repeated calls,
 * AF_UNSPEC, UDP associations, timeouts. */
#include "api_util.h"

static int so_error(int fd) { return geti(fd, SOL_SOCKET, SO_ERROR); }

/* Non-blocking connect to the peer; returns the fd (EINPROGRESS asserted). */
static int connect_nb(uint16_t port) {
    int fd = (int)CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    CHECK_ERR(connect4_r(fd, peer4(port)), EINPROGRESS);
    return fd;
}

TEST(connect_echo, "a blocking connect to a listening peer returns 0", "connect(2)") {
    int fd = tcp4();
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    echo_roundtrip(fd, "hello");
}

TEST(connect_echo6, "a blocking IPv6 connect to a listening peer returns 0", "connect(2), ipv6(7)") {
    int fd = ps_tcp_connect6(ps_peer6(), PORT_ECHO);
    echo_roundtrip(fd, "hello6");
}

TEST(refused, "connect to a port nobody listens on fails ECONNREFUSED", "connect(2) ERRORS") {
    int fd = tcp4();
    CHECK_ERR(connect4_r(fd, peer4(PORT_CLOSED)), ECONNREFUSED);
}

TEST(refused6, "IPv6 connect to a closed port fails ECONNREFUSED", "connect(2) ERRORS, ipv6(7)") {
    int fd = tcp6();
    struct sockaddr_in6 a = ps_sin6(ps_peer6(), PORT_CLOSED);
    CHECK_ERR(connect(fd, SA(&a), sizeof a), ECONNREFUSED);
}

TEST(refused_so_error_consumed, "after a refused blocking connect, SO_ERROR is 0", "connect(2), socket(7) SO_ERROR") {
    int fd = tcp4();
    CHECK_ERR(connect4_r(fd, peer4(PORT_CLOSED)), ECONNREFUSED);
    CHECK_EQ(so_error(fd), 0);
}

TEST(refused_then_retry, "a socket whose connect was refused can connect again", "connect(2)") {
    int fd = tcp4();
    CHECK_ERR(connect4_r(fd, peer4(PORT_CLOSED)), ECONNREFUSED);
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    echo_roundtrip(fd, "again");
}

TEST(nonblock_einprogress, "a non-blocking connect returns EINPROGRESS, then POLLOUT and SO_ERROR 0", "connect(2) EINPROGRESS") {
    int fd = connect_nb(PORT_ECHO);
    CHECK_EQ(pollfd1(fd, POLLOUT, 3000) & (POLLOUT | POLLERR | POLLHUP), POLLOUT);
    CHECK_EQ(so_error(fd), 0);
    CHECK_SIN(peername4(fd), ps_peer4(), PORT_ECHO);
    echo_roundtrip(fd, "nb");
}

TEST(nonblock_refused, "a refused non-blocking connect polls POLLOUT|POLLERR|POLLHUP, SO_ERROR ECONNREFUSED", "connect(2) EINPROGRESS, poll(2)") {
    int fd = connect_nb(PORT_CLOSED);
    int ev = pollfd1(fd, POLLOUT, 3000);
    CHECK_EQ(ev & (POLLOUT | POLLERR | POLLHUP), POLLOUT | POLLERR | POLLHUP);
    CHECK_EQ(so_error(fd), ECONNREFUSED);
}

TEST(so_error_clears, "reading SO_ERROR clears it", "socket(7) SO_ERROR") {
    int fd = connect_nb(PORT_CLOSED);
    pollfd1(fd, POLLOUT, 3000);
    CHECK_EQ(so_error(fd), ECONNREFUSED);
    CHECK_EQ(so_error(fd), 0);
}

TEST(nonblock_refused_connect_again, "connect again after an async refusal reports ECONNREFUSED", "connect(2), net/ipv4/af_inet.c __inet_stream_connect") {
    int fd = connect_nb(PORT_CLOSED);
    pollfd1(fd, POLLOUT, 3000);
    CHECK_ERR(connect4_r(fd, peer4(PORT_CLOSED)), ECONNREFUSED);
}

TEST(nonblock_refused_read_then_connect, "after SO_ERROR was read, connect again reports ECONNABORTED", "net/ipv4/af_inet.c __inet_stream_connect") {
    int fd = connect_nb(PORT_CLOSED);
    pollfd1(fd, POLLOUT, 3000);
    CHECK_EQ(so_error(fd), ECONNREFUSED);
    CHECK_ERR(connect4_r(fd, peer4(PORT_CLOSED)), ECONNABORTED);
    /* ...after which the socket is unconnected and can try again */
    CHECK_ERR(connect4_r(fd, peer4(PORT_ECHO)), EINPROGRESS);
    CHECK_EQ(pollfd1(fd, POLLOUT, 3000) & (POLLOUT | POLLERR), POLLOUT);
}

TEST(nonblock_read_before_connected, "read during a pending non-blocking connect fails EAGAIN", "connect(2), recv(2)") {
    int fd = connect_nb(PORT_BLACKHOLE);
    char c;
    CHECK_ERR(read(fd, &c, 1), EAGAIN);
}

TEST(nonblock_write_before_connected, "write during a pending non-blocking connect fails EAGAIN", "connect(2), send(2)") {
    int fd = connect_nb(PORT_BLACKHOLE);
    CHECK_ERR(write(fd, "x", 1), EAGAIN);
}

TEST(ealready, "a second connect while one is in progress fails EALREADY", "connect(2) ERRORS") {
    int fd = connect_nb(PORT_BLACKHOLE);
    CHECK_ERR(connect4_r(fd, peer4(PORT_BLACKHOLE)), EALREADY);
    CHECK_ERR(connect4_r(fd, peer4(PORT_ECHO)), EALREADY);
}

TEST(pending_getpeername, "getpeername during a pending connect fails ENOTCONN", "getpeername(2)") {
    int fd = connect_nb(PORT_BLACKHOLE);
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    CHECK_ERR(getpeername(fd, SA(&a), &l), ENOTCONN);
    CHECK_SIN(sockname4(fd), ps_local4(), -1);
    CHECK(ps_local_port(fd) != 0);
}

TEST(pending_poll_nothing, "a pending connect polls neither readable nor writable", "poll(2), connect(2)") {
    int fd = connect_nb(PORT_BLACKHOLE);
    CHECK_EQ(pollfd1(fd, POLLIN | POLLOUT, 200), 0);
}

TEST(eisconn, "connect on a connected socket fails EISCONN", "connect(2) ERRORS") {
    int fd = peer_tcp(PORT_ECHO);
    CHECK_ERR(connect4_r(fd, peer4(PORT_ECHO)), EISCONN);
    CHECK_ERR(connect4_r(fd, peer4(PORT_DISCARD)), EISCONN);
}

TEST(nonblock_connect_again_zero, "connect after an async connect completed returns 0 once, then EISCONN", "net/ipv4/af_inet.c __inet_stream_connect") {
    int fd = connect_nb(PORT_ECHO);
    CHECK_EQ(pollfd1(fd, POLLOUT, 3000) & POLLOUT, POLLOUT);
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    CHECK_ERR(connect4_r(fd, peer4(PORT_ECHO)), EISCONN);
}

TEST(getpeername_enotconn, "getpeername before connect fails ENOTCONN", "getpeername(2) ERRORS") {
    int fd = tcp4();
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    CHECK_ERR(getpeername(fd, SA(&a), &l), ENOTCONN);
}

TEST(getpeername_after, "getpeername after connect names the peer, length 16", "getpeername(2)") {
    int fd = peer_tcp(PORT_ECHO);
    CHECK_SIN(peername4(fd), ps_peer4(), PORT_ECHO);
}

TEST(getsockname_after, "connect binds the local address and an ephemeral port", "connect(2), ip(7)") {
    long lo = read_proc_long("/proc/sys/net/ipv4/ip_local_port_range", 0);
    long hi = read_proc_long("/proc/sys/net/ipv4/ip_local_port_range", 1);
    int fd = peer_tcp(PORT_ECHO);
    struct sockaddr_in a = sockname4(fd);
    CHECK_SIN(a, ps_local4(), -1);
    long p = ntohs(a.sin_port);
    if (p < lo || p > hi) FAIL("port %ld outside %ld..%ld", p, lo, hi);
}

TEST(connect_bound_port, "connect from an explicitly bound port uses it", "connect(2), bind(2)") {
    int fd = tcp4();
    bind4(fd, local4(0));
    uint16_t p = ps_local_port(fd);
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    CHECK_EQ(ps_local_port(fd), p);
    echo_roundtrip(fd, "bound");
}

TEST(connect_wildcard_bound, "a socket bound to 0.0.0.0 gets the route's source address on connect", "connect(2), ip(7)") {
    int fd = tcp4();
    bind4(fd, sin_any(0));
    uint16_t p = ps_local_port(fd);
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    CHECK_SIN(sockname4(fd), ps_local4(), p);
}

TEST(bad_addrlen, "connect with an addrlen shorter than sockaddr_in fails EINVAL", "connect(2) ERRORS") {
    int fd = tcp4();
    struct sockaddr_in a = peer4(PORT_ECHO);
    CHECK_ERR(connect(fd, SA(&a), sizeof a - 1), EINVAL);
    int u = udp4();
    CHECK_ERR(connect(u, SA(&a), 8), EINVAL);
}

TEST(wrong_family, "connect with a sockaddr_in6 on an AF_INET socket fails EAFNOSUPPORT", "connect(2) ERRORS") {
    int fd = tcp4();
    struct sockaddr_in6 a = ps_sin6(ps_peer6(), PORT_ECHO);
    CHECK_ERR(connect(fd, SA(&a), sizeof a), EAFNOSUPPORT);
}

TEST(unspec_short_len, "connect AF_UNSPEC with addrlen below sizeof(sa_family_t) fails EINVAL", "connect(2)") {
    int fd = udp4();
    struct sockaddr a = {.sa_family = AF_UNSPEC};
    CHECK_ERR(connect(fd, &a, 1), EINVAL);
}

TEST(connect_notsock, "connect on a pipe fails ENOTSOCK, on a bad fd EBADF", "connect(2) ERRORS") {
    int p[2];
    CHECK_OK(pipe(p));
    struct sockaddr_in a = peer4(PORT_ECHO);
    CHECK_ERR(connect(p[0], SA(&a), sizeof a), ENOTSOCK);
    CHECK_ERR(connect(999, SA(&a), sizeof a), EBADF);
}

TEST(tcp_broadcast, "a TCP connect to the subnet broadcast address fails ENETUNREACH", "net/ipv4/tcp_ipv4.c tcp_v4_connect") {
    int fd = tcp4();
    CHECK_ERR(connect4_r(fd, ps_sin("192.0.2.255", PORT_ECHO)), ENETUNREACH);
}

TEST(tcp_multicast, "a TCP connect to a multicast address fails ENETUNREACH", "net/ipv4/tcp_ipv4.c tcp_v4_connect") {
    int fd = tcp4();
    CHECK_ERR(connect4_r(fd, ps_sin("224.0.0.1", PORT_ECHO)), ENETUNREACH);
}

TEST(unreachable_host, "connect to an on-link address nobody answers fails EHOSTUNREACH", "connect(2), RFC 1122 3.3.8") {
    int fd = (int)CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    CHECK_ERR(connect4_r(fd, ps_sin("192.0.2.3", PORT_ECHO)), EINPROGRESS);
    int ev = pollfd1(fd, POLLOUT, 6000);
    if (!(ev & POLLERR)) FAIL("no error within 6 s (revents 0x%x)", ev);
    CHECK_EQ(so_error(fd), EHOSTUNREACH);
}

TEST(loopback, "connect to a 127.0.0.1 listener goes over the kernel's loopback", "connect(2), ip(7)") {
    int l = ps_tcp_listen4("127.0.0.1", 0, 4);
    int fd = ps_tcp_connect4("127.0.0.1", ps_local_port(l));
    CHECK_SIN(sockname4(fd), "127.0.0.1", -1);
    CHECK_SIN(peername4(fd), "127.0.0.1", ps_local_port(l));
    int s = (int)CHECK_OK(accept(l, NULL, NULL));
    ps_write_all(fd, "lo", 2);
    char buf[2];
    read_exact_ms(s, buf, 2, 3000);
}

TEST(loopback_refused, "connect to a closed 127.0.0.1 port fails ECONNREFUSED", "connect(2)") {
    int t = tcp4();
    bind4(t, lo4(0));
    uint16_t p = ps_local_port(t);
    close(t);
    int fd = tcp4();
    CHECK_ERR(connect4_r(fd, lo4(p)), ECONNREFUSED);
}

TEST(connect_any_is_local, "connect to 0.0.0.0 reaches a local listener", "ip(7), net/ipv4/route.c") {
    int l = ps_tcp_listen4("127.0.0.1", 0, 4);
    int fd = tcp4();
    CHECK_OK(connect4_r(fd, sin_any(ps_local_port(l))));
    CHECK_SIN(peername4(fd), "127.0.0.1", ps_local_port(l));
}

TEST(connect_own_address, "connect to this side's own address reaches a local listener", "connect(2)") {
    int l = listen_local(4);
    int fd = ps_tcp_connect4(ps_local4(), ps_local_port(l));
    CHECK_SIN(peername4(fd), ps_local4(), ps_local_port(l));
    CHECK_SIN(sockname4(fd), ps_local4(), -1);
    int s = (int)CHECK_OK(accept(l, NULL, NULL));
    CHECK_SIN(peername4(s), ps_local4(), ps_local_port(fd));
}

TEST(sndtimeo_blackhole, "a blocking connect with SO_SNDTIMEO fails EINPROGRESS after the timeout", "socket(7) SO_SNDTIMEO, connect(2)") {
    int fd = tcp4();
    struct timeval tv = {0, 300000};
    CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv));
    long t0 = ps_now_ms();
    CHECK_ERR(connect4_r(fd, peer4(PORT_BLACKHOLE)), EINPROGRESS);
    CHECK_ELAPSED(t0, 250, 2000);
    /* still connecting */
    CHECK_ERR(connect4_r(fd, peer4(PORT_BLACKHOLE)), EALREADY);
}

TEST(syncnt_timeout, "TCP_SYNCNT 1: an unanswered connect fails ETIMEDOUT after about 3 s", "tcp(7) TCP_SYNCNT") {
    int fd = tcp4();
    seti(fd, IPPROTO_TCP, TCP_SYNCNT, 1);
    long t0 = ps_now_ms();
    CHECK_ERR(connect4_r(fd, peer4(PORT_BLACKHOLE)), ETIMEDOUT);
    CHECK_ELAPSED(t0, 2500, 6000);
}

TEST(syncnt_timeout_nonblock, "TCP_SYNCNT 1, non-blocking: POLLERR and SO_ERROR ETIMEDOUT", "tcp(7) TCP_SYNCNT") {
    int fd = (int)CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    seti(fd, IPPROTO_TCP, TCP_SYNCNT, 1);
    CHECK_ERR(connect4_r(fd, peer4(PORT_BLACKHOLE)), EINPROGRESS);
    int ev = pollfd1(fd, POLLOUT, 6000);
    CHECK(ev & POLLERR);
    CHECK_EQ(so_error(fd), ETIMEDOUT);
}

TEST(user_timeout_connect, "TCP_USER_TIMEOUT bounds an unanswered connect: ETIMEDOUT", "tcp(7) TCP_USER_TIMEOUT") {
    int fd = tcp4();
    seti(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, 500);
    long t0 = ps_now_ms();
    CHECK_ERR(connect4_r(fd, peer4(PORT_BLACKHOLE)), ETIMEDOUT);
    CHECK_ELAPSED(t0, 400, 4000);
}

TEST(close_pending, "closing a socket with a pending connect is immediate", "close(2)") {
    int fd = connect_nb(PORT_BLACKHOLE);
    long t0 = ps_now_ms();
    CHECK_OK(close(fd));
    CHECK_ELAPSED(t0, 0, 200);
}

TEST(tcp_unspec_disconnect, "connect(AF_UNSPEC) on a connected TCP socket disconnects it", "connect(2)") {
    int fd = peer_tcp(PORT_ECHO);
    struct sockaddr a = {.sa_family = AF_UNSPEC};
    CHECK_OK(connect(fd, &a, sizeof a));
    struct sockaddr_in p;
    socklen_t l = sizeof p;
    CHECK_ERR(getpeername(fd, SA(&p), &l), ENOTCONN);
    CHECK_EQ(geti(fd, IPPROTO_TCP, TCP_INFO) & 0xff, TCP_CLOSE);
}

TEST(tcp_unspec_reconnect, "a TCP socket disconnected with AF_UNSPEC can connect again", "connect(2)") {
    int fd = peer_tcp(PORT_ECHO);
    struct sockaddr a = {.sa_family = AF_UNSPEC};
    CHECK_OK(connect(fd, &a, sizeof a));
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    echo_roundtrip(fd, "reborn");
}

TEST(udp_connect_send, "a connected UDP socket sends without an address and gets the reply", "connect(2), udp(7)") {
    int fd = udp4();
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    CHECK_EQ(send(fd, "dgram", 5, 0), 5);
    char buf[16];
    wait_readable(fd, 3000);
    CHECK_EQ(recv(fd, buf, sizeof buf, 0), 5);
    CHECK(!memcmp(buf, "dgram", 5));
}

TEST(udp_connect_names, "UDP connect sets the peer name and binds the local address", "connect(2), udp(7)") {
    int fd = udp4();
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    CHECK_SIN(peername4(fd), ps_peer4(), PORT_ECHO);
    CHECK_SIN(sockname4(fd), ps_local4(), -1);
    CHECK(ps_local_port(fd) != 0);
}

TEST(udp_connect_twice, "a connected UDP socket can connect to another peer (no EISCONN)", "connect(2), udp(7)") {
    int fd = udp4();
    CHECK_OK(connect4_r(fd, peer4(PORT_CLOSED)));
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    CHECK_SIN(peername4(fd), ps_peer4(), PORT_ECHO);
}

TEST(udp_connect_filters, "a connected UDP socket drops datagrams from other sources", "udp(7), connect(2)") {
    int fd = udp4();
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    struct sockaddr_in me = sockname4(fd);
    int other = udp4();
    CHECK_EQ(sendto(other, "stranger", 8, 0, SA(&me), sizeof me), 8);
    ps_sleep_ms(50);
    CHECK_EQ(send(fd, "friend", 6, 0), 6);
    char buf[16];
    wait_readable(fd, 3000);
    CHECK_EQ(recv(fd, buf, sizeof buf, 0), 6);
    CHECK(!memcmp(buf, "friend", 6));
    CHECK_ERR(recv(fd, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
}

TEST(udp_sendto_other_while_connected, "sendto another address on a connected UDP socket succeeds", "udp(7), sendto(2)") {
    int fd = udp4();
    CHECK_OK(connect4_r(fd, peer4(PORT_CLOSED)));
    struct sockaddr_in echo = peer4(PORT_ECHO);
    CHECK_EQ(sendto(fd, "x", 1, 0, SA(&echo), sizeof echo), 1);
}

TEST(udp_unspec_dissolves, "connect(AF_UNSPEC) dissolves a UDP association", "connect(2), udp(7)") {
    int fd = udp4();
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    struct sockaddr a = {.sa_family = AF_UNSPEC};
    CHECK_OK(connect(fd, &a, sizeof a));
    struct sockaddr_in p;
    socklen_t l = sizeof p;
    CHECK_ERR(getpeername(fd, SA(&p), &l), ENOTCONN);
    CHECK_ERR(send(fd, "x", 1, 0), EDESTADDRREQ);
}

TEST(udp_unspec_autobound_port_lost, "dissolving an association made by connect also drops the auto-bound port", "net/ipv4/udp.c __udp_disconnect") {
    int fd = udp4();
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    struct sockaddr a = {.sa_family = AF_UNSPEC};
    CHECK_OK(connect(fd, &a, sizeof a));
    CHECK_SIN(sockname4(fd), "0.0.0.0", 0);
}

TEST(udp_unspec_bound_port_kept, "dissolving an association keeps a port that bind() named explicitly", "net/ipv4/udp.c __udp_disconnect") {
    int t = udp4();
    bind4(t, sin_any(0));
    uint16_t p = ps_local_port(t);
    close(t);
    int fd = udp4();
    bind4(fd, sin_any(p));
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    struct sockaddr a = {.sa_family = AF_UNSPEC};
    CHECK_OK(connect(fd, &a, sizeof a));
    CHECK_SIN(sockname4(fd), "0.0.0.0", p);
}

TEST(udp_unspec_port0_bind_lost, "a port obtained by bind(port 0) is dropped like an auto-bound one", "net/ipv4/udp.c __udp_disconnect, SOCK_BINDPORT_LOCK") {
    int fd = udp4();
    bind4(fd, sin_any(0));
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    struct sockaddr a = {.sa_family = AF_UNSPEC};
    CHECK_OK(connect(fd, &a, sizeof a));
    CHECK_SIN(sockname4(fd), "0.0.0.0", 0);
}

TEST(udp_unspec_bound_addr_kept, "dissolving an association keeps an explicitly bound address", "net/ipv4/udp.c __udp_disconnect") {
    int fd = udp4();
    bind4(fd, local4(0));
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    struct sockaddr a = {.sa_family = AF_UNSPEC};
    CHECK_OK(connect(fd, &a, sizeof a));
    CHECK_SIN(sockname4(fd), ps_local4(), -1);
}

TEST(udp_unspec_unconnected, "connect(AF_UNSPEC) on an unconnected UDP socket succeeds", "connect(2)") {
    int fd = udp4();
    struct sockaddr a = {.sa_family = AF_UNSPEC};
    CHECK_OK(connect(fd, &a, sizeof a));
}

TEST(udp_unspec_then_sendto, "after dissolving, sendto with an address works again", "connect(2), udp(7)") {
    int fd = udp4();
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    struct sockaddr a = {.sa_family = AF_UNSPEC};
    CHECK_OK(connect(fd, &a, sizeof a));
    struct sockaddr_in echo = peer4(PORT_ECHO);
    CHECK_EQ(sendto(fd, "again", 5, 0, SA(&echo), sizeof echo), 5);
    char buf[8];
    wait_readable(fd, 3000);
    CHECK_EQ(recv(fd, buf, sizeof buf, 0), 5);
}

TEST(udp_connect_refused_later, "a connected UDP socket reports ECONNREFUSED after the port-unreachable", "udp(7) ERRORS, RFC 1122 4.1.3.3") {
    int fd = udp4();
    CHECK_OK(connect4_r(fd, peer4(PORT_CLOSED)));
    CHECK_EQ(send(fd, "x", 1, 0), 1);
    wait_readable(fd, 3000);
    char buf[4];
    CHECK_ERR(recv(fd, buf, sizeof buf, 0), ECONNREFUSED);
    CHECK_ERR(recv(fd, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
}
