// HTTP request bodies: JSON (the default) or msgpack by Content-Type,
// parsed into one JSON value. Pure: Call::Body (api.cc) uses it, and the
// body fuzz target (tests/fuzz/http_body_fuzz.cc) exercises it as is.
#ifndef MERIDIAN_NODE_BODY_H_
#define MERIDIAN_NODE_BODY_H_

#include <string>

#include <nlohmann/json.hpp>

#include "node/operation.h"

namespace meridian::node {

// JSON nesting allowed in a body (the codec's msgpack depth limit too).
constexpr int kMaxJsonDepth = 32;

// Nesting depth of JSON text, counted without parsing (strings skipped),
// so that a deeply nested body is refused before any recursion.
bool JsonDepthWithin(const std::string& text, int max_depth);

// The media type of a Content-Type header: before any ';', trimmed,
// lower case.
std::string MediaType(const std::string& header);

// Parses `body` by its media type (MediaType of the Content-Type header):
// empty or application/json, application/msgpack or
// application/x-msgpack. False with *err on anything else (415), on JSON
// nested deeper than kMaxJsonDepth (400 too_deep), on a malformed body
// (400 bad_json / bad_msgpack), and on msgpack that holds what a JSON
// body cannot: a string that is not UTF-8, bin or ext data, a NaN or
// infinite float (400 bad_msgpack), so that a value reads back the same
// in either encoding. Never throws.
bool ParseBody(const std::string& media_type, const std::string& body, nlohmann::json* out,
               ApiError* err);

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_BODY_H_
