#!/usr/bin/env bash
# Same-machine comparison of builds on a GPU machine, where host speed differs from one machine
# to the next (the layer and model steps are partly host-bound): builds another source tree (the
# base) beside this one, then runs the layer benchmark and the GPT-2 model benchmarks of both,
# interleaved, `ROUNDS` times (default 2; odd rounds run the other build first, even rounds this
# one, so that a drift of the GPU within the run does not favour one build). With BENCH=ops it
# runs the operator table (bench/cuda_block_sparse_bench.py, extra arguments passed on) instead,
# after this tree's CUDA operator tests, each build through its own tree's script (a script that
# calls what only one build has would otherwise fail on the other); there, more source trees may
# follow the base (candidates measured in the same run; the rounds rotate the order of all
# builds) and the table shows every build's time and its speed-up over the base. Logs go to $OUT
# (or ./gpu-logs), one per build and round (and the tests' with BENCH=ops; the build logs only
# when a build fails), so that a few rounds stay within the eight files the GPU machine sends
# back.
#   here:            git archive <revision> | (mkdir -p other-src && tar -x -C other-src)
#   on the machine:  bash scripts/gpu_compare_builds.sh other-src
#                    BENCH=ops ROUNDS=1 bash scripts/gpu_compare_builds.sh other-src [MORE_SRC...] [--quick]
# (other-src is ignored by git: copy it to the GPU machine along with the working tree.)
set -uo pipefail
other="${1:?usage: gpu_compare_builds.sh OTHER_SOURCE_DIR [MORE_SOURCE_DIRS] [operator bench arguments]}"
shift
more=()  # further source trees (BENCH=ops only): the arguments before the first option
while [ $# -gt 0 ] && [ -d "$1" ]; do more+=("$1"); shift; done
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
    cmake --build "$dir" -j "${JOBS:-$(($(nproc) / 2))}" --target "$@" >>"$log" 2>&1; } || { cp "$log" "$out/"; return 1; }
}
[ ${#more[@]} -gt 0 ] && [ $ops = 0 ] && { echo "more than one other tree needs BENCH=ops"; exit 1; }
names=(other gpu)  # build-NAME, ops-NAME-ROUND.log
sources=("$other" .)
for src in "${more[@]}"; do names+=("$(basename "$src")"); sources+=("$src"); done
source_of() { local i; for i in "${!names[@]}"; do [ "${names[$i]}" = "$1" ] && echo "${sources[$i]}"; done; }
order() {  # the builds of round $1: each round starts one build further on
  local n=${#names[@]} i
  for i in $(seq 0 $((n - 1))); do echo "${names[$(((i + $1 - 1) % n))]}"; done
}
start=$SECONDS
if [ $ops = 1 ]; then
  jobs=$(($(nproc) / ${#names[@]}))
  [ $jobs -lt 2 ] && jobs=2
  pids=()
  for i in "${!names[@]}"; do
    targets=(pixelfly)
    [ "${names[$i]}" = gpu ] && targets+=(ops_tests)
    JOBS=$jobs build "${sources[$i]}" "build-${names[$i]}" "${targets[@]}" & pids+=($!)
  done
  for i in "${!names[@]}"; do
    wait "${pids[$i]}" || { echo "build of ${sources[$i]} failed"; grep -m10 -A5 error "$work/build-build-${names[$i]}.log"; exit 1; }
  done
  echo "builds: $((SECONDS - start)) s"
else
  build . build-gpu pixelfly_cli bench_pixelfly_linear & this=$!
  build "$other" build-other pixelfly_cli bench_pixelfly_linear & that=$!
  wait $this || { echo "this tree's build failed"; grep -m10 -A5 error "$work/build-build-gpu.log"; exit 1; }
  wait $that || { echo "the other tree's build failed"; exit 1; }
  echo "builds: $((SECONDS - start)) s"
fi
if [ $ops = 1 ]; then
  timeout 180 build-gpu/tests/ops_tests --gtest_filter='BlockSparseOpsCuda.*:Autocast.*' >"$out/tests.log" 2>&1
  rc=$?
  echo "tests: rc=$rc $(grep -E '^\[  (PASSED|FAILED)' "$out/tests.log" | tr '\n' ' ')"
  if [ $rc != 0 ]; then grep -h -B2 -A6 "Failure\|FAILED" "$out/tests.log" | head -40; exit 1; fi
  for round in $(seq "${ROUNDS:-2}"); do
    for b in $(order "$round"); do
      timeout 280 python3 "$(source_of "$b")/bench/cuda_block_sparse_bench.py" build-$b/libpixelfly.so "$@" >"$out/ops-$b-$round.log" 2>&1
      echo "round $round build-$b: rc=$?"
    done
  done
  # Side by side, each round: every build's time (the base first, then this tree, then the
  # others) with its speed-up over the base, and this tree's roofline efficiency and L2 rate.
  for round in $(seq "${ROUNDS:-2}"); do
    echo "round $round: ${names[*]}"
    tables=()
    for b in "${names[@]}"; do
      sed -n '/^shape /,$p' "$out/ops-$b-$round.log" | grep -E ' [0-9.]+e[-+][0-9]+( |$)' >"$work/table-$b"
      tables+=("$work/table-$b")
    done
    paste -d'|' "${tables[@]}" |
      awk -F'|' -v builds=${#names[@]} 'BEGIN { printf "%-16s %-18s %3s %8s", "shape", "layout", "op", "base ms";
                            for (i = 2; i <= builds; i++) printf " %8s %6s", "ms", "x"; printf " %8s %7s\n", "roofline", "L2 TB/s" }
                 function relerr(f, k,   j) { for (j = k; j > 0; j--) if (f[j] ~ /^[0-9.]+e[-+][0-9]+$/) return j }
                 { split($1, a, "  +"); r = relerr(x, split($1, x, " +")); printf "%-16s %-18s %3s %8s", a[1], a[2], x[r - 8], x[r - 6];
                   for (i = 2; i <= NF; i++) { s = relerr(y, split($i, y, " +")); printf " %8s %5.2fx", y[s - 6], x[r - 6] / y[s - 6] }
                   s = relerr(y, split($2, y, " +")); printf " %8s %7s\n", y[s - 4], y[s - 3] }'
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
