// States that several crdt test suites build the same way.
#ifndef MERIDIAN_TESTS_CRDT_FIXTURES_H_
#define MERIDIAN_TESTS_CRDT_FIXTURES_H_

#include <vector>

#include "crdt/map.h"
#include "crdt/text.h"

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

// Text states that exercise every part of the text encoding, built by
// replicas `a` and `b` (see crdt/text.h). Each returns non-OK if an edit
// fails.

// Both typed concurrently at the start ("héllo " and "wörld"), then `a`
// merged `b` and deleted two characters: runs of two replicas, a
// tombstone, non-ASCII text; small enough to stay unpacked.
inline Status TextConcurrent(const ReplicaId& a, const ReplicaId& b, Text* out) {
  Text ta, tb, d;
  MERIDIAN_RETURN_IF_ERROR(ta.Insert(a, 0, "h\xc3\xa9llo ", &d));
  MERIDIAN_RETURN_IF_ERROR(tb.Insert(b, 0, "w\xc3\xb6rld", &d));
  ta.Merge(tb);
  MERIDIAN_RETURN_IF_ERROR(ta.Delete(a, 1, 2, &d));
  *out = std::move(ta);
  return Status::OK();
}

// `b` holds a character whose left origin it has not got (it waits), and
// a delete of a character it has not got (it waits too).
inline Status TextWaiting(const ReplicaId& a, const ReplicaId& b, Text* out) {
  Text ta, tb, first, second, del;
  MERIDIAN_RETURN_IF_ERROR(ta.Insert(a, 0, "ab", &first));
  MERIDIAN_RETURN_IF_ERROR(ta.Insert(a, 2, "c", &second));
  MERIDIAN_RETURN_IF_ERROR(ta.Delete(a, 0, 1, &del));
  MERIDIAN_RETURN_IF_ERROR(tb.Insert(b, 0, "z", nullptr));
  tb.Merge(second);
  tb.Merge(del);
  if (tb.PendingCount() != 2) return Status::FailedPrecondition("expected two waiting edits");
  *out = std::move(tb);
  return Status::OK();
}

// One character deleted by both replicas concurrently: a second delete.
inline Status TextDeletedTwice(const ReplicaId& a, const ReplicaId& b, Text* out) {
  Text ta, d;
  MERIDIAN_RETURN_IF_ERROR(ta.Insert(a, 0, "xyz", &d));
  Text tb = ta;
  MERIDIAN_RETURN_IF_ERROR(ta.Delete(a, 1, 1, &d));
  MERIDIAN_RETURN_IF_ERROR(tb.Delete(b, 1, 1, &d));
  ta.Merge(tb);
  *out = std::move(ta);
  return Status::OK();
}

// A page of text typed, edited backwards and forwards and at an older
// version: large enough to be packed (deflate).
inline Status TextPage(const ReplicaId& a, const ReplicaId& b, Text* out) {
  Text t, d;
  std::string line = "The quick brown fox jumps over the lazy dog. ";
  for (int i = 0; i < 20; ++i) {
    MERIDIAN_RETURN_IF_ERROR(t.Insert(a, t.Length(), line, &d));
    MERIDIAN_RETURN_IF_ERROR(t.Delete(a, t.Length() - 5, 3, &d));
  }
  const TextVersion old = t.version();
  MERIDIAN_RETURN_IF_ERROR(t.Insert(a, 10, "[a]", &d));
  std::vector<TextEdit> edits(2);
  edits[0].pos = 10;
  edits[0].text = "[b]";
  edits[1].insert = false;
  edits[1].pos = 100;
  edits[1].len = 7;
  MERIDIAN_RETURN_IF_ERROR(t.Apply(b, &old, edits, &d));
  *out = std::move(t);
  return Status::OK();
}

}  // namespace meridian::crdt::testing

#endif  // MERIDIAN_TESTS_CRDT_FIXTURES_H_
