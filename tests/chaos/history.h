// What the chaos load did: one record per client operation, with what the
// node answered. The checker (checker.h) judges the cluster's final state
// against these records.
#ifndef MERIDIAN_TESTS_CHAOS_HISTORY_H_
#define MERIDIAN_TESTS_CHAOS_HISTORY_H_

#include <cstdint>
#include <string>
#include <vector>

namespace meridian::chaos {

// One kind per effect the checker follows. Keys of each type live under
// their own prefix (KeyPrefix), so a key's ops are all of one type.
enum class OpKind : uint8_t {
  kRegister,     // PUT /v1/kv/chaos/reg/K, value = arg (a string)
  kMvRegister,   // PUT /v1/kv/chaos/mv/K (policy: mvregister, review), value = arg
  kCounter,      // POST /v1/counter/chaos/ctr/K {"add": amount}
  kSetAdd,       // POST /v1/set/chaos/set/K {"add": [arg]}
  kSetRemove,    // POST /v1/set/chaos/set/K {"remove": [arg]}
  kMapCounter,   // POST /v1/map/chaos/map/K field "hits" (counter) add amount
  kMapSetAdd,    // field "tags" (set) sadd [arg]
  kMapSetRemove, // field "tags" (set) srem [arg]
  kMapRegister,  // field "owner" (register) set arg
  kTextInsert,   // POST /v1/text/chaos/text/K: insert the marker arg
  kTextDelete,   // POST /v1/text/chaos/text/K: delete the marker arg
};

// What became of an operation.
enum class Outcome : uint8_t {
  kAcknowledged,   // 2xx: the node holds it durably
  kFailed,         // an error reply, or no connection: the node did not apply it
  kIndeterminate,  // sent, but no reply (timeout, reset): it may have been applied
};

struct Op {
  int client = 0;    // the load thread
  uint64_t id = 0;   // per client, from 1
  int node = 0;      // the node it was sent to (cluster index)
  OpKind kind = OpKind::kRegister;
  std::string key;
  std::string arg;      // value, element or marker (unique per op where it is one)
  int64_t amount = 0;   // counter increments
  Outcome outcome = Outcome::kFailed;
  int http_status = 0;  // 0: no reply
  std::string error;    // the error code or the transport's message
  uint64_t hlc = 0;     // a register write's hlc, from the reply
  int64_t start_ms = 0, end_ms = 0;  // since the run started
};

const char* KindName(OpKind k);
const char* OutcomeName(Outcome o);
// "chaos/reg/", "chaos/mv/", ...: the prefix of the keys a kind writes.
const char* KeyPrefix(OpKind k);
// One line: client, id, node name (from `nodes`), kind, key, arg, outcome.
std::string Describe(const Op& op, const std::vector<std::string>& nodes);

}  // namespace meridian::chaos

#endif  // MERIDIAN_TESTS_CHAOS_HISTORY_H_
