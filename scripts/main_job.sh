#!/usr/bin/env bash
# The main job of `make run`: shows what pixelfly does on this machine, end to end, with the
# built tool and library: a flat block butterfly layout, a density budget planned for the
# Mixer-B and GPT-2-medium MLP layers, and the speed of the block-sparse product against
# dense matmul on this CPU.
set -euo pipefail
build="${1:-build}"
cli="$build/pixelfly"

echo "== A flat block butterfly layout: 512 x 512, n=8, k=2, block 64 (X = nonzero block)"
"$cli" mask --out 512 --in 512 --butterfly-size 8 --factors 2 --block 64
echo
echo "== Budget: MLP layers at 25 % density, 20 % of it low rank"
"$cli" plan --density mlp=0.25 --low-rank-share 0.2 \
  --layer mixer-b.fc1:mlp:3072x768 --layer mixer-b.fc2:mlp:768x3072 \
  --layer gpt2-medium.fc1:mlp:4096x1024 --layer gpt2-medium.fc2:mlp:1024x4096
echo
echo "== Y = X W^T on this CPU: block-sparse (flat butterfly) against dense torch::matmul"
if [ -x "$build/bench/bench_cpu_block_sparse" ]; then
  "$build/bench/bench_cpu_block_sparse" --benchmark_filter='d:1024/T:512' 2>/dev/null | sed -n '/^Y = X/,$p'
fi
