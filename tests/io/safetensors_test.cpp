// safetensors reader/writer: round trips of every dtype and shape kind, the exact bytes of a
// small file (pins the format), and one clear error per kind of corrupt file.
#include "pixelfly/io/safetensors.h"

#include "common/error_message.h"
#include "io/temp_dir.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace pixelfly::io {
namespace {

using pixelfly::testing::error_of;
using pixelfly::testing::exists;
using pixelfly::testing::read_bytes;
using pixelfly::testing::TempDir;
using pixelfly::testing::write_bytes;

// A file from a header text and data bytes, with the 8-byte little-endian length in front.
std::string file_bytes(const std::string& header, const std::string& data, uint64_t header_length) {
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((header_length >> (8 * i)) & 0xff));
  return bytes + header + data;
}
std::string file_bytes(const std::string& header, const std::string& data) {
  return file_bytes(header, data, header.size());
}

// Tensors are equal in dtype, shape and every byte (so -0.0 and NaN payloads count too).
void expect_identical(const at::Tensor& actual, const at::Tensor& expected, const std::string& name) {
  SCOPED_TRACE(name);
  ASSERT_EQ(actual.scalar_type(), expected.scalar_type());
  ASSERT_EQ(actual.sizes(), expected.sizes());
  EXPECT_TRUE(actual.device().is_cpu());
  const at::Tensor e = expected.contiguous();
  ASSERT_EQ(actual.nbytes(), e.nbytes());
  if (e.nbytes() > 0) {
    EXPECT_EQ(0, std::memcmp(actual.data_ptr(), e.data_ptr(), e.nbytes()));
  }
}

TEST(Safetensors, RoundTripsEveryDtypeAndShapeKind) {
  torch::manual_seed(7);
  const at::Tensor f64 = torch::randn({3, 4}, torch::kDouble);
  NamedTensors data;
  data.tensors = {
      {"f64", f64},
      {"f32.transposed", torch::randn({5, 3}).t()},  // not contiguous
      {"f16", torch::randn({2, 3, 4}).to(torch::kHalf)},
      {"bf16", torch::tensor({1.5, -0.0, 3.0e38, -1.0e-38}).to(torch::kBFloat16)},
      {"i64", torch::tensor({INT64_MIN, int64_t{-1}, INT64_MAX})},
      {"i32", torch::arange(-6, 6, torch::kInt).reshape({3, 4})},
      {"i16", torch::tensor({-32768, 0, 32767}, torch::kShort)},
      {"i8", torch::tensor({-128, 5, 127}, torch::kChar)},
      {"u8", torch::tensor({0, 200, 255}, torch::kByte)},
      {"bool", torch::tensor({true, false, true})},
      {"scalar", torch::tensor(2.5)},                      // 0-d
      {"empty", torch::empty({0, 3}, torch::kInt)},        // no elements
      {"blocks.0.channel_fc1.sparse.weight", f64.narrow(1, 1, 2)},
  };
  data.metadata = {{"format", "pt"}, {"sparsity", "0.9"}};
  TempDir dir;
  save_safetensors(dir / "all.safetensors", data);

  const NamedTensors loaded = load_safetensors(dir / "all.safetensors");
  EXPECT_EQ(loaded.metadata, data.metadata);
  ASSERT_EQ(loaded.tensors.size(), data.tensors.size());
  for (size_t i = 0; i < data.tensors.size(); ++i) {
    EXPECT_EQ(loaded.tensors[i].first, data.tensors[i].first);
    expect_identical(loaded.tensors[i].second, data.tensors[i].second, data.tensors[i].first);
  }
}

TEST(Safetensors, EmptyFileHasNoTensorsAndNoMetadata) {
  TempDir dir;
  save_safetensors(dir / "none.safetensors", NamedTensors{});
  EXPECT_EQ(read_bytes(dir / "none.safetensors"), file_bytes("{}      ", ""));
  const NamedTensors loaded = load_safetensors(dir / "none.safetensors");
  EXPECT_TRUE(loaded.tensors.empty());
  EXPECT_TRUE(loaded.metadata.empty());
}

TEST(Safetensors, WritesExactlyTheDocumentedBytes) {
  NamedTensors data;
  data.tensors = {{"a", torch::tensor({1.0f, -2.0f})}, {"b", torch::tensor(7, torch::kByte)}};
  data.metadata = {{"k", "v"}};
  TempDir dir;
  save_safetensors(dir / "tiny.safetensors", data);

  // 130 bytes of JSON padded with 6 spaces to 136 = 0x88, then 1.0f, -2.0f, 7.
  const std::string expected = std::string("\x88\0\0\0\0\0\0\0", 8) +
                               R"({"__metadata__":{"k":"v"},)"
                               R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                               R"("b":{"dtype":"U8","shape":[],"data_offsets":[8,9]}})"
                               "      " +
                               std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0\x07", 9);
  EXPECT_EQ(read_bytes(dir / "tiny.safetensors"), expected);
}

TEST(Safetensors, ReadsHeadersWrittenByOtherTools) {
  // Unpadded header, keys in another order, tensors listed out of offset order: the result
  // comes back in offset order.
  TempDir dir;
  const std::string header =
      R"({"second":{"shape":[1],"data_offsets":[4,6],"dtype":"I16"},)"
      R"("first":{"data_offsets":[0,4],"dtype":"I32","shape":[]}})";
  write_bytes(dir / "other.safetensors", file_bytes(header, std::string("\x05\x00\x00\x00\xff\xff", 6)));
  const NamedTensors loaded = load_safetensors(dir / "other.safetensors");
  ASSERT_EQ(loaded.tensors.size(), 2u);
  EXPECT_EQ(loaded.tensors[0].first, "first");
  EXPECT_EQ(loaded.tensors[0].second.item<int32_t>(), 5);
  EXPECT_EQ(loaded.tensors[1].first, "second");
  EXPECT_EQ(loaded.tensors[1].second.scalar_type(), torch::kShort);
  EXPECT_EQ(loaded.tensors[1].second[0].item<int16_t>(), -1);
}

TEST(Safetensors, WriterRejectsBadNamesAndTensors) {
  TempDir dir;
  const std::string path = dir / "bad.safetensors";
  const at::Tensor t = torch::zeros({2});
  const auto save = [&](NamedTensors data) { return error_of([&] { save_safetensors(path, data); }); };
  EXPECT_EQ(save({{{"", t}}, {}}), "safetensors file '" + path + "': a tensor name is empty");
  EXPECT_EQ(save({{{"x", t}, {"x", t}}, {}}),
            "safetensors file '" + path + "': tensor name 'x' appears more than once");
  EXPECT_EQ(save({{{"__metadata__", t}}, {}}),
            "safetensors file '" + path + "': '__metadata__' is reserved and cannot name a tensor");
  EXPECT_EQ(save({{{"u", at::Tensor()}}, {}}), "safetensors file '" + path + "': tensor 'u' is undefined");
  EXPECT_EQ(save({{{"c", torch::zeros({2}, torch::kComplexFloat)}}, {}}),
            "safetensors file '" + path +
                "': tensor 'c' has dtype ComplexFloat, which is not supported (supported: F64 F32 F16 BF16 I64 I32 "
                "I16 I8 U8 BOOL)");
  EXPECT_NE(save({{{std::string("\xff", 1), t}}, {}}).find("tensor names and metadata must be valid UTF-8"),
            std::string::npos);
  EXPECT_FALSE(exists(path));
}

TEST(Safetensors, FailedSaveLeavesThePreviousFile) {
  TempDir dir;
  const std::string path = dir / "w.safetensors";
  save_safetensors(path, {{{"w", torch::ones({3})}}, {}});
  const std::string before = read_bytes(path);
  EXPECT_NE(error_of([&] { save_safetensors(path, {{{"w", torch::zeros({3})}, {"w", torch::zeros({1})}}, {}}); }),
            "no error");
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_THROW(save_safetensors(dir / "missing_dir/w.safetensors", {{{"w", torch::ones({3})}}, {}}), std::exception);
}

// Each corrupt file gives an error naming the file and the problem.
struct Corruption {
  const char* label;
  std::string bytes;
  std::string problem;
};

TEST(Safetensors, EveryCorruptionIsReportedClearly) {
  const std::string f32x2 = std::string(8, '\0');
  const std::vector<Corruption> cases = {
      {"short", "abc", "the file is 3 bytes, shorter than the 8-byte header length that starts it"},
      {"beyond", file_bytes("{}", "", 100), "header length 100 goes beyond the end of the file (10 bytes)"},
      {"absurd", file_bytes("{}", "", uint64_t{1} << 40),
       "header length 1099511627776 exceeds the limit of 100000000 bytes"},
      {"not_json", file_bytes("{\"a\":", ""), "header is not valid JSON"},
      {"not_object", file_bytes("[1,2]", ""), "header is not a JSON object but array"},
      {"repeated", file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                              R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                              f32x2),
       "header names 'a' more than once"},
      {"entry_not_object", file_bytes(R"({"a":[1]})", ""),
       "tensor 'a': entry must be an object with dtype, shape and data_offsets, got [1]"},
      {"extra_key", file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offset":[0,8]}})", f32x2),
       "tensor 'a': unexpected key \"data_offset\" (expected dtype, shape, data_offsets)"},
      {"unknown_dtype", file_bytes(R"({"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", f32x2),
       "tensor 'a': unknown dtype 'F8_E4M3' (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)"},
      {"negative_shape", file_bytes(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", f32x2),
       "tensor 'a': \"shape\" must be a list of non-negative integers, got [-2]"},
      {"fractional_shape", file_bytes(R"({"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", f32x2),
       "tensor 'a': \"shape\" must be a list of non-negative integers, got [2.0]"},
      {"shape_not_list", file_bytes(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", f32x2),
       "tensor 'a': \"shape\" must be a list of non-negative integers, got 2"},
      {"bad_offsets", file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", f32x2),
       "tensor 'a': \"data_offsets\" must be [begin, end] with integers 0 <= begin <= end, got [8,0]"},
      {"out_of_buffer", file_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", f32x2),
       "tensor 'a': data_offsets [0, 16] go beyond the data buffer of 8 bytes"},
      {"size_mismatch", file_bytes(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", f32x2),
       "tensor 'a': data_offsets [0, 8] hold 8 bytes but shape [3] of F32 needs 12 bytes"},
      {"size_overflow",
       file_bytes(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", f32x2),
       "tensor 'a': data_offsets [0, 8] hold 8 bytes but shape [4294967296,4294967296] of F32 needs more than 2^64 "
       "bytes"},
      {"overlap", file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                             std::string(12, '\0')),
       "tensors 'a' [0, 8] and 'b' [4, 12] overlap"},
      {"gap", file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                         std::string(12, '\0')),
       "gap of 4 bytes in the data buffer before tensor 'b' at offset 8"},
      {"trailing", file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(11, '\0')),
       "3 trailing bytes after the last tensor (the data buffer holds 11 bytes, the tensors end at 8)"},
      {"metadata_not_strings", file_bytes(R"({"__metadata__":{"k":1}})", ""),
       "\"__metadata__\" value for 'k' must be a string, got 1"},
      {"bool_byte", file_bytes(R"({"a":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", "\x01\x02"),
       "tensor 'a' (BOOL) holds the byte 2; only 0 and 1 are valid"},
  };
  TempDir dir;
  for (const Corruption& c : cases) {
    SCOPED_TRACE(c.label);
    const std::string path = dir / (std::string(c.label) + ".safetensors");
    write_bytes(path, c.bytes);
    const std::string message = error_of([&] { load_safetensors(path); });
    EXPECT_EQ(message.rfind("safetensors file '" + path + "': ", 0), 0u) << message;
    EXPECT_NE(message.find(c.problem), std::string::npos) << message;
  }
}

TEST(Safetensors, MissingFileIsReported) {
  TempDir dir;
  EXPECT_EQ(error_of([&] { load_safetensors(dir / "nope.safetensors"); }),
            "safetensors file '" + (dir / "nope.safetensors") + "': cannot open it: No such file or directory");
}

TEST(Safetensors, SavesCudaTensorsThroughTheCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  TempDir dir;
  const at::Tensor t = torch::randn({4, 5}, torch::kCUDA);
  save_safetensors(dir / "cuda.safetensors", {{{"t", t}}, {}});
  expect_identical(load_safetensors(dir / "cuda.safetensors").tensors.at(0).second, t.cpu(), "t");
}

}  // namespace
}  // namespace pixelfly::io
