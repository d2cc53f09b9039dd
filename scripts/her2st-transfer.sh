#!/usr/bin/env bash
# Does a stored readout transfer? On the stores of `bash scripts/her2st-eval.sh WORK_DIR`:
#   bash scripts/her2st-transfer.sh [WORK_DIR]       (default: eval-work)
# For each held-out section H (HOLDOUTS, default C3 C4 C5) and model (VARIANTS, 2d 2_5d):
# 1. fits the ridge readout on the stack sample's other sections' spots and stores it
#    (`readout fit --name transfer --sample her2st --reference <the others>`);
# 2. ingests H again as a separate sample with no spots: its own image alone for the 2D
#    model (sample `H-alone`), H between its two neighbours for the 2.5D one (`H-stack`);
#    H's spots go in as a separate spot sample placed in that sample's frame (only to
#    score it: the readout never sees them);
# 3. scores on H's spots: the stored readout on the separate sample, the predictor head
#    and the kNN baseline there, and the within-sample ridge of the stack for comparison.
# Writes WORK_DIR/transfer.json and prints one table.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-eval-work}
HOLDOUTS=${HOLDOUTS:-C3 C4 C5}
VARIANTS=${VARIANTS:-2d 2_5d}
[ -f "$W/volume/volume.json" ] || { echo "error: $W: run bash scripts/her2st-eval.sh $W first" >&2; exit 1; }
# shellcheck source=scripts/her2st-separate.sh
. scripts/her2st-separate.sh
MARKERS=RRM2,FGFR4,BAG1,PHGDH,MLPH,MYC,CDH1,ERBB3,ESR1,KMT2C,MAP2K4,MDM2,PTEN,ARID1A,ERBB2,FGFR1,GATA3,KMT2D,MAP3K1,TP53
rows=()
for H in $HOLDOUTS; do
  REF=$(reference_of "$H")
  for VAR in $VARIANTS; do
    S="$W/stores/$H-$VAR"
    UM=$(model_um "$H" "$VAR")
    $V readout fit "$S" --name transfer --sample her2st --reference "$REF" --replace > /dev/null
    separate_sample "$H" "$VAR"
    Z=0
    for i in "${!STACK[@]}"; do if [ "${STACK[$i]}" = "$H" ]; then Z=$i; fi; done
    $V ingest sections "$S" --sample "$T" --spacing-um 32 --um-per-px "$UM" --overlap 0.67 \
      $(for s in "${STACK[@]}"; do printf '%s ' "$W/volume/sections/$s.png"; done) > /dev/null
    # H's spots at z = its place in the new sample (x, y are the common frame's, as the sections).
    $PY -c "
import pyarrow.parquet as pq, pyarrow as pa, numpy as np
t = pq.read_table('$W/volume/spots_$H.parquet')
t = t.set_column(t.column_names.index('z'), 'z', pa.array(np.full(t.num_rows, float($Z))))
pq.write_table(t, '$W/volume/spots_${H}_in_$T.parquet')"
    $V ingest spots "$S" --sample "$H-in-$T" "$W/volume/spots_${H}_in_$T.parquet" > /dev/null
    E="$W/out/$H-$VAR/transfer"
    mkdir -p "$E"
    r=$($V --json eval "$S" --sample "$T" --spots "$H-in-$T" --markers "$MARKERS" --readout transfer --out "$E/readout" | pcc)
    h=$($V --json eval "$S" --sample "$T" --spots "$H-in-$T" --markers "$MARKERS" --out "$E/head" | pcc)
    k=$($V --json eval "$S" --sample "$T" --spots "$H-in-$T" --markers "$MARKERS" --knn 50 --reference "$REF" --out "$E/knn" | pcc)
    w=$($V --json eval "$S" --sample her2st --spots "$H" --markers "$MARKERS" --ridge --reference "$REF" --out "$E/within" | pcc)
    rows+=("{\"holdout\": \"$H\", \"model\": \"$VAR\", \"sample\": \"$T\", \"stored_readout\": $r, \"predictor\": $h, \"knn\": $k, \"within_sample_ridge\": $w}")
    echo "$H $VAR ($T): stored readout $r, predictor $h, kNN $k; within-sample ridge $w"
  done
done
(IFS=,; echo "[${rows[*]}]") | $PY -m json.tool > "$W/transfer.json"
echo "$W/transfer.json"
