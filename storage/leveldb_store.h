// The node's one LevelDB (DESIGN.md §6). This header and leveldb_store.cc
// are the only files that know LevelDB.
//
// Key layout, one byte of prefix per kind of record. DO NOT CHANGE: it is on
// disk.
//   's' + user key              -> state: an encoded crdt::Envelope
//   'l' + scope + 0x00 + u64 BE -> outgoing delta log entry (LogEntry
//                                  encoding) for sequence number seq
//   'm' + name                  -> metadata (see node_meta.h)
//   'c' + user key              -> conflict index entry: the key holds
//                                  concurrent values (conflict/
//                                  conflict_index.h encodes the entry)
//   'a' + u32 BE key length + user key + record id
//                               -> an audit record: a concurrent write
//                                  that lost under last-writer-wins
//                                  (conflict/conflict_index.h)
//   'd' + scope + 0x00 + u16 BE bucket + user key
//                               -> the key's 16-byte state digest
//                                  (storage/digests.h), written in the
//                                  same batch as the state it digests
//   'g' + user key              -> a collection candidate (GcCandidate
//                                  encoding): the key's state is a
//                                  tombstone to drop once causally stable
// Every write the node makes is one WriteBatch: atomic, and durable when
// Write() returns if StoreOptions::sync (group commit batches many
// requests into one Write), unless the batch defers its sync
// (WriteBatch::DeferSync): then it is visible when Write() returns and
// durable once a later Store::Sync() returns OK.
//
// Thread-safety: Store is safe for concurrent use; Write calls are
// serialised internally. A WriteBatch is used by one thread.
#ifndef MERIDIAN_STORAGE_LEVELDB_STORE_H_
#define MERIDIAN_STORAGE_LEVELDB_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/causal_context.h"
#include "crdt/status.h"
#include "storage/digests.h"

namespace meridian::storage {

struct StoreOptions {
  // true (default): Write() returns after the batch is on stable storage
  // (fsync), so an acknowledged write survives kill -9 and power loss.
  // false: Write() returns once the batch is in the OS page cache; a
  // process crash loses nothing, a power loss or kernel crash may lose the
  // last few seconds of acknowledged writes.
  bool sync = true;
  // LevelDB block cache.
  size_t cache_bytes = 64 << 20;
  // Create the directory (and parents) and the database when missing.
  bool create_if_missing = true;
};

// One record of the outgoing delta log.
struct LogEntry {
  std::string scope;  // placement scope ("" for keys no [[placement]] names)
  uint64_t seq = 0;   // per (replica, scope), from 1, contiguous
  std::string key;    // user key
  std::string delta;  // encoded crdt::Envelope holding the delta
};

// A tombstone waiting for causal stability (DESIGN.md §4 "Garbage"): the
// key's state may be dropped once `writer`'s writes up to `seq` are stable.
struct GcCandidate {
  std::string key;
  crdt::ReplicaId writer;
  uint64_t seq = 0;
  bool operator==(const GcCandidate& o) const {
    return key == o.key && writer == o.writer && seq == o.seq;
  }
};

class WriteBatch {
 public:
  WriteBatch();
  ~WriteBatch();
  WriteBatch(const WriteBatch&) = delete;
  WriteBatch& operator=(const WriteBatch&) = delete;

  void PutState(std::string_view key, std::string_view envelope);
  // Deletes the state only: a caller that removes a key's state also
  // removes its digest record (DeleteDigest), or the digest index
  // (storage/digests.h) no longer matches the states.
  void DeleteState(std::string_view key);
  // A scope containing a 0x00 byte cannot be laid out (the byte ends the
  // scope in the key) and is a programming error. These calls cannot
  // return a Status, so they record nothing and poison the batch instead:
  // Store::Write then refuses the whole batch with InvalidArgument and
  // applies none of it, so no log entry is ever silently dropped from an
  // otherwise committed batch. Clear() lifts the poison.
  void AppendLog(const LogEntry& entry);
  void DeleteLog(std::string_view scope, uint64_t seq);
  void PutMeta(std::string_view name, std::string_view value);
  void PutGcCandidate(const GcCandidate& candidate);
  void DeleteGcCandidate(std::string_view key);
  void PutConflict(std::string_view key, std::string_view entry);
  void DeleteConflict(std::string_view key);
  // Audit records of `key`, by `id` (overwritten when put again).
  void PutAudit(std::string_view key, std::string_view id, std::string_view record);
  // The digest record of `key` in `scope` (storage/digests.h). A scope with
  // a 0x00 byte or a bucket >= kBuckets poisons the batch as AppendLog does.
  void PutDigest(std::string_view scope, uint32_t bucket, std::string_view key,
                 const Digest& digest);
  void DeleteDigest(std::string_view scope, uint32_t bucket, std::string_view key);

  // Write() returns once the batch is in the OS page cache (visible to
  // reads, safe from a process crash), without waiting for fsync even on
  // a syncing store; a Store::Sync() begun after that makes it durable.
  // Kept by Clear().
  void DeferSync();

  // A raw record (a key of the layout above, prefix byte included), as a
  // backup holds it. For restoring a backup only (storage/backup.h): no
  // other caller writes records past the typed calls above.
  void PutRawRecord(std::string_view raw_key, std::string_view value);

  void Clear();
  size_t ApproximateSize() const;
  int Count() const;  // records put or deleted

 private:
  friend class Store;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A read view of a Store as of one moment (a LevelDB snapshot): reads
// given one see nothing written after it was taken. Shared by copying the
// SnapshotRef; the last copy releases it (it may outlive the Store). When
// the store is reopened after a write error, or closed, every snapshot
// taken before is lost: reads through it fail with Unavailable.
class StoreSnapshot;
using SnapshotRef = std::shared_ptr<const StoreSnapshot>;

class Store {
 public:
  // Opens (or, with create_if_missing, creates) the database in `dir`.
  // Fails with a Status naming the directory and LevelDB's reason (lock
  // held by another process, permission, corruption).
  static Status Open(const std::string& dir, const StoreOptions& options,
                     std::unique_ptr<Store>* out);
  ~Store();

  const std::string& dir() const;
  bool sync() const;

  // NotFound when the key has no state. `at`: read as of that snapshot of
  // this store (null: now).
  Status GetState(std::string_view key, std::string* envelope,
                  const StoreSnapshot* at = nullptr) const;
  // The states of several keys at once, as of now: keys[i]'s envelope goes
  // to (*envelopes)[i] when (*found)[i]. `keys` must be sorted (unsigned
  // bytes) without duplicates. One iterator serves all of them, so this is
  // cheaper than GetState per key for a group of writes, and, unlike
  // LevelDB's point lookups, a miss never counts towards a "seek
  // compaction" (a lookup of a key absent from several overlapping tables
  // charges a seek to the first; every new key a group writes is such a
  // miss, and the compactions they trigger rewrote a whole level after
  // every memtable flush).
  Status GetStates(const std::vector<std::string_view>& keys, std::vector<std::string>* envelopes,
                   std::vector<bool>* found) const;
  // A snapshot of the store as it is now.
  Status TakeSnapshot(SnapshotRef* out) const;
  Status GetMeta(std::string_view name, std::string* value) const;
  Status GetConflict(std::string_view key, std::string* entry) const;

  struct KeyValue {
    std::string key;
    std::string value;
  };
  // Conflict index entries of keys starting with `prefix`, strictly
  // greater than `after` (when non-empty), at most `limit`, in key order.
  // *out is replaced.
  Status ScanConflicts(std::string_view prefix, std::string_view after, size_t limit,
                       std::vector<KeyValue>* out) const;
  // The audit records of `key` (KeyValue::key is the record id), by id,
  // at most `limit`. *out is replaced.
  Status ScanAudit(std::string_view key, size_t limit, std::vector<KeyValue>* out) const;

  // Applies the batch atomically (and durably when sync). A full disk gives
  // Status::IOError whose message says "no space"; see IsNoSpace(). After
  // any write error the store stays readable, and the next Write reopens
  // the database (LevelDB otherwise refuses every later write) so that
  // writes resume once space returns.
  //
  // Reopening replays LevelDB's log into a new table, which needs room.
  // So after a write error the next Write first checks the file system's
  // free space and, while it is below kReopenReserveBytes plus the batch's
  // size, fails with "no space" without closing anything: the old handle
  // keeps serving reads until the reopen can succeed. Should a reopen fail
  // anyway, reads fail with IOError until a later Write (or a read, at
  // most once a second) reopens the database.
  //
  // A poisoned batch (see WriteBatch::AppendLog) is refused with
  // InvalidArgument. An empty batch succeeds without reaching LevelDB. The
  // batch is left unchanged either way; Clear() it to reuse it.
  Status Write(WriteBatch* batch);
  // Makes every batch whose Write() returned before this call durable,
  // those that deferred their sync included (a no-op unless
  // StoreOptions::sync). It fsyncs LevelDB's write-ahead log files
  // through descriptors of its own and takes no lock a Write holds, so
  // writes go on meanwhile: one thread can sync what another has just
  // made visible. A failure (IOError; "no space" for ENOSPC, see
  // IsNoSpace) leaves those batches visible but of unknown durability,
  // and the next Write reopens the database first, as after a failed
  // write.
  Status Sync();
  static bool IsNoSpace(const Status& s);
  static constexpr uint64_t kReopenReserveBytes = uint64_t{5} << 20;

  // States in key order: keys starting with `prefix`, strictly greater
  // than `after` (when non-empty), at most `limit` of them (limit 0 gives
  // none). Keys compare as unsigned bytes. `after` need not start with
  // `prefix`. *out is replaced.
  struct KeyState {
    std::string key;
    std::string envelope;
  };
  Status Scan(std::string_view prefix, std::string_view after, size_t limit,
              std::vector<KeyState>* out) const;

  // Log entries of `scope` with seq >= from_seq, ascending, at most
  // `limit`. *out is replaced. A scope containing 0x00 is InvalidArgument
  // here and in LastLogSeq.
  Status ReadLog(std::string_view scope, uint64_t from_seq, size_t limit,
                 std::vector<LogEntry>* out) const;
  // The highest seq in the log of `scope` (0 when empty); O(log n), for
  // start-up.
  Status LastLogSeq(std::string_view scope, uint64_t* seq) const;
  // The lowest seq in the log of `scope` (0 when empty); O(log n).
  Status FirstLogSeq(std::string_view scope, uint64_t* seq) const;
  // Collection (DESIGN.md §4): deletes the entries of `scope` with seq <=
  // through_seq, oldest first, at most `limit` of them, in one Write.
  // *removed: how many went. Call again while it returns `limit`. LevelDB
  // reclaims their space in its own compactions. The Write does not wait
  // for fsync (a truncation lost in a crash is simply done again; the next
  // synced Write makes it durable), and each call resumes its scan past
  // the entries earlier calls removed rather than stepping over their
  // tombstones.
  Status TruncateLog(std::string_view scope, uint64_t through_seq, size_t limit,
                     size_t* removed);
  // Collection candidates with key strictly greater than `after` (all when
  // empty), in key order, at most `limit`. *out is replaced. A record that
  // does not decode is Corruption.
  Status ScanGcCandidates(std::string_view after, size_t limit,
                          std::vector<GcCandidate>* out) const;
  // Compacts the whole database now (blocking; LevelDB otherwise compacts
  // in the background as it sees fit): deleted and overwritten records
  // leave the files. For tests and tools.
  Status CompactAll();

  // Digest records of `scope` (storage/digests.h) whose bucket is in
  // [first_bucket, end_bucket), in (bucket, key) order, strictly after
  // (after->bucket, after->key) when `after` is not null, at most `limit`
  // of them (limit 0 gives none). *out is replaced. A scope containing 0x00
  // is InvalidArgument; a record that is not laid out as above (short key,
  // bucket >= kBuckets, value not 16 bytes) is Corruption.
  struct DigestRecord {
    uint32_t bucket = 0;
    std::string key;  // user key
    Digest digest;
  };
  Status ScanDigests(std::string_view scope, uint32_t first_bucket, uint32_t end_bucket,
                     const DigestRecord* after, size_t limit, std::vector<DigestRecord>* out,
                     const StoreSnapshot* at = nullptr) const;
  // The scopes that have at least one digest record, ascending (one seek
  // per scope, not a scan of the records).
  Status DigestScopes(std::vector<std::string>* out) const;

  // Every record of the store as of snapshot `at` (the layout above,
  // prefix byte included), in key order, each passed to `each`; an error
  // it returns stops the iteration and is returned. For backups
  // (GET /v1/admin/backup): it reads through one LevelDB iterator, so
  // memory stays bounded whatever the store's size, and writes go on
  // meanwhile (they are not seen). Unavailable when the snapshot was lost
  // to a reopen.
  Status ExportRecords(
      const StoreSnapshot& at,
      const std::function<Status(std::string_view key, std::string_view value)>& each) const;

  // Rough figures for /metrics and /v1/status.
  uint64_t ApproximateStateBytes() const;
  // Number of Write() calls that reached LevelDB, and of fsyncs: syncing
  // Write() calls plus Sync() calls (0 unless sync).
  uint64_t writes() const;
  uint64_t syncs() const;
  // Number of times the database was closed and reopened after a write
  // error.
  uint64_t reopens() const;

  // TEST hook: the next `n` Write() calls fail as a full disk would,
  // without reaching LevelDB (and the one after reopens the database).
  void TEST_FailWritesWithNoSpace(int n);
  // TEST hook, one level lower: while `full`, LevelDB's fsyncs fail with
  // ENOSPC (a file system with delayed allocation reports a full disk
  // there), which puts LevelDB in its sticky error state, and the free
  // space probe reports 0 bytes. Exercises the real reopen path.
  void TEST_SetDiskFull(bool full);

 private:
  // Records of one kind (`kind` prefix byte) whose key (less the kind)
  // starts with `prefix` and is strictly greater than `after` (when
  // non-empty), at most `limit`, each passed to `add` (key without the
  // kind, value). `what` names them in errors.
  Status ScanKind(char kind, std::string_view prefix, std::string_view after, size_t limit,
                  const std::function<void(std::string_view, std::string_view)>& add,
                  const std::string& what) const;

  Store();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The kind of a raw record by its prefix byte (ExportRecords, backups).
enum class RecordKind { kState, kLog, kMeta, kConflict, kAudit, kDigest, kGcCandidate, kUnknown };
RecordKind KindOfRecord(std::string_view raw_key);
// For a raw meta record: its name (the key less the prefix).
std::string_view RecordName(std::string_view raw_key);

// Encoding of a log entry value (the key carries scope and seq):
// version byte, then [str key, bin delta]. Exposed for tests and gossip.
std::string EncodeLogValue(std::string_view key, std::string_view delta);
Status DecodeLogValue(std::string_view bytes, std::string* key, std::string* delta);

}  // namespace meridian::storage

#endif  // MERIDIAN_STORAGE_LEVELDB_STORE_H_
