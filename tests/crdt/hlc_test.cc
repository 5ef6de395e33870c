#define BOOST_TEST_MODULE hlc
#include <boost/test/unit_test.hpp>

#include "crdt/hlc.h"

using namespace meridian::crdt;

BOOST_AUTO_TEST_CASE(placeholder_now_monotonic) {
  ManualClock wall(1000);
  HybridClock c(&wall, 500);
  Hlc a = c.Now();
  Hlc b = c.Now();
  BOOST_TEST(b > a);
}
