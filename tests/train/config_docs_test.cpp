// docs/config.md and configs/*.json stay true to the configuration table: every key of
// config_keys() is documented once with its exact default (the JSON dump of the default), no
// documented key is unknown, and every recipe in configs/ loads and validates (its CrAM
// compressor specs included).
//
// docs/config.md documents keys in markdown tables whose header row starts with
// "| key | default |"; each row of such a table is "| `optim.lr` | `0.001` | description |".
#include "pixelfly/train/config.h"

#include "pixelfly/compress/compressor_spec.h"

#include <dirent.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#ifndef PIXELFLY_SOURCE_DIR
#error "PIXELFLY_SOURCE_DIR must name the source tree (set in tests/CMakeLists.txt)"
#endif

namespace pixelfly::train {
namespace {

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  const auto end = s.find_last_not_of(" \t\r");
  return s.substr(begin, end - begin + 1);
}

// The cells of a markdown table row "| a | b | c |" (no escaped pipes in our cells).
std::vector<std::string> cells_of(const std::string& line) {
  std::vector<std::string> cells;
  std::string body = trim(line);
  if (body.size() < 2 || body.front() != '|' || body.back() != '|') return cells;
  body = body.substr(1, body.size() - 2);
  std::stringstream stream(body);
  for (std::string cell; std::getline(stream, cell, '|');) cells.push_back(trim(cell));
  return cells;
}

// "`text`" -> "text"; false when the cell is not one code span.
bool code_span(const std::string& cell, std::string& text) {
  if (cell.size() < 2 || cell.front() != '`' || cell.back() != '`') return false;
  text = cell.substr(1, cell.size() - 2);
  return text.find('`') == std::string::npos;
}

struct DocumentedKey {
  std::string default_text;
  int line = 0;
};

// Key -> documented default, from every key table of the file. Malformed rows and keys
// documented twice are reported through `problems`.
std::map<std::string, DocumentedKey> documented_keys(const std::string& path, std::vector<std::string>& problems) {
  std::ifstream file(path);
  EXPECT_TRUE(file.good()) << "cannot open " << path;
  std::map<std::string, DocumentedKey> keys;
  bool in_key_table = false;
  int number = 0;
  for (std::string line; std::getline(file, line);) {
    ++number;
    const std::vector<std::string> cells = cells_of(line);
    if (cells.empty()) {
      in_key_table = false;
      continue;
    }
    if (cells.size() >= 2 && cells[0] == "key" && cells[1] == "default") {
      in_key_table = true;
      continue;
    }
    if (!in_key_table || cells[0].find_first_not_of("-: ") == std::string::npos) continue;  // separator row
    std::string key, default_text;
    if (cells.size() < 3 || !code_span(cells[0], key) || !code_span(cells[1], default_text)) {
      problems.push_back(path + ":" + std::to_string(number) +
                         ": a row of a key table must look like | `section.key` | `default` | description |");
      continue;
    }
    if (keys.count(key)) {
      problems.push_back(path + ":" + std::to_string(number) + ": `" + key + "` is documented twice (also line " +
                         std::to_string(keys[key].line) + ")");
      continue;
    }
    keys[key] = {default_text, number};
  }
  return keys;
}

std::string expected_row(const ConfigKey& key) {
  return "| `" + key.path + "` | `" + key.default_value.dump() + "` | " + key.help + " |";
}

TEST(ConfigDocs, EveryKeyIsDocumentedWithItsDefault) {
  const std::string path = std::string(PIXELFLY_SOURCE_DIR) + "/docs/config.md";
  std::vector<std::string> problems;
  const std::map<std::string, DocumentedKey> documented = documented_keys(path, problems);
  for (const std::string& problem : problems) ADD_FAILURE() << problem;
  for (const ConfigKey& key : config_keys()) {
    const auto it = documented.find(key.path);
    if (it == documented.end()) {
      ADD_FAILURE() << path << " does not document `" << key.path << "`; add the row\n  " << expected_row(key);
    } else if (it->second.default_text != key.default_value.dump()) {
      ADD_FAILURE() << path << ":" << it->second.line << ": `" << key.path << "` documents default `"
                    << it->second.default_text << "` but config_keys() has `" << key.default_value.dump() << "`";
    }
  }
}

TEST(ConfigDocs, NoDocumentedKeyIsUnknown) {
  const std::string path = std::string(PIXELFLY_SOURCE_DIR) + "/docs/config.md";
  std::vector<std::string> problems;
  const std::map<std::string, DocumentedKey> documented = documented_keys(path, problems);
  EXPECT_FALSE(documented.empty()) << path << " has no key table (header row \"| key | default | ... |\")";
  for (const auto& [name, doc] : documented) {
    const bool known = std::any_of(config_keys().begin(), config_keys().end(),
                                   [&](const ConfigKey& key) { return key.path == name; });
    EXPECT_TRUE(known) << path << ":" << doc.line << " documents `" << name
                       << "`, which is not a key of config_keys() (src/train/config.cpp)";
  }
}

// POSIX, not std::filesystem: the LibTorch wheel's libtorch.so exports std::filesystem symbols
// of its own, and calls from code built here can resolve into them and crash.
std::vector<std::string> json_files_in(const std::string& dir) {
  std::vector<std::string> names;
  DIR* handle = ::opendir(dir.c_str());
  if (handle == nullptr) return names;
  while (const dirent* entry = ::readdir(handle)) {
    const std::string name = entry->d_name;
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0) names.push_back(name);
  }
  ::closedir(handle);
  std::sort(names.begin(), names.end());
  return names;
}

TEST(ConfigDocs, EveryRecipeInConfigsLoadsAndValidates) {
  const std::string dir = std::string(PIXELFLY_SOURCE_DIR) + "/configs";
  const std::vector<std::string> names = json_files_in(dir);
  ASSERT_FALSE(names.empty()) << "no *.json in " << dir;
  EXPECT_NE(std::find(names.begin(), names.end(), "mixer_fmnist.json"), names.end())
      << dir << "/mixer_fmnist.json (the main job of `make run`) is missing";
  for (const std::string& name : names) {
    const std::string path = dir + "/" + name;
    try {
      const TrainConfig config = parse_config(load_config(path, {}));
      EXPECT_FALSE(config.run_dir.empty()) << path;
      for (const std::string& spec : config.cram_compressors) compress::parse_compressor(spec);
    } catch (const std::exception& e) {
      ADD_FAILURE() << path << ": " << e.what();
    }
  }
}

}  // namespace
}  // namespace pixelfly::train
