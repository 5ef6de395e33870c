// Fuzz target: the gossip frame decoder (gossip/messages.h Decode).
// Properties of whatever decodes: the re-encoding decodes to an equal
// message, and that message re-encodes to the same bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "gossip/messages.h"
#include "tests/fuzz/fuzz_check.h"

using namespace meridian;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  gossip::Message m;
  if (!gossip::Decode(bytes, &m).ok()) return 0;
  const std::string e = gossip::Encode(m);
  gossip::Message again;
  FUZZ_CHECK(gossip::Decode(e, &again).ok());
  FUZZ_CHECK(again == m);
  FUZZ_CHECK(gossip::Encode(again) == e);
  return 0;
}
