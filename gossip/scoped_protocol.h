// One replication Protocol per placement scope a node holds (DESIGN.md §4
// "Placement"), behind the one interface its drivers (the transport, the
// simulator) call. Pure like the Protocol: no sockets, clocks or threads.
//
// A [[placement]] prefix's keys replicate only among the nodes of its
// regions: this node runs a Protocol for the default scope (every other
// key, every other node) and one for each placed scope its region is in,
// whose peers are the other nodes of that scope's regions. Each keeps its
// own sessions, sequences, acknowledgements, applied vector entries,
// anti-entropy tree and stability, so a node outside a scope is never sent
// a message of it and nobody waits on a gap it will never fill. Every
// message names its scope (gossip/messages.h); one whose scope this node
// does not hold is dropped and counted (unknown_scope), never answered.
//
// What is the node's, not a scope's:
//   - the write gate: a write is refused while any scope's Protocol
//     refuses (clock skew seen by any of them, a scope not yet
//     bootstrapped, beyond the horizon, rejoining);
//   - the retention horizon: only the default scope's Protocol (which
//     hears every node) retires peers and fences this node; placed scopes
//     run without a horizon (a peer away keeps its old report, which holds
//     collection in the scope back, so it never misses a collected delete);
//   - rejoining: any Protocol's Effects::rejoin makes the node rejoin;
//   - peers' states, clocks and policy hashes as status shows them: the
//     default scope's.
#ifndef MERIDIAN_GOSSIP_SCOPED_PROTOCOL_H_
#define MERIDIAN_GOSSIP_SCOPED_PROTOCOL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gossip/protocol.h"

namespace meridian::gossip {

// A placed scope this node holds.
struct ScopeConfig {
  std::string scope;              // the [[placement]] prefix (never "")
  std::vector<PeerConfig> peers;  // the other nodes of its regions
  uint64_t log_first_seq = 0;     // as ProtocolOptions::log_first_seq, for its log
};

// One scope's replication, for status.
struct ScopeStatus {
  std::string scope;
  uint64_t log_end = 0;  // this node's last logged seq in it
  bool bootstrapped = true;
  std::vector<PeerStatus> peers;
};

class ScopedProtocol {
 public:
  // `options` is the default scope's (its peers: every other node; its
  // scope must be ""); each entry of `placed` gets a Protocol with the
  // same options but its scope, peers and log start, and no retention
  // horizon. `applied`, `start`, `views`: as for Protocol (each Protocol
  // keeps its scope's entries).
  ScopedProtocol(ProtocolOptions options, std::vector<ScopeConfig> placed, Applied applied,
                 Now start, ViewSource* views = nullptr);
  ~ScopedProtocol();
  ScopedProtocol(const ScopedProtocol&) = delete;
  ScopedProtocol& operator=(const ScopedProtocol&) = delete;

  // As Protocol's, each given to the scope it names (calls for a scope
  // this node does not hold are ignored); OnTick, OnExpirationFailed and
  // SetPolicyHash go to every scope.
  void OnTick(const Now& now, Effects* out);
  void OnMessage(const Now& now, const Message& msg, Effects* out);
  void OnLocalAppend(const Now& now, const std::string& scope, uint64_t last_seq, uint64_t bytes,
                     Effects* out);
  void OnApplied(const Now& now, const crdt::ReplicaId& origin, const std::string& scope,
                 uint64_t seq, Effects* out);
  void OnApplyFailed(const Now& now, const crdt::ReplicaId& origin, const std::string& scope,
                     Effects* out);
  void OnShipFailed(const Now& now, const std::string& peer, const std::string& scope,
                    Effects* out);
  void OnAeStatesSent(const AeReadStates& read, uint64_t states_sent);
  void OnAeReadFailed(const Now& now, const AeReadStates& read, Effects* out);
  void OnAeRepaired(const Now& now, const AeRepair& repair, const Applied& applied_after,
                    Effects* out);
  void OnAeRepairFailed(const Now& now, const AeRepair& repair, Effects* out);
  void OnExpirationFailed(const crdt::ReplicaId& expired);
  void SetPolicyHash(std::string hash);

  // Headers carry no scope: any Protocol's is the node's.
  Header MakeHeader(const Now& now) const;
  // The earliest of every scope's.
  uint64_t NextTickMs() const;

  // The first refusal of any scope (the default scope's first), else ok.
  WriteGate Gate() const;
  // The default scope's view of every peer.
  std::vector<PeerStatus> Peers(const Now& now) const;
  // Every scope this node holds, the default one first.
  std::vector<ScopeStatus> Scopes(const Now& now) const;
  // Of the scope's Protocol (0 for a scope this node does not hold).
  size_t RegionsHolding(const std::string& scope, uint64_t seq) const;
  bool Holds(const std::string& scope) const;
  // Every scope's applied entries together.
  Applied applied() const;
  // The default scope's log.
  uint64_t log_start() const;
  // Every scope's Stable() together (each is empty until its peers have
  // all reported, so a scope whose peers have not holds nothing).
  Applied Stable() const;
  HorizonStatus Horizon(const Now& now) const;  // the default scope's
  // Summed over the scopes.
  ProtocolCounters counters() const;
  AeCounters ae_counters() const;
  bool anti_entropy() const;
  // Every scope has bootstrapped.
  bool bootstrapped() const;
  const ProtocolOptions& options() const;  // the default scope's
  // Messages dropped because this node holds no scope of theirs.
  uint64_t unknown_scope() const { return unknown_scope_; }

 private:
  Protocol* Find(const std::string& scope) const;

  std::map<std::string, std::unique_ptr<Protocol>> scopes_;  // "" first
  Protocol* default_ = nullptr;
  uint64_t unknown_scope_ = 0;
  uint64_t unknown_scope_logged_ms_ = 0;
};

}  // namespace meridian::gossip

#endif  // MERIDIAN_GOSSIP_SCOPED_PROTOCOL_H_
