#include "node/gossip_host.h"

#include <algorithm>

#include "storage/node_meta.h"

namespace meridian::node {

gossip::ProtocolOptions ProtocolOptionsFor(const Topology& topo, const NodeConfig& me,
                                           const crdt::ReplicaId& self) {
  gossip::ProtocolOptions o;
  o.cluster = topo.cluster_name;
  o.self = self;
  o.region = me.region;
  for (const NodeConfig* n : topo.AllNodes()) {
    if (n->id != me.id) o.peers.push_back(gossip::PeerConfig{n->id, n->region});
  }
  o.heartbeat_interval_ms = topo.heartbeat_interval_ms;
  o.max_clock_offset_ms = topo.max_clock_offset_ms;
  // Four heartbeats without an acknowledgement (at least 500 ms) before a
  // range is shipped again: 2 s at the default 500 ms heartbeat.
  o.resend_timeout_ms = std::max<uint64_t>(500, 4 * topo.heartbeat_interval_ms);
  o.anti_entropy.interval_ms = topo.anti_entropy_interval_ms;
  // A round that makes no progress for ten intervals (at least 10 s) is
  // given up; the next one starts over.
  o.anti_entropy.round_timeout_ms = std::max<uint64_t>(10000, 10 * topo.anti_entropy_interval_ms);
  o.ae_max_ship_lag_ms = topo.anti_entropy_interval_ms;
  o.ae_all_up_interval_ms = 10 * topo.anti_entropy_interval_ms;
  o.ae_all_up_max_wait_ms = 5 * o.ae_all_up_interval_ms;
  o.log_retention_ms = topo.log_retention_ms;
  o.log_retention_bytes = topo.log_retention_bytes;
  o.retention_horizon_ms = topo.retention_horizon_ms;
  o.policy_hash = topo.policies.Hash();
  return o;
}

std::vector<gossip::ScopeConfig> PlacedScopesFor(const Topology& topo, const NodeConfig& me) {
  std::vector<gossip::ScopeConfig> out;
  for (const gossip::PlacementSpec& spec : topo.placement.specs()) {
    if (!topo.placement.HoldsScope(spec.prefix, me.region)) continue;
    gossip::ScopeConfig sc;
    sc.scope = spec.prefix;
    for (const NodeConfig* n : topo.AllNodes()) {
      if (n->id != me.id && topo.placement.HoldsScope(spec.prefix, n->region)) {
        sc.peers.push_back(gossip::PeerConfig{n->id, n->region});
      }
    }
    out.push_back(std::move(sc));
  }
  return out;
}

GossipHost::GossipHost(const Topology& topo, const NodeConfig& me, storage::Store* store,
                       Applier* applier, crdt::PhysicalClock* wall, Waiters* waiters,
                       std::function<void(const std::string&)> log)
    : topo_(topo),
      me_(me),
      store_(store),
      applier_(applier),
      wall_(wall),
      waiters_(waiters),
      log_(std::move(log)) {}

GossipHost::~GossipHost() { Stop(); }

Status GossipHost::Start() {
  // Session-token reads wait on every commit, local or remote.
  applier_->SetCommitListener([this] { waiters_->Notify(); });
  gossip::TransportOptions options;
  options.bind = me_.gossip;
  for (const NodeConfig* n : topo_.AllNodes()) {
    if (n->id != me_.id) options.peers[n->id] = n->gossip;
  }
  if (options.peers.empty()) return Status::OK();
  if (topo_.curve()) {
    if (secret_key_.empty()) {
      return Status::FailedPrecondition("the topology lists CURVE keys but node " + me_.id +
                                        " was given no secret key");
    }
    options.curve.public_key = me_.public_key;
    options.curve.secret_key = secret_key_;
    for (const NodeConfig* n : topo_.AllNodes()) options.curve.node_keys[n->id] = n->public_key;
  }
  options.protocol = ProtocolOptionsFor(topo_, me_, applier_->replica());
  options.protocol.anti_entropy.must_bootstrap = must_bootstrap_;
  options.protocol.expired = expired_;
  options.protocol.last_contact_wall_ms = last_contact_ms_;
  options.placed = PlacedScopesFor(topo_, me_);
  transport_ = std::make_unique<gossip::Transport>(std::move(options), store_, this, wall_,
                                                   applier_->Applied());
  gossip::Transport* t = transport_.get();
  applier_->SetAppendListener([t](const std::string& scope, uint64_t last_seq, uint64_t bytes) {
    t->NotifyLocalAppend(scope, last_seq, bytes);
  });
  Status st = transport_->Start();
  if (!st.ok()) {
    applier_->SetAppendListener(nullptr);
    transport_.reset();
  }
  return st;
}

void GossipHost::Stop() {
  if (transport_) transport_->Stop();
}

void GossipHost::ApplyRemote(const crdt::ReplicaId& origin, const std::string& scope,
                             std::vector<gossip::DeltaEntry> entries,
                             std::function<void(Status, uint64_t last_durable)> done) {
  RemoteApply apply;
  apply.origin = origin;
  apply.scope = scope;
  apply.entries = std::move(entries);
  applier_->SubmitRemote(std::move(apply), [done = std::move(done)](RemoteResult r) {
    done(std::move(r.status), r.last_durable);
  });
}

void GossipHost::ObserveHlc(crdt::Hlc hlc) { applier_->ObserveHlc(hlc); }

crdt::Hlc GossipHost::CurrentHlc() { return applier_->CurrentHlc(); }

void GossipHost::ReplicationProgress() { waiters_->Notify(); }

void GossipHost::Log(const std::string& line) { log_(line); }

void GossipHost::Bootstrapped() {
  storage::WriteBatch batch;
  storage::PutBootstrapPending(false, &batch);
  Status st = store_->Write(&batch);
  // Should the mark stay (a failed write), the next start bootstraps again:
  // harmless.
  log_("bootstrapped: completed an anti-entropy round with a peer; taking writes" +
       (st.ok() ? std::string() : " (could not clear the stored mark: " + st.ToString() + ")"));
}

void GossipHost::Rejoin() {
  if (on_rejoin_) on_rejoin_();
}

void GossipHost::Stable(const gossip::Applied& stable) {
  if (collecting_->exchange(true)) return;  // the last one is still queued
  // At most this many candidates per collection: one batch, a short pause
  // between groups.
  constexpr size_t kCollectLimit = 4096;
  applier_->SubmitCollect(
      stable, kCollectLimit, [flag = collecting_, failing = collect_failing_, log = log_](
                                 CollectResult result) {
        // Logged when it starts failing and when it recovers, not at every try.
        const bool failed = !result.status.ok();
        if (failing->exchange(failed) != failed) {
          log(failed ? "collection failed (tried again every heartbeat): " +
                           result.status.ToString()
                     : std::string("collection works again"));
        }
        flag->store(false);
      });
}

void GossipHost::ReadView(const std::string& scope, gossip::View* out) {
  applier_->View(scope, &out->sums, &out->applied, &out->floor, &out->snapshot);
}

void GossipHost::Repair(const gossip::AeRepair& repair,
                        std::function<void(Status, gossip::Applied applied_after)> done) {
  StateRepair r;
  r.scope = repair.scope;
  r.states.reserve(repair.states.size());
  for (const gossip::AeState& s : repair.states) r.states.emplace_back(s.key, s.envelope);
  r.buckets = repair.buckets;
  r.has_advance = repair.has_advance;
  r.advance = repair.advance;
  r.has_view = true;
  r.view = repair.view;
  r.peer_floor = repair.peer_floor;
  applier_->SubmitRepair(std::move(r), [done = std::move(done), log = log_,
                                         peer = repair.peer](RepairResult result) {
    if (result.dropped > 0) {
      log("anti-entropy: dropped " + std::to_string(result.dropped) +
          " restored register(s) that " + peer +
          " had applied and no longer holds (deleted and collected after the backup)");
    }
    done(std::move(result.status), std::move(result.applied));
  });
}

}  // namespace meridian::node
