/* listen(), accept(), accept4(): backlog, flags, errors, addresses. */
#include "api_util.h"

/* Accept one connection within ms, or FAIL. */
static int accept_ms(int l, struct sockaddr *sa, socklen_t *len, int ms) {
    if (!(pollfd1(l, POLLIN, ms) & POLLIN)) FAIL("no connection to accept within %d ms", ms);
    return (int)CHECK_OK(accept(l, sa, len));
}

/* TCP_INFO of a listener: tcpi_unacked is the accept queue length,
 * tcpi_sacked the backlog (net/ipv4/tcp.c tcp_get_info). */
static struct tcp_info tinfo(int fd) {
    struct tcp_info ti;
    socklen_t l = sizeof ti;
    memset(&ti, 0, sizeof ti);
    CHECK_OK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l));
    return ti;
}

static void wait_queue_len(int l, unsigned n, int ms) {
    long t0 = ps_now_ms();
    while (tinfo(l).tcpi_unacked < n) {
        if (ps_now_ms() - t0 > ms) FAIL("accept queue has %u, expected %u", tinfo(l).tcpi_unacked, n);
        ps_sleep_ms(10);
    }
}

TEST(listen_unbound_autobinds, "listen without bind picks an ephemeral port on 0.0.0.0", "listen(2), ip(7)") {
    int fd = tcp4();
    CHECK_OK(listen(fd, 4));
    struct sockaddr_in a = sockname4(fd);
    CHECK_SIN(a, "0.0.0.0", -1);
    CHECK(a.sin_port != 0);
}

TEST(listen_unbound_reachable, "a listener auto-bound by listen() accepts connections on the interface", "listen(2)") {
    int l = tcp4();
    CHECK_OK(listen(l, 4));
    int ctl = ps_callback(0, ps_local_port(l), 1);
    int c = accept_ms(l, NULL, NULL, 3000);
    char buf[8];
    read_exact_ms(c, buf, 8, 3000);
    CHECK(!memcmp(buf, "hello 0\n", 8));
    close(ctl);
}

TEST(listen_twice, "listen on a listening socket succeeds (changes the backlog)", "listen(2)") {
    int fd = listen_local(1);
    CHECK_OK(listen(fd, 8));
    CHECK_EQ(tinfo(fd).tcpi_sacked, 8);
}

TEST(listen_backlog_clamped, "a backlog above somaxconn is clamped to somaxconn", "listen(2) NOTES") {
    long max = read_proc_long("/proc/sys/net/core/somaxconn", 0);
    int fd = listen_local(1);
    CHECK_OK(listen(fd, 1 << 20));
    CHECK_EQ(tinfo(fd).tcpi_sacked, max);
}

TEST(listen_backlog_negative, "a negative backlog means somaxconn", "listen(2), net/socket.c __sys_listen") {
    long max = read_proc_long("/proc/sys/net/core/somaxconn", 0);
    int fd = tcp4();
    bind4(fd, local4(0));
    CHECK_OK(listen(fd, -1));
    CHECK_EQ(tinfo(fd).tcpi_sacked, max);
}

TEST(listen_udp, "listen on a UDP socket fails EOPNOTSUPP", "listen(2) ERRORS") {
    int fd = udp4();
    bind4(fd, local4(0));
    CHECK_ERR(listen(fd, 1), EOPNOTSUPP);
}

TEST(listen_connected, "listen on a connected TCP socket fails EINVAL", "listen(2), net/ipv4/af_inet.c inet_listen") {
    int fd = peer_tcp(PORT_ECHO);
    CHECK_ERR(listen(fd, 1), EINVAL);
}

TEST(listen_notsock, "listen on a pipe fails ENOTSOCK, on a bad fd EBADF", "listen(2) ERRORS") {
    int p[2];
    CHECK_OK(pipe(p));
    CHECK_ERR(listen(p[0], 1), ENOTSOCK);
    CHECK_ERR(listen(999, 1), EBADF);
}

TEST(accept_not_listening, "accept on a bound, unlistened socket fails EINVAL", "accept(2) ERRORS") {
    int fd = tcp4();
    bind4(fd, local4(0));
    CHECK_ERR(accept(fd, NULL, NULL), EINVAL);
    int fresh = tcp4();
    CHECK_ERR(accept(fresh, NULL, NULL), EINVAL);
}

TEST(accept_udp, "accept on a UDP socket fails EOPNOTSUPP", "accept(2) ERRORS") {
    int fd = udp4();
    bind4(fd, local4(0));
    CHECK_ERR(accept(fd, NULL, NULL), EOPNOTSUPP);
}

TEST(accept_connected, "accept on a connected socket fails EINVAL", "accept(2) ERRORS") {
    int fd = peer_tcp(PORT_ECHO);
    CHECK_ERR(accept(fd, NULL, NULL), EINVAL);
}

TEST(accept_nonblock_eagain, "accept on a non-blocking listener with nothing queued fails EAGAIN", "accept(2) ERRORS") {
    int l = (int)CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    bind4(l, local4(0));
    CHECK_OK(listen(l, 4));
    CHECK_ERR(accept(l, NULL, NULL), EAGAIN);
    CHECK_ERR(accept4(l, NULL, NULL, SOCK_CLOEXEC), EAGAIN);
}

TEST(accept_msg_dontwait_fionbio, "FIONBIO on a listener makes accept fail EAGAIN", "accept(2), ioctl(2) FIONBIO") {
    int l = listen_local(4);
    int on = 1;
    CHECK_OK(ioctl(l, FIONBIO, &on));
    CHECK_ERR(accept(l, NULL, NULL), EAGAIN);
}

TEST(accept4_nonblock, "accept4(SOCK_NONBLOCK) returns a non-blocking socket", "accept4(2)") {
    int l = listen_local(4);
    int ctl = ps_callback(0, ps_local_port(l), 1);
    wait_readable(l, 3000);
    int c = (int)CHECK_OK(accept4(l, NULL, NULL, SOCK_NONBLOCK));
    CHECK(fcntl(c, F_GETFL) & O_NONBLOCK);
    CHECK_EQ(fcntl(c, F_GETFD) & FD_CLOEXEC, 0);
    close(ctl);
}

TEST(accept4_cloexec, "accept4(SOCK_CLOEXEC) returns a close-on-exec socket", "accept4(2)") {
    int l = listen_local(4);
    int ctl = ps_callback(0, ps_local_port(l), 1);
    wait_readable(l, 3000);
    int c = (int)CHECK_OK(accept4(l, NULL, NULL, SOCK_CLOEXEC));
    CHECK(fcntl(c, F_GETFD) & FD_CLOEXEC);
    CHECK_EQ(fcntl(c, F_GETFL) & O_NONBLOCK, 0);
    close(ctl);
}

TEST(accept4_both_flags, "accept4(SOCK_NONBLOCK|SOCK_CLOEXEC) sets both", "accept4(2)") {
    int l = listen_local(4);
    int ctl = ps_callback(0, ps_local_port(l), 1);
    wait_readable(l, 3000);
    int c = (int)CHECK_OK(accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC));
    CHECK(fcntl(c, F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(c, F_GETFD) & FD_CLOEXEC);
    close(ctl);
}

TEST(accept4_bad_flags, "accept4 with an unknown flag fails EINVAL", "accept4(2) ERRORS") {
    int l = listen_local(4);
    CHECK_ERR(accept4(l, NULL, NULL, 0x1), EINVAL);
    CHECK_ERR(accept4(l, NULL, NULL, O_APPEND), EINVAL);
}

TEST(accept_flags_not_inherited, "accept from a non-blocking, cloexec listener returns a blocking, inheritable socket", "accept(2) NOTES") {
    int l = (int)CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    bind4(l, local4(0));
    CHECK_OK(listen(l, 4));
    int ctl = ps_callback(0, ps_local_port(l), 1);
    wait_readable(l, 3000);
    int c = (int)CHECK_OK(accept(l, NULL, NULL));
    CHECK_EQ(fcntl(c, F_GETFL) & O_NONBLOCK, 0);
    CHECK_EQ(fcntl(c, F_GETFD) & FD_CLOEXEC, 0);
    close(ctl);
}

TEST(accept_peer_address, "accept returns the peer's address and port, length 16", "accept(2)") {
    int l = listen_local(4);
    int ctl = ps_callback(0, ps_local_port(l), 1);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    socklen_t len = sizeof a;
    int c = accept_ms(l, SA(&a), &len, 3000);
    CHECK_EQ(len, sizeof a);
    CHECK_SIN(a, ps_peer4(), -1);
    CHECK(a.sin_port != 0);
    struct sockaddr_in p = peername4(c);
    CHECK_EQ(p.sin_port, a.sin_port);
    close(ctl);
}

TEST(accept_null_addr, "accept with NULL address and length succeeds", "accept(2)") {
    int l = listen_local(4);
    int ctl = ps_callback(0, ps_local_port(l), 1);
    int c = accept_ms(l, NULL, NULL, 3000);
    CHECK(c >= 0);
    close(ctl);
}

TEST(accept_short_addrlen, "accept with a short address buffer truncates, reports the full length", "accept(2)") {
    int l = listen_local(4);
    int ctl = ps_callback(0, ps_local_port(l), 1);
    unsigned char buf[16];
    memset(buf, 0xAA, sizeof buf);
    socklen_t len = 4;
    accept_ms(l, SA(buf), &len, 3000);
    CHECK_EQ(len, 16);
    CHECK_EQ(buf[0] | buf[1] << 8, AF_INET);
    CHECK_EQ(buf[4], 0xAA);
    close(ctl);
}

TEST(accept_sockname, "the accepted socket's name is the listener's address and port", "accept(2), getsockname(2)") {
    int l = listen_local(4);
    uint16_t p = ps_local_port(l);
    int ctl = ps_callback(0, p, 1);
    int c = accept_ms(l, NULL, NULL, 3000);
    CHECK_SIN(sockname4(c), ps_local4(), p);
    close(ctl);
}

TEST(accept_wildcard_sockname, "a connection accepted on 0.0.0.0 is named by the address it reached", "accept(2), getsockname(2)") {
    int l = ps_tcp_listen4("0.0.0.0", 0, 4);
    uint16_t p = ps_local_port(l);
    int ctl = ps_callback(0, p, 1);
    int c = accept_ms(l, NULL, NULL, 3000);
    CHECK_SIN(sockname4(c), ps_local4(), p);
    close(ctl);
}

TEST(accept_acceptconn, "the listener has SO_ACCEPTCONN 1, the accepted socket 0", "socket(7) SO_ACCEPTCONN") {
    int l = listen_local(4);
    int ctl = ps_callback(0, ps_local_port(l), 1);
    int c = accept_ms(l, NULL, NULL, 3000);
    CHECK_EQ(geti(l, SOL_SOCKET, SO_ACCEPTCONN), 1);
    CHECK_EQ(geti(c, SOL_SOCKET, SO_ACCEPTCONN), 0);
    close(ctl);
}

TEST(accept_data_both_ways, "data flows both ways on a connection accepted from the peer", "accept(2)") {
    int l = listen_local(4);
    int ctl = ps_callback(0, ps_local_port(l), 1);
    int c = accept_ms(l, NULL, NULL, 3000);
    char buf[16];
    read_exact_ms(c, buf, 8, 3000);
    CHECK(!memcmp(buf, "hello 0\n", 8));
    echo_roundtrip(c, "ping pong");
    close(ctl);
}

TEST(accept_several_in_order, "three connections from the peer are accepted in arrival order", "accept(2)") {
    int l = listen_local(8);
    int ctl = ps_callback(0, ps_local_port(l), 3);
    for (int i = 0; i < 3; i++) {
        int c = accept_ms(l, NULL, NULL, 3000);
        char buf[8], want[9];
        snprintf(want, sizeof want, "hello %d\n", i);
        read_exact_ms(c, buf, 8, 3000);
        if (memcmp(buf, want, 8)) FAIL("connection %d said %.8s", i, buf);
    }
    close(ctl);
}

TEST(accept_blocking_waits, "a blocking accept waits for the connection", "accept(2)") {
    int l = listen_local(4);
    uint16_t p = ps_local_port(l);
    pid_t pid = (pid_t)CHECK_OK(fork());
    if (pid == 0) {
        ps_sleep_ms(200);
        int ctl = ps_callback(0, p, 1);
        ps_sleep_ms(3000);
        close(ctl);
        _exit(0);
    }
    long t0 = ps_now_ms();
    int c = (int)CHECK_OK(accept(l, NULL, NULL));
    CHECK(ps_now_ms() - t0 >= 150);
    CHECK(c >= 0);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

TEST(accept_local_client, "a local client connecting to the interface address is accepted", "accept(2)") {
    int l = listen_local(4);
    int cli = ps_tcp_connect4(ps_local4(), ps_local_port(l));
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int s = accept_ms(l, SA(&a), &len, 3000);
    CHECK_SIN(a, ps_local4(), ps_local_port(cli));
    ps_write_all(cli, "abc", 3);
    char buf[3];
    read_exact_ms(s, buf, 3, 3000);
    ps_write_all(s, "xyz", 3);
    read_exact_ms(cli, buf, 3, 3000);
    CHECK(!memcmp(buf, "xyz", 3));
}

TEST(accept_loopback, "a 127.0.0.1 listener accepts a loopback client", "accept(2), ip(7)") {
    int l = ps_tcp_listen4("127.0.0.1", 0, 4);
    int cli = ps_tcp_connect4("127.0.0.1", ps_local_port(l));
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int s = accept_ms(l, SA(&a), &len, 3000);
    CHECK_SIN(a, "127.0.0.1", ps_local_port(cli));
    ps_write_all(cli, "abc", 3);
    char buf[3];
    read_exact_ms(s, buf, 3, 3000);
    CHECK(!memcmp(buf, "abc", 3));
}

TEST(accept_wildcard_loopback, "a 0.0.0.0 listener accepts both loopback and interface clients", "ip(7) INADDR_ANY") {
    int l = ps_tcp_listen4("0.0.0.0", 0, 4);
    uint16_t p = ps_local_port(l);
    int a = ps_tcp_connect4("127.0.0.1", p);
    int s1 = accept_ms(l, NULL, NULL, 3000);
    CHECK_SIN(sockname4(s1), "127.0.0.1", p);
    int ctl = ps_callback(0, p, 1);
    int s2 = accept_ms(l, NULL, NULL, 3000);
    CHECK_SIN(sockname4(s2), ps_local4(), p);
    CHECK_SIN(peername4(s2), ps_peer4(), -1);
    close(a);
    close(ctl);
}

TEST(accept_lowest_fd, "accept returns the lowest free descriptor", "accept(2), open(2)") {
    int l = listen_local(4);
    int ctl = ps_callback(0, ps_local_port(l), 1);
    int hole = udp4();
    int keep = udp4();
    close(hole);
    int c = accept_ms(l, NULL, NULL, 3000);
    CHECK_EQ(c, hole);
    (void)keep;
    close(ctl);
}

TEST(poll_listener, "a listener polls POLLIN only when a connection is queued", "poll(2), accept(2)") {
    int l = listen_local(4);
    CHECK_EQ(pollfd1(l, POLLIN | POLLOUT, 0), 0);
    int ctl = ps_callback(0, ps_local_port(l), 1);
    CHECK_EQ(pollfd1(l, POLLIN | POLLOUT, 3000), POLLIN);
    accept_ms(l, NULL, NULL, 100);
    CHECK_EQ(pollfd1(l, POLLIN | POLLOUT, 0), 0);
    close(ctl);
}

TEST(backlog_queue_len, "TCP_INFO on a listener: tcpi_unacked counts the accept queue", "tcp(7) TCP_INFO, net/ipv4/tcp.c") {
    int l = listen_local(8);
    int ctl = ps_callback(0, ps_local_port(l), 3);
    wait_queue_len(l, 3, 3000);
    CHECK_EQ(tinfo(l).tcpi_state, TCP_LISTEN);
    CHECK_EQ(tinfo(l).tcpi_sacked, 8);
    accept_ms(l, NULL, NULL, 100);
    CHECK_EQ(tinfo(l).tcpi_unacked, 2);
    close(ctl);
}

TEST(backlog_one_queues_two, "backlog 1 queues two connections; a third SYN is dropped", "listen(2), net/ipv4/tcp_input.c tcp_conn_request") {
    int l = listen_local(1);
    int ctl = ps_callback(0, ps_local_port(l), 3);
    wait_queue_len(l, 2, 3000);
    ps_sleep_ms(300);
    CHECK_EQ(tinfo(l).tcpi_unacked, 2);
    set_nonblock(l, 1);
    CHECK_OK(accept(l, NULL, NULL));
    CHECK_OK(accept(l, NULL, NULL));
    CHECK_ERR(accept(l, NULL, NULL), EAGAIN);
    /* The dropped SYN is retransmitted and then accepted. */
    set_nonblock(l, 0);
    int c = accept_ms(l, NULL, NULL, 4000);
    char buf[8];
    read_exact_ms(c, buf, 8, 3000);
    CHECK(!memcmp(buf, "hello 2\n", 8));
    close(ctl);
}

TEST(backlog_zero_queues_one, "backlog 0 still queues one connection", "listen(2), net/ipv4/tcp_input.c tcp_conn_request") {
    int l = listen_local(0);
    int ctl = ps_callback(0, ps_local_port(l), 2);
    wait_queue_len(l, 1, 3000);
    ps_sleep_ms(300);
    CHECK_EQ(tinfo(l).tcpi_unacked, 1);
    close(ctl);
}

TEST(listener_close_resets_queue, "closing a listener resets connections still in its queue", "listen(2), RFC 9293 3.10.4") {
    int l = listen_local(4);
    int cli = ps_tcp_connect4(ps_local4(), ps_local_port(l));
    wait_queue_len(l, 1, 3000);
    close(l);
    char c;
    wait_readable(cli, 3000);
    CHECK_ERR(read(cli, &c, 1), ECONNRESET);
}

TEST(listener_shutdown_rd, "shutdown(SHUT_RD) on a listener stops it: accept fails EINVAL", "shutdown(2), net/ipv4/af_inet.c inet_shutdown") {
    int l = listen_local(4);
    CHECK_OK(shutdown(l, SHUT_RD));
    CHECK_ERR(accept(l, NULL, NULL), EINVAL);
    CHECK_EQ(geti(l, SOL_SOCKET, SO_ACCEPTCONN), 0);
}

TEST(listener_shutdown_wr, "shutdown(SHUT_WR) on a listener is a no-op: it still accepts", "shutdown(2), net/ipv4/af_inet.c inet_shutdown") {
    int l = listen_local(4);
    CHECK_OK(shutdown(l, SHUT_WR));
    CHECK_EQ(geti(l, SOL_SOCKET, SO_ACCEPTCONN), 1);
    int ctl = ps_callback(0, ps_local_port(l), 1);
    accept_ms(l, NULL, NULL, 3000);
    close(ctl);
}

TEST(listen_after_shutdown_rd, "a listener stopped by SHUT_RD can listen again on its explicit port", "listen(2), shutdown(2)") {
    uint16_t p;
    {
        int t = tcp4();
        bind4(t, local4(0));
        p = ps_local_port(t);
        close(t);
    }
    int l = tcp4();
    bind4(l, local4(p));
    CHECK_OK(listen(l, 4));
    CHECK_OK(shutdown(l, SHUT_RD));
    CHECK_OK(listen(l, 4));
    CHECK_EQ(ps_local_port(l), p);
    int ctl = ps_callback(0, p, 1);
    accept_ms(l, NULL, NULL, 3000);
    close(ctl);
}

TEST(listen_after_shutdown_rd_port0, "a port-0 listener stopped by SHUT_RD listens again and accepts", "listen(2), shutdown(2)") {
    int l = listen_local(4);
    CHECK_OK(shutdown(l, SHUT_RD));
    CHECK_OK(listen(l, 4));
    uint16_t p = ps_local_port(l);
    CHECK(p != 0);
    CHECK_SIN(sockname4(l), ps_local4(), p);
    int ctl = ps_callback(0, p, 1);
    accept_ms(l, NULL, NULL, 3000);
    close(ctl);
}

TEST(accept_inherits_options, "an accepted socket inherits SO_KEEPALIVE and TCP_NODELAY from the listener", "tcp(7), socket(7)") {
    int l = listen_local(4);
    seti(l, SOL_SOCKET, SO_KEEPALIVE, 1);
    seti(l, IPPROTO_TCP, TCP_NODELAY, 1);
    int ctl = ps_callback(0, ps_local_port(l), 1);
    int c = accept_ms(l, NULL, NULL, 3000);
    CHECK_EQ(geti(c, SOL_SOCKET, SO_KEEPALIVE), 1);
    CHECK_EQ(geti(c, IPPROTO_TCP, TCP_NODELAY), 1);
    close(ctl);
}

/* Whether `name` is in /proc/sys/net/ipv4/tcp_allowed_congestion_control. */
static int cc_allowed(const char *name) {
    char buf[256] = "";
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_allowed_congestion_control", "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    for (char *t = strtok(buf, " \n"); t; t = strtok(NULL, " \n"))
        if (!strcmp(t, name)) return 1;
    return 0;
}

static void cc_name(int fd, char *name, socklen_t cap) {
    socklen_t l = cap;
    memset(name, 0, cap);
    CHECK_OK(getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &l));
}

TEST(accept_inherits_congestion, "an accepted socket runs the listener's TCP_CONGESTION (every allowed algorithm)", "tcp(7) TCP_CONGESTION, net/ipv4/tcp_cong.c tcp_ca_openreq_child") {
    static const char *algos[] = {"reno", "cubic", "bbr"};
    int tried = 0;
    for (size_t i = 0; i < sizeof algos / sizeof *algos; i++) {
        if (!cc_allowed(algos[i])) continue;
        tried++;
        int l = listen_local(4);
        CHECK_OK(setsockopt(l, IPPROTO_TCP, TCP_CONGESTION, algos[i], strlen(algos[i])));
        char name[16];
        cc_name(l, name, sizeof name);
        if (strcmp(name, algos[i])) FAIL("listener reads %s after setting %s", name, algos[i]);
        int ctl = ps_callback(0, ps_local_port(l), 1);
        int c = accept_ms(l, NULL, NULL, 3000);
        cc_name(c, name, sizeof name);
        if (strcmp(name, algos[i])) FAIL("accepted socket reads %s, listener set %s", name, algos[i]);
        close(c);
        close(ctl);
        close(l);
    }
    CHECK(tried > 0);
}

TEST(accept_defer_accept_not_inherited, "an accepted socket reads TCP_DEFER_ACCEPT 0; the listener reads the rounded value", "tcp(7) TCP_DEFER_ACCEPT, net/ipv4/inet_connection_sock.c inet_csk_clone_lock") {
    int l = listen_local(4);
    seti(l, IPPROTO_TCP, TCP_DEFER_ACCEPT, 2);
    CHECK_EQ(geti(l, IPPROTO_TCP, TCP_DEFER_ACCEPT), 3);
    int ctl = ps_callback(0, ps_local_port(l), 1);
    int c = accept_ms(l, NULL, NULL, 5000);
    CHECK_EQ(geti(c, IPPROTO_TCP, TCP_DEFER_ACCEPT), 0);
    close(ctl);
}

TEST(accept_reset_before_accept, "a connection reset while queued is still accepted; reading it fails ECONNRESET", "accept(2), tcp(7)") {
    int l = listen_local(4);
    int cli = ps_tcp_connect4(ps_local4(), ps_local_port(l));
    struct linger lg = {1, 0};
    CHECK_OK(setsockopt(cli, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    wait_queue_len(l, 1, 3000);
    close(cli);
    ps_sleep_ms(50);
    int c = (int)CHECK_OK(accept(l, NULL, NULL));
    char ch;
    CHECK_ERR(read(c, &ch, 1), ECONNRESET);
    CHECK_EQ(read(c, &ch, 1), 0);
}

TEST(accept_data_before_accept, "data the peer sent before accept is readable at once", "accept(2)") {
    int l = listen_local(4);
    int ctl = ps_callback(0, ps_local_port(l), 1);
    wait_queue_len(l, 1, 3000);
    ps_sleep_ms(100);
    int c = (int)CHECK_OK(accept(l, NULL, NULL));
    int n = 0;
    CHECK_OK(ioctl(c, FIONREAD, &n));
    CHECK_EQ(n, 8);
    close(ctl);
}

TEST(accept6_peer_address, "an IPv6 accept returns the peer's sockaddr_in6, length 28", "accept(2), ipv6(7)") {
    int l = tcp6();
    struct sockaddr_in6 a = ps_sin6(ps_local6(), 0);
    CHECK_OK(bind(l, SA(&a), sizeof a));
    CHECK_OK(listen(l, 4));
    int ctl = ps_callback(1, ps_local_port(l), 1);
    struct sockaddr_in6 p;
    socklen_t len = sizeof p;
    int c = accept_ms(l, SA(&p), &len, 3000);
    CHECK_EQ(len, sizeof p);
    CHECK_EQ(p.sin6_family, AF_INET6);
    struct sockaddr_in6 want = ps_sin6(ps_peer6(), 0);
    CHECK(!memcmp(&p.sin6_addr, &want.sin6_addr, 16));
    char buf[8];
    read_exact_ms(c, buf, 8, 3000);
    close(ctl);
}

TEST(accept_notsock, "accept on a pipe fails ENOTSOCK, on a bad fd EBADF", "accept(2) ERRORS") {
    int p[2];
    CHECK_OK(pipe(p));
    CHECK_ERR(accept(p[0], NULL, NULL), ENOTSOCK);
    CHECK_ERR(accept(999, NULL, NULL), EBADF);
}
