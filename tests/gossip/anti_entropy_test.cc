// Merkle anti-entropy (gossip/anti_entropy.h) between two to four
// AntiEntropy instances over an in-memory network, each over an in-memory
// replica: key -> set of strings, encoded canonically (sorted, one per
// line), join = union. Every message crosses the real wire format
// (gossip::Encode/Decode). The harness checks, after every repair:
//   - the replica's applied vector never claims a write it does not hold
//     (what session tokens and w=N rely on), and
//   - a repair that advances the applied vector leaves the receiver holding,
//     key by key, at least the sender's state at the View it sent
//     (the soundness argument of the header).
// Deterministic: seeded RNGs only. MERIDIAN_SEED=<n> replays one seed of
// the property test; MERIDIAN_AE_SEEDS=<n> changes how many run (500; 100
// under AddressSanitizer, where a history costs 15 times as much).
#define BOOST_TEST_MODULE gossip_anti_entropy
#include "gossip/anti_entropy.h"

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "crdt/causal_context.h"
#include "gossip/messages.h"
#include "storage/digests.h"

using namespace meridian;
using namespace meridian::gossip;

namespace {

using Rng = std::mt19937_64;
using Data = std::map<std::string, std::set<std::string>>;

uint64_t Pick(Rng& rng, uint64_t n) {
  return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng);
}
bool Chance(Rng& rng, double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }

#if defined(__SANITIZE_ADDRESS__)
constexpr uint64_t kDefaultSeeds = 100;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr uint64_t kDefaultSeeds = 100;
#else
constexpr uint64_t kDefaultSeeds = 500;
#endif
#else
constexpr uint64_t kDefaultSeeds = 500;
#endif

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 10);
}

std::string EncodeSet(const std::set<std::string>& s) {
  std::string out;
  for (const std::string& e : s) {
    if (!out.empty()) out += '\n';
    out += e;
  }
  return out;
}

std::set<std::string> DecodeSet(const std::string& bytes) {
  std::set<std::string> out;
  size_t start = 0;
  while (start < bytes.size()) {
    size_t end = bytes.find('\n', start);
    if (end == std::string::npos) end = bytes.size();
    out.insert(bytes.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

crdt::ReplicaId Rid(const std::string& node) { return crdt::ReplicaId{node, 1}; }

// Every entry of `want` is at most the same entry of `have`.
bool Covers(const AeApplied& have, const AeApplied& want) {
  for (const auto& [id, seq] : want) {
    if (seq == 0) continue;
    auto it = have.find(id);
    if (it == have.end() || it->second < seq) return false;
  }
  return true;
}

bool Contains(const Data& have, const Data& want) {
  for (const auto& [key, elems] : want) {
    auto it = have.find(key);
    if (it == have.end()) return false;
    if (!std::includes(it->second.begin(), it->second.end(), elems.begin(), elems.end())) {
      return false;
    }
  }
  return true;
}

// A write: origin's seq-th, which added `element` to `key`.
struct Write {
  std::string key;
  std::string element;
};

struct Replica : ViewSource {
  std::string name;
  Data data;
  AeApplied applied;
  AeApplied floor;  // its collection floor (the View's)
  uint64_t seq = 0;
  // The last View taken, not yet attributed to a round by the harness.
  bool view_taken = false;
  AeApplied last_view_applied;
  Data last_view_data;

  storage::BucketSums Sums() const {
    storage::BucketSums sums;
    for (const auto& [key, elems] : data) {
      sums.Replace(storage::BucketOf(key), storage::Digest(),
                   storage::KeyDigest(key, EncodeSet(elems)));
    }
    return sums;
  }

  void ReadView(const std::string& scope, View* out) override {
    BOOST_REQUIRE(scope.empty());
    out->sums = Sums();
    out->applied = applied;
    out->floor = floor;
    view_taken = true;
    last_view_applied = applied;
    last_view_data = data;
  }
};

struct Node {
  std::string name;
  Replica rep;
  std::unique_ptr<AntiEntropy> ae;
  std::deque<AeRepair> repairs;
  std::deque<AeReadStates> reads;
  std::vector<std::string> logs;
};

struct Wire {
  int from = 0;
  int to = 0;
  std::string bytes;
};

// What crossed the wire (decoded), for assertions.
struct Sent {
  int from = 0;
  int to = 0;
  AeBody body;
};

class Cluster {
 public:
  Cluster(int n, AeOptions opt, uint64_t seed = 1, std::vector<bool> must_bootstrap = {})
      : rng_(seed) {
    for (int i = 0; i < n; ++i) {
      auto node = std::make_unique<Node>();
      node->name = std::string(1, static_cast<char>('a' + i));
      node->rep.name = node->name;
      nodes_.push_back(std::move(node));
    }
    for (int i = 0; i < n; ++i) {
      std::vector<std::string> peers;
      for (int j = 0; j < n; ++j) {
        if (j != i) peers.push_back(nodes_[static_cast<size_t>(j)]->name);
      }
      AeOptions o = opt;
      if (static_cast<size_t>(i) < must_bootstrap.size()) {
        o.must_bootstrap = must_bootstrap[static_cast<size_t>(i)];
      }
      node(i).ae = std::make_unique<AntiEntropy>(o, peers, &node(i).rep);
    }
    link_up_.assign(static_cast<size_t>(n * n), true);
  }

  int size() const { return static_cast<int>(nodes_.size()); }
  Node& node(int i) { return *nodes_.at(static_cast<size_t>(i)); }
  AntiEntropy& ae(int i) { return *node(i).ae; }
  const AeCounters& counters(int i) { return ae(i).counters(); }
  int Index(const std::string& name) const {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i]->name == name) return static_cast<int>(i);
    }
    BOOST_FAIL("unknown node " + name);
    return -1;
  }

  // --- the replicas ---

  // A local write of node i: a new element in `key`, a new seq of its origin.
  void WriteAt(int i, const std::string& key) {
    Replica& r = node(i).rep;
    const uint64_t seq = ++r.seq;
    const std::string element = r.name + ":" + std::to_string(seq);
    r.data[key].insert(element);
    r.applied[{Rid(r.name), ""}] = seq;
    writes_[{r.name, seq}] = Write{key, element};
  }

  // The applied vector never claims a write the replica does not hold.
  void CheckAppliedIsHeld(int i) {
    Replica& r = node(i).rep;
    // Plain ifs: this runs after every repair of the property test.
    for (const auto& [id, seq] : r.applied) {
      if (!id.second.empty()) BOOST_FAIL("an applied entry of another scope");
      for (uint64_t s = 1; s <= seq; ++s) {
        auto w = writes_.find({id.first.node, s});
        if (w == writes_.end()) BOOST_FAIL("no write " << id.first.node << ":" << s);
        auto it = r.data.find(w->second.key);
        if (it == r.data.end() || it->second.count(w->second.element) == 0) {
          BOOST_FAIL(r.name << " claims " << id.first.node << ":" << s << " (key " << w->second.key
                            << ") without holding it (" << seed_label_ << ")");
        }
      }
    }
  }

  bool AllEqual() {
    for (int i = 1; i < size(); ++i) {
      if (node(i).rep.data != node(0).rep.data) return false;
    }
    return true;
  }

  bool AppliedCoverEachOther() {
    for (int i = 0; i < size(); ++i) {
      for (int j = 0; j < size(); ++j) {
        if (!Covers(node(i).rep.applied, node(j).rep.applied)) return false;
      }
    }
    return true;
  }

  // --- the driver ---

  void Tick(int i) {
    AeEffects fx;
    ae(i).OnTick(now, UpPeers(i), &fx);
    Handle(i, fx);
  }
  // What a driver does after a call without AeEffects: tick when due.
  void TickIfDue(int i) {
    if (ae(i).NextTickMs() <= now) Tick(i);
  }
  void PeerDown(int i, int peer) {
    ae(i).PeerDown(node(peer).name);
    TickIfDue(i);
  }
  void TickAll() {
    for (int i = 0; i < size(); ++i) Tick(i);
  }
  void PeerUp(int i, int peer) {
    AeEffects fx;
    ae(i).PeerUp(now, node(peer).name, &fx);
    Handle(i, fx);
  }
  void SetLink(int i, int j, bool up) {
    link_up_[static_cast<size_t>(i * size() + j)] = up;
    link_up_[static_cast<size_t>(j * size() + i)] = up;
  }
  bool LinkUp(int i, int j) const { return link_up_[static_cast<size_t>(i * size() + j)]; }

  // Delivers message `at` of the wire.
  void Deliver(size_t at) {
    Wire w = wire.at(at);
    wire.erase(wire.begin() + static_cast<long>(at));
    if (!LinkUp(w.from, w.to)) return;
    Message m;
    Status s = Decode(w.bytes, &m);
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
    BOOST_REQUIRE(m.type == MsgType::kAntiEntropy);
    BOOST_REQUIRE(m.header.from.node == node(w.from).name);
    AeEffects fx;
    ae(w.to).OnMessage(now, m.header.from.node, m.ae, &fx);
    if (m.ae.kind == AeKind::kBegin && node(w.to).rep.view_taken) {
      node(w.to).rep.view_taken = false;
      views_[{w.to, w.from, m.ae.round, false}] = {node(w.to).rep.last_view_applied,
                                                   node(w.to).rep.last_view_data};
    }
    Handle(w.to, fx);
  }
  // Delivers message `at`, an AeBegin, as a Protocol that does not serve
  // rounds would: AntiEntropy::Decline instead of OnMessage.
  void Decline(size_t at) {
    Wire w = wire.at(at);
    wire.erase(wire.begin() + static_cast<long>(at));
    Message m;
    BOOST_REQUIRE(Decode(w.bytes, &m).ok());
    BOOST_REQUIRE((m.ae.kind == AeKind::kBegin && m.ae.from_initiator));
    AeEffects fx;
    ae(w.to).Decline(node(w.from).name, m.ae, &fx);
    Handle(w.to, fx);
  }
  bool DeliverOne() {
    if (wire.empty()) return false;
    Deliver(reorder ? Pick(rng_, wire.size()) : 0);
    return true;
  }

  // Serves node i's oldest read: its current states of the buckets, in
  // parts of at most states_per_part.
  bool ServeRead(int i) {
    Node& n = node(i);
    if (n.reads.empty()) return false;
    AeReadStates rd = n.reads.front();
    n.reads.pop_front();
    const int to = Index(rd.peer);
    if (Chance(rng_, read_failure)) {
      ae(i).OnReadFailed(rd.peer, rd.round, rd.from_initiator);
      TickIfDue(i);
      return true;
    }
    std::set<uint32_t> buckets(rd.buckets.begin(), rd.buckets.end());
    std::vector<AeState> states;
    for (const auto& [key, elems] : n.rep.data) {
      if (buckets.count(storage::BucketOf(key)) != 0) {
        states.push_back(AeState{key, EncodeSet(elems)});
      }
    }
    size_t at = 0;
    uint32_t part = 0;
    do {
      AeBody b;
      b.kind = AeKind::kStates;
      b.round = rd.round;
      b.from_initiator = rd.from_initiator;
      b.scope = rd.scope;
      b.part = part++;
      const size_t end = std::min(states.size(), at + states_per_part);
      b.states.assign(states.begin() + static_cast<long>(at),
                      states.begin() + static_cast<long>(end));
      at = end;
      b.last = at == states.size();
      if (b.last) {
        b.applied = rd.applied;
        b.floor = rd.floor;
      }
      Send(i, to, b);
    } while (at < states.size());
    ae(i).NoteStatesSent(states.size());
    return true;
  }

  // Applies node i's oldest repair (joins, then the advance), durably.
  bool ApplyRepair(int i) {
    Node& n = node(i);
    if (n.repairs.empty()) return false;
    AeRepair rep = n.repairs.front();
    n.repairs.pop_front();
    const int peer = Index(rep.peer);
    AeEffects fx;
    if (Chance(rng_, repair_failure)) {
      ae(i).OnRepairFailed(rep.peer, rep.round, rep.initiator);
      TickIfDue(i);
      return true;
    }
    for (const AeState& st : rep.states) {
      for (const std::string& e : DecodeSet(st.envelope)) n.rep.data[st.key].insert(e);
    }
    ++repairs_applied;
    if (rep.has_advance) {
      ++advances_applied;
      for (const auto& [id, seq] : rep.advance) {
        uint64_t& mine = n.rep.applied[id];
        mine = std::max(mine, seq);
      }
      // The sender's View of this round: the receiver now holds all of it.
      auto v = views_.find({peer, i, rep.round, !rep.initiator});
      BOOST_REQUIRE_MESSAGE(v != views_.end(), "an advance without a View of the peer");
      BOOST_REQUIRE((v->second.applied == rep.advance));
      BOOST_REQUIRE_MESSAGE(Contains(n.rep.data, v->second.data),
                            n.name << " advanced past " << rep.peer << "'s View of round "
                                   << rep.round << " without holding it (seed " << seed_label_
                                   << ")");
    }
    CheckAppliedIsHeld(i);
    ae(i).OnRepaired(now, rep.peer, rep.round, rep.initiator, rep.has_advance, &fx);
    Handle(i, fx);
    return true;
  }

  // One step of whatever is pending: repairs first, then reads, then the
  // wire (in order, or a random message when reordering).
  bool Step() {
    if (reorder) {
      // Any pending action, chosen at random.
      std::vector<std::pair<int, int>> options;  // (kind, node)
      for (int i = 0; i < size(); ++i) {
        if (!node(i).repairs.empty()) options.push_back({0, i});
        if (!node(i).reads.empty()) options.push_back({1, i});
      }
      if (!wire.empty()) options.push_back({2, 0});
      if (options.empty()) return false;
      auto [kind, i] = options[Pick(rng_, options.size())];
      if (kind == 0) return ApplyRepair(i);
      if (kind == 1) return ServeRead(i);
      return DeliverOne();
    }
    for (int i = 0; i < size(); ++i) {
      if (ApplyRepair(i)) return true;
    }
    for (int i = 0; i < size(); ++i) {
      if (ServeRead(i)) return true;
    }
    return DeliverOne();
  }

  void RunQuiet(size_t max_steps = 200000) {
    size_t steps = 0;
    while (Step()) BOOST_REQUIRE_MESSAGE(++steps < max_steps, "the cluster does not go quiet");
  }

  void Clear() {
    sent.clear();
    for (int i = 0; i < size(); ++i) node(i).logs.clear();
  }

  std::vector<Sent> SentOf(AeKind kind) const {
    std::vector<Sent> out;
    for (const Sent& s : sent) {
      if (s.body.kind == kind) out.push_back(s);
    }
    return out;
  }

  bool Logged(int i, const std::string& part) {
    for (const std::string& l : node(i).logs) {
      if (l.find(part) != std::string::npos) return true;
    }
    return false;
  }

  std::vector<std::string> UpPeers(int i) const {
    std::vector<std::string> up;
    for (int j = 0; j < size(); ++j) {
      if (j != i && LinkUp(i, j)) up.push_back(nodes_[static_cast<size_t>(j)]->name);
    }
    return up;
  }

  uint64_t now = 0;
  std::deque<Wire> wire;
  std::vector<Sent> sent;
  // Faults and shapes.
  double drop = 0;
  double duplicate = 0;
  bool reorder = false;
  double read_failure = 0;
  double repair_failure = 0;
  size_t states_per_part = 1000;
  // Targeted loss: returns true to drop a message.
  std::function<bool(const Sent&)> drop_if;
  uint64_t repairs_applied = 0;
  uint64_t advances_applied = 0;
  std::function<void(int, const AeRepair&)> on_repair;  // every repair handed out
  std::string seed_label_ = "fixed";

 private:
  struct ViewRecord {
    AeApplied applied;
    Data data;
  };

  void Send(int from, int to, const AeBody& body) {
    Sent s{from, to, body};
    sent.push_back(s);
    if (drop_if && drop_if(s)) return;
    if (Chance(rng_, drop)) return;
    Message m;
    m.header.cluster = "t";
    m.header.protocol = kProtocolVersion;
    m.header.from = Rid(node(from).name);
    m.type = MsgType::kAntiEntropy;
    m.ae = body;
    Wire w{from, to, Encode(m)};
    wire.push_back(w);
    if (Chance(rng_, duplicate)) wire.push_back(w);
  }

  void Handle(int i, AeEffects& fx) {
    Node& n = node(i);
    if (n.rep.view_taken) {
      // A round this node started: its Begin names the peer and the round.
      for (const AeSend& s : fx.sends) {
        if (s.body.kind == AeKind::kBegin) {
          views_[{i, Index(s.peer), s.body.round, true}] = {n.rep.last_view_applied,
                                                            n.rep.last_view_data};
        }
      }
      n.rep.view_taken = false;
    }
    for (const AeSend& s : fx.sends) Send(i, Index(s.peer), s.body);
    for (AeReadStates& r : fx.reads) n.reads.push_back(std::move(r));
    for (AeRepair& r : fx.repairs) {
      if (on_repair) on_repair(i, r);
      n.repairs.push_back(std::move(r));
    }
    for (std::string& l : fx.logs) n.logs.push_back(std::move(l));
  }

  Rng rng_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<bool> link_up_;
  std::map<std::pair<std::string, uint64_t>, Write> writes_;
  // (node, peer, round, node is initiator) -> the View it took.
  std::map<std::tuple<int, int, uint64_t, bool>, ViewRecord> views_;
};

AeOptions Options(uint64_t interval = 1000, uint64_t timeout = 10000) {
  AeOptions o;
  o.interval_ms = interval;
  o.round_timeout_ms = timeout;
  return o;
}

// Keys that share one bucket (and one that does not), found by search.
std::vector<std::string> KeysInOneBucket(size_t n, const std::string& prefix) {
  std::vector<std::string> out{prefix + "0"};
  const uint32_t bucket = storage::BucketOf(out[0]);
  for (int i = 1; out.size() < n && i < 10000000; ++i) {
    std::string k = prefix + std::to_string(i);
    if (storage::BucketOf(k) == bucket) out.push_back(k);
  }
  BOOST_REQUIRE(out.size() == n);
  return out;
}

// Starts a round from node 0 to node 1 (PeerUp) and runs it to the end.
void RunRound(Cluster& c, int from = 0, int to = 1) {
  c.PeerUp(from, to);
  c.RunQuiet();
}

}  // namespace

BOOST_AUTO_TEST_CASE(tree_shape_and_hashes) {
  BOOST_TEST(NodesOnLevel(0) == 1u);
  BOOST_TEST(NodesOnLevel(1) == 16u);
  BOOST_TEST(NodesOnLevel(2) == 256u);
  BOOST_TEST(NodesOnLevel(3) == 4096u);
  BOOST_TEST(NodesOnLevel(4) == 0u);
  BOOST_TEST(NodesOnLevel(-1) == 0u);
  storage::BucketSums sums;
  storage::Digest one;
  one.lo = 1;
  storage::Digest big;
  big.hi = 7;
  big.lo = ~0ull;
  sums.Replace(0, storage::Digest(), one);
  sums.Replace(255, storage::Digest(), big);
  sums.Replace(256, storage::Digest(), one);
  sums.Replace(4095, storage::Digest(), one);
  BOOST_TEST((TreeHash(sums, 0, 0) == sums.Total()));
  BOOST_TEST((TreeHash(sums, 1, 0) == one + big));  // buckets 0..255
  BOOST_TEST((TreeHash(sums, 1, 1) == one));        // 256..511
  BOOST_TEST((TreeHash(sums, 1, 15) == one));
  BOOST_TEST(TreeHash(sums, 1, 2).zero());
  BOOST_TEST((TreeHash(sums, 2, 0) == one));   // 0..15
  BOOST_TEST((TreeHash(sums, 2, 15) == big));  // 240..255
  BOOST_TEST((TreeHash(sums, 3, 255) == big));
  BOOST_TEST(TreeHash(sums, 3, 4096).zero());  // out of range
  BOOST_TEST(TreeHash(sums, 4, 0).zero());
  // A parent is the sum of its children, on every level.
  for (int level = 0; level < kLeafLevel; ++level) {
    for (uint32_t i = 0; i < NodesOnLevel(level); ++i) {
      storage::Digest children;
      for (uint32_t c = i * kFanout; c < (i + 1) * kFanout; ++c) {
        children += TreeHash(sums, level + 1, c);
      }
      BOOST_REQUIRE((children == TreeHash(sums, level, i)));
    }
  }
}

BOOST_AUTO_TEST_CASE(identical_replicas_end_in_sync_without_states) {
  Cluster c(2, Options());
  for (int k = 0; k < 50; ++k) c.WriteAt(0, "key/" + std::to_string(k));
  c.node(1).rep.data = c.node(0).rep.data;
  c.node(1).rep.applied = c.node(0).rep.applied;
  RunRound(c);
  // Begin and Done: nothing else crosses.
  BOOST_TEST(c.sent.size() == 2u);
  BOOST_TEST(c.SentOf(AeKind::kBegin).size() == 1u);
  BOOST_TEST(c.SentOf(AeKind::kBegin)[0].body.nodes.size() == kFanout);
  BOOST_REQUIRE(c.SentOf(AeKind::kDone).size() == 1u);
  BOOST_TEST(c.SentOf(AeKind::kDone)[0].body.in_sync);
  BOOST_TEST(c.repairs_applied == 0u);  // the applied vectors were equal too
  for (int i = 0; i < 2; ++i) {
    BOOST_TEST_CONTEXT("node " << i) {
      BOOST_TEST(c.counters(i).rounds_started == 1u);
      BOOST_TEST(c.counters(i).rounds_completed == 1u);
      BOOST_TEST(c.counters(i).rounds_in_sync == 1u);
      BOOST_TEST(c.counters(i).rounds_abandoned == 0u);
      BOOST_TEST(c.counters(i).buckets_repaired == 0u);
      BOOST_TEST(c.counters(i).states_sent == 0u);
      BOOST_TEST(c.counters(i).states_received == 0u);
      BOOST_TEST(c.Logged(i, "completed"));
      BOOST_TEST(c.Logged(i, "in sync"));
    }
  }
  BOOST_TEST(c.Logged(0, "anti-entropy round 1 with b completed as initiator: in sync"));
  BOOST_TEST(c.Logged(1, "anti-entropy round 1 with a completed as responder: in sync"));
  // Later in-sync rounds are counted, not logged.
  c.Clear();
  c.now += 1000;
  RunRound(c);
  for (int i = 0; i < 2; ++i) {
    BOOST_TEST(c.counters(i).rounds_in_sync == 2u);
    BOOST_TEST(!c.Logged(i, "completed"));
  }
}

// Equal states, but b's applied vector lags (it got a's states by a repair
// whose last message was lost): an in-sync round brings it up, with no
// state crossing.
BOOST_AUTO_TEST_CASE(in_sync_round_advances_a_lagging_applied_vector) {
  Cluster c(2, Options());
  for (int k = 0; k < 10; ++k) c.WriteAt(0, "key/" + std::to_string(k));
  c.WriteAt(1, "key/b");
  c.node(0).rep.data["key/b"] = c.node(1).rep.data["key/b"];
  c.node(1).rep.data = c.node(0).rep.data;
  BOOST_REQUIRE(!Covers(c.node(1).rep.applied, c.node(0).rep.applied));
  RunRound(c);
  BOOST_TEST(c.SentOf(AeKind::kStates).empty());
  BOOST_TEST(c.counters(0).rounds_in_sync == 1u);
  BOOST_TEST(c.counters(1).rounds_in_sync == 1u);
  BOOST_TEST(c.advances_applied == 2u);  // each to the other's View
  BOOST_TEST(c.AppliedCoverEachOther());
  // The round again: nothing left to advance.
  c.Clear();
  c.now += 1;
  const uint64_t before = c.repairs_applied;
  RunRound(c);
  BOOST_TEST(c.repairs_applied == before);
  BOOST_TEST(c.counters(0).rounds_in_sync == 2u);
}

// Each repair carries the sender's View collection floor, on the states
// path and on the in-sync path alike (the Protocol checks it).
BOOST_AUTO_TEST_CASE(repairs_carry_the_peers_collection_floor) {
  for (const bool in_sync : {false, true}) {
    BOOST_TEST_CONTEXT("in sync " << in_sync) {
      Cluster c(2, Options());
      for (int k = 0; k < 5; ++k) c.WriteAt(0, "key/" + std::to_string(k));
      c.WriteAt(1, "key/b");
      if (in_sync) {
        c.node(0).rep.data["key/b"] = c.node(1).rep.data["key/b"];
        c.node(1).rep.data = c.node(0).rep.data;
      }
      const AeApplied floor_a = {{{Rid("a"), ""}, 3}};
      const AeApplied floor_b = {{{Rid("b"), ""}, 1}};
      c.node(0).rep.floor = floor_a;
      c.node(1).rep.floor = floor_b;
      std::vector<std::vector<AeApplied>> floors(2);
      c.on_repair = [&](int i, const AeRepair& r) { floors[i].push_back(r.peer_floor); };
      RunRound(c);
      BOOST_TEST(c.SentOf(AeKind::kStates).empty() == in_sync);
      BOOST_REQUIRE(!floors[0].empty());
      BOOST_REQUIRE(!floors[1].empty());
      for (const AeApplied& f : floors[0]) BOOST_TEST((f == floor_b));
      for (const AeApplied& f : floors[1]) BOOST_TEST((f == floor_a));
    }
  }
}

BOOST_AUTO_TEST_CASE(one_differing_key_sends_exactly_its_bucket) {
  Cluster c(2, Options());
  // Keys sharing one bucket with the differing key, and many others.
  std::vector<std::string> same = KeysInOneBucket(3, "same/");
  const uint32_t bucket = storage::BucketOf(same[0]);
  for (const std::string& k : same) c.WriteAt(0, k);
  for (int k = 0; k < 200; ++k) c.WriteAt(0, "key/" + std::to_string(k));
  c.node(1).rep.data = c.node(0).rep.data;
  c.node(1).rep.applied = c.node(0).rep.applied;
  // Both write the same key concurrently.
  c.WriteAt(0, same[1]);
  c.WriteAt(1, same[1]);
  RunRound(c);
  // The descent: level 1 (16 nodes), level 2 (one family), level 3 (one family).
  BOOST_REQUIRE(c.SentOf(AeKind::kHashes).size() == 2u);
  BOOST_TEST(c.SentOf(AeKind::kHashes)[0].body.level == 2);
  BOOST_TEST(c.SentOf(AeKind::kHashes)[0].body.nodes.size() == kFanout);
  BOOST_TEST(c.SentOf(AeKind::kHashes)[1].body.level == 3);
  BOOST_TEST(c.SentOf(AeKind::kHashes)[1].body.nodes.size() == kFanout);
  BOOST_REQUIRE(c.SentOf(AeKind::kWant).size() == 1u);
  BOOST_TEST((c.SentOf(AeKind::kWant)[0].body.buckets == std::vector<uint32_t>{bucket}));
  // Exactly that bucket's states cross, in both directions.
  std::map<int, std::set<std::string>> keys_sent;
  for (const Sent& s : c.SentOf(AeKind::kStates)) {
    for (const AeState& st : s.body.states) keys_sent[s.from].insert(st.key);
  }
  const std::set<std::string> expect(same.begin(), same.end());
  BOOST_TEST((keys_sent[0] == expect));
  BOOST_TEST((keys_sent[1] == expect));
  BOOST_TEST(c.counters(0).states_sent == 3u);
  BOOST_TEST(c.counters(1).states_sent == 3u);
  BOOST_TEST(c.counters(0).states_received == 3u);
  BOOST_TEST(c.counters(1).states_received == 3u);
  // Both converge, and each applied vector covers the other's.
  BOOST_TEST((c.node(0).rep.data == c.node(1).rep.data));
  BOOST_TEST(c.node(0).rep.data.at(same[1]).size() == 3u);  // a:2, a:204 and b:1
  BOOST_TEST(c.node(0).rep.applied.at({Rid("b"), ""}) == 1u);
  BOOST_TEST(c.node(1).rep.applied.at({Rid("a"), ""}) == 204u);
  BOOST_TEST(c.AppliedCoverEachOther());
  for (int i = 0; i < 2; ++i) {
    BOOST_TEST(c.counters(i).rounds_completed == 1u);
    BOOST_TEST(c.counters(i).rounds_in_sync == 0u);
    BOOST_TEST(c.counters(i).buckets_repaired == 1u);
    BOOST_TEST(c.Logged(i, "1 bucket differed"));
  }
}

BOOST_AUTO_TEST_CASE(many_random_differences_converge_in_one_round) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    BOOST_TEST_CONTEXT("seed " << seed) {
      Cluster c(2, Options(), seed);
      c.states_per_part = 1 + seed % 5;
      Rng rng(seed);
      for (int k = 0; k < 400; ++k) c.WriteAt(0, "key/" + std::to_string(k));
      c.node(1).rep.data = c.node(0).rep.data;
      c.node(1).rep.applied = c.node(0).rep.applied;
      for (int w = 0; w < 60; ++w) {
        c.WriteAt(static_cast<int>(Pick(rng, 2)), "key/" + std::to_string(Pick(rng, 600)));
      }
      // The differing buckets, computed apart from the implementation.
      const storage::BucketSums sa = c.node(0).rep.Sums();
      const storage::BucketSums sb = c.node(1).rep.Sums();
      std::vector<uint32_t> differing;
      for (uint32_t b = 0; b < storage::kBuckets; ++b) {
        if (sa.at(b) != sb.at(b)) differing.push_back(b);
      }
      const std::set<uint32_t> dset(differing.begin(), differing.end());
      size_t a_states = 0, b_states = 0;
      for (const auto& [key, e] : c.node(0).rep.data)
        a_states += dset.count(storage::BucketOf(key));
      for (const auto& [key, e] : c.node(1).rep.data)
        b_states += dset.count(storage::BucketOf(key));

      RunRound(c);
      BOOST_REQUIRE(c.SentOf(AeKind::kWant).size() == 1u);
      BOOST_TEST((c.SentOf(AeKind::kWant)[0].body.buckets == differing));
      BOOST_TEST(c.counters(0).states_sent == a_states);
      BOOST_TEST(c.counters(1).states_sent == b_states);
      BOOST_TEST(c.counters(0).buckets_repaired == differing.size());
      BOOST_TEST(c.counters(1).buckets_repaired == differing.size());
      // Every state sent is of a differing bucket.
      for (const Sent& s : c.SentOf(AeKind::kStates)) {
        for (const AeState& st : s.body.states) {
          BOOST_REQUIRE(dset.count(storage::BucketOf(st.key)) == 1u);
        }
      }
      BOOST_TEST((c.node(0).rep.data == c.node(1).rep.data));
      BOOST_TEST(c.AppliedCoverEachOther());
      BOOST_TEST(c.counters(0).rounds_completed == 1u);
      BOOST_TEST(c.counters(1).rounds_completed == 1u);
    }
  }
}

// Writes between the steps of a round: the round may finish, but no
// applied vector claims a write the receiver does not hold (the harness
// checks that and the View containment after every repair), and the next
// round brings the rest.
BOOST_AUTO_TEST_CASE(writes_during_a_round_are_not_claimed) {
  // The writes come after 0, 1, ... 7 steps of the round (Begin, level 2,
  // level 3, b's states read, Want, ...).
  for (int variant = 0; variant < 8; ++variant) {
    BOOST_TEST_CONTEXT("writes after step " << variant) {
      Cluster c(2, Options());
      c.states_per_part = 2;
      std::vector<std::string> same = KeysInOneBucket(2, "mid/");
      for (int k = 0; k < 50; ++k) c.WriteAt(0, "key/" + std::to_string(k));
      c.node(1).rep.data = c.node(0).rep.data;
      c.node(1).rep.applied = c.node(0).rep.applied;
      c.WriteAt(0, same[0]);  // the difference: a bucket of a's
      c.WriteAt(1, "key/7");  // and one of b's
      const uint64_t a_at_view = c.node(0).rep.seq;
      c.PeerUp(0, 1);  // a takes its View and sends Begin
      for (int s = 0; s < variant; ++s) c.Step();
      c.WriteAt(0, same[1]);      // in the differing bucket
      c.WriteAt(0, "key/new-a");  // in a bucket that was equal at a's View
      c.WriteAt(1, "key/new-b");
      c.WriteAt(1, same[0]);
      c.RunQuiet();
      for (int i = 0; i < 2; ++i) c.CheckAppliedIsHeld(i);
      BOOST_TEST(c.counters(1).rounds_completed == 1u);
      // b advanced to a's View, not past it: a's later writes are not claimed.
      BOOST_TEST(c.node(1).rep.applied.at({Rid("a"), ""}) == a_at_view);
      BOOST_TEST(c.node(1).rep.data.count("key/new-a") == 0u);
      // And a claims no write of b's it does not hold.
      const uint64_t b_in_a = c.node(0).rep.applied[{Rid("b"), ""}];
      if (c.node(0).rep.data.count("key/new-b") == 0) BOOST_TEST(b_in_a < c.node(1).rep.seq);
      // Later rounds bring everything.
      for (int r = 0; r < 3; ++r) {
        c.now += 1000;
        c.TickAll();
        c.RunQuiet();
      }
      BOOST_TEST((c.node(0).rep.data == c.node(1).rep.data));
      BOOST_TEST(c.AppliedCoverEachOther());
    }
  }
}

BOOST_AUTO_TEST_CASE(a_lost_message_abandons_the_round_and_the_next_repairs) {
  // Each message kind of the round lost in turn.
  const std::vector<std::pair<AeKind, int>> losses = {{AeKind::kBegin, 0},
                                                      {AeKind::kHashes, 2},
                                                      {AeKind::kHashes, 3},
                                                      {AeKind::kWant, 0},
                                                      {AeKind::kStates, 0}};
  for (const auto& [kind, level] : losses) {
    BOOST_TEST_CONTEXT("losing kind " << static_cast<int>(kind) << " level " << level) {
      Cluster c(2, Options(1000, 5000));
      for (int k = 0; k < 30; ++k) c.WriteAt(0, "key/" + std::to_string(k));
      c.WriteAt(1, "key/3");
      c.TickAll();  // the schedule starts
      const Data a0 = c.node(0).rep.data, b0 = c.node(1).rep.data;
      const AeApplied aa0 = c.node(0).rep.applied, ba0 = c.node(1).rep.applied;
      bool lost = false;
      const AeKind k = kind;
      const int lv = level;
      c.drop_if = [&](const Sent& s) {
        if (lost || s.body.kind != k || (lv != 0 && s.body.level != lv)) return false;
        // The states of a (the initiator): b never gets them.
        if (k == AeKind::kStates && s.from != 0) return false;
        lost = true;
        return true;
      };
      RunRound(c);
      BOOST_REQUIRE(lost);
      if (kind != AeKind::kStates && kind != AeKind::kWant) {
        // Nothing crossed before the loss: nothing changed.
        BOOST_TEST((c.node(0).rep.data == a0));
        BOOST_TEST((c.node(1).rep.data == b0));
        BOOST_TEST((c.node(0).rep.applied == aa0));
        BOOST_TEST((c.node(1).rep.applied == ba0));
      }
      // b never got a's states: b advances nothing.
      if (kind == AeKind::kStates || kind == AeKind::kWant) {
        BOOST_TEST((c.node(1).rep.applied == ba0));
      }
      // The time-out abandons what is open; nothing is advanced by it.
      c.now += 5000;
      c.TickAll();
      const uint64_t abandoned = c.counters(0).rounds_abandoned + c.counters(1).rounds_abandoned;
      BOOST_TEST(abandoned >= 1u);
      BOOST_TEST((c.Logged(0, "abandoned") || c.Logged(1, "abandoned")));
      BOOST_TEST((c.Logged(0, "no progress for 5000 ms") || c.Logged(1, "no progress")));
      c.RunQuiet();  // the aborts
      c.drop_if = nullptr;
      // The next scheduled round repairs.
      c.now += 1000;
      c.Tick(0);
      c.RunQuiet();
      BOOST_TEST((c.node(0).rep.data == c.node(1).rep.data));
      BOOST_TEST(c.AppliedCoverEachOther());
    }
  }
}

// The last part arrives, an earlier one never does: the receiver must not
// advance, however the parts were ordered.
BOOST_AUTO_TEST_CASE(a_lost_middle_part_means_no_advance) {
  Cluster c(2, Options(1000, 5000));
  c.states_per_part = 1;
  std::vector<std::string> same = KeysInOneBucket(4, "p/");
  for (const std::string& k : same) c.WriteAt(0, k);
  c.TickAll();
  bool lost = false;
  c.drop_if = [&](const Sent& s) {
    if (lost || s.body.kind != AeKind::kStates || s.from != 0 || s.body.part != 1) return false;
    lost = true;
    return true;
  };
  RunRound(c);
  BOOST_REQUIRE(lost);
  // b got parts 0, 2, 3 (3 is the last) but not 1: it stores none of them
  // (a round's states go in together, with the advance).
  BOOST_TEST(c.node(1).rep.data.empty());
  BOOST_TEST(c.node(1).rep.applied.count({Rid("a"), ""}) == 0u);
  BOOST_TEST(c.counters(1).rounds_completed == 0u);
  c.now += 5000;
  c.TickAll();
  BOOST_TEST(c.counters(1).rounds_abandoned == 1u);
  BOOST_TEST(c.node(1).rep.applied.count({Rid("a"), ""}) == 0u);
  c.RunQuiet();
  c.drop_if = nullptr;
  c.now += 1000;
  c.Tick(0);
  c.RunQuiet();
  BOOST_TEST((c.node(0).rep.data == c.node(1).rep.data));
  BOOST_TEST(c.node(1).rep.applied.at({Rid("a"), ""}) == 4u);
}

BOOST_AUTO_TEST_CASE(parts_in_any_order_advance_once_all_are_durable) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    BOOST_TEST_CONTEXT("seed " << seed) {
      Cluster c(2, Options(), seed);
      c.states_per_part = 1;
      c.reorder = true;
      std::vector<std::string> same = KeysInOneBucket(5, "o/");
      for (const std::string& k : same) c.WriteAt(0, k);
      c.WriteAt(1, same[2]);
      RunRound(c);
      BOOST_TEST((c.node(0).rep.data == c.node(1).rep.data));
      BOOST_TEST(c.AppliedCoverEachOther());
      BOOST_TEST(c.counters(0).rounds_completed == 1u);
      BOOST_TEST(c.counters(1).rounds_completed == 1u);
    }
  }
}

BOOST_AUTO_TEST_CASE(duplicated_and_stale_messages_are_ignored) {
  Cluster c(2, Options());
  c.states_per_part = 2;
  c.duplicate = 1.0;  // every message twice
  std::vector<std::string> same = KeysInOneBucket(3, "d/");
  for (const std::string& k : same) c.WriteAt(0, k);
  for (int k = 0; k < 20; ++k) c.WriteAt(1, "key/" + std::to_string(k));
  RunRound(c);
  BOOST_TEST((c.node(0).rep.data == c.node(1).rep.data));
  for (int i = 0; i < 2; ++i) {
    BOOST_TEST_CONTEXT("node " << i) {
      BOOST_TEST(c.counters(i).rounds_started == 1u);
      BOOST_TEST(c.counters(i).rounds_completed == 1u);
      BOOST_TEST(c.counters(i).rounds_abandoned == 0u);
    }
  }
  // States counted once however often they came.
  BOOST_TEST(c.counters(1).states_received == 3u);
  BOOST_TEST(c.counters(0).states_received == 20u);
  const uint64_t repairs = c.repairs_applied;

  // Every message of that round, delivered again after it ended: nothing.
  std::vector<Sent> old = c.sent;
  c.duplicate = 0;
  c.now += 10;
  const AeCounters c0 = c.counters(0), c1 = c.counters(1);
  c.Clear();
  for (const Sent& s : old) {
    Message m;
    m.header.from = Rid(c.node(s.from).name);
    m.header.cluster = "t";
    m.type = MsgType::kAntiEntropy;
    m.ae = s.body;
    c.wire.push_back(Wire{s.from, s.to, Encode(m)});
  }
  c.RunQuiet();
  BOOST_TEST(c.sent.empty());  // nobody answered anything
  BOOST_TEST(c.repairs_applied == repairs);
  BOOST_TEST(c.counters(0).rounds_started == c0.rounds_started);
  BOOST_TEST(c.counters(1).rounds_started == c1.rounds_started);
  BOOST_TEST(c.counters(1).states_received == c1.states_received);
  BOOST_TEST(c.counters(0).rounds_abandoned == 0u);
  BOOST_TEST(c.counters(1).rounds_abandoned == 0u);

  // A stale message of round 1 in the middle of round 2 is ignored too.
  c.WriteAt(0, same[0]);
  c.PeerUp(0, 1);
  BOOST_REQUIRE(c.Step());  // Begin of round 2 delivered
  const size_t sent_before = c.sent.size();
  for (const Sent& s : old) {
    if (s.body.kind == AeKind::kHashes || s.body.kind == AeKind::kStates) {
      Message m;
      m.header.from = Rid(c.node(s.from).name);
      m.type = MsgType::kAntiEntropy;
      m.ae = s.body;
      c.wire.push_front(Wire{s.from, s.to, Encode(m)});
    }
  }
  const uint64_t received = c.counters(0).states_received + c.counters(1).states_received;
  while (c.wire.size() > 1) c.DeliverOne();  // the stale ones, ahead of round 2's
  BOOST_TEST(c.sent.size() == sent_before);
  BOOST_TEST(c.counters(0).states_received + c.counters(1).states_received == received);
  c.RunQuiet();
  BOOST_TEST((c.node(0).rep.data == c.node(1).rep.data));
  BOOST_TEST(c.counters(0).rounds_completed == 2u);
  BOOST_TEST(c.counters(1).rounds_completed == 2u);
}

BOOST_AUTO_TEST_CASE(peer_up_starts_a_round_at_once_and_only_one) {
  Cluster c(3, Options());
  c.TickAll();
  BOOST_TEST(c.sent.empty());  // the first scheduled round waits an interval
  c.PeerUp(0, 2);
  BOOST_REQUIRE(c.sent.size() == 1u);
  BOOST_TEST((c.sent[0].body.kind == AeKind::kBegin));
  BOOST_TEST(c.sent[0].to == 2);
  const uint64_t first = c.sent[0].body.round;
  c.PeerUp(0, 2);  // already open with c: no second round
  BOOST_TEST(c.sent.size() == 1u);
  c.PeerUp(0, 1);  // another peer: its own round
  BOOST_TEST(c.sent.size() == 2u);
  BOOST_TEST(c.sent[1].to == 1);
  BOOST_TEST(c.sent[1].body.round > first);
  // Down abandons, up starts afresh.
  c.ae(0).PeerDown("c");
  c.PeerUp(0, 2);
  BOOST_TEST(c.counters(0).rounds_abandoned == 1u);
  BOOST_TEST(c.Logged(0, "abandoned as initiator: the peer went down"));
  BOOST_REQUIRE(c.sent.size() == 3u);
  BOOST_TEST(c.sent[2].to == 2);
  BOOST_TEST(c.sent[2].body.round > c.sent[1].body.round);
  c.RunQuiet();
  BOOST_TEST(c.counters(0).rounds_completed == 2u);
  // Unknown peers are ignored.
  c.Clear();
  AeEffects fx;
  c.ae(0).PeerUp(c.now, "zz", &fx);
  BOOST_TEST(fx.sends.empty());
}

BOOST_AUTO_TEST_CASE(scheduled_rounds_go_round_robin_among_up_peers) {
  Cluster c(4, Options(1000));
  auto targets = [&](int rounds) {
    std::vector<int> out;
    for (int r = 0; r < rounds; ++r) {
      c.Clear();
      c.now += 1000;
      c.Tick(0);
      for (const Sent& s : c.SentOf(AeKind::kBegin)) out.push_back(s.to);
      c.RunQuiet();
    }
    return out;
  };
  c.Tick(0);  // starts the schedule
  BOOST_TEST((targets(6) == std::vector<int>{1, 2, 3, 1, 2, 3}));
  // c (2) down: skipped.
  c.SetLink(0, 2, false);
  BOOST_TEST((targets(4) == std::vector<int>{1, 3, 1, 3}));
  c.SetLink(0, 2, true);
  // A peer with a round still open is skipped: b's round never ends.
  c.Clear();
  c.now += 1000;
  c.Tick(0);
  BOOST_REQUIRE(c.SentOf(AeKind::kBegin).size() == 1u);
  const int open = c.SentOf(AeKind::kBegin)[0].to;
  c.wire.clear();  // lost: the round stays open
  std::vector<int> next = targets(3);
  BOOST_TEST(std::count(next.begin(), next.end(), open) == 0);
  BOOST_TEST(next.size() == 3u);
  // Not before the interval.
  c.Clear();
  c.now += 999;
  c.Tick(0);
  BOOST_TEST(c.sent.empty());
  BOOST_TEST(c.ae(0).NextTickMs() <= c.now + 1);
}

BOOST_AUTO_TEST_CASE(next_tick_is_the_earliest_of_schedule_and_timeouts) {
  Cluster c(2, Options(1000, 300));
  BOOST_TEST(c.ae(0).NextTickMs() == 0u);  // never ticked: now
  c.now = 50;
  c.Tick(0);
  BOOST_TEST(c.ae(0).NextTickMs() == 1050u);
  c.now = 100;
  c.PeerUp(0, 1);
  c.wire.clear();
  BOOST_TEST(c.ae(0).NextTickMs() == 400u);  // the round's time-out
  c.now = 399;
  c.Tick(0);
  BOOST_TEST(c.counters(0).rounds_abandoned == 0u);
  c.now = 400;
  c.Tick(0);
  BOOST_TEST(c.counters(0).rounds_abandoned == 1u);
  BOOST_TEST(c.ae(0).NextTickMs() == 1050u);
  // Calls without AeEffects make the next tick due at once.
  c.PeerUp(0, 1);
  c.ae(0).PeerDown("b");
  BOOST_TEST(c.ae(0).NextTickMs() == c.now);
  c.Clear();
  c.Tick(0);
  BOOST_TEST(c.Logged(0, "the peer went down"));
}

BOOST_AUTO_TEST_CASE(bootstrapped_only_after_a_completed_round) {
  {
    Cluster c(2, Options(1000, 5000), 1, {true, false});
    BOOST_TEST(!c.ae(0).bootstrapped());
    BOOST_TEST(c.ae(1).bootstrapped());  // not a fresh incarnation
    // A round that is lost does not count.
    c.drop = 1.0;
    c.PeerUp(0, 1);
    c.RunQuiet();
    c.now += 5000;
    c.TickAll();
    BOOST_TEST(c.counters(0).rounds_abandoned == 1u);
    BOOST_TEST(!c.ae(0).bootstrapped());
    // A completed round as responder counts.
    c.drop = 0;
    c.WriteAt(1, "k");
    c.PeerUp(1, 0);
    c.RunQuiet();
    BOOST_TEST(c.counters(0).rounds_completed == 1u);
    BOOST_TEST(c.ae(0).bootstrapped());
    BOOST_TEST(c.node(0).rep.data.count("k") == 1u);
  }
  {
    // An in-sync round counts too (two empty nodes).
    Cluster c(2, Options(), 1, {true, true});
    RunRound(c);
    BOOST_TEST(c.ae(0).bootstrapped());
    BOOST_TEST(c.ae(1).bootstrapped());
  }
  {
    // A node with no peers never waits.
    Replica r;
    AeOptions o;
    o.must_bootstrap = true;
    AntiEntropy alone(o, {}, &r);
    BOOST_TEST(alone.bootstrapped());
  }
}

// A round the responder declines (it has no data to give, says the
// Protocol) is abandoned by its initiator and bootstraps no one; a round
// the responder had open with that peer is dropped with it.
BOOST_AUTO_TEST_CASE(a_declined_round_is_abandoned_and_bootstraps_no_one) {
  Cluster c(2, Options(1000, 5000), 1, {true, true});
  c.WriteAt(1, "k");
  // Node 1 answers node 0's first Begin as usual and keeps the round open.
  c.PeerUp(0, 1);
  BOOST_REQUIRE(c.wire.size() == 1u);
  c.Deliver(0);
  c.wire.clear();
  // Node 0 begins again (its first round timed out); node 1 declines.
  c.now += 6000;
  c.Tick(0);
  BOOST_REQUIRE(c.counters(0).rounds_abandoned == 1u);
  if (c.counters(0).rounds_started < 2) {
    c.now += 1000;
    c.Tick(0);
  }
  BOOST_REQUIRE(c.counters(0).rounds_started == 2u);
  BOOST_REQUIRE(!c.wire.empty());
  c.Decline(c.wire.size() - 1);  // the new Begin
  BOOST_TEST(c.counters(1).rounds_declined == 1u);
  BOOST_TEST(c.counters(1).rounds_abandoned == 1u);  // its open responder round
  c.RunQuiet();
  BOOST_TEST(c.counters(0).rounds_abandoned == 2u);
  BOOST_TEST(c.counters(0).rounds_completed == 0u);
  BOOST_TEST(c.counters(1).rounds_completed == 0u);
  BOOST_TEST(!c.ae(0).bootstrapped());
  BOOST_TEST(c.node(0).rep.data.empty());
  BOOST_TEST(c.Logged(0, "abandoned as initiator"));
  // A message that is not a Begin from an initiator is not declined.
  AeBody done;
  done.kind = AeKind::kDone;
  done.round = 1;
  AeEffects none;
  c.ae(1).Decline(c.node(0).name, done, &none);
  BOOST_TEST(none.sends.empty());
  BOOST_TEST(c.counters(1).rounds_declined == 1u);
}

BOOST_AUTO_TEST_CASE(failed_reads_and_repairs_abandon_the_round) {
  Cluster c(2, Options());
  std::vector<std::string> same = KeysInOneBucket(2, "f/");
  c.WriteAt(0, same[0]);
  c.WriteAt(1, same[1]);
  c.read_failure = 1.0;
  RunRound(c);
  BOOST_TEST(c.counters(0).rounds_abandoned + c.counters(1).rounds_abandoned == 2u);
  BOOST_TEST((c.Logged(0, "could not be read") || c.Logged(1, "could not be read")));
  BOOST_TEST(c.node(0).rep.applied.count({Rid("b"), ""}) == 0u);
  c.read_failure = 0;
  c.repair_failure = 1.0;
  c.now += 1;
  RunRound(c);
  BOOST_TEST(c.counters(0).rounds_completed + c.counters(1).rounds_completed == 0u);
  BOOST_TEST((c.Logged(0, "could not be applied") || c.Logged(1, "could not be applied")));
  BOOST_TEST(c.node(0).rep.applied.count({Rid("b"), ""}) == 0u);
  BOOST_TEST(c.node(1).rep.applied.count({Rid("a"), ""}) == 0u);
  c.repair_failure = 0;
  c.now += 1;
  RunRound(c);
  BOOST_TEST((c.node(0).rep.data == c.node(1).rep.data));
  BOOST_TEST(c.AppliedCoverEachOther());
}

// Random writes, loss, duplication, reordering, failed reads and repairs,
// links going down and up among three replicas; then rounds without faults
// until every replica is equal and every applied vector covers the others.
BOOST_AUTO_TEST_CASE(random_histories_converge) {
  const uint64_t base = EnvOr("MERIDIAN_SEED", 0);
  const uint64_t seeds = base != 0 ? 1 : EnvOr("MERIDIAN_AE_SEEDS", kDefaultSeeds);
  std::vector<std::string> keys;
  for (const std::string& k : KeysInOneBucket(4, "x/")) keys.push_back(k);
  for (const std::string& k : KeysInOneBucket(3, "y/")) keys.push_back(k);
  for (int k = 0; k < 20; ++k) keys.push_back("key/" + std::to_string(k));
  uint64_t rounds_completed = 0, rounds_abandoned = 0;
  for (uint64_t s = 0; s < seeds; ++s) {
    const uint64_t seed = base != 0 ? base : s + 1;
    Rng rng(seed * 7919);
    Cluster c(3, Options(50, 200), seed);
    c.seed_label_ = "MERIDIAN_SEED=" + std::to_string(seed);
    c.reorder = true;
    c.drop = 0.1 * static_cast<double>(Pick(rng, 3));
    c.duplicate = 0.1 * static_cast<double>(Pick(rng, 3));
    c.read_failure = Pick(rng, 4) == 0 ? 0.05 : 0;
    c.repair_failure = Pick(rng, 4) == 0 ? 0.05 : 0;
    c.states_per_part = 1 + Pick(rng, 3);
    c.TickAll();
    const int events = 100 + static_cast<int>(Pick(rng, 200));
    for (int e = 0; e < events; ++e) {
      switch (Pick(rng, 10)) {
        case 0:
        case 1:
        case 2:
          c.WriteAt(static_cast<int>(Pick(rng, 3)), keys[Pick(rng, keys.size())]);
          break;
        case 3:
          c.now += 1 + Pick(rng, 60);
          c.TickAll();
          break;
        case 4:
          if (Pick(rng, 4) == 0) {
            const int i = static_cast<int>(Pick(rng, 3));
            const int j = (i + 1 + static_cast<int>(Pick(rng, 2))) % 3;
            const bool up = !c.LinkUp(i, j);
            c.SetLink(i, j, up);
            if (up) {
              c.PeerUp(i, j);
              c.PeerUp(j, i);
            } else {
              c.PeerDown(i, j);
              c.PeerDown(j, i);
            }
          }
          break;
        default:
          for (int k = 0; k < 4; ++k) c.Step();
          break;
      }
    }
    // Heal: links up, faults off, what is in flight delivered, open rounds
    // timed out; then fault-free rounds.
    for (int i = 0; i < 3; ++i) {
      for (int j = i + 1; j < 3; ++j) {
        if (!c.LinkUp(i, j)) {
          c.SetLink(i, j, true);
          c.PeerUp(i, j);
          c.PeerUp(j, i);
        }
      }
    }
    c.drop = c.duplicate = c.read_failure = c.repair_failure = 0;
    c.RunQuiet();
    c.now += 200;
    c.TickAll();
    c.RunQuiet();
    int cycles = 0;
    while (!(c.AllEqual() && c.AppliedCoverEachOther())) {
      BOOST_REQUIRE_MESSAGE(
          ++cycles <= 12, "no convergence after 12 fault-free intervals (" << c.seed_label_ << ")");
      c.now += 50;
      c.TickAll();
      c.RunQuiet();
    }
    for (int i = 0; i < 3; ++i) {
      c.CheckAppliedIsHeld(i);
      // Every replica holds every write.
      BOOST_REQUIRE((c.node(i).rep.applied[{Rid("a"), ""}] == c.node(0).rep.seq));
      BOOST_REQUIRE((c.node(i).rep.applied[{Rid("b"), ""}] == c.node(1).rep.seq));
      BOOST_REQUIRE((c.node(i).rep.applied[{Rid("c"), ""}] == c.node(2).rep.seq));
      const AeCounters& k = c.counters(i);
      BOOST_REQUIRE(k.rounds_started >= k.rounds_completed + k.rounds_abandoned);
      rounds_completed += k.rounds_completed;
      rounds_abandoned += k.rounds_abandoned;
    }
  }
  BOOST_TEST_MESSAGE(seeds << " histories: " << rounds_completed << " round sides completed, "
                           << rounds_abandoned << " abandoned");
  // The faults were real: rounds were abandoned, and most completed.
  BOOST_TEST(rounds_abandoned > 0u);
  BOOST_TEST(rounds_completed > rounds_abandoned);
}
