#include "tests/sim/scenario.h"

#include <algorithm>
#include <initializer_list>
#include <sstream>

#include "tests/sim/rng.h"

namespace meridian::sim {

namespace {

template <class T>
T PickOf(Rng& rng, std::initializer_list<T> xs) {
  return Pick(rng, std::vector<T>(xs));
}

}  // namespace

Scenario MakeScenario(uint64_t seed, uint64_t quiesce_limit_ms) {
  Rng rng(seed * 0x9e3779b97f4a7c15ULL + 1);
  Scenario s;
  if (quiesce_limit_ms > 0) s.quiesce_limit_ms = quiesce_limit_ms;
  s.n = static_cast<int>(Between(rng, 3, 5));
  bool two_per_region = Chance(rng, 0.35);
  for (int i = 0; i < s.n; ++i) {
    s.ids.push_back("n" + std::to_string(i));
    s.regions.push_back("r" + std::to_string(two_per_region ? i / 2 : i));
    s.incarnation.push_back(Between(rng, 1, uint64_t{1} << 40));
  }
  gossip::ProtocolOptions& p = s.protocol;
  p.cluster = "sim";
  p.heartbeat_interval_ms = PickOf<uint64_t>(rng, {50, 100, 200});
  p.suspect_after_missed = static_cast<uint32_t>(Between(rng, 2, 3));
  p.down_after_missed = PickOf<uint32_t>(rng, {5, 10});
  p.max_clock_offset_ms = PickOf<uint64_t>(rng, {250, 500, 500});
  p.resend_timeout_ms = p.heartbeat_interval_ms * PickOf<uint64_t>(rng, {2, 4, 10});
  p.max_deltas_per_message = PickOf<size_t>(rng, {1, 3, 16, 512});
  p.window = PickOf<size_t>(rng, {1, 4, 32, 8192});
  p.max_held_back = PickOf<size_t>(rng, {1, 8, 16384});
  p.clock_samples_kept = PickOf<size_t>(rng, {1, 4, 8});

  s.faulty.loss = PickOf<double>(rng, {0, 0.02, 0.1, 0.25});
  s.faulty.duplicate = PickOf<double>(rng, {0, 0.05, 0.2});
  s.faulty.delay_min_ms = 1;
  s.faulty.delay_max_ms = PickOf<uint64_t>(rng, {3, 20, 60});
  s.faulty.spike = PickOf<double>(rng, {0, 0.01, 0.05});
  s.faulty.spike_max_ms = 1500;
  s.clean.delay_min_ms = 1;
  s.clean.delay_max_ms = 10;

  s.fault_ms = Between(rng, 3000, 7000);
  s.tick_cap_ms = Chance(rng, 0.75) ? 100 : 0;
  s.commit_delay_max_ms = PickOf<uint64_t>(rng, {0, 2, 10});
  s.reply_loss = PickOf<double>(rng, {0, 0, 0.05});
  s.sessions = static_cast<int>(Between(rng, 2, 4));
  s.think_max_ms = PickOf<uint64_t>(rng, {100, 200, 400});

  const int64_t limit = static_cast<int64_t>(p.max_clock_offset_ms);
  for (int i = 0; i < s.n; ++i) {
    s.skew.push_back(BetweenSigned(rng, -limit * 3 / 10, limit * 3 / 10));
    s.healed_skew.push_back(BetweenSigned(rng, -limit * 15 / 100, limit * 15 / 100));
  }
  if (Chance(rng, 0.2)) {  // within the limit, but past the gate's 40%
    int i = static_cast<int>(Between(rng, 0, s.n - 1));
    s.skew[i] = BetweenSigned(rng, limit * 45 / 100, limit * 9 / 10) * (Chance(rng, 0.5) ? 1 : -1);
  }

  using K = FaultEvent::Kind;
  // Partitions, each healed before the next and before the end.
  if (!Chance(rng, 0.15)) {
    uint64_t t = Between(rng, 0, 800);
    while (t + 200 < s.fault_ms) {
      uint64_t end = std::min(t + Between(rng, 200, 2500), s.fault_ms);
      FaultEvent f;
      f.t = t;
      f.kind = K::kPartition;
      f.partition = RandomPartition(s.n, rng);
      s.faults.push_back(f);
      s.faults.push_back(FaultEvent{end, K::kHealNetwork, -1, 0, {}});
      t = end + Between(rng, 100, 1500);
    }
  }
  // Crashes, each restarted from its data dir before the end.
  int crashes = static_cast<int>(Between(rng, 0, 3));
  for (int c = 0; c < crashes; ++c) {
    int node = static_cast<int>(Between(rng, 0, s.n - 1));
    uint64_t t = Between(rng, 1, s.fault_ms - 1);
    // The last choice is a long absence: down for the rest of the fault
    // phase while the others go on writing.
    uint64_t back = std::min(t + PickOf<uint64_t>(rng, {0, 50, 500, 2000, s.fault_ms}), s.fault_ms);
    s.faults.push_back(FaultEvent{t, K::kCrash, node, 0, {}});
    s.faults.push_back(FaultEvent{back, K::kRestart, node, 0, {}});
  }
  // Clock skew beyond the limit, back within it before the end.
  int skews = Chance(rng, 0.5) ? static_cast<int>(Between(rng, 1, 2)) : 0;
  for (int k = 0; k < skews; ++k) {
    int node = static_cast<int>(Between(rng, 0, s.n - 1));
    uint64_t t = Between(rng, 0, s.fault_ms * 7 / 10);
    int64_t far = BetweenSigned(rng, limit * 12 / 10, limit * 4) * (Chance(rng, 0.5) ? 1 : -1);
    uint64_t back = std::min(t + Between(rng, 300, 3000), s.fault_ms);
    s.faults.push_back(FaultEvent{t, K::kSkew, node, far, {}});
    s.faults.push_back(
        FaultEvent{back, K::kSkew, node, BetweenSigned(rng, -limit * 3 / 10, limit * 3 / 10), {}});
  }
  if (Chance(rng, 0.15)) {
    int node = static_cast<int>(Between(rng, 0, s.n - 1));
    s.faults.push_back(FaultEvent{Between(rng, 0, s.fault_ms - 1),
                                  K::kDiskFull,
                                  node,
                                  static_cast<int64_t>(Between(rng, 1, 3)),
                                  {}});
  }
  // At most one wipe per run: a second could take the last copy of what
  // the first wiped node had not been refilled with yet.
  if (Chance(rng, 0.2)) {
    FaultEvent f;
    f.t = Between(rng, 200, s.fault_ms * 6 / 10);
    f.kind = K::kWipe;
    f.node = static_cast<int>(Between(rng, 0, s.n - 1));
    f.value = static_cast<int64_t>(PickOf<uint64_t>(rng, {0, 300, 1500}));
    s.faults.push_back(f);
  }
  s.ship_failure = PickOf<double>(rng, {0, 0, 0.03});
  s.protocol.anti_entropy.interval_ms = PickOf<uint64_t>(rng, {200, 500, 1000, 3000});
  s.protocol.anti_entropy.round_timeout_ms = PickOf<uint64_t>(rng, {1500, 10000});
  s.protocol.ae_max_ship_lag_ms = PickOf<uint64_t>(rng, {100, 1000, 5000});
  s.protocol.ae_all_up_interval_ms = PickOf<uint64_t>(rng, {0, 5 * s.protocol.anti_entropy.interval_ms});
  s.protocol.ae_all_up_max_wait_ms = 2 * s.protocol.ae_all_up_interval_ms;  // no draw: seeds keep their scenarios
  // Now and then a retention horizon short enough for a long absence to
  // pass it: peers retire the absent incarnation, which rejoins as a new
  // one. When the fault phase is long enough, either one node surely stays
  // down past it, or one partition (the only one) outlasts it: a minority
  // side, or both sides of a partial partition or a ring, each in contact
  // with a majority, retire each other. 0: none.
  s.protocol.retention_horizon_ms = 0;
  if (Chance(rng, 0.3)) {
    const uint64_t horizon = Between(rng, 3500, 5000);
    s.protocol.retention_horizon_ms = horizon;
    if (s.fault_ms >= horizon + 1500) {
      const uint64_t t = Between(rng, 0, s.fault_ms - horizon - 1500);
      if (Chance(rng, 0.5)) {
        const int node = static_cast<int>(Between(rng, 0, s.n - 1));
        s.faults.push_back(FaultEvent{t, K::kCrash, node, 0, {}});
        s.faults.push_back(FaultEvent{t + horizon + 1000, K::kRestart, node, 0, {}});
      } else {
        s.faults.erase(std::remove_if(s.faults.begin(), s.faults.end(),
                                      [](const FaultEvent& f) {
                                        return f.kind == K::kPartition ||
                                               f.kind == K::kHealNetwork;
                                      }),
                       s.faults.end());
        FaultEvent f;
        f.t = t;
        f.kind = K::kPartition;
        f.partition = RandomPartition(s.n, rng);
        s.faults.push_back(f);
        s.faults.push_back(FaultEvent{t + horizon + 1000, K::kHealNetwork, -1, 0, {}});
      }
    }
  }
  // Drawn last, so that every earlier choice of a seed stays as it was.
  // One mvregister session: each adds about a quarter to the commits,
  // which is what a run's time follows.
  s.mv_sessions = 1;
  s.resolve_chance = PickOf<double>(rng, {0.3, 0.6, 0.9});
  // One text session, typing more slowly than the others (so that it adds
  // about what an mvregister session does), at an older version it saw
  // with `text_old_chance`.
  s.text_sessions = 1;
  s.text_old_chance = PickOf<double>(rng, {0.1, 0.3, 0.6});
  std::stable_sort(s.faults.begin(), s.faults.end(),
                   [](const FaultEvent& a, const FaultEvent& b) { return a.t < b.t; });
  return s;
}

std::string Scenario::Describe() const {
  std::ostringstream o;
  o << n << " nodes (";
  for (int i = 0; i < n; ++i) o << (i ? " " : "") << ids[i] << "@" << regions[i];
  o << "); heartbeat " << protocol.heartbeat_interval_ms << " ms, suspect/down after "
    << protocol.suspect_after_missed << "/" << protocol.down_after_missed << ", max offset "
    << protocol.max_clock_offset_ms << " ms, resend " << protocol.resend_timeout_ms
    << " ms, deltas/msg " << protocol.max_deltas_per_message << ", window " << protocol.window
    << ", held back " << protocol.max_held_back << ", clock samples " << protocol.clock_samples_kept
    << "; anti-entropy every " << protocol.anti_entropy.interval_ms << " ms, round timeout "
    << protocol.anti_entropy.round_timeout_ms << " ms, max ship lag " << protocol.ae_max_ship_lag_ms
    << " ms; log retention " << protocol.log_retention_ms << " ms, "
    << protocol.log_retention_bytes << " bytes; retention horizon "
    << protocol.retention_horizon_ms << " ms\n";
  o << "  network: loss " << faulty.loss << ", dup " << faulty.duplicate << ", delay "
    << faulty.delay_min_ms << ".." << faulty.delay_max_ms << " ms, spikes " << faulty.spike
    << "; fault phase " << fault_ms << " ms; tick cap " << tick_cap_ms << " ms; commit delay 0.."
    << commit_delay_max_ms << " ms; reply loss " << reply_loss << "; ship failures " << ship_failure
    << "; " << sessions << " sessions, " << mv_sessions << " mvregister sessions (resolve "
    << resolve_chance << "), " << text_sessions << " text sessions (older versions "
    << text_old_chance << ")\n  skews:";
  for (int i = 0; i < n; ++i) o << " " << ids[i] << "=" << skew[i];
  o << "\n  faults:";
  for (const FaultEvent& f : faults) {
    o << " [" << f.t << " ";
    switch (f.kind) {
      case FaultEvent::Kind::kPartition:
        o << f.partition.description;
        break;
      case FaultEvent::Kind::kHealNetwork:
        o << "heal";
        break;
      case FaultEvent::Kind::kCrash:
        o << "crash n" << f.node;
        break;
      case FaultEvent::Kind::kRestart:
        o << "restart n" << f.node;
        break;
      case FaultEvent::Kind::kSkew:
        o << "skew n" << f.node << "=" << f.value;
        break;
      case FaultEvent::Kind::kDiskFull:
        o << "disk full n" << f.node << " x" << f.value;
        break;
      case FaultEvent::Kind::kWipe:
        o << "wipe n" << f.node << " down " << f.value << " ms";
        break;
    }
    o << "]";
  }
  return o.str();
}

}  // namespace meridian::sim
