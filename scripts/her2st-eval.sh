#!/usr/bin/env bash
# Real-data evaluation on ../shared/data/her2st (patient C), one command:
#   bash scripts/her2st-eval.sh [WORK_DIR]          (default: eval-work)
# Environment: HER2ST (data), HOLDOUTS, VARIANTS, TRAIN_WORK, REPORT, TRAIN_OPTS (options
# of `vortex_train her2st`; default: the model of record, 112-px patches of 16-px ViT
# tokens, SimCLR pretraining for 40 epochs on every tissue tile, colour/stain
# augmentation; TRAIN_OPTS="" trains the small 32-px model of 2026-11-26), UM_PER_PX
# (pixel size of the registered sections, default: the trained model's, 112 um / image size),
# REGISTRATION (a transforms file of `vortexdb register sections` on the section JPEGs:
# training and the store then place the sections by it instead of the study's alignment;
# use another TRAIN_WORK and WORK_DIR, as checkpoints and volumes are reused).
# 1. registers sections C2..C6 into one 2.5D volume (python -m vortex_train her2st-volume);
# 2. for each held-out section (HOLDOUTS, default C3 C4 C5) trains the 2D and 2.5D models
#    on the other sections (python -m vortex_train her2st; checkpoints are reused from
#    training/work/her2st-<S>, so a re-run skips training);
# 3. for each model builds a store with vortexdb: ingest sections (--spacing-um 32),
#    ingest the spots of every section, eval on the held-out spots (model predictor, the
#    ridge readout fitted on the other sections' spots, the BLEEP-style kNN baseline), the HEST-style probe on the stored embeddings at the
#    spots (spots export --image + python -m vortex_train probe --spots), molecular
#    queries (ERBB2+GRB7, immune), domains k=4,5;
#    then scripts/her2st-transfer.sh: the readout fitted once and stored, applied to the
#    held-out section ingested as a sample of its own without spots;
# 4. writes docs/EVALUATION.md's tables and docs/eval/*.png (python -m vortex_train her2st-report).
# Runtime on the 2-core development machine: see docs/EVALUATION.md.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-eval-work}
DATA=${HER2ST:-../shared/data/her2st}
HOLDOUTS=${HOLDOUTS:-C3 C4 C5}
VARIANTS=${VARIANTS:-2_5d 2d}
TRAIN_WORK=${TRAIN_WORK:-training/work}   # checkpoints: TRAIN_WORK/her2st-<S>
REPORT=${REPORT:-docs/eval}               # results.md/json and figures
TRAIN_OPTS=${TRAIN_OPTS-"--image-size 112 --vit-patch 16 --pretrain-epochs 40 --pretrain-tiles 1500 --augment 1"}
if [ -n "${REGISTRATION:-}" ]; then
  VORTEX_HER2ST_TRANSFORMS=$(realpath "$REGISTRATION")
  export VORTEX_HER2ST_TRANSFORMS
fi
MARKERS=RRM2,FGFR4,BAG1,PHGDH,MLPH,MYC,CDH1,ERBB3,ESR1,KMT2C,MAP2K4,MDM2,PTEN,ARID1A,ERBB2,FGFR1,GATA3,KMT2D,MAP3K1,TP53
IMMUNE=${IMMUNE:-IGKC,IGHG3,IGLC2,CD74}
if [ ! -d "$DATA/counts" ]; then
  echo "error: $DATA: her2st data not found (set HER2ST=DIR)" >&2
  exit 1
fi
bash scripts/setup-python.sh
bash scripts/setup-ort.sh
cargo build --release --quiet
ORT_DYLIB_PATH=$(ls "$PWD"/.ort/lib/libonnxruntime.so* | head -1)
export ORT_DYLIB_PATH
V=$PWD/target/release/vortexdb
PY=".venv/bin/python"
export PYTHONPATH=training
t0=$(date +%s)
mkdir -p "$W"
for H in $HOLDOUTS; do
  # shellcheck disable=SC2086
  [ -f "$W/models/$H/2_5d/manifest.json" ] && [ -f "$W/$H.json" ] ||
    $PY -m vortex_train her2st --data "$DATA" --holdout "$H" --work "$TRAIN_WORK/her2st-$H" \
      --out "$W/$H.json" --export "$W/models/$H" $TRAIN_OPTS > "$W/train-$H.log" 2>&1
done
# The sections are registered at the models' pixel size (112 um over the patch's pixels).
FIRST=$(echo $HOLDOUTS | cut -d' ' -f1)
UM_PER_PX=${UM_PER_PX:-$($PY -c "import json; print(json.load(open('$W/models/$FIRST/2_5d/manifest.json'))['patch']['um_per_px'])")}
[ -f "$W/volume/volume.json" ] || $PY -m vortex_train her2st-volume --data "$DATA" --out "$W/volume" --um-per-px "$UM_PER_PX"
SECTIONS=$($PY -c "import json; print(' '.join(json.load(open('$W/volume/volume.json'))['stack']))")
for H in $HOLDOUTS; do
  REF=$(for s in $SECTIONS; do [ "$s" != "$H" ] && printf '%s,' "$s"; done | sed 's/,$//')
  FROM=$(for s in $SECTIONS; do [ "$s" != "$H" ] && printf -- '--spots-from %s ' "$s"; done)
  for VAR in $VARIANTS; do
    S="$W/stores/$H-$VAR"
    O="$W/out/$H-$VAR"
    rm -rf "$S" "$O"
    mkdir -p "$O"
    $V init "$S" > /dev/null
    $V models add "$S" "$W/models/$H/$VAR" > /dev/null
    $V --json ingest sections "$S" --sample her2st --spacing-um 32 --um-per-px "$UM_PER_PX" --overlap 0.67 \
      $(for s in $SECTIONS; do printf '%s ' "$W/volume/sections/$s.png"; done) > "$O/ingest.json" 2> /dev/null
    for s in $SECTIONS; do
      $V ingest spots "$S" --sample "$s" "$W/volume/spots_$s.parquet" > /dev/null
    done
    $V --json eval "$S" --sample her2st --spots "$H" --markers "$MARKERS" --out "$O/model" > /dev/null
    $V --json eval "$S" --sample her2st --spots "$H" --markers "$MARKERS" --knn 50 --reference "$REF" \
      --out "$O/knn" > /dev/null
    $V --json eval "$S" --sample her2st --spots "$H" --markers "$MARKERS" --ridge --reference "$REF" \
      --out "$O/ridge" > /dev/null
    # The HEST-style probe through the store: the stored patch embeddings at every
    # section's spots, PCA-256 + ridge fit on the other sections, scored on the held-out one.
    for s in $SECTIONS; do
      $V spots export "$S" --sample "$s" --image her2st --out "$O/spots/$s" > /dev/null
    done
    # shellcheck disable=SC2046
    $PY -m vortex_train probe --spots $(for s in $SECTIONS; do printf '%s ' "$O/spots/$s"; done) --test "$H" \
      --out "$O/probe" > "$O/probe.log"
    # shellcheck disable=SC2086
    $V query genes "$S" --sample her2st --genes ERBB2,GRB7 $FROM --downsample 1 --out "$O/q_erbb2" > /dev/null
    # shellcheck disable=SC2086
    $V query genes "$S" --sample her2st --genes "$IMMUNE" $FROM --downsample 1 --out "$O/q_immune" > /dev/null
    for K in 4 5; do
      $V domains "$S" --sample her2st --k "$K" --downsample 1 --out "$O/domains_k$K" > /dev/null
    done
    echo "$H $VAR: done ($(( $(date +%s) - t0 )) s)"
  done
done
HOLDOUTS="$HOLDOUTS" VARIANTS="$VARIANTS" bash scripts/her2st-transfer.sh "$W" > "$W/transfer.log" 2>&1
# shellcheck disable=SC2086
$PY -m vortex_train her2st-report --work "$W" --holdouts $HOLDOUTS --out "$REPORT" \
  --seconds $(( $(date +%s) - t0 ))
