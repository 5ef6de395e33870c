// The built-in resolvers (conflict/resolvers.h): what each decides, the
// sentence it gives when it cannot, ties, and that the answer does not
// depend on the order of the siblings.
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "conflict/resolvers.h"

using meridian::conflict::Outcome;
using meridian::conflict::ResolveBuiltIn;
using meridian::conflict::ResolveChain;
using meridian::conflict::ResolverSpec;
using meridian::conflict::Sibling;
using nlohmann::json;

namespace {

ResolverSpec R(ResolverSpec::Kind kind, std::string name) {
  ResolverSpec r;
  r.kind = kind;
  r.name = std::move(name);
  return r;
}

std::vector<Sibling> Sibs(std::vector<json> values, std::vector<std::string> regions = {}) {
  std::vector<Sibling> out;
  for (size_t i = 0; i < values.size(); ++i) {
    Sibling s;
    s.value = values[i];
    s.region = i < regions.size() ? regions[i] : "r" + std::to_string(i);
    s.replica = "n" + std::to_string(i) + "#1";
    s.hlc = 1000 + i;
    out.push_back(s);
  }
  return out;
}

// The outcome for every order of the siblings must be the same.
Outcome Every(const ResolverSpec& spec, std::vector<Sibling> sibs) {
  std::sort(sibs.begin(), sibs.end(),
            [](const Sibling& a, const Sibling& b) { return a.replica < b.replica; });
  const Outcome first = ResolveBuiltIn(spec, sibs);
  int orders = 0;
  while (std::next_permutation(sibs.begin(), sibs.end(), [](const Sibling& a, const Sibling& b) {
    return a.replica < b.replica;
  }) && ++orders < 120) {
    const Outcome o = ResolveBuiltIn(spec, sibs);
    BOOST_TEST(o.decided == first.decided);
    BOOST_TEST(o.value == first.value);
  }
  return first;
}

}  // namespace

BOOST_AUTO_TEST_CASE(max_and_min_take_numbers_exactly) {
  const ResolverSpec max = R(ResolverSpec::Kind::kMax, "max");
  const ResolverSpec min = R(ResolverSpec::Kind::kMin, "min");
  Outcome o = Every(max, Sibs({3, 17, -4, 2.5}));
  BOOST_TEST(o.decided);
  BOOST_TEST(o.value == json(17));
  o = Every(min, Sibs({3, 17, -4, 2.5}));
  BOOST_TEST(o.value == json(-4));
  // Past 2^53 doubles cannot tell these apart; integers compare exactly.
  o = Every(max, Sibs({json(9007199254740993LL), json(9007199254740992LL)}));
  BOOST_TEST(o.value == json(9007199254740993LL));
  o = Every(max, Sibs({json(uint64_t{18446744073709551615ull}), json(int64_t{-1})}));
  BOOST_TEST(o.value == json(uint64_t{18446744073709551615ull}));
  o = Every(min, Sibs({json(uint64_t{5}), json(int64_t{-7})}));
  BOOST_TEST(o.value == json(-7));
  // Equal values are no tie.
  o = Every(max, Sibs({5, 5, 1}));
  BOOST_TEST(o.decided);
  BOOST_TEST(o.value == json(5));
}

BOOST_AUTO_TEST_CASE(max_cannot_decide_a_non_number_or_a_tie) {
  const ResolverSpec max = R(ResolverSpec::Kind::kMax, "max");
  Outcome o = ResolveBuiltIn(max, Sibs({3, "4"}, {"us-east", "eu-west"}));
  BOOST_TEST(!o.decided);
  BOOST_TEST(o.reason == "sibling 2 (from eu-west) is not a number");
  o = Every(max, Sibs({2, 2.0}));  // equal numbers, different values
  BOOST_TEST(!o.decided);
  BOOST_TEST(o.reason.find("tie") != std::string::npos);
  o = ResolveBuiltIn(max, {});
  BOOST_TEST(!o.decided);
}

BOOST_AUTO_TEST_CASE(union_joins_arrays_in_canonical_order) {
  const ResolverSpec u = R(ResolverSpec::Kind::kUnion, "union");
  Outcome o = Every(u, Sibs({json::parse(R"(["b", 1, {"y": 2, "x": 1}])"),
                             json::parse(R"(["a", "b", {"x": 1, "y": 2}, [1]])"),
                             json::array()}));
  BOOST_TEST(o.decided);
  // By compact JSON text: '"' < '1' < '[' < '{'.
  BOOST_TEST(o.value.dump() == R"(["a","b",1,[1],{"x":1,"y":2}])");
  o = ResolveBuiltIn(u, Sibs({json::array(), json::object()}));
  BOOST_TEST(!o.decided);
  BOOST_TEST(o.reason == "sibling 2 (from r1) is not an array");
}

BOOST_AUTO_TEST_CASE(longest_counts_code_points) {
  const ResolverSpec l = R(ResolverSpec::Kind::kLongest, "longest");
  // "ééé" is 6 bytes but 3 code points: "abcd" is longer.
  Outcome o = Every(l, Sibs({"\xc3\xa9\xc3\xa9\xc3\xa9", "abcd", "xy"}));
  BOOST_TEST(o.decided);
  BOOST_TEST(o.value == json("abcd"));
  o = Every(l, Sibs({"abc", "xyz", "a"}));
  BOOST_TEST(!o.decided);
  BOOST_TEST(o.reason == "two different siblings tie for the longest");
  o = ResolveBuiltIn(l, Sibs({"abc", 12}));
  BOOST_TEST(o.reason == "sibling 2 (from r1) is not a string");
}

BOOST_AUTO_TEST_CASE(json_max_compares_one_field) {
  ResolverSpec j = R(ResolverSpec::Kind::kJsonMax, "json_max");
  j.field = "version";
  Outcome o = Every(j, Sibs({json::parse(R"({"version": 3, "items": ["a"]})"),
                             json::parse(R"({"version": 7, "items": []})"),
                             json::parse(R"({"version": -1})")}));
  BOOST_TEST(o.decided);
  BOOST_TEST(o.value["version"] == 7);
  o = Every(j, Sibs({json::parse(R"({"version": 7, "a": 1})"), json::parse(R"({"version": 7, "a": 2})")}));
  BOOST_TEST(!o.decided);
  o = ResolveBuiltIn(j, Sibs({json::parse(R"({"version": 1})"), json::parse(R"({"version": "2"})")}));
  BOOST_TEST(o.reason == "sibling 2 (from r1) is not an object with a number in \"version\"");
}

BOOST_AUTO_TEST_CASE(prefer_region_takes_the_first_region_that_holds_a_sibling) {
  ResolverSpec p = R(ResolverSpec::Kind::kPreferRegion, "prefer_region");
  p.regions = {"eu-west", "us-east"};
  Outcome o = Every(p, Sibs({"from us", "from ap"}, {"us-east", "ap-south"}));
  BOOST_TEST(o.decided);
  BOOST_TEST(o.value == json("from us"));
  o = Every(p, Sibs({"from us", "from eu", "from ap"}, {"us-east", "eu-west", "ap-south"}));
  BOOST_TEST(o.value == json("from eu"));
  o = Every(p, Sibs({"eu 1", "eu 2", "us"}, {"eu-west", "eu-west", "us-east"}));
  BOOST_TEST(!o.decided);
  BOOST_TEST(o.reason == "region eu-west holds 2 different siblings");
  o = Every(p, Sibs({"same", "same", "us"}, {"eu-west", "eu-west", "us-east"}));
  BOOST_TEST(o.decided);
  BOOST_TEST(o.value == json("same"));
  o = ResolveBuiltIn(p, Sibs({"ap"}, {"ap-south"}));
  BOOST_TEST(o.reason == "no sibling comes from a preferred region");
}

BOOST_AUTO_TEST_CASE(a_chain_takes_the_first_that_decides_and_gathers_the_reasons) {
  ResolverSpec j = R(ResolverSpec::Kind::kJsonMax, "json_max");
  j.field = "v";
  const std::vector<ResolverSpec> chain = {j, R(ResolverSpec::Kind::kMax, "max"),
                                           R(ResolverSpec::Kind::kLongest, "longest")};
  std::string by;
  Outcome o = ResolveChain(chain, Sibs({4, 9}), nullptr, &by);
  BOOST_TEST(o.decided);
  BOOST_TEST(by == "max");
  BOOST_TEST(o.value == json(9));
  o = ResolveChain(chain, Sibs({"ab", true}), nullptr, &by);
  BOOST_TEST(!o.decided);
  BOOST_TEST(by.empty());
  BOOST_TEST(o.reason ==
             "json_max: sibling 1 (from r0) is not an object with a number in \"v\"; "
             "max: sibling 1 (from r0) is not a number; longest: sibling 2 (from r1) is not a "
             "string");
  o = ResolveChain({}, Sibs({1, 2}), nullptr, &by);
  BOOST_TEST(o.reason == "no resolver is configured");
}
