// Conflict policies (DESIGN.md §5): which type a key prefix holds, and how
// concurrent values of it are settled. The topology file's [[policy]]
// tables (node/topology.cc reads the TOML) become PolicySpecs; Build
// checks them as a whole and gives a PolicySet, which matches a key to
// its policy by longest prefix and hashes the set for the gossip
// handshake. Pure code: no files are read here (a Lua script is read by a
// callback of the caller's, which knows where the topology file lives).
//
// A policy:
//   prefix        the keys it covers (non-empty; unique in the set)
//   type          "register", "mvregister", "counter", "set", "map" or "text"
//   resolve       the resolver chain, tried in order (resolvers.h):
//                 "max", "min", "union", "longest", "json_max",
//                 "prefer_region", "lua:PATH"; each at most once; only for
//                 mvregister (the other types settle every conflict
//                 themselves)
//   on_unresolved "review" (default for mvregister) or "lww": what
//                 happens when no resolver decides
//   audit         register only: stored as an mvregister read by LWW, so
//                 that losing concurrent writes are kept for review
//   json_max      the field "json_max" compares (required with it, and
//                 only with it)
//   prefer_region the regions "prefer_region" prefers, in order (required
//                 with it, and only with it; each a region of the
//                 topology, none twice)
#ifndef MERIDIAN_CONFLICT_POLICY_H_
#define MERIDIAN_CONFLICT_POLICY_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/status.h"

namespace meridian::conflict {

enum class OnUnresolved { kReview, kLww };

// One link of a resolve chain.
struct ResolverSpec {
  enum class Kind { kMax, kMin, kUnion, kLongest, kJsonMax, kPreferRegion, kLua };
  Kind kind = Kind::kMax;
  std::string name;                  // as written ("max", "lua:resolvers/cart.lua"): X-Resolved-By
  std::string field;                 // kJsonMax
  std::vector<std::string> regions;  // kPreferRegion
  std::string script;                // kLua: the path after "lua:", as written
  // kLua: a digest of the script's text (from Build's ScriptCheck), so
  // that the policy hash differs between nodes whose scripts differ.
  std::string script_digest;
};

// A [[policy]] table as read, before checking.
struct PolicySpec {
  int line = 0;  // of its [[policy]] header, for messages
  std::string prefix;
  std::string type;
  std::vector<std::string> resolve;
  bool has_on_unresolved = false;
  std::string on_unresolved;
  bool audit = false;
  bool has_json_max = false;
  std::string json_max;
  bool has_prefer_region = false;
  std::vector<std::string> prefer_region;
};

struct Policy {
  int line = 0;
  std::string prefix;
  std::string type;  // one of the type names above
  std::vector<ResolverSpec> resolve;
  OnUnresolved on_unresolved = OnUnresolved::kReview;
  bool audit = false;
};

// Reads the script of a "lua:PATH" resolver (PATH as written) and gives a
// digest of its text; a script that cannot be used is an error whose
// message says why ("no such file", ...).
using ScriptCheck = std::function<Status(const std::string& path, std::string* digest)>;

class PolicySet {
 public:
  // Checks every spec and the set. Problems are InvalidArgument, one line
  // each, "FILE:LINE: sentence", in line order: a prefix that is empty,
  // longer than 1024 bytes or given twice; an unknown type; an unknown or
  // repeated resolver, or one for a type other than mvregister; a "lua:"
  // without a path; json_max or prefer_region missing or not used; a
  // prefer_region naming a region not in `regions`, or one twice; an
  // on_unresolved other than "review" or "lww"; audit on a type other
  // than register; a Lua script `check_script` refuses (it is called once
  // per "lua:" link; null: scripts are not checked and have no digest).
  // `file` names the topology file in messages.
  static Status Build(const std::vector<PolicySpec>& specs, const std::vector<std::string>& regions,
                      const std::string& file, const ScriptCheck& check_script, PolicySet* out);

  // The policy whose prefix is the longest prefix of `key`; nullptr when
  // none is.
  const Policy* Match(std::string_view key) const;
  const std::vector<Policy>& policies() const { return policies_; }  // by prefix
  bool empty() const { return policies_.empty(); }
  // A hash of everything that decides what a read or write does, the same
  // in every process given the same policies in any order (FNV-1a 64 of a
  // canonical text; 0 for no policies), as 16 hex digits.
  std::string Hash() const;

 private:
  std::vector<Policy> policies_;  // sorted by prefix
};

// FNV-1a 64 of `text` as 16 hex digits (script digests, the policy hash).
std::string Fnv1a64Hex(std::string_view text);

}  // namespace meridian::conflict

#endif  // MERIDIAN_CONFLICT_POLICY_H_
