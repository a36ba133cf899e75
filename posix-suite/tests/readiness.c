/* readiness: poll, select and epoll on sockets (alone and mixed with pipes):
 * the exact event masks Linux reports in each connection state, timeouts,
 * errors, level/edge/one-shot/exclusive epoll semantics. */
#include "../harness.h"

#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

/* ---- helpers (static: harness.h is shared) ---- */

static void tcp_pair(int *c, int *s) {
    int l = ps_tcp_listen4(ps_local4(), 0, 4);
    *c = ps_tcp_connect4(ps_local4(), ps_local_port(l));
    *s = CHECK_OK(accept(l, NULL, NULL));
    close(l);
}

static int echo4(void) { return ps_tcp_connect4(ps_peer4(), PORT_ECHO); }

/* poll one fd; returns revents (0 on timeout). */
static short poll1(int fd, short events, int ms) {
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, ms);
    if (n < 0) FAIL("poll: %s", strerrorname_np(errno));
    if (n == 0 && p.revents) FAIL("poll returned 0 with revents %#x", p.revents);
    return n ? p.revents : 0;
}

/* poll until every event in `want` shows (the kernel updates a socket's
 * state in steps, so wait for the last one); returns the full revents. */
static short poll_until(int fd, short events, short want) {
    long end = ps_now_ms() + 3000;
    for (;;) {
        short r = poll1(fd, events, 50);
        if ((r & want) == want) return r;
        if (ps_now_ms() > end) FAIL("no event %#x within 3 s (last %#x)", want, r);
    }
}

static void wait_bytes(int fd, size_t n) {
    char tmp[256];
    long end = ps_now_ms() + 3000;
    for (;;) {
        ssize_t r = recv(fd, tmp, n, MSG_PEEK | MSG_DONTWAIT);
        if (r >= 0 && (size_t)r >= n) return;
        if (r == 0) FAIL("EOF while waiting for data");
        if (ps_now_ms() > end) FAIL("data did not arrive within 3 s");
        poll1(fd, POLLIN, 10);
        if (r > 0) ps_sleep_ms(1);
    }
}

static int nonblocking_connect(const char *ip, uint16_t port) {
    int fd = CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    struct sockaddr_in a = ps_sin(ip, port);
    int r = connect(fd, (struct sockaddr *)&a, sizeof a);
    if (r == 0) FAIL("non-blocking connect to a remote peer completed at once");
    CHECK_EQ(errno, EINPROGRESS);
    return fd;
}

static int so_error(int fd) {
    int e = -1;
    socklen_t l = sizeof e;
    CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l));
    return e;
}

/* A socket whose connect was refused, with the error not yet read. */
static int refused_socket(void) {
    int fd = CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    struct sockaddr_in a = ps_sin(ps_peer4(), PORT_CLOSED);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) FAIL("connect to a closed port succeeded");
    if (errno != EINPROGRESS && errno != ECONNREFUSED) FAIL("connect: %s", strerrorname_np(errno));
    if (errno == ECONNREFUSED) FAIL("refusal reported synchronously by connect");
    poll_until(fd, POLLIN | POLLOUT | POLLRDHUP, POLLIN | POLLRDHUP | POLLERR | POLLHUP);
    return fd;
}

static int ep_create(void) { return CHECK_OK(epoll_create1(EPOLL_CLOEXEC)); }

static void ep_add(int ep, int fd, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.fd = fd};
    CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
}

/* epoll_wait for one event; returns the count (0 or 1), event in *out. */
static int ep_wait1(int ep, struct epoll_event *out, int ms) {
    struct epoll_event ev[4];
    int n = epoll_wait(ep, ev, 4, ms);
    if (n < 0) FAIL("epoll_wait: %s", strerrorname_np(errno));
    if (n > 1) FAIL("epoll_wait returned %d events, want at most 1", n);
    if (n == 1 && out) *out = ev[0];
    return n;
}

/* Let the test's own thread block: wait until `tid` sleeps in the kernel. */
static void wait_sleeping(pid_t tid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    long end = ps_now_ms() + 3000;
    int streak = 0;
    while (streak < 3) {
        int f = open(path, O_RDONLY);
        if (f < 0) FAIL("open %s: %s", path, strerrorname_np(errno));
        ssize_t n = read(f, buf, sizeof buf - 1);
        close(f);
        buf[n > 0 ? n : 0] = 0;
        char *p = strrchr(buf, ')');
        streak = (p && p[1] == ' ' && p[2] == 'S') ? streak + 1 : 0;
        if (ps_now_ms() > end) FAIL("thread %d never blocked", tid);
        ps_sleep_ms(5);
    }
}

/* ---- poll ---- */

TEST(poll_connected_pollout_only, "an idle connected TCP socket polls POLLOUT and nothing else", "poll(2), tcp(7)") {
    int fd = echo4();
    CHECK_EQ(poll1(fd, POLLIN | POLLOUT | POLLRDHUP | POLLPRI, 0), POLLOUT);
}

TEST(poll_pollin_on_data, "data arriving makes the socket poll POLLIN|POLLRDNORM", "poll(2)") {
    int fd = echo4();
    ps_write_all(fd, "x", 1);
    CHECK_EQ(poll1(fd, POLLIN | POLLRDNORM, 3000), POLLIN | POLLRDNORM);
    char b;
    CHECK_EQ(read(fd, &b, 1), 1);
    CHECK_EQ(poll1(fd, POLLIN, 0), 0);
}

TEST(poll_wrnorm, "a connected TCP socket reports POLLWRNORM with POLLOUT when asked", "poll(2)") {
    int fd = echo4();
    CHECK_EQ(poll1(fd, POLLOUT | POLLWRNORM, 0), POLLOUT | POLLWRNORM);
    CHECK_EQ(poll1(fd, POLLWRNORM, 0), POLLWRNORM);
}

TEST(poll_timeout_zero, "poll with timeout 0 and no events returns 0 at once", "poll(2)") {
    int fd = echo4();
    long t0 = ps_now_ms();
    CHECK_EQ(poll1(fd, POLLIN, 0), 0);
    CHECK(ps_now_ms() - t0 < 1000);
}

TEST(poll_timeout_elapses, "poll with a 100 ms timeout and no events returns 0 after about 100 ms", "poll(2)") {
    int fd = echo4();
    long t0 = ps_now_ms();
    CHECK_EQ(poll1(fd, POLLIN, 100), 0);
    long dt = ps_now_ms() - t0;
    if (dt < 95 || dt > 1000) FAIL("poll took %ld ms", dt);
}

TEST(poll_blocks_until_data, "a blocking poll(-1) wakes when the echo arrives", "poll(2)") {
    int fd = echo4();
    /* Before fork: the parent can resume well after the child started. */
    long t0 = ps_now_ms();
    pid_t pid = fork();
    if (pid == 0) { ps_sleep_ms(60); ps_write_all(fd, "w", 1); _exit(0); }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, -1), 1);
    CHECK_EQ(p.revents, POLLIN);
    CHECK(ps_now_ms() - t0 >= 55);
    waitpid(pid, NULL, 0);
}

TEST(poll_fresh_tcp_hup, "a fresh, unconnected TCP socket polls POLLOUT|POLLHUP", "poll(2), tcp(7)") {
    int fd = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
    CHECK_EQ(poll1(fd, POLLIN | POLLOUT | POLLRDHUP, 0), POLLOUT | POLLHUP);
    CHECK_EQ(poll1(fd, 0, 0), POLLHUP);
}

TEST(poll_hup_ignores_events, "POLLHUP is reported even when events is 0", "poll(2) POLLHUP") {
    int c, s;
    tcp_pair(&c, &s);
    CHECK_OK(shutdown(c, SHUT_WR));
    CHECK_OK(shutdown(s, SHUT_WR));
    CHECK_EQ(poll_until(c, 0, POLLHUP), POLLHUP);
}

TEST(poll_rdhup_peer_shut_wr, "the peer's SHUT_WR makes the socket poll POLLIN|POLLRDHUP (and still POLLOUT)", "poll(2) POLLRDHUP") {
    int c, s;
    tcp_pair(&c, &s);
    CHECK_OK(shutdown(s, SHUT_WR));
    CHECK_EQ(poll_until(c, POLLIN | POLLOUT | POLLRDHUP, POLLRDHUP), POLLIN | POLLOUT | POLLRDHUP);
    char b[4];
    CHECK_EQ(recv(c, b, sizeof b, 0), 0);
}

TEST(poll_rdhup_not_requested, "without POLLRDHUP in events, the peer's FIN shows only as POLLIN", "poll(2)") {
    int c, s;
    tcp_pair(&c, &s);
    CHECK_OK(shutdown(s, SHUT_WR));
    CHECK_EQ(poll_until(c, POLLIN, POLLIN), POLLIN);
}

TEST(poll_rdhup_with_pending_data, "data followed by FIN: POLLIN|POLLRDHUP, the data first, then 0", "poll(2) POLLRDHUP") {
    int c, s;
    tcp_pair(&c, &s);
    ps_write_all(s, "tail", 4);
    close(s);
    CHECK_EQ(poll_until(c, POLLIN | POLLRDHUP, POLLRDHUP), POLLIN | POLLRDHUP);
    char b[8];
    CHECK_EQ(recv(c, b, sizeof b, 0), 4);
    CHECK_EQ(recv(c, b, sizeof b, 0), 0);
}

TEST(poll_own_shut_wr_still_pollout, "after our own SHUT_WR a socket still polls POLLOUT (writes fail with EPIPE)", "poll(2), tcp(7)") {
    /* A peer that stays open: an echo server would close on our FIN and
     * race a POLLHUP into the mask. */
    int c, s;
    tcp_pair(&c, &s);
    CHECK_OK(shutdown(c, SHUT_WR));
    CHECK_EQ(poll1(c, POLLOUT, 0), POLLOUT);
    char b;
    CHECK_EQ(recv(s, &b, 1, 0), 0); /* the FIN did arrive */
    CHECK_EQ(poll1(c, POLLOUT, 0), POLLOUT);
}

TEST(poll_hup_both_directions, "after SHUT_WR on both ends: POLLIN|POLLOUT|POLLRDHUP|POLLHUP", "poll(2) POLLHUP") {
    int c, s;
    tcp_pair(&c, &s);
    CHECK_OK(shutdown(c, SHUT_WR));
    CHECK_OK(shutdown(s, SHUT_WR));
    CHECK_EQ(poll_until(c, POLLIN | POLLOUT | POLLRDHUP, POLLIN | POLLRDHUP | POLLHUP), POLLIN | POLLOUT | POLLRDHUP | POLLHUP);
}

TEST(poll_shut_rd_local, "our own SHUT_RD makes the socket poll POLLIN|POLLRDHUP at once", "poll(2), shutdown(2)") {
    int fd = echo4();
    CHECK_OK(shutdown(fd, SHUT_RD));
    CHECK_EQ(poll1(fd, POLLIN | POLLOUT | POLLRDHUP, 0), POLLIN | POLLOUT | POLLRDHUP);
}

TEST(poll_refused_err, "a refused non-blocking connect polls POLLIN|POLLOUT|POLLRDHUP|POLLERR|POLLHUP", "poll(2) POLLERR, connect(2)") {
    int fd = refused_socket();
    CHECK_EQ(poll1(fd, POLLIN | POLLOUT | POLLRDHUP, 0), POLLIN | POLLOUT | POLLRDHUP | POLLERR | POLLHUP);
    CHECK_EQ(so_error(fd), ECONNREFUSED);
    CHECK_EQ(poll1(fd, POLLIN | POLLOUT | POLLRDHUP, 0), POLLIN | POLLOUT | POLLRDHUP | POLLHUP);
}

TEST(poll_err_ignores_events, "POLLERR is reported even when events is 0", "poll(2) POLLERR") {
    int fd = refused_socket();
    CHECK_EQ(poll1(fd, 0, 0), POLLERR | POLLHUP);
}

TEST(poll_after_reset, "after the peer's RST: POLLIN|POLLOUT|POLLRDHUP|POLLERR|POLLHUP, POLLERR gone once SO_ERROR is read", "poll(2), tcp(7)") {
    int fd = ps_tcp_connect4(ps_peer4(), PORT_RESET);
    CHECK_EQ(poll_until(fd, POLLIN | POLLOUT | POLLRDHUP, POLLIN | POLLRDHUP | POLLERR | POLLHUP), POLLIN | POLLOUT | POLLRDHUP | POLLERR | POLLHUP);
    CHECK_EQ(so_error(fd), ECONNRESET);
    CHECK_EQ(poll1(fd, POLLIN | POLLOUT | POLLRDHUP, 0), POLLIN | POLLOUT | POLLRDHUP | POLLHUP);
}

TEST(poll_nval_closed_fd, "polling a closed fd reports POLLNVAL and counts it", "poll(2) POLLNVAL") {
    int fd = echo4();
    close(fd);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 1000), 1);
    CHECK_EQ(p.revents, POLLNVAL);
}

TEST(poll_negative_fd_ignored, "an entry with a negative fd is ignored: revents 0, not counted", "poll(2)") {
    int fd = echo4();
    struct pollfd p[2] = {{.fd = -1, .events = POLLIN | POLLOUT, .revents = 0x7}, {.fd = fd, .events = POLLOUT}};
    CHECK_EQ(poll(p, 2, 0), 1);
    CHECK_EQ(p[0].revents, 0);
    CHECK_EQ(p[1].revents, POLLOUT);
}

TEST(poll_listen_idle, "a listening socket with no pending connection polls nothing, not even POLLOUT", "poll(2), listen(2)") {
    int l = ps_tcp_listen4(ps_local4(), 0, 4);
    CHECK_EQ(poll1(l, POLLIN | POLLOUT | POLLRDHUP, 0), 0);
}

TEST(poll_listen_pending_local, "a listening socket polls POLLIN once a connection is pending, and not after accept", "accept(2), poll(2)") {
    int l = ps_tcp_listen4(ps_local4(), 0, 4);
    int c = ps_tcp_connect4(ps_local4(), ps_local_port(l));
    CHECK_EQ(poll_until(l, POLLIN | POLLOUT, POLLIN), POLLIN);
    int s = CHECK_OK(accept(l, NULL, NULL));
    CHECK_EQ(poll1(l, POLLIN, 0), 0);
    close(s);
    close(c);
}

TEST(poll_listen_pending_callback, "a connection from the peer (CALLBACK) makes the listener poll POLLIN", "accept(2), poll(2)") {
    int l = ps_tcp_listen4(ps_local4(), 0, 4);
    int ctl = ps_callback(0, ps_local_port(l), 1);
    CHECK_EQ(poll1(l, POLLIN, 3000), POLLIN);
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    int s = CHECK_OK(accept(l, (struct sockaddr *)&from, &len));
    CHECK_EQ(from.sin_addr.s_addr, ps_sin(ps_peer4(), 0).sin_addr.s_addr);
    close(s);
    close(ctl);
}

TEST(poll_connect_completion_pollout, "a non-blocking connect completes as POLLOUT with SO_ERROR 0", "connect(2) EINPROGRESS") {
    int fd = nonblocking_connect(ps_peer4(), PORT_ECHO);
    CHECK_EQ(poll1(fd, POLLIN | POLLOUT, 3000), POLLOUT);
    CHECK_EQ(so_error(fd), 0);
}

TEST(poll_pollout_clears_when_full, "POLLOUT clears and stays clear once a peer that never reads has closed its window", "poll(2), tcp(7)") {
    int fd = ps_tcp_connect4(ps_peer4(), PORT_HOLD);
    static char buf[65536];
    long total = 0;
    /* Fill until EAGAIN; ACKs may free room again while the peer's window
     * is still open, so repeat until 100 ms pass without POLLOUT. */
    for (int round = 0;; round++) {
        while (send(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
            if ((total += (long)sizeof buf) > 256L << 20) FAIL("never filled");
        CHECK_EQ(errno, EAGAIN);
        if (poll1(fd, POLLOUT, 100) == 0) break;
        if (round == 50) FAIL("POLLOUT never cleared (%ld bytes queued)", total);
    }
    CHECK_EQ(poll1(fd, POLLIN | POLLOUT, 100), 0);
}

TEST(poll_udp_pollout, "an unconnected UDP socket polls POLLOUT only (no POLLHUP, unlike TCP)", "poll(2), udp(7)") {
    int fd = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
    CHECK_EQ(poll1(fd, POLLIN | POLLOUT | POLLRDHUP, 0), POLLOUT);
}

TEST(poll_urgent_pollpri, "urgent data (MSG_OOB) makes the receiver poll POLLPRI", "tcp(7) urgent data, poll(2)") {
    int c, s;
    tcp_pair(&c, &s);
    CHECK_EQ(send(s, "!", 1, MSG_OOB), 1);
    CHECK(poll_until(c, POLLPRI, POLLPRI) & POLLPRI);
    char b;
    CHECK_EQ(recv(c, &b, 1, MSG_OOB), 1);
    CHECK_EQ(b, '!');
}

TEST(urgent_out_of_line, "the urgent byte leaves the stream: reads stop at the mark, SIOCATMARK, MSG_OOB reads it once, the next read skips it", "tcp(7) urgent data, SIOCATMARK") {
    int c, s;
    tcp_pair(&c, &s);
    CHECK_EQ(send(s, "ab!", 3, MSG_OOB), 3);
    CHECK_EQ(send(s, "cd", 2, 0), 2);
    poll_until(c, POLLPRI, POLLPRI);
    ps_sleep_ms(100);
    int mark = -1;
    CHECK_OK(ioctl(c, SIOCATMARK, &mark));
    CHECK_EQ(mark, 0);
    char b[8];
    CHECK_EQ(recv(c, b, sizeof b, 0), 2);
    CHECK(memcmp(b, "ab", 2) == 0);
    CHECK_OK(ioctl(c, SIOCATMARK, &mark));
    CHECK_EQ(mark, 1);
    CHECK_EQ(recv(c, b, 1, MSG_OOB | MSG_PEEK), 1);
    CHECK_EQ(b[0], '!');
    CHECK_EQ(recv(c, b, 1, MSG_OOB), 1);
    CHECK_EQ(b[0], '!');
    CHECK_EQ(poll1(c, POLLPRI, 0) & POLLPRI, 0);
    CHECK_ERR(recv(c, b, 1, MSG_OOB), EINVAL);
    CHECK_EQ(recv(c, b, sizeof b, 0), 2);
    CHECK(memcmp(b, "cd", 2) == 0);
    CHECK_OK(ioctl(c, SIOCATMARK, &mark));
    CHECK_EQ(mark, 0);
}

TEST(urgent_to_kernel_peer, "an urgent byte sent to the peer's ECHO is taken out of its stream: the echo lacks it", "tcp(7) urgent data, RFC 9293 3.8.5") {
    int fd = echo4();
    CHECK_EQ(send(fd, "ab!", 3, MSG_OOB), 3);
    ps_sleep_ms(50);
    CHECK_EQ(send(fd, "cd", 2, 0), 2);
    wait_bytes(fd, 4);
    char b[8];
    CHECK_EQ(recv(fd, b, sizeof b, MSG_DONTWAIT), 4);
    CHECK(memcmp(b, "abcd", 4) == 0);
}

static volatile sig_atomic_t got_sigurg;
static void on_sigurg(int sig) { (void)sig; got_sigurg = 1; }

TEST(urgent_sigurg_to_owner, "urgent data sends SIGURG to the F_SETOWN owner (no O_ASYNC needed)", "tcp(7) urgent data, fcntl(2) F_SETOWN") {
    int c, s;
    tcp_pair(&c, &s);
    signal(SIGURG, on_sigurg);
    got_sigurg = 0;
    CHECK_OK(fcntl(c, F_SETOWN, getpid()));
    CHECK_EQ(send(s, "a", 1, 0), 1);
    poll_until(c, POLLIN, POLLIN);
    ps_sleep_ms(20);
    CHECK(!got_sigurg);
    CHECK_EQ(send(s, "!", 1, MSG_OOB), 1);
    long t0 = ps_now_ms();
    while (!got_sigurg && ps_now_ms() - t0 < 3000) ps_sleep_ms(5);
    CHECK(got_sigurg);
}

TEST(urgent_oobinline, "with SO_OOBINLINE the urgent byte stays in the stream, a read still stops at the mark, MSG_OOB is EINVAL", "tcp(7) SO_OOBINLINE") {
    int c, s;
    tcp_pair(&c, &s);
    int one = 1;
    CHECK_OK(setsockopt(c, SOL_SOCKET, SO_OOBINLINE, &one, sizeof one));
    CHECK_EQ(send(s, "x!", 2, MSG_OOB), 2);
    CHECK_EQ(send(s, "y", 1, 0), 1);
    poll_until(c, POLLPRI, POLLPRI);
    ps_sleep_ms(100);
    char b[8];
    CHECK_ERR(recv(c, b, 1, MSG_OOB), EINVAL);
    CHECK_EQ(recv(c, b, sizeof b, 0), 1);
    CHECK_EQ(b[0], 'x');
    CHECK_EQ(recv(c, b, sizeof b, 0), 2);
    CHECK(memcmp(b, "!y", 2) == 0);
}

TEST(ppoll_timeout_and_event, "ppoll with a timespec times out with 0, and reports POLLIN when data is there", "ppoll(2)") {
    int fd = echo4();
    struct pollfd p = {.fd = fd, .events = POLLIN};
    struct timespec ts = {0, 50 * 1000000};
    long t0 = ps_now_ms();
    CHECK_EQ(ppoll(&p, 1, &ts, NULL), 0);
    CHECK(ps_now_ms() - t0 >= 45);
    ps_write_all(fd, "p", 1);
    struct timespec ts2 = {3, 0};
    CHECK_EQ(ppoll(&p, 1, &ts2, NULL), 1);
    CHECK_EQ(p.revents, POLLIN);
}

/* ---- select ---- */

TEST(select_read_on_data, "select marks a socket readable when data arrives, and clears other bits", "select(2)") {
    int fd = echo4();
    ps_write_all(fd, "s", 1);
    fd_set r, w, e;
    FD_ZERO(&r); FD_ZERO(&w); FD_ZERO(&e);
    FD_SET(fd, &r); FD_SET(fd, &e);
    struct timeval tv = {3, 0};
    CHECK_EQ(select(fd + 1, &r, &w, &e, &tv), 1);
    CHECK(FD_ISSET(fd, &r));
    CHECK(!FD_ISSET(fd, &e));
}

TEST(select_write_connected, "select marks a connected socket writable; read and read+write counts add up", "select(2)") {
    int fd = echo4();
    ps_write_all(fd, "s", 1);
    wait_bytes(fd, 1);
    fd_set r, w;
    FD_ZERO(&r); FD_ZERO(&w);
    FD_SET(fd, &r); FD_SET(fd, &w);
    struct timeval tv = {0, 0};
    CHECK_EQ(select(fd + 1, &r, &w, NULL, &tv), 2);
    CHECK(FD_ISSET(fd, &r) && FD_ISSET(fd, &w));
}

TEST(select_timeout_updates_tv, "select that times out returns 0 with empty sets and the timeval set to 0 (Linux)", "select(2) Linux notes") {
    int fd = echo4();
    fd_set r;
    FD_ZERO(&r);
    FD_SET(fd, &r);
    struct timeval tv = {0, 80000};
    long t0 = ps_now_ms();
    CHECK_EQ(select(fd + 1, &r, NULL, NULL, &tv), 0);
    CHECK(ps_now_ms() - t0 >= 75);
    CHECK(!FD_ISSET(fd, &r));
    CHECK_EQ(tv.tv_sec, 0);
    CHECK_EQ(tv.tv_usec, 0);
}

TEST(select_remaining_time, "select returning early leaves the unslept time in the timeval (Linux)", "select(2) Linux notes") {
    int fd = echo4();
    ps_write_all(fd, "s", 1);
    wait_bytes(fd, 1);
    fd_set r;
    FD_ZERO(&r);
    FD_SET(fd, &r);
    struct timeval tv = {5, 0};
    CHECK_EQ(select(fd + 1, &r, NULL, NULL, &tv), 1);
    if (tv.tv_sec != 4 || tv.tv_usec < 900000) FAIL("timeval left {%ld, %ld}, want just under 5 s", (long)tv.tv_sec, (long)tv.tv_usec);
}

TEST(select_ebadf, "select with a closed fd in a set fails with EBADF", "select(2) EBADF") {
    int fd = echo4();
    close(fd);
    fd_set r;
    FD_ZERO(&r);
    FD_SET(fd, &r);
    struct timeval tv = {1, 0};
    CHECK_ERR(select(fd + 1, &r, NULL, NULL, &tv), EBADF);
}

TEST(select_negative_nfds, "select with a negative nfds fails with EINVAL", "select(2) EINVAL") {
    struct timeval tv = {0, 0};
    CHECK_ERR(select(-1, NULL, NULL, NULL, &tv), EINVAL);
}

TEST(select_fd_beyond_nfds_ignored, "an fd at or above nfds is neither checked nor reported", "select(2)") {
    int fd = echo4();
    fd_set w;
    FD_ZERO(&w);
    FD_SET(fd, &w);
    struct timeval tv = {0, 0};
    CHECK_EQ(select(fd, NULL, &w, NULL, &tv), 0);
    CHECK(!FD_ISSET(fd, &w));
}

TEST(select_except_urgent, "urgent data marks the socket in the exception set", "select(2) exceptfds, tcp(7)") {
    int c, s;
    tcp_pair(&c, &s);
    fd_set e;
    FD_ZERO(&e);
    FD_SET(c, &e);
    struct timeval tv = {0, 0};
    CHECK_EQ(select(c + 1, NULL, NULL, &e, &tv), 0);
    CHECK_EQ(send(s, "!", 1, MSG_OOB), 1);
    FD_ZERO(&e);
    FD_SET(c, &e);
    tv = (struct timeval){3, 0};
    CHECK_EQ(select(c + 1, NULL, NULL, &e, &tv), 1);
    CHECK(FD_ISSET(c, &e));
}

TEST(select_listen_readable, "a listening socket is readable in select when a connection is pending", "select(2), accept(2)") {
    int l = ps_tcp_listen4(ps_local4(), 0, 4);
    int ctl = ps_callback(0, ps_local_port(l), 1);
    fd_set r, w;
    FD_ZERO(&r); FD_ZERO(&w);
    FD_SET(l, &r); FD_SET(l, &w);
    struct timeval tv = {3, 0};
    CHECK_EQ(select(l + 1, &r, &w, NULL, &tv), 1);
    CHECK(FD_ISSET(l, &r));
    CHECK(!FD_ISSET(l, &w));
    close(ctl);
}

TEST(select_refused_readable_writable, "a refused non-blocking connect is both readable and writable in select", "select(2), connect(2)") {
    int fd = refused_socket();
    fd_set r, w, e;
    FD_ZERO(&r); FD_ZERO(&w); FD_ZERO(&e);
    FD_SET(fd, &r); FD_SET(fd, &w); FD_SET(fd, &e);
    struct timeval tv = {0, 0};
    CHECK_EQ(select(fd + 1, &r, &w, &e, &tv), 2);
    CHECK(FD_ISSET(fd, &r) && FD_ISSET(fd, &w) && !FD_ISSET(fd, &e));
    CHECK_EQ(so_error(fd), ECONNREFUSED);
}

TEST(select_connect_completion, "a non-blocking connect completes as writable in select", "connect(2) EINPROGRESS") {
    int fd = nonblocking_connect(ps_peer4(), PORT_ECHO);
    fd_set r, w;
    FD_ZERO(&r); FD_ZERO(&w);
    FD_SET(fd, &r); FD_SET(fd, &w);
    struct timeval tv = {3, 0};
    CHECK_EQ(select(fd + 1, &r, &w, NULL, &tv), 1);
    CHECK(FD_ISSET(fd, &w) && !FD_ISSET(fd, &r));
    CHECK_EQ(so_error(fd), 0);
}

TEST(pselect_timeout_const, "pselect times out with 0 and leaves its timespec unchanged", "pselect(2)") {
    int fd = echo4();
    fd_set r;
    FD_ZERO(&r);
    FD_SET(fd, &r);
    struct timespec ts = {0, 50 * 1000000};
    CHECK_EQ(pselect(fd + 1, &r, NULL, NULL, &ts, NULL), 0);
    CHECK_EQ(ts.tv_sec, 0);
    CHECK_EQ(ts.tv_nsec, 50 * 1000000);
}

/* ---- epoll ---- */

TEST(epoll_level_repeats, "level-triggered EPOLLIN is reported on every epoll_wait until the data is read", "epoll(7) level-triggered") {
    int fd = echo4();
    int ep = ep_create();
    ep_add(ep, fd, EPOLLIN);
    ps_write_all(fd, "l", 1);
    struct epoll_event ev;
    CHECK_EQ(ep_wait1(ep, &ev, 3000), 1);
    CHECK_EQ(ev.events, EPOLLIN);
    CHECK_EQ(ev.data.fd, fd);
    CHECK_EQ(ep_wait1(ep, &ev, 0), 1);
    CHECK_EQ(ev.events, EPOLLIN);
    char b;
    CHECK_EQ(read(fd, &b, 1), 1);
    CHECK_EQ(ep_wait1(ep, &ev, 0), 0);
}

TEST(epoll_edge_once, "edge-triggered EPOLLIN is reported once per arrival, even with data left unread", "epoll(7) EPOLLET") {
    int fd = echo4();
    int ep = ep_create();
    ep_add(ep, fd, EPOLLIN | EPOLLET);
    ps_write_all(fd, "ab", 2);
    wait_bytes(fd, 2);
    struct epoll_event ev;
    CHECK_EQ(ep_wait1(ep, &ev, 3000), 1);
    CHECK_EQ(ev.events, EPOLLIN);
    CHECK_EQ(ep_wait1(ep, &ev, 0), 0);
    char b;
    CHECK_EQ(read(fd, &b, 1), 1);
    CHECK_EQ(ep_wait1(ep, &ev, 0), 0);
    ps_write_all(fd, "c", 1);
    CHECK_EQ(ep_wait1(ep, &ev, 3000), 1);
    CHECK_EQ(ev.events, EPOLLIN);
}

TEST(epoll_edge_pollout_once, "edge-triggered EPOLLOUT on an idle connected socket is reported once", "epoll(7) EPOLLET") {
    int fd = echo4();
    int ep = ep_create();
    ep_add(ep, fd, EPOLLOUT | EPOLLET);
    struct epoll_event ev;
    CHECK_EQ(ep_wait1(ep, &ev, 1000), 1);
    CHECK_EQ(ev.events, EPOLLOUT);
    CHECK_EQ(ep_wait1(ep, &ev, 50), 0);
}

TEST(epoll_edge_pollout_after_full_send, "edge-triggered EPOLLOUT comes again once a send that hit EAGAIN has room, even with no epoll_wait in between", "epoll(7) EPOLLET") {
    int c, s;
    tcp_pair(&c, &s);
    CHECK_OK(fcntl(c, F_SETFL, O_NONBLOCK));
    int ep = ep_create();
    ep_add(ep, c, EPOLLOUT | EPOLLET);
    struct epoll_event ev;
    CHECK_EQ(ep_wait1(ep, &ev, 1000), 1);
    CHECK_EQ(ev.events, EPOLLOUT);
    /* Fill the connection until the send buffer refuses, as a server
       writing a response does; then the peer takes it all, with no
       epoll_wait on our side in between. */
    static char buf[65536];
    size_t sent = 0;
    for (;;) {
        ssize_t n = send(c, buf, sizeof buf, 0);
        if (n < 0) {
            CHECK_EQ(errno, EAGAIN);
            break;
        }
        sent += (size_t)n;
        if (sent > (64u << 20)) FAIL("64 MiB sent without EAGAIN");
    }
    for (size_t got = 0; got < sent;) {
        size_t k = sent - got < sizeof buf ? sent - got : sizeof buf;
        ps_read_exact(s, buf, k);
        got += k;
    }
    CHECK_EQ(ep_wait1(ep, &ev, 3000), 1);
    CHECK(ev.events & EPOLLOUT);
}

TEST(epoll_edge_connect_completion, "edge-triggered EPOLLOUT signals a non-blocking connect's completion", "epoll(7), connect(2)") {
    int fd = nonblocking_connect(ps_peer4(), PORT_ECHO);
    int ep = ep_create();
    ep_add(ep, fd, EPOLLIN | EPOLLOUT | EPOLLET);
    struct epoll_event ev;
    CHECK_EQ(ep_wait1(ep, &ev, 3000), 1);
    CHECK_EQ(ev.events, EPOLLOUT);
    CHECK_EQ(so_error(fd), 0);
    CHECK_EQ(ep_wait1(ep, &ev, 0), 0);
}

TEST(epoll_oneshot_rearm, "EPOLLONESHOT disables the fd after one event; EPOLL_CTL_MOD re-arms it", "epoll_ctl(2) EPOLLONESHOT") {
    int fd = echo4();
    int ep = ep_create();
    ep_add(ep, fd, EPOLLIN | EPOLLONESHOT);
    ps_write_all(fd, "1", 1);
    struct epoll_event ev;
    CHECK_EQ(ep_wait1(ep, &ev, 3000), 1);
    CHECK_EQ(ev.events, EPOLLIN);
    CHECK_EQ(ep_wait1(ep, &ev, 0), 0);
    ps_write_all(fd, "2", 1);
    wait_bytes(fd, 2);
    CHECK_EQ(ep_wait1(ep, &ev, 50), 0);
    struct epoll_event mod = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = 77};
    CHECK_OK(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &mod));
    CHECK_EQ(ep_wait1(ep, &ev, 0), 1);
    CHECK_EQ(ev.data.u64, 77);
    CHECK_EQ(ep_wait1(ep, &ev, 0), 0);
}

TEST(epoll_oneshot_still_registered, "a disarmed EPOLLONESHOT fd stays registered: ADD again fails with EEXIST", "epoll_ctl(2) EPOLLONESHOT") {
    int fd = echo4();
    int ep = ep_create();
    ep_add(ep, fd, EPOLLOUT | EPOLLONESHOT);
    struct epoll_event ev = {.events = EPOLLOUT};
    CHECK_EQ(ep_wait1(ep, &ev, 1000), 1);
    CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), EEXIST);
    CHECK_OK(epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL));
}

TEST(epoll_rdhup, "EPOLLRDHUP is reported with EPOLLIN when the peer shuts down its writing side", "epoll_ctl(2) EPOLLRDHUP") {
    int c, s;
    tcp_pair(&c, &s);
    int ep = ep_create();
    ep_add(ep, c, EPOLLIN | EPOLLRDHUP);
    struct epoll_event ev;
    CHECK_EQ(ep_wait1(ep, &ev, 0), 0);
    CHECK_OK(shutdown(s, SHUT_WR));
    CHECK_EQ(ep_wait1(ep, &ev, 3000), 1);
    CHECK_EQ(ev.events, EPOLLIN | EPOLLRDHUP);
}

TEST(epoll_rdhup_not_requested, "without EPOLLRDHUP, the peer's FIN is reported as EPOLLIN only", "epoll_ctl(2)") {
    int c, s;
    tcp_pair(&c, &s);
    int ep = ep_create();
    ep_add(ep, c, EPOLLIN);
    CHECK_OK(shutdown(s, SHUT_WR));
    struct epoll_event ev;
    CHECK_EQ(ep_wait1(ep, &ev, 3000), 1);
    CHECK_EQ(ev.events, EPOLLIN);
}

TEST(epoll_err_hup_always, "EPOLLERR and EPOLLHUP are reported even when the registered mask is 0", "epoll_ctl(2) EPOLLERR, EPOLLHUP") {
    int fd = refused_socket();
    int ep = ep_create();
    ep_add(ep, fd, 0);
    struct epoll_event ev;
    CHECK_EQ(ep_wait1(ep, &ev, 1000), 1);
    CHECK_EQ(ev.events, EPOLLERR | EPOLLHUP);
}

TEST(epoll_refused_full_mask, "a refused connect reports EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLERR|EPOLLHUP in epoll", "epoll(7), connect(2)") {
    int fd = refused_socket();
    int ep = ep_create();
    ep_add(ep, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
    struct epoll_event ev;
    CHECK_EQ(ep_wait1(ep, &ev, 1000), 1);
    CHECK_EQ(ev.events, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLERR | EPOLLHUP);
}

TEST(epoll_listen_pending, "a listening socket in epoll reports EPOLLIN when the peer connects back (CALLBACK)", "epoll(7), accept(2)") {
    int l = ps_tcp_listen4(ps_local4(), 0, 4);
    int ep = ep_create();
    ep_add(ep, l, EPOLLIN | EPOLLOUT);
    struct epoll_event ev;
    CHECK_EQ(ep_wait1(ep, &ev, 0), 0);
    int ctl = ps_callback(0, ps_local_port(l), 1);
    CHECK_EQ(ep_wait1(ep, &ev, 3000), 1);
    CHECK_EQ(ev.events, EPOLLIN);
    int s = CHECK_OK(accept(l, NULL, NULL));
    CHECK_EQ(ep_wait1(ep, &ev, 0), 0);
    close(s);
    close(ctl);
}

TEST(epoll_ctl_eexist, "EPOLL_CTL_ADD of an fd already in the set fails with EEXIST", "epoll_ctl(2) EEXIST") {
    int fd = echo4();
    int ep = ep_create();
    ep_add(ep, fd, EPOLLIN);
    struct epoll_event ev = {.events = EPOLLIN};
    CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), EEXIST);
}

TEST(epoll_ctl_enoent, "EPOLL_CTL_MOD and EPOLL_CTL_DEL of an fd not in the set fail with ENOENT", "epoll_ctl(2) ENOENT") {
    int fd = echo4();
    int ep = ep_create();
    struct epoll_event ev = {.events = EPOLLIN};
    CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev), ENOENT);
    CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_DEL, fd, &ev), ENOENT);
}

TEST(epoll_ctl_einval, "epoll_ctl on itself, with a bad op, or on a non-epoll epfd fails with EINVAL", "epoll_ctl(2) EINVAL") {
    int fd = echo4();
    int ep = ep_create();
    struct epoll_event ev = {.events = EPOLLIN};
    CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev), EINVAL);
    CHECK_ERR(epoll_ctl(ep, 99, fd, &ev), EINVAL);
    CHECK_ERR(epoll_ctl(fd, EPOLL_CTL_ADD, fd, &ev), EINVAL);
}

TEST(epoll_ctl_ebadf_eperm, "epoll_ctl with a closed fd fails with EBADF; with a regular file, EPERM", "epoll_ctl(2) EBADF, EPERM") {
    int ep = ep_create();
    int fd = echo4();
    close(fd);
    struct epoll_event ev = {.events = EPOLLIN};
    CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), EBADF);
    char path[] = "/tmp/ps-rd-XXXXXX";
    int f = CHECK_OK(mkstemp(path));
    unlink(path);
    CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, f, &ev), EPERM);
}

TEST(epoll_wait_einval, "epoll_wait with maxevents 0 fails with EINVAL", "epoll_wait(2) EINVAL") {
    int ep = ep_create();
    struct epoll_event ev;
    CHECK_ERR(epoll_wait(ep, &ev, 0, 0), EINVAL);
    volatile int neg = -1;
    CHECK_ERR(epoll_wait(ep, &ev, neg, 0), EINVAL);
}

TEST(epoll_wait_timeout, "epoll_wait with 100 ms and no events returns 0 after about 100 ms", "epoll_wait(2)") {
    int fd = echo4();
    int ep = ep_create();
    ep_add(ep, fd, EPOLLIN);
    long t0 = ps_now_ms();
    CHECK_EQ(ep_wait1(ep, NULL, 100), 0);
    long dt = ps_now_ms() - t0;
    if (dt < 95 || dt > 1000) FAIL("epoll_wait took %ld ms", dt);
}

TEST(epoll_mod_changes_mask, "EPOLL_CTL_MOD replaces the mask and the user data", "epoll_ctl(2) EPOLL_CTL_MOD") {
    int fd = echo4();
    int ep = ep_create();
    ep_add(ep, fd, EPOLLOUT);
    struct epoll_event ev;
    CHECK_EQ(ep_wait1(ep, &ev, 0), 1);
    CHECK_EQ(ev.events, EPOLLOUT);
    struct epoll_event mod = {.events = EPOLLIN, .data.u64 = 0x1122334455667788ULL};
    CHECK_OK(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &mod));
    CHECK_EQ(ep_wait1(ep, &ev, 0), 0);
    ps_write_all(fd, "m", 1);
    CHECK_EQ(ep_wait1(ep, &ev, 3000), 1);
    CHECK_EQ(ev.events, EPOLLIN);
    CHECK(ev.data.u64 == 0x1122334455667788ULL);
}

TEST(epoll_del_stops_events, "after EPOLL_CTL_DEL the fd reports nothing", "epoll_ctl(2) EPOLL_CTL_DEL") {
    int fd = echo4();
    int ep = ep_create();
    ep_add(ep, fd, EPOLLIN | EPOLLOUT);
    CHECK_EQ(ep_wait1(ep, NULL, 0), 1);
    CHECK_OK(epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL));
    ps_write_all(fd, "d", 1);
    wait_bytes(fd, 1);
    CHECK_EQ(ep_wait1(ep, NULL, 0), 0);
}

TEST(epoll_close_removes, "closing the only fd of a socket removes it from the epoll set", "epoll(7) Q6") {
    int fd = echo4();
    ps_write_all(fd, "c", 1);
    wait_bytes(fd, 1);
    int ep = ep_create();
    ep_add(ep, fd, EPOLLIN | EPOLLOUT);
    CHECK_EQ(ep_wait1(ep, NULL, 0), 1);
    close(fd);
    CHECK_EQ(ep_wait1(ep, NULL, 0), 0);
}

TEST(epoll_dup_keeps_registration, "a dup'd fd keeps the socket in the set after the registered fd is closed; DEL then fails", "epoll(7) Q6") {
    int fd = echo4();
    int d = CHECK_OK(dup(fd));
    int ep = ep_create();
    struct epoll_event reg = {.events = EPOLLIN, .data.u64 = 4242};
    CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &reg));
    close(fd);
    ps_write_all(d, "k", 1);
    struct epoll_event ev;
    CHECK_EQ(ep_wait1(ep, &ev, 3000), 1);
    CHECK_EQ(ev.events, EPOLLIN);
    CHECK_EQ(ev.data.u64, 4242);
    CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL), EBADF);
    CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_DEL, d, NULL), ENOENT);
    close(d);
    CHECK_EQ(ep_wait1(ep, &ev, 0), 0);
}

TEST(epoll_dup_both_registered, "an fd and its dup can both be registered and each reports the event", "epoll(7) Q1") {
    int fd = echo4();
    int d = CHECK_OK(dup(fd));
    int ep = ep_create();
    ep_add(ep, fd, EPOLLIN);
    ep_add(ep, d, EPOLLIN);
    ps_write_all(fd, "2", 1);
    wait_bytes(fd, 1);
    struct epoll_event ev[4];
    CHECK_EQ(epoll_wait(ep, ev, 4, 1000), 2);
    CHECK(ev[0].data.fd != ev[1].data.fd);
}

TEST(epoll_exclusive_flag_rules, "EPOLLEXCLUSIVE is accepted on ADD; with MOD, or with EPOLLONESHOT, it is EINVAL", "epoll_ctl(2) EPOLLEXCLUSIVE") {
    int l = ps_tcp_listen4(ps_local4(), 0, 4);
    int l2 = ps_tcp_listen4(ps_local4(), 0, 4);
    int ep = ep_create();
    ep_add(ep, l, EPOLLIN | EPOLLEXCLUSIVE);
    struct epoll_event ev = {.events = EPOLLIN};
    CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_MOD, l, &ev), EINVAL);
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_MOD, l, &ev), EINVAL);
    ev.events = EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT;
    CHECK_ERR(epoll_ctl(ep, EPOLL_CTL_ADD, l2, &ev), EINVAL);
    CHECK_OK(epoll_ctl(ep, EPOLL_CTL_DEL, l, NULL));
}

TEST(epoll_exclusive_reports, "an EPOLLEXCLUSIVE listener still reports EPOLLIN for a pending connection", "epoll_ctl(2) EPOLLEXCLUSIVE") {
    int l = ps_tcp_listen4(ps_local4(), 0, 4);
    int ep = ep_create();
    ep_add(ep, l, EPOLLIN | EPOLLEXCLUSIVE);
    int c = ps_tcp_connect4(ps_local4(), ps_local_port(l));
    struct epoll_event ev;
    CHECK_EQ(ep_wait1(ep, &ev, 3000), 1);
    CHECK_EQ(ev.events, EPOLLIN);
    close(c);
}

struct waiter { int ep; volatile pid_t tid; volatile int woke; };

static void *waiter_main(void *arg) {
    struct waiter *w = arg;
    w->tid = (pid_t)syscall(SYS_gettid);
    struct epoll_event ev;
    int n = epoll_wait(w->ep, &ev, 1, 3000);
    if (n > 0) w->woke = 1;
    return NULL;
}

/* Two threads, each blocked in epoll_wait on its own epoll set holding the
 * same listener; one connection arrives. Returns how many woke in 200 ms. */
static int wakeups(uint32_t flags) {
    int l = ps_tcp_listen4(ps_local4(), 0, 4);
    struct waiter w[2] = {{0}, {0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        w[i].ep = ep_create();
        ep_add(w[i].ep, l, EPOLLIN | flags);
        CHECK_EQ(pthread_create(&th[i], NULL, waiter_main, &w[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        while (!w[i].tid) ps_sleep_ms(1);
        wait_sleeping(w[i].tid);
    }
    int c = ps_tcp_connect4(ps_local4(), ps_local_port(l));
    /* Wait for the first wake-up (or both), then give a second one time. */
    long end = ps_now_ms() + 3000;
    while (w[0].woke + w[1].woke < (flags ? 1 : 2) && ps_now_ms() < end) ps_sleep_ms(1);
    ps_sleep_ms(100);
    int n = w[0].woke + w[1].woke;
    close(c);
    return n;
}

TEST(epoll_exclusive_wakes_one, "with EPOLLEXCLUSIVE, one connection wakes one of two blocked epoll_wait callers", "epoll_ctl(2) EPOLLEXCLUSIVE") {
    CHECK_EQ(wakeups(EPOLLEXCLUSIVE), 1);
}

TEST(epoll_exclusive_level, "an EPOLLEXCLUSIVE member is level-triggered in its set: ready when added, reported until drained", "epoll_ctl(2) EPOLLEXCLUSIVE") {
    int l = ps_tcp_listen4(ps_local4(), 0, 4);
    int c = ps_tcp_connect4(ps_local4(), ps_local_port(l));
    struct epoll_event ev;
    /* ready before it is added: on the ready list at once */
    struct pollfd p = {.fd = l, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 3000), 1);
    int ep = ep_create();
    ep_add(ep, l, EPOLLIN | EPOLLEXCLUSIVE);
    CHECK_EQ(ep_wait1(ep, &ev, 1000), 1);
    CHECK_EQ(ev.data.fd, l);
    CHECK_EQ(ep_wait1(ep, &ev, 0), 1);
    int a = CHECK_OK(accept(l, NULL, NULL));
    CHECK_EQ(ep_wait1(ep, &ev, 100), 0);
    /* a new connection is an event for it again */
    int c2 = ps_tcp_connect4(ps_local4(), ps_local_port(l));
    CHECK_EQ(ep_wait1(ep, &ev, 3000), 1);
    CHECK_EQ(ev.data.fd, l);
    close(a);
    close(c);
    close(c2);
}

TEST(epoll_nonexclusive_wakes_all, "without EPOLLEXCLUSIVE, one connection wakes both blocked epoll_wait callers", "epoll(7)") {
    CHECK_EQ(wakeups(0), 2);
}

TEST(epoll_fd_pollable, "an epoll fd is itself readable in poll when a member socket is ready", "epoll(7)") {
    int fd = echo4();
    int ep = ep_create();
    ep_add(ep, fd, EPOLLIN);
    CHECK_EQ(poll1(ep, POLLIN, 0), 0);
    ps_write_all(fd, "e", 1);
    CHECK_EQ(poll1(ep, POLLIN, 3000), POLLIN);
}

TEST(epoll_pwait_timeout, "epoll_pwait with a 50 ms timeout returns 0", "epoll_wait(2) epoll_pwait") {
    int fd = echo4();
    int ep = ep_create();
    ep_add(ep, fd, EPOLLIN);
    sigset_t set;
    sigemptyset(&set);
    struct epoll_event ev;
    long t0 = ps_now_ms();
    CHECK_EQ(epoll_pwait(ep, &ev, 1, 50, &set), 0);
    CHECK(ps_now_ms() - t0 >= 45);
}

/* ---- mixed sets: sockets and pipes ---- */

TEST(mixed_poll_pipe_ready, "poll over a socket and a pipe reports only the pipe when only it is ready", "poll(2)") {
    int fd = echo4();
    int p[2];
    CHECK_OK(pipe(p));
    CHECK_EQ(write(p[1], "x", 1), 1);
    struct pollfd s[2] = {{.fd = fd, .events = POLLIN}, {.fd = p[0], .events = POLLIN}};
    CHECK_EQ(poll(s, 2, 1000), 1);
    CHECK_EQ(s[0].revents, 0);
    CHECK_EQ(s[1].revents, POLLIN);
}

TEST(mixed_poll_socket_wakes, "poll blocked on a pipe and a socket wakes for the socket's data", "poll(2)") {
    int fd = echo4();
    int p[2];
    CHECK_OK(pipe(p));
    pid_t pid = fork();
    if (pid == 0) { ps_sleep_ms(50); ps_write_all(fd, "s", 1); _exit(0); }
    struct pollfd s[2] = {{.fd = p[0], .events = POLLIN}, {.fd = fd, .events = POLLIN}};
    CHECK_EQ(poll(s, 2, 3000), 1);
    CHECK_EQ(s[0].revents, 0);
    CHECK_EQ(s[1].revents, POLLIN);
    waitpid(pid, NULL, 0);
}

TEST(mixed_poll_pipe_wakes, "poll blocked on a socket and a pipe wakes for the pipe", "poll(2)") {
    int fd = echo4();
    int p[2];
    CHECK_OK(pipe(p));
    pid_t pid = fork();
    if (pid == 0) { ps_sleep_ms(50); (void)!write(p[1], "p", 1); _exit(0); }
    struct pollfd s[2] = {{.fd = fd, .events = POLLIN}, {.fd = p[0], .events = POLLIN}};
    CHECK_EQ(poll(s, 2, 3000), 1);
    CHECK_EQ(s[0].revents, 0);
    CHECK_EQ(s[1].revents, POLLIN);
    waitpid(pid, NULL, 0);
}

TEST(mixed_poll_both_ready, "poll over a ready pipe and a ready socket counts both", "poll(2)") {
    int fd = echo4();
    int p[2];
    CHECK_OK(pipe(p));
    ps_write_all(fd, "b", 1);
    wait_bytes(fd, 1);
    CHECK_EQ(write(p[1], "b", 1), 1);
    struct pollfd s[3] = {{.fd = fd, .events = POLLIN}, {.fd = p[0], .events = POLLIN}, {.fd = p[1], .events = POLLOUT}};
    CHECK_EQ(poll(s, 3, 1000), 3);
    CHECK_EQ(s[0].revents, POLLIN);
    CHECK_EQ(s[1].revents, POLLIN);
    CHECK_EQ(s[2].revents, POLLOUT);
}

TEST(mixed_epoll_pipe_socket, "one epoll set reports pipe and socket events with their own user data", "epoll(7)") {
    int fd = echo4();
    int p[2];
    CHECK_OK(pipe(p));
    int ep = ep_create();
    ep_add(ep, fd, EPOLLIN);
    ep_add(ep, p[0], EPOLLIN);
    CHECK_EQ(ep_wait1(ep, NULL, 0), 0);
    CHECK_EQ(write(p[1], "x", 1), 1);
    struct epoll_event ev;
    CHECK_EQ(ep_wait1(ep, &ev, 1000), 1);
    CHECK_EQ(ev.data.fd, p[0]);
    char b;
    CHECK_EQ(read(p[0], &b, 1), 1);
    ps_write_all(fd, "y", 1);
    CHECK_EQ(ep_wait1(ep, &ev, 3000), 1);
    CHECK_EQ(ev.data.fd, fd);
    CHECK_EQ(ev.events, EPOLLIN);
}

TEST(mixed_epoll_blocked_wakes, "epoll_wait blocked on a pipe and a socket wakes for the socket's data", "epoll(7)") {
    int fd = echo4();
    int p[2];
    CHECK_OK(pipe(p));
    int ep = ep_create();
    ep_add(ep, p[0], EPOLLIN);
    ep_add(ep, fd, EPOLLIN);
    pid_t pid = fork();
    if (pid == 0) { ps_sleep_ms(50); ps_write_all(fd, "w", 1); _exit(0); }
    struct epoll_event ev;
    CHECK_EQ(ep_wait1(ep, &ev, 3000), 1);
    CHECK_EQ(ev.data.fd, fd);
    waitpid(pid, NULL, 0);
}

TEST(mixed_select_pipe_socket, "select over a pipe and a socket marks exactly the ready ones", "select(2)") {
    int fd = echo4();
    int p[2];
    CHECK_OK(pipe(p));
    CHECK_EQ(write(p[1], "x", 1), 1);
    fd_set r;
    FD_ZERO(&r);
    FD_SET(fd, &r);
    FD_SET(p[0], &r);
    int nfds = (fd > p[0] ? fd : p[0]) + 1;
    struct timeval tv = {1, 0};
    CHECK_EQ(select(nfds, &r, NULL, NULL, &tv), 1);
    CHECK(FD_ISSET(p[0], &r) && !FD_ISSET(fd, &r));
    ps_write_all(fd, "y", 1);
    wait_bytes(fd, 1);
    FD_ZERO(&r);
    FD_SET(fd, &r);
    FD_SET(p[0], &r);
    tv = (struct timeval){1, 0};
    CHECK_EQ(select(nfds, &r, NULL, NULL, &tv), 2);
}

TEST(mixed_poll_nval_among_ready, "a closed fd among ready ones gets POLLNVAL and is counted with them", "poll(2) POLLNVAL") {
    int fd = echo4();
    int p[2];
    CHECK_OK(pipe(p));
    int dead = CHECK_OK(dup(fd));
    close(dead);
    struct pollfd s[3] = {{.fd = fd, .events = POLLOUT}, {.fd = dead, .events = POLLIN}, {.fd = p[1], .events = POLLOUT}};
    CHECK_EQ(poll(s, 3, 0), 3);
    CHECK_EQ(s[0].revents, POLLOUT);
    CHECK_EQ(s[1].revents, POLLNVAL);
    CHECK_EQ(s[2].revents, POLLOUT);
}
