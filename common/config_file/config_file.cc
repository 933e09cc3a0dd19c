#include "common/config_file/config_file.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <regex>

#include "common/util/files.h"
#include "common/util/json.h"

namespace config_file {
namespace {

using nlohmann::json;

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// A plain (unquoted) scalar as YAML 1.2's core schema types it.
json plain_scalar(const std::string& s) {
  static const std::regex kInt("[-+]?[0-9]+");
  static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (std::regex_match(s, kInt)) {
    int64_t v = 0;
    const char* begin = s.data() + (s[0] == '+' ? 1 : 0);
    if (std::from_chars(begin, s.data() + s.size(), v).ec == std::errc()) return v;
    return std::strtod(s.c_str(), nullptr);  // beyond int64: a double, as JSON readers do
  }
  if (std::regex_match(s, kFloat)) return std::strtod(s.c_str(), nullptr);
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "+.inf") return std::numeric_limits<double>::infinity();
  if (s == "-.inf" || s == "-.Inf" || s == "-.INF") return -std::numeric_limits<double>::infinity();
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return std::numeric_limits<double>::quiet_NaN();
  return s;
}

// Values a file may expand to. Aliases make a YAML document a graph: nine lines of ten aliases
// each name a billion values ("billion laughs"), which must not be expanded.
constexpr size_t kMaxValues = 1000000;

json to_json(const YAML::Node& node, const std::string& origin, int depth, size_t& values) {
  const auto where = [&] {
    const YAML::Mark m = node.Mark();
    return origin + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
  };
  if (depth > util::kMaxJsonDepth) throw ConfigFileError(where() + ": nested deeper than " + std::to_string(util::kMaxJsonDepth) + " levels");
  if (++values > kMaxValues)
    throw ConfigFileError(origin + ": expands to more than " + std::to_string(kMaxValues) + " values (aliases of aliases?)");
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return nullptr;
    case YAML::NodeType::Scalar: {
      const std::string& tag = node.Tag();
      if (tag == "!" || tag == "tag:yaml.org,2002:str") return node.Scalar();  // quoted, or !!str
      if (tag == "?" || tag.empty()) return plain_scalar(node.Scalar());
      if (tag == "tag:yaml.org,2002:int" || tag == "tag:yaml.org,2002:float" || tag == "tag:yaml.org,2002:bool" ||
          tag == "tag:yaml.org,2002:null") {
        json v = plain_scalar(node.Scalar());
        if (v.is_string()) throw ConfigFileError(where() + ": \"" + util::cut(node.Scalar(), 40) + "\" is not a " + tag.substr(18));
        return v;
      }
      throw ConfigFileError(where() + ": the tag " + util::cut(tag, 60) + " is not supported (write plain values)");
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const YAML::Node& item : node) out.push_back(to_json(item, origin, depth + 1, values));
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar())
          throw ConfigFileError(origin + ":" + std::to_string(kv.first.Mark().line + 1) + ": a key must be a plain word or string");
        const std::string key = kv.first.Scalar();
        if (out.contains(key))
          throw ConfigFileError(origin + ":" + std::to_string(kv.first.Mark().line + 1) + ": the key \"" + util::cut(key, 60) + "\" appears twice");
        out[key] = to_json(kv.second, origin, depth + 1, values);
      }
      return out;
    }
  }
  return nullptr;
}

}  // namespace

nlohmann::json parse_yaml(std::string_view text, const std::string& origin) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    throw ConfigFileError(origin + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                          ": not valid YAML (" + e.msg + ")");
  }
  if (docs.size() > 1) throw ConfigFileError(origin + ": holds " + std::to_string(docs.size()) + " YAML documents; give one");
  if (docs.empty()) return nullptr;
  size_t values = 0;
  return to_json(docs[0], origin, 0, values);
}

nlohmann::json read(const std::string& path) {
  if (ends_with(path, ".yaml") || ends_with(path, ".yml")) return parse_yaml(util::read_file(path), path);
  try {
    return util::read_json_file(path);
  } catch (const util::JsonError& e) {
    throw ConfigFileError(e.what());
  }
}

}  // namespace config_file
