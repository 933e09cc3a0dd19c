// UTF-8 decoding and Unicode lower-casing for the chunk tokenizer.
//
// The tokenizer indexes text by code points after lower-casing it exactly like Python's
// str.lower(): full case mapping (one code point may become several, e.g. U+0130 'İ' becomes
// "i̇"), the context-dependent final sigma, no locale rules. ICU's root-locale u_strToLower
// implements the same definition.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace i3 {

// Invalid UTF-8. `offset` is the byte offset of the first byte of the bad sequence.
struct Utf8Error : std::runtime_error {
  Utf8Error(const std::string& what, size_t offset) : std::runtime_error(what), offset(offset) {}
  size_t offset;
};

// Decodes strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF), appending
// the code points to *out. `base_offset` is added to offsets in errors. If `complete` is false
// the input may end inside a sequence: those trailing bytes are left undecoded and their
// count is returned (the caller feeds them again with the next piece). Returns 0 otherwise.
// Throws Utf8Error on an invalid sequence.
size_t decode_utf8(std::string_view in, std::u32string* out, size_t base_offset = 0, bool complete = true);

// Appends the UTF-8 form of `cp` to *out. REQUIRES: cp is a Unicode scalar value.
void append_utf8(char32_t cp, std::string* out);
std::string to_utf8(std::u32string_view text);

// Lower-cases `text` like Python's str.lower(). Pure ASCII takes a fast path.
std::u32string lowercase(std::u32string_view text);

}  // namespace i3
