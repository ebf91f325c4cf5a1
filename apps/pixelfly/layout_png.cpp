// PNG pictures of block layouts through libpng.
#include "layout_png.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#ifdef PIXELFLY_HAVE_PNG
#include <png.h>
#endif

#include "pixelfly/io/atomic_file.h"

namespace pixelfly::cli {

#ifdef PIXELFLY_HAVE_PNG
namespace {

void write_gray_png(const std::string& path, int width, int height, const std::vector<uint8_t>& pixels) {
  FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) throw std::runtime_error("cannot create '" + path + "': " + std::strerror(errno));
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png != nullptr ? png_create_info_struct(png) : nullptr;
  if (png == nullptr || info == nullptr || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(file);
    throw std::runtime_error("libpng failed to write '" + path + "'");
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < height; ++y) {
    png_write_row(png, const_cast<png_bytep>(pixels.data() + static_cast<size_t>(y) * width));
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  if (std::fclose(file) != 0) throw std::runtime_error("cannot write '" + path + "': " + std::strerror(errno));
}

}  // namespace

void write_layout_png(const BlockLayout& layout, const std::string& path) {
  const int64_t rows = layout.block_rows(), cols = layout.block_cols();
  // About 512 pixels on the long side, between 1 and 32 pixels per block.
  const int scale = static_cast<int>(std::clamp<int64_t>(512 / std::max(rows, cols), 1, 32));
  const bool grid = scale >= 4;
  const int width = static_cast<int>(cols * scale), height = static_cast<int>(rows * scale);
  std::vector<uint8_t> pixels(static_cast<size_t>(width) * height, 255);
  const std::vector<uint8_t> mask = layout.block_mask();
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const bool on_grid = grid && (x % scale == 0 || y % scale == 0);
      const bool nonzero = mask[(y / scale) * cols + (x / scale)] != 0;
      pixels[static_cast<size_t>(y) * width + x] = on_grid ? 200 : (nonzero ? 30 : 255);
    }
  }
  io::replace_file_atomically(path, [&](const std::string& temp) { write_gray_png(temp, width, height, pixels); });
}

#else

void write_layout_png(const BlockLayout&, const std::string&) {
  throw std::runtime_error("this build of pixelfly has no PNG support (libpng was not found at build time)");
}

#endif

}  // namespace pixelfly::cli
