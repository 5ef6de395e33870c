// What one seed decides before its run starts: the cluster's shape and
// protocol options, the network's quality, the schedule of faults
// (partitions that heal, crashes with restarts, clock skews that go beyond
// the limit and come back, full disks) and the client workload's pace.
#ifndef MERIDIAN_TESTS_SIM_SCENARIO_H_
#define MERIDIAN_TESTS_SIM_SCENARIO_H_

#include <cstdint>
#include <string>
#include <vector>

#include "gossip/protocol.h"
#include "tests/sim/network.h"

namespace meridian::sim {

struct FaultEvent {
  // kWipe: once every peer has acknowledged the node's whole log (retried
  // until then, given up near the end of the fault phase), it crashes,
  // loses its data dir and restarts `value` ms later as a new incarnation
  // that must bootstrap.
  enum class Kind { kPartition, kHealNetwork, kCrash, kRestart, kSkew, kDiskFull, kWipe };
  uint64_t t = 0;
  Kind kind = Kind::kPartition;
  int node = -1;
  int64_t value = 0;  // kSkew: new skew; kDiskFull: failing writes; kWipe: downtime ms
  Partition partition;
};

struct Scenario {
  int n = 3;
  std::vector<std::string> ids, regions;
  gossip::ProtocolOptions protocol;  // without self, region, peers
  LinkQuality faulty, clean;
  uint64_t fault_ms = 5000;
  uint64_t quiesce_limit_ms = 120000;
  uint64_t tick_cap_ms = 100;  // 0: tick only at NextTickMs()
  uint64_t commit_delay_max_ms = 2;
  double reply_loss = 0;
  double ship_failure = 0;  // a log read fails (OnShipFailed)
  int sessions = 3;
  // Extra sessions that write the mvregister keys (MvRegisterKeys()) on
  // top of `sessions`, so the other types keep their share of the writes;
  // each of their writes is, with `resolve_chance`, a resolution of what
  // its node's review queue shows for the key. They move between nodes
  // more than the others, which makes concurrent writes (siblings).
  int mv_sessions = 1;
  double resolve_chance = 0.3;
  // Extra sessions after those that edit the text keys (TextKeys()): each
  // write inserts unique characters and deletes ranges at a version the
  // session read or wrote, an older one with `text_old_chance`, and now
  // and then deletes the whole text.
  int text_sessions = 1;
  double text_old_chance = 0.3;
  uint64_t think_min_ms = 10, think_max_ms = 200;
  uint64_t read_timeout_ms = 2000;
  std::vector<int64_t> skew, healed_skew;
  std::vector<uint64_t> incarnation;
  std::vector<FaultEvent> faults;

  std::string Describe() const;  // a few lines for failure reports
};

// Every choice comes from `seed`; `quiesce_limit_ms` (0: 120 s) bounds
// the time the healed cluster gets to go quiet.
Scenario MakeScenario(uint64_t seed, uint64_t quiesce_limit_ms);

}  // namespace meridian::sim

#endif  // MERIDIAN_TESTS_SIM_SCENARIO_H_
