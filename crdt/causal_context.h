// Replica identity, dots and per-key causal contexts (DESIGN.md §3).
//
// A replica is (node id, incarnation): a node that lost its data comes
// back as a new incarnation, so its dots and counter entries never collide
// with those of its earlier life. A dot names one event of one replica for
// one key. A causal context is the set of dots a state has seen, kept as a
// version vector (every counter 1..n of a replica) plus a cloud of dots
// beyond it; Compact() moves cloud dots into the vector when they become
// contiguous, so equal dot sets have one representation and encode to
// equal bytes.
#ifndef MERIDIAN_CRDT_CAUSAL_CONTEXT_H_
#define MERIDIAN_CRDT_CAUSAL_CONTEXT_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <tuple>

#include "crdt/codec.h"
#include "crdt/status.h"

namespace meridian::crdt {

// Limits applied when decoding untrusted bytes.
constexpr size_t kMaxNodeIdBytes = 256;

struct ReplicaId {
  std::string node;
  uint64_t incarnation = 0;

  bool operator==(const ReplicaId& o) const {
    return incarnation == o.incarnation && node == o.node;
  }
  bool operator!=(const ReplicaId& o) const { return !(*this == o); }
  // Node id first, then incarnation: the LWW tie-break order.
  bool operator<(const ReplicaId& o) const {
    return std::tie(node, incarnation) < std::tie(o.node, o.incarnation);
  }
  std::string ToString() const;  // "us-east-1#7"
};

struct Dot {
  ReplicaId replica;
  uint64_t counter = 0;  // >= 1

  bool operator==(const Dot& o) const { return counter == o.counter && replica == o.replica; }
  bool operator!=(const Dot& o) const { return !(*this == o); }
  bool operator<(const Dot& o) const {
    return std::tie(replica, counter) < std::tie(o.replica, o.counter);
  }
  std::string ToString() const;  // "us-east-1#7:12"
};

using DotSet = std::set<Dot>;

// Encoding: [str node, uint incarnation]. Decoding refuses empty or
// over-long node ids.
void EncodeReplica(const ReplicaId& r, Encoder* e);
Status DecodeReplica(const Cursor& c, ReplicaId* r);
// Encoding: [str node, uint incarnation, uint counter >= 1].
void EncodeDot(const Dot& d, Encoder* e);
Status DecodeDot(const Cursor& c, Dot* d);
// Encoding: array of dots in ascending order. Decoding requires strictly
// ascending dots (canonical form; no duplicates).
void EncodeDotSet(const DotSet& s, Encoder* e);
Status DecodeDotSet(const Cursor& c, DotSet* s);

class CausalContext {
 public:
  CausalContext() = default;

  bool Contains(const Dot& d) const;
  // Adds one dot (and compacts that replica's entries).
  void Add(const Dot& d);
  // Set union with `other`.
  void Merge(const CausalContext& other);
  // Set intersection with `other` (clamping a client's context to what
  // this state has seen).
  CausalContext Intersect(const CausalContext& other) const;
  // True when every dot of `other` is in this context.
  bool Covers(const CausalContext& other) const;

  // The highest counter of `r` in this context (0 if none).
  uint64_t Max(const ReplicaId& r) const;
  // One past `r`'s highest counter: the next dot `r` issues for this key.
  Dot NextDot(const ReplicaId& r) const;

  bool empty() const { return vv_.empty() && cloud_.empty(); }
  const std::map<ReplicaId, uint64_t>& vv() const { return vv_; }
  const DotSet& cloud() const { return cloud_; }

  bool operator==(const CausalContext& o) const { return vv_ == o.vv_ && cloud_ == o.cloud_; }
  bool operator!=(const CausalContext& o) const { return !(*this == o); }

  // Encoding: [[[node, incarnation, max]...ascending], [dot...ascending]],
  // always compacted. Decoding rejects a non-canonical form (unsorted,
  // duplicate, zero counters, cloud dots that belong in the vector).
  void Encode(Encoder* e) const;
  static Status Decode(const Cursor& c, CausalContext* out);

  std::string ToString() const;

 private:
  void CompactReplica(const ReplicaId& r);

  std::map<ReplicaId, uint64_t> vv_;  // replica -> n: dots 1..n present; n >= 1
  DotSet cloud_;                      // dots not contiguous with vv_
};

}  // namespace meridian::crdt

#endif  // MERIDIAN_CRDT_CAUSAL_CONTEXT_H_
