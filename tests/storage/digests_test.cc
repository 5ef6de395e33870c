// The anti-entropy digest leaves (storage/digests.h): golden SHA-256
// vectors for KeyDigest and BucketOf (computed independently with
// `printf ... | sha256sum`), 128-bit wrap-around arithmetic, BucketSums,
// the 'd' records on a real LevelDB (ScanBucket, LoadBucketSums, the store's
// ScanDigests bounds, poisoned batches), and EnsureDigestIndex on data
// dirs written without the index, twice, and after an unfinished build.
#define BOOST_TEST_MODULE digests
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <ostream>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "storage/digests.h"
#include "storage/leveldb_store.h"
#include "storage/node_meta.h"
#include "tests/support/temp_dir.h"

using namespace meridian;
using namespace meridian::storage;
using meridian::testing::TempDir;

namespace meridian {
std::ostream& boost_test_print_type(std::ostream& os, Status::Code code) {
  return os << static_cast<int>(code);
}
namespace storage {
std::ostream& boost_test_print_type(std::ostream& os, const Digest& d) { return os << d.Hex(); }
std::ostream& boost_test_print_type(std::ostream& os, const BucketSums& s) {
  return os << "sums with total " << s.Total().Hex();
}
}  // namespace storage
}  // namespace meridian

namespace {

constexpr uint64_t kAllOnes = ~uint64_t{0};

Digest D(uint64_t hi, uint64_t lo) {
  Digest d;
  d.hi = hi;
  d.lo = lo;
  return d;
}

std::unique_ptr<Store> OpenStore(const std::string& dir) {
  std::unique_ptr<Store> store;
  Status s = Store::Open(dir, StoreOptions{}, &store);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  return store;
}

void MustWrite(Store* store, WriteBatch* batch) {
  Status s = store->Write(batch);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
}

BucketSums MustLoad(const Store& store, std::string_view scope = "") {
  BucketSums sums;
  Status s = LoadBucketSums(store, scope, &sums);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  return sums;
}

// The sums recomputed from every state in the store (not from the index).
BucketSums FromStates(const Store& store) {
  BucketSums sums;
  std::vector<Store::KeyState> page;
  std::string after;
  for (int pages = 0; pages < 10000; ++pages) {
    Status s = store.Scan("", after, 500, &page);
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
    for (const auto& ks : page) sums.Replace(BucketOf(ks.key), Digest(), KeyDigest(ks.key, ks.envelope));
    if (page.size() < 500) return sums;
    after = page.back().key;
  }
  BOOST_FAIL("too many pages");
  return sums;
}

// Where sums differ, for failure messages.
std::string Diff(const BucketSums& a, const BucketSums& b) {
  std::string out;
  int shown = 0;
  for (uint32_t i = 0; i < kBuckets && shown < 5; ++i) {
    if (a.at(i) != b.at(i)) {
      out += " bucket " + std::to_string(i) + ": " + a.at(i).Hex() + " vs " + b.at(i).Hex();
      ++shown;
    }
  }
  return out.empty() ? "equal" : out;
}

std::string Key(int i) { return "key/" + std::to_string(i); }
std::string Value(int i, int round) {
  return "envelope-" + std::to_string(i) + "-" + std::to_string(round) + std::string(i % 37, 'x');
}

}  // namespace

// ---------------------------------------------------------------------------
// Hashes

BOOST_AUTO_TEST_CASE(golden_vectors) {
  // printf '\x00\x00\x00\x01kv' | sha256sum
  //   dcebe451747903d86e81a0c6769287a23fc43a1027f9fcb4ef73e25801c1298c
  BOOST_TEST(KeyDigest("k", "v") == D(0xdcebe451747903d8, 0x6e81a0c6769287a2));
  BOOST_TEST(KeyDigest("k", "v").Hex() == "dcebe451747903d86e81a0c6769287a2");
  // printf '\x00\x00\x00\x0busers/alice\x01\x00\xff\x92payload' | sha256sum
  //   7442b4a07daa97d944fff672bad46b84550e1722d63d0464d660198d4f3c1100
  const std::string env("\x01\x00\xff\x92payload", 11);
  BOOST_TEST(KeyDigest("users/alice", env).Hex() == "7442b4a07daa97d944fff672bad46b84");
  // printf '\x00\x00\x00\x00' | sha256sum
  //   df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b81119
  BOOST_TEST(KeyDigest("", "").Hex() == "df3f619804a92fdb4057192dc43dd748");

  // The first 12 bits of SHA-256(key).
  // printf 'k' | sha256sum           -> 8254c329...
  BOOST_TEST(BucketOf("k") == 0x825u);
  // printf 'users/alice' | sha256sum -> 60aa4bbe...
  BOOST_TEST(BucketOf("users/alice") == 0x60au);
  // printf '' | sha256sum            -> e3b0c442...
  BOOST_TEST(BucketOf("") == 0xe3bu);
}

BOOST_AUTO_TEST_CASE(digests_are_deterministic_and_separate_key_from_envelope) {
  BOOST_TEST(KeyDigest("a", "bc") == KeyDigest("a", "bc"));
  // The length prefix keeps (key, envelope) splits apart.
  BOOST_TEST(KeyDigest("ab", "c") != KeyDigest("a", "bc"));
  BOOST_TEST(KeyDigest("a", "b") != KeyDigest("a", "c"));
  BOOST_TEST(KeyDigest("a", "b") != KeyDigest("b", "b"));
  // A bucket depends on the key alone.
  BOOST_TEST(BucketOf("same") == BucketOf(std::string("same")));

  // Buckets stay in range and spread: 20,000 keys over 4,096 buckets
  // leave about 31 empty on average (4096 * e^-4.88).
  std::set<uint32_t> seen;
  for (int i = 0; i < 20000; ++i) {
    uint32_t b = BucketOf(Key(i));
    BOOST_REQUIRE_LT(b, kBuckets);
    seen.insert(b);
  }
  BOOST_TEST(seen.size() > 3900u);
}

BOOST_AUTO_TEST_CASE(digests_from_several_threads_agree) {
  // Each thread has its own hashing context.
  const Digest expected = KeyDigest("k", "v");
  std::vector<Digest> got(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t) {
    threads.emplace_back([&got, t] {
      for (int i = 0; i < 200; ++i) got[t] = KeyDigest("k", "v");
    });
  }
  for (auto& th : threads) th.join();
  for (const Digest& d : got) BOOST_TEST(d == expected);
}

// ---------------------------------------------------------------------------
// Arithmetic and encodings

BOOST_AUTO_TEST_CASE(arithmetic_wraps_modulo_2_to_128) {
  // Carry from lo into hi, and out of hi.
  BOOST_TEST(D(0, kAllOnes) + D(0, 1) == D(1, 0));
  BOOST_TEST(D(5, kAllOnes) + D(7, 2) == D(13, 1));
  BOOST_TEST(D(kAllOnes, kAllOnes) + D(0, 1) == D(0, 0));
  BOOST_TEST(D(kAllOnes, 0) + D(1, 0) == D(0, 0));
  // Borrow from hi into lo, and below zero.
  BOOST_TEST(D(1, 0) - D(0, 1) == D(0, kAllOnes));
  BOOST_TEST(D(0, 0) - D(0, 1) == D(kAllOnes, kAllOnes));
  BOOST_TEST(D(13, 1) - D(7, 2) == D(5, kAllOnes));
  BOOST_TEST(D(0, 0).zero());
  BOOST_TEST(!D(0, 1).zero());
  BOOST_TEST(!D(1, 0).zero());

  // A group: a + b - b == a, commutative, associative, on random values
  // (many of which carry).
  std::mt19937_64 rng(42);
  for (int i = 0; i < 1000; ++i) {
    Digest a = D(rng(), rng()), b = D(rng(), rng()), c = D(rng(), rng());
    BOOST_REQUIRE(a + b - b == a);
    BOOST_REQUIRE(a + b == b + a);
    BOOST_REQUIRE((a + b) + c == a + (b + c));
    BOOST_REQUIRE(a - a == Digest());
    Digest x = a;
    x += b;
    x -= a;
    BOOST_REQUIRE(x == b);
  }
}

BOOST_AUTO_TEST_CASE(bytes_and_hex) {
  Digest d = D(0x0102030405060708, 0x090a0b0c0d0e0f10);
  BOOST_TEST(d.ToBytes() == std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10"));
  BOOST_TEST(d.Hex() == "0102030405060708090a0b0c0d0e0f10");
  BOOST_TEST(Digest().Hex() == std::string(32, '0'));
  BOOST_TEST(D(kAllOnes, kAllOnes).Hex() == std::string(32, 'f'));
  Digest back;
  BOOST_TEST(Digest::FromBytes(d.ToBytes(), &back));
  BOOST_TEST(back == d);
  Digest untouched = D(1, 2);
  BOOST_TEST(!Digest::FromBytes(std::string(15, 'a'), &untouched));
  BOOST_TEST(!Digest::FromBytes(std::string(17, 'a'), &untouched));
  BOOST_TEST(!Digest::FromBytes("", &untouched));
  BOOST_TEST(untouched == D(1, 2));
}

BOOST_AUTO_TEST_CASE(bucket_sums_replace_and_total) {
  BucketSums sums;
  BOOST_TEST(sums.Total() == Digest());
  BOOST_TEST(sums == BucketSums());
  const Digest a = KeyDigest("a", "1"), a2 = KeyDigest("a", "2"), b = KeyDigest("b", "1");
  sums.Replace(7, Digest(), a);  // a new key
  BOOST_TEST(sums.at(7) == a);
  BOOST_TEST(sums.Total() == a);
  sums.Replace(7, Digest(), b);  // a second key of the same bucket
  BOOST_TEST(sums.at(7) == a + b);
  sums.Replace(7, a, a2);  // a key's state changes
  BOOST_TEST(sums.at(7) == a2 + b);
  sums.Replace(kBuckets - 1, Digest(), a);
  BOOST_TEST(sums.Total() == a2 + b + a);
  BOOST_TEST(sums != BucketSums());
  // Another order of the same changes gives the same sums.
  BucketSums other;
  other.Replace(kBuckets - 1, Digest(), a);
  other.Replace(7, Digest(), a2);
  other.Replace(7, Digest(), b);
  BOOST_TEST(other == sums);
  // Undoing every change gives zero everywhere.
  sums.Replace(7, a2, Digest());
  sums.Replace(7, b, Digest());
  sums.Replace(kBuckets - 1, a, Digest());
  BOOST_TEST(sums == BucketSums());
  BOOST_CHECK_THROW(sums.at(kBuckets), std::out_of_range);
  BOOST_CHECK_THROW(sums.Replace(kBuckets, a, b), std::out_of_range);
}

// ---------------------------------------------------------------------------
// Records in the store

BOOST_AUTO_TEST_CASE(scan_bucket_and_load_sums_on_leveldb) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  // 3,000 keys in one batch each of state and digest, as the committer
  // writes them, and the expected bucket contents.
  std::map<uint32_t, std::map<std::string, Digest>> expected;
  BucketSums sums;
  WriteBatch batch;
  for (int i = 0; i < 3000; ++i) {
    const std::string k = Key(i), v = Value(i, 0);
    const Digest d = KeyDigest(k, v);
    const uint32_t b = BucketOf(k);
    batch.PutState(k, v);
    batch.PutDigest("", b, k, d);
    expected[b][k] = d;
    sums.Replace(b, Digest(), d);
  }
  // Another scope's records are kept apart.
  batch.PutDigest("gdpr", BucketOf(Key(0)), Key(0), D(1, 1));
  batch.PutDigest("gdpr", 0, "z", D(2, 2));
  MustWrite(store.get(), &batch);

  BOOST_TEST(MustLoad(*store) == sums, Diff(MustLoad(*store), sums));
  BOOST_TEST(MustLoad(*store) == FromStates(*store));
  BucketSums gdpr = MustLoad(*store, "gdpr");
  BOOST_TEST(gdpr.Total() == D(3, 3));
  BOOST_TEST(gdpr.at(0) == D(2, 2));

  // Every bucket lists exactly its keys, in key order.
  size_t listed = 0;
  for (uint32_t b = 0; b < kBuckets; ++b) {
    std::vector<std::pair<std::string, Digest>> got;
    Status s = ScanBucket(*store, "", b, &got);
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
    const auto& want = expected[b];
    BOOST_REQUIRE_EQUAL(got.size(), want.size());
    auto it = want.begin();
    for (const auto& [k, d] : got) {
      BOOST_REQUIRE_EQUAL(k, it->first);
      BOOST_REQUIRE(d == it->second);
      ++it;
    }
    listed += got.size();
  }
  BOOST_TEST(listed == 3000u);
  std::vector<std::pair<std::string, Digest>> none;
  BOOST_TEST(ScanBucket(*store, "", kBuckets, &none).IsInvalidArgument());

  // An overwrite replaces the record; a deleted record leaves the bucket.
  const std::string k0 = Key(0);
  const uint32_t b0 = BucketOf(k0);
  batch.Clear();
  batch.PutState(k0, "new");
  batch.PutDigest("", b0, k0, KeyDigest(k0, "new"));
  batch.DeleteState(Key(1));
  batch.DeleteDigest("", BucketOf(Key(1)), Key(1));
  MustWrite(store.get(), &batch);
  sums.Replace(b0, expected[b0][k0], KeyDigest(k0, "new"));
  sums.Replace(BucketOf(Key(1)), expected[BucketOf(Key(1))][Key(1)], Digest());
  BOOST_TEST(MustLoad(*store) == sums, Diff(MustLoad(*store), sums));
  BOOST_TEST(MustLoad(*store) == FromStates(*store));

  // The sums survive a reopen (they are rebuilt from the records).
  store.reset();
  store = OpenStore(tmp.path());
  BOOST_TEST(MustLoad(*store) == sums);
}

BOOST_AUTO_TEST_CASE(scan_digests_bounds) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  WriteBatch batch;
  batch.PutDigest("", 0, "a", D(0, 1));
  batch.PutDigest("", 0, "b", D(0, 2));
  batch.PutDigest("", 1, "a", D(0, 3));
  batch.PutDigest("", 300, std::string("k\0\xff", 3), D(0, 4));  // bucket above one byte
  batch.PutDigest("", kBuckets - 1, "", D(0, 5));                  // the empty key, last bucket
  batch.PutDigest("s", 0, "a", D(9, 9));
  batch.PutDigest("", 0, "c", D(0, 6));
  batch.DeleteDigest("", 0, "c");
  MustWrite(store.get(), &batch);

  auto render = [](const std::vector<Store::DigestRecord>& recs) {
    std::string out;
    for (const auto& r : recs) {
      if (!out.empty()) out += ",";
      out += std::to_string(r.bucket) + ":" + std::to_string(r.key.size()) + ":" +
             std::to_string(r.digest.lo);
    }
    return out;
  };
  std::vector<Store::DigestRecord> out;
  BOOST_REQUIRE(store->ScanDigests("", 0, kBuckets, nullptr, 100, &out).ok());
  BOOST_TEST(render(out) == "0:1:1,0:1:2,1:1:3,300:3:4,4095:0:5");
  BOOST_TEST(out[3].key == std::string("k\0\xff", 3));
  BOOST_REQUIRE(store->ScanDigests("", 1, 301, nullptr, 100, &out).ok());
  BOOST_TEST(render(out) == "1:1:3,300:3:4");
  BOOST_REQUIRE(store->ScanDigests("", 0, kBuckets, nullptr, 2, &out).ok());
  BOOST_TEST(render(out) == "0:1:1,0:1:2");
  Store::DigestRecord after;
  after.bucket = 0;
  after.key = "a";
  BOOST_REQUIRE(store->ScanDigests("", 0, kBuckets, &after, 100, &out).ok());
  BOOST_TEST(render(out) == "0:1:2,1:1:3,300:3:4,4095:0:5");
  after.key = "b";  // the last of bucket 0: the next page starts at bucket 1
  BOOST_REQUIRE(store->ScanDigests("", 0, 1, &after, 100, &out).ok());
  BOOST_TEST(render(out).empty());
  BOOST_REQUIRE(store->ScanDigests("", 0, kBuckets, nullptr, 0, &out).ok());
  BOOST_TEST(out.empty());
  BOOST_REQUIRE(store->ScanDigests("s", 0, kBuckets, nullptr, 100, &out).ok());
  BOOST_TEST(render(out) == "0:1:9");
  BOOST_TEST(store->ScanDigests(std::string("s\0", 2), 0, kBuckets, nullptr, 100, &out)
                 .IsInvalidArgument());
}

BOOST_AUTO_TEST_CASE(bad_digest_records_poison_the_batch) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  for (int which = 0; which < 3; ++which) {
    BOOST_TEST_CONTEXT("case " << which) {
      WriteBatch batch;
      batch.PutState("k", "v");
      batch.PutDigest("", BucketOf("k"), "k", KeyDigest("k", "v"));
      if (which == 0) batch.PutDigest(std::string("a\0b", 3), 0, "k", D(1, 1));
      if (which == 1) batch.DeleteDigest(std::string("\0", 1), 0, "k");
      if (which == 2) batch.PutDigest("", kBuckets, "k", D(1, 1));
      Status s = store->Write(&batch);
      BOOST_TEST(s.IsInvalidArgument(), s.ToString());
      // None of the batch was applied.
      std::string v;
      BOOST_TEST(store->GetState("k", &v).IsNotFound());
      BOOST_TEST(MustLoad(*store) == BucketSums());
      batch.Clear();  // lifts the poison
      batch.PutDigest("", 0, "k", D(0, 0));
      BOOST_TEST(store->Write(&batch).ok());
      batch.Clear();
      batch.DeleteDigest("", 0, "k");
      BOOST_TEST(store->Write(&batch).ok());
    }
  }
}

// ---------------------------------------------------------------------------
// EnsureDigestIndex

namespace {

// Writes states the way a data dir from before the index holds them (no
// digest record, no "digest_index" mark): keys 0..n-1, then a second round
// overwriting every third key. Returns the sums incremental maintenance
// would have kept: each write replacing the key's old digest.
BucketSums WriteOldStates(Store* store, int n) {
  BucketSums sums;
  std::map<std::string, Digest> current;
  for (int round = 0; round < 2; ++round) {
    WriteBatch batch;
    for (int i = 0; i < n; ++i) {
      if (round == 1 && i % 3 != 0) continue;
      const std::string k = Key(i), v = Value(i, round);
      batch.PutState(k, v);
      const Digest d = KeyDigest(k, v);
      auto it = current.find(k);
      sums.Replace(BucketOf(k), it == current.end() ? Digest() : it->second, d);
      current[k] = d;
      if (batch.Count() >= 500) {
        MustWrite(store, &batch);
        batch.Clear();
      }
    }
    MustWrite(store, &batch);
  }
  return sums;
}

bool IndexBuilt(const Store& store) {
  bool built = false;
  Status s = DigestIndexBuilt(store, &built);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  return built;
}

}  // namespace

BOOST_AUTO_TEST_CASE(ensure_builds_the_index_of_an_old_data_dir_once) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  const int kKeys = 2345;  // several build batches (1,000 keys) and scan pages
  const BucketSums incremental = WriteOldStates(store.get(), kKeys);
  BOOST_TEST(!IndexBuilt(*store));
  BOOST_TEST(MustLoad(*store) == BucketSums());  // nothing indexed yet

  // Without the index the node's metadata is refused, not loaded with
  // sums that miss every key.
  NodeMeta meta;
  bool fresh = false;
  Status s = LoadNodeMeta(*store, "n", &meta, &fresh);
  BOOST_TEST(s.IsFailedPrecondition(), s.ToString());
  BOOST_TEST(s.message().find("EnsureDigestIndex") != std::string::npos, s.message());

  DigestIndexReport report;
  const uint64_t writes_before = store->writes();
  s = EnsureDigestIndex(store.get(), &report);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(report.built);
  BOOST_TEST(report.keys == uint64_t(kKeys));
  BOOST_TEST(report.stale_removed == 0u);
  BOOST_TEST(store->writes() - writes_before >= 3u);  // bounded batches, not one
  BOOST_TEST(IndexBuilt(*store));
  BOOST_TEST(MustLoad(*store) == incremental, Diff(MustLoad(*store), incremental));
  BOOST_TEST(MustLoad(*store) == FromStates(*store));

  // A second time it is a no-op that writes nothing.
  const uint64_t writes_after = store->writes();
  s = EnsureDigestIndex(store.get(), &report);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(!report.built);
  BOOST_TEST(report.keys == 0u);
  BOOST_TEST(store->writes() == writes_after);
  BOOST_TEST(EnsureDigestIndex(store.get()).ok());  // a null report is fine

  // Now the metadata loads, with the same sums (no identity yet: fresh).
  s = LoadNodeMeta(*store, "n", &meta, &fresh);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(fresh);
  BOOST_TEST(meta.digest_sums == incremental);
}

BOOST_AUTO_TEST_CASE(an_interrupted_build_ends_right) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  const BucketSums incremental = WriteOldStates(store.get(), 1500);

  // What an unfinished build (or an older format) may leave: right records
  // for some keys, wrong digests for others, records for keys that no
  // longer have a state, and no mark.
  WriteBatch batch;
  for (int i = 0; i < 700; ++i) {
    const std::string k = Key(i);
    Digest d = KeyDigest(k, Value(i, 0));  // stale for every third key (round 1)
    if (i % 5 == 0) d = D(0xbad, static_cast<uint64_t>(i));
    batch.PutDigest("", BucketOf(k), k, d);
  }
  for (int i = 0; i < 40; ++i) {
    const std::string gone = "gone/" + std::to_string(i);
    batch.PutDigest("", BucketOf(gone), gone, D(7, static_cast<uint64_t>(i)));
  }
  MustWrite(store.get(), &batch);
  BOOST_TEST(!IndexBuilt(*store));
  BOOST_TEST(MustLoad(*store) != incremental);

  // The first attempt fails on a full disk before finishing: still not
  // built, and the next start finishes it.
  store->TEST_FailWritesWithNoSpace(1);
  Status s = EnsureDigestIndex(store.get());
  BOOST_TEST(Store::IsNoSpace(s), s.ToString());
  BOOST_TEST(!IndexBuilt(*store));

  store.reset();
  store = OpenStore(tmp.path());
  DigestIndexReport report;
  s = EnsureDigestIndex(store.get(), &report);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(report.built);
  BOOST_TEST(report.keys == 1500u);
  BOOST_TEST(report.stale_removed == 740u);
  BOOST_TEST(IndexBuilt(*store));
  BOOST_TEST(MustLoad(*store) == incremental, Diff(MustLoad(*store), incremental));
  BOOST_TEST(MustLoad(*store) == FromStates(*store));
  // No record of a key without a state is left.
  std::vector<std::pair<std::string, Digest>> listed;
  const std::string gone = "gone/3";
  BOOST_REQUIRE(ScanBucket(*store, "", BucketOf(gone), &listed).ok());
  for (const auto& [k, d] : listed) BOOST_TEST(k.rfind("gone/", 0) != 0, k);
}

BOOST_AUTO_TEST_CASE(a_mark_of_another_format_counts_as_absent) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  const BucketSums incremental = WriteOldStates(store.get(), 50);
  WriteBatch batch;
  batch.PutMeta(kMetaDigestIndex, "\x01\x02");  // format 2: not this build's
  MustWrite(store.get(), &batch);
  BOOST_TEST(!IndexBuilt(*store));
  batch.Clear();
  batch.PutMeta(kMetaDigestIndex, "garbage");
  MustWrite(store.get(), &batch);
  BOOST_TEST(!IndexBuilt(*store));
  DigestIndexReport report;
  BOOST_REQUIRE(EnsureDigestIndex(store.get(), &report).ok());
  BOOST_TEST(report.built);
  BOOST_TEST(IndexBuilt(*store));
  BOOST_TEST(MustLoad(*store) == incremental);
}

BOOST_AUTO_TEST_CASE(a_fresh_identity_needs_no_build) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  NodeMeta meta;
  bool fresh = false;
  // An empty data dir loads (fresh, zero sums) without any index.
  Status s = LoadNodeMeta(*store, "n", &meta, &fresh);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(fresh);
  BOOST_TEST(meta.digest_sums == BucketSums());
  // EnsureDigestIndex leaves an empty data dir alone: no write at all.
  DigestIndexReport report;
  BOOST_REQUIRE(EnsureDigestIndex(store.get(), &report).ok());
  BOOST_TEST(!report.built);
  BOOST_TEST(store->writes() == 0u);
  BOOST_TEST(!IndexBuilt(*store));

  WriteBatch batch;
  InitIdentity(crdt::ReplicaId{"n", 3}, &batch);
  MustWrite(store.get(), &batch);
  BOOST_TEST(IndexBuilt(*store));
  BOOST_REQUIRE(EnsureDigestIndex(store.get(), &report).ok());
  BOOST_TEST(!report.built);

  // A state written with its record shows in the loaded sums.
  batch.Clear();
  batch.PutState("k", "v");
  batch.PutDigest("", BucketOf("k"), "k", KeyDigest("k", "v"));
  MustWrite(store.get(), &batch);
  s = LoadNodeMeta(*store, "n", &meta, &fresh);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(!fresh);
  BOOST_TEST(meta.digest_sums.Total() == KeyDigest("k", "v"));
  BOOST_TEST(meta.digest_sums.at(BucketOf("k")) == KeyDigest("k", "v"));

  // An identity without the mark (a data dir from before the index) is
  // refused until the index is built.
  TempDir tmp2;
  auto old = OpenStore(tmp2.path());
  batch.Clear();
  InitIdentity(crdt::ReplicaId{"n", 4}, &batch);
  MustWrite(old.get(), &batch);
  batch.Clear();
  batch.PutMeta(kMetaDigestIndex, "");  // not a valid mark
  MustWrite(old.get(), &batch);
  s = LoadNodeMeta(*old, "n", &meta, &fresh);
  BOOST_TEST(s.IsFailedPrecondition(), s.ToString());
  BOOST_REQUIRE(EnsureDigestIndex(old.get(), &report).ok());
  BOOST_TEST(report.built);  // an identity: not an empty data dir
  BOOST_TEST(report.keys == 0u);
  s = LoadNodeMeta(*old, "n", &meta, &fresh);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(!fresh);
  BOOST_TEST(meta.digest_sums == BucketSums());
}
