// Waiters: answered once, when the condition holds, at the deadline, or on
// stop; never on the caller's thread while running.
#define BOOST_TEST_MODULE waiters_test
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "node/waiters.h"

using meridian::node::Waiters;
using namespace std::chrono_literals;

namespace {
auto In(std::chrono::milliseconds d) { return std::chrono::steady_clock::now() + d; }
}  // namespace

BOOST_AUTO_TEST_CASE(condition_already_true_answers_at_once_off_thread) {
  Waiters w;
  std::promise<std::pair<bool, std::thread::id>> p;
  auto start = std::chrono::steady_clock::now();
  w.Add([] { return true; }, In(10s),
        [&](bool ok) { p.set_value({ok, std::this_thread::get_id()}); });
  auto f = p.get_future();
  BOOST_REQUIRE(f.wait_for(2s) == std::future_status::ready);
  auto [ok, tid] = f.get();
  BOOST_CHECK(ok);
  BOOST_CHECK(tid != std::this_thread::get_id());
  BOOST_CHECK(std::chrono::steady_clock::now() - start < 1s);
}

BOOST_AUTO_TEST_CASE(notify_answers_when_condition_becomes_true) {
  Waiters w;
  std::atomic<bool> flag{false};
  std::promise<bool> p;
  w.Add([&] { return flag.load(); }, In(10s), [&](bool ok) { p.set_value(ok); });
  auto f = p.get_future();
  BOOST_CHECK(f.wait_for(100ms) == std::future_status::timeout);
  flag = true;
  w.Notify();
  BOOST_REQUIRE(f.wait_for(2s) == std::future_status::ready);
  BOOST_CHECK(f.get());
  BOOST_CHECK_EQUAL(w.pending(), 0u);
}

BOOST_AUTO_TEST_CASE(deadline_answers_false_without_notify) {
  Waiters w;
  std::promise<bool> p;
  auto start = std::chrono::steady_clock::now();
  w.Add([] { return false; }, In(150ms), [&](bool ok) { p.set_value(ok); });
  auto f = p.get_future();
  BOOST_REQUIRE(f.wait_for(3s) == std::future_status::ready);
  BOOST_CHECK(!f.get());
  BOOST_CHECK(std::chrono::steady_clock::now() - start >= 150ms);
}

BOOST_AUTO_TEST_CASE(each_waiter_answered_once_and_independently) {
  Waiters w;
  std::atomic<int> calls{0}, oks{0};
  std::atomic<int> level{0};
  for (int i = 0; i < 100; ++i) {
    w.Add([&level, i] { return level.load() > i; }, In(i < 50 ? 10s : 200ms), [&](bool ok) {
      calls++;
      if (ok) oks++;
    });
  }
  level = 50;  // the first 50 hold; the rest time out
  for (int i = 0; i < 5; ++i) w.Notify();
  for (int i = 0; i < 100 && calls.load() < 100; ++i) std::this_thread::sleep_for(20ms);
  std::this_thread::sleep_for(50ms);  // a second answer would show here
  BOOST_CHECK_EQUAL(calls.load(), 100);
  BOOST_CHECK_EQUAL(oks.load(), 50);
}

BOOST_AUTO_TEST_CASE(stop_answers_pending_with_condition_then_add_answers_inline) {
  Waiters w;
  std::atomic<int> yes{0}, no{0};
  w.Add([] { return false; }, In(60s), [&](bool ok) { (ok ? yes : no)++; });
  w.Add([] { return false; }, In(60s), [&](bool ok) { (ok ? yes : no)++; });
  std::this_thread::sleep_for(50ms);
  w.Stop();
  BOOST_CHECK_EQUAL(no.load(), 2);
  std::thread::id where;
  w.Add([] { return true; }, In(60s), [&](bool ok) {
    if (ok) yes++;
    where = std::this_thread::get_id();
  });
  BOOST_CHECK_EQUAL(yes.load(), 1);
  BOOST_CHECK(where == std::this_thread::get_id());
  w.Stop();  // idempotent
}
