// Polling with a deadline, for tests that wait on real processes.
#ifndef MERIDIAN_TESTS_SUPPORT_WAIT_FOR_H_
#define MERIDIAN_TESTS_SUPPORT_WAIT_FOR_H_

#include <chrono>
#include <functional>
#include <thread>

namespace meridian::testing {

// Calls `pred` every `step` until it is true (true) or `timeout` has
// passed (false).
inline bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                    std::chrono::milliseconds step = std::chrono::milliseconds(25)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);
  }
}

}  // namespace meridian::testing

#endif  // MERIDIAN_TESTS_SUPPORT_WAIT_FOR_H_
