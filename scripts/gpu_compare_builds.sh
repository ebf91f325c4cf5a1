#!/usr/bin/env bash
# Same-machine comparison of two builds on a GPU machine, where host speed differs from one
# machine to the next (the layer and model steps are partly host-bound): builds another source
# tree beside this one, then runs the layer benchmark and the GPT-2 model benchmarks of both,
# interleaved, `ROUNDS` times (default 2; odd rounds run the other build first, even rounds this
# one, so that a drift of the GPU within the run does not favour one build). With BENCH=ops it
# runs the operator table (bench/cuda_block_sparse_bench.py, extra arguments passed on) of both
# instead, after this tree's CUDA operator tests, each build through its own tree's script (a
# script that calls what only one build has would otherwise fail on the other). Logs go to $OUT
# (or ./gpu-logs), one per build and round (and the tests' with BENCH=ops; the build logs only
# when a build fails), so that up to three rounds stay within the eight files the GPU machine
# sends back.
#   here:            git archive <revision> | (mkdir -p other-src && tar -x -C other-src)
#   on the machine:  bash scripts/gpu_compare_builds.sh other-src
#                    BENCH=ops ROUNDS=1 bash scripts/gpu_compare_builds.sh other-src [--quick]
# (other-src is ignored by git: copy it to the GPU machine along with the working tree.)
set -uo pipefail
other="${1:?usage: gpu_compare_builds.sh OTHER_SOURCE_DIR [operator bench arguments]}"
shift
out="${OUT:-gpu-logs}"
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
compilers=()
if [ -x /usr/bin/g++ ]; then compilers=(-DCMAKE_CXX_COMPILER=/usr/bin/g++ -DCMAKE_CUDA_HOST_COMPILER=/usr/bin/g++); fi
ops=0
[ "${BENCH:-models}" = ops ] && ops=1
build() {  # source dir, build dir, targets...
  local src=$1 dir=$2
  shift 2
  local log="$work/build-$(basename "$dir").log"
  { cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "${compilers[@]}" >"$log" 2>&1 &&
    cmake --build "$dir" -j "$(($(nproc) / 2))" --target "$@" >>"$log" 2>&1; } || { cp "$log" "$out/"; return 1; }
}
order() { if [ $(($1 % 2)) = 1 ]; then echo other gpu; else echo gpu other; fi; }  # the builds of round $1
start=$SECONDS
if [ $ops = 1 ]; then
  build . build-gpu pixelfly ops_tests & this=$!
  build "$other" build-other pixelfly & that=$!
else
  build . build-gpu pixelfly_cli bench_pixelfly_linear & this=$!
  build "$other" build-other pixelfly_cli bench_pixelfly_linear & that=$!
fi
wait $this || { echo "this tree's build failed"; grep -m10 -A5 error "$work/build-build-gpu.log"; exit 1; }
wait $that || { echo "the other tree's build failed"; exit 1; }
echo "builds: $((SECONDS - start)) s"
if [ $ops = 1 ]; then
  timeout 180 build-gpu/tests/ops_tests --gtest_filter='BlockSparseOpsCuda.*:Autocast.*' >"$out/tests.log" 2>&1
  rc=$?
  echo "tests: rc=$rc $(grep -E '^\[  (PASSED|FAILED)' "$out/tests.log" | tr '\n' ' ')"
  if [ $rc != 0 ]; then grep -h -B2 -A6 "Failure\|FAILED" "$out/tests.log" | head -40; exit 1; fi
  for round in $(seq "${ROUNDS:-2}"); do
    for b in $(order "$round"); do
      src=.
      [ "$b" = other ] && src="$other"
      timeout 280 python3 "$src/bench/cuda_block_sparse_bench.py" build-$b/libpixelfly.so "$@" >"$out/ops-$b-$round.log" 2>&1
      echo "round $round build-$b: rc=$?"
    done
  done
  # Side by side, each round: our time in the other build and in this one, and this one's
  # roofline efficiency and L2 rate.
  for round in $(seq "${ROUNDS:-2}"); do
    echo "round $round"
    paste -d'|' <(sed -n '/^shape /,$p' "$out/ops-other-$round.log") <(sed -n '/^shape /,$p' "$out/ops-gpu-$round.log") |
      awk -F'|' 'NR == 1 { printf "%-16s %-18s %3s %9s %9s %8s %8s %7s\n", "shape", "layout", "op", "other ms",
                            "this ms", "speedup", "roofline", "L2 TB/s"; next }
                 { split($1, a, "  +"); n = split($1, x, " +"); split($2, y, " +");
                   printf "%-16s %-18s %3s %9s %9s %7.2fx %8s %7s\n", a[1], a[2], x[n - 8], x[n - 6], y[n - 6],
                          x[n - 6] / y[n - 6], y[n - 4], y[n - 3] }'
  done
  exit 0
fi
text=(--set data.name=synthetic-text --set data.synthetic_count=400000 --set data.context=1024
      --set data.batch_size=8 --set data.eval_batch_size=8)
for round in $(seq "${ROUNDS:-2}"); do
  for b in $(order "$round"); do
    timeout 60 build-$b/bench/bench_pixelfly_linear >"$work/layer-$b-$round.log" 2>&1
    for model in gpt2-small gpt2-medium; do
      timeout 90 build-$b/pixelfly bench --set model.preset=$model "${text[@]}" >"$work/$model-$b-$round.log" 2>&1
      echo "round $round $model build-$b: $(tail -2 "$work/$model-$b-$round.log" | awk '{printf "%s %s ms  ", $1, $4}')"
    done
    for part in layer gpt2-small gpt2-medium; do
      echo "=== $part"
      cat "$work/$part-$b-$round.log"
    done >"$out/models-$b-$round.log"
  done
done
for f in "$work"/layer-*.log; do echo "== $(basename "$f")"; tail -5 "$f"; done
