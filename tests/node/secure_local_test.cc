// regions/secure-local.toml (issue 10) started the way the README says, by
// `meridianctl up --config regions/secure-local.toml`, on a copy of the
// repository's regions/ in a fresh temporary directory: the same files with
// the secret ones at mode 0644 (as a fresh clone has them: git keeps no
// modes) and the six ports replaced by free ones.
//
// Checks that up makes every secret file private (mode 0600) and says so,
// that every node then answers over TLS verified with the development CA,
// runs gossip over CurveZMQ with its peers up, and wants a token (401
// without, a read token reads, a write token writes, and the write reaches
// the other regions); and that down stops the nodes. A guard runs down and
// then kills any node still running, whatever the case's end.
#define BOOST_TEST_MODULE secure_local
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "node/http_client.h"
#include "tests/node/node_process.h"
#include "tests/support/child_process.h"
#include "tests/support/loopback.h"
#include "tests/support/temp_dir.h"

#ifndef MERIDIAN_MERIDIANCTL
#error "MERIDIAN_MERIDIANCTL must name the meridianctl binary (set by tests/CMakeLists.txt)"
#endif
#ifndef MERIDIAN_SOURCE_DIR
#error "MERIDIAN_SOURCE_DIR must name the repository (set by tests/CMakeLists.txt)"
#endif

using meridian::node::ClientResponse;
using meridian::node::HttpClient;
using meridian::testing::CtlResult;
using meridian::testing::TempDir;
using nlohmann::json;
using std::chrono::milliseconds;
namespace fs = std::filesystem;

namespace {

constexpr char kConfig[] = "regions/secure-local.toml";
constexpr char kCa[] = "regions/secure-local/ca.pem";
const std::vector<std::string> kIds = {"us-east-1", "eu-west-1", "ap-south-1"};
const std::vector<int> kHttp = {7301, 7302, 7303}, kGossip = {7401, 7402, 7403};

using meridian::testing::Subreaper;
BOOST_TEST_GLOBAL_FIXTURE(Subreaper);

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void Replace(std::string* text, const std::string& from, const std::string& to) {
  size_t at = text->find(from);
  BOOST_REQUIRE_MESSAGE(at != std::string::npos, "the topology has no '" << from << "'");
  text->replace(at, from.size(), to);
}

unsigned Mode(const std::string& path) {
  struct stat st;
  BOOST_REQUIRE(stat(path.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

// The copy of regions/ and what the test started there.
class SecureLocal {
 public:
  SecureLocal() {
    root_ = dir_.path();
    fs::create_directories(root_ + "/regions");
    fs::copy(std::string(MERIDIAN_SOURCE_DIR) + "/regions/secure-local",
             root_ + "/regions/secure-local", fs::copy_options::recursive);
    std::string topo = ReadFile(std::string(MERIDIAN_SOURCE_DIR) + "/" + kConfig);
    for (size_t i = 0; i < kIds.size(); ++i) {
      http_.push_back(meridian::testing::FreePort());
      uint16_t gossip = meridian::testing::FreePort();
      BOOST_REQUIRE(http_.back() != 0 && gossip != 0);
      Replace(&topo, "\"127.0.0.1:" + std::to_string(kHttp[i]) + "\"",
              "\"127.0.0.1:" + std::to_string(http_.back()) + "\"");
      Replace(&topo, "\"tcp://127.0.0.1:" + std::to_string(kGossip[i]) + "\"",
              "\"tcp://127.0.0.1:" + std::to_string(gossip) + "\"");
    }
    std::ofstream(root_ + "/" + kConfig) << topo;
    // As a fresh clone has them.
    for (const auto& e : fs::directory_iterator(root_ + "/regions/secure-local")) {
      fs::permissions(e.path(), fs::perms(0644));
    }
  }

  ~SecureLocal() {
    CtlResult down = Ctl({"down", "--config", kConfig});
    if (!down.finished || down.exit_code != 0) BOOST_TEST_MESSAGE(down.Describe());
    for (const std::string& id : kIds) {
      const std::string pid_text = ReadFile(root_ + "/data/secure/" + id + ".pid");
      pid_t pid = pid_text.empty() ? 0 : static_cast<pid_t>(std::atol(pid_text.c_str()));
      if (pid > 0 && ::kill(pid, 0) == 0) {
        BOOST_TEST_MESSAGE("killing " << id << " (pid " << pid << ")");
        ::kill(pid, SIGKILL);
      }
      if (pid > 0) waitpid(pid, nullptr, 0);
    }
  }

  CtlResult Ctl(const std::vector<std::string>& args) {
    return meridian::testing::RunProgram(MERIDIAN_MERIDIANCTL, root_, args, milliseconds(60000));
  }

  // One request to node i over TLS, verified with the development CA.
  ClientResponse Call(size_t i, const std::string& method, const std::string& target,
                      const std::string& token, const std::string& body = "") {
    std::unique_ptr<HttpClient> client;
    meridian::Status st = HttpClient::Create("https://127.0.0.1:" + std::to_string(http_[i]),
                                             root_ + "/" + kCa, &client);
    std::vector<std::pair<std::string, std::string>> headers;
    if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
    if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
    ClientResponse res;
    if (st.ok()) st = client->Request(method, target, body, headers, &res);
    BOOST_REQUIRE_MESSAGE(st.ok(), method << " " << target << " at " << kIds[i] << ": "
                                          << st.ToString());
    return res;
  }

  const std::string& root() const { return root_; }

 private:
  TempDir dir_;
  std::string root_;
  std::vector<uint16_t> http_;
};

const char kRead[] = "dev-read-token-not-a-secret";
const char kWrite[] = "dev-write-token-not-a-secret";

}  // namespace

BOOST_AUTO_TEST_CASE(up_starts_the_secure_cluster_from_a_fresh_checkout) {
  SecureLocal c;
  const std::vector<std::string> secrets = {
      "regions/secure-local/tokens.toml",        "regions/secure-local/us-east-1-key.pem",
      "regions/secure-local/us-east-1.key",      "regions/secure-local/eu-west-1-key.pem",
      "regions/secure-local/eu-west-1.key",      "regions/secure-local/ap-south-1-key.pem",
      "regions/secure-local/ap-south-1.key"};
  for (const std::string& s : secrets) BOOST_REQUIRE(Mode(c.root() + "/" + s) == 0644u);

  CtlResult up = c.Ctl({"up", "--config", kConfig, "--wait", "30"});
  BOOST_REQUIRE_MESSAGE(up.finished && up.exit_code == 0, up.Describe());
  for (const std::string& s : secrets) {
    BOOST_TEST(Mode(c.root() + "/" + s) == 0600u, s);
    BOOST_TEST(up.out.find("made " + s + " private (mode 0600)") != std::string::npos, s);
  }
  // Public files stay as they were.
  BOOST_TEST(Mode(c.root() + "/" + kCa) == 0644u);

  for (size_t i = 0; i < kIds.size(); ++i) {
    BOOST_TEST_CONTEXT(kIds[i]) {
      BOOST_TEST(c.Call(i, "GET", "/v1/health", "").status == 200);  // needs no token
      BOOST_TEST(c.Call(i, "GET", "/v1/status", "").status == 401);
      json status;
      bool peers_up = false;
      for (int k = 0; k < 200 && !peers_up; ++k) {
        status = json::parse(c.Call(i, "GET", "/v1/status", kRead).body, nullptr, false);
        peers_up = status.is_object() && status["peers"].size() == 2u;
        for (const json& p : status.value("peers", json::array())) {
          peers_up = peers_up && p.value("state", "") == "up";
        }
        if (!peers_up) std::this_thread::sleep_for(milliseconds(50));
      }
      BOOST_TEST(peers_up, status.dump());
      BOOST_TEST(status.value("gossip_security", "") == "curve");
      BOOST_TEST(status.value("auth", "") == "tokens");
      BOOST_TEST(status.value("api_tls", false));
    }
  }
  // A read token cannot write; a write token's write reaches every region.
  BOOST_TEST(c.Call(0, "PUT", "/v1/kv/greeting", kRead, R"("hello")").status == 403);
  BOOST_REQUIRE(c.Call(0, "PUT", "/v1/kv/greeting", kWrite, R"("hello")").status == 200);
  for (size_t i = 1; i < kIds.size(); ++i) {
    int status = 0;
    for (int k = 0; k < 200 && status != 200; ++k) {
      status = c.Call(i, "GET", "/v1/kv/greeting", kRead).status;
      if (status != 200) std::this_thread::sleep_for(milliseconds(25));
    }
    BOOST_TEST(status == 200, kIds[i]);
  }

  CtlResult down = c.Ctl({"down", "--config", kConfig});
  BOOST_TEST(down.exit_code == 0, down.Describe());
}
