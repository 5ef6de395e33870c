// conflict::PolicySet (conflict/policy.h): the checks Build makes, with
// their file:line sentences; longest-prefix matching; defaults; the hash
// that nodes compare in the gossip handshake.
#define BOOST_TEST_MODULE conflict
#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

#include "conflict/policy.h"

using meridian::Status;
using meridian::conflict::OnUnresolved;
using meridian::conflict::Policy;
using meridian::conflict::PolicySet;
using meridian::conflict::PolicySpec;
using meridian::conflict::ResolverSpec;

namespace {

const std::vector<std::string> kRegions = {"us-east", "eu-west", "ap-south"};

PolicySpec Spec(int line, std::string prefix, std::string type,
                std::vector<std::string> resolve = {}) {
  PolicySpec s;
  s.line = line;
  s.prefix = std::move(prefix);
  s.type = std::move(type);
  s.resolve = std::move(resolve);
  return s;
}

PolicySet MustBuild(const std::vector<PolicySpec>& specs) {
  PolicySet set;
  Status st = PolicySet::Build(specs, kRegions, "t.toml", nullptr, &set);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  return set;
}

// The message of a Build that must fail.
std::string Refusal(const std::vector<PolicySpec>& specs,
                    const meridian::conflict::ScriptCheck& check = nullptr) {
  PolicySet set;
  Status st = PolicySet::Build(specs, kRegions, "t.toml", check, &set);
  BOOST_REQUIRE(!st.ok());
  BOOST_TEST((st.code() == Status::Code::kInvalidArgument));
  return st.message();
}

bool Has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_longest_matching_prefix_decides) {
  PolicySet set = MustBuild({Spec(1, "stock/", "mvregister", {"max"}),
                             Spec(5, "stock/eu/", "mvregister", {"min"}),
                             Spec(9, "profile/", "register")});
  BOOST_REQUIRE(set.Match("stock/eu/widget") != nullptr);
  BOOST_TEST(set.Match("stock/eu/widget")->prefix == "stock/eu/");
  BOOST_TEST(set.Match("stock/us/widget")->prefix == "stock/");
  BOOST_TEST(set.Match("stock/")->prefix == "stock/");
  BOOST_TEST(set.Match("stock") == nullptr);
  BOOST_TEST(set.Match("other/x") == nullptr);
  BOOST_TEST(set.Match("") == nullptr);
  BOOST_TEST(set.Match("profile/ann")->type == "register");
}

BOOST_AUTO_TEST_CASE(defaults_and_resolver_parameters) {
  PolicySpec doc = Spec(1, "doc/", "mvregister");
  PolicySpec profile = Spec(4, "profile/", "register");
  profile.audit = true;
  PolicySpec cart = Spec(8, "cart/", "mvregister", {"json_max", "prefer_region", "lua:r/cart.lua"});
  cart.has_json_max = true;
  cart.json_max = "version";
  cart.has_prefer_region = true;
  cart.prefer_region = {"eu-west", "us-east"};
  cart.has_on_unresolved = true;
  cart.on_unresolved = "lww";
  PolicySpec notes = Spec(12, "notes/", "text");
  PolicySet set = MustBuild({doc, profile, cart, notes});
  BOOST_TEST(set.Match("notes/1")->type == "text");
  const Policy* d = set.Match("doc/1");
  BOOST_TEST((d->on_unresolved == OnUnresolved::kReview));
  BOOST_TEST(d->resolve.empty());
  const Policy* p = set.Match("profile/1");
  BOOST_TEST((p->on_unresolved == OnUnresolved::kLww));
  BOOST_TEST(p->audit);
  const Policy* c = set.Match("cart/1");
  BOOST_TEST((c->on_unresolved == OnUnresolved::kLww));
  BOOST_REQUIRE_EQUAL(c->resolve.size(), 3u);
  BOOST_TEST((c->resolve[0].kind == ResolverSpec::Kind::kJsonMax));
  BOOST_TEST(c->resolve[0].field == "version");
  BOOST_TEST((c->resolve[1].kind == ResolverSpec::Kind::kPreferRegion));
  BOOST_TEST((c->resolve[1].regions == std::vector<std::string>{"eu-west", "us-east"}));
  BOOST_TEST((c->resolve[2].kind == ResolverSpec::Kind::kLua));
  BOOST_TEST(c->resolve[2].script == "r/cart.lua");
  BOOST_TEST(c->resolve[2].name == "lua:r/cart.lua");
}

BOOST_AUTO_TEST_CASE(every_problem_is_named_with_its_line_in_line_order) {
  PolicySpec no_field = Spec(30, "c/", "mvregister", {"json_max"});
  PolicySpec stray_field = Spec(35, "d/", "mvregister", {"max"});
  stray_field.has_json_max = true;
  stray_field.json_max = "v";
  PolicySpec bad_region = Spec(40, "e/", "mvregister", {"prefer_region"});
  bad_region.has_prefer_region = true;
  bad_region.prefer_region = {"us-east", "mars", "us-east"};
  PolicySpec bad_unresolved = Spec(45, "f/", "mvregister");
  bad_unresolved.has_on_unresolved = true;
  bad_unresolved.on_unresolved = "ignore";
  PolicySpec audit_set = Spec(50, "g/", "set");
  audit_set.audit = true;
  PolicySpec register_review = Spec(55, "h/", "register");
  register_review.has_on_unresolved = true;
  register_review.on_unresolved = "review";
  const std::string m = Refusal({
      Spec(20, "a/", "mvregister", {"max", "maximum"}),
      Spec(10, "a/", "mvregister"),
      Spec(25, "b/", "counter", {"max"}),
      no_field, stray_field, bad_region, bad_unresolved, audit_set, register_review,
      Spec(60, "", "register"),
      Spec(65, "i/", "mvregister", {"max", "max"}),
      Spec(70, "j/", "mvregister", {"lua:"}),
      Spec(75, "k/", "document"),
  });
  BOOST_TEST_MESSAGE(m);
  BOOST_TEST(Has(m, "t.toml:20: prefix \"a/\" already has a policy (line 10)"));
  BOOST_TEST(Has(m, "t.toml:20: unknown resolver \"maximum\""));
  BOOST_TEST(Has(m, "t.toml:25: resolvers apply to mvregister keys only"));
  BOOST_TEST(Has(m, "t.toml:30: resolver \"json_max\" needs json_max"));
  BOOST_TEST(Has(m, "t.toml:35: json_max is set but \"json_max\" is not in resolve"));
  BOOST_TEST(Has(m, "t.toml:40: prefer_region names \"mars\", which is not a region"));
  BOOST_TEST(Has(m, "t.toml:40: prefer_region names \"us-east\" twice"));
  BOOST_TEST(Has(m, "t.toml:45: on_unresolved is \"ignore\""));
  BOOST_TEST(Has(m, "t.toml:50: audit applies to register keys only"));
  BOOST_TEST(Has(m, "t.toml:55: a register is settled by last-writer-wins"));
  BOOST_TEST(Has(m, "t.toml:60: a policy's prefix must not be empty"));
  BOOST_TEST(Has(m, "t.toml:65: resolver \"max\" is listed twice"));
  BOOST_TEST(Has(m, "t.toml:70: resolver \"lua:\" names no script"));
  BOOST_TEST(Has(m, "t.toml:75: unknown type \"document\""));
  // Line order, whatever the order of the specs.
  BOOST_TEST(m.find("t.toml:20:") < m.find("t.toml:25:"));
  BOOST_TEST(m.find("t.toml:70:") < m.find("t.toml:75:"));
  BOOST_TEST(m.rfind("t.toml:10:") == std::string::npos);  // the first "a/" is fine
}

BOOST_AUTO_TEST_CASE(the_hash_is_order_free_and_sees_every_setting) {
  const PolicySet a = MustBuild({Spec(1, "a/", "mvregister", {"max"}), Spec(2, "b/", "register")});
  const PolicySet b = MustBuild({Spec(9, "b/", "register"), Spec(7, "a/", "mvregister", {"max"})});
  BOOST_TEST(a.Hash() == b.Hash());  // order and lines do not matter
  BOOST_TEST(a.Hash().size() == 16u);
  BOOST_TEST(PolicySet().Hash() == "0000000000000000");
  BOOST_TEST(a.Hash() != MustBuild({Spec(1, "a/", "mvregister", {"min"}), Spec(2, "b/", "register")}).Hash());
  BOOST_TEST(a.Hash() != MustBuild({Spec(1, "a/", "mvregister", {"max"}), Spec(2, "b/", "mvregister")}).Hash());
  BOOST_TEST(a.Hash() != MustBuild({Spec(1, "a/", "mvregister", {"max"})}).Hash());
  auto json_max = [](std::string field) {
    PolicySpec s = Spec(3, "cart/", "mvregister", {"json_max"});
    s.has_json_max = true;
    s.json_max = std::move(field);
    return MustBuild({s}).Hash();
  };
  BOOST_TEST(json_max("v") != json_max("w"));
}

// Lua scripts are checked by the caller's callback, which also gives the
// digest the hash covers: nodes whose scripts differ see different hashes.
BOOST_AUTO_TEST_CASE(lua_scripts_are_checked_and_their_text_is_in_the_hash) {
  auto build = [](const std::string& digest, PolicySet* set) {
    return PolicySet::Build({Spec(3, "cart/", "mvregister", {"lua:r/cart.lua"})}, kRegions,
                            "t.toml",
                            [&digest](const std::string& path, std::string* out) {
                              BOOST_TEST(path == "r/cart.lua");
                              *out = digest;
                              return Status::OK();
                            },
                            set);
  };
  PolicySet one, two, same;
  BOOST_REQUIRE(build("d1", &one).ok());
  BOOST_REQUIRE(build("d2", &two).ok());
  BOOST_REQUIRE(build("d1", &same).ok());
  BOOST_TEST(one.Hash() != two.Hash());
  BOOST_TEST(one.Hash() == same.Hash());
  BOOST_TEST(one.policies()[0].resolve[0].script_digest == "d1");

  const std::string m = Refusal({Spec(3, "cart/", "mvregister", {"lua:r/missing.lua"})},
                                [](const std::string&, std::string*) {
                                  return Status::NotFound("cannot read r/missing.lua: no such file");
                                });
  BOOST_TEST(Has(m, "t.toml:3: resolver \"lua:r/missing.lua\": cannot read r/missing.lua: no such file"));
}
