// ResNet-20 (CIFAR), ResNet-18 and ResNet-50 (ImageNet) with BatchNorm.
#include "pixelfly/models/resnet.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>

namespace pixelfly::models {
namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

}  // namespace

ResNetBlockImpl::ResNetBlockImpl(ResNetBlockKind kind, int64_t in_channels, int64_t width, int64_t stride) {
  if (kind == ResNetBlockKind::Basic) {
    out_channels_ = width;
    conv1 = register_module("conv1", conv(in_channels, width, 3, stride));
    bn1 = register_module("bn1", torch::nn::BatchNorm2d(width));
    conv2 = register_module("conv2", conv(width, width, 3, 1));
    bn2 = register_module("bn2", torch::nn::BatchNorm2d(width));
  } else {
    out_channels_ = 4 * width;
    conv1 = register_module("conv1", conv(in_channels, width, 1, 1));
    bn1 = register_module("bn1", torch::nn::BatchNorm2d(width));
    conv2 = register_module("conv2", conv(width, width, 3, stride));
    bn2 = register_module("bn2", torch::nn::BatchNorm2d(width));
    conv3 = register_module("conv3", conv(width, out_channels_, 1, 1));
    bn3 = register_module("bn3", torch::nn::BatchNorm2d(out_channels_));
  }
  if (stride != 1 || in_channels != out_channels_) {
    shortcut = register_module("shortcut", torch::nn::Sequential(conv(in_channels, out_channels_, 1, stride),
                                                                 torch::nn::BatchNorm2d(out_channels_)));
  }
}

at::Tensor ResNetBlockImpl::forward(const at::Tensor& x) {
  at::Tensor y = at::relu(bn1(conv1(x)));
  y = bn2(conv2(y));
  if (conv3) y = bn3(conv3(at::relu(y)));
  return at::relu(y + (shortcut ? shortcut->forward(x) : x));
}

ResNetImpl::ResNetImpl(ResNetOptions o) : options_(std::move(o)) {
  const ResNetOptions& op = options_;
  TORCH_CHECK(!op.stage_blocks.empty() && op.stage_blocks.size() == op.stage_channels.size(),
              "ResNet: stage_blocks and stage_channels must be non-empty and of the same length, got ",
              op.stage_blocks.size(), " and ", op.stage_channels.size());
  for (size_t s = 0; s < op.stage_blocks.size(); ++s) {
    TORCH_CHECK(op.stage_blocks[s] >= 1 && op.stage_channels[s] >= 1, "ResNet: stage ", s,
                " needs blocks and channels >= 1, got ", op.stage_blocks[s], " and ", op.stage_channels[s]);
  }
  TORCH_CHECK(op.in_channels >= 1 && op.classes >= 2, "ResNet: in_channels must be >= 1 and classes >= 2, got ",
              op.in_channels, " and ", op.classes);
  const int64_t stem_channels = op.stage_channels[0];
  stem_conv = register_module("stem_conv", op.small_input_stem ? conv(op.in_channels, stem_channels, 3, 1)
                                                               : conv(op.in_channels, stem_channels, 7, 2));
  stem_bn = register_module("stem_bn", torch::nn::BatchNorm2d(stem_channels));
  block_list = register_module("blocks", torch::nn::ModuleList());
  int64_t channels = stem_channels;
  for (size_t s = 0; s < op.stage_blocks.size(); ++s) {
    for (int64_t i = 0; i < op.stage_blocks[s]; ++i) {
      const int64_t stride = (s > 0 && i == 0) ? 2 : 1;
      blocks.push_back(ResNetBlock(op.block, channels, op.stage_channels[s], stride));
      block_list->push_back(blocks.back());
      channels = blocks.back()->out_channels();
    }
  }
  head = register_module("head", torch::nn::Linear(channels, op.classes));

  torch::NoGradGuard no_grad;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* c = dynamic_cast<torch::nn::Conv2dImpl*>(m.get())) {
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* bn = dynamic_cast<torch::nn::BatchNorm2dImpl*>(m.get())) {
      bn->weight.fill_(1.0);
      bn->bias.zero_();
    }
  }
}

at::Tensor ResNetImpl::forward(const at::Tensor& images) {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == options_.in_channels, "ResNet: images must be (batch, ",
              options_.in_channels, ", H, W), got ", images.sizes());
  at::Tensor x = at::relu(stem_bn(stem_conv(images)));
  if (!options_.small_input_stem) x = at::max_pool2d(x, {3, 3}, {2, 2}, {1, 1});
  for (auto& block : blocks) x = block(x);
  return head(x.mean({2, 3}));
}

std::vector<std::string> resnet_preset_names() { return {"resnet20", "resnet18", "resnet50"}; }

ResNetOptions resnet_preset(const std::string& name) {
  ResNetOptions o;
  if (name == "resnet20") return o;  // the defaults
  if (name == "resnet18" || name == "resnet50") {
    const bool bottleneck = name == "resnet50";
    o.block = bottleneck ? ResNetBlockKind::Bottleneck : ResNetBlockKind::Basic;
    o.stage_blocks = bottleneck ? std::vector<int64_t>{3, 4, 6, 3} : std::vector<int64_t>{2, 2, 2, 2};
    o.stage_channels = {64, 128, 256, 512};
    o.small_input_stem = false;
    o.classes = 1000;
    return o;
  }
  std::string known;
  for (const std::string& n : resnet_preset_names()) known += (known.empty() ? "" : ", ") + n;
  TORCH_CHECK(false, "unknown ResNet preset '", name, "'; known: ", known);
}

}  // namespace pixelfly::models
