// Robustness of every decoder of untrusted bytes: the typed decoders, the
// envelope, the causal context, and each registry entry's canonicalize and
// merge. Whatever the input, a decoder returns Corruption or a state whose
// encoding is a fixed point (decode(encode(x)) == x, byte for byte). It
// never crashes, throws, or allocates in proportion to what a header
// claims rather than to what the input holds.
//
// Unbounded allocation is made visible rather than survivable: without
// ASan the whole module runs under an address-space limit (a runaway
// allocation then fails, msgpack's bad_alloc becomes OutOfRange, and every
// check here demands Corruption); under ASan, allocations above
// max_allocation_size_mb abort the run.
#define BOOST_TEST_MODULE decoder
#include <sys/resource.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <exception>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "crdt/causal.h"
#include "crdt/causal_context.h"
#include "crdt/codec.h"
#include "crdt/counter.h"
#include "crdt/envelope.h"
#include "crdt/flag.h"
#include "crdt/hlc.h"
#include "crdt/map.h"
#include "crdt/mvregister.h"
#include "crdt/register.h"
#include "crdt/registry.h"
#include "crdt/set.h"
#include "crdt/text.h"
#include "crdt/status.h"
#include "tests/crdt/fixtures.h"

using namespace meridian;
using namespace meridian::crdt;

#if defined(__SANITIZE_ADDRESS__)
#define MERIDIAN_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MERIDIAN_TEST_ASAN 1
#endif
#endif

#ifdef MERIDIAN_TEST_ASAN
// ASan would otherwise happily serve a multi-gigabyte request (and the
// address-space limit below cannot be used beside its shadow memory). No
// test input here is larger than a few kilobytes.
extern "C" const char* __asan_default_options() {
  return "max_allocation_size_mb=256:allocator_may_return_null=0";
}
#else
namespace {
// Caps the address space at what the process holds now plus 1 GiB, so a
// decoder that believes a 4 GiB header fails to allocate instead of
// quietly succeeding on an overcommitting kernel.
struct AddressSpaceLimit {
  AddressSpaceLimit() {
    if (getrlimit(RLIMIT_AS, &saved_) != 0) return;
    std::ifstream statm("/proc/self/statm");
    unsigned long pages = 0;
    if (!(statm >> pages)) return;
    rlim_t want =
        static_cast<rlim_t>(pages) * static_cast<rlim_t>(sysconf(_SC_PAGESIZE)) + (rlim_t{1} << 30);
    if (saved_.rlim_max != RLIM_INFINITY && want > saved_.rlim_max) return;
    rlimit lowered = saved_;
    lowered.rlim_cur = want;
    active_ = setrlimit(RLIMIT_AS, &lowered) == 0;
  }
  ~AddressSpaceLimit() {
    if (active_) (void)setrlimit(RLIMIT_AS, &saved_);
  }
  rlimit saved_{};
  bool active_ = false;
};
}  // namespace
BOOST_TEST_GLOBAL_FIXTURE(AddressSpaceLimit);
#endif

namespace {

const ReplicaId kA{"us-east-1", 1};
const ReplicaId kB{"eu-west-1", 2};
constexpr Hlc kT0 = MakeHlc(1732550400000, 0);

void Ok(const Status& s) { BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString()); }

std::string Hex(std::string_view bytes) {
  constexpr size_t kShown = 96;
  if (bytes.size() <= kShown) return ToHex(bytes);
  return ToHex(bytes.substr(0, kShown)) + "...(" + std::to_string(bytes.size()) + " bytes)";
}

std::string Bytes(std::initializer_list<uint8_t> b) { return std::string(b.begin(), b.end()); }

const std::string kVersion(1, static_cast<char>(kStateFormatVersion));

// --- Valid, non-trivial states built with the types' own mutators --------

std::vector<std::string> RegisterSamples() {
  std::vector<std::string> out;
  Register r, d;
  Ok(r.Set(kT0 + 1, kA, "hello", &d));
  r.Merge(d);
  out.push_back(r.Encode());
  std::string every_byte;
  for (int i = 0; i < 256; ++i) every_byte.push_back(static_cast<char>(i));
  Register big;
  Ok(big.Set(kT0 + 2, kB, every_byte, &d));  // bin 16 header
  big.Merge(d);
  out.push_back(big.Encode());
  Ok(r.Delete(kT0 + 3, kB, &d));
  r.Merge(d);
  out.push_back(r.Encode());  // tombstone
  return out;
}

MvRegister TwoSiblings() {
  MvRegister a, b, d;
  Ok(a.Write(kA, MakeHlc(1000, 1), "left", nullptr, &d));
  a.Merge(d);
  Ok(b.Write(kB, MakeHlc(1000, 2), "right", nullptr, &d));
  b.Merge(d);
  a.Merge(b);
  BOOST_REQUIRE_EQUAL(a.siblings().size(), 2u);
  return a;
}

std::vector<std::string> MvRegisterSamples() {
  MvRegister m = TwoSiblings();
  std::vector<std::string> out{m.Encode()};
  MvRegister d;
  Ok(m.Write(kA, MakeHlc(1001, 0), "resolved", nullptr, &d));  // supersedes both
  m.Merge(d);
  out.push_back(m.Encode());
  return out;
}

Counter CounterDeleteAndConcurrentIncrement() {
  Counter a, b, d;
  Ok(a.Increment(kA, 5, &d));
  a.Merge(d);
  Ok(b.Increment(kB, -3, &d));
  b.Merge(d);
  a.Merge(b);
  b.Merge(a);
  a.Merge(a.Delete());
  Ok(b.Increment(kB, 2, &d));
  b.Merge(d);
  a.Merge(b);
  BOOST_REQUIRE_EQUAL(a.Value(), 2);
  return a;
}

std::vector<std::string> CounterSamples() {
  Counter c, d;
  Ok(c.Increment(kA, std::numeric_limits<int64_t>::max(), &d));  // uint64 entries
  c.Merge(d);
  return {CounterDeleteAndConcurrentIncrement().Encode(), c.Encode()};
}

// Adds and a remove, and a partially delivered pair of adds so that the
// context holds a cloud dot.
Set SetWithCloud() {
  Set a, b, d;
  Ok(a.Update(kA, {"apple", "banana", "cherry"}, {}, &d));
  a.Merge(d);
  b.Merge(a);
  Ok(b.Remove("banana", &d));
  b.Merge(d);
  Ok(a.Add(kA, "date", &d));
  a.Merge(d);
  a.Merge(b);
  Ok(b.Add(kB, "fig", &d));
  b.Merge(d);
  Ok(b.Add(kB, "grape", &d));
  b.Merge(d);
  a.Merge(d);  // only the second add arrives
  BOOST_REQUIRE(!a.context().cloud().empty());
  return a;
}

// A remove whose delta arrives without the adds it removed: the context
// holds a cloud dot that no element holds.
Set SetWithRemovedCloudDot() {
  Set a, b, d;
  Ok(a.Add(kA, "kept", &d));
  a.Merge(d);
  Ok(b.Update(kB, {"x", "y"}, {}, &d));
  b.Merge(d);
  Ok(b.Remove("y", &d));
  a.Merge(d);
  BOOST_REQUIRE_EQUAL(a.context().cloud().size(), 1u);
  BOOST_REQUIRE_EQUAL(a.Values().size(), 1u);
  return a;
}

std::vector<std::string> SetSamples() {
  return {SetWithCloud().Encode(), SetWithRemovedCloudDot().Encode()};
}

// Each sample has replicas of its own: two unrelated histories of one
// replica would reuse its dots for different events, which no real
// history does and no text merge can reconcile (see MergeBase).
std::vector<std::string> TextSamples() {
  namespace t = meridian::crdt::testing;
  std::vector<std::string> out;
  const std::vector<std::pair<Status (*)(const ReplicaId&, const ReplicaId&, Text*),
                              std::pair<ReplicaId, ReplicaId>>>
      builds = {
          {t::TextConcurrent, {kA, kB}},
          {t::TextWaiting, {ReplicaId{"ap-south-1", 3}, ReplicaId{"sa-east-1", 4}}},
          {t::TextDeletedTwice, {ReplicaId{"me-central-1", 5}, ReplicaId{"af-south-1", 6}}},
      };
  // (A packed sample is not here: deflate's checksum refuses every single
  // byte mutation. tests/crdt/text_test.cc covers packed bytes.)
  for (const auto& [build, ids] : builds) {
    Text text;
    Ok(build(ids.first, ids.second, &text));
    out.push_back(text.Encode());
  }
  return out;
}

std::vector<std::string> FlagSamples() {
  Flag a, b;
  a.Merge(a.Enable(kA));
  b.Merge(b.Enable(kB));
  a.Merge(b);
  BOOST_REQUIRE_EQUAL(a.store().dots.size(), 2u);
  // Enabled by two incarnations of one node: dots one byte apart, so a
  // single mutation can make them equal.
  Flag c, d;
  c.Merge(c.Enable(kA));
  d.Merge(d.Enable(ReplicaId{kA.node, kA.incarnation + 1}));
  c.Merge(d);
  BOOST_REQUIRE_EQUAL(c.store().dots.size(), 2u);
  return {a.Encode(), c.Encode()};
}

Map FourFields() {
  Map m;
  Ok(meridian::crdt::testing::MapWithEveryFieldType(kA, kT0 + 5, &m));
  BOOST_REQUIRE_EQUAL(m.Values().size(), 4u);
  return m;
}

std::vector<std::string> MapSamples() {
  Map m = FourFields();
  std::vector<std::string> out{m.Encode()};
  // A remove of "tags" concurrent with an add to it: the add survives.
  Map other = m;
  Map d;
  Ok(m.Update(kA, kT0 + 6, {}, {"tags"}, &d));
  m.Merge(d);
  FieldOp add;
  add.name = "tags";
  add.type = FieldType::kSet;
  add.sadd = {"late"};
  Ok(other.Update(kB, kT0 + 7, {add}, {}, &d));
  other.Merge(d);
  m.Merge(other);
  out.push_back(m.Encode());
  return out;
}

Envelope TypeConflict() {
  Envelope e, other;
  Ok(Envelope::Of(Counter::kTag, kT0 + 10, kA, CounterDeleteAndConcurrentIncrement().Encode(), &e));
  Ok(Envelope::Of(Set::kTag, kT0 + 9, kB, SetWithCloud().Encode(), &other));
  Ok(e.Merge(other, nullptr));
  BOOST_REQUIRE_EQUAL(e.entries().size(), 2u);
  return e;
}

std::vector<std::string> EnvelopeSamples() {
  Envelope m;
  Ok(Envelope::Of(Map::kTag, kT0, kA, FourFields().Encode(), &m));
  return {TypeConflict().Encode(), m.Encode()};
}

std::vector<std::string> CausalContextSamples() {
  std::vector<std::string> out;
  for (const Set& s : {SetWithCloud(), SetWithRemovedCloudDot()}) {
    Encoder e;
    s.context().Encode(&e);
    out.push_back(e.Take());
  }
  return out;
}

// --- Decoders under test ---------------------------------------------------

struct Outcome {
  Status status;
  std::string problem;    // a broken promise other than failing to decode
  std::string canonical;  // on success: the canonical encoding of the input
};

// --- Invariants of decoded states, as the headers document them ----------

std::string ContextInvariant(const CausalContext& c) {
  for (const auto& [r, n] : c.vv()) {
    if (n == 0) return "version vector entry of zero";
  }
  for (const Dot& d : c.cloud()) {
    auto it = c.vv().find(d.replica);
    if (d.counter <= (it == c.vv().end() ? 0 : it->second) + 1) {
      return "cloud dot " + d.ToString() + " belongs in the version vector";
    }
  }
  return "";
}

std::string StoreInvariant(const DottedRegisterStore&) { return ""; }
std::string StoreInvariant(const MvRegisterStore&) { return ""; }
std::string StoreInvariant(const FlagStore&) { return ""; }
std::string StoreInvariant(const CounterStore& s) {
  for (const auto* m : {&s.entries, &s.removed}) {
    for (const auto& [r, e] : *m) {
      if (e.p == 0 && e.n == 0) return "zero counter entry for " + r.ToString();
    }
  }
  for (const auto& [r, e] : s.removed) {
    auto it = s.entries.find(r);
    if (it == s.entries.end() || e.p > it->second.p || e.n > it->second.n) {
      return "removed above counted for " + r.ToString();
    }
  }
  return "";
}
std::string StoreInvariant(const SetStore& s) {
  for (const auto& [element, dots] : s.elements) {
    if (dots.empty()) return "set element without dots";
  }
  return "";
}
std::string StoreInvariant(const MapStore& s) {
  for (const auto& [key, fs] : s.fields) {
    bool matches = false;
    switch (key.type) {
      case FieldType::kRegister:
        matches = std::holds_alternative<DottedRegisterStore>(fs);
        break;
      case FieldType::kCounter:
        matches = std::holds_alternative<CounterStore>(fs);
        break;
      case FieldType::kSet:
        matches = std::holds_alternative<SetStore>(fs);
        break;
      case FieldType::kFlag:
        matches = std::holds_alternative<FlagStore>(fs);
        break;
    }
    if (!matches) return "map field '" + key.name + "' holds another type's store";
    std::string inner = std::visit(
        [](const auto& store) {
          return store.IsBottom() ? std::string("is empty") : StoreInvariant(store);
        },
        fs);
    if (!inner.empty()) return "map field '" + key.name + "': " + inner;
  }
  return "";
}

template <class S>
std::string Invariant(const Causal<S>& x) {
  std::string st = StoreInvariant(x.store());
  return st.empty() ? ContextInvariant(x.context()) : st;
}
std::string Invariant(const Text&) { return ""; }
std::string Invariant(const Register& r) {
  return r.deleted() && !r.value().empty() ? "tombstone with a value" : "";
}
std::string Invariant(const Envelope& e) {
  for (const auto& [tag, ts] : e.entries()) {
    if (tag != ts.tag) return "entry filed under another tag";
  }
  return "";
}

// --- Shortest-form msgpack -------------------------------------------------
// msgpack-c accepts non-shortest headers (cc 05 for 5), so accepted bytes
// need not be canonical. But bytes already in the shortest form the
// Encoder writes, once accepted, must re-encode to themselves: a decoder
// that silently drops a duplicate or re-sorts out-of-order entries fails
// that.

bool ShortestValue(std::string_view b, size_t* pos, int depth);

bool ShortestItems(std::string_view b, size_t* pos, int depth, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    if (!ShortestValue(b, pos, depth + 1)) return false;
  }
  return true;
}

bool ShortestValue(std::string_view b, size_t* pos, int depth) {
  if (depth > 64 || *pos >= b.size()) return false;
  const uint8_t h = static_cast<uint8_t>(b[(*pos)++]);
  auto big_endian = [&](size_t n, uint64_t* v) {
    if (b.size() - *pos < n) return false;
    *v = 0;
    for (size_t i = 0; i < n; ++i) *v = *v << 8 | static_cast<uint8_t>(b[(*pos)++]);
    return true;
  };
  auto skip = [&](uint64_t n) {
    if (b.size() - *pos < n) return false;
    *pos += static_cast<size_t>(n);
    return true;
  };
  if (h <= 0x7f || h >= 0xe0) return true;  // fixint
  if (h >= 0x90 && h <= 0x9f) return ShortestItems(b, pos, depth, h & 0x0f);
  if (h >= 0xa0 && h <= 0xbf) return skip(h & 0x1f);  // fixstr
  uint64_t v = 0;
  switch (h) {
    case 0xc0:
    case 0xc2:
    case 0xc3:
      return true;
    case 0xcc:
      return big_endian(1, &v) && v >= 0x80;
    case 0xcd:
      return big_endian(2, &v) && v > 0xff;
    case 0xce:
      return big_endian(4, &v) && v > 0xffff;
    case 0xcf:
      return big_endian(8, &v) && v > 0xffffffff;
    case 0xd0:
      return big_endian(1, &v) && static_cast<int8_t>(v) < -32;
    case 0xd1:
      return big_endian(2, &v) && static_cast<int16_t>(v) < -128;
    case 0xd2:
      return big_endian(4, &v) && static_cast<int32_t>(v) < -32768;
    case 0xd3:
      return big_endian(8, &v) && static_cast<int64_t>(v) < INT32_MIN;
    case 0xd9:
      return big_endian(1, &v) && v >= 32 && skip(v);
    case 0xda:
      return big_endian(2, &v) && v > 0xff && skip(v);
    case 0xdb:
      return big_endian(4, &v) && v > 0xffff && skip(v);
    case 0xc4:
      return big_endian(1, &v) && skip(v);
    case 0xc5:
      return big_endian(2, &v) && v > 0xff && skip(v);
    case 0xc6:
      return big_endian(4, &v) && v > 0xffff && skip(v);
    case 0xdc:
      return big_endian(2, &v) && v >= 16 && ShortestItems(b, pos, depth, v);
    case 0xdd:
      return big_endian(4, &v) && v > 0xffff && ShortestItems(b, pos, depth, v);
    default:
      return false;  // maps, floats, ext: never written
  }
}

bool IsShortestMsgpack(std::string_view b) {
  size_t pos = 0;
  return ShortestValue(b, &pos, 0) && pos == b.size();
}

struct Target {
  std::string name;
  std::string type;  // whose samples are valid input for it
  bool versioned;    // expects the format version byte first
  std::function<Outcome(std::string_view)> probe;
};

// Join `y` into `x`; false when the join itself fails.
template <class T>
bool Join(T* x, const T& y) {
  x->Merge(y);
  return true;
}
bool Join(Envelope* x, const Envelope& y) { return x->Merge(y, nullptr).ok(); }

template <class T>
Outcome ProbeTyped(std::string_view bytes) {
  Outcome o;
  T x;
  o.status = T::Decode(bytes, &x);
  if (!o.status.ok()) return o;
  std::string enc = x.Encode();
  o.canonical = enc;
  T y;
  Status again = T::Decode(enc, &y);
  if (std::string broken = Invariant(x); !broken.empty()) {
    o.problem = "the decoded state breaks an invariant: " + broken;
  } else if (!again.ok()) {
    o.problem = "its re-encoding does not decode: " + again.ToString();
  } else if (!(y == x)) {
    o.problem = "its re-encoding decodes to a different state";
  } else if (y.Encode() != enc) {
    o.problem = "its encoding is not a fixed point";
  } else {
    // A non-canonical form that survives its own round trip (say, a cloud
    // dot that belongs in the version vector) still shows here: joining
    // normalizes, and a canonical state is a fixed point of joining with
    // bottom and with itself.
    T z = x;
    if (!Join(&z, T()) || !(z == x)) {
      o.problem = "joining it with the empty state changes it";
    } else if (!Join(&z, x) || !(z == x)) {
      o.problem = "joining it with itself changes it";
    }
  }
  return o;
}

Outcome ProbeCausalContext(std::string_view bytes) {
  Outcome o;
  Decoder d;
  o.status = d.ParseRaw(bytes);
  if (!o.status.ok()) return o;
  CausalContext x;
  o.status = CausalContext::Decode(d.root(), &x);
  if (!o.status.ok()) return o;
  Encoder e;
  x.Encode(&e);
  o.canonical = e.bytes();
  Decoder d2;
  CausalContext y;
  Status again = d2.ParseRaw(e.bytes());
  if (again.ok()) again = CausalContext::Decode(d2.root(), &y);
  if (std::string broken = ContextInvariant(x); !broken.empty()) {
    o.problem = "the decoded context breaks an invariant: " + broken;
  } else if (!again.ok()) {
    o.problem = "its re-encoding does not decode: " + again.ToString();
  } else if (y != x) {
    o.problem = "its re-encoding decodes to a different context";
  } else {
    // Merging compacts; a canonical context is unchanged by it.
    CausalContext z = x;
    z.Merge(CausalContext());
    if (z != x) o.problem = "merging it with the empty context changes it (not compacted)";
  }
  return o;
}

// Also runs the entry's other decoders (is_bottom, has_value), which must
// refuse exactly what canonicalize refuses.
Outcome ProbeCanonicalize(const TypeOps* ops, std::string_view bytes) {
  Outcome o;
  std::string once;
  o.status = ops->canonicalize(bytes, &once);
  bool flag = false;
  Status bottom = ops->is_bottom(bytes, &flag);
  Status value = ops->has_value(bytes, &flag);
  if (bottom.ok() != o.status.ok() || value.ok() != o.status.ok()) {
    o.problem = "canonicalize (" + o.status.ToString() + "), is_bottom (" + bottom.ToString() +
                ") and has_value (" + value.ToString() + ") disagree on validity";
    return o;
  }
  if (!o.status.ok()) return o;
  o.canonical = once;
  std::string twice;
  Status again = ops->canonicalize(once, &twice);
  if (!again.ok()) {
    o.problem = "its canonical form is refused: " + again.ToString();
  } else if (twice != once) {
    o.problem = "canonicalize is not idempotent";
  }
  return o;
}

// Merges `bytes` with a valid state of the same type, both ways round.
// Merge fails exactly when `bytes` is not a valid state; when it succeeds
// it must still be a join: commutative, idempotent, canonical output.
Outcome ProbeMerge(const TypeOps* ops, const std::string& base, std::string_view bytes) {
  Outcome o;
  std::string ab, ba, canon;
  o.status = ops->merge(base, bytes, &ab);
  Status reverse = ops->merge(bytes, base, &ba);
  Status valid = ops->canonicalize(bytes, &canon);
  if (o.status.ok() != valid.ok() || reverse.ok() != valid.ok()) {
    o.problem = "merge and canonicalize disagree on validity (merge: " + o.status.ToString() +
                ", reversed: " + reverse.ToString() + ", canonicalize: " + valid.ToString() + ")";
    return o;
  }
  if (!o.status.ok()) return o;
  o.canonical = canon;
  std::string self, ab_canon;
  Status st = ops->merge(bytes, bytes, &self);
  if (ab != ba) {
    o.problem = "merge is not commutative";
  } else if (!st.ok() || self != canon) {
    o.problem = "merge with itself is not the canonical form";
  } else if (!ops->canonicalize(ab, &ab_canon).ok() || ab_canon != ab) {
    o.problem = "merge output is not canonical";
  }
  return o;
}

struct Sample {
  std::string type;
  std::string bytes;
};

const std::vector<Sample>& Samples() {
  static const std::vector<Sample> samples = [] {
    std::vector<Sample> out;
    auto add = [&](std::string_view type, const std::vector<std::string>& list) {
      for (const std::string& b : list) out.push_back({std::string(type), b});
    };
    add(Register::kName, RegisterSamples());
    add(MvRegister::kName, MvRegisterSamples());
    add(Counter::kName, CounterSamples());
    add(Set::kName, SetSamples());
    add(Map::kName, MapSamples());
    add(Flag::kName, FlagSamples());
    add(Text::kName, TextSamples());
    add("envelope", EnvelopeSamples());
    add("causal_context", CausalContextSamples());
    return out;
  }();
  return samples;
}

const std::string& FirstSample(std::string_view type) {
  for (const Sample& s : Samples()) {
    if (s.type == type) return s.bytes;
  }
  BOOST_FAIL("no sample of type " << type);
  static const std::string kNone;
  return kNone;
}

// The state the registry merge probe joins every sample and mutation
// with: the type's first sample, except for text, whose base has replicas
// no sample has (and no single byte mutation reaches), since a mutated
// copy of the base would give one dot to two different events.
std::string MergeBase(std::string_view type) {
  if (type != Text::kName) return FirstSample(type);
  Text base;
  Ok(meridian::crdt::testing::TextConcurrent(ReplicaId{"zz-base-1", 1}, ReplicaId{"zz-base-2", 1},
                                             &base));
  return base.Encode();
}

const std::vector<Target>& Targets() {
  static const std::vector<Target> targets = [] {
    std::vector<Target> t = {
        {"Register::Decode", std::string(Register::kName), true, ProbeTyped<Register>},
        {"MvRegister::Decode", std::string(MvRegister::kName), true, ProbeTyped<MvRegister>},
        {"Counter::Decode", std::string(Counter::kName), true, ProbeTyped<Counter>},
        {"Set::Decode", std::string(Set::kName), true, ProbeTyped<Set>},
        {"Flag::Decode", std::string(Flag::kName), true, ProbeTyped<Flag>},
        {"Map::Decode", std::string(Map::kName), true, ProbeTyped<Map>},
        {"Text::Decode", std::string(Text::kName), true, ProbeTyped<Text>},
        {"Envelope::Decode", "envelope", true, ProbeTyped<Envelope>},
        {"CausalContext::Decode", "causal_context", false, ProbeCausalContext},
    };
    BOOST_REQUIRE_EQUAL(AllTypes().size(), 7u);  // a new type needs samples above
    for (const TypeOps* ops : AllTypes()) {
      std::string type(ops->name);
      t.push_back({"registry " + type + " canonicalize", type, true,
                   [ops](std::string_view b) { return ProbeCanonicalize(ops, b); }});
      const std::string base = MergeBase(type);
      t.push_back({"registry " + type + " merge", type, true,
                   [ops, base](std::string_view b) { return ProbeMerge(ops, base, b); }});
    }
    return t;
  }();
  return targets;
}

const Target& EnvelopeTarget() {
  for (const Target& t : Targets()) {
    if (t.type == "envelope") return t;
  }
  BOOST_FAIL("no envelope target");
  return Targets().front();
}

// Runs one probe; any exception is a failure of the decoder.
Outcome Run(const Target& t, std::string_view input) {
  try {
    return t.probe(input);
  } catch (const std::exception& e) {
    return Outcome{Status::OK(), std::string("threw: ") + e.what(), ""};
  } catch (...) {
    return Outcome{Status::OK(), "threw a non-standard exception", ""};
  }
}

// Checks the contract on one input. Returns whether the input decoded.
// `must_fail`: the input is invalid by construction.
bool Check(const Target& t, std::string_view input, const std::string& what, bool must_fail) {
  Outcome o = Run(t, input);
  if (!o.problem.empty()) {
    BOOST_ERROR(t.name << " on " << what << " [" << Hex(input) << "]: " << o.problem);
    return o.status.ok();
  }
  if (!o.status.ok() && !o.status.IsCorruption()) {
    // Only Corruption means "these bytes are no valid state"; OutOfRange
    // here means an allocation failed, i.e. a header was believed.
    BOOST_ERROR(t.name << " on " << what << " [" << Hex(input)
                       << "]: fails with a code other than Corruption: " << o.status.ToString());
  }
  if (must_fail && o.status.ok()) {
    BOOST_ERROR(t.name << " on " << what << " [" << Hex(input) << "]: accepted invalid input");
  }
  // An envelope canonicalizes the states it carries as bins, which this
  // shallow check does not look into.
  if (o.status.ok() && t.type != "envelope") {
    std::string_view body = t.versioned ? input.substr(1) : input;
    if (IsShortestMsgpack(body) && o.canonical != input) {
      BOOST_ERROR(t.name << " on " << what << " [" << Hex(input)
                         << "]: accepted shortest-form bytes that re-encode differently ["
                         << Hex(o.canonical) << "]");
    }
  }
  return o.status.ok();
}

// Counts the invalid inputs checked, so that a case whose loops found
// nothing to check fails instead of passing vacuously.
int g_must_fail_checked = 0;

void CheckMustFail(const Target& t, std::string_view input, const std::string& what) {
  ++g_must_fail_checked;
  Check(t, input, what, /*must_fail=*/true);
}

// Requires at least `n` invalid inputs checked since the last call.
void ExpectChecked(int n) {
  BOOST_TEST(g_must_fail_checked >= n);
  g_must_fail_checked = 0;
}

// The input as `t` expects it: with the version byte first, or without.
std::string Framed(const Target& t, std::string_view body) {
  return t.versioned ? kVersion + std::string(body) : std::string(body);
}

}  // namespace

BOOST_AUTO_TEST_CASE(valid_samples_decode_to_their_own_encoding) {
  // The baseline every other case perturbs; also guards the harness.
  for (const Target& t : Targets()) {
    int own = 0;
    for (const Sample& s : Samples()) {
      if (s.type != t.type) continue;
      ++own;
      Outcome o = Run(t, s.bytes);
      BOOST_TEST(o.problem.empty(), t.name << ": " << o.problem);
      BOOST_TEST(o.status.ok(), t.name << ": " << o.status.ToString());
    }
    BOOST_TEST(own > 0, t.name << " has no valid sample");
  }
  for (const Sample& s : Samples()) {
    if (s.type == "causal_context") continue;
    BOOST_TEST(s.bytes[0] == kVersion[0], s.type << " sample lacks the version byte");
  }
}

BOOST_AUTO_TEST_CASE(every_truncation_fails) {
  for (const Target& t : Targets()) {
    for (const Sample& s : Samples()) {
      if (s.type != t.type) continue;
      for (size_t n = 0; n < s.bytes.size(); ++n) {
        CheckMustFail(t, std::string_view(s.bytes).substr(0, n),
                      "prefix of " + std::to_string(n) + "/" + std::to_string(s.bytes.size()));
      }
    }
  }
  ExpectChecked(3'000);
}

BOOST_AUTO_TEST_CASE(random_bytes) {
  // Half the inputs start with the version byte so they reach msgpack;
  // half the bytes come from msgpack's type and length markers so that
  // they reach the typed decoders.
  static const uint8_t kMarkers[] = {0x00, 0x01, 0x02, 0x03, 0x7f, 0x80, 0x81, 0x90,
                                     0x91, 0x92, 0x93, 0x94, 0xa1, 0xa9, 0xc0, 0xc2,
                                     0xc3, 0xc4, 0xc5, 0xc6, 0xcc, 0xcd, 0xce, 0xcf,
                                     0xd0, 0xd3, 0xd9, 0xdc, 0xdd, 0xde, 0xdf, 0xff};
  std::mt19937_64 rng(20240611);
  for (const Target& t : Targets()) {
    int accepted = 0;
    for (int i = 0; i < 3000; ++i) {
      std::string in;
      size_t len = rng() % 64;
      if (t.versioned && rng() % 2 == 0) in = kVersion;
      while (in.size() < len) {
        in.push_back(static_cast<char>(rng() % 2 ? kMarkers[rng() % sizeof(kMarkers)] : rng()));
      }
      accepted += Check(t, in, "random input #" + std::to_string(i), false);
    }
    BOOST_TEST_MESSAGE(t.name << ": " << accepted << " of 3000 random inputs decoded");
  }
}

namespace {

// A random msgpack value shaped roughly like the states (nested arrays of
// small integers, short node-like strings, bins, booleans).
void RandomValue(std::mt19937_64& rng, int depth, Encoder* e) {
  static const char* kStrings[] = {"", "a", "us-east-1", "eu-west-1", "tags"};
  switch (depth > 5 ? rng() % 6 : rng() % 8) {
    case 0:
      e->Uint(rng() % 4);
      break;
    case 1:
      e->Uint(rng() % 3 == 0 ? rng() : rng() % 300);
      break;
    case 2:
      e->Int(-static_cast<int64_t>(rng() % 1000) - 1);
      break;
    case 3:
      e->Str(kStrings[rng() % 5]);
      break;
    case 4:
      e->Bin(std::string(rng() % 4, 'x'));
      break;
    case 5:
      rng() % 3 == 0 ? e->Nil() : e->Bool(rng() % 2 == 0);
      break;
    default: {
      uint32_t n = static_cast<uint32_t>(rng() % 5);
      e->Array(n);
      for (uint32_t i = 0; i < n; ++i) RandomValue(rng, depth + 1, e);
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(random_msgpack_values) {
  std::mt19937_64 rng(77);
  for (const Target& t : Targets()) {
    for (int i = 0; i < 1000; ++i) {
      Encoder e;
      RandomValue(rng, 0, &e);
      Check(t, Framed(t, e.bytes()), "random msgpack value #" + std::to_string(i), false);
    }
  }
}

BOOST_AUTO_TEST_CASE(single_byte_mutations) {
  std::mt19937_64 rng(4242);
  for (const Target& t : Targets()) {
    for (const Sample& s : Samples()) {
      if (s.type != t.type) continue;
      int accepted = 0;
      int refused = 0;
      auto mutate = [&](size_t pos, uint8_t value) {
        if (static_cast<uint8_t>(s.bytes[pos]) == value) return;
        std::string m = s.bytes;
        m[pos] = static_cast<char>(value);
        bool ok =
            Check(t, m, "byte " + std::to_string(pos) + " set to " + std::to_string(value), false);
        (ok ? accepted : refused)++;
      };
      // Every position with the values most likely to change a type or a
      // length, then random positions and values.
      for (size_t pos = 0; pos < s.bytes.size(); ++pos) {
        uint8_t old = static_cast<uint8_t>(s.bytes[pos]);
        for (uint8_t v : {uint8_t{0x00}, uint8_t{0xff}, uint8_t{0xc0}, uint8_t{0x90},
                          static_cast<uint8_t>(old ^ 0x80), static_cast<uint8_t>(old + 1),
                          static_cast<uint8_t>(old - 1)}) {
          mutate(pos, v);
        }
      }
      for (int i = 0; i < 300; ++i) {
        mutate(rng() % s.bytes.size(), static_cast<uint8_t>(rng()));
      }
      // Both outcomes occur, so the re-encoding checks did run.
      BOOST_TEST(accepted > 0, t.name << ": no mutation of a " << s.type << " sample decoded");
      BOOST_TEST(refused > 0, t.name << ": every mutation of a " << s.type << " sample decoded");
    }
  }
}

BOOST_AUTO_TEST_CASE(wrong_version_byte) {
  for (const Target& t : Targets()) {
    if (!t.versioned) continue;
    for (const Sample& s : Samples()) {
      if (s.type != t.type) continue;
      for (int v = 0; v < 256; ++v) {
        if (v == kStateFormatVersion) continue;
        std::string m = s.bytes;
        m[0] = static_cast<char>(v);
        CheckMustFail(t, m, "version " + std::to_string(v));
      }
      CheckMustFail(t, s.bytes.substr(1), "no version byte");
    }
    CheckMustFail(t, kVersion, "version byte alone");
  }
  ExpectChecked(20 * 256);
}

BOOST_AUTO_TEST_CASE(state_of_another_type) {
  // Every sample holds a value, so its shape identifies its type. (Bottom
  // states are ambiguous by design: "[]" is both an empty register and an
  // empty envelope; the envelope's tag is what names a type.)
  for (const Target& t : Targets()) {
    for (const Sample& s : Samples()) {
      if (s.type != t.type) CheckMustFail(t, s.bytes, "a " + s.type + " state");
    }
  }
  ExpectChecked(200);
}

namespace {

// [[tag, hlc, [node, incarnation], bin state]...] with version byte.
std::string EnvelopeBytes(const std::vector<std::pair<uint64_t, std::string>>& entries) {
  Encoder e(kStateFormatVersion);
  e.Array(static_cast<uint32_t>(entries.size()));
  for (const auto& [tag, state] : entries) {
    e.Array(4);
    e.Uint(tag);
    e.Uint(kT0);
    EncodeReplica(kA, &e);
    e.Bin(state);
  }
  return e.Take();
}

// A map holding one field of type `tag` with `store` bytes (raw msgpack),
// under a context that holds kA's dot 1.
std::string MapWithField(const Encoder& name_and_tag, std::string_view store) {
  CausalContext ctx;
  ctx.Add(Dot{kA, 1});
  Encoder e(kStateFormatVersion);
  e.Array(2);
  e.Array(1);
  e.Array(3);
  std::string out = e.Take() + name_and_tag.bytes() + std::string(store);
  Encoder c;
  ctx.Encode(&c);
  return out + c.bytes();
}

std::string FlagStoreBytes() {
  Encoder e;
  e.Array(1);
  EncodeDot(Dot{kA, 1}, &e);
  return e.Take();
}

}  // namespace

BOOST_AUTO_TEST_CASE(envelope_with_unknown_or_mismatched_tag) {
  const Target& env = EnvelopeTarget();
  const std::string counter = CounterDeleteAndConcurrentIncrement().Encode();
  const std::string set = SetWithCloud().Encode();

  // The well-formed baseline decodes, so what fails below fails for the
  // tag alone.
  BOOST_TEST_REQUIRE(Run(env, EnvelopeBytes({{Counter::kTag, counter}})).status.ok());
  for (uint64_t tag : {uint64_t{0}, uint64_t{8}, uint64_t{9}, uint64_t{10}, uint64_t{255},
                       uint64_t{256}, uint64_t{0x103}, std::numeric_limits<uint64_t>::max()}) {
    BOOST_REQUIRE(FindTypeByTag(static_cast<uint8_t>(tag)) == nullptr || tag > 255);
    CheckMustFail(env, EnvelopeBytes({{tag, counter}}), "unknown tag " + std::to_string(tag));
    CheckMustFail(env, EnvelopeBytes({{Counter::kTag, counter}, {tag, set}}),
                  "unknown tag " + std::to_string(tag) + " after a valid entry");
  }
  // A known tag over another type's state.
  CheckMustFail(env, EnvelopeBytes({{Counter::kTag, set}}), "counter tag on a set state");
  CheckMustFail(env, EnvelopeBytes({{Map::kTag, counter}}), "map tag on a counter state");
  CheckMustFail(env, EnvelopeBytes({{Register::kTag, set}}), "register tag on a set state");
  // Duplicate and descending tags are not canonical.
  CheckMustFail(env, EnvelopeBytes({{Counter::kTag, counter}, {Counter::kTag, counter}}),
                "duplicate tag");
  CheckMustFail(env, EnvelopeBytes({{Set::kTag, set}, {Counter::kTag, counter}}),
                "descending tags");
  // A tag that is not an unsigned integer.
  Encoder e(kStateFormatVersion);
  e.Array(1);
  e.Array(4);
  e.Str("counter");
  e.Uint(kT0);
  EncodeReplica(kA, &e);
  e.Bin(counter);
  CheckMustFail(env, e.bytes(), "tag as a string");
  ExpectChecked(22);
}

BOOST_AUTO_TEST_CASE(map_field_with_unknown_type_or_empty_store) {
  const std::string flag_store = FlagStoreBytes();
  auto field = [](uint64_t tag) {
    Encoder e;
    e.Str("f");
    e.Uint(tag);
    return e;
  };
  std::vector<std::string> bad;
  // Baseline: the same bytes with the flag type decode.
  std::string good = MapWithField(field(static_cast<uint64_t>(FieldType::kFlag)), flag_store);
  Map m;
  Status st = Map::Decode(good, &m);
  BOOST_TEST_REQUIRE(st.ok(), st.ToString());
  BOOST_TEST_REQUIRE(m.Values().size() == 1u);

  for (uint64_t tag :
       {uint64_t{0}, uint64_t{2}, uint64_t{5}, uint64_t{6}, uint64_t{8}, uint64_t{255},
        uint64_t{256}, uint64_t{0x107}, std::numeric_limits<uint64_t>::max()}) {
    BOOST_REQUIRE(!IsFieldType(tag));
    bad.push_back(MapWithField(field(tag), flag_store));
  }
  // A known field type over another field type's store.
  for (FieldType ft : {FieldType::kRegister, FieldType::kCounter, FieldType::kSet}) {
    bad.push_back(MapWithField(field(static_cast<uint64_t>(ft)), flag_store));
  }
  // A type that is not an unsigned integer.
  Encoder neg;
  neg.Str("f");
  neg.Int(-7);
  bad.push_back(MapWithField(neg, flag_store));
  Encoder str;
  str.Str("f");
  str.Str("flag");
  bad.push_back(MapWithField(str, flag_store));
  // A field whose store is empty is absent, and never encoded.
  for (FieldType ft : {FieldType::kRegister, FieldType::kSet, FieldType::kFlag}) {
    bad.push_back(MapWithField(field(static_cast<uint64_t>(ft)), Bytes({0x90})));
  }
  bad.push_back(MapWithField(field(static_cast<uint64_t>(FieldType::kCounter)),
                             Bytes({0x93, 0x90, 0x90, 0x90})));

  for (const Target& t : Targets()) {
    if (t.type != Map::kName) continue;
    for (size_t i = 0; i < bad.size(); ++i) {
      CheckMustFail(t, bad[i], "map field case " + std::to_string(i));
    }
  }
  // Inside an envelope too.
  const Target& env = EnvelopeTarget();
  for (size_t i = 0; i < bad.size(); ++i) {
    CheckMustFail(env, EnvelopeBytes({{Map::kTag, bad[i]}}),
                  "enveloped map field case " + std::to_string(i));
  }
  ExpectChecked(4 * 18);
}

namespace {

// Bodies (without version byte) whose headers claim far more than they
// hold, or nest far deeper than any state.
std::vector<std::pair<std::string, std::string>> HostileBodies() {
  const std::string pad(8, '\0');
  std::vector<std::pair<std::string, std::string>> out = {
      {"array32 of 2^32-1", Bytes({0xdd, 0xff, 0xff, 0xff, 0xff}) + pad},
      {"array32 of 2^32-1, nothing after", Bytes({0xdd, 0xff, 0xff, 0xff, 0xff})},
      {"array16 of 65535", Bytes({0xdc, 0xff, 0xff}) + pad},
      {"map32 of 2^32-1", Bytes({0xdf, 0xff, 0xff, 0xff, 0xff}) + pad},
      {"bin32 of 4 GiB", Bytes({0xc6, 0xff, 0xff, 0xff, 0xff}) + pad},
      {"str32 of 4 GiB", Bytes({0xdb, 0xff, 0xff, 0xff, 0xff}) + pad},
      {"ext32 of 4 GiB", Bytes({0xc9, 0xff, 0xff, 0xff, 0xff, 0x01}) + pad},
      {"bin16 of 64 KiB", Bytes({0xc5, 0xff, 0xff}) + pad},
      // Inside the causal shape [store, context].
      {"nested array32", Bytes({0x92, 0xdd, 0xff, 0xff, 0xff, 0xff}) + pad},
      {"nested array32 in context", Bytes({0x92, 0x90, 0x92, 0xdd, 0xff, 0xff, 0xff, 0xff}) + pad},
      // Inside the register shape [hlc, [node, incarnation], deleted, value].
      {"register value bin32 of 4 GiB",
       Bytes({0x94, 0x01, 0x92, 0xa1, 0x61, 0x01, 0xc2, 0xc6, 0xff, 0xff, 0xff, 0xff}) + pad},
      {"register node str32 of 4 GiB",
       Bytes({0x94, 0x01, 0x92, 0xdb, 0xff, 0xff, 0xff, 0xff}) + pad},
      // Inside the envelope shape [[tag, hlc, [node, inc], bin state]].
      {"envelope state bin32 of 4 GiB",
       Bytes({0x91, 0x94, 0x03, 0x01, 0x92, 0xa1, 0x61, 0x01, 0xc6, 0xff, 0xff, 0xff, 0xff}) + pad},
  };
  std::string deep(10'000, static_cast<char>(0x91));
  out.push_back({"10,000 nested fixarrays", deep + Bytes({0xc0})});
  std::string deep16;
  for (int i = 0; i < 10'000; ++i) deep16 += Bytes({0xdc, 0x00, 0x01});
  out.push_back({"10,000 nested array16s", deep16 + Bytes({0xc0})});
  std::string deep_map;
  for (int i = 0; i < 10'000; ++i) deep_map += Bytes({0x81, 0xc0});
  out.push_back({"10,000 nested maps", deep_map + Bytes({0xc0})});
  std::string deep_open(10'000, static_cast<char>(0x91));
  out.push_back({"10,000 nested fixarrays, unterminated", deep_open});
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(headers_that_claim_too_much_and_deep_nesting) {
  const auto bodies = HostileBodies();
  for (const Target& t : Targets()) {
    for (const auto& [what, body] : bodies) CheckMustFail(t, Framed(t, body), what);
  }
  // A valid envelope whose enveloped state is hostile: the inner decoder
  // gets its own bounds.
  const Target& env = EnvelopeTarget();
  for (const auto& [what, body] : bodies) {
    CheckMustFail(env, EnvelopeBytes({{Set::kTag, kVersion + body}}), "enveloped " + what);
  }
  ExpectChecked(20 * 17);
}

BOOST_AUTO_TEST_CASE(nesting_at_the_depth_limit) {
  // Just under the limit parses (and is then refused as the wrong shape);
  // just over it is refused by the parser. Both are Corruption.
  for (size_t depth : {kMaxDecodeDepth - 1, kMaxDecodeDepth, kMaxDecodeDepth + 1}) {
    std::string body(depth, static_cast<char>(0x91));
    body.push_back(static_cast<char>(0xc0));
    Decoder d;
    Status parsed = d.ParseRaw(body);
    BOOST_TEST(parsed.ok() == (depth <= kMaxDecodeDepth),
               "depth " << depth << ": " << parsed.ToString());
    for (const Target& t : Targets()) {
      CheckMustFail(t, Framed(t, body), "nesting depth " + std::to_string(depth));
    }
  }
  ExpectChecked(3 * 20);
}

BOOST_AUTO_TEST_CASE(trailing_bytes) {
  for (const Target& t : Targets()) {
    for (const Sample& s : Samples()) {
      if (s.type != t.type) continue;
      for (const std::string& extra :
           {Bytes({0x00}), Bytes({0xc0}), Bytes({0x90}), kVersion, s.bytes}) {
        CheckMustFail(t, s.bytes + extra, "sample plus " + Hex(extra));
      }
    }
  }
  ExpectChecked(20 * 5);
}
