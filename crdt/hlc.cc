#include "crdt/hlc.h"

#include <algorithm>
#include <chrono>
#include <limits>

namespace meridian::crdt {

std::string HlcToString(Hlc t) {
  return std::to_string(HlcPhysicalMs(t)) + "." + std::to_string(HlcLogical(t));
}

uint64_t SystemClock::NowMs() {
  using namespace std::chrono;
  return static_cast<uint64_t>(
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

namespace {
// The wall clock as an HLC with logical 0, clamped to the 48-bit range.
Hlc WallAsHlc(uint64_t ms) { return MakeHlc(std::min(ms, kHlcMaxPhysicalMs), 0); }
constexpr Hlc kHlcMax = std::numeric_limits<Hlc>::max();
}  // namespace

HybridClock::HybridClock(PhysicalClock* physical, uint64_t max_offset_ms)
    : physical_(physical), max_offset_ms_(max_offset_ms) {}

Status HybridClock::NowChecked(Hlc* out) {
  if (last_ == kHlcMax) return Status::OutOfRange("hybrid clock exhausted");
  // With timestamps packed as integers, Kulkarni's rules reduce to:
  // next = max(last + 1, wall << 16). "last + 1" increments the logical
  // counter and carries into the physical part when it overflows.
  last_ = std::max(last_ + 1, WallAsHlc(physical_->NowMs()));
  *out = last_;
  return Status::OK();
}

Hlc HybridClock::Now() {
  Hlc t = 0;
  if (!NowChecked(&t).ok()) return 0;
  return t;
}

Status HybridClock::CheckOffset(Hlc remote) {
  uint64_t wall = physical_->NowMs();
  uint64_t remote_ms = HlcPhysicalMs(remote);
  if (remote_ms > wall && remote_ms - wall > max_offset_ms_) {
    return Status::FailedPrecondition(
        "remote timestamp " + HlcToString(remote) + " is " + std::to_string(remote_ms - wall) +
        " ms ahead of the local clock (limit " + std::to_string(max_offset_ms_) + " ms)");
  }
  return Status::OK();
}

Status HybridClock::Update(Hlc remote, Hlc* out) {
  MERIDIAN_RETURN_IF_ERROR(CheckOffset(remote));
  Hlc base = std::max(last_, remote);
  if (base == kHlcMax) return Status::OutOfRange("hybrid clock exhausted");
  // Receive rule: next = max(last + 1, remote + 1, wall << 16).
  last_ = std::max(base + 1, WallAsHlc(physical_->NowMs()));
  *out = last_;
  return Status::OK();
}

Hlc HybridClock::ProposeBound() {
  uint64_t wall = physical_->NowMs();
  uint64_t ahead = max_offset_ms_ >= kHlcMaxPhysicalMs || wall > kHlcMaxPhysicalMs - max_offset_ms_
                       ? kHlcMaxPhysicalMs
                       : wall + max_offset_ms_;
  return std::max(last_, WallAsHlc(ahead));
}

void HybridClock::BoundPersisted(Hlc bound) {
  persisted_bound_ = std::max(persisted_bound_, bound);
}

void HybridClock::Restore(Hlc bound) {
  last_ = std::max(last_, bound);
  persisted_bound_ = std::max(persisted_bound_, bound);
}

}  // namespace meridian::crdt
