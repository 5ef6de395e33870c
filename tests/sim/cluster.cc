#include "tests/sim/cluster.h"

#include <algorithm>
#include <deque>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "conflict/conflict_index.h"
#include "conflict/settle.h"
#include "crdt/counter.h"
#include "crdt/envelope.h"
#include "crdt/hlc.h"
#include "crdt/mvregister.h"
#include "crdt/register.h"
#include "crdt/set.h"
#include "crdt/text.h"
#include "gossip/messages.h"
#include "gossip/protocol.h"
#include "gossip/scoped_protocol.h"
#include "node/committer.h"
#include "node/operation.h"
#include "node/review_queue.h"
#include "storage/digests.h"
#include "storage/leveldb_store.h"
#include "storage/node_meta.h"
#include "tests/sim/checker.h"
#include "tests/sim/history.h"
#include "tests/sim/network.h"
#include "tests/sim/rng.h"
#include "tests/sim/scenario.h"

namespace meridian::sim {

const char* SabotageName(Sabotage s) {
  switch (s) {
    case Sabotage::kNone:
      return "none";
    case Sabotage::kDropApplies:
      return "drop-applies";
    case Sabotage::kAckWithoutApply:
      return "ack-without-apply";
    case Sabotage::kIgnoreGate:
      return "ignore-gate";
    case Sabotage::kReadWithoutWaiting:
      return "read-without-waiting";
    case Sabotage::kAckBeforeCommit:
      return "ack-before-commit";
    case Sabotage::kSkipGate:
      return "skip-gate";
    case Sabotage::kRepairWithoutStates:
      return "repair-without-states";
    case Sabotage::kResolveMissingDot:
      return "resolve-missing-dot";
    case Sabotage::kDropConflictEntries:
      return "drop-conflict-entries";
    case Sabotage::kTextIgnoreVersion:
      return "text-ignore-version";
  }
  return "?";
}

namespace {

constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();
constexpr uint64_t kEpochMs = 1'700'000'000'000;  // virtual time 0 on the wall clock
constexpr uint64_t kMaxEvents = 3'000'000;
const std::string kScope = gossip::kDefaultScope;

// ---------------------------------------------------------------------------
// Nodes and events.

struct SimNode;

// Anti-entropy's View of a node: its committer's digest sums and applied
// vector, both as of its last commit (one thread: always consistent).
struct SimView : gossip::ViewSource {
  SimNode* node = nullptr;
  void ReadView(const std::string& scope, gossip::View* out) override;
};

struct SimNode {
  int index = 0;
  std::string id, region, dir;
  uint64_t mono_base = 0;
  int64_t skew_ms = 0;
  crdt::ManualClock wall;
  std::unique_ptr<crdt::HybridClock> clock;
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<node::Committer> committer;
  // The class meridiand drives: one Protocol per placement scope (the
  // simulated cluster has no [[placement]], so one: the default scope's).
  std::unique_ptr<gossip::ScopedProtocol> protocol;
  bool up = false;
  bool started = false;
  bool expect_fresh = false;      // wiped: the next start finds an empty data dir
  uint64_t wipes = 0;
  bool bootstrap_pending = false;  // as stored: a fresh incarnation not yet bootstrapped
  uint64_t gen = 0;  // bumped at every start and crash: stale events are ignored
  uint64_t tick_at = kNever;
  bool commit_scheduled = false;
  std::vector<gossip::ApplyRequest> pending_applies;
  std::deque<gossip::AeRepair> pending_repairs;
  SimView view;
  std::vector<int> pending_writes;  // write ids
  std::vector<int> waiting_reads;   // read ids
  crdt::ReplicaId replica;
  storage::AppliedVector durable;   // the applied vector as of the last commit
  crdt::Hlc last_register_hlc = 0;  // greatest HLC of its committed register writes
  // Per register key, the greatest (HLC, writer) of a delete this node's
  // state has held (since its last wipe): no value older than it may ever
  // show here again, collected tombstone or not.
  std::map<std::string, std::pair<crdt::Hlc, crdt::ReplicaId>> deleted;
  uint64_t beyond_since = kNever;   // clock beyond the limit from most nodes since
  // Retention horizon, as stored (the transport's part): the retired
  // incarnations and the last two-way contact.
  std::map<std::string, uint64_t> expired_stored;
  uint64_t contact_stored = 0;
  uint64_t reach_mask = 0;          // the nodes it could reach at the last UpdateFences
};

void SimView::ReadView(const std::string& scope, gossip::View* out) {
  *out = gossip::View();
  out->applied = node->committer->applied();
  out->floor = node->committer->collect_floor();
  if (scope == gossip::kDefaultScope) out->sums = node->committer->digest_sums();
  // One thread: the store holds exactly the committer's last commit.
  if (!node->store->TakeSnapshot(&out->snapshot).ok()) out->snapshot.reset();
}

struct PendingRead {
  int id = 0;
  int session = 0;
  int node = 0;
  std::string key;
  storage::AppliedVector token;
  uint64_t deadline = 0;
  bool done = false;
};

enum class EventKind {
  kDeliver,
  kTick,
  kCommit,
  kClient,
  kReadDeadline,
  kFault,
  kHeal,
  kCheck,
  kRestartNode,  // a wiped node comes back
  kRejoin,       // a peer retired the node's incarnation
};

struct Event {
  EventKind kind = EventKind::kTick;
  int node = -1;
  int from = -1;
  uint64_t gen = 0;
  int index = 0;
  std::string bytes;
};

uint64_t Mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h * 0x100000001b3ULL;
}

uint64_t HashBytes(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

std::string TokenString(const storage::AppliedVector& v) { return node::FormatSessionToken(v); }

// Applied vectors compare without their zero entries (a node that has
// logged nothing yet may or may not name itself).
bool SameApplied(const storage::AppliedVector& a, const storage::AppliedVector& b) {
  auto ia = a.begin(), ib = b.begin();
  for (;;) {
    while (ia != a.end() && ia->second == 0) ++ia;
    while (ib != b.end() && ib->second == 0) ++ib;
    if (ia == a.end() || ib == b.end()) return ia == a.end() && ib == b.end();
    if (*ia != *ib) return false;
    ++ia;
    ++ib;
  }
}

void MaxInto(const storage::AppliedVector& v, storage::AppliedVector* into) {
  for (const auto& [k, seq] : v) {
    uint64_t& mine = (*into)[k];
    mine = std::max(mine, seq);
  }
}

// ---------------------------------------------------------------------------

class Simulation {
 public:
  Simulation(uint64_t seed, const SimOptions& options)
      : seed_(seed),
        options_(options),
        scenario_(MakeScenario(seed, options.quiesce_limit_ms)),
        rng_(seed ^ 0x5851f42d4c957f2dULL),
        net_(scenario_.n) {}

  SeedReport Run();

 private:
  // Time and effects.
  gossip::Now NowOf(SimNode& n);
  void Execute(SimNode& n, const gossip::Now& now, gossip::Effects& fx);
  void Ship(SimNode& n, const gossip::Now& now, const gossip::ShipRequest& req);
  void ServeAeRead(SimNode& n, const gossip::Now& now, const gossip::AeReadStates& read);
  void Send(SimNode& n, const std::string& peer, const gossip::Message& m);
  void ScheduleTick(SimNode& n, bool from_tick);
  void ScheduleCommit(SimNode& n);
  void Push(uint64_t t, Event e);

  // Event handlers.
  void Deliver(Event& e);
  void Tick(Event& e);
  // Drops what causal stability allows (Committer::Collect).
  void Collect(SimNode& n);
  bool ReadDominates(const std::string& key, const std::string& later, const std::string& earlier,
                     std::string* why) const;
  // The change listener's check: no deleted register value comes back.
  void CheckNotResurrected(SimNode& n, const std::string& key, const std::string& envelope);
  void CommitGroup(SimNode& n);
  void CommitWrites(SimNode& n);
  void CommitRepairs(SimNode& n);
  void ClientOp(int session);
  // An mvregister session's write: with the scenario's resolve_chance, a
  // resolution of what `n`'s review queue shows for w->key (as POST
  // /v1/conflicts/{key} makes one); otherwise a write without a context.
  void DrawMvWrite(SimNode& n, WriteRecord* w);
  // After a local mvregister write committed: its dot, HLC and delta
  // context from the logged delta, and what its reply must show. Empty,
  // or why it is wrong.
  std::string RecordMvWrite(SimNode& n, const node::WriteResult& r, WriteRecord* w);
  // A text session's write at `n`: an edit (inserts of fresh characters,
  // deletes of ranges) at a version the session saw (an older one with
  // the scenario's text_old_chance, else what `n` shows now), or now and
  // then a delete of the whole text.
  void DrawTextWrite(SimNode& n, Session& s, WriteRecord* w);
  // After a local text write committed (`before`: the key's state just
  // before it): what it deleted, what its reply shows of it, and (for an
  // acknowledged edit) the version its session now sees. Empty, or why it
  // is wrong.
  std::string RecordTextWrite(SimNode& n, const node::WriteResult& r, const std::string& before,
                              WriteRecord* w, TextView* next);
  // Remembers a version of a text key the session saw (read or wrote).
  void SeeText(Session& s, const std::string& key, TextView view);
  void NextOp(int session);
  void Fault(const FaultEvent& f);
  void Heal();
  bool Quiescent(std::string* why);

  // Nodes.
  void Start(SimNode& n);
  void Crash(SimNode& n);
  bool WipeReady(SimNode& n, std::string* why);
  void Wipe(SimNode& n, uint64_t downtime_ms);
  // A peer retired its incarnation: its data goes aside, and it comes back
  // as a new incarnation (as meridiand does).
  void Rejoin(SimNode& n);
  // Marks the committed writes no node but `n` holds as lost (maybe in,
  // maybe not), and takes them out of the sessions' tokens and views.
  // orphans_only: only writes of incarnations no node runs any more.
  // Returns the number of keys concerned.
  size_t ForgetWritesHeldOnlyBy(SimNode& n, bool orphans_only);
  // Drops the data dir and schedules a fresh start `downtime_ms` later.
  void LoseData(SimNode& n, uint64_t downtime_ms);
  void StoreContact(SimNode& n);

  // Reads.
  void AnswerReads(SimNode& n);
  void FinishRead(PendingRead& r, SimNode& n);

  void CheckRegionsHolding(SimNode& n);
  void AddCounters(const SimNode& n);
  void UpdateFences();
  void Violation(const std::string& what);
  void Trace(const std::string& line);
  std::string KeyHistory(const std::set<std::string>& keys) const;

  const uint64_t seed_;
  const SimOptions options_;
  const Scenario scenario_;
  Rng rng_;
  VirtualNetwork net_;
  std::vector<std::unique_ptr<SimNode>> nodes_;
  std::map<std::string, int> index_of_;
  std::map<std::pair<uint64_t, uint64_t>, Event> queue_;
  uint64_t next_seq_ = 0;
  uint64_t now_ = 0;
  bool healed_ = false;
  bool quiesced_ = false;
  bool stop_ = false;
  History history_;
  std::unique_ptr<conflict::Settler> review_;  // the nodes' policies (MakeReviewSettler)
  std::vector<PendingRead> reads_;
  uint64_t next_char_ = 0;  // TextCharOf(next_char_) is the next character typed
  std::deque<std::string> trace_;
  std::vector<std::string> violations_;
  uint64_t fingerprint_ = 0;
  SimStats stats_;
};

void Simulation::Trace(const std::string& line) {
  if (!options_.trace) return;
  trace_.push_back("t=" + std::to_string(now_) + " " + line);
  while (trace_.size() > options_.trace_lines) trace_.pop_front();
}

void Simulation::Violation(const std::string& what) {
  Trace("VIOLATION: " + what);
  violations_.push_back("t=" + std::to_string(now_) + ": " + what);
  stop_ = true;  // the first one is the one to look at; the trace ends there
}

void Simulation::Push(uint64_t t, Event e) {
  queue_.emplace(std::make_pair(t, next_seq_++), std::move(e));
}

gossip::Now Simulation::NowOf(SimNode& n) {
  int64_t wall = static_cast<int64_t>(kEpochMs + now_) + n.skew_ms;
  n.wall.Set(static_cast<uint64_t>(wall));
  gossip::Now now;
  now.mono_ms = n.mono_base + now_;
  now.wall_ms = static_cast<uint64_t>(wall);
  now.hlc = n.clock ? n.clock->last() : 0;
  return now;
}

void Simulation::ScheduleTick(SimNode& n, bool from_tick) {
  if (!n.up) return;
  uint64_t next = n.protocol->NextTickMs();
  uint64_t t = next == kNever ? kNever : (next <= n.mono_base ? 0 : next - n.mono_base);
  uint64_t earliest = from_tick ? now_ + 1 : now_;
  if (scenario_.tick_cap_ms > 0) t = std::min(t, now_ + scenario_.tick_cap_ms);
  if (t == kNever) return;
  t = std::max(t, earliest);
  if (n.tick_at != kNever && n.tick_at >= now_ && n.tick_at <= t) return;  // one is due sooner
  n.tick_at = t;
  Event e;
  e.kind = EventKind::kTick;
  e.node = n.index;
  e.gen = n.gen;
  Push(t, std::move(e));
}

void Simulation::ScheduleCommit(SimNode& n) {
  if (n.commit_scheduled) return;
  n.commit_scheduled = true;
  Event e;
  e.kind = EventKind::kCommit;
  e.node = n.index;
  e.gen = n.gen;
  Push(now_ + Between(rng_, 0, scenario_.commit_delay_max_ms), std::move(e));
}

void Simulation::Send(SimNode& n, const std::string& peer, const gossip::Message& m) {
  auto it = index_of_.find(peer);
  if (it == index_of_.end() || it->second == n.index) {
    Violation(n.id + " sends a " + gossip::TypeName(m.type) + " to unknown peer '" + peer + "'");
    return;
  }
  std::string bytes = gossip::Encode(m);
  ++stats_.messages;
  std::vector<uint64_t> delays = net_.Fate(n.index, it->second, rng_);
  if (options_.trace) {
    std::string what = std::string(gossip::TypeName(m.type));
    if (m.type == gossip::MsgType::kDeltas && !m.deltas.empty()) {
      what +=
          " " + std::to_string(m.deltas.front().seq) + ".." + std::to_string(m.deltas.back().seq);
    } else if (m.type == gossip::MsgType::kAck) {
      what += " " + std::to_string(m.seq);
    } else if (m.type == gossip::MsgType::kWelcome) {
      what += " applied=" + std::to_string(m.applied);
    } else if (m.type == gossip::MsgType::kRefuse) {
      what += std::string(" ") + gossip::ReasonName(m.reason);
    }
    Trace(n.id + " -> " + peer + " " + what +
          (delays.empty()      ? " (dropped)"
           : delays.size() > 1 ? " (duplicated)"
                               : ""));
  }
  for (uint64_t d : delays) {
    Event e;
    e.kind = EventKind::kDeliver;
    e.node = it->second;
    e.from = n.index;
    e.bytes = bytes;
    Push(now_ + d, std::move(e));
  }
}

void Simulation::Ship(SimNode& n, const gossip::Now& now, const gossip::ShipRequest& req) {
  if (req.to_seq < req.from_seq || req.to_seq > n.committer->last_seq()) {
    Violation(n.id + " asked to ship " + std::to_string(req.from_seq) + ".." +
              std::to_string(req.to_seq) + " to " + req.peer + ", but its log ends at " +
              std::to_string(n.committer->last_seq()));
    return;
  }
  if (!healed_ && Chance(rng_, scenario_.ship_failure)) {
    Trace(n.id + ": log read for " + req.peer + " fails (injected)");
    gossip::Effects fx;
    n.protocol->OnShipFailed(now, req.peer, req.scope, &fx);
    Execute(n, now, fx);
    return;
  }
  std::vector<storage::LogEntry> entries;
  Status st = n.store->ReadLog(req.scope, req.from_seq, req.to_seq - req.from_seq + 1, &entries);
  if (st.ok()) {
    for (size_t i = 0; i < entries.size(); ++i) {
      if (entries[i].seq != req.from_seq + i) {
        st = Status::Corruption("log entry " + std::to_string(req.from_seq + i) + " missing");
        break;
      }
    }
    if (st.ok() && entries.size() != req.to_seq - req.from_seq + 1) {
      st = Status::Corruption("log read returned " + std::to_string(entries.size()) + " entries");
    }
  }
  if (!st.ok()) {
    Violation(n.id + " cannot read its log " + std::to_string(req.from_seq) + ".." +
              std::to_string(req.to_seq) + ": " + st.ToString());
    return;
  }
  const size_t per = std::max<size_t>(1, scenario_.protocol.max_deltas_per_message);
  gossip::Now fresh = now;
  fresh.hlc = n.clock->last();
  for (size_t i = 0; i < entries.size(); i += per) {
    gossip::Message m;
    m.header = n.protocol->MakeHeader(fresh);
    m.type = gossip::MsgType::kDeltas;
    m.scope = req.scope;
    for (size_t j = i; j < entries.size() && j < i + per; ++j) {
      m.deltas.push_back(gossip::DeltaEntry{entries[j].seq, entries[j].key, entries[j].delta});
    }
    Send(n, req.peer, m);
  }
}

// The states of the buckets asked for, as of the View's snapshot, in parts
// of a random size (numbered, the last flagged with the View's applied
// vector). Reads fail now and then before the heal.
void Simulation::ServeAeRead(SimNode& n, const gossip::Now& now,
                             const gossip::AeReadStates& read) {
  if (!healed_ && Chance(rng_, scenario_.ship_failure)) {
    Trace(n.id + ": state read for " + read.peer + " fails (injected)");
    gossip::Effects fx;
    n.protocol->OnAeReadFailed(now, read, &fx);
    Execute(n, now, fx);
    return;
  }
  if (read.snapshot == nullptr) {
    Violation(n.id + ": an anti-entropy read without the View's snapshot");
    return;
  }
  std::vector<gossip::AeState> states;
  std::vector<std::pair<std::string, storage::Digest>> keys;
  for (uint32_t bucket : read.buckets) {
    Status st = storage::ScanBucket(*n.store, read.scope, bucket, &keys, read.snapshot.get());
    for (size_t i = 0; st.ok() && i < keys.size(); ++i) {
      gossip::AeState s;
      s.key = keys[i].first;
      st = n.store->GetState(s.key, &s.envelope, read.snapshot.get());
      if (st.ok()) states.push_back(std::move(s));
      if (st.IsNotFound()) st = Status::OK();
    }
    if (st.IsUnavailable()) {
      // The store was reopened after a write error: the View's snapshot is
      // gone, and the round with it.
      Trace(n.id + ": state read for " + read.peer + " fails: " + st.ToString());
      gossip::Effects fx;
      n.protocol->OnAeReadFailed(now, read, &fx);
      Execute(n, now, fx);
      return;
    }
    if (!st.ok()) {
      Violation(n.id + " cannot read bucket " + std::to_string(bucket) + ": " + st.ToString());
      return;
    }
  }
  const size_t per = Chance(rng_, 0.5) ? states.size() + 1 : Between(rng_, 1, 4);
  gossip::Message m;
  m.type = gossip::MsgType::kAntiEntropy;
  m.ae.kind = gossip::AeKind::kStates;
  m.ae.round = read.round;
  m.ae.from_initiator = read.from_initiator;
  m.ae.scope = read.scope;
  size_t at = 0;
  do {
    m.header = n.protocol->MakeHeader(NowOf(n));
    m.ae.states.assign(states.begin() + static_cast<long>(at),
                       states.begin() + static_cast<long>(std::min(states.size(), at + per)));
    at = std::min(states.size(), at + per);
    m.ae.last = at == states.size();
    if (m.ae.last) {
      m.ae.applied = read.applied;
      m.ae.floor = read.floor;
    }
    Send(n, read.peer, m);
    ++m.ae.part;
    if (stop_) return;
  } while (at < states.size());
  n.protocol->OnAeStatesSent(read, states.size());
}

void Simulation::Execute(SimNode& n, const gossip::Now& now, gossip::Effects& fx) {
  if (fx.observed_hlc != 0) n.committer->ObserveHlc(fx.observed_hlc);
  if (n.bootstrap_pending && n.protocol->bootstrapped()) {
    // As the transport's Host::Bootstrapped: clear the stored mark (a
    // failed write leaves it; the next start bootstraps again).
    storage::WriteBatch batch;
    storage::PutBootstrapPending(false, &batch);
    if (n.store->Write(&batch).ok()) {
      n.bootstrap_pending = false;
      Trace(n.id + ": bootstrapped");
    }
  }
  if (!fx.expirations.empty()) {
    // As the transport: stored before anything else of the step.
    std::map<std::string, uint64_t> next = n.expired_stored;
    for (const crdt::ReplicaId& r : fx.expirations) {
      next[r.node] = std::max(next[r.node], r.incarnation);
      Trace(n.id + ": retires " + r.ToString());
    }
    storage::WriteBatch batch;
    storage::PutExpired(next, &batch);
    if (n.store->Write(&batch).ok()) {
      n.expired_stored = std::move(next);
      stats_.retirements += fx.expirations.size();
    } else {
      for (const crdt::ReplicaId& r : fx.expirations) n.protocol->OnExpirationFailed(r);
    }
  }
  if (fx.rejoin) {
    // Not in the middle of this step: the node goes at once, as an event.
    Event e;
    e.kind = EventKind::kRejoin;
    e.node = n.index;
    e.gen = n.gen;
    Push(now_, std::move(e));
  }
  if (options_.trace) {
    for (const auto& line : fx.logs) Trace(n.id + ": " + line);
    for (const auto& pe : fx.peer_events) {
      Trace(n.id + ": peer " + pe.peer + " " + gossip::PeerStateName(pe.from) + " -> " +
            gossip::PeerStateName(pe.to));
    }
  }
  for (const auto& [peer, msg] : fx.sends) {
    Send(n, peer, msg);
    if (stop_) return;
  }
  std::vector<gossip::ShipRequest> ships = std::move(fx.ships);
  std::vector<gossip::ApplyRequest> applies = std::move(fx.applies);
  std::vector<gossip::AeReadStates> reads = std::move(fx.ae_reads);
  std::vector<gossip::AeRepair> repairs = std::move(fx.ae_repairs);
  for (const gossip::TruncateRequest& t : fx.truncates) {
    // As the transport: the entries go (all at once here); a failure
    // leaves them, harmlessly.
    size_t removed = 0;
    Status ts = n.store->TruncateLog(t.scope, t.through_seq, kNever, &removed);
    Trace(n.id + ": log truncated through " + std::to_string(t.through_seq) + " (" +
          std::to_string(removed) + " entries)" + (ts.ok() ? "" : ": " + ts.ToString()));
    stats_.log_truncated += removed;
  }
  for (auto& rep : repairs) {
    Trace(n.id + ": repair from " + rep.peer + " round " + std::to_string(rep.round) + ", " +
          std::to_string(rep.states.size()) + " states" + (rep.has_advance ? ", advance" : ""));
    if (options_.sabotage == Sabotage::kRepairWithoutStates) rep.states.clear();
    n.pending_repairs.push_back(std::move(rep));
    ScheduleCommit(n);
  }
  for (const auto& read : reads) {
    ServeAeRead(n, now, read);
    if (stop_ || !n.up) return;
  }
  for (const auto& req : ships) {
    Ship(n, now, req);
    if (stop_) return;
  }
  for (auto& req : applies) {
    if (req.entries.empty()) {
      Violation(n.id + ": empty ApplyRequest for " + req.origin.ToString());
      return;
    }
    Trace(n.id + ": apply " + req.origin.ToString() + " " +
          std::to_string(req.entries.front().seq) + ".." + std::to_string(req.entries.back().seq));
    switch (options_.sabotage) {
      case Sabotage::kDropApplies:
        continue;
      case Sabotage::kAckWithoutApply: {
        gossip::Effects more;
        n.protocol->OnApplied(now, req.origin, req.scope, req.entries.back().seq, &more);
        Execute(n, now, more);
        continue;
      }
      default:
        n.pending_applies.push_back(std::move(req));
        ScheduleCommit(n);
    }
  }
}

// --- Nodes -------------------------------------------------------------------

void Simulation::Start(SimNode& n) {
  if (n.up) return;
  storage::StoreOptions so;
  so.sync = false;
  so.cache_bytes = 1 << 20;
  Status st = storage::Store::Open(n.dir, so, &n.store);
  storage::NodeMeta meta;
  bool fresh = false;
  if (st.ok()) st = storage::LoadNodeMeta(*n.store, n.id, &meta, &fresh);
  if (!st.ok()) {
    Violation(n.id + " cannot start: " + st.ToString());
    return;
  }
  if (fresh) {
    if (n.started && !n.expect_fresh) {
      Violation(n.id + " restarted on an empty store: its data dir lost everything");
      return;
    }
    // As meridiand: a new incarnation (never an earlier one), which must
    // complete an anti-entropy round before it takes writes, except the
    // first node of the new cluster (started with --bootstrap).
    meta.replica = crdt::ReplicaId{n.id, scenario_.incarnation[n.index] + n.wipes};
    meta.bootstrap_pending = options_.anti_entropy && (n.wipes > 0 || n.index > 0);
    storage::WriteBatch batch;
    storage::InitIdentity(meta.replica, &batch);
    storage::PutBootstrapPending(meta.bootstrap_pending, &batch);
    st = n.store->Write(&batch);
    if (!st.ok()) {
      Violation(n.id + " cannot record its identity: " + st.ToString());
      return;
    }
    n.replica = meta.replica;
    n.expect_fresh = false;
  } else {
    if (meta.replica != n.replica) {
      Violation(n.id + " restarted as " + meta.replica.ToString() + ", was " +
                n.replica.ToString());
      return;
    }
    if (!SameApplied(meta.applied, n.durable)) {
      Violation(n.id + " restarted with applied {" + TokenString(meta.applied) +
                "}, but its last commit made {" + TokenString(n.durable) + "} durable");
      return;
    }
  }
  n.durable = meta.applied;
  n.bootstrap_pending = meta.bootstrap_pending;
  n.clock = std::make_unique<crdt::HybridClock>(&n.wall, scenario_.protocol.max_clock_offset_ms);
  gossip::Now now = NowOf(n);
  n.clock->Restore(meta.hlc_bound);
  now.hlc = n.clock->last();
  gossip::Applied applied = meta.applied;
  n.expired_stored = meta.expired;
  n.contact_stored = meta.last_contact_ms;
  n.committer = std::make_unique<node::Committer>(n.store.get(), n.clock.get(), std::move(meta));
  n.committer->SetChangeListener([this, &n](const std::string& key, const std::string& envelope) {
    CheckNotResurrected(n, key, envelope);
  });
  n.view.node = &n;
  gossip::ProtocolOptions po = scenario_.protocol;
  po.anti_entropy.must_bootstrap = n.bootstrap_pending;
  po.expired = n.expired_stored;
  po.last_contact_wall_ms = n.contact_stored;
  // As the transport: the log's first retained seq, from the store.
  if (Status fs = n.store->FirstLogSeq(kScope, &po.log_first_seq); !fs.ok()) {
    Violation(n.id + " cannot read its log: " + fs.ToString());
    return;
  }
  po.self = n.replica;
  po.region = n.region;
  for (const auto& other : nodes_) {
    if (other->index != n.index) po.peers.push_back(gossip::PeerConfig{other->id, other->region});
  }
  n.protocol = std::make_unique<gossip::ScopedProtocol>(
      std::move(po), std::vector<gossip::ScopeConfig>(), std::move(applied), now,
      options_.anti_entropy ? &n.view : nullptr);
  n.up = true;
  n.started = true;
  ++n.gen;
  n.tick_at = kNever;
  n.commit_scheduled = false;
  Trace(n.id + " started as " + n.replica.ToString() + " applied {" + TokenString(n.durable) + "}");
  ScheduleTick(n, false);
}

void Simulation::AddCounters(const SimNode& n) {
  const gossip::ProtocolCounters& c = n.protocol->counters();
  stats_.refused_clock_offset += c.refused_clock_offset;
  stats_.refused_other += c.refused_other;
  stats_.resends += c.resends;
  stats_.deltas_duplicate += c.deltas_duplicate;
  stats_.repairs_below_floor += c.repairs_below_floor;
  stats_.beyond_log += c.beyond_log;
  const gossip::AeCounters ae = n.protocol->ae_counters();
  stats_.ae_rounds_completed += ae.rounds_completed;
  stats_.ae_rounds_abandoned += ae.rounds_abandoned;
  stats_.ae_rounds_declined += ae.rounds_declined;
  stats_.ae_states_received += ae.states_received;
  stats_.conflicts_opened += n.committer->conflict_counts().opened;
  stats_.conflicts_closed += n.committer->conflict_counts().closed;
}

// Tracks since when each node's clock has been more than the limit away
// from most other nodes' clocks (DESIGN.md §3: such a node must stop
// taking writes once it can tell). It can tell only about the peers it
// can reach, and needs heartbeats to learn which those are: when that set
// changes (a partition, a heal, a crash or a restart), the time to notice
// starts again.
void Simulation::UpdateFences() {
  for (auto& n : nodes_) {
    // Only peers it can talk with count: one whose peers are all down is
    // not held.
    int reachable = 0, far = 0;
    uint64_t mask = 0;
    for (const auto& other : nodes_) {
      if (other->index == n->index || !other->up || !net_.Connected(n->index, other->index) ||
          !net_.Connected(other->index, n->index)) {
        continue;
      }
      ++reachable;
      mask |= uint64_t{1} << other->index;
      int64_t d = n->skew_ms - other->skew_ms;
      if (static_cast<uint64_t>(d < 0 ? -d : d) > scenario_.protocol.max_clock_offset_ms) ++far;
    }
    bool beyond = n->up && reachable > 0 && 2 * far > reachable;
    if (!beyond) {
      n->beyond_since = kNever;
    } else if (n->beyond_since == kNever || mask != n->reach_mask) {
      n->beyond_since = now_;
    }
    n->reach_mask = mask;
  }
}

void Simulation::Crash(SimNode& n) {
  if (!n.up) return;
  AddCounters(n);
  ++stats_.crashes;
  Trace(n.id + " CRASH (" + std::to_string(n.pending_writes.size()) + " writes, " +
        std::to_string(n.pending_applies.size()) + " applies in flight)");
  for (int id : n.pending_writes) {
    WriteRecord& w = history_.writes[static_cast<size_t>(id)];
    // With kAckBeforeCommit the client already has its answer.
    if (w.outcome != Outcome::kRefusedSkew) NextOp(w.session);  // (kIgnoreGate went on)
    if (w.outcome == Outcome::kPending) w.outcome = Outcome::kLostInCrash;
    w.done_ms = now_;
  }
  for (int id : n.waiting_reads) {
    PendingRead& r = reads_[static_cast<size_t>(id)];
    if (!r.done) NextOp(r.session);
    r.done = true;
  }
  n.pending_writes.clear();
  n.waiting_reads.clear();
  n.pending_applies.clear();
  n.pending_repairs.clear();
  n.protocol.reset();
  n.committer.reset();
  n.clock.reset();
  n.store.reset();
  n.up = false;
  ++n.gen;
  n.tick_at = kNever;
  n.commit_scheduled = false;
}

// A node may lose its data only once every peer holds its whole log
// durably and nothing of it is in flight (what the chaos nemesis waits
// for): then everything it acknowledged exists elsewhere.
bool Simulation::WipeReady(SimNode& n, std::string* why) {
  if (!n.up) {
    *why = "it is down";
    return false;
  }
  if (!n.pending_writes.empty() || !n.pending_applies.empty() || !n.pending_repairs.empty()) {
    *why = "commits in flight";
    return false;
  }
  const uint64_t last = n.committer->last_seq();
  for (const gossip::PeerStatus& p : n.protocol->Peers(NowOf(n))) {
    if (p.acked < last) {
      *why = p.node + " acknowledged " + std::to_string(p.acked) + " of " + std::to_string(last);
      return false;
    }
  }
  return true;
}

void Simulation::Wipe(SimNode& n, uint64_t downtime_ms) {
  Trace(n.id + " WIPE: its data dir is lost; back in " + std::to_string(downtime_ms) + " ms");
  ++stats_.wipes;
  // WipeReady waits until the peers hold this node's own writes, and every
  // live origin keeps its own; but a retired incarnation's writes that
  // only this node held are gone with it.
  const size_t lost = ForgetWritesHeldOnlyBy(n, /*orphans_only=*/true);
  if (lost > 0) {
    Trace(n.id + " WIPE: " + std::to_string(lost) +
          " keys had writes of a retired incarnation no other node holds");
  }
  LoseData(n, downtime_ms);
}

void Simulation::Rejoin(SimNode& n) {
  // What only this incarnation held goes with its data: every committed
  // write no other node's durable applied vector covers may be lost (or
  // still arrive somewhere by a delta in flight).
  const size_t lost = ForgetWritesHeldOnlyBy(n, /*orphans_only=*/false);
  ++stats_.rejoins;
  Trace(n.id + " REJOIN: a peer retired " + n.replica.ToString() + "; " + std::to_string(lost) +
        " keys had writes no other node holds");
  LoseData(n, Between(rng_, 0, 300));
}

size_t Simulation::ForgetWritesHeldOnlyBy(SimNode& n, bool orphans_only) {
  // An orphan: a write of an incarnation no node runs any more (retired:
  // its own copy went with its data dir).
  auto orphan = [this](const crdt::ReplicaId& writer) {
    auto it = index_of_.find(writer.node);
    if (it == index_of_.end()) return true;
    const SimNode& m = *nodes_[static_cast<size_t>(it->second)];
    return m.replica != writer || m.expect_fresh;  // (a new one is on its way)
  };
  std::set<std::string> lost_keys;
  for (WriteRecord& w : history_.writes) {
    if (!w.committed() || (orphans_only && !orphan(w.writer))) continue;
    bool held = false;
    for (const auto& other : nodes_) {
      if (other.get() == &n) continue;
      auto it = other->durable.find({w.writer, kScope});
      held = held || (it != other->durable.end() && it->second >= w.seq);
    }
    if (held) continue;
    w.outcome = Outcome::kRetired;
    lost_keys.insert(w.key);
    ++stats_.writes_retired;
  }
  // Sessions lose what they saw of those writes: their tokens go back to
  // what the other nodes hold of each origin concerned, and their views of
  // the keys involved are forgotten.
  storage::AppliedVector held_elsewhere;
  for (const auto& other : nodes_) {
    if (other.get() != &n) MaxInto(other->durable, &held_elsewhere);
  }
  for (Session& s : history_.sessions) {
    for (auto& [origin, seq] : s.token) {
      if (orphans_only && !orphan(origin.first)) continue;
      auto it = held_elsewhere.find(origin);
      seq = std::min(seq, it == held_elsewhere.end() ? 0 : it->second);
    }
    for (const std::string& key : lost_keys) {
      s.observed.erase(key);
      s.text_views.erase(key);
    }
  }
  return lost_keys.size();
}

void Simulation::LoseData(SimNode& n, uint64_t downtime_ms) {
  Crash(n);
  std::error_code ec;
  std::filesystem::remove_all(n.dir, ec);
  if (ec) {
    Violation(n.id + ": cannot remove its data dir: " + ec.message());
    return;
  }
  n.expect_fresh = true;
  ++n.wipes;  // (the next incarnation's number)
  n.durable.clear();
  n.last_register_hlc = 0;
  n.deleted.clear();
  n.bootstrap_pending = false;
  n.expired_stored.clear();
  n.contact_stored = 0;
  Event e;
  e.kind = EventKind::kRestartNode;
  e.node = n.index;
  Push(now_ + downtime_ms, std::move(e));
}

// --- Events ------------------------------------------------------------------

void Simulation::Deliver(Event& e) {
  SimNode& n = *nodes_[static_cast<size_t>(e.node)];
  if (!n.up) return;
  if (!net_.Connected(e.from, e.node)) return;  // cut while in flight
  gossip::Message m;
  Status st = gossip::Decode(e.bytes, &m);
  if (!st.ok()) {
    Violation("a frame gossip::Encode made does not decode: " + st.ToString());
    return;
  }
  gossip::Now now = NowOf(n);
  gossip::Effects fx;
  n.protocol->OnMessage(now, m, &fx);
  Execute(n, now, fx);
  if (n.up) ScheduleTick(n, false);
}

void Simulation::Tick(Event& e) {
  SimNode& n = *nodes_[static_cast<size_t>(e.node)];
  if (!n.up || e.gen != n.gen || n.tick_at != now_) return;
  n.tick_at = kNever;
  gossip::Now now = NowOf(n);
  gossip::Effects fx;
  n.protocol->OnTick(now, &fx);
  Execute(n, now, fx);
  if (!stop_ && n.up) Collect(n);
  if (!stop_ && n.up) StoreContact(n);
  ScheduleTick(n, true);
}

// As the transport: the last two-way contact is stored once it moved on
// by a 32nd of the horizon.
void Simulation::StoreContact(SimNode& n) {
  const gossip::HorizonStatus h = n.protocol->Horizon(NowOf(n));
  if (h.horizon_ms == 0 || h.rejoining) return;
  const uint64_t step = std::max<uint64_t>(1, h.horizon_ms / 32);
  if (h.last_contact_wall_ms < n.contact_stored + step) return;
  storage::WriteBatch batch;
  storage::PutLastContact(h.last_contact_wall_ms, &batch);
  if (n.store->Write(&batch).ok()) n.contact_stored = h.last_contact_wall_ms;
}

void Simulation::Collect(SimNode& n) {
  node::CollectResult r;
  n.committer->Collect(n.protocol->Stable(), 64, &r);
  if (!r.status.ok()) {
    Trace(n.id + ": collection failed: " + r.status.ToString());
    return;
  }
  if (r.collected > 0) {
    stats_.tombstones_collected += r.collected;
    Trace(n.id + ": collected " + std::to_string(r.collected) + " tombstone(s)");
  }
}

// Dominates (checker.h), with two allowances that collection (DESIGN.md §4
// "Garbage") makes: a register state that is gone is as new as any
// register seen before, if a delete at least as new was committed (its
// tombstone was collected; CheckNotResurrected sees to it that nothing
// older shows again); and a register is compared by its value and (HLC,
// writer) alone, since a write after the collection starts the key's
// envelope afresh (its type's origin is that write's, not the first
// write's ever).
bool Simulation::ReadDominates(const std::string& key, const std::string& later,
                               const std::string& earlier, std::string* why) const {
  auto register_of = [](const std::string& bytes, crdt::Register* r) {
    crdt::Envelope env;
    return !bytes.empty() && crdt::Envelope::Decode(bytes, &env).ok() && env.entries().size() == 1 &&
           env.winner()->tag == crdt::Register::kTag &&
           crdt::Register::Decode(env.winner()->state, r).ok();
  };
  crdt::Register seen;
  if (register_of(earlier, &seen)) {
    const auto seen_order = std::make_pair(seen.hlc(), seen.writer());
    // A delete seen, nothing now: its tombstone was collected (a delete of
    // a retired incarnation's too, which the history may count as lost).
    if (later.empty() && seen.deleted()) return true;
    if (later.empty()) {
      for (const WriteRecord& w : history_.writes) {
        if (w.key == key && w.kind == WriteKind::kDelete && w.committed() &&
            !(std::make_pair(w.hlc, w.writer) < seen_order)) {
          return true;
        }
      }
    }
    crdt::Register now;
    if (register_of(later, &now)) {
      crdt::Register joined = now;
      joined.Merge(seen);
      if (joined == now) return true;
    }
  }
  return Dominates(later, earlier, why);
}

void Simulation::CheckNotResurrected(SimNode& n, const std::string& key,
                                     const std::string& envelope) {
  crdt::Envelope env;
  if (!crdt::Envelope::Decode(envelope, &env).ok()) return;  // the final checks say why
  const crdt::TypedState* w = env.winner();
  if (w == nullptr || w->tag != crdt::Register::kTag) return;
  crdt::Register r;
  if (!crdt::Register::Decode(w->state, &r).ok() || r.IsBottom()) return;
  const std::pair<crdt::Hlc, crdt::ReplicaId> order{r.hlc(), r.writer()};
  auto it = n.deleted.find(key);
  if (r.deleted()) {
    if (it == n.deleted.end() || it->second < order) n.deleted[key] = order;
  } else if (it != n.deleted.end() && order < it->second) {
    Violation(n.id + ": register " + key + " shows " + r.value() + " written at " +
              crdt::HlcToString(r.hlc()) + " by " + r.writer().ToString() +
              ", older than the delete at " + crdt::HlcToString(it->second.first) + " by " +
              it->second.second.ToString() + " it held: a deleted value came back");
  }
}

// What is queued at a node commits as the Applier would: writes and remote
// deltas as one group, and each anti-entropy repair as a batch of its own,
// before or after the group (both orders happen in a real queue).
void Simulation::CommitGroup(SimNode& n) {
  n.commit_scheduled = false;
  const bool repairs_first = Chance(rng_, 0.5);
  if (repairs_first) CommitRepairs(n);
  if (!stop_ && n.up) CommitWrites(n);
  if (!repairs_first && !stop_ && n.up) CommitRepairs(n);
}

void Simulation::CommitRepairs(SimNode& n) {
  if (n.pending_repairs.empty()) return;
  std::deque<gossip::AeRepair> repairs = std::move(n.pending_repairs);
  n.pending_repairs.clear();
  for (const gossip::AeRepair& rep : repairs) {
    node::StateRepair sr;
    for (const gossip::AeState& s : rep.states) sr.states.emplace_back(s.key, s.envelope);
    sr.has_advance = rep.has_advance;
    sr.advance = rep.advance;
    sr.has_view = true;
    sr.view = rep.view;
    sr.peer_floor = rep.peer_floor;
    node::RepairResult result;
    n.committer->Repair(sr, &result);
    gossip::Now now = NowOf(n);
    gossip::Effects fx;
    if (result.status.ok()) {
      ++stats_.ae_repairs;
      n.durable = n.committer->applied();
      Trace(n.id + ": repaired from " + rep.peer + ": " + std::to_string(result.changed) +
            " keys changed, applied {" + TokenString(n.durable) + "}");
      n.protocol->OnAeRepaired(now, rep, n.durable, &fx);
    } else {
      if (storage::Store::IsNoSpace(result.status)) ++stats_.disk_full_failures;
      Trace(n.id + ": repair from " + rep.peer + " failed: " + result.status.ToString());
      n.protocol->OnAeRepairFailed(now, rep, &fx);
    }
    Execute(n, now, fx);
    if (stop_ || !n.up) return;
  }
  AnswerReads(n);
  ScheduleTick(n, false);
}

void Simulation::CommitWrites(SimNode& n) {
  if (n.pending_writes.empty() && n.pending_applies.empty()) return;
  gossip::Now now = NowOf(n);
  std::vector<int> write_ids = std::move(n.pending_writes);
  std::vector<gossip::ApplyRequest> applies = std::move(n.pending_applies);
  n.pending_writes.clear();
  n.pending_applies.clear();

  std::vector<node::Operation> ops(write_ids.size());
  for (size_t i = 0; i < write_ids.size(); ++i) {
    const WriteRecord& w = history_.writes[static_cast<size_t>(write_ids[i])];
    node::Operation& op = ops[i];
    op.key = w.key;
    switch (w.kind) {
      case WriteKind::kIncrement:
        op.kind = node::Operation::Kind::kCounterAdd;
        op.type = crdt::Counter::kTag;
        op.amount = w.amount;
        break;
      case WriteKind::kSetAdd:
      case WriteKind::kSetRemove:
        op.kind = node::Operation::Kind::kSetUpdate;
        op.type = crdt::Set::kTag;
        (w.kind == WriteKind::kSetAdd ? op.adds : op.removes)
            .push_back(node::ValueToBytes(nlohmann::json(w.element)));
        break;
      case WriteKind::kPut:
        op.kind = node::Operation::Kind::kPut;
        op.type = crdt::Register::kTag;
        op.kv = true;
        op.value = node::ValueToBytes(nlohmann::json(w.value));
        break;
      case WriteKind::kDelete:
        op.kind = node::Operation::Kind::kDelete;
        op.type = crdt::Register::kTag;
        op.kv = true;
        break;
      case WriteKind::kMvPut:
      case WriteKind::kMvResolve:
        op.kind = node::Operation::Kind::kPut;
        op.type = crdt::MvRegister::kTag;
        op.value = node::ValueToBytes(nlohmann::json(w.value));
        if (w.kind == WriteKind::kMvResolve) {
          crdt::CausalContext ctx;
          size_t named = w.covered.size();
          if (options_.sabotage == Sabotage::kResolveMissingDot) --named;
          for (size_t k = 0; k < named; ++k) ctx.Add(w.covered[k]);
          op.context = ctx;
        }
        break;
      case WriteKind::kTextEdit: {
        op.kind = node::Operation::Kind::kTextEdit;
        op.type = crdt::Text::kTag;
        op.text_edits = w.text_ops;
        crdt::TextVersion at;
        Status vs = crdt::TextVersion::Decode(w.text_at, &at);
        if (!vs.ok()) {
          Violation("write #" + std::to_string(w.id) + ": its version does not decode: " +
                    vs.ToString());
          return;
        }
        if (options_.sabotage != Sabotage::kTextIgnoreVersion) op.text_at = std::move(at);
        break;
      }
      case WriteKind::kTextDelete:
        op.kind = node::Operation::Kind::kDelete;
        op.type = crdt::Text::kTag;
        break;
    }
  }
  // The states of the text keys written, as they are before the group: a
  // delete of a whole text removes what its node showed just before it.
  std::map<std::string, std::string> text_state;
  for (int id : write_ids) {
    const WriteRecord& w = history_.writes[static_cast<size_t>(id)];
    if (w.kind != WriteKind::kTextEdit && w.kind != WriteKind::kTextDelete) continue;
    if (text_state.count(w.key)) continue;
    std::string bytes;
    Status gs = n.store->GetState(w.key, &bytes);
    if (!gs.ok() && !gs.IsNotFound()) {
      Violation(n.id + ": reading " + w.key + " failed: " + gs.ToString());
      return;
    }
    text_state[w.key] = gs.ok() ? bytes : std::string();
  }
  std::vector<node::RemoteApply> remotes(applies.size());
  for (size_t i = 0; i < applies.size(); ++i) {
    remotes[i].origin = applies[i].origin;
    remotes[i].scope = applies[i].scope;
    remotes[i].entries = applies[i].entries;
  }
  std::vector<const node::Operation*> op_ptrs;
  for (const auto& op : ops) op_ptrs.push_back(&op);
  std::vector<const node::RemoteApply*> remote_ptrs;
  for (const auto& r : remotes) remote_ptrs.push_back(&r);
  std::vector<node::WriteResult> results;
  std::vector<node::RemoteResult> remote_results;
  const uint64_t seq_before = n.committer->last_seq();
  n.committer->Commit(op_ptrs, &results, remote_ptrs, &remote_results);
  ++stats_.commits;
  // The clock moved: headers stamped from here on must carry at least the
  // HLCs of the deltas just logged (the transport asks the host each step).
  now = NowOf(n);
  if (results.size() != ops.size() || remote_results.size() != remotes.size()) {
    Violation(n.id + ": Commit returned " + std::to_string(results.size()) + "/" +
              std::to_string(remote_results.size()) + " results for " + std::to_string(ops.size()) +
              "/" + std::to_string(remotes.size()) + " items");
    return;
  }
  n.durable = n.committer->applied();
  if (options_.sabotage == Sabotage::kDropConflictEntries) {
    std::vector<storage::Store::KeyValue> entries;
    storage::WriteBatch drop;
    if (n.store->ScanConflicts("", "", std::numeric_limits<size_t>::max(), &entries).ok()) {
      for (const auto& kv : entries) drop.DeleteConflict(kv.key);
    }
    if (!entries.empty() && !n.store->Write(&drop).ok()) Trace(n.id + ": sabotage batch failed");
  }

  // Local writes.
  bool appended = false;
  for (size_t i = 0; i < write_ids.size(); ++i) {
    WriteRecord& w = history_.writes[static_cast<size_t>(write_ids[i])];
    const node::WriteResult& r = results[i];
    const bool refused_by_gate = w.outcome == Outcome::kRefusedSkew;  // kIgnoreGate only
    const bool pre_acked = w.outcome == Outcome::kAcknowledged;       // kAckBeforeCommit only
    w.done_ms = now_;
    if (!refused_by_gate) NextOp(w.session);
    const bool text = w.kind == WriteKind::kTextEdit || w.kind == WriteKind::kTextDelete;
    std::string text_before;
    if (text) {
      text_before = text_state[w.key];
      if (r.ok) text_state[w.key] = r.envelope;
    }
    if (!r.ok) {
      if (r.error.http == 507) ++stats_.disk_full_failures;
      if (!refused_by_gate && !pre_acked) w.outcome = Outcome::kFailed;
      w.error = std::to_string(r.error.http) + " " + r.error.code;
      Trace(n.id + ": write " + w.ToString());
      if (w.kind == WriteKind::kTextEdit && r.error.code != "unknown_version" &&
          r.error.http < 500) {
        // Its positions count what was visible at its version, which its
        // node holds: only a version the node lacks may refuse it.
        Violation(n.id + ": write #" + std::to_string(w.id) + " (" + w.ToString() +
                  ") was refused: " + r.error.message);
        return;
      }
      continue;
    }
    appended = true;
    w.seq = r.seq;
    w.writer = n.replica;
    w.envelope = r.envelope;
    if (r.seq <= seq_before || r.seq > n.committer->last_seq()) {
      Violation(n.id + ": write #" + std::to_string(w.id) + " got seq " + std::to_string(r.seq) +
                " outside the group's " + std::to_string(seq_before + 1) + ".." +
                std::to_string(n.committer->last_seq()));
      return;
    }
    // What the reply's state says about this write.
    crdt::Envelope env;
    Status st = crdt::Envelope::Decode(r.envelope, &env);
    const crdt::TypedState* win = st.ok() ? env.winner() : nullptr;
    std::string why;
    TextView text_next;
    if (win == nullptr) {
      why = "its reply holds no state";
    } else if (text) {
      why = RecordTextWrite(n, r, text_before, &w, &text_next);
    } else if (w.kind == WriteKind::kMvPut || w.kind == WriteKind::kMvResolve) {
      why = RecordMvWrite(n, r, &w);
    } else if (w.kind == WriteKind::kPut || w.kind == WriteKind::kDelete) {
      crdt::Register reg;
      st = crdt::Register::Decode(win->state, &reg);
      if (!st.ok()) {
        why = "its reply holds no register";
      } else {
        w.hlc = reg.hlc();
        nlohmann::json v;
        bool ours = reg.writer() == n.replica &&
                    (w.kind == WriteKind::kDelete
                         ? reg.deleted()
                         : (!reg.deleted() && node::BytesToValue(reg.value(), &v) &&
                            v == nlohmann::json(w.value)));
        if (!ours) {
          why = "the register after it is " + RenderEnvelope(r.envelope) +
                ": a local write must win locally (its HLC exceeds all it has seen)";
        } else if (reg.hlc() <= n.last_register_hlc) {
          why = "its HLC " + crdt::HlcToString(reg.hlc()) + " does not exceed the node's earlier " +
                crdt::HlcToString(n.last_register_hlc);
        }
        n.last_register_hlc = std::max(n.last_register_hlc, reg.hlc());
      }
    } else if (w.kind == WriteKind::kSetAdd || w.kind == WriteKind::kSetRemove) {
      crdt::Set set;
      st = crdt::Set::Decode(win->state, &set);
      std::string elem = node::ValueToBytes(nlohmann::json(w.element));
      if (!st.ok()) {
        why = "its reply holds no set";
      } else if (w.kind == WriteKind::kSetAdd) {
        auto it = set.store().elements.find(elem);
        bool found = false;
        if (it != set.store().elements.end()) {
          for (const crdt::Dot& d : it->second) {
            if (d.replica == n.replica && d.counter > w.dot.counter) {
              w.dot = d;
              found = true;
            }
          }
        }
        if (!found) why = "the added element has no dot of this replica in the reply";
      } else {
        if (set.Contains(elem)) why = "the removed element is still in the reply";
      }
      // What the write takes away from other replicas' states is in its
      // delta's context: read the delta back from the log.
      std::vector<storage::LogEntry> logged;
      Status ls = n.store->ReadLog(kScope, r.seq, 1, &logged);
      crdt::Envelope delta_env;
      crdt::Set delta;
      if (ls.ok() && (logged.size() != 1 || logged[0].seq != r.seq || logged[0].key != w.key)) {
        ls = Status::Corruption("no log entry for it");
      }
      if (ls.ok()) ls = crdt::Envelope::Decode(logged[0].delta, &delta_env);
      if (ls.ok() &&
          (delta_env.winner() == nullptr || delta_env.winner()->tag != crdt::Set::kTag)) {
        ls = Status::Corruption("its logged delta holds no set");
      }
      if (ls.ok()) ls = crdt::Set::Decode(delta_env.winner()->state, &delta);
      if (!ls.ok()) {
        why = "its delta-log entry " + std::to_string(r.seq) + ": " + ls.ToString();
      } else {
        w.context = delta.context();
        if (w.kind == WriteKind::kSetAdd && why.empty() &&
            (!delta.Contains(elem) || !w.context.Contains(w.dot))) {
          why = "its logged delta does not add the element with dot " + w.dot.ToString();
        }
      }
    }
    if (!why.empty()) {
      Violation(n.id + ": write #" + std::to_string(w.id) + " (" + WriteKindName(w.kind) + " " +
                w.key + "): " + why);
      return;
    }
    if (refused_by_gate || pre_acked) {
      // Sabotage: the record keeps what the client was told.
    } else if (Chance(rng_, scenario_.reply_loss)) {
      w.outcome = Outcome::kReplyLost;
    } else {
      w.outcome = Outcome::kAcknowledged;
      // Time to notice: fresh clock samples every heartbeat, an old one
      // kept while it has the smallest round trip, and slack for delays.
      // With delay spikes, a message a crashed or cut-off peer sent before
      // may arrive up to a spike later and make that peer look up (and in
      // range) until it is suspect again: that long more.
      uint64_t grace =
          scenario_.protocol.heartbeat_interval_ms * (scenario_.protocol.clock_samples_kept + 2) +
          500;
      if (scenario_.faulty.spike > 0) {
        grace += scenario_.faulty.spike_max_ms +
                 scenario_.protocol.heartbeat_interval_ms * scenario_.protocol.suspect_after_missed;
      }
      if (n.beyond_since != kNever && now_ - n.beyond_since > grace) {
        ++stats_.acked_while_skewed;
        std::string what = n.id + " acknowledged write #" + std::to_string(w.id) +
                           " although its clock has been more than max_clock_offset_ms off "
                           "from most peers' it can reach (the same ones throughout) for " +
                           std::to_string(now_ - n.beyond_since) + " ms (skew " +
                           std::to_string(n.skew_ms) + " ms)";
        if (options_.strict_gate) {
          Violation(what);
          return;
        }
        Trace(what);
      }
      Session& s = history_.sessions[static_cast<size_t>(w.session)];
      storage::AppliedVector token;
      if (!node::ParseSessionToken(r.session_token, &token)) {
        Violation(n.id + ": write reply's session token '" + r.session_token + "' does not parse");
        return;
      }
      MaxInto(token, &s.token);
      // An editor goes on from the text it now shows.
      if (!text_next.version.empty()) SeeText(s, w.key, std::move(text_next));
      // A write does not wait for the session's token (no writes-follow-
      // reads), so its reply need not include what the session saw: the
      // session has now seen the join of both, and later reads must cover it.
      std::string& seen = s.observed[w.key];
      if (seen.empty()) {
        seen = r.envelope;
      } else {
        crdt::Envelope joined, mine;
        Status js = crdt::Envelope::Decode(seen, &joined);
        if (js.ok()) js = crdt::Envelope::Decode(r.envelope, &mine);
        if (js.ok()) js = joined.Merge(mine, nullptr);
        if (!js.ok()) {
          Violation(n.id + ": write reply state does not merge: " + js.ToString());
          return;
        }
        seen = joined.Encode();
      }
    }
    Trace(n.id + ": write " + w.ToString());
  }

  // Remote deltas.
  for (size_t i = 0; i < applies.size(); ++i) {
    const gossip::ApplyRequest& req = applies[i];
    const node::RemoteResult& rr = remote_results[i];
    Trace(n.id + ": applied " + req.origin.ToString() + " " +
          std::to_string(req.entries.front().seq) + ".." + std::to_string(req.entries.back().seq) +
          " -> durable " + std::to_string(rr.last_durable) +
          (rr.status.ok() ? "" : " (" + rr.status.ToString() + ")"));
    gossip::Effects fx;
    if (rr.status.ok()) {
      n.protocol->OnApplied(now, req.origin, req.scope, rr.last_durable, &fx);
    } else {
      if (rr.last_durable >= req.entries.front().seq) {
        n.protocol->OnApplied(now, req.origin, req.scope, rr.last_durable, &fx);
        Execute(n, now, fx);
        if (stop_) return;
        fx.Clear();
      }
      n.protocol->OnApplyFailed(now, req.origin, req.scope, &fx);
    }
    Execute(n, now, fx);
    if (stop_) return;
  }
  if (appended) {
    gossip::Effects fx;
    n.protocol->OnLocalAppend(now, kScope, n.committer->last_seq(), n.committer->last_log_bytes(),
                              &fx);
    Execute(n, now, fx);
    if (stop_) return;
    CheckRegionsHolding(n);
  }
  AnswerReads(n);
  ScheduleTick(n, false);
}

// RegionsHolding (w=N) may never claim more than is true: count the regions
// with a node whose durable applied vector holds n's log up to its end.
void Simulation::CheckRegionsHolding(SimNode& n) {
  const uint64_t seq = n.committer->last_seq();
  if (seq == 0) return;
  size_t claimed = n.protocol->RegionsHolding(kScope, seq);
  std::set<std::string> holding;
  for (const auto& other : nodes_) {
    auto it = other->durable.find({n.replica, kScope});
    if (it != other->durable.end() && it->second >= seq) holding.insert(other->region);
  }
  if (claimed > holding.size()) {
    Violation(n.id + ": RegionsHolding(" + std::to_string(seq) + ") = " + std::to_string(claimed) +
              ", but only " + std::to_string(holding.size()) + " regions hold it durably");
  }
}

// A session is one sequential client: its next operation starts a think
// time after the previous one finished (answered, refused, failed or cut
// off by a crash), and none starts after the fault phase.
void Simulation::NextOp(int session_id) {
  uint64_t think = Between(rng_, scenario_.think_min_ms, scenario_.think_max_ms);
  // Text sessions think twice as long: they add about what an mvregister
  // session adds to a run's commits, and so to its time.
  if (session_id >= scenario_.sessions + scenario_.mv_sessions) think *= 2;
  uint64_t t = now_ + think;
  if (t >= scenario_.fault_ms) return;
  Event next;
  next.kind = EventKind::kClient;
  next.index = session_id;
  Push(t, std::move(next));
}

void Simulation::ClientOp(int session_id) {
  Session& s = history_.sessions[static_cast<size_t>(session_id)];
  // Sessions past scenario_.sessions work on the mvregister keys alone,
  // and hop between nodes more (their writes then race one another); the
  // text sessions come last, and hop as much.
  const bool text = session_id >= scenario_.sessions + scenario_.mv_sessions;
  const bool mv = !text && session_id >= scenario_.sessions;
  int node_index =
      Chance(rng_, mv || text ? 0.3 : 0.6) ? s.home
                                           : static_cast<int>(Between(rng_, 0, scenario_.n - 1));
  SimNode& n = *nodes_[static_cast<size_t>(node_index)];

  if (Chance(rng_, 0.35)) {  // a session read
    std::vector<std::string> keys = text ? TextKeys() : mv ? MvRegisterKeys() : CounterKeys();
    if (!mv && !text) {
      keys.insert(keys.end(), SetKeys().begin(), SetKeys().end());
      keys.insert(keys.end(), RegisterKeys().begin(), RegisterKeys().end());
    }
    ++s.reads;
    if (!n.up) {
      NextOp(session_id);
      return;
    }
    PendingRead r;
    r.id = static_cast<int>(reads_.size());
    r.session = session_id;
    r.node = node_index;
    r.key = Pick(rng_, keys);
    r.token = s.token;
    r.deadline = now_ + scenario_.read_timeout_ms;
    reads_.push_back(r);
    n.waiting_reads.push_back(r.id);
    Event dl;
    dl.kind = EventKind::kReadDeadline;
    dl.index = r.id;
    Push(r.deadline, std::move(dl));
    AnswerReads(n);
    return;
  }

  WriteRecord w;
  w.id = static_cast<int>(history_.writes.size());
  w.session = session_id;
  w.node = node_index;
  w.submitted_ms = now_;
  int type = text ? 4 : mv ? 3 : static_cast<int>(Between(rng_, 0, 2));
  if (type == 4) {
    w.kind = WriteKind::kTextEdit;
    w.key = Pick(rng_, TextKeys());
    if (n.up) DrawTextWrite(n, s, &w);
    if (stop_) return;
  } else if (type == 3) {
    w.kind = WriteKind::kMvPut;
    w.key = Pick(rng_, MvRegisterKeys());
    w.value = "v" + std::to_string(w.id) + "-s" + std::to_string(session_id);
    if (n.up) DrawMvWrite(n, &w);
    if (stop_) return;
  } else if (type == 0) {
    w.kind = WriteKind::kIncrement;
    w.key = Pick(rng_, CounterKeys());
    w.amount = static_cast<int64_t>(Between(rng_, 1, 5));
  } else if (type == 1) {
    w.kind = Chance(rng_, 0.65) ? WriteKind::kSetAdd : WriteKind::kSetRemove;
    w.key = Pick(rng_, SetKeys());
    w.element = "e" + std::to_string(Between(rng_, 0, 4));
  } else {
    w.kind = Chance(rng_, 0.9) ? WriteKind::kPut : WriteKind::kDelete;
    w.key = Pick(rng_, RegisterKeys());
    w.value = "v" + std::to_string(w.id) + "-s" + std::to_string(session_id);
  }
  if (!n.up) {
    w.outcome = Outcome::kUnavailable;
    history_.writes.push_back(std::move(w));
    NextOp(session_id);
    return;
  }
  const gossip::WriteGate gate =
      options_.sabotage == Sabotage::kSkipGate ? gossip::WriteGate() : n.protocol->Gate();
  if (!gate.ok) {
    w.outcome = Outcome::kRefusedSkew;
    w.error = gate.code;
    if (gate.code != "clock_skew" && gate.code != "bootstrapping" &&
        gate.code != "beyond_horizon" && gate.code != "rejoining") {
      Violation(n.id + ": the gate refused a write with code '" + gate.code +
                "', expected clock_skew, bootstrapping, beyond_horizon or rejoining");
    }
    if (gate.code == "bootstrapping" && !n.bootstrap_pending) {
      Violation(n.id + ": the gate says bootstrapping, but the node's incarnation bootstrapped");
    }
    Trace(n.id + ": write #" + std::to_string(w.id) + " refused: " + gate.message);
    history_.writes.push_back(std::move(w));
    NextOp(session_id);
    if (options_.sabotage != Sabotage::kIgnoreGate) return;
  } else {
    if (options_.sabotage == Sabotage::kAckBeforeCommit) w.outcome = Outcome::kAcknowledged;
    history_.writes.push_back(std::move(w));
  }
  n.pending_writes.push_back(static_cast<int>(history_.writes.size() - 1));
  ScheduleCommit(n);
}

void Simulation::DrawMvWrite(SimNode& n, WriteRecord* w) {
  // What the node's review queue shows for the key, read as the API reads
  // it (GET /v1/conflicts/{key}): the index entry, then the state. Both
  // come from one batch, so they agree at every moment.
  std::string index_entry, bytes;
  Status ist = n.store->GetConflict(w->key, &index_entry);
  Status sst = n.store->GetState(w->key, &bytes);
  if ((!ist.ok() && !ist.IsNotFound()) || (!sst.ok() && !sst.IsNotFound())) {
    Violation(n.id + ": reading " + w->key + "'s conflict entry and state failed: " +
              (ist.ok() || ist.IsNotFound() ? sst : ist).ToString());
    return;
  }
  crdt::Envelope env;
  if (sst.ok()) {
    Status ds = crdt::Envelope::DecodeStored(bytes, &env);
    if (!ds.ok()) {
      Violation(n.id + ": the state of " + w->key + " does not decode: " + ds.ToString());
      return;
    }
  }
  const bool conflicted = sst.ok() && conflict::HoldsConflict(env);
  if (conflicted != ist.ok()) {
    Violation(n.id + ": " + w->key + " is " + RenderEnvelope(bytes) +
              (conflicted ? ", a conflict, but has no conflict index entry"
                          : ", no conflict, but has a conflict index entry"));
    return;
  }
  if (!Chance(rng_, scenario_.resolve_chance) || !conflicted) return;  // a plain write
  conflict::ConflictEntry ce;
  nlohmann::json entry;
  crdt::CausalContext shown;
  Status es = conflict::DecodeConflictEntry(index_entry, &ce);
  if (!es.ok() || !node::ReviewEntry(w->key, env, ce.detected_ms, review_.get(), &entry, &shown)) {
    Violation(n.id + ": " + w->key + " is conflicted (" + RenderEnvelope(bytes) +
              ") but not in the review queue" + (es.ok() ? "" : ": " + es.ToString()));
    return;
  }
  crdt::MvRegister reg;
  Status rs = env.winner()->tag == crdt::MvRegister::kTag
                  ? crdt::MvRegister::Decode(env.winner()->state, &reg)
                  : Status::Corruption("not an mvregister");
  crdt::CausalContext all;
  std::vector<crdt::Dot> dots;
  for (const auto& [dot, tv] : reg.siblings()) {
    all.Add(dot);
    dots.push_back(dot);
  }
  if (!rs.ok() || shown != all) {
    Violation(n.id + ": the review queue shows " + w->key + " with context " + shown.ToString() +
              ", but its siblings are " + RenderEnvelope(bytes));
    return;
  }
  w->kind = WriteKind::kMvResolve;
  w->covered = std::move(dots);
}

std::string Simulation::RecordMvWrite(SimNode& n, const node::WriteResult& r, WriteRecord* w) {
  crdt::Envelope env;
  crdt::MvRegister reply;
  Status st = crdt::Envelope::Decode(r.envelope, &env);
  if (st.ok() && (env.winner() == nullptr || env.winner()->tag != crdt::MvRegister::kTag)) {
    st = Status::Corruption("no mvregister");
  }
  if (st.ok()) st = crdt::MvRegister::Decode(env.winner()->state, &reply);
  if (!st.ok()) return "its reply: " + st.ToString();
  // Its dot and what it supersedes are in its delta: read it back.
  std::vector<storage::LogEntry> logged;
  crdt::Envelope delta_env;
  crdt::MvRegister delta;
  st = n.store->ReadLog(kScope, r.seq, 1, &logged);
  if (st.ok() && (logged.size() != 1 || logged[0].seq != r.seq || logged[0].key != w->key)) {
    st = Status::Corruption("no log entry for it");
  }
  if (st.ok()) st = crdt::Envelope::Decode(logged[0].delta, &delta_env);
  if (st.ok() &&
      (delta_env.winner() == nullptr || delta_env.winner()->tag != crdt::MvRegister::kTag)) {
    st = Status::Corruption("its logged delta holds no mvregister");
  }
  if (st.ok()) st = crdt::MvRegister::Decode(delta_env.winner()->state, &delta);
  if (!st.ok()) return "its delta-log entry " + std::to_string(r.seq) + ": " + st.ToString();
  if (delta.siblings().size() != 1) {
    return "its logged delta holds " + std::to_string(delta.siblings().size()) +
           " siblings, not its own one";
  }
  const auto& [dot, tv] = *delta.siblings().begin();
  w->dot = dot;
  w->hlc = tv.hlc;
  w->context = delta.context();
  const std::string bytes = node::ValueToBytes(nlohmann::json(w->value));
  if (dot.replica != n.replica || tv.value != bytes || !w->context.Contains(dot)) {
    return "its logged delta " + RenderEnvelope(logged[0].delta) +
           " is not its value with a dot of " + n.replica.ToString();
  }
  auto mine = reply.siblings().find(dot);
  if (mine == reply.siblings().end() || mine->second.value != bytes) {
    return "its reply " + RenderEnvelope(r.envelope) + " lacks its own sibling " + dot.ToString();
  }
  if (w->kind == WriteKind::kMvPut && reply.siblings().size() != 1) {
    return "its reply " + RenderEnvelope(r.envelope) +
           " holds other siblings: a write without a context supersedes all its node holds";
  }
  if (w->kind == WriteKind::kMvResolve) {
    // A resolution supersedes what it named and nothing else: a write
    // concurrent with it stays a sibling (DESIGN.md §5).
    crdt::CausalContext allowed;
    for (const crdt::Dot& d : w->covered) allowed.Add(d);
    allowed.Add(dot);
    if (!allowed.Covers(w->context)) {
      return "the resolution's delta supersedes " + w->context.ToString() +
             ", more than the siblings it named and its own dot " + allowed.ToString();
    }
  }
  for (const crdt::Dot& d : w->covered) {
    if (reply.siblings().count(d)) {
      return "the resolution's reply " + RenderEnvelope(r.envelope) + " still holds sibling " +
             d.ToString() + " it named";
    }
  }
  return "";
}

void Simulation::SeeText(Session& s, const std::string& key, TextView view) {
  std::vector<TextView>& views = s.text_views[key];
  if (!views.empty() && views.back().version == view.version) return;
  views.push_back(std::move(view));
  if (views.size() > 4) views.erase(views.begin());
}

void Simulation::DrawTextWrite(SimNode& n, Session& s, WriteRecord* w) {
  if (Chance(rng_, 0.03)) {
    w->kind = WriteKind::kTextDelete;
    return;
  }
  // The version to edit at: an older one the session saw, or the text as
  // the node shows it now (as GET /v1/text/{key} would).
  TextView view;
  const std::vector<TextView>& seen = s.text_views[w->key];
  if (!seen.empty() && Chance(rng_, scenario_.text_old_chance)) {
    view = seen[Between(rng_, 0, seen.size() - 1)];
  } else {
    std::string bytes;
    Status st = n.store->GetState(w->key, &bytes);
    crdt::Text t;
    if (st.ok()) {
      crdt::Envelope env;
      st = crdt::Envelope::DecodeStored(bytes, &env);
      const crdt::TypedState* win = st.ok() ? env.winner() : nullptr;
      if (st.ok() && win != nullptr) {
        st = win->tag == crdt::Text::kTag ? crdt::Text::Decode(win->state, &t)
                                          : Status::Corruption("not a text");
      }
    } else if (st.IsNotFound()) {
      st = Status::OK();
    }
    if (!st.ok()) {
      Violation(n.id + ": reading text " + w->key + " failed: " + st.ToString());
      return;
    }
    view.version = t.version().Encode();
    view.chars = TextChars(t.Content());
    SeeText(s, w->key, view);
  }
  w->text_at = view.version;
  std::vector<uint32_t> cur = view.chars;
  const int ops = static_cast<int>(Between(rng_, 1, 3));
  for (int k = 0; k < ops; ++k) {
    crdt::TextEdit e;
    if (cur.empty() || Chance(rng_, 0.65)) {
      e.insert = true;
      e.pos = Between(rng_, 0, cur.size());
      std::vector<uint32_t> typed;
      const uint64_t count = Between(rng_, 1, 4);
      for (uint64_t j = 0; j < count; ++j) typed.push_back(TextCharOf(next_char_++));
      e.text = TextUtf8(typed);
      cur.insert(cur.begin() + static_cast<long>(e.pos), typed.begin(), typed.end());
      w->typed.insert(w->typed.end(), typed.begin(), typed.end());
    } else {
      e.insert = false;
      e.pos = Between(rng_, 0, cur.size() - 1);
      e.len = Between(rng_, 1, std::min<uint64_t>(3, cur.size() - e.pos));
      const auto from = cur.begin() + static_cast<long>(e.pos);
      w->removed.insert(w->removed.end(), from, from + static_cast<long>(e.len));
      cur.erase(from, from + static_cast<long>(e.len));
    }
    w->text_ops.push_back(std::move(e));
  }
  w->expected = std::move(cur);
}

std::string Simulation::RecordTextWrite(SimNode& n, const node::WriteResult& r,
                                        const std::string& before, WriteRecord* w,
                                        TextView* next) {
  auto decode = [](const std::string& envelope, crdt::Text* out) {
    *out = crdt::Text();
    if (envelope.empty()) return Status::OK();
    crdt::Envelope env;
    Status st = crdt::Envelope::Decode(envelope, &env);
    if (st.ok() && (env.winner() == nullptr || env.winner()->tag != crdt::Text::kTag)) {
      st = Status::Corruption("no text");
    }
    if (st.ok()) st = crdt::Text::Decode(env.winner()->state, out);
    return st;
  };
  crdt::Text reply, prior;
  Status st = decode(r.envelope, &reply);
  if (!st.ok()) return "its reply: " + st.ToString();
  st = decode(before, &prior);
  if (!st.ok()) return "the state before it: " + st.ToString();
  w->reply_text = TextChars(reply.Content());
  std::set<uint32_t> shown(w->reply_text.begin(), w->reply_text.end());
  if (w->kind == WriteKind::kTextDelete) {
    w->removed = TextChars(prior.Content());
    if (!shown.empty()) {
      return "its reply still shows " + RenderChars(w->reply_text) +
             " after a delete of the whole text";
    }
  } else {
    for (uint32_t c : w->typed) {
      if (!shown.count(c) &&
          std::find(w->removed.begin(), w->removed.end(), c) == w->removed.end()) {
        return "its reply " + RenderChars(w->reply_text) + " lacks " +
               RenderChars({c}) + ", which it typed";
      }
    }
    for (uint32_t c : w->removed) {
      if (shown.count(c)) {
        return "its reply " + RenderChars(w->reply_text) + " still shows " + RenderChars({c}) +
               ", which it deleted";
      }
    }
    // What its writer expects to see, in the reply's order: the reply may
    // hold more (edits its version did not have) and less (characters such
    // edits deleted), never another order.
    std::map<uint32_t, size_t> at;
    for (size_t i = 0; i < w->reply_text.size(); ++i) at[w->reply_text[i]] = i;
    size_t last = 0;
    bool first = true;
    for (uint32_t c : w->expected) {
      auto it = at.find(c);
      if (it == at.end()) continue;
      if (!first && it->second < last) {
        return "its reply " + RenderChars(w->reply_text) + " is not what its edits at its " +
               "version give, " + RenderChars(w->expected) + ", in order (" + RenderChars({c}) +
               " moved)";
      }
      first = false;
      last = it->second;
    }
  }
  // Its delta (logged, and shipped to peers) decodes, and holds only this
  // node's dots.
  std::vector<storage::LogEntry> logged;
  crdt::Text delta;
  st = n.store->ReadLog(kScope, r.seq, 1, &logged);
  if (st.ok() && (logged.size() != 1 || logged[0].seq != r.seq || logged[0].key != w->key)) {
    st = Status::Corruption("no log entry for it");
  }
  if (st.ok()) st = decode(logged[0].delta, &delta);
  if (!st.ok()) return "its delta-log entry " + std::to_string(r.seq) + ": " + st.ToString();
  const crdt::TextVersion delta_version = delta.version();
  for (const auto& [replica, ranges] : delta_version.ranges()) {
    if (replica != n.replica) {
      return "its delta's version " + delta_version.ToString() + " names " +
             replica.ToString() + ", not only this node's " + n.replica.ToString();
    }
  }
  // Its dots: this node's next ones when it ran (a node's own dots come
  // one after another, and the group's remote deltas come after its local
  // writes). Its writer goes on at the version it wrote at with them.
  const crdt::TextVersion prior_version = prior.version(), reply_version = reply.version();
  const uint64_t lo = prior_version.Next(n.replica), hi = reply_version.Next(n.replica);
  if (hi <= lo) {
    return "its reply's version " + reply_version.ToString() + " has no new dot of " +
           n.replica.ToString() + " beyond " + prior_version.ToString();
  }
  w->text_lo = lo;
  w->text_hi = hi;
  if (w->kind == WriteKind::kTextEdit) {
    crdt::TextVersion v;
    st = crdt::TextVersion::Decode(w->text_at, &v);
    if (!st.ok()) return "its version: " + st.ToString();
    v.Add(n.replica, lo, hi);
    next->version = v.Encode();
    next->chars = w->expected;
  }
  return "";
}

void Simulation::AnswerReads(SimNode& n) {
  if (!n.up || n.waiting_reads.empty()) return;
  std::vector<int> still;
  for (int id : n.waiting_reads) {
    PendingRead& r = reads_[static_cast<size_t>(id)];
    if (r.done) continue;
    uint64_t behind = 0;
    if (options_.sabotage == Sabotage::kReadWithoutWaiting ||
        node::Covers(n.committer->applied(), r.token, &behind)) {
      FinishRead(r, n);
      if (stop_) return;
    } else {
      still.push_back(id);
    }
  }
  n.waiting_reads = std::move(still);
}

void Simulation::FinishRead(PendingRead& r, SimNode& n) {
  r.done = true;
  NextOp(r.session);
  Session& s = history_.sessions[static_cast<size_t>(r.session)];
  std::string env;
  Status st = n.store->GetState(r.key, &env);
  if (!st.ok() && !st.IsNotFound()) {
    Violation(n.id + ": read of " + r.key + " failed: " + st.ToString());
    return;
  }
  if (st.IsNotFound()) env.clear();
  ++s.reads_answered;
  ++stats_.reads_answered;
  std::string why;
  std::string& seen = s.observed[r.key];
  Trace(n.id + ": s" + std::to_string(s.id) + " reads " + r.key + " = " + RenderEnvelope(env));
  if (!ReadDominates(r.key, env, seen, &why)) {
    Violation("session s" + std::to_string(s.id) + " read " + r.key + " at " + n.id +
              " with token {" + TokenString(r.token) + "} (node applied {" +
              TokenString(n.committer->applied()) + "}) and went backwards: " + why);
    return;
  }
  seen = env;
  if (std::find(TextKeys().begin(), TextKeys().end(), r.key) != TextKeys().end()) {
    // A text read is a version to edit at, too.
    crdt::Envelope e;
    crdt::Text t;
    if (!env.empty() && crdt::Envelope::Decode(env, &e).ok() && e.winner() != nullptr &&
        e.winner()->tag == crdt::Text::kTag && crdt::Text::Decode(e.winner()->state, &t).ok()) {
      SeeText(s, r.key, TextView{t.version().Encode(), TextChars(t.Content())});
    }
  }
  MaxInto(n.committer->applied(), &s.token);
}

void Simulation::Fault(const FaultEvent& f) {
  using K = FaultEvent::Kind;
  switch (f.kind) {
    case K::kPartition:
      ++stats_.partitions;
      net_.Apply(f.partition);
      UpdateFences();
      Trace("PARTITION " + f.partition.description);
      break;
    case K::kHealNetwork:
      net_.Heal();
      UpdateFences();
      Trace("network healed");
      break;
    case K::kCrash:
      Crash(*nodes_[static_cast<size_t>(f.node)]);
      UpdateFences();
      break;
    case K::kRestart:
      Start(*nodes_[static_cast<size_t>(f.node)]);
      UpdateFences();
      break;
    case K::kSkew:
      nodes_[static_cast<size_t>(f.node)]->skew_ms = f.value;
      UpdateFences();
      Trace("n" + std::to_string(f.node) + " clock skew now " + std::to_string(f.value) + " ms");
      break;
    case K::kWipe: {
      SimNode& n = *nodes_[static_cast<size_t>(f.node)];
      std::string why;
      if (!options_.anti_entropy) {
        // Without anti-entropy a new incarnation is never refilled with
        // what the others hold of its predecessor's peers' old writes.
        Trace(n.id + ": wipe skipped: anti-entropy is off");
      } else if (WipeReady(n, &why)) {
        Wipe(n, static_cast<uint64_t>(f.value));
        UpdateFences();
      } else if (now_ + 250 < scenario_.fault_ms) {
        Event again;  // the same fault, a little later
        again.kind = EventKind::kFault;
        again.index = static_cast<int>(&f - scenario_.faults.data());
        Push(now_ + 50, std::move(again));
      } else {
        Trace(n.id + ": wipe given up: " + why);
      }
      break;
    }
    case K::kDiskFull: {
      SimNode& n = *nodes_[static_cast<size_t>(f.node)];
      if (n.up) {
        n.store->TEST_FailWritesWithNoSpace(static_cast<int>(f.value));
        Trace(n.id + ": disk full for the next " + std::to_string(f.value) + " writes");
      }
      break;
    }
  }
}

void Simulation::Heal() {
  healed_ = true;
  net_.Heal();
  net_.SetQuality(scenario_.clean);
  for (auto& n : nodes_) {
    n->skew_ms = scenario_.healed_skew[static_cast<size_t>(n->index)];
    if (!n->up) Start(*n);
  }
  UpdateFences();
  Trace("HEAL: network whole and clean, every node up, skews within the limit");
}

bool Simulation::Quiescent(std::string* why) {
  const SimNode& first = *nodes_[0];
  for (const auto& n : nodes_) {
    if (!n->up) {
      *why = n->id + " is down";
      return false;
    }
    if (!n->pending_applies.empty() || !n->pending_writes.empty() ||
        !n->pending_repairs.empty()) {
      *why = n->id + " has commits in flight";
      return false;
    }
    if (!SameApplied(n->committer->applied(), first.committer->applied())) {
      *why = n->id + " applied {" + TokenString(n->committer->applied()) + "} but " + first.id +
             " {" + TokenString(first.committer->applied()) + "}";
      return false;
    }
    const uint64_t last = n->committer->last_seq();
    gossip::Now now = NowOf(*n);
    for (const gossip::PeerStatus& p : n->protocol->Peers(now)) {
      if (p.acked != last) {
        *why = p.node + " acknowledged " + std::to_string(p.acked) + " of " + n->id + "'s " +
               std::to_string(last) + " (state " + gossip::PeerStateName(p.state) +
               (p.welcomed ? ", welcomed" : ", not welcomed") + ")";
        return false;
      }
    }
    gossip::WriteGate gate = n->protocol->Gate();
    if (!gate.ok) {
      *why = n->id + " still refuses writes: " + gate.message;
      return false;
    }
    // A write to a key whose tombstone some replicas had collected and
    // others not yet starts a fresh envelope at the former (its type's
    // origin is that write's): anti-entropy joins the two (the smaller
    // origin wins) after the fact.
    if (n->committer->digest_sums().Total() != first.committer->digest_sums().Total()) {
      *why = n->id + "'s state digest differs from " + first.id + "'s (anti-entropy ready:";
      for (const gossip::PeerStatus& p : n->protocol->Peers(NowOf(*n))) {
        *why += " " + p.node + "=" + (p.ae_ready ? "yes" : "no") + "/behind " +
                std::to_string(p.behind) + "/acked " + std::to_string(p.acked);
      }
      *why += ")";
      return false;
    }
    // Every tombstone is stable once all is applied everywhere: collected.
    std::vector<storage::GcCandidate> left;
    Status gs = n->store->ScanGcCandidates("", 1, &left);
    if (!gs.ok() || !left.empty()) {
      *why = n->id + (gs.ok() ? " still holds the tombstone of " + left[0].key + " (writer " +
                                    left[0].writer.ToString() + " seq " +
                                    std::to_string(left[0].seq) + ")"
                              : " cannot scan its collection candidates: " + gs.ToString());
      return false;
    }
  }
  return true;
}

std::string Simulation::KeyHistory(const std::set<std::string>& keys) const {
  std::ostringstream o;
  for (const std::string& key : keys) {
    o << "  writes to " << key << ":\n";
    int shown = 0;
    for (const WriteRecord& w : history_.writes) {
      if (w.key != key) continue;
      if (++shown > 60) {
        o << "    ...\n";
        break;
      }
      o << "    " << w.ToString() << "\n";
    }
  }
  return o.str();
}

SeedReport Simulation::Run() {
  SeedReport report;
  report.seed = seed_;
  report.scenario = scenario_.Describe();
  std::error_code ec;
  std::filesystem::create_directories(options_.root, ec);

  for (int i = 0; i < scenario_.n; ++i) {
    auto n = std::make_unique<SimNode>();
    n->index = i;
    n->id = scenario_.ids[static_cast<size_t>(i)];
    n->region = scenario_.regions[static_cast<size_t>(i)];
    n->dir = options_.root + "/" + n->id;
    n->mono_base = Between(rng_, 1000, 1'000'000'000);
    n->skew_ms = scenario_.skew[static_cast<size_t>(i)];
    index_of_[n->id] = i;
    nodes_.push_back(std::move(n));
  }
  for (auto& n : nodes_) Start(*n);
  UpdateFences();
  net_.SetQuality(scenario_.faulty);
  std::map<std::string, std::string> region_of;
  for (int i = 0; i < scenario_.n; ++i) {
    region_of[scenario_.ids[static_cast<size_t>(i)]] = scenario_.regions[static_cast<size_t>(i)];
  }
  review_ = MakeReviewSettler(region_of);
  if (review_ == nullptr) Violation("the review policy does not build");
  for (int s = 0; s < scenario_.sessions + scenario_.mv_sessions + scenario_.text_sessions; ++s) {
    Session session;
    session.id = s;
    session.home = static_cast<int>(Between(rng_, 0, scenario_.n - 1));
    history_.sessions.push_back(session);
    Event e;
    e.kind = EventKind::kClient;
    e.index = s;
    Push(Between(rng_, 0, 300), std::move(e));
  }
  for (size_t i = 0; i < scenario_.faults.size(); ++i) {
    Event e;
    e.kind = EventKind::kFault;
    e.index = static_cast<int>(i);
    Push(scenario_.faults[i].t, std::move(e));
  }
  Event heal;
  heal.kind = EventKind::kHeal;
  Push(scenario_.fault_ms, std::move(heal));

  std::string not_quiet;
  while (!queue_.empty() && !stop_ && !quiesced_) {
    auto it = queue_.begin();
    now_ = it->first.first;
    Event e = std::move(it->second);
    queue_.erase(it);
    if (++stats_.events > kMaxEvents) {
      Violation("more than " + std::to_string(kMaxEvents) + " events: the run does not settle");
      break;
    }
    fingerprint_ = Mix(fingerprint_, now_);
    fingerprint_ =
        Mix(fingerprint_, static_cast<uint64_t>(e.kind) * 64 + static_cast<uint64_t>(e.node + 1));
    if (!e.bytes.empty()) fingerprint_ = Mix(fingerprint_, HashBytes(e.bytes));
    switch (e.kind) {
      case EventKind::kDeliver:
        Deliver(e);
        break;
      case EventKind::kTick:
        Tick(e);
        break;
      case EventKind::kCommit: {
        SimNode& n = *nodes_[static_cast<size_t>(e.node)];
        if (n.up && e.gen == n.gen) CommitGroup(n);
        break;
      }
      case EventKind::kClient:
        ClientOp(e.index);
        break;
      case EventKind::kReadDeadline: {
        PendingRead& r = reads_[static_cast<size_t>(e.index)];
        if (!r.done) {
          r.done = true;
          NextOp(r.session);
          ++history_.sessions[static_cast<size_t>(r.session)].reads_timed_out;
          ++stats_.reads_timed_out;
          Trace("n" + std::to_string(r.node) + ": s" + std::to_string(r.session) + " read of " +
                r.key + " timed out waiting for {" + TokenString(r.token) + "}");
        }
        break;
      }
      case EventKind::kFault:
        Fault(scenario_.faults[static_cast<size_t>(e.index)]);
        break;
      case EventKind::kRejoin: {
        SimNode& n = *nodes_[static_cast<size_t>(e.node)];
        if (n.up && e.gen == n.gen) {
          Rejoin(n);
          UpdateFences();
        }
        break;
      }
      case EventKind::kRestartNode: {
        SimNode& n = *nodes_[static_cast<size_t>(e.node)];
        if (!n.up) {
          Start(n);
          UpdateFences();
        }
        break;
      }
      case EventKind::kHeal: {
        Heal();
        Event c;
        c.kind = EventKind::kCheck;
        Push(now_ + 50, std::move(c));
        break;
      }
      case EventKind::kCheck: {
        if (Quiescent(&not_quiet)) {
          quiesced_ = true;
          stats_.quiesce_ms = now_ - scenario_.fault_ms;
          Trace("quiescent");
        } else if (now_ >= scenario_.fault_ms + scenario_.quiesce_limit_ms) {
          Violation("not quiescent " + std::to_string(scenario_.quiesce_limit_ms) +
                    " ms after healing: " + not_quiet);
        } else {
          Event c;
          c.kind = EventKind::kCheck;
          Push(now_ + 50, std::move(c));
        }
        break;
      }
    }
  }
  if (!stop_ && !quiesced_) Violation("the event queue ran dry before quiescence");
  stats_.end_ms = now_;

  std::set<std::string> keys;
  if (!stop_) {
    // Final session reads at every node: every token must be covered now,
    // and no read may go back.
    for (auto& s : history_.sessions) {
      for (auto& n : nodes_) {
        uint64_t behind = 0;
        if (!node::Covers(n->committer->applied(), s.token, &behind)) {
          Violation("after quiescence " + n->id + " (applied {" +
                    TokenString(n->committer->applied()) + "}) does not cover session s" +
                    std::to_string(s.id) + "'s token {" + TokenString(s.token) + "}");
          break;
        }
        for (const auto& [key, seen] : s.observed) {
          std::string env, why;
          Status st = n->store->GetState(key, &env);
          if (st.IsNotFound()) env.clear();
          if (!ReadDominates(key, env, seen, &why)) {
            keys.insert(key);
            Violation("after quiescence session s" + std::to_string(s.id) + " reads " + key +
                      " at " + n->id + " and goes back: " + why);
            break;
          }
        }
      }
    }
  }
  if (!stop_) {
    std::vector<FinalNode> finals;
    const storage::Digest first_digest = nodes_[0]->committer->digest_sums().Total();
    for (auto& n : nodes_) {
      FinalNode f;
      f.id = n->id;
      for (const auto& [k, v] : n->committer->applied()) {
        if (v != 0) f.applied[k] = v;
      }
      if (!SameApplied(n->protocol->applied(), f.applied)) {
        Violation(n->id + ": the protocol's applied {" + TokenString(n->protocol->applied()) +
                  "} differs from the store's {" + TokenString(f.applied) + "}");
      }
      size_t regions =
          std::set<std::string>(scenario_.regions.begin(), scenario_.regions.end()).size();
      if (n->committer->last_seq() > 0 &&
          n->protocol->RegionsHolding(kScope, n->committer->last_seq()) != regions) {
        Violation(n->id + ": after quiescence RegionsHolding(" +
                  std::to_string(n->committer->last_seq()) + ") = " +
                  std::to_string(n->protocol->RegionsHolding(kScope, n->committer->last_seq())) +
                  ", expected all " + std::to_string(regions) + " regions");
      }
      Status st = n->store->Scan("", "", std::numeric_limits<size_t>::max(), &f.states);
      if (!st.ok()) Violation(n->id + ": scan failed: " + st.ToString());
      st = n->store->ScanConflicts("", "", std::numeric_limits<size_t>::max(), &f.conflicts);
      if (!st.ok()) Violation(n->id + ": conflict index scan failed: " + st.ToString());
      // The digest sums kept on every commit and repair are those of the
      // stored digest records, and equal states give equal digests.
      storage::BucketSums stored;
      st = storage::LoadBucketSums(*n->store, kScope, &stored);
      if (!st.ok() || stored.Total() != n->committer->digest_sums().Total()) {
        Violation(n->id + ": its digest sums (" + n->committer->digest_sums().Total().Hex() +
                  ") differ from its digest records (" +
                  (st.ok() ? stored.Total().Hex() : st.ToString()) + ")");
      }
      if (n->committer->digest_sums().Total() != first_digest) {
        Violation(n->id + ": state digest " + n->committer->digest_sums().Total().Hex() +
                  " differs from " + nodes_[0]->id + "'s " + first_digest.Hex());
      }
      if (finals.empty()) stats_.review_queue_final = f.conflicts.size();
      finals.push_back(std::move(f));
    }
    if (!stop_) {
      for (std::string& v : CheckFinal(history_, finals, *review_, &keys)) violations_.push_back(v);
    }
  }
  for (const WriteRecord& w : history_.writes) {
    if (w.outcome == Outcome::kAcknowledged) {
      ++stats_.writes_acknowledged;
      if (w.kind == WriteKind::kMvPut) ++stats_.mv_writes_acknowledged;
      if (w.kind == WriteKind::kMvResolve) ++stats_.resolutions_acknowledged;
      if (w.kind == WriteKind::kTextEdit || w.kind == WriteKind::kTextDelete) {
        ++stats_.text_writes_acknowledged;
      }
    } else if (w.outcome == Outcome::kRefusedSkew) {
      ++stats_.writes_refused_skew;
    } else {
      ++stats_.writes_other;
      if (w.error.find("unknown_version") != std::string::npos) ++stats_.text_unknown_version;
    }
  }
  for (auto& n : nodes_) {
    if (n->up) AddCounters(*n);
    n->protocol.reset();
    n->committer.reset();
    n->clock.reset();
    n->store.reset();
  }
  report.ok = violations_.empty();
  report.failures = violations_;
  if (!report.ok) report.history = KeyHistory(keys);
  report.trace.assign(trace_.begin(), trace_.end());
  report.fingerprint = fingerprint_;
  report.stats = stats_;
  return report;
}

}  // namespace

SeedReport RunSeed(uint64_t seed, const SimOptions& options) {
  Simulation sim(seed, options);
  return sim.Run();
}

}  // namespace meridian::sim
