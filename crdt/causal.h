// Causal<Store>: a top-level causal CRDT — a dot store plus the causal
// context it shares. mvregister, counter, set, flag and map are each a
// Causal<XStore> with their own mutators; a map nests the same stores
// under its one context.
//
// Every Store type provides:
//   static Store Join(const Store& a, const CausalContext& ca,
//                     const Store& b, const CausalContext& cb);
//   bool IsBottom() const;             // nothing worth keeping
//   bool HasValue() const;             // a reader sees a value
//   void CollectDots(DotSet* out) const;
//   Store RemoveDelta() const;         // store part of an observed-remove
//   void Encode(Encoder* e) const;
//   static Status Decode(const Cursor& c, Store* out);
//   bool operator==(const Store&) const;
//
// Invariant (checked on decode): every dot a store holds is in its context.
#ifndef MERIDIAN_CRDT_CAUSAL_H_
#define MERIDIAN_CRDT_CAUSAL_H_

#include <string>
#include <string_view>
#include <vector>

#include "crdt/causal_context.h"
#include "crdt/codec.h"
#include "crdt/dot_store.h"
#include "crdt/status.h"

namespace meridian::crdt {

// The format version byte that starts every encoded state. Bump it (and
// keep a decoder for the old one) when any type's encoding changes.
// DO NOT CHANGE the meaning of an existing version: it is on disk.
constexpr uint8_t kStateFormatVersion = 1;

template <class Store>
class Causal {
 public:
  const Store& store() const { return store_; }
  const CausalContext& context() const { return ctx_; }

  // Join. Commutative, associative and idempotent.
  void Merge(const Causal& other) {
    store_ = Store::Join(store_, ctx_, other.store_, other.ctx_);
    ctx_.Merge(other.ctx_);
  }

  // True when the store holds nothing (the join's bottom, or everything
  // removed and no tombstone kept). The context is kept even then, so dots
  // are never reissued.
  bool IsBottom() const { return store_.IsBottom(); }
  // True when a reader sees a value: false when never written or deleted.
  // (A deleted counter keeps tombstones, so it is not bottom, yet has no
  // value.)
  bool HasValue() const { return store_.HasValue(); }

  // Encoding: version byte, then [store, context].
  std::string Encode() const {
    Encoder e(kStateFormatVersion);
    e.Array(2);
    store_.Encode(&e);
    ctx_.Encode(&e);
    return e.Take();
  }

  template <class Derived>
  static Status DecodeAs(std::string_view bytes, Derived* out) {
    Decoder d;
    MERIDIAN_RETURN_IF_ERROR(d.Parse(bytes, kStateFormatVersion));
    std::vector<Cursor> parts;
    MERIDIAN_RETURN_IF_ERROR(d.root().Array(&parts, "causal state", 2));
    Causal& base = *out;
    base = Causal();
    MERIDIAN_RETURN_IF_ERROR(Store::Decode(parts[0], &base.store_));
    MERIDIAN_RETURN_IF_ERROR(CausalContext::Decode(parts[1], &base.ctx_));
    DotSet dots;
    base.store_.CollectDots(&dots);
    for (const Dot& dot : dots) {
      if (!base.ctx_.Contains(dot)) {
        return Status::Corruption("state holds dot " + dot.ToString() +
                                  " that its causal context lacks");
      }
    }
    return Status::OK();
  }

  bool operator==(const Causal& o) const { return store_ == o.store_ && ctx_ == o.ctx_; }
  bool operator!=(const Causal& o) const { return !(*this == o); }

 protected:
  // A delta from its parts (mutators build these).
  static void Assign(Causal* c, Store store, CausalContext ctx) {
    c->store_ = std::move(store);
    c->ctx_ = std::move(ctx);
  }
  // The observed-remove of the whole value: removes every dot it holds.
  void RemoveAllDelta(Causal* delta) const {
    DotSet dots;
    store_.CollectDots(&dots);
    CausalContext ctx;
    for (const Dot& d : dots) ctx.Add(d);
    Assign(delta, store_.RemoveDelta(), std::move(ctx));
  }

  Store store_;
  CausalContext ctx_;
};

}  // namespace meridian::crdt

#endif  // MERIDIAN_CRDT_CAUSAL_H_
