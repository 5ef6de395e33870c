// CurveZMQ gossip (README "Security", gossip/transport.h "Security") with
// real meridiand processes: a three-region cluster whose topology lists a
// key per node replicates a write and says "curve" in /v1/status; a node
// without keys says "plaintext"; a secret key file open to its group, or
// holding another pair's secret, stops the start with FILE:LINE; and
// `meridianctl keygen` writes a mode-0600 secret whose printed public key
// a node starts with. (Unlisted keys and forged origins are refused at the
// socket level: tests/gossip/transport_test.cc.)
#define BOOST_TEST_MODULE curve
#include <sys/stat.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "gossip/curve_keys.h"
#include "node/http_client.h"
#include "tests/node/cluster_process.h"
#include "tests/node/node_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait_for.h"

#ifndef MERIDIAN_MERIDIANCTL
#error "MERIDIAN_MERIDIANCTL must name the meridianctl binary (set by tests/CMakeLists.txt)"
#endif

using meridian::Status;
using meridian::gossip::CurveKeyPair;
using meridian::node::ClientResponse;
using meridian::node::HttpClient;
using meridian::testing::ClusterOptions;
using meridian::testing::ClusterProcess;
using meridian::testing::CtlResult;
using meridian::testing::NodeOptions;
using meridian::testing::NodeProcess;
using meridian::testing::RunProgram;
using meridian::testing::TempDir;
using meridian::testing::WaitFor;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

CurveKeyPair NewPair() {
  BOOST_REQUIRE_MESSAGE(meridian::gossip::CurveAvailable(),
                        "this ZeroMQ library was built without CURVE (zmq_has(\"curve\") is "
                        "false); CurveZMQ cannot be tested");
  CurveKeyPair pair;
  Status st = meridian::gossip::GenerateCurveKeyPair(&pair);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  return pair;
}

void WriteFile(const std::string& path, const std::string& text, mode_t mode) {
  {
    std::ofstream f(path, std::ios::trunc);
    f << text;
    BOOST_REQUIRE(f.good());
  }
  BOOST_REQUIRE(::chmod(path.c_str(), mode) == 0);
}

json StatusOf(HttpClient& client) {
  ClientResponse res;
  meridian::Status st = client.Request("GET", "/v1/status", "", {}, &res);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  BOOST_REQUIRE_EQUAL(res.status, 200);
  return json::parse(res.body);
}

// The lines of a node's entry for `pair`, its secret in `secret_path`.
std::vector<std::string> KeyLines(const CurveKeyPair& pair, const std::string& secret_path) {
  return {"public_key = \"" + pair.public_key + "\"", "secret_key_file = \"" + secret_path + "\""};
}

// A one-node topology whose node lists `pair` (public_key on line 12,
// secret_key_file on line 13), its secret file node.key holding
// `secret_text` with `mode`.
NodeOptions KeyedNode(const CurveKeyPair& pair, const std::string& secret_text, mode_t mode) {
  NodeOptions o;
  o.node_lines = KeyLines(pair, "node.key");
  o.files = {{"node.key", secret_text, mode}};
  o.start_timeout = milliseconds(5000);
  return o;
}

// A node that cannot start: what it said.
std::string FailedStart(NodeOptions o) {
  NodeProcess node(std::move(o));
  BOOST_TEST(!node.Start());
  BOOST_TEST(!node.running());
  return node.Stderr();
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_cluster_with_keys_replicates_and_says_curve) {
  TempDir keys("meridian-curve-keys");
  ClusterOptions o;
  for (int i = 0; i < 3; ++i) {
    const CurveKeyPair pair = NewPair();
    const std::string path = keys.sub("node-" + std::to_string(i) + ".key");
    WriteFile(path, meridian::gossip::FormatSecretKeyFile(pair), 0600);
    o.node_lines[i] = KeyLines(pair, path);
  }
  ClusterProcess cluster(o);
  BOOST_REQUIRE(cluster.Start());
  BOOST_REQUIRE(cluster.WaitWritable(milliseconds(20000)));

  auto writer = cluster.Client(0);
  ClientResponse res;
  BOOST_REQUIRE(writer
                    ->Request("PUT", "/v1/kv/secure/greeting", "\"over curve\"",
                              {{"Content-Type", "application/json"}}, &res)
                    .ok());
  BOOST_REQUIRE_EQUAL(res.status, 200);
  for (int i = 1; i < cluster.size(); ++i) {
    auto reader = cluster.Client(i);
    BOOST_TEST(WaitFor(
                   [&] {
                     ClientResponse got;
                     return reader->Request("GET", "/v1/kv/secure/greeting", "", {}, &got).ok() &&
                            got.status == 200 &&
                            json::parse(got.body, nullptr, false).value("value", json()) ==
                                "over curve";
                   },
                   milliseconds(20000)),
               cluster.node_id(i) << " never got the write");
  }
  for (int i = 0; i < cluster.size(); ++i) {
    json status = StatusOf(*cluster.Client(i));
    BOOST_TEST(status["gossip_security"] == "curve");
    BOOST_TEST(status["gossip"]["zap_refused"] == 0);
    BOOST_TEST(status["gossip"]["forged_frames"] == 0);
    for (const json& peer : status["peers"]) BOOST_TEST(peer["state"] == "up");
    BOOST_TEST(cluster.Stderr(i).find("gossip: curve") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(a_node_without_keys_says_plaintext) {
  NodeProcess node;
  BOOST_REQUIRE(node.Start());
  BOOST_TEST(StatusOf(*node.Client())["gossip_security"] == "plaintext");
  BOOST_TEST(node.Stderr().find("gossip: plaintext (no keys in the topology") != std::string::npos);
  BOOST_TEST(node.Stop());
}

BOOST_AUTO_TEST_CASE(a_group_readable_secret_key_file_is_refused) {
  const CurveKeyPair pair = NewPair();
  const std::string err =
      FailedStart(KeyedNode(pair, meridian::gossip::FormatSecretKeyFile(pair), 0640));
  BOOST_TEST(err.find("topology.toml:13: secret_key_file '") != std::string::npos, err);
  BOOST_TEST(err.find("node.key' is open to its group or others (mode 0640); it holds secrets: "
                      "chmod 600") != std::string::npos,
             err);
}

BOOST_AUTO_TEST_CASE(a_secret_of_another_pair_is_refused) {
  const CurveKeyPair pair = NewPair(), other = NewPair();
  const std::string err =
      FailedStart(KeyedNode(pair, meridian::gossip::FormatSecretKeyFile(other), 0600));
  BOOST_TEST(err.find("topology.toml:13: secret_key_file '") != std::string::npos, err);
  BOOST_TEST(err.find("holds the secret key of public key " + other.public_key +
                      ", but the public_key listed for node 'test-1' is " + pair.public_key +
                      ": the pair does not match") != std::string::npos,
             err);
  BOOST_TEST(err.find(other.secret_key) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(keygen_writes_a_private_secret_and_a_key_the_topology_takes) {
  TempDir dir("meridian-keygen");
  const auto keygen = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "keygen");
    return RunProgram(MERIDIAN_MERIDIANCTL, dir.path(), args, milliseconds(10000));
  };
  CtlResult r = keygen({"--out-secret", "node.key"});
  BOOST_REQUIRE_MESSAGE(r.finished && r.exit_code == 0, r.Describe());
  const std::string secret_path = dir.sub("node.key");
  struct stat st;
  BOOST_REQUIRE(::stat(secret_path.c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 07777) == 0600u);
  // The lines to paste: public_key, then secret_key_file.
  const std::string prefix = "public_key = \"";
  BOOST_REQUIRE_MESSAGE(r.out.rfind(prefix, 0) == 0, r.Describe());
  const std::string public_key = r.out.substr(prefix.size(), 40);
  BOOST_TEST(meridian::gossip::IsCurveKey(public_key));
  BOOST_TEST(r.out.find("secret_key_file = \"node.key\"") != std::string::npos, r.Describe());

  // Not replaced without --force.
  CtlResult again = keygen({"--out-secret", "node.key"});
  BOOST_TEST(again.exit_code == 1, again.Describe());
  BOOST_TEST(again.err.find("exists; pass --force to replace it") != std::string::npos);
  std::ifstream f(secret_path);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  BOOST_TEST(text.find(public_key) != std::string::npos);  // still the first pair's file

  // A node started on the pair.
  NodeOptions o;
  o.node_lines = KeyLines(CurveKeyPair{public_key, ""}, secret_path);
  NodeProcess node(o);
  BOOST_REQUIRE(node.Start());
  BOOST_TEST(StatusOf(*node.Client())["gossip_security"] == "curve");
  BOOST_TEST(node.Stop());

  // --force makes a new pair; without --out-secret both keys are printed,
  // the secret labelled.
  CtlResult forced = keygen({"--out-secret", "node.key", "--force"});
  BOOST_TEST(forced.exit_code == 0, forced.Describe());
  BOOST_TEST(forced.out.find(public_key) == std::string::npos);
  BOOST_REQUIRE(::stat(secret_path.c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 07777) == 0600u);
  CtlResult both = keygen({});
  BOOST_TEST(both.exit_code == 0, both.Describe());
  BOOST_TEST(both.out.rfind(prefix, 0) == 0u);
  BOOST_TEST(both.out.find("# SECRET key") != std::string::npos);
}
