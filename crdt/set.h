// set: an add-wins observed-remove set of byte strings. Each add gives the
// element a fresh dot (replacing the dots of that element it has seen); a
// remove deletes the element's dots it has seen. An element is present
// while it holds a dot, so an add concurrent with a remove survives.
#ifndef MERIDIAN_CRDT_SET_H_
#define MERIDIAN_CRDT_SET_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/causal.h"

namespace meridian::crdt {

constexpr size_t kMaxSetElementBytes = 1 << 20;

struct SetStore {
  std::map<std::string, DotSet> elements;  // element -> its live dots (never empty)

  bool Contains(std::string_view e) const { return elements.count(std::string(e)) > 0; }
  std::vector<std::string> Values() const;  // ascending byte order

  // Delta parts: add `adds` at `replica` (one fresh dot each), remove
  // `removes` (their observed dots). An element named in both is added.
  Status UpdateDelta(const CausalContext& ctx, const ReplicaId& replica,
                     const std::vector<std::string>& adds, const std::vector<std::string>& removes,
                     SetStore* dstore, CausalContext* dctx) const;

  static SetStore Join(const SetStore& a, const CausalContext& ca, const SetStore& b,
                       const CausalContext& cb);
  bool IsBottom() const { return elements.empty(); }
  bool HasValue() const { return !elements.empty(); }
  void CollectDots(DotSet* out) const;
  SetStore RemoveDelta() const { return SetStore(); }
  // Encoding: [[bin element, [dot...]]...] ascending by element.
  void Encode(Encoder* e) const;
  static Status Decode(const Cursor& c, SetStore* out);
  bool operator==(const SetStore& o) const { return elements == o.elements; }
};

class Set : public Causal<SetStore> {
 public:
  static constexpr uint8_t kTag = 4;  // wire tag; DO NOT CHANGE
  static constexpr std::string_view kName = "set";

  bool Contains(std::string_view e) const { return store_.Contains(e); }
  std::vector<std::string> Values() const { return store_.Values(); }

  // Mutators return a delta and leave this state unchanged. Elements
  // longer than kMaxSetElementBytes are refused.
  Status Update(const ReplicaId& replica, const std::vector<std::string>& adds,
                const std::vector<std::string>& removes, Set* delta) const;
  Status Add(const ReplicaId& replica, std::string element, Set* delta) const {
    return Update(replica, {std::move(element)}, {}, delta);
  }
  Status Remove(std::string element, Set* delta) const {
    return Update(ReplicaId(), {}, {std::move(element)}, delta);
  }
  Set Delete() const;

  static Status Decode(std::string_view bytes, Set* out) { return DecodeAs(bytes, out); }
};

}  // namespace meridian::crdt

#endif  // MERIDIAN_CRDT_SET_H_
