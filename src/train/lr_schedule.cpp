// Linear warm-up then cosine decay.
#include "pixelfly/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace pixelfly::train {

double LrSchedule::at(int64_t step) const {
  if (step < warmup_steps) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  const int64_t decay_steps = std::max<int64_t>(1, total_steps - warmup_steps - 1);
  const double progress = std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps));
  const double low = peak * min_ratio;
  return low + (peak - low) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace pixelfly::train
