// The ZeroMQ transport that drives the gossip Protocol (DESIGN.md §4).
//
// One thread owns the Protocol and every socket: a ROUTER bound on this
// node's gossip endpoint (receives only) and one DEALER connected to each
// peer's endpoint (sends only); see gossip/messages.h for the direction
// rule. The thread blocks in zmq::poll with a timeout (the Protocol's next
// tick, at most 100 ms) and never spins; other threads reach it through a
// mutex-protected inbox and an inproc PAIR socket that wakes the poll. No
// call of this class blocks an HTTP thread: everything public is a quick
// hand-off or a read of a snapshot the gossip thread publishes after each
// step.
//
// Storage effects go through the Host (implemented by node/, since gossip
// never includes node): log ranges are read from the Store directly (a
// LevelDB read on the gossip thread), remote deltas are handed to the
// Host, which applies them on the node's applier and reports back.
//
// Anti-entropy (gossip/anti_entropy.h, run by the Protocol unless
// TransportOptions::anti_entropy is off): Views come from the Host; the
// states of differing buckets are read from the Store on the gossip thread
// as of the View's snapshot (storage::ScanBucket, then each key's state) and sent as
// numbered kStates messages, each below max_frame_bytes; states received
// go to Host::Repair, which joins them on the applier and reports the new
// applied vector back.
//
// Log collection: the Protocol's TruncateRequests are carried out by a
// second thread of the Transport, at most 8192 entries per store Write
// (a Write waits behind the applier's group commit; the gossip thread
// only hands over the goal, so shipping never waits for it). Failures are
// retried every second and logged from the gossip thread.
//
// Retention horizon: the Protocol's expirations are stored (node_meta
// "expired") as soon as they come; the last two-way contact is stored
// once per step (node_meta "last_contact"); a rejoin stores the retired
// mark, then calls Host::Rejoin.
//
// Sockets: ZMQ_MAXMSGSIZE = kMaxFrameBytes, ZMQ_LINGER = 0, ZMQ_SNDHWM and
// ZMQ_RCVHWM bounded, ZMQ_IMMEDIATE on the DEALERs (nothing queues for a
// peer that is not connected; the Protocol resends instead), reconnect
// interval 100 ms. A frame that does not decode is dropped and counted.
//
// Security (DESIGN.md §4; TransportOptions::curve). Without keys the
// sockets are plaintext (ZeroMQ's NULL mechanism) and anyone who reaches
// the gossip port can speak for any node: development only. With keys
// (CurveZMQ): the ROUTER is a CURVE server with this node's secret key and
// ZAP domain "meridian"; each DEALER is a CURVE client that knows its
// peer's listed public key, so it only talks to that peer. A ZAP handler
// (ZeroMQ RFC 27: a REP socket on inproc://zeromq.zap.01 in this
// Transport's own context, served by the gossip thread; bound before the
// ROUTER, since libzmq lets every CURVE client in when no handler is
// bound) accepts a connection only with mechanism CURVE and a listed
// client key, and names the key's node as the connection's User-Id.
// Plaintext clients fail the CURVE handshake and never reach the handler.
// Every message received on the ROUTER must then come from the node its
// header names (Header::from.node == User-Id): the sender of a Hello, the
// origin of Deltas (a node ships only its own log) and of every other
// message is bound to the key that sent it. A message that claims another
// node is dropped before the Protocol sees it and counted
// (TransportSnapshot::forged_frames); a refused connection is counted
// (zap_refused). Both are logged at most once per 10 s, with a count, so
// a flood cannot fill the disk. Anti-entropy states may carry any origin's
// data: they are joins of what the (authenticated) sender holds.
#ifndef MERIDIAN_GOSSIP_TRANSPORT_H_
#define MERIDIAN_GOSSIP_TRANSPORT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "crdt/hlc.h"
#include "crdt/status.h"
#include "gossip/protocol.h"
#include "gossip/scoped_protocol.h"
#include "storage/leveldb_store.h"

namespace meridian::gossip {

// What the transport needs from the node. Called on the gossip thread.
class Host {
 public:
  virtual ~Host() = default;
  // Applies entries (contiguous, in order) of `origin` durably, each with
  // the advance of the applied vector, without blocking: `done` is called
  // later from any thread with ok and the last seq made durable, or with an
  // error (nothing of the failed part applied).
  virtual void ApplyRemote(const crdt::ReplicaId& origin, const std::string& scope,
                           std::vector<DeltaEntry> entries,
                           std::function<void(Status, uint64_t last_durable)> done) = 0;
  // Absorbs an accepted peer HLC into the node's clock (thread-safe, quick).
  virtual void ObserveHlc(crdt::Hlc hlc) = 0;
  // The node's current HLC, stamped on outgoing headers.
  virtual crdt::Hlc CurrentHlc() = 0;
  // Called (on the gossip thread) after every step that changed peer
  // acknowledgements or states, so that w=N waiters can look again.
  virtual void ReplicationProgress() = 0;
  // One line for the node's log.
  virtual void Log(const std::string& line) = 0;
  // Anti-entropy's View of `scope` (thread-safe, quick): the digest bucket
  // sums, the applied vector and a store snapshot, all of one commit.
  virtual void ReadView(const std::string& scope, View* out) = 0;
  // Joins the repair's states into the store and raises the applied vector
  // to cover its advance, in one durable batch, without blocking: `done`
  // is called later from any thread with ok and the node's applied vector
  // after it, or with an error (nothing of it applied).
  virtual void Repair(const AeRepair& repair,
                      std::function<void(Status, Applied applied_after)> done) = 0;
  // Causal stability (Protocol::Stable()), once per heartbeat interval:
  // what may be collected now (Host side: node/committer.h "Collection").
  // Called on the gossip thread; must not block.
  virtual void Stable(const Applied& stable) { (void)stable; }
  // A node that had to bootstrap (ProtocolOptions::anti_entropy.
  // must_bootstrap) completed its first anti-entropy round; called once,
  // on the gossip thread.
  virtual void Bootstrapped() {}
  // A peer retired this incarnation (protocol.h "Retention horizon"; the
  // retired mark is stored first): the node must stop, move its data aside
  // and start again as a new incarnation. Called once, on the gossip
  // thread; must not block.
  virtual void Rejoin() {}
};

// CurveZMQ keys (gossip/curve_keys.h; "Security" above). All Z85.
struct CurveOptions {
  std::string public_key;  // this node's
  std::string secret_key;  // this node's; empty: plaintext (no keys at all)
  // Node id -> its listed public key, for every node of the topology (this
  // one may be among them, but its own key is not admitted as a client);
  // every peer must have one.
  std::map<std::string, std::string> node_keys;
  bool enabled() const { return !secret_key.empty(); }
};

struct TransportOptions {
  std::string bind;                            // "tcp://HOST:PORT"
  std::map<std::string, std::string> peers;    // node id -> "tcp://HOST:PORT"
  CurveOptions curve;                          // default: plaintext
  ProtocolOptions protocol;                    // its policy_hash: at start (then SetPolicyHash)
  // The placed scopes this node holds, each with the other nodes of its
  // regions (gossip/scoped_protocol.h; log_first_seq is read from the store).
  std::vector<ScopeConfig> placed;
  size_t max_frame_bytes = size_t{4} << 20;    // Deltas and AE states are split below this
  bool anti_entropy = true;  // run Merkle anti-entropy rounds
};

// Test-only fault injection (meridiand --enable-fault-injection).
struct Faults {
  std::set<std::string> drop;                  // peers cut in both directions
  std::map<std::string, uint64_t> delay_ms;    // peers whose messages (both ways) wait this long
};

// A copy of the gossip state for /v1/status and /metrics.
struct TransportSnapshot {
  WriteGate gate;
  std::vector<PeerStatus> peers;
  // Every placement scope this node holds (the default one first), with
  // its peers' replication state.
  std::vector<ScopeStatus> scopes;
  uint64_t unknown_scope = 0;  // messages of a scope this node does not hold, dropped
  ProtocolCounters counters;
  bool anti_entropy = false;
  bool bootstrapped = true;
  AeCounters ae;
  uint64_t frames_in = 0, frames_out = 0, bad_frames = 0, dropped_by_faults = 0;
  uint64_t bytes_in = 0, bytes_out = 0;  // gossip payload bytes received and sent
  // Security ("Security" above): whether the sockets use CurveZMQ,
  // connections the ZAP handler refused (an unlisted key, another
  // mechanism), and frames dropped for naming a node other than the one
  // whose key sent them.
  bool curve = false;
  uint64_t zap_refused = 0, forged_frames = 0;
  uint64_t log_start = 0;  // the lowest own log seq not yet truncated
  HorizonStatus horizon;
  // This node's policy-set hash as the gossip thread last took it (what
  // the peers' policy_mismatch compare with), and how many peers have
  // policy_mismatch set.
  std::string policy_hash;
  uint64_t policy_mismatches = 0;
};

class Transport {
 public:
  // REQUIRES: store, host and wall outlive the Transport. `applied`: the
  // node's durable applied vector at start.
  Transport(TransportOptions options, storage::Store* store, Host* host,
            crdt::PhysicalClock* wall, Applied applied);
  ~Transport();  // Stop()

  // Binds the ROUTER (a taken port fails here with a sentence naming the
  // endpoint), connects the DEALERs and starts the thread. With curve
  // keys, a key that is not 40 Z85 characters or a peer without a key
  // fails here (InvalidArgument), as does a ZeroMQ without CURVE.
  Status Start();
  // Stops the thread and closes every socket; idempotent.
  void Stop();

  // Thread-safe hand-offs.
  // The applier committed this node's log of `scope` up to `last_seq`.
  void NotifyLocalAppend(const std::string& scope, uint64_t last_seq, uint64_t bytes);
  // Replaces the fields given (see node's POST /v1/admin/faults).
  void SetFaults(const Faults& faults);
  Faults faults() const;
  // This node's policy set changed (a reload): the gossip thread hands
  // `hash` to Protocol::SetPolicyHash at its next turn (a call before
  // Start(), at its first), so the next Ping carries it. The latest call
  // wins; Snapshot().policy_hash shows it once taken.
  void SetPolicyHash(std::string hash);

  // Thread-safe reads of what the gossip thread last published.
  WriteGate Gate() const;
  TransportSnapshot Snapshot() const;
  size_t RegionsHolding(const std::string& scope, uint64_t seq) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meridian::gossip

#endif  // MERIDIAN_GOSSIP_TRANSPORT_H_
