// `meridianctl up|down --config FILE [--enable-fault-injection] [--wait S]
// [--meridiand PATH]` (node/launcher.h), the README's main command path
// (`./dev up` runs `build/node/meridianctl up --config regions/local.toml
// --enable-fault-injection` from the repository root), run as a child
// process exactly as a user runs it.
//
// Each test case writes a three-region topology with free ports through
// tests/node/cluster_process.h (whose data dirs are absolute paths in a
// fresh temporary directory; ClusterProcess::Start is never called) and
// runs meridianctl in that directory with the relative path
// "topology.toml", as ./dev does with regions/local.toml.
//
// Covered: up starts every node (exit 0, every region listed with its URL and editor URL,
// DATA_DIR.pid names the meridiand itself: /proc/PID/exe, its command
// line, and the pid /v1/health reports; every node writable); a PUT at any
// node is read back with the same value at the other two within 1 s; up
// again is a no-op naming the running pids; a cluster whose nodes hold only
// incarnations that never bootstrapped is a new cluster again (its first
// node gets --bootstrap); down stops every process and
// removes the pid files, and down again says "not running"; POST
// /v1/admin/faults answers 200 with --enable-fault-injection and 404
// without; up then down then up again keeps the data; a missing or
// unparsable topology file, a missing --config and a meridiand that cannot
// be run fail with a non-zero exit and start nothing; a node that cannot
// bind its port makes up exit 1 and stop the nodes it started.
// up ends within --wait when a node's port accepts connections and never
// answers.
//
// Cleanup: the test binary is a child subreaper, so the nodes meridianctl
// leaves behind become its children and are reaped; each case has a guard
// that runs `meridianctl down` and then SIGKILLs any of its nodes still
// running (found by pid file or remembered pid, checked in /proc), and
// prints the nodes' logs when the case failed. Every wait is bounded.
#define BOOST_TEST_MODULE launcher
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "node/http_client.h"
#include "storage/leveldb_store.h"
#include "storage/node_meta.h"
#include "tests/node/cluster_process.h"
#include "tests/node/node_process.h"
#include "tests/support/child_process.h"
#include "tests/support/current_test.h"
#include "tests/support/loopback.h"

#ifndef MERIDIAN_MERIDIANCTL
#error "MERIDIAN_MERIDIANCTL must name the meridianctl binary (set by tests/CMakeLists.txt)"
#endif
#ifndef MERIDIAN_MERIDIAND
#error "MERIDIAN_MERIDIAND must name the meridiand binary (set by tests/CMakeLists.txt)"
#endif

namespace crdt = meridian::crdt;
namespace storage = meridian::storage;
using meridian::Status;
using meridian::node::ClientResponse;
using meridian::node::HttpClient;
using meridian::testing::BindLoopback;
using meridian::testing::ChildOptions;
using meridian::testing::ClusterOptions;
using meridian::testing::ClusterProcess;
using meridian::testing::CurrentTestFailed;
using meridian::testing::KillChild;
using meridian::testing::SpawnChild;
using meridian::testing::WaitChild;
using meridian::testing::WaitResult;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
namespace fs = std::filesystem;

namespace {

// The config path meridianctl is given, relative to the cluster dir it
// runs in.
constexpr char kConfig[] = "topology.toml";
// `up --wait` (seconds) and the bound on one meridianctl run.
constexpr char kUpWait[] = "20";
constexpr milliseconds kCtlTimeout{40000};

using meridian::testing::Subreaper;
BOOST_TEST_GLOBAL_FIXTURE(Subreaper);

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) out.push_back(line);
  return out;
}

bool HasLine(const std::string& text, const std::string& line) {
  for (const std::string& l : Lines(text)) {
    if (l == line) return true;
  }
  return false;
}

using meridian::testing::CtlResult;

// Runs meridianctl with `args` in directory `cwd`; kills it after
// `timeout`.
CtlResult RunCtl(const std::string& cwd, const std::vector<std::string>& args,
                 milliseconds timeout = kCtlTimeout) {
  return meridian::testing::RunProgram(MERIDIAN_MERIDIANCTL, cwd, args, timeout);
}

// --- /proc ---------------------------------------------------------------

std::vector<std::string> Cmdline(pid_t pid) {
  std::string raw = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> argv;
  std::string arg;
  for (char c : raw) {
    if (c == '\0') {
      argv.push_back(arg);
      arg.clear();
    } else {
      arg += c;
    }
  }
  return argv;
}

std::string Link(pid_t pid, const char* what) {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/" + std::to_string(pid) + "/" + what, ec);
  return ec ? std::string() : p.string();
}

// The state letter of /proc/PID/stat ('\0' when there is no such process).
char State(pid_t pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return '\0';
  return stat[paren + 2];
}

// True when no process `pid` runs any more (a zombie counts as gone; one
// that is our child, as every orphaned node is, is reaped here).
bool Gone(pid_t pid) {
  if (pid <= 0) return true;
  waitpid(pid, nullptr, WNOHANG);
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  char s = State(pid);
  return s == '\0' || s == 'Z' || s == 'X';
}

bool HasArgPair(const std::vector<std::string>& argv, const std::string& a, const std::string& b) {
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == a && argv[i + 1] == b) return true;
  }
  return false;
}

// True when `pid` is a running meridiand for node `id` started in `dir`
// (so a recycled pid, or a node of another test, never matches).
bool IsOurNode(pid_t pid, const std::string& id, const std::string& dir) {
  if (Gone(pid)) return false;
  std::vector<std::string> argv = Cmdline(pid);
  if (argv.empty() || argv[0].find("meridiand") == std::string::npos) return false;
  if (!HasArgPair(argv, "--node", id)) return false;
  std::error_code ec;
  return fs::equivalent(Link(pid, "cwd"), dir, ec) && !ec;
}

std::string PidPath(const ClusterProcess& c, int i) { return c.data_dir(i) + ".pid"; }
std::string LogPath(const ClusterProcess& c, int i) { return c.data_dir(i) + ".log"; }

// The pid in node i's pid file; 0 when it is missing or not one number and
// a newline.
pid_t ReadPidFile(const ClusterProcess& c, int i) {
  std::string text = ReadFile(PidPath(c, i));
  if (text.size() < 2 || text.back() != '\n') return 0;
  text.pop_back();
  if (text.find_first_not_of("0123456789") != std::string::npos) return 0;
  long v = std::stol(text);
  return v > 0 ? static_cast<pid_t>(v) : 0;
}

bool Exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

// --- HTTP ----------------------------------------------------------------

// One request to `url`; false with *why on a failed exchange.
bool Call(const std::string& url, const std::string& method, const std::string& target,
          const std::string& body, ClientResponse* res, std::string* why,
          milliseconds timeout = milliseconds(2000)) {
  std::unique_ptr<HttpClient> client;
  meridian::Status st = HttpClient::Create(url, &client);
  if (st.ok()) {
    client->set_timeout(timeout);
    std::vector<std::pair<std::string, std::string>> headers;
    if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
    st = client->Request(method, target, body, headers, res);
  }
  if (!st.ok()) *why = method + " " + url + target + ": " + st.ToString();
  return st.ok();
}

json Health(const std::string& url, std::string* why) {
  ClientResponse res;
  if (!Call(url, "GET", "/v1/health", "", &res, why)) return json();
  json body = json::parse(res.body, nullptr, false);
  if (res.status != 200 || !body.is_object()) {
    *why = "GET /v1/health at " + url + ": " + std::to_string(res.status) + " " + res.body;
    return json();
  }
  return body;
}

// --- The guard -------------------------------------------------------------

// Stops whatever a test case started, however it ends: `meridianctl down`,
// then SIGKILL for any of the cluster's nodes still running (by pid file
// or remembered pid), then reaps. Prints the nodes' logs and meridianctl
// output files when the case failed.
class LaunchGuard {
 public:
  explicit LaunchGuard(const ClusterProcess& c) : c_(c) {}
  LaunchGuard(const LaunchGuard&) = delete;
  LaunchGuard& operator=(const LaunchGuard&) = delete;

  // Remembers the pids in the pid files now.
  void Remember() {
    for (int i = 0; i < c_.size(); ++i) {
      pid_t p = ReadPidFile(c_, i);
      if (p > 0) pids_.insert({p, i});
    }
  }

  ~LaunchGuard() {
    Remember();
    bool failed = CurrentTestFailed();
    if (Exists(c_.topology_path())) {
      CtlResult down = RunCtl(c_.dir(), {"down", "--config", kConfig, "--wait", "5"},
                              milliseconds(30000));
      if (!down.finished || down.exit_code != 0) {
        std::cerr << "LaunchGuard: " << down.Describe() << "\n";
      }
    }
    for (const auto& [pid, i] : pids_) {
      if (!IsOurNode(pid, c_.node_id(i), c_.dir())) continue;
      std::cerr << "LaunchGuard: " << c_.node_id(i) << " (pid " << pid
                << ") still runs after down; SIGKILL\n";
      ::kill(pid, SIGKILL);
      auto deadline = Clock::now() + milliseconds(5000);
      while (!Gone(pid) && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(10));
    }
    // Reap every orphan we inherited.
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    if (failed) {
      for (int i = 0; i < c_.size(); ++i) {
        std::cerr << "---- " << LogPath(c_, i) << " ----\n"
                  << ReadFile(LogPath(c_, i)) << "---- end of " << c_.node_id(i) << " log ----\n";
      }
    }
  }

 private:
  const ClusterProcess& c_;
  std::set<std::pair<pid_t, int>> pids_;
};

ClusterOptions Options() {
  ClusterOptions o;
  o.regions = 3;
  o.nodes_per_region = 1;
  o.cluster_name = "launcher-test";
  return o;
}

// What `up` must have done for every node: exit 0, each region listed with
// its node and URL, DATA_DIR.pid holding the pid of a meridiand of this
// cluster (its /proc exe is the meridiand binary, its command line the
// given config, node and flags), which /v1/health names as its own pid and
// calls writable. Returns the pids (0 for a node that failed).
std::vector<pid_t> CheckUp(const ClusterProcess& c, const CtlResult& up, bool fault_injection) {
  std::vector<pid_t> pids(c.size(), 0);
  BOOST_REQUIRE_MESSAGE(up.finished && up.exit_code == 0, up.Describe());
  std::error_code ec;
  const fs::path meridiand = fs::canonical(MERIDIAN_MERIDIAND, ec);
  BOOST_REQUIRE_MESSAGE(!ec, "cannot resolve " << MERIDIAN_MERIDIAND << ": " << ec.message());
  for (int i = 0; i < c.size(); ++i) {
    const std::string& id = c.node_id(i);
    BOOST_TEST_CONTEXT("node " << id << "; " << up.Describe()) {
      BOOST_TEST(HasLine(up.out, c.region(i) + "  " + id + "  " + c.url(i) + "  editor " +
                                     c.url(i) + "/demo/"),
                 "stdout lists region " << c.region(i) << ", " << id << ", " << c.url(i)
                                        << " and its editor");
      pid_t pid = ReadPidFile(c, i);
      BOOST_TEST_REQUIRE(pid > 0, PidPath(c, i) << " holds a pid: '" << ReadFile(PidPath(c, i))
                                                << "'");
      pids[i] = pid;
      BOOST_TEST(IsOurNode(pid, id, c.dir()), "pid " << pid << " is meridiand --node " << id
                                                     << " in " << c.dir());
      fs::path exe = fs::canonical(Link(pid, "exe"), ec);
      BOOST_TEST(exe == meridiand, "/proc/" << pid << "/exe is " << Link(pid, "exe"));
      std::vector<std::string> argv = Cmdline(pid);
      BOOST_TEST(HasArgPair(argv, "--config", kConfig));
      bool fi = false;
      for (const std::string& a : argv) fi = fi || a == "--enable-fault-injection";
      BOOST_TEST(fi == fault_injection, "--enable-fault-injection on the command line");
      BOOST_TEST(Exists(LogPath(c, i)), LogPath(c, i) << " exists");

      std::string why;
      json h = Health(c.url(i), &why);
      BOOST_TEST_REQUIRE(h.is_object(), why);
      BOOST_TEST(h.value("node", "") == id, h.dump());
      BOOST_TEST(h.value("pid", int64_t{0}) == static_cast<int64_t>(pid),
                 "/v1/health pid is the pid file's: " << h.dump());
      BOOST_TEST(h.value("writable", false) == true, h.dump());
    }
  }
  return pids;
}

// POST /v1/admin/faults (a no-op fault set) at every node answers `want`.
void CheckFaults(const ClusterProcess& c, int want) {
  for (int i = 0; i < c.size(); ++i) {
    ClientResponse res;
    std::string why;
    BOOST_TEST_REQUIRE(
        Call(c.url(i), "POST", "/v1/admin/faults", R"({"drop": [], "delay_ms": {}})", &res, &why),
        why);
    BOOST_TEST(res.status == want, c.node_id(i) << " POST /v1/admin/faults: " << res.status
                                                << " " << res.body);
  }
}

// `down` stopped every node of `pids`: exit 0, "ID: stopped (pid P)" each,
// the processes gone (down waits for them) and the pid files removed.
void CheckDown(const ClusterProcess& c, const CtlResult& down, const std::vector<pid_t>& pids) {
  BOOST_REQUIRE_MESSAGE(down.finished && down.exit_code == 0, down.Describe());
  for (int i = 0; i < c.size(); ++i) {
    BOOST_TEST_CONTEXT("node " << c.node_id(i) << "; " << down.Describe()) {
      BOOST_TEST(HasLine(down.out,
                         c.node_id(i) + ": stopped (pid " + std::to_string(pids[i]) + ")"));
      BOOST_TEST(Gone(pids[i]), "pid " << pids[i] << " has exited when down returns");
      BOOST_TEST(!Exists(PidPath(c, i)), PidPath(c, i) << " is removed");
      BOOST_TEST(Exists(LogPath(c, i)), LogPath(c, i) << " is kept");
    }
  }
}

}  // namespace

// The ./dev up path: up with fault injection (meridiand found next to
// meridianctl), replication, up again, down, down again.
BOOST_AUTO_TEST_CASE(up_replicates_is_idempotent_and_down_stops_all) {
  ClusterProcess cluster(Options());
  LaunchGuard guard(cluster);
  for (int i = 0; i < cluster.size(); ++i) {
    BOOST_REQUIRE_MESSAGE(cluster.data_dir(i).front() == '/',
                          "ClusterProcess writes absolute data dirs: " << cluster.data_dir(i));
    BOOST_REQUIRE(!Exists(PidPath(cluster, i)));
  }

  // 1. up starts every node.
  const auto t_up = Clock::now();
  CtlResult up = RunCtl(cluster.dir(),
                        {"up", "--config", kConfig, "--enable-fault-injection", "--wait", kUpWait});
  guard.Remember();
  BOOST_TEST_MESSAGE("up took " << std::chrono::duration_cast<milliseconds>(Clock::now() - t_up)
                                         .count()
                                << " ms");
  std::vector<pid_t> pids = CheckUp(cluster, up, /*fault_injection=*/true);
  for (int i = 0; i < cluster.size(); ++i) {
    BOOST_TEST(HasLine(up.out, cluster.node_id(i) + ": started (pid " + std::to_string(pids[i]) +
                                   ", log " + LogPath(cluster, i) + ")"),
               up.Describe());
  }

  // 5 (with the flag). Faults are served.
  CheckFaults(cluster, 200);

  // 2. A PUT at each node is read with the same value at the other two
  // within 1 s of its reply.
  std::mt19937_64 rng(std::random_device{}());
  for (int w = 0; w < cluster.size(); ++w) {
    const std::string key = "launcher/greeting-" + cluster.node_id(w);
    const json value = {{"text", "hello from " + cluster.node_id(w)},
                        {"nonce", static_cast<int64_t>(rng() >> 1)}};
    ClientResponse res;
    std::string why;
    BOOST_TEST_REQUIRE(Call(cluster.url(w), "PUT", "/v1/kv/" + key, value.dump(), &res, &why),
                       why);
    BOOST_TEST_REQUIRE(res.status == 200, "PUT at " << cluster.node_id(w) << ": " << res.status
                                                    << " " << res.body);
    const auto written = Clock::now();
    const auto deadline = written + milliseconds(1000);
    for (int r = 0; r < cluster.size(); ++r) {
      if (r == w) continue;
      std::string last;
      bool seen = false;
      for (int attempt = 0; attempt < 1000 && !seen; ++attempt) {
        ClientResponse got;
        if (Call(cluster.url(r), "GET", "/v1/kv/" + key, "", &got, &last, milliseconds(500))) {
          last = std::to_string(got.status) + " " + got.body;
          json b = json::parse(got.body, nullptr, false);
          seen = got.status == 200 && b.is_object() && b.contains("value") && b["value"] == value;
        }
        if (seen || Clock::now() >= deadline) break;
        std::this_thread::sleep_for(milliseconds(5));
      }
      auto ms = std::chrono::duration_cast<milliseconds>(Clock::now() - written).count();
      BOOST_TEST(seen, key << " written at " << cluster.node_id(w) << " read at "
                           << cluster.node_id(r) << " within 1000 ms (after " << ms
                           << " ms the last reply: " << last << ")");
      BOOST_TEST_MESSAGE(key << " at " << cluster.node_id(r) << " after " << ms << " ms");
    }
  }

  // 3. up again: nothing new, the same processes.
  CtlResult again = RunCtl(cluster.dir(), {"up", "--config", kConfig, "--enable-fault-injection",
                                           "--wait", kUpWait});
  guard.Remember();
  std::vector<pid_t> pids_again = CheckUp(cluster, again, /*fault_injection=*/true);
  BOOST_TEST(pids_again == pids, "the pid files are unchanged");
  for (int i = 0; i < cluster.size(); ++i) {
    BOOST_TEST(HasLine(again.out, cluster.node_id(i) + ": already running (pid " +
                                      std::to_string(pids[i]) + ")"),
               again.Describe());
    BOOST_TEST(IsOurNode(pids[i], cluster.node_id(i), cluster.dir()));
  }
  BOOST_TEST(again.out.find("started") == std::string::npos, again.Describe());

  // 4. down stops them all; down again is safe.
  CtlResult down = RunCtl(cluster.dir(), {"down", "--config", kConfig, "--wait", "10"});
  CheckDown(cluster, down, pids);
  for (int i = 0; i < cluster.size(); ++i) {
    std::string why;
    ClientResponse res;
    BOOST_TEST(!Call(cluster.url(i), "GET", "/v1/health", "", &res, &why, milliseconds(500)),
               cluster.url(i) << " no longer answers");
  }
  CtlResult down2 = RunCtl(cluster.dir(), {"down", "--config", kConfig});
  BOOST_REQUIRE_MESSAGE(down2.finished && down2.exit_code == 0, down2.Describe());
  for (int i = 0; i < cluster.size(); ++i) {
    BOOST_TEST(HasLine(down2.out, cluster.node_id(i) + ": not running"), down2.Describe());
  }
}

// 5 (without the flag), with --meridiand naming the binary: faults are
// 404; the data written by a previous run is still there after a restart.
BOOST_AUTO_TEST_CASE(up_without_fault_injection_and_restart_keeps_data) {
  ClusterProcess cluster(Options());
  LaunchGuard guard(cluster);
  const std::vector<std::string> up_args = {"up",     "--config", kConfig,           "--wait",
                                            kUpWait, "--meridiand", MERIDIAN_MERIDIAND};
  CtlResult up = RunCtl(cluster.dir(), up_args);
  guard.Remember();
  std::vector<pid_t> pids = CheckUp(cluster, up, /*fault_injection=*/false);
  CheckFaults(cluster, 404);

  ClientResponse res;
  std::string why;
  BOOST_TEST_REQUIRE(Call(cluster.url(1), "PUT", "/v1/kv/kept", "41", &res, &why), why);
  BOOST_TEST_REQUIRE(res.status == 200, res.status << " " << res.body);

  CheckDown(cluster, RunCtl(cluster.dir(), {"down", "--config", kConfig, "--wait", "10"}), pids);

  CtlResult up2 = RunCtl(cluster.dir(), up_args);
  guard.Remember();
  std::vector<pid_t> pids2 = CheckUp(cluster, up2, /*fault_injection=*/false);
  for (int i = 0; i < cluster.size(); ++i) {
    BOOST_TEST(HasLine(up2.out, cluster.node_id(i) + ": started (pid " +
                                    std::to_string(pids2[i]) + ", log " + LogPath(cluster, i) +
                                    ")"),
               up2.Describe());
  }
  BOOST_TEST_REQUIRE(Call(cluster.url(1), "GET", "/v1/kv/kept", "", &res, &why), why);
  json b = json::parse(res.body, nullptr, false);
  BOOST_TEST((res.status == 200 && b.is_object() && b.value("value", json()) == json(41)),
             res.status << " " << res.body);

  CheckDown(cluster, RunCtl(cluster.dir(), {"down", "--config", kConfig, "--wait", "10"}), pids2);
}

// The first node lost its disk before the others bootstrapped from it:
// they hold only incarnations waiting to bootstrap (no data), so up treats
// the cluster as new and starts the first node with --bootstrap; without
// it no node could ever take writes.
BOOST_AUTO_TEST_CASE(a_cluster_where_no_node_bootstrapped_starts_anew) {
  ClusterProcess cluster(Options());
  LaunchGuard guard(cluster);
  for (int i = 1; i < cluster.size(); ++i) {
    std::unique_ptr<storage::Store> store;
    Status st = storage::Store::Open(cluster.data_dir(i), storage::StoreOptions(), &store);
    BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
    storage::WriteBatch batch;
    storage::InitIdentity(crdt::ReplicaId{cluster.node_id(i), 7}, &batch);
    storage::PutBootstrapPending(true, &batch);
    st = store->Write(&batch);
    BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  }
  CtlResult up = RunCtl(cluster.dir(), {"up", "--config", kConfig, "--wait", kUpWait,
                                        "--meridiand", MERIDIAN_MERIDIAND});
  guard.Remember();
  BOOST_TEST(HasLine(up.out, "new cluster: " + cluster.node_id(0) + " starts with --bootstrap"),
             up.Describe());
  std::vector<pid_t> pids = CheckUp(cluster, up, /*fault_injection=*/false);
  bool flag = false;
  for (const std::string& a : Cmdline(pids[0])) flag = flag || a == "--bootstrap";
  BOOST_TEST(flag, "node 0 runs with --bootstrap");

  ClientResponse res;
  std::string why;
  BOOST_TEST_REQUIRE(Call(cluster.url(2), "PUT", "/v1/kv/anew", "5", &res, &why), why);
  BOOST_TEST(res.status == 200, res.status << " " << res.body);
  CheckDown(cluster, RunCtl(cluster.dir(), {"down", "--config", kConfig, "--wait", "10"}), pids);

  // Now every node has bootstrapped: up again is no new cluster.
  CtlResult up2 = RunCtl(cluster.dir(), {"up", "--config", kConfig, "--wait", kUpWait,
                                         "--meridiand", MERIDIAN_MERIDIAND});
  guard.Remember();
  BOOST_TEST(up2.out.find("new cluster") == std::string::npos, up2.Describe());
  std::vector<pid_t> pids2 = CheckUp(cluster, up2, /*fault_injection=*/false);
  CheckDown(cluster, RunCtl(cluster.dir(), {"down", "--config", kConfig, "--wait", "10"}), pids2);
}

// 6. Bad configs and binaries: a non-zero exit naming the problem, and
// nothing left running.
BOOST_AUTO_TEST_CASE(bad_config_or_binary_starts_nothing) {
  ClusterProcess cluster(Options());
  LaunchGuard guard(cluster);
  auto nothing_runs = [&](const std::string& what) {
    // No meridiand started in the cluster dir, whatever its node.
    for (const auto& entry : fs::directory_iterator("/proc")) {
      const std::string name = entry.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      pid_t pid = static_cast<pid_t>(std::stol(name));
      for (int i = 0; i < cluster.size(); ++i) {
        BOOST_TEST(!IsOurNode(pid, cluster.node_id(i), cluster.dir()),
                   what << ": pid " << pid << " runs " << cluster.node_id(i));
      }
    }
  };

  // A topology file that does not exist.
  const std::string missing = "no-such-dir/no-such-topology.toml";
  for (const char* cmd : {"up", "down"}) {
    CtlResult r = RunCtl(cluster.dir(), {cmd, "--config", missing, "--wait", "5"});
    BOOST_TEST_CONTEXT(r.Describe()) {
      BOOST_TEST(r.finished);
      BOOST_TEST(r.exit_code == 1);
      BOOST_TEST(r.err.find(missing) != std::string::npos, "stderr names " << missing);
      BOOST_TEST(r.out.find("started") == std::string::npos);
    }
  }
  // A topology file that does not parse.
  {
    std::ofstream(cluster.dir() + "/broken.toml") << "[cluster\nname = \n";
    CtlResult r = RunCtl(cluster.dir(), {"up", "--config", "broken.toml", "--wait", "5"});
    BOOST_TEST_CONTEXT(r.Describe()) {
      BOOST_TEST(r.finished);
      BOOST_TEST(r.exit_code == 1);
      BOOST_TEST(r.err.find("broken.toml") != std::string::npos, "stderr names broken.toml");
    }
  }
  // No --config at all: usage (exit 2).
  {
    CtlResult r = RunCtl(cluster.dir(), {"up"});
    BOOST_TEST(r.finished);
    BOOST_TEST(r.exit_code == 2, r.Describe());
    BOOST_TEST(r.err.find("--config") != std::string::npos, r.Describe());
  }
  for (int i = 0; i < cluster.size(); ++i) {
    BOOST_TEST(!Exists(PidPath(cluster, i)), PidPath(cluster, i) << " was not written");
  }
  nothing_runs("after a bad config");

  // A meridiand that cannot be run: up fails naming a node and quoting its
  // log, and stops what it started.
  {
    const std::string bogus = cluster.dir() + "/no-such-meridiand";
    CtlResult r = RunCtl(cluster.dir(),
                         {"up", "--config", kConfig, "--wait", "5", "--meridiand", bogus});
    guard.Remember();
    BOOST_TEST_CONTEXT(r.Describe()) {
      BOOST_TEST(r.finished);
      BOOST_TEST(r.exit_code == 1);
      BOOST_TEST(r.err.find("exited while starting") != std::string::npos);
      BOOST_TEST(r.err.find("cannot run " + bogus) != std::string::npos,
                 "stderr quotes the node's log");
    }
    nothing_runs("after up with a missing meridiand");
    // Whether every pid file is removed is checked (strictly) by
    // failed_up_stops_what_it_started; here only that none names a live
    // process.
    for (int i = 0; i < cluster.size(); ++i) {
      pid_t p = ReadPidFile(cluster, i);
      BOOST_TEST(Gone(p), PidPath(cluster, i) << " names pid " << p << ", still running");
    }
  }
}

// A node that cannot start (its HTTP port is taken, connections to it
// refused): up exits 1 naming it and quoting its log, stops the two nodes
// it had started, and leaves no pid file behind.
BOOST_AUTO_TEST_CASE(failed_up_stops_what_it_started) {
  ClusterProcess cluster(Options());
  LaunchGuard guard(cluster);
  // Bound without SO_REUSEADDR, so meridiand's bind fails even with it.
  int fd = BindLoopback(cluster.http_port(0), /*listen=*/false);
  BOOST_TEST_REQUIRE(fd >= 0, "holding port " << cluster.http_port(0) << ": "
                                              << std::strerror(errno));
  CtlResult r = RunCtl(cluster.dir(), {"up", "--config", kConfig, "--wait", "10"});
  guard.Remember();
  ::close(fd);
  BOOST_TEST_CONTEXT(r.Describe()) {
    BOOST_TEST(r.finished);
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(r.err.find(cluster.node_id(0) + " exited while starting") != std::string::npos);
    BOOST_TEST(r.err.find("cannot listen on 127.0.0.1:" + std::to_string(cluster.http_port(0))) !=
                   std::string::npos,
               "stderr quotes the node's log");
    BOOST_TEST(HasLine(r.out, "stopped the nodes this call had started"));
    for (int i = 0; i < cluster.size(); ++i) {
      BOOST_TEST(r.out.find(cluster.node_id(i) + ": started (pid ") != std::string::npos);
    }
  }
  for (int i = 0; i < cluster.size(); ++i) {
    BOOST_TEST_CONTEXT("node " << cluster.node_id(i)) {
      pid_t p = ReadPidFile(cluster, i);
      BOOST_TEST(Gone(p), PidPath(cluster, i) << " names pid " << p << ", still running");
      // Fails today for the node that exited: launcher.cc's ClusterUp
      // erases it from `started` before undo(), which removes the pid files
      // of the nodes still in `started` only.
      BOOST_TEST(!Exists(PidPath(cluster, i)),
                 PidPath(cluster, i) << " is removed (it holds '" << ReadFile(PidPath(cluster, i))
                                     << "')");
    }
  }
}

// up honours --wait when a node's port accepts connections and never
// answers (HttpClient's timeouts hold for a peer that never replies).
BOOST_AUTO_TEST_CASE(up_ends_within_wait_when_a_port_never_answers) {
  ClusterProcess cluster(Options());
  LaunchGuard guard(cluster);
  // Listening: connections are accepted and never answered.
  int fd = BindLoopback(cluster.http_port(0), /*listen=*/true);
  BOOST_TEST_REQUIRE(fd >= 0, "holding port " << cluster.http_port(0) << ": "
                                              << std::strerror(errno));
  const auto start = Clock::now();
  CtlResult r = RunCtl(cluster.dir(), {"up", "--config", kConfig, "--wait", "3"},
                       milliseconds(15000));
  guard.Remember();
  ::close(fd);
  auto ms = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
  BOOST_TEST(r.finished, "up --wait 3 ended within 15 s (it ran " << ms << " ms)");
  BOOST_TEST(r.exit_code == 1, r.Describe());
  for (int i = 0; i < cluster.size(); ++i) {
    pid_t p = ReadPidFile(cluster, i);
    BOOST_TEST(Gone(p), PidPath(cluster, i) << " names pid " << p << ", still running");
  }
}
