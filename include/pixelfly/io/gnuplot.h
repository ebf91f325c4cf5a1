// PNG plots drawn by gnuplot (Debian package gnuplot-nox). The caller gives the gnuplot commands
// (data inline as datablocks, e.g. "$loss << EOD\n1 0.5\nEOD\n"); the terminal and output are set
// here and the PNG is written atomically.
#pragma once

#include <string>

namespace pixelfly::io {

// True when a gnuplot executable is on the PATH.
bool gnuplot_available();

// Draws `commands` into `png_path` (width x height pixels). Returns false, writing nothing, when
// gnuplot is not installed; throws std::runtime_error naming the file when gnuplot fails.
bool draw_png_with_gnuplot(const std::string& png_path, const std::string& commands, int width = 800,
                           int height = 500);

}  // namespace pixelfly::io
