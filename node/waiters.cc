#include "node/waiters.h"

#include <vector>

namespace meridian::node {

Waiters::Waiters() { thread_ = std::thread([this] { Run(); }); }

Waiters::~Waiters() { Stop(); }

void Waiters::Add(std::function<bool()> condition, TimePoint deadline,
                  std::function<void(bool)> done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      waiters_.push_back(Waiter{std::move(condition), deadline, std::move(done)});
      ++notifications_;
      cv_.notify_one();
      return;
    }
  }
  done(condition());
}

void Waiters::Notify() {
  std::lock_guard<std::mutex> lock(mu_);
  if (waiters_.empty() && !evaluating_) return;  // nobody to re-check
  ++notifications_;
  cv_.notify_one();
}

void Waiters::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

size_t Waiters::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiters_.size();
}

void Waiters::Run() {
  uint64_t seen = 0;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    // Wait for a change, a deadline or the stop.
    while (!stopping_ && notifications_ == seen) {
      if (waiters_.empty()) {
        cv_.wait(lock);
        continue;
      }
      TimePoint earliest = waiters_.front().deadline;
      for (const Waiter& w : waiters_) earliest = std::min(earliest, w.deadline);
      if (cv_.wait_until(lock, earliest) == std::cv_status::timeout) break;
    }
    seen = notifications_;
    bool stopping = stopping_;
    // Evaluate outside the lock (conditions take other locks); waiters
    // added meanwhile stay in waiters_ and are seen on the next round,
    // since Add bumps notifications_.
    std::list<Waiter> batch;
    batch.swap(waiters_);
    evaluating_ = !batch.empty();
    lock.unlock();
    std::vector<std::pair<std::function<void(bool)>, bool>> answers;
    TimePoint now = std::chrono::steady_clock::now();
    for (auto it = batch.begin(); it != batch.end();) {
      bool ok = it->condition();
      if (ok || stopping || now >= it->deadline) {
        answers.emplace_back(std::move(it->done), ok);
        it = batch.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& [done, ok] : answers) done(ok);
    lock.lock();
    evaluating_ = false;
    waiters_.splice(waiters_.begin(), batch);
    if (stopping && waiters_.empty()) return;
  }
}

}  // namespace meridian::node
