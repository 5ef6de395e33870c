#include "gossip/placement.h"

#include <algorithm>
#include <set>
#include <utility>

namespace meridian::gossip {
namespace {

constexpr size_t kMaxPrefixBytes = 1024;  // the longest key (node/operation.h)

const std::string kUnplaced;  // the default scope's name

}  // namespace

Status Placement::Build(std::vector<PlacementSpec> specs, const std::vector<std::string>& regions,
                        const std::string& file, Placement* out) {
  std::vector<std::pair<int, std::string>> problems;
  auto problem = [&](int line, const std::string& sentence) {
    problems.emplace_back(line, file + ":" + std::to_string(line) + ": " + sentence);
  };
  std::set<std::string> known(regions.begin(), regions.end());
  std::set<std::string> prefixes;
  for (const PlacementSpec& s : specs) {
    if (s.prefix.empty()) {
      problem(s.line, "a placement's prefix must not be empty (it would place every key)");
    } else if (s.prefix.size() > kMaxPrefixBytes) {
      problem(s.line, "a placement's prefix is at most 1024 bytes");
    } else if (s.prefix.find('\0') != std::string::npos) {
      problem(s.line, "a placement's prefix must not hold a NUL byte");
    } else if (!prefixes.insert(s.prefix).second) {
      problem(s.line, "prefix '" + s.prefix + "' is placed twice");
    }
    if (s.regions.empty()) {
      problem(s.line, "placement '" + s.prefix + "' lists no regions");
    }
    std::set<std::string> seen;
    for (const std::string& r : s.regions) {
      if (known.count(r) == 0) {
        problem(s.line, "placement '" + s.prefix + "' names region '" + r +
                            "', which is not a [[region]] of this topology");
      } else if (!seen.insert(r).second) {
        problem(s.line, "placement '" + s.prefix + "' names region '" + r + "' twice");
      }
    }
  }
  if (!problems.empty()) {
    std::stable_sort(problems.begin(), problems.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::string message;
    for (const auto& p : problems) {
      if (!message.empty()) message += "\n";
      message += p.second;
    }
    return Status::InvalidArgument(message);
  }
  std::sort(specs.begin(), specs.end(),
            [](const PlacementSpec& a, const PlacementSpec& b) { return a.prefix < b.prefix; });
  out->specs_ = std::move(specs);
  out->all_regions_ = regions.size();
  return Status::OK();
}

const PlacementSpec* Placement::Find(std::string_view key) const {
  const PlacementSpec* best = nullptr;
  for (const PlacementSpec& s : specs_) {
    if (key.substr(0, s.prefix.size()) == s.prefix &&
        (best == nullptr || s.prefix.size() > best->prefix.size())) {
      best = &s;
    }
  }
  return best;
}

bool Placement::Holds(std::string_view key, std::string_view region) const {
  const PlacementSpec* s = Find(key);
  return s == nullptr || std::find(s->regions.begin(), s->regions.end(), region) != s->regions.end();
}

size_t Placement::RegionCount(std::string_view key) const {
  const PlacementSpec* s = Find(key);
  return s == nullptr ? all_regions_ : s->regions.size();
}

const std::string& Placement::ScopeOf(std::string_view key) const {
  const PlacementSpec* s = Find(key);
  return s == nullptr ? kUnplaced : s->prefix;
}

std::string Placement::ScopesName() const {
  std::string name;
  for (const PlacementSpec& s : specs_) {
    name += s.prefix;
    name.push_back('\0');
  }
  return name;
}

bool Placement::HoldsScope(std::string_view scope, std::string_view region) const {
  if (scope.empty()) return true;
  for (const PlacementSpec& s : specs_) {
    if (s.prefix == scope) {
      return std::find(s.regions.begin(), s.regions.end(), region) != s.regions.end();
    }
  }
  return false;
}

}  // namespace meridian::gossip
