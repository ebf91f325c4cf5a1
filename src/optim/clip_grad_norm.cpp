// clip_grad_norm: per-device lists of gradients, their norms by _foreach_norm, one total, and
// one _foreach_mul_ per device by the clamped scale (a device tensor: nothing is read back).
#include "pixelfly/optim/clip_grad_norm.h"

#include <ATen/ATen.h>

#include <map>
#include <string>

namespace pixelfly::optim {

at::Tensor clip_grad_norm(const std::vector<at::Tensor>& parameters, double max_norm) {
  std::map<std::string, std::vector<at::Tensor>> grads_by_device;
  std::vector<std::string> device_order;
  for (const at::Tensor& p : parameters) {
    if (!p.grad().defined()) continue;
    const std::string device = p.grad().device().str();
    if (!grads_by_device.count(device)) device_order.push_back(device);
    grads_by_device[device].push_back(p.grad());
  }
  if (device_order.empty()) return {};
  const at::Device first = grads_by_device[device_order.front()].front().device();
  std::vector<at::Tensor> norms;
  for (const std::string& device : device_order) {
    for (const at::Tensor& norm : at::_foreach_norm(grads_by_device[device], 2)) {
      norms.push_back(norm.to(first, at::kFloat));
    }
  }
  const at::Tensor total = at::stack(norms).norm(2);
  const at::Tensor scale = (max_norm / (total + 1e-6)).clamp_max(1.0);
  for (const std::string& device : device_order) {
    std::vector<at::Tensor>& grads = grads_by_device[device];
    at::_foreach_mul_(grads, scale.to(grads.front().device()));
  }
  return total;
}

}  // namespace pixelfly::optim
