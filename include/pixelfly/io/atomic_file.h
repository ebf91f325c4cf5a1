// Atomic file writes: write to a temporary file beside the target, flush it to disk, then
// rename it over the target, so a reader never sees a half-written file and a crash never
// destroys the previous version.
#pragma once

#include <functional>
#include <string>

namespace pixelfly::io {

// Writes `contents` to `path` atomically. Throws std::runtime_error naming the path and the
// system error on failure; the target is then unchanged.
void write_file_atomically(const std::string& path, const std::string& contents);

// Calls write(temp_path) to produce the file, then moves it over `path` atomically. If write
// throws or the move fails, the temporary file is removed and the target is unchanged.
void replace_file_atomically(const std::string& path, const std::function<void(const std::string&)>& write);

}  // namespace pixelfly::io
