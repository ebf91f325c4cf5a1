#!/usr/bin/env bash
# Same-machine comparison of two builds on a GPU machine, where host speed differs from one
# machine to the next (the layer and model steps are partly host-bound): builds another source
# tree beside this one, then runs the layer benchmark and the GPT-2 model benchmarks of both,
# interleaved, `ROUNDS` times (default 2). Logs go to $OUT (or ./gpu-logs).
#   here:            git archive <revision> | (mkdir -p other-src && tar -x -C other-src)
#   on the machine:  bash scripts/gpu_compare_builds.sh other-src
# (other-src is ignored by git: copy it to the GPU machine along with the working tree.)
set -uo pipefail
other="${1:?usage: gpu_compare_builds.sh OTHER_SOURCE_DIR}"
out="${OUT:-gpu-logs}"
mkdir -p "$out"
compilers=()
if [ -x /usr/bin/g++ ]; then compilers=(-DCMAKE_CXX_COMPILER=/usr/bin/g++ -DCMAKE_CUDA_HOST_COMPILER=/usr/bin/g++); fi
build() {  # source dir, build dir
  cmake -S "$1" -B "$2" -G Ninja -DCMAKE_BUILD_TYPE=Release "${compilers[@]}" >"$out/build-$(basename "$2").log" 2>&1 &&
    cmake --build "$2" -j "$(($(nproc) / 2))" --target pixelfly_cli bench_pixelfly_linear >>"$out/build-$(basename "$2").log" 2>&1
}
start=$SECONDS
build . build-gpu & this=$!
build "$other" build-other & that=$!
wait $this || { echo "this tree's build failed"; exit 1; }
wait $that || { echo "the other tree's build failed"; exit 1; }
echo "builds: $((SECONDS - start)) s"
text=(--set data.name=synthetic-text --set data.synthetic_count=400000 --set data.context=1024
      --set data.batch_size=8 --set data.eval_batch_size=8)
for round in $(seq "${ROUNDS:-2}"); do
  for b in other gpu; do
    timeout 60 build-$b/bench/bench_pixelfly_linear >"$out/layer-$b-$round.log" 2>&1
    for model in gpt2-small gpt2-medium; do
      timeout 90 build-$b/pixelfly bench --set model.preset=$model "${text[@]}" >"$out/$model-$b-$round.log" 2>&1
      echo "round $round $model build-$b: $(tail -2 "$out/$model-$b-$round.log" | awk '{printf "%s %s ms  ", $1, $4}')"
    done
  done
done
for f in "$out"/layer-*.log; do echo "== $f"; tail -5 "$f"; done
