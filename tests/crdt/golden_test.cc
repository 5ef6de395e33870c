#define BOOST_TEST_MODULE golden
#include <boost/test/unit_test.hpp>

BOOST_AUTO_TEST_CASE(to_be_written) { BOOST_TEST(true); }
