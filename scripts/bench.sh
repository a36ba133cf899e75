#!/usr/bin/env bash
# make bench: every benchmark, printed as BENCH / RATIO lines (DESIGN.md).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
cargo bench -q -p shunt-ring --bench basic1 2>/dev/null | grep -E '^(BENCH|RATIO)'
cargo bench -q -p shunt-cli --bench bridge 2>/dev/null | grep -E '^(BENCH|RATIO)'
