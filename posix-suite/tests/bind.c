/* bind(): port 0, conflicts, SO_REUSEADDR, SO_REUSEPORT, wildcard vs
 * specific, bad arguments, and the quirks Linux keeps for compatibility. */
#include "api_util.h"

static void ephemeral_range(long *lo, long *hi) {
    *lo = read_proc_long("/proc/sys/net/ipv4/ip_local_port_range", 0);
    *hi = read_proc_long("/proc/sys/net/ipv4/ip_local_port_range", 1);
}

/* A port that is free right now (bound then released). */
static uint16_t free_port(int type) {
    int fd = (int)CHECK_OK(socket(AF_INET, type, 0));
    bind4(fd, local4(0));
    uint16_t p = ps_local_port(fd);
    close(fd);
    return p;
}

static int tcp_reuse(int on) {
    int fd = tcp4();
    seti(fd, SOL_SOCKET, SO_REUSEADDR, on);
    return fd;
}

TEST(port0_assigns, "binding port 0 assigns an ephemeral port from ip_local_port_range", "ip(7) ip_local_port_range, bind(2)") {
    long lo, hi;
    ephemeral_range(&lo, &hi);
    int fd = tcp4();
    bind4(fd, local4(0));
    struct sockaddr_in a = sockname4(fd);
    CHECK_SIN(a, ps_local4(), -1);
    long p = ntohs(a.sin_port);
    if (p < lo || p > hi) FAIL("port %ld outside %ld..%ld", p, lo, hi);
}

TEST(port0_udp, "a UDP bind to port 0 assigns an ephemeral port", "udp(7), bind(2)") {
    int fd = udp4();
    bind4(fd, local4(0));
    CHECK(ps_local_port(fd) != 0);
    CHECK_SIN(sockname4(fd), ps_local4(), -1);
}

TEST(port0_distinct, "two sockets bound to port 0 get different ports", "bind(2)") {
    int a = tcp4(), b = tcp4();
    bind4(a, local4(0));
    bind4(b, local4(0));
    CHECK(ps_local_port(a) != ps_local_port(b));
}

TEST(bind_any, "binding INADDR_ANY:0 names 0.0.0.0 and a port", "ip(7) INADDR_ANY") {
    int fd = tcp4();
    bind4(fd, sin_any(0));
    struct sockaddr_in a = sockname4(fd);
    CHECK_SIN(a, "0.0.0.0", -1);
    CHECK(a.sin_port != 0);
}

TEST(bind_specific_port, "binding a chosen free port reports that port", "bind(2)") {
    uint16_t p = free_port(SOCK_STREAM);
    int fd = tcp4();
    bind4(fd, local4(p));
    CHECK_SIN(sockname4(fd), ps_local4(), p);
}

TEST(second_bind_einval, "a second bind on a bound TCP socket fails EINVAL", "bind(2) ERRORS") {
    int fd = tcp4();
    bind4(fd, local4(0));
    uint16_t p = ps_local_port(fd);
    CHECK_ERR(bind4_r(fd, local4(0)), EINVAL);
    CHECK_EQ(ps_local_port(fd), p);
}

TEST(second_bind_einval_udp, "a second bind on a bound UDP socket fails EINVAL", "bind(2) ERRORS") {
    int fd = udp4();
    bind4(fd, local4(0));
    CHECK_ERR(bind4_r(fd, sin_any(0)), EINVAL);
}

TEST(bind_after_connect, "bind after connect (which bound implicitly) fails EINVAL", "bind(2) ERRORS") {
    int fd = peer_tcp(PORT_ECHO);
    CHECK_ERR(bind4_r(fd, local4(0)), EINVAL);
}

TEST(bind_after_listen, "bind after listen (which bound implicitly) fails EINVAL", "bind(2), listen(2)") {
    int fd = tcp4();
    CHECK_OK(listen(fd, 1));
    CHECK_ERR(bind4_r(fd, local4(0)), EINVAL);
}

TEST(bind_after_udp_connect, "bind after a UDP connect (implicit bind) fails EINVAL", "bind(2), udp(7)") {
    int fd = udp4();
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    CHECK_ERR(bind4_r(fd, local4(0)), EINVAL);
}

TEST(eaddrinuse_tcp, "two TCP sockets on one address:port: EADDRINUSE", "bind(2) ERRORS") {
    int a = tcp4(), b = tcp4();
    bind4(a, local4(0));
    CHECK_ERR(bind4_r(b, local4(ps_local_port(a))), EADDRINUSE);
}

TEST(eaddrinuse_udp, "two UDP sockets on one address:port: EADDRINUSE", "bind(2) ERRORS") {
    int a = udp4(), b = udp4();
    bind4(a, local4(0));
    CHECK_ERR(bind4_r(b, local4(ps_local_port(a))), EADDRINUSE);
}

TEST(eaddrinuse_listener, "binding a listening socket's port fails EADDRINUSE", "bind(2) ERRORS") {
    int l = listen_local(4);
    int b = tcp4();
    CHECK_ERR(bind4_r(b, local4(ps_local_port(l))), EADDRINUSE);
}

TEST(reuseaddr_listener_conflict, "SO_REUSEADDR on both does not share a port with a listener", "socket(7) SO_REUSEADDR") {
    int a = tcp_reuse(1), b = tcp_reuse(1);
    bind4(a, local4(0));
    CHECK_OK(listen(a, 1));
    CHECK_ERR(bind4_r(b, local4(ps_local_port(a))), EADDRINUSE);
}

TEST(reuseaddr_both_unlistened, "SO_REUSEADDR on both lets two unlistened TCP sockets share a port", "socket(7) SO_REUSEADDR") {
    int a = tcp_reuse(1), b = tcp_reuse(1);
    bind4(a, local4(0));
    bind4(b, local4(ps_local_port(a)));
    CHECK_EQ(ps_local_port(a), ps_local_port(b));
}

TEST(reuseaddr_then_listen_conflict, "of two sockets sharing a port by SO_REUSEADDR only one can listen", "socket(7) SO_REUSEADDR, listen(2)") {
    int a = tcp_reuse(1), b = tcp_reuse(1);
    bind4(a, local4(0));
    bind4(b, local4(ps_local_port(a)));
    CHECK_OK(listen(a, 1));
    CHECK_ERR(listen(b, 1), EADDRINUSE);
}

TEST(reuseaddr_first_only, "SO_REUSEADDR on the first socket only: EADDRINUSE", "socket(7) SO_REUSEADDR") {
    int a = tcp_reuse(1), b = tcp_reuse(0);
    bind4(a, local4(0));
    CHECK_ERR(bind4_r(b, local4(ps_local_port(a))), EADDRINUSE);
}

TEST(reuseaddr_second_only, "SO_REUSEADDR on the second socket only: EADDRINUSE", "socket(7) SO_REUSEADDR") {
    int a = tcp_reuse(0), b = tcp_reuse(1);
    bind4(a, local4(0));
    CHECK_ERR(bind4_r(b, local4(ps_local_port(a))), EADDRINUSE);
}

TEST(reuseaddr_udp, "SO_REUSEADDR on both lets two UDP sockets share a port", "socket(7) SO_REUSEADDR, udp(7)") {
    int a = udp4(), b = udp4();
    seti(a, SOL_SOCKET, SO_REUSEADDR, 1);
    seti(b, SOL_SOCKET, SO_REUSEADDR, 1);
    bind4(a, local4(0));
    bind4(b, local4(ps_local_port(a)));
}

TEST(reuseaddr_after_close, "a port is free again as soon as an unconnected socket closes", "bind(2)") {
    int a = tcp4();
    bind4(a, local4(0));
    uint16_t p = ps_local_port(a);
    CHECK_OK(listen(a, 1));
    close(a);
    int b = tcp4();
    bind4(b, local4(p));
}

/* Make a TIME_WAIT on this side: connect from a bound port to the peer's
 * ECHO service and close first. Returns the local port. */
static uint16_t make_time_wait(int reuse) {
    int fd = tcp_reuse(reuse);
    bind4(fd, local4(0));
    uint16_t p = ps_local_port(fd);
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    echo_roundtrip(fd, "tw");
    CHECK_OK(shutdown(fd, SHUT_WR));
    char buf[16];
    CHECK_EQ(read_to_eof(fd, buf, sizeof buf, 3000), 0);
    close(fd); /* we sent FIN first, got theirs: TIME_WAIT */
    return p;
}

TEST(time_wait_blocks_bind, "a port in TIME_WAIT cannot be bound without SO_REUSEADDR", "socket(7) SO_REUSEADDR, RFC 9293 3.6.1") {
    uint16_t p = make_time_wait(1);
    int fd = tcp_reuse(0);
    CHECK_ERR(bind4_r(fd, local4(p)), EADDRINUSE);
}

TEST(time_wait_reuseaddr, "SO_REUSEADDR binds a port in TIME_WAIT (both sockets set it)", "socket(7) SO_REUSEADDR") {
    uint16_t p = make_time_wait(1);
    int fd = tcp_reuse(1);
    bind4(fd, local4(p));
}

TEST(time_wait_reuseaddr_old_unset, "SO_REUSEADDR cannot take a TIME_WAIT port whose socket lacked it", "socket(7) SO_REUSEADDR, net/ipv4/inet_connection_sock.c") {
    uint16_t p = make_time_wait(0);
    int fd = tcp_reuse(1);
    CHECK_ERR(bind4_r(fd, local4(p)), EADDRINUSE);
}

TEST(time_wait_server_restart, "a restarted server with SO_REUSEADDR rebinds despite TIME_WAIT children", "socket(7) SO_REUSEADDR") {
    int l = listen_local(4);
    uint16_t p = ps_local_port(l);
    int ctl = ps_callback(0, p, 1);
    int c = (int)CHECK_OK(accept(l, NULL, NULL));
    char buf[16];
    read_exact_ms(c, buf, 8, 3000); /* "hello 0\n" */
    CHECK_OK(shutdown(c, SHUT_WR));      /* server closes first */
    CHECK_EQ(read_to_eof(c, buf, sizeof buf, 3000), 0);
    close(c);
    close(l);
    int l2 = tcp_reuse(1);
    bind4(l2, local4(p));
    CHECK_OK(listen(l2, 1));
    close(ctl);
}

TEST(wildcard_then_specific, "a port bound on 0.0.0.0 conflicts with the same port on a specific address", "ip(7), bind(2)") {
    int a = tcp4(), b = tcp4();
    bind4(a, sin_any(0));
    CHECK_ERR(bind4_r(b, local4(ps_local_port(a))), EADDRINUSE);
}

TEST(specific_then_wildcard, "a port bound on a specific address conflicts with 0.0.0.0", "ip(7), bind(2)") {
    int a = tcp4(), b = tcp4();
    bind4(a, local4(0));
    CHECK_ERR(bind4_r(b, sin_any(ps_local_port(a))), EADDRINUSE);
}

TEST(specific_wildcard_reuseaddr, "with SO_REUSEADDR on both, 0.0.0.0 and a specific address share a port (unlistened)", "socket(7) SO_REUSEADDR") {
    int a = tcp_reuse(1), b = tcp_reuse(1);
    bind4(a, local4(0));
    bind4(b, sin_any(ps_local_port(a)));
}

TEST(wildcard_udp_conflict, "UDP: 0.0.0.0:P conflicts with a specific address on P", "udp(7), bind(2)") {
    int a = udp4(), b = udp4();
    bind4(a, sin_any(0));
    CHECK_ERR(bind4_r(b, local4(ps_local_port(a))), EADDRINUSE);
}

TEST(distinct_addresses_share_port, "127.0.0.1:P and the interface address:P are distinct, no conflict", "bind(2)") {
    int a = tcp4(), b = tcp4();
    bind4(a, local4(0));
    uint16_t p = ps_local_port(a);
    bind4(b, lo4(p));
    CHECK_OK(listen(a, 1));
    CHECK_OK(listen(b, 1));
}

TEST(tcp_udp_same_port, "TCP and UDP sockets bind the same port number independently", "bind(2), ip(7)") {
    int t = tcp4(), u = udp4();
    bind4(t, local4(0));
    bind4(u, local4(ps_local_port(t)));
    CHECK_EQ(ps_local_port(t), ps_local_port(u));
}

TEST(reuseport_tcp, "SO_REUSEPORT on both: two TCP listeners share a port", "socket(7) SO_REUSEPORT") {
    int a = tcp4(), b = tcp4();
    seti(a, SOL_SOCKET, SO_REUSEPORT, 1);
    seti(b, SOL_SOCKET, SO_REUSEPORT, 1);
    bind4(a, local4(0));
    CHECK_OK(listen(a, 4));
    bind4(b, local4(ps_local_port(a)));
    CHECK_OK(listen(b, 4));
}

TEST(reuseport_first_only, "SO_REUSEPORT on the first socket only: EADDRINUSE", "socket(7) SO_REUSEPORT") {
    int a = tcp4(), b = tcp4();
    seti(a, SOL_SOCKET, SO_REUSEPORT, 1);
    bind4(a, local4(0));
    CHECK_ERR(bind4_r(b, local4(ps_local_port(a))), EADDRINUSE);
}

TEST(reuseport_second_only, "SO_REUSEPORT on the second socket only: EADDRINUSE", "socket(7) SO_REUSEPORT") {
    int a = tcp4(), b = tcp4();
    seti(b, SOL_SOCKET, SO_REUSEPORT, 1);
    bind4(a, local4(0));
    CHECK_ERR(bind4_r(b, local4(ps_local_port(a))), EADDRINUSE);
}

TEST(reuseport_udp, "SO_REUSEPORT on both: two UDP sockets share a port", "socket(7) SO_REUSEPORT") {
    int a = udp4(), b = udp4();
    seti(a, SOL_SOCKET, SO_REUSEPORT, 1);
    seti(b, SOL_SOCKET, SO_REUSEPORT, 1);
    bind4(a, local4(0));
    bind4(b, local4(ps_local_port(a)));
}

TEST(reuseport_other_user, "SO_REUSEPORT does not share a port with another user's socket", "socket(7) SO_REUSEPORT") {
    int a = tcp4();
    seti(a, SOL_SOCKET, SO_REUSEPORT, 1);
    bind4(a, local4(0));
    CHECK_OK(listen(a, 1));
    uint16_t p = ps_local_port(a);
    CHECK_OK(setgid(65534));
    CHECK_OK(setuid(65534));
    int b = tcp4();
    seti(b, SOL_SOCKET, SO_REUSEPORT, 1);
    CHECK_ERR(bind4_r(b, local4(p)), EADDRINUSE);
}

TEST(reuseport_udp_other_user, "UDP SO_REUSEPORT does not share a port with another user's socket, but does with the same user's", "socket(7) SO_REUSEPORT, net/ipv4/udp.c udp_lib_lport_inuse") {
    int a = udp4();
    seti(a, SOL_SOCKET, SO_REUSEPORT, 1);
    bind4(a, local4(0));
    uint16_t p = ps_local_port(a);
    int same = udp4();
    seti(same, SOL_SOCKET, SO_REUSEPORT, 1);
    CHECK_OK(bind4_r(same, local4(p)));
    CHECK_OK(setgid(65534));
    CHECK_OK(setuid(65534));
    int b = udp4();
    seti(b, SOL_SOCKET, SO_REUSEPORT, 1);
    CHECK_ERR(bind4_r(b, local4(p)), EADDRINUSE);
}

TEST(reuseport_listeners_both_accept, "connections to a SO_REUSEPORT group all arrive, spread over the listeners", "socket(7) SO_REUSEPORT") {
    int a = tcp4(), b = tcp4();
    seti(a, SOL_SOCKET, SO_REUSEPORT, 1);
    seti(b, SOL_SOCKET, SO_REUSEPORT, 1);
    bind4(a, local4(0));
    CHECK_OK(listen(a, 16));
    bind4(b, local4(ps_local_port(a)));
    CHECK_OK(listen(b, 16));
    int ctl = ps_callback(0, ps_local_port(a), 8);
    int got = 0;
    long t0 = ps_now_ms();
    set_nonblock(a, 1);
    set_nonblock(b, 1);
    while (got < 8 && ps_now_ms() - t0 < 5000) {
        struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
        CHECK_OK(poll(p, 2, 500));
        for (int i = 0; i < 2; i++) {
            int c = accept(p[i].fd, NULL, NULL);
            if (c >= 0) { got++; close(c); }
        }
    }
    CHECK_EQ(got, 8);
    close(ctl);
}

TEST(eaddrnotavail, "binding an address that is not local fails EADDRNOTAVAIL", "bind(2) ERRORS, ip(7)") {
    int fd = tcp4();
    CHECK_ERR(bind4_r(fd, ps_sin("192.0.2.99", 0)), EADDRNOTAVAIL);
    int u = udp4();
    CHECK_ERR(bind4_r(u, ps_sin(ps_peer4(), 0)), EADDRNOTAVAIL);
}

TEST(freebind, "IP_FREEBIND allows binding an address that is not local", "ip(7) IP_FREEBIND") {
    int fd = tcp4();
    seti(fd, IPPROTO_IP, IP_FREEBIND, 1);
    bind4(fd, ps_sin("192.0.2.99", 0));
    CHECK_SIN(sockname4(fd), "192.0.2.99", -1);
}

TEST(bind_broadcast_udp, "a UDP socket can bind the subnet broadcast address", "ip(7), net/ipv4/af_inet.c __inet_bind") {
    int fd = udp4();
    bind4(fd, ps_sin("192.0.2.255", 0));
    CHECK_SIN(sockname4(fd), "192.0.2.255", -1);
}

TEST(bind_multicast_udp, "a UDP socket can bind a multicast address", "ip(7)") {
    int fd = udp4();
    bind4(fd, ps_sin("224.0.0.251", 0));
}

TEST(bad_addrlen, "bind with an addrlen shorter than sockaddr_in fails EINVAL", "bind(2) ERRORS") {
    int fd = tcp4();
    struct sockaddr_in a = local4(0);
    CHECK_ERR(bind(fd, SA(&a), sizeof a - 1), EINVAL);
    CHECK_ERR(bind(fd, SA(&a), 0), EINVAL);
    int u = udp4();
    CHECK_ERR(bind(u, SA(&a), 8), EINVAL);
}

TEST(long_addrlen_ok, "bind with an addrlen longer than sockaddr_in succeeds", "bind(2)") {
    int fd = tcp4();
    struct sockaddr_storage ss = {0};
    struct sockaddr_in a = local4(0);
    memcpy(&ss, &a, sizeof a);
    CHECK_OK(bind(fd, SA(&ss), sizeof ss));
}

TEST(wrong_family, "binding a sockaddr_in6 to an AF_INET socket fails EAFNOSUPPORT", "bind(2) ERRORS") {
    int fd = tcp4();
    struct sockaddr_in6 a = ps_sin6("::", 0);
    CHECK_ERR(bind(fd, SA(&a), sizeof a), EAFNOSUPPORT);
}

TEST(wrong_family_short, "an AF_INET6 socket given a sockaddr_in fails EINVAL (too short)", "bind(2) ERRORS, ipv6(7)") {
    int fd = tcp6();
    struct sockaddr_in a = local4(0);
    CHECK_ERR(bind(fd, SA(&a), sizeof a), EINVAL);
}

TEST(wrong_family_inet6, "an AF_INET6 socket given family AF_INET at full length fails EAFNOSUPPORT", "bind(2) ERRORS, ipv6(7)") {
    int fd = tcp6();
    struct sockaddr_in6 a = ps_sin6("::", 0);
    a.sin6_family = AF_INET;
    CHECK_ERR(bind(fd, SA(&a), sizeof a), EAFNOSUPPORT);
}

TEST(af_unspec_any, "AF_UNSPEC with INADDR_ANY is accepted as AF_INET (compatibility)", "net/ipv4/af_inet.c __inet_bind") {
    int fd = tcp4();
    struct sockaddr_in a = sin_any(0);
    a.sin_family = AF_UNSPEC;
    CHECK_OK(bind(fd, SA(&a), sizeof a));
    CHECK_SIN(sockname4(fd), "0.0.0.0", -1);
    CHECK(ps_local_port(fd) != 0);
}

TEST(af_unspec_specific, "AF_UNSPEC with a specific address fails EAFNOSUPPORT", "net/ipv4/af_inet.c __inet_bind") {
    int fd = tcp4();
    struct sockaddr_in a = local4(0);
    a.sin_family = AF_UNSPEC;
    CHECK_ERR(bind(fd, SA(&a), sizeof a), EAFNOSUPPORT);
}

TEST(bind_loopback, "binding 127.0.0.1:0 names 127.0.0.1", "ip(7)") {
    int fd = tcp4();
    bind4(fd, lo4(0));
    CHECK_SIN(sockname4(fd), "127.0.0.1", -1);
}

TEST(bind_loopback_net, "any 127.0.0.0/8 address is local and bindable", "ip(7)") {
    int fd = udp4();
    bind4(fd, ps_sin("127.1.2.3", 0));
    CHECK_SIN(sockname4(fd), "127.1.2.3", -1);
}

TEST(privileged_port_root, "root binds a port below 1024", "ip(7) CAP_NET_BIND_SERVICE") {
    int fd = tcp4();
    seti(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    bind4(fd, local4(1));
    int u = udp4();
    bind4(u, local4(1));
}

TEST(privileged_port_user, "an unprivileged user binding a port below 1024 fails EACCES", "ip(7) CAP_NET_BIND_SERVICE, bind(2) ERRORS") {
    CHECK_OK(setgid(65534));
    CHECK_OK(setuid(65534));
    int fd = tcp4();
    CHECK_ERR(bind4_r(fd, local4(2)), EACCES);
    int u = udp4();
    CHECK_ERR(bind4_r(u, local4(2)), EACCES);
}

TEST(unprivileged_port0, "an unprivileged user may bind port 0 and ports from 1024", "ip(7)") {
    CHECK_OK(setgid(65534));
    CHECK_OK(setuid(65534));
    int fd = tcp4();
    bind4(fd, local4(0));
    CHECK(ps_local_port(fd) >= 1024);
}

TEST(setresuid_then_udp_echo, "after setresgid/setresuid to nobody, a new UDP socket still reaches the peer", "setresuid(2), udp(7)") {
    CHECK_OK(setresgid(65534, 65534, 65534));
    CHECK_OK(setresuid(65534, 65534, 65534));
    int u = udp4();
    CHECK_OK(connect4_r(u, peer4(PORT_ECHO)));
    CHECK_EQ(send(u, "np", 2, 0), 2);
    struct pollfd p = {.fd = u, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 3000), 1);
    char b[4];
    CHECK_EQ(recv(u, b, sizeof b, 0), 2);
    CHECK(memcmp(b, "np", 2) == 0);
}

TEST(bind_badf, "bind on a bad descriptor fails EBADF, on a pipe ENOTSOCK", "bind(2) ERRORS") {
    struct sockaddr_in a = local4(0);
    CHECK_ERR(bind(999, SA(&a), sizeof a), EBADF);
    int p[2];
    CHECK_OK(pipe(p));
    CHECK_ERR(bind(p[0], SA(&a), sizeof a), ENOTSOCK);
}

TEST(bind6_local, "an AF_INET6 socket binds the interface's IPv6 address", "ipv6(7), bind(2)") {
    int fd = tcp6();
    struct sockaddr_in6 a = ps_sin6(ps_local6(), 0);
    CHECK_OK(bind(fd, SA(&a), sizeof a));
    struct sockaddr_in6 b;
    socklen_t l = sizeof b;
    CHECK_OK(getsockname(fd, SA(&b), &l));
    CHECK_EQ(l, sizeof b);
    CHECK(!memcmp(&a.sin6_addr, &b.sin6_addr, 16));
    CHECK(b.sin6_port != 0);
}

TEST(bind6_notavail, "binding a non-local IPv6 address fails EADDRNOTAVAIL", "ipv6(7), bind(2) ERRORS") {
    int fd = tcp6();
    struct sockaddr_in6 a = ps_sin6("2001:db8::99", 0);
    CHECK_ERR(bind(fd, SA(&a), sizeof a), EADDRNOTAVAIL);
}

TEST(bind6_short_len, "an IPv6 bind with addrlen below 24 fails EINVAL", "ipv6(7), bind(2) ERRORS") {
    int fd = udp6();
    struct sockaddr_in6 a = ps_sin6("::", 0);
    CHECK_ERR(bind(fd, SA(&a), 23), EINVAL);
    CHECK_OK(bind(fd, SA(&a), 24)); /* SIN6_LEN_RFC2133: without scope id */
}

TEST(bind6_v4_conflict, "a dual-stack [::]:P listener conflicts with a v4 bind on P", "ipv6(7) IPV6_V6ONLY") {
    int a = tcp6();
    struct sockaddr_in6 any = ps_sin6("::", 0);
    CHECK_OK(bind(a, SA(&any), sizeof any));
    CHECK_OK(listen(a, 1));
    int b = tcp4();
    CHECK_ERR(bind4_r(b, local4(ps_local_port(a))), EADDRINUSE);
}

TEST(bind6_v6only_no_conflict, "with IPV6_V6ONLY, [::]:P and 0.0.0.0:P coexist", "ipv6(7) IPV6_V6ONLY") {
    int a = tcp6();
    seti(a, IPPROTO_IPV6, IPV6_V6ONLY, 1);
    struct sockaddr_in6 any = ps_sin6("::", 0);
    CHECK_OK(bind(a, SA(&any), sizeof any));
    CHECK_OK(listen(a, 1));
    int b = tcp4();
    bind4(b, sin_any(ps_local_port(a)));
    CHECK_OK(listen(b, 1));
}
