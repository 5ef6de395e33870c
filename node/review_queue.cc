#include "node/review_queue.h"

#include <set>

#include "crdt/mvregister.h"
#include "crdt/registry.h"
#include "node/operation.h"

namespace meridian::node {

using nlohmann::json;

namespace {

// The value a single typed state shows (null when it shows none).
json ValueOfState(const std::string& key, const crdt::TypedState& ts) {
  crdt::Envelope one;
  if (!crdt::Envelope::Of(ts.tag, ts.origin_hlc, ts.origin, ts.state, &one).ok()) return json();
  json r;
  int http = 200;
  std::string context;
  ApiError err;
  if (!RenderRead(key, one, &r, &http, &context, &err)) return json();
  if (r.contains("value")) return r["value"];
  return r.contains("siblings") ? r["siblings"] : json();
}


}  // namespace

bool ReviewEntry(const std::string& key, const crdt::Envelope& env, uint64_t detected_ms,
                 const conflict::Settler* settler, json* out, crdt::CausalContext* context) {
  if (context != nullptr) *context = crdt::CausalContext();
  const crdt::TypedState* w = env.winner();
  if (w == nullptr) return false;
  static const conflict::Settler kNoPolicies(conflict::PolicySet(), {}, {});
  const conflict::Settler& settle = settler != nullptr ? *settler : kNoPolicies;
  const conflict::Policy* policy = settle.Match(key);
  json e = {{"key", key},
            {"type", TypeName(w->tag)},
            {"policy", policy != nullptr ? json(policy->prefix) : json()},
            {"detected_ms", detected_ms}};
  std::set<std::string> regions;
  auto region_of = [&](const std::string& node) {
    auto it = settle.regions().find(node);
    return it == settle.regions().end() ? std::string() : it->second;
  };

  std::vector<crdt::TypedState> losers;
  for (const crdt::TypedState& l : env.losers()) {
    if (crdt::StateHasValue(l.tag, l.state)) losers.push_back(l);
  }
  if (!losers.empty()) {
    json sibs = json::array();
    losers.insert(losers.begin(), *w);
    for (size_t i = 0; i < losers.size(); ++i) {
      const crdt::TypedState& ts = losers[i];
      std::string region = region_of(ts.origin.node);
      regions.insert(region);
      sibs.push_back({{"type", TypeName(ts.tag)},
                      {"value", ValueOfState(key, ts)},
                      {"region", region},
                      {"replica", ts.origin.ToString()},
                      {"hlc", ts.origin_hlc},
                      {"winner", i == 0}});
    }
    e["reason"] = "type_conflict";
    e["siblings"] = std::move(sibs);
  } else {
    if (w->tag != crdt::MvRegister::kTag) return false;
    crdt::MvRegister reg;
    if (!crdt::MvRegister::Decode(w->state, &reg).ok() || reg.siblings().size() < 2) return false;
    if (policy != nullptr && policy->audit) return false;  // read by LWW
    conflict::Settled settled = settle.Settle(key, reg);
    if (settled.kind != conflict::Settled::Kind::kUnresolved) return false;
    for (const conflict::Sibling& s : settled.siblings) regions.insert(s.region);
    e["reason"] = settled.reason;
    e["siblings"] = RenderSiblings(settled);
    if (context != nullptr) {
      for (const crdt::Dot& d : settled.dots) context->Add(d);
    }
  }
  e["regions"] = json(std::vector<std::string>(regions.begin(), regions.end()));
  *out = std::move(e);
  return true;
}

}  // namespace meridian::node
