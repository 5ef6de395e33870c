// Placement on the API (issue 10) with three real meridiand regions on
// loopback (us-east, eu-west, ap-south; one node each) and two
// [[placement]] tables: "eu/" in eu-west only, "shared/" in eu-west and
// us-east. Checks, route by route, that a write of a placed key outside
// its regions is `403 placement` (every type, deletes, the live text
// stream, a resolution, each operation of a batch on its own), a read
// there `404 placement` (registers, texts, conflicts, audit), `w=N` beyond
// the placed regions `400 placement`, and that scans, watches and
// /v1/status outside the regions leave placed keys out; while unplaced
// keys are written and read everywhere and placed keys in their regions.
// Replication keeps to the regions too (one session per placement scope,
// gossip/scoped_protocol.h): "shared/" keys replicate between eu-west and
// us-east, `w=2` of one is acknowledged by the other, and once the nodes
// stop, every record of every node's LevelDB (states, logs, digests,
// metadata) is read: no byte of a placed key or scope is in a region
// outside its placement.
#define BOOST_TEST_MODULE placement_api
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "node/http_client.h"
#include "storage/leveldb_store.h"
#include "tests/node/cluster_process.h"

using meridian::testing::ClusterOptions;
using meridian::testing::ClusterProcess;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

const char kPlacement[] = R"(
[[placement]]
prefix  = "eu/"
regions = ["eu-west"]

[[placement]]
prefix  = "shared/"
regions = ["eu-west", "us-east"]
)";

constexpr int kUs = 0, kEu = 1, kAp = 2;  // ClusterProcess's region order

struct Reply {
  int status = 0;
  json body;
};

class Cluster {
 public:
  Cluster() : cluster_(Options()) {
    BOOST_REQUIRE(cluster_.region(kUs) == "us-east");
    BOOST_REQUIRE(cluster_.region(kEu) == "eu-west");
    BOOST_REQUIRE(cluster_.region(kAp) == "ap-south");
    BOOST_REQUIRE(cluster_.Start());
    std::string why;
    BOOST_REQUIRE_MESSAGE(cluster_.WaitWritable(milliseconds(20000), {}, &why), why);
  }

  static ClusterOptions Options() {
    ClusterOptions o;
    o.cluster_name = "placement-test";
    o.extra_toml = kPlacement;
    return o;
  }

  Reply Call(int i, const std::string& method, const std::string& target,
             const std::string& body = "",
             std::vector<std::pair<std::string, std::string>> headers = {}) {
    auto client = cluster_.Client(i);
    meridian::node::ClientResponse res;
    if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
    meridian::Status st = client->Request(method, target, body, headers, &res);
    BOOST_REQUIRE_MESSAGE(st.ok(), method << " " << target << ": " << st.ToString());
    return Reply{res.status, json::parse(res.body, nullptr, false)};
  }

  // Asserts a placement refusal: its status, code, and the message naming
  // the key's regions.
  void ExpectRefused(const Reply& r, int status, const std::string& regions_named,
                     const std::string& what) {
    BOOST_TEST_CONTEXT(what << " -> " << r.body.dump()) {
      BOOST_TEST(r.status == status);
      BOOST_TEST(r.body.value("error", "") == "placement");
      BOOST_TEST(r.body.value("message", "").find(regions_named) != std::string::npos);
    }
  }

  // Polls GET target on node i until it answers `status` (bounded).
  bool WaitStatus(int i, const std::string& target, int status) {
    for (int k = 0; k < 200; ++k) {
      if (Call(i, "GET", target).status == status) return true;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return false;
  }

  ClusterProcess& cluster() { return cluster_; }

 private:
  ClusterProcess cluster_;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(placement_api, Cluster)

BOOST_AUTO_TEST_CASE(writes_of_placed_keys_are_refused_outside_their_regions) {
  const std::string eu = "'eu-west'";
  // Registers: the placed region takes them, the others refuse.
  BOOST_TEST(Call(kEu, "PUT", "/v1/kv/eu/a", "1").status == 200);
  ExpectRefused(Call(kUs, "PUT", "/v1/kv/eu/a", "2"), 403, eu, "put in us-east");
  ExpectRefused(Call(kAp, "PUT", "/v1/kv/eu/a", "3"), 403, eu, "put in ap-south");
  ExpectRefused(Call(kUs, "DELETE", "/v1/kv/eu/a"), 403, eu, "delete in us-east");
  // Every other type, on its own route.
  ExpectRefused(Call(kUs, "POST", "/v1/counter/eu/c", R"({"add": 1})"), 403, eu, "counter");
  ExpectRefused(Call(kUs, "POST", "/v1/set/eu/s", R"({"add": ["x"]})"), 403, eu, "set");
  ExpectRefused(Call(kUs, "POST", "/v1/map/eu/m",
                     R"({"update": {"f": {"type": "counter", "add": 1}}})"),
                403, eu, "map");
  ExpectRefused(Call(kUs, "POST", "/v1/text/eu/t",
                     R"({"ops": [{"insert": {"pos": 0, "text": "hi"}}]})"),
                403, eu, "text");
  ExpectRefused(Call(kUs, "GET", "/v1/stream/text/eu/t", "",
                     {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}}),
                403, eu, "live text stream");
  ExpectRefused(Call(kUs, "POST", "/v1/conflicts/eu/a", R"({"value": 1, "context": ""})"), 403, eu,
                "a resolution");
  // A prefix in two regions: both take writes, the third refuses.
  BOOST_TEST(Call(kUs, "PUT", "/v1/kv/shared/b", "1").status == 200);
  BOOST_TEST(Call(kEu, "POST", "/v1/counter/shared/c", R"({"add": 2})").status == 200);
  ExpectRefused(Call(kAp, "PUT", "/v1/kv/shared/b", "2"), 403, "'eu-west', 'us-east'",
                "shared put in ap-south");
  // A key sharing only the first letters of a prefix is not placed.
  BOOST_TEST(Call(kAp, "PUT", "/v1/kv/europe/x", "1").status == 200);
  BOOST_TEST(Call(kAp, "PUT", "/v1/kv/plain", "1").status == 200);
}

BOOST_AUTO_TEST_CASE(reads_of_placed_keys_are_404_outside_their_regions) {
  BOOST_REQUIRE(Call(kEu, "PUT", "/v1/kv/eu/r", R"("here")").status == 200);
  BOOST_REQUIRE(Call(kEu, "POST", "/v1/text/eu/doc",
                     R"({"ops": [{"insert": {"pos": 0, "text": "hi"}}]})")
                    .status == 200);
  Reply here = Call(kEu, "GET", "/v1/kv/eu/r");
  BOOST_TEST(here.status == 200);
  BOOST_TEST(here.body.value("value", json()) == "here");
  for (int i : {kUs, kAp}) {
    ExpectRefused(Call(i, "GET", "/v1/kv/eu/r"), 404, "'eu-west'", "register read");
    // A text reads (empty) even when never written; a placed one does not.
    ExpectRefused(Call(i, "GET", "/v1/text/eu/doc"), 404, "'eu-west'", "text read");
    ExpectRefused(Call(i, "GET", "/v1/conflicts/eu/r"), 404, "'eu-west'", "conflict read");
    ExpectRefused(Call(i, "GET", "/v1/audit/eu/r"), 404, "'eu-west'", "audit read");
  }
  // An unplaced key written in eu-west reaches and reads everywhere.
  BOOST_REQUIRE(Call(kEu, "PUT", "/v1/kv/open/r", "7").status == 200);
  for (int i : {kUs, kAp}) BOOST_TEST(WaitStatus(i, "/v1/kv/open/r", 200));
}

BOOST_AUTO_TEST_CASE(w_beyond_the_placed_regions_is_400) {
  ExpectRefused(Call(kEu, "PUT", "/v1/kv/eu/w?w=2", "1"), 400, "'eu-west'", "w=2 of eu/");
  ExpectRefused(Call(kUs, "PUT", "/v1/kv/shared/w?w=3", "1"), 400, "'eu-west', 'us-east'",
                "w=3 of shared/");
  BOOST_TEST(Call(kEu, "PUT", "/v1/kv/eu/w?w=1", "1").status == 200);
  BOOST_TEST(Call(kUs, "PUT", "/v1/kv/shared/w?w=2", "1").status == 200);
  BOOST_TEST(Call(kAp, "PUT", "/v1/kv/open/w?w=3", "1").status == 200);
}

BOOST_AUTO_TEST_CASE(a_batch_refuses_each_placed_operation_on_its_own) {
  Reply r = Call(kUs, "POST", "/v1/batch",
                 R"([{"op": "put", "key": "eu/b1", "value": 1},
                     {"op": "put", "key": "open/b1", "value": 1},
                     {"op": "incr", "key": "shared/b1"},
                     {"op": "sadd", "key": "eu/b2", "elements": ["x"]}])");
  BOOST_REQUIRE(r.status == 200);
  const json& results = r.body["results"];
  BOOST_REQUIRE(results.size() == 4u);
  BOOST_TEST(results[0]["status"] == 403);
  BOOST_TEST(results[0]["error"] == "placement");
  BOOST_TEST(results[1]["status"] == 200);
  BOOST_TEST(results[2]["status"] == 200);
  BOOST_TEST(results[3]["status"] == 403);
  // w=2: shared/ is in two regions, open/ in three; eu/ is in one.
  r = Call(kEu, "POST", "/v1/batch?w=2",
           R"([{"op": "put", "key": "shared/b2", "value": 1},
               {"op": "put", "key": "eu/b3", "value": 1},
               {"op": "put", "key": "open/b2", "value": 1}])");
  BOOST_REQUIRE(r.status == 200);
  BOOST_TEST(r.body["results"][0]["status"] == 200);
  BOOST_TEST(r.body["results"][1]["status"] == 400);
  BOOST_TEST(r.body["results"][1]["error"] == "placement");
  BOOST_TEST(r.body["results"][2]["status"] == 200);
  BOOST_TEST(Call(kEu, "GET", "/v1/kv/eu/b3").status == 404);  // not written
}

BOOST_AUTO_TEST_CASE(scans_and_watches_leave_placed_keys_out) {
  // A watcher in ap-south, subscribed before the writes.
  auto watcher = cluster().Client(kAp);
  std::future<std::vector<std::string>> events = std::async(std::launch::async, [&] {
    std::vector<std::string> data;
    meridian::Status st = watcher->ReadEvents("/v1/watch?prefix=", 2, milliseconds(15000), &data);
    BOOST_TEST_MESSAGE("watch: " << st.ToString());
    return data;
  });
  bool subscribed = false;
  for (int k = 0; k < 200 && !subscribed; ++k) {
    subscribed = Call(kAp, "GET", "/v1/status").body.value("watchers", 0) >= 1;
    if (!subscribed) std::this_thread::sleep_for(milliseconds(25));
  }
  BOOST_REQUIRE(subscribed);
  // In log order: a placed key first each time, so a leak would come first.
  for (const char* key : {"eu/s1", "scan/s1", "shared/s1", "scan/s2"}) {
    const int at = std::string(key).rfind("shared/", 0) == 0 ? kUs : kEu;
    BOOST_REQUIRE(Call(at, "PUT", std::string("/v1/kv/") + key, "1").status == 200);
  }
  std::vector<std::string> seen = events.get();
  BOOST_REQUIRE(seen.size() == 2u);
  BOOST_TEST(json::parse(seen[0])["key"] == "scan/s1");
  BOOST_TEST(json::parse(seen[1])["key"] == "scan/s2");

  // Scans: each region lists the keys it holds.
  BOOST_REQUIRE(WaitStatus(kAp, "/v1/kv/scan/s2", 200));
  BOOST_REQUIRE(WaitStatus(kUs, "/v1/kv/scan/s2", 200));
  auto keys_of = [&](int i) {
    std::vector<std::string> keys;
    Reply r = Call(i, "GET", "/v1/scan?limit=1000");
    BOOST_TEST_MESSAGE(cluster().region(i) << " scan: " << r.body.dump());
    for (const json& item : r.body["items"]) {
      keys.push_back(item["key"]);
    }
    return keys;
  };
  auto has = [](const std::vector<std::string>& keys, const std::string& k) {
    return std::find(keys.begin(), keys.end(), k) != keys.end();
  };
  std::vector<std::string> ap = keys_of(kAp), us = keys_of(kUs), eu = keys_of(kEu);
  BOOST_TEST(has(ap, "scan/s1"));
  BOOST_TEST(!has(ap, "eu/s1"));
  BOOST_TEST(!has(ap, "shared/s1"));
  BOOST_TEST(has(us, "shared/s1"));
  BOOST_TEST(!has(us, "eu/s1"));
  BOOST_TEST(has(eu, "eu/s1"));
  for (const std::string& k : ap) BOOST_TEST(k.rfind("eu/", 0) != 0, k);
}

BOOST_AUTO_TEST_CASE(status_lists_the_placements_and_where_they_are_held) {
  for (int i : {kUs, kEu, kAp}) {
    json p = Call(i, "GET", "/v1/status").body["placement"];
    BOOST_TEST_CONTEXT(cluster().region(i) << ": " << p.dump()) {
      BOOST_REQUIRE(p.is_array());
      BOOST_REQUIRE(p.size() == 2u);
      BOOST_TEST(p[0]["prefix"] == "eu/");
      BOOST_TEST(p[0]["regions"] == json::array({"eu-west"}));
      BOOST_TEST(p[0]["held_here"] == (i == kEu));
      BOOST_TEST(p[1]["prefix"] == "shared/");
      BOOST_TEST(p[1]["held_here"] == (i != kAp));
    }
  }
}

BOOST_AUTO_TEST_CASE(placed_keys_replicate_within_their_regions_and_are_stored_nowhere_else) {
  // Every type, in each placed scope, from each region that holds it.
  for (int at : {kEu, kUs}) {
    const std::string r = cluster().region(at);
    if (at == kEu) {
      BOOST_REQUIRE(Call(at, "PUT", "/v1/kv/eu/k", R"("eu only")").status == 200);
      BOOST_REQUIRE(Call(at, "POST", "/v1/counter/eu/c", R"({"add": 3})").status == 200);
      BOOST_REQUIRE(Call(at, "POST", "/v1/text/eu/t",
                         R"({"ops": [{"insert": {"pos": 0, "text": "eu text"}}]})")
                        .status == 200);
      BOOST_REQUIRE(Call(at, "DELETE", "/v1/kv/eu/k").status == 200);
    }
    BOOST_REQUIRE(Call(at, "PUT", "/v1/kv/shared/k-" + r, "1").status == 200);
    BOOST_REQUIRE(Call(at, "POST", "/v1/set/shared/s", R"({"add": [")" + r + R"("]})").status ==
                  200);
    BOOST_REQUIRE(Call(at, "PUT", "/v1/kv/open/k-" + r, "1").status == 200);
  }
  BOOST_REQUIRE(Call(kAp, "PUT", "/v1/kv/open/k-ap", "1").status == 200);
  // Within a scope, deltas flow both ways; w=2 is held by the other region.
  BOOST_TEST(WaitStatus(kUs, "/v1/kv/shared/k-eu-west", 200));
  BOOST_TEST(WaitStatus(kEu, "/v1/kv/shared/k-us-east", 200));
  Reply w2 = Call(kEu, "PUT", "/v1/kv/shared/w2?w=2&timeout_ms=10000", "2");
  BOOST_TEST(w2.status == 200, w2.body.dump());
  BOOST_TEST(Call(kUs, "GET", "/v1/kv/shared/w2").status == 200);
  for (int i : {kUs, kEu, kAp}) {
    for (const char* k : {"open/k-eu-west", "open/k-us-east", "open/k-ap"}) {
      BOOST_TEST(WaitStatus(i, std::string("/v1/kv/") + k, 200), cluster().region(i) << " " << k);
    }
  }
  // Both holders of "shared/" reach the same digest of it; the status of
  // each names the scope's one peer.
  auto shared_entry = [&](int i) { return Call(i, "GET", "/v1/status").body["placement"][1]; };
  bool same = false;
  for (int k = 0; k < 200 && !same; ++k) {
    same = shared_entry(kUs).value("digest", "a") == shared_entry(kEu).value("digest", "b");
    if (!same) std::this_thread::sleep_for(milliseconds(50));
  }
  BOOST_TEST(same);
  const json us_shared = shared_entry(kUs);
  BOOST_TEST_MESSAGE("us-east shared/: " << us_shared.dump());
  BOOST_REQUIRE(us_shared["peers"].size() == 1u);
  BOOST_TEST(us_shared["peers"][0]["region"] == "eu-west");
  BOOST_TEST(us_shared["peers"][0]["unacked_deltas"] == 0);
  BOOST_TEST(shared_entry(kAp).count("peers") == 0u);
  BOOST_TEST(Call(kAp, "GET", "/v1/status").body["gossip"].value("unknown_scope", -1) == 0);

  // Every record of every node's store: a region outside a placement holds
  // no byte of its prefix (keys, log entries, digests, applied vectors).
  for (int i : {kUs, kEu, kAp}) BOOST_REQUIRE(cluster().StopNode(i));
  auto records_with = [&](int i, const std::string& needle) {
    std::unique_ptr<meridian::storage::Store> store;
    meridian::Status st =
        meridian::storage::Store::Open(cluster().data_dir(i), meridian::storage::StoreOptions{}, &store);
    BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
    meridian::storage::SnapshotRef snap;
    BOOST_REQUIRE(store->TakeSnapshot(&snap).ok());
    size_t found = 0, records = 0;
    st = store->ExportRecords(*snap, [&](std::string_view key, std::string_view value) {
      ++records;
      if (key.find(needle) != std::string_view::npos ||
          value.find(needle) != std::string_view::npos) {
        ++found;
      }
      return meridian::Status::OK();
    });
    BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
    BOOST_REQUIRE(records > 0u);
    return found;
  };
  BOOST_TEST(records_with(kAp, "eu/") == 0u);
  BOOST_TEST(records_with(kAp, "shared/") == 0u);
  BOOST_TEST(records_with(kUs, "eu/") == 0u);
  BOOST_TEST(records_with(kUs, "shared/") > 0u);
  BOOST_TEST(records_with(kEu, "eu/") > 0u);
  BOOST_TEST(records_with(kEu, "shared/") > 0u);
  BOOST_TEST(records_with(kAp, "open/") > 0u);
}

BOOST_AUTO_TEST_SUITE_END()
