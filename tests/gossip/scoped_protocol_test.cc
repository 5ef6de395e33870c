// One Protocol per placement scope (gossip/scoped_protocol.h), driven by
// hand: three nodes in three regions, the placed scope "eu/" held by the
// regions of a and b only. Messages travel as bytes (Encode, then Decode);
// each node keeps its own log per scope, serves ShipRequests from it and
// applies ApplyRequests at once, checking they arrive contiguous. Time only
// moves when a test moves it. The last case runs seeded histories with
// more nodes and scopes over a network that loses, duplicates and reorders
// messages.
#define BOOST_TEST_MODULE gossip_scoped_protocol
#include "gossip/scoped_protocol.h"

#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "crdt/causal_context.h"
#include "crdt/hlc.h"
#include "gossip/messages.h"

using namespace meridian;
using namespace meridian::gossip;
using crdt::ReplicaId;

namespace {

constexpr uint64_t kWallBase = 1732550400000;
constexpr uint64_t kHb = 500;
const std::string kEu = "eu/";

struct Node {
  std::string id;
  std::string region;
  std::unique_ptr<ScopedProtocol> p;
  std::map<std::string, std::vector<DeltaEntry>> log;  // scope -> own log (seq i + 1 at i)
  Applied durable;
  uint16_t logical = 0;
  std::vector<Message> received;  // every message delivered to it
  std::vector<std::string> logs;
  std::vector<TruncateRequest> truncates;
};

using Spec = std::vector<std::pair<std::string, std::string>>;  // (node id, region)
using Placed = std::map<std::string, std::set<std::string>>;      // scope -> its regions

class Net {
 public:
  uint64_t mono = 100000;
  std::vector<std::unique_ptr<Node>> nodes;
  Placed placed;
  // Faults: each delivery is lost or duplicated with these odds, and with
  // `reorder` the next message delivered is any one in flight.
  double loss = 0, dup = 0;
  bool reorder = false;
  std::mt19937_64 rng{1};

  // a (r1), b (r2), c (r3); "eu/" held by r1 and r2.
  Net() : Net({{"a", "r1"}, {"b", "r2"}, {"c", "r3"}}, {{kEu, {"r1", "r2"}}}) {}

  Net(const Spec& spec, Placed placed_in) : placed(std::move(placed_in)) {
    for (const auto& [id, region] : spec) {
      auto n = std::make_unique<Node>();
      n->id = id;
      n->region = region;
      ProtocolOptions o;
      o.cluster = "test-cluster";
      o.self = ReplicaId{id, 1};
      o.region = region;
      o.heartbeat_interval_ms = kHb;
      std::vector<ScopeConfig> scopes;
      for (const auto& [scope, regions] : placed) {
        if (regions.count(region) == 0) continue;
        ScopeConfig sc;
        sc.scope = scope;
        for (const auto& [pid, pregion] : spec) {
          if (pid != id && regions.count(pregion) != 0) sc.peers.push_back(PeerConfig{pid, pregion});
        }
        scopes.push_back(sc);
      }
      for (const auto& [pid, pregion] : spec) {
        if (pid != id) o.peers.push_back(PeerConfig{pid, pregion});
      }
      n->p = std::make_unique<ScopedProtocol>(o, scopes, Applied(), NowOf(*n));
      nodes.push_back(std::move(n));
    }
  }

  double Odds() { return std::uniform_real_distribution<double>(0, 1)(rng); }

  bool Holds(const Node& n, const std::string& scope) const {
    auto it = placed.find(scope);
    return scope.empty() || (it != placed.end() && it->second.count(n.region) != 0);
  }

  Node& operator[](const std::string& id) {
    for (auto& n : nodes) {
      if (n->id == id) return *n;
    }
    BOOST_FAIL("no node " + id);
    return *nodes[0];
  }

  Now NowOf(Node& n) {
    Now t;
    t.mono_ms = mono;
    t.wall_ms = kWallBase + mono;
    t.hlc = crdt::MakeHlc(t.wall_ms, ++n.logical);
    return t;
  }

  // This node logs a write of `key` in `scope`.
  uint64_t Append(const std::string& id, const std::string& scope, const std::string& key) {
    Node& n = (*this)[id];
    std::vector<DeltaEntry>& log = n.log[scope];
    const uint64_t seq = log.size() + 1;
    log.push_back(DeltaEntry{seq, key, "delta " + key});
    n.durable[{ReplicaId{id, 1}, scope}] = seq;
    Effects fx;
    n.p->OnLocalAppend(NowOf(n), scope, seq, key.size(), &fx);
    Handle(n, fx);
    Deliver();
    return seq;
  }

  // Moves time on by `ms` in heartbeat steps, delivering everything.
  void Run(uint64_t ms) {
    for (uint64_t t = 0; t < ms; t += 50) {
      mono += 50;
      for (auto& n : nodes) {
        if (mono < n->p->NextTickMs()) continue;
        Effects fx;
        n->p->OnTick(NowOf(*n), &fx);
        Handle(*n, fx);
      }
      Deliver();
    }
  }

  void Inject(const std::string& to, const Message& m) {
    queue.emplace_back(to, Encode(m));
    Deliver();
  }

  std::deque<std::pair<std::string, std::string>> queue;  // (to, frame)

 private:
  void Handle(Node& n, Effects& fx) {
    for (auto& [to, m] : fx.sends) queue.emplace_back(to, Encode(m));
    for (const ShipRequest& s : fx.ships) {
      Message m;
      m.header = n.p->MakeHeader(NowOf(n));
      m.type = MsgType::kDeltas;
      m.scope = s.scope;
      const std::vector<DeltaEntry>& log = n.log[s.scope];
      for (uint64_t seq = s.from_seq; seq <= s.to_seq; ++seq) m.deltas.push_back(log.at(seq - 1));
      queue.emplace_back(s.peer, Encode(m));
    }
    for (const ApplyRequest& r : fx.applies) {
      uint64_t& at = n.durable[{r.origin, r.scope}];
      for (const DeltaEntry& e : r.entries) {
        BOOST_REQUIRE_EQUAL(e.seq, at + 1);
        at = e.seq;
      }
      Effects more;
      n.p->OnApplied(NowOf(n), r.origin, r.scope, at, &more);
      Handle(n, more);
    }
    for (const TruncateRequest& t : fx.truncates) n.truncates.push_back(t);
    for (std::string& line : fx.logs) n.logs.push_back(std::move(line));
  }

  void Deliver() {
    for (int i = 0; i < 100000 && !queue.empty(); ++i) {
      const size_t at = reorder ? rng() % queue.size() : 0;
      auto [to, frame] = std::move(queue[at]);
      queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(at));
      if (loss > 0 && Odds() < loss) continue;
      if (dup > 0 && Odds() < dup) queue.emplace_back(to, frame);
      Message m;
      BOOST_REQUIRE(Decode(frame, &m).ok());
      Node& n = (*this)[to];
      n.received.push_back(m);
      Effects fx;
      n.p->OnMessage(NowOf(n), m, &fx);
      Handle(n, fx);
    }
    BOOST_REQUIRE(queue.empty());
  }
};

uint64_t Held(const Node& n, const std::string& origin, const std::string& scope) {
  auto it = n.durable.find({ReplicaId{origin, 1}, scope});
  return it == n.durable.end() ? 0 : it->second;
}

size_t ReceivedOfScope(const Node& n, const std::string& scope) {
  size_t count = 0;
  for (const Message& m : n.received) count += MessageScope(m) == scope ? 1 : 0;
  return count;
}

}  // namespace

BOOST_AUTO_TEST_CASE(placed_scope_replicates_only_among_its_regions) {
  Net net;
  net.Run(3000);
  BOOST_TEST(net["a"].p->Holds(kEu));
  BOOST_TEST(!net["c"].p->Holds(kEu));
  for (const char* id : {"a", "b", "c"}) BOOST_TEST(net[id].p->Gate().ok, id);

  for (int i = 0; i < 5; ++i) net.Append("a", kEu, "eu/k" + std::to_string(i));
  for (int i = 0; i < 3; ++i) net.Append("a", kDefaultScope, "k" + std::to_string(i));
  net.Append("b", kEu, "eu/from-b");
  net.Run(2000);

  // Each scope has its own sequence: a's "eu/" log and default log both
  // start at 1.
  BOOST_TEST(Held(net["b"], "a", kEu) == 5u);
  BOOST_TEST(Held(net["b"], "a", kDefaultScope) == 3u);
  BOOST_TEST(Held(net["a"], "b", kEu) == 1u);
  BOOST_TEST(Held(net["c"], "a", kDefaultScope) == 3u);
  // c holds nothing of the scope and was never sent a message of it.
  BOOST_TEST(Held(net["c"], "a", kEu) == 0u);
  BOOST_TEST(Held(net["c"], "b", kEu) == 0u);
  BOOST_TEST(ReceivedOfScope(net["c"], kEu) == 0u);
  BOOST_TEST(ReceivedOfScope(net["b"], kEu) > 0u);

  // w=N per scope: the placed scope is held by two regions at most.
  BOOST_TEST(net["a"].p->RegionsHolding(kEu, 5) == 2u);
  BOOST_TEST(net["a"].p->RegionsHolding(kDefaultScope, 3) == 3u);
  BOOST_TEST(net["c"].p->RegionsHolding(kEu, 1) == 0u);

  // Status: a's scopes are the default one and "eu/", whose peer is b only.
  const std::vector<ScopeStatus> scopes = net["a"].p->Scopes(Now{net.mono, kWallBase + net.mono, 0});
  BOOST_REQUIRE(scopes.size() == 2u);
  BOOST_TEST(scopes[0].scope == kDefaultScope);
  BOOST_TEST(scopes[0].peers.size() == 2u);
  BOOST_TEST(scopes[1].scope == kEu);
  BOOST_TEST(scopes[1].log_end == 5u);
  BOOST_REQUIRE(scopes[1].peers.size() == 1u);
  BOOST_TEST(scopes[1].peers[0].node == "b");
  BOOST_TEST(scopes[1].peers[0].acked == 5u);
  BOOST_TEST(scopes[1].peers[0].unacked_deltas == 0u);

  // Applied vectors join every scope's entries; stability is per scope,
  // over that scope's nodes (c's reports do not hold "eu/" back).
  const Applied applied = net["a"].p->applied();
  BOOST_TEST(applied.at({ReplicaId{"a", 1}, kEu}) == 5u);
  BOOST_TEST(applied.at({ReplicaId{"a", 1}, kDefaultScope}) == 3u);
  const Applied stable = net["a"].p->Stable();
  BOOST_TEST(stable.at({ReplicaId{"a", 1}, kEu}) == 5u);
  BOOST_TEST(stable.at({ReplicaId{"a", 1}, kDefaultScope}) == 3u);
  BOOST_TEST(net["c"].p->Stable().count({ReplicaId{"a", 1}, kEu}) == 0u);

  // Logs are truncated per scope once their scope's peers hold them.
  bool eu_truncated = false;
  for (const TruncateRequest& t : net["a"].truncates) {
    eu_truncated = eu_truncated || (t.scope == kEu && t.through_seq == 5);
  }
  BOOST_TEST(eu_truncated);
}

BOOST_AUTO_TEST_CASE(a_node_outside_a_scope_drops_its_messages_unanswered) {
  Net net;
  net.Run(3000);
  Node& c = net["c"];
  const size_t before = c.received.size();
  const size_t a_before = net["a"].received.size();
  Message hello;
  hello.header = net["a"].p->MakeHeader(net.NowOf(net["a"]));
  hello.type = MsgType::kHello;
  hello.region = "r1";
  hello.scope = kEu;
  Message deltas;
  deltas.header = hello.header;
  deltas.type = MsgType::kDeltas;
  deltas.scope = kEu;
  deltas.deltas.push_back(DeltaEntry{1, "eu/x", "delta"});
  net.Inject("c", hello);
  net.Inject("c", deltas);
  BOOST_TEST(c.received.size() == before + 2);
  BOOST_TEST(c.p->unknown_scope() == 2u);
  BOOST_TEST(Held(c, "a", kEu) == 0u);
  bool logged = false;
  for (const std::string& l : c.logs) logged = logged || l.find("does not hold") != std::string::npos;
  BOOST_TEST(logged);
  // Nothing went back to a for them (no time passed: no heartbeats either).
  BOOST_TEST(net["a"].received.size() == a_before);
}

BOOST_AUTO_TEST_CASE(a_scope_session_is_its_own) {
  // b's "eu/" Protocol refuses a message of the default scope handed to it
  // by mistake; the ScopedProtocol never does that, so this goes through
  // the Protocol directly.
  ProtocolOptions o;
  o.cluster = "test-cluster";
  o.self = ReplicaId{"b", 1};
  o.region = "r2";
  o.scope = kEu;
  o.peers.push_back(PeerConfig{"a", "r1"});
  Protocol p(o, Applied{{{ReplicaId{"a", 1}, kDefaultScope}, 7}, {{ReplicaId{"a", 1}, kEu}, 2}},
             Now{1000, kWallBase, crdt::MakeHlc(kWallBase, 0)});
  // It keeps only its scope's entries.
  BOOST_TEST(p.applied().size() == 1u);
  BOOST_TEST(p.applied().count({ReplicaId{"a", 1}, kEu}) == 1u);
  Message hello;
  hello.header.cluster = "test-cluster";
  hello.header.from = ReplicaId{"a", 1};
  hello.header.wall_ms = kWallBase;
  hello.header.hlc = crdt::MakeHlc(kWallBase, 1);
  hello.type = MsgType::kHello;
  hello.region = "r1";
  Effects fx;
  p.OnMessage(Now{1001, kWallBase + 1, crdt::MakeHlc(kWallBase + 1, 0)}, hello, &fx);
  BOOST_TEST(fx.sends.empty());
  BOOST_TEST(p.counters().refused_other == 1u);
  hello.scope = kEu;
  fx.Clear();
  p.OnMessage(Now{1002, kWallBase + 2, crdt::MakeHlc(kWallBase + 2, 0)}, hello, &fx);
  BOOST_REQUIRE(!fx.sends.empty());
  BOOST_TEST((fx.sends[0].second.type == MsgType::kWelcome));
  BOOST_TEST(fx.sends[0].second.scope == kEu);
  BOOST_TEST(fx.sends[0].second.applied == 2u);
}

// Seeded histories (MERIDIAN_SCOPED_SEEDS, default 20): five nodes in three
// regions, "x/" held by two regions and "y/" by one (two nodes), writes
// to every scope at the nodes that hold it while messages are lost,
// duplicated and reordered; then the faults stop. Every node then holds
// every origin's log of each scope it holds, and no node was ever sent a
// message of a scope it does not hold.
BOOST_AUTO_TEST_CASE(scopes_converge_apart_under_loss_duplication_and_reordering) {
  const char* env = std::getenv("MERIDIAN_SCOPED_SEEDS");
  const int seeds = env != nullptr ? std::atoi(env) : 20;
  const Spec spec = {{"a1", "r1"}, {"a2", "r1"}, {"b1", "r2"}, {"c1", "r3"}, {"c2", "r3"}};
  const Placed placed = {{"x/", {"r1", "r2"}}, {"y/", {"r3"}}};
  for (int seed = 1; seed <= seeds; ++seed) {
    BOOST_TEST_CONTEXT("seed " << seed) {
      Net net(spec, placed);
      net.rng.seed(static_cast<uint64_t>(seed));
      net.loss = 0.1 + 0.2 * net.Odds();
      net.dup = 0.1 * net.Odds();
      net.reorder = true;
      for (int step = 0; step < 60; ++step) {
        Node& n = *net.nodes[net.rng() % net.nodes.size()];
        std::vector<std::string> scopes = {kDefaultScope};
        for (const auto& [scope, regions] : placed) {
          if (net.Holds(n, scope)) scopes.push_back(scope);
        }
        const std::string& scope = scopes[net.rng() % scopes.size()];
        net.Append(n.id, scope, scope + "k" + std::to_string(step));
        net.Run(50 + net.rng() % 400);
      }
      net.loss = 0;
      net.dup = 0;
      net.reorder = false;
      net.Run(20000);
      for (const auto& n : net.nodes) {
        for (const std::string& scope : {std::string(), std::string("x/"), std::string("y/")}) {
          for (const auto& origin : net.nodes) {
            if (origin.get() == n.get()) continue;
            auto log = origin->log.find(scope);
            const uint64_t written = log == origin->log.end() ? 0 : log->second.size();
            const uint64_t held = Held(*n, origin->id, scope);
            if (net.Holds(*n, scope) && net.Holds(*origin, scope)) {
              BOOST_TEST(held == written, n->id << " holds " << held << " of " << origin->id
                                                 << "'s " << written << " in '" << scope << "'");
            } else {
              BOOST_TEST(held == 0u, n->id << " holds '" << scope << "' entries");
            }
          }
          if (!net.Holds(*n, scope)) {
            BOOST_TEST(ReceivedOfScope(*n, scope) == 0u, n->id << " was sent '" << scope << "'");
          }
        }
        BOOST_TEST(n->p->unknown_scope() == 0u);
        BOOST_TEST(n->p->Gate().ok, n->id << ": " << n->p->Gate().message);
      }
    }
  }
}
