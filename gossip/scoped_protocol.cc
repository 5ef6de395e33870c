#include "gossip/scoped_protocol.h"

#include <algorithm>
#include <utility>

namespace meridian::gossip {
namespace {

// Unknown-scope messages are logged at most once per this window.
constexpr uint64_t kUnknownScopeLogMs = 10000;

void AddCounters(const ProtocolCounters& c, ProtocolCounters* sum) {
  sum->refused_clock_offset += c.refused_clock_offset;
  sum->refused_other += c.refused_other;
  sum->refusals_received += c.refusals_received;
  sum->deltas_received += c.deltas_received;
  sum->deltas_duplicate += c.deltas_duplicate;
  sum->deltas_deferred += c.deltas_deferred;
  sum->deltas_applied += c.deltas_applied;
  sum->deltas_shipped += c.deltas_shipped;
  sum->resends += c.resends;
  sum->log_truncated += c.log_truncated;
  sum->beyond_log += c.beyond_log;
  sum->refused_expired += c.refused_expired;
  sum->expirations += c.expirations;
  sum->expirations_adopted += c.expirations_adopted;
  sum->repairs_below_floor += c.repairs_below_floor;
}

void AddAeCounters(const AeCounters& c, AeCounters* sum) {
  sum->rounds_started += c.rounds_started;
  sum->rounds_completed += c.rounds_completed;
  sum->rounds_in_sync += c.rounds_in_sync;
  sum->rounds_abandoned += c.rounds_abandoned;
  sum->rounds_declined += c.rounds_declined;
  sum->buckets_repaired += c.buckets_repaired;
  sum->states_sent += c.states_sent;
  sum->states_received += c.states_received;
}

}  // namespace

ScopedProtocol::ScopedProtocol(ProtocolOptions options, std::vector<ScopeConfig> placed,
                               Applied applied, Now start, ViewSource* views) {
  options.scope = kDefaultScope;
  for (ScopeConfig& sc : placed) {
    if (sc.scope.empty() || scopes_.count(sc.scope) != 0) continue;
    ProtocolOptions o = options;
    o.scope = sc.scope;
    o.peers = std::move(sc.peers);
    o.log_first_seq = sc.log_first_seq;
    o.retention_horizon_ms = 0;  // the default scope's Protocol keeps the horizon
    scopes_[sc.scope] = std::make_unique<Protocol>(std::move(o), applied, start, views);
  }
  auto d = std::make_unique<Protocol>(std::move(options), std::move(applied), start, views);
  default_ = d.get();
  scopes_[kDefaultScope] = std::move(d);
}

ScopedProtocol::~ScopedProtocol() = default;

Protocol* ScopedProtocol::Find(const std::string& scope) const {
  auto it = scopes_.find(scope);
  return it == scopes_.end() ? nullptr : it->second.get();
}

bool ScopedProtocol::Holds(const std::string& scope) const { return Find(scope) != nullptr; }

void ScopedProtocol::OnTick(const Now& now, Effects* out) {
  for (auto& [scope, p] : scopes_) p->OnTick(now, out);
}

void ScopedProtocol::OnMessage(const Now& now, const Message& msg, Effects* out) {
  Protocol* p = Find(MessageScope(msg));
  if (p != nullptr) return p->OnMessage(now, msg, out);
  ++unknown_scope_;
  if (unknown_scope_ == 1 || now.mono_ms >= unknown_scope_logged_ms_ + kUnknownScopeLogMs) {
    unknown_scope_logged_ms_ = now.mono_ms;
    std::string scope;
    for (unsigned char c : MessageScope(msg).substr(0, 64)) {
      scope.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
    }
    out->logs.push_back("gossip: dropped a " + std::string(TypeName(msg.type)) +
                        " of placement scope '" + scope +
                        "', which this node does not hold (do the topologies agree?); " +
                        std::to_string(unknown_scope_) + " such messages since the start");
  }
}

void ScopedProtocol::OnLocalAppend(const Now& now, const std::string& scope, uint64_t last_seq,
                                   uint64_t bytes, Effects* out) {
  if (Protocol* p = Find(scope)) p->OnLocalAppend(now, scope, last_seq, bytes, out);
}

void ScopedProtocol::OnApplied(const Now& now, const crdt::ReplicaId& origin,
                               const std::string& scope, uint64_t seq, Effects* out) {
  if (Protocol* p = Find(scope)) p->OnApplied(now, origin, scope, seq, out);
}

void ScopedProtocol::OnApplyFailed(const Now& now, const crdt::ReplicaId& origin,
                                   const std::string& scope, Effects* out) {
  if (Protocol* p = Find(scope)) p->OnApplyFailed(now, origin, scope, out);
}

void ScopedProtocol::OnShipFailed(const Now& now, const std::string& peer,
                                  const std::string& scope, Effects* out) {
  if (Protocol* p = Find(scope)) p->OnShipFailed(now, peer, scope, out);
}

void ScopedProtocol::OnAeStatesSent(const AeReadStates& read, uint64_t states_sent) {
  if (Protocol* p = Find(read.scope)) p->OnAeStatesSent(read, states_sent);
}

void ScopedProtocol::OnAeReadFailed(const Now& now, const AeReadStates& read, Effects* out) {
  if (Protocol* p = Find(read.scope)) p->OnAeReadFailed(now, read, out);
}

void ScopedProtocol::OnAeRepaired(const Now& now, const AeRepair& repair,
                                  const Applied& applied_after, Effects* out) {
  if (Protocol* p = Find(repair.scope)) p->OnAeRepaired(now, repair, applied_after, out);
}

void ScopedProtocol::OnAeRepairFailed(const Now& now, const AeRepair& repair, Effects* out) {
  if (Protocol* p = Find(repair.scope)) p->OnAeRepairFailed(now, repair, out);
}

void ScopedProtocol::OnExpirationFailed(const crdt::ReplicaId& expired) {
  for (auto& [scope, p] : scopes_) p->OnExpirationFailed(expired);
}

void ScopedProtocol::SetPolicyHash(std::string hash) {
  for (auto& [scope, p] : scopes_) p->SetPolicyHash(hash);
}

Header ScopedProtocol::MakeHeader(const Now& now) const { return default_->MakeHeader(now); }

uint64_t ScopedProtocol::NextTickMs() const {
  uint64_t next = default_->NextTickMs();
  for (const auto& [scope, p] : scopes_) next = std::min(next, p->NextTickMs());
  return next;
}

WriteGate ScopedProtocol::Gate() const {
  WriteGate g = default_->Gate();
  if (!g.ok) return g;
  for (const auto& [scope, p] : scopes_) {
    WriteGate s = p->Gate();
    if (s.ok) continue;
    s.message += " (placement scope '" + scope + "')";
    return s;
  }
  return g;
}

std::vector<PeerStatus> ScopedProtocol::Peers(const Now& now) const {
  return default_->Peers(now);
}

std::vector<ScopeStatus> ScopedProtocol::Scopes(const Now& now) const {
  std::vector<ScopeStatus> out;
  for (const auto& [scope, p] : scopes_) {
    ScopeStatus s;
    s.scope = scope;
    auto it = p->applied().find({p->options().self, scope});
    s.log_end = it == p->applied().end() ? 0 : it->second;
    s.bootstrapped = p->bootstrapped();
    s.peers = p->Peers(now);
    out.push_back(std::move(s));
  }
  return out;
}

size_t ScopedProtocol::RegionsHolding(const std::string& scope, uint64_t seq) const {
  Protocol* p = Find(scope);
  return p == nullptr ? 0 : p->RegionsHolding(scope, seq);
}

Applied ScopedProtocol::applied() const {
  Applied out;
  for (const auto& [scope, p] : scopes_) out.insert(p->applied().begin(), p->applied().end());
  return out;
}

uint64_t ScopedProtocol::log_start() const { return default_->log_start(); }

Applied ScopedProtocol::Stable() const {
  Applied out;
  for (const auto& [scope, p] : scopes_) {
    Applied s = p->Stable();
    out.insert(s.begin(), s.end());
  }
  return out;
}

HorizonStatus ScopedProtocol::Horizon(const Now& now) const { return default_->Horizon(now); }

ProtocolCounters ScopedProtocol::counters() const {
  ProtocolCounters sum;
  for (const auto& [scope, p] : scopes_) AddCounters(p->counters(), &sum);
  return sum;
}

AeCounters ScopedProtocol::ae_counters() const {
  AeCounters sum;
  for (const auto& [scope, p] : scopes_) AddAeCounters(p->ae_counters(), &sum);
  return sum;
}

bool ScopedProtocol::anti_entropy() const { return default_->anti_entropy(); }

bool ScopedProtocol::bootstrapped() const {
  for (const auto& [scope, p] : scopes_) {
    if (!p->bootstrapped()) return false;
  }
  return true;
}

const ProtocolOptions& ScopedProtocol::options() const { return default_->options(); }

}  // namespace meridian::gossip
