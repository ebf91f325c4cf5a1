// Learning-rate schedule: linear warm-up from peak / warmup_steps to the peak, then a cosine
// decay to min_ratio x peak at the last step. Evaluated per optimiser step.
#pragma once

#include <cstdint>

namespace pixelfly::train {

struct LrSchedule {
  double peak = 1e-3;
  double min_ratio = 0.0;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  // The learning rate of step `step` (0-based). Steps past the end keep the final value.
  double at(int64_t step) const;
};

}  // namespace pixelfly::train
