// sparsify: turn chosen dense linear layers of any LibTorch model into PixelflyLinear layers,
// with per-layer (n, k, b, r) from the budget planner (spec/pixelfly.md section 4).
//
// LibTorch cannot swap a typed submodule field, so a model keeps each replaceable linear layer in
// a torch::nn::AnyModule member, registered under its name, and calls it through
// AnyModule::forward. For example:
//
//   struct MlpImpl : torch::nn::Module {
//     MlpImpl() {
//       fc1 = torch::nn::AnyModule(torch::nn::Linear(64, 256));
//       register_module("fc1", fc1.ptr());
//     }
//     at::Tensor forward(const at::Tensor& x) { return fc1.forward(x); }
//     torch::nn::AnyModule fc1;
//   };
//   ...
//   nn::sparsify(*model, {{"mlp.fc1", "mlp", &model->mlp->fc1}}, planner);
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>

#include <string>
#include <vector>

#include "pixelfly/pattern/budget_planner.h"

namespace pixelfly::nn {

// One replaceable linear layer of a model.
struct LinearSlot {
  std::string name;  // full dotted name as in root.named_modules(), e.g. "blocks.0.mlp.fc1"
  std::string type;  // the planner's layer type: "mlp" | "attention"
  torch::nn::AnyModule* slot = nullptr;  // holds a torch::nn::Linear, registered in root as `name`
};

// Plans the budget over the slots' shapes (read from the torch::nn::Linear in each slot) with
// plan_budget, then replaces every slot the plan makes sparse by a PixelflyLinear with the
// plan's (butterfly_size, factors, block, rank), default mixing, a bias when the Linear had one,
// and the Linear's device and dtype. The replacement happens both in the AnyModule and in the
// parent module's registration, so parameters are named e.g. "blocks.0.mlp.fc1.sparse.blocks".
// Slots whose type the planner has no density for stay dense Linear layers. Returns one plan per
// slot, in order.
//
// Throws c10::Error, before changing anything, when a slot is null or does not hold a
// torch::nn::Linear, a name is not registered in root (or is registered to another module than
// the slot's), the planner rejects its options or a shape, or a sparse plan has rank 0 (give
// the planner a low_rank_share > 0).
std::vector<LayerPlan> sparsify(torch::nn::Module& root, const std::vector<LinearSlot>& slots,
                                const PlannerOptions& planner);

}  // namespace pixelfly::nn
