// What the running Boost.Test test case has come to, for helpers that
// print diagnostics (a child's stderr, logs) only when it failed.
#ifndef MERIDIAN_TESTS_SUPPORT_CURRENT_TEST_H_
#define MERIDIAN_TESTS_SUPPORT_CURRENT_TEST_H_

namespace meridian::testing {

// True when the running test case has failed so far; false when it has
// not, or when no test case is running (a global fixture, static teardown,
// a program that is not a Boost.Test one).
bool CurrentTestFailed();

}  // namespace meridian::testing

#endif  // MERIDIAN_TESTS_SUPPORT_CURRENT_TEST_H_
