// Model zoo: preset name + overrides -> a built model behind a type-erased forward.
#include "pixelfly/models/model_zoo.h"

#include <algorithm>
#include <utility>

#include "pixelfly/models/gpt2.h"
#include "pixelfly/models/mlp_mixer.h"
#include "pixelfly/models/resnet.h"
#include "pixelfly/models/vit.h"

namespace pixelfly::models {
namespace {

bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

void override_if_set(int64_t& field, int64_t value) {
  if (value > 0) field = value;
}

// Overrides must be >= 0, and those that do not apply to the preset's task must stay 0.
void check_overrides(const ModelConfig& c, Task task) {
  struct Override {
    const char* name;
    int64_t value;
    Task task;
  };
  const Override overrides[] = {{"image_size", c.image_size, Task::ImageClassification},
                                {"in_channels", c.in_channels, Task::ImageClassification},
                                {"classes", c.classes, Task::ImageClassification},
                                {"vocab_size", c.vocab_size, Task::LanguageModelling},
                                {"context", c.context, Task::LanguageModelling}};
  for (const Override& o : overrides) {
    TORCH_CHECK(o.value >= 0, "model: ", o.name, " must be >= 0 (0 keeps the preset's value), got ", o.value);
    TORCH_CHECK(o.value == 0 || o.task == task, "model: ", o.name, " = ", o.value, " does not apply to ",
                task == Task::LanguageModelling ? "language model" : "image classifier", " '", c.preset, "'");
  }
}

template <typename Options>
void set_mlp_sparsity(Options& o, const ModelConfig& c) {
  o.sparsity = c.sparsity;
  o.mlp_density = c.mlp_density;
  o.low_rank_share = c.low_rank_share;
  if (!c.block_sizes.empty()) o.block_sizes = c.block_sizes;
}

template <typename Options>
void set_attention_sparsity(Options& o, const ModelConfig& c) {
  set_mlp_sparsity(o, c);
  o.sparsify_attention = c.sparsify_attention;
  o.attention_density = c.attention_density;
}

template <typename Holder>
Model wrap(Holder model, Task task, std::vector<LayerPlan> plans) {
  Model m;
  m.module = model.ptr();
  m.forward = [model](const at::Tensor& x) mutable { return model->forward(x); };
  m.task = task;
  m.plans = std::move(plans);
  return m;
}

}  // namespace

std::vector<std::string> model_preset_names() {
  std::vector<std::string> names;
  for (const auto& group : {mixer_preset_names(), vit_preset_names(), resnet_preset_names(), gpt2_preset_names()}) {
    names.insert(names.end(), group.begin(), group.end());
  }
  return names;
}

Task preset_task(const std::string& preset) {
  if (contains(gpt2_preset_names(), preset)) return Task::LanguageModelling;
  if (contains(mixer_preset_names(), preset) || contains(vit_preset_names(), preset) ||
      contains(resnet_preset_names(), preset)) {
    return Task::ImageClassification;
  }
  std::string known;
  for (const std::string& n : model_preset_names()) known += (known.empty() ? "" : ", ") + n;
  TORCH_CHECK(false, "unknown model preset '", preset, "'; known: ", known);
}

Model build_model(const ModelConfig& c) {
  const Task task = preset_task(c.preset);
  check_overrides(c, task);
  const bool has_attention = contains(vit_preset_names(), c.preset) || contains(gpt2_preset_names(), c.preset);
  TORCH_CHECK(!c.sparsify_attention || has_attention, "model: sparsify_attention applies to ViT and GPT-2, not to '",
              c.preset, "', which has no attention");

  if (contains(mixer_preset_names(), c.preset)) {
    MixerOptions o = mixer_preset(c.preset);
    override_if_set(o.image_size, c.image_size);
    override_if_set(o.in_channels, c.in_channels);
    override_if_set(o.classes, c.classes);
    set_mlp_sparsity(o, c);
    MlpMixer model(o);
    return wrap(model, task, model->plans());
  }
  if (contains(vit_preset_names(), c.preset)) {
    VitOptions o = vit_preset(c.preset);
    override_if_set(o.image_size, c.image_size);
    override_if_set(o.in_channels, c.in_channels);
    override_if_set(o.classes, c.classes);
    set_attention_sparsity(o, c);
    Vit model(o);
    return wrap(model, task, model->plans());
  }
  if (contains(gpt2_preset_names(), c.preset)) {
    Gpt2Options o = gpt2_preset(c.preset);
    override_if_set(o.vocab_size, c.vocab_size);
    override_if_set(o.context, c.context);
    set_attention_sparsity(o, c);
    Gpt2 model(o);
    return wrap(model, task, model->plans());
  }
  TORCH_CHECK(c.sparsity == Sparsity::Dense, "model: Pixelfly sparsity is not defined for ResNet '", c.preset,
              "'; use dense (ResNets are compressed with CrAM instead)");
  ResNetOptions o = resnet_preset(c.preset);
  override_if_set(o.in_channels, c.in_channels);
  override_if_set(o.classes, c.classes);
  if (c.image_size > 0 && c.image_size <= 64) o.small_input_stem = true;
  return wrap(ResNet(o), task, {});
}

SparsifiableLayers preset_sparsifiable_layers(const std::string& preset) {
  preset_task(preset);  // an unknown name fails here, listing the known ones
  if (contains(mixer_preset_names(), preset)) {
    const MixerOptions o = mixer_preset(preset);
    return {mixer_sparsifiable_layers(o), o.block_sizes};
  }
  if (contains(vit_preset_names(), preset)) {
    const VitOptions o = vit_preset(preset);
    return {block_stack_layers(o.depth, o.dim, o.mlp_dim), o.block_sizes};
  }
  if (contains(gpt2_preset_names(), preset)) {
    const Gpt2Options o = gpt2_preset(preset);
    return {block_stack_layers(o.depth, o.dim, o.mlp_dim), o.block_sizes};
  }
  TORCH_CHECK(false, "model: ResNet '", preset, "' has no Pixelfly layers (ResNets are compressed with CrAM)");
}

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const at::Tensor& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace pixelfly::models
