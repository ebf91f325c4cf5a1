// Budget planner: densities reached, tie-breaking toward larger tiles, savings, bad options.
#include <gtest/gtest.h>

#include <cmath>

#include "pixelfly/pattern/budget_planner.h"
#include "pixelfly/pattern/flat_butterfly.h"

namespace pixelfly {
namespace {

TEST(BudgetPlanner, ReachesTheTargetPerTypeAndKeepsOtherTypesDense) {
  PlannerOptions options;
  options.density_by_type = {{"mlp", 0.25}, {"attention", 0.5}};
  options.low_rank_share = 0.2;
  const std::vector<LayerShape> layers = {{"fc1", "mlp", 3072, 768},
                                          {"fc2", "mlp", 768, 3072},
                                          {"qkv", "attention", 2304, 768},
                                          {"head", "classifier", 1000, 768}};
  const std::vector<LayerPlan> plans = plan_budget(layers, options);
  ASSERT_EQ(plans.size(), 4u);
  for (int i = 0; i < 3; ++i) {
    const LayerPlan& p = plans[i];
    ASSERT_TRUE(p.sparse);
    // Rank: 20 % of the budget, r (out + in) / (out in).
    const double target = p.target_density;
    const double dense = static_cast<double>(p.layer.out_features) * p.layer.in_features;
    EXPECT_EQ(p.rank, std::llround(0.2 * target * dense / (p.layer.out_features + p.layer.in_features)));
    EXPECT_NEAR(p.low_rank_density, p.rank * (p.layer.out_features + p.layer.in_features) / dense, 1e-12);
    // The chosen layout is what it says, and the total lands near the target.
    const BlockLayout l = flat_butterfly_layout({p.layer.out_features, p.layer.in_features,
                                                 p.butterfly_size, p.factors, p.block});
    EXPECT_DOUBLE_EQ(p.sparse_density, l.density());
    EXPECT_DOUBLE_EQ(p.total_density, p.sparse_density + p.low_rank_density);
    EXPECT_NEAR(p.total_density, target, 0.06) << p.layer.name;
    EXPECT_EQ(p.params, l.stored_values() + p.rank * (p.layer.out_features + p.layer.in_features));
    EXPECT_EQ(p.flops_per_token, 2 * p.params);
    EXPECT_LT(p.params, p.dense_params);
  }
  EXPECT_FALSE(plans[3].sparse);
  EXPECT_EQ(plans[3].params, 1000 * 768);
  const std::string table = format_plan_table(plans);
  EXPECT_NE(table.find("fc1"), std::string::npos);
  EXPECT_NE(table.find("dense"), std::string::npos);
  EXPECT_NE(table.find("total"), std::string::npos);
}

TEST(BudgetPlanner, PrefersLargerSuperBlocksWhenDensitiesTie) {
  // 4096 x 4096 at 3/8: n=8, k=2 gives exactly 0.375 for every block size that divides 512;
  // with no low-rank share the planner must pick the largest merged tiles.
  PlannerOptions options;
  options.density_by_type = {{"mlp", 0.375}};
  options.low_rank_share = 0.0;
  options.tie_tolerance = 0.0;
  const LayerPlan p = plan_budget({{"fc", "mlp", 4096, 4096}}, options)[0];
  EXPECT_DOUBLE_EQ(p.sparse_density, 0.375);
  EXPECT_EQ(p.rank, 0);
  // Any other candidate with the same density has tiles no larger.
  for (int64_t b : options.block_sizes) {
    for (int64_t n = 2; n <= 4096 / b; n *= 2) {
      for (int64_t k = 1; k <= exact_log2(n); ++k) {
        const BlockLayout l = flat_butterfly_layout({4096, 4096, n, k, b});
        if (l.density() == p.sparse_density) {
          EXPECT_LE(l.mean_tile_elements(), p.mean_tile_elements);
        }
      }
    }
  }
  EXPECT_EQ(p.butterfly_size, 8);
  EXPECT_EQ(p.factors, 2);
  EXPECT_EQ(p.block, 128);
}

TEST(BudgetPlanner, RejectsBadOptions) {
  auto message = [](const PlannerOptions& o, std::vector<LayerShape> layers) {
    try {
      plan_budget(layers, o);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  PlannerOptions o;
  o.density_by_type = {{"mlp", 1.5}};
  EXPECT_EQ(message(o, {}), "density for layer type 'mlp' must be in (0, 1], got 1.500000");
  o.density_by_type = {{"mlp", 0.3}};
  o.low_rank_share = 1.0;
  EXPECT_EQ(message(o, {}), "low_rank_share must be in [0, 1), got 1.000000");
  o.low_rank_share = 0.2;
  o.block_sizes = {};
  EXPECT_EQ(message(o, {}), "block_sizes must not be empty");
  o.block_sizes = {32};
  EXPECT_EQ(message(o, {{"tiny", "mlp", 8, 64}}), "layer 'tiny' (8 x 64) is smaller than every block size");
  EXPECT_EQ(message(o, {{"bad", "mlp", 0, 64}}), "layer 'bad' must have positive shape, got 0 x 64");
}

}  // namespace
}  // namespace pixelfly
