// The pixelfly command line, run as a user would: output formats of `mask`, the `plan` table,
// and one clear error line with a non-zero exit for bad input.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

namespace {

struct Result {
  int exit_code;
  std::string output;  // stdout and stderr together
};

Result run(const std::string& args) {
  const std::string command = std::string(PIXELFLY_CLI_PATH) + " " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

TEST(Cli, MaskTextDrawsTheSpecExample) {
  const Result r = run("mask --out 8 --in 8 --butterfly-size 8 --factors 2 --block 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "XXX.....\nXX.X....\nX.XX....\n.XXX....\n....XXX.\n....XX.X\n....X.XX\n.....XXX\n");
}

TEST(Cli, MaskJsonIsBlockCsr) {
  const Result r = run("mask --out 256 --in 96 -n 8 -k 2 -b 16 --format json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j.size(), 6u);
  EXPECT_EQ(j["block_rows"], 16);
  EXPECT_EQ(j["block_cols"], 6);
  EXPECT_EQ(j["block"], 16);
  EXPECT_DOUBLE_EQ(j["density"].get<double>(), 0.5);
  const auto row_ptr = j["row_ptr"].get<std::vector<int64_t>>();
  const auto col_idx = j["col_idx"].get<std::vector<int64_t>>();
  ASSERT_EQ(row_ptr.size(), 17u);
  EXPECT_EQ(row_ptr.back(), 48);
  EXPECT_EQ(std::vector<int64_t>(col_idx.begin(), col_idx.begin() + 3), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(std::vector<int64_t>(col_idx.end() - 3, col_idx.end()), (std::vector<int64_t>{3, 4, 5}));
}

#ifdef PIXELFLY_HAVE_PNG
TEST(Cli, MaskPngWritesAPictureOfTheLayout) {
  const std::string path = ::testing::TempDir() + "/pixelfly_mask_test.png";
  std::remove(path.c_str());
  const Result r = run("mask --out 512 --in 256 -n 16 -k 2 -b 32 --format png --output " + path);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream file(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 33u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  // IHDR: 16 x 8 blocks at 32 pixels per block.
  auto be32 = [&](size_t at) {
    return (uint32_t(uint8_t(bytes[at])) << 24) | (uint32_t(uint8_t(bytes[at + 1])) << 16) |
           (uint32_t(uint8_t(bytes[at + 2])) << 8) | uint32_t(uint8_t(bytes[at + 3]));
  };
  EXPECT_EQ(be32(16), 8u * 32u);
  EXPECT_EQ(be32(20), 16u * 32u);
}
#endif

TEST(Cli, MaskRejectsBadParametersWithOneClearLine) {
  const Result r = run("mask --out 64 --in 64 -n 12 -k 2 -b 4");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.output, "pixelfly: error: butterfly_size must be a power of two >= 2, got 12\n");
  const Result png = run("mask --out 64 --in 64 -n 8 -k 2 -b 4 --format png");
  EXPECT_EQ(png.exit_code, 1);
  EXPECT_EQ(png.output, "pixelfly: error: --format png needs --output FILE.png\n");
  EXPECT_NE(run("mask --out 64 --in 64 --format svg").exit_code, 0);
}

TEST(Cli, PlanPrintsATableForShapesOnTheCommandLine) {
  const Result r = run("plan --layer fc1:mlp:3072x768 --layer fc2:mlp:768x3072 --layer head:head:1000x768 "
                       "--density mlp=0.25");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("fc1"), std::string::npos);
  EXPECT_NE(r.output.find("fc2"), std::string::npos);
  EXPECT_NE(r.output.find("dense"), std::string::npos);
  EXPECT_NE(r.output.find("total"), std::string::npos);
  const Result bad = run("plan --layer fc1:mlp:3072 --density mlp=0.25");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("must look like NAME:TYPE:OUTxIN"), std::string::npos);
  const Result bad_density = run("plan --layer fc1:mlp:64x64 --density mlp=lots");
  EXPECT_EQ(bad_density.exit_code, 1);
  EXPECT_NE(bad_density.output.find("'lots' is not a number"), std::string::npos);
}

TEST(Cli, PlanTakesAModelPreset) {
  const Result r = run("plan --model mixer-b16 --density mlp=0.25");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("blocks.0.channel_fc1"), std::string::npos);
  EXPECT_NE(r.output.find("blocks.11.channel_fc2"), std::string::npos);
  EXPECT_NE(r.output.find("3072x768"), std::string::npos);
  const Result unknown = run("plan --model mixer-xl --density mlp=0.25");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.output.find("unknown model preset 'mixer-xl'; known: mixer-s16, mixer-b16, mixer-small28"),
            std::string::npos);
  const Result nothing = run("plan --density mlp=0.25");
  EXPECT_EQ(nothing.exit_code, 1);
  EXPECT_NE(nothing.output.find("give --model NAME or at least one --layer"), std::string::npos);
}

}  // namespace
