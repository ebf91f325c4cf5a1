// Text files as bytes, the train/validation split, and the King James Bible from `bible`.
#include "pixelfly/data/text_corpus.h"

#include <ATen/ATen.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "pixelfly/io/atomic_file.h"

namespace pixelfly::data {
namespace {

// The whole Bible is about 4.3 MB; less than this means the program printed something else.
constexpr size_t kMinimumKjvBytes = 4000000;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("text file '" + path + "': " + what);
}

// Appends the bytes of `path` to `out`, reading until end of file (POSIX calls, not
// std::filesystem, whose symbols LibTorch's libraries export).
void append_file(const std::string& path, std::string& out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  const size_t before = out.size();
  char buffer[1 << 16];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof(buffer));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int error = errno;
      ::close(fd);
      fail(path, std::string("cannot read: ") + std::strerror(error));
    }
    if (got == 0) break;
    out.append(buffer, static_cast<size_t>(got));
  }
  ::close(fd);
  if (out.size() == before) fail(path, "is empty (expected text)");
}

at::Tensor to_bytes(const std::string& text) {
  at::Tensor out = at::empty({static_cast<int64_t>(text.size())}, at::kByte);
  std::memcpy(out.data_ptr<uint8_t>(), text.data(), text.size());
  return out;
}

// Whether `program` is an executable file in a directory of $PATH.
bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t begin = 0;
  while (begin <= dirs.size()) {
    size_t end = dirs.find(':', begin);
    if (end == std::string::npos) end = dirs.size();
    const std::string dir = end > begin ? dirs.substr(begin, end - begin) : ".";
    if (::access((dir + "/" + program).c_str(), X_OK) == 0) return true;
    begin = end + 1;
  }
  return false;
}

const char* const kMissingBible =
    "the default text corpus needs the program 'bible' (King James Bible), which was not found on PATH: "
    "install it with `apt-get install bible-kjv`, or pass text files to train on instead";

}  // namespace

at::Tensor load_text_files(const std::vector<std::string>& paths) {
  if (paths.empty()) throw std::runtime_error("text corpus: no text files given (expected at least one path)");
  std::string text;
  for (const std::string& path : paths) append_file(path, text);
  return to_bytes(text);
}

TextSplit split_text(const at::Tensor& bytes, double validation_fraction) {
  TORCH_CHECK(bytes.dim() == 1, "split_text: the corpus must be 1-D, got shape ", bytes.sizes());
  TORCH_CHECK(validation_fraction >= 0 && validation_fraction < 1,
              "split_text: validation_fraction must be in [0, 1), got ", validation_fraction);
  const int64_t n = bytes.size(0);
  const int64_t validation = static_cast<int64_t>(validation_fraction * static_cast<double>(n));
  return {bytes.narrow(0, 0, n - validation), bytes.narrow(0, n - validation, validation)};
}

std::string kjv_command() { return "bible gen1:1-rev22:21"; }

std::string generate_kjv_text() {
  if (!on_path("bible")) throw std::runtime_error(kMissingBible);
  // stdin from /dev/null: with no input, `bible` can never wait for an interactive command.
  const std::string command = kjv_command() + " </dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run '" + kjv_command() + "': " + std::strerror(errno));
  std::string text;
  char buffer[1 << 16];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) text.append(buffer, got);
  const bool read_error = std::ferror(pipe) != 0;
  const int status = ::pclose(pipe);
  if (status == -1) throw std::runtime_error("'" + kjv_command() + "': cannot get its exit status: " + std::strerror(errno));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) throw std::runtime_error(kMissingBible);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("'" + kjv_command() + "' failed (" +
                             (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                                : std::string("killed by a signal")) +
                             "); install bible-kjv with `apt-get install bible-kjv`, or pass text files instead");
  }
  if (read_error) throw std::runtime_error("'" + kjv_command() + "': error reading its output");
  if (text.size() < kMinimumKjvBytes) {
    throw std::runtime_error("'" + kjv_command() + "' printed " + std::to_string(text.size()) +
                             " bytes, expected the whole Bible (about 4.3 MB)");
  }
  return text;
}

at::Tensor load_default_corpus(const std::string& cache_path) {
  if (!cache_path.empty() && ::access(cache_path.c_str(), F_OK) == 0) return load_text_files({cache_path});
  const std::string text = generate_kjv_text();
  if (!cache_path.empty()) io::write_file_atomically(cache_path, text);
  return to_bytes(text);
}

at::Tensor load_text_corpus(const std::vector<std::string>& paths, const std::string& cache_path) {
  return paths.empty() ? load_default_corpus(cache_path) : load_text_files(paths);
}

}  // namespace pixelfly::data
