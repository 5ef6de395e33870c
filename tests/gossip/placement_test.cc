// gossip/placement.h: the set's checks (each problem with its line, in line
// order), longest-prefix placement, and what a key's regions, count and
// scope are, placed or not.
#define BOOST_TEST_MODULE placement
#include "gossip/placement.h"

#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

using meridian::Status;
using meridian::gossip::Placement;
using meridian::gossip::PlacementSpec;

namespace {

const std::vector<std::string> kRegions = {"us-east", "eu-west", "ap-south"};

PlacementSpec Spec(int line, std::string prefix, std::vector<std::string> regions) {
  PlacementSpec s;
  s.line = line;
  s.prefix = std::move(prefix);
  s.regions = std::move(regions);
  return s;
}

}  // namespace

BOOST_AUTO_TEST_CASE(no_specs_place_nothing) {
  Placement p;
  BOOST_REQUIRE(Placement::Build({}, kRegions, "t.toml", &p).ok());
  BOOST_TEST(p.empty());
  BOOST_TEST(p.Find("eu/x") == nullptr);
  BOOST_TEST(p.Holds("eu/x", "ap-south"));
  BOOST_TEST(p.RegionCount("eu/x") == 3u);
  BOOST_TEST(p.ScopeOf("eu/x") == "");
}

BOOST_AUTO_TEST_CASE(longest_prefix_places_a_key) {
  Placement p;
  Status st = Placement::Build({Spec(3, "eu/", {"eu-west"}),
                                Spec(7, "eu/shared/", {"eu-west", "us-east"})},
                               kRegions, "t.toml", &p);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  BOOST_TEST(p.specs().size() == 2u);

  BOOST_REQUIRE(p.Find("eu/x") != nullptr);
  BOOST_TEST(p.Find("eu/x")->prefix == "eu/");
  BOOST_TEST(p.Holds("eu/x", "eu-west"));
  BOOST_TEST(!p.Holds("eu/x", "us-east"));
  BOOST_TEST(!p.Holds("eu/x", "ap-south"));
  BOOST_TEST(p.RegionCount("eu/x") == 1u);
  BOOST_TEST(p.ScopeOf("eu/x") == "eu/");

  BOOST_TEST(p.ScopeOf("eu/shared/doc") == "eu/shared/");
  BOOST_TEST(p.Holds("eu/shared/doc", "us-east"));
  BOOST_TEST(p.Holds("eu/shared/doc", "eu-west"));
  BOOST_TEST(!p.Holds("eu/shared/doc", "ap-south"));
  BOOST_TEST(p.RegionCount("eu/shared/doc") == 2u);

  // The prefix itself is placed; a key that only shares a beginning is not.
  BOOST_TEST(p.ScopeOf("eu/") == "eu/");
  BOOST_TEST(p.Find("eu") == nullptr);
  BOOST_TEST(p.Find("europe/x") == nullptr);
  BOOST_TEST(p.Holds("europe/x", "ap-south"));
  BOOST_TEST(p.RegionCount("us/x") == 3u);
  BOOST_TEST(p.ScopeOf("us/x") == "");
}

BOOST_AUTO_TEST_CASE(every_problem_is_reported_with_its_line_in_order) {
  Placement p;
  std::string nul_prefix("a\0b", 3);
  Status st = Placement::Build({Spec(18, "dup/", {"eu-west"}),
                                Spec(4, "", {"eu-west"}),
                                Spec(8, "x/", {}),
                                Spec(12, "y/", {"mars"}),
                                Spec(16, "z/", {"eu-west", "eu-west"}),
                                Spec(20, "dup/", {"us-east"}),
                                Spec(22, nul_prefix, {"us-east"}),
                                Spec(24, std::string(1025, 'k'), {"us-east"})},
                               kRegions, "t.toml", &p);
  BOOST_REQUIRE(!st.ok());
  BOOST_TEST(st.IsInvalidArgument());
  const std::string m = st.ToString();
  BOOST_TEST_MESSAGE(m);
  std::vector<std::string> expected = {
      "t.toml:4: a placement's prefix must not be empty",
      "t.toml:8: placement 'x/' lists no regions",
      "t.toml:12: placement 'y/' names region 'mars', which is not a [[region]]",
      "t.toml:16: placement 'z/' names region 'eu-west' twice",
      "t.toml:20: prefix 'dup/' is placed twice",
      "t.toml:22: a placement's prefix must not hold a NUL byte",
      "t.toml:24: a placement's prefix is at most 1024 bytes",
  };
  size_t at = 0;
  for (const std::string& e : expected) {
    size_t found = m.find(e, at);
    BOOST_TEST(found != std::string::npos, "missing or out of order: " << e);
    if (found != std::string::npos) at = found;
  }
  BOOST_TEST(p.empty());  // untouched on failure
}

BOOST_AUTO_TEST_CASE(a_placement_may_list_every_region) {
  Placement p;
  BOOST_REQUIRE(
      Placement::Build({Spec(1, "all/", kRegions)}, kRegions, "t.toml", &p).ok());
  for (const std::string& r : kRegions) BOOST_TEST(p.Holds("all/k", r));
  BOOST_TEST(p.RegionCount("all/k") == 3u);
  BOOST_TEST(p.ScopeOf("all/k") == "all/");
}
