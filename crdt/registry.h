// The type registry: one entry per CRDT type, keyed by a stable wire tag,
// so that storage and gossip merge, check and render states as bytes
// without ever switching on the type. Adding a type is one file pair in
// crdt/ and one line in registry.cc.
//
// Wire tags reach disk and the network. DO NOT CHANGE or reuse a tag.
#ifndef MERIDIAN_CRDT_REGISTRY_H_
#define MERIDIAN_CRDT_REGISTRY_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/status.h"

namespace meridian::crdt {

struct TypeOps {
  uint8_t tag;
  std::string_view name;
  // Joins two encoded states into *out (canonical bytes).
  Status (*merge)(std::string_view a, std::string_view b, std::string* out);
  // Decodes and re-encodes: OK with canonical bytes, or why the bytes are
  // not a valid state.
  Status (*canonicalize)(std::string_view bytes, std::string* out);
  // The encoding of the empty state (the join's bottom).
  std::string (*empty)();
  // True when the encoded state is the join's bottom (holds nothing).
  Status (*is_bottom)(std::string_view bytes, bool* out);
  // True when a reader sees a value (false: never written, or deleted).
  Status (*has_value)(std::string_view bytes, bool* out);
};

// nullptr for an unknown tag or name.
const TypeOps* FindTypeByTag(uint8_t tag);
const TypeOps* FindTypeByName(std::string_view name);
// True when a state of type `tag` shows a reader a value; false for an
// unknown tag or bytes that do not decode.
bool StateHasValue(uint8_t tag, std::string_view state);
// Every registered type, ascending by tag.
const std::vector<const TypeOps*>& AllTypes();

}  // namespace meridian::crdt

#endif  // MERIDIAN_CRDT_REGISTRY_H_
