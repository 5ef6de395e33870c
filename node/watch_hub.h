// The change feed behind GET /v1/watch: subscribers name a key prefix and
// receive every committed change under it as a server-sent event, whether
// the change was written here or (later) arrived by replication.
#ifndef MERIDIAN_NODE_WATCH_HUB_H_
#define MERIDIAN_NODE_WATCH_HUB_H_

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "node/http_server.h"

namespace meridian::node {

class WatchHub {
 public:
  WatchHub();
  ~WatchHub();  // closes every stream

  void Subscribe(std::string prefix, std::shared_ptr<EventStream> stream);
  // Called for every committed change with the change's JSON text (the read
  // shape, or {"key": k, "deleted": true}). Cheap when nobody watches.
  bool HasSubscriberFor(const std::string& key) const;
  void Publish(const std::string& key, const std::string& json);
  size_t subscribers() const;

 private:
  struct Sub {
    std::string prefix;
    std::shared_ptr<EventStream> stream;
  };
  void Heartbeats();

  mutable std::mutex mu_;
  std::vector<Sub> subs_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread heartbeat_;
};

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_WATCH_HUB_H_
