// Profile of one training step through LibTorch's Kineto profiler (see step_profile.h).
#include "pixelfly/train/step_profile.h"

#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>

namespace pixelfly::train {
namespace {

namespace kineto = torch::autograd::profiler;
using torch::profiler::impl::ActivityType;
using torch::profiler::impl::ProfilerConfig;
using torch::profiler::impl::ProfilerState;

bool is_launch(const std::string& name) {
  return name.rfind("cudaLaunchKernel", 0) == 0 || name.rfind("cuLaunchKernel", 0) == 0;
}

}  // namespace

StepProfile profile_step(const std::function<void()>& step, bool cuda, const std::string& trace_path, size_t top) {
  std::set<ActivityType> activities{ActivityType::CPU};
  if (cuda) activities.insert(ActivityType::CUDA);
  const ProfilerConfig config(ProfilerState::KINETO);
  kineto::prepareProfiler(config, activities);
  kineto::enableProfiler(config, activities);
  StepProfile profile;
  try {
    const auto start = std::chrono::steady_clock::now();
    step();
    if (cuda) torch::cuda::synchronize();
    profile.wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  } catch (...) {
    kineto::disableProfiler();
    throw;
  }
  const std::unique_ptr<kineto::ProfilerResult> result = kineto::disableProfiler();
  result->save(trace_path);

  std::map<std::string, ProfiledEvent> by_name;
  bool any_device_event = false;
  for (const kineto::KinetoEvent& e : result->events()) {
    const std::string name = e.name();
    const bool on_device = e.deviceType() == c10::DeviceType::CUDA;
    if (is_launch(name)) ++profile.launches;
    if (name.rfind("cudaGraphLaunch", 0) == 0) ++profile.graph_launches;
    if (on_device) {
      profile.device_busy_ms += static_cast<double>(e.durationNs()) / 1e6;
      any_device_event = true;
    }
  }
  for (const kineto::KinetoEvent& e : result->events()) {
    const bool on_device = e.deviceType() == c10::DeviceType::CUDA;
    if (on_device != any_device_event || is_launch(e.name())) continue;
    ProfiledEvent& entry = by_name[e.name()];
    entry.name = e.name();
    ++entry.count;
    entry.total_ms += static_cast<double>(e.durationNs()) / 1e6;
  }
  for (auto& [name, entry] : by_name) profile.top.push_back(entry);
  std::sort(profile.top.begin(), profile.top.end(),
            [](const ProfiledEvent& a, const ProfiledEvent& b) { return a.total_ms > b.total_ms; });
  if (profile.top.size() > top) profile.top.resize(top);
  return profile;
}

std::string format_step_profile(const StepProfile& p) {
  std::string text;
  char line[256];
  std::snprintf(line, sizeof line, "step %.2f ms, device busy %.2f ms, %lld kernel launches", p.wall_ms,
                p.device_busy_ms, static_cast<long long>(p.launches));
  text += line;
  if (p.graph_launches > 0) text += ", " + std::to_string(p.graph_launches) + " CUDA graph launches";
  text += "\n";
  for (const ProfiledEvent& e : p.top) {
    const std::string name = e.name.size() > 90 ? e.name.substr(0, 87) + "..." : e.name;
    std::snprintf(line, sizeof line, "  %9.3f ms %6lld x  %s\n", e.total_ms, static_cast<long long>(e.count),
                  name.c_str());
    text += line;
  }
  return text;
}

}  // namespace pixelfly::train
