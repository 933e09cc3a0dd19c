#include "model/text/unicode.h"

#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include <cstdio>
#include <vector>

namespace i3 {

size_t decode_utf8(std::string_view in, std::u32string* out, size_t base_offset, bool complete) {
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  const size_t n = in.size();
  out->reserve(out->size() + n);
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      out->push_back(c);
      ++i;
      continue;
    }
    size_t len;
    char32_t cp;
    char32_t min;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", c);
      throw Utf8Error(std::string("invalid UTF-8 lead byte ") + hex + " at byte offset " + std::to_string(base_offset + i),
                      base_offset + i);
    }
    if (i + len > n) {
      // Check the bytes that are there, so a bad sequence is reported even when cut.
      for (size_t k = 1; i + k < n; ++k)
        if ((s[i + k] & 0xC0) != 0x80)
          throw Utf8Error("invalid UTF-8 continuation at byte offset " + std::to_string(base_offset + i),
                          base_offset + i);
      if (!complete) return n - i;
      throw Utf8Error("truncated UTF-8 sequence at byte offset " + std::to_string(base_offset + i), base_offset + i);
    }
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80)
        throw Utf8Error("invalid UTF-8 continuation at byte offset " + std::to_string(base_offset + i),
                        base_offset + i);
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      throw Utf8Error("invalid UTF-8 (overlong, surrogate or out of range) at byte offset " +
                          std::to_string(base_offset + i),
                      base_offset + i);
    out->push_back(cp);
    i += len;
  }
  return 0;
}

void append_utf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string to_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : text) append_utf8(cp, &out);
  return out;
}

std::u32string lowercase(std::u32string_view text) {
  bool ascii = true;
  for (char32_t cp : text) ascii &= cp < 0x80;
  if (ascii) {
    std::u32string out(text);
    for (auto& cp : out)
      if (cp >= 'A' && cp <= 'Z') cp += 'a' - 'A';
    return out;
  }
  std::vector<UChar> utf16;
  utf16.reserve(text.size() + 16);
  for (char32_t cp : text) {
    if (cp < 0x10000) {
      utf16.push_back(static_cast<UChar>(cp));
    } else {
      utf16.push_back(U16_LEAD(cp));
      utf16.push_back(U16_TRAIL(cp));
    }
  }
  // Lower-casing can grow the text (U+0130 becomes two code points); retry with the size ICU asks for.
  std::vector<UChar> lower(utf16.size() + 16);
  UErrorCode err = U_ZERO_ERROR;
  int32_t len = u_strToLower(lower.data(), static_cast<int32_t>(lower.size()), utf16.data(),
                             static_cast<int32_t>(utf16.size()), "", &err);
  if (err == U_BUFFER_OVERFLOW_ERROR) {
    lower.resize(len);
    err = U_ZERO_ERROR;
    len = u_strToLower(lower.data(), len, utf16.data(), static_cast<int32_t>(utf16.size()), "", &err);
  }
  if (U_FAILURE(err)) throw std::runtime_error(std::string("ICU lower-casing failed: ") + u_errorName(err));
  std::u32string out;
  out.reserve(len);
  for (int32_t i = 0; i < len;) {
    UChar32 cp;
    U16_NEXT(lower.data(), i, len, cp);
    out.push_back(static_cast<char32_t>(cp));
  }
  return out;
}

}  // namespace i3
