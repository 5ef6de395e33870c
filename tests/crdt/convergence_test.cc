// Convergence: for every type, thousands of seeded histories (5 replicas,
// random operations, deltas lost, duplicated and reordered, occasional
// whole-state merges), then a full state exchange. Every replica must end
// with identical canonical bytes, and the value must equal the type's
// sequential specification (type_models.h).
//
// MERIDIAN_HISTORIES=n sets the number of histories per type (default
// 10,000); MERIDIAN_SEED=s replays exactly the history a failure printed.
#define BOOST_TEST_MODULE convergence
#include <boost/mpl/list.hpp>
#include <boost/test/unit_test.hpp>

#include <iostream>

#include "tests/crdt/history.h"

using meridian::Status;
using namespace meridian::crdt;
using namespace meridian::crdt::testing;

namespace {

// Empty when the history converged to its specification.
template <class Model>
std::string CheckHistory(uint64_t seed) {
  History<Model> h = RunHistory<Model>(seed);
  if (!h.error.empty()) return h.error;
  // Full exchange: every replica merges every other's state.
  typename Model::State all;
  for (const auto& r : h.replicas) all.Merge(r);
  for (auto& r : h.replicas) r.Merge(all);
  const std::string bytes = h.replicas[0].Encode();
  for (size_t i = 1; i < h.replicas.size(); ++i) {
    if (h.replicas[i].Encode() != bytes) {
      return "replica " + std::to_string(i) + " differs from replica 0 after full exchange";
    }
  }
  typename Model::State decoded;
  Status st = Model::State::Decode(bytes, &decoded);
  if (!st.ok()) return "converged state does not decode: " + st.ToString();
  if (decoded.Encode() != bytes) return "converged state does not re-encode to the same bytes";
  return Model::Check(h.replicas[0], h.ops);
}

}  // namespace

using Models =
    boost::mpl::list<RegisterModel, MvRegisterModel, CounterModel, SetModel, FlagModel, MapModel>;

BOOST_AUTO_TEST_CASE_TEMPLATE(replicas_converge_to_the_specification, Model, Models) {
  bool single = false;
  uint64_t base = SeedFromEnv(&single);
  int histories = single ? 1 : HistoriesFromEnv();
  BOOST_TEST_MESSAGE(Model::kName << ": " << histories << " histories from seed " << base);
  int failures = 0;
  for (int i = 0; i < histories; ++i) {
    uint64_t seed = base + static_cast<uint64_t>(i);
    std::string err = CheckHistory<Model>(seed);
    if (!err.empty()) {
      BOOST_ERROR(Model::kName << " history failed: " << err << "  (replay: MERIDIAN_SEED="
                               << seed << ")");
      if (++failures >= 3) break;
    }
  }
  std::cout << Model::kName << ": " << histories << " histories checked, " << failures
            << " failed (base seed " << base << ")\n";
}
