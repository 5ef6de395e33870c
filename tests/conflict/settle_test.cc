// conflict::Settler (conflict/settle.h): what a read of mvregister
// siblings shows under each kind of policy, the canonical order resolvers
// see (whatever the dot order), and the per-resolver counts.
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "conflict/settle.h"
#include "crdt/mvregister.h"

using meridian::Status;
using meridian::conflict::PolicySet;
using meridian::conflict::PolicySpec;
using meridian::conflict::Settled;
using meridian::conflict::Settler;
using meridian::crdt::MakeHlc;
using meridian::crdt::MvRegister;
using meridian::crdt::ReplicaId;
using nlohmann::json;

namespace {

PolicySpec Spec(std::string prefix, std::string type, std::vector<std::string> resolve = {}) {
  PolicySpec s;
  s.line = 1;
  s.prefix = std::move(prefix);
  s.type = std::move(type);
  s.resolve = std::move(resolve);
  return s;
}

Settler Make(std::vector<PolicySpec> specs, std::map<std::string, std::string> scripts = {}) {
  PolicySet set;
  Status st = PolicySet::Build(specs, {"us", "eu"}, "t.toml", nullptr, &set);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  return Settler(std::move(set), std::move(scripts), {{"a", "us"}, {"b", "eu"}});
}

std::string Bytes(const json& v) {
  std::vector<uint8_t> b = json::to_msgpack(v);
  return std::string(b.begin(), b.end());
}

// Concurrent writes, one per (replica, hlc, value), merged.
MvRegister Siblings(const std::vector<std::tuple<ReplicaId, uint64_t, json>>& writes) {
  MvRegister merged;
  for (const auto& [r, hlc, v] : writes) {
    MvRegister mine, d;
    BOOST_REQUIRE(mine.Write(r, MakeHlc(hlc, 0), Bytes(v), nullptr, &d).ok());
    merged.Merge(d);
  }
  return merged;
}

const ReplicaId kA{"a", 1}, kB{"b", 1}, kC{"c", 1};

}  // namespace

BOOST_AUTO_TEST_SUITE(settle)

BOOST_AUTO_TEST_CASE(each_policy_kind_shows_what_it_should) {
  PolicySpec lww = Spec("l/", "mvregister", {"max"});
  lww.has_on_unresolved = true;
  lww.on_unresolved = "lww";
  PolicySpec audit = Spec("p/", "register");
  audit.audit = true;
  Settler s = Make({Spec("n/", "mvregister", {"max"}), Spec("d/", "mvregister"), lww, audit});
  // "a" writes later by HLC but sorts first by dot: canonical order is by HLC.
  MvRegister numbers = Siblings({{kA, 20, 3}, {kB, 10, 7}});

  Settled max = s.Settle("n/x", numbers);
  BOOST_TEST((max.kind == Settled::Kind::kResolved));
  BOOST_TEST(max.value == 7);
  BOOST_TEST(max.by == "max");
  BOOST_REQUIRE_EQUAL(max.siblings.size(), 2u);
  BOOST_TEST(max.siblings[0].replica == "b#1");  // HLC 10 first
  BOOST_TEST(max.siblings[0].region == "eu");
  BOOST_TEST(max.siblings[1].region == "us");
  BOOST_TEST(max.dots[0].replica.node == "b");

  Settled review = s.Settle("d/x", numbers);
  BOOST_TEST((review.kind == Settled::Kind::kUnresolved));
  BOOST_TEST(review.reason == "no resolver is configured");

  Settled none = s.Settle("other", numbers);
  BOOST_TEST((none.kind == Settled::Kind::kUnresolved));
  BOOST_TEST(none.reason == "no policy covers the key");

  // max cannot decide on strings: lww then takes the greatest (HLC, replica).
  MvRegister words = Siblings({{kA, 20, "late"}, {kB, 10, "early"}, {kC, 20, "tie"}});
  Settled l = s.Settle("l/x", words);
  BOOST_TEST((l.kind == Settled::Kind::kLww));
  BOOST_TEST(l.value == "tie");  // HLC 20 from c beats HLC 20 from a
  BOOST_TEST(l.by == "lww");
  BOOST_TEST(l.reason.find("max:") == 0u, l.reason);
  BOOST_TEST(l.siblings[2].region == "");  // a node the map does not name

  Settled p = s.Settle("p/x", words);
  BOOST_TEST((p.kind == Settled::Kind::kLww));
  BOOST_TEST(p.value == "tie");

  Settled one = s.Settle("d/x", Siblings({{kA, 5, "only"}}));
  BOOST_TEST((one.kind == Settled::Kind::kValue));
  BOOST_TEST(one.value == "only");

  auto counts = s.Counts();
  BOOST_TEST(counts["max"].decided == 1u);
  BOOST_TEST(counts["max"].undecided == 1u);  // the strings under l/
  BOOST_TEST(counts["max"].errors == 0u);
}

BOOST_AUTO_TEST_CASE(lua_links_run_their_script_and_count_failures_as_errors) {
  Settler s = Make({Spec("first/", "mvregister", {"lua:first.lua"}),
                    Spec("bad/", "mvregister", {"lua:bad.lua", "min"})},
                   {{"first.lua", "function resolve(s) return s[1].value end"},
                    {"bad.lua", "function resolve(s) return os.time() end"}});
  MvRegister v = Siblings({{kA, 20, 3}, {kB, 10, 7}});
  Settled first = s.Settle("first/k", v);
  BOOST_TEST((first.kind == Settled::Kind::kResolved));
  BOOST_TEST(first.value == 7);  // the earliest by HLC
  BOOST_TEST(first.by == "lua:first.lua");
  Settled bad = s.Settle("bad/k", v);
  BOOST_TEST((bad.kind == Settled::Kind::kResolved));  // min decides after the script fails
  BOOST_TEST(bad.value == 3);
  BOOST_TEST(bad.by == "min");
  // A second read of the same state is answered from the cache; a new
  // state runs the script again.
  BOOST_TEST(s.Settle("first/k", v).value == 7);
  BOOST_TEST(s.Counts()["lua:first.lua"].decided == 1u);
  MvRegister more = v;
  more.Merge(Siblings({{kC, 5, 11}}));
  BOOST_TEST(s.Settle("first/k", more).value == 11);
  BOOST_TEST(s.Counts()["lua:first.lua"].decided == 2u);
  auto counts = s.Counts();
  BOOST_TEST(counts["lua:bad.lua"].undecided == 1u);
  BOOST_TEST(counts["lua:bad.lua"].errors == 1u);
  BOOST_TEST(s.hash().size() == 16u);
}

BOOST_AUTO_TEST_SUITE_END()
