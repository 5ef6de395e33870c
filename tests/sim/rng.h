// The simulator's one source of randomness: a seeded std::mt19937_64 with
// helpers whose results depend only on the generator's output (not on the
// standard library's distributions), so a seed replays exactly.
#ifndef MERIDIAN_TESTS_SIM_RNG_H_
#define MERIDIAN_TESTS_SIM_RNG_H_

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace meridian::sim {

using Rng = std::mt19937_64;

// Uniform in [lo, hi] (inclusive); lo when hi <= lo.
inline uint64_t Between(Rng& rng, uint64_t lo, uint64_t hi) {
  if (hi <= lo) return lo;
  return lo + rng() % (hi - lo + 1);
}

inline int64_t BetweenSigned(Rng& rng, int64_t lo, int64_t hi) {
  if (hi <= lo) return lo;
  return lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo + 1));
}

// True with probability p.
inline bool Chance(Rng& rng, double p) {
  if (p <= 0) return false;
  return static_cast<double>(rng() >> 11) * 0x1.0p-53 < p;
}

template <class T>
const T& Pick(Rng& rng, const std::vector<T>& v) {
  return v[Between(rng, 0, v.size() - 1)];
}

template <class T>
void Shuffle(Rng& rng, std::vector<T>* v) {
  for (size_t i = v->size(); i > 1; --i) std::swap((*v)[i - 1], (*v)[Between(rng, 0, i - 1)]);
}

}  // namespace meridian::sim

#endif  // MERIDIAN_TESTS_SIM_RNG_H_
