/* threads: blocking calls across threads and signals, and sockets across
 * fork/exec. shutdown from another thread, EINTR vs SA_RESTART (signal(7)),
 * children that inherit connections, concurrent senders and receivers. */
#include "../harness.h"

#include <pthread.h>
#include <sys/syscall.h>

/* ---- helpers (static: harness.h is shared) ---- */

static pid_t gettid_(void) { return (pid_t)syscall(SYS_gettid); }

static int echo4(void) { return ps_tcp_connect4(ps_peer4(), PORT_ECHO); }

static void tcp_pair(int *c, int *s) {
    int l = ps_tcp_listen4(ps_local4(), 0, 4);
    *c = ps_tcp_connect4(ps_local4(), ps_local_port(l));
    *s = CHECK_OK(accept(l, NULL, NULL));
    close(l);
}

static short poll1(int fd, short events, int ms) {
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, ms);
    if (n < 0) FAIL("poll: %s", strerrorname_np(errno));
    return n ? p.revents : 0;
}

/* State letter of thread `tid` of this process ('S' = sleeping in the kernel). */
static char task_state(pid_t tid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    int f = open(path, O_RDONLY);
    if (f < 0) return '?';
    ssize_t n = read(f, buf, sizeof buf - 1);
    close(f);
    buf[n > 0 ? n : 0] = 0;
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : '?';
}

/* Wait until thread `tid` has been asleep for three looks in a row. */
static void wait_sleeping(pid_t tid) {
    long end = ps_now_ms() + 3000;
    int streak = 0;
    while (streak < 3) {
        streak = task_state(tid) == 'S' ? streak + 1 : 0;
        if (ps_now_ms() > end) FAIL("thread %d never blocked", tid);
        ps_sleep_ms(5);
    }
}

static volatile sig_atomic_t hits;
static void on_usr1(int s) { (void)s; hits++; }
static void install_usr1(int flags) {
    struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = flags};
    sigemptyset(&sa.sa_mask);
    CHECK_OK(sigaction(SIGUSR1, &sa, NULL));
}

/* A thread that signals the main thread once it blocks, then (optionally)
 * waits for the main thread to block again and runs `after`. */
struct kicker {
    pthread_t target;
    pid_t tid;
    void (*after)(struct kicker *);
    int fd;
    pthread_t self;
};

static void *kicker_main(void *arg) {
    struct kicker *k = arg;
    wait_sleeping(k->tid);
    pthread_kill(k->target, SIGUSR1);
    if (k->after) {
        long end = ps_now_ms() + 3000;
        while (!hits && ps_now_ms() < end) ps_sleep_ms(1);
        ps_sleep_ms(20);
        wait_sleeping(k->tid);
        k->after(k);
    }
    return NULL;
}

static struct kicker *kick_me(void (*after)(struct kicker *), int fd) {
    struct kicker *k = calloc(1, sizeof *k);
    k->target = pthread_self();
    k->tid = gettid_();
    k->after = after;
    k->fd = fd;
    CHECK_EQ(pthread_create(&k->self, NULL, kicker_main, k), 0);
    return k;
}

/* A thread blocked in one call on fd; its result lands in the struct. */
struct blocked {
    int fd;
    int op; /* 0 recv, 1 accept, 2 poll POLLIN|POLLRDHUP, 3 epoll_wait */
    volatile pid_t tid;
    volatile int done;
    long ret;
    int err;
    char buf[64];
    pthread_t th;
};

static void *blocked_main(void *arg) {
    struct blocked *b = arg;
    b->tid = gettid_();
    errno = 0;
    switch (b->op) {
    case 0: b->ret = recv(b->fd, b->buf, sizeof b->buf, 0); break;
    case 1: b->ret = accept(b->fd, NULL, NULL); break;
    case 2: {
        struct pollfd p = {.fd = b->fd, .events = POLLIN | POLLRDHUP};
        b->ret = poll(&p, 1, 5000);
        if (b->ret == 1) b->ret = p.revents;
        break;
    }
    case 3: {
        struct epoll_event ev;
        b->ret = epoll_wait(b->fd, &ev, 1, 5000);
        if (b->ret == 1) b->ret = ev.events;
        break;
    }
    }
    b->err = errno;
    __atomic_store_n(&b->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static struct blocked *start_blocked(int fd, int op) {
    struct blocked *b = calloc(1, sizeof *b);
    b->fd = fd;
    b->op = op;
    CHECK_EQ(pthread_create(&b->th, NULL, blocked_main, b), 0);
    while (!b->tid) ps_sleep_ms(1);
    wait_sleeping(b->tid);
    CHECK_EQ(b->done, 0);
    return b;
}

static void join_blocked(struct blocked *b, int ms) {
    long end = ps_now_ms() + ms;
    while (!__atomic_load_n(&b->done, __ATOMIC_SEQ_CST)) {
        if (ps_now_ms() > end) FAIL("blocked call did not return within %d ms", ms);
        ps_sleep_ms(1);
    }
    pthread_join(b->th, NULL);
}

static void wait_first_done(struct blocked *a, struct blocked *b) {
    long end = ps_now_ms() + 3000;
    while (!__atomic_load_n(&a->done, __ATOMIC_SEQ_CST) && !__atomic_load_n(&b->done, __ATOMIC_SEQ_CST)) {
        if (ps_now_ms() > end) FAIL("neither blocked call returned within 3 s");
        ps_sleep_ms(1);
    }
}

/* ---- shutdown from another thread ---- */

TEST(shutdown_rd_wakes_recv, "shutdown(SHUT_RD) in one thread makes a recv blocked in another return 0", "shutdown(2), recv(2)") {
    int fd = echo4();
    struct blocked *b = start_blocked(fd, 0);
    CHECK_OK(shutdown(fd, SHUT_RD));
    join_blocked(b, 3000);
    CHECK_EQ(b->ret, 0);
}

TEST(shutdown_rdwr_wakes_recv, "shutdown(SHUT_RDWR) in one thread makes a recv blocked in another return 0", "shutdown(2), recv(2)") {
    int fd = echo4();
    struct blocked *b = start_blocked(fd, 0);
    CHECK_OK(shutdown(fd, SHUT_RDWR));
    join_blocked(b, 3000);
    CHECK_EQ(b->ret, 0);
}

TEST(shutdown_wakes_accept, "shutdown(SHUT_RDWR) on a listener makes an accept blocked in another thread fail with EINVAL", "shutdown(2), accept(2)") {
    int l = ps_tcp_listen4(ps_local4(), 0, 4);
    struct blocked *b = start_blocked(l, 1);
    CHECK_OK(shutdown(l, SHUT_RDWR));
    join_blocked(b, 3000);
    CHECK_EQ(b->ret, -1);
    CHECK_EQ(b->err, EINVAL);
}

TEST(shutdown_rd_wakes_accept, "shutdown(SHUT_RD) on a listener also wakes a blocked accept with EINVAL", "shutdown(2), accept(2)") {
    int l = ps_tcp_listen4(ps_local4(), 0, 4);
    struct blocked *b = start_blocked(l, 1);
    CHECK_OK(shutdown(l, SHUT_RD));
    join_blocked(b, 3000);
    CHECK_EQ(b->ret, -1);
    CHECK_EQ(b->err, EINVAL);
}

TEST(shutdown_wakes_poll, "shutdown(SHUT_RD) wakes a poll blocked in another thread with POLLIN|POLLRDHUP", "shutdown(2), poll(2)") {
    int fd = echo4();
    struct blocked *b = start_blocked(fd, 2);
    CHECK_OK(shutdown(fd, SHUT_RD));
    join_blocked(b, 3000);
    CHECK_EQ(b->ret, POLLIN | POLLRDHUP);
}

TEST(shutdown_wakes_epoll_wait, "shutdown(SHUT_RD) wakes an epoll_wait blocked in another thread with EPOLLIN|EPOLLRDHUP", "shutdown(2), epoll(7)") {
    int fd = echo4();
    int ep = CHECK_OK(epoll_create1(0));
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};
    CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
    struct blocked *b = start_blocked(ep, 3);
    CHECK_OK(shutdown(fd, SHUT_RD));
    join_blocked(b, 3000);
    CHECK_EQ(b->ret, EPOLLIN | EPOLLRDHUP);
}

TEST(close_does_not_wake_recv, "close() in another thread does not interrupt a blocked recv: it completes when data arrives", "close(2) NOTES") {
    int c, s;
    tcp_pair(&c, &s);
    struct blocked *b = start_blocked(c, 0);
    CHECK_OK(close(c));
    ps_sleep_ms(100);
    CHECK_EQ(b->done, 0);
    /* Still asleep in recv: three looks in a row, as one look can catch a
       loaded machine's runnable instant of a thread that merely woke. */
    wait_sleeping(b->tid);
    CHECK_EQ(b->done, 0);
    ps_write_all(s, "late", 4);
    join_blocked(b, 3000);
    CHECK_EQ(b->ret, 4);
    CHECK(memcmp(b->buf, "late", 4) == 0);
}

TEST(two_readers_one_byte, "two threads blocked in recv on one socket: one byte wakes exactly one, the next byte the other", "recv(2), tcp(7)") {
    int c, s;
    tcp_pair(&c, &s);
    struct blocked *a = start_blocked(c, 0);
    struct blocked *b = start_blocked(c, 0);
    ps_write_all(s, "1", 1);
    wait_first_done(a, b);
    ps_sleep_ms(100);
    CHECK_EQ(a->done + b->done, 1);
    ps_write_all(s, "2", 1);
    join_blocked(a, 3000);
    join_blocked(b, 3000);
    CHECK_EQ(a->ret, 1);
    CHECK_EQ(b->ret, 1);
    CHECK(a->buf[0] != b->buf[0]);
}

TEST(two_acceptors_one_connection, "two threads blocked in accept on one listener: one connection wakes exactly one", "accept(2)") {
    int l = ps_tcp_listen4(ps_local4(), 0, 4);
    struct blocked *a = start_blocked(l, 1);
    struct blocked *b = start_blocked(l, 1);
    int c1 = ps_tcp_connect4(ps_local4(), ps_local_port(l));
    wait_first_done(a, b);
    ps_sleep_ms(100);
    CHECK_EQ(a->done + b->done, 1);
    int c2 = ps_tcp_connect4(ps_local4(), ps_local_port(l));
    join_blocked(a, 3000);
    join_blocked(b, 3000);
    CHECK(a->ret >= 0 && b->ret >= 0);
    close(c1);
    close(c2);
}

/* ---- signals: EINTR and SA_RESTART ---- */

TEST(eintr_recv, "a handler without SA_RESTART interrupts a blocking recv: -1/EINTR after the handler ran", "signal(7) Interruption of system calls") {
    install_usr1(0);
    int fd = echo4();
    kick_me(NULL, -1);
    char b[8];
    CHECK_ERR(recv(fd, b, sizeof b, 0), EINTR);
    CHECK_EQ(hits, 1);
}

TEST(eintr_accept, "a handler without SA_RESTART interrupts a blocking accept with EINTR", "signal(7), accept(2) EINTR") {
    install_usr1(0);
    int l = ps_tcp_listen4(ps_local4(), 0, 4);
    kick_me(NULL, -1);
    CHECK_ERR(accept(l, NULL, NULL), EINTR);
    CHECK_EQ(hits, 1);
}

TEST(eintr_connect_then_ealready, "a signal interrupts a blocking connect with EINTR; the attempt goes on: a non-blocking retry gets EALREADY", "connect(2) EINTR, EALREADY") {
    install_usr1(0);
    int fd = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in a = ps_sin(ps_peer4(), PORT_BLACKHOLE);
    kick_me(NULL, -1);
    CHECK_ERR(connect(fd, (struct sockaddr *)&a, sizeof a), EINTR);
    CHECK_EQ(hits, 1);
    CHECK_OK(fcntl(fd, F_SETFL, O_NONBLOCK));
    CHECK_ERR(connect(fd, (struct sockaddr *)&a, sizeof a), EALREADY);
}

TEST(eintr_poll, "a handler without SA_RESTART interrupts a blocking poll with EINTR", "signal(7), poll(2) EINTR") {
    install_usr1(0);
    int fd = echo4();
    kick_me(NULL, -1);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK_ERR(poll(&p, 1, 5000), EINTR);
}

TEST(eintr_poll_despite_sa_restart, "poll is never restarted: EINTR even when the handler has SA_RESTART", "signal(7) never restarted") {
    install_usr1(SA_RESTART);
    int fd = echo4();
    kick_me(NULL, -1);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK_ERR(poll(&p, 1, 5000), EINTR);
    CHECK_EQ(hits, 1);
}

TEST(eintr_epoll_wait_despite_sa_restart, "epoll_wait is never restarted: EINTR even with SA_RESTART", "signal(7) never restarted") {
    install_usr1(SA_RESTART);
    int fd = echo4();
    int ep = CHECK_OK(epoll_create1(0));
    struct epoll_event ev = {.events = EPOLLIN};
    CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
    kick_me(NULL, -1);
    CHECK_ERR(epoll_wait(ep, &ev, 1, 5000), EINTR);
    CHECK_EQ(hits, 1);
}

TEST(eintr_select_despite_sa_restart, "select is never restarted: EINTR even with SA_RESTART", "signal(7) never restarted") {
    install_usr1(SA_RESTART);
    int fd = echo4();
    kick_me(NULL, -1);
    fd_set r;
    FD_ZERO(&r);
    FD_SET(fd, &r);
    struct timeval tv = {5, 0};
    CHECK_ERR(select(fd + 1, &r, NULL, NULL, &tv), EINTR);
    CHECK_EQ(hits, 1);
}

static void send_x(struct kicker *k) { ps_write_all(k->fd, "x", 1); }

TEST(sa_restart_recv_resumes, "with SA_RESTART a blocking recv survives the handler and returns the data that comes later", "signal(7) SA_RESTART") {
    install_usr1(SA_RESTART);
    int fd = echo4();
    kick_me(send_x, fd);
    char b[8];
    CHECK_EQ(recv(fd, b, sizeof b, 0), 1);
    CHECK_EQ(b[0], 'x');
    CHECK_EQ(hits, 1);
}

static void connect_local(struct kicker *k) {
    int c = ps_tcp_connect4(ps_local4(), ps_local_port(k->fd));
    (void)c; /* stays open until the test ends */
}

TEST(sa_restart_accept_resumes, "with SA_RESTART a blocking accept survives the handler and returns the later connection", "signal(7) SA_RESTART") {
    install_usr1(SA_RESTART);
    int l = ps_tcp_listen4(ps_local4(), 0, 4);
    kick_me(connect_local, l);
    int s = CHECK_OK(accept(l, NULL, NULL));
    CHECK(s >= 0);
    CHECK_EQ(hits, 1);
}

TEST(sa_restart_read_resumes, "with SA_RESTART a blocking read() on a socket resumes too", "signal(7) SA_RESTART") {
    install_usr1(SA_RESTART);
    int fd = echo4();
    kick_me(send_x, fd);
    char b[8];
    CHECK_EQ(read(fd, b, sizeof b), 1);
    CHECK_EQ(hits, 1);
}

TEST(rcvtimeo_eintr_despite_sa_restart, "with SO_RCVTIMEO set, a signal makes recv fail with EINTR even under SA_RESTART (not restarted)", "signal(7), socket(7) SO_RCVTIMEO") {
    install_usr1(SA_RESTART);
    int fd = echo4();
    struct timeval tv = {4, 0};
    CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    kick_me(NULL, -1);
    long t0 = ps_now_ms();
    char b[8];
    CHECK_ERR(recv(fd, b, sizeof b, 0), EINTR);
    CHECK(ps_now_ms() - t0 < 2000);
    CHECK_EQ(hits, 1);
}

TEST(rcvtimeo_accept_eintr_despite_sa_restart, "with SO_RCVTIMEO set on a listener, a signal makes accept fail with EINTR even under SA_RESTART", "signal(7), socket(7) SO_RCVTIMEO") {
    install_usr1(SA_RESTART);
    int l = ps_tcp_listen4(ps_local4(), 0, 4);
    struct timeval tv = {4, 0};
    CHECK_OK(setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    kick_me(NULL, -1);
    CHECK_ERR(accept(l, NULL, NULL), EINTR);
    CHECK_EQ(hits, 1);
}

TEST(rcvtimeo_expires_eagain, "SO_RCVTIMEO of 100 ms with no signal: recv fails with EAGAIN after about 100 ms", "socket(7) SO_RCVTIMEO") {
    int fd = echo4();
    struct timeval tv = {0, 100000};
    CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    long t0 = ps_now_ms();
    char b[8];
    CHECK_ERR(recv(fd, b, sizeof b, 0), EAGAIN);
    long dt = ps_now_ms() - t0;
    if (dt < 90 || dt > 1000) FAIL("recv took %ld ms", dt);
}

/* A blocking socket whose connect to BLACKHOLE is still in progress. */
static int connecting_socket(void) {
    int fd = CHECK_OK(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    struct sockaddr_in a = ps_sin(ps_peer4(), PORT_BLACKHOLE);
    CHECK_ERR(connect(fd, (struct sockaddr *)&a, sizeof a), EINPROGRESS);
    CHECK_OK(fcntl(fd, F_SETFL, 0));
    return fd;
}

TEST(eintr_send_while_connecting, "a blocking send waiting for the connection to establish is interrupted with EINTR", "signal(7), send(2) EINTR") {
    install_usr1(0);
    int fd = connecting_socket();
    kick_me(NULL, -1);
    CHECK_ERR(send(fd, "x", 1, 0), EINTR);
    CHECK_EQ(hits, 1);
}

static void shut_rdwr(struct kicker *k) { shutdown(k->fd, SHUT_RDWR); }

TEST(sa_restart_send_while_connecting, "with SA_RESTART a send waiting for the connection resumes after the handler; shutdown then aborts it with ECONNRESET", "signal(7) SA_RESTART") {
    install_usr1(SA_RESTART);
    signal(SIGPIPE, SIG_IGN);
    int fd = connecting_socket();
    kick_me(shut_rdwr, fd);
    CHECK_ERR(send(fd, "x", 1, 0), ECONNRESET);
    CHECK_EQ(hits, 1);
}

TEST(send_interrupted_partial_count, "a signal during a large blocking send after some bytes moved returns that partial count", "send(2), signal(7)") {
    install_usr1(SA_RESTART);
    int fd = ps_tcp_connect4(ps_peer4(), PORT_HOLD);
    size_t len = 64u << 20;
    char *buf = calloc(1, len);
    kick_me(NULL, -1);
    ssize_t n = send(fd, buf, len, 0);
    if (n <= 0 || (size_t)n >= len) FAIL("send returned %zd (errno %s)", n, strerrorname_np(errno));
    CHECK_EQ(hits, 1);
}

TEST(sndtimeo_send_eintr_despite_sa_restart, "with SO_SNDTIMEO set, a signal makes a blocked send fail with EINTR even under SA_RESTART", "signal(7), socket(7) SO_SNDTIMEO") {
    install_usr1(SA_RESTART);
    int fd = connecting_socket();
    struct timeval tv = {4, 0};
    CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv));
    kick_me(NULL, -1);
    long t0 = ps_now_ms();
    CHECK_ERR(send(fd, "x", 1, 0), EINTR);
    CHECK(ps_now_ms() - t0 < 2000);
    CHECK_EQ(hits, 1);
}

static volatile pthread_t sigpipe_thread;
static void on_pipe(int s) { (void)s; sigpipe_thread = pthread_self(); }
static void *write_shut(void *arg) {
    int fd = *(int *)arg;
    errno = 0;
    long r = write(fd, "x", 1);
    return (void *)(r == -1 && errno == EPIPE ? 1L : 0L);
}

TEST(sigpipe_to_writing_thread, "SIGPIPE is delivered to the thread whose write hit EPIPE", "signal(7), send(2) EPIPE") {
    struct sigaction sa = {.sa_handler = on_pipe};
    sigemptyset(&sa.sa_mask);
    CHECK_OK(sigaction(SIGPIPE, &sa, NULL));
    int fd = echo4();
    CHECK_OK(shutdown(fd, SHUT_WR));
    pthread_t t;
    void *ok;
    CHECK_EQ(pthread_create(&t, NULL, write_shut, &fd), 0);
    CHECK_EQ(pthread_join(t, &ok), 0);
    CHECK(ok == (void *)1L);
    CHECK(pthread_equal(sigpipe_thread, t));
}

/* ---- fork and exec ---- */

static void echo_roundtrip(int fd, const char *msg) {
    size_t n = strlen(msg);
    ps_write_all(fd, msg, n);
    char b[64];
    ps_read_exact(fd, b, n);
    if (memcmp(b, msg, n) != 0) FAIL("echo mismatch");
}

static void wait_child_ok(pid_t pid) {
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

TEST(fork_child_exit_untouched, "a child that exits without touching its copy leaves the parent's connection working", "fork(2), close(2)") {
    int fd = echo4();
    echo_roundtrip(fd, "before");
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    wait_child_ok(pid);
    echo_roundtrip(fd, "after");
    CHECK_EQ(poll1(fd, POLLIN | POLLRDHUP, 50), 0);
}

TEST(fork_child_closes_copy, "a child that closes its copy and exits leaves the parent's connection working", "fork(2), close(2)") {
    int fd = echo4();
    pid_t pid = fork();
    if (pid == 0) { close(fd); _exit(0); }
    wait_child_ok(pid);
    echo_roundtrip(fd, "still here");
}

TEST(fork_child_exit_unread_data, "a child exiting while unread data is queued sends no RST: the parent still reads it and goes on", "fork(2), tcp(7)") {
    int fd = echo4();
    ps_write_all(fd, "queued", 6);
    char b[8];
    CHECK_EQ(recv(fd, b, 6, MSG_PEEK | MSG_WAITALL), 6);
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    wait_child_ok(pid);
    ps_read_exact(fd, b, 6);
    CHECK(memcmp(b, "queued", 6) == 0);
    echo_roundtrip(fd, "more");
}

TEST(fork_child_exit_listener, "a child's exit leaves the parent's listener accepting", "fork(2), accept(2)") {
    int l = ps_tcp_listen4(ps_local4(), 0, 4);
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    wait_child_ok(pid);
    int ctl = ps_callback(0, ps_local_port(l), 1);
    int s = CHECK_OK(accept(l, NULL, NULL));
    char b[8];
    ps_read_exact(s, b, 8);
    CHECK(memcmp(b, "hello 0\n", 8) == 0);
    close(ctl);
}

TEST(fork_child_exit_udp, "a child's exit leaves the parent's connected UDP socket working", "fork(2), udp(7)") {
    int fd = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
    struct sockaddr_in a = ps_sin(ps_peer4(), PORT_ECHO);
    CHECK_OK(connect(fd, (struct sockaddr *)&a, sizeof a));
    pid_t pid = fork();
    if (pid == 0) { close(fd); _exit(0); }
    wait_child_ok(pid);
    CHECK_EQ(send(fd, "u", 1, 0), 1);
    CHECK(poll1(fd, POLLIN, 3000) & POLLIN);
    char b[4];
    CHECK_EQ(recv(fd, b, sizeof b, 0), 1);
}

TEST(fork_child_writes_parent_reads, "a child writing on the inherited socket: the parent reads the echo of the child's bytes", "fork(2)") {
    int fd = echo4();
    pid_t pid = fork();
    if (pid == 0) { ps_write_all(fd, "from child", 10); _exit(0); }
    wait_child_ok(pid);
    char b[16];
    ps_read_exact(fd, b, 10);
    CHECK(memcmp(b, "from child", 10) == 0);
    echo_roundtrip(fd, "parent");
}

TEST(fork_child_shutdown_is_shared, "shutdown(SHUT_WR) in the child acts on the shared socket: the parent gets EPIPE and the peer's EOF", "shutdown(2), fork(2)") {
    signal(SIGPIPE, SIG_IGN);
    int fd = echo4();
    pid_t pid = fork();
    if (pid == 0) { shutdown(fd, SHUT_WR); _exit(0); }
    wait_child_ok(pid);
    CHECK_ERR(send(fd, "x", 1, 0), EPIPE);
    char b[4];
    CHECK_EQ(read(fd, b, sizeof b), 0);
}

TEST(exec_child_leaves_connection, "a child that execs a program which ignores the inherited socket leaves the connection working", "execve(2), fork(2)") {
    int fd = echo4();
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", "exit 0", (char *)NULL);
        _exit(127);
    }
    wait_child_ok(pid);
    echo_roundtrip(fd, "after exec");
}

TEST(exec_inherited_fd_usable, "an exec'd program writes to the inherited socket fd; the parent reads the echo", "execve(2), fcntl(2) FD_CLOEXEC") {
    int fd = echo4();
    pid_t pid = fork();
    if (pid == 0) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "printf exec >&%d", fd);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    wait_child_ok(pid);
    char b[8];
    ps_read_exact(fd, b, 4);
    CHECK(memcmp(b, "exec", 4) == 0);
}

/* ---- concurrency ---- */

struct sender { int fd; int id; size_t bytes; };

static void *sender_main(void *arg) {
    struct sender *s = arg;
    char buf[1000];
    memset(buf, 'A' + s->id, sizeof buf);
    size_t left = s->bytes;
    while (left) {
        size_t n = left < sizeof buf ? left : sizeof buf;
        ssize_t w = send(s->fd, buf, n, 0);
        if (w <= 0) return (void *)1L;
        left -= (size_t)w;
    }
    return NULL;
}

TEST(concurrent_senders_count, "four threads writing 1 MiB each on one socket: COUNT sees exactly 4 MiB", "send(2), pthreads(7)") {
    int fd = ps_tcp_connect4(ps_peer4(), PORT_COUNT);
    pthread_t t[4];
    struct sender s[4];
    for (int i = 0; i < 4; i++) {
        s[i] = (struct sender){fd, i, 1u << 20};
        CHECK_EQ(pthread_create(&t[i], NULL, sender_main, &s[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        CHECK(r == NULL);
    }
    CHECK_OK(shutdown(fd, SHUT_WR));
    char line[64] = "";
    size_t got = 0;
    ssize_t n;
    while ((n = read(fd, line + got, sizeof line - 1 - got)) > 0) got += (size_t)n;
    CHECK(strcmp(line, "bytes=4194304\n") == 0);
}

TEST(concurrent_senders_echo_bytes, "four threads sending distinct bytes through ECHO while the main thread reads: every byte comes back once", "send(2), pthreads(7)") {
    int fd = echo4();
    pthread_t t[4];
    struct sender s[4];
    const size_t each = 256 * 1024;
    for (int i = 0; i < 4; i++) {
        s[i] = (struct sender){fd, i, each};
        CHECK_EQ(pthread_create(&t[i], NULL, sender_main, &s[i]), 0);
    }
    size_t count[4] = {0}, total = 0;
    static char b[65536];
    while (total < 4 * each) {
        if (!(poll1(fd, POLLIN, 5000) & POLLIN)) FAIL("stalled after %zu bytes", total);
        ssize_t n = recv(fd, b, sizeof b, 0);
        if (n <= 0) FAIL("recv %zd after %zu bytes", n, total);
        for (ssize_t i = 0; i < n; i++) {
            int k = b[i] - 'A';
            if (k < 0 || k > 3) FAIL("foreign byte %d", b[i]);
            count[k]++;
        }
        total += (size_t)n;
    }
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        CHECK(r == NULL);
        CHECK_EQ(count[i], each);
    }
}

struct usender { int fd; int id; };
static void *usender_main(void *arg) {
    struct usender *u = arg;
    for (int i = 0; i < 64; i++) {
        int msg[2] = {u->id, i};
        if (send(u->fd, msg, sizeof msg, 0) != sizeof msg) return (void *)1L;
    }
    return NULL;
}

TEST(concurrent_udp_senders, "four threads sending 64 datagrams each on one UDP socket: each datagram arrives once, whole", "udp(7), pthreads(7)") {
    int rx = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
    struct sockaddr_in a = ps_sin(ps_local4(), 0);
    CHECK_OK(bind(rx, (struct sockaddr *)&a, sizeof a));
    int big = 1 << 20;
    CHECK_OK(setsockopt(rx, SOL_SOCKET, SO_RCVBUF, &big, sizeof big));
    int tx = CHECK_OK(socket(AF_INET, SOCK_DGRAM, 0));
    struct sockaddr_in to = ps_sin(ps_local4(), ps_local_port(rx));
    CHECK_OK(connect(tx, (struct sockaddr *)&to, sizeof to));
    pthread_t t[4];
    struct usender u[4];
    for (int i = 0; i < 4; i++) {
        u[i] = (struct usender){tx, i};
        CHECK_EQ(pthread_create(&t[i], NULL, usender_main, &u[i]), 0);
    }
    static int seen[4][64];
    for (int n = 0; n < 256; n++) {
        if (!(poll1(rx, POLLIN, 3000) & POLLIN)) FAIL("only %d of 256 datagrams", n);
        int msg[3];
        ssize_t r = recv(rx, msg, sizeof msg, 0);
        CHECK_EQ(r, 2 * sizeof(int));
        if (msg[0] < 0 || msg[0] > 3 || msg[1] < 0 || msg[1] > 63) FAIL("bad datagram");
        seen[msg[0]][msg[1]]++;
    }
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        CHECK(r == NULL);
        for (int j = 0; j < 64; j++) CHECK_EQ(seen[i][j], 1);
    }
}

static uint8_t dpat(size_t i) { return (uint8_t)((i * 2654435761u) >> 11); }
struct duplex { int fd; size_t len; };
static void *duplex_writer(void *arg) {
    struct duplex *d = arg;
    static uint8_t buf[32768];
    size_t off = 0;
    while (off < d->len) {
        size_t n = d->len - off < sizeof buf ? d->len - off : sizeof buf;
        for (size_t i = 0; i < n; i++) buf[i] = dpat(off + i);
        ssize_t w = send(d->fd, buf, n, 0);
        if (w <= 0) return (void *)1L;
        off += (size_t)w;
    }
    return NULL;
}

TEST(duplex_threads_echo, "one thread sends 8 MiB through ECHO while another reads it back: full duplex, every byte checked", "tcp(7), pthreads(7)") {
    int fd = echo4();
    struct duplex d = {fd, 8u << 20};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, duplex_writer, &d), 0);
    static uint8_t b[65536];
    size_t got = 0;
    while (got < d.len) {
        ssize_t n = recv(fd, b, sizeof b, 0);
        if (n <= 0) FAIL("recv %zd after %zu bytes", n, got);
        for (ssize_t i = 0; i < n; i++)
            if (b[i] != dpat(got + (size_t)i)) FAIL("byte %zu corrupted", got + (size_t)i);
        got += (size_t)n;
    }
    void *r;
    pthread_join(t, &r);
    CHECK(r == NULL);
}
