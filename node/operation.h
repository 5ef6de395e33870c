// Operations on one key, as the HTTP API and batch requests describe them,
// and how they apply to the key's stored envelope. Pure: no I/O, no clock
// reads (the caller supplies the timestamp), so the applier and tests share
// it.
//
// Values (register values, set elements) are stored as the msgpack
// encoding of a JSON value, so both API encodings read and write the same
// bytes.
#ifndef MERIDIAN_NODE_OPERATION_H_
#define MERIDIAN_NODE_OPERATION_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "conflict/settle.h"
#include "crdt/causal_context.h"
#include "crdt/envelope.h"
#include "crdt/hlc.h"
#include "crdt/map.h"
#include "crdt/status.h"
#include "crdt/text.h"

namespace meridian::node {

constexpr size_t kMaxKeyBytes = 1024;

// An API error: HTTP status, stable code, sentence.
struct ApiError {
  int http = 500;
  std::string code;
  std::string message;
};

struct Operation {
  enum class Kind {
    kPut,         // register / mvregister set
    kDelete,      // delete the whole value, any type
    kCounterAdd,  // counter
    kSetUpdate,   // set adds / removes
    kMapUpdate,   // map field ops / removes
    kTextEdit,    // text inserts / deletes, at a version
    kTextMerge,   // a text delta made elsewhere (a live editor's own edits), joined
  };
  Kind kind = Kind::kPut;
  std::string key;
  // The type the route addresses (a crdt wire tag). For /v1/kv: Register
  // unless the key already holds an mvregister or the write asks for one
  // (`?type=mvregister`). 0 with kDelete: whatever type the key holds.
  uint8_t type = 0;
  bool kv = false;            // a /v1/kv route: register or mvregister
  std::string value;          // kPut: msgpack of the JSON value
  std::optional<crdt::CausalContext> context;  // mvregister writes and deletes
  int64_t amount = 0;                          // kCounterAdd
  std::vector<std::string> adds, removes;      // kSetUpdate: msgpack elements
  std::vector<crdt::FieldOp> field_ops;        // kMapUpdate
  std::vector<std::string> field_removes;      // kMapUpdate
  // kTextEdit: the edits, in order, each seeing the ones before it, with
  // positions that refer to `text_at` (unset: the key's current version).
  std::optional<crdt::TextVersion> text_at;
  std::vector<crdt::TextEdit> text_edits;
  // kTextMerge: a Text's encoding (Text::Encode), decoded as untrusted
  // bytes and joined into the key's text; it is also the delta shipped.
  std::string text_state;
};

// Checks a key: 1..kMaxKeyBytes bytes of valid UTF-8.
bool ValidKey(const std::string& key, ApiError* err);

// True when `s` is valid UTF-8 (no overlong forms, surrogates or code
// points past U+10FFFF).
bool ValidUtf8(std::string_view s);

// Applies `op` to `current` (empty when the key has no state) as replica
// `me` at time `now`. On success sets *delta (the envelope to log and
// ship) and *next (current joined with delta). Errors: 409 type_mismatch,
// 404 not_found (delete of a missing key), 400 for invalid values, 422
// out_of_range (counter overflow); for text edits 400 bad_position (a
// position or range past the end of the text at the edit's version) and
// 409 unknown_version (a version naming edits this node has not got).
bool ApplyOperation(const Operation& op, const crdt::Envelope& current, const crdt::ReplicaId& me,
                    crdt::Hlc now, crdt::Envelope* next, crdt::Envelope* delta, ApiError* err);

// The read shape of DESIGN.md §7 for a stored envelope: {"key", "type",
// "value", ...}. *http is 200, 300 (unresolved mvregister) or 404 (no
// value). A text reads as {"key", "type": "text", "value": its content,
// "version": its version token (EncodeTextVersion), "length": code
// points}. *context is set for mvregisters (the X-Causal-Context to send
// back).
//
// An mvregister is shown as its key's policy settles it (`settler`, null
// for none; conflict/settle.h): one sibling, a resolver's or LWW's value
// (200, "resolved_by" and *resolved_by set), or every sibling with
// "reason" (300). Under a register policy with audit it reads as a
// register (its LWW sibling; no context). Each shown sibling is {"value",
// "region", "replica", "hlc", "dot"}.
bool RenderRead(const std::string& key, const crdt::Envelope& env, nlohmann::json* out, int* http,
                std::string* context, ApiError* err, const conflict::Settler* settler = nullptr,
                std::string* resolved_by = nullptr);

// The sibling list of a settled mvregister, as RenderRead shows it.
nlohmann::json RenderSiblings(const conflict::Settled& settled);

// Points a write at the type its key's policy gives (`policy` may be
// null: no change): a /v1/kv write takes the policy's register type (an
// audited register is stored as an mvregister); any other route must name
// the policy's type. False with 409 type_mismatch otherwise.
bool ApplyPolicyType(const conflict::Policy* policy, Operation* op, ApiError* err);

// RenderRead's JSON as compact text: byte for byte what RenderRead's *out
// gives with dump(-1, ' ', false, json::error_handler_t::replace). Fails as
// RenderRead does. Registers holding a string, integer, boolean or null
// are written directly (no JSON tree: the watch feed renders every
// change); everything else goes through RenderRead.
bool RenderReadText(const std::string& key, const crdt::Envelope& env, std::string* out,
                    ApiError* err);

// JSON value <-> stored bytes.
std::string ValueToBytes(const nlohmann::json& v);
bool BytesToValue(const std::string& bytes, nlohmann::json* out);

// X-Causal-Context: base64url (no padding) of the context's encoding.
std::string EncodeContextHeader(const crdt::CausalContext& ctx);
bool DecodeContextHeader(const std::string& text, crdt::CausalContext* out);

// base64url without padding (RFC 4648 §5), as the headers and tokens
// above use it. UnBase64Url is false on any other character or on
// non-zero trailing bits.
std::string Base64Url(const std::string& in);
bool UnBase64Url(const std::string& in, std::string* out);

// A text version as clients see it ("version" in text reads, write replies
// and requests): base64url (no padding) of TextVersion::Encode(), like
// X-Causal-Context.
std::string EncodeTextVersion(const crdt::TextVersion& v);
bool DecodeTextVersion(const std::string& text, crdt::TextVersion* out);

// The read shape of a text state ({"key", "type", "value", "version",
// "length"}), also for a text with no visible character; `state` null is a
// never-written key (empty text, empty version). False (and a 500
// corrupt_state) when the state does not decode.
bool RenderText(const std::string& key, const crdt::TypedState* state, nlohmann::json* out,
                ApiError* err);

std::string TypeName(uint8_t tag);

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_OPERATION_H_
