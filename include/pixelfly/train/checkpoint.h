// Training checkpoints: save and restore a model's weights, an optimiser's state and the
// trainer's own state (step, epoch, RNG states, config) so that a resumed run continues bit for
// bit; plus standalone weight files for pruned models.
//
// A run directory holds
//   checkpoints/step_00001000/model.safetensors  every named parameter and buffer of the model,
//                                                under the module's dotted names
//                                                ("blocks.0.channel_fc1.sparse.weight")
//   checkpoints/step_00001000/optimizer.pt       torch::optim state (torch::serialize archive),
//                                                absent when saved without an optimiser
//   checkpoints/step_00001000/trainer.json       the JSON the trainer supplied
//   checkpoints/latest                           a text line naming the newest complete one
// A save builds the new checkpoint in checkpoints/.incomplete.step_<n>/, flushes every file,
// renames the directory into place and only then moves `latest`, so a crash at any moment
// leaves the previous checkpoint and `latest` intact. One process writes to a run directory.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>

namespace pixelfly::train {

// Writes a checkpoint of `model`, `optimizer` (may be null: no optimizer.pt) and
// `trainer_state` into <run_dir>/checkpoints/step_<step, 8 digits>/, creating directories as
// needed, points checkpoints/latest at it, then deletes older checkpoints (smaller steps) so
// that `keep` remain counting the new one (keep = 0 keeps all; checkpoints with larger steps,
// left by an abandoned run, are never deleted). Saving a step that already exists replaces it
// atomically. Returns the new checkpoint's directory.
// Throws c10::Error for step < 0, keep < 0, or tensors that cannot be saved; std::runtime_error
// naming the path when the file system refuses. After a failure nothing visible has changed
// (no half-written directory is left behind). Failing to delete old checkpoints only warns.
std::string save_checkpoint(const std::string& run_dir, int64_t step, const torch::nn::Module& model,
                            const torch::optim::Optimizer* optimizer, const nlohmann::json& trainer_state,
                            int keep = 2);

// The checkpoint directory `path` designates: `path` itself when it holds model.safetensors,
// else the one named by <path>/latest (a checkpoints directory) or <path>/checkpoints/latest (a
// run directory). Throws c10::Error saying what was looked for when there is none, or when
// `latest` names a directory without model.safetensors.
std::string latest_checkpoint(const std::string& path);

// Restores a checkpoint (`checkpoint` is anything latest_checkpoint accepts) and returns its
// trainer.json. The file must match the model exactly: one c10::Error lists the model's names
// missing from the file, the file's names the model lacks, and shape or dtype mismatches, and
// then nothing is changed. Values are copied into the existing parameters and buffers in place
// (under NoGradGuard, on whatever device they live), so references the optimiser holds stay
// valid. When `optimizer` is given its state (per-parameter buffers such as momentum or Adam
// moments, and the param-group options such as lr) is replaced by the saved one, moved to the
// device of its first parameter; the checkpoint must then hold optimizer.pt and the optimiser
// must have the same type and parameter groups as the saved one. Errors in trainer.json or the
// weights leave model and optimiser unchanged; an error in optimizer.pt leaves the model
// unchanged and the optimiser's state unspecified.
nlohmann::json load_checkpoint(const std::string& checkpoint, torch::nn::Module& model,
                               torch::optim::Optimizer* optimizer);

// Loads only the weights into `model` (for evaluation or pruning) with the same exact matching
// and in-place copy as load_checkpoint. `source` is a .safetensors file (for example one
// written by save_model_weights) or anything latest_checkpoint accepts.
void load_model_weights(const std::string& source, torch::nn::Module& model);

// Writes every named parameter and buffer of `model` to one standalone .safetensors file,
// atomically, with `metadata` as its "__metadata__" (for example a pruned model's sparsity).
void save_model_weights(const std::string& path, const torch::nn::Module& model,
                        const std::map<std::string, std::string>& metadata = {});

}  // namespace pixelfly::train
