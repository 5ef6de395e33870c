#include "crdt/set.h"

#include <algorithm>

namespace meridian::crdt {

std::vector<std::string> SetStore::Values() const {
  std::vector<std::string> out;
  out.reserve(elements.size());
  for (const auto& entry : elements) out.push_back(entry.first);
  return out;
}

Status SetStore::UpdateDelta(const CausalContext& ctx, const ReplicaId& replica,
                             const std::vector<std::string>& adds,
                             const std::vector<std::string>& removes, SetStore* dstore,
                             CausalContext* dctx) const {
  for (const auto* list : {&adds, &removes}) {
    for (const std::string& e : *list) {
      if (e.size() > kMaxSetElementBytes) {
        return Status::InvalidArgument("set element of " + std::to_string(e.size()) +
                                       " bytes exceeds the limit of " +
                                       std::to_string(kMaxSetElementBytes));
      }
    }
  }
  SetStore ds;
  CausalContext dc;
  auto observe = [&](const std::string& e) {
    auto it = elements.find(e);
    if (it == elements.end()) return;
    for (const Dot& d : it->second) dc.Add(d);
  };
  for (const std::string& e : removes) observe(e);
  uint64_t next = ctx.Max(replica);
  for (const std::string& e : adds) {
    if (ds.elements.count(e)) continue;  // added twice in one update: one dot
    observe(e);
    Dot d{replica, ++next};
    dc.Add(d);
    ds.elements[e] = {d};
  }
  *dstore = std::move(ds);
  *dctx = std::move(dc);
  return Status::OK();
}

SetStore SetStore::Join(const SetStore& a, const CausalContext& ca, const SetStore& b,
                        const CausalContext& cb) {
  SetStore out;
  out.elements = JoinKeyed(
      a.elements, b.elements,
      [&](const std::string&, const DotSet& x, const DotSet& y) {
        return JoinDotSets(x, ca, y, cb);
      },
      [](const DotSet& d) { return !d.empty(); });
  return out;
}

void SetStore::CollectDots(DotSet* out) const {
  for (const auto& entry : elements) out->insert(entry.second.begin(), entry.second.end());
}

void SetStore::Encode(Encoder* e) const {
  e->Array(static_cast<uint32_t>(elements.size()));
  for (const auto& [element, dots] : elements) {
    e->Array(2);
    e->Bin(element);
    EncodeDotSet(dots, e);
  }
}

Status SetStore::Decode(const Cursor& c, SetStore* out) {
  out->elements.clear();
  std::vector<Cursor> items;
  MERIDIAN_RETURN_IF_ERROR(c.Array(&items, "set elements"));
  std::vector<Cursor> pair;
  for (const Cursor& item : items) {
    MERIDIAN_RETURN_IF_ERROR(item.Array(&pair, "set entry", 2));
    std::string element;
    MERIDIAN_RETURN_IF_ERROR(pair[0].Bin(&element, "set element"));
    if (element.size() > kMaxSetElementBytes) return Status::Corruption("set element too long");
    if (!out->elements.empty() && !(out->elements.rbegin()->first < element)) {
      return Status::Corruption("set elements are not in strictly ascending order");
    }
    DotSet dots;
    MERIDIAN_RETURN_IF_ERROR(DecodeDotSet(pair[1], &dots));
    if (dots.empty()) return Status::Corruption("set element without dots");
    out->elements.emplace_hint(out->elements.end(), std::move(element), std::move(dots));
  }
  return Status::OK();
}

Status Set::Update(const ReplicaId& replica, const std::vector<std::string>& adds,
                   const std::vector<std::string>& removes, Set* delta) const {
  SetStore ds;
  CausalContext dc;
  MERIDIAN_RETURN_IF_ERROR(store_.UpdateDelta(ctx_, replica, adds, removes, &ds, &dc));
  *delta = Set();
  Assign(delta, std::move(ds), std::move(dc));
  return Status::OK();
}

Set Set::Delete() const {
  Set delta;
  RemoveAllDelta(&delta);
  return delta;
}

}  // namespace meridian::crdt
