#include "node/operation.h"

#include <cstring>
#include <string_view>

#include <nlohmann/json.hpp>

#include "crdt/counter.h"
#include "crdt/flag.h"
#include "crdt/map.h"
#include "crdt/mvregister.h"
#include "crdt/register.h"
#include "crdt/registry.h"
#include "crdt/set.h"
#include "crdt/text.h"

namespace meridian::node {

using crdt::Envelope;
using crdt::TypedState;
using nlohmann::json;

namespace {

ApiError Error(int http, std::string code, std::string message) {
  return ApiError{http, std::move(code), std::move(message)};
}

ApiError FromStatus(const Status& st) {
  switch (st.code()) {
    case Status::Code::kInvalidArgument: return Error(400, "bad_request", st.message());
    case Status::Code::kOutOfRange: return Error(422, "out_of_range", st.message());
    case Status::Code::kCorruption: return Error(500, "corrupt_state", st.message());
    default: return Error(500, "internal", st.ToString());
  }
}

// Decodes the stored state of type T (or an empty one).
template <class T>
bool Load(const TypedState* ts, T* out, ApiError* err) {
  *out = T();
  if (ts == nullptr) return true;
  Status st = T::Decode(ts->state, out);
  if (!st.ok()) {
    *err = FromStatus(st);
    return false;
  }
  return true;
}

// A stored text is this node's own encoding: its order is loaded as it
// is, not derived again (crdt/text.h, DecodeTrusted).
template <>
bool Load(const TypedState* ts, crdt::Text* out, ApiError* err) {
  *out = crdt::Text();
  if (ts == nullptr) return true;
  Status st = crdt::Text::DecodeTrusted(ts->state, out);
  if (!st.ok()) {
    *err = FromStatus(st);
    return false;
  }
  return true;
}

// Decodes the held state of type T, runs `mutator(state, &delta)`, and
// returns the encoded delta and the encoded joined state: each state is
// decoded once and encoded once per write.
template <class T, class F>
bool MutateAs(const TypedState* ts, F&& mutator, std::string* delta_bytes,
              std::string* next_bytes, ApiError* err) {
  T s, d;
  if (!Load(ts, &s, err)) return false;
  Status st = mutator(s, &d);
  if (!st.ok()) {
    *err = FromStatus(st);
    return false;
  }
  *delta_bytes = d.Encode();
  s.Merge(d);
  *next_bytes = s.Encode();
  return true;
}

// A text edit or delete. Text's edits change the state they are called on
// and give the delta besides, so the state is not joined with the delta
// again.
bool MutateText(const Operation& op, const TypedState* ts, const crdt::ReplicaId& me,
                std::string* delta_bytes, std::string* next_bytes, ApiError* err) {
  crdt::Text s, d;
  if (!Load(ts, &s, err)) return false;
  Status st;
  if (op.kind == Operation::Kind::kDelete) {
    st = s.DeleteAll(me, &d);
  } else if (op.kind == Operation::Kind::kTextEdit) {
    st = s.Apply(me, op.text_at ? &*op.text_at : nullptr, op.text_edits, &d);
  } else if (op.kind == Operation::Kind::kTextMerge) {
    st = crdt::Text::Decode(op.text_state, &d);
    if (!st.ok()) {
      *err = Error(400, "bad_request", "not a text in its wire form: " + st.message());
      return false;
    }
    s.Merge(d);
  } else {
    st = Status::InvalidArgument("a text takes inserts and deletes (POST /v1/text/KEY)");
  }
  if (!st.ok()) {
    switch (st.code()) {
      case Status::Code::kInvalidArgument:
        *err = Error(400, op.kind == Operation::Kind::kTextEdit ? "bad_position" : "bad_request",
                     st.message());
        break;
      case Status::Code::kFailedPrecondition:
        *err = Error(409, "unknown_version",
                     "the version names edits this node has not got yet (" + st.message() +
                         "); read the text again, or retry once they have replicated");
        break;
      default: *err = FromStatus(st);
    }
    return false;
  }
  *delta_bytes = d.Encode();
  *next_bytes = s.Encode();
  return true;
}

// The typed mutation for `op` on a state of type `tag`.
bool Mutate(const Operation& op, uint8_t tag, const TypedState* ts, const crdt::ReplicaId& me,
            crdt::Hlc now, std::string* delta_bytes, std::string* next_bytes, ApiError* err) {
  const bool del = op.kind == Operation::Kind::kDelete;
  const crdt::CausalContext* ctx = op.context ? &*op.context : nullptr;
  auto run = [&](auto empty, auto&& mutator) {
    using T = decltype(empty);
    return MutateAs<T>(ts, mutator, delta_bytes, next_bytes, err);
  };
  switch (tag) {
    case crdt::Register::kTag:
      return run(crdt::Register(), [&](const crdt::Register& s, crdt::Register* d) {
        return del ? s.Delete(now, me, d) : s.Set(now, me, op.value, d);
      });
    case crdt::MvRegister::kTag:
      return run(crdt::MvRegister(), [&](const crdt::MvRegister& s, crdt::MvRegister* d) {
        if (!del) return s.Write(me, now, op.value, ctx, d);
        *d = s.Delete(ctx);
        return Status::OK();
      });
    case crdt::Counter::kTag:
      return run(crdt::Counter(), [&](const crdt::Counter& s, crdt::Counter* d) {
        if (!del) return s.Increment(me, op.amount, d);
        *d = s.Delete();
        return Status::OK();
      });
    case crdt::Set::kTag:
      return run(crdt::Set(), [&](const crdt::Set& s, crdt::Set* d) {
        if (!del) return s.Update(me, op.adds, op.removes, d);
        *d = s.Delete();
        return Status::OK();
      });
    case crdt::Map::kTag:
      return run(crdt::Map(), [&](const crdt::Map& s, crdt::Map* d) {
        if (!del) return s.Update(me, now, op.field_ops, op.field_removes, d);
        *d = s.Delete();
        return Status::OK();
      });
    case crdt::Text::kTag:
      return MutateText(op, ts, me, delta_bytes, next_bytes, err);
    default:
      *err = Error(400, "unknown_type", "unknown type tag " + std::to_string(tag));
      return false;
  }
}

bool HasValue(const TypedState* ts) {
  return ts != nullptr && crdt::StateHasValue(ts->tag, ts->state);
}

const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

}  // namespace

std::string Base64Url(const std::string& in) {
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out.push_back(kB64[(v >> k) & 63]);
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(kB64[(v >> 6) & 63]);
  }
  return out;
}

bool UnBase64Url(const std::string& in, std::string* out) {
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const char* p = c == '\0' ? nullptr : std::strchr(kB64, c);
    if (p == nullptr) return false;
    acc = (acc << 6) | static_cast<uint32_t>(p - kB64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return bits < 6 && (acc & ((1u << bits) - 1)) == 0;
}

namespace {

bool Utf8Valid(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int extra;
    uint32_t cp;
    if ((c >> 5) == 6) {
      extra = 1;
      cp = c & 0x1f;
    } else if ((c >> 4) == 14) {
      extra = 2;
      cp = c & 0x0f;
    } else if ((c >> 3) == 30) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + static_cast<size_t>(extra) >= n) return false;
    for (int k = 1; k <= extra; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      if ((cc >> 6) != 2) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) ||
        (extra == 3 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += static_cast<size_t>(extra) + 1;
  }
  return true;
}

json ValueOrNull(const std::string& bytes) {
  json v;
  if (!BytesToValue(bytes, &v)) return json();
  return v;
}

std::string ReplicaName(const crdt::ReplicaId& r) { return r.ToString(); }

json RenderField(const crdt::FieldValue& f) {
  json v;
  switch (f.type) {
    case crdt::FieldType::kRegister: v = ValueOrNull(f.reg); break;
    case crdt::FieldType::kCounter: v = f.counter; break;
    case crdt::FieldType::kSet: {
      v = json::array();
      for (const auto& e : f.elements) v.push_back(ValueOrNull(e));
      break;
    }
    case crdt::FieldType::kFlag: v = f.flag; break;
  }
  return json{{"type", std::string(crdt::FieldTypeName(f.type))}, {"value", v}};
}

// Appends `s` as a JSON string the way nlohmann's dump does with
// ensure_ascii = false: '"', '\\' and control characters escaped (\b \t \n
// \f \r, the others as \u00xx), everything else as is. False (with *out
// partly written) when `s` is not valid UTF-8: dump would replace the bad
// bytes, and the caller falls back to it.
bool AppendJsonString(std::string_view s, std::string* out) {
  static const char kHex[] = "0123456789abcdef";
  bool ascii = true;
  out->push_back('"');
  size_t run = 0;  // start of the bytes not yet copied
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      ascii = false;
      continue;
    }
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\b': out->append("\\b"); break;
      case '\t': out->append("\\t"); break;
      case '\n': out->append("\\n"); break;
      case '\f': out->append("\\f"); break;
      case '\r': out->append("\\r"); break;
      default:
        out->append("\\u00");
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 15]);
    }
  }
  out->append(s.data() + run, s.size() - run);
  out->push_back('"');
  return ascii || Utf8Valid(s);
}

// Appends the JSON text of a stored value (ValueToBytes' msgpack) that is a
// string, an integer, a boolean or null, exactly as BytesToValue and dump
// would render it. False for anything else (floats, arrays, maps, binary,
// malformed or trailing bytes, strings that are not UTF-8): the caller
// then renders it through nlohmann.
bool AppendScalarValue(std::string_view b, std::string* out) {
  if (b.empty()) return false;
  const unsigned char t = static_cast<unsigned char>(b[0]);
  auto be = [&](size_t n, uint64_t* v) {  // big-endian n bytes after the type byte
    if (b.size() != 1 + n) return false;
    *v = 0;
    for (size_t i = 1; i <= n; ++i) *v = (*v << 8) | static_cast<unsigned char>(b[i]);
    return true;
  };
  auto str = [&](size_t len_bytes) {
    if (b.size() < 1 + len_bytes) return false;
    size_t len = 0;
    for (size_t i = 1; i <= len_bytes; ++i) len = (len << 8) | static_cast<unsigned char>(b[i]);
    if (b.size() - 1 - len_bytes != len) return false;
    return AppendJsonString(b.substr(1 + len_bytes), out);
  };
  uint64_t u = 0;
  if (t <= 0x7f) {
    if (b.size() != 1) return false;
    out->append(std::to_string(t));
    return true;
  }
  if (t >= 0xe0) {
    if (b.size() != 1) return false;
    out->append(std::to_string(static_cast<int>(static_cast<int8_t>(t))));
    return true;
  }
  if (t >= 0xa0 && t <= 0xbf) {
    const size_t len = t & 0x1f;
    if (b.size() != 1 + len) return false;
    return AppendJsonString(b.substr(1), out);
  }
  switch (t) {
    case 0xc0: out->append("null"); return b.size() == 1;
    case 0xc2: out->append("false"); return b.size() == 1;
    case 0xc3: out->append("true"); return b.size() == 1;
    case 0xcc: if (!be(1, &u)) return false; out->append(std::to_string(u)); return true;
    case 0xcd: if (!be(2, &u)) return false; out->append(std::to_string(u)); return true;
    case 0xce: if (!be(4, &u)) return false; out->append(std::to_string(u)); return true;
    case 0xcf: if (!be(8, &u)) return false; out->append(std::to_string(u)); return true;
    case 0xd0:
      if (!be(1, &u)) return false;
      out->append(std::to_string(static_cast<int8_t>(u)));
      return true;
    case 0xd1:
      if (!be(2, &u)) return false;
      out->append(std::to_string(static_cast<int16_t>(u)));
      return true;
    case 0xd2:
      if (!be(4, &u)) return false;
      out->append(std::to_string(static_cast<int32_t>(u)));
      return true;
    case 0xd3:
      if (!be(8, &u)) return false;
      out->append(std::to_string(static_cast<int64_t>(u)));
      return true;
    case 0xd9: return str(1);
    case 0xda: return str(2);
    case 0xdb: return str(4);
    default: return false;
  }
}

// The register case of RenderReadText without a JSON tree; false when it
// does not apply (the caller then takes the general path, which also
// produces every error).
bool RegisterText(const std::string& key, const TypedState& w, std::string* out) {
  crdt::Register s;
  if (!crdt::Register::Decode(w.state, &s).ok() || !s.HasValue()) return false;
  // Keys in nlohmann's (sorted) order: hlc, key, type, value, writer.
  std::string text;
  text.reserve(64 + key.size() + s.value().size());
  text.append("{\"hlc\":");
  text.append(std::to_string(s.hlc()));
  text.append(",\"key\":");
  if (!AppendJsonString(key, &text)) return false;
  text.append(",\"type\":\"");
  text.append(crdt::Register::kName);
  text.append("\",\"value\":");
  if (!AppendScalarValue(s.value(), &text)) return false;
  text.append(",\"writer\":");
  if (!AppendJsonString(ReplicaName(s.writer()), &text)) return false;
  text.push_back('}');
  *out = std::move(text);
  return true;
}

}  // namespace

bool RenderReadText(const std::string& key, const Envelope& env, std::string* out,
                    ApiError* err) {
  const TypedState* w = env.winner();
  if (w != nullptr && w->tag == crdt::Register::kTag && RegisterText(key, *w, out)) return true;
  json r;
  int http = 200;
  std::string context;
  if (!RenderRead(key, env, &r, &http, &context, err)) return false;
  *out = r.dump(-1, ' ', false, json::error_handler_t::replace);
  return true;
}

std::string TypeName(uint8_t tag) {
  const crdt::TypeOps* ops = crdt::FindTypeByTag(tag);
  return ops ? std::string(ops->name) : "unknown";
}

bool ValidUtf8(std::string_view s) { return Utf8Valid(s); }

bool ValidKey(const std::string& key, ApiError* err) {
  if (key.empty() || key.size() > kMaxKeyBytes) {
    *err = Error(400, "bad_key", "a key is 1 to " + std::to_string(kMaxKeyBytes) + " bytes");
    return false;
  }
  if (!Utf8Valid(key)) {
    *err = Error(400, "bad_key", "a key must be valid UTF-8");
    return false;
  }
  return true;
}

std::string ValueToBytes(const json& v) {
  std::vector<uint8_t> bytes = json::to_msgpack(v);
  return std::string(bytes.begin(), bytes.end());
}

bool BytesToValue(const std::string& bytes, json* out) {
  try {
    *out = json::from_msgpack(bytes);
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

std::string EncodeContextHeader(const crdt::CausalContext& ctx) {
  crdt::Encoder e(1);
  ctx.Encode(&e);
  return Base64Url(e.bytes());
}

bool DecodeContextHeader(const std::string& text, crdt::CausalContext* out) {
  std::string bytes;
  if (!UnBase64Url(text, &bytes)) return false;
  crdt::Decoder d;
  if (!d.Parse(bytes, 1).ok()) return false;
  return crdt::CausalContext::Decode(d.root(), out).ok();
}

std::string EncodeTextVersion(const crdt::TextVersion& v) { return Base64Url(v.Encode()); }

bool DecodeTextVersion(const std::string& text, crdt::TextVersion* out) {
  std::string bytes;
  if (!UnBase64Url(text, &bytes)) return false;
  return crdt::TextVersion::Decode(bytes, out).ok();
}

bool RenderText(const std::string& key, const TypedState* state, json* out, ApiError* err) {
  crdt::Text s;
  if (!Load(state, &s, err)) return false;
  *out = json{{"key", key},
              {"type", std::string(crdt::Text::kName)},
              {"value", s.Content()},
              {"version", EncodeTextVersion(s.version())},
              {"length", s.Length()}};
  return true;
}

bool ApplyOperation(const Operation& op, const Envelope& current, const crdt::ReplicaId& me,
                    crdt::Hlc now, Envelope* next, Envelope* delta, ApiError* err) {
  const TypedState* w = current.winner();
  uint8_t tag = op.type;
  if (tag == 0) {  // a delete of whatever the key holds (batch "del")
    if (w == nullptr) {
      *err = Error(404, "not_found", "key '" + op.key + "' has no value");
      return false;
    }
    tag = w->tag;
  }
  if (op.kv && w != nullptr &&
      (w->tag == crdt::Register::kTag || w->tag == crdt::MvRegister::kTag)) {
    tag = w->tag;  // /v1/kv writes whichever register the key holds
  }
  if (w != nullptr && w->tag != tag) {
    *err = Error(409, "type_mismatch",
                 "key '" + op.key + "' holds a " + TypeName(w->tag) + "; this request writes a " +
                     TypeName(tag));
    return false;
  }
  if (op.kind == Operation::Kind::kDelete && !HasValue(w)) {
    *err = Error(404, "not_found", "key '" + op.key + "' has no value");
    return false;
  }
  std::string delta_bytes, next_bytes;
  if (!Mutate(op, tag, w, me, now, &delta_bytes, &next_bytes, err)) return false;
  crdt::TypedState ts;
  ts.tag = tag;
  ts.origin_hlc = w ? w->origin_hlc : now;
  ts.origin = w ? w->origin : me;
  // Both encodings come straight from the typed states, so they are
  // canonical and need no second decode.
  *next = current;
  next->PutJoined(ts, std::move(next_bytes));
  *delta = Envelope();
  delta->PutJoined(ts, std::move(delta_bytes));
  return true;
}

json RenderSiblings(const conflict::Settled& settled) {
  json sibs = json::array();
  for (size_t i = 0; i < settled.siblings.size(); ++i) {
    const conflict::Sibling& s = settled.siblings[i];
    sibs.push_back({{"value", s.value},
                    {"region", s.region},
                    {"replica", s.replica},
                    {"hlc", s.hlc},
                    {"dot", settled.dots[i].counter}});
  }
  return sibs;
}

bool ApplyPolicyType(const conflict::Policy* policy, Operation* op, ApiError* err) {
  if (policy == nullptr || (op->kind == Operation::Kind::kDelete && op->type == 0)) return true;
  const bool reg = policy->type == crdt::Register::kName || policy->type == crdt::MvRegister::kName;
  const crdt::TypeOps* ops = crdt::FindTypeByName(policy->type);
  const uint8_t tag = policy->audit || !ops ? crdt::MvRegister::kTag : ops->tag;
  if (op->kv ? reg : op->type == tag) {
    op->type = tag;
    op->kv = false;  // the policy's type, not whichever register the key holds
    return true;
  }
  *err = Error(409, "type_mismatch",
               "key '" + op->key + "' is under the policy for prefix '" + policy->prefix +
                   "', of type " + policy->type + "; write it at /v1/" +
                   (reg ? std::string("kv") : policy->type) + "/");
  return false;
}

bool RenderRead(const std::string& key, const Envelope& env, json* out, int* http,
                std::string* context, ApiError* err, const conflict::Settler* settler,
                std::string* resolved_by) {
  const TypedState* w = env.winner();
  context->clear();
  if (!HasValue(w)) {
    *err = Error(404, "not_found", "key '" + key + "' has no value");
    return false;
  }
  json r = {{"key", key}, {"type", TypeName(w->tag)}};
  *http = 200;
  switch (w->tag) {
    case crdt::Register::kTag: {
      crdt::Register s;
      if (!Load(w, &s, err)) return false;
      r["value"] = ValueOrNull(s.value());
      r["hlc"] = s.hlc();
      r["writer"] = ReplicaName(s.writer());
      break;
    }
    case crdt::MvRegister::kTag: {
      crdt::MvRegister s;
      if (!Load(w, &s, err)) return false;
      static const conflict::Settler kNoPolicies(conflict::PolicySet(), {}, {});
      const conflict::Settler& settle = settler != nullptr ? *settler : kNoPolicies;
      const conflict::Policy* policy = settle.Match(key);
      if (policy != nullptr && policy->audit) {
        // An audited register: its last writer wins.
        const auto* lww = s.LwwWinner();
        r["type"] = std::string(crdt::Register::kName);
        r["value"] = ValueOrNull(lww->second.value);
        r["hlc"] = lww->second.hlc;
        r["writer"] = ReplicaName(lww->first.replica);
        if (s.siblings().size() > 1 && resolved_by != nullptr) *resolved_by = "lww";
        break;
      }
      *context = EncodeContextHeader(s.context());
      if (s.siblings().size() == 1) {
        r["value"] = ValueOrNull(s.siblings().begin()->second.value);
        break;
      }
      conflict::Settled settled = settle.Settle(key, s);
      if (settled.kind == conflict::Settled::Kind::kUnresolved) {
        *http = 300;
        r["siblings"] = RenderSiblings(settled);
        r["reason"] = settled.reason;
      } else {
        r["value"] = settled.value;
        r["resolved_by"] = settled.by;
        if (resolved_by != nullptr) *resolved_by = settled.by;
      }
      break;
    }
    case crdt::Counter::kTag: {
      crdt::Counter s;
      if (!Load(w, &s, err)) return false;
      r["value"] = s.Value();
      break;
    }
    case crdt::Set::kTag: {
      crdt::Set s;
      if (!Load(w, &s, err)) return false;
      json arr = json::array();
      for (const auto& e : s.Values()) arr.push_back(ValueOrNull(e));
      r["value"] = arr;
      break;
    }
    case crdt::Flag::kTag: {
      crdt::Flag s;
      if (!Load(w, &s, err)) return false;
      r["value"] = s.enabled();
      break;
    }
    case crdt::Map::kTag: {
      crdt::Map s;
      if (!Load(w, &s, err)) return false;
      json obj = json::object();
      // Values() is ordered by (name, type): fields of one name are adjacent.
      auto values = s.Values();
      for (auto it = values.begin(); it != values.end();) {
        auto end = it;
        while (end != values.end() && end->first.name == it->first.name) ++end;
        if (std::next(it) == end) {
          obj[it->first.name] = RenderField(it->second);
        } else {
          json types = json::array();
          for (auto k = it; k != end; ++k) types.push_back(RenderField(k->second));
          obj[it->first.name] = {{"types", types}};
        }
        it = end;
      }
      r["value"] = obj;
      break;
    }
    case crdt::Text::kTag: {
      json t;
      if (!RenderText(key, w, &t, err)) return false;
      r = std::move(t);
      break;
    }
    default:
      *err = Error(500, "unknown_type", "stored state has unknown type");
      return false;
  }
  *out = std::move(r);
  return true;
}

}  // namespace meridian::node
