#include "tests/support/current_test.h"

#include <boost/test/framework.hpp>
#include <boost/test/results_collector.hpp>
#include <boost/test/tree/test_unit.hpp>

namespace meridian::testing {

bool CurrentTestFailed() {
  namespace ut = boost::unit_test;
  // Outside a Boost.Test program (meridian_chaos links these helpers too)
  // the framework holds no test tree at all.
  if (!ut::framework::test_in_progress()) return false;
  try {
    ut::test_unit_id id = ut::framework::current_test_case().p_id;
    return !ut::results_collector.results(id).passed();
  } catch (...) {
    return false;  // not inside a test case
  }
}

}  // namespace meridian::testing
