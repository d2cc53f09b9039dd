#!/usr/bin/env bash
# How much do slide-to-slide differences cost a stored readout? After
# `bash scripts/her2st-transfer.sh WORK_DIR`:
#   bash scripts/her2st-stain.sh [WORK_DIR]          (default: eval-work)
# For each held-out section H (HOLDOUTS) and model (VARIANTS) the separate sample of the
# transfer script (H alone for 2D, H between its neighbours for 2.5D) is ingested again
# from perturbed copies of its section images, each perturbation drawn once per slide
# (a whole slide differs, as between labs or scanners; scripts/stain_perturb.py):
#   hed10 / hed20 / hed30  HED stain jitter after Tellez et al. (2018, 2019): each of
#                          haematoxylin, eosin and DAB (optical density) scaled by 1 +- s
#                          and shifted by +- s/10 on tissue, s = 0.1 / 0.2 / 0.3 (light,
#                          moderate, strong: stain amounts +-10-30%, the spread between
#                          labs' H&E protocols);
#   blur1                  Gaussian blur, sigma 1 px (1 um at the models of record's pixel size:
#                          a section slightly out of focus);
#   jpeg50                 JPEG at quality 50 (an aggressively compressed archive).
# Each perturbed sample is ingested twice: as read, and stain-normalised at ingest to a
# training section (`ingest sections --stain-reference`, Macenko; STAIN_REF, default the
# stack's first section, never held out), the unperturbed one too.
# Scores on H's spots, for each: the stored readout `transfer` (features standardised
# per sample, the default), the same readout fitted on raw features (`transfer-raw`),
# and the predictor head, as read and normalised. Writes WORK_DIR/stain.json.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-eval-work}
HOLDOUTS=${HOLDOUTS:-C3 C4 C5}
VARIANTS=${VARIANTS:-2d}                  # 2_5d: three-section stacks, 3x the time
PERTURBATIONS=${PERTURBATIONS:-none hed10 hed20 hed30 blur1}   # also: jpeg50, blurN, hedNN
[ -f "$W/transfer.json" ] || { echo "error: $W: run bash scripts/her2st-transfer.sh $W first" >&2; exit 1; }
# shellcheck source=scripts/her2st-separate.sh
. scripts/her2st-separate.sh
STAIN_REF=${STAIN_REF:-$W/volume/sections/$(echo $SECTIONS | cut -d' ' -f1).png}
rows=()
for H in $HOLDOUTS; do
  REF=$(reference_of "$H")
  for VAR in $VARIANTS; do
    S="$W/stores/$H-$VAR"
    UM=$(model_um "$H" "$VAR")
    separate_sample "$H" "$VAR"
    $V readout fit "$S" --name transfer-raw --sample her2st --reference "$REF" --no-per-sample --replace > /dev/null
    for P in $PERTURBATIONS; do
      D="$W/volume/sections"
      if [ "$P" != none ]; then
        D="$W/volume/perturbed/$P"
        mkdir -p "$D"
        for s in "${STACK[@]}"; do
          [ -f "$D/$s.png" ] || $PY scripts/stain_perturb.py "$W/volume/sections/$s.png" "$D/$s.png" "$P"
        done
      fi
      for N in read normalised; do
        TP="$T-$P-$N"
        if [ "$P" = none ] && [ "$N" = read ]; then
          TP="$T"
        else
          EXTRA=()
          [ "$N" = normalised ] && EXTRA=(--stain-reference "$STAIN_REF")
          $V ingest sections "$S" --sample "$TP" --spacing-um 32 --um-per-px "$UM" --overlap 0.67 \
            "${EXTRA[@]}" $(for s in "${STACK[@]}"; do printf '%s ' "$D/$s.png"; done) > /dev/null
        fi
        E="$W/out/$H-$VAR/stain/$P-$N"
        mkdir -p "$E"
        r=$($V --json eval "$S" --sample "$TP" --spots "$H-in-$T" --readout transfer --out "$E/readout" | pcc)
        q=$($V --json eval "$S" --sample "$TP" --spots "$H-in-$T" --readout transfer-raw --out "$E/raw" | pcc)
        h=$($V --json eval "$S" --sample "$TP" --spots "$H-in-$T" --out "$E/head" | pcc)
        rows+=("{\"holdout\": \"$H\", \"model\": \"$VAR\", \"perturbation\": \"$P\", \"stain\": \"$N\", \"stored_readout\": $r, \"raw_features_readout\": $q, \"predictor\": $h}")
        echo "$H $VAR $P $N: stored readout $r, raw-feature readout $q, predictor $h"
      done
    done
  done
done
(IFS=,; echo "[${rows[*]}]") | $PY -m json.tool > "$W/stain.json"
$PY scripts/stain_summary.py "$W/stain.json"
echo "$W/stain.json"
