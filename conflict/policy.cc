#include "conflict/policy.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <utility>

namespace meridian::conflict {

namespace {

constexpr size_t kMaxPrefixBytes = 1024;  // a key's limit (DESIGN.md §2)

const std::set<std::string>& KnownTypes() {
  static const std::set<std::string> types = {"register", "mvregister", "counter",
                                              "set",      "map",        "text"};
  return types;
}

const std::map<std::string, ResolverSpec::Kind>& BuiltIns() {
  static const std::map<std::string, ResolverSpec::Kind> kinds = {
      {"max", ResolverSpec::Kind::kMax},
      {"min", ResolverSpec::Kind::kMin},
      {"union", ResolverSpec::Kind::kUnion},
      {"longest", ResolverSpec::Kind::kLongest},
      {"json_max", ResolverSpec::Kind::kJsonMax},
      {"prefer_region", ResolverSpec::Kind::kPreferRegion},
  };
  return kinds;
}

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

std::string Names() {
  std::string out;
  for (const auto& [name, kind] : BuiltIns()) out += name + ", ";
  return out + "lua:PATH";
}

// Length-prefixed, so that no two different sets give the same text.
void Put(std::string* out, const std::string& s) {
  *out += std::to_string(s.size());
  *out += ':';
  *out += s;
}

}  // namespace

Status PolicySet::Build(const std::vector<PolicySpec>& specs,
                        const std::vector<std::string>& regions, const std::string& file,
                        const ScriptCheck& check_script, PolicySet* out) {
  std::vector<std::pair<int, std::string>> problems;
  auto problem = [&](int line, const std::string& sentence) {
    problems.emplace_back(line, file + ":" + std::to_string(line) + ": " + sentence);
  };
  const std::set<std::string> known_regions(regions.begin(), regions.end());
  std::map<std::string, int> prefix_lines;
  std::vector<Policy> policies;

  // In line order, so that a prefix given twice is reported at its later
  // line.
  std::vector<const PolicySpec*> ordered;
  for (const PolicySpec& spec : specs) ordered.push_back(&spec);
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const PolicySpec* a, const PolicySpec* b) { return a->line < b->line; });
  for (const PolicySpec* spec_ptr : ordered) {
    const PolicySpec& spec = *spec_ptr;
    Policy p;
    p.line = spec.line;
    p.prefix = spec.prefix;
    p.type = spec.type;
    p.audit = spec.audit;
    bool ok = true;
    auto bad = [&](const std::string& sentence) {
      problem(spec.line, sentence);
      ok = false;
    };

    if (spec.prefix.empty()) {
      bad("a policy's prefix must not be empty (a policy for every key is not supported)");
    } else if (spec.prefix.size() > kMaxPrefixBytes) {
      bad("a policy's prefix is longer than a key may be (1024 bytes)");
    } else {
      auto [it, inserted] = prefix_lines.emplace(spec.prefix, spec.line);
      if (!inserted) {
        bad("prefix " + Quoted(spec.prefix) + " already has a policy (line " +
            std::to_string(it->second) + ")");
      }
    }
    if (KnownTypes().count(spec.type) == 0) {
      bad("unknown type " + Quoted(spec.type) +
          " (a policy's type is register, mvregister, counter, set, map or text)");
    }

    std::set<std::string> seen;
    bool uses_json_max = false, uses_prefer_region = false;
    for (const std::string& name : spec.resolve) {
      if (!seen.insert(name).second) {
        bad("resolver " + Quoted(name) + " is listed twice");
        continue;
      }
      ResolverSpec r;
      r.name = name;
      if (name.rfind("lua:", 0) == 0) {
        r.kind = ResolverSpec::Kind::kLua;
        r.script = name.substr(4);
        if (r.script.empty()) {
          bad("resolver \"lua:\" names no script (write \"lua:resolvers/NAME.lua\")");
          continue;
        }
        if (check_script) {
          Status st = check_script(r.script, &r.script_digest);
          if (!st.ok()) {
            bad("resolver " + Quoted(name) + ": " + st.message());
            continue;
          }
        }
      } else {
        auto k = BuiltIns().find(name);
        if (k == BuiltIns().end()) {
          bad("unknown resolver " + Quoted(name) + " (known: " + Names() + ")");
          continue;
        }
        r.kind = k->second;
      }
      if (r.kind == ResolverSpec::Kind::kJsonMax) {
        uses_json_max = true;
        r.field = spec.json_max;
      }
      if (r.kind == ResolverSpec::Kind::kPreferRegion) {
        uses_prefer_region = true;
        r.regions = spec.prefer_region;
      }
      p.resolve.push_back(std::move(r));
    }
    if (!spec.resolve.empty() && KnownTypes().count(spec.type) != 0 &&
        spec.type != "mvregister") {
      bad("resolvers apply to mvregister keys only; a " + spec.type +
          " settles its concurrent writes itself (drop resolve, or make the type mvregister)");
    }

    if (uses_json_max && !spec.has_json_max) {
      bad("resolver \"json_max\" needs json_max = \"FIELD\", the field it compares");
    } else if (!uses_json_max && spec.has_json_max) {
      bad("json_max is set but \"json_max\" is not in resolve");
    } else if (uses_json_max && spec.json_max.empty()) {
      bad("json_max must name a field");
    }
    if (uses_prefer_region && !spec.has_prefer_region) {
      bad("resolver \"prefer_region\" needs prefer_region = [\"REGION\", ...], the regions it "
          "prefers in order");
    } else if (!uses_prefer_region && spec.has_prefer_region) {
      bad("prefer_region is set but \"prefer_region\" is not in resolve");
    } else if (uses_prefer_region) {
      if (spec.prefer_region.empty()) bad("prefer_region must name at least one region");
      std::set<std::string> named;
      for (const std::string& region : spec.prefer_region) {
        if (known_regions.count(region) == 0) {
          bad("prefer_region names " + Quoted(region) + ", which is not a region of this topology");
        } else if (!named.insert(region).second) {
          bad("prefer_region names " + Quoted(region) + " twice");
        }
      }
    }

    if (spec.has_on_unresolved) {
      if (spec.on_unresolved == "review") {
        p.on_unresolved = OnUnresolved::kReview;
      } else if (spec.on_unresolved == "lww") {
        p.on_unresolved = OnUnresolved::kLww;
      } else {
        bad("on_unresolved is " + Quoted(spec.on_unresolved) + "; it must be \"review\" or \"lww\"");
      }
    } else {
      // A register settles by LWW; what else no resolver decides waits for
      // a person.
      p.on_unresolved = spec.type == "register" ? OnUnresolved::kLww : OnUnresolved::kReview;
    }
    if (spec.audit && KnownTypes().count(spec.type) != 0 && spec.type != "register") {
      bad("audit applies to register keys only (it keeps the writes LWW let lose)");
    }
    if (spec.type == "register" && spec.has_on_unresolved &&
        p.on_unresolved == OnUnresolved::kReview) {
      bad("a register is settled by last-writer-wins: on_unresolved must be \"lww\" (use an "
          "mvregister to review concurrent writes)");
    }
    if (ok) policies.push_back(std::move(p));
  }

  if (!problems.empty()) {
    std::stable_sort(problems.begin(), problems.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::string message;
    for (const auto& [line, text] : problems) {
      if (!message.empty()) message += "\n";
      message += text;
    }
    return Status::InvalidArgument(message);
  }
  std::sort(policies.begin(), policies.end(),
            [](const Policy& a, const Policy& b) { return a.prefix < b.prefix; });
  out->policies_ = std::move(policies);
  return Status::OK();
}

const Policy* PolicySet::Match(std::string_view key) const {
  const Policy* best = nullptr;
  for (const Policy& p : policies_) {
    if (key.substr(0, p.prefix.size()) == p.prefix &&
        (best == nullptr || p.prefix.size() > best->prefix.size())) {
      best = &p;
    }
  }
  return best;
}

std::string PolicySet::Hash() const {
  if (policies_.empty()) return std::string(16, '0');
  std::string text;
  for (const Policy& p : policies_) {  // sorted by prefix: order-free
    Put(&text, p.prefix);
    Put(&text, p.type);
    Put(&text, p.on_unresolved == OnUnresolved::kLww ? "lww" : "review");
    Put(&text, p.audit ? "audit" : "");
    Put(&text, std::to_string(p.resolve.size()));
    for (const ResolverSpec& r : p.resolve) {
      Put(&text, r.name);
      Put(&text, r.field);
      Put(&text, r.script_digest);
      Put(&text, std::to_string(r.regions.size()));
      for (const std::string& region : r.regions) Put(&text, region);
    }
  }
  return Fnv1a64Hex(text);
}

std::string Fnv1a64Hex(std::string_view text) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace meridian::conflict
