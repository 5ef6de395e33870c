// Crash safety of a real meridiand (sync = true): client threads, each on
// its own connection, drive counter increments, set adds, register sets
// and batches, recording what they attempted and what was acknowledged.
// meridiand is killed with SIGKILL at a random moment, restarted on the
// same data dir, and checked: no acknowledged write may be missing, and
// nothing may appear that was never attempted.
//
// Seeded: the seed is printed; MERIDIAN_CRASH_SEED=N reruns one exactly (as
// far as thread timing allows), MERIDIAN_CRASH_CYCLES=N changes the count.
#define BOOST_TEST_MODULE crash
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "node/http_client.h"
#include "tests/node/node_process.h"

using meridian::node::ClientResponse;
using meridian::node::HttpClient;
using meridian::testing::DecodeReply;
using meridian::testing::EncodeBody;
using meridian::testing::Encoding;
using meridian::testing::MediaType;
using meridian::testing::NodeProcess;
using nlohmann::json;

namespace {

constexpr int kThreads = 6;
constexpr int kDefaultCycles = 20;
// Bounds on one cycle's load, should the kill never come.
constexpr int kMaxOpsPerThread = 20000;
constexpr std::chrono::seconds kMaxLoad{5};

const char kCounterKey[] = "crash/counter";
const char kSetKey[] = "crash/set";
std::string RegisterKey(int thread) { return "crash/reg/" + std::to_string(thread); }

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

// What the test knows must be (floor) and may be (ceiling) on the node. A
// value read back after a restart is on disk, so it raises the floor too:
// it must survive later crashes as an acknowledged write would.
struct Ledger {
  int64_t counter_floor = 0;            // acknowledged increments (or a value read back)
  int64_t counter_attempted = 0;        // every increment sent
  std::set<std::string> set_must;       // acknowledged adds and elements read back
  std::set<std::string> set_attempted;  // every element sent
  // Each thread writes 1, 2, 3, ... to its own register, one at a time.
  uint64_t reg_floor[kThreads] = {};
  uint64_t reg_attempted[kThreads] = {};
};

// One client thread's record of one cycle.
struct ThreadLog {
  int64_t counter_attempted = 0, counter_acked = 0;
  std::vector<std::string> set_attempted, set_acked;
  uint64_t reg_attempted = 0, reg_acked = 0;
  uint64_t ops_acked = 0;
  std::string unexpected;  // an HTTP answer that should not happen
};

// Runs until a request fails (the node died) or a bound is reached.
void Drive(const std::string& url, int thread, uint64_t seed, uint64_t first_reg_value,
           uint64_t* next_element, ThreadLog* log) {
  std::unique_ptr<HttpClient> c;
  if (!HttpClient::Create(url, &c).ok()) {
    log->unexpected = "bad URL " + url;
    return;
  }
  c->set_timeout(std::chrono::seconds(5));
  std::mt19937_64 rng(seed);
  const Encoding enc = thread % 2 == 0 ? Encoding::kJson : Encoding::kMsgpack;
  const std::vector<std::pair<std::string, std::string>> headers = {
      {"Content-Type", MediaType(enc)}, {"Accept", MediaType(enc)}};
  uint64_t reg_value = first_reg_value;
  const auto deadline = std::chrono::steady_clock::now() + kMaxLoad;
  for (int i = 0; i < kMaxOpsPerThread && std::chrono::steady_clock::now() < deadline; ++i) {
    ClientResponse res;
    int kind = static_cast<int>(rng() % 4);
    std::string element = "t" + std::to_string(thread) + "-" + std::to_string((*next_element)++);
    int64_t n = 1 + static_cast<int64_t>(rng() % 5);
    meridian::Status st;
    switch (kind) {
      case 0:
        log->counter_attempted += n;
        st = c->Request("POST", std::string("/v1/counter/") + kCounterKey,
                        EncodeBody(enc, json{{"add", n}}), headers, &res);
        if (st.ok() && res.status == 200) log->counter_acked += n;
        break;
      case 1:
        log->set_attempted.push_back(element);
        st = c->Request("POST", std::string("/v1/set/") + kSetKey,
                        EncodeBody(enc, json{{"add", json::array({element})}}), headers, &res);
        if (st.ok() && res.status == 200) log->set_acked.push_back(element);
        break;
      case 2:
        log->reg_attempted = ++reg_value;
        st = c->Request("PUT", "/v1/kv/" + RegisterKey(thread), EncodeBody(enc, json(reg_value)),
                        headers, &res);
        if (st.ok() && res.status == 200) log->reg_acked = reg_value;
        break;
      default: {
        // The batch path: one increment and one add, acknowledged per op.
        log->counter_attempted += n;
        log->set_attempted.push_back(element);
        json ops = json::array({json{{"op", "incr"}, {"key", kCounterKey}, {"by", n}},
                                json{{"op", "sadd"}, {"key", kSetKey}, {"elements", {element}}}});
        st = c->Request("POST", "/v1/batch", EncodeBody(enc, ops), headers, &res);
        if (st.ok() && res.status == 200) {
          json body;
          std::string why;
          if (!DecodeReply(res, &body, &why)) {
            log->unexpected = "batch reply: " + why;
            return;
          }
          const json& r = body["results"];
          if (r.size() != 2 || r[0]["status"] != 200 || r[1]["status"] != 200) {
            log->unexpected = "batch answered " + body.dump();
            return;
          }
          log->counter_acked += n;
          log->set_acked.push_back(element);
        }
        break;
      }
    }
    if (!st.ok()) return;  // the node is gone: this request's fate is unknown
    if (res.status != 200) {
      log->unexpected = "status " + std::to_string(res.status) + ": " + res.body;
      return;
    }
    log->ops_acked++;
  }
}

json ReadJson(HttpClient* c, const std::string& target, int* status) {
  ClientResponse res;
  meridian::Status st = c->Request("GET", target, "", {}, &res);
  BOOST_REQUIRE_MESSAGE(st.ok(), "GET " << target << ": " << st.ToString());
  *status = res.status;
  json body;
  std::string why;
  BOOST_REQUIRE_MESSAGE(DecodeReply(res, &body, &why), why);
  return body;
}

// Checks the node against the ledger and raises the floors to what it
// holds. Returns how many writes survived without an acknowledgement.
uint64_t Verify(NodeProcess* node, Ledger* l, int cycle, uint64_t seed) {
  uint64_t unacked_survivors = 0;
  std::unique_ptr<HttpClient> c = node->Client();
  BOOST_TEST_CONTEXT("after kill " << cycle << " (seed " << seed << ")") {
    int status = 0;
    json b = ReadJson(c.get(), std::string("/v1/counter/") + kCounterKey, &status);
    int64_t value = 0;
    if (status == 200) {
      value = b["value"].get<int64_t>();
    } else {
      BOOST_TEST(status == 404, "counter read answered " << status << ": " << b.dump());
    }
    BOOST_TEST(value >= l->counter_floor, "counter " << value << " lost acknowledged increments: "
                                                     << l->counter_floor << " acknowledged");
    BOOST_TEST(value <= l->counter_attempted,
               "counter " << value << " exceeds everything attempted: " << l->counter_attempted);
    if (value > l->counter_floor) unacked_survivors++;
    l->counter_floor = std::max(l->counter_floor, value);

    b = ReadJson(c.get(), std::string("/v1/set/") + kSetKey, &status);
    std::set<std::string> present;
    if (status == 200) {
      for (const json& e : b["value"]) present.insert(e.get<std::string>());
    } else {
      BOOST_TEST(status == 404, "set read answered " << status << ": " << b.dump());
    }
    size_t missing = 0;
    for (const auto& e : l->set_must) {
      if (!present.count(e) && ++missing <= 5) BOOST_ERROR("acknowledged set add lost: " << e);
    }
    BOOST_TEST(missing == 0u, missing << " acknowledged set adds lost");
    for (const auto& e : present) {
      if (!l->set_attempted.count(e)) BOOST_ERROR("set holds an element never added: " << e);
      if (l->set_must.insert(e).second) unacked_survivors++;
    }

    for (int t = 0; t < kThreads; ++t) {
      b = ReadJson(c.get(), "/v1/kv/" + RegisterKey(t), &status);
      uint64_t v = 0;
      if (status == 200) {
        v = b["value"].get<uint64_t>();
      } else {
        BOOST_TEST(status == 404, "register read answered " << status << ": " << b.dump());
      }
      BOOST_TEST(v >= l->reg_floor[t], "register " << t << " went back to " << v
                                                   << " from acknowledged " << l->reg_floor[t]);
      BOOST_TEST(v <= l->reg_attempted[t], "register " << t << " holds " << v
                                                       << ", never attempted (last attempt "
                                                       << l->reg_attempted[t] << ")");
      if (v > l->reg_floor[t]) unacked_survivors++;
      l->reg_floor[t] = std::max(l->reg_floor[t], v);
    }
  }
  return unacked_survivors;
}

}  // namespace

BOOST_AUTO_TEST_CASE(acknowledged_writes_survive_sigkill) {
  const uint64_t seed = EnvOr("MERIDIAN_CRASH_SEED", std::random_device()());
  const int cycles = static_cast<int>(EnvOr("MERIDIAN_CRASH_CYCLES", kDefaultCycles));
  std::cout << "crash_test: seed " << seed << " (rerun with MERIDIAN_CRASH_SEED=" << seed << "), "
            << cycles << " kill cycles" << std::endl;
  std::mt19937_64 rng(seed);

  NodeProcess node;
  Ledger ledger;
  uint64_t next_element[kThreads] = {};
  uint64_t total_acked = 0, survivors = 0, killed_in_flight = 0;
  const auto started = std::chrono::steady_clock::now();

  for (int cycle = 0; cycle < cycles; ++cycle) {
    BOOST_REQUIRE_MESSAGE(node.Start(), "meridiand did not start for cycle " << cycle);
    if (cycle > 0) survivors += Verify(&node, &ledger, cycle, seed);

    std::vector<ThreadLog> logs(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      uint64_t thread_seed = seed ^ (static_cast<uint64_t>(cycle) << 20) ^ static_cast<uint64_t>(t);
      threads.emplace_back(Drive, node.url(), t, thread_seed, ledger.reg_attempted[t],
                           &next_element[t], &logs[t]);
    }
    // Sometimes right away, mostly with a few hundred writes in flight.
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 300));
    node.Kill();
    for (auto& th : threads) th.join();

    for (int t = 0; t < kThreads; ++t) {
      const ThreadLog& g = logs[t];
      BOOST_TEST(g.unexpected.empty(),
                 "thread " << t << " in cycle " << cycle << ": " << g.unexpected);
      ledger.counter_attempted += g.counter_attempted;
      ledger.counter_floor += g.counter_acked;
      ledger.set_attempted.insert(g.set_attempted.begin(), g.set_attempted.end());
      ledger.set_must.insert(g.set_acked.begin(), g.set_acked.end());
      ledger.reg_attempted[t] = std::max(ledger.reg_attempted[t], g.reg_attempted);
      ledger.reg_floor[t] = std::max(ledger.reg_floor[t], g.reg_acked);
      total_acked += g.ops_acked;
      if (g.counter_attempted != g.counter_acked || g.set_attempted.size() != g.set_acked.size() ||
          g.reg_attempted != g.reg_acked) {
        killed_in_flight++;
      }
    }
  }

  BOOST_REQUIRE(node.Start());
  survivors += Verify(&node, &ledger, cycles, seed);
  BOOST_TEST(node.Stop(), "meridiand did not exit 0 on SIGTERM after the crash cycles");

  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cout << "crash_test: " << cycles << " cycles in " << secs << " s, " << total_acked
            << " acknowledged requests, " << killed_in_flight
            << " thread-cycles killed with a write in flight, " << survivors
            << " unacknowledged writes found applied" << std::endl;
  // The kills must have hit writes in flight, or the test proved little.
  BOOST_TEST(total_acked > 0u);
  BOOST_TEST(killed_in_flight > 0u);
}
