#!/usr/bin/env bash
# Scenario tables from shoal-sim for N = 100, 1,000 and 10,000 (lan preset,
# seed 1): join convergence, crash detection, and traffic and false positives
# at 0, 10 and 20% uniform loss. Writes OUT_DIR/sim_tables.jsonl (one shoal-sim
# JSON object per run, with its command) and OUT_DIR/sim_tables.md (the tables).
#   bench/sim_tables.sh BUILD_DIR OUT_DIR
#   bench/sim_tables.sh --list     (prints the runs' shoal-sim arguments, one
#                                   run a line, and exits: bench/results.py
#                                   runs this list itself)
#   SIM_SIZES="100 1000" bench/sim_tables.sh ...   (crash and loss sizes)
#   SIM_JOIN_SIZES="100 1000 2000"                 (join sizes, the default)
#
# Cost on a 2-core machine: N=100 and N=1000 take a few minutes together.
# N=10,000 dominates: each converged start takes ~90 s of wall time and
# ~14 GB of memory (10,000 cores of 10,000 members), each simulated second
# ~0.5 s of wall time. The join of 10,000 nodes is not in the default list:
# the simulator got through 3.7 s of its 10 s join window (3,637 nodes
# started) in 254 s of wall time, ever slower as the cluster grows; the
# join is measured at N = 100, 1,000 and 2,000 (47 s wall).
# Durations per N (simulated seconds of each scenario's own phase):
#   crash: 120 s at every N (every crash happens in the first 10 s and is
#          removed everywhere within ~20 s); 5 crashes at N=100, 10 above.
#   loss:  600 s at N=100, 300 s at N=1,000, 120 s at N=10,000 (each member
#          is probed ~once per second, so 120 s is ~1.2 million probes).
#   bootstrap: until the full mesh (at most 600 s), then 30 s of steady state.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
list_only=0
if [ "${1:-}" = --list ]; then list_only=1; shift; fi
read -r -a sizes <<< "${SIM_SIZES:-100 1000 10000}"
read -r -a join_sizes <<< "${SIM_JOIN_SIZES:-100 1000 2000}"

runs=()
for n in "${join_sizes[@]}"; do
  runs+=("--scenario bootstrap --nodes $n --seed 1")
done
for n in "${sizes[@]}"; do
  case "$n" in
    100) crashes=5 loss_s=600 ;;
    1000) crashes=10 loss_s=300 ;;
    *) crashes=10 loss_s=120 ;;
  esac
  runs+=("--scenario crash --nodes $n --crashes $crashes --duration 120 --seed 1")
  for loss in 0 0.1 0.2; do
    runs+=("--scenario loss --nodes $n --loss $loss --duration $loss_s --seed 1")
  done
done
if [ $list_only = 1 ]; then
  printf '%s\n' "${runs[@]}"
  exit 0
fi

source "$here/sim_lib.sh"
source "$here/../scripts/lib/common.sh"
ensure_packages python3
build="${1:-build}"
out_dir="${2:-sim_tables}"
sim="$build/bench/shoal-sim"
[ -x "$sim" ] || { echo "sim_tables: $sim not found (build target shoal-sim)" >&2; exit 1; }
mkdir -p "$out_dir"
jsonl="$out_dir/sim_tables.jsonl"
: > "$jsonl"

start=$SECONDS
i=0
for r in "${runs[@]}"; do
  i=$((i + 1))
  echo "== [run $i/${#runs[@]}, $((SECONDS - start)) s so far] shoal-sim $r --json" >&2
  # shellcheck disable=SC2086  # r is a list of flags
  sim_run "$sim" "$jsonl" $r
done
echo "== ${#runs[@]} runs in $((SECONDS - start)) s; tables: $out_dir/sim_tables.md" >&2

python3 - "$jsonl" > "$out_dir/sim_tables.md" <<'EOF'
import json, math, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]

def f(x, nd=2):
    return "—" if x is None else f"{x:.{nd}f}"

def by(scenario, n, **kw):
    for r in rows:
        if r["scenario"] == scenario and r["nodes"] == n and all(r.get(k) == v for k, v in kw.items()):
            return r
    return None

sizes = sorted({r["nodes"] for r in rows})
crash_sizes = sorted({r["nodes"] for r in rows if r["scenario"] != "bootstrap"})
e_ratio = math.e / (math.e - 1)
print("Detection and convergence (lan preset, seed 1). `detect_first_s`: crash to the first")
print("suspicion by anyone; `first_dead_s`: to the first death declaration; `detect_all_s`: to")
print("dead in every live view. SWIM expected first detection: e/(e-1) x probe interval.")
print()
print("| N | join converged_s | crashes | detect_first_s mean (p99) | SWIM e/(e-1) x T (s) | first_dead_s mean | detect_all_s mean (p99) | undetected | false_dead |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for n in sizes:
    b, c = by("bootstrap", n), by("crash", n)
    conv = f(b["converged_s"]) if b and b.get("converged") else ("not converged" if b else "not run")
    if c:
        swim = e_ratio * c["probe_interval_s"]
        print(f"| {n} | {conv} | {c['crashes']} | {f(c['detect_first_s']['mean'])} ({f(c['detect_first_s']['p99'])}) "
              f"| {swim:.2f} | {f(c['first_dead_s']['mean'])} | {f(c['detect_all_s']['mean'])} ({f(c['detect_all_s']['p99'])}) "
              f"| {c['undetected']} | {c['false_dead']} |")
    else:
        print(f"| {n} | {conv} | — | — | — | — | — | — | — |")
print()
print("Load and false positives at uniform loss on every packet, converged start.")
print("`msgs/node/s`: UDP packets sent per node per second; `bytes/node/s`: UDP and stream")
print("bytes sent per node per second.")
print()
print("| N | loss | simulated s | msgs/node/s | bytes/node/s | false_suspect | false_dead | wall s |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for n in crash_sizes:
    for loss in (0.0, 0.1, 0.2):
        r = by("loss", n, loss=loss)
        if not r:
            continue
        print(f"| {n} | {loss:.0%} | {r['steady_s']:.0f} | {f(r['msgs_per_node_s'])} | {f(r['bytes_per_node_s'], 1)} "
              f"| {r['false_suspect']} | {r['false_dead']} | {r['wall_s']:.0f} |")
for n in sizes:
    b = by("bootstrap", n)
    if b and b.get("converged"):
        print()
        break
for n in sizes:
    b = by("bootstrap", n)
    if b and b.get("converged"):
        print(f"- N={n} join: converged in {f(b['converged_s'])} s simulated; then "
              f"{f(b['msgs_per_node_s'])} msgs and {f(b['bytes_per_node_s'], 1)} bytes per node per second "
              f"over {b['steady_s']:.0f} s; {b['wall_s']:.0f} s wall.")
print()
print("Commands (each with `--json`):")
print()
for r in rows:
    print(f"- `{r['command']}`")
EOF
echo "== wrote $out_dir/sim_tables.md" >&2
