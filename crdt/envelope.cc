#include "crdt/envelope.h"

#include <tuple>

#include "crdt/causal.h"
#include "crdt/codec.h"
#include "crdt/registry.h"

namespace meridian::crdt {

namespace {
bool OriginBefore(const TypedState& a, const TypedState& b) {
  return std::tie(a.origin_hlc, a.origin.node, a.origin.incarnation, a.tag) <
         std::tie(b.origin_hlc, b.origin.node, b.origin.incarnation, b.tag);
}
}  // namespace

Status Envelope::Of(uint8_t tag, Hlc origin_hlc, const ReplicaId& origin, std::string_view state,
                    Envelope* out) {
  const TypeOps* ops = FindTypeByTag(tag);
  if (ops == nullptr) return Status::InvalidArgument("unknown type tag " + std::to_string(tag));
  TypedState ts;
  ts.tag = tag;
  ts.origin_hlc = origin_hlc;
  ts.origin = origin;
  MERIDIAN_RETURN_IF_ERROR(ops->canonicalize(state, &ts.state));
  *out = Envelope();
  out->entries_.emplace(tag, std::move(ts));
  return Status::OK();
}

const TypedState* Envelope::winner() const {
  const TypedState* best = nullptr;
  for (const auto& entry : entries_) {
    if (best == nullptr || OriginBefore(entry.second, *best)) best = &entry.second;
  }
  return best;
}

std::vector<TypedState> Envelope::losers() const {
  std::vector<TypedState> out;
  const TypedState* w = winner();
  for (const auto& entry : entries_) {
    if (&entry.second != w) out.push_back(entry.second);
  }
  return out;
}

Status Envelope::Merge(const Envelope& other, std::vector<TypedState>* lost) {
  std::map<uint8_t, TypedState> merged = entries_;
  for (const auto& [tag, theirs] : other.entries_) {
    auto it = merged.find(tag);
    if (it == merged.end()) {
      merged.emplace(tag, theirs);
      continue;
    }
    TypedState& mine = it->second;
    const TypeOps* ops = FindTypeByTag(tag);
    if (ops == nullptr) return Status::Corruption("unknown type tag " + std::to_string(tag));
    std::string joined;
    MERIDIAN_RETURN_IF_ERROR(ops->merge(mine.state, theirs.state, &joined));
    mine.state = std::move(joined);
    if (OriginBefore(theirs, mine)) {
      mine.origin_hlc = theirs.origin_hlc;
      mine.origin = theirs.origin;
    }
  }
  int winner_before = -1;
  if (const TypedState* w = winner()) winner_before = w->tag;
  std::map<uint8_t, TypedState> before = std::move(entries_);
  entries_ = std::move(merged);
  if (lost != nullptr) {
    const TypedState* w = winner();
    for (const auto& [tag, ts] : entries_) {
      if (&ts == w) continue;
      auto it = before.find(tag);
      if (it == before.end() || !(it->second == ts) || winner_before == tag) {
        lost->push_back(ts);
      }
    }
  }
  return Status::OK();
}

void Envelope::PutJoined(const TypedState& origin, std::string state) {
  auto it = entries_.find(origin.tag);
  if (it == entries_.end()) {
    TypedState ts = origin;
    ts.state = std::move(state);
    entries_.emplace(ts.tag, std::move(ts));
    return;
  }
  it->second.state = std::move(state);
  if (OriginBefore(origin, it->second)) {
    it->second.origin_hlc = origin.origin_hlc;
    it->second.origin = origin.origin;
  }
}

std::string Envelope::Encode() const {
  Encoder e(kStateFormatVersion);
  size_t size = 8;  // a guess at the encoded size, to append without reallocating
  for (const auto& [tag, ts] : entries_) size += 40 + ts.origin.node.size() + ts.state.size();
  e.Reserve(size);
  e.Array(static_cast<uint32_t>(entries_.size()));
  for (const auto& [tag, ts] : entries_) {
    e.Array(4);
    e.Uint(tag);
    e.Uint(ts.origin_hlc);
    EncodeReplica(ts.origin, &e);
    e.Bin(ts.state);
  }
  return e.Take();
}

Status Envelope::Decode(std::string_view bytes, Envelope* out) {
  return DecodeImpl(bytes, /*check_states=*/true, out);
}

Status Envelope::DecodeStored(std::string_view bytes, Envelope* out) {
  return DecodeImpl(bytes, /*check_states=*/false, out);
}

Status Envelope::DecodeImpl(std::string_view bytes, bool check_states, Envelope* out) {
  *out = Envelope();
  Decoder d;
  MERIDIAN_RETURN_IF_ERROR(d.Parse(bytes, kStateFormatVersion));
  std::vector<Cursor> items;
  MERIDIAN_RETURN_IF_ERROR(d.root().Array(&items, "envelope"));
  std::vector<Cursor> f;
  for (const Cursor& item : items) {
    MERIDIAN_RETURN_IF_ERROR(item.Array(&f, "envelope entry", 4));
    uint64_t tag = 0;
    MERIDIAN_RETURN_IF_ERROR(f[0].Uint(&tag, "envelope type tag"));
    const TypeOps* ops = tag <= 255 ? FindTypeByTag(static_cast<uint8_t>(tag)) : nullptr;
    if (ops == nullptr) return Status::Corruption("envelope: unknown type tag " + std::to_string(tag));
    if (!out->entries_.empty() && out->entries_.rbegin()->first >= tag) {
      return Status::Corruption("envelope entries are not in strictly ascending order");
    }
    TypedState ts;
    ts.tag = static_cast<uint8_t>(tag);
    MERIDIAN_RETURN_IF_ERROR(f[1].Uint(&ts.origin_hlc, "envelope origin hlc"));
    MERIDIAN_RETURN_IF_ERROR(DecodeReplica(f[2], &ts.origin));
    std::string state;
    MERIDIAN_RETURN_IF_ERROR(f[3].Bin(&state, "envelope state"));
    if (check_states) {
      MERIDIAN_RETURN_IF_ERROR(ops->canonicalize(state, &ts.state).WithContext("envelope"));
    } else {
      ts.state = std::move(state);
    }
    out->entries_.emplace_hint(out->entries_.end(), ts.tag, std::move(ts));
  }
  return Status::OK();
}

}  // namespace meridian::crdt
