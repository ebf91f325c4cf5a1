// Parsing of compressor specs ("global:0.7", "nm:2:4", ...).
#include "pixelfly/compress/compressor_spec.h"

#include <stdexcept>
#include <vector>

#include "pixelfly/compress/block_magnitude.h"
#include "pixelfly/compress/magnitude.h"
#include "pixelfly/compress/n_m.h"

namespace pixelfly::compress {
namespace {

[[noreturn]] void bad_spec(const std::string& spec, const std::string& why) {
  throw std::invalid_argument("compressor '" + spec + "': " + why +
                              "; expected global:S, uniform:S, nm:N:M or block:S:B (e.g. global:0.7, nm:2:4, "
                              "block:0.8:32)");
}

double number(const std::string& spec, const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size()) bad_spec(spec, "'" + text + "' is not a number");
  return value;
}

int64_t integer(const std::string& spec, const std::string& text) {
  const double value = number(spec, text);
  if (value != static_cast<double>(static_cast<int64_t>(value))) bad_spec(spec, "'" + text + "' is not an integer");
  return static_cast<int64_t>(value);
}

}  // namespace

std::shared_ptr<Compressor> parse_compressor(const std::string& spec) {
  if (spec.empty()) bad_spec(spec, "empty");
  std::vector<std::string> parts;  // every field, empty ones included ("global:0.7:" has three)
  for (size_t begin = 0;;) {
    const size_t colon = spec.find(':', begin);
    parts.push_back(spec.substr(begin, colon - begin));
    if (colon == std::string::npos) break;
    begin = colon + 1;
  }
  const std::string& kind = parts[0];
  if ((kind == "global" || kind == "uniform") && parts.size() == 2) {
    const double sparsity = number(spec, parts[1]);
    if (kind == "global") return std::make_shared<GlobalMagnitude>(sparsity);
    return std::make_shared<UniformMagnitude>(sparsity);
  }
  if (kind == "nm" && parts.size() == 3) {
    return std::make_shared<NMCompressor>(integer(spec, parts[1]), integer(spec, parts[2]));
  }
  if (kind == "block" && parts.size() == 3) {
    return std::make_shared<BlockMagnitude>(number(spec, parts[1]), integer(spec, parts[2]));
  }
  bad_spec(spec, "unknown form");
}

}  // namespace pixelfly::compress
