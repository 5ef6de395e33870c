// User-defined resolvers in Lua 5.4 (DESIGN.md §5): a script settles an
// mvregister's siblings the way the built-ins (resolvers.h) do, in a
// sandbox that makes it a pure, deterministic function of them.
//
// The script defines a global function `resolve(siblings)`. `siblings` is
// an array, in canonical order (by HLC, then replica), of tables
// {value = V, region = "...", replica = "node#incarnation", hlc = N}; V is
// the JSON value as Lua: null is the global `null`, numbers are integers
// or floats as in the JSON, arrays and objects are tables (each carries a
// metatable saying which, so an empty one converts back as it came). It
// returns the value (converted back to JSON: a table whose keys are
// exactly 1..n is an array, one with string keys an object, an empty one
// an array unless it came from a JSON object) or `nil, "reason"` when it
// cannot decide.
//
// The sandbox: each call runs in a fresh Lua state with only the base,
// string, table, math and utf8 libraries, without io, os, package/require,
// debug, load, loadfile, dofile, string.dump, collectgarbage, print,
// math.random and math.randomseed, and without `next`; `pairs` visits keys
// in sorted order (numbers ascending, then strings bytewise; any other key
// type is an error), and `tostring` of a table or function without
// __tostring gives its type name only (never an address). Each call may
// run `instructions` VM instructions (counted every 1,000) and allocate
// `memory_bytes`; past either, and past `time_ms` of wall time (a backstop
// far above what the instruction budget takes), it stops. Every failure —
// a syntax error, a runtime error, a call to something the sandbox
// removed, a budget or the memory cap exceeded, a result that is not
// JSON — is "cannot decide" with the reason.
#ifndef MERIDIAN_CONFLICT_LUA_RESOLVER_H_
#define MERIDIAN_CONFLICT_LUA_RESOLVER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "conflict/resolvers.h"

namespace meridian::conflict {

struct LuaLimits {
  uint64_t instructions = 2000000;
  size_t memory_bytes = size_t{16} << 20;
  uint64_t time_ms = 1000;
};

class LuaResolver {
 public:
  // `name` names the script in reasons ("lua:resolvers/cart.lua");
  // `source` is its text (a precompiled chunk is refused).
  LuaResolver(std::string name, std::string source, LuaLimits limits = {});

  // Thread-safe: every call has a Lua state of its own.
  Outcome Resolve(const std::vector<Sibling>& siblings) const;

  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::string source_;
  LuaLimits limits_;
};

}  // namespace meridian::conflict

#endif  // MERIDIAN_CONFLICT_LUA_RESOLVER_H_
