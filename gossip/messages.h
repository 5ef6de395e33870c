// The gossip wire format (DESIGN.md §4): what one node sends another over
// ZeroMQ. One ZeroMQ message (one frame) carries one Message.
//
// Direction: every node binds a ROUTER on its gossip endpoint and connects
// one DEALER to each peer's ROUTER. A node SENDS only on its DEALERs and
// RECEIVES only on its ROUTER, so a message from A to B always travels A's
// DEALER -> B's ROUTER, and B answers (Welcome, Ack, Pong) on its own
// DEALER to A. The sender is named in every message's header, never taken
// from the ZeroMQ routing id.
//
// Frame grammar (a version byte, then one msgpack array; crdt/codec.h):
//   frame    := kWireVersion [header, uint type, body]
//   header   := [str cluster, uint protocol, replica from, uint hlc,
//                uint wall_ms]
//   replica  := [str node, uint incarnation]           (crdt EncodeReplica)
//   body by type (each names its placement scope: the session between
//   two nodes is one per scope they both hold, gossip/scoped_protocol.h):
//     kHello   [str region, str policy_hash, str scope]
//                                     policy_hash: the sender's policy-set
//                                     hash (DESIGN.md §5), opaque bytes, at
//                                     most kMaxPolicyHashBytes
//     kWelcome [uint applied, replica to, str scope]
//                                     receiver's applied seq of the
//                                     sender's origin in the scope; `to`:
//                                     the replica whose Hello it answers
//     kRefuse  [uint reason, str text, replica to, str scope]
//                                     `to`: the replica whose message is
//                                     refused
//     kDeltas  [str scope, [[uint seq, str key, bin delta]...]]
//                                     seqs strictly ascending, >= 1
//     kAck     [str scope, uint seq, replica to]
//                                     highest contiguous seq of the
//                                     addressee's origin held durably; `to`:
//                                     that origin (a Welcome or Ack for an
//                                     earlier incarnation of the addressee
//                                     is ignored by the later one)
//     kPing    [uint sent_wall_ms, uint log_end, applied, [replica...],
//               str policy_hash, str scope]
//                                     log_end: the sender's last logged seq
//                                     of its own origin in the scope;
//                                     applied: the sender's durable applied
//                                     vector's entries of the scope (causal
//                                     stability, protocol.h);
//                                     then the incarnations the sender
//                                     retired, per node the highest (and
//                                     every earlier one), strictly
//                                     ascending by node, at most
//                                     kMaxRetiredEntries; then the sender's
//                                     policy-set hash as in kHello (so a
//                                     reload reaches peers within a
//                                     heartbeat)
//     kPong    [uint echo_wall_ms, uint wall_ms, str scope]
//     kAntiEntropy [uint kind, uint round, bool from_initiator, str scope,
//                   payload]          an AeBody (gossip/anti_entropy.h);
//                                     payload by kind:
//       kBegin   [uint level, nodes, applied, floor, bool source]
//                                     level 1..3 (the state machine wants 1);
//                                     source: the sender is one a fresh
//                                     incarnation may bootstrap from
//       kHashes  [uint level, nodes]  level 1..3 (it wants 2 or 3)
//       kWant    [[uint bucket...]]   strictly ascending, < storage::kBuckets,
//                                     at least one
//       kStates  [uint part, bool last, [[str key, bin envelope]...],
//                 applied, floor]     part < 2^32; keys 1..kMaxKeyBytes; at
//                                     most kMaxAeStatesPerMessage; applied
//                                     and floor empty unless last
//       kDone    [bool in_sync, applied, floor]
//                                     applied and floor empty unless in_sync
//     floor    := applied             the sender's collection floor as of
//                                     its View (anti_entropy.h)
//     nodes    := [[uint index, bin hash]...]
//                                     indexes strictly ascending and below
//                                     16^level (NodesOnLevel), at most
//                                     kFanout * 256; hash exactly 16 bytes
//                                     (storage::Digest::ToBytes)
//     applied  := [[replica, str scope, uint seq]...]
//                                     strictly ascending by (replica,
//                                     scope), the AeApplied map's order; at
//                                     most kMaxAeAppliedEntries
//   The delta and state bytes are encoded crdt::Envelopes; the decoder here
//   checks only the frame's shape, the applier decodes the envelope.
// DO NOT CHANGE numbers below: they are on the wire. A new field goes at the
// end of a body and bumps kProtocolVersion.
#ifndef MERIDIAN_GOSSIP_MESSAGES_H_
#define MERIDIAN_GOSSIP_MESSAGES_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/causal_context.h"
#include "crdt/hlc.h"
#include "crdt/status.h"
#include "gossip/anti_entropy.h"

namespace meridian::gossip {

constexpr uint8_t kWireVersion = 1;
// 2: kAntiEntropy; kPing carries the sender's log end; kWelcome and kAck
// name their addressee's replica. 3: kPing carries the sender's applied
// vector. 4: kRefuse names its addressee's replica; reason kExpired. 5:
// kPing carries the retired incarnations. 6: kBegin, kStates and kDone
// carry the sender's collection floor. 7: kBegin says whether its sender
// may be bootstrapped from. 8: kHello and kPing carry the sender's
// policy-set hash. 9: kHello, kWelcome, kRefuse, kPing and kPong name their
// placement scope (one session per scope).
// Nodes of different protocol versions refuse each other.
constexpr uint64_t kProtocolVersion = 9;

// Limits on decoded frames (ZMQ_MAXMSGSIZE is set to kMaxFrameBytes).
constexpr size_t kMaxFrameBytes = size_t{64} << 20;
constexpr size_t kMaxDeltasPerMessage = 100000;
constexpr size_t kMaxScopeBytes = 1024;  // a placement prefix's limit (placement.h)
constexpr size_t kMaxRegionBytes = 256;
constexpr size_t kMaxClusterBytes = 256;
constexpr size_t kMaxKeyBytes = 1024;  // == node::kMaxKeyBytes
constexpr size_t kMaxTextBytes = 1024;  // kRefuse text; Encode cuts longer text
constexpr size_t kMaxAeStatesPerMessage = 100000;
constexpr size_t kMaxAeAppliedEntries = 65536;
constexpr size_t kMaxRetiredEntries = 65536;
// kHello and kPing policy_hash (opaque; the node sends 16 hex digits);
// Encode cuts a longer hash.
constexpr size_t kMaxPolicyHashBytes = 64;

enum class MsgType : uint8_t {
  kHello = 1,
  kWelcome = 2,
  kRefuse = 3,
  kDeltas = 4,
  kAck = 5,
  kPing = 6,
  kPong = 7,
  kAntiEntropy = 8,
};

enum class RefuseReason : uint8_t {
  kWrongCluster = 1,
  kWrongProtocol = 2,
  kUnknownNode = 3,      // the sender's node id is not in the topology
  kNoHandshake = 4,      // a Deltas from a sender without a session: Hello again
  kClockAhead = 5,       // the header's hlc is beyond max_clock_offset_ms
  kExpired = 6,          // the sender's incarnation was retired: it was away
                         // longer than the retention horizon (protocol.h)
};

struct Header {
  std::string cluster;
  uint64_t protocol = kProtocolVersion;
  crdt::ReplicaId from;
  crdt::Hlc hlc = 0;     // the sender's HLC when it sent (clock safety)
  uint64_t wall_ms = 0;  // the sender's physical clock when it sent
};

struct DeltaEntry {
  uint64_t seq = 0;
  std::string key;
  std::string delta;  // encoded crdt::Envelope
  bool operator==(const DeltaEntry& o) const {
    return seq == o.seq && key == o.key && delta == o.delta;
  }
};

// One message. Only the fields of `type` are meaningful; the rest stay at
// their defaults (and are not encoded).
struct Message {
  Header header;
  MsgType type = MsgType::kPing;
  std::string region;                // kHello
  uint64_t applied = 0;              // kWelcome
  crdt::ReplicaId to;                // kWelcome, kAck, kRefuse: the addressee's replica
  RefuseReason reason = RefuseReason::kNoHandshake;  // kRefuse
  std::string text;                  // kRefuse
  std::string scope;                 // every type but kAntiEntropy (whose AeBody has one)
  std::vector<DeltaEntry> deltas;    // kDeltas
  uint64_t seq = 0;                  // kAck; kPing: the sender's log end
  uint64_t sent_wall_ms = 0;         // kPing
  AeApplied vector;                  // kPing: the sender's applied vector
  std::vector<crdt::ReplicaId> retired;  // kPing: incarnations the sender retired
  std::string policy_hash;               // kHello, kPing: the sender's policy-set hash
  uint64_t echo_wall_ms = 0;         // kPong: the Ping's sent_wall_ms
  uint64_t pong_wall_ms = 0;         // kPong: the responder's clock
  AeBody ae;                         // kAntiEntropy

  bool operator==(const Message& o) const;
};

std::string Encode(const Message& m);
// Untrusted bytes: never throws; Corruption/InvalidArgument with a
// sentence on anything that is not a well-formed frame within the limits
// above (unknown type or reason, deltas not strictly ascending or seq 0,
// over-long strings such as a policy hash beyond kMaxPolicyHashBytes,
// trailing bytes, anti-entropy bodies outside the grammar's bounds). A
// header whose protocol is newer than kProtocolVersion may carry extra
// fields at the end of its body; they are skipped, so that the Protocol
// can refuse it (kWrongProtocol) with a reason instead of the frame being
// dropped as undecodable. A body from an older protocol that lacks a
// field of this one is malformed and dropped; the older node still
// decodes this node's messages and refuses them (kWrongProtocol), and that
// refusal, refused in turn for its protocol, is logged here.
Status Decode(std::string_view bytes, Message* out);

// The placement scope a message belongs to (m.ae.scope for kAntiEntropy).
const std::string& MessageScope(const Message& m);

const char* TypeName(MsgType t);
const char* ReasonName(RefuseReason r);

}  // namespace meridian::gossip

#endif  // MERIDIAN_GOSSIP_MESSAGES_H_
