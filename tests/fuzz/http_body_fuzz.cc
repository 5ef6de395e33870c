// Fuzz target: the HTTP body decoders (node/body.h ParseBody, what
// Call::Body runs). The first byte picks the media type: even for
// application/json, odd for application/msgpack; the rest is the body.
//
// Properties of whatever is accepted: its JSON text (what a JSON reader
// of the value gets back) parses, as a JSON body, to the same value, and
// so does its msgpack encoding as a msgpack body.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "node/body.h"
#include "tests/fuzz/fuzz_check.h"

using namespace meridian;
using nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string type = (data[0] & 1) ? "application/msgpack" : "application/json";
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  json value;
  node::ApiError err;
  if (!node::ParseBody(type, body, &value, &err)) {
    FUZZ_CHECK(err.http == 400 && !err.code.empty());
    return 0;
  }
  const std::string text = value.dump();
  json from_text;
  FUZZ_CHECK(node::ParseBody("application/json", text, &from_text, &err));
  FUZZ_CHECK(from_text == value);
  FUZZ_CHECK(from_text.dump() == text);
  std::vector<uint8_t> packed = json::to_msgpack(value);
  json from_packed;
  FUZZ_CHECK(node::ParseBody("application/msgpack", std::string(packed.begin(), packed.end()),
                             &from_packed, &err));
  FUZZ_CHECK(from_packed == value);
  FUZZ_CHECK(from_packed.dump() == text);
  return 0;
}
