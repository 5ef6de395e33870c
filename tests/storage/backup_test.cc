// The backup format (storage/backup_format.h) and the restore
// (storage/backup.h) on real LevelDB stores: round trips fed in any piece
// size, every truncation and every flipped byte refused, a snapshot's
// export seeing nothing written after it, and a restored data dir holding
// the states, conflict, audit and collection records and nothing of the
// old identity, with a digest index that matches its states.
#define BOOST_TEST_MODULE backup
#include "storage/backup.h"

#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "storage/backup_format.h"
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

using Records = std::vector<std::pair<std::string, std::string>>;

BackupHeader Header() {
  BackupHeader h;
  h.node = "us-east-1";
  h.cluster = "test";
  h.region = "us-east";
  h.incarnation = 1234567;
  h.snapshot_ms = 1700000000123;
  return h;
}

std::string Encode(const BackupHeader& h, const Records& records) {
  std::string out;
  BackupEncoder enc(h, &out);
  for (const auto& [k, v] : records) enc.Add(k, v, &out);
  enc.Finish(&out);
  return out;
}

// Decodes `bytes` fed in pieces of `piece` bytes; the status of the first
// failure (or of Finish).
Status Decode(const std::string& bytes, size_t piece, Records* got, BackupHeader* header) {
  got->clear();
  BackupDecoder d([got](std::string_view k, std::string_view v) {
    got->emplace_back(std::string(k), std::string(v));
    return Status::OK();
  });
  for (size_t i = 0; i < bytes.size(); i += piece) {
    Status s = d.Feed(std::string_view(bytes).substr(i, piece));
    if (!s.ok()) return s;
  }
  Status s = d.Finish();
  if (s.ok() && header != nullptr) *header = d.header();
  return s;
}

Records Sample() {
  return {{std::string("a\0x", 3), "1"},     {"cfoo", "conflict"},
          {"mident", std::string(300, 'i')}, {"sa", ""},
          {"sb", std::string(70000, 'v')},   {"sc", std::string("\xff\x00\x01", 3)}};
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

}  // namespace

BOOST_AUTO_TEST_CASE(round_trip_in_any_piece_size) {
  const std::string bytes = Encode(Header(), Sample());
  BOOST_TEST(bytes.substr(0, 8) == "MRDNBKUP");
  for (size_t piece : {size_t{1}, size_t{3}, size_t{7}, size_t{4096}, bytes.size()}) {
    Records got;
    BackupHeader h;
    Status s = Decode(bytes, piece, &got, &h);
    BOOST_TEST_REQUIRE(s.ok(), s.ToString());
    BOOST_TEST((got == Sample()));
    BOOST_TEST(h.node == "us-east-1");
    BOOST_TEST(h.cluster == "test");
    BOOST_TEST(h.region == "us-east");
    BOOST_TEST(h.incarnation == 1234567u);
    BOOST_TEST(h.snapshot_ms == 1700000000123u);
  }
  Records got;
  BOOST_TEST(Decode(Encode(Header(), {}), 5, &got, nullptr).ok());
  BOOST_TEST(got.empty());
}

BOOST_AUTO_TEST_CASE(every_truncation_is_refused) {
  const std::string bytes = Encode(Header(), {{"sa", "1"}, {"sb", "22"}, {"sc", "333"}});
  for (size_t n = 0; n < bytes.size(); ++n) {
    Records got;
    Status s = Decode(bytes.substr(0, n), 4, &got, nullptr);
    BOOST_TEST(!s.ok(), "a prefix of " << n << " bytes was accepted");
  }
}

BOOST_AUTO_TEST_CASE(every_flipped_byte_is_refused) {
  const std::string bytes = Encode(Header(), {{"sa", "1"}, {"sb", "22"}, {"sc", "333"}});
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}}) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      Records got;
      Status s = Decode(bad, 16, &got, nullptr);
      BOOST_TEST(!s.ok(), "byte " << i << " flipped by " << int(mask) << " was accepted");
    }
  }
}

BOOST_AUTO_TEST_CASE(bad_magic_version_order_and_trailing_bytes_say_so) {
  const std::string bytes = Encode(Header(), {{"sa", "1"}, {"sb", "2"}});
  Records got;
  std::string bad = bytes;
  bad[0] = 'X';
  Status s = Decode(bad, 100, &got, nullptr);
  BOOST_TEST(s.code() == Status::Code::kInvalidArgument);
  BOOST_TEST(s.message().find("magic") != std::string::npos, s.message());

  bad = bytes;
  bad[8] = 2;
  s = Decode(bad, 100, &got, nullptr);
  BOOST_TEST(s.code() == Status::Code::kInvalidArgument);
  BOOST_TEST(s.message().find("version 2") != std::string::npos, s.message());

  s = Decode(bytes + "x", 100, &got, nullptr);
  BOOST_TEST(s.message().find("after its trailer") != std::string::npos, s.message());

  s = Decode(Encode(Header(), {{"sb", "1"}, {"sa", "2"}}), 100, &got, nullptr);
  BOOST_TEST(s.message().find("out of order") != std::string::npos, s.message());

  s = Decode(bytes.substr(0, bytes.size() - 10), 100, &got, nullptr);
  BOOST_TEST(s.message().find("truncated") != std::string::npos, s.message());

  bad = bytes;
  bad[bytes.size() - 42] ^= 1;  // inside the last record's value: only the checksum sees it
  s = Decode(bad, 100, &got, nullptr);
  BOOST_TEST(s.message().find("checksum") != std::string::npos, s.message());
}

namespace {

// A store with an identity, states with their digests, a log, metadata, a
// conflict entry, an audit record and a collection candidate.
void Fill(Store* store, int first, int n) {
  WriteBatch b;
  for (int i = first; i < first + n; ++i) {
    const std::string key = "k" + std::to_string(i);
    const std::string env = "envelope-" + std::to_string(i);
    b.PutState(key, env);
    b.PutDigest("", BucketOf(key), key, KeyDigest(key, env));
    b.AppendLog(LogEntry{"", static_cast<uint64_t>(i + 1), key, "delta"});
  }
  BOOST_TEST_REQUIRE(store->Write(&b).ok());
}

}  // namespace

BOOST_AUTO_TEST_CASE(restore_keeps_states_and_their_records_and_drops_the_identity) {
  TempDir tmp;
  std::unique_ptr<Store> store;
  BOOST_TEST_REQUIRE(Store::Open(tmp.sub("src"), StoreOptions(), &store).ok());
  {
    WriteBatch b;
    InitIdentity(crdt::ReplicaId{"n1", 42}, &b);
    PutHlcBound(999, &b);
    AppliedVector applied;
    applied[{crdt::ReplicaId{"n1", 42}, ""}] = 10;
    PutApplied(applied, &b);
    PutKeyCount(10, &b);
    b.PutConflict("k1", "conflict-entry");
    b.PutAudit("k2", "id1", "audit-record");
    b.PutGcCandidate(GcCandidate{"k3", crdt::ReplicaId{"n1", 42}, 3});
    BOOST_TEST_REQUIRE(store->Write(&b).ok());
  }
  Fill(store.get(), 0, 10);
  BucketSums sums_at_snapshot;
  BOOST_TEST_REQUIRE(LoadBucketSums(*store, "", &sums_at_snapshot).ok());

  SnapshotRef snap;
  BOOST_TEST_REQUIRE(store->TakeSnapshot(&snap).ok());
  Fill(store.get(), 10, 5);  // after the snapshot: not in the backup

  std::string file;
  BackupEncoder enc(Header(), &file);
  Status s = store->ExportRecords(*snap, [&](std::string_view k, std::string_view v) {
    enc.Add(k, v, &file);
    return Status::OK();
  });
  BOOST_TEST_REQUIRE(s.ok(), s.ToString());
  enc.Finish(&file);
  WriteFile(tmp.sub("b.bak"), file);

  BackupFileInfo info;
  s = VerifyBackupFile(tmp.sub("b.bak"), &info);
  BOOST_TEST_REQUIRE(s.ok(), s.ToString());
  BOOST_TEST(info.states == 10u);

  RestoreReport report;
  s = RestoreBackup(tmp.sub("b.bak"), tmp.sub("dst/deeper"), &report);
  BOOST_TEST_REQUIRE(s.ok(), s.ToString());
  BOOST_TEST(report.states == 10u);
  BOOST_TEST(report.conflicts == 1u);
  BOOST_TEST(report.audit == 1u);
  BOOST_TEST(report.gc == 1u);

  std::unique_ptr<Store> dst;
  BOOST_TEST_REQUIRE(Store::Open(tmp.sub("dst/deeper"), StoreOptions(), &dst).ok());
  std::vector<Store::KeyState> states;
  BOOST_TEST_REQUIRE(dst->Scan("", "", 100, &states).ok());
  BOOST_TEST(states.size() == 10u);
  for (const auto& ks : states) {
    BOOST_TEST(ks.envelope == "envelope-" + ks.key.substr(1));
  }
  NodeMeta meta;
  bool fresh = false;
  s = LoadNodeMeta(*dst, "another-node", &meta, &fresh);
  BOOST_TEST_REQUIRE(s.ok(), s.ToString());
  BOOST_TEST(fresh);  // no identity: a new incarnation at the first start
  BOOST_TEST(meta.hlc_bound == 0u);
  BOOST_TEST(meta.applied.empty());
  BOOST_TEST(meta.key_count == 10u);
  BOOST_TEST(!meta.bootstrap_pending);
  BOOST_TEST((meta.digest_sums == sums_at_snapshot));
  uint64_t last = 1;
  BOOST_TEST_REQUIRE(dst->LastLogSeq("", &last).ok());
  BOOST_TEST(last == 0u);
  std::string v;
  BOOST_TEST(dst->GetMeta(kMetaCollectFloor, &v).IsNotFound());
  BOOST_TEST(dst->GetConflict("k1", &v).ok());
  std::vector<Store::KeyValue> audit;
  BOOST_TEST_REQUIRE(dst->ScanAudit("k2", 10, &audit).ok());
  BOOST_TEST(audit.size() == 1u);
  std::vector<GcCandidate> gc;
  BOOST_TEST_REQUIRE(dst->ScanGcCandidates("", 10, &gc).ok());
  BOOST_TEST(gc.size() == 1u);
  BackupHeader from;
  bool found = false;
  BOOST_TEST_REQUIRE(ReadRestoredMarker(*dst, &from, &found).ok());
  BOOST_TEST(found);
  BOOST_TEST(from.node == "us-east-1");
  BOOST_TEST(from.incarnation == 1234567u);
}

BOOST_AUTO_TEST_CASE(restore_refuses_bad_files_and_non_empty_dirs_and_writes_nothing) {
  TempDir tmp;
  const std::string good = Encode(Header(), {{"sa", "x"}, {"sb", "y"}});
  WriteFile(tmp.sub("good.bak"), good);
  WriteFile(tmp.sub("truncated.bak"), good.substr(0, good.size() - 5));
  std::string flipped = good;
  flipped[good.size() - 42] ^= 0x10;
  WriteFile(tmp.sub("flipped.bak"), flipped);
  std::string magic = good;
  magic[1] = 'Z';
  WriteFile(tmp.sub("magic.bak"), magic);

  struct Case {
    const char* file;
    const char* says;
  };
  for (const Case& c : {Case{"truncated.bak", "truncated"}, Case{"flipped.bak", "checksum"},
                        Case{"magic.bak", "magic"}, Case{"missing.bak", "cannot open"}}) {
    RestoreReport r;
    Status s = RestoreBackup(tmp.sub(c.file), tmp.sub("out"), &r);
    BOOST_TEST(!s.ok(), c.file);
    BOOST_TEST(s.message().find(c.says) != std::string::npos, s.message());
    BOOST_TEST(!fs::exists(tmp.sub("out")), c.file << " left the data dir behind");
  }

  fs::create_directories(tmp.sub("full"));
  WriteFile(tmp.sub("full/CURRENT"), "old");
  RestoreReport r;
  Status s = RestoreBackup(tmp.sub("good.bak"), tmp.sub("full"), &r);
  BOOST_TEST(s.code() == Status::Code::kFailedPrecondition);
  BOOST_TEST(s.message().find("not empty") != std::string::npos, s.message());
  BOOST_TEST(ReadFile(tmp.sub("full/CURRENT")) == "old");
  BOOST_TEST(std::distance(fs::directory_iterator(tmp.sub("full")), fs::directory_iterator()) == 1);

  // An empty dir is fine.
  fs::create_directories(tmp.sub("empty"));
  s = RestoreBackup(tmp.sub("good.bak"), tmp.sub("empty"), &r);
  BOOST_TEST(s.ok(), s.ToString());
  BOOST_TEST(r.states == 2u);
}
