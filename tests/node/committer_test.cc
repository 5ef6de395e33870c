// The Committer (node/committer.h) on a real LevelDB in a fresh directory
// per test: local writes as the applier made them, remote deltas from a
// second replica (its own store) converging to equal envelopes, duplicates,
// gaps and corrupt deltas, the applied vector across a reopen, key counts,
// a failed batch, the change listener, HLC absorption and Covers(). The
// last cases drive the threaded Applier's new hooks (SubmitRemote,
// ObserveHlc, Applied, the append and commit listeners).
#define BOOST_TEST_MODULE committer
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "crdt/codec.h"
#include "crdt/counter.h"
#include "crdt/envelope.h"
#include "crdt/hlc.h"
#include "crdt/map.h"
#include "crdt/mvregister.h"
#include "conflict/conflict_index.h"
#include "crdt/register.h"
#include "crdt/set.h"
#include "gossip/messages.h"
#include "node/applier.h"
#include "node/clock_offset.h"
#include "node/committer.h"
#include "node/operation.h"
#include "storage/leveldb_store.h"
#include "storage/node_meta.h"
#include "tests/node/committer_node.h"
#include "tests/support/temp_dir.h"

using namespace meridian;
using namespace meridian::node;
using meridian::testing::TempDir;
using nlohmann::json;

namespace {

constexpr uint64_t kStartMs = meridian::testing::kCommitterStartMs;
constexpr uint64_t kMaxOffsetMs = meridian::testing::kCommitterMaxOffsetMs;

using Node = meridian::testing::CommitterNode;

using meridian::testing::Put;
using meridian::testing::MvPut;
using meridian::testing::Add;
using meridian::testing::SetUpdate;
using meridian::testing::MapCount;
using meridian::testing::Delete;

std::vector<const Operation*> Ptrs(const std::vector<Operation>& ops) {
  std::vector<const Operation*> out;
  for (const auto& op : ops) out.push_back(&op);
  return out;
}

std::vector<WriteResult> CommitLocal(Committer* c, const std::vector<Operation>& ops) {
  std::vector<WriteResult> results;
  c->Commit(Ptrs(ops), &results, {}, nullptr);
  BOOST_REQUIRE_EQUAL(results.size(), ops.size());
  return results;
}

std::vector<RemoteResult> CommitRemote(Committer* c, const std::vector<RemoteApply>& applies) {
  std::vector<const RemoteApply*> ptrs;
  for (const auto& a : applies) ptrs.push_back(&a);
  std::vector<RemoteResult> results;
  c->Commit({}, nullptr, ptrs, &results);
  BOOST_REQUIRE_EQUAL(results.size(), applies.size());
  return results;
}

RemoteApply From(Node& origin, std::vector<gossip::DeltaEntry> entries) {
  return RemoteApply{origin.meta.replica, "", std::move(entries)};
}

uint64_t AppliedOf(const storage::AppliedVector& v, const crdt::ReplicaId& r) {
  auto it = v.find({r, ""});
  return it == v.end() ? 0 : it->second;
}

// Waits (bounded) for a future; fails the test on timeout.
template <typename T>
T Await(std::future<T>& f) {
  BOOST_REQUIRE(f.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
  return f.get();
}

}  // namespace

BOOST_AUTO_TEST_CASE(local_ops_match_apply_operation) {
  TempDir tmp;
  Node n(tmp.sub("a"), "a", 11);
  // A model of the old ApplyGroup: ApplyOperation in order on in-memory
  // states, with a clock that sees the same wall time.
  crdt::ManualClock model_wall(kStartMs);
  crdt::HybridClock model_clock(&model_wall, kMaxOffsetMs);
  std::map<std::string, crdt::Envelope> model;
  std::vector<std::pair<std::string, std::string>> model_log;  // key, delta

  std::vector<Operation> ops = {
      Put("r", "one"),  Add("c", 2), Add("c", 3),          // two writes to one key build on each other
      Add("r", 1),                                          // 409 type_mismatch: no seq
      Delete("missing"),                                    // 404: no seq
      SetUpdate("s", {"x", "y"}, {}), MvPut("mv", 7), MapCount("m", "n", 4), Put("r", "two"),
  };
  BOOST_TEST(n.c()->SessionToken() == "a#11:0");  // its own origin from the start
  auto results = CommitLocal(n.c(), ops);
  uint64_t next_seq = 1;
  for (size_t i = 0; i < ops.size(); ++i) {
    BOOST_TEST_CONTEXT("op " << i) {
      crdt::Envelope next, delta;
      ApiError err;
      crdt::Hlc now = model_clock.Now();
      bool ok = ApplyOperation(ops[i], model[ops[i].key], n.meta.replica, now, &next, &delta, &err);
      BOOST_REQUIRE_EQUAL(results[i].ok, ok);
      if (!ok) {
        BOOST_TEST(results[i].error.http == err.http);
        BOOST_TEST(results[i].error.code == err.code);
        BOOST_TEST(results[i].seq == 0u);
        continue;
      }
      model[ops[i].key] = next;
      model_log.emplace_back(ops[i].key, delta.Encode());
      BOOST_TEST(results[i].seq == next_seq++);
      BOOST_TEST(results[i].envelope == next.Encode());
      BOOST_TEST(results[i].session_token == n.c()->SessionToken());
    }
  }
  BOOST_TEST(results[3].error.http == 409);
  BOOST_TEST(results[4].error.http == 404);
  for (const auto& [key, env] : model) {
    if (env.empty()) continue;
    BOOST_TEST_CONTEXT("key " << key) { BOOST_TEST(n.State(key) == env.Encode()); }
  }
  BOOST_TEST(n.State("missing").empty());
  BOOST_TEST(n.Read("c")["value"] == 5);
  BOOST_TEST(n.Read("r")["value"] == "two");

  // The log holds every successful write, in order, with its delta.
  auto log = n.Log();
  BOOST_REQUIRE_EQUAL(log.size(), model_log.size());
  uint64_t bytes = 0;
  for (size_t i = 0; i < log.size(); ++i) {
    BOOST_TEST(log[i].seq == i + 1);
    BOOST_TEST(log[i].key == model_log[i].first);
    BOOST_TEST(log[i].delta == model_log[i].second);
    bytes += log[i].key.size() + log[i].delta.size();
  }
  BOOST_TEST(n.c()->last_log_bytes() == bytes);
  BOOST_TEST(n.c()->last_seq() == 7u);
  BOOST_TEST(n.c()->key_count() == 5u);  // r c s mv m
  BOOST_TEST(n.c()->last_status().ok());
  BOOST_TEST(n.c()->SessionToken() == "a#11:7");

  storage::NodeMeta stored = n.Stored();
  BOOST_TEST(AppliedOf(stored.applied, n.meta.replica) == 7u);
  BOOST_TEST(stored.key_count == 5u);
  BOOST_TEST(stored.hlc_bound >= n.clock->last());

  // A commit with nothing in it reaches no disk and appends nothing.
  uint64_t writes = n.store->writes();
  n.c()->Commit({}, nullptr, {}, nullptr);
  BOOST_TEST(n.store->writes() == writes);
  BOOST_TEST(n.c()->last_log_bytes() == 0u);
}

BOOST_AUTO_TEST_CASE(exhausted_clock_answers_503) {
  TempDir tmp;
  Node n(tmp.sub("a"), "a", 11);
  n.clock->Restore(~crdt::Hlc{0});
  auto results = CommitLocal(n.c(), {Put("k", 1)});
  BOOST_TEST(!results[0].ok);
  BOOST_TEST(results[0].error.http == 503);
  BOOST_TEST(results[0].error.code == "clock");
  BOOST_TEST(n.State("k").empty());
}

BOOST_AUTO_TEST_CASE(remote_deltas_converge_to_equal_envelopes) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 11);
  Node b(tmp.sub("b"), "b", 22);
  // Concurrent writes to the same keys on both sides, and keys only one
  // side has.
  CommitLocal(a.c(), {Put("r", "from a"), Add("c", 5), SetUpdate("s", {"x", "y"}, {}),
                      MvPut("mv", "a"), MapCount("m", "hits", 2), Put("only-a", 1)});
  b.wall.Advance(3);
  CommitLocal(b.c(), {Put("r", "from b"), Add("c", -2), SetUpdate("s", {"z"}, {}),
                      MvPut("mv", "b"), MapCount("m", "hits", 10)});
  a.wall.Advance(1);
  CommitLocal(a.c(), {SetUpdate("s", {}, {"x"}), Add("c", 1)});
  BOOST_TEST(a.c()->last_seq() == 8u);
  BOOST_TEST(b.c()->last_seq() == 5u);

  auto to_b = CommitRemote(b.c(), {From(a, a.Log())});
  BOOST_TEST(to_b[0].status.ok(), to_b[0].status.ToString());
  BOOST_TEST(to_b[0].last_durable == 8u);
  auto to_a = CommitRemote(a.c(), {From(b, b.Log())});
  BOOST_TEST(to_a[0].status.ok(), to_a[0].status.ToString());
  BOOST_TEST(to_a[0].last_durable == 5u);

  for (const char* key : {"r", "c", "s", "mv", "m", "only-a"}) {
    BOOST_TEST_CONTEXT("key " << key) {
      BOOST_TEST(!a.State(key).empty());
      BOOST_TEST(a.State(key) == b.State(key));
      BOOST_TEST((a.Env(key) == b.Env(key)));
    }
  }
  BOOST_TEST(a.Read("c")["value"] == 4);
  BOOST_TEST(a.Read("r")["value"] == "from b");  // the later HLC wins
  BOOST_TEST(b.Read("s")["value"] == json::array({"y", "z"}));
  BOOST_TEST(b.Read("m")["value"]["hits"]["value"] == 12);

  // Remote deltas get no log entries; each side's own seq is unchanged.
  BOOST_TEST(a.Log().size() == 8u);
  BOOST_TEST(b.Log().size() == 5u);
  BOOST_TEST(a.c()->last_seq() == 8u);
  BOOST_TEST(b.c()->last_seq() == 5u);
  BOOST_TEST(b.c()->last_log_bytes() == 0u);
  // b did not have "only-a": a remote-created key counts.
  BOOST_TEST(b.c()->key_count() == 6u);
  BOOST_TEST(a.c()->key_count() == 6u);
  BOOST_TEST(b.Stored().key_count == 6u);
  BOOST_TEST(AppliedOf(b.c()->applied(), a.meta.replica) == 8u);
  BOOST_TEST(AppliedOf(b.c()->applied(), b.meta.replica) == 5u);
  BOOST_TEST(b.c()->SessionToken() == "a#11:8,b#22:5");
  BOOST_TEST(b.c()->type_conflicts() == 0u);

  // A later local write on b builds on the joined state.
  auto later = CommitLocal(b.c(), {Add("c", 10)});
  BOOST_REQUIRE(later[0].ok);
  BOOST_TEST(later[0].seq == 6u);
  BOOST_TEST(b.Read("c")["value"] == 14);
}

BOOST_AUTO_TEST_CASE(local_and_remote_in_one_group_build_on_each_other) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 11);
  Node b(tmp.sub("b"), "b", 22);
  CommitLocal(a.c(), {Add("c", 5), Add("new", 1)});
  std::vector<Operation> ops = {Add("c", 2), Add("c", 3)};
  RemoteApply ra = From(a, a.Log());
  std::vector<WriteResult> results;
  std::vector<RemoteResult> rres;
  std::vector<std::pair<std::string, std::string>> changes;
  b.c()->SetChangeListener([&](const std::string& key, const std::string& env) {
    changes.emplace_back(key, env);
  });
  uint64_t writes = b.store->writes();
  b.c()->Commit(Ptrs(ops), &results, {&ra}, &rres);
  BOOST_TEST(b.store->writes() == writes + 1);  // one batch for the group
  BOOST_TEST(results[0].ok);
  BOOST_TEST(results[1].ok);
  BOOST_TEST(rres[0].status.ok());
  BOOST_TEST(rres[0].last_durable == 2u);
  BOOST_TEST(b.Read("c")["value"] == 10);
  BOOST_TEST(b.c()->key_count() == 2u);  // "c" created locally, "new" remotely
  // Two local writes, then each remote-changed key once with its final state.
  BOOST_REQUIRE_EQUAL(changes.size(), 4u);
  BOOST_TEST(changes[0].first == "c");
  BOOST_TEST(changes[1].first == "c");
  BOOST_TEST(changes[2].first == "c");
  BOOST_TEST(changes[2].second == b.State("c"));
  BOOST_TEST(changes[3].first == "new");
  BOOST_TEST(changes[3].second == b.State("new"));
}

BOOST_AUTO_TEST_CASE(duplicates_are_skipped) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 11);
  Node b(tmp.sub("b"), "b", 22);
  CommitLocal(a.c(), {Add("c", 5), Add("c", 7), Add("d", 1)});
  auto log = a.Log();
  BOOST_TEST(CommitRemote(b.c(), {From(a, {log[0], log[1]})})[0].last_durable == 2u);
  std::string before = b.State("c");
  int calls = 0;
  b.c()->SetChangeListener([&](const std::string&, const std::string&) { ++calls; });

  // The same entries again: nothing to do, no write, no change.
  uint64_t writes = b.store->writes();
  auto again = CommitRemote(b.c(), {From(a, {log[0], log[1]})});
  BOOST_TEST(again[0].status.ok());
  BOOST_TEST(again[0].last_durable == 2u);
  BOOST_TEST(b.store->writes() == writes);
  BOOST_TEST(calls == 0);
  BOOST_TEST(b.State("c") == before);

  // Duplicates are skipped before they are even decoded.
  auto garbled = log;
  garbled[0].delta = garbled[1].delta = "\x01garbage";
  auto skipped = CommitRemote(b.c(), {From(a, {garbled[0], garbled[1]})});
  BOOST_TEST(skipped[0].status.ok(), skipped[0].status.ToString());
  BOOST_TEST(skipped[0].last_durable == 2u);

  // Overlapping: 1..3 applies only 3.
  auto overlap = CommitRemote(b.c(), {From(a, log)});
  BOOST_TEST(overlap[0].status.ok());
  BOOST_TEST(overlap[0].last_durable == 3u);
  BOOST_TEST(calls == 1);  // only "d" changed
  BOOST_TEST(b.State("c") == before);
  BOOST_TEST(b.State("d") == a.State("d"));
  BOOST_TEST(b.Read("c")["value"] == 12);
}

BOOST_AUTO_TEST_CASE(gap_stops_and_commits_the_part_before) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 11);
  Node b(tmp.sub("b"), "b", 22);
  CommitLocal(a.c(), {Put("k1", 1), Put("k2", 2), Put("k3", 3), Put("k4", 4)});
  auto log = a.Log();
  auto res = CommitRemote(b.c(), {From(a, {log[0], log[1], log[3]})});
  BOOST_TEST(!res[0].status.ok());
  BOOST_TEST(res[0].status.code() == Status::Code::kFailedPrecondition);
  BOOST_TEST(res[0].status.message().find("seq 4") != std::string::npos, res[0].status.message());
  BOOST_TEST(res[0].status.message().find("gap") != std::string::npos, res[0].status.message());
  BOOST_TEST(res[0].last_durable == 2u);
  BOOST_TEST(!b.State("k1").empty());
  BOOST_TEST(!b.State("k2").empty());
  BOOST_TEST(b.State("k4").empty());
  BOOST_TEST(AppliedOf(b.Stored().applied, a.meta.replica) == 2u);

  // A gap at the start applies nothing and writes nothing.
  Node c(tmp.sub("c"), "c", 33);
  uint64_t writes = c.store->writes();
  auto none = CommitRemote(c.c(), {From(a, {log[2], log[3]})});
  BOOST_TEST(!none[0].status.ok());
  BOOST_TEST(none[0].last_durable == 0u);
  BOOST_TEST(c.store->writes() == writes);
  BOOST_TEST(c.c()->applied().count({a.meta.replica, ""}) == 0u);

  // Filling the gap then continues from 3.
  auto rest = CommitRemote(b.c(), {From(a, {log[2], log[3]})});
  BOOST_TEST(rest[0].status.ok());
  BOOST_TEST(rest[0].last_durable == 4u);
  BOOST_TEST(b.State("k4") == a.State("k4"));
}

BOOST_AUTO_TEST_CASE(corrupt_delta_stops_there) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 11);
  Node b(tmp.sub("b"), "b", 22);
  CommitLocal(a.c(), {Put("k1", 1), Put("k2", 2), Put("k3", 3)});
  auto log = a.Log();

  // Not an envelope at all.
  auto bad = log;
  bad[1].delta = "\x01garbage";
  auto res = CommitRemote(b.c(), {From(a, bad)});
  BOOST_TEST(res[0].status.code() == Status::Code::kCorruption, res[0].status.ToString());
  BOOST_TEST(res[0].status.message().find("seq 2") != std::string::npos, res[0].status.message());
  BOOST_TEST(res[0].last_durable == 1u);
  BOOST_TEST(!b.State("k1").empty());
  BOOST_TEST(b.State("k2").empty());
  BOOST_TEST(b.State("k3").empty());

  // A well-formed envelope whose register state is not a register: only
  // the checked decoder (Decode, not DecodeStored) refuses it.
  crdt::Envelope good;
  BOOST_REQUIRE(crdt::Envelope::Decode(log[1].delta, &good).ok());
  crdt::Encoder e(static_cast<uint8_t>(good.Encode()[0]));
  e.Array(1);
  e.Array(4);
  e.Uint(crdt::Register::kTag);
  e.Uint(good.winner()->origin_hlc);
  crdt::EncodeReplica(a.meta.replica, &e);
  e.Bin("\xc1\xc1not a register");
  std::string bad_state = e.Take();
  crdt::Envelope unchecked;
  BOOST_TEST(crdt::Envelope::DecodeStored(bad_state, &unchecked).ok());
  bad = log;
  bad[1].delta = bad_state;
  res = CommitRemote(b.c(), {From(a, bad)});
  BOOST_TEST(!res[0].status.ok());
  BOOST_TEST(res[0].status.message().find("seq 2") != std::string::npos, res[0].status.message());
  BOOST_TEST(res[0].last_durable == 1u);
  BOOST_TEST(b.State("k2").empty());

  // An empty key is refused too (it was never a valid write anywhere).
  bad = log;
  bad[1].key = "";
  res = CommitRemote(b.c(), {From(a, bad)});
  BOOST_TEST(res[0].status.code() == Status::Code::kInvalidArgument, res[0].status.ToString());
  BOOST_TEST(res[0].last_durable == 1u);

  // The good entries then apply.
  res = CommitRemote(b.c(), {From(a, log)});
  BOOST_TEST(res[0].status.ok());
  BOOST_TEST(res[0].last_durable == 3u);
  BOOST_TEST(b.State("k2") == a.State("k2"));
}

BOOST_AUTO_TEST_CASE(own_origin_is_refused) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 11);
  CommitLocal(a.c(), {Put("k1", 1)});
  auto res = CommitRemote(a.c(), {RemoteApply{a.meta.replica, "", {{2, "k2", a.Log()[0].delta}}}});
  BOOST_TEST(!res[0].status.ok());
  BOOST_TEST(res[0].last_durable == 1u);
  BOOST_TEST(a.c()->last_seq() == 1u);
  BOOST_TEST(a.State("k2").empty());
}

BOOST_AUTO_TEST_CASE(applied_vector_persists_across_reopen) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 11);
  Node b(tmp.sub("b"), "b", 22);
  Node c(tmp.sub("c"), "c", 33);
  CommitLocal(a.c(), {Put("k1", 1), Put("k2", 2), Put("k3", 3)});
  CommitLocal(c.c(), {Add("n", 1), Add("n", 1)});
  CommitLocal(b.c(), {Put("mine", 1)});
  // Two origins in one group, and two applies of one origin that chain.
  auto alog = a.Log();
  auto res = CommitRemote(b.c(), {From(a, {alog[0], alog[1]}), From(c, c.Log()), From(a, {alog[2]})});
  for (const auto& r : res) BOOST_TEST(r.status.ok(), r.status.ToString());
  BOOST_TEST(res[0].last_durable == 3u);  // a's seq after the whole commit
  BOOST_TEST(res[1].last_durable == 2u);
  BOOST_TEST(res[2].last_durable == 3u);
  const storage::AppliedVector expected = b.c()->applied();
  BOOST_TEST(AppliedOf(expected, a.meta.replica) == 3u);
  BOOST_TEST(AppliedOf(expected, c.meta.replica) == 2u);
  BOOST_TEST(AppliedOf(expected, b.meta.replica) == 1u);

  b.Reopen();
  BOOST_TEST((b.meta.applied == expected));
  BOOST_TEST(b.meta.key_count == 5u);
  BOOST_TEST((b.c()->applied() == expected));
  BOOST_TEST(b.c()->last_seq() == 1u);
  BOOST_TEST(b.c()->key_count() == 5u);
  // After the reopen, the next entries continue from there.
  CommitLocal(a.c(), {Put("k4", 4)});
  auto more = CommitRemote(b.c(), {From(a, a.Log())});
  BOOST_TEST(more[0].status.ok());
  BOOST_TEST(more[0].last_durable == 4u);
  auto mine = CommitLocal(b.c(), {Put("mine", 2)});
  BOOST_TEST(mine[0].seq == 2u);
}

BOOST_AUTO_TEST_CASE(batch_failure_fails_every_item) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 11);
  Node b(tmp.sub("b"), "b", 22);
  CommitLocal(a.c(), {Put("k1", 1), Put("k2", 2), Put("k3", 3)});
  auto alog = a.Log();
  BOOST_TEST(CommitRemote(b.c(), {From(a, {alog[0]})})[0].last_durable == 1u);
  CommitLocal(b.c(), {Put("own", 0)});
  const storage::AppliedVector before = b.c()->applied();
  const uint64_t keys_before = b.c()->key_count();
  int calls = 0;
  b.c()->SetChangeListener([&](const std::string&, const std::string&) { ++calls; });

  b.store->TEST_FailWritesWithNoSpace(1);
  std::vector<Operation> ops = {Put("x", 1), Add("y", 2), Add("own", 1) /* 409 */};
  RemoteApply ra = From(a, alog);
  std::vector<WriteResult> results;
  std::vector<RemoteResult> rres;
  b.c()->Commit(Ptrs(ops), &results, {&ra}, &rres);
  BOOST_TEST(!b.c()->last_status().ok());
  BOOST_TEST(storage::Store::IsNoSpace(b.c()->last_status()));
  for (int i = 0; i < 2; ++i) {
    BOOST_TEST(!results[i].ok);
    BOOST_TEST(results[i].error.http == 507);
    BOOST_TEST(results[i].error.code == "insufficient_storage");
    BOOST_TEST(results[i].seq == 0u);
    BOOST_TEST(results[i].envelope.empty());
  }
  BOOST_TEST(results[2].error.http == 409);  // its own error stays
  BOOST_TEST(!rres[0].status.ok());
  BOOST_TEST(storage::Store::IsNoSpace(rres[0].status));
  BOOST_TEST(rres[0].last_durable == 1u);
  BOOST_TEST(calls == 0);
  BOOST_TEST((b.c()->applied() == before));
  BOOST_TEST(b.c()->key_count() == keys_before);
  BOOST_TEST(b.c()->last_seq() == 1u);
  BOOST_TEST(b.State("x").empty());
  BOOST_TEST(b.State("k2").empty());
  BOOST_TEST((b.Stored().applied == before));

  // Next time it works, with the same sequence numbers.
  b.c()->Commit(Ptrs(ops), &results, {&ra}, &rres);
  BOOST_TEST(b.c()->last_status().ok());
  BOOST_TEST(results[0].ok);
  BOOST_TEST(results[0].seq == 2u);
  BOOST_TEST(results[1].seq == 3u);
  BOOST_TEST(rres[0].status.ok());
  BOOST_TEST(rres[0].last_durable == 3u);
  BOOST_TEST(b.State("k3") == a.State("k3"));
  BOOST_TEST(b.c()->key_count() == keys_before + 4);
}

BOOST_AUTO_TEST_CASE(change_listener_fires_for_remote_changes) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 11);
  Node b(tmp.sub("b"), "b", 22);
  CommitLocal(a.c(), {Put("k1", 1), Add("n", 1), Add("n", 2), Put("k2", "v")});
  std::vector<std::pair<std::string, std::string>> changes;
  b.c()->SetChangeListener([&](const std::string& key, const std::string& env) {
    changes.emplace_back(key, env);
  });
  CommitRemote(b.c(), {From(a, a.Log())});
  BOOST_REQUIRE_EQUAL(changes.size(), 3u);  // each key once, in first-change order
  BOOST_TEST(changes[0].first == "k1");
  BOOST_TEST(changes[1].first == "n");
  BOOST_TEST(changes[2].first == "k2");
  for (const auto& [key, env] : changes) {
    BOOST_TEST(env == b.State(key));
    BOOST_TEST(env == a.State(key));
  }
}

BOOST_AUTO_TEST_CASE(type_conflicts_are_counted_and_kept) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 11);
  Node b(tmp.sub("b"), "b", 22);
  CommitLocal(a.c(), {Put("k", "text")});
  b.wall.Advance(10);
  CommitLocal(b.c(), {Add("k", 3)});
  CommitRemote(b.c(), {From(a, a.Log())});
  CommitRemote(a.c(), {From(b, b.Log())});
  BOOST_TEST(b.c()->type_conflicts() == 1u);
  BOOST_TEST(a.c()->type_conflicts() == 1u);
  BOOST_TEST(b.Env("k").entries().size() == 2u);
  BOOST_TEST(a.State("k") == b.State("k"));
  BOOST_TEST(b.Env("k").winner()->tag == crdt::Register::kTag);  // the earlier first write
}

BOOST_AUTO_TEST_CASE(conflict_index_follows_siblings_and_type_conflicts) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 11);
  Node b(tmp.sub("b"), "b", 22);
  auto entry = [](Node& n, const std::string& key, conflict::ConflictEntry* e) {
    std::string bytes;
    Status st = n.store->GetConflict(key, &bytes);
    if (!st.ok()) return false;
    BOOST_REQUIRE(conflict::DecodeConflictEntry(bytes, e).ok());
    return true;
  };
  // Concurrent writes to one mvregister: each node finds the conflict when
  // the other's delta arrives, and dates it by its own clock.
  CommitLocal(a.c(), {MvPut("doc", "from a")});
  CommitLocal(b.c(), {MvPut("doc", "from b"), Put("plain", 1)});
  a.wall.Advance(100);
  conflict::ConflictEntry e;
  BOOST_TEST(!entry(a, "doc", &e));
  CommitRemote(a.c(), {From(b, b.Log())});
  BOOST_REQUIRE(entry(a, "doc", &e));
  BOOST_TEST(e.detected_ms >= kStartMs + 100);
  BOOST_TEST(!entry(a, "plain", &e));
  BOOST_TEST(a.c()->conflict_counts().opened == 1u);
  CommitRemote(b.c(), {From(a, a.Log())});
  BOOST_TEST(entry(b, "doc", &e));

  // A later conflicting delta keeps the first detection time.
  conflict::ConflictEntry first;
  BOOST_REQUIRE(entry(a, "doc", &first));
  a.wall.Advance(100);
  Node c(tmp.sub("c"), "c", 33);
  CommitLocal(c.c(), {MvPut("doc", "from c")});
  CommitRemote(a.c(), {From(c, c.Log())});
  BOOST_REQUIRE(entry(a, "doc", &e));
  BOOST_TEST(e.detected_ms == first.detected_ms);
  BOOST_TEST(a.c()->conflict_counts().opened == 1u);

  // A write that has seen every sibling settles it: the entry goes, here
  // and where the write arrives.
  CommitLocal(a.c(), {MvPut("doc", "merged")});
  BOOST_TEST(!entry(a, "doc", &e));
  BOOST_TEST(a.c()->conflict_counts().closed == 1u);
  CommitRemote(b.c(), {From(a, a.Log())});
  BOOST_TEST(!entry(b, "doc", &e));

  // A type conflict is one too, and it stays (both types are kept).
  CommitLocal(a.c(), {Put("t", "text")});
  b.wall.Advance(10);
  CommitLocal(b.c(), {Add("t", 3)});
  CommitRemote(b.c(), {From(a, a.Log())});
  BOOST_TEST(entry(b, "t", &e));
  BOOST_TEST(!entry(b, "doc", &e));

  // A losing type that holds no value (deleted before the first writes
  // met) is no conflict.
  CommitLocal(a.c(), {Put("t2", "text")});
  b.wall.Advance(1000);  // past a's clock: the register's first write is the earlier
  CommitLocal(b.c(), {Add("t2", 3), Delete("t2")});
  CommitRemote(b.c(), {From(a, a.Log())});
  BOOST_TEST(b.Env("t2").entries().size() == 2u);
  BOOST_TEST(b.Env("t2").winner()->tag == crdt::Register::kTag);
  BOOST_TEST(!entry(b, "t2", &e));
}

BOOST_AUTO_TEST_CASE(audited_keys_record_each_concurrent_loser_once_and_late_writes_never) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 11);
  Node b(tmp.sub("b"), "b", 22);
  auto audited = [](const std::string& key) { return key.rfind("profile/", 0) == 0; };
  a.c()->SetAuditPredicate(audited);
  b.c()->SetAuditPredicate(audited);
  auto records = [](Node& n, const std::string& key) {
    std::vector<storage::Store::KeyValue> out;
    BOOST_REQUIRE(n.store->ScanAudit(key, 100, &out).ok());
    std::vector<conflict::AuditRecord> recs;
    for (const auto& kv : out) {
      conflict::AuditRecord r;
      BOOST_REQUIRE(conflict::DecodeAuditRecord(kv.value, &r).ok());
      recs.push_back(r);
    }
    return recs;
  };
  // Truly concurrent: b writes later by HLC and wins; a's write is the loser.
  CommitLocal(a.c(), {MvPut("profile/1", "old")});
  b.wall.Advance(50);
  CommitLocal(b.c(), {MvPut("profile/1", "new"), MvPut("other/1", "x")});
  CommitRemote(a.c(), {From(b, b.Log())});
  auto recs = records(a, "profile/1");
  BOOST_REQUIRE_EQUAL(recs.size(), 1u);
  BOOST_TEST(recs[0].writer.node == "a");
  BOOST_TEST(recs[0].winner.node == "b");
  BOOST_TEST(recs[0].hlc < recs[0].winner_hlc);
  BOOST_TEST(a.c()->conflict_counts().audited == 1u);

  // Merely late: b writes after having seen a's write; when b's write
  // reaches a third node after a's, no sibling forms and nothing is
  // recorded.
  Node c(tmp.sub("c"), "c", 33);
  c.c()->SetAuditPredicate(audited);
  CommitLocal(a.c(), {MvPut("profile/2", "first")});
  std::vector<gossip::DeltaEntry> alog = a.Log();
  CommitRemote(b.c(), {From(a, alog)});
  CommitLocal(b.c(), {MvPut("profile/2", "second")});
  CommitRemote(c.c(), {From(a, alog)});
  CommitRemote(c.c(), {From(b, b.Log())});
  BOOST_TEST(records(c, "profile/2").empty());
  BOOST_TEST(records(c, "profile/1").size() == 1u);  // the concurrent one, still
  BOOST_TEST(records(c, "other/1").empty());         // not audited
}

BOOST_AUTO_TEST_CASE(observed_hlc_orders_the_next_write) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 11);
  // A peer 2 s ahead (within the 5 s limit) and 7 logical ticks in.
  const crdt::Hlc peer = crdt::MakeHlc(kStartMs + 2000, 7);
  a.c()->ObserveHlc(peer);
  auto res = CommitLocal(a.c(), {Put("k", 1)});
  BOOST_REQUIRE(res[0].ok);
  crdt::Envelope env;
  BOOST_REQUIRE(crdt::Envelope::Decode(res[0].envelope, &env).ok());
  BOOST_TEST(env.winner()->origin_hlc > peer);
  BOOST_TEST(a.Stored().hlc_bound >= env.winner()->origin_hlc);

  // One beyond the limit is ignored: the clock does not jump to it.
  const crdt::Hlc far = crdt::MakeHlc(kStartMs + 3600 * 1000, 0);
  a.c()->ObserveHlc(far);
  res = CommitLocal(a.c(), {Put("k2", 1)});
  BOOST_REQUIRE(crdt::Envelope::Decode(res[0].envelope, &env).ok());
  BOOST_TEST(env.winner()->origin_hlc > peer);
  BOOST_TEST(env.winner()->origin_hlc < far);
  BOOST_TEST(a.clock->last() < far);

  // Observing alone raises the bound in the next commit, even with nothing
  // else to write, so that a restart never goes below what was absorbed.
  Node b(tmp.sub("b"), "b", 22);
  const crdt::Hlc ahead = crdt::MakeHlc(kStartMs + kMaxOffsetMs + 4000, 0);
  b.wall.Advance(4000);
  b.c()->ObserveHlc(ahead);
  b.c()->Commit({}, nullptr, {}, nullptr);
  BOOST_TEST(b.Stored().hlc_bound > ahead);
}

BOOST_AUTO_TEST_CASE(covers) {
  crdt::ReplicaId a{"a", 1}, b{"b", 2};
  storage::AppliedVector applied = {{{a, ""}, 5}, {{b, ""}, 3}};
  uint64_t behind = 99;
  BOOST_TEST(Covers(applied, {}, &behind));
  BOOST_TEST(behind == 0u);
  BOOST_TEST(Covers(applied, {{{a, ""}, 5}}, &behind));
  BOOST_TEST(Covers(applied, {{{a, ""}, 4}, {{b, ""}, 3}}, &behind));
  BOOST_TEST(!Covers(applied, {{{a, ""}, 6}, {{b, ""}, 3}}, &behind));
  BOOST_TEST(behind == 1u);
  BOOST_TEST(!Covers(applied, {{{a, ""}, 7}, {{b, ""}, 10}}, &behind));
  BOOST_TEST(behind == 9u);
  // An origin this node has never heard of counts from zero.
  BOOST_TEST(!Covers(applied, {{{crdt::ReplicaId{"c", 1}, ""}, 4}}, &behind));
  BOOST_TEST(behind == 4u);
  // Another incarnation of a known node is another origin.
  BOOST_TEST(!Covers(applied, {{{crdt::ReplicaId{"a", 2}, ""}, 1}}, &behind));
  BOOST_TEST(behind == 1u);
  BOOST_TEST(!Covers(applied, {{{a, ""}, 6}}, nullptr));

  // Tokens round-trip through their text form.
  storage::AppliedVector parsed;
  BOOST_REQUIRE(ParseSessionToken(FormatSessionToken(applied), &parsed));
  BOOST_TEST((parsed == applied));
  BOOST_TEST(FormatSessionToken(applied) == "a#1:5,b#2:3");
  BOOST_TEST(!ParseSessionToken("a#1", &parsed));
  BOOST_TEST(!ParseSessionToken("a#x:1", &parsed));
  for (const char* bad : {"a#1:2,", ",a#1:2", "a#1:-1", "a#1: 2", "a#+1:2", "#1:2", "a b#1:2",
                          "a#1:2,a#1:3", "a#1:99999999999999999999", "a#:2", "a#1:"}) {
    BOOST_TEST(!ParseSessionToken(bad, &parsed), "token '" << bad << "' should be refused");
  }
  BOOST_TEST(ParseSessionToken("", &parsed));
  BOOST_TEST(parsed.empty());

  // Placement scopes: "@scope" with every byte but A-Z a-z 0-9 . _ - / ~
  // as %XX.
  const storage::AppliedVector scoped{{{a, ""}, 5}, {{a, "eu/"}, 2}, {{a, "x:y,z@%"}, 1}};
  BOOST_TEST(FormatSessionToken(scoped) == "a#1:5,a#1@eu/:2,a#1@x%3Ay%2Cz%40%25:1");
  BOOST_REQUIRE(ParseSessionToken(FormatSessionToken(scoped), &parsed));
  BOOST_TEST((parsed == scoped));
  for (const char* bad : {"a#1@:2", "a#1@eu/:2,a#1@eu/:3", "a#1@e%3a:1", "a#1@e%2:1", "a#1@e%41:1",
                          "a#1@e u:1", "a#1@e%:1"}) {
    BOOST_TEST(!ParseSessionToken(bad, &parsed), "token '" << bad << "' should be refused");
  }
}

BOOST_AUTO_TEST_CASE(each_scope_has_its_own_log_sequence_and_digests) {
  TempDir tmp;
  Node n(tmp.sub("a"), "a", 3);
  auto scope_of = [](const std::string& key) {
    return key.rfind("eu/", 0) == 0 ? std::string("eu/") : std::string();
  };
  n.c()->SetScopeOf(scope_of);
  const std::vector<WriteResult> r =
      CommitLocal(n.c(), {Put("k1", 1), Put("eu/k1", 2), Put("k2", 3), Put("eu/k2", 4)});
  for (const WriteResult& w : r) BOOST_REQUIRE(w.ok);
  BOOST_TEST(r[0].scope == "");
  BOOST_TEST(r[0].seq == 1u);
  BOOST_TEST(r[1].scope == "eu/");
  BOOST_TEST(r[1].seq == 1u);
  BOOST_TEST(r[2].seq == 2u);
  BOOST_TEST(r[3].seq == 2u);
  BOOST_TEST(n.c()->last_seq() == 2u);
  BOOST_TEST(n.c()->last_seq("eu/") == 2u);
  BOOST_TEST(n.c()->last_appends().at("").last_seq == 2u);
  BOOST_TEST(n.c()->last_appends().at("eu/").last_seq == 2u);
  BOOST_TEST(n.c()->SessionToken() == "a#3:2,a#3@eu/:2");

  // The logs on disk: each scope's entries in its own log.
  std::vector<storage::LogEntry> eu, def;
  BOOST_REQUIRE(n.store->ReadLog("eu/", 1, 100, &eu).ok());
  BOOST_REQUIRE(n.store->ReadLog("", 1, 100, &def).ok());
  BOOST_REQUIRE(eu.size() == 2u);
  BOOST_TEST(eu[0].key == "eu/k1");
  BOOST_TEST(eu[1].key == "eu/k2");
  BOOST_REQUIRE(def.size() == 2u);
  BOOST_TEST(def[1].key == "k2");

  // Digest records and sums per scope, as a restart loads them.
  BOOST_TEST(!n.c()->digest_sums("eu/").Total().zero());
  BOOST_TEST((n.c()->digest_sums("eu/").Total() + n.c()->digest_sums().Total() ==
              storage::KeyDigest("k1", n.State("k1")) + storage::KeyDigest("k2", n.State("k2")) +
                  storage::KeyDigest("eu/k1", n.State("eu/k1")) +
                  storage::KeyDigest("eu/k2", n.State("eu/k2"))));
  std::vector<std::string> scopes;
  BOOST_REQUIRE(n.store->DigestScopes(&scopes).ok());
  BOOST_TEST((scopes == std::vector<std::string>{"", "eu/"}));
  const storage::NodeMeta stored = n.Stored();
  BOOST_TEST((stored.digest_sums == n.c()->digest_sums()));
  BOOST_REQUIRE(stored.placed_sums.count("eu/") == 1u);
  BOOST_TEST((stored.placed_sums.at("eu/") == n.c()->digest_sums("eu/")));
  n.Reopen();
  n.c()->SetScopeOf(scope_of);
  BOOST_TEST(n.c()->last_seq("eu/") == 2u);
  BOOST_TEST(CommitLocal(n.c(), {Put("eu/k3", 5)})[0].seq == 3u);

  // A remote delta for a key of another scope than the one it came for is
  // refused; one of its scope applies.
  Node b(tmp.sub("b"), "b", 4);
  b.c()->SetScopeOf(scope_of);
  std::vector<storage::LogEntry> entries;
  BOOST_REQUIRE(n.store->ReadLog("eu/", 1, 100, &entries).ok());
  std::vector<gossip::DeltaEntry> deltas;
  for (const storage::LogEntry& e : entries) deltas.push_back({e.seq, e.key, e.delta});
  std::vector<RemoteResult> rr =
      CommitRemote(b.c(), {RemoteApply{n.meta.replica, "", deltas}});
  BOOST_TEST(!rr[0].status.ok());
  BOOST_TEST(rr[0].status.ToString().find("not in the placement scope") != std::string::npos);
  rr = CommitRemote(b.c(), {RemoteApply{n.meta.replica, "eu/", deltas}});
  BOOST_TEST(rr[0].status.ok());
  BOOST_TEST(rr[0].last_durable == 3u);
  BOOST_TEST((b.c()->digest_sums("eu/") == n.c()->digest_sums("eu/")));
  BOOST_TEST(b.c()->digest_sums().Total().zero());

  // A repair's states must lie in its scope too.
  StateRepair bad;
  bad.scope = "";
  bad.states.emplace_back("eu/k1", n.State("eu/k1"));
  RepairResult res;
  b.c()->Repair(bad, &res);
  BOOST_TEST(res.status.IsInvalidArgument());
}

BOOST_AUTO_TEST_CASE(offset_clock_shifts_and_saturates) {
  crdt::ManualClock base(1000);
  BOOST_TEST(OffsetClock(&base, 0).NowMs() == 1000u);
  BOOST_TEST(OffsetClock(&base, 250).NowMs() == 1250u);
  BOOST_TEST(OffsetClock(&base, -250).NowMs() == 750u);
  BOOST_TEST(OffsetClock(&base, -5000).NowMs() == 0u);
  BOOST_TEST(OffsetClock(&base, INT64_MIN).NowMs() == 0u);
  BOOST_TEST(OffsetClock(&base, INT64_MAX).NowMs() == crdt::kHlcMaxPhysicalMs);
  OffsetClock ahead(&base, 40);
  base.Advance(10);
  BOOST_TEST(ahead.NowMs() == 1050u);  // follows its base
}

BOOST_AUTO_TEST_CASE(applier_commits_remote_and_local_with_hooks) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 11);
  CommitLocal(a.c(), {Add("n", 1), Add("n", 2), Put("r", "x")});
  auto alog = a.Log();

  TempDir tmp_b;
  Node b(tmp_b.sub("b"), "b", 22);
  b.committer.reset();  // the Applier owns its own Committer
  Applier applier(b.store.get(), b.clock.get(), b.meta);
  std::mutex mu;
  std::vector<std::tuple<std::string, uint64_t, uint64_t>> appends;
  std::atomic<int> commits{0};
  std::atomic<int> changes{0};
  applier.SetAppendListener([&](const std::string& scope, uint64_t seq, uint64_t bytes) {
    std::lock_guard<std::mutex> lock(mu);
    appends.emplace_back(scope, seq, bytes);
  });
  applier.SetCommitListener([&] { ++commits; });
  applier.SetChangeListener([&](const std::string&, const std::string&) { ++changes; });
  applier.Start();

  // A remote apply: durable, visible in Applied() and the token, no append.
  std::promise<RemoteResult> p1;
  auto f1 = p1.get_future();
  applier.SubmitRemote(From(a, alog), [&p1](RemoteResult r) { p1.set_value(std::move(r)); });
  RemoteResult r1 = Await(f1);
  BOOST_TEST(r1.status.ok(), r1.status.ToString());
  BOOST_TEST(r1.last_durable == 3u);
  BOOST_TEST(AppliedOf(applier.Applied(), a.meta.replica) == 3u);
  BOOST_TEST(applier.SessionToken() == "a#11:3,b#22:0");  // its own origin from the start
  BOOST_TEST(applier.key_count() == 2u);
  BOOST_TEST(commits.load() >= 1);
  BOOST_TEST(changes.load() == 2);
  {
    std::lock_guard<std::mutex> lock(mu);
    BOOST_TEST(appends.empty());
  }

  // A peer's HLC, then a local write: its timestamp is above the peer's,
  // and CurrentHlc follows.
  const crdt::Hlc peer = crdt::MakeHlc(kStartMs + 3000, 9);
  BOOST_TEST(applier.CurrentHlc() < peer);
  applier.ObserveHlc(peer);
  applier.ObserveHlc(peer - 100);  // a smaller one never lowers it
  std::promise<WriteResult> p2;
  auto f2 = p2.get_future();
  applier.Submit(Add("n", 10), [&p2](WriteResult r) { p2.set_value(std::move(r)); });
  WriteResult w = Await(f2);
  BOOST_REQUIRE(w.ok);
  BOOST_TEST(w.seq == 1u);
  BOOST_TEST(w.session_token == "a#11:3,b#22:1");
  BOOST_TEST(applier.CurrentHlc() > peer);
  BOOST_TEST(applier.last_seq() == 1u);
  {
    std::lock_guard<std::mutex> lock(mu);
    BOOST_REQUIRE_EQUAL(appends.size(), 1u);
    BOOST_TEST(std::get<0>(appends[0]).empty());
    BOOST_TEST(std::get<1>(appends[0]) == 1u);
    BOOST_TEST(std::get<2>(appends[0]) > 1u);
  }
  BOOST_TEST(applier.type_conflicts() == 0u);
  applier.Stop();
  BOOST_TEST(b.Read("n")["value"] == 13);
  BOOST_TEST(applier.stats().failed_groups.load() == 0u);
  BOOST_TEST(applier.stats().writes.load() == 1u);
}

// The Applier makes a group visible before its fsync and answers it only
// after one (applier.h "Visible first, answered once durable"); a group
// whose sync fails is refused, and writes go on once the disk has room.
BOOST_AUTO_TEST_CASE(applier_answers_only_after_a_sync_and_refuses_what_it_could_not_sync) {
  TempDir tmp;
  Node b(tmp.sub("b"), "b", 22);
  b.committer.reset();  // the Applier owns its own Committer
  Applier applier(b.store.get(), b.clock.get(), b.meta);
  std::atomic<uint64_t> syncs_when_visible{0};
  std::atomic<int> appends{0};
  applier.SetChangeListener([&](const std::string&, const std::string&) {
    syncs_when_visible = b.store->syncs();
  });
  applier.SetAppendListener([&](const std::string&, uint64_t, uint64_t) { ++appends; });
  applier.Start();
  auto write = [&](Operation op) {
    std::promise<std::pair<WriteResult, uint64_t>> p;
    auto f = p.get_future();
    applier.Submit(std::move(op), [&p, &b](WriteResult r) {
      p.set_value({std::move(r), b.store->syncs()});
    });
    return Await(f);
  };

  const uint64_t syncs_before = b.store->syncs();
  auto [first, syncs_when_answered] = write(Add("n", 1));
  BOOST_REQUIRE(first.ok);
  BOOST_TEST(syncs_when_visible.load() == syncs_before);  // visible before any fsync
  BOOST_TEST(syncs_when_answered > syncs_before);         // answered after one
  BOOST_TEST(appends.load() == 1);

  b.store->TEST_SetDiskFull(true);  // appends land, fsyncs fail
  auto [refused, unused] = write(Add("n", 2));
  (void)unused;
  BOOST_TEST(!refused.ok);
  BOOST_TEST(refused.error.http == 507);
  BOOST_TEST(applier.stats().failed_syncs.load() == 1u);
  BOOST_TEST(appends.load() == 1);  // gossip is not told of a write that may be lost

  b.store->TEST_SetDiskFull(false);
  auto [later, unused2] = write(Add("n", 4));
  (void)unused2;
  BOOST_REQUIRE(later.ok);
  BOOST_TEST(b.store->reopens() == 1u);
  BOOST_TEST(appends.load() == 2);
  applier.Stop();
  const int n = b.Read("n")["value"].get<int>();
  BOOST_TEST((n == 5 || n == 7));  // the refused write's outcome is unknown
}

// --- Collection (committer.h "Collection") -------------------------------------

storage::AppliedVector StableAt(std::initializer_list<std::pair<crdt::ReplicaId, uint64_t>> v) {
  storage::AppliedVector out;
  for (const auto& [r, seq] : v) out[{r, ""}] = seq;
  return out;
}

std::vector<storage::GcCandidate> Candidates(Node& n) {
  std::vector<storage::GcCandidate> out;
  BOOST_REQUIRE(n.store->ScanGcCandidates("", 1000, &out).ok());
  return out;
}

// A register delete leaves a tombstone and a candidate; Collect drops it
// only once the stable vector covers the delete, with its digest record
// and key count, and a later write starts the key afresh.
BOOST_AUTO_TEST_CASE(register_tombstones_go_once_stable) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 1);
  Node b(tmp.sub("b"), "b", 2);
  CommitLocal(a.c(), {Put("r", 1), Put("keep", 2), Add("c", 3)});
  CommitLocal(a.c(), {Delete("r"), Delete("c")});  // seqs 4, 5
  BOOST_TEST(a.c()->key_count() == 3u);
  std::vector<storage::GcCandidate> cands = Candidates(a);
  BOOST_REQUIRE(cands.size() == 1u);  // the counter's delete keeps its state
  BOOST_TEST(cands[0].key == "r");
  BOOST_TEST((cands[0].writer == a.meta.replica));
  BOOST_TEST(cands[0].seq == 5u);  // the group's last seq bounds it

  CollectResult res;
  a.c()->Collect(StableAt({{a.meta.replica, 4}}), 100, &res);
  BOOST_TEST(res.status.ok());
  BOOST_TEST(res.examined == 1u);
  BOOST_TEST(res.collected == 0u);
  BOOST_TEST(!a.State("r").empty());

  a.c()->Collect(StableAt({{a.meta.replica, 5}}), 100, &res);
  BOOST_TEST(res.status.ok());
  BOOST_TEST(res.collected == 1u);
  BOOST_TEST(a.State("r").empty());
  BOOST_TEST(Candidates(a).empty());
  BOOST_TEST(a.c()->key_count() == 2u);
  BOOST_TEST(a.Stored().key_count == 2u);
  BOOST_TEST(a.c()->last_digest_changes().size() == 1u);
  BOOST_TEST((a.DiskSums().Total() == a.c()->digest_sums().Total()));
  // b, which never held "r", now holds the same states and digests as a
  // once it took a's log (it collects its own tombstone likewise).
  CommitRemote(b.c(), {From(a, a.Log())});
  BOOST_TEST(Candidates(b).size() == 1u);
  BOOST_TEST((Candidates(b)[0].writer == a.meta.replica));
  b.c()->Collect(StableAt({{a.meta.replica, 5}}), 100, &res);
  BOOST_TEST(res.collected == 1u);
  BOOST_TEST((b.c()->digest_sums().Total() == a.c()->digest_sums().Total()));

  // Written again: a fresh key, readable.
  auto w = CommitLocal(a.c(), {Put("r", "again")});
  BOOST_REQUIRE(w[0].ok);
  BOOST_TEST(a.Read("r")["value"] == "again");
  BOOST_TEST(a.c()->key_count() == 3u);
}

// A candidate whose key was written since goes without touching the key;
// a re-delete replaces the candidate.
BOOST_AUTO_TEST_CASE(a_candidate_outlived_by_a_write_just_goes) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 1);
  CommitLocal(a.c(), {Put("r", 1)});
  CommitLocal(a.c(), {Delete("r")});
  CommitLocal(a.c(), {Put("r", 2)});
  BOOST_TEST(Candidates(a).size() == 1u);
  CollectResult res;
  a.c()->Collect(StableAt({{a.meta.replica, 3}}), 100, &res);
  BOOST_TEST(res.status.ok());
  BOOST_TEST(res.collected == 0u);
  BOOST_TEST(Candidates(a).empty());
  BOOST_TEST(a.Read("r")["value"] == 2);
  CommitLocal(a.c(), {Delete("r")});
  BOOST_REQUIRE(Candidates(a).size() == 1u);
  BOOST_TEST(Candidates(a)[0].seq == 4u);
  a.c()->Collect(StableAt({{a.meta.replica, 3}}), 100, &res);
  BOOST_TEST(res.collected == 0u);
  a.c()->Collect(StableAt({{a.meta.replica, 4}}), 100, &res);
  BOOST_TEST(res.collected == 1u);
  BOOST_TEST(a.State("r").empty());
}

// Once a scan found no candidate, Collect skips its scan, but only until a
// batch writes one again: a local delete, a remote delta and a repair each
// bring it back.
BOOST_AUTO_TEST_CASE(collect_skips_its_scan_only_while_no_candidate_is_written) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 1);
  Node b(tmp.sub("b"), "b", 2);
  Node c(tmp.sub("c"), "c", 3);
  CollectResult res;
  for (Node* n : {&a, &b, &c}) {
    n->c()->Collect(StableAt({{a.meta.replica, 100}}), 100, &res);
    BOOST_TEST(res.status.ok());
    BOOST_TEST(res.examined == 0u);
    BOOST_TEST(res.wrapped);
  }
  CommitLocal(a.c(), {Put("r", 1)});
  a.c()->Collect(StableAt({{a.meta.replica, 100}}), 100, &res);
  BOOST_TEST(res.examined == 0u);
  CommitLocal(a.c(), {Delete("r")});  // seq 2
  a.c()->Collect(StableAt({{a.meta.replica, 2}}), 100, &res);
  BOOST_TEST(res.status.ok());
  BOOST_TEST(res.examined == 1u);
  BOOST_TEST(res.collected == 1u);
  BOOST_TEST(a.State("r").empty());
  a.c()->Collect(StableAt({{a.meta.replica, 2}}), 100, &res);
  BOOST_TEST(res.examined == 0u);

  // A remote delete.
  CommitRemote(b.c(), {From(a, a.Log())});
  BOOST_REQUIRE(Candidates(b).size() == 1u);
  b.c()->Collect(StableAt({{a.meta.replica, 2}}), 100, &res);
  BOOST_TEST(res.collected == 1u);
  BOOST_TEST(b.State("r").empty());

  // A repaired tombstone (c holds an entry for a, so it gets a candidate).
  CommitRemote(c.c(), {From(a, a.Log(1, 1))});
  c.c()->Collect(StableAt({{a.meta.replica, 100}}), 100, &res);
  BOOST_TEST(res.examined == 0u);
  StateRepair repair;
  CommitLocal(a.c(), {Put("t", 1)});   // seq 3
  CommitLocal(a.c(), {Delete("t")});   // seq 4
  repair.states.emplace_back("t", a.State("t"));
  repair.has_advance = true;
  repair.advance = StableAt({{a.meta.replica, 4}});
  repair.has_view = true;
  repair.view = a.c()->applied();
  RepairResult rr;
  c.c()->Repair(repair, &rr);
  BOOST_REQUIRE_MESSAGE(rr.status.ok(), rr.status.ToString());
  BOOST_REQUIRE(Candidates(c).size() == 1u);
  c.c()->Collect(StableAt({{a.meta.replica, 4}}), 100, &res);
  BOOST_TEST(res.status.ok());
  BOOST_TEST(res.collected == 1u);
  BOOST_TEST(c.State("t").empty());
}

// Collect reads at most `limit` candidates per call and goes on from there.
BOOST_AUTO_TEST_CASE(collect_goes_through_the_candidates_in_steps) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 1);
  std::vector<Operation> puts, dels;
  for (int i = 0; i < 10; ++i) {
    puts.push_back(Put("k" + std::to_string(i), i));
    dels.push_back(Delete("k" + std::to_string(i)));
  }
  CommitLocal(a.c(), puts);
  CommitLocal(a.c(), dels);
  const storage::AppliedVector all = StableAt({{a.meta.replica, 20}});
  CollectResult res;
  size_t collected = 0;
  for (int round = 0; round < 4; ++round) {
    a.c()->Collect(all, 3, &res);
    BOOST_TEST(res.status.ok());
    BOOST_TEST(res.examined <= 3u);
    collected += res.collected;
  }
  BOOST_TEST(collected == 10u);
  BOOST_TEST(res.wrapped);
  BOOST_TEST(a.c()->key_count() == 0u);
  BOOST_TEST(a.States().empty());
}

// A repair raises the floor to its sender's: the states it brought may
// lack tombstones the sender collected, so a state older than those (from
// a round a third node started long before) is refused here too, after a
// restart as well.
BOOST_AUTO_TEST_CASE(a_repair_raises_the_floor_to_its_senders) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 1);
  Node b(tmp.sub("b"), "b", 2);
  Node c(tmp.sub("c"), "c", 3);
  CommitLocal(a.c(), {Put("r", "old")});
  CommitRemote(c.c(), {From(a, a.Log())});
  // c's view now: a:1, holding "old".
  StateRepair stale;
  stale.states.emplace_back("r", c.State("r"));
  stale.has_view = true;
  stale.view = c.c()->applied();
  // a deletes and collects; b (empty, as a fresh incarnation) takes a's
  // states and floor.
  CommitLocal(a.c(), {Delete("r")});
  CollectResult res;
  a.c()->Collect(StableAt({{a.meta.replica, 2}, {c.meta.replica, 0}}), 100, &res);
  BOOST_REQUIRE(res.collected == 1u);
  StateRepair boot;
  boot.has_view = true;
  boot.view = a.c()->applied();
  boot.has_advance = true;
  boot.advance = a.c()->applied();
  boot.peer_floor = a.c()->collect_floor();
  RepairResult rr;
  b.c()->Repair(boot, &rr);
  BOOST_REQUIRE_MESSAGE(rr.status.ok(), rr.status.ToString());
  BOOST_TEST((b.c()->collect_floor() == a.c()->collect_floor()));
  b.Reopen();
  BOOST_TEST((b.c()->collect_floor() == a.c()->collect_floor()));
  b.c()->Repair(stale, &rr);
  BOOST_TEST(rr.status.code() == Status::Code::kFailedPrecondition, rr.status.ToString());
  BOOST_TEST(b.State("r").empty());
  // A floor below the one held changes nothing (and writes nothing).
  StateRepair lower;
  lower.has_view = true;
  lower.view = b.c()->applied();
  lower.peer_floor = StableAt({{a.meta.replica, 1}});
  b.c()->Repair(lower, &rr);
  BOOST_TEST(rr.status.ok());
  BOOST_TEST((b.c()->collect_floor() == a.c()->collect_floor()));
}

// A repair whose states are as of a view older than what Collect used is
// refused: it could bring back a value the collected tombstone hid.
BOOST_AUTO_TEST_CASE(a_repair_older_than_a_collection_is_refused) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 1);
  Node b(tmp.sub("b"), "b", 2);
  CommitLocal(a.c(), {Put("r", "old")});
  CommitRemote(b.c(), {From(a, a.Log())});
  // b's view now: a:1, holding "old".
  StateRepair stale;
  stale.states.emplace_back("r", b.State("r"));
  stale.has_view = true;
  stale.view = b.c()->applied();
  CommitLocal(a.c(), {Delete("r")});
  CollectResult res;
  a.c()->Collect(StableAt({{a.meta.replica, 2}, {b.meta.replica, 0}}), 100, &res);
  BOOST_REQUIRE(res.collected == 1u);
  a.Reopen();  // the floor is stored: a round started before a restart is refused after it
  RepairResult rr;
  a.c()->Repair(stale, &rr);
  BOOST_TEST(rr.status.code() == Status::Code::kFailedPrecondition, rr.status.ToString());
  BOOST_TEST(a.State("r").empty());
  // As of a view that holds the delete, the key's state is welcome, but
  // the tombstone itself is skipped: it was collected here already.
  CommitRemote(b.c(), {From(a, a.Log(2))});
  StateRepair fresh;
  fresh.states.emplace_back("r", b.State("r"));
  fresh.has_view = true;
  fresh.view = b.c()->applied();
  a.c()->Repair(fresh, &rr);
  BOOST_TEST(rr.status.ok(), rr.status.ToString());
  BOOST_TEST(rr.changed == 0u);
  BOOST_TEST(a.State("r").empty());
  // A later value of the key, as of a fresh view, is joined as usual.
  b.wall.Advance(10);
  CommitLocal(b.c(), {Put("r", "new")});
  StateRepair newer;
  newer.states.emplace_back("r", b.State("r"));
  newer.has_view = true;
  newer.view = b.c()->applied();
  a.c()->Repair(newer, &rr);
  BOOST_TEST(rr.status.ok(), rr.status.ToString());
  BOOST_TEST(rr.changed == 1u);
  BOOST_TEST(a.Read("r")["value"] == "new");
}
