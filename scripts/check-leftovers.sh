#!/usr/bin/env bash
# Fails when the test suite left kernel objects behind: network namespaces,
# links, test cgroups, resctrl groups or FUSE mounts that Seer's tests create
# (their names start with seer or tchtb; host-side veths of the probe tests with spr).
set -uo pipefail
left=""
ns=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^(seer|tchtb)' | tr '\n' ' ')
[ -n "${ns// /}" ] && left+="network namespaces: $ns\n"
links=$(ip -br link 2>/dev/null | awk '{print $1}' | grep -E '^(seer|tchtb|spr|spn)' | tr '\n' ' ')
[ -n "${links// /}" ] && left+="links: $links\n"
for c in cpu cpuacct memory cpuset blkio pids; do
    d=/sys/fs/cgroup/$c
    [ -d "$d" ] || continue
    cg=$(find "$d" -mindepth 1 -maxdepth 3 -type d -name 'seer*' 2>/dev/null | tr '\n' ' ')
    [ -n "${cg// /}" ] && left+="cgroups ($c): $cg\n"
done
mnt=$(grep -E ' fuse' /proc/mounts 2>/dev/null | awk '{print $2}' | grep -E 'seer|resctrl' | tr '\n' ' ')
[ -n "${mnt// /}" ] && left+="FUSE mounts: $mnt\n"
if [ -n "$left" ]; then
    printf "kernel objects left behind by the tests:\n%b" "$left" >&2
    exit 1
fi
echo "no kernel objects left behind"
