// meridian_chaos: real meridiand processes under a nemesis and a mixed
// client load, then a check that nothing acknowledged was lost (issue 9).
//
//   meridian_chaos [--minutes M] [--seed S] [--topology FILE] [--rate R]
//
// Starts the cluster FILE describes (default regions/local-6.toml: three
// regions of two nodes) on free loopback ports with fresh data dirs in a
// temporary directory, with fault injection on and one [[policy]] of its
// own (chaos/mv/ keys are mvregisters whose conflicts go to review). Then,
// for M minutes (default 1; fractions allowed), one client per node sends
// R operations a second (default 20) while the nemesis (nemesis.h) breaks
// things; then it stops the load, heals everything, waits until every
// node's state digest agrees and no delta is unacknowledged (at most 180
// s), reads every chaos/ key and each node's review queue, and checks
// them (checker.h). Prints one summary line:
//
//   chaos seed=S minutes=M faults=N (kill=a pause=b partition=c skew=d
//   wipe=e delay=f) attempted=X acknowledged=Y lost=0 diverged=0
//   converge_ms=T
//
// and exits 0 only when lost = 0, diverged = 0 and nothing else broke; a
// failure prints the seed, what broke and the operations involved.
// MERIDIAN_KEEP_CLUSTER=1 keeps the data dirs and logs.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "node/http_client.h"
#include "node/topology.h"
#include "tests/chaos/checker.h"
#include "tests/chaos/load.h"
#include "tests/chaos/nemesis.h"
#include "tests/node/cluster_process.h"

#ifndef MERIDIAN_SOURCE_DIR
#error "MERIDIAN_SOURCE_DIR must name the source tree (set by tests/CMakeLists.txt)"
#endif

namespace meridian::chaos {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr char kPolicy[] =
    "\n# The chaos run's mvregisters: concurrent writes go to review.\n"
    "[[policy]]\nprefix = \"chaos/mv/\"\ntype = \"mvregister\"\non_unresolved = \"review\"\n";
constexpr auto kConvergeLimit = std::chrono::seconds(180);

struct Args {
  double minutes = 1;
  uint64_t seed = 0;
  bool seed_given = false;
  std::string topology = MERIDIAN_SOURCE_DIR "/regions/local-6.toml";
  double rate = 20;
};

int Usage(const std::string& why) {
  std::cerr << "meridian_chaos: " << why
            << "\nusage: meridian_chaos [--minutes M] [--seed S] [--topology FILE] [--rate R]\n";
  return 2;
}

bool ParseArgs(int argc, char** argv, Args* a, std::string* why) {
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i], v;
    if (size_t eq = k.find('='); k.rfind("--", 0) == 0 && eq != std::string::npos) {
      v = k.substr(eq + 1);  // --minutes=5
      k.resize(eq);
    } else if (i + 1 < argc) {
      v = argv[++i];
    } else {
      *why = k + " needs a value";
      return false;
    }
    try {
      size_t used = 0;
      if (k == "--minutes") {
        a->minutes = std::stod(v, &used);
        if (!(a->minutes > 0 && a->minutes <= 24 * 60)) throw std::out_of_range(v);
      } else if (k == "--seed") {
        a->seed = std::stoull(v, &used);
        a->seed_given = true;
      } else if (k == "--rate") {
        a->rate = std::stod(v, &used);
        if (!(a->rate > 0 && a->rate <= 1000)) throw std::out_of_range(v);
      } else if (k == "--topology") {
        a->topology = v;
        used = v.size();
      } else {
        *why = "unknown option " + k;
        return false;
      }
      if (used != v.size()) throw std::invalid_argument(v);
    } catch (const std::exception&) {
      *why = k + ": '" + v + "' is not a fitting value";
      return false;
    }
  }
  return true;
}

// The cluster of `topo` as ClusterProcess runs it: same shape, names and
// [cluster] settings, on free ports and fresh data dirs.
bool OptionsFor(const node::Topology& topo, testing::ClusterOptions* o, std::string* why) {
  o->regions = static_cast<int>(topo.regions.size());
  o->nodes_per_region = topo.regions.empty() ? 0 : static_cast<int>(topo.regions[0].nodes.size());
  o->cluster_name = topo.cluster_name;
  o->heartbeat_interval_ms = topo.heartbeat_interval_ms;
  o->anti_entropy_interval_ms = topo.anti_entropy_interval_ms;
  o->max_clock_offset_ms = topo.max_clock_offset_ms;
  o->sync = topo.sync;
  o->args_for_all = {"--enable-fault-injection"};
  o->extra_toml = kPolicy;
  o->start_timeout = std::chrono::milliseconds(30000);
  if (o->regions < 2 || o->nodes_per_region < 1) {
    *why = "the topology needs two regions or more";
    return false;
  }
  return true;
}

// ClusterProcess names regions us-east, eu-west, ap-south and their nodes
// <region>-<k>: the file must use those names, so that what the run prints
// is what the file says.
bool SameNames(const node::Topology& topo, const testing::ClusterProcess& c, std::string* why) {
  int i = 0;
  for (const node::RegionConfig& r : topo.regions) {
    for (const node::NodeConfig& n : r.nodes) {
      if (i >= c.size() || r.nodes.size() != topo.regions[0].nodes.size()) {
        *why = "every region needs the same number of nodes";
        return false;
      }
      if (c.node_id(i) != n.id || c.region(i) != r.name) {
        *why = "node " + n.id + " of region " + r.name + ": the chaos cluster can only name it " +
               c.node_id(i) + " of " + c.region(i);
        return false;
      }
      ++i;
    }
  }
  return true;
}

std::unique_ptr<node::HttpClient> ClientFor(const testing::ClusterProcess& c, int i) {
  std::unique_ptr<node::HttpClient> http = c.Client(i);
  if (http) http->set_timeout(std::chrono::milliseconds(10000));
  return http;
}

bool GetJson(node::HttpClient* http, const std::string& target, json* out) {
  node::ClientResponse res;
  if (http == nullptr || !http->Request("GET", target, "", {}, &res).ok() || res.status != 200) {
    return false;
  }
  *out = json::parse(res.body, nullptr, false);
  return !out->is_discarded();
}

// Every node's state digest, and whether any delta is unacknowledged.
struct Quiet {
  std::vector<std::string> digests;
  bool unacked = false;
  bool all_answered = true;
  bool Converged() const {
    if (!all_answered || unacked || digests.empty()) return false;
    for (const std::string& d : digests) {
      if (d != digests[0]) return false;
    }
    return true;
  }
  // Nodes whose digest differs from the most common one.
  int Diverged() const {
    std::map<std::string, int> n;
    for (const std::string& d : digests) ++n[d];
    int best = 0;
    for (const auto& [d, k] : n) best = std::max(best, k);
    return static_cast<int>(digests.size()) - best;
  }
};

Quiet Poll(const testing::ClusterProcess& c) {
  Quiet q;
  for (int i = 0; i < c.size(); ++i) {
    json st;
    auto http = ClientFor(c, i);
    if (!GetJson(http.get(), "/v1/status", &st) || !st.is_object()) {
      q.all_answered = false;
      q.digests.push_back("(no answer)");
      continue;
    }
    q.digests.push_back(st.value("state_digest", std::string("?")));
    for (const json& p : st["peers"]) {
      if (p.value("unacked_deltas", uint64_t{0}) != 0) q.unacked = true;
    }
  }
  return q;
}

// GET `path`?prefix=chaos/ page after page (`after` = the reply's
// "next"), calling `each` on every entry of the reply's array `field`.
bool ListAll(const testing::ClusterProcess& c, int i, const std::string& path,
             const char* field, const std::function<void(const json&)>& each) {
  auto http = ClientFor(c, i);
  std::string after;
  for (int page = 0; page < 100000; ++page) {
    json out;
    std::string target = path + "?prefix=chaos/&limit=500";
    if (!after.empty()) target += "&after=" + node::EncodeQueryValue(after);
    if (!GetJson(http.get(), target, &out) || !out[field].is_array()) return false;
    for (const json& entry : out[field]) each(entry);
    if (!out["next"].is_string()) return true;
    after = out["next"].get<std::string>();
  }
  return false;
}

// Every chaos/ key as node i's scan shows it.
bool ScanAll(const testing::ClusterProcess& c, int i, std::map<std::string, json>* items) {
  return ListAll(c, i, "/v1/scan", "items",
                 [items](const json& item) { (*items)[item.value("key", "")] = item; });
}

// The keys node i's review queue lists under chaos/.
bool ReviewKeys(const testing::ClusterProcess& c, int i, std::vector<std::string>* keys) {
  return ListAll(c, i, "/v1/conflicts", "conflicts",
                 [keys](const json& e) { keys->push_back(e.value("key", "")); });
}

std::string Minutes(double m) {
  std::ostringstream s;
  s << m;
  return s.str();
}

int Run(const Args& args) {
  node::Topology topo;
  Status st = node::LoadTopology(args.topology, &topo);
  if (!st.ok()) return Usage(st.message());
  testing::ClusterOptions options;
  std::string why;
  if (!OptionsFor(topo, &options, &why)) return Usage(args.topology + ": " + why);

  const uint64_t seed = args.seed_given ? args.seed : std::random_device{}();
  std::cout << "chaos: seed=" << seed << " minutes=" << Minutes(args.minutes) << " topology "
            << args.topology << " (" << options.regions << " regions of "
            << options.nodes_per_region << " nodes), " << args.rate << " ops/s per node"
            << std::endl;

  testing::ClusterProcess cluster(options);
  if (!SameNames(topo, cluster, &why)) return Usage(args.topology + ": " + why);
  if (!cluster.Start()) {
    std::cerr << "chaos: the cluster did not start (seed " << seed << ")\n";
    return 1;
  }
  if (!cluster.WaitWritable(std::chrono::seconds(60), {}, &why)) {
    cluster.PrintStderr("not writable");
    std::cerr << "chaos: the cluster did not become writable: " << why << "\n";
    return 1;
  }

  std::vector<std::string> nodes;
  LoadOptions lo;
  lo.seed = seed;
  lo.ops_per_second = args.rate;
  for (int i = 0; i < cluster.size(); ++i) {
    nodes.push_back(cluster.node_id(i));
    lo.urls.push_back(cluster.url(i));
  }
  const auto t0 = Clock::now();
  Load load(lo, t0);
  Nemesis nemesis(&cluster, &load, seed, options.args_for_all, t0, &std::cout);
  load.Start();
  const auto until = t0 + std::chrono::milliseconds(static_cast<int64_t>(args.minutes * 60000));
  nemesis.Run(until);
  load.Stop();

  // Heal, then wait for quiescence.
  const auto heal_start = Clock::now();
  nemesis.Heal();
  Quiet q;
  bool converged = false;
  const auto heal_deadline = heal_start + kConvergeLimit;
  while (Clock::now() < heal_deadline) {
    q = Poll(cluster);
    if (q.Converged()) {
      converged = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const int64_t converge_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - heal_start).count();
  int diverged = converged ? 0 : std::max(q.Diverged(), 1);

  // What the cluster holds: every node's scan (they must agree) and queue.
  std::vector<Op> history = load.History();
  FinalState final_state;
  std::vector<std::string> problems = nemesis.problems();
  for (int i = 0; i < cluster.size(); ++i) {
    std::map<std::string, json> items;
    if (!ScanAll(cluster, i, &items)) {
      problems.push_back("scan of " + nodes[i] + " failed");
      continue;
    }
    if (i == 0) {
      final_state.items = std::move(items);
    } else if (items != final_state.items) {
      problems.push_back("scan of " + nodes[i] + " differs from " + nodes[0] + "'s");
      if (converged) diverged = std::max(diverged, 1);
    }
    std::vector<std::string> keys;
    if (!ReviewKeys(cluster, i, &keys)) problems.push_back("review queue of " + nodes[i] + " unread");
    final_state.review_keys.push_back(std::move(keys));
  }
  CheckResult result = Check(history, final_state);

  // A node beyond the clock limit acknowledges nothing.
  for (const SkewWindow& w : nemesis.skews()) {
    if (!w.beyond) continue;
    const int64_t to = w.to_ms != 0 ? w.to_ms : INT64_MAX;
    for (const Op& op : history) {
      if (op.node == w.node && op.outcome == Outcome::kAcknowledged && op.start_ms >= w.from_ms &&
          op.end_ms <= to) {
        problems.push_back(nodes[op.node] + " acknowledged a write with its clock " +
                           std::to_string(w.offset_ms) + " ms off: " + Describe(op, nodes));
      }
    }
  }

  // How the operations ended, by error.
  std::map<std::string, int> endings;
  for (const Op& op : history) {
    if (op.outcome != Outcome::kAcknowledged) {
      // An error code, or the end of a transport message ("... :
      // Connection refused").
      const size_t colon = op.http_status != 0 ? std::string::npos : op.error.rfind(": ");
      ++endings[std::string(OutcomeName(op.outcome)) + " " +
                (op.http_status ? std::to_string(op.http_status) + " " : "") +
                (colon == std::string::npos ? op.error : op.error.substr(colon + 2))];
    }
  }
  std::cout << "chaos: " << history.size() << " operations on " << result.keys << " keys, "
            << result.conflicts << " mvregister keys in review;";
  for (const auto& [e, n] : endings) std::cout << " [" << e << "] " << n;
  std::cout << std::endl;

  const bool ok = result.ok() && diverged == 0 && problems.empty();
  if (!ok) {
    std::cout << "chaos: FAILED, seed=" << seed << " (rerun: ./dev chaos --minutes "
              << Minutes(args.minutes) << " --seed " << seed << ")\n";
    if (!converged) {
      std::cout << "chaos: no convergence " << kConvergeLimit.count() << " s after the heal;"
                << (q.unacked ? " deltas unacknowledged;" : "") << " digests:";
      for (size_t i = 0; i < q.digests.size(); ++i) std::cout << " " << nodes[i] << "=" << q.digests[i];
      std::cout << "\n";
    }
    for (const std::string& p : problems) std::cout << "chaos: " << p << "\n";
    size_t shown = 0;
    for (const Violation& v : result.violations) {
      if (++shown > 50) {
        std::cout << "chaos: ... " << result.violations.size() - 50 << " more\n";
        break;
      }
      std::cout << "chaos: " << (v.loss ? "LOST: " : "BROKEN: ") << v.what << "\n";
      for (size_t k = 0; k < v.ops.size() && k < 20; ++k) {
        std::cout << "    " << Describe(*v.ops[k], nodes) << "\n";
      }
      if (v.ops.size() > 20) std::cout << "    ... " << v.ops.size() - 20 << " more operations\n";
    }
    cluster.PrintStderr("the chaos run failed", 16 << 10);
  }
  const FaultCounts& f = nemesis.counts();
  uint64_t acked = 0;
  for (const Op& op : history) acked += op.outcome == Outcome::kAcknowledged;
  std::cout << "chaos seed=" << seed << " minutes=" << Minutes(args.minutes)
            << " faults=" << f.total() << " (kill=" << f.kill << " pause=" << f.pause
            << " partition=" << f.partition << " skew=" << f.skew << " wipe=" << f.wipe
            << " delay=" << f.delay << ") attempted=" << history.size()
            << " acknowledged=" << acked << " lost=" << result.lost << " diverged=" << diverged
            << " converge_ms=" << (converged ? std::to_string(converge_ms) : "none") << std::endl;
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace meridian::chaos

int main(int argc, char** argv) {
  meridian::chaos::Args args;
  std::string why;
  if (!meridian::chaos::ParseArgs(argc, argv, &args, &why)) return meridian::chaos::Usage(why);
  return meridian::chaos::Run(args);
}
