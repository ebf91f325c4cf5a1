// Progress lines: the rate is known from the first logged step (of a fresh or a resumed run),
// the plain lines come every log_every steps and at the end, and durations read as people write
// them.
#include "pixelfly/train/progress.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace pixelfly::train {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The step/s figure of a plain progress line.
double rate_of(const std::string& line) {
  const size_t at = line.find(" step/s");
  EXPECT_NE(at, std::string::npos) << line;
  const size_t start = line.rfind(' ', at - 1);
  return std::stod(line.substr(start + 1, at - start - 1));
}

TEST(Progress, ResumedRunReportsItsRateFromTheFirstLine) {
  std::ostringstream out;
  Progress progress(out, /*terminal=*/false, /*total_steps=*/10, /*log_every=*/2, /*first_step=*/6);
  for (int64_t step = 7; step <= 10; ++step) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // steps of about 20 ms
    progress.update(step, 0.5, 1e-3);
  }
  const std::vector<std::string> lines = lines_of(out.str());
  ASSERT_EQ(lines.size(), 2u) << out.str();  // steps 8 and 10
  EXPECT_EQ(lines[0].rfind("step 8/10  ", 0), 0u) << lines[0];
  EXPECT_EQ(lines[1].rfind("step 10/10  ", 0), 0u) << lines[1];
  for (const std::string& line : lines) {
    const double rate = rate_of(line);
    EXPECT_GT(rate, 1.0) << line;   // about 50 step/s, never the 0 of an unknown rate
    EXPECT_LT(rate, 60.0) << line;  // counted from the resumed step, not from step 0
    EXPECT_EQ(line.find("ETA ?"), std::string::npos) << line;
  }
}

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(Progress::format_duration(12.4), "12s");
  EXPECT_EQ(Progress::format_duration(185), "3m05s");
  EXPECT_EQ(Progress::format_duration(3725), "1h02m");
  EXPECT_EQ(Progress::format_duration(-1), "?");
}

}  // namespace
}  // namespace pixelfly::train
