// The deterministic replication simulator (DESIGN.md §10): 2-5 nodes in one
// process, each with a real LevelDB store (a temp dir, sync = false), a
// HybridClock over a ManualClock, the real node::Committer and the real
// gossip::ScopedProtocol (one scope), connected by a virtual network (network.h) and driven
// by one event queue ordered by (virtual time, sequence number). Messages
// cross the network as bytes (gossip::Encode / gossip::Decode). Every
// random choice comes from the seed, so a seed replays exactly.
//
// One run: a fault phase (client writes and session reads on a small key
// space, mvregister writes and resolutions of the review queue and text
// edits at current and older versions among them,
// while partitions, loss, duplication, reordering, delays, crashes with
// restart from storage, clock skew within and beyond the limit, and full
// disks come and go), then everything heals and the cluster runs until it
// is quiescent (every node has applied the same vector, every peer has
// acknowledged every log, every node takes writes again) or a virtual-time
// bound passes. The checker (checker.h) then judges the
// final states against the history (history.h).
#ifndef MERIDIAN_TESTS_SIM_CLUSTER_H_
#define MERIDIAN_TESTS_SIM_CLUSTER_H_

#include <cstdint>
#include <string>
#include <vector>

namespace meridian::sim {

// Deliberate driver bugs, to prove the checker catches what it claims to
// (sim_test.cc runs a few seeds with each and expects failures).
enum class Sabotage {
  kNone,
  kDropApplies,          // ApplyRequests are dropped, never answered
  kAckWithoutApply,      // OnApplied is reported without committing
  kIgnoreGate,           // writes the Gate refuses are committed anyway
  kReadWithoutWaiting,   // session reads answer without waiting for the token
  kAckBeforeCommit,      // clients are acknowledged when the write is queued
  kSkipGate,             // writes never ask the Gate (caught by strict_gate)
  kRepairWithoutStates,  // anti-entropy repairs advance the applied vector but drop their states
  kResolveMissingDot,    // a resolution's context leaves out one of the siblings it names
  kDropConflictEntries,  // the conflict index is emptied after every group commit
  kTextIgnoreVersion,    // text edits are applied at their node's current version, not theirs
};
const char* SabotageName(Sabotage s);

struct SimOptions {
  // Directory that holds this run's data dirs; created if missing. The
  // caller removes it.
  std::string root;
  // Keep the last `trace_lines` events as readable lines (slower).
  bool trace = false;
  size_t trace_lines = 120;
  Sabotage sabotage = Sabotage::kNone;
  // Fail a run in which a node acknowledges a write although its clock has
  // been more than max_clock_offset_ms off from most of the peers it can
  // reach (up, link whole both ways; the same set of them throughout) for
  // longer than it takes to notice: heartbeat_interval_ms *
  // (clock_samples_kept + 2) + 500 ms (DESIGN.md §3: such a node stops
  // taking writes). On by default; off (the sim_test
  // switch MERIDIAN_SIM_LAX_GATE) such writes are only counted in
  // SimStats::acked_while_skewed and traced.
  bool strict_gate = true;
  // Virtual time the cluster gets to go quiet after healing (0: the
  // default, 120 s).
  uint64_t quiesce_limit_ms = 0;
  // Run Merkle anti-entropy (and with it fresh incarnations that bootstrap,
  // and wipes in the fault menu), as meridiand does. Off
  // (MERIDIAN_SIM_NO_ANTI_ENTROPY=1 in sim_test) to see what delta shipping
  // alone does.
  bool anti_entropy = true;
};

struct SimStats {
  uint64_t events = 0;
  uint64_t messages = 0;
  uint64_t commits = 0;
  uint64_t writes_acknowledged = 0;
  uint64_t writes_refused_skew = 0;
  uint64_t writes_other = 0;  // unavailable, lost in crash, failed, reply lost
  uint64_t reads_answered = 0;
  uint64_t reads_timed_out = 0;
  uint64_t crashes = 0;
  uint64_t wipes = 0;  // nodes that lost their data dir and came back as a new incarnation
  uint64_t partitions = 0;
  uint64_t disk_full_failures = 0;  // commits that failed (TEST_FailWritesWithNoSpace)
  // Acknowledged by a node whose clock had been beyond the limit from most
  // peers' for longer than it takes to notice (a failure with strict_gate).
  uint64_t acked_while_skewed = 0;
  // Protocol counters, summed over every node and life.
  uint64_t refused_clock_offset = 0;
  uint64_t refused_other = 0;
  uint64_t resends = 0;
  uint64_t deltas_duplicate = 0;
  uint64_t repairs_below_floor = 0;  // repairs refused: the sender's floor not applied
  // Anti-entropy, summed likewise.
  uint64_t ae_rounds_completed = 0;
  uint64_t ae_rounds_abandoned = 0;
  uint64_t ae_rounds_declined = 0;
  uint64_t ae_states_received = 0;
  uint64_t ae_repairs = 0;  // repairs committed (with states or an advance)
  uint64_t log_truncated = 0;  // log entries collected
  uint64_t beyond_log = 0;     // times a peer lacked collected entries (repaired by AE)
  uint64_t tombstones_collected = 0;
  // Retention horizon: incarnations retired by a peer, nodes that rejoined
  // as a new incarnation for it, and committed writes that then may have
  // been lost (held by no other node).
  uint64_t retirements = 0;
  uint64_t rejoins = 0;
  uint64_t writes_retired = 0;
  // The mvregister workload: acknowledged writes and resolutions, conflict
  // index entries put and deleted (summed over every node and life), and
  // the review queue's length at the end (one node's; all are equal).
  uint64_t mv_writes_acknowledged = 0;
  uint64_t resolutions_acknowledged = 0;
  uint64_t conflicts_opened = 0;
  uint64_t conflicts_closed = 0;
  uint64_t review_queue_final = 0;
  // The text workload: edits and whole-text deletes acknowledged, edits
  // refused because their node lacked their version (409 unknown_version).
  uint64_t text_writes_acknowledged = 0;
  uint64_t text_unknown_version = 0;
  uint64_t quiesce_ms = 0;  // virtual time from heal to quiescence
  uint64_t end_ms = 0;      // virtual time at the end
};

struct SeedReport {
  uint64_t seed = 0;
  bool ok = true;
  std::vector<std::string> failures;  // empty when ok
  std::string scenario;               // what the seed chose, in a few lines
  std::string history;                // a short history of the keys involved (on failure)
  std::vector<std::string> trace;     // last events, when SimOptions::trace
  uint64_t fingerprint = 0;           // hash of every event: equal runs, equal prints
  SimStats stats;
};

SeedReport RunSeed(uint64_t seed, const SimOptions& options);

}  // namespace meridian::sim

#endif  // MERIDIAN_TESTS_SIM_CLUSTER_H_
