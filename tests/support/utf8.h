// UTF-8 from code points, for tests that type characters by code point
// (the text CRDT's suites, the node's text routes, the simulator).
#ifndef MERIDIAN_TESTS_SUPPORT_UTF8_H_
#define MERIDIAN_TESTS_SUPPORT_UTF8_H_

#include <cstdint>
#include <string>
#include <vector>

namespace meridian::testing {

// Appends code point `cp` (<= U+10FFFF, not a surrogate) as UTF-8.
inline void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

inline std::string Utf8(uint32_t cp) {
  std::string out;
  AppendUtf8(cp, &out);
  return out;
}

inline std::string Utf8(const std::vector<uint32_t>& cps) {
  std::string out;
  for (uint32_t cp : cps) AppendUtf8(cp, &out);
  return out;
}

}  // namespace meridian::testing

#endif  // MERIDIAN_TESTS_SUPPORT_UTF8_H_
