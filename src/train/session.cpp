// Device, data and model from a resolved configuration; evaluation.
#include "pixelfly/train/session.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/cuda.h>
#include <torch/nn/functional/loss.h>
#include <torch/utils.h>

#include <cmath>
#include <stdexcept>

#include "pixelfly/pattern/budget_planner.h"

namespace pixelfly::train {

c10::Device resolve_device(const std::string& device) {
  if (device == "auto") return torch::cuda::is_available() ? c10::Device(c10::kCUDA) : c10::Device(c10::kCPU);
  const c10::Device d(device);
  if (d.is_cuda()) {
    if (!torch::cuda::is_available()) {
      throw std::invalid_argument("run.device = \"" + device + "\" but this machine has no CUDA GPU; use cpu or auto");
    }
    if (d.has_index() && d.index() >= static_cast<int>(torch::cuda::device_count())) {
      throw std::invalid_argument("run.device = \"" + device + "\" but only " +
                                  std::to_string(torch::cuda::device_count()) + " GPU(s) are present");
    }
  }
  return d;
}

Session open_session(const nlohmann::json& resolved, std::ostream& out) {
  Session s;
  s.resolved = resolved;
  s.config = parse_config(resolved);
  const TrainConfig& c = s.config;
  s.device = resolve_device(c.device);
  if (c.precision == "bf16" && !s.device.is_cuda()) {
    throw std::invalid_argument("train.precision = \"bf16\" needs a CUDA device (run.device is " + s.device.str() +
                                "); use fp32 or auto");
  }
  s.bf16_autocast = s.device.is_cuda() && c.precision != "fp32";
  if (c.threads > 0) at::set_num_threads(static_cast<int>(c.threads));
  torch::manual_seed(c.seed);

  s.data = make_training_data(c);
  out << "data:   " << s.data->summary() << "\n";
  models::ModelConfig model_config = c.model;
  s.data->describe_to(model_config);
  s.model = models::build_model(model_config);
  s.model.module->to(s.device);
  const int64_t parameters = models::parameter_count(*s.model.module);
  out << "model:  " << c.model.preset << " (" << (c.model.sparsity == models::Sparsity::Pixelfly ? "pixelfly" : "dense")
      << "), " << parameters << " parameters, on " << s.device.str()
      << (s.bf16_autocast ? " with bfloat16 autocast" : "") << "\n";
  if (!s.model.plans.empty()) out << format_plan_table(s.model.plans);
  return s;
}

at::Tensor task_loss(const at::Tensor& logits, const at::Tensor& targets, double label_smoothing) {
  const at::Tensor flat = logits.reshape({-1, logits.size(-1)}).to(at::kFloat);
  return at::cross_entropy_loss(flat, targets.reshape({-1}), {}, at::Reduction::Mean, -100, label_smoothing);
}

at::Tensor autocast_forward(bool enabled, const std::function<at::Tensor()>& forward) {
  if (!enabled) return forward();
  struct Guard {
    Guard() {
      at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
      at::autocast::set_autocast_enabled(at::kCUDA, true);
    }
    ~Guard() {
      at::autocast::set_autocast_enabled(at::kCUDA, false);
      at::autocast::clear_cache();
    }
  } guard;
  return forward();
}

Evaluation evaluate(Session& s) {
  torch::NoGradGuard no_grad;
  const bool was_training = s.model.module->is_training();
  s.model.module->eval();
  double loss_sum = 0;
  int64_t correct = 0, examples = 0;
  s.data->start_evaluation();
  while (auto batch = s.data->next_evaluation()) {
    const at::Tensor inputs = batch->inputs.to(s.device, /*non_blocking=*/true);
    const at::Tensor targets = batch->targets.to(s.device, /*non_blocking=*/true);
    const at::Tensor logits = autocast_forward(s.bf16_autocast, [&] { return s.model.forward(inputs); });
    const at::Tensor flat = logits.reshape({-1, logits.size(-1)}).to(at::kFloat);
    const at::Tensor flat_targets = targets.reshape({-1});
    loss_sum += at::cross_entropy_loss(flat, flat_targets, {}, at::Reduction::Sum).item<double>();
    correct += flat.argmax(1).eq(flat_targets).sum().item<int64_t>();
    examples += flat_targets.numel();
  }
  s.model.module->train(was_training);
  if (examples == 0) throw std::runtime_error("the evaluation split is empty");
  Evaluation e;
  e.examples = examples;
  e.loss = loss_sum / static_cast<double>(examples);
  e.accuracy = static_cast<double>(correct) / static_cast<double>(examples);
  e.bits_per_byte = s.model.task == models::Task::LanguageModelling ? e.loss / std::log(2.0) : 0.0;
  return e;
}

}  // namespace pixelfly::train
