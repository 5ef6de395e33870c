#include "crdt/map.h"

#include <set>

namespace meridian::crdt {

bool IsFieldType(uint64_t tag) {
  return tag == static_cast<uint64_t>(FieldType::kRegister) ||
         tag == static_cast<uint64_t>(FieldType::kCounter) ||
         tag == static_cast<uint64_t>(FieldType::kSet) ||
         tag == static_cast<uint64_t>(FieldType::kFlag);
}

std::string_view FieldTypeName(FieldType t) {
  switch (t) {
    case FieldType::kRegister: return "register";
    case FieldType::kCounter: return "counter";
    case FieldType::kSet: return "set";
    case FieldType::kFlag: return "flag";
  }
  return "unknown";
}

namespace {

// The nested store a field of type `t` holds.
template <class F>
auto VisitFieldType(FieldType t, F&& f) {
  switch (t) {
    case FieldType::kCounter: return f(CounterStore());
    case FieldType::kSet: return f(SetStore());
    case FieldType::kFlag: return f(FlagStore());
    case FieldType::kRegister: break;
  }
  return f(DottedRegisterStore());
}

// The store of type S in `fs`, or an empty one (JoinKeyed hands a missing
// side in as a default FieldStore, whose alternative may differ).
template <class S>
const S& StoreAs(const FieldStore& fs) {
  static const S kEmpty{};
  const S* s = std::get_if<S>(&fs);
  return s ? *s : kEmpty;
}

bool FieldIsBottom(const FieldStore& fs) {
  return std::visit([](const auto& s) { return s.IsBottom(); }, fs);
}

bool FieldHasValue(const FieldStore& fs) {
  return std::visit([](const auto& s) { return s.HasValue(); }, fs);
}

}  // namespace

std::map<FieldKey, FieldValue> MapStore::Values() const {
  std::map<FieldKey, FieldValue> out;
  for (const auto& [key, fs] : fields) {
    if (!FieldHasValue(fs)) continue;
    FieldValue v;
    v.type = key.type;
    if (const auto* r = std::get_if<DottedRegisterStore>(&fs)) {
      const TimedValue* w = r->Winner();
      v.reg = w->value;
      v.reg_hlc = w->hlc;
    } else if (const auto* c = std::get_if<CounterStore>(&fs)) {
      v.counter = c->Value();
    } else if (const auto* s = std::get_if<SetStore>(&fs)) {
      v.elements = s->Values();
    } else {
      v.flag = true;
    }
    out.emplace_hint(out.end(), key, std::move(v));
  }
  return out;
}

MapStore MapStore::Join(const MapStore& a, const CausalContext& ca, const MapStore& b,
                        const CausalContext& cb) {
  MapStore out;
  out.fields = JoinKeyed(
      a.fields, b.fields,
      [&](const FieldKey& key, const FieldStore& x, const FieldStore& y) -> FieldStore {
        return VisitFieldType(key.type, [&](auto empty) -> FieldStore {
          using S = decltype(empty);
          return S::Join(StoreAs<S>(x), ca, StoreAs<S>(y), cb);
        });
      },
      [](const FieldStore& fs) { return !FieldIsBottom(fs); });
  return out;
}

bool MapStore::HasValue() const {
  for (const auto& entry : fields) {
    if (FieldHasValue(entry.second)) return true;
  }
  return false;
}

void MapStore::CollectDots(DotSet* out) const {
  for (const auto& entry : fields) {
    std::visit([&](const auto& s) { s.CollectDots(out); }, entry.second);
  }
}

MapStore MapStore::RemoveDelta() const {
  MapStore out;
  for (const auto& [key, fs] : fields) {
    FieldStore removed = std::visit([](const auto& s) -> FieldStore { return s.RemoveDelta(); }, fs);
    if (!FieldIsBottom(removed)) out.fields.emplace_hint(out.fields.end(), key, std::move(removed));
  }
  return out;
}

void MapStore::Encode(Encoder* e) const {
  e->Array(static_cast<uint32_t>(fields.size()));
  for (const auto& [key, fs] : fields) {
    e->Array(3);
    e->Str(key.name);
    e->Uint(static_cast<uint8_t>(key.type));
    std::visit([&](const auto& s) { s.Encode(e); }, fs);
  }
}

Status MapStore::Decode(const Cursor& c, MapStore* out) {
  out->fields.clear();
  std::vector<Cursor> items;
  MERIDIAN_RETURN_IF_ERROR(c.Array(&items, "map fields"));
  std::vector<Cursor> f;
  for (const Cursor& item : items) {
    MERIDIAN_RETURN_IF_ERROR(item.Array(&f, "map field", 3));
    FieldKey key;
    MERIDIAN_RETURN_IF_ERROR(f[0].Str(&key.name, "map field name"));
    if (key.name.size() > kMaxMapFieldNameBytes) {
      return Status::Corruption("map field name too long");
    }
    uint64_t tag = 0;
    MERIDIAN_RETURN_IF_ERROR(f[1].Uint(&tag, "map field type"));
    if (!IsFieldType(tag)) {
      return Status::Corruption("map field '" + key.name + "' has unknown type " +
                                std::to_string(tag));
    }
    key.type = static_cast<FieldType>(tag);
    if (!out->fields.empty() && !(out->fields.rbegin()->first < key)) {
      return Status::Corruption("map fields are not in strictly ascending order");
    }
    FieldStore fs;
    Status st = VisitFieldType(key.type, [&](auto empty) -> Status {
      using S = decltype(empty);
      S s;
      MERIDIAN_RETURN_IF_ERROR(S::Decode(f[2], &s));
      fs = std::move(s);
      return Status::OK();
    });
    MERIDIAN_RETURN_IF_ERROR(st.WithContext("map field '" + key.name + "'"));
    if (FieldIsBottom(fs)) return Status::Corruption("map field '" + key.name + "' is empty");
    out->fields.emplace_hint(out->fields.end(), std::move(key), std::move(fs));
  }
  return Status::OK();
}

Status Map::Update(const ReplicaId& replica, Hlc hlc, const std::vector<FieldOp>& ops,
                   const std::vector<std::string>& remove, Map* delta) const {
  for (const FieldOp& op : ops) {
    if (op.name.size() > kMaxMapFieldNameBytes) {
      return Status::InvalidArgument("map field name longer than " +
                                     std::to_string(kMaxMapFieldNameBytes) + " bytes");
    }
  }
  Map out;
  // Removals: every field of each named name, as observed.
  std::set<std::string> names(remove.begin(), remove.end());
  MapStore removed;
  CausalContext removed_ctx;
  for (const auto& entry : store_.fields) {
    const FieldKey& key = entry.first;  // named: structured bindings cannot be captured
    if (!names.count(key.name)) continue;
    DotSet dots;
    std::visit([&](const auto& s) {
      s.CollectDots(&dots);
      FieldStore r = s.RemoveDelta();
      if (!FieldIsBottom(r)) removed.fields.emplace(key, std::move(r));
    }, entry.second);
    for (const Dot& d : dots) removed_ctx.Add(d);
  }
  Assign(&out, std::move(removed), std::move(removed_ctx));

  // Updates, each against the state as the earlier ops of this update
  // left it, so that every op gets its own dot.
  Map working = *this;
  working.Merge(out);
  for (const FieldOp& op : ops) {
    FieldKey key{op.name, op.type};
    auto it = working.store_.fields.find(key);
    static const FieldStore kNone;
    const FieldStore& current = it == working.store_.fields.end() ? kNone : it->second;
    FieldStore ds;
    CausalContext dc;
    Status st;
    switch (op.type) {
      case FieldType::kRegister: {
        DottedRegisterStore d;
        st = StoreAs<DottedRegisterStore>(current).SetDelta(working.ctx_, replica, hlc, op.value,
                                                            &d, &dc);
        ds = std::move(d);
        break;
      }
      case FieldType::kCounter: {
        CounterStore d;
        st = StoreAs<CounterStore>(current).IncrementDelta(working.ctx_, replica, op.add, &d, &dc);
        ds = std::move(d);
        break;
      }
      case FieldType::kSet: {
        SetStore d;
        st = StoreAs<SetStore>(current).UpdateDelta(working.ctx_, replica, op.sadd, op.srem, &d,
                                                    &dc);
        ds = std::move(d);
        break;
      }
      case FieldType::kFlag: {
        FlagStore d;
        if (op.enable) {
          StoreAs<FlagStore>(current).EnableDelta(working.ctx_, replica, &d, &dc);
        } else {
          StoreAs<FlagStore>(current).DisableDelta(&d, &dc);
        }
        ds = std::move(d);
        break;
      }
      default:
        st = Status::InvalidArgument("unknown map field type");
    }
    MERIDIAN_RETURN_IF_ERROR(st.WithContext("map field '" + op.name + "'"));
    Map step;
    MapStore ms;
    if (!FieldIsBottom(ds)) ms.fields.emplace(key, std::move(ds));
    Assign(&step, std::move(ms), std::move(dc));
    working.Merge(step);
    out.Merge(step);
  }
  *delta = std::move(out);
  return Status::OK();
}

Map Map::Delete() const {
  Map delta;
  RemoveAllDelta(&delta);
  return delta;
}

}  // namespace meridian::crdt
