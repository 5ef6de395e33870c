// replication_bench: what replication costs and how fast it is, on a
// three-region cluster of real meridiand processes (issue 5,
// `./dev bench replication`).
//
//   replication_bench --meridiand PATH [--topology regions/local.toml] [options]
//
// The cluster is a copy of the topology (same regions, node ids and
// [cluster] settings) with free loopback ports below the kernel's ephemeral
// range and data dirs in a fresh temp dir (mkdtemp under TMPDIR). Every node
// runs with --enable-fault-injection. The nodes and the temp dir are
// removed on exit, on failure and on SIGINT or SIGTERM; each node also dies
// with this program (PR_SET_PDEATHSIG).
//
// In one run, three phases:
//   1. Replication lag. An open-loop paced load (a POST /v1/batch of
//      --batch puts per region every few ms, from a schedule fixed in
//      advance, over --conns connections per region so that a slow reply
//      does not delay the next send) at --lag-rate writes/s spread evenly
//      over the regions for --lag-seconds. One GET /v1/watch stream per
//      region (server-sent events) records when each key becomes visible
//      there. Lag of a (write, other region) pair = the event's arrival at
//      that region's stream minus the writer's receipt of the batch reply,
//      both on this process's steady clock (one machine); it is negative
//      when the event came first, and counted as it is.
//   2. Convergence after a partition. Every gossip link is cut (POST
//      /v1/admin/faults {"drop": [every peer]} on every node), --keys
//      distinct keys are written split over the regions, then the faults
//      are cleared; the figure is the time from the heal until every node's
//      /v1/status state_digest is the same (polled every 20 ms, 120 s at
//      most). The differing bytes are, for each node, the key and stored
//      envelope (computed with the node's own ApplyOperation) of every key
//      it lacks; the bytes sent are the growth of
//      meridian_gossip_bytes_total{dir="out"} summed over the nodes.
//   3. Gossip overhead. After a quiet period measuring the heartbeat and
//      anti-entropy baseline (no writes), a paced --overhead-rate load of
//      new keys; the gossip bytes out (all nodes), less the baseline, per
//      write and per delivery (a write must reach every other region),
//      against the payload (key + stored value bytes).
// Before phases 2 and 3 the cluster settles: equal digests and no delta
// unacknowledged (90 s at most). Each phase also prints the CPU the nodes
// and this program used and what the nodes' /v1/status counters say they
// did (deltas shipped, resends, anti-entropy rounds and states, group
// commits), to explain its figures.
//
// Exit status: 0 when every figure was measured (targets met or not), 1
// when something failed (a node died, a write failed, replication or
// convergence did not finish in time) or a figure could not be measured
// (nodes without the gossip byte counters), 2 for bad usage.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "crdt/register.h"
#include "node/http_client.h"
#include "node/operation.h"
#include "node/topology.h"

namespace meridian::bench {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
using node::ClientResponse;
using node::HttpClient;
using ull = unsigned long long;

constexpr int64_t kUnseen = INT64_MIN;
constexpr size_t kPartitionBatch = 1000;  // puts per request while partitioned
constexpr auto kStatusPoll = std::chrono::milliseconds(20);
constexpr auto kConvergenceLimit = std::chrono::seconds(120);
constexpr auto kSettleLimit = std::chrono::seconds(90);
constexpr auto kVisibleLimit = std::chrono::seconds(30);  // after the lag load ends

struct Options {
  std::string meridiand;
  std::string topology = "regions/local.toml";
  double lag_rate = 10000, lag_seconds = 10;
  size_t batch = 20;
  size_t conns = 4;
  size_t keys = 100000;
  double overhead_rate = 2000, overhead_seconds = 5, baseline_seconds = 3;
  size_t value_bytes = 100;
};

// Set by the signal thread: what the main thread says after it is noise.
std::atomic<bool> g_interrupted{false};

void Say(const std::string& s) {
  if (!g_interrupted.load()) std::fprintf(stderr, "replication_bench: %s\n", s.c_str());
}

std::string Fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string Fmt(const char* f, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// --- Children and cleanup ---------------------------------------------------
// Every node pid and the temp dir are registered here, so that the signal
// thread can remove them whatever the main thread is doing.

struct Registry {
  std::mutex mu;
  std::vector<pid_t> pids;
  std::string temp_dir;
};
Registry& Reg() {
  static Registry r;
  return r;
}

void KillAllAndRemove() {
  std::lock_guard<std::mutex> lock(Reg().mu);
  for (pid_t p : Reg().pids) kill(p, SIGKILL);
  for (pid_t p : Reg().pids) waitpid(p, nullptr, 0);
  Reg().pids.clear();
  std::error_code ec;
  if (!Reg().temp_dir.empty()) std::filesystem::remove_all(Reg().temp_dir, ec);
  Reg().temp_dir.clear();
}

// SIGINT and SIGTERM are blocked in every thread and taken here.
void SignalThread(sigset_t set) {
  int sig = 0;
  sigwait(&set, &sig);
  Say(std::string(sig == SIGINT ? "SIGINT" : "SIGTERM") +
      ": killing the nodes, removing the temp dir");
  g_interrupted = true;
  KillAllAndRemove();
  _exit(1);
}

// Forks and execs argv[0] with its output appended to `log`, in `cwd`. The
// child dies with this process's main thread (PR_SET_PDEATHSIG), starts
// with no blocked signals and holds no descriptor of ours above stderr.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& cwd, const std::string& log) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();
  std::lock_guard<std::mutex> lock(Reg().mu);
  pid_t pid = fork();
  if (pid != 0) {
    if (pid > 0) Reg().pids.push_back(pid);
    return pid;
  }
  // Child: async-signal-safe calls only.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(126);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);
  int in = open("/dev/null", O_RDONLY);
  int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) _exit(126);
  for (int fd = 3; fd < 1024; ++fd) close(fd);
  if (chdir(cwd.c_str()) != 0) _exit(126);
  execv(args[0], args.data());
  _exit(127);
}

// SIGTERM (unless `term` is false), up to `grace` for an exit, then
// SIGKILL; always reaped.
void StopChild(pid_t pid, std::chrono::milliseconds grace, bool term = true) {
  if (pid <= 0) return;
  if (term) kill(pid, SIGTERM);
  auto deadline = Clock::now() + grace;
  while (waitpid(pid, nullptr, WNOHANG) == 0) {
    if (Clock::now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::lock_guard<std::mutex> lock(Reg().mu);
  auto& p = Reg().pids;
  p.erase(std::remove(p.begin(), p.end(), pid), p.end());
}

// CPU seconds (user + system, all threads) of a process so far.
double CpuSeconds(pid_t pid) {
  std::string s = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = s.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream in(s.substr(paren + 2));
  std::string skip;
  for (int field = 3; field < 14; ++field) in >> skip;  // state .. cmajflt
  ull user = 0, sys = 0;
  in >> user >> sys;
  return static_cast<double>(user + sys) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// `n` distinct loopback ports, free when probed, below the ephemeral range
// (so that no outgoing connection takes one before its node binds it).
bool PickPorts(size_t n, std::vector<uint16_t>* out) {
  unsigned low = 32768, high = 60999;
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  if (!(range >> low >> high) || low < 12000) low = 32768;
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<unsigned> pick(10000, low - 1);
  out->clear();
  for (int tries = 0; tries < 10000 && out->size() < n; ++tries) {
    auto port = static_cast<uint16_t>(pick(rng));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    bool free = fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    if (fd >= 0) close(fd);
    if (free && std::find(out->begin(), out->end(), port) == out->end()) out->push_back(port);
  }
  return out->size() == n;
}

// --- HTTP -------------------------------------------------------------------

std::unique_ptr<HttpClient> NewClient(const std::string& url) {
  std::unique_ptr<HttpClient> c;
  if (HttpClient::Create(url, &c).ok()) c->set_timeout(std::chrono::milliseconds(30000));
  return c;
}

// A request that must answer 200 with a JSON body.
bool JsonCall(HttpClient* c, const std::string& method, const std::string& target,
              const std::string& body, json* out, std::string* why) {
  ClientResponse r;
  std::vector<std::pair<std::string, std::string>> h;
  if (!body.empty()) h.emplace_back("Content-Type", "application/json");
  Status st = c->Request(method, target, body, h, &r);
  *why = method + " " + target + ": ";
  if (!st.ok()) return *why += st.ToString(), false;
  if (r.status != 200) return *why += Fmt("HTTP %d ", r.status) + r.body, false;
  try {
    *out = json::parse(r.body);
  } catch (const json::exception& e) {
    return *why += std::string("bad JSON: ") + e.what(), false;
  }
  return true;
}

// --- The cluster ------------------------------------------------------------

struct NodeProc {
  std::string id, url, log, data_dir;
  uint16_t http = 0, gossip = 0;
  pid_t pid = -1;
  std::unique_ptr<HttpClient> client;  // the main thread's connection
};

class Cluster {
 public:
  ~Cluster() {
    for (NodeProc& n : nodes_) StopChild(n.pid, std::chrono::milliseconds(10000));
    KillAllAndRemove();
  }

  // Makes the temp dir; starts nothing.
  bool Create(const node::Topology& base, const std::string& meridiand, std::string* why) {
    base_ = base;
    meridiand_ = meridiand;
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp ? tmp : "/tmp") + "/meridian-replication-bench-XXXXXX";
    {
      std::lock_guard<std::mutex> lock(Reg().mu);
      if (mkdtemp(tmpl.data()) == nullptr) {
        *why = "mkdtemp " + tmpl + ": " + std::strerror(errno);
        return false;
      }
      dir_ = Reg().temp_dir = tmpl;
    }
    for (const node::NodeConfig* n : base.AllNodes()) {
      NodeProc p;
      p.id = n->id;
      p.log = dir_ + "/" + n->id + ".log";
      p.data_dir = dir_ + "/" + n->id;
      nodes_.push_back(std::move(p));
    }
    if (nodes_.size() != base.regions.size() || nodes_.size() < 2) {
      *why = base.file + ": the bench wants one node in each of two or more regions";
      return false;
    }
    // A meridiand with --bootstrap (issue 5) starts the first node of a new
    // cluster with it; the others bootstrap from that node.
    pid_t pid = Spawn({meridiand, "--help"}, dir_, dir_ + "/help.txt");
    StopChild(pid, std::chrono::milliseconds(5000), false);
    bootstrap_flag_ = ReadFile(dir_ + "/help.txt").find("--bootstrap") != std::string::npos;
    return true;
  }

  // Starts every node and waits until each is writable and sees every peer
  // up. When a node could not bind its port, starts over on new ports
  // (three attempts).
  bool Start(std::string* why) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      std::vector<uint16_t> ports;
      if (!PickPorts(2 * nodes_.size(), &ports)) return *why = "no free loopback ports", false;
      for (size_t i = 0; i < nodes_.size(); ++i) {
        nodes_[i].http = ports[2 * i];
        nodes_[i].gossip = ports[2 * i + 1];
        nodes_[i].url = "http://127.0.0.1:" + std::to_string(nodes_[i].http);
        nodes_[i].client = NewClient(nodes_[i].url);
      }
      if (!WriteTopology(why)) return false;
      for (size_t i = 0; i < nodes_.size(); ++i) {
        std::vector<std::string> argv = {meridiand_, "--config",   topology_,
                                         "--node",   nodes_[i].id, "--enable-fault-injection"};
        if (i == 0 && bootstrap_flag_) argv.push_back("--bootstrap");
        nodes_[i].pid = Spawn(argv, dir_, nodes_[i].log);
        if (nodes_[i].pid < 0) return *why = std::string("fork: ") + std::strerror(errno), false;
      }
      if (WaitReady(std::chrono::seconds(30), why)) return true;
      for (NodeProc& n : nodes_) {
        StopChild(n.pid, std::chrono::milliseconds(2000));
        n.pid = -1;
        std::error_code ec;
        std::filesystem::remove_all(n.data_dir, ec);
      }
      if (why->find("in use") == std::string::npos) return false;
      Say("a port was taken before its node could bind it; starting over on new ports");
    }
    return false;
  }

  // Empty when every node runs; otherwise which exited, with its log's tail.
  std::string Dead() {
    std::string out;
    for (NodeProc& n : nodes_) {
      int status = 0;
      if (n.pid > 0 && waitpid(n.pid, &status, WNOHANG) == n.pid) {
        out += Fmt("node %s exited (wait status %d); its log ends:\n", n.id.c_str(), status) +
               Tail(n.log, 1500);
        n.pid = -1;
      }
    }
    return out;
  }

  void PrintLogs() const {
    for (const NodeProc& n : nodes_) {
      std::fprintf(stderr, "---- %s log (tail)\n%s\n", n.id.c_str(), Tail(n.log, 2000).c_str());
    }
  }

  double NodesCpu() const {
    double s = 0;
    for (const NodeProc& n : nodes_) s += n.pid > 0 ? CpuSeconds(n.pid) : 0;
    return s;
  }

  size_t size() const { return nodes_.size(); }
  NodeProc& node(size_t i) { return nodes_[i]; }
  const std::string& dir() const { return dir_; }
  bool bootstrap_flag() const { return bootstrap_flag_; }

 private:
  static std::string Tail(const std::string& path, size_t bytes) {
    std::string s = ReadFile(path);
    return s.size() > bytes ? "..." + s.substr(s.size() - bytes) : s;
  }

  // The base topology with this run's ports and data dirs.
  bool WriteTopology(std::string* why) {
    std::ostringstream t;
    t << "# Written by replication_bench from " << base_.file << "\n[cluster]\n"
      << "name = \"" << base_.cluster_name << "\"\n"
      << "max_clock_offset_ms = " << base_.max_clock_offset_ms << "\n"
      << "heartbeat_interval_ms = " << base_.heartbeat_interval_ms << "\n"
      << "anti_entropy_interval_ms = " << base_.anti_entropy_interval_ms << "\n"
      << "max_body_bytes = " << base_.max_body_bytes << "\n"
      << "sync = " << (base_.sync ? "true" : "false") << "\n";
    size_t i = 0;
    for (const node::RegionConfig& r : base_.regions) {
      t << "\n[[region]]\nname = \"" << r.name << "\"\n";
      for (const node::NodeConfig& n : r.nodes) {
        const NodeProc& p = nodes_[i++];
        t << "\n  [[region.node]]\n  id = \"" << n.id << "\"\n"
          << "  http = \"127.0.0.1:" << p.http << "\"\n"
          << "  gossip = \"tcp://127.0.0.1:" << p.gossip << "\"\n"
          << "  data_dir = \"" << p.data_dir << "\"\n"
          << "  sync = " << (n.sync ? "true" : "false") << "\n";
      }
    }
    topology_ = dir_ + "/topology.toml";
    std::ofstream(topology_) << t.str();
    node::Topology check;
    Status st = node::LoadTopology(topology_, &check);
    if (!st.ok()) *why = "the generated topology does not load: " + st.ToString();
    return st.ok();
  }

  bool WaitReady(std::chrono::seconds limit, std::string* why) {
    auto deadline = Clock::now() + limit;
    std::string last;
    while (Clock::now() < deadline) {
      std::string dead = Dead();
      if (!dead.empty()) return *why = dead, false;
      bool ready = true;
      for (size_t i = 0; i < nodes_.size() && ready; ++i) {
        json health, status;
        HttpClient* c = nodes_[i].client.get();
        ready = JsonCall(c, "GET", "/v1/health", "", &health, &last) &&
                JsonCall(c, "GET", "/v1/status", "", &status, &last);
        if (ready && !health.value("writable", true)) {
          ready = false;
          last = nodes_[i].id + " not writable: " + health.value("reason", std::string());
        }
        for (const json& p : ready ? status["peers"] : json::array()) {
          if (p.value("state", std::string()) != "up") {
            ready = false;
            last = nodes_[i].id + " sees " + p.value("node", std::string()) + " " +
                   p.value("state", std::string());
          }
        }
      }
      if (ready) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    *why = Fmt("the cluster was not ready (writable, every peer up) within %llds; last: ",
               static_cast<long long>(limit.count())) +
           last;
    return false;
  }

  node::Topology base_;
  std::string meridiand_, dir_, topology_;
  bool bootstrap_flag_ = false;
  std::vector<NodeProc> nodes_;
};

// Every node's /v1/status, in node order.
bool AllStatus(Cluster* c, std::vector<json>* out, std::string* why) {
  out->assign(c->size(), json());
  for (size_t i = 0; i < c->size(); ++i) {
    if (!JsonCall(c->node(i).client.get(), "GET", "/v1/status", "", &(*out)[i], why)) return false;
  }
  return true;
}

bool SameDigest(const std::vector<json>& st) {
  for (const json& s : st) {
    if (s.value("state_digest", "") != st[0].value("state_digest", "")) return false;
  }
  return true;
}

// Waits until every digest is the same and no node holds a delta a peer
// has not acknowledged: nothing left to replicate.
bool WaitSettled(Cluster* c, std::string* why) {
  auto deadline = Clock::now() + kSettleLimit;
  while (Clock::now() < deadline) {
    std::string dead = c->Dead();
    if (!dead.empty()) return *why = dead, false;
    std::vector<json> st;
    bool settled = AllStatus(c, &st, why) && SameDigest(st);
    for (const json& s : settled ? st : std::vector<json>()) {
      for (const json& p : s["peers"]) settled = settled && p.value("unacked_deltas", 0) == 0;
    }
    if (settled) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  *why = Fmt("no equal digests with nothing unacknowledged within %llds",
             static_cast<long long>(kSettleLimit.count()));
  return false;
}

// Sum over the nodes of meridian_gossip_bytes_total{...dir="out"...};
// nullopt when a node does not export it. False when /metrics fails.
bool GossipBytesOut(Cluster* c, std::optional<uint64_t>* out, std::string* why) {
  const std::string name = "meridian_gossip_bytes_total{";
  uint64_t sum = 0;
  out->reset();
  for (size_t i = 0; i < c->size(); ++i) {
    ClientResponse r;
    Status st = c->node(i).client->Request("GET", "/metrics", "", {}, &r);
    if (!st.ok() || r.status != 200) {
      *why = "GET /metrics of " + c->node(i).id + ": " + (st.ok() ? r.body : st.ToString());
      return false;
    }
    bool found = false;
    std::istringstream lines(r.body);
    for (std::string line; std::getline(lines, line);) {
      size_t close = line.find('}');
      if (line.compare(0, name.size(), name) != 0 || close == std::string::npos ||
          line.substr(0, close).find("dir=\"out\"") == std::string::npos) {
        continue;
      }
      sum += std::strtoull(line.c_str() + close + 1, nullptr, 10);
      found = true;
    }
    if (!found) return true;
  }
  *out = sum;
  return true;
}

// --- Keys and time tables ---------------------------------------------------

// PREFIX/<region>/<8-digit sequence>: fixed width, so every key of a phase
// has the same size.
std::string BenchKey(const std::string& prefix, size_t region, uint64_t seq) {
  return prefix + Fmt("/%zu/%08llu", region, static_cast<ull>(seq));
}

// One time (ns since the bench's epoch, kUnseen until set) per (region,
// sequence). Each slot has one writer thread; readers may look any time.
class TimeTable {
 public:
  TimeTable(size_t regions, size_t per_region) : per_region_(per_region), t_(regions * per_region) {
    for (auto& x : t_) x.store(kUnseen, std::memory_order_relaxed);
  }
  std::atomic<int64_t>* at(size_t region, uint64_t seq) {
    size_t i = region * per_region_ + seq;
    return seq < per_region_ && i < t_.size() ? &t_[i] : nullptr;
  }

 private:
  size_t per_region_;
  std::vector<std::atomic<int64_t>> t_;
};

// p in [0, 1] of an ascending vector.
double Pct(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t i = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, i == 0 ? 0 : i - 1)];
}

// --- Watch streams ----------------------------------------------------------

// Reads GET /v1/watch?prefix=PREFIX/ of one node on a plain socket and
// records in a TimeTable the first arrival of each PREFIX/<region>/<seq>
// key. Every event of one recv() gets that recv's time.
class WatchReader {
 public:
  WatchReader(std::string prefix, TimeTable* seen, Clock::time_point epoch)
      : needle_("\"key\":\"" + prefix + "/"), prefix_(prefix + "/"), seen_(seen), epoch_(epoch) {}
  ~WatchReader() {
    Stop();
    if (fd_ >= 0) close(fd_);
  }

  // Returns once the node has answered with its ": watching" comment (the
  // subscription is in place); 5 s at most.
  bool Start(uint16_t port, std::string* why) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    std::string req = "GET /v1/watch?prefix=" + node::EncodeQueryValue(prefix_) +
                      " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";
    if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
      return *why = std::string("watch: ") + std::strerror(errno), false;
    }
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (buf_.find(": watching") == std::string::npos) {
      if (Clock::now() >= deadline || !ReadSome()) {
        return *why = "watch: no stream within 5 s (got '" + buf_.substr(0, 200) + "')", false;
      }
    }
    if (buf_.compare(0, 12, "HTTP/1.1 200") != 0) {
      return *why = "watch: " + buf_.substr(0, buf_.find('\r')), false;
    }
    buf_.erase(0, buf_.find("\r\n\r\n") + 4);
    consuming_ = true;
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        if (!ReadSome()) return broken_.store(true);
      }
    });
    return true;
  }

  // Stops reading; the connection stays open until the reader goes.
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  bool broken() const { return broken_.load(); }

 private:
  // Waits up to 100 ms for bytes; false when the stream ended or failed.
  bool ReadSome() {
    pollfd p{fd_, POLLIN, 0};
    int n = poll(&p, 1, 100);
    if (n <= 0) return n == 0 || errno == EINTR;
    char chunk[65536];
    ssize_t got = recv(fd_, chunk, sizeof chunk, 0);
    if (got <= 0) return false;
    int64_t now =
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - epoch_).count();
    buf_.append(chunk, static_cast<size_t>(got));
    if (consuming_) Consume(now);
    return true;
  }

  // Complete lines only; the key is found by its field, without a JSON
  // parse (this bench's keys need no escapes).
  void Consume(int64_t now) {
    size_t done = buf_.rfind('\n');
    if (done == std::string::npos) return;
    for (size_t k = buf_.find(needle_); k < done; k = buf_.find(needle_, k + 1)) {
      size_t region = 0;
      ull seq = 0;
      if (std::sscanf(buf_.c_str() + k + needle_.size(), "%zu/%llu\"", &region, &seq) == 2) {
        std::atomic<int64_t>* slot = seen_->at(region, seq);
        if (slot && slot->load(std::memory_order_relaxed) == kUnseen) slot->store(now);
      }
    }
    buf_.erase(0, done + 1);
  }

  std::string needle_, prefix_;
  TimeTable* seen_;
  Clock::time_point epoch_;
  int fd_ = -1;
  std::string buf_;
  bool consuming_ = false;  // set before the thread starts
  std::thread thread_;
  std::atomic<bool> stop_{false}, broken_{false};
};

// --- Load -------------------------------------------------------------------

struct LoadSpec {
  std::string prefix;          // keys PREFIX/<region>/<seq>, seq from 0
  std::string value;           // JSON text of every value
  size_t batch = 20;           // puts per POST /v1/batch
  size_t conns = 4;            // connections (threads) per region
  Clock::duration interval{};  // between two batches of one region; 0: closed loop
  std::vector<uint64_t> ops;   // writes per region
};

struct LoadResult {
  uint64_t sent = 0, acked = 0, failed = 0;  // operations
  uint64_t requests = 0, late = 0;           // late: sent more than one interval behind schedule
  double max_late_ms = 0, seconds = 0;       // seconds: start to the last reply
  std::vector<double> request_ms;            // sorted
  std::string first_error;
};

// `rate` writes/s spread evenly over the regions for `seconds`, in batches.
LoadSpec Paced(const std::string& prefix, const Options& o, size_t regions, double rate,
               double seconds) {
  LoadSpec s{prefix, json(std::string(o.value_bytes, 'x')).dump(), o.batch, o.conns, {}, {}};
  const double interval_s = static_cast<double>(o.batch) * static_cast<double>(regions) / rate;
  s.interval =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval_s));
  s.ops.assign(regions, std::max<uint64_t>(1, std::llround(seconds / interval_s)) * o.batch);
  return s;
}

// The puts of one batch reply that succeeded (ok[i]); a missing or
// malformed reply counts as all failed.
size_t Succeeded(const Status& st, const ClientResponse& r, size_t n, std::vector<bool>* ok) {
  ok->assign(n, false);
  size_t good = 0;
  try {
    json results = st.ok() && r.status == 200 ? json::parse(r.body).at("results") : json::array();
    for (size_t i = 0; i < n && i < results.size(); ++i) {
      if (results[i].value("status", 0) == 200) (*ok)[i] = true, ++good;
    }
  } catch (const json::exception&) {
  }
  return good;
}

// Batch k of region r is due at start + (r / R + k) * interval, whatever
// happened to earlier batches (open loop); `conns` threads per region take
// the batches in order, so one goes late only when every connection of its
// region is still waiting for a reply. With a zero interval every batch is
// due at once: `conns` closed loops. Records the reply time of every
// acknowledged write in *acks when given.
LoadResult RunLoad(Cluster* c, const LoadSpec& spec, TimeTable* acks, Clock::time_point epoch) {
  const size_t regions = c->size();
  const auto start = Clock::now() + std::chrono::milliseconds(50);
  LoadResult total;
  Clock::time_point last = start;
  std::mutex mu;
  std::vector<std::atomic<uint64_t>> next(regions);
  for (auto& n : next) n.store(0);
  std::vector<std::thread> threads;
  for (size_t r = 0; r < regions; ++r) {
    for (size_t t = 0; t < spec.conns; ++t) {
      threads.emplace_back([&, r] {
        LoadResult mine;
        Clock::time_point my_last = start;
        auto client = NewClient(c->node(r).url);
        std::vector<bool> ok;
        for (uint64_t k; (k = next[r]++) * spec.batch < spec.ops[r];) {
          auto due = start +
                     spec.interval * static_cast<int64_t>(r) / static_cast<int64_t>(regions) +
                     spec.interval * static_cast<int64_t>(k);
          std::this_thread::sleep_until(due);
          const auto sent = Clock::now();
          mine.late += spec.interval.count() > 0 && sent - due > spec.interval;
          mine.max_late_ms = std::max(mine.max_late_ms, Seconds(sent - due) * 1000);
          const uint64_t first = k * spec.batch;
          const size_t n = static_cast<size_t>(std::min<uint64_t>(spec.batch, spec.ops[r] - first));
          std::string body = "[";
          for (size_t i = 0; i < n; ++i) {
            body += (i ? ",{\"op\":\"put\",\"key\":\"" : "{\"op\":\"put\",\"key\":\"") +
                    BenchKey(spec.prefix, r, first + i) + "\",\"value\":" + spec.value + "}";
          }
          ClientResponse resp;
          Status st = client->Request("POST", "/v1/batch", body + "]",
                                      {{"Content-Type", "application/json"}}, &resp);
          const auto done = Clock::now();
          size_t good = Succeeded(st, resp, n, &ok);
          if (good != n && mine.first_error.empty()) {
            mine.first_error =
                c->node(r).id + ": " +
                (st.ok() ? Fmt("HTTP %d ", resp.status) + resp.body.substr(0, 300) : st.ToString());
          }
          mine.sent += n;
          mine.acked += good;
          mine.failed += n - good;
          ++mine.requests;
          mine.request_ms.push_back(Seconds(done - sent) * 1000);
          my_last = done;
          for (size_t i = 0; acks && i < n; ++i) {
            std::atomic<int64_t>* slot = ok[i] ? acks->at(r, first + i) : nullptr;
            if (slot) {
              slot->store(
                  std::chrono::duration_cast<std::chrono::nanoseconds>(done - epoch).count());
            }
          }
        }
        std::lock_guard<std::mutex> lock(mu);
        total.sent += mine.sent;
        total.acked += mine.acked;
        total.failed += mine.failed;
        total.requests += mine.requests;
        total.late += mine.late;
        total.max_late_ms = std::max(total.max_late_ms, mine.max_late_ms);
        total.request_ms.insert(total.request_ms.end(), mine.request_ms.begin(),
                                mine.request_ms.end());
        if (total.first_error.empty()) total.first_error = mine.first_error;
        last = std::max(last, my_last);
      });
    }
  }
  for (auto& t : threads) t.join();
  std::sort(total.request_ms.begin(), total.request_ms.end());
  total.seconds = Seconds(last - start);
  return total;
}

// Bytes a node stores for `key` written once with `value` by `replica`: the
// envelope built by the node's own ApplyOperation (a current HLC always
// encodes in 9 bytes, so its value does not matter).
size_t StoredEnvelopeBytes(const std::string& key, const std::string& value_json,
                           const crdt::ReplicaId& replica) {
  node::Operation op;
  op.kind = node::Operation::Kind::kPut;
  op.key = key;
  op.kv = true;
  op.type = crdt::Register::kTag;
  op.value = node::ValueToBytes(json::parse(value_json));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::system_clock::now().time_since_epoch());
  crdt::Envelope next, delta;
  node::ApiError err;
  if (!node::ApplyOperation(op, crdt::Envelope(), replica, crdt::MakeHlc(ms.count(), 0), &next,
                            &delta, &err)) {
    return 0;
  }
  return next.Encode().size();
}

std::string FsName(const std::string& dir) {
  struct statfs s {};
  if (statfs(dir.c_str(), &s) != 0) return "?";
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53:
      return "ext4";
    case 0x01021994:
      return "tmpfs (fsync costs nothing there)";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    default:
      return Fmt("file system type 0x%lx", static_cast<unsigned long>(s.f_type));
  }
}

std::string LoadAverage() {
  std::istringstream in(ReadFile("/proc/loadavg"));
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// What the nodes did from construction to Line(): CPU (theirs and this
// program's) and, summed over the nodes from /v1/status, deltas shipped,
// resends, anti-entropy work and group commits (a field a node does not
// report counts 0).
class Mark {
 public:
  explicit Mark(Cluster* c) : c_(c), nodes_(c->NodesCpu()), self_(CpuSeconds(getpid())) {
    Counters(&counters_);
  }
  std::string Line() const {
    std::vector<uint64_t> now;
    Counters(&now);
    auto d = [&](size_t i) { return static_cast<ull>(now[i] - counters_[i]); };
    return Fmt(
        "   CPU: nodes %.1f s, this program %.1f s, in %.1f s on %u cores\n"
        "   gossip: %llu deltas shipped, %llu resends, %llu anti-entropy rounds completed, "
        "%llu states sent by anti-entropy; %llu group commits",
        c_->NodesCpu() - nodes_, CpuSeconds(getpid()) - self_, Seconds(Clock::now() - start_),
        std::thread::hardware_concurrency(), d(0), d(1), d(3), d(4), d(2));
  }

 private:
  void Counters(std::vector<uint64_t>* out) const {
    static const char* const kPaths[] = {"/gossip/deltas_shipped", "/gossip/resends",
                                         "/group_commits", "/anti_entropy/rounds_completed",
                                         "/anti_entropy/states_sent"};
    out->assign(std::size(kPaths), 0);
    std::vector<json> st;
    std::string why;
    if (!AllStatus(c_, &st, &why)) return;
    for (const json& s : st) {
      for (size_t i = 0; i < out->size(); ++i) {
        (*out)[i] += s.value(json::json_pointer(kPaths[i]), 0ull);
      }
    }
  }

  Cluster* c_;
  double nodes_, self_;
  std::vector<uint64_t> counters_;
  Clock::time_point start_ = Clock::now();
};

struct Verdict {
  std::string name, measured = "-", needed;
  bool measured_ok = false, met = false;
};

// --- The three phases -------------------------------------------------------

class Bench {
 public:
  explicit Bench(Options opt) : opt_(std::move(opt)) {}

  int Run() {
    Status st = node::LoadTopology(opt_.topology, &base_);
    if (!st.ok()) {
      Say(st.ToString());
      return 2;
    }
    const std::string load_before = LoadAverage();
    std::string why;
    if (!cluster_.Create(base_, opt_.meridiand, &why)) return Say(why), 1;
    Say("starting " + std::to_string(cluster_.size()) + " nodes in " + cluster_.dir());
    if (!cluster_.Start(&why)) {
      Say("the cluster did not start: " + why);
      cluster_.PrintLogs();
      return 1;
    }
    R_ = cluster_.size();
    value_ = json(std::string(opt_.value_bytes, 'x')).dump();
    value_stored_ = node::ValueToBytes(json::parse(value_)).size();
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char date[64];
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", &tm);
    Line(std::string("Meridian replication benchmark, ") + date);
    Line(Fmt("%u cores; load average %s before; temp dir on %s",
             std::thread::hardware_concurrency(), load_before.c_str(),
             FsName(cluster_.dir()).c_str()));
    Line(Fmt("%s: %zu regions of one node, heartbeat %llu ms, anti-entropy %llu ms, sync = %s%s",
             base_.file.c_str(), R_, static_cast<ull>(base_.heartbeat_interval_ms),
             static_cast<ull>(base_.anti_entropy_interval_ms), base_.sync ? "true" : "false",
             cluster_.bootstrap_flag() ? "; first node --bootstrap" : ""));
    Line(Fmt("values: a %zu-character JSON string (%zu bytes stored)", opt_.value_bytes,
             value_stored_));

    Lag();
    Convergence();
    Overhead();

    std::string dead = cluster_.Dead();
    if (!dead.empty()) Fail(dead);
    Line("");
    Line(Fmt("%-40s %9s %9s  %s", "target", "measured", "needed", "verdict"));
    Line(Fmt("%-40s %9s %9s  %s", "------", "--------", "------", "-------"));
    bool all_measured = true;
    for (const Verdict& v : verdicts_) {
      all_measured = all_measured && v.measured_ok;
      Line(Fmt("%-40s %9s %9s  %s", v.name.c_str(), v.measured.c_str(), v.needed.c_str(),
               !v.measured_ok ? "not measured"
               : v.met        ? "met"
                              : "not met"));
    }
    Line("load average " + LoadAverage() + " after");
    for (const std::string& s : report_) std::printf("%s\n", s.c_str());
    std::fflush(stdout);
    if (failed_) cluster_.PrintLogs();
    if (!failed_ && !all_measured) Say("not every figure could be measured");
    return failed_ || !all_measured ? 1 : 0;
  }

 private:
  void Fail(const std::string& what) {
    Say("FAILED: " + what);
    failed_ = true;
  }
  void Line(const std::string& s) { report_.push_back(s); }

  // 1. Lag from a write's acknowledgement to its watch event in each other
  // region, under the paced load.
  void Lag() {
    Verdict v{"lag p99 (ms)", "-", "<= 10"};
    LoadSpec spec = Paced("lag", opt_, R_, opt_.lag_rate, opt_.lag_seconds);
    Line("");
    Line("1. replication lag: a write's acknowledgement -> its watch event in each other region");
    Line(Fmt(
        "   load: %.0f writes/s for %.0f s, open loop: a POST /v1/batch of %zu puts every "
        "%.2f ms per region, %zu connections per region",
        opt_.lag_rate, opt_.lag_seconds, opt_.batch, Seconds(spec.interval) * 1000, opt_.conns));
    Say(Fmt("phase 1: lag under %.0f writes/s for %.0f s", opt_.lag_rate, opt_.lag_seconds));
    const size_t cap = spec.ops[0];
    TimeTable acks(R_, cap);
    std::vector<std::unique_ptr<TimeTable>> seen;
    std::vector<std::unique_ptr<WatchReader>> watches;
    std::string why;
    for (size_t w = 0; w < R_; ++w) {
      seen.push_back(std::make_unique<TimeTable>(R_, cap));
      watches.push_back(std::make_unique<WatchReader>("lag", seen.back().get(), epoch_));
      if (!watches.back()->Start(cluster_.node(w).http, &why)) {
        verdicts_.push_back(v);
        return Fail(cluster_.node(w).id + ": " + why);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    Mark mark(&cluster_);
    LoadResult lr = RunLoad(&cluster_, spec, &acks, epoch_);
    std::string mark_line = mark.Line();
    // Every acknowledged write must show up in every other region.
    std::vector<double> lags;
    uint64_t missing = 0, early = 0;
    bool broken = false;
    for (auto deadline = Clock::now() + kVisibleLimit;;) {
      lags.clear();
      missing = early = 0;
      for (size_t r = 0; r < R_; ++r) {
        for (uint64_t s = 0; s < cap; ++s) {
          const int64_t a = acks.at(r, s)->load();
          for (size_t w = 0; w < R_ && a != kUnseen; ++w) {
            const int64_t t = w == r ? a : seen[w]->at(r, s)->load();
            if (w == r) continue;  // its own region: no replication
            if (t == kUnseen) {
              ++missing;
            } else {
              early += t < a;
              lags.push_back(static_cast<double>(t - a) / 1e6);
            }
          }
        }
      }
      for (auto& w : watches) broken = broken || w->broken();
      if (missing == 0 || broken || Clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    // The streams stay open, unread, until the end of the run: a meridiand
    // whose watch client has gone spins an HTTP I/O thread (the stream's
    // close wakes its session, which closes it again), which would take
    // CPU from the later phases.
    for (auto& w : watches) w->Stop();
    idle_watches_ = std::move(watches);
    std::sort(lags.begin(), lags.end());
    Line(Fmt("   sent %llu, acknowledged %llu, failed %llu: %.0f writes/s acknowledged",
             static_cast<ull>(lr.sent), static_cast<ull>(lr.acked), static_cast<ull>(lr.failed),
             lr.seconds > 0 ? static_cast<double>(lr.acked) / lr.seconds : 0.0));
    Line(
        Fmt("   batches sent over one interval late: %llu of %llu (the latest by %.1f ms); "
            "request p50 %.2f ms, p99 %.2f ms",
            static_cast<ull>(lr.late), static_cast<ull>(lr.requests), lr.max_late_ms,
            Pct(lr.request_ms, 0.5), Pct(lr.request_ms, 0.99)));
    Line(mark_line);
    Line(Fmt("   lag over %zu (write, other region) pairs: p50 %.2f ms, p99 %.2f ms, max %.2f ms",
             lags.size(), Pct(lags, 0.5), Pct(lags, 0.99), Pct(lags, 1.0)));
    Line(Fmt("   (%llu seen before the writer had its reply; %llu never seen)",
             static_cast<ull>(early), static_cast<ull>(missing)));
    if (broken) Fail("a watch stream ended during the lag phase (a node dropped a slow reader?)");
    if (lr.failed > 0) {
      Fail(Fmt("%llu of %llu lag-phase writes failed; first: ", static_cast<ull>(lr.failed),
               static_cast<ull>(lr.sent)) +
           lr.first_error);
    }
    if (missing > 0) {
      Fail(Fmt("%llu (write, other region) pairs never seen by the watch streams",
               static_cast<ull>(missing)));
    }
    v.measured = Fmt("%.2f", Pct(lags, 0.99));
    v.measured_ok = !lags.empty() && !failed_;
    v.met = Pct(lags, 0.99) <= 10;
    verdicts_.push_back(v);
  }

  // 2. Every gossip link cut, opt_.keys keys written split over the
  // regions, the links restored: time to identical digests, bytes sent.
  void Convergence() {
    Verdict time{Fmt("convergence of %zu keys (s)", opt_.keys), "-", "<= 5"};
    Verdict bytes{"bytes sent / differing bytes", "-", "<= 2.00"};
    Line("");
    Line(Fmt("2. convergence after a partition: %zu keys written while every gossip link was cut",
             opt_.keys));
    ConvergenceRun(&time, &bytes);
    verdicts_.push_back(time);
    verdicts_.push_back(bytes);
  }

  void ConvergenceRun(Verdict* time, Verdict* bytes) {
    std::string why;
    if (failed_) return;
    if (!WaitSettled(&cluster_, &why)) return Fail("before the partition: " + why);
    Say(Fmt("phase 2: partition, %zu keys, heal", opt_.keys));
    if (!SetDrops(true)) return;
    LoadSpec spec{"conv", value_, kPartitionBatch, 1, {}, {}};
    for (size_t r = 0; r < R_; ++r) spec.ops.push_back(opt_.keys / R_ + (r < opt_.keys % R_));
    LoadResult lr = RunLoad(&cluster_, spec, nullptr, epoch_);
    if (lr.failed > 0) {
      return Fail(Fmt("%llu of %zu partition writes failed; first: ", static_cast<ull>(lr.failed),
                      opt_.keys) +
                  lr.first_error);
    }
    std::vector<json> status;
    if (!AllStatus(&cluster_, &status, &why)) return Fail(why);
    if (SameDigest(status)) return Fail("the state digests did not differ while partitioned");
    // What each node lacks: every other region's keys, with their states.
    uint64_t differing = 0, once = 0;
    std::string held = Fmt("   written in %.1f s; keys held before the heal:", lr.seconds);
    for (size_t r = 0; r < R_; ++r) {
      held += " " + cluster_.node(r).id + " " + std::to_string(status[r].value("keys", 0ull));
      crdt::ReplicaId replica{cluster_.node(r).id, status[r].value("incarnation", 0ull)};
      std::string key = BenchKey("conv", r, 0);
      once += spec.ops[r] * (key.size() + StoredEnvelopeBytes(key, value_, replica));
    }
    differing = once * (R_ - 1);
    Line(held);
    std::optional<uint64_t> before, after;
    if (!GossipBytesOut(&cluster_, &before, &why)) return Fail(why);
    Mark mark(&cluster_);
    // Progress from the polls: when the nodes' key counts first grew, and
    // when half of the keys they lacked had arrived.
    auto keys = [&] {
      uint64_t n = 0;
      for (const json& st : status) n += st.value("keys", 0ull);
      return n;
    };
    const uint64_t keys_before = keys(), lacking = opt_.keys * (R_ - 1);
    double first_s = -1, half_s = -1;
    const auto heal = Clock::now();
    if (!SetDrops(false)) return;
    for (;;) {
      bool polled = AllStatus(&cluster_, &status, &why);
      const double at = Seconds(Clock::now() - heal);
      if (polled && first_s < 0 && keys() > keys_before) first_s = at;
      if (polled && half_s < 0 && keys() >= keys_before + lacking / 2) half_s = at;
      if (polled && SameDigest(status)) break;
      std::string dead = cluster_.Dead();
      if (!dead.empty()) return Fail(dead);
      if (Clock::now() - heal > kConvergenceLimit) {
        return Fail(Fmt("no convergence within %llds of the heal",
                        static_cast<long long>(kConvergenceLimit.count())));
      }
      std::this_thread::sleep_for(kStatusPoll);
    }
    const double secs = Seconds(Clock::now() - heal);
    if (!GossipBytesOut(&cluster_, &after, &why)) return Fail(why);
    Line(
        Fmt("   heal -> the same state_digest on every node: %.2f s (polled every %lld ms); the "
            "first missing key arrived after %.2f s, half of them after %.2f s",
            secs, static_cast<long long>(kStatusPoll.count()), first_s, half_s));
    Line(mark.Line());
    Line(
        Fmt("   differing state: %.2f MB = what each node lacks, keys and stored envelopes "
            "(%.2f MB counting each key once)",
            static_cast<double>(differing) / 1e6, static_cast<double>(once) / 1e6));
    *time = {time->name, Fmt("%.2f", secs), time->needed, true, secs <= 5};
    if (!before || !after) {
      Line("   gossip bytes sent: n/a (no meridian_gossip_bytes_total{dir=\"out\"} in /metrics)");
      bytes->measured = "n/a";
      return;
    }
    const double ratio = static_cast<double>(*after - *before) / static_cast<double>(differing);
    Line(
        Fmt("   gossip bytes sent by all nodes from the heal to convergence: %.2f MB = %.2fx the "
            "differing state",
            static_cast<double>(*after - *before) / 1e6, ratio));
    *bytes = {bytes->name, Fmt("%.2f", ratio), bytes->needed, true, ratio <= 2.0};
  }

  // Cuts (or restores) every gossip link: each node drops every peer.
  bool SetDrops(bool cut) {
    for (size_t i = 0; i < R_; ++i) {
      std::vector<std::string> peers;  // sorted, as the node echoes them
      for (size_t j = 0; j < R_ && cut; ++j) {
        if (j != i) peers.push_back(cluster_.node(j).id);
      }
      std::sort(peers.begin(), peers.end());
      json reply;
      std::string why;
      if (!JsonCall(cluster_.node(i).client.get(), "POST", "/v1/admin/faults",
                    json{{"drop", peers}}.dump(), &reply, &why) ||
          reply.value("drop", json::array()) != json(peers)) {
        Fail("setting the faults of " + cluster_.node(i).id + ": " +
             (reply.is_null() ? why : reply.dump()));
        return false;
      }
    }
    return true;
  }

  // 3. Gossip bytes per write against payload bytes, net of the idle
  // baseline.
  void Overhead() {
    Verdict v{"gossip bytes per delivery", "-", "-"};
    LoadSpec spec = Paced("ovh", opt_, R_, opt_.overhead_rate, opt_.overhead_seconds);
    const size_t key_bytes = BenchKey("ovh", 0, 0).size();
    const double payload = static_cast<double>(key_bytes + value_stored_);
    v.needed = Fmt("<= %.0f", 1.5 * payload + 32);
    Line("");
    Line("3. gossip overhead: bytes out of all nodes per write, less the idle baseline");
    OverheadRun(spec, payload, key_bytes, &v);
    verdicts_.push_back(v);
  }

  void OverheadRun(const LoadSpec& spec, double payload, size_t key_bytes, Verdict* v) {
    std::string why;
    if (failed_) return;
    if (!WaitSettled(&cluster_, &why)) return Fail("after convergence: " + why);
    Say(Fmt("phase 3: idle baseline for %.0f s, then %.0f writes/s for %.0f s",
            opt_.baseline_seconds, opt_.overhead_rate, opt_.overhead_seconds));
    std::optional<uint64_t> b0, b1, c0, c1;
    const auto tb0 = Clock::now();
    const double idle_cpu = cluster_.NodesCpu();
    if (!GossipBytesOut(&cluster_, &b0, &why)) return Fail(why);
    std::this_thread::sleep_for(std::chrono::duration<double>(opt_.baseline_seconds));
    const auto tb1 = Clock::now();
    const double idle_cpu_used = cluster_.NodesCpu() - idle_cpu;
    if (!GossipBytesOut(&cluster_, &b1, &why)) return Fail(why);
    const auto t0 = Clock::now();
    if (!GossipBytesOut(&cluster_, &c0, &why)) return Fail(why);
    Mark mark(&cluster_);
    LoadResult lr = RunLoad(&cluster_, spec, nullptr, epoch_);
    if (lr.failed > 0) {
      return Fail(Fmt("%llu overhead-phase writes failed; first: ", static_cast<ull>(lr.failed)) +
                  lr.first_error);
    }
    if (!WaitSettled(&cluster_, &why)) return Fail("after the overhead load: " + why);
    const auto t1 = Clock::now();
    if (!GossipBytesOut(&cluster_, &c1, &why)) return Fail(why);
    Line(
        Fmt("   load: %.0f writes/s for %.0f s as in 1, new keys (%llu acknowledged in %.1f s); "
            "payload = key %zu + value %zu = %.0f bytes",
            opt_.overhead_rate, opt_.overhead_seconds, static_cast<ull>(lr.acked), lr.seconds,
            key_bytes, value_stored_, payload));
    Line(mark.Line());
    if (!b0 || !b1 || !c0 || !c1) {
      Line("   n/a: no meridian_gossip_bytes_total{dir=\"out\"} in /metrics");
      v->measured = "n/a";
      return;
    }
    const double base_rate = static_cast<double>(*b1 - *b0) / Seconds(tb1 - tb0);
    const double window = Seconds(t1 - t0), gross = static_cast<double>(*c1 - *c0);
    const double net = gross - base_rate * window;
    const double per_op = net / static_cast<double>(lr.acked);
    const double per_delivery = per_op / static_cast<double>(R_ - 1);
    Line(
        Fmt("   idle baseline (heartbeats, anti-entropy rounds): %.0f bytes/s, all nodes, over "
            "%.1f s (nodes' CPU: %.1f s)",
            base_rate, Seconds(tb1 - tb0), idle_cpu_used));
    Line(
        Fmt("   from the load's start until settled (%.1f s): %.0f bytes, %.0f net of the baseline",
            window, gross, net));
    Line(
        Fmt("   per write: %.1f bytes = %.2fx payload; per delivery (each write goes to %zu other "
            "regions): %.1f bytes = %.2fx payload",
            per_op, per_op / payload, R_ - 1, per_delivery, per_delivery / payload));
    v->measured = Fmt("%.1f", per_delivery);
    v->measured_ok = true;
    v->met = per_delivery <= 1.5 * payload + 32;
  }

  Options opt_;
  node::Topology base_;
  Cluster cluster_;
  const Clock::time_point epoch_ = Clock::now();
  size_t R_ = 0;
  std::string value_;
  size_t value_stored_ = 0;
  bool failed_ = false;
  std::vector<std::string> report_;
  std::vector<Verdict> verdicts_;
  std::vector<std::unique_ptr<WatchReader>> idle_watches_;  // phase 1's, closed last
};

// --- Arguments --------------------------------------------------------------

int Usage(const std::string& why) {
  if (!why.empty()) Say(why);
  std::fprintf(stderr,
               "usage: replication_bench --meridiand PATH [--topology FILE]\n"
               "         [--lag-rate N] [--lag-seconds S] [--batch N] [--conns N] [--keys N]\n"
               "         [--overhead-rate N] [--overhead-seconds S] [--baseline-seconds S]\n"
               "         [--value-bytes N]\n"
               "defaults: --topology regions/local.toml --lag-rate 10000 --lag-seconds 10\n"
               "  --batch 20 --conns 4 --keys 100000 --overhead-rate 2000 --overhead-seconds 5\n"
               "  --baseline-seconds 3 --value-bytes 100\n");
  return 2;
}

// 0 to run, otherwise the exit status (2, or 0 after --help).
int ParseArgs(int argc, char** argv, Options* o) {
  using Set = std::function<void(double)>;
  const std::vector<std::tuple<std::string, double, double, Set>> numbers = {
      {"--lag-rate", 3, 1e6, [o](double d) { o->lag_rate = d; }},
      {"--lag-seconds", 0.1, 3600, [o](double d) { o->lag_seconds = d; }},
      {"--batch", 1, 10000, [o](double d) { o->batch = static_cast<size_t>(d); }},
      {"--conns", 1, 64, [o](double d) { o->conns = static_cast<size_t>(d); }},
      {"--keys", 3, 1e7, [o](double d) { o->keys = static_cast<size_t>(d); }},
      {"--overhead-rate", 3, 1e6, [o](double d) { o->overhead_rate = d; }},
      {"--overhead-seconds", 0.1, 3600, [o](double d) { o->overhead_seconds = d; }},
      {"--baseline-seconds", 0.5, 3600, [o](double d) { o->baseline_seconds = d; }},
      {"--value-bytes", 1, 1 << 20, [o](double d) { o->value_bytes = static_cast<size_t>(d); }},
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") return Usage(""), 0;
    if (i + 1 >= argc) return Usage(a + ": unknown, or missing its value");
    const std::string v = argv[++i];
    if (a == "--meridiand" || a == "--topology") {
      (a == "--meridiand" ? o->meridiand : o->topology) = v;
      continue;
    }
    auto n = std::find_if(numbers.begin(), numbers.end(),
                          [&](const auto& t) { return std::get<0>(t) == a; });
    if (n == numbers.end()) return Usage("unknown argument " + a);
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !(d >= std::get<1>(*n) && d <= std::get<2>(*n))) {
      return Usage(a + Fmt(": '%s' is not a number from %g to %g", v.c_str(), std::get<1>(*n),
                           std::get<2>(*n)));
    }
    std::get<3> (*n)(d);
  }
  if (o->meridiand.empty()) return Usage("--meridiand is required");
  if (access(o->meridiand.c_str(), X_OK) != 0) {
    return Usage(o->meridiand + " is not an executable file");
  }
  std::error_code ec;
  o->meridiand = std::filesystem::absolute(o->meridiand, ec).string();  // nodes run in the temp dir
  return -1;
}

}  // namespace
}  // namespace meridian::bench

int main(int argc, char** argv) {
  using namespace meridian::bench;
  Options opt;
  if (int code = ParseArgs(argc, argv, &opt); code >= 0) return code;
  // Before any thread: every thread inherits the blocked set, and the
  // signal thread alone takes SIGINT and SIGTERM.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  std::thread(SignalThread, set).detach();
  return Bench(std::move(opt)).Run();
}
