// Synthetic data for speed benchmarks and smoke tests: random, yet learnable, so a model's loss
// still falls. Images are a fixed per-class template plus noise; tokens follow a random sparse
// Markov chain. Everything is deterministic under the seed.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "pixelfly/data/image_dataset.h"

namespace pixelfly::data {

// `count` images of (channels, size, size) and their labels, `classes` classes as balanced as
// the count allows, in random order. Image = the class's template (uniform pixels) + Gaussian
// noise (standard deviation 48 of 255), clamped to [0, 255]. The templates depend only on
// (channels, size, classes), never on the seed, so data sets drawn with different seeds (a
// training and a test set) share their classes; the seed picks labels and noise.
// Throws c10::Error for a non-positive count, channels or size, or fewer than 2 classes.
ImageDataset synthetic_images(int64_t count, int64_t channels, int64_t size, int64_t classes, uint64_t seed);

// `count` tokens in [0, vocab): a Markov chain where each token is followed by one of 4 fixed
// (per vocabulary, not per seed) successors 90 % of the time and by a uniform token otherwise.
// uint8 when vocab <= 256 (a byte stream, like a text corpus), int64 otherwise; 1-D. Throws
// c10::Error for a non-positive count or a vocab below 2.
at::Tensor synthetic_tokens(int64_t count, int64_t vocab, uint64_t seed);

}  // namespace pixelfly::data
