// Helper for tests/python/safetensors_from_python_test.py, checking files both ways against the
// safetensors PyPI package:
//   safetensors_example write <path>   writes a known file (contents listed below)
//   safetensors_example dump <path>    prints a file as JSON: {"metadata": {...}, "tensors":
//                                      [{"name", "dtype" (safetensors name), "shape", "values"
//                                      (flattened, as doubles)}]} in file order
#include "pixelfly/io/safetensors.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <exception>
#include <iostream>
#include <map>
#include <string>
#include <vector>

namespace {

pixelfly::io::NamedTensors known_tensors() {
  pixelfly::io::NamedTensors data;
  data.tensors = {
      {"blocks.0.weight", torch::arange(6, torch::kFloat).reshape({2, 3}) / 4},
      {"f64_scalar", torch::tensor(-1.25, torch::kDouble)},
      {"f16", torch::tensor({0.5, -3.0, 65504.0}).to(torch::kHalf)},
      {"bf16", torch::tensor({1.5, -2.0}).to(torch::kBFloat16)},
      {"i64", torch::tensor({int64_t{-9}, int64_t{1} << 40})},
      {"i32", torch::tensor({-7, 8}, torch::kInt)},
      {"i16", torch::tensor({-300, 300}, torch::kShort)},
      {"i8", torch::tensor({-128, 127}, torch::kChar)},
      {"u8", torch::tensor({0, 255}, torch::kByte)},
      {"mask", torch::tensor({true, false, true})},
      {"empty", torch::empty({0, 4})},
  };
  data.metadata = {{"origin", "pixelfly"}, {"step", "42"}};
  return data;
}

const std::map<at::ScalarType, std::string>& dtype_names() {
  static const std::map<at::ScalarType, std::string> names = {
      {at::kDouble, "F64"}, {at::kFloat, "F32"}, {at::kHalf, "F16"}, {at::kBFloat16, "BF16"}, {at::kLong, "I64"},
      {at::kInt, "I32"},    {at::kShort, "I16"}, {at::kChar, "I8"},  {at::kByte, "U8"},      {at::kBool, "BOOL"}};
  return names;
}

nlohmann::json dump(const pixelfly::io::NamedTensors& data) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& [name, tensor] : data.tensors) {
    const at::Tensor flat = tensor.to(torch::kDouble).reshape({-1});
    const double* values = flat.data_ptr<double>();
    tensors.push_back({{"name", name},
                       {"dtype", dtype_names().at(tensor.scalar_type())},
                       {"shape", tensor.sizes().vec()},
                       {"values", std::vector<double>(values, values + flat.numel())}});
  }
  return {{"metadata", data.metadata}, {"tensors", tensors}};
}

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc == 3 ? argv[1] : "";
  if (command != "write" && command != "dump") {
    std::cerr << "usage: safetensors_example write|dump <path>\n";
    return 2;
  }
  try {
    if (command == "write") {
      pixelfly::io::save_safetensors(argv[2], known_tensors());
    } else {
      std::cout << dump(pixelfly::io::load_safetensors(argv[2])).dump() << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
