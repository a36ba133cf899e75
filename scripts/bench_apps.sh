#!/usr/bin/env bash
# Unmodified programs over shunt against the kernel, on one veth pair, in
# one run (issues 5 and 7): iperf3 TCP both ways, sockperf TCP ping-pong
# latency (shunt with and without busy polling), connections per second,
# UDP packets per second both ways; shunt on AF_PACKET ("packet", the
# default backend) and on an AF_XDP queue ("xdp", SHUNT_BACKEND=xdp).
#
# Namespace s holds veth0, where the client runs; namespace k holds veth1
# (192.0.2.2, the kernel) and every server. The kernel case gives veth0
# the address 192.0.2.1; the shunt cases take it away again (no kernel
# address at all on veth0, as in shim-tests) and run the same client
# under `shunt run --backend packet|xdp` on veth0 with 192.0.2.1 (AF_XDP
# in dedicated mode: the XDP program steers 192.0.2.1's frames to shunt).
# Same servers, same wire.
#
# Prints BENCH / RATIO lines (DESIGN.md); ratios are shunt over the
# kernel (app-X-vs-kernel: AF_PACKET, app-X-xdp-vs-kernel: AF_XDP) and
# AF_XDP over AF_PACKET (app-X-xdp-vs-packet): higher is better for
# throughput, packets/s and conn/s, lower for latency.
# Every load is bounded in time. Needs root, iperf3, sockperf, gcc.
# Knobs: BENCH_SECS (per measurement, default 3), BENCH_SPIN_US (100),
# BENCH_CONNS (connections at most per conn/s case, 20000), BENCH_ROUNDS
# (3: each figure is the median of this many rounds), BENCH_UDP_SIZE (UDP
# payload bytes, 64), BENCH_BACKENDS ("packet xdp": the shunt cases run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${BENCH_SECS:-3}
SPIN=${BENCH_SPIN_US:-100}
# Connections per case (the figures in BENCHMARKS.md were taken with
# 20000; shunt no longer runs out of ports past 28232, see
# shim-tests' more_short_connections_than_ephemeral_ports).
CONNS=${BENCH_CONNS:-20000}
ROUNDS=${BENCH_ROUNDS:-3}
UDP_SIZE=${BENCH_UDP_SIZE:-64}
BACKENDS=${BENCH_BACKENDS:-packet xdp}
# Datagrams at most per UDP case (bounds the load whatever the rate).
UDP_MAX=$((SECS * 5000000))
SHUNT=$ROOT/target/release/shunt
for p in iperf3 sockperf gcc ip python3; do
  command -v $p >/dev/null || { echo "bench_apps: $p is missing (make deps)" >&2; exit 1; }
done
[ -x "$SHUNT" ] && [ -f "$ROOT/target/release/libshunt.so" ] \
  || { echo "bench_apps: build first (cargo build --release --workspace)" >&2; exit 1; }
CPS=$ROOT/target/release/bench-cps
gcc -O2 -Wall -o "$CPS" scripts/cps.c
PPS=$ROOT/target/release/bench-udp-pps
gcc -O2 -Wall -o "$PPS" scripts/udp_pps.c

TAG=shunt-$$-bench
S=$TAG-s
K=$TAG-k
TMP=$(mktemp -d /tmp/$TAG.XXXXXX)
cleanup() {
  for ns in $S $K; do
    for p in $(ip netns pids $ns 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del $ns 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Namespaces of earlier runs whose process is gone (a run killed with
# SIGKILL could not remove its own).
for ns in $(ip netns list | awk '{print $1}' | grep -E '^shunt-[0-9]+-bench-' || true); do
  pid=${ns#shunt-}; pid=${pid%%-*}
  [ -d /proc/$pid ] || { for p in $(ip netns pids $ns); do kill -9 $p; done; ip netns del $ns; }
done

ip netns add $S
ip netns add $K
ip -n $S link set lo up
ip -n $K link set lo up
ip -n $S link add veth0 type veth peer name veth1
# No IPv6 link-local address on veth0: nothing but shunt answers there.
ip netns exec $S sh -c 'echo 1 > /proc/sys/net/ipv6/conf/veth0/addr_gen_mode'
ip -n $S link set veth1 netns $K
ip -n $K addr add 192.0.2.2/24 dev veth1
ip -n $K link set veth1 up
ip -n $S link set veth0 up

ins() { ip netns exec "$@"; }
kernel_side() { ip -n $S addr replace 192.0.2.1/24 dev veth0; }
shunt_side() {
  ip -n $S addr flush dev veth0
  ip -n $K neigh flush dev veth1
}
# The client, as the kernel or shunt runs it: "kernel", or a backend
# ("packet", "xdp") with "-spin" for busy polling.
client() {
  local mode=$1; shift
  case $mode in
    kernel) ins $S "$@" ;;
    *-spin) ins $S "$SHUNT" run --backend "${mode%-spin}" --iface veth0 --addr 192.0.2.1/24 \
      --spin-us "$SPIN" -- "$@" ;;
    *) ins $S "$SHUNT" run --backend "$mode" --iface veth0 --addr 192.0.2.1/24 -- "$@" ;;
  esac
}
wait_listen() { # port: wait (5 s at most) until something listens in k
  for _ in $(seq 100); do
    ins $K ss -Hltn "sport = :$1" | grep -q . && return 0
    sleep 0.05
  done
  echo "bench_apps: nothing listens on port $1" >&2
  return 1
}
wait_file() { # path: wait (5 s at most) until it exists
  for _ in $(seq 100); do
    [ -e "$1" ] && return 0
    sleep 0.05
  done
  echo "bench_apps: $1 never appeared" >&2
  return 1
}
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}' if b else 'nan')" "$1" "$2"; }

# iperf3: Gbit/s received, client in s; -R: the server in k sends.
iperf() { # mode port [-R]
  local mode=$1 port=$2 rev=${3:-}
  ins $K timeout $((SECS + 20)) iperf3 -s -B 192.0.2.2 -p "$port" -1 >/dev/null 2>&1 &
  wait_listen "$port"
  client "$mode" timeout $((SECS + 15)) iperf3 -c 192.0.2.2 -p "$port" -t "$SECS" $rev -J \
    | python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))'
  wait
}
# sockperf TCP ping-pong, 64-byte messages: round trip p50 and p99 in us.
ping_pong() { # mode port
  local mode=$1 port=$2
  client "$mode" timeout $((SECS + 15)) sockperf ping-pong --tcp -i 192.0.2.2 -p "$port" \
    -t "$SECS" -m 64 --full-rtt 2>&1 \
    | awk '/percentile 50.000 =/ {p50=$NF} /percentile 99.000 =/ {p99=$NF} END {if (p50 == "") exit 1; print p50, p99}'
}
cps() { # mode port
  local mode=$1 port=$2
  ins $K timeout $((SECS + 20)) "$CPS" server 192.0.2.2 "$port" $((SECS + 10)) &
  local server=$!
  wait_listen "$port"
  client "$mode" timeout $((SECS + 15)) "$CPS" client 192.0.2.2 "$port" "$SECS" "$CONNS" | awk '{print $2}'
  kill $server 2>/dev/null || true
  wait $server 2>/dev/null || true
}
# UDP, UDP_SIZE-byte datagrams, one per send(2), for SECS: packets/s the
# receiver got (first to last datagram). send: the client in s sends to a
# kernel receiver in k; recv: a kernel sender in k sends to the client.
udp() { # mode port send|recv
  local mode=$1 port=$2 dir=$3 ready=$TMP/ready-$2 out=$TMP/udp-$2
  if [ "$dir" = send ]; then
    ins $K timeout $((SECS + 20)) "$PPS" recv 192.0.2.2 "$port" $((SECS + 10)) "$ready" >"$out" &
    wait_file "$ready"
    client "$mode" timeout $((SECS + 15)) "$PPS" send 192.0.2.2 "$port" "$SECS" "$UDP_SIZE" "$UDP_MAX" >/dev/null
  else
    client "$mode" timeout $((SECS + 20)) "$PPS" recv 192.0.2.1 "$port" $((SECS + 10)) "$ready" >"$out" &
    wait_file "$ready"
    ins $K timeout $((SECS + 15)) "$PPS" send 192.0.2.1 "$port" "$SECS" "$UDP_SIZE" "$UDP_MAX" >/dev/null
  fi
  wait
  awk '{print $2}' "$out"
}

ins $K timeout $((ROUNDS * (30 * SECS + 150) + 60)) sockperf server --tcp -i 192.0.2.2 -p 11111 \
  >/dev/null 2>&1 &
wait_listen 11111

# Rounds alternate the cases, so that a change in the machine's load
# falls on all; each figure is the median over the rounds. Every case and
# round has its own server ports: a connection never meets a TIME_WAIT left
# by an earlier one.
declare -A R
add() { R[$1]="${R[$1]:-} $2"; }
for round in $(seq "$ROUNDS"); do
  case_no=0
  for mode in kernel $BACKENDS; do
    case_no=$((case_no + 1))
    base=$((5000 + 300 * case_no + 10 * round))
    if [ $mode = kernel ]; then kernel_side; else shunt_side; fi
    add $mode-send "$(iperf $mode $base)"
    add $mode-recv "$(iperf $mode $((base + 1)) -R)"
    read -r p50 p99 < <(ping_pong $mode 11111)
    add $mode-p50 "$p50"; add $mode-p99 "$p99"
    if [ $mode != kernel ]; then
      read -r p50 p99 < <(ping_pong $mode-spin 11111)
      add $mode-spin-p50 "$p50"; add $mode-spin-p99 "$p99"
    fi
    add $mode-cps "$(cps $mode $((base + 2)))"
    add $mode-udp-send "$(udp $mode $((base + 3)) send)"
    add $mode-udp-recv "$(udp $mode $((base + 4)) recv)"
  done
done
median() { python3 -c 'import statistics,sys; m = statistics.median(float(x) for x in sys.argv[1].split()); print("%.0f" % m if m >= 100 else "%.3g" % m)' "$1"; }
for k in $(printf '%s\n' "${!R[@]}" | sort); do
  echo "# $k, each round:${R[$k]}"
  R[$k]=$(median "${R[$k]}")
done

# name unit key-suffix: BENCH lines for every case, RATIO lines for each
# backend against the kernel and AF_XDP against AF_PACKET. AF_PACKET's
# ratio keeps its issue-5 name (app-X-vs-kernel).
report() { # name unit key [spin]
  local name=$1 unit=$2 key=$3 spin=${4:-}
  if [ -z "$spin" ]; then echo "BENCH app-$name-kernel ${R[kernel-$key]} $unit"; fi
  local b tag
  for b in $BACKENDS; do
    tag=$b; [ "$b" = packet ] && tag=shunt
    echo "BENCH app-$name-$tag$spin${spin:+$SPIN} ${R[$b$spin-$key]} $unit"
  done
  for b in $BACKENDS; do
    tag=-$b; [ "$b" = packet ] && tag=
    echo "RATIO app-$name$tag${spin:+-spin}-vs-kernel $(ratio "${R[$b$spin-$key]}" "${R[kernel-$key]}")"
  done
  if [[ " $BACKENDS " == *" packet "* && " $BACKENDS " == *" xdp "* ]]; then
    echo "RATIO app-$name-xdp${spin:+-spin}-vs-packet $(ratio "${R[xdp$spin-$key]}" "${R[packet$spin-$key]}")"
  fi
}
for dir in send recv; do
  report iperf3-$dir Gbit/s $dir
done
for q in p50 p99; do
  report sockperf-rtt-$q us $q
  report sockperf-rtt-$q us $q -spin
done
report connect conn/s cps
for dir in send recv; do
  report udp-pps-$dir packets/s udp-$dir
done
