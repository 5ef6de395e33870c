// The chaos run's nemesis: one fault at a time, picked at random (from its
// seed) every few seconds, held a few seconds, then healed. Kinds are dealt
// from a shuffled deck of all six, so any six faults in a row hold each
// kind once (a one-minute run sees every kind):
// - kill: SIGKILL a node, restart it 1-4 s later;
// - pause: SIGSTOP a node for longer than the failure detector's "down"
//   timeout (10 heartbeats), then SIGCONT;
// - partition (through POST /v1/admin/faults on every node): isolate one
//   node, split the regions (one against two, or each alone), a bridge
//   (two sides that both reach one node), a ring (each node reaches only
//   its two neighbours);
// - skew: restart a node with --clock-offset-ms within max_clock_offset_ms
//   or beyond it (then it must refuse every write: see SkewWindow); the
//   heal restarts it on its true clock;
// - wipe: stop the load to a node, wait until its /v1/status shows no
//   unacknowledged deltas to any peer, SIGKILL it, delete its data dir and
//   start it again: it must come back as a new incarnation;
// - delay: 50-500 ms on one to three gossip links.
// Between faults the cluster runs whole for 1-3 s. A fault still held
// when the schedule ends is healed by Heal().
#ifndef MERIDIAN_TESTS_CHAOS_NEMESIS_H_
#define MERIDIAN_TESTS_CHAOS_NEMESIS_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "tests/chaos/load.h"
#include "tests/node/cluster_process.h"

namespace meridian::chaos {

struct FaultCounts {
  int kill = 0, pause = 0, partition = 0, skew = 0, wipe = 0, delay = 0;
  int total() const { return kill + pause + partition + skew + wipe + delay; }
};

// A node running with its clock shifted, in ms since the run started.
struct SkewWindow {
  int node = 0;
  int64_t offset_ms = 0;
  bool beyond = false;  // |offset| > max_clock_offset_ms: no write may be acknowledged
  int64_t from_ms = 0, to_ms = 0;
};

class Nemesis {
 public:
  using Clock = std::chrono::steady_clock;
  // `base_args`: every node's arguments (without a clock offset).
  Nemesis(testing::ClusterProcess* cluster, Load* load, uint64_t seed,
          std::vector<std::string> base_args, Clock::time_point t0, std::ostream* log);

  // Faults until `until`; a hold is cut short there and its heal left to
  // Heal(). False when the harness itself failed (a node that would not
  // start again): see problems().
  bool Run(Clock::time_point until);
  // Heals the fault in progress, then everything else: SIGCONT, every
  // node running on its true clock, no dropped or delayed links.
  bool Heal();

  const FaultCounts& counts() const { return counts_; }
  const std::vector<SkewWindow>& skews() const { return skews_; }
  // What went wrong that is not the checker's to find: a wiped node that
  // kept its incarnation, a node that did not restart, a fault endpoint
  // that refused.
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  int64_t Ms() const;
  void Say(const std::string& what);
  // Sleeps `d`, cut short at `until`; false when cut.
  bool Hold(std::chrono::milliseconds d, Clock::time_point until);
  std::chrono::milliseconds Between(int lo_ms, int hi_ms);
  int PickNode();
  bool PostFaults(int node, const nlohmann::json& body);
  bool SetDrops(const std::vector<std::vector<int>>& drops);  // per node: whom it drops
  bool ClearFaults();
  bool Restart(int node, int64_t offset_ms);
  bool StatusOf(int node, nlohmann::json* out);

  void Kill(Clock::time_point until);
  void Pause(Clock::time_point until);
  void Partition(Clock::time_point until);
  void Skew(Clock::time_point until);
  void Wipe();
  void Delay(Clock::time_point until);

  testing::ClusterProcess* cluster_;
  Load* load_;
  std::mt19937_64 rng_;
  std::vector<std::string> base_args_;
  Clock::time_point t0_;
  std::ostream* log_;
  FaultCounts counts_;
  std::vector<SkewWindow> skews_;
  std::vector<std::string> problems_;
  std::function<void()> pending_heal_;  // the fault in progress, if any
  std::vector<bool> paused_;
  std::vector<int> deck_;  // fault kinds still to deal in this round
};

}  // namespace meridian::chaos

#endif  // MERIDIAN_TESTS_CHAOS_NEMESIS_H_
