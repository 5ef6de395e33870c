// The applier: the one thread that serialises every write of a node.
//
// Requests from all connections — local writes and remote deltas from
// gossip — queue here; the applier takes everything queued (up to a group
// limit) and hands it to its Committer (node/committer.h), which applies
// each local operation in order to the latest state of its key, joins the
// remote deltas, and commits the whole group as one LevelDB WriteBatch —
// states, delta-log entries, the applied vector and, when the clock has
// passed it, a new HLC bound. If the batch fails, every request of the
// group fails and nothing of it is visible.
//
// Visible first, answered once durable. The batch is written without
// waiting for fsync (WriteBatch::DeferSync): when the Write returns the
// group is visible — to reads, watches and session-token waiters — and
// the applier goes on to the next group at once. The group then queues
// for the acknowledger thread, which makes everything queued durable with
// ONE Store::Sync (which fsyncs LevelDB's log without blocking writers)
// and only then answers the requests, acknowledges the remote deltas to
// gossip, tells gossip of the new local log entries (so that no peer ever
// holds a local write this node could lose) and advances the
// anti-entropy View and digest sums. So an acknowledged write is durable
// (when the store syncs), as before, while a remote delta becomes visible
// without waiting behind the fsync of the group before it (the tail of
// the replication lag, bench/README.md). A read may see a write before
// its writer is answered; should the sync fail, the group's requests fail
// (507 for a full disk, 500 otherwise) though they may stay visible, as
// with any write whose outcome is unknown. Answers come in commit order,
// all on the acknowledger thread.
//
// Anti-entropy repairs (SubmitRepair) queue with the writes, in the same
// order, but each runs alone, between groups, as its own batch
// (Committer::Repair): the group before it is cut short at it. A repair
// appends no delta-log entry; after a successful one the applied vector,
// session token, key count, digest sums and type conflicts are brought up
// to date exactly as after a group, and the change and commit listeners
// are called (not the append listener).
//
// The applier owns the node's HybridClock and sequence counter; nothing
// else touches them. Other threads reach the clock only through
// ObserveHlc() and CurrentHlc().
#ifndef MERIDIAN_NODE_APPLIER_H_
#define MERIDIAN_NODE_APPLIER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "crdt/hlc.h"
#include "node/committer.h"
#include "node/operation.h"
#include "storage/digests.h"
#include "storage/leveldb_store.h"
#include "storage/node_meta.h"

namespace meridian::node {

struct ApplierStats {
  std::atomic<uint64_t> groups{0};
  std::atomic<uint64_t> writes{0};
  std::atomic<uint64_t> failed_groups{0};
  std::atomic<uint64_t> last_group_size{0};
  std::atomic<uint64_t> max_group_size{0};
  std::atomic<uint64_t> repairs{0};         // anti-entropy repairs run (not groups)
  std::atomic<uint64_t> failed_repairs{0};  // of them, refused or whose batch failed
  std::atomic<uint64_t> tombstones_collected{0};  // Committer::Collect
  std::atomic<uint64_t> failed_collections{0};
  std::atomic<uint64_t> failed_syncs{0};  // Store::Sync failures (their requests failed)
};

class Applier {
 public:
  // REQUIRES: store and clock outlive the Applier. `meta` is what the node
  // loaded (or created) at start.
  Applier(storage::Store* store, crdt::HybridClock* clock, storage::NodeMeta meta,
          size_t max_group = 2048);
  ~Applier();

  // Set the listeners before Start(); they run on the applier or the
  // acknowledger thread (each says which) and must not block.
  void Start();
  // Finishes (and answers) every queued request, then stops the threads.
  void Stop();

  using Done = std::function<void(WriteResult)>;
  // Thread-safe; never blocks on disk. `done` runs on the acknowledger
  // thread once the result is final (durable when ok), as do the other
  // Submit calls' callbacks, all in commit order.
  void Submit(Operation op, Done done);
  // Several operations answered together, in order (POST /v1/batch).
  void SubmitMany(std::vector<Operation> ops, std::function<void(std::vector<WriteResult>)> done);
  // Remote deltas (gossip), committed in the same groups as local writes.
  // Thread-safe; `done` gets the result once final (durable when ok).
  void SubmitRemote(RemoteApply apply, std::function<void(RemoteResult)> done);
  // Anti-entropy states (node/committer.h, Committer::Repair), ordered with
  // the writes queued before and after it, committed as a batch of its own
  // between groups. Thread-safe; `done` gets the result once final
  // (durable when ok; RepairResult::applied is the vector it left).
  void SubmitRepair(StateRepair repair, std::function<void(RepairResult)> done);
  // Collection (Committer::Collect with `stable` and `limit`), run alone
  // between groups like a repair. Thread-safe.
  void SubmitCollect(storage::AppliedVector stable, size_t limit,
                     std::function<void(CollectResult)> done);

  // Thread-safe and quick: a peer's HLC (already checked against the
  // offset limit) that the clock absorbs at the start of the next group,
  // before that group issues any timestamp.
  void ObserveHlc(crdt::Hlc hlc);
  // The clock's last timestamp as of the last group (or start). Thread-safe.
  crdt::Hlc CurrentHlc() const { return current_hlc_.load(); }

  // Called after every committed change (key, new encoded envelope), by a
  // group or a repair, once visible (on the applier thread).
  void SetChangeListener(ChangeListener listener) { committer_.SetChangeListener(std::move(listener)); }
  // Committer::SetAuditPredicate (called on the applier thread).
  void SetAuditPredicate(std::function<bool(const std::string&)> audited) {
    committer_.SetAuditPredicate(std::move(audited));
  }
  // Called once each successful commit that appended local delta-log
  // entries is durable: the scope, its last seq and the bytes appended
  // (gossip's NotifyLocalAppend). On the acknowledger thread.
  using AppendListener =
      std::function<void(const std::string& scope, uint64_t last_seq, uint64_t bytes)>;
  void SetAppendListener(AppendListener listener) { append_listener_ = std::move(listener); }
  // Called after every successful commit, local, remote or repair, once
  // visible (session-token waiters re-check Applied()). On the applier
  // thread.
  void SetCommitListener(std::function<void()> listener) { commit_listener_ = std::move(listener); }
  // Committer::SetScopeOf; call before Start.
  void SetScopeOf(ScopeOfKey scope_of) { committer_.SetScopeOf(std::move(scope_of)); }

  const crdt::ReplicaId& replica() const { return committer_.replica(); }
  // The node's current session token (its applied vector). Thread-safe.
  std::string SessionToken() const;
  // A snapshot of the applied vector. Thread-safe.
  storage::AppliedVector Applied() const;
  uint64_t last_seq() const { return last_seq_.load(); }
  // Keys with a stored state (kept in the metadata, so start-up reads no
  // states to know it).
  uint64_t key_count() const { return key_count_.load(); }
  // Losing concurrent first writes of another type seen so far. Thread-safe.
  uint64_t type_conflicts() const { return type_conflicts_.load(); }
  // Committer::conflict_counts(), as of the last visible change.
  uint64_t conflicts_opened() const { return conflicts_opened_.load(); }
  uint64_t conflicts_closed() const { return conflicts_closed_.load(); }
  uint64_t audit_records() const { return audit_records_.load(); }
  size_t queue_depth() const;
  const ApplierStats& stats() const { return stats_; }
  // A placement scope's digest bucket sums as of the last group or repair
  // the acknowledger has finished with (a 64 KiB copy). Thread-safe.
  storage::BucketSums DigestSums(const std::string& scope = std::string()) const;
  // The total over every scope: equal on replicas holding equal states.
  // Thread-safe and cheap (kept up to date, not summed per call).
  storage::Digest StateDigest() const;
  // Each scope's total (the default scope, "", always listed). Thread-safe.
  std::map<std::string, storage::Digest> ScopeDigests() const;
  // Anti-entropy's View of `scope`: its digest sums, the applied vector's
  // entries of that scope and a store snapshot, all three as of the same
  // commit (the applier takes a
  // snapshot after each commit; it becomes the View once that commit is
  // durable, so no peer is sent a local write this node could lose). *snapshot is null when none could be
  // taken (the store is closed). Thread-safe.
  // *floor: the committer's collect floor (its entries of `scope`) as of
  // that commit or later.
  void View(const std::string& scope, storage::BucketSums* sums, storage::AppliedVector* applied,
            storage::AppliedVector* floor, storage::SnapshotRef* snapshot) const;

 private:
  struct Pending {
    Operation op;
    Done done;
    // A remote apply when remote_done is set.
    RemoteApply remote;
    std::function<void(RemoteResult)> remote_done;
    // A repair when repair_done is set.
    StateRepair repair;
    std::function<void(RepairResult)> repair_done;
    // A collection when collect_done is set.
    storage::AppliedVector stable;
    size_t collect_limit = 0;
    std::function<void(CollectResult)> collect_done;
    // Runs alone, not in a group.
    bool solo() const { return repair_done || collect_done; }
  };
  // A group or solo item the applier has committed (or failed to),
  // waiting for the acknowledger.
  struct Settle {
    std::vector<Pending> items;  // the group, or the one solo item
    std::vector<WriteResult> results;  // per op, in op order
    std::vector<size_t> op_index;      // items position of each op
    std::vector<RemoteResult> remote_results;
    std::vector<size_t> remote_index;
    RepairResult repair_result;
    CollectResult collect_result;
    bool needs_sync = false;  // it wrote: answered only after a Store::Sync
    // The View it leaves (view), or just the collect floor (floor_only).
    bool view = false;
    bool floor_only = false;
    std::vector<DigestChange> digest_changes;
    storage::AppliedVector view_applied;
    storage::AppliedVector view_floor;
    storage::SnapshotRef snapshot;
    // Local log entries appended, per scope (for the append listener).
    std::map<std::string, Committer::LogAppend> appended;
  };
  void Run();
  void ApplyGroup(std::vector<Pending>* group);
  void ApplyRepair(Pending* p);
  void ApplyCollect(Pending* p);
  // After a successful commit, repair or collection: mirrors the
  // committer's applied vector, token, counters and clock.
  void PublishVisible();
  // Records in *s the View the commit just made leaves.
  void CaptureView(Settle* s);
  void Enqueue(Settle s);
  // The acknowledger thread.
  void RunAcks();
  void Answer(Settle* s, const Status& synced);

  Committer committer_;
  storage::Store* store_;
  crdt::HybridClock* clock_;
  const size_t max_group_;
  AppendListener append_listener_;
  std::function<void()> commit_listener_;
  ApplierStats stats_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  std::thread thread_;

  std::mutex ack_mu_;
  std::condition_variable ack_cv_;
  std::deque<Settle> acks_;     // guarded by ack_mu_
  bool acks_stopping_ = false;  // guarded by ack_mu_
  std::thread acker_;

  std::atomic<crdt::Hlc> observed_hlc_{0};  // the greatest not yet absorbed
  std::atomic<crdt::Hlc> current_hlc_{0};
  std::atomic<uint64_t> last_seq_{0};
  std::atomic<uint64_t> key_count_{0};
  std::atomic<uint64_t> type_conflicts_{0};
  std::atomic<uint64_t> conflicts_opened_{0}, conflicts_closed_{0}, audit_records_{0};
  mutable std::mutex token_mu_;
  std::string token_;
  storage::AppliedVector applied_;  // guarded by token_mu_
  // The committer's digest sums, mirrored by the acknowledger from each
  // commit's last_digest_changes() (never copied whole).
  mutable std::mutex digest_mu_;
  // Per scope; guarded by digest_mu_.
  std::map<std::string, storage::BucketSums> digest_sums_;
  storage::Digest state_digest_;     // guarded by digest_mu_: the sum of every scope's Total()
  // The View's applied vector and snapshot, of the same commit as
  // digest_sums_; guarded by digest_mu_.
  storage::AppliedVector view_applied_;
  storage::AppliedVector view_floor_;  // with view_applied_
  storage::SnapshotRef view_snapshot_;
};

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_APPLIER_H_
