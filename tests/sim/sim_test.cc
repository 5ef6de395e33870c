// The deterministic replication simulator (ctest label sim): thousands of
// seeded runs of a small cluster under partitions, loss, duplication,
// reordering, delays, crashes with restart from storage and clock skew,
// each judged by the checker after it heals and goes quiet (cluster.h,
// checker.h), with mvregister writes and resolutions of the review queue,
// and text edits at current and older versions, among the client
// operations.
//
// MERIDIAN_SIM_SEEDS=n   seeds per run (default 2,000), from a fresh base
//                        seed printed at the start;
// MERIDIAN_SIM_SEED=s    replays exactly seed s, with its event trace
//                        (the last MERIDIAN_SIM_TRACE_LINES events, default 120);
// MERIDIAN_SIM_LAX_GATE=1  only counts (and traces), instead of failing,
//                        writes acknowledged by a node whose clock has been
//                        beyond the limit from most reachable peers for
//                        longer than it takes to notice (see
//                        SimOptions::strict_gate), to look past such a
//                        failure at others;
// MERIDIAN_SIM_NO_ANTI_ENTROPY=1  runs without Merkle anti-entropy (and so
//                        without bootstrapping incarnations and wipes):
//                        delta shipping alone (SimOptions::anti_entropy);
// MERIDIAN_SIM_DIR=dir   where the temporary data dirs go (default
//                        /dev/shm when writable, else $TMPDIR or /tmp).
#define BOOST_TEST_MODULE sim
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>

#include "tests/sim/cluster.h"

using namespace meridian::sim;

namespace {

// One temporary root per test process, removed at exit.
class TempRoot {
 public:
  TempRoot() {
    std::string base;
    if (const char* d = std::getenv("MERIDIAN_SIM_DIR")) {
      base = d;
    } else if (access("/dev/shm", W_OK) == 0) {
      base = "/dev/shm";  // LevelDB's fsyncs on open cost nothing there
    } else if (const char* t = std::getenv("TMPDIR")) {
      base = t;
    } else {
      base = "/tmp";
    }
    std::string templ = base + "/meridian-sim-XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) {
      BOOST_FAIL("cannot create a temporary directory under " << base);
    }
    path_ = templ;
  }
  ~TempRoot() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TempRoot& Root() {
  static TempRoot root;
  return root;
}

SeedReport RunOne(uint64_t seed, SimOptions options) {
  options.root = Root().path() + "/seed-" + std::to_string(seed);
  SeedReport r = RunSeed(seed, options);
  std::error_code ec;
  std::filesystem::remove_all(options.root, ec);
  return r;
}

std::string Describe(const SeedReport& r) {
  std::string out = "seed " + std::to_string(r.seed) + " failed:\n";
  for (const auto& f : r.failures) out += "  " + f + "\n";
  out += "  scenario: " + r.scenario + "\n";
  if (!r.history.empty()) out += r.history;
  if (!r.trace.empty()) {
    out += "  last events:\n";
    for (const auto& line : r.trace) out += "    " + line + "\n";
  }
  out += "  replay: MERIDIAN_SIM_SEED=" + std::to_string(r.seed) + "\n";
  return out;
}

// A failing seed runs again with the trace on; it must fail the same way.
void ReportFailure(const SeedReport& first, SimOptions traced) {
  traced.trace = true;
  SeedReport again = RunOne(first.seed, traced);
  if (again.fingerprint != first.fingerprint || again.failures != first.failures) {
    BOOST_ERROR("seed " << first.seed << " did not replay identically (fingerprints "
                        << first.fingerprint << " and " << again.fingerprint << ")");
  }
  BOOST_ERROR(Describe(again));
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_seed_converges_and_keeps_acknowledged_writes) {
  bool single = false;
  uint64_t base = 0;
  int seeds = 2000;
  if (const char* s = std::getenv("MERIDIAN_SIM_SEED")) {
    single = true;
    base = std::strtoull(s, nullptr, 10);
    seeds = 1;
  } else {
    base = std::random_device()() * uint64_t{1000003} + std::random_device()();
    if (const char* b = std::getenv("MERIDIAN_SIM_BASE")) base = std::strtoull(b, nullptr, 10);
    if (const char* n = std::getenv("MERIDIAN_SIM_SEEDS")) seeds = std::max(1, std::atoi(n));
  }
  std::cout << "sim: " << seeds << " seeds from " << base << " (data in " << Root().path() << ")"
            << std::endl;
  auto start = std::chrono::steady_clock::now();
  SimStats total;
  uint64_t slowest = base;
  int failures = 0;
  for (int i = 0; i < seeds; ++i) {
    uint64_t seed = base + static_cast<uint64_t>(i);
    SimOptions options;
    options.trace = single;
    options.strict_gate = std::getenv("MERIDIAN_SIM_LAX_GATE") == nullptr;
    options.anti_entropy = std::getenv("MERIDIAN_SIM_NO_ANTI_ENTROPY") == nullptr;
    if (const char* t = std::getenv("MERIDIAN_SIM_TRACE_LINES")) {
      options.trace_lines = static_cast<size_t>(std::max(1, std::atoi(t)));
    }
    SeedReport r = RunOne(seed, options);
    total.events += r.stats.events;
    total.messages += r.stats.messages;
    total.commits += r.stats.commits;
    total.writes_acknowledged += r.stats.writes_acknowledged;
    total.writes_refused_skew += r.stats.writes_refused_skew;
    total.writes_other += r.stats.writes_other;
    total.reads_answered += r.stats.reads_answered;
    total.reads_timed_out += r.stats.reads_timed_out;
    total.crashes += r.stats.crashes;
    total.wipes += r.stats.wipes;
    total.partitions += r.stats.partitions;
    total.disk_full_failures += r.stats.disk_full_failures;
    total.acked_while_skewed += r.stats.acked_while_skewed;
    total.refused_clock_offset += r.stats.refused_clock_offset;
    total.refused_other += r.stats.refused_other;
    total.resends += r.stats.resends;
    total.deltas_duplicate += r.stats.deltas_duplicate;
    total.repairs_below_floor += r.stats.repairs_below_floor;
    total.ae_rounds_completed += r.stats.ae_rounds_completed;
    total.ae_rounds_abandoned += r.stats.ae_rounds_abandoned;
    total.ae_rounds_declined += r.stats.ae_rounds_declined;
    total.ae_states_received += r.stats.ae_states_received;
    total.ae_repairs += r.stats.ae_repairs;
    total.log_truncated += r.stats.log_truncated;
    total.beyond_log += r.stats.beyond_log;
    total.tombstones_collected += r.stats.tombstones_collected;
    total.retirements += r.stats.retirements;
    total.rejoins += r.stats.rejoins;
    total.writes_retired += r.stats.writes_retired;
    total.mv_writes_acknowledged += r.stats.mv_writes_acknowledged;
    total.resolutions_acknowledged += r.stats.resolutions_acknowledged;
    total.conflicts_opened += r.stats.conflicts_opened;
    total.conflicts_closed += r.stats.conflicts_closed;
    total.review_queue_final += r.stats.review_queue_final;
    total.text_writes_acknowledged += r.stats.text_writes_acknowledged;
    total.text_unknown_version += r.stats.text_unknown_version;
    if (r.stats.quiesce_ms > total.quiesce_ms) {
      total.quiesce_ms = r.stats.quiesce_ms;
      slowest = seed;
    }
    if (single) {
      if (r.ok) {
        for (const auto& line : r.trace) std::cout << line << "\n";
      }
      std::cout << "scenario: " << r.scenario << "\nstats: " << r.stats.events << " events, "
                << r.stats.messages << " messages, " << r.stats.writes_acknowledged
                << " writes acknowledged, quiescent " << r.stats.quiesce_ms
                << " ms after healing; fingerprint " << r.fingerprint << std::endl;
    }
    if (!r.ok) {
      if (single) {
        BOOST_ERROR(Describe(r));
      } else {
        ReportFailure(r, options);
      }
      if (++failures >= 3) break;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "sim: " << seeds << " seeds, " << failures << " failed (base seed " << base
            << ") in " << secs << " s: " << total.events << " events, " << total.messages
            << " messages, " << total.commits << " commits, " << total.writes_acknowledged
            << " writes acknowledged, " << total.writes_refused_skew << " refused for clock skew, "
            << total.writes_other << " otherwise unacknowledged, " << total.reads_answered
            << " session reads answered, " << total.reads_timed_out << " timed out, "
            << total.crashes << " crashes, " << total.wipes << " wipes, " << total.partitions
            << " partitions, "
            << total.disk_full_failures << " writes failed on a full disk, "
            << total.acked_while_skewed
            << " acknowledged by a node beyond the clock limit from most peers; protocol: "
            << total.refused_clock_offset << " messages refused for clock offset, "
            << total.refused_other << " other refusals, " << total.resends << " resends, "
            << total.deltas_duplicate << " duplicate deltas; anti-entropy: "
            << total.ae_rounds_completed << " rounds completed, " << total.ae_rounds_abandoned
            << " abandoned, " << total.ae_rounds_declined << " declined, "
            << total.ae_states_received << " states received, "
            << total.ae_repairs << " repairs committed, " << total.repairs_below_floor
            << " refused below the sender's collection floor; log: " << total.log_truncated
            << " entries collected, " << total.beyond_log
            << " times a peer lacked collected entries, " << total.tombstones_collected
            << " tombstones collected; horizon: " << total.retirements
            << " incarnations retired, " << total.rejoins << " rejoins, " << total.writes_retired
            << " committed writes held nowhere else at a rejoin; mvregisters: "
            << total.mv_writes_acknowledged << " writes and " << total.resolutions_acknowledged
            << " resolutions acknowledged, " << total.conflicts_opened
            << " conflict entries put and " << total.conflicts_closed << " deleted, "
            << total.review_queue_final << " left in the review queues at the end; text: "
            << total.text_writes_acknowledged << " writes acknowledged, "
            << total.text_unknown_version << " refused for a version their node lacked; "
            << "slowest quiescence "
            << total.quiesce_ms
            << " ms (seed " << slowest << ")" << std::endl;
  // Anti-entropy must have done real work over this many seeds (a broken
  // wiring would leave these at zero and every other check green).
  if (seeds >= 100 && failures == 0 && std::getenv("MERIDIAN_SIM_NO_ANTI_ENTROPY") == nullptr) {
    BOOST_TEST(total.ae_rounds_completed > 0u);
    BOOST_TEST(total.ae_states_received > 0u);
    BOOST_TEST(total.log_truncated > 0u);
    BOOST_TEST(total.beyond_log > 0u);
    BOOST_TEST(total.tombstones_collected > 0u);
  }
  // The mvregister workload must make conflicts, resolve some and leave
  // some for review (else the review queue checks judge nothing).
  if (seeds >= 100 && failures == 0) {
    BOOST_TEST(total.resolutions_acknowledged > 0u);
    BOOST_TEST(total.conflicts_closed > 0u);
    BOOST_TEST(total.review_queue_final > 0u);
    BOOST_TEST(total.text_writes_acknowledged > 0u);
  }
  // Retirements need a long fault phase and a horizon (about one seed in
  // ten): only a longer run can count on some.
  if (seeds >= 500 && failures == 0) {
    BOOST_TEST(total.retirements > 0u);
    BOOST_TEST(total.rejoins > 0u);
  }
}

BOOST_AUTO_TEST_CASE(a_seed_replays_exactly) {
  uint64_t acknowledged = 0;
  for (uint64_t seed : {1u, 2u, 3u, 4u, 5u}) {
    SeedReport a = RunOne(seed, SimOptions());
    SeedReport b = RunOne(seed, SimOptions());
    BOOST_TEST(a.fingerprint == b.fingerprint, "seed " << seed);
    BOOST_TEST(a.failures == b.failures, "seed " << seed);
    BOOST_TEST(a.stats.events == b.stats.events, "seed " << seed);
    BOOST_TEST(a.stats.events > 200u, "seed " << seed << " ran " << a.stats.events << " events");
    // Each seed writes something; how much depends on how soon its
    // faults let the fresh nodes bootstrap from the --bootstrap one.
    BOOST_TEST(a.stats.writes_acknowledged >= 1u, "seed " << seed);
    acknowledged += a.stats.writes_acknowledged;
  }
  BOOST_TEST(acknowledged >= 25u, "five seeds acknowledged only " << acknowledged << " writes");
}

// The checker must be able to fail: each deliberately broken driver is
// caught within a few seeds.
BOOST_AUTO_TEST_CASE(the_checker_catches_a_broken_driver) {
  const Sabotage kinds[] = {Sabotage::kDropApplies,     Sabotage::kAckWithoutApply,
                            Sabotage::kIgnoreGate,      Sabotage::kReadWithoutWaiting,
                            Sabotage::kAckBeforeCommit, Sabotage::kSkipGate,
                            Sabotage::kRepairWithoutStates, Sabotage::kResolveMissingDot,
                            Sabotage::kDropConflictEntries, Sabotage::kTextIgnoreVersion};
  for (Sabotage kind : kinds) {
    SimOptions options;
    options.sabotage = kind;
    options.quiesce_limit_ms = 10000;
    const int kSeeds =
        kind == Sabotage::kAckBeforeCommit ? 200 : kind == Sabotage::kSkipGate ? 120 : 40;
    int caught = 0, tried = 0;
    std::string first;
    for (uint64_t seed = 1000; tried < kSeeds; ++seed, ++tried) {
      SeedReport r = RunOne(seed, options);
      if (!r.ok) {
        caught = 1;
        first = r.failures.front();
        break;
      }
    }
    std::cout << "sabotage " << SabotageName(kind) << ": caught at seed " << 1000 + tried
              << " (after " << tried << " passing seeds): " << first << std::endl;
    BOOST_TEST(caught > 0,
               "sabotage " << SabotageName(kind) << " went unnoticed in " << kSeeds << " seeds");
    if (kind == Sabotage::kSkipGate) {
      // Only the strict gate check can see it.
      BOOST_TEST(first.find("although its clock") != std::string::npos, first);
    }
  }
}
