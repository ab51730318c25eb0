#!/usr/bin/env bash
# Regenerate screenshots/ from the real ctseg binary under Xvfb, on the real CT in
# ../shared/data. Needs: xvfb, imagemagick (import), xdotool, and a Vulkan driver
# (mesa-vulkan-drivers gives lavapipe when there is no GPU); for the PACS shot, orthanc
# and orthanc-dicomweb.
#
#   scripts/screenshots.sh            # builds (debug) and writes screenshots/*.png
#   CTSEG_BIN=path/to/ctseg scripts/screenshots.sh
#   ONLY="annotate_brush annotate_restore" scripts/screenshots.sh   # some shots only
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DATA=${CTSEG_SHARED_DATA:-$ROOT/../shared/data}
S0001=$DATA/totalseg/s0001
OUT=$ROOT/screenshots
mkdir -p "$OUT"

if [[ -z "${CTSEG_BIN:-}" ]]; then
    # `cargo test --no-run` shares the test build's features (a plain `cargo build`
    # would unify features differently and recompile the ML stack).
    cargo test --workspace --no-run --quiet >/dev/null
    CTSEG_BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c \
        'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/ctseg
fi
[[ -x $CTSEG_BIN ]] || { echo "no ctseg binary at $CTSEG_BIN" >&2; exit 1; }
[[ -f $S0001/ct.nii.gz ]] || { echo "missing $S0001/ct.nii.gz" >&2; exit 1; }

DISPLAY_NUM=${DISPLAY_NUM:-:97}
export DISPLAY=$DISPLAY_NUM
XVFB=""
trap '[[ -n $XVFB ]] && kill $XVFB 2>/dev/null || true' EXIT

# A fresh settings folder, so earlier runs of the app don't change what is shown.
export HOME=$(mktemp -d)
export XDG_DATA_HOME=$HOME/.local/share XDG_CONFIG_HOME=$HOME/.config

want() { [[ -z ${ONLY:-} || " $ONLY " == *" $1 "* ]]; }

# shot NAME WAIT_SECONDS [xdotool key | mouse:X,Y | click:X,Y | drag:X,Y;X,Y;... ]
#      -- ctseg view arguments
shot() {
    local name=$1 wait=$2; shift 2
    if ! want "$name"; then
        return 0
    fi
    local keys=()
    while [[ $1 != -- ]]; do keys+=("$1"); shift; done
    shift
    # A fresh X server per screenshot.
    Xvfb "$DISPLAY_NUM" -screen 0 1600x1000x24 -nolisten tcp >/dev/null 2>&1 &
    XVFB=$!
    sleep 2
    "$CTSEG_BIN" view "$@" >"$OUT/.$name.log" 2>&1 &
    local pid=$!
    local win=""
    for _ in $(seq 1 120); do
        win=$(xdotool search --name '^ctseg$' 2>/dev/null | head -1 || true)
        [[ -n $win ]] && break
        sleep 0.5
    done
    [[ -n $win ]] || { echo "window did not appear for $name" >&2; cat "$OUT/.$name.log" >&2; kill $pid; exit 1; }
    xdotool windowsize "$win" 1600 1000 windowmove "$win" 0 0 || true
    xdotool windowfocus "$win" 2>/dev/null || true
    sleep "$wait"
    if ((${#keys[@]})); then
        # Keys go to the view under the mouse.
        xdotool mousemove 800 450
        for k in "${keys[@]}"; do
            if [[ $k == mouse:* ]]; then
                # mouse:X,Y parks the pointer (no hover tooltips in the shot).
                local xy=${k#mouse:}
                xdotool mousemove "${xy%,*}" "${xy#*,}"
            elif [[ $k == sleep:* ]]; then
                sleep "${k#sleep:}"
            elif [[ $k == click:* ]]; then
                local xy=${k#click:}
                xdotool mousemove "${xy%,*}" "${xy#*,}" click 1
            elif [[ $k == drag:* ]]; then
                # drag:X,Y;X,Y;… presses at the first point and releases at the last.
                local pts=${k#drag:} first=1
                IFS=';' read -ra P <<<"$pts"
                for xy in "${P[@]}"; do
                    xdotool mousemove "${xy%,*}" "${xy#*,}"
                    if ((first)); then xdotool mousedown 1; first=0; fi
                    sleep 0.1
                done
                xdotool mouseup 1
            else
                # XTEST events (not XSendEvent, which winit ignores for text keys).
                xdotool key "$k"
            fi
            sleep 0.3
        done
        sleep 1
    fi
    import -window root "$OUT/$name.png"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    kill "$XVFB" 2>/dev/null || true
    wait "$XVFB" 2>/dev/null || true
    XVFB=""
    rm -f "$OUT/.$name.log"
    echo "wrote screenshots/$name.png"
}

CT=$S0001/ct.nii.gz
GT=$S0001/seg_full_multilabel.nii.gz
PRED=$S0001/seg_fast_multilabel.nii.gz

shot start 3 -- 
shot overlay 6 -- "$CT" --gt "$GT" --pred "$PRED" --select liver --window Abdomen
shot three_views 6 -- "$CT" --gt "$GT" --pred "$PRED" --layout three --select liver
shot side_by_side 6 -- "$CT" --gt "$GT" --pred "$PRED" --layout side-by-side --axis coronal --select liver
shot difference 6 -- "$CT" --gt "$GT" --pred "$PRED" --difference --select liver
shot dicom 8 -- "$DATA/totalseg/dicom_ct" --window Bone
shot sample 6 -- --sample --layout three --select liver --window Abdomen

# A DICOM Segmentation over its series: TotalSegmentator's labels for the shared
# series, written as DICOM-SEG by `ctseg convert` and opened as the prediction.
SEGTMP=""
if want dicom_seg || want pacs_browser; then
    SEGTMP=$(mktemp -d)
    "$CTSEG_BIN" convert --ct "$DATA/totalseg/dicom_ct_pacs" \
        --labels "$DATA/totalseg/dicom_ct_seg_multilabel.nii.gz" \
        --out "$SEGTMP/totalseg.dcm" --algorithm TotalSegmentator
fi
shot dicom_seg 15 mouse:1599,999 -- "$DATA/totalseg/dicom_ct_pacs" --pred "$SEGTMP/totalseg.dcm" \
    --layout three --window Abdomen --select liver

# The Open from PACS browser on a local Orthanc (Debian orthanc, orthanc-dicomweb)
# holding the shared series and its DICOM-SEG.
if want pacs_browser; then
    ORTHANC_DIR=$(mktemp -d)
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    PLUGIN=$(ls /usr/share/orthanc/plugins/libOrthancDicomWeb.so /usr/lib/orthanc/plugins/libOrthancDicomWeb.so 2>/dev/null | head -1 || true)
    cat >"$ORTHANC_DIR/config.json" <<JSON
{"Name": "ctseg-screenshots", "StorageDirectory": "$ORTHANC_DIR/db", "IndexDirectory": "$ORTHANC_DIR/db",
 "HttpPort": $PORT, "DicomServerEnabled": false, "RemoteAccessAllowed": false,
 "AuthenticationEnabled": false, "Plugins": ["$PLUGIN"],
 "DicomWeb": {"Enable": true, "Root": "/dicom-web/"}}
JSON
    Orthanc "$ORTHANC_DIR/config.json" >"$ORTHANC_DIR/log" 2>&1 &
    ORTHANC_PID=$!
    trap '[[ -n $XVFB ]] && kill $XVFB 2>/dev/null; kill $ORTHANC_PID 2>/dev/null; true' EXIT
    for _ in $(seq 1 40); do
        curl -sf "http://127.0.0.1:$PORT/system" >/dev/null && break
        sleep 0.5
    done
    URL=http://127.0.0.1:$PORT/dicom-web
    "$CTSEG_BIN" dicomweb store "$URL" "$DATA"/totalseg/dicom_ct_pacs/* "$SEGTMP/totalseg.dcm" >/dev/null
    STUDY=$("$CTSEG_BIN" dicomweb search "$URL" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["study_uid"])')
    shot pacs_browser 8 mouse:1599,999 -- --pacs "$URL" --pacs-study "$STUDY"
    kill $ORTHANC_PID 2>/dev/null || true
    wait $ORTHANC_PID 2>/dev/null || true
    rm -rf "$ORTHANC_DIR"
fi
[[ -n ${SEGTMP:-} ]] && rm -rf "$SEGTMP"

# Annotator on s0001: the prediction copied into an editable layer, a liver stroke
# painted with the brush (its outline at the mouse), then the polygon tool mid-way,
# and the restore offer for the recovery file the first session autosaved.
REC=$(mktemp -d)
shot annotate_brush 8 "drag:560,420;590,440;620,470;640,520" mouse:700,470 sleep:4 -- "$CT" --gt "$GT" \
    --pred "$PRED" --edit pred --select liver --window Abdomen --recovery-dir "$REC" \
    --autosave-seconds 1
shot annotate_polygon 8 mouse:640,500 p click:576,461 click:691,438 click:737,541 click:645,622 mouse:600,690 \
    -- "$CT" --gt "$GT" --pred "$PRED" --edit gt --layout three --select liver \
    --window Abdomen --recovery-dir "$(mktemp -d)"
shot annotate_restore 3 mouse:1599,999 -- --recovery-dir "$REC"
rm -rf "$REC"

if ! want training_dashboard && ! want training_compare && ! want training_launch; then
    exit 0
fi

# Training dashboard: two real runs on s0001 written by separate `ctseg train`
# processes (the default recipe, and the design document's seed recipe: BCE with a
# plateau schedule that counts from the first epoch), followed live while they run.
RUNS=$(mktemp -d)
printf '[model]\ndepth = 3\n' >"$RUNS/small.toml"
train_run() {
    local name=$1; shift
    "$CTSEG_BIN" train --data "$S0001" --out "$RUNS/$name" --config "$RUNS/small.toml" \
        --backend cpu --max-steps 2000 --batch-size 6 --input-size 64 --base-channels 8 \
        --early-stopping 0 --cache-dir "$RUNS/cache" --quiet "$@" >"$RUNS/$name.log" 2>&1 &
    TRAIN_PIDS+=($!)
}
TRAIN_PIDS=()
trap '[[ -n $XVFB ]] && kill $XVFB 2>/dev/null; kill ${TRAIN_PIDS[*]} 2>/dev/null; true' EXIT
train_run default --steps-per-epoch 25
train_run seed-recipe --preset seed
sleep "${TRAIN_SECONDS:-300}"
for run in default seed-recipe; do
    [[ -f $RUNS/$run/metrics.jsonl ]] || { echo "training $run failed:" >&2; cat "$RUNS/$run.log" >&2; exit 1; }
done
shot training_dashboard 5 mouse:1599,999 -- --run "$RUNS/default"
shot training_compare 5 mouse:1599,999 -- --run "$RUNS/default" --run "$RUNS/seed-recipe"
kill "${TRAIN_PIDS[@]}" 2>/dev/null || true
wait "${TRAIN_PIDS[@]}" 2>/dev/null || true
TRAIN_PIDS=()
# A run launched from the Training tab's form (tiny CPU preset), mid-run.
shot training_launch "${LAUNCH_SECONDS:-8}" mouse:1599,999 -- --train-data "$S0001" --train-tiny \
    --train-out "$RUNS/gui-run" --train-start
rm -rf "$RUNS"
