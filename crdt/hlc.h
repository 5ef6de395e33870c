// Hybrid logical clock (Kulkarni et al. 2014), DESIGN.md §3.
//
// A timestamp is one uint64_t: the high 48 bits are physical milliseconds
// since the Unix epoch, the low 16 bits a logical counter. Comparing two
// timestamps as integers compares them as HLCs.
//
// Logical overflow: when the logical counter of the current millisecond is
// exhausted (65,536 events in one millisecond), the next timestamp carries
// into the physical part, so the clock runs up to one millisecond ahead of
// the wall clock per 65,536 events in the same millisecond. Timestamps stay
// strictly increasing; they are never reused.
//
// Thread-safety: none. The owner serialises calls (the node's applier).
#ifndef MERIDIAN_CRDT_HLC_H_
#define MERIDIAN_CRDT_HLC_H_

#include <cstdint>
#include <string>

#include "crdt/status.h"

namespace meridian::crdt {

using Hlc = uint64_t;

constexpr int kHlcLogicalBits = 16;
constexpr uint64_t kHlcLogicalMask = (uint64_t{1} << kHlcLogicalBits) - 1;
constexpr uint64_t kHlcMaxPhysicalMs = (uint64_t{1} << 48) - 1;

constexpr Hlc MakeHlc(uint64_t physical_ms, uint16_t logical) {
  return (physical_ms << kHlcLogicalBits) | logical;
}
constexpr uint64_t HlcPhysicalMs(Hlc t) { return t >> kHlcLogicalBits; }
constexpr uint16_t HlcLogical(Hlc t) { return static_cast<uint16_t>(t & kHlcLogicalMask); }

// "1732550400123.7" — physical milliseconds and logical counter.
std::string HlcToString(Hlc t);

// The wall clock, injected so that tests and the simulator control time.
class PhysicalClock {
 public:
  virtual ~PhysicalClock() = default;
  // Milliseconds since the Unix epoch. May go backwards.
  virtual uint64_t NowMs() = 0;
};

// The system's real-time clock.
class SystemClock : public PhysicalClock {
 public:
  uint64_t NowMs() override;
};

// A clock that returns what it is told; for tests and the simulator.
class ManualClock : public PhysicalClock {
 public:
  explicit ManualClock(uint64_t now_ms = 0) : now_ms_(now_ms) {}
  uint64_t NowMs() override { return now_ms_; }
  void Set(uint64_t now_ms) { now_ms_ = now_ms; }
  void Advance(uint64_t ms) { now_ms_ += ms; }

 private:
  uint64_t now_ms_;
};

class HybridClock {
 public:
  // REQUIRES: `physical` outlives the HybridClock.
  // `max_offset_ms`: a received timestamp more than this far ahead of the
  // local wall clock is refused.
  HybridClock(PhysicalClock* physical, uint64_t max_offset_ms);

  // A timestamp for a local event: greater than every timestamp this clock
  // has issued or absorbed, and at least the wall clock.
  // Never fails short of year 10889 (48-bit milliseconds exhausted), where
  // it returns 0 and the caller must refuse the event: see NowChecked().
  Hlc Now();
  Status NowChecked(Hlc* out);

  // Absorbs a timestamp received from a peer and returns, in *out, the
  // timestamp of the receive event (greater than both `remote` and every
  // earlier timestamp). A `remote` more than max_offset_ms ahead of the
  // wall clock is refused with FailedPrecondition and the clock is left
  // unchanged.
  Status Update(Hlc remote, Hlc* out);

  // Checks the offset rule without changing the clock.
  Status CheckOffset(Hlc remote);

  // The greatest timestamp issued or absorbed so far (0 before any).
  Hlc last() const { return last_; }
  // The wall clock it reads, unchanged (for dating records; never a
  // timestamp).
  uint64_t WallMs() const { return physical_->NowMs(); }
  uint64_t max_offset_ms() const { return max_offset_ms_; }

  // --- Persisting an upper bound -----------------------------------------
  // A restarted node must never issue a timestamp smaller than one it
  // issued before. The node stores an upper bound durably before it makes
  // any timestamp above the stored bound visible, and restores it on
  // start.
  //
  // True when last() exceeds the bound recorded by BoundPersisted().
  bool NeedsNewBound() const { return last_ > persisted_bound_; }
  // The bound to store next: the greater of last() and wall clock +
  // max_offset_ms, so that bounds are stored rarely and never exceed the
  // wall clock by more than the offset limit unless last() already does.
  Hlc ProposeBound();
  // Records that `bound` is durable.
  void BoundPersisted(Hlc bound);
  Hlc persisted_bound() const { return persisted_bound_; }
  // On start: no timestamp at or below `bound` will be issued again. The
  // clock may then run ahead of the wall clock until the wall clock
  // catches up.
  void Restore(Hlc bound);

 private:
  PhysicalClock* physical_;
  uint64_t max_offset_ms_;
  Hlc last_ = 0;
  Hlc persisted_bound_ = 0;
};

}  // namespace meridian::crdt

#endif  // MERIDIAN_CRDT_HLC_H_
