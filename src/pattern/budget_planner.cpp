// Budget planner: search over flat butterfly (n, k, b) per layer for the target density.
#include "pixelfly/pattern/budget_planner.h"

#include <cmath>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "pixelfly/pattern/flat_butterfly.h"

namespace pixelfly {
namespace {

void validate(const PlannerOptions& options) {
  for (const auto& [type, density] : options.density_by_type) {
    if (!(density > 0.0 && density <= 1.0)) {
      throw std::invalid_argument("density for layer type '" + type + "' must be in (0, 1], got " +
                                  std::to_string(density));
    }
  }
  if (!(options.low_rank_share >= 0.0 && options.low_rank_share < 1.0)) {
    throw std::invalid_argument("low_rank_share must be in [0, 1), got " +
                                std::to_string(options.low_rank_share));
  }
  if (options.block_sizes.empty()) throw std::invalid_argument("block_sizes must not be empty");
  for (int64_t b : options.block_sizes) {
    if (b <= 0) throw std::invalid_argument("block sizes must be >= 1, got " + std::to_string(b));
  }
  if (!(options.tie_tolerance >= 0.0)) {
    throw std::invalid_argument("tie_tolerance must be >= 0, got " +
                                std::to_string(options.tie_tolerance));
  }
}

LayerPlan plan_layer(const LayerShape& layer, double target, const PlannerOptions& options) {
  const int64_t out = layer.out_features, in = layer.in_features;
  LayerPlan plan;
  plan.layer = layer;
  plan.sparse = true;
  plan.target_density = target;
  plan.dense_params = out * in;
  plan.dense_flops_per_token = 2 * out * in;

  const double dense = static_cast<double>(out) * static_cast<double>(in);
  if (options.low_rank_share > 0.0) {
    const double rank = options.low_rank_share * target * dense / static_cast<double>(out + in);
    plan.rank = std::max<int64_t>(1, std::llround(rank));
  }
  plan.low_rank_density = static_cast<double>(plan.rank * (out + in)) / dense;
  const double sparse_target = std::max(0.0, target - plan.low_rank_density);

  struct Candidate {
    FlatButterflyParams params;
    double density, tile_elements;
  };
  std::vector<Candidate> candidates;
  for (int64_t b : options.block_sizes) {
    if (b > std::min(out, in)) continue;
    // Cells narrower than a block only round up to denser layouts: stop at one block per cell.
    const int64_t max_n = std::min(ceil_div(out, b), ceil_div(in, b));
    for (int64_t n = 2; n <= max_n; n *= 2) {
      for (int64_t k = 1; k <= exact_log2(n); ++k) {
        FlatButterflyParams p{out, in, n, k, b};
        const BlockLayout layout = flat_butterfly_layout(p);
        candidates.push_back({p, layout.density(), layout.mean_tile_elements()});
      }
    }
  }
  if (candidates.empty()) {
    throw std::invalid_argument("layer '" + layer.name + "' (" + std::to_string(out) + " x " +
                                std::to_string(in) + ") is smaller than every block size");
  }
  double best_error = 1e300;
  for (const Candidate& c : candidates) best_error = std::min(best_error, std::abs(c.density - sparse_target));
  const Candidate* chosen = nullptr;
  for (const Candidate& c : candidates) {
    if (std::abs(c.density - sparse_target) > best_error + options.tie_tolerance) continue;
    if (chosen == nullptr || c.tile_elements > chosen->tile_elements ||
        (c.tile_elements == chosen->tile_elements && c.params.block > chosen->params.block) ||
        (c.tile_elements == chosen->tile_elements && c.params.block == chosen->params.block &&
         std::abs(c.density - sparse_target) < std::abs(chosen->density - sparse_target))) {
      chosen = &c;
    }
  }
  plan.butterfly_size = chosen->params.butterfly_size;
  plan.factors = chosen->params.factors;
  plan.block = chosen->params.block;
  plan.sparse_density = chosen->density;
  plan.mean_tile_elements = chosen->tile_elements;
  plan.total_density = plan.sparse_density + plan.low_rank_density;
  const BlockLayout layout = flat_butterfly_layout(chosen->params);
  plan.params = layout.stored_values() + plan.rank * (out + in);
  plan.flops_per_token = 2 * plan.params;
  return plan;
}

}  // namespace

std::vector<LayerPlan> plan_budget(const std::vector<LayerShape>& layers,
                                   const PlannerOptions& options) {
  validate(options);
  std::vector<LayerPlan> plans;
  for (const LayerShape& layer : layers) {
    if (layer.out_features <= 0 || layer.in_features <= 0) {
      throw std::invalid_argument("layer '" + layer.name + "' must have positive shape, got " +
                                  std::to_string(layer.out_features) + " x " +
                                  std::to_string(layer.in_features));
    }
    const auto it = options.density_by_type.find(layer.type);
    if (it == options.density_by_type.end() || it->second >= 1.0) {
      LayerPlan plan;
      plan.layer = layer;
      plan.dense_params = plan.params = layer.out_features * layer.in_features;
      plan.dense_flops_per_token = plan.flops_per_token = 2 * plan.dense_params;
      plans.push_back(plan);
      continue;
    }
    plans.push_back(plan_layer(layer, it->second, options));
  }
  return plans;
}

std::string format_plan_table(const std::vector<LayerPlan>& plans) {
  std::ostringstream out;
  char line[512];
  std::snprintf(line, sizeof(line), "%-24s %-10s %11s %6s %3s %2s %4s %5s %7s %7s %7s %12s %12s %8s\n",
                "layer", "type", "shape", "target", "n", "k", "b", "rank", "sparse", "lowrank",
                "total", "params", "dense", "saving");
  out << line;
  int64_t params = 0, dense = 0;
  for (const LayerPlan& p : plans) {
    const std::string shape = std::to_string(p.layer.out_features) + "x" + std::to_string(p.layer.in_features);
    params += p.params;
    dense += p.dense_params;
    const double saving = 1.0 - static_cast<double>(p.params) / static_cast<double>(p.dense_params);
    if (p.sparse) {
      std::snprintf(line, sizeof(line),
                    "%-24s %-10s %11s %6.3f %3lld %2lld %4lld %5lld %7.4f %7.4f %7.4f %12lld %12lld %7.1f%%\n",
                    p.layer.name.c_str(), p.layer.type.c_str(), shape.c_str(), p.target_density,
                    static_cast<long long>(p.butterfly_size), static_cast<long long>(p.factors),
                    static_cast<long long>(p.block), static_cast<long long>(p.rank),
                    p.sparse_density, p.low_rank_density, p.total_density,
                    static_cast<long long>(p.params), static_cast<long long>(p.dense_params),
                    100.0 * saving);
    } else {
      std::snprintf(line, sizeof(line), "%-24s %-10s %11s %6s %3s %2s %4s %5s %7s %7s %7.4f %12lld %12lld %7.1f%%\n",
                    p.layer.name.c_str(), p.layer.type.c_str(), shape.c_str(), "dense", "-", "-",
                    "-", "-", "-", "-", 1.0, static_cast<long long>(p.params),
                    static_cast<long long>(p.dense_params), 0.0);
    }
    out << line;
  }
  const double saving = dense > 0 ? 1.0 - static_cast<double>(params) / static_cast<double>(dense) : 0.0;
  std::snprintf(line, sizeof(line), "%-24s %-10s %11s %6s %3s %2s %4s %5s %7s %7s %7.4f %12lld %12lld %7.1f%%\n",
                "total", "", "", "", "", "", "", "", "", "",
                dense > 0 ? static_cast<double>(params) / static_cast<double>(dense) : 0.0,
                static_cast<long long>(params), static_cast<long long>(dense), 100.0 * saving);
  out << line;
  out << "FLOPs per token follow the parameters: 2 x params (forward), x3 with backward.\n";
  return out.str();
}

}  // namespace pixelfly
