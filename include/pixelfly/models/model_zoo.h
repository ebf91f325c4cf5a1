// Model zoo: builds any model of the project from a preset name and a few overrides, behind one
// type-erased interface the trainer uses. Presets (details in each model's header):
//   image classification: mixer-s16, mixer-b16, mixer-small28 (models/mlp_mixer.h),
//                         vit-s16, vit-b16, vit-small28 (models/vit.h),
//                         resnet20, resnet18, resnet50 (models/resnet.h; dense only, for CrAM)
//   language modelling:   gpt2-small, gpt2-medium, gpt2-tiny (models/gpt2.h)
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pixelfly/models/sparsity.h"
#include "pixelfly/pattern/budget_planner.h"

namespace pixelfly::models {

enum class Task { ImageClassification, LanguageModelling };

struct ModelConfig {
  std::string preset = "mixer-small28";
  Sparsity sparsity = Sparsity::Dense;
  double mlp_density = 0.25;  // target total density of sparsified MLP layers, in (0, 1]
  double low_rank_share = 0.2;  // of each budget, for the low-rank term, in (0, 1)
  bool sparsify_attention = false;  // ViT and GPT-2 only: also the qkv/proj projections
  double attention_density = 0.25;  // their target total density, in (0, 1]
  std::vector<int64_t> block_sizes;  // the planner's block sizes; empty: the preset's default
  // Data-dependent overrides; 0 keeps the preset's value. image_size, in_channels and classes
  // apply to image models, vocab_size and context to language models; setting one that does
  // not apply is an error. ResNets take any image size; on resnet18/resnet50 an image_size of
  // at most 64 selects the small-input stem (3 x 3 stride-1 conv, no max-pool).
  int64_t image_size = 0, in_channels = 0, classes = 0, vocab_size = 0, context = 0;
};

struct Model {
  std::shared_ptr<torch::nn::Module> module;  // parameters, train()/eval(), to(device)
  // ImageClassification: images (B, C, H, W) float -> logits (B, classes);
  // LanguageModelling: tokens (B, T) int64 -> logits (B, T, vocab). Shares the module.
  std::function<at::Tensor(const at::Tensor&)> forward;
  Task task = Task::ImageClassification;
  std::vector<LayerPlan> plans;  // the planner's choice per sparsified layer; empty for dense
};

// Throws c10::Error for an unknown preset (listing the known ones), a negative override, an
// override that does not apply to the preset, sparsify_attention on a model without attention,
// Sparsity::Pixelfly on a ResNet, and sizes or budgets the model or planner rejects.
Model build_model(const ModelConfig& config);
// The task of a preset; throws c10::Error for an unknown one.
Task preset_task(const std::string& preset);
// Every preset name, in the order listed above.
std::vector<std::string> model_preset_names();

// What a preset offers the planner without building it: the layers Pixelfly may sparsify (named
// as in named_parameters(), type "mlp" or "attention", out x in) and its default block sizes.
struct SparsifiableLayers {
  std::vector<LayerShape> layers;
  std::vector<int64_t> block_sizes;
};
// Throws c10::Error for an unknown preset (listing the known ones) or a ResNet (dense only).
SparsifiableLayers preset_sparsifiable_layers(const std::string& preset);

// Number of parameter elements of a module (all of them, trainable or not).
int64_t parameter_count(const torch::nn::Module& module);

}  // namespace pixelfly::models
