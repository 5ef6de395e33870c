// Replication between real meridiand processes on loopback (DESIGN.md §3,
// §4; the issue 4 API shapes): every test case starts its own cluster
// (tests/node/cluster_process.h) with heartbeat_interval_ms = 100 and a
// short anti-entropy interval, so peers go suspect after ~300 ms and down
// after ~1 s, and drives it over HTTP.
//
// Covered: convergence of writes of every type made in every region (3x1
// and 3x2), a SIGKILLed node catching up after a restart without losing
// what it acknowledged, a full partition (POST /v1/admin/faults) with
// concurrent writes on both sides that heals, w=N (success, 504 with the
// write kept, bad parameters), session tokens across regions (waiting,
// 503 not_caught_up, 400 for a bad token), the clock-skew write gate,
// /v1/status peers (up, lag, suspect, down) and metrics, and (issue 5)
// anti-entropy: a partial partition repaired through the third node with
// session tokens honoured, a wiped node rejoining as a new incarnation
// (503 bootstrapping until its first round, also across a restart; then
// refilled, with an exact counter across incarnations), --bootstrap, and
// a node down longer than the log retention caught up by anti-entropy, and
// register tombstones collected once every node holds them.
//
// Every wait is a poll with a deadline. On a failure every node's stderr
// is printed.
#define BOOST_TEST_MODULE replication
#include <algorithm>
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "node/http_client.h"
#include "tests/node/cluster_process.h"
#include "tests/support/wait_for.h"

using meridian::node::ClientResponse;
using meridian::node::EncodeKeyForPath;
using meridian::node::EncodeQueryValue;
using meridian::node::HttpClient;
using meridian::testing::ClusterOptions;
using meridian::testing::ClusterProcess;
using meridian::testing::WaitFor;
using nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// Generous bounds: each is a deadline for a poll, not a sleep.
constexpr milliseconds kConverge{20000};
constexpr milliseconds kWritable{10000};
constexpr milliseconds kPeerState{8000};

int64_t MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t).count();
}

// Polls `pred` every `step` until it holds or `timeout` passed.
std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// One HTTP exchange as the test saw it.
struct Reply {
  int status = 0;         // 0: no HTTP reply (see transport)
  std::string transport;  // the client's error when status == 0
  std::string raw;        // the body as received
  json body;              // parsed JSON body (null when it is not JSON)
  std::string token;      // X-Session-Token
  int64_t elapsed_ms = 0;

  std::string Describe() const {
    if (status == 0) return "no reply (" + transport + ")";
    std::string b = raw.size() > 600 ? raw.substr(0, 600) + "..." : raw;
    return std::to_string(status) + " " + b + (token.empty() ? "" : " [token " + token + "]");
  }
  std::string Error() const { return body.is_object() ? body.value("error", "") : ""; }
};

std::set<std::string> AsStringSet(const json& v) {
  std::set<std::string> out;
  if (v.is_array()) {
    for (const json& e : v) out.insert(e.is_string() ? e.get<std::string>() : e.dump());
  }
  return out;
}

std::string Join(const std::set<std::string>& s) {
  std::string out = "{";
  for (const auto& e : s) out += (out.size() > 1 ? ", " : "") + e;
  return out + "}";
}

// A cluster started (every node healthy and writable) for one test case,
// with one kept-alive client per node and the calls the tests need.
class Harness {
 public:
  explicit Harness(ClusterOptions options, std::vector<int> must_be_writable = {})
      : cluster_(std::move(options)) {
    clients_.resize(cluster_.size());
    BOOST_REQUIRE_MESSAGE(cluster_.Start(), "the cluster did not start (see the stderr above)");
    std::string why;
    BOOST_REQUIRE_MESSAGE(cluster_.WaitWritable(kWritable, must_be_writable, &why),
                          "expected every node to report \"writable\": true in /v1/health within "
                              << kWritable.count() << " ms; last replies:\n"
                              << why);
  }

  // A cluster whose nodes the test case starts itself (StartNode).
  struct Unstarted {};
  Harness(ClusterOptions options, Unstarted) : cluster_(std::move(options)) {
    clients_.resize(cluster_.size());
  }

  ClusterProcess& cluster() { return cluster_; }
  int size() const { return cluster_.size(); }
  const std::string& id(int i) const { return cluster_.node_id(i); }
  std::vector<int> All() const {
    std::vector<int> v;
    for (int i = 0; i < size(); ++i) v.push_back(i);
    return v;
  }

  void Kill(int i) {
    clients_[i].reset();
    cluster_.KillNode(i);
  }
  bool StartNode(int i) {
    clients_[i].reset();
    return cluster_.StartNode(i);
  }
  // SIGTERM and wait: true when it exited cleanly.
  bool Stop(int i) {
    clients_[i].reset();
    return cluster_.StopNode(i);
  }

  Reply Call(int i, const std::string& method, const std::string& target,
             const std::optional<json>& body = std::nullopt, Headers headers = {},
             milliseconds timeout = milliseconds(15000)) {
    if (!clients_[i]) clients_[i] = cluster_.Client(i);
    clients_[i]->set_timeout(timeout);
    if (body) headers.emplace_back("Content-Type", "application/json");
    ClientResponse res;
    Reply r;
    const auto t0 = Clock::now();
    meridian::Status st =
        clients_[i]->Request(method, target, body ? body->dump() : std::string(), headers, &res);
    r.elapsed_ms = MsSince(t0);
    if (!st.ok()) {
      r.transport = st.ToString();
      clients_[i].reset();  // reconnect next time
      return r;
    }
    r.status = res.status;
    r.raw = res.body;
    while (!r.raw.empty() && (r.raw.back() == '\n' || r.raw.back() == '\r')) r.raw.pop_back();
    r.token = res.Header("x-session-token");
    if (res.Header("content-type").compare(0, 16, "application/json") == 0) {
      r.body = json::parse(res.body, nullptr, /*allow_exceptions=*/false);
    }
    return r;
  }

  // Writes (query: "" or "?w=2&timeout_ms=500" and the like).
  Reply Put(int i, const std::string& key, const json& value, const std::string& query = "") {
    return Call(i, "PUT", "/v1/kv/" + EncodeKeyForPath(key) + query, value);
  }
  Reply Incr(int i, const std::string& key, int64_t n, const std::string& query = "") {
    return Call(i, "POST", "/v1/counter/" + EncodeKeyForPath(key) + query, json{{"add", n}});
  }
  Reply SAdd(int i, const std::string& key, const std::vector<std::string>& elements,
             const std::string& query = "") {
    return Call(i, "POST", "/v1/set/" + EncodeKeyForPath(key) + query, json{{"add", elements}});
  }
  Reply MapUpdate(int i, const std::string& key, const json& update,
                  const std::string& query = "") {
    return Call(i, "POST", "/v1/map/" + EncodeKeyForPath(key) + query, json{{"update", update}});
  }
  Reply Get(int i, const std::string& target, Headers headers = {}) {
    return Call(i, "GET", target, std::nullopt, std::move(headers));
  }

  json Status(int i) {
    Reply r = Get(i, "/v1/status");
    BOOST_REQUIRE_MESSAGE(r.status == 200 && r.body.is_object(),
                          "GET /v1/status at " << id(i) << ": expected 200 with a JSON object, got "
                                               << r.Describe());
    return r.body;
  }
  json Health(int i) {
    Reply r = Get(i, "/v1/health");
    BOOST_REQUIRE_MESSAGE(r.status == 200 && r.body.is_object(),
                          "GET /v1/health at " << id(i) << ": expected 200 with a JSON object, got "
                                               << r.Describe());
    return r.body;
  }
  // The /v1/status "peers" entry of `peer` at node i (null when absent).
  json Peer(int i, const std::string& peer) {
    json s = Status(i);
    if (s.contains("peers") && s["peers"].is_array()) {
      for (const json& p : s["peers"]) {
        if (p.is_object() && p.value("node", "") == peer) return p;
      }
    }
    return json();
  }
  std::string PeerState(int i, const std::string& peer) {
    json p = Peer(i, peer);
    return p.is_object() && p["state"].is_string() ? p["state"].get<std::string>() : "(absent)";
  }

  // POST /v1/admin/faults at node i; must answer 200.
  json Faults(int i, const json& body) {
    Reply r = Call(i, "POST", "/v1/admin/faults", body);
    BOOST_REQUIRE_MESSAGE(r.status == 200 && r.body.is_object(),
                          "POST /v1/admin/faults " << body.dump() << " at " << id(i)
                                                   << ": expected 200 with the faults in force, got "
                                                   << r.Describe());
    return r.body;
  }
  // Cuts node i from `peers` (gossip dropped both ways) and waits until i
  // sees none of them up and none of them sees i up, so that the cut is
  // known to be in force in both directions.
  void Cut(int i, const std::vector<int>& peers) {
    json drop = json::array();
    for (int p : peers) drop.push_back(id(p));
    json in_force = Faults(i, json{{"drop", drop}});
    BOOST_TEST(AsStringSet(in_force["drop"]) == AsStringSet(drop),
               "faults in force at " << id(i) << ": expected drop " << drop.dump() << ", got "
                                     << in_force.dump());
    std::string seen;
    bool cut = WaitFor(
        [&] {
          seen.clear();
          bool all = true;
          for (int p : peers) {
            std::string a = PeerState(i, id(p)), b = PeerState(p, id(i));
            seen += id(i) + " sees " + id(p) + " " + a + "; " + id(p) + " sees " + id(i) + " " +
                    b + "\n";
            all = all && a != "up" && b != "up";
          }
          return all;
        },
        kPeerState);
    BOOST_REQUIRE_MESSAGE(cut, "after dropping gossip between "
                                   << id(i) << " and " << drop.dump()
                                   << " expected neither side to show the other \"up\" within "
                                   << kPeerState.count() << " ms; last seen:\n"
                                   << seen);
  }
  void Heal(int i) {
    json in_force = Faults(i, json{{"drop", json::array()}, {"delay_ms", json::object()}});
    BOOST_TEST((in_force["drop"] == json::array() && in_force["delay_ms"] == json::object()),
               "healing at " << id(i) << ": expected {\"drop\":[],\"delay_ms\":{}}, got "
                             << in_force.dump());
  }

  // Reads every target at every node of `nodes`; true when each target
  // answers the same status and body everywhere. *diff says where not.
  bool SameEverywhere(const std::vector<std::string>& targets, const std::vector<int>& nodes,
                      std::string* diff) {
    for (const std::string& t : targets) {
      std::vector<std::string> seen;
      for (int i : nodes) {
        Reply r = Get(i, t);
        seen.push_back(r.status == 0 ? r.Describe() : std::to_string(r.status) + " " + r.raw);
      }
      if (std::adjacent_find(seen.begin(), seen.end(), std::not_equal_to<>()) != seen.end()) {
        std::ostringstream os;
        os << "GET " << t << " differs:\n";
        for (size_t k = 0; k < nodes.size(); ++k) os << "  " << id(nodes[k]) << ": " << seen[k] << "\n";
        *diff = os.str();
        return false;
      }
    }
    // Equal reads can still hide different states (two counters that each
    // took one increment of the other's): the nodes must also have applied
    // the same deltas. Entries at seq 0 (an origin that never wrote) are
    // left out: only its own node lists it.
    std::vector<std::string> tokens;
    for (int i : nodes) {
      json st = Status(i);
      std::string token = st.is_object() && st["session_token"].is_string()
                              ? st["session_token"].get<std::string>()
                              : std::string("(no status)");
      std::string kept;
      std::istringstream items(token);
      for (std::string item; std::getline(items, item, ',');) {
        if (item.size() >= 2 && item.compare(item.size() - 2, 2, ":0") == 0) continue;
        kept += (kept.empty() ? "" : ",") + item;
      }
      tokens.push_back(kept);
    }
    if (std::adjacent_find(tokens.begin(), tokens.end(), std::not_equal_to<>()) != tokens.end()) {
      std::ostringstream os;
      os << "applied vectors (/v1/status session_token) differ:\n";
      for (size_t k = 0; k < nodes.size(); ++k) os << "  " << id(nodes[k]) << ": " << tokens[k] << "\n";
      *diff = os.str();
      return false;
    }
    diff->clear();
    return true;
  }
  // Polls SameEverywhere; fails the test case (with the last difference)
  // after `timeout`.
  bool ExpectConverged(const std::vector<std::string>& targets, std::vector<int> nodes = {},
                       milliseconds timeout = kConverge) {
    if (nodes.empty()) nodes = All();
    std::string diff;
    const auto t0 = Clock::now();
    bool ok = WaitFor([&] { return SameEverywhere(targets, nodes, &diff); }, timeout,
                      milliseconds(50));
    BOOST_TEST(ok, "expected identical reads of " << targets.size() << " targets on "
                                                  << nodes.size() << " nodes within "
                                                  << timeout.count() << " ms; still after "
                                                  << MsSince(t0) << " ms:\n"
                                                  << diff);
    return ok;
  }

 private:
  ClusterProcess cluster_;
  std::vector<std::unique_ptr<HttpClient>> clients_;
};

// A write that must succeed.
void ExpectOk(const Reply& r, const std::string& what) {
  BOOST_REQUIRE_MESSAGE(r.status == 200, what << ": expected 200, got " << r.Describe());
  BOOST_TEST(!r.token.empty(), what << ": expected an X-Session-Token on the 200 reply");
}

// An error reply {"error": code, "message": non-empty}.
void ExpectError(const Reply& r, int status, const std::string& code, const std::string& what) {
  BOOST_TEST((r.status == status && r.Error() == code),
             what << ": expected " << status << " " << code << ", got " << r.Describe());
  BOOST_TEST((r.body.is_object() && r.body.contains("message") && r.body["message"].is_string() &&
              !r.body["message"].get<std::string>().empty()),
             what << ": expected a non-empty \"message\" in " << r.Describe());
}

// The "value" of a 200 read (null, with a test failure, otherwise).
json ValueOf(const Reply& r, const std::string& what) {
  BOOST_TEST((r.status == 200 && r.body.is_object() && r.body.contains("value")),
             what << ": expected 200 with a value, got " << r.Describe());
  return r.body.is_object() && r.body.contains("value") ? r.body["value"] : json();
}

ClusterOptions ThreeRegions(int nodes_per_region = 1) {
  ClusterOptions o;
  o.regions = 3;
  o.nodes_per_region = nodes_per_region;
  return o;
}

ClusterOptions WithFaults(ClusterOptions o) {
  o.args_for_all.push_back("--enable-fault-injection");
  return o;
}

// Writes one key at every node and waits until all hold all of them: the
// cluster's gossip sessions are up.
void WarmUp(Harness& h, const std::string& prefix) {
  std::vector<std::string> targets;
  for (int i = 0; i < h.size(); ++i) {
    ExpectOk(h.Put(i, prefix + h.id(i), i), "warm-up PUT at " + h.id(i));
    targets.push_back("/v1/kv/" + prefix + h.id(i));
  }
  BOOST_REQUIRE(h.ExpectConverged(targets));
  for (int i = 0; i < h.size(); ++i) {
    BOOST_REQUIRE_MESSAGE(h.Get(i, targets.back()).status == 200,
                          "warm-up: expected " << targets.back() << " at " << h.id(i));
  }
}

// The value of the first sample of metric `family` in Prometheus text
// whose labels contain `label` (any sample when empty); nullopt when none.
std::optional<double> Metric(const std::string& text, const std::string& family,
                             const std::string& label = "") {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, family.size(), family) != 0 || line.size() == family.size()) continue;
    size_t rest = family.size();
    std::string labels;
    if (line[rest] == '{') {
      size_t close = line.find('}', rest);
      if (close == std::string::npos) continue;
      labels = line.substr(rest, close - rest + 1);
      rest = close + 1;
    } else if (line[rest] != ' ') {
      continue;  // a longer name
    }
    if (!label.empty() && labels.find(label) == std::string::npos) continue;
    try {
      return std::stod(line.substr(rest));
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::string Show(const std::optional<double>& v) {
  return v ? std::to_string(*v) : std::string("(no sample)");
}

const std::regex kTokenShape("^[A-Za-z0-9._-]+#[0-9]+:[0-9]+(,[A-Za-z0-9._-]+#[0-9]+:[0-9]+)*$");

// A session token (or /v1/status session_token) as replica -> applied seq:
// "us-east-1#123:4,eu-west-1#567:8" -> {us-east-1#123: 4, eu-west-1#567: 8}.
std::map<std::string, uint64_t> TokenEntries(const std::string& token) {
  std::map<std::string, uint64_t> out;
  std::istringstream items(token);
  for (std::string item; std::getline(items, item, ',');) {
    size_t colon = item.rfind(':');
    if (colon == std::string::npos) continue;
    try {
      out[item.substr(0, colon)] = std::stoull(item.substr(colon + 1));
    } catch (const std::exception&) {
    }
  }
  return out;
}

// An integer field of a JSON object (-1 when absent or not an integer).
int64_t IntField(const json& o, const std::string& name) {
  return o.is_object() && o.contains(name) && o[name].is_number_integer() ? o[name].get<int64_t>()
                                                                          : -1;
}

// Polls until every node of `nodes` reports the same /v1/status
// state_digest; fails the test case (with the last digests) after `timeout`.
bool ExpectSameDigest(Harness& h, const std::vector<int>& nodes, milliseconds timeout = kConverge) {
  std::string seen;
  bool same = WaitFor(
      [&] {
        seen.clear();
        std::set<std::string> digests;
        for (int i : nodes) {
          json d = h.Status(i)["state_digest"];
          std::string v = d.is_string() ? d.get<std::string>() : "(none: " + d.dump() + ")";
          digests.insert(v);
          seen += "  " + h.id(i) + ": " + v + "\n";
        }
        return digests.size() == 1 && seen.find("(none") == std::string::npos;
      },
      timeout, milliseconds(50));
  BOOST_TEST(same, "expected the same /v1/status state_digest on "
                       << nodes.size() << " nodes within " << timeout.count() << " ms; last seen:\n"
                       << seen);
  return same;
}

// Waits until node i's log is acknowledged by every peer (each peer entry
// of its /v1/status: unacked_deltas 0 and acked == last_seq).
bool ExpectLogAcknowledged(Harness& h, int i) {
  std::string seen;
  bool acked = WaitFor(
      [&] {
        json st = h.Status(i);
        seen = st["peers"].dump() + " last_seq " + st["last_seq"].dump();
        if (!st["peers"].is_array() || st["peers"].empty()) return false;
        for (const json& p : st["peers"]) {
          if (p["unacked_deltas"] != json(0) || p["acked"] != st["last_seq"]) return false;
        }
        return true;
      },
      kConverge);
  BOOST_TEST(acked, h.id(i) << ": expected every peer to acknowledge its whole log (unacked_deltas "
                            << "0, acked == last_seq) within " << kConverge.count()
                            << " ms; last seen " << seen);
  return acked;
}

// Node i refuses writes of every route with 503 `code` for at least `span`
// (one incr every ~100 ms, and each other write route once), applying none
// of them.
void ExpectWritesRefusedFor(Harness& h, int i, const std::string& code, milliseconds span,
                            const std::string& what) {
  const std::string prefix = "refused/" + h.id(i) + "/";
  ExpectError(h.Put(i, prefix + "reg", 1), 503, code, "PUT at " + what);
  ExpectError(h.SAdd(i, prefix + "set", {"e"}), 503, code, "sadd at " + what);
  ExpectError(h.MapUpdate(i, prefix + "map", json{{"n", {{"type", "counter"}, {"add", 1}}}}), 503,
              code, "map update at " + what);
  ExpectError(h.Call(i, "DELETE", "/v1/kv/" + prefix + "reg"), 503, code, "DELETE at " + what);
  ExpectError(h.Call(i, "POST", "/v1/batch",
                     json::array({json{{"op", "put"}, {"key", prefix + "batch"}, {"value", 1}}})),
              503, code, "batch at " + what);
  const auto t0 = Clock::now();
  int attempts = 0;
  do {
    Reply r = h.Incr(i, prefix + "counter", 1);
    ++attempts;
    if (r.status != 503 || r.Error() != code) {
      BOOST_ERROR("incr at " << what << " " << MsSince(t0) << " ms into a " << span.count()
                             << " ms window (attempt " << attempts << "): expected 503 " << code
                             << ", got " << r.Describe());
      break;
    }
    std::this_thread::sleep_for(milliseconds(100));
  } while (Clock::now() - t0 < span);
  for (const std::string& key :
       {"/v1/kv/" + prefix + "reg", "/v1/set/" + prefix + "set", "/v1/map/" + prefix + "map",
        "/v1/counter/" + prefix + "counter", "/v1/kv/" + prefix + "batch"}) {
    Reply g = h.Get(i, key);
    BOOST_TEST(g.status == 404, "GET " << key << " at " << what << " after refused writes: "
                                       << "expected 404, got " << g.Describe());
  }
}

}  // namespace

// 1. Writes of every type in every region converge to identical reads.
BOOST_AUTO_TEST_CASE(writes_in_every_region_converge) {
  Harness h(ThreeRegions());
  std::vector<std::string> targets = {"/v1/counter/conv/counter", "/v1/set/conv/set",
                                      "/v1/kv/conv/reg-shared", "/v1/map/conv/map"};
  for (int i = 0; i < h.size(); ++i) {
    const std::string r = h.id(i);
    for (int k = 0; k < 3; ++k) ExpectOk(h.Incr(i, "conv/counter", i + 1), "incr at " + r);
    ExpectOk(h.Incr(i, "conv/counter-" + r, 10 + i), "incr own counter at " + r);
    ExpectOk(h.SAdd(i, "conv/set", {"from-" + r, "common"}), "sadd at " + r);
    ExpectOk(h.Put(i, "conv/reg-" + r, json{{"node", r}, {"n", i}}), "put own register at " + r);
    ExpectOk(h.Put(i, "conv/reg-shared", r), "put shared register at " + r);
    ExpectOk(h.MapUpdate(i, "conv/map",
                         json{{"f-" + r, {{"type", "register"}, {"set", r}}},
                              {"visits", {{"type", "counter"}, {"add", 1}}},
                              {"tags", {{"type", "set"}, {"sadd", {r}}}}}),
             "map update at " + r);
    targets.push_back("/v1/counter/conv/counter-" + r);
    targets.push_back("/v1/kv/conv/reg-" + r);
  }
  targets.push_back("/v1/scan?prefix=conv/&limit=1000");
  BOOST_REQUIRE(h.ExpectConverged(targets));

  // Converged: one node's reads stand for all. Check they hold every write.
  const int n = h.size();
  json c = ValueOf(h.Get(0, "/v1/counter/conv/counter"), "counter");
  BOOST_TEST(c == json(3 * n * (n + 1) / 2),
             "conv/counter: expected " << 3 * n * (n + 1) / 2 << " (every increment), got " << c);
  std::set<std::string> want_set = {"common"}, regions;
  for (int i = 0; i < n; ++i) {
    want_set.insert("from-" + h.id(i));
    regions.insert(h.id(i));
    json own = ValueOf(h.Get(0, "/v1/counter/conv/counter-" + h.id(i)), "own counter");
    BOOST_TEST(own == json(10 + i), "conv/counter-" << h.id(i) << ": expected " << 10 + i
                                                    << ", got " << own);
    json reg = ValueOf(h.Get(0, "/v1/kv/conv/reg-" + h.id(i)), "own register");
    BOOST_TEST(reg == (json{{"node", h.id(i)}, {"n", i}}),
               "conv/reg-" << h.id(i) << ": expected its writer's value, got " << reg);
  }
  std::set<std::string> got_set = AsStringSet(ValueOf(h.Get(0, "/v1/set/conv/set"), "set"));
  BOOST_TEST(got_set == want_set,
             "conv/set: expected " << Join(want_set) << ", got " << Join(got_set));
  json shared = ValueOf(h.Get(0, "/v1/kv/conv/reg-shared"), "shared register");
  BOOST_TEST((shared.is_string() && regions.count(shared.get<std::string>()) == 1),
             "conv/reg-shared: expected one of the written values, got " << shared);
  json m = ValueOf(h.Get(0, "/v1/map/conv/map"), "map");
  BOOST_TEST(m["visits"]["value"] == json(n),
             "conv/map visits: expected counter " << n << ", got " << m.dump());
  BOOST_TEST(AsStringSet(m["tags"]["value"]) == regions,
             "conv/map tags: expected " << Join(regions) << ", got " << m.dump());
  for (int i = 0; i < n; ++i) {
    BOOST_TEST(m["f-" + h.id(i)]["value"] == json(h.id(i)),
               "conv/map f-" << h.id(i) << ": expected \"" << h.id(i) << "\", got " << m.dump());
  }
  Reply scan = h.Get(0, "/v1/scan?prefix=conv/&limit=1000");
  const size_t want_keys = 3 + 2 * static_cast<size_t>(n) + 1;
  BOOST_TEST((scan.body.is_object() && scan.body["items"].size() == want_keys),
             "scan conv/: expected " << want_keys << " items, got " << scan.Describe());
}

// 2. A node killed with SIGKILL under load restarts on its data dir and
//    catches up, and what it acknowledged before dying reaches every node.
BOOST_AUTO_TEST_CASE(a_sigkilled_node_restarts_and_catches_up) {
  Harness h(ThreeRegions());
  WarmUp(h, "warm/");
  const int victim = 0;

  // A writer on the victim until the kill breaks its connection.
  struct Log {
    int64_t acked = 0, attempted = 0;
    std::vector<std::string> set_acked, set_attempted;
    int64_t reg_acked = 0, reg_attempted = 0;
    std::string unexpected;
  } log;
  std::atomic<int> acked_ops{0};
  std::thread writer([&] {
    std::unique_ptr<HttpClient> c = h.cluster().Client(victim);
    c->set_timeout(milliseconds(5000));
    const Headers j = {{"Content-Type", "application/json"}};
    const auto end = Clock::now() + std::chrono::seconds(10);
    for (int k = 1; k <= 20000 && Clock::now() < end; ++k) {
      ClientResponse res;
      meridian::Status st;
      if (k % 3 == 0) {
        log.attempted += 1;
        st = c->Request("POST", "/v1/counter/kill/counter", json{{"add", 1}}.dump(), j, &res);
        if (st.ok() && res.status == 200) log.acked += 1;
      } else if (k % 3 == 1) {
        std::string e = "v-" + std::to_string(k);
        log.set_attempted.push_back(e);
        st = c->Request("POST", "/v1/set/kill/set", json{{"add", {e}}}.dump(), j, &res);
        if (st.ok() && res.status == 200) log.set_acked.push_back(e);
      } else {
        log.reg_attempted = k;
        st = c->Request("PUT", "/v1/kv/kill/reg", json(k).dump(), j, &res);
        if (st.ok() && res.status == 200) log.reg_acked = k;
      }
      if (!st.ok()) return;  // killed: this request's fate is unknown
      if (res.status != 200) {
        log.unexpected = "status " + std::to_string(res.status) + ": " + res.body;
        return;
      }
      acked_ops++;
    }
  });
  // Kill once a few writes went through (bounded), mid-stream.
  bool some = WaitFor([&] { return acked_ops.load() >= 30; }, milliseconds(10000), milliseconds(5));
  h.Kill(victim);
  writer.join();
  BOOST_REQUIRE_MESSAGE(some, "expected 30 acknowledged writes at " << h.id(victim)
                                                                    << " before the kill, saw "
                                                                    << acked_ops.load());
  BOOST_REQUIRE_MESSAGE(log.unexpected.empty(), "writer at " << h.id(victim)
                                                             << ": expected only 200s, got "
                                                             << log.unexpected);

  // Writes elsewhere while it is down.
  int64_t others = 0;
  for (int i = 1; i < h.size(); ++i) {
    ExpectOk(h.Incr(i, "kill/counter", 100), "incr at " + h.id(i) + " while the victim is down");
    others += 100;
    ExpectOk(h.SAdd(i, "kill/set", {"while-down-" + h.id(i)}), "sadd at " + h.id(i));
    ExpectOk(h.Put(i, "kill/while-down-" + h.id(i), i), "put at " + h.id(i));
  }
  std::vector<std::string> targets = {"/v1/counter/kill/counter", "/v1/set/kill/set",
                                      "/v1/kv/kill/reg", "/v1/scan?prefix=kill/&limit=1000"};
  for (int i = 1; i < h.size(); ++i) targets.push_back("/v1/kv/kill/while-down-" + h.id(i));

  BOOST_REQUIRE_MESSAGE(h.StartNode(victim), "restarting " << h.id(victim) << " failed");
  std::string why;
  BOOST_REQUIRE_MESSAGE(h.cluster().WaitWritable(kWritable, {victim}, &why),
                        "expected " << h.id(victim) << " writable after its restart; " << why);
  BOOST_REQUIRE(h.ExpectConverged(targets));

  for (int i = 0; i < h.size(); ++i) {
    const std::string at = " at " + h.id(i);
    json c = ValueOf(h.Get(i, "/v1/counter/kill/counter"), "kill/counter" + at);
    BOOST_TEST((c.is_number_integer() && c.get<int64_t>() >= log.acked + others &&
                c.get<int64_t>() <= log.attempted + others),
               "kill/counter" << at << ": expected between " << log.acked + others
                              << " (acknowledged) and " << log.attempted + others
                              << " (attempted), got " << c);
    std::set<std::string> s = AsStringSet(ValueOf(h.Get(i, "/v1/set/kill/set"), "kill/set" + at));
    size_t lost = 0;
    for (const auto& e : log.set_acked) {
      if (!s.count(e) && ++lost <= 5) BOOST_ERROR("kill/set" << at << ": acknowledged " << e << " lost");
    }
    BOOST_TEST(lost == 0u, "kill/set" << at << ": expected all " << log.set_acked.size()
                                      << " acknowledged adds, " << lost << " missing");
    std::set<std::string> allowed(log.set_attempted.begin(), log.set_attempted.end());
    for (int k = 1; k < h.size(); ++k) allowed.insert("while-down-" + h.id(k));
    for (const auto& e : s) {
      BOOST_TEST(allowed.count(e) == 1u, "kill/set" << at << ": holds " << e << ", never added");
    }
    json reg = ValueOf(h.Get(i, "/v1/kv/kill/reg"), "kill/reg" + at);
    BOOST_TEST((reg.is_number_integer() && reg.get<int64_t>() >= log.reg_acked &&
                reg.get<int64_t>() <= log.reg_attempted),
               "kill/reg" << at << ": expected between " << log.reg_acked << " and "
                          << log.reg_attempted << ", got " << reg);
    for (int k = 1; k < h.size(); ++k) {
      json v = ValueOf(h.Get(i, "/v1/kv/kill/while-down-" + h.id(k)), "while-down" + at);
      BOOST_TEST(v == json(k), "kill/while-down-" << h.id(k) << at << ": expected " << k
                                                   << ", got " << v);
    }
  }
  // The restarted node takes writes and they replicate.
  ExpectOk(h.Incr(victim, "kill/after", 5), "incr at the restarted node");
  BOOST_REQUIRE(h.ExpectConverged({"/v1/counter/kill/after"}));
  json after = ValueOf(h.Get(h.size() - 1, "/v1/counter/kill/after"), "kill/after");
  BOOST_TEST(after == json(5), "kill/after: expected 5, got " << after);
}

// 3. A full partition with concurrent writes on both sides heals and
//    converges; counters hold every acknowledged increment.
BOOST_AUTO_TEST_CASE(a_full_partition_heals_and_converges) {
  Harness h(WithFaults(ThreeRegions()));
  WarmUp(h, "warm/");

  // The faults route refuses bad shapes and unknown nodes.
  const json bad[] = {json{{"drop", {"no-such-node"}}},
                      json{{"drop", "eu-west-1"}},
                      json{{"delay_ms", {{"eu-west-1", -5}}}},
                      json{{"delay_ms", {{"eu-west-1", 60001}}}},
                      json{{"delay_ms", {{"eu-west-1", "10"}}}},
                      json{{"delay_ms", {{"nobody", 10}}}},
                      json::array()};
  for (const json& b : bad) {
    ExpectError(h.Call(0, "POST", "/v1/admin/faults", b), 400, "bad_request",
                "POST /v1/admin/faults " + b.dump());
  }
  Reply none = h.Get(0, "/v1/admin/faults");
  BOOST_TEST((none.status == 200 && none.body == json({{"drop", json::array()}, {"delay_ms", json::object()}})),
             "GET /v1/admin/faults with nothing in force: expected {\"drop\":[],\"delay_ms\":{}}, got "
                 << none.Describe());

  // Cut node 0 from both others (set at node 0 only: both directions).
  h.Cut(0, {1, 2});
  Reply in_force = h.Get(0, "/v1/admin/faults");
  BOOST_TEST((in_force.status == 200 &&
              AsStringSet(in_force.body["drop"]) == AsStringSet(json{h.id(1), h.id(2)})),
             "GET /v1/admin/faults: expected drop [" << h.id(1) << ", " << h.id(2) << "], got "
                                                     << in_force.Describe());

  // Side A: node 0. Side B: nodes 1 and 2. Same keys on both sides.
  int64_t total = 0;
  for (int k = 0; k < 5; ++k) {
    ExpectOk(h.Incr(0, "part/counter", 1), "incr on side A");
    total += 1;
  }
  ExpectOk(h.SAdd(0, "part/set", {"a1", "a2"}), "sadd on side A");
  ExpectOk(h.Put(0, "part/reg", "from-a"), "put on side A");
  ExpectOk(h.MapUpdate(0, "part/map", json{{"n", {{"type", "counter"}, {"add", 1}}},
                                           {"who", {{"type", "set"}, {"sadd", {"a"}}}}}),
           "map update on side A");
  for (int i = 1; i <= 2; ++i) {
    for (int k = 0; k < 3; ++k) {
      ExpectOk(h.Incr(i, "part/counter", 10 * i), "incr on side B at " + h.id(i));
      total += 10 * i;
    }
    ExpectOk(h.SAdd(i, "part/set", {"b" + std::to_string(i)}), "sadd on side B");
    ExpectOk(h.Put(i, "part/reg", "from-" + h.id(i)), "put on side B");
    ExpectOk(h.MapUpdate(i, "part/map", json{{"n", {{"type", "counter"}, {"add", 1}}},
                                             {"who", {{"type", "set"}, {"sadd", {h.id(i)}}}}}),
             "map update on side B");
  }
  const std::vector<std::string> targets = {"/v1/counter/part/counter", "/v1/set/part/set",
                                            "/v1/kv/part/reg", "/v1/map/part/map",
                                            "/v1/scan?prefix=part/&limit=1000"};
  // Side B converges on its own; side A has seen none of it.
  BOOST_REQUIRE(h.ExpectConverged(targets, {1, 2}));
  json b_counter = ValueOf(h.Get(1, "/v1/counter/part/counter"), "side B counter");
  BOOST_TEST(b_counter == json(total - 5),
             "side B counter during the partition: expected " << total - 5 << ", got " << b_counter);
  json a_counter = ValueOf(h.Get(0, "/v1/counter/part/counter"), "side A counter");
  BOOST_TEST(a_counter == json(5),
             "side A counter during the partition: expected 5 (its own only), got " << a_counter);
  std::set<std::string> a_set = AsStringSet(ValueOf(h.Get(0, "/v1/set/part/set"), "side A set"));
  BOOST_TEST(a_set == (std::set<std::string>{"a1", "a2"}),
             "side A set during the partition: expected {a1, a2}, got " << Join(a_set));

  h.Heal(0);
  BOOST_REQUIRE(h.ExpectConverged(targets));
  for (int i = 0; i < h.size(); ++i) {
    const std::string at = " at " + h.id(i) + " after healing";
    json c = ValueOf(h.Get(i, "/v1/counter/part/counter"), "counter" + at);
    BOOST_TEST(c == json(total), "part/counter" << at << ": expected " << total
                                                << " (every acknowledged increment), got " << c);
    std::set<std::string> s = AsStringSet(ValueOf(h.Get(i, "/v1/set/part/set"), "set" + at));
    BOOST_TEST(s == (std::set<std::string>{"a1", "a2", "b1", "b2"}),
               "part/set" << at << ": expected {a1, a2, b1, b2}, got " << Join(s));
    json reg = ValueOf(h.Get(i, "/v1/kv/part/reg"), "register" + at);
    std::set<std::string> written = {"from-a", "from-" + h.id(1), "from-" + h.id(2)};
    BOOST_TEST((reg.is_string() && written.count(reg.get<std::string>()) == 1),
               "part/reg" << at << ": expected one of the written values, got " << reg);
    json m = ValueOf(h.Get(i, "/v1/map/part/map"), "map" + at);
    BOOST_TEST(m["n"]["value"] == json(3), "part/map n" << at << ": expected 3, got " << m.dump());
    BOOST_TEST(AsStringSet(m["who"]["value"]) == (std::set<std::string>{"a", h.id(1), h.id(2)}),
               "part/map who" << at << ": expected every side's add, got " << m.dump());
  }
}

// 4. w=N: success once N regions hold the write; 504 with the write kept
//    when the other regions are cut off, and it replicates after healing.
BOOST_AUTO_TEST_CASE(w_n_waits_for_regions_and_times_out_when_cut_off) {
  Harness h(WithFaults(ThreeRegions()));
  WarmUp(h, "warm/");

  Reply r = h.Put(0, "w/two", "two", "?w=2");
  ExpectOk(r, "PUT w/two?w=2");
  int holders = 0;
  for (int i = 1; i < h.size(); ++i) holders += h.Get(i, "/v1/kv/w/two").status == 200 ? 1 : 0;
  BOOST_TEST(holders >= 1, "right after a w=2 success: expected another region to hold w/two, "
                           "found it on "
                               << holders << " of " << h.size() - 1);

  r = h.Put(0, "w/three", "three", "?w=3&timeout_ms=10000");
  ExpectOk(r, "PUT w/three?w=3");
  for (int i = 1; i < h.size(); ++i) {
    Reply g = h.Get(i, "/v1/kv/w/three");
    BOOST_TEST(g.status == 200, "right after a w=3 success: expected w/three at "
                                    << h.id(i) << ", got " << g.Describe());
  }
  ExpectOk(h.Incr(1, "w/counter", 3, "?w=2"), "POST counter?w=2");
  ExpectOk(h.SAdd(2, "w/set", {"x"}, "?w=3"), "POST set?w=3");
  Reply batch = h.Call(0, "POST", "/v1/batch?w=3",
                       json::array({json{{"op", "incr"}, {"key", "w/batch"}, {"by", 2}},
                                    json{{"op", "put"}, {"key", "w/batch-reg"}, {"value", 1}}}));
  ExpectOk(batch, "POST /v1/batch?w=3");
  for (int i = 1; i < h.size(); ++i) {
    Reply g = h.Get(i, "/v1/counter/w/batch");
    BOOST_TEST(g.status == 200, "right after a w=3 batch: expected w/batch at "
                                    << h.id(i) << ", got " << g.Describe());
  }

  // Out-of-range parameters.
  for (const char* q : {"?w=0", "?w=4", "?w=x", "?w=", "?w=-1", "?timeout_ms=0",
                        "?timeout_ms=60001", "?timeout_ms=abc", "?w=2&timeout_ms=-3"}) {
    ExpectError(h.Put(0, "w/bad", 1, q), 400, "bad_request", std::string("PUT w/bad") + q);
    ExpectError(h.Call(0, "POST", std::string("/v1/batch") + q,
                       json::array({json{{"op", "incr"}, {"key", "w/bad-batch"}, {"by", 1}}})),
                400, "bad_request", std::string("POST /v1/batch") + q);
  }
  BOOST_TEST(h.Get(0, "/v1/kv/w/bad").status == 404,
             "a write refused for its parameters must not be applied");

  // Cut node 0 off: w=2 cannot be met.
  h.Cut(0, {1, 2});
  r = h.Put(0, "w/cut", "kept", "?w=2&timeout_ms=800");
  ExpectError(r, 504, "timeout", "PUT w/cut?w=2&timeout_ms=800 while cut off");
  BOOST_TEST((r.body.is_object() && r.body["acknowledged"] == json(1) &&
              r.body["required"] == json(2)),
             "504 body: expected \"acknowledged\":1, \"required\":2, got " << r.Describe());
  BOOST_TEST(!r.token.empty(), "504 reply: expected an X-Session-Token, got none");
  BOOST_TEST((r.elapsed_ms >= 700 && r.elapsed_ms < 5000),
             "504 after timeout_ms=800: expected to wait about 800 ms, took " << r.elapsed_ms);
  r = h.Incr(0, "w/cut-counter", 7, "?w=3&timeout_ms=400");
  ExpectError(r, 504, "timeout", "POST counter w/cut-counter?w=3&timeout_ms=400 while cut off");
  BOOST_TEST((r.body.is_object() && r.body["acknowledged"] == json(1) &&
              r.body["required"] == json(3)),
             "504 body: expected \"acknowledged\":1, \"required\":3, got " << r.Describe());

  // Kept locally, nowhere else yet.
  json v = ValueOf(h.Get(0, "/v1/kv/w/cut"), "w/cut at the cut-off node");
  BOOST_TEST(v == json("kept"), "w/cut after its 504: expected \"kept\" locally, got " << v);
  for (int i = 1; i < h.size(); ++i) {
    Reply g = h.Get(i, "/v1/kv/w/cut");
    BOOST_TEST(g.status == 404, "w/cut at " << h.id(i) << " during the cut: expected 404, got "
                                             << g.Describe());
  }

  h.Heal(0);
  BOOST_REQUIRE(h.ExpectConverged({"/v1/kv/w/cut", "/v1/counter/w/cut-counter"}));
  for (int i = 0; i < h.size(); ++i) {
    json cut = ValueOf(h.Get(i, "/v1/kv/w/cut"), "w/cut after healing");
    BOOST_TEST(cut == json("kept"), "w/cut at " << h.id(i) << " after healing: expected \"kept\", got "
                                                << cut);
    json c = ValueOf(h.Get(i, "/v1/counter/w/cut-counter"), "w/cut-counter after healing");
    BOOST_TEST(c == json(7), "w/cut-counter at " << h.id(i) << ": expected 7, got " << c);
  }
  ExpectOk(h.Put(0, "w/after", 1, "?w=3"), "PUT w/after?w=3 after healing");
}

// 5. A session token from a write in one region makes a read in another
//    wait until that write is there; one that cannot arrive -> 503.
BOOST_AUTO_TEST_CASE(a_session_token_read_in_another_region_sees_the_write) {
  Harness h(WithFaults(ThreeRegions()));
  WarmUp(h, "warm/");
  const int a = 0, b = 1, c = 2;

  for (int k = 0; k < 20; ++k) {
    const std::string key = "tok/k" + std::to_string(k);
    Reply w = h.Put(a, key, k);
    ExpectOk(w, "PUT " + key + " at A");
    BOOST_TEST(std::regex_match(w.token, kTokenShape),
               "X-Session-Token: expected node#inc:seq[,...], got '" << w.token << "'");
    Reply g = h.Get(b, "/v1/kv/" + key, {{"X-Session-Token", w.token}});
    BOOST_TEST((g.status == 200 && g.body.is_object() && g.body["value"] == json(k)),
               "GET " << key << " at B with A's token " << w.token << ": expected 200 value " << k
                      << ", got " << g.Describe());
  }
  // Every read route honours the token.
  Reply w = h.Incr(a, "tok/counter", 4);
  ExpectOk(w, "incr at A");
  Reply g = h.Get(b, "/v1/counter/tok/counter", {{"X-Session-Token", w.token}});
  BOOST_TEST((g.status == 200 && g.body["value"] == json(4)),
             "counter at B with A's token: expected 4, got " << g.Describe());
  w = h.SAdd(a, "tok/set", {"e"});
  ExpectOk(w, "sadd at A");
  g = h.Get(c, "/v1/set/tok/set", {{"X-Session-Token", w.token}});
  BOOST_TEST((g.status == 200 && AsStringSet(g.body["value"]) == std::set<std::string>{"e"}),
             "set at C with A's token: expected [\"e\"], got " << g.Describe());
  w = h.MapUpdate(a, "tok/map", json{{"f", {{"type", "register"}, {"set", "v"}}}});
  ExpectOk(w, "map update at A");
  g = h.Get(b, "/v1/map/tok/map", {{"X-Session-Token", w.token}});
  BOOST_TEST((g.status == 200 && g.body["value"]["f"]["value"] == json("v")),
             "map at B with A's token: expected f = \"v\", got " << g.Describe());
  w = h.Put(a, "tok/zz-last", "last");
  ExpectOk(w, "put at A");
  g = h.Get(b, "/v1/scan?prefix=tok/zz&limit=10", {{"X-Session-Token", w.token}});
  BOOST_TEST((g.status == 200 && g.body["items"].size() == 1u),
             "scan at B with A's token: expected the one item written, got " << g.Describe());

  // Gossip between A and B delayed: B has to wait (or learn it through C).
  h.Faults(a, json{{"delay_ms", {{h.id(b), 300}}}});
  w = h.Put(a, "tok/delayed", "slow");
  ExpectOk(w, "put at A with a delay to B");
  g = h.Call(b, "GET", "/v1/kv/tok/delayed?timeout_ms=5000", std::nullopt,
             {{"X-Session-Token", w.token}});
  BOOST_TEST((g.status == 200 && g.body["value"] == json("slow")),
             "GET tok/delayed at B with the token while gossip A-B is delayed 300 ms: expected 200 "
             "\"slow\", got "
                 << g.Describe());
  h.Heal(a);

  // Malformed tokens and timeouts.
  for (const char* bad : {"garbage", "node#x:1", "us-east-1#1", ":::", "us-east-1#1:2,",
                          "us-east-1#1:-1", "us-east-1#1: 2"}) {
    ExpectError(h.Get(b, "/v1/kv/tok/k0", {{"X-Session-Token", bad}}), 400, "bad_request",
                std::string("GET with X-Session-Token '") + bad + "'");
  }
  for (const char* q : {"?timeout_ms=0", "?timeout_ms=60001", "?timeout_ms=x"}) {
    ExpectError(h.Get(b, std::string("/v1/kv/tok/k0") + q, {{"X-Session-Token", w.token}}), 400,
                "bad_request", std::string("GET tok/k0") + q + " with a token");
  }

  // B cut off from everyone: A's next write cannot reach it.
  h.Cut(b, {a, c});
  w = h.Put(a, "tok/unreachable", "far");
  ExpectOk(w, "put at A while B is cut off");
  g = h.Call(b, "GET", "/v1/kv/tok/unreachable?timeout_ms=400", std::nullopt,
             {{"X-Session-Token", w.token}});
  ExpectError(g, 503, "not_caught_up", "GET tok/unreachable at the cut-off B with A's token");
  BOOST_TEST((g.body.is_object() && g.body["behind"].is_number_integer() &&
              g.body["behind"].get<int64_t>() >= 1),
             "503 not_caught_up: expected \"behind\" >= 1, got " << g.Describe());
  BOOST_TEST((g.elapsed_ms >= 350 && g.elapsed_ms < 5000),
             "not_caught_up after timeout_ms=400: expected to wait about 400 ms, took "
                 << g.elapsed_ms);
  // Scan too.
  g = h.Call(b, "GET", "/v1/scan?prefix=tok/&timeout_ms=200", std::nullopt,
             {{"X-Session-Token", w.token}});
  ExpectError(g, 503, "not_caught_up", "GET /v1/scan at the cut-off B with A's token");

  h.Heal(b);
  g = h.Call(b, "GET", "/v1/kv/tok/unreachable?timeout_ms=10000", std::nullopt,
             {{"X-Session-Token", w.token}});
  BOOST_TEST((g.status == 200 && g.body["value"] == json("far")),
             "GET tok/unreachable at B after healing, with the token: expected 200 \"far\", got "
                 << g.Describe());
}

// 6. A node whose clock is far ahead refuses writes; the others go on and
//    refuse its messages.
BOOST_AUTO_TEST_CASE(a_node_with_a_skewed_clock_refuses_writes) {
  ClusterOptions o = ThreeRegions();
  const int skewed = 2;
  const int64_t offset = 3 * static_cast<int64_t>(o.max_clock_offset_ms);
  o.args[skewed] = {"--clock-offset-ms", std::to_string(offset)};
  Harness h(o, {0, 1});

  // The healthy nodes take writes and replicate between themselves.
  ExpectOk(h.Put(0, "skew/a", "a"), "put at " + h.id(0));
  ExpectOk(h.Incr(1, "skew/counter", 2), "incr at " + h.id(1));
  BOOST_REQUIRE(h.ExpectConverged({"/v1/kv/skew/a", "/v1/counter/skew/counter"}, {0, 1}));

  // Its health says why it is not writable.
  json health = h.Health(skewed);
  BOOST_TEST(health["writable"] == json(false),
             "health of the node " << offset << " ms ahead: expected \"writable\": false, got "
                                   << health.dump());
  BOOST_TEST((health["reason"].is_string() &&
              Lower(health["reason"].get<std::string>()).find("clock") != std::string::npos),
             "health reason: expected a sentence mentioning the clock, got " << health.dump());

  // Every write route refuses, and nothing is applied.
  ExpectError(h.Put(skewed, "skew/x", 1), 503, "clock_skew", "PUT at the skewed node");
  ExpectError(h.Incr(skewed, "skew/xc", 1), 503, "clock_skew", "incr at the skewed node");
  ExpectError(h.SAdd(skewed, "skew/xs", {"e"}), 503, "clock_skew", "sadd at the skewed node");
  ExpectError(h.MapUpdate(skewed, "skew/xm", json{{"n", {{"type", "counter"}, {"add", 1}}}}), 503,
              "clock_skew", "map update at the skewed node");
  ExpectError(h.Call(skewed, "DELETE", "/v1/kv/skew/x"), 503, "clock_skew",
              "DELETE at the skewed node");
  ExpectError(h.Call(skewed, "POST", "/v1/batch",
                     json::array({json{{"op", "put"}, {"key", "skew/xb"}, {"value", 1}}})),
              503, "clock_skew", "batch at the skewed node");
  for (const char* key : {"/v1/kv/skew/x", "/v1/counter/skew/xc", "/v1/set/skew/xs",
                          "/v1/map/skew/xm", "/v1/kv/skew/xb"}) {
    Reply g = h.Get(skewed, key);
    BOOST_TEST(g.status == 404, "GET " << key << " at the skewed node after a refused write: "
                                       << "expected 404, got " << g.Describe());
  }

  // The others count the messages they refused (its HLC is ahead).
  for (int i : {0, 1}) {
    json last;
    bool counted = WaitFor(
        [&] {
          last = h.Status(i)["clock"];
          return last.is_object() && last["refused_clock_offset"].is_number_integer() &&
                 last["refused_clock_offset"].get<int64_t>() > 0;
        },
        kPeerState);
    BOOST_TEST(counted, h.id(i) << ": expected /v1/status clock.refused_clock_offset > 0 within "
                                << kPeerState.count() << " ms, last clock section " << last.dump());
    BOOST_TEST(last["writable"] == json(true),
               h.id(i) << ": expected clock.writable true, got " << last.dump());
  }
  json sc = h.Status(skewed)["clock"];
  BOOST_TEST(sc["writable"] == json(false),
             "skewed node's /v1/status clock: expected writable false, got " << sc.dump());
  std::optional<double> w = Metric(h.Get(skewed, "/metrics").raw, "meridian_clock_writable");
  BOOST_TEST((w && *w == 0.0),
             "skewed node's /metrics: expected meridian_clock_writable 0, got " << Show(w));
  w = Metric(h.Get(0, "/metrics").raw, "meridian_clock_writable");
  BOOST_TEST((w && *w == 1.0),
             h.id(0) << "'s /metrics: expected meridian_clock_writable 1, got " << Show(w));
  std::optional<double> refused = Metric(h.Get(0, "/metrics").raw, "meridian_clock_refused_total");
  BOOST_TEST((refused && *refused > 0),
             h.id(0) << "'s /metrics: expected meridian_clock_refused_total > 0, got "
                     << Show(refused));

  // And the healthy ones keep taking writes.
  for (int i : {0, 1}) ExpectOk(h.Incr(i, "skew/counter", 1), "incr at " + h.id(i) + " later");
  BOOST_REQUIRE(h.ExpectConverged({"/v1/counter/skew/counter"}, {0, 1}));
  json c = ValueOf(h.Get(0, "/v1/counter/skew/counter"), "skew/counter");
  BOOST_TEST(c == json(4), "skew/counter: expected 4, got " << c);
}

// 7. /v1/status: peers up with lag fields; a killed peer goes suspect, then
//    down, then up again after a restart. No fault route without the flag.
BOOST_AUTO_TEST_CASE(status_shows_peers_and_a_killed_peer_goes_suspect_then_down) {
  Harness h(ThreeRegions());
  for (int i = 0; i < h.size(); ++i) {
    ExpectError(h.Call(i, "POST", "/v1/admin/faults", json{{"drop", json::array()}}), 404,
                "not_found", "POST /v1/admin/faults without --enable-fault-injection");
    ExpectError(h.Get(i, "/v1/admin/faults"), 404, "not_found",
                "GET /v1/admin/faults without --enable-fault-injection");
  }

  // Every node sees every peer up, with a clock sample.
  std::string seen;
  bool up = WaitFor(
      [&] {
        seen.clear();
        bool all = true;
        for (int i = 0; i < h.size(); ++i) {
          for (int p = 0; p < h.size(); ++p) {
            if (p == i) continue;
            json e = h.Peer(i, h.id(p));
            seen += h.id(i) + " -> " + h.id(p) + ": " + e.dump() + "\n";
            all = all && e.is_object() && e["state"] == "up" && e["welcomed"] == true &&
                  e["clock_offset_ms"].is_number_integer();
          }
        }
        return all;
      },
      kPeerState);
  BOOST_REQUIRE_MESSAGE(up, "expected every peer \"up\", welcomed, with a clock offset, within "
                                << kPeerState.count() << " ms; last seen:\n"
                                << seen);

  json s = h.Status(0);
  BOOST_TEST(!s.contains("replication"),
             "/v1/status: expected the old \"replication\" field gone, got " << s.dump());
  BOOST_TEST(s["session_token"].is_string(), "/v1/status: expected session_token, got " << s.dump());
  BOOST_TEST((s["peers"].is_array() && s["peers"].size() == static_cast<size_t>(h.size() - 1)),
             "/v1/status peers: expected " << h.size() - 1 << " entries, got " << s.dump());
  for (const json& p : s["peers"]) {
    bool shape = p["node"].is_string() && p["region"].is_string() && p["state"].is_string() &&
                 p["welcomed"].is_boolean() && p["last_heard_ms_ago"].is_number_integer() &&
                 p["lag_ms"].is_number_integer() && p["unacked_deltas"].is_number_integer() &&
                 p["unacked_bytes"].is_number_integer() && p["acked"].is_number_integer() &&
                 p["clock_offset_ms"].is_number_integer() && p["rtt_ms"].is_number_integer();
    BOOST_TEST(shape, "peer entry: expected every field of the issue's shape with its type, got "
                          << p.dump());
    BOOST_TEST((p["last_heard_ms_ago"].is_number_integer() &&
                p["last_heard_ms_ago"].get<int64_t>() < 2000),
               "an up peer: expected last_heard_ms_ago well under 2 s, got " << p.dump());
  }
  json clock = s["clock"];
  BOOST_TEST((clock.is_object() && clock["writable"] == true && clock["reason"].is_string() &&
              clock["hlc"].is_string() && clock["max_clock_offset_ms"] == json(500) &&
              clock["refused_clock_offset"] == json(0)),
             "/v1/status clock: expected writable true, reason, hlc string, max 500, refused 0; got "
                 << clock.dump());
  json gossip = s["gossip"];
  bool gossip_shape = gossip.is_object() && gossip["endpoint"].is_string();
  for (const char* f : {"frames_in", "frames_out", "bad_frames", "deltas_received",
                        "deltas_applied", "resends"}) {
    gossip_shape = gossip_shape && gossip[f].is_number_integer();
  }
  BOOST_TEST(gossip_shape, "/v1/status gossip: expected endpoint and integer counters, got "
                               << gossip.dump());
  BOOST_TEST((gossip_shape && gossip["frames_in"].get<int64_t>() > 0 &&
              gossip["frames_out"].get<int64_t>() > 0 && gossip["bad_frames"] == json(0)),
             "/v1/status gossip after heartbeats: expected frames both ways and no bad ones, got "
                 << gossip.dump());

  // After writes, every peer acknowledges all of node 0's log.
  for (int k = 0; k < 20; ++k) ExpectOk(h.Incr(0, "status/counter", 1), "incr at node 0");
  std::string acked_seen;
  bool acked = WaitFor(
      [&] {
        json st = h.Status(0);
        acked_seen = st.dump();
        if (!st["last_seq"].is_number_integer() || !st["peers"].is_array()) return false;
        for (const json& p : st["peers"]) {
          if (p["acked"] != st["last_seq"] || p["unacked_deltas"] != json(0) ||
              p["lag_ms"] != json(0)) {
            return false;
          }
        }
        return true;
      },
      kConverge);
  BOOST_TEST(acked, "expected every peer's acked == last_seq, unacked_deltas 0 and lag_ms 0 within "
                        << kConverge.count() << " ms; last /v1/status " << acked_seen);
  for (int i = 1; i < h.size(); ++i) {
    json deltas = h.Status(i)["gossip"]["deltas_applied"];
    BOOST_TEST((deltas.is_number_integer() && deltas.get<int64_t>() >= 20),
               h.id(i) << ": expected gossip.deltas_applied >= 20, got " << deltas);
  }
  const std::string metrics = h.Get(0, "/metrics").raw;
  for (int p = 1; p < h.size(); ++p) {
    const std::string label = "peer=\"" + h.id(p) + "\"";
    std::optional<double> v = Metric(metrics, "meridian_peer_up", label);
    BOOST_TEST((v && *v == 1.0), "/metrics at node 0: expected meridian_peer_up{" << label
                                                                               << "} 1, got "
                                                                               << Show(v));
    for (const char* family :
         {"meridian_peer_lag_ms", "meridian_peer_unacked_deltas", "meridian_peer_unacked_bytes"}) {
      BOOST_TEST(Metric(metrics, family, label).has_value(),
                 "/metrics at node 0: expected a sample " << family << "{" << label << "}");
    }
  }
  for (const char* family : {"meridian_clock_refused_total", "meridian_clock_writable",
                             "meridian_gossip_bad_frames_total", "meridian_deltas_applied_total"}) {
    BOOST_TEST(Metric(metrics, family).has_value(),
               "/metrics at node 0: expected a sample of " << family);
  }
  for (const char* dir : {"dir=\"in\"", "dir=\"out\""}) {
    std::optional<double> v = Metric(metrics, "meridian_gossip_frames_total", dir);
    BOOST_TEST((v && *v > 0),
               "/metrics at node 0: expected meridian_gossip_frames_total{" << dir << "} > 0, got "
                                                                           << Show(v));
  }

  // Kill a peer: suspect after ~3 heartbeats, down after ~10.
  const int victim = 2;
  h.Kill(victim);
  std::vector<std::string> states;  // node 0's view of the victim, changes only
  const auto t0 = Clock::now();
  WaitFor(
      [&] {
        std::string st = h.PeerState(0, h.id(victim));
        if (states.empty() || states.back() != st) states.push_back(st);
        return st == "down";
      },
      kPeerState, milliseconds(15));
  std::string history;
  for (const auto& st : states) history += (history.empty() ? "" : " -> ") + st;
  auto suspect = std::find(states.begin(), states.end(), "suspect");
  BOOST_TEST((!states.empty() && states.back() == "down" && suspect != states.end()),
             "node 0's view of the killed " << h.id(victim) << ": expected up -> suspect -> down "
                                            << "within " << kPeerState.count() << " ms, saw "
                                            << history << " in " << MsSince(t0) << " ms");
  BOOST_TEST(h.PeerState(0, h.id(1)) == "up",
             "a live peer while another is down: expected \"up\", got " << h.PeerState(0, h.id(1)));
  std::optional<double> down_up =
      Metric(h.Get(0, "/metrics").raw, "meridian_peer_up", "peer=\"" + h.id(victim) + "\"");
  BOOST_TEST((down_up && *down_up == 0.0),
             "/metrics at node 0 with " << h.id(victim) << " down: expected meridian_peer_up 0, got "
                                        << Show(down_up));

  BOOST_REQUIRE_MESSAGE(h.StartNode(victim), "restarting " << h.id(victim) << " failed");
  std::string back;
  bool again = WaitFor(
      [&] {
        back = h.PeerState(0, h.id(victim));
        return back == "up";
      },
      kPeerState);
  BOOST_TEST(again, "after restarting " << h.id(victim) << ": expected node 0 to see it \"up\" within "
                                        << kPeerState.count() << " ms, last state " << back);
}

// 8. Two nodes per region (the local-6 shape): convergence and w=3.
BOOST_AUTO_TEST_CASE(two_nodes_per_region_converge_and_w3_reaches_every_region) {
  Harness h(ThreeRegions(2));
  BOOST_REQUIRE_EQUAL(h.size(), 6);
  std::vector<std::string> targets = {"/v1/counter/six/counter", "/v1/set/six/set",
                                      "/v1/map/six/map", "/v1/scan?prefix=six/&limit=1000"};
  int64_t total = 0;
  std::set<std::string> elements;
  for (int i = 0; i < h.size(); ++i) {
    ExpectOk(h.Incr(i, "six/counter", i + 1), "incr at " + h.id(i));
    total += i + 1;
    ExpectOk(h.SAdd(i, "six/set", {h.id(i)}), "sadd at " + h.id(i));
    elements.insert(h.id(i));
    ExpectOk(h.Put(i, "six/reg-" + h.id(i), i), "put at " + h.id(i));
    ExpectOk(h.MapUpdate(i, "six/map", json{{"n", {{"type", "counter"}, {"add", 1}}}}),
             "map update at " + h.id(i));
    targets.push_back("/v1/kv/six/reg-" + h.id(i));
  }
  BOOST_REQUIRE(h.ExpectConverged(targets));
  json c = ValueOf(h.Get(5, "/v1/counter/six/counter"), "six/counter");
  BOOST_TEST(c == json(total), "six/counter: expected " << total << ", got " << c);
  std::set<std::string> s = AsStringSet(ValueOf(h.Get(3, "/v1/set/six/set"), "six/set"));
  BOOST_TEST(s == elements, "six/set: expected " << Join(elements) << ", got " << Join(s));
  json m = ValueOf(h.Get(1, "/v1/map/six/map"), "six/map");
  BOOST_TEST(m["n"]["value"] == json(6), "six/map n: expected 6, got " << m.dump());

  // w=3 from a node of each region: every other region holds it at once.
  for (int writer : {0, 3, 5}) {
    const std::string key = "six/w3-" + h.id(writer);
    ExpectOk(h.Put(writer, key, writer, "?w=3&timeout_ms=10000"), "PUT " + key + "?w=3");
    for (int r = 0; r < h.cluster().regions(); ++r) {
      if (r == h.cluster().region_index(writer)) continue;
      int holders = 0;
      std::string seen;
      for (int i : h.cluster().NodesOfRegion(r)) {
        Reply g = h.Get(i, "/v1/kv/" + key);
        holders += g.status == 200 ? 1 : 0;
        seen += h.id(i) + ": " + g.Describe() + "; ";
      }
      BOOST_TEST(holders >= 1, "right after a w=3 success of " << key
                                                               << ": expected a node of region "
                                                               << r << " to hold it, saw " << seen);
    }
  }
  ExpectError(h.Put(0, "six/w4", 1, "?w=4"), 400, "bad_request",
              "PUT ?w=4 with 3 regions (6 nodes)");
}

// 9. A partial partition: node 0 and node 2 cut from each other (faults at
//    both ends), both still reaching node 1. Node 0's writes reach node 2
//    only by anti-entropy through node 1 (each node ships only its own
//    log), and node 0's session token is honoured at node 2.
BOOST_AUTO_TEST_CASE(anti_entropy_repairs_a_partial_partition) {
  Harness h(WithFaults(ThreeRegions()));
  WarmUp(h, "warm/");
  const int a = 0, b = 1, c = 2;

  h.Cut(a, {c});
  h.Faults(c, json{{"drop", {h.id(a)}}});
  std::string seen;
  bool through_b = WaitFor(
      [&] {
        seen = h.id(a) + " sees " + h.id(b) + " " + h.PeerState(a, h.id(b)) + ", " + h.id(c) +
               " sees " + h.id(b) + " " + h.PeerState(c, h.id(b));
        return h.PeerState(a, h.id(b)) == "up" && h.PeerState(c, h.id(b)) == "up";
      },
      kPeerState);
  BOOST_REQUIRE_MESSAGE(through_b, "a partial partition: expected both ends to still see "
                                       << h.id(b) << " up; " << seen);
  const json ae_before = h.Status(c)["anti_entropy"];

  // Writes at A: registers, a counter, a set.
  for (int k = 0; k < 5; ++k) {
    ExpectOk(h.Put(a, "pp/k" + std::to_string(k), json{{"k", k}}), "put at A");
  }
  ExpectOk(h.Incr(a, "pp/counter", 7), "incr at A");
  ExpectOk(h.Incr(a, "pp/counter", 5), "incr at A");
  ExpectOk(h.SAdd(a, "pp/set", {"x", "y"}), "sadd at A");
  Reply last = h.Put(a, "pp/last", "last");
  ExpectOk(last, "put at A");
  const int64_t last_seq = IntField(last.body, "seq");
  BOOST_REQUIRE_MESSAGE(last_seq > 0,
                        "write reply: expected a positive \"seq\", got " << last.Describe());
  const json replica_json = h.Status(a)["replica"];
  BOOST_REQUIRE_MESSAGE(replica_json.is_string(),
                        "/v1/status replica: expected a string, got " << replica_json);
  const std::string replica_a = replica_json.get<std::string>();
  BOOST_REQUIRE_MESSAGE(TokenEntries(last.token).count(replica_a) == 1,
                        "A's token " << last.token << ": expected an entry for " << replica_a);

  // C answers a read with A's token: it waits until anti-entropy through B
  // brought the write and advanced its applied vector, then answers 200.
  Reply g = h.Call(c, "GET", "/v1/kv/pp/last?timeout_ms=10000", std::nullopt,
                   {{"X-Session-Token", last.token}});
  BOOST_TEST((g.status == 200 && g.body.is_object() && g.body["value"] == json("last")),
             "GET pp/last at C with A's token " << last.token << " while A-C is cut: expected 200 "
                                                << "\"last\", got " << g.Describe());
  BOOST_TEST_MESSAGE("token read at C answered after " << g.elapsed_ms << " ms");
  // The token is covered now: every earlier write of A is there, and a
  // read with the default timeout answers at once.
  for (int k = 0; k < 5; ++k) {
    const std::string key = "pp/k" + std::to_string(k);
    Reply r = h.Get(c, "/v1/kv/" + key, {{"X-Session-Token", last.token}});
    BOOST_TEST((r.status == 200 && r.body["value"] == (json{{"k", k}})),
               "GET " << key << " at C with A's token: expected 200 {\"k\":" << k << "}, got "
                      << r.Describe());
  }
  Reply counter = h.Get(c, "/v1/counter/pp/counter", {{"X-Session-Token", last.token}});
  BOOST_TEST((counter.status == 200 && counter.body["value"] == json(12)),
             "pp/counter at C with A's token: expected 200 value 12, got " << counter.Describe());
  Reply set = h.Get(c, "/v1/set/pp/set", {{"X-Session-Token", last.token}});
  BOOST_TEST(
      (set.status == 200 && AsStringSet(set.body["value"]) == (std::set<std::string>{"x", "y"})),
      "pp/set at C with A's token: expected [x, y], got " << set.Describe());
  json st_c = h.Status(c);
  std::map<std::string, uint64_t> applied_c = TokenEntries(
      st_c["session_token"].is_string() ? st_c["session_token"].get<std::string>() : "");
  BOOST_TEST(applied_c[replica_a] >= static_cast<uint64_t>(last_seq),
             "C's applied vector: expected " << replica_a << " >= " << last_seq << ", got "
                                             << st_c["session_token"]);

  // Not by deltas: A's log is still unacknowledged by C.
  json a_to_c = h.Peer(a, h.id(c));
  BOOST_TEST((IntField(a_to_c, "acked") >= 0 && IntField(a_to_c, "acked") < last_seq &&
              IntField(a_to_c, "unacked_deltas") >= 1),
             "A's view of C during the cut: expected acked < "
                 << last_seq << " and unacked_deltas >= 1, got " << a_to_c.dump());
  // By anti-entropy: C received states and repaired (the round counts as
  // completed once the gossip thread hears the repair is durable, a moment
  // after reads see it).
  json ae;
  BOOST_TEST(WaitFor(
                 [&] {
                   ae = h.Status(c)["anti_entropy"];
                   return ae.is_object() && ae["enabled"] == json(true) &&
                          IntField(ae, "states_received") > IntField(ae_before, "states_received") &&
                          IntField(ae, "repairs") > IntField(ae_before, "repairs") &&
                          IntField(ae, "rounds_completed") >
                              IntField(ae_before, "rounds_completed") &&
                          IntField(ae, "failed_repairs") == 0;
                 },
                 milliseconds(5000)),
             "C's /v1/status anti_entropy: expected states_received, repairs and "
             "rounds_completed above "
                 << ae_before.dump() << " and no failed repairs, got " << ae.dump());
  BOOST_TEST(IntField(h.Status(b)["anti_entropy"], "states_sent") > 0,
             "B's /v1/status anti_entropy: expected states_sent > 0, got "
                 << h.Status(b)["anti_entropy"].dump());
  json c_to_b = h.Peer(c, h.id(b));
  BOOST_TEST(
      (c_to_b["anti_entropy_ready"].is_boolean() && c_to_b["log_end"].is_number_integer() &&
       c_to_b["behind"].is_number_integer()),
      "C's peer entry of B: expected anti_entropy_ready, log_end, behind, got " << c_to_b.dump());
  json gossip_c = st_c["gossip"];
  BOOST_TEST((IntField(gossip_c, "bytes_in") > 0 && IntField(gossip_c, "bytes_out") > 0),
             "C's /v1/status gossip: expected bytes_in and bytes_out > 0, got " << gossip_c.dump());

  // A write at C reaches A the same way (the other direction).
  Reply back = h.Incr(c, "pp/counter", 100);
  ExpectOk(back, "incr at C");
  g = h.Call(a, "GET", "/v1/counter/pp/counter?timeout_ms=10000", std::nullopt,
             {{"X-Session-Token", back.token}});
  BOOST_TEST((g.status == 200 && g.body["value"] == json(112)),
             "pp/counter at A with C's token while A-C is cut: expected 200 value 112, got "
                 << g.Describe());

  // Healed: all three converge to the same state.
  h.Heal(a);
  h.Heal(c);
  std::vector<std::string> targets = {"/v1/counter/pp/counter", "/v1/set/pp/set", "/v1/kv/pp/last",
                                      "/v1/scan?prefix=pp/&limit=100"};
  BOOST_REQUIRE(h.ExpectConverged(targets));
  BOOST_REQUIRE(ExpectSameDigest(h, h.All()));
  json total = ValueOf(h.Get(b, "/v1/counter/pp/counter"), "pp/counter after healing");
  BOOST_TEST(total == json(112), "pp/counter after healing: expected 112, got " << total);
  BOOST_TEST(ExpectLogAcknowledged(h, a));
}

// 10. A node whose data dir is wiped comes back as a new incarnation,
//     refuses writes (503 bootstrapping) until it completed an
//     anti-entropy round with a peer (also across a restart), is refilled,
//     and a counter incremented before and after the wipe is exact.
BOOST_AUTO_TEST_CASE(a_wiped_node_rejoins_as_a_new_incarnation) {
  Harness h(WithFaults(ThreeRegions()));
  WarmUp(h, "warm/");
  const int victim = 2;

  int64_t total = 0;
  for (int i = 0; i < h.size(); ++i) {
    int64_t by = i == 0 ? 1 : i == 1 ? 10 : 100;
    for (int k = 0; k < 3; ++k) {
      ExpectOk(h.Incr(i, "wipe/counter", by), "incr at " + h.id(i));
      total += by;
    }
  }
  ExpectOk(h.SAdd(victim, "wipe/set", {"old"}), "sadd at the victim");
  ExpectOk(h.Put(victim, "wipe/reg", "old"), "put at the victim");
  const std::vector<std::string> targets = {"/v1/counter/wipe/counter", "/v1/set/wipe/set",
                                            "/v1/kv/wipe/reg", "/v1/scan?prefix=wipe/&limit=100"};
  BOOST_REQUIRE(h.ExpectConverged(targets));
  BOOST_REQUIRE(ExpectLogAcknowledged(h, victim));
  const json old_status = h.Status(victim);
  const json old_incarnation = old_status["incarnation"];
  BOOST_REQUIRE_MESSAGE(old_incarnation.is_number_unsigned() && old_status["bootstrapped"] == true,
                        "/v1/status: expected an integer incarnation and bootstrapped true, got "
                            << old_status.dump());

  // Its peers drop its gossip, so its first round cannot complete yet.
  h.Cut(0, {victim});
  h.Cut(1, {victim});
  BOOST_REQUIRE_MESSAGE(h.Stop(victim), "SIGTERM to " << h.id(victim) << ": expected exit 0");
  std::error_code ec;
  std::filesystem::remove_all(h.cluster().data_dir(victim), ec);
  BOOST_REQUIRE_MESSAGE(!ec && !std::filesystem::exists(h.cluster().data_dir(victim)),
                        "wiping " << h.cluster().data_dir(victim) << ": " << ec.message());
  BOOST_REQUIRE_MESSAGE(h.StartNode(victim), "starting the wiped " << h.id(victim) << " failed");

  json st = h.Status(victim);
  const json new_incarnation = st["incarnation"];
  BOOST_TEST((new_incarnation.is_number_unsigned() && new_incarnation != old_incarnation),
             "the wiped node's incarnation: expected a new one (was " << old_incarnation
                                                                      << "), got " << st.dump());
  BOOST_TEST((st["replica"].is_string() && st["replica"] != old_status["replica"]),
             "the wiped node's replica: expected a new one (was " << old_status["replica"]
                                                                  << "), got " << st["replica"]);
  BOOST_TEST(st["bootstrapped"] == json(false),
             "the wiped node, cut from its peers: expected bootstrapped false, got " << st.dump());
  json health = h.Health(victim);
  BOOST_TEST((health["writable"] == json(false) && health["reason"].is_string() &&
              Lower(health["reason"].get<std::string>()).find("anti-entropy") != std::string::npos),
             "the wiped node's health: expected writable false with a reason naming the "
             "anti-entropy round it waits for, got "
                 << health.dump());
  // Past the time its peers are known down (~10 heartbeats), so no other
  // gate is in the way.
  ExpectWritesRefusedFor(h, victim, "bootstrapping", milliseconds(1500), "the wiped node");
  Reply empty = h.Get(victim, "/v1/counter/wipe/counter");
  BOOST_TEST(empty.status == 404,
             "wipe/counter at the wiped node before any round: expected 404, got "
                 << empty.Describe());
  BOOST_TEST(IntField(h.Status(victim)["anti_entropy"], "rounds_completed") == 0,
             "the wiped node's anti_entropy: expected no completed round, got "
                 << h.Status(victim)["anti_entropy"].dump());

  // A restart before the first round still waits, on the same incarnation.
  BOOST_REQUIRE_MESSAGE(h.Stop(victim), "SIGTERM to " << h.id(victim) << ": expected exit 0");
  BOOST_REQUIRE_MESSAGE(h.StartNode(victim), "restarting " << h.id(victim) << " failed");
  st = h.Status(victim);
  BOOST_TEST((st["incarnation"] == new_incarnation && st["bootstrapped"] == json(false)),
             "restarted before bootstrapping: expected incarnation " << new_incarnation
                                                                     << " and bootstrapped false, "
                                                                     << "got " << st.dump());
  ExpectWritesRefusedFor(h, victim, "bootstrapping", milliseconds(300),
                         "the wiped node after a restart");

  // Healed: one round with a peer bootstraps it, and it holds everything.
  h.Heal(0);
  h.Heal(1);
  std::string why;
  BOOST_REQUIRE_MESSAGE(h.cluster().WaitWritable(kWritable, {victim}, &why),
                        "expected the wiped node writable after healing; " << why);
  st = h.Status(victim);
  BOOST_TEST((st["bootstrapped"] == json(true) && st["incarnation"] == new_incarnation &&
              IntField(st["anti_entropy"], "rounds_completed") >= 1),
             "the wiped node once writable: expected bootstrapped true, incarnation "
                 << new_incarnation << ", a completed round, got " << st.dump());
  json refilled = ValueOf(h.Get(victim, "/v1/counter/wipe/counter"), "refilled counter");
  BOOST_TEST(refilled == json(total),
             "wipe/counter at the wiped node once it takes writes: expected "
                 << total << " (refilled), got " << refilled);
  std::set<std::string> s = AsStringSet(ValueOf(h.Get(victim, "/v1/set/wipe/set"), "set"));
  BOOST_TEST(s == (std::set<std::string>{"old"}),
             "wipe/set at the wiped node: expected {old}, got " << Join(s));
  json reg = ValueOf(h.Get(victim, "/v1/kv/wipe/reg"), "register");
  BOOST_TEST(reg == json("old"), "wipe/reg at the wiped node: expected \"old\", got " << reg);

  // New increments under the new incarnation add to the old ones.
  Reply w = h.Incr(victim, "wipe/counter", 1000);
  ExpectOk(w, "incr at the new incarnation");
  total += 1000;
  BOOST_TEST(TokenEntries(w.token).count(
                 st["replica"].is_string() ? st["replica"].get<std::string>() : "(none)") == 1,
             "token of the new incarnation's write: expected an entry for " << st["replica"]
                                                                            << ", got " << w.token);
  ExpectOk(h.Incr(0, "wipe/counter", 5), "incr at " + h.id(0));
  total += 5;
  ExpectOk(h.SAdd(victim, "wipe/set", {"new"}), "sadd at the new incarnation");
  BOOST_REQUIRE(h.ExpectConverged(targets));
  BOOST_REQUIRE(ExpectSameDigest(h, h.All()));
  for (int i = 0; i < h.size(); ++i) {
    json c = ValueOf(h.Get(i, "/v1/counter/wipe/counter"), "wipe/counter at " + h.id(i));
    BOOST_TEST(c == json(total), "wipe/counter at " << h.id(i) << ": expected " << total
                                                    << " (no lost or double-counted increment "
                                                    << "across incarnations), got " << c);
    std::set<std::string> si = AsStringSet(ValueOf(h.Get(i, "/v1/set/wipe/set"), "set"));
    BOOST_TEST(si == (std::set<std::string>{"old", "new"}),
               "wipe/set at " << h.id(i) << ": expected {new, old}, got " << Join(si));
  }
}

// 11. The first node of a new cluster, started with --bootstrap on an empty
//     data dir, takes writes without a peer; a node started without it
//     refuses them (503 bootstrapping) until a peer is up.
BOOST_AUTO_TEST_CASE(a_fresh_node_started_with_bootstrap_takes_writes_at_once) {
  ClusterOptions o = ThreeRegions();
  const int first = 0, joiner = 1;
  o.args[first] = {"--bootstrap"};
  Harness h(o, Harness::Unstarted{});
  BOOST_REQUIRE_MESSAGE(h.StartNode(first), "starting " << h.id(first) << " failed");

  json st = h.Status(first);
  BOOST_TEST((st["bootstrapped"] == json(true) && st["incarnation"].is_number_unsigned()),
             "a --bootstrap node on an empty data dir: expected bootstrapped true at once, got "
                 << st.dump());
  const json first_incarnation = st["incarnation"];
  // Never "bootstrapping". Alone, its clock gate may hold writes until its
  // never-heard peers are known down (10 heartbeats, DESIGN.md §3): a
  // refusal meanwhile can only be clock_skew.
  const auto t0 = Clock::now();
  Reply w;
  std::string refusals;
  bool took = WaitFor(
      [&] {
        w = h.Incr(first, "boot/counter", 3);
        if (w.status == 200) return true;
        if (w.status != 503 || w.Error() != "clock_skew") refusals += w.Describe() + "\n";
        return false;
      },
      milliseconds(5000), milliseconds(50));
  BOOST_TEST(refusals.empty(),
             "writes at the --bootstrap node before it took one: expected only "
             "503 clock_skew, got\n"
                 << refusals);
  BOOST_REQUIRE_MESSAGE(took,
                        "the --bootstrap node: expected a write to succeed within 5000 ms, "
                        "last reply "
                            << w.Describe());
  BOOST_TEST_MESSAGE("the --bootstrap node took its first write after " << MsSince(t0) << " ms");
  ExpectOk(h.Put(first, "boot/reg", "first"), "put at the --bootstrap node");
  BOOST_REQUIRE_MESSAGE(h.Stop(first), "SIGTERM to " << h.id(first) << ": expected exit 0");

  // Alone without --bootstrap: no peer to bootstrap from.
  BOOST_REQUIRE_MESSAGE(h.StartNode(joiner), "starting " << h.id(joiner) << " failed");
  st = h.Status(joiner);
  BOOST_TEST((st["bootstrapped"] == json(false) && st["incarnation"].is_number_unsigned()),
             "a node on an empty data dir without --bootstrap: expected bootstrapped false, got "
                 << st.dump());
  json health = h.Health(joiner);
  BOOST_TEST((health["writable"] == json(false) && health["reason"].is_string() &&
              Lower(health["reason"].get<std::string>()).find("anti-entropy") != std::string::npos),
             "its health: expected writable false with a reason naming the anti-entropy "
             "round, got "
                 << health.dump());
  ExpectWritesRefusedFor(h, joiner, "bootstrapping", milliseconds(1500), "the lone joiner");

  // The first node back (its data dir is no longer empty: same
  // incarnation): the joiner bootstraps from it and is refilled.
  BOOST_REQUIRE_MESSAGE(h.StartNode(first), "restarting " << h.id(first) << " failed");
  st = h.Status(first);
  BOOST_TEST((st["incarnation"] == first_incarnation && st["bootstrapped"] == json(true)),
             "the --bootstrap node restarted on its data dir: expected incarnation "
                 << first_incarnation << " and bootstrapped true, got " << st.dump());
  std::string why;
  BOOST_REQUIRE_MESSAGE(h.cluster().WaitWritable(kWritable, {first, joiner}, &why),
                        "expected both nodes writable once " << h.id(first) << " is back; " << why);
  BOOST_TEST(h.Status(joiner)["bootstrapped"] == json(true),
             "the joiner once writable: expected bootstrapped true");
  json c = ValueOf(h.Get(joiner, "/v1/counter/boot/counter"), "boot/counter at the joiner");
  BOOST_TEST(c == json(3), "boot/counter at the joiner after bootstrapping: expected 3, got " << c);
  json reg = ValueOf(h.Get(joiner, "/v1/kv/boot/reg"), "boot/reg at the joiner");
  BOOST_TEST(reg == json("first"), "boot/reg at the joiner: expected \"first\", got " << reg);

  ExpectOk(h.Incr(joiner, "boot/counter", 4), "incr at the joiner");
  BOOST_REQUIRE(
      h.ExpectConverged({"/v1/counter/boot/counter", "/v1/kv/boot/reg"}, {first, joiner}));
  json total = ValueOf(h.Get(first, "/v1/counter/boot/counter"), "boot/counter");
  BOOST_TEST(total == json(7), "boot/counter: expected 7, got " << total);
}

// 12. A node down longer than the log retention: its peers stop keeping
//     their logs for it and truncate them; when it is back, anti-entropy
//     (not deltas) brings it everything, and shipping resumes after.
BOOST_AUTO_TEST_CASE(a_node_down_longer_than_the_log_retention_catches_up_by_anti_entropy) {
  ClusterOptions o = ThreeRegions();
  o.log_retention_ms = 1500;
  Harness h(o);
  WarmUp(h, "warm/");
  const int victim = 2;
  BOOST_REQUIRE_MESSAGE(h.Stop(victim), "SIGTERM to " << h.id(victim) << ": expected exit 0");

  constexpr int kKeys = 120;
  int64_t total = 0;
  for (int k = 0; k < kKeys; ++k) {
    const int at = k % 2;
    ExpectOk(h.Put(at, "away/k" + std::to_string(k), k), "put at " + h.id(at));
    ExpectOk(h.Incr(at, "away/counter", k + 1), "incr at " + h.id(at));
    total += k + 1;
  }
  // Both writers keep their logs for the victim for 1.5 s, then drop them:
  // every entry goes once the other live peer has acknowledged it.
  for (int i : {0, 1}) {
    std::string seen;
    bool truncated = WaitFor(
        [&] {
          json st = h.Status(i);
          json p = h.Peer(i, h.id(victim));
          seen = "gossip " + st["gossip"].dump() + ", last_seq " + st["last_seq"].dump() +
                 ", peer " + p.dump();
          return IntField(st["gossip"], "log_start") == IntField(st, "last_seq") + 1 &&
                 p.is_object() && p["pins_log"] == json(false);
        },
        milliseconds(10000), milliseconds(100));
    BOOST_REQUIRE_MESSAGE(truncated, h.id(i) << ": expected its whole log truncated and "
                                             << h.id(victim)
                                             << " no longer pinning it; last seen " << seen);
    BOOST_TEST(IntField(h.Status(i)["gossip"], "log_truncated") >= kKeys,
               h.id(i) << ": expected log_truncated >= " << kKeys);
  }

  BOOST_REQUIRE_MESSAGE(h.StartNode(victim), "restarting " << h.id(victim) << " failed");
  std::vector<std::string> targets = {"/v1/counter/away/counter", "/v1/scan?prefix=away/&limit=1000"};
  BOOST_REQUIRE(h.ExpectConverged(targets));
  BOOST_REQUIRE(ExpectSameDigest(h, h.All()));
  json c = ValueOf(h.Get(victim, "/v1/counter/away/counter"), "away/counter at the victim");
  BOOST_TEST(c == json(total), "away/counter at " << h.id(victim) << ": expected " << total
                                                  << ", got " << c);
  json st = h.Status(victim);
  BOOST_TEST(IntField(st["gossip"], "deltas_applied") == 0,
             h.id(victim) << ": expected no delta applied (the entries were truncated), got "
                          << st["gossip"].dump());
  BOOST_TEST(IntField(st["anti_entropy"], "states_received") >= kKeys,
             h.id(victim) << ": expected at least " << kKeys
                          << " states received by anti-entropy, got " << st["anti_entropy"].dump());
  for (int i : {0, 1}) {
    std::string seen;
    bool resumed = WaitFor(
        [&] {
          json p = h.Peer(i, h.id(victim));
          seen = p.dump();
          return p.is_object() && p["beyond_log"] == json(false) &&
                 p["pins_log"] == json(true) && p["unacked_deltas"] == json(0);
        },
        kConverge, milliseconds(100));
    BOOST_TEST(resumed, h.id(i) << ": expected " << h.id(victim)
                                << " to acknowledge the whole log after its repair; last seen "
                                << seen);
  }
  // Shipping resumes: a new write reaches it as a delta.
  ExpectOk(h.Incr(0, "away/counter", 1000), "incr after the repair");
  total += 1000;
  BOOST_REQUIRE(h.ExpectConverged({"/v1/counter/away/counter"}));
  BOOST_TEST(IntField(h.Status(victim)["gossip"], "deltas_applied") >= 1,
             h.id(victim) << ": expected the new write to arrive as a delta");
  BOOST_TEST(ValueOf(h.Get(victim, "/v1/counter/away/counter"), "counter") == json(total));
}

// 13. A register tombstone is dropped on every node once causally stable,
//     and not while a node that has not reported it is down.
BOOST_AUTO_TEST_CASE(register_tombstones_are_collected_once_every_node_holds_them) {
  Harness h(ThreeRegions());
  WarmUp(h, "warm/");
  ExpectOk(h.Put(0, "gc/reg", 1), "put gc/reg");
  ExpectOk(h.Put(0, "gc/kept", 2), "put gc/kept");
  BOOST_REQUIRE(h.ExpectConverged({"/v1/kv/gc/reg", "/v1/kv/gc/kept"}));
  std::vector<int64_t> keys_before;
  for (int i = 0; i < h.size(); ++i) keys_before.push_back(IntField(h.Status(i), "keys"));

  const int away = 2;
  BOOST_REQUIRE_MESSAGE(h.Stop(away), "SIGTERM to " << h.id(away));
  Reply del = h.Call(0, "DELETE", "/v1/kv/gc/reg");
  ExpectOk(del, "DELETE gc/reg");
  // Well past a few heartbeats: the tombstone stays while `away` is down.
  std::this_thread::sleep_for(milliseconds(1500));
  for (int i : {0, 1}) {
    json st = h.Status(i);
    BOOST_TEST(IntField(st["anti_entropy"], "tombstones_collected") == 0,
               h.id(i) << " collected with " << h.id(away) << " down: " << st.dump());
    BOOST_TEST(h.Get(i, "/v1/kv/gc/reg").status == 404);
  }
  BOOST_REQUIRE_MESSAGE(h.StartNode(away), "restarting " << h.id(away));
  for (int i = 0; i < h.size(); ++i) {
    std::string seen;
    bool collected = WaitFor(
        [&] {
          json st = h.Status(i);
          seen = st["anti_entropy"].dump() + " keys " + st["keys"].dump();
          return IntField(st["anti_entropy"], "tombstones_collected") >= 1 &&
                 IntField(st, "keys") == keys_before[i] - 1;
        },
        kConverge, milliseconds(100));
    BOOST_TEST(collected, h.id(i) << ": expected the tombstone of gc/reg collected and one key "
                                  << "fewer than " << keys_before[i] << "; last seen " << seen);
    BOOST_TEST(h.Get(i, "/v1/kv/gc/reg").status == 404);
  }
  BOOST_REQUIRE(ExpectSameDigest(h, h.All()));
  // Written again, the key is an ordinary new key everywhere.
  ExpectOk(h.Put(1, "gc/reg", "again"), "put gc/reg again");
  BOOST_REQUIRE(h.ExpectConverged({"/v1/kv/gc/reg", "/v1/kv/gc/kept"}));
  BOOST_TEST(ValueOf(h.Get(away, "/v1/kv/gc/reg"), "gc/reg") == json("again"));
  BOOST_REQUIRE(ExpectSameDigest(h, h.All()));
}

// 14. A node away longer than the retention horizon is retired by its
//     peers, which then collect what it held back; started again, it finds
//     on its own that it was away too long (writes refused), is refused by
//     its peers, moves its data aside and rejoins as a new incarnation,
//     refilled by anti-entropy: no deleted value comes back, and a counter
//     incremented before and after is exact.
BOOST_AUTO_TEST_CASE(a_node_away_beyond_the_retention_horizon_rejoins_as_a_new_incarnation) {
  ClusterOptions o = ThreeRegions();
  o.retention_horizon_ms = 3000;
  Harness h(o);
  WarmUp(h, "warm/");
  const int away = 2;
  int64_t total = 0;
  for (int i = 0; i < h.size(); ++i) {
    ExpectOk(h.Incr(i, "horizon/counter", i + 1), "incr at " + h.id(i));
    total += i + 1;
  }
  ExpectOk(h.Put(0, "horizon/gone", "old"), "put horizon/gone");
  ExpectOk(h.Put(away, "horizon/kept", "kept"), "put horizon/kept");
  const std::vector<std::string> targets = {"/v1/counter/horizon/counter", "/v1/kv/horizon/kept",
                                            "/v1/scan?prefix=horizon/&limit=100"};
  BOOST_REQUIRE(h.ExpectConverged(targets));
  BOOST_REQUIRE(ExpectLogAcknowledged(h, away));
  const json old_status = h.Status(away);
  const json old_incarnation = old_status["incarnation"];
  BOOST_REQUIRE(old_incarnation.is_number_unsigned());
  BOOST_TEST(IntField(old_status["retention"], "horizon_ms") == 3000,
             "retention in /v1/status: " << old_status["retention"].dump());
  BOOST_TEST(old_status["retention"]["beyond"] == json(false));

  BOOST_REQUIRE_MESSAGE(h.Stop(away), "SIGTERM to " << h.id(away) << ": expected exit 0");
  ExpectOk(h.Call(0, "DELETE", "/v1/kv/horizon/gone"), "DELETE horizon/gone");
  ExpectOk(h.Incr(1, "horizon/counter", 10), "incr while away");
  total += 10;
  // Past the horizon its peers retire it, and then collect the tombstone
  // it held back.
  for (int i : {0, 1}) {
    std::string seen;
    bool retired = WaitFor(
        [&] {
          json st = h.Status(i);
          json p = h.Peer(i, h.id(away));
          seen = "retention " + st["retention"].dump() + ", anti_entropy " +
                 st["anti_entropy"].dump() + ", peer " + p.dump();
          return p.is_object() && p["retired"] == json(true) &&
                 p["retired_through"] == old_incarnation &&
                 IntField(st["retention"], "retired_incarnations") >= 1 &&
                 IntField(st["anti_entropy"], "tombstones_collected") >= 1;
        },
        milliseconds(15000), milliseconds(100));
    BOOST_REQUIRE_MESSAGE(retired, h.id(i) << ": expected " << h.id(away)
                                           << " retired and the tombstone of horizon/gone "
                                           << "collected; last seen " << seen);
  }
  BOOST_TEST(h.cluster().Stderr(0).find("retired " + h.id(away) + "#") != std::string::npos,
             h.id(0) << "'s log: expected a line saying it retired " << h.id(away));

  // Started again on its old data, it rejoins on its own.
  BOOST_REQUIRE_MESSAGE(h.StartNode(away), "restarting " << h.id(away) << " failed");
  std::string why;
  BOOST_REQUIRE_MESSAGE(h.cluster().WaitWritable(kWritable, {away}, &why),
                        "expected the rejoined node writable; " << why);
  json st = h.Status(away);
  BOOST_TEST((st["incarnation"].is_number_unsigned() && st["incarnation"] != old_incarnation &&
              st["bootstrapped"] == json(true)),
             "the rejoined node: expected a new, bootstrapped incarnation (was "
                 << old_incarnation << "), got " << st.dump());
  const std::string log = h.cluster().Stderr(away);
  for (const std::string& line :
       {std::string("longer than the retention horizon"), std::string("retired this incarnation"),
        std::string("starting over as a new incarnation")}) {
    BOOST_TEST(log.find(line) != std::string::npos,
               h.id(away) << "'s log: expected a line with '" << line << "'");
  }
  const std::string moved =
      h.cluster().data_dir(away) + ".retired-" + std::to_string(old_incarnation.get<uint64_t>());
  BOOST_TEST(std::filesystem::is_directory(moved), "expected the old data kept in " << moved);

  // Refilled: the deleted value stays deleted, the rest is there, and
  // increments before, during and after add up.
  ExpectOk(h.Incr(away, "horizon/counter", 100), "incr at the new incarnation");
  total += 100;
  BOOST_REQUIRE(h.ExpectConverged(targets));
  BOOST_REQUIRE(ExpectSameDigest(h, h.All()));
  for (int i = 0; i < h.size(); ++i) {
    json c = ValueOf(h.Get(i, "/v1/counter/horizon/counter"), "counter at " + h.id(i));
    BOOST_TEST(c == json(total), "horizon/counter at " << h.id(i) << ": expected " << total
                                                       << ", got " << c);
    BOOST_TEST(h.Get(i, "/v1/kv/horizon/gone").status == 404,
               "horizon/gone at " << h.id(i) << ": expected 404 (deleted), got "
                                  << h.Get(i, "/v1/kv/horizon/gone").Describe());
    BOOST_TEST(ValueOf(h.Get(i, "/v1/kv/horizon/kept"), "kept") == json("kept"));
  }
}
