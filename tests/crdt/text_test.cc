// The text CRDT (crdt/text.h, issue 7):
//
//  1. random concurrent editing: 5 replicas, inserts (ASCII, accented,
//     combining, CJK, emoji; one or many characters), range deletes,
//     typing and backspacing character by character, edits at older
//     versions, DeleteAll; deltas lost, duplicated and reordered, whole
//     states merged through Encode/Decode, DeltaSince repairs. At the end
//     every replica holds the same bytes and nothing waits, and an oracle
//     holds: every character is present iff no delete removed it, no two
//     characters ever change their relative order, and nothing lands
//     inside one insert's characters unless its editor had seen them;
//  2. the join laws, the delta law and DeltaSince on random states;
//  3. non-interleaving of runs typed concurrently at one place;
//  4. positions in code points, UTF-8 checks, all-or-nothing edits;
//  5. edits at an older version against a replica that held that version;
//  6. the packed encoding: mutations, deflate bombs, canonical form;
//  7. Decode / DecodeTrusted round trips, and orders the origins refute.
//
// Every inserted character is a code point used once per history (a fresh
// letter of the history's alphabet), so the oracle tells each character
// from every other.
//
// Seeds are fixed (kBaseSeed + i). A failure prints MERIDIAN_SEED=<n>;
// rerunning with it replays that one history. MERIDIAN_HISTORIES (default
// 10,000; the sanitizer run sets 1,000) scales the counts: the convergence
// test runs a tenth of it, the others less, and the exhaustive loops
// (delivery orders, byte mutations) try every Stride()-th case, 1 by
// default and 10 under the sanitizer.
#define BOOST_TEST_MODULE text
#include <boost/test/unit_test.hpp>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <new>
#include <numeric>
#include <string>
#include <unordered_map>
#include <vector>

#include "crdt/codec.h"
#include "crdt/text.h"
#include "tests/crdt/fixtures.h"
#include "tests/crdt/history.h"
#include "tests/support/utf8.h"

namespace meridian::crdt {
// For BOOST_TEST's messages.
std::ostream& operator<<(std::ostream& os, const TextVersion& v) { return os << v.ToString(); }
}  // namespace meridian::crdt

using meridian::Status;
using namespace meridian::crdt;
using namespace meridian::crdt::testing;
using meridian::testing::Utf8;

// ------------------------------------------------- allocation watermark
//
// The deflate-bomb test checks that a refused body was never allocated:
// while `g_watch` is set, the largest single allocation is recorded.

namespace {
std::atomic<bool> g_watch{false};
std::atomic<size_t> g_largest{0};

void* Allocate(size_t n) {
  if (g_watch.load(std::memory_order_relaxed)) {
    size_t cur = g_largest.load(std::memory_order_relaxed);
    while (n > cur && !g_largest.compare_exchange_weak(cur, n)) {
    }
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(size_t n) { return Allocate(n); }
void* operator new[](size_t n) { return Allocate(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace {

#define REQUIRE_OK(expr)                                                    \
  do {                                                                      \
    const ::meridian::Status _st = (expr);                                  \
    BOOST_REQUIRE_MESSAGE(_st.ok(), #expr << " -> " << _st.ToString());     \
  } while (0)

constexpr uint64_t kBaseSeed = 20261127;

const ReplicaId kA{"a-node", 1};
const ReplicaId kB{"b-node", 1};
const ReplicaId kC{"c-node", 1};
const ReplicaId kD{"d-node", 1};

// ------------------------------------------------------------- helpers

// Code points of well-formed UTF-8 (what Content() returns).
std::vector<uint32_t> CodePoints(std::string_view s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < len && i + k < s.size(); ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

Text Join(Text a, const Text& b) {
  a.Merge(b);
  return a;
}

Text Decoded(const std::string& bytes) {
  Text t;
  REQUIRE_OK(Text::Decode(bytes, &t));
  return t;
}

std::string Hex(std::string_view b) { return ToHex(b); }

// ----------------------------------------------- the history alphabet

// Fresh code points, each handed out once per history, from several
// classes: ASCII, accented Latin, combining marks, CJK, emoji.
class Alphabet {
 public:
  uint32_t Fresh(Rng& rng) {
    const int roll = Uniform(rng, 0, 99);
    int k = roll < 35 ? 0 : roll < 55 ? 1 : roll < 65 ? 2 : roll < 80 ? 3 : 4;
    for (;;) {
      Class& c = classes_[k];
      while (c.next < c.end && (c.next == 0xD7 || c.next == 0xF7)) ++c.next;
      if (c.next < c.end) return c.next++;
      k = 3;  // CJK has room for every history
    }
  }

 private:
  struct Class {
    uint32_t next, end;
  };
  Class classes_[5] = {{0x21, 0x7F}, {0xC0, 0x250}, {0x300, 0x370}, {0x4E00, 0xA000},
                       {0x1F300, 0x1F650}};
};

// --------------------------------------------------------- the oracle

// Who typed an insert, its first dot, and every dot its editor had seen
// (the version its positions referred to, with the editor's earlier edits
// of the same request).
struct Typed {
  ReplicaId replica;
  uint64_t counter = 0;
  TextVersion saw;
};

// True when `v` holds one of r's dots [lo, hi).
bool Overlaps(const TextVersion& v, const ReplicaId& r, uint64_t lo, uint64_t hi) {
  auto it = v.ranges().find(r);
  if (it == v.ranges().end()) return false;
  auto rit = it->second.lower_bound(hi);  // the first range starting at or past hi
  if (rit == it->second.begin()) return false;
  return std::prev(rit)->second > lo;
}

// What the edits of a history did, as the editors saw them: which
// characters were inserted (each a distinct code point), by which insert,
// and which a delete removed.
struct Oracle {
  struct Char {
    size_t insert = 0;
    bool deleted = false;
  };
  struct Insertion {
    std::vector<uint32_t> cps;  // in typed order
    bool tracked = false;       // `typed` is known
    Typed typed;
  };
  std::unordered_map<uint32_t, Char> chars;
  std::vector<Insertion> inserts;
  // Sequences some replica saw (or an edit produced): the characters still
  // present at the end must keep this relative order.
  std::vector<std::vector<uint32_t>> orders;

  // Inserts `cps` at `pos` of `seq`.
  void Insert(std::vector<uint32_t>* seq, size_t pos, const std::vector<uint32_t>& cps,
              const Typed* typed = nullptr) {
    for (uint32_t c : cps) chars[c] = Char{inserts.size(), false};
    Insertion ins;
    ins.cps = cps;
    if (typed != nullptr) {
      ins.tracked = true;
      ins.typed = *typed;
    }
    inserts.push_back(std::move(ins));
    seq->insert(seq->begin() + static_cast<std::ptrdiff_t>(pos), cps.begin(), cps.end());
  }
  void Delete(std::vector<uint32_t>* seq, size_t pos, size_t len) {
    for (size_t i = pos; i < pos + len; ++i) chars.at((*seq)[i]).deleted = true;
    seq->erase(seq->begin() + static_cast<std::ptrdiff_t>(pos),
               seq->begin() + static_cast<std::ptrdiff_t>(pos + len));
  }

  // Empty when `final` (the converged content) agrees.
  std::string Check(const std::vector<uint32_t>& final,
                    const std::vector<std::vector<uint32_t>>& more_orders) const {
    std::unordered_map<uint32_t, size_t> index;
    for (size_t i = 0; i < final.size(); ++i) {
      auto it = chars.find(final[i]);
      if (it == chars.end()) return "U+" + std::to_string(final[i]) + " was never inserted";
      if (it->second.deleted) return "U+" + std::to_string(final[i]) + " was deleted but shows";
      if (!index.emplace(final[i], i).second) return "U+" + std::to_string(final[i]) + " shows twice";
    }
    size_t live = 0;
    for (const auto& kv : chars) live += kv.second.deleted ? 0 : 1;
    if (live != final.size()) {
      return std::to_string(live) + " characters were never deleted but " +
             std::to_string(final.size()) + " show";
    }
    auto ordered = [&](const std::vector<uint32_t>& seq) {
      long last = -1;
      for (uint32_t c : seq) {
        auto it = index.find(c);
        if (it == index.end()) continue;
        if (static_cast<long>(it->second) <= last) return false;
        last = static_cast<long>(it->second);
      }
      return true;
    };
    for (size_t i = 0; i < inserts.size(); ++i) {
      if (!ordered(inserts[i].cps)) return "insert " + std::to_string(i) + "'s characters changed order";
    }
    // Non-interleaving: a character between two of one insert's characters
    // was typed by an editor that had seen some of that insert.
    for (size_t i = 0; i < inserts.size(); ++i) {
      const Insertion& ins = inserts[i];
      if (!ins.tracked || ins.cps.size() < 2) continue;
      long lo = -1, hi = -1;
      for (uint32_t c : ins.cps) {
        auto it = index.find(c);
        if (it == index.end()) continue;
        if (lo < 0) lo = static_cast<long>(it->second);
        hi = static_cast<long>(it->second);
      }
      for (long k = lo + 1; k < hi; ++k) {
        const size_t j = chars.at(final[static_cast<size_t>(k)]).insert;
        const Insertion& other = inserts[j];
        if (j == i || !other.tracked) continue;
        if (!Overlaps(other.typed.saw, ins.typed.replica, ins.typed.counter,
                      ins.typed.counter + ins.cps.size())) {
          return "insert " + std::to_string(j) + " ('" + Utf8(other.cps) + "' by " +
                 other.typed.replica.ToString() + ") landed inside insert " + std::to_string(i) +
                 " ('" + Utf8(ins.cps) + "' by " + ins.typed.replica.ToString() +
                 ") without having seen it";
        }
      }
    }
    for (const auto* list : {&orders, &more_orders}) {
      for (const auto& seq : *list) {
        if (!ordered(seq)) return "characters changed their relative order since '" + Utf8(seq) + "'";
      }
    }
    return "";
  }
};

// ------------------------------------------------------ random history

struct HistoryOptions {
  int replicas = 5;
  int min_ops = 10;
  int max_ops = 40;
  double loss = 0.2;
  double duplicate = 0.1;
  double state_merge = 0.05;  // a whole state, through Encode and Decode
  double repair = 0.05;       // a DeltaSince(version) repair
  double keep_old = 0.0;      // keep a copy of a replica's state after an op
};

// A version some replica held, and the document it saw then.
struct Snapshot {
  TextVersion version;
  std::vector<uint32_t> content;
};

struct TextHistory {
  std::vector<Text> replicas;
  std::vector<Text> deltas;
  std::vector<std::vector<Snapshot>> snapshots;  // per replica
  std::vector<std::pair<int, Text>> old_states;  // (replica, its state then)
  Oracle oracle;
  Alphabet alphabet;
  bool hot = false;  // inserts crowd at the start and the end
  std::string error;
};

// Where to insert in a document of `size` characters.
uint64_t InsertPos(Rng& rng, const TextHistory& h, size_t size) {
  if (h.hot && Chance(rng, 0.7)) return Chance(rng, 0.5) ? 0 : size;
  return static_cast<uint64_t>(Uniform(rng, 0, static_cast<int>(size)));
}

std::vector<uint32_t> FreshRun(Rng& rng, Alphabet* alphabet) {
  const int n = Chance(rng, 0.5) ? 1 : Uniform(rng, 2, 6);
  std::vector<uint32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(alphabet->Fresh(rng));
  return out;
}

// `n` random edits of `seq` (the document their positions refer to),
// applied to `seq` and recorded in the oracle. With `typed` (the editor,
// its next dot and the version the positions refer to), the oracle learns
// each insert's dots and what its editor had seen.
std::vector<TextEdit> RandomEdits(Rng& rng, TextHistory* h, std::vector<uint32_t>* seq, int n,
                                  const Typed* typed = nullptr) {
  std::vector<TextEdit> edits;
  Typed cur;
  if (typed != nullptr) cur = *typed;
  const uint64_t first = cur.counter;
  for (int i = 0; i < n; ++i) {
    TextEdit e;
    if (!seq->empty() && Chance(rng, 0.4)) {
      e.insert = false;
      e.pos = static_cast<uint64_t>(Uniform(rng, 0, static_cast<int>(seq->size()) - 1));
      e.len = static_cast<uint64_t>(
          Uniform(rng, 1, std::min<int>(4, static_cast<int>(seq->size() - e.pos))));
      h->oracle.Delete(seq, e.pos, e.len);
      cur.counter += e.len;
    } else {
      e.pos = InsertPos(rng, *h, seq->size());
      const std::vector<uint32_t> cps = FreshRun(rng, &h->alphabet);
      e.text = Utf8(cps);
      Typed t = cur;
      t.saw.Add(cur.replica, first, cur.counter);  // the request's earlier edits
      h->oracle.Insert(seq, e.pos, cps, typed != nullptr ? &t : nullptr);
      cur.counter += cps.size();
    }
    edits.push_back(std::move(e));
  }
  return edits;
}

// An edit by `me` at t's current version.
Typed Now(const Text& t, const ReplicaId& me) {
  Typed typed;
  typed.replica = me;
  typed.saw = t.version();
  typed.counter = typed.saw.Next(me);
  return typed;
}

std::string OpFailed(const char* what, const Status& st) {
  return std::string(what) + " failed: " + st.ToString();
}

TextHistory RunTextHistory(uint64_t seed, const HistoryOptions& opt = HistoryOptions()) {
  Rng rng(seed);
  TextHistory h;
  h.hot = Chance(rng, 0.3);
  const int n = opt.replicas;
  h.replicas.resize(n);
  h.snapshots.resize(n);
  for (int r = 0; r < n; ++r) h.snapshots[r].push_back(Snapshot{});
  struct Message {
    int to;
    size_t delta;
  };
  std::vector<Message> network;

  auto snapshot = [&](int r) {
    Snapshot s{h.replicas[r].version(), CodePoints(h.replicas[r].Content())};
    h.snapshots[r].push_back(std::move(s));
  };
  auto deliver = [&](size_t k) -> std::string {
    const Message m = network[k];
    network[k] = network.back();
    network.pop_back();
    const Text& d = h.deltas[m.delta];
    if (Chance(rng, 0.2)) {
      // Over the wire: a delta decodes as any state does.
      Text wire;
      const Status st = Text::Decode(d.Encode(), &wire);
      if (!st.ok()) return OpFailed("decoding a delta", st);
      h.replicas[m.to].Merge(wire);
    } else {
      h.replicas[m.to].Merge(d);
    }
    if (Chance(rng, 0.3)) snapshot(m.to);
    return "";
  };

  const int ops = Uniform(rng, opt.min_ops, opt.max_ops);
  for (int i = 0; i < ops; ++i) {
    int deliveries = network.empty() ? 0 : Uniform(rng, 0, static_cast<int>(network.size()));
    for (int k = 0; k < deliveries && !network.empty(); ++k) {
      h.error = deliver(static_cast<size_t>(Uniform(rng, 0, static_cast<int>(network.size()) - 1)));
      if (!h.error.empty()) return h;
    }
    if (Chance(rng, opt.state_merge)) {
      const int a = Uniform(rng, 0, n - 1), b = Uniform(rng, 0, n - 1);
      Text whole;
      const std::string bytes = h.replicas[b].Encode();
      const Status st =
          Chance(rng, 0.5) ? Text::Decode(bytes, &whole) : Text::DecodeTrusted(bytes, &whole);
      if (!st.ok()) {
        h.error = OpFailed("decoding a whole state", st);
        return h;
      }
      h.replicas[a].Merge(whole);
      snapshot(a);
    }
    if (Chance(rng, opt.repair)) {
      const int a = Uniform(rng, 0, n - 1), b = Uniform(rng, 0, n - 1);
      h.replicas[a].Merge(h.replicas[b].DeltaSince(h.replicas[a].version()));
      snapshot(a);
    }

    // One edit request at a random replica (or a burst of them: typing or
    // deleting character by character, each its own delta).
    const int r = Uniform(rng, 0, n - 1);
    const ReplicaId me = ReplicaFor(r);
    Text& t = h.replicas[r];
    std::vector<uint32_t> seq = CodePoints(t.Content());
    // Checks the edit, records it and ships its delta. `now`: its
    // positions referred to the current version, so `seq` is the result.
    auto done = [&](const Status& st, bool now, Text delta) -> bool {
      if (!st.ok()) {
        h.error = "edit " + std::to_string(i) + " at replica " + std::to_string(r) +
                  " failed: " + st.ToString();
        return false;
      }
      const std::string content = t.Content();
      const std::vector<uint32_t> got = CodePoints(content);
      if (now && got != seq) {
        h.error = "edit " + std::to_string(i) + " at replica " + std::to_string(r) + " gave '" +
                  content + "', expected '" + Utf8(seq) + "'";
        return false;
      }
      if (t.Length() != got.size()) {
        h.error = "Length() differs from the code points of Content()";
        return false;
      }
      snapshot(r);
      if (Chance(rng, opt.keep_old)) h.old_states.emplace_back(r, t);
      const size_t id = h.deltas.size();
      h.deltas.push_back(std::move(delta));
      for (int to = 0; to < n; ++to) {
        if (to == r || Chance(rng, opt.loss)) continue;
        network.push_back({to, id});
        if (Chance(rng, opt.duplicate)) network.push_back({to, id});
      }
      return true;
    };
    Text delta;
    const int roll = Uniform(rng, 0, 99);
    if (roll < 30 || (roll < 57 && seq.empty()) || roll >= 96) {
      const uint64_t pos = InsertPos(rng, h, seq.size());
      std::vector<uint32_t> cps = FreshRun(rng, &h.alphabet);
      if (roll >= 96) {  // a paste
        for (int k = Uniform(rng, 10, 40); k > 0; --k) cps.push_back(h.alphabet.Fresh(rng));
      }
      const Typed typed = Now(t, me);
      h.oracle.Insert(&seq, pos, cps, &typed);
      if (!done(t.Insert(me, pos, Utf8(cps), &delta), true, std::move(delta))) return h;
    } else if (roll < 45) {
      const int pos = Uniform(rng, 0, static_cast<int>(seq.size()) - 1);
      const int len = Uniform(rng, 1, std::min<int>(5, static_cast<int>(seq.size()) - pos));
      h.oracle.Delete(&seq, static_cast<size_t>(pos), static_cast<size_t>(len));
      const Status st = t.Delete(me, static_cast<uint64_t>(pos), static_cast<uint64_t>(len), &delta);
      if (!done(st, true, std::move(delta))) return h;
    } else if (roll < 57) {
      // Typing forwards or backwards, backspacing, or forward-deleting.
      const int kind = Uniform(rng, 0, 3);
      int pos = static_cast<int>(InsertPos(rng, h, seq.size()));
      for (int k = Uniform(rng, 2, 8); k > 0; --k) {
        Status st;
        if (kind <= 1) {
          const std::vector<uint32_t> one = {h.alphabet.Fresh(rng)};
          const Typed typed = Now(t, me);
          h.oracle.Insert(&seq, static_cast<size_t>(pos), one, &typed);
          st = t.Insert(me, static_cast<uint64_t>(pos), Utf8(one), &delta);
          if (kind == 0) ++pos;
        } else {
          if (kind == 2) --pos;  // backspace
          if (pos < 0 || pos >= static_cast<int>(seq.size())) break;
          h.oracle.Delete(&seq, static_cast<size_t>(pos), 1);
          st = t.Delete(me, static_cast<uint64_t>(pos), 1, &delta);
        }
        if (!done(st, true, std::move(delta))) return h;
      }
    } else if (roll < 77) {
      // At a version this replica held earlier (the latest may be now).
      const auto& snaps = h.snapshots[r];
      const Snapshot& s = snaps[static_cast<size_t>(Uniform(rng, 0, static_cast<int>(snaps.size()) - 1))];
      TextVersion at = s.version;
      if (Chance(rng, 0.3)) {
        // As a client would hand it back: through its token bytes.
        TextVersion back;
        const Status st = TextVersion::Decode(at.Encode(), &back);
        if (!st.ok() || back != at) {
          h.error = "a version does not survive its encoding: " + st.ToString();
          return h;
        }
        at = back;
      }
      std::vector<uint32_t> old = s.content;
      const Typed typed{me, t.version().Next(me), at};
      const std::vector<TextEdit> edits = RandomEdits(rng, &h, &old, Uniform(rng, 1, 3), &typed);
      h.oracle.orders.push_back(old);
      if (!done(t.Apply(me, &at, edits, &delta), false, std::move(delta))) return h;
    } else if (roll < 93) {
      const Typed typed = Now(t, me);
      const std::vector<TextEdit> edits = RandomEdits(rng, &h, &seq, Uniform(rng, 1, 4), &typed);
      Status st;
      if (Chance(rng, 0.5)) {
        st = t.Apply(me, nullptr, edits, &delta);
      } else {
        const TextVersion v = t.version();
        st = t.Apply(me, &v, edits, &delta);
      }
      if (!done(st, true, std::move(delta))) return h;
    } else {
      for (uint32_t c : seq) h.oracle.chars.at(c).deleted = true;
      seq.clear();
      if (!done(t.DeleteAll(me, &delta), true, std::move(delta))) return h;
    }
  }
  // Part of the network stays undelivered: the final repair covers it.
  while (!network.empty() && Chance(rng, 0.5)) {
    h.error = deliver(static_cast<size_t>(Uniform(rng, 0, static_cast<int>(network.size()) - 1)));
    if (!h.error.empty()) return h;
  }
  return h;
}

// MERIDIAN_SEED replays one history; otherwise `count` from kBaseSeed.
struct Seeds {
  uint64_t base;
  int count;
};
Seeds SeedsFor(int divisor) {
  if (const char* s = std::getenv("MERIDIAN_SEED")) return {std::strtoull(s, nullptr, 10), 1};
  return {kBaseSeed, std::max(1, HistoriesFromEnv() / divisor)};
}

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs check(seed) for every seed; stops after three failures.
template <class F>
void ForEachSeed(const char* what, int divisor, F check) {
  const Seeds seeds = SeedsFor(divisor);
  const auto t0 = std::chrono::steady_clock::now();
  int failures = 0;
  for (int i = 0; i < seeds.count; ++i) {
    const uint64_t seed = seeds.base + static_cast<uint64_t>(i);
    const std::string err = check(seed);
    if (!err.empty()) {
      BOOST_ERROR(what << ": " << err << "  (replay: MERIDIAN_SEED=" << seed << ")");
      if (++failures >= 3) break;
    }
  }
  std::cout << "text: " << what << ": " << seeds.count << " histories from seed " << seeds.base
            << ", " << failures << " failed, " << Since(t0) << " s\n";
}

}  // namespace

// ===================================================== 1. convergence

namespace {

std::string CheckConvergence(uint64_t seed, const HistoryOptions& opt, size_t* runs = nullptr) {
  TextHistory h = RunTextHistory(seed, opt);
  if (!h.error.empty()) return h.error;
  Rng rng(seed ^ 0x5bd1e995u);
  // Repair everyone: one pass of DeltaSince repairs (the first replica
  // gathers everything, then hands it on), or a whole-state exchange.
  const size_t n = h.replicas.size();
  if (Chance(rng, 0.5)) {
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) {
        if (i != j) h.replicas[i].Merge(h.replicas[j].DeltaSince(h.replicas[i].version()));
      }
    }
  } else {
    Text all;
    for (const Text& r : h.replicas) all.Merge(r);
    for (Text& r : h.replicas) r.Merge(all);
  }
  const std::string bytes = h.replicas[0].Encode();
  const std::string content = h.replicas[0].Content();
  for (size_t i = 0; i < n; ++i) {
    const std::string who = "replica " + std::to_string(i);
    if (h.replicas[i].PendingCount() != 0) return who + " still has edits waiting";
    if (h.replicas[i].Content() != content) {
      return who + " shows '" + h.replicas[i].Content() + "', replica 0 '" + content + "'";
    }
    if (i > 0 && h.replicas[i].Encode() != bytes) return who + "'s bytes differ from replica 0's";
    if (h.replicas[i].version() != h.replicas[0].version()) return who + "'s version differs";
  }
  Text again, trusted;
  Status st = Text::Decode(bytes, &again);
  if (!st.ok()) return "the converged state does not decode: " + st.ToString();
  if (again.Encode() != bytes) return "the converged state does not re-encode to its bytes";
  st = Text::DecodeTrusted(bytes, &trusted);
  if (!st.ok() || trusted.Encode() != bytes || trusted.Content() != content) {
    return "DecodeTrusted disagrees on the converged state: " + st.ToString();
  }
  std::vector<std::vector<uint32_t>> seen;
  for (const auto& snaps : h.snapshots) {
    for (const Snapshot& s : snaps) seen.push_back(s.content);
  }
  if (runs != nullptr) *runs = std::max(*runs, h.replicas[0].RunCount());
  return h.oracle.Check(CodePoints(content), seen);
}

}  // namespace

BOOST_AUTO_TEST_CASE(random_concurrent_editing_converges_to_the_oracle) {
  ForEachSeed("convergence", 10,
              [](uint64_t seed) { return CheckConvergence(seed, HistoryOptions()); });
}

// Long histories: documents of thousands of characters in over a thousand
// runs, so that the tree has inner nodes that split.
BOOST_AUTO_TEST_CASE(long_histories_converge_to_the_oracle) {
  HistoryOptions opt;
  opt.min_ops = 400;
  opt.max_ops = 600;
  opt.state_merge = 0.01;
  opt.repair = 0.01;
  size_t runs = 0;
  ForEachSeed("long histories", 2000, [&](uint64_t seed) {
    // Offset, so these are not the short histories' seeds.
    return CheckConvergence(seed + 1000000, opt, &runs);
  });
  std::cout << "text: long histories: up to " << runs << " runs\n";
  BOOST_TEST(runs > 16u * 32u);
}

// ============================================= 2 and 7. laws, round trips

namespace {

std::string CheckLaws(uint64_t seed) {
  HistoryOptions opt;
  opt.min_ops = 6;
  opt.max_ops = 25;
  opt.keep_old = 0.15;
  TextHistory h = RunTextHistory(seed, opt);
  if (!h.error.empty()) return h.error;
  Rng rng(seed ^ 0x27d4eb2fu);
  // The pool: replica states, old states, deltas (most hold waiting
  // edits), a repaired state, the bottom.
  std::vector<Text> pool = h.replicas;
  for (const auto& kv : h.old_states) pool.push_back(kv.second);
  for (size_t i = 0; i < 6 && !h.deltas.empty(); ++i) {
    pool.push_back(h.deltas[static_cast<size_t>(Uniform(rng, 0, static_cast<int>(h.deltas.size()) - 1))]);
  }
  pool.push_back(Join(h.deltas.empty() ? Text() : h.deltas.back(), h.replicas[0]));
  pool.push_back(Text());

  // 7: every state survives Decode and DecodeTrusted.
  for (size_t i = 0; i < pool.size(); ++i) {
    const std::string bytes = pool[i].Encode();
    Text a, b;
    Status st = Text::Decode(bytes, &a);
    if (!st.ok()) return "pool state " + std::to_string(i) + " does not decode: " + st.ToString();
    st = Text::DecodeTrusted(bytes, &b);
    if (!st.ok()) return "pool state " + std::to_string(i) + " fails DecodeTrusted: " + st.ToString();
    if (a.Encode() != bytes || b.Encode() != bytes) return "a decoded state re-encodes differently";
    const std::string which = "pool state " + std::to_string(i) + " (of " +
                              std::to_string(pool.size()) + ")";
    if (a.Content() != pool[i].Content() || b.Content() != pool[i].Content()) {
      return which + ": decoded content differs";
    }
    if (a.version() != pool[i].version() || b.version() != pool[i].version()) {
      return which + ": decoded version " + a.version().ToString() + " / " +
             b.version().ToString() + ", original " + pool[i].version().ToString();
    }
    // (PendingCount counts records, which the encoding joins: compare
    // whether anything waits.)
    if ((a.PendingCount() == 0) != (pool[i].PendingCount() == 0) ||
        (b.PendingCount() == 0) != (pool[i].PendingCount() == 0)) {
      return which + ": decoded pending count " + std::to_string(a.PendingCount()) + " / " +
             std::to_string(b.PendingCount()) + ", original " +
             std::to_string(pool[i].PendingCount());
    }
  }

  auto pick = [&]() -> const Text& {
    return pool[static_cast<size_t>(Uniform(rng, 0, static_cast<int>(pool.size()) - 1))];
  };
  for (int round = 0; round < 6; ++round) {
    const Text& a = pick();
    const Text& b = pick();
    const Text& c = pick();
    const std::string ab = Join(a, b).Encode();
    if (ab != Join(b, a).Encode()) return "not commutative";
    if (Join(Decoded(ab), c).Encode() != Join(a, Join(b, c)).Encode()) return "not associative";
    if (Join(a, a).Encode() != a.Encode()) return "not idempotent";
    if (Join(a, Text()).Encode() != a.Encode() || Join(Text(), a).Encode() != a.Encode()) {
      return "bottom is not the identity";
    }
    // A delta merged twice changes nothing.
    const Text& d = h.deltas.empty() ? b : h.deltas[static_cast<size_t>(
                                             Uniform(rng, 0, static_cast<int>(h.deltas.size()) - 1))];
    const Text once = Join(a, d);
    if (Join(once, d).Encode() != once.Encode()) return "a delta merged twice changed the state";
  }

  // DeltaSince(v) merged into a replica at v gives the full state.
  Text full;
  for (const Text& r : h.replicas) full.Merge(r);
  if (Join(Text(), full.DeltaSince(TextVersion())).Encode() != full.Encode()) {
    return "DeltaSince(empty version) is not the whole state";
  }
  for (size_t i = 0; i < h.replicas.size(); ++i) {
    const Text& x = h.replicas[i];
    if (Join(x, full.DeltaSince(x.version())).Encode() != full.Encode()) {
      return "replica " + std::to_string(i) + " + full.DeltaSince(its version) is not the full state";
    }
  }
  for (const auto& [r, x] : h.old_states) {
    if (Join(x, h.replicas[r].DeltaSince(x.version())).Encode() != h.replicas[r].Encode()) {
      return "an old state of replica " + std::to_string(r) +
             " + DeltaSince(its version) is not the replica's state";
    }
    if (Join(x, full.DeltaSince(x.version())).Encode() != full.Encode()) {
      return "an old state + full.DeltaSince(its version) is not the full state";
    }
  }

  // The delta law: s edited at r; x has seen s (x = s ⊔ y): merging the
  // edit's delta into x gives what merging the edited state does.
  for (int round = 0; round < 3; ++round) {
    const int r = Uniform(rng, 0, static_cast<int>(h.replicas.size()) - 1);
    Text s = h.replicas[r];
    const Text x = Join(s, pick());
    std::vector<uint32_t> seq = CodePoints(s.Content());
    const std::vector<TextEdit> edits = RandomEdits(rng, &h, &seq, Uniform(rng, 1, 3));
    Text delta;
    Status st;
    if (Chance(rng, 0.5) && h.snapshots[r].size() > 1) {
      // At an older version of r.
      const Snapshot& old = h.snapshots[r][static_cast<size_t>(
          Uniform(rng, 0, static_cast<int>(h.snapshots[r].size()) - 1))];
      std::vector<uint32_t> oseq = old.content;
      const std::vector<TextEdit> oedits = RandomEdits(rng, &h, &oseq, Uniform(rng, 1, 3));
      st = s.Apply(ReplicaFor(r), &old.version, oedits, &delta);
    } else {
      st = s.Apply(ReplicaFor(r), nullptr, edits, &delta);
    }
    if (!st.ok()) return OpFailed("an edit for the delta law", st);
    if (Join(x, delta).Encode() != Join(x, s).Encode()) {
      return "merging an edit's delta differs from merging the edited state";
    }
    if (Join(s, delta).Encode() != s.Encode()) return "an edit's delta is not absorbed by its state";
  }
  return "";
}

}  // namespace

BOOST_AUTO_TEST_CASE(join_laws_delta_since_and_round_trips_hold_on_random_states) {
  ForEachSeed("laws", 40, CheckLaws);
}

// ================================================ 3. non-interleaving

namespace {

// One replica typing a run character by character at `pos` of `base`:
// forwards (each after the one before) or backwards (each at `pos`,
// before the one typed before it). Returns the per-character deltas and
// leaves the replica's state in `local`.
std::vector<Text> Type(const Text& base, const ReplicaId& me, const std::string& run, uint64_t pos,
                       bool backwards, Text* local) {
  *local = base;
  std::vector<Text> deltas;
  for (size_t i = 0; i < run.size(); ++i) {
    Text d;
    REQUIRE_OK(local->Insert(me, backwards ? pos : pos + i, run.substr(i, 1), &d));
    deltas.push_back(std::move(d));
  }
  return deltas;
}

std::string Reversed(std::string s) {
  std::reverse(s.begin(), s.end());
  return s;
}

// True when `got` is prefix + the runs in some order + suffix.
bool Adjacent(const std::string& got, const std::string& prefix, const std::string& suffix,
              std::vector<std::string> runs) {
  std::sort(runs.begin(), runs.end());
  do {
    std::string want = prefix;
    for (const std::string& r : runs) want += r;
    if (got == want + suffix) return true;
  } while (std::next_permutation(runs.begin(), runs.end()));
  return false;
}

struct Place {
  const char* name;
  Text base;         // what every typist holds before typing
  Text alt_base[3];  // per typist, when it differs (a concurrent delete)
  uint64_t pos[3];   // where each typist types, in its own document
  std::string prefix, suffix;
};

std::vector<Place> Places() {
  std::vector<Place> out;
  Text d;
  {
    Place p{"an empty text", Text(), {}, {0, 0, 0}, "", ""};
    out.push_back(std::move(p));
  }
  {
    Text base;
    REQUIRE_OK(base.Insert(kC, 0, "HELLOWORLD", &d));
    Place p{"the middle of a text", base, {}, {5, 5, 5}, "HELLO", "WORLD"};
    out.push_back(std::move(p));
  }
  {
    // ", " deleted before anyone types: tombstones on the left.
    Text base;
    REQUIRE_OK(base.Insert(kC, 0, "HELLO, WORLD", &d));
    REQUIRE_OK(base.Delete(kC, 5, 2, &d));
    Place p{"after a delete nearby", base, {}, {5, 5, 5}, "HELLO", "WORLD"};
    out.push_back(std::move(p));
  }
  {
    // The first typist deletes ", " itself, concurrently with the others'
    // typing; each types between ' ' and 'W'.
    Text base;
    REQUIRE_OK(base.Insert(kC, 0, "HELLO, WORLD", &d));
    Text first = base;
    REQUIRE_OK(first.Delete(kA, 5, 2, &d));
    Place p{"beside a concurrent delete", base, {first, base, base}, {5, 7, 7}, "HELLO", "WORLD"};
    out.push_back(std::move(p));
  }
  {
    // The first typist deletes ", " and types where it was (after the
    // tombstones); the others type before ',' (before them).
    Text base;
    REQUIRE_OK(base.Insert(kC, 0, "HELLO, WORLD", &d));
    Text first = base;
    REQUIRE_OK(first.Delete(kA, 5, 2, &d));
    Place p{"on either side of a concurrent delete", base, {first, base, base}, {5, 5, 5}, "HELLO",
            "WORLD"};
    out.push_back(std::move(p));
  }
  {
    // Deletes on both sides of '|' ("HEL[LO]|[WO]RLD"), typed right after
    // the second: after '|' and the "WO" tombstones.
    Text base;
    REQUIRE_OK(base.Insert(kC, 0, "HELLO|WORLD", &d));
    REQUIRE_OK(base.Delete(kC, 6, 2, &d));
    REQUIRE_OK(base.Delete(kC, 3, 2, &d));
    Place p{"between deletes", base, {}, {4, 4, 4}, "HEL|", "RLD"};
    out.push_back(std::move(p));
  }
  return out;
}

// The deltas merged into `base` in order: the bytes (nothing may wait).
std::string MergeInOrder(const Text& base, const std::vector<const Text*>& deltas) {
  Text t = base;
  for (const Text* d : deltas) t.Merge(*d);
  BOOST_REQUIRE_EQUAL(t.PendingCount(), 0u);
  return t.Encode();
}

// 1 in the default run; 10 in the sanitizer run (MERIDIAN_HISTORIES=1000):
// the exhaustive loops below try every Stride()-th case.
int Stride() { return std::max(1, 10000 / HistoriesFromEnv()); }

}  // namespace

BOOST_AUTO_TEST_CASE(two_runs_typed_concurrently_at_one_place_never_interleave) {
  const ReplicaId typists[2] = {kA, kB};
  const std::string runs[2] = {"abc", "xyz"};
  for (Place& place : Places()) {
    for (int dirs = 0; dirs < 4; ++dirs) {
      const bool back[2] = {(dirs & 1) != 0, (dirs & 2) != 0};
      BOOST_TEST_CONTEXT(place.name << ", " << (back[0] ? "bwd" : "fwd") << "/"
                                    << (back[1] ? "bwd" : "fwd")) {
        Text local[2];
        std::vector<Text> deltas[2];
        std::vector<std::string> typed;
        for (int k = 0; k < 2; ++k) {
          const Text& base = place.alt_base[k].IsBottom() ? place.base : place.alt_base[k];
          deltas[k] = Type(base, typists[k], runs[k], place.pos[k], back[k], &local[k]);
          typed.push_back(back[k] ? Reversed(runs[k]) : runs[k]);
        }
        // The concurrent delete (if any) travels as a delta too.
        const bool has_delete = !place.alt_base[0].IsBottom();
        const Text del = has_delete ? place.alt_base[0].DeltaSince(place.base.version()) : Text();
        std::vector<const Text*> typed_deltas;
        for (auto& ds : deltas) {
          for (const Text& d : ds) typed_deltas.push_back(&d);
        }
        const Text want = Join(local[0], local[1]);
        const std::string want_bytes = want.Encode();
        BOOST_TEST_REQUIRE(Adjacent(want.Content(), place.prefix, place.suffix, typed),
                           "got '" << want.Content() << "'");
        BOOST_TEST(Join(local[1], local[0]).Encode() == want_bytes);
        // Every delivery order of the six deltas gives the same bytes (the
        // delete goes in at every place in turn).
        std::vector<int> order(typed_deltas.size());
        std::iota(order.begin(), order.end(), 0);
        const int stride = Stride();
        int index = 0, tried = 0;
        do {
          if (index++ % stride != dirs % stride) continue;
          std::vector<const Text*> seq;
          for (int i : order) seq.push_back(typed_deltas[static_cast<size_t>(i)]);
          if (has_delete) seq.insert(seq.begin() + index % 7, &del);
          const std::string got = MergeInOrder(place.base, seq);
          ++tried;
          if (got != want_bytes) {
            BOOST_ERROR("delivery order " << index - 1 << " gives '" << Decoded(got).Content()
                                          << "', expected '" << want.Content() << "'");
            break;
          }
        } while (std::next_permutation(order.begin(), order.end()));
        BOOST_TEST(tried >= 720 / stride);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(three_runs_typed_concurrently_at_one_place_never_interleave) {
  const ReplicaId typists[3] = {kA, kB, kD};
  const std::string runs[3] = {"abc", "xyz", "123"};
  Rng rng(kBaseSeed);
  for (Place& place : Places()) {
    if (!place.alt_base[0].IsBottom()) continue;  // the two-typist cases
    for (int dirs = 0; dirs < 8; ++dirs) {
      BOOST_TEST_CONTEXT(place.name << ", directions " << dirs) {
        Text local[3];
        std::vector<Text> deltas[3];
        std::vector<std::string> typed;
        for (int k = 0; k < 3; ++k) {
          const bool back = (dirs >> k) & 1;
          deltas[k] = Type(place.base, typists[k], runs[k], place.pos[k], back, &local[k]);
          typed.push_back(back ? Reversed(runs[k]) : runs[k]);
        }
        const Text want = Join(Join(local[0], local[1]), local[2]);
        BOOST_TEST_REQUIRE(Adjacent(want.Content(), place.prefix, place.suffix, typed),
                           "got '" << want.Content() << "'");
        std::vector<const Text*> all;
        for (auto& ds : deltas) {
          for (const Text& x : ds) all.push_back(&x);
        }
        const std::string want_bytes = want.Encode();
        for (int trial = 0; trial < std::max(20, 150 / Stride()); ++trial) {
          std::shuffle(all.begin(), all.end(), rng);
          const std::string got = MergeInOrder(place.base, all);
          if (got != want_bytes) {
            BOOST_ERROR("delivery order " << trial << " gives '" << Decoded(got).Content()
                                          << "', expected '" << want.Content() << "'");
            break;
          }
        }
      }
    }
  }
}

// ================================================= 4. code points, UTF-8

BOOST_AUTO_TEST_CASE(positions_count_code_points) {
  // a, U+1F600 (4 bytes), U+4E2D (3 bytes), e, U+0301 (combining acute), z
  const std::string emoji = "\xF0\x9F\x98\x80", cjk = "\xE4\xB8\xAD", acute = "\xCC\x81";
  Text t, d;
  REQUIRE_OK(t.Insert(kA, 0, "a" + emoji + cjk + "e" + acute + "z", &d));
  BOOST_TEST(t.Length() == 6u);
  REQUIRE_OK(t.Insert(kA, 2, "X", &d));  // after the emoji
  BOOST_TEST(t.Content() == "a" + emoji + "X" + cjk + "e" + acute + "z");
  REQUIRE_OK(t.Insert(kA, 5, "Y", &d));  // between e and its accent
  BOOST_TEST(t.Content() == "a" + emoji + "X" + cjk + "eY" + acute + "z");
  REQUIRE_OK(t.Delete(kA, 1, 1, &d));  // the emoji, all four bytes
  BOOST_TEST(t.Content() == "aX" + cjk + "eY" + acute + "z");
  REQUIRE_OK(t.Delete(kA, 5, 1, &d));  // the accent alone
  BOOST_TEST(t.Content() == "aX" + cjk + "eYz");
  REQUIRE_OK(t.Delete(kA, 2, 1, &d));  // the CJK character
  BOOST_TEST(t.Content() == "aXeYz");
  BOOST_TEST(t.Length() == 5u);
  REQUIRE_OK(t.Insert(kA, 5, emoji + emoji, &d));  // at the end
  BOOST_TEST(t.Length() == 7u);
  BOOST_TEST(Decoded(t.Encode()).Content() == t.Content());

  // A run of multi-byte characters split by a concurrent insert and a
  // delete, and a DeltaSince that starts inside the run.
  Text a, b, x;
  REQUIRE_OK(a.Insert(kA, 0, emoji + cjk, &x));
  const Text at_two = a;
  REQUIRE_OK(a.Insert(kA, 2, "\xC3\xA9" + cjk, &x));  // extends the same run
  BOOST_TEST(a.RunCount() == 1u);
  const Text tail = a.DeltaSince(at_two.version());
  BOOST_TEST(Join(at_two, tail).Encode() == a.Encode());
  BOOST_TEST(Join(at_two, tail).Content() == emoji + cjk + "\xC3\xA9" + cjk);
  b = a;
  REQUIRE_OK(a.Delete(kA, 1, 1, &x));     // the first CJK character
  REQUIRE_OK(b.Insert(kB, 2, "Z", &x));   // between it and the é
  const Text ab = Join(a, b);
  BOOST_TEST(ab.Content() == emoji + "Z\xC3\xA9" + cjk);
  BOOST_TEST(ab.Encode() == Join(b, a).Encode());
  BOOST_TEST(Decoded(ab.Encode()).Content() == ab.Content());

  // Edges of the code point ranges are well-formed.
  for (const std::string& ok : {std::string("\xC2\x80"), std::string("\xDF\xBF"),
                               std::string("\xE0\xA0\x80"), std::string("\xED\x9F\xBF"),
                               std::string("\xEE\x80\x80"), std::string("\xEF\xBF\xBF"),
                               std::string("\xF0\x90\x80\x80"), std::string("\xF4\x8F\xBF\xBF"),
                               std::string("\x7F"), std::string(1, '\0')}) {
    Text e;
    REQUIRE_OK(e.Insert(kA, 0, "a" + ok + "b", &x));
    BOOST_TEST(e.Length() == 3u, "for " << Hex(ok));
    BOOST_TEST(e.Content() == "a" + ok + "b");
  }
}

BOOST_AUTO_TEST_CASE(invalid_utf8_is_refused_and_changes_nothing) {
  const std::vector<std::string> bad = {
      "\xC0\xAF",              // overlong '/'
      "\xC1\xBF",              // overlong
      "\xE0\x80\xAF",          // overlong, 3 bytes
      "\xE0\x9F\xBF",          // overlong U+07FF
      "\xF0\x80\x80\xAF",      // overlong, 4 bytes
      "\xF0\x8F\xBF\xBF",      // overlong U+FFFF
      "\xED\xA0\x80",          // surrogate U+D800
      "\xED\xBF\xBF",          // surrogate U+DFFF
      "\xED\xB0\x80",          // low surrogate U+DC00
      "\xE4\xB8",              // truncated CJK
      "\xF0\x9F\x98",          // truncated emoji
      "\xC3",                  // truncated at the end
      "\xF4\x90\x80\x80",      // U+110000
      "\xF5\x80\x80\x80",      // lead byte past U+10FFFF
      "\xF7\xBF\xBF\xBF",      // U+1FFFFF
      "\xF8\x88\x80\x80\x80",  // 5-byte form
      "\xFC\x84\x80\x80\x80\x80",
      "\x80",                  // lone continuation
      "\xBF",
      "\xFE",
      "\xFF",
      "\xC3\x28",              // bad continuation
      "\xE4\x28\xAD",
      "\xF0\x9F\x28\x80",
  };
  Text t, d;
  REQUIRE_OK(t.Insert(kA, 0, "h\xC3\xA9llo", &d));
  REQUIRE_OK(t.Delete(kA, 1, 1, &d));
  const std::string before = t.Encode();
  const TextVersion version = t.version();
  for (const std::string& b : bad) {
    // Alone, in the middle of text, and after ASCII runs of every length
    // around the 8-byte fast path.
    std::vector<std::string> texts = {b, "ab" + b + "cd"};
    for (int k = 1; k <= 17; ++k) texts.push_back(std::string(static_cast<size_t>(k), 'a') + b + "zz");
    for (const std::string& s : texts) {
      BOOST_TEST_CONTEXT("bytes " << Hex(s)) {
        Status st = t.Insert(kA, 1, s, &d);
        BOOST_TEST(st.IsInvalidArgument(), st.ToString());
        st = t.Insert(kB, 0, s, nullptr);
        BOOST_TEST(st.IsInvalidArgument(), st.ToString());
        std::vector<TextEdit> edits(2);
        edits[0].text = "ok";
        edits[1].pos = 1;
        edits[1].text = s;
        st = t.Apply(kB, nullptr, edits, &d);
        BOOST_TEST(st.IsInvalidArgument(), st.ToString());
        st = t.Apply(kB, &version, edits, &d);
        BOOST_TEST(st.IsInvalidArgument(), st.ToString());
        BOOST_TEST_REQUIRE(t.Encode() == before);
        BOOST_TEST_REQUIRE(t.version() == version);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(positions_past_the_end_are_refused_and_change_nothing) {
  Text t, d;
  REQUIRE_OK(t.Insert(kA, 0, "ab\xE4\xB8\xAD" "d", &d));  // 4 code points, 6 bytes
  const std::string before = t.Encode();
  const TextVersion version = t.version();
  auto unchanged = [&] {
    BOOST_TEST(t.Encode() == before);
    BOOST_TEST(t.version() == version);
  };
  const uint64_t kHuge = ~uint64_t{0};
  BOOST_TEST(t.Insert(kA, 5, "x", &d).IsInvalidArgument());
  BOOST_TEST(t.Insert(kA, 6, "x", &d).IsInvalidArgument());  // bytes, not code points
  BOOST_TEST(t.Insert(kA, kHuge, "x", &d).IsInvalidArgument());
  BOOST_TEST(t.Delete(kA, 4, 1, &d).IsInvalidArgument());
  BOOST_TEST(t.Delete(kA, 5, 0, &d).IsInvalidArgument());
  BOOST_TEST(t.Delete(kA, 0, 5, &d).IsInvalidArgument());
  BOOST_TEST(t.Delete(kA, 1, kHuge, &d).IsInvalidArgument());  // pos + len overflows
  BOOST_TEST(t.Delete(kA, kHuge, 2, &d).IsInvalidArgument());
  BOOST_TEST(t.Insert(ReplicaId{"", 1}, 0, "x", &d).IsInvalidArgument());
  unchanged();
  // The ends themselves are fine.
  Text u = t;
  REQUIRE_OK(u.Insert(kA, 4, "e", &d));
  REQUIRE_OK(u.Delete(kA, 5, 0, &d));
  REQUIRE_OK(u.Delete(kA, 0, 5, &d));
  BOOST_TEST(u.Content() == "");

  // Apply counts each edit against the document the ones before it left.
  std::vector<TextEdit> grow(2);
  grow[0].pos = 4;
  grow[0].text = "\xF0\x9F\x98\x80!";  // 2 code points: length 6
  grow[1].insert = false;
  grow[1].pos = 5;
  grow[1].len = 1;
  u = t;
  REQUIRE_OK(u.Apply(kB, nullptr, grow, &d));
  BOOST_TEST(u.Content() == "ab\xE4\xB8\xAD" "d\xF0\x9F\x98\x80");
  std::vector<TextEdit> shrink(2);
  shrink[0].insert = false;
  shrink[0].pos = 0;
  shrink[0].len = 4;
  shrink[1].pos = 1;  // the text is empty now
  shrink[1].text = "x";
  BOOST_TEST(t.Apply(kB, nullptr, shrink, &d).IsInvalidArgument());
  unchanged();

  // At an older version, positions count that version's characters.
  Text v = t;
  REQUIRE_OK(v.Delete(kA, 0, 3, &d));  // "d"
  std::vector<TextEdit> at_end(1);
  at_end[0].pos = 4;
  at_end[0].text = "!";
  BOOST_TEST(v.Apply(kA, nullptr, at_end, &d).IsInvalidArgument());
  const std::string vbefore = v.Encode();
  Text w = v;
  REQUIRE_OK(w.Apply(kA, &version, at_end, &d));  // the end of "ab中d"
  BOOST_TEST(w.Content() == "d!");
  at_end[0].pos = 5;
  BOOST_TEST(v.Apply(kA, &version, at_end, &d).IsInvalidArgument());
  BOOST_TEST(v.Encode() == vbefore);
}

BOOST_AUTO_TEST_CASE(apply_is_all_or_nothing) {
  Text t, d;
  REQUIRE_OK(t.Insert(kA, 0, "hello", &d));
  const TextVersion old = t.version();
  REQUIRE_OK(t.Insert(kA, 5, " world", &d));
  REQUIRE_OK(t.Delete(kA, 0, 1, &d));
  const std::string before = t.Encode();
  const TextVersion version = t.version();
  const std::string marker = d.Encode();

  std::vector<TextEdit> edits(3);
  edits[0].pos = 0;
  edits[0].text = "H";
  edits[1].insert = false;
  edits[1].pos = 1;
  edits[1].len = 2;
  const std::vector<TextEdit> third_options = [] {
    std::vector<TextEdit> o(4);
    o[0].text = "\xED\xA0\x80";  // surrogate
    o[1].pos = 100;              // past the end
    o[1].text = "x";
    o[2].insert = false;         // delete past the end
    o[2].pos = 3;
    o[2].len = 100;
    o[3].insert = false;
    o[3].pos = 100;
    o[3].len = 0;
    return o;
  }();
  for (const TextVersion* at : {static_cast<const TextVersion*>(nullptr), &old, &version}) {
    for (const TextEdit& bad : third_options) {
      edits[2] = bad;
      const Status st = t.Apply(kB, at, edits, &d);
      BOOST_TEST(st.IsInvalidArgument(), st.ToString());
      BOOST_TEST_REQUIRE(t.Encode() == before);
      BOOST_TEST_REQUIRE(t.version() == version);
      BOOST_TEST(t.Content() == "ello world");
    }
  }
  // Without the bad edit the same request goes through, at every version.
  edits.pop_back();
  Text a = t, b = t, c = t;
  REQUIRE_OK(a.Apply(kB, nullptr, edits, &d));
  BOOST_TEST(a.Content() == "Hlo world");
  REQUIRE_OK(b.Apply(kB, &version, edits, &d));
  BOOST_TEST(b.Encode() == a.Encode());
  REQUIRE_OK(c.Apply(kB, &old, edits, &d));  // "hello" then: "Hhello", delete "he"
  BOOST_TEST(c.Content() == "Hllo world");
}

// =============================================== 5. older versions

BOOST_AUTO_TEST_CASE(an_edit_at_an_older_version_is_an_edit_by_a_replica_that_held_it) {
  // A fixed case first: the version is a prefix of one run.
  Text d;
  Text held;
  REQUIRE_OK(held.Insert(kA, 0, "ab", &d));
  Text now = held;
  REQUIRE_OK(now.Insert(kA, 2, "cd", &d));    // extends the run
  REQUIRE_OK(now.Delete(kA, 0, 1, &d));       // "bcd"
  for (const ReplicaId& editor : {ReplicaId{"0-first", 1}, ReplicaId{"z-last", 1}}) {
    std::vector<TextEdit> edits(2);
    edits[0].pos = 2;  // after "ab": the end of the old version
    edits[0].text = "X";
    edits[1].insert = false;
    edits[1].pos = 0;  // 'a', already deleted now
    edits[1].len = 1;
    const TextVersion v = held.version();
    Text way1 = now, d1;
    REQUIRE_OK(way1.Apply(editor, &v, edits, &d1));
    Text way2 = held, d2;
    REQUIRE_OK(way2.Apply(editor, nullptr, edits, &d2));
    BOOST_TEST(way1.Encode() == Join(now, d2).Encode());
    BOOST_TEST(way1.Encode() == Join(now, way2).Encode());
    BOOST_TEST(Join(held, d1).Encode() == way2.Encode());
    BOOST_TEST((way1.Content() == "bXcd" || way1.Content() == "bcdX"), way1.Content());
  }

  // Random states: a replica's state S and an earlier state T of it
  // (version v). Editor E edits S at v (way 1) or T at T's own version
  // (way 2): the results agree, byte for byte.
  ForEachSeed("older versions", 50, [](uint64_t seed) -> std::string {
    HistoryOptions opt;
    opt.min_ops = 8;
    opt.max_ops = 30;
    opt.keep_old = 0.25;
    TextHistory h = RunTextHistory(seed, opt);
    if (!h.error.empty()) return h.error;
    Rng rng(seed ^ 0x1b873593u);
    const ReplicaId editors[2] = {ReplicaId{"0-editor", 1}, ReplicaId{"zz-editor", 1}};
    for (const auto& [r, old] : h.old_states) {
      const Text& s = h.replicas[r];
      const ReplicaId& e = editors[Uniform(rng, 0, 1)];
      std::vector<uint32_t> seq = CodePoints(old.Content());
      const std::vector<TextEdit> edits = RandomEdits(rng, &h, &seq, Uniform(rng, 1, 4));
      const TextVersion v = old.version();
      Text way1 = s, d1;
      Status st = way1.Apply(e, &v, edits, &d1);
      if (!st.ok()) return OpFailed("the edit at the old version", st);
      Text way2 = old, d2;
      st = way2.Apply(e, nullptr, edits, &d2);
      if (!st.ok()) return OpFailed("the edit at the holder of the old version", st);
      if (CodePoints(way2.Content()) != seq) return "the holder's edit gave an unexpected text";
      const Text merged = Join(s, d2);
      if (way1.Content() != merged.Content()) {
        return "edited at v: '" + way1.Content() + "'; by a holder of v: '" + merged.Content() + "'";
      }
      if (way1.Encode() != merged.Encode()) return "the two ways differ in bytes";
      if (d1.Encode() != d2.Encode()) return "the two ways give different deltas";
      if (Join(old, d1).Encode() != way2.Encode()) return "the delta of way 1 at the holder differs";
    }
    return "";
  });
}

BOOST_AUTO_TEST_CASE(a_version_naming_unseen_or_waiting_edits_is_refused) {
  Text a, b, d;
  REQUIRE_OK(a.Insert(kA, 0, "shared", &d));
  b = a;
  REQUIRE_OK(b.Insert(kB, 6, "!", &d));
  const std::string before = a.Encode();
  std::vector<TextEdit> edits(1);
  edits[0].text = "x";
  const TextVersion bv = b.version();
  Status st = a.Apply(kA, &bv, edits, &d);
  BOOST_TEST(st.IsFailedPrecondition(), st.ToString());
  BOOST_TEST(a.Encode() == before);
  // A dot of a replica this state has never heard of.
  TextVersion stranger = a.version();
  stranger.Add(ReplicaId{"stranger", 1}, 1, 2);
  st = a.Apply(kA, &stranger, edits, &d);
  BOOST_TEST(st.IsFailedPrecondition(), st.ToString());
  // One counter past what it has of a known replica.
  TextVersion ahead = a.version();
  ahead.Add(kA, 7, 8);
  st = a.Apply(kA, &ahead, edits, &d);
  BOOST_TEST(st.IsFailedPrecondition(), st.ToString());
  BOOST_TEST(a.Encode() == before);

  // A character this state holds but that waits for its neighbours.
  Text waiting;
  REQUIRE_OK(TextWaiting(kA, kB, &waiting));
  const std::string wbefore = waiting.Encode();
  TextVersion pending_dot = waiting.version();
  pending_dot.Add(kA, 3, 4);  // "c", waiting for "b"
  st = waiting.Apply(kB, &pending_dot, edits, &d);
  BOOST_TEST(st.IsFailedPrecondition(), st.ToString());
  BOOST_TEST(waiting.Encode() == wbefore);
  // Its own version works.
  const TextVersion wv = waiting.version();
  REQUIRE_OK(waiting.Apply(kB, &wv, edits, &d));
}

// ==================================================== 6. packed bytes

namespace {

// Varint columns as text.cc writes them.
struct Col {
  std::string b;
  Col& U(uint64_t v) {
    while (v >= 0x80) {
      b.push_back(static_cast<char>((v & 0x7F) | 0x80));
      v >>= 7;
    }
    b.push_back(static_cast<char>(v));
    return *this;
  }
  Col& S(int64_t v) { return U((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); }
};

// The msgpack body [replicas, version, runs, text, pending, pending_text,
// deletes, extra] (see the top of crdt/text.cc).
std::string Body(const std::vector<ReplicaId>& replicas, const std::vector<std::string>& versions,
                 const std::string& runs, const std::string& text, const std::string& deletes = "") {
  Encoder e;
  e.Array(8);
  e.Array(static_cast<uint32_t>(replicas.size()));
  for (const ReplicaId& r : replicas) EncodeReplica(r, &e);
  e.Array(static_cast<uint32_t>(versions.size()));
  for (const std::string& v : versions) e.Bin(v);
  e.Bin(runs);
  e.Bin(text);
  e.Bin("");  // pending runs
  e.Bin("");  // their text
  e.Bin(deletes);
  e.Bin("");  // second deletes
  return e.Take();
}

// The version byte, then [mode, raw size, bin].
std::string Wrap(uint64_t mode, uint64_t raw_size, const std::string& bin) {
  Encoder e(Text::kFormatVersion);
  e.Array(3);
  e.Uint(mode);
  e.Uint(raw_size);
  e.Bin(bin);
  return e.Take();
}

std::string Deflate(const std::string& raw) {
  uLongf len = compressBound(raw.size());
  std::string out(len, '\0');
  BOOST_REQUIRE(compress2(reinterpret_cast<Bytef*>(out.data()), &len,
                          reinterpret_cast<const Bytef*>(raw.data()), raw.size(), 6) == Z_OK);
  out.resize(len);
  return out;
}

std::string Inflate(const std::string& packed, size_t raw_size) {
  std::string out(raw_size, '\0');
  uLongf len = raw_size;
  BOOST_REQUIRE(uncompress(reinterpret_cast<Bytef*>(out.data()), &len,
                           reinterpret_cast<const Bytef*>(packed.data()), packed.size()) == Z_OK);
  BOOST_REQUIRE_EQUAL(len, raw_size);
  return out;
}

// The body inside an encoding (packed or not).
std::string BodyOf(const std::string& bytes) {
  Decoder d;
  REQUIRE_OK(d.Parse(bytes, Text::kFormatVersion));
  std::vector<Cursor> top;
  REQUIRE_OK(d.root().Array(&top, "text", 3));
  uint64_t mode, size;
  std::string bin;
  REQUIRE_OK(top[0].Uint(&mode, "mode"));
  REQUIRE_OK(top[1].Uint(&size, "size"));
  REQUIRE_OK(top[2].Bin(&bin, "body"));
  return mode == 0 ? bin : Inflate(bin, size);
}

// Packs bodies as Encode() would (deflate level 6 above 512 bytes, when
// smaller), with one deflate state for all of them: a fresh state per body
// costs more than the decode it feeds.
class Packer {
 public:
  Packer() { BOOST_REQUIRE(deflateInit(&z_, 6) == Z_OK); }
  ~Packer() { deflateEnd(&z_); }
  Packer(const Packer&) = delete;
  Packer& operator=(const Packer&) = delete;

  std::string Pack(const std::string& body) {
    if (body.size() >= 512) {
      BOOST_REQUIRE(deflateReset(&z_) == Z_OK);
      std::string out(deflateBound(&z_, body.size()), '\0');
      z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
      z_.avail_in = static_cast<uInt>(body.size());
      z_.next_out = reinterpret_cast<Bytef*>(out.data());
      z_.avail_out = static_cast<uInt>(out.size());
      BOOST_REQUIRE(deflate(&z_, Z_FINISH) == Z_STREAM_END);
      out.resize(z_.total_out);
      if (out.size() < body.size()) return Wrap(1, body.size(), out);
    }
    return Wrap(0, body.size(), body);
  }

 private:
  z_stream z_{};
};

// A large state with every part of the encoding: three replicas' runs,
// multi-byte text, deletes forwards and backwards, a second delete,
// characters and a delete waiting for their neighbours.
Text LargeMixed() {
  Text a, b, d;
  Text page;
  REQUIRE_OK(TextPage(kA, kB, &page));
  a = page;
  b = page;
  for (int i = 0; i < 30; ++i) {
    REQUIRE_OK(a.Insert(kA, static_cast<uint64_t>(i * 7), "\xC3\xA9t\xC3\xA9 \xE4\xB8\xAD", &d));
    REQUIRE_OK(b.Insert(kB, static_cast<uint64_t>(i * 11), "\xF0\x9F\x98\x80x", &d));
  }
  for (int i = 0; i < 10; ++i) {
    REQUIRE_OK(a.Delete(kA, static_cast<uint64_t>(i * 13), 3, &d));
    for (int k = 2; k >= 0; --k) REQUIRE_OK(b.Delete(kB, static_cast<uint64_t>(i * 17 + k), 1, &d));
  }
  REQUIRE_OK(a.Delete(kA, 40, 2, &d));
  REQUIRE_OK(b.Delete(kB, 40, 2, &d));
  a.Merge(b);
  // From a third replica: a character whose origin never arrives, and a
  // delete of a character that never arrives.
  Text c = page, first, second, del;
  REQUIRE_OK(c.Insert(kC, 3, "QQ", &first));
  REQUIRE_OK(c.Insert(kC, 4, "R", &second));
  REQUIRE_OK(c.Delete(kC, 3, 1, &del));
  a.Merge(second);
  a.Merge(del);
  BOOST_REQUIRE_GE(a.PendingCount(), 2u);
  return a;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_hand_built_body_matches_the_encoder) {
  // Checks the test's own picture of the layout against Encode().
  Text t, d;
  REQUIRE_OK(t.Insert(kA, 0, "ab", &d));
  const std::string runs = Col().U(0).U(0).S(1).U(2).b;  // flags, replica, counter, len
  const std::string body = Body({kA}, {Col().U(1).U(2).b}, runs, "ab");
  BOOST_TEST(Hex(Wrap(0, body.size(), body)) == Hex(t.Encode()));
}

BOOST_AUTO_TEST_CASE(large_states_encode_packed_and_decode_both_ways) {
  for (const Text& x : {[] {
                          Text p;
                          REQUIRE_OK(TextPage(kA, kB, &p));
                          return p;
                        }(),
                        LargeMixed()}) {
    const std::string bytes = x.Encode();
    BOOST_REQUIRE_GE(bytes.size(), 3u);
    BOOST_TEST(static_cast<uint8_t>(bytes[0]) == Text::kFormatVersion);
    BOOST_TEST(static_cast<uint8_t>(bytes[1]) == 0x93);  // array of 3
    BOOST_TEST(static_cast<uint8_t>(bytes[2]) == 1);     // packed
    BOOST_TEST(BodyOf(bytes).size() >= 512u);
    Text a, b;
    REQUIRE_OK(Text::Decode(bytes, &a));
    REQUIRE_OK(Text::DecodeTrusted(bytes, &b));
    BOOST_TEST(a.Encode() == bytes);
    BOOST_TEST(b.Encode() == bytes);
    BOOST_TEST(a.Content() == x.Content());
    BOOST_TEST(b.Content() == x.Content());
    BOOST_TEST(a.version() == x.version());
    BOOST_TEST(a.PendingCount() == x.PendingCount());
    BOOST_TEST((a == x));
    // Unpacked, the same body is not canonical; packed under 512 bytes
    // neither.
    const std::string body = BodyOf(bytes);
    Text y;
    BOOST_TEST(Text::Decode(Wrap(0, body.size(), body), &y).IsCorruption());
  }
  Text small;
  REQUIRE_OK(TextConcurrent(kA, kB, &small));
  const std::string body = BodyOf(small.Encode());
  BOOST_REQUIRE_LT(body.size(), 512u);
  Text y;
  BOOST_TEST(Text::Decode(Wrap(1, body.size(), Deflate(body)), &y).IsCorruption());
  BOOST_TEST(Text::Decode(Wrap(0, body.size() + 1, body), &y).IsCorruption());
  BOOST_TEST(Text::Decode(Wrap(2, body.size(), body), &y).IsCorruption());
}

namespace {

// Decode of mutated bytes: Corruption, or a state whose encoding decodes
// to itself. Empty when so; counts what was accepted.
std::string ProbeMutation(const std::string& bytes, int* accepted) {
  Text x;
  const Status st = Text::Decode(bytes, &x);
  if (!st.ok()) return st.IsCorruption() ? "" : "refused with " + st.ToString();
  ++*accepted;
  const std::string again = x.Encode();
  Text y;
  const Status st2 = Text::Decode(again, &y);
  if (!st2.ok()) return "accepted, but its re-encoding is refused: " + st2.ToString();
  if (y.Encode() != again) return "accepted, but its re-encoding decodes to another state";
  return "";
}

}  // namespace

BOOST_AUTO_TEST_CASE(single_byte_mutations_of_packed_bytes_are_refused_or_round_trip) {
  const Text x = LargeMixed();
  const std::string bytes = x.Encode();
  BOOST_REQUIRE_EQUAL(static_cast<uint8_t>(bytes[2]), 1);
  int accepted = 0, tried = 0;
  const size_t stride = static_cast<size_t>(Stride());
  for (size_t i = 0; i < bytes.size(); ++i) {
    // Every value in the header and the checksum, a few elsewhere
    // (deflate's checksum refuses nearly all of them).
    std::vector<int> values;
    if (i < 12 || i + 4 >= bytes.size()) {
      for (int v = 0; v < 256; ++v) values.push_back(v);
    } else if (i % stride != 0) {
      continue;
    } else {
      const int b = static_cast<uint8_t>(bytes[i]);
      values = {b ^ 0x01, b ^ 0x80, b ^ 0xFF, 0x00, (b + 1) & 0xFF};
    }
    for (int v : values) {
      if (v == static_cast<uint8_t>(bytes[i])) continue;
      std::string m = bytes;
      m[i] = static_cast<char>(v);
      ++tried;
      const std::string err = ProbeMutation(m, &accepted);
      if (!err.empty()) {
        BOOST_ERROR("byte " << i << " set to " << v << ": " << err);
        return;
      }
    }
  }
  // The same through the body: each mutation repacked as Encode would.
  // The live text column gets every 16th byte and two values: its
  // mutations change a letter or break the UTF-8.
  const std::string body = BodyOf(bytes);
  BOOST_TEST(Hex(Packer().Pack(body)) == Hex(bytes));
  const std::string content = x.Content();
  const size_t text_at = body.find(content);
  BOOST_REQUIRE(text_at != std::string::npos);
  Packer packer;
  for (size_t i = 0; i < body.size(); ++i) {
    const bool in_text = i >= text_at && i < text_at + content.size();
    if (in_text ? (i - text_at) % (16 * stride) != 0 : i % stride != 0) continue;
    const int b = static_cast<uint8_t>(body[i]);
    int k = 0;
    for (int v : {b ^ 0x01, b ^ 0x80, b ^ 0x02, 0x00, 0x7F, 0xC0}) {
      if (v == b || (in_text && ++k > 2)) continue;
      std::string m = body;
      m[i] = static_cast<char>(v);
      ++tried;
      const std::string err = ProbeMutation(packer.Pack(m), &accepted);
      if (!err.empty()) {
        BOOST_ERROR("body byte " << i << " set to " << v << ": " << err);
        return;
      }
    }
  }
  std::cout << "text: mutations: " << tried << " tried, " << accepted << " accepted\n";
}

BOOST_AUTO_TEST_CASE(a_body_claiming_a_huge_size_is_refused_without_allocating_it) {
  const std::string zeros(4096, '\0');
  const std::string small = Deflate(zeros);  // a few dozen bytes
  const std::string big = Deflate(std::string(size_t{1} << 20, '\0'));  // ~1 KB for 1 MiB
  struct Case {
    const char* name;
    uint64_t claim;
    const std::string* bin;
  };
  const Case cases[] = {
      {"2^62 bytes", uint64_t{1} << 62, &small},
      {"UINT64_MAX bytes", ~uint64_t{0}, &small},
      {"1 GiB", uint64_t{1} << 30, &small},
      {"200 MiB from a few dozen bytes", uint64_t{200} << 20, &small},
      {"255 MiB from ~1 KB", uint64_t{255} << 20, &big},
      {"600 bytes of what inflates to 1 MiB", 600, &big},
      {"more than it inflates to", 8192, &small},
  };
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT(c.name) {
      const std::string bytes = Wrap(1, c.claim, *c.bin);
      g_largest = 0;
      g_watch = true;
      Text t;
      const Status st = Text::Decode(bytes, &t);
      Text u;
      const Status st2 = Text::DecodeTrusted(bytes, &u);
      g_watch = false;
      BOOST_TEST(st.IsCorruption(), st.ToString());
      BOOST_TEST(st2.IsCorruption(), st2.ToString());
      BOOST_TEST(g_largest.load() < (size_t{4} << 20), "largest allocation " << g_largest.load());
    }
  }
}

BOOST_AUTO_TEST_CASE(a_non_canonical_body_is_refused) {
  Text t, d;
  REQUIRE_OK(t.Insert(kA, 0, "ab", &d));
  const std::string version = Col().U(1).U(2).b;
  // "ab" as two runs that could be one: [a1] then [a2, left implicit].
  const std::string runs = Col().U(0).U(0).S(1).U(1).U(2 | 4).S(0).U(1).b;
  const std::string body = Body({kA}, {version}, runs, "ab");
  const std::string bytes = Wrap(0, body.size(), body);
  Text x;
  const Status st = Text::Decode(bytes, &x);
  BOOST_TEST(st.IsCorruption(), st.ToString());
  // The node's own bytes are never like this, but DecodeTrusted reads them
  // and the state re-encodes canonically.
  Text y;
  REQUIRE_OK(Text::DecodeTrusted(bytes, &y));
  BOOST_TEST(Hex(y.Encode()) == Hex(t.Encode()));

  // A version with a range split in two ("1-1, 2-2" is "1-2").
  const std::string split = Col().U(1).U(1).U(0).U(1).b;
  const std::string one_run = Col().U(0).U(0).S(1).U(2).b;
  const std::string body2 = Body({kA}, {split}, one_run, "ab");
  BOOST_TEST(Text::Decode(Wrap(0, body2.size(), body2), &x).IsCorruption());
  // Replicas out of order.
  const std::string body3 =
      Body({kB, kA}, {version, version}, Col().U(0).U(0).S(1).U(2).U(0).U(1).S(1).U(2).b, "abxy");
  BOOST_TEST(Text::Decode(Wrap(0, body3.size(), body3), &x).IsCorruption());
}

BOOST_AUTO_TEST_CASE(the_per_replica_counter_limit_is_out_of_range_and_changes_nothing) {
  // kA has used every counter up to kMaxTextCounter - 1 (hand-built: a
  // version with no characters left of it).
  const uint64_t hi = kMaxTextCounter - 1;  // one counter left: kMaxTextCounter - 1
  const std::string body = Body({kA}, {Col().U(1).U(hi - 1).b}, "", "");
  Text t;
  REQUIRE_OK(Text::Decode(Wrap(0, body.size(), body), &t));
  BOOST_REQUIRE_EQUAL(t.version().Next(kA), hi);
  Text d;
  BOOST_TEST(t.Insert(kA, 0, "ab", &d).IsOutOfRange());
  REQUIRE_OK(t.Insert(kA, 0, "a", &d));  // the last counter
  BOOST_TEST(t.version().Next(kA) == uint64_t{kMaxTextCounter});
  const std::string before = t.Encode();
  BOOST_TEST(t.Insert(kA, 1, "b", &d).IsOutOfRange());
  BOOST_TEST(t.Delete(kA, 0, 1, &d).IsOutOfRange());
  BOOST_TEST(t.DeleteAll(kA, &d).IsOutOfRange());
  std::vector<TextEdit> edits(1);
  edits[0].text = "c";
  BOOST_TEST(t.Apply(kA, nullptr, edits, &d).IsOutOfRange());
  BOOST_TEST(t.Encode() == before);
  // Other replicas go on; the state still decodes.
  REQUIRE_OK(t.Insert(kB, 1, "b", &d));
  REQUIRE_OK(t.Delete(kB, 0, 1, &d));
  BOOST_TEST(t.Content() == "b");
  BOOST_TEST(Decoded(t.Encode()).Encode() == t.Encode());
}

// ====================================== 7. orders the origins contradict

BOOST_AUTO_TEST_CASE(decode_refuses_an_order_that_contradicts_the_origins) {
  Text d;
  // Two runs typed concurrently into an empty text: FugueMax orders them
  // by id, so kA's "ab" comes first.
  Text a, b;
  REQUIRE_OK(a.Insert(kA, 0, "ab", &d));
  REQUIRE_OK(b.Insert(kB, 0, "xy", &d));
  const Text m = Join(a, b);
  BOOST_REQUIRE_EQUAL(m.Content(), "abxy");
  const std::vector<std::string> versions = {Col().U(1).U(2).b, Col().U(1).U(2).b};
  // [kA 1 len 2] [kB 1 len 2], neither with origins.
  const std::string in_order = Col().U(0).U(0).S(1).U(2).U(0).U(1).S(1).U(2).b;
  const std::string body = Body({kA, kB}, versions, in_order, "abxy");
  BOOST_REQUIRE_EQUAL(Hex(Wrap(0, body.size(), body)), Hex(m.Encode()));
  // Swapped: kB's run first.
  const std::string swapped = Col().U(0).U(1).S(1).U(2).U(0).U(0).S(1).U(2).b;
  const std::string body2 = Body({kA, kB}, versions, swapped, "xyab");
  Text x;
  Status st = Text::Decode(Wrap(0, body2.size(), body2), &x);
  BOOST_TEST(st.IsCorruption(), st.ToString());

  // A run placed before its own left origin: kB typed "y" after kA's "a".
  Text p, q;
  REQUIRE_OK(p.Insert(kA, 0, "a", &d));
  q = p;
  REQUIRE_OK(q.Insert(kB, 1, "y", &d));
  BOOST_REQUIRE_EQUAL(q.Content(), "ay");
  const std::vector<std::string> v1 = {Col().U(1).U(1).b, Col().U(1).U(1).b};
  // In order: [kA 1], [kB 1, left implicit (the previous run's last)].
  const std::string ok_runs = Col().U(0).U(0).S(1).U(1).U(4).U(1).S(1).U(1).b;
  const std::string ok_body = Body({kA, kB}, v1, ok_runs, "ay");
  BOOST_REQUIRE_EQUAL(Hex(Wrap(0, ok_body.size(), ok_body)), Hex(q.Encode()));
  // Swapped: [kB 1, left explicit kA 1], [kA 1].
  const std::string bad_runs = Col().U(8).U(1).S(1).U(1).U(0).S(0).U(0).U(0).S(1).U(1).b;
  const std::string bad_body = Body({kA, kB}, v1, bad_runs, "ya");
  st = Text::Decode(Wrap(0, bad_body.size(), bad_body), &x);
  BOOST_TEST(st.IsCorruption(), st.ToString());
}

// ================================ waiting deletes in bytes from elsewhere

// A waiting delete must name no character that is here, at any of its
// characters (found by this suite: Decode once checked the first only).
// This body holds kA's "b" (id a2) and a waiting delete of [a1, a2] by
// kB's dots 1-2, a1 absent. Accepting it would show "b" while holding a
// delete of it, and merging it into the bottom would hide "b" (so the
// bottom would not be the identity).
BOOST_AUTO_TEST_CASE(decode_refuses_a_waiting_delete_whose_later_characters_are_here) {
  const std::string runs = Col().U(0).U(0).S(2).U(1).b;  // [a2], no origins
  // target a1, 2 characters, by kB from dot 1, ascending
  const std::string deletes = Col().U(0).U(1).U(2).U(1).U(1).U(0).b;
  const std::string body =
      Body({kA, kB}, {Col().U(2).U(1).b, Col().U(1).U(2).b}, runs, "b", deletes);
  Text x;
  const Status st = Text::Decode(Wrap(0, body.size(), body), &x);
  BOOST_TEST(st.IsCorruption(), st.ToString() << ", content '" << x.Content() << "'");
  if (st.ok()) BOOST_TEST(Join(Text(), x).Content() == x.Content());
}

// A delete that arrives before its characters waits; when the characters
// then arrive as tombstones carrying that same delete and cannot be
// placed either (their origin is missing), the state holds the delete
// twice. Found by the JS replica's cross test: Encode wrote both, and
// both decoders refused the bytes ("two events share a dot"), so a node
// could store a text it could not read back.
BOOST_AUTO_TEST_CASE(a_waiting_delete_carried_by_a_waiting_tombstone_encodes_once) {
  Text r2, r3, r4, d;
  REQUIRE_OK(r2.Insert(kB, 0, "0123456", &d));
  r4.Merge(r2);
  const TextVersion v4 = r4.version();
  REQUIRE_OK(r4.Insert(kD, 0, "abcde", nullptr));
  Text del;
  REQUIRE_OK(r4.Delete(kD, 0, 8, &del));  // abcde and 012
  r3.Merge(del);                          // waits: r3 has none of them
  r3.Merge(r4.DeltaSince(v4));            // the tombstones wait too (origin 3 missing)
  BOOST_TEST(r3.Content().empty());
  Text back;
  REQUIRE_OK(Text::Decode(r3.Encode(), &back));
  REQUIRE_OK(Text::DecodeTrusted(r3.Encode(), &back));
  BOOST_TEST(back.Encode() == r3.Encode());
  // The same events in the other order give the same bytes.
  Text other;
  other.Merge(r4.DeltaSince(v4));
  other.Merge(del);
  BOOST_TEST(other.Encode() == r3.Encode());
  // Once the missing characters come, every copy converges.
  r3.Merge(r2);
  back.Merge(r2);
  BOOST_TEST(r3.Content() == "3456");
  BOOST_TEST(back.Encode() == r3.Encode());
  BOOST_TEST(r3.Encode() == r4.Encode());
}

// Two concurrent deletes of a character whose origin is missing: each
// arrives with a tombstone carrying its own delete, so the waiting
// character carries whichever came first and the other waits beside it.
// The encoding names the same state either way: the run carries the
// smallest dot (as it will once placed), the waiting delete the other.
BOOST_AUTO_TEST_CASE(concurrent_deletes_of_a_waiting_character_encode_alike_in_any_order) {
  Text base, b, c;
  REQUIRE_OK(base.Insert(kA, 0, "xy", nullptr));
  b.Merge(base);
  c.Merge(base);
  REQUIRE_OK(b.Delete(kB, 1, 1, nullptr));  // y, by b-node
  REQUIRE_OK(c.Delete(kC, 1, 1, nullptr));  // y, by c-node
  // What a replica lacking x gets from each: y's tombstone (origin x)
  // carrying that replica's delete.
  TextVersion has_x;
  has_x.Add(kA, 1, 2);
  const Text from_b = b.DeltaSince(has_x), from_c = c.DeltaSince(has_x);
  Text one, two;
  one.Merge(from_b);
  one.Merge(from_c);
  two.Merge(from_c);
  two.Merge(from_b);
  BOOST_TEST(one.PendingCount() > 0u);
  BOOST_TEST(one.Encode() == two.Encode());
  Text back;
  REQUIRE_OK(Text::Decode(one.Encode(), &back));
  REQUIRE_OK(Text::Decode(two.Encode(), &back));
  // Once x arrives they hold what b and c hold after merging.
  one.Merge(base);
  two.Merge(base);
  b.Merge(c);
  BOOST_TEST(one.Encode() == b.Encode());
  BOOST_TEST(two.Encode() == b.Encode());
  BOOST_TEST(one.Content() == "x");
}

// A waiting delete costs a few bytes whatever its length, but is kept a
// character at a time (found by this suite: a 44-byte body made Decode
// allocate 16 MiB, and 2^32 characters would have asked for 64 GiB).
// Decode refuses more than kMaxWaitingDeleteChars of them, before
// expanding anything.
BOOST_AUTO_TEST_CASE(decode_refuses_waiting_deletes_beyond_the_limit_without_expanding_them) {
  for (const uint64_t n : {kMaxWaitingDeleteChars + 1, uint64_t{kMaxTextCounter}}) {
    BOOST_TEST_CONTEXT("waiting delete of " << n << " characters") {
      // target a1, n characters, by kA from dot 1, ascending; version a: 1..n
      const std::string deletes = Col().U(0).U(1).U(n).U(0).U(1).U(0).b;
      const std::string body = Body({kA}, {Col().U(1).U(n).b}, "", "", deletes);
      const std::string bytes = Wrap(0, body.size(), body);
      g_largest = 0;
      g_watch = true;
      Text x;
      const Status st = Text::Decode(bytes, &x);
      g_watch = false;
      BOOST_TEST(st.IsCorruption(), st.ToString());
      BOOST_TEST(g_largest.load() < (size_t{1} << 20),
                 bytes.size() << " bytes made Decode allocate " << g_largest.load()
                              << " bytes at once");
    }
  }
}
