// CIFAR-10 binary batches: generated records read back pixel for pixel in channel-major order,
// training batches concatenated in order, and every kind of bad file named in the error.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>

#include "pixelfly/data/cifar10.h"

namespace pixelfly::data {
namespace {

// Record r of file f: label (f + r) % 10, pixel p = (7 * r + p + 31 * f) % 256.
std::vector<uint8_t> records(int file, int count) {
  std::vector<uint8_t> out;
  for (int r = 0; r < count; ++r) {
    out.push_back(static_cast<uint8_t>((file + r) % 10));
    for (int p = 0; p < 3072; ++p) out.push_back(static_cast<uint8_t>((7 * r + p + 31 * file) % 256));
  }
  return out;
}

class Cifar10Files : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/pixelfly_cifar_" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    TearDown();
    ::mkdir(dir_.c_str(), 0755);
  }
  void TearDown() override {
    for (int i = 1; i <= 5; ++i) std::remove(at("data_batch_" + std::to_string(i) + ".bin").c_str());
    std::remove(at("test_batch.bin").c_str());
    ::rmdir(dir_.c_str());
  }
  std::string at(const std::string& name) const { return dir_ + "/" + name; }
  void write(const std::string& name, const std::vector<uint8_t>& bytes) {
    std::ofstream(at(name), std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  void write_train() {
    for (int i = 1; i <= 5; ++i) write("data_batch_" + std::to_string(i) + ".bin", records(i, i));
  }
  std::string error_of(bool train) {
    try {
      load_cifar10(dir_, train);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "no error";
  }
  std::string dir_;
};

TEST_F(Cifar10Files, ReadsTestRecordsChannelMajor) {
  write("test_batch.bin", records(0, 4));
  const ImageDataset test = load_cifar10(dir_, /*train=*/false);
  ASSERT_EQ(test.images.sizes(), at::IntArrayRef({4, 3, 32, 32}));
  EXPECT_EQ(test.images.scalar_type(), at::kByte);
  EXPECT_EQ(test.labels.scalar_type(), at::kLong);
  EXPECT_EQ(test.classes, 10);
  EXPECT_TRUE(at::equal(test.labels, at::tensor({0, 1, 2, 3}, at::kLong)));
  // Pixel (c, y, x) of record r is byte 1 + c * 1024 + y * 32 + x of the record.
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 3; ++c) {
      EXPECT_EQ(test.images[r][c][5][9].item<int>(), (7 * r + c * 1024 + 5 * 32 + 9) % 256);
    }
  }
}

TEST_F(Cifar10Files, ConcatenatesTheFiveTrainingBatchesInOrder) {
  write_train();
  const ImageDataset train = load_cifar10(dir_, /*train=*/true);
  ASSERT_EQ(train.images.size(0), 1 + 2 + 3 + 4 + 5);
  // Record 0 of file 3 is sample 1 + 2 = 3.
  EXPECT_EQ(train.labels[3].item<int64_t>(), 3);
  EXPECT_EQ(train.images[3][0][0][0].item<int>(), 31 * 3 % 256);
  EXPECT_EQ(train.labels[14].item<int64_t>(), (5 + 4) % 10);
  EXPECT_EQ(train.images[14][2][31][31].item<int>(), (7 * 4 + 3071 + 31 * 5) % 256);
}

TEST_F(Cifar10Files, RejectsMissingTruncatedAndBadFilesNamingThem) {
  EXPECT_NE(error_of(false).find("CIFAR-10 file '" + at("test_batch.bin") + "': cannot open: No such file"),
            std::string::npos)
      << error_of(false);
  write_train();
  std::remove(at("data_batch_4.bin").c_str());
  EXPECT_NE(error_of(true).find("'" + at("data_batch_4.bin") + "': cannot open"), std::string::npos)
      << error_of(true);

  std::vector<uint8_t> truncated = records(0, 2);
  truncated.resize(truncated.size() - 100);
  write("test_batch.bin", truncated);
  EXPECT_NE(error_of(false).find("'" + at("test_batch.bin") + "': size 6046 bytes is not a positive multiple of the "
                                 "3073-byte record"),
            std::string::npos)
      << error_of(false);
  write("test_batch.bin", {});
  EXPECT_NE(error_of(false).find("size 0 bytes is not a positive multiple"), std::string::npos) << error_of(false);

  std::vector<uint8_t> bad_label = records(0, 3);
  bad_label[2 * kCifar10RecordBytes] = 10;
  write("test_batch.bin", bad_label);
  EXPECT_NE(error_of(false).find("'" + at("test_batch.bin") + "': record 2 has label 10, expected 0 to 9"),
            std::string::npos)
      << error_of(false);
}

}  // namespace
}  // namespace pixelfly::data
