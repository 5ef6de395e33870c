// Random operations and sequential specifications of every CRDT type, for
// the property tests (law_test.cc, convergence_test.cc).
//
// A model drives one type: Random() picks an operation for a replica,
// Apply() turns it into the type's delta, and Check() compares a converged
// state with the type's specification computed from the operations alone.
//
// The specifications speak of what each operation had observed: `seen`, the
// operations whose effects had reached its replica (its own earlier ones,
// deltas delivered, and everything in a state merged into it) when it ran.
// That is the observed-remove contract of DESIGN.md §2: a remove or an
// overwrite affects exactly what it had seen.
#ifndef MERIDIAN_TESTS_CRDT_TYPE_MODELS_H_
#define MERIDIAN_TESTS_CRDT_TYPE_MODELS_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "crdt/counter.h"
#include "crdt/flag.h"
#include "crdt/hlc.h"
#include "crdt/map.h"
#include "crdt/mvregister.h"
#include "crdt/register.h"
#include "crdt/set.h"

namespace meridian::crdt::testing {

using Rng = std::mt19937_64;

inline int Uniform(Rng& rng, int lo, int hi) {
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}
inline bool Chance(Rng& rng, double p) { return std::bernoulli_distribution(p)(rng); }

// Replica i of a history. Two incarnations of one node appear so that
// incarnations are exercised as distinct replicas, and incarnation order
// disagrees with node order so that the LWW tie-break order is checked.
inline ReplicaId ReplicaFor(int i) {
  static const char* kNodes[] = {"ap-south-1", "eu-west-1", "us-east-1", "us-east-1", "eu-west-2"};
  static const uint64_t kIncarnations[] = {7, 1, 1, 2, 3};
  return ReplicaId{kNodes[i % 5], kIncarnations[i % 5]};
}

// One operation as the harness recorded it.
template <class Op>
struct Record {
  Op op;
  int replica = 0;
  std::vector<char> seen;  // seen[j]: operation j had reached the replica
  bool Saw(size_t j) const { return j < seen.size() && seen[j]; }
};

// Live candidates: operation a is live unless some killer operation saw it.
template <class Op, class IsCandidate, class IsKiller>
std::vector<size_t> Live(const std::vector<Record<Op>>& ops, IsCandidate cand, IsKiller kill) {
  std::vector<size_t> out;
  for (size_t a = 0; a < ops.size(); ++a) {
    if (!cand(ops[a].op)) continue;
    bool killed = false;
    for (size_t y = 0; y < ops.size() && !killed; ++y) {
      killed = y != a && kill(ops[y].op) && ops[y].Saw(a);
    }
    if (!killed) out.push_back(a);
  }
  return out;
}

// Timestamps: a few coarse values shared by all replicas, so that equal HLCs
// from different replicas are common; strictly increasing per replica.
inline Hlc RandomHlc(Rng& rng, int per_replica_seq) {
  return MakeHlc(static_cast<uint64_t>(Uniform(rng, 1, 3)), static_cast<uint16_t>(per_replica_seq));
}

// --- register ----------------------------------------------------------------

struct RegisterModel {
  using State = Register;
  static constexpr const char* kName = "register";
  struct Op {
    bool del = false;
    Hlc hlc = 0;
    std::string value;
  };

  Op Random(Rng& rng, int /*replica*/, const State& /*s*/, int seq,
            const std::vector<char>& /*seen*/) {
    Op op;
    op.del = Chance(rng, 0.2);
    op.hlc = RandomHlc(rng, seq);
    op.value = "v" + std::to_string(Uniform(rng, 0, 1 << 20));
    return op;
  }
  static Status Apply(const State& s, const Op& op, const ReplicaId& r, State* delta) {
    return op.del ? s.Delete(op.hlc, r, delta) : s.Set(op.hlc, r, op.value, delta);
  }
  static std::string Check(const State& s, const std::vector<Record<Op>>& ops) {
    const Record<Op>* best = nullptr;
    for (const auto& rec : ops) {
      ReplicaId r = ReplicaFor(rec.replica);
      if (best == nullptr) {
        best = &rec;
        continue;
      }
      ReplicaId b = ReplicaFor(best->replica);
      if (std::tie(best->op.hlc, b.node, b.incarnation) < std::tie(rec.op.hlc, r.node, r.incarnation)) {
        best = &rec;
      }
    }
    if (best == nullptr) return s.IsBottom() ? "" : "register written without operations";
    if (best->op.del != s.deleted()) return "register: deleted flag differs from the greatest write";
    if (!best->op.del && best->op.value != s.value()) {
      return "register: value " + s.value() + ", expected " + best->op.value;
    }
    if (best->op.hlc != s.hlc()) return "register: hlc differs from the greatest write";
    return "";
  }
};

// --- mvregister --------------------------------------------------------------

struct MvRegisterModel {
  using State = MvRegister;
  static constexpr const char* kName = "mvregister";
  struct Op {
    bool del = false;
    Hlc hlc = 0;
    std::string value;
    // An explicit causal context read earlier at the same replica, and what
    // the replica had seen when it was read.
    std::optional<CausalContext> context;
    std::vector<char> context_seen;
  };
  // Contexts read so far, per replica.
  std::map<int, std::vector<std::pair<CausalContext, std::vector<char>>>> reads;

  Op Random(Rng& rng, int replica, const State& s, int seq, const std::vector<char>& seen) {
    if (Chance(rng, 0.3)) reads[replica].push_back({s.context(), seen});
    Op op;
    op.del = Chance(rng, 0.15);
    op.hlc = RandomHlc(rng, seq);
    op.value = "v" + std::to_string(Uniform(rng, 0, 1 << 20));
    auto& mine = reads[replica];
    if (!mine.empty() && Chance(rng, 0.5)) {
      auto& pick = mine[Uniform(rng, 0, static_cast<int>(mine.size()) - 1)];
      op.context = pick.first;
      op.context_seen = pick.second;
    }
    return op;
  }
  static Status Apply(const State& s, const Op& op, const ReplicaId& r, State* delta) {
    const CausalContext* c = op.context ? &*op.context : nullptr;
    if (op.del) {
      *delta = s.Delete(c);
      return Status::OK();
    }
    return s.Write(r, op.hlc, op.value, c, delta);
  }
  static std::string Check(const State& s, const std::vector<Record<Op>>& ops) {
    // A write survives unless a later write or delete covered it: with an
    // explicit context, the writes that context's reader had seen (and the
    // writer had too); without one, everything the writer had seen.
    std::vector<size_t> live;
    for (size_t a = 0; a < ops.size(); ++a) {
      if (ops[a].op.del) continue;
      bool killed = false;
      for (size_t y = 0; y < ops.size() && !killed; ++y) {
        if (y == a || !ops[y].Saw(a)) continue;
        const Op& k = ops[y].op;
        killed = !k.context || (a < k.context_seen.size() && k.context_seen[a]);
      }
      if (!killed) live.push_back(a);
    }
    // Each sibling keeps its write's HLC beside its value.
    std::multiset<std::pair<Hlc, std::string>> want, got;
    for (size_t a : live) want.insert({ops[a].op.hlc, ops[a].op.value});
    for (const auto& entry : s.siblings()) got.insert({entry.second.hlc, entry.second.value});
    if (want != got) {
      return "mvregister: " + std::to_string(got.size()) + " siblings, expected " +
             std::to_string(want.size());
    }
    return "";
  }
};

// --- counter -----------------------------------------------------------------

// Shared by the top-level counter and the map's counter fields.
// `is_inc(op)`, `amount(op)`, `is_kill(op)` select the operations on one
// counter.
template <class Op, class IsInc, class Amount, class IsKill>
std::string CheckCounter(const CounterStore& s, const std::vector<Record<Op>>& ops, IsInc is_inc,
                         Amount amount, IsKill is_kill, const char* what) {
  // For each replica: its increments in order, with cumulative sums.
  std::map<int, std::vector<size_t>> incs;  // replica -> op indexes
  std::vector<int> inc_index(ops.size(), 0);  // 1-based index among its replica's increments
  for (size_t i = 0; i < ops.size(); ++i) {
    if (!is_inc(ops[i].op)) continue;
    incs[ops[i].replica].push_back(i);
    inc_index[i] = static_cast<int>(incs[ops[i].replica].size());
  }
  auto cum = [&](int replica, int k) {
    __int128 sum = 0;
    const auto& list = incs[replica];
    for (int j = 0; j < k && j < static_cast<int>(list.size()); ++j) sum += amount(ops[list[j]].op);
    return sum;
  };
  // obs[y][r]: how many of r's increments kill-operation y had observed,
  // through increments it saw and through the kills it saw (which carry
  // their observation along).
  std::vector<std::map<int, int>> obs(ops.size());
  for (size_t y = 0; y < ops.size(); ++y) {
    if (!is_kill(ops[y].op)) continue;
    for (size_t j = 0; j < y; ++j) {
      if (!ops[y].Saw(j)) continue;
      if (is_inc(ops[j].op)) {
        int& o = obs[y][ops[j].replica];
        o = std::max(o, inc_index[j]);
      } else if (is_kill(ops[j].op)) {
        for (const auto& [r, k] : obs[j]) obs[y][r] = std::max(obs[y][r], k);
      }
    }
  }
  __int128 value = 0;
  bool present = false;
  for (const auto& [r, list] : incs) {
    int removed = 0;
    bool last_killed = false;
    for (size_t y = 0; y < ops.size(); ++y) {
      if (!is_kill(ops[y].op)) continue;
      auto it = obs[y].find(r);
      if (it != obs[y].end()) removed = std::max(removed, it->second);
      if (ops[y].Saw(list.back())) last_killed = true;
    }
    value += cum(r, static_cast<int>(list.size())) - cum(r, removed);
    if (!last_killed) present = true;
  }
  if (present != s.present()) {
    return std::string(what) + ": present=" + (s.present() ? "true" : "false") + ", expected " +
           (present ? "true" : "false");
  }
  if (value != s.Value()) {
    return std::string(what) + ": value " + std::to_string(s.Value()) + ", expected " +
           std::to_string(static_cast<int64_t>(value));
  }
  return "";
}

struct CounterModel {
  using State = Counter;
  static constexpr const char* kName = "counter";
  struct Op {
    bool del = false;
    int64_t amount = 0;
  };
  Op Random(Rng& rng, int, const State&, int, const std::vector<char>&) {
    Op op;
    op.del = Chance(rng, 0.15);
    op.amount = Uniform(rng, -50, 100);
    if (Chance(rng, 0.05)) op.amount = Chance(rng, 0.5) ? (int64_t{1} << 40) : -(int64_t{1} << 40);
    return op;
  }
  static Status Apply(const State& s, const Op& op, const ReplicaId& r, State* delta) {
    if (op.del) {
      *delta = s.Delete();
      return Status::OK();
    }
    return s.Increment(r, op.amount, delta);
  }
  static std::string Check(const State& s, const std::vector<Record<Op>>& ops) {
    return CheckCounter(
        s.store(), ops, [](const Op& o) { return !o.del; }, [](const Op& o) { return o.amount; },
        [](const Op& o) { return o.del; }, "counter");
  }
};

// --- set ---------------------------------------------------------------------

inline std::string RandomElement(Rng& rng) {
  static const char* kElements[] = {"apple", "banana", "cherry"};
  int i = Uniform(rng, 0, 3);
  if (i == 3) return std::string("\0\xff", 2);  // binary element
  return kElements[i];
}

// Shared by the top-level set and the map's set fields.
template <class Op, class AddOf, class RemOf, class IsKill>
std::string CheckSet(const std::vector<std::string>& got, const std::vector<Record<Op>>& ops,
                     AddOf add_of, RemOf rem_of, IsKill is_kill, const char* what) {
  std::set<std::string> universe;
  for (const auto& rec : ops) {
    if (auto e = add_of(rec.op)) universe.insert(*e);
  }
  std::vector<std::string> want;
  for (const std::string& e : universe) {
    auto live = Live(
        ops, [&](const Op& o) { return add_of(o) == e; },
        [&](const Op& o) { return add_of(o) == e || rem_of(o) == e || is_kill(o); });
    if (!live.empty()) want.push_back(e);
  }
  if (want != got) {
    return std::string(what) + ": " + std::to_string(got.size()) + " elements, expected " +
           std::to_string(want.size());
  }
  return "";
}

struct SetModel {
  using State = Set;
  static constexpr const char* kName = "set";
  struct Op {
    int kind = 0;  // 0 add, 1 remove, 2 delete
    std::string element;
  };
  Op Random(Rng& rng, int, const State&, int, const std::vector<char>&) {
    Op op;
    int k = Uniform(rng, 0, 99);
    op.kind = k < 55 ? 0 : (k < 90 ? 1 : 2);
    op.element = RandomElement(rng);
    return op;
  }
  static Status Apply(const State& s, const Op& op, const ReplicaId& r, State* delta) {
    if (op.kind == 2) {
      *delta = s.Delete();
      return Status::OK();
    }
    return op.kind == 0 ? s.Add(r, op.element, delta) : s.Remove(op.element, delta);
  }
  static std::string Check(const State& s, const std::vector<Record<Op>>& ops) {
    return CheckSet(
        s.Values(), ops,
        [](const Op& o) -> std::optional<std::string> {
          if (o.kind == 0) return o.element;
          return std::nullopt;
        },
        [](const Op& o) -> std::optional<std::string> {
          if (o.kind == 1) return o.element;
          return std::nullopt;
        },
        [](const Op& o) { return o.kind == 2; }, "set");
  }
};

// --- flag --------------------------------------------------------------------

struct FlagModel {
  using State = Flag;
  static constexpr const char* kName = "flag";
  struct Op {
    int kind = 0;  // 0 enable, 1 disable, 2 delete
  };
  Op Random(Rng& rng, int, const State&, int, const std::vector<char>&) {
    int k = Uniform(rng, 0, 9);
    return Op{k < 5 ? 0 : (k < 9 ? 1 : 2)};
  }
  static Status Apply(const State& s, const Op& op, const ReplicaId& r, State* delta) {
    if (op.kind == 0) {
      *delta = s.Enable(r);
    } else if (op.kind == 1) {
      *delta = s.Disable();
    } else {
      *delta = s.Delete();
    }
    return Status::OK();
  }
  static std::string Check(const State& s, const std::vector<Record<Op>>& ops) {
    bool want = !Live(ops, [](const Op& o) { return o.kind == 0; },
                      [](const Op&) { return true; })
                     .empty();
    if (want != s.enabled()) return std::string("flag: enabled=") + (s.enabled() ? "true" : "false");
    return "";
  }
};

// --- map ---------------------------------------------------------------------

struct MapModel {
  using State = Map;
  static constexpr const char* kName = "map";
  struct Op {
    int kind = 0;  // 0 update one field, 1 remove a name, 2 delete the map
    FieldOp field;
    std::string remove;
    Hlc hlc = 0;
  };
  Op Random(Rng& rng, int, const State&, int seq, const std::vector<char>&) {
    static const char* kNames[] = {"cart", "owner"};
    static const FieldType kTypes[] = {FieldType::kRegister, FieldType::kCounter, FieldType::kSet,
                                       FieldType::kFlag};
    Op op;
    int k = Uniform(rng, 0, 99);
    op.kind = k < 75 ? 0 : (k < 95 ? 1 : 2);
    op.hlc = RandomHlc(rng, seq);
    op.remove = kNames[Uniform(rng, 0, 1)];
    op.field.name = kNames[Uniform(rng, 0, 1)];
    op.field.type = kTypes[Uniform(rng, 0, 3)];
    op.field.value = "v" + std::to_string(Uniform(rng, 0, 1 << 20));
    op.field.add = Uniform(rng, -20, 50);
    if (Chance(rng, 0.6)) {
      op.field.sadd = {RandomElement(rng)};
    } else {
      op.field.srem = {RandomElement(rng)};
    }
    op.field.enable = Chance(rng, 0.6);
    return op;
  }
  static Status Apply(const State& s, const Op& op, const ReplicaId& r, State* delta) {
    if (op.kind == 2) {
      *delta = s.Delete();
      return Status::OK();
    }
    if (op.kind == 1) return s.Update(r, op.hlc, {}, {op.remove}, delta);
    return s.Update(r, op.hlc, {op.field}, {}, delta);
  }

  static std::string Check(const State& s, const std::vector<Record<Op>>& ops) {
    auto values = s.Values();
    for (const char* name : {"cart", "owner"}) {
      for (FieldType t : {FieldType::kRegister, FieldType::kCounter, FieldType::kSet,
                          FieldType::kFlag}) {
        FieldKey key{name, t};
        auto on_field = [&](const Op& o) {
          return o.kind == 0 && o.field.name == name && o.field.type == t;
        };
        auto is_kill = [&](const Op& o) {
          return o.kind == 2 || (o.kind == 1 && o.remove == name);
        };
        auto it = values.find(key);
        const FieldValue* got = it == values.end() ? nullptr : &it->second;
        std::string err = CheckField(s, key, got, ops, on_field, is_kill);
        if (!err.empty()) return "map field " + std::string(name) + "/" +
                                 std::string(FieldTypeName(t)) + ": " + err;
      }
    }
    return "";
  }

 private:
  template <class OnField, class IsKill>
  static std::string CheckField(const State& s, const FieldKey& key, const FieldValue* got,
                                const std::vector<Record<Op>>& ops, OnField on_field,
                                IsKill is_kill) {
    switch (key.type) {
      case FieldType::kRegister: {
        auto live = Live(ops, on_field, [&](const Op& o) { return on_field(o) || is_kill(o); });
        if (live.empty()) return got ? "present, expected absent" : "";
        if (!got) return "absent, expected present";
        size_t best = live[0];
        for (size_t a : live) {
          ReplicaId ra = ReplicaFor(ops[a].replica), rb = ReplicaFor(ops[best].replica);
          if (std::tie(ops[best].op.hlc, rb.node, rb.incarnation) <
              std::tie(ops[a].op.hlc, ra.node, ra.incarnation)) {
            best = a;
          }
        }
        if (got->reg != ops[best].op.field.value) return "register value differs";
        return "";
      }
      case FieldType::kCounter: {
        auto fit = s.store().fields.find(key);
        static const CounterStore kEmpty;
        const CounterStore& cs =
            fit == s.store().fields.end() ? kEmpty : std::get<CounterStore>(fit->second);
        if ((got != nullptr) != cs.present()) return "presence differs from the store";
        return CheckCounter(
            cs, ops, on_field, [](const Op& o) { return o.field.add; }, is_kill, "counter");
      }
      case FieldType::kSet: {
        std::vector<std::string> elements = got ? got->elements : std::vector<std::string>{};
        return CheckSet(
            elements, ops,
            [&](const Op& o) -> std::optional<std::string> {
              if (on_field(o) && !o.field.sadd.empty()) return o.field.sadd[0];
              return std::nullopt;
            },
            [&](const Op& o) -> std::optional<std::string> {
              if (on_field(o) && !o.field.srem.empty()) return o.field.srem[0];
              return std::nullopt;
            },
            is_kill, "set");
      }
      case FieldType::kFlag: {
        bool want = !Live(ops, [&](const Op& o) { return on_field(o) && o.field.enable; },
                          [&](const Op& o) { return on_field(o) || is_kill(o); })
                         .empty();
        if (want != (got != nullptr)) return want ? "flag disabled, expected enabled"
                                                  : "flag enabled, expected disabled";
        return "";
      }
    }
    return "unknown field type";
  }
};

}  // namespace meridian::crdt::testing

#endif  // MERIDIAN_TESTS_CRDT_TYPE_MODELS_H_
