// Parsing JSON that comes from outside: config files, vocabularies, data lines, stored configs,
// checkpoint states, and (later) wire messages and HTTP bodies all go through here.
//
// Nesting is bounded: nlohmann's parser copes with any depth, but printing or destroying a
// value recurses, so a 100 KB document of 100,000 nested arrays crashes whoever prints it in an
// error message. parse_json() refuses such text before parsing, in one linear pass.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace util {

// The deepest nesting accepted (docs/limits.md). Real configs, tables and events nest < 10.
constexpr int kMaxJsonDepth = 128;

// Text that is not JSON, or JSON nested too deeply. The message names the origin and where.
struct JsonError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Parses `text`. Throws JsonError "ORIGIN: not valid JSON (parse error at line L, column C: …)"
// or "ORIGIN: JSON nested deeper than 128 levels (at byte N)". `callback` (nlohmann's parser
// callback) sees each value as it is parsed, e.g. to refuse a duplicate key, which the parsed
// document would silently merge; what it throws passes through.
nlohmann::json parse_json(std::string_view text, const std::string& origin,
                          const nlohmann::json::parser_callback_t& callback = nullptr);

// The same, without the error: nullopt for text that parse_json() would refuse.
std::optional<nlohmann::json> try_parse_json(std::string_view text);

// parse_json() of a whole file (util::read_file's checks and kMaxDocumentBytes).
nlohmann::json read_json_file(const std::string& path);

// `value` as compact JSON text, each byte of a string that is not UTF-8 written as U+FFFD
// (nlohmann's dump() throws on those; text from a job's output, a file name or a peer may hold
// any bytes).
std::string dump_json(const nlohmann::json& value);

// `v` as an int64 when it is an integer that fits (2^64 - 1 does not); nothing otherwise.
std::optional<int64_t> as_int64(const nlohmann::json& v);

// How much of an input value an error message quotes: enough to recognise it, never a flood.
constexpr size_t kQuoteChars = 64;

// `value` as JSON text for an error message: cut() to `max_chars` (a config value may be a
// 4 MB string).
std::string brief(const nlohmann::json& value, size_t max_chars = 80);

// `text` for an error message or a log: whole if at most `max_bytes` long, else its first
// whole UTF-8 characters within `max_bytes` followed by "…".
std::string cut(std::string_view text, size_t max_bytes = 80);

}  // namespace util
