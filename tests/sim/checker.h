// What must hold after a simulated run healed and went quiet (the issue's
// checker):
//   - every node holds byte-identical states for every key (and the same
//     applied vector);
//   - counters: the value is the sum of the acknowledged increments plus
//     some subset of the unacknowledged ones (and, since the simulator
//     knows which unacknowledged ones were committed, exactly the sum of
//     the committed ones);
//   - sets (add-wins): an element is present exactly when some committed
//     add of it was seen by no committed remove, so every acknowledged add
//     that no remove saw is present, and nothing refused, failed or lost
//     in a crash ever shows;
//   - registers: the value is at or after the greatest acknowledged write
//     in (HLC, replica) order, and is a write that was attempted and
//     committed: exactly the greatest committed one;
//   - writes refused for clock skew were never acknowledged and never
//     became visible;
//   - mvregisters: the siblings are exactly the committed writes whose dot
//     no other committed write's delta context holds (a later write whose
//     node had seen them, or a resolution that named them), so every
//     acknowledged write nothing superseded is a sibling, and nothing
//     refused, failed or lost in a crash ever shows; no dot an
//     acknowledged resolution named is still a sibling;
//   - texts (every character a session types is unique, so a character
//     names the write that typed it): no pending characters or deletes
//     are left; every character shown was typed by a committed write
//     (never by a refused, failed or lost one), at most once, and no
//     committed delete removed it; every character a committed write typed
//     is shown unless some committed delete removed it, or the write named
//     a version holding characters of a retired incarnation's lost write
//     (then its characters may wait for those for ever, and may leave
//     pending ones; likewise for a write naming its characters; an edit's deletes
//     remove the characters at their positions in the version it named; a
//     delete of the whole text removes every character its node showed);
//     and any two characters shown stand in the order they stood in every
//     committed write's reply that showed both (a sequence never reorders);
//   - the conflict index and review queue (DESIGN.md §5): on every node a
//     key has an index entry exactly when its state holds a conflict
//     (conflict::HoldsConflict), every entry of an mvregister key is in
//     the review queue under the `review` policy with the state's
//     siblings, and every node's queue names the same keys.
// Session reads (monotonic, read-your-writes) are checked as they happen
// with Dominates().
#ifndef MERIDIAN_TESTS_SIM_CHECKER_H_
#define MERIDIAN_TESTS_SIM_CHECKER_H_

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "conflict/settle.h"
#include "storage/leveldb_store.h"
#include "storage/node_meta.h"
#include "tests/sim/history.h"

namespace meridian::sim {

// The keys of the workload: counters, sets, registers, mvregisters.
const std::vector<std::string>& CounterKeys();
const std::vector<std::string>& SetKeys();
const std::vector<std::string>& RegisterKeys();
const std::vector<std::string>& MvRegisterKeys();
// The text keys (text sessions write only these, and only as text).
const std::vector<std::string>& TextKeys();

// Text sessions type unique characters: the n-th of a run is
// TextCharOf(n), one code point of 2, 3 or 4 UTF-8 bytes by turns.
// TextCharIndex is its inverse (-1 for a code point no session types).
uint32_t TextCharOf(uint64_t n);
int64_t TextCharIndex(uint32_t cp);
// UTF-8 <-> code points (the input is valid UTF-8).
std::vector<uint32_t> TextChars(const std::string& utf8);
std::string TextUtf8(const std::vector<uint32_t>& chars);
// Characters as their indexes, for messages: "[3 4 7]".
std::string RenderChars(const std::vector<uint32_t>& chars);

// The policies the simulated cluster runs with: MvRegisterKeys()' prefix is
// an mvregister under on_unresolved = "review" with no resolver, so every
// conflicted mvregister key is in the review queue. `region_of`: node id
// -> region.
std::unique_ptr<conflict::Settler> MakeReviewSettler(
    const std::map<std::string, std::string>& region_of);

struct FinalNode {
  std::string id;
  storage::AppliedVector applied;
  std::vector<storage::Store::KeyState> states;  // every state, key order
  std::vector<storage::Store::KeyValue> conflicts;  // the conflict index, key order
};

// Empty when every property holds; otherwise one sentence per violation.
// *keys gets the keys the violations concern (for the printed history).
// `review` settles mvregisters as the nodes do (MakeReviewSettler).
std::vector<std::string> CheckFinal(const History& history, const std::vector<FinalNode>& nodes,
                                    const conflict::Settler& review, std::set<std::string>* keys);

// True when the encoded envelope `later` is at least `earlier` in the
// join order (merging `earlier` into it changes nothing). An empty string
// is the bottom. Otherwise *why says how it went back.
bool Dominates(const std::string& later, const std::string& earlier, std::string* why);

// A one-line rendering of an encoded envelope's value, for histories.
std::string RenderEnvelope(const std::string& envelope);

}  // namespace meridian::sim

#endif  // MERIDIAN_TESTS_SIM_CHECKER_H_
