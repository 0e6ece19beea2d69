#!/usr/bin/env bash
# After the objects GAN run stops: P-NET on its generator, then the benchmark runs quoted in BENCHMARK.md.
#   bash scripts/finish_objects.sh runs/objects [pnet_steps]
set -euo pipefail
RUN=${1:-runs/objects}
STEPS=${2:-2000}
LV=".venv/bin/latentvideo"
if [ ! -d "$RUN/projector" ]; then
  $LV train projector --gan "$RUN" --steps "$STEPS" --batch-size 32 --hidden 512
fi
$LV bench --model "$RUN" --quick --groups objects,critic,path --out "$RUN-bench-quick"
