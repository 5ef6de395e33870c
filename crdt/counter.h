// counter: a PN-counter with observed-remove delete.
//
// Each replica keeps one entry of cumulative increments (p) and decrements
// (n), both within int64, joined by maximum. Delete records, as `removed`,
// the entries it observed; the value is the sum of (entry - removed), so an
// increment concurrent with a delete survives alone (Riak map semantics),
// and nothing is ever subtracted twice. Presence follows dots: each
// replica's latest increment holds one dot (replacing its previous one);
// delete removes the dots it saw. A counter is absent when no dot is left.
//
// `removed` entries are tombstones: they stay until the causal-stability
// collection of DESIGN.md §4 may drop them.
#ifndef MERIDIAN_CRDT_COUNTER_H_
#define MERIDIAN_CRDT_COUNTER_H_

#include <cstdint>
#include <map>
#include <string_view>

#include "crdt/causal.h"

namespace meridian::crdt {

struct PnEntry {
  uint64_t p = 0;  // <= INT64_MAX
  uint64_t n = 0;  // <= INT64_MAX
  bool operator==(const PnEntry& o) const { return p == o.p && n == o.n; }
};

struct CounterStore {
  DotSet dots;                              // presence: latest dot per incrementing replica
  std::map<ReplicaId, PnEntry> entries;     // cumulative, joined by max
  std::map<ReplicaId, PnEntry> removed;     // observed at deletes; <= entries

  bool present() const { return !dots.empty(); }
  // Sum of (entries - removed), saturated to the int64 range (only
  // concurrent increments from several replicas can leave it).
  int64_t Value() const;

  // Delta parts for adding `amount` (may be negative) at `replica`.
  // Refuses, with OutOfRange, an entry or a value that would leave int64.
  Status IncrementDelta(const CausalContext& ctx, const ReplicaId& replica, int64_t amount,
                        CounterStore* dstore, CausalContext* dctx) const;

  static CounterStore Join(const CounterStore& a, const CausalContext& ca,
                           const CounterStore& b, const CausalContext& cb);
  bool IsBottom() const { return dots.empty() && entries.empty() && removed.empty(); }
  bool HasValue() const { return present(); }
  void CollectDots(DotSet* out) const { out->insert(dots.begin(), dots.end()); }
  // Removing observes every entry: removed := entries.
  CounterStore RemoveDelta() const;
  // Encoding: [[dot...], [[node, inc, p, n]...], [[node, inc, p, n]...]],
  // entries ascending by replica; zero entries are never written.
  void Encode(Encoder* e) const;
  static Status Decode(const Cursor& c, CounterStore* out);
  bool operator==(const CounterStore& o) const {
    return dots == o.dots && entries == o.entries && removed == o.removed;
  }
};

class Counter : public Causal<CounterStore> {
 public:
  static constexpr uint8_t kTag = 3;  // wire tag; DO NOT CHANGE
  static constexpr std::string_view kName = "counter";

  int64_t Value() const { return store_.Value(); }
  bool present() const { return store_.present(); }

  // Mutators return a delta and leave this state unchanged.
  Status Increment(const ReplicaId& replica, int64_t amount, Counter* delta) const;
  Counter Delete() const;

  static Status Decode(std::string_view bytes, Counter* out) { return DecodeAs(bytes, out); }
};

}  // namespace meridian::crdt

#endif  // MERIDIAN_CRDT_COUNTER_H_
