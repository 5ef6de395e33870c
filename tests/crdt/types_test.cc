// Example-based tests of each CRDT type's semantics: small, named scenarios
// with two or three replicas. Every local operation is done the way the node
// does it: the mutator returns a delta, the replica merges it into its own
// state, and the same delta is shipped to the others. States are rendered as
// short canonical strings so that a failure shows what a replica holds.
#define BOOST_TEST_MODULE types
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "crdt/causal_context.h"
#include "crdt/counter.h"
#include "crdt/envelope.h"
#include "crdt/flag.h"
#include "crdt/hlc.h"
#include "crdt/map.h"
#include "crdt/mvregister.h"
#include "crdt/register.h"
#include "crdt/registry.h"
#include "crdt/set.h"
#include "crdt/text.h"
#include "crdt/status.h"

using meridian::Status;
using namespace meridian::crdt;

#define REQUIRE_OK(expr)                             \
  do {                                               \
    Status _st = (expr);                             \
    BOOST_REQUIRE_MESSAGE(_st.ok(), _st.ToString()); \
  } while (0)

namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

// Three replicas on three nodes; tests that need other incarnations make
// their own.
struct Replicas {
  const ReplicaId a{"a", 1};
  const ReplicaId b{"b", 1};
  const ReplicaId c{"c", 1};
};

// ---- Rendering ------------------------------------------------------------

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) {
    if (!out.empty()) out += ",";
    out += s;
  }
  return out;
}

std::string Render(const DotSet& dots) {
  std::string out;
  for (const Dot& d : dots) {
    if (!out.empty()) out += " ";
    out += d.ToString();
  }
  return out;
}

// The dots a causal state still holds (its live events).
template <class T>
std::string LiveDots(const T& state) {
  DotSet dots;
  state.store().CollectDots(&dots);
  return Render(dots);
}

// "name:type=value ..." for every present field, in (name, type) order.
std::string Render(const Map& m) {
  std::string out;
  for (const auto& [key, v] : m.Values()) {
    if (!out.empty()) out += " ";
    out += key.name + ":" + std::string(FieldTypeName(key.type)) + "=";
    switch (key.type) {
      case FieldType::kRegister:
        out += v.reg;
        break;
      case FieldType::kCounter:
        out += std::to_string(v.counter);
        break;
      case FieldType::kSet:
        out += "{" + Join(v.elements) + "}";
        break;
      case FieldType::kFlag:
        out += v.flag ? "on" : "off";
        break;
    }
  }
  return out;
}

// ---- Local operations: mutate, apply locally, return the delta to ship ----

Register SetAt(Register* at, Hlc hlc, const ReplicaId& r, std::string value) {
  Register d;
  REQUIRE_OK(at->Set(hlc, r, std::move(value), &d));
  at->Merge(d);
  return d;
}

Register DeleteAt(Register* at, Hlc hlc, const ReplicaId& r) {
  Register d;
  REQUIRE_OK(at->Delete(hlc, r, &d));
  at->Merge(d);
  return d;
}

MvRegister WriteAt(MvRegister* at, const ReplicaId& r, std::string value,
                   const CausalContext* context = nullptr) {
  MvRegister d;
  REQUIRE_OK(at->Write(r, MakeHlc(1000, 0), std::move(value), context, &d));
  at->Merge(d);
  return d;
}

MvRegister DeleteAt(MvRegister* at, const CausalContext* context) {
  MvRegister d = at->Delete(context);
  at->Merge(d);
  return d;
}

Counter IncrementAt(Counter* at, const ReplicaId& r, int64_t amount) {
  Counter d;
  REQUIRE_OK(at->Increment(r, amount, &d));
  at->Merge(d);
  return d;
}

Counter DeleteAt(Counter* at) {
  Counter d = at->Delete();
  at->Merge(d);
  return d;
}

Set AddAt(Set* at, const ReplicaId& r, std::string element) {
  Set d;
  REQUIRE_OK(at->Add(r, std::move(element), &d));
  at->Merge(d);
  return d;
}

Set RemoveAt(Set* at, std::string element) {
  Set d;
  REQUIRE_OK(at->Remove(std::move(element), &d));
  at->Merge(d);
  return d;
}

Set DeleteAt(Set* at) {
  Set d = at->Delete();
  at->Merge(d);
  return d;
}

Flag EnableAt(Flag* at, const ReplicaId& r) {
  Flag d = at->Enable(r);
  at->Merge(d);
  return d;
}

Flag DisableAt(Flag* at) {
  Flag d = at->Disable();
  at->Merge(d);
  return d;
}

Map UpdateAt(Map* at, const ReplicaId& r, Hlc hlc, const std::vector<FieldOp>& ops,
             const std::vector<std::string>& remove = {}) {
  Map d;
  REQUIRE_OK(at->Update(r, hlc, ops, remove, &d));
  at->Merge(d);
  return d;
}

Map DeleteAt(Map* at) {
  Map d = at->Delete();
  at->Merge(d);
  return d;
}

// ---- Map field operations, as the API names them --------------------------

FieldOp RegisterSet(std::string name, std::string value) {
  FieldOp op;
  op.name = std::move(name);
  op.type = FieldType::kRegister;
  op.value = std::move(value);
  return op;
}

FieldOp CounterAdd(std::string name, int64_t amount) {
  FieldOp op;
  op.name = std::move(name);
  op.type = FieldType::kCounter;
  op.add = amount;
  return op;
}

FieldOp SetOps(std::string name, std::vector<std::string> sadd, std::vector<std::string> srem) {
  FieldOp op;
  op.name = std::move(name);
  op.type = FieldType::kSet;
  op.sadd = std::move(sadd);
  op.srem = std::move(srem);
  return op;
}

FieldOp FlagOp(std::string name, bool enable) {
  FieldOp op;
  op.name = std::move(name);
  op.type = FieldType::kFlag;
  op.enable = enable;
  return op;
}

// An envelope holding one typed state, as a first write produces it.
template <class T>
Envelope EnvelopeOf(const T& state, Hlc origin_hlc, const ReplicaId& origin) {
  Envelope e;
  REQUIRE_OK(Envelope::Of(T::kTag, origin_hlc, origin, state.Encode(), &e));
  return e;
}

std::string Tags(const std::vector<TypedState>& states) {
  std::string out;
  for (const TypedState& s : states) {
    if (!out.empty()) out += ",";
    out += std::to_string(s.tag);
  }
  return out;
}

}  // namespace

// ===========================================================================
BOOST_FIXTURE_TEST_SUITE(register_lww, Replicas)

BOOST_AUTO_TEST_CASE(later_hlc_wins_even_against_a_greater_node_id) {
  Register at_a, at_b;
  Register da = SetAt(&at_a, MakeHlc(1000, 1), a, "from a");
  Register db = SetAt(&at_b, MakeHlc(1000, 0), b, "from b");
  at_a.Merge(db);
  at_b.Merge(da);
  BOOST_TEST(at_a.value() == "from a");
  BOOST_TEST(at_b.value() == "from a");
  BOOST_TEST(at_b.hlc() == MakeHlc(1000, 1));
  BOOST_TEST(at_b.writer().ToString() == "a#1");
  BOOST_TEST((at_a == at_b));
}

BOOST_AUTO_TEST_CASE(same_hlc_greater_node_id_wins_in_either_order) {
  const Hlc t = MakeHlc(1000, 0);
  Register at_a, at_b;
  Register da = SetAt(&at_a, t, a, "from a");
  Register db = SetAt(&at_b, t, b, "from b");
  at_a.Merge(db);
  at_b.Merge(da);
  BOOST_TEST(at_a.value() == "from b");
  BOOST_TEST(at_b.value() == "from b");
  BOOST_TEST((at_a == at_b));
}

BOOST_AUTO_TEST_CASE(same_hlc_and_node_greater_incarnation_wins_in_either_order) {
  const Hlc t = MakeHlc(1000, 0);
  const ReplicaId old_a{"a", 1};
  const ReplicaId new_a{"a", 2};
  Register at_old, at_new;
  Register d_old = SetAt(&at_old, t, old_a, "old life");
  Register d_new = SetAt(&at_new, t, new_a, "new life");
  at_old.Merge(d_new);
  at_new.Merge(d_old);
  BOOST_TEST(at_old.value() == "new life");
  BOOST_TEST(at_new.value() == "new life");
  BOOST_TEST((at_old == at_new));

  // The node id decides before the incarnation does.
  Register later_incarnation;
  REQUIRE_OK(Register().Set(t, ReplicaId{"a", 99}, "a#99", &later_incarnation));
  Register greater_node;
  REQUIRE_OK(Register().Set(t, ReplicaId{"b", 1}, "b#1", &greater_node));
  Register x = later_incarnation;
  x.Merge(greater_node);
  Register y = greater_node;
  y.Merge(later_incarnation);
  BOOST_TEST(x.value() == "b#1");
  BOOST_TEST(y.value() == "b#1");
}

BOOST_AUTO_TEST_CASE(delete_wins_over_an_older_set) {
  Register at_a, at_b;
  Register set = SetAt(&at_a, MakeHlc(1000, 0), a, "v");
  at_b.Merge(set);
  Register del = DeleteAt(&at_b, MakeHlc(1001, 0), b);
  BOOST_TEST(at_b.deleted());
  BOOST_TEST(at_b.value() == "");
  BOOST_TEST(!at_b.IsBottom());  // a tombstone is a write, not the empty state
  at_a.Merge(del);
  BOOST_TEST(at_a.deleted());
  BOOST_TEST((at_a == at_b));

  // A late, duplicated copy of the older set changes nothing.
  at_a.Merge(set);
  BOOST_TEST(at_a.deleted());
}

BOOST_AUTO_TEST_CASE(delete_loses_to_a_newer_set) {
  Register at_a, at_b;
  // b's clock lags: its delete is older than a's set although it happens
  // later in real time.
  Register set = SetAt(&at_a, MakeHlc(2000, 0), a, "kept");
  Register del = DeleteAt(&at_b, MakeHlc(1500, 0), b);
  at_a.Merge(del);
  at_b.Merge(set);
  BOOST_TEST(!at_a.deleted());
  BOOST_TEST(at_a.value() == "kept");
  BOOST_TEST((at_a == at_b));

  // And a set after a tombstone brings the value back.
  Register del2 = DeleteAt(&at_a, MakeHlc(2100, 0), a);
  Register set2 = SetAt(&at_b, MakeHlc(2200, 0), b, "back");
  at_a.Merge(set2);
  at_b.Merge(del2);
  BOOST_TEST(!at_a.deleted());
  BOOST_TEST(at_a.value() == "back");
  BOOST_TEST((at_a == at_b));
}

BOOST_AUTO_TEST_CASE(merge_order_does_not_matter) {
  std::vector<Register> deltas(4);
  REQUIRE_OK(Register().Set(MakeHlc(1000, 0), a, "a1", &deltas[0]));
  REQUIRE_OK(Register().Set(MakeHlc(1000, 2), b, "b1", &deltas[1]));
  REQUIRE_OK(Register().Delete(MakeHlc(1000, 2), c, &deltas[2]));  // same HLC, greater node
  REQUIRE_OK(Register().Set(MakeHlc(999, 9), c, "c0", &deltas[3]));

  std::vector<size_t> order = {0, 1, 2, 3};
  Register first;
  for (size_t i : order) first.Merge(deltas[i]);
  BOOST_TEST(first.deleted());
  BOOST_TEST(first.writer().ToString() == "c#1");
  do {
    Register r;
    for (size_t i : order) r.Merge(deltas[i]);
    BOOST_TEST((r == first));
    r.Merge(deltas[order[0]]);  // a duplicate is harmless
    BOOST_TEST((r == first));
  } while (std::next_permutation(order.begin(), order.end()));
}

BOOST_AUTO_TEST_CASE(empty_register_is_bottom) {
  Register empty;
  BOOST_TEST(empty.IsBottom());
  BOOST_TEST(empty.deleted());

  Register w;
  // Even a write at HLC 0 is above bottom.
  SetAt(&w, 0, a, "zero");
  BOOST_TEST(!w.IsBottom());

  Register x = w;
  x.Merge(empty);
  BOOST_TEST((x == w));
  Register y = empty;
  y.Merge(w);
  BOOST_TEST((y == w));
  BOOST_TEST(y.value() == "zero");

  Register z = empty;
  z.Merge(Register());
  BOOST_TEST(z.IsBottom());
  BOOST_TEST((z.Encode() == Register().Encode()));
  BOOST_TEST((w.Encode() != Register().Encode()));
}

BOOST_AUTO_TEST_CASE(write_without_a_writer_is_refused) {
  Register d;
  BOOST_TEST(Register().Set(MakeHlc(1, 0), ReplicaId{}, "v", &d).IsInvalidArgument());
  BOOST_TEST(Register().Delete(MakeHlc(1, 0), ReplicaId{}, &d).IsInvalidArgument());
}

BOOST_AUTO_TEST_SUITE_END()

// ===========================================================================
BOOST_FIXTURE_TEST_SUITE(mvregister, Replicas)

BOOST_AUTO_TEST_CASE(concurrent_writes_become_siblings) {
  MvRegister at_a, at_b;
  MvRegister da = WriteAt(&at_a, a, "x");
  MvRegister db = WriteAt(&at_b, b, "y");
  at_a.Merge(db);
  at_b.Merge(da);
  BOOST_TEST(Join(at_a.Values()) == "x,y");
  BOOST_TEST(LiveDots(at_a) == "a#1:1 b#1:1");
  BOOST_TEST((at_a == at_b));
}

BOOST_AUTO_TEST_CASE(siblings_keep_their_write_hlc_and_lww_picks_the_greatest) {
  // b writes earlier by HLC than a: the LWW winner is a's sibling whatever
  // the dot order, and an equal HLC falls to the greater replica.
  MvRegister at_a, at_b, d;
  REQUIRE_OK(at_a.Write(a, MakeHlc(2000, 0), "late", nullptr, &d));
  at_a.Merge(d);
  REQUIRE_OK(at_b.Write(b, MakeHlc(1000, 7), "early", nullptr, &d));
  at_b.Merge(d);
  at_a.Merge(at_b);
  BOOST_REQUIRE_EQUAL(at_a.siblings().size(), 2u);
  BOOST_TEST(at_a.siblings().begin()->second.hlc == MakeHlc(2000, 0));
  BOOST_TEST(at_a.siblings().rbegin()->second.hlc == MakeHlc(1000, 7));
  BOOST_REQUIRE(at_a.LwwWinner() != nullptr);
  BOOST_TEST(at_a.LwwWinner()->second.value == "late");

  MvRegister tie_a, tie_b;
  REQUIRE_OK(tie_a.Write(a, MakeHlc(5, 0), "from-a", nullptr, &d));
  tie_a.Merge(d);
  REQUIRE_OK(tie_b.Write(b, MakeHlc(5, 0), "from-b", nullptr, &d));
  tie_b.Merge(d);
  tie_a.Merge(tie_b);
  BOOST_TEST(tie_a.LwwWinner()->second.value == "from-b");
  BOOST_TEST(MvRegister().LwwWinner() == nullptr);

  // The HLC survives the encoding.
  MvRegister back;
  REQUIRE_OK(MvRegister::Decode(at_a.Encode(), &back));
  BOOST_TEST((back == at_a));
  BOOST_TEST(back.LwwWinner()->second.hlc == MakeHlc(2000, 0));
}

BOOST_AUTO_TEST_CASE(write_without_context_supersedes_every_held_sibling) {
  MvRegister at_a, at_b, at_c;
  MvRegister dx = WriteAt(&at_a, a, "x");
  MvRegister dy = WriteAt(&at_b, b, "y");
  at_a.Merge(dy);
  // c writes concurrently; a has not seen it.
  MvRegister dw = WriteAt(&at_c, c, "w");

  MvRegister dz = WriteAt(&at_a, a, "z");
  BOOST_TEST(Join(at_a.Values()) == "z");
  BOOST_TEST(LiveDots(at_a) == "a#1:2");

  for (MvRegister* r : {&at_a, &at_b, &at_c}) {
    for (const MvRegister* d : {&dx, &dy, &dw, &dz}) r->Merge(*d);
  }
  // Everything a held is gone; the write a never saw stays beside z.
  BOOST_TEST(Join(at_b.Values()) == "z,w");
  BOOST_TEST((at_a == at_b));
  BOOST_TEST((at_a == at_c));
}

BOOST_AUTO_TEST_CASE(write_with_context_supersedes_exactly_the_covered_siblings) {
  MvRegister at_a, at_b, at_c;
  MvRegister dx = WriteAt(&at_a, a, "x");
  MvRegister dy = WriteAt(&at_b, b, "y");
  at_a.Merge(dy);
  at_b.Merge(dx);
  const CausalContext read_at_a = at_a.context();  // a client read {x, y}

  // Before the client writes back, c's concurrent write reaches a.
  MvRegister dw = WriteAt(&at_c, c, "w");
  at_a.Merge(dw);
  BOOST_TEST(Join(at_a.Values()) == "x,y,w");

  MvRegister dv = WriteAt(&at_a, a, "v", &read_at_a);
  BOOST_TEST(Join(at_a.Values()) == "v,w");
  BOOST_TEST(!dv.context().Contains(Dot{c, 1}));

  // b gets the write before c's: then c's.
  at_b.Merge(dv);
  BOOST_TEST(Join(at_b.Values()) == "v");
  at_b.Merge(dw);
  BOOST_TEST(Join(at_b.Values()) == "v,w");
  for (const MvRegister* d : {&dv, &dx, &dy}) at_c.Merge(*d);
  BOOST_TEST((at_a == at_b));
  BOOST_TEST((at_a == at_c));
}

BOOST_AUTO_TEST_CASE(context_naming_unseen_dots_is_clamped) {
  MvRegister at_a, at_b;
  MvRegister dx = WriteAt(&at_a, a, "x");
  MvRegister dy = WriteAt(&at_b, b, "y");
  at_b.Merge(dx);
  // A client read {x, y} at b, then writes at a, which has not seen y yet.
  const CausalContext read_at_b = at_b.context();
  BOOST_REQUIRE(read_at_b.Contains(Dot{b, 1}));
  BOOST_REQUIRE(!at_a.context().Contains(Dot{b, 1}));

  MvRegister dv = WriteAt(&at_a, a, "v", &read_at_b);
  BOOST_TEST(!dv.context().Contains(Dot{b, 1}));
  BOOST_TEST(Join(at_a.Values()) == "v");

  // y arrives at a later and is not removed by a write that never saw it.
  at_a.Merge(dy);
  BOOST_TEST(Join(at_a.Values()) == "v,y");
  at_b.Merge(dv);
  BOOST_TEST(Join(at_b.Values()) == "v,y");
  BOOST_TEST((at_a == at_b));
}

BOOST_AUTO_TEST_CASE(delete_with_and_without_context) {
  MvRegister at_a, at_b;
  MvRegister dx = WriteAt(&at_a, a, "x");
  const CausalContext saw_only_x = at_a.context();
  MvRegister dy = WriteAt(&at_b, b, "y");
  at_a.Merge(dy);
  at_b.Merge(dx);
  BOOST_TEST(Join(at_a.Values()) == "x,y");

  MvRegister del_x = DeleteAt(&at_a, &saw_only_x);
  BOOST_TEST(Join(at_a.Values()) == "y");
  at_b.Merge(del_x);
  BOOST_TEST(Join(at_b.Values()) == "y");

  // Without a context: everything held goes, but a concurrent write at b
  // survives.
  MvRegister del_all = DeleteAt(&at_a, nullptr);
  BOOST_TEST(at_a.IsBottom());
  MvRegister dz = WriteAt(&at_b, b, "z");
  at_a.Merge(dz);
  at_b.Merge(del_all);
  BOOST_TEST(Join(at_a.Values()) == "z");
  BOOST_TEST((at_a == at_b));

  // Deleting the rest leaves bottom, but the context is kept: dots are
  // never reissued.
  MvRegister del_z = DeleteAt(&at_b, nullptr);
  at_a.Merge(del_z);
  BOOST_TEST(at_a.IsBottom());
  BOOST_TEST(at_a.context().ToString() == "{a#1:1..1, b#1:1..2}");
  MvRegister again = WriteAt(&at_a, a, "again");
  BOOST_TEST(LiveDots(again) == "a#1:2");
}

BOOST_AUTO_TEST_CASE(next_dot_is_one_past_this_replicas_highest_dot) {
  MvRegister at_a, at_b;
  WriteAt(&at_a, a, "1");
  WriteAt(&at_a, a, "2");
  for (int i = 0; i < 5; ++i) at_a.Merge(WriteAt(&at_b, b, "b" + std::to_string(i)));
  BOOST_TEST(at_a.context().ToString() == "{a#1:1..2, b#1:1..5}");

  // Other replicas' counters do not matter, only a's own.
  MvRegister d3 = WriteAt(&at_a, a, "3");
  BOOST_TEST(LiveDots(d3) == "a#1:3");

  // A new incarnation of node a starts its own count.
  MvRegister reborn = WriteAt(&at_a, ReplicaId{"a", 2}, "reborn");
  BOOST_TEST(LiveDots(reborn) == "a#2:1");
  MvRegister d4 = WriteAt(&at_a, a, "4");
  BOOST_TEST(LiveDots(d4) == "a#1:4");

  // A state that saw only a's third write holds a's dots as a cloud
  // {a:2, a:3}; the next dot still follows the highest one.
  MvRegister partial;
  partial.Merge(d3);
  BOOST_REQUIRE(partial.context().vv().count(a) == 0);
  MvRegister next;
  REQUIRE_OK(partial.Write(a, MakeHlc(1000, 0), "next", nullptr, &next));
  BOOST_TEST(LiveDots(next) == "a#1:4");
}

BOOST_AUTO_TEST_SUITE_END()

// ===========================================================================
BOOST_FIXTURE_TEST_SUITE(counter, Replicas)

BOOST_AUTO_TEST_CASE(increments_and_decrements_from_several_replicas) {
  Counter at_a, at_b, at_c;
  std::vector<Counter> deltas = {
      IncrementAt(&at_a, a, 5),  IncrementAt(&at_b, b, -3), IncrementAt(&at_c, c, 10),
      IncrementAt(&at_a, a, -2), IncrementAt(&at_b, b, 7),
  };
  BOOST_TEST(at_a.Value() == 3);
  // Each replica receives every delta, in its own order.
  for (const Counter& d : deltas) at_a.Merge(d);
  for (auto it = deltas.rbegin(); it != deltas.rend(); ++it) at_b.Merge(*it);
  for (size_t i : {2, 4, 0, 3, 1}) at_c.Merge(deltas[i]);
  BOOST_TEST(at_a.Value() == 17);
  BOOST_TEST(at_a.present());
  BOOST_TEST((at_a == at_b));
  BOOST_TEST((at_a == at_c));
  // One presence dot per incrementing replica: its latest.
  BOOST_TEST(LiveDots(at_a) == "a#1:2 b#1:2 c#1:1");
}

BOOST_AUTO_TEST_CASE(increment_refuses_int64_overflow_of_an_entry) {
  Counter at_a;
  IncrementAt(&at_a, a, kInt64Max);
  const Counter before = at_a;
  Counter d;
  BOOST_TEST(at_a.Increment(a, 1, &d).IsOutOfRange());
  BOOST_TEST((at_a == before));
  BOOST_TEST(at_a.Value() == kInt64Max);

  // Entries are cumulative: going down and up again still overflows a's
  // increments, though the value would fit.
  IncrementAt(&at_a, a, -10);
  BOOST_TEST(at_a.Increment(a, 10, &d).IsOutOfRange());

  Counter at_b;
  IncrementAt(&at_b, b, -kInt64Max);
  const Counter before_b = at_b;
  BOOST_TEST(at_b.Increment(b, -1, &d).IsOutOfRange());
  BOOST_TEST((at_b == before_b));
}

BOOST_AUTO_TEST_CASE(increment_refuses_int64_overflow_of_the_value) {
  Counter at_a, at_b;
  at_b.Merge(IncrementAt(&at_a, a, kInt64Max));
  const Counter before = at_b;
  Counter d;
  // b's own entry would be 1, but the sum would leave int64.
  BOOST_TEST(at_b.Increment(b, 1, &d).IsOutOfRange());
  BOOST_TEST((at_b == before));
  BOOST_TEST(at_b.Value() == kInt64Max);
  // Going down is fine.
  IncrementAt(&at_b, b, -1);
  BOOST_TEST(at_b.Value() == kInt64Max - 1);

  // The lower end: exactly INT64_MIN is allowed, one below is not.
  Counter low_a, low_b;
  low_b.Merge(IncrementAt(&low_a, a, -kInt64Max));
  IncrementAt(&low_b, b, -1);
  BOOST_TEST(low_b.Value() == kInt64Min);
  const Counter at_min = low_b;
  BOOST_TEST(low_b.Increment(b, -1, &d).IsOutOfRange());
  BOOST_TEST((low_b == at_min));
}

BOOST_AUTO_TEST_CASE(delete_then_concurrent_increment_keeps_only_the_increment) {
  Counter at_a, at_b;
  at_b.Merge(IncrementAt(&at_a, a, 5));
  at_a.Merge(IncrementAt(&at_b, b, 7));
  BOOST_TEST(at_a.Value() == 12);

  Counter del = DeleteAt(&at_a);
  BOOST_TEST(!at_a.present());
  BOOST_TEST(at_a.Value() == 0);
  Counter inc = IncrementAt(&at_b, b, 3);  // b has not seen the delete

  at_a.Merge(inc);
  at_b.Merge(del);
  BOOST_TEST(at_a.Value() == 3);
  BOOST_TEST(at_a.present());
  BOOST_TEST(LiveDots(at_a) == "b#1:2");
  BOOST_TEST((at_a == at_b));
}

BOOST_AUTO_TEST_CASE(delete_with_nothing_concurrent_leaves_it_absent) {
  Counter at_a, at_b;
  at_b.Merge(IncrementAt(&at_a, a, 5));
  at_b.Merge(IncrementAt(&at_a, a, -8));
  at_a.Merge(DeleteAt(&at_b));
  for (const Counter* r : {&at_a, &at_b}) {
    BOOST_TEST(!r->present());
    BOOST_TEST(r->Value() == 0);
  }
  BOOST_TEST((at_a == at_b));
}

BOOST_AUTO_TEST_CASE(reincrement_after_delete_counts_from_zero) {
  Counter at_a, at_b;
  at_b.Merge(IncrementAt(&at_a, a, 5));
  at_b.Merge(IncrementAt(&at_a, a, 2));
  at_b.Merge(DeleteAt(&at_a));
  at_b.Merge(IncrementAt(&at_a, a, 4));
  BOOST_TEST(at_a.Value() == 4);
  BOOST_TEST(at_a.present());
  at_a.Merge(IncrementAt(&at_b, b, -1));
  BOOST_TEST(at_a.Value() == 3);
  BOOST_TEST((at_a == at_b));
}

BOOST_AUTO_TEST_SUITE_END()

// ===========================================================================
BOOST_FIXTURE_TEST_SUITE(set, Replicas)

BOOST_AUTO_TEST_CASE(concurrent_add_and_remove_add_wins) {
  Set at_a, at_b;
  at_b.Merge(AddAt(&at_a, a, "x"));
  Set rem = RemoveAt(&at_a, "x");
  BOOST_TEST(!at_a.Contains("x"));
  Set add = AddAt(&at_b, b, "x");
  at_a.Merge(add);
  at_b.Merge(rem);
  BOOST_TEST(at_a.Contains("x"));
  BOOST_TEST(LiveDots(at_a) == "b#1:1");
  BOOST_TEST((at_a == at_b));
}

BOOST_AUTO_TEST_CASE(remove_of_an_observed_add_removes) {
  Set at_a, at_b;
  at_b.Merge(AddAt(&at_a, a, "x"));
  at_b.Merge(AddAt(&at_a, a, "y"));
  at_a.Merge(RemoveAt(&at_b, "x"));
  BOOST_TEST(Join(at_a.Values()) == "y");
  BOOST_TEST((at_a == at_b));
  // Removing what is not there is harmless.
  at_a.Merge(RemoveAt(&at_b, "nothing"));
  BOOST_TEST(Join(at_a.Values()) == "y");
}

BOOST_AUTO_TEST_CASE(remove_that_saw_one_of_two_adds_leaves_the_element) {
  Set at_a, at_b, at_c;
  Set add_a = AddAt(&at_a, a, "x");
  Set add_b = AddAt(&at_b, b, "x");
  Set rem = RemoveAt(&at_a, "x");  // saw only a's add
  BOOST_TEST(!at_a.Contains("x"));
  for (Set* r : {&at_a, &at_b, &at_c}) {
    for (const Set* d : {&add_a, &add_b, &rem}) r->Merge(*d);
  }
  BOOST_TEST(at_c.Contains("x"));
  BOOST_TEST(LiveDots(at_c) == "b#1:1");
  BOOST_TEST((at_a == at_b));
  BOOST_TEST((at_a == at_c));
}

BOOST_AUTO_TEST_CASE(delete_removes_observed_elements_only) {
  Set at_a, at_b;
  at_b.Merge(AddAt(&at_a, a, "x"));
  at_b.Merge(AddAt(&at_a, a, "y"));
  Set del = DeleteAt(&at_a);
  BOOST_TEST(at_a.IsBottom());
  // Concurrently b adds a new element and re-adds one a is deleting.
  Set add_z = AddAt(&at_b, b, "z");
  Set add_x = AddAt(&at_b, b, "x");
  at_b.Merge(del);
  at_a.Merge(add_z);
  at_a.Merge(add_x);
  BOOST_TEST(Join(at_a.Values()) == "x,z");
  BOOST_TEST((at_a == at_b));
}

BOOST_AUTO_TEST_CASE(element_size_limit) {
  Set at_a;
  Set d;
  const std::string largest(kMaxSetElementBytes, 'e');
  const std::string too_large(kMaxSetElementBytes + 1, 'e');
  REQUIRE_OK(at_a.Add(a, largest, &d));
  at_a.Merge(d);
  BOOST_TEST(at_a.Contains(largest));

  const Set before = at_a;
  BOOST_TEST(at_a.Add(a, too_large, &d).IsInvalidArgument());
  BOOST_TEST(at_a.Remove(too_large, &d).IsInvalidArgument());
  BOOST_TEST(at_a.Update(a, {"ok"}, {too_large}, &d).IsInvalidArgument());
  BOOST_TEST((at_a == before));
}

BOOST_AUTO_TEST_CASE(re_add_replaces_the_dots_it_has_seen) {
  Set at_a, at_b;
  at_b.Merge(AddAt(&at_a, a, "x"));
  Set again = AddAt(&at_b, b, "x");
  BOOST_TEST(LiveDots(again) == "b#1:1");
  BOOST_TEST(again.context().ToString() == "{a#1:1..1, b#1:1..1}");
  at_a.Merge(again);
  BOOST_TEST(LiveDots(at_a) == "b#1:1");
  BOOST_TEST((at_a == at_b));
}

BOOST_AUTO_TEST_CASE(one_update_gives_each_added_element_its_own_dot) {
  Set at_a;
  Set d;
  REQUIRE_OK(at_a.Update(a, {"x", "y", "x"}, {}, &d));
  at_a.Merge(d);
  BOOST_TEST(Join(at_a.Values()) == "x,y");
  BOOST_TEST(LiveDots(at_a) == "a#1:1 a#1:2");
  // Named in both lists: added.
  REQUIRE_OK(at_a.Update(a, {"y"}, {"y"}, &d));
  at_a.Merge(d);
  BOOST_TEST(at_a.Contains("y"));
  BOOST_TEST(LiveDots(at_a) == "a#1:1 a#1:3");
}

BOOST_AUTO_TEST_SUITE_END()

// ===========================================================================
BOOST_FIXTURE_TEST_SUITE(flag, Replicas)

BOOST_AUTO_TEST_CASE(enable_wins_against_a_concurrent_disable) {
  Flag at_a, at_b;
  at_b.Merge(EnableAt(&at_a, a));
  Flag off = DisableAt(&at_a);
  BOOST_TEST(!at_a.enabled());
  Flag on = EnableAt(&at_b, b);
  at_a.Merge(on);
  at_b.Merge(off);
  BOOST_TEST(at_a.enabled());
  BOOST_TEST(at_b.enabled());
  BOOST_TEST((at_a == at_b));

  // Also on a fresh flag: a disable that saw nothing removes nothing.
  Flag fresh_a, fresh_b;
  Flag on2 = EnableAt(&fresh_a, a);
  Flag off2 = DisableAt(&fresh_b);
  fresh_a.Merge(off2);
  fresh_b.Merge(on2);
  BOOST_TEST(fresh_a.enabled());
  BOOST_TEST(fresh_b.enabled());
}

BOOST_AUTO_TEST_CASE(disable_after_an_observed_enable) {
  Flag at_a, at_b;
  at_b.Merge(EnableAt(&at_a, a));
  at_a.Merge(EnableAt(&at_b, b));
  BOOST_TEST(LiveDots(at_a) == "b#1:1");  // b's enable replaced a's
  at_a.Merge(DisableAt(&at_b));
  BOOST_TEST(!at_a.enabled());
  BOOST_TEST(!at_b.enabled());
  BOOST_TEST((at_a == at_b));
}

BOOST_AUTO_TEST_SUITE_END()

// ===========================================================================
BOOST_FIXTURE_TEST_SUITE(map, Replicas)

BOOST_AUTO_TEST_CASE(update_a_field_of_each_type) {
  Map at_a, at_b;
  at_b.Merge(UpdateAt(&at_a, a, MakeHlc(1000, 0),
                      {RegisterSet("title", "hello"), CounterAdd("views", 3),
                       SetOps("tags", {"x", "y"}, {}), FlagOp("done", true)}));
  BOOST_TEST(Render(at_b) == "done:flag=on tags:set={x,y} title:register=hello views:counter=3");

  at_a.Merge(UpdateAt(&at_b, b, MakeHlc(1001, 0),
                      {RegisterSet("title", "bye"), CounterAdd("views", -1),
                       SetOps("tags", {"z"}, {"x"}), FlagOp("done", false)}));
  BOOST_TEST(Render(at_a) == "tags:set={y,z} title:register=bye views:counter=2");
  const auto values = at_a.Values();
  auto title = values.find(FieldKey{"title", FieldType::kRegister});
  BOOST_REQUIRE(title != values.end());
  BOOST_TEST(title->second.reg_hlc == MakeHlc(1001, 0));
  BOOST_TEST((at_a == at_b));
}

BOOST_AUTO_TEST_CASE(concurrent_register_writes_in_a_field_read_by_lww) {
  Map at_a, at_b;
  Map da = UpdateAt(&at_a, a, MakeHlc(1000, 5), {RegisterSet("r", "from a")});
  Map db = UpdateAt(&at_b, b, MakeHlc(1000, 5), {RegisterSet("r", "from b")});
  at_a.Merge(db);
  at_b.Merge(da);
  // Same HLC: the greater node id wins the read, both writes are kept.
  BOOST_TEST(Render(at_a) == "r:register=from b");
  BOOST_TEST(LiveDots(at_a) == "a#1:1 b#1:1");
  BOOST_TEST((at_a == at_b));
}

BOOST_AUTO_TEST_CASE(remove_concurrent_with_counter_increment_keeps_only_the_increment) {
  Map at_a, at_b;
  at_b.Merge(UpdateAt(&at_a, a, MakeHlc(1000, 0), {CounterAdd("views", 5)}));
  Map rem = UpdateAt(&at_a, a, MakeHlc(1001, 0), {}, {"views"});
  BOOST_TEST(Render(at_a) == "");
  Map inc = UpdateAt(&at_b, b, MakeHlc(1001, 0), {CounterAdd("views", 3)});
  at_a.Merge(inc);
  at_b.Merge(rem);
  BOOST_TEST(Render(at_a) == "views:counter=3");
  BOOST_TEST((at_a == at_b));

  // A remove that saw everything leaves nothing.
  at_b.Merge(UpdateAt(&at_a, a, MakeHlc(1002, 0), {}, {"views"}));
  BOOST_TEST(Render(at_b) == "");
  BOOST_TEST((at_a == at_b));
}

BOOST_AUTO_TEST_CASE(remove_concurrent_with_set_add_keeps_only_the_added_element) {
  Map at_a, at_b;
  at_b.Merge(UpdateAt(&at_a, a, MakeHlc(1000, 0), {SetOps("tags", {"x", "y"}, {})}));
  Map rem = UpdateAt(&at_a, a, MakeHlc(1001, 0), {}, {"tags"});
  Map add = UpdateAt(&at_b, b, MakeHlc(1001, 0), {SetOps("tags", {"z"}, {})});
  at_a.Merge(add);
  at_b.Merge(rem);
  BOOST_TEST(Render(at_a) == "tags:set={z}");
  BOOST_TEST((at_a == at_b));
}

BOOST_AUTO_TEST_CASE(same_name_with_two_types_keeps_both_fields) {
  Map at_a, at_b;
  Map da = UpdateAt(&at_a, a, MakeHlc(1000, 0), {CounterAdd("f", 1)});
  Map db = UpdateAt(&at_b, b, MakeHlc(1000, 0), {RegisterSet("f", "v")});
  at_a.Merge(db);
  at_b.Merge(da);
  BOOST_TEST(Render(at_a) == "f:register=v f:counter=1");
  BOOST_TEST((at_a == at_b));

  // Removing the name removes every type held under it.
  at_b.Merge(UpdateAt(&at_a, a, MakeHlc(1001, 0), {}, {"f"}));
  BOOST_TEST(Render(at_b) == "");
  BOOST_TEST((at_a == at_b));
}

BOOST_AUTO_TEST_CASE(update_that_removes_and_updates_one_name_keeps_the_update) {
  Map at_a, at_b;
  at_b.Merge(UpdateAt(&at_a, a, MakeHlc(1000, 0),
                      {CounterAdd("c", 5), RegisterSet("r", "old"), SetOps("s", {"x"}, {})}));
  at_b.Merge(UpdateAt(&at_a, a, MakeHlc(1001, 0),
                      {CounterAdd("c", 2), RegisterSet("r", "new"), SetOps("s", {"y"}, {})},
                      {"c", "r", "s"}));
  // The removal took what was there; each op applied after it.
  BOOST_TEST(Render(at_b) == "c:counter=2 r:register=new s:set={y}");
  BOOST_TEST((at_a == at_b));
}

BOOST_AUTO_TEST_CASE(several_ops_in_one_update_get_distinct_dots) {
  Map at_a, at_b;
  Map d = UpdateAt(&at_a, a, MakeHlc(1000, 0),
                   {CounterAdd("c", 1), CounterAdd("c", 2), FlagOp("f", true),
                    SetOps("s", {"x", "y"}, {}), RegisterSet("r", "v")});
  // c's second op replaced its first dot; every op had its own.
  BOOST_TEST(d.context().ToString() == "{a#1:1..6}");
  BOOST_TEST(LiveDots(d) == "a#1:2 a#1:3 a#1:4 a#1:5 a#1:6");
  at_b.Merge(d);
  BOOST_TEST(Render(at_b) == "c:counter=3 f:flag=on r:register=v s:set={x,y}");
  BOOST_TEST((at_a == at_b));
}

BOOST_AUTO_TEST_CASE(delete_removes_observed_fields_only) {
  Map at_a, at_b;
  at_b.Merge(UpdateAt(&at_a, a, MakeHlc(1000, 0),
                      {RegisterSet("title", "t"), CounterAdd("views", 5), SetOps("tags", {"x"}, {}),
                       FlagOp("done", true)}));
  Map del = DeleteAt(&at_a);
  BOOST_TEST(Render(at_a) == "");
  Map concurrent =
      UpdateAt(&at_b, b, MakeHlc(1001, 0), {CounterAdd("views", 4), FlagOp("new", true)});
  at_a.Merge(concurrent);
  at_b.Merge(del);
  BOOST_TEST(Render(at_a) == "new:flag=on views:counter=4");
  BOOST_TEST((at_a == at_b));
}

BOOST_AUTO_TEST_SUITE_END()

// ===========================================================================
BOOST_FIXTURE_TEST_SUITE(envelope, Replicas)

BOOST_AUTO_TEST_CASE(same_type_merge_joins_the_states) {
  Counter at_a, at_b;
  IncrementAt(&at_a, a, 5);
  IncrementAt(&at_b, b, 3);
  Envelope env_a = EnvelopeOf(at_a, MakeHlc(1000, 0), a);
  Envelope env_b = EnvelopeOf(at_b, MakeHlc(900, 0), b);

  std::vector<TypedState> lost;
  REQUIRE_OK(env_a.Merge(env_b, &lost));
  BOOST_TEST(lost.empty());
  BOOST_TEST(env_a.losers().empty());
  const TypedState* w = env_a.winner();
  BOOST_REQUIRE(w != nullptr);
  BOOST_TEST(w->tag == Counter::kTag);
  // The type's origin is its earliest write.
  BOOST_TEST(w->origin_hlc == MakeHlc(900, 0));
  BOOST_TEST(w->origin.ToString() == "b#1");

  Counter joined = at_a;
  joined.Merge(at_b);
  BOOST_TEST((w->state == joined.Encode()));
  Counter decoded;
  REQUIRE_OK(Counter::Decode(w->state, &decoded));
  BOOST_TEST(decoded.Value() == 8);
}

BOOST_AUTO_TEST_CASE(concurrent_first_writes_of_two_types_smaller_origin_wins) {
  Counter counter;
  IncrementAt(&counter, a, 1);
  Set set;
  AddAt(&set, b, "x");
  // Same HLC: the replica id decides, and a < b.
  const Envelope first_a = EnvelopeOf(counter, MakeHlc(1000, 0), a);
  const Envelope first_b = EnvelopeOf(set, MakeHlc(1000, 0), b);

  // a's own type won first; b's arrives as a loser.
  Envelope at_a = first_a;
  std::vector<TypedState> lost_a;
  REQUIRE_OK(at_a.Merge(first_b, &lost_a));
  BOOST_TEST(Tags(lost_a) == "4");

  // At b the set was winning; the counter arrives second and the set,
  // unchanged, becomes a loser, so it is reported now.
  Envelope at_b = first_b;
  BOOST_REQUIRE(at_b.winner() != nullptr);
  BOOST_TEST(at_b.winner()->tag == Set::kTag);
  std::vector<TypedState> lost_b;
  REQUIRE_OK(at_b.Merge(first_a, &lost_b));
  BOOST_TEST(Tags(lost_b) == "4");
  BOOST_REQUIRE(lost_b.size() == 1);
  BOOST_TEST((lost_b[0].state == set.Encode()));
  BOOST_TEST(lost_b[0].origin.ToString() == "b#1");

  for (const Envelope* e : {&at_a, &at_b}) {
    BOOST_REQUIRE(e->winner() != nullptr);
    BOOST_TEST(e->winner()->tag == Counter::kTag);
    BOOST_TEST(Tags(e->losers()) == "4");
  }
  BOOST_TEST((at_a == at_b));

  // Duplicates report nothing new.
  std::vector<TypedState> again;
  REQUIRE_OK(at_a.Merge(first_b, &again));
  REQUIRE_OK(at_b.Merge(first_a, &again));
  BOOST_TEST(again.empty());

  // A later write to the losing type changes the loser: reported again. A
  // write to the winner is not a loss.
  Set set_delta;
  REQUIRE_OK(set.Add(b, "y", &set_delta));
  std::vector<TypedState> more;
  REQUIRE_OK(at_a.Merge(EnvelopeOf(set_delta, MakeHlc(1005, 0), b), &more));
  BOOST_TEST(Tags(more) == "4");
  more.clear();
  Counter counter_delta;
  REQUIRE_OK(counter.Increment(a, 1, &counter_delta));
  REQUIRE_OK(at_a.Merge(EnvelopeOf(counter_delta, MakeHlc(1006, 0), a), &more));
  BOOST_TEST(more.empty());
  BOOST_REQUIRE(at_a.winner() != nullptr);
  BOOST_TEST(at_a.winner()->tag == Counter::kTag);
  BOOST_TEST(at_a.winner()->origin_hlc == MakeHlc(1000, 0));
}

BOOST_AUTO_TEST_CASE(winner_is_decided_by_origin_not_by_tag_or_arrival) {
  // Three replicas first-write three types; the flag (tag 7) has the
  // smallest HLC, the register the largest.
  Register reg;
  SetAt(&reg, MakeHlc(3000, 0), a, "r");
  Flag flag;
  EnableAt(&flag, b);
  MvRegister mv;
  WriteAt(&mv, c, "m");
  const std::vector<Envelope> firsts = {EnvelopeOf(reg, MakeHlc(3000, 0), a),
                                        EnvelopeOf(flag, MakeHlc(1000, 0), b),
                                        EnvelopeOf(mv, MakeHlc(2000, 0), c)};
  std::vector<size_t> order = {0, 1, 2};
  Envelope reference;
  for (size_t i : order) REQUIRE_OK(reference.Merge(firsts[i], nullptr));
  do {
    Envelope e;
    std::vector<TypedState> lost;
    for (size_t i : order) REQUIRE_OK(e.Merge(firsts[i], &lost));
    BOOST_REQUIRE(e.winner() != nullptr);
    BOOST_TEST(e.winner()->tag == Flag::kTag);
    BOOST_TEST(Tags(e.losers()) == "1,2");
    BOOST_TEST((e == reference));
    // Whatever the order, each losing type was reported at least once.
    std::string reported = Tags(lost);
    BOOST_TEST(reported.find('1') != std::string::npos);
    BOOST_TEST(reported.find('2') != std::string::npos);
    BOOST_TEST(reported.find('7') == std::string::npos);
  } while (std::next_permutation(order.begin(), order.end()));
}

BOOST_AUTO_TEST_CASE(of_refuses_an_unknown_tag) {
  Counter counter;
  IncrementAt(&counter, a, 1);
  for (uint8_t tag : {0, 8, 9, 255}) {
    Envelope e;
    Status st = Envelope::Of(tag, MakeHlc(1, 0), a, counter.Encode(), &e);
    BOOST_TEST(st.IsInvalidArgument(), "tag " << int{tag} << ": " << st.ToString());
    BOOST_TEST(e.empty());
  }
  // A known tag with bytes of another type is not a valid state either.
  Envelope e;
  BOOST_TEST(!Envelope::Of(Register::kTag, MakeHlc(1, 0), a, counter.Encode(), &e).ok());
}

BOOST_AUTO_TEST_SUITE_END()

// ===========================================================================
BOOST_FIXTURE_TEST_SUITE(registry, Replicas)

BOOST_AUTO_TEST_CASE(every_type_is_found_by_tag_and_by_name) {
  const std::vector<std::pair<int, std::string>> expected = {
      {1, "register"}, {2, "mvregister"}, {3, "counter"}, {4, "set"},
      {5, "map"},      {6, "text"},       {7, "flag"},
  };
  const auto& all = AllTypes();
  BOOST_REQUIRE(all.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto& [tag, name] = expected[i];
    BOOST_TEST(int{all[i]->tag} == tag);
    BOOST_TEST(std::string(all[i]->name) == name);
    const TypeOps* by_tag = FindTypeByTag(static_cast<uint8_t>(tag));
    const TypeOps* by_name = FindTypeByName(name);
    BOOST_REQUIRE(by_tag != nullptr);
    BOOST_REQUIRE(by_name != nullptr);
    BOOST_TEST(by_tag == by_name);
    BOOST_TEST(std::string(by_tag->name) == name);
  }
  BOOST_TEST(int{Register::kTag} == 1);
  BOOST_TEST(int{MvRegister::kTag} == 2);
  BOOST_TEST(int{Counter::kTag} == 3);
  BOOST_TEST(int{Set::kTag} == 4);
  BOOST_TEST(int{Map::kTag} == 5);
  BOOST_TEST(int{Text::kTag} == 6);
  BOOST_TEST(int{Flag::kTag} == 7);
  BOOST_TEST((FindTypeByTag(0) == nullptr));
  BOOST_TEST((FindTypeByTag(8) == nullptr));
  BOOST_TEST((FindTypeByName("string") == nullptr));
  BOOST_TEST((FindTypeByName("") == nullptr));
}

// Checks, for one type, that the registry's byte-level operations agree
// with the typed ones on two concurrent states.
template <class T>
void CheckRegistryAgrees(const T& x, const T& y) {
  const TypeOps* ops = FindTypeByTag(T::kTag);
  BOOST_REQUIRE(ops != nullptr);
  BOOST_TEST_CONTEXT("type " << T::kName) {
    T joined = x;
    joined.Merge(y);
    BOOST_REQUIRE((x != joined));  // the example must exercise the join
    std::string out;
    REQUIRE_OK(ops->merge(x.Encode(), y.Encode(), &out));
    BOOST_TEST((out == joined.Encode()));
    REQUIRE_OK(ops->merge(y.Encode(), x.Encode(), &out));
    BOOST_TEST((out == joined.Encode()));

    BOOST_TEST((ops->empty() == T().Encode()));
    bool bottom = false;
    REQUIRE_OK(ops->is_bottom(ops->empty(), &bottom));
    BOOST_TEST(bottom);
    REQUIRE_OK(ops->is_bottom(joined.Encode(), &bottom));
    BOOST_TEST(!bottom);
    REQUIRE_OK(ops->canonicalize(joined.Encode(), &out));
    BOOST_TEST((out == joined.Encode()));
  }
}

BOOST_AUTO_TEST_CASE(merge_via_registry_equals_typed_merge) {
  {
    Register x, y;
    SetAt(&x, MakeHlc(1000, 0), a, "x");
    SetAt(&y, MakeHlc(1000, 0), b, "y");
    CheckRegistryAgrees(x, y);
  }
  {
    MvRegister x, y;
    WriteAt(&x, a, "x");
    WriteAt(&y, b, "y");
    CheckRegistryAgrees(x, y);
  }
  {
    Counter x, y;
    IncrementAt(&x, a, 5);
    IncrementAt(&y, b, -2);
    CheckRegistryAgrees(x, y);
  }
  {
    Set x, y;
    AddAt(&x, a, "x");
    AddAt(&y, b, "y");
    CheckRegistryAgrees(x, y);
  }
  {
    Map x, y;
    UpdateAt(&x, a, MakeHlc(1000, 0), {CounterAdd("c", 1), SetOps("s", {"x"}, {})});
    UpdateAt(&y, b, MakeHlc(1000, 0), {RegisterSet("r", "v"), FlagOp("f", true)});
    CheckRegistryAgrees(x, y);
  }
  {
    Flag x, y;
    EnableAt(&x, a);
    EnableAt(&y, b);
    CheckRegistryAgrees(x, y);
  }
}

BOOST_AUTO_TEST_SUITE_END()
