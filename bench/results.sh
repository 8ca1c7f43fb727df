#!/usr/bin/env bash
# Reruns every benchmark at the current commit and rewrites bench/RESULTS.md,
# bench/plots/ and README.md's measured figures from that one run.
#   nice -n 19 bench/results.sh [--build DIR] [--out FILE] [--raw DIR]
#       [--readme FILE] [--quick] [--only SECTION[,SECTION]] [--jobs N] [--no-build]
# Sections: memory, micro, loopback, scale, serf, cluster, sim, refuse, tables, plots.
# The header of bench/results.py says what each option does, how long the
# full run takes (about 30-45 min on the project's 2-core VM: an estimate)
# and what to commit afterwards. Paths are relative to the repository root.
#
# Installs what it needs (python3; serf and nftables for the Serf section,
# gnuplot-nox for the plots: when one of those cannot be installed, its
# section says so instead of printing figures), builds the benchmark targets
# in DIR when DIR is a build of this tree (configuring it first when it does
# not exist; --no-build skips that), then runs bench/results.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../scripts/lib/common.sh"
cd "$SHOAL_ROOT"

ensure_packages python3
ensure_packages serf nftables ||
  echo "results: could not install serf/nftables; the Serf section will say why" >&2
ensure_packages golang-go golang-github-hashicorp-memberlist-dev ||
  echo "results: could not install Go and memberlist; the scale section will say why" >&2
ensure_packages gnuplot-nox ||
  echo "results: could not install gnuplot-nox; the plots section will fail and say so" >&2

build=build
no_build=0
args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --build=*) build="${1#--build=}"; shift ;;
    --no-build) no_build=1; shift ;;
    *) shift ;;
  esac
done

export SHOAL_RESULTS_BUILT=0
targets=(shoal-sim shoal-micro shoal-core-memory shoal-loopback shoald shoalctl)
if [ $no_build = 0 ]; then
  if [ ! -f "$build/CMakeCache.txt" ]; then
    echo "== results: configuring $build" >&2
    configure "$build"
  fi
  src="$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt")"
  if [ "$(cd "$src" 2>/dev/null && pwd -P)" = "$(pwd -P)" ]; then
    echo "== results: building ${targets[*]} in $build" >&2
    build_targets "$build" "${targets[@]}"
    export SHOAL_RESULTS_BUILT=1
  else
    echo "== results: $build is a build of $src, not of this tree: not rebuilt" >&2
  fi
fi

# Debian's python3 (installed above), not whatever python3 is first on PATH.
py=/usr/bin/python3
[ -x "$py" ] || py=python3
exec "$py" "$here/results.py" "${args[@]+"${args[@]}"}"
