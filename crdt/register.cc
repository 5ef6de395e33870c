#include "crdt/register.h"

#include <vector>

#include "crdt/mvregister.h"

namespace meridian::crdt {

namespace {
// The LWW order: (HLC, node id, incarnation), strict.
bool Precedes(Hlc a_hlc, const ReplicaId& a, Hlc b_hlc, const ReplicaId& b) {
  return std::tie(a_hlc, a.node, a.incarnation) < std::tie(b_hlc, b.node, b.incarnation);
}

Status CheckValue(const std::string& value) {
  if (value.size() > kMaxRegisterValueBytes) {
    return Status::InvalidArgument("value of " + std::to_string(value.size()) +
                                   " bytes exceeds the limit of " +
                                   std::to_string(kMaxRegisterValueBytes));
  }
  return Status::OK();
}
}  // namespace

Status Register::Set(Hlc hlc, const ReplicaId& writer, std::string value,
                     Register* delta) const {
  MERIDIAN_RETURN_IF_ERROR(CheckValue(value));
  if (writer.node.empty()) return Status::InvalidArgument("register write without a writer");
  *delta = Register();
  delta->hlc_ = hlc;
  delta->writer_ = writer;
  delta->value_ = std::move(value);
  return Status::OK();
}

Status Register::Delete(Hlc hlc, const ReplicaId& writer, Register* delta) const {
  if (writer.node.empty()) return Status::InvalidArgument("register delete without a writer");
  *delta = Register();
  delta->hlc_ = hlc;
  delta->writer_ = writer;
  delta->deleted_ = true;
  return Status::OK();
}

void Register::Merge(const Register& other) {
  if (Precedes(hlc_, writer_, other.hlc_, other.writer_)) {
    *this = other;
  } else if (!Precedes(other.hlc_, other.writer_, hlc_, writer_) && *this != other) {
    // Same (HLC, replica) with different contents can only come from
    // corrupt or forged input; pick deterministically so replicas agree.
    if (std::tie(deleted_, value_) < std::tie(other.deleted_, other.value_)) *this = other;
  }
}

std::string Register::Encode() const {
  Encoder e(kStateFormatVersion);
  if (IsBottom()) {
    e.Array(0);
    return e.Take();
  }
  e.Reserve(40 + writer_.node.size() + value_.size());
  e.Array(4);
  e.Uint(hlc_);
  EncodeReplica(writer_, &e);
  e.Bool(deleted_);
  e.Bin(deleted_ ? std::string_view() : std::string_view(value_));
  return e.Take();
}

Status Register::Decode(std::string_view bytes, Register* out) {
  *out = Register();
  Decoder d;
  MERIDIAN_RETURN_IF_ERROR(d.Parse(bytes, kStateFormatVersion));
  std::vector<Cursor> f;
  MERIDIAN_RETURN_IF_ERROR(d.root().Array(&f, "register"));
  if (f.empty()) return Status::OK();
  if (f.size() != 4) return Status::Corruption("register: expected 0 or 4 elements");
  MERIDIAN_RETURN_IF_ERROR(f[0].Uint(&out->hlc_, "register hlc"));
  MERIDIAN_RETURN_IF_ERROR(DecodeReplica(f[1], &out->writer_));
  MERIDIAN_RETURN_IF_ERROR(f[2].Bool(&out->deleted_, "register deleted"));
  MERIDIAN_RETURN_IF_ERROR(f[3].Bin(&out->value_, "register value"));
  if (out->deleted_ && !out->value_.empty()) {
    return Status::Corruption("register tombstone with a value");
  }
  return Status::OK();
}

const TimedValue* DottedRegisterStore::Winner() const {
  const TimedValue* best = nullptr;
  const ReplicaId* best_replica = nullptr;
  for (const auto& [dot, tv] : writes) {
    if (best == nullptr || Precedes(best->hlc, *best_replica, tv.hlc, dot.replica) ||
        (best->hlc == tv.hlc && *best_replica == dot.replica && best->value < tv.value)) {
      best = &tv;
      best_replica = &dot.replica;
    }
  }
  return best;
}

Status DottedRegisterStore::SetDelta(const CausalContext& ctx, const ReplicaId& replica, Hlc hlc,
                                     std::string value, DottedRegisterStore* dstore,
                                     CausalContext* dctx) const {
  MERIDIAN_RETURN_IF_ERROR(CheckValue(value));
  Dot dot = ctx.NextDot(replica);
  DottedRegisterStore ds;
  CausalContext dc;
  for (const auto& entry : writes) dc.Add(entry.first);
  dc.Add(dot);
  ds.writes.emplace(dot, TimedValue{hlc, std::move(value)});
  *dstore = std::move(ds);
  *dctx = std::move(dc);
  return Status::OK();
}

void DottedRegisterStore::Encode(Encoder* e) const {
  e->Array(static_cast<uint32_t>(writes.size()));
  for (const auto& [dot, tv] : writes) {
    e->Array(3);
    EncodeDot(dot, e);
    e->Uint(tv.hlc);
    e->Bin(tv.value);
  }
}

Status DottedRegisterStore::Decode(const Cursor& c, DottedRegisterStore* out) {
  out->writes.clear();
  std::vector<Cursor> items;
  MERIDIAN_RETURN_IF_ERROR(c.Array(&items, "register writes"));
  std::vector<Cursor> f;
  for (const Cursor& item : items) {
    MERIDIAN_RETURN_IF_ERROR(item.Array(&f, "register write", 3));
    Dot dot;
    MERIDIAN_RETURN_IF_ERROR(DecodeDot(f[0], &dot));
    if (!out->writes.empty() && !(out->writes.rbegin()->first < dot)) {
      return Status::Corruption("register writes are not in strictly ascending order");
    }
    TimedValue tv;
    MERIDIAN_RETURN_IF_ERROR(f[1].Uint(&tv.hlc, "register write hlc"));
    MERIDIAN_RETURN_IF_ERROR(f[2].Bin(&tv.value, "register write value"));
    out->writes.emplace_hint(out->writes.end(), std::move(dot), std::move(tv));
  }
  return Status::OK();
}

}  // namespace meridian::crdt
