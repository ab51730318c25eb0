#!/usr/bin/env bash
# Held-out quality of training recipes: `ctseg phantom --subjects 10 --seed 3`, a tiny
# run (64², base 8, batch 6) per recipe for STEPS steps on its train split (validated on
# its val split), then `ctseg eval --split test --json` on the subject it never saw.
#
#   benches/heldout.sh [STEPS] [RECIPE...]     # RECIPE = "name|extra ctseg train flags"
#
# Needs a built ctseg (CTSEG_BIN, default target/release/ctseg).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-600}
shift || true
BIN=${CTSEG_BIN:-${CARGO_TARGET_DIR:-target}/release/ctseg}
OUT=${CTSEG_HELDOUT_OUT:-$(mktemp -d)}
mkdir -p "$OUT"
if [ $# -eq 0 ]; then
  set -- "seed recipe|--preset seed --early-stopping 0" "default|"
fi
[ -f "$OUT/phantoms/meta.csv" ] || "$BIN" phantom --out "$OUT/phantoms" --subjects 10 --seed 3 >/dev/null
printf '| recipe | steps | held-out mean Dice | mean NSD@3mm | liver | spleen | kidney R | kidney L | s |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n'
for recipe in "$@"; do
  name=${recipe%%|*}
  flags=${recipe#*|}
  run="$OUT/$(echo "$name" | tr -c 'a-zA-Z0-9\n' '_')-$STEPS"
  rm -rf "$run"
  start=$(date +%s)
  # shellcheck disable=SC2086
  "$BIN" train --data "$OUT/phantoms" --out "$run" --backend cpu --input-size 64 \
    --base-channels 8 --batch-size 6 --max-steps "$STEPS" --quiet --cache-dir "$OUT/cache" \
    $flags >"$run.log" 2>&1 || { echo "| $name | failed: see $run.log |"; continue; }
  seconds=$(( $(date +%s) - start ))
  "$BIN" eval --model "$run" --data "$OUT/phantoms" --split test --backend cpu --json --quiet \
    >"$run.eval.json" 2>>"$run.log" || { echo "| $name | eval failed: see $run.log |"; continue; }
  python3 - "$run.eval.json" "$name" "$STEPS" "$seconds" <<'PY'
import json, sys
path, name, steps, seconds = sys.argv[1:]
e = json.load(open(path))
s = e["summary"]
by = {x["name"]: x["dice"]["mean"] for x in s["structures"]}
f = lambda v: "-" if v is None else f"{v:.3f}"
print(f"| {name} | {steps} | {f(s['mean_dice'])} | {f(s['mean_nsd'])} | {f(by.get('liver'))} | "
      f"{f(by.get('spleen'))} | {f(by.get('kidney_right'))} | {f(by.get('kidney_left'))} | {seconds} |")
PY
done
echo "runs in $OUT" >&2
