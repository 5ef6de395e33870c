// register: last-writer-wins on (HLC, node id, incarnation), compared
// strictly, so that equal timestamps from different replicas resolve the
// same way everywhere (never by arrival order). Delete is a timestamped
// tombstone that wins and loses like any write.
//
// DottedRegisterStore is the causal form a map nests: each write gets a
// fresh dot and replaces the writes it has seen; truly concurrent writes
// stay side by side and a read picks the greatest (HLC, replica). Removing
// the map field removes exactly the writes it saw.
#ifndef MERIDIAN_CRDT_REGISTER_H_
#define MERIDIAN_CRDT_REGISTER_H_

#include <map>
#include <string>
#include <string_view>
#include <tuple>

#include "crdt/causal.h"
#include "crdt/hlc.h"

namespace meridian::crdt {

class Register {
 public:
  static constexpr uint8_t kTag = 1;  // wire tag; DO NOT CHANGE
  static constexpr std::string_view kName = "register";

  // An empty register (never written) is the bottom of the join.
  bool IsBottom() const { return hlc_ == 0 && writer_.node.empty(); }
  // True when the latest write is a delete (or nothing was ever written).
  bool deleted() const { return deleted_ || IsBottom(); }
  bool HasValue() const { return !deleted(); }
  const std::string& value() const { return value_; }
  Hlc hlc() const { return hlc_; }
  const ReplicaId& writer() const { return writer_; }

  // Mutators return a delta and leave this state unchanged. The caller
  // supplies the write's timestamp (from its HybridClock) and replica.
  Status Set(Hlc hlc, const ReplicaId& writer, std::string value, Register* delta) const;
  Status Delete(Hlc hlc, const ReplicaId& writer, Register* delta) const;

  void Merge(const Register& other);

  // Encoding: version byte, then [] for bottom or
  // [hlc, [node, incarnation], deleted, bin value].
  std::string Encode() const;
  static Status Decode(std::string_view bytes, Register* out);

  bool operator==(const Register& o) const {
    return hlc_ == o.hlc_ && writer_ == o.writer_ && deleted_ == o.deleted_ && value_ == o.value_;
  }
  bool operator!=(const Register& o) const { return !(*this == o); }

 private:
  Hlc hlc_ = 0;
  ReplicaId writer_;
  bool deleted_ = false;
  std::string value_;
};

// One write held by a DottedRegisterStore.
struct TimedValue {
  Hlc hlc = 0;
  std::string value;
  bool operator==(const TimedValue& o) const { return hlc == o.hlc && value == o.value; }
  bool operator<(const TimedValue& o) const {
    return std::tie(hlc, value) < std::tie(o.hlc, o.value);
  }
};

struct DottedRegisterStore {
  std::map<Dot, TimedValue> writes;

  // The write with the greatest (HLC, node id, incarnation); nullptr when
  // empty.
  const TimedValue* Winner() const;

  // Delta parts for a write at `replica` with timestamp `hlc`.
  Status SetDelta(const CausalContext& ctx, const ReplicaId& replica, Hlc hlc,
                  std::string value, DottedRegisterStore* dstore, CausalContext* dctx) const;

  static DottedRegisterStore Join(const DottedRegisterStore& a, const CausalContext& ca,
                                  const DottedRegisterStore& b, const CausalContext& cb) {
    return DottedRegisterStore{JoinDotFuns(a.writes, ca, b.writes, cb)};
  }
  bool IsBottom() const { return writes.empty(); }
  bool HasValue() const { return !writes.empty(); }
  void CollectDots(DotSet* out) const { crdt::CollectDots(writes, out); }
  DottedRegisterStore RemoveDelta() const { return DottedRegisterStore(); }
  // Encoding: [[dot, hlc, bin value]...] ascending by dot.
  void Encode(Encoder* e) const;
  static Status Decode(const Cursor& c, DottedRegisterStore* out);
  bool operator==(const DottedRegisterStore& o) const { return writes == o.writes; }
};

}  // namespace meridian::crdt

#endif  // MERIDIAN_CRDT_REGISTER_H_
