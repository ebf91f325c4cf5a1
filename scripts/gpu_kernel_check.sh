#!/usr/bin/env bash
# The kernel loop on a GPU machine, in one call: build only what the CUDA operators need, run
# the CUDA operator tests, compute-sanitizer memcheck and racecheck on them, then the operator
# table, the low-rank gradient products against cuBLAS, the cost of each term of the fused
# kernels, the layer benchmark, one whole-model training step (Mixer-B/16) and the layer's
# per-kernel profile. SANITIZERS=0 / OPERATOR_BENCH=0 / MODEL_BENCH=0 skip those stages. Logs go
# to $OUT (or ./gpu-logs), at most eight files (what the GPU machine sends back): the build log only
# when the build fails, memcheck and racecheck in one; the tables are printed last.
#   bash scripts/gpu_kernel_check.sh [--quick]      (--quick: fewer shapes and shorter timings)
set -uo pipefail
out="${OUT:-gpu-logs}"
mkdir -p "$out"
build=build-gpu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
build_log="$work/build.log"
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader | tee "$build_log"
compilers=()
if [ -x /usr/bin/g++ ]; then compilers=(-DCMAKE_CXX_COMPILER=/usr/bin/g++ -DCMAKE_CUDA_HOST_COMPILER=/usr/bin/g++); fi
start=$SECONDS
cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release "${compilers[@]}" >>"$build_log" 2>&1
if ! cmake --build $build -j "$(nproc)" --target pixelfly pixelfly_cli ops_tests bench_pixelfly_linear >>"$build_log" 2>&1; then
  cp "$build_log" "$out/build.log"
  grep -m20 -B2 -A8 "error" "$build_log"
  exit 1
fi
echo "build: $((SECONDS - start)) s"
timeout 180 $build/tests/ops_tests --gtest_filter='BlockSparseOpsCuda.*:Autocast.*' >"$out/tests.log" 2>&1
tests_rc=$?
echo "tests: rc=$tests_rc $(grep -E '^\[  (PASSED|FAILED)' "$out/tests.log" | tr '\n' ' ')"
if [ $tests_rc != 0 ]; then  # timings of wrong kernels mean nothing
  grep -h -B2 -A6 "Failure\|FAILED\|error" "$out/tests.log" | head -60
  exit 1
fi
if [ "${SANITIZERS:-1}" != 0 ]; then
  timeout 150 compute-sanitizer --tool memcheck --error-exitcode 1 $build/tests/ops_tests \
    --gtest_filter='BlockSparseOpsCuda.*' >"$work/memcheck.log" 2>&1
  echo "memcheck rc=$? $(tail -1 "$work/memcheck.log")"
  timeout 300 compute-sanitizer --tool racecheck --error-exitcode 1 $build/tests/ops_tests \
    --gtest_filter='BlockSparseOpsCuda.AutogradOnCudaMatchesCpu:BlockSparseOpsCuda.FusedPixelflyLinearMatchesFloat64Reference:BlockSparseOpsCuda.LowRankGradProductsMatchFloat64Reference:BlockSparseOpsCuda.MixedOperatorsWithTheLowRankTermInAndBesideTheRing' \
    >"$work/racecheck.log" 2>&1
  echo "racecheck rc=$? $(tail -1 "$work/racecheck.log")"
  grep -m12 -A6 "Race reported\|Error: Race\|hazard" "$work/racecheck.log" | head -40
  { echo "=== compute-sanitizer memcheck"; cat "$work/memcheck.log"; echo "=== compute-sanitizer racecheck"
    cat "$work/racecheck.log"; } >"$out/sanitizers.log"
fi
if [ "${OPERATOR_BENCH:-1}" != 0 ]; then
  timeout 300 python3 bench/cuda_block_sparse_bench.py $build/libpixelfly.so "$@" >"$out/bench.log" 2>&1
  echo "operator bench rc=$?"
fi
timeout 120 python3 bench/low_rank_grad_products_bench.py $build/libpixelfly.so >"$out/low-rank-bench.log" 2>&1
echo "low-rank products bench rc=$?"
timeout 120 python3 bench/fused_kernel_terms_bench.py $build/libpixelfly.so >"$out/fused-terms.log" 2>&1
echo "fused kernel terms bench rc=$?"
timeout 120 $build/bench/bench_pixelfly_linear >"$out/layer.log" 2>&1
echo "layer bench rc=$?"
if [ "${MODEL_BENCH:-1}" != 0 ]; then
  timeout 150 $build/pixelfly bench --set model.preset=mixer-b16 --set data.name=synthetic-images \
    --set data.image_size=224 --set data.channels=3 --set data.classes=1000 --set data.synthetic_count=512 \
    --set data.eval_batch_size=64 --set data.batch_size=128 >"$out/bench-mixer-b16.log" 2>&1
  echo "model bench rc=$?"
fi
timeout 120 python3 bench/pixelfly_linear_profile.py $build/libpixelfly.so >"$out/layer-profile.log" 2>&1
echo "layer profile rc=$?"
sed -n '/^shape /,$p' "$out/bench.log" 2>/dev/null
cat "$out/low-rank-bench.log"
grep -v Warning "$out/fused-terms.log" | grep -v _warn_once
cat "$out/layer.log"
tail -3 "$out/bench-mixer-b16.log" 2>/dev/null
grep -A8 "^Mixer-B fc1\|^GPT-2-M fc1" "$out/layer-profile.log"
