// Fuzz target: every CRDT state and delta decoder (a delta is a state).
// The first byte picks the decoder: byte % 10 is the registry's wire tag
// minus one for 0..6 (register, mvregister, counter, set, map, text,
// flag: crdt/registry.h), 7 for crdt::Envelope::Decode, 8 for the
// envelope's DecodeStored, 9 for crdt::TextVersion; the rest is the bytes.
//
// Properties of whatever decodes: decode -> encode -> decode gives an
// equal value that re-encodes to the same bytes; the registry's
// canonicalize is a fixpoint and agrees with the typed codec; merging a
// state with itself or with the type's bottom changes nothing (the
// registry's merge); an envelope merged with itself is unchanged and
// reports no lost state.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/counter.h"
#include "crdt/envelope.h"
#include "crdt/flag.h"
#include "crdt/map.h"
#include "crdt/mvregister.h"
#include "crdt/register.h"
#include "crdt/registry.h"
#include "crdt/set.h"
#include "crdt/text.h"
#include "tests/fuzz/fuzz_check.h"

using namespace meridian;
using namespace meridian::crdt;

namespace {

template <class T>
void Typed(std::string_view bytes) {
  T x;
  if (!T::Decode(bytes, &x).ok()) {
    // The registry refuses what the typed codec refuses.
    std::string out;
    FUZZ_CHECK(!FindTypeByTag(T::kTag)->canonicalize(bytes, &out).ok());
    return;
  }
  const std::string e = x.Encode();
  T y;
  FUZZ_CHECK(T::Decode(e, &y).ok());
  FUZZ_CHECK(y == x);
  FUZZ_CHECK(y.Encode() == e);

  const TypeOps* ops = FindTypeByTag(T::kTag);
  FUZZ_CHECK(ops != nullptr);
  std::string c1, c2, m;
  FUZZ_CHECK(ops->canonicalize(bytes, &c1).ok());
  FUZZ_CHECK(c1 == e);
  FUZZ_CHECK(ops->canonicalize(c1, &c2).ok());
  FUZZ_CHECK(c2 == c1);
  // Idempotence: x ⊔ x = x, and the bottom is the identity.
  FUZZ_CHECK(ops->merge(bytes, bytes, &m).ok());
  FUZZ_CHECK(m == e);
  FUZZ_CHECK(ops->merge(e, ops->empty(), &m).ok());
  FUZZ_CHECK(m == e);
  FUZZ_CHECK(ops->merge(ops->empty(), e, &m).ok());
  FUZZ_CHECK(m == e);
  // The registry's other readers accept whatever decodes.
  bool bottom = false, has_value = false;
  FUZZ_CHECK(ops->is_bottom(e, &bottom).ok());
  FUZZ_CHECK(ops->has_value(e, &has_value).ok());
  FUZZ_CHECK(ops->is_bottom(ops->empty(), &bottom).ok() && bottom);
}

void OfEnvelope(std::string_view bytes, bool stored) {
  Envelope x;
  Status st = stored ? Envelope::DecodeStored(bytes, &x) : Envelope::Decode(bytes, &x);
  if (!st.ok()) return;
  const std::string e = x.Encode();
  Envelope y;
  FUZZ_CHECK(Envelope::DecodeStored(e, &y).ok());
  FUZZ_CHECK(y == x);
  FUZZ_CHECK(y.Encode() == e);
  if (stored) {
    // States were not checked: merging may fail on a corrupt one, and must
    // then leave the envelope unchanged.
    Envelope z = x;
    std::vector<TypedState> lost;
    if (!z.Merge(x, &lost).ok()) {
      FUZZ_CHECK(z == x);
      return;
    }
    FUZZ_CHECK(z == x);
    FUZZ_CHECK(lost.empty());
    return;
  }
  Envelope v;
  FUZZ_CHECK(Envelope::Decode(e, &v).ok());
  FUZZ_CHECK(v == x);
  for (const auto& [tag, ts] : x.entries()) {
    const TypeOps* ops = FindTypeByTag(tag);
    FUZZ_CHECK(ops != nullptr);
    std::string c;
    FUZZ_CHECK(ops->canonicalize(ts.state, &c).ok());
    FUZZ_CHECK(c == ts.state);
  }
  Envelope z = x;
  std::vector<TypedState> lost;
  FUZZ_CHECK(z.Merge(x, &lost).ok());
  FUZZ_CHECK(z == x);
  FUZZ_CHECK(lost.empty());
  Envelope empty;
  FUZZ_CHECK(empty.Merge(x, nullptr).ok());
  FUZZ_CHECK(empty == x);
}

void OfTextVersion(std::string_view bytes) {
  TextVersion x;
  if (!TextVersion::Decode(bytes, &x).ok()) return;
  const std::string e = x.Encode();
  TextVersion y;
  FUZZ_CHECK(TextVersion::Decode(e, &y).ok());
  FUZZ_CHECK(y == x);
  FUZZ_CHECK(y.Encode() == e);
  TextVersion z = x;
  z.Merge(x);
  FUZZ_CHECK(z == x);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 10) {
    case 0: Typed<Register>(bytes); break;
    case 1: Typed<MvRegister>(bytes); break;
    case 2: Typed<Counter>(bytes); break;
    case 3: Typed<Set>(bytes); break;
    case 4: Typed<Map>(bytes); break;
    case 5: Typed<Text>(bytes); break;
    case 6: Typed<Flag>(bytes); break;
    case 7: OfEnvelope(bytes, false); break;
    case 8: OfEnvelope(bytes, true); break;
    case 9: OfTextVersion(bytes); break;
  }
  return 0;
}
