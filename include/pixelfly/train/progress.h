// Training progress on the console: on a terminal, one redrawn bar line
//   [=========>          ] 1200/4690  41.2 step/s  loss 0.4123  lr 9.8e-04  ETA 1m24s
// and otherwise (a log file, CI) one plain line every `log_every` steps. Messages (epoch
// summaries, warnings) are printed on their own lines without breaking the bar. The rate is
// measured over windows of about a second; before the first window closes it is the rate since
// the run (or its resumption) started.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace pixelfly::train {

class Progress {
 public:
  // `first_step`: the steps already done when the run starts (a resumed run's step).
  Progress(std::ostream& out, bool terminal, int64_t total_steps, int64_t log_every, int64_t first_step = 0);
  // After step `step` (1-based count of steps done) with its loss and learning rate.
  void update(int64_t step, double loss, double lr);
  // A line of its own (the bar is redrawn after it on a terminal).
  void message(const std::string& line);
  // Ends the bar line.
  void finish();

  // "1h02m", "3m05s", "12s".
  static std::string format_duration(double seconds);

 private:
  std::string line(int64_t step, double loss, double lr, double steps_per_s) const;

  std::ostream& out_;
  bool terminal_;
  int64_t total_steps_, log_every_;
  using Clock = std::chrono::steady_clock;
  Clock::time_point window_start_, last_draw_;
  int64_t window_start_step_;
  double steps_per_s_ = 0;  // of the last closed window; 0 before the first one closes
  bool bar_drawn_ = false;
  std::string last_line_;
};

}  // namespace pixelfly::train
