// Fuzz target: one WebSocket client message of the live text stream
// (node/text_stream.h ParseClientMessage, what TextStreamHub::Receive
// runs): JSON -> base64url -> crdt::Text::Decode.
//
// Properties of whatever is accepted: the delta re-encodes to bytes that
// decode to an equal text and re-encode the same; the message rebuilt
// from its seq and those bytes is accepted with the same seq and text;
// the delta merged with itself is unchanged. A refused message always
// says why.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "crdt/text.h"
#include "node/operation.h"
#include "node/text_stream.h"
#include "tests/fuzz/fuzz_check.h"

using namespace meridian;
using nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string message(reinterpret_cast<const char*>(data), size);
  node::ClientOps ops;
  std::string error;
  if (!node::ParseClientMessage(message, &ops, &error)) {
    FUZZ_CHECK(!error.empty());
    FUZZ_CHECK(ops.seq.is_null() || ops.seq.is_number_unsigned());
    return 0;
  }
  FUZZ_CHECK(ops.seq.is_number_unsigned());
  const std::string e = ops.delta.Encode();
  crdt::Text again;
  FUZZ_CHECK(crdt::Text::Decode(e, &again).ok());
  FUZZ_CHECK(again == ops.delta);
  FUZZ_CHECK(again.Encode() == e);

  std::string unpacked;
  FUZZ_CHECK(node::UnBase64Url(node::Base64Url(e), &unpacked));
  FUZZ_CHECK(unpacked == e);
  const std::string rebuilt = json{{"type", "ops"}, {"seq", ops.seq}, {"state", node::Base64Url(e)}}.dump();
  node::ClientOps ops2;
  FUZZ_CHECK(node::ParseClientMessage(rebuilt, &ops2, &error));
  FUZZ_CHECK(ops2.seq == ops.seq);
  FUZZ_CHECK(ops2.delta == ops.delta);
  FUZZ_CHECK(ops2.bytes == e);

  crdt::Text self = ops.delta;
  self.Merge(ops.delta);
  FUZZ_CHECK(self == ops.delta);
  return 0;
}
