// Conflicts end to end (issue 6): three real meridiand regions on loopback
// with [[policy]] tables, cut apart through the fault endpoint while each
// writes the same keys, then healed. Checks what every region reads
// (resolved with X-Resolved-By, or 300 with siblings), the review queue in
// every region, a resolution through POST /v1/conflicts/{key} clearing it
// everywhere, a write racing that resolution surviving as a new entry, a
// stale resolution refused, Lua resolvers (sandbox and budget failures go
// to review with the reason), the audit log, and a type conflict.
#define BOOST_TEST_MODULE conflicts
#include <signal.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <vector>

#include "node/http_client.h"
#include "tests/node/cluster_process.h"
#include "tests/node/node_process.h"

using meridian::testing::ClusterOptions;
using meridian::testing::ClusterProcess;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

const char kPolicies[] = R"(
[[policy]]
prefix  = "stock/"
type    = "mvregister"
resolve = ["max"]

[[policy]]
prefix        = "doc/"
type          = "mvregister"
on_unresolved = "review"

[[policy]]
prefix = "profile/"
type   = "register"
audit  = true

[[policy]]
prefix  = "tags/"
type    = "mvregister"
resolve = ["lua:resolvers/tags.lua"]

[[policy]]
prefix  = "escape/"
type    = "mvregister"
resolve = ["lua:resolvers/escape.lua"]

[[policy]]
prefix  = "loop/"
type    = "mvregister"
resolve = ["lua:resolvers/loop.lua"]

[[policy]]
prefix  = "count/"
type    = "counter"
)";

// Merges objects of tag -> weight by iterating with pairs (sorted in the
// sandbox), and says in which order it saw the tags, so that any
// difference in iteration order between regions would show in the value.
const char kTagsLua[] = R"(
function resolve(siblings)
  local merged, order = {}, {}
  for _, s in ipairs(siblings) do
    for tag, w in pairs(s.value) do
      if merged[tag] == nil then order[#order + 1] = tag end
      merged[tag] = (merged[tag] or 0) + w
    end
  end
  local seen = ""
  for tag, w in pairs(merged) do seen = seen .. tag .. "=" .. w .. ";" end
  return {seen = seen, first = order[1]}
end
)";
const char kEscapeLua[] = R"(
function resolve(siblings)
  os.execute("touch /tmp/meridian-escaped")
  return siblings[1].value
end
)";
const char kLoopLua[] = "function resolve(siblings) while true do end end\n";

struct Reply {
  int status = 0;
  json body;
  std::string resolved_by;
  std::string raw;
};

class Regions {
 public:
  Regions() : cluster_(Options()) {
    mkdir((cluster_.dir() + "/resolvers").c_str(), 0755);
    std::ofstream(cluster_.dir() + "/resolvers/tags.lua") << kTagsLua;
    std::ofstream(cluster_.dir() + "/resolvers/escape.lua") << kEscapeLua;
    std::ofstream(cluster_.dir() + "/resolvers/loop.lua") << kLoopLua;
    BOOST_REQUIRE(cluster_.Start());
    std::string why;
    BOOST_REQUIRE_MESSAGE(cluster_.WaitWritable(milliseconds(20000), {}, &why), why);
  }

  static ClusterOptions Options() {
    ClusterOptions o;
    o.cluster_name = "conflicts-test";
    o.args_for_all = {"--enable-fault-injection"};
    o.extra_toml = kPolicies;
    return o;
  }

  ClusterProcess& cluster() { return cluster_; }
  int size() { return cluster_.size(); }

  Reply Call(int i, const std::string& method, const std::string& target,
             const std::string& body = "") {
    auto client = cluster_.Client(i);
    meridian::node::ClientResponse res;
    std::vector<std::pair<std::string, std::string>> headers;
    if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
    meridian::Status st = client->Request(method, target, body, headers, &res);
    BOOST_REQUIRE_MESSAGE(st.ok(), method << " " << target << ": " << st.ToString());
    Reply r;
    r.status = res.status;
    r.raw = res.body;
    r.body = json::parse(res.body, nullptr, false);
    r.resolved_by = res.Header("x-resolved-by");
    return r;
  }
  Reply Put(int i, const std::string& key, const json& v) {
    return Call(i, "PUT", "/v1/kv/" + key, v.dump());
  }
  Reply Read(int i, const std::string& key) { return Call(i, "GET", "/v1/kv/" + key); }

  // Every node drops gossip to and from every other.
  void Partition() {
    for (int i = 0; i < size(); ++i) {
      json drop = json::array();
      for (int j = 0; j < size(); ++j) {
        if (j != i) drop.push_back(cluster_.node_id(j));
      }
      BOOST_REQUIRE_EQUAL(Call(i, "POST", "/v1/admin/faults", json{{"drop", drop}}.dump()).status,
                          200);
    }
  }
  void Heal() {
    for (int i = 0; i < size(); ++i) {
      BOOST_REQUIRE_EQUAL(
          Call(i, "POST", "/v1/admin/faults", json{{"drop", json::array()}}.dump()).status, 200);
    }
  }
  // Until every node has the same state digest and no delta in flight.
  void WaitConverged() {
    std::string last;
    auto converged = [&] {
      std::set<std::string> digests;
      last.clear();
      for (int i = 0; i < size(); ++i) {
        json s = Call(i, "GET", "/v1/status").body;
        digests.insert(s.value("state_digest", ""));
        for (const json& p : s["peers"]) {
          if (p.value("unacked_deltas", 0) != 0 || p.value("behind", 0) != 0) return false;
        }
        last += cluster_.node_id(i) + " " + s.value("state_digest", "") + "\n";
      }
      return digests.size() == 1;
    };
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!converged()) {
      BOOST_REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline,
                            "no convergence within 30 s:\n" << last);
      std::this_thread::sleep_for(milliseconds(100));
    }
  }
  // meridianctl against node i.
  meridian::testing::CtlResult Ctl(int i, std::vector<std::string> args,
                                   milliseconds timeout = milliseconds(20000)) {
    args.insert(args.begin(), {"--url", cluster_.url(i)});
    return meridian::testing::RunProgram(MERIDIAN_MERIDIANCTL, cluster_.dir(), args, timeout);
  }

  // The review queue of node i, by key.
  std::map<std::string, json> Queue(int i) {
    Reply r = Call(i, "GET", "/v1/conflicts?limit=1000");
    BOOST_REQUIRE_MESSAGE(r.status == 200, r.raw);
    std::map<std::string, json> out;
    for (const json& e : r.body["conflicts"]) {
      BOOST_TEST(out.count(e["key"].get<std::string>()) == 0u, "listed twice: " << e.dump());
      out[e["key"].get<std::string>()] = e;
    }
    return out;
  }

 private:
  ClusterProcess cluster_;
};

std::set<std::string> SiblingValues(const json& entry) {
  std::set<std::string> out;
  for (const json& s : entry["siblings"]) out.insert(s["value"].dump());
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(concurrent_writes_are_settled_or_reviewed_alike_in_every_region) {
  Regions r;
  r.Partition();
  const std::vector<int> stock = {5, 9, 7};
  for (int i = 0; i < r.size(); ++i) {
    BOOST_REQUIRE_EQUAL(r.Put(i, "stock/widget", stock[i]).status, 200);
    BOOST_REQUIRE_EQUAL(r.Put(i, "doc/readme", "version " + std::to_string(i)).status, 200);
    BOOST_REQUIRE_EQUAL(r.Put(i, "tags/post", json{{"t" + std::to_string(2 - i), i + 1}, {"common", 1}}).status, 200);
    BOOST_REQUIRE_EQUAL(r.Put(i, "escape/x", i).status, 200);
    BOOST_REQUIRE_EQUAL(r.Put(i, "loop/x", i).status, 200);
  }
  // A key under a counter policy refuses a register write.
  Reply wrong = r.Put(0, "count/c", 1);
  BOOST_TEST(wrong.status == 409);
  BOOST_TEST(wrong.body.value("error", "") == "type_mismatch");
  // A type conflict: a register in one region, a counter in another.
  BOOST_REQUIRE_EQUAL(r.Put(0, "mixed", "text").status, 200);
  BOOST_REQUIRE_EQUAL(r.Call(1, "POST", "/v1/counter/mixed", R"({"add": 3})").status, 200);
  r.Heal();
  r.WaitConverged();

  for (int i = 0; i < r.size(); ++i) {
    Reply s = r.Read(i, "stock/widget");
    BOOST_TEST(s.status == 200, s.raw);
    BOOST_TEST(s.body["value"] == 9);
    BOOST_TEST(s.resolved_by == "max");

    Reply d = r.Read(i, "doc/readme");
    BOOST_TEST(d.status == 300, d.raw);
    BOOST_TEST(d.body["siblings"].size() == 3u);
    BOOST_TEST(d.resolved_by.empty());

    // The Lua merge saw the tags in the same (sorted) order everywhere.
    Reply t = r.Read(i, "tags/post");
    BOOST_TEST(t.status == 200, t.raw);
    BOOST_TEST(t.resolved_by == "lua:resolvers/tags.lua");
    BOOST_TEST(t.body["value"]["seen"] == "common=3;t0=3;t1=2;t2=1;", t.raw);

    // What the sandbox forbids, and a script that never ends, leave the
    // siblings for review with the reason; the node keeps serving.
    const auto t0 = std::chrono::steady_clock::now();
    Reply e = r.Read(i, "escape/x");
    Reply l = r.Read(i, "loop/x");
    BOOST_TEST(e.status == 300, e.raw);
    BOOST_TEST(e.body.value("reason", "").find("os") != std::string::npos, e.raw);
    BOOST_TEST(l.status == 300, l.raw);
    BOOST_TEST(l.body.value("reason", "").find("instruction budget") != std::string::npos, l.raw);
    BOOST_TEST((std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2)));

    auto queue = r.Queue(i);
    BOOST_TEST(queue.count("stock/widget") == 0u);
    BOOST_TEST(queue.count("tags/post") == 0u);
    BOOST_REQUIRE(queue.count("doc/readme") == 1u);
    const json& doc = queue["doc/readme"];
    BOOST_TEST(doc["siblings"].size() == 3u);
    BOOST_TEST(doc["regions"].size() == 3u);
    BOOST_TEST(doc["policy"] == "doc/");
    BOOST_TEST(doc["detected_ms"].get<uint64_t>() > 0u);
    BOOST_TEST(queue.count("escape/x") == 1u);
    BOOST_TEST(queue.count("loop/x") == 1u);
    BOOST_REQUIRE(queue.count("mixed") == 1u);
    BOOST_TEST(queue["mixed"]["reason"] == "type_conflict");
    std::set<std::string> losing;
    for (const json& sib : queue["mixed"]["siblings"]) {
      losing.insert(sib["type"].get<std::string>() + " " + sib["value"].dump());
    }
    BOOST_TEST((losing == std::set<std::string>{"register \"text\"", "counter 3"}),
               queue["mixed"].dump());

    Reply metrics = r.Call(i, "GET", "/metrics");
    BOOST_TEST(metrics.raw.find("\nmeridian_review_queue_depth 4\n") != std::string::npos,
               metrics.raw);
    BOOST_TEST(metrics.raw.find("meridian_resolver_calls_total{resolver=\"max\",outcome=\"decided\"}") !=
               std::string::npos);
    BOOST_TEST(metrics.raw.find("meridian_resolver_calls_total{resolver=\"lua:resolvers/loop.lua\","
                                "outcome=\"errors\"} 0") == std::string::npos,
               "the looping script's failures are counted as errors");
    json status = r.Call(i, "GET", "/v1/status").body;
    BOOST_TEST(status["conflicts"]["review_queue"] == 4);
    BOOST_TEST(status["conflicts"]["policy_mismatches"] == 0);
  }
  // `conflicts watch` shows what is open, then runs until stopped.
  auto watch = r.Ctl(0, {"conflicts", "watch"}, milliseconds(1500));
  BOOST_TEST(!watch.finished);
  BOOST_TEST(watch.out.find("open doc/readme (3 siblings") != std::string::npos, watch.Describe());
}

BOOST_AUTO_TEST_CASE(sighup_reloads_policies_and_peers_see_the_hash_differ) {
  Regions r;
  r.Partition();
  for (int i = 0; i < r.size(); ++i) {
    BOOST_REQUIRE_EQUAL(r.Put(i, "doc/x", std::string(i + 1, 'a')).status, 200);
  }
  r.Heal();
  r.WaitConverged();
  BOOST_REQUIRE_EQUAL(r.Read(0, "doc/x").status, 300);
  const std::string hash = r.Call(0, "GET", "/v1/status").body["conflicts"]["policy_hash"];

  // Node 0 alone reloads a file where doc/ keeps the longest version.
  const std::string path = r.cluster().topology_path();
  std::string text;
  {
    std::ifstream f(path);
    text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  std::string changed = text;
  const std::string from = "prefix        = \"doc/\"\ntype          = \"mvregister\"\n";
  BOOST_REQUIRE(changed.find(from) != std::string::npos);
  changed.replace(changed.find(from), from.size(), from + "resolve       = [\"longest\"]\n");
  std::ofstream(path, std::ios::trunc) << changed;
  BOOST_REQUIRE_EQUAL(kill(r.cluster().pid(0), SIGHUP), 0);
  bool reloaded = false;
  for (int k = 0; k < 100 && !reloaded; ++k) {
    reloaded = r.Read(0, "doc/x").status == 200;
    if (!reloaded) std::this_thread::sleep_for(milliseconds(50));
  }
  BOOST_REQUIRE_MESSAGE(reloaded, r.cluster().Stderr(0));
  Reply longest = r.Read(0, "doc/x");
  BOOST_TEST(longest.body["value"] == "aaa");
  BOOST_TEST(longest.resolved_by == "longest");
  BOOST_TEST(r.Read(1, "doc/x").status == 300);  // its policies did not change
  json s0 = r.Call(0, "GET", "/v1/status").body;
  BOOST_TEST(s0["conflicts"]["policy_hash"] != hash);
  // The peers learn the new hash from its next Ping and report it.
  bool seen = false;
  for (int k = 0; k < 100 && !seen; ++k) {
    json s1 = r.Call(1, "GET", "/v1/status").body;
    seen = s1["conflicts"]["policy_mismatches"] == 1;
    if (!seen) std::this_thread::sleep_for(milliseconds(50));
  }
  BOOST_TEST(seen);
  BOOST_TEST(r.Call(1, "GET", "/metrics").raw.find("\nmeridian_policy_mismatches 1\n") !=
             std::string::npos);

  // A file that does not load is refused: the policies in force stay.
  std::ofstream(path, std::ios::trunc) << changed << "[[policy]]\nprefix = \"doc/\"\n";
  BOOST_REQUIRE_EQUAL(kill(r.cluster().pid(0), SIGHUP), 0);
  bool refused = false;
  for (int k = 0; k < 100 && !refused; ++k) {
    refused = r.cluster().Stderr(0).find("the policies in force stay") != std::string::npos;
    if (!refused) std::this_thread::sleep_for(milliseconds(50));
  }
  BOOST_TEST(refused);
  BOOST_TEST(r.Read(0, "doc/x").resolved_by == "longest");
  std::ofstream(path, std::ios::trunc) << text;  // as it was, for the restarts of others
}

BOOST_AUTO_TEST_CASE(a_resolution_clears_the_entry_everywhere_and_a_racing_write_survives) {
  Regions r;
  r.Partition();
  for (int i = 0; i < r.size(); ++i) {
    BOOST_REQUIRE_EQUAL(r.Put(i, "doc/plan", "plan " + std::to_string(i)).status, 200);
  }
  r.Heal();
  r.WaitConverged();

  // What a person sees: the list, then one entry with a diff.
  auto list = r.Ctl(2, {"conflicts", "list"});
  BOOST_REQUIRE_MESSAGE(list.exit_code == 0, list.Describe());
  BOOST_TEST(list.out.find("doc/plan") != std::string::npos, list.Describe());
  BOOST_TEST(list.out.find("KEY") == 0u, list.Describe());
  auto show = r.Ctl(2, {"conflicts", "show", "doc/plan"});
  BOOST_REQUIRE_MESSAGE(show.exit_code == 0, show.Describe());
  BOOST_TEST(show.out.find("[2] ") != std::string::npos, show.Describe());
  BOOST_TEST(show.out.find("diff [0] -> [1]") != std::string::npos, show.Describe());
  BOOST_TEST(show.out.find("\n  - plan ") != std::string::npos, show.Describe());
  BOOST_TEST(show.out.find("\n  + plan ") != std::string::npos, show.Describe());
  auto missing = r.Ctl(2, {"conflicts", "show", "doc/none"});
  BOOST_TEST(missing.exit_code == 1, missing.Describe());
  BOOST_TEST(missing.err.find("has no conflict to review") != std::string::npos,
             missing.Describe());
  auto bad_pick = r.Ctl(2, {"conflicts", "resolve", "doc/plan", "--pick", "7"});
  BOOST_TEST(bad_pick.exit_code == 1, bad_pick.Describe());
  BOOST_TEST(bad_pick.err.find("no sibling 7") != std::string::npos, bad_pick.Describe());

  // Resolve by pick in region 0, through meridianctl (GET, then POST).
  Reply entry = r.Call(0, "GET", "/v1/conflicts/doc/plan");
  BOOST_REQUIRE_MESSAGE(entry.status == 200, entry.raw);
  const json picked = entry.body["siblings"][1]["value"];
  const std::string context = entry.body["context"];
  auto resolved = r.Ctl(0, {"conflicts", "resolve", "doc/plan", "--pick", "1", "--json"});
  BOOST_REQUIRE_MESSAGE(resolved.exit_code == 0, resolved.Describe());
  BOOST_TEST(json::parse(resolved.out, nullptr, false).value("ok", false), resolved.Describe());
  r.WaitConverged();
  for (int i = 0; i < r.size(); ++i) {
    Reply read = r.Read(i, "doc/plan");
    BOOST_TEST(read.status == 200, read.raw);
    BOOST_TEST(read.body["value"] == picked);
    BOOST_TEST(r.Queue(i).count("doc/plan") == 0u);
    BOOST_TEST(r.Call(i, "GET", "/v1/conflicts/doc/plan").status == 404);
  }
  // The same context again is stale.
  Reply stale = r.Call(1, "POST", "/v1/conflicts/doc/plan",
                       json{{"context", context}, {"value", "late"}}.dump());
  BOOST_TEST(stale.status == 409);
  BOOST_TEST(stale.body.value("error", "") == "stale", stale.raw);

  // A new conflict; region 2 writes while cut off, as region 0 resolves
  // the siblings it knows: the write survives as a new entry with the
  // resolution beside it.
  r.Partition();
  BOOST_REQUIRE_EQUAL(r.Put(0, "doc/plan", "a").status, 200);
  BOOST_REQUIRE_EQUAL(r.Put(1, "doc/plan", "b").status, 200);
  r.Heal();
  r.WaitConverged();
  entry = r.Call(0, "GET", "/v1/conflicts/doc/plan");
  BOOST_REQUIRE_MESSAGE(entry.status == 200 && entry.body["siblings"].size() == 2u, entry.raw);
  r.Partition();
  BOOST_REQUIRE_EQUAL(r.Put(2, "doc/plan", "racing").status, 200);
  Reply done = r.Call(0, "POST", "/v1/conflicts/doc/plan",
                json{{"context", entry.body["context"]}, {"value", "merged"}}.dump());
  BOOST_REQUIRE_MESSAGE(done.status == 200, done.raw);
  r.Heal();
  r.WaitConverged();
  for (int i = 0; i < r.size(); ++i) {
    auto queue = r.Queue(i);
    BOOST_REQUIRE(queue.count("doc/plan") == 1u);
    BOOST_TEST((SiblingValues(queue["doc/plan"]) ==
                std::set<std::string>{"\"merged\"", "\"racing\""}),
               queue["doc/plan"].dump());
  }

  // meridianctl: --prefix narrows the list; a value that is not JSON is
  // refused before anything is sent; a value from a file settles it.
  auto other = r.Ctl(1, {"conflicts", "list", "--prefix", "stock/"});
  BOOST_TEST(other.exit_code == 0, other.Describe());
  BOOST_TEST(other.out == "no conflicts to review\n", other.Describe());
  auto not_json = r.Ctl(1, {"conflicts", "resolve", "doc/plan", "--value", "{oops"});
  BOOST_TEST(not_json.exit_code == 1, not_json.Describe());
  BOOST_TEST(not_json.err.find("--value is not JSON") != std::string::npos, not_json.Describe());
  std::ofstream(r.cluster().dir() + "/final.json") << R"({"title": "final"})";
  auto from_file = r.Ctl(1, {"conflicts", "resolve", "doc/plan", "--file", "final.json"});
  BOOST_REQUIRE_MESSAGE(from_file.exit_code == 0, from_file.Describe());
  r.WaitConverged();
  for (int i = 0; i < r.size(); ++i) {
    Reply read = r.Read(i, "doc/plan");
    BOOST_TEST(read.status == 200, read.raw);
    BOOST_TEST(read.body["value"]["title"] == "final");
    BOOST_TEST(r.Queue(i).empty());
  }
  // Resolving what is already resolved says so.
  auto again = r.Ctl(2, {"conflicts", "resolve", "doc/plan", "--pick", "0"});
  BOOST_TEST(again.exit_code == 1, again.Describe());
  BOOST_TEST(again.err.find("has no conflict to review") != std::string::npos, again.Describe());
}

BOOST_AUTO_TEST_CASE(audited_registers_read_by_lww_and_log_only_truly_concurrent_losers) {
  Regions r;
  r.Partition();
  BOOST_REQUIRE_EQUAL(r.Put(0, "profile/ann", json{{"name", "Ann"}}).status, 200);
  std::this_thread::sleep_for(milliseconds(20));
  BOOST_REQUIRE_EQUAL(r.Put(1, "profile/ann", json{{"name", "Anne"}}).status, 200);
  r.Heal();
  r.WaitConverged();
  // Merely late: region 2 writes after seeing both; nothing more is logged.
  BOOST_REQUIRE_EQUAL(r.Put(2, "profile/ann", json{{"name", "Annie"}}).status, 200);
  BOOST_REQUIRE_EQUAL(r.Put(0, "profile/bob", "first").status, 200);
  r.WaitConverged();
  BOOST_REQUIRE_EQUAL(r.Put(1, "profile/bob", "second").status, 200);
  r.WaitConverged();
  for (int i = 0; i < r.size(); ++i) {
    Reply read = r.Read(i, "profile/ann");
    BOOST_TEST(read.status == 200, read.raw);
    BOOST_TEST(read.body["type"] == "register");
    BOOST_TEST(read.body["value"]["name"] == "Annie");
    Reply audit = r.Call(i, "GET", "/v1/audit/profile/ann");
    BOOST_REQUIRE_MESSAGE(audit.status == 200, audit.raw);
    BOOST_REQUIRE_EQUAL(audit.body["records"].size(), 1u);
    const json& rec = audit.body["records"][0];
    BOOST_TEST(rec["value"]["name"] == "Ann", rec.dump());
    BOOST_TEST(rec["region"] == r.cluster().region(0));
    BOOST_TEST(rec["winner"]["region"] == r.cluster().region(1));
    BOOST_TEST(rec["hlc"].get<uint64_t>() < rec["winner"]["hlc"].get<uint64_t>());
    auto ctl = r.Ctl(i, {"conflicts", "audit", "profile/ann"});
    BOOST_TEST(ctl.exit_code == 0, ctl.Describe());
    BOOST_TEST(ctl.out.find("{\"name\":\"Ann\"}") != std::string::npos, ctl.Describe());
    Reply bob = r.Call(i, "GET", "/v1/audit/profile/bob");
    BOOST_TEST(bob.status == 200, bob.raw);
    BOOST_TEST(bob.body["records"].size() == 0u, bob.raw);
    BOOST_TEST(r.Queue(i).count("profile/ann") == 0u);
  }
}
