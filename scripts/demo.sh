#!/usr/bin/env bash
# make demo: a file crosses a lossy, slow synthetic network made by
# `shunt netem` between two namespaces, and arrives intact.
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

bash scripts/testbed.sh bridge "$TAG"
echo "== test bed: $TAG-a (192.0.2.1) <-> $TAG-m [shunt netem] <-> $TAG-b (192.0.2.2)"
SPEC=(--loss 2% --delay 10ms --jitter 2ms --seed 7)
echo "== shunt netem veth0 veth1 ${SPEC[*]}"
ip netns exec "$TAG-m" "$SHUNT" netem veth0 veth1 "${SPEC[@]}" &
NETEM_PID=$!
sleep 0.5

head -c $((16 << 20)) /dev/urandom > "$WORK/src"
echo "== sending 16 MiB over TCP from $TAG-a to $TAG-b (kernel TCP on both ends)"
ip netns exec "$TAG-b" socat -u TCP-LISTEN:5001,reuseaddr OPEN:"$WORK/dst",creat,trunc &
RECV=$!
sleep 0.3
start=$(date +%s.%N)
ip netns exec "$TAG-a" socat -u OPEN:"$WORK/src" TCP:192.0.2.2:5001
wait $RECV
end=$(date +%s.%N)
kill -TERM "$NETEM_PID"; wait "$NETEM_PID" || true; NETEM_PID=
src=$(sha256sum < "$WORK/src" | cut -d' ' -f1)
dst=$(sha256sum < "$WORK/dst" | cut -d' ' -f1)
printf '== %s bytes in %.1f s through 2%% loss and 10 ms delay\n' "$(stat -c %s "$WORK/dst")" "$(echo "$end - $start" | bc -l 2>/dev/null || echo 0)"
echo "   sha256 sent     $src"
echo "   sha256 received $dst"
if [ "$src" = "$dst" ]; then echo "== OK: byte-exact"; else echo "== MISMATCH"; exit 1; fi
