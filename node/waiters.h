// Requests that wait for something to become true — a read whose session
// token this node has not applied yet, a write with w=N that fewer than N
// regions hold — without holding an I/O or reader thread while they wait.
//
// One thread owns the waiting: it re-evaluates every pending condition
// when told that something changed (Notify: after each commit, after each
// gossip acknowledgement) and at the earliest deadline. Each waiter is
// answered exactly once, on that thread: done(true) as soon as its
// condition holds, done(false) at its deadline, or done(condition()) when
// the Waiters stop.
//
// Thread-safety: every method may be called from any thread. Conditions
// and callbacks run on the waiter thread and must not block.
#ifndef MERIDIAN_NODE_WAITERS_H_
#define MERIDIAN_NODE_WAITERS_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <thread>

namespace meridian::node {

class Waiters {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  Waiters();
  ~Waiters();  // Stop()
  Waiters(const Waiters&) = delete;
  Waiters& operator=(const Waiters&) = delete;

  // Adds a waiter; its condition is first evaluated on the waiter thread
  // (so a condition that already holds is answered at once, but never on
  // the caller's thread). After Stop(), done(condition()) runs at once on
  // the caller's thread.
  void Add(std::function<bool()> condition, TimePoint deadline, std::function<void(bool)> done);
  // Something a condition depends on changed.
  void Notify();
  // Answers every pending waiter with done(condition()) and stops the
  // thread; idempotent.
  void Stop();
  size_t pending() const;

 private:
  struct Waiter {
    std::function<bool()> condition;
    TimePoint deadline;
    std::function<void(bool)> done;
  };
  void Run();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::list<Waiter> waiters_;
  uint64_t notifications_ = 0;
  // The thread is evaluating waiters it took out of waiters_. While it is
  // not and none are pending, Notify has nothing to wake it for (Add wakes
  // it for each new waiter), so it skips the wake-up: commits and gossip
  // acknowledgements call Notify thousands of times a second.
  bool evaluating_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_WAITERS_H_
