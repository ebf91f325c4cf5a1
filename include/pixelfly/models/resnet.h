// ResNets with BatchNorm for image classification, the models CrAM is evaluated on
// (spec/cram.md): the CIFAR-style ResNet-20 (He et al. 2016, section 4.2) and the ImageNet-style
// ResNet-18 (BasicBlock) and ResNet-50 (Bottleneck, stride on the 3 x 3 conv as in torchvision).
// When a block changes the shape, its shortcut is a 1 x 1 conv + BatchNorm projection.
// Convolutions have no bias. Pixelfly sparsity is not defined for these models.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <string>
#include <vector>

namespace pixelfly::models {

enum class ResNetBlockKind { Basic, Bottleneck };

struct ResNetOptions {
  ResNetBlockKind block = ResNetBlockKind::Basic;
  std::vector<int64_t> stage_blocks = {3, 3, 3};        // blocks per stage
  std::vector<int64_t> stage_channels = {16, 32, 64};   // width per stage (Bottleneck: inner width,
                                                        // the output is 4 x that)
  // Stem, with stage_channels[0] output channels: true for the CIFAR / small-input stem (3 x 3
  // conv, stride 1, no max-pool); false for the ImageNet stem (7 x 7 conv stride 2, then 3 x 3
  // max-pool stride 2).
  bool small_input_stem = true;
  int64_t in_channels = 3;
  int64_t classes = 10;
};

// Presets:
//   "resnet20": CIFAR-style, 3 stages x 3 BasicBlocks of 16/32/64 channels, 3 x 3 stem,
//               3 x 32 x 32 input, 10 classes; 272,474 parameters.
//   "resnet18": ImageNet-style, BasicBlocks {2, 2, 2, 2} of 64..512 channels, 224 x 224 input,
//               1000 classes; 11,689,512 parameters.
//   "resnet50": ImageNet-style, Bottlenecks {3, 4, 6, 3}, 1000 classes; 25,557,032 parameters.
// For 28/32-pixel images set small_input_stem on resnet18/resnet50.
// Throws c10::Error for an unknown name, listing the known ones.
ResNetOptions resnet_preset(const std::string& name);
std::vector<std::string> resnet_preset_names();

// conv-BN-ReLU-conv-BN (Basic) or 1x1-3x3-1x1 conv-BN (Bottleneck) plus the shortcut, then ReLU.
// Submodules: "conv1", "bn1", "conv2", "bn2" (and "conv3", "bn3" for Bottleneck), and
// "shortcut" (a Sequential of 1 x 1 conv and BatchNorm) when the shape changes.
class ResNetBlockImpl : public torch::nn::Module {
 public:
  ResNetBlockImpl(ResNetBlockKind kind, int64_t in_channels, int64_t width, int64_t stride);
  // x: (batch, in_channels, H, W) -> (batch, out_channels(), ceil(H / stride), ceil(W / stride)).
  at::Tensor forward(const at::Tensor& x);
  int64_t out_channels() const { return out_channels_; }

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  torch::nn::Sequential shortcut{nullptr};  // null: identity

 private:
  int64_t out_channels_;
};
TORCH_MODULE(ResNetBlock);

class ResNetImpl : public torch::nn::Module {
 public:
  // Convolutions get Kaiming-normal (fan_out) weights, BatchNorms weight 1 and bias 0.
  // Throws c10::Error for empty or mismatched stage lists or sizes < 1.
  explicit ResNetImpl(ResNetOptions options);
  // images: (batch, in_channels, H, W) float, any H, W large enough for the strides ->
  // logits (batch, classes). Throws c10::Error for another rank or channel count.
  at::Tensor forward(const at::Tensor& images);
  const ResNetOptions& options() const { return options_; }

  torch::nn::Conv2d stem_conv{nullptr};       // "stem_conv"
  torch::nn::BatchNorm2d stem_bn{nullptr};    // "stem_bn"
  torch::nn::ModuleList block_list{nullptr};  // registered as "blocks", all stages in order
  std::vector<ResNetBlock> blocks;            // the same modules, typed
  torch::nn::Linear head{nullptr};            // "head"

 private:
  ResNetOptions options_;
};
TORCH_MODULE(ResNet);

}  // namespace pixelfly::models
