#!/usr/bin/env bash
# The prepared GPU check: on a machine with a GPU, run it and paste its table into
# the issue note. For every GPU backend this build has (wgpu; cuda when built with
# `--features cuda`) it runs `ctseg bench --check` (the backend against the CPU on
# the same weights and input), then `ctseg bench` in f32 and f16 — training step
# (f16: mixed precision with loss scaling, as `ctseg train --precision f16` runs it),
# inference, and a whole CT end to end with peak memory — and prints one table.
#
#   scripts/gpu-check.sh            # the design's model (base 32, 256²) and a
#                                   # 512×512×300 CT (the compass: < 1 s on an H100/H200)
#   scripts/gpu-check.sh --quick    # a tiny model and a 64×64×16 CT: a minute on lavapipe
#
# CTSEG_BIN picks the binary (default: target/release/ctseg, built if missing).
# GPU_CHECK_MODEL=RUN predicts the CT with trained weights (a random model finds no
# structures, so the labelling of found structures is not timed without one).
# Exit status: 0 when every backend that opened agrees with the CPU, 1 when one does
# not (or wgpu has no device), 2 on a setup error.
set -uo pipefail

QUICK=0
[[ "${1:-}" == "--quick" ]] && QUICK=1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CTSEG_BIN:-$ROOT/target/release/ctseg}
if [[ ! -x "$BIN" ]]; then
    echo "building $BIN (cargo build --release)…" >&2
    (cd "$ROOT" && cargo build --release --locked) || exit 2
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if ((QUICK)); then
    SIZE=64 SLICES=16 MODEL="base 8, 64²"
    MODEL_ARGS=(--input-size 64 --base-channels 8 --batch-size 4 --iters 2 --warmup 1)
else
    SIZE=512 SLICES=300 MODEL="base 32, 256²"
    MODEL_ARGS=(--batch-size 8 --iters 10 --warmup 3)
fi
# The CT: a synthetic abdomen of SIZE×SIZE×SLICES voxels (ctseg's own phantom, so
# the check needs nothing beside the binary).
if ! "$BIN" phantom --out "$WORK/ct" --subjects 1 --size "$SIZE" --slices "$SLICES" \
    >/dev/null 2>"$WORK/err"; then
    echo "error: could not write the ${SIZE}×${SIZE}×${SLICES} CT: $(tail -1 "$WORK/err")" >&2
    exit 2
fi
CT=$(find "$WORK/ct" -name ct.nii.gz | head -1)
VOLUME_ARGS=(--volume "$CT")
[[ -n "${GPU_CHECK_MODEL:-}" ]] && VOLUME_ARGS+=(--model "$GPU_CHECK_MODEL")

BACKENDS=(wgpu cuda)

# One table row from `ctseg bench --json` (python3 when present, else the raw JSON).
FORMAT='
import json, sys
b = json.load(sys.stdin)
v = b.get("volume") or {}
def f(x, d=3):
    return "-" if x is None else "%.*f" % (d, x)
print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
    sys.argv[1], sys.argv[2], b["device"], sys.argv[3], f(b.get("train_step_s")),
    f(b.get("infer_slices_per_s"), 1), f(v.get("seconds")), f(v.get("slices_per_s"), 1),
    f(v.get("peak_rss_mb"), 0)))
'
# The first real error line (mesa's XDG_RUNTIME_DIR complaints are not ours).
first_error() { grep '^error:' "$1" | grep -v XDG_RUNTIME_DIR | head -1 | sed 's/^error: //'; }

ROWS=()
STATUS=0
for backend in "${BACKENDS[@]}"; do
    "$BIN" bench --backend "$backend" --check "${MODEL_ARGS[@]}" >"$WORK/out" 2>"$WORK/err"
    cat "$WORK/out" "$WORK/err" >"$WORK/check"
    verdict=$(grep -o '→ [A-Z]*' "$WORK/check" | head -1 | sed 's/→ //')
    if [[ -z "$verdict" ]]; then
        reason=$(first_error "$WORK/err")
        if [[ "$reason" == *"not available in this build"* ]]; then
            ROWS+=("| $backend | – | not built (cargo build --release --features cuda) | | | | | | |")
        else
            ROWS+=("| $backend | – | no device: $reason | | | | | | |")
            [[ "$backend" == wgpu ]] && STATUS=1
        fi
        continue
    fi
    check="vs CPU: ${verdict,,}"
    [[ "$verdict" == AGREE ]] || STATUS=1
    grep -q 'computes wrong results (BatchNorm' "$WORK/check" && check+="; BatchNorm statistics wrong (training refused)"
    for precision in f32 f16; do
        if ! "$BIN" bench --backend "$backend" --precision "$precision" "${MODEL_ARGS[@]}" \
            "${VOLUME_ARGS[@]}" --json >"$WORK/out" 2>"$WORK/err"; then
            ROWS+=("| $backend | $precision | not run: $(first_error "$WORK/err") | $check | | | | | |")
            continue
        fi
        if ! line=$(python3 -c "$FORMAT" "$backend" "$precision" "$check" <"$WORK/out" 2>/dev/null); then
            line="| $backend | $precision | $(tr -d '\n' <"$WORK/out") | $check | | | | | |"
        fi
        ROWS+=("$line")
    done
done

echo
echo "GPU check ($( ((QUICK)) && echo quick || echo full )): model $MODEL, CT ${SIZE}×${SIZE}×${SLICES}, $(date -u +%Y-%m-%d)"
echo
echo "| backend | precision | device | check | train step s | inference slices/s | CT end to end s | CT slices/s | peak RSS MB |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${ROWS[@]}"
exit $STATUS
