#include "common/util/json.h"

#include "common/util/files.h"

namespace util {
namespace {

// The byte offset at which `text` nests deeper than the limit, or npos. Brackets inside
// strings do not count; the text need not be valid JSON (the parser judges that).
size_t too_deep_at(std::string_view text) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) return i;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return std::string_view::npos;
}

}  // namespace

nlohmann::json parse_json(std::string_view text, const std::string& origin,
                          const nlohmann::json::parser_callback_t& callback) {
  if (const size_t at = too_deep_at(text); at != std::string_view::npos)
    throw JsonError(origin + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels (at byte " +
                    std::to_string(at) + "); i3lab reads no deeper");
  try {
    return nlohmann::json::parse(text, callback);
  } catch (const nlohmann::json::exception& e) {
    // "[json.exception.parse_error.101] parse error at line 2, column 1: ...", or
    // "[json.exception.out_of_range.406] number overflow parsing '1e400'": the part after the
    // tag, cut (it quotes the offending token, which may be megabytes long).
    std::string what = e.what();
    if (what.rfind("[json.exception.", 0) == 0 && what.find("] ") != std::string::npos)
      what = what.substr(what.find("] ") + 2);
    throw JsonError(origin + ": not valid JSON (" + cut(what, 200) + ")");
  }
}

std::optional<nlohmann::json> try_parse_json(std::string_view text) {
  if (too_deep_at(text) != std::string_view::npos) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

nlohmann::json read_json_file(const std::string& path) { return parse_json(read_file(path), path); }

std::string brief(const nlohmann::json& value, size_t max_chars) {
  return cut(dump_json(value), max_chars);
}

std::string cut(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  size_t end = max_bytes;  // back to the first byte of a character: continuation bytes are 10xxxxxx
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end)) + "…";
}

std::string dump_json(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<int64_t> as_int64(const nlohmann::json& v) {
  if (!v.is_number_integer()) return std::nullopt;
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX}) return std::nullopt;
  return v.get<int64_t>();
}

}  // namespace util
