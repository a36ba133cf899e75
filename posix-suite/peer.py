#!/usr/bin/env python3
"""posix-suite peer: the services that tests talk to, run on the kernel in
the peer namespace (run.py starts it there). Python 3.11 stdlib only.

Every service listens on each address given (default: PS_PEER4 and PS_PEER6
from the environment, else 192.0.2.2 and 2001:db8::2):

  7001 ECHO       TCP and UDP: echo everything back
  7002 DISCARD    TCP: read and drop until EOF, then close
  7003 RESET      TCP: accept, then close with SO_LINGER {1,0} (RST)
  7004 SOURCE     TCP: send 1 MiB (byte i = i % 251), then close
  7005 HOLD       TCP: accept, never read, close when the client closes
  7006 COUNT      TCP: read until EOF, reply "bytes=N\\n", close
  7009 CALLBACK   TCP: line "CONNECT <port> <count>\\n": open <count>
                  connections back to the client's address at <port>, one
                  after the other; connection i sends "hello <i>\\n", then
                  echoes until the client closes it; all are closed when the
                  control connection closes
  7010 BLACKHOLE  TCP: SYNs silently dropped. A listener with backlog 0
                  whose one-slot accept queue the peer fills itself and
                  never accepts: Linux drops every further SYN.
  7999            nothing (RST for TCP, ICMP port unreachable for UDP)

Prints "ready" once every listener is up (and the black hole is verified),
exits when stdin closes or on SIGTERM/SIGINT. A client's misbehaviour never
kills it: every connection runs in its own thread, errors end that thread.
"""

import os
import select
import signal
import socket
import struct
import sys
import threading
import time

PORT_ECHO = 7001
PORT_DISCARD = 7002
PORT_RESET = 7003
PORT_SOURCE = 7004
PORT_HOLD = 7005
PORT_COUNT = 7006
PORT_CALLBACK = 7009
PORT_BLACKHOLE = 7010
SOURCE_BYTES = 1 << 20

SOURCE_DATA = bytes(i % 251 for i in range(SOURCE_BYTES))

_keep = []  # sockets that must stay open for the life of the process


def log(msg):
    print(f"peer: {msg}", file=sys.stderr, flush=True)


def spawn(fn, *args):
    def guarded():
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - a client error ends one thread only
            if not isinstance(e, (OSError, ValueError)):
                log(f"{fn.__name__}: {e!r}")
    t = threading.Thread(target=guarded, daemon=True)
    t.start()
    return t


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def tcp_listener(addr, port, backlog=128):
    fam = family_of(addr)
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port))
    s.listen(backlog)
    return s


def close_quietly(s):
    try:
        s.close()
    except OSError:
        pass


def serve_tcp(lsock, handler):
    """Accept forever; one thread per connection."""
    while True:
        try:
            c, _ = lsock.accept()
        except OSError:
            time.sleep(0.01)  # EMFILE and friends: never spin, never die
            continue
        spawn(run_conn, handler, c)


def run_conn(handler, c):
    try:
        handler(c)
    finally:
        close_quietly(c)


def h_echo(c):
    while True:
        data = c.recv(65536)
        if not data:
            return
        c.sendall(data)


def h_discard(c):
    while c.recv(65536):
        pass


def h_reset(c):
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


def h_source(c):
    c.sendall(SOURCE_DATA)


def h_hold(c):
    # Never read; wait for the client's FIN (POLLRDHUP is raised even with
    # unread data queued) or its RST (POLLERR/POLLHUP).
    p = select.poll()
    p.register(c, select.POLLRDHUP | select.POLLERR | select.POLLHUP)
    while True:
        for _, ev in p.poll():
            if ev & (select.POLLRDHUP | select.POLLERR | select.POLLHUP):
                return


def h_count(c):
    n = 0
    while True:
        data = c.recv(65536)
        if not data:
            break
        n += len(data)
    c.sendall(f"bytes={n}\n".encode())


def h_callback(c):
    line = b""
    while not line.endswith(b"\n") and len(line) < 256:
        data = c.recv(256 - len(line))
        if not data:
            return
        line += data
    parts = line.decode(errors="replace").split()
    if len(parts) != 3 or parts[0] != "CONNECT":
        c.sendall(b"ERR bad request\n")
        return
    port, count = int(parts[1]), int(parts[2])
    if not (0 < port < 65536 and 0 <= count <= 1024):
        c.sendall(b"ERR bad request\n")
        return
    host = c.getpeername()[0]
    fam = c.family
    done = threading.Event()
    conns = []
    lock = threading.Lock()

    def connector():
        for i in range(count):
            if done.is_set():
                return
            s = socket.socket(fam, socket.SOCK_STREAM)
            with lock:
                if done.is_set():
                    close_quietly(s)
                    return
                conns.append(s)
            try:
                s.settimeout(10)
                s.connect((host, port))
                s.settimeout(None)
                s.sendall(f"hello {i}\n".encode())
            except OSError:
                continue
            spawn(run_conn, h_echo, s)  # echo; close at the client's EOF

    spawn(connector)
    # The control connection: anything more is read and dropped, EOF or an
    # error ends the callback connections.
    try:
        while c.recv(4096):
            pass
    finally:
        with lock:
            done.set()
            for s in conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                close_quietly(s)


def serve_udp_echo(s):
    while True:
        try:
            data, src = s.recvfrom(65536)
            s.sendto(data, src)
        except OSError:
            continue


def blackhole(addr):
    """A listener whose accept queue is full: every SYN is dropped."""
    fam = family_of(addr)
    lsock = tcp_listener(addr, PORT_BLACKHOLE, backlog=0)
    _keep.append(lsock)
    # Fill the queue: with backlog 0 Linux queues one connection (the SYN
    # is answered with a cookie), and drops every SYN after it.
    f = socket.socket(fam, socket.SOCK_STREAM)
    f.settimeout(2)
    filled = 0
    try:
        f.connect((addr, PORT_BLACKHOLE))
        _keep.append(f)
        filled = 1
    except OSError:
        close_quietly(f)
    # Verify: a non-blocking connect must stay pending (its SYN dropped).
    v = socket.socket(fam, socket.SOCK_STREAM)
    v.setblocking(False)
    err = v.connect_ex((addr, PORT_BLACKHOLE))
    r = select.select([], [v], [], 0.5)[1]
    close_quietly(v)
    if filled == 0 or err not in (0, 115) or r:  # 115 = EINPROGRESS
        raise RuntimeError(f"black hole on {addr}:{PORT_BLACKHOLE} does not drop SYNs "
                           f"(filled={filled}, err={err}, completed={bool(r)})")


def main():
    addrs = sys.argv[1:] or [os.environ.get("PS_PEER4", "192.0.2.2"),
                             os.environ.get("PS_PEER6", "2001:db8::2")]

    def on_signal(signum, frame):
        os._exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    handlers = {
        PORT_ECHO: h_echo,
        PORT_DISCARD: h_discard,
        PORT_RESET: h_reset,
        PORT_SOURCE: h_source,
        PORT_HOLD: h_hold,
        PORT_COUNT: h_count,
        PORT_CALLBACK: h_callback,
    }
    try:
        for addr in addrs:
            for port, h in handlers.items():
                ls = tcp_listener(addr, port)
                _keep.append(ls)
                spawn(serve_tcp, ls, h)
            u = socket.socket(family_of(addr), socket.SOCK_DGRAM)
            if family_of(addr) == socket.AF_INET6:
                u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            u.bind((addr, PORT_ECHO))
            _keep.append(u)
            spawn(serve_udp_echo, u)
            blackhole(addr)
    except Exception as e:  # noqa: BLE001
        log(f"cannot start: {e}")
        sys.exit(1)

    print("ready", flush=True)
    # Live until stdin closes (run.py holds the other end).
    try:
        while sys.stdin.buffer.read1(4096):
            pass
    except (OSError, ValueError):
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
