// The node's metadata records in the store (the 'm' prefix): who this
// replica is, how far its clock has gone, and what it has applied. Start-up
// reads a handful of these records and never the states; it does read the
// digest index (16 bytes + the key per key, storage/digests.h) to rebuild
// the bucket sums, so that part of its time grows with the number of keys.
#ifndef MERIDIAN_STORAGE_NODE_META_H_
#define MERIDIAN_STORAGE_NODE_META_H_

#include <cstdint>
#include <map>
#include <string>

#include "crdt/causal_context.h"
#include "crdt/hlc.h"
#include "crdt/status.h"
#include "storage/digests.h"
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
  BucketSums digest_sums;   // of the default scope, from the digest index
  // Of every other placement scope with a digest record (gossip/placement.h).
  std::map<std::string, BucketSums> placed_sums;
  // A fresh incarnation that has not yet completed an anti-entropy round
  // with a peer (DESIGN.md §3): it takes no writes until it has.
  bool bootstrap_pending = false;
  // Retention horizon (gossip/protocol.h): the incarnations this node
  // retired (node id -> the highest retired), when it last had two-way
  // contact with a peer (wall clock ms; 0: never recorded), and whether a
  // peer retired this incarnation (its data must be moved aside before the
  // node starts again as a new incarnation).
  std::map<std::string, uint64_t> expired;
  uint64_t last_contact_ms = 0;
  bool retired = false;
  // From a restored backup, until the first completed repair: the
  // backed-up incarnation's applied vector (kMetaRestoredApplied).
  AppliedVector restored_applied;
};

// Metadata record names. DO NOT CHANGE: on disk.
inline constexpr std::string_view kMetaIdentity = "identity";
inline constexpr std::string_view kMetaHlcBound = "hlc_bound";
inline constexpr std::string_view kMetaApplied = "applied";
inline constexpr std::string_view kMetaKeyCount = "key_count";
// The digest index is complete (storage/digests.h).
inline constexpr std::string_view kMetaDigestIndex = "digest_index";
// The scoping the digest index was built under (storage/digests.h
// DigestScoping): "" (or absent) for none, else its name's SHA-256 in hex.
inline constexpr std::string_view kMetaDigestScopes = "digest_scopes";
// 1 while a fresh incarnation has not bootstrapped, 0 (or absent) after.
inline constexpr std::string_view kMetaBootstrap = "bootstrap";
// The stable vector below which anti-entropy repairs are refused
// (node/committer.h "Collection"; EncodeApplied encoding).
inline constexpr std::string_view kMetaCollectFloor = "collect_floor";
inline constexpr std::string_view kMetaExpired = "expired";
inline constexpr std::string_view kMetaLastContact = "last_contact";
inline constexpr std::string_view kMetaRetired = "retired";
// The data dir was filled by `meridianctl restore` (storage/backup.h):
// which backup it came from. Written by the restore alone, with no
// identity, so the node takes a new incarnation at its first start.
inline constexpr std::string_view kMetaRestored = "restored";
// The backed-up incarnation's applied vector (EncodeApplied), kept by the
// restore until the restored node's first completed anti-entropy repair
// (node/committer.h "Repair"); then written empty.
inline constexpr std::string_view kMetaRestoredApplied = "restored_applied";

// Reads the node's metadata. *fresh is true when the store has no identity
// yet (an empty data dir): the caller then creates one with a new
// incarnation (InitIdentity). A stored identity whose node id differs from
// `node_id` is refused (a data dir belongs to one node). The digest sums
// come from the digest index (LoadBucketSums); a store with an identity or
// a state but no complete index is refused with FailedPrecondition (run
// EnsureDigestIndex first), so the sums never silently miss keys.
Status LoadNodeMeta(const Store& store, const std::string& node_id, NodeMeta* out, bool* fresh);

// Adds the records of a brand-new identity to `batch`, and the record that
// says the (empty) digest index is complete, so a fresh data dir never
// needs an index build. REQUIRES: the store holds no state, or
// EnsureDigestIndex has run.
void InitIdentity(const crdt::ReplicaId& replica, WriteBatch* batch);
void PutHlcBound(crdt::Hlc bound, WriteBatch* batch);
void PutApplied(const AppliedVector& applied, WriteBatch* batch);
void PutKeyCount(uint64_t count, WriteBatch* batch);
void PutBootstrapPending(bool pending, WriteBatch* batch);
void PutExpired(const std::map<std::string, uint64_t>& expired, WriteBatch* batch);
void PutLastContact(uint64_t wall_ms, WriteBatch* batch);
void PutRetired(WriteBatch* batch);

// Encodings (version byte + msgpack through crdt/codec.h).
std::string EncodeApplied(const AppliedVector& applied);
Status DecodeApplied(std::string_view bytes, AppliedVector* out);

}  // namespace meridian::storage

#endif  // MERIDIAN_STORAGE_NODE_META_H_
