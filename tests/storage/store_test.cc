// The storage layer against its contract in storage/leveldb_store.h and
// storage/node_meta.h, on a real LevelDB in a fresh directory per test:
// batches, persistence across reopen, scan and log key ordering, metadata
// records, the full-disk error and the reopen that recovers from it, and
// the refusals of Open.
#define BOOST_TEST_MODULE store
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "crdt/codec.h"
#include "storage/digests.h"
#include "storage/leveldb_store.h"
#include "storage/node_meta.h"
#include "tests/support/temp_dir.h"

using namespace meridian;
using namespace meridian::storage;
using meridian::testing::TempDir;
namespace fs = std::filesystem;

namespace meridian {
std::ostream& boost_test_print_type(std::ostream& os, Status::Code code) {
  return os << static_cast<int>(code);
}
}  // namespace meridian

namespace {

std::unique_ptr<Store> OpenStore(const std::string& dir, StoreOptions options = {}) {
  std::unique_ptr<Store> store;
  Status s = Store::Open(dir, options, &store);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_REQUIRE(store != nullptr);
  return store;
}

void MustWrite(Store* store, WriteBatch* batch) {
  Status s = store->Write(batch);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
}

void PutStates(Store* store, const std::vector<std::pair<std::string, std::string>>& kvs) {
  WriteBatch batch;
  for (const auto& [k, v] : kvs) batch.PutState(k, v);
  MustWrite(store, &batch);
}

std::string StateOrMissing(const Store& store, std::string_view key) {
  std::string v;
  Status s = store.GetState(key, &v);
  if (s.IsNotFound()) return "<missing>";
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  return v;
}

// Renders a scan as "k1=v1,k2=v2" with non-printable bytes as \xNN.
std::string Render(const std::vector<Store::KeyState>& states) {
  auto esc = [](const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
      if (c >= 0x20 && c < 0x7f) {
        out.push_back(static_cast<char>(c));
      } else {
        static const char kHex[] = "0123456789abcdef";
        out += "\\x";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
      }
    }
    return out;
  };
  std::string out;
  for (const auto& ks : states) {
    if (!out.empty()) out += ",";
    out += esc(ks.key) + "=" + esc(ks.envelope);
  }
  return out;
}

std::string ScanRender(const Store& store, std::string_view prefix, std::string_view after,
                       size_t limit) {
  std::vector<Store::KeyState> out;
  Status s = store.Scan(prefix, after, limit, &out);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  return Render(out);
}

std::vector<uint64_t> LogSeqs(const Store& store, std::string_view scope, uint64_t from,
                              size_t limit) {
  std::vector<LogEntry> entries;
  Status s = store.ReadLog(scope, from, limit, &entries);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  std::vector<uint64_t> seqs;
  for (const auto& e : entries) {
    BOOST_CHECK_EQUAL(e.scope, std::string(scope));
    seqs.push_back(e.seq);
  }
  return seqs;
}

uint64_t LastSeq(const Store& store, std::string_view scope) {
  uint64_t seq = 12345;
  Status s = store.LastLogSeq(scope, &seq);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  return seq;
}

LogEntry Entry(std::string scope, uint64_t seq) {
  LogEntry e;
  e.scope = std::move(scope);
  e.seq = seq;
  e.key = "k" + std::to_string(seq);
  e.delta = std::string("d\0", 2) + std::to_string(seq);
  return e;
}

crdt::ReplicaId Replica(std::string node, uint64_t incarnation) {
  crdt::ReplicaId r;
  r.node = std::move(node);
  r.incarnation = incarnation;
  return r;
}

const std::string kNul("\0", 1);

}  // namespace

// ---------------------------------------------------------------------------
// Batches

BOOST_AUTO_TEST_CASE(batch_is_invisible_until_written_then_all_visible) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());

  WriteBatch batch;
  batch.PutState("a", "env-a");
  batch.PutState("b", "env-b");
  batch.PutMeta("m1", "meta-1");
  batch.PutConflict("a", "conflict-a");
  batch.AppendLog(Entry("", 1));
  BOOST_CHECK_EQUAL(batch.Count(), 5);
  BOOST_CHECK_GT(batch.ApproximateSize(), 0u);

  BOOST_CHECK_EQUAL(StateOrMissing(*store, "a"), "<missing>");
  std::string v;
  BOOST_CHECK(store->GetMeta("m1", &v).IsNotFound());
  BOOST_CHECK_EQUAL(LastSeq(*store, ""), 0u);

  const uint64_t writes_before = store->writes();
  MustWrite(store.get(), &batch);
  BOOST_CHECK_EQUAL(store->writes(), writes_before + 1);

  BOOST_CHECK_EQUAL(StateOrMissing(*store, "a"), "env-a");
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "b"), "env-b");
  BOOST_REQUIRE(store->GetMeta("m1", &v).ok());
  BOOST_CHECK_EQUAL(v, "meta-1");
  BOOST_REQUIRE(store->GetConflict("a", &v).ok());
  BOOST_CHECK_EQUAL(v, "conflict-a");
  BOOST_CHECK(store->GetConflict("b", &v).IsNotFound());
  BOOST_CHECK_EQUAL(LastSeq(*store, ""), 1u);

  // The prefixes keep kinds apart: the same name in another kind is absent.
  BOOST_CHECK(store->GetMeta("a", &v).IsNotFound());
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "m1"), "<missing>");

  // Within a batch the later record wins; deletes apply.
  WriteBatch second;
  second.PutState("a", "env-a2");
  second.DeleteState("b");
  second.PutState("c", "first");
  second.DeleteState("c");
  second.DeleteConflict("a");
  MustWrite(store.get(), &second);
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "a"), "env-a2");
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "b"), "<missing>");
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "c"), "<missing>");
  BOOST_CHECK(store->GetConflict("a", &v).IsNotFound());

  // Clear empties the batch; an empty batch does not reach LevelDB.
  second.Clear();
  BOOST_CHECK_EQUAL(second.Count(), 0);
  const uint64_t writes_mid = store->writes();
  MustWrite(store.get(), &second);
  BOOST_CHECK_EQUAL(store->writes(), writes_mid);
}

BOOST_AUTO_TEST_CASE(conflict_index_scans_by_prefix_and_audit_records_stay_per_key) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  WriteBatch batch;
  for (const char* k : {"doc/a", "doc/b", "doc/c", "stock/x", "do"}) batch.PutConflict(k, k);
  batch.PutState("doc/z", "a state, not a conflict");
  // Audit keys are length-prefixed: "k" and "k\0x" never share records.
  batch.PutAudit("k", "2", "second");
  batch.PutAudit("k", "1", "first");
  batch.PutAudit(std::string("k\0x", 3), "1", "other key");
  batch.PutAudit("kk", "1", "longer key");
  MustWrite(store.get(), &batch);

  std::vector<Store::KeyValue> out;
  BOOST_REQUIRE(store->ScanConflicts("doc/", "", 10, &out).ok());
  BOOST_REQUIRE_EQUAL(out.size(), 3u);
  BOOST_CHECK_EQUAL(out[0].key, "doc/a");
  BOOST_CHECK_EQUAL(out[2].value, "doc/c");
  BOOST_REQUIRE(store->ScanConflicts("doc/", "doc/a", 1, &out).ok());
  BOOST_REQUIRE_EQUAL(out.size(), 1u);
  BOOST_CHECK_EQUAL(out[0].key, "doc/b");
  BOOST_REQUIRE(store->ScanConflicts("", "", 10, &out).ok());
  BOOST_CHECK_EQUAL(out.size(), 5u);
  BOOST_REQUIRE(store->ScanConflicts("", "stock/x", 10, &out).ok());
  BOOST_CHECK(out.empty());

  BOOST_REQUIRE(store->ScanAudit("k", 10, &out).ok());
  BOOST_REQUIRE_EQUAL(out.size(), 2u);
  BOOST_CHECK_EQUAL(out[0].key, "1");
  BOOST_CHECK_EQUAL(out[0].value, "first");
  BOOST_CHECK_EQUAL(out[1].value, "second");
  BOOST_REQUIRE(store->ScanAudit("kk", 10, &out).ok());
  BOOST_REQUIRE_EQUAL(out.size(), 1u);
  BOOST_CHECK_EQUAL(out[0].value, "longer key");
  BOOST_REQUIRE(store->ScanAudit("none", 10, &out).ok());
  BOOST_CHECK(out.empty());
}

BOOST_AUTO_TEST_CASE(failed_batch_applies_nothing) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  PutStates(store.get(), {{"keep", "old"}});

  // A batch failing as on a full disk: none of its records appear.
  WriteBatch batch;
  batch.PutState("keep", "new");
  batch.PutState("x", "x");
  batch.AppendLog(Entry("", 1));
  store->TEST_FailWritesWithNoSpace(1);
  BOOST_CHECK(Store::IsNoSpace(store->Write(&batch)));
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "keep"), "old");
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "x"), "<missing>");
  BOOST_CHECK_EQUAL(LastSeq(*store, ""), 0u);

  // The same batch goes through afterwards, whole.
  MustWrite(store.get(), &batch);
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "keep"), "new");
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "x"), "x");
  BOOST_CHECK_EQUAL(LastSeq(*store, ""), 1u);
}

BOOST_AUTO_TEST_CASE(scope_with_nul_poisons_the_whole_batch) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());

  WriteBatch batch;
  batch.PutState("a", "x");
  batch.AppendLog(Entry("eu" + kNul + "west", 1));
  batch.AppendLog(Entry("eu", 1));
  Status s = store->Write(&batch);
  BOOST_CHECK_EQUAL(s.code(), Status::Code::kInvalidArgument);
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "a"), "<missing>");
  BOOST_CHECK_EQUAL(LastSeq(*store, "eu"), 0u);
  BOOST_CHECK_EQUAL(store->writes(), 0u);

  WriteBatch deleting;
  deleting.DeleteLog(kNul, 1);
  BOOST_CHECK_EQUAL(store->Write(&deleting).code(), Status::Code::kInvalidArgument);

  // Clear lifts the poison.
  batch.Clear();
  batch.PutState("a", "x");
  MustWrite(store.get(), &batch);
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "a"), "x");

  std::vector<LogEntry> entries;
  uint64_t seq = 0;
  BOOST_CHECK_EQUAL(store->ReadLog("a" + kNul, 1, 10, &entries).code(),
                    Status::Code::kInvalidArgument);
  BOOST_CHECK_EQUAL(store->LastLogSeq(kNul, &seq).code(), Status::Code::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// Persistence

BOOST_AUTO_TEST_CASE(data_survives_close_and_reopen) {
  for (bool sync : {true, false}) {
    BOOST_TEST_CONTEXT("sync=" << sync) {
      TempDir tmp;
      StoreOptions options;
      options.sync = sync;
      {
        auto store = OpenStore(tmp.path(), options);
        BOOST_CHECK_EQUAL(store->sync(), sync);
        BOOST_CHECK_EQUAL(store->dir(), tmp.path());
        WriteBatch batch;
        batch.PutState("k1", "v1");
        batch.PutState(std::string("k\0\xff", 3), std::string("\0\x01", 2));
        batch.PutMeta("name", "value");
        batch.PutConflict("k1", "c1");
        for (uint64_t seq = 1; seq <= 3; ++seq) batch.AppendLog(Entry("scope", seq));
        MustWrite(store.get(), &batch);
        WriteBatch del;
        del.DeleteState("k1");
        del.PutState("k2", "v2");
        MustWrite(store.get(), &del);
      }
      auto store = OpenStore(tmp.path(), options);
      BOOST_CHECK_EQUAL(StateOrMissing(*store, "k1"), "<missing>");
      BOOST_CHECK_EQUAL(StateOrMissing(*store, "k2"), "v2");
      BOOST_CHECK(StateOrMissing(*store, std::string("k\0\xff", 3)) == std::string("\0\x01", 2));
      std::string v;
      BOOST_REQUIRE(store->GetMeta("name", &v).ok());
      BOOST_CHECK_EQUAL(v, "value");
      BOOST_REQUIRE(store->GetConflict("k1", &v).ok());
      BOOST_CHECK_EQUAL(v, "c1");
      BOOST_CHECK_EQUAL(LastSeq(*store, "scope"), 3u);
      std::vector<LogEntry> entries;
      BOOST_REQUIRE(store->ReadLog("scope", 2, 10, &entries).ok());
      BOOST_REQUIRE_EQUAL(entries.size(), 2u);
      BOOST_CHECK_EQUAL(entries[0].seq, 2u);
      BOOST_CHECK_EQUAL(entries[0].key, "k2");
      BOOST_CHECK(entries[0].delta == std::string("d\0", 2) + "2");
    }
  }
}

BOOST_AUTO_TEST_CASE(approximate_state_bytes_counts_states_on_disk) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  BOOST_CHECK_EQUAL(store->ApproximateStateBytes(), 0u);
  // Enough to overflow the memtable into table files.
  const std::string value(1000, 'v');
  for (int b = 0; b < 12; ++b) {
    WriteBatch batch;
    for (int i = 0; i < 1000; ++i) {
      // Varying bytes so that compression cannot shrink it all away.
      std::string v = value;
      for (size_t j = 0; j < v.size(); j += 7) v[j] = static_cast<char>((b * 1000 + i + j) * 31);
      batch.PutState("key" + std::to_string(b * 1000 + i), v);
    }
    MustWrite(store.get(), &batch);
  }
  BOOST_CHECK_GT(store->ApproximateStateBytes(), 1000000u);
}

// ---------------------------------------------------------------------------
// Scan

BOOST_AUTO_TEST_CASE(scan_prefix_after_limit) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  const std::string ab0 = "ab" + kNul;
  const std::string abff = "ab\xff";
  const std::string abffff = "ab\xff\xff";
  PutStates(store.get(), {{"", "E"},
                          {"a", "1"},
                          {"ab", "2"},
                          {ab0, "3"},
                          {"abc", "4"},
                          {abff, "5"},
                          {abffff, "6"},
                          {"b", "7"},
                          {"\xff", "8"},
                          {"\xff\xff", "9"}});
  // Records of the other kinds, around the state range, never show up.
  WriteBatch other;
  other.PutMeta("a", "meta");
  other.PutConflict("a", "conflict");
  other.AppendLog(Entry("a", 1));
  MustWrite(store.get(), &other);

  // Unsigned byte order: 0x00 < 'c' < 0xff.
  const std::string all =
      "=E,a=1,ab=2,ab\\x00=3,abc=4,ab\\xff=5,ab\\xff\\xff=6,b=7,\\xff=8,\\xff\\xff=9";
  BOOST_CHECK_EQUAL(ScanRender(*store, "", "", 100), all);
  BOOST_CHECK_EQUAL(ScanRender(*store, "", "", 3), "=E,a=1,ab=2");
  BOOST_CHECK_EQUAL(ScanRender(*store, "", "", 0), "");

  BOOST_CHECK_EQUAL(ScanRender(*store, "ab", "", 100),
                    "ab=2,ab\\x00=3,abc=4,ab\\xff=5,ab\\xff\\xff=6");
  BOOST_CHECK_EQUAL(ScanRender(*store, "ab", "ab", 100),
                    "ab\\x00=3,abc=4,ab\\xff=5,ab\\xff\\xff=6");
  BOOST_CHECK_EQUAL(ScanRender(*store, "ab", ab0, 100), "abc=4,ab\\xff=5,ab\\xff\\xff=6");
  // `after` absent from the store.
  BOOST_CHECK_EQUAL(ScanRender(*store, "ab", "ab\x01", 2), "abc=4,ab\\xff=5");
  BOOST_CHECK_EQUAL(ScanRender(*store, "ab", abff, 100), "ab\\xff\\xff=6");
  BOOST_CHECK_EQUAL(ScanRender(*store, "ab", abffff, 100), "");
  BOOST_CHECK_EQUAL(ScanRender(*store, ab0, "", 100), "ab\\x00=3");
  BOOST_CHECK_EQUAL(ScanRender(*store, abff, "", 100), "ab\\xff=5,ab\\xff\\xff=6");
  BOOST_CHECK_EQUAL(ScanRender(*store, "\xff", "", 100), "\\xff=8,\\xff\\xff=9");
  BOOST_CHECK_EQUAL(ScanRender(*store, "\xff\xff", "", 100), "\\xff\\xff=9");
  BOOST_CHECK_EQUAL(ScanRender(*store, "\xff\xff\xff", "", 100), "");
  BOOST_CHECK_EQUAL(ScanRender(*store, "zz", "", 100), "");

  // `after` outside the prefix: before it means from the start, past it
  // means nothing.
  BOOST_CHECK_EQUAL(ScanRender(*store, "b", "a", 100), "b=7");
  BOOST_CHECK_EQUAL(ScanRender(*store, "ab", "b", 100), "");
  BOOST_CHECK_EQUAL(ScanRender(*store, "", "\xff\xff", 100), "");
  BOOST_CHECK_EQUAL(ScanRender(*store, "", "\xff\xff\xff", 100), "");
  BOOST_CHECK_EQUAL(ScanRender(*store, "", "b", 100), "\\xff=8,\\xff\\xff=9");

  // Paging by the last key returned visits every key exactly once. (The
  // empty key cannot be paged past, as an empty `after` means "from the
  // start"; start after 0x00, the smallest non-empty key, instead.)
  std::vector<Store::KeyState> pages;
  std::string after = kNul;
  for (int guard = 0; guard < 20; ++guard) {
    std::vector<Store::KeyState> page;
    BOOST_REQUIRE(store->Scan("", after, 3, &page).ok());
    if (page.empty()) break;
    BOOST_CHECK_LE(page.size(), 3u);
    after = page.back().key;
    pages.insert(pages.end(), page.begin(), page.end());
  }
  BOOST_CHECK_EQUAL("=E," + Render(pages), all);

  // The output is replaced, not appended to.
  std::vector<Store::KeyState> out(5);
  BOOST_REQUIRE(store->Scan("b", "", 10, &out).ok());
  BOOST_CHECK_EQUAL(Render(out), "b=7");
}

// ---------------------------------------------------------------------------
// Delta log

BOOST_AUTO_TEST_CASE(log_append_read_last_across_scopes) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  // "eu" is a byte prefix of "eu-west", and "" of everything: the 0x00
  // after the scope keeps their logs apart.
  const std::vector<uint64_t> big = {
      255, 256, 257, 65535, 65536, 65537, 1u << 24, uint64_t{1} << 32, uint64_t{1} << 56};
  {
    WriteBatch batch;
    for (uint64_t seq = 1; seq <= 300; ++seq) batch.AppendLog(Entry("", seq));
    for (uint64_t seq : big) batch.AppendLog(Entry("eu", seq));
    for (uint64_t seq = 1; seq <= 5; ++seq) batch.AppendLog(Entry("eu-west", seq));
    batch.AppendLog(Entry("\xff", 7));
    MustWrite(store.get(), &batch);
  }

  BOOST_CHECK_EQUAL(LastSeq(*store, ""), 300u);
  BOOST_CHECK_EQUAL(LastSeq(*store, "eu"), uint64_t{1} << 56);
  BOOST_CHECK_EQUAL(LastSeq(*store, "eu-west"), 5u);
  BOOST_CHECK_EQUAL(LastSeq(*store, "\xff"), 7u);
  BOOST_CHECK_EQUAL(LastSeq(*store, "e"), 0u);
  BOOST_CHECK_EQUAL(LastSeq(*store, "ap"), 0u);
  BOOST_CHECK_EQUAL(LastSeq(*store, "zz"), 0u);        // between two scopes
  BOOST_CHECK_EQUAL(LastSeq(*store, "\xff\xff"), 0u);  // past every key

  // Numeric order, not byte-count order.
  BOOST_CHECK(LogSeqs(*store, "eu", 0, 100) == big);
  BOOST_CHECK(LogSeqs(*store, "eu", 256, 3) == std::vector<uint64_t>({256, 257, 65535}));
  BOOST_CHECK(LogSeqs(*store, "eu", 65536, 100) ==
              std::vector<uint64_t>(big.begin() + 4, big.end()));
  BOOST_CHECK(LogSeqs(*store, "eu", (uint64_t{1} << 56) + 1, 100).empty());
  BOOST_CHECK(LogSeqs(*store, "eu", 0, 0).empty());

  std::vector<uint64_t> expected;
  for (uint64_t seq = 250; seq <= 300; ++seq) expected.push_back(seq);
  BOOST_CHECK(LogSeqs(*store, "", 250, 1000) == expected);
  BOOST_CHECK_EQUAL(LogSeqs(*store, "", 1, 1000).size(), 300u);
  BOOST_CHECK(LogSeqs(*store, "eu-west", 4, 10) == std::vector<uint64_t>({4, 5}));
  BOOST_CHECK(LogSeqs(*store, "e", 0, 10).empty());

  std::vector<LogEntry> entries;
  BOOST_REQUIRE(store->ReadLog("eu", 65535, 1, &entries).ok());
  BOOST_REQUIRE_EQUAL(entries.size(), 1u);
  BOOST_CHECK_EQUAL(entries[0].scope, "eu");
  BOOST_CHECK_EQUAL(entries[0].key, "k65535");
  BOOST_CHECK(entries[0].delta == std::string("d\0", 2) + "65535");

  // The largest seq sits exactly on LastLogSeq's seek key.
  WriteBatch top;
  top.AppendLog(Entry("eu", ~uint64_t{0}));
  MustWrite(store.get(), &top);
  BOOST_CHECK_EQUAL(LastSeq(*store, "eu"), ~uint64_t{0});
  BOOST_CHECK_EQUAL(LastSeq(*store, "eu-west"), 5u);
}

BOOST_AUTO_TEST_CASE(delete_log_truncates) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  {
    WriteBatch batch;
    for (uint64_t seq = 1; seq <= 600; ++seq) batch.AppendLog(Entry("s", seq));
    batch.AppendLog(Entry("t", 1));
    MustWrite(store.get(), &batch);
  }
  {
    WriteBatch batch;
    for (uint64_t seq = 1; seq <= 550; ++seq) batch.DeleteLog("s", seq);
    MustWrite(store.get(), &batch);
  }
  std::vector<uint64_t> seqs = LogSeqs(*store, "s", 0, 1000);
  BOOST_REQUIRE_EQUAL(seqs.size(), 50u);
  BOOST_CHECK_EQUAL(seqs.front(), 551u);
  BOOST_CHECK_EQUAL(seqs.back(), 600u);
  BOOST_CHECK_EQUAL(LastSeq(*store, "s"), 600u);

  {
    WriteBatch batch;
    batch.DeleteLog("s", 600);
    batch.DeleteLog("s", 599);
    MustWrite(store.get(), &batch);
  }
  BOOST_CHECK_EQUAL(LastSeq(*store, "s"), 598u);
  {
    WriteBatch batch;
    for (uint64_t seq = 551; seq <= 598; ++seq) batch.DeleteLog("s", seq);
    MustWrite(store.get(), &batch);
  }
  BOOST_CHECK_EQUAL(LastSeq(*store, "s"), 0u);
  BOOST_CHECK(LogSeqs(*store, "s", 0, 10).empty());
  BOOST_CHECK_EQUAL(LastSeq(*store, "t"), 1u);
}

// GetStates reads sorted keys with one iterator: each key's state or
// none, exactly as GetState would, whatever other records lie around them.
BOOST_AUTO_TEST_CASE(get_states_reads_several_keys_like_get_state) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  std::vector<std::string> env;
  std::vector<bool> found;
  BOOST_REQUIRE(store->GetStates({}, &env, &found).ok());
  BOOST_TEST(env.empty());
  BOOST_TEST(found.empty());
  BOOST_REQUIRE(store->GetStates({"a", "b"}, &env, &found).ok());
  BOOST_TEST((found == std::vector<bool>{false, false}));
  PutStates(store.get(), {{"b", "vb"}, {"c", "vc"}, {"c\x01", "vc1"}, {"e", "ve"}});
  {
    WriteBatch batch;  // records of other kinds on either side of the states
    batch.PutMeta("x", "meta");
    batch.AppendLog(Entry("", 1));
    MustWrite(store.get(), &batch);
  }
  const std::vector<std::string_view> keys = {"a", "b", "bb", "c", "c\x01", "d", "e", "f", "zz"};
  BOOST_REQUIRE(store->GetStates(keys, &env, &found).ok());
  BOOST_REQUIRE(env.size() == keys.size());
  BOOST_REQUIRE(found.size() == keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string want = StateOrMissing(*store, keys[i]);
    BOOST_TEST(found[i] == (want != "<missing>"), keys[i]);
    BOOST_TEST((found[i] ? env[i] : std::string("<missing>")) == want, keys[i]);
  }
  BOOST_TEST((found == std::vector<bool>{false, true, false, true, true, false, true, false, false}));
  // Deleted and overwritten states, also after a compaction.
  {
    WriteBatch batch;
    batch.DeleteState("c");
    batch.PutState("e", "ve2");
    MustWrite(store.get(), &batch);
  }
  for (int round = 0; round < 2; ++round) {
    BOOST_REQUIRE(store->GetStates({"b", "c", "e"}, &env, &found).ok());
    BOOST_TEST((found == std::vector<bool>{true, false, true}));
    BOOST_TEST(env[0] == "vb");
    BOOST_TEST(env[2] == "ve2");
    BOOST_REQUIRE(store->CompactAll().ok());
  }
}

uint64_t FirstSeq(const Store& store, std::string_view scope) {
  uint64_t seq = 12345;
  Status s = store.FirstLogSeq(scope, &seq);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  return seq;
}

size_t Truncate(Store* store, std::string_view scope, uint64_t through, size_t limit) {
  size_t removed = 12345;
  Status s = store->TruncateLog(scope, through, limit, &removed);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  return removed;
}

BOOST_AUTO_TEST_CASE(truncate_log_drops_the_oldest_entries_of_one_scope) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  BOOST_CHECK_EQUAL(FirstSeq(*store, "s"), 0u);
  BOOST_CHECK_EQUAL(Truncate(store.get(), "s", 100, 10), 0u);
  {
    WriteBatch batch;
    for (uint64_t seq = 1; seq <= 300; ++seq) batch.AppendLog(Entry("s", seq));
    batch.AppendLog(Entry("", 1));
    batch.AppendLog(Entry("s2", 1));
    MustWrite(store.get(), &batch);
  }
  BOOST_CHECK_EQUAL(FirstSeq(*store, "s"), 1u);
  // At most `limit` per call, oldest first, never past through_seq.
  BOOST_CHECK_EQUAL(Truncate(store.get(), "s", 250, 100), 100u);
  BOOST_CHECK_EQUAL(FirstSeq(*store, "s"), 101u);
  BOOST_CHECK_EQUAL(Truncate(store.get(), "s", 250, 100), 100u);
  BOOST_CHECK_EQUAL(Truncate(store.get(), "s", 250, 100), 50u);
  BOOST_CHECK_EQUAL(Truncate(store.get(), "s", 250, 100), 0u);
  BOOST_CHECK_EQUAL(FirstSeq(*store, "s"), 251u);
  BOOST_CHECK_EQUAL(LastSeq(*store, "s"), 300u);
  BOOST_CHECK_EQUAL(LogSeqs(*store, "s", 0, 1000).size(), 50u);
  // Other scopes, including one whose name extends this one, are untouched.
  BOOST_CHECK_EQUAL(FirstSeq(*store, ""), 1u);
  BOOST_CHECK_EQUAL(FirstSeq(*store, "s2"), 1u);
  // Past the end: the scope empties; a later append starts it again.
  BOOST_CHECK_EQUAL(Truncate(store.get(), "s", ~uint64_t{0}, 1000), 50u);
  BOOST_CHECK_EQUAL(FirstSeq(*store, "s"), 0u);
  BOOST_CHECK_EQUAL(LastSeq(*store, "s"), 0u);
  {
    WriteBatch batch;
    batch.AppendLog(Entry("s", 301));
    MustWrite(store.get(), &batch);
  }
  BOOST_CHECK_EQUAL(FirstSeq(*store, "s"), 301u);
  size_t removed = 0;
  BOOST_CHECK_EQUAL(store->TruncateLog(kNul, 5, 10, &removed).code(),
                    Status::Code::kInvalidArgument);
  // Survives a compaction and a reopen.
  BOOST_REQUIRE(store->CompactAll().ok());
  BOOST_CHECK_EQUAL(FirstSeq(*store, "s"), 301u);
  store.reset();
  store = OpenStore(tmp.path());
  BOOST_CHECK_EQUAL(FirstSeq(*store, "s"), 301u);
  BOOST_CHECK_EQUAL(FirstSeq(*store, "s2"), 1u);
}

BOOST_AUTO_TEST_CASE(log_value_encoding) {
  const std::string key("k\0y", 3);
  const std::string delta("\x00\xff\x10", 3);
  std::string bytes = EncodeLogValue(key, delta);
  BOOST_CHECK_EQUAL(static_cast<uint8_t>(bytes[0]), 1u);  // version byte
  std::string k, d;
  BOOST_REQUIRE(DecodeLogValue(bytes, &k, &d).ok());
  BOOST_CHECK(k == key);
  BOOST_CHECK(d == delta);

  BOOST_CHECK(DecodeLogValue("", &k, &d).IsCorruption());
  BOOST_CHECK(DecodeLogValue(bytes.substr(0, bytes.size() - 1), &k, &d).IsCorruption());
  std::string other_version = bytes;
  other_version[0] = 2;
  BOOST_CHECK(DecodeLogValue(other_version, &k, &d).IsCorruption());
  crdt::Encoder wrong_shape(1);
  wrong_shape.Array(2);
  wrong_shape.Bin("k");  // key must be a str
  wrong_shape.Bin("d");
  BOOST_CHECK(DecodeLogValue(wrong_shape.bytes(), &k, &d).IsCorruption());
}

// ---------------------------------------------------------------------------
// Node metadata

BOOST_AUTO_TEST_CASE(node_meta_fresh_then_round_trip) {
  TempDir tmp;
  const AppliedVector applied = {
      {{Replica("eu-1", 1), ""}, 42},
      {{Replica("eu-1", 1), "gdpr"}, 7},
      {{Replica("us-1", 3), ""}, uint64_t{1} << 40},
  };
  {
    auto store = OpenStore(tmp.path());
    NodeMeta meta;
    meta.hlc_bound = 99;
    bool fresh = false;
    BOOST_REQUIRE(LoadNodeMeta(*store, "eu-1", &meta, &fresh).ok());
    BOOST_CHECK(fresh);
    BOOST_CHECK_EQUAL(meta.hlc_bound, 0u);
    BOOST_CHECK(meta.applied.empty());

    WriteBatch batch;
    InitIdentity(Replica("eu-1", 1), &batch);
    PutHlcBound(crdt::MakeHlc(1732550400123, 9), &batch);
    PutApplied(applied, &batch);
    MustWrite(store.get(), &batch);
  }
  auto store = OpenStore(tmp.path());
  NodeMeta meta;
  bool fresh = true;
  Status s = LoadNodeMeta(*store, "eu-1", &meta, &fresh);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_CHECK(!fresh);
  BOOST_CHECK(meta.replica == Replica("eu-1", 1));
  BOOST_CHECK_EQUAL(meta.hlc_bound, crdt::MakeHlc(1732550400123, 9));
  BOOST_CHECK(meta.applied == applied);

  // Later records replace earlier ones.
  WriteBatch batch;
  PutHlcBound(crdt::MakeHlc(1732550400999, 0), &batch);
  PutApplied({}, &batch);
  MustWrite(store.get(), &batch);
  BOOST_REQUIRE(LoadNodeMeta(*store, "eu-1", &meta, &fresh).ok());
  BOOST_CHECK_EQUAL(meta.hlc_bound, crdt::MakeHlc(1732550400999, 0));
  BOOST_CHECK(meta.applied.empty());
}

// The retention horizon's records (gossip/protocol.h): retired
// incarnations, the last contact and the retired mark.
BOOST_AUTO_TEST_CASE(node_meta_horizon_records_round_trip_and_refuse_bad_bytes) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  WriteBatch batch;
  InitIdentity(Replica("n", 5), &batch);
  MustWrite(store.get(), &batch);
  NodeMeta meta;
  bool fresh = true;
  BOOST_REQUIRE(LoadNodeMeta(*store, "n", &meta, &fresh).ok());
  BOOST_CHECK(meta.expired.empty());
  BOOST_CHECK_EQUAL(meta.last_contact_ms, 0u);
  BOOST_CHECK(!meta.retired);

  const std::map<std::string, uint64_t> expired = {{"a", 3}, {"b", uint64_t{1} << 50}};
  WriteBatch more;
  PutExpired(expired, &more);
  PutLastContact(1732550400123, &more);
  PutRetired(&more);
  MustWrite(store.get(), &more);
  BOOST_REQUIRE(LoadNodeMeta(*store, "n", &meta, &fresh).ok());
  BOOST_CHECK(meta.expired == expired);
  BOOST_CHECK_EQUAL(meta.last_contact_ms, 1732550400123u);
  BOOST_CHECK(meta.retired);

  // Out of order or not a list: refused with the record named.
  crdt::Encoder e(1);
  e.Array(2);
  crdt::EncodeReplica(Replica("b", 1), &e);
  crdt::EncodeReplica(Replica("a", 1), &e);
  WriteBatch bad;
  bad.PutMeta(kMetaExpired, e.Take());
  MustWrite(store.get(), &bad);
  Status s = LoadNodeMeta(*store, "n", &meta, &fresh);
  BOOST_CHECK(s.IsCorruption());
  BOOST_CHECK(s.ToString().find("expired incarnations") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(node_meta_identity_only_reads_zero_and_empty) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  WriteBatch batch;
  InitIdentity(Replica("n", 5), &batch);
  MustWrite(store.get(), &batch);
  NodeMeta meta;
  meta.hlc_bound = 1;
  meta.applied[{Replica("x", 1), ""}] = 1;
  bool fresh = true;
  BOOST_REQUIRE(LoadNodeMeta(*store, "n", &meta, &fresh).ok());
  BOOST_CHECK(!fresh);
  BOOST_CHECK(meta.replica == Replica("n", 5));
  BOOST_CHECK_EQUAL(meta.hlc_bound, 0u);
  BOOST_CHECK(meta.applied.empty());
}

BOOST_AUTO_TEST_CASE(node_meta_refuses_another_nodes_data_dir) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  WriteBatch batch;
  InitIdentity(Replica("eu-1", 2), &batch);
  MustWrite(store.get(), &batch);

  NodeMeta meta;
  bool fresh = true;
  Status s = LoadNodeMeta(*store, "us-1", &meta, &fresh);
  BOOST_CHECK(s.IsFailedPrecondition());
  BOOST_CHECK_MESSAGE(s.message().find("eu-1") != std::string::npos, s.message());
  BOOST_CHECK_MESSAGE(s.message().find("us-1") != std::string::npos, s.message());
  BOOST_CHECK_MESSAGE(s.message().find(tmp.path()) != std::string::npos, s.message());
  // A node id that is a prefix of the stored one is another node too.
  BOOST_CHECK(LoadNodeMeta(*store, "eu-", &meta, &fresh).IsFailedPrecondition());
}

BOOST_AUTO_TEST_CASE(node_meta_corrupt_records_are_reported) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  WriteBatch batch;
  batch.PutMeta(kMetaIdentity, "\x01garbage");
  MustWrite(store.get(), &batch);
  NodeMeta meta;
  bool fresh = true;
  Status s = LoadNodeMeta(*store, "n", &meta, &fresh);
  BOOST_CHECK(s.IsCorruption());
  BOOST_CHECK_MESSAGE(s.message().find("identity") != std::string::npos, s.message());

  batch.Clear();
  InitIdentity(Replica("n", 1), &batch);
  batch.PutMeta(kMetaHlcBound, "\x01\xa1x");  // a str, not a uint
  MustWrite(store.get(), &batch);
  s = LoadNodeMeta(*store, "n", &meta, &fresh);
  BOOST_CHECK(s.IsCorruption());
  BOOST_CHECK_MESSAGE(s.message().find("hlc") != std::string::npos, s.message());
}

BOOST_AUTO_TEST_CASE(applied_vector_encoding) {
  AppliedVector empty;
  AppliedVector out = {{{Replica("z", 1), ""}, 1}};
  BOOST_REQUIRE(DecodeApplied(EncodeApplied(empty), &out).ok());
  BOOST_CHECK(out.empty());

  const AppliedVector v = {{{Replica("a", 1), ""}, 0},
                           {{Replica("a", 1), std::string("s\0", 2)}, 3},
                           {{Replica("a", 2), ""}, ~uint64_t{0}}};
  const std::string bytes = EncodeApplied(v);
  BOOST_CHECK_EQUAL(static_cast<uint8_t>(bytes[0]), 1u);
  BOOST_REQUIRE(DecodeApplied(bytes, &out).ok());
  BOOST_CHECK(out == v);
  BOOST_CHECK(EncodeApplied(out) == bytes);

  auto entry = [](crdt::Encoder* e, const char* node, uint64_t inc, const char* scope,
                  uint64_t seq) {
    e->Array(3);
    e->Array(2);
    e->Str(node);
    e->Uint(inc);
    e->Str(scope);
    e->Uint(seq);
  };
  crdt::Encoder descending(1);
  descending.Array(2);
  entry(&descending, "b", 1, "", 1);
  entry(&descending, "a", 1, "", 1);
  BOOST_CHECK(DecodeApplied(descending.bytes(), &out).IsCorruption());
  crdt::Encoder duplicate(1);
  duplicate.Array(2);
  entry(&duplicate, "a", 1, "", 1);
  entry(&duplicate, "a", 1, "", 2);
  BOOST_CHECK(DecodeApplied(duplicate.bytes(), &out).IsCorruption());
  crdt::Encoder empty_node(1);
  empty_node.Array(1);
  entry(&empty_node, "", 1, "", 1);
  BOOST_CHECK(DecodeApplied(empty_node.bytes(), &out).IsCorruption());
  BOOST_CHECK(DecodeApplied(bytes.substr(1), &out).IsCorruption());
  // A failed decode leaves *out as it was.
  BOOST_CHECK(out == v);
}

// ---------------------------------------------------------------------------
// Full disk and recovery

BOOST_AUTO_TEST_CASE(is_no_space_checks_code_and_text) {
  BOOST_CHECK(Store::IsNoSpace(Status::IOError("no space left on device: x")));
  BOOST_CHECK(Store::IsNoSpace(Status::IOError("/d/000005.log: No space left on device")));
  BOOST_CHECK(!Store::IsNoSpace(Status::OK()));
  BOOST_CHECK(!Store::IsNoSpace(Status::IOError("permission denied")));
  BOOST_CHECK(!Store::IsNoSpace(Status::NotFound("no space")));
  BOOST_CHECK(!Store::IsNoSpace(Status::Corruption("no space left on device")));
}

BOOST_AUTO_TEST_CASE(no_space_hook_then_reopen_and_resume) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  PutStates(store.get(), {{"a", "1"}});
  const uint64_t writes_before = store->writes();

  store->TEST_FailWritesWithNoSpace(3);
  for (int i = 0; i < 3; ++i) {
    WriteBatch batch;
    batch.PutState("b", "2");
    Status s = store->Write(&batch);
    BOOST_CHECK(Store::IsNoSpace(s));
    BOOST_CHECK_MESSAGE(s.message().find(tmp.path()) != std::string::npos, s.message());
    // Reads keep working meanwhile.
    BOOST_CHECK_EQUAL(StateOrMissing(*store, "a"), "1");
    BOOST_CHECK_EQUAL(ScanRender(*store, "", "", 10), "a=1");
  }
  BOOST_CHECK_EQUAL(store->writes(), writes_before);  // none reached LevelDB
  BOOST_CHECK_EQUAL(store->reopens(), 0u);

  PutStates(store.get(), {{"b", "2"}});
  BOOST_CHECK_EQUAL(store->reopens(), 1u);
  BOOST_CHECK_EQUAL(store->writes(), writes_before + 1);
  BOOST_CHECK_EQUAL(ScanRender(*store, "", "", 10), "a=1,b=2");
  PutStates(store.get(), {{"c", "3"}});
  BOOST_CHECK_EQUAL(store->reopens(), 1u);  // only after an error

  store.reset();
  store = OpenStore(tmp.path());
  BOOST_CHECK_EQUAL(ScanRender(*store, "", "", 10), "a=1,b=2,c=3");
}

BOOST_AUTO_TEST_CASE(reads_stay_correct_while_writes_fail_and_reopen) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  PutStates(store.get(), {{"stable", "s"}});

  std::atomic<bool> stop{false};
  std::atomic<int> bad_reads{0};
  std::atomic<int> reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        std::string v;
        Status s = store->GetState("stable", &v);
        std::vector<Store::KeyState> out;
        Status s2 = store->Scan("st", "", 10, &out);
        uint64_t seq = 0;
        Status s3 = store->LastLogSeq("", &seq);
        if (!s.ok() || v != "s" || !s2.ok() || out.size() != 1 || !s3.ok()) ++bad_reads;
        ++reads;
      }
    });
  }
  int failed = 0;
  int ok = 0;
  for (int i = 0; i < 200; ++i) {
    if (i % 4 == 0) store->TEST_FailWritesWithNoSpace(1);
    WriteBatch batch;
    batch.PutState("n" + std::to_string(i), "v");
    Status s = store->Write(&batch);
    if (s.ok()) {
      ++ok;
    } else {
      BOOST_CHECK(Store::IsNoSpace(s));
      ++failed;
    }
  }
  // Let the readers overlap the last reopen for certain.
  while (reads.load() < 100) std::this_thread::yield();
  stop.store(true);
  for (auto& t : readers) t.join();

  BOOST_CHECK_EQUAL(failed, 50);
  BOOST_CHECK_EQUAL(ok, 150);
  BOOST_CHECK_EQUAL(store->reopens(), 50u);
  BOOST_CHECK_EQUAL(bad_reads.load(), 0);
  std::vector<Store::KeyState> out;
  BOOST_REQUIRE(store->Scan("n", "", 1000, &out).ok());
  BOOST_CHECK_EQUAL(out.size(), 150u);
}

// A failed fsync puts LevelDB in a state where it refuses every later
// write; only the reopen gets writes going again.
BOOST_AUTO_TEST_CASE(real_fsync_failure_recovers_through_reopen) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());  // sync = true: every write fsyncs
  PutStates(store.get(), {{"before", "1"}});

  store->TEST_SetDiskFull(true);
  WriteBatch batch;
  batch.PutState("during", "2");
  Status s = store->Write(&batch);
  BOOST_CHECK_MESSAGE(Store::IsNoSpace(s), s.ToString());
  BOOST_CHECK_MESSAGE(s.message().find(tmp.path()) != std::string::npos, s.message());
  const uint64_t writes_after_failure = store->writes();

  // Still full: refused before reaching LevelDB, and the old handle is kept
  // for reads.
  s = store->Write(&batch);
  BOOST_CHECK_MESSAGE(Store::IsNoSpace(s), s.ToString());
  BOOST_CHECK_EQUAL(store->writes(), writes_after_failure);
  BOOST_CHECK_EQUAL(store->reopens(), 0u);
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "before"), "1");

  // Space returns.
  store->TEST_SetDiskFull(false);
  WriteBatch after;
  after.PutState("after", "3");
  MustWrite(store.get(), &after);
  BOOST_CHECK_EQUAL(store->reopens(), 1u);
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "before"), "1");
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "after"), "3");
  // "during" was never acknowledged: it may or may not be there.
  PutStates(store.get(), {{"later", "4"}});
  BOOST_CHECK_EQUAL(store->reopens(), 1u);

  store.reset();
  store = OpenStore(tmp.path());
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "before"), "1");
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "after"), "3");
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "later"), "4");
}

// A batch that defers its sync is visible when Write returns, without an
// fsync; Sync then syncs LevelDB's log, also across memtable switches and
// after a compaction has deleted the logs it switched from.
BOOST_AUTO_TEST_CASE(deferred_writes_are_visible_at_once_and_sync_covers_every_log) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());  // sync = true
  const uint64_t syncs_before = store->syncs();
  WriteBatch batch;
  batch.DeferSync();
  batch.PutState("a", "1");
  MustWrite(store.get(), &batch);
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "a"), "1");
  BOOST_CHECK_EQUAL(store->syncs(), syncs_before);
  Status s = store->Sync();
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_CHECK_EQUAL(store->syncs(), syncs_before + 1);

  // 12 MiB through a 4 MiB memtable: LevelDB switches to a new log file
  // at least twice.
  const std::string big(128 << 10, 'x');
  for (int i = 0; i < 96; ++i) {
    WriteBatch b;
    b.DeferSync();
    b.PutState("big/" + std::to_string(i), big);
    MustWrite(store.get(), &b);
  }
  s = store->Sync();
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_REQUIRE(store->CompactAll().ok());  // the old logs go
  WriteBatch last;
  last.DeferSync();
  last.PutState("z", "2");
  MustWrite(store.get(), &last);
  s = store->Sync();
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_CHECK_EQUAL(store->syncs(), syncs_before + 3);

  store.reset();
  store = OpenStore(tmp.path());
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "a"), "1");
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "big/95").size(), big.size());
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "z"), "2");
}

// A failed Sync says so ("no space" for ENOSPC), and the next Write
// reopens the database, as after a failed write.
BOOST_AUTO_TEST_CASE(a_failed_sync_is_reported_and_the_next_write_reopens) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  store->TEST_SetDiskFull(true);
  WriteBatch batch;
  batch.DeferSync();
  batch.PutState("during", "1");
  MustWrite(store.get(), &batch);  // no fsync: the page cache takes it
  Status s = store->Sync();
  BOOST_CHECK_MESSAGE(Store::IsNoSpace(s), s.ToString());
  BOOST_CHECK_MESSAGE(s.message().find(tmp.path()) != std::string::npos, s.message());

  store->TEST_SetDiskFull(false);
  BOOST_CHECK_EQUAL(store->reopens(), 0u);
  PutStates(store.get(), {{"after", "2"}});
  BOOST_CHECK_EQUAL(store->reopens(), 1u);
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "after"), "2");
  s = store->Sync();
  BOOST_CHECK_MESSAGE(s.ok(), s.ToString());
}

// A store that does not sync never fsyncs, Sync included.
BOOST_AUTO_TEST_CASE(sync_is_a_no_op_on_a_store_that_does_not_sync) {
  TempDir tmp;
  StoreOptions options;
  options.sync = false;
  auto store = OpenStore(tmp.path(), options);
  store->TEST_SetDiskFull(true);  // would fail any fsync
  PutStates(store.get(), {{"a", "1"}});
  Status s = store->Sync();
  BOOST_CHECK_MESSAGE(s.ok(), s.ToString());
  BOOST_CHECK_EQUAL(store->syncs(), 0u);
}

// ---------------------------------------------------------------------------
// Open

BOOST_AUTO_TEST_CASE(open_creates_missing_directories) {
  TempDir tmp;
  const std::string dir = tmp.sub("a/b/c");
  auto store = OpenStore(dir);
  PutStates(store.get(), {{"k", "v"}});
  BOOST_CHECK(fs::is_directory(dir));
  BOOST_CHECK(fs::exists(fs::path(dir) / "CURRENT"));
}

BOOST_AUTO_TEST_CASE(open_without_create_on_missing_dir_fails) {
  TempDir tmp;
  const std::string dir = tmp.sub("missing");
  StoreOptions options;
  options.create_if_missing = false;
  std::unique_ptr<Store> store;
  Status s = Store::Open(dir, options, &store);
  BOOST_CHECK(!s.ok());
  BOOST_CHECK(store == nullptr);
  BOOST_CHECK_MESSAGE(s.message().find(dir) != std::string::npos, s.message());
  BOOST_CHECK(!fs::exists(dir));

  // An existing empty directory without a database fails too.
  fs::create_directory(dir);
  s = Store::Open(dir, options, &store);
  BOOST_CHECK(!s.ok());
  BOOST_CHECK_MESSAGE(s.message().find(dir) != std::string::npos, s.message());
}

BOOST_AUTO_TEST_CASE(open_on_a_regular_file_fails_clearly) {
  TempDir tmp;
  const std::string file = tmp.sub("plain");
  { std::ofstream(file) << "not a database"; }
  std::unique_ptr<Store> store;
  Status s = Store::Open(file, StoreOptions(), &store);
  BOOST_CHECK(!s.ok());
  BOOST_CHECK(store == nullptr);
  BOOST_CHECK_MESSAGE(s.message().find(file) != std::string::npos, s.message());
  BOOST_CHECK_MESSAGE(s.message().find("not a directory") != std::string::npos, s.message());

  // Below a regular file, too.
  const std::string below = file + "/db";
  s = Store::Open(below, StoreOptions(), &store);
  BOOST_CHECK(!s.ok());
  BOOST_CHECK_MESSAGE(s.message().find(below) != std::string::npos, s.message());
}

BOOST_AUTO_TEST_CASE(second_store_on_one_dir_is_refused) {
  TempDir tmp;
  auto first = OpenStore(tmp.path());
  PutStates(first.get(), {{"k", "v"}});

  std::unique_ptr<Store> second;
  Status s = Store::Open(tmp.path(), StoreOptions(), &second);
  BOOST_CHECK(!s.ok());
  BOOST_CHECK(second == nullptr);
  BOOST_CHECK_MESSAGE(s.message().find(tmp.path()) != std::string::npos, s.message());
  BOOST_CHECK_MESSAGE(s.message().find("in use") != std::string::npos, s.message());

  // The first is unaffected, and once it closes the dir can be opened.
  BOOST_CHECK_EQUAL(StateOrMissing(*first, "k"), "v");
  PutStates(first.get(), {{"k2", "v2"}});
  first.reset();
  auto third = OpenStore(tmp.path());
  BOOST_CHECK_EQUAL(StateOrMissing(*third, "k2"), "v2");
}

// Another process holding the data dir's lock (the fcntl lock LevelDB
// takes): the child only takes the lock, with plain system calls, so that
// forking this multi-threaded process is safe.
BOOST_AUTO_TEST_CASE(dir_locked_by_another_process_is_refused) {
  TempDir tmp;
  { auto store = OpenStore(tmp.path()); }
  const std::string lock_file = tmp.sub("LOCK");
  int ready[2];
  int release[2];
  BOOST_REQUIRE(pipe(ready) == 0);
  BOOST_REQUIRE(pipe(release) == 0);
  pid_t pid = fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    int fd = open(lock_file.c_str(), O_RDWR);
    struct flock fl = {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    char ok = (fd >= 0 && fcntl(fd, F_SETLK, &fl) == 0) ? 1 : 0;
    if (write(ready[1], &ok, 1) != 1) _exit(2);
    char c;
    if (read(release[0], &c, 1) < 0) _exit(3);
    _exit(0);
  }
  char ok = 0;
  BOOST_REQUIRE_EQUAL(read(ready[0], &ok, 1), 1);
  BOOST_REQUIRE_EQUAL(ok, 1);

  std::unique_ptr<Store> store;
  Status s = Store::Open(tmp.path(), StoreOptions(), &store);

  char c = 0;
  BOOST_CHECK_EQUAL(write(release[1], &c, 1), 1);
  int wstatus = 0;
  BOOST_CHECK_EQUAL(waitpid(pid, &wstatus, 0), pid);
  for (int fd : {ready[0], ready[1], release[0], release[1]}) close(fd);

  BOOST_TEST_MESSAGE(s.ToString());
  BOOST_CHECK(!s.ok());
  BOOST_CHECK(store == nullptr);
  BOOST_CHECK_MESSAGE(s.message().find(tmp.path()) != std::string::npos, s.message());
  BOOST_CHECK_MESSAGE(s.message().find("in use") != std::string::npos, s.message());

  // The lock went with the process.
  auto reopened = OpenStore(tmp.path());
}

// A snapshot reads the store as it was when taken (states and digest
// records), whatever is written after; it is lost, not wrong, once the
// store reopens after a write error, and it may outlive the Store.
BOOST_AUTO_TEST_CASE(snapshots_read_the_past_and_are_lost_on_reopen) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  const meridian::storage::Digest d1 = meridian::storage::KeyDigest("k", "1");
  {
    WriteBatch batch;
    batch.PutState("k", "1");
    batch.PutDigest("", meridian::storage::BucketOf("k"), "k", d1);
    BOOST_REQUIRE(store->Write(&batch).ok());
  }
  SnapshotRef snap;
  BOOST_REQUIRE(store->TakeSnapshot(&snap).ok());
  BOOST_REQUIRE(snap != nullptr);
  {
    WriteBatch batch;
    batch.PutState("k", "2");
    batch.PutState("new", "3");
    batch.PutDigest("", meridian::storage::BucketOf("k"), "k",
                    meridian::storage::KeyDigest("k", "2"));
    batch.PutDigest("", meridian::storage::BucketOf("new"), "new",
                    meridian::storage::KeyDigest("new", "3"));
    BOOST_REQUIRE(store->Write(&batch).ok());
  }
  std::string v;
  BOOST_REQUIRE(store->GetState("k", &v, snap.get()).ok());
  BOOST_TEST(v == "1");
  BOOST_TEST(store->GetState("new", &v, snap.get()).IsNotFound());
  BOOST_REQUIRE(store->GetState("k", &v).ok());
  BOOST_TEST(v == "2");
  std::vector<std::pair<std::string, meridian::storage::Digest>> keys;
  BOOST_REQUIRE(
      meridian::storage::ScanBucket(*store, "", meridian::storage::BucketOf("k"), &keys, snap.get())
          .ok());
  BOOST_REQUIRE(keys.size() == 1u);
  BOOST_TEST((keys[0].second == d1));
  SnapshotRef copy = snap;  // shared: released with the last copy
  snap.reset();
  BOOST_REQUIRE(store->GetState("k", &v, copy.get()).ok());
  BOOST_TEST(v == "1");

  // A failed write, then a write that reopens the store: the snapshot is lost.
  store->TEST_FailWritesWithNoSpace(1);
  {
    WriteBatch batch;
    batch.PutState("x", "9");
    BOOST_TEST(Store::IsNoSpace(store->Write(&batch)));
  }
  PutStates(store.get(), {{"y", "8"}});
  BOOST_REQUIRE(store->reopens() == 1u);
  Status lost = store->GetState("k", &v, copy.get());
  BOOST_TEST(lost.IsUnavailable(), lost.ToString());
  SnapshotRef fresh;
  BOOST_REQUIRE(store->TakeSnapshot(&fresh).ok());
  BOOST_REQUIRE(store->GetState("y", &v, fresh.get()).ok());
  BOOST_TEST(v == "8");
  // Another store's snapshot is refused; snapshots outlive their store.
  TempDir tmp2;
  auto other = OpenStore(tmp2.path());
  BOOST_TEST(other->GetState("k", &v, fresh.get()).IsInvalidArgument());
  store.reset();
  fresh.reset();
  copy.reset();
}

BOOST_AUTO_TEST_CASE(collection_candidates_round_trip_in_key_order) {
  TempDir tmp;
  auto store = OpenStore(tmp.path());
  std::vector<GcCandidate> out;
  BOOST_REQUIRE(store->ScanGcCandidates("", 10, &out).ok());
  BOOST_CHECK(out.empty());
  {
    WriteBatch batch;
    batch.PutGcCandidate(GcCandidate{"b", Replica("n1", 7), 42});
    batch.PutGcCandidate(GcCandidate{"a", Replica("n2", 1), 1});
    batch.PutGcCandidate(GcCandidate{std::string("c\0d", 3), Replica("n1", 7), ~uint64_t{0}});
    batch.PutState("a", "state");  // other kinds of record do not show
    batch.PutConflict("a", "conflict");
    MustWrite(store.get(), &batch);
  }
  BOOST_REQUIRE(store->ScanGcCandidates("", 10, &out).ok());
  BOOST_REQUIRE_EQUAL(out.size(), 3u);
  BOOST_CHECK(out[0] == (GcCandidate{"a", Replica("n2", 1), 1}));
  BOOST_CHECK(out[1] == (GcCandidate{"b", Replica("n1", 7), 42}));
  BOOST_CHECK(out[2] == (GcCandidate{std::string("c\0d", 3), Replica("n1", 7), ~uint64_t{0}}));
  BOOST_REQUIRE(store->ScanGcCandidates("a", 1, &out).ok());
  BOOST_REQUIRE_EQUAL(out.size(), 1u);
  BOOST_CHECK_EQUAL(out[0].key, "b");
  BOOST_REQUIRE(store->ScanGcCandidates("c", 10, &out).ok());
  BOOST_REQUIRE_EQUAL(out.size(), 1u);
  {
    WriteBatch batch;
    batch.DeleteGcCandidate("b");
    batch.PutGcCandidate(GcCandidate{"a", Replica("n3", 2), 5});  // replaces
    MustWrite(store.get(), &batch);
  }
  store.reset();
  store = OpenStore(tmp.path());
  BOOST_REQUIRE(store->ScanGcCandidates("", 10, &out).ok());
  BOOST_REQUIRE_EQUAL(out.size(), 2u);
  BOOST_CHECK(out[0] == (GcCandidate{"a", Replica("n3", 2), 5}));
  BOOST_CHECK_EQUAL(out[1].key, std::string("c\0d", 3));
  BOOST_CHECK_EQUAL(StateOrMissing(*store, "a"), "state");
}
