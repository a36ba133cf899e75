/* data: moving bytes through connected sockets. send/recv flags, EPIPE and
 * SIGPIPE, resets, scatter-gather, sendmsg/recvmsg with control messages,
 * sendmmsg/recvmmsg, sendfile, large transfers with integrity. */
#include "../harness.h"

#include <sys/mman.h>
#include <sys/sendfile.h>
#include <limits.h>

/* ---- helpers (static: harness.h is shared) ---- */

/* A connected TCP pair on this side's own address: *c connected, *s accepted. */
static void tcp_pair(int *c, int *s) {
    int l = ps_tcp_listen4(ps_local4(), 0, 4);
    *c = ps_tcp_connect4(ps_local4(), ps_local_port(l));
    *s = CHECK_OK(accept(l, NULL, NULL));
    close(l);
}

static int echo4(void) { return ps_tcp_connect4(ps_peer4(), PORT_ECHO); }

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

static short poll1(int fd, short events, int ms) {
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, ms);
    if (n < 0) FAIL("poll: %s", strerrorname_np(errno));
    return n ? p.revents : 0;
}

static void wait_readable(int fd) {
    if (!(poll1(fd, POLLIN, 3000) & POLLIN)) FAIL("fd %d not readable within 3 s", fd);
}

/* Wait until at least n bytes are queued (peeking, so nothing is consumed). */
static void wait_bytes(int fd, size_t n) {
    char *tmp = malloc(n);
    long end = ps_now_ms() + 3000;
    for (;;) {
        ssize_t r = recv(fd, tmp, n, MSG_PEEK | MSG_DONTWAIT);
        if (r >= 0 && (size_t)r >= n) break;
        if (r < 0 && errno != EAGAIN) FAIL("peek: %s", strerrorname_np(errno));
        if (r == 0) FAIL("EOF while waiting for %zu bytes", n);
        if (ps_now_ms() > end) FAIL("only %zd of %zu bytes within 3 s", r, n);
        poll1(fd, POLLIN, 10);
        if (r >= 0) ps_sleep_ms(1);
    }
    free(tmp);
}

static volatile sig_atomic_t sigpipes;
static void on_sigpipe(int s) { (void)s; sigpipes++; }
static void catch_sigpipe(void) {
    struct sigaction sa = {.sa_handler = on_sigpipe};
    sigemptyset(&sa.sa_mask);
    CHECK_OK(sigaction(SIGPIPE, &sa, NULL));
}

/* Wait until the kernel has taken the peer's RST: POLLERR and POLLHUP show. */
static void wait_err(int fd) {
    long end = ps_now_ms() + 3000;
    while ((poll1(fd, 0, 50) & (POLLERR | POLLHUP)) != (POLLERR | POLLHUP))
        if (ps_now_ms() > end) FAIL("no POLLERR within 3 s");
}

/* A connection to the RESET service after its RST has arrived. */
static int reset_conn(void) {
    int fd = ps_tcp_connect4(ps_peer4(), PORT_RESET);
    wait_err(fd);
    return fd;
}

/* Connected to SOURCE and read to EOF (the peer has closed). */
static int drained_source(void) {
    int fd = ps_tcp_connect4(ps_peer4(), PORT_SOURCE);
    static char buf[65536];
    size_t total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) total += (size_t)n;
    CHECK_EQ(n, 0);
    CHECK_EQ(total, SOURCE_BYTES);
    return fd;
}

static int tmpfile_with(size_t len, unsigned seed, unsigned char **content) {
    char path[] = "/tmp/ps-data-XXXXXX";
    int fd = CHECK_OK(mkstemp(path));
    unlink(path);
    unsigned char *p = malloc(len);
    for (size_t i = 0; i < len; i++) p[i] = (unsigned char)((i * 131u + seed) ^ (i >> 9));
    ps_write_all(fd, p, len);
    CHECK_OK(lseek(fd, 0, SEEK_SET));
    if (content) *content = p; else free(p);
    return fd;
}

/* Read "bytes=N\n" from COUNT after shutting down our sending side. */
static long count_reply(int fd) {
    CHECK_OK(shutdown(fd, SHUT_WR));
    char line[64] = "";
    size_t got = 0;
    ssize_t n;
    while (got < sizeof line - 1 && (n = read(fd, line + got, sizeof line - 1 - got)) > 0) got += (size_t)n;
    line[got] = 0;
    long v = -1;
    if (sscanf(line, "bytes=%ld\n", &v) != 1) FAIL("bad COUNT reply '%s'", line);
    return v;
}

static struct cmsghdr *find_cmsg(struct msghdr *m, int level, int type) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c))
        if (c->cmsg_level == level && c->cmsg_type == type) return c;
    return NULL;
}

/* ---- MSG_PEEK ---- */

TEST(peek_leaves_data, "recv(MSG_PEEK) returns queued data and leaves it for the next recv", "recv(2) MSG_PEEK") {
    int fd = echo4();
    ps_write_all(fd, "hello", 5);
    wait_bytes(fd, 5);
    char b[16] = "";
    CHECK_EQ(recv(fd, b, sizeof b, MSG_PEEK), 5);
    CHECK(memcmp(b, "hello", 5) == 0);
    memset(b, 0, sizeof b);
    CHECK_EQ(recv(fd, b, sizeof b, MSG_PEEK), 5);
    CHECK(memcmp(b, "hello", 5) == 0);
    memset(b, 0, sizeof b);
    CHECK_EQ(recv(fd, b, sizeof b, 0), 5);
    CHECK(memcmp(b, "hello", 5) == 0);
    CHECK_ERR(recv(fd, b, sizeof b, MSG_DONTWAIT), EAGAIN);
}

TEST(peek_partial_then_full, "a short MSG_PEEK returns a prefix; the full recv still gets every byte", "recv(2) MSG_PEEK") {
    int c, s;
    tcp_pair(&c, &s);
    ps_write_all(s, "abcdefgh", 8);
    wait_bytes(c, 8);
    char b[16] = "";
    CHECK_EQ(recv(c, b, 3, MSG_PEEK), 3);
    CHECK(memcmp(b, "abc", 3) == 0);
    CHECK_EQ(recv(c, b, sizeof b, 0), 8);
    CHECK(memcmp(b, "abcdefgh", 8) == 0);
}

TEST(peek_dontwait_empty, "MSG_PEEK|MSG_DONTWAIT on an empty connected socket fails with EAGAIN", "recv(2) MSG_DONTWAIT") {
    int c, s;
    tcp_pair(&c, &s);
    char b[4];
    CHECK_ERR(recv(c, b, sizeof b, MSG_PEEK | MSG_DONTWAIT), EAGAIN);
}

TEST(peek_blocks_until_data, "a blocking MSG_PEEK waits for data like a plain recv", "recv(2) MSG_PEEK") {
    int fd = echo4();
    long t0 = ps_now_ms();
    pid_t pid = fork();
    if (pid == 0) { ps_sleep_ms(100); ps_write_all(fd, "z", 1); _exit(0); }
    char b[4];
    CHECK_EQ(recv(fd, b, sizeof b, MSG_PEEK), 1);
    CHECK(ps_now_ms() - t0 >= 90);
    CHECK_EQ(b[0], 'z');
    CHECK_EQ(recv(fd, b, sizeof b, 0), 1);
    waitpid(pid, NULL, 0);
}

TEST(peek_eof_returns_zero, "MSG_PEEK at orderly EOF returns 0", "recv(2) RETURN VALUE") {
    int c, s;
    tcp_pair(&c, &s);
    close(s);
    wait_readable(c);
    char b[4];
    CHECK_EQ(recv(c, b, sizeof b, MSG_PEEK), 0);
    CHECK_EQ(recv(c, b, sizeof b, 0), 0);
}

/* ---- MSG_WAITALL ---- */

TEST(waitall_source_full, "MSG_WAITALL returns the whole 1 MiB from SOURCE in one call, in order", "recv(2) MSG_WAITALL") {
    int fd = ps_tcp_connect4(ps_peer4(), PORT_SOURCE);
    unsigned char *b = malloc(SOURCE_BYTES);
    CHECK_EQ(recv(fd, b, SOURCE_BYTES, MSG_WAITALL), SOURCE_BYTES);
    for (size_t i = 0; i < SOURCE_BYTES; i++)
        if (b[i] != i % 251) FAIL("byte %zu is %u, want %zu", i, b[i], i % 251);
}

TEST(waitall_short_at_eof, "MSG_WAITALL returns fewer bytes when EOF comes first", "recv(2) MSG_WAITALL") {
    int fd = ps_tcp_connect4(ps_peer4(), PORT_SOURCE);
    size_t want = SOURCE_BYTES + 4096;
    char *b = malloc(want);
    CHECK_EQ(recv(fd, b, want, MSG_WAITALL), SOURCE_BYTES);
    CHECK_EQ(recv(fd, b, want, MSG_WAITALL), 0);
}

TEST(waitall_waits_for_second_write, "MSG_WAITALL keeps waiting after a first partial segment", "recv(2) MSG_WAITALL") {
    int c, s;
    tcp_pair(&c, &s);
    pid_t pid = fork();
    if (pid == 0) {
        ps_write_all(s, "0123456789", 10);
        ps_sleep_ms(150);
        ps_write_all(s, "abcdefghij", 10);
        _exit(0);
    }
    long t0 = ps_now_ms();
    char b[32] = "";
    CHECK_EQ(recv(c, b, 20, MSG_WAITALL), 20);
    CHECK(ps_now_ms() - t0 >= 140);
    CHECK(memcmp(b, "0123456789abcdefghij", 20) == 0);
    waitpid(pid, NULL, 0);
}

TEST(no_waitall_returns_partial, "without MSG_WAITALL recv returns what is there rather than waiting", "recv(2)") {
    int c, s;
    tcp_pair(&c, &s);
    ps_write_all(s, "0123456789", 10);
    wait_bytes(c, 10);
    char b[32];
    long t0 = ps_now_ms();
    CHECK_EQ(recv(c, b, sizeof b, 0), 10);
    CHECK(ps_now_ms() - t0 < 1000);
}

/* ---- MSG_DONTWAIT ---- */

TEST(dontwait_empty_eagain, "recv(MSG_DONTWAIT) on an empty blocking socket fails with EAGAIN at once", "recv(2) MSG_DONTWAIT") {
    int fd = echo4();
    char b[8];
    long t0 = ps_now_ms();
    CHECK_ERR(recv(fd, b, sizeof b, MSG_DONTWAIT), EAGAIN);
    CHECK_EQ(EAGAIN, EWOULDBLOCK);
    CHECK(ps_now_ms() - t0 < 1000);
}

TEST(dontwait_leaves_fd_blocking, "MSG_DONTWAIT is per call: the file stays without O_NONBLOCK", "recv(2) MSG_DONTWAIT") {
    int fd = echo4();
    char b[8];
    CHECK_ERR(recv(fd, b, sizeof b, MSG_DONTWAIT), EAGAIN);
    CHECK_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
}

TEST(dontwait_with_data, "recv(MSG_DONTWAIT) returns queued data", "recv(2) MSG_DONTWAIT") {
    int fd = echo4();
    ps_write_all(fd, "abc", 3);
    wait_bytes(fd, 3);
    char b[8];
    CHECK_EQ(recv(fd, b, sizeof b, MSG_DONTWAIT), 3);
    CHECK(memcmp(b, "abc", 3) == 0);
}

TEST(dontwait_at_eof_zero, "recv(MSG_DONTWAIT) after the peer's FIN returns 0, not EAGAIN", "recv(2) RETURN VALUE") {
    int fd = drained_source();
    char b[8];
    CHECK_EQ(recv(fd, b, sizeof b, MSG_DONTWAIT), 0);
}

TEST(send_dontwait_fills_then_eagain, "send(MSG_DONTWAIT) to a peer that never reads ends in EAGAIN after a positive total", "send(2) EAGAIN") {
    int fd = ps_tcp_connect4(ps_peer4(), PORT_HOLD);
    static char buf[65536];
    long total = 0;
    for (;;) {
        ssize_t n = send(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0) { CHECK_EQ(errno, EAGAIN); break; }
        CHECK(n > 0);
        total += n;
        if (total > 256L << 20) FAIL("256 MiB accepted without EAGAIN");
    }
    CHECK(total > 0);
}

/* ---- MSG_TRUNC ---- */

TEST(trunc_tcp_discards, "TCP recv(MSG_TRUNC) discards the bytes instead of copying them and returns their count", "tcp(7) MSG_TRUNC") {
    int c, s;
    tcp_pair(&c, &s);
    ps_write_all(s, "abcdefgh", 8);
    wait_bytes(c, 8);
    char b[8] = "xxxxxxx";
    CHECK_EQ(recv(c, b, 4, MSG_TRUNC), 4);
    CHECK(memcmp(b, "xxxx", 4) == 0);
    CHECK_EQ(recv(c, b, sizeof b, 0), 4);
    CHECK(memcmp(b, "efgh", 4) == 0);
}

TEST(trunc_tcp_null_buffer, "TCP recv(NULL, n, MSG_TRUNC) is valid and drops n bytes", "tcp(7) MSG_TRUNC") {
    int c, s;
    tcp_pair(&c, &s);
    ps_write_all(s, "0123456789", 10);
    wait_bytes(c, 10);
    CHECK_EQ(recv(c, NULL, 6, MSG_TRUNC), 6);
    char b[8];
    CHECK_EQ(recv(c, b, sizeof b, 0), 4);
    CHECK(memcmp(b, "6789", 4) == 0);
}

TEST(trunc_udp_real_length, "UDP recv(MSG_TRUNC) returns the datagram's real length even with a shorter buffer", "udp(7) MSG_TRUNC") {
    int fd = udp4_bound();
    udp_connect(fd, ps_peer4(), PORT_ECHO);
    CHECK_EQ(send(fd, "0123456789", 10, 0), 10);
    wait_readable(fd);
    char b[4];
    CHECK_EQ(recv(fd, b, sizeof b, MSG_TRUNC), 10);
    CHECK(memcmp(b, "0123", 4) == 0);
}

/* ---- MSG_NOSIGNAL, EPIPE, SIGPIPE ---- */

TEST(nosignal_epipe_after_shut_wr, "send(MSG_NOSIGNAL) after our own SHUT_WR fails with EPIPE and raises no SIGPIPE", "send(2) MSG_NOSIGNAL, EPIPE") {
    catch_sigpipe();
    int fd = echo4();
    CHECK_OK(shutdown(fd, SHUT_WR));
    CHECK_ERR(send(fd, "x", 1, MSG_NOSIGNAL), EPIPE);
    CHECK_EQ(sigpipes, 0);
}

TEST(sigpipe_on_send_after_shut_wr, "send() after our own SHUT_WR fails with EPIPE and raises SIGPIPE", "send(2) EPIPE") {
    catch_sigpipe();
    int fd = echo4();
    CHECK_OK(shutdown(fd, SHUT_WR));
    CHECK_ERR(send(fd, "x", 1, 0), EPIPE);
    CHECK_EQ(sigpipes, 1);
    CHECK_ERR(write(fd, "x", 1), EPIPE);
    CHECK_EQ(sigpipes, 2);
}

TEST(sigpipe_default_kills, "with SIGPIPE at its default action, write() on a shut-down socket kills the process", "signal(7), send(2) EPIPE") {
    int fd = echo4();
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        shutdown(fd, SHUT_WR);
        (void)!write(fd, "x", 1);
        _exit(0);
    }
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFSIGNALED(st));
    CHECK_EQ(WTERMSIG(st), SIGPIPE);
}

TEST(sigpipe_blocked_stays_pending, "a blocked SIGPIPE still gets raised (pending) and send returns EPIPE", "signal(7), send(2)") {
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    CHECK_OK(sigprocmask(SIG_BLOCK, &set, NULL));
    int fd = echo4();
    CHECK_OK(shutdown(fd, SHUT_WR));
    CHECK_ERR(send(fd, "x", 1, 0), EPIPE);
    CHECK_OK(sigpending(&pend));
    CHECK_EQ(sigismember(&pend, SIGPIPE), 1);
}

TEST(sigpipe_ignored_epipe, "with SIGPIPE ignored, write() to a shut-down socket just fails with EPIPE", "signal(7), send(2)") {
    signal(SIGPIPE, SIG_IGN);
    int fd = echo4();
    CHECK_OK(shutdown(fd, SHUT_WR));
    CHECK_ERR(write(fd, "x", 1), EPIPE);
}

TEST(send_unconnected_tcp_epipe, "send() on a never-connected TCP socket fails with EPIPE (Linux, not ENOTCONN)", "tcp(7), send(2)") {
    catch_sigpipe();
    int fd = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
    CHECK_ERR(send(fd, "x", 1, MSG_NOSIGNAL), EPIPE);
    CHECK_EQ(sigpipes, 0);
    CHECK_ERR(send(fd, "x", 1, 0), EPIPE);
    CHECK_EQ(sigpipes, 1);
}

TEST(recv_unconnected_tcp_enotconn, "recv() on a never-connected TCP socket fails with ENOTCONN", "recv(2) ENOTCONN") {
    int fd = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
    char b[4];
    CHECK_ERR(recv(fd, b, sizeof b, 0), ENOTCONN);
    CHECK_ERR(read(fd, b, sizeof b), ENOTCONN);
}

TEST(write_after_peer_close_epipe, "after the peer closed, one write succeeds, the peer's RST follows, the next write gets EPIPE + SIGPIPE", "tcp(7), send(2) EPIPE") {
    catch_sigpipe();
    int fd = drained_source();
    CHECK_EQ(write(fd, "x", 1), 1);
    wait_err(fd);
    CHECK_ERR(write(fd, "y", 1), EPIPE);
    CHECK_EQ(sigpipes, 1);
    CHECK_ERR(write(fd, "y", 1), EPIPE);
    CHECK_EQ(sigpipes, 2);
}

TEST(reset_recv_econnreset, "recv() after the peer's RST fails with ECONNRESET once, then returns 0", "tcp(7) ERRORS, recv(2)") {
    int fd = reset_conn();
    char b[8];
    CHECK_ERR(recv(fd, b, sizeof b, 0), ECONNRESET);
    CHECK_EQ(recv(fd, b, sizeof b, 0), 0);
}

TEST(reset_send_econnreset_then_epipe, "send() after an RST fails first with ECONNRESET (no SIGPIPE), then with EPIPE and SIGPIPE", "tcp(7), send(2)") {
    catch_sigpipe();
    int fd = reset_conn();
    CHECK_ERR(send(fd, "x", 1, 0), ECONNRESET);
    CHECK_EQ(sigpipes, 0);
    CHECK_ERR(send(fd, "x", 1, 0), EPIPE);
    CHECK_EQ(sigpipes, 1);
}

TEST(reset_so_error, "after an RST, SO_ERROR reports ECONNRESET once and then 0", "socket(7) SO_ERROR") {
    int fd = reset_conn();
    int e = -1;
    socklen_t l = sizeof e;
    CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l));
    CHECK_EQ(e, ECONNRESET);
    CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l));
    CHECK_EQ(e, 0);
    char b[4];
    CHECK_EQ(recv(fd, b, sizeof b, 0), 0);
}

TEST(reset_keeps_unread, "data queued before an RST is still delivered; ECONNRESET comes after it, then 0", "tcp(7), recv(2)") {
    int c, s;
    tcp_pair(&c, &s);
    ps_write_all(s, "kept", 4);
    wait_bytes(c, 4);
    struct linger lg = {1, 0};
    CHECK_OK(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    close(s);
    wait_err(c);
    char b[8];
    CHECK_EQ(recv(c, b, sizeof b, 0), 4);
    CHECK(memcmp(b, "kept", 4) == 0);
    CHECK_ERR(recv(c, b, sizeof b, 0), ECONNRESET);
    CHECK_EQ(recv(c, b, sizeof b, 0), 0);
}

/* ---- MSG_MORE ---- */

TEST(msg_more_udp_one_datagram, "UDP sends with MSG_MORE are joined into one datagram by the next send without it", "udp(7) MSG_MORE") {
    int fd = udp4_bound();
    udp_connect(fd, ps_peer4(), PORT_ECHO);
    CHECK_EQ(send(fd, "ab", 2, MSG_MORE), 2);
    CHECK_EQ(send(fd, "cd", 2, MSG_MORE), 2);
    CHECK_EQ(send(fd, "ef", 2, 0), 2);
    wait_readable(fd);
    char b[16];
    CHECK_EQ(recv(fd, b, sizeof b, 0), 6);
    CHECK(memcmp(b, "abcdef", 6) == 0);
    CHECK_ERR(recv(fd, b, sizeof b, MSG_DONTWAIT), EAGAIN);
}

TEST(msg_more_tcp_joined, "TCP data sent with MSG_MORE then without it arrives as one stream, in order", "tcp(7) MSG_MORE, send(2)") {
    int fd = echo4();
    CHECK_EQ(send(fd, "abc", 3, MSG_MORE), 3);
    CHECK_EQ(send(fd, "def", 3, 0), 3);
    char b[8];
    ps_read_exact(fd, b, 6);
    CHECK(memcmp(b, "abcdef", 6) == 0);
}

TEST(msg_more_tcp_holds_small_segment, "a lone small TCP send with MSG_MORE is held back (not sent within 50 ms)", "tcp(7) TCP_CORK, send(2) MSG_MORE") {
    int c, s;
    tcp_pair(&c, &s);
    CHECK_EQ(send(c, "abc", 3, MSG_MORE), 3);
    /* Linux lets it out when the probe timer fires (>= 200 ms). */
    CHECK_EQ(poll1(s, POLLIN, 50), 0);
    CHECK_EQ(send(c, "d", 1, 0), 1);
    wait_bytes(s, 4);
    char b[8];
    CHECK_EQ(recv(s, b, sizeof b, 0), 4);
    CHECK(memcmp(b, "abcd", 4) == 0);
}

/* ---- EOF, zero length, read/write ---- */

TEST(recv_zero_on_eof, "recv returns 0 at orderly EOF, and again on every later call", "recv(2) RETURN VALUE") {
    int fd = drained_source();
    char b[8];
    CHECK_EQ(recv(fd, b, sizeof b, 0), 0);
    CHECK_EQ(recv(fd, b, sizeof b, 0), 0);
    CHECK_EQ(read(fd, b, sizeof b), 0);
}

TEST(zero_length_send_tcp, "a zero-length send on TCP returns 0 and puts nothing on the stream", "send(2)") {
    int c, s;
    tcp_pair(&c, &s);
    CHECK_EQ(send(c, "", 0, 0), 0);
    CHECK_EQ(write(c, "", 0), 0);
    CHECK_EQ(poll1(s, POLLIN, 50), 0);
    CHECK_EQ(send(c, "q", 1, 0), 1);
    wait_bytes(s, 1);
    char b[4];
    CHECK_EQ(recv(s, b, sizeof b, 0), 1);
    CHECK_EQ(b[0], 'q');
}

TEST(zero_length_recv_tcp, "a zero-length TCP recv waits for data (EAGAIN with MSG_DONTWAIT), then returns 0 and consumes nothing", "recv(2)") {
    int c, s;
    tcp_pair(&c, &s);
    char b[8];
    CHECK_ERR(recv(c, b, 0, MSG_DONTWAIT), EAGAIN);
    ps_write_all(s, "abc", 3);
    wait_bytes(c, 3);
    long t0 = ps_now_ms();
    CHECK_EQ(recv(c, b, 0, 0), 0);
    CHECK(ps_now_ms() - t0 < 1000);
    CHECK_EQ(recv(c, b, sizeof b, 0), 3);
}

TEST(read_write_equal_send_recv, "read/write on a connected socket behave as recv/send with flags 0", "send(2), recv(2)") {
    int fd = echo4();
    CHECK_EQ(write(fd, "one", 3), 3);
    CHECK_EQ(send(fd, "two", 3, 0), 3);
    char b[8];
    ps_read_exact(fd, b, 3);
    CHECK(memcmp(b, "one", 3) == 0);
    CHECK_EQ(recv(fd, b, 3, MSG_WAITALL), 3);
    CHECK(memcmp(b, "two", 3) == 0);
}

TEST(sendto_addr_ignored_on_tcp, "sendto() on a connected TCP socket ignores the destination it is given", "send(2) DESCRIPTION") {
    int fd = echo4();
    struct sockaddr_in other = ps_sin("192.0.2.77", 9);
    CHECK_EQ(sendto(fd, "hi", 2, 0, (struct sockaddr *)&other, sizeof other), 2);
    char b[4];
    ps_read_exact(fd, b, 2);
    CHECK(memcmp(b, "hi", 2) == 0);
}

TEST(recvfrom_tcp_no_address, "recvfrom() on TCP fills no address: *addrlen becomes 0", "recv(2) recvfrom") {
    int fd = echo4();
    ps_write_all(fd, "x", 1);
    wait_bytes(fd, 1);
    struct sockaddr_storage ss;
    memset(&ss, 0xab, sizeof ss);
    socklen_t len = sizeof ss;
    char b[4];
    CHECK_EQ(recvfrom(fd, b, sizeof b, 0, (struct sockaddr *)&ss, &len), 1);
    CHECK_EQ(len, 0);
}

TEST(send_efault, "send() from an invalid buffer fails with EFAULT", "send(2) EFAULT") {
    int fd = echo4();
    CHECK_ERR(send(fd, (void *)8, 16, MSG_NOSIGNAL), EFAULT);
}

TEST(recv_efault_keeps_data, "TCP recv into a read-only buffer fails with EFAULT and the data stays queued", "recv(2) EFAULT, net/ipv4/tcp.c tcp_recvmsg") {
    int fd = echo4();
    ps_write_all(fd, "abc", 3);
    wait_readable(fd);
    /* a read-only page, then a hole */
    char *ro = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(ro != MAP_FAILED);
    CHECK_OK(munmap(ro + 4096, 4096));
    CHECK_ERR(recv(fd, ro, 16, 0), EFAULT);
    /* a send that runs off the end of the mapping sends nothing */
    CHECK_ERR(send(fd, ro + 4096 - 16, 32, MSG_NOSIGNAL), EFAULT);
    char b[8];
    CHECK_EQ(recv(fd, b, sizeof b, 0), 3);
    CHECK(memcmp(b, "abc", 3) == 0);
    CHECK_ERR(recv(fd, b, sizeof b, MSG_DONTWAIT), EAGAIN);
    munmap(ro, 4096);
}

TEST(send_ebadf_enotsock, "send on a closed fd gives EBADF; on a pipe, ENOTSOCK", "send(2) ERRORS") {
    int p[2];
    CHECK_OK(pipe(p));
    CHECK_ERR(send(p[1], "x", 1, 0), ENOTSOCK);
    CHECK_ERR(recv(p[0], (char[4]){0}, 4, MSG_DONTWAIT), ENOTSOCK);
    close(p[0]);
    CHECK_ERR(send(p[0], "x", 1, 0), EBADF);
}

TEST(recv_oob_none_einval, "recv(MSG_OOB) with no urgent data pending fails with EINVAL", "tcp(7) urgent data") {
    int fd = echo4();
    char b[4];
    CHECK_ERR(recv(fd, b, sizeof b, MSG_OOB), EINVAL);
}

/* ---- readv / writev ---- */

TEST(writev_readv_scatter, "writev gathers three buffers; readv scatters the bytes across differently sized buffers", "readv(2)") {
    int fd = echo4();
    struct iovec w[3] = {{"abc", 3}, {"", 0}, {"defghij", 7}};
    CHECK_EQ(writev(fd, w, 3), 10);
    wait_bytes(fd, 10);
    char x[2], y[5], z[8];
    struct iovec r[3] = {{x, 2}, {y, 5}, {z, 8}};
    CHECK_EQ(readv(fd, r, 3), 10);
    CHECK(memcmp(x, "ab", 2) == 0);
    CHECK(memcmp(y, "cdefg", 5) == 0);
    CHECK(memcmp(z, "hij", 3) == 0);
}

TEST(readv_zero_iov, "readv/writev with iovcnt 0 return 0", "readv(2)") {
    int fd = echo4();
    CHECK_EQ(readv(fd, NULL, 0), 0);
    CHECK_EQ(writev(fd, NULL, 0), 0);
}

TEST(writev_bad_iovcnt, "writev with iovcnt above IOV_MAX or negative fails with EINVAL", "readv(2) EINVAL") {
    int fd = echo4();
    static struct iovec v[IOV_MAX + 1];
    for (int i = 0; i <= IOV_MAX; i++) v[i] = (struct iovec){"x", 1};
    CHECK_ERR(writev(fd, v, IOV_MAX + 1), EINVAL);
    volatile int neg = -1;
    CHECK_ERR(writev(fd, v, neg), EINVAL);
    CHECK_EQ(writev(fd, v, IOV_MAX), IOV_MAX);
}

/* ---- sendmsg / recvmsg ---- */

TEST(sendmsg_recvmsg_tcp, "sendmsg/recvmsg on TCP move iovec data; msg_flags is 0 and msg_namelen 0", "sendmsg(2), recvmsg(2)") {
    int fd = echo4();
    struct iovec w[2] = {{"head", 4}, {"tail", 4}};
    struct msghdr m = {.msg_iov = w, .msg_iovlen = 2};
    CHECK_EQ(sendmsg(fd, &m, 0), 8);
    wait_bytes(fd, 8);
    char b[16];
    struct sockaddr_in from;
    struct iovec r = {b, sizeof b};
    struct msghdr rm = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &r, .msg_iovlen = 1};
    rm.msg_flags = -1;
    CHECK_EQ(recvmsg(fd, &rm, 0), 8);
    CHECK(memcmp(b, "headtail", 8) == 0);
    CHECK_EQ(rm.msg_flags, 0);
    CHECK_EQ(rm.msg_namelen, 0);
}

TEST(recvmsg_udp_msg_trunc_flag, "recvmsg on UDP with a short buffer sets MSG_TRUNC in msg_flags and returns the copied length", "recvmsg(2) MSG_TRUNC") {
    int fd = udp4_bound();
    udp_connect(fd, ps_peer4(), PORT_ECHO);
    CHECK_EQ(send(fd, "0123456789", 10, 0), 10);
    wait_readable(fd);
    char b[4];
    struct iovec r = {b, sizeof b};
    struct msghdr m = {.msg_iov = &r, .msg_iovlen = 1};
    CHECK_EQ(recvmsg(fd, &m, 0), 4);
    CHECK_EQ(m.msg_flags, MSG_TRUNC);
}

TEST(recvmsg_udp_from_address, "recvmsg on unconnected UDP fills msg_name with the sender's sockaddr_in", "recvmsg(2), udp(7)") {
    int fd = udp4_bound();
    struct sockaddr_in to = ps_sin(ps_peer4(), PORT_ECHO);
    CHECK_EQ(sendto(fd, "abc", 3, 0, (struct sockaddr *)&to, sizeof to), 3);
    wait_readable(fd);
    char b[8];
    struct sockaddr_in from;
    memset(&from, 0xff, sizeof from);
    struct iovec r = {b, sizeof b};
    struct msghdr m = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &r, .msg_iovlen = 1};
    CHECK_EQ(recvmsg(fd, &m, 0), 3);
    CHECK_EQ(m.msg_namelen, sizeof(struct sockaddr_in));
    CHECK_EQ(from.sin_family, AF_INET);
    CHECK_EQ(ntohs(from.sin_port), PORT_ECHO);
    CHECK_EQ(from.sin_addr.s_addr, ps_sin(ps_peer4(), 0).sin_addr.s_addr);
    CHECK_EQ(m.msg_flags, 0);
}

TEST(ip_pktinfo_udp, "IP_PKTINFO delivers the destination address and a non-loopback ifindex with each datagram", "ip(7) IP_PKTINFO") {
    int fd = udp4_bound();
    int one = 1;
    CHECK_OK(setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one));
    udp_connect(fd, ps_peer4(), PORT_ECHO);
    CHECK_EQ(send(fd, "pk", 2, 0), 2);
    wait_readable(fd);
    char b[8];
    union { char buf[CMSG_SPACE(sizeof(struct in_pktinfo))]; struct cmsghdr align; } cb;
    struct iovec r = {b, sizeof b};
    struct msghdr m = {.msg_iov = &r, .msg_iovlen = 1, .msg_control = cb.buf, .msg_controllen = sizeof cb.buf};
    CHECK_EQ(recvmsg(fd, &m, 0), 2);
    CHECK_EQ(m.msg_flags, 0);
    struct cmsghdr *c = find_cmsg(&m, IPPROTO_IP, IP_PKTINFO);
    if (!c) FAIL("no IP_PKTINFO control message");
    CHECK_EQ(c->cmsg_len, CMSG_LEN(sizeof(struct in_pktinfo)));
    struct in_pktinfo pi;
    memcpy(&pi, CMSG_DATA(c), sizeof pi);
    uint32_t local = ps_sin(ps_local4(), 0).sin_addr.s_addr;
    CHECK_EQ(pi.ipi_addr.s_addr, local);
    CHECK_EQ(pi.ipi_spec_dst.s_addr, local);
    CHECK(pi.ipi_ifindex > 1);
}

TEST(ip_pktinfo_off_no_cmsg, "without IP_PKTINFO (or any option) recvmsg returns no control messages: msg_controllen 0", "recvmsg(2), ip(7)") {
    int fd = udp4_bound();
    udp_connect(fd, ps_peer4(), PORT_ECHO);
    CHECK_EQ(send(fd, "pk", 2, 0), 2);
    wait_readable(fd);
    char b[8], cbuf[256];
    struct iovec r = {b, sizeof b};
    struct msghdr m = {.msg_iov = &r, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    CHECK_EQ(recvmsg(fd, &m, 0), 2);
    CHECK_EQ(m.msg_controllen, 0);
}

TEST(recvmsg_ctrunc, "a control buffer too small for IP_PKTINFO sets MSG_CTRUNC", "recvmsg(2) MSG_CTRUNC") {
    int fd = udp4_bound();
    int one = 1;
    CHECK_OK(setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one));
    udp_connect(fd, ps_peer4(), PORT_ECHO);
    CHECK_EQ(send(fd, "ct", 2, 0), 2);
    wait_readable(fd);
    char b[8];
    union { char buf[CMSG_SPACE(0)]; struct cmsghdr align; } cb;
    struct iovec r = {b, sizeof b};
    struct msghdr m = {.msg_iov = &r, .msg_iovlen = 1, .msg_control = cb.buf, .msg_controllen = sizeof cb.buf};
    CHECK_EQ(recvmsg(fd, &m, 0), 2);
    CHECK(m.msg_flags & MSG_CTRUNC);
    CHECK_EQ(m.msg_flags & MSG_TRUNC, 0);
}

TEST(ip_recvtos_wire, "IP_RECVTOS delivers the TOS byte (0 from the peer) as an IP_TOS control message", "ip(7) IP_RECVTOS") {
    int fd = udp4_bound();
    int one = 1;
    CHECK_OK(setsockopt(fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof one));
    udp_connect(fd, ps_peer4(), PORT_ECHO);
    CHECK_EQ(send(fd, "t", 1, 0), 1);
    wait_readable(fd);
    char b[8];
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } cb;
    struct iovec r = {b, sizeof b};
    struct msghdr m = {.msg_iov = &r, .msg_iovlen = 1, .msg_control = cb.buf, .msg_controllen = sizeof cb.buf};
    CHECK_EQ(recvmsg(fd, &m, 0), 1);
    struct cmsghdr *c = find_cmsg(&m, IPPROTO_IP, IP_TOS);
    if (!c) FAIL("no IP_TOS control message");
    CHECK_EQ(c->cmsg_len, CMSG_LEN(1));
    CHECK_EQ(*(unsigned char *)CMSG_DATA(c), 0);
}

/* Two UDP sockets on this side's address: tx sends to rx. */
static void udp_local_pair(int *tx, int *rx) {
    *rx = udp4_bound();
    *tx = udp4_bound();
    udp_connect(*tx, ps_local4(), ps_local_port(*rx));
}

static int recv_tos(int rx) {
    char b[8];
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } cb;
    struct iovec r = {b, sizeof b};
    struct msghdr m = {.msg_iov = &r, .msg_iovlen = 1, .msg_control = cb.buf, .msg_controllen = sizeof cb.buf};
    wait_readable(rx);
    CHECK_EQ(recvmsg(rx, &m, 0), 1);
    struct cmsghdr *c = find_cmsg(&m, IPPROTO_IP, IP_TOS);
    if (!c) FAIL("no IP_TOS control message");
    return *(unsigned char *)CMSG_DATA(c);
}

TEST(ip_tos_sockopt_received, "a datagram sent with IP_TOS 0x28 arrives with TOS 0x28 in IP_RECVTOS", "ip(7) IP_TOS, IP_RECVTOS") {
    int tx, rx;
    udp_local_pair(&tx, &rx);
    int one = 1, tos = 0x28;
    CHECK_OK(setsockopt(rx, IPPROTO_IP, IP_RECVTOS, &one, sizeof one));
    CHECK_OK(setsockopt(tx, IPPROTO_IP, IP_TOS, &tos, sizeof tos));
    CHECK_EQ(send(tx, "x", 1, 0), 1);
    CHECK_EQ(recv_tos(rx), 0x28);
}

TEST(ip_tos_cmsg_on_send, "an IP_TOS control message on sendmsg sets that datagram's TOS only", "ip(7) IP_TOS") {
    int tx, rx;
    udp_local_pair(&tx, &rx);
    int one = 1;
    CHECK_OK(setsockopt(rx, IPPROTO_IP, IP_RECVTOS, &one, sizeof one));
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } cb;
    memset(&cb, 0, sizeof cb);
    struct iovec w = {"x", 1};
    struct msghdr m = {.msg_iov = &w, .msg_iovlen = 1, .msg_control = cb.buf, .msg_controllen = sizeof cb.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_TOS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    int tos = 0x10;
    memcpy(CMSG_DATA(c), &tos, sizeof tos);
    CHECK_EQ(sendmsg(tx, &m, 0), 1);
    CHECK_EQ(recv_tos(rx), 0x10);
    CHECK_EQ(send(tx, "x", 1, 0), 1);
    CHECK_EQ(recv_tos(rx), 0);
}

TEST(ip_recvttl_wire, "IP_RECVTTL reports TTL 64 on a datagram from the directly attached peer", "ip(7) IP_RECVTTL") {
    int fd = udp4_bound();
    int one = 1;
    CHECK_OK(setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &one, sizeof one));
    udp_connect(fd, ps_peer4(), PORT_ECHO);
    CHECK_EQ(send(fd, "t", 1, 0), 1);
    wait_readable(fd);
    char b[8];
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } cb;
    struct iovec r = {b, sizeof b};
    struct msghdr m = {.msg_iov = &r, .msg_iovlen = 1, .msg_control = cb.buf, .msg_controllen = sizeof cb.buf};
    CHECK_EQ(recvmsg(fd, &m, 0), 1);
    struct cmsghdr *c = find_cmsg(&m, IPPROTO_IP, IP_TTL);
    if (!c) FAIL("no IP_TTL control message");
    CHECK_EQ(c->cmsg_len, CMSG_LEN(sizeof(int)));
    int ttl;
    memcpy(&ttl, CMSG_DATA(c), sizeof ttl);
    CHECK_EQ(ttl, 64);
}

TEST(so_timestamp_udp, "SO_TIMESTAMP attaches an SCM_TIMESTAMP timeval between send and receipt", "socket(7) SO_TIMESTAMP") {
    int fd = udp4_bound();
    int one = 1;
    CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_TIMESTAMP, &one, sizeof one));
    udp_connect(fd, ps_peer4(), PORT_ECHO);
    struct timeval t0, t1, ts;
    gettimeofday(&t0, NULL);
    CHECK_EQ(send(fd, "ts", 2, 0), 2);
    wait_readable(fd);
    gettimeofday(&t1, NULL);
    char b[8];
    union { char buf[CMSG_SPACE(sizeof(struct timeval))]; struct cmsghdr align; } cb;
    struct iovec r = {b, sizeof b};
    struct msghdr m = {.msg_iov = &r, .msg_iovlen = 1, .msg_control = cb.buf, .msg_controllen = sizeof cb.buf};
    CHECK_EQ(recvmsg(fd, &m, 0), 2);
    struct cmsghdr *c = find_cmsg(&m, SOL_SOCKET, SCM_TIMESTAMP);
    if (!c) FAIL("no SCM_TIMESTAMP control message");
    CHECK_EQ(c->cmsg_len, CMSG_LEN(sizeof(struct timeval)));
    memcpy(&ts, CMSG_DATA(c), sizeof ts);
    long long us0 = t0.tv_sec * 1000000LL + t0.tv_usec, us1 = t1.tv_sec * 1000000LL + t1.tv_usec;
    long long u = ts.tv_sec * 1000000LL + ts.tv_usec;
    /* 1 ms of slack: the kernel and the vDSO round differently */
    if (u < us0 - 1000 || u > us1 + 1000) FAIL("timestamp %lld not within [%lld, %lld]", u, us0, us1);
}

TEST(so_timestampns_udp, "SO_TIMESTAMPNS attaches an SCM_TIMESTAMPNS timespec between send and receipt", "socket(7) SO_TIMESTAMPNS") {
    int fd = udp4_bound();
    int one = 1;
    CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one));
    udp_connect(fd, ps_peer4(), PORT_ECHO);
    struct timespec t0, t1, ts;
    clock_gettime(CLOCK_REALTIME, &t0);
    CHECK_EQ(send(fd, "ts", 2, 0), 2);
    wait_readable(fd);
    clock_gettime(CLOCK_REALTIME, &t1);
    char b[8];
    union { char buf[CMSG_SPACE(sizeof(struct timespec))]; struct cmsghdr align; } cb;
    struct iovec r = {b, sizeof b};
    struct msghdr m = {.msg_iov = &r, .msg_iovlen = 1, .msg_control = cb.buf, .msg_controllen = sizeof cb.buf};
    CHECK_EQ(recvmsg(fd, &m, 0), 2);
    struct cmsghdr *c = find_cmsg(&m, SOL_SOCKET, SCM_TIMESTAMPNS);
    if (!c) FAIL("no SCM_TIMESTAMPNS control message");
    memcpy(&ts, CMSG_DATA(c), sizeof ts);
    long long n0 = t0.tv_sec * 1000000000LL + t0.tv_nsec, n1 = t1.tv_sec * 1000000000LL + t1.tv_nsec;
    long long n = ts.tv_sec * 1000000000LL + ts.tv_nsec;
    if (n < n0 - 1000000 || n > n1 + 1000000) FAIL("timestamp %lld not within [%lld, %lld]", n, n0, n1);
}

TEST(so_timestamp_ctrunc, "SO_TIMESTAMP with a control buffer of CMSG_SPACE(0) sets MSG_CTRUNC", "recvmsg(2) MSG_CTRUNC") {
    int fd = udp4_bound();
    int one = 1;
    CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_TIMESTAMP, &one, sizeof one));
    udp_connect(fd, ps_peer4(), PORT_ECHO);
    CHECK_EQ(send(fd, "x", 1, 0), 1);
    wait_readable(fd);
    char b[8];
    union { char buf[CMSG_SPACE(0)]; struct cmsghdr align; } cb;
    struct iovec r = {b, sizeof b};
    struct msghdr m = {.msg_iov = &r, .msg_iovlen = 1, .msg_control = cb.buf, .msg_controllen = sizeof cb.buf};
    CHECK_EQ(recvmsg(fd, &m, 0), 1);
    CHECK(m.msg_flags & MSG_CTRUNC);
}

/* ---- sendmmsg / recvmmsg ---- */

TEST(sendmmsg_recvmmsg_udp, "sendmmsg sends 3 datagrams; a blocking recvmmsg of 3 returns all 3 with their lengths", "sendmmsg(2), recvmmsg(2)") {
    int fd = udp4_bound();
    udp_connect(fd, ps_peer4(), PORT_ECHO);
    const char *p[3] = {"a", "bbbb", "ccccccccc"};
    struct iovec w[3];
    struct mmsghdr mm[3];
    memset(mm, 0, sizeof mm);
    for (int i = 0; i < 3; i++) {
        w[i] = (struct iovec){(void *)p[i], strlen(p[i])};
        mm[i].msg_hdr.msg_iov = &w[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    CHECK_EQ(sendmmsg(fd, mm, 3, 0), 3);
    for (int i = 0; i < 3; i++) CHECK_EQ(mm[i].msg_len, strlen(p[i]));
    char b[3][32];
    struct iovec r[3];
    struct mmsghdr rm[3];
    memset(rm, 0, sizeof rm);
    for (int i = 0; i < 3; i++) {
        r[i] = (struct iovec){b[i], sizeof b[i]};
        rm[i].msg_hdr.msg_iov = &r[i];
        rm[i].msg_hdr.msg_iovlen = 1;
    }
    CHECK_EQ(recvmmsg(fd, rm, 3, 0, NULL), 3);
    int seen = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (rm[i].msg_len == strlen(p[j]) && memcmp(b[i], p[j], rm[i].msg_len) == 0) seen |= 1 << j;
    CHECK_EQ(seen, 7);
}

TEST(recvmmsg_waitforone, "recvmmsg(MSG_WAITFORONE) returns after the first datagram instead of filling the vector", "recvmmsg(2) MSG_WAITFORONE") {
    int fd = udp4_bound();
    udp_connect(fd, ps_peer4(), PORT_ECHO);
    CHECK_EQ(send(fd, "one", 3, 0), 3);
    char b[4][16];
    struct iovec r[4];
    struct mmsghdr rm[4];
    memset(rm, 0, sizeof rm);
    for (int i = 0; i < 4; i++) {
        r[i] = (struct iovec){b[i], sizeof b[i]};
        rm[i].msg_hdr.msg_iov = &r[i];
        rm[i].msg_hdr.msg_iovlen = 1;
    }
    CHECK_EQ(recvmmsg(fd, rm, 4, MSG_WAITFORONE, NULL), 1);
    CHECK_EQ(rm[0].msg_len, 3);
    CHECK(memcmp(b[0], "one", 3) == 0);
}

TEST(recvmmsg_dontwait_empty, "recvmmsg(MSG_DONTWAIT) with nothing queued fails with EAGAIN", "recvmmsg(2)") {
    int fd = udp4_bound();
    struct mmsghdr rm[2];
    char b[2][8];
    struct iovec r[2] = {{b[0], 8}, {b[1], 8}};
    memset(rm, 0, sizeof rm);
    rm[0].msg_hdr.msg_iov = &r[0]; rm[0].msg_hdr.msg_iovlen = 1;
    rm[1].msg_hdr.msg_iov = &r[1]; rm[1].msg_hdr.msg_iovlen = 1;
    CHECK_ERR(recvmmsg(fd, rm, 2, MSG_DONTWAIT, NULL), EAGAIN);
}

TEST(sendmmsg_tcp_stream, "sendmmsg on TCP sends each message in turn as one stream", "sendmmsg(2)") {
    int fd = echo4();
    struct iovec w[2] = {{"first-", 6}, {"second", 6}};
    struct mmsghdr mm[2];
    memset(mm, 0, sizeof mm);
    mm[0].msg_hdr.msg_iov = &w[0]; mm[0].msg_hdr.msg_iovlen = 1;
    mm[1].msg_hdr.msg_iov = &w[1]; mm[1].msg_hdr.msg_iovlen = 1;
    CHECK_EQ(sendmmsg(fd, mm, 2, 0), 2);
    CHECK_EQ(mm[0].msg_len, 6);
    CHECK_EQ(mm[1].msg_len, 6);
    char b[12];
    ps_read_exact(fd, b, 12);
    CHECK(memcmp(b, "first-second", 12) == 0);
}

/* ---- sendfile ---- */

TEST(sendfile_to_count, "sendfile copies a 300000-byte file into a socket; COUNT confirms every byte", "sendfile(2)") {
    int f = tmpfile_with(300000, 1, NULL);
    int fd = ps_tcp_connect4(ps_peer4(), PORT_COUNT);
    long total = 0;
    while (total < 300000) {
        ssize_t n = sendfile(fd, f, NULL, 300000 - total);
        CHECK(n > 0);
        total += n;
    }
    CHECK_EQ(lseek(f, 0, SEEK_CUR), 300000);
    CHECK_EQ(sendfile(fd, f, NULL, 100), 0);
    CHECK_EQ(count_reply(fd), 300000);
}

TEST(sendfile_echo_integrity, "bytes sent with sendfile come back from ECHO identical", "sendfile(2)") {
    unsigned char *content;
    const size_t len = 100000;
    int f = tmpfile_with(len, 7, &content);
    int fd = echo4();
    size_t total = 0;
    while (total < len) {
        ssize_t n = sendfile(fd, f, NULL, len - total);
        CHECK(n > 0);
        total += (size_t)n;
    }
    unsigned char *back = malloc(len);
    ps_read_exact(fd, back, len);
    CHECK(memcmp(back, content, len) == 0);
}

TEST(sendfile_offset_pointer, "sendfile with an offset pointer advances *offset and leaves the file position alone", "sendfile(2)") {
    unsigned char *content;
    int f = tmpfile_with(4096, 3, &content);
    CHECK_OK(lseek(f, 100, SEEK_SET));
    int fd = echo4();
    off_t off = 1000;
    CHECK_EQ(sendfile(fd, f, &off, 500), 500);
    CHECK_EQ(off, 1500);
    CHECK_EQ(lseek(f, 0, SEEK_CUR), 100);
    unsigned char b[500];
    ps_read_exact(fd, b, 500);
    CHECK(memcmp(b, content + 1000, 500) == 0);
}

TEST(sendfile_large_discard, "sendfile of 8 MiB to DISCARD returns byte counts summing to the file size", "sendfile(2)") {
    const size_t len = 8u << 20;
    int f = tmpfile_with(len, 9, NULL);
    int fd = ps_tcp_connect4(ps_peer4(), PORT_DISCARD);
    size_t total = 0;
    while (total < len) {
        ssize_t n = sendfile(fd, f, NULL, len - total);
        CHECK(n > 0);
        total += (size_t)n;
    }
    CHECK_EQ(total, len);
    CHECK_OK(shutdown(fd, SHUT_WR));
    char b[4];
    CHECK_EQ(read(fd, b, sizeof b), 0);
}

TEST(sendfile_shut_wr_epipe, "sendfile into a socket after SHUT_WR fails with EPIPE", "sendfile(2), send(2) EPIPE") {
    signal(SIGPIPE, SIG_IGN);
    int f = tmpfile_with(1000, 5, NULL);
    int fd = echo4();
    CHECK_OK(shutdown(fd, SHUT_WR));
    CHECK_ERR(sendfile(fd, f, NULL, 1000), EPIPE);
}

/* ---- large transfers ---- */

static uint8_t pat(size_t i) { return (uint8_t)((i * 2654435761u) >> 13); }

/* Push len bytes through ECHO with poll, checking every byte that comes back. */
static void echo_stream(size_t len, size_t chunk) {
    int fd = echo4();
    CHECK_OK(fcntl(fd, F_SETFL, O_NONBLOCK));
    uint8_t *out = malloc(chunk), *in = malloc(chunk);
    size_t sent = 0, got = 0;
    long end = ps_now_ms() + 20000;
    while (got < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0)};
        CHECK(poll(&p, 1, 3000) == 1);
        CHECK_EQ(p.revents & (POLLERR | POLLHUP | POLLNVAL), 0);
        if ((p.revents & POLLOUT) && sent < len) {
            size_t n = len - sent < chunk ? len - sent : chunk;
            for (size_t i = 0; i < n; i++) out[i] = pat(sent + i);
            ssize_t w = send(fd, out, n, 0);
            if (w < 0 && errno != EAGAIN) FAIL("send: %s", strerrorname_np(errno));
            if (w > 0) sent += (size_t)w;
        }
        if (p.revents & POLLIN) {
            ssize_t r = recv(fd, in, chunk, 0);
            if (r == 0) FAIL("EOF after %zu bytes", got);
            if (r < 0 && errno != EAGAIN) FAIL("recv: %s", strerrorname_np(errno));
            for (ssize_t i = 0; i < r; i++)
                if (in[i] != pat(got + (size_t)i)) FAIL("byte %zu corrupted", got + (size_t)i);
            if (r > 0) got += (size_t)r;
        }
        if (ps_now_ms() > end) FAIL("only %zu of %zu bytes back after 20 s", got, len);
    }
    CHECK_OK(shutdown(fd, SHUT_WR));
    CHECK(poll1(fd, POLLIN, 3000) & POLLIN);
    CHECK_EQ(recv(fd, in, chunk, 0), 0);
}

TEST_T(large_echo_16m, "16 MiB through ECHO with poll, every byte checked, then EOF", "tcp(7)", 30) {
    echo_stream(16u << 20, 65536);
}

TEST(large_echo_odd_chunks, "2 MiB through ECHO in 1000-byte writes arrives intact", "tcp(7)") {
    echo_stream(2u << 20, 1000);
}

TEST_T(large_count_32m, "32 MiB of blocking writes to COUNT are all counted", "tcp(7)", 30) {
    int fd = ps_tcp_connect4(ps_peer4(), PORT_COUNT);
    static char buf[1 << 20];
    memset(buf, 'c', sizeof buf);
    for (int i = 0; i < 32; i++) ps_write_all(fd, buf, sizeof buf);
    CHECK_EQ(count_reply(fd), 32L << 20);
}

TEST(source_read_small_buffers, "SOURCE's 1 MiB read 777 bytes at a time arrives in order, then EOF", "tcp(7)") {
    int fd = ps_tcp_connect4(ps_peer4(), PORT_SOURCE);
    unsigned char b[777];
    size_t got = 0;
    ssize_t n;
    while ((n = read(fd, b, sizeof b)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            if (b[i] != (got + (size_t)i) % 251) FAIL("byte %zu wrong", got + (size_t)i);
        got += (size_t)n;
    }
    CHECK_EQ(n, 0);
    CHECK_EQ(got, SOURCE_BYTES);
}
