#include "tests/sim/checker.h"

#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "conflict/conflict_index.h"
#include "conflict/policy.h"
#include "crdt/counter.h"
#include "crdt/envelope.h"
#include "crdt/mvregister.h"
#include "crdt/register.h"
#include "crdt/set.h"
#include "crdt/text.h"
#include "node/operation.h"
#include "node/review_queue.h"
#include "tests/support/utf8.h"

namespace meridian::sim {

namespace {

std::string Bytes(const std::string& json_string) {
  return node::ValueToBytes(nlohmann::json(json_string));
}

std::string FromBytes(const std::string& bytes) {
  nlohmann::json v;
  if (!node::BytesToValue(bytes, &v)) return "<bad bytes>";
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// The winning typed state of an encoded envelope, decoded as T. False
// (and *why) when the bytes do not decode or hold another type.
template <class T>
bool DecodeAs(const std::string& envelope, T* out, std::string* why) {
  *out = T();
  if (envelope.empty()) return true;
  crdt::Envelope env;
  Status st = crdt::Envelope::Decode(envelope, &env);
  if (!st.ok()) {
    *why = "state does not decode: " + st.ToString();
    return false;
  }
  const crdt::TypedState* w = env.winner();
  if (w == nullptr) return true;
  if (w->tag != T::kTag) {
    *why =
        "state holds type tag " + std::to_string(w->tag) + ", expected " + std::to_string(T::kTag);
    return false;
  }
  st = T::Decode(w->state, out);
  if (!st.ok()) {
    *why = "typed state does not decode: " + st.ToString();
    return false;
  }
  return true;
}

std::string WriteLabel(const WriteRecord& w) { return "write #" + std::to_string(w.id); }

using Order = std::tuple<crdt::Hlc, std::string, uint64_t>;
Order RegisterOrder(crdt::Hlc hlc, const crdt::ReplicaId& r) {
  return {hlc, r.node, r.incarnation};
}

// Whether `target` is the sum of some subset of `amounts` (all positive).
bool SubsetSum(int64_t target, const std::vector<int64_t>& amounts) {
  if (target < 0) return false;
  int64_t total = 0;
  for (int64_t a : amounts) total += a;
  if (target > total) return false;
  std::vector<char> can(static_cast<size_t>(total) + 1, 0);
  can[0] = 1;
  for (int64_t a : amounts) {
    for (int64_t s = total; s >= a; --s) {
      if (can[static_cast<size_t>(s - a)]) can[static_cast<size_t>(s)] = 1;
    }
  }
  return can[static_cast<size_t>(target)] != 0;
}

void CheckCounter(const std::string& key, const std::string& envelope,
                  const std::vector<const WriteRecord*>& writes, std::vector<std::string>* out) {
  crdt::Counter c;
  std::string why;
  if (!DecodeAs(envelope, &c, &why)) {
    out->push_back("counter " + key + ": " + why);
    return;
  }
  const int64_t value = c.Value();
  int64_t acked = 0, committed = 0;
  std::vector<int64_t> unacked;  // attempted, not acknowledged
  for (const WriteRecord* w : writes) {
    if (w->acknowledged()) acked += w->amount;
    if (w->committed()) committed += w->amount;
    if (!w->acknowledged() && w->outcome != Outcome::kRefusedSkew &&
        w->outcome != Outcome::kUnavailable) {
      unacked.push_back(w->amount);
    }
  }
  // value - acked must be a subset sum of the unacknowledged increments
  // (all positive).
  const int64_t rest = value - acked;
  const bool subset = SubsetSum(rest, unacked);
  if (!subset) {
    out->push_back(
        "counter " + key + " = " + std::to_string(value) + ": not the acknowledged sum " +
        std::to_string(acked) + " plus a subset of the " + std::to_string(unacked.size()) +
        " unacknowledged increments" + (rest < 0 ? " (an acknowledged increment was lost)" : ""));
    return;
  }
  // Increments of a retired incarnation may or may not be in: beyond the
  // committed ones, the value holds a subset of them.
  std::vector<int64_t> maybes;
  for (const WriteRecord* w : writes) {
    if (w->maybe()) maybes.push_back(w->amount);
  }
  if (!SubsetSum(value - committed, maybes)) {
    out->push_back("counter " + key + " = " + std::to_string(value) +
                   ", but the committed increments sum to " + std::to_string(committed) +
                   (maybes.empty() ? std::string()
                                   : " (plus a subset of " + std::to_string(maybes.size()) +
                                         " increments of a retired incarnation)") +
                   " (a committed increment was lost, or a refused/failed one applied)");
  }
}

// An add-wins set's element holds exactly the dots of its adds that no
// other write's delta has in its context (a remove, or a later add that
// replaced them); it is present while one is left.
void CheckSet(const std::string& key, const std::string& envelope,
              const std::vector<const WriteRecord*>& writes, std::vector<std::string>* out) {
  crdt::Set s;
  std::string why;
  if (!DecodeAs(envelope, &s, &why)) {
    out->push_back("set " + key + ": " + why);
    return;
  }
  std::map<std::string, std::vector<const WriteRecord*>> adds, ops;
  std::set<std::string> touched;
  for (const WriteRecord* w : writes) {
    touched.insert(w->element);
    if (!w->committed() && !w->maybe()) continue;
    ops[w->element].push_back(w);
    if (w->kind == WriteKind::kSetAdd) adds[w->element].push_back(w);
  }
  for (const std::string& bytes : s.Values()) {
    if (!touched.count(FromBytes(bytes))) {
      out->push_back("set " + key + " holds " + FromBytes(bytes) + ", which no client wrote");
    }
  }
  for (const std::string& e : touched) {
    const bool present = s.Contains(Bytes(e));
    // A committed add no other write replaced must be there (a write of a
    // retired incarnation may have replaced it); an add no committed write
    // replaced may be (one of a retired incarnation, too).
    const WriteRecord* surviving = nullptr;
    bool possible = false;
    for (const WriteRecord* a : adds[e]) {
      bool replaced = false, surely_replaced = false;
      for (const WriteRecord* o : ops[e]) {
        if (o == a || !o->context.Contains(a->dot)) continue;
        replaced = true;
        surely_replaced = surely_replaced || !o->maybe();
      }
      possible = possible || !surely_replaced;
      if (a->maybe()) continue;
      if (!replaced && (surviving == nullptr || a->acknowledged())) surviving = a;
    }
    bool removed = false;
    for (const WriteRecord* o : ops[e]) removed = removed || o->kind == WriteKind::kSetRemove;
    if (surviving != nullptr && !present) {
      out->push_back("set " + key + ": " + e + " is missing, but " + WriteLabel(*surviving) + " (" +
                     OutcomeName(surviving->outcome) + ", dot " + surviving->dot.ToString() +
                     ") added it and no remove or later add saw it" +
                     (removed ? "" : " (it was never removed)"));
    }
    if (!possible && present) {
      out->push_back("set " + key + ": " + e + " is present, but " +
                     (adds[e].empty()
                          ? std::string("no add of it was committed")
                          : "each of its " + std::to_string(adds[e].size()) +
                                " committed adds was replaced by a committed remove or add") +
                     " (refused, failed or lost adds must never show)");
    }
  }
}

void CheckRegister(const std::string& key, const std::string& envelope,
                   const std::vector<const WriteRecord*>& writes, std::vector<std::string>* out) {
  crdt::Register r;
  std::string why;
  if (!DecodeAs(envelope, &r, &why)) {
    out->push_back("register " + key + ": " + why);
    return;
  }
  const WriteRecord* best_acked = nullptr;
  const WriteRecord* best = nullptr;
  for (const WriteRecord* w : writes) {
    if (!w->committed()) continue;
    Order o = RegisterOrder(w->hlc, w->writer);
    if (best == nullptr || o > RegisterOrder(best->hlc, best->writer)) best = w;
    if (w->acknowledged() &&
        (best_acked == nullptr || o > RegisterOrder(best_acked->hlc, best_acked->writer))) {
      best_acked = w;
    }
  }
  std::string final_desc = r.IsBottom() ? "never written"
                           : r.deleted()
                               ? "deleted at " + crdt::HlcToString(r.hlc())
                               : FromBytes(r.value()) + " at " + crdt::HlcToString(r.hlc()) +
                                     " by " + r.writer().ToString();
  // Writes of a retired incarnation (maybe()) may or may not be there.
  bool any_maybe = false, maybe_delete_after_best = false;
  for (const WriteRecord* w : writes) {
    if (!w->maybe()) continue;
    any_maybe = true;
    if (w->kind == WriteKind::kDelete &&
        (best == nullptr ||
         RegisterOrder(w->hlc, w->writer) > RegisterOrder(best->hlc, best->writer))) {
      maybe_delete_after_best = true;
    }
  }
  if (best == nullptr && !any_maybe) {
    if (!r.IsBottom()) {
      out->push_back("register " + key + " is " + final_desc + ", but no write was committed");
    }
    return;
  }
  if (r.IsBottom() &&
      (best == nullptr || best->kind == WriteKind::kDelete || maybe_delete_after_best)) {
    return;  // deleted, and the tombstone collected once stable (or all lost)
  }
  Order final_order = RegisterOrder(r.hlc(), r.writer());
  if (best_acked != nullptr && final_order < RegisterOrder(best_acked->hlc, best_acked->writer)) {
    out->push_back("register " + key + " is " + final_desc + ", before the acknowledged " +
                   WriteLabel(*best_acked) + " (" + best_acked->value + " at " +
                   crdt::HlcToString(best_acked->hlc) + " by " + best_acked->writer.ToString() +
                   "): an acknowledged write was lost");
    return;
  }
  const WriteRecord* match = nullptr;
  for (const WriteRecord* w : writes) {
    if (w->hlc == r.hlc() && w->writer == r.writer() && (w->committed() || w->maybe())) match = w;
  }
  bool same_value =
      match != nullptr &&
      (match->kind == WriteKind::kDelete ? r.deleted()
                                         : (!r.deleted() && FromBytes(r.value()) == match->value));
  if (!same_value) {
    // Say whether it is a write that was never committed (refused, failed).
    std::string who = "no attempted write";
    for (const WriteRecord* w : writes) {
      if (!r.deleted() && w->kind == WriteKind::kPut && w->value == FromBytes(r.value())) {
        who = WriteLabel(*w) + " (" + OutcomeName(w->outcome) + ")";
      }
    }
    out->push_back("register " + key + " is " + final_desc + ", which is " + who + " as committed");
    return;
  }
  if (match->maybe()) {
    if (best != nullptr && final_order < RegisterOrder(best->hlc, best->writer)) {
      out->push_back("register " + key + " is " + final_desc + " (" + WriteLabel(*match) +
                     ", of a retired incarnation), not the greatest committed " +
                     WriteLabel(*best));
    }
    return;
  }
  if (match != best) {
    out->push_back("register " + key + " is " + final_desc + " (" + WriteLabel(*match) +
                   "), not the greatest committed " + WriteLabel(*best) + " at " +
                   crdt::HlcToString(best->hlc) + " by " + best->writer.ToString());
  }
}

bool IsMvWrite(const WriteRecord& w) {
  return w.kind == WriteKind::kMvPut || w.kind == WriteKind::kMvResolve;
}

// An mvregister holds exactly the dots of its writes that no other
// write's delta has in its context (a later write whose node held them,
// or a resolution that named them): each such committed write is a
// sibling, and nothing else is. Writes of a retired incarnation (maybe())
// may or may not have arrived, so may or may not show, and may or may not
// have superseded what their context holds.
void CheckMvRegister(const std::string& key, const std::string& envelope,
                     const std::vector<const WriteRecord*>& writes, std::vector<std::string>* out) {
  crdt::MvRegister reg;
  std::string why;
  if (!DecodeAs(envelope, &reg, &why)) {
    out->push_back("mvregister " + key + ": " + why);
    return;
  }
  std::vector<const WriteRecord*> ops;  // committed or maybe
  for (const WriteRecord* w : writes) {
    if (IsMvWrite(*w) && (w->committed() || w->maybe())) ops.push_back(w);
  }
  // The writes whose contexts hold `d` (other than its own).
  auto superseders = [&](const crdt::Dot& d, const WriteRecord* self, bool surely) {
    std::vector<const WriteRecord*> by;
    for (const WriteRecord* o : ops) {
      if (o != self && o->context.Contains(d) && (!surely || !o->maybe())) by.push_back(o);
    }
    return by;
  };
  for (const auto& [dot, tv] : reg.siblings()) {
    const WriteRecord* made = nullptr;
    for (const WriteRecord* o : ops) {
      if (o->dot == dot) made = o;
    }
    if (made == nullptr) {
      std::string who = "no attempted write";
      for (const WriteRecord* w : writes) {
        if (IsMvWrite(*w) && w->value == FromBytes(tv.value)) {
          who = WriteLabel(*w) + " (" + OutcomeName(w->outcome) + ")";
        }
      }
      out->push_back("mvregister " + key + " holds " + FromBytes(tv.value) + " with dot " +
                     dot.ToString() + ", which is " + who + " as committed");
      continue;
    }
    if (FromBytes(tv.value) != made->value) {
      out->push_back("mvregister " + key + ": the sibling with dot " + dot.ToString() + " holds " +
                     FromBytes(tv.value) + ", but " + WriteLabel(*made) + " wrote " + made->value);
    }
    std::vector<const WriteRecord*> by = superseders(dot, made, /*surely=*/true);
    if (!by.empty()) {
      out->push_back("mvregister " + key + " still holds " + made->value + " (" +
                     WriteLabel(*made) + ", dot " + dot.ToString() + "), but the committed " +
                     WriteLabel(*by.front()) + " (" + WriteKindName(by.front()->kind) +
                     ") superseded it: its context " + by.front()->context.ToString() +
                     " holds that dot");
    }
  }
  for (const WriteRecord* w : ops) {
    if (w->maybe() || reg.siblings().count(w->dot)) continue;
    if (superseders(w->dot, w, /*surely=*/false).empty()) {
      out->push_back("mvregister " + key + ": " + WriteLabel(*w) + " (" + OutcomeName(w->outcome) +
                     ", " + w->value + ", dot " + w->dot.ToString() +
                     ") is not a sibling, but no write or resolution superseded it: a write "
                     "was lost");
    }
  }
  // What an acknowledged resolution cleared stays cleared everywhere (the
  // final states are identical by now). (Its delta's context need not name
  // them: another write of its group may have superseded them first.)
  for (const WriteRecord* w : writes) {
    if (w->kind != WriteKind::kMvResolve || !w->acknowledged()) continue;
    for (const crdt::Dot& d : w->covered) {
      if (reg.siblings().count(d)) {
        out->push_back("mvregister " + key + ": the acknowledged resolution " + WriteLabel(*w) +
                       " resolved sibling " + d.ToString() + " (" +
                       FromBytes(reg.siblings().at(d).value) +
                       "), which is still a sibling: the resolution did not clear it");
      }
    }
  }
}

bool IsTextWrite(const WriteRecord& w) {
  return w.kind == WriteKind::kTextEdit || w.kind == WriteKind::kTextDelete;
}

std::string CharLabel(uint32_t c) {
  const int64_t i = TextCharIndex(c);
  return i < 0 ? "U+" + std::to_string(c) : "#c" + std::to_string(i);
}

// A text against the edits of its key (see checker.h).
void CheckText(const std::string& key, const std::string& envelope,
               const std::vector<const WriteRecord*>& writes, std::vector<std::string>* out) {
  crdt::Text t;
  std::string why;
  if (!DecodeAs(envelope, &t, &why)) {
    out->push_back("text " + key + ": " + why);
    return;
  }
  // A write of a retired incarnation may be lost (maybe()); an edit whose
  // version held its characters may have put characters next to them,
  // which then wait for them for ever, and so on: those edits are tainted.
  // (An insert's neighbours are characters of the version it names.)
  std::set<const WriteRecord*> tainted;
  for (const WriteRecord* w : writes) {
    if (IsTextWrite(*w) && w->maybe()) tainted.insert(w);
  }
  for (bool grew = !tainted.empty(); grew;) {
    grew = false;
    for (const WriteRecord* w : writes) {
      if (w->kind != WriteKind::kTextEdit || !w->committed() || tainted.count(w)) continue;
      crdt::TextVersion v;
      if (!crdt::TextVersion::Decode(w->text_at, &v).ok()) continue;
      for (const WriteRecord* t : std::set<const WriteRecord*>(tainted)) {
        bool depends = false;
        for (uint64_t c = t->text_lo; c < t->text_hi && !depends; ++c) {
          depends = v.Contains(t->writer, c);
        }
        if (depends) {
          tainted.insert(w);
          grew = true;
          break;
        }
      }
    }
  }
  if (t.PendingCount() != 0 && tainted.empty()) {
    out->push_back("text " + key + " still holds " + std::to_string(t.PendingCount()) +
                   " characters or deletes waiting for what they refer to, after quiescence");
  }
  const std::vector<uint32_t> chars = TextChars(t.Content());
  if (chars.size() != t.Length()) {
    out->push_back("text " + key + ": Length() is " + std::to_string(t.Length()) + ", but its " +
                   "content has " + std::to_string(chars.size()) + " code points");
  }
  std::map<uint32_t, const WriteRecord*> typed_by;
  std::map<uint32_t, std::vector<const WriteRecord*>> removed_by;
  for (const WriteRecord* w : writes) {
    if (!IsTextWrite(*w)) continue;
    for (uint32_t c : w->typed) typed_by[c] = w;
    if (w->committed() || w->maybe()) {
      for (uint32_t c : w->removed) removed_by[c].push_back(w);
    }
  }
  std::map<uint32_t, size_t> at;  // character -> position in the final text
  for (size_t i = 0; i < chars.size(); ++i) {
    const uint32_t c = chars[i];
    if (!at.emplace(c, i).second) {
      out->push_back("text " + key + " shows " + CharLabel(c) + " twice");
      continue;
    }
    auto it = typed_by.find(c);
    if (it == typed_by.end()) {
      out->push_back("text " + key + " shows " + CharLabel(c) + ", which no client typed");
      continue;
    }
    const WriteRecord* w = it->second;
    if (!w->committed() && !w->maybe()) {
      out->push_back("text " + key + " shows " + CharLabel(c) + ", typed by " + WriteLabel(*w) +
                     " (" + OutcomeName(w->outcome) + "), which never committed");
    }
    for (const WriteRecord* d : removed_by[c]) {
      if (d->maybe()) continue;
      out->push_back("text " + key + " shows " + CharLabel(c) + " (typed by " + WriteLabel(*w) +
                     "), which the committed " + WriteLabel(*d) + " (" + WriteKindName(d->kind) +
                     ") deleted");
      break;
    }
  }
  for (const auto& [c, w] : typed_by) {
    if (!w->committed() || at.count(c) || tainted.count(w)) continue;
    if (removed_by[c].empty()) {
      out->push_back("text " + key + " lacks " + CharLabel(c) + ", typed by " + WriteLabel(*w) +
                     " (" + OutcomeName(w->outcome) +
                     "), and no delete removed it: a write was lost");
    }
  }
  // Order: a sequence never reorders what it holds.
  for (const WriteRecord* w : writes) {
    if (!IsTextWrite(*w) || !w->committed()) continue;
    size_t last = 0;
    uint32_t last_c = 0;
    bool first = true;
    for (uint32_t c : w->reply_text) {
      auto it = at.find(c);
      if (it == at.end()) continue;
      if (!first && it->second < last) {
        out->push_back("text " + key + " shows " + CharLabel(c) + " before " + CharLabel(last_c) +
                       ", but the reply of " + WriteLabel(*w) + " showed them the other way round");
        break;
      }
      first = false;
      last = it->second;
      last_c = c;
    }
  }
}

// The conflict index and review queue of one node against its own states
// (conflict/conflict_index.h, node/review_queue.h). *queue gets the keys of
// its review queue.
void CheckConflictIndex(const FinalNode& n, const conflict::Settler& review,
                        std::set<std::string>* queue, std::set<std::string>* keys,
                        std::vector<std::string>* out) {
  std::map<std::string, crdt::Envelope> states;
  std::set<std::string> conflicted;
  for (const auto& ks : n.states) {
    crdt::Envelope env;
    if (!crdt::Envelope::Decode(ks.envelope, &env).ok()) continue;  // convergence checks say why
    if (conflict::HoldsConflict(env)) conflicted.insert(ks.key);
    states[ks.key] = std::move(env);
  }
  std::set<std::string> indexed;
  for (const auto& kv : n.conflicts) {
    if (!indexed.insert(kv.key).second) {
      keys->insert(kv.key);
      out->push_back(n.id + ": the conflict index lists " + kv.key + " twice");
      continue;
    }
    conflict::ConflictEntry ce;
    Status st = conflict::DecodeConflictEntry(kv.value, &ce);
    if (!st.ok()) {
      keys->insert(kv.key);
      out->push_back(n.id + ": the conflict index entry of " + kv.key +
                     " does not decode: " + st.ToString());
      continue;
    }
    auto it = states.find(kv.key);
    if (it == states.end() || !conflicted.count(kv.key)) {
      keys->insert(kv.key);
      out->push_back(
          n.id + ": the conflict index has an entry for " + kv.key + ", but its state (" +
          (it == states.end() ? std::string("none") : RenderEnvelope(it->second.Encode())) +
          ") holds no conflict: a resolved conflict stays in the review queue");
      continue;
    }
    nlohmann::json entry;
    crdt::CausalContext context;
    if (!node::ReviewEntry(kv.key, it->second, ce.detected_ms, &review, &entry, &context)) {
      // Only mvregister keys are under the review policy; anything else
      // conflicted is a type conflict, which ReviewEntry always shows.
      keys->insert(kv.key);
      out->push_back(n.id + ": " + kv.key + " is conflicted (" +
                     RenderEnvelope(it->second.Encode()) +
                     ") but not in the review queue under the review policy");
      continue;
    }
    queue->insert(kv.key);
    crdt::MvRegister reg;
    std::string why;
    if (it->second.entries().size() == 1 && DecodeAs(it->second.Encode(), &reg, &why)) {
      crdt::CausalContext all;
      for (const auto& [dot, tv] : reg.siblings()) all.Add(dot);
      if (context != all || entry["siblings"].size() != reg.siblings().size()) {
        keys->insert(kv.key);
        out->push_back(n.id + ": the review queue entry of " + kv.key + " shows " +
                       std::to_string(entry["siblings"].size()) + " siblings with context " +
                       context.ToString() + ", but the state holds " +
                       std::to_string(reg.siblings().size()) + " with dots " + all.ToString());
      }
    }
  }
  for (const std::string& key : conflicted) {
    if (indexed.count(key)) continue;
    keys->insert(key);
    out->push_back(n.id + ": " + key + " holds a conflict (" +
                   RenderEnvelope(states[key].Encode()) +
                   ") but has no conflict index entry: it is missing from the review queue");
  }
}

}  // namespace

const std::vector<std::string>& CounterKeys() {
  static const std::vector<std::string> k = {"c/0", "c/1"};
  return k;
}
const std::vector<std::string>& SetKeys() {
  static const std::vector<std::string> k = {"s/0", "s/1"};
  return k;
}
const std::vector<std::string>& RegisterKeys() {
  static const std::vector<std::string> k = {"r/0", "r/1", "r/2"};
  return k;
}
const std::vector<std::string>& MvRegisterKeys() {
  static const std::vector<std::string> k = {"mv/0", "mv/1", "mv/2", "mv/3"};
  return k;
}

const std::vector<std::string>& TextKeys() {
  static const std::vector<std::string> k = {"t/0", "t/1"};
  return k;
}

uint32_t TextCharOf(uint64_t n) {
  const uint32_t k = static_cast<uint32_t>(n / 3);
  switch (n % 3) {
    case 0: return 0x10000 + k;                          // 4 bytes (k < 0x40000 in any run)
    case 1: return k < 0x5200 ? 0x4E00 + k : 0x60000 + k;  // 3 bytes, then 4
    default: return k < 0x700 ? 0x100 + k : 0x70000 + k;   // 2 bytes, then 4
  }
}

int64_t TextCharIndex(uint32_t cp) {
  auto at = [](uint32_t k, int r) { return int64_t{3} * k + r; };
  if (cp >= 0x100 && cp < 0x800) return at(cp - 0x100, 2);
  if (cp >= 0x4E00 && cp < 0xA000) return at(cp - 0x4E00, 1);
  if (cp >= 0x10000 && cp < 0x50000) return at(cp - 0x10000, 0);
  if (cp >= 0x60000 + 0x5200 && cp < 0x70000) return at(cp - 0x60000, 1);
  if (cp >= 0x70000 + 0x700 && cp < 0x80000) return at(cp - 0x70000, 2);
  return -1;
}

std::vector<uint32_t> TextChars(const std::string& s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t extra = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : 3;
    uint32_t cp = extra == 0 ? c : extra == 1 ? (c & 0x1f) : extra == 2 ? (c & 0x0f) : (c & 0x07);
    for (size_t k = 1; k <= extra && i + k < s.size(); ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    }
    out.push_back(cp);
    i += extra + 1;
  }
  return out;
}

std::string TextUtf8(const std::vector<uint32_t>& chars) { return meridian::testing::Utf8(chars); }

std::string RenderChars(const std::vector<uint32_t>& chars) {
  std::string out = "[";
  for (size_t i = 0; i < chars.size(); ++i) {
    if (i > 0) out += ' ';
    const int64_t n = TextCharIndex(chars[i]);
    out += n < 0 ? "U+" + std::to_string(chars[i]) : std::to_string(n);
  }
  return out + "]";
}

std::unique_ptr<conflict::Settler> MakeReviewSettler(
    const std::map<std::string, std::string>& region_of) {
  conflict::PolicySpec spec;
  spec.line = 1;
  spec.prefix = "mv/";
  spec.type = std::string(crdt::MvRegister::kName);
  spec.has_on_unresolved = true;
  spec.on_unresolved = "review";
  std::set<std::string> regions;
  for (const auto& [node, region] : region_of) regions.insert(region);
  conflict::PolicySet policies;
  Status st = conflict::PolicySet::Build({spec}, {regions.begin(), regions.end()}, "sim.toml",
                                         nullptr, &policies);
  if (!st.ok()) return nullptr;  // the caller reports it
  return std::make_unique<conflict::Settler>(std::move(policies),
                                             std::map<std::string, std::string>(), region_of);
}

std::vector<std::string> CheckFinal(const History& history, const std::vector<FinalNode>& nodes,
                                    const conflict::Settler& review, std::set<std::string>* keys) {
  std::vector<std::string> out;
  if (nodes.empty()) return out;
  // Each node's conflict index against its own states, and every region's
  // review queue naming the same keys.
  std::vector<std::string> index_out;
  std::set<std::string> first_queue;
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::set<std::string> queue;
    CheckConflictIndex(nodes[i], review, &queue, keys, &index_out);
    if (i == 0) {
      first_queue = queue;
    } else if (queue != first_queue) {
      std::set<std::string> diff;
      for (const std::string& k : queue) {
        if (!first_queue.count(k)) diff.insert(k);
      }
      for (const std::string& k : first_queue) {
        if (!queue.count(k)) diff.insert(k);
      }
      std::string list;
      for (const std::string& k : diff) list += (list.empty() ? "" : ", ") + k;
      keys->insert(diff.begin(), diff.end());
      index_out.push_back("review queues differ: " + nodes[0].id + " holds " +
                          std::to_string(first_queue.size()) + " keys, " + nodes[i].id + " " +
                          std::to_string(queue.size()) + "; in one only: " + list);
    }
  }
  // Identical digests: byte-identical states and applied vectors.
  const FinalNode& first = nodes[0];
  for (size_t i = 1; i < nodes.size(); ++i) {
    const FinalNode& n = nodes[i];
    if (n.applied != first.applied) {
      out.push_back("applied vectors differ: " + first.id + " and " + n.id);
    }
    size_t k = 0;
    for (; k < first.states.size() && k < n.states.size(); ++k) {
      const auto& a = first.states[k];
      const auto& b = n.states[k];
      if (a.key != b.key || a.envelope != b.envelope) {
        std::string key = a.key == b.key ? a.key : std::min(a.key, b.key);
        keys->insert(key);
        out.push_back("state digests differ at key " + key + ": " + first.id + " has " +
                      (a.key == key ? RenderEnvelope(a.envelope) : "nothing") + ", " + n.id +
                      " has " + (b.key == key ? RenderEnvelope(b.envelope) : "nothing"));
        break;
      }
    }
    if (k == std::min(first.states.size(), n.states.size()) &&
        first.states.size() != n.states.size()) {
      const auto& extra = first.states.size() > n.states.size() ? first.states[k] : n.states[k];
      keys->insert(extra.key);
      out.push_back("state digests differ: " + first.id + " holds " +
                    std::to_string(first.states.size()) + " keys, " + n.id + " holds " +
                    std::to_string(n.states.size()) + " (first extra: " + extra.key + ")");
    }
  }
  out.insert(out.end(), index_out.begin(), index_out.end());
  if (!out.empty()) return out;

  std::map<std::string, std::string> state;
  for (const auto& ks : first.states) state[ks.key] = ks.envelope;
  std::map<std::string, std::vector<const WriteRecord*>> by_key;
  for (const WriteRecord& w : history.writes) {
    by_key[w.key].push_back(&w);
    if (w.outcome == Outcome::kRefusedSkew && w.acknowledged()) {
      out.push_back(WriteLabel(w) + " was refused for clock skew and acknowledged");
    }
  }
  auto check = [&](const std::vector<std::string>& ks, auto fn) {
    for (const std::string& key : ks) {
      size_t before = out.size();
      fn(key, state[key], by_key[key], &out);
      if (out.size() != before) keys->insert(key);
      state.erase(key);
    }
  };
  check(CounterKeys(), CheckCounter);
  check(SetKeys(), CheckSet);
  check(RegisterKeys(), CheckRegister);
  check(MvRegisterKeys(), CheckMvRegister);
  check(TextKeys(), CheckText);
  for (const auto& [key, env] : state) {
    if (env.empty()) continue;
    out.push_back("key " + key + " exists, but the workload never wrote it");
  }
  return out;
}

bool Dominates(const std::string& later, const std::string& earlier, std::string* why) {
  if (earlier.empty()) return true;
  crdt::Envelope a, b;
  Status st = later.empty() ? Status::OK() : crdt::Envelope::Decode(later, &a);
  if (st.ok()) st = crdt::Envelope::Decode(earlier, &b);
  if (!st.ok()) {
    *why = "state does not decode: " + st.ToString();
    return false;
  }
  crdt::Envelope joined = a;
  st = joined.Merge(b, nullptr);
  if (!st.ok()) {
    *why = "states do not merge: " + st.ToString();
    return false;
  }
  if (joined == a) return true;
  *why = "read " + RenderEnvelope(later) + " after having seen " + RenderEnvelope(earlier);
  return false;
}

std::string RenderEnvelope(const std::string& envelope) {
  if (envelope.empty()) return "(none)";
  crdt::Envelope env;
  Status st = crdt::Envelope::Decode(envelope, &env);
  if (!st.ok()) return "(undecodable: " + st.ToString() + ")";
  const crdt::TypedState* w = env.winner();
  if (w == nullptr) return "(empty)";
  std::ostringstream o;
  std::string why;
  switch (w->tag) {
    case crdt::Counter::kTag: {
      crdt::Counter c;
      if (!DecodeAs(envelope, &c, &why)) return why;
      o << "counter " << c.Value() << " {";
      for (const auto& [r, e] : c.store().entries) o << " " << r.ToString() << ":+" << e.p;
      o << " }";
      break;
    }
    case crdt::Set::kTag: {
      crdt::Set s;
      if (!DecodeAs(envelope, &s, &why)) return why;
      o << "set {";
      for (const auto& [e, dots] : s.store().elements) {
        o << " " << FromBytes(e) << "@";
        for (const auto& d : dots) o << d.ToString() << ";";
      }
      o << " } ctx " << s.context().ToString();
      break;
    }
    case crdt::Register::kTag: {
      crdt::Register r;
      if (!DecodeAs(envelope, &r, &why)) return why;
      if (r.deleted()) {
        o << "register deleted";
      } else {
        o << "register " << FromBytes(r.value());
      }
      o << " @" << crdt::HlcToString(r.hlc()) << " by " << r.writer().ToString();
      break;
    }
    case crdt::MvRegister::kTag: {
      crdt::MvRegister r;
      if (!DecodeAs(envelope, &r, &why)) return why;
      o << "mvregister {";
      for (const auto& [d, tv] : r.siblings()) {
        o << " " << FromBytes(tv.value) << "@" << d.ToString();
      }
      o << " } ctx " << r.context().ToString();
      break;
    }
    case crdt::Text::kTag: {
      crdt::Text t;
      if (!DecodeAs(envelope, &t, &why)) return why;
      o << "text " << RenderChars(TextChars(t.Content())) << " version "
        << t.version().ToString();
      if (t.PendingCount() > 0) o << " (" << t.PendingCount() << " pending)";
      break;
    }
    default:
      o << "type " << int{w->tag};
  }
  if (env.entries().size() > 1) o << " (+" << env.entries().size() - 1 << " losing types)";
  return o.str();
}

const char* WriteKindName(WriteKind k) {
  switch (k) {
    case WriteKind::kIncrement:
      return "incr";
    case WriteKind::kSetAdd:
      return "sadd";
    case WriteKind::kSetRemove:
      return "srem";
    case WriteKind::kPut:
      return "put";
    case WriteKind::kDelete:
      return "del";
    case WriteKind::kMvPut:
      return "mvput";
    case WriteKind::kMvResolve:
      return "resolve";
    case WriteKind::kTextEdit:
      return "tedit";
    case WriteKind::kTextDelete:
      return "tdel";
  }
  return "?";
}

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kPending:
      return "pending";
    case Outcome::kUnavailable:
      return "unavailable";
    case Outcome::kRefusedSkew:
      return "refused (clock_skew)";
    case Outcome::kLostInCrash:
      return "lost in crash";
    case Outcome::kFailed:
      return "failed";
    case Outcome::kReplyLost:
      return "committed, reply lost";
    case Outcome::kAcknowledged:
      return "acknowledged";
    case Outcome::kRetired:
      return "committed by a retired incarnation, held nowhere else";
  }
  return "?";
}

std::string WriteRecord::ToString() const {
  std::ostringstream o;
  o << "#" << id << " t=" << submitted_ms << " s" << session << "@n" << node << " "
    << WriteKindName(kind) << " " << key;
  switch (kind) {
    case WriteKind::kIncrement:
      o << " +" << amount;
      break;
    case WriteKind::kSetAdd:
    case WriteKind::kSetRemove:
      o << " " << element;
      break;
    case WriteKind::kPut:
    case WriteKind::kMvPut:
      o << " " << value;
      break;
    case WriteKind::kMvResolve:
      o << " " << value << " covering";
      for (const crdt::Dot& d : covered) o << " " << d.ToString();
      break;
    case WriteKind::kDelete:
    case WriteKind::kTextDelete:
      break;
    case WriteKind::kTextEdit: {
      crdt::TextVersion v;
      o << " at " << (crdt::TextVersion::Decode(text_at, &v).ok() ? v.ToString() : "?") << ":";
      for (const crdt::TextEdit& e : text_ops) {
        if (e.insert) {
          o << " ins@" << e.pos << RenderChars(TextChars(e.text));
        } else {
          o << " del@" << e.pos << "+" << e.len;
        }
      }
      break;
    }
  }
  o << " -> " << OutcomeName(outcome);
  if (!error.empty()) o << " (" << error << ")";
  if (committed()) {
    o << " seq " << seq << " by " << writer.ToString();
    if (hlc != 0) o << " hlc " << crdt::HlcToString(hlc);
    if (kind == WriteKind::kSetAdd || kind == WriteKind::kMvPut || kind == WriteKind::kMvResolve) {
      o << " dot " << dot.ToString();
    }
    if (kind == WriteKind::kTextEdit || kind == WriteKind::kTextDelete) {
      if (!removed.empty()) o << " removing " << RenderChars(removed);
      o << " reply " << RenderChars(reply_text);
    } else if (kind != WriteKind::kIncrement && kind != WriteKind::kPut &&
               kind != WriteKind::kDelete) {
      o << " delta ctx " << context.ToString();
    }
  }
  return o.str();
}

}  // namespace meridian::sim
