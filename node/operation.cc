#include "node/operation.h"

#include <cstring>

#include <nlohmann/json.hpp>

#include "crdt/counter.h"
#include "crdt/flag.h"
#include "crdt/map.h"
#include "crdt/mvregister.h"
#include "crdt/register.h"
#include "crdt/registry.h"
#include "crdt/set.h"

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
        if (!del) return s.Write(me, op.value, ctx, d);
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
    default:
      *err = Error(400, "unknown_type", "unknown type tag " + std::to_string(tag));
      return false;
  }
}

bool HasValue(const TypedState* ts) {
  if (ts == nullptr) return false;
  const crdt::TypeOps* ops = crdt::FindTypeByTag(ts->tag);
  bool has = false;
  return ops != nullptr && ops->has_value(ts->state, &has).ok() && has;
}

const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

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

bool ValidUtf8(const std::string& s) {
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

}  // namespace

std::string TypeName(uint8_t tag) {
  const crdt::TypeOps* ops = crdt::FindTypeByTag(tag);
  return ops ? std::string(ops->name) : "unknown";
}

bool ValidKey(const std::string& key, ApiError* err) {
  if (key.empty() || key.size() > kMaxKeyBytes) {
    *err = Error(400, "bad_key", "a key is 1 to " + std::to_string(kMaxKeyBytes) + " bytes");
    return false;
  }
  if (!ValidUtf8(key)) {
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

bool RenderRead(const std::string& key, const Envelope& env, json* out, int* http,
                std::string* context, ApiError* err) {
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
      *context = EncodeContextHeader(s.context());
      if (s.siblings().size() == 1) {
        r["value"] = ValueOrNull(s.siblings().begin()->second);
      } else {
        *http = 300;
        json sibs = json::array();
        for (const auto& [dot, value] : s.siblings()) {
          sibs.push_back({{"value", ValueOrNull(value)},
                          {"replica", ReplicaName(dot.replica)},
                          {"dot", dot.counter}});
        }
        r["siblings"] = sibs;
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
    default:
      *err = Error(500, "unknown_type", "stored state has unknown type");
      return false;
  }
  *out = std::move(r);
  return true;
}

}  // namespace meridian::node
