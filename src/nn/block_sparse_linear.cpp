// BlockSparseLinear: a linear layer whose weight is stored as its nonzero blocks.
#include "pixelfly/nn/block_sparse_linear.h"

#include <ATen/ATen.h>

#include <stdexcept>

#include "pixelfly/nn/init.h"
#include "pixelfly/ops/block_sparse_ops.h"
#include "pixelfly/pattern/flat_butterfly.h"

namespace pixelfly::nn {

ops::Layout make_block_sparse_layout(const BlockSparseLinearOptions& o) {
  if (o.layout()) {
    TORCH_CHECK(o.layout()->out_features() == o.out_features() &&
                    o.layout()->in_features() == o.in_features(),
                "BlockSparseLinear: layout is ", o.layout()->out_features(), " x ",
                o.layout()->in_features(), " but the layer is out_features x in_features = ",
                o.out_features(), " x ", o.in_features());
    return ops::make_layout(*o.layout());
  }
  try {
    return ops::make_layout(flat_butterfly_layout(
        {o.out_features(), o.in_features(), o.butterfly_size(), o.factors(), o.block()}));
  } catch (const std::invalid_argument& e) {
    TORCH_CHECK(false, "BlockSparseLinear(", o.in_features(), " -> ", o.out_features(), "): ", e.what());
  }
}

BlockSparseLinearImpl::BlockSparseLinearImpl(BlockSparseLinearOptions options_)
    : options(std::move(options_)) {
  reset();
}

void BlockSparseLinearImpl::reset() {
  layout_ = make_block_sparse_layout(options);
  const BlockLayout& l = layout_->layout();
  at::Tensor values = at::empty({l.nnz(), l.block(), l.block()});
  init_blocks_row_scaled(values, l);
  blocks = register_parameter("blocks", values);
  if (options.bias()) {
    bias = register_parameter("bias", init_linear_bias(options.out_features(), options.in_features(), {}));
  } else {
    bias = at::Tensor();
  }
}

at::Tensor BlockSparseLinearImpl::forward(const at::Tensor& x) {
  at::Tensor y = ops::block_sparse_linear(x, blocks, layout_);
  return bias.defined() ? y + bias.to(y.scalar_type()) : y;  // bf16 under autocast, as nn::Linear
}

at::Tensor BlockSparseLinearImpl::dense_weight() const {
  return ops::block_sparse_to_dense(blocks, layout_);
}

int64_t BlockSparseLinearImpl::parameter_count() const {
  return blocks.numel() + (bias.defined() ? bias.numel() : 0);
}

int64_t BlockSparseLinearImpl::dense_parameter_count() const {
  return options.out_features() * options.in_features() + (bias.defined() ? bias.numel() : 0);
}

}  // namespace pixelfly::nn
