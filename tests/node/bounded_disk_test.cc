// Disk use stays bounded under a steady overwrite workload (DESIGN.md §4
// "Garbage", issue 5): three regions of real meridiand processes take
// 100,000 writes over the same 1,000 keys, in two halves. After each half,
// once every node holds the same state and its delta log is truncated,
// the nodes are stopped, each data dir is compacted (LevelDB's own
// compaction, run to the end through storage::Store::CompactAll) and
// measured. The second half must leave every data dir about as large as
// the first did, and the delta log empty both times: overwritten states
// and acknowledged log entries leave the disk.
#define BOOST_TEST_MODULE bounded_disk
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "node/http_client.h"
#include "storage/leveldb_store.h"
#include "tests/node/cluster_process.h"

using meridian::node::ClientResponse;
using meridian::node::HttpClient;
using meridian::testing::ClusterOptions;
using meridian::testing::ClusterProcess;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
namespace fs = std::filesystem;

namespace {

constexpr int kKeys = 1000;
constexpr int kWritesPerHalf = 50000;
constexpr int kOpsPerBatch = 250;

json Status(ClusterProcess& c, int i) {
  auto client = c.Client(i);
  ClientResponse res;
  meridian::Status st = client->Request("GET", "/v1/status", "", {}, &res);
  if (!st.ok() || res.status != 200) return json();
  return json::parse(res.body, nullptr, false);
}

uint64_t DirBytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) total += e.file_size();
  }
  return total;
}

// `count` puts spread over every node, kOpsPerBatch per POST /v1/batch,
// each to key churn/<n mod kKeys>, starting at write number `first`.
void Write(ClusterProcess& c, int first, int count) {
  std::vector<std::unique_ptr<HttpClient>> clients;
  for (int i = 0; i < c.size(); ++i) clients.push_back(c.Client(i));
  for (int at = 0, batch = 0; at < count; at += kOpsPerBatch, ++batch) {
    json ops = json::array();
    for (int k = at; k < at + kOpsPerBatch && k < count; ++k) {
      const int n = first + k;
      ops.push_back({{"op", "put"},
                     {"key", "churn/" + std::to_string(n % kKeys)},
                     {"value", "write " + std::to_string(n) + " of the overwrite workload"}});
    }
    const int node = batch % c.size();
    ClientResponse res;
    meridian::Status st = clients[node]->Request("POST", "/v1/batch", ops.dump(),
                                                 {{"Content-Type", "application/json"}}, &res);
    BOOST_REQUIRE_MESSAGE(st.ok() && res.status == 200,
                          "POST /v1/batch at " << c.node_id(node) << ": "
                                               << (st.ok() ? std::to_string(res.status) + " " +
                                                                 res.body.substr(0, 300)
                                                           : st.ToString()));
  }
}

// Every node shows the same state digest and a fully truncated log.
bool WaitQuiet(ClusterProcess& c, std::string* seen) {
  const auto deadline = Clock::now() + milliseconds(60000);
  while (Clock::now() < deadline) {
    seen->clear();
    std::string digest;
    bool quiet = true;
    for (int i = 0; i < c.size(); ++i) {
      json st = Status(c, i);
      const json g = st.is_object() ? st["gossip"] : json();
      *seen += c.node_id(i) + ": digest " + (st.is_object() ? st["state_digest"].dump() : "?") +
               " last_seq " + (st.is_object() ? st["last_seq"].dump() : "?") + " log_start " +
               (g.is_object() ? g["log_start"].dump() : "?") + "\n";
      if (!st.is_object() || !g.is_object() || !st["state_digest"].is_string() ||
          !st["last_seq"].is_number_unsigned() || !g["log_start"].is_number_unsigned()) {
        quiet = false;
        continue;
      }
      if (i == 0) digest = st["state_digest"].get<std::string>();
      quiet = quiet && st["state_digest"] == digest &&
              g["log_start"].get<uint64_t>() == st["last_seq"].get<uint64_t>() + 1;
    }
    if (quiet) return true;
    std::this_thread::sleep_for(milliseconds(200));
  }
  return false;
}

struct Measure {
  uint64_t bytes = 0;
  size_t log_entries = 0;
  size_t states = 0;
};

// Stops every node, compacts and measures each data dir, starts them again.
std::vector<Measure> StopCompactMeasure(ClusterProcess& c) {
  std::vector<Measure> out(c.size());
  for (int i = 0; i < c.size(); ++i) {
    BOOST_REQUIRE_MESSAGE(c.StopNode(i), "stopping " << c.node_id(i));
  }
  for (int i = 0; i < c.size(); ++i) {
    std::unique_ptr<meridian::storage::Store> store;
    meridian::storage::StoreOptions so;
    so.create_if_missing = false;
    meridian::Status st = meridian::storage::Store::Open(c.data_dir(i), so, &store);
    BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
    BOOST_REQUIRE(store->CompactAll().ok());
    std::vector<meridian::storage::LogEntry> log;
    BOOST_REQUIRE(store->ReadLog("", 0, 1000000, &log).ok());
    std::vector<meridian::storage::Store::KeyState> states;
    BOOST_REQUIRE(store->Scan("churn/", "", 1000000, &states).ok());
    out[i].log_entries = log.size();
    out[i].states = states.size();
    store.reset();
    out[i].bytes = DirBytes(c.data_dir(i));
  }
  BOOST_REQUIRE_MESSAGE(c.Start(), "restarting the cluster");
  std::string why;
  BOOST_REQUIRE_MESSAGE(c.WaitWritable(milliseconds(20000), {}, &why), why);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(overwrites_leave_the_data_dirs_and_the_logs_bounded) {
  ClusterOptions o;
  o.regions = 3;
  o.cluster_name = "bounded-disk-test";
  ClusterProcess c(o);
  BOOST_REQUIRE(c.Start());
  std::string why;
  BOOST_REQUIRE_MESSAGE(c.WaitWritable(milliseconds(20000), {}, &why), why);

  std::vector<std::vector<Measure>> halves;
  for (int half = 0; half < 2; ++half) {
    const auto t0 = Clock::now();
    Write(c, half * kWritesPerHalf, kWritesPerHalf);
    std::string seen;
    bool quiet = WaitQuiet(c, &seen);
    if (!quiet) c.PrintStderr("not quiet");
    BOOST_REQUIRE_MESSAGE(quiet, "half " << half + 1
                                         << ": expected identical digests and truncated logs; "
                                         << "last seen\n"
                                         << seen);
    halves.push_back(StopCompactMeasure(c));
    std::cout << "bounded disk: half " << half + 1 << " ("
              << std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count() << " ms):";
    for (int i = 0; i < c.size(); ++i) {
      std::cout << " " << c.node_id(i) << " " << halves.back()[i].bytes << " bytes";
    }
    std::cout << std::endl;
  }
  for (int i = 0; i < c.size(); ++i) {
    const Measure& a = halves[0][i];
    const Measure& b = halves[1][i];
    BOOST_TEST(a.log_entries == 0u, c.node_id(i) << ": log entries after half 1");
    BOOST_TEST(b.log_entries == 0u, c.node_id(i) << ": log entries after half 2");
    BOOST_TEST(a.states == static_cast<size_t>(kKeys), c.node_id(i) << ": states after half 1");
    BOOST_TEST(b.states == static_cast<size_t>(kKeys), c.node_id(i) << ": states after half 2");
    // 50,000 more writes of ~100 bytes each, three ways, would add tens of
    // megabytes if anything were kept; the bound allows LevelDB's own
    // overheads (a fresh info log and manifest per open) to vary.
    const uint64_t bound = a.bytes + a.bytes / 4 + (256u << 10);
    BOOST_TEST(b.bytes <= bound, c.node_id(i) << ": " << b.bytes << " bytes after half 2, "
                                              << a.bytes << " after half 1 (bound " << bound
                                              << ")");
  }
}
