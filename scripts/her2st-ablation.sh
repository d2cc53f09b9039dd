#!/usr/bin/env bash
# Ablation of issue 22 on her2st patient C, leave one section out (C3, C4, C5):
# today's model against higher resolution, self-supervised pretraining, and both, all
# trained and scored by `python -m vortex_train her2st` (held-out PCC over the 269-gene
# panel of the 2D and 2.5D models and of the BLEEP-style kNN on their embeddings, and
# the HEST-style probe of raw pixels, the encoder before stage I, and the trained 2D
# and 2.5D encoders), then one Markdown table (vortex_train ablation-report).
#   bash scripts/her2st-ablation.sh [WORK_DIR]     (default: ablation-work)
# Environment: HER2ST (data), HOLDOUTS (default C3 C4 C5), CONFIGS (default: all four),
# PRETRAIN_EPOCHS (default 10), PRETRAIN_TILES (per section, default 600), THREADS
# (default 2). Re-runs reuse finished results and
# checkpoints. Time and peak memory of each run: WORK_DIR/<config>-<S>.time.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-ablation-work}
DATA=${HER2ST:-../shared/data/her2st}
HOLDOUTS=${HOLDOUTS:-C3 C4 C5}
CONFIGS=${CONFIGS:-base res ssl res_ssl}
PRETRAIN_EPOCHS=${PRETRAIN_EPOCHS:-10}
PRETRAIN_TILES=${PRETRAIN_TILES:-600}
THREADS=${THREADS:-2}
if [ ! -d "$DATA/counts" ]; then
  echo "error: $DATA: her2st data not found (set HER2ST=DIR)" >&2
  exit 1
fi
bash scripts/setup-python.sh
PY=".venv/bin/python"
export PYTHONPATH=$PWD/training
mkdir -p "$W"
opts() {
  case "$1" in
    base) echo "" ;;                                         # today's model: 32 px at 3.5 um/px
    res) echo "--image-size 112 --vit-patch 16" ;;           # 112 px at 1 um/px
    ssl) echo "--pretrain-epochs $PRETRAIN_EPOCHS --pretrain-tiles $PRETRAIN_TILES --augment 1" ;;
    res_ssl) echo "--image-size 112 --vit-patch 16 --pretrain-epochs $PRETRAIN_EPOCHS --pretrain-tiles $PRETRAIN_TILES \
      --augment 1" ;;
    *) echo "unknown config $1" >&2; exit 1 ;;
  esac
}
for C in $CONFIGS; do
  for H in $HOLDOUTS; do
    [ -f "$W/$C-$H.json" ] && continue
    echo "$C $H: training ($(date +%T))"
    # shellcheck disable=SC2046
    /usr/bin/time -v -o "$W/$C-$H.time" $PY -m vortex_train her2st --data "$DATA" --holdout "$H" \
      --threads "$THREADS" --work "$W/ckpt/$C-$H" --out "$W/$C-$H.json" $(opts "$C") > "$W/$C-$H.log" 2>&1
  done
done
# shellcheck disable=SC2086
$PY -m vortex_train ablation-report --work "$W" --configs $CONFIGS --holdouts $HOLDOUTS
