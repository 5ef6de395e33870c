// Envelope: the typed value stored under a key and carried by gossip.
//
// A key normally holds one type. Two regions may first-write one key with
// different types concurrently (DESIGN.md §2): the type whose earliest
// write has the smallest (HLC, replica id) wins everywhere. For the merge to
// stay a join (commutative, associative, idempotent) the envelope keeps,
// per type, its state and the origin of its earliest write; the winner is
// the type with the smallest origin, and the others are losers that Merge
// reports so the caller can record them (`type_conflict`) — never silently
// dropped.
#ifndef MERIDIAN_CRDT_ENVELOPE_H_
#define MERIDIAN_CRDT_ENVELOPE_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/causal_context.h"
#include "crdt/hlc.h"
#include "crdt/status.h"

namespace meridian::crdt {

struct TypedState {
  uint8_t tag = 0;      // registry wire tag
  Hlc origin_hlc = 0;   // the earliest write of this type to the key
  ReplicaId origin;     // the replica that made it
  std::string state;    // the type's canonical encoding

  bool operator==(const TypedState& o) const {
    return tag == o.tag && origin_hlc == o.origin_hlc && origin == o.origin && state == o.state;
  }
};

class Envelope {
 public:
  Envelope() = default;
  // An envelope holding one typed state (a local write, or its delta).
  // Fails on an unknown tag or bytes that are not a valid state.
  static Status Of(uint8_t tag, Hlc origin_hlc, const ReplicaId& origin, std::string_view state,
                   Envelope* out);

  bool empty() const { return entries_.empty(); }
  // The winning type's state; nullptr when empty.
  const TypedState* winner() const;
  // Every type held but the winner, ascending by tag.
  std::vector<TypedState> losers() const;
  const std::map<uint8_t, TypedState>& entries() const { return entries_; }

  // Join. Appends to *lost (when non-null) every losing state that this
  // merge added or changed. Fails, leaving this envelope unchanged, if a
  // state cannot be merged (corrupt bytes).
  Status Merge(const Envelope& other, std::vector<TypedState>* lost);

  // Sets the state of type `origin.tag` to `state` — for a writer that has
  // just joined its delta into the held state itself, so that the write
  // costs one decode and one encode instead of a registry merge. The
  // origin is the smaller of the held one and `origin`'s.
  // REQUIRES: `state` is a canonical encoding that is at least the held
  // state of that type (the caller joined it); otherwise use Merge.
  void PutJoined(const TypedState& origin, std::string state);

  // Encoding: version byte, then [[tag, hlc, [node, incarnation], bin
  // state]...] ascending by tag.
  std::string Encode() const;
  // Checks every held state with its type's decoder and keeps canonical
  // bytes. Bytes from the node's own store were checked when written:
  // DecodeStored skips the per-state check (the typed decode on use still
  // validates them) so that a write or read decodes each state once.
  static Status Decode(std::string_view bytes, Envelope* out);
  static Status DecodeStored(std::string_view bytes, Envelope* out);

  bool operator==(const Envelope& o) const { return entries_ == o.entries_; }

 private:
  static Status DecodeImpl(std::string_view bytes, bool check_states, Envelope* out);

  std::map<uint8_t, TypedState> entries_;
};

}  // namespace meridian::crdt

#endif  // MERIDIAN_CRDT_ENVELOPE_H_
