// Per-key state digests and their bucket sums: the leaves of the
// anti-entropy Merkle tree (DESIGN.md §4), kept up to date on every write
// so that a round of anti-entropy never scans the data set.
//
// A key's digest is the first 16 bytes of SHA-256 over (the key's length
// as a u32 big-endian, the key, the stored envelope bytes). Stored
// envelopes are canonical (crdt/codec.h), so two replicas that hold the
// same state for a key hold the same digest. A key's bucket is the first
// kBucketBits bits of SHA-256(key): it depends on the key alone, so a key
// never changes bucket. A bucket's sum is the sum, modulo 2^128, of the
// digests of its keys: a write updates it by adding the new digest and
// subtracting the old one, and the sum of an empty bucket is zero.
//
// On disk (storage/leveldb_store.h, prefix 'd'): one record per key with a
// state, 'd' + scope + 0x00 + bucket (u16 big-endian) + user key -> the
// 16-byte digest, written in the same WriteBatch as the state it digests.
// Listing a bucket is one range scan; the sums are rebuilt from these
// records at start (LoadBucketSums) and then kept in memory by the writer.
// A data dir written before the index existed gets it from
// EnsureDigestIndex at start.
//
// Each placement scope (gossip/placement.h; "" for unplaced keys) has its
// own records and sums: one Merkle tree per scope. The writer decides a
// key's scope (node/committer.h).
#ifndef MERIDIAN_STORAGE_DIGESTS_H_
#define MERIDIAN_STORAGE_DIGESTS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crdt/status.h"

namespace meridian::storage {

class Store;
class StoreSnapshot;
class WriteBatch;

// 128 bits, added and subtracted modulo 2^128.
struct Digest {
  uint64_t hi = 0;
  uint64_t lo = 0;

  Digest& operator+=(const Digest& o);
  Digest& operator-=(const Digest& o);
  friend Digest operator+(Digest a, const Digest& b) { return a += b; }
  friend Digest operator-(Digest a, const Digest& b) { return a -= b; }
  bool operator==(const Digest& o) const { return hi == o.hi && lo == o.lo; }
  bool operator!=(const Digest& o) const { return !(*this == o); }
  bool zero() const { return hi == 0 && lo == 0; }

  // 16 bytes, big-endian (hi first): the on-disk and wire form.
  std::string ToBytes() const;
  // False unless `bytes` is exactly 16 bytes.
  static bool FromBytes(std::string_view bytes, Digest* out);
  // 32 lowercase hex digits (for /v1/status and logs).
  std::string Hex() const;
};

inline constexpr uint32_t kBucketBits = 12;
inline constexpr uint32_t kBuckets = 1u << kBucketBits;  // 4096

Digest KeyDigest(std::string_view key, std::string_view envelope);

// SHA-256 over bytes fed in pieces (the backup file's checksum,
// storage/backup_format.h). Kept here so that OpenSSL stays in digests.cc.
// Not thread-safe; movable, not copyable.
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(Sha256Stream&& o) noexcept;
  Sha256Stream& operator=(Sha256Stream&& o) noexcept;
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;

  void Add(std::string_view bytes);
  // The 32-byte digest of everything added. Ends the stream: call nothing
  // but the destructor afterwards.
  std::string Finish();

 private:
  void* ctx_;  // EVP_MD_CTX
};
uint32_t BucketOf(std::string_view key);  // in [0, kBuckets)

// The bucket sums of one scope. A value type; not thread-safe.
class BucketSums {
 public:
  BucketSums() : sums_(kBuckets) {}
  const Digest& at(uint32_t bucket) const { return sums_.at(bucket); }
  // A key of `bucket` went from digest `before` to `after` (a zero Digest
  // for "no state").
  void Replace(uint32_t bucket, const Digest& before, const Digest& after);
  // The sum of every bucket: equal on replicas with equal states.
  Digest Total() const;
  bool operator==(const BucketSums& o) const { return sums_ == o.sums_; }
  bool operator!=(const BucketSums& o) const { return !(*this == o); }

 private:
  std::vector<Digest> sums_;
};

// The keys of one bucket with their digests, in key order, as the store
// holds them now (or as of snapshot `at` of it).
Status ScanBucket(const Store& store, std::string_view scope, uint32_t bucket,
                  std::vector<std::pair<std::string, Digest>>* out,
                  const StoreSnapshot* at = nullptr);
// Rebuilds a scope's sums from its digest records (one scan of the 'd'
// records of that scope; at start).
Status LoadBucketSums(const Store& store, std::string_view scope, BucketSums* out);
// What EnsureDigestIndex did.
struct DigestIndexReport {
  bool built = false;          // false: the index was already there
  bool rescoped = false;       // built again because the placement scopes changed
  uint64_t keys = 0;           // states indexed
  uint64_t stale_removed = 0;  // digest records of an earlier, unfinished build removed
};
// Which scope each key's digest record belongs to (placement scopes,
// gossip/placement.h), and a name for that rule: an index built under
// another name is built again (the "digest_scopes" metadata record keeps
// a hash of the name it was built under; absent: ""). Default: every key
// in "".
struct DigestScoping {
  std::function<std::string(std::string_view key)> scope_of;  // null: ""
  std::string name;  // "" exactly when scope_of puts every key in ""
};
// Builds the digest index of every state when the data dir predates it
// (metadata record "digest_index" absent) or was indexed under other
// scopes than `scoping` names (a restored backup, a placement added), in
// batches of bounded size, then writes that record; a no-op otherwise.
// Safe to interrupt: an interrupted build starts again from scratch at the
// next start (it first removes every digest record of every scope, then
// indexes every state). `report` may be null. An empty data dir (no
// identity, no state, no digest record) is left as it is, but for the
// scopes' name when it is not "": InitIdentity marks its index complete.
// REQUIRES: nothing else writes to the store meanwhile (call it at start,
// before the applier runs).
Status EnsureDigestIndex(Store* store, DigestIndexReport* report = nullptr,
                         const DigestScoping& scoping = DigestScoping());
// Whether the "digest_index" record says the index is complete.
Status DigestIndexBuilt(const Store& store, bool* built);
// Adds the "digest_index" record to `batch`: the index is complete. For
// InitIdentity (a store with no state yet) and EnsureDigestIndex only.
void PutDigestIndexBuilt(WriteBatch* batch);

}  // namespace meridian::storage

#endif  // MERIDIAN_STORAGE_DIGESTS_H_
