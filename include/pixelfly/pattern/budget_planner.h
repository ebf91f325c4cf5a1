// Budget planner: given a model's sparsifiable layers and a target density per layer type,
// choose per layer the low-rank rank r and the flat butterfly (n, k, b) that fill the budget,
// and report the achieved densities and the parameter and FLOP savings
// (spec/pixelfly.md sections 1, 2 and 4).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace pixelfly {

struct LayerShape {
  std::string name;  // e.g. "blocks.0.mlp.fc1"
  std::string type;  // e.g. "mlp", "attention"; looked up in PlannerOptions::density_by_type
  int64_t out_features = 0;
  int64_t in_features = 0;
};

struct PlannerOptions {
  // Target total density (sparse + low-rank) per layer type, in (0, 1]. Layers whose type is
  // not listed stay dense.
  std::map<std::string, double> density_by_type;
  // Share of each layer's budget given to the low-rank term, in [0, 1). The released settings
  // (n=16, k=2, b=32, r=32) give about 0.2 on Mixer-B and 0.17 on GPT-2-medium.
  double low_rank_share = 0.2;
  // Block sizes the planner may choose from.
  std::vector<int64_t> block_sizes = {16, 32, 64, 128};
  // Candidates whose density error is within this of the best one count as a tie; ties go to
  // the layout with the largest merged tiles, then the largest block.
  double tie_tolerance = 0.01;
};

struct LayerPlan {
  LayerShape layer;
  bool sparse = false;  // false: kept dense (type not in the budget)
  double target_density = 1.0;
  int64_t butterfly_size = 0, factors = 0, block = 0, rank = 0;
  double sparse_density = 1.0;    // nonzero blocks / all blocks
  double low_rank_density = 0.0;  // r * (out + in) / (out * in)
  double total_density = 1.0;
  double mean_tile_elements = 0.0;  // size of the dense GEMMs the kernels see
  int64_t dense_params = 0, params = 0;                    // weights only, bias excluded
  int64_t dense_flops_per_token = 0, flops_per_token = 0;  // forward multiply-adds x 2
};

// Throws std::invalid_argument for a density outside (0, 1], a share outside [0, 1), an empty
// or non-positive block list, or a layer shape <= 0.
std::vector<LayerPlan> plan_budget(const std::vector<LayerShape>& layers,
                                   const PlannerOptions& options);

// A fixed-width table, one row per layer plus a total row.
std::string format_plan_table(const std::vector<LayerPlan>& plans);

}  // namespace pixelfly
