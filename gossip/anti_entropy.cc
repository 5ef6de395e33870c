// Merkle anti-entropy rounds (gossip/anti_entropy.h has the protocol).
//
// Each side of a round is a Round kept under (peer, this node's side): at
// most one open round per peer per direction. What a side waits for:
//   initiator  kHashes:   the responder's level-2 hashes (or its AeDone)
//              kTransfer: the responder's AeWant (answered with our states)
//                         and all of its AeStates, applied durably
//   responder  kHashes:   the initiator's level-3 hashes (or its AeDone)
//              kTransfer: all of the initiator's AeStates, applied durably
//   either     kSyncAdvance: the Views were equal; only the advance of the
//                         applied vector to the peer's View is outstanding
//
// AeStates messages are numbered (AeBody::part, from 0; the last one is
// flagged), so a side knows when it holds all of them whatever order they
// arrive in and whichever were duplicated. Their states are kept until the
// set is complete, then go out as ONE repair with the advance of the
// applied vector (or none, when this side's View already covers the
// peer's), so that no state of the round is ever stored ahead of the
// applied vector that accounts for it.
//
// Equal Views (the responder finds every level-1 hash equal, or no bucket
// differs): AeDone{in_sync} carries the sender's View applied vector and
// AeBegin the initiator's, and each side advances to the other's. That is
// sound for the same reason as after a repair (every bucket was equal to
// the sender's View when compared), and without it a replica that got its
// states by a repair whose last message was lost would never learn that it
// holds what the peer had applied: every later round would be in sync.
//
// Round ids: max(previous id + 1, mono_ms), so they grow across a restart
// of a node whose monotonic clock does not restart (CLOCK_MONOTONIC counts
// from boot). A responder ignores an AeBegin whose id is not above the
// highest it has seen from that peer (duplicates, stale rounds) and forgets
// that id when the peer goes down.
#include "gossip/anti_entropy.h"

#include <algorithm>
#include <set>
#include <utility>

namespace meridian::gossip {
namespace {

const char* SideName(bool initiator) { return initiator ? "initiator" : "responder"; }

// Whether `have` holds every entry of `want` (entry by entry, at least).
bool Covers(const AeApplied& have, const AeApplied& want) {
  for (const auto& [id, seq] : want) {
    if (seq == 0) continue;
    auto it = have.find(id);
    if (it == have.end() || it->second < seq) return false;
  }
  return true;
}

// The nodes of `level` under each of `parents` (nodes of level - 1, in
// ascending order), with their hashes over `sums`.
std::vector<AeNode> Children(const storage::BucketSums& sums, int level,
                             const std::vector<uint32_t>& parents) {
  std::vector<AeNode> out;
  out.reserve(parents.size() * kFanout);
  for (uint32_t p : parents) {
    for (uint32_t c = p * kFanout; c < (p + 1) * kFanout; ++c) {
      out.push_back(AeNode{c, TreeHash(sums, level, c)});
    }
  }
  return out;
}

// Whether `nodes` are whole families: for each parent, all kFanout
// children in order, parents strictly ascending, at least one. Fills
// `parents`.
bool WholeFamilies(const std::vector<AeNode>& nodes, int level, std::vector<uint32_t>* parents) {
  parents->clear();
  if (nodes.empty() || nodes.size() % kFanout != 0) return false;
  const uint32_t on_level = NodesOnLevel(level);
  for (size_t i = 0; i < nodes.size(); i += kFanout) {
    const uint32_t parent = nodes[i].index / kFanout;
    if (!parents->empty() && parent <= parents->back()) return false;
    for (uint32_t k = 0; k < kFanout; ++k) {
      const uint32_t index = nodes[i + k].index;
      if (index >= on_level || index != parent * kFanout + k) return false;
    }
    parents->push_back(parent);
  }
  return true;
}

}  // namespace

uint32_t NodesOnLevel(int level) {
  if (level < 0 || level > kLeafLevel) return 0;
  uint32_t n = 1;
  for (int i = 0; i < level; ++i) n *= kFanout;
  return n;
}

storage::Digest TreeHash(const storage::BucketSums& sums, int level, uint32_t index) {
  const uint32_t nodes = NodesOnLevel(level);
  storage::Digest d;
  if (nodes == 0 || index >= nodes) return d;
  const uint32_t width = storage::kBuckets / nodes;
  for (uint32_t b = index * width; b < (index + 1) * width; ++b) d += sums.at(b);
  return d;
}

bool AeBody::operator==(const AeBody& o) const {
  if (!(kind == o.kind && round == o.round && from_initiator == o.from_initiator &&
        scope == o.scope)) {
    return false;
  }
  switch (kind) {
    case AeKind::kBegin:
      return level == o.level && nodes == o.nodes && applied == o.applied &&
             floor == o.floor && source == o.source;
    case AeKind::kHashes:
      return level == o.level && nodes == o.nodes;
    case AeKind::kWant:
      return buckets == o.buckets;
    case AeKind::kStates:
      return part == o.part && last == o.last && states == o.states &&
             (!last || (applied == o.applied && floor == o.floor));
    case AeKind::kDone:
      return in_sync == o.in_sync && (!in_sync || (applied == o.applied && floor == o.floor));
  }
  return true;
}

struct AntiEntropy::Impl {
  enum class Phase { kHashes, kTransfer, kSyncAdvance };

  // The other side's AeStates of a round, and the repair made of them.
  struct Incoming {
    std::set<uint32_t> parts;
    bool last_known = false;
    uint32_t last_part = 0;
    AeApplied advance;            // the sender's View applied vector
    AeApplied floor;              // ... and its collection floor
    std::vector<AeState> held;    // states of the parts in, until all are
    uint64_t emitted = 0;         // repairs handed to the driver
    uint64_t confirmed = 0;       // ... and reported durable
    bool advance_emitted = false;
    bool advanced = false;  // the advance is durable (or was not needed)
    uint64_t states = 0;

    bool AllParts() const { return last_known && parts.size() == size_t{last_part} + 1; }
  };

  struct Round {
    uint64_t id = 0;
    bool initiator = true;
    std::string peer;
    std::string scope;
    View view;               // this side's, taken when it joined the round
    AeApplied peer_applied;  // responder: the AeBegin's applied vector
    AeApplied peer_floor;    // ... and collection floor
    Phase phase = Phase::kHashes;
    std::set<uint32_t> sent;          // initiator: leaves sent; responder: level-2 nodes sent
    std::vector<uint32_t> differing;  // D, once known
    bool differing_known = false;
    bool want_answered = false;  // initiator: AeWant received and our states requested
    bool in_sync = false;
    Incoming in;
    uint64_t deadline_ms = 0;
  };

  using RoundKey = std::pair<std::string, bool>;  // (peer, this node is the initiator)

  AeOptions opt;
  std::vector<std::string> peers;
  ViewSource* views;
  std::map<RoundKey, Round> rounds;
  std::map<std::string, uint64_t> highest_begin;  // per peer, as responder
  uint64_t last_round_id = 0;
  bool ticked = false;
  uint64_t next_round_ms = 0;
  uint64_t last_mono_ms = 0;
  size_t next_peer = 0;  // round-robin cursor into `peers`
  bool completed_any = false;
  bool bootstrapped_alone = false;  // BootstrapAlone
  AeCounters counters;
  AeEffects pending;  // effects of calls that have no AeEffects (sent with the next call)

  bool Known(const std::string& peer) const {
    return std::find(peers.begin(), peers.end(), peer) != peers.end();
  }

  void Flush(AeEffects* out) {
    for (AeSend& s : pending.sends) out->sends.push_back(std::move(s));
    for (AeReadStates& r : pending.reads) out->reads.push_back(std::move(r));
    for (AeRepair& r : pending.repairs) out->repairs.push_back(std::move(r));
    for (std::string& l : pending.logs) out->logs.push_back(std::move(l));
    pending = AeEffects();
  }

  void Progress(Round& r, uint64_t mono_ms) { r.deadline_ms = mono_ms + opt.round_timeout_ms; }

  AeBody BodyOf(const Round& r, AeKind kind) const {
    AeBody b;
    b.kind = kind;
    b.round = r.id;
    b.from_initiator = r.initiator;
    b.scope = r.scope;
    return b;
  }

  std::string Name(const Round& r) const {
    return "anti-entropy round " + std::to_string(r.id) + " with " + r.peer;
  }

  std::string BucketsSaid(const Round& r) const {
    if (!r.differing_known) return "differing buckets not yet known";
    return std::to_string(r.differing.size()) + " bucket" + (r.differing.size() == 1 ? "" : "s") +
           " differed";
  }

  void Send(const Round& r, AeBody body, AeEffects* out) {
    out->sends.push_back(AeSend{r.peer, std::move(body)});
  }

  void StartRound(uint64_t mono_ms, const std::string& peer, const char* why, AeEffects* out) {
    Round r;
    r.id = std::max(last_round_id + 1, mono_ms);
    last_round_id = r.id;
    r.initiator = true;
    r.peer = peer;
    r.scope = opt.scope;
    views->ReadView(r.scope, &r.view);
    Progress(r, mono_ms);
    AeBody b = BodyOf(r, AeKind::kBegin);
    b.level = 1;
    b.nodes = Children(r.view.sums, 1, {0});
    b.applied = r.view.applied;
    b.floor = r.view.floor;
    Send(r, std::move(b), out);
    ++counters.rounds_started;
    (void)why;  // rounds start every interval: only their outcome is logged
    rounds[{peer, true}] = std::move(r);
  }

  void Abandon(const RoundKey& key, const std::string& why, bool tell_peer, AeEffects* out) {
    auto it = rounds.find(key);
    if (it == rounds.end()) return;
    Round& r = it->second;
    if (tell_peer) {
      AeBody b = BodyOf(r, AeKind::kDone);
      b.in_sync = false;
      Send(r, std::move(b), out);
    }
    ++counters.rounds_abandoned;
    out->logs.push_back(Name(r) + " abandoned as " + SideName(r.initiator) + ": " + why + " (" +
                        BucketsSaid(r) + ")");
    rounds.erase(it);
  }

  // Logged: the first completed round (a bootstrap ends with it) and every
  // round that repaired or advanced something; quiet in-sync rounds, one
  // per peer every interval, are only counted.
  void Complete(Round& r, AeEffects* out) {
    ++counters.rounds_completed;
    const bool first = !completed_any;
    completed_any = true;
    std::string said;
    if (r.in_sync) {
      ++counters.rounds_in_sync;
      said = "in sync";
    } else {
      counters.buckets_repaired += r.differing.size();
      said = BucketsSaid(r) + ", " + std::to_string(r.in.states) + " states received";
    }
    said += r.in.advance_emitted ? ", applied vector advanced to the peer's"
                                 : ", applied vector already covered the peer's";
    if (first || !r.in_sync || r.in.advance_emitted) {
      out->logs.push_back(Name(r) + " completed as " + SideName(r.initiator) + ": " + said);
    }
    rounds.erase({r.peer, r.initiator});
  }

  bool Done(const Round& r) const {
    if (!r.in.advanced || r.in.confirmed != r.in.emitted) return false;
    if (r.phase == Phase::kSyncAdvance) return true;
    if (r.phase != Phase::kTransfer) return false;
    return r.in.AllParts() && (!r.initiator || r.want_answered);
  }

  void MaybeComplete(Round& r, AeEffects* out) {
    if (Done(r)) Complete(r, out);
  }

  // Once every part is in: one repair with all of the round's states and
  // the advance (unless this side's View already covers the peer's); none
  // when there is nothing to store.
  void MaybeRepair(Round& r, AeEffects* out) {
    Incoming& in = r.in;
    if (r.phase != Phase::kTransfer || !in.AllParts() || in.emitted > 0 || in.advanced) return;
    AeRepair rep;
    rep.peer = r.peer;
    rep.round = r.id;
    rep.initiator = r.initiator;
    rep.scope = r.scope;
    rep.states = std::move(in.held);
    in.held.clear();
    rep.buckets = r.differing;
    rep.has_advance = !Covers(r.view.applied, in.advance);
    if (rep.has_advance) rep.advance = in.advance;
    rep.view = in.advance;
    rep.peer_floor = in.floor;
    if (!rep.has_advance) in.advanced = true;  // nothing to advance
    if (rep.states.empty() && !rep.has_advance) return;
    in.advance_emitted = rep.has_advance;
    out->repairs.push_back(std::move(rep));
    ++in.emitted;
  }

  // The Views were equal: advance to the peer's View (if it adds
  // anything), then the round is complete.
  void InSync(Round& r, const AeApplied& peer_applied, const AeApplied& peer_floor,
              AeEffects* out) {
    r.in_sync = true;
    r.differing.clear();
    r.differing_known = true;
    r.phase = Phase::kSyncAdvance;
    if (Covers(r.view.applied, peer_applied)) {
      r.in.advanced = true;
    } else {
      r.in.advance = peer_applied;
      AeRepair rep;
      rep.peer = r.peer;
      rep.round = r.id;
      rep.initiator = r.initiator;
      rep.scope = r.scope;
      rep.has_advance = true;
      rep.advance = peer_applied;
      rep.view = peer_applied;
      rep.peer_floor = peer_floor;
      out->repairs.push_back(std::move(rep));
      r.in.advance_emitted = true;
      ++r.in.emitted;
    }
    MaybeComplete(r, out);
  }

  void RequestStates(const Round& r, AeEffects* out) {
    AeReadStates rd;
    rd.peer = r.peer;
    rd.round = r.id;
    rd.from_initiator = r.initiator;
    rd.scope = r.scope;
    rd.buckets = r.differing;
    rd.applied = r.view.applied;
    rd.floor = r.view.floor;
    rd.snapshot = r.view.snapshot;
    out->reads.push_back(std::move(rd));
  }

  // Responder: an AeBegin.
  void OnBegin(uint64_t mono_ms, const std::string& peer, const AeBody& b, AeEffects* out) {
    std::vector<uint32_t> parents;
    if (b.level != 1 || !WholeFamilies(b.nodes, 1, &parents)) return;  // not all 16 hashes
    uint64_t& highest = highest_begin[peer];
    if (b.round <= highest) return;  // a duplicate or a stale round
    highest = b.round;
    const RoundKey key{peer, false};
    if (rounds.count(key) != 0) {
      Abandon(key, "the initiator started round " + std::to_string(b.round), false, out);
    }
    Round r;
    r.id = b.round;
    r.initiator = false;
    r.peer = peer;
    r.scope = b.scope;
    r.peer_applied = b.applied;
    r.peer_floor = b.floor;
    views->ReadView(r.scope, &r.view);
    Progress(r, mono_ms);
    ++counters.rounds_started;
    std::vector<uint32_t> differing;
    for (const AeNode& n : b.nodes) {
      if (TreeHash(r.view.sums, 1, n.index) != n.hash) differing.push_back(n.index);
    }
    Round& stored = rounds[key] = std::move(r);
    if (differing.empty()) {
      AeBody done = BodyOf(stored, AeKind::kDone);
      done.in_sync = true;
      done.applied = stored.view.applied;
      done.floor = stored.view.floor;
      Send(stored, std::move(done), out);
      InSync(stored, stored.peer_applied, stored.peer_floor, out);
      return;
    }
    AeBody h = BodyOf(stored, AeKind::kHashes);
    h.level = 2;
    h.nodes = Children(stored.view.sums, 2, differing);
    for (const AeNode& n : h.nodes) stored.sent.insert(n.index);
    Send(stored, std::move(h), out);
  }

  // Initiator: the responder's level-2 hashes.
  void OnLevel2(uint64_t mono_ms, Round& r, const AeBody& b, AeEffects* out) {
    std::vector<uint32_t> parents;
    if (r.phase != Phase::kHashes || b.level != 2 || !WholeFamilies(b.nodes, 2, &parents)) return;
    Progress(r, mono_ms);
    std::vector<uint32_t> differing;
    for (const AeNode& n : b.nodes) {
      if (TreeHash(r.view.sums, 2, n.index) != n.hash) differing.push_back(n.index);
    }
    if (differing.empty()) {
      // Cannot happen between honest peers (a parent's hash is the sum of
      // its children's); the peer's View is unknown here, so no advance.
      AeBody done = BodyOf(r, AeKind::kDone);
      done.in_sync = true;
      done.applied = r.view.applied;
      done.floor = r.view.floor;
      Send(r, std::move(done), out);
      InSync(r, AeApplied(), AeApplied(), out);
      return;
    }
    AeBody h = BodyOf(r, AeKind::kHashes);
    h.level = kLeafLevel;
    h.nodes = Children(r.view.sums, kLeafLevel, differing);
    for (const AeNode& n : h.nodes) r.sent.insert(n.index);
    r.phase = Phase::kTransfer;
    Send(r, std::move(h), out);
  }

  // Responder: the initiator's leaves.
  void OnLeaves(uint64_t mono_ms, Round& r, const AeBody& b, AeEffects* out) {
    std::vector<uint32_t> parents;
    if (r.phase != Phase::kHashes || b.level != kLeafLevel ||
        !WholeFamilies(b.nodes, kLeafLevel, &parents)) {
      return;
    }
    for (uint32_t p : parents) {
      if (r.sent.count(p) == 0) return;  // not under a node we sent
    }
    Progress(r, mono_ms);
    r.differing.clear();
    for (const AeNode& n : b.nodes) {
      if (r.view.sums.at(n.index) != n.hash) r.differing.push_back(n.index);
    }
    r.differing_known = true;
    if (r.differing.empty()) {
      AeBody done = BodyOf(r, AeKind::kDone);
      done.in_sync = true;
      done.applied = r.view.applied;
      done.floor = r.view.floor;
      Send(r, std::move(done), out);
      InSync(r, r.peer_applied, r.peer_floor, out);
      return;
    }
    r.phase = Phase::kTransfer;
    AeBody w = BodyOf(r, AeKind::kWant);
    w.buckets = r.differing;
    Send(r, std::move(w), out);
    RequestStates(r, out);
  }

  // Initiator: the buckets the responder found differing.
  void OnWant(uint64_t mono_ms, Round& r, const AeBody& b, AeEffects* out) {
    if (r.phase != Phase::kTransfer || r.want_answered || b.buckets.empty()) return;
    for (size_t i = 0; i < b.buckets.size(); ++i) {
      if (r.sent.count(b.buckets[i]) == 0) return;
      if (i > 0 && b.buckets[i] <= b.buckets[i - 1]) return;
    }
    Progress(r, mono_ms);
    r.differing = b.buckets;
    r.differing_known = true;
    r.want_answered = true;
    RequestStates(r, out);
    MaybeComplete(r, out);
  }

  void OnStates(uint64_t mono_ms, Round& r, const AeBody& b, AeEffects* out) {
    Incoming& in = r.in;
    if (r.phase != Phase::kTransfer) return;
    if (in.parts.count(b.part) != 0) return;             // a duplicate
    if (in.last_known && b.part > in.last_part) return;  // beyond the last
    if (b.last) {
      if (in.last_known) return;  // a second "last"
      if (!in.parts.empty() && *in.parts.rbegin() > b.part) return;
      in.last_known = true;
      in.last_part = b.part;
      in.advance = b.applied;
      in.floor = b.floor;
    }
    Progress(r, mono_ms);
    in.parts.insert(b.part);
    in.states += b.states.size();
    counters.states_received += b.states.size();
    in.held.insert(in.held.end(), b.states.begin(), b.states.end());
    MaybeRepair(r, out);
    MaybeComplete(r, out);
  }

  void OnDone(Round& r, const AeBody& b, AeEffects* out) {
    const RoundKey key{r.peer, r.initiator};
    if (!b.in_sync) {
      Abandon(key, "the peer gave it up", false, out);
      return;
    }
    // Equal Views: the responder says so instead of level-2 hashes or of
    // an AeWant; the initiator instead of leaves.
    const bool expected =
        r.initiator ? r.phase == Phase::kHashes ||
                          (r.phase == Phase::kTransfer && !r.want_answered && r.in.parts.empty())
                    : r.phase == Phase::kHashes;
    if (expected) InSync(r, b.applied, b.floor, out);
  }
};

AntiEntropy::AntiEntropy(AeOptions options, std::vector<std::string> peers, ViewSource* views)
    : impl_(std::make_unique<Impl>()) {
  impl_->opt = options;
  if (impl_->opt.interval_ms == 0) impl_->opt.interval_ms = 1;
  for (std::string& p : peers) {
    if (!impl_->Known(p)) impl_->peers.push_back(std::move(p));
  }
  impl_->views = views;
}

AntiEntropy::~AntiEntropy() = default;

void AntiEntropy::OnTick(uint64_t mono_ms, const std::vector<std::string>& up, AeEffects* out) {
  Impl& m = *impl_;
  m.Flush(out);
  m.last_mono_ms = mono_ms;
  if (!m.ticked) {
    m.ticked = true;
    m.next_round_ms = mono_ms + m.opt.interval_ms;
  }
  std::vector<Impl::RoundKey> expired;
  for (const auto& [key, r] : m.rounds) {
    if (r.deadline_ms <= mono_ms) expired.push_back(key);
  }
  for (const Impl::RoundKey& key : expired) {
    m.Abandon(key, "no progress for " + std::to_string(m.opt.round_timeout_ms) + " ms", true, out);
  }
  if (mono_ms < m.next_round_ms) return;
  m.next_round_ms = mono_ms + m.opt.interval_ms;
  const size_t n = m.peers.size();
  for (size_t i = 0; i < n; ++i) {
    const size_t at = (m.next_peer + i) % n;
    const std::string& peer = m.peers[at];
    if (std::find(up.begin(), up.end(), peer) == up.end()) continue;
    if (m.rounds.count({peer, true}) != 0) continue;
    m.next_peer = (at + 1) % n;
    m.StartRound(mono_ms, peer, "scheduled", out);
    return;
  }
}

void AntiEntropy::PeerUp(uint64_t mono_ms, const std::string& peer, AeEffects* out) {
  Impl& m = *impl_;
  m.Flush(out);
  m.last_mono_ms = std::max(m.last_mono_ms, mono_ms);
  if (!m.Known(peer) || m.rounds.count({peer, true}) != 0) return;
  m.StartRound(mono_ms, peer, "the peer came up", out);
}

void AntiEntropy::PeerDown(const std::string& peer) {
  Impl& m = *impl_;
  m.Abandon({peer, true}, "the peer went down", false, &m.pending);
  m.Abandon({peer, false}, "the peer went down", false, &m.pending);
  m.highest_begin.erase(peer);
}

void AntiEntropy::OnMessage(uint64_t mono_ms, const std::string& peer, const AeBody& body,
                            AeEffects* out) {
  Impl& m = *impl_;
  m.Flush(out);
  m.last_mono_ms = std::max(m.last_mono_ms, mono_ms);
  if (!m.Known(peer)) return;
  if (body.from_initiator && body.kind == AeKind::kBegin) {
    m.OnBegin(mono_ms, peer, body, out);
    return;
  }
  // Everything else belongs to an open round of ours: the sender's side is
  // the other one.
  auto it = m.rounds.find({peer, !body.from_initiator});
  if (it == m.rounds.end()) return;
  Impl::Round& r = it->second;
  if (r.id != body.round || r.scope != body.scope) return;
  switch (body.kind) {
    case AeKind::kBegin:
      return;  // only initiators begin
    case AeKind::kHashes:
      if (r.initiator) {
        m.OnLevel2(mono_ms, r, body, out);
      } else {
        m.OnLeaves(mono_ms, r, body, out);
      }
      return;
    case AeKind::kWant:
      if (r.initiator) m.OnWant(mono_ms, r, body, out);
      return;
    case AeKind::kStates:
      m.OnStates(mono_ms, r, body, out);
      return;
    case AeKind::kDone:
      m.OnDone(r, body, out);
      return;
  }
}

void AntiEntropy::Decline(const std::string& peer, const AeBody& begin, AeEffects* out) {
  Impl& m = *impl_;
  m.Flush(out);
  if (begin.kind != AeKind::kBegin || !begin.from_initiator || !m.Known(peer)) return;
  const Impl::RoundKey key{peer, false};
  auto it = m.rounds.find(key);
  if (it != m.rounds.end() && it->second.id < begin.round) {
    m.Abandon(key, "the initiator started round " + std::to_string(begin.round), false, out);
  }
  AeBody done;
  done.kind = AeKind::kDone;
  done.round = begin.round;
  done.from_initiator = false;
  done.scope = begin.scope;
  done.in_sync = false;
  out->sends.push_back(AeSend{peer, std::move(done)});
  ++m.counters.rounds_declined;
}

void AntiEntropy::OnRepaired(uint64_t mono_ms, const std::string& peer, uint64_t round,
                             bool initiator, bool advanced, AeEffects* out) {
  Impl& m = *impl_;
  m.Flush(out);
  m.last_mono_ms = std::max(m.last_mono_ms, mono_ms);
  auto it = m.rounds.find({peer, initiator});
  if (it == m.rounds.end() || it->second.id != round) return;
  Impl::Round& r = it->second;
  if (r.in.confirmed < r.in.emitted) ++r.in.confirmed;
  if (advanced) r.in.advanced = true;
  m.Progress(r, mono_ms);
  m.MaybeComplete(r, out);
}

void AntiEntropy::OnRepairFailed(const std::string& peer, uint64_t round, bool initiator) {
  Impl& m = *impl_;
  auto it = m.rounds.find({peer, initiator});
  if (it == m.rounds.end() || it->second.id != round) return;
  m.Abandon({peer, initiator}, "a repair could not be applied", true, &m.pending);
}

void AntiEntropy::OnReadFailed(const std::string& peer, uint64_t round, bool from_initiator) {
  Impl& m = *impl_;
  auto it = m.rounds.find({peer, from_initiator});
  if (it == m.rounds.end() || it->second.id != round) return;
  m.Abandon({peer, from_initiator}, "its states could not be read", true, &m.pending);
}

void AntiEntropy::NoteStatesSent(uint64_t n) { impl_->counters.states_sent += n; }

void AntiEntropy::TakePending(AeEffects* out) { impl_->Flush(out); }

uint64_t AntiEntropy::NextTickMs() const {
  const Impl& m = *impl_;
  if (!m.ticked) return 0;
  const AeEffects& p = m.pending;
  if (!p.sends.empty() || !p.reads.empty() || !p.repairs.empty() || !p.logs.empty()) {
    return m.last_mono_ms;
  }
  uint64_t next = m.next_round_ms;
  for (const auto& [key, r] : m.rounds) next = std::min(next, r.deadline_ms);
  return next;
}

void AntiEntropy::BootstrapAlone() { impl_->bootstrapped_alone = true; }

bool AntiEntropy::bootstrapped() const {
  const Impl& m = *impl_;
  return !m.opt.must_bootstrap || m.completed_any || m.bootstrapped_alone || m.peers.empty();
}

const AeCounters& AntiEntropy::counters() const { return impl_->counters; }

}  // namespace meridian::gossip
