#include "node/body.h"

#include <cctype>
#include <cmath>
#include <vector>

#include "crdt/codec.h"

namespace meridian::node {

using nlohmann::json;

namespace {

ApiError Err(int http, std::string code, std::string message) {
  return ApiError{http, std::move(code), std::move(message)};
}

// What in a value decoded from msgpack JSON cannot hold: bin and ext
// (nlohmann's binary values, which dump() writes as an object of bytes)
// and NaN or an infinity (which dump() writes as null). Empty when there
// is none.
std::string NotJson(const json& value) {
  std::vector<const json*> pending = {&value};
  while (!pending.empty()) {
    const json* v = pending.back();
    pending.pop_back();
    if (v->is_binary()) return "bin or ext data, which JSON has no form for";
    if (v->is_number_float() && !std::isfinite(v->get<double>())) {
      return "a NaN or infinite float, which JSON has no form for";
    }
    if (v->is_structured()) {
      for (const json& child : *v) pending.push_back(&child);
    }
  }
  return "";
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
      json value = json::from_msgpack(body);
      // A body holds a JSON value in either encoding, or a value would
      // read back altered as JSON: no bin, ext or non-finite floats, and
      // strings must be UTF-8 (dump() throws on anything else).
      std::string not_json = NotJson(value);
      if (!not_json.empty()) {
        *err = Err(400, "bad_msgpack", "msgpack body holds " + not_json);
        return false;
      }
      (void)value.dump();
      *out = std::move(value);
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
