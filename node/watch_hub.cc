#include "node/watch_hub.h"

#include <algorithm>
#include <chrono>

namespace meridian::node {

WatchHub::WatchHub() : heartbeat_([this] { Heartbeats(); }) {}

WatchHub::~WatchHub() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (auto& s : subs_) s.stream->Close();
    subs_.clear();
  }
  cv_.notify_all();
  heartbeat_.join();
}

void WatchHub::Subscribe(std::string prefix, std::shared_ptr<EventStream> stream) {
  stream->Push(": watching\n\n");
  std::lock_guard<std::mutex> lock(mu_);
  subs_.push_back(Sub{std::move(prefix), std::move(stream)});
}

bool WatchHub::HasSubscriberFor(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& s : subs_) {
    if (key.compare(0, s.prefix.size(), s.prefix) == 0) return true;
  }
  return false;
}

void WatchHub::Publish(const std::string& key, const std::string& json) {
  std::string event = "event: change\ndata: " + json + "\n\n";
  std::lock_guard<std::mutex> lock(mu_);
  subs_.erase(std::remove_if(subs_.begin(), subs_.end(),
                             [&](Sub& s) {
                               if (key.compare(0, s.prefix.size(), s.prefix) != 0) {
                                 return s.stream->closed();
                               }
                               return !s.stream->Push(event);
                             }),
              subs_.end());
}

size_t WatchHub::subscribers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return subs_.size();
}

void WatchHub::Heartbeats() {
  // A comment line every few seconds finds clients that went away (the
  // write fails) and keeps proxies from closing idle streams.
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::seconds(5));
    if (stopping_) break;
    subs_.erase(std::remove_if(subs_.begin(), subs_.end(),
                               [](Sub& s) { return !s.stream->Push(": ping\n\n"); }),
                subs_.end());
  }
}

}  // namespace meridian::node
