// The applier: the one thread that serialises every write of a node.
//
// Requests from all connections queue here; the applier takes everything
// queued (up to a group limit), applies each operation in order to the
// latest state of its key, and commits the whole group as one LevelDB
// WriteBatch — states, delta-log entries, the applied vector and, when the
// clock has passed it, a new HLC bound — with one fsync (group commit).
// Only then does it answer the group's requests, so an acknowledged write
// is durable (when the store syncs). If the batch fails, every request of
// the group fails and nothing of it is visible.
//
// The applier owns the node's HybridClock and sequence counter; nothing
// else touches them.
#ifndef MERIDIAN_NODE_APPLIER_H_
#define MERIDIAN_NODE_APPLIER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "crdt/hlc.h"
#include "node/operation.h"
#include "storage/leveldb_store.h"
#include "storage/node_meta.h"

namespace meridian::node {

struct WriteResult {
  bool ok = false;
  ApiError error;               // when !ok
  std::string envelope;         // the key's new state (encoded), when ok
  uint64_t seq = 0;             // the write's delta-log sequence
  std::string session_token;    // X-Session-Token after this write
};

// Called with every committed change (key, new encoded envelope), on the
// applier thread, after the group is durable. Must not block.
using ChangeListener = std::function<void(const std::string& key, const std::string& envelope)>;

struct ApplierStats {
  std::atomic<uint64_t> groups{0};
  std::atomic<uint64_t> writes{0};
  std::atomic<uint64_t> failed_groups{0};
  std::atomic<uint64_t> last_group_size{0};
  std::atomic<uint64_t> max_group_size{0};
};

class Applier {
 public:
  // REQUIRES: store and clock outlive the Applier. `meta` is what the node
  // loaded (or created) at start.
  Applier(storage::Store* store, crdt::HybridClock* clock, storage::NodeMeta meta,
          size_t max_group = 2048);
  ~Applier();

  void Start();
  // Finishes every queued request, then stops the thread.
  void Stop();

  using Done = std::function<void(WriteResult)>;
  // Thread-safe; never blocks on disk. `done` runs on the applier thread.
  void Submit(Operation op, Done done);
  // Several operations answered together, in order (POST /v1/batch).
  void SubmitMany(std::vector<Operation> ops, std::function<void(std::vector<WriteResult>)> done);

  void SetChangeListener(ChangeListener listener) { listener_ = std::move(listener); }

  const crdt::ReplicaId& replica() const { return meta_.replica; }
  // The node's current session token (its applied vector). Thread-safe.
  std::string SessionToken() const;
  uint64_t last_seq() const { return last_seq_.load(); }
  // Keys with a stored state (kept in the metadata, so start-up reads no
  // states to know it).
  uint64_t key_count() const { return key_count_.load(); }
  size_t queue_depth() const;
  const ApplierStats& stats() const { return stats_; }

 private:
  struct Pending {
    Operation op;
    Done done;
  };
  void Run();
  void ApplyGroup(std::vector<Pending>* group);

  storage::Store* store_;
  crdt::HybridClock* clock_;
  storage::NodeMeta meta_;
  const size_t max_group_;
  ChangeListener listener_;
  ApplierStats stats_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  std::thread thread_;

  std::atomic<uint64_t> last_seq_{0};
  std::atomic<uint64_t> key_count_{0};
  mutable std::mutex token_mu_;
  std::string token_;
};

// Session tokens: "node#incarnation:seq" entries joined by ',' (the applied
// vector, one scope). Parsing refuses anything else.
std::string FormatSessionToken(const storage::AppliedVector& applied);
bool ParseSessionToken(const std::string& text, storage::AppliedVector* out);

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_APPLIER_H_
