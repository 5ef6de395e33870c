#include "crdt/registry.h"

#include <algorithm>

#include "crdt/counter.h"
#include "crdt/flag.h"
#include "crdt/map.h"
#include "crdt/mvregister.h"
#include "crdt/register.h"
#include "crdt/set.h"
#include "crdt/text.h"

namespace meridian::crdt {

namespace {

template <class T>
struct OpsFor {
  static Status Merge(std::string_view a, std::string_view b, std::string* out) {
    T x, y;
    MERIDIAN_RETURN_IF_ERROR(T::Decode(a, &x).WithContext(std::string(T::kName)));
    MERIDIAN_RETURN_IF_ERROR(T::Decode(b, &y).WithContext(std::string(T::kName)));
    x.Merge(y);
    *out = x.Encode();
    return Status::OK();
  }
  static Status Canonicalize(std::string_view bytes, std::string* out) {
    T x;
    MERIDIAN_RETURN_IF_ERROR(T::Decode(bytes, &x).WithContext(std::string(T::kName)));
    *out = x.Encode();
    return Status::OK();
  }
  static std::string Empty() { return T().Encode(); }
  static Status IsBottom(std::string_view bytes, bool* out) {
    T x;
    MERIDIAN_RETURN_IF_ERROR(T::Decode(bytes, &x).WithContext(std::string(T::kName)));
    *out = x.IsBottom();
    return Status::OK();
  }
  static Status HasValue(std::string_view bytes, bool* out) {
    T x;
    MERIDIAN_RETURN_IF_ERROR(T::Decode(bytes, &x).WithContext(std::string(T::kName)));
    *out = x.HasValue();
    return Status::OK();
  }
  static constexpr TypeOps kOps{T::kTag,   T::kName, &Merge,   &Canonicalize,
                                &Empty,    &IsBottom, &HasValue};
};

const std::vector<const TypeOps*>& Table() {
  static const std::vector<const TypeOps*> table = [] {
    std::vector<const TypeOps*> t = {
        &OpsFor<Register>::kOps,
        &OpsFor<MvRegister>::kOps,
        &OpsFor<Counter>::kOps,
        &OpsFor<Set>::kOps,
        &OpsFor<Map>::kOps,
        &OpsFor<Flag>::kOps,
        &OpsFor<Text>::kOps,
    };
    std::sort(t.begin(), t.end(), [](const TypeOps* a, const TypeOps* b) { return a->tag < b->tag; });
    return t;
  }();
  return table;
}

}  // namespace

const TypeOps* FindTypeByTag(uint8_t tag) {
  for (const TypeOps* t : Table()) {
    if (t->tag == tag) return t;
  }
  return nullptr;
}

const TypeOps* FindTypeByName(std::string_view name) {
  for (const TypeOps* t : Table()) {
    if (t->name == name) return t;
  }
  return nullptr;
}

const std::vector<const TypeOps*>& AllTypes() { return Table(); }

bool StateHasValue(uint8_t tag, std::string_view state) {
  const TypeOps* ops = FindTypeByTag(tag);
  bool has = false;
  return ops != nullptr && ops->has_value(state, &has).ok() && has;
}

}  // namespace meridian::crdt
