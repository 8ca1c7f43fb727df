#!/usr/bin/env bash
# shoald vs HashiCorp Serf on loopback, N = 8 and 32, in one run: join
# convergence, crash -> failed everywhere (median over --crashes crashes, one
# after another, default 5) for a kill on a live host (ICMP) and for a host
# that goes silent first (nftables drops, root only), side by side, CPU (ns
# from schedstat) and resident memory per agent, bytes per agent-second
# (nftables counters, root only), and shoal/serf ratios.
# Installs what it needs (serf, nftables, python3), then runs bench/vs_serf.py
# (see its header for what is measured and how).
#   bench/vs_serf.sh [--build DIR] [--sizes 8,32] [--shoald PATH] [--shoalctl PATH]
#                    [--out DIR] [--steady SECONDS] [--crashes K] [--only serf|shoald]
#                    [--crash-mode kill|host-down|both]
# --build DIR (default: build) sets the default --shoald DIR/daemon/shoald.
# A missing serf or shoald skips that half and says so in the output.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/lib/common.sh"
ensure_packages serf nftables python3

build=build
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
have_shoald=0
for a in "${args[@]+"${args[@]}"}"; do [ "$a" = --shoald ] && have_shoald=1; done
[ $have_shoald = 1 ] || args+=(--shoald "$build/daemon/shoald")
# Debian's python3 (installed above), not whatever python3 is first on PATH.
py=/usr/bin/python3
[ -x "$py" ] || py=python3
exec "$py" "$here/vs_serf.py" "${args[@]}"
