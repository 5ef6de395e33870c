// Live text: GET /v1/stream/text/{key}, a WebSocket per editor (issue 8;
// the demo editor under demo/ speaks it).
//
// Every frame is a JSON text message. Text bytes travel as base64url
// without padding of the text's wire form (crdt/text.h Text::Encode); a
// delta is itself a Text, encoded the same way.
//
// server -> client
//   {"type":"hello", "key", "region", "node",
//    "agent": {"node": "<node id>~<12 hex>", "incarnation": "<decimal>"},
//    "state": B64, "faults": bool, "others": [node ids of other regions],
//    "sessions": [...]}
//     On connect: the session's agent id (the replica its edits are made
//     under; the incarnation is a decimal string, as a uint64 does not fit
//     a JSON number in JavaScript) and the whole text as this node holds it.
//     "faults": the node runs with --enable-fault-injection (the editor
//     shows its toggle, which POSTs /v1/admin/faults {"drop": others}).
//   {"type":"ops", "state": B64}
//     What the client lacks, as a delta, after anything merged here: other
//     local editors, HTTP writes, other regions' writes.
//   {"type":"ack", "seq": n}
//     The client's message n is committed here (durable when the store
//     syncs) and replicates like any write of this node.
//   {"type":"error", "seq": n|null, "code", "message"}
//     A refused message (nothing of it applied); the socket stays open.
//   {"type":"sessions", "sessions": [{"agent", "region", "node"}...]}
//     Who is editing this key, here and in other regions, whenever that
//     changes.
//
// client -> server
//   {"type":"ops", "seq": n, "state": B64}
//     A Text delta with the client's edits, joined here as a write of this
//     node (Operation::kTextMerge). After a reconnect a client sends its
//     DeltaSince(hello state's version): whatever the node lacks.
//
// Each session remembers the dots its client holds (what it was sent and
// what it sent), so an editor is never sent its own edits back and a
// change is sent as DeltaSince of that. A client that stops reading is
// dropped once more than max_queued_bytes wait for it (a new connection
// resyncs from a new hello), so it cannot grow this node's memory.
//
// Presence across regions goes through the store itself: each node keeps
// a register at "_meridian/presence/<node id>" holding its editors per
// key and a wall-clock time ({"node", "region", "at", "docs": {key:
// [agent...]}}), written when an editor comes or goes and every 10 s
// while any is connected; it replicates like any key. An entry not
// refreshed for 30 s (a node gone, or cut off) no longer counts.
//
// One thread (the hub's) does all the work: loading texts, decoding
// client deltas, computing deltas; the I/O threads and the applier only
// queue for it.
#ifndef MERIDIAN_NODE_TEXT_STREAM_H_
#define MERIDIAN_NODE_TEXT_STREAM_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "node/applier.h"
#include "node/http_server.h"
#include "node/operation.h"
#include "node/topology.h"
#include "storage/leveldb_store.h"

namespace meridian::node {

// Keys under this prefix hold the editors' presence (see above).
inline constexpr char kPresencePrefix[] = "_meridian/presence/";

struct TextStreamContext {
  const Topology* topology = nullptr;
  const NodeConfig* node = nullptr;
  storage::Store* store = nullptr;
  Applier* applier = nullptr;
  bool fault_injection = false;
  // The key's policy type for a text write (Api::TakePolicyType): false
  // with 409 type_mismatch when the key's policy is of another type.
  std::function<bool(Operation*, ApiError*)> policy_type;
  // The write gate (Api::Writable): false with the error while writes are
  // refused (clock skew, beyond the horizon).
  std::function<bool(ApiError*)> writable;
  // Bytes that may wait for one client before it is dropped.
  size_t max_queued_bytes = 4 << 20;
};

// One client message ({"type":"ops", "seq": n, "state": B64}) parsed and
// checked, as the hub does before anything is applied. Pure: the
// WebSocket fuzz target (tests/fuzz/text_message_fuzz.cc) runs it as is.
struct ClientOps {
  nlohmann::json seq;  // the message's seq; null when it has no usable one
  std::string bytes;   // the delta's wire form (base64url decoded)
  crdt::Text delta;    // those bytes decoded
};
// False with the sentence of a bad_request error on a message that is not
// a JSON object of type "ops" with an unsigned seq and a string state, on
// a state that is not base64url (no padding), or on bytes that are not a
// Text in its wire form; out->seq is set even then, when the message has
// one. Never throws.
bool ParseClientMessage(const std::string& message, ClientOps* out, std::string* error);

class TextStreamHub {
 public:
  explicit TextStreamHub(TextStreamContext ctx);
  ~TextStreamHub();  // closes every session

  // A new session on `key` (a valid key): the channel to answer the
  // upgrade with. The hello follows from the hub's thread.
  std::shared_ptr<WebSocketChannel> Open(const std::string& key);
  // The applier's change listener: cheap when nobody streams `key`.
  void OnChange(const std::string& key, const std::string& envelope);

  size_t sessions() const { return open_.load(); }
  uint64_t opened() const { return opened_.load(); }
  uint64_t dropped() const { return dropped_.load(); }  // too slow

 private:
  struct Session;
  struct Queue;
  void Run();
  static void Post(Queue* q, std::function<void()> task);
  void Join(const std::shared_ptr<Session>& s);
  void Leave(uint64_t id);
  void Receive(uint64_t id, const std::string& message);
  void Fanout(const std::string& key, const std::string& envelope);
  void SendSessions(const std::string& key);
  std::string NewAgent();
  // Presence: this node's register (written when changed or due), the
  // other nodes' registers as they arrive, and their expiry.
  struct Remote {
    int64_t at_ms = 0;
    bool expired = false;
    nlohmann::json docs;  // key -> [{"agent", "region", "node"}...]
  };
  void LoadPresence();
  void TakePresence(const std::string& node, const std::string& envelope);
  void PresenceTick();
  void SendSessionsForDocs(const nlohmann::json& docs);

  TextStreamContext ctx_;
  std::shared_ptr<Queue> queue_;
  std::thread thread_;
  std::atomic<uint64_t> next_id_{1};
  std::atomic<size_t> open_{0};
  std::atomic<uint64_t> opened_{0};
  std::atomic<uint64_t> dropped_{0};
  // Keys with sessions (any thread reads it; the hub's thread writes it).
  mutable std::mutex keys_mu_;
  std::map<std::string, size_t> keys_;
  // Sessions by id (the hub's thread only), and presence.
  std::map<uint64_t, std::shared_ptr<Session>> sessions_;
  std::map<std::string, Remote> remote_;  // by node id
  bool presence_dirty_ = false;
  bool presence_published_any_ = false;  // the last register written named editors
  int64_t presence_written_ms_ = 0;
};

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_TEXT_STREAM_H_
