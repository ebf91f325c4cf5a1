// Compressors named by text, as in configs and on the command line:
//   global:S       global magnitude at sparsity S        uniform:S   per-layer magnitude
//   nm:N:M         N:M (e.g. nm:2:4)                     block:S:B   block magnitude, B x B tiles
#pragma once

#include <memory>
#include <string>

#include "pixelfly/compress/compressor.h"

namespace pixelfly::compress {

// Throws std::invalid_argument naming the spec and the accepted forms; the compressors' own
// checks (sparsity in [0, 1), N <= M, block > 0) apply too.
std::shared_ptr<Compressor> parse_compressor(const std::string& spec);

}  // namespace pixelfly::compress
