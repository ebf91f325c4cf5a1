// Learning-rate schedule: linear warm-up to the peak, cosine decay to min_ratio x peak at the
// last step, and the final value past the end; values against hand computations.
#include "pixelfly/train/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>

namespace pixelfly::train {
namespace {

TEST(LrSchedule, WarmUpThenCosineToTheMinimum) {
  LrSchedule s;
  s.peak = 0.1;
  s.min_ratio = 0.2;
  s.warmup_steps = 4;
  s.total_steps = 15;  // warm-up 0..3, decay over steps 4..14
  EXPECT_DOUBLE_EQ(s.at(0), 0.025);
  EXPECT_DOUBLE_EQ(s.at(1), 0.05);
  EXPECT_DOUBLE_EQ(s.at(2), 0.075);
  EXPECT_DOUBLE_EQ(s.at(3), 0.1);
  EXPECT_DOUBLE_EQ(s.at(4), 0.1);                   // the cosine starts at the peak
  EXPECT_DOUBLE_EQ(s.at(9), 0.5 * (0.1 + 0.02));    // midpoint of the decay
  EXPECT_DOUBLE_EQ(s.at(6), 0.02 + 0.08 * 0.5 * (1 + std::cos(M_PI * 0.2)));
  EXPECT_DOUBLE_EQ(s.at(14), 0.02);                 // last step: min_ratio x peak
  EXPECT_DOUBLE_EQ(s.at(15), 0.02);                 // past the end
  EXPECT_DOUBLE_EQ(s.at(1000), 0.02);
  for (int64_t step = 4; step < 14; ++step) EXPECT_GT(s.at(step), s.at(step + 1)) << step;
}

TEST(LrSchedule, WithoutWarmUpStartsAtThePeakAndDecaysToZero) {
  LrSchedule s;
  s.peak = 1e-3;
  s.total_steps = 11;
  EXPECT_DOUBLE_EQ(s.at(0), 1e-3);
  EXPECT_DOUBLE_EQ(s.at(5), 0.5e-3);
  EXPECT_NEAR(s.at(10), 0.0, 1e-18);
  EXPECT_NEAR(s.at(11), 0.0, 1e-18);
}

TEST(LrSchedule, OneStepRunUsesThePeak) {
  LrSchedule s;
  s.peak = 0.5;
  s.min_ratio = 0.1;
  s.total_steps = 1;
  EXPECT_DOUBLE_EQ(s.at(0), 0.5);
  EXPECT_DOUBLE_EQ(s.at(1), 0.05);
}

}  // namespace
}  // namespace pixelfly::train
