// text: a sequence CRDT for collaborative text (DESIGN.md §2).
//
// Every character has an id (replica, counter) — the counter is the key's
// per-replica dot counter, shared with deletes: deleting n characters
// takes n counters. A character remembers its left origin (the character
// before it when it was typed) and its right origin (the one after); the
// order of concurrent insertions between the same origins follows
// FugueMax (Weidner and Kleppmann, "The Art of the Fugue", 2023 — the
// YATA variant diamond-types uses), so two runs typed concurrently at one
// place never interleave, whether typed forwards or backwards.
//
// A deleted character stays as a tombstone holding its id, origins and
// the counter of the delete that removed it (its text is dropped at once):
// tombstones anchor concurrent insertions, and they let an edit name an
// older version — positions then count the characters visible at that
// version, which is every inserted character it covers that no delete it
// covers removed. (DESIGN.md §4 collects causally stable tombstones; text
// keeps them, so that any version a client holds stays interpretable —
// see README "Where the code fills in or departs".)
//
// Delta-state: an edit returns a delta, itself a Text, holding just the new
// characters and deletes; DeltaSince(v) gives everything a holder of
// version v lacks. Merge is a join (commutative, associative, idempotent)
// whatever order and however often deltas arrive: an arriving character
// whose origins are not here yet waits (pending) until they are, and a
// delete of an absent character waits for it.
//
// Memory: characters live in runs (crdt/text_tree.h) — consecutive
// characters typed by one replica form one run — in an order-statistic
// B+ tree, so position -> character and character -> position are O(log n).
// Storage is UTF-8; positions and lengths count Unicode code points.
#ifndef MERIDIAN_CRDT_TEXT_H_
#define MERIDIAN_CRDT_TEXT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/causal_context.h"
#include "crdt/status.h"

namespace meridian::crdt {

// Limits on one document (beyond them an edit or a decode is refused).
constexpr uint64_t kMaxTextCounter = 0xfffffff0u;  // per replica: counters fit 32 bits
constexpr size_t kMaxTextInsertBytes = 16 << 20;   // one insert's UTF-8
// Deletes waiting for their characters are kept a character at a time;
// Decode refuses bytes holding more (DecodeTrusted does not).
constexpr uint64_t kMaxWaitingDeleteChars = 1 << 20;

// A set of dots of one text: per replica, counter ranges [lo, hi).
class TextVersion {
 public:
  bool Contains(const ReplicaId& r, uint64_t counter) const;
  // True when every dot of `o` is here.
  bool Covers(const TextVersion& o) const;
  void Merge(const TextVersion& o);
  // Adds [lo, hi) of `r` (lo >= 1).
  void Add(const ReplicaId& r, uint64_t lo, uint64_t hi);
  // One past r's highest counter (1 if none): r's next dot.
  uint64_t Next(const ReplicaId& r) const;
  bool empty() const { return ranges_.empty(); }
  const std::map<ReplicaId, std::map<uint64_t, uint64_t>>& ranges() const { return ranges_; }
  bool operator==(const TextVersion& o) const { return ranges_ == o.ranges_; }
  bool operator!=(const TextVersion& o) const { return !(*this == o); }

  // Opaque bytes (a version byte, then msgpack), for tokens and tests.
  std::string Encode() const;
  static Status Decode(std::string_view bytes, TextVersion* out);
  // "{us-east-1#7: 1-40, 45-46}".
  std::string ToString() const;

 private:
  std::map<ReplicaId, std::map<uint64_t, uint64_t>> ranges_;  // lo -> hi, disjoint, not touching
};

// One edit of a request: insert `text` at `pos`, or delete `len` code
// points from `pos`.
struct TextEdit {
  bool insert = true;
  uint64_t pos = 0;
  std::string text;  // UTF-8 (insert)
  uint64_t len = 0;  // code points (delete)
};

class Text {
 public:
  static constexpr uint8_t kTag = 6;  // wire tag; DO NOT CHANGE
  static constexpr std::string_view kName = "text";
  // Format version byte of the encoding (see text.cc for the layout).
  static constexpr uint8_t kFormatVersion = 1;

  Text();
  ~Text();
  Text(const Text& o);
  Text& operator=(const Text& o);
  Text(Text&& o) noexcept;
  Text& operator=(Text&& o) noexcept;

  // The visible text (UTF-8) and its length in code points.
  std::string Content() const;
  uint64_t Length() const;
  // The dots of the characters and deletes applied here: what positions
  // can be counted against. (A character or delete still waiting for its
  // neighbours is not in it; a delta's characters wait until merged.)
  TextVersion version() const;
  // Every dot held here, waiting ones included: what DeltaSince(Dots())
  // leaves out (a live stream tracks what its client holds this way).
  TextVersion Dots() const;

  // Local edits at the current version, applied to this state. `delta`
  // (may be null) receives the edit as a delta. Positions past the end
  // are InvalidArgument; so is text that is not UTF-8. Nothing changes on
  // error.
  Status Insert(const ReplicaId& me, uint64_t pos, std::string_view utf8, Text* delta);
  Status Delete(const ReplicaId& me, uint64_t pos, uint64_t len, Text* delta);
  // Edits in order, each seeing the ones before it, with positions that
  // refer to version `at` (null: the current one). `at` must be covered by
  // version() and hold no character still pending here
  // (FailedPrecondition otherwise). All or nothing: on error nothing
  // changes.
  Status Apply(const ReplicaId& me, const TextVersion* at, const std::vector<TextEdit>& edits,
               Text* delta);
  // Deletes every visible character (the type's observed-remove delete).
  Status DeleteAll(const ReplicaId& me, Text* delta);

  // What a holder of `v` lacks: characters and deletes whose dots v lacks.
  Text DeltaSince(const TextVersion& v) const;

  // Join.
  void Merge(const Text& other);

  bool IsBottom() const;
  bool HasValue() const;  // at least one visible character

  // Canonical encoding: equal states give equal bytes, however they were
  // built (runs are joined and sorted the same way).
  std::string Encode() const;
  // Safe on untrusted bytes: bounds every count and length, checks UTF-8,
  // ids and dots against the version, derives the document order from the
  // characters' origins (never believing the order the bytes give), and
  // accepts only the canonical encoding of the state it finds.
  static Status Decode(std::string_view bytes, Text* out);
  // For bytes this node encoded itself (its store): the same structural
  // checks, but the stored order is loaded as it is (no re-derivation and
  // no canonical check), so a read costs a fraction of Decode.
  static Status DecodeTrusted(std::string_view bytes, Text* out);

  bool operator==(const Text& o) const;
  bool operator!=(const Text& o) const { return !(*this == o); }

  // Bytes of memory the document holds (tree, runs, text, indexes).
  size_t MemoryBytes() const;
  // Counts for tests and benchmarks.
  size_t RunCount() const;
  size_t PendingCount() const;

 private:
  struct Impl;
  // The msgpack body of the encoding (before packing).
  static std::string EncodeBody(const Impl& s);
  static Status DecodeImpl(std::string_view bytes, bool trusted, Text* out);
  std::unique_ptr<Impl> impl_;
};

}  // namespace meridian::crdt

#endif  // MERIDIAN_CRDT_TEXT_H_
