# Sourced by scripts/her2st-transfer.sh and scripts/her2st-stain.sh (from the repository
# root, with W set to the work directory of scripts/her2st-eval.sh): what both need.
# V, PY and ORT_DYLIB_PATH; SECTIONS (the registered stack); pcc (PCC over all genes of
# an `eval --json` on stdin); reference_of H (the other sections, comma-separated);
# model_um H VAR (the model's pixel size); separate_sample H VAR, which sets T (the
# held-out section's separate sample: H alone for the 2D model, H between its
# neighbours for the 2.5D one) and STACK (its sections, in order).
ORT_DYLIB_PATH=$(ls "$PWD"/.ort/lib/libonnxruntime.so* | head -1)
export ORT_DYLIB_PATH
V=$PWD/target/release/vortexdb
PY=".venv/bin/python"
SECTIONS=$($PY -c "import json; print(' '.join(json.load(open('$W/volume/volume.json'))['stack']))")
pcc() { $PY -c "import json,sys; print(json.load(sys.stdin)['report']['pcc_all'])"; }
reference_of() {
  for s in $SECTIONS; do [ "$s" != "$1" ] && printf '%s,' "$s"; done | sed 's/,$//'
}
model_um() {
  $PY -c "import json; print(json.load(open('$W/models/$1/$2/manifest.json'))['patch']['um_per_px'])"
}
separate_sample() {
  if [ "$2" = 2d ]; then
    T="$1-alone"; STACK=("$1")
  else
    T="$1-stack"
    # shellcheck disable=SC2207
    STACK=($($PY -c "s='$SECTIONS'.split(); i=s.index('$1'); print(' '.join(s[max(i-1,0):i+2]))"))
  fi
}
