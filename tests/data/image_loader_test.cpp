// The image loader: every sample once per epoch, reproducible order and augmentation, the same
// batches with and without the prefetch thread, exact normalisation, crops and flips that are
// crops and flips, and a clean stop mid-epoch.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "pixelfly/data/image_loader.h"

namespace pixelfly::data {
namespace {

// 50 images of 6 x 6 whose pixels encode the image index; label = index.
ImageDataset synthetic() {
  ImageDataset d;
  d.images = (at::arange(50 * 36, at::kLong).view({50, 6, 6}) % 251).to(at::kByte);
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
  o.mean = 0.25;
  o.std = 0.5;
  ImageLoader loader(synthetic(), o);
  const auto batch = epoch_of(loader, 0).front();
  const at::Tensor expected = (synthetic().images.to(at::kFloat) / 255.0 - 0.25) / 0.5;
  EXPECT_TRUE(at::allclose(batch.images.squeeze(1), expected));
  EXPECT_TRUE(at::equal(batch.labels, at::arange(50, at::kLong)));
}

TEST(ImageLoader, AugmentedImagesAreCropsOfThePaddedImageMaybeFlipped) {
  ImageLoaderOptions o;
  o.batch_size = 50;
  o.shuffle = false;
  o.augment = true;
  o.crop_padding = 2;
  o.mean = 0.0;
  o.std = 1.0;
  ImageLoader loader(synthetic(), o);
  const auto batch = epoch_of(loader, 0).front();
  const at::Tensor originals = synthetic().images.to(at::kFloat) / 255.0;
  int moved = 0, flipped = 0;
  for (int64_t i = 0; i < 50; ++i) {
    const at::Tensor padded = at::constant_pad_nd(originals[i], {2, 2, 2, 2}, 0.0);
    bool found = false;
    for (int64_t dy = 0; dy <= 4 && !found; ++dy) {
      for (int64_t dx = 0; dx <= 4 && !found; ++dx) {
        const at::Tensor crop = padded.narrow(0, dy, 6).narrow(1, dx, 6);
        for (bool flip : {false, true}) {
          if (at::allclose(batch.images[i][0], flip ? crop.flip({1}) : crop)) {
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
