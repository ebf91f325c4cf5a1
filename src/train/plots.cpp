// Training curves through gnuplot.
#include "pixelfly/train/plots.h"

#include <sstream>

#include "pixelfly/io/gnuplot.h"
#include "pixelfly/train/metrics_log.h"

namespace pixelfly::train {

bool draw_training_curves(const std::string& run_dir) {
  if (!io::gnuplot_available()) return false;
  std::ostringstream steps, epochs;
  int64_t epoch_rows = 0;
  for (const nlohmann::json& r : read_metrics(run_dir + "/metrics.jsonl")) {
    if (r.value("kind", "") == "step") {
      steps << r.at("step").get<int64_t>() << ' ' << r.at("loss").get<double>() << '\n';
    } else if (r.value("kind", "") == "epoch") {
      epochs << r.at("step").get<int64_t>() << ' ' << r.at("eval_loss").get<double>() << ' '
             << r.at("eval_accuracy").get<double>() << ' ' << r.value("epoch", int64_t{0}) << '\n';
      ++epoch_rows;
    }
  }
  if (steps.str().empty()) return false;
  std::ostringstream loss;
  loss << "$train << EOD\n" << steps.str() << "EOD\n$eval << EOD\n" << epochs.str() << "EOD\n"
       << "set xlabel 'step'; set ylabel 'cross-entropy (nats)'; set grid; set logscale y\n"
       << "plot $train using 1:2 with lines title 'training loss'"
       << (epoch_rows > 0 ? ", $eval using 1:2 with linespoints title 'evaluation loss'" : "") << "\n";
  io::draw_png_with_gnuplot(run_dir + "/loss.png", loss.str());
  if (epoch_rows > 0) {
    std::ostringstream accuracy;
    accuracy << "$eval << EOD\n" << epochs.str() << "EOD\n"
             << "set xlabel 'epoch'; set ylabel 'evaluation accuracy'; set grid; set key bottom right\n"
             << "plot $eval using 4:3 with linespoints title 'accuracy'\n";
    io::draw_png_with_gnuplot(run_dir + "/accuracy.png", accuracy.str());
  }
  return true;
}

}  // namespace pixelfly::train
