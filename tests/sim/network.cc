#include "tests/sim/network.h"

#include <algorithm>

namespace meridian::sim {

namespace {

std::string Names(const std::vector<int>& nodes) {
  std::string out;
  for (int n : nodes) {
    if (!out.empty()) out += ',';
    out += "n" + std::to_string(n);
  }
  return out;
}

void CutBetween(const std::vector<int>& a, const std::vector<int>& b, Partition* p) {
  for (int x : a) {
    for (int y : b) {
      p->cuts.push_back({x, y});
      p->cuts.push_back({y, x});
    }
  }
}

}  // namespace

Partition RandomPartition(int n, Rng& rng) {
  std::vector<int> order(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  Shuffle(rng, &order);
  std::vector<std::string> shapes = {"isolate", "split", "partial", "one-way"};
  if (n >= 3) shapes.push_back("bridge");
  if (n >= 4) shapes.push_back("ring");
  Partition p;
  p.shape = Pick(rng, shapes);
  if (p.shape == "isolate") {
    std::vector<int> rest(order.begin() + 1, order.end());
    CutBetween({order[0]}, rest, &p);
    p.description = "isolate n" + std::to_string(order[0]);
  } else if (p.shape == "split") {
    size_t half = static_cast<size_t>(n) / 2;
    std::vector<int> a(order.begin(), order.begin() + static_cast<long>(half));
    std::vector<int> b(order.begin() + static_cast<long>(half), order.end());
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    CutBetween(a, b, &p);
    p.description = "split " + Names(a) + " | " + Names(b);
  } else if (p.shape == "bridge") {
    int bridge = order[0];
    std::vector<int> rest(order.begin() + 1, order.end());
    size_t half = rest.size() / 2;
    std::vector<int> a(rest.begin(), rest.begin() + static_cast<long>(half));
    std::vector<int> b(rest.begin() + static_cast<long>(half), rest.end());
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    CutBetween(a, b, &p);
    p.description = "bridge " + Names(a) + " | " + Names(b) + " via n" + std::to_string(bridge);
  } else if (p.shape == "ring") {
    // order is the ring; neighbours at distance 1 stay connected.
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < n; ++j) {
        int d = std::abs(i - j);
        d = std::min(d, n - d);
        if (d > 1) p.cuts.push_back({order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]});
      }
    }
    p.description = "ring " + Names(order);
  } else if (p.shape == "partial") {
    CutBetween({order[0]}, {order[1]}, &p);
    p.description = "partial n" + std::to_string(order[0]) + " x n" + std::to_string(order[1]);
  } else {  // one-way
    for (int i = 1; i < n; ++i) p.cuts.push_back({order[0], order[static_cast<size_t>(i)]});
    p.description = "one-way: n" + std::to_string(order[0]) + "'s messages dropped";
  }
  return p;
}

VirtualNetwork::VirtualNetwork(int nodes)
    : cut_(static_cast<size_t>(nodes), std::vector<bool>(static_cast<size_t>(nodes), false)) {}

void VirtualNetwork::Apply(const Partition& p) {
  Heal();
  for (const auto& [from, to] : p.cuts) cut_[from][to] = true;
}

void VirtualNetwork::Heal() {
  for (auto& row : cut_) std::fill(row.begin(), row.end(), false);
}

bool VirtualNetwork::healed() const {
  for (const auto& row : cut_) {
    for (bool c : row) {
      if (c) return false;
    }
  }
  return true;
}

uint64_t VirtualNetwork::Delay(Rng& rng) const {
  if (quality_.spike_max_ms > 0 && Chance(rng, quality_.spike)) {
    return Between(rng, quality_.delay_max_ms, quality_.spike_max_ms);
  }
  return Between(rng, quality_.delay_min_ms, quality_.delay_max_ms);
}

std::vector<uint64_t> VirtualNetwork::Fate(int from, int to, Rng& rng) {
  ++sent_;
  if (cut_[from][to]) {
    ++dropped_cut_;
    return {};
  }
  if (Chance(rng, quality_.loss)) {
    ++lost_;
    return {};
  }
  std::vector<uint64_t> delays = {Delay(rng)};
  if (Chance(rng, quality_.duplicate)) {
    ++duplicated_;
    delays.push_back(Delay(rng));
  }
  return delays;
}

}  // namespace meridian::sim
