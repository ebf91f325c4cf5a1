// Runs gnuplot on a generated script to draw a PNG atomically.
#include "pixelfly/io/gnuplot.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include "pixelfly/io/atomic_file.h"

namespace pixelfly::io {

bool gnuplot_available() { return std::system("command -v gnuplot > /dev/null 2>&1") == 0; }

bool draw_png_with_gnuplot(const std::string& png_path, const std::string& commands, int width, int height) {
  if (!gnuplot_available()) return false;
  replace_file_atomically(png_path, [&](const std::string& temp) {
    const std::string script_path = temp + ".gp";
    {
      std::ofstream script(script_path);
      script << "set terminal pngcairo size " << width << "," << height << "\n"
             << "set output '" << temp << "'\n"
             << commands << "\nunset output\n";
      if (!script) throw std::runtime_error("cannot write the gnuplot script for '" + png_path + "'");
    }
    const int rc = std::system(("gnuplot '" + script_path + "' 2>/dev/null").c_str());
    std::remove(script_path.c_str());
    if (rc != 0) throw std::runtime_error("gnuplot failed to draw '" + png_path + "'");
  });
  return true;
}

}  // namespace pixelfly::io
