// The node's metadata records in the store (the 'm' prefix): who this
// replica is, how far its clock has gone, and what it has applied. Start-up
// reads a handful of these records, never the states, so its time does not
// grow with the number of keys.
#ifndef MERIDIAN_STORAGE_NODE_META_H_
#define MERIDIAN_STORAGE_NODE_META_H_

#include <cstdint>
#include <map>
#include <string>

#include "crdt/causal_context.h"
#include "crdt/hlc.h"
#include "crdt/status.h"
#include "storage/leveldb_store.h"

namespace meridian::storage {

// Applied sequence per (origin replica, scope): what this node holds of
// each origin's delta log. The node's own entry is its last logged seq.
using AppliedVector = std::map<std::pair<crdt::ReplicaId, std::string>, uint64_t>;

struct NodeMeta {
  crdt::ReplicaId replica;  // node id + incarnation
  crdt::Hlc hlc_bound = 0;  // persisted HLC upper bound
  AppliedVector applied;
  uint64_t key_count = 0;   // keys with a stored state (deleted ones included)
};

// Metadata record names. DO NOT CHANGE: on disk.
inline constexpr std::string_view kMetaIdentity = "identity";
inline constexpr std::string_view kMetaHlcBound = "hlc_bound";
inline constexpr std::string_view kMetaApplied = "applied";
inline constexpr std::string_view kMetaKeyCount = "key_count";

// Reads the node's metadata. *fresh is true when the store has no identity
// yet (an empty data dir): the caller then creates one with a new
// incarnation (InitIdentity). A stored identity whose node id differs from
// `node_id` is refused (a data dir belongs to one node).
Status LoadNodeMeta(const Store& store, const std::string& node_id, NodeMeta* out, bool* fresh);

// Adds the records of a brand-new identity to `batch`.
void InitIdentity(const crdt::ReplicaId& replica, WriteBatch* batch);
void PutHlcBound(crdt::Hlc bound, WriteBatch* batch);
void PutApplied(const AppliedVector& applied, WriteBatch* batch);
void PutKeyCount(uint64_t count, WriteBatch* batch);

// Encodings (version byte + msgpack through crdt/codec.h).
std::string EncodeApplied(const AppliedVector& applied);
Status DecodeApplied(std::string_view bytes, AppliedVector* out);

}  // namespace meridian::storage

#endif  // MERIDIAN_STORAGE_NODE_META_H_
