// The only file that knows LevelDB. Layout and contract: leveldb_store.h.
//
// Locking: write_mu serialises Write() and everything that replaces the
// DB handle; db_mu guards the handle itself, shared by reads and by the
// LevelDB write (LevelDB is internally thread-safe), exclusive only while
// the handle is closed and reopened. Lock order: write_mu, then db_mu.
#include "storage/leveldb_store.h"

#include <leveldb/cache.h>
#include <leveldb/db.h>
#include <leveldb/env.h>
#include <leveldb/filter_policy.h>
#include <leveldb/iterator.h>
#include <leveldb/options.h>
#include <leveldb/status.h>
#include <leveldb/write_batch.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <system_error>
#include <utility>

#include "crdt/codec.h"

namespace meridian::storage {
namespace {

// Key prefixes. DO NOT CHANGE: on disk.
constexpr char kStatePrefix = 's';
constexpr char kLogPrefix = 'l';
constexpr char kMetaPrefix = 'm';
constexpr char kConflictPrefix = 'c';
constexpr char kDigestPrefix = 'd';
constexpr char kGcPrefix = 'g';
constexpr char kAuditPrefix = 'a';

// Collection candidate value: version byte, then [replica writer, uint seq].
constexpr uint8_t kGcValueVersion = 1;

// Log entry value: version byte, then [str key, bin delta].
constexpr uint8_t kLogValueVersion = 1;

// LevelDB's memtable size: a reopen may have to write up to this much as a
// new table, which is what Store::kReopenReserveBytes provides for.
constexpr size_t kWriteBufferBytes = size_t{4} << 20;

// How often a read may try to reopen a database whose reopen failed.
constexpr std::chrono::seconds kReadReopenInterval{1};

leveldb::Slice ToSlice(std::string_view s) { return leveldb::Slice(s.data(), s.size()); }
std::string_view ToView(const leveldb::Slice& s) { return std::string_view(s.data(), s.size()); }

std::string PrefixedKey(char prefix, std::string_view key) {
  std::string out;
  out.reserve(1 + key.size());
  out.push_back(prefix);
  out.append(key);
  return out;
}

// 'a' + u32 BE length + key: every audit record of the key, and only
// those, starts with it.
std::string AuditKeyPrefix(std::string_view key) {
  std::string out;
  out.reserve(5 + key.size());
  out.push_back(kAuditPrefix);
  const uint32_t n = static_cast<uint32_t>(key.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((n >> shift) & 0xff));
  out.append(key);
  return out;
}

// 'l' + scope + 0x00: every log key of the scope, and only those, starts
// with it because a scope never contains 0x00.
std::string LogScopePrefix(std::string_view scope) {
  std::string out = PrefixedKey(kLogPrefix, scope);
  out.push_back('\0');
  return out;
}

// Big-endian so that byte order is numeric order.
void AppendBigEndian64(uint64_t v, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

uint64_t DecodeBigEndian64(std::string_view bytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(bytes[i]);
  return v;
}

std::string LogKey(std::string_view scope, uint64_t seq) {
  std::string key = LogScopePrefix(scope);
  AppendBigEndian64(seq, &key);
  return key;
}

bool ScopeIsValid(std::string_view scope) { return scope.find('\0') == std::string_view::npos; }

// 'd' + scope + 0x00: every digest record of the scope, and only those.
std::string DigestScopePrefix(std::string_view scope) {
  std::string out = PrefixedKey(kDigestPrefix, scope);
  out.push_back('\0');
  return out;
}

void AppendBigEndian16(uint32_t v, std::string* out) {
  out->push_back(static_cast<char>((v >> 8) & 0xff));
  out->push_back(static_cast<char>(v & 0xff));
}

// 'd' + scope + 0x00 + u16 BE bucket + key. REQUIRES: bucket < 2^16.
std::string DigestKey(std::string_view scope, uint32_t bucket, std::string_view key) {
  std::string out = DigestScopePrefix(scope);
  out.reserve(out.size() + 2 + key.size());
  AppendBigEndian16(bucket, &out);
  out.append(key);
  return out;
}

Status BadDigestBucket(uint32_t bucket) {
  return Status::InvalidArgument("digest bucket " + std::to_string(bucket) + " is not below " +
                                 std::to_string(kBuckets));
}

Status BadScope() {
  return Status::InvalidArgument(
      "log scope contains a 0x00 byte, which the log key layout forbids");
}

bool ContainsCaseInsensitive(std::string_view haystack, std::string_view needle) {
  auto it = std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(),
                        [](char a, char b) {
                          return std::tolower(static_cast<unsigned char>(a)) ==
                                 std::tolower(static_cast<unsigned char>(b));
                        });
  return it != haystack.end();
}

Status NoSpace(std::string_view detail) {
  return Status::IOError("no space left on device: " + std::string(detail));
}

// `context` says what was being done and names the directory.
Status FromLevelDb(const leveldb::Status& s, const std::string& context) {
  if (s.ok()) return Status::OK();
  const std::string text = context + ": " + s.ToString();
  if (s.IsNotFound()) return Status::NotFound(text);
  if (s.IsCorruption()) return Status::Corruption(text);
  if (s.IsInvalidArgument()) return Status::InvalidArgument(text);
  if (s.IsNotSupportedError()) return Status::FailedPrecondition(text);
  if (ContainsCaseInsensitive(text, "no space left on device")) return NoSpace(text);
  return Status::IOError(text);
}

// Fault injection below LevelDB (TEST_SetDiskFull): while `full` is set,
// Sync fails with the text a real ENOSPC gives; appends still reach the
// page cache, as they do on a file system with delayed allocation.
class FaultFile : public leveldb::WritableFile {
 public:
  FaultFile(leveldb::WritableFile* base, std::string name, const std::atomic<bool>* full)
      : base_(base), name_(std::move(name)), full_(full) {}

  leveldb::Status Append(const leveldb::Slice& data) override { return base_->Append(data); }
  leveldb::Status Close() override { return base_->Close(); }
  leveldb::Status Flush() override { return base_->Flush(); }
  leveldb::Status Sync() override {
    if (full_->load()) return leveldb::Status::IOError(name_, "No space left on device");
    return base_->Sync();
  }

 private:
  std::unique_ptr<leveldb::WritableFile> base_;
  std::string name_;
  const std::atomic<bool>* full_;
};

// LevelDB's background work (memtable flushes and compactions) runs on
// Env::Default()'s one background thread. It yields to the node's request
// path: the first job it runs lowers that thread's CPU priority to
// kBackgroundNice and its I/O priority to best-effort level 7 (Linux
// priorities are per thread). Flushes and compactions come in bursts (the
// replicas of a cluster fill their memtables in step, so all of them
// compact at once), and at the request path's priority they took the cores
// from the applier, gossip and HTTP threads for hundreds of milliseconds
// at a time (bench/README.md, "The replication lag tail"). The I/O
// priority matters only under an I/O scheduler that honours it (bfq).
// Background work still gets every idle cycle,
// which is ample below saturation; if it ever falls behind, LevelDB's own
// write throttling (level-0 slowdown and stop) takes over, as before.
constexpr int kBackgroundNice = 10;

void LowerThisThreadsPriority() {
  thread_local bool lowered = false;
  if (lowered) return;
  lowered = true;
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  // Best effort: failing leaves the thread as it was.
  (void)::setpriority(PRIO_PROCESS, tid, kBackgroundNice);
  constexpr int kIoprioClassBe = 2, kIoprioClassShift = 13, kIoprioWhoProcess = 1;
  (void)::syscall(SYS_ioprio_set, kIoprioWhoProcess, static_cast<int>(tid),
                  (kIoprioClassBe << kIoprioClassShift) | 7);
}

class FaultEnv : public leveldb::EnvWrapper {
 public:
  FaultEnv() : EnvWrapper(leveldb::Env::Default()) {}

  void SetFull(bool full) { full_.store(full); }
  bool full() const { return full_.load(); }

  void Schedule(void (*function)(void* arg), void* arg) override {
    auto* job = new BackgroundJob{function, arg};
    target()->Schedule(&FaultEnv::RunBackground, job);
  }

  leveldb::Status NewWritableFile(const std::string& f, leveldb::WritableFile** r) override {
    return Wrap(f, target()->NewWritableFile(f, r), r);
  }
  leveldb::Status NewAppendableFile(const std::string& f, leveldb::WritableFile** r) override {
    return Wrap(f, target()->NewAppendableFile(f, r), r);
  }

  // The write-ahead log files ("NNNNNN.log") LevelDB has opened for
  // writing that may hold records not yet synced by Store::Sync, oldest
  // first; the last is the one LevelDB appends to now.
  std::vector<std::string> Logs() const {
    std::lock_guard<std::mutex> lock(logs_mu_);
    return logs_;
  }
  // Drops `names` from Logs(): synced after LevelDB closed them (it never
  // appends to a closed log), or gone (LevelDB deletes a log only once its
  // records are in a synced table).
  void ForgetLogs(const std::vector<std::string>& names) {
    std::lock_guard<std::mutex> lock(logs_mu_);
    for (const std::string& n : names) logs_.erase(std::remove(logs_.begin(), logs_.end(), n), logs_.end());
  }

 private:
  leveldb::Status Wrap(const std::string& f, leveldb::Status s, leveldb::WritableFile** r) {
    if (!s.ok()) return s;
    *r = new FaultFile(*r, f, &full_);
    constexpr std::string_view kLogSuffix = ".log";
    if (f.size() > kLogSuffix.size() &&
        std::string_view(f).substr(f.size() - kLogSuffix.size()) == kLogSuffix) {
      std::lock_guard<std::mutex> lock(logs_mu_);
      logs_.push_back(f);
    }
    return s;
  }

  struct BackgroundJob {
    void (*function)(void*);
    void* arg;
  };
  static void RunBackground(void* p) {
    std::unique_ptr<BackgroundJob> job(static_cast<BackgroundJob*>(p));
    LowerThisThreadsPriority();
    job->function(job->arg);
  }

  std::atomic<bool> full_{false};
  mutable std::mutex logs_mu_;
  std::vector<std::string> logs_;  // guarded by logs_mu_
};

}  // namespace

// ---------------------------------------------------------------------------
// WriteBatch

struct WriteBatch::Impl {
  leveldb::WriteBatch batch;
  int count = 0;
  Status poison;  // set by a record that cannot be laid out
  // Written without waiting for fsync even on a syncing store
  // (WriteBatch::DeferSync, and log truncation, whose loss in a crash is
  // harmless: it is redone after a restart). The next synced write or
  // Store::Sync makes it durable too, since LevelDB's log is sequential.
  bool no_sync = false;
};

WriteBatch::WriteBatch() : impl_(std::make_unique<Impl>()) {}
WriteBatch::~WriteBatch() = default;

void WriteBatch::DeferSync() { impl_->no_sync = true; }

void WriteBatch::PutState(std::string_view key, std::string_view envelope) {
  impl_->batch.Put(PrefixedKey(kStatePrefix, key), ToSlice(envelope));
  ++impl_->count;
}

void WriteBatch::DeleteState(std::string_view key) {
  impl_->batch.Delete(PrefixedKey(kStatePrefix, key));
  ++impl_->count;
}

void WriteBatch::AppendLog(const LogEntry& entry) {
  if (!ScopeIsValid(entry.scope)) {
    impl_->poison = BadScope();
    return;
  }
  impl_->batch.Put(LogKey(entry.scope, entry.seq), EncodeLogValue(entry.key, entry.delta));
  ++impl_->count;
}

void WriteBatch::DeleteLog(std::string_view scope, uint64_t seq) {
  if (!ScopeIsValid(scope)) {
    impl_->poison = BadScope();
    return;
  }
  impl_->batch.Delete(LogKey(scope, seq));
  ++impl_->count;
}

void WriteBatch::PutMeta(std::string_view name, std::string_view value) {
  impl_->batch.Put(PrefixedKey(kMetaPrefix, name), ToSlice(value));
  ++impl_->count;
}

void WriteBatch::PutGcCandidate(const GcCandidate& candidate) {
  crdt::Encoder e(kGcValueVersion);
  e.Array(2);
  crdt::EncodeReplica(candidate.writer, &e);
  e.Uint(candidate.seq);
  impl_->batch.Put(PrefixedKey(kGcPrefix, candidate.key), ToSlice(e.Take()));
  ++impl_->count;
}

void WriteBatch::DeleteGcCandidate(std::string_view key) {
  impl_->batch.Delete(PrefixedKey(kGcPrefix, key));
  ++impl_->count;
}

void WriteBatch::PutConflict(std::string_view key, std::string_view entry) {
  impl_->batch.Put(PrefixedKey(kConflictPrefix, key), ToSlice(entry));
  ++impl_->count;
}

void WriteBatch::DeleteConflict(std::string_view key) {
  impl_->batch.Delete(PrefixedKey(kConflictPrefix, key));
  ++impl_->count;
}

void WriteBatch::PutAudit(std::string_view key, std::string_view id, std::string_view record) {
  std::string k = AuditKeyPrefix(key);
  k.append(id);
  impl_->batch.Put(k, ToSlice(record));
  ++impl_->count;
}

void WriteBatch::PutDigest(std::string_view scope, uint32_t bucket, std::string_view key,
                           const Digest& digest) {
  if (!ScopeIsValid(scope)) {
    impl_->poison = BadScope();
    return;
  }
  if (bucket >= kBuckets) {
    impl_->poison = BadDigestBucket(bucket);
    return;
  }
  impl_->batch.Put(DigestKey(scope, bucket, key), digest.ToBytes());
  ++impl_->count;
}

void WriteBatch::DeleteDigest(std::string_view scope, uint32_t bucket, std::string_view key) {
  if (!ScopeIsValid(scope)) {
    impl_->poison = BadScope();
    return;
  }
  if (bucket >= kBuckets) {
    impl_->poison = BadDigestBucket(bucket);
    return;
  }
  impl_->batch.Delete(DigestKey(scope, bucket, key));
  ++impl_->count;
}

void WriteBatch::Clear() {
  impl_->batch.Clear();
  impl_->count = 0;
  impl_->poison = Status::OK();
}

size_t WriteBatch::ApproximateSize() const { return impl_->batch.ApproximateSize(); }

int WriteBatch::Count() const { return impl_->count; }

void WriteBatch::PutRawRecord(std::string_view raw_key, std::string_view value) {
  impl_->batch.Put(ToSlice(raw_key), ToSlice(value));
  ++impl_->count;
}

// ---------------------------------------------------------------------------
// Snapshots. The home is shared by the Store and its snapshots, so that a
// snapshot may outlive the Store. Before a handle goes (reopen, close) every
// live snapshot of it is released and the generation moves on: older
// snapshots are then lost. Lock order: Store::Impl::db_mu, then home mu.

struct SnapshotHome {
  std::mutex mu;
  leveldb::DB* db = nullptr;  // the handle of this generation; null while closed
  uint64_t generation = 0;
  std::set<const leveldb::Snapshot*> live;

  // REQUIRES: mu held, and the handle's owner about to drop it.
  void Retire() {
    for (const leveldb::Snapshot* s : live) db->ReleaseSnapshot(s);
    live.clear();
    db = nullptr;
    ++generation;
  }
};

class StoreSnapshot {
 public:
  StoreSnapshot(std::shared_ptr<SnapshotHome> home, const leveldb::Snapshot* snap, uint64_t gen)
      : home_(std::move(home)), snap_(snap), generation_(gen) {}
  ~StoreSnapshot() {
    std::lock_guard<std::mutex> lock(home_->mu);
    if (home_->generation == generation_ && home_->live.erase(snap_) != 0) {
      home_->db->ReleaseSnapshot(snap_);
    }
  }
  StoreSnapshot(const StoreSnapshot&) = delete;
  StoreSnapshot& operator=(const StoreSnapshot&) = delete;

  // Read options for a read through this snapshot of `home`'s store, or
  // Unavailable when it was lost. REQUIRES: the store's db_mu held (shared
  // is enough: the generation only moves under it exclusively).
  Status Options(const std::shared_ptr<SnapshotHome>& home, leveldb::ReadOptions* out) const {
    if (home != home_) return Status::InvalidArgument("a snapshot of another store");
    std::lock_guard<std::mutex> lock(home_->mu);
    if (home_->generation != generation_) {
      return Status::Unavailable("snapshot lost: the store was reopened or closed after it");
    }
    out->snapshot = snap_;
    return Status::OK();
  }

 private:
  std::shared_ptr<SnapshotHome> home_;
  const leveldb::Snapshot* snap_;
  uint64_t generation_;
};

// ---------------------------------------------------------------------------
// Store

struct Store::Impl {
  std::string dir;
  StoreOptions options;

  // Declared before `db` so that they outlive it.
  FaultEnv env;
  std::unique_ptr<const leveldb::FilterPolicy> filter;
  std::unique_ptr<leveldb::Cache> cache;
  leveldb::Options ldb_options;

  std::mutex write_mu;
  bool needs_reopen = false;                               // guarded by write_mu
  int fail_writes = 0;                                     // guarded by write_mu
  std::chrono::steady_clock::time_point last_read_reopen;  // guarded by write_mu

  mutable std::shared_mutex db_mu;
  // Null only after a failed reopen. Changed with write_mu and db_mu (exclusive) held.
  std::unique_ptr<leveldb::DB> db;
  std::string closed_reason;  // why db is null; guarded like db
  std::shared_ptr<SnapshotHome> home = std::make_shared<SnapshotHome>();

  // Per scope, the seq past the last log entry TruncateLog removed: its
  // next scan seeks there instead of to the start of the scope's log, whose
  // deleted entries LevelDB keeps as tombstones until compaction, so a scan
  // from the start would step over every entry truncated since (on the
  // gossip thread, once per heartbeat, growing with the node's uptime).
  // Log seqs only grow, so nothing below it is ever written again.
  std::mutex log_floor_mu;
  std::map<std::string, uint64_t, std::less<>> log_floor;  // guarded by log_floor_mu

  // Read options for `at` (null: now). REQUIRES: db_mu held.
  Status ReadOptionsAt(const StoreSnapshot* at, leveldb::ReadOptions* out) const {
    if (at == nullptr) return Status::OK();
    return at->Options(home, out);
  }
  // Drops the handle, losing every snapshot. REQUIRES: db_mu held exclusively.
  void DropHandle() {
    {
      std::lock_guard<std::mutex> lock(home->mu);
      if (home->db != nullptr) home->Retire();
    }
    db.reset();
  }

  std::atomic<uint64_t> writes{0};
  std::atomic<uint64_t> syncs{0};
  std::atomic<uint64_t> reopens{0};
  // Set by a failed Sync: the next Write reopens the database first, as
  // after a failed write (LevelDB does not know its log failed to sync).
  std::atomic<bool> sync_failed{false};

  // Closes and reopens the database. REQUIRES: write_mu held.
  Status Reopen();
  // Takes db_mu shared with a usable handle, or says why there is none.
  Status LockForRead(std::shared_lock<std::shared_mutex>* lock);
  // Free bytes on the file system holding dir; false when unknown.
  bool AvailableBytes(uint64_t* bytes) const;
};

Status Store::Impl::Reopen() {
  std::unique_lock<std::shared_mutex> lock(db_mu);
  DropHandle();  // releases LevelDB's lock file so the new handle can take it
  leveldb::Options reopen_options = ldb_options;
  // A directory that vanished while open must not come back empty: that
  // would silently lose the node's identity and data.
  reopen_options.create_if_missing = false;
  leveldb::DB* raw = nullptr;
  leveldb::Status s = leveldb::DB::Open(reopen_options, dir, &raw);
  if (!s.ok()) {
    Status st = FromLevelDb(s, "reopening the store in " + dir + " after a write error");
    closed_reason = st.message();
    return st;
  }
  db.reset(raw);
  {
    std::lock_guard<std::mutex> home_lock(home->mu);
    home->db = raw;
  }
  closed_reason.clear();
  needs_reopen = false;
  reopens.fetch_add(1);
  return Status::OK();
}

Status Store::Impl::LockForRead(std::shared_lock<std::shared_mutex>* lock) {
  *lock = std::shared_lock<std::shared_mutex>(db_mu);
  if (db) return Status::OK();
  lock->unlock();
  {
    // Never wait behind a Write: if one is running, it reopens itself.
    std::unique_lock<std::mutex> w(write_mu, std::try_to_lock);
    auto now = std::chrono::steady_clock::now();
    if (w.owns_lock() && !db && now - last_read_reopen >= kReadReopenInterval) {
      last_read_reopen = now;
      (void)Reopen();  // on failure closed_reason says why
    }
  }
  lock->lock();
  if (db) return Status::OK();
  return Status::IOError("store in " + dir + " is closed: " + closed_reason);
}

bool Store::Impl::AvailableBytes(uint64_t* bytes) const {
  if (env.full()) {
    *bytes = 0;
    return true;
  }
  std::error_code ec;
  std::filesystem::space_info info = std::filesystem::space(dir, ec);
  if (ec) return false;
  *bytes = info.available;
  return true;
}

Store::Store() : impl_(std::make_unique<Impl>()) {}

Store::~Store() {
  std::unique_lock<std::shared_mutex> lock(impl_->db_mu);
  impl_->DropHandle();
}

Status Store::TakeSnapshot(SnapshotRef* out) const {
  std::shared_lock<std::shared_mutex> lock;
  MERIDIAN_RETURN_IF_ERROR(impl_->LockForRead(&lock));
  std::lock_guard<std::mutex> home_lock(impl_->home->mu);
  const leveldb::Snapshot* snap = impl_->db->GetSnapshot();
  impl_->home->live.insert(snap);
  *out = std::make_shared<StoreSnapshot>(impl_->home, snap, impl_->home->generation);
  return Status::OK();
}

Status Store::Open(const std::string& dir, const StoreOptions& options,
                   std::unique_ptr<Store>* out) {
  namespace fs = std::filesystem;
  if (dir.empty()) return Status::InvalidArgument("cannot open store: the directory path is empty");

  std::error_code ec;
  fs::file_status st = fs::status(dir, ec);
  if (fs::exists(st) && !fs::is_directory(st)) {
    return Status::IOError("cannot open store in " + dir +
                           ": the path exists and is not a directory");
  }
  if (!fs::exists(st)) {
    if (!options.create_if_missing) {
      return Status::NotFound("cannot open store in " + dir +
                              ": the directory does not exist (create_if_missing is off)");
    }
    ec.clear();
    fs::create_directories(dir, ec);
    if (ec) {
      return Status::IOError("cannot create the store directory " + dir + ": " + ec.message());
    }
  }

  std::unique_ptr<Store> store(new Store());
  Impl& impl = *store->impl_;
  impl.dir = dir;
  impl.options = options;
  impl.filter.reset(leveldb::NewBloomFilterPolicy(10));
  impl.cache.reset(leveldb::NewLRUCache(options.cache_bytes));
  impl.ldb_options.create_if_missing = options.create_if_missing;
  impl.ldb_options.env = &impl.env;
  impl.ldb_options.filter_policy = impl.filter.get();
  impl.ldb_options.block_cache = impl.cache.get();
  impl.ldb_options.write_buffer_size = kWriteBufferBytes;

  leveldb::DB* raw = nullptr;
  leveldb::Status s = leveldb::DB::Open(impl.ldb_options, dir, &raw);
  if (!s.ok()) {
    const std::string text = s.ToString();
    if (s.IsIOError() && text.find("/LOCK") != std::string::npos &&
        (text.find("already held") != std::string::npos ||
         text.find("temporarily unavailable") != std::string::npos)) {
      return Status::IOError("cannot open store in " + dir +
                             ": the data dir is in use by another open store (another process, "
                             "or this one): " +
                             text);
    }
    return FromLevelDb(s, "cannot open store in " + dir);
  }
  impl.db.reset(raw);
  impl.home->db = raw;
  *out = std::move(store);
  return Status::OK();
}

const std::string& Store::dir() const { return impl_->dir; }

bool Store::sync() const { return impl_->options.sync; }

Status Store::GetState(std::string_view key, std::string* envelope,
                       const StoreSnapshot* at) const {
  std::shared_lock<std::shared_mutex> lock;
  MERIDIAN_RETURN_IF_ERROR(impl_->LockForRead(&lock));
  leveldb::ReadOptions ro;
  MERIDIAN_RETURN_IF_ERROR(impl_->ReadOptionsAt(at, &ro));
  leveldb::Status s = impl_->db->Get(ro, PrefixedKey(kStatePrefix, key), envelope);
  if (s.IsNotFound()) return Status::NotFound("no state for the key");
  return FromLevelDb(s, "reading a state in " + impl_->dir);
}

Status Store::GetStates(const std::vector<std::string_view>& keys,
                        std::vector<std::string>* envelopes, std::vector<bool>* found) const {
  envelopes->assign(keys.size(), std::string());
  found->assign(keys.size(), false);
  if (keys.empty()) return Status::OK();
  std::shared_lock<std::shared_mutex> lock;
  MERIDIAN_RETURN_IF_ERROR(impl_->LockForRead(&lock));
  std::unique_ptr<leveldb::Iterator> it(impl_->db->NewIterator(leveldb::ReadOptions()));
  std::string target;
  for (size_t i = 0; i < keys.size(); ++i) {
    target.assign(1, kStatePrefix);
    target.append(keys[i]);
    // Keys come sorted: when the iterator already stands at or past the
    // target (the previous key's successor), no new seek is needed.
    if (i == 0 || !it->Valid() || it->key().compare(ToSlice(target)) < 0) it->Seek(target);
    if (!it->Valid()) break;  // no state at or after this key: none for the rest
    if (it->key() == leveldb::Slice(target)) {
      (*found)[i] = true;
      (*envelopes)[i].assign(it->value().data(), it->value().size());
    }
  }
  if (!it->status().ok()) {
    envelopes->assign(keys.size(), std::string());
    found->assign(keys.size(), false);
    return FromLevelDb(it->status(), "reading states in " + impl_->dir);
  }
  return Status::OK();
}

Status Store::GetMeta(std::string_view name, std::string* value) const {
  std::shared_lock<std::shared_mutex> lock;
  MERIDIAN_RETURN_IF_ERROR(impl_->LockForRead(&lock));
  leveldb::Status s = impl_->db->Get(leveldb::ReadOptions(), PrefixedKey(kMetaPrefix, name), value);
  if (s.IsNotFound()) return Status::NotFound("no metadata record '" + std::string(name) + "'");
  return FromLevelDb(s, "reading metadata in " + impl_->dir);
}

Status Store::GetConflict(std::string_view key, std::string* entry) const {
  std::shared_lock<std::shared_mutex> lock;
  MERIDIAN_RETURN_IF_ERROR(impl_->LockForRead(&lock));
  leveldb::Status s =
      impl_->db->Get(leveldb::ReadOptions(), PrefixedKey(kConflictPrefix, key), entry);
  if (s.IsNotFound()) return Status::NotFound("no conflict entry for the key");
  return FromLevelDb(s, "reading the conflict index in " + impl_->dir);
}

Status Store::ScanKind(char kind, std::string_view prefix, std::string_view after, size_t limit,
                       const std::function<void(std::string_view, std::string_view)>& add,
                       const std::string& what) const {
  if (limit == 0) return Status::OK();
  const std::string lower = PrefixedKey(kind, prefix);
  std::string target = lower;
  std::string after_key;
  if (!after.empty()) {
    after_key = PrefixedKey(kind, after);
    if (after_key > target) target = after_key;
  }
  std::shared_lock<std::shared_mutex> lock;
  MERIDIAN_RETURN_IF_ERROR(impl_->LockForRead(&lock));
  std::unique_ptr<leveldb::Iterator> it(impl_->db->NewIterator(leveldb::ReadOptions()));
  size_t n = 0;
  for (it->Seek(target); it->Valid() && n < limit; it->Next()) {
    std::string_view key = ToView(it->key());
    if (key.substr(0, lower.size()) != lower) break;
    if (!after_key.empty() && key == after_key) continue;
    add(key.substr(1), ToView(it->value()));
    ++n;
  }
  return FromLevelDb(it->status(), "scanning " + what + " in " + impl_->dir);
}

Status Store::ScanConflicts(std::string_view prefix, std::string_view after, size_t limit,
                            std::vector<KeyValue>* out) const {
  out->clear();
  return ScanKind(
      kConflictPrefix, prefix, after, limit,
      [out](std::string_view k, std::string_view v) {
        out->push_back(KeyValue{std::string(k), std::string(v)});
      },
      "the conflict index");
}

Status Store::ScanAudit(std::string_view key, size_t limit, std::vector<KeyValue>* out) const {
  out->clear();
  if (limit == 0) return Status::OK();
  const std::string prefix = AuditKeyPrefix(key);
  std::shared_lock<std::shared_mutex> lock;
  MERIDIAN_RETURN_IF_ERROR(impl_->LockForRead(&lock));
  std::unique_ptr<leveldb::Iterator> it(impl_->db->NewIterator(leveldb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && out->size() < limit; it->Next()) {
    std::string_view k = ToView(it->key());
    if (k.substr(0, prefix.size()) != prefix) break;
    out->push_back(KeyValue{std::string(k.substr(prefix.size())), std::string(ToView(it->value()))});
  }
  return FromLevelDb(it->status(), "reading audit records in " + impl_->dir);
}

Status Store::Write(WriteBatch* batch) {
  MERIDIAN_RETURN_IF_ERROR(batch->impl_->poison);
  if (batch->impl_->count == 0) return Status::OK();

  Impl& impl = *impl_;
  std::lock_guard<std::mutex> w(impl.write_mu);
  if (impl.fail_writes > 0) {
    --impl.fail_writes;
    impl.needs_reopen = true;
    return NoSpace("writing to the store in " + impl.dir +
                   " (simulated by TEST_FailWritesWithNoSpace)");
  }
  if (impl.sync_failed.exchange(false)) impl.needs_reopen = true;
  if (impl.needs_reopen || !impl.db) {
    const uint64_t need = kReopenReserveBytes + batch->ApproximateSize();
    uint64_t available = 0;
    if (impl.AvailableBytes(&available) && available < need) {
      return NoSpace("the store in " + impl.dir + " has " + std::to_string(available) +
                     " bytes free; writes resume once " + std::to_string(need) + " are");
    }
    MERIDIAN_RETURN_IF_ERROR(impl.Reopen());
  }

  std::shared_lock<std::shared_mutex> lock(impl.db_mu);
  leveldb::WriteOptions wo;
  wo.sync = impl.options.sync && !batch->impl_->no_sync;
  impl.writes.fetch_add(1);
  if (wo.sync) impl.syncs.fetch_add(1);
  leveldb::Status s = impl.db->Write(wo, &batch->impl_->batch);
  if (!s.ok()) {
    // LevelDB may now refuse every write (a failed fsync is sticky) or
    // have a torn record in its log; a fresh handle recovers from both.
    impl.needs_reopen = true;
    return FromLevelDb(s, "writing to the store in " + impl.dir);
  }
  return Status::OK();
}

Status Store::Sync() {
  Impl& impl = *impl_;
  if (!impl.options.sync) return Status::OK();
  impl.syncs.fetch_add(1);
  auto fail = [&](const std::string& name, int err) {
    impl.sync_failed.store(true);
    const std::string text =
        "syncing " + name + " in the store in " + impl.dir + ": " + std::strerror(err);
    return err == ENOSPC ? NoSpace(text) : Status::IOError(text);
  };
  const std::vector<std::string> logs = impl.env.Logs();
  std::vector<std::string> done;  // closed logs now synced, or gone
  for (size_t i = 0; i < logs.size(); ++i) {
    // A descriptor of our own: LevelDB's is busy with appends, and fsync
    // applies to the file, whichever descriptor asks.
    const int fd = ::open(logs[i].c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno != ENOENT) return fail(logs[i], errno);
      done.push_back(logs[i]);  // deleted: its records are in a synced table
      continue;
    }
    const bool full = impl.env.full();  // TEST_SetDiskFull
    const int rc = full ? -1 : ::fdatasync(fd);
    const int err = full ? ENOSPC : errno;
    ::close(fd);
    if (rc != 0) return fail(logs[i], err);
    if (i + 1 < logs.size()) done.push_back(logs[i]);
  }
  impl.env.ForgetLogs(done);
  return Status::OK();
}

bool Store::IsNoSpace(const Status& s) {
  return s.code() == Status::Code::kIOError && ContainsCaseInsensitive(s.message(), "no space");
}

Status Store::Scan(std::string_view prefix, std::string_view after, size_t limit,
                   std::vector<KeyState>* out) const {
  out->clear();
  return ScanKind(
      kStatePrefix, prefix, after, limit,
      [out](std::string_view k, std::string_view v) {
        out->push_back(KeyState{std::string(k), std::string(v)});
      },
      "states");
}

Status Store::ReadLog(std::string_view scope, uint64_t from_seq, size_t limit,
                      std::vector<LogEntry>* out) const {
  out->clear();
  if (!ScopeIsValid(scope)) return BadScope();
  if (limit == 0) return Status::OK();
  const std::string prefix = LogScopePrefix(scope);

  std::shared_lock<std::shared_mutex> lock;
  MERIDIAN_RETURN_IF_ERROR(impl_->LockForRead(&lock));
  std::unique_ptr<leveldb::Iterator> it(impl_->db->NewIterator(leveldb::ReadOptions()));
  for (it->Seek(LogKey(scope, from_seq)); it->Valid() && out->size() < limit; it->Next()) {
    std::string_view key = ToView(it->key());
    if (key.substr(0, prefix.size()) != prefix) break;
    if (key.size() != prefix.size() + 8) {
      return Status::Corruption("log key of the wrong length in " + impl_->dir);
    }
    LogEntry entry;
    entry.scope = std::string(scope);
    entry.seq = DecodeBigEndian64(key.substr(prefix.size()));
    Status st = DecodeLogValue(ToView(it->value()), &entry.key, &entry.delta);
    if (!st.ok()) {
      return st.WithContext("log entry " + std::to_string(entry.seq) + " in " + impl_->dir);
    }
    out->push_back(std::move(entry));
  }
  return FromLevelDb(it->status(), "reading the log in " + impl_->dir);
}

Status Store::LastLogSeq(std::string_view scope, uint64_t* seq) const {
  *seq = 0;
  if (!ScopeIsValid(scope)) return BadScope();
  const std::string prefix = LogScopePrefix(scope);
  const std::string highest = LogKey(scope, ~uint64_t{0});

  std::shared_lock<std::shared_mutex> lock;
  MERIDIAN_RETURN_IF_ERROR(impl_->LockForRead(&lock));
  std::unique_ptr<leveldb::Iterator> it(impl_->db->NewIterator(leveldb::ReadOptions()));
  it->Seek(highest);
  if (!it->Valid()) {
    it->SeekToLast();
  } else if (ToView(it->key()) != highest) {
    it->Prev();
  }
  if (it->Valid()) {
    std::string_view key = ToView(it->key());
    if (key.substr(0, prefix.size()) == prefix) {
      if (key.size() != prefix.size() + 8) {
        return Status::Corruption("log key of the wrong length in " + impl_->dir);
      }
      *seq = DecodeBigEndian64(key.substr(prefix.size()));
    }
  }
  return FromLevelDb(it->status(), "reading the log in " + impl_->dir);
}

Status Store::FirstLogSeq(std::string_view scope, uint64_t* seq) const {
  *seq = 0;
  std::vector<LogEntry> first;
  MERIDIAN_RETURN_IF_ERROR(ReadLog(scope, 0, 1, &first));
  if (!first.empty()) *seq = first.front().seq;
  return Status::OK();
}

Status Store::TruncateLog(std::string_view scope, uint64_t through_seq, size_t limit,
                          size_t* removed) {
  *removed = 0;
  if (!ScopeIsValid(scope)) return BadScope();
  const std::string prefix = LogScopePrefix(scope);
  uint64_t floor = 0;
  {
    std::lock_guard<std::mutex> lock(impl_->log_floor_mu);
    auto f = impl_->log_floor.find(scope);
    if (f != impl_->log_floor.end()) floor = f->second;
  }
  WriteBatch batch;
  batch.impl_->no_sync = true;
  uint64_t last_removed = 0;
  {
    std::shared_lock<std::shared_mutex> lock;
    MERIDIAN_RETURN_IF_ERROR(impl_->LockForRead(&lock));
    std::unique_ptr<leveldb::Iterator> it(impl_->db->NewIterator(leveldb::ReadOptions()));
    for (it->Seek(floor == 0 ? prefix : LogKey(scope, floor)); it->Valid() && *removed < limit;
         it->Next()) {
      std::string_view key = ToView(it->key());
      if (key.substr(0, prefix.size()) != prefix) break;
      if (key.size() != prefix.size() + 8) {
        return Status::Corruption("log key of the wrong length in " + impl_->dir);
      }
      const uint64_t seq = DecodeBigEndian64(key.substr(prefix.size()));
      if (seq > through_seq) break;
      batch.DeleteLog(scope, seq);
      last_removed = seq;
      ++*removed;
    }
    MERIDIAN_RETURN_IF_ERROR(FromLevelDb(it->status(), "reading the log in " + impl_->dir));
  }
  Status s = Write(&batch);
  if (!s.ok()) {
    *removed = 0;
  } else if (*removed > 0) {
    std::lock_guard<std::mutex> lock(impl_->log_floor_mu);
    uint64_t& f = impl_->log_floor[std::string(scope)];
    f = std::max(f, last_removed + 1);
  }
  return s;
}

Status Store::ScanGcCandidates(std::string_view after, size_t limit,
                               std::vector<GcCandidate>* out) const {
  out->clear();
  if (limit == 0) return Status::OK();
  const std::string prefix(1, kGcPrefix);
  std::shared_lock<std::shared_mutex> lock;
  MERIDIAN_RETURN_IF_ERROR(impl_->LockForRead(&lock));
  std::unique_ptr<leveldb::Iterator> it(impl_->db->NewIterator(leveldb::ReadOptions()));
  const std::string after_key = PrefixedKey(kGcPrefix, after);
  for (it->Seek(after.empty() ? prefix : after_key); it->Valid() && out->size() < limit;
       it->Next()) {
    std::string_view key = ToView(it->key());
    if (key.substr(0, 1) != prefix) break;
    if (!after.empty() && key == after_key) continue;
    GcCandidate c;
    c.key = std::string(key.substr(1));
    crdt::Decoder d;
    Status st = d.Parse(ToView(it->value()), kGcValueVersion);
    std::vector<crdt::Cursor> f;
    if (st.ok()) st = d.root().Array(&f, "collection candidate", 2);
    if (st.ok()) st = crdt::DecodeReplica(f[0], &c.writer);
    if (st.ok()) st = f[1].Uint(&c.seq, "collection candidate seq");
    if (!st.ok()) return st.WithContext("collection candidate of a key in " + impl_->dir);
    out->push_back(std::move(c));
  }
  return FromLevelDb(it->status(), "scanning collection candidates in " + impl_->dir);
}

Status Store::CompactAll() {
  std::shared_lock<std::shared_mutex> lock;
  MERIDIAN_RETURN_IF_ERROR(impl_->LockForRead(&lock));
  impl_->db->CompactRange(nullptr, nullptr);
  return Status::OK();
}

Status Store::DigestScopes(std::vector<std::string>* out) const {
  out->clear();
  std::shared_lock<std::shared_mutex> lock;
  MERIDIAN_RETURN_IF_ERROR(impl_->LockForRead(&lock));
  std::unique_ptr<leveldb::Iterator> it(impl_->db->NewIterator(leveldb::ReadOptions()));
  std::string target(1, kDigestPrefix);
  for (it->Seek(target); it->Valid(); it->Seek(target)) {
    std::string_view key = ToView(it->key());
    if (key.empty() || key[0] != kDigestPrefix) break;
    const size_t end = key.find('\0', 1);
    if (end == std::string_view::npos) {
      return Status::Corruption("digest record key without a scope end in " + impl_->dir);
    }
    out->emplace_back(key.substr(1, end - 1));
    // Past every record of this scope: 'd' + scope + 0x01.
    target = DigestScopePrefix(out->back());
    target.back() = '\1';
  }
  return FromLevelDb(it->status(), "listing digest scopes in " + impl_->dir);
}

Status Store::ScanDigests(std::string_view scope, uint32_t first_bucket, uint32_t end_bucket,
                          const DigestRecord* after, size_t limit,
                          std::vector<DigestRecord>* out, const StoreSnapshot* at) const {
  out->clear();
  if (!ScopeIsValid(scope)) return BadScope();
  end_bucket = std::min(end_bucket, kBuckets);
  if (limit == 0 || first_bucket >= end_bucket) return Status::OK();
  const std::string prefix = DigestScopePrefix(scope);
  std::string target = DigestKey(scope, first_bucket, "");
  std::string after_key;
  if (after != nullptr && after->bucket < kBuckets) {
    after_key = DigestKey(scope, after->bucket, after->key);
    if (after_key > target) target = after_key;
  } else if (after != nullptr) {
    return Status::OK();  // nothing lies after a bucket past the last one
  }

  std::shared_lock<std::shared_mutex> lock;
  MERIDIAN_RETURN_IF_ERROR(impl_->LockForRead(&lock));
  leveldb::ReadOptions ro;
  MERIDIAN_RETURN_IF_ERROR(impl_->ReadOptionsAt(at, &ro));
  std::unique_ptr<leveldb::Iterator> it(impl_->db->NewIterator(ro));
  for (it->Seek(target); it->Valid() && out->size() < limit; it->Next()) {
    std::string_view key = ToView(it->key());
    if (key.substr(0, prefix.size()) != prefix) break;
    if (!after_key.empty() && key == after_key) continue;
    if (key.size() < prefix.size() + 2) {
      return Status::Corruption("digest record key too short in " + impl_->dir);
    }
    const uint32_t bucket = (uint32_t{static_cast<uint8_t>(key[prefix.size()])} << 8) |
                            static_cast<uint8_t>(key[prefix.size() + 1]);
    if (bucket >= end_bucket) {
      if (bucket >= kBuckets) {
        return Status::Corruption("digest record of bucket " + std::to_string(bucket) +
                                  " (not below " + std::to_string(kBuckets) + ") in " +
                                  impl_->dir);
      }
      break;
    }
    DigestRecord rec;
    rec.bucket = bucket;
    rec.key = std::string(key.substr(prefix.size() + 2));
    if (!Digest::FromBytes(ToView(it->value()), &rec.digest)) {
      return Status::Corruption("digest record of " + std::to_string(it->value().size()) +
                                " bytes (not 16) in " + impl_->dir);
    }
    out->push_back(std::move(rec));
  }
  return FromLevelDb(it->status(), "scanning the digest index in " + impl_->dir);
}

Status Store::ExportRecords(
    const StoreSnapshot& at,
    const std::function<Status(std::string_view key, std::string_view value)>& each) const {
  std::shared_lock<std::shared_mutex> lock;
  MERIDIAN_RETURN_IF_ERROR(impl_->LockForRead(&lock));
  leveldb::ReadOptions ro;
  MERIDIAN_RETURN_IF_ERROR(impl_->ReadOptionsAt(&at, &ro));
  // A backup reads everything once: keep its blocks out of the cache.
  ro.fill_cache = false;
  std::unique_ptr<leveldb::Iterator> it(impl_->db->NewIterator(ro));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    MERIDIAN_RETURN_IF_ERROR(each(ToView(it->key()), ToView(it->value())));
  }
  return FromLevelDb(it->status(), "reading every record in " + impl_->dir);
}

RecordKind KindOfRecord(std::string_view raw_key) {
  if (raw_key.empty()) return RecordKind::kUnknown;
  switch (raw_key[0]) {
    case kStatePrefix:
      return RecordKind::kState;
    case kLogPrefix:
      return RecordKind::kLog;
    case kMetaPrefix:
      return RecordKind::kMeta;
    case kConflictPrefix:
      return RecordKind::kConflict;
    case kAuditPrefix:
      return RecordKind::kAudit;
    case kDigestPrefix:
      return RecordKind::kDigest;
    case kGcPrefix:
      return RecordKind::kGcCandidate;
    default:
      return RecordKind::kUnknown;
  }
}

std::string_view RecordName(std::string_view raw_key) {
  return raw_key.empty() ? raw_key : raw_key.substr(1);
}

uint64_t Store::ApproximateStateBytes() const {
  std::shared_lock<std::shared_mutex> lock;
  if (!impl_->LockForRead(&lock).ok()) return 0;
  const std::string start(1, kStatePrefix);
  const std::string limit(1, static_cast<char>(kStatePrefix + 1));
  leveldb::Range range(start, limit);
  uint64_t size = 0;
  impl_->db->GetApproximateSizes(&range, 1, &size);
  return size;
}

uint64_t Store::writes() const { return impl_->writes.load(); }

uint64_t Store::syncs() const { return impl_->syncs.load(); }

uint64_t Store::reopens() const { return impl_->reopens.load(); }

void Store::TEST_FailWritesWithNoSpace(int n) {
  std::lock_guard<std::mutex> w(impl_->write_mu);
  impl_->fail_writes = n;
}

void Store::TEST_SetDiskFull(bool full) { impl_->env.SetFull(full); }

// ---------------------------------------------------------------------------
// Log values

std::string EncodeLogValue(std::string_view key, std::string_view delta) {
  crdt::Encoder e(kLogValueVersion);
  e.Array(2);
  e.Str(key);
  e.Bin(delta);
  return e.Take();
}

Status DecodeLogValue(std::string_view bytes, std::string* key, std::string* delta) {
  crdt::Decoder d;
  MERIDIAN_RETURN_IF_ERROR(d.Parse(bytes, kLogValueVersion));
  std::vector<crdt::Cursor> f;
  MERIDIAN_RETURN_IF_ERROR(d.root().Array(&f, "log entry", 2));
  MERIDIAN_RETURN_IF_ERROR(f[0].Str(key, "log entry key"));
  return f[1].Bin(delta, "log entry delta");
}

}  // namespace meridian::storage
