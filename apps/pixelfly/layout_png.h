// Draws a block layout as a PNG picture: one square per block, dark for nonzero, white for
// zero, with thin grid lines when blocks are drawn large enough.
#pragma once

#include <string>

#include "pixelfly/pattern/block_layout.h"

namespace pixelfly::cli {

// Writes the picture to `path` atomically. Throws std::runtime_error on failure, or when this
// build has no libpng.
void write_layout_png(const BlockLayout& layout, const std::string& path);

}  // namespace pixelfly::cli
