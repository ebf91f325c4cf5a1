// JSON-lines metrics log.
#include "pixelfly/train/metrics_log.h"

#include <stdexcept>

#include "pixelfly/io/atomic_file.h"

namespace pixelfly::train {

MetricsLog::MetricsLog(const std::string& path, int64_t truncate_after_step) : path_(path) {
  if (truncate_after_step >= 0) {
    std::ifstream in(path);
    std::string kept, line;
    while (std::getline(in, line)) {
      const nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
      if (!record.is_discarded() && record.value("step", int64_t{0}) > truncate_after_step) break;
      kept += line + "\n";
    }
    if (in.is_open()) io::write_file_atomically(path, kept);
  }
  out_.open(path, std::ios::app);
  if (!out_) throw std::runtime_error("cannot open metrics log '" + path + "' for writing");
}

void MetricsLog::write(const nlohmann::json& record) {
  out_ << record.dump() << '\n';
  out_.flush();
  if (!out_) throw std::runtime_error("cannot write to metrics log '" + path_ + "'");
}

std::vector<nlohmann::json> read_metrics(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open metrics log '" + path + "'");
  std::vector<nlohmann::json> records;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
    if (record.is_discarded()) {
      throw std::runtime_error("metrics log '" + path + "' line " + std::to_string(number) + " is not JSON");
    }
    records.push_back(std::move(record));
  }
  return records;
}

}  // namespace pixelfly::train
