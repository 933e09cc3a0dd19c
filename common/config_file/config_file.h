// Config files a person writes: a sweep definition, a job. JSON, or YAML as W&B's sweep files
// are, read into the same JSON value so one parser checks both.
//
// YAML scalars take the types of YAML 1.2's core schema: unquoted true/false, null/~ and
// numbers (1, -2, 1e-3, 0.5, .inf, .nan) are booleans, null and numbers; anything quoted, and
// every other word, is a string. An integer too large for int64 is a double. Anchors and aliases
// are resolved; tags other than the standard ones are an error.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

namespace config_file {

// A file that is neither valid JSON nor YAML (as its name says), or holds what JSON cannot:
// the message names the file, and the line and column where YAML's parser stopped.
struct ConfigFileError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Reads `path`: YAML when its name ends in .yaml or .yml, JSON otherwise. Throws
// std::runtime_error when the file cannot be read, ConfigFileError when its text is not valid.
nlohmann::json read(const std::string& path);

// Parses YAML text; `origin` (a file name) prefixes errors.
nlohmann::json parse_yaml(std::string_view text, const std::string& origin);

}  // namespace config_file
