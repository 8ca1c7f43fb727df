#!/bin/sh
# Builds memberlist-loopback (bench/memberlist/build.sh) and runs it under
# `nice -n 19` with the given flags; with --compare, then runs shoal's
# loopback benchmark at the same N and prints both JSON objects and the ratios.
#
#   bench/memberlist/run.sh [--compare] [memberlist-loopback flags...]
#   e.g. bench/memberlist/run.sh --nodes 64 --config lan --window 60s --json
#        bench/memberlist/run.sh --compare --nodes 64 --window 60s
#
# Environment: MEMBERLIST_BENCH_DIR (where the binary goes; default
# ${TMPDIR:-/tmp}/shoal-memberlist-bench), SHOAL_LOOPBACK (default
# build/bench/shoal-loopback), NICE (default 19).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${MEMBERLIST_BENCH_DIR:-${TMPDIR:-/tmp}/shoal-memberlist-bench}
nice_level=${NICE:-19}

compare=0
if [ "${1:-}" = "--compare" ]; then
  compare=1
  shift
fi

bin=$(nice -n "$nice_level" "$here/build.sh" "$dir")
if [ "$compare" = 0 ]; then
  exec nice -n "$nice_level" "$bin" "$@"
fi

# --compare: both sides at the same N and window, one after the other.
nodes=64
window=60
prev=
for a in "$@"; do
  case "$prev" in
    --nodes) nodes=$a ;;
    --window) window=$a ;;
  esac
  case "$a" in
    --nodes=*) nodes=${a#--nodes=} ;;
    --window=*) window=${a#--window=} ;;
  esac
  prev=$a
done
window_s=$(echo "$window" | sed 's/s$//')
case "$window_s" in
  *[!0-9.]*) echo "$0: --compare needs --window in seconds (e.g. 60s)" >&2; exit 2 ;;
esac
shoal=${SHOAL_LOOPBACK:-$root/build/bench/shoal-loopback}
if [ ! -x "$shoal" ]; then
  echo "$0: $shoal missing: build shoal first (scripts/test, or cmake --build build)" >&2
  exit 3
fi
out=$(mktemp -d "${TMPDIR:-/tmp}/memberlist-compare.XXXXXX")
echo "$(date -u +%FT%TZ) memberlist-loopback $*" >&2
rc_m=0
nice -n "$nice_level" "$bin" --json "$@" >"$out/memberlist.json" || rc_m=$?
echo "$(date -u +%FT%TZ) shoal-loopback --nodes $nodes --window $window_s --json" >&2
rc_s=0
nice -n "$nice_level" "$shoal" --nodes "$nodes" --window "$window_s" --json >"$out/shoal.json" || rc_s=$?
cat "$out/memberlist.json" "$out/shoal.json"
python3 - "$out/memberlist.json" "$out/shoal.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); s = json.load(open(sys.argv[2]))
def ratio(k):
    a, b = s.get(k), m.get(k)
    return None if a is None or not b else a / b
print(json.dumps({"nodes": m.get("nodes"),
                  "shoal_over_memberlist": {k: ratio(k) for k in
                      ("cpu_s_per_node_s", "bytes_per_node_s", "rss_per_node_kb")},
                  "memberlist_converged_from_first_join_s": m.get("converged_from_first_join_s"),
                  "shoal_join_convergence_s": s.get("join_convergence_s")}))
PY
rm -rf "$out"
[ "$rc_m" = 0 ] && [ "$rc_s" = 0 ]
