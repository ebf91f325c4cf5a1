// Class templates plus noise, and Markov-chain token streams, from seeded generators.
#include "pixelfly/data/synthetic.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <random>
#include <vector>

namespace pixelfly::data {
namespace {

// Seeds for what must not depend on the caller's seed (class templates, successor tables).
constexpr uint64_t kTemplateSeed = 0x7E3B1A5C0FFEE123ULL;
constexpr int64_t kSuccessors = 4;
constexpr double kNoiseStd = 48.0;
constexpr int64_t kChunkImages = 4096;  // bounds the float32 working memory

}  // namespace

ImageDataset synthetic_images(int64_t count, int64_t channels, int64_t size, int64_t classes, uint64_t seed) {
  TORCH_CHECK(count > 0, "synthetic_images: count must be >= 1, got ", count);
  TORCH_CHECK(channels > 0, "synthetic_images: channels must be >= 1, got ", channels);
  TORCH_CHECK(size > 0, "synthetic_images: size must be >= 1, got ", size);
  TORCH_CHECK(classes >= 2, "synthetic_images: classes must be >= 2, got ", classes);
  at::Generator fixed = at::make_generator<at::CPUGeneratorImpl>(kTemplateSeed);
  const at::Tensor templates =
      at::randint(0, 256, {classes, channels, size, size}, fixed, at::TensorOptions().dtype(at::kFloat));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  ImageDataset out;
  out.classes = classes;
  out.labels = at::arange(count, at::kLong).remainder_(classes).index_select(0, at::randperm(count, gen, at::kLong));
  out.images = at::empty({count, channels, size, size}, at::kByte);
  for (int64_t begin = 0; begin < count; begin += kChunkImages) {
    const int64_t n = std::min(kChunkImages, count - begin);
    const at::Tensor noise = at::normal(0.0, kNoiseStd, {n, channels, size, size}, gen);
    const at::Tensor images = templates.index_select(0, out.labels.narrow(0, begin, n)).add_(noise);
    out.images.narrow(0, begin, n).copy_(images.clamp_(0, 255).round_());
  }
  return out;
}

at::Tensor synthetic_tokens(int64_t count, int64_t vocab, uint64_t seed) {
  TORCH_CHECK(count > 0, "synthetic_tokens: count must be >= 1, got ", count);
  TORCH_CHECK(vocab >= 2, "synthetic_tokens: vocab must be >= 2, got ", vocab);
  const uint64_t v = static_cast<uint64_t>(vocab);
  std::mt19937_64 fixed(kTemplateSeed);
  std::vector<int64_t> successors(static_cast<size_t>(vocab * kSuccessors));
  for (int64_t& s : successors) s = static_cast<int64_t>(fixed() % v);
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL);
  std::vector<int64_t> tokens(static_cast<size_t>(count));
  int64_t previous = static_cast<int64_t>(rng() % v);
  for (int64_t& t : tokens) {
    const uint64_t r = rng();
    // The low 32 bits decide between the chain (90 %) and a uniform token; the high bits pick.
    const bool follow = (r & 0xFFFFFFFFULL) < 0xE6666666ULL;
    t = follow ? successors[static_cast<size_t>(previous * kSuccessors) + (r >> 32) % kSuccessors]
               : static_cast<int64_t>((r >> 32) % v);
    previous = t;
  }
  at::Tensor out = at::tensor(tokens, at::kLong);
  return vocab <= 256 ? out.to(at::kByte) : out;
}

}  // namespace pixelfly::data
