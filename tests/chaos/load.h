// The chaos run's client load: one thread per node, each sending a mixed,
// paced stream of writes of every type to its node over HTTP and recording
// every operation (history.h) as acknowledged, failed or indeterminate.
//
// Keys rotate: every `generation` the clients move to fresh keys, so a long
// run keeps documents and sets small. Set and map-tag removes name elements
// this client added and saw acknowledged; text edits read the document at
// the same node first, insert a marker "[cN.M]" between two markers (or at
// either end) or delete one whole marker, at the version read.
#ifndef MERIDIAN_TESTS_CHAOS_LOAD_H_
#define MERIDIAN_TESTS_CHAOS_LOAD_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/chaos/history.h"

namespace meridian::chaos {

struct LoadOptions {
  std::vector<std::string> urls;  // one client per node ("http://127.0.0.1:PORT")
  uint64_t seed = 1;
  double ops_per_second = 20;  // per client
  std::chrono::milliseconds request_timeout{3000};
  std::chrono::milliseconds generation{20000};
  int keys_per_generation = 3;  // per type
};

class Load {
 public:
  Load(LoadOptions options, std::chrono::steady_clock::time_point t0);
  ~Load();
  Load(const Load&) = delete;
  Load& operator=(const Load&) = delete;

  void Start();
  // Stops every client after its current operation and joins them.
  void Stop();
  // Stops or resumes the client of node i (it finishes the operation in
  // flight; WaitIdle waits for that).
  void Enable(int node, bool on);
  bool WaitIdle(int node, std::chrono::milliseconds timeout);

  uint64_t attempted() const { return attempted_.load(); }
  uint64_t acknowledged() const { return acknowledged_.load(); }
  // Every client's operations (after Stop).
  std::vector<Op> History() const;

 private:
  struct Client;
  void Run(Client* c);

  LoadOptions options_;
  std::chrono::steady_clock::time_point t0_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> attempted_{0}, acknowledged_{0};
};

}  // namespace meridian::chaos

#endif  // MERIDIAN_TESTS_CHAOS_LOAD_H_
