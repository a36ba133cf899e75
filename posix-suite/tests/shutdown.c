/* shutdown() with each `how`, half-close, and how close() ends a
 * connection: FIN when everything was read, RST when data was left unread
 * or SO_LINGER {1,0} is set. */
#include "api_util.h"

static int tcp_state(int fd) {
    struct tcp_info ti;
    socklen_t l = sizeof ti;
    CHECK_OK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l));
    return ti.tcpi_state;
}

/* Read the COUNT service's reply after shutting down writing. */
static void expect_count(int fd, size_t n) {
    char buf[64], want[64];
    size_t got = read_to_eof(fd, buf, sizeof buf - 1, 5000);
    buf[got] = 0;
    snprintf(want, sizeof want, "bytes=%zu\n", n);
    if (strcmp(buf, want)) FAIL("COUNT replied %s, expected %s", buf, want);
}

TEST(shut_wr_count, "SHUT_WR sends FIN: the peer reads to EOF and still replies", "shutdown(2), RFC 9293 3.6") {
    int fd = peer_tcp(PORT_COUNT);
    ps_write_all(fd, "0123456789", 10);
    CHECK_OK(shutdown(fd, SHUT_WR));
    expect_count(fd, 10);
}

TEST(shut_wr_count_large, "half-close after 256 KiB: the peer counts every byte", "shutdown(2)") {
    int fd = peer_tcp(PORT_COUNT);
    static char buf[65536];
    memset(buf, 'x', sizeof buf);
    for (int i = 0; i < 4; i++) ps_write_all(fd, buf, sizeof buf);
    CHECK_OK(shutdown(fd, SHUT_WR));
    expect_count(fd, 4 * sizeof buf);
}

TEST(shut_wr_count_empty, "SHUT_WR with nothing sent: the peer counts 0", "shutdown(2)") {
    int fd = peer_tcp(PORT_COUNT);
    CHECK_OK(shutdown(fd, SHUT_WR));
    expect_count(fd, 0);
}

TEST(shut_wr_echo_reads_on, "after SHUT_WR the echoed data still arrives, then EOF", "shutdown(2)") {
    int fd = peer_tcp(PORT_ECHO);
    ps_write_all(fd, "abc", 3);
    CHECK_OK(shutdown(fd, SHUT_WR));
    char buf[8];
    CHECK_EQ(read_to_eof(fd, buf, sizeof buf, 3000), 3);
    CHECK(!memcmp(buf, "abc", 3));
}

TEST(shut_wr_send_epipe, "send after SHUT_WR fails EPIPE", "shutdown(2), send(2) ERRORS") {
    int fd = peer_tcp(PORT_HOLD);
    CHECK_OK(shutdown(fd, SHUT_WR));
    CHECK_ERR(send(fd, "x", 1, MSG_NOSIGNAL), EPIPE);
    CHECK_ERR(send(fd, "x", 1, MSG_NOSIGNAL), EPIPE);
}

TEST(shut_wr_write_sigpipe, "write after SHUT_WR raises SIGPIPE", "shutdown(2), send(2) ERRORS") {
    int fd = peer_tcp(PORT_HOLD);
    CHECK_OK(shutdown(fd, SHUT_WR));
    pid_t pid = (pid_t)CHECK_OK(fork());
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        (void)write(fd, "x", 1);
        _exit(0);
    }
    int st;
    CHECK_OK(waitpid(pid, &st, 0));
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGPIPE) FAIL("child status 0x%x, expected SIGPIPE", st);
}

TEST(shut_wr_sigpipe_ignored, "with SIGPIPE ignored, write after SHUT_WR fails EPIPE", "signal(7), send(2)") {
    int fd = peer_tcp(PORT_HOLD);
    signal(SIGPIPE, SIG_IGN);
    CHECK_OK(shutdown(fd, SHUT_WR));
    CHECK_ERR(write(fd, "x", 1), EPIPE);
}

TEST(shut_wr_poll, "after SHUT_WR the socket still polls POLLOUT (writing fails at once)", "poll(2), net/ipv4/tcp.c tcp_poll") {
    int cli, srv;
    local_pair(&cli, &srv); /* srv never closes: no FIN comes back */
    CHECK_OK(shutdown(cli, SHUT_WR));
    int ev = pollfd1(cli, POLLIN | POLLOUT | POLLRDHUP, 0);
    CHECK_EQ(ev, POLLOUT);
    wait_readable(srv, 3000);
    CHECK_EQ(pollfd1(cli, POLLIN | POLLOUT | POLLRDHUP, 0), POLLOUT);
}

TEST(shut_wr_state, "after SHUT_WR and the ACK the state is FIN_WAIT2, the other end's CLOSE_WAIT", "RFC 9293 3.3.2, tcp(7) TCP_INFO") {
    int cli, srv;
    local_pair(&cli, &srv);
    CHECK_OK(shutdown(cli, SHUT_WR));
    long t0 = ps_now_ms();
    while (tcp_state(cli) != TCP_FIN_WAIT2 && ps_now_ms() - t0 < 3000) ps_sleep_ms(10);
    CHECK_EQ(tcp_state(cli), TCP_FIN_WAIT2);
    CHECK_EQ(tcp_state(srv), TCP_CLOSE_WAIT);
}

TEST(shut_wr_twice, "SHUT_WR twice succeeds both times", "shutdown(2)") {
    int cli, srv;
    local_pair(&cli, &srv);
    CHECK_OK(shutdown(cli, SHUT_WR));
    CHECK_OK(shutdown(cli, SHUT_WR));
    wait_readable(srv, 3000);
    char c;
    CHECK_EQ(read(srv, &c, 1), 0);
}

TEST(shut_rd_read_zero, "read after SHUT_RD returns 0 at once", "shutdown(2)") {
    int fd = peer_tcp(PORT_HOLD);
    CHECK_OK(shutdown(fd, SHUT_RD));
    char c;
    long t0 = ps_now_ms();
    CHECK_EQ(read(fd, &c, 1), 0);
    CHECK_EQ(read(fd, &c, 1), 0);
    CHECK_ELAPSED(t0, 0, 500);
}

TEST(shut_rd_poll, "after SHUT_RD the socket polls POLLIN|POLLRDHUP|POLLOUT", "poll(2), net/ipv4/tcp.c tcp_poll") {
    int fd = peer_tcp(PORT_HOLD);
    CHECK_OK(shutdown(fd, SHUT_RD));
    CHECK_EQ(pollfd1(fd, POLLIN | POLLOUT | POLLRDHUP, 0), POLLIN | POLLOUT | POLLRDHUP);
}

TEST(shut_rd_queued_data_readable, "data queued before SHUT_RD can still be read", "net/ipv4/tcp.c tcp_recvmsg") {
    int fd = peer_tcp(PORT_ECHO);
    ps_write_all(fd, "queued", 6);
    wait_readable(fd, 3000);
    ps_sleep_ms(20);
    CHECK_OK(shutdown(fd, SHUT_RD));
    char buf[8];
    CHECK_EQ(recv(fd, buf, sizeof buf, 0), 6);
    CHECK(!memcmp(buf, "queued", 6));
    CHECK_EQ(recv(fd, buf, sizeof buf, 0), 0);
}

TEST(shut_rd_still_sends_and_queues, "after SHUT_RD the socket still sends, and the echo is still queued", "shutdown(2), net/ipv4/tcp_input.c tcp_rcv_state_process") {
    int fd = peer_tcp(PORT_ECHO);
    CHECK_OK(shutdown(fd, SHUT_RD));
    ps_write_all(fd, "12345", 5);
    long t0 = ps_now_ms();
    int n = 0;
    while (n < 5 && ps_now_ms() - t0 < 3000) {
        CHECK_OK(ioctl(fd, FIONREAD, &n));
        if (n < 5) ps_sleep_ms(5);
    }
    CHECK_EQ(n, 5);
    char buf[8];
    CHECK_EQ(recv(fd, buf, sizeof buf, 0), 5);
    CHECK(!memcmp(buf, "12345", 5));
}

TEST(shut_rdwr, "SHUT_RDWR: read returns 0, send fails EPIPE", "shutdown(2)") {
    int fd = peer_tcp(PORT_HOLD);
    CHECK_OK(shutdown(fd, SHUT_RDWR));
    char c;
    CHECK_EQ(read(fd, &c, 1), 0);
    CHECK_ERR(send(fd, "x", 1, MSG_NOSIGNAL), EPIPE);
}

TEST(shut_rdwr_data_resets, "data arriving after SHUT_RDWR resets the connection: POLLERR, ECONNRESET", "RFC 1122 4.2.2.13, net/ipv4/tcp_input.c tcp_rcv_state_process") {
    int fd = peer_tcp(PORT_COUNT);
    ps_write_all(fd, "abcd", 4);
    CHECK_OK(shutdown(fd, SHUT_RDWR)); /* COUNT replies "bytes=4\n" into a closed reader */
    long t0 = ps_now_ms();
    while (!(pollfd1(fd, POLLIN, 100) & POLLERR) && ps_now_ms() - t0 < 3000) {}
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_ERROR), ECONNRESET);
    CHECK_EQ(tcp_state(fd), TCP_CLOSE);
}

TEST(shut_rdwr_poll_hup, "after SHUT_RDWR the socket polls POLLHUP", "poll(2), net/ipv4/tcp.c tcp_poll") {
    int fd = peer_tcp(PORT_HOLD);
    CHECK_OK(shutdown(fd, SHUT_RDWR));
    int ev = pollfd1(fd, POLLIN | POLLOUT | POLLRDHUP, 0);
    CHECK_EQ(ev, POLLIN | POLLOUT | POLLRDHUP | POLLHUP);
}

TEST(shut_rd_then_wr, "SHUT_RD then SHUT_WR equals SHUT_RDWR", "shutdown(2)") {
    int fd = peer_tcp(PORT_HOLD);
    CHECK_OK(shutdown(fd, SHUT_RD));
    CHECK_OK(shutdown(fd, SHUT_WR));
    CHECK(pollfd1(fd, POLLIN, 0) & POLLHUP);
}

TEST(enotconn_tcp, "shutdown on an unconnected TCP socket fails ENOTCONN", "shutdown(2) ERRORS") {
    int fd = tcp4();
    CHECK_ERR(shutdown(fd, SHUT_RDWR), ENOTCONN);
    CHECK_ERR(shutdown(fd, SHUT_WR), ENOTCONN);
    int b = tcp4();
    bind4(b, local4(0));
    CHECK_ERR(shutdown(b, SHUT_RD), ENOTCONN);
}

TEST(enotconn_udp, "shutdown on an unconnected UDP socket fails ENOTCONN", "shutdown(2) ERRORS") {
    int fd = udp4();
    CHECK_ERR(shutdown(fd, SHUT_RDWR), ENOTCONN);
}

TEST(enotconn_udp_still_marks, "an ENOTCONN shutdown of a UDP socket still marks it shut: POLLHUP", "net/ipv4/af_inet.c inet_shutdown") {
    int fd = udp4();
    CHECK_ERR(shutdown(fd, SHUT_RDWR), ENOTCONN);
    CHECK(pollfd1(fd, POLLIN, 0) & POLLHUP);
}

TEST(udp_connected_shut_wr, "SHUT_WR on a connected UDP socket makes send fail EPIPE", "shutdown(2), udp(7)") {
    int fd = udp4();
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    CHECK_OK(shutdown(fd, SHUT_WR));
    CHECK_ERR(send(fd, "x", 1, MSG_NOSIGNAL), EPIPE);
}

TEST(udp_connected_shut_rd, "SHUT_RD on a connected UDP socket makes a blocking recv return 0", "shutdown(2), udp(7)") {
    int fd = udp4();
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    CHECK_OK(shutdown(fd, SHUT_RD));
    char c;
    CHECK_EQ(recv(fd, &c, 1, 0), 0);
}

TEST(bad_how, "shutdown with how outside 0..2 fails EINVAL", "shutdown(2) ERRORS") {
    int fd = peer_tcp(PORT_HOLD);
    CHECK_ERR(shutdown(fd, 3), EINVAL);
    CHECK_ERR(shutdown(fd, -1), EINVAL);
    CHECK_ERR(shutdown(fd, 100), EINVAL);
    CHECK_EQ(pollfd1(fd, POLLIN | POLLRDHUP, 0), 0); /* still open both ways */
}

TEST(bad_how_unconnected, "a bad how is checked before the connection: EINVAL", "shutdown(2) ERRORS") {
    int fd = tcp4();
    CHECK_ERR(shutdown(fd, 3), EINVAL);
}

TEST(shutdown_notsock, "shutdown on a pipe fails ENOTSOCK, on a bad fd EBADF", "shutdown(2) ERRORS") {
    int p[2];
    CHECK_OK(pipe(p));
    CHECK_ERR(shutdown(p[0], SHUT_RD), ENOTSOCK);
    CHECK_ERR(shutdown(999, SHUT_RD), EBADF);
}

TEST(shutdown_pending_connect, "shutdown during a pending connect aborts it and returns 0", "net/ipv4/af_inet.c inet_shutdown") {
    int fd = (int)CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    CHECK_ERR(connect4_r(fd, peer4(PORT_BLACKHOLE)), EINPROGRESS);
    CHECK_OK(shutdown(fd, SHUT_RDWR));
    CHECK_EQ(tcp_state(fd), TCP_CLOSE);
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    CHECK_ERR(getpeername(fd, SA(&a), &l), ENOTCONN);
}

TEST(peer_sees_fin_on_close, "close with nothing unread sends FIN: the other end reads EOF", "close(2), RFC 9293 3.6") {
    int cli, srv;
    local_pair(&cli, &srv);
    ps_write_all(srv, "hi", 2);
    char buf[4];
    read_exact_ms(cli, buf, 2, 3000);
    close(cli);
    wait_readable(srv, 3000);
    CHECK_EQ(read(srv, buf, sizeof buf), 0);
}

TEST(close_unread_rst, "close with unread data sends RST: the other end's read fails ECONNRESET", "RFC 2525 2.17, tcp(7)") {
    int cli, srv;
    local_pair(&cli, &srv);
    ps_write_all(srv, "unread", 6);
    wait_readable(cli, 3000);
    close(cli);
    wait_readable(srv, 3000);
    char c;
    CHECK_ERR(read(srv, &c, 1), ECONNRESET);
    CHECK_EQ(read(srv, &c, 1), 0);
}

TEST(close_unread_rst_poll, "after such an RST the other end polls POLLERR|POLLHUP", "RFC 2525 2.17, poll(2)") {
    int cli, srv;
    local_pair(&cli, &srv);
    ps_write_all(srv, "unread", 6);
    wait_readable(cli, 3000);
    close(cli);
    long t0 = ps_now_ms();
    int ev;
    while (!((ev = pollfd1(srv, POLLIN | POLLOUT, 100)) & POLLERR) && ps_now_ms() - t0 < 3000) {}
    CHECK_EQ(ev & (POLLERR | POLLHUP), POLLERR | POLLHUP);
    CHECK_EQ(geti(srv, SOL_SOCKET, SO_ERROR), ECONNRESET);
}

TEST(linger_zero_rst, "SO_LINGER {1,0}: close sends RST, the other end's read fails ECONNRESET", "socket(7) SO_LINGER") {
    int cli, srv;
    local_pair(&cli, &srv);
    struct linger lg = {1, 0};
    CHECK_OK(setsockopt(cli, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    close(cli);
    wait_readable(srv, 3000);
    char c;
    CHECK_ERR(read(srv, &c, 1), ECONNRESET);
}

TEST(linger_zero_no_time_wait, "SO_LINGER {1,0} leaves no TIME_WAIT: the port binds again at once", "socket(7) SO_LINGER") {
    int fd = tcp4();
    bind4(fd, local4(0));
    uint16_t p = ps_local_port(fd);
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    echo_roundtrip(fd, "x");
    struct linger lg = {1, 0};
    CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    close(fd);
    int again = tcp4();
    bind4(again, local4(p));
}

TEST(reset_service, "the peer's RST: read fails ECONNRESET once, then returns 0", "RFC 9293 3.10.7, recv(2)") {
    int fd = peer_tcp(PORT_RESET);
    wait_readable(fd, 3000);
    char c;
    CHECK_ERR(read(fd, &c, 1), ECONNRESET);
    CHECK_EQ(read(fd, &c, 1), 0);
    CHECK_EQ(tcp_state(fd), TCP_CLOSE);
}

TEST(reset_then_send, "after the peer's RST, send fails EPIPE once the error was reported", "send(2) ERRORS") {
    int fd = peer_tcp(PORT_RESET);
    wait_readable(fd, 3000);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_ERROR), ECONNRESET);
    CHECK_ERR(send(fd, "x", 1, MSG_NOSIGNAL), EPIPE);
}

TEST(reset_shutdown_enotconn, "shutdown after the peer's RST fails ENOTCONN", "shutdown(2) ERRORS") {
    int fd = peer_tcp(PORT_RESET);
    wait_readable(fd, 3000);
    ps_sleep_ms(10);
    CHECK_ERR(shutdown(fd, SHUT_WR), ENOTCONN);
}

TEST(peer_close_then_read, "after the peer's FIN and all data, read returns 0 repeatedly", "recv(2)") {
    int fd = peer_tcp(PORT_COUNT);
    CHECK_OK(shutdown(fd, SHUT_WR));
    expect_count(fd, 0);
    char c;
    CHECK_EQ(read(fd, &c, 1), 0);
    CHECK_EQ(read(fd, &c, 1), 0);
}

TEST(closed_after_both_fins, "after both FINs the socket reports TCP_CLOSE (TIME_WAIT lives on without it)", "RFC 9293 3.3.2, net/ipv4/tcp_minisocks.c") {
    int fd = peer_tcp(PORT_ECHO);
    CHECK_OK(shutdown(fd, SHUT_WR));
    char buf[4];
    CHECK_EQ(read_to_eof(fd, buf, sizeof buf, 3000), 0);
    CHECK_EQ(tcp_state(fd), TCP_CLOSE);
}

TEST(close_wait_passive, "the side that receives FIN first is in CLOSE_WAIT and can still send", "RFC 9293 3.3.2") {
    int cli, srv;
    local_pair(&cli, &srv);
    CHECK_OK(shutdown(cli, SHUT_WR));
    wait_readable(srv, 3000);
    char c[4];
    CHECK_EQ(read(srv, c, 1), 0);
    CHECK_EQ(tcp_state(srv), TCP_CLOSE_WAIT);
    ps_write_all(srv, "late", 4);
    read_exact_ms(cli, c, 4, 3000);
    CHECK(!memcmp(c, "late", 4));
    close(srv);
    CHECK_EQ(read_to_eof(cli, c, sizeof c, 3000), 0);
}

TEST(shut_wr_receives_source, "after SHUT_WR the socket still receives 1 MiB intact", "shutdown(2)") {
    int fd = peer_tcp(PORT_SOURCE);
    CHECK_OK(shutdown(fd, SHUT_WR));
    static char buf[SOURCE_BYTES + 1];
    size_t n = read_to_eof(fd, buf, sizeof buf, 5000);
    CHECK_EQ(n, SOURCE_BYTES);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] != i % 251) FAIL("byte %zu is %u", i, (unsigned char)buf[i]);
}
