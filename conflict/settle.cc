#include "conflict/settle.h"

#include <algorithm>
#include <tuple>

namespace meridian::conflict {

namespace {

nlohmann::json ValueOf(const std::string& bytes) {
  try {
    return nlohmann::json::from_msgpack(bytes);
  } catch (const nlohmann::json::exception&) {
    return nlohmann::json();  // not a value the API wrote: shown as null
  }
}

}  // namespace

Settler::Settler(PolicySet policies, std::map<std::string, std::string> scripts,
                 std::map<std::string, std::string> region_of, LuaLimits limits)
    : policies_(std::move(policies)), hash_(policies_.Hash()), region_of_(std::move(region_of)) {
  for (const Policy& p : policies_.policies()) {
    for (const ResolverSpec& r : p.resolve) {
      if (!counters_.count(r.name)) counters_.emplace(r.name, std::make_unique<Counter>());
      if (r.kind != ResolverSpec::Kind::kLua || lua_.count(r.script)) continue;
      auto it = scripts.find(r.script);
      lua_.emplace(r.script, std::make_unique<LuaResolver>(
                                 r.name, it == scripts.end() ? std::string() : it->second, limits));
    }
  }
}

Settled Settler::Settle(std::string_view key, const crdt::MvRegister& reg) const {
  const Policy* p = policies_.Match(key);
  const bool scripted =
      p != nullptr && reg.siblings().size() > 1 &&
      std::any_of(p->resolve.begin(), p->resolve.end(),
                  [](const ResolverSpec& r) { return r.kind == ResolverSpec::Kind::kLua; });
  if (!scripted) return Compute(reg, p);
  const std::string digest = Fnv1a64Hex(reg.Encode());
  const std::string k(key);
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(k);
    if (it != cache_.end() && it->second.digest == digest) return it->second.settled;
  }
  Settled out = Compute(reg, p);
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (cache_.size() >= kCacheKeys && !cache_.count(k)) cache_.erase(cache_.begin());
  cache_[k] = Cached{digest, out};
  return out;
}

Settled Settler::Compute(const crdt::MvRegister& reg, const Policy* p) const {
  Settled out;
  // Canonical order: by HLC, then replica, then dot.
  std::vector<const std::pair<const crdt::Dot, crdt::TimedValue>*> order;
  for (const auto& entry : reg.siblings()) order.push_back(&entry);
  std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    return std::tie(a->second.hlc, a->first.replica, a->first.counter) <
           std::tie(b->second.hlc, b->first.replica, b->first.counter);
  });
  for (const auto* entry : order) {
    Sibling s;
    s.value = ValueOf(entry->second.value);
    auto region = region_of_.find(entry->first.replica.node);
    if (region != region_of_.end()) s.region = region->second;
    s.replica = entry->first.replica.ToString();
    s.hlc = entry->second.hlc;
    out.siblings.push_back(std::move(s));
    out.dots.push_back(entry->first);
  }
  if (out.siblings.size() == 1) {
    out.kind = Settled::Kind::kValue;
    out.value = out.siblings[0].value;
    return out;
  }
  auto lww = [&out] {
    out.kind = Settled::Kind::kLww;
    out.value = out.siblings.back().value;  // the greatest (HLC, replica)
    out.by = "lww";
  };
  if (p == nullptr) {
    out.reason = "no policy covers the key";
    return out;
  }
  if (p->type == "register" && p->audit) {
    lww();
    return out;
  }
  std::string by;
  Outcome o = ResolveChain(
      p->resolve, out.siblings,
      [this](const ResolverSpec& spec, const std::vector<Sibling>& siblings) {
        auto it = lua_.find(spec.script);
        if (it == lua_.end()) {
          Outcome none;
          none.reason = "no Lua script is loaded for it";
          return none;
        }
        return it->second->Resolve(siblings);
      },
      &by,
      [this](const ResolverSpec& spec, const Outcome& link) {
        auto it = counters_.find(spec.name);
        if (it == counters_.end()) return;
        (link.decided ? it->second->decided : it->second->undecided)++;
        if (link.error) it->second->errors++;
      });
  if (o.decided) {
    out.kind = Settled::Kind::kResolved;
    out.value = std::move(o.value);
    out.by = by;
    return out;
  }
  out.reason = o.reason;
  if (p->on_unresolved == OnUnresolved::kLww) lww();
  return out;
}

std::map<std::string, ResolverCounts> Settler::Counts() const {
  std::map<std::string, ResolverCounts> out;
  for (const auto& [name, c] : counters_) {
    out[name] = ResolverCounts{c->decided.load(), c->undecided.load(), c->errors.load()};
  }
  return out;
}

}  // namespace meridian::conflict
