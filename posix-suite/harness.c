/* posix-suite harness: registry, fork-per-test runner, helpers. */
#include "harness.h"

#include <stdarg.h>

struct ps_test { const char *name, *desc, *ref; ps_fn fn; int timeout_s; };
static struct ps_test tests[512];
static int ntests;

void ps_register(const char *name, const char *desc, const char *ref, ps_fn fn, int timeout_s) {
    if (ntests == (int)(sizeof tests / sizeof tests[0])) {
        fprintf(stderr, "too many tests\n");
        exit(2);
    }
    tests[ntests++] = (struct ps_test){name, desc, ref, fn, timeout_s};
}

void ps_fail(const char *file, int line, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *base = strrchr(file, '/');
    dprintf(3, "%s:%d: %s", base ? base + 1 : file, line, msg);
    _exit(1);
}

static const char *env_or(const char *k, const char *d) {
    const char *v = getenv(k);
    return v && *v ? v : d;
}
const char *ps_local4(void) { return env_or("PS_LOCAL4", "192.0.2.1"); }
const char *ps_peer4(void) { return env_or("PS_PEER4", "192.0.2.2"); }
const char *ps_local6(void) { return env_or("PS_LOCAL6", "2001:db8::1"); }
const char *ps_peer6(void) { return env_or("PS_PEER6", "2001:db8::2"); }

struct sockaddr_in ps_sin(const char *ip, uint16_t port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) FAIL("bad IPv4 address %s", ip);
    return a;
}
struct sockaddr_in6 ps_sin6(const char *ip, uint16_t port) {
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    if (inet_pton(AF_INET6, ip, &a.sin6_addr) != 1) FAIL("bad IPv6 address %s", ip);
    return a;
}

int ps_tcp_connect4(const char *ip, uint16_t port) {
    int fd = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in a = ps_sin(ip, port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        FAIL("connect %s:%u: %s", ip, port, strerrorname_np(errno));
    return fd;
}
int ps_tcp_connect6(const char *ip, uint16_t port) {
    int fd = CHECK_OK(socket(AF_INET6, SOCK_STREAM, 0));
    struct sockaddr_in6 a = ps_sin6(ip, port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        FAIL("connect [%s]:%u: %s", ip, port, strerrorname_np(errno));
    return fd;
}
int ps_tcp_listen4(const char *ip, uint16_t port, int backlog) {
    int fd = CHECK_OK(socket(AF_INET, SOCK_STREAM, 0));
    int one = 1;
    CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    struct sockaddr_in a = ps_sin(ip, port);
    CHECK_OK(bind(fd, (struct sockaddr *)&a, sizeof a));
    CHECK_OK(listen(fd, backlog));
    return fd;
}
uint16_t ps_local_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    CHECK_OK(getsockname(fd, (struct sockaddr *)&ss, &len));
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}
void ps_write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) FAIL("write: %s", n ? strerrorname_np(errno) : "returned 0");
        p += n;
        len -= (size_t)n;
    }
}
void ps_read_exact(int fd, void *buf, size_t len) {
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) FAIL("read: %s after %zu of %zu bytes", strerrorname_np(errno), got, len);
        if (n == 0) FAIL("read: EOF after %zu of %zu bytes", got, len);
        got += (size_t)n;
    }
}
int ps_callback(int v6, uint16_t port, int count) {
    int fd = v6 ? ps_tcp_connect6(ps_peer6(), PORT_CALLBACK) : ps_tcp_connect4(ps_peer4(), PORT_CALLBACK);
    char line[64];
    int n = snprintf(line, sizeof line, "CONNECT %u %d\n", port, count);
    ps_write_all(fd, line, (size_t)n);
    return fd;
}
long ps_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}
void ps_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

/* Run one test in a child; its reason for failing comes back on fd 3. */
static int run_one(const struct ps_test *t) {
    int pfd[2];
    if (pipe(pfd) < 0) { perror("pipe"); exit(2); }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(2); }
    if (pid == 0) {
        close(pfd[0]);
        if (pfd[1] != 3) { dup2(pfd[1], 3); close(pfd[1]); }
        setpgid(0, 0);
        alarm((unsigned)t->timeout_s);
        t->fn();
        _exit(0);
    }
    close(pfd[1]);
    /* Wait for the test first, then read its reason without blocking: a
     * process the test forked may still hold the pipe open (the reason is
     * far smaller than a pipe's buffer, so the test never blocks on it). */
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    kill(-pid, SIGKILL); /* whatever the test forked */
    char reason[600] = "";
    size_t got = 0;
    ssize_t n;
    fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    while (got < sizeof reason - 1 &&
           ((n = read(pfd[0], reason + got, sizeof reason - 1 - got)) > 0 ||
            (n < 0 && errno == EINTR)))
        if (n > 0) got += (size_t)n;
    reason[got] = 0;
    close(pfd[0]);
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ok) {
        printf("PASS %s\n", t->name);
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        printf("FAIL %s: %s%s\n", t->name, sig == SIGALRM ? "timed out" : strsignal(sig),
               got ? "" : "");
    } else {
        printf("FAIL %s: %s\n", t->name, got ? reason : "exited non-zero");
    }
    fflush(stdout);
    return ok;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_DFL);
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < ntests; i++)
            printf("%s\t%s\t%s\n", tests[i].name, tests[i].desc, tests[i].ref);
        return 0;
    }
    int failed = 0, ran = 0;
    for (int i = 0; i < ntests; i++) {
        int want = argc == 1;
        for (int a = 1; a < argc && !want; a++) want = strcmp(argv[a], tests[i].name) == 0;
        if (!want) continue;
        ran++;
        failed += !run_one(&tests[i]);
    }
    if (argc > 1 && ran != argc - 1) {
        fprintf(stderr, "unknown test name given\n");
        return 2;
    }
    return failed ? 1 : 0;
}
