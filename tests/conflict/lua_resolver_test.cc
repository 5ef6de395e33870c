// Lua resolvers (conflict/lua_resolver.h): scripts settle siblings; the
// sandbox refuses io, os, require and friends; pairs is sorted; the
// instruction budget and the memory cap stop runaway scripts quickly; every
// failure is "cannot decide" with the reason.
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "conflict/lua_resolver.h"

using meridian::conflict::LuaResolver;
using meridian::conflict::Outcome;
using meridian::conflict::Sibling;
using nlohmann::json;

namespace {

std::vector<Sibling> Sibs(std::vector<json> values) {
  std::vector<Sibling> out;
  for (size_t i = 0; i < values.size(); ++i) {
    Sibling s;
    s.value = values[i];
    s.region = i % 2 == 0 ? "us-east" : "eu-west";
    s.replica = "n" + std::to_string(i) + "#3";
    s.hlc = (uint64_t{1700000000000} << 16) + i;
    out.push_back(s);
  }
  return out;
}

Outcome Run(const std::string& script, const std::vector<Sibling>& sibs) {
  return LuaResolver("lua:test.lua", script).Resolve(sibs);
}

bool Has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A cart: the union of the items of every sibling, with the largest
// quantity of each, built by iterating with pairs.
const char* const kCart = R"(
function resolve(siblings)
  local qty = {}
  for _, s in ipairs(siblings) do
    for item, n in pairs(s.value.items) do
      if qty[item] == nil or n > qty[item] then qty[item] = n end
    end
  end
  local order = {}
  for item, _ in pairs(qty) do order[#order + 1] = item end
  return {items = qty, order = table.concat(order, ",")}
end
)";

}  // namespace

BOOST_AUTO_TEST_CASE(a_script_settles_siblings_the_same_way_every_time) {
  const auto sibs = Sibs({json::parse(R"({"items": {"pear": 1, "apple": 2, "fig": 1}})"),
                          json::parse(R"({"items": {"kiwi": 4, "apple": 1, "banana": 1}})")});
  const Outcome o = Run(kCart, sibs);
  BOOST_REQUIRE_MESSAGE(o.decided, o.reason);
  BOOST_TEST(o.value["items"] ==
             json::parse(R"({"apple": 2, "banana": 1, "fig": 1, "kiwi": 4, "pear": 1})"));
  // pairs visits keys in sorted order, whatever the hash seed of the state.
  BOOST_TEST(o.value["order"] == "apple,banana,fig,kiwi,pear");
  for (int i = 0; i < 20; ++i) {
    std::vector<Sibling> reversed(sibs.rbegin(), sibs.rend());
    BOOST_TEST(Run(kCart, reversed).value == o.value);
  }
}

BOOST_AUTO_TEST_CASE(siblings_arrive_in_canonical_order_with_their_origin) {
  const char* script = R"(
function resolve(s)
  local out = {}
  for i, x in ipairs(s) do out[i] = x.replica .. "@" .. x.region .. ":" .. tostring(x.value) end
  return table.concat(out, " ") .. " " .. tostring(s[2].hlc - s[1].hlc)
end)";
  auto sibs = Sibs({"a", "b", "c"});
  std::vector<Sibling> shuffled = {sibs[2], sibs[0], sibs[1]};
  const Outcome o = Run(script, shuffled);
  BOOST_REQUIRE_MESSAGE(o.decided, o.reason);
  BOOST_TEST(o.value == "n0#3@us-east:a n1#3@eu-west:b n2#3@us-east:c 1");
}

BOOST_AUTO_TEST_CASE(values_cross_into_lua_and_back_unchanged) {
  const json v = json::parse(
      R"({"n": null, "i": -7, "big": 9007199254740993, "f": 2.5, "s": "é", "t": true,
          "empty_obj": {}, "empty_arr": [], "nested": [[1, {"a": [null]}]]})");
  const Outcome o = Run("function resolve(s) return s[1].value end", Sibs({v}));
  BOOST_REQUIRE_MESSAGE(o.decided, o.reason);
  BOOST_TEST(o.value == v);
  BOOST_TEST(o.value["big"].is_number_integer());
  BOOST_TEST(o.value["f"].is_number_float());
}

BOOST_AUTO_TEST_CASE(a_script_may_say_it_cannot_decide) {
  Outcome o = Run("function resolve(s) return nil, 'two prices differ' end", Sibs({1, 2}));
  BOOST_TEST(!o.decided);
  BOOST_TEST(o.reason == "two prices differ");
  o = Run("function resolve(s) end", Sibs({1, 2}));
  BOOST_TEST(!o.decided);
  BOOST_TEST(Has(o.reason, "returned nil"));
  o = Run("function resolve(s) return function() end end", Sibs({1}));
  BOOST_TEST(Has(o.reason, "not JSON"));
  o = Run("function resolve(s) return {1, 2, x = 3} end", Sibs({1}));
  BOOST_TEST(Has(o.reason, "not JSON"));
  o = Run("function resolve(s) return 0/0 end", Sibs({1}));
  BOOST_TEST(Has(o.reason, "not JSON"));
  o = Run("x = 1", Sibs({1}));
  BOOST_TEST(Has(o.reason, "defines no function resolve"));
  o = Run("function resolve(s) return end end end", Sibs({1}));
  BOOST_TEST(Has(o.reason, "does not load"));
  o = Run("function resolve(s) error('boom') end", Sibs({1}));
  BOOST_TEST(Has(o.reason, "boom"));
  BOOST_TEST(Has(o.reason, "test.lua"));  // the script is named
}

BOOST_AUTO_TEST_CASE(the_sandbox_has_no_way_out) {
  for (const char* call : {"os.execute('touch /tmp/meridian-lua-escape')", "io.open('/etc/passwd')",
                           "require('os')", "dofile('/etc/passwd')", "loadfile('/etc/passwd')",
                           "load('return 1')", "debug.getinfo(1)", "math.random()",
                           "math.randomseed(1)", "string.dump(resolve)", "next({})",
                           "collectgarbage()", "print('x')", "package.loadlib('x', 'y')"}) {
    const Outcome o = Run(std::string("function resolve(s) return ") + call + " end", Sibs({1, 2}));
    BOOST_TEST(!o.decided, call);
    BOOST_TEST(Has(o.reason, "the script failed"), call << ": " << o.reason);
  }
  // A precompiled chunk is refused.
  const Outcome o = Run(std::string("\x1bLua\x54\x00", 6) + "junk", Sibs({1}));
  BOOST_TEST(Has(o.reason, "does not load"), o.reason);
  // tostring shows no addresses.
  const Outcome t = Run("function resolve(s) return tostring({}) .. tostring(print) end", Sibs({1}));
  BOOST_TEST(t.value == "tablenil");
}

BOOST_AUTO_TEST_CASE(pairs_refuses_keys_without_an_order) {
  const Outcome o =
      Run("function resolve(s) local t = {[true] = 1} for k in pairs(t) do end return 1 end",
          Sibs({1}));
  BOOST_TEST(!o.decided);
  BOOST_TEST(Has(o.reason, "only numbers and strings have an order"), o.reason);
  const Outcome n = Run(R"(function resolve(s)
    local t = {b = 1, [10] = 1, a = 1, [2] = 1, [-1.5] = 1}
    local ks = {}
    for k in pairs(t) do ks[#ks + 1] = tostring(k) end
    return table.concat(ks, " ")
  end)",
                        Sibs({1}));
  BOOST_TEST(n.value == "-1.5 2 10 a b");
}

BOOST_AUTO_TEST_CASE(an_endless_loop_is_stopped_by_the_budget_within_100_ms) {
  const auto start = std::chrono::steady_clock::now();
  const Outcome o = Run("function resolve(s) while true do end end", Sibs({1, 2}));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  BOOST_TEST(!o.decided);
  BOOST_TEST(o.reason == "the script ran past its instruction budget");
  BOOST_TEST(ms < 100);
  // Recursion without end runs into Lua's own limit, or the budget.
  const Outcome r = Run("function f(n) return f(n + 1) + 1 end function resolve(s) return f(1) end",
                        Sibs({1}));
  BOOST_TEST(!r.decided);
}

BOOST_AUTO_TEST_CASE(a_memory_bomb_is_stopped_by_the_cap) {
  Outcome o = Run("function resolve(s) local x = 'x' for i = 1, 40 do x = x .. x end return x end",
                  Sibs({1}));
  BOOST_TEST(!o.decided);
  BOOST_TEST(o.reason == "the script ran past its memory cap");
  o = Run("function resolve(s) return string.rep('x', 1 << 30) end", Sibs({1}));
  BOOST_TEST(o.reason == "the script ran past its memory cap");
  // The next call starts afresh.
  o = Run("function resolve(s) return #s end", Sibs({1, 2, 3}));
  BOOST_TEST(o.value == 3);
}

// --- The example scripts in regions/resolvers/ ------------------------------------

namespace {

std::string Shipped(const std::string& name) {
  const std::string path = std::string(MERIDIAN_RESOLVERS_DIR) + "/" + name;
  std::ifstream f(path, std::ios::binary);
  BOOST_REQUIRE_MESSAGE(f.good(), "cannot read " << path);
  std::stringstream text;
  text << f.rdbuf();
  return text.str();
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_shipped_cart_script_merges_carts) {
  const LuaResolver cart("lua:resolvers/cart.lua", Shipped("cart.lua"));
  Outcome o = cart.Resolve(Sibs({json::parse(R"({"items": {"tea": 1, "milk": 2}})"),
                                 json::parse(R"({"items": {"tea": 3, "jam": 1, "milk": 0}})")}));
  BOOST_REQUIRE_MESSAGE(o.decided, o.reason);
  BOOST_TEST(o.value == json::parse(R"({"items": {"jam": 1, "milk": 2, "tea": 3}})"));
  o = cart.Resolve(Sibs({json::parse(R"({"items": {"tea": 0}})"),
                         json::parse(R"({"items": {}})")}));
  BOOST_REQUIRE_MESSAGE(o.decided, o.reason);
  BOOST_TEST(o.value.dump() == R"({"items":{}})");  // still an object
  o = cart.Resolve(Sibs({json::parse(R"({"items": {"tea": 1}})"), json("not a cart")}));
  BOOST_TEST(!o.decided);
  BOOST_TEST(o.reason == "version 2 (from eu-west) is not a cart with items");
  o = cart.Resolve(Sibs({json::parse(R"({"items": {"tea": 1.5}})"), json::parse(R"({"items": {}})")}));
  BOOST_TEST(!o.decided);
  BOOST_TEST(Has(o.reason, "bad quantity for tea"));
}

BOOST_AUTO_TEST_CASE(the_shipped_order_status_script_takes_the_furthest_status) {
  const LuaResolver status("lua:resolvers/order_status.lua", Shipped("order_status.lua"));
  Outcome o = status.Resolve(Sibs({json::parse(R"({"status": "shipped", "by": "a"})"),
                                   json::parse(R"({"status": "paid", "by": "b"})")}));
  BOOST_REQUIRE_MESSAGE(o.decided, o.reason);
  BOOST_TEST(o.value["by"] == "a");
  // Equal status: the later HLC wins (Sibs gives later HLCs to later values).
  o = status.Resolve(Sibs({json::parse(R"({"status": "paid", "by": "a"})"),
                           json::parse(R"({"status": "paid", "by": "b"})")}));
  BOOST_TEST(o.value["by"] == "b");
  o = status.Resolve(Sibs({json::parse(R"({"status": "delivered"})"),
                           json::parse(R"({"status": "cancelled"})")}));
  BOOST_TEST(o.value["status"] == "cancelled");
  o = status.Resolve(Sibs({json::parse(R"({"status": "lost"})"), json::parse(R"({"status": "paid"})")}));
  BOOST_TEST(!o.decided);
  BOOST_TEST(o.reason == "version 1 (from us-east) has no known status");
}
