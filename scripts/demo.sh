#!/usr/bin/env bash
# make demo: an unmodified curl runs over shunt's userspace stack and
# fetches a file from a kernel web server, and `shunt stat` shows curl's
# stack (counters, sockets); then a file crosses a lossy, delayed
# synthetic network made by `shunt netem`.
set -euo pipefail
cd "$(dirname "$0")/.."
SHUNT=$PWD/target/release/shunt
TAG=shunt-$$-demo
WORK=$(mktemp -d)
cleanup() {
  [ -n "${NETEM_PID:-}" ] && kill -TERM "$NETEM_PID" 2>/dev/null && wait "$NETEM_PID" 2>/dev/null || true
  bash scripts/testbed.sh down "$TAG"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
sha() { sha256sum < "$1" | cut -d' ' -f1; }

echo "== 1. curl over shunt"
bash scripts/testbed.sh pair "$TAG"
# The client side keeps no kernel address: only shunt's stack can talk there.
ip -n "$TAG-a" addr flush dev veth0
head -c $((32 << 20)) /dev/urandom > "$WORK/file.bin"
(cd "$WORK" && exec ip netns exec "$TAG-b" python3 -m http.server 8000 --bind 192.0.2.2 >/dev/null 2>&1) &
disown
for _ in $(seq 50); do ip netns exec "$TAG-b" bash -c 'exec 3<>/dev/tcp/192.0.2.2/8000' 2>/dev/null && break; sleep 0.1; done
echo "   server: python3 -m http.server on the kernel in $TAG-b (192.0.2.2)"
echo "   client: shunt run --iface veth0 --addr 192.0.2.1/24 -- curl ...  in $TAG-a (no kernel address)"
# A second URL curl fetches after the file, from a server that answers
# only when told: while curl waits for it, the demo reads curl's live
# stack with `shunt stat` (the export goes away when curl exits).
cat > "$WORK/gate.py" <<'PY'
import os, socket, sys, time
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("192.0.2.2", 8001))
l.listen(1)
open(sys.argv[1], "w").close()
c, _ = l.accept()
c.recv(4096)
open(sys.argv[2], "w").close()
for _ in range(300):
    if os.path.exists(sys.argv[3]):
        break
    time.sleep(0.05)
c.sendall(b"HTTP/1.0 204 No Content\r\n\r\n")
c.close()
PY
ip netns exec "$TAG-b" python3 "$WORK/gate.py" "$WORK/gate.listening" "$WORK/gate.asked" "$WORK/gate.open" &
for _ in $(seq 100); do [ -e "$WORK/gate.listening" ] && break; sleep 0.05; done
ip netns exec "$TAG-a" "$SHUNT" run --iface veth0 --addr 192.0.2.1/24 -- \
  curl -s -o "$WORK/got.bin" -w '%{http_code} %{size_download} %{speed_download}\n' http://192.0.2.2:8000/file.bin \
  -o /dev/null http://192.0.2.2:8001/done > "$WORK/curl.out" &
CURL=$!
for _ in $(seq 600); do [ -e "$WORK/gate.asked" ] && break; sleep 0.05; done
# The export is rewritten within 100 ms of a change.
sleep 0.3
stat_out=$("$SHUNT" stat "$CURL") || { touch "$WORK/gate.open"; echo "== shunt stat failed"; exit 1; }
touch "$WORK/gate.open"
wait "$CURL"
read -r code bytes speed < "$WORK/curl.out"  # the first line: the file
printf '   HTTP %s, %s bytes, %.0f Mbit/s\n' "$code" "$bytes" "$(echo "$speed * 8 / 1000000" | bc -l)"
echo "   sha256 served   $(sha "$WORK/file.bin")"
echo "   sha256 received $(sha "$WORK/got.bin")"
[ "$code" = 200 ] && [ "$(sha "$WORK/file.bin")" = "$(sha "$WORK/got.bin")" ] || { echo "== MISMATCH"; exit 1; }
echo "   OK: byte-exact"
echo "   shunt stat $CURL (curl's stack after the transfer, while it waits for a second URL):"
sed 's/^/     /' <<< "$stat_out"
bash scripts/testbed.sh down "$TAG"

echo
echo "== 2. a synthetic network: shunt netem"
bash scripts/testbed.sh bridge "$TAG"
echo "   $TAG-a (192.0.2.1) <-> $TAG-m [shunt netem] <-> $TAG-b (192.0.2.2)"
SPEC=(--loss 2% --delay 10ms --jitter 2ms --seed 7)
echo "   shunt netem veth0 veth1 ${SPEC[*]}"
ip netns exec "$TAG-m" "$SHUNT" netem veth0 veth1 "${SPEC[@]}" &
NETEM_PID=$!
sleep 0.5
head -c $((16 << 20)) /dev/urandom > "$WORK/src"
ip netns exec "$TAG-b" socat -u TCP-LISTEN:5001,reuseaddr OPEN:"$WORK/dst",creat,trunc &
RECV=$!
sleep 0.3
start=$(date +%s.%N)
ip netns exec "$TAG-a" socat -u OPEN:"$WORK/src" TCP:192.0.2.2:5001
wait $RECV
end=$(date +%s.%N)
kill -TERM "$NETEM_PID"; wait "$NETEM_PID" || true; NETEM_PID=
printf '   16 MiB over kernel TCP in %.1f s through 2%% loss and 10 ms delay each way\n' "$(echo "$end - $start" | bc -l)"
echo "   sha256 sent     $(sha "$WORK/src")"
echo "   sha256 received $(sha "$WORK/dst")"
[ "$(sha "$WORK/src")" = "$(sha "$WORK/dst")" ] || { echo "== MISMATCH"; exit 1; }
echo "   OK: byte-exact"
