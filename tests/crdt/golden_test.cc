// Golden wire vectors: the canonical encoding of fixed, hand-built states
// of every type, checked in as hex under tests/golden/ (one file per type,
// one `name hex` line per state, `#` comments). Encodings reach disk and
// the network, so any change to these bytes is a format change: it needs
// a new kStateFormatVersion (crdt/causal.h) and a decoder for the old one.
//
// Each state is built in code with fixed replica ids and HLCs; the test
// requires its encoding to equal the checked-in bytes, and the checked-in
// bytes to decode to that same state and re-encode to themselves. On a
// mismatch it prints the new line.
//
// To regenerate after an intended format change (then review the diff of
// tests/golden/ by eye before committing it):
//   MERIDIAN_UPDATE_GOLDEN=1 <build dir>/tests/golden_test
//
// The directory comes from MERIDIAN_GOLDEN_DIR (ctest sets it), else from
// this file's location in the source tree.
#define BOOST_TEST_MODULE golden
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
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

namespace {

// Fixed identities and times: nothing here may depend on a clock or on
// the order of anything but the code below.
const ReplicaId kEast{"us-east-1", 1};
const ReplicaId kWest{"eu-west-1", 2};
constexpr Hlc kT0 = MakeHlc(1732550400000, 0);  // 2024-11-25T16:00:00Z

void Ok(const Status& s) { BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString()); }

// One checked-in vector.
struct Vector {
  std::string name;
  std::string encoded;  // the encoding of the state built in code
  // Decodes checked-in bytes: on success *reencoded is their encoding and
  // *same whether they are the state built in code.
  std::function<Status(std::string_view, std::string*, bool*)> decode;
};

template <class T>
Vector Of(std::string name, const T& state) {
  return Vector{std::move(name), state.Encode(),
                [state](std::string_view bytes, std::string* reencoded, bool* same) {
                  T decoded;
                  MERIDIAN_RETURN_IF_ERROR(T::Decode(bytes, &decoded));
                  *reencoded = decoded.Encode();
                  *same = decoded == state;
                  return Status::OK();
                }};
}

// A causal context has no version byte of its own: it is encoded as it is
// nested inside every causal state.
Vector OfContext(std::string name, const CausalContext& ctx) {
  Encoder e;
  ctx.Encode(&e);
  return Vector{std::move(name), e.Take(),
                [ctx](std::string_view bytes, std::string* reencoded, bool* same) {
                  Decoder d;
                  MERIDIAN_RETURN_IF_ERROR(d.ParseRaw(bytes));
                  CausalContext decoded;
                  MERIDIAN_RETURN_IF_ERROR(CausalContext::Decode(d.root(), &decoded));
                  Encoder out;
                  decoded.Encode(&out);
                  *reencoded = out.Take();
                  *same = decoded == ctx;
                  return Status::OK();
                }};
}

// --- The states ------------------------------------------------------------

std::vector<Vector> RegisterVectors() {
  Register set, d;
  Ok(set.Set(kT0 + 1, kEast, "hello", &d));
  set.Merge(d);
  Register tombstone = set;
  Ok(tombstone.Delete(kT0 + 2, kWest, &d));
  tombstone.Merge(d);
  BOOST_REQUIRE(tombstone.deleted());
  return {Of("set", set), Of("tombstone", tombstone), Of("empty", Register())};
}

MvRegister TwoSiblings() {
  MvRegister east, west, d;
  Ok(east.Write(kEast, kT0 + 5, "red", nullptr, &d));
  east.Merge(d);
  Ok(west.Write(kWest, kT0 + 3, "blue", nullptr, &d));
  west.Merge(d);
  east.Merge(west);
  BOOST_REQUIRE_EQUAL(east.siblings().size(), 2u);
  return east;
}

std::vector<Vector> MvRegisterVectors() { return {Of("two_siblings", TwoSiblings())}; }

Counter TwoReplicas() {
  Counter east, west, d;
  Ok(east.Increment(kEast, 5, &d));
  east.Merge(d);
  Ok(east.Increment(kEast, 2, &d));
  east.Merge(d);
  Ok(west.Increment(kWest, -3, &d));
  west.Merge(d);
  east.Merge(west);
  BOOST_REQUIRE_EQUAL(east.Value(), 4);
  return east;
}

// East deletes what it has seen while west, concurrently, adds 10: only
// west's increment survives.
Counter DeleteThenConcurrentIncrement() {
  Counter east = TwoReplicas();
  Counter west = east;
  east.Merge(east.Delete());
  Counter d;
  Ok(west.Increment(kWest, 10, &d));
  west.Merge(d);
  east.Merge(west);
  BOOST_REQUIRE_EQUAL(east.Value(), 10);
  return east;
}

std::vector<Vector> CounterVectors() {
  return {Of("two_replicas", TwoReplicas()),
          Of("delete_then_concurrent_increment", DeleteThenConcurrentIncrement())};
}

Set AddsAndRemoves() {
  Set east, west, d;
  Ok(east.Update(kEast, {"apple", "banana", "cherry"}, {}, &d));
  east.Merge(d);
  west.Merge(east);
  Ok(west.Remove("banana", &d));
  west.Merge(d);
  Ok(east.Update(kEast, {"date"}, {"cherry"}, &d));
  east.Merge(d);
  east.Merge(west);
  BOOST_REQUIRE(east.Values() == (std::vector<std::string>{"apple", "date"}));
  return east;
}

std::vector<Vector> SetVectors() { return {Of("adds_and_removes", AddsAndRemoves())}; }

std::vector<Vector> FlagVectors() {
  Flag enabled;
  enabled.Merge(enabled.Enable(kEast));
  Flag disabled = enabled;
  disabled.Merge(disabled.Disable());
  BOOST_REQUIRE(enabled.enabled());
  BOOST_REQUIRE(!disabled.enabled());
  return {Of("enabled", enabled), Of("disabled", disabled)};
}

Map FourFieldTypes() {
  Map m;
  Ok(meridian::crdt::testing::MapWithEveryFieldType(kEast, kT0 + 3, &m));
  BOOST_REQUIRE_EQUAL(m.Values().size(), 4u);
  return m;
}

std::vector<Vector> MapVectors() { return {Of("four_field_types", FourFieldTypes())}; }

// East first-wrote a counter, west concurrently a set, one millisecond
// earlier: the set wins and the counter is kept as the loser.
Envelope TypeConflict() {
  Envelope east, west;
  Ok(Envelope::Of(Counter::kTag, kT0 + MakeHlc(1, 0), kEast, TwoReplicas().Encode(), &east));
  Ok(Envelope::Of(Set::kTag, kT0, kWest, AddsAndRemoves().Encode(), &west));
  std::vector<TypedState> lost;
  Ok(east.Merge(west, &lost));
  BOOST_REQUIRE(east.winner() != nullptr && east.winner()->tag == Set::kTag);
  BOOST_REQUIRE_EQUAL(lost.size(), 1u);
  return east;
}

std::vector<Vector> TextVectors() {
  namespace t = meridian::crdt::testing;
  Text concurrent, waiting, twice, page;
  Ok(t::TextConcurrent(kEast, kWest, &concurrent));
  Ok(t::TextWaiting(kEast, kWest, &waiting));
  Ok(t::TextDeletedTwice(kEast, kWest, &twice));
  Ok(t::TextPage(kEast, kWest, &page));
  return {Of("concurrent", concurrent), Of("waiting", waiting), Of("deleted_twice", twice),
          Of("packed_page", page), Of("empty", Text())};
}

std::vector<Vector> EnvelopeVectors() { return {Of("type_conflict", TypeConflict())}; }

// Replica east has 1..3; west has 1..2 and 5 (4 not yet seen).
std::vector<Vector> CausalContextVectors() {
  CausalContext ctx;
  for (uint64_t n : {1, 2, 3}) ctx.Add(Dot{kEast, n});
  for (uint64_t n : {1, 2, 5}) ctx.Add(Dot{kWest, n});
  BOOST_REQUIRE_EQUAL(ctx.vv().size(), 2u);
  BOOST_REQUIRE_EQUAL(ctx.cloud().size(), 1u);
  return {OfContext("vv_and_cloud", ctx)};
}

// --- Files -------------------------------------------------------------------

std::filesystem::path GoldenDir() {
  if (const char* dir = std::getenv("MERIDIAN_GOLDEN_DIR"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  return std::filesystem::path(__FILE__).parent_path().parent_path() / "golden";
}

bool UpdateMode() {
  const char* v = std::getenv("MERIDIAN_UPDATE_GOLDEN");
  return v != nullptr && std::string_view(v) == "1";
}

std::string Line(const Vector& v) { return v.name + " " + ToHex(v.encoded); }

// name -> hex of a golden file; fails the test on a malformed line.
std::map<std::string, std::string> ReadGolden(const std::filesystem::path& path) {
  std::ifstream in(path);
  BOOST_REQUIRE_MESSAGE(in.good(), "cannot read " << path
                                                  << " (run with MERIDIAN_UPDATE_GOLDEN=1 to "
                                                     "create it)");
  std::map<std::string, std::string> out;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    size_t start = line.find_first_not_of(" \t\r");
    if (start == std::string::npos || line[start] == '#') continue;
    std::istringstream fields(line.substr(start));
    std::string name, hex, extra;
    fields >> name >> hex >> extra;
    BOOST_REQUIRE_MESSAGE(!hex.empty() && extra.empty(),
                          path << ":" << number << ": expected `name hex`");
    BOOST_REQUIRE_MESSAGE(out.emplace(name, hex).second,
                          path << ":" << number << ": duplicate vector " << name);
  }
  return out;
}

void WriteGolden(const std::filesystem::path& path, std::string_view type,
                 const std::vector<Vector>& vectors) {
  std::ofstream out(path, std::ios::trunc);
  BOOST_REQUIRE_MESSAGE(out.good(), "cannot write " << path);
  out << "# Golden wire vectors for " << type << ", checked by tests/crdt/golden_test.cc.\n"
      << "# Each line: name, then the canonical encoding in hex. A change here is a\n"
      << "# wire format change; regenerate with MERIDIAN_UPDATE_GOLDEN=1 only on purpose.\n";
  for (const Vector& v : vectors) out << Line(v) << "\n";
  BOOST_REQUIRE_MESSAGE(out.good(), "cannot write " << path);
}

void CheckGolden(const std::string& file, std::string_view type,
                 const std::vector<Vector>& vectors) {
  const std::filesystem::path path = GoldenDir() / file;
  if (UpdateMode()) {
    WriteGolden(path, type, vectors);
    BOOST_TEST_MESSAGE("rewrote " << path);
    return;
  }
  std::map<std::string, std::string> golden = ReadGolden(path);
  for (const Vector& v : vectors) {
    BOOST_TEST_CONTEXT(file << " " << v.name) {
      auto it = golden.find(v.name);
      if (it == golden.end()) {
        BOOST_ERROR("missing from " << path << "; new line:\n" << Line(v));
        continue;
      }
      std::string bytes;
      BOOST_TEST_REQUIRE(FromHex(it->second, &bytes), "not hex: " << it->second);
      // Encoding the state built in code gives the checked-in bytes.
      BOOST_TEST(bytes == v.encoded, "encoding changed; checked in:\n"
                                         << it->second << "\nnow:\n"
                                         << Line(v));
      // And the checked-in bytes decode to that state and re-encode to
      // themselves, so old bytes stay readable.
      std::string reencoded;
      bool same = false;
      Status st = v.decode(bytes, &reencoded, &same);
      BOOST_TEST(st.ok(), "checked-in bytes do not decode: " << st.ToString());
      if (st.ok()) {
        BOOST_TEST(same, "checked-in bytes decode to a different state");
        BOOST_TEST(reencoded == bytes, "checked-in bytes re-encode as " << ToHex(reencoded));
      }
      golden.erase(it);
    }
  }
  for (const auto& [name, hex] : golden) {
    BOOST_ERROR(path << " holds vector `" << name << "`, which the test no longer builds");
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(register_vectors) {
  CheckGolden("register.hex", Register::kName, RegisterVectors());
}

BOOST_AUTO_TEST_CASE(mvregister_vectors) {
  CheckGolden("mvregister.hex", MvRegister::kName, MvRegisterVectors());
}

BOOST_AUTO_TEST_CASE(counter_vectors) {
  CheckGolden("counter.hex", Counter::kName, CounterVectors());
}

BOOST_AUTO_TEST_CASE(set_vectors) { CheckGolden("set.hex", Set::kName, SetVectors()); }

BOOST_AUTO_TEST_CASE(flag_vectors) { CheckGolden("flag.hex", Flag::kName, FlagVectors()); }

BOOST_AUTO_TEST_CASE(map_vectors) { CheckGolden("map.hex", Map::kName, MapVectors()); }

BOOST_AUTO_TEST_CASE(text_vectors) { CheckGolden("text.hex", Text::kName, TextVectors()); }

BOOST_AUTO_TEST_CASE(envelope_vectors) {
  CheckGolden("envelope.hex", "envelope", EnvelopeVectors());
}

BOOST_AUTO_TEST_CASE(causal_context_vectors) {
  CheckGolden("causal_context.hex", "causal contexts (nested form, no version byte)",
              CausalContextVectors());
}

BOOST_AUTO_TEST_CASE(every_registered_type_has_a_golden_file) {
  // A new type needs a vector file (STYLE.md): this fails until it has one.
  for (const TypeOps* ops : AllTypes()) {
    std::filesystem::path path = GoldenDir() / (std::string(ops->name) + ".hex");
    BOOST_TEST(std::filesystem::exists(path),
               "no golden vectors for " << ops->name << " at " << path);
  }
}
