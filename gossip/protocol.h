// The replication protocol as a pure state machine (DESIGN.md §3, §4).
//
// Messages and ticks go in; messages to send, storage effects (log ranges
// to ship, remote deltas to apply) and the next wake-up time come out. No
// sockets, no clock reads, no sleeps, no threads: the ZeroMQ transport
// (gossip/transport.h) and the deterministic simulator (tests/sim/) drive
// the same code. Thread-safety: none; one driver thread owns it.
//
// One Protocol replicates one placement scope (ProtocolOptions::scope;
// DESIGN.md §4): the keys of one [[placement]] prefix, or the default
// scope of every other key. Its peers are the nodes that hold the scope,
// and everything below (sessions, logs, acknowledgements, applied vectors,
// anti-entropy trees, stability) is of that scope alone.
// gossip/scoped_protocol.h runs one per scope a node holds.
//
// What it does, per peer (every other node that holds the scope):
//   Handshake. A node sends Hello to each peer until that peer answers
//     Welcome; the Welcome carries how much of this node's log the peer
//     holds durably, and shipping (re)starts just past it. Header checks on
//     every message: cluster name and protocol version must match
//     (otherwise Refuse, counted and logged), the sender must be a node of
//     the topology, and the header's HLC may be at most max_clock_offset_ms
//     ahead of the local wall clock (otherwise the message is refused with
//     kClockAhead, counted, and not absorbed). Accepted headers' HLCs are
//     returned in Effects::observed_hlc for the driver to absorb into the
//     node's clock. A message from an earlier incarnation of a node than
//     one already accepted from it (incarnations grow, DESIGN.md §3) is
//     dropped unanswered: it was in flight when that node lost its data.
//   Shipping (sender). This node ships its OWN origin's delta log to every
//     welcomed peer, in ShipRequests of at most max_deltas_per_message
//     sequences, never more than `window` past what the peer acknowledged.
//     A peer's cursor is the highest sequence shipped; when nothing is
//     acknowledged for resend_timeout_ms while sequences are in flight, or
//     the peer went down and was welcomed again, the cursor falls back to
//     the acknowledged sequence and the range is shipped again.
//   Applying (receiver). Deltas come only from their origin (the sender's
//     replica is the origin; there is no other origin field to forge), and
//     only after that sender's Hello was accepted (else Refuse
//     kNoHandshake, and the sender says Hello again). Each origin's deltas
//     are applied in sequence order: those past a gap are held back (at
//     most max_held_back per origin), contiguous runs go out as
//     ApplyRequests, and once the driver reports them durable (OnApplied)
//     an Ack of the highest contiguous durable sequence goes to the origin.
//     Duplicates are dropped (and re-acknowledged).
//   Failure detection. Ping every heartbeat_interval_ms; any message from a
//     peer marks it up. Not heard for suspect_after_missed intervals:
//     suspect; for down_after_missed: down (and its outbound session ends,
//     so it is welcomed afresh when it returns). A peer not heard since
//     start is kUnknown until down_after_missed intervals have passed.
//   Clock safety. Pong answers carry the responder's wall clock; the
//     offset to a peer is pong_wall - (ping_sent + pong_received) / 2, the
//     sample with the smallest round trip of the last few kept. A sample
//     that cannot agree with the kept ones (offsets further apart than half
//     their round trips together allow) shows that a clock stepped, and the
//     older samples are dropped.
//     A message refused for its HLC (kClockAhead) is never absorbed and
//     never handled, but its clock still counts: a refused Pong gives a
//     round-trip sample like any other, and any other refused message a
//     one-way sample (its header's wall_ms minus ours, a lower bound: the
//     delay is unknown). The one-way sample is the estimate while no
//     round-trip sample is kept, and one beyond what a kept round-trip
//     sample allows drops them (a clock stepped).
//     A peer that refuses OUR messages with kClockAhead sees our HLC more
//     than the limit ahead of its clock: it counts as off whatever the
//     samples say, until it answers a Ping sent at or after the last such
//     Refuse arrived. (So a node whose HLC ran ahead of its wall clock, as
//     after its wall clock stepped back, stays fenced until its wall clock
//     catches up, as DESIGN.md §3 says of restarts.)
//     A peer whose messages are all refused for their clock is still heard:
//     it is up and reachable, never down for that alone, and the samples
//     its refused messages give count like any others.
//     When a peer goes down its clock knowledge is kept but stale: the
//     first new sample replaces all of it.
//     Gate() refuses writes (code "clock_skew") while the peers that find
//     this node's clock off outnumber those that find it in range (so: off
//     from more than half of the reachable peers that count). Off: not
//     down, and the estimate exceeds 40% of max_clock_offset_ms or the peer
//     refuses our clock; stale knowledge counts here. In range: up (a
//     suspect peer's old samples do not vouch), measured since it was last
//     down, within 40%, not refusing. Other reachable peers do not count
//     either way. After start, Gate() also refuses writes until this node
//     knows its clock against more than half of the reachable (not down)
//     peers (a sample of either kind, or a refusal of our clock; passed
//     once, it stays passed). A node without peers, or whose peers are all
//     down, is not held.
//   Anti-entropy. Given a ViewSource, the Protocol owns an AntiEntropy
//     (gossip/anti_entropy.h): kAntiEntropy messages pass the same header
//     checks as every other message (so states obey the clock-offset rule
//     of deltas) and go to it; its sends leave as kAntiEntropy messages,
//     its reads and repairs as Effects::ae_reads and ae_repairs. Rounds
//     repair what deltas cannot, so they do not race deltas that are about
//     to arrive: a peer takes part in rounds this node starts (scheduled,
//     or at once when it comes back up from down or unknown) only while
//     delta shipping keeps up both ways: it has welcomed us and has
//     acknowledged our log up to what is at most ae_max_ship_lag_ms old,
//     and this node has applied the peer's log up to the end its Pings
//     announced (kPing carries the sender's log end) no longer than
//     ae_max_ship_lag_ms ago. Scheduled rounds run every interval only
//     while some peer is not up (its writes may reach this node only
//     through others, as in a partial partition); while all are up, every
//     ae_all_up_interval_ms, at a quiet moment, when no delta has moved
//     for a heartbeat interval (waiting up to ae_all_up_max_wait_ms for
//     one: a round finds the deltas in flight as differing buckets and
//     sends every state of those buckets, which under steady writes costs
//     more than the deltas). A node that must bootstrap
//     (anti_entropy.must_bootstrap) starts rounds with any up peer, and
//     Gate() refuses writes with code "bootstrapping" until a round has
//     completed. A node that has not bootstrapped, or that knows it is
//     below a peer's collection floor (below), is no source: its Begins
//     say so (AeBody::source), and it declines a round begun by a peer
//     that is none either (AntiEntropy::Decline: the initiator abandons
//     the round; counted in rounds_declined). A fresh incarnation thus
//     bootstraps only from a node that holds the cluster's data, never
//     from another fresh one or from one that lacks collected deletes;
//     except that when every peer is up, its latest Ping says it holds
//     nothing (no log, an applied vector of zeros) and its latest Begin
//     says it is no source, no node holds data or can be bootstrapped
//     from, and a node that has not bootstrapped bootstraps on its own, as
//     with --bootstrap (say the first node lost its disk before any other
//     bootstrapped from it, or every node rejoined). When a repair
//     advanced the applied vector the driver reports the new vector
//     (OnAeRepaired): entries held back behind a gap that it closed are
//     applied, and origins are acknowledged. A node that
//     has not bootstrapped applies no deltas (its state comes whole from
//     its first repair). Each repair carries the sender's collection floor
//     (View::floor): the sender may have dropped the tombstones of deletes
//     it covers, so a bootstrapped node that has not applied all of it
//     could hold values those deletes removed, which the repair's advance
//     would then vouch for: the Protocol drops such a repair (the round is
//     abandoned, counted in repairs_below_floor) until deltas or a peer
//     that still holds those tombstones bring them; still short of every
//     floor it was refused for after max(5 anti-entropy intervals, 10
//     heartbeats), the node cannot tell which of its values are stale and
//     rejoins as a new incarnation (Effects::rejoin; Gate() "rejoining").
//   Causal stability. Every Ping carries the sender's applied vector (its
//     report). A peer's report becomes usable once this node's own applied
//     vector covers it (this node then holds everything that replica held
//     when it reported); Stable() is, per origin, the minimum of this
//     node's applied seq and every peer's usable report, and is empty while
//     some peer has none. A peer heard under a new incarnation starts with
//     no usable report: its predecessor no longer counts, and stability
//     waits on the successor (whose reports cover little until it has
//     bootstrapped). So an origin's write up to its stable seq has been
//     applied by every replica, and every write any replica made before it
//     applied that write has been applied here; a write made after carries
//     a greater HLC (the replica's clock absorbed the one that brought it).
//   Log collection. With every heartbeat the own log is truncated (a
//     TruncateRequest) up to what every peer that pins it has
//     acknowledged. A peer pins the entries it lacks while the oldest of
//     them was appended at most log_retention_ms ago and they hold at most
//     log_retention_bytes (bytes as reported by OnLocalAppend; entries
//     logged before the start count as appended at the start, with no
//     bytes); past either limit it pins nothing, so one absent peer never
//     makes the log grow without bound. A peer whose acknowledgement is
//     unknown (not welcomed since the start) pins everything retained,
//     within the same limits. A welcomed peer that lacks entries already
//     truncated (acked + 1 < the first retained seq) gets no deltas: it is
//     repaired by anti-entropy instead, which counts it ready whatever its
//     shipping lag, starts a round with it at once, and keeps scheduled
//     rounds at anti_entropy.interval_ms while it lasts. The repair makes
//     it acknowledge the sender's View, and shipping resumes from there.
//   Retention horizon (retention_horizon_ms; DESIGN.md §4 "Garbage"). A
//     peer not heard for longer than the horizon, while this node is in
//     two-way contact with a majority of the cluster (itself counted: so a
//     node cut off with a minority retires no one, and of two sides of a
//     split only the larger retires the other) and has bootstrapped (one
//     that has not collects nothing, and the peer may be the only one
//     holding the data it waits for), has its incarnation
//     retired: the highest incarnation of it this node knows (heard, or
//     named in the applied vector or a peer's report; none known: not
//     retired) goes out in Effects::expirations to be stored, its reports
//     are dropped, it no longer pins the log, and every message from that
//     incarnation or an earlier one is refused with kExpired (never
//     handled; the node is not marked heard). It no longer holds back
//     Stable() while nothing at all (refused messages included) has come
//     from that node for longer than the horizon: once something has, a
//     successor may be on its way, and stability waits for its report.
//     The successor (a greater incarnation) is a peer like any other.
//     This node's own side: two-way contact with a peer is a Pong to its
//     Ping, or a Welcome or an Ack addressed to it; in contact with a
//     majority means with enough peers within down_after_missed
//     heartbeats. When it last was is kept, by wall clock across restarts
//     (ProtocolOptions::last_contact_wall_ms); while that lies further
//     back than the horizon, peers may have retired this incarnation and
//     its data may lack deletes they collected: Gate() refuses writes
//     ("beyond_horizon"), and it ships no deltas and takes no part in
//     anti-entropy (so a new incarnation elsewhere never bootstraps from
//     it), until a majority answers. A kExpired refusal addressed to this
//     replica means a peer did retire it: Effects::rejoin, and Gate()
//     refuses writes ("rejoining"). When two nodes retired each other (as
//     across a partial partition), only the one with the greater node id
//     rejoins; the other keeps its data. Retirements spread: every Ping
//     names the incarnations its sender retired, and a node that does not
//     hear one of them itself (the peer is down or unknown to it), or has
//     not bootstrapped, retires it too (Effects::expirations, counted in
//     expirations_adopted), so a fresh incarnation never takes back what a
//     retired one sends; a Ping naming this very incarnation means
//     Effects::rejoin.
//   Policy set (DESIGN.md §5). Every Hello and Ping carries this node's
//     policy-set hash (ProtocolOptions::policy_hash; SetPolicyHash replaces
//     it after a reload, and the next Ping, within a heartbeat, tells the
//     peers). A peer's hash is the one in the last Hello or Ping accepted
//     from it (kept while it is down); PeerStatus::policy_mismatch says it
//     differs from this node's, and each change of that is logged when the
//     peer's next Hello or Ping arrives. Hashes are opaque: they are only
//     compared, and a mismatch changes nothing else (replication goes on;
//     the node reports it, in status and metrics).
#ifndef MERIDIAN_GOSSIP_PROTOCOL_H_
#define MERIDIAN_GOSSIP_PROTOCOL_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "crdt/causal_context.h"
#include "crdt/hlc.h"
#include "gossip/messages.h"

namespace meridian::gossip {

// The placement scope of every key no [[placement]] names.
inline const std::string kDefaultScope;

// Applied sequence per (origin replica, scope); the same shape as
// storage::AppliedVector (gossip may use storage, but the state machine
// needs only this map).
using Applied = std::map<std::pair<crdt::ReplicaId, std::string>, uint64_t>;

struct PeerConfig {
  std::string node;    // node id
  std::string region;  // its region's name
};

struct ProtocolOptions {
  std::string cluster;
  crdt::ReplicaId self;
  std::string region;
  // The placement scope this Protocol replicates (gossip/placement.h): its
  // messages name it, and it keeps only that scope's entries of applied
  // vectors; everything else is another scope's Protocol's
  // (gossip/scoped_protocol.h).
  std::string scope = kDefaultScope;
  std::vector<PeerConfig> peers;  // every other node that holds the scope
  uint64_t heartbeat_interval_ms = 500;
  uint32_t suspect_after_missed = 3;
  uint32_t down_after_missed = 10;
  uint64_t max_clock_offset_ms = 500;
  uint64_t resend_timeout_ms = 2000;
  size_t max_deltas_per_message = 512;
  size_t window = 8192;          // unacknowledged sequences in flight per peer
  size_t max_held_back = 16384;  // out-of-order deltas kept per origin
  size_t clock_samples_kept = 8;
  // Anti-entropy (used when the Protocol is given a ViewSource).
  AeOptions anti_entropy;
  uint64_t ae_max_ship_lag_ms = 1000;
  // While every peer is up, scheduled rounds start only this often (0:
  // every anti_entropy.interval_ms): delta shipping carries everything
  // then, and a round under steady writes finds the deltas in flight as
  // differing buckets and sends their whole states again.
  uint64_t ae_all_up_interval_ms = 0;
  // While every peer is up, a due scheduled round waits for a quiet moment
  // (no delta in flight between this node and any peer: each has
  // acknowledged all of this node's log, and this node has applied all of
  // each one's log that its last Ping announced; and none appended or
  // received for a heartbeat interval), for at most this long past due
  // (0: it does not wait). Under steady writes that moment may not come,
  // and the round runs late rather than never.
  uint64_t ae_all_up_max_wait_ms = 0;
  // Log collection (see "Log collection" above).
  uint64_t log_retention_ms = uint64_t{24} * 3600 * 1000;
  uint64_t log_retention_bytes = uint64_t{1} << 30;
  // The lowest seq in the own log at start (0: the log is empty).
  uint64_t log_first_seq = 0;
  // Retention horizon (see "Retention horizon" above; 0: none).
  uint64_t retention_horizon_ms = uint64_t{7} * 24 * 3600 * 1000;
  // Retired incarnations, as stored: node id -> the highest incarnation of
  // it this node retired.
  std::map<std::string, uint64_t> expired;
  // When this node last had two-way contact with a peer, by its wall
  // clock, as stored (0: unknown, as in a new data dir: counts as now).
  uint64_t last_contact_wall_ms = 0;
  // This node's policy-set hash, sent in every Hello and Ping (see "Policy
  // set" above): opaque bytes, cut to kMaxPolicyHashBytes.
  std::string policy_hash;
};

// Time as the driver sees it. mono_ms drives timers (never goes back);
// wall_ms is the node's physical clock (may be offset or jump); hlc is the
// node's current HLC, stamped on outgoing headers.
struct Now {
  uint64_t mono_ms = 0;
  uint64_t wall_ms = 0;
  crdt::Hlc hlc = 0;
};

// Read entries [from_seq, to_seq] of this node's log for `scope` and send
// them to `peer` as kDeltas messages (headers from MakeHeader; split into
// several messages if they are large). If the entries cannot be read, call
// OnShipFailed.
struct ShipRequest {
  std::string peer;
  std::string scope;
  uint64_t from_seq = 0;
  uint64_t to_seq = 0;
};

// Apply `entries` (contiguous, starting at the origin's applied seq + 1)
// durably, each with the advance of the applied vector for (origin,
// scope), then call OnApplied with the last one made durable (or
// OnApplyFailed). Several ApplyRequests for one origin may be outstanding;
// they must be applied in the order given.
struct ApplyRequest {
  crdt::ReplicaId origin;
  std::string scope;
  std::vector<DeltaEntry> entries;
};

// Delete this node's log entries of `scope` with seq <= through_seq. A
// failure is harmless (the entries stay; a later request covers them).
struct TruncateRequest {
  std::string scope;
  uint64_t through_seq = 0;
};

enum class PeerState { kUnknown, kUp, kSuspect, kDown };
const char* PeerStateName(PeerState s);

struct PeerEvent {
  std::string peer;
  PeerState from = PeerState::kUnknown;
  PeerState to = PeerState::kUnknown;
};

struct Effects {
  std::vector<std::pair<std::string, Message>> sends;  // (peer node id, message)
  std::vector<ShipRequest> ships;
  std::vector<ApplyRequest> applies;
  std::vector<PeerEvent> peer_events;
  std::vector<AeReadStates> ae_reads;  // serve, then OnAeStatesSent / OnAeReadFailed
  std::vector<AeRepair> ae_repairs;    // apply in order, then OnAeRepaired / OnAeRepairFailed
  std::vector<TruncateRequest> truncates;
  // Incarnations this node retires now: (node id, highest incarnation
  // retired). Store each durably before the next Stable() call, or call
  // OnExpirationFailed.
  std::vector<crdt::ReplicaId> expirations;
  // A peer retired this incarnation: stop, move the data aside and start
  // again as a new incarnation (set once; the reason is in `logs`).
  bool rejoin = false;
  crdt::Hlc observed_hlc = 0;     // max accepted header HLC (0: none)
  std::vector<std::string> logs;  // one sentence each: refusals, handshakes, state changes

  void Clear();
};

struct PeerStatus {
  std::string node;
  std::string region;
  PeerState state = PeerState::kUnknown;
  bool welcomed = false;              // our outbound session is up
  crdt::ReplicaId replica;            // as last heard (empty node: never)
  int64_t last_heard_ms_ago = -1;     // -1: never since start
  uint64_t acked = 0;                 // our log's seq it holds durably
  uint64_t shipped = 0;               // cursor
  uint64_t unacked_deltas = 0;        // our last seq - acked
  uint64_t unacked_bytes = 0;         // of those, as reported by OnLocalAppend
  uint64_t lag_ms = 0;                // age of its oldest unacknowledged delta
  bool has_clock_sample = false;
  int64_t clock_offset_ms = 0;        // peer's clock minus ours
  uint64_t rtt_ms = 0;                // 0 with a one-way sample only
  uint64_t log_end = 0;               // its own log's end, as its last Ping said
  uint64_t behind = 0;                // of that, not yet applied here
  bool ae_ready = false;              // takes part in anti-entropy rounds we start
  bool pins_log = false;              // the own log is kept for it (see "Log collection")
  bool beyond_log = false;            // it lacks truncated entries: anti-entropy repairs it
  uint64_t expired_through = 0;       // its incarnations up to this one are retired (0: none)
  bool retired = false;               // its current incarnation is retired
  std::string policy_hash;            // as its last Hello or Ping said (empty until one came)
  bool policy_mismatch = false;       // that hash is known and differs from this node's
};

// This node's side of the retention horizon.
struct HorizonStatus {
  uint64_t horizon_ms = 0;            // 0: none
  uint64_t absent_ms = 0;             // since its last two-way contact with a peer
  uint64_t last_contact_wall_ms = 0;  // when that was, by its wall clock
  bool beyond = false;                // absent longer than the horizon: writes refused
  bool rejoining = false;             // a peer retired this incarnation
};

struct WriteGate {
  bool ok = true;
  std::string code;     // "clock_skew", "bootstrapping", "beyond_horizon" or "rejoining"
                        // when refused
  std::string message;  // a sentence for the 503 body
};

struct ProtocolCounters {
  uint64_t refused_clock_offset = 0;  // messages refused for an HLC too far ahead
  uint64_t refused_other = 0;         // wrong cluster/protocol/unknown node/no handshake
  uint64_t refusals_received = 0;
  uint64_t deltas_received = 0;       // entries in kDeltas, duplicates included
  uint64_t deltas_duplicate = 0;
  uint64_t deltas_deferred = 0;       // received before bootstrap, left to resends
  uint64_t deltas_applied = 0;        // confirmed by OnApplied
  uint64_t deltas_shipped = 0;        // sequences asked for in ShipRequests
  uint64_t resends = 0;               // cursor fell back to acked
  uint64_t log_truncated = 0;         // own log entries given to TruncateRequests
  uint64_t beyond_log = 0;            // times a peer was found lacking truncated entries
  uint64_t refused_expired = 0;       // messages refused from retired incarnations
  uint64_t expirations = 0;           // incarnations this node retired
  uint64_t expirations_adopted = 0;   // retirements taken from a peer's Ping
  uint64_t repairs_below_floor = 0;   // repairs refused: the sender's collection floor
                                      // is not applied here yet
};

class Protocol {
 public:
  // `applied`: the node's durable applied vector as loaded from storage
  // (its own origin's entry is its last logged seq). `start`: when the
  // node started. `views`: null runs no anti-entropy; else it outlives the
  // Protocol.
  Protocol(ProtocolOptions options, Applied applied, Now start, ViewSource* views = nullptr);
  ~Protocol();
  Protocol(const Protocol&) = delete;
  Protocol& operator=(const Protocol&) = delete;

  // Timers: heartbeats, Hello retries, state changes, resends, shipping.
  void OnTick(const Now& now, Effects* out);
  // One decoded message from the network (the ROUTER side).
  void OnMessage(const Now& now, const Message& msg, Effects* out);
  // This node's log of `scope` now ends at `last_seq` (durable); `bytes`:
  // the size of the entries added since the previous call (for status).
  void OnLocalAppend(const Now& now, const std::string& scope, uint64_t last_seq, uint64_t bytes,
                     Effects* out);
  // The driver made (origin, scope) durable up to `seq`.
  void OnApplied(const Now& now, const crdt::ReplicaId& origin, const std::string& scope,
                 uint64_t seq, Effects* out);
  // Applying failed (disk full, corrupt delta): everything in flight for
  // that origin is forgotten and comes again by resend.
  void OnApplyFailed(const Now& now, const crdt::ReplicaId& origin, const std::string& scope,
                     Effects* out);
  // A ShipRequest could not be served; the peer's cursor falls back and
  // the range is retried after resend_timeout_ms.
  void OnShipFailed(const Now& now, const std::string& peer, const std::string& scope,
                    Effects* out);

  // Anti-entropy effects done. `sent`: the kStates messages sent for
  // `read` (their states counted).
  void OnAeStatesSent(const AeReadStates& read, uint64_t states_sent);
  void OnAeReadFailed(const Now& now, const AeReadStates& read, Effects* out);
  // `repair` is durable; `applied_after`: the node's applied vector after
  // it (raises this Protocol's, closes gaps, acknowledges origins).
  void OnAeRepaired(const Now& now, const AeRepair& repair, const Applied& applied_after,
                    Effects* out);
  void OnAeRepairFailed(const Now& now, const AeRepair& repair, Effects* out);
  // An Effects::expirations entry could not be stored: it is undone (and
  // tried again at a later heartbeat).
  void OnExpirationFailed(const crdt::ReplicaId& expired);
  // This node's policy set changed (a reload): later Hellos and Pings
  // carry `hash` (cut to kMaxPolicyHashBytes), and every peer's
  // policy_mismatch compares against it from now on. options().policy_hash
  // is the current one.
  void SetPolicyHash(std::string hash);

  // The header for a message this node sends now.
  Header MakeHeader(const Now& now) const;
  // The next mono_ms at which OnTick has work to do.
  uint64_t NextTickMs() const;

  WriteGate Gate() const;
  std::vector<PeerStatus> Peers(const Now& now) const;
  // Regions (this one counted) with a node that holds this node's log of
  // `scope` up to `seq` durably: for w=N.
  size_t RegionsHolding(const std::string& scope, uint64_t seq) const;
  const Applied& applied() const;
  // The lowest seq of the own log not yet truncated (the log end + 1 when
  // everything is).
  uint64_t log_start() const;
  // Causal stability (DESIGN.md §4 "Garbage"; see "Causal stability"
  // above): per origin (this scope), the seq up to which every replica
  // has applied that origin's writes, by reports this node has applied
  // everything of. Empty until every peer's current incarnation has made
  // a usable report.
  Applied Stable() const;
  HorizonStatus Horizon(const Now& now) const;
  const ProtocolCounters& counters() const;
  // Whether anti-entropy runs; its counters (zero when it does not); false
  // only while a node that must bootstrap has not completed a round.
  bool anti_entropy() const;
  AeCounters ae_counters() const;
  bool bootstrapped() const;
  const ProtocolOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meridian::gossip

#endif  // MERIDIAN_GOSSIP_PROTOCOL_H_
