// The join of causal ("dotted") stores under their causal contexts
// (Almeida, Shoker, Baquero, "Delta state replicated data types", 2018).
//
// A causal state is a store of dots plus the context of dots it has seen.
// Joining (s1, c1) with (s2, c2) keeps a dot when both stores hold it, or
// when one store holds it and the other side has never seen it. A dot one
// side has seen but no longer holds was removed there, and stays removed.
// This is what makes removes observed-removes: a remove deletes exactly the
// dots it had seen, and a concurrent add (a dot the remover never saw)
// survives.
#ifndef MERIDIAN_CRDT_DOT_STORE_H_
#define MERIDIAN_CRDT_DOT_STORE_H_

#include <map>

#include "crdt/causal_context.h"

namespace meridian::crdt {

// DotSet join.
DotSet JoinDotSets(const DotSet& a, const CausalContext& ca, const DotSet& b,
                   const CausalContext& cb);

// DotFun join: a map from dot to a value written with that dot. A dot is
// written once, so both sides hold the same value for a common dot; if
// corrupt input ever made them differ, the greater value is kept so the
// join stays deterministic.
template <class V>
std::map<Dot, V> JoinDotFuns(const std::map<Dot, V>& a, const CausalContext& ca,
                             const std::map<Dot, V>& b, const CausalContext& cb) {
  std::map<Dot, V> out;
  auto ia = a.begin();
  auto ib = b.begin();
  while (ia != a.end() || ib != b.end()) {
    if (ib == b.end() || (ia != a.end() && ia->first < ib->first)) {
      if (!cb.Contains(ia->first)) out.emplace_hint(out.end(), *ia);
      ++ia;
    } else if (ia == a.end() || ib->first < ia->first) {
      if (!ca.Contains(ib->first)) out.emplace_hint(out.end(), *ib);
      ++ib;
    } else {
      out.emplace_hint(out.end(), ia->first, ia->second < ib->second ? ib->second : ia->second);
      ++ia;
      ++ib;
    }
  }
  return out;
}

// Joins two keyed collections of nested stores: `join(x, y)` for every key
// of either side (a side without the key contributes S{}), keeping the
// results for which `keep(result)` holds. Walks both in order: O(n + m)
// joins.
template <class K, class S, class JoinFn, class KeepFn>
std::map<K, S> JoinKeyed(const std::map<K, S>& a, const std::map<K, S>& b, JoinFn join,
                         KeepFn keep) {
  static const S kEmpty{};
  std::map<K, S> out;
  auto ia = a.begin();
  auto ib = b.begin();
  while (ia != a.end() || ib != b.end()) {
    const K* key;
    const S* sa = &kEmpty;
    const S* sb = &kEmpty;
    if (ib == b.end() || (ia != a.end() && ia->first < ib->first)) {
      key = &ia->first;
      sa = &ia->second;
      ++ia;
    } else if (ia == a.end() || ib->first < ia->first) {
      key = &ib->first;
      sb = &ib->second;
      ++ib;
    } else {
      key = &ia->first;
      sa = &ia->second;
      sb = &ib->second;
      ++ia;
      ++ib;
    }
    S joined = join(*key, *sa, *sb);
    if (keep(joined)) out.emplace_hint(out.end(), *key, std::move(joined));
  }
  return out;
}

// Adds every dot of a DotFun to `out`.
template <class V>
void CollectDots(const std::map<Dot, V>& fun, DotSet* out) {
  for (const auto& entry : fun) out->insert(entry.first);
}

}  // namespace meridian::crdt

#endif  // MERIDIAN_CRDT_DOT_STORE_H_
