#include "node/launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "node/http_client.h"
#include "node/topology.h"
#include "storage/leveldb_store.h"
#include "storage/node_meta.h"

namespace meridian::node {

namespace {

using Clock = std::chrono::steady_clock;

std::string PidFile(const NodeConfig& n) { return n.data_dir + ".pid"; }
std::string LogFile(const NodeConfig& n) { return n.data_dir + ".log"; }

// https:// for a node with tls_cert and tls_key.
std::string Url(const NodeConfig& n) {
  bool v6 = n.http_host.find(':') != std::string::npos;
  const std::string scheme = n.api_tls() ? "https://" : "http://";
  return scheme + (v6 ? "[" + n.http_host + "]" : n.http_host) + ":" +
         std::to_string(n.http_port);
}

// The pid recorded for `n`, or 0 when there is no readable pid file.
pid_t ReadPid(const NodeConfig& n) {
  std::ifstream in(PidFile(n));
  long pid = 0;
  if (!(in >> pid) || pid <= 0) return 0;
  return static_cast<pid_t>(pid);
}

// True when `pid` is a live meridiand started as node `id` (its command
// line holds "--node" followed by the id), so a recycled pid is never
// mistaken for the node.
bool IsNodeProcess(pid_t pid, const std::string& id) {
  if (pid <= 0 || kill(pid, 0) != 0) return false;
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> argv;
  std::string arg;
  for (char c : cmdline) {
    if (c == '\0') {
      argv.push_back(arg);
      arg.clear();
    } else {
      arg += c;
    }
  }
  if (argv.empty() || argv[0].find("meridiand") == std::string::npos) return false;
  // A zombie (exited, not yet reaped) has an empty cmdline and fails above.
  for (size_t i = 1; i + 1 < argv.size(); ++i) {
    if (argv[i] == "--node" && argv[i + 1] == id) return true;
  }
  return false;
}

std::string Tail(const std::string& path, size_t lines) {
  std::ifstream in(path);
  std::vector<std::string> all;
  std::string line;
  while (std::getline(in, line)) all.push_back(line);
  std::string out;
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) {
    out += "\n    " + all[i];
  }
  return out.empty() ? " (empty)" : out;
}

Status MakeDirs(const std::string& path) {
  if (path.empty()) return Status::OK();
  std::string cur;
  std::stringstream ss(path);
  std::string part;
  if (path[0] == '/') cur = "/";
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    cur += part;
    if (mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) {
      return Status::IOError("cannot create directory " + cur + ": " + std::strerror(errno));
    }
    cur += "/";
  }
  return Status::OK();
}

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return "";
  return path.substr(0, slash == 0 ? 1 : slash);
}

std::string FindMeridiand(const std::string& given) {
  if (!given.empty()) return given;
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n > 0) {
    buf[n] = '\0';
    std::string sibling = Dirname(buf) + "/meridiand";
    if (access(sibling.c_str(), X_OK) == 0) return sibling;
  }
  return "meridiand";  // execvp searches $PATH
}

// Whether `dir` exists and holds anything (a node's data).
bool HasEntries(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return false;
  bool any = false;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") {
      any = true;
      break;
    }
  }
  closedir(d);
  return any;
}

// Whether node `n`'s data dir holds data: anything but nothing or an
// incarnation that has not bootstrapped (it took no writes and applied
// nothing; meridiand --bootstrap clears its mark). A store that cannot be
// read (a running node holds its lock) counts as holding data.
bool HoldsData(const NodeConfig& n) {
  if (!HasEntries(n.data_dir)) return false;
  std::unique_ptr<storage::Store> store;
  if (!storage::Store::Open(n.data_dir, storage::StoreOptions(), &store).ok()) return true;
  storage::NodeMeta meta;
  bool fresh = false;
  if (!storage::LoadNodeMeta(*store, n.id, &meta, &fresh).ok()) return true;
  return !fresh && !meta.bootstrap_pending;
}

// Forks and execs meridiand for `n`; the child gets its own session, stdin
// from /dev/null and its output appended to the node's log file.
Status Spawn(const LaunchOptions& o, const std::string& binary, const NodeConfig& n,
             bool bootstrap, pid_t* pid) {
  MERIDIAN_RETURN_IF_ERROR(MakeDirs(Dirname(PidFile(n))));
  int log = open(LogFile(n).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) {
    return Status::IOError("cannot open " + LogFile(n) + ": " + std::strerror(errno));
  }
  std::vector<std::string> args = {binary, "--config", o.config, "--node", n.id};
  if (bootstrap) args.push_back("--bootstrap");
  args.insert(args.end(), o.extra_args.begin(), o.extra_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t child = fork();
  if (child < 0) {
    close(log);
    return Status::IOError(std::string("fork failed: ") + std::strerror(errno));
  }
  if (child == 0) {
    setsid();
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(log, 1);
    dup2(log, 2);
    execvp(argv[0], argv.data());
    dprintf(2, "meridianctl up: cannot run %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  close(log);
  std::ofstream pf(PidFile(n), std::ios::trunc);
  pf << child << "\n";
  if (!pf.flush()) {
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    return Status::IOError("cannot write " + PidFile(n));
  }
  *pid = child;
  return Status::OK();
}

// Waits for a process to exit (reaping it if it is our child); true if it
// did within `seconds`.
bool WaitExit(pid_t pid, const std::string& id, int seconds) {
  auto deadline = Clock::now() + std::chrono::seconds(seconds);
  while (Clock::now() < deadline) {
    waitpid(pid, nullptr, WNOHANG);  // reaps our own children; harmless otherwise
    if (!IsNodeProcess(pid, id)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// Stops a child this call started (it may not have exec'd meridiand yet,
// so it is signalled by pid without the /proc check) and reaps it.
void StopChild(pid_t pid, int seconds) {
  kill(pid, SIGTERM);
  auto deadline = Clock::now() + std::chrono::seconds(seconds);
  while (Clock::now() < deadline) {
    if (waitpid(pid, nullptr, WNOHANG) != 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

// "writable" from /v1/health: true, false (with *reason), or unreachable.
// The answer must come from process `pid` (health names its pid), so that
// an older process still holding the port is not taken for the new one.
enum class Health { kUnreachable, kNotWritable, kWritable };
// A TLS node is verified with `ca_file`; *reason says why one that
// answers fails the handshake.
Health Probe(const NodeConfig& n, const std::string& ca_file, pid_t pid, std::string* reason) {
  std::unique_ptr<HttpClient> client;
  Status st = HttpClient::Create(Url(n), ca_file, &client);
  if (!st.ok()) {
    *reason = st.message();
    return Health::kUnreachable;
  }
  client->set_timeout(std::chrono::milliseconds(1000));
  ClientResponse r;
  st = client->Request("GET", "/v1/health", "", {}, &r);
  if (!st.ok() || r.status != 200) {
    if (st.code() == Status::Code::kIOError) *reason = st.message();
    return Health::kUnreachable;
  }
  auto body = nlohmann::json::parse(r.body, nullptr, false);
  if (!body.is_object()) return Health::kUnreachable;
  auto p = body.find("pid");
  if (p == body.end() || !p->is_number_integer() || p->get<int64_t>() != pid) {
    *reason = "another process answers on " + Url(n);
    return Health::kNotWritable;
  }
  auto w = body.find("writable");
  if (w == body.end() || (w->is_boolean() && w->get<bool>())) return Health::kWritable;
  auto why = body.find("reason");
  *reason = why != body.end() && why->is_string() ? why->get<std::string>() : "";
  return Health::kNotWritable;
}

}  // namespace

namespace {

// Makes every secret file the topology names private (mode 0600) when its
// group or others may read it: git does not keep file modes, so a fresh
// clone's development secrets (regions/secure-local/) would otherwise stop
// every node. A file that is missing, or the topology's own problems, are
// left for LoadTopology to report.
void MakeSecretsPrivate(const std::string& config, std::ostream& out) {
  std::vector<std::string> secrets;
  if (!SecretFilesOf(config, &secrets).ok()) return;
  for (const std::string& path : secrets) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) == 0) continue;
    if (chmod(path.c_str(), 0600) == 0) out << "made " << path << " private (mode 0600)\n";
  }
}

}  // namespace

Status ClusterUp(const LaunchOptions& o, std::ostream& out) {
  MakeSecretsPrivate(o.config, out);
  Topology topo;
  MERIDIAN_RETURN_IF_ERROR(LoadTopology(o.config, &topo));
  const std::string binary = FindMeridiand(o.meridiand);
  const std::string ca_file = topo.tls_ca.empty() ? o.ca_file : topo.tls_ca_path;
  std::map<std::string, pid_t> started;
  std::vector<const NodeConfig*> nodes = topo.AllNodes();

  auto undo = [&](Status why) {
    for (const NodeConfig* n : nodes) {
      auto it = started.find(n->id);
      if (it == started.end()) continue;
      StopChild(it->second, 5);
      unlink(PidFile(*n).c_str());
    }
    if (!started.empty()) out << "stopped the nodes this call had started\n";
    return why;
  };

  // A brand-new cluster (no node has data yet, or none has bootstrapped:
  // say the first node lost its disk before any other bootstrapped from
  // it): its first node starts with --bootstrap, the others bootstrap from
  // it (DESIGN.md §3).
  bool new_cluster = true;
  for (const NodeConfig* n : nodes) new_cluster = new_cluster && !HoldsData(*n);
  if (new_cluster && !nodes.empty()) {
    out << "new cluster: " << nodes.front()->id << " starts with --bootstrap" << std::endl;
  }
  for (const NodeConfig* n : nodes) {
    pid_t old = ReadPid(*n);
    if (IsNodeProcess(old, n->id)) {
      out << n->id << ": already running (pid " << old << ")" << std::endl;
      continue;
    }
    pid_t pid = 0;
    Status st = Spawn(o, binary, *n, new_cluster && n == nodes.front(), &pid);
    if (!st.ok()) return undo(Status::IOError(n->id + ": " + st.message()));
    started[n->id] = pid;
    out << n->id << ": started (pid " << pid << ", log " << LogFile(*n) << ")" << std::endl;
  }

  auto deadline = Clock::now() + std::chrono::seconds(o.wait_seconds);
  std::map<std::string, std::string> waiting_reason;
  for (const NodeConfig* n : nodes) waiting_reason[n->id] = "not answering yet";
  while (!waiting_reason.empty()) {
    for (const NodeConfig* n : nodes) {
      if (!waiting_reason.count(n->id)) continue;
      auto it = started.find(n->id);
      // Our own child may not have exec'd yet, so its command line can
      // still be ours: ask waitpid whether it exited instead.
      pid_t pid = it != started.end() ? it->second : ReadPid(*n);
      bool alive = it != started.end() ? waitpid(pid, nullptr, WNOHANG) == 0
                                       : IsNodeProcess(pid, n->id);
      if (!alive) {
        if (it != started.end()) {
          // It is gone: undo() stops only the others, so its pid file goes here.
          unlink(PidFile(*n).c_str());
          started.erase(it);
        }
        return undo(Status::FailedPrecondition(n->id + " exited while starting; the end of " +
                                               LogFile(*n) + ":" + Tail(LogFile(*n), 8)));
      }
      std::string reason;
      Health h = Probe(*n, ca_file, pid, &reason);
      if (h == Health::kWritable) {
        waiting_reason.erase(n->id);
      } else if (h == Health::kUnreachable) {
        waiting_reason[n->id] =
            "not answering on " + Url(*n) + (reason.empty() ? "" : " (" + reason + ")");
      } else {
        waiting_reason[n->id] = "not writable: " + reason;
      }
    }
    if (waiting_reason.empty()) break;
    if (Clock::now() >= deadline) {
      std::string why;
      for (const auto& [id, reason] : waiting_reason) {
        const NodeConfig* n = topo.FindNode(id);
        why += "\n  " + id + ": " + reason + "; the end of " + LogFile(*n) + ":" +
               Tail(LogFile(*n), 5);
      }
      return undo(Status::Unavailable("nodes not ready after " +
                                           std::to_string(o.wait_seconds) + " s:" + why));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  for (const RegionConfig& r : topo.regions) {
    for (const NodeConfig& n : r.nodes) {
      out << r.name << "  " << n.id << "  " << Url(n) << "  editor " << Url(n) << "/demo/\n";
    }
  }
  return Status::OK();
}

Status ClusterDown(const LaunchOptions& o, std::ostream& out) {
  Topology topo;
  MERIDIAN_RETURN_IF_ERROR(LoadTopology(o.config, &topo));
  bool failed = false;
  std::string failures;
  for (const NodeConfig* n : topo.AllNodes()) {
    pid_t pid = ReadPid(*n);
    if (!IsNodeProcess(pid, n->id)) {
      out << n->id << ": not running\n";
      unlink(PidFile(*n).c_str());
      continue;
    }
    kill(pid, SIGTERM);
    if (!WaitExit(pid, n->id, o.wait_seconds)) {
      kill(pid, SIGKILL);
      if (!WaitExit(pid, n->id, 5)) {
        failed = true;
        failures += " " + n->id;
        continue;
      }
      out << n->id << ": did not stop in " << o.wait_seconds << " s; killed (pid " << pid
          << ")\n";
    } else {
      out << n->id << ": stopped (pid " << pid << ")\n";
    }
    unlink(PidFile(*n).c_str());
  }
  if (failed) return Status::IOError("could not stop:" + failures);
  return Status::OK();
}

}  // namespace meridian::node
