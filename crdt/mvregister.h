// mvregister: a multi-value register. Each write gets a fresh dot and
// supersedes the siblings its causal context covers; concurrent writes stay
// as siblings until a write that has seen them all replaces them.
//
// A write with an explicit context (the X-Causal-Context a client read)
// supersedes exactly the siblings that context covers; the context is first
// clamped to what this replica has seen, so naming unseen dots has no
// effect. A write without one supersedes every sibling this replica holds.
//
// Each sibling keeps its write's HLC beside its value: resolvers see it
// (conflict/), and a register under `audit` (DESIGN.md §5) is an
// mvregister read by last-writer-wins on (HLC, replica).
#ifndef MERIDIAN_CRDT_MVREGISTER_H_
#define MERIDIAN_CRDT_MVREGISTER_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/causal.h"
#include "crdt/register.h"

namespace meridian::crdt {

constexpr size_t kMaxRegisterValueBytes = 16 << 20;

struct MvRegisterStore {
  std::map<Dot, TimedValue> siblings;  // dot of the write -> (HLC, value bytes)

  static MvRegisterStore Join(const MvRegisterStore& a, const CausalContext& ca,
                              const MvRegisterStore& b, const CausalContext& cb) {
    return MvRegisterStore{JoinDotFuns(a.siblings, ca, b.siblings, cb)};
  }
  bool IsBottom() const { return siblings.empty(); }
  bool HasValue() const { return !siblings.empty(); }
  void CollectDots(DotSet* out) const { crdt::CollectDots(siblings, out); }
  MvRegisterStore RemoveDelta() const { return MvRegisterStore(); }
  // Encoding: [[dot, hlc, bin value]...] ascending by dot. (Before issue
  // 6 a sibling was [dot, bin value]; no release wrote that form, and it
  // is refused.)
  void Encode(Encoder* e) const;
  static Status Decode(const Cursor& c, MvRegisterStore* out);
  bool operator==(const MvRegisterStore& o) const { return siblings == o.siblings; }
};

class MvRegister : public Causal<MvRegisterStore> {
 public:
  static constexpr uint8_t kTag = 2;  // wire tag; DO NOT CHANGE
  static constexpr std::string_view kName = "mvregister";

  // Sibling values in ascending dot order.
  std::vector<std::string> Values() const;
  const std::map<Dot, TimedValue>& siblings() const { return store_.siblings; }
  // The sibling with the greatest (HLC, replica, counter): what a read by
  // last-writer-wins sees. nullptr when there is none.
  const std::pair<const Dot, TimedValue>* LwwWinner() const;

  // Mutators return a delta and leave this state unchanged.
  // `context` == nullptr: supersede everything this replica holds. `hlc`
  // is the write's timestamp (the caller's HybridClock).
  Status Write(const ReplicaId& replica, Hlc hlc, std::string value, const CausalContext* context,
               MvRegister* delta) const;
  // Removes the siblings `context` covers (all, when nullptr).
  MvRegister Delete(const CausalContext* context) const;

  static Status Decode(std::string_view bytes, MvRegister* out) { return DecodeAs(bytes, out); }

 private:
  // The observed dots a write or delete with `context` supersedes.
  CausalContext Superseded(const CausalContext* context) const;
};

}  // namespace meridian::crdt

#endif  // MERIDIAN_CRDT_MVREGISTER_H_
