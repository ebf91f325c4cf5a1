// The image loader: every sample once per epoch, reproducible order and augmentation, the same
// batches with and without the prefetch thread, exact normalisation, crops and flips that are
// crops and flips (the same for every channel), per-channel statistics, and a clean stop mid-epoch.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "pixelfly/data/image_loader.h"

namespace pixelfly::data {
namespace {

// 50 images of `channels` x 6 x 6 whose pixels encode the image index; label = index.
ImageDataset synthetic(int64_t channels = 1) {
  ImageDataset d;
  d.images = (at::arange(50 * channels * 36, at::kLong).view({50, channels, 6, 6}) % 251).to(at::kByte);
  d.labels = at::arange(50, at::kLong);
  d.classes = 50;
  return d;
}

std::vector<ImageBatch> epoch_of(ImageLoader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<ImageBatch> out;
  while (auto b = loader.next()) out.push_back(*b);
  return out;
}

TEST(ImageLoader, VisitsEverySampleOncePerEpochWithAPartialLastBatch) {
  ImageLoaderOptions o;
  o.batch_size = 16;
  ImageLoader loader(synthetic(), o);
  EXPECT_EQ(loader.batches_per_epoch(), 4);
  const auto batches = epoch_of(loader, 0);
  ASSERT_EQ(batches.size(), 4u);
  EXPECT_EQ(batches.back().labels.size(0), 2);
  std::set<int64_t> seen;
  for (const auto& b : batches) {
    EXPECT_EQ(b.images.sizes(), at::IntArrayRef({b.labels.size(0), 1, 6, 6}));
    for (int64_t i = 0; i < b.labels.size(0); ++i) seen.insert(b.labels[i].item<int64_t>());
  }
  EXPECT_EQ(seen.size(), 50u);
  o.drop_last = true;
  ImageLoader dropping(synthetic(), o);
  EXPECT_EQ(epoch_of(dropping, 0).size(), 3u);
}

TEST(ImageLoader, IsReproducibleAndPrefetchDoesNotChangeBatches) {
  ImageLoaderOptions o;
  o.batch_size = 8;
  o.augment = true;
  o.seed = 11;
  ImageLoader a(synthetic(), o), b(synthetic(), o);
  o.prefetch = 0;
  ImageLoader direct(synthetic(), o);
  const auto ea = epoch_of(a, 3), eb = epoch_of(b, 3), ed = epoch_of(direct, 3);
  ASSERT_EQ(ea.size(), eb.size());
  for (size_t i = 0; i < ea.size(); ++i) {
    EXPECT_TRUE(at::equal(ea[i].images, eb[i].images));
    EXPECT_TRUE(at::equal(ea[i].images, ed[i].images));
    EXPECT_TRUE(at::equal(ea[i].labels, ed[i].labels));
  }
  const auto next_epoch = epoch_of(a, 4);
  EXPECT_FALSE(at::equal(next_epoch[0].labels, ea[0].labels)) << "a new order each epoch";
}

TEST(ImageLoader, NormalisesExactlyWithoutAugmentation) {
  ImageLoaderOptions o;
  o.batch_size = 50;
  o.shuffle = false;
  o.mean = {0.25};
  o.std = {0.5};
  ImageLoader loader(synthetic(), o);
  const auto batch = epoch_of(loader, 0).front();
  const at::Tensor expected = (synthetic().images.to(at::kFloat) / 255.0 - 0.25) / 0.5;
  EXPECT_EQ(batch.images.sizes(), at::IntArrayRef({50, 1, 6, 6}));
  EXPECT_TRUE(at::allclose(batch.images, expected));
  EXPECT_TRUE(at::equal(batch.labels, at::arange(50, at::kLong)));
}

TEST(ImageLoader, AugmentedImagesAreCropsOfThePaddedImageMaybeFlipped) {
  ImageLoaderOptions o;
  o.batch_size = 50;
  o.shuffle = false;
  o.augment = true;
  o.crop_padding = 2;
  o.mean = {0.0, 0.0};
  o.std = {1.0, 1.0};
  ImageLoader loader(synthetic(2), o);
  const auto batch = epoch_of(loader, 0).front();
  const at::Tensor originals = synthetic(2).images.to(at::kFloat) / 255.0;
  int moved = 0, flipped = 0;
  for (int64_t i = 0; i < 50; ++i) {
    const at::Tensor padded = at::constant_pad_nd(originals[i], {2, 2, 2, 2}, 0.0);
    bool found = false;
    for (int64_t dy = 0; dy <= 4 && !found; ++dy) {
      for (int64_t dx = 0; dx <= 4 && !found; ++dx) {
        const at::Tensor crop = padded.narrow(1, dy, 6).narrow(2, dx, 6);  // both channels
        for (bool flip : {false, true}) {
          if (at::allclose(batch.images[i], flip ? crop.flip({2}) : crop)) {
            found = true;
            moved += (dy != 2 || dx != 2);
            flipped += flip;
            break;
          }
        }
      }
    }
    EXPECT_TRUE(found) << "image " << i;
  }
  EXPECT_GT(moved, 25);
  EXPECT_GT(flipped, 10);
  EXPECT_LT(flipped, 40);
}

TEST(ImageLoader, NormalisesEachChannelWithItsOwnStatistics) {
  ImageLoaderOptions o;
  o.batch_size = 50;
  o.shuffle = false;
  o.mean = {0.1, 0.2, 0.3};
  o.std = {0.5, 0.25, 2.0};
  ImageLoader loader(synthetic(3), o);
  const auto batch = epoch_of(loader, 0).front();
  ASSERT_EQ(batch.images.sizes(), at::IntArrayRef({50, 3, 6, 6}));
  const at::Tensor pixels = synthetic(3).images.to(at::kDouble) / 255.0;
  for (int64_t c = 0; c < 3; ++c) {
    const at::Tensor expected = (pixels.select(1, c) - o.mean[c]) / o.std[c];
    EXPECT_TRUE(at::allclose(batch.images.select(1, c).to(at::kDouble), expected, 1e-5, 1e-6)) << "channel " << c;
  }
}

TEST(ImageLoader, RejectsStatisticsThatDoNotMatchTheChannels) {
  auto message_of = [](ImageLoaderOptions o, int64_t channels) -> std::string {
    try {
      ImageLoader loader(synthetic(channels), o);
    } catch (const c10::Error& e) {
      return e.what_without_backtrace();
    }
    return "no error";
  };
  ImageLoaderOptions defaults;  // Fashion-MNIST's single-channel statistics
  EXPECT_NE(message_of(defaults, 3).find("the images have 3 channel(s), mean has 1 and std 1 value(s)"),
            std::string::npos)
      << message_of(defaults, 3);
  ImageLoaderOptions bad_std;
  bad_std.mean = {0.5, 0.5};
  bad_std.std = {0.5, 0.0};
  EXPECT_NE(message_of(bad_std, 2).find("std must be > 0, got 0 for channel 1"), std::string::npos)
      << message_of(bad_std, 2);
  ImageDataset floats = synthetic();
  floats.images = floats.images.to(at::kFloat);
  EXPECT_THROW(ImageLoader(floats, {}), c10::Error);
}

TEST(ImageLoader, AugmentedImagesForChosenIndicesDependOnSeedAndDraw) {
  ImageLoaderOptions o;
  o.augment = true;
  o.seed = 5;
  o.mean = {0.5, 0.5};
  o.std = {0.25, 0.25};
  ImageLoader loader(synthetic(2), o), twin(synthetic(2), o);
  const std::vector<int64_t> indices = {3, 0, 49, 3, 17, 8, 21, 30};
  const at::Tensor first = loader.augmented_images(indices, 0);
  EXPECT_EQ(first.sizes(), at::IntArrayRef({8, 2, 6, 6}));
  EXPECT_TRUE(at::equal(first, twin.augmented_images(indices, 0)));
  EXPECT_FALSE(at::equal(first, loader.augmented_images(indices, 1)));
  o.augment = false;
  ImageLoader plain(synthetic(2), o);
  const at::Tensor expected = (synthetic(2).images.index_select(0, at::tensor(indices)).to(at::kFloat) / 255.0 - 0.5) / 0.25;
  EXPECT_TRUE(at::allclose(plain.augmented_images(indices, 7), expected));
  EXPECT_THROW(plain.augmented_images({50}, 0), c10::Error);
  EXPECT_THROW(plain.augmented_images({-1}, 0), c10::Error);
}

TEST(ImageLoader, StopsCleanlyMidEpochAndRejectsBadOptions) {
  {
    ImageLoaderOptions o;
    o.batch_size = 2;
    ImageLoader loader(synthetic(), o);
    loader.start_epoch(0);
    EXPECT_TRUE(loader.next().has_value());
    loader.start_epoch(1);  // restarts the worker while it waits
    EXPECT_TRUE(loader.next().has_value());
  }  // destroyed with the worker blocked on a full queue
  ImageLoaderOptions bad;
  bad.batch_size = 0;
  EXPECT_THROW(ImageLoader(synthetic(), bad), c10::Error);
  ImageLoader unstarted(synthetic(), {});
  EXPECT_THROW(unstarted.next(), c10::Error);
}

}  // namespace
}  // namespace pixelfly::data
