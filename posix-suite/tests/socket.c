/* socket(): families, types, protocols, flags, and what a fresh socket is. */
#include "api_util.h"

#include <sys/un.h>

static void check_proto(int fd, int domain, int type, int proto) {
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_DOMAIN), domain);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_TYPE), type);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_PROTOCOL), proto);
}

TEST(inet_stream, "socket(AF_INET, SOCK_STREAM, 0) is a TCP socket", "socket(2), tcp(7)") {
    int fd = tcp4();
    check_proto(fd, AF_INET, SOCK_STREAM, IPPROTO_TCP);
}

TEST(inet_dgram, "socket(AF_INET, SOCK_DGRAM, 0) is a UDP socket", "socket(2), udp(7)") {
    int fd = udp4();
    check_proto(fd, AF_INET, SOCK_DGRAM, IPPROTO_UDP);
}

TEST(inet6_stream, "socket(AF_INET6, SOCK_STREAM, 0) is a TCP socket", "socket(2), ipv6(7)") {
    int fd = tcp6();
    check_proto(fd, AF_INET6, SOCK_STREAM, IPPROTO_TCP);
}

TEST(inet6_dgram, "socket(AF_INET6, SOCK_DGRAM, 0) is a UDP socket", "socket(2), ipv6(7)") {
    int fd = udp6();
    check_proto(fd, AF_INET6, SOCK_DGRAM, IPPROTO_UDP);
}

TEST(explicit_tcp, "socket(AF_INET, SOCK_STREAM, IPPROTO_TCP) succeeds", "socket(2), tcp(7)") {
    int fd = (int)CHECK_OK(socket(AF_INET, SOCK_STREAM, IPPROTO_TCP));
    check_proto(fd, AF_INET, SOCK_STREAM, IPPROTO_TCP);
}

TEST(explicit_udp, "socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP) succeeds", "socket(2), udp(7)") {
    int fd = (int)CHECK_OK(socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP));
    check_proto(fd, AF_INET, SOCK_DGRAM, IPPROTO_UDP);
}

TEST(explicit_tcp6, "socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP) succeeds", "socket(2), ipv6(7)") {
    int fd = (int)CHECK_OK(socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP));
    check_proto(fd, AF_INET6, SOCK_STREAM, IPPROTO_TCP);
}

TEST(stream_udp_proto, "SOCK_STREAM with IPPROTO_UDP fails EPROTONOSUPPORT", "socket(2) ERRORS") {
    CHECK_ERR(socket(AF_INET, SOCK_STREAM, IPPROTO_UDP), EPROTONOSUPPORT);
}

TEST(dgram_tcp_proto, "SOCK_DGRAM with IPPROTO_TCP fails EPROTONOSUPPORT", "socket(2) ERRORS") {
    CHECK_ERR(socket(AF_INET, SOCK_DGRAM, IPPROTO_TCP), EPROTONOSUPPORT);
}

TEST(stream_udp_proto6, "AF_INET6 SOCK_STREAM with IPPROTO_UDP fails EPROTONOSUPPORT", "socket(2) ERRORS") {
    CHECK_ERR(socket(AF_INET6, SOCK_STREAM, IPPROTO_UDP), EPROTONOSUPPORT);
}

TEST(proto_out_of_range, "a protocol outside 0..IPPROTO_MAX-1 fails EINVAL", "socket(2), net/ipv4/af_inet.c inet_create") {
    CHECK_ERR(socket(AF_INET, SOCK_STREAM, -1), EINVAL);
    CHECK_ERR(socket(AF_INET, SOCK_DGRAM, 1000), EINVAL);
}

TEST(bad_family, "an unknown address family fails EAFNOSUPPORT", "socket(2) ERRORS") {
    CHECK_ERR(socket(12345, SOCK_STREAM, 0), EAFNOSUPPORT);
}

TEST(af_unspec, "socket(AF_UNSPEC, ...) fails EAFNOSUPPORT", "socket(2) ERRORS") {
    CHECK_ERR(socket(AF_UNSPEC, SOCK_STREAM, 0), EAFNOSUPPORT);
}

TEST(bad_type, "a type beyond SOCK_MAX fails EINVAL", "socket(2) ERRORS") {
    CHECK_ERR(socket(AF_INET, 11, 0), EINVAL);
    CHECK_ERR(socket(AF_INET, 15, 0), EINVAL);
}

TEST(negative_type, "a negative type fails EINVAL", "socket(2) ERRORS") {
    CHECK_ERR(socket(AF_INET, -1, 0), EINVAL);
}

TEST(unknown_type_flags, "flag bits other than SOCK_NONBLOCK|SOCK_CLOEXEC fail EINVAL", "socket(2) ERRORS") {
    CHECK_ERR(socket(AF_INET, SOCK_STREAM | 0x40, 0), EINVAL);
    CHECK_ERR(socket(AF_INET, SOCK_DGRAM | O_APPEND, 0), EINVAL);
}

TEST(inet_rdm, "AF_INET has no SOCK_RDM: ESOCKTNOSUPPORT", "socket(2) ERRORS, net/ipv4/af_inet.c inet_create") {
    CHECK_ERR(socket(AF_INET, SOCK_RDM, 0), ESOCKTNOSUPPORT);
}

TEST(inet6_rdm, "AF_INET6 has no SOCK_RDM: ESOCKTNOSUPPORT", "socket(2) ERRORS, net/ipv6/af_inet6.c inet6_create") {
    CHECK_ERR(socket(AF_INET6, SOCK_RDM, 0), ESOCKTNOSUPPORT);
}

TEST(raw_proto_zero, "SOCK_RAW with protocol 0 fails EPROTONOSUPPORT", "raw(7)") {
    CHECK_ERR(socket(AF_INET, SOCK_RAW, 0), EPROTONOSUPPORT);
}

TEST(default_blocking, "a new socket is blocking and not close-on-exec", "socket(2)") {
    int fd = tcp4();
    CHECK_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    CHECK_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
    CHECK_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
}

TEST(nonblock_flag, "SOCK_NONBLOCK sets O_NONBLOCK on the file description", "socket(2)") {
    int fd = (int)CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
    CHECK_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
}

TEST(cloexec_flag, "SOCK_CLOEXEC sets FD_CLOEXEC on the descriptor", "socket(2)") {
    int fd = (int)CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    CHECK_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
}

TEST(both_flags, "SOCK_NONBLOCK|SOCK_CLOEXEC set both, type still SOCK_STREAM", "socket(2)") {
    int fd = (int)CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_TYPE), SOCK_STREAM);
}

TEST(flags_udp, "SOCK_NONBLOCK|SOCK_CLOEXEC on a UDP socket", "socket(2)") {
    int fd = (int)CHECK_OK(socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
}

TEST(flags_inet6, "SOCK_NONBLOCK|SOCK_CLOEXEC on an AF_INET6 socket", "socket(2)") {
    int fd = (int)CHECK_OK(socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

TEST(nonblock_recv_eagain, "a SOCK_NONBLOCK UDP socket's recv fails EAGAIN when empty", "socket(2), recv(2)") {
    int fd = (int)CHECK_OK(socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0));
    struct sockaddr_in a = local4(0);
    bind4(fd, a);
    char c;
    CHECK_ERR(recv(fd, &c, 1, 0), EAGAIN);
}

TEST(lowest_fd, "socket() returns the lowest free descriptor", "socket(2), open(2)") {
    int a = tcp4(), b = udp4();
    close(a);
    int c = udp4();
    CHECK_EQ(c, a);
    CHECK(b != c);
}

TEST(emfile, "socket() fails EMFILE at RLIMIT_NOFILE", "socket(2) ERRORS") {
    int top = tcp4();
    struct rlimit rl = {(rlim_t)top + 1, (rlim_t)top + 1};
    CHECK_OK(setrlimit(RLIMIT_NOFILE, &rl));
    CHECK_ERR(socket(AF_INET, SOCK_STREAM, 0), EMFILE);
    close(top);
    int again = tcp4();
    CHECK_EQ(again, top);
}

TEST(is_socket_fstat, "fstat on a socket reports S_IFSOCK", "socket(7), stat(2)") {
    struct stat st;
    int fd = tcp4();
    CHECK_OK(fstat(fd, &st));
    CHECK(S_ISSOCK(st.st_mode));
}

TEST(proc_fd_link, "/proc/self/fd/N of a socket reads socket:[inode]", "proc(5)") {
    int fd = udp4();
    char path[64], link[64] = "";
    struct stat st;
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    CHECK_OK(readlink(path, link, sizeof link - 1));
    CHECK_OK(fstat(fd, &st));
    char want[64];
    snprintf(want, sizeof want, "socket:[%lu]", (unsigned long)st.st_ino);
    if (strcmp(link, want)) FAIL("link %s, expected %s", link, want);
}

TEST(close_twice, "close() of a socket succeeds once, then EBADF", "close(2)") {
    int fd = tcp4();
    CHECK_OK(close(fd));
    CHECK_ERR(close(fd), EBADF);
}

TEST(fresh_getsockname4, "a new AF_INET socket's name is 0.0.0.0:0, length 16", "getsockname(2)") {
    int fd = tcp4();
    CHECK_SIN(sockname4(fd), "0.0.0.0", 0);
}

TEST(fresh_getsockname6, "a new AF_INET6 socket's name is [::]:0, length 28", "getsockname(2), ipv6(7)") {
    int fd = udp6();
    struct sockaddr_in6 a;
    socklen_t l = sizeof a;
    CHECK_OK(getsockname(fd, SA(&a), &l));
    CHECK_EQ(l, sizeof a);
    CHECK_EQ(a.sin6_family, AF_INET6);
    CHECK(IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr));
    CHECK_EQ(a.sin6_port, 0);
}

TEST(fresh_getpeername, "a new socket has no peer: getpeername fails ENOTCONN", "getpeername(2) ERRORS") {
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    int fd = tcp4();
    CHECK_ERR(getpeername(fd, SA(&a), &l), ENOTCONN);
    int u = udp4();
    CHECK_ERR(getpeername(u, SA(&a), &l), ENOTCONN);
}

TEST(getsockname_short_len, "getsockname with a short buffer truncates and returns the full length", "getsockname(2)") {
    int fd = tcp4();
    bind4(fd, local4(0));
    struct sockaddr_in a;
    memset(&a, 0xAA, sizeof a);
    socklen_t l = 4;
    CHECK_OK(getsockname(fd, SA(&a), &l));
    CHECK_EQ(l, sizeof(struct sockaddr_in));
    CHECK_EQ(a.sin_family, AF_INET);
    CHECK_EQ(((unsigned char *)&a)[4], 0xAA); /* nothing past 4 bytes written */
}

TEST(getsockname_large_len, "getsockname with a large buffer sets the length to 16", "getsockname(2)") {
    int fd = udp4();
    struct sockaddr_storage ss;
    socklen_t l = sizeof ss;
    CHECK_OK(getsockname(fd, SA(&ss), &l));
    CHECK_EQ(l, sizeof(struct sockaddr_in));
}

TEST(getsockname_notsock, "getsockname on a pipe fails ENOTSOCK, on a bad fd EBADF", "getsockname(2) ERRORS") {
    int p[2];
    CHECK_OK(pipe(p));
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    CHECK_ERR(getsockname(p[0], SA(&a), &l), ENOTSOCK);
    CHECK_ERR(getsockname(999, SA(&a), &l), EBADF);
}

TEST(fresh_tcp_read_enotconn, "read on an unconnected TCP socket fails ENOTCONN", "recv(2) ERRORS, tcp(7)") {
    int fd = tcp4();
    char c;
    CHECK_ERR(read(fd, &c, 1), ENOTCONN);
    CHECK_ERR(recv(fd, &c, 1, MSG_DONTWAIT), ENOTCONN);
}

TEST(fresh_tcp_send_epipe, "send on an unconnected TCP socket fails EPIPE", "send(2) ERRORS, tcp(7)") {
    int fd = tcp4();
    CHECK_ERR(send(fd, "x", 1, MSG_NOSIGNAL), EPIPE);
}

TEST(fresh_tcp_write_sigpipe, "write on an unconnected TCP socket raises SIGPIPE", "send(2) ERRORS") {
    int fd = tcp4();
    pid_t pid = (pid_t)CHECK_OK(fork());
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        (void)write(fd, "x", 1);
        _exit(0);
    }
    int st;
    CHECK_OK(waitpid(pid, &st, 0));
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGPIPE) FAIL("child status 0x%x, expected death by SIGPIPE", st);
}

TEST(fresh_udp_send_edestaddrreq, "send on an unconnected UDP socket fails EDESTADDRREQ", "send(2) ERRORS") {
    int fd = udp4();
    CHECK_ERR(send(fd, "x", 1, 0), EDESTADDRREQ);
}

TEST(fresh_udp_recv_blocks_nonblock, "recv MSG_DONTWAIT on a new UDP socket fails EAGAIN", "recv(2) ERRORS") {
    int fd = udp4();
    char c;
    CHECK_ERR(recv(fd, &c, 1, MSG_DONTWAIT), EAGAIN);
}

TEST(unix_stream, "AF_UNIX sockets are the kernel's: SO_DOMAIN AF_UNIX", "unix(7)") {
    int fd = (int)CHECK_OK(socket(AF_UNIX, SOCK_STREAM, 0));
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_DOMAIN), AF_UNIX);
    CHECK_EQ(geti(fd, SOL_SOCKET, SO_PROTOCOL), 0);
}

TEST(socketpair_stream, "socketpair(AF_UNIX, SOCK_STREAM) carries data both ways", "socketpair(2)") {
    int sv[2];
    char buf[8];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    ps_write_all(sv[0], "ping", 4);
    ps_read_exact(sv[1], buf, 4);
    CHECK(!memcmp(buf, "ping", 4));
    ps_write_all(sv[1], "pong", 4);
    ps_read_exact(sv[0], buf, 4);
    CHECK(!memcmp(buf, "pong", 4));
}

TEST(socketpair_dgram, "socketpair(AF_UNIX, SOCK_DGRAM) keeps message boundaries", "socketpair(2), unix(7)") {
    int sv[2];
    char buf[16];
    CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    CHECK_EQ(send(sv[0], "ab", 2, 0), 2);
    CHECK_EQ(send(sv[0], "cde", 3, 0), 3);
    CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 2);
    CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 3);
}

TEST(socketpair_flags, "socketpair honours SOCK_NONBLOCK|SOCK_CLOEXEC on both ends", "socketpair(2)") {
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    for (int i = 0; i < 2; i++) {
        CHECK(fcntl(sv[i], F_GETFL) & O_NONBLOCK);
        CHECK(fcntl(sv[i], F_GETFD) & FD_CLOEXEC);
    }
    char c;
    CHECK_ERR(read(sv[0], &c, 1), EAGAIN);
}

TEST(socketpair_inet, "socketpair(AF_INET, SOCK_STREAM) fails EOPNOTSUPP", "socketpair(2) ERRORS") {
    int sv[2];
    CHECK_ERR(socketpair(AF_INET, SOCK_STREAM, 0, sv), EOPNOTSUPP);
    CHECK_ERR(socketpair(AF_INET, SOCK_DGRAM, 0, sv), EOPNOTSUPP);
}

TEST(socketpair_inet6, "socketpair(AF_INET6, SOCK_STREAM) fails EOPNOTSUPP", "socketpair(2) ERRORS") {
    int sv[2];
    CHECK_ERR(socketpair(AF_INET6, SOCK_STREAM, 0, sv), EOPNOTSUPP);
}

TEST(many_sockets, "256 sockets open at once get distinct descriptors", "socket(2)") {
    int fds[256];
    for (int i = 0; i < 256; i++) fds[i] = (i & 1) ? udp4() : tcp4();
    for (int i = 1; i < 256; i++) CHECK(fds[i] > fds[i - 1]);
    for (int i = 0; i < 256; i++) CHECK_OK(close(fds[i]));
}
