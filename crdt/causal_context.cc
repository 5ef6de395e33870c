#include "crdt/causal_context.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace meridian::crdt {

std::string ReplicaId::ToString() const { return node + "#" + std::to_string(incarnation); }

std::string Dot::ToString() const { return replica.ToString() + ":" + std::to_string(counter); }

void EncodeReplica(const ReplicaId& r, Encoder* e) {
  e->Array(2);
  e->Str(r.node);
  e->Uint(r.incarnation);
}

Status DecodeReplica(const Cursor& c, ReplicaId* r) {
  std::vector<Cursor> f;
  MERIDIAN_RETURN_IF_ERROR(c.Array(&f, "replica id", 2));
  MERIDIAN_RETURN_IF_ERROR(f[0].Str(&r->node, "replica node id"));
  if (r->node.empty() || r->node.size() > kMaxNodeIdBytes) {
    return Status::Corruption("replica node id must be 1.." + std::to_string(kMaxNodeIdBytes) +
                              " bytes");
  }
  return f[1].Uint(&r->incarnation, "replica incarnation");
}

void EncodeDot(const Dot& d, Encoder* e) {
  e->Array(3);
  e->Str(d.replica.node);
  e->Uint(d.replica.incarnation);
  e->Uint(d.counter);
}

Status DecodeDot(const Cursor& c, Dot* d) {
  std::vector<Cursor> f;
  MERIDIAN_RETURN_IF_ERROR(c.Array(&f, "dot", 3));
  MERIDIAN_RETURN_IF_ERROR(f[0].Str(&d->replica.node, "dot node id"));
  if (d->replica.node.empty() || d->replica.node.size() > kMaxNodeIdBytes) {
    return Status::Corruption("dot node id must be 1.." + std::to_string(kMaxNodeIdBytes) +
                              " bytes");
  }
  MERIDIAN_RETURN_IF_ERROR(f[1].Uint(&d->replica.incarnation, "dot incarnation"));
  MERIDIAN_RETURN_IF_ERROR(f[2].Uint(&d->counter, "dot counter"));
  if (d->counter == 0) return Status::Corruption("dot counter must be at least 1");
  return Status::OK();
}

void EncodeDotSet(const DotSet& s, Encoder* e) {
  e->Array(static_cast<uint32_t>(s.size()));
  for (const Dot& d : s) EncodeDot(d, e);
}

Status DecodeDotSet(const Cursor& c, DotSet* s) {
  std::vector<Cursor> items;
  MERIDIAN_RETURN_IF_ERROR(c.Array(&items, "dot set"));
  s->clear();
  for (const Cursor& item : items) {
    Dot d;
    MERIDIAN_RETURN_IF_ERROR(DecodeDot(item, &d));
    if (!s->empty() && !(*s->rbegin() < d)) {
      return Status::Corruption("dot set is not in strictly ascending order");
    }
    s->insert(s->end(), std::move(d));
  }
  return Status::OK();
}

bool CausalContext::Contains(const Dot& d) const {
  auto it = vv_.find(d.replica);
  if (it != vv_.end() && d.counter <= it->second) return true;
  return cloud_.count(d) > 0;
}

void CausalContext::CompactReplica(const ReplicaId& r) {
  auto vit = vv_.find(r);
  uint64_t n = vit == vv_.end() ? 0 : vit->second;
  auto it = cloud_.lower_bound(Dot{r, 0});
  while (it != cloud_.end() && it->replica == r) {
    if (it->counter <= n) {
      it = cloud_.erase(it);
    } else if (it->counter == n + 1) {
      ++n;
      it = cloud_.erase(it);
    } else {
      break;
    }
  }
  if (n > 0) vv_[r] = n;
}

void CausalContext::Add(const Dot& d) {
  if (Contains(d)) return;
  cloud_.insert(d);
  CompactReplica(d.replica);
}

void CausalContext::Merge(const CausalContext& other) {
  for (const auto& [r, n] : other.vv_) {
    uint64_t& mine = vv_[r];
    mine = std::max(mine, n);
  }
  cloud_.insert(other.cloud_.begin(), other.cloud_.end());
  // Compact every replica that has cloud dots or a raised vector entry.
  std::set<ReplicaId> touched;
  for (const Dot& d : cloud_) touched.insert(d.replica);
  for (const ReplicaId& r : touched) CompactReplica(r);
}

CausalContext CausalContext::Intersect(const CausalContext& other) const {
  CausalContext out;
  for (const auto& [r, n] : vv_) {
    auto it = other.vv_.find(r);
    if (it != other.vv_.end()) out.vv_[r] = std::min(n, it->second);
  }
  for (const Dot& d : cloud_) {
    if (other.Contains(d)) out.cloud_.insert(d);
  }
  for (const Dot& d : other.cloud_) {
    if (Contains(d)) out.cloud_.insert(d);
  }
  std::set<ReplicaId> touched;
  for (const Dot& d : out.cloud_) touched.insert(d.replica);
  for (const ReplicaId& r : touched) out.CompactReplica(r);
  return out;
}

bool CausalContext::Covers(const CausalContext& other) const {
  for (const auto& [r, n] : other.vv_) {
    auto it = vv_.find(r);
    uint64_t have = it == vv_.end() ? 0 : it->second;
    if (have >= n) continue;
    // Dots have+1..n must all be in the cloud.
    auto lo = cloud_.upper_bound(Dot{r, have});
    auto hi = cloud_.upper_bound(Dot{r, n});
    if (static_cast<uint64_t>(std::distance(lo, hi)) != n - have) return false;
  }
  for (const Dot& d : other.cloud_) {
    if (!Contains(d)) return false;
  }
  return true;
}

uint64_t CausalContext::Max(const ReplicaId& r) const {
  uint64_t n = 0;
  auto it = vv_.find(r);
  if (it != vv_.end()) n = it->second;
  // The last cloud dot of r precedes the first dot after (r, max). Not
  // lower_bound of (r.incarnation + 1): that wraps at the largest
  // incarnation and misses r's cloud dots.
  auto cit = cloud_.upper_bound(Dot{r, std::numeric_limits<uint64_t>::max()});
  if (cit != cloud_.begin()) {
    --cit;
    if (cit->replica == r) n = std::max(n, cit->counter);
  }
  return n;
}

Dot CausalContext::NextDot(const ReplicaId& r) const { return Dot{r, Max(r) + 1}; }

void CausalContext::Encode(Encoder* e) const {
  e->Array(2);
  e->Array(static_cast<uint32_t>(vv_.size()));
  for (const auto& [r, n] : vv_) {
    e->Array(3);
    e->Str(r.node);
    e->Uint(r.incarnation);
    e->Uint(n);
  }
  EncodeDotSet(cloud_, e);
}

Status CausalContext::Decode(const Cursor& c, CausalContext* out) {
  *out = CausalContext();
  std::vector<Cursor> parts;
  MERIDIAN_RETURN_IF_ERROR(c.Array(&parts, "causal context", 2));
  std::vector<Cursor> entries;
  MERIDIAN_RETURN_IF_ERROR(parts[0].Array(&entries, "version vector"));
  for (const Cursor& entry : entries) {
    // Same shape as a dot: [node, incarnation, max].
    Dot d;
    MERIDIAN_RETURN_IF_ERROR(DecodeDot(entry, &d).WithContext("version vector entry"));
    if (!out->vv_.empty() && !(out->vv_.rbegin()->first < d.replica)) {
      return Status::Corruption("version vector is not in strictly ascending order");
    }
    out->vv_.emplace_hint(out->vv_.end(), d.replica, d.counter);
  }
  MERIDIAN_RETURN_IF_ERROR(DecodeDotSet(parts[1], &out->cloud_).WithContext("dot cloud"));
  for (const Dot& d : out->cloud_) {
    auto it = out->vv_.find(d.replica);
    uint64_t n = it == out->vv_.end() ? 0 : it->second;
    if (d.counter <= n + 1) {
      return Status::Corruption("dot cloud holds " + d.ToString() +
                                ", which belongs in the version vector");
    }
  }
  return Status::OK();
}

std::string CausalContext::ToString() const {
  std::string s = "{";
  bool first = true;
  for (const auto& [r, n] : vv_) {
    if (!first) s += ", ";
    first = false;
    s += r.ToString() + ":1.." + std::to_string(n);
  }
  for (const Dot& d : cloud_) {
    if (!first) s += ", ";
    first = false;
    s += d.ToString();
  }
  return s + "}";
}

}  // namespace meridian::crdt
