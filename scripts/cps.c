/* Connections per second, for scripts/bench_apps.sh.
 *
 *   cps server ADDR PORT SECONDS   accept, read a byte, echo it, close
 *                                  (the server closes first, so TIME_WAIT
 *                                  stays on its side and the client never
 *                                  runs out of ports); exits after SECONDS
 *   cps client ADDR PORT SECONDS [MAX]
 *                                  connect, send a byte, read it back,
 *                                  wait for the server's FIN, close, in a
 *                                  loop for SECONDS or MAX connections,
 *                                  whichever comes first; prints
 *                                  "<n> <conn/s>"
 *
 * IPv4 only, plain blocking calls: what an unmodified program does. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static struct sockaddr_in addr_of(const char *ip, const char *port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(port));
    if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
        fprintf(stderr, "cps: bad address %s\n", ip);
        exit(2);
    }
    return a;
}

static int server(struct sockaddr_in a, double secs) {
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1024)) {
        perror("cps server");
        return 1;
    }
    double end = now() + secs;
    for (;;) {
        double left = end - now();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = l, .events = POLLIN};
        if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
            continue;
        int c = accept(l, NULL, NULL);
        if (c < 0)
            continue;
        char b;
        struct pollfd q = {.fd = c, .events = POLLIN};
        /* A client that never sends costs at most a second. */
        if (poll(&q, 1, 1000) == 1 && read(c, &b, 1) == 1)
            (void)!write(c, &b, 1);
        close(c);
    }
}

static int client(struct sockaddr_in a, double secs, long max) {
    long n = 0, failed = 0;
    double start = now(), end = start + secs;
    while (now() < end && n < max) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        char b = 'x';
        if (s < 0) {
            perror("cps client: socket");
            return 1;
        }
        if (connect(s, (struct sockaddr *)&a, sizeof a) == 0 && write(s, &b, 1) == 1 &&
            read(s, &b, 1) == 1 && read(s, &b, 1) == 0)
            n++;
        else if (++failed > 100) {
            fprintf(stderr, "cps client: %ld connections failed (last: %s) after %ld succeeded\n", failed,
                    strerror(errno), n);
            return 1;
        }
        close(s);
    }
    double t = now() - start;
    printf("%ld %.0f\n", n, n / t);
    return n > 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: cps server|client ADDR PORT SECONDS [MAX]\n");
        return 2;
    }
    struct sockaddr_in a = addr_of(argv[2], argv[3]);
    double secs = atof(argv[4]);
    if (strcmp(argv[1], "server") == 0)
        return server(a, secs);
    if (strcmp(argv[1], "client") == 0)
        return client(a, secs, argc == 6 ? atol(argv[5]) : 1L << 40);
    fprintf(stderr, "cps: unknown mode %s\n", argv[1]);
    return 2;
}
