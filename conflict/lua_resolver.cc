#include "conflict/lua_resolver.h"

// The C++ build of Lua (liblua5.4-c++): lua_error unwinds with a C++
// exception, so the destructors of the frames it crosses run.
#include <lua.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <utility>

namespace meridian::conflict {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kHookEvery = 1000;   // instructions between budget checks
constexpr int kMaxDepth = 64;      // nesting of values converted either way
const char* const kArrayMeta = "meridian.array";
const char* const kObjectMeta = "meridian.object";
const char* const kNullKey = "meridian.null";

// Per call: the allocator's and the hook's state, reached through the
// allocator's user data (the hook gets it back through lua_getallocf).
struct Budget {
  size_t used = 0;
  size_t cap = 0;
  bool out_of_memory = false;
  uint64_t instructions_left = 0;
  Clock::time_point deadline;
  std::string stopped;  // why the hook stopped the script
};

void* Allocate(void* ud, void* ptr, size_t old_size, size_t new_size) {
  auto* b = static_cast<Budget*>(ud);
  if (ptr == nullptr) old_size = 0;  // old_size is then the kind of object
  if (new_size == 0) {
    std::free(ptr);
    b->used -= old_size;
    return nullptr;
  }
  if (new_size > old_size && b->used - old_size + new_size > b->cap) {
    b->out_of_memory = true;
    return nullptr;  // Lua raises "not enough memory"
  }
  void* p = std::realloc(ptr, new_size);
  if (p != nullptr) b->used = b->used - old_size + new_size;
  return p;
}

Budget* BudgetOf(lua_State* L) {
  void* ud = nullptr;
  lua_getallocf(L, &ud);
  return static_cast<Budget*>(ud);
}

void Hook(lua_State* L, lua_Debug*) {
  Budget* b = BudgetOf(L);
  if (b->instructions_left <= static_cast<uint64_t>(kHookEvery)) {
    b->stopped = "ran past its instruction budget";
    luaL_error(L, "%s", b->stopped.c_str());
  }
  b->instructions_left -= kHookEvery;
  if (Clock::now() > b->deadline) {
    b->stopped = "ran past its time limit";
    luaL_error(L, "%s", b->stopped.c_str());
  }
}

// --- Sorted pairs -----------------------------------------------------------------

// Orders two keys at stack indices a and b: numbers (ascending) before
// strings (bytewise).
bool KeyLess(lua_State* L, int a, int b) {
  const int ta = lua_type(L, a), tb = lua_type(L, b);
  if (ta != tb) return ta == LUA_TNUMBER;
  if (ta == LUA_TNUMBER) return lua_compare(L, a, b, LUA_OPLT) != 0;
  size_t la = 0, lb = 0;
  const char* sa = lua_tolstring(L, a, &la);
  const char* sb = lua_tolstring(L, b, &lb);
  const int c = std::char_traits<char>::compare(sa, sb, std::min(la, lb));
  return c < 0 || (c == 0 && la < lb);
}

// The iterator: upvalue 1 the table, upvalue 2 the sorted key array,
// upvalue 3 the position.
int SortedNext(lua_State* L) {
  const lua_Integer i = lua_tointeger(L, lua_upvalueindex(3)) + 1;
  lua_pushinteger(L, i);
  lua_replace(L, lua_upvalueindex(3));
  if (lua_geti(L, lua_upvalueindex(2), i) == LUA_TNIL) return 1;  // nil: done
  lua_pushvalue(L, -1);
  lua_gettable(L, lua_upvalueindex(1));
  return 2;
}

// pairs(t): keys in sorted order. Uses the raw `next` of the state, kept
// in the registry (scripts get no `next`).
int SortedPairs(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_newtable(L);  // 2: keys
  lua_Integer n = 0;
  lua_pushnil(L);
  while (lua_next(L, 1) != 0) {
    lua_pop(L, 1);  // the value
    const int t = lua_type(L, -1);
    if (t != LUA_TNUMBER && t != LUA_TSTRING) {
      return luaL_error(L, "pairs: a table key is a %s (only numbers and strings have an order)",
                        luaL_typename(L, -1));
    }
    lua_pushvalue(L, -1);
    lua_seti(L, 2, ++n);
  }
  // Insertion sort on the key array through the stack (tables are small).
  for (lua_Integer i = 2; i <= n; ++i) {
    lua_geti(L, 2, i);  // the key to place
    lua_Integer j = i - 1;
    for (; j >= 1; --j) {
      lua_geti(L, 2, j);
      if (!KeyLess(L, -2, -1)) {
        lua_pop(L, 1);
        break;
      }
      lua_seti(L, 2, j + 1);  // shift right
    }
    lua_seti(L, 2, j + 1);
  }
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushinteger(L, 0);
  lua_pushcclosure(L, SortedNext, 3);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

// tostring without addresses.
int SafeToString(lua_State* L) {
  luaL_checkany(L, 1);
  const int t = lua_type(L, 1);
  if ((t == LUA_TTABLE || t == LUA_TFUNCTION || t == LUA_TUSERDATA || t == LUA_TTHREAD ||
       t == LUA_TLIGHTUSERDATA) &&
      luaL_getmetafield(L, 1, "__tostring") == LUA_TNIL) {
    lua_pushstring(L, luaL_typename(L, 1));
    return 1;
  }
  luaL_tolstring(L, 1, nullptr);
  return 1;
}

// Run under lua_pcall: opening libraries allocates.
int OpenSandbox(lua_State* L) {
  static const luaL_Reg kLibs[] = {{LUA_GNAME, luaopen_base},
                                   {LUA_STRLIBNAME, luaopen_string},
                                   {LUA_TABLIBNAME, luaopen_table},
                                   {LUA_MATHLIBNAME, luaopen_math},
                                   {LUA_UTF8LIBNAME, luaopen_utf8}};
  for (const luaL_Reg& lib : kLibs) {
    luaL_requiref(L, lib.name, lib.func, 1);
    lua_pop(L, 1);
  }
  for (const char* name : {"dofile", "loadfile", "load", "collectgarbage", "print", "next",
                           "require", "io", "os", "debug", "package"}) {
    lua_pushnil(L);
    lua_setglobal(L, name);
  }
  lua_getglobal(L, "math");
  for (const char* name : {"random", "randomseed"}) {
    lua_pushnil(L);
    lua_setfield(L, -2, name);
  }
  lua_pop(L, 1);
  lua_getglobal(L, "string");
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pop(L, 1);
  lua_pushcfunction(L, SortedPairs);
  lua_setglobal(L, "pairs");
  lua_pushcfunction(L, SafeToString);
  lua_setglobal(L, "tostring");
  // null, and the metatables that say whether a table was an array or an
  // object.
  luaL_newmetatable(L, kArrayMeta);
  lua_pop(L, 1);
  luaL_newmetatable(L, kObjectMeta);
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, kNullKey);
  lua_setglobal(L, "null");
  return 0;
}

// --- JSON <-> Lua ------------------------------------------------------------------

void PushJson(lua_State* L, const json& v, int depth) {
  luaL_checkstack(L, 4, "value too deep");
  if (depth > kMaxDepth) luaL_error(L, "a sibling value is nested deeper than %d levels", kMaxDepth);
  switch (v.type()) {
    case json::value_t::null:
      lua_getfield(L, LUA_REGISTRYINDEX, kNullKey);
      return;
    case json::value_t::boolean:
      lua_pushboolean(L, v.get<bool>());
      return;
    case json::value_t::number_integer:
      lua_pushinteger(L, static_cast<lua_Integer>(v.get<int64_t>()));
      return;
    case json::value_t::number_unsigned: {
      const uint64_t u = v.get<uint64_t>();
      if (u <= static_cast<uint64_t>(std::numeric_limits<lua_Integer>::max())) {
        lua_pushinteger(L, static_cast<lua_Integer>(u));
      } else {
        lua_pushnumber(L, static_cast<lua_Number>(u));
      }
      return;
    }
    case json::value_t::number_float:
      lua_pushnumber(L, v.get<double>());
      return;
    case json::value_t::string: {
      const std::string& s = v.get_ref<const std::string&>();
      lua_pushlstring(L, s.data(), s.size());
      return;
    }
    case json::value_t::array: {
      lua_createtable(L, static_cast<int>(std::min<size_t>(v.size(), 1 << 20)), 0);
      lua_Integer i = 0;
      for (const json& e : v) {
        PushJson(L, e, depth + 1);
        lua_seti(L, -2, ++i);
      }
      luaL_setmetatable(L, kArrayMeta);
      return;
    }
    case json::value_t::object: {
      lua_createtable(L, 0, static_cast<int>(std::min<size_t>(v.size(), 1 << 20)));
      for (const auto& [key, e] : v.items()) {
        lua_pushlstring(L, key.data(), key.size());
        PushJson(L, e, depth + 1);
        lua_settable(L, -3);
      }
      luaL_setmetatable(L, kObjectMeta);
      return;
    }
    default:
      lua_getfield(L, LUA_REGISTRYINDEX, kNullKey);  // binary and discarded: not in stored values
      return;
  }
}

// The value at `index` as JSON; false with *why when it is not JSON.
bool ToJson(lua_State* L, int index, int depth, json* out, std::string* why) {
  index = lua_absindex(L, index);
  if (depth > kMaxDepth) {
    *why = "it is nested deeper than " + std::to_string(kMaxDepth) + " levels (or holds a cycle)";
    return false;
  }
  switch (lua_type(L, index)) {
    case LUA_TBOOLEAN:
      *out = lua_toboolean(L, index) != 0;
      return true;
    case LUA_TNUMBER:
      if (lua_isinteger(L, index)) {
        *out = static_cast<int64_t>(lua_tointeger(L, index));
      } else {
        const double d = lua_tonumber(L, index);
        if (!std::isfinite(d)) {
          *why = "it holds a number JSON cannot hold (inf or nan)";
          return false;
        }
        *out = d;
      }
      return true;
    case LUA_TSTRING: {
      size_t n = 0;
      const char* s = lua_tolstring(L, index, &n);
      *out = std::string(s, n);
      return true;
    }
    case LUA_TTABLE: {
      lua_getfield(L, LUA_REGISTRYINDEX, kNullKey);
      const bool is_null = lua_rawequal(L, -1, index) != 0;
      lua_pop(L, 1);
      if (is_null) {
        *out = nullptr;
        return true;
      }
      bool from_object = false;
      if (lua_getmetatable(L, index)) {
        luaL_getmetatable(L, kObjectMeta);
        from_object = lua_rawequal(L, -1, -2) != 0;
        lua_pop(L, 2);
      }
      // Keys: all strings (an object) or exactly 1..n (an array).
      lua_Integer count = 0, max_int = 0;
      bool all_strings = true, all_ints = true;
      lua_pushnil(L);
      while (lua_next(L, index) != 0) {
        lua_pop(L, 1);
        ++count;
        if (lua_type(L, -1) == LUA_TSTRING) {
          all_ints = false;
        } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
          all_strings = false;
          max_int = std::max(max_int, lua_tointeger(L, -1));
        } else {
          lua_pop(L, 1);
          *why = std::string("a table has a ") + luaL_typename(L, -1) + " key";
          return false;
        }
      }
      if (count == 0) {
        *out = from_object ? json::object() : json::array();
        return true;
      }
      if (all_ints && max_int == count) {
        json arr = json::array();
        for (lua_Integer i = 1; i <= count; ++i) {
          lua_rawgeti(L, index, i);
          json e;
          const bool ok = ToJson(L, -1, depth + 1, &e, why);
          lua_pop(L, 1);
          if (!ok) return false;
          arr.push_back(std::move(e));
        }
        *out = std::move(arr);
        return true;
      }
      if (!all_strings) {
        *why = "a table mixes string and number keys, or its number keys are not 1..n";
        return false;
      }
      json obj = json::object();
      lua_pushnil(L);
      while (lua_next(L, index) != 0) {
        size_t n = 0;
        const char* k = lua_tolstring(L, -2, &n);
        json e;
        const bool ok = ToJson(L, -1, depth + 1, &e, why);
        lua_pop(L, 1);
        if (!ok) {
          lua_pop(L, 1);
          return false;
        }
        obj[std::string(k, n)] = std::move(e);
      }
      *out = std::move(obj);
      return true;
    }
    default:
      *why = std::string("it holds a ") + luaL_typename(L, index);
      return false;
  }
}

// One call of resolve, run under lua_pcall (so that an error anywhere,
// building the arguments or converting the result, is caught).
struct Run {
  const std::vector<Sibling>* siblings = nullptr;
  bool decided = false;
  json value;          // decided
  std::string reason;  // not decided
};

int CallResolve(lua_State* L) {
  auto* run = static_cast<Run*>(lua_touserdata(L, 1));
  lua_settop(L, 0);
  if (lua_getglobal(L, "resolve") != LUA_TFUNCTION) {
    return luaL_error(L, "the script defines no function resolve(siblings)");
  }
  const std::vector<Sibling>& sibs = *run->siblings;
  lua_createtable(L, static_cast<int>(sibs.size()), 0);
  lua_Integer i = 0;
  for (const Sibling& s : sibs) {
    lua_createtable(L, 0, 4);
    PushJson(L, s.value, 0);
    lua_setfield(L, -2, "value");
    lua_pushlstring(L, s.region.data(), s.region.size());
    lua_setfield(L, -2, "region");
    lua_pushlstring(L, s.replica.data(), s.replica.size());
    lua_setfield(L, -2, "replica");
    lua_pushinteger(L, static_cast<lua_Integer>(s.hlc));
    lua_setfield(L, -2, "hlc");
    lua_seti(L, -2, ++i);
  }
  luaL_setmetatable(L, kArrayMeta);
  lua_call(L, 1, 2);  // stack: result, reason
  if (lua_isnil(L, 1)) {
    run->reason = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2)
                                                : "the script returned nil (no value, no reason)";
    return 0;
  }
  std::string why;
  if (!ToJson(L, 1, 0, &run->value, &why)) {
    run->reason = "the script returned a value that is not JSON: " + why;
    return 0;
  }
  run->decided = true;
  return 0;
}

Outcome Undecided(std::string reason) {
  Outcome o;
  o.reason = std::move(reason);
  return o;
}

}  // namespace

LuaResolver::LuaResolver(std::string name, std::string source, LuaLimits limits)
    : name_(std::move(name)), source_(std::move(source)), limits_(limits) {}

Outcome LuaResolver::Resolve(const std::vector<Sibling>& siblings) const {
  // Canonical order: by HLC, then replica (then value, for equal ones).
  std::vector<Sibling> sorted = siblings;
  std::sort(sorted.begin(), sorted.end(), [](const Sibling& a, const Sibling& b) {
    if (a.hlc != b.hlc) return a.hlc < b.hlc;
    if (a.replica != b.replica) return a.replica < b.replica;
    return a.value.dump() < b.value.dump();
  });

  Budget budget;
  budget.cap = limits_.memory_bytes;
  budget.instructions_left = limits_.instructions;
  budget.deadline = Clock::now() + std::chrono::milliseconds(limits_.time_ms);
  lua_State* L = lua_newstate(Allocate, &budget);
  if (L == nullptr) return Undecided("the script could not start: no memory for a Lua state");
  struct Closer {
    lua_State* L;
    ~Closer() { lua_close(L); }
  } closer{L};

  // A budget or the cap may also have been hit inside a pcall of the
  // script's and caught there: the error that ends the call decides.
  auto failure = [&](const char* what) {
    std::string msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "an error";
    Outcome o;
    if (!budget.stopped.empty() && msg.find(budget.stopped) != std::string::npos) {
      o = Undecided("the script " + budget.stopped);
    } else if (budget.out_of_memory && msg.find("not enough memory") != std::string::npos) {
      o = Undecided("the script ran past its memory cap");
    } else {
      o = Undecided(std::string(what) + ": " + msg);
    }
    o.error = true;
    return o;
  };

  // Libraries before the hook: opening them is not the script's budget.
  lua_pushcfunction(L, OpenSandbox);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) return failure("the sandbox could not start");
  lua_sethook(L, Hook, LUA_MASKCOUNT, kHookEvery);
  // "t": text only, never a precompiled chunk.
  if (luaL_loadbufferx(L, source_.data(), source_.size(), ("=" + name_).c_str(), "t") != LUA_OK) {
    return failure("the script does not load");
  }
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) return failure("the script failed");

  Run run;
  run.siblings = &sorted;
  lua_pushcfunction(L, CallResolve);
  lua_pushlightuserdata(L, &run);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) return failure("the script failed");
  Outcome o;
  o.decided = run.decided;
  if (o.decided) {
    o.value = std::move(run.value);
  } else {
    o.reason = std::move(run.reason);
  }
  return o;
}

}  // namespace meridian::conflict
