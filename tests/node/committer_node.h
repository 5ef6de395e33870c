// One replica for tests of the node's write path (committer, digest index,
// repairs): a real LevelDB in `dir`, a manual wall clock, its HLC and a
// Committer, opened the way meridiand opens a node (EnsureDigestIndex,
// LoadNodeMeta, InitIdentity when fresh, Restore of the HLC bound), with
// helpers that read back what it stored. Failures are Boost.Test
// requirement failures.
#ifndef MERIDIAN_TESTS_NODE_COMMITTER_NODE_H_
#define MERIDIAN_TESTS_NODE_COMMITTER_NODE_H_

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "crdt/envelope.h"
#include "crdt/hlc.h"
#include "crdt/status.h"
#include "gossip/messages.h"
#include "node/committer.h"
#include "node/operation.h"
#include "storage/digests.h"
#include "storage/leveldb_store.h"
#include "storage/node_meta.h"

namespace meridian {
// Lets BOOST_TEST print Status codes.
inline std::ostream& boost_test_print_type(std::ostream& os, Status::Code code) {
  return os << static_cast<int>(code);
}
}  // namespace meridian

namespace meridian::testing {

// Operations as the API builds them (node/operation.h), for the write-path
// tests.
node::Operation Put(const std::string& key, const nlohmann::json& value);
node::Operation MvPut(const std::string& key, const nlohmann::json& value);
node::Operation Add(const std::string& key, int64_t n);
node::Operation SetUpdate(const std::string& key, std::vector<nlohmann::json> adds,
                          std::vector<nlohmann::json> removes);
node::Operation MapCount(const std::string& key, const std::string& field, int64_t n);
node::Operation Delete(const std::string& key);


inline constexpr uint64_t kCommitterStartMs = 1700000000000;  // 2023-11-14
inline constexpr uint64_t kCommitterMaxOffsetMs = 5000;

struct CommitterNode {
  std::string dir;
  std::string id;
  std::unique_ptr<storage::Store> store;
  crdt::ManualClock wall{kCommitterStartMs};
  std::unique_ptr<crdt::HybridClock> clock;
  storage::NodeMeta meta;
  std::unique_ptr<node::Committer> committer;

  // `incarnation` is used when `dir` holds no node yet (must then be > 0).
  CommitterNode(std::string dir_in, std::string id_in, uint64_t incarnation);
  // Closes the committer and the store (as a stop would) and opens both
  // again from disk.
  void Reopen();
  node::Committer* c() { return committer.get(); }

  // The stored bytes of a key's state ("" when it has none).
  std::string State(const std::string& key);
  // The key's stored state, decoded (empty when it has none).
  crdt::Envelope Env(const std::string& key);
  // The rendered value of a key ({"value": ...}).
  nlohmann::json Read(const std::string& key);
  // Every stored state, in key order.
  std::vector<storage::Store::KeyState> States();
  // This node's log entries of the default scope from `from`, at most
  // `limit`, as gossip would ship them.
  std::vector<gossip::DeltaEntry> Log(uint64_t from = 1, size_t limit = 1000000);
  // What a restart would load.
  storage::NodeMeta Stored();
  // The sums rebuilt from the digest records on disk.
  storage::BucketSums DiskSums();
  // The committer's applied seq of `origin` (default scope; 0 when none).
  uint64_t AppliedOf(const crdt::ReplicaId& origin);

 private:
  void Open(uint64_t incarnation);
};

}  // namespace meridian::testing

#endif  // MERIDIAN_TESTS_NODE_COMMITTER_NODE_H_
