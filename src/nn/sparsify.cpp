// sparsify: plan a budget over a model's dense linear slots and swap in PixelflyLinear layers.
#include "pixelfly/nn/sparsify.h"

#include <torch/nn/modules/linear.h>

#include <stdexcept>

#include "pixelfly/nn/pixelfly_linear.h"

namespace pixelfly::nn {
namespace {

// Where a slot lives: its dense Linear and the module that registers it under `child`.
struct SlotSite {
  torch::nn::LinearImpl* linear = nullptr;
  torch::nn::Module* parent = nullptr;
  std::string child;
};

SlotSite locate(torch::nn::Module& root, const LinearSlot& s) {
  TORCH_CHECK(s.slot != nullptr && !s.slot->is_empty(), "sparsify: slot '", s.name, "' is empty");
  SlotSite site;
  site.linear = dynamic_cast<torch::nn::LinearImpl*>(s.slot->ptr().get());
  TORCH_CHECK(site.linear != nullptr, "sparsify: slot '", s.name,
              "' must hold a dense torch::nn::Linear, but holds a ", s.slot->ptr()->name());
  const auto dot = s.name.rfind('.');
  site.parent = &root;
  site.child = s.name;
  if (dot != std::string::npos) {
    const std::string parent_name = s.name.substr(0, dot);
    const auto modules = root.named_modules(/*name_prefix=*/"", /*include_self=*/false);
    const auto* parent = modules.find(parent_name);
    TORCH_CHECK(parent != nullptr, "sparsify: slot '", s.name, "': no module '", parent_name,
                "' is registered in the model");
    site.parent = parent->get();
    site.child = s.name.substr(dot + 1);
  }
  const auto children = site.parent->named_children();
  const auto* registered = children.find(site.child);
  TORCH_CHECK(registered != nullptr, "sparsify: slot '", s.name, "' is not registered in the model");
  TORCH_CHECK(registered->get() == site.linear, "sparsify: slot '", s.name,
              "' holds another module than the one registered under that name");
  return site;
}

}  // namespace

std::vector<LayerPlan> sparsify(torch::nn::Module& root, const std::vector<LinearSlot>& slots,
                                const PlannerOptions& planner) {
  std::vector<SlotSite> sites;
  std::vector<LayerShape> shapes;
  for (const LinearSlot& s : slots) {
    sites.push_back(locate(root, s));
    const auto& o = sites.back().linear->options;
    shapes.push_back({s.name, s.type, o.out_features(), o.in_features()});
  }
  std::vector<LayerPlan> plans;
  try {
    plans = plan_budget(shapes, planner);
  } catch (const std::invalid_argument& e) {
    TORCH_CHECK(false, "sparsify: ", e.what());
  }
  for (const LayerPlan& p : plans) {
    TORCH_CHECK(!p.sparse || p.rank >= 1, "sparsify: the plan for '", p.layer.name,
                "' has no low-rank part; give the planner a low_rank_share > 0 (got ",
                planner.low_rank_share, ")");
  }
  for (size_t i = 0; i < slots.size(); ++i) {
    const LayerPlan& p = plans[i];
    if (!p.sparse) continue;
    const torch::nn::LinearImpl& dense = *sites[i].linear;
    PixelflyLinear layer(PixelflyLinearOptions(dense.options.in_features(), dense.options.out_features())
                             .butterfly_size(p.butterfly_size)
                             .factors(p.factors)
                             .block(p.block)
                             .rank(p.rank)
                             .bias(dense.options.bias()));
    layer->to(dense.weight.device(), dense.weight.scalar_type());
    sites[i].parent->replace_module(sites[i].child, layer.ptr());
    *slots[i].slot = torch::nn::AnyModule(layer);
  }
  return plans;
}

}  // namespace pixelfly::nn
