// Whether a model's sparsifiable linear layers are dense or Pixelated Butterfly layers, and the
// small helper the models use to pick which of their linear slots the budget covers.
#pragma once

#include <vector>

#include "pixelfly/nn/sparsify.h"
#include "pixelfly/pattern/budget_planner.h"

namespace pixelfly::models {

enum class Sparsity { Dense, Pixelfly };

// The slots whose type the planner has a target density for (the others stay dense and out of
// the model's plans).
inline std::vector<nn::LinearSlot> slots_in_budget(const std::vector<nn::LinearSlot>& slots,
                                                   const PlannerOptions& planner) {
  std::vector<nn::LinearSlot> chosen;
  for (const nn::LinearSlot& s : slots) {
    if (planner.density_by_type.count(s.type) != 0) chosen.push_back(s);
  }
  return chosen;
}

}  // namespace pixelfly::models
