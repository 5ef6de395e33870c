// Merkle anti-entropy (DESIGN.md §4) as a pure state machine: what repairs
// the gaps delta shipping cannot (a partial partition, a peer away longer
// than the log is kept, a node that lost its data). No sockets, clocks,
// disks or threads: the Protocol (gossip/protocol.h) owns one AntiEntropy,
// feeds it the AE messages and ticks, and carries its effects out through
// its driver, so the transport and the simulator run the same code.
//
// The tree. Its leaves are the kBuckets bucket sums of storage/digests.h
// (sum of the digests of a bucket's keys); the fanout is kFanout = 16, so
// level 0 is the root (1 node), level 1 has 16 nodes, level 2 256 and level
// 3 = kLeafLevel the 4096 buckets. A node's hash is the sum of its leaves
// (TreeHash). Node i of level L has children 16*i .. 16*i+15 on level L+1.
//
// A round between an initiator I and a responder R, for one scope:
//   1. I takes a View (bucket sums and applied vector read together, as of
//      one commit) and sends AeBegin{round, the 16 level-1 hashes}.
//   2. R takes its own View. If every hash matches it answers AeDone{round,
//      in_sync}. Otherwise it answers AeHashes{round, level 2, the children
//      of every differing level-1 node}, from its View.
//   3. I compares them with ITS View of step 1 and answers AeHashes{level
//      3, children of the differing level-2 nodes}; if none differ (the
//      difference vanished: writes went on), AeDone{in_sync}.
//   4. R compares buckets: D = the differing buckets (none: AeDone). R
//      sends its states of D (ReadStates effect: the driver reads the
//      current states of those buckets and sends them as AeStates messages
//      below the frame limit, the last one flagged `last` and carrying R's
//      View applied vector), and AeWant{round, D}.
//   5. I answers AeWant the same way (its states of D, its View's applied
//      vector on the last message).
//   Each side keeps the states it receives until it holds every part, then
//   joins them all into its store and advances its applied vector to cover
//   the sender's View's applied vector (entry by entry, the max) in ONE
//   repair (one batch). That is sound because every bucket not in D was
//   equal to the sender's View when compared, every bucket in D now holds
//   the join of both sides' states, states only grow, and the sender read
//   its applied vector, its sums and the states it sent as of one commit
//   (the View's snapshot), before it produced any hash: so the receiver
//   now holds everything the sender had applied at its View, and nothing
//   the sender had not (no read can show a state ahead of the applied
//   vector, so session tokens stay exact).
//   Every message that carries a View applied vector (AeBegin, the last
//   AeStates, AeDone{in_sync}) also carries that View's collection floor,
//   and each AeRepair names the peer's (AeRepair::peer_floor): the
//   Protocol takes a repair only from a peer whose floor this node has
//   applied (gossip/protocol.h "Anti-entropy").
//   The AeStates of one side are numbered (`part` 0, 1, 2...; the last is
//   flagged), so the receiver knows when it holds every part, whatever
//   order they came in. A round's states are held in memory until then.
//   Equal Views (step 2 all equal, or no D in step 4): AeDone{in_sync}
//   carries the sender's View applied vector (as AeBegin carries the
//   initiator's) and each side advances to the other's, by the same
//   argument; otherwise a replica that got its states from a round whose
//   last message was lost would never advance past them.
// A round ends for a side when it has applied the last AeStates of the
// other (the initiator: and answered its AeWant; after an AeDone{in_sync}:
// once its advance is durable), or after round_timeout_ms without
// progress (abandoned: nothing is advanced; the next round starts over).
// Lost or duplicated messages are harmless: a message for a round the
// side does not have open is ignored; repairs are joins.
//
// Scheduling: every interval_ms this node starts a round with the next up
// peer in turn (one round per peer at a time in each direction), and at
// once with a peer that comes up again (PeerUp). A node that must
// bootstrap (a fresh incarnation on an empty data dir) is `bootstrapped()`
// only once it has completed a round, as either side, with any peer.
//
// Logs: every abandoned round, every round that repaired or advanced
// something, and the first completed round; quiet in-sync rounds are only
// counted.
//
// Costs follow the difference: hashes only under differing nodes (16 per
// differing node per level), states only of differing buckets.
#ifndef MERIDIAN_GOSSIP_ANTI_ENTROPY_H_
#define MERIDIAN_GOSSIP_ANTI_ENTROPY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "crdt/causal_context.h"
#include "storage/digests.h"
#include "storage/leveldb_store.h"

namespace meridian::gossip {

// Applied sequence per (origin replica, scope): the same shape as
// storage::AppliedVector and gossip::Applied (protocol.h).
using AeApplied = std::map<std::pair<crdt::ReplicaId, std::string>, uint64_t>;

inline constexpr uint32_t kFanout = 16;
inline constexpr int kLeafLevel = 3;  // 16^3 == storage::kBuckets
static_assert(kFanout * kFanout * kFanout == storage::kBuckets, "tree shape");

// Nodes on level L (0..kLeafLevel): 16^L.
uint32_t NodesOnLevel(int level);
// The hash of node `index` of `level` over `sums`.
storage::Digest TreeHash(const storage::BucketSums& sums, int level, uint32_t index);

// What a node reads of itself, consistently: sums, applied vector and a
// snapshot of its store, all as of the same commit. The states a round
// sends are read from the snapshot, so they are covered by the applied
// vector sent with them (a receiver never holds a state its applied vector
// does not account for, which session tokens rely on).
struct View {
  storage::BucketSums sums;
  AeApplied applied;
  // The collection floor (node/committer.h "Collection"): the tombstones
  // of deletes this vector covers may have been dropped here.
  AeApplied floor;
  storage::SnapshotRef snapshot;  // null: the states cannot be read (the read fails)
};

// The AE part of a gossip Message (gossip/messages.h carries it).
enum class AeKind : uint8_t { kBegin = 1, kHashes = 2, kWant = 3, kStates = 4, kDone = 5 };

struct AeNode {
  uint32_t index = 0;  // on the message's level
  storage::Digest hash;
  bool operator==(const AeNode& o) const { return index == o.index && hash == o.hash; }
};

struct AeState {
  std::string key;
  std::string envelope;  // an encoded crdt::Envelope (the whole state)
  bool operator==(const AeState& o) const { return key == o.key && envelope == o.envelope; }
};

struct AeBody {
  AeKind kind = AeKind::kBegin;
  uint64_t round = 0;            // chosen by the initiator, unique per (initiator, peer)
  bool from_initiator = true;    // which side of the round sent it
  std::string scope;
  int level = 1;                 // kBegin (1), kHashes (2 or 3)
  std::vector<AeNode> nodes;     // kBegin, kHashes
  std::vector<uint32_t> buckets; // kWant
  std::vector<AeState> states;   // kStates
  uint32_t part = 0;             // kStates: 0, 1, 2... of the sender's in this round
  bool last = false;             // kStates: the sender's last one of this round
  AeApplied applied;             // the sender's View applied vector: kBegin, kStates
                                 // with last, kDone with in_sync
  AeApplied floor;               // the sender's View collection floor: with `applied`
  bool in_sync = false;          // kDone: the Views were equal; false: the sender
                                 // gave the round up (the receiver abandons it too)
  bool source = true;            // kBegin: the initiator may be bootstrapped from
                                 // (set by the Protocol: IsSource)
  bool operator==(const AeBody& o) const;
};

// Effects the driver carries out.
// Send `body` to `peer`.
struct AeSend {
  std::string peer;
  AeBody body;
};
// Read the current states of `buckets` of `scope` (storage::ScanBucket and
// the states themselves) and send them to `peer` as kStates messages of
// this round, each below the frame limit, numbered by `part` from 0, the
// last with last = true and `applied` (at least one message: with no
// states, one empty last one). If they cannot be read, call OnReadFailed.
struct AeReadStates {
  std::string peer;
  uint64_t round = 0;
  bool from_initiator = true;
  std::string scope;
  std::vector<uint32_t> buckets;
  AeApplied applied;
  AeApplied floor;                // the View's collection floor, sent with `applied`
  storage::SnapshotRef snapshot;  // read the states as of this (the View's)
};
// Join `states` into the store, in order, durably; with `advance` set,
// also raise the applied vector entry by entry to cover `advance`, in the
// same batch. Then call OnRepaired (or OnRepairFailed). Repairs of one
// peer must be applied in the order given. A round's repair carries all of
// the states the peer sent in it, with the advance: nothing of a round is
// joined before every part is in.
struct AeRepair {
  std::string peer;
  uint64_t round = 0;
  bool initiator = true;  // this node's side in the round
  std::string scope;
  std::vector<AeState> states;
  // The buckets whose every state (as of the peer's View) `states` holds:
  // the round's differing buckets (empty for an in-sync advance).
  std::vector<uint32_t> buckets;
  bool has_advance = false;
  AeApplied advance;
  // The peer's View applied vector, whether or not it advances anything:
  // the states are as of it (the store refuses states older than
  // tombstones it has collected, node/committer.h).
  AeApplied view;
  // The peer's View collection floor: its states may lack the tombstones
  // of deletes this covers, so a node that has not applied all of it
  // could hold values those deletes removed, and must not take the
  // repair (the Protocol drops it: protocol.h "Anti-entropy").
  AeApplied peer_floor;
};

struct AeEffects {
  std::vector<AeSend> sends;
  std::vector<AeReadStates> reads;
  std::vector<AeRepair> repairs;
  std::vector<std::string> logs;
};

struct AeOptions {
  uint64_t interval_ms = 1000;        // [cluster] anti_entropy_interval_ms
  uint64_t round_timeout_ms = 10000;  // abandon a round without progress this long
  bool must_bootstrap = false;        // a fresh incarnation: not bootstrapped until a round completes
  std::string scope;                  // the placement scope its rounds compare (set by the Protocol)
};

struct AeCounters {
  uint64_t rounds_started = 0;        // as either side (started = completed + abandoned + open)
  uint64_t rounds_completed = 0;      // as either side
  uint64_t rounds_in_sync = 0;        // completed with nothing to repair
  uint64_t rounds_abandoned = 0;
  uint64_t rounds_declined = 0;       // AeBegins answered with a give-up (Decline)
  uint64_t buckets_repaired = 0;      // differing buckets found, both sides counted
  uint64_t states_sent = 0;           // reported by the driver (NoteStatesSent)
  uint64_t states_received = 0;
};

// View provider: the Protocol's driver implements it over the node (the
// applier's published sums and applied vector) or the simulator's node.
class ViewSource {
 public:
  virtual ~ViewSource() = default;
  virtual void ReadView(const std::string& scope, View* out) = 0;
};

class AntiEntropy {
 public:
  // `peers`: the peer node ids; `views` outlives this.
  AntiEntropy(AeOptions options, std::vector<std::string> peers, ViewSource* views);
  ~AntiEntropy();
  AntiEntropy(const AntiEntropy&) = delete;
  AntiEntropy& operator=(const AntiEntropy&) = delete;

  // mono_ms: the driver's monotonic clock. `up`: the peers now up.
  void OnTick(uint64_t mono_ms, const std::vector<std::string>& up, AeEffects* out);
  // A peer came up again (from down or unknown): start a round with it now.
  void PeerUp(uint64_t mono_ms, const std::string& peer, AeEffects* out);
  // A peer went down: abandon its rounds.
  void PeerDown(const std::string& peer);
  // Instead of OnMessage for an AeBegin `begin` from `peer` that the
  // Protocol declines (neither side may be bootstrapped from): answers
  // AeDone{in_sync = false} (the initiator abandons the round) and opens
  // nothing; a round this node had open as the peer's responder is
  // dropped.
  void Decline(const std::string& peer, const AeBody& begin, AeEffects* out);
  // An AE message from `peer` (already admitted by the Protocol's header
  // checks).
  void OnMessage(uint64_t mono_ms, const std::string& peer, const AeBody& body, AeEffects* out);
  // The driver finished an AeRepair (durable) / could not.
  void OnRepaired(uint64_t mono_ms, const std::string& peer, uint64_t round, bool initiator,
                  bool advanced, AeEffects* out);
  void OnRepairFailed(const std::string& peer, uint64_t round, bool initiator);
  // The driver could not serve an AeReadStates: the round is abandoned.
  void OnReadFailed(const std::string& peer, uint64_t round, bool from_initiator);
  void NoteStatesSent(uint64_t n);
  // The effects of the calls above that take no AeEffects (PeerDown,
  // OnRepairFailed, OnReadFailed); every call that takes one also passes
  // them on first.
  void TakePending(AeEffects* out);

  uint64_t NextTickMs() const;
  // True unless must_bootstrap and no round has completed yet (a node with
  // no peers never waits, DESIGN.md §3).
  bool bootstrapped() const;
  // Counts this node as bootstrapped without a round: the Protocol found
  // that no node of the cluster holds data (Protocol, "Anti-entropy").
  void BootstrapAlone();
  const AeCounters& counters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meridian::gossip

#endif  // MERIDIAN_GOSSIP_ANTI_ENTROPY_H_
