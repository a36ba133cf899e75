/* UDP packets per second, for scripts/bench_apps.sh.
 *
 *   udp_pps recv ADDR PORT SECONDS [READY]
 *                     bind ADDR:PORT (then create the file READY, if
 *                     given), count the datagrams that arrive; stop 0.5 s
 *                     after the last one, or SECONDS after binding;
 *                     prints "<n> <pps>", pps over the time from the
 *                     first datagram to the last
 *   udp_pps send ADDR PORT SECONDS SIZE [MAX]
 *                     send SIZE-byte datagrams to ADDR:PORT with plain
 *                     blocking send(2), one per call, for SECONDS or MAX
 *                     datagrams, whichever comes first; prints
 *                     "<sent> <pps>" (what send(2) took, not what arrived)
 *
 * IPv4 only, one datagram per system call: what an unmodified program does. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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
        fprintf(stderr, "udp_pps: bad address %s\n", ip);
        exit(2);
    }
    return a;
}

static int receiver(struct sockaddr_in a, double secs, const char *ready) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    int buf = 4 << 20;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a)) {
        perror("udp_pps recv");
        return 1;
    }
    /* As large as the sender's bursts need (capped by rmem_max). */
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    if (ready) {
        int f = open(ready, O_CREAT | O_WRONLY, 0644);
        if (f >= 0)
            close(f);
    }
    long n = 0;
    double end = now() + secs, first = 0, last = 0;
    char b[2048];
    for (;;) {
        double t = now();
        if (t >= end || (n > 0 && t - last > 0.5))
            break;
        struct pollfd p = {.fd = s, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        /* Everything queued, then poll again. */
        while (recv(s, b, sizeof b, MSG_DONTWAIT) >= 0) {
            if (n++ == 0)
                first = now();
        }
        if (n > 0)
            last = now();
    }
    double span = last - first;
    printf("%ld %.0f\n", n, n > 1 && span > 0 ? (n - 1) / span : 0.0);
    return n > 0 ? 0 : 1;
}

static int sender(struct sockaddr_in a, double secs, int size, long max) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a)) {
        perror("udp_pps send");
        return 1;
    }
    char b[2048];
    memset(b, 'u', sizeof b);
    if (size < 1 || size > (int)sizeof b)
        size = 64;
    long n = 0, failed = 0;
    double start = now(), end = start + secs;
    while (n < max) {
        /* The clock every 256 datagrams: a call per datagram is the load. */
        if ((n & 255) == 0 && now() >= end)
            break;
        if (send(s, b, size, 0) == size)
            n++;
        else if (errno != ENOBUFS && errno != EAGAIN && errno != ECONNREFUSED) {
            perror("udp_pps send");
            return 1;
        } else if ((++failed & 255) == 0 && now() >= end)
            break;
    }
    double t = now() - start;
    printf("%ld %.0f\n", n, n / t);
    return n > 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: udp_pps recv ADDR PORT SECONDS [READY] | send ADDR PORT SECONDS SIZE [MAX]\n");
        return 2;
    }
    struct sockaddr_in a = addr_of(argv[2], argv[3]);
    double secs = atof(argv[4]);
    if (strcmp(argv[1], "recv") == 0)
        return receiver(a, secs, argc > 5 ? argv[5] : NULL);
    if (strcmp(argv[1], "send") == 0 && argc >= 6)
        return sender(a, secs, atoi(argv[5]), argc > 6 ? atol(argv[6]) : 1L << 40);
    fprintf(stderr, "udp_pps: bad arguments\n");
    return 2;
}
