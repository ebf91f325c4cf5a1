#!/usr/bin/env bash
# The main job of `make run`: trains the small MLP-Mixer on Fashion-MNIST twice, dense and with
# Pixelated Butterfly channel MLPs, on whatever device is there (the GPU when present, else the
# CPU), then prints both runs side by side. The runs are written to runs/main_job/{dense,pixelfly}
# (replaced on every `make run`).
set -euo pipefail
build="${1:-build}"
cli="$build/pixelfly"
runs="${PIXELFLY_MAIN_JOB_DIR:-runs/main_job}"

for variant in dense pixelfly; do
  echo "== training mixer-small28 on Fashion-MNIST: $variant"
  rm -rf "$runs/$variant"
  "$cli" train --config configs/mixer_fmnist.json --set "model.sparsity=$variant" --set "run.dir=$runs/$variant"
  echo
done

python3 - "$runs" <<'PY'
import json, sys
runs = sys.argv[1]
rows = {v: json.load(open(f"{runs}/{v}/summary.json")) for v in ("dense", "pixelfly")}
dense_ms = rows["dense"]["median_step_ms"]
print(f"Fashion-MNIST, mixer-small28, {rows['dense']['epochs']} epochs on {rows['dense']['device']}")
print(f"| model    | test accuracy | parameters | training GFLOP/step | step (ms) | speed-up |")
print(f"|----------|---------------|------------|---------------------|-----------|----------|")
for name, r in rows.items():
    print(f"| {name:<8} | {100 * r['eval_accuracy']:12.2f}% | {r['parameters']:>10,} | "
          f"{r['train_flops_per_step'] / 1e9:19.2f} | {r['median_step_ms']:9.1f} | "
          f"{dense_ms / r['median_step_ms']:7.2f}x |")
PY
