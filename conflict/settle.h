// Settling a conflicted key on read (DESIGN.md §5): the policy the key's
// prefix names, its resolver chain (built-ins and Lua), and what a reader
// is shown. Nothing is written: every region computes the same answer from
// the same siblings.
//
// For an mvregister state, by its policy:
//   - one sibling: that value (kValue);
//   - a register policy with audit (stored as an mvregister): the
//     last-writer-wins sibling, by (HLC, replica) (kLww, by "lww");
//   - an mvregister policy: the first resolver of the chain that decides
//     (kResolved, by its name); when none does, "lww" under
//     on_unresolved = "lww" (kLww), else kUnresolved with the reasons;
//   - no policy: kUnresolved ("no policy covers the key").
// Siblings are given to resolvers in canonical order: by HLC, then
// replica (then dot).
//
// What a chain with a Lua link settles is cached in memory per key and
// state (a 64-bit digest of the state's encoding), at most kCacheKeys
// keys: a hot conflicted key does not rerun its script on every read.
// (Built-ins cost less than the digest.) A reload builds a new Settler,
// so the cache never outlives the policies it was computed under.
//
// Thread-safe: Settle is const and every Lua call runs in a state of its
// own; the counters are atomics.
#ifndef MERIDIAN_CONFLICT_SETTLE_H_
#define MERIDIAN_CONFLICT_SETTLE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <string_view>
#include <vector>

#include "conflict/lua_resolver.h"
#include "conflict/policy.h"
#include "conflict/resolvers.h"
#include "crdt/mvregister.h"

namespace meridian::conflict {

struct Settled {
  enum class Kind { kValue, kResolved, kLww, kUnresolved };
  Kind kind = Kind::kUnresolved;
  nlohmann::json value;  // unless kUnresolved
  std::string by;        // kResolved: the resolver's name; kLww: "lww"
  std::string reason;    // kUnresolved (and kLww under on_unresolved: why)
  std::vector<Sibling> siblings;  // canonical order
  std::vector<crdt::Dot> dots;    // the siblings' dots, in the same order
};

// Per resolver name: how its calls went.
struct ResolverCounts {
  uint64_t decided = 0;
  uint64_t undecided = 0;
  uint64_t errors = 0;  // of the undecided: failures (script error, budget)
};

class Settler {
 public:
  // `scripts`: the text of each "lua:PATH" resolver, by PATH as written;
  // `region_of`: node id -> region (a sibling of an unknown node gets
  // region "").
  Settler(PolicySet policies, std::map<std::string, std::string> scripts,
          std::map<std::string, std::string> region_of, LuaLimits limits = {});

  const PolicySet& policies() const { return policies_; }
  const std::string& hash() const { return hash_; }
  const Policy* Match(std::string_view key) const { return policies_.Match(key); }
  // node id -> region, as given.
  const std::map<std::string, std::string>& regions() const { return region_of_; }

  // REQUIRES: `reg` holds at least one sibling.
  Settled Settle(std::string_view key, const crdt::MvRegister& reg) const;

  // A snapshot of the per-resolver counts, by name (cached answers are
  // not calls).
  std::map<std::string, ResolverCounts> Counts() const;

  static constexpr size_t kCacheKeys = 4096;

 private:
  Settled Compute(const crdt::MvRegister& reg, const Policy* p) const;
  struct Cached {
    std::string digest;
    Settled settled;
  };
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, Cached> cache_;  // by key
  struct Counter {
    std::atomic<uint64_t> decided{0}, undecided{0}, errors{0};
  };
  PolicySet policies_;
  std::string hash_;
  std::map<std::string, std::unique_ptr<LuaResolver>> lua_;  // by script path
  std::map<std::string, std::string> region_of_;
  std::map<std::string, std::unique_ptr<Counter>> counters_;  // by resolver name, fixed at start
};

}  // namespace meridian::conflict

#endif  // MERIDIAN_CONFLICT_SETTLE_H_
