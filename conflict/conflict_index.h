// The conflict index (DESIGN.md §5 and §6): which keys hold concurrent
// values, since when, and the audit log of writes that lost under
// last-writer-wins. The committer (node/committer.h) keeps both in the
// same WriteBatch as the states they describe, so the index never
// disagrees with the states after a crash; what a resolver makes of a
// conflicted key is decided on read (conflict/settle.h) and never stored.
//
// A key is conflicted when its state holds
//   - an mvregister (the winning type) with two or more siblings, or
//   - a type conflict: a type that lost a concurrent first write
//     (crdt::Envelope losers) and still holds a value.
//
// Entry ('c' + key): version byte, then [uint detected_ms]: the wall time
// (the HLC's physical part) of the batch that first found the key
// conflicted on this node; kept while the key stays conflicted.
//
// Audit record ('a' + key + id, id = the losing sibling's dot): version
// byte, then [[str node, uint incarnation] writer, uint hlc, bin value,
// [str node, uint incarnation] winner, uint winner_hlc, uint recorded_ms].
#ifndef MERIDIAN_CONFLICT_CONFLICT_INDEX_H_
#define MERIDIAN_CONFLICT_CONFLICT_INDEX_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crdt/causal_context.h"
#include "crdt/envelope.h"
#include "crdt/hlc.h"
#include "crdt/status.h"

namespace meridian::conflict {

// Whether `env` holds a conflict (see above). A state that does not decode
// is not one (readers report the corruption).
bool HoldsConflict(const crdt::Envelope& env);

struct ConflictEntry {
  uint64_t detected_ms = 0;
};
std::string EncodeConflictEntry(const ConflictEntry& entry);
Status DecodeConflictEntry(std::string_view bytes, ConflictEntry* out);

struct AuditRecord {
  crdt::ReplicaId writer;  // the losing write's
  crdt::Hlc hlc = 0;
  std::string value;  // stored bytes (msgpack of the JSON value)
  crdt::ReplicaId winner;  // the write it lost to, when recorded
  crdt::Hlc winner_hlc = 0;
  uint64_t recorded_ms = 0;
};
std::string EncodeAuditRecord(const AuditRecord& record);
Status DecodeAuditRecord(std::string_view bytes, AuditRecord* out);

// The audit records of `env` when it is an mvregister with siblings: one
// per sibling but the last-writer-wins winner, as (record id, record).
// Empty otherwise.
std::vector<std::pair<std::string, AuditRecord>> AuditRecordsOf(const crdt::Envelope& env,
                                                                uint64_t now_ms);

}  // namespace meridian::conflict

#endif  // MERIDIAN_CONFLICT_CONFLICT_INDEX_H_
