// The conflict policies in force (conflict/settle.h): read by request
// threads and the committer, replaced whole when `kill -HUP` reloads the
// topology file (a file that does not load is refused and the old
// policies stay).
#ifndef MERIDIAN_NODE_POLICY_HOLDER_H_
#define MERIDIAN_NODE_POLICY_HOLDER_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "conflict/settle.h"
#include "node/topology.h"

namespace meridian::node {

// A Settler for `topo`'s policies and scripts, naming each node's region.
inline std::shared_ptr<const conflict::Settler> SettlerFor(const Topology& topo) {
  std::map<std::string, std::string> region_of;
  for (const NodeConfig* n : topo.AllNodes()) region_of[n->id] = n->region;
  return std::make_shared<const conflict::Settler>(topo.policies, topo.scripts,
                                                   std::move(region_of));
}

class PolicyHolder {
 public:
  explicit PolicyHolder(std::shared_ptr<const conflict::Settler> settler)
      : settler_(std::move(settler)) {}
  std::shared_ptr<const conflict::Settler> Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return settler_;
  }
  void Set(std::shared_ptr<const conflict::Settler> settler) {
    std::lock_guard<std::mutex> lock(mu_);
    settler_ = std::move(settler);
  }
  // Whether `key` is under a register policy with audit = true.
  bool Audited(const std::string& key) const {
    auto s = Get();
    const conflict::Policy* p = s->Match(key);
    return p != nullptr && p->audit;
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const conflict::Settler> settler_;
};

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_POLICY_HOLDER_H_
