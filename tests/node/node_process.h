// A real meridiand process for multi-process tests: a one-node topology in
// a fresh temporary directory, a free loopback port, fork/exec, and a
// bounded wait for /v1/health. The process's stderr goes to a file in the
// temporary directory and is printed when something goes wrong (a start
// that fails, a stop that does not exit 0, or a test case that failed while
// the process was in use).
//
// Every process started is reaped: Stop, Kill and the destructor wait for
// it, and the child asks the kernel to SIGKILL it should the test binary
// die first. The destructor also removes the temporary directory.
//
// Not thread-safe: one thread starts, stops and kills; any thread may use
// url() and Client() while the process runs.
#ifndef MERIDIAN_TESTS_NODE_NODE_PROCESS_H_
#define MERIDIAN_TESTS_NODE_NODE_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "node/http_client.h"
#include "tests/support/temp_dir.h"

namespace meridian::testing {

struct NodeOptions {
  std::string node_id = "test-1";
  // [cluster] max_body_bytes; 0 leaves the server's default (8 MiB).
  uint64_t max_body_bytes = 0;
  bool sync = true;
  // Empty: "data" inside the temporary directory. Otherwise an absolute
  // path the caller owns (not removed by the destructor).
  std::string data_dir;
  std::chrono::milliseconds start_timeout{10000};
  // Lines added to [cluster] as they are (e.g. "token_file = \"tokens.toml\"").
  std::vector<std::string> cluster_lines;
  // Lines added to the node's [[region.node]] as they are, after data_dir
  // (e.g. "public_key = \"...\""): from line 12 of the topology on when
  // neither cluster_lines nor max_body_bytes adds a line above them.
  std::vector<std::string> node_lines;
  // Files written next to the topology (in dir()) before the node starts,
  // with their mode.
  struct File {
    std::string name;
    std::string content;
    mode_t mode = 0600;
  };
  std::vector<File> files;
  // Extra meridiand arguments (e.g. "--enable-fault-injection").
  std::vector<std::string> args;
  // Set when the node speaks TLS (its node_lines give tls_cert and
  // tls_key): the name of a CA file in dir() its certificate verifies
  // with. url() is then https://127.0.0.1:PORT and Client() verifies the
  // node with it.
  std::string tls_ca;
};

class NodeProcess {
 public:
  explicit NodeProcess(NodeOptions options = NodeOptions());
  ~NodeProcess();
  NodeProcess(const NodeProcess&) = delete;
  NodeProcess& operator=(const NodeProcess&) = delete;

  // Starts meridiand and waits until /v1/health answers 200. False (after
  // printing why and the process's stderr) when it exits or does not
  // answer in time; the process is then killed and reaped.
  bool Start();
  // SIGTERM, then waits (bounded) for the exit. True when it exited with
  // status 0. A process that does not exit in time is killed.
  bool Stop(std::chrono::milliseconds timeout = std::chrono::milliseconds(15000));
  // SIGKILL and reap.
  void Kill();
  // Stop (when running) and Start again on the same data dir.
  bool Restart();

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  uint16_t port() const { return port_; }
  std::string url() const;  // "http://127.0.0.1:PORT" (https with NodeOptions::tls_ca)
  const std::string& dir() const { return dir_.path(); }
  const std::string& config_path() const { return config_path_; }
  const std::string& data_dir() const { return data_dir_; }
  // Everything the process (and earlier runs of it) wrote to stderr.
  std::string Stderr() const;
  // Prints the stderr file to std::cerr with a header.
  void PrintStderr(const std::string& why) const;

  // A new client for this node (its own connection).
  std::unique_ptr<node::HttpClient> Client() const;

 private:
  bool StartOnce(bool* port_in_use);
  void WriteTopology();
  // Waits for the process to exit, up to `timeout`; true when reaped, with
  // the raw wait status in *status.
  bool WaitExit(std::chrono::milliseconds timeout, int* status);

  NodeOptions options_;
  TempDir dir_;
  std::string data_dir_;
  std::string config_path_;
  std::string stderr_path_;
  uint16_t port_ = 0;
  uint16_t gossip_port_ = 0;
  pid_t pid_ = -1;
};

// What RawExchange saw.
struct RawResult {
  bool connected = false;
  size_t bytes_sent = 0;        // of the request
  std::string response;         // every byte received
  bool closed_by_peer = false;  // EOF or reset seen
  int status = 0;               // from the status line, 0 when none
  // The body after the header block (not de-chunked).
  std::string Body() const;
};

// Sends `request` on a new connection to 127.0.0.1:port, byte for byte,
// while reading whatever comes back, so that a server that answers early
// (413, 431) and closes is observed even when the request is far from
// fully sent. Stops at EOF/reset, or `timeout` after the start.
// `repeat_tail` times more, `tail` is appended to the request (a large body
// without holding it in memory).
RawResult RawExchange(uint16_t port, const std::string& request, std::chrono::milliseconds timeout,
                      const std::string& tail = std::string(), size_t repeat_tail = 0);

// Request and reply bodies in the API's two encodings.
enum class Encoding { kJson, kMsgpack };
// What one run of a command-line program (meridianctl) did.
struct CtlResult {
  bool finished = false;  // exited within the bound
  int exit_code = -1;     // -1 when killed by a signal (or not finished)
  std::string out, err;
  std::string command;
  // The command, how it ended, and its stdout and stderr.
  std::string Describe() const;
};

// Runs `program` with `args` in directory `cwd` (its stdout and stderr in
// files there, named after the run and args[0]); kills it after
// `timeout`.
CtlResult RunProgram(const std::string& program, const std::string& cwd,
                     const std::vector<std::string>& args, std::chrono::milliseconds timeout);

const char* MediaType(Encoding e);  // "application/json" / "application/msgpack"
const char* Name(Encoding e);       // "json" / "msgpack"
std::string EncodeBody(Encoding e, const nlohmann::json& body);
// Decodes a reply body by its Content-Type (JSON or msgpack). False, with
// a reason in *why, when the type is neither or the body does not parse.
bool DecodeReply(const node::ClientResponse& res, nlohmann::json* out, std::string* why);

}  // namespace meridian::testing

#endif  // MERIDIAN_TESTS_NODE_NODE_PROCESS_H_
