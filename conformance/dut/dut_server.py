#!/usr/bin/env python3
"""DUT server: the sockets the conformance tests need, on the device under test.

Runs inside the DUT namespace, on the plain kernel (Linux column) or under
LD_PRELOAD=libshunt.so (shunt column). Python 3 standard library only.
It is controlled over stdin/stdout (one JSON object per line each way), a
pipe from the tester's worker process that never crosses the test interface.

Standing services on every address (IPv4 and IPv6, one dual-stack socket each):

  TCP 7   ECHO     echo until EOF, then close
  TCP 9   DISCARD  read until EOF, then close
  TCP 10  HOLD     accept, never read (SO_RCVBUF 2048 set before listen);
                   accepted sockets get ids ("held") for read/close commands
  TCP 11  CLOSE    accept, close at once (FIN)
  TCP 19  SOURCE   accept, send 1 MiB (byte i = i % 251), then close
  UDP 7   ECHO     send every datagram back to its sender
  UDP 9   DISCARD

Commands (reply {"ok": true, ...} or {"ok": false, "error": "..."}):

  {"cmd": "ping"}
  {"cmd": "connect", "addr": A, "port": P, "sport": 0, "send": "hex"}
        non-blocking TCP connect; reply {"id": N}; outcome via "status"
  {"cmd": "status", "id": N, "wait": secs}
        {"state": "connecting"|"connected"|"error", "errno": E}
  {"cmd": "send", "id": N, "data": "hex"} / {"cmd": "close", "id": N}
  {"cmd": "recv", "id": N, "wait": secs} -> {"data": "hex", "errno": E}
  {"cmd": "held"}                          ids of HOLD connections
  {"cmd": "udp", "addr": A, "port": P, "data": "hex", "connect": true,
   "wait": secs, "count": n}
        send from a fresh UDP socket (IP_RECVERR / IPV6_RECVERR on); after
        sending, wait and report errors: {"errors": [{"errno", "origin",
        "type", "code"}], "recv_errno": E}
  {"cmd": "quit"}
"""

import errno
import json
import os
import select
import socket
import struct
import sys
import threading
import time

SOCK_LOCK = threading.Lock()
SOCKS = {}          # id -> socket
STATE = {}          # id -> dict(state, errno)
NEXT_ID = [1]
HELD = []           # ids of HOLD connections


def new_id(s, state):
    with SOCK_LOCK:
        i = NEXT_ID[0]
        NEXT_ID[0] += 1
        SOCKS[i] = s
        STATE[i] = state
    return i


def listener(port, family=socket.AF_INET6, rcvbuf=None):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind(("::", port))
    s.listen(64)
    return s


def serve_forever(lst, handler):
    def loop():
        while True:
            try:
                c, _ = lst.accept()
            except OSError:
                time.sleep(0.05)
                continue
            threading.Thread(target=handler, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()


def h_echo(c):
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
    except OSError:
        pass
    finally:
        c.close()


def h_discard(c):
    try:
        while c.recv(65536):
            pass
    except OSError:
        pass
    finally:
        c.close()


def h_hold(c):
    HELD.append(new_id(c, {"state": "connected", "errno": 0}))


def h_close(c):
    c.close()


PATTERN = bytes(i % 251 for i in range(251 * 64))


def h_source(c):
    try:
        left = 1 << 20
        off = 0
        while left > 0:
            chunk = PATTERN[off % 251:off % 251 + min(left, 8192)]
            n = c.send(chunk)
            off += n
            left -= n
    except OSError:
        pass
    finally:
        c.close()


def udp_service(port, handler):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))

    def loop():
        while True:
            try:
                d, a = s.recvfrom(65536)
            except OSError:
                continue
            if handler == "echo":
                try:
                    s.sendto(d, a)
                except OSError:
                    pass
    threading.Thread(target=loop, daemon=True).start()
    return s


def fam_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def do_connect(req):
    fam = fam_of(req["addr"])
    s = socket.socket(fam, socket.SOCK_STREAM)
    if req.get("sport"):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", req["sport"]))
    for name, val in (req.get("opts") or {}).items():
        lvl, opt = {"rcvbuf": (socket.SOL_SOCKET, socket.SO_RCVBUF),
                    "nodelay": (socket.IPPROTO_TCP, socket.TCP_NODELAY)}[name]
        s.setsockopt(lvl, opt, val)
    s.setblocking(False)
    st = {"state": "connecting", "errno": 0}
    i = new_id(s, st)
    err = s.connect_ex((req["addr"], req["port"]))
    if err not in (0, errno.EINPROGRESS):
        st.update(state="error", errno=err)
        return {"id": i}

    def wait():
        while True:
            try:
                _, w, _ = select.select([], [s], [], 60)
            except (OSError, ValueError):
                return
            if w:
                break
        e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if e:
            st.update(state="error", errno=e)
        else:
            st.update(state="connected")
            if req.get("send"):
                try:
                    s.setblocking(True)
                    s.sendall(bytes.fromhex(req["send"]))
                except OSError as ex:
                    st.update(state="error", errno=ex.errno or 0)
    threading.Thread(target=wait, daemon=True).start()
    return {"id": i}


def do_status(req):
    st = STATE[req["id"]]
    end = time.monotonic() + float(req.get("wait", 0))
    while st["state"] == "connecting" and time.monotonic() < end:
        time.sleep(0.01)
    return dict(st)


def do_recv(req):
    s = SOCKS[req["id"]]
    r, _, _ = select.select([s], [], [], float(req.get("wait", 0)))
    if not r:
        return {"data": "", "errno": errno.EAGAIN}
    try:
        d = s.recv(int(req.get("max", 65536)), socket.MSG_DONTWAIT)
        return {"data": d.hex(), "errno": 0, "eof": not d}
    except OSError as e:
        return {"data": "", "errno": e.errno}


def do_send(req):
    s = SOCKS[req["id"]]
    s.setblocking(True)
    s.settimeout(float(req.get("wait", 2)))
    data = bytes.fromhex(req.get("data", "")) if "data" in req else b"x" * int(req.get("n", 0))
    try:
        s.sendall(data)
        return {"errno": 0}
    except OSError as e:
        return {"errno": e.errno or errno.ETIMEDOUT}


def do_close(req):
    s = SOCKS[req["id"]]
    if req.get("linger0"):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if req.get("how") is not None:
        s.shutdown(req["how"])
    else:
        s.close()
    return {}


IP_RECVERR, IPV6_RECVERR = 11, 25


def do_udp(req):
    fam = fam_of(req["addr"])
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if fam == socket.AF_INET:
        s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    else:
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
    dst = (req["addr"], req["port"])
    if req.get("connect", True):
        s.connect(dst)
    data = bytes.fromhex(req.get("data", ""))
    send_errno = 0
    for _ in range(int(req.get("count", 1))):
        try:
            if req.get("connect", True):
                s.send(data)
            else:
                s.sendto(data, dst)
        except OSError as e:
            send_errno = e.errno
    errors = []
    end = time.monotonic() + float(req.get("wait", 1))
    while time.monotonic() < end:
        r, _, x = select.select([s], [], [s], max(0.0, end - time.monotonic()))
        if not r and not x:
            break
        try:
            _, anc, _, _ = s.recvmsg(2048, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except BlockingIOError:
            # Readable but no queued error: a datagram; drop it.
            try:
                s.recv(65536, socket.MSG_DONTWAIT)
            except OSError:
                pass
            continue
        except OSError:
            break
        for lvl, typ, d in anc:
            if len(d) >= 16:
                ee_errno, origin, etype, code = struct.unpack("IBBB", d[:7])
                errors.append({"errno": ee_errno, "origin": origin, "type": etype, "code": code})
        if errors and not req.get("all"):
            break
    recv_errno = 0
    try:
        s.recv(65536, socket.MSG_DONTWAIT)
    except OSError as e:
        recv_errno = e.errno
    s.close()
    return {"errors": errors, "recv_errno": recv_errno, "send_errno": send_errno}


COMMANDS = {
    "ping": lambda r: {},
    "connect": do_connect,
    "status": do_status,
    "recv": do_recv,
    "send": do_send,
    "close": do_close,
    "held": lambda r: {"ids": list(HELD)},
    "udp": do_udp,
}


def main():
    keep = []
    keep.append(listener(7))
    serve_forever(keep[-1], h_echo)
    keep.append(listener(9))
    serve_forever(keep[-1], h_discard)
    keep.append(listener(10, rcvbuf=2048))
    serve_forever(keep[-1], h_hold)
    keep.append(listener(11))
    serve_forever(keep[-1], h_close)
    keep.append(listener(19))
    serve_forever(keep[-1], h_source)
    keep.append(udp_service(7, "echo"))
    keep.append(udp_service(9, "discard"))
    out = sys.stdout
    out.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            if req.get("cmd") == "quit":
                break
            rep = COMMANDS[req["cmd"]](req)
            rep["ok"] = True
        except Exception as e:  # noqa: BLE001 - report every error to the tester
            rep = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(rep) + "\n")
        out.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
