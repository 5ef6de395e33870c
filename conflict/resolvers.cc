#include "conflict/resolvers.h"

#include <algorithm>
#include <map>
#include <set>

namespace meridian::conflict {

namespace {

using nlohmann::json;

// "sibling 2 (from eu-west, replica eu-west-1#7)": for reasons.
std::string Which(const std::vector<Sibling>& siblings, size_t i) {
  std::string out = "sibling " + std::to_string(i + 1);
  if (!siblings[i].region.empty()) out += " (from " + siblings[i].region + ")";
  return out;
}

Outcome Undecided(std::string reason) {
  Outcome o;
  o.reason = std::move(reason);
  return o;
}

Outcome Decided(json value) {
  Outcome o;
  o.decided = true;
  o.value = std::move(value);
  return o;
}

// Canonical text of a value: compact, object keys sorted (nlohmann keeps
// objects in key order).
std::string Canonical(const json& v) { return v.dump(); }

// -1, 0, 1. REQUIRES: both numbers.
int CompareNumbers(const json& a, const json& b) {
  if (a.is_number_integer() && b.is_number_integer()) {
    const bool au = a.is_number_unsigned(), bu = b.is_number_unsigned();
    if (au && bu) {
      const auto x = a.get<uint64_t>(), y = b.get<uint64_t>();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    if (!au && !bu) {
      const auto x = a.get<int64_t>(), y = b.get<int64_t>();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    // One unsigned (>= 0) and one signed: a negative signed is smaller.
    if (au) {
      const auto y = b.get<int64_t>();
      if (y < 0) return 1;
      const auto x = a.get<uint64_t>();
      return x < static_cast<uint64_t>(y) ? -1 : (x > static_cast<uint64_t>(y) ? 1 : 0);
    }
    const auto x = a.get<int64_t>();
    if (x < 0) return -1;
    const auto y = b.get<uint64_t>();
    return static_cast<uint64_t>(x) < y ? -1 : (static_cast<uint64_t>(x) > y ? 1 : 0);
  }
  const double x = a.get<double>(), y = b.get<double>();
  return x < y ? -1 : (x > y ? 1 : 0);
}

// The sibling with the extreme key (`sign` 1: greatest, -1: least) by
// `key_of`, which returns null for a sibling it cannot rank (its reason in
// *why). Ties between different values cannot be decided.
template <typename KeyOf>
Outcome Extreme(const std::vector<Sibling>& siblings, int sign, const std::string& what,
                KeyOf key_of) {
  if (siblings.empty()) return Undecided("there are no siblings");
  size_t best = 0;
  bool tie = false;
  for (size_t i = 0; i < siblings.size(); ++i) {
    const json* k = key_of(siblings[i].value);
    if (k == nullptr) return Undecided(Which(siblings, i) + " is not " + what);
    if (i == 0) continue;
    const int c = CompareNumbers(*k, *key_of(siblings[best].value)) * sign;
    if (c > 0) {
      best = i;
      tie = false;
    } else if (c == 0 && Canonical(siblings[i].value) != Canonical(siblings[best].value)) {
      tie = true;
    }
  }
  if (tie) return Undecided("two different siblings tie for the " + std::string(sign > 0 ? "greatest" : "least"));
  return Decided(siblings[best].value);
}

size_t CodePoints(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;  // count every byte but continuation bytes
  return n;
}

}  // namespace

Outcome ResolveBuiltIn(const ResolverSpec& spec, const std::vector<Sibling>& siblings) {
  switch (spec.kind) {
    case ResolverSpec::Kind::kMax:
    case ResolverSpec::Kind::kMin:
      return Extreme(siblings, spec.kind == ResolverSpec::Kind::kMax ? 1 : -1, "a number",
                     [](const json& v) { return v.is_number() ? &v : nullptr; });
    case ResolverSpec::Kind::kJsonMax: {
      const std::string& field = spec.field;
      return Extreme(siblings, 1, "an object with a number in \"" + field + "\"",
                     [&field](const json& v) -> const json* {
                       if (!v.is_object()) return nullptr;
                       auto it = v.find(field);
                       if (it == v.end() || !it->is_number()) return nullptr;
                       return &*it;
                     });
    }
    case ResolverSpec::Kind::kUnion: {
      std::map<std::string, const json*> elements;  // canonical text -> element
      for (size_t i = 0; i < siblings.size(); ++i) {
        if (!siblings[i].value.is_array()) return Undecided(Which(siblings, i) + " is not an array");
        for (const json& e : siblings[i].value) elements.emplace(Canonical(e), &e);
      }
      if (siblings.empty()) return Undecided("there are no siblings");
      json out = json::array();
      for (const auto& [text, e] : elements) out.push_back(*e);
      return Decided(std::move(out));
    }
    case ResolverSpec::Kind::kLongest: {
      if (siblings.empty()) return Undecided("there are no siblings");
      size_t best = 0;
      bool tie = false;
      for (size_t i = 0; i < siblings.size(); ++i) {
        const json& v = siblings[i].value;
        if (!v.is_string()) return Undecided(Which(siblings, i) + " is not a string");
        if (i == 0) continue;
        const size_t n = CodePoints(v.get_ref<const std::string&>());
        const size_t m = CodePoints(siblings[best].value.get_ref<const std::string&>());
        if (n > m) {
          best = i;
          tie = false;
        } else if (n == m && v != siblings[best].value) {
          tie = true;
        }
      }
      if (tie) return Undecided("two different siblings tie for the longest");
      return Decided(siblings[best].value);
    }
    case ResolverSpec::Kind::kPreferRegion: {
      for (const std::string& region : spec.regions) {
        std::set<std::string> values;
        const json* value = nullptr;
        for (const Sibling& s : siblings) {
          if (s.region != region) continue;
          values.insert(Canonical(s.value));
          value = &s.value;
        }
        if (value == nullptr) continue;
        if (values.size() > 1) {
          return Undecided("region " + region + " holds " + std::to_string(values.size()) +
                           " different siblings");
        }
        return Decided(*value);
      }
      return Undecided("no sibling comes from a preferred region");
    }
    case ResolverSpec::Kind::kLua:
      break;
  }
  return Undecided("\"" + spec.name + "\" is not a built-in resolver");
}

Outcome ResolveChain(const std::vector<ResolverSpec>& chain, const std::vector<Sibling>& siblings,
                     const LuaRunner& lua, std::string* by, const LinkObserver& observe) {
  std::string reasons;
  for (const ResolverSpec& spec : chain) {
    Outcome o;
    if (spec.kind != ResolverSpec::Kind::kLua) {
      o = ResolveBuiltIn(spec, siblings);
    } else if (lua) {
      o = lua(spec, siblings);
    } else {
      o = Undecided("no Lua script is loaded for it");
    }
    if (observe) observe(spec, o);
    if (o.decided) {
      *by = spec.name;
      return o;
    }
    if (!reasons.empty()) reasons += "; ";
    reasons += spec.name + ": " + o.reason;
  }
  by->clear();
  return Undecided(chain.empty() ? "no resolver is configured" : reasons);
}

}  // namespace meridian::conflict
