#!/usr/bin/env bash
# The test bed for scripts (make demo, make bench): namespaces and veth
# pairs named after the caller's pid, removed by `down` (call it from a
# trap so it runs on failure and Ctrl-C too).
#
#   testbed.sh pair TAG        ns TAG-a (veth0 192.0.2.1) <-> ns TAG-b (veth0 192.0.2.2)
#   testbed.sh bridge TAG      ns TAG-a (veth0 192.0.2.1) <-> TAG-m (veth0..veth1) <-> TAG-b (veth0 192.0.2.2)
#   testbed.sh down TAG        remove every namespace named TAG-*
#   testbed.sh stale           remove shunt-PID-* namespaces whose PID is gone
set -euo pipefail

ns_add() { ip netns add "$1"; ip -n "$1" link set lo up; }
veth() { # ns_a if_a ns_b if_b
  ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
  ip -n "$1" link set "$2" up
  ip -n "$3" link set "$4" up
}

stale() {
  ip netns list | awk '{print $1}' | while read -r ns; do
    case "$ns" in
      shunt-*) pid=${ns#shunt-}; pid=${pid%%-*}
               if [[ "$pid" =~ ^[0-9]+$ ]] && [ ! -d "/proc/$pid" ]; then ip netns del "$ns" 2>/dev/null || true; fi ;;
    esac
  done
}

cmd=${1:-}; tag=${2:-}
case "$cmd" in
  pair)
    stale
    ns_add "$tag-a"; ns_add "$tag-b"
    veth "$tag-a" veth0 "$tag-b" veth0
    ip -n "$tag-a" addr add 192.0.2.1/24 dev veth0
    ip -n "$tag-b" addr add 192.0.2.2/24 dev veth0
    ip -n "$tag-a" addr add 2001:db8::1/64 dev veth0 nodad
    ip -n "$tag-b" addr add 2001:db8::2/64 dev veth0 nodad
    ;;
  bridge)
    stale
    ns_add "$tag-a"; ns_add "$tag-m"; ns_add "$tag-b"
    veth "$tag-a" veth0 "$tag-m" veth0
    veth "$tag-m" veth1 "$tag-b" veth0
    ip -n "$tag-a" addr add 192.0.2.1/24 dev veth0
    ip -n "$tag-b" addr add 192.0.2.2/24 dev veth0
    ip -n "$tag-a" addr add 2001:db8::1/64 dev veth0 nodad
    ip -n "$tag-b" addr add 2001:db8::2/64 dev veth0 nodad
    ;;
  down)
    for ns in $(ip netns list | awk '{print $1}' | grep -E "^$tag-" || true); do
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    done
    ;;
  stale) stale ;;
  *) echo "usage: testbed.sh pair|bridge|down TAG | stale" >&2; exit 2 ;;
esac
