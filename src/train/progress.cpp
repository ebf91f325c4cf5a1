// Console progress bar and plain progress lines.
#include "pixelfly/train/progress.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace pixelfly::train {

Progress::Progress(std::ostream& out, bool terminal, int64_t total_steps, int64_t log_every, int64_t first_step)
    : out_(out),
      terminal_(terminal),
      total_steps_(std::max<int64_t>(total_steps, 1)),
      log_every_(log_every),
      window_start_(Clock::now()),
      window_start_step_(first_step) {}

std::string Progress::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  char text[32];
  if (s >= 3600) {
    std::snprintf(text, sizeof text, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  } else if (s >= 60) {
    std::snprintf(text, sizeof text, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  } else {
    std::snprintf(text, sizeof text, "%llds", static_cast<long long>(s));
  }
  return text;
}

std::string Progress::line(int64_t step, double loss, double lr, double steps_per_s) const {
  const double eta = steps_per_s > 0 ? static_cast<double>(total_steps_ - step) / steps_per_s : NAN;
  char stats[160];
  std::snprintf(stats, sizeof stats, "%lld/%lld  %.1f step/s  loss %.4f  lr %.2e  ETA %s",
                static_cast<long long>(step), static_cast<long long>(total_steps_), steps_per_s, loss, lr,
                format_duration(eta).c_str());
  if (!terminal_) return std::string("step ") + stats;
  constexpr int width = 24;
  const int filled = static_cast<int>(width * std::min<int64_t>(step, total_steps_) / total_steps_);
  std::string bar = "[" + std::string(filled, '=') + (filled < width ? ">" : "") +
                    std::string(std::max(0, width - filled - 1), ' ') + "] ";
  return bar + stats;
}

void Progress::update(int64_t step, double loss, double lr) {
  const Clock::time_point now = Clock::now();
  const double window_s = std::chrono::duration<double>(now - window_start_).count();
  const double window_rate = window_s > 0 ? static_cast<double>(step - window_start_step_) / window_s : 0;
  if (window_s >= 1.0) {  // a fresh rate every second or so
    steps_per_s_ = window_rate;
    window_start_ = now;
    window_start_step_ = step;
  }
  const double rate = steps_per_s_ > 0 ? steps_per_s_ : window_rate;  // the first window: so far
  if (terminal_) {
    if (step != total_steps_ && bar_drawn_ && std::chrono::duration<double>(now - last_draw_).count() < 0.1) return;
    last_line_ = line(step, loss, lr, rate);
    out_ << "\r" << last_line_ << "\x1b[K" << std::flush;
    bar_drawn_ = true;
    last_draw_ = now;
  } else if (step % log_every_ == 0 || step == total_steps_) {
    out_ << line(step, loss, lr, rate) << "\n" << std::flush;
  }
}

void Progress::message(const std::string& text) {
  if (terminal_ && bar_drawn_) {
    out_ << "\r\x1b[K" << text << "\n" << last_line_ << std::flush;
  } else {
    out_ << text << "\n" << std::flush;
  }
}

void Progress::finish() {
  if (terminal_ && bar_drawn_) out_ << "\n" << std::flush;
  bar_drawn_ = false;
}

}  // namespace pixelfly::train
