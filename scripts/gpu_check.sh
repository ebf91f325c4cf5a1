#!/usr/bin/env bash
# One pass on a GPU machine: build against that machine's LibTorch, run the whole test suite
# (CUDA tests included), compute-sanitizer memcheck and racecheck on the CUDA tests, then the
# CUDA benchmark table. Logs go to $OUT (or ./gpu-logs), at most eight files (what the GPU
# machine sends back: the configure and build logs only when they fail); each stage has its own
# time limit so a slow stage cannot hide the others' results.
#   bash scripts/gpu_check.sh [--quick]
# Environment: OPS_BENCH=0 skips the operator table, SANITIZERS=0 the compute-sanitizer runs,
# LAYER_BENCH=0 the layer benchmark (to fit a per-command time limit, run them in separate calls).
set -uo pipefail
out="${OUT:-gpu-logs}"
mkdir -p "$out"
build=build-gpu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv | tee "$out/summary.txt"

stage() {  # stage NAME SECONDS COMMAND...: the log goes to $out, configure's and build's to $work
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS log="$out/$name.log"
  case $name in configure | build) log="$work/$name.log" ;; esac
  timeout "$limit" "$@" >"$log" 2>&1
  local rc=$?
  printf '%-10s rc=%-3s %4ss\n' "$name" "$rc" "$((SECONDS - start))" | tee -a "$out/summary.txt"
  [ $rc = 0 ] || [ "$log" = "$out/$name.log" ] || cp "$log" "$out/"
  return $rc
}

# Build with the system g++ (shared libstdc++) where there is one: a compiler that links
# libstdc++ statically into libpixelfly.so crashes when the library is loaded into Python.
compilers=()
if [ -x /usr/bin/g++ ]; then compilers=(-DCMAKE_CXX_COMPILER=/usr/bin/g++ -DCMAKE_CUDA_HOST_COMPILER=/usr/bin/g++); fi
stage configure 120 cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release "${compilers[@]}"
stage build 540 cmake --build $build -j "$(nproc)" || { tail -40 "$work/build.log"; exit 1; }
stage ctest 300 ctest --test-dir $build -j 4 --output-on-failure
tail -3 "$out/ctest.log"
if [ "${SANITIZERS:-1}" != 0 ]; then
  stage memcheck 120 compute-sanitizer --tool memcheck --error-exitcode 1 \
    $build/tests/ops_tests --gtest_filter='BlockSparseOpsCuda.*'
  tail -2 "$out/memcheck.log"
  stage racecheck 90 compute-sanitizer --tool racecheck --error-exitcode 1 \
    $build/tests/ops_tests --gtest_filter='BlockSparseOpsCuda.AutogradOnCudaMatchesCpu'
  tail -2 "$out/racecheck.log"
fi
if [ "${OPS_BENCH:-1}" != 0 ]; then
  stage bench 300 python3 bench/cuda_block_sparse_bench.py $build/libpixelfly.so "$@"
  sed -n '/^shape /,$p' "$out/bench.log"
fi
if [ "${LAYER_BENCH:-1}" != 0 ]; then
  stage layer_bench 120 $build/bench/bench_pixelfly_linear
  cat "$out/layer_bench.log"
fi
cat "$out/summary.txt"
