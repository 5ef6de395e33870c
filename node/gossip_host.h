// The node's side of gossip (DESIGN.md §4): the gossip::Host that the
// ZeroMQ transport drives, over this node's Applier, and the wiring that
// tells the transport of local appends and the waiters (w=N, session-token
// reads) of progress.
//
// A node whose topology lists no other node runs no gossip: Start() binds
// nothing and transport() stays null (such a node is always writable).
//
// Thread-safety: Start and Stop from one thread; the Host methods are
// called on the gossip thread; transport() may be read from any thread
// after Start.
#ifndef MERIDIAN_NODE_GOSSIP_HOST_H_
#define MERIDIAN_NODE_GOSSIP_HOST_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "crdt/hlc.h"
#include "gossip/transport.h"
#include "node/applier.h"
#include "node/topology.h"
#include "node/waiters.h"
#include "storage/leveldb_store.h"

namespace meridian::node {

// The gossip protocol's options for node `me` of `topo`.
gossip::ProtocolOptions ProtocolOptionsFor(const Topology& topo, const NodeConfig& me,
                                           const crdt::ReplicaId& self);
// The placed scopes `me` holds (its region is among a [[placement]]'s),
// each with the other nodes of that placement's regions.
std::vector<gossip::ScopeConfig> PlacedScopesFor(const Topology& topo, const NodeConfig& me);

class GossipHost : public gossip::Host {
 public:
  // REQUIRES: everything given outlives the GossipHost. `log` writes one
  // line to the node's log (any thread).
  GossipHost(const Topology& topo, const NodeConfig& me, storage::Store* store, Applier* applier,
             crdt::PhysicalClock* wall, Waiters* waiters, std::function<void(const std::string&)> log);
  ~GossipHost() override;  // Stop()

  // A fresh incarnation (storage NodeMeta::bootstrap_pending): writes are
  // refused (503 bootstrapping) until an anti-entropy round completes,
  // which clears the stored mark. Call before Start.
  void set_must_bootstrap(bool must) { must_bootstrap_ = must; }
  // As stored (storage NodeMeta::expired, last_contact_ms). Before Start.
  void set_horizon_state(std::map<std::string, uint64_t> expired, uint64_t last_contact_ms) {
    expired_ = std::move(expired);
    last_contact_ms_ = last_contact_ms;
  }
  // Called once (on the gossip thread, after the retired mark is stored)
  // when a peer retired this incarnation: the node must restart as a new
  // one. Before Start.
  void set_on_rejoin(std::function<void()> f) { on_rejoin_ = std::move(f); }
  // This node's CURVE secret key (Z85; LoadSecretKey) when the topology
  // lists keys; Start refuses a topology with keys without it. Before Start.
  void set_secret_key(std::string z85) { secret_key_ = std::move(z85); }

  // Call before the Applier starts (it sets the applier's append and
  // commit listeners). Creates and starts the transport when there are
  // peers; a gossip endpoint that cannot be bound fails here.
  Status Start();
  // Stops the transport (call before stopping the Applier); idempotent.
  void Stop();

  // Null when the node has no peers.
  gossip::Transport* transport() { return transport_.get(); }

  // gossip::Host
  void ApplyRemote(const crdt::ReplicaId& origin, const std::string& scope,
                   std::vector<gossip::DeltaEntry> entries,
                   std::function<void(Status, uint64_t last_durable)> done) override;
  void ObserveHlc(crdt::Hlc hlc) override;
  crdt::Hlc CurrentHlc() override;
  void ReplicationProgress() override;
  void Log(const std::string& line) override;
  void ReadView(const std::string& scope, gossip::View* out) override;
  void Repair(const gossip::AeRepair& repair,
              std::function<void(Status, gossip::Applied applied_after)> done) override;
  void Bootstrapped() override;
  void Stable(const gossip::Applied& stable) override;
  void Rejoin() override;

 private:
  const Topology& topo_;
  const NodeConfig& me_;
  storage::Store* store_;
  Applier* applier_;
  crdt::PhysicalClock* wall_;
  Waiters* waiters_;
  std::function<void(const std::string&)> log_;
  bool must_bootstrap_ = false;
  std::map<std::string, uint64_t> expired_;
  uint64_t last_contact_ms_ = 0;
  std::function<void()> on_rejoin_;
  std::string secret_key_;
  // A collection is queued at the applier (one at a time).
  std::shared_ptr<std::atomic<bool>> collecting_ = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<std::atomic<bool>> collect_failing_ = std::make_shared<std::atomic<bool>>(false);
  std::unique_ptr<gossip::Transport> transport_;
};

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_GOSSIP_HOST_H_
