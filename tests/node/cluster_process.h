// A cluster of real meridiand processes on loopback for multi-process
// replication tests: R regions of K nodes each, one topology file (DESIGN.md
// §8) in a fresh temporary directory, every node with its own data dir,
// HTTP port and gossip port on 127.0.0.1.
//
// Ports are picked below the kernel's ephemeral range (so that no outgoing
// connection — a ZeroMQ DEALER, an HTTP client — can take a port a node
// restarted later must bind again), all distinct and free when picked. If a
// node cannot bind one at Start() anyway, every node is stopped, all ports
// are picked again and the cluster starts over (a few times at most).
//
// Each node's stderr goes to its own file (appended across restarts). When
// the running Boost test case has failed, the destructor prints every
// node's stderr (the tail of long ones); PrintStderr does it on demand.
//
// As `./dev up` does for a new cluster, the first node started gets
// --bootstrap (until it has come up once), and the others bootstrap from it.
//
// Every process started is reaped: StopNode, KillNode and the destructor
// wait for it, and each child asks the kernel to SIGKILL it should the test
// binary die first. The destructor removes the temporary directory (kept
// when MERIDIAN_KEEP_CLUSTER is set, and then its path is printed).
//
// Not thread-safe: one thread starts, stops and kills; any thread may use
// url() and Client() while nodes run.
#ifndef MERIDIAN_TESTS_NODE_CLUSTER_PROCESS_H_
#define MERIDIAN_TESTS_NODE_CLUSTER_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "node/http_client.h"
#include "tests/support/temp_dir.h"

namespace meridian::testing {

struct ClusterOptions {
  int regions = 3;
  int nodes_per_region = 1;
  std::string cluster_name = "replication-test";
  // [cluster] settings written to the topology.
  uint64_t heartbeat_interval_ms = 100;
  uint64_t anti_entropy_interval_ms = 250;
  uint64_t max_clock_offset_ms = 500;
  bool sync = true;
  // [cluster] log_retention_ms / log_retention_bytes; 0: not written (the
  // defaults).
  uint64_t log_retention_ms = 0;
  uint64_t log_retention_bytes = 0;
  // [cluster] retention_horizon_ms; 0: not written (the default).
  uint64_t retention_horizon_ms = 0;
  // Extra meridiand arguments for every node, then per node index (for
  // example {"--clock-offset-ms", "1500"}).
  std::vector<std::string> args_for_all;
  std::map<int, std::vector<std::string>> args;
  // Appended to the topology file as is (e.g. [[policy]] tables).
  std::string extra_toml;
  // Lines added to node i's [[region.node]] as they are (e.g. its
  // public_key and secret_key_file).
  std::map<int, std::vector<std::string>> node_lines;
  // Per start of one node (or of all of them together).
  std::chrono::milliseconds start_timeout{15000};
};

class ClusterProcess {
 public:
  // Writes the topology; starts nothing.
  explicit ClusterProcess(ClusterOptions options = ClusterOptions());
  ~ClusterProcess();
  ClusterProcess(const ClusterProcess&) = delete;
  ClusterProcess& operator=(const ClusterProcess&) = delete;

  // Starts every node not running and waits until each answers GET
  // /v1/health with 200 (not necessarily writable). False (after printing
  // why and every node's stderr) when one exits or does not answer in time;
  // every node is then killed.
  bool Start();
  // Waits until GET /v1/health of each node in `nodes` (all when empty)
  // says "writable": true (a reply without the field counts as writable).
  // False, with what the last replies said in *why, after `timeout`.
  bool WaitWritable(std::chrono::milliseconds timeout, const std::vector<int>& nodes = {},
                    std::string* why = nullptr);

  // One node, on its data dir and ports.
  bool StartNode(int i);
  // SIGTERM, then a bounded wait; true when it exited with status 0 (a node
  // that does not exit in time is killed).
  bool StopNode(int i, std::chrono::milliseconds timeout = std::chrono::milliseconds(15000));
  // SIGKILL and reap.
  void KillNode(int i);
  // StopNode (when running), then StartNode.
  bool RestartNode(int i);
  // Replaces node i's extra arguments (used from its next start on).
  void SetNodeArgs(int i, std::vector<std::string> args);

  int size() const { return static_cast<int>(nodes_.size()); }
  int regions() const { return options_.regions; }
  const std::string& node_id(int i) const { return nodes_.at(i).id; }
  const std::string& region(int i) const { return nodes_.at(i).region; }
  int region_index(int i) const { return nodes_.at(i).region_index; }
  // The node indexes of region r, in topology order.
  std::vector<int> NodesOfRegion(int r) const;
  // Index of the node with this id, -1 when none.
  int IndexOf(const std::string& id) const;
  bool running(int i) const { return nodes_.at(i).pid > 0; }
  pid_t pid(int i) const { return nodes_.at(i).pid; }
  uint16_t http_port(int i) const { return nodes_.at(i).http_port; }
  uint16_t gossip_port(int i) const { return nodes_.at(i).gossip_port; }
  std::string url(int i) const;  // "http://127.0.0.1:PORT"
  const std::string& dir() const { return dir_.path(); }
  const std::string& topology_path() const { return topology_path_; }
  const std::string& data_dir(int i) const { return nodes_.at(i).data_dir; }
  const ClusterOptions& options() const { return options_; }

  // A new client for node i (its own connection, 10 s timeout).
  std::unique_ptr<node::HttpClient> Client(int i) const;

  // Everything node i (and earlier runs of it) wrote to stderr.
  std::string Stderr(int i) const;
  // Prints every node's stderr to std::cerr (at most the last
  // `max_bytes` of each), with a header naming `why`.
  void PrintStderr(const std::string& why, size_t max_bytes = 96 << 10) const;

 private:
  struct Node {
    std::string id, region;
    int region_index = 0;
    std::string data_dir, stderr_path;
    uint16_t http_port = 0, gossip_port = 0;
    std::vector<std::string> args;
    pid_t pid = -1;
    size_t stderr_offset = 0;  // stderr size when the current run started
  };
  enum class StartResult { kOk, kPortInUse, kFailed };

  void PickPorts();
  void WriteTopology();
  // Forks and execs node i (no wait).
  bool Spawn(int i);
  // Waits until every node in `which` answers /v1/health; kills them all
  // on failure.
  StartResult AwaitHealthy(const std::vector<int>& which);
  bool Healthy(int i) const;
  bool WaitExit(int i, std::chrono::milliseconds timeout, int* status);

  ClusterOptions options_;
  TempDir dir_;
  std::string topology_path_;
  int bootstrap_node_ = -1;         // the first node started (-1: none yet)
  bool bootstrap_node_up_ = false;  // it came up once: no --bootstrap after
  std::vector<Node> nodes_;
};

}  // namespace meridian::testing

#endif  // MERIDIAN_TESTS_NODE_CLUSTER_PROCESS_H_
