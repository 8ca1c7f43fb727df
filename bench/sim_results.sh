#!/usr/bin/env bash
# Runs the protocol scenarios whose numbers bench/RESULTS.md records, one
# shoal-sim run each, and writes one JSON object per line to OUT.
#   bench/sim_results.sh BUILD_DIR OUT.jsonl
set -euo pipefail
source "$(dirname "$0")/sim_lib.sh"
build="${1:-build}"
out="${2:-sim_results.jsonl}"
sim="$build/bench/shoal-sim"
: > "$out"
run() {
  echo "== shoal-sim $*" >&2
  sim_run "$sim" "$out" "$@" --quiet
}
run --scenario crash --nodes 1000 --crashes 10 --seed 1
run --scenario bootstrap --nodes 100 --seed 1
run --scenario bootstrap --nodes 2000 --seed 1
run --scenario loss --nodes 100 --loss 0.1 --duration 3600 --seed 1
run --scenario loss --nodes 100 --loss 0.2 --duration 3600 --seed 1
run --scenario slow --nodes 200 --seed 1
run --scenario lossy-minority --nodes 1000 --duration 600 --seed 1
run --scenario partition --nodes 200 --seed 1
run --scenario restart --nodes 200 --seed 1
run --scenario churn --nodes 200 --seed 1
run --scenario crash --nodes 10000 --crashes 5 --duration 120 --seed 1
