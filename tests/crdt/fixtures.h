// States that several crdt test suites build the same way.
#ifndef MERIDIAN_TESTS_CRDT_FIXTURES_H_
#define MERIDIAN_TESTS_CRDT_FIXTURES_H_

#include <vector>

#include "crdt/map.h"

namespace meridian::crdt::testing {

// A map with one field of each nested type, written in one update by
// `replica` at `hlc`: title (register "Hello"), views (counter 42), tags
// (set {crdt, geo}) and published (flag, enabled).
inline Status MapWithEveryFieldType(const ReplicaId& replica, Hlc hlc, Map* out) {
  std::vector<FieldOp> ops(4);
  ops[0].name = "title";
  ops[0].type = FieldType::kRegister;
  ops[0].value = "Hello";
  ops[1].name = "views";
  ops[1].type = FieldType::kCounter;
  ops[1].add = 42;
  ops[2].name = "tags";
  ops[2].type = FieldType::kSet;
  ops[2].sadd = {"crdt", "geo"};
  ops[3].name = "published";
  ops[3].type = FieldType::kFlag;
  ops[3].enable = true;
  Map m, d;
  MERIDIAN_RETURN_IF_ERROR(m.Update(replica, hlc, ops, {}, &d));
  m.Merge(d);
  *out = std::move(m);
  return Status::OK();
}

}  // namespace meridian::crdt::testing

#endif  // MERIDIAN_TESTS_CRDT_FIXTURES_H_
