#include "conflict/conflict_index.h"

#include "crdt/codec.h"
#include "crdt/mvregister.h"
#include "crdt/registry.h"

namespace meridian::conflict {

namespace {
constexpr uint8_t kEntryVersion = 1;
constexpr uint8_t kAuditVersion = 1;
}  // namespace

bool HoldsConflict(const crdt::Envelope& env) {
  const crdt::TypedState* w = env.winner();
  if (w == nullptr) return false;
  for (const auto& [tag, ts] : env.entries()) {
    if (tag == w->tag) continue;
    // A losing type counts while it holds a value.
    if (crdt::StateHasValue(tag, ts.state)) return true;
  }
  if (w->tag != crdt::MvRegister::kTag) return false;
  crdt::MvRegister reg;
  return crdt::MvRegister::Decode(w->state, &reg).ok() && reg.siblings().size() > 1;
}

std::string EncodeConflictEntry(const ConflictEntry& entry) {
  crdt::Encoder e(kEntryVersion);
  e.Array(1);
  e.Uint(entry.detected_ms);
  return e.Take();
}

Status DecodeConflictEntry(std::string_view bytes, ConflictEntry* out) {
  crdt::Decoder d;
  MERIDIAN_RETURN_IF_ERROR(d.Parse(bytes, kEntryVersion));
  std::vector<crdt::Cursor> f;
  MERIDIAN_RETURN_IF_ERROR(d.root().Array(&f, "conflict entry", 1));
  return f[0].Uint(&out->detected_ms, "conflict entry detected_ms");
}

std::string EncodeAuditRecord(const AuditRecord& r) {
  crdt::Encoder e(kAuditVersion);
  e.Array(6);
  crdt::EncodeReplica(r.writer, &e);
  e.Uint(r.hlc);
  e.Bin(r.value);
  crdt::EncodeReplica(r.winner, &e);
  e.Uint(r.winner_hlc);
  e.Uint(r.recorded_ms);
  return e.Take();
}

Status DecodeAuditRecord(std::string_view bytes, AuditRecord* out) {
  crdt::Decoder d;
  MERIDIAN_RETURN_IF_ERROR(d.Parse(bytes, kAuditVersion));
  std::vector<crdt::Cursor> f;
  MERIDIAN_RETURN_IF_ERROR(d.root().Array(&f, "audit record", 6));
  MERIDIAN_RETURN_IF_ERROR(crdt::DecodeReplica(f[0], &out->writer));
  MERIDIAN_RETURN_IF_ERROR(f[1].Uint(&out->hlc, "audit record hlc"));
  MERIDIAN_RETURN_IF_ERROR(f[2].Bin(&out->value, "audit record value"));
  MERIDIAN_RETURN_IF_ERROR(crdt::DecodeReplica(f[3], &out->winner));
  MERIDIAN_RETURN_IF_ERROR(f[4].Uint(&out->winner_hlc, "audit record winner hlc"));
  return f[5].Uint(&out->recorded_ms, "audit record recorded_ms");
}

std::vector<std::pair<std::string, AuditRecord>> AuditRecordsOf(const crdt::Envelope& env,
                                                                uint64_t now_ms) {
  std::vector<std::pair<std::string, AuditRecord>> out;
  const crdt::TypedState* w = env.winner();
  if (w == nullptr || w->tag != crdt::MvRegister::kTag) return out;
  crdt::MvRegister reg;
  if (!crdt::MvRegister::Decode(w->state, &reg).ok() || reg.siblings().size() < 2) return out;
  const auto* winner = reg.LwwWinner();
  for (const auto& [dot, tv] : reg.siblings()) {
    if (dot == winner->first) continue;
    AuditRecord r;
    r.writer = dot.replica;
    r.hlc = tv.hlc;
    r.value = tv.value;
    r.winner = winner->first.replica;
    r.winner_hlc = winner->second.hlc;
    r.recorded_ms = now_ms;
    out.emplace_back(dot.ToString(), std::move(r));
  }
  return out;
}

}  // namespace meridian::conflict
