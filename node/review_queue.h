// The review queue (DESIGN.md §5) as the API shows it: the conflicted keys
// of the conflict index (conflict/conflict_index.h) that no resolver
// settles. Built on read from the stored state, the key's policy and the
// entry's detection time; nothing here writes.
//
// An entry: {"key", "type", "policy" (its prefix, or null), "reason",
// "detected_ms", "siblings": [...], "regions": [...]}.
//   - an mvregister whose policy does not settle it (conflict/settle.h:
//     kUnresolved): reason is the resolvers' reasons; each sibling is
//     {"value", "region", "replica", "hlc", "dot"} in canonical order;
//   - a type conflict (two types first-written concurrently, DESIGN.md
//     §2): reason "type_conflict"; one sibling per type that holds a
//     value, {"type", "value", "region", "replica", "hlc", "winner"}, the
//     winning type first. A type conflict is shown even when the winning
//     type is an mvregister its policy settles.
// "regions" lists the siblings' regions, sorted, once each.
#ifndef MERIDIAN_NODE_REVIEW_QUEUE_H_
#define MERIDIAN_NODE_REVIEW_QUEUE_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "conflict/settle.h"
#include "crdt/causal_context.h"
#include "crdt/envelope.h"

namespace meridian::node {

// Whether `env` (the state of `key`) is in the review queue; if so, *out
// gets its entry and *context (may be null) the causal context that
// covers exactly the siblings shown (empty for a type conflict, which is
// not resolved by a write; see ResolveConflict in api.cc). `settler` may
// be null (no policies).
bool ReviewEntry(const std::string& key, const crdt::Envelope& env, uint64_t detected_ms,
                 const conflict::Settler* settler, nlohmann::json* out,
                 crdt::CausalContext* context);

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_REVIEW_QUEUE_H_
