// The chaos checker (checker.h) on made-up histories and final states: it
// must find each kind of loss and broken promise, and pass what is fine.
#define BOOST_TEST_MODULE chaos_checker
#include <boost/test/unit_test.hpp>

#include "tests/chaos/checker.h"

namespace meridian::chaos {
namespace {

using json = nlohmann::json;

Op MakeOp(OpKind kind, const std::string& key, const std::string& arg, Outcome outcome,
          int64_t amount = 0, uint64_t hlc = 0) {
  static uint64_t id = 0;
  Op op;
  op.id = ++id;
  op.kind = kind;
  op.key = key;
  op.arg = arg;
  op.outcome = outcome;
  op.amount = amount;
  op.hlc = hlc;
  return op;
}

constexpr Outcome kAck = Outcome::kAcknowledged;
constexpr Outcome kFail = Outcome::kFailed;
constexpr Outcome kMaybe = Outcome::kIndeterminate;

CheckResult CheckOne(const std::vector<Op>& ops, const std::string& key, const json& item,
                     std::vector<std::vector<std::string>> review = {}) {
  FinalState f;
  if (!item.is_null()) f.items[key] = item;
  f.review_keys = std::move(review);
  return Check(ops, f);
}

BOOST_AUTO_TEST_CASE(register_needs_the_greatest_acknowledged_write_or_a_later_one) {
  const std::string k = "chaos/reg/0.0";
  std::vector<Op> ops = {MakeOp(OpKind::kRegister, k, "c0.1", kAck, 0, 100),
                         MakeOp(OpKind::kRegister, k, "c1.1", kAck, 0, 200),
                         MakeOp(OpKind::kRegister, k, "c2.1", kMaybe)};
  auto reg = [&](const std::string& v, uint64_t hlc) {
    return json{{"key", k}, {"type", "register"}, {"value", v}, {"hlc", hlc}};
  };
  BOOST_TEST(CheckOne(ops, k, reg("c1.1", 200)).ok());
  BOOST_TEST(CheckOne(ops, k, reg("c2.1", 250)).ok());  // a later attempted write
  CheckResult older = CheckOne(ops, k, reg("c0.1", 100));
  BOOST_TEST(older.lost == 1u);
  BOOST_TEST(older.violations.at(0).ops.size() == 2u);
  BOOST_TEST(CheckOne(ops, k, json()).lost == 1u);  // gone
  CheckResult phantom = CheckOne(ops, k, reg("nobody", 300));
  BOOST_TEST(!phantom.ok());
  BOOST_TEST(phantom.lost == 0u);
}

BOOST_AUTO_TEST_CASE(counter_between_acknowledged_and_attempted_sums) {
  const std::string k = "chaos/ctr/0.0";
  std::vector<Op> ops = {MakeOp(OpKind::kCounter, k, "", kAck, 2),
                         MakeOp(OpKind::kCounter, k, "", kAck, 3),
                         MakeOp(OpKind::kCounter, k, "", kMaybe, 4),
                         MakeOp(OpKind::kCounter, k, "", kFail, 1)};
  auto ctr = [&](int64_t v) { return json{{"key", k}, {"type", "counter"}, {"value", v}}; };
  BOOST_TEST(CheckOne(ops, k, ctr(5)).ok());
  BOOST_TEST(CheckOne(ops, k, ctr(10)).ok());
  BOOST_TEST(CheckOne(ops, k, ctr(2)).lost == 1u);  // the 3 is missing
  BOOST_TEST(CheckOne(ops, k, ctr(0)).lost == 2u);
  CheckResult over = CheckOne(ops, k, ctr(11));
  BOOST_TEST(!over.ok());
  BOOST_TEST(over.lost == 0u);
}

BOOST_AUTO_TEST_CASE(set_keeps_acknowledged_adds_nobody_removed) {
  const std::string k = "chaos/set/0.0";
  std::vector<Op> ops = {MakeOp(OpKind::kSetAdd, k, "c0.1", kAck),
                         MakeOp(OpKind::kSetAdd, k, "c0.2", kAck),
                         MakeOp(OpKind::kSetRemove, k, "c0.2", kMaybe),
                         MakeOp(OpKind::kSetAdd, k, "c0.3", kFail)};
  auto set = [&](json v) { return json{{"key", k}, {"type", "set"}, {"value", v}}; };
  BOOST_TEST(CheckOne(ops, k, set({"c0.1"})).ok());
  BOOST_TEST(CheckOne(ops, k, set({"c0.1", "c0.2", "c0.3"})).ok());
  BOOST_TEST(CheckOne(ops, k, set(json::array())).lost == 1u);
  CheckResult phantom = CheckOne(ops, k, set({"c0.1", "zz"}));
  BOOST_TEST(!phantom.ok());
  BOOST_TEST(phantom.lost == 0u);
}

BOOST_AUTO_TEST_CASE(map_fields_follow_their_types) {
  const std::string k = "chaos/map/0.0";
  std::vector<Op> ops = {MakeOp(OpKind::kMapCounter, k, "", kAck, 3),
                         MakeOp(OpKind::kMapSetAdd, k, "c0.2", kAck),
                         MakeOp(OpKind::kMapSetAdd, k, "c0.3", kAck),
                         MakeOp(OpKind::kMapSetRemove, k, "c0.3", kAck),
                         MakeOp(OpKind::kMapRegister, k, "c0.5", kAck)};
  auto map = [&](int64_t hits, json tags, json owner) {
    json v = {{"hits", {{"type", "counter"}, {"value", hits}}},
              {"tags", {{"type", "set"}, {"value", tags}}}};
    if (!owner.is_null()) v["owner"] = {{"type", "register"}, {"value", owner}};
    return json{{"key", k}, {"type", "map"}, {"value", v}};
  };
  BOOST_TEST(CheckOne(ops, k, map(3, {"c0.2"}, "c0.5")).ok());
  BOOST_TEST(CheckOne(ops, k, map(2, {"c0.2"}, "c0.5")).lost == 1u);
  BOOST_TEST(CheckOne(ops, k, map(3, json::array(), "c0.5")).lost == 1u);
  BOOST_TEST(CheckOne(ops, k, map(3, {"c0.2"}, json())).lost == 1u);
  BOOST_TEST(!CheckOne(ops, k, map(3, {"c0.2"}, "c9.9")).ok());
}

BOOST_AUTO_TEST_CASE(text_is_whole_markers_with_every_acknowledged_insert) {
  const std::string k = "chaos/text/0.0";
  std::vector<Op> ops = {MakeOp(OpKind::kTextInsert, k, "[c0.1]", kAck),
                         MakeOp(OpKind::kTextInsert, k, "[c1.1]", kAck),
                         MakeOp(OpKind::kTextInsert, k, "[c2.1]", kMaybe),
                         MakeOp(OpKind::kTextDelete, k, "[c1.1]", kMaybe)};
  auto text = [&](const std::string& v) { return json{{"key", k}, {"type", "text"}, {"value", v}}; };
  BOOST_TEST(CheckOne(ops, k, text("[c0.1]")).ok());
  BOOST_TEST(CheckOne(ops, k, text("[c2.1][c1.1][c0.1]")).ok());
  BOOST_TEST(CheckOne(ops, k, text("[c2.1]")).lost == 1u);
  BOOST_TEST(!CheckOne(ops, k, text("[c0.1][c0.1]")).ok());  // twice
  BOOST_TEST(!CheckOne(ops, k, text("[c0.[c2.1]1]")).ok());  // split
  BOOST_TEST(!CheckOne(ops, k, text("[c0.1]x")).ok());
  BOOST_TEST(!CheckOne(ops, k, text("[c0.1][c7.7]")).ok());  // never inserted
}

BOOST_AUTO_TEST_CASE(mvregister_values_and_the_review_queue) {
  const std::string k = "chaos/mv/0.0";
  std::vector<Op> ops = {MakeOp(OpKind::kMvRegister, k, "c0.1", kAck),
                         MakeOp(OpKind::kMvRegister, k, "c1.1", kAck)};
  json siblings = {{"key", k},
                   {"type", "mvregister"},
                   {"siblings", {{{"value", "c0.1"}}, {{"value", "c1.1"}}}}};
  CheckResult fine = CheckOne(ops, k, siblings, {{k}, {k}});
  BOOST_TEST(fine.ok());
  BOOST_TEST(fine.conflicts == 1u);
  BOOST_TEST(!CheckOne(ops, k, siblings, {{k}, {}}).ok());      // missing in one queue
  BOOST_TEST(!CheckOne(ops, k, siblings, {{k}, {k, k}}).ok());  // listed twice
  json one = {{"key", k}, {"type", "mvregister"}, {"value", "c1.1"}};
  BOOST_TEST(CheckOne(ops, k, one, {{}, {}}).ok());
  BOOST_TEST(!CheckOne(ops, k, one, {{k}, {}}).ok());  // listed without siblings
  BOOST_TEST(CheckOne(ops, k, json(), {{}, {}}).lost == 1u);
  BOOST_TEST(!CheckOne(ops, k, json{{"key", k}, {"type", "mvregister"}, {"value", "x"}}).ok());
}

BOOST_AUTO_TEST_CASE(keys_nobody_wrote_are_reported) {
  FinalState f;
  f.items["chaos/reg/9.9"] = json{{"key", "chaos/reg/9.9"}, {"type", "register"}, {"value", "x"}};
  BOOST_TEST(!Check({}, f).ok());
}

}  // namespace
}  // namespace meridian::chaos
