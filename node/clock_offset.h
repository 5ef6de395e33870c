// A physical clock shifted by a fixed offset: meridiand's test-only
// --clock-offset-ms, so that multi-process tests can run a node whose wall
// clock is ahead of or behind its peers' (clock safety, DESIGN.md §3).
#ifndef MERIDIAN_NODE_CLOCK_OFFSET_H_
#define MERIDIAN_NODE_CLOCK_OFFSET_H_

#include <cstdint>

#include "crdt/hlc.h"

namespace meridian::node {

class OffsetClock : public crdt::PhysicalClock {
 public:
  // REQUIRES: `base` outlives the OffsetClock.
  OffsetClock(crdt::PhysicalClock* base, int64_t offset_ms) : base_(base), offset_ms_(offset_ms) {}

  // The base clock plus the offset, kept within [0, kHlcMaxPhysicalMs].
  uint64_t NowMs() override {
    uint64_t now = base_->NowMs();
    if (offset_ms_ >= 0) {
      uint64_t add = static_cast<uint64_t>(offset_ms_);
      return add > crdt::kHlcMaxPhysicalMs || now > crdt::kHlcMaxPhysicalMs - add
                 ? crdt::kHlcMaxPhysicalMs
                 : now + add;
    }
    // -(offset + 1) + 1 avoids negating INT64_MIN.
    uint64_t sub = static_cast<uint64_t>(-(offset_ms_ + 1)) + 1;
    return now > sub ? now - sub : 0;
  }
  int64_t offset_ms() const { return offset_ms_; }

 private:
  crdt::PhysicalClock* base_;
  int64_t offset_ms_;
};

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_CLOCK_OFFSET_H_
