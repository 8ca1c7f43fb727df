# shellcheck shell=bash
# Shared by the bench/*.sh scripts that run shoal-sim (bench/sim_tables.sh). Source it.
#
# sim_run SIM OUT ARGS...: runs `SIM ARGS... --json` and appends its JSON
# object to OUT with the command that printed it ("command"). Progress lines
# go to stderr unless ARGS holds --quiet.
sim_run() {
  local sim="$1" out="$2"
  shift 2
  "$sim" "$@" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
args = [a for a in sys.argv[1:] if a != "--quiet"]
d["command"] = "shoal-sim " + " ".join(args) + " --json"
print(json.dumps(d))' "$@" >> "$out"
}
