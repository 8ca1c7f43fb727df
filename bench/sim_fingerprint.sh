#!/usr/bin/env bash
# Prints shoal-sim's JSON for a fixed set of scenarios and seeds, with the
# wall-clock fields removed, one line per run. A change meant to move code
# without changing behaviour must leave this output identical:
#
#   bench/sim_fingerprint.sh build/bench/shoal-sim > before.jsonl
#   ... change, rebuild ...
#   bench/sim_fingerprint.sh build/bench/shoal-sim | diff before.jsonl -
#
# Small clusters and short runs (a few seconds in all), every scenario, both
# crash models, two seeds each.
set -euo pipefail
sim="${1:-build/bench/shoal-sim}"
strip() { python3 -c 'import json,sys
for line in sys.stdin:
    d = json.loads(line)
    for k in [k for k in d if "wall" in k]: del d[k]
    print(json.dumps(d, sort_keys=True))'; }
run() { "$sim" --quiet --json "$@" | strip; }
for seed in 1 2; do
  run --scenario bootstrap --nodes 40 --seed "$seed"
  run --scenario crash --nodes 50 --crashes 3 --seed "$seed"
  run --scenario crash --nodes 50 --crashes 3 --seed "$seed" --refuse
  run --scenario loss --nodes 30 --loss 0.2 --duration 120 --seed "$seed"
  run --scenario loss --nodes 30 --loss 0.2 --duration 120 --seed "$seed" --streams-immune
  run --scenario slow --nodes 40 --duration 120 --seed "$seed"
  run --scenario lossy-minority --nodes 100 --duration 120 --seed "$seed"
  run --scenario partition --nodes 30 --duration 60 --seed "$seed"
  run --scenario restart --nodes 30 --seed "$seed"
  run --scenario restart --nodes 30 --seed "$seed" --refuse
  run --scenario churn --nodes 40 --duration 60 --seed "$seed"
  run --scenario crash --nodes 30 --preset wan --seed "$seed"
  run --scenario crash --nodes 30 --preset local --seed "$seed"
  run --scenario broadcast --nodes 60 --count 3 --loss 0.1 --seed "$seed"
  run --scenario broadcast --nodes 60 --count 3 --size 512 --churn-tags --seed "$seed"
  run --scenario flapping --nodes 12 --seed "$seed"
done
