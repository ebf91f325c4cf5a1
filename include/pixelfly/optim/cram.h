// CrAM, the compression-aware minimiser (spec/cram.md section 1), wrapping any LibTorch
// optimiser. One step on one batch:
//   1. g1 = grad L(theta) (batch norm in training mode, running statistics updated);
//   2. batch-norm running statistics frozen for the second pass;
//   3. every parameter perturbed: theta~ = theta + rho * g1 (or rho * g1 / ||g1|| if normalised);
//   4. a compressor chosen (uniformly at random among several: CrAM-Multi);
//   5. the compressible weights of theta~ compressed: w <- mask * w;
//   6. g2 = grad L at the compressed point (straight-through: the compressed tensors are leaves);
//   7. with sparse_grad, g2 <- g2 * mask;
//   8. theta restored; the base optimiser gets g2 (CrAM) or g2 + g1 (CrAM+) and steps, so its
//      weight decay acts on the restored weights only;
//   9. batch-norm running statistics unfrozen.
// Defaults are the authors' recommendation: CrAM+, sparse_grad, unnormalised.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "pixelfly/compress/compressor.h"

namespace pixelfly::optim {

struct CramOptions {
  double rho = 0.05;
  bool plus = true;          // CrAM+: g2 + g1; otherwise g2
  bool sparse_grad = true;   // mask g2 with the compression mask
  bool normalize = false;    // perturb by rho * g1 / ||g1|| (as in SAM) instead of rho * g1
  uint64_t seed = 0;         // for drawing among several compressors
  compress::CompressionPolicy policy;
};

class Cram {
 public:
  // `compressors` must not be empty; with more than one, each step draws one uniformly.
  // `model` and `base` must outlive this object; `base` must hold the model's parameters.
  Cram(torch::nn::Module& model, torch::optim::Optimizer& base,
       std::vector<std::shared_ptr<compress::Compressor>> compressors, CramOptions options = {});

  // One CrAM step. `loss` runs the model's forward pass on the (fixed) batch and returns the
  // scalar loss; it is called twice. Returns the first pass's loss (detached).
  at::Tensor step(const std::function<at::Tensor()>& loss);

  const CramOptions& options() const { return options_; }
  // Index of the compressor used by the last step.
  size_t last_compressor() const { return last_compressor_; }
  // The random generator's state, for checkpoints: restoring it makes a resumed run draw the
  // same compressors.
  std::string generator_state() const;
  void set_generator_state(const std::string& state);

 private:
  torch::nn::Module& model_;
  torch::optim::Optimizer& base_;
  std::vector<std::shared_ptr<compress::Compressor>> compressors_;
  CramOptions options_;
  std::mt19937_64 rng_;
  std::vector<at::Tensor> saved_;  // theta during the second pass
  size_t last_compressor_ = 0;
};

}  // namespace pixelfly::optim
