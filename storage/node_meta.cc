// Metadata records (node_meta.h). Every value is a version byte, then one
// msgpack value:
//   identity:  [str node, uint incarnation]           (crdt::EncodeReplica)
//   hlc_bound: uint bound
//   applied:   [[[str node, uint incarnation], str scope, uint seq]...]
//              strictly ascending by (replica, scope): the map's order, so
//              equal vectors encode to equal bytes.
//   key_count: uint count
//   digest_index: uint format (written and read by storage/digests.cc)
//   bootstrap: uint 1 (pending) or 0
//   expired:   [[str node, uint incarnation]...]  strictly ascending by node
//   last_contact: uint wall clock ms
//   retired:   uint 1
#include "storage/node_meta.h"

#include <string_view>
#include <utility>
#include <vector>

#include "crdt/codec.h"

namespace meridian::storage {
namespace {

// DO NOT CHANGE: on disk.
constexpr uint8_t kMetaFormatVersion = 1;

std::string EncodeIdentity(const crdt::ReplicaId& replica) {
  crdt::Encoder e(kMetaFormatVersion);
  crdt::EncodeReplica(replica, &e);
  return e.Take();
}

Status DecodeIdentity(std::string_view bytes, crdt::ReplicaId* out) {
  crdt::Decoder d;
  MERIDIAN_RETURN_IF_ERROR(d.Parse(bytes, kMetaFormatVersion));
  return crdt::DecodeReplica(d.root(), out);
}

Status DecodeUintRecord(std::string_view bytes, uint64_t* out) {
  crdt::Decoder d;
  MERIDIAN_RETURN_IF_ERROR(d.Parse(bytes, kMetaFormatVersion));
  return d.root().Uint(out, "metadata value");
}

Status DecodeExpired(std::string_view bytes, std::map<std::string, uint64_t>* out) {
  crdt::Decoder d;
  MERIDIAN_RETURN_IF_ERROR(d.Parse(bytes, kMetaFormatVersion));
  std::vector<crdt::Cursor> items;
  MERIDIAN_RETURN_IF_ERROR(d.root().Array(&items, "expired incarnations"));
  std::map<std::string, uint64_t> result;
  for (const crdt::Cursor& item : items) {
    crdt::ReplicaId r;
    MERIDIAN_RETURN_IF_ERROR(crdt::DecodeReplica(item, &r));
    if (!result.empty() && !(result.rbegin()->first < r.node)) {
      return Status::Corruption("expired incarnations are not strictly ascending by node");
    }
    result.emplace_hint(result.end(), r.node, r.incarnation);
  }
  *out = std::move(result);
  return Status::OK();
}

// Reads record `name`; *found is false (and OK) when it is absent.
Status GetOptionalMeta(const Store& store, std::string_view name, std::string* value, bool* found) {
  Status s = store.GetMeta(name, value);
  *found = s.ok();
  if (s.IsNotFound()) return Status::OK();
  return s;
}

}  // namespace

Status LoadNodeMeta(const Store& store, const std::string& node_id, NodeMeta* out, bool* fresh) {
  if (node_id.empty()) return Status::InvalidArgument("node id is empty");
  NodeMeta meta;
  std::string value;
  bool found = false;

  MERIDIAN_RETURN_IF_ERROR(GetOptionalMeta(store, kMetaIdentity, &value, &found));
  if (found) {
    Status s = DecodeIdentity(value, &meta.replica);
    if (!s.ok()) return s.WithContext("identity record in " + store.dir());
    if (meta.replica.node != node_id) {
      return Status::FailedPrecondition(
          "data dir " + store.dir() + " belongs to node '" + meta.replica.node + "' (incarnation " +
          std::to_string(meta.replica.incarnation) + "), not to node '" + node_id +
          "'; a data dir serves one node id, so give this node its own data dir");
    }
  }
  *fresh = !found;

  MERIDIAN_RETURN_IF_ERROR(GetOptionalMeta(store, kMetaHlcBound, &value, &found));
  if (found) {
    Status s = DecodeUintRecord(value, &meta.hlc_bound);
    if (!s.ok()) return s.WithContext("hlc bound record in " + store.dir());
  }

  MERIDIAN_RETURN_IF_ERROR(GetOptionalMeta(store, kMetaApplied, &value, &found));
  if (found) {
    Status s = DecodeApplied(value, &meta.applied);
    if (!s.ok()) return s.WithContext("applied vector record in " + store.dir());
  }

  MERIDIAN_RETURN_IF_ERROR(GetOptionalMeta(store, kMetaKeyCount, &value, &found));
  if (found) {
    Status s = DecodeUintRecord(value, &meta.key_count);
    if (!s.ok()) return s.WithContext("key count record in " + store.dir());
  }

  MERIDIAN_RETURN_IF_ERROR(GetOptionalMeta(store, kMetaBootstrap, &value, &found));
  if (found) {
    uint64_t pending = 0;
    Status s = DecodeUintRecord(value, &pending);
    if (!s.ok()) return s.WithContext("bootstrap record in " + store.dir());
    meta.bootstrap_pending = pending != 0;
  }

  MERIDIAN_RETURN_IF_ERROR(GetOptionalMeta(store, kMetaExpired, &value, &found));
  if (found) {
    Status s = DecodeExpired(value, &meta.expired);
    if (!s.ok()) return s.WithContext("expired incarnations record in " + store.dir());
  }

  MERIDIAN_RETURN_IF_ERROR(GetOptionalMeta(store, kMetaLastContact, &value, &found));
  if (found) {
    Status s = DecodeUintRecord(value, &meta.last_contact_ms);
    if (!s.ok()) return s.WithContext("last contact record in " + store.dir());
  }

  MERIDIAN_RETURN_IF_ERROR(GetOptionalMeta(store, kMetaRetired, &value, &found));
  if (found) {
    uint64_t retired = 0;
    Status s = DecodeUintRecord(value, &retired);
    if (!s.ok()) return s.WithContext("retired record in " + store.dir());
    meta.retired = retired != 0;
  }

  MERIDIAN_RETURN_IF_ERROR(GetOptionalMeta(store, kMetaRestoredApplied, &value, &found));
  if (found) {
    Status s = DecodeApplied(value, &meta.restored_applied);
    if (!s.ok()) return s.WithContext("restored applied vector in " + store.dir());
  }

  bool indexed = false;
  MERIDIAN_RETURN_IF_ERROR(DigestIndexBuilt(store, &indexed));
  if (!indexed) {
    std::vector<Store::KeyState> any;
    MERIDIAN_RETURN_IF_ERROR(store.Scan("", "", 1, &any));
    if (!*fresh || !any.empty()) {
      return Status::FailedPrecondition(
          "data dir " + store.dir() +
          " has no complete digest index (it predates the index, or a build was interrupted); "
          "storage::EnsureDigestIndex builds it");
    }
  }
  Status s = LoadBucketSums(store, "", &meta.digest_sums);
  if (!s.ok()) return s.WithContext("digest index in " + store.dir());
  std::vector<std::string> scopes;
  s = store.DigestScopes(&scopes);
  for (size_t i = 0; s.ok() && i < scopes.size(); ++i) {
    if (!scopes[i].empty()) s = LoadBucketSums(store, scopes[i], &meta.placed_sums[scopes[i]]);
  }
  if (!s.ok()) return s.WithContext("digest index in " + store.dir());

  *out = std::move(meta);
  return Status::OK();
}

void InitIdentity(const crdt::ReplicaId& replica, WriteBatch* batch) {
  batch->PutMeta(kMetaIdentity, EncodeIdentity(replica));
  PutDigestIndexBuilt(batch);
}

void PutHlcBound(crdt::Hlc bound, WriteBatch* batch) {
  crdt::Encoder e(kMetaFormatVersion);
  e.Uint(bound);
  batch->PutMeta(kMetaHlcBound, e.Take());
}

void PutKeyCount(uint64_t count, WriteBatch* batch) {
  crdt::Encoder e(kMetaFormatVersion);
  e.Uint(count);
  batch->PutMeta(kMetaKeyCount, e.Take());
}

void PutBootstrapPending(bool pending, WriteBatch* batch) {
  crdt::Encoder e(kMetaFormatVersion);
  e.Uint(pending ? 1 : 0);
  batch->PutMeta(kMetaBootstrap, e.Take());
}

void PutExpired(const std::map<std::string, uint64_t>& expired, WriteBatch* batch) {
  crdt::Encoder e(kMetaFormatVersion);
  e.Array(static_cast<uint32_t>(expired.size()));
  for (const auto& [node, incarnation] : expired) {
    crdt::EncodeReplica(crdt::ReplicaId{node, incarnation}, &e);
  }
  batch->PutMeta(kMetaExpired, e.Take());
}

void PutLastContact(uint64_t wall_ms, WriteBatch* batch) {
  crdt::Encoder e(kMetaFormatVersion);
  e.Uint(wall_ms);
  batch->PutMeta(kMetaLastContact, e.Take());
}

void PutRetired(WriteBatch* batch) {
  crdt::Encoder e(kMetaFormatVersion);
  e.Uint(1);
  batch->PutMeta(kMetaRetired, e.Take());
}

void PutApplied(const AppliedVector& applied, WriteBatch* batch) {
  batch->PutMeta(kMetaApplied, EncodeApplied(applied));
}

std::string EncodeApplied(const AppliedVector& applied) {
  crdt::Encoder e(kMetaFormatVersion);
  e.Array(static_cast<uint32_t>(applied.size()));
  for (const auto& [origin_scope, seq] : applied) {
    e.Array(3);
    crdt::EncodeReplica(origin_scope.first, &e);
    e.Str(origin_scope.second);
    e.Uint(seq);
  }
  return e.Take();
}

Status DecodeApplied(std::string_view bytes, AppliedVector* out) {
  crdt::Decoder d;
  MERIDIAN_RETURN_IF_ERROR(d.Parse(bytes, kMetaFormatVersion));
  std::vector<crdt::Cursor> items;
  MERIDIAN_RETURN_IF_ERROR(d.root().Array(&items, "applied vector"));
  AppliedVector result;
  for (const crdt::Cursor& item : items) {
    std::vector<crdt::Cursor> f;
    MERIDIAN_RETURN_IF_ERROR(item.Array(&f, "applied vector entry", 3));
    std::pair<crdt::ReplicaId, std::string> origin_scope;
    MERIDIAN_RETURN_IF_ERROR(crdt::DecodeReplica(f[0], &origin_scope.first));
    MERIDIAN_RETURN_IF_ERROR(f[1].Str(&origin_scope.second, "applied vector scope"));
    uint64_t seq = 0;
    MERIDIAN_RETURN_IF_ERROR(f[2].Uint(&seq, "applied vector seq"));
    if (!result.empty() && !(result.rbegin()->first < origin_scope)) {
      return Status::Corruption("applied vector entries are not strictly ascending");
    }
    result.emplace_hint(result.end(), std::move(origin_scope), seq);
  }
  *out = std::move(result);
  return Status::OK();
}

}  // namespace meridian::storage
