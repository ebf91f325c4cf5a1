// IDX and MNIST-layout reading: round trips through generated gzip and plain files, every kind
// of corrupt file, and the real Fashion-MNIST from the Debian package.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <zlib.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "pixelfly/data/idx_file.h"
#include "pixelfly/data/mnist_format.h"

namespace pixelfly::data {
namespace {

// Writes raw bytes, gzip-compressed when the name ends in .gz. (POSIX file calls rather than
// std::filesystem, whose symbols LibTorch's libraries export.)
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0) {
    gzFile f = gzopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
}

std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& shape, const std::vector<uint8_t>& data, uint8_t type = 0x08) {
  std::vector<uint8_t> out = {0, 0, type, static_cast<uint8_t>(shape.size())};
  for (uint32_t s : shape) {
    for (int shift : {24, 16, 8, 0}) out.push_back(static_cast<uint8_t>(s >> shift));
  }
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

class IdxFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/pixelfly_idx_" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    TearDown();
    ::mkdir(dir_.c_str(), 0755);
  }
  void TearDown() override {
    for (const char* name : {"images.gz", "labels", "bad.gz", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte.gz"}) {
      std::remove((dir_ + "/" + name).c_str());
    }
    ::rmdir(dir_.c_str());
  }
  std::string at(const std::string& name) const { return dir_ + "/" + name; }
  std::string error_of(const std::function<void()>& f) {
    try {
      f();
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "no error";
  }
  std::string dir_;
};

TEST_F(IdxFiles, ReadsGzipAndPlainFilesOfAnyShape) {
  std::vector<uint8_t> pixels(2 * 3 * 4);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7);
  write_bytes(at("images.gz"), idx_bytes({2, 3, 4}, pixels));
  write_bytes(at("labels"), idx_bytes({5}, {1, 2, 3, 4, 9}));
  const at::Tensor images = read_idx_file(at("images.gz"));
  EXPECT_EQ(images.sizes(), at::IntArrayRef({2, 3, 4}));
  EXPECT_EQ(images.scalar_type(), at::kByte);
  EXPECT_EQ(images[1][2][3].item<int>(), (23 * 7) % 256);
  EXPECT_TRUE(at::equal(read_idx_file(at("labels")), at::tensor({1, 2, 3, 4, 9}).to(at::kByte)));
}

TEST_F(IdxFiles, RejectsCorruptFilesNamingFileAndProblem) {
  const std::string path = at("bad.gz");
  auto check = [&](const std::vector<uint8_t>& bytes, const std::string& expected) {
    write_bytes(path, bytes);
    const std::string message = error_of([&] { read_idx_file(path); });
    EXPECT_NE(message.find("IDX file '" + path + "'"), std::string::npos) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  };
  check({0x1f, 0x00, 0x08, 0x01}, "bad magic number");
  check(idx_bytes({4}, {1, 2, 3, 4}, 0x0D), "element type 0x0d is not supported");
  check(idx_bytes({2, 3, 4}, std::vector<uint8_t>(20, 1)), "the header promises 24 bytes of data, the file has 20");
  check(idx_bytes({3}, {1, 2, 3, 4}), "trailing bytes");
  check({0, 0, 8}, "shorter than the 4-byte magic number");
  check({0, 0, 8, 2, 0, 0}, "truncated inside the header");
  EXPECT_NE(error_of([&] { read_idx_file(at("missing.gz")); }).find("cannot open"), std::string::npos);
}

TEST_F(IdxFiles, MnistLayoutChecksCountsLabelsAndShapes) {
  const std::vector<uint8_t> pixels(3 * 2 * 2, 5);
  write_bytes(at("t10k-images-idx3-ubyte"), idx_bytes({3, 2, 2}, pixels));
  write_bytes(at("t10k-labels-idx1-ubyte.gz"), idx_bytes({3}, {0, 9, 4}));
  const ImageDataset test = load_mnist_format(dir_, /*train=*/false);
  EXPECT_EQ(test.images.sizes(), at::IntArrayRef({3, 1, 2, 2}));
  EXPECT_EQ(test.labels.scalar_type(), at::kLong);
  EXPECT_EQ(test.labels[1].item<int64_t>(), 9);

  EXPECT_NE(error_of([&] { load_mnist_format(dir_, /*train=*/true); })
                .find("has neither train-images-idx3-ubyte.gz nor train-images-idx3-ubyte"),
            std::string::npos);
  write_bytes(at("t10k-labels-idx1-ubyte.gz"), idx_bytes({2}, {0, 1}));
  EXPECT_NE(error_of([&] { load_mnist_format(dir_, false); }).find("has 2 labels but"), std::string::npos);
  write_bytes(at("t10k-labels-idx1-ubyte.gz"), idx_bytes({3}, {0, 10, 1}));
  EXPECT_NE(error_of([&] { load_mnist_format(dir_, false); }).find("label 10 is outside [0, 10)"),
            std::string::npos);
  write_bytes(at("t10k-labels-idx1-ubyte.gz"), idx_bytes({3}, {0, 1, 2}));
  write_bytes(at("t10k-images-idx3-ubyte"), idx_bytes({3, 4}, std::vector<uint8_t>(12, 1)));
  EXPECT_NE(error_of([&] { load_mnist_format(dir_, false); }).find("images must have 3 dimensions"),
            std::string::npos);
}

TEST(FashionMnist, ReadsTheDebianPackage) {
  const std::string dir = default_fashion_mnist_dir();
  if (::access((dir + "/train-images-idx3-ubyte.gz").c_str(), F_OK) != 0) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const ImageDataset train = load_mnist_format(dir, true), test = load_mnist_format(dir, false);
  EXPECT_EQ(train.images.sizes(), at::IntArrayRef({60000, 1, 28, 28}));
  EXPECT_EQ(test.images.sizes(), at::IntArrayRef({10000, 1, 28, 28}));
  // Ten balanced classes: 6000 and 1000 images each.
  EXPECT_TRUE(at::equal(at::bincount(train.labels), at::full({10}, 6000, at::kLong)));
  EXPECT_TRUE(at::equal(at::bincount(test.labels), at::full({10}, 1000, at::kLong)));
  // The data set's well-known pixel statistics, the image loader's defaults.
  const at::Tensor pixels = train.images.to(at::kFloat).div_(255.0);
  EXPECT_NEAR(pixels.mean().item<double>(), kFashionMnistMean[0], 0.002);
  EXPECT_NEAR(pixels.std().item<double>(), kFashionMnistStd[0], 0.002);
}

}  // namespace
}  // namespace pixelfly::data
