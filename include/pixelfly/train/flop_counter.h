// Counts the floating-point operations a piece of code performs, by observing the operators it
// calls (ATen's RecordFunction callbacks): matrix products (mm, addmm, bmm, baddbmm),
// convolutions, scaled-dot-product attention and the block-sparse and mixed Pixelfly
// operators (forward and backward), two FLOPs per multiply-add. Operators nested inside a counted one are not counted
// again. Element-wise work (norms, activations, softmax) is left out, as is usual for training
// FLOP budgets.
#pragma once

#include <functional>

namespace pixelfly::train {

// The FLOPs `run` performs on this thread.
double count_flops(const std::function<void()>& run);

}  // namespace pixelfly::train
