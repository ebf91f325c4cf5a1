// One training step under LibTorch's profiler (Kineto): where the step's time goes, saved as a
// Chrome trace (chrome://tracing, ui.perfetto.dev) and summarised — the GPU kernels by total
// time when the step ran on a GPU, the operators otherwise — with the device's busy time and
// the number of kernel launches, which tell a host-bound step (busy time well under the wall
// time, many launches) from a device-bound one.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pixelfly::train {

struct ProfiledEvent {
  std::string name;
  int64_t count = 0;
  double total_ms = 0;
};

struct StepProfile {
  double wall_ms = 0;          // the step on the host clock, synchronised with the device
  double device_busy_ms = 0;   // GPU kernels, copies and fills, summed (one stream: no overlap); 0 on CPU
  int64_t launches = 0;        // kernel launches through the CUDA runtime or driver
  int64_t graph_launches = 0;  // CUDA graph launches (train.cuda_graph: the step's kernels in one)
  std::vector<ProfiledEvent> top;  // GPU kernels, or CPU operators (including their children), by total time
};

// Runs `step` once under the profiler (CUDA activity too when `cuda`), writes the trace to
// `trace_path` and returns the `top` longest event names.
StepProfile profile_step(const std::function<void()>& step, bool cuda, const std::string& trace_path,
                         size_t top = 12);

// The summary as text: one line of totals, then one line per event name.
std::string format_step_profile(const StepProfile& profile);

}  // namespace pixelfly::train
