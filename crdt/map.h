// map: an observed-remove map (Riak map semantics). A field is identified
// by (name, type) and holds the causal form of a register, counter, set or
// flag, all sharing the map's one causal context. Removing a field removes
// only the dots it has seen, so an update concurrent with the remove
// survives — alone: a concurrent increment or add is all that is left of
// the field, not the state the remover saw.
//
// A name may hold fields of several types after concurrent first updates
// of different types; each is kept and read on its own.
#ifndef MERIDIAN_CRDT_MAP_H_
#define MERIDIAN_CRDT_MAP_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <variant>
#include <vector>

#include "crdt/causal.h"
#include "crdt/counter.h"
#include "crdt/flag.h"
#include "crdt/hlc.h"
#include "crdt/register.h"
#include "crdt/set.h"

namespace meridian::crdt {

constexpr size_t kMaxMapFieldNameBytes = 1024;

// Field types use the wire tags of the top-level types they mirror.
enum class FieldType : uint8_t {
  kRegister = 1,
  kCounter = 3,
  kSet = 4,
  kFlag = 7,
};
bool IsFieldType(uint64_t tag);
std::string_view FieldTypeName(FieldType t);

struct FieldKey {
  std::string name;
  FieldType type = FieldType::kRegister;
  bool operator<(const FieldKey& o) const {
    return std::tie(name, type) < std::tie(o.name, o.type);
  }
  bool operator==(const FieldKey& o) const { return name == o.name && type == o.type; }
};

using FieldStore = std::variant<DottedRegisterStore, CounterStore, SetStore, FlagStore>;

// One update of one field, as the API describes it: register `set`,
// counter `add`, set `sadd`/`srem`, flag `enable`/`disable`.
struct FieldOp {
  std::string name;
  FieldType type = FieldType::kRegister;
  std::string value;                 // register: the value to set
  int64_t add = 0;                   // counter: amount (may be negative)
  std::vector<std::string> sadd;     // set: elements to add
  std::vector<std::string> srem;     // set: elements to remove
  bool enable = true;                // flag: enable or disable
};

// A field's readable value.
struct FieldValue {
  FieldType type = FieldType::kRegister;
  std::string reg;                    // register
  Hlc reg_hlc = 0;                    // register: the winning write's HLC
  int64_t counter = 0;                // counter
  std::vector<std::string> elements;  // set
  bool flag = false;                  // flag
  bool operator==(const FieldValue& o) const {
    return type == o.type && reg == o.reg && reg_hlc == o.reg_hlc && counter == o.counter &&
           elements == o.elements && flag == o.flag;
  }
};

struct MapStore {
  std::map<FieldKey, FieldStore> fields;

  // Present fields and their values, ascending by (name, type).
  std::map<FieldKey, FieldValue> Values() const;

  static MapStore Join(const MapStore& a, const CausalContext& ca, const MapStore& b,
                       const CausalContext& cb);
  bool IsBottom() const { return fields.empty(); }
  bool HasValue() const;  // some field is present
  void CollectDots(DotSet* out) const;
  MapStore RemoveDelta() const;
  // Encoding: [[str name, uint type, field store]...] ascending by
  // (name, type).
  void Encode(Encoder* e) const;
  static Status Decode(const Cursor& c, MapStore* out);
  bool operator==(const MapStore& o) const { return fields == o.fields; }
};

class Map : public Causal<MapStore> {
 public:
  static constexpr uint8_t kTag = 5;  // wire tag; DO NOT CHANGE
  static constexpr std::string_view kName = "map";

  std::map<FieldKey, FieldValue> Values() const { return store_.Values(); }

  // One update: removes every field named in `remove` (all types, the dots
  // seen), then applies `ops` in order; an op on a name also being removed
  // survives the removal. Register writes take `hlc`.
  Status Update(const ReplicaId& replica, Hlc hlc, const std::vector<FieldOp>& ops,
                const std::vector<std::string>& remove, Map* delta) const;
  Map Delete() const;

  static Status Decode(std::string_view bytes, Map* out) { return DecodeAs(bytes, out); }
};

}  // namespace meridian::crdt

#endif  // MERIDIAN_CRDT_MAP_H_
