// The digest index as the Committer maintains it (node/committer.h,
// storage/digests.h), on real LevelDBs in a fresh directory per test:
// seeded random groups of local operations and remote deltas on three
// replicas, checking after every commit that the committer's sums, the
// sums loaded from disk and the sums recomputed from every state agree
// (and that each state has exactly its digest record); failed commits on a
// full disk change nothing; a restart restores the sums; replicas fed the
// same deltas in different orders end with equal digests; and the Applier
// mirrors the sums.
#define BOOST_TEST_MODULE digest_index
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "crdt/counter.h"
#include "crdt/envelope.h"
#include "crdt/hlc.h"
#include "crdt/mvregister.h"
#include "crdt/register.h"
#include "crdt/set.h"
#include "gossip/messages.h"
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
using storage::BucketSums;
using storage::Digest;

namespace meridian {
namespace storage {
std::ostream& boost_test_print_type(std::ostream& os, const Digest& d) { return os << d.Hex(); }
std::ostream& boost_test_print_type(std::ostream& os, const BucketSums& s) {
  return os << "sums with total " << s.Total().Hex();
}
}  // namespace storage
}  // namespace meridian

namespace {

using Node = meridian::testing::CommitterNode;

// --- Operations ------------------------------------------------------------

using meridian::testing::Put;
using meridian::testing::MvPut;
using meridian::testing::Add;
using meridian::testing::SetUpdate;
using meridian::testing::Delete;

// A random operation on a small key space; a key's type follows its
// prefix so replicas never first-write one key with two types.
Operation RandomOp(std::mt19937_64& rng) {
  auto pick = [&rng](uint64_t n) { return rng() % n; };
  const std::string n = std::to_string(pick(8));
  switch (pick(9)) {
    case 0:
    case 1:
      return Put("r/" + n, static_cast<int>(pick(1000)));
    case 2:
    case 3:
      return Add("c/" + n, static_cast<int64_t>(pick(21)) - 10);
    case 4:
      return SetUpdate("s/" + n, {static_cast<int>(pick(6))}, {});
    case 5:
      return SetUpdate("s/" + n, {}, {static_cast<int>(pick(6))});
    case 6:
      return MvPut("m/" + n, "v" + std::to_string(pick(100)));
    default: {
      static const char* kPrefixes[] = {"r/", "c/", "s/", "m/"};
      return Delete(kPrefixes[pick(4)] + n);  // 404 when the key has no state
    }
  }
}

// --- Checks ------------------------------------------------------------------

BucketSums LoadSums(const storage::Store& store) {
  BucketSums sums;
  Status st = storage::LoadBucketSums(store, "", &sums);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  return sums;
}

// key -> (bucket, digest) from every state, and from every digest record.
using RecordMap = std::map<std::string, std::pair<uint32_t, Digest>>;
RecordMap FromStates(const storage::Store& store) {
  RecordMap out;
  std::vector<storage::Store::KeyState> states;
  Status st = store.Scan("", "", 1000000, &states);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  for (const auto& ks : states) {
    out[ks.key] = {storage::BucketOf(ks.key), storage::KeyDigest(ks.key, ks.envelope)};
  }
  return out;
}
RecordMap FromRecords(const storage::Store& store) {
  RecordMap out;
  std::vector<storage::Store::DigestRecord> recs;
  Status st = store.ScanDigests("", 0, storage::kBuckets, nullptr, 1000000, &recs);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  for (const auto& r : recs) out[r.key] = {r.bucket, r.digest};
  return out;
}
BucketSums SumsOf(const RecordMap& records) {
  BucketSums sums;
  for (const auto& [key, bd] : records) sums.Replace(bd.first, Digest(), bd.second);
  return sums;
}
std::string Render(const RecordMap& m) {
  std::string out;
  for (const auto& [k, bd] : m) out += k + "@" + std::to_string(bd.first) + "=" + bd.second.Hex() + " ";
  return out;
}

// The committer's sums == the sums on disk == the sums of every state, and
// each state has exactly its digest record.
void CheckIndex(Node& n) {
  const RecordMap states = FromStates(*n.store);
  const RecordMap records = FromRecords(*n.store);
  BOOST_REQUIRE_MESSAGE(states == records,
                        n.id << ": states " << Render(states) << "\nrecords " << Render(records));
  const BucketSums from_states = SumsOf(states);
  BOOST_REQUIRE_MESSAGE(LoadSums(*n.store) == from_states, n.id << ": sums on disk");
  BOOST_REQUIRE_MESSAGE(n.c()->digest_sums() == from_states, n.id << ": committer sums");
}

std::vector<const Operation*> Ptrs(const std::vector<Operation>& ops) {
  std::vector<const Operation*> out;
  for (const auto& op : ops) out.push_back(&op);
  return out;
}
std::vector<const RemoteApply*> Ptrs(const std::vector<RemoteApply>& applies) {
  std::vector<const RemoteApply*> out;
  for (const auto& a : applies) out.push_back(&a);
  return out;
}

// One commit with the mirror check: the sums before plus the commit's
// digest changes give the sums after.
void CommitAndCheck(Node& n, const std::vector<Operation>& ops,
                    const std::vector<RemoteApply>& remotes) {
  BucketSums mirror = n.c()->digest_sums();
  std::vector<WriteResult> results;
  std::vector<RemoteResult> remote_results;
  n.c()->Commit(Ptrs(ops), &results, Ptrs(remotes), &remote_results);
  BOOST_REQUIRE_MESSAGE(n.c()->last_status().ok(), n.c()->last_status().ToString());
  for (const DigestChange& ch : n.c()->last_digest_changes()) {
    BOOST_REQUIRE(ch.before != ch.after);
    mirror.Replace(ch.bucket, ch.before, ch.after);
  }
  BOOST_REQUIRE_MESSAGE(mirror == n.c()->digest_sums(), n.id << ": mirrored changes");
  CheckIndex(n);
}

// Every node gets every other node's whole log (duplicates skipped).
void SyncAll(std::vector<Node*> nodes) {
  for (Node* to : nodes) {
    std::vector<RemoteApply> remotes;
    for (Node* from : nodes) {
      if (from == to) continue;
      remotes.push_back(RemoteApply{from->meta.replica, "", from->Log(1)});
    }
    CommitAndCheck(*to, {}, remotes);
  }
}

template <typename T>
T Await(std::future<T>& f) {
  BOOST_REQUIRE(f.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
  return f.get();
}

}  // namespace

BOOST_AUTO_TEST_CASE(random_groups_keep_the_index_exact) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    BOOST_TEST_CONTEXT("seed " << seed) {
      TempDir tmp;
      Node a(tmp.sub("a"), "a", 11), b(tmp.sub("b"), "b", 22), c(tmp.sub("c"), "c", 33);
      std::vector<Node*> nodes = {&a, &b, &c};
      std::mt19937_64 rng(seed);
      auto pick = [&rng](uint64_t n) { return rng() % n; };
      int full_disk_checks = 0, restarts = 0, remote_groups = 0;

      for (int step = 0; step < 150; ++step) {
        for (Node* n : nodes) n->wall.Advance(1 + pick(3));
        Node& x = *nodes[pick(nodes.size())];

        // Local operations and remote deltas, in one group.
        std::vector<Operation> ops;
        const uint64_t n_ops = pick(5);
        for (uint64_t i = 0; i < n_ops; ++i) ops.push_back(RandomOp(rng));
        std::vector<RemoteApply> remotes;
        for (Node* y : nodes) {
          if (y == &x || pick(2) == 0) continue;
          const uint64_t have = x.AppliedOf(y->meta.replica);
          const uint64_t from = have + 1 - std::min<uint64_t>(have, pick(3));  // some duplicates
          auto entries = y->Log(std::max<uint64_t>(from, 1), 1 + pick(6));
          if (!entries.empty()) remotes.push_back(RemoteApply{y->meta.replica, "", entries});
        }
        if (!remotes.empty()) ++remote_groups;

        if (step % 20 == 7) {
          // A full disk: the commit fails and nothing changes, in memory
          // or on disk.
          const BucketSums before = x.c()->digest_sums();
          const RecordMap records = FromRecords(*x.store);
          std::vector<Operation> writes = ops;
          writes.push_back(Put("r/full", static_cast<int>(step)));
          x.store->TEST_FailWritesWithNoSpace(1);
          std::vector<WriteResult> results;
          std::vector<RemoteResult> remote_results;
          x.c()->Commit(Ptrs(writes), &results, Ptrs(remotes), &remote_results);
          BOOST_REQUIRE(storage::Store::IsNoSpace(x.c()->last_status()));
          BOOST_REQUIRE(x.c()->last_digest_changes().empty());
          BOOST_REQUIRE(x.c()->digest_sums() == before);
          BOOST_REQUIRE(FromRecords(*x.store) == records);
          CheckIndex(x);
          ++full_disk_checks;
          // The same group then succeeds.
          CommitAndCheck(x, writes, remotes);
          continue;
        }

        CommitAndCheck(x, ops, remotes);

        if (step % 30 == 29) {
          // A restart restores the same sums from disk.
          const BucketSums before = x.c()->digest_sums();
          x.Reopen();
          BOOST_REQUIRE(x.meta.digest_sums == before);
          BOOST_REQUIRE(x.c()->digest_sums() == before);
          CheckIndex(x);
          ++restarts;
        }
      }
      BOOST_TEST(full_disk_checks > 0);
      BOOST_TEST(restarts > 0);
      BOOST_TEST(remote_groups > 20);
      BOOST_TEST(FromStates(*a.store).size() > 10u);

      // Once every replica has every delta, the states and so the digests
      // agree everywhere.
      SyncAll(nodes);
      SyncAll(nodes);
      for (Node* n : nodes) {
        BOOST_TEST(n->c()->digest_sums() == a.c()->digest_sums(), n->id);
        BOOST_TEST((FromStates(*n->store) == FromStates(*a.store)), n->id);
      }
      BOOST_TEST(!a.c()->digest_sums().Total().zero());
    }
  }
}

BOOST_AUTO_TEST_CASE(same_deltas_in_other_orders_give_equal_digests) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 11), b(tmp.sub("b"), "b", 22);
  std::mt19937_64 rng(7);
  // Concurrent histories on two origins.
  for (int step = 0; step < 60; ++step) {
    Node& x = step % 2 ? a : b;
    x.wall.Advance(1 + rng() % 3);
    std::vector<Operation> ops;
    for (int i = 0; i < 3; ++i) ops.push_back(RandomOp(rng));
    CommitAndCheck(x, ops, {});
  }
  const auto alog = a.Log(1), blog = b.Log(1);
  BOOST_REQUIRE(alog.size() > 50u);
  BOOST_REQUIRE(blog.size() > 50u);

  // p: all of a, then all of b, one group.
  Node p(tmp.sub("p"), "p", 44);
  CommitAndCheck(p, {}, {RemoteApply{a.meta.replica, "", alog}, RemoteApply{b.meta.replica, "", blog}});
  // q: b first, in random chunks interleaved with a's, with duplicates,
  // one group per chunk.
  Node q(tmp.sub("q"), "q", 55);
  size_t ai = 0, bi = 0;
  for (int guard = 0; guard < 10000 && (ai < alog.size() || bi < blog.size()); ++guard) {
    const bool take_b = bi < blog.size() && (ai >= alog.size() || rng() % 3 != 0);
    const auto& log = take_b ? blog : alog;
    size_t& at = take_b ? bi : ai;
    const size_t back = std::min<size_t>(at, rng() % 3);  // resend a few
    const size_t len = 1 + rng() % 7;
    std::vector<gossip::DeltaEntry> chunk(log.begin() + (at - back),
                                          log.begin() + std::min(log.size(), at + len));
    at = std::min(log.size(), at + len);
    CommitAndCheck(q, {}, {RemoteApply{(take_b ? b : a).meta.replica, "", chunk}});
  }
  BOOST_REQUIRE_EQUAL(ai, alog.size());
  BOOST_REQUIRE_EQUAL(bi, blog.size());

  BOOST_TEST(p.c()->digest_sums().Total() == q.c()->digest_sums().Total());
  BOOST_TEST(p.c()->digest_sums() == q.c()->digest_sums());
  BOOST_TEST(!p.c()->digest_sums().Total().zero());
  // And equal to the origins once they have each other's deltas.
  CommitAndCheck(a, {}, {RemoteApply{b.meta.replica, "", blog}});
  BOOST_TEST(a.c()->digest_sums() == p.c()->digest_sums());
  // A replica missing one delta differs.
  Node r(tmp.sub("r"), "r", 66);
  std::vector<gossip::DeltaEntry> most(blog.begin(), blog.end() - 1);
  CommitAndCheck(r, {}, {RemoteApply{a.meta.replica, "", alog}, RemoteApply{b.meta.replica, "", most}});
  BOOST_TEST(r.c()->digest_sums().Total() != p.c()->digest_sums().Total());
}

BOOST_AUTO_TEST_CASE(a_key_written_twice_in_one_group_has_one_change) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 11);
  CommitAndCheck(a, {Put("k", 1)}, {});
  std::string first;
  BOOST_REQUIRE(a.store->GetState("k", &first).ok());
  const Digest d1 = storage::KeyDigest("k", first);
  BOOST_TEST(a.c()->digest_sums().Total() == d1);

  CommitAndCheck(a, {Put("k", 2), Add("n", 1), Put("k", 3), Add("n", 2)}, {});
  const auto& changes = a.c()->last_digest_changes();
  BOOST_REQUIRE_EQUAL(changes.size(), 2u);  // k, then n: first-write order
  BOOST_TEST(changes[0].bucket == storage::BucketOf("k"));
  BOOST_TEST(changes[0].before == d1);
  std::string k_now, n_now;
  BOOST_REQUIRE(a.store->GetState("k", &k_now).ok());
  BOOST_REQUIRE(a.store->GetState("n", &n_now).ok());
  BOOST_TEST(changes[0].after == storage::KeyDigest("k", k_now));
  BOOST_TEST(changes[1].bucket == storage::BucketOf("n"));
  BOOST_TEST(changes[1].before.zero());
  BOOST_TEST(changes[1].after == storage::KeyDigest("n", n_now));

  // A group whose every op fails writes no digest and changes nothing.
  const BucketSums before = a.c()->digest_sums();
  CommitAndCheck(a, {Add("k", 1) /* 409 */, Delete("missing") /* 404 */}, {});
  BOOST_TEST(a.c()->last_digest_changes().empty());
  BOOST_TEST(a.c()->digest_sums() == before);
}

BOOST_AUTO_TEST_CASE(applier_mirrors_the_sums) {
  TempDir tmp;
  Node a(tmp.sub("a"), "a", 11);
  CommitAndCheck(a, {Add("n", 1), Put("r", "x"), SetUpdate("s", {"e"}, {})}, {});
  const auto alog = a.Log(1);

  Node b(tmp.sub("b"), "b", 22);
  CommitAndCheck(b, {Put("own", 1)}, {});
  b.Reopen();
  b.committer.reset();  // the Applier owns its own Committer
  node::Applier applier(b.store.get(), b.clock.get(), b.meta);
  // From start: the sums loaded with the metadata.
  BOOST_TEST(applier.DigestSums() == b.meta.digest_sums);
  BOOST_TEST(applier.StateDigest() == b.meta.digest_sums.Total());
  BOOST_TEST(!applier.StateDigest().zero());
  applier.Start();

  std::promise<RemoteResult> p1;
  auto f1 = p1.get_future();
  applier.SubmitRemote(RemoteApply{a.meta.replica, "", alog},
                       [&p1](RemoteResult r) { p1.set_value(std::move(r)); });
  RemoteResult r1 = Await(f1);
  BOOST_REQUIRE_MESSAGE(r1.status.ok(), r1.status.ToString());
  std::promise<WriteResult> p2;
  auto f2 = p2.get_future();
  applier.Submit(Add("n", 10), [&p2](WriteResult r) { p2.set_value(std::move(r)); });
  BOOST_REQUIRE(Await(f2).ok);

  BucketSums expected = SumsOf(FromStates(*b.store));
  BOOST_TEST(applier.DigestSums() == expected);
  BOOST_TEST(applier.StateDigest() == expected.Total());
  BOOST_TEST(LoadSums(*b.store) == expected);

  // A failed group changes nothing.
  b.store->TEST_FailWritesWithNoSpace(1);
  std::promise<WriteResult> p3;
  auto f3 = p3.get_future();
  applier.Submit(Add("n", 5), [&p3](WriteResult r) { p3.set_value(std::move(r)); });
  WriteResult w3 = Await(f3);
  BOOST_TEST(!w3.ok);
  BOOST_TEST(w3.error.http == 507);
  BOOST_TEST(applier.DigestSums() == expected);
  BOOST_TEST(applier.StateDigest() == expected.Total());
  applier.Stop();
  BOOST_TEST(LoadSums(*b.store) == expected);
}

// An index built under other placement scopes (a restored backup is
// indexed with every key in the default scope) is built again under the
// node's, once; the committer's sums then match what is loaded.
BOOST_AUTO_TEST_CASE(an_index_of_other_scopes_is_built_again) {
  TempDir tmp;
  const std::string dir = tmp.sub("a");
  {
    Node n(dir, "a", 1);
    std::vector<WriteResult> results;
    const std::vector<Operation> ops = {meridian::testing::Put("eu/x", 1),
                                        meridian::testing::Put("k", 2)};
    n.c()->Commit({&ops[0], &ops[1]}, &results, {}, nullptr);
    BOOST_REQUIRE(results[0].ok && results[1].ok);
  }
  std::unique_ptr<storage::Store> store;
  BOOST_REQUIRE(storage::Store::Open(dir, storage::StoreOptions{}, &store).ok());
  std::vector<std::string> scopes;
  BOOST_REQUIRE(store->DigestScopes(&scopes).ok());
  BOOST_TEST((scopes == std::vector<std::string>{""}));

  storage::DigestScoping scoping;
  scoping.name = std::string("eu/\0", 4);
  scoping.scope_of = [](std::string_view key) {
    return key.rfind("eu/", 0) == 0 ? std::string("eu/") : std::string();
  };
  storage::DigestIndexReport report;
  BOOST_REQUIRE(storage::EnsureDigestIndex(store.get(), &report, scoping).ok());
  BOOST_TEST(report.built);
  BOOST_TEST(report.rescoped);
  BOOST_TEST(report.keys == 2u);
  BOOST_REQUIRE(store->DigestScopes(&scopes).ok());
  BOOST_TEST((scopes == std::vector<std::string>{"", "eu/"}));
  storage::NodeMeta meta;
  bool fresh = true;
  BOOST_REQUIRE(storage::LoadNodeMeta(*store, "a", &meta, &fresh).ok());
  std::string bytes;
  BOOST_REQUIRE(store->GetState("eu/x", &bytes).ok());
  BOOST_TEST(meta.placed_sums.at("eu/").Total() == storage::KeyDigest("eu/x", bytes));
  BOOST_REQUIRE(store->GetState("k", &bytes).ok());
  BOOST_TEST(meta.digest_sums.Total() == storage::KeyDigest("k", bytes));

  // Under the same scopes: nothing to do. Back to none: built again.
  BOOST_REQUIRE(storage::EnsureDigestIndex(store.get(), &report, scoping).ok());
  BOOST_TEST(!report.built);
  BOOST_REQUIRE(storage::EnsureDigestIndex(store.get(), &report).ok());
  BOOST_TEST(report.rescoped);
  BOOST_REQUIRE(store->DigestScopes(&scopes).ok());
  BOOST_TEST((scopes == std::vector<std::string>{""}));
}
