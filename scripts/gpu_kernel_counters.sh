#!/usr/bin/env bash
# Hardware counters of pixelfly's block-sparse kernels on a GPU machine, in one call: builds the
# library, then runs Nsight Compute (clocks left as they are) over bench/cuda_kernel_counters.py.
#   bash scripts/gpu_kernel_counters.sh
#       throughput against the chip's peaks, memory traffic per level, warp stall reasons and
#       occupancy of every kernel; the full report goes to $OUT/counters.log (or ./gpu-logs).
#   bash scripts/gpu_kernel_counters.sh --source [KERNEL_REGEX [LAUNCH]]
#       the first launch of the kernel matching KERNEL_REGEX (default line_group: the forward
#       kernel at Mixer-B fc1) among the benchmark's launches whose names contain LAUNCH (default
#       all; e.g. gradient_kernel "with the low-rank products": the weight gradient that also
#       computes the layer's low-rank products): warp stall samples per SASS instruction
#       ($OUT/source-sass.csv, the report in $OUT/source.ncu-rep); the hottest instructions are
#       printed.
# A summary is printed last.
set -uo pipefail
out="${OUT:-gpu-logs}"
mkdir -p "$out"
build=build-gpu
mode=all
if [ "${1:-}" = "--source" ]; then mode=source; fi
kernel="${2:-line_group}"
launches="${3:-}"
compilers=()
if [ -x /usr/bin/g++ ]; then compilers=(-DCMAKE_CXX_COMPILER=/usr/bin/g++ -DCMAKE_CUDA_HOST_COMPILER=/usr/bin/g++); fi
start=$SECONDS
cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release "${compilers[@]}" >"$out/counters-build.log" 2>&1
if ! cmake --build $build -j "$(nproc)" --target pixelfly >>"$out/counters-build.log" 2>&1; then
  grep -m20 -B2 -A8 "error" "$out/counters-build.log"
  exit 1
fi
echo "build: $((SECONDS - start)) s"
if [ $mode = source ]; then
  timeout 400 ncu --clock-control none --kernel-name "regex:$kernel" --launch-count 1 --import-source yes \
    --section SourceCounters --section WarpStateStats --section SpeedOfLight -f -o "$out/source" \
    python3 bench/cuda_kernel_counters.py $build/libpixelfly.so "$launches" >"$out/source.log" 2>&1
  echo "ncu rc=$?"
  ncu --import "$out/source.ncu-rep" --page source --csv --print-source sass >"$out/source-sass.csv" 2>&1
  python3 scripts/ncu_source_summary.py "$out/source-sass.csv"
  exit 0
fi
timeout 400 ncu --clock-control none --kernel-name regex:'line_group|gradient_kernel' \
  --section SpeedOfLight --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis \
  --section WarpStateStats --section SchedulerStats --section Occupancy --section LaunchStats \
  --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio' \
  python3 bench/cuda_kernel_counters.py $build/libpixelfly.so >"$out/counters.log" 2>&1
echo "ncu rc=$?"
grep -E "line_group|gradient_kernel|launched:|stalled_[a-z_]*_per_issue_active.ratio +[0-9.]*[1-9][0-9.]*$|Duration|Compute \(SM\) Throughput|Memory Throughput|DRAM Throughput|L2 Cache Throughput|L1/TEX Hit|L2 Hit|Issue Slots Busy|Achieved Occupancy|Warp Cycles Per Issued|No Eligible|Registers Per" "$out/counters.log" | cut -c1-150
