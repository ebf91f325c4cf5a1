// Compressible-weight selection and mask helpers shared by every compressor.
#include "pixelfly/compress/compressor.h"

#include <ATen/ATen.h>

namespace pixelfly::compress {

std::vector<NamedWeight> compressible_weights(const torch::nn::Module& module, const CompressionPolicy& policy) {
  std::vector<NamedWeight> all;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    if (p.value().dim() >= 2) all.push_back({p.key(), p.value()});
  }
  for (const std::string& name : policy.keep_dense) {
    bool found = false;
    for (const NamedWeight& w : all) found = found || w.name == name;
    TORCH_CHECK(found, "compression policy: keep_dense names '", name,
                "', which is not a parameter of two or more dimensions of this model");
  }
  std::vector<NamedWeight> chosen;
  for (size_t i = 0; i < all.size(); ++i) {
    if (policy.keep_first_dense && i == 0) continue;
    if (policy.keep_last_dense && i + 1 == all.size()) continue;
    if (policy.keep_dense.count(all[i].name) != 0) continue;
    chosen.push_back(all[i]);
  }
  return chosen;
}

void apply_masks(const std::vector<NamedWeight>& weights, const MaskMap& masks) {
  at::NoGradGuard no_grad;
  for (const NamedWeight& w : weights) {
    const auto it = masks.find(w.name);
    TORCH_CHECK(it != masks.end(), "apply_masks: no mask for weight '", w.name, "'");
    TORCH_CHECK(it->second.sizes() == w.weight.sizes(), "apply_masks: mask for '", w.name, "' has shape ",
                it->second.sizes(), " but the weight has ", w.weight.sizes());
    w.weight.mul_(it->second);  // a bool mask multiplies in the weight's dtype
  }
}

double sparsity_of(const MaskMap& masks) {
  int64_t kept = 0, total = 0;
  for (const auto& [name, mask] : masks) {
    kept += mask.sum().item<int64_t>();
    total += mask.numel();
  }
  return total == 0 ? 0.0 : 1.0 - static_cast<double>(kept) / static_cast<double>(total);
}

}  // namespace pixelfly::compress
