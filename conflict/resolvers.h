// Built-in resolvers (DESIGN.md §5): pure, deterministic functions of an
// mvregister's sibling set that settle it with one value or say why they
// cannot. They never write: every region computes the same answer from
// the same siblings, so resolving creates no new conflict.
//
// Siblings are JSON values (what the API stores in an mvregister). Each
// resolver looks at the values (and prefer_region at the regions) only,
// and its answer does not depend on the order of the siblings given; ties
// between different values are "cannot decide", never a coin toss.
//   max, min       every value a number: the greatest (least); integers
//                  compare exactly, others as doubles
//   union          every value an array: the union of their elements, each
//                  once, in canonical order (by their compact JSON text,
//                  object keys sorted)
//   longest        every value a string: the longest, in Unicode code
//                  points
//   json_max       every value an object whose `field` is a number: the
//                  value with the greatest
//   prefer_region  the values of the first region in `regions` that holds
//                  any sibling, when they are all equal
// Lua resolvers ("lua:PATH") are not built in (lua_resolver.h):
// ResolveBuiltIn refuses them.
#ifndef MERIDIAN_CONFLICT_RESOLVERS_H_
#define MERIDIAN_CONFLICT_RESOLVERS_H_

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "conflict/policy.h"

namespace meridian::conflict {

struct Sibling {
  nlohmann::json value;
  std::string region;   // its writer's region
  std::string replica;  // its writer, "node#incarnation"
  uint64_t hlc = 0;     // its write's HLC
};

struct Outcome {
  bool decided = false;
  nlohmann::json value;  // when decided
  std::string reason;    // when not: a sentence naming the sibling at fault
  // When not decided: the resolver failed (a script error, a budget or
  // the memory cap) rather than declined.
  bool error = false;
};

// Runs one built-in resolver. REQUIRES: spec.kind != kLua.
Outcome ResolveBuiltIn(const ResolverSpec& spec, const std::vector<Sibling>& siblings);

// Runs a "lua:PATH" link (lua_resolver.h: the caller keeps the loaded
// scripts).
using LuaRunner = std::function<Outcome(const ResolverSpec&, const std::vector<Sibling>&)>;

// The first resolver of `chain` that decides; a Lua link runs through
// `lua` (null: it cannot decide). *by gets its name; when none decides,
// the outcome's reason joins every link's reason as "NAME: reason; NAME:
// reason".
// `observe` (may be null) sees each link's outcome as it is tried.
using LinkObserver = std::function<void(const ResolverSpec&, const Outcome&)>;
Outcome ResolveChain(const std::vector<ResolverSpec>& chain, const std::vector<Sibling>& siblings,
                     const LuaRunner& lua, std::string* by, const LinkObserver& observe = nullptr);

}  // namespace meridian::conflict

#endif  // MERIDIAN_CONFLICT_RESOLVERS_H_
