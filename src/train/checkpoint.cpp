// Checkpoints (layout and guarantees in include/pixelfly/train/checkpoint.h): weights through
// safetensors, optimiser state through torch::serialize archives, trainer state as JSON, and
// directory handling through POSIX calls (std::filesystem is unusable next to libtorch.so,
// which exports its own copies of those symbols).
#include "pixelfly/train/checkpoint.h"

#include "pixelfly/io/atomic_file.h"
#include "pixelfly/io/file_system.h"
#include "pixelfly/io/safetensors.h"

#include <torch/serialize/archive.h>
#include <torch/utils.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <vector>

namespace pixelfly::train {
namespace {

constexpr const char* kWeightsFile = "model.safetensors";
constexpr const char* kOptimizerFile = "optimizer.pt";
constexpr const char* kTrainerFile = "trainer.json";
constexpr const char* kLatestFile = "latest";
constexpr const char* kStepPrefix = "step_";
constexpr const char* kIncompletePrefix = ".incomplete.";

std::string join(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

[[noreturn]] void throw_system_error(const std::string& what, const std::string& path, int error) {
  throw std::runtime_error("cannot " + what + " '" + path + "': " + std::strerror(error));
}

// rm -r without following symbolic links; a missing path is fine.
void remove_tree(const std::string& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) return;
    throw_system_error("inspect", path, errno);
  }
  if (S_ISDIR(info.st_mode)) {
    for (const std::string& name : io::list_directory(path)) remove_tree(join(path, name));
    if (::rmdir(path.c_str()) != 0) throw_system_error("remove directory", path, errno);
  } else if (::unlink(path.c_str()) != 0) {
    throw_system_error("remove", path, errno);
  }
}

// Flushes a directory's entries (new names, renames) to disk.
void sync_directory(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_system_error("open directory", path, errno);
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) throw_system_error("flush directory", path, error);
}

// Moves the complete directory `from` to `to`. An existing `to` is swapped out atomically
// (renameat2 RENAME_EXCHANGE) and then deleted; where the file system cannot swap, it is moved
// aside first, which leaves a short window without `to`.
void move_directory_into_place(const std::string& from, const std::string& to) {
  if (!io::is_directory(to)) {
    if (std::rename(from.c_str(), to.c_str()) != 0) throw_system_error("rename '" + from + "' to", to, errno);
    return;
  }
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_EXCHANGE) != 0) {
    if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) {
      throw_system_error("swap '" + from + "' with", to, errno);
    }
    const std::string aside = from + ".old";
    remove_tree(aside);
    if (std::rename(to.c_str(), aside.c_str()) != 0) throw_system_error("move aside", to, errno);
    if (std::rename(from.c_str(), to.c_str()) != 0) throw_system_error("rename '" + from + "' to", to, errno);
    remove_tree(aside);
    return;
  }
  remove_tree(from);  // now the old checkpoint
}

std::string step_directory_name(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof(name), "%s%08lld", kStepPrefix, static_cast<long long>(step));
  return name;
}

// The step of a "step_<digits>" name, or -1 for any other name.
int64_t step_of(const std::string& name) {
  const size_t prefix = std::strlen(kStepPrefix);
  if (name.compare(0, prefix, kStepPrefix) != 0 || name.size() == prefix || name.size() > prefix + 18) return -1;
  const std::string digits = name.substr(prefix);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) return -1;
  return std::stoll(digits);
}

// Deletes checkpoints with steps below `step` beyond the newest keep - 1 of them.
void prune_checkpoints(const std::string& checkpoints, int64_t step, int keep) {
  if (keep == 0) return;
  std::vector<std::pair<int64_t, std::string>> older;
  for (const std::string& name : io::list_directory(checkpoints)) {
    const int64_t s = step_of(name);
    if (s >= 0 && s < step && io::is_directory(join(checkpoints, name))) older.emplace_back(s, name);
  }
  std::sort(older.rbegin(), older.rend());
  for (size_t i = static_cast<size_t>(keep - 1); i < older.size(); ++i) {
    remove_tree(join(checkpoints, older[i].second));
  }
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in.good(), "cannot open '", path, "': ", std::strerror(errno));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Every named parameter, then every named buffer, under the module's dotted names.
std::vector<std::pair<std::string, at::Tensor>> model_tensors(const torch::nn::Module& model) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) tensors.emplace_back(item.key(), item.value());
  for (const auto& item : model.named_buffers(/*recurse=*/true)) tensors.emplace_back(item.key(), item.value());
  return tensors;
}

std::string describe(const at::Tensor& t) {
  std::ostringstream out;
  out << t.scalar_type() << " " << t.sizes();
  return out.str();
}

// "a, b, c" with at most 20 entries, then "... and N more".
std::string name_list(const std::vector<std::string>& names) {
  constexpr size_t kShown = 20;
  std::string text;
  for (size_t i = 0; i < std::min(names.size(), kShown); ++i) text += (i == 0 ? "" : ", ") + names[i];
  if (names.size() > kShown) text += ", ... and " + std::to_string(names.size() - kShown) + " more";
  return text;
}

// The model's tensors paired with the loaded ones; throws one error listing every mismatch.
std::vector<std::pair<at::Tensor, const at::Tensor*>> match_weights(const io::NamedTensors& weights,
                                                                     const torch::nn::Module& model,
                                                                     const std::string& source) {
  std::map<std::string, const at::Tensor*> loaded;
  for (const auto& [name, tensor] : weights.tensors) loaded.emplace(name, &tensor);
  std::vector<std::pair<at::Tensor, const at::Tensor*>> pairs;
  std::vector<std::string> missing, mismatched, unexpected;
  std::set<std::string> in_model;
  for (const auto& [name, target] : model_tensors(model)) {
    in_model.insert(name);
    const auto found = loaded.find(name);
    if (found == loaded.end()) {
      missing.push_back(name);
    } else if (found->second->scalar_type() != target.scalar_type() || found->second->sizes() != target.sizes()) {
      mismatched.push_back(name + " (file " + describe(*found->second) + ", model " + describe(target) + ")");
    } else {
      pairs.emplace_back(target, found->second);
    }
  }
  for (const auto& [name, tensor] : weights.tensors) {
    if (in_model.count(name) == 0) unexpected.push_back(name);
  }
  TORCH_CHECK(missing.empty() && unexpected.empty() && mismatched.empty(), "the weights in '", source,
              "' do not match the model:",
              missing.empty() ? "" : "\n  in the model but not in the file (" + std::to_string(missing.size()) +
                                         "): " + name_list(missing),
              unexpected.empty() ? "" : "\n  in the file but not in the model (" +
                                            std::to_string(unexpected.size()) + "): " + name_list(unexpected),
              mismatched.empty() ? "" : "\n  shape or dtype differs (" + std::to_string(mismatched.size()) +
                                            "): " + name_list(mismatched));
  return pairs;
}

void copy_weights(const std::vector<std::pair<at::Tensor, const at::Tensor*>>& pairs) {
  torch::NoGradGuard no_grad;
  for (const auto& [target, loaded] : pairs) target.copy_(*loaded);
}

at::Device optimizer_device(const torch::optim::Optimizer& optimizer) {
  for (const auto& group : optimizer.param_groups()) {
    for (const auto& param : group.params()) {
      if (param.defined()) return param.device();
    }
  }
  return at::kCPU;
}

void load_optimizer_state(const std::string& path, torch::optim::Optimizer& optimizer) {
  TORCH_CHECK(io::is_file(path), "cannot load the optimizer state: '", path,
              "' does not exist (the checkpoint was saved without an optimizer; load it without one)");
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path, optimizer_device(optimizer));
    optimizer.state().clear();
    optimizer.load(archive);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, "cannot load the optimizer state from '", path,
                "' (is it the same optimizer type with the same parameter groups?): ", e.what_without_backtrace());
  }
}

}  // namespace

std::string save_checkpoint(const std::string& run_dir, int64_t step, const torch::nn::Module& model,
                            const torch::optim::Optimizer* optimizer, const nlohmann::json& trainer_state,
                            int keep) {
  TORCH_CHECK(step >= 0, "save_checkpoint: step must be >= 0, got ", step);
  TORCH_CHECK(keep >= 0, "save_checkpoint: keep must be >= 0 (0 keeps every checkpoint), got ", keep);
  const std::string checkpoints = join(run_dir, "checkpoints");
  io::make_directories(checkpoints);
  for (const std::string& name : io::list_directory(checkpoints)) {  // left by a crashed save
    if (name.rfind(kIncompletePrefix, 0) == 0) remove_tree(join(checkpoints, name));
  }
  const std::string name = step_directory_name(step);
  const std::string directory = join(checkpoints, name);
  const std::string incomplete = join(checkpoints, kIncompletePrefix + name);
  if (::mkdir(incomplete.c_str(), 0777) != 0) throw_system_error("create directory", incomplete, errno);
  try {
    save_model_weights(join(incomplete, kWeightsFile), model);
    if (optimizer != nullptr) {
      io::replace_file_atomically(join(incomplete, kOptimizerFile), [optimizer](const std::string& temp) {
        torch::serialize::OutputArchive archive;
        optimizer->save(archive);
        archive.save_to(temp);
      });
    }
    std::string trainer_text;
    try {
      trainer_text = trainer_state.dump(2) + "\n";
    } catch (const nlohmann::json::exception& e) {
      TORCH_CHECK(false, "save_checkpoint: the trainer state cannot be written as JSON: ", e.what());
    }
    io::write_file_atomically(join(incomplete, kTrainerFile), trainer_text);
    sync_directory(incomplete);
    move_directory_into_place(incomplete, directory);
    sync_directory(checkpoints);
  } catch (...) {
    try {
      remove_tree(incomplete);
    } catch (const std::exception&) {  // keep the first error; a leftover is removed next time
    }
    throw;
  }
  io::write_file_atomically(join(checkpoints, kLatestFile), name + "\n");
  sync_directory(checkpoints);
  try {
    prune_checkpoints(checkpoints, step, keep);
  } catch (const std::exception& e) {  // the new checkpoint is saved; old ones merely linger
    TORCH_WARN("save_checkpoint: saved '", directory, "' but could not remove older checkpoints: ", e.what());
  }
  return directory;
}

std::string latest_checkpoint(const std::string& path) {
  if (io::is_file(join(path, kWeightsFile))) return path;
  for (const std::string& checkpoints : {path, join(path, "checkpoints")}) {
    const std::string latest = join(checkpoints, kLatestFile);
    if (!io::is_file(latest)) continue;
    std::string name = read_text_file(latest);
    while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
    TORCH_CHECK(!name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos, "'", latest,
                "' should name a checkpoint directory beside it, but holds '", name, "'");
    const std::string directory = join(checkpoints, name);
    TORCH_CHECK(io::is_file(join(directory, kWeightsFile)), "'", latest, "' names '", name, "', but '", directory,
                "' holds no ", kWeightsFile);
    return directory;
  }
  TORCH_CHECK(false, "no checkpoint found at '", path, "': expected a checkpoint directory (holding ", kWeightsFile,
              "), a checkpoints directory (holding '", kLatestFile, "') or a run directory (holding checkpoints/",
              kLatestFile, ")");
}

nlohmann::json load_checkpoint(const std::string& checkpoint, torch::nn::Module& model,
                               torch::optim::Optimizer* optimizer) {
  const std::string directory = latest_checkpoint(checkpoint);
  const std::string trainer_path = join(directory, kTrainerFile);
  nlohmann::json trainer_state;
  try {
    trainer_state = nlohmann::json::parse(read_text_file(trainer_path));
  } catch (const nlohmann::json::parse_error& e) {
    TORCH_CHECK(false, "'", trainer_path, "' is not valid JSON: ", e.what());
  }
  const std::string weights_path = join(directory, kWeightsFile);
  const io::NamedTensors weights = io::load_safetensors(weights_path);
  const auto pairs = match_weights(weights, model, weights_path);
  if (optimizer != nullptr) load_optimizer_state(join(directory, kOptimizerFile), *optimizer);
  copy_weights(pairs);
  return trainer_state;
}

void load_model_weights(const std::string& source, torch::nn::Module& model) {
  const std::string path = io::is_file(source) ? source : join(latest_checkpoint(source), kWeightsFile);
  const io::NamedTensors weights = io::load_safetensors(path);
  copy_weights(match_weights(weights, model, path));
}

void save_model_weights(const std::string& path, const torch::nn::Module& model,
                        const std::map<std::string, std::string>& metadata) {
  io::save_safetensors(path, io::NamedTensors{model_tensors(model), metadata});
}

}  // namespace pixelfly::train
