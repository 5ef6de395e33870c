#include "crdt/flag.h"

namespace meridian::crdt {

void FlagStore::EnableDelta(const CausalContext& ctx, const ReplicaId& replica,
                            FlagStore* dstore, CausalContext* dctx) const {
  Dot d = ctx.NextDot(replica);
  *dctx = CausalContext();
  for (const Dot& seen : dots) dctx->Add(seen);
  dctx->Add(d);
  dstore->dots = {d};
}

void FlagStore::DisableDelta(FlagStore* dstore, CausalContext* dctx) const {
  *dctx = CausalContext();
  for (const Dot& seen : dots) dctx->Add(seen);
  dstore->dots.clear();
}

FlagStore FlagStore::Join(const FlagStore& a, const CausalContext& ca, const FlagStore& b,
                          const CausalContext& cb) {
  return FlagStore{JoinDotSets(a.dots, ca, b.dots, cb)};
}

Flag Flag::Enable(const ReplicaId& replica) const {
  Flag delta;
  FlagStore ds;
  CausalContext dc;
  store_.EnableDelta(ctx_, replica, &ds, &dc);
  Assign(&delta, std::move(ds), std::move(dc));
  return delta;
}

Flag Flag::Disable() const {
  Flag delta;
  RemoveAllDelta(&delta);
  return delta;
}

}  // namespace meridian::crdt
