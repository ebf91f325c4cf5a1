// BlockSparseLinear: y = x W^T + bias with W block-sparse; only the nonzero blocks are stored
// (parameter "blocks", shape (nnz, b, b)). The layout is a flat block butterfly by default, or
// any BlockLayout given in the options.
#pragma once

#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/arg.h>

#include <memory>

#include "pixelfly/ops/layout_handle.h"

namespace pixelfly::nn {

struct BlockSparseLinearOptions {
  BlockSparseLinearOptions(int64_t in_features, int64_t out_features)
      : in_features_(in_features), out_features_(out_features) {}
  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, out_features);
  // Flat block butterfly parameters (spec/pixelfly.md section 1), used when layout is null.
  TORCH_ARG(int64_t, butterfly_size) = 16;
  TORCH_ARG(int64_t, factors) = 2;
  TORCH_ARG(int64_t, block) = 32;
  // Any other layout; its shape must be out_features x in_features.
  TORCH_ARG(std::shared_ptr<const BlockLayout>, layout) = nullptr;
  TORCH_ARG(bool, bias) = true;
};

// The layout the options describe (validated; throws c10::Error naming the bad option).
ops::Layout make_block_sparse_layout(const BlockSparseLinearOptions& options);

class BlockSparseLinearImpl : public torch::nn::Cloneable<BlockSparseLinearImpl> {
 public:
  BlockSparseLinearImpl(int64_t in_features, int64_t out_features)
      : BlockSparseLinearImpl(BlockSparseLinearOptions(in_features, out_features)) {}
  explicit BlockSparseLinearImpl(BlockSparseLinearOptions options);

  void reset() override;
  // x: (..., in_features) -> (..., out_features).
  at::Tensor forward(const at::Tensor& x);
  // The dense out x in weight the blocks represent (differentiable).
  at::Tensor dense_weight() const;
  const ops::Layout& layout() const { return layout_; }
  int64_t parameter_count() const;
  int64_t dense_parameter_count() const;

  BlockSparseLinearOptions options;
  at::Tensor blocks;
  at::Tensor bias;

 private:
  ops::Layout layout_;
};
TORCH_MODULE(BlockSparseLinear);

}  // namespace pixelfly::nn
