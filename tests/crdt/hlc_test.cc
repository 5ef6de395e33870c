// The hybrid logical clock against its contract in crdt/hlc.h: Kulkarni's
// send and receive rules (checked against an unpacked (l, c) model), the
// logical carry, the offset refusal, and the persisted upper bound that
// keeps a restarted node from reissuing timestamps.
#define BOOST_TEST_MODULE hlc
#include "crdt/hlc.h"

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <limits>
#include <ostream>
#include <random>
#include <utility>
#include <vector>

using namespace meridian;
using namespace meridian::crdt;

namespace meridian {
// Lets Boost.Test print a code when an assertion on it fails.
std::ostream& boost_test_print_type(std::ostream& os, Status::Code code) {
  return os << static_cast<int>(code);
}
}  // namespace meridian

namespace {

constexpr Hlc kMaxHlc = std::numeric_limits<Hlc>::max();

// Kulkarni et al. 2014, written with a separate (l, c) pair and an
// unbounded c, as an independent model of the packed implementation.
struct LC {
  uint64_t l;
  uint64_t c;
};

LC KulkarniSend(LC j, uint64_t pt) {
  uint64_t l = std::max(j.l, pt);
  return {l, l == j.l ? j.c + 1 : 0};
}

LC KulkarniReceive(LC j, LC m, uint64_t pt) {
  uint64_t l = std::max({j.l, m.l, pt});
  uint64_t c;
  if (l == j.l && l == m.l) {
    c = std::max(j.c, m.c) + 1;
  } else if (l == j.l) {
    c = j.c + 1;
  } else if (l == m.l) {
    c = m.c + 1;
  } else {
    c = 0;
  }
  return {l, c};
}

Hlc Pack(LC t) {
  BOOST_REQUIRE_LE(t.c, kHlcLogicalMask);
  return MakeHlc(t.l, static_cast<uint16_t>(t.c));
}

// A fresh clock whose last() is exactly `last`.
void SetLast(HybridClock* clock, Hlc last) {
  clock->Restore(last);
  BOOST_REQUIRE_EQUAL(clock->last(), last);
}

}  // namespace

BOOST_AUTO_TEST_CASE(packing_orders_as_physical_then_logical) {
  Hlc t = MakeHlc(1732550400123, 7);
  BOOST_TEST(HlcPhysicalMs(t) == 1732550400123u);
  BOOST_TEST(HlcLogical(t) == 7u);
  BOOST_TEST(MakeHlc(5, 65535) < MakeHlc(6, 0));
  BOOST_TEST(MakeHlc(5, 1) < MakeHlc(5, 2));
  BOOST_TEST(MakeHlc(5, 65535) + 1 == MakeHlc(6, 0));
  BOOST_TEST(MakeHlc(kHlcMaxPhysicalMs, 65535) == kMaxHlc);
}

BOOST_AUTO_TEST_CASE(now_is_strictly_monotonic_and_at_least_wall_clock) {
  ManualClock wall(1'000'000);
  HybridClock clock(&wall, 500);
  std::mt19937_64 rng(7);
  Hlc prev = 0;
  for (int i = 0; i < 10'000; ++i) {
    // Mostly several events per millisecond, sometimes a jump forward.
    if (rng() % 4 == 0) wall.Advance(rng() % 3);
    if (rng() % 100 == 0) wall.Advance(rng() % 5000);
    Hlc t = clock.Now();
    BOOST_REQUIRE_GT(t, prev);
    BOOST_REQUIRE_GE(HlcPhysicalMs(t), wall.NowMs());
    BOOST_REQUIRE_EQUAL(clock.last(), t);
    prev = t;
  }

  // Once the wall clock passes the clock, the next timestamp is the wall
  // clock with logical 0.
  wall.Set(HlcPhysicalMs(prev) + 10);
  BOOST_TEST(clock.Now() == MakeHlc(wall.NowMs(), 0));

  // Same against the real clock.
  SystemClock sys;
  HybridClock real(&sys, 500);
  Hlc last = 0;
  for (int i = 0; i < 1000; ++i) {
    uint64_t before = sys.NowMs();
    Hlc t = real.Now();
    BOOST_REQUIRE_GT(t, last);
    BOOST_REQUIRE_GE(HlcPhysicalMs(t), before);
    last = t;
  }
}

BOOST_AUTO_TEST_CASE(now_follows_kulkarni_send_rule) {
  ManualClock wall(0);
  HybridClock clock(&wall, 500);
  std::mt19937_64 rng(11);
  LC model{0, 0};
  uint64_t pt = 10'000;
  for (int i = 0; i < 20'000; ++i) {
    // Wander back and forth around a small range so all branches occur.
    pt = pt + (rng() % 5) - 2;
    wall.Set(pt);
    model = KulkarniSend(model, pt);
    BOOST_REQUIRE_EQUAL(clock.Now(), Pack(model));
  }
}

BOOST_AUTO_TEST_CASE(monotonic_when_wall_clock_goes_backwards) {
  ManualClock wall(50'000);
  HybridClock clock(&wall, 500);
  Hlc a = clock.Now();
  BOOST_TEST(a == MakeHlc(50'000, 0));

  wall.Set(40'000);  // NTP step back by ten seconds
  Hlc b = clock.Now();
  Hlc c = clock.Now();
  BOOST_TEST(b > a);
  BOOST_TEST(c > b);
  // The physical part holds and the logical counter moves on.
  BOOST_TEST(b == MakeHlc(50'000, 1));
  BOOST_TEST(c == MakeHlc(50'000, 2));

  // Creeping forward but still behind: still logical increments only.
  wall.Set(49'999);
  BOOST_TEST(clock.Now() == MakeHlc(50'000, 3));

  // Catching up resets the logical counter.
  wall.Set(50'001);
  BOOST_TEST(clock.Now() == MakeHlc(50'001, 0));
}

BOOST_AUTO_TEST_CASE(receive_rule_remote_ahead_behind_equal) {
  const uint64_t kWall = 10'000;
  const Hlc kLocal = MakeHlc(kWall, 3);

  struct Case {
    const char* name;
    uint64_t wall;
    Hlc remote;
    Hlc expected;
  };
  const Case cases[] = {
      // l' = l_m: c = c_m + 1.
      {"remote ahead", kWall, MakeHlc(kWall + 5, 7), MakeHlc(kWall + 5, 8)},
      // l' = l: c = c + 1.
      {"remote behind", kWall, MakeHlc(kWall - 100, 50), MakeHlc(kWall, 4)},
      // l' = l = l_m: c = max(c, c_m) + 1.
      {"remote equal", kWall, kLocal, MakeHlc(kWall, 4)},
      {"same ms, remote logical ahead", kWall, MakeHlc(kWall, 9), MakeHlc(kWall, 10)},
      {"same ms, remote logical behind", kWall, MakeHlc(kWall, 1), MakeHlc(kWall, 4)},
      // Wall clock ahead of both: l' = pt, c = 0.
      {"wall ahead of both", kWall + 50, MakeHlc(kWall + 20, 9), MakeHlc(kWall + 50, 0)},
      // Wall behind local, remote ahead.
      {"wall behind, remote ahead", kWall - 10, MakeHlc(kWall + 1, 0), MakeHlc(kWall + 1, 1)},
  };
  for (const Case& tc : cases) {
    BOOST_TEST_CONTEXT(tc.name) {
      ManualClock wall(tc.wall);
      HybridClock clock(&wall, 500);
      SetLast(&clock, kLocal);
      Hlc out = 0;
      Status st = clock.Update(tc.remote, &out);
      BOOST_TEST_REQUIRE(st.ok(), st.ToString());
      BOOST_TEST(out == tc.expected);
      BOOST_TEST(out > tc.remote);
      BOOST_TEST(out > kLocal);
      BOOST_TEST(clock.last() == out);
      BOOST_TEST(clock.Now() > out);
    }
  }
}

BOOST_AUTO_TEST_CASE(receive_rule_matches_kulkarni_model) {
  // Small ranges so that ties between l, l_m and pt are frequent.
  const uint64_t kMaxOffset = 20;
  std::mt19937_64 rng(2014);
  int accepted = 0;
  int refused = 0;
  for (int i = 0; i < 20'000; ++i) {
    uint64_t pt = 1000 + rng() % 40;
    LC local{1000 + rng() % 40, rng() % 8};
    LC remote{1000 + rng() % 70, rng() % 8};
    if (rng() % 50 == 0) local.c = kHlcLogicalMask - 1;  // large, but no carry
    ManualClock wall(pt);
    HybridClock clock(&wall, kMaxOffset);
    SetLast(&clock, Pack(local));
    Hlc out = 0;
    Status st = clock.Update(Pack(remote), &out);
    if (remote.l > pt + kMaxOffset) {
      BOOST_REQUIRE(st.IsFailedPrecondition());
      BOOST_REQUIRE_EQUAL(clock.last(), Pack(local));
      ++refused;
      continue;
    }
    BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
    LC expected = KulkarniReceive(local, remote, pt);
    BOOST_REQUIRE_EQUAL(out, Pack(expected));
    BOOST_REQUIRE_GT(out, Pack(local));
    BOOST_REQUIRE_GT(out, Pack(remote));
    ++accepted;
  }
  // Both paths were exercised.
  BOOST_TEST(accepted > 1000);
  BOOST_TEST(refused > 1000);
}

BOOST_AUTO_TEST_CASE(equal_timestamps_from_two_clocks) {
  // Two nodes whose wall clocks agree issue the same HLC: the clock alone
  // does not make timestamps unique (LWW breaks the tie by node id).
  ManualClock wall_a(7'000);
  ManualClock wall_b(7'000);
  HybridClock a(&wall_a, 500);
  HybridClock b(&wall_b, 500);
  Hlc ta = a.Now();
  Hlc tb = b.Now();
  BOOST_TEST(ta == tb);

  // Each absorbing the other's equal timestamp moves strictly past it.
  Hlc ra = 0;
  Hlc rb = 0;
  BOOST_TEST_REQUIRE(a.Update(tb, &ra).ok());
  BOOST_TEST_REQUIRE(b.Update(ta, &rb).ok());
  BOOST_TEST(ra == MakeHlc(7'000, 1));
  BOOST_TEST(rb == MakeHlc(7'000, 1));
  BOOST_TEST(ra > ta);

  // A message exchanged after that orders causally: b's reply to a's
  // event is later than the event.
  Hlc event = a.Now();
  Hlc reply = 0;
  BOOST_TEST_REQUIRE(b.Update(event, &reply).ok());
  BOOST_TEST(reply > event);
  BOOST_TEST(b.Now() > reply);
}

BOOST_AUTO_TEST_CASE(logical_overflow_carries_into_physical) {
  ManualClock wall(1'000);
  HybridClock clock(&wall, 500);
  Hlc prev = clock.Now();
  BOOST_TEST_REQUIRE(prev == MakeHlc(1'000, 0));

  // 65,536 events in one millisecond use logical 0..65535; the next one
  // carries into the physical part.
  for (uint32_t i = 1; i <= kHlcLogicalMask; ++i) {
    Hlc t = clock.Now();
    BOOST_REQUIRE_EQUAL(t, MakeHlc(1'000, static_cast<uint16_t>(i)));
    prev = t;
  }
  Hlc carried = clock.Now();
  BOOST_TEST(carried > prev);
  BOOST_TEST(carried == MakeHlc(1'001, 0));

  // Another full millisecond's worth with the wall clock still stuck:
  // the clock runs one more millisecond ahead, never more.
  prev = carried;
  for (uint32_t i = 0; i < 65'536 + 10; ++i) {
    Hlc t = clock.Now();
    BOOST_REQUIRE_GT(t, prev);
    BOOST_REQUIRE_LE(HlcPhysicalMs(t), wall.NowMs() + 2);
    prev = t;
  }
  BOOST_TEST(prev == MakeHlc(1'002, 10));

  // The wall clock reaching the carried millisecond does not reset the
  // counter (that would reissue timestamps); passing it does.
  wall.Set(1'002);
  BOOST_TEST(clock.Now() == MakeHlc(1'002, 11));
  wall.Set(1'003);
  BOOST_TEST(clock.Now() == MakeHlc(1'003, 0));

  // The receive rule carries the same way.
  ManualClock wall2(2'000);
  HybridClock other(&wall2, 500);
  Hlc out = 0;
  BOOST_TEST_REQUIRE(other.Update(MakeHlc(2'000, 65535), &out).ok());
  BOOST_TEST(out == MakeHlc(2'001, 0));
}

BOOST_AUTO_TEST_CASE(offset_refusal) {
  const uint64_t kWall = 100'000;
  const uint64_t kMaxOffset = 500;
  ManualClock wall(kWall);
  HybridClock clock(&wall, kMaxOffset);
  BOOST_TEST(clock.max_offset_ms() == kMaxOffset);
  Hlc before = clock.Now();

  // One millisecond past the limit: refused, clock untouched.
  Hlc too_far = MakeHlc(kWall + kMaxOffset + 1, 0);
  Hlc out = 0;
  Status st = clock.Update(too_far, &out);
  BOOST_TEST(st.IsFailedPrecondition());
  BOOST_TEST(st.code() == Status::Code::kFailedPrecondition);
  BOOST_TEST(!st.message().empty());
  BOOST_TEST(clock.last() == before);
  BOOST_TEST(clock.CheckOffset(too_far).IsFailedPrecondition());
  // The refused timestamp leaves no trace on later local events.
  BOOST_TEST(clock.Now() == before + 1);
  before = clock.last();

  Hlc way_too_far = MakeHlc(kHlcMaxPhysicalMs, 65535);
  BOOST_TEST(clock.Update(way_too_far, &out).IsFailedPrecondition());
  BOOST_TEST(clock.last() == before);

  // Exactly at the limit (any logical part): accepted.
  Hlc at_limit = MakeHlc(kWall + kMaxOffset, 42);
  BOOST_TEST(clock.CheckOffset(at_limit).ok());
  BOOST_TEST(clock.last() == before);  // CheckOffset changes nothing
  st = clock.Update(at_limit, &out);
  BOOST_TEST_REQUIRE(st.ok(), st.ToString());
  BOOST_TEST(out == at_limit + 1);
  BOOST_TEST(clock.last() == out);

  // Far behind is always accepted.
  st = clock.Update(MakeHlc(1, 0), &out);
  BOOST_TEST(st.ok());
  BOOST_TEST(out == at_limit + 2);

  // The limit follows the wall clock: what was refused becomes acceptable.
  wall.Advance(1);
  BOOST_TEST(clock.CheckOffset(too_far).ok());

  // A zero limit accepts the wall clock's own millisecond only.
  ManualClock w0(5'000);
  HybridClock strict(&w0, 0);
  BOOST_TEST(strict.Update(MakeHlc(5'000, 9), &out).ok());
  BOOST_TEST(out == MakeHlc(5'000, 10));
  BOOST_TEST(strict.Update(MakeHlc(5'001, 0), &out).IsFailedPrecondition());
  BOOST_TEST(strict.last() == MakeHlc(5'000, 10));
}

BOOST_AUTO_TEST_CASE(persisted_bound_protocol) {
  const uint64_t kMaxOffset = 500;
  ManualClock wall(10'000);
  HybridClock clock(&wall, kMaxOffset);
  BOOST_TEST(clock.persisted_bound() == 0u);
  BOOST_TEST(!clock.NeedsNewBound());

  Hlc t = clock.Now();
  BOOST_TEST(clock.NeedsNewBound());
  Hlc bound = clock.ProposeBound();
  BOOST_TEST(bound == MakeHlc(10'000 + kMaxOffset, 0));
  // Proposing is not persisting.
  BOOST_TEST(clock.NeedsNewBound());
  BOOST_TEST(clock.persisted_bound() == 0u);
  clock.BoundPersisted(bound);
  BOOST_TEST(clock.persisted_bound() == bound);
  BOOST_TEST(!clock.NeedsNewBound());
  BOOST_TEST(t <= bound);

  // Timestamps below the stored bound need no new one...
  wall.Advance(kMaxOffset - 1);
  clock.Now();
  BOOST_TEST(!clock.NeedsNewBound());
  // ...nor one exactly at it...
  wall.Advance(1);
  BOOST_TEST(clock.Now() == bound);
  BOOST_TEST(!clock.NeedsNewBound());
  // ...and the first one above it does.
  clock.Now();
  BOOST_TEST(clock.NeedsNewBound());

  // A stale or out-of-order acknowledgement never lowers the bound.
  clock.BoundPersisted(bound - 1000);
  BOOST_TEST(clock.persisted_bound() == bound);
  BOOST_TEST(clock.NeedsNewBound());
  Hlc next = clock.ProposeBound();
  BOOST_TEST(next > bound);
  clock.BoundPersisted(next);
  BOOST_TEST(clock.persisted_bound() == next);
  BOOST_TEST(!clock.NeedsNewBound());

  // Absorbing a remote timestamp above the bound needs a new one too.
  Hlc out = 0;
  BOOST_TEST_REQUIRE(clock.Update(next, &out).ok());
  BOOST_TEST(clock.NeedsNewBound());
}

BOOST_AUTO_TEST_CASE(restore_never_reissues_at_or_below_bound) {
  const uint64_t kMaxOffset = 500;
  // A node that ran ahead of its wall clock (logical overflow, absorbed
  // remote timestamps), persisting bounds the way the node does.
  ManualClock wall(100'000);
  HybridClock before(&wall, kMaxOffset);
  std::mt19937_64 rng(99);
  Hlc issued_max = 0;
  Hlc stored = 0;
  for (int i = 0; i < 5'000; ++i) {
    Hlc t = 0;
    if (rng() % 3 == 0) {
      Hlc out = 0;
      Hlc remote = MakeHlc(wall.NowMs() + rng() % (kMaxOffset + 1), rng() % 100);
      BOOST_REQUIRE(before.Update(remote, &out).ok());
      t = out;
    } else {
      t = before.Now();
    }
    if (before.NeedsNewBound()) {
      stored = before.ProposeBound();
      before.BoundPersisted(stored);
    }
    // The node makes t visible only once the stored bound covers it.
    BOOST_REQUIRE_LE(t, stored);
    issued_max = std::max(issued_max, t);
    if (rng() % 10 == 0) wall.Advance(rng() % 50);
  }

  // Restart with a wall clock behind the bound (stepped back a minute).
  for (Hlc bound : {stored, issued_max, MakeHlc(200'000, 65535)}) {
    BOOST_TEST_CONTEXT("bound " << HlcToString(bound)) {
      ManualClock wall2(100'000 - 60'000);
      HybridClock after(&wall2, kMaxOffset);
      after.Restore(bound);
      BOOST_TEST(after.last() == bound);
      BOOST_TEST(after.persisted_bound() == bound);
      BOOST_TEST(!after.NeedsNewBound());
      Hlc prev = bound;
      for (int i = 0; i < 1000; ++i) {
        Hlc t = after.Now();
        BOOST_REQUIRE_GT(t, prev);
        prev = t;
      }
      BOOST_TEST(after.NeedsNewBound());
      // A stale remote timestamp does not pull it back either.
      Hlc out = 0;
      BOOST_TEST_REQUIRE(after.Update(MakeHlc(1, 0), &out).ok());
      BOOST_TEST(out > prev);
      BOOST_TEST(out > issued_max);
    }
  }

  // Restoring an older bound onto a clock that is already past it keeps
  // the clock where it is.
  ManualClock wall3(300'000);
  HybridClock c(&wall3, kMaxOffset);
  Hlc now = c.Now();
  c.Restore(MakeHlc(1'000, 0));
  BOOST_TEST(c.last() == now);
  BOOST_TEST(c.Now() > now);
}

BOOST_AUTO_TEST_CASE(propose_bound_stays_within_wall_plus_offset) {
  const uint64_t kMaxOffset = 300;
  ManualClock wall(50'000);
  HybridClock clock(&wall, kMaxOffset);
  std::mt19937_64 rng(5);
  int last_dominated = 0;
  for (int i = 0; i < 20'000; ++i) {
    switch (rng() % 4) {
      case 0:
        clock.Now();
        break;
      case 1: {
        Hlc out = 0;
        Hlc remote = MakeHlc(wall.NowMs() + rng() % (kMaxOffset + 1), rng() % 65536);
        BOOST_REQUIRE(clock.Update(remote, &out).ok());
        break;
      }
      case 2:
        wall.Set(wall.NowMs() + (rng() % 21) - 10);  // jitter both ways
        break;
      default:
        // Many events in one millisecond push last() past the limit.
        for (int k = 0; k < 2000; ++k) clock.Now();
        break;
    }
    Hlc limit = MakeHlc(wall.NowMs() + kMaxOffset, 0);
    Hlc proposed = clock.ProposeBound();
    BOOST_REQUIRE_GE(proposed, clock.last());
    BOOST_REQUIRE_EQUAL(proposed, std::max(clock.last(), limit));
    if (proposed > limit) {
      BOOST_REQUIRE_EQUAL(proposed, clock.last());
      ++last_dominated;
    }
  }
  BOOST_TEST(last_dominated > 0);

  // After a restore far ahead, the bound is last() itself.
  ManualClock w(1'000);
  HybridClock restored(&w, kMaxOffset);
  restored.Restore(MakeHlc(900'000, 3));
  BOOST_TEST(restored.ProposeBound() == MakeHlc(900'000, 3));

  // Near the end of the 48-bit range the proposal clamps rather than wraps.
  ManualClock end(kHlcMaxPhysicalMs - 10);
  HybridClock late(&end, kMaxOffset);
  late.Now();
  Hlc b = late.ProposeBound();
  BOOST_TEST(b >= late.last());
  BOOST_TEST(b == MakeHlc(kHlcMaxPhysicalMs, 0));
}

BOOST_AUTO_TEST_CASE(hlc_to_string) {
  BOOST_TEST(HlcToString(MakeHlc(1732550400123, 7)) == "1732550400123.7");
  BOOST_TEST(HlcToString(0) == "0.0");
  BOOST_TEST(HlcToString(MakeHlc(5, 65535)) == "5.65535");
  BOOST_TEST(HlcToString(kMaxHlc) == "281474976710655.65535");
}

BOOST_AUTO_TEST_CASE(now_checked_at_exhaustion_returns_error) {
  ManualClock wall(kHlcMaxPhysicalMs);
  HybridClock clock(&wall, 500);
  clock.Restore(kMaxHlc - 1);
  Hlc out = 0;
  Status st = clock.NowChecked(&out);
  BOOST_TEST_REQUIRE(st.ok(), st.ToString());
  BOOST_TEST(out == kMaxHlc);

  st = clock.NowChecked(&out);
  BOOST_TEST(st.IsOutOfRange());
  BOOST_TEST(clock.last() == kMaxHlc);
  // Now() signals the same by returning 0, which no real event carries.
  BOOST_TEST(clock.Now() == 0u);
  BOOST_TEST(clock.last() == kMaxHlc);

  Status recv = clock.Update(MakeHlc(kHlcMaxPhysicalMs, 3), &out);
  BOOST_TEST(recv.IsOutOfRange());
  BOOST_TEST(clock.last() == kMaxHlc);

  // A remote at the very end exhausts a clock that was not yet there.
  HybridClock other(&wall, 500);
  BOOST_TEST(other.Update(kMaxHlc, &out).IsOutOfRange());
  BOOST_TEST(other.last() == 0u);

  // A wall clock past the 48-bit range clamps instead of wrapping into a
  // small timestamp, and the clock then counts up to exhaustion.
  ManualClock beyond(kHlcMaxPhysicalMs + 1000);
  HybridClock far(&beyond, 500);
  Hlc t = far.Now();
  BOOST_TEST(t == MakeHlc(kHlcMaxPhysicalMs, 0));
  far.Restore(kMaxHlc - 2);
  BOOST_TEST(far.Now() == kMaxHlc - 1);
  BOOST_TEST(far.Now() == kMaxHlc);
  BOOST_TEST(far.NowChecked(&out).IsOutOfRange());
}
