// Micro-benchmarks of the CRDT core. For every type:
//   <type>/merge   the join of two full states that diverged from a shared
//                  history (anti-entropy, a node catching up);
//   <type>/delta   the join of a one-operation delta into a large state
//                  (what a node does for every replicated write);
//   <type>/encode, <type>/decode
//                  the canonical encoding storage and gossip run on every
//                  state they touch.
// The envelope/* suites run the same operations on an Envelope, the form a
// node actually stores: there a merge also decodes and re-encodes the
// states through the registry.
//
// Rates: merge, encode and decode count items of the merged state (set
// elements, counter entries, map fields, mvregister siblings, flag dots; one
// per register), so figures for different sizes compare; encode and decode
// also count bytes of the encoding. delta counts deltas applied. The label
// gives the size of the merged state's encoding.
//
// States are built with the types' own mutators (deltas returned, applied
// with Merge) from fixed seeds, so every run measures the same states. A
// register's delta is a whole register, so register/merge stands for both.
//
// The default minimum time per benchmark is 0.2 s, which keeps the whole run
// near a minute on two cores; --benchmark_min_time=N overrides it.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "crdt/counter.h"
#include "crdt/envelope.h"
#include "crdt/flag.h"
#include "crdt/hlc.h"
#include "crdt/map.h"
#include "crdt/mvregister.h"
#include "crdt/register.h"
#include "crdt/set.h"

namespace meridian::crdt {
namespace {

using Rng = std::mt19937_64;

constexpr uint64_t kSeed = 0x6d6572696469616e;  // "meridian"
constexpr uint64_t kEpochMs = 1732550400000;    // a plausible wall clock

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "crdt_bench: %s\n", what.c_str());
  std::abort();
}

// Fixtures are built before anything is timed; a failure there is a bug in
// this file or in crdt/, and a figure measured on a wrong state is worse
// than none.
void Must(const Status& st) {
  if (!st.ok()) Die(st.ToString());
}

// Replica ids shaped like the topology's node ids ("eu-west-2").
ReplicaId Replica(int i) {
  static const char* kRegions[] = {"us-east", "eu-west", "ap-south", "us-west", "eu-central"};
  return ReplicaId{std::string(kRegions[i % 5]) + "-" + std::to_string(i / 5 + 1), 1};
}

int Uniform(Rng& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

std::string RandomToken(Rng& rng, size_t n) {
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string s(n, ' ');
  for (char& c : s) c = kAlphabet[Uniform(rng, 0, sizeof(kAlphabet) - 2)];
  return s;
}

// Distinct set elements such as "sku-Xk3...".
class ElementSource {
 public:
  explicit ElementSource(Rng* rng) : rng_(rng) {}
  std::string Next() {
    for (;;) {
      std::string e = "sku-" + RandomToken(*rng_, 12);
      if (used_.insert(e).second) return e;
    }
  }

 private:
  Rng* rng_;
  std::set<std::string> used_;
};

// Exact, so that a changed fixture (or encoding) shows in the output.
std::string SizeLabel(size_t bytes) { return "state " + std::to_string(bytes) + " B"; }

// --- Fixtures --------------------------------------------------------------

template <class T>
struct Fixture {
  T a, b;               // two replicas' states, diverged from a shared history
  T merged;             // a joined with b: the large state deltas are applied to
  T delta;              // one operation made at a replica holding `merged`
  int64_t items = 0;    // items of `merged` (see the file comment)
  std::string encoded;  // merged.Encode()
};

template <class T>
Status MergeInto(T* into, const T& other) {
  into->Merge(other);
  return Status::OK();
}

Status MergeInto(Envelope* into, const Envelope& other) {
  // A node records the losers of a type conflict; none arise here, but the
  // vector is part of the path being measured.
  std::vector<TypedState> lost;
  return into->Merge(other, &lost);
}

// Sets `merged` and `encoded` from `a` and `b`, and checks that the join
// commutes on these states.
template <class T>
void JoinSides(Fixture<T>* f) {
  f->merged = f->a;
  Must(MergeInto(&f->merged, f->b));
  T other = f->b;
  Must(MergeInto(&other, f->a));
  if (!(other == f->merged)) Die("merge of the fixture states does not commute");
  f->encoded = f->merged.Encode();
}

// One fixture per (builder, size), built on first use: the library calls a
// benchmark function several times while it sizes the iteration count.
template <class T, Fixture<T> (*Build)(int)>
const Fixture<T>& Get(int n) {
  static std::map<int, Fixture<T>> cache;
  auto it = cache.find(n);
  if (it == cache.end()) it = cache.emplace(n, Build(n)).first;
  return it->second;
}

// register: two writes of `value_bytes` from different replicas; the newer
// one arrives, so the merge replaces the value.
Fixture<Register> BuildRegister(int value_bytes) {
  Rng rng(kSeed + 1);
  Fixture<Register> f;
  Must(Register().Set(MakeHlc(kEpochMs, 0), Replica(0), RandomToken(rng, value_bytes), &f.a));
  Must(Register().Set(MakeHlc(kEpochMs, 1), Replica(1), RandomToken(rng, value_bytes), &f.b));
  JoinSides(&f);
  if (f.merged.value() != f.b.value()) Die("register: the newer write did not win");
  f.delta = f.b;
  f.items = 1;
  return f;
}

// mvregister: one write everyone saw, then `siblings` concurrent writes from
// other replicas, split between the two sides. 64-byte values.
Fixture<MvRegister> BuildMvRegister(int siblings) {
  Rng rng(kSeed + 2);
  Fixture<MvRegister> f;
  MvRegister shared;
  MvRegister d;
  Must(shared.Write(Replica(0), crdt::MakeHlc(1, 0), RandomToken(rng, 64), nullptr, &d));
  shared.Merge(d);
  f.a = shared;
  f.b = shared;
  for (int i = 0; i < siblings; ++i) {
    Must(shared.Write(Replica(i + 1), crdt::MakeHlc(1, 0), RandomToken(rng, 64), nullptr, &d));
    (i % 2 == 0 ? f.a : f.b).Merge(d);
  }
  JoinSides(&f);
  f.items = static_cast<int64_t>(f.merged.siblings().size());
  if (f.items != siblings) Die("mvregister: wrong sibling count");
  // A client that read every sibling writes back: the common resolution.
  Must(f.merged.Write(Replica(0), crdt::MakeHlc(2, 0), RandomToken(rng, 64), &f.merged.context(), &f.delta));
  return f;
}

// counter: `replicas` replicas each increment (or decrement) three times;
// then two replicas on each side increment again.
Fixture<Counter> BuildCounter(int replicas) {
  Rng rng(kSeed + 3);
  Counter shared;
  Counter d;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < replicas; ++i) {
      Must(shared.Increment(Replica(i), Uniform(rng, -5, 20), &d));
      shared.Merge(d);
    }
  }
  Fixture<Counter> f;
  f.a = shared;
  f.b = shared;
  for (int i = 0; i < 4; ++i) {
    Counter& side = i < 2 ? f.a : f.b;
    Must(side.Increment(Replica(i % replicas), Uniform(rng, 1, 10), &d));
    side.Merge(d);
  }
  JoinSides(&f);
  f.items = static_cast<int64_t>(f.merged.store().entries.size());
  if (f.items != replicas) Die("counter: wrong entry count");
  Must(f.merged.Increment(Replica(0), 1, &f.delta));
  return f;
}

// Applies `adds` and `removes` at `replica` in updates of at most `chunk`
// elements each.
void UpdateInChunks(Set* s, const ReplicaId& replica, const std::vector<std::string>& adds,
                    const std::vector<std::string>& removes, size_t chunk) {
  for (const auto* list : {&adds, &removes}) {
    for (size_t i = 0; i < list->size(); i += chunk) {
      std::vector<std::string> part(list->begin() + i,
                                    list->begin() + std::min(list->size(), i + chunk));
      Set d;
      Must(list == &adds ? s->Update(replica, part, {}, &d) : s->Update(replica, {}, part, &d));
      s->Merge(d);
    }
  }
}

// Up to `n` elements of `s`, chosen at random.
std::vector<std::string> Sample(const Set& s, size_t n, Rng& rng) {
  std::vector<std::string> all = s.Values();
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(std::min(n, all.size()));
  return all;
}

// set: n + n/10 elements added by five replicas in bulk updates of 50, n/10
// of them removed again; then each side adds n/20 elements and removes n/50
// that the other side still holds.
Fixture<Set> BuildSet(int n) {
  Rng rng(kSeed + 4);
  ElementSource source(&rng);
  const size_t extra = static_cast<size_t>(n) / 10;
  Set shared;
  for (size_t added = 0, u = 0; added < n + extra; ++u) {
    std::vector<std::string> adds;
    for (size_t k = 0; k < 50 && added < n + extra; ++k, ++added) adds.push_back(source.Next());
    UpdateInChunks(&shared, Replica(static_cast<int>(u % 5)), adds, {}, 50);
  }
  UpdateInChunks(&shared, Replica(2), {}, Sample(shared, extra, rng), 25);
  if (shared.store().elements.size() != static_cast<size_t>(n)) Die("set: wrong size");

  Fixture<Set> f;
  f.a = shared;
  f.b = shared;
  for (int side = 0; side < 2; ++side) {
    Set* s = side == 0 ? &f.a : &f.b;
    std::vector<std::string> adds;
    for (int i = 0; i < n / 20; ++i) adds.push_back(source.Next());
    UpdateInChunks(s, Replica(side), adds, Sample(shared, n / 50, rng), 10);
  }
  JoinSides(&f);
  f.items = static_cast<int64_t>(f.merged.store().elements.size());
  Must(f.merged.Add(Replica(2), source.Next(), &f.delta));
  return f;
}

// flag: enabled by one replica, then `enablers` replicas enable it
// concurrently, split between the two sides.
Fixture<Flag> BuildFlag(int enablers) {
  Flag shared;
  shared.Merge(shared.Enable(Replica(0)));
  Fixture<Flag> f;
  f.a = shared;
  f.b = shared;
  for (int i = 0; i < enablers; ++i) (i % 2 == 0 ? f.a : f.b).Merge(shared.Enable(Replica(i + 1)));
  JoinSides(&f);
  f.items = static_cast<int64_t>(f.merged.store().dots.size());
  if (f.items != enablers) Die("flag: wrong dot count");
  f.delta = f.merged.Enable(Replica(0));
  return f;
}

// map: `fields` fields cycling through register, counter, set and flag,
// created by five replicas in updates of ten fields, then 2 * fields
// single-field updates by random replicas (so that counters and sets hold
// several replicas' entries and dots); then each side updates three fields
// and one side removes a field.
class MapBuilder {
 public:
  explicit MapBuilder(int fields) : rng_(kSeed + 5), source_(&rng_), fields_(fields) {}

  Fixture<Map> Build() {
    Map shared;
    for (int first = 0; first < fields_; first += 10) {
      std::vector<FieldOp> ops;
      for (int i = first; i < std::min(fields_, first + 10); ++i) ops.push_back(Op(shared, i));
      Update(&shared, Replica(first / 10 % 5), ops, {});
    }
    for (int k = 0; k < 2 * fields_; ++k) {
      // One draw per statement: argument evaluation order is unspecified,
      // and the states must not depend on the compiler.
      const int replica = Uniform(rng_, 0, 4);
      const int field = Uniform(rng_, 0, fields_ - 1);
      Update(&shared, Replica(replica), {Op(shared, field)}, {});
    }
    if (shared.store().fields.size() != static_cast<size_t>(fields_)) Die("map: wrong size");

    Fixture<Map> f;
    f.a = shared;
    f.b = shared;
    for (int k = 0; k < 3; ++k) {
      Update(&f.a, Replica(0), {Op(f.a, Uniform(rng_, 0, fields_ - 1))}, {});
      Update(&f.b, Replica(1), {Op(f.b, Uniform(rng_, 0, fields_ - 1))}, {});
    }
    Update(&f.b, Replica(1), {}, {Name(Uniform(rng_, 0, fields_ - 1))});
    JoinSides(&f);
    f.items = static_cast<int64_t>(f.merged.store().fields.size());
    FieldOp write{Name(0), FieldType::kRegister, RandomToken(rng_, 32), 0, {}, {}, true};
    Must(f.merged.Update(Replica(2), NextHlc(), {write}, {}, &f.delta));
    return f;
  }

 private:
  static std::string Name(int i) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "attr-%03d", i);
    return buf;
  }
  static FieldType TypeOf(int i) {
    static constexpr FieldType kTypes[] = {FieldType::kRegister, FieldType::kCounter,
                                           FieldType::kSet, FieldType::kFlag};
    return kTypes[i % 4];
  }

  // An update of field i against `m`: a register write, a counter add, a
  // set add (and, when the set has grown, a remove), a flag enable.
  FieldOp Op(const Map& m, int i) {
    FieldOp op;
    op.name = Name(i);
    op.type = TypeOf(i);
    switch (op.type) {
      case FieldType::kRegister:
        op.value = RandomToken(rng_, Uniform(rng_, 16, 48));
        break;
      case FieldType::kCounter:
        op.add = Uniform(rng_, -10, 100);
        break;
      case FieldType::kSet: {
        for (int k = Uniform(rng_, 1, 4); k > 0; --k) op.sadd.push_back(source_.Next());
        auto values = m.Values();
        auto it = values.find(FieldKey{op.name, op.type});
        if (it != values.end() && it->second.elements.size() > 6) {
          op.srem.push_back(it->second.elements[Uniform(rng_, 0, 6)]);
        }
        break;
      }
      case FieldType::kFlag:
        op.enable = true;
        break;
    }
    return op;
  }

  Hlc NextHlc() { return MakeHlc(kEpochMs + ++clock_ms_, 0); }

  void Update(Map* m, const ReplicaId& replica, const std::vector<FieldOp>& ops,
              const std::vector<std::string>& remove) {
    Map d;
    Must(m->Update(replica, NextHlc(), ops, remove, &d));
    m->Merge(d);
  }

  Rng rng_;
  ElementSource source_;
  int fields_;
  uint64_t clock_ms_ = 0;
};

Fixture<Map> BuildMap(int fields) { return MapBuilder(fields).Build(); }

// An envelope holding the states of a type's fixture, as a node stores them.
template <class T, Fixture<T> (*Build)(int)>
Fixture<Envelope> BuildEnvelope(int n) {
  const Fixture<T>& inner = Get<T, Build>(n);
  const Hlc origin_hlc = MakeHlc(kEpochMs, 0);
  const ReplicaId origin = Replica(0);
  Fixture<Envelope> f;
  Must(Envelope::Of(T::kTag, origin_hlc, origin, inner.a.Encode(), &f.a));
  Must(Envelope::Of(T::kTag, origin_hlc, origin, inner.b.Encode(), &f.b));
  Must(Envelope::Of(T::kTag, origin_hlc, origin, inner.delta.Encode(), &f.delta));
  JoinSides(&f);
  if (f.merged.winner() == nullptr || f.merged.winner()->state != inner.encoded) {
    Die("envelope: merged state differs from the type's own merge");
  }
  f.items = inner.items;
  return f;
}

// --- Benchmark bodies ------------------------------------------------------

// Runs `op` once per iteration, each time on a fresh copy of `base`: Merge
// works in place, and a merge into an already merged state would measure a
// different (idempotent) case. Copies are made in batches with the timer
// paused; the batch shrinks as states grow so that memory stays modest while
// the pause overhead stays small next to the timed work.
template <class T, class Op>
void OnFreshCopies(benchmark::State& state, const T& base, int64_t items, Op op) {
  const size_t batch =
      static_cast<size_t>(std::clamp<int64_t>(16384 / std::max<int64_t>(items, 1), 4, 1024));
  std::vector<T> copies;
  size_t next = batch;
  for (auto _ : state) {
    if (next == batch) {
      state.PauseTiming();
      copies.assign(batch, base);
      next = 0;
      state.ResumeTiming();
    }
    Status st = op(&copies[next++]);
    if (!st.ok()) {
      state.SkipWithError(st.ToString().c_str());
      break;
    }
  }
}

template <class T>
void MergeBody(benchmark::State& state, const Fixture<T>& f) {
  OnFreshCopies(state, f.a, f.items, [&](T* x) { return MergeInto(x, f.b); });
  state.SetItemsProcessed(state.iterations() * f.items);
  state.SetLabel(SizeLabel(f.encoded.size()));
}

template <class T>
void DeltaBody(benchmark::State& state, const Fixture<T>& f) {
  OnFreshCopies(state, f.merged, f.items, [&](T* x) { return MergeInto(x, f.delta); });
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(SizeLabel(f.encoded.size()));
}

template <class T>
void EncodeBody(benchmark::State& state, const Fixture<T>& f) {
  for (auto _ : state) {
    std::string bytes = f.merged.Encode();
    benchmark::DoNotOptimize(bytes.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(f.encoded.size()));
  state.SetItemsProcessed(state.iterations() * f.items);
  state.SetLabel(SizeLabel(f.encoded.size()));
}

template <class T>
void DecodeBody(benchmark::State& state, const Fixture<T>& f) {
  for (auto _ : state) {
    T out;
    Status st = T::Decode(f.encoded, &out);
    if (!st.ok()) {
      state.SkipWithError(st.ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(f.encoded.size()));
  state.SetItemsProcessed(state.iterations() * f.items);
  state.SetLabel(SizeLabel(f.encoded.size()));
}

// Registers <prefix>/{merge,delta,encode,decode}/<arg_name>:<size> for each
// size, in that order.
template <class T, Fixture<T> (*Build)(int)>
void RegisterSuite(const std::string& prefix, const char* arg_name,
                   const std::vector<int64_t>& sizes, bool with_delta = true) {
  using Body = void (*)(benchmark::State&, const Fixture<T>&);
  const std::vector<std::pair<const char*, Body>> ops = {
      {"merge", &MergeBody<T>},
      {"delta", with_delta ? &DeltaBody<T> : nullptr},
      {"encode", &EncodeBody<T>},
      {"decode", &DecodeBody<T>},
  };
  for (const auto& [op, body] : ops) {
    if (body == nullptr) continue;
    benchmark::internal::Benchmark* b = benchmark::RegisterBenchmark(
        (prefix + "/" + op).c_str(), [body = body](benchmark::State& state) {
          body(state, Get<T, Build>(static_cast<int>(state.range(0))));
        });
    b->ArgName(arg_name);
    for (int64_t n : sizes) b->Arg(n);
  }
}

void RegisterAll() {
  RegisterSuite<Register, BuildRegister>("register", "value_bytes", {16, 1024, 65536},
                                         /*with_delta=*/false);
  RegisterSuite<MvRegister, BuildMvRegister>("mvregister", "siblings", {1, 3, 8});
  RegisterSuite<Counter, BuildCounter>("counter", "replicas", {5, 50});
  RegisterSuite<Set, BuildSet>("set", "elements", {100, 1000, 10000});
  RegisterSuite<Flag, BuildFlag>("flag", "enablers", {4});
  RegisterSuite<Map, BuildMap>("map", "fields", {10, 50, 200});
  RegisterSuite<Envelope, BuildEnvelope<Counter, BuildCounter>>("envelope/counter", "replicas",
                                                                {5});
  RegisterSuite<Envelope, BuildEnvelope<Set, BuildSet>>("envelope/set", "elements", {1000});
  RegisterSuite<Envelope, BuildEnvelope<Map, BuildMap>>("envelope/map", "fields", {50});
}

}  // namespace
}  // namespace meridian::crdt

int main(int argc, char** argv) {
  // The library's 0.5 s default would make the full run about three times
  // longer than it needs to be for figures of this kind. A flag given on the
  // command line comes later and wins (MinTime() on a benchmark would not
  // let it).
  static char default_min_time[] = "--benchmark_min_time=0.2";
  std::vector<char*> args = {argv[0], default_min_time};
  args.insert(args.end(), argv + 1, argv + argc);
  int n = static_cast<int>(args.size());
  meridian::crdt::RegisterAll();
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
