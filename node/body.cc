#include "node/body.h"

#include <cctype>

#include "crdt/codec.h"

namespace meridian::node {

using nlohmann::json;

namespace {

ApiError Err(int http, std::string code, std::string message) {
  return ApiError{http, std::move(code), std::move(message)};
}

}  // namespace

bool JsonDepthWithin(const std::string& text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

std::string MediaType(const std::string& header) {
  std::string t = header.substr(0, header.find(';'));
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.pop_back();
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.erase(t.begin());
  for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return t;
}

bool ParseBody(const std::string& type, const std::string& body, json* out, ApiError* err) {
  try {
    if (type.empty() || type == "application/json") {
      if (!JsonDepthWithin(body, kMaxJsonDepth)) {
        *err = Err(400, "too_deep", "JSON nested deeper than " + std::to_string(kMaxJsonDepth));
        return false;
      }
      *out = json::parse(body);
      return true;
    }
    if (type == "application/msgpack" || type == "application/x-msgpack") {
      // The codec checks structure, sizes and depth without recursion
      // before nlohmann's recursive reader sees the bytes.
      crdt::Decoder d;
      Status st = d.ParseRaw(body);
      if (!st.ok()) {
        *err = Err(400, "bad_msgpack", "malformed msgpack body: " + st.message());
        return false;
      }
      *out = json::from_msgpack(body);
      // Strings must be UTF-8 as in a JSON body, or a value would read
      // back altered as JSON: dump() throws on anything else.
      (void)out->dump();
      return true;
    }
  } catch (const json::exception& e) {
    bool msgpack = type == "application/msgpack" || type == "application/x-msgpack";
    *err = Err(400, msgpack ? "bad_msgpack" : "bad_json",
               std::string("malformed body: ") + e.what());
    return false;
  }
  *err = Err(415, "unsupported_media_type",
             "Content-Type must be application/json or application/msgpack, not '" + type + "'");
  return false;
}

}  // namespace meridian::node
