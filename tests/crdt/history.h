// A seeded random history of one CRDT type: replicas apply random
// operations and ship each delta to the others over a network that loses,
// duplicates and reorders; now and then two replicas merge whole states.
// Everything is decided by the seed, so a failing history replays exactly.
#ifndef MERIDIAN_TESTS_CRDT_HISTORY_H_
#define MERIDIAN_TESTS_CRDT_HISTORY_H_

#include <cstdlib>
#include <string>
#include <vector>

#include "tests/crdt/type_models.h"

namespace meridian::crdt::testing {

template <class Model>
struct History {
  std::vector<typename Model::State> replicas;
  std::vector<Record<typename Model::Op>> ops;
  std::vector<typename Model::State> deltas;  // deltas[i]: the delta of ops[i]
  std::string error;                          // a mutator failed unexpectedly
};

struct HistoryShape {
  int replicas = 5;
  int min_ops = 4;
  int max_ops = 40;
  double loss = 0.2;
  double duplicate = 0.1;
  double state_merge = 0.05;
};

template <class Model>
History<Model> RunHistory(uint64_t seed, const HistoryShape& shape = HistoryShape()) {
  using State = typename Model::State;
  Rng rng(seed);
  Model model;
  History<Model> h;
  h.replicas.resize(shape.replicas);
  std::vector<std::vector<char>> seen(shape.replicas);
  std::vector<int> seq(shape.replicas, 0);
  struct Message {
    int to;
    size_t op;
  };
  std::vector<Message> network;
  int n_ops = Uniform(rng, shape.min_ops, shape.max_ops);

  auto deliver = [&](size_t k) {
    Message m = network[k];
    network[k] = network.back();
    network.pop_back();
    h.replicas[m.to].Merge(h.deltas[m.op]);
    if (seen[m.to].size() <= m.op) seen[m.to].resize(m.op + 1, 0);
    seen[m.to][m.op] = 1;
  };

  for (int i = 0; i < n_ops; ++i) {
    // Deliver some of what is in flight, in random order.
    int deliveries = network.empty() ? 0 : Uniform(rng, 0, static_cast<int>(network.size()));
    for (int d = 0; d < deliveries && !network.empty(); ++d) {
      deliver(static_cast<size_t>(Uniform(rng, 0, static_cast<int>(network.size()) - 1)));
    }
    if (Chance(rng, shape.state_merge)) {
      int a = Uniform(rng, 0, shape.replicas - 1), b = Uniform(rng, 0, shape.replicas - 1);
      h.replicas[a].Merge(h.replicas[b]);
      if (seen[a].size() < seen[b].size()) seen[a].resize(seen[b].size(), 0);
      for (size_t j = 0; j < seen[b].size(); ++j) seen[a][j] |= seen[b][j];
    }
    int r = Uniform(rng, 0, shape.replicas - 1);
    Record<typename Model::Op> rec;
    rec.replica = r;
    rec.seen = seen[r];
    rec.op = model.Random(rng, r, h.replicas[r], ++seq[r], seen[r]);
    State delta;
    Status st = Model::Apply(h.replicas[r], rec.op, ReplicaFor(r), &delta);
    if (!st.ok()) {
      // Only counters refuse (int64 overflow); the model never asks for it.
      h.error = "operation " + std::to_string(i) + " failed: " + st.ToString();
      return h;
    }
    size_t id = h.ops.size();
    h.ops.push_back(std::move(rec));
    h.deltas.push_back(delta);
    h.replicas[r].Merge(delta);
    seen[r].resize(id + 1, 0);
    seen[r][id] = 1;
    for (int to = 0; to < shape.replicas; ++to) {
      if (to == r || Chance(rng, shape.loss)) continue;
      network.push_back({to, id});
      if (Chance(rng, shape.duplicate)) network.push_back({to, id});
    }
  }
  // Leave part of the network undelivered: the final exchange must cover it.
  while (!network.empty() && Chance(rng, 0.5)) {
    deliver(static_cast<size_t>(Uniform(rng, 0, static_cast<int>(network.size()) - 1)));
  }
  return h;
}

// The seed a property test starts from: MERIDIAN_SEED replays one history;
// otherwise a fresh base each run, printed so any failure can be replayed.
inline uint64_t SeedFromEnv(bool* single) {
  if (const char* s = std::getenv("MERIDIAN_SEED")) {
    *single = true;
    return std::strtoull(s, nullptr, 10);
  }
  *single = false;
  return std::random_device()() * uint64_t{1000003} + std::random_device()();
}

// How many histories per type: MERIDIAN_HISTORIES, default 10,000.
inline int HistoriesFromEnv() {
  if (const char* s = std::getenv("MERIDIAN_HISTORIES")) return std::max(1, std::atoi(s));
  return 10000;
}

}  // namespace meridian::crdt::testing

#endif  // MERIDIAN_TESTS_CRDT_HISTORY_H_
