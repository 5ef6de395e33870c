// Dots and causal contexts (crdt/causal_context.h) against a brute-force
// model, a std::set of dots: Add, Merge, Intersect and Covers must behave as
// the set operations and always leave the one canonical representation.
// Also the canonical encoding and what Decode refuses, the hex helpers of
// crdt/codec.h and Status.
#define BOOST_TEST_MODULE causal_context
#include "crdt/causal_context.h"

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <iterator>
#include <limits>
#include <map>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "crdt/codec.h"
#include "crdt/status.h"

using namespace meridian;
using namespace meridian::crdt;

namespace meridian {
// Lets Boost.Test print a code when an assertion on it fails.
std::ostream& boost_test_print_type(std::ostream& os, Status::Code code) {
  return os << static_cast<int>(code);
}
}  // namespace meridian

namespace meridian::crdt {
std::ostream& boost_test_print_type(std::ostream& os, const CausalContext& c) {
  return os << c.ToString();
}
std::ostream& boost_test_print_type(std::ostream& os, const Dot& d) { return os << d.ToString(); }
std::ostream& boost_test_print_type(std::ostream& os, const ReplicaId& r) {
  return os << r.ToString();
}
}  // namespace meridian::crdt

namespace {

Dot D(const std::string& node, uint64_t inc, uint64_t counter) {
  return Dot{ReplicaId{node, inc}, counter};
}

CausalContext FromDots(const std::vector<Dot>& dots) {
  CausalContext c;
  for (const Dot& d : dots) c.Add(d);
  return c;
}

// The canonical representation of a dot set, computed independently of
// CausalContext: per replica, the longest prefix 1..n goes to the vector,
// everything else to the cloud.
void Canonical(const std::set<Dot>& dots, std::map<ReplicaId, uint64_t>* vv, DotSet* cloud) {
  vv->clear();
  cloud->clear();
  // Dots arrive in ascending order per replica, so the prefix grows exactly
  // while counters are contiguous and nothing of the replica is in the
  // cloud yet.
  std::set<ReplicaId> gapped;
  for (const Dot& d : dots) {
    uint64_t& n = (*vv)[d.replica];
    if (gapped.count(d.replica) == 0 && d.counter == n + 1) {
      n = d.counter;
    } else {
      gapped.insert(d.replica);
      cloud->insert(d);
    }
  }
  for (auto it = vv->begin(); it != vv->end();) {
    it = it->second == 0 ? vv->erase(it) : std::next(it);
  }
}

// Checks that `c` holds exactly `dots` over `universe`, in canonical form.
void ExpectSameSet(const CausalContext& c, const std::set<Dot>& dots,
                   const std::vector<Dot>& universe) {
  for (const Dot& d : universe) {
    // One assertion per mismatch only: these run millions of times.
    if (c.Contains(d) != (dots.count(d) > 0)) {
      BOOST_FAIL("Contains(" << d.ToString() << ") is wrong for " << c.ToString());
    }
  }
  std::map<ReplicaId, uint64_t> vv;
  DotSet cloud;
  Canonical(dots, &vv, &cloud);
  if (c.vv() != vv || c.cloud() != cloud) BOOST_FAIL("not canonical: " << c.ToString());
  if (c.empty() != dots.empty()) BOOST_FAIL("empty() is wrong for " << c.ToString());
}

std::string EncodeContext(const CausalContext& c) {
  Encoder e;
  c.Encode(&e);
  return e.Take();
}

Status DecodeContext(const std::string& bytes, CausalContext* out) {
  Decoder dec;
  MERIDIAN_RETURN_IF_ERROR(dec.ParseRaw(bytes));
  return CausalContext::Decode(dec.root(), out);
}

// Random test data: two nodes whose ids share a prefix, each in two
// incarnations, plus a third node; counters 1..8. Small enough that unions
// and intersections overlap often and contiguous runs form.
struct Universe {
  std::vector<ReplicaId> replicas = {{"a", 0}, {"a", 1}, {"ab", 0}, {"ab", 1}, {"z", 7}};
  uint64_t max_counter = 8;

  std::vector<Dot> All() const {
    std::vector<Dot> out;
    for (const ReplicaId& r : replicas) {
      for (uint64_t n = 1; n <= max_counter + 1; ++n) out.push_back(Dot{r, n});
    }
    return out;
  }

  // A random dot set, biased towards dense prefixes so the vector is used.
  std::set<Dot> RandomSet(std::mt19937_64* rng) const {
    std::set<Dot> s;
    for (const ReplicaId& r : replicas) {
      uint64_t density = (*rng)() % 5;  // 0: empty .. 4: full
      for (uint64_t n = 1; n <= max_counter; ++n) {
        if ((*rng)() % 4 < density) s.insert(Dot{r, n});
      }
    }
    return s;
  }

  // Builds a context by adding the dots in a random order.
  CausalContext Build(const std::set<Dot>& s, std::mt19937_64* rng) const {
    std::vector<Dot> v(s.begin(), s.end());
    std::shuffle(v.begin(), v.end(), *rng);
    return FromDots(v);
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(add_and_contains_compacts) {
  CausalContext c;
  BOOST_TEST(c.empty());
  BOOST_TEST(!c.Contains(D("a", 0, 1)));

  c.Add(D("a", 0, 1));
  c.Add(D("a", 0, 2));
  BOOST_TEST(c.vv().size() == 1u);
  BOOST_TEST(c.vv().at(ReplicaId{"a", 0}) == 2u);
  BOOST_TEST(c.cloud().empty());

  // A gap goes to the cloud.
  c.Add(D("a", 0, 4));
  c.Add(D("a", 0, 6));
  BOOST_TEST(c.vv().at(ReplicaId{"a", 0}) == 2u);
  BOOST_TEST(c.cloud() == (DotSet{D("a", 0, 4), D("a", 0, 6)}));
  BOOST_TEST(c.Contains(D("a", 0, 2)));
  BOOST_TEST(!c.Contains(D("a", 0, 3)));
  BOOST_TEST(c.Contains(D("a", 0, 4)));
  BOOST_TEST(!c.Contains(D("a", 0, 5)));
  BOOST_TEST(!c.Contains(D("a", 1, 1)));  // another incarnation
  BOOST_TEST(!c.Contains(D("b", 0, 1)));
  BOOST_TEST(c.ToString() == "{a#0:1..2, a#0:4, a#0:6}");

  // Filling the gap pulls the run behind it into the vector, but stops at
  // the next gap.
  c.Add(D("a", 0, 3));
  BOOST_TEST(c.vv().at(ReplicaId{"a", 0}) == 4u);
  BOOST_TEST(c.cloud() == DotSet{D("a", 0, 6)});

  // Re-adding a present dot changes nothing.
  CausalContext before = c;
  c.Add(D("a", 0, 2));
  c.Add(D("a", 0, 6));
  BOOST_TEST(c == before);

  // A replica that has only cloud dots has no vector entry at all.
  c.Add(D("b", 2, 5));
  BOOST_TEST(c.vv().count(ReplicaId{"b", 2}) == 0u);
  BOOST_TEST(c.cloud().count(D("b", 2, 5)) == 1u);
}

BOOST_AUTO_TEST_CASE(add_out_of_order_gives_in_order_representation) {
  std::vector<Dot> dots = {D("a", 0, 1), D("a", 0, 2), D("a", 0, 3), D("a", 0, 5), D("a", 1, 1),
                           D("a", 1, 2), D("b", 0, 2), D("b", 0, 3), D("b", 0, 9)};
  CausalContext in_order = FromDots(dots);
  BOOST_TEST(in_order.vv() ==
             (std::map<ReplicaId, uint64_t>{{ReplicaId{"a", 0}, 3}, {ReplicaId{"a", 1}, 2}}));
  BOOST_TEST(in_order.cloud() == (DotSet{D("a", 0, 5), D("b", 0, 2), D("b", 0, 3), D("b", 0, 9)}));

  std::vector<Dot> reversed(dots.rbegin(), dots.rend());
  BOOST_TEST(FromDots(reversed) == in_order);

  std::mt19937_64 rng(1);
  std::string bytes = EncodeContext(in_order);
  for (int i = 0; i < 200; ++i) {
    std::vector<Dot> shuffled = dots;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    // Duplicates must not matter either.
    shuffled.push_back(shuffled[rng() % shuffled.size()]);
    CausalContext c = FromDots(shuffled);
    BOOST_REQUIRE_EQUAL(c, in_order);
    BOOST_REQUIRE(EncodeContext(c) == bytes);
  }
}

BOOST_AUTO_TEST_CASE(add_matches_brute_force_model) {
  Universe u;
  std::vector<Dot> all = u.All();
  std::mt19937_64 rng(17);
  for (int i = 0; i < 100; ++i) {
    CausalContext c;
    std::set<Dot> model;
    for (int k = 0; k < 40; ++k) {
      Dot d = all[rng() % all.size()];
      c.Add(d);
      model.insert(d);
      ExpectSameSet(c, model, all);
    }
  }
}

BOOST_AUTO_TEST_CASE(merge_is_set_union) {
  Universe u;
  std::vector<Dot> all = u.All();
  std::mt19937_64 rng(42);
  for (int i = 0; i < 2000; ++i) {
    std::set<Dot> sa = u.RandomSet(&rng);
    std::set<Dot> sb = u.RandomSet(&rng);
    CausalContext a = u.Build(sa, &rng);
    CausalContext b = u.Build(sb, &rng);

    std::set<Dot> expected = sa;
    expected.insert(sb.begin(), sb.end());

    CausalContext ab = a;
    ab.Merge(b);
    ExpectSameSet(ab, expected, all);
    CausalContext ba = b;
    ba.Merge(a);
    BOOST_REQUIRE_EQUAL(ab, ba);

    // Idempotent, and merging the empty context is the identity.
    CausalContext again = ab;
    again.Merge(b);
    BOOST_REQUIRE_EQUAL(again, ab);
    again.Merge(CausalContext());
    BOOST_REQUIRE_EQUAL(again, ab);
  }
}

BOOST_AUTO_TEST_CASE(merge_raises_vector_over_cloud) {
  // The other side's vector swallows this side's cloud, and the dots just
  // past it join the vector too.
  CausalContext a = FromDots({D("a", 0, 1), D("a", 0, 4), D("a", 0, 6), D("a", 0, 9)});
  CausalContext b = FromDots({D("a", 0, 1), D("a", 0, 2), D("a", 0, 3), D("a", 0, 5)});
  a.Merge(b);
  BOOST_TEST(a.vv().at(ReplicaId{"a", 0}) == 6u);
  BOOST_TEST(a.cloud() == DotSet{D("a", 0, 9)});
}

BOOST_AUTO_TEST_CASE(intersect_is_set_intersection) {
  Universe u;
  std::vector<Dot> all = u.All();
  std::mt19937_64 rng(4242);
  for (int i = 0; i < 2000; ++i) {
    std::set<Dot> sa = u.RandomSet(&rng);
    std::set<Dot> sb = u.RandomSet(&rng);
    CausalContext a = u.Build(sa, &rng);
    CausalContext b = u.Build(sb, &rng);
    const CausalContext a_before = a;
    const CausalContext b_before = b;

    std::set<Dot> expected;
    std::set_intersection(sa.begin(), sa.end(), sb.begin(), sb.end(),
                          std::inserter(expected, expected.end()));

    CausalContext ab = a.Intersect(b);
    ExpectSameSet(ab, expected, all);
    BOOST_REQUIRE_EQUAL(ab, b.Intersect(a));
    BOOST_REQUIRE_EQUAL(a.Intersect(a), a);
    BOOST_REQUIRE(a.Intersect(CausalContext()).empty());
    // The operands are left alone.
    BOOST_REQUIRE_EQUAL(a, a_before);
    BOOST_REQUIRE_EQUAL(b, b_before);
  }
}

BOOST_AUTO_TEST_CASE(intersect_clamps_to_seen) {
  // A client context naming dots the state never saw is clamped; a vector
  // entry of one side meeting cloud dots of the other keeps exactly those.
  CausalContext state = FromDots({D("a", 0, 1), D("a", 0, 2), D("a", 0, 3), D("a", 0, 7)});
  CausalContext client =
      FromDots({D("a", 0, 1), D("a", 0, 3), D("a", 0, 7), D("a", 0, 8), D("b", 0, 1)});
  CausalContext clamped = state.Intersect(client);
  BOOST_TEST(clamped.vv().at(ReplicaId{"a", 0}) == 1u);
  BOOST_TEST(clamped.cloud() == (DotSet{D("a", 0, 3), D("a", 0, 7)}));
  BOOST_TEST(state.Covers(clamped));
  BOOST_TEST(client.Covers(clamped));
}

BOOST_AUTO_TEST_CASE(covers_is_set_inclusion) {
  // The vector of `other` partly covered by this side's cloud.
  CausalContext a = FromDots({D("a", 0, 1), D("a", 0, 2), D("a", 0, 4), D("a", 0, 5)});
  CausalContext b3 = FromDots({D("a", 0, 1), D("a", 0, 2), D("a", 0, 3)});
  CausalContext b2 = FromDots({D("a", 0, 1), D("a", 0, 2)});
  CausalContext cloud_only = FromDots({D("a", 0, 5)});
  BOOST_TEST(!a.Covers(b3));  // 3 missing
  BOOST_TEST(a.Covers(b2));
  BOOST_TEST(a.Covers(cloud_only));
  BOOST_TEST(a.Covers(CausalContext()));
  BOOST_TEST(!CausalContext().Covers(a));
  BOOST_TEST(!b3.Covers(a));
  BOOST_TEST(a.Covers(a));

  // Other's vector fully present, but only through this side's cloud.
  CausalContext c = FromDots({D("a", 0, 1), D("a", 0, 3), D("a", 0, 4)});
  CausalContext c_vec = FromDots({D("a", 0, 1)});
  BOOST_TEST(c.Covers(c_vec));
  CausalContext need4 = b3;
  need4.Add(D("a", 0, 4));
  BOOST_TEST(!c.Covers(need4));  // 2 missing

  Universe u;
  std::mt19937_64 rng(99);
  int covered = 0;
  for (int i = 0; i < 2000; ++i) {
    std::set<Dot> sa = u.RandomSet(&rng);
    std::set<Dot> sb = u.RandomSet(&rng);
    if (rng() % 3 == 0) {
      // Make b a subset of a often enough that both answers occur.
      std::set<Dot> sub;
      for (const Dot& d : sa) {
        if (rng() % 5 != 0) sub.insert(d);
      }
      sb = sub;
    }
    CausalContext a2 = u.Build(sa, &rng);
    CausalContext b = u.Build(sb, &rng);
    bool expected = std::includes(sa.begin(), sa.end(), sb.begin(), sb.end());
    BOOST_REQUIRE_MESSAGE(a2.Covers(b) == expected, a2.ToString() << " covers " << b.ToString());
    covered += expected;
  }
  BOOST_TEST(covered > 300);
  BOOST_TEST(covered < 1700);
}

BOOST_AUTO_TEST_CASE(max_and_next_dot_per_incarnation) {
  const ReplicaId a0{"a", 0};
  const ReplicaId a1{"a", 1};
  const ReplicaId a2{"a", 2};
  const ReplicaId a3{"a", 3};
  const ReplicaId ab0{"ab", 0};
  CausalContext c = FromDots({
      D("a", 0, 1), D("a", 0, 2), D("a", 0, 3),  // vector only
      D("a", 1, 1), D("a", 1, 2), D("a", 1, 8),  // vector and cloud
      D("a", 2, 4), D("a", 2, 6),                // cloud only
      D("ab", 0, 50),                            // next node id in order
  });
  BOOST_TEST(c.Max(a0) == 3u);
  BOOST_TEST(c.Max(a1) == 8u);
  BOOST_TEST(c.Max(a2) == 6u);
  BOOST_TEST(c.Max(a3) == 0u);
  BOOST_TEST(c.Max(ab0) == 50u);
  BOOST_TEST(c.Max(ReplicaId{"a", 100}) == 0u);
  BOOST_TEST(c.Max(ReplicaId{"", 0}) == 0u);
  BOOST_TEST(c.Max(ReplicaId{"b", 0}) == 0u);

  // Incarnations are distinct replicas: each counts from its own maximum.
  BOOST_TEST(c.NextDot(a0) == D("a", 0, 4));
  BOOST_TEST(c.NextDot(a1) == D("a", 1, 9));
  BOOST_TEST(c.NextDot(a2) == D("a", 2, 7));
  BOOST_TEST(c.NextDot(a3) == D("a", 3, 1));
  BOOST_TEST(!c.Contains(c.NextDot(a1)));
  BOOST_TEST(CausalContext().NextDot(a0) == D("a", 0, 1));

  // Issuing the next dot advances only that replica.
  c.Add(c.NextDot(a3));
  BOOST_TEST(c.Max(a3) == 1u);
  BOOST_TEST(c.Max(a2) == 6u);
  BOOST_TEST(c.NextDot(a3) == D("a", 3, 2));

  // Incarnation numbers at the ends of their range.
  const uint64_t kTop = std::numeric_limits<uint64_t>::max();
  CausalContext edge = FromDots({D("n", kTop, 5), D("n", kTop - 1, 1), D("n", 0, 3)});
  BOOST_TEST(edge.Max(ReplicaId{"n", kTop}) == 5u);
  BOOST_TEST(edge.Max(ReplicaId{"n", kTop - 1}) == 1u);
  BOOST_TEST(edge.Max(ReplicaId{"n", 0}) == 3u);
  BOOST_TEST(edge.NextDot(ReplicaId{"n", kTop}) == D("n", kTop, 6));
}

BOOST_AUTO_TEST_CASE(replica_and_dot_strings) {
  BOOST_TEST((ReplicaId{"us-east-1", 7}.ToString() == "us-east-1#7"));
  BOOST_TEST(D("us-east-1", 7, 12).ToString() == "us-east-1#7:12");
  BOOST_TEST(CausalContext().ToString() == "{}");
  // LWW tie-break order: node id first, then incarnation.
  BOOST_TEST((ReplicaId{"a", 9} < ReplicaId{"b", 0}));
  BOOST_TEST((ReplicaId{"a", 1} < ReplicaId{"a", 2}));
  BOOST_TEST((D("a", 1, 9) < D("a", 2, 1)));
}

BOOST_AUTO_TEST_CASE(encode_decode_round_trip) {
  // Dot: [str node, uint incarnation, uint counter], exact bytes.
  {
    Encoder e;
    EncodeDot(D("a", 1, 2), &e);
    BOOST_TEST(ToHex(e.bytes()) == "93a1610102");
    Decoder dec;
    BOOST_TEST_REQUIRE(dec.ParseRaw(e.bytes()).ok());
    Dot d;
    Status st = DecodeDot(dec.root(), &d);
    BOOST_TEST_REQUIRE(st.ok(), st.ToString());
    BOOST_TEST(d == D("a", 1, 2));
  }
  // Replica: [str node, uint incarnation].
  {
    Encoder e;
    ReplicaId r{"eu-west", 300};
    EncodeReplica(r, &e);
    BOOST_TEST(ToHex(e.bytes()) == "92a765752d77657374cd012c");
    Decoder dec;
    BOOST_TEST_REQUIRE(dec.ParseRaw(e.bytes()).ok());
    ReplicaId back;
    BOOST_TEST_REQUIRE(DecodeReplica(dec.root(), &back).ok());
    BOOST_TEST(back == r);
  }
  // Dot sets, including big counters and incarnations.
  {
    const uint64_t kTop = std::numeric_limits<uint64_t>::max();
    DotSet s = {D("a", 0, 1), D("a", kTop, kTop), D("b", 3, 70000)};
    Encoder e;
    EncodeDotSet(s, &e);
    Decoder dec;
    BOOST_TEST_REQUIRE(dec.ParseRaw(e.bytes()).ok());
    DotSet back = {D("stale", 0, 1)};  // replaced, not merged into
    BOOST_TEST_REQUIRE(DecodeDotSet(dec.root(), &back).ok());
    BOOST_TEST(back == s);
  }
  // Causal contexts: exact bytes for a small one.
  {
    CausalContext c = FromDots({D("a", 0, 1), D("a", 0, 2), D("a", 0, 5)});
    // [[["a",0,2]],[["a",0,5]]]
    BOOST_TEST(ToHex(EncodeContext(c)) == "929193a16100029193a1610005");
    BOOST_TEST(ToHex(EncodeContext(CausalContext())) == "929090");
  }
  // Random contexts round-trip, and the encoding is canonical.
  Universe u;
  std::mt19937_64 rng(3);
  for (int i = 0; i < 1000; ++i) {
    std::set<Dot> s = u.RandomSet(&rng);
    CausalContext c = u.Build(s, &rng);
    std::string bytes = EncodeContext(c);
    CausalContext back = FromDots({D("stale", 0, 1)});
    Status st = DecodeContext(bytes, &back);
    BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
    BOOST_REQUIRE_EQUAL(back, c);
    BOOST_REQUIRE(EncodeContext(back) == bytes);
    BOOST_REQUIRE(EncodeContext(u.Build(s, &rng)) == bytes);
  }

  // The version byte belongs to the enclosing format, not to the context.
  {
    CausalContext c = FromDots({D("x", 1, 1)});
    Encoder e(7);
    c.Encode(&e);
    Decoder dec;
    BOOST_TEST_REQUIRE(dec.Parse(e.bytes(), 7).ok());
    CausalContext back;
    BOOST_TEST_REQUIRE(CausalContext::Decode(dec.root(), &back).ok());
    BOOST_TEST(back == c);
    BOOST_TEST(dec.Parse(e.bytes(), 8).IsCorruption());
  }
}

namespace {

// Hand-built context encodings: [[vv entries...], [cloud dots...]].
struct Entry {
  std::string node;
  uint64_t inc;
  uint64_t n;
};

std::string RawContext(const std::vector<Entry>& vv, const std::vector<Entry>& cloud) {
  Encoder e;
  e.Array(2);
  e.Array(static_cast<uint32_t>(vv.size()));
  for (const Entry& x : vv) {
    e.Array(3);
    e.Str(x.node);
    e.Uint(x.inc);
    e.Uint(x.n);
  }
  e.Array(static_cast<uint32_t>(cloud.size()));
  for (const Entry& x : cloud) {
    e.Array(3);
    e.Str(x.node);
    e.Uint(x.inc);
    e.Uint(x.n);
  }
  return e.Take();
}

}  // namespace

BOOST_AUTO_TEST_CASE(decode_rejects_non_canonical_forms) {
  // The canonical near-miss of each case below decodes, so a rejection is
  // about the one thing changed.
  {
    CausalContext c;
    Status st =
        DecodeContext(RawContext({{"a", 0, 2}, {"b", 0, 1}}, {{"a", 0, 4}, {"c", 0, 2}}), &c);
    BOOST_TEST_REQUIRE(st.ok(), st.ToString());
    BOOST_TEST(c ==
               FromDots({D("a", 0, 1), D("a", 0, 2), D("b", 0, 1), D("a", 0, 4), D("c", 0, 2)}));
  }

  struct Case {
    const char* name;
    std::string bytes;
  };
  const std::string long_id(kMaxNodeIdBytes + 1, 'x');
  const Case cases[] = {
      {"unsorted vv", RawContext({{"b", 0, 1}, {"a", 0, 1}}, {})},
      {"unsorted vv by incarnation", RawContext({{"a", 2, 1}, {"a", 1, 1}}, {})},
      {"duplicate vv entry", RawContext({{"a", 0, 1}, {"a", 0, 2}}, {})},
      {"zero vv counter", RawContext({{"a", 0, 0}}, {})},
      {"empty vv node id", RawContext({{"", 0, 1}}, {})},
      {"over-long vv node id", RawContext({{long_id, 0, 1}}, {})},
      {"duplicate cloud dots", RawContext({}, {{"a", 0, 3}, {"a", 0, 3}})},
      {"unsorted cloud", RawContext({}, {{"a", 0, 5}, {"a", 0, 3}})},
      {"zero cloud counter", RawContext({}, {{"a", 0, 0}})},
      {"empty cloud node id", RawContext({}, {{"", 0, 3}})},
      {"cloud dot 1 without vv", RawContext({}, {{"a", 0, 1}})},
      {"cloud dot contiguous with vv", RawContext({{"a", 0, 2}}, {{"a", 0, 3}})},
      {"cloud dot inside vv", RawContext({{"a", 0, 2}}, {{"a", 0, 1}})},
      {"cloud dot at vv max", RawContext({{"a", 0, 2}}, {{"a", 0, 2}})},
  };
  for (const Case& tc : cases) {
    BOOST_TEST_CONTEXT(tc.name) {
      CausalContext c;
      Status st = DecodeContext(tc.bytes, &c);
      BOOST_TEST(st.IsCorruption(), st.ToString());
    }
  }

  // Node ids at the limit are fine.
  {
    const std::string max_id(kMaxNodeIdBytes, 'x');
    CausalContext c;
    BOOST_TEST(DecodeContext(RawContext({{max_id, 0, 1}}, {{max_id, 1, 2}}), &c).ok());
  }

  // Wrong shapes.
  auto shape = [](void (*build)(Encoder*)) {
    Encoder e;
    build(&e);
    CausalContext c;
    return DecodeContext(e.Take(), &c);
  };
  BOOST_TEST(shape([](Encoder* e) { e->Uint(1); }).IsCorruption());
  BOOST_TEST(shape([](Encoder* e) {
               e->Array(3);
               e->Array(0);
               e->Array(0);
               e->Array(0);
             }).IsCorruption());
  BOOST_TEST(shape([](Encoder* e) {
               e->Array(2);
               e->Array(1);
               e->Array(2);  // vv entry missing its max
               e->Str("a");
               e->Uint(0);
               e->Array(0);
             }).IsCorruption());
  BOOST_TEST(shape([](Encoder* e) {
               e->Array(2);
               e->Array(0);
               e->Array(1);
               e->Array(3);
               e->Str("a");
               e->Uint(0);
               e->Int(-3);  // negative counter
             }).IsCorruption());
  BOOST_TEST(shape([](Encoder* e) {
               e->Array(2);
               e->Array(0);
               e->Array(1);
               e->Array(3);
               e->Bin("a");  // node id as bytes, not str
               e->Uint(0);
               e->Uint(3);
             }).IsCorruption());

  // The free functions apply the same rules.
  {
    Encoder e;
    e.Array(2);
    e.Str("");
    e.Uint(0);
    Decoder dec;
    BOOST_TEST_REQUIRE(dec.ParseRaw(e.bytes()).ok());
    ReplicaId r;
    BOOST_TEST(DecodeReplica(dec.root(), &r).IsCorruption());
  }
  {
    Encoder e;
    e.Array(3);
    e.Str("a");
    e.Uint(0);
    e.Uint(0);
    Decoder dec;
    BOOST_TEST_REQUIRE(dec.ParseRaw(e.bytes()).ok());
    Dot d;
    BOOST_TEST(DecodeDot(dec.root(), &d).IsCorruption());
  }
  {
    Encoder e;
    e.Array(2);
    EncodeDot(D("a", 0, 4), &e);
    EncodeDot(D("a", 0, 4), &e);
    Decoder dec;
    BOOST_TEST_REQUIRE(dec.ParseRaw(e.bytes()).ok());
    DotSet s;
    BOOST_TEST(DecodeDotSet(dec.root(), &s).IsCorruption());
  }
}

BOOST_AUTO_TEST_CASE(hex_round_trip) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  std::string hex = ToHex(all);
  BOOST_TEST(hex.size() == 512u);
  BOOST_TEST(hex.substr(0, 8) == "00010203");
  BOOST_TEST(hex.substr(504) == "fcfdfeff");
  std::string back;
  BOOST_TEST_REQUIRE(FromHex(hex, &back));
  BOOST_TEST(back == all);

  BOOST_TEST(ToHex("") == "");
  BOOST_TEST(FromHex("", &back));
  BOOST_TEST(back.empty());

  // Upper case and whitespace (as golden files are laid out).
  BOOST_TEST_REQUIRE(FromHex("DE ad\nBE\tef\r\n", &back));
  BOOST_TEST(back == "\xde\xad\xbe\xef");

  back = "junk";
  BOOST_TEST(!FromHex("abc", &back));  // odd length
  BOOST_TEST(!FromHex("0g", &back));
  BOOST_TEST(!FromHex("0x00", &back));
  BOOST_TEST(!FromHex("a b c", &back));
}

BOOST_AUTO_TEST_CASE(status_basics) {
  Status ok;
  BOOST_TEST(ok.ok());
  BOOST_TEST(ok.code() == Status::Code::kOk);
  BOOST_TEST(ok.message().empty());
  BOOST_TEST(ok.ToString() == "OK");
  BOOST_TEST(Status::OK().ok());

  struct Case {
    Status st;
    Status::Code code;
    int wire;
    const char* name;
  };
  const Case cases[] = {
      {Status::NotFound("m"), Status::Code::kNotFound, 1, "NotFound"},
      {Status::Corruption("m"), Status::Code::kCorruption, 2, "Corruption"},
      {Status::InvalidArgument("m"), Status::Code::kInvalidArgument, 3, "InvalidArgument"},
      {Status::OutOfRange("m"), Status::Code::kOutOfRange, 4, "OutOfRange"},
      {Status::FailedPrecondition("m"), Status::Code::kFailedPrecondition, 5, "FailedPrecondition"},
      {Status::IOError("m"), Status::Code::kIOError, 6, "IOError"},
      {Status::Unavailable("m"), Status::Code::kUnavailable, 7, "Unavailable"},
  };
  for (const Case& tc : cases) {
    BOOST_TEST_CONTEXT(tc.name) {
      BOOST_TEST(!tc.st.ok());
      BOOST_TEST(tc.st.code() == tc.code);
      // Codes are logged and mapped to HTTP statuses: their numbers are fixed.
      BOOST_TEST(static_cast<int>(tc.st.code()) == tc.wire);
      BOOST_TEST(tc.st.message() == "m");
      BOOST_TEST(tc.st.ToString() == std::string(tc.name) + ": m");
      BOOST_TEST(tc.st.IsNotFound() == (tc.code == Status::Code::kNotFound));
      BOOST_TEST(tc.st.IsCorruption() == (tc.code == Status::Code::kCorruption));
      BOOST_TEST(tc.st.IsInvalidArgument() == (tc.code == Status::Code::kInvalidArgument));
      BOOST_TEST(tc.st.IsOutOfRange() == (tc.code == Status::Code::kOutOfRange));
      BOOST_TEST(tc.st.IsFailedPrecondition() == (tc.code == Status::Code::kFailedPrecondition));
    }
  }

  Status inner = Status::Corruption("bad counter");
  Status outer = inner.WithContext("dot cloud").WithContext("key k1");
  BOOST_TEST(outer.code() == Status::Code::kCorruption);
  BOOST_TEST(outer.message() == "key k1: dot cloud: bad counter");
  BOOST_TEST(outer.ToString() == "Corruption: key k1: dot cloud: bad counter");
  BOOST_TEST(inner.message() == "bad counter");  // the original is untouched
  Status still_ok = Status::OK().WithContext("ignored");
  BOOST_TEST(still_ok.ok());
  BOOST_TEST(still_ok.message().empty());
  BOOST_TEST(still_ok.ToString() == "OK");

  // MERIDIAN_RETURN_IF_ERROR returns the first error and passes OK by.
  int reached = 0;
  auto run = [&reached](Status first) -> Status {
    MERIDIAN_RETURN_IF_ERROR(first);
    ++reached;
    return Status::NotFound("second");
  };
  BOOST_TEST(run(Status::IOError("disk")).code() == Status::Code::kIOError);
  BOOST_TEST(reached == 0);
  BOOST_TEST(run(Status::OK()).IsNotFound());
  BOOST_TEST(reached == 1);
}
