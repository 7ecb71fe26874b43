#!/usr/bin/env bash
# The usual way to reproduce the seed's drop by hand, the baseline of
# `ci/bench`: a namespace with a tun device like the scenario's host side,
# bpftrace on skb:kfree_skb, and a writer putting the SYN with a bad IPv4
# header checksum into the tun. Prints the drop reason bpftrace saw.
# Runs in a private mount namespace (tracefs is mounted there only) and a
# namespace of its own; nothing of the host changes.
set -euo pipefail
ns="shellway-$$"
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
ip -n "$ns" tuntap add dev tun0 mode tun
ip -n "$ns" addr add 192.0.2.1/32 dev tun0
ip -n "$ns" link set tun0 up
out=$(mktemp -d)
trap 'ip netns del "$ns"; rm -rf "$out"' EXIT
unshare -m sh -c 'mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null; exec timeout 10 bpftrace -q -e "BEGIN { printf(\"ready\n\"); } tracepoint:skb:kfree_skb /args->protocol == 0x800/ { printf(\"reason %d\n\", args->reason); exit(); }"' >"$out/trace" 2>/dev/null &
tracer=$!
# BEGIN runs once every probe is attached.
for _ in $(seq 1000); do
  grep -qs ready "$out/trace" && break
  sleep 0.002
done
ip netns exec "$ns" python3 - <<'PY'
import fcntl, os, struct
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack("16sH", b"tun0", 0x0001 | 0x1000))  # TUNSETIFF IFF_TUN|IFF_NO_PI
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 63, 6, 0xdead, bytes([192,0,2,1]), bytes([198,51,100,8]))
tcp = struct.pack("!HHIIBBHHH", 41626, 10001, 2148230009, 0, 5 << 4, 0x02, 64240, 0, 0)
os.write(fd, ip + tcp)
PY
wait "$tracer" || true
grep reason "$out/trace"
