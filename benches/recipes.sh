#!/usr/bin/env bash
# Training recipes side by side: each recipe trains the tiny U-Net (64², base 8, batch 6,
# no augmentation) on s0001 for --max-steps, and the table gives the final validation
# Dice (at model resolution, on s0001 itself: a fitting test) per structure, and the
# optimiser steps actually run.
#
#   benches/recipes.sh [STEPS] [RECIPE...]     # RECIPE = "name|extra ctseg train flags"
#
# Needs a built ctseg (CTSEG_BIN, default target/release/ctseg) and ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-300}
shift || true
BIN=${CTSEG_BIN:-${CARGO_TARGET_DIR:-target}/release/ctseg}
DATA=${CTSEG_RECIPE_DATA:-../shared/data/totalseg/s0001}
OUT=${CTSEG_RECIPE_OUT:-$(mktemp -d)}
mkdir -p "$OUT"
if [ $# -eq 0 ]; then
  set -- "seed|--preset seed --early-stopping 0" \
         "bce-dice poly|--loss bce-dice" \
         "ce-dice poly|--loss ce-dice" \
         "ce-dice plateau*|--loss ce-dice --schedule plateau" \
         "ce-dice cosine|--loss ce-dice --schedule cosine"
fi
printf '| recipe | steps | mean Dice (present) | liver | spleen | kidney R | kidney L | stomach | final lr | s |\n'
printf '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n'
for recipe in "$@"; do
  name=${recipe%%|*}
  flags=${recipe#*|}
  run="$OUT/$(echo "$name" | tr -c 'a-zA-Z0-9\n' '_')-$STEPS"
  rm -rf "$run"
  start=$(date +%s)
  # shellcheck disable=SC2086
  "$BIN" train --data "$DATA" --out "$run" --backend cpu --input-size 64 --base-channels 8 \
    --batch-size 6 --max-steps "$STEPS" --no-augment --quiet --cache-dir "$OUT/cache" $flags \
    >"$run.log" 2>&1 || { echo "| $name | failed: see $run.log |"; continue; }
  seconds=$(( $(date +%s) - start ))
  python3 - "$run/metrics.jsonl" "$name" "$STEPS" "$seconds" <<'PY'
import json, sys
path, name, _, seconds = sys.argv[1:]
lines = [json.loads(l) for l in open(path)]
epochs = [l for l in lines if l["kind"] == "epoch"]
steps = max(l["step"] for l in lines if l["kind"] == "step")
last = epochs[-1]
d = last["val_dice"]
f = lambda k: "-" if d.get(k) is None else f"{d[k]:.3f}"
mean = last["val_dice_mean"]
print(f"| {name} | {steps} | {mean:.3f} | {f('liver')} | {f('spleen')} | {f('kidney_right')} | "
      f"{f('kidney_left')} | {f('stomach')} | {last['lr']:.1e} | {seconds} |")
PY
done
echo "runs in $OUT" >&2
