// The region-local HTTP API of DESIGN.md §7: routes, content negotiation
// (JSON and msgpack both ways), error shapes, and the hand-off of writes to
// the applier and of reads to reader threads, so that no I/O thread waits
// on the disk.
//
// Replication (issue 4), when the node has peers (ctx.transport set):
// - Writes (PUT/POST/DELETE on /v1/kv|counter|set|map|text, POST /v1/batch)
//   are refused with 503 clock_skew while gossip's write gate is closed
//   (DESIGN.md §3); nothing is applied. GET /v1/health says "writable" and,
//   when not, "reason".
// - ?w=N&timeout_ms=T on writes: N in 1..regions (default 1), T in
//   1..60000 ms (default 5000), anything else 400 bad_request. The reply
//   waits until N regions (this one counted) hold the write durably (for a
//   batch: its highest seq); after T (counted from the request's arrival)
//   504 {"error":"timeout","acknowledged":K,"required":N} with the
//   X-Session-Token of a success: the write is kept and keeps replicating.
// - X-Session-Token on reads (GET of a key, GET /v1/scan): malformed is 400
//   bad_request; the read waits up to ?timeout_ms=T (default 1000, at most
//   60000) until this node's applied vector covers the token, then answers;
//   otherwise 503 {"error":"not_caught_up","behind":N}.
// - /v1/status gains "peers", "clock" and "gossip"; /metrics per-peer
//   gauges, clock and gossip counters.
// - GET and POST /v1/admin/faults (only with --enable-fault-injection,
//   otherwise 404): {"drop": [node ids], "delay_ms": {node id: ms}}, each
//   field optional and kept when omitted; unknown ids, delays outside
//   0..60000 or other shapes are 400 bad_request. Both answer the faults
//   in force.
// - GET /v1/admin/backup (always served; admin tokens come later in issue
//   10): a consistent snapshot of the node's LevelDB in the backup format
//   (storage/backup_format.h), chunked, streamed from a thread of its own
//   (at most kMaxBackups at once, else 503 busy) with bounded memory: it
//   waits for the client rather than queue more than 1 MiB. A node that
//   has not bootstrapped answers 503 bootstrapping (its states are
//   partial). An error mid-stream cuts the response off without its last
//   chunk; the file's trailer and checksum catch it too.
// Waiting requests hold no thread: they wait in Waiters (node/waiters.h).
//
// Bearer tokens (node/auth.h), when the topology names a token_file: every
// request is checked once, in Handle, before it is routed, by the class of
// its method and path (auth.h ClassOf): 401 unauthorized with
// WWW-Authenticate: Bearer for a missing, malformed or unknown token, 403
// forbidden for a role too weak; nothing else of the request is looked at
// (only a query string with a malformed escape, 400 bad_query, comes first:
// the check reads ?access_token= from it). /v1/status says "auth":
// "tokens" or "open", and "api_tls": whether the node's API speaks TLS
// (its tls_cert and tls_key; the server, node/http_server.h, does the TLS).
#ifndef MERIDIAN_NODE_API_H_
#define MERIDIAN_NODE_API_H_

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gossip/transport.h"
#include "node/applier.h"
#include "node/auth.h"
#include "node/demo_files.h"
#include "node/http_server.h"
#include "node/metrics.h"
#include "node/policy_holder.h"
#include "node/topology.h"
#include "node/waiters.h"
#include "node/watch_hub.h"
#include "storage/leveldb_store.h"

namespace meridian::node {

// A few threads that run blocking work (LevelDB reads) off the I/O threads.
class WorkerPool {
 public:
  explicit WorkerPool(int threads);
  ~WorkerPool();
  void Post(std::function<void()> task);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

struct ApiContext {
  const Topology* topology = nullptr;
  const NodeConfig* node = nullptr;
  storage::Store* store = nullptr;
  Applier* applier = nullptr;
  WatchHub* watch = nullptr;
  Metrics* metrics = nullptr;
  std::chrono::steady_clock::time_point started;
  bool fault_injection = false;  // --enable-fault-injection: POST /v1/admin/faults
  gossip::Transport* transport = nullptr;  // null: no peers, no gossip
  Waiters* waiters = nullptr;              // required
  PolicyHolder* policies = nullptr;        // null: no conflict policies
  DemoFiles demo;                          // GET /demo/ (the editor's files)
};

class TextStreamHub;

class Api {
 public:
  explicit Api(ApiContext ctx, int reader_threads = 2);
  // Ends backups in flight (their clients see them cut off) and joins
  // their threads.
  ~Api();
  static constexpr int kMaxBackups = 2;

  // The HttpHandler.
  void Handle(HttpRequest&& req, Reply reply);

  // For the applier's change listener: publishes a change to watchers and
  // to live text streams.
  void PublishChange(const std::string& key, const std::string& envelope);

  // GET /v1/stream/text/{key} (node/text_stream.h); null: 404. Set before
  // the server starts.
  void set_text_streams(TextStreamHub* hub) { text_streams_ = hub; }
  // What a text stream checks before it writes: the key's policy type
  // (409 type_mismatch) and the write gate (503 while writes are refused).
  bool PolicyTypeOf(Operation* op, ApiError* err) const { return TakePolicyType(op, err); }
  bool WritableNow(ApiError* err) const { return Writable(err); }

 private:
  struct Call;  // one request in flight
  void Route(const std::shared_ptr<Call>& call);
  // `route_tag`: the type the route serves (Register for /v1/kv, which
  // serves mvregisters too); another type answers 409 type_mismatch.
  void Read(const std::shared_ptr<Call>& call, const std::string& key, uint8_t route_tag);
  void Write(const std::shared_ptr<Call>& call, Operation op);
  void Batch(const std::shared_ptr<Call>& call);
  void Scan(const std::shared_ptr<Call>& call);
  void Watch(const std::shared_ptr<Call>& call);
  void Health(const std::shared_ptr<Call>& call);
  void NodeStatus(const std::shared_ptr<Call>& call);
  void MetricsText(const std::shared_ptr<Call>& call);
  void Faults(const std::shared_ptr<Call>& call);
  void Backup(const std::shared_ptr<Call>& call);

  // The conflict policies in force (null when the node has none).
  std::shared_ptr<const conflict::Settler> Policies() const;
  // ApplyPolicyType with the policy of op->key.
  bool TakePolicyType(Operation* op, ApiError* err) const;
  // The review queue (DESIGN.md §5): GET /v1/conflicts, GET and POST
  // /v1/conflicts/{key}.
  void Conflicts(const std::shared_ptr<Call>& call);
  void ConflictOf(const std::shared_ptr<Call>& call, const std::string& key);
  void ResolveConflict(const std::shared_ptr<Call>& call, const std::string& key);
  // GET /v1/audit/{key}: the audit log of a register under audit = true.
  void Audit(const std::shared_ptr<Call>& call, const std::string& key);
  // Review entries over the conflict index (at most 10,000 keys looked
  // at; *capped says whether it stopped there).
  size_t ReviewQueueDepth(bool* capped) const;
  // /v1/status "conflicts".
  nlohmann::json ConflictStatus(const gossip::TransportSnapshot& snap) const;
  // The review entry of `key` from its conflict index entry; false when
  // it is not in the queue (or cannot be read).
  bool ConflictEntryAt(const std::string& key, const std::string& index_entry,
                       const conflict::Settler* settler, nlohmann::json* out,
                       crdt::CausalContext* context) const;

  // False (and the 503 clock_skew error) while gossip's write gate is shut.
  bool Writable(ApiError* err) const;
  // Placement (gossip/placement.h). Held: whether this node's region holds
  // `key`. PlacedHere: the same, or false with `403 placement` for a write
  // and `404 placement` for a read. WithinPlacement: false with `400
  // placement` when `w` exceeds the regions that hold `key`.
  bool Held(const std::string& key) const;
  bool PlacedHere(const std::string& key, bool write, ApiError* err) const;
  bool WithinPlacement(const std::string& key, uint64_t w, ApiError* err) const;
  // Placement scope -> a write's (or a batch's last) seq in it.
  using ScopeSeqs = std::map<std::string, uint64_t>;
  // Sends the reply of a successful write (send_ok) once `w` regions hold
  // every scope's seq of `seqs`, or 504 at the deadline.
  void ReplyWhenHeld(const std::shared_ptr<Call>& call, const ScopeSeqs& seqs, uint64_t w,
                     std::chrono::steady_clock::time_point deadline, const std::string& token,
                     std::function<void()> send_ok);
  // Runs `read` once this node covers the request's X-Session-Token (at
  // once without one), or answers 400 / 503 not_caught_up.
  void WhenCaughtUp(const std::shared_ptr<Call>& call, std::function<void()> read);

  ApiContext ctx_;
  TokenTable tokens_;  // from ctx_.topology->tokens; empty: open
  TextStreamHub* text_streams_ = nullptr;
  WorkerPool readers_;
  class BackupRunner;                      // the threads of backups in flight
  std::unique_ptr<BackupRunner> backups_;  // last: goes first
};

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_API_H_
