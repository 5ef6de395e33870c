// The chaos run's end checks (issue 9), as a pure function of the history
// (history.h) and of what the healed, converged cluster answered; no
// sockets, so tests/chaos/checker_test.cc can feed it made-up histories.
//
// Rules, per key (a key's ops are all of one kind family):
// - register: the final value was written by some attempted op, and its
//   hlc is at least that of every acknowledged write (the greatest
//   acknowledged write, or a later attempted one, wins);
// - mvregister: every value held (one, or the siblings) was attempted, and
//   a key with an acknowledged write has a value;
// - counter (and a map's "hits"): acknowledged sum <= value <= attempted sum
//   (every increment is positive);
// - set (and a map's "tags"): every acknowledged add whose element no op
//   tried to remove is present; every element present was attempted;
// - map "owner": as a register without hlc (the value was attempted, and
//   is there when any write was acknowledged);
// - text: the document is a run of whole markers, each attempted and
//   present once; every acknowledged insert whose marker no op tried to
//   delete is present;
// - review queue: every node lists each mvregister key that holds siblings
//   exactly once, and no other.
#ifndef MERIDIAN_TESTS_CHAOS_CHECKER_H_
#define MERIDIAN_TESTS_CHAOS_CHECKER_H_

#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/chaos/history.h"

namespace meridian::chaos {

struct FinalState {
  // Every key under chaos/ as GET /v1/scan answered it (key → item), read
  // from one node once every node's state digest agreed.
  std::map<std::string, nlohmann::json> items;
  // Per node: the keys its review queue lists under chaos/ (duplicates
  // kept, in the order listed).
  std::vector<std::vector<std::string>> review_keys;
};

struct Violation {
  // True when acknowledged writes are missing (they count in `lost`);
  // false for other broken promises (a phantom value, a queue entry).
  bool loss = false;
  size_t lost = 0;  // acknowledged ops missing, when `loss`
  std::string what;
  std::vector<const Op*> ops;  // the operations involved
};

struct CheckResult {
  std::vector<Violation> violations;
  size_t lost = 0;        // acknowledged ops whose effect is missing
  size_t keys = 0;        // keys checked
  size_t conflicts = 0;   // mvregister keys holding siblings
  bool ok() const { return violations.empty(); }
};

// `ops` must outlive the result (violations point into it).
CheckResult Check(const std::vector<Op>& ops, const FinalState& final_state);

}  // namespace meridian::chaos

#endif  // MERIDIAN_TESTS_CHAOS_CHECKER_H_
