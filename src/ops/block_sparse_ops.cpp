// Operator schemas (the one TORCH_LIBRARY block of the project), the BlockLayout class that
// Python sees, and the C++ entry points of the block-sparse operators.
#include "pixelfly/ops/block_sparse_ops.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "pixelfly/pattern/tile_schedule.h"

namespace pixelfly::ops {
namespace {

using LinearSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const Layout&);

// The layout's CUDA kernel schedule for a BlockLayout method that reads it, an error naming the
// method where the layout has none (a block the kernels' tiles do not take).
const TileSchedule& schedule_for(const LayoutHandle& layout, const char* method) {
  try {
    return layout.tile_schedule();
  } catch (const std::invalid_argument& e) {
    TORCH_CHECK(false, "BlockLayout.", method, ": ", e.what());
  }
}

c10::TypedOperatorHandle<LinearSignature> find_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<LinearSignature>();
}

}  // namespace

at::Tensor block_sparse_linear(const at::Tensor& x, const at::Tensor& values, const Layout& layout) {
  static const auto op = find_op("pixelfly::block_sparse_linear");
  return op.call(x, values, layout);
}

at::Tensor block_sparse_linear_grad_input(const at::Tensor& grad_y, const at::Tensor& values,
                                          const Layout& layout) {
  static const auto op = find_op("pixelfly::block_sparse_linear_grad_input");
  return op.call(grad_y, values, layout);
}

at::Tensor block_sparse_linear_grad_weight(const at::Tensor& grad_y, const at::Tensor& x,
                                           const Layout& layout) {
  static const auto op = find_op("pixelfly::block_sparse_linear_grad_weight");
  return op.call(grad_y, x, layout);
}

}  // namespace pixelfly::ops

TORCH_LIBRARY(pixelfly, m) {
  using pixelfly::ops::LayoutHandle;
  m.class_<LayoutHandle>("BlockLayout")
      .def_static("flat_butterfly", &pixelfly::ops::make_flat_butterfly_layout)
      .def_static("from_block_mask",
                  [](int64_t out_features, int64_t in_features, int64_t block, at::Tensor mask) {
                    TORCH_CHECK(mask.dim() == 2, "BlockLayout.from_block_mask: mask must be 2-D, got ",
                                mask.sizes());
                    at::Tensor flat = mask.to(at::kCPU, at::kByte).contiguous().flatten();
                    std::vector<uint8_t> bits(flat.data_ptr<uint8_t>(), flat.data_ptr<uint8_t>() + flat.numel());
                    try {
                      return pixelfly::ops::make_layout(pixelfly::BlockLayout::from_block_mask(
                          out_features, in_features, block, bits));
                    } catch (const std::invalid_argument& e) {
                      TORCH_CHECK(false, "BlockLayout.from_block_mask: ", e.what());
                    }
                  })
      .def("out_features", &LayoutHandle::out_features)
      .def("in_features", &LayoutHandle::in_features)
      .def("block", &LayoutHandle::block)
      .def("nnz", &LayoutHandle::nnz)
      .def("density", &LayoutHandle::density)
      .def("row_ptr", &LayoutHandle::row_ptr)
      .def("col_idx", &LayoutHandle::col_idx)
      // The CUDA weight-gradient kernel's piece width for this layout (tile_schedule.h).
      .def("gradient_piece_features",
           [](const c10::intrusive_ptr<LayoutHandle>& self) {
             return pixelfly::ops::schedule_for(*self, "gradient_piece_features").gradient_piece_features;
           })
      // The CUDA forward (by_columns false) or grad_input (true) kernel's tile width for this
      // layout with a low-rank term of `rank` (0: the plain operators; tile_schedule.h, line_grouping).
      .def("line_tile_features",
           [](const c10::intrusive_ptr<LayoutHandle>& self, bool by_columns, int64_t rank) {
             return pixelfly::line_grouping(pixelfly::ops::schedule_for(*self, "line_tile_features"), by_columns, rank)
                 .tile_features;
           })
      .def("to_text", &LayoutHandle::to_text);

  m.def("block_sparse_linear(Tensor x, Tensor values, __torch__.torch.classes.pixelfly.BlockLayout layout) -> Tensor");
  m.def("block_sparse_linear_grad_input(Tensor grad_y, Tensor values, __torch__.torch.classes.pixelfly.BlockLayout layout) -> Tensor");
  m.def("block_sparse_linear_grad_weight(Tensor grad_y, Tensor x, __torch__.torch.classes.pixelfly.BlockLayout layout) -> Tensor");
  m.def("mixed_linear(Tensor x, Tensor values, __torch__.torch.classes.pixelfly.BlockLayout layout, Tensor scale, Tensor low_rank_a, Tensor low_rank_b, Tensor? bias, *, bool scale_is_logit=False) -> Tensor");
  m.def("mixed_linear_grad_input(Tensor grad_y, Tensor values, __torch__.torch.classes.pixelfly.BlockLayout layout, Tensor scale, Tensor low_rank_a, Tensor low_rank_b_t, *, bool scale_is_logit=False) -> Tensor");
  m.def("pixelfly_linear_grad_params(Tensor grad_y, Tensor x, Tensor values, __torch__.torch.classes.pixelfly.BlockLayout layout, Tensor u, Tensor gamma, Tensor product, Tensor grad_projected, bool bias, Tensor? grad_weight_sums=None, *, bool gamma_is_logit=False) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("low_rank_grad_products(Tensor grad_y, Tensor u, Tensor projected, bool ones_column=False) -> (Tensor, Tensor)");
  m.def("grad_weight_and_low_rank_products(Tensor grad_y, Tensor x, __torch__.torch.classes.pixelfly.BlockLayout layout, Tensor u, Tensor projected, bool ones_column=False) -> (Tensor, Tensor, Tensor)");
  m.def("grad_weight_and_low_rank_products_is_one_pass(Tensor x, __torch__.torch.classes.pixelfly.BlockLayout layout, int rank) -> bool");
  m.def("pixelfly_linear(Tensor x, Tensor values, __torch__.torch.classes.pixelfly.BlockLayout layout, Tensor u, Tensor v, Tensor gamma, Tensor? bias, *, bool gamma_is_logit=False) -> Tensor");
}
