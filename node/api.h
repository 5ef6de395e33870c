// The region-local HTTP API of DESIGN.md §7: routes, content negotiation
// (JSON and msgpack both ways), error shapes, and the hand-off of writes to
// the applier and of reads to reader threads, so that no I/O thread waits
// on the disk.
#ifndef MERIDIAN_NODE_API_H_
#define MERIDIAN_NODE_API_H_

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "node/applier.h"
#include "node/http_server.h"
#include "node/metrics.h"
#include "node/topology.h"
#include "node/watch_hub.h"
#include "storage/leveldb_store.h"

namespace meridian::node {

// A few threads that run blocking work (LevelDB reads) off the I/O threads.
class WorkerPool {
 public:
  explicit WorkerPool(int threads);
  ~WorkerPool();
  void Post(std::function<void()> task);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

struct ApiContext {
  const Topology* topology = nullptr;
  const NodeConfig* node = nullptr;
  storage::Store* store = nullptr;
  Applier* applier = nullptr;
  WatchHub* watch = nullptr;
  Metrics* metrics = nullptr;
  std::chrono::steady_clock::time_point started;
  bool fault_injection = false;  // --enable-fault-injection: POST /v1/admin/faults
};

class Api {
 public:
  explicit Api(ApiContext ctx, int reader_threads = 2);

  // The HttpHandler.
  void Handle(HttpRequest&& req, Reply reply);

  // For the applier's change listener: publishes a change to watchers.
  void PublishChange(const std::string& key, const std::string& envelope);

 private:
  struct Call;  // one request in flight
  void Route(const std::shared_ptr<Call>& call);
  // `route_tag`: the type the route serves (Register for /v1/kv, which
  // serves mvregisters too); another type answers 409 type_mismatch.
  void Read(const std::shared_ptr<Call>& call, const std::string& key, uint8_t route_tag);
  void Write(const std::shared_ptr<Call>& call, Operation op);
  void Batch(const std::shared_ptr<Call>& call);
  void Scan(const std::shared_ptr<Call>& call);
  void Watch(const std::shared_ptr<Call>& call);
  void Health(const std::shared_ptr<Call>& call);
  void NodeStatus(const std::shared_ptr<Call>& call);
  void MetricsText(const std::shared_ptr<Call>& call);

  ApiContext ctx_;
  WorkerPool readers_;
};

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_API_H_
