// What clients did and saw during one simulated run: every write attempt
// with its outcome, and session bookkeeping. The checker (checker.h)
// judges the final states against it.
#ifndef MERIDIAN_TESTS_SIM_HISTORY_H_
#define MERIDIAN_TESTS_SIM_HISTORY_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "crdt/causal_context.h"
#include "crdt/hlc.h"
#include "crdt/text.h"
#include "storage/node_meta.h"

namespace meridian::sim {

// kMvPut: an mvregister write without a context (supersedes every sibling
// its node holds); kMvResolve: a person's resolution of a conflicted
// mvregister (node/api.cc ResolveConflict), a write whose context is
// exactly the siblings its node's review queue showed (`covered`).
// kTextEdit: inserts and deletes into a text at a version its session
// saw (POST /v1/text/{key}); kTextDelete: a delete of the whole text
// (DELETE /v1/text/{key}).
enum class WriteKind {
  kIncrement,
  kSetAdd,
  kSetRemove,
  kPut,
  kDelete,
  kMvPut,
  kMvResolve,
  kTextEdit,
  kTextDelete
};
const char* WriteKindName(WriteKind k);

enum class Outcome {
  kPending,       // submitted, not yet committed
  kUnavailable,   // the node was down: never submitted
  kRefusedSkew,   // Gate refused it (503 clock_skew, bootstrapping, beyond_horizon or
                  // rejoining): never submitted
  kLostInCrash,   // queued, the node crashed before the commit: never applied
  kFailed,        // Commit returned an error (e.g. 507): must not be visible
  kReplyLost,     // committed (durable) but the client never got the reply
  kAcknowledged,  // committed and acknowledged to the client
  // Committed by an incarnation that a peer retired (away longer than the
  // retention horizon) while no other node held it: its data went aside,
  // so it may be missing, or present if a delta in flight still reached a
  // node that had not retired its writer.
  kRetired,
};
const char* OutcomeName(Outcome o);

struct WriteRecord {
  int id = 0;
  int session = 0;
  int node = 0;
  uint64_t submitted_ms = 0;
  uint64_t done_ms = 0;
  WriteKind kind = WriteKind::kIncrement;
  std::string key;
  int64_t amount = 0;   // kIncrement
  std::string element;  // kSetAdd / kSetRemove (the JSON string, not its bytes)
  std::string value;    // kPut, kMvPut, kMvResolve (the JSON string)
  std::vector<crdt::Dot> covered;  // kMvResolve: the sibling dots its context names
  // Text writes. Every character a text session types is unique in the run
  // (one code point each), so characters name themselves.
  std::string text_at;                // kTextEdit: TextVersion::Encode() of the version it names
  std::vector<crdt::TextEdit> text_ops;  // kTextEdit: positions at text_at
  std::vector<uint32_t> typed;        // kTextEdit: the characters its inserts add
  std::vector<uint32_t> removed;      // the characters it deletes (kTextDelete: every one its
                                      // node showed when it committed)
  std::vector<uint32_t> expected;     // kTextEdit: the text at text_at with its edits applied
  std::vector<uint32_t> reply_text;   // committed: the text its reply showed
  uint64_t text_lo = 0, text_hi = 0;  // committed: its dots, `writer`'s counters [lo, hi)
  Outcome outcome = Outcome::kPending;
  std::string error;  // kFailed: the API error code

  // When committed (kReplyLost or kAcknowledged):
  uint64_t seq = 0;
  crdt::ReplicaId writer;
  std::string envelope;         // the key's state the reply carried
  crdt::Hlc hlc = 0;            // registers: the write's timestamp
  crdt::Dot dot;                // set adds, mvregister writes: the fresh dot
  crdt::CausalContext context;  // set and mvregister writes: their delta's context (the dots
                                // they replace, and their own)

  bool committed() const {
    return outcome == Outcome::kReplyLost || outcome == Outcome::kAcknowledged;
  }
  bool acknowledged() const { return outcome == Outcome::kAcknowledged; }
  bool maybe() const { return outcome == Outcome::kRetired; }
  std::string ToString() const;
};

// A text as a session saw it: a version and the characters visible at it.
struct TextView {
  std::string version;  // TextVersion::Encode()
  std::vector<uint32_t> chars;
};

struct Session {
  int id = 0;
  int home = 0;                                 // preferred node
  storage::AppliedVector token;                 // max of every token it was given
  std::map<std::string, std::string> observed;  // key -> greatest state seen (encoded envelope)
  // Text keys: the last few versions it read or wrote (newest last), to
  // edit at.
  std::map<std::string, std::vector<TextView>> text_views;
  uint64_t reads = 0, reads_answered = 0, reads_timed_out = 0;
};

struct History {
  std::vector<WriteRecord> writes;
  std::vector<Session> sessions;
  std::vector<std::string> violations;  // found while running (session reads, restarts, ...)
};

}  // namespace meridian::sim

#endif  // MERIDIAN_TESTS_SIM_HISTORY_H_
