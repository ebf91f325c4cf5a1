// profile_step on the CPU: the operators a step calls come back by name with their counts, the
// trace file is written, and nothing is counted as device time or kernel launches.
#include "pixelfly/train/step_profile.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "io/temp_dir.h"

namespace pixelfly::train {
namespace {

TEST(StepProfile, SummarisesTheOperatorsOfAStepAndWritesItsTrace) {
  pixelfly::testing::TempDir dir;
  const at::Tensor a = at::randn({96, 96});
  const StepProfile p = profile_step(
      [&] {
        for (int i = 0; i < 3; ++i) at::mm(a, a);
      },
      /*cuda=*/false, dir / "step.json");
  EXPECT_GT(p.wall_ms, 0);
  EXPECT_EQ(p.device_busy_ms, 0);
  EXPECT_EQ(p.launches, 0);
  const auto mm = std::find_if(p.top.begin(), p.top.end(), [](const ProfiledEvent& e) { return e.name == "aten::mm"; });
  ASSERT_NE(mm, p.top.end());
  EXPECT_EQ(mm->count, 3);
  EXPECT_GT(mm->total_ms, 0);
  EXPECT_TRUE(std::is_sorted(p.top.begin(), p.top.end(),
                             [](const ProfiledEvent& x, const ProfiledEvent& y) { return x.total_ms > y.total_ms; }));
  std::ifstream trace(dir / "step.json");
  std::stringstream text;
  text << trace.rdbuf();
  EXPECT_NE(text.str().find("aten::mm"), std::string::npos);
  const std::string summary = format_step_profile(p);
  EXPECT_NE(summary.find("0 kernel launches"), std::string::npos) << summary;
  EXPECT_NE(summary.find("3 x  aten::mm"), std::string::npos) << summary;
}

}  // namespace
}  // namespace pixelfly::train
