// flag: an enable-wins flag. Enabled while it holds a dot; enabling adds a
// fresh dot and replaces the ones it has seen, disabling removes the dots
// it has seen, so a concurrent enable survives a disable.
#ifndef MERIDIAN_CRDT_FLAG_H_
#define MERIDIAN_CRDT_FLAG_H_

#include <cstdint>
#include <string_view>

#include "crdt/causal.h"

namespace meridian::crdt {

struct FlagStore {
  DotSet dots;

  bool enabled() const { return !dots.empty(); }

  // Delta parts for enabling at `replica`, under context `ctx`.
  void EnableDelta(const CausalContext& ctx, const ReplicaId& replica, FlagStore* dstore,
                   CausalContext* dctx) const;
  // Delta parts for disabling.
  void DisableDelta(FlagStore* dstore, CausalContext* dctx) const;

  static FlagStore Join(const FlagStore& a, const CausalContext& ca, const FlagStore& b,
                        const CausalContext& cb);
  bool IsBottom() const { return dots.empty(); }
  bool HasValue() const { return enabled(); }
  void CollectDots(DotSet* out) const { out->insert(dots.begin(), dots.end()); }
  FlagStore RemoveDelta() const { return FlagStore(); }
  // Encoding: [dot...] ascending.
  void Encode(Encoder* e) const { EncodeDotSet(dots, e); }
  static Status Decode(const Cursor& c, FlagStore* out) { return DecodeDotSet(c, &out->dots); }
  bool operator==(const FlagStore& o) const { return dots == o.dots; }
};

class Flag : public Causal<FlagStore> {
 public:
  static constexpr uint8_t kTag = 7;  // wire tag; DO NOT CHANGE
  static constexpr std::string_view kName = "flag";

  bool enabled() const { return store_.enabled(); }

  // Mutators return a delta and leave this state unchanged; apply the
  // delta with Merge (locally, and at every other replica).
  Flag Enable(const ReplicaId& replica) const;
  Flag Disable() const;
  Flag Delete() const { return Disable(); }

  static Status Decode(std::string_view bytes, Flag* out) { return DecodeAs(bytes, out); }
};

}  // namespace meridian::crdt

#endif  // MERIDIAN_CRDT_FLAG_H_
