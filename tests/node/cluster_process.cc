#include "tests/node/cluster_process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/child_process.h"
#include "tests/support/current_test.h"
#include "tests/support/loopback.h"

#ifndef MERIDIAN_MERIDIAND
#error "MERIDIAN_MERIDIAND must name the meridiand binary (set by tests/CMakeLists.txt)"
#endif

namespace meridian::testing {

namespace {

std::string RegionName(int r) {
  static const char* const kNames[] = {"us-east", "eu-west", "ap-south"};
  return r < 3 ? kNames[r] : "region-" + std::to_string(r + 1);
}

// The low end of the kernel's ephemeral port range (32768 when unknown).
int EphemeralLow() {
  std::ifstream f("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0, high = 0;
  if (f >> low >> high && low > 0) return low;
  return 32768;
}

std::string Tail(const std::string& s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t from = s.size() - max_bytes;
  size_t nl = s.find('\n', from);
  if (nl != std::string::npos && nl + 1 < s.size()) from = nl + 1;
  return "[... " + std::to_string(from) + " earlier bytes left out ...]\n" + s.substr(from);
}

}  // namespace

ClusterProcess::ClusterProcess(ClusterOptions options)
    : options_(std::move(options)), dir_("meridian-cluster") {
  topology_path_ = dir_.sub("topology.toml");
  for (int r = 0; r < options_.regions; ++r) {
    for (int k = 0; k < options_.nodes_per_region; ++k) {
      Node n;
      n.region = RegionName(r);
      n.region_index = r;
      n.id = n.region + "-" + std::to_string(k + 1);
      n.data_dir = dir_.sub(n.id + "/data");
      n.stderr_path = dir_.sub(n.id + ".stderr");
      nodes_.push_back(std::move(n));
    }
  }
  for (int i = 0; i < size(); ++i) {
    nodes_[i].args = options_.args_for_all;
    auto it = options_.args.find(i);
    if (it != options_.args.end()) {
      nodes_[i].args.insert(nodes_[i].args.end(), it->second.begin(), it->second.end());
    }
  }
  PickPorts();
  WriteTopology();
}

ClusterProcess::~ClusterProcess() {
  for (int i = 0; i < size(); ++i) {
    if (running(i)) KillNode(i);
  }
  if (CurrentTestFailed()) PrintStderr("the test case failed");
  if (std::getenv("MERIDIAN_KEEP_CLUSTER") != nullptr) {
    std::cerr << "ClusterProcess: kept " << dir() << " (MERIDIAN_KEEP_CLUSTER)\n";
    dir_.Keep();
  }
  // dir_ goes next, with everything in it unless kept.
}

void ClusterProcess::PickPorts() {
  // Distinct ports, each free when picked (all held until the last is
  // found), below the ephemeral range when there is room there.
  const int low = EphemeralLow();
  const bool below = low >= 12000;
  std::mt19937 rng(std::random_device{}());
  std::vector<int> held;
  std::set<uint16_t> taken;
  auto pick = [&]() -> uint16_t {
    for (int attempt = 0; attempt < 200; ++attempt) {
      uint16_t want = below ? static_cast<uint16_t>(10000 + rng() % (low - 10000)) : 0;
      if (taken.count(want)) continue;
      uint16_t got = 0;
      int fd = BindLoopback(want, /*listen=*/false, &got);
      if (fd < 0) continue;
      held.push_back(fd);
      taken.insert(got);
      return got;
    }
    std::cerr << "ClusterProcess: no free port found\n";
    std::abort();
  };
  for (Node& n : nodes_) {
    n.http_port = pick();
    n.gossip_port = pick();
  }
  for (int fd : held) ::close(fd);
}

void ClusterProcess::WriteTopology() {
  std::ofstream f(topology_path_, std::ios::trunc);
  f << "[cluster]\n"
    << "name = \"" << options_.cluster_name << "\"\n"
    << "max_clock_offset_ms = " << options_.max_clock_offset_ms << "\n"
    << "heartbeat_interval_ms = " << options_.heartbeat_interval_ms << "\n"
    << "anti_entropy_interval_ms = " << options_.anti_entropy_interval_ms << "\n"
    << "sync = " << (options_.sync ? "true" : "false") << "\n";
  if (options_.log_retention_ms != 0) {
    f << "log_retention_ms = " << options_.log_retention_ms << "\n";
  }
  if (options_.log_retention_bytes != 0) {
    f << "log_retention_bytes = " << options_.log_retention_bytes << "\n";
  }
  if (options_.retention_horizon_ms != 0) {
    f << "retention_horizon_ms = " << options_.retention_horizon_ms << "\n";
  }
  int region = -1;
  for (const Node& n : nodes_) {
    if (n.region_index != region) {
      region = n.region_index;
      f << "\n[[region]]\nname = \"" << n.region << "\"\n";
    }
    f << "\n  [[region.node]]\n"
      << "  id       = \"" << n.id << "\"\n"
      << "  http     = \"127.0.0.1:" << n.http_port << "\"\n"
      << "  gossip   = \"tcp://127.0.0.1:" << n.gossip_port << "\"\n"
      << "  data_dir = \"" << n.data_dir << "\"\n";
    auto lines = options_.node_lines.find(static_cast<int>(&n - nodes_.data()));
    if (lines != options_.node_lines.end()) {
      for (const std::string& line : lines->second) f << "  " << line << "\n";
    }
  }
  f << options_.extra_toml;
}

std::vector<int> ClusterProcess::NodesOfRegion(int r) const {
  std::vector<int> out;
  for (int i = 0; i < size(); ++i) {
    if (nodes_[i].region_index == r) out.push_back(i);
  }
  return out;
}

int ClusterProcess::IndexOf(const std::string& id) const {
  for (int i = 0; i < size(); ++i) {
    if (nodes_[i].id == id) return i;
  }
  return -1;
}

std::string ClusterProcess::url(int i) const {
  return "http://127.0.0.1:" + std::to_string(nodes_.at(i).http_port);
}

std::unique_ptr<node::HttpClient> ClusterProcess::Client(int i) const {
  std::unique_ptr<node::HttpClient> c;
  Status st = node::HttpClient::Create(url(i), &c);
  if (!st.ok()) {
    std::cerr << "HttpClient::Create(" << url(i) << "): " << st.ToString() << "\n";
    std::abort();
  }
  c->set_timeout(std::chrono::milliseconds(10000));
  return c;
}

std::string ClusterProcess::Stderr(int i) const {
  std::ifstream f(nodes_.at(i).stderr_path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void ClusterProcess::PrintStderr(const std::string& why, size_t max_bytes) const {
  for (int i = 0; i < size(); ++i) {
    std::cerr << "---- meridiand " << nodes_[i].id << " stderr (" << why << "; "
              << nodes_[i].stderr_path << ") ----\n"
              << Tail(Stderr(i), max_bytes) << "---- end of " << nodes_[i].id << " stderr ----"
              << std::endl;
  }
}

void ClusterProcess::SetNodeArgs(int i, std::vector<std::string> args) {
  nodes_.at(i).args = std::move(args);
}

bool ClusterProcess::Spawn(int i) {
  Node& n = nodes_.at(i);
  n.stderr_offset = Stderr(i).size();
  std::vector<std::string> args = {MERIDIAN_MERIDIAND, "--config", topology_path_, "--node", n.id};
  args.insert(args.end(), n.args.begin(), n.args.end());
  if (bootstrap_node_ < 0) bootstrap_node_ = i;
  if (i == bootstrap_node_ && !bootstrap_node_up_) args.push_back("--bootstrap");
  ChildOptions child;
  child.stdout_path = child.stderr_path = n.stderr_path;
  child.append = true;
  std::string why;
  pid_t pid = SpawnChild(args, child, &why);
  if (pid < 0) {
    std::cerr << "ClusterProcess: " << n.id << ": " << why << "\n";
    return false;
  }
  n.pid = pid;
  return true;
}

bool ClusterProcess::Healthy(int i) const {
  std::unique_ptr<node::HttpClient> c = Client(i);
  c->set_timeout(std::chrono::milliseconds(500));
  node::ClientResponse res;
  return c->Request("GET", "/v1/health", "", {}, &res).ok() && res.status == 200;
}

ClusterProcess::StartResult ClusterProcess::AwaitHealthy(const std::vector<int>& which) {
  std::set<int> waiting(which.begin(), which.end());
  const auto deadline = std::chrono::steady_clock::now() + options_.start_timeout;
  std::string why;
  bool port_in_use = false;
  while (!waiting.empty() && why.empty()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      why = "/v1/health of";
      for (int i : waiting) why += " " + nodes_[i].id;
      why += " did not answer 200 within " + std::to_string(options_.start_timeout.count()) + " ms";
      break;
    }
    for (auto it = waiting.begin(); it != waiting.end();) {
      const int i = *it;
      Node& n = nodes_[i];
      int status = 0;
      if (waitpid(n.pid, &status, WNOHANG) == n.pid) {
        n.pid = -1;
        std::string err = Stderr(i).substr(n.stderr_offset);
        port_in_use = err.find("cannot listen") != std::string::npos ||
                      err.find("cannot bind") != std::string::npos ||
                      err.find("ddress already in use") != std::string::npos;
        why = "meridiand " + n.id + " exited during start-up (wait status " +
              std::to_string(status) + ")";
        break;
      }
      if (Healthy(i)) {
        it = waiting.erase(it);
      } else {
        ++it;
      }
    }
    if (!waiting.empty() && why.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (why.empty()) {
    if (std::find(which.begin(), which.end(), bootstrap_node_) != which.end()) {
      bootstrap_node_up_ = true;
    }
    return StartResult::kOk;
  }
  for (int i : which) {
    if (running(i)) KillNode(i);
  }
  if (port_in_use) return StartResult::kPortInUse;
  std::cerr << "ClusterProcess: " << why << "\n";
  PrintStderr(why);
  return StartResult::kFailed;
}

bool ClusterProcess::Start() {
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::vector<int> started;
    bool spawned = true;
    for (int i = 0; i < size() && spawned; ++i) {
      if (running(i)) continue;
      spawned = Spawn(i);
      if (spawned) started.push_back(i);
    }
    if (!spawned) {
      for (int i : started) KillNode(i);
      return false;
    }
    StartResult r = AwaitHealthy(started);
    if (r == StartResult::kOk) return true;
    if (r == StartResult::kFailed) return false;
    // A port was taken before its node bound it: every node has to learn
    // the new ports, so all start over.
    std::cerr << "ClusterProcess: a port was taken; picking new ones and starting again\n";
    for (int i = 0; i < size(); ++i) {
      if (running(i)) KillNode(i);
    }
    PickPorts();
    WriteTopology();
  }
  std::cerr << "ClusterProcess: no free ports after 5 attempts\n";
  PrintStderr("no free ports");
  return false;
}

bool ClusterProcess::WaitWritable(std::chrono::milliseconds timeout, const std::vector<int>& nodes,
                                  std::string* why) {
  std::vector<int> which = nodes;
  if (which.empty()) {
    for (int i = 0; i < size(); ++i) which.push_back(i);
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::map<int, std::string> last;
  for (;;) {
    bool all = true;
    for (int i : which) {
      std::unique_ptr<node::HttpClient> c = Client(i);
      c->set_timeout(std::chrono::milliseconds(1000));
      node::ClientResponse res;
      Status st = c->Request("GET", "/v1/health", "", {}, &res);
      bool ok = false;
      if (!st.ok()) {
        last[i] = st.ToString();
      } else {
        last[i] = std::to_string(res.status) + " " + res.body;
        if (res.status == 200) {
          try {
            nlohmann::json b = nlohmann::json::parse(res.body);
            ok = !b.contains("writable") || b["writable"] == true;
          } catch (const nlohmann::json::exception&) {
          }
        }
      }
      all = all && ok;
    }
    if (all) return true;
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  if (why != nullptr) {
    why->clear();
    for (const auto& [i, text] : last) *why += nodes_[i].id + ": " + text + "\n";
  }
  return false;
}

bool ClusterProcess::StartNode(int i) {
  if (running(i)) return true;
  // The node's ports are in the topology every other node has read: they
  // cannot change now. A port still held (a connection closing) is retried.
  for (int attempt = 0; attempt < 10; ++attempt) {
    if (!Spawn(i)) return false;
    StartResult r = AwaitHealthy({i});
    if (r == StartResult::kOk) return true;
    if (r == StartResult::kFailed) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::cerr << "ClusterProcess: " << node_id(i) << " could not bind its ports in 10 attempts\n";
  PrintStderr(node_id(i) + " could not bind its ports");
  return false;
}

bool ClusterProcess::WaitExit(int i, std::chrono::milliseconds timeout, int* status) {
  Node& n = nodes_.at(i);
  if (WaitChild(n.pid, timeout, status) == WaitResult::kTimedOut) return false;
  n.pid = -1;
  return true;
}

bool ClusterProcess::StopNode(int i, std::chrono::milliseconds timeout) {
  if (!running(i)) return true;
  ::kill(nodes_[i].pid, SIGTERM);
  int status = 0;
  if (!WaitExit(i, timeout, &status)) {
    std::cerr << "ClusterProcess::StopNode: " << node_id(i) << " did not exit within "
              << timeout.count() << " ms of SIGTERM; killing it\n";
    KillNode(i);
    return false;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::cerr << "ClusterProcess::StopNode: " << node_id(i) << " ended with "
              << DescribeWaitStatus(status) << "\n";
    return false;
  }
  return true;
}

void ClusterProcess::KillNode(int i) {
  Node& n = nodes_.at(i);
  if (n.pid <= 0) return;
  KillChild(n.pid);
  n.pid = -1;
}

bool ClusterProcess::RestartNode(int i) {
  bool stopped = StopNode(i);
  bool started = StartNode(i);
  return stopped && started;
}

}  // namespace meridian::testing
