// text: see text.h. Layout of this file: varint columns and the
// TextVersion; the state (Impl) with its edits, integration (FugueMax),
// deletes, merge and delta; then the encoding.
//
// Encoding (kFormatVersion 1): the version byte, then msgpack
//   [0, body]                      body uncompressed, or
//   [1, uint raw_size, bin deflate(body)]   when that is smaller
// (bodies under 512 bytes are never compressed), where body is the
// msgpack array
//   [replicas, version, runs, text, pending, pending_text, deletes, extra]
//   replicas:  [[node, incarnation]...] strictly ascending; the other
//              columns name replicas by index in this list
//   version:   [bin...] per replica: varint pairs (lo - previous hi, hi - lo)
//   runs:      bin, the document's runs in document order, maximal (two
//              neighbours that could be one run are one), each
//              flags, [replica], counter, len, [left], [right], [del]:
//                flags bit 0 deleted, bit 1 same replica as the run before,
//                bits 2-3 left (0 none, 1 the previous run's last
//                character, 2 explicit), bits 4-5 right (0 none, 1 the
//                next run's first character, 2 explicit), bit 6 deleted
//                with descending delete counters, bit 7 deleted by the
//                run's own replica
//                counter: zigzag(counter - the end of the last run of
//                          the same replica written before, 0 if none)
//                explicit origin: replica, zigzag(origin counter - counter)
//                del: [replica], zigzag(del counter - previous run's del end)
//   text:      bin, UTF-8 of the live runs in document order
//   pending:   bin, runs whose origins are not here yet, ascending by id:
//              replica, counter, len, flags (bit 0 deleted, bit 1 left
//              present, bit 2 right present, bit 3 descending), [left:
//              replica, counter], [right: replica, counter], [del:
//              replica, counter], and their live text in pending_text
//   deletes:   bin, deletes of characters not here yet, ascending:
//              target replica, target counter, len, del replica, del
//              counter, dir (0 ascending, 1 descending)
//   extra:     bin, second and later deletes of one character (its first
//              delete, by the smallest dot, is in its run), ascending:
//              target replica, target counter, del replica, del counter
#include "crdt/text.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <set>
#include <tuple>
#include <utility>

#include "crdt/codec.h"
#include "crdt/text_tree.h"

namespace meridian::crdt {

using text_internal::CharId;
using text_internal::kNone;
using text_internal::RunTree;
using text_internal::TextRun;
using text_internal::Utf8Offset;

namespace {

constexpr size_t kCompressAbove = 512;
constexpr size_t kMaxTextBodyBytes = size_t{256} << 20;

// ---------------------------------------------------------------- UTF-8

// Code points in `s`, or false when `s` is not well-formed UTF-8
// (overlongs, surrogates and values past U+10FFFF are refused).
bool CountUtf8(std::string_view s, uint64_t* chars) {
  uint64_t n = 0;
  size_t i = 0;
  const size_t size = s.size();
  while (i < size) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      // ASCII runs are the common case: skip them eight bytes at a time.
      while (i + 8 <= size) {
        uint64_t w;
        std::memcpy(&w, s.data() + i, 8);
        if (w & 0x8080808080808080ull) break;
        i += 8;
        n += 8;
      }
      ++n;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > size) return false;
    for (size_t k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
    ++n;
  }
  *chars = n;
  return true;
}

// ------------------------------------------------------ varint columns

class ColumnWriter {
 public:
  void U(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7F) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void S(int64_t v) { U((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); }
  std::string& bytes() { return out_; }

 private:
  std::string out_;
};

class ColumnReader {
 public:
  explicit ColumnReader(std::string_view b) : b_(b) {}
  bool U(uint64_t* v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= b_.size()) return false;
      const unsigned char c = static_cast<unsigned char>(b_[pos_++]);
      x |= static_cast<uint64_t>(c & 0x7F) << shift;
      if ((c & 0x80) == 0) {
        *v = x;
        return true;
      }
    }
    return false;
  }
  bool U32(uint32_t* v) {
    uint64_t x;
    if (!U(&x) || x > 0xffffffffu) return false;
    *v = static_cast<uint32_t>(x);
    return true;
  }
  bool S(int64_t* v) {
    uint64_t x;
    if (!U(&x)) return false;
    *v = static_cast<int64_t>((x >> 1) ^ (~(x & 1) + 1));
    return true;
  }
  bool done() const { return pos_ == b_.size(); }

 private:
  std::string_view b_;
  size_t pos_ = 0;
};

Status Bad(const std::string& what) { return Status::Corruption("text: " + what); }

// Per replica index: counter ranges lo -> hi (disjoint, not touching).
using Ranges = std::map<uint32_t, uint32_t>;

bool RangesContain(const Ranges& m, uint32_t c) {
  auto it = m.upper_bound(c);
  if (it == m.begin()) return false;
  --it;
  return c < it->second;
}

void RangesAdd(Ranges* m, uint32_t lo, uint32_t hi) {
  if (lo >= hi) return;
  if (!m->empty()) {
    auto last = std::prev(m->end());
    if (last->second == lo) {  // the common case: the next counters
      last->second = hi;
      return;
    }
    if (last->second < lo) {
      m->emplace_hint(m->end(), lo, hi);
      return;
    }
  }
  auto it = m->upper_bound(lo);
  if (it != m->begin()) {
    auto p = std::prev(it);
    if (p->second >= lo) {
      lo = p->first;
      hi = std::max(hi, p->second);
      it = m->erase(p);
    }
  }
  while (it != m->end() && it->first <= hi) {
    hi = std::max(hi, it->second);
    it = m->erase(it);
  }
  m->emplace_hint(it, lo, hi);
}

void RangesRemove(Ranges* m, uint32_t lo, uint32_t hi) {
  if (lo >= hi) return;
  auto it = m->upper_bound(lo);
  if (it != m->begin()) {
    auto p = std::prev(it);
    if (p->second > lo) {
      const uint32_t end = p->second;
      if (p->first == lo) {
        m->erase(p);
      } else {
        p->second = lo;
      }
      if (end > hi) {
        m->emplace(hi, end);
        return;
      }
    }
  }
  it = m->lower_bound(lo);
  while (it != m->end() && it->first < hi) {
    if (it->second > hi) {
      const uint32_t end = it->second;
      m->erase(it);
      m->emplace(hi, end);
      return;
    }
    it = m->erase(it);
  }
}

// Calls f(lo, hi) for each maximal part of [lo, hi) that `m` lacks.
template <class F>
void ForEachMissing(const Ranges* m, uint32_t lo, uint32_t hi, F f) {
  if (m == nullptr || m->empty()) {
    f(lo, hi);
    return;
  }
  auto it = m->upper_bound(lo);
  if (it != m->begin()) {
    auto p = std::prev(it);
    if (p->second > lo) lo = p->second;
  }
  while (lo < hi) {
    if (it == m->end() || it->first >= hi) {
      f(lo, hi);
      return;
    }
    if (it->first > lo) f(lo, it->first);
    lo = std::max(lo, it->second);
    ++it;
  }
}

}  // namespace

// ------------------------------------------------------------ TextVersion

bool TextVersion::Contains(const ReplicaId& r, uint64_t counter) const {
  auto it = ranges_.find(r);
  if (it == ranges_.end()) return false;
  auto rit = it->second.upper_bound(counter);
  if (rit == it->second.begin()) return false;
  --rit;
  return counter < rit->second;
}

bool TextVersion::Covers(const TextVersion& o) const {
  for (const auto& [r, rs] : o.ranges_) {
    auto it = ranges_.find(r);
    if (it == ranges_.end()) return false;
    for (const auto& [lo, hi] : rs) {
      auto rit = it->second.upper_bound(lo);
      if (rit == it->second.begin()) return false;
      --rit;
      if (rit->second < hi) return false;
    }
  }
  return true;
}

void TextVersion::Add(const ReplicaId& r, uint64_t lo, uint64_t hi) {
  if (lo >= hi) return;
  auto& m = ranges_[r];
  auto it = m.upper_bound(lo);
  if (it != m.begin()) {
    auto p = std::prev(it);
    if (p->second >= lo) {
      lo = p->first;
      hi = std::max(hi, p->second);
      it = m.erase(p);
    }
  }
  while (it != m.end() && it->first <= hi) {
    hi = std::max(hi, it->second);
    it = m.erase(it);
  }
  m.emplace_hint(it, lo, hi);
}

void TextVersion::Merge(const TextVersion& o) {
  for (const auto& [r, rs] : o.ranges_) {
    for (const auto& [lo, hi] : rs) Add(r, lo, hi);
  }
}

uint64_t TextVersion::Next(const ReplicaId& r) const {
  auto it = ranges_.find(r);
  if (it == ranges_.end() || it->second.empty()) return 1;
  return std::prev(it->second.end())->second;
}

std::string TextVersion::Encode() const {
  Encoder e(1);
  e.Array(static_cast<uint32_t>(ranges_.size()));
  for (const auto& [r, rs] : ranges_) {
    e.Array(3);
    e.Str(r.node);
    e.Uint(r.incarnation);
    e.Array(static_cast<uint32_t>(rs.size() * 2));
    for (const auto& [lo, hi] : rs) {
      e.Uint(lo);
      e.Uint(hi);
    }
  }
  return e.Take();
}

Status TextVersion::Decode(std::string_view bytes, TextVersion* out) {
  *out = TextVersion();
  Decoder d;
  MERIDIAN_RETURN_IF_ERROR(d.Parse(bytes, 1));
  std::vector<Cursor> entries;
  MERIDIAN_RETURN_IF_ERROR(d.root().Array(&entries, "text version"));
  const ReplicaId* prev = nullptr;
  for (const Cursor& c : entries) {
    std::vector<Cursor> parts;
    MERIDIAN_RETURN_IF_ERROR(c.Array(&parts, "text version entry", 3));
    ReplicaId r;
    MERIDIAN_RETURN_IF_ERROR(parts[0].Str(&r.node, "node id"));
    MERIDIAN_RETURN_IF_ERROR(parts[1].Uint(&r.incarnation, "incarnation"));
    if (r.node.empty() || r.node.size() > kMaxNodeIdBytes) return Bad("bad node id in version");
    if (prev != nullptr && !(*prev < r)) return Bad("version replicas out of order");
    std::vector<Cursor> bounds;
    MERIDIAN_RETURN_IF_ERROR(parts[2].Array(&bounds, "version ranges"));
    if (bounds.empty() || bounds.size() % 2 != 0) return Bad("bad version ranges");
    auto& m = out->ranges_[r];
    uint64_t last = 0;
    for (size_t i = 0; i < bounds.size(); i += 2) {
      uint64_t lo, hi;
      MERIDIAN_RETURN_IF_ERROR(bounds[i].Uint(&lo, "range start"));
      MERIDIAN_RETURN_IF_ERROR(bounds[i + 1].Uint(&hi, "range end"));
      if (lo < 1 || lo <= last || hi <= lo || hi > kMaxTextCounter + 1) {
        return Bad("version ranges not ascending, disjoint and in range");
      }
      m.emplace_hint(m.end(), lo, hi);
      last = hi;
    }
    prev = &out->ranges_.find(r)->first;
  }
  return Status::OK();
}

std::string TextVersion::ToString() const {
  std::string s = "{";
  bool first = true;
  for (const auto& [r, rs] : ranges_) {
    if (!first) s += ", ";
    first = false;
    s += r.ToString() + ":";
    bool f2 = true;
    for (const auto& [lo, hi] : rs) {
      s += f2 ? " " : ", ";
      f2 = false;
      s += std::to_string(lo) + "-" + std::to_string(hi - 1);
    }
  }
  return s + "}";
}

// ------------------------------------------------------------------ Impl

namespace {

// A delete of `len` characters from `target` (consecutive counters of one
// replica), by dots del, del±1, ... (dir +1 or -1) in target order.
struct DelRec {
  CharId target;
  uint32_t len = 0;
  uint32_t del_replica = 0;
  uint32_t del_counter = 0;
  int32_t dir = 1;
  uint32_t DelAt(uint32_t off) const { return dir > 0 ? del_counter + off : del_counter - off; }
};

}  // namespace

struct Text::Impl {
  std::vector<ReplicaId> replicas;             // index -> replica
  std::map<ReplicaId, uint32_t> replica_index;  // replica -> index
  RunTree tree;
  std::vector<TextRun> pending;       // characters whose origins are not here yet
  std::vector<DelRec> pending_deletes;  // deletes of characters not here yet
  // (target, del) for characters deleted again; the run holds the smallest dot.
  std::set<std::array<uint32_t, 4>> extra;
  std::vector<Ranges> seen;  // per replica index: every dot here

  // The last replica that edited, to skip the map look-up.
  ReplicaId last_me;
  uint32_t last_me_index = kNone;

  uint32_t Intern(const ReplicaId& r) {
    if (last_me_index != kNone && r == last_me) return last_me_index;
    auto it = replica_index.find(r);
    uint32_t idx;
    if (it != replica_index.end()) {
      idx = it->second;
    } else {
      idx = static_cast<uint32_t>(replicas.size());
      replicas.push_back(r);
      replica_index.emplace(r, idx);
      seen.emplace_back();
    }
    last_me = r;
    last_me_index = idx;
    return idx;
  }
  uint32_t Next(uint32_t r) const {
    return seen[r].empty() ? 1 : std::prev(seen[r].end())->second;
  }
  bool Seen(uint32_t r, uint32_t c) const { return RangesContain(seen[r], c); }
  bool Less(uint32_t a, uint32_t b) const { return replicas[a] < replicas[b]; }
  // (replica, counter) order of two dots, by replica id.
  bool DotLess(uint32_t ar, uint32_t ac, uint32_t br, uint32_t bc) const {
    if (ar != br) return Less(ar, br);
    return ac < bc;
  }

  // The dots of applied events: seen, less what waits (a version names
  // what positions can be counted against).
  std::vector<Ranges> Applied() const {
    std::vector<Ranges> out = seen;
    for (const TextRun& p : pending) {
      RangesRemove(&out[p.replica], p.counter, p.counter + p.len);
      if (p.deleted()) {
        const uint32_t last = p.DelAt(p.len - 1);
        RangesRemove(&out[p.del_replica], std::min(p.del_counter, last),
                     std::max(p.del_counter, last) + 1);
      }
    }
    for (const DelRec& d : pending_deletes) {
      const uint32_t last = d.DelAt(d.len - 1);
      RangesRemove(&out[d.del_replica], std::min(d.del_counter, last),
                   std::max(d.del_counter, last) + 1);
    }
    return out;
  }

  TextVersion Version() const {
    TextVersion v;
    const std::vector<Ranges> applied = pending.empty() && pending_deletes.empty() ? seen : Applied();
    for (size_t r = 0; r < applied.size(); ++r) {
      for (const auto& [lo, hi] : applied[r]) v.Add(replicas[r], lo, hi);
    }
    return v;
  }

  int64_t IndexOfId(CharId id) const {
    RunTree::Pos p;
    const bool found = tree.Find(id, &p);
    assert(found);
    (void)found;
    return static_cast<int64_t>(tree.IndexOf(p));
  }

  // -------------------------------------------------------- integration

  // Integrate(*run) when both its origins are in the tree (moving from
  // *run); false, leaving *run as it was, when one is not.
  bool TryIntegrate(TextRun* run) {
    RunTree::Pos lp, rp;
    if (!run->left.none() && !tree.Find(run->left, &lp)) return false;
    if (!run->right.none() && !tree.Find(run->right, &rp)) return false;
    Integrate(std::move(*run), &lp, &rp);
    return true;
  }

  // Puts `run` (whose origins are in the tree, whose ids are not) into the
  // document by FugueMax, then applies its own delete if it has one.
  // `lp` and `rp`, when given, are where its origins are.
  void Integrate(TextRun run, const RunTree::Pos* lp_known = nullptr,
                 const RunTree::Pos* rp_known = nullptr) {
    const int64_t total = static_cast<int64_t>(tree.total());
    int64_t left_idx = -1;
    RunTree::Pos cur;
    if (!run.left.none()) {
      RunTree::Pos lp;
      if (lp_known != nullptr) {
        lp = *lp_known;
      } else {
        tree.Find(run.left, &lp);
      }
      left_idx = static_cast<int64_t>(tree.IndexOf(lp));
      const TextRun& lr = tree.RunAt(lp);
      cur = lp.off + 1 < lr.len ? RunTree::Pos{lp.leaf, lp.idx, lp.off + 1} : tree.NextRun(lp);
    } else {
      cur = tree.Begin();
    }
    const int64_t right_idx = run.right.none()     ? total
                              : rp_known != nullptr ? static_cast<int64_t>(tree.IndexOf(*rp_known))
                                                    : IndexOfId(run.right);
    int64_t i = left_idx + 1;
    RunTree::Pos dest = cur;
    bool scanning = false;
    while (true) {
      if (!scanning) dest = cur;
      if (i >= right_idx || tree.AtEnd(cur)) break;
      const TextRun& o = tree.RunAt(cur);
      const int64_t oleft = cur.off > 0 ? i - 1 : (o.left.none() ? -1 : IndexOfId(o.left));
      if (oleft < left_idx) break;
      if (oleft == left_idx) {
        const int64_t oright = o.right.none() ? total : IndexOfId(o.right);
        if (oright < right_idx) {
          scanning = true;
        } else if (oright == right_idx) {
          // Ties go by id: an edit at an older version makes a replica
          // concurrent with itself, so the replica alone is not enough.
          if (DotLess(run.replica, run.counter, o.replica, o.counter + cur.off)) break;
          scanning = false;
        } else {
          scanning = false;
        }
      }
      // The rest of this run: each character's left origin is the one
      // before it, after the left origin: skipped, up to the right origin.
      const int64_t run_end = i + (o.len - cur.off);
      if (run_end <= right_idx) {
        i = run_end;
        cur = tree.NextRun(cur);
      } else {
        cur.off += static_cast<uint32_t>(right_idx - i);
        i = right_idx;
      }
    }
    const uint32_t r = run.replica, c = run.counter, len = run.len;
    const bool deleted = run.deleted();
    const DelRec del{CharId{r, c}, len, run.del_replica, run.del_counter, run.del_dir};
    // Continue the run before dest when the new run extends it.
    RunTree::Pos prev;
    if (dest.off == 0 && !deleted && tree.Prev(dest, &prev)) {
      TextRun& pr = tree.RunAt(prev);
      if (prev.off + 1 == pr.len && !pr.deleted() && pr.replica == r && pr.counter + pr.len == c &&
          run.left == pr.IdAt(prev.off) && run.right == pr.right) {
        tree.Extend(prev, run.text, len);
        return;
      }
    }
    dest = tree.Split(dest);
    run.del_replica = kNone;
    tree.Insert(dest, std::move(run));
    if (deleted) ApplyDelete(del, nullptr);
  }

  // Integrates `cands` (runs with ids not in the tree) in an order where
  // each run's origins come first; a run whose origin is nowhere waits in
  // `pending`.
  void IntegrateAll(std::vector<TextRun> cands) {
    if (cands.empty()) return;
    // Candidates by id, to find the one holding an origin.
    std::vector<uint32_t> by_id(cands.size());
    for (uint32_t i = 0; i < cands.size(); ++i) by_id[i] = i;
    std::sort(by_id.begin(), by_id.end(), [&](uint32_t a, uint32_t b) {
      return std::tie(cands[a].replica, cands[a].counter) <
             std::tie(cands[b].replica, cands[b].counter);
    });
    auto holder = [&](CharId id) -> int64_t {
      auto it = std::upper_bound(by_id.begin(), by_id.end(), id, [&](CharId x, uint32_t k) {
        return std::tie(x.replica, x.counter) < std::tie(cands[k].replica, cands[k].counter);
      });
      if (it == by_id.begin()) return -1;
      const TextRun& h = cands[*std::prev(it)];
      if (h.replica == id.replica && id.counter - h.counter < h.len) return *std::prev(it);
      return -1;
    };
    std::vector<uint8_t> state(cands.size(), 0);  // 0 new, 1 on the stack, 2 done
    std::vector<uint32_t> stack;
    for (uint32_t start = 0; start < cands.size(); ++start) {
      if (state[start] != 0) continue;
      stack.push_back(start);
      state[start] = 1;
      while (!stack.empty()) {
        const uint32_t k = stack.back();
        bool pushed = false;
        // An origin in a candidate not yet placed goes first (candidates'
        // ids are not in the tree, so no look-up is needed to know).
        for (CharId dep : {cands[k].left, cands[k].right}) {
          if (dep.none()) continue;
          const int64_t h = holder(dep);
          if (h >= 0 && state[h] == 0) {
            state[h] = 1;
            stack.push_back(static_cast<uint32_t>(h));
            pushed = true;
            break;
          }
        }
        if (pushed) continue;
        stack.pop_back();
        state[k] = 2;
        if (!TryIntegrate(&cands[k])) pending.push_back(std::move(cands[k]));
      }
    }
  }

  // ------------------------------------------------------------ deletes

  // Marks the characters of `d` deleted; parts not in the tree go to
  // pending_deletes. `out` (may be null) collects what changed the tree.
  void ApplyDelete(const DelRec& d, std::vector<DelRec>* out) {
    uint32_t off = 0;
    while (off < d.len) {
      RunTree::Pos p;
      const CharId id{d.target.replica, d.target.counter + off};
      if (!tree.Find(id, &p)) {
        // Absent: wait, in one record up to the next present character.
        uint32_t end = off + 1;
        RunTree::Pos q;
        while (end < d.len && !tree.Find(CharId{id.replica, d.target.counter + end}, &q)) ++end;
        pending_deletes.push_back(
            DelRec{id, end - off, d.del_replica, d.DelAt(off), d.dir});
        off = end;
        continue;
      }
      TextRun& run = tree.RunAt(p);
      const uint32_t take = std::min(d.len - off, run.len - p.off);
      if (!run.deleted()) {
        p = tree.Split(p);
        if (take < tree.RunAt(p).len) {
          const RunTree::Pos tail = tree.Split(RunTree::Pos{p.leaf, p.idx, take});
          p = RunTree::Pos{tail.leaf, tail.idx - 1, 0};
        }
        tree.MarkDeleted(p, d.del_replica, d.DelAt(off), take == 1 ? 1 : d.dir);
        JoinAround(p);
      } else {
        for (uint32_t k = 0; k < take; ++k) {
          RunTree::Pos cp;
          tree.Find(CharId{id.replica, id.counter + k}, &cp);
          AddSecondDelete(cp, d.del_replica, d.DelAt(off + k));
        }
      }
      off += take;
    }
    (void)out;
  }

  // Character at `p` (already deleted) deleted again by (dr, dc).
  void AddSecondDelete(RunTree::Pos p, uint32_t dr, uint32_t dc) {
    TextRun& run = tree.RunAt(p);
    const uint32_t cur_r = run.del_replica, cur_c = run.DelAt(p.off);
    if (cur_r == dr && cur_c == dc) return;
    const CharId target = run.IdAt(p.off);
    if (DotLess(cur_r, cur_c, dr, dc)) {
      extra.insert({target.replica, target.counter, dr, dc});
      return;
    }
    // The new delete has the smaller dot: it becomes the run's.
    extra.insert({target.replica, target.counter, cur_r, cur_c});
    extra.erase({target.replica, target.counter, dr, dc});
    p = tree.Split(p);
    if (tree.RunAt(p).len > 1) {
      const RunTree::Pos tail = tree.Split(RunTree::Pos{p.leaf, p.idx, 1});
      p = RunTree::Pos{tail.leaf, tail.idx - 1, 0};
    }
    TextRun& one = tree.RunAt(p);
    one.del_replica = dr;
    one.del_counter = dc;
    one.del_dir = 1;
  }

  // Two neighbouring runs that can be one: same replica, consecutive ids,
  // the second typed right after the first, one right origin, one state.
  static bool CanJoin(const TextRun& a, const TextRun& b, int32_t* dir) {
    if (a.replica != b.replica || a.counter + a.len != b.counter ||
        b.left != a.IdAt(a.len - 1) || b.right != a.right || a.deleted() != b.deleted()) {
      return false;
    }
    *dir = 1;
    if (!a.deleted()) return true;
    if (a.del_replica != b.del_replica) return false;
    const int64_t step = static_cast<int64_t>(b.del_counter) - a.DelAt(a.len - 1);
    if (step != 1 && step != -1) return false;
    if (a.len > 1 && a.del_dir != step) return false;
    if (b.len > 1 && b.del_dir != step) return false;
    *dir = static_cast<int32_t>(step);
    return true;
  }

  // Joins the run at p with its neighbours in the same leaf where they
  // can be one run (keeps the tree small as backspaces split runs).
  void JoinAround(RunTree::Pos p) {
    int32_t dir;
    if (p.idx + 1 < p.leaf->n && CanJoin(p.leaf->run[p.idx], p.leaf->run[p.idx + 1], &dir)) {
      if (p.leaf->run[p.idx].deleted()) p.leaf->run[p.idx].del_dir = dir;
      tree.JoinNext(p);
    }
    if (p.idx > 0 && CanJoin(p.leaf->run[p.idx - 1], p.leaf->run[p.idx], &dir)) {
      if (p.leaf->run[p.idx - 1].deleted()) p.leaf->run[p.idx - 1].del_dir = dir;
      tree.JoinNext(RunTree::Pos{p.leaf, p.idx - 1, 0});
    }
  }

  // Places what can be placed (a delta is built with everything waiting;
  // its own characters are origins of one another).
  void Normalize() {
    if (!pending.empty()) {
      std::vector<TextRun> cands;
      cands.swap(pending);
      IntegrateAll(std::move(cands));
    }
    RetryPendingDeletes();
  }

  // Retries the pending deletes (after characters arrived).
  void RetryPendingDeletes() {
    if (pending_deletes.empty()) return;
    std::vector<DelRec> retry;
    retry.swap(pending_deletes);
    for (const DelRec& d : retry) ApplyDelete(d, nullptr);
  }

  // -------------------------------------------------------------- edits

  // The run of a new insert: `chars` code points of `text` from (me, c).
  static TextRun NewRun(uint32_t me, uint32_t c, uint32_t chars, CharId left, CharId right,
                        std::string_view text) {
    TextRun run;
    run.replica = me;
    run.counter = c;
    run.len = chars;
    run.left = left;
    run.right = right;
    run.text.assign(text.data(), text.size());
    return run;
  }

  // Local insert at the current version; `text` is valid UTF-8 of
  // `chars` >= 1 code points and pos <= visible.
  void InsertNow(uint32_t me, uint64_t pos, std::string_view text, uint32_t chars, Text::Impl* delta) {
    const uint32_t c = Next(me);
    RunTree::Pos at = tree.FindVisible(pos);
    RunTree::Pos before;
    const bool has_before = tree.Prev(at, &before);
    const CharId left = has_before ? tree.RunAt(before).IdAt(before.off) : CharId{};
    const CharId right = tree.AtEnd(at) ? CharId{} : tree.RunAt(at).IdAt(at.off);
    RangesAdd(&seen[me], c, c + chars);
    if (delta != nullptr) delta->AddLocalInsert(replicas[me], c, chars, left, right, *this, text);
    if (has_before) {
      TextRun& pr = tree.RunAt(before);
      if (before.off + 1 == pr.len && !pr.deleted() && pr.replica == me &&
          pr.counter + pr.len == c && pr.right == right) {
        tree.Extend(before, text, chars);
        return;
      }
    }
    at = tree.Split(at);
    tree.Insert(at, NewRun(me, c, chars, left, right, text));
  }

  // One character at p, at either end of its live run (of two or more),
  // deleted by (me, d) and moved into the tombstone run beside it when
  // they join: backspacing and forward-deleting through typed text cost
  // no split. False when they would not join. Afterwards p still names the
  // character (now in its new run) only by id.
  bool MoveToTombstone(RunTree::Pos p, uint32_t me, uint32_t d) {
    RunTree::Leaf* l = p.leaf;
    TextRun& run = l->run[p.idx];
    if (run.len < 2) return false;
    if (p.off + 1 == run.len && p.idx + 1 < l->n) {
      TextRun& next = l->run[p.idx + 1];
      if (!next.deleted() || next.replica != run.replica || next.counter != run.counter + run.len ||
          next.left != run.IdAt(run.len - 1) || next.right != run.right || next.del_replica != me ||
          next.del_counter + 1 != d || (next.len > 1 && next.del_dir != -1)) {
        return false;
      }
      const CharId moved = run.IdAt(p.off);
      run.len -= 1;
      // Drop the last code point: its continuation bytes, then its lead.
      size_t cut = run.text.size();
      do {
        --cut;
      } while (cut > 0 && (static_cast<unsigned char>(run.text[cut]) & 0xC0) == 0x80);
      run.text.resize(cut);
      next.counter = moved.counter;
      next.len += 1;
      next.left = run.len > 0 ? run.IdAt(run.len - 1) : run.left;
      next.del_counter = d;
      next.del_dir = -1;
      tree.AdjustVisible(l, -1);
      return true;
    }
    if (p.off == 0 && p.idx > 0) {
      TextRun& prev = l->run[p.idx - 1];
      if (!prev.deleted() || prev.replica != run.replica || prev.counter + prev.len != run.counter ||
          run.left != prev.IdAt(prev.len - 1) || run.right != prev.right || prev.del_replica != me ||
          prev.DelAt(prev.len - 1) + 1 != d || (prev.len > 1 && prev.del_dir != 1)) {
        return false;
      }
      prev.len += 1;
      prev.del_dir = 1;
      run.left = run.IdAt(0);
      run.counter += 1;
      run.len -= 1;
      run.text.erase(0, Utf8Offset(run.text, 1));
      tree.AdjustVisible(l, -1);
      return true;
    }
    return false;
  }

  // Local delete of visible [pos, pos + len) at the current version.
  void DeleteNow(uint32_t me, uint64_t pos, uint64_t len, Text::Impl* delta) {
    uint32_t d = Next(me);
    const uint32_t d0 = d;
    while (len > 0) {
      RunTree::Pos p = tree.FindVisible(pos);
      const uint32_t take =
          static_cast<uint32_t>(std::min<uint64_t>(len, tree.RunAt(p).len - p.off));
      const CharId first = tree.RunAt(p).IdAt(p.off);
      if (take == 1 && MoveToTombstone(p, me, d)) {
        if (delta != nullptr) {
          const CharId id = first;
          delta->AddLocalDelete(replicas[id.replica], id.counter, 1, replicas[me], d, *this);
        }
        ++d;
        --len;
        continue;
      }
      p = tree.Split(p);
      if (take < tree.RunAt(p).len) {
        const RunTree::Pos tail = tree.Split(RunTree::Pos{p.leaf, p.idx, take});
        p = RunTree::Pos{tail.leaf, tail.idx - 1, 0};
      }
      const TextRun& run = tree.RunAt(p);
      if (delta != nullptr) {
        delta->AddLocalDelete(replicas[run.replica], run.counter, take, replicas[me], d, *this);
      }
      tree.MarkDeleted(p, me, d, 1);
      JoinAround(p);
      d += take;
      len -= take;
    }
    RangesAdd(&seen[me], d0, d);
  }

  // The document as of version `at` (per replica index ranges): calls
  // f(run, off, n, visible) for each stretch of characters `at` holds.
  template <class F>
  void ForEachAt(const std::vector<const Ranges*>& at, F f) const {
    tree.ForEach([&](const TextRun& run) {
      const Ranges* m = run.replica < at.size() ? at[run.replica] : nullptr;
      if (m == nullptr) return;
      // Parts of the run inside `at`.
      const uint32_t lo = run.counter, hi = run.counter + run.len;
      auto it = m->upper_bound(lo);
      if (it != m->begin()) --it;
      for (; it != m->end() && it->first < hi; ++it) {
        const uint32_t a = std::max(lo, it->first), b = std::min(hi, it->second);
        if (a >= b) continue;
        for (uint32_t k = a; k < b;) {
          // Visible at `at` unless a delete `at` holds removed it.
          const bool vis = !DeletedAt(run, k - lo, at);
          uint32_t e = k + 1;
          if (!run.deleted()) {
            e = b;
          } else {
            while (e < b && DeletedAt(run, e - lo, at) == !vis) ++e;
          }
          f(run, k - lo, e - k, vis);
          k = e;
        }
      }
    });
  }

  bool DeletedAt(const TextRun& run, uint32_t off, const std::vector<const Ranges*>& at) const {
    if (!run.deleted()) return false;
    auto holds = [&](uint32_t r, uint32_t c) {
      return r < at.size() && at[r] != nullptr && RangesContain(*at[r], c);
    };
    if (holds(run.del_replica, run.DelAt(off))) return true;
    if (extra.empty()) return false;
    const uint32_t tc = run.counter + off;
    for (auto it = extra.lower_bound({run.replica, tc, 0, 0});
         it != extra.end() && (*it)[0] == run.replica && (*it)[1] == tc; ++it) {
      if (holds((*it)[2], (*it)[3])) return true;
    }
    return false;
  }

  // Insert at position `pos` of the document as of `at`.
  void InsertAt(uint32_t me, const std::vector<const Ranges*>& at, uint64_t pos,
                std::string_view text, uint32_t chars, Text::Impl* delta) {
    CharId left, right;
    bool found = false;
    uint64_t seen_vis = 0;
    ForEachAt(at, [&](const TextRun& run, uint32_t off, uint32_t n, bool vis) {
      if (found) return;
      if (vis && seen_vis + n > pos) {
        const uint32_t k = static_cast<uint32_t>(pos - seen_vis);
        right = run.IdAt(off + k);
        if (k > 0) left = run.IdAt(off + k - 1);
        found = true;
        return;
      }
      if (vis) seen_vis += n;
      left = run.IdAt(off + n - 1);
    });
    const uint32_t c = Next(me);
    RangesAdd(&seen[me], c, c + chars);
    if (delta != nullptr) delta->AddLocalInsert(replicas[me], c, chars, left, right, *this, text);
    Integrate(NewRun(me, c, chars, left, right, text));
  }

  // Delete of [pos, pos + len) of the document as of `at`.
  void DeleteAt(uint32_t me, const std::vector<const Ranges*>& at, uint64_t pos, uint64_t len,
                Text::Impl* delta) {
    std::vector<DelRec> targets;
    uint64_t seen_vis = 0;
    uint32_t d = Next(me);
    const uint32_t d0 = d;
    ForEachAt(at, [&](const TextRun& run, uint32_t off, uint32_t n, bool vis) {
      if (!vis || seen_vis + n <= pos || seen_vis >= pos + len) {
        if (vis) seen_vis += n;
        return;
      }
      const uint64_t from = std::max<uint64_t>(pos, seen_vis);
      const uint64_t to = std::min<uint64_t>(pos + len, seen_vis + n);
      const CharId t = run.IdAt(off + static_cast<uint32_t>(from - seen_vis));
      const uint32_t cnt = static_cast<uint32_t>(to - from);
      targets.push_back(DelRec{t, cnt, me, d, 1});
      d += cnt;
      seen_vis += n;
    });
    RangesAdd(&seen[me], d0, d);
    for (const DelRec& t : targets) {
      if (delta != nullptr) {
        delta->AddLocalDelete(replicas[t.target.replica], t.target.counter, t.len, replicas[me],
                              t.del_counter, *this);
      }
      ApplyDelete(t, nullptr);
    }
  }

  // ------------------------------------------------------------- deltas

  uint32_t InternIn(const ReplicaId& r) { return Intern(r); }

  void AddLocalInsert(const ReplicaId& me, uint32_t c, uint32_t chars, CharId left, CharId right,
                      const Impl& from, std::string_view text) {
    TextRun run;
    run.replica = Intern(me);
    run.counter = c;
    run.len = chars;
    run.left = left.none() ? CharId{} : CharId{Intern(from.replicas[left.replica]), left.counter};
    run.right =
        right.none() ? CharId{} : CharId{Intern(from.replicas[right.replica]), right.counter};
    run.text.assign(text.data(), text.size());
    RangesAdd(&seen[run.replica], c, c + chars);
    pending.push_back(std::move(run));
  }

  void AddLocalDelete(const ReplicaId& target, uint32_t tc, uint32_t len, const ReplicaId& me,
                      uint32_t d, const Impl&) {
    const uint32_t tr = Intern(target), dr = Intern(me);
    RangesAdd(&seen[dr], d, d + len);
    pending_deletes.push_back(DelRec{CharId{tr, tc}, len, dr, d, 1});
  }
};

// ------------------------------------------------------------------ Text

Text::Text() : impl_(std::make_unique<Impl>()) {}
Text::~Text() = default;
Text::Text(Text&& o) noexcept = default;
Text& Text::operator=(Text&& o) noexcept = default;

Text::Text(const Text& o) : impl_(std::make_unique<Impl>()) {
  const Status s = DecodeTrusted(o.Encode(), this);
  if (!s.ok()) {
    // A state whose own encoding does not load is a bug; a copy must not
    // quietly come out empty.
    std::fprintf(stderr, "text: copying a state failed: %s\n", s.ToString().c_str());
    std::abort();
  }
}

Text& Text::operator=(const Text& o) {
  if (this != &o) {
    Text copy(o);
    *this = std::move(copy);
  }
  return *this;
}

std::string Text::Content() const {
  std::string out;
  out.reserve(impl_->tree.visible());
  impl_->tree.ForEach([&](const TextRun& r) {
    if (!r.deleted()) out += r.text;
  });
  return out;
}

uint64_t Text::Length() const { return impl_->tree.visible(); }

TextVersion Text::version() const { return impl_->Version(); }

TextVersion Text::Dots() const {
  const Impl& s = *impl_;
  TextVersion v;
  for (size_t r = 0; r < s.seen.size(); ++r) {
    for (const auto& [lo, hi] : s.seen[r]) v.Add(s.replicas[r], lo, hi);
  }
  return v;
}

Status Text::Insert(const ReplicaId& me, uint64_t pos, std::string_view utf8, Text* delta) {
  uint64_t chars;
  if (me.node.empty()) return Status::InvalidArgument("text: empty replica id");
  if (utf8.size() > kMaxTextInsertBytes) return Status::InvalidArgument("insert too large");
  if (!CountUtf8(utf8, &chars)) return Status::InvalidArgument("text is not valid UTF-8");
  if (pos > impl_->tree.visible()) {
    return Status::InvalidArgument("insert position " + std::to_string(pos) + " past the end (" +
                                   std::to_string(impl_->tree.visible()) + ")");
  }
  if (delta != nullptr) *delta = Text();
  if (chars == 0) return Status::OK();
  const uint32_t r = impl_->Intern(me);
  if (impl_->Next(r) + chars > kMaxTextCounter) {
    return Status::OutOfRange("text: too many edits by one replica");
  }
  impl_->InsertNow(r, pos, utf8, static_cast<uint32_t>(chars),
                   delta != nullptr ? delta->impl_.get() : nullptr);
  if (delta != nullptr) delta->impl_->Normalize();
  return Status::OK();
}

Status Text::Delete(const ReplicaId& me, uint64_t pos, uint64_t len, Text* delta) {
  if (me.node.empty()) return Status::InvalidArgument("text: empty replica id");
  if (pos > impl_->tree.visible() || len > impl_->tree.visible() - pos) {
    return Status::InvalidArgument("delete of " + std::to_string(len) + " at " +
                                   std::to_string(pos) + " past the end (" +
                                   std::to_string(impl_->tree.visible()) + ")");
  }
  if (delta != nullptr) *delta = Text();
  if (len == 0) return Status::OK();
  const uint32_t r = impl_->Intern(me);
  if (impl_->Next(r) + len > kMaxTextCounter) {
    return Status::OutOfRange("text: too many edits by one replica");
  }
  impl_->DeleteNow(r, pos, len, delta != nullptr ? delta->impl_.get() : nullptr);
  if (delta != nullptr) delta->impl_->Normalize();
  return Status::OK();
}

Status Text::Apply(const ReplicaId& me, const TextVersion* at, const std::vector<TextEdit>& edits,
                   Text* delta) {
  Impl& s = *impl_;
  if (me.node.empty()) return Status::InvalidArgument("text: empty replica id");
  // Resolve `at` against this state's replicas.
  bool now = at == nullptr;
  std::vector<Ranges> at_ranges;  // per replica index
  if (!now) {
    if (!s.Version().Covers(*at)) {
      return Status::FailedPrecondition("text: version " + at->ToString() +
                                        " names edits this replica has not got");
    }
    at_ranges.resize(s.replicas.size());
    for (const auto& [r, rs] : at->ranges()) {
      const uint32_t idx = s.replica_index.at(r);
      for (const auto& [lo, hi] : rs) RangesAdd(&at_ranges[idx], static_cast<uint32_t>(lo),
                                                static_cast<uint32_t>(hi));
    }
    now = s.pending.empty() && s.pending_deletes.empty() && at_ranges == s.seen;
    if (!now) {
      for (const TextRun& p : s.pending) {
        uint32_t missing = 0;
        ForEachMissing(&at_ranges[p.replica], p.counter, p.counter + p.len,
                       [&](uint32_t lo, uint32_t hi) { missing += hi - lo; });
        if (missing < p.len) {
          return Status::FailedPrecondition(
              "text: the version names characters still waiting for their neighbours here");
        }
      }
    }
  }
  // Check every edit before changing anything.
  uint64_t length = 0;
  if (now) {
    length = s.tree.visible();
  } else {
    std::vector<const Ranges*> view(at_ranges.size());
    for (size_t i = 0; i < at_ranges.size(); ++i) view[i] = &at_ranges[i];
    s.ForEachAt(view, [&](const TextRun&, uint32_t, uint32_t n, bool vis) {
      if (vis) length += n;
    });
  }
  uint64_t counters = 0;
  std::vector<uint32_t> chars(edits.size(), 0);
  for (size_t i = 0; i < edits.size(); ++i) {
    const TextEdit& e = edits[i];
    if (e.insert) {
      uint64_t n;
      if (e.text.size() > kMaxTextInsertBytes) return Status::InvalidArgument("insert too large");
      if (!CountUtf8(e.text, &n)) return Status::InvalidArgument("text is not valid UTF-8");
      if (e.pos > length) {
        return Status::InvalidArgument("insert position " + std::to_string(e.pos) +
                                       " past the end (" + std::to_string(length) + ")");
      }
      chars[i] = static_cast<uint32_t>(n);
      length += n;
      counters += n;
    } else {
      if (e.pos > length || e.len > length - e.pos) {
        return Status::InvalidArgument("delete of " + std::to_string(e.len) + " at " +
                                       std::to_string(e.pos) + " past the end (" +
                                       std::to_string(length) + ")");
      }
      length -= e.len;
      counters += e.len;
    }
  }
  const uint32_t r = s.Intern(me);
  if (s.Next(r) + counters > kMaxTextCounter) {
    return Status::OutOfRange("text: too many edits by one replica");
  }
  if (delta != nullptr) *delta = Text();
  Impl* d = delta != nullptr ? delta->impl_.get() : nullptr;
  if (!now) at_ranges.resize(s.replicas.size());
  for (size_t i = 0; i < edits.size(); ++i) {
    const TextEdit& e = edits[i];
    if (now) {
      if (e.insert && chars[i] > 0) s.InsertNow(r, e.pos, e.text, chars[i], d);
      if (!e.insert && e.len > 0) s.DeleteNow(r, e.pos, e.len, d);
      continue;
    }
    std::vector<const Ranges*> view(at_ranges.size());
    for (size_t k = 0; k < at_ranges.size(); ++k) view[k] = &at_ranges[k];
    const uint32_t before = s.Next(r);
    if (e.insert && chars[i] > 0) s.InsertAt(r, view, e.pos, e.text, chars[i], d);
    if (!e.insert && e.len > 0) s.DeleteAt(r, view, e.pos, e.len, d);
    // Later edits see this one.
    RangesAdd(&at_ranges[r], before, s.Next(r));
  }
  if (d != nullptr) d->Normalize();
  return Status::OK();
}

Status Text::DeleteAll(const ReplicaId& me, Text* delta) {
  return Delete(me, 0, Length(), delta);
}

Text Text::DeltaSince(const TextVersion& v) const {
  const Impl& s = *impl_;
  Text out;
  Impl& o = *out.impl_;
  std::vector<const Ranges*> vr(s.replicas.size(), nullptr);
  std::vector<Ranges> vstore(s.replicas.size());
  for (const auto& [r, rs] : v.ranges()) {
    auto it = s.replica_index.find(r);
    if (it == s.replica_index.end()) continue;
    for (const auto& [lo, hi] : rs) {
      RangesAdd(&vstore[it->second], static_cast<uint32_t>(std::min<uint64_t>(lo, kNone)),
                static_cast<uint32_t>(std::min<uint64_t>(hi, kNone)));
    }
    vr[it->second] = &vstore[it->second];
  }
  auto has = [&](uint32_t r, uint32_t c) { return vr[r] != nullptr && RangesContain(*vr[r], c); };
  auto map_id = [&](CharId id) {
    return id.none() ? CharId{} : CharId{o.Intern(s.replicas[id.replica]), id.counter};
  };
  auto add_run_parts = [&](const TextRun& run) {
    ForEachMissing(vr[run.replica], run.counter, run.counter + run.len,
                   [&](uint32_t lo, uint32_t hi) {
                     TextRun p;
                     const uint32_t off = lo - run.counter;
                     p.replica = o.Intern(s.replicas[run.replica]);
                     p.counter = lo;
                     p.len = hi - lo;
                     p.left = off == 0 ? map_id(run.left) : CharId{p.replica, lo - 1};
                     p.right = map_id(run.right);
                     if (run.deleted()) {
                       p.del_replica = o.Intern(s.replicas[run.del_replica]);
                       p.del_counter = run.DelAt(off);
                       p.del_dir = run.del_dir;
                       RangesAdd(&o.seen[p.del_replica], std::min(p.del_counter, run.DelAt(off + p.len - 1)),
                                 std::max(p.del_counter, run.DelAt(off + p.len - 1)) + 1);
                     } else {
                       const size_t a = text_internal::RunOffset(run, off);
                       const size_t b = text_internal::RunOffset(run, off + p.len);
                       p.text = run.text.substr(a, b - a);
                     }
                     RangesAdd(&o.seen[p.replica], lo, hi);
                     o.pending.push_back(std::move(p));
                   });
    // Deletes v lacks of characters v has.
    if (!run.deleted()) return;
    for (uint32_t k = 0; k < run.len; ++k) {
      if (!has(run.replica, run.counter + k)) continue;
      const uint32_t dc = run.DelAt(k);
      if (has(run.del_replica, dc)) continue;
      const uint32_t tr = o.Intern(s.replicas[run.replica]);
      const uint32_t dr = o.Intern(s.replicas[run.del_replica]);
      RangesAdd(&o.seen[dr], dc, dc + 1);
      if (!o.pending_deletes.empty()) {
        DelRec& last = o.pending_deletes.back();
        if (last.target.replica == tr && last.target.counter + last.len == run.counter + k &&
            last.del_replica == dr && last.DelAt(last.len) == dc &&
            (last.len > 1 || last.DelAt(0) + 1 == dc)) {
          last.len++;
          continue;
        }
      }
      o.pending_deletes.push_back(DelRec{CharId{tr, run.counter + k}, 1, dr, dc, run.del_dir});
    }
  };
  s.tree.ForEach(add_run_parts);
  for (const TextRun& p : s.pending) add_run_parts(p);
  for (const DelRec& d : s.pending_deletes) {
    for (uint32_t k = 0; k < d.len; ++k) {
      const uint32_t dc = d.DelAt(k);
      if (has(d.del_replica, dc)) continue;
      const uint32_t tr = o.Intern(s.replicas[d.target.replica]);
      const uint32_t dr = o.Intern(s.replicas[d.del_replica]);
      RangesAdd(&o.seen[dr], dc, dc + 1);
      o.pending_deletes.push_back(DelRec{CharId{tr, d.target.counter + k}, 1, dr, dc, 1});
    }
  }
  for (const auto& x : s.extra) {
    if (has(x[2], x[3])) continue;
    const uint32_t tr = o.Intern(s.replicas[x[0]]);
    const uint32_t dr = o.Intern(s.replicas[x[2]]);
    RangesAdd(&o.seen[dr], x[3], x[3] + 1);
    o.pending_deletes.push_back(DelRec{CharId{tr, x[1]}, 1, dr, x[3], 1});
  }
  o.Normalize();
  return out;
}

void Text::Merge(const Text& other) {
  if (this == &other) return;
  Impl& s = *impl_;
  const Impl& o = *other.impl_;
  std::vector<uint32_t> map(o.replicas.size());
  for (size_t i = 0; i < o.replicas.size(); ++i) map[i] = s.Intern(o.replicas[i]);
  auto mid = [&](CharId id) { return id.none() ? id : CharId{map[id.replica], id.counter}; };
  std::vector<TextRun> cands;
  std::vector<DelRec> dels;
  auto take_run = [&](const TextRun& run) {
    const uint32_t r = map[run.replica];
    ForEachMissing(&s.seen[r], run.counter, run.counter + run.len, [&](uint32_t lo, uint32_t hi) {
      TextRun p;
      const uint32_t off = lo - run.counter;
      p.replica = r;
      p.counter = lo;
      p.len = hi - lo;
      p.left = off == 0 ? mid(run.left) : CharId{r, lo - 1};
      p.right = mid(run.right);
      if (run.deleted()) {
        p.del_replica = map[run.del_replica];
        p.del_counter = run.DelAt(off);
        p.del_dir = run.del_dir;
      } else {
        const size_t a = text_internal::RunOffset(run, off);
        const size_t b = text_internal::RunOffset(run, off + p.len);
        p.text = run.text.substr(a, b - a);
      }
      cands.push_back(std::move(p));
    });
    // Deletes of characters this state has, by dots it lacks.
    if (!run.deleted()) return;
    const uint32_t dr = map[run.del_replica];
    for (uint32_t k = 0; k < run.len;) {
      const uint32_t tc = run.counter + k;
      if (!s.Seen(r, tc) || s.Seen(dr, run.DelAt(k))) {
        ++k;
        continue;
      }
      uint32_t e = k + 1;
      while (e < run.len && s.Seen(r, run.counter + e) && !s.Seen(dr, run.DelAt(e))) ++e;
      dels.push_back(DelRec{CharId{r, tc}, e - k, dr, run.DelAt(k), e - k > 1 ? run.del_dir : 1});
      k = e;
    }
  };
  o.tree.ForEach(take_run);
  for (const TextRun& p : o.pending) take_run(p);
  for (const DelRec& d : o.pending_deletes) {
    const uint32_t dr = map[d.del_replica];
    for (uint32_t k = 0; k < d.len; ++k) {
      if (s.Seen(dr, d.DelAt(k))) continue;
      dels.push_back(DelRec{CharId{map[d.target.replica], d.target.counter + k}, 1, dr, d.DelAt(k), 1});
    }
  }
  for (const auto& x : o.extra) {
    const uint32_t dr = map[x[2]];
    if (s.Seen(dr, x[3])) continue;
    dels.push_back(DelRec{CharId{map[x[0]], x[1]}, 1, dr, x[3], 1});
  }
  // Everything `other` has seen is now seen here.
  for (size_t i = 0; i < o.seen.size(); ++i) {
    for (const auto& [lo, hi] : o.seen[i]) RangesAdd(&s.seen[map[i]], lo, hi);
  }
  if (cands.empty() && dels.empty()) return;
  // Waiting characters may integrate now.
  for (TextRun& p : s.pending) cands.push_back(std::move(p));
  s.pending.clear();
  s.IntegrateAll(std::move(cands));
  for (const DelRec& d : dels) s.ApplyDelete(d, nullptr);
  s.RetryPendingDeletes();
}

bool Text::IsBottom() const {
  return impl_->tree.runs() == 0 && impl_->pending.empty() && impl_->pending_deletes.empty() &&
         impl_->extra.empty();
}

bool Text::HasValue() const { return impl_->tree.visible() > 0; }

bool Text::operator==(const Text& o) const { return Encode() == o.Encode(); }

size_t Text::MemoryBytes() const {
  const Impl& s = *impl_;
  size_t bytes = sizeof(Impl) + s.tree.MemoryBytes();
  for (const auto& m : s.seen) bytes += m.size() * (4 * sizeof(void*) + 2 * sizeof(uint32_t));
  bytes += s.pending.capacity() * sizeof(TextRun) + s.pending_deletes.capacity() * sizeof(DelRec);
  bytes += s.extra.size() * (4 * sizeof(void*) + 16);
  for (const ReplicaId& r : s.replicas) bytes += sizeof(ReplicaId) * 2 + r.node.capacity() * 2;
  return bytes;
}

size_t Text::RunCount() const { return impl_->tree.runs(); }
size_t Text::PendingCount() const { return impl_->pending.size() + impl_->pending_deletes.size(); }

// -------------------------------------------------------------- encoding

namespace {

// A run being written: the tree's runs joined where they can be one.
struct OutRun {
  uint32_t replica, counter, len;
  CharId left, right;
  uint32_t del_replica, del_counter;
  int32_t dir;
  bool deleted() const { return del_replica != kNone; }
};

// Appends `from` to `runs`, joining it with the last one where they can
// be one run (Impl::CanJoin, on the already-renamed ids).
void PushJoined(std::vector<OutRun>* runs, const OutRun& b) {
  if (!runs->empty()) {
    OutRun& a = runs->back();
    if (a.replica == b.replica && a.counter + a.len == b.counter &&
        b.left == CharId{a.replica, a.counter + a.len - 1} && b.right == a.right &&
        a.deleted() == b.deleted()) {
      if (!a.deleted()) {
        a.len += b.len;
        return;
      }
      if (a.del_replica == b.del_replica) {
        const uint32_t a_last = a.dir > 0 ? a.del_counter + (a.len - 1) : a.del_counter - (a.len - 1);
        const int64_t step = static_cast<int64_t>(b.del_counter) - a_last;
        if ((step == 1 || step == -1) && (a.len == 1 || a.dir == step) &&
            (b.len == 1 || b.dir == step)) {
          a.dir = static_cast<int32_t>(step);
          a.len += b.len;
          return;
        }
      }
    }
  }
  OutRun c = b;
  if (c.len == 1) c.dir = 1;
  runs->push_back(c);
}

}  // namespace

std::string Text::Encode() const {
  const std::string raw = EncodeBody(*impl_);

  Encoder e(kFormatVersion);
  e.Array(3);
  if (raw.size() >= kCompressAbove) {
    uLongf clen = compressBound(raw.size());
    std::string packed(clen, '\0');
    if (compress2(reinterpret_cast<Bytef*>(packed.data()), &clen,
                  reinterpret_cast<const Bytef*>(raw.data()), raw.size(), 6) == Z_OK &&
        clen < raw.size()) {
      packed.resize(clen);
      e.Uint(1);
      e.Uint(raw.size());
      e.Bin(packed);
      return e.Take();
    }
  }
  e.Uint(0);
  e.Uint(raw.size());
  e.Bin(raw);
  return e.Take();
}

std::string Text::EncodeBody(const Impl& s) {
  // Replicas with dots or named by an id, in ascending order; `rank`
  // renames indices.
  std::vector<uint8_t> used(s.replicas.size(), 0);
  for (uint32_t i = 0; i < s.replicas.size(); ++i) used[i] = !s.seen[i].empty();
  auto use_run = [&](const TextRun& r) {
    used[r.replica] = 1;
    if (!r.left.none()) used[r.left.replica] = 1;
    if (!r.right.none()) used[r.right.replica] = 1;
    if (r.deleted()) used[r.del_replica] = 1;
  };
  s.tree.ForEach(use_run);
  for (const TextRun& r : s.pending) use_run(r);
  for (const DelRec& d : s.pending_deletes) used[d.target.replica] = used[d.del_replica] = 1;
  for (const auto& x : s.extra) used[x[0]] = used[x[2]] = 1;
  std::vector<uint32_t> order;
  for (uint32_t i = 0; i < s.replicas.size(); ++i) {
    if (used[i]) order.push_back(i);
  }
  std::sort(order.begin(), order.end(),
            [&](uint32_t a, uint32_t b) { return s.replicas[a] < s.replicas[b]; });
  std::vector<uint32_t> rank(s.replicas.size(), kNone);
  for (uint32_t i = 0; i < order.size(); ++i) rank[order[i]] = i;
  auto rid = [&](CharId id) { return id.none() ? id : CharId{rank[id.replica], id.counter}; };

  // Runs in document order, joined; the live text beside them.
  std::vector<OutRun> runs;
  runs.reserve(s.tree.runs());
  std::string text;
  text.reserve(s.tree.visible() + s.tree.visible() / 8);
  s.tree.ForEach([&](const TextRun& r) {
    PushJoined(&runs, OutRun{rank[r.replica], r.counter, r.len, rid(r.left), rid(r.right),
                             r.deleted() ? rank[r.del_replica] : kNone, r.del_counter,
                             r.del_dir});
    if (!r.deleted()) text += r.text;
  });

  ColumnWriter rc;
  std::vector<uint32_t> last_end(order.size(), 0), last_del(order.size(), 0);
  uint32_t prev_replica = kNone;
  for (size_t i = 0; i < runs.size(); ++i) {
    const OutRun& r = runs[i];
    const CharId implicit_left =
        i > 0 ? CharId{runs[i - 1].replica, runs[i - 1].counter + runs[i - 1].len - 1} : CharId{};
    const CharId implicit_right =
        i + 1 < runs.size() ? CharId{runs[i + 1].replica, runs[i + 1].counter} : CharId{};
    const int left_mode = r.left.none() ? 0 : (r.left == implicit_left ? 1 : 2);
    const int right_mode = r.right.none() ? 0 : (r.right == implicit_right ? 1 : 2);
    uint64_t flags = (r.deleted() ? 1u : 0u) | (r.replica == prev_replica ? 2u : 0u) |
                     (static_cast<uint64_t>(left_mode) << 2) |
                     (static_cast<uint64_t>(right_mode) << 4);
    if (r.deleted()) {
      if (r.dir < 0) flags |= 64;
      if (r.del_replica == r.replica) flags |= 128;
    }
    rc.U(flags);
    if (r.replica != prev_replica) rc.U(r.replica);
    rc.S(static_cast<int64_t>(r.counter) - last_end[r.replica]);
    rc.U(r.len);
    if (left_mode == 2) {
      rc.U(r.left.replica);
      rc.S(static_cast<int64_t>(r.left.counter) - r.counter);
    }
    if (right_mode == 2) {
      rc.U(r.right.replica);
      rc.S(static_cast<int64_t>(r.right.counter) - r.counter);
    }
    if (r.deleted()) {
      if (r.del_replica != r.replica) rc.U(r.del_replica);
      rc.S(static_cast<int64_t>(r.del_counter) - last_del[r.del_replica]);
      last_del[r.del_replica] = r.dir > 0 ? r.del_counter + (r.len - 1) : r.del_counter - (r.len - 1);
    }
    last_end[r.replica] = r.counter + r.len;
    prev_replica = r.replica;
  }

  // Pending deletes: one (target, dot) per character, sorted, rejoined.
  std::vector<std::array<uint32_t, 4>> pd;
  for (const DelRec& d : s.pending_deletes) {
    for (uint32_t k = 0; k < d.len; ++k) {
      pd.push_back({rank[d.target.replica], d.target.counter + k, rank[d.del_replica], d.DelAt(k)});
    }
  }
  std::sort(pd.begin(), pd.end());
  pd.erase(std::unique(pd.begin(), pd.end()), pd.end());
  // A waiting character and waiting deletes of it name the same state in
  // whatever order they came: the character carries the smallest of its
  // deletes' dots (as its run will once placed), the waiting deletes the
  // others, and a waiting delete the character carries is written once,
  // with the run. (Ranks follow replica order, so tuple order is dot order.)
  std::vector<uint8_t> swapped(s.pending.size(), 0);
  std::vector<std::vector<std::pair<uint32_t, uint32_t>>> char_dots(s.pending.size());
  if (!pd.empty()) {
    std::vector<std::array<uint32_t, 4>> drop, add;
    for (size_t pi = 0; pi < s.pending.size(); ++pi) {
      const TextRun& p = s.pending[pi];
      if (!p.deleted()) continue;
      for (uint32_t k = 0; k < p.len; ++k) {
        const uint32_t tr = rank[p.replica], tc = p.counter + k;
        const std::array<uint32_t, 4> own{tr, tc, rank[p.del_replica], p.DelAt(k)};
        auto it = std::lower_bound(pd.begin(), pd.end(), std::array<uint32_t, 4>{tr, tc, 0, 0});
        if (it == pd.end() || (*it)[0] != tr || (*it)[1] != tc) continue;
        drop.push_back(own);  // written with the run, if at all
        if (*it < own) {
          // The smallest waiting delete goes on the run; the run's own waits.
          drop.push_back(*it);
          add.push_back(own);
          if (char_dots[pi].empty()) {
            for (uint32_t m = 0; m < p.len; ++m) {
              char_dots[pi].push_back({rank[p.del_replica], p.DelAt(m)});
            }
          }
          char_dots[pi][k] = {(*it)[2], (*it)[3]};
          swapped[pi] = 1;
        }
      }
    }
    std::sort(drop.begin(), drop.end());
    pd.erase(std::remove_if(pd.begin(), pd.end(),
                            [&](const std::array<uint32_t, 4>& x) {
                              return std::binary_search(drop.begin(), drop.end(), x);
                            }),
             pd.end());
    pd.insert(pd.end(), add.begin(), add.end());
    std::sort(pd.begin(), pd.end());
  }

  // Pending runs: ascending by (rank, counter), joined.
  std::vector<std::pair<OutRun, const std::string*>> pend;
  for (size_t pi = 0; pi < s.pending.size(); ++pi) {
    const TextRun& p = s.pending[pi];
    if (!swapped[pi]) {
      pend.push_back({OutRun{rank[p.replica], p.counter, p.len, rid(p.left), rid(p.right),
                             p.deleted() ? rank[p.del_replica] : kNone, p.del_counter, p.del_dir},
                      &p.text});
      continue;
    }
    // A character at a time (PushJoined joins what can be one run again).
    for (uint32_t k = 0; k < p.len; ++k) {
      const CharId left = k == 0 ? rid(p.left) : CharId{rank[p.replica], p.counter + k - 1};
      pend.push_back({OutRun{rank[p.replica], p.counter + k, 1, left, rid(p.right),
                             char_dots[pi][k].first, char_dots[pi][k].second, 1},
                      &p.text});
    }
  }
  std::sort(pend.begin(), pend.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first.replica, a.first.counter) < std::tie(b.first.replica, b.first.counter);
  });
  std::vector<OutRun> pruns;
  std::string ptext;
  for (const auto& [r, t] : pend) {
    PushJoined(&pruns, r);
    if (!r.deleted()) ptext += *t;
  }
  ColumnWriter pc;
  for (const OutRun& r : pruns) {
    pc.U(r.replica);
    pc.U(r.counter);
    pc.U(r.len);
    pc.U((r.deleted() ? 1u : 0u) | (r.left.none() ? 0u : 2u) | (r.right.none() ? 0u : 4u) |
         (r.deleted() && r.dir < 0 ? 8u : 0u));
    if (!r.left.none()) {
      pc.U(r.left.replica);
      pc.U(r.left.counter);
    }
    if (!r.right.none()) {
      pc.U(r.right.replica);
      pc.U(r.right.counter);
    }
    if (r.deleted()) {
      pc.U(r.del_replica);
      pc.U(r.del_counter);
    }
  }

  ColumnWriter dc;
  for (size_t i = 0; i < pd.size();) {
    size_t j = i + 1;
    int32_t dir = 1;
    if (j < pd.size() && pd[j][0] == pd[i][0] && pd[j][1] == pd[i][1] + 1 && pd[j][2] == pd[i][2] &&
        (pd[j][3] == pd[i][3] + 1 || pd[j][3] + 1 == pd[i][3])) {
      dir = pd[j][3] == pd[i][3] + 1 ? 1 : -1;
      while (j < pd.size() && pd[j][0] == pd[i][0] && pd[j][1] == pd[j - 1][1] + 1 &&
             pd[j][2] == pd[i][2] && static_cast<int64_t>(pd[j][3]) - pd[j - 1][3] == dir) {
        ++j;
      }
    }
    dc.U(pd[i][0]);
    dc.U(pd[i][1]);
    dc.U(j - i);
    dc.U(pd[i][2]);
    dc.U(pd[i][3]);
    dc.U(dir < 0 ? 1 : 0);
    i = j;
  }

  std::vector<std::array<uint32_t, 4>> ex;
  for (const auto& x : s.extra) ex.push_back({rank[x[0]], x[1], rank[x[2]], x[3]});
  std::sort(ex.begin(), ex.end());
  ColumnWriter xc;
  for (const auto& x : ex) {
    for (uint32_t v : x) xc.U(v);
  }

  Encoder body;
  body.Reserve(text.size() + rc.bytes().size() + 256);
  body.Array(8);
  body.Array(static_cast<uint32_t>(order.size()));
  for (uint32_t i : order) EncodeReplica(s.replicas[i], &body);
  body.Array(static_cast<uint32_t>(order.size()));
  for (uint32_t i : order) {
    ColumnWriter vc;
    uint32_t prev = 0;
    for (const auto& [lo, hi] : s.seen[i]) {
      vc.U(lo - prev);
      vc.U(hi - lo);
      prev = hi;
    }
    body.Bin(vc.bytes());
  }
  body.Bin(rc.bytes());
  body.Bin(text);
  body.Bin(pc.bytes());
  body.Bin(ptext);
  body.Bin(dc.bytes());
  body.Bin(xc.bytes());
  return body.Take();
}

Status Text::Decode(std::string_view bytes, Text* out) { return DecodeImpl(bytes, false, out); }

Status Text::DecodeTrusted(std::string_view bytes, Text* out) {
  return DecodeImpl(bytes, true, out);
}

Status Text::DecodeImpl(std::string_view bytes, bool trusted, Text* out) {
  Decoder d;
  MERIDIAN_RETURN_IF_ERROR(d.Parse(bytes, kFormatVersion).WithContext("text"));
  std::vector<Cursor> top;
  MERIDIAN_RETURN_IF_ERROR(d.root().Array(&top, "text", 3));
  uint64_t mode, raw_size;
  std::string payload;
  MERIDIAN_RETURN_IF_ERROR(top[0].Uint(&mode, "text packing"));
  MERIDIAN_RETURN_IF_ERROR(top[1].Uint(&raw_size, "text size"));
  MERIDIAN_RETURN_IF_ERROR(top[2].Bin(&payload, "text body"));
  std::string raw;
  if (mode == 0) {
    if (raw_size != payload.size()) return Bad("body size does not match");
    raw = std::move(payload);
    if (raw.size() >= kCompressAbove) {
      // Canonical bytes pack a body that deflate shrinks.
      uLongf clen = compressBound(raw.size());
      std::string packed(clen, '\0');
      if (compress2(reinterpret_cast<Bytef*>(packed.data()), &clen,
                    reinterpret_cast<const Bytef*>(raw.data()), raw.size(), 6) == Z_OK &&
          clen < raw.size()) {
        return Bad("an unpacked body that packs smaller");
      }
    }
  } else if (mode == 1) {
    if (raw_size < kCompressAbove) return Bad("a packed body under the packing size");
    // Deflate expands at most about 1032:1; refuse claims beyond that.
    if (raw_size > kMaxTextBodyBytes || raw_size > payload.size() * 1032 + 64) {
      return Bad("compressed body claims " + std::to_string(raw_size) + " bytes");
    }
    raw.resize(raw_size);
    uLongf len = raw_size;
    if (uncompress(reinterpret_cast<Bytef*>(raw.data()), &len,
                   reinterpret_cast<const Bytef*>(payload.data()), payload.size()) != Z_OK ||
        len != raw_size) {
      return Bad("compressed body does not inflate to its size");
    }
  } else {
    return Bad("unknown packing " + std::to_string(mode));
  }

  Decoder bd;
  MERIDIAN_RETURN_IF_ERROR(bd.ParseRaw(raw).WithContext("text body"));
  std::vector<Cursor> part;
  MERIDIAN_RETURN_IF_ERROR(bd.root().Array(&part, "text body", 8));

  Text t;
  Impl& s = *t.impl_;
  std::vector<Cursor> reps;
  MERIDIAN_RETURN_IF_ERROR(part[0].Array(&reps, "text replicas"));
  for (const Cursor& c : reps) {
    ReplicaId r;
    MERIDIAN_RETURN_IF_ERROR(DecodeReplica(c, &r));
    if (!s.replicas.empty() && !(s.replicas.back() < r)) return Bad("replicas not ascending");
    s.Intern(r);
  }
  s.last_me_index = kNone;
  const uint32_t nrep = static_cast<uint32_t>(s.replicas.size());
  std::vector<Cursor> vers;
  MERIDIAN_RETURN_IF_ERROR(part[1].Array(&vers, "text version", nrep));
  for (uint32_t i = 0; i < nrep; ++i) {
    std::string b;
    MERIDIAN_RETURN_IF_ERROR(vers[i].Bin(&b, "version ranges"));
    ColumnReader vr(b);
    uint64_t prev = 0;
    while (!vr.done()) {
      uint64_t gap, n;
      if (!vr.U(&gap) || !vr.U(&n)) return Bad("truncated version");
      const uint64_t lo = prev + gap, hi = lo + n;
      if (lo < 1 || (prev > 0 && gap == 0) || n == 0 || hi > uint64_t{kMaxTextCounter} + 1) {
        return Bad("version ranges not ascending, disjoint and in range");
      }
      s.seen[i].emplace_hint(s.seen[i].end(), static_cast<uint32_t>(lo), static_cast<uint32_t>(hi));
      prev = hi;
    }
  }
  auto check_replica = [&](uint64_t r) { return r < nrep; };
  // Every dot the state names: no two alike, all in the version.
  std::vector<std::pair<uint64_t, uint32_t>> dots;  // (replica << 32 | lo, hi)
  auto add_dots = [&](uint32_t r, uint32_t lo, uint32_t hi) -> bool {
    if (lo < 1 || hi <= lo || hi > kMaxTextCounter + 1) return false;
    ForEachMissing(&s.seen[r], lo, hi, [&](uint32_t, uint32_t) { lo = 0; });
    if (lo == 0) return false;
    dots.emplace_back(uint64_t{r} << 32 | lo, hi);
    return true;
  };
  auto run_dots = [&](const TextRun& r) -> bool {
    if (!add_dots(r.replica, r.counter, r.counter + r.len)) return false;
    if (!r.deleted()) return true;
    const uint32_t last = r.DelAt(r.len - 1);
    if (r.del_dir < 0 && r.del_counter < r.len) return false;
    if (r.del_dir > 0 && uint64_t{r.del_counter} + r.len > kMaxTextCounter + 1) return false;
    return add_dots(r.del_replica, std::min(r.del_counter, last), std::max(r.del_counter, last) + 1);
  };

  // Runs in document order.
  std::string rcol, text;
  MERIDIAN_RETURN_IF_ERROR(part[2].Bin(&rcol, "text runs"));
  MERIDIAN_RETURN_IF_ERROR(part[3].Bin(&text, "text content"));
  uint64_t text_chars;
  if (!CountUtf8(text, &text_chars)) return Bad("content is not valid UTF-8");
  std::vector<TextRun> runs;
  std::vector<uint8_t> right_implicit;
  {
    ColumnReader rr(rcol);
    std::vector<uint32_t> last_end(nrep, 0), last_del(nrep, 0);
    uint32_t prev_replica = kNone;
    size_t text_at = 0;
    uint64_t live_chars = 0;
    while (!rr.done()) {
      uint64_t flags;
      TextRun r;
      if (!rr.U(&flags) || flags >= 256) return Bad("bad run flags");
      const bool deleted = flags & 1;
      const int left_mode = (flags >> 2) & 3, right_mode = (flags >> 4) & 3;
      if (left_mode == 3 || right_mode == 3) return Bad("bad origin mode");
      if (!deleted && (flags & (64 | 128))) return Bad("delete flags on a live run");
      if (flags & 2) {
        if (prev_replica == kNone) return Bad("first run names no replica");
        r.replica = prev_replica;
      } else {
        uint64_t rep;
        if (!rr.U(&rep) || !check_replica(rep)) return Bad("bad run replica");
        r.replica = static_cast<uint32_t>(rep);
      }
      int64_t dc;
      uint64_t len;
      if (!rr.S(&dc) || !rr.U(&len)) return Bad("truncated run");
      const int64_t counter = static_cast<int64_t>(last_end[r.replica]) + dc;
      if (counter < 1 || len < 1 || counter + static_cast<int64_t>(len) > int64_t{kMaxTextCounter} + 1) {
        return Bad("run ids out of range");
      }
      r.counter = static_cast<uint32_t>(counter);
      r.len = static_cast<uint32_t>(len);
      auto explicit_origin = [&](CharId* o) -> bool {
        uint64_t rep;
        int64_t delta;
        if (!rr.U(&rep) || !check_replica(rep) || !rr.S(&delta)) return false;
        const int64_t c = static_cast<int64_t>(r.counter) + delta;
        if (c < 1 || c > int64_t{kMaxTextCounter}) return false;
        *o = CharId{static_cast<uint32_t>(rep), static_cast<uint32_t>(c)};
        return true;
      };
      if (left_mode == 1) {
        if (runs.empty()) return Bad("first run has an implicit left origin");
        r.left = runs.back().IdAt(runs.back().len - 1);
      } else if (left_mode == 2 && !explicit_origin(&r.left)) {
        return Bad("bad left origin");
      }
      if (right_mode == 2 && !explicit_origin(&r.right)) return Bad("bad right origin");
      if (deleted) {
        uint64_t rep = r.replica;
        if (!(flags & 128) && (!rr.U(&rep) || !check_replica(rep))) return Bad("bad delete replica");
        int64_t ddc;
        if (!rr.S(&ddc)) return Bad("truncated delete");
        const int64_t del = static_cast<int64_t>(last_del[rep]) + ddc;
        if (del < 1 || del > int64_t{kMaxTextCounter}) return Bad("delete dot out of range");
        r.del_replica = static_cast<uint32_t>(rep);
        r.del_counter = static_cast<uint32_t>(del);
        r.del_dir = (flags & 64) ? -1 : 1;
        if (r.del_dir < 0 && r.del_counter < r.len) return Bad("delete dots out of range");
        last_del[rep] = r.DelAt(r.len - 1);
      } else {
        if (live_chars + r.len > text_chars) return Bad("runs hold more text than the content");
        live_chars += r.len;
        const size_t n = Utf8Offset(std::string_view(text).substr(text_at), r.len);
        r.text = text.substr(text_at, n);
        text_at += n;
      }
      last_end[r.replica] = r.counter + r.len;
      prev_replica = r.replica;
      right_implicit.push_back(right_mode == 1);
      if (!run_dots(r)) return Bad("run names dots outside the version");
      runs.push_back(std::move(r));
    }
    if (live_chars != text_chars || text_at != text.size()) return Bad("content longer than the runs");
    for (size_t i = 0; i < runs.size(); ++i) {
      if (!right_implicit[i]) continue;
      if (i + 1 == runs.size()) return Bad("last run has an implicit right origin");
      runs[i].right = runs[i + 1].IdAt(0);
    }
  }

  // Pending runs.
  std::string pcol, ptext;
  MERIDIAN_RETURN_IF_ERROR(part[4].Bin(&pcol, "pending runs"));
  MERIDIAN_RETURN_IF_ERROR(part[5].Bin(&ptext, "pending text"));
  uint64_t ptext_chars;
  if (!CountUtf8(ptext, &ptext_chars)) return Bad("pending text is not valid UTF-8");
  {
    ColumnReader pr(pcol);
    size_t at = 0;
    uint64_t live = 0;
    while (!pr.done()) {
      uint64_t rep, counter, len, flags;
      if (!pr.U(&rep) || !check_replica(rep) || !pr.U(&counter) || !pr.U(&len) || !pr.U(&flags) ||
          flags >= 16 || counter < 1 || len < 1 || counter + len > uint64_t{kMaxTextCounter} + 1) {
        return Bad("bad pending run");
      }
      TextRun r;
      r.replica = static_cast<uint32_t>(rep);
      r.counter = static_cast<uint32_t>(counter);
      r.len = static_cast<uint32_t>(len);
      auto origin = [&](CharId* o) -> bool {
        uint64_t orep, oc;
        if (!pr.U(&orep) || !check_replica(orep) || !pr.U(&oc) || oc < 1 || oc > kMaxTextCounter) {
          return false;
        }
        *o = CharId{static_cast<uint32_t>(orep), static_cast<uint32_t>(oc)};
        return true;
      };
      if ((flags & 2) && !origin(&r.left)) return Bad("bad pending left origin");
      if ((flags & 4) && !origin(&r.right)) return Bad("bad pending right origin");
      if (flags & 1) {
        CharId del;
        if (!origin(&del)) return Bad("bad pending delete");
        r.del_replica = del.replica;
        r.del_counter = del.counter;
        r.del_dir = (flags & 8) ? -1 : 1;
      } else {
        if (flags & 8) return Bad("delete flags on a live pending run");
        if (live + r.len > ptext_chars) return Bad("pending runs hold more text than given");
        live += r.len;
        const size_t n = Utf8Offset(std::string_view(ptext).substr(at), r.len);
        r.text = ptext.substr(at, n);
        at += n;
      }
      // An origin inside the run itself would never be satisfied.
      for (CharId o : {r.left, r.right}) {
        if (!o.none() && o.replica == r.replica && o.counter - r.counter < r.len) {
          return Bad("pending run is its own origin");
        }
      }
      if (!run_dots(r)) return Bad("pending run names dots outside the version");
      s.pending.push_back(std::move(r));
    }
    if (live != ptext_chars || at != ptext.size()) return Bad("pending text longer than the runs");
  }

  // Pending deletes and second deletes.
  struct Parsed {
    DelRec rec;
    bool second;  // from the second-delete column
  };
  std::vector<Parsed> dels;
  uint64_t waiting_chars = 0;
  std::string dcol, xcol;
  MERIDIAN_RETURN_IF_ERROR(part[6].Bin(&dcol, "pending deletes"));
  MERIDIAN_RETURN_IF_ERROR(part[7].Bin(&xcol, "second deletes"));
  {
    ColumnReader dr(dcol);
    while (!dr.done()) {
      uint64_t tr, tc, len, rep, dc, dir;
      if (!dr.U(&tr) || !check_replica(tr) || !dr.U(&tc) || !dr.U(&len) || !dr.U(&rep) ||
          !check_replica(rep) || !dr.U(&dc) || !dr.U(&dir) || dir > 1 || tc < 1 || len < 1 ||
          tc + len > uint64_t{kMaxTextCounter} + 1 || dc < 1 || dc > kMaxTextCounter ||
          (dir == 1 && dc < len) || (dir == 0 && dc + len > uint64_t{kMaxTextCounter} + 1)) {
        return Bad("bad pending delete");
      }
      DelRec rec{CharId{static_cast<uint32_t>(tr), static_cast<uint32_t>(tc)},
                 static_cast<uint32_t>(len), static_cast<uint32_t>(rep), static_cast<uint32_t>(dc),
                 dir == 1 ? -1 : 1};
      const uint32_t last = rec.DelAt(rec.len - 1);
      if (!add_dots(rec.del_replica, std::min(rec.del_counter, last),
                    std::max(rec.del_counter, last) + 1)) {
        return Bad("pending delete names dots outside the version");
      }
      // Waiting deletes are kept (and re-encoded) a character at a time:
      // bytes from elsewhere may not make that cost unbounded.
      waiting_chars += rec.len;
      if (!trusted && waiting_chars > kMaxWaitingDeleteChars) {
        return Bad("waiting deletes of more than " + std::to_string(kMaxWaitingDeleteChars) +
                   " characters");
      }
      dels.push_back(Parsed{rec, false});
    }
    ColumnReader xr(xcol);
    while (!xr.done()) {
      uint64_t tr, tc, rep, dc;
      if (!xr.U(&tr) || !check_replica(tr) || !xr.U(&tc) || tc < 1 || tc > kMaxTextCounter ||
          !xr.U(&rep) || !check_replica(rep) || !xr.U(&dc)) {
        return Bad("bad second delete");
      }
      if (!add_dots(static_cast<uint32_t>(rep), static_cast<uint32_t>(dc),
                    static_cast<uint32_t>(dc) + 1)) {
        return Bad("second delete names a dot outside the version");
      }
      dels.push_back(Parsed{DelRec{CharId{static_cast<uint32_t>(tr), static_cast<uint32_t>(tc)}, 1,
                                   static_cast<uint32_t>(rep), static_cast<uint32_t>(dc), 1},
                            true});
    }
  }
  std::sort(dots.begin(), dots.end());
  for (size_t i = 1; i < dots.size(); ++i) {
    if ((dots[i].first >> 32) == (dots[i - 1].first >> 32) &&
        static_cast<uint32_t>(dots[i].first) < dots[i - 1].second) {
      return Bad("two events share a dot");
    }
  }

  if (trusted) {
    // Bytes this node wrote: the stored order is FugueMax's.
    s.tree.Load(std::move(runs));
  } else {
    // Untrusted bytes: the order is derived from the origins, as a merge
    // would place them, and must then be the order the bytes give (the
    // canonical check below); so no crafted order is ever believed.
    std::vector<TextRun> cands = std::move(runs);
    for (TextRun& p : s.pending) cands.push_back(std::move(p));
    s.pending.clear();
    s.IntegrateAll(std::move(cands));
  }
  // Nothing waits that could go in: a waiting run's origins are not all
  // here, a waiting delete's target is not, and a second delete names a
  // deleted character whose first delete has the smaller dot.
  for (const TextRun& p : s.pending) {
    RunTree::Pos q;
    if (!trusted && (p.left.none() || s.tree.Find(p.left, &q)) &&
        (p.right.none() || s.tree.Find(p.right, &q))) {
      return Bad("a waiting run whose origins are here");
    }
  }
  // The placed characters' id ranges, sorted, for the waiting deletes.
  std::vector<std::pair<uint64_t, uint32_t>> placed;  // (replica << 32 | lo, hi)
  if (waiting_chars > 0) {
    s.tree.ForEach([&](const TextRun& r) {
      placed.emplace_back(uint64_t{r.replica} << 32 | r.counter, r.counter + r.len);
    });
    std::sort(placed.begin(), placed.end());
  }
  auto any_placed = [&](CharId t, uint32_t len) {
    const uint64_t lo = uint64_t{t.replica} << 32 | t.counter;
    auto it = std::upper_bound(placed.begin(), placed.end(),
                               std::make_pair(lo, std::numeric_limits<uint32_t>::max()));
    if (it != placed.begin() && (std::prev(it)->first >> 32) == t.replica &&
        std::prev(it)->second > t.counter) {
      return true;  // a run starting at or before t reaches it
    }
    return it != placed.end() && (it->first >> 32) == t.replica &&
           static_cast<uint32_t>(it->first) < t.counter + len;
  };
  for (const Parsed& rec : dels) {
    RunTree::Pos q;
    const bool here = s.tree.Find(rec.rec.target, &q);
    if (!rec.second) {
      if (any_placed(rec.rec.target, rec.rec.len)) {
        return Bad("a waiting delete of a character that is here");
      }
      s.pending_deletes.push_back(rec.rec);
      continue;
    }
    const TextRun* run = here ? &s.tree.RunAt(q) : nullptr;
    if (run == nullptr || !run->deleted() ||
        !s.DotLess(run->del_replica, run->DelAt(q.off), rec.rec.del_replica, rec.rec.del_counter)) {
      return Bad("a second delete of a character not deleted first by a smaller dot");
    }
    s.extra.insert({rec.rec.target.replica, rec.rec.target.counter, rec.rec.del_replica,
                    rec.rec.del_counter});
  }
  // Canonical: the state re-encodes to exactly these bytes.
  if (!trusted && EncodeBody(s) != raw) return Bad("not in canonical form");
  *out = std::move(t);
  return Status::OK();
}

}  // namespace meridian::crdt
