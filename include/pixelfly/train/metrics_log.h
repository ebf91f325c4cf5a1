// Metrics of a run as JSON lines (metrics.jsonl in the run directory): one object per logged
// step ({"kind":"step", ...}) and per epoch ({"kind":"epoch", ...}). Each line is flushed as it
// is written, so a crash loses nothing already logged; a resumed run appends.
#pragma once

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

namespace pixelfly::train {

class MetricsLog {
 public:
  // Opens `path` for appending. With `truncate_after_step` >= 0 (a resume), lines of steps after
  // it are dropped first, so the log matches the checkpoint the run continues from.
  // Throws std::runtime_error naming the path when it cannot be opened.
  MetricsLog(const std::string& path, int64_t truncate_after_step = -1);
  void write(const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

// All records of a metrics file, in order (lines that do not parse are an error naming the line).
std::vector<nlohmann::json> read_metrics(const std::string& path);

}  // namespace pixelfly::train
