// PNG plots of a run's curves from its metrics.jsonl, drawn by gnuplot: loss.png (training loss
// per logged step, evaluation loss per epoch) and accuracy.png (evaluation accuracy per epoch:
// top-1 for images, next-byte accuracy for text).
#pragma once

#include <string>

namespace pixelfly::train {

// Returns false, drawing nothing, when gnuplot is not installed or there is nothing to plot yet.
bool draw_training_curves(const std::string& run_dir);

}  // namespace pixelfly::train
