// One-shot compression of a model's weights (spec/cram.md section 2): a Compressor turns named
// weights into keep-masks; a CompressionPolicy says which weights are compressible.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace pixelfly::compress {

struct NamedWeight {
  std::string name;
  at::Tensor weight;
};

// Boolean keep-masks by weight name, each shaped like its weight.
using MaskMap = std::map<std::string, at::Tensor>;

class Compressor {
 public:
  virtual ~Compressor() = default;
  virtual MaskMap masks(const std::vector<NamedWeight>& weights) const = 0;
  // e.g. "global magnitude, sparsity 0.9"
  virtual std::string describe() const = 0;
};

// Which weights a compressor sees. Default: every parameter with two or more dimensions (all
// convolutions and linear layers, first and last included), as the released CrAM code does.
struct CompressionPolicy {
  bool keep_first_dense = false;     // the first >= 2-D weight in registration order
  bool keep_last_dense = false;      // the last one (usually the classifier)
  std::set<std::string> keep_dense;  // more weights by parameter name; each must exist
};

// The compressible weights of a module, in registration order. Throws c10::Error naming any
// keep_dense entry that is not a >= 2-D parameter of the module.
std::vector<NamedWeight> compressible_weights(const torch::nn::Module& module, const CompressionPolicy& policy);

// Applies masks in place (w <- w * mask) without recording gradients.
void apply_masks(const std::vector<NamedWeight>& weights, const MaskMap& masks);

// Fraction of zeros among the masked weights' entries: 1 - kept / total.
double sparsity_of(const MaskMap& masks);

}  // namespace pixelfly::compress
