// Committer::Repair and Applier::SubmitRepair (node/committer.h): the
// storage side of Merkle anti-entropy, on real LevelDB stores in fresh
// directories. A replica repaired from another's whole states (read with
// Store::Scan) and advanced to its applied vector ends with byte-equal
// states, equal digest sums and an applied vector that covers the other's;
// concurrent states converge when repaired both ways; a bad state or a full
// disk leaves everything as it was; the node's own origin is never
// advanced; a reopen keeps what a repair wrote; and through the Applier a
// repair is ordered with the writes queued around it.
#define BOOST_TEST_MODULE repair
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "crdt/counter.h"
#include "crdt/envelope.h"
#include "crdt/hlc.h"
#include "crdt/map.h"
#include "crdt/register.h"
#include "crdt/set.h"
#include "node/applier.h"
#include "node/committer.h"
#include "node/operation.h"
#include "storage/digests.h"
#include "storage/leveldb_store.h"
#include "storage/node_meta.h"
#include "tests/node/committer_node.h"
#include "tests/support/temp_dir.h"

using namespace meridian;
using namespace meridian::node;
using meridian::testing::TempDir;
using nlohmann::json;

namespace {

using Node = meridian::testing::CommitterNode;

using meridian::testing::Put;
using meridian::testing::Add;
using meridian::testing::SetUpdate;
using meridian::testing::MapCount;
using meridian::testing::Delete;

// Commits `ops` as one group; every op must succeed.
void Write(Committer* c, const std::vector<Operation>& ops) {
  std::vector<const Operation*> ptrs;
  for (const auto& op : ops) ptrs.push_back(&op);
  std::vector<WriteResult> results;
  c->Commit(ptrs, &results, {}, nullptr);
  BOOST_REQUIRE_EQUAL(results.size(), ops.size());
  for (size_t i = 0; i < results.size(); ++i) {
    BOOST_REQUIRE_MESSAGE(results[i].ok, "op " << i << ": " << results[i].error.message);
  }
}

// A repair carrying every state of `from` and, with `advance`, its applied
// vector.
StateRepair FullRepair(Node& from, bool advance) {
  StateRepair r;
  for (auto& ks : from.States()) r.states.emplace_back(ks.key, ks.envelope);
  r.has_advance = advance;
  if (advance) r.advance = from.c()->applied();
  return r;
}

RepairResult DoRepair(Node& n, const StateRepair& r) {
  RepairResult result;
  n.c()->Repair(r, &result);
  return result;
}

uint64_t AppliedOf(const storage::AppliedVector& v, const crdt::ReplicaId& r) {
  auto it = v.find({r, ""});
  return it == v.end() ? 0 : it->second;
}

// The same keys with byte-equal states.
void RequireSameStates(Node& a, Node& b) {
  auto sa = a.States();
  auto sb = b.States();
  BOOST_REQUIRE_EQUAL(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    BOOST_TEST_CONTEXT("state " << i << " key " << sa[i].key) {
      BOOST_TEST(sa[i].key == sb[i].key);
      BOOST_TEST(sa[i].envelope == sb[i].envelope);
    }
  }
}

// The committer's sums are those of the digest records on disk and of a
// reopen.
void RequireSumsConsistent(Node& n) {
  BOOST_TEST((n.c()->digest_sums() == n.DiskSums()), n.id << ": in-memory sums vs disk");
  BOOST_TEST((n.c()->digest_sums() == n.Stored().digest_sums), n.id << ": sums vs LoadNodeMeta");
}

// Writes of every type on `n`, including a deleted key.
void WriteMix(Node& n, const std::string& tag) {
  Write(n.c(), {Put("r", "one-" + tag), Add("c", 3), SetUpdate("s", {"x", tag}, {}),
                MapCount("m", "n", 4), Put("gone", 1)});
  n.wall.Advance(5);
  Write(n.c(), {Add("c", -1), SetUpdate("s", {}, {"x"}), Delete("gone"), Put("r-" + tag, tag)});
}

template <typename T>
T Await(std::future<T>& f) {
  BOOST_REQUIRE(f.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
  return f.get();
}

}  // namespace

BOOST_AUTO_TEST_CASE(full_repair_makes_an_empty_replica_equal) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 1);
  Node b(tmp.sub("b"), "b", 2);
  WriteMix(a, "a");
  BOOST_REQUIRE(!a.c()->digest_sums().Total().zero());

  std::vector<std::pair<std::string, std::string>> changed;
  b.c()->SetChangeListener(
      [&](const std::string& key, const std::string& env) { changed.emplace_back(key, env); });
  StateRepair r = FullRepair(a, true);
  BOOST_REQUIRE_GE(r.states.size(), 5u);
  RepairResult res = DoRepair(b, r);
  BOOST_REQUIRE_MESSAGE(res.status.ok(), res.status.ToString());
  BOOST_TEST(res.changed == r.states.size());
  BOOST_TEST(b.c()->last_status().ok());

  RequireSameStates(a, b);
  BOOST_TEST(b.c()->key_count() == a.c()->key_count());
  BOOST_TEST(b.Stored().key_count == a.c()->key_count());
  BOOST_TEST((b.c()->digest_sums().Total() == a.c()->digest_sums().Total()));
  BOOST_TEST((b.c()->digest_sums() == a.c()->digest_sums()));
  RequireSumsConsistent(b);
  // last_digest_changes() replays the repair onto the sums from before it.
  storage::BucketSums replay;
  for (const DigestChange& c : b.c()->last_digest_changes()) replay.Replace(c.bucket, c.before, c.after);
  BOOST_TEST((replay == b.c()->digest_sums()));
  BOOST_TEST(b.c()->last_digest_changes().size() == r.states.size());

  // Applied covers A's; B's own entry is unchanged (0: it wrote nothing).
  uint64_t behind = 99;
  BOOST_TEST(Covers(b.c()->applied(), a.c()->applied(), &behind));
  BOOST_TEST(behind == 0u);
  BOOST_TEST(AppliedOf(b.c()->applied(), a.meta.replica) == a.c()->last_seq());
  BOOST_TEST(AppliedOf(b.c()->applied(), b.meta.replica) == 0u);
  BOOST_TEST(b.c()->last_seq() == 0u);
  storage::AppliedVector token;
  BOOST_REQUIRE(ParseSessionToken(b.c()->SessionToken(), &token));
  storage::AppliedVector a_token;
  BOOST_REQUIRE(ParseSessionToken(a.c()->SessionToken(), &a_token));
  BOOST_TEST(Covers(token, a_token, nullptr));
  BOOST_TEST((b.Stored().applied == b.c()->applied()));
  // No delta-log entries are appended by a repair.
  std::vector<storage::LogEntry> log;
  BOOST_REQUIRE(b.store->ReadLog("", 1, 1000, &log).ok());
  BOOST_TEST(log.empty());

  // The listener saw each changed key once, with its stored state.
  BOOST_REQUIRE_EQUAL(changed.size(), r.states.size());
  for (const auto& [key, env] : changed) BOOST_TEST(env == b.State(key), key);

  // The same repair again changes nothing and writes nothing.
  const uint64_t writes = b.store->writes();
  changed.clear();
  res = DoRepair(b, r);
  BOOST_REQUIRE_MESSAGE(res.status.ok(), res.status.ToString());
  BOOST_TEST(res.changed == 0u);
  BOOST_TEST(b.store->writes() == writes);
  BOOST_TEST(changed.empty());
  BOOST_TEST(b.c()->last_digest_changes().empty());
}

BOOST_AUTO_TEST_CASE(concurrent_states_converge_when_repaired_both_ways) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 1);
  Node b(tmp.sub("b"), "b", 2);
  WriteMix(a, "a");
  b.wall.Advance(3);
  WriteMix(b, "b");
  // A type conflict: a register on A, a counter on B, for the same key.
  Write(a.c(), {Put("t", "reg")});
  Write(b.c(), {Add("t", 7)});
  BOOST_REQUIRE(a.State("c") != b.State("c"));

  // Both sides' states as of the same moment (as one round sends them).
  StateRepair to_b = FullRepair(a, true);
  StateRepair to_a = FullRepair(b, true);
  RepairResult rb = DoRepair(b, to_b);
  BOOST_REQUIRE_MESSAGE(rb.status.ok(), rb.status.ToString());
  RepairResult ra = DoRepair(a, to_a);
  BOOST_REQUIRE_MESSAGE(ra.status.ok(), ra.status.ToString());
  BOOST_TEST(rb.changed > 0u);
  BOOST_TEST(ra.changed > 0u);

  RequireSameStates(a, b);
  BOOST_TEST((a.c()->digest_sums() == b.c()->digest_sums()));
  BOOST_TEST(a.c()->key_count() == b.c()->key_count());
  BOOST_TEST(a.c()->key_count() == a.States().size());
  RequireSumsConsistent(a);
  RequireSumsConsistent(b);
  BOOST_TEST(a.c()->type_conflicts() + b.c()->type_conflicts() >= 1u);
  // Each covers the other; each kept its own sequence.
  BOOST_TEST(Covers(a.c()->applied(), b.c()->applied(), nullptr));
  BOOST_TEST(Covers(b.c()->applied(), a.c()->applied(), nullptr));
  BOOST_TEST(a.c()->last_seq() == 10u);  // 5 + 4 + 1 writes
  BOOST_TEST(b.c()->last_seq() == 10u);
  BOOST_TEST(AppliedOf(a.c()->applied(), b.meta.replica) == 10u);
  BOOST_TEST(AppliedOf(b.c()->applied(), a.meta.replica) == 10u);

  // The joined counter holds both sides' increments (3 - 1 on each).
  crdt::Envelope env;
  BOOST_REQUIRE(crdt::Envelope::Decode(a.State("c"), &env).ok());
  int http = 0;
  std::string context;
  ApiError err;
  json out;
  BOOST_REQUIRE_MESSAGE(RenderRead("c", env, &out, &http, &context, &err), err.message);
  BOOST_TEST(out.dump().find('4') != std::string::npos, out.dump());
}

BOOST_AUTO_TEST_CASE(a_bad_state_writes_nothing) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 1);
  Node b(tmp.sub("b"), "b", 2);
  WriteMix(a, "a");
  Write(b.c(), {Put("own", 1)});
  const storage::AppliedVector applied = b.c()->applied();
  const storage::BucketSums sums = b.c()->digest_sums();
  const uint64_t keys = b.c()->key_count();
  const uint64_t writes = b.store->writes();
  const std::string stored_r = b.State("r");
  BOOST_REQUIRE(stored_r.empty());

  auto check_unchanged = [&](const std::string& what) {
    BOOST_TEST_CONTEXT(what) {
      BOOST_TEST(b.State("r").empty());
      BOOST_TEST(b.States().size() == 1u);
      BOOST_TEST((b.c()->applied() == applied));
      BOOST_TEST((b.Stored().applied == applied));
      BOOST_TEST((b.c()->digest_sums() == sums));
      BOOST_TEST(b.c()->key_count() == keys);
      BOOST_TEST(b.store->writes() == writes);
      BOOST_TEST(b.c()->last_digest_changes().empty());
    }
  };

  // A state that does not decode, after good ones: nothing of it is written.
  StateRepair r = FullRepair(a, true);
  r.states.emplace_back("zz-bad", std::string("\xc1\x01\x02", 3));
  RepairResult res = DoRepair(b, r);
  BOOST_TEST(!res.status.ok());
  BOOST_TEST(res.status.ToString().find("zz-bad") != std::string::npos, res.status.ToString());
  BOOST_TEST(res.changed == 0u);
  check_unchanged("undecodable");

  // A state whose bytes are a truncated real envelope.
  r = FullRepair(a, true);
  r.states[0].second.resize(r.states[0].second.size() / 2);
  res = DoRepair(b, r);
  BOOST_TEST(!res.status.ok());
  check_unchanged("truncated");

  // Invalid keys: empty, and longer than 1024 bytes.
  for (const std::string& key : {std::string(), std::string(1025, 'k')}) {
    r = FullRepair(a, true);
    r.states.emplace_back(key, r.states[0].second);
    res = DoRepair(b, r);
    BOOST_TEST(res.status.code() == Status::Code::kInvalidArgument, res.status.ToString());
    check_unchanged("key of " + std::to_string(key.size()) + " bytes");
  }

  // The good states alone then repair.
  res = DoRepair(b, FullRepair(a, true));
  BOOST_REQUIRE_MESSAGE(res.status.ok(), res.status.ToString());
  BOOST_TEST(b.State("r") == a.State("r"));
}

BOOST_AUTO_TEST_CASE(a_full_disk_leaves_everything_then_a_retry_succeeds) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 1);
  Node b(tmp.sub("b"), "b", 2);
  WriteMix(a, "a");
  Write(b.c(), {Add("c", 10)});
  const storage::AppliedVector applied = b.c()->applied();
  const storage::BucketSums sums = b.c()->digest_sums();
  const uint64_t keys = b.c()->key_count();
  const std::string c_before = b.State("c");
  int listened = 0;
  b.c()->SetChangeListener([&](const std::string&, const std::string&) { ++listened; });

  StateRepair r = FullRepair(a, true);
  b.store->TEST_FailWritesWithNoSpace(1);
  RepairResult res = DoRepair(b, r);
  BOOST_TEST(storage::Store::IsNoSpace(res.status), res.status.ToString());
  BOOST_TEST(storage::Store::IsNoSpace(b.c()->last_status()));
  BOOST_TEST(res.changed == 0u);
  BOOST_TEST(listened == 0);
  BOOST_TEST(b.State("c") == c_before);
  BOOST_TEST(b.State("r").empty());
  BOOST_TEST((b.c()->applied() == applied));
  BOOST_TEST((b.c()->digest_sums() == sums));
  BOOST_TEST(b.c()->key_count() == keys);
  BOOST_TEST(b.c()->last_digest_changes().empty());
  RequireSumsConsistent(b);
  BOOST_TEST((b.Stored().applied == applied));

  res = DoRepair(b, r);
  BOOST_REQUIRE_MESSAGE(res.status.ok(), res.status.ToString());
  BOOST_TEST(b.c()->last_status().ok());
  BOOST_TEST(res.changed == r.states.size());
  BOOST_TEST(listened == static_cast<int>(r.states.size()));
  BOOST_TEST(b.State("r") == a.State("r"));
  BOOST_TEST(b.State("c") != c_before);  // joined with A's counter
  BOOST_TEST(Covers(b.c()->applied(), a.c()->applied(), nullptr));
  BOOST_TEST(b.c()->key_count() == a.c()->key_count());
  RequireSumsConsistent(b);
}

BOOST_AUTO_TEST_CASE(advance_only_and_own_origin_ignored) {
  TempDir tmp;
  Node b(tmp.sub("b"), "b", 2);
  Write(b.c(), {Put("k", 1), Put("k", 2)});
  BOOST_REQUIRE_EQUAL(b.c()->last_seq(), 2u);
  const storage::BucketSums sums = b.c()->digest_sums();
  const crdt::ReplicaId x{"x", 5};
  const crdt::ReplicaId old_b{"b", 1};  // an earlier incarnation: another origin

  StateRepair r;
  r.has_advance = true;
  r.advance[{x, ""}] = 7;
  r.advance[{old_b, ""}] = 4;
  r.advance[{b.meta.replica, ""}] = 10;  // its own origin: ignored
  RepairResult res = DoRepair(b, r);
  BOOST_REQUIRE_MESSAGE(res.status.ok(), res.status.ToString());
  BOOST_TEST(res.changed == 0u);
  BOOST_TEST(AppliedOf(b.c()->applied(), x) == 7u);
  BOOST_TEST(AppliedOf(b.c()->applied(), old_b) == 4u);
  BOOST_TEST(AppliedOf(b.c()->applied(), b.meta.replica) == 2u);
  BOOST_TEST(b.c()->last_seq() == 2u);
  BOOST_TEST((b.Stored().applied == b.c()->applied()));
  BOOST_TEST((b.c()->digest_sums() == sums));

  // Lower entries never lower it; its own origin at 0 does not reset it;
  // without has_advance the vector is ignored.
  r.advance[{x, ""}] = 3;
  r.advance[{b.meta.replica, ""}] = 0;
  res = DoRepair(b, r);
  BOOST_REQUIRE(res.status.ok());
  BOOST_TEST(AppliedOf(b.c()->applied(), x) == 7u);
  BOOST_TEST(AppliedOf(b.c()->applied(), b.meta.replica) == 2u);
  r.has_advance = false;
  r.advance[{x, ""}] = 100;
  res = DoRepair(b, r);
  BOOST_REQUIRE(res.status.ok());
  BOOST_TEST(AppliedOf(b.c()->applied(), x) == 7u);

  // Its next write continues its own log.
  Operation op = Put("k", 3);
  std::vector<WriteResult> results;
  b.c()->Commit({&op}, &results, {}, nullptr);
  BOOST_REQUIRE(results.at(0).ok);
  BOOST_TEST(results[0].seq == 3u);
  BOOST_TEST(AppliedOf(b.c()->applied(), x) == 7u);
}

BOOST_AUTO_TEST_CASE(a_restart_keeps_what_a_repair_wrote) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 1);
  Node b(tmp.sub("b"), "b", 2);
  WriteMix(a, "a");
  Write(b.c(), {Add("c", 1), Put("bee", "b")});
  RepairResult res = DoRepair(b, FullRepair(a, true));
  BOOST_REQUIRE_MESSAGE(res.status.ok(), res.status.ToString());
  const storage::AppliedVector applied = b.c()->applied();
  const storage::BucketSums sums = b.c()->digest_sums();
  const uint64_t keys = b.c()->key_count();
  const std::string token = b.c()->SessionToken();

  b.Reopen();
  BOOST_TEST((b.meta.applied == applied));
  BOOST_TEST((b.meta.digest_sums == sums));
  BOOST_TEST(b.meta.key_count == keys);
  BOOST_TEST(b.c()->SessionToken() == token);
  BOOST_TEST(Covers(b.c()->applied(), a.c()->applied(), nullptr));
  RequireSumsConsistent(b);
}

BOOST_AUTO_TEST_CASE(applier_orders_a_repair_with_writes) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 1);
  Node b(tmp.sub("b"), "b", 2);
  WriteMix(a, "a");
  StateRepair repair = FullRepair(a, true);
  const size_t n_states = repair.states.size();

  b.committer.reset();  // the Applier owns its own Committer
  Applier applier(b.store.get(), b.clock.get(), b.meta);
  std::mutex mu;
  std::vector<std::string> order;  // completions, in order
  int commits = 0;
  std::vector<std::string> changed;
  applier.SetCommitListener([&] {
    std::lock_guard<std::mutex> lock(mu);
    ++commits;
  });
  applier.SetChangeListener([&](const std::string& key, const std::string&) {
    std::lock_guard<std::mutex> lock(mu);
    changed.push_back(key);
  });
  std::promise<WriteResult> w1, w2;
  std::promise<RepairResult> rp;
  auto f1 = w1.get_future();
  auto f2 = w2.get_future();
  auto fr = rp.get_future();
  // Queued before Start(): one group would take all three; the repair cuts
  // it and runs alone, between the two writes.
  applier.Submit(Put("first", 1), [&](WriteResult r) {
    {
      std::lock_guard<std::mutex> lock(mu);
      order.push_back("w1");
    }
    w1.set_value(std::move(r));
  });
  applier.SubmitRepair(std::move(repair), [&](RepairResult r) {
    {
      std::lock_guard<std::mutex> lock(mu);
      order.push_back("repair");
    }
    rp.set_value(std::move(r));
  });
  applier.Submit(Add("c", 100), [&](WriteResult r) {
    {
      std::lock_guard<std::mutex> lock(mu);
      order.push_back("w2");
    }
    w2.set_value(std::move(r));
  });
  applier.Start();
  WriteResult r1 = Await(f1);
  RepairResult rr = Await(fr);
  WriteResult r2 = Await(f2);
  applier.Stop();

  BOOST_REQUIRE_MESSAGE(r1.ok, r1.error.message);
  BOOST_REQUIRE_MESSAGE(rr.status.ok(), rr.status.ToString());
  BOOST_REQUIRE_MESSAGE(r2.ok, r2.error.message);
  BOOST_TEST((order == std::vector<std::string>{"w1", "repair", "w2"}));
  BOOST_TEST(rr.changed == n_states);
  BOOST_TEST(r1.seq == 1u);
  BOOST_TEST(r2.seq == 2u);  // the repair appended no log entry
  BOOST_TEST(applier.stats().groups.load() == 2u);
  BOOST_TEST(applier.stats().repairs.load() == 1u);
  BOOST_TEST(applier.stats().failed_repairs.load() == 0u);
  BOOST_TEST(commits == 3);
  BOOST_TEST(changed.size() == n_states + 2);

  // The later write built on the repaired counter (A's 3 - 1, then + 100).
  crdt::Envelope env;
  BOOST_REQUIRE(crdt::Envelope::Decode(b.State("c"), &env).ok());
  int http = 0;
  std::string context;
  ApiError err;
  json out;
  BOOST_REQUIRE_MESSAGE(RenderRead("c", env, &out, &http, &context, &err), err.message);
  BOOST_TEST(out.dump().find("102") != std::string::npos, out.dump());

  // Mirrors up to date, and equal to what is on disk.
  BOOST_TEST(Covers(applier.Applied(), a.c()->applied(), nullptr));
  BOOST_TEST(AppliedOf(applier.Applied(), b.meta.replica) == 2u);
  BOOST_TEST((applier.Applied() == b.Stored().applied));
  storage::AppliedVector token;
  BOOST_REQUIRE(ParseSessionToken(applier.SessionToken(), &token));
  BOOST_TEST((token == applier.Applied()));
  BOOST_TEST((applier.DigestSums() == b.DiskSums()));
  BOOST_TEST((applier.StateDigest() == b.DiskSums().Total()));
  BOOST_TEST(applier.key_count() == b.States().size());

  // A failed repair through the Applier: counted, no commit listener.
  StateRepair bad;
  bad.states.emplace_back("bad", "not an envelope");
  std::promise<RepairResult> bp;
  auto fb = bp.get_future();
  Applier again(b.store.get(), b.clock.get(), b.Stored());
  again.SetCommitListener([&] {
    std::lock_guard<std::mutex> lock(mu);
    ++commits;
  });
  again.Start();
  again.SubmitRepair(std::move(bad), [&](RepairResult r) { bp.set_value(std::move(r)); });
  RepairResult br = Await(fb);
  again.Stop();
  BOOST_TEST(!br.status.ok());
  BOOST_TEST(again.stats().failed_repairs.load() == 1u);
  BOOST_TEST(commits == 3);
  BOOST_TEST(b.State("bad").empty());
}

// A restored node (committer.h "A restored backup"): its bootstrap repair
// drops the restored registers its peer had applied and lacks (collected
// there), keeps those the peer never saw, and forgets the backup's applied
// vector once it has advanced.
BOOST_AUTO_TEST_CASE(a_restored_node_drops_registers_its_peer_collected) {
  TempDir tmp;
  Node w(tmp.sub("w"), "w", 1);
  Write(w.c(), {Put("gone", 1), Put("kept", 2)});
  Node r(tmp.sub("r"), "r", 2);
  BOOST_REQUIRE(DoRepair(r, FullRepair(w, true)).status.ok());
  Write(r.c(), {Put("mine", 3)});  // never reached the peer
  // As a restore leaves it: the backed-up applied vector kept apart.
  {
    storage::WriteBatch batch;
    batch.PutMeta(storage::kMetaRestoredApplied, storage::EncodeApplied(r.c()->applied()));
    BOOST_REQUIRE(r.store->Write(&batch).ok());
  }
  r.Reopen();
  BOOST_REQUIRE(!r.meta.restored_applied.empty());
  const uint64_t keys_before = r.c()->key_count();

  // The peer applied all of w's log but holds no "gone" (deleted and
  // collected), and nothing of r.
  StateRepair rep;
  rep.has_view = true;
  rep.view = w.c()->applied();
  rep.has_advance = true;
  rep.advance = rep.view;
  rep.states.emplace_back("kept", w.State("kept"));
  for (const char* k : {"gone", "kept", "mine"}) rep.buckets.push_back(storage::BucketOf(k));
  std::sort(rep.buckets.begin(), rep.buckets.end());
  rep.buckets.erase(std::unique(rep.buckets.begin(), rep.buckets.end()), rep.buckets.end());
  RepairResult res = DoRepair(r, rep);
  BOOST_REQUIRE_MESSAGE(res.status.ok(), res.status.ToString());
  BOOST_TEST(res.dropped == 1u);
  BOOST_TEST(r.State("gone").empty());
  BOOST_TEST(!r.State("kept").empty());
  BOOST_TEST(!r.State("mine").empty());
  BOOST_TEST(r.c()->key_count() == keys_before - 1);
  BOOST_TEST((r.c()->digest_sums() == r.DiskSums()));
  r.Reopen();
  BOOST_TEST(r.meta.restored_applied.empty());
  BOOST_TEST(r.c()->key_count() == keys_before - 1);

  // Once bootstrapped, a peer's lack of a key drops nothing.
  Write(w.c(), {Put("later", 4)});
  BOOST_REQUIRE(DoRepair(r, FullRepair(w, true)).status.ok());
  rep.buckets = {storage::BucketOf("later")};
  rep.states.clear();
  rep.view = w.c()->applied();
  rep.advance = rep.view;
  res = DoRepair(r, rep);
  BOOST_REQUIRE(res.status.ok());
  BOOST_TEST(res.dropped == 0u);
  BOOST_TEST(!r.State("later").empty());
}
