#include "crdt/counter.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace meridian::crdt {

namespace {

constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

__int128 Sum(const CounterStore& s) {
  __int128 total = 0;
  for (const auto& [r, e] : s.entries) total += static_cast<__int128>(e.p) - e.n;
  for (const auto& [r, e] : s.removed) total -= static_cast<__int128>(e.p) - e.n;
  return total;
}

std::map<ReplicaId, PnEntry> JoinEntries(const std::map<ReplicaId, PnEntry>& a,
                                         const std::map<ReplicaId, PnEntry>& b) {
  return JoinKeyed(
      a, b,
      [](const ReplicaId&, const PnEntry& x, const PnEntry& y) {
        return PnEntry{std::max(x.p, y.p), std::max(x.n, y.n)};
      },
      [](const PnEntry&) { return true; });
}

void EncodeEntries(const std::map<ReplicaId, PnEntry>& m, Encoder* e) {
  e->Array(static_cast<uint32_t>(m.size()));
  for (const auto& [r, v] : m) {
    e->Array(4);
    e->Str(r.node);
    e->Uint(r.incarnation);
    e->Uint(v.p);
    e->Uint(v.n);
  }
}

Status DecodeEntries(const Cursor& c, const char* what, std::map<ReplicaId, PnEntry>* out) {
  out->clear();
  std::vector<Cursor> items;
  MERIDIAN_RETURN_IF_ERROR(c.Array(&items, what));
  std::vector<Cursor> f;
  for (const Cursor& item : items) {
    MERIDIAN_RETURN_IF_ERROR(item.Array(&f, what, 4));
    ReplicaId r;
    PnEntry v;
    MERIDIAN_RETURN_IF_ERROR(f[0].Str(&r.node, "counter entry node id"));
    if (r.node.empty() || r.node.size() > kMaxNodeIdBytes) {
      return Status::Corruption("counter entry node id length out of range");
    }
    MERIDIAN_RETURN_IF_ERROR(f[1].Uint(&r.incarnation, "counter entry incarnation"));
    MERIDIAN_RETURN_IF_ERROR(f[2].Uint(&v.p, "counter entry p"));
    MERIDIAN_RETURN_IF_ERROR(f[3].Uint(&v.n, "counter entry n"));
    if (v.p > kInt64Max || v.n > kInt64Max) {
      return Status::Corruption("counter entry exceeds int64");
    }
    if (v.p == 0 && v.n == 0) return Status::Corruption("counter entry of zero");
    if (!out->empty() && !(out->rbegin()->first < r)) {
      return Status::Corruption(std::string(what) + " not in strictly ascending order");
    }
    out->emplace_hint(out->end(), std::move(r), v);
  }
  return Status::OK();
}

}  // namespace

int64_t CounterStore::Value() const {
  __int128 total = Sum(*this);
  if (total > std::numeric_limits<int64_t>::max()) return std::numeric_limits<int64_t>::max();
  if (total < std::numeric_limits<int64_t>::min()) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(total);
}

Status CounterStore::IncrementDelta(const CausalContext& ctx, const ReplicaId& replica,
                                    int64_t amount, CounterStore* dstore,
                                    CausalContext* dctx) const {
  PnEntry entry;
  auto it = entries.find(replica);
  if (it != entries.end()) entry = it->second;
  if (amount >= 0) {
    if (static_cast<uint64_t>(amount) > kInt64Max - entry.p) {
      return Status::OutOfRange("counter increment overflows this replica's int64 entry");
    }
    entry.p += static_cast<uint64_t>(amount);
  } else {
    uint64_t mag = static_cast<uint64_t>(-(amount + 1)) + 1;  // |amount| without overflow
    if (mag > kInt64Max - entry.n) {
      return Status::OutOfRange("counter decrement overflows this replica's int64 entry");
    }
    entry.n += mag;
  }
  __int128 value = Sum(*this) + amount;
  if (value > std::numeric_limits<int64_t>::max() ||
      value < std::numeric_limits<int64_t>::min()) {
    return Status::OutOfRange("counter value would leave the int64 range");
  }
  Dot d = ctx.NextDot(replica);
  CounterStore ds;
  CausalContext dc;
  // The new dot replaces this replica's earlier presence dot(s).
  for (auto dit = dots.lower_bound(Dot{replica, 0});
       dit != dots.end() && dit->replica == replica; ++dit) {
    dc.Add(*dit);
  }
  dc.Add(d);
  ds.dots.insert(d);
  if (entry.p != 0 || entry.n != 0) ds.entries.emplace(replica, entry);
  *dstore = std::move(ds);
  *dctx = std::move(dc);
  return Status::OK();
}

CounterStore CounterStore::Join(const CounterStore& a, const CausalContext& ca,
                                const CounterStore& b, const CausalContext& cb) {
  CounterStore out;
  out.dots = JoinDotSets(a.dots, ca, b.dots, cb);
  out.entries = JoinEntries(a.entries, b.entries);
  out.removed = JoinEntries(a.removed, b.removed);
  return out;
}

CounterStore CounterStore::RemoveDelta() const {
  CounterStore ds;
  // Entries travel with the removal so that a receiver never sees removed
  // above entries (a negative contribution) while increments are in flight.
  ds.entries = entries;
  ds.removed = entries;
  return ds;
}

void CounterStore::Encode(Encoder* e) const {
  e->Array(3);
  EncodeDotSet(dots, e);
  EncodeEntries(entries, e);
  EncodeEntries(removed, e);
}

Status CounterStore::Decode(const Cursor& c, CounterStore* out) {
  *out = CounterStore();
  std::vector<Cursor> parts;
  MERIDIAN_RETURN_IF_ERROR(c.Array(&parts, "counter", 3));
  MERIDIAN_RETURN_IF_ERROR(DecodeDotSet(parts[0], &out->dots));
  MERIDIAN_RETURN_IF_ERROR(DecodeEntries(parts[1], "counter entries", &out->entries));
  MERIDIAN_RETURN_IF_ERROR(DecodeEntries(parts[2], "counter removed entries", &out->removed));
  for (const auto& [r, v] : out->removed) {
    auto it = out->entries.find(r);
    if (it == out->entries.end() || v.p > it->second.p || v.n > it->second.n) {
      return Status::Corruption("counter removes more than " + r.ToString() + " counted");
    }
  }
  return Status::OK();
}

Status Counter::Increment(const ReplicaId& replica, int64_t amount, Counter* delta) const {
  CounterStore ds;
  CausalContext dc;
  MERIDIAN_RETURN_IF_ERROR(store_.IncrementDelta(ctx_, replica, amount, &ds, &dc));
  *delta = Counter();
  Assign(delta, std::move(ds), std::move(dc));
  return Status::OK();
}

Counter Counter::Delete() const {
  Counter delta;
  RemoveAllDelta(&delta);
  return delta;
}

}  // namespace meridian::crdt
