// safetensors reader and writer (format in include/pixelfly/io/safetensors.h). The reader
// validates the whole header against the file size before reading any tensor, then reads each
// tensor straight into its own storage with positioned reads, so nothing reads past the file
// or a buffer; the writer streams one tensor at a time into an atomically replaced file.
#include "pixelfly/io/safetensors.h"

#include "pixelfly/io/atomic_file.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <set>
#include <stdexcept>

namespace pixelfly::io {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian and is copied as it is; big-endian hosts need byte swaps");

using OrderedJson = nlohmann::ordered_json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
  uint64_t element_bytes;
};

constexpr DtypeInfo kDtypes[] = {
    {"F64", at::kDouble, 8}, {"F32", at::kFloat, 4}, {"F16", at::kHalf, 2}, {"BF16", at::kBFloat16, 2},
    {"I64", at::kLong, 8},   {"I32", at::kInt, 4},   {"I16", at::kShort, 2}, {"I8", at::kChar, 1},
    {"U8", at::kByte, 1},    {"BOOL", at::kBool, 1}};

const DtypeInfo* dtype_named(const std::string& name) {
  for (const DtypeInfo& d : kDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

const DtypeInfo* dtype_of(at::ScalarType type) {
  for (const DtypeInfo& d : kDtypes) {
    if (type == d.type) return &d;
  }
  return nullptr;
}

std::string supported_dtypes() {
  std::string names;
  for (const DtypeInfo& d : kDtypes) names += std::string(names.empty() ? "" : " ") + d.name;
  return names;
}

// One tensor's header entry, validated.
struct Entry {
  std::string name;
  const DtypeInfo* dtype;
  std::vector<int64_t> shape;
  uint64_t begin;
  uint64_t end;
};

struct CloseFile {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() { ::close(fd_); }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Reads exactly `bytes` bytes at `offset`; a short file is an error, never a partial read.
void read_exact(int fd, const std::string& where, void* destination, uint64_t bytes, uint64_t offset) {
  auto* out = static_cast<char*>(destination);
  while (bytes > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(bytes, uint64_t{1} << 30));
    const ssize_t got = ::pread(fd, out, chunk, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    const int error = errno;
    TORCH_CHECK(got > 0, where, "cannot read ", bytes, " bytes at offset ", offset, ": ",
                got == 0 ? "unexpected end of file" : std::strerror(error));
    out += got;
    bytes -= static_cast<uint64_t>(got);
    offset += static_cast<uint64_t>(got);
  }
}

// Parses the header JSON, rejecting repeated top-level names (a plain parse keeps the last).
OrderedJson parse_header(const std::string& text, const std::string& where) {
  std::set<std::string> names;
  std::string repeated;
  const OrderedJson::parser_callback_t note_names = [&](int depth, OrderedJson::parse_event_t event,
                                                        OrderedJson& parsed) {
    if (event == OrderedJson::parse_event_t::key && depth == 1 && repeated.empty() &&
        !names.insert(parsed.get<std::string>()).second) {
      repeated = parsed.get<std::string>();
    }
    return true;
  };
  OrderedJson header;
  try {
    header = OrderedJson::parse(text, note_names);
  } catch (const OrderedJson::parse_error& e) {
    TORCH_CHECK(false, where, "header is not valid JSON: ", e.what());
  }
  TORCH_CHECK(header.is_object(), where, "header is not a JSON object but ", header.type_name());
  TORCH_CHECK(repeated.empty(), where, "header names '", repeated, "' more than once");
  return header;
}

std::map<std::string, std::string> parse_metadata(const OrderedJson& value, const std::string& where) {
  TORCH_CHECK(value.is_object(), where, "\"", kMetadataKey, "\" must be an object of strings, got ", value.dump());
  std::map<std::string, std::string> metadata;
  for (const auto& [key, text] : value.items()) {
    TORCH_CHECK(text.is_string(), where, "\"", kMetadataKey, "\" value for '", key, "' must be a string, got ",
                text.dump());
    metadata.emplace(key, text.get<std::string>());
  }
  return metadata;
}

Entry parse_entry(const std::string& name, const OrderedJson& value, uint64_t buffer_bytes,
                  const std::string& where) {
  TORCH_CHECK(!name.empty(), where, "a tensor has an empty name");
  const std::string what = where + "tensor '" + name + "': ";
  TORCH_CHECK(value.is_object(), what, "entry must be an object with dtype, shape and data_offsets, got ",
              value.dump());
  for (const auto& field : value.items()) {
    TORCH_CHECK(field.key() == "dtype" || field.key() == "shape" || field.key() == "data_offsets", what,
                "unexpected key \"", field.key(), "\" (expected dtype, shape, data_offsets)");
  }
  Entry entry{name, nullptr, {}, 0, 0};

  TORCH_CHECK(value.contains("dtype") && value.at("dtype").is_string(), what, "missing or non-string \"dtype\"");
  const std::string dtype = value.at("dtype").get<std::string>();
  entry.dtype = dtype_named(dtype);
  TORCH_CHECK(entry.dtype != nullptr, what, "unknown dtype '", dtype, "' (supported: ", supported_dtypes(), ")");

  const bool shape_ok = value.contains("shape") && value.at("shape").is_array() &&
                        std::all_of(value.at("shape").begin(), value.at("shape").end(), [](const OrderedJson& d) {
                          return d.is_number_unsigned() &&
                                 d.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
                        });
  TORCH_CHECK(shape_ok, what, "\"shape\" must be a list of non-negative integers, got ",
              value.contains("shape") ? value.at("shape").dump() : "nothing");
  for (const OrderedJson& d : value.at("shape")) entry.shape.push_back(d.get<int64_t>());

  const bool offsets_ok = value.contains("data_offsets") && value.at("data_offsets").is_array() &&
                          value.at("data_offsets").size() == 2 && value.at("data_offsets")[0].is_number_unsigned() &&
                          value.at("data_offsets")[1].is_number_unsigned() &&
                          value.at("data_offsets")[0].get<uint64_t>() <= value.at("data_offsets")[1].get<uint64_t>();
  TORCH_CHECK(offsets_ok, what, "\"data_offsets\" must be [begin, end] with integers 0 <= begin <= end, got ",
              value.contains("data_offsets") ? value.at("data_offsets").dump() : "nothing");
  entry.begin = value.at("data_offsets")[0].get<uint64_t>();
  entry.end = value.at("data_offsets")[1].get<uint64_t>();
  TORCH_CHECK(entry.end <= buffer_bytes, what, "data_offsets [", entry.begin, ", ", entry.end,
              "] go beyond the data buffer of ", buffer_bytes, " bytes");

  // shape x element size, guarding against overflow (a zero dimension makes any shape empty).
  uint64_t bytes = entry.dtype->element_bytes;
  bool overflow = false;
  if (std::find(entry.shape.begin(), entry.shape.end(), 0) != entry.shape.end()) {
    bytes = 0;
  } else {
    for (const int64_t d : entry.shape) overflow = overflow || __builtin_mul_overflow(bytes, uint64_t(d), &bytes);
  }
  TORCH_CHECK(!overflow && bytes == entry.end - entry.begin, what, "data_offsets [", entry.begin, ", ", entry.end,
              "] hold ", entry.end - entry.begin, " bytes but shape ", value.at("shape").dump(), " of ", dtype,
              " needs ", overflow ? std::string("more than 2^64") : std::to_string(bytes), " bytes");
  return entry;
}

// Orders the entries by offset and checks that they tile the buffer exactly.
void check_tiling(std::vector<Entry>& entries, uint64_t buffer_bytes, const std::string& where) {
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    TORCH_CHECK(e.begin >= covered, where, "tensors '", previous->name, "' [", previous->begin, ", ", previous->end,
                "] and '", e.name, "' [", e.begin, ", ", e.end, "] overlap");
    TORCH_CHECK(e.begin == covered, where, "gap of ", e.begin - covered, " bytes in the data buffer before tensor '",
                e.name, "' at offset ", e.begin);
    covered = e.end;
    previous = &e;
  }
  TORCH_CHECK(covered == buffer_bytes, where, buffer_bytes - covered, " trailing bytes after the last tensor ",
              "(the data buffer holds ", buffer_bytes, " bytes, the tensors end at ", covered, ")");
}

void write_all(std::FILE* file, const void* data, size_t bytes, const std::string& path) {
  if (bytes > 0 && std::fwrite(data, 1, bytes, file) != bytes) {
    throw std::runtime_error("cannot write '" + path + "': " + std::strerror(errno));
  }
}

}  // namespace

void save_safetensors(const std::string& path, const NamedTensors& data) {
  const std::string where = "safetensors file '" + path + "': ";
  OrderedJson header = OrderedJson::object();
  if (!data.metadata.empty()) header[kMetadataKey] = data.metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : data.tensors) {
    TORCH_CHECK(!name.empty(), where, "a tensor name is empty");
    TORCH_CHECK(name != kMetadataKey, where, "'", kMetadataKey, "' is reserved and cannot name a tensor");
    TORCH_CHECK(names.insert(name).second, where, "tensor name '", name, "' appears more than once");
    TORCH_CHECK(tensor.defined(), where, "tensor '", name, "' is undefined");
    TORCH_CHECK(tensor.layout() == at::kStrided, where, "tensor '", name, "' has layout ", tensor.layout(),
                "; only dense tensors can be saved");
    const DtypeInfo* dtype = dtype_of(tensor.scalar_type());
    TORCH_CHECK(dtype != nullptr, where, "tensor '", name, "' has dtype ", tensor.scalar_type(),
                ", which is not supported (supported: ", supported_dtypes(), ")");
    const uint64_t bytes = static_cast<uint64_t>(tensor.numel()) * dtype->element_bytes;
    OrderedJson entry;
    entry["dtype"] = dtype->name;
    entry["shape"] = tensor.sizes().vec();
    entry["data_offsets"] = OrderedJson::array({offset, offset + bytes});
    header[name] = std::move(entry);
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const OrderedJson::type_error& e) {
    TORCH_CHECK(false, where, "tensor names and metadata must be valid UTF-8: ", e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(uint64_t(text.size()) >> (8 * i));

  replace_file_atomically(path, [&](const std::string& temp) {
    std::unique_ptr<std::FILE, CloseFile> file(std::fopen(temp.c_str(), "wb"));
    if (file == nullptr) throw std::runtime_error("cannot create '" + temp + "': " + std::strerror(errno));
    write_all(file.get(), length, sizeof(length), temp);
    write_all(file.get(), text.data(), text.size(), temp);
    for (const auto& named : data.tensors) {
      const at::Tensor cpu = named.second.detach().to(at::kCPU).contiguous();
      write_all(file.get(), cpu.data_ptr(), cpu.nbytes(), temp);
    }
    if (std::fclose(file.release()) != 0) {
      throw std::runtime_error("cannot write '" + temp + "': " + std::strerror(errno));
    }
  });
}

NamedTensors load_safetensors(const std::string& path) {
  const std::string where = "safetensors file '" + path + "': ";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  const int open_error = errno;
  TORCH_CHECK(fd >= 0, where, "cannot open it: ", std::strerror(open_error));
  const FileDescriptor file(fd);
  struct stat info {};
  TORCH_CHECK(::fstat(fd, &info) == 0 && S_ISREG(info.st_mode), where, "not a readable regular file");
  const uint64_t file_bytes = static_cast<uint64_t>(info.st_size);
  TORCH_CHECK(file_bytes >= 8, where, "the file is ", file_bytes,
              " bytes, shorter than the 8-byte header length that starts it");

  unsigned char length[8];
  read_exact(fd, where, length, sizeof(length), 0);
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | length[i];
  TORCH_CHECK(header_bytes <= kMaxHeaderBytes, where, "header length ", header_bytes, " exceeds the limit of ",
              kMaxHeaderBytes, " bytes");
  TORCH_CHECK(header_bytes <= file_bytes - 8, where, "header length ", header_bytes,
              " goes beyond the end of the file (", file_bytes, " bytes)");
  std::string text(header_bytes, '\0');
  read_exact(fd, where, text.data(), header_bytes, 8);
  const OrderedJson header = parse_header(text, where);

  const uint64_t buffer_start = 8 + header_bytes;
  const uint64_t buffer_bytes = file_bytes - buffer_start;
  NamedTensors result;
  std::vector<Entry> entries;
  for (const auto& item : header.items()) {
    if (item.key() == kMetadataKey) {
      result.metadata = parse_metadata(item.value(), where);
    } else {
      entries.push_back(parse_entry(item.key(), item.value(), buffer_bytes, where));
    }
  }
  check_tiling(entries, buffer_bytes, where);

  for (const Entry& e : entries) {
    at::Tensor tensor = at::empty(e.shape, at::TensorOptions().dtype(e.dtype->type));
    read_exact(fd, where, tensor.data_ptr(), e.end - e.begin, buffer_start + e.begin);
    if (e.dtype->type == at::kBool) {
      const auto* bytes = static_cast<const uint8_t*>(tensor.data_ptr());
      const auto* bad = std::find_if(bytes, bytes + tensor.numel(), [](uint8_t b) { return b > 1; });
      TORCH_CHECK(bad == bytes + tensor.numel(), where, "tensor '", e.name, "' (BOOL) holds the byte ",
                  int(*bad), "; only 0 and 1 are valid");
    }
    result.tensors.emplace_back(e.name, std::move(tensor));
  }
  return result;
}

}  // namespace pixelfly::io
