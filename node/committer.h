// The single-threaded core of the applier: applies one group of local
// operations and remote deltas to the store as ONE WriteBatch (group
// commit, DESIGN.md §4 and §6). The Applier runs it on its own thread; the
// deterministic simulator (tests/sim/) calls it directly, so both exercise
// the same write path against a real LevelDB.
//
// A group's batch holds: every new state; a delta-log entry per local
// write; for remote deltas no log entry but the advance of their origin in
// the applied vector; the applied vector record (once); the key count when
// keys were added; a new HLC bound when the clock has passed the stored one;
// and the digest record (storage/digests.h) of every key whose state it
// writes. If the batch fails nothing of the group is visible and every item
// of it fails (507 for a full disk).
//
// Placement scopes (DESIGN.md §4, gossip/placement.h): each key belongs to
// one scope (SetScopeOf; "" for every key without one). A local write is
// logged in its key's scope under the next sequence of (this replica,
// scope); its digest record and its bucket sums are its scope's; a remote
// delta or a repaired state whose key lies in another scope than the one
// it came for is refused like a bad key. Collection looks up a tombstone's
// writer in the stable vector under the key's scope.
//
// Digest sums: the Committer keeps every scope's bucket sums in memory
// (loaded at start with NodeMeta). For each key a group writes, the
// digest before is that of the stored bytes the group loaded (zero when the
// key had no state), the digest after that of the bytes it writes. The
// sums change only once the batch has succeeded.
//
// Remote entries: each entry's delta is decoded with the CHECKED decoder
// (crdt::Envelope::Decode: it came over the network) and joined into the
// key's state. Entries at or below the origin's applied seq are skipped as
// duplicates; an entry past applied + 1 (a gap) or one that does not
// decode ends that RemoteApply there: the entries before it still commit
// and RemoteResult says how far it got and why it stopped. Types that lose
// a concurrent first write (crdt::Envelope::Merge's `lost`) are counted in
// type_conflicts() and kept in the envelope.
//
// Conflict index (conflict/conflict_index.h): every Commit and Repair puts,
// in its batch, a conflict entry for each key whose new state holds a
// conflict its stored state did not, and deletes the entry of each key
// whose new state no longer holds one; for a conflicted key the audit
// predicate (SetAuditPredicate) names, it also puts an audit record per
// sibling that loses under last-writer-wins. conflict_counts() counts
// them once the batch is written.
//
// Repair (Merkle anti-entropy's storage side, gossip/anti_entropy.h
// AeRepair): whole states from a peer, joined into the store as ONE
// WriteBatch of their own (no local op, no remote delta, no delta-log
// entry, no HLC bound). Every state is decoded with the CHECKED decoder
// and its key validated before anything is joined: one that fails fails
// the whole repair with nothing written (InvalidArgument for a key that is
// empty, longer than 1024 bytes or not UTF-8; the decoder's error, e.g.
// Corruption, for a state; both name the state's index and key). Each
// state is then joined into the key's current state in order, with the
// same join as remote deltas (type conflicts counted the same way); only
// keys whose state changed are written, each with its digest record, and
// the key count grows by the keys that had no state. With has_advance, the
// applied vector is raised entry by entry to the max of it and `advance`,
// EXCEPT the entries of this node's own origin (its own log is the truth:
// they are ignored), in the same batch. A repair that changes nothing
// writes nothing and succeeds. A failed batch (a full disk) leaves the
// store, applied(), key_count() and digest_sums() as they were and returns
// the store's error; a retry may then succeed. After success, as after
// Commit: digest_sums() and last_digest_changes() reflect the changed
// keys, applied() the advance, and the change listener is called once per
// changed key with its final state.
//
// A restored backup (storage/backup.h) holds states from before its
// snapshot, and a register deleted after it may since have been collected
// everywhere: the peers hold nothing of it, and joining would never drop
// the restored value. So while the node holds the backed-up incarnation's
// applied vector (NodeMeta::restored_applied: until its first repair with
// an advance, i.e. its bootstrap round, or its first commit), a repair
// that names the buckets it holds whole (StateRepair::buckets) also drops
// each key of those buckets that the peer lacks, whose state is a
// register written by a replica W the backup had applied up to seq b > 0,
// when the peer's view has applied W up to b or more: the peer then had
// that write, and lacking the key now means it collected a later delete.
// A restored state the peer has not seen (W not that far in its view: a
// write that never left the backed-up node) stays, and reaches the peer
// by later rounds. Dropped keys leave with their digest, conflict entry
// and collection candidate (RepairResult::dropped; the change listener
// is not called).
//
// Collection (DESIGN.md §4 "Garbage"): a register tombstone (a key whose
// only state is a deleted register) is the one state that can go whole.
// Every Commit and Repair that writes one also writes a collection
// candidate (storage::GcCandidate) naming the delete's writer and this
// node's applied seq of that writer after the batch (at least the delete's
// own seq; a writer this node has no entry for gets no candidate, and its
// tombstone stays). Collect drops, in one batch, the state, digest record
// and candidate of each tombstone whose candidate is covered by the stable
// vector it is given (gossip Protocol::Stable()): every replica holds the
// delete, and any write it could still send carries a greater HLC, so no
// older value can come back, except through an anti-entropy repair whose
// states were read before the peer applied the delete: so Repair refuses
// states as of a view that does not cover every stable vector Collect has
// collected with (stored with the collection, so that a round a peer
// started before a restart is refused after it too). A repair raises the
// floor to cover the sender's (StateRepair::peer_floor): the states it
// brings may lack tombstones the sender collected, so a state older than
// those (an anti-entropy round another peer started long before) could
// bring back what they removed, here as at the sender. A repair's register tombstone of a key this
// node holds nothing for, whose delete is below that floor, is skipped
// (it was collected here already). A candidate whose key no longer holds a
// tombstone (written since) just goes. Other types' deletes keep their
// causal context (so dots are never reissued) and are not collected.
//
// Thread-safety: none. One thread calls everything.
#ifndef MERIDIAN_NODE_COMMITTER_H_
#define MERIDIAN_NODE_COMMITTER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "crdt/hlc.h"
#include "crdt/status.h"
#include "gossip/messages.h"
#include "node/operation.h"
#include "storage/digests.h"
#include "storage/leveldb_store.h"
#include "storage/node_meta.h"

namespace meridian::node {

// One key's digest change in a committed group.
struct DigestChange {
  std::string scope;  // the key's placement scope
  uint32_t bucket = 0;
  storage::Digest before;  // zero: the key had no state
  storage::Digest after;
};

struct WriteResult {
  bool ok = false;
  ApiError error;             // when !ok
  std::string envelope;       // the key's new state (encoded), when ok
  std::string scope;          // its key's placement scope (the log it went to)
  uint64_t seq = 0;           // the write's delta-log sequence in that scope
  std::string session_token;  // X-Session-Token after this write
};

// Deltas of one origin, contiguous and in order (gossip ApplyRequest).
struct RemoteApply {
  crdt::ReplicaId origin;
  std::string scope;
  std::vector<gossip::DeltaEntry> entries;
};

struct ConflictCounts {
  uint64_t opened = 0;   // conflict entries put
  uint64_t closed = 0;   // conflict entries deleted
  uint64_t audited = 0;  // audit records put
  void Add(const ConflictCounts& o) {
    opened += o.opened;
    closed += o.closed;
    audited += o.audited;
  }
};

struct RemoteResult {
  Status status;              // ok, or why it stopped early (or the batch failed)
  uint64_t last_durable = 0;  // the origin's applied seq after the commit
};

// Whole states for Committer::Repair (anti-entropy), and how far to
// advance the applied vector with them.
struct StateRepair {
  // The placement scope the states come for: each state's key must lie in
  // it, and only its entries of the collect floor count against `view`.
  std::string scope;
  // The buckets (of `scope`) whose every state, as of `view`, `states`
  // holds: see "A restored backup" above.
  std::vector<uint32_t> buckets;
  // key, encoded crdt::Envelope (the whole state; untrusted: checked decode)
  std::vector<std::pair<std::string, std::string>> states;
  bool has_advance = false;
  storage::AppliedVector advance;  // with has_advance
  // The sender's View applied vector (the states are as of it): a repair
  // whose view does not cover every stable vector Collect has used is
  // refused (FailedPrecondition, nothing written), since its states may
  // predate tombstones already dropped here.
  bool has_view = false;
  storage::AppliedVector view;
  // The sender's collection floor as of that view: its states may lack
  // the tombstones of deletes this covers, and so may this node's once it
  // has joined them. The floor here rises to cover it (in the same batch),
  // so that states older still are refused from then on.
  storage::AppliedVector peer_floor;
};

struct RepairResult {
  Status status;       // ok, or why nothing was written
  size_t changed = 0;  // keys whose state changed (and were written)
  size_t dropped = 0;  // restored keys the peer had seen and dropped (see above)
  storage::AppliedVector applied;  // when ok: the applied vector the repair left
};

struct CollectResult {
  Status status;          // ok, or why nothing was written
  size_t examined = 0;    // candidates read
  size_t collected = 0;   // tombstones dropped
  bool wrapped = false;   // the scan reached the last candidate (the next starts over)
};

// Called after a successful commit for every key the group changed (local
// or remote), with its new encoded envelope. Must not block.
using ChangeListener = std::function<void(const std::string& key, const std::string& envelope)>;
// A key's placement scope (gossip::Placement::ScopeOf).
using ScopeOfKey = std::function<std::string(const std::string& key)>;

class Committer {
 public:
  // REQUIRES: store and clock outlive the Committer. `meta`: what the node
  // loaded (or created) at start.
  Committer(storage::Store* store, crdt::HybridClock* clock, storage::NodeMeta meta);

  // Applies `ops` in order, then `remotes` in order, and commits them as one
  // batch. *results gets one WriteResult per op, *remote_results one per
  // remote (either may be null when its input is empty). Every result is
  // final when Commit returns: durable if ok.
  void Commit(const std::vector<const Operation*>& ops, std::vector<WriteResult>* results,
              const std::vector<const RemoteApply*>& remotes,
              std::vector<RemoteResult>* remote_results);

  // Joins whole states (and advances the applied vector) as one batch; see
  // "Repair" above. `result` may be null; it is final when Repair returns:
  // durable if ok.
  void Repair(const StateRepair& repair, RepairResult* result);

  // Reads at most `limit` collection candidates, from where the previous
  // call stopped, and drops the tombstones `stable` covers (see
  // "Collection" above), in one batch. After success digest_sums(),
  // last_digest_changes() and key_count() reflect the dropped keys; the
  // change listener is not called (readers saw the delete already). A
  // failed batch changes nothing.
  void Collect(const storage::AppliedVector& stable, size_t limit, CollectResult* result);

  // Absorbs a peer's HLC (already checked against the offset limit by the
  // gossip protocol) before the next timestamp is issued; one refused by
  // the clock is ignored.
  void ObserveHlc(crdt::Hlc hlc);

  void SetChangeListener(ChangeListener listener) { listener_ = std::move(listener); }
  // Every key's placement scope (null, the default: "" for every key). Set
  // it before the first Commit, and keep it the same across restarts while
  // the data dir holds keys it would move (a key's records stay in the
  // scope they were written in).
  void SetScopeOf(ScopeOfKey scope_of) { scope_of_ = std::move(scope_of); }
  std::string ScopeOf(const std::string& key) const { return scope_of_ ? scope_of_(key) : ""; }
  // Keys whose losing concurrent writes are audited (a register policy
  // with `audit = true`); null: none. Called on the committing thread.
  void SetAuditPredicate(std::function<bool(const std::string& key)> audited) {
    audited_ = std::move(audited);
  }

  // With `defer`, every batch is written with WriteBatch::DeferSync: a
  // Commit, Repair or Collect that succeeds has made its changes visible
  // (and safe from a process crash), and they are durable only once a
  // Store::Sync() begun after it returns OK. "Durable if ok" below then
  // means that. The Applier defers, so that a group never waits for the
  // fsync of the one before it; the simulator does not.
  void set_defer_sync(bool defer) { defer_sync_ = defer; }

  const crdt::ReplicaId& replica() const { return meta_.replica; }
  const storage::AppliedVector& applied() const { return meta_.applied; }
  // Entry by entry the max of every stable vector Collect has dropped
  // tombstones with (see "Collection").
  const storage::AppliedVector& collect_floor() const { return collect_floor_; }
  // This node's last logged seq in `scope`.
  uint64_t last_seq(const std::string& scope = std::string()) const;
  uint64_t key_count() const { return meta_.key_count; }
  std::string SessionToken() const;  // FormatSessionToken(applied())
  // Bytes of delta-log entries the last successful Commit appended.
  uint64_t last_log_bytes() const { return last_log_bytes_; }
  // Per scope the last Commit appended to: its log's new end and the bytes
  // appended (empty after a Commit that logged nothing or failed).
  struct LogAppend {
    uint64_t last_seq = 0;
    uint64_t bytes = 0;
  };
  const std::map<std::string, LogAppend>& last_appends() const { return last_appends_; }
  uint64_t type_conflicts() const { return type_conflicts_; }
  const ConflictCounts& conflict_counts() const { return conflict_counts_; }
  // OK unless the last Commit's or Repair's batch failed; then the store's
  // error (the Applier counts failed groups and tells listeners only of
  // successes). A Repair refused before its batch (a bad state) leaves it
  // unchanged.
  const Status& last_status() const { return last_status_; }
  // A scope's bucket sums, as of the last successful commit (all zero for
  // a scope without keys).
  const storage::BucketSums& digest_sums(const std::string& scope = std::string()) const;
  // Every scope with keys other than the default one, with its sums.
  const std::map<std::string, storage::BucketSums>& placed_sums() const {
    return meta_.placed_sums;
  }
  // The digest changes of the last Commit or Repair, one per key whose
  // digest it changed, in the order the keys were first written; empty
  // when that call failed or changed no digest. Applying them with
  // BucketSums::Replace to a copy of digest_sums(c.scope) from before that
  // call gives digest_sums(c.scope) (how the Applier mirrors the sums).
  const std::vector<DigestChange>& last_digest_changes() const { return last_digest_changes_; }

 private:
  storage::Store* store_;
  crdt::HybridClock* clock_;
  storage::NodeMeta meta_;
  ChangeListener listener_;
  std::function<bool(const std::string&)> audited_;
  ScopeOfKey scope_of_;
  ConflictCounts conflict_counts_;
  uint64_t last_log_bytes_ = 0;
  std::map<std::string, LogAppend> last_appends_;
  uint64_t type_conflicts_ = 0;
  bool defer_sync_ = false;
  // The sums of `scope`, created empty on first use.
  storage::BucketSums& SumsOf(const std::string& scope);
  void ApplyDigestChanges(const std::vector<DigestChange>& changes);
  Status last_status_;
  std::vector<DigestChange> last_digest_changes_;
  std::string gc_cursor_;  // Collect resumes after this candidate key ("": from the start)
  // False once a scan from the start found no collection candidate, until
  // a Commit or Repair puts one: Collect then skips its scan. (Not only
  // cheaper: in LevelDB's key order the candidates are followed by the
  // delta log, whose truncated entries stay as tombstones until compaction,
  // and a scan that runs off the candidates steps over every one of them:
  // tens of milliseconds on the applier, once per heartbeat, at 10,000
  // writes/s.)
  bool gc_candidates_maybe_ = true;
  // Entry by entry the max of every stable vector a Collect dropped
  // something with (metadata kMetaCollectFloor): repairs as of views below
  // it are refused.
  storage::AppliedVector collect_floor_;
};

// Session tokens: the applied vector as entries joined by ',', each
// "node#incarnation:seq" for the default scope and
// "node#incarnation@scope:seq" for a placement scope, the scope with every
// byte other than A-Z a-z 0-9 . _ - / ~ written as %XX (upper-case hex).
// Parsing refuses anything else.
std::string FormatSessionToken(const storage::AppliedVector& applied);
bool ParseSessionToken(const std::string& text, storage::AppliedVector* out);
// True when `applied` holds every (origin, scope) of `token` at least as
// far; otherwise *behind gets how many sequences are missing in all.
bool Covers(const storage::AppliedVector& applied, const storage::AppliedVector& token,
            uint64_t* behind);

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_COMMITTER_H_
