#define BOOST_TEST_MODULE topology
#include "node/topology.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "gossip/curve_keys.h"

using meridian::Status;
using namespace meridian::node;

namespace {

// The repository root: MERIDIAN_GOLDEN_DIR is <root>/tests/golden under
// ctest; run by hand, this file's own path says where the root is.
std::string SourceRoot() {
  if (const char* golden = std::getenv("MERIDIAN_GOLDEN_DIR")) {
    return std::string(golden) + "/../..";
  }
  std::string here = __FILE__;  // <root>/tests/node/topology_test.cc
  for (int i = 0; i < 3; ++i) here = here.substr(0, here.rfind('/'));
  return here;
}

std::string RegionsDir() { return SourceRoot() + "/regions"; }

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t nl = s.find('\n', start);
    out.push_back(s.substr(start, nl - start));
    if (nl == std::string::npos) return out;
    start = nl + 1;
  }
}

// A valid file, built from pieces so each test changes one thing.
const char kCluster[] = "[cluster]\nname = \"c\"\n";  // lines 1-2
std::string NodeToml(const std::string& id, int http, int gossip, const std::string& extra = "") {
  return "[[region.node]]\nid = \"" + id + "\"\nhttp = \"127.0.0.1:" + std::to_string(http) +
         "\"\ngossip = \"tcp://127.0.0.1:" + std::to_string(gossip) + "\"\ndata_dir = \"d/" + id +
         "\"\n" + extra;
}

Status Parse(const std::string& text, Topology* out = nullptr) {
  Topology scratch;
  return ParseTopology(text, "t.toml", out != nullptr ? out : &scratch);
}

// Asserts the parse fails with exactly these lines, in this order.
void ExpectProblems(const std::string& text, const std::vector<std::string>& expected) {
  Status s = Parse(text);
  BOOST_TEST_INFO("input:\n" << text);
  BOOST_REQUIRE(!s.ok());
  BOOST_TEST(s.IsInvalidArgument());
  std::vector<std::string> got = Lines(s.message());
  BOOST_TEST(got == expected, boost::test_tools::per_element());
}

void ExpectProblem(const std::string& text, const std::string& expected) {
  ExpectProblems(text, {expected});
}

// A temporary directory removed (with what the test put in it) at the end.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/topology_test.XXXXXX";
    BOOST_REQUIRE(mkdtemp(tmpl) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::string cmd = "chmod -R u+rwx '" + path_ + "' && rm -rf '" + path_ + "'";
    if (std::system(cmd.c_str()) != 0) BOOST_TEST_MESSAGE("could not remove " << path_);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  BOOST_REQUIRE(f.good());
}

// Permission bits do not stop root; tests of them skip rather than pass
// vacuously.
boost::test_tools::assertion_result NotRoot(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result result(geteuid() != 0);
  result.message() << "running as root, which permission bits do not restrict";
  return result;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(shipped_files)

BOOST_AUTO_TEST_CASE(single) {
  Topology t;
  Status s = LoadTopology(RegionsDir() + "/single.toml", &t);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(t.file == RegionsDir() + "/single.toml");
  BOOST_TEST(t.cluster_name == "single");
  BOOST_TEST(t.max_clock_offset_ms == 500u);
  BOOST_TEST(t.heartbeat_interval_ms == 500u);
  BOOST_TEST(t.anti_entropy_interval_ms == 1000u);
  BOOST_TEST(t.sync);
  BOOST_TEST(t.max_body_bytes == 8u << 20);
  BOOST_TEST(t.log_retention_ms == 24u * 3600 * 1000);
  BOOST_TEST(t.log_retention_bytes == uint64_t{1} << 30);
  BOOST_TEST(t.retention_horizon_ms == uint64_t{7} * 24 * 3600 * 1000);
  BOOST_REQUIRE(t.regions.size() == 1u);
  BOOST_TEST(t.regions[0].name == "local");
  BOOST_REQUIRE(t.regions[0].nodes.size() == 1u);
  const NodeConfig& n = t.regions[0].nodes[0];
  BOOST_TEST(n.id == "local-1");
  BOOST_TEST(n.region == "local");
  BOOST_TEST(n.http_host == "127.0.0.1");
  BOOST_TEST(n.http_port == 7100);
  BOOST_TEST(n.gossip == "tcp://127.0.0.1:7200");
  BOOST_TEST(n.data_dir == "data/local-1");
  BOOST_TEST(n.sync);
  BOOST_TEST(t.FindNode("local-1") == &n);
}

BOOST_AUTO_TEST_CASE(local) {
  Topology t;
  Status s = LoadTopology(RegionsDir() + "/local.toml", &t);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(t.cluster_name == "local");
  BOOST_REQUIRE(t.regions.size() == 3u);
  const char* regions[] = {"us-east", "eu-west", "ap-south"};
  for (int i = 0; i < 3; ++i) {
    BOOST_TEST_CONTEXT("region " << regions[i]) {
      const RegionConfig& r = t.regions[i];
      BOOST_TEST(r.name == regions[i]);
      BOOST_REQUIRE(r.nodes.size() == 1u);
      const NodeConfig& n = r.nodes[0];
      BOOST_TEST(n.id == std::string(regions[i]) + "-1");
      BOOST_TEST(n.region == regions[i]);
      BOOST_TEST(n.http_host == "127.0.0.1");
      BOOST_TEST(n.http_port == 7101 + i);
      BOOST_TEST(n.gossip == "tcp://127.0.0.1:" + std::to_string(7201 + i));
      BOOST_TEST(n.data_dir == "data/" + n.id);
      BOOST_TEST(n.sync);
    }
  }
}

BOOST_AUTO_TEST_CASE(local_6) {
  Topology t;
  Status s = LoadTopology(RegionsDir() + "/local-6.toml", &t);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(t.cluster_name == "local-6");
  BOOST_REQUIRE(t.regions.size() == 3u);
  const char* regions[] = {"us-east", "eu-west", "ap-south"};
  std::vector<const NodeConfig*> all = t.AllNodes();
  BOOST_REQUIRE(all.size() == 6u);
  for (int i = 0; i < 6; ++i) {
    const NodeConfig& n = *all[i];
    BOOST_TEST_CONTEXT("node " << i) {
      std::string region = regions[i / 2];
      BOOST_TEST(t.regions[i / 2].name == region);
      BOOST_TEST(n.region == region);
      BOOST_TEST(n.id == region + "-" + std::to_string(i % 2 + 1));
      BOOST_TEST(n.http_port == 7111 + i);
      BOOST_TEST(n.gossip == "tcp://127.0.0.1:" + std::to_string(7211 + i));
      BOOST_TEST(n.data_dir == "data/local-6/" + n.id);
      BOOST_TEST(t.FindNode(n.id) == &n);
    }
  }
}

// Any topology file added later must load too.
BOOST_AUTO_TEST_CASE(secure_local_names_its_secret_files) {
  std::vector<std::string> secrets;
  Status s = meridian::node::SecretFilesOf(RegionsDir() + "/secure-local.toml", &secrets);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  const std::string d = RegionsDir() + "/secure-local/";
  std::vector<std::string> expected = {d + "tokens.toml"};
  for (const char* id : {"us-east-1", "eu-west-1", "ap-south-1"}) {
    expected.push_back(d + id + "-key.pem");
    expected.push_back(d + id + ".key");
  }
  BOOST_TEST(secrets == expected, boost::test_tools::per_element());
  // A topology without secrets names none; a broken one says why.
  BOOST_REQUIRE(meridian::node::SecretFilesOf(RegionsDir() + "/local.toml", &secrets).ok());
  BOOST_TEST(secrets.empty());
  BOOST_TEST(!meridian::node::SecretFilesOf(RegionsDir() + "/no-such.toml", &secrets).ok());
}

BOOST_AUTO_TEST_CASE(every_file_in_regions_loads) {
  DIR* dir = opendir(RegionsDir().c_str());
  BOOST_REQUIRE_MESSAGE(dir != nullptr, "cannot open " << RegionsDir());
  int count = 0;
  while (dirent* e = readdir(dir)) {
    std::string name = e->d_name;
    if (name.size() < 5 || name.substr(name.size() - 5) != ".toml") continue;
    ++count;
    // The secret files a topology names are private in use (`meridianctl
    // up` makes them so: git keeps no modes), so they are made so here.
    std::vector<std::string> secrets;
    Status listed = meridian::node::SecretFilesOf(RegionsDir() + "/" + name, &secrets);
    BOOST_TEST(listed.ok(), name << ": " << listed.ToString());
    for (const std::string& path : secrets) BOOST_TEST(chmod(path.c_str(), 0600) == 0, path);
    Topology t;
    Status s = LoadTopology(RegionsDir() + "/" + name, &t);
    BOOST_TEST(s.ok(), name << ": " << s.ToString());
  }
  closedir(dir);
  BOOST_TEST(count >= 3);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(valid)

BOOST_AUTO_TEST_CASE(settings_and_sync_override) {
  Topology t;
  Status s = Parse(
      "[cluster]\n"
      "name = \"c\"\n"
      "max_clock_offset_ms = 250\n"
      "heartbeat_interval_ms = 100\n"
      "anti_entropy_interval_ms = 2000\n"
      "max_body_bytes = 1024\n"
      "log_retention_ms = 60000\n"
      "log_retention_bytes = 1048576\n"
      "retention_horizon_ms = 2000\n"
      "sync = false\n"
      "[[region]]\n"
      "name = \"a\"\n" +
          NodeToml("a-1", 1, 2) + NodeToml("a-2", 3, 4, "sync = true\n") +
          "[[region]]\n"
          "name = \"b\"\n" +
          NodeToml("b-1", 5, 6),
      &t);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(t.file == "t.toml");
  BOOST_TEST(t.max_clock_offset_ms == 250u);
  BOOST_TEST(t.heartbeat_interval_ms == 100u);
  BOOST_TEST(t.anti_entropy_interval_ms == 2000u);
  BOOST_TEST(t.max_body_bytes == 1024u);
  BOOST_TEST(t.log_retention_ms == 60000u);
  BOOST_TEST(t.log_retention_bytes == 1048576u);
  BOOST_TEST(t.retention_horizon_ms == 2000u);
  BOOST_TEST(!t.sync);
  BOOST_REQUIRE(t.FindNode("a-1") != nullptr);
  BOOST_TEST(!t.FindNode("a-1")->sync);  // inherits [cluster] sync = false
  BOOST_TEST(t.FindNode("a-2")->sync);   // its own sync = true wins
  BOOST_TEST(!t.FindNode("b-1")->sync);
  BOOST_TEST(t.FindNode("b-1")->region == "b");
  BOOST_TEST(t.FindNode("nope") == nullptr);
  std::vector<std::string> ids;
  for (const NodeConfig* n : t.AllNodes()) ids.push_back(n->id);
  BOOST_TEST(ids == (std::vector<std::string>{"a-1", "a-2", "b-1"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(node_false_overrides_cluster_default) {
  Topology t;
  Status s = Parse(
      std::string(kCluster) + "[[region]]\nname = \"r\"\n" + NodeToml("n", 1, 2, "sync = false\n"),
      &t);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(t.sync);
  BOOST_TEST(!t.FindNode("n")->sync);
}

BOOST_AUTO_TEST_CASE(lines_recorded_for_later_messages) {
  Topology t;
  // Lines: 1-2 cluster, 3 [[region]], 4 name, 5 [[region.node]], 6 id,
  // 7 http, 8 gossip, 9 data_dir.
  Status s = Parse(std::string(kCluster) + "[[region]]\nname = \"r\"\n" + NodeToml("n", 1, 2), &t);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(t.FindNode("n")->line == 5);
  BOOST_TEST(t.FindNode("n")->data_dir_line == 9);
}

BOOST_AUTO_TEST_CASE(address_forms) {
  Topology t;
  Status s = Parse(std::string(kCluster) +
                       "[[region]]\nname = \"r\"\n"
                       "[[region.node]]\nid = \"v6\"\nhttp = \"[::1]:80\"\n"
                       "gossip = \"tcp://[::1]:81\"\ndata_dir = \"x\"\n"
                       "[[region.node]]\nid = \"lh\"\nhttp = \"localhost:65535\"\n"
                       "gossip = \"tcp://localhost:1\"\ndata_dir = \"y\"\n",
                   &t);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(t.FindNode("v6")->http_host == "::1");  // brackets are syntax, not host
  BOOST_TEST(t.FindNode("v6")->http_port == 80);
  BOOST_TEST(t.FindNode("v6")->gossip == "tcp://[::1]:81");
  BOOST_TEST(t.FindNode("lh")->http_host == "localhost");
  BOOST_TEST(t.FindNode("lh")->http_port == 65535);
}

BOOST_AUTO_TEST_CASE(id_of_64_bytes_is_accepted) {
  std::string id(64, 'a');
  Status s = Parse(std::string(kCluster) + "[[region]]\nname = \"r\"\n" + NodeToml(id, 1, 2));
  BOOST_TEST(s.ok(), s.ToString());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(errors)

BOOST_AUTO_TEST_CASE(toml_syntax_error_has_file_and_line) {
  Status s = Parse(std::string(kCluster) + "[[region]]\nname = \n");
  BOOST_REQUIRE(!s.ok());
  BOOST_TEST(s.IsInvalidArgument());
  BOOST_TEST(s.message().rfind("t.toml:4: ", 0) == 0u, s.message());
  BOOST_TEST(s.message().find('\n') == std::string::npos);
}

BOOST_AUTO_TEST_CASE(unknown_keys_everywhere) {
  ExpectProblems(
      "[cluster]\n"                       // 1
      "name = \"c\"\n"                    // 2
      "colour = \"red\"\n"                // 3
      "[[region]]\n"                      // 4
      "name = \"r\"\n"                    // 5
      "zone = 1\n"                        // 6
      "[[region.node]]\n"                 // 7
      "id = \"n\"\n"                      // 8
      "htp = \"127.0.0.1:1\"\n"           // 9
      "http = \"127.0.0.1:1\"\n"          // 10
      "gossip = \"tcp://127.0.0.1:2\"\n"  // 11
      "data_dir = \"d\"\n"                // 12
      "[[placment]]\n"                    // 13
      "name = \"p\"\n",
      {"t.toml:3: unknown key 'colour' in [cluster]",
       "t.toml:6: unknown key 'zone' in [[region]]",  // not "node": too far
       "t.toml:9: unknown key 'htp' in [[region.node]] (did you mean 'http'?)",
       "t.toml:13: unknown key 'placment' at the top level (did you mean 'placement'?)"});
}

BOOST_AUTO_TEST_CASE(policies_are_read_and_checked_as_a_set) {
  const std::string base = std::string(kCluster) + "[[region]]\nname = \"eu\"\n" +
                           NodeToml("n", 1, 2);  // lines 1-9
  Topology t;
  Status s = Parse(base +
                       "[[policy]]\n"                       // 10
                       "prefix = \"stock/\"\n"
                       "type = \"mvregister\"\n"
                       "resolve = [\"max\", \"prefer_region\"]\n"
                       "prefer_region = [\"eu\"]\n"
                       "on_unresolved = \"lww\"\n"
                       "[[policy]]\n"                       // 16
                       "prefix = \"profile/\"\n"
                       "type = \"register\"\n"
                       "audit = true\n",
                   &t);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_REQUIRE_EQUAL(t.policies.policies().size(), 2u);
  const meridian::conflict::Policy* p = t.policies.Match("stock/widget");
  BOOST_REQUIRE(p != nullptr);
  BOOST_TEST(p->resolve.size() == 2u);
  BOOST_TEST(p->resolve[1].regions == std::vector<std::string>{"eu"});
  BOOST_TEST((p->on_unresolved == meridian::conflict::OnUnresolved::kLww));
  BOOST_TEST(t.policies.Match("profile/1")->audit);
  BOOST_TEST(t.policies.Match("other") == nullptr);

  // Problems name the file and the policy's line.
  ExpectProblems(base +
                     "[[policy]]\n"  // 10
                     "prefix = \"a/\"\n"
                     "type = \"mvregister\"\n"
                     "resolve = [\"maximum\"]\n"
                     "[[policy]]\n"  // 14
                     "prefix = \"a/\"\n"
                     "type = \"mvregister\"\n"
                     "[[policy]]\n"  // 17
                     "prefix = \"b/\"\n"
                     "type = \"mvregister\"\n"
                     "resolve = [\"lua:no/such.lua\"]\n",
                 {"t.toml:10: unknown resolver \"maximum\" (known: json_max, longest, max, min, "
                  "prefer_region, union, lua:PATH)",
                  "t.toml:14: prefix \"a/\" already has a policy (line 10)",
                  "t.toml:17: resolver \"lua:no/such.lua\": cannot open 'no/such.lua': No such "
                  "file or directory"});
  // Shapes are checked before the set.
  ExpectProblems(base + "[[policy]]\nprefix = \"a/\"\ntype = \"mvregister\"\nresolve = \"max\"\n"
                        "colour = 1\n",
                 {"t.toml:13: resolve must be an array of strings, like [\"max\"], not the string "
                  "\"max\"",
                  "t.toml:14: unknown key 'colour' in [[policy]]"});
  ExpectProblem(base + "[[policy]]\ntype = \"set\"\n",
                "t.toml:10: missing required key 'prefix' in [[policy]]");
}

BOOST_AUTO_TEST_CASE(a_lua_script_is_read_relative_to_the_topology_file) {
  char tmpl[] = "/tmp/meridian-topo-XXXXXX";
  BOOST_REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  BOOST_REQUIRE(mkdir((dir + "/resolvers").c_str(), 0755) == 0);
  std::ofstream(dir + "/resolvers/pick.lua") << "function resolve(s) return s[1].value end\n";
  std::ofstream(dir + "/t.toml") << kCluster << "[[region]]\nname = \"eu\"\n"
                                 << NodeToml("n", 1, 2)
                                 << "[[policy]]\nprefix = \"cart/\"\ntype = \"mvregister\"\n"
                                    "resolve = [\"lua:resolvers/pick.lua\"]\n";
  Topology t;
  Status s = LoadTopology(dir + "/t.toml", &t);
  BOOST_TEST(s.ok(), s.ToString());
  BOOST_TEST(t.scripts.count("resolvers/pick.lua") == 1u);
  BOOST_TEST(t.scripts["resolvers/pick.lua"].find("function resolve") == 0u);
  BOOST_TEST(t.policies.Match("cart/1")->resolve[0].script_digest.size() == 16u);
  std::remove((dir + "/resolvers/pick.lua").c_str());
  std::remove((dir + "/t.toml").c_str());
  rmdir((dir + "/resolvers").c_str());
  rmdir(dir.c_str());
}

BOOST_AUTO_TEST_CASE(unknown_key_suggests_near_miss) {
  ExpectProblem(std::string(kCluster) + "heartbeat_interval = 5\n" + "[[region]]\nname = \"r\"\n" +
                    NodeToml("n", 1, 2),
                "t.toml:3: unknown key 'heartbeat_interval' in [cluster] (did you mean "
                "'heartbeat_interval_ms'?)");
  ExpectProblem(
      "[cluster]\nnmae = \"c\"\nname = \"c\"\n[[region]]\nname = \"r\"\n" + NodeToml("n", 1, 2),
      "t.toml:2: unknown key 'nmae' in [cluster] (did you mean 'name'?)");
}

BOOST_AUTO_TEST_CASE(placements_are_read_and_checked_as_a_set) {
  const std::string base = std::string(kCluster) + "[[region]]\nname = \"eu\"\n" +
                           NodeToml("n", 1, 2) + "[[region]]\nname = \"us\"\n" +
                           NodeToml("m", 3, 4);  // lines 1-16
  Topology t;
  Status s = Parse(base +
                       "[[placement]]\n"  // 17
                       "prefix = \"eu/\"\n"
                       "regions = [\"eu\"]\n"
                       "[[placement]]\n"  // 20
                       "prefix = \"both/\"\n"
                       "regions = [\"eu\", \"us\"]\n",
                   &t);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(t.placement_specs.size() == 2u);
  BOOST_TEST(t.placement.specs().size() == 2u);
  BOOST_TEST(t.placement.Holds("eu/k", "eu"));
  BOOST_TEST(!t.placement.Holds("eu/k", "us"));
  BOOST_TEST(t.placement.RegionCount("both/k") == 2u);
  BOOST_TEST(t.placement.RegionCount("other") == 2u);  // every region
  BOOST_TEST(t.placement.ScopeOf("eu/k") == "eu/");

  // A file without placements places nothing.
  Topology none;
  BOOST_REQUIRE(Parse(base, &none).ok());
  BOOST_TEST(none.placement.empty());
  BOOST_TEST(none.placement.Holds("eu/k", "us"));

  // Problems of the tables, then of the set, each at its line.
  ExpectProblems(base +
                     "[[placement]]\n"  // 17
                     "prefix = \"a/\"\n"
                     "regions = \"eu\"\n"  // 19: not an array
                     "[[placement]]\n"      // 20: no prefix
                     "regions = [\"eu\"]\n"
                     "[[placement]]\n"  // 22: no regions
                     "prefix = \"c/\"\n"
                     "[[placement]]\n"  // 24
                     "prefix = \"d/\"\n"
                     "regions = [\"eu\"]\n"
                     "colour = \"red\"\n",  // 27
                 {"t.toml:19: regions must be an array of strings, like [\"eu-west\"], not the string "
                  "\"eu\"",
                  "t.toml:20: missing required key 'prefix' in [[placement]]",
                  "t.toml:22: missing required key 'regions' in [[placement]]",
                  "t.toml:27: unknown key 'colour' in [[placement]]"});
  ExpectProblems(base +
                     "[[placement]]\n"  // 17
                     "prefix = \"a/\"\n"
                     "regions = [\"mars\"]\n"
                     "[[placement]]\n"  // 20
                     "prefix = \"a/\"\n"
                     "regions = []\n",
                 {"t.toml:17: placement 'a/' names region 'mars', which is not a [[region]] of "
                  "this topology",
                  "t.toml:20: prefix 'a/' is placed twice",
                  "t.toml:20: placement 'a/' lists no regions"});
}

BOOST_AUTO_TEST_CASE(duplicate_node_id_across_regions) {
  ExpectProblem(std::string(kCluster) +             // 1-2
                    "[[region]]\nname = \"a\"\n" +  // 3-4
                    NodeToml("n", 1, 2) +           // 5-9, id on 6
                    "[[region]]\nname = \"b\"\n" +  // 10-11
                    NodeToml("n", 3, 4),            // 12-16, id on 13
                "t.toml:13: node id 'n' is already used on line 6");
}

BOOST_AUTO_TEST_CASE(duplicate_region_name) {
  ExpectProblem(std::string(kCluster) +             // 1-2
                    "[[region]]\nname = \"a\"\n" +  // 3-4
                    NodeToml("a-1", 1, 2) +         // 5-9
                    "[[region]]\nname = \"a\"\n" +  // 10-11
                    NodeToml("a-2", 3, 4),
                "t.toml:11: region name 'a' is already used on line 4");
}

BOOST_AUTO_TEST_CASE(duplicate_addresses) {
  const std::string head = std::string(kCluster) + "[[region]]\nname = \"r\"\n";  // 1-4
  // Second node: header 10, id 11, http 12, gossip 13.
  ExpectProblem(head + NodeToml("a", 1, 2) + NodeToml("b", 1, 3),
                "t.toml:12: http address '127.0.0.1:1' is already the http address of node "
                "'a' on line 7");
  ExpectProblem(head + NodeToml("a", 1, 2) + NodeToml("b", 3, 2),
                "t.toml:13: gossip address 'tcp://127.0.0.1:2' is already the gossip address "
                "of node 'a' on line 8");
  // One port cannot serve both protocols, even on one node.
  ExpectProblem(head + NodeToml("a", 1, 1),
                "t.toml:8: gossip address 'tcp://127.0.0.1:1' is already the http address of "
                "node 'a' on line 7");
  ExpectProblem(head + NodeToml("a", 1, 2) + NodeToml("b", 2, 3),
                "t.toml:12: http address '127.0.0.1:2' is already the gossip address of node "
                "'a' on line 8");
  // Same address spelled differently.
  ExpectProblem(head +
                    "[[region.node]]\nid = \"a\"\nhttp = \"[::1]:9\"\n"
                    "gossip = \"tcp://[::1]:10\"\ndata_dir = \"a\"\n"
                    "[[region.node]]\nid = \"b\"\nhttp = \"[0:0::1]:9\"\n"
                    "gossip = \"tcp://[::1]:11\"\ndata_dir = \"b\"\n",
                "t.toml:12: http address '[0:0::1]:9' is already the http address of node 'a' "
                "on line 7");
}

BOOST_AUTO_TEST_CASE(bad_addresses) {
  struct Case {
    std::string http;
    std::string gossip;
    std::string problem;  // the one expected, without "t.toml:LINE: "
    int line;
  };
  const Case cases[] = {
      {"127.0.0.1", "tcp://127.0.0.1:2",
       "http address '127.0.0.1' has no port; write it as HOST:PORT, e.g. 127.0.0.1:7100", 7},
      {"127.0.0.1:", "tcp://127.0.0.1:2", "http address '127.0.0.1:' has no port after ':'", 7},
      {":80", "tcp://127.0.0.1:2", "http address ':80' has no host", 7},
      {"127.0.0.1:0", "tcp://127.0.0.1:2",
       "port 0 in http address '127.0.0.1:0' is out of range; it must be 1 to 65535", 7},
      {"127.0.0.1:65536", "tcp://127.0.0.1:2",
       "port 65536 in http address '127.0.0.1:65536' is out of range; it must be 1 to 65535", 7},
      {"127.0.0.1:99999999999999999999", "tcp://127.0.0.1:2",
       "port 99999999999999999999 in http address '127.0.0.1:99999999999999999999' is out of "
       "range; it must be 1 to 65535",
       7},
      {"127.0.0.1:8o", "tcp://127.0.0.1:2",
       "port '8o' in http address '127.0.0.1:8o' is not a number", 7},
      {"127.0.0.1:-1", "tcp://127.0.0.1:2",
       "port '-1' in http address '127.0.0.1:-1' is not a number", 7},
      {"example.com:80", "tcp://127.0.0.1:2",
       "host 'example.com' in http address 'example.com:80' is not an IP address; use an IPv4 "
       "address, localhost or a bracketed IPv6 address",
       7},
      {"256.0.0.1:80", "tcp://127.0.0.1:2",
       "host '256.0.0.1' in http address '256.0.0.1:80' is not an IP address; use an IPv4 "
       "address, localhost or a bracketed IPv6 address",
       7},
      {"::1:80", "tcp://127.0.0.1:2",
       "http address '::1:80' has more than one ':'; write an IPv6 host in brackets, e.g. "
       "[::1]:7100",
       7},
      {"[::1:80", "tcp://127.0.0.1:2",
       "http address '[::1:80' has no closing ']' after its IPv6 host", 7},
      {"[::1]", "tcp://127.0.0.1:2",
       "http address '[::1]' has no port; write it as [IPV6]:PORT, e.g. [::1]:7100", 7},
      {"[::1]80", "tcp://127.0.0.1:2", "http address '[::1]80' must have ':PORT' right after ']'",
       7},
      {"[127.0.0.1]:80", "tcp://127.0.0.1:2",
       "host '127.0.0.1' in http address '[127.0.0.1]:80' is not an IPv6 address", 7},
      {"127.0.0.1:1", "127.0.0.1:2",
       "gossip address '127.0.0.1:2' must start with tcp://, e.g. tcp://127.0.0.1:7200", 8},
      {"127.0.0.1:1", "udp://127.0.0.1:2",
       "gossip address 'udp://127.0.0.1:2' must start with tcp://, e.g. tcp://127.0.0.1:7200", 8},
      {"127.0.0.1:1", "tcp://127.0.0.1",
       "gossip address 'tcp://127.0.0.1' has no port; write it as HOST:PORT, e.g. "
       "127.0.0.1:7100",
       8},
      {"127.0.0.1:1", "tcp://*:2",
       "host '*' in gossip address 'tcp://*:2' is not an IP address; use an IPv4 address, "
       "localhost or a bracketed IPv6 address",
       8},
  };
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT("http " << c.http << " gossip " << c.gossip) {
      ExpectProblem(std::string(kCluster) + "[[region]]\nname = \"r\"\n" +   // 1-4
                        "[[region.node]]\nid = \"n\"\nhttp = \"" + c.http +  // 5-7
                        "\"\ngossip = \"" + c.gossip + "\"\ndata_dir = \"d\"\n",
                    "t.toml:" + std::to_string(c.line) + ": " + c.problem);
    }
  }
}

BOOST_AUTO_TEST_CASE(wrong_value_types) {
  const std::string tail = "[[region]]\nname = \"r\"\n" + NodeToml("n", 1, 2);
  ExpectProblem(std::string(kCluster) + "max_clock_offset_ms = \"500\"\n" + tail,
                "t.toml:3: max_clock_offset_ms must be a positive integer, not the string "
                "\"500\"");
  ExpectProblem(std::string(kCluster) + "heartbeat_interval_ms = 0\n" + tail,
                "t.toml:3: heartbeat_interval_ms must be a positive integer, not 0");
  ExpectProblem(std::string(kCluster) + "anti_entropy_interval_ms = -5\n" + tail,
                "t.toml:3: anti_entropy_interval_ms must be a positive integer, not -5");
  ExpectProblem(std::string(kCluster) + "log_retention_ms = 0\n" + tail,
                "t.toml:3: log_retention_ms must be a positive integer, not 0");
  ExpectProblem(std::string(kCluster) + "retention_horizon_ms = 9999\n" + tail,
                "t.toml:3: retention_horizon_ms (9999) must be at least 20 heartbeat intervals "
                "(10000 ms)");
  ExpectProblem(std::string(kCluster) + "log_retention_bytes = \"1GB\"\n" + tail,
                "t.toml:3: log_retention_bytes must be a positive integer, not the string "
                "\"1GB\"");
  ExpectProblem(std::string(kCluster) + "max_body_bytes = 1.5\n" + tail,
                "t.toml:3: max_body_bytes must be a positive integer, not a floating-point "
                "number");
  ExpectProblem(std::string(kCluster) + "sync = \"yes\"\n" + tail,
                "t.toml:3: sync must be true or false, not the string \"yes\"");
  ExpectProblem(
      std::string(kCluster) + "[[region]]\nname = \"r\"\n" + NodeToml("n", 1, 2, "sync = 1\n"),
      "t.toml:10: sync must be true or false, not 1");
  ExpectProblem("[cluster]\nname = 7\n" + tail, "t.toml:2: name must be a string, not 7");
  ExpectProblem(std::string(kCluster) + "[[region]]\nname = \"r\"\n" +
                    "[[region.node]]\nid = \"n\"\nhttp = 7100\n"
                    "gossip = \"tcp://127.0.0.1:2\"\ndata_dir = \"d\"\n",
                "t.toml:7: http must be a string, not 7100");
  ExpectProblem("cluster = \"c\"\n" + tail,
                "t.toml:1: cluster must be a table ([cluster]), not "
                "the string \"c\"");
  ExpectProblem(std::string(kCluster) + "[region]\nname = \"r\"\n",
                "t.toml:3: region must be an array of tables ([[region]]), not a table");
}

BOOST_AUTO_TEST_CASE(missing_required_keys) {
  ExpectProblem("[[region]]\nname = \"r\"\n" + NodeToml("n", 1, 2),
                "t.toml:1: missing [cluster] table; it must give at least the cluster's name");
  ExpectProblem(
      "[cluster]\nmax_clock_offset_ms = 5\n[[region]]\nname = \"r\"\n" + NodeToml("n", 1, 2),
      "t.toml:1: missing required key 'name' in [cluster]");
  ExpectProblem("[cluster]\nname = \"\"\n[[region]]\nname = \"r\"\n" + NodeToml("n", 1, 2),
                "t.toml:2: name in [cluster] must not be empty");
  ExpectProblem(std::string(kCluster) + "[[region]]\n" + NodeToml("n", 1, 2),
                "t.toml:3: missing required key 'name' in [[region]]");
  const std::string head = std::string(kCluster) + "[[region]]\nname = \"r\"\n";  // 1-4
  ExpectProblem(head +
                    "[[region.node]]\nhttp = \"127.0.0.1:1\"\n"
                    "gossip = \"tcp://127.0.0.1:2\"\ndata_dir = \"d\"\n",
                "t.toml:5: missing required key 'id' in [[region.node]]");
  ExpectProblem(head +
                    "[[region.node]]\nid = \"n\"\ngossip = \"tcp://127.0.0.1:2\"\n"
                    "data_dir = \"d\"\n",
                "t.toml:5: missing required key 'http' in [[region.node]]");
  ExpectProblem(head +
                    "[[region.node]]\nid = \"n\"\nhttp = \"127.0.0.1:1\"\n"
                    "data_dir = \"d\"\n",
                "t.toml:5: missing required key 'gossip' in [[region.node]]");
  ExpectProblem(head +
                    "[[region.node]]\nid = \"n\"\nhttp = \"127.0.0.1:1\"\n"
                    "gossip = \"tcp://127.0.0.1:2\"\n",
                "t.toml:5: missing required key 'data_dir' in [[region.node]]");
  ExpectProblem(head +
                    "[[region.node]]\nid = \"n\"\nhttp = \"127.0.0.1:1\"\n"
                    "gossip = \"tcp://127.0.0.1:2\"\ndata_dir = \"\"\n",
                "t.toml:9: data_dir in [[region.node]] must not be empty");
}

BOOST_AUTO_TEST_CASE(no_regions_and_empty_regions) {
  ExpectProblem(kCluster,
                "t.toml:1: the topology has no regions; add a [[region]] with at least one "
                "[[region.node]]");
  ExpectProblem("region = []\n" + std::string(kCluster),
                "t.toml:1: the topology has no regions; add a [[region]] with at least one "
                "[[region.node]]");
  ExpectProblem(std::string(kCluster) + "[[region]]\nname = \"a\"\n" + NodeToml("n", 1, 2) +
                    "[[region]]\nname = \"empty\"\n",
                "t.toml:10: region 'empty' has no nodes; add at least one [[region.node]] "
                "under it");
}

BOOST_AUTO_TEST_CASE(bad_node_ids) {
  const std::string head = std::string(kCluster) + "[[region]]\nname = \"r\"\n";
  ExpectProblem(head + NodeToml("a b", 1, 2),
                "t.toml:6: node id 'a b' may contain only letters, digits, '.', '_' and '-'");
  ExpectProblem(head + NodeToml("a/b", 1, 2),
                "t.toml:6: node id 'a/b' may contain only letters, digits, '.', '_' and '-'");
  std::string long_id(65, 'x');
  ExpectProblem(head + NodeToml(long_id, 1, 2), "t.toml:6: node id '" + std::string(48, 'x') +
                                                    "...' is 65 bytes long; the limit is 64");
}

BOOST_AUTO_TEST_CASE(every_problem_reported_in_line_order) {
  // toml++ keeps keys sorted, not in file order; the report must not be.
  ExpectProblems(
      "[cluster]\n"                           // 1
      "name = \"c\"\n"                        // 2
      "zzz = 1\n"                             // 3
      "aaa = 1\n"                             // 4
      "[[region]]\n"                          // 5
      "name = \"r\"\n"                        // 6
      "[[region.node]]\n"                     // 7
      "id = \"bad id\"\n"                     // 8
      "http = \"127.0.0.1\"\n"                // 9
      "gossip = \"tcp://127.0.0.1:70000\"\n"  // 10
      "[[region]]\n"                          // 11
      "name = \"r\"\n",                       // 12
      {"t.toml:3: unknown key 'zzz' in [cluster]", "t.toml:4: unknown key 'aaa' in [cluster]",
       "t.toml:7: missing required key 'data_dir' in [[region.node]]",
       "t.toml:8: node id 'bad id' may contain only letters, digits, '.', '_' and '-'",
       "t.toml:9: http address '127.0.0.1' has no port; write it as HOST:PORT, e.g. "
       "127.0.0.1:7100",
       "t.toml:10: port 70000 in gossip address 'tcp://127.0.0.1:70000' is out of "
       "range; it must be 1 to 65535",
       "t.toml:11: region 'r' has no nodes; add at least one [[region.node]] under it",
       "t.toml:12: region name 'r' is already used on line 6"});
}

BOOST_AUTO_TEST_CASE(many_problems_are_capped) {
  std::string text = std::string(kCluster);
  for (int i = 0; i < 30; ++i) text += "k" + std::to_string(i) + " = 1\n";
  text += "[[region]]\nname = \"r\"\n" + NodeToml("n", 1, 2);
  Status s = Parse(text);
  BOOST_REQUIRE(!s.ok());
  std::vector<std::string> lines = Lines(s.message());
  BOOST_REQUIRE(lines.size() == 21u);
  BOOST_TEST(lines[0] == "t.toml:3: unknown key 'k0' in [cluster]");
  BOOST_TEST(lines[20] == "t.toml: 10 more problems not shown");
}

BOOST_AUTO_TEST_CASE(output_untouched_on_failure) {
  Topology t;
  t.cluster_name = "before";
  Status s = Parse("[cluster]\nname = \"after\"\n", &t);
  BOOST_TEST(!s.ok());
  BOOST_TEST(t.cluster_name == "before");
  BOOST_TEST(t.regions.empty());
}

BOOST_AUTO_TEST_CASE(load_missing_file) {
  Topology t;
  Status s = LoadTopology("/nonexistent/dir/x.toml", &t);
  BOOST_TEST(s.IsNotFound());
  BOOST_TEST(s.message() ==
             "/nonexistent/dir/x.toml: cannot open the topology file: No such file or directory");
}

BOOST_AUTO_TEST_CASE(load_reports_its_path) {
  TempDir dir;
  std::string path = dir.path() + "/bad.toml";
  WriteFile(path,
            "[cluster]\nname = \"c\"\nbogus = 1\n[[region]]\nname = \"r\"\n" + NodeToml("n", 1, 2));
  Topology t;
  Status s = LoadTopology(path, &t);
  BOOST_TEST(s.IsInvalidArgument());
  BOOST_TEST(s.message() == path + ":3: unknown key 'bogus' in [cluster]");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(data_dir)

BOOST_AUTO_TEST_CASE(existing_writable_dir) {
  TempDir dir;
  Status s = CheckDataDir(dir.path());
  BOOST_TEST(s.ok(), s.ToString());
}

BOOST_AUTO_TEST_CASE(missing_dir_under_writable_ancestor) {
  TempDir dir;
  Status s = CheckDataDir(dir.path() + "/a/b/c/");
  BOOST_TEST(s.ok(), s.ToString());
}

BOOST_AUTO_TEST_CASE(empty_path) {
  Status s = CheckDataDir("");
  BOOST_TEST(s.IsInvalidArgument());
  BOOST_TEST(s.message() == "data dir is empty");
}

BOOST_AUTO_TEST_CASE(regular_file) {
  TempDir dir;
  std::string file = dir.path() + "/f";
  WriteFile(file, "x");
  Status s = CheckDataDir(file);
  BOOST_TEST(s.IsFailedPrecondition());
  BOOST_TEST(s.message() == "data dir '" + file + "' exists but is not a directory");
}

BOOST_AUTO_TEST_CASE(ancestor_is_a_regular_file) {
  TempDir dir;
  std::string file = dir.path() + "/f";
  WriteFile(file, "x");
  Status s = CheckDataDir(file + "/sub/dir");
  BOOST_TEST(s.IsFailedPrecondition());
  BOOST_TEST(s.message() ==
             "cannot create data dir '" + file + "/sub/dir': '" + file + "' is not a directory");
}

BOOST_AUTO_TEST_CASE(relative_path_resolves_against_working_dir) {
  TempDir dir;
  WriteFile(dir.path() + "/f", "x");
  char old[4096];
  BOOST_REQUIRE(getcwd(old, sizeof(old)) != nullptr);
  BOOST_REQUIRE(chdir(dir.path().c_str()) == 0);
  Status file = CheckDataDir("f");
  Status fresh = CheckDataDir("data/node-1");
  BOOST_REQUIRE(chdir(old) == 0);
  BOOST_TEST(file.message() == "data dir 'f' exists but is not a directory");
  BOOST_TEST(fresh.ok(), fresh.ToString());
}

BOOST_AUTO_TEST_CASE(read_only_dir, *boost::unit_test::precondition(NotRoot)) {
  TempDir dir;
  std::string ro = dir.path() + "/ro";
  BOOST_REQUIRE(mkdir(ro.c_str(), 0555) == 0);
  Status s = CheckDataDir(ro);
  BOOST_TEST(s.IsFailedPrecondition());
  BOOST_TEST(s.message() == "data dir '" + ro + "' is not writable: Permission denied");
}

BOOST_AUTO_TEST_CASE(missing_dir_under_read_only_ancestor,
                     *boost::unit_test::precondition(NotRoot)) {
  TempDir dir;
  std::string ro = dir.path() + "/ro";
  BOOST_REQUIRE(mkdir(ro.c_str(), 0555) == 0);
  Status s = CheckDataDir(ro + "/a/b");
  BOOST_TEST(s.IsFailedPrecondition());
  BOOST_TEST(s.message() == "cannot create data dir '" + ro +
                                "/a/b': its nearest existing parent '" + ro +
                                "' is not writable: Permission denied");
}

BOOST_AUTO_TEST_SUITE_END()

// [cluster] token_file (README "Security"): the API's bearer tokens.
BOOST_AUTO_TEST_SUITE(token_file)

namespace {

// A topology in a fresh directory with token_file = "tokens.toml" on line
// 3 and, unless `tokens` is null, that file with `mode`.
struct TokenSetup {
  TempDir dir;
  std::string topology, tokens;
  TokenSetup(const char* text, mode_t mode = 0600) {
    topology = dir.path() + "/t.toml";
    tokens = dir.path() + "/tokens.toml";
    WriteFile(topology, std::string(kCluster) + "token_file = \"tokens.toml\"\n[[region]]\n" +
                            "name = \"r\"\n" + NodeToml("n", 1, 2));
    if (text != nullptr) {
      WriteFile(tokens, text);
      BOOST_REQUIRE(chmod(tokens.c_str(), mode) == 0);
    }
  }
  Status Load(Topology* t = nullptr) {
    Topology scratch;
    return LoadTopology(topology, t != nullptr ? t : &scratch);
  }
};

const char kThreeTokens[] =
    "[[token]]\nname = \"reader\"\ntoken = \"r-0123456789abcdef\"\nrole = \"read\"\n"   // 1-4
    "[[token]]\nname = \"writer\"\ntoken = \"w-0123456789abcdef\"\nrole = \"write\"\n"  // 5-8
    "[[token]]\nname = \"admin\"\ntoken = \"a-0123456789abcdef\"\nrole = \"admin\"\n";  // 9-12

}  // namespace

BOOST_AUTO_TEST_CASE(no_token_file_means_no_tokens) {
  Topology t;
  BOOST_REQUIRE(
      Parse(std::string(kCluster) + "[[region]]\nname = \"r\"\n" + NodeToml("n", 1, 2), &t).ok());
  BOOST_TEST(t.token_file.empty());
  BOOST_TEST(t.tokens.empty());
}

BOOST_AUTO_TEST_CASE(tokens_are_read_relative_to_the_topology_file) {
  TokenSetup s(kThreeTokens);
  Topology t;
  Status st = s.Load(&t);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  BOOST_TEST(t.token_file == "tokens.toml");
  BOOST_TEST(t.token_file_line == 3);
  BOOST_REQUIRE(t.tokens.size() == 3u);
  BOOST_TEST(t.tokens[0].name == "reader");
  BOOST_TEST(t.tokens[0].token == "r-0123456789abcdef");
  BOOST_TEST(t.tokens[0].line == 1);
  BOOST_TEST((t.tokens[0].role == Role::kRead));
  BOOST_TEST((t.tokens[1].role == Role::kWrite));
  BOOST_TEST(t.tokens[2].name == "admin");
  BOOST_TEST((t.tokens[2].role == Role::kAdmin));
  BOOST_TEST(t.tokens[2].line == 9);
}

BOOST_AUTO_TEST_CASE(an_absolute_token_file) {
  TokenSetup s(kThreeTokens);
  WriteFile(s.topology, std::string(kCluster) + "token_file = \"" + s.tokens +
                            "\"\n[[region]]\nname = \"r\"\n" + NodeToml("n", 1, 2));
  Topology t;
  Status st = LoadTopology(s.topology, &t);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  BOOST_TEST(t.tokens.size() == 3u);
}

// The mode is checked from the file's bits, so these hold for root too.
BOOST_AUTO_TEST_CASE(a_token_file_open_to_group_or_others_is_refused) {
  for (mode_t mode : {0640, 0604, 0660, 0644, 0601}) {
    TokenSetup s(kThreeTokens, mode);
    Status st = s.Load();
    BOOST_TEST_INFO("mode " << std::oct << mode);
    BOOST_TEST(st.IsInvalidArgument());
    char m[8];
    std::snprintf(m, sizeof(m), "%04o", static_cast<unsigned>(mode));
    BOOST_TEST(st.message() == s.topology + ":3: token_file '" + s.tokens +
                                   "' is open to its group or others (mode " + m +
                                   "); it holds secrets: chmod 600 '" + s.tokens + "'");
  }
  TokenSetup owner_only(kThreeTokens, 0400);
  BOOST_TEST(owner_only.Load().ok());
}

BOOST_AUTO_TEST_CASE(a_missing_token_file) {
  TokenSetup s(nullptr);
  Status st = s.Load();
  BOOST_TEST(st.IsInvalidArgument());
  BOOST_TEST(st.message() == s.topology + ":3: cannot open token_file '" + s.tokens +
                                 "': No such file or directory");
}

BOOST_AUTO_TEST_CASE(a_fifo_is_refused_without_waiting_for_a_writer) {
  TokenSetup s(nullptr);
  BOOST_REQUIRE(mkfifo(s.tokens.c_str(), 0600) == 0);
  Status st = s.Load();
  BOOST_TEST(st.message() ==
             s.topology + ":3: token_file '" + s.tokens + "' is not a regular file");
}

BOOST_AUTO_TEST_CASE(a_directory_is_not_a_token_file) {
  TokenSetup s(nullptr);
  BOOST_REQUIRE(mkdir(s.tokens.c_str(), 0700) == 0);
  Status st = s.Load();
  BOOST_TEST(st.message() ==
             s.topology + ":3: token_file '" + s.tokens + "' is not a regular file");
}

BOOST_AUTO_TEST_CASE(token_file_must_be_a_string) {
  ExpectProblem(
      std::string(kCluster) + "token_file = 5\n[[region]]\nname = \"r\"\n" + NodeToml("n", 1, 2),
      "t.toml:3: token_file must be a string, not 5");
  ExpectProblem(
      std::string(kCluster) + "token_file = \"\"\n[[region]]\nname = \"r\"\n" + NodeToml("n", 1, 2),
      "t.toml:3: token_file in [cluster] must not be empty");
}

BOOST_AUTO_TEST_CASE(bad_tokens_are_listed_in_line_order) {
  TokenSetup s(
      "[[token]]\nname = \"a\"\ntoken = \"short\"\nrole = \"read\"\n"                // 1-4
      "[[token]]\nname = \"b\"\ntoken = \"b-0123456789abcdef\"\nrole = \"owner\"\n"  // 5-8
      "[[token]]\nname = \"a\"\ntoken = \"c-0123456789abcdef\"\nrole = \"write\"\n"  // 9-12
      "[[token]]\nname = \"d\"\ntoken = \"c-0123456789abcdef\"\nrole = \"admin\"\n"  // 13-16
      "[[token]]\nname = \"e\"\ntoken = \"has a space in it!\"\nrole = \"read\"\n"   // 17-20
      "[[token]]\nname = \"f\"\ntokn = \"f-0123456789abcdef\"\nrole = \"Read\"\n");  // 21-24
  Status st = s.Load();
  BOOST_TEST(st.IsInvalidArgument());
  const std::string f = s.tokens;
  std::vector<std::string> expected = {
      f + ":3: the secret of token 'a' is 5 characters long; it must be at least 16 (e.g. "
          "openssl rand -hex 32)",
      f + ":8: role must be \"read\", \"write\" or \"admin\", not the string \"owner\"",
      f + ":10: token name 'a' is already used on line 2",
      f + ":15: the secret of token 'd' is the same as that of token 'a' on line 11; give each "
          "its own",
      f + ":19: the secret of token 'e' must be printable ASCII without spaces (e.g. openssl "
          "rand -hex 32)",
      f + ":21: missing required key 'token' in [[token]]",
      f + ":23: unknown key 'tokn' in [[token]] (did you mean 'token'?)",
      f + ":24: role must be \"read\", \"write\" or \"admin\", not the string \"Read\"",
  };
  BOOST_TEST(Lines(st.message()) == expected, boost::test_tools::per_element());
  // The secrets themselves are never repeated in a message.
  BOOST_TEST(st.message().find("0123456789abcdef") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_token_file_without_tokens) {
  for (const char* text : {"", "# nothing yet\n"}) {
    TokenSetup s(text);
    Status st = s.Load();
    BOOST_TEST(st.message() == s.tokens +
                                   ":1: the token file has no [[token]]; give at least one, or "
                                   "remove token_file from the topology to leave the API open");
  }
  TokenSetup other("[cluster]\nname = \"x\"\n");
  BOOST_TEST(Lines(other.Load().message()) ==
                 (std::vector<std::string>{
                     other.tokens + ":1: unknown key 'cluster' in the token file (it holds only "
                                    "[[token]] tables)",
                     other.tokens + ":1: the token file has no [[token]]; give at least one, or "
                                    "remove token_file from the topology to leave the API open"}),
             boost::test_tools::per_element());
  TokenSetup broken("[[token]\n");
  BOOST_TEST(broken.Load().message().rfind(broken.tokens + ":1: ", 0) == 0u);
}

BOOST_AUTO_TEST_SUITE_END()

// Per-node public_key and secret_key_file (README "Security", gossip over
// CurveZMQ): all nodes or none, unique keys, and a node's own secret read
// and checked against its public key.
BOOST_AUTO_TEST_SUITE(curve_keys)

namespace {

meridian::gossip::CurveKeyPair NewPair() {
  BOOST_REQUIRE_MESSAGE(meridian::gossip::CurveAvailable(),
                        "this ZeroMQ library was built without CURVE");
  meridian::gossip::CurveKeyPair pair;
  Status st = meridian::gossip::GenerateCurveKeyPair(&pair);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  return pair;
}

std::string KeyLine(const meridian::gossip::CurveKeyPair& pair) {
  return "public_key = \"" + pair.public_key + "\"\n";
}

// Nodes a (lines 5-11: public_key on 10, secret_key_file on 11) and b
// (lines 12-17, public_key on 17, no secret_key_file) in a fresh
// directory; a's secret file a.key written with `mode` from `a_file`.
struct KeySetup {
  TempDir dir;
  std::string topology, a_key;
  meridian::gossip::CurveKeyPair a = NewPair(), b = NewPair();
  explicit KeySetup(mode_t mode = 0600, const std::string* a_file = nullptr,
                    const std::string& a_key_name = "a.key") {
    topology = dir.path() + "/t.toml";
    a_key = dir.path() + "/a.key";
    WriteFile(topology,
              std::string(kCluster) + "[[region]]\nname = \"r\"\n" +
                  NodeToml("a", 1, 2, KeyLine(a) + "secret_key_file = \"" + a_key_name + "\"\n") +
                  NodeToml("b", 3, 4, KeyLine(b)));
    WriteFile(a_key, a_file != nullptr ? *a_file : meridian::gossip::FormatSecretKeyFile(a));
    BOOST_REQUIRE(chmod(a_key.c_str(), mode) == 0);
  }
  // Loads the topology (which must load) and node `id`'s secret key.
  Status Secret(const std::string& id, std::string* secret, Topology* t) {
    Status st = LoadTopology(topology, t);
    BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
    return LoadSecretKey(*t, *t->FindNode(id), secret);
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(without_keys_gossip_is_plaintext) {
  Topology t;
  BOOST_REQUIRE(
      Parse(std::string(kCluster) + "[[region]]\nname = \"r\"\n" + NodeToml("n", 1, 2), &t).ok());
  BOOST_TEST(!t.curve());
  BOOST_TEST(t.FindNode("n")->public_key.empty());
  std::string secret = "x";
  BOOST_TEST(LoadSecretKey(t, *t.FindNode("n"), &secret).ok());
  BOOST_TEST(secret.empty());
}

BOOST_AUTO_TEST_CASE(a_node_reads_its_own_secret_relative_to_the_topology_file) {
  KeySetup s;
  Topology t;
  std::string secret;
  Status st = s.Secret("a", &secret, &t);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  BOOST_TEST(t.curve());
  BOOST_TEST(secret == s.a.secret_key);
  const NodeConfig* a = t.FindNode("a");
  BOOST_TEST(a->public_key == s.a.public_key);
  BOOST_TEST(a->secret_key_file == "a.key");
  BOOST_TEST(a->secret_key_file_line == 11);
  BOOST_TEST(t.FindNode("b")->public_key == s.b.public_key);
  // b's secret is not named here (another host holds it): fine to load,
  // but b cannot start from this file.
  st = LoadSecretKey(t, *t.FindNode("b"), &secret);
  BOOST_TEST(st.IsInvalidArgument());
  BOOST_TEST(st.message() == s.topology +
                                 ":12: node 'b' has no secret_key_file, and the cluster's gossip "
                                 "uses CURVE keys; name the file meridianctl keygen --out-secret "
                                 "wrote for it");
}

BOOST_AUTO_TEST_CASE(an_absolute_secret_key_file_with_blanks_around_the_key) {
  TempDir other;
  const std::string text = "\n  # a comment\n\n   KEY  \r\n\n";
  KeySetup s(0400, nullptr, other.path() + "/abs.key");
  std::string body = text;
  body.replace(body.find("KEY"), 3, s.a.secret_key);
  WriteFile(other.path() + "/abs.key", body);
  BOOST_REQUIRE(chmod((other.path() + "/abs.key").c_str(), 0600) == 0);
  Topology t;
  std::string secret;
  Status st = s.Secret("a", &secret, &t);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  BOOST_TEST(secret == s.a.secret_key);
}

// The token_file rule, from the file's bits (so root is refused too).
BOOST_AUTO_TEST_CASE(a_secret_key_file_open_to_group_or_others_is_refused) {
  for (mode_t mode : {0640, 0604, 0644}) {
    KeySetup s(mode);
    Topology t;
    std::string secret;
    Status st = s.Secret("a", &secret, &t);
    char m[8];
    std::snprintf(m, sizeof(m), "%04o", static_cast<unsigned>(mode));
    BOOST_TEST(st.message() == s.topology + ":11: secret_key_file '" + s.a_key +
                                   "' is open to its group or others (mode " + m +
                                   "); it holds secrets: chmod 600 '" + s.a_key + "'");
    BOOST_TEST(secret.empty());
  }
}

BOOST_AUTO_TEST_CASE(a_secret_that_is_not_the_nodes_pair_is_refused) {
  const meridian::gossip::CurveKeyPair other = NewPair();
  const std::string text = meridian::gossip::FormatSecretKeyFile(other);
  KeySetup s(0600, &text);
  Topology t;
  std::string secret;
  Status st = s.Secret("a", &secret, &t);
  BOOST_TEST(st.message() == s.topology + ":11: secret_key_file '" + s.a_key +
                                 "' holds the secret key of public key " + other.public_key +
                                 ", but the public_key listed for node 'a' is " + s.a.public_key +
                                 ": the pair does not match");
  // The secret itself never appears in a message.
  BOOST_TEST(st.message().find(other.secret_key) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_file_without_exactly_one_key_is_refused) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"# only a comment\n", "it holds no key"},
      {"", "it holds no key"},
      {"abc\ndef\n", "it holds 2 lines that are not comments; it must hold just the key"},
      {"not-a-key\n", "its key is not 40 Z85 characters (as meridianctl keygen writes)"},
      {std::string(40, '"') + "\n",
       "its key is not 40 Z85 characters (as meridianctl keygen "
       "writes)"},
  };
  for (const auto& [text, why] : cases) {
    KeySetup s(0600, &text);
    Topology t;
    std::string secret;
    Status st = s.Secret("a", &secret, &t);
    BOOST_TEST(st.message() == s.topology + ":11: secret_key_file '" + s.a_key +
                                   "' is not a CURVE secret key file: " + why);
  }
}

BOOST_AUTO_TEST_CASE(a_missing_secret_key_file) {
  KeySetup s;
  BOOST_REQUIRE(unlink(s.a_key.c_str()) == 0);
  Topology t;
  std::string secret;
  Status st = s.Secret("a", &secret, &t);
  BOOST_TEST(st.message() == s.topology + ":11: cannot open secret_key_file '" + s.a_key +
                                 "': No such file or directory");
}

BOOST_AUTO_TEST_CASE(keys_on_some_nodes_only_bad_keys_and_duplicates_are_refused) {
  const auto a = NewPair(), b = NewPair();
  const std::string head = std::string(kCluster) + "[[region]]\nname = \"r\"\n";
  // Mixing: a has a key (line 10), b (line 11) and c (line 16) have none.
  ExpectProblems(head + NodeToml("a", 1, 2, KeyLine(a)) + NodeToml("b", 3, 4) + NodeToml("c", 5, 6),
                 {"t.toml:11: node 'b' has no public_key, but other nodes have one; list a key "
                  "for every node (meridianctl keygen) or for none",
                  "t.toml:16: node 'c' has no public_key, but other nodes have one; list a key "
                  "for every node (meridianctl keygen) or for none"});
  // One key for two nodes.
  ExpectProblem(head + NodeToml("a", 1, 2, KeyLine(a)) + NodeToml("b", 3, 4, KeyLine(a)),
                "t.toml:16: public_key is already the key of the node on line 10; each node "
                "needs its own pair");
  // Not a key: too short, not Z85, not a string.
  ExpectProblem(
      head + NodeToml("a", 1, 2, "public_key = \"abc\"\n") + NodeToml("b", 3, 4, KeyLine(b)),
      "t.toml:10: public_key must be a 40-character Z85 CURVE key as meridianctl "
      "keygen prints it, not the string \"abc\"");
  ExpectProblem(head + NodeToml("a", 1, 2, "public_key = \"" + std::string(40, ' ') + "\"\n") +
                    NodeToml("b", 3, 4, KeyLine(b)),
                "t.toml:10: public_key must be a 40-character Z85 CURVE key as meridianctl "
                "keygen prints it, not the string \"" +
                    std::string(40, ' ') + "\"");
  ExpectProblem(head + NodeToml("a", 1, 2, "public_key = 7\n"),
                "t.toml:10: public_key must be a 40-character Z85 CURVE key as meridianctl "
                "keygen prints it, not 7");
  // A secret without a public key.
  ExpectProblem(head + NodeToml("a", 1, 2, "secret_key_file = \"a.key\"\n"),
                "t.toml:10: secret_key_file is given but public_key is not; give both");
  ExpectProblem(head + NodeToml("a", 1, 2, KeyLine(a) + "secret_key_file = \"\"\n"),
                "t.toml:11: secret_key_file must be a file name, not the string \"\"");
}

BOOST_AUTO_TEST_SUITE_END()

// tls_cert and tls_key per node, [cluster] tls_ca (README "Security"): read
// at load, relative to the topology file; the key must be owner-only.
BOOST_AUTO_TEST_SUITE(tls_files)

namespace {

// A topology in a fresh directory: tls_ca on line 3, and node "n" with
// tls_cert on line 11 and tls_key on line 12 (each line left out when its
// name is null); the files are written unless the name is null or the
// text is.
struct TlsSetup {
  TempDir dir;
  std::string topology;
  TlsSetup(const char* ca, const char* cert, const char* key, mode_t key_mode = 0600) {
    topology = dir.path() + "/t.toml";
    std::string text = std::string(kCluster);
    text += ca != nullptr ? "tls_ca = \"" + std::string(ca) + "\"\n" : "# no tls_ca\n";
    text += "[[region]]\nname = \"r\"\n";
    std::string node;
    if (cert != nullptr) node += "tls_cert = \"" + std::string(cert) + "\"\n";
    if (key != nullptr) node += "tls_key = \"" + std::string(key) + "\"\n";
    WriteFile(topology, text + NodeToml("n", 1, 2, node));
    Write(ca, "CA PEM\n", 0644);
    Write(cert, "CERT PEM\n", 0644);
    Write(key, "KEY PEM\n", key_mode);
  }
  void Write(const char* name, const char* text, mode_t mode) {
    if (name == nullptr || name[0] == '\0' || name[0] == '/') return;
    const std::string path = dir.path() + "/" + name;
    WriteFile(path, text);
    BOOST_REQUIRE(chmod(path.c_str(), mode) == 0);
  }
  std::string Path(const char* name) const { return dir.path() + "/" + name; }
  Status Load(Topology* t = nullptr) {
    Topology scratch;
    return LoadTopology(topology, t != nullptr ? t : &scratch);
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(without_tls_files_the_api_is_plain) {
  TlsSetup s(nullptr, nullptr, nullptr);
  Topology t;
  BOOST_REQUIRE(s.Load(&t).ok());
  BOOST_TEST(!t.AllNodes()[0]->api_tls());
  BOOST_TEST(t.AllNodes()[0]->tls_cert_pem.empty());
  BOOST_TEST(t.tls_ca.empty());
  BOOST_TEST(t.tls_ca_path.empty());
}

BOOST_AUTO_TEST_CASE(tls_files_are_read_relative_to_the_topology_file) {
  TlsSetup s("ca.pem", "n.pem", "n-key.pem");
  Topology t;
  Status st = s.Load(&t);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  const NodeConfig& n = *t.AllNodes()[0];
  BOOST_TEST(n.api_tls());
  BOOST_TEST(n.tls_cert == "n.pem");
  BOOST_TEST(n.tls_key == "n-key.pem");
  BOOST_TEST(n.tls_cert_line == 11);
  BOOST_TEST(n.tls_key_line == 12);
  BOOST_TEST(n.tls_cert_pem == "CERT PEM\n");
  BOOST_TEST(n.tls_key_pem == "KEY PEM\n");
  BOOST_TEST(t.tls_ca == "ca.pem");
  BOOST_TEST(t.tls_ca_line == 3);
  BOOST_TEST(t.tls_ca_path == s.Path("ca.pem"));
}

BOOST_AUTO_TEST_CASE(absolute_tls_files) {
  TlsSetup rel("ca.pem", "n.pem", "n-key.pem");
  const std::string ca = rel.Path("ca.pem"), cert = rel.Path("n.pem"), key = rel.Path("n-key.pem");
  TlsSetup s(ca.c_str(), cert.c_str(), key.c_str());
  Topology t;
  Status st = s.Load(&t);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  BOOST_TEST(t.AllNodes()[0]->tls_key_pem == "KEY PEM\n");
  BOOST_TEST(t.tls_ca_path == ca);
}

// The mode is checked from the file's bits, so these hold for root too.
BOOST_AUTO_TEST_CASE(a_key_open_to_group_or_others_is_refused) {
  TlsSetup s(nullptr, "n.pem", "n-key.pem", 0640);
  Status st = s.Load();
  BOOST_TEST(st.IsInvalidArgument());
  const std::string key = s.Path("n-key.pem");
  BOOST_TEST(st.message() == s.topology + ":12: tls_key '" + key +
                                 "' is open to its group or others (mode 0640); it holds "
                                 "secrets: chmod 600 '" + key + "'");
}

BOOST_AUTO_TEST_CASE(missing_tls_files_are_reported_at_their_line) {
  TlsSetup no_cert(nullptr, "gone.pem", "n-key.pem");
  BOOST_REQUIRE(unlink(no_cert.Path("gone.pem").c_str()) == 0);
  BOOST_TEST(no_cert.Load().message() == no_cert.topology + ":11: cannot open tls_cert '" +
                                             no_cert.Path("gone.pem") +
                                             "': No such file or directory");
  TlsSetup no_ca("ca.pem", nullptr, nullptr);
  BOOST_REQUIRE(unlink(no_ca.Path("ca.pem").c_str()) == 0);
  BOOST_TEST(no_ca.Load().message() == no_ca.topology + ":3: cannot open tls_ca '" +
                                           no_ca.Path("ca.pem") + "': No such file or directory");
}

BOOST_AUTO_TEST_CASE(cert_and_key_come_together) {
  const std::string head = std::string(kCluster) + "[[region]]\nname = \"r\"\n";  // lines 1-4
  ExpectProblem(head + NodeToml("n", 1, 2, "tls_cert = \"n.pem\"\n"),
                "t.toml:10: tls_cert is given without tls_key; give both for TLS on the API, or "
                "neither for plain HTTP");
  ExpectProblem(head + NodeToml("n", 1, 2, "tls_key = \"n-key.pem\"\n"),
                "t.toml:10: tls_key is given without tls_cert; give both for TLS on the API, or "
                "neither for plain HTTP");
  ExpectProblem(head + NodeToml("n", 1, 2, "tls_cert = \"\"\ntls_key = \"k\"\n"),
                "t.toml:10: tls_cert must name a file, not be empty");
  ExpectProblem(head + NodeToml("n", 1, 2, "tls_cert = 1\ntls_key = \"k\"\n"),
                "t.toml:10: tls_cert must be a string, not 1");
  ExpectProblem(std::string(kCluster) + "tls_ca = \"\"\n[[region]]\nname = \"r\"\n" +
                    NodeToml("n", 1, 2),
                "t.toml:3: tls_ca in [cluster] must not be empty");
}

BOOST_AUTO_TEST_SUITE_END()
