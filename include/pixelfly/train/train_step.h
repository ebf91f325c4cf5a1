// One optimiser step on one batch: forward (under bfloat16 autocast when the session uses it),
// loss, backward, optional gradient clipping, step. With CrAM the two passes and the step are
// CrAM's. A non-finite loss skips the step (plain optimisers) and is returned for the caller to
// act on.
#pragma once

#include "pixelfly/train/optimizer_factory.h"
#include "pixelfly/train/session.h"

namespace pixelfly::train {

// Returns the batch loss (of the first pass for CrAM); synchronises with the device.
double train_step(Session& session, Optimizers& optimizers, const Batch& batch);

// The part of a plain optimiser's step before the update, on inputs and targets already on the
// session's device: forward, loss, backward (into gradients that start empty or at zero), and
// gradient clipping when configured. Returns the loss without reading it back.
at::Tensor loss_and_gradients(Session& session, const at::Tensor& inputs, const at::Tensor& targets);

// FLOPs of one training step of `batch_size` examples: 3 x the forward FLOPs of one example of
// the evaluation split (the backward pass costs about twice the forward).
double training_flops_per_step(Session& session, int64_t batch_size);

}  // namespace pixelfly::train
