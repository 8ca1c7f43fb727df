#!/usr/bin/env bash
# Plots from bench/sim_tables.sh's JSONL, with gnuplot (Debian gnuplot-nox):
#   OUT_DIR/detection_vs_n.svg    crash -> first suspicion (detect_first_s) and
#                                 crash -> dead everywhere (detect_all_s), mean
#                                 with the p99 as an error bar, beside SWIM's
#                                 analytic expected first-detection time,
#                                 e/(e-1) protocol periods x the probe interval.
#   OUT_DIR/convergence_vs_n.svg  join of N nodes -> full mesh (converged_s).
#   bench/plot_sim.sh SIM_TABLES.jsonl OUT_DIR
set -euo pipefail
jsonl="$1"
out_dir="${2:-bench/plots}"
source "$(dirname "$0")/../scripts/lib/common.sh"
ensure_packages gnuplot-nox python3
mkdir -p "$out_dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Data files: detection.dat (N, first mean, first p99, all mean, all p99,
# analytic) and convergence.dat (N, converged_s), sorted by N.
python3 - "$jsonl" "$tmp" <<'EOF'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
with open(sys.argv[2] + "/detection.dat", "w") as d:
    for r in sorted((r for r in rows if r["scenario"] == "crash"), key=lambda r: r["nodes"]):
        first, alls = r["detect_first_s"], r["detect_all_s"]
        if first["mean"] is None or alls["mean"] is None:
            continue
        swim = math.e / (math.e - 1) * r["probe_interval_s"]
        d.write(f"{r['nodes']} {first['mean']} {first['p99']} {alls['mean']} {alls['p99']} {swim}\n")
with open(sys.argv[2] + "/convergence.dat", "w") as c:
    for r in sorted((r for r in rows if r["scenario"] == "bootstrap"), key=lambda r: r["nodes"]):
        if r.get("converged"):
            c.write(f"{r['nodes']} {r['converged_s']}\n")
EOF

for f in detection convergence; do
  [ -s "$tmp/$f.dat" ] || { echo "plot_sim: no $f rows in $jsonl" >&2; exit 1; }
done

gnuplot <<EOF
set terminal svg size 720,450 dynamic font "sans,12" background "white"
set logscale x 10
set xlabel "cluster size N (nodes)"
set key top left Left reverse
set grid
set format x "%.0f"
set offsets 0, 0, graph 0.25, 0

set output "$out_dir/detection_vs_n.svg"
set title "Crash detection on shoal-sim (lan preset): mean, error bar to p99"
set ylabel "seconds after the crash"
set yrange [0:*]
set xrange [50:20000]
plot "$tmp/detection.dat" using 1:4:4:5 with yerrorlines lw 2 pt 7 title "detect\\\\_all (dead in every view)", \
     "$tmp/detection.dat" using 1:2:2:3 with yerrorlines lw 2 pt 5 title "detect\\\\_first (first suspicion)", \
     "$tmp/detection.dat" using 1:6 with lines lw 2 dt 2 lc rgb "black" title "SWIM expected first detection, e/(e-1) x probe interval"

set output "$out_dir/convergence_vs_n.svg"
set title "Join of N nodes until every node sees all N alive (shoal-sim, lan preset)"
set ylabel "seconds (simulated) from the first join"
set yrange [0:*]
set xrange [50:5000]
plot "$tmp/convergence.dat" using 1:2 with linespoints lw 2 pt 7 title "converged\\\\_s"
EOF
echo "== wrote $out_dir/detection_vs_n.svg $out_dir/convergence_vs_n.svg" >&2
