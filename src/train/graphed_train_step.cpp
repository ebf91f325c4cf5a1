// GraphedTrainStep: the step runs on a stream of its own (a capture cannot use the default
// stream), ordered after the caller's stream by an event; the batch is copied into static
// tensors that the captured step reads; the gradients start empty at the capture so that the
// captured backward writes them rather than adding to them; the update reads a found_inf flag
// computed from the loss on the device. Built where LibTorch has CUDA; elsewhere the constructor
// says so (no CUDA device can be chosen there anyway).
#include "pixelfly/train/graphed_train_step.h"

#include <stdexcept>

#if defined(PIXELFLY_TORCH_HAS_CUDA)
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cmath>

#include "pixelfly/train/train_step.h"
#endif

namespace pixelfly::train {
#if defined(PIXELFLY_TORCH_HAS_CUDA)

struct GraphedTrainStep::Graph {
  explicit Graph(const c10::Device& device) : stream(c10::cuda::getStreamFromPool(false, device.index())) {}
  c10::cuda::CUDAStream stream;
  at::cuda::CUDAGraph graph;
  at::Tensor inputs, targets, loss;  // what the captured step reads and writes
  bool captured = false;
  int eager_steps = 0;
};

GraphedTrainStep::GraphedTrainStep(Session& session, Optimizers& optimizers)
    : session_(session), optimizers_(optimizers) {
  if (optimizers.cram) {
    throw std::invalid_argument("train.cuda_graph = true is not supported with optim.name = cram; set train.cuda_graph=false");
  }
  if (!session.device.is_cuda()) {
    throw std::invalid_argument("train.cuda_graph = true needs a CUDA device (run.device is " + session.device.str() + ")");
  }
  update_ = dynamic_cast<optim::CapturableStep*>(optimizers.base.get());
  if (update_ == nullptr) throw std::logic_error("GraphedTrainStep: the optimiser has no capturable update");
  graph_ = std::make_unique<Graph>(session.device);
}

GraphedTrainStep::~GraphedTrainStep() = default;

bool GraphedTrainStep::captured() const { return graph_->captured; }

double GraphedTrainStep::run(const Batch& batch) {
  Graph& g = *graph_;
  at::cuda::CUDAEvent callers_work;  // what the caller's stream has queued (parameters, evaluation) comes first
  callers_work.record(c10::cuda::getCurrentCUDAStream(session_.device.index()));
  const c10::cuda::CUDAStreamGuard on_stream(g.stream);
  callers_work.block(g.stream);
  const bool same_shapes = g.captured && batch.inputs.sizes() == g.inputs.sizes() &&
                           batch.targets.sizes() == g.targets.sizes() &&
                           batch.inputs.scalar_type() == g.inputs.scalar_type();
  if (g.eager_steps < kEagerSteps || (g.captured && !same_shapes)) {
    ++g.eager_steps;
    return train_step(session_, optimizers_, batch);
  }
  if (g.captured) {
    g.inputs.copy_(batch.inputs, /*non_blocking=*/true);
    g.targets.copy_(batch.targets, /*non_blocking=*/true);
  } else {
    g.inputs = batch.inputs.to(session_.device);
    g.targets = batch.targets.to(session_.device);
  }
  update_->refresh_device_scalars();
  if (!g.captured) {
    optimizers_.base->zero_grad();  // set to none: the captured backward allocates and writes them
    g.graph.capture_begin();
    g.loss = loss_and_gradients(session_, g.inputs, g.targets);
    update_->launch_update(at::isfinite(g.loss).logical_not().to(at::kFloat).reshape({1}));
    g.graph.capture_end();
    g.captured = true;
  }
  g.graph.replay();
  const double loss = g.loss.item<double>();  // synchronises
  if (std::isfinite(loss)) update_->commit_update();
  return loss;
}

#else
struct GraphedTrainStep::Graph {};
GraphedTrainStep::GraphedTrainStep(Session& session, Optimizers& optimizers)
    : session_(session), optimizers_(optimizers) {
  throw std::invalid_argument("train.cuda_graph = true needs a LibTorch built with CUDA");
}
GraphedTrainStep::~GraphedTrainStep() = default;
bool GraphedTrainStep::captured() const { return false; }
double GraphedTrainStep::run(const Batch&) { return 0; }
#endif
}  // namespace pixelfly::train
