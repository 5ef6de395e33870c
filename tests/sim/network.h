// The simulator's virtual network: which node can reach which (partitions
// shaped as Jepsen's nemeses cut them), and what happens to one message on
// a link that is up (lost, duplicated, delayed; random delays reorder).
// It decides fates only; the simulation's event queue carries the bytes.
#ifndef MERIDIAN_TESTS_SIM_NETWORK_H_
#define MERIDIAN_TESTS_SIM_NETWORK_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tests/sim/rng.h"

namespace meridian::sim {

struct LinkQuality {
  double loss = 0;       // probability a message is dropped
  double duplicate = 0;  // probability a message arrives twice
  uint64_t delay_min_ms = 1;
  uint64_t delay_max_ms = 5;
  double spike = 0;  // probability of a long delay (strong reordering)
  uint64_t spike_max_ms = 0;
};

// A set of one-way cuts: (from, to) pairs that drop everything.
struct Partition {
  std::string shape;  // "isolate", "split", "bridge", "ring", "partial", "one-way"
  std::vector<std::pair<int, int>> cuts;
  std::string description;  // e.g. "bridge n0,n1 | n3,n4 via n2"
};

// Jepsen's partition shapes over nodes 0..n-1 (n >= 2):
//   isolate: one node cut from all others;
//   split:   two halves (a minority and a majority);
//   bridge:  two halves that cannot reach each other, and one node that
//            reaches both;
//   ring:    every node reaches its two ring neighbours only, so each sees
//            a majority and no two see the same one (n >= 4);
//   partial: one pair cut in both directions, all else up;
//   one-way: one node's messages to the others are dropped, not theirs
//            to it.
Partition RandomPartition(int n, Rng& rng);

class VirtualNetwork {
 public:
  explicit VirtualNetwork(int nodes);

  void SetQuality(const LinkQuality& q) { quality_ = q; }
  const LinkQuality& quality() const { return quality_; }

  void Apply(const Partition& p);
  void Heal();
  bool Connected(int from, int to) const { return !cut_[from][to]; }
  bool healed() const;

  // The delivery delays of one message sent now from `from` to `to`:
  // empty when the link is cut or the message is lost, two entries when it
  // is duplicated.
  std::vector<uint64_t> Fate(int from, int to, Rng& rng);

  uint64_t sent() const { return sent_; }
  uint64_t dropped_cut() const { return dropped_cut_; }
  uint64_t lost() const { return lost_; }
  uint64_t duplicated() const { return duplicated_; }

 private:
  uint64_t Delay(Rng& rng) const;

  std::vector<std::vector<bool>> cut_;
  LinkQuality quality_;
  uint64_t sent_ = 0, dropped_cut_ = 0, lost_ = 0, duplicated_ = 0;
};

}  // namespace meridian::sim

#endif  // MERIDIAN_TESTS_SIM_NETWORK_H_
