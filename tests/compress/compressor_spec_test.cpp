// Compressor specs as written in configs and on the command line: every form builds the right
// compressor, and malformed specs are refused with a message that lists the accepted forms.
#include "pixelfly/compress/compressor_spec.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "common/error_message.h"

namespace pixelfly::compress {
namespace {

using pixelfly::testing::error_of;

const std::string kForms =
    "; expected global:S, uniform:S, nm:N:M or block:S:B (e.g. global:0.7, nm:2:4, block:0.8:32)";

std::string invalid_spec_message(const std::string& spec) {
  try {
    parse_compressor(spec);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no std::invalid_argument";
}

TEST(CompressorSpec, EveryFormBuildsItsCompressor) {
  EXPECT_EQ(parse_compressor("global:0.7")->describe(), "global magnitude, sparsity 0.7");
  EXPECT_EQ(parse_compressor("global:0")->describe(), "global magnitude, sparsity 0");
  EXPECT_EQ(parse_compressor("uniform:0.5")->describe(), "uniform magnitude, sparsity 0.5");
  EXPECT_EQ(parse_compressor("nm:2:4")->describe(), "2:4 semi-structured");
  EXPECT_EQ(parse_compressor("nm:1:8")->describe(), "1:8 semi-structured");
  EXPECT_EQ(parse_compressor("block:0.8:32")->describe(), "block magnitude, block 32, sparsity 0.8");
  EXPECT_EQ(parse_compressor("block:.25:4")->describe(), "block magnitude, block 4, sparsity 0.25");
}

TEST(CompressorSpec, MalformedSpecsListTheAcceptedForms) {
  EXPECT_EQ(invalid_spec_message(""), "compressor '': empty" + kForms);
  EXPECT_EQ(invalid_spec_message("global"), "compressor 'global': unknown form" + kForms);
  EXPECT_EQ(invalid_spec_message("magnitude:0.5"), "compressor 'magnitude:0.5': unknown form" + kForms);
  EXPECT_EQ(invalid_spec_message("global:0.7:"), "compressor 'global:0.7:': unknown form" + kForms);
  EXPECT_EQ(invalid_spec_message("nm:2:4:1"), "compressor 'nm:2:4:1': unknown form" + kForms);
  EXPECT_EQ(invalid_spec_message("nm:2"), "compressor 'nm:2': unknown form" + kForms);
  EXPECT_EQ(invalid_spec_message("global:lots"), "compressor 'global:lots': 'lots' is not a number" + kForms);
  EXPECT_EQ(invalid_spec_message("global:0.5x"), "compressor 'global:0.5x': '0.5x' is not a number" + kForms);
  EXPECT_EQ(invalid_spec_message("uniform:"), "compressor 'uniform:': '' is not a number" + kForms);
  EXPECT_EQ(invalid_spec_message("nm:2.5:4"), "compressor 'nm:2.5:4': '2.5' is not an integer" + kForms);
  EXPECT_EQ(invalid_spec_message("block:0.8:b"), "compressor 'block:0.8:b': 'b' is not a number" + kForms);
}

TEST(CompressorSpec, TheCompressorsOwnChecksApply) {
  EXPECT_EQ(error_of([] { parse_compressor("global:1"); }), "sparsity must be in [0, 1), got 1");
  EXPECT_EQ(error_of([] { parse_compressor("nm:4:2"); }), "N:M pruning needs 1 <= N <= M, got 4:2");
  EXPECT_EQ(error_of([] { parse_compressor("block:0.5:0"); }), "block magnitude pruning: block must be >= 1, got 0");
}

}  // namespace
}  // namespace pixelfly::compress
