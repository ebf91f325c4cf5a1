// Text corpora: files read as bytes in order, every kind of unreadable file named in the error,
// the train/validation split, and the King James Bible from `bible` with its cache file.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>

#include "pixelfly/data/text_corpus.h"

namespace pixelfly::data {
namespace {

std::string as_string(const at::Tensor& bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()), bytes.numel());
}

class TextFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/pixelfly_text_" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    TearDown();
    ::mkdir(dir_.c_str(), 0755);
  }
  void TearDown() override {
    for (const char* name : {"a.txt", "b.txt", "empty.txt", "kjv.txt"}) std::remove((dir_ + "/" + name).c_str());
    ::rmdir((dir_ + "/subdir").c_str());
    ::rmdir(dir_.c_str());
  }
  std::string at(const std::string& name) const { return dir_ + "/" + name; }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(at(name), std::ios::binary) << text;
  }
  static std::string error_of(const std::function<void()>& f) {
    try {
      f();
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "no error";
  }
  std::string dir_;
};

TEST_F(TextFiles, ReadsFilesAsBytesInTheOrderGiven) {
  write("a.txt", "Hello,\n");
  write("b.txt", std::string("w\xc3\xb6rld\xff\x00!", 9));  // UTF-8, a byte >= 128 and a NUL
  const at::Tensor bytes = load_text_files({at("a.txt"), at("b.txt")});
  EXPECT_EQ(bytes.scalar_type(), at::kByte);
  EXPECT_EQ(bytes.dim(), 1);
  EXPECT_EQ(as_string(bytes), std::string("Hello,\nw\xc3\xb6rld\xff\x00!", 16));
  EXPECT_EQ(bytes[13].item<int>(), 255);
}

TEST_F(TextFiles, RejectsMissingEmptyAndUnreadableFilesNamingThem) {
  write("a.txt", "fine");
  write("empty.txt", "");
  ::mkdir(at("subdir").c_str(), 0755);
  const std::string missing = error_of([&] { load_text_files({at("a.txt"), at("missing.txt")}); });
  EXPECT_NE(missing.find("text file '" + at("missing.txt") + "': cannot open: No such file"), std::string::npos)
      << missing;
  const std::string empty = error_of([&] { load_text_files({at("empty.txt")}); });
  EXPECT_NE(empty.find("text file '" + at("empty.txt") + "': is empty"), std::string::npos) << empty;
  const std::string directory = error_of([&] { load_text_files({at("subdir")}); });
  EXPECT_NE(directory.find("text file '" + at("subdir") + "': cannot read: Is a directory"), std::string::npos)
      << directory;
  EXPECT_NE(error_of([] { load_text_files({}); }).find("no text files given"), std::string::npos);
}

TEST(TextSplit, TheLastFractionIsValidation) {
  const at::Tensor bytes = (at::arange(1000, at::kLong) % 256).to(at::kByte);
  const TextSplit split = split_text(bytes);
  EXPECT_EQ(split.train.size(0), 950);
  EXPECT_EQ(split.validation.size(0), 50);
  EXPECT_TRUE(at::equal(at::cat({split.train, split.validation}), bytes));
  EXPECT_EQ(split_text(bytes, 0.0).validation.size(0), 0);
  EXPECT_EQ(split_text(bytes, 0.25).train.size(0), 750);
  EXPECT_THROW(split_text(bytes, 1.0), c10::Error);
  EXPECT_THROW(split_text(bytes, -0.1), c10::Error);
  EXPECT_THROW(split_text(bytes.view({10, 100}), 0.1), c10::Error);
}

TEST_F(TextFiles, DefaultCorpusIsTheKingJamesBibleCachedInAFile) {
  if (::system("command -v bible >/dev/null 2>&1") != 0) GTEST_SKIP() << "bible-kjv not installed";
  const std::string cache = at("kjv.txt");
  const at::Tensor bible = load_default_corpus(cache);
  EXPECT_GT(bible.numel(), 4000000);
  const std::string text = as_string(bible);
  EXPECT_EQ(text.rfind("\nGenesis 1\n\n  1 In the beginning God created the heaven and the earth.\n", 0), 0u)
      << text.substr(0, 100);
  EXPECT_NE(text.find("The grace of our Lord Jesus Christ be with you all. Amen."), std::string::npos);
  // The cache holds exactly the text, and later loads read the cache rather than the program.
  EXPECT_TRUE(at::equal(load_text_files({cache}), bible));
  write("kjv.txt", "cached text");
  EXPECT_EQ(as_string(load_default_corpus(cache)), "cached text");
  EXPECT_EQ(as_string(load_text_corpus({}, cache)), "cached text");
  write("a.txt", "given");
  EXPECT_EQ(as_string(load_text_corpus({at("a.txt")}, cache)), "given");
}

TEST_F(TextFiles, MissingBibleProgramSaysHowToInstallIt) {
  const char* old_path = std::getenv("PATH");
  const std::string saved = old_path ? old_path : "";
  ::setenv("PATH", dir_.c_str(), 1);  // a directory without `bible`
  const std::string message = error_of([&] { load_default_corpus(at("kjv.txt")); });
  ::setenv("PATH", saved.c_str(), 1);
  EXPECT_NE(message.find("apt-get install bible-kjv"), std::string::npos) << message;
  EXPECT_NE(message.find("pass text files"), std::string::npos) << message;
  EXPECT_NE(::access(at("kjv.txt").c_str(), F_OK), 0) << "no cache file written on failure";
}

}  // namespace
}  // namespace pixelfly::data
