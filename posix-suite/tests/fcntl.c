/* fcntl (O_NONBLOCK, FD_CLOEXEC, F_DUPFD*), ioctl (FIONREAD, FIONBIO,
 * SIOCINQ, SIOCOUTQ, SIOCATMARK), and dup/dup2/dup3 sharing one socket. */
#include "api_util.h"

#include <linux/sockios.h>

static int inq(int fd) {
    int n = -1;
    CHECK_OK(ioctl(fd, FIONREAD, &n));
    return n;
}

/* Wait until FIONREAD reports at least n bytes. */
static void wait_inq(int fd, int n, int ms) {
    long t0 = ps_now_ms();
    while (inq(fd) < n) {
        if (ps_now_ms() - t0 > ms) FAIL("FIONREAD %d, expected %d", inq(fd), n);
        ps_sleep_ms(5);
    }
}

/* Does a freshly exec'd shell still see fd? */
static int fd_survives_exec(int fd) {
    pid_t pid = (pid_t)CHECK_OK(fork());
    if (pid == 0) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "[ -e /proc/self/fd/%d ]", fd);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int st;
    CHECK_OK(waitpid(pid, &st, 0));
    if (!WIFEXITED(st) || WEXITSTATUS(st) > 1) FAIL("sh status 0x%x", st);
    return WEXITSTATUS(st) == 0;
}

TEST(setfl_nonblock, "F_SETFL O_NONBLOCK makes recv fail EAGAIN", "fcntl(2) F_SETFL") {
    int fd = peer_tcp(PORT_ECHO);
    CHECK_OK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK));
    CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
    char c;
    CHECK_ERR(recv(fd, &c, 1, 0), EAGAIN);
}

TEST(setfl_clear_nonblock, "clearing O_NONBLOCK makes recv block again (until SO_RCVTIMEO)", "fcntl(2) F_SETFL") {
    int fd = (int)CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    CHECK_ERR(connect4_r(fd, peer4(PORT_ECHO)), EINPROGRESS);
    pollfd1(fd, POLLOUT, 3000);
    CHECK_OK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK));
    CHECK_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    struct timeval tv = {0, 200000};
    CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    long t0 = ps_now_ms();
    char c;
    CHECK_ERR(recv(fd, &c, 1, 0), EAGAIN);
    CHECK_ELAPSED(t0, 150, 2000);
}

TEST(getfl_accmode, "a socket's access mode is O_RDWR", "fcntl(2) F_GETFL") {
    int fd = peer_tcp(PORT_ECHO);
    CHECK_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
    int u = udp4();
    CHECK_EQ(fcntl(u, F_GETFL) & O_ACCMODE, O_RDWR);
}

TEST(setfl_ignores_accmode, "F_SETFL ignores access-mode bits", "fcntl(2) F_SETFL") {
    int fd = tcp4();
    CHECK_OK(fcntl(fd, F_SETFL, O_RDONLY | O_NONBLOCK));
    CHECK_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
    CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
}

TEST(nonblock_connect_via_fcntl, "a socket made non-blocking by fcntl connects with EINPROGRESS", "fcntl(2), connect(2)") {
    int fd = tcp4();
    set_nonblock(fd, 1);
    CHECK_ERR(connect4_r(fd, peer4(PORT_ECHO)), EINPROGRESS);
    CHECK(pollfd1(fd, POLLOUT, 3000) & POLLOUT);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_ERROR), 0);
}

TEST(fd_cloexec, "F_SETFD FD_CLOEXEC is reported by F_GETFD and can be cleared", "fcntl(2) F_SETFD") {
    int fd = tcp4();
    CHECK_EQ(fcntl(fd, F_GETFD), 0);
    CHECK_OK(fcntl(fd, F_SETFD, FD_CLOEXEC));
    CHECK_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
    CHECK_OK(fcntl(fd, F_SETFD, 0));
    CHECK_EQ(fcntl(fd, F_GETFD), 0);
}

TEST(cloexec_closes_on_exec, "a FD_CLOEXEC socket is closed across exec, a plain one is not", "fcntl(2) FD_CLOEXEC, execve(2)") {
    int plain = peer_tcp(PORT_ECHO);
    int cx = (int)CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    CHECK(fd_survives_exec(plain));
    CHECK(!fd_survives_exec(cx));
}

TEST(exec_keeps_connection, "a connected socket inherited across exec stays usable", "execve(2)") {
    int fd = peer_tcp(PORT_ECHO);
    pid_t pid = (pid_t)CHECK_OK(fork());
    if (pid == 0) {
        char cmd[96];
        snprintf(cmd, sizeof cmd, "printf exec >&%d", fd);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int st;
    CHECK_OK(waitpid(pid, &st, 0));
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char buf[4];
    read_exact_ms(fd, buf, 4, 3000);
    CHECK(!memcmp(buf, "exec", 4));
}

TEST(dupfd_cloexec, "F_DUPFD_CLOEXEC gives a new fd >= arg with FD_CLOEXEC; the original has none", "fcntl(2) F_DUPFD_CLOEXEC") {
    int fd = tcp4();
    int d = (int)CHECK_OK(fcntl(fd, F_DUPFD_CLOEXEC, 100));
    CHECK(d >= 100);
    CHECK_EQ(fcntl(d, F_GETFD), FD_CLOEXEC);
    CHECK_EQ(fcntl(fd, F_GETFD), 0);
    CHECK_EQ(geti(d, SOL_SOCKET, SO_TYPE), SOCK_STREAM);
}

TEST(dupfd_min, "F_DUPFD gives the lowest free fd >= arg, without FD_CLOEXEC", "fcntl(2) F_DUPFD") {
    int fd = (int)CHECK_OK(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    int d = (int)CHECK_OK(fcntl(fd, F_DUPFD, 200));
    CHECK_EQ(d, 200);
    CHECK_EQ(fcntl(d, F_GETFD), 0);
    int d2 = (int)CHECK_OK(fcntl(fd, F_DUPFD, 200));
    CHECK_EQ(d2, 201);
}

TEST(dup_no_cloexec, "dup of a SOCK_CLOEXEC socket is not close-on-exec", "dup(2)") {
    int fd = (int)CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int d = (int)CHECK_OK(dup(fd));
    CHECK_EQ(fcntl(d, F_GETFD), 0);
    CHECK_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
}

TEST(dup_shares_status_flags, "O_NONBLOCK set through one dup is seen through the other", "dup(2), open(2) file description") {
    int fd = peer_tcp(PORT_ECHO);
    int d = (int)CHECK_OK(dup(fd));
    set_nonblock(d, 1);
    CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
    char c;
    CHECK_ERR(recv(fd, &c, 1, 0), EAGAIN);
}

TEST(dup_same_socket, "dup'd fds name the same socket: same inode, same local port", "dup(2)") {
    int fd = peer_tcp(PORT_ECHO);
    int d = (int)CHECK_OK(dup(fd));
    struct stat a, b;
    CHECK_OK(fstat(fd, &a));
    CHECK_OK(fstat(d, &b));
    CHECK_EQ(a.st_ino, b.st_ino);
    CHECK_EQ(ps_local_port(fd), ps_local_port(d));
}

TEST(dup_data_either_fd, "data written through one fd is echoed and read through its dup", "dup(2)") {
    int fd = peer_tcp(PORT_ECHO);
    int d = (int)CHECK_OK(dup(fd));
    ps_write_all(fd, "one", 3);
    char buf[8];
    read_exact_ms(d, buf, 3, 3000);
    CHECK(!memcmp(buf, "one", 3));
    ps_write_all(d, "two", 3);
    read_exact_ms(fd, buf, 3, 3000);
    CHECK(!memcmp(buf, "two", 3));
}

TEST(dup_close_one_keeps, "closing the original keeps the connection open through the dup", "dup(2), close(2)") {
    int fd = peer_tcp(PORT_COUNT);
    int d = (int)CHECK_OK(dup(fd));
    ps_write_all(fd, "ab", 2);
    CHECK_OK(close(fd));
    ps_write_all(d, "cde", 3);
    CHECK_OK(shutdown(d, SHUT_WR));
    char buf[32];
    size_t n = read_to_eof(d, buf, sizeof buf - 1, 3000);
    buf[n] = 0;
    if (strcmp(buf, "bytes=5\n")) FAIL("COUNT said %s", buf);
}

TEST(dup_shutdown_affects_all, "shutdown through a dup shuts the shared socket", "dup(2), shutdown(2)") {
    int fd = peer_tcp(PORT_COUNT);
    int d = (int)CHECK_OK(dup(fd));
    ps_write_all(fd, "xyz", 3);
    CHECK_OK(shutdown(d, SHUT_WR));
    CHECK_ERR(send(fd, "x", 1, MSG_NOSIGNAL), EPIPE);
    char buf[32];
    size_t n = read_to_eof(fd, buf, sizeof buf - 1, 3000);
    buf[n] = 0;
    if (strcmp(buf, "bytes=3\n")) FAIL("COUNT said %s", buf);
}

TEST(dup_close_both_fin, "closing the last dup sends FIN", "dup(2), close(2)") {
    int cli, srv;
    local_pair(&cli, &srv);
    int d = (int)CHECK_OK(dup(cli));
    close(cli);
    CHECK_EQ(pollfd1(srv, POLLIN, 100), 0);
    close(d);
    wait_readable(srv, 3000);
    char c;
    CHECK_EQ(read(srv, &c, 1), 0);
}

TEST(dup2_target, "dup2 onto a chosen fd: the socket works through it", "dup(2) dup2") {
    int fd = peer_tcp(PORT_ECHO);
    CHECK_EQ(dup2(fd, 150), 150);
    close(fd);
    echo_roundtrip(150, "dup2");
}

TEST(dup2_same_fd, "dup2(fd, fd) returns fd and changes nothing", "dup(2) dup2") {
    int fd = (int)CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    CHECK_EQ(dup2(fd, fd), fd);
    CHECK_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
}

TEST(dup2_bad_fd, "dup2 of a closed fd fails EBADF", "dup(2) ERRORS") {
    CHECK_ERR(dup2(999, 151), EBADF);
}

TEST(dup2_replaces_socket, "dup2 onto an open socket closes it first: its peer sees EOF", "dup(2) dup2") {
    int cli, srv;
    local_pair(&cli, &srv);
    int other = udp4();
    CHECK_EQ(dup2(other, cli), cli);
    CHECK_EQ(geti(cli, SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
    wait_readable(srv, 3000);
    char c;
    CHECK_EQ(read(srv, &c, 1), 0);
}

TEST(dup3_cloexec, "dup3(O_CLOEXEC) sets FD_CLOEXEC on the new fd", "dup(2) dup3") {
    int fd = tcp4();
    CHECK_EQ(dup3(fd, 160, O_CLOEXEC), 160);
    CHECK_EQ(fcntl(160, F_GETFD), FD_CLOEXEC);
    CHECK_EQ(dup3(fd, 161, 0), 161);
    CHECK_EQ(fcntl(161, F_GETFD), 0);
}

TEST(dup3_same_fd, "dup3(fd, fd, 0) fails EINVAL", "dup(2) dup3 ERRORS") {
    int fd = tcp4();
    CHECK_ERR(dup3(fd, fd, 0), EINVAL);
    CHECK_ERR(dup3(fd, fd, O_CLOEXEC), EINVAL);
}

TEST(dup3_bad_flags, "dup3 with a flag other than O_CLOEXEC fails EINVAL", "dup(2) dup3 ERRORS") {
    int fd = tcp4();
    CHECK_ERR(dup3(fd, 162, O_NONBLOCK), EINVAL);
    CHECK_ERR(fcntl(162, F_GETFD), EBADF);
}

TEST(fionbio, "ioctl FIONBIO sets and clears O_NONBLOCK", "ioctl(2), socket(7) FIONBIO") {
    int fd = tcp4();
    int on = 1, off = 0;
    CHECK_OK(ioctl(fd, FIONBIO, &on));
    CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
    CHECK_OK(ioctl(fd, FIONBIO, &off));
    CHECK_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
}

TEST(fionbio_effect, "FIONBIO makes a connected socket's recv fail EAGAIN", "ioctl(2) FIONBIO") {
    int fd = peer_tcp(PORT_ECHO);
    int on = 1;
    CHECK_OK(ioctl(fd, FIONBIO, &on));
    char c;
    CHECK_ERR(read(fd, &c, 1), EAGAIN);
}

TEST(fionread_tcp, "FIONREAD reports the bytes waiting on a TCP socket", "tcp(7) SIOCINQ, ioctl(2)") {
    int fd = peer_tcp(PORT_ECHO);
    CHECK_EQ(inq(fd), 0);
    char buf[100];
    memset(buf, 'q', sizeof buf);
    ps_write_all(fd, buf, sizeof buf);
    wait_inq(fd, 100, 3000);
    ps_sleep_ms(20);
    CHECK_EQ(inq(fd), 100);
    CHECK_EQ(recv(fd, buf, 40, 0), 40);
    CHECK_EQ(inq(fd), 60);
}

TEST(siocinq_is_fionread, "SIOCINQ equals FIONREAD", "tcp(7) SIOCINQ") {
    int fd = peer_tcp(PORT_ECHO);
    ps_write_all(fd, "1234567", 7);
    wait_inq(fd, 7, 3000);
    int n = -1;
    CHECK_OK(ioctl(fd, SIOCINQ, &n));
    CHECK_EQ(n, 7);
}

TEST(fionread_peek_unchanged, "MSG_PEEK does not change FIONREAD", "tcp(7) SIOCINQ, recv(2) MSG_PEEK") {
    int fd = peer_tcp(PORT_ECHO);
    ps_write_all(fd, "peekaboo", 8);
    wait_inq(fd, 8, 3000);
    char buf[8];
    CHECK_EQ(recv(fd, buf, 8, MSG_PEEK), 8);
    CHECK_EQ(inq(fd), 8);
}

TEST(fionread_fin_not_counted, "FIONREAD after data and FIN counts only the data", "net/ipv4/tcp.c tcp_inq") {
    int fd = peer_tcp(PORT_COUNT);
    ps_write_all(fd, "abcde", 5);
    CHECK_OK(shutdown(fd, SHUT_WR));
    /* wait for the reply and the FIN */
    long t0 = ps_now_ms();
    while (!(pollfd1(fd, POLLRDHUP, 100) & POLLRDHUP) && ps_now_ms() - t0 < 3000) {}
    CHECK_EQ(inq(fd), 8); /* "bytes=5\n" */
}

TEST(fionread_unconnected, "FIONREAD on an unconnected TCP socket is 0", "tcp(7) SIOCINQ") {
    int fd = tcp4();
    CHECK_EQ(inq(fd), 0);
}

TEST(fionread_listener, "FIONREAD on a listening socket fails EINVAL", "tcp(7) SIOCINQ") {
    int l = listen_local(4);
    int n;
    CHECK_ERR(ioctl(l, FIONREAD, &n), EINVAL);
}

TEST(fionread_udp_first_datagram, "UDP FIONREAD is the size of the first queued datagram", "udp(7) FIONREAD") {
    int fd = udp4();
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    CHECK_EQ(inq(fd), 0);
    CHECK_EQ(send(fd, "0123456789", 10, 0), 10);
    wait_inq(fd, 10, 3000);
    CHECK_EQ(send(fd, "01234567890123456789", 20, 0), 20);
    char buf[32];
    ps_sleep_ms(100); /* the second is (most likely) queued behind: still 10 */
    CHECK_EQ(inq(fd), 10);
    CHECK_EQ(recv(fd, buf, sizeof buf, 0), 10);
    wait_inq(fd, 20, 3000);
    CHECK_EQ(inq(fd), 20);
}

TEST(siocoutq_acked, "SIOCOUTQ is 0 once the peer acknowledged everything", "tcp(7) SIOCOUTQ") {
    int fd = peer_tcp(PORT_ECHO);
    echo_roundtrip(fd, "acked?");
    long t0 = ps_now_ms();
    int n = -1;
    do {
        CHECK_OK(ioctl(fd, SIOCOUTQ, &n));
        if (n) ps_sleep_ms(5);
    } while (n && ps_now_ms() - t0 < 3000);
    CHECK_EQ(n, 0);
}

TEST(siocoutq_unsent, "SIOCOUTQ counts data the peer has not taken (HOLD never reads)", "tcp(7) SIOCOUTQ") {
    int fd = peer_tcp(PORT_HOLD);
    set_nonblock(fd, 1);
    static char buf[65536];
    long total = 0;
    long t0 = ps_now_ms();
    for (;;) {
        ssize_t n = send(fd, buf, sizeof buf, 0);
        if (n > 0) { total += n; continue; }
        if (errno != EAGAIN) FAIL("send: %s", strerrorname_np(errno));
        if (pollfd1(fd, POLLOUT, 300) == 0) break;
        if (ps_now_ms() - t0 > 5000) FAIL("never filled");
    }
    int q = -1;
    CHECK_OK(ioctl(fd, SIOCOUTQ, &q));
    CHECK(q > 0);
    CHECK(q <= total);
}

TEST(siocoutq_fresh, "SIOCOUTQ on a new TCP socket is 0", "tcp(7) SIOCOUTQ") {
    int fd = tcp4();
    int q = -1;
    CHECK_OK(ioctl(fd, SIOCOUTQ, &q));
    CHECK_EQ(q, 0);
}

TEST(siocatmark, "SIOCATMARK is 0 with no urgent data", "tcp(7) SIOCATMARK") {
    int fd = peer_tcp(PORT_ECHO);
    int m = -1;
    CHECK_OK(ioctl(fd, SIOCATMARK, &m));
    CHECK_EQ(m, 0);
}

TEST(ioctl_unknown, "an unknown ioctl on a socket fails ENOTTY", "ioctl(2) ERRORS") {
    int fd = tcp4();
    int v;
    CHECK_ERR(ioctl(fd, 0x5401 /* TCGETS */, &v), ENOTTY);
}

TEST(setown_getown, "F_SETOWN / F_GETOWN round-trip the owner pid", "fcntl(2) F_SETOWN") {
    int fd = tcp4();
    CHECK_EQ(fcntl(fd, F_GETOWN), 0);
    CHECK_OK(fcntl(fd, F_SETOWN, getpid()));
    CHECK_EQ(fcntl(fd, F_GETOWN), getpid());
}

static volatile sig_atomic_t got_sigio;
static void on_sigio(int sig) { (void)sig; got_sigio = 1; }

TEST(o_async_sigio, "O_ASYNC with F_SETOWN delivers SIGIO when data arrives", "fcntl(2) O_ASYNC, socket(7) FIOASYNC") {
    int fd = peer_tcp(PORT_ECHO);
    signal(SIGIO, on_sigio);
    CHECK_OK(fcntl(fd, F_SETOWN, getpid()));
    CHECK_OK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC));
    got_sigio = 0;
    ps_write_all(fd, "io", 2);
    long t0 = ps_now_ms();
    while (!got_sigio && ps_now_ms() - t0 < 3000) ps_sleep_ms(5);
    CHECK(got_sigio);
}

TEST(o_async_sigio_udp, "O_ASYNC on a UDP socket: SIGIO when a datagram arrives, none after O_ASYNC is cleared", "fcntl(2) O_ASYNC") {
    int fd = udp4();
    CHECK_OK(connect4_r(fd, peer4(PORT_ECHO)));
    signal(SIGIO, on_sigio);
    CHECK_OK(fcntl(fd, F_SETOWN, getpid()));
    int fl = fcntl(fd, F_GETFL);
    CHECK_OK(fcntl(fd, F_SETFL, fl | O_ASYNC));
    CHECK(fcntl(fd, F_GETFL) & O_ASYNC);
    got_sigio = 0;
    CHECK_EQ(send(fd, "a", 1, 0), 1);
    long t0 = ps_now_ms();
    while (!got_sigio && ps_now_ms() - t0 < 3000) ps_sleep_ms(5);
    CHECK(got_sigio);
    wait_readable(fd, 3000);
    char b[4];
    CHECK_EQ(recv(fd, b, sizeof b, 0), 1);
    CHECK_OK(fcntl(fd, F_SETFL, fl));
    got_sigio = 0;
    CHECK_EQ(send(fd, "b", 1, 0), 1);
    wait_readable(fd, 3000);
    ps_sleep_ms(50);
    CHECK(!got_sigio);
}

static int sigio_fd = -1;
static volatile sig_atomic_t sigio_read;
static void on_sigio_read(int sig) {
    (void)sig;
    char b[8];
    int saved = errno;
    ssize_t n = recv(sigio_fd, b, sizeof b, MSG_DONTWAIT);
    if (n > 0) sigio_read += (sig_atomic_t)n;
    errno = saved;
}

TEST(o_async_handler_reads, "a SIGIO handler can read the data that raised it", "fcntl(2) O_ASYNC") {
    int fd = peer_tcp(PORT_ECHO);
    sigio_fd = fd;
    sigio_read = 0;
    signal(SIGIO, on_sigio_read);
    CHECK_OK(fcntl(fd, F_SETOWN, getpid()));
    CHECK_OK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC));
    ps_write_all(fd, "hello", 5);
    long t0 = ps_now_ms();
    while (sigio_read < 5 && ps_now_ms() - t0 < 3000) ps_sleep_ms(5);
    CHECK_EQ(sigio_read, 5);
}

TEST(fcntl_badf, "fcntl and ioctl on a closed fd fail EBADF", "fcntl(2) ERRORS") {
    int fd = tcp4();
    close(fd);
    CHECK_ERR(fcntl(fd, F_GETFL), EBADF);
    int n;
    CHECK_ERR(ioctl(fd, FIONREAD, &n), EBADF);
}
