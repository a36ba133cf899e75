#!/usr/bin/env bash
# make bench: every benchmark, printed as BENCH / RATIO lines (DESIGN.md).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# ring: in-memory source -> sink through one link (Rush's basic1)"
cargo bench -q -p shunt-ring --bench basic1 2>/dev/null | grep -E '^(BENCH|RATIO)'
echo "# ring: AF_PACKET transmit paths on a veth (TX ring vs sendmmsg)"
cargo test -q --release -p shunt-ring --test afpacket -- --ignored --nocapture tx_rate 2>/dev/null | grep -E '^(BENCH|RATIO)'
echo "# ring: AF_XDP transmit (copy mode) against AF_PACKET on a veth"
cargo test -q --release -p shunt-ring --test xdp -- --ignored --nocapture tx_rate 2>/dev/null | grep -E '^(BENCH|RATIO)'
echo "# shunt netem between two namespaces vs a veth straight through"
cargo bench -q -p shunt-cli --bench bridge 2>/dev/null | grep -E '^(BENCH|RATIO)'
echo "# stack: bulk TCP between two stacks in memory, one core, against smoltcp"
cargo bench -q -p shunt-stack --bench tcp_bulk 2>/dev/null | grep -E '^(BENCH|RATIO)'
echo "# preload: the kernel path through a hook"
cargo bench -q -p shunt-preload --bench passthrough 2>/dev/null | grep -E '^(BENCH|RATIO)'
echo "# stack: checksum"
cargo bench -q -p shunt-stack --bench checksum 2>/dev/null | grep -E '^(BENCH|RATIO)' || true
echo "# programs over shunt (AF_PACKET and AF_XDP) against the kernel, one veth pair, one run (iperf3, sockperf, conn/s, UDP packets/s)"
bash scripts/bench_apps.sh | grep -E '^(BENCH|RATIO)'
