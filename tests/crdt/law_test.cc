// Join laws on random reachable states of every type and of the envelope:
// commutative, associative, idempotent, compared by canonical bytes; and
// the delta law: a replica that has a state s reaches the same state by
// merging a mutator's small delta as by merging the whole mutated state.
//
// States come from seeded histories (history.h), so they are states real
// replicas can reach. MERIDIAN_SEED replays one failing history.
#define BOOST_TEST_MODULE law
#include <boost/mpl/list.hpp>
#include <boost/test/unit_test.hpp>

#include <iostream>

#include "crdt/envelope.h"
#include "tests/crdt/history.h"

using meridian::Status;
using namespace meridian::crdt;
using namespace meridian::crdt::testing;

namespace {

template <class S>
S Join(S a, const S& b) {
  a.Merge(b);
  return a;
}

// Empty when every law holds on the states of this history.
template <class Model>
std::string CheckLaws(uint64_t seed) {
  using State = typename Model::State;
  HistoryShape shape;
  shape.max_ops = 25;
  History<Model> h = RunHistory<Model>(seed, shape);
  if (!h.error.empty()) return h.error;
  Rng rng(seed ^ 0x9e3779b97f4a7c15ULL);
  // The pool: replica states, deltas, and the bottom.
  std::vector<State> pool = h.replicas;
  for (size_t i = 0; i < h.deltas.size() && i < 6; ++i) pool.push_back(h.deltas[i]);
  pool.push_back(State());
  auto pick = [&]() -> const State& {
    return pool[static_cast<size_t>(Uniform(rng, 0, static_cast<int>(pool.size()) - 1))];
  };
  for (int round = 0; round < 4; ++round) {
    const State& a = pick();
    const State& b = pick();
    const State& c = pick();
    if (Join(a, b).Encode() != Join(b, a).Encode()) return "not commutative";
    if (Join(Join(a, b), c).Encode() != Join(a, Join(b, c)).Encode()) return "not associative";
    if (Join(a, a).Encode() != a.Encode()) return "not idempotent";
    if (Join(a, State()).Encode() != a.Encode()) return "bottom is not the identity";
  }
  // Delta law: s mutated at replica r; x has seen s (x = s ⊔ y).
  Model model;
  for (int round = 0; round < 4; ++round) {
    int r = Uniform(rng, 0, static_cast<int>(h.replicas.size()) - 1);
    const State& s = h.replicas[r];
    State x = Join(s, pick());
    auto op = model.Random(rng, r, s, 1000 + round, std::vector<char>());
    State delta;
    Status st = Model::Apply(s, op, ReplicaFor(r), &delta);
    if (!st.ok()) return "mutator failed: " + st.ToString();
    State mutated = Join(s, delta);
    if (Join(x, delta).Encode() != Join(x, mutated).Encode()) {
      return "merging the delta differs from merging the mutated state";
    }
    // Merging a delta twice changes nothing.
    if (Join(mutated, delta).Encode() != mutated.Encode()) return "delta not absorbed";
  }
  return "";
}

}  // namespace

using Models =
    boost::mpl::list<RegisterModel, MvRegisterModel, CounterModel, SetModel, FlagModel, MapModel>;

BOOST_AUTO_TEST_CASE_TEMPLATE(join_laws_hold, Model, Models) {
  bool single = false;
  uint64_t base = SeedFromEnv(&single);
  int n = single ? 1 : std::max(1, HistoriesFromEnv() / 5);
  int failures = 0;
  for (int i = 0; i < n; ++i) {
    uint64_t seed = base + static_cast<uint64_t>(i);
    std::string err = CheckLaws<Model>(seed);
    if (!err.empty()) {
      BOOST_ERROR(Model::kName << ": " << err << "  (replay: MERIDIAN_SEED=" << seed << ")");
      if (++failures >= 3) break;
    }
  }
  std::cout << Model::kName << ": laws on " << n << " histories, " << failures
            << " failed (base seed " << base << ")\n";
}

namespace {

// An envelope holding one or more types' states from the given histories,
// with random origins: what concurrent first writes of several types make.
Envelope RandomEnvelope(Rng& rng, const History<CounterModel>& counters,
                        const History<SetModel>& sets, const History<RegisterModel>& regs) {
  Envelope env;
  auto add = [&](uint8_t tag, const std::string& state) {
    Envelope one;
    Hlc origin = MakeHlc(static_cast<uint64_t>(Uniform(rng, 1, 3)), 0);
    Status st = Envelope::Of(tag, origin, ReplicaFor(Uniform(rng, 0, 4)), state, &one);
    BOOST_REQUIRE(st.ok());
    BOOST_REQUIRE(env.Merge(one, nullptr).ok());
  };
  auto pick = [&](const auto& h) -> const auto& {
    return h.replicas[static_cast<size_t>(Uniform(rng, 0, static_cast<int>(h.replicas.size()) - 1))];
  };
  if (Chance(rng, 0.6)) add(Counter::kTag, pick(counters).Encode());
  if (Chance(rng, 0.5)) add(Set::kTag, pick(sets).Encode());
  if (Chance(rng, 0.4)) add(Register::kTag, pick(regs).Encode());
  return env;
}

Envelope JoinEnv(Envelope a, const Envelope& b) {
  BOOST_REQUIRE(a.Merge(b, nullptr).ok());
  return a;
}

}  // namespace

BOOST_AUTO_TEST_CASE(envelope_join_laws_hold) {
  bool single = false;
  uint64_t base = SeedFromEnv(&single);
  int n = single ? 1 : std::max(1, HistoriesFromEnv() / 10);
  for (int i = 0; i < n; ++i) {
    uint64_t seed = base + static_cast<uint64_t>(i);
    HistoryShape shape;
    shape.max_ops = 15;
    auto counters = RunHistory<CounterModel>(seed, shape);
    auto sets = RunHistory<SetModel>(seed, shape);
    auto regs = RunHistory<RegisterModel>(seed, shape);
    Rng rng(seed);
    Envelope a = RandomEnvelope(rng, counters, sets, regs);
    Envelope b = RandomEnvelope(rng, counters, sets, regs);
    Envelope c = RandomEnvelope(rng, counters, sets, regs);
    std::string replay = "  (replay: MERIDIAN_SEED=" + std::to_string(seed) + ")";
    BOOST_TEST_REQUIRE(JoinEnv(a, b).Encode() == JoinEnv(b, a).Encode(), "commutative" << replay);
    BOOST_TEST_REQUIRE(JoinEnv(JoinEnv(a, b), c).Encode() == JoinEnv(a, JoinEnv(b, c)).Encode(),
                       "associative" << replay);
    BOOST_TEST_REQUIRE(JoinEnv(a, a).Encode() == a.Encode(), "idempotent" << replay);
    // The winner is the same whichever way the envelopes met.
    Envelope ab = JoinEnv(a, b), ba = JoinEnv(b, a);
    if (!ab.empty()) {
      BOOST_TEST_REQUIRE(ab.winner()->tag == ba.winner()->tag, "same winner" << replay);
    }
  }
  std::cout << "envelope: laws on " << n << " cases (base seed " << base << ")\n";
}
