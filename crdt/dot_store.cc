#include "crdt/dot_store.h"

namespace meridian::crdt {

DotSet JoinDotSets(const DotSet& a, const CausalContext& ca, const DotSet& b,
                   const CausalContext& cb) {
  DotSet out;
  auto ia = a.begin();
  auto ib = b.begin();
  while (ia != a.end() || ib != b.end()) {
    if (ib == b.end() || (ia != a.end() && *ia < *ib)) {
      if (!cb.Contains(*ia)) out.insert(out.end(), *ia);
      ++ia;
    } else if (ia == a.end() || *ib < *ia) {
      if (!ca.Contains(*ib)) out.insert(out.end(), *ib);
      ++ib;
    } else {
      out.insert(out.end(), *ia);
      ++ia;
      ++ib;
    }
  }
  return out;
}

}  // namespace meridian::crdt
