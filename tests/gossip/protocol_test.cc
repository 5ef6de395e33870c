// The replication state machine (gossip/protocol.h), driven by hand.
//
// A tiny in-test network carries every message as bytes (Encode, then
// Decode, so the wire format is exercised too); each node has a tiny "log"
// (a vector of entries) that serves ShipRequests and a tiny "store" (its
// applied vector plus the order in which each origin's seqs were applied)
// that serves ApplyRequests. Applying checks the contract on the spot:
// entries arrive contiguous, starting at applied + 1, with the content the
// origin logged. Time only moves when a test moves it.
//
// With anti-entropy on (Net's `anti_entropy`), each node also keeps a
// key -> value map (`kv`, joined by keeping the greater value) that every
// delta it logs or applies writes to (key/seq -> the delta's bytes): the
// anti-entropy View is over it and the store's applied vector, reads serve
// it, and repairs join into it and advance the applied vector.
#define BOOST_TEST_MODULE gossip_protocol
#include "gossip/protocol.h"

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "crdt/causal_context.h"
#include "crdt/hlc.h"
#include "gossip/messages.h"
#include "storage/digests.h"

namespace meridian::gossip {
std::ostream& operator<<(std::ostream& os, PeerState s) { return os << PeerStateName(s); }
}  // namespace meridian::gossip

using namespace meridian;
using namespace meridian::gossip;
using crdt::ReplicaId;

namespace {

constexpr uint64_t kWallBase = 1732550400000;
constexpr uint64_t kHb = 500;  // heartbeat_interval_ms in every test
constexpr const char* kCluster = "test-cluster";

std::string DeltaBytes(const ReplicaId& origin, uint64_t seq) {
  return "delta of " + origin.ToString() + " seq " + std::to_string(seq);
}

bool Contains(const std::vector<std::string>& lines, const std::string& part) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& l) { return l.find(part) != std::string::npos; });
}

// What anti-entropy sees of a TestNode: its kv map and applied vector.
struct KvView : ViewSource {
  std::map<std::string, std::string>* kv = nullptr;
  Applied* applied = nullptr;
  Applied floor;  // the collection floor its Views report
  void ReadView(const std::string& scope, View* out) override {
    BOOST_REQUIRE(scope.empty());
    out->sums = storage::BucketSums();
    for (const auto& [key, value] : *kv) {
      out->sums.Replace(storage::BucketOf(key), storage::Digest(), storage::KeyDigest(key, value));
    }
    out->applied = *applied;
    out->floor = floor;
  }
};

struct TestNode {
  std::string id;
  std::string region;
  ProtocolOptions opt;
  std::unique_ptr<Protocol> p;

  std::vector<DeltaEntry> log;  // own log: log[i].seq == i + 1
  uint64_t truncated = 0;       // log entries up to here were truncated (TruncateRequests)
  Applied durable;              // the store's applied vector (own entry: log size)
  std::map<ReplicaId, std::vector<uint64_t>> applied_order;  // seqs in the order applied
  bool auto_apply = true;  // false: ApplyRequests wait in `pending`
  std::deque<ApplyRequest> pending;
  int64_t wall_offset_ms = 0;  // this node's clock minus true time
  uint16_t logical = 0;

  std::map<std::string, std::string> kv;  // anti-entropy's data (see the header)
  KvView view;
  uint64_t ae_repairs = 0;  // repairs applied

  std::vector<std::string> logs;
  std::vector<ShipRequest> ships;
  std::vector<PeerEvent> events;
  crdt::Hlc observed = 0;
  std::vector<ReplicaId> expirations;  // Effects::expirations, in order
  bool rejoin = false;                 // Effects::rejoin came

  ReplicaId self() const { return opt.self; }
  uint64_t Held(const ReplicaId& origin) const {
    auto it = durable.find({origin, kDefaultScope});
    return it == durable.end() ? 0 : it->second;
  }
  PeerStatus Peer(const Now& now, const std::string& node) const {
    for (const PeerStatus& s : p->Peers(now)) {
      if (s.node == node) return s;
    }
    BOOST_FAIL("no peer " + node);
    return PeerStatus();
  }
};

class Net {
 public:
  uint64_t mono = 100000;
  std::vector<std::unique_ptr<TestNode>> nodes;
  std::set<std::pair<std::string, std::string>> cut;  // (from, to) links that drop
  std::function<bool(const std::string&, const std::string&, const Message&)> drop;
  size_t dropped = 0;

  // Nodes as (id, region); every node lists every other as a peer.
  bool anti_entropy = false;

  explicit Net(const std::vector<std::pair<std::string, std::string>>& spec,
               const std::function<void(ProtocolOptions*)>& tweak = nullptr,
               bool with_anti_entropy = false)
      : anti_entropy(with_anti_entropy) {
    for (const auto& [id, region] : spec) {
      auto n = std::make_unique<TestNode>();
      n->id = id;
      n->region = region;
      n->opt.cluster = kCluster;
      n->opt.self = ReplicaId{id, 1};
      n->opt.region = region;
      n->opt.heartbeat_interval_ms = kHb;
      for (const auto& [pid, pregion] : spec) {
        if (pid != id) n->opt.peers.push_back(PeerConfig{pid, pregion});
      }
      if (tweak) tweak(&n->opt);
      nodes.push_back(std::move(n));
    }
    for (auto& n : nodes) n->p = MakeProtocol(*n);
  }

  std::unique_ptr<Protocol> MakeProtocol(TestNode& n) {
    n.view.kv = &n.kv;
    n.view.applied = &n.durable;
    return std::make_unique<Protocol>(n.opt, n.durable, NowOf(n),
                                      anti_entropy ? &n.view : nullptr);
  }

  TestNode& operator[](const std::string& id) {
    for (auto& n : nodes) {
      if (n->id == id) return *n;
    }
    BOOST_FAIL("no node " + id);
    return *nodes[0];
  }

  Now NowOf(TestNode& n) {
    Now t;
    t.mono_ms = mono;
    t.wall_ms = static_cast<uint64_t>(static_cast<int64_t>(kWallBase + mono) + n.wall_offset_ms);
    t.hlc = crdt::MakeHlc(t.wall_ms, ++n.logical);
    return t;
  }

  void Enqueue(const std::string& from, const std::string& to, const Message& m) {
    if (cut.count({from, to}) != 0 || (drop && drop(from, to, m))) {
      ++dropped;
      return;
    }
    flight_.push_back({to, Encode(m)});
  }

  void Handle(TestNode& n, Effects& e) {
    for (auto& [to, m] : e.sends) {
      BOOST_TEST((m.header.from == n.self()));
      BOOST_TEST(m.header.cluster == n.opt.cluster);
      Enqueue(n.id, to, m);
    }
    for (const ShipRequest& s : e.ships) {
      n.ships.push_back(s);
      BOOST_REQUIRE(s.from_seq >= 1);
      BOOST_REQUIRE(s.from_seq <= s.to_seq);
      BOOST_REQUIRE_MESSAGE(s.to_seq <= n.log.size(), n.id << " asked to ship past its log");
      BOOST_REQUIRE_MESSAGE(s.from_seq > n.truncated,
                            n.id << " asked to ship seq " << s.from_seq << " to " << s.peer
                                 << ", truncated through " << n.truncated);
      BOOST_TEST(s.to_seq - s.from_seq + 1 <= n.opt.max_deltas_per_message);
      Message m;
      m.header = n.p->MakeHeader(NowOf(n));
      m.type = MsgType::kDeltas;
      m.scope = s.scope;
      for (uint64_t q = s.from_seq; q <= s.to_seq; ++q) m.deltas.push_back(n.log[q - 1]);
      Enqueue(n.id, s.peer, m);
    }
    std::vector<ApplyRequest> applies = std::move(e.applies);
    std::vector<AeReadStates> reads = std::move(e.ae_reads);
    std::vector<AeRepair> repairs = std::move(e.ae_repairs);
    for (const TruncateRequest& t : e.truncates) {
      BOOST_REQUIRE(t.scope == kDefaultScope);
      BOOST_REQUIRE_MESSAGE(t.through_seq <= n.log.size(), n.id << " truncating past its log");
      BOOST_REQUIRE_MESSAGE(t.through_seq > n.truncated, n.id << " truncating twice");
      n.truncated = t.through_seq;
    }
    n.observed = std::max(n.observed, e.observed_hlc);
    n.expirations.insert(n.expirations.end(), e.expirations.begin(), e.expirations.end());
    if (e.rejoin) {
      BOOST_REQUIRE_MESSAGE(!n.rejoin, n.id << " told to rejoin twice");
      n.rejoin = true;
    }
    n.logs.insert(n.logs.end(), e.logs.begin(), e.logs.end());
    n.events.insert(n.events.end(), e.peer_events.begin(), e.peer_events.end());
    e.Clear();
    for (ApplyRequest& a : applies) {
      if (n.auto_apply) {
        Apply(n, a);
      } else {
        n.pending.push_back(std::move(a));
      }
    }
    for (const AeReadStates& r : reads) ServeRead(n, r);
    for (const AeRepair& r : repairs) Repair(n, r);
  }

  // One kStates message with every state of the buckets asked for.
  void ServeRead(TestNode& n, const AeReadStates& r) {
    BOOST_REQUIRE(anti_entropy);
    const std::set<uint32_t> buckets(r.buckets.begin(), r.buckets.end());
    Message m;
    m.header = n.p->MakeHeader(NowOf(n));
    m.type = MsgType::kAntiEntropy;
    m.ae.kind = AeKind::kStates;
    m.ae.round = r.round;
    m.ae.from_initiator = r.from_initiator;
    m.ae.scope = r.scope;
    m.ae.part = 0;
    m.ae.last = true;
    m.ae.applied = r.applied;
    m.ae.floor = r.floor;
    for (const auto& [key, value] : n.kv) {
      if (buckets.count(storage::BucketOf(key)) != 0) m.ae.states.push_back(AeState{key, value});
    }
    n.p->OnAeStatesSent(r, m.ae.states.size());
    Enqueue(n.id, r.peer, m);
  }

  // Joins (the greater value wins) and advances (entry by entry the max,
  // never the node's own entry), then reports the new applied vector.
  void Repair(TestNode& n, const AeRepair& r) {
    BOOST_REQUIRE(anti_entropy);
    for (const AeState& s : r.states) {
      std::string& have = n.kv[s.key];
      have = std::max(have, s.envelope);
    }
    if (r.has_advance) {
      for (const auto& [key, seq] : r.advance) {
        if (key.first == n.self()) continue;
        uint64_t& have = n.durable[key];
        have = std::max(have, seq);
      }
    }
    ++n.ae_repairs;
    Effects e;
    n.p->OnAeRepaired(NowOf(n), r, n.durable, &e);
    Handle(n, e);
  }

  // The store: contiguous from applied + 1, content as the origin logged it.
  void Apply(TestNode& n, const ApplyRequest& a) {
    BOOST_REQUIRE(!a.entries.empty());
    uint64_t& held = n.durable[{a.origin, a.scope}];
    for (const DeltaEntry& d : a.entries) {
      // With anti-entropy a repair may have advanced past entries already
      // handed out: the store skips them, as the Committer does.
      if (anti_entropy && d.seq <= held) continue;
      BOOST_REQUIRE_MESSAGE(d.seq == held + 1, n.id << " asked to apply seq " << d.seq << " of "
                                                    << a.origin.ToString() << " after " << held);
      BOOST_REQUIRE(d.delta == DeltaBytes(a.origin, d.seq));
      held = d.seq;
      n.applied_order[a.origin].push_back(d.seq);
      n.kv[d.key + "@" + a.origin.node] = d.delta;
    }
    Effects e;
    n.p->OnApplied(NowOf(n), a.origin, a.scope, held, &e);
    Handle(n, e);
  }

  void ApplyPending(TestNode& n) {
    for (size_t i = 0; i < 1000 && !n.pending.empty(); ++i) {
      ApplyRequest a = std::move(n.pending.front());
      n.pending.pop_front();
      Apply(n, a);
    }
  }

  void Append(TestNode& n, size_t count, uint64_t bytes_each = 10) {
    for (size_t i = 0; i < count; ++i) {
      uint64_t seq = n.log.size() + 1;
      n.log.push_back(DeltaEntry{seq, "key/" + std::to_string(seq), DeltaBytes(n.self(), seq)});
      n.kv["key/" + std::to_string(seq) + "@" + n.id] = n.log.back().delta;
    }
    n.durable[{n.self(), kDefaultScope}] = n.log.size();
    Effects e;
    n.p->OnLocalAppend(NowOf(n), kDefaultScope, n.log.size(), bytes_each * count, &e);
    Handle(n, e);
  }

  // Delivers what is in flight (and what that causes); bounded.
  size_t Deliver(size_t max = 100000) {
    size_t count = 0;
    while (!flight_.empty() && count < max) {
      auto [to, bytes] = std::move(flight_.front());
      flight_.pop_front();
      Message m;
      Status s = Decode(bytes, &m);
      BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
      ++count;
      for (auto& n : nodes) {
        if (n->id != to) continue;
        Effects e;
        n->p->OnMessage(NowOf(*n), m, &e);
        Handle(*n, e);
      }
    }
    BOOST_REQUIRE_MESSAGE(flight_.empty(), "messages still in flight after " << max);
    return count;
  }

  void Tick(TestNode& n) {
    Effects e;
    n.p->OnTick(NowOf(n), &e);
    Handle(n, e);
  }

  void TickAll() {
    for (auto& n : nodes) Tick(*n);
  }

  // Moves time by `ms` in steps, ticking everyone and delivering at once.
  void Run(uint64_t ms, uint64_t step = 50) {
    for (uint64_t t = 0; t < ms; t += step) {
      mono += step;
      TickAll();
      Deliver();
    }
  }

  void Restart(TestNode& n) {
    n.pending.clear();  // not durable: lost
    n.opt.log_first_seq = n.truncated < n.log.size() ? n.truncated + 1 : 0;
    n.p = MakeProtocol(n);
  }

  // A message handed straight to one node (still through Encode/Decode).
  // Its effects are returned for the test to inspect and are not carried
  // out, except that logs and peer events are recorded at the node.
  Effects Inject(TestNode& to, const Message& m) {
    Message back;
    Status s = Decode(Encode(m), &back);
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
    Effects e;
    to.p->OnMessage(NowOf(to), back, &e);
    to.expirations.insert(to.expirations.end(), e.expirations.begin(), e.expirations.end());
    to.rejoin = to.rejoin || e.rejoin;
    to.logs.insert(to.logs.end(), e.logs.begin(), e.logs.end());
    to.events.insert(to.events.end(), e.peer_events.begin(), e.peer_events.end());
    return e;
  }

  size_t in_flight() const { return flight_.size(); }
  void ClearFlight() { flight_.clear(); }

 private:
  std::deque<std::pair<std::string, std::string>> flight_;
};

// A message as `from` would send it at true time `mono` (clock offset 0).
Message From(const ReplicaId& from, uint64_t mono, MsgType type,
             const std::string& cluster = kCluster) {
  Message m;
  m.header.cluster = cluster;
  m.header.protocol = kProtocolVersion;
  m.header.from = from;
  m.header.wall_ms = kWallBase + mono;
  m.header.hlc = crdt::MakeHlc(kWallBase + mono, 1);
  m.type = type;
  return m;
}

Message DeltasFrom(const ReplicaId& from, uint64_t mono, std::vector<uint64_t> seqs) {
  Message m = From(from, mono, MsgType::kDeltas);
  for (uint64_t s : seqs)
    m.deltas.push_back(DeltaEntry{s, "key/" + std::to_string(s), DeltaBytes(from, s)});
  return m;
}

std::vector<std::pair<std::string, Message>> SendsOf(const Effects& e, MsgType t) {
  std::vector<std::pair<std::string, Message>> out;
  for (const auto& s : e.sends) {
    if (s.second.type == t) out.push_back(s);
  }
  return out;
}

// Two regions, one node each.
Net Pair(const std::function<void(ProtocolOptions*)>& tweak = nullptr) {
  return Net({{"a", "r1"}, {"b", "r2"}}, tweak);
}

}  // namespace

// --- Handshake ----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(handshake_then_shipping_in_order) {
  Net net = Pair();
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  BOOST_TEST(a.p->NextTickMs() == net.mono);  // Hello and Ping are due at once
  net.TickAll();
  net.Deliver();
  BOOST_TEST(a.Peer(net.NowOf(a), "b").welcomed);
  BOOST_TEST(b.Peer(net.NowOf(b), "a").welcomed);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").state == PeerState::kUp);

  net.Append(a, 5);
  net.Deliver();
  BOOST_TEST(b.Held(a.self()) == 5u);
  BOOST_TEST((b.applied_order[a.self()] == std::vector<uint64_t>{1, 2, 3, 4, 5}));
  PeerStatus ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(ps.acked == 5u);
  BOOST_TEST(ps.shipped == 5u);
  BOOST_TEST(ps.unacked_deltas == 0u);
  BOOST_TEST(a.p->counters().deltas_shipped == 5u);
  BOOST_TEST(b.p->counters().deltas_applied == 5u);
  BOOST_TEST(b.p->counters().deltas_received == 5u);
  BOOST_TEST((b.p->applied().at({a.self(), kDefaultScope}) == 5u));
  BOOST_TEST((a.p->applied().at({a.self(), kDefaultScope}) == 5u));
  BOOST_TEST(a.p->RegionsHolding(kDefaultScope, 5) == 2u);
  BOOST_TEST(a.p->RegionsHolding(kDefaultScope, 6) == 0u);
}

BOOST_AUTO_TEST_CASE(hello_is_retried_every_interval_until_welcome) {
  Net net = Pair();
  TestNode& a = net["a"];
  net.cut.insert({"b", "a"});  // b's Welcome never arrives
  size_t hellos = 0;
  size_t* n = &hellos;
  net.drop = [n](const std::string& from, const std::string&, const Message& m) {
    if (from == "a" && m.type == MsgType::kHello) ++*n;
    return false;
  };
  net.Tick(a);
  BOOST_TEST(*n == 1u);
  net.Deliver();
  net.mono += kHb - 1;
  net.Tick(a);
  BOOST_TEST(*n == 1u);
  BOOST_TEST(a.p->NextTickMs() == net.mono + 1);
  net.mono += 1;
  net.Tick(a);
  BOOST_TEST(*n == 2u);
  net.Deliver();
  net.cut.clear();
  net.mono += kHb;
  net.TickAll();
  net.Deliver();
  BOOST_TEST(a.Peer(net.NowOf(a), "b").welcomed);
  size_t before = *n;
  net.Run(5 * kHb);
  BOOST_TEST(*n == before);  // no Hello once welcomed
}

BOOST_AUTO_TEST_CASE(wrong_cluster_is_refused_and_counted_without_a_storm) {
  Net net = Pair([](ProtocolOptions* o) {
    if (o->self.node == "b") o->cluster = "another-cluster";
  });
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  net.TickAll();
  size_t delivered = net.Deliver();
  BOOST_TEST(delivered < 20u);  // refusals are not answered with refusals
  BOOST_TEST(!a.Peer(net.NowOf(a), "b").welcomed);
  BOOST_TEST(!b.Peer(net.NowOf(b), "a").welcomed);
  BOOST_TEST(b.p->counters().refused_other >= 1u);
  BOOST_TEST(a.p->counters().refused_other >= 1u);
  BOOST_TEST(Contains(b.logs, "cluster 'test-cluster'"));
  BOOST_TEST(Contains(a.logs, "another-cluster"));
  // Refused, but the node is alive.
  BOOST_TEST(a.Peer(net.NowOf(a), "b").state == PeerState::kUp);
  // A Hello with the wrong cluster gets a kWrongCluster answer.
  Effects e = net.Inject(b, From(a.self(), net.mono, MsgType::kHello));
  auto refusals = SendsOf(e, MsgType::kRefuse);
  BOOST_REQUIRE(refusals.size() == 1u);
  BOOST_TEST(refusals[0].first == "a");
  BOOST_TEST((refusals[0].second.reason == RefuseReason::kWrongCluster));
  BOOST_TEST(SendsOf(e, MsgType::kWelcome).empty());
  BOOST_TEST(e.observed_hlc == 0u);  // never absorbed
}

BOOST_AUTO_TEST_CASE(wrong_protocol_is_refused_with_a_reason) {
  Net net = Pair();
  TestNode& b = net["b"];
  Message hello = From(ReplicaId{"a", 1}, net.mono, MsgType::kHello);
  hello.header.protocol = kProtocolVersion + 1;
  hello.region = "r1";
  Effects e = net.Inject(b, hello);
  auto refusals = SendsOf(e, MsgType::kRefuse);
  BOOST_REQUIRE(refusals.size() == 1u);
  BOOST_TEST((refusals[0].second.reason == RefuseReason::kWrongProtocol));
  BOOST_TEST(refusals[0].second.text.find("protocol") != std::string::npos);
  BOOST_TEST(SendsOf(e, MsgType::kWelcome).empty());
  BOOST_TEST(b.p->counters().refused_other == 1u);
  BOOST_TEST(Contains(e.logs, "protocol " + std::to_string(kProtocolVersion + 1)));
  BOOST_TEST(e.observed_hlc == 0u);
}

BOOST_AUTO_TEST_CASE(unknown_node_is_counted_and_logged_sparingly) {
  Net net = Pair();
  TestNode& b = net["b"];
  Message hello = From(ReplicaId{"zed", 1}, net.mono, MsgType::kHello);
  Effects e = net.Inject(b, hello);
  BOOST_TEST(e.sends.empty());  // no DEALER leads there
  BOOST_TEST(e.observed_hlc == 0u);
  BOOST_TEST(b.p->counters().refused_other == 1u);
  BOOST_TEST(Contains(e.logs, "zed"));
  // The same again soon, or another unknown node: counted, not logged.
  net.mono += 1000;
  e = net.Inject(b, From(ReplicaId{"zed", 1}, net.mono, MsgType::kPing));
  BOOST_TEST(b.p->counters().refused_other == 2u);
  BOOST_TEST(e.logs.empty());
  e = net.Inject(b, From(ReplicaId{"yak", 1}, net.mono, MsgType::kPing));
  BOOST_TEST(b.p->counters().refused_other == 3u);
  BOOST_TEST(e.logs.empty());
  // Ten seconds later: logged again, saying how many were not.
  net.mono += 10000;
  e = net.Inject(b, From(ReplicaId{"zed", 1}, net.mono, MsgType::kPing));
  BOOST_TEST(b.p->counters().refused_other == 4u);
  BOOST_TEST(Contains(e.logs, "2 more"));
  BOOST_TEST(b.Peer(net.NowOf(b), "a").state == PeerState::kUnknown);
  // Acks for an origin outside the topology go nowhere.
  Effects e2;
  b.p->OnApplied(net.NowOf(b), ReplicaId{"zed", 1}, kDefaultScope, 3, &e2);
  BOOST_TEST(e2.sends.empty());
}

BOOST_AUTO_TEST_CASE(deltas_without_a_hello_are_refused_and_the_sender_says_hello_again) {
  Net net = Pair();
  TestNode& b = net["b"];
  // No Hello from a#1 was accepted: refused.
  Effects e = net.Inject(b, DeltasFrom(ReplicaId{"a", 1}, net.mono, {1, 2}));
  auto refusals = SendsOf(e, MsgType::kRefuse);
  BOOST_REQUIRE(refusals.size() == 1u);
  BOOST_TEST((refusals[0].second.reason == RefuseReason::kNoHandshake));
  BOOST_TEST(e.applies.empty());
  BOOST_TEST(b.p->counters().refused_other == 1u);

  // A Hello from a#1: its Deltas are taken. Then Deltas from a#2 (a later
  // incarnation, no Hello yet): refused; after that, a#1 is an earlier
  // incarnation and whatever it sent is dropped unanswered.
  Message hello = From(ReplicaId{"a", 1}, net.mono, MsgType::kHello);
  hello.region = "r1";
  e = net.Inject(b, hello);
  BOOST_TEST(SendsOf(e, MsgType::kWelcome).size() == 1u);
  e = net.Inject(b, DeltasFrom(ReplicaId{"a", 1}, net.mono, {1}));
  BOOST_TEST(SendsOf(e, MsgType::kRefuse).empty());
  BOOST_TEST(e.applies.size() == 1u);
  e = net.Inject(b, DeltasFrom(ReplicaId{"a", 2}, net.mono, {1}));
  BOOST_TEST(SendsOf(e, MsgType::kRefuse).size() == 1u);
  BOOST_TEST(e.applies.empty());
  e = net.Inject(b, DeltasFrom(ReplicaId{"a", 1}, net.mono, {2}));
  BOOST_TEST(e.sends.empty());
  BOOST_TEST(e.applies.empty());
  BOOST_TEST(Contains(e.logs, "an earlier incarnation"));
}

// --- Applying -----------------------------------------------------------------

struct ReceiverFixture {
  Net net = Pair();
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  ReplicaId origin{"a", 1};
  ReceiverFixture() {
    b.auto_apply = false;
    Message hello = From(origin, net.mono, MsgType::kHello);
    hello.region = "r1";
    Effects e = net.Inject(b, hello);
    auto w = SendsOf(e, MsgType::kWelcome);
    BOOST_REQUIRE(w.size() == 1u);
    BOOST_TEST(w[0].second.applied == 0u);
  }
  std::vector<uint64_t> Seqs(const ApplyRequest& r) {
    std::vector<uint64_t> out;
    for (const DeltaEntry& d : r.entries) out.push_back(d.seq);
    return out;
  }
  // Applies one request in the store and tells the protocol.
  Effects Durable(const ApplyRequest& r) {
    uint64_t& held = b.durable[{r.origin, r.scope}];
    BOOST_REQUIRE(r.entries.front().seq == held + 1);
    held = r.entries.back().seq;
    Effects e;
    b.p->OnApplied(net.NowOf(b), r.origin, r.scope, held, &e);
    return e;
  }
};

BOOST_FIXTURE_TEST_CASE(gap_is_held_back_and_filled_in_order, ReceiverFixture) {
  Effects e = net.Inject(b, DeltasFrom(origin, net.mono, {1, 2}));
  BOOST_REQUIRE(e.applies.size() == 1u);
  BOOST_TEST((Seqs(e.applies[0]) == std::vector<uint64_t>{1, 2}));
  BOOST_TEST((e.applies[0].origin == origin));
  ApplyRequest first = e.applies[0];

  e = net.Inject(b, DeltasFrom(origin, net.mono, {5, 6}));
  BOOST_TEST(e.applies.empty());  // held back behind the gap at 3..4

  e = net.Inject(b, DeltasFrom(origin, net.mono, {3, 4}));
  BOOST_REQUIRE(e.applies.size() == 1u);  // issued eagerly, before 1..2 is durable
  BOOST_TEST((Seqs(e.applies[0]) == std::vector<uint64_t>{3, 4, 5, 6}));
  ApplyRequest second = e.applies[0];

  // Durable 1..2: Ack(2) to the origin's node.
  e = Durable(first);
  auto acks = SendsOf(e, MsgType::kAck);
  BOOST_REQUIRE(acks.size() == 1u);
  BOOST_TEST(acks[0].first == "a");
  BOOST_TEST(acks[0].second.seq == 2u);
  e = Durable(second);
  acks = SendsOf(e, MsgType::kAck);
  BOOST_REQUIRE(acks.size() == 1u);
  BOOST_TEST(acks[0].second.seq == 6u);
  BOOST_TEST((b.p->applied().at({origin, kDefaultScope}) == 6u));
  BOOST_TEST(b.p->counters().deltas_applied == 6u);
}

BOOST_FIXTURE_TEST_CASE(entries_in_one_message_around_held_ones, ReceiverFixture) {
  // 3 and 5 held; then [1, 2, 4, 6] fills every gap at once.
  Effects e = net.Inject(b, DeltasFrom(origin, net.mono, {3, 5}));
  BOOST_TEST(e.applies.empty());
  e = net.Inject(b, DeltasFrom(origin, net.mono, {1, 2, 4, 6}));
  BOOST_REQUIRE(e.applies.size() == 1u);
  BOOST_TEST((Seqs(e.applies[0]) == std::vector<uint64_t>{1, 2, 3, 4, 5, 6}));
}

BOOST_FIXTURE_TEST_CASE(duplicates_are_dropped_and_acknowledged_again, ReceiverFixture) {
  Effects e = net.Inject(b, DeltasFrom(origin, net.mono, {1, 2, 3, 4}));
  BOOST_REQUIRE(e.applies.size() == 1u);
  ApplyRequest r = e.applies[0];
  BOOST_TEST(b.p->counters().deltas_duplicate == 0u);
  // In flight but not durable: dropped without an Ack (the Ack follows
  // OnApplied) and not handed out twice.
  e = net.Inject(b, DeltasFrom(origin, net.mono, {3, 4}));
  BOOST_TEST(e.applies.empty());
  BOOST_TEST(SendsOf(e, MsgType::kAck).empty());
  BOOST_TEST(b.p->counters().deltas_duplicate == 2u);
  BOOST_TEST(b.p->counters().deltas_received == 6u);
  Effects d = Durable(r);
  BOOST_TEST(SendsOf(d, MsgType::kAck).size() == 1u);
  // Durable: the duplicate is acknowledged again, with what is held.
  uint64_t dup_before = b.p->counters().deltas_duplicate;
  e = net.Inject(b, DeltasFrom(origin, net.mono, {3, 4}));
  BOOST_TEST(e.applies.empty());
  auto acks = SendsOf(e, MsgType::kAck);
  BOOST_REQUIRE(acks.size() == 1u);
  BOOST_TEST(acks[0].first == "a");
  BOOST_TEST(acks[0].second.seq == 4u);
  BOOST_TEST(b.p->counters().deltas_duplicate == dup_before + 2);
  // A duplicate followed by new entries: both an apply and an Ack.
  e = net.Inject(b, DeltasFrom(origin, net.mono, {4, 5}));
  BOOST_TEST(e.applies.size() == 1u);
  BOOST_TEST(SendsOf(e, MsgType::kAck).size() == 1u);
}

BOOST_FIXTURE_TEST_CASE(held_back_is_bounded, ReceiverFixture) {
  b.p.reset();
  b.opt.max_held_back = 2;
  net.Restart(b);
  Message hello = From(origin, net.mono, MsgType::kHello);
  hello.region = "r1";
  net.Inject(b, hello);
  Effects e = net.Inject(b, DeltasFrom(origin, net.mono, {4, 5, 6}));
  BOOST_TEST(e.applies.empty());
  // 3 arrives late: it is nearer the gap than 5, which makes room.
  e = net.Inject(b, DeltasFrom(origin, net.mono, {3}));
  e = net.Inject(b, DeltasFrom(origin, net.mono, {1, 2}));
  BOOST_REQUIRE(e.applies.size() == 1u);
  BOOST_TEST((Seqs(e.applies[0]) == std::vector<uint64_t>{1, 2, 3, 4}));
}

BOOST_FIXTURE_TEST_CASE(apply_failure_forgets_what_was_in_flight, ReceiverFixture) {
  Effects e = net.Inject(b, DeltasFrom(origin, net.mono, {1, 2, 3}));
  BOOST_REQUIRE(e.applies.size() == 1u);
  e = net.Inject(b, DeltasFrom(origin, net.mono, {5}));  // held
  Effects f;
  b.p->OnApplyFailed(net.NowOf(b), origin, kDefaultScope, &f);
  BOOST_TEST(!f.logs.empty());
  // The resend is applied again (before the failure it was a duplicate).
  e = net.Inject(b, DeltasFrom(origin, net.mono, {1, 2, 3, 4}));
  BOOST_REQUIRE(e.applies.size() == 1u);
  BOOST_TEST((Seqs(e.applies[0]) == std::vector<uint64_t>{1, 2, 3, 4}));  // 5 was forgotten
}

// --- Shipping -----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(lost_ack_is_repaired_by_resend) {
  Net net = Pair([](ProtocolOptions* o) { o->resend_timeout_ms = 2000; });
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  net.TickAll();
  net.Deliver();
  bool lose_acks = true;
  net.drop = [&](const std::string&, const std::string&, const Message& m) {
    return lose_acks && m.type == MsgType::kAck;
  };
  net.Append(a, 3);
  net.Deliver();
  BOOST_TEST(b.Held(a.self()) == 3u);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").acked == 0u);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").shipped == 3u);
  BOOST_TEST(a.p->RegionsHolding(kDefaultScope, 3) == 1u);
  lose_acks = false;
  size_t ships_before = a.ships.size();
  net.Run(1900);
  BOOST_TEST(a.ships.size() == ships_before);  // not yet: the timeout is 2 s
  BOOST_TEST(a.p->counters().resends == 0u);
  net.Run(200);
  BOOST_TEST(a.p->counters().resends == 1u);
  BOOST_REQUIRE(a.ships.size() == ships_before + 1);
  BOOST_TEST(a.ships.back().from_seq == 1u);
  BOOST_TEST(a.ships.back().to_seq == 3u);
  BOOST_TEST(b.p->counters().deltas_duplicate == 3u);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").acked == 3u);
  BOOST_TEST(a.p->RegionsHolding(kDefaultScope, 3) == 2u);
  BOOST_TEST((b.applied_order[a.self()] == std::vector<uint64_t>{1, 2, 3}));  // applied once
}

BOOST_AUTO_TEST_CASE(window_and_batch_size_limit_what_is_in_flight) {
  Net net = Pair([](ProtocolOptions* o) {
    o->window = 10;
    o->max_deltas_per_message = 4;
  });
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  net.TickAll();
  net.Deliver();
  b.auto_apply = false;  // nothing is acknowledged until the test says so
  net.Append(a, 30);
  net.Deliver();
  BOOST_REQUIRE(a.ships.size() == 3u);
  BOOST_TEST(a.ships[0].from_seq == 1u);
  BOOST_TEST(a.ships[0].to_seq == 4u);
  BOOST_TEST(a.ships[1].from_seq == 5u);
  BOOST_TEST(a.ships[2].to_seq == 10u);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").shipped == 10u);
  // More appends do not widen the window.
  net.Append(a, 5);
  net.Deliver();
  BOOST_TEST(a.ships.size() == 3u);
  BOOST_TEST(a.p->counters().deltas_shipped == 10u);
  // Apply and acknowledge: the window slides.
  net.ApplyPending(b);
  net.Deliver();
  BOOST_TEST(a.Peer(net.NowOf(a), "b").acked == 10u);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").shipped == 20u);
  for (int i = 0; i < 10 && b.Held(a.self()) < 35; ++i) {
    net.ApplyPending(b);
    net.Deliver();
  }
  BOOST_TEST(b.Held(a.self()) == 35u);
  for (const ShipRequest& s : a.ships) {
    BOOST_TEST(s.to_seq - s.from_seq + 1 <= 4u);
  }
  BOOST_TEST(a.p->counters().deltas_shipped == 35u);
}

BOOST_AUTO_TEST_CASE(a_peer_that_went_down_is_welcomed_again_and_gets_the_rest) {
  Net net = Pair();
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  net.TickAll();
  net.Deliver();
  net.Append(a, 5);
  net.Deliver();
  BOOST_TEST(a.Peer(net.NowOf(a), "b").acked == 5u);
  // Cut both ways; a keeps writing.
  net.cut = {{"a", "b"}, {"b", "a"}};
  net.Append(a, 5);
  net.Deliver();
  BOOST_TEST(a.Peer(net.NowOf(a), "b").shipped == 10u);
  net.Run(10 * kHb + 100);
  PeerStatus ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(ps.state == PeerState::kDown);
  BOOST_TEST(!ps.welcomed);
  BOOST_TEST(ps.shipped == 5u);  // the cursor fell back to what was acknowledged
  BOOST_TEST(ps.acked == 5u);
  BOOST_TEST(b.Held(a.self()) == 5u);
  // The link heals: up, Hello, Welcome(5), shipping resumes from 6.
  size_t ships_before = a.ships.size();
  net.cut.clear();
  net.Run(2 * kHb);
  ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(ps.state == PeerState::kUp);
  BOOST_TEST(ps.welcomed);
  BOOST_TEST(ps.acked == 10u);
  BOOST_REQUIRE(a.ships.size() > ships_before);
  BOOST_TEST(a.ships[ships_before].from_seq == 6u);
  BOOST_TEST(b.Held(a.self()) == 10u);
  BOOST_TEST((b.applied_order[a.self()] == std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  BOOST_TEST(Contains(a.logs, "is down"));
  BOOST_TEST(Contains(a.logs, "welcomed by b#1"));
}

BOOST_AUTO_TEST_CASE(receiver_restart_keeps_only_what_was_durable) {
  Net net = Pair();
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  net.TickAll();
  net.Deliver();
  net.Append(a, 5);
  net.Deliver();
  BOOST_TEST(b.Held(a.self()) == 5u);
  // 6..8 reach b but are never made durable; b restarts.
  b.auto_apply = false;
  net.Append(a, 3);
  net.Deliver();
  BOOST_TEST(b.pending.size() == 1u);
  net.Restart(b);
  b.auto_apply = true;
  // a does not know yet; its next Deltas is refused (no handshake), a says
  // Hello again, the Welcome says 5, and 6.. go again.
  net.Append(a, 1);
  net.Deliver();
  BOOST_TEST(b.p->counters().refused_other == 1u);
  BOOST_TEST(a.p->counters().refusals_received == 1u);
  BOOST_TEST(b.Held(a.self()) == 9u);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").acked == 9u);
  BOOST_TEST((b.applied_order[a.self()] == std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

BOOST_AUTO_TEST_CASE(sender_restart_ships_from_what_the_welcome_says) {
  Net net = Pair();
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  net.TickAll();
  net.Deliver();
  net.Append(a, 5);
  net.Deliver();
  // 6..8 are logged at a but lost on the way; a restarts before resending.
  net.cut.insert({"a", "b"});
  net.Append(a, 3);
  net.Deliver();
  net.cut.clear();
  net.Restart(a);
  BOOST_TEST((a.p->applied().at({a.self(), kDefaultScope}) == 8u));
  size_t ships_before = a.ships.size();
  net.TickAll();
  net.Deliver();
  BOOST_REQUIRE(a.ships.size() == ships_before + 1);
  BOOST_TEST(a.ships.back().from_seq == 6u);  // not 1: b holds 5
  BOOST_TEST(a.ships.back().to_seq == 8u);
  BOOST_TEST(b.Held(a.self()) == 8u);
  BOOST_TEST(b.p->counters().deltas_duplicate == 0u);
}

BOOST_AUTO_TEST_CASE(new_incarnation_resets_the_session_at_once) {
  Net net = Pair();
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  net.TickAll();
  net.Deliver();
  net.Append(a, 5);
  net.Deliver();
  BOOST_TEST(a.Peer(net.NowOf(a), "b").acked == 5u);
  BOOST_TEST(a.p->RegionsHolding(kDefaultScope, 5) == 2u);
  // b loses its data and comes back as b#2 with nothing.
  b.opt.self.incarnation = 2;
  b.durable.clear();
  b.applied_order.clear();
  b.log.clear();
  net.Restart(b);
  BOOST_TEST((b.p->MakeHeader(net.NowOf(b)).from == ReplicaId{"b", 2}));
  Message hello = From(ReplicaId{"b", 2}, net.mono, MsgType::kHello);
  hello.region = "r2";
  Effects e = net.Inject(a, hello);
  BOOST_TEST(SendsOf(e, MsgType::kWelcome).size() == 1u);
  BOOST_TEST(SendsOf(e, MsgType::kHello).size() == 1u);  // at once, not at the next retry
  PeerStatus ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(!ps.welcomed);
  BOOST_TEST(ps.acked == 0u);  // b#2 holds nothing
  BOOST_TEST(a.p->RegionsHolding(kDefaultScope, 5) == 1u);
  // Through the network: b#2 gets everything again.
  net.Run(kHb);
  BOOST_TEST(b.Held(a.self()) == 5u);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").acked == 5u);
}

BOOST_AUTO_TEST_CASE(hello_from_a_peer_that_was_down_is_answered_with_hello_at_once) {
  Net net = Pair();
  TestNode& a = net["a"];
  Message hello = From(ReplicaId{"b", 1}, net.mono, MsgType::kHello);
  hello.region = "r2";
  net.Inject(a, hello);
  Message welcome = From(ReplicaId{"b", 1}, net.mono, MsgType::kWelcome);
  welcome.to = a.self();
  net.Inject(a, welcome);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").welcomed);
  // A Hello from b while it is up (its Welcome from us got lost): answered
  // with a Welcome only; our session to it stands.
  Effects e = net.Inject(a, hello);
  BOOST_TEST(SendsOf(e, MsgType::kWelcome).size() == 1u);
  BOOST_TEST(SendsOf(e, MsgType::kHello).empty());
  BOOST_TEST(a.Peer(net.NowOf(a), "b").welcomed);
  // b goes down; a's retries go out every interval.
  net.mono += 10 * kHb;
  net.Tick(a);
  net.ClearFlight();
  BOOST_TEST(a.Peer(net.NowOf(a), "b").state == PeerState::kDown);
  BOOST_TEST(!a.Peer(net.NowOf(a), "b").welcomed);
  // It comes back with a Hello 100 ms later: a says Hello at once.
  net.mono += 100;
  hello = From(ReplicaId{"b", 1}, net.mono, MsgType::kHello);
  hello.region = "r2";
  e = net.Inject(a, hello);
  BOOST_TEST(SendsOf(e, MsgType::kWelcome).size() == 1u);
  BOOST_TEST(SendsOf(e, MsgType::kHello).size() == 1u);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").state == PeerState::kUp);
}

BOOST_AUTO_TEST_CASE(a_late_ack_meant_for_an_old_incarnation_is_ignored) {
  Net net = Pair();
  TestNode& a = net["a"];
  net.TickAll();
  net.Deliver();
  net.Append(a, 5);
  net.Deliver();
  // An Ack from b#1 after b#2 said Hello (and before its Welcome): ignored.
  Message hello = From(ReplicaId{"b", 2}, net.mono, MsgType::kHello);
  hello.region = "r2";
  net.Inject(a, hello);
  Message ack = From(ReplicaId{"b", 1}, net.mono, MsgType::kAck);
  ack.seq = 5;
  ack.to = a.self();
  net.Inject(a, ack);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").acked == 0u);
  Message welcome = From(ReplicaId{"b", 2}, net.mono, MsgType::kWelcome);
  welcome.applied = 0;
  welcome.to = a.self();
  Effects e = net.Inject(a, welcome);
  BOOST_REQUIRE(e.ships.size() == 1u);
  BOOST_TEST(e.ships[0].from_seq == 1u);
  net.Inject(a, ack);  // still from b#1
  BOOST_TEST(a.Peer(net.NowOf(a), "b").acked == 0u);
}

// A Welcome or Ack addressed to an earlier incarnation of this node (still
// in flight when it lost its data) counts another log: ignored.
BOOST_AUTO_TEST_CASE(a_welcome_or_ack_for_an_earlier_incarnation_of_this_node_is_ignored) {
  Net net = Pair();
  TestNode& a = net["a"];
  Message hello = From(ReplicaId{"b", 1}, net.mono, MsgType::kHello);
  hello.region = "r2";
  net.Inject(a, hello);
  Message stale = From(ReplicaId{"b", 1}, net.mono, MsgType::kWelcome);
  stale.applied = 0;
  stale.to = ReplicaId{"a", 0};  // a's predecessor
  net.Inject(a, stale);
  BOOST_TEST(!a.Peer(net.NowOf(a), "b").welcomed);
  Message welcome = stale;
  welcome.to = a.self();
  net.Inject(a, welcome);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").welcomed);
  net.Append(a, 4);
  Message ack = From(ReplicaId{"b", 1}, net.mono, MsgType::kAck);
  ack.seq = 3;
  ack.to = ReplicaId{"a", 0};
  net.Inject(a, ack);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").acked == 0u);
  ack.to = a.self();
  net.Inject(a, ack);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").acked == 3u);
}

BOOST_AUTO_TEST_CASE(ship_failure_falls_back_and_retries_after_the_timeout) {
  Net net = Pair([](ProtocolOptions* o) { o->resend_timeout_ms = 1000; });
  TestNode& a = net["a"];
  net.TickAll();
  net.Deliver();
  net.cut.insert({"a", "b"});
  net.Append(a, 3);
  net.ClearFlight();
  Effects e;
  a.p->OnShipFailed(net.NowOf(a), "b", kDefaultScope, &e);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").shipped == 0u);
  net.cut.clear();
  size_t before = a.ships.size();
  net.Append(a, 1);  // does not ship during the hold
  BOOST_TEST(a.ships.size() == before);
  BOOST_TEST(a.p->NextTickMs() <= net.mono + 1000);
  net.Run(1000);
  BOOST_TEST(a.ships.size() > before);
  BOOST_TEST(a.ships[before].from_seq == 1u);
  BOOST_TEST(net["b"].Held(a.self()) == 4u);
}

// --- Failure detection ------------------------------------------------------------

BOOST_AUTO_TEST_CASE(suspect_after_three_and_down_after_ten_intervals) {
  Net net = Pair();
  TestNode& a = net["a"];
  const uint64_t t0 = net.mono;
  // b is heard once, at t0, then never again.
  net.Inject(a, From(ReplicaId{"b", 1}, t0, MsgType::kPing));
  BOOST_TEST(a.Peer(net.NowOf(a), "b").state == PeerState::kUp);
  auto state_at = [&](uint64_t t) {
    net.mono = t;
    net.Tick(a);
    net.ClearFlight();
    return a.Peer(net.NowOf(a), "b").state;
  };
  BOOST_TEST(state_at(t0 + 3 * kHb - 1) == PeerState::kUp);
  BOOST_TEST(a.p->NextTickMs() <= t0 + 3 * kHb);
  BOOST_TEST(state_at(t0 + 3 * kHb) == PeerState::kSuspect);
  BOOST_TEST(state_at(t0 + 10 * kHb - 1) == PeerState::kSuspect);
  BOOST_TEST(a.p->NextTickMs() <= t0 + 10 * kHb);
  BOOST_TEST(state_at(t0 + 10 * kHb) == PeerState::kDown);
  BOOST_REQUIRE(a.events.size() == 3u);
  BOOST_TEST((a.events[0].from == PeerState::kUnknown && a.events[0].to == PeerState::kUp));
  BOOST_TEST((a.events[1].from == PeerState::kUp && a.events[1].to == PeerState::kSuspect));
  BOOST_TEST((a.events[2].from == PeerState::kSuspect && a.events[2].to == PeerState::kDown));
  PeerStatus ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(ps.last_heard_ms_ago == static_cast<int64_t>(10 * kHb));
  // Any message brings it back up.
  net.Inject(a, From(ReplicaId{"b", 1}, net.mono, MsgType::kPong));
  BOOST_TEST(a.Peer(net.NowOf(a), "b").state == PeerState::kUp);
}

BOOST_AUTO_TEST_CASE(never_heard_peer_is_unknown_until_down) {
  Net net = Pair();
  TestNode& a = net["a"];
  const uint64_t start = net.mono;
  net.mono = start + 9 * kHb;
  net.Tick(a);
  net.ClearFlight();
  BOOST_TEST(a.Peer(net.NowOf(a), "b").state == PeerState::kUnknown);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").last_heard_ms_ago == -1);
  net.mono = start + 10 * kHb - 1;
  net.Tick(a);
  net.ClearFlight();
  BOOST_TEST(a.Peer(net.NowOf(a), "b").state == PeerState::kUnknown);
  net.mono = start + 10 * kHb;
  net.Tick(a);
  net.ClearFlight();
  BOOST_TEST(a.Peer(net.NowOf(a), "b").state == PeerState::kDown);
}

BOOST_AUTO_TEST_CASE(heartbeats_go_every_interval) {
  Net net = Pair();
  TestNode& a = net["a"];
  size_t pings = 0;
  net.drop = [&](const std::string& from, const std::string&, const Message& m) {
    if (from == "a" && m.type == MsgType::kPing) ++pings;
    return true;
  };
  for (int i = 0; i < 100; ++i) {  // 100 ticks 50 ms apart: 5 s
    net.Tick(a);
    net.mono += 50;
  }
  BOOST_TEST(pings == 10u);
  uint64_t next = a.p->NextTickMs();
  BOOST_TEST(next <= net.mono + kHb);
}

// --- Policy set ---------------------------------------------------------------------

namespace {

const std::string kHashA = "aaaaaaaaaaaaaaaa";
const std::string kHashB = "bbbbbbbbbbbbbbbb";

// a with kHashA, b with kHashB.
Net PolicyPair() {
  return Pair([](ProtocolOptions* o) { o->policy_hash = o->self.node == "a" ? kHashA : kHashB; });
}

}  // namespace

// Each side learns the other's hash from its Hello alone, and reports the
// difference; after b takes a's policy set, a sees it with b's next Ping.
BOOST_AUTO_TEST_CASE(peers_report_each_others_policy_hash_and_a_mismatch) {
  Net net = PolicyPair();
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  PeerStatus s = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(s.policy_hash.empty());
  BOOST_TEST(!s.policy_mismatch);  // not known yet

  // Only Hellos (and Welcomes) get through at first.
  net.drop = [](const std::string&, const std::string&, const Message& m) {
    return m.type == MsgType::kPing;
  };
  net.TickAll();
  net.Deliver();
  s = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(s.policy_hash == kHashB);
  BOOST_TEST(s.policy_mismatch);
  s = b.Peer(net.NowOf(b), "a");
  BOOST_TEST(s.policy_hash == kHashA);
  BOOST_TEST(s.policy_mismatch);
  BOOST_TEST(Contains(a.logs, "peer b (r2) has policy set hash '" + kHashB + "', this node '" +
                                  kHashA + "': their conflict policies differ"));
  net.drop = nullptr;
  net.Run(2 * kHb);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").policy_mismatch);

  // A reload on b: b compares with its new hash at once, a once b's next
  // Ping arrives (within a heartbeat).
  b.p->SetPolicyHash(kHashA);
  BOOST_TEST(b.p->options().policy_hash == kHashA);
  BOOST_TEST(!b.Peer(net.NowOf(b), "a").policy_mismatch);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").policy_mismatch);
  a.logs.clear();
  net.Run(kHb);
  s = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(s.policy_hash == kHashA);
  BOOST_TEST(!s.policy_mismatch);
  BOOST_TEST(Contains(a.logs, "peer b (r2) now has this node's policy set hash '" + kHashA + "'"));
  BOOST_TEST(!b.Peer(net.NowOf(b), "a").policy_mismatch);

  // Only accepted messages count: a Ping refused for its cluster says nothing.
  Message ping = From(b.self(), net.mono, MsgType::kPing, "another-cluster");
  ping.policy_hash = kHashB;
  net.Inject(a, ping);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").policy_hash == kHashA);
  BOOST_TEST(!a.Peer(net.NowOf(a), "b").policy_mismatch);
}

// Every Hello and Ping carries the current hash, cut to the wire's limit;
// nodes given no hash (both empty) see no mismatch.
BOOST_AUTO_TEST_CASE(hellos_and_pings_carry_the_current_policy_hash) {
  Net net = PolicyPair();
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  // a is never welcomed: it keeps saying Hello.
  net.cut.insert({"b", "a"});
  std::vector<std::pair<MsgType, std::string>> sent;  // by a
  net.drop = [&sent](const std::string& from, const std::string&, const Message& m) {
    if (from == "a" && (m.type == MsgType::kHello || m.type == MsgType::kPing)) {
      sent.emplace_back(m.type, m.policy_hash);
    }
    return false;
  };
  net.Tick(a);
  BOOST_REQUIRE(sent.size() == 2u);  // a Hello and a Ping
  for (const auto& [type, hash] : sent) BOOST_TEST(hash == kHashA);

  const std::string long_hash(kMaxPolicyHashBytes + 1, 'x');
  a.p->SetPolicyHash(long_hash);
  BOOST_TEST(a.p->options().policy_hash == long_hash.substr(0, kMaxPolicyHashBytes));
  sent.clear();
  net.mono += kHb;
  net.Tick(a);
  BOOST_REQUIRE(sent.size() == 2u);
  for (const auto& [type, hash] : sent) {
    BOOST_TEST(hash == long_hash.substr(0, kMaxPolicyHashBytes), TypeName(type));
  }
  net.Deliver();
  // b holds what a sent, which is what a compares with.
  b.p->SetPolicyHash(long_hash);
  BOOST_TEST(b.Peer(net.NowOf(b), "a").policy_hash == a.p->options().policy_hash);
  BOOST_TEST(!b.Peer(net.NowOf(b), "a").policy_mismatch);

  Net plain = Pair();
  plain.Run(2 * kHb);
  for (const char* id : {"a", "b"}) {
    TestNode& n = plain[id];
    for (const PeerStatus& p : n.p->Peers(plain.NowOf(n))) {
      BOOST_TEST(p.policy_hash.empty());
      BOOST_TEST(!p.policy_mismatch);
    }
  }
}

// --- Clock safety -------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(message_too_far_ahead_is_refused_but_marks_the_peer_up) {
  Net net = Pair([](ProtocolOptions* o) { o->max_clock_offset_ms = 500; });
  TestNode& a = net["a"];
  Message ping = From(ReplicaId{"b", 1}, net.mono, MsgType::kPing);
  ping.header.hlc = crdt::MakeHlc(kWallBase + net.mono + 501, 0);
  Effects e = net.Inject(a, ping);
  BOOST_TEST(a.p->counters().refused_clock_offset == 1u);
  BOOST_TEST(e.observed_hlc == 0u);
  auto refusals = SendsOf(e, MsgType::kRefuse);
  BOOST_REQUIRE(refusals.size() == 1u);
  BOOST_TEST((refusals[0].second.reason == RefuseReason::kClockAhead));
  BOOST_TEST(SendsOf(e, MsgType::kPong).empty());
  BOOST_TEST(Contains(e.logs, "ahead"));
  BOOST_TEST(a.Peer(net.NowOf(a), "b").state == PeerState::kUp);
  // Exactly at the limit: accepted and absorbed.
  ping.header.hlc = crdt::MakeHlc(kWallBase + net.mono + 500, 9);
  e = net.Inject(a, ping);
  BOOST_TEST(a.p->counters().refused_clock_offset == 1u);
  BOOST_TEST(e.observed_hlc == ping.header.hlc);
  BOOST_TEST(SendsOf(e, MsgType::kPong).size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_node_whose_clock_runs_ahead_gets_nowhere) {
  Net net = Pair([](ProtocolOptions* o) { o->max_clock_offset_ms = 500; });
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  b.wall_offset_ms = 800;
  net.TickAll();
  net.Deliver();
  net.Append(b, 2);
  net.Run(2 * kHb);
  BOOST_TEST(a.p->counters().refused_clock_offset > 0u);
  BOOST_TEST(b.p->counters().refusals_received > 0u);
  BOOST_TEST(a.Held(b.self()) == 0u);  // nothing from b applied
  BOOST_TEST(b.Held(a.self()) == 0u);
  BOOST_TEST(a.observed == 0u);  // nothing of b's clock absorbed
  // a's messages are fine at b: b absorbs a's HLC.
  BOOST_TEST(b.observed > 0u);
  // Neither session comes up: each needs a message from b accepted at a.
  BOOST_TEST(!a.Peer(net.NowOf(a), "b").welcomed);
  BOOST_TEST(!b.Peer(net.NowOf(b), "a").welcomed);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").state == PeerState::kUp);
}

// A with peers b, c, d; Pongs crafted by hand to set each peer's offset.
struct GateFixture {
  Net net{{{"a", "r1"}, {"b", "r2"}, {"c", "r3"}, {"d", "r4"}}, [](ProtocolOptions* o) {
            o->max_clock_offset_ms = 500;
            o->clock_samples_kept = 3;
          }};
  TestNode& a = net["a"];
  // Ping from a now; the Pong comes back after `rtt` with the peer's clock
  // set `offset` ahead of a's (its header too: a Pong from a peer more
  // than max_clock_offset_ms ahead is refused for its HLC). Returns the
  // Pong's effects (already carried out).
  Effects Sample(const std::string& peer, int64_t offset, uint64_t rtt) {
    net.drop = [](const std::string&, const std::string&, const Message&) { return true; };
    uint64_t sent = net.NowOf(a).wall_ms;
    Effects t;
    a.p->OnTick(net.NowOf(a), &t);
    bool pinged = false;
    for (const auto& [to, m] : SendsOf(t, MsgType::kPing)) pinged |= to == peer;
    BOOST_REQUIRE_MESSAGE(pinged, "no Ping to " << peer << " is due at " << net.mono);
    net.Handle(a, t);  // the Ping (dropped by the network)
    net.mono += rtt;
    Message pong = From(ReplicaId{peer, 1}, net.mono, MsgType::kPong);
    pong.echo_wall_ms = sent;
    pong.pong_wall_ms = static_cast<uint64_t>(static_cast<int64_t>(sent + rtt / 2) + offset);
    pong.header.wall_ms = pong.pong_wall_ms;
    pong.header.hlc = crdt::MakeHlc(pong.pong_wall_ms, 1);
    Effects e = net.Inject(a, pong);
    Effects copy = e;
    net.Handle(a, e);
    net.mono += kHb - rtt;  // the next Ping is due
    return copy;
  }
  // A Ping from `peer` (in range): keeps it up.
  void Hear(const std::string& peer) {
    net.Inject(a, From(ReplicaId{peer, 1}, net.mono, MsgType::kPing));
  }
  // A message from `peer` whose clock is `offset` ahead of a's, now.
  Message Ahead(const std::string& peer, int64_t offset, MsgType type) {
    Message m = From(ReplicaId{peer, 1}, net.mono, type);
    m.header.wall_ms = static_cast<uint64_t>(static_cast<int64_t>(net.NowOf(a).wall_ms) + offset);
    m.header.hlc = crdt::MakeHlc(m.header.wall_ms, 1);
    return m;
  }
};

BOOST_FIXTURE_TEST_CASE(offset_is_half_rtt_corrected_from_the_best_sample, GateFixture) {
  Sample("b", 300, 100);
  PeerStatus ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(ps.has_clock_sample);
  BOOST_TEST(ps.clock_offset_ms == 300);
  BOOST_TEST(ps.rtt_ms == 100u);
  // A slower round trip measures worse: the estimate keeps the fast one.
  Sample("b", 150, 400);
  ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(ps.clock_offset_ms == 300);
  BOOST_TEST(ps.rtt_ms == 100u);
  // Three kept: two more samples push the fast one out.
  Sample("b", 200, 300);
  Sample("b", 250, 200);
  ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(ps.clock_offset_ms == 250);
  BOOST_TEST(ps.rtt_ms == 200u);
  // A sample that cannot agree with the kept ones (250 +- 100 and
  // -200 +- 250 do not meet) means a clock stepped: the older ones go,
  // although their round trips were faster.
  Sample("b", -200, 500);
  ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(ps.clock_offset_ms == -200);
  BOOST_TEST(ps.rtt_ms == 500u);
  // One that agrees within the round trips is kept beside it.
  Sample("b", 0, 10);
  Sample("b", -150, 600);
  ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(ps.clock_offset_ms == 0);
  BOOST_TEST(ps.rtt_ms == 10u);
  // A Pong echoing a time a never pinged at is no sample.
  Message pong = From(ReplicaId{"c", 1}, net.mono, MsgType::kPong);
  pong.echo_wall_ms = 12345;
  pong.pong_wall_ms = 99999;
  net.Inject(a, pong);
  BOOST_TEST(!a.Peer(net.NowOf(a), "c").has_clock_sample);
}

BOOST_FIXTURE_TEST_CASE(start_gate_waits_for_samples_from_a_majority, GateFixture) {
  WriteGate g = a.p->Gate();
  BOOST_TEST(!g.ok);
  BOOST_TEST(g.code == "clock_skew");
  BOOST_TEST(g.message.find("0 of its 3") != std::string::npos, g.message);
  Sample("b", 0, 10);
  BOOST_TEST(!a.p->Gate().ok);  // 1 of 3 is not a majority
  Sample("c", 0, 10);
  BOOST_TEST(a.p->Gate().ok);  // 2 of 3
  // Passed once, it stays passed: even when every peer goes down and the
  // one that comes back (d) was never measured.
  net.mono += 20 * kHb;
  net.Tick(a);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").state == PeerState::kDown);
  BOOST_TEST(a.Peer(net.NowOf(a), "d").state == PeerState::kDown);
  net.Inject(a, From(ReplicaId{"d", 1}, net.mono, MsgType::kPing));
  BOOST_TEST(a.Peer(net.NowOf(a), "d").state == PeerState::kUp);
  BOOST_TEST(!a.Peer(net.NowOf(a), "d").has_clock_sample);
  BOOST_TEST(a.p->Gate().ok);
  // b and c come back: what was measured before they were down is kept
  // (stale; in range, so it does not count either way).
  net.Inject(a, From(ReplicaId{"b", 1}, net.mono, MsgType::kPing));
  net.Inject(a, From(ReplicaId{"c", 1}, net.mono, MsgType::kPing));
  BOOST_TEST(a.Peer(net.NowOf(a), "b").has_clock_sample);
  BOOST_TEST(a.p->Gate().ok);
}

BOOST_FIXTURE_TEST_CASE(skew_fence_holds_while_most_reachable_peers_are_off, GateFixture) {
  Sample("b", 300, 10);
  Sample("c", -250, 10);
  Sample("d", 0, 10);
  WriteGate g = a.p->Gate();
  BOOST_TEST(!g.ok);
  BOOST_TEST(g.code == "clock_skew");
  BOOST_TEST(g.message.find("b +") != std::string::npos, g.message);
  BOOST_TEST(g.message.find("c -") != std::string::npos, g.message);
  BOOST_TEST(g.message.find("200 ms") != std::string::npos, g.message);
  BOOST_TEST(g.message.find("500") != std::string::npos, g.message);
  // c's clock is fixed; its better sample wins and only b is off: 1 of 3.
  Sample("c", 0, 2);
  BOOST_TEST(a.p->Gate().ok);
  // Exactly 40% is not beyond it.
  Sample("d", 200, 1);
  BOOST_TEST(a.p->Gate().ok);
  Sample("d", 201, 0);
  BOOST_TEST(!a.p->Gate().ok);
}

BOOST_FIXTURE_TEST_CASE(skew_counts_only_reachable_peers, GateFixture) {
  Sample("b", 300, 10);
  Sample("c", 0, 10);
  Sample("d", 0, 10);
  BOOST_TEST(a.p->Gate().ok);  // 1 of 3
  // c and d go silent and down; b stays: now 1 of 1 reachable is off.
  for (int i = 0; i < 12; ++i) {
    net.Inject(a, From(ReplicaId{"b", 1}, net.mono, MsgType::kPing));
    net.mono += kHb;
    net.Tick(a);
  }
  BOOST_TEST(a.Peer(net.NowOf(a), "c").state == PeerState::kDown);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").state == PeerState::kUp);
  BOOST_TEST(!a.p->Gate().ok);
}

// A peer ahead beyond the limit: its Pongs are refused for their HLC (never
// absorbed), but they still measure it, half-RTT corrected.
BOOST_FIXTURE_TEST_CASE(peers_ahead_beyond_the_limit_close_the_gate_through_refused_pongs,
                        GateFixture) {
  Sample("b", 0, 10);
  Sample("c", 0, 10);
  Sample("d", 0, 10);
  BOOST_REQUIRE(a.p->Gate().ok);
  const crdt::Hlc observed = a.observed;
  BOOST_TEST(observed > 0u);  // the in-range Pongs were absorbed
  Effects e = Sample("b", 1200, 40);
  BOOST_TEST(e.observed_hlc == 0u);
  BOOST_TEST(a.p->counters().refused_clock_offset == 1u);
  auto refusals = SendsOf(e, MsgType::kRefuse);
  BOOST_REQUIRE(refusals.size() == 1u);
  BOOST_TEST((refusals[0].second.reason == RefuseReason::kClockAhead));
  PeerStatus ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(ps.has_clock_sample);
  // The earlier sample had the smaller round trip, but cannot agree with
  // this one: b's clock stepped, and the new sample is the estimate.
  BOOST_TEST(ps.clock_offset_ms == 1200);
  Hear("c");
  Hear("d");
  Sample("b", 1200, 40);
  Sample("b", 1200, 40);
  ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(ps.clock_offset_ms == 1200);
  BOOST_TEST(ps.rtt_ms == 40u);
  BOOST_TEST(a.p->Gate().ok);  // 1 of 3 is off
  for (int i = 0; i < 3; ++i) {
    Hear("d");
    Sample("c", -900, 10);  // behind: its Pongs are accepted
  }
  WriteGate g = a.p->Gate();
  BOOST_TEST(!g.ok);
  BOOST_TEST(g.code == "clock_skew");
  BOOST_TEST(g.message.find("b +1200 ms") != std::string::npos, g.message);
  BOOST_TEST(g.message.find("c -900 ms") != std::string::npos, g.message);
  BOOST_TEST(g.message.find("2 of the 3") != std::string::npos, g.message);
  // Nothing of b's clock was ever absorbed.
  BOOST_TEST(a.observed < crdt::MakeHlc(net.NowOf(a).wall_ms + 500, 0));
  BOOST_TEST(a.p->counters().refused_clock_offset == 3u);
  // The clocks heal: samples back within the limit open the gate again.
  for (int i = 0; i < 3; ++i) {
    Hear("c");
    Hear("d");
    Sample("b", 50, 20);
  }
  ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(ps.clock_offset_ms == 50);
  g = a.p->Gate();
  BOOST_TEST(g.ok, g.message);  // only c is off: 1 of 3
  for (int i = 0; i < 3; ++i) Sample("c", -30, 20);
  BOOST_TEST(a.p->Gate().ok);
  BOOST_TEST(a.p->counters().refused_clock_offset == 3u);
}

// Any other message refused for its HLC gives a one-way sample, used while
// there is no round-trip one; it is not handled and not absorbed.
BOOST_FIXTURE_TEST_CASE(a_refused_message_gives_a_one_way_sample, GateFixture) {
  Effects e = net.Inject(a, Ahead("b", 1500, MsgType::kPing));
  BOOST_TEST(e.observed_hlc == 0u);
  BOOST_TEST(SendsOf(e, MsgType::kPong).empty());
  BOOST_TEST(SendsOf(e, MsgType::kRefuse).size() == 1u);
  PeerStatus ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(ps.state == PeerState::kUp);
  BOOST_TEST(ps.has_clock_sample);
  BOOST_TEST(ps.clock_offset_ms == 1500);
  BOOST_TEST(ps.rtt_ms == 0u);
  e = net.Inject(a, Ahead("c", 700, MsgType::kHello));
  BOOST_TEST(e.observed_hlc == 0u);
  BOOST_TEST(SendsOf(e, MsgType::kWelcome).empty());
  // Samples of two of three: the start gate is passed, and both are off.
  WriteGate g = a.p->Gate();
  BOOST_TEST(!g.ok);
  BOOST_TEST(g.message.find("b +1500 ms") != std::string::npos, g.message);
  BOOST_TEST(g.message.find("c +700 ms") != std::string::npos, g.message);
  // A round-trip sample takes over from the one-way one.
  Sample("b", 100, 10);
  ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(ps.clock_offset_ms == 100);
  BOOST_TEST(ps.rtt_ms == 10u);
  BOOST_TEST(a.p->Gate().ok);  // c off, b in range: not most
  // b's clock steps ahead: a one-way sample beyond what the round trip
  // allows (100 +- 5) shows it at once, before the next Pong.
  net.Inject(a, Ahead("b", 900, MsgType::kHello));
  ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(ps.clock_offset_ms == 900);
  BOOST_TEST(ps.rtt_ms == 0u);
  BOOST_TEST(!a.p->Gate().ok);
  // A one-way sample that a round-trip one allows leaves it the estimate.
  Sample("b", 900, 200);
  net.Inject(a, Ahead("b", 950, MsgType::kPing));
  ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(ps.clock_offset_ms == 900);
  BOOST_TEST(ps.rtt_ms == 200u);
  // Hostile clock values: clamped, no overflow.
  Message wild = Ahead("b", 0, MsgType::kPing);
  wild.header.wall_ms = std::numeric_limits<uint64_t>::max();
  wild.header.hlc = std::numeric_limits<uint64_t>::max();
  net.Inject(a, wild);
  ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(ps.clock_offset_ms > int64_t{1} << 61);
  BOOST_TEST(!a.p->Gate().ok);
}

// This node ahead: its peers refuse its messages with kClockAhead. They
// count as off (and as reachable: they are heard) until one answers a Ping
// sent after its last refusal arrived; a refusal outlives its peer's being
// down.
BOOST_FIXTURE_TEST_CASE(peers_refusing_our_clock_close_the_gate, GateFixture) {
  Sample("b", 0, 10);
  Sample("c", 0, 10);
  Sample("d", 0, 10);
  BOOST_REQUIRE(a.p->Gate().ok);
  // a's Ping goes out now; then b and c refuse what a sent.
  const uint64_t ping_before = net.NowOf(a).wall_ms;
  net.Tick(a);
  net.mono += 5;
  for (const char* peer : {"b", "c"}) {
    Message r = From(ReplicaId{peer, 1}, net.mono, MsgType::kRefuse);
    r.reason = RefuseReason::kClockAhead;
    r.to = a.self();
    r.text = "your hlc is 1200 ms ahead of this node's wall clock; the limit is 500 ms";
    Effects e = net.Inject(a, r);
    BOOST_TEST(e.observed_hlc > 0u);  // the Refuse itself is in range: absorbed
  }
  BOOST_TEST(a.p->counters().refusals_received == 2u);
  WriteGate g = a.p->Gate();
  BOOST_TEST(!g.ok);
  BOOST_TEST(g.code == "clock_skew");
  BOOST_TEST(g.message.find("b (it refuses this node's messages") != std::string::npos, g.message);
  BOOST_TEST(g.message.find("c (it refuses this node's messages") != std::string::npos, g.message);
  BOOST_TEST(g.message.find("2 of the 3") != std::string::npos, g.message);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").state == PeerState::kUp);
  // A Pong to the Ping sent before the refusal arrived proves nothing.
  Message pong = From(ReplicaId{"b", 1}, net.mono, MsgType::kPong);
  pong.echo_wall_ms = ping_before;
  pong.pong_wall_ms = ping_before;
  net.Inject(a, pong);
  BOOST_TEST(!a.p->Gate().ok);
  // b answers a later Ping: it takes a's messages again.
  net.mono += kHb - 5;
  Sample("b", 0, 10);
  BOOST_TEST(a.p->Gate().ok);  // c alone: 1 of 3
  // b refuses again, then every peer goes down and b and c come back: their
  // refusals still stand (a was not measured since), so a stays fenced.
  Message r = From(ReplicaId{"b", 1}, net.mono, MsgType::kRefuse);
  r.reason = RefuseReason::kClockAhead;
  r.to = a.self();
  net.Inject(a, r);
  BOOST_TEST(!a.p->Gate().ok);
  for (int i = 0; i < 12; ++i) {
    net.mono += kHb;
    net.Tick(a);
  }
  BOOST_TEST(a.Peer(net.NowOf(a), "b").state == PeerState::kDown);
  BOOST_TEST(a.Peer(net.NowOf(a), "c").state == PeerState::kDown);
  BOOST_TEST(a.p->Gate().ok);  // no reachable peer
  net.Inject(a, From(ReplicaId{"b", 1}, net.mono, MsgType::kHello));
  net.Inject(a, From(ReplicaId{"c", 1}, net.mono, MsgType::kPing));
  g = a.p->Gate();
  BOOST_TEST(!g.ok);
  BOOST_TEST(g.message.find("2 of the 2") != std::string::npos, g.message);
  net.mono += kHb;
  Sample("b", 0, 10);
  BOOST_TEST(a.p->Gate().ok);  // c off, b in range: not most
}

// Only up peers measured since they were last down vouch for this node's
// clock; any peer not down that found it off speaks against it.
BOOST_FIXTURE_TEST_CASE(stale_samples_never_vouch_for_this_node, GateFixture) {
  Sample("b", 300, 10);
  Sample("c", 0, 10);
  Sample("d", 0, 10);
  BOOST_TEST(a.p->Gate().ok);  // 1 of 3
  // c and d go quiet; b keeps talking. Once they are suspect their samples
  // no longer count for a, long before they are down.
  for (int i = 0; i < 4; ++i) {
    net.Inject(a, From(ReplicaId{"b", 1}, net.mono, MsgType::kPing));
    net.mono += kHb;
    net.Tick(a);
  }
  BOOST_TEST(a.Peer(net.NowOf(a), "c").state == PeerState::kSuspect);
  WriteGate g = a.p->Gate();
  BOOST_TEST(!g.ok);
  BOOST_TEST(g.message.find("1 of the 1") != std::string::npos, g.message);
  // They go down and come back: their samples are stale until measured.
  for (int i = 0; i < 8; ++i) {
    net.Inject(a, From(ReplicaId{"b", 1}, net.mono, MsgType::kPing));
    net.mono += kHb;
    net.Tick(a);
  }
  BOOST_TEST(a.Peer(net.NowOf(a), "c").state == PeerState::kDown);
  net.Inject(a, From(ReplicaId{"c", 1}, net.mono, MsgType::kPing));
  net.Inject(a, From(ReplicaId{"d", 1}, net.mono, MsgType::kPing));
  BOOST_TEST(a.Peer(net.NowOf(a), "c").has_clock_sample);  // kept, stale
  BOOST_TEST(!a.p->Gate().ok);
  // A fresh sample replaces the stale ones at once, even a slower one.
  net.mono += kHb;
  Sample("c", 20, 300);
  PeerStatus ps = a.Peer(net.NowOf(a), "c");
  BOOST_TEST(ps.clock_offset_ms == 20);
  BOOST_TEST(ps.rtt_ms == 300u);
  BOOST_TEST(a.p->Gate().ok);  // b off, c in range: not most
  // The other way round: b and c are off, everyone goes down, b and c come
  // back: their stale samples still count against a.
  for (int i = 0; i < 3; ++i) Sample("c", -400, 10);
  BOOST_TEST(!a.p->Gate().ok);
  for (int i = 0; i < 12; ++i) {
    net.mono += kHb;
    net.Tick(a);
  }
  BOOST_TEST(a.p->Gate().ok);  // no reachable peer
  net.Inject(a, From(ReplicaId{"b", 1}, net.mono, MsgType::kPing));
  net.Inject(a, From(ReplicaId{"c", 1}, net.mono, MsgType::kPing));
  g = a.p->Gate();
  BOOST_TEST(!g.ok);
  BOOST_TEST(g.message.find("b +300 ms") != std::string::npos, g.message);
  BOOST_TEST(g.message.find("c -400 ms") != std::string::npos, g.message);
  net.mono += kHb;
  Sample("b", 0, 10);
  BOOST_TEST(a.p->Gate().ok);  // c off, b in range: not most
}

// Through the network: a's clock jumps ahead beyond the limit. Its peers
// refuse its messages and measure it through its refused Pongs; a learns
// from their refusals and stops taking writes; nothing of a's clock is
// absorbed; when a's clock is back, every gate opens again.
BOOST_AUTO_TEST_CASE(a_node_far_ahead_is_fenced_and_reopens_when_its_clock_is_back) {
  Net net({{"a", "r1"}, {"b", "r2"}, {"c", "r3"}}, [](ProtocolOptions* o) {
    o->max_clock_offset_ms = 500;
    o->clock_samples_kept = 2;
  });
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  TestNode& c = net["c"];
  net.Run(2 * kHb);
  for (auto& n : net.nodes) BOOST_REQUIRE(n->p->Gate().ok);
  const uint64_t refused_before = b.p->counters().refused_clock_offset;
  a.wall_offset_ms = 1200;
  b.observed = c.observed = 0;
  net.Run(3 * kHb);
  WriteGate g = a.p->Gate();
  BOOST_TEST(!g.ok);
  BOOST_TEST(g.code == "clock_skew");
  BOOST_TEST(g.message.find("refuses this node's messages") != std::string::npos, g.message);
  BOOST_TEST(a.p->counters().refusals_received > 0u);
  BOOST_TEST(b.p->counters().refused_clock_offset > refused_before);
  // b and c measured a (1200 ms ahead) without absorbing its clock; each
  // still has the other in range, so they keep taking writes.
  BOOST_TEST(b.Peer(net.NowOf(b), "a").clock_offset_ms >= 1150);
  BOOST_TEST(b.Peer(net.NowOf(b), "a").state == PeerState::kUp);
  const crdt::Hlc bound = crdt::MakeHlc(net.NowOf(b).wall_ms + 500, 0);
  BOOST_TEST(b.observed > 0u);
  BOOST_TEST(b.observed < bound);
  BOOST_TEST(c.observed < bound);
  BOOST_TEST(b.p->Gate().ok);
  BOOST_TEST(c.p->Gate().ok);
  // a's clock is back.
  a.wall_offset_ms = 0;
  net.Run(3 * kHb);
  for (auto& n : net.nodes) BOOST_TEST(n->p->Gate().ok, n->id << ": " << n->p->Gate().message);
  BOOST_TEST(std::abs(b.Peer(net.NowOf(b), "a").clock_offset_ms) < 100);
}

BOOST_AUTO_TEST_CASE(no_peers_is_exempt) {
  ProtocolOptions o;
  o.cluster = kCluster;
  o.self = ReplicaId{"solo", 1};
  o.region = "r1";
  Protocol p(o, Applied(), Now{1000, kWallBase, crdt::MakeHlc(kWallBase, 0)});
  BOOST_TEST(p.Gate().ok);
  BOOST_TEST(p.Peers(Now{1000, kWallBase, 0}).empty());
  Effects e;
  p.OnLocalAppend(Now{1001, kWallBase + 1, 0}, kDefaultScope, 3, 30, &e);
  BOOST_TEST(e.ships.empty());
  BOOST_TEST(p.RegionsHolding(kDefaultScope, 3) == 1u);
}

BOOST_AUTO_TEST_CASE(all_peers_down_does_not_hold_writes) {
  Net net{{{"a", "r1"}, {"b", "r2"}, {"c", "r3"}}};
  TestNode& a = net["a"];
  BOOST_TEST(!a.p->Gate().ok);  // unknown peers count as reachable
  net.mono += 10 * kHb - 1;
  net.Tick(a);
  net.ClearFlight();
  BOOST_TEST(!a.p->Gate().ok);
  net.mono += 1;
  net.Tick(a);
  net.ClearFlight();
  BOOST_TEST(a.Peer(net.NowOf(a), "b").state == PeerState::kDown);
  BOOST_TEST(a.Peer(net.NowOf(a), "c").state == PeerState::kDown);
  BOOST_TEST(a.p->Gate().ok);
}

BOOST_AUTO_TEST_CASE(gate_opens_through_the_network_with_agreeing_clocks) {
  Net net{{{"a", "r1"}, {"b", "r2"}, {"c", "r3"}}};
  for (auto& n : net.nodes) BOOST_TEST(!n->p->Gate().ok);
  net.Run(kHb);
  for (auto& n : net.nodes) BOOST_TEST(n->p->Gate().ok, n->id);
}

// --- Durability for w=N, lag, status ---------------------------------------------------

BOOST_AUTO_TEST_CASE(regions_holding_counts_other_regions_once) {
  Net net{{{"a", "r1"}, {"a2", "r1"}, {"b", "r2"}, {"b2", "r2"}, {"c", "r3"}}};
  TestNode& a = net["a"];
  net.Append(a, 10);
  auto welcome = [&](const std::string& node, uint64_t applied) {
    Message w = From(ReplicaId{node, 1}, net.mono, MsgType::kWelcome);
    w.applied = applied;
    w.to = a.self();
    net.Inject(a, w);
  };
  BOOST_TEST(a.p->RegionsHolding(kDefaultScope, 10) == 1u);
  welcome("a2", 10);  // same region: adds nothing
  BOOST_TEST(a.p->RegionsHolding(kDefaultScope, 10) == 1u);
  welcome("b", 5);
  BOOST_TEST(a.p->RegionsHolding(kDefaultScope, 10) == 1u);
  BOOST_TEST(a.p->RegionsHolding(kDefaultScope, 5) == 2u);
  welcome("b2", 10);  // a second node of r2 holds 10: r2 counts once
  BOOST_TEST(a.p->RegionsHolding(kDefaultScope, 10) == 2u);
  BOOST_TEST(a.p->RegionsHolding(kDefaultScope, 5) == 2u);
  welcome("c", 7);
  BOOST_TEST(a.p->RegionsHolding(kDefaultScope, 7) == 3u);
  BOOST_TEST(a.p->RegionsHolding(kDefaultScope, 8) == 2u);
  BOOST_TEST(a.p->RegionsHolding(kDefaultScope, 11) == 0u);  // not even logged here
  // Acks move it on.
  Message ack = From(ReplicaId{"c", 1}, net.mono, MsgType::kAck);
  ack.seq = 10;
  ack.to = a.self();
  net.Inject(a, ack);
  BOOST_TEST(a.p->RegionsHolding(kDefaultScope, 10) == 3u);
}

BOOST_AUTO_TEST_CASE(lag_and_unacked_bytes_follow_the_oldest_unacknowledged_delta) {
  Net net = Pair();
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  net.TickAll();
  net.Deliver();
  b.auto_apply = false;
  const uint64_t w0 = net.NowOf(a).wall_ms;
  net.Append(a, 3, 100);  // at w0: 300 bytes
  net.Deliver();
  net.mono += 100;
  net.Append(a, 2, 10);  // at w0 + 100: 20 bytes
  net.Deliver();
  net.mono += 400;
  PeerStatus ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(ps.unacked_deltas == 5u);
  BOOST_TEST(ps.unacked_bytes == 320u);
  BOOST_TEST(ps.lag_ms == net.NowOf(a).wall_ms - w0);
  // 1..3 acknowledged: the oldest unacknowledged is from w0 + 100.
  BOOST_REQUIRE(!b.pending.empty());
  ApplyRequest first = b.pending.front();
  b.pending.pop_front();
  net.Apply(b, first);
  net.Deliver();
  ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(ps.acked == 3u);
  BOOST_TEST(ps.unacked_deltas == 2u);
  BOOST_TEST(ps.unacked_bytes == 20u);
  BOOST_TEST(ps.lag_ms == net.NowOf(a).wall_ms - (w0 + 100));
  net.ApplyPending(b);
  net.Deliver();
  ps = a.Peer(net.NowOf(a), "b");
  BOOST_TEST(ps.unacked_deltas == 0u);
  BOOST_TEST(ps.unacked_bytes == 0u);
  BOOST_TEST(ps.lag_ms == 0u);
}

BOOST_AUTO_TEST_CASE(deltas_from_before_the_start_count_from_the_start) {
  ProtocolOptions o;
  o.cluster = kCluster;
  o.self = ReplicaId{"a", 1};
  o.region = "r1";
  o.peers = {{"b", "r2"}};
  Applied applied{{{o.self, kDefaultScope}, 7}};
  Protocol p(o, applied, Now{1000, kWallBase, 0});
  std::vector<PeerStatus> ps = p.Peers(Now{4000, kWallBase + 3000, 0});
  BOOST_REQUIRE(ps.size() == 1u);
  BOOST_TEST(ps[0].unacked_deltas == 7u);
  BOOST_TEST(ps[0].lag_ms == 3000u);
  BOOST_TEST(ps[0].last_heard_ms_ago == -1);
  BOOST_TEST(p.RegionsHolding(kDefaultScope, 7) == 1u);
}

BOOST_AUTO_TEST_CASE(lag_and_bytes_per_peer_from_what_each_acknowledged) {
  Net net{{{"a", "r1"}, {"b", "r2"}, {"c", "r3"}}};
  TestNode& a = net["a"];
  const uint64_t w0 = net.NowOf(a).wall_ms;
  net.Append(a, 3, 100 / 3 + 1);  // 102 bytes at w0
  net.mono += 10;
  net.Append(a, 2, 10);  // 20 bytes at w0 + 10
  net.mono += 10;
  net.Append(a, 3, 2);  // 6 bytes at w0 + 20
  net.mono += 70;
  auto welcome = [&](const std::string& node, uint64_t applied) {
    Message w = From(ReplicaId{node, 1}, net.mono, MsgType::kWelcome);
    w.applied = applied;
    w.to = a.self();
    net.Inject(a, w);
  };
  welcome("b", 5);
  welcome("c", 3);
  const uint64_t now_wall = net.NowOf(a).wall_ms;
  PeerStatus b = a.Peer(net.NowOf(a), "b");
  PeerStatus c = a.Peer(net.NowOf(a), "c");
  BOOST_TEST(b.unacked_deltas == 3u);
  BOOST_TEST(b.unacked_bytes == 6u);
  BOOST_TEST(b.lag_ms == now_wall - (w0 + 20));
  BOOST_TEST(c.unacked_deltas == 5u);
  BOOST_TEST(c.unacked_bytes == 26u);
  BOOST_TEST(c.lag_ms == now_wall - (w0 + 10));
}

BOOST_AUTO_TEST_CASE(lag_stays_exact_for_the_oldest_delta_when_records_are_merged) {
  ProtocolOptions o;
  o.cluster = kCluster;
  o.self = ReplicaId{"a", 1};
  o.region = "r1";
  o.peers = {{"b", "r2"}};  // never heard: nothing is acknowledged
  Protocol p(o, Applied(), Now{1000, kWallBase, 0});
  const uint64_t n = 70000;  // more appends than records are kept
  for (uint64_t i = 1; i <= n; ++i) {
    Effects e;
    p.OnLocalAppend(Now{1000 + i, kWallBase + i, 0}, kDefaultScope, i, 3, &e);
    BOOST_REQUIRE(e.ships.empty());
  }
  std::vector<PeerStatus> ps = p.Peers(Now{1000 + n, kWallBase + n + 5, 0});
  BOOST_REQUIRE(ps.size() == 1u);
  BOOST_TEST(ps[0].unacked_deltas == n);
  BOOST_TEST(ps[0].unacked_bytes == 3 * n);
  BOOST_TEST(ps[0].lag_ms == n + 5 - 1);  // seq 1 was appended at kWallBase + 1
}

BOOST_AUTO_TEST_CASE(header_and_effects_basics) {
  Net net = Pair();
  TestNode& a = net["a"];
  Now now{123, 456, 789};
  Header h = a.p->MakeHeader(now);
  BOOST_TEST(h.cluster == kCluster);
  BOOST_TEST(h.protocol == kProtocolVersion);
  BOOST_TEST((h.from == a.self()));
  BOOST_TEST(h.hlc == 789u);
  BOOST_TEST(h.wall_ms == 456u);
  Effects e;
  a.p->OnTick(net.NowOf(a), &e);
  e.observed_hlc = 5;
  e.logs.push_back("x");
  e.peer_events.push_back(PeerEvent{});
  e.applies.push_back(ApplyRequest{});
  e.ships.push_back(ShipRequest{});
  BOOST_TEST(!e.sends.empty());
  e.Clear();
  BOOST_TEST(e.sends.empty());
  BOOST_TEST(e.ships.empty());
  BOOST_TEST(e.applies.empty());
  BOOST_TEST(e.peer_events.empty());
  BOOST_TEST(e.logs.empty());
  BOOST_TEST(e.observed_hlc == 0u);
  BOOST_TEST(std::string(PeerStateName(PeerState::kSuspect)) == "suspect");
}

// Four nodes in three regions, each writing, with a lossy network for a
// while: everyone ends with everyone's log, applied once and in order.
BOOST_AUTO_TEST_CASE(four_nodes_converge_through_loss) {
  Net net({{"a", "r1"}, {"a2", "r1"}, {"b", "r2"}, {"c", "r3"}}, [](ProtocolOptions* o) {
    o->resend_timeout_ms = 1000;
    o->max_deltas_per_message = 3;
    o->window = 7;
  });
  uint64_t counter = 0;
  net.drop = [&](const std::string&, const std::string&, const Message&) {
    return (++counter % 5) == 0;  // every fifth message is lost
  };
  for (int round = 0; round < 20; ++round) {
    for (auto& n : net.nodes) net.Append(*n, 1 + (round % 3));
    net.Run(200);
  }
  net.drop = nullptr;
  net.Run(5000);
  for (auto& n : net.nodes) {
    for (auto& m : net.nodes) {
      if (n == m) continue;
      BOOST_TEST(n->Held(m->self()) == m->log.size(), n->id << " holds of " << m->id);
      std::vector<uint64_t> want(m->log.size());
      for (size_t i = 0; i < want.size(); ++i) want[i] = i + 1;
      BOOST_TEST((n->applied_order[m->self()] == want));
      BOOST_TEST(m->Peer(net.NowOf(*m), n->id).acked == m->log.size());
    }
    BOOST_TEST(n->p->RegionsHolding(kDefaultScope, n->log.size()) == 3u);
    BOOST_TEST(n->p->Gate().ok);
  }
}

// --- Anti-entropy -------------------------------------------------------------

namespace {

Net AeNet(const std::vector<std::pair<std::string, std::string>>& spec,
          const std::function<void(ProtocolOptions*)>& tweak = nullptr) {
  return Net(
      spec,
      [&](ProtocolOptions* o) {
        o->anti_entropy.interval_ms = 1000;
        if (tweak) tweak(o);
      },
      true);
}

size_t CountAe(const std::vector<std::pair<std::string, Message>>& sends, AeKind kind) {
  size_t n = 0;
  for (const auto& [to, m] : sends) n += m.type == MsgType::kAntiEntropy && m.ae.kind == kind;
  return n;
}

}  // namespace

// a and c cannot reach each other; both reach b. What a writes reaches c
// by anti-entropy with b, and c's applied vector covers a's log, so a
// session token from a is honoured at c; when the link heals, a learns
// from c's Welcome that c holds its log and ships none of it again.
BOOST_AUTO_TEST_CASE(anti_entropy_repairs_a_partial_partition) {
  Net net = AeNet({{"a", "r1"}, {"b", "r2"}, {"c", "r3"}});
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  TestNode& c = net["c"];
  net.cut = {{"a", "c"}, {"c", "a"}};
  net.Run(1000);
  net.Append(a, 5);
  net.Run(4000);
  BOOST_TEST(b.Held(a.self()) == 5u);
  BOOST_TEST(c.Held(a.self()) == 5u);  // by repair: c never heard from a
  BOOST_TEST(c.applied_order[a.self()].empty());
  BOOST_TEST((c.p->applied().at({a.self(), kDefaultScope}) == 5u));
  for (int s = 1; s <= 5; ++s) {
    BOOST_TEST(c.kv.count("key/" + std::to_string(s) + "@a") == 1u, "seq " << s);
  }
  BOOST_TEST(c.ae_repairs > 0u);
  BOOST_TEST(c.p->ae_counters().rounds_completed > 0u);
  BOOST_TEST(c.p->ae_counters().states_received >= 5u);
  BOOST_TEST(b.p->ae_counters().states_sent >= 5u);
  BOOST_TEST(Contains(c.logs, "states received"));

  net.cut.clear();
  a.ships.clear();
  net.Run(8000);
  BOOST_TEST(a.Peer(net.NowOf(a), "c").acked == 5u);
  for (const ShipRequest& s : a.ships) BOOST_TEST(s.peer != "c", "a shipped to c again");
  BOOST_TEST(c.applied_order[a.self()].empty());
  for (auto& n : net.nodes) BOOST_TEST(n->kv.size() == 5u);
}

// Deltas held back behind a gap are applied once a repair closes it, and
// the origin is acknowledged at once.
BOOST_AUTO_TEST_CASE(a_repair_that_closes_a_gap_releases_held_deltas) {
  Net net = AeNet({{"a", "r1"}, {"b", "r2"}});
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  net.Run(600);
  Effects e = net.Inject(b, DeltasFrom(a.self(), net.mono, {4, 5}));
  BOOST_TEST(e.applies.empty());  // held: 1..3 are missing
  AeRepair rep;
  rep.peer = "a";
  rep.round = 99;  // not open: the AntiEntropy ignores it; the vector counts
  Applied after = b.durable;
  after[{a.self(), kDefaultScope}] = 3;
  b.durable = after;
  Effects fx;
  b.p->OnAeRepaired(net.NowOf(b), rep, after, &fx);
  BOOST_REQUIRE(fx.applies.size() == 1u);
  BOOST_TEST(fx.applies[0].entries.size() == 2u);
  BOOST_TEST(fx.applies[0].entries.front().seq == 4u);
  auto acks = SendsOf(fx, MsgType::kAck);
  BOOST_REQUIRE(acks.size() == 1u);
  BOOST_TEST(acks[0].first == "a");
  BOOST_TEST(acks[0].second.seq == 3u);
  BOOST_TEST((b.p->applied().at({a.self(), kDefaultScope}) == 3u));
  // The node's own entry never moves by a repair.
  Applied mine = after;
  mine[{b.self(), kDefaultScope}] = 40;
  Effects fx2;
  b.p->OnAeRepaired(net.NowOf(b), rep, mine, &fx2);
  BOOST_TEST(b.p->applied().count({b.self(), kDefaultScope}) == 0u);
}

// While a peer leaves this node's deltas unacknowledged for longer than
// ae_max_ship_lag_ms, rounds this node starts leave it out (they would
// race the deltas); once it acknowledges, a round starts with it.
BOOST_AUTO_TEST_CASE(no_round_with_a_peer_while_deltas_to_it_lag) {
  // (A round a started before b's messages were lost is given up soon.)
  Net net = AeNet({{"a", "r1"}, {"b", "r2"}},
                  [](ProtocolOptions* o) { o->anti_entropy.round_timeout_ms = 1500; });
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  net.Run(1000);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").ae_ready);
  // b's Acks are lost, and so are its anti-entropy messages (their views
  // would tell a what b holds just as well).
  bool drop_acks = true;
  auto lost = [&](const std::string& from, const Message& m) {
    return drop_acks && from == "b" &&
           (m.type == MsgType::kAck || m.type == MsgType::kAntiEntropy);
  };
  net.drop = [&](const std::string& from, const std::string&, const Message& m) {
    return lost(from, m);
  };
  net.Append(a, 3);
  net.Run(1500);
  BOOST_TEST(!a.Peer(net.NowOf(a), "b").ae_ready);
  uint64_t begins = 0;
  net.drop = [&](const std::string& from, const std::string&, const Message& m) {
    if (from == "a" && m.type == MsgType::kAntiEntropy && m.ae.kind == AeKind::kBegin) ++begins;
    return lost(from, m);
  };
  net.Run(3000);
  BOOST_TEST(begins == 0u);
  BOOST_TEST(b.Held(a.self()) == 3u);
  drop_acks = false;  // the next resend is acknowledged
  net.Run(3000);
  BOOST_TEST(a.Peer(net.NowOf(a), "b").ae_ready);
  BOOST_TEST(begins > 0u);
}

// A Ping says how far its sender's log goes; a node shows how much of it
// it has not applied yet.
BOOST_AUTO_TEST_CASE(pings_announce_the_log_end) {
  // Rounds only when the peers come up: none repairs what is pending here.
  Net net = AeNet({{"a", "r1"}, {"b", "r2"}},
                  [](ProtocolOptions* o) { o->anti_entropy.interval_ms = 1000000; });
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  net.Run(600);
  b.auto_apply = false;
  net.Append(a, 4);
  net.Run(600);
  PeerStatus s = b.Peer(net.NowOf(b), "a");
  BOOST_TEST(s.log_end == 4u);
  BOOST_TEST(s.behind == 4u);
  net.ApplyPending(b);
  s = b.Peer(net.NowOf(b), "a");
  BOOST_TEST(s.behind == 0u);
}

// A fresh incarnation refuses writes until a round completed; a node that
// need not bootstrap, or has no peers, never waits for one.
BOOST_AUTO_TEST_CASE(bootstrapping_gate) {
  Net net = AeNet({{"a", "r1"}, {"b", "r2"}}, [](ProtocolOptions* o) {
    o->anti_entropy.must_bootstrap = o->self.node == "b";
  });
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  BOOST_TEST(!b.p->bootstrapped());
  BOOST_TEST(b.p->Gate().code == "bootstrapping");
  BOOST_TEST(a.p->bootstrapped());
  net.cut = {{"a", "b"}, {"b", "a"}};
  net.Run(8000);  // a is down for b: still not bootstrapped
  BOOST_TEST(b.p->Gate().code == "bootstrapping");
  net.cut.clear();
  net.Append(a, 2);
  net.Run(3000);
  BOOST_TEST(b.p->bootstrapped());
  BOOST_TEST(b.p->Gate().ok);
  BOOST_TEST(b.kv.size() == 2u);
  BOOST_TEST(Contains(b.logs, "completed"));

  Net alone = AeNet({{"x", "r1"}}, [](ProtocolOptions* o) { o->anti_entropy.must_bootstrap = true; });
  BOOST_TEST(alone["x"].p->bootstrapped());
  BOOST_TEST(alone["x"].p->Gate().ok);
}

// A fresh incarnation bootstraps only from a node that holds the data:
// two fresh ones cut off from the only bootstrapped node decline each
// other's rounds and keep refusing writes until it is back.
BOOST_AUTO_TEST_CASE(fresh_nodes_do_not_bootstrap_from_each_other) {
  Net net = AeNet({{"a", "r1"}, {"b", "r2"}, {"c", "r3"}}, [](ProtocolOptions* o) {
    o->anti_entropy.must_bootstrap = o->self.node != "a";
  });
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  TestNode& c = net["c"];
  net.Append(a, 2);
  net.cut = {{"a", "b"}, {"b", "a"}, {"a", "c"}, {"c", "a"}};
  net.Run(8000);
  for (TestNode* n : {&b, &c}) {
    BOOST_TEST(!n->p->bootstrapped(), n->id);
    BOOST_TEST(n->p->Gate().code == "bootstrapping", n->id);
    BOOST_TEST(n->p->ae_counters().rounds_declined >= 1u, n->id);
    BOOST_TEST(n->p->ae_counters().rounds_completed == 0u, n->id);
    BOOST_TEST(Contains(n->logs, "has not bootstrapped, so it has no data to give"), n->id);
  }
  net.cut.clear();
  net.Run(4000);
  for (TestNode* n : {&b, &c}) {
    BOOST_TEST(n->p->bootstrapped(), n->id);
    BOOST_TEST(n->Held(a.self()) == 2u, n->id);
    BOOST_TEST(n->kv.size() == 2u, n->id);
  }
  BOOST_TEST(a.p->ae_counters().rounds_declined == 0u);
}

// When no node holds data (every node a fresh incarnation: the first
// node lost its disk before any other bootstrapped from it), nothing can
// come from a round: once every peer is up and says it holds nothing,
// each bootstraps on its own and takes writes.
BOOST_AUTO_TEST_CASE(a_cluster_where_no_node_holds_data_bootstraps_on_its_own) {
  Net net = AeNet({{"a", "r1"}, {"b", "r2"}, {"c", "r3"}},
                  [](ProtocolOptions* o) { o->anti_entropy.must_bootstrap = true; });
  // While c is cut off, a and b cannot know it holds nothing.
  net.cut = {{"a", "c"}, {"c", "a"}, {"b", "c"}, {"c", "b"}};
  net.Run(8000);
  for (const char* id : {"a", "b", "c"}) {
    BOOST_TEST(!net[id].p->bootstrapped(), id);
    BOOST_TEST(!Contains(net[id].logs, "bootstraps on its own"), id);
  }
  net.cut.clear();
  net.Run(2000);
  for (const char* id : {"a", "b", "c"}) {
    BOOST_TEST(net[id].p->bootstrapped(), id);
    BOOST_TEST(net[id].p->Gate().ok, id);
    BOOST_TEST(Contains(net[id].logs, "no node of the cluster holds data"), id);
  }
  net.Append(net["b"], 2);
  net.Run(2000);
  BOOST_TEST(net["a"].Held(net["b"].self()) == 2u);
  BOOST_TEST(net["c"].Held(net["b"].self()) == 2u);

  // With a peer that has bootstrapped, though it holds nothing either, a
  // fresh node waits for a round with it (its Begins say it is a source;
  // while none arrives, it is not known to be none).
  Net one = AeNet({{"a", "r1"}, {"b", "r2"}}, [](ProtocolOptions* o) {
    o->anti_entropy.must_bootstrap = o->self.node == "b";
  });
  one.drop = [](const std::string&, const std::string&, const Message& m) {
    return m.type == MsgType::kAntiEntropy;
  };
  one.Run(6000);
  BOOST_TEST(!one["b"].p->bootstrapped());
  BOOST_TEST(one["b"].p->Gate().code == "bootstrapping");
  one.drop = nullptr;
  one.Run(12000);  // the rounds cut off time out first
  BOOST_TEST(one["b"].p->bootstrapped());
  BOOST_TEST(one["b"].p->ae_counters().rounds_completed >= 1u);
  BOOST_TEST(!Contains(one["b"].logs, "bootstraps on its own"));
}

// A fresh incarnation applies no deltas before its first round: its state
// comes whole from the repair, whose advance makes the early entries
// duplicates when they come again; entries after it are applied as usual.
BOOST_AUTO_TEST_CASE(a_bootstrapping_node_applies_no_deltas) {
  Net net = AeNet({{"a", "r1"}, {"b", "r2"}}, [](ProtocolOptions* o) {
    o->anti_entropy.must_bootstrap = o->self.node == "b";
  });
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  bool block_ae = true;
  net.drop = [&](const std::string&, const std::string&, const Message& m) {
    return block_ae && m.type == MsgType::kAntiEntropy;
  };
  net.Append(a, 3);  // (a holds data: b cannot bootstrap on its own)
  net.Run(2600);
  BOOST_TEST(!b.p->bootstrapped());
  BOOST_TEST(b.Held(a.self()) == 0u);
  BOOST_TEST(b.applied_order[a.self()].empty());
  BOOST_TEST(b.p->counters().deltas_deferred >= 3u);
  block_ae = false;
  net.Run(8000);  // the rounds cut off time out first
  BOOST_TEST(b.p->bootstrapped());
  BOOST_TEST(b.Held(a.self()) == 3u);
  BOOST_TEST(b.kv.size() == 3u);
  BOOST_TEST(b.applied_order[a.self()].empty());  // all three came by the repair
  net.Append(a, 1);
  net.Run(1000);
  BOOST_TEST(b.Held(a.self()) == 4u);
  BOOST_TEST(b.applied_order[a.self()] == std::vector<uint64_t>{4});
}

// A repair whose sender collected tombstones of deletes this node has not
// applied is refused (its states lack them and its advance would vouch for
// what they removed); refused for long enough, the node rejoins. A node
// that has not bootstrapped holds nothing and takes it.
BOOST_AUTO_TEST_CASE(a_repair_from_beyond_this_nodes_floor_is_refused) {
  Net net = AeNet({{"a", "r1"}, {"b", "r2"}});
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  net.Run(600);
  // a's deltas do not reach b: only a repair could bring them.
  net.drop = [](const std::string& from, const std::string&, const Message& m) {
    return from == "a" && m.type == MsgType::kDeltas;
  };
  net.Append(a, 3);
  a.view.floor = {{{a.self(), ""}, 2}};  // a collected deletes up to its seq 2
  net.Run(3000);
  BOOST_TEST(b.p->counters().repairs_below_floor >= 1u);
  BOOST_TEST(b.Held(a.self()) == 0u);
  BOOST_TEST(b.kv.empty());
  BOOST_TEST(Contains(b.logs, "refused a repair from a"));
  BOOST_TEST(!b.rejoin);
  net.Run(4000);  // past 5 anti-entropy intervals
  BOOST_TEST(b.rejoin);
  BOOST_TEST(b.p->Gate().code == "rejoining");
  BOOST_TEST(b.p->Gate().message.find("tombstones") != std::string::npos);

  // With the floor applied here first (by deltas), the repair is taken.
  Net ok = AeNet({{"a", "r1"}, {"b", "r2"}});
  ok.Run(600);
  ok.Append(ok["a"], 2);
  ok.Run(1000);
  BOOST_REQUIRE(ok["b"].Held(ok["a"].self()) == 2u);
  ok.drop = [](const std::string& from, const std::string&, const Message& m) {
    return from == "a" && m.type == MsgType::kDeltas;
  };
  ok.Append(ok["a"], 3);
  ok["a"].view.floor = {{{ok["a"].self(), ""}, 2}};
  ok.Run(8000);
  BOOST_TEST(ok["b"].p->counters().repairs_below_floor == 0u);
  BOOST_TEST(ok["b"].Held(ok["a"].self()) == 5u);
  BOOST_TEST(!ok["b"].rejoin);

  // A node that has not bootstrapped takes it.
  Net fresh = AeNet({{"a", "r1"}, {"b", "r2"}}, [](ProtocolOptions* o) {
    o->anti_entropy.must_bootstrap = o->self.node == "b";
  });
  fresh.Append(fresh["a"], 3);
  fresh["a"].view.floor = {{{fresh["a"].self(), ""}, 3}};
  fresh.Run(3000);
  BOOST_TEST(fresh["b"].p->bootstrapped());
  BOOST_TEST(fresh["b"].Held(fresh["a"].self()) == 3u);
  BOOST_TEST(fresh["b"].p->counters().repairs_below_floor == 0u);
}

// A node that refused a repair for its floor lacks deletes a peer
// collected: it declines the rounds a fresh incarnation begins, which
// bootstraps from the node that holds them instead.
BOOST_AUTO_TEST_CASE(a_node_below_a_floor_is_no_source_for_a_bootstrap) {
  Net net = AeNet({{"a", "r1"}, {"b", "r2"}, {"c", "r3"}}, [](ProtocolOptions* o) {
    o->anti_entropy.must_bootstrap = o->self.node == "c";
  });
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  TestNode& c = net["c"];
  net.drop = [&](const std::string& from, const std::string& to, const Message& m) {
    return from == "a" && to == "b" && m.type == MsgType::kDeltas;
  };
  // c hears no one until b is below a's floor.
  net.cut = {{"a", "c"}, {"c", "a"}, {"b", "c"}, {"c", "b"}};
  net.Run(600);
  net.Append(a, 3);
  a.view.floor = {{{a.self(), ""}, 2}};
  for (int i = 0; i < 20 && b.p->counters().repairs_below_floor == 0; ++i) net.Run(250);
  BOOST_REQUIRE(b.p->counters().repairs_below_floor >= 1u);
  BOOST_REQUIRE(!b.rejoin);
  net.cut = {{"a", "c"}, {"c", "a"}};
  net.Run(1500);
  BOOST_TEST(!c.p->bootstrapped());
  BOOST_TEST(b.p->ae_counters().rounds_declined >= 1u);
  BOOST_TEST(Contains(b.logs, "lacks deletes whose tombstones a peer collected"));
  net.cut.clear();
  net.Run(4000);
  BOOST_TEST(c.p->bootstrapped());
  BOOST_TEST(c.Held(a.self()) == 3u);
}

// Anti-entropy messages pass the header checks like any other: one whose
// HLC is beyond the offset limit is refused and not handled.
BOOST_AUTO_TEST_CASE(anti_entropy_messages_obey_the_clock_offset_rule) {
  Net net = AeNet({{"a", "r1"}, {"b", "r2"}});
  TestNode& a = net["a"];
  net.Run(600);
  Message m = From(ReplicaId{"b", 1}, net.mono, MsgType::kAntiEntropy);
  m.ae.kind = AeKind::kBegin;
  m.ae.round = net.mono + 1000000;
  m.ae.level = 1;
  storage::BucketSums empty;
  for (uint32_t i = 0; i < kFanout; ++i) m.ae.nodes.push_back(AeNode{i, TreeHash(empty, 1, i)});
  Message ahead = m;
  ahead.header.hlc = crdt::MakeHlc(kWallBase + net.mono + 5000, 1);
  Effects e = net.Inject(a, ahead);
  BOOST_TEST(CountAe(e.sends, AeKind::kDone) == 0u);
  BOOST_TEST(SendsOf(e, MsgType::kRefuse).size() == 1u);
  e = net.Inject(a, m);
  BOOST_TEST(CountAe(e.sends, AeKind::kDone) == 1u);  // equal (empty) Views
  BOOST_TEST(SendsOf(e, MsgType::kRefuse).empty());
}

// While every peer is up, delta shipping carries everything: scheduled
// rounds only every ae_all_up_interval_ms. With a peer down, every interval.
BOOST_AUTO_TEST_CASE(rounds_are_rare_while_every_peer_is_up) {
  Net net = AeNet({{"a", "r1"}, {"b", "r2"}, {"c", "r3"}}, [](ProtocolOptions* o) {
    o->ae_all_up_interval_ms = 10000;
  });
  uint64_t begins_from_a = 0;
  net.drop = [&](const std::string& from, const std::string&, const Message& m) {
    if (from == "a" && m.type == MsgType::kAntiEntropy && m.ae.kind == AeKind::kBegin) {
      ++begins_from_a;
    }
    return false;
  };
  net.Run(1000);  // the rounds when the peers come up
  const uint64_t at_start = begins_from_a;
  net.Run(9000);
  BOOST_TEST(begins_from_a - at_start <= 1u);
  // c goes away: a's rounds with b run every interval again.
  net.cut = {{"a", "c"}, {"c", "a"}, {"b", "c"}, {"c", "b"}};
  net.Run(6000);  // c is down for a after 10 heartbeats
  const uint64_t cut_at = begins_from_a;
  net.Run(5000);
  BOOST_TEST(begins_from_a - cut_at >= 4u);
}

// While every peer is up, a due round waits for a quiet moment (no delta
// in flight to or from any peer, none moved for a heartbeat: a round would
// send the deltas in flight again as states), but no longer than
// ae_all_up_max_wait_ms.
BOOST_AUTO_TEST_CASE(rounds_while_every_peer_is_up_wait_for_a_quiet_moment) {
  Net net = AeNet({{"a", "r1"}, {"b", "r2"}, {"c", "r3"}}, [](ProtocolOptions* o) {
    o->ae_all_up_interval_ms = 5000;
    o->ae_all_up_max_wait_ms = 8000;
  });
  uint64_t begins_from_a = 0;
  net.drop = [&](const std::string& from, const std::string&, const Message& m) {
    if (from == "a" && m.type == MsgType::kAntiEntropy && m.ae.kind == AeKind::kBegin) {
      ++begins_from_a;
    }
    return false;
  };
  TestNode& a = net["a"];
  // Every step a appends right before the ticks, so its deltas are in
  // flight to both peers whenever it looks; with `settled`, after they
  // are delivered and acknowledged: nothing is in flight when it looks,
  // but deltas moved a moment ago.
  auto busy = [&](uint64_t ms, bool settled = false) {
    for (uint64_t t = 0; t < ms; t += 50) {
      net.mono += 50;
      net.Append(a, 1);
      if (settled) net.Deliver();
      net.TickAll();
      net.Deliver();
    }
  };
  net.Run(1000);  // the first rounds: the next is due within 5 s
  BOOST_REQUIRE(begins_from_a >= 1u);
  uint64_t before = begins_from_a;
  busy(3500);  // due within the first 5 s, but never quiet
  busy(3500, true);  // and less than 8 s late
  BOOST_TEST(begins_from_a == before);
  before = begins_from_a;
  net.Run(1500);  // quiet: the late round starts
  BOOST_TEST(begins_from_a > before);
  before = begins_from_a;
  busy(16000);  // due within 5 s, and never quiet: it starts 8 s late
  BOOST_TEST(begins_from_a > before);
  BOOST_TEST(begins_from_a - before <= 2u);
  net.Run(1000);
  BOOST_TEST(net["b"].Held(a.self()) == a.log.size());
}

// --- Log collection -------------------------------------------------------------

// The own log goes once every peer acknowledged it; a peer cut off pins
// what it lacks (within the retention limits) until it acknowledges.
BOOST_AUTO_TEST_CASE(the_log_is_truncated_up_to_what_every_peer_acknowledged) {
  Net net = AeNet({{"a", "r1"}, {"b", "r2"}, {"c", "r3"}});
  TestNode& a = net["a"];
  net.Run(1000);
  net.Append(a, 5);
  net.Run(1000);
  BOOST_TEST(a.truncated == 5u);
  BOOST_TEST(a.p->log_start() == 6u);
  BOOST_TEST(a.p->counters().log_truncated == 5u);
  net.cut = {{"a", "c"}, {"c", "a"}};
  net.Append(a, 4);
  net.Run(3000);
  BOOST_TEST(a.truncated == 5u);  // c lacks 6..9 and still pins them
  BOOST_TEST(a.Peer(net.NowOf(a), "c").pins_log);
  BOOST_TEST(!a.Peer(net.NowOf(a), "c").beyond_log);
  net.cut.clear();
  net.Run(2000);
  BOOST_TEST(a.truncated == 9u);
  BOOST_TEST(a.p->log_start() == 10u);
  BOOST_TEST(net["c"].Held(a.self()) == 9u);
}

// A peer away past log_retention_ms pins nothing: the log is truncated
// without it, and when it is back it gets no deltas of what is gone but is
// repaired by anti-entropy, after which shipping resumes.
BOOST_AUTO_TEST_CASE(a_peer_away_beyond_retention_is_repaired_by_anti_entropy) {
  Net net = AeNet({{"a", "r1"}, {"b", "r2"}, {"c", "r3"}},
                  [](ProtocolOptions* o) { o->log_retention_ms = 4000; });
  TestNode& a = net["a"];
  TestNode& c = net["c"];
  net.Run(1000);
  net.cut = {{"a", "c"}, {"c", "a"}, {"b", "c"}, {"c", "b"}};
  net.Append(a, 5);
  net.Run(3000);
  BOOST_TEST(a.truncated == 0u);  // c still pins 1..5
  net.Run(2000);
  BOOST_TEST(a.truncated == 5u);  // 1..5 are older than 4 s: c no longer pins them
  BOOST_TEST(!a.Peer(net.NowOf(a), "c").pins_log);
  BOOST_TEST(Contains(a.logs, "beyond the retention limits"));
  net.Append(a, 2);  // 6, 7: c pins these (fresh) but lacks 1..5
  net.Run(1000);
  BOOST_TEST(a.truncated == 7u);
  a.ships.clear();
  net.cut.clear();
  net.Run(6000);
  BOOST_TEST(c.Held(a.self()) == 7u);
  BOOST_TEST(c.applied_order[a.self()].empty());  // nothing by deltas: all by repair
  for (int q = 1; q <= 7; ++q) {
    BOOST_TEST(c.kv.count("key/" + std::to_string(q) + "@a") == 1u, "seq " << q);
  }
  BOOST_TEST(a.p->counters().beyond_log >= 1u);
  BOOST_TEST(Contains(a.logs, "anti-entropy repairs it"));
  const PeerStatus ps = a.Peer(net.NowOf(a), "c");
  BOOST_TEST(ps.acked == 7u);
  BOOST_TEST(!ps.beyond_log);
  BOOST_TEST(ps.pins_log);
  // Shipping resumes past the repair.
  net.Append(a, 3);
  net.Run(1000);
  BOOST_TEST(c.Held(a.self()) == 10u);
  BOOST_TEST((c.applied_order[a.self()] == std::vector<uint64_t>{8, 9, 10}));
  BOOST_TEST(a.truncated == 10u);
}

// Past log_retention_bytes of what it lacks, a peer pins nothing either.
BOOST_AUTO_TEST_CASE(a_peer_lacking_more_than_the_retained_bytes_pins_nothing) {
  Net net = AeNet({{"a", "r1"}, {"b", "r2"}},
                  [](ProtocolOptions* o) {
                    o->log_retention_bytes = 100;
                    o->anti_entropy.round_timeout_ms = 1500;  // rounds cut short end soon
                  });
  TestNode& a = net["a"];
  net.Run(1000);
  net.cut = {{"a", "b"}, {"b", "a"}};
  net.Append(a, 5, 10);  // 50 bytes
  net.Run(1000);
  BOOST_TEST(a.truncated == 0u);
  net.Append(a, 6, 10);  // 110 bytes
  net.Run(1000);
  BOOST_TEST(a.truncated == 11u);
  net.cut.clear();
  net.Run(5000);
  BOOST_TEST(net["b"].Held(a.self()) == 11u);
  BOOST_TEST(net["b"].applied_order[a.self()].empty());
}

// After a restart nothing says how much a peer holds until it welcomes
// this node again: it pins everything retained until then. Without
// anti-entropy nothing could repair a peer past the log, so peers pin the
// log whatever its age.
BOOST_AUTO_TEST_CASE(unknown_peers_pin_the_log_and_without_anti_entropy_every_peer_does) {
  {
    Net net = AeNet({{"a", "r1"}, {"b", "r2"}});
    TestNode& a = net["a"];
    net.Run(1000);
    net.Append(a, 3);
    net.Run(1000);
    BOOST_TEST(a.truncated == 3u);
    net.cut = {{"a", "b"}, {"b", "a"}};
    net.Append(a, 4);
    net.Restart(a);
    BOOST_TEST(a.p->log_start() == 4u);
    net.Run(3000);
    BOOST_TEST(a.truncated == 3u);
    BOOST_TEST(a.Peer(net.NowOf(a), "b").pins_log);
    net.cut.clear();
    net.Run(2000);
    BOOST_TEST(a.truncated == 7u);
    BOOST_TEST((net["b"].applied_order[a.self()] == std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7}));
  }
  {
    Net net = Pair([](ProtocolOptions* o) { o->log_retention_ms = 1000; });
    TestNode& a = net["a"];
    net.Run(1000);
    net.cut = {{"a", "b"}, {"b", "a"}};
    net.Append(a, 3);
    net.Run(5000);
    BOOST_TEST(a.truncated == 0u);
    net.cut.clear();
    net.Run(3000);
    BOOST_TEST(net["b"].Held(a.self()) == 3u);
    BOOST_TEST(a.truncated == 3u);
  }
}

// --- Causal stability ------------------------------------------------------------

uint64_t StableOf(const TestNode& n, const ReplicaId& origin) {
  const Applied s = n.p->Stable();
  auto it = s.find({origin, kDefaultScope});
  return it == s.end() ? 0 : it->second;
}

// Pings carry applied vectors; an origin's seq is stable once every
// replica reported it, and a cut-off replica holds it back.
BOOST_AUTO_TEST_CASE(stability_follows_every_replicas_reports) {
  Net net = Net({{"a", "r1"}, {"b", "r2"}, {"c", "r3"}});
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  BOOST_TEST(a.p->Stable().empty());  // no report yet
  net.Append(a, 3);
  net.Run(2000);
  BOOST_TEST(StableOf(a, a.self()) == 3u);
  BOOST_TEST(StableOf(b, a.self()) == 3u);
  net.cut = {{"a", "c"}, {"c", "a"}, {"b", "c"}, {"c", "b"}};
  net.Append(a, 2);
  net.Append(b, 4);
  net.Run(2000);
  BOOST_TEST(StableOf(a, a.self()) == 3u);  // c never reported 4, 5
  BOOST_TEST(StableOf(a, b.self()) == 0u);
  BOOST_TEST(StableOf(b, a.self()) == 3u);
  net.cut.clear();
  net.Run(3000);
  BOOST_TEST(StableOf(a, a.self()) == 5u);
  BOOST_TEST(StableOf(a, b.self()) == 4u);
  BOOST_TEST(StableOf(net["c"], b.self()) == 4u);
}

// A report counts only once this node holds everything it holds: until
// then the peer's previous report stands.
BOOST_AUTO_TEST_CASE(a_report_counts_once_this_node_holds_all_of_it) {
  Net net = Pair();
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  net.Append(a, 2);
  net.Run(1500);
  BOOST_TEST(StableOf(a, a.self()) == 2u);
  // b writes; a takes b's deltas but does not apply them yet, while b
  // applies a's next writes and reports them.
  a.auto_apply = false;
  net.Append(b, 3);
  net.Append(a, 2);
  net.Run(1500);
  BOOST_TEST(b.Held(a.self()) == 4u);
  BOOST_TEST(StableOf(a, a.self()) == 2u);  // b's report of a:4 also says b:3, not held here
  net.ApplyPending(a);
  a.auto_apply = true;
  net.Run(1500);
  BOOST_TEST(StableOf(a, a.self()) == 4u);
  BOOST_TEST(StableOf(a, b.self()) == 3u);
}

// A peer heard under a new incarnation (it lost its data) has no usable
// report until its successor reports, and the successor's report holds
// stability back to what it holds.
BOOST_AUTO_TEST_CASE(a_new_incarnation_restarts_its_reports) {
  Net net = AeNet({{"a", "r1"}, {"b", "r2"}});  // a's log is truncated: b is refilled by repair
  TestNode& a = net["a"];
  TestNode& b = net["b"];
  net.Append(a, 3);
  net.Run(1500);
  BOOST_TEST(StableOf(a, a.self()) == 3u);
  // b comes back empty as incarnation 2; a's messages to it are lost, so it
  // stays empty.
  b.opt.self = ReplicaId{"b", 2};
  b.durable.clear();
  b.log.clear();
  b.kv.clear();
  b.applied_order.clear();
  net.Restart(b);
  net.cut = {{"a", "b"}};
  net.Run(1500);
  BOOST_TEST(StableOf(a, a.self()) == 0u);
  net.cut.clear();
  net.Run(3000);
  BOOST_TEST(b.Held(a.self()) == 3u);
  BOOST_TEST(StableOf(a, a.self()) == 3u);
}

// --- Retention horizon ----------------------------------------------------------

namespace {
constexpr uint64_t kHorizon = 20000;
void WithHorizon(ProtocolOptions* o) { o->retention_horizon_ms = kHorizon; }
}  // namespace

// A peer not heard for longer than the horizon, while another is up, is
// retired: it no longer holds back stability or pins the log, and its
// incarnation's messages are refused with kExpired addressed to it.
BOOST_AUTO_TEST_CASE(a_peer_away_beyond_the_horizon_is_retired_and_refused) {
  Net net = Net({{"a", "r1"}, {"b", "r2"}, {"c", "r3"}}, WithHorizon);
  TestNode& a = net["a"];
  TestNode& c = net["c"];
  net.Append(a, 2);
  net.Run(2000);
  BOOST_TEST(StableOf(a, a.self()) == 2u);
  net.cut = {{"a", "c"}, {"c", "a"}, {"b", "c"}, {"c", "b"}};
  net.Append(a, 3);
  net.Run(kHorizon - 2000);
  BOOST_TEST(a.expirations.empty());
  BOOST_TEST(StableOf(a, a.self()) == 2u);  // c holds it back
  net.Run(2500);
  BOOST_REQUIRE(a.expirations.size() == 1u);
  BOOST_TEST((a.expirations[0] == ReplicaId{"c", 1}));
  BOOST_TEST(a.p->counters().expirations == 1u);
  BOOST_TEST(Contains(a.logs, "retired c#1"));
  BOOST_TEST(StableOf(a, a.self()) == 5u);  // b's report alone counts now
  const PeerStatus ps = a.Peer(net.NowOf(a), "c");
  BOOST_TEST(ps.retired);
  BOOST_TEST(ps.expired_through == 1u);
  BOOST_TEST(!ps.pins_log);
  // c, cut off from everyone, retired no one; it is beyond the horizon
  // itself and refuses writes.
  BOOST_TEST(c.expirations.empty());
  BOOST_TEST(c.p->Gate().code == "beyond_horizon");
  BOOST_TEST(c.p->Horizon(net.NowOf(c)).beyond);
  // c's messages are refused and do not mark it up.
  Effects e = net.Inject(a, From(c.self(), net.mono, MsgType::kPing));
  auto refusals = SendsOf(e, MsgType::kRefuse);
  BOOST_REQUIRE(refusals.size() == 1u);
  BOOST_TEST((refusals[0].second.reason == RefuseReason::kExpired));
  BOOST_TEST((refusals[0].second.to == c.self()));
  BOOST_TEST(a.Peer(net.NowOf(a), "c").state == PeerState::kDown);
  BOOST_TEST(a.p->counters().refused_expired >= 1u);
  // Healed, c learns it was retired and must rejoin; it takes no writes.
  net.cut.clear();
  net.Run(2000);
  BOOST_TEST(c.rejoin);
  BOOST_TEST(c.p->Gate().code == "rejoining");
  BOOST_TEST(Contains(c.logs, "retired this incarnation"));
  BOOST_TEST(c.Held(a.self()) == 2u);  // nothing more of a was taken by c
}

// A retirement holds for the whole cluster: a node that does not hear the
// retired incarnation takes it from a peer's Ping (and stores it); one
// that hears it leaves it be; a Ping naming the receiver's own
// incarnation makes it rejoin.
BOOST_AUTO_TEST_CASE(a_peers_retirement_is_taken_by_a_node_that_does_not_hear_the_retired) {
  Net net = Net({{"a", "r1"}, {"b", "r2"}, {"c", "r3"}, {"d", "r4"}}, WithHorizon);
  TestNode& b = net["b"];
  TestNode& c = net["c"];
  net.Run(2000);
  Message ping = From(net["a"].self(), net.mono, MsgType::kPing);
  ping.retired = {ReplicaId{"c", 1}};
  net.Inject(b, ping);  // b hears c: it keeps it
  BOOST_TEST(b.expirations.empty());
  BOOST_TEST(!b.Peer(net.NowOf(b), "c").retired);
  // c cut off from everyone, not yet for the horizon.
  net.cut = {{"a", "c"}, {"c", "a"}, {"b", "c"}, {"c", "b"}, {"d", "c"}, {"c", "d"}};
  net.Run(8000);
  BOOST_TEST(b.Peer(net.NowOf(b), "c").state == PeerState::kDown);
  BOOST_TEST(b.expirations.empty());
  ping = From(net["a"].self(), net.mono, MsgType::kPing);
  ping.retired = {ReplicaId{"c", 1}};
  net.Inject(b, ping);
  BOOST_REQUIRE(b.expirations.size() == 1u);
  BOOST_TEST((b.expirations[0] == ReplicaId{"c", 1}));
  BOOST_TEST(b.p->counters().expirations_adopted == 1u);
  BOOST_TEST(b.Peer(net.NowOf(b), "c").retired);
  BOOST_TEST(Contains(b.logs, "as a did"));
  net.Inject(b, ping);  // once only
  BOOST_TEST(b.expirations.size() == 1u);
  // b passes it on in its own Pings: d, which does not hear c either,
  // takes it from b.
  net.Run(1000);
  BOOST_TEST(net["d"].expirations.size() == 1u);
  BOOST_TEST(net["d"].Peer(net.NowOf(net["d"]), "c").retired);
  // Healed, c is refused by b and d, and rejoins.
  net.cut.clear();
  net.Run(2000);
  BOOST_TEST(c.rejoin);
  // A Ping naming the receiver's own incarnation: it rejoins.
  TestNode& d = net["d"];
  BOOST_TEST(!d.rejoin);
  ping = From(net["a"].self(), net.mono, MsgType::kPing);
  ping.retired = {ReplicaId{"d", 0}};
  net.Inject(d, ping);  // an earlier incarnation: not this one
  BOOST_TEST(!d.rejoin);
  ping.retired = {ReplicaId{"d", 1}};
  net.Inject(d, ping);
  BOOST_TEST(d.rejoin);
  BOOST_TEST(d.p->Gate().code == "rejoining");
}

// A successor incarnation is a peer again: it is welcomed and holds
// stability back until it reports.
BOOST_AUTO_TEST_CASE(the_successor_of_a_retired_incarnation_is_taken) {
  Net net = AeNet({{"a", "r1"}, {"b", "r2"}, {"c", "r3"}}, WithHorizon);
  TestNode& a = net["a"];
  TestNode& c = net["c"];
  net.Append(a, 2);
  net.Run(2000);
  net.cut = {{"a", "c"}, {"c", "a"}, {"b", "c"}, {"c", "b"}};
  net.Run(kHorizon + 1000);
  BOOST_REQUIRE(a.expirations.size() == 1u);
  net.Append(a, 1);
  net.Run(1000);
  BOOST_TEST(StableOf(a, a.self()) == 3u);
  // c rejoins as incarnation 2 with an empty store.
  c.opt.self = ReplicaId{"c", 2};
  c.durable.clear();
  c.log.clear();
  c.kv.clear();
  c.applied_order.clear();
  c.opt.anti_entropy.must_bootstrap = true;
  net.Restart(c);
  net.cut.clear();
  net.Run(200);
  BOOST_TEST(!a.Peer(net.NowOf(a), "c").retired);
  net.Run(4000);
  BOOST_TEST(c.Held(a.self()) == 3u);
  BOOST_TEST(c.p->Gate().ok);
  BOOST_TEST(!c.rejoin);
  net.Append(a, 1);
  net.Run(2000);
  BOOST_TEST(StableOf(a, a.self()) == 4u);
}

// Nodes that have not bootstrapped retire no one, even together a
// majority: the peer they do not hear may be the only one with the data.
BOOST_AUTO_TEST_CASE(nodes_that_have_not_bootstrapped_retire_no_one) {
  Net net = AeNet({{"a", "r1"}, {"b", "r2"}, {"c", "r3"}}, [](ProtocolOptions* o) {
    WithHorizon(o);
    o->anti_entropy.must_bootstrap = o->self.node != "a";
  });
  TestNode& a = net["a"];
  // b and c meet a, but a is cut off before any round completes.
  net.drop = [](const std::string&, const std::string&, const Message& m) {
    return m.type == MsgType::kAntiEntropy;
  };
  net.Append(a, 1);
  net.Run(600);
  BOOST_REQUIRE(!net["b"].p->bootstrapped());
  net.drop = nullptr;
  net.cut = {{"a", "b"}, {"b", "a"}, {"a", "c"}, {"c", "a"}};
  net.Run(2 * kHorizon);
  BOOST_TEST(net["b"].expirations.empty());
  BOOST_TEST(net["c"].expirations.empty());
  BOOST_TEST(a.expirations.empty());  // a alone is no majority
  net.cut.clear();
  net.Run(4000);
  BOOST_TEST(net["b"].p->bootstrapped());
  BOOST_TEST(net["c"].Held(a.self()) == 1u);
  BOOST_TEST(!a.rejoin);
  BOOST_TEST(a.p->Gate().ok);
}

// A node cut off from every peer retires no one (it cannot tell whether
// it is the one away), and with one peer there is never anyone else up.
BOOST_AUTO_TEST_CASE(an_isolated_node_retires_no_one) {
  Net net = Pair(WithHorizon);
  TestNode& a = net["a"];
  net.Run(1000);
  net.cut = {{"a", "b"}, {"b", "a"}};
  net.Run(3 * kHorizon);
  BOOST_TEST(a.expirations.empty());
  BOOST_TEST(net["b"].expirations.empty());
  BOOST_TEST(a.p->Gate().code == "beyond_horizon");
  // Back in contact: writes resume, nothing rejoins.
  net.cut.clear();
  net.Run(2000);
  BOOST_TEST(a.p->Gate().ok);
  BOOST_TEST(net["b"].p->Gate().ok);
  BOOST_TEST(!a.rejoin);
  BOOST_TEST(Contains(a.logs, "shipping resume"));
}

// The last contact is kept across restarts: a node that starts after an
// absence longer than the horizon refuses writes until a peer answers.
BOOST_AUTO_TEST_CASE(a_start_after_the_horizon_refuses_writes_until_a_peer_answers) {
  Net net = Pair(WithHorizon);
  TestNode& a = net["a"];
  net.Run(1000);
  const HorizonStatus h = a.p->Horizon(net.NowOf(a));
  BOOST_TEST(h.last_contact_wall_ms >= kWallBase + net.mono - 1000);
  BOOST_TEST(h.absent_ms < 1000u);
  a.opt.last_contact_wall_ms = net.NowOf(a).wall_ms - kHorizon - 1;
  net.Restart(a);
  BOOST_TEST(a.p->Gate().code == "beyond_horizon");
  net.Run(1000);
  BOOST_TEST(a.p->Gate().ok);
  // Within the horizon it starts writable (once its clock is sampled).
  a.opt.last_contact_wall_ms = net.NowOf(a).wall_ms - kHorizon + 5000;
  net.Restart(a);
  BOOST_TEST(a.p->Gate().code != "beyond_horizon");
  // ... but the absence before the start counts: 5 s more of silence and
  // it is beyond.
  net.cut = {{"a", "b"}, {"b", "a"}};
  net.Run(6000);
  BOOST_TEST(a.p->Gate().code == "beyond_horizon");
}

// Retired incarnations are loaded at the start (as stored): refused at once.
BOOST_AUTO_TEST_CASE(stored_retirements_are_refused_after_a_restart) {
  Net net = Net({{"a", "r1"}, {"b", "r2"}, {"c", "r3"}}, WithHorizon);
  TestNode& a = net["a"];
  TestNode& c = net["c"];
  net.Append(c, 1);  // a knows c's incarnation from its applied vector
  net.Run(1000);
  a.opt.expired = {{"c", 1}};
  net.Restart(a);
  net.Run(2000);
  BOOST_TEST(c.rejoin);
  BOOST_TEST(a.Peer(net.NowOf(a), "c").retired);
  BOOST_TEST(!net["b"].Peer(net.NowOf(net["b"]), "c").retired);
  // A failed store undoes an expiration. (a never hears c after this
  // restart: it knows c's incarnation from its applied vector alone.)
  a.opt.expired.clear();
  net.Restart(a);
  net.cut = {{"a", "c"}, {"c", "a"}, {"b", "c"}, {"c", "b"}};
  a.expirations.clear();
  net.Run(kHorizon + 1000);
  BOOST_REQUIRE(a.expirations.size() == 1u);
  a.p->OnExpirationFailed(a.expirations[0]);
  BOOST_TEST(!a.Peer(net.NowOf(a), "c").retired);
  net.Run(1000);  // retired again at the next heartbeat
  BOOST_TEST(a.expirations.size() == 2u);
  BOOST_TEST(a.Peer(net.NowOf(a), "c").retired);
}

// Two nodes that retired each other: only the greater node id rejoins.
BOOST_AUTO_TEST_CASE(of_two_nodes_that_retired_each_other_the_greater_id_rejoins) {
  Net net = Net({{"a", "r1"}, {"b", "r2"}, {"c", "r3"}}, WithHorizon);
  TestNode& a = net["a"];
  TestNode& c = net["c"];
  net.Run(2000);
  // a and c cut from each other, both still reach b.
  net.cut = {{"a", "c"}, {"c", "a"}};
  net.Run(kHorizon + 1000);
  BOOST_REQUIRE(a.expirations.size() == 1u);
  BOOST_REQUIRE(c.expirations.size() == 1u);
  BOOST_TEST(net["b"].expirations.empty());
  net.cut.clear();
  net.Run(2000);
  BOOST_TEST(!a.rejoin);
  BOOST_TEST(c.rejoin);
  BOOST_TEST(Contains(a.logs, "retired each other"));
  // A refusal addressed to another incarnation is not about this one.
  Message stale = From(ReplicaId{"b", 1}, net.mono, MsgType::kRefuse);
  stale.reason = RefuseReason::kExpired;
  stale.to = ReplicaId{"a", 0};
  net.Inject(a, stale);
  BOOST_TEST(!a.rejoin);
  BOOST_TEST(a.p->Gate().code != "rejoining");
}

// Split in two, only the larger side retires the other: the smaller one,
// out of contact with a majority, retires no one, refuses writes and gives
// nothing away (no deltas, no anti-entropy) until it is taken back, so no
// new incarnation can bootstrap from data older than what was collected.
BOOST_AUTO_TEST_CASE(of_two_sides_of_a_split_only_the_majority_retires) {
  Net net = AeNet({{"a", "r1"}, {"b", "r2"}, {"c", "r3"}, {"d", "r4"}, {"e", "r5"}}, WithHorizon);
  TestNode& a = net["a"];
  net.Run(2000);
  const std::set<std::string> minority = {"a", "b"};
  for (const auto& x : net.nodes) {
    for (const auto& y : net.nodes) {
      if (minority.count(x->id) != minority.count(y->id)) net.cut.insert({x->id, y->id});
    }
  }
  net.Run(kHorizon + 6000);
  for (const char* id : {"c", "d", "e"}) {
    TestNode& n = net[id];
    BOOST_TEST(n.expirations.size() == 2u, id << " retired " << n.expirations.size());
    BOOST_TEST(n.p->Gate().ok, id << ": " << n.p->Gate().message);
  }
  for (const char* id : {"a", "b"}) {
    TestNode& n = net[id];
    BOOST_TEST(n.expirations.empty(), id << " retired " << n.expirations.size());
    BOOST_TEST(n.p->Gate().code == "beyond_horizon", id);
  }
  // a writes nothing new (refused), but what it logged before goes to no
  // one, not even to b, while it is beyond the horizon; nor does it start
  // anti-entropy rounds.
  const uint64_t rounds = a.p->ae_counters().rounds_started;
  net.Append(a, 2);
  a.ships.clear();
  net.Run(3000);
  BOOST_TEST(a.ships.empty());
  BOOST_TEST(net["b"].Held(a.self()) == 0u);
  BOOST_TEST(a.p->ae_counters().rounds_started == rounds);
  // Healed: a and b are refused and rejoin; the majority keeps its data.
  net.cut.clear();
  net.Run(2000);
  BOOST_TEST(a.rejoin);
  BOOST_TEST(net["b"].rejoin);
  for (const char* id : {"c", "d", "e"}) BOOST_TEST(!net[id].rejoin, id);
}
