// The token loader: targets are the inputs shifted by one, training windows depend only on
// (seed, step) and are the same with and without the prefetch thread, offsets cover exactly the
// valid range, and evaluation windows tile the data in order.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "pixelfly/data/token_loader.h"

namespace pixelfly::data {
namespace {

// Token i has id i, so a window's first input is its offset.
at::Tensor counting(int64_t n) { return at::arange(n, at::kLong); }

TEST(TokenLoader, TargetsAreInputsShiftedByOne) {
  TokenLoaderOptions o;
  o.batch_size = 8;
  o.context = 32;
  TokenLoader loader(counting(5000), o);
  for (int64_t step = 0; step < 5; ++step) {
    const TokenBatch b = loader.next();
    ASSERT_EQ(b.inputs.sizes(), at::IntArrayRef({8, 32}));
    ASSERT_EQ(b.targets.sizes(), at::IntArrayRef({8, 32}));
    EXPECT_EQ(b.inputs.scalar_type(), at::kLong);
    EXPECT_EQ(b.targets.scalar_type(), at::kLong);
    const at::Tensor offsets = b.inputs.select(1, 0).unsqueeze(1);
    EXPECT_TRUE(at::equal(b.inputs, offsets + at::arange(32, at::kLong)));
    EXPECT_TRUE(at::equal(b.targets, b.inputs + 1));
  }
}

TEST(TokenLoader, BytesBecomeInt64TokensUnchanged) {
  const at::Tensor bytes = (at::arange(300, at::kLong) % 256).to(at::kByte);
  TokenLoaderOptions o;
  o.batch_size = 4;
  o.context = 260;
  TokenLoader loader(bytes, o);
  const TokenBatch b = loader.eval_batch(0);
  ASSERT_EQ(b.inputs.size(0), 1);
  EXPECT_TRUE(at::equal(b.inputs[0], bytes.narrow(0, 0, 260).to(at::kLong)));
  EXPECT_TRUE(at::equal(b.targets[0], bytes.narrow(0, 1, 260).to(at::kLong)));
  EXPECT_EQ(b.inputs[0][255].item<int64_t>(), 255);
}

TEST(TokenLoader, TrainingIsReproducibleFromSeedAndStepWithOrWithoutPrefetch) {
  TokenLoaderOptions o;
  o.batch_size = 4;
  o.context = 16;
  o.seed = 7;
  TokenLoader a(counting(10000), o), b(counting(10000), o);
  o.prefetch = 0;
  TokenLoader direct(counting(10000), o);
  for (int64_t step = 0; step < 20; ++step) {
    const TokenBatch x = a.next(), y = b.next(), z = direct.next();
    EXPECT_TRUE(at::equal(x.inputs, y.inputs)) << "step " << step;
    EXPECT_TRUE(at::equal(x.inputs, z.inputs)) << "step " << step;
    EXPECT_TRUE(at::equal(x.targets, z.targets)) << "step " << step;
    EXPECT_TRUE(at::equal(x.inputs, a.train_batch(step).inputs)) << "step " << step;
  }
  EXPECT_EQ(a.step(), 20);
  // Resuming at a step gives that step's batch, and steps and seeds differ from one another.
  a.seek(3);
  EXPECT_TRUE(at::equal(a.next().inputs, direct.train_batch(3).inputs));
  EXPECT_FALSE(at::equal(direct.train_batch(3).inputs, direct.train_batch(4).inputs));
  o.seed = 8;
  TokenLoader other_seed(counting(10000), o);
  EXPECT_FALSE(at::equal(other_seed.train_batch(3).inputs, direct.train_batch(3).inputs));
}

TEST(TokenLoader, TrainingOffsetsCoverExactlyTheValidRange) {
  TokenLoaderOptions o;
  o.batch_size = 4;
  o.context = 16;
  TokenLoader loader(counting(20), o);  // offsets 0 to 3: the window needs 17 tokens
  std::set<int64_t> offsets;
  for (int64_t step = 0; step < 50; ++step) {
    const at::Tensor first = loader.train_batch(step).inputs.select(1, 0);
    for (int64_t i = 0; i < first.size(0); ++i) offsets.insert(first[i].item<int64_t>());
  }
  EXPECT_EQ(offsets, (std::set<int64_t>{0, 1, 2, 3}));
}

TEST(TokenLoader, EvaluationWindowsTileTheDataInOrder) {
  TokenLoaderOptions o;
  o.batch_size = 4;
  o.context = 16;
  TokenLoader loader(counting(1000), o);
  EXPECT_EQ(loader.eval_windows(), 62);  // (1000 - 1) / 16
  ASSERT_EQ(loader.eval_batches(), 16);
  EXPECT_EQ(loader.eval_batches(3), 3);
  EXPECT_EQ(loader.eval_batches(100), 16);
  std::vector<at::Tensor> inputs, targets;
  for (int64_t i = 0; i < loader.eval_batches(); ++i) {
    const TokenBatch b = loader.eval_batch(i);
    inputs.push_back(b.inputs.reshape({-1}));
    targets.push_back(b.targets.reshape({-1}));
  }
  EXPECT_EQ(loader.eval_batch(15).inputs.size(0), 2);
  EXPECT_TRUE(at::equal(at::cat(inputs), counting(62 * 16)));
  EXPECT_TRUE(at::equal(at::cat(targets), counting(62 * 16 + 1).narrow(0, 1, 62 * 16)));
  EXPECT_THROW(loader.eval_batch(16), c10::Error);
  EXPECT_THROW(loader.eval_batch(-1), c10::Error);
}

TEST(TokenLoader, StopsCleanlyAndRejectsBadInput) {
  {
    TokenLoaderOptions o;
    o.context = 8;
    TokenLoader loader(counting(100), o);
    loader.next();
    loader.seek(10);  // restarts the worker while it waits on a full queue
    loader.next();
  }  // destroyed with the worker blocked
  TokenLoaderOptions o;
  o.context = 16;
  EXPECT_THROW(TokenLoader(counting(16), o), c10::Error);  // needs 17 tokens
  EXPECT_THROW(TokenLoader(counting(100).view({10, 10}), o), c10::Error);
  EXPECT_THROW(TokenLoader(counting(100).to(at::kFloat), o), c10::Error);
  EXPECT_THROW(TokenLoader(counting(100) - 1, o), c10::Error);
  o.batch_size = 0;
  EXPECT_THROW(TokenLoader(counting(100), o), c10::Error);
  try {
    TokenLoaderOptions small;
    small.context = 64;
    TokenLoader loader(counting(10), small);
    ADD_FAILURE() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("10 tokens are too few for one window of context 64"),
              std::string::npos)
        << e.what_without_backtrace();
  }
}

}  // namespace
}  // namespace pixelfly::data
