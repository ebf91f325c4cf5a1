// The training step captured once as a CUDA graph and replayed (train.cuda_graph): forward
// under autocast, loss, backward, gradient clipping and the optimiser's update cost the host one
// graph launch instead of thousands of kernel launches, which kept steps with many small
// kernels (a Pixelfly layer launches about twenty) waiting on the host on a fast GPU. Plain
// optimisers only (SGD, AdamW: optim/fused_optimizers.h reads the learning rate and step counts
// on the device); CrAM draws a compression on the host every step.
#pragma once

#include <memory>

#include "pixelfly/optim/fused_optimizers.h"
#include "pixelfly/train/optimizer_factory.h"
#include "pixelfly/train/session.h"

namespace pixelfly::train {

class GraphedTrainStep {
 public:
  // Throws std::invalid_argument when the session is not on a CUDA device or trains with CrAM.
  GraphedTrainStep(Session& session, Optimizers& optimizers);
  ~GraphedTrainStep();
  GraphedTrainStep(const GraphedTrainStep&) = delete;
  GraphedTrainStep& operator=(const GraphedTrainStep&) = delete;

  // One step on `batch` with train_step()'s contract (the loss; a non-finite loss leaves the
  // parameters as they were; synchronises). The first kEagerSteps calls run train_step() (they
  // make the optimiser state and the operators' cached plans), the next captures the step and
  // replays it, later ones replay it; a batch whose shapes differ from the captured one runs
  // train_step().
  double run(const Batch& batch);
  bool captured() const;

  static constexpr int kEagerSteps = 2;

 private:
  struct Graph;  // the captured graph, its stream and its static tensors
  Session& session_;
  Optimizers& optimizers_;
  optim::CapturableStep* update_ = nullptr;
  std::unique_ptr<Graph> graph_;
};

}  // namespace pixelfly::train
