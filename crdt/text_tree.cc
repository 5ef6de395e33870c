#include "crdt/text_tree.h"

#include <algorithm>
#include <cassert>
#include <utility>

namespace meridian::crdt::text_internal {

size_t Utf8Offset(std::string_view s, uint32_t n) {
  size_t i = 0;
  const size_t size = s.size();
  while (n > 0 && i < size) {
    // Skip one code point: a lead byte, then continuation bytes.
    ++i;
    while (i < size && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
    --n;
  }
  return i;
}

size_t RunOffset(const TextRun& r, uint32_t n) {
  // One byte per code point is ASCII throughout: no scan needed.
  return r.text.size() == r.len ? n : Utf8Offset(r.text, n);
}

RunTree::RunTree() { Clear(); }

RunTree::~RunTree() { FreeAll(); }

void RunTree::FreeAll() {
  // Free every node: leaves by their list, inner nodes level by level.
  std::vector<Node*> level;
  if (root_ != nullptr && !root_->is_leaf) level.push_back(root_);
  while (!level.empty()) {
    std::vector<Node*> below;
    for (Node* n : level) {
      auto* in = static_cast<Inner*>(n);
      for (int i = 0; i < in->n; ++i) {
        if (!in->child[i]->is_leaf) below.push_back(in->child[i]);
      }
      delete in;
    }
    level.swap(below);
  }
  for (Leaf* l = first_; l != nullptr;) {
    Leaf* next = l->next;
    delete l;
    l = next;
  }
}

void RunTree::Clear() {
  cache_leaf_ = nullptr;
  auto* leaf = new Leaf();
  root_ = leaf;
  first_ = last_ = leaf;
  runs_ = 0;
  leaves_ = 1;
  inners_ = 0;
  index_.clear();
  index_end_.clear();
}

uint64_t RunTree::visible() const { return root_->vis; }
uint64_t RunTree::total() const { return root_->all; }

int RunTree::RunCount(const Leaf* l) { return l->n; }

RunTree::Pos RunTree::Begin() const { return Normalize(Pos{first_, 0, 0}); }
RunTree::Pos RunTree::End() const { return Pos{last_, last_->n, 0}; }

RunTree::Pos RunTree::Normalize(Pos p) const {
  while (p.idx >= p.leaf->n && p.leaf->next != nullptr) {
    p = Pos{p.leaf->next, 0, 0};
  }
  return p;
}

RunTree::Pos RunTree::FindVisible(uint64_t n) const {
  if (n >= root_->vis) return End();
  if (cache_leaf_ != nullptr && n >= cache_start_ && n - cache_start_ < cache_leaf_->vis) {
    Leaf* leaf = cache_leaf_;
    uint64_t k = n - cache_start_;
    for (int i = 0; i < leaf->n; ++i) {
      const uint32_t v = leaf->run[i].visible();
      if (k < v) return Pos{leaf, i, static_cast<uint32_t>(k)};
      k -= v;
    }
  }
  const uint64_t want = n;
  const Node* node = root_;
  while (!node->is_leaf) {
    const auto* in = static_cast<const Inner*>(node);
    int i = 0;
    while (i + 1 < in->n && n >= in->cvis[i]) {
      n -= in->cvis[i];
      ++i;
    }
    node = in->child[i];
  }
  auto* leaf = const_cast<Leaf*>(static_cast<const Leaf*>(node));
  cache_leaf_ = leaf;
  cache_start_ = want - n;
  for (int i = 0; i < leaf->n; ++i) {
    const uint32_t v = leaf->run[i].visible();
    if (n < v) return Pos{leaf, i, static_cast<uint32_t>(n)};
    n -= v;
  }
  assert(false && "visible counts out of step");
  return End();
}

uint64_t RunTree::IndexOf(Pos p) const {
  uint64_t idx = p.off;
  for (int i = 0; i < p.idx; ++i) idx += p.leaf->run[i].len;
  const Node* n = p.leaf;
  while (n->parent != nullptr) {
    const Inner* par = n->parent;
    for (int i = 0; i < n->slot; ++i) idx += par->call[i];
    n = par;
  }
  return idx;
}

bool RunTree::Find(CharId id, Pos* out) const {
  if (id.replica >= index_.size()) return false;
  const auto& m = index_[id.replica];
  auto it = m.upper_bound(id.counter);
  if (it == m.begin()) return false;
  --it;
  Leaf* leaf = it->second;
  for (int i = 0; i < leaf->n; ++i) {
    const TextRun& r = leaf->run[i];
    if (r.replica == id.replica && id.counter >= r.counter && id.counter - r.counter < r.len) {
      *out = Pos{leaf, i, id.counter - r.counter};
      return true;
    }
  }
  return false;
}

TextRun& RunTree::RunAt(Pos p) const { return p.leaf->run[p.idx]; }

bool RunTree::Prev(Pos p, Pos* out) const {
  if (p.off > 0) {
    *out = Pos{p.leaf, p.idx, p.off - 1};
    return true;
  }
  Leaf* l = p.leaf;
  int idx = p.idx;
  while (idx == 0) {
    l = l->prev;
    if (l == nullptr) return false;
    idx = l->n;
  }
  *out = Pos{l, idx - 1, l->run[idx - 1].len - 1};
  return true;
}

RunTree::Pos RunTree::NextRun(Pos p) const { return Normalize(Pos{p.leaf, p.idx + 1, 0}); }

void RunTree::AdjustUp(Node* n, int64_t dvis, int64_t dall) {
  if (dvis != 0 && n != cache_leaf_) cache_leaf_ = nullptr;
  n->vis += dvis;
  n->all += dall;
  while (n->parent != nullptr) {
    Inner* par = n->parent;
    const int i = n->slot;
    par->cvis[i] += dvis;
    par->call[i] += dall;
    par->vis += dvis;
    par->all += dall;
    n = par;
  }
}

void RunTree::AdjustVisible(Leaf* l, int64_t dvis) { AdjustUp(l, dvis, 0); }

void RunTree::SetRange(uint32_t replica, uint32_t lo, uint32_t hi, Leaf* leaf) {
  if (replica >= index_.size()) {
    index_.resize(replica + 1);
    index_end_.resize(replica + 1, 0);
  }
  auto& m = index_[replica];
  // Counters from `hi` on name characters only if some range reached
  // past `hi` before; otherwise nothing needs the leaf in effect there.
  const bool later = index_end_[replica] > hi;
  index_end_[replica] = std::max(index_end_[replica], hi);
  if (!m.empty() && lo >= m.rbegin()->first) {
    // Past the last key (new counters, usually): one entry at most.
    auto last = std::prev(m.end());
    Leaf* after = last->second;
    if (after == leaf) return;
    if (last->first == lo) {
      last->second = leaf;
      if (last != m.begin() && std::prev(last)->second == leaf) m.erase(last);
    } else {
      m.emplace_hint(m.end(), lo, leaf);
    }
    if (later) m.emplace_hint(m.end(), hi, after);
    return;
  }
  // The leaf in effect at `hi` keeps the counters from `hi` on.
  auto at_hi = m.upper_bound(hi);
  Leaf* after = at_hi == m.begin() ? nullptr : std::prev(at_hi)->second;
  m.erase(m.lower_bound(lo), m.lower_bound(hi));
  auto before = m.lower_bound(lo);
  const bool same_before = before != m.begin() && std::prev(before)->second == leaf;
  if (!same_before) m.emplace_hint(before, lo, leaf);
  auto h = m.find(hi);
  if (after == leaf) {
    if (h != m.end()) m.erase(h);
  } else if (after != nullptr && h == m.end()) {
    m.emplace(hi, after);
  }
}

RunTree::Leaf* RunTree::SplitLeaf(Leaf* l) {
  auto* fresh = new Leaf();
  ++leaves_;
  const int half = l->n / 2;
  uint64_t vis = 0, all = 0;
  for (int i = half; i < l->n; ++i) {
    TextRun& r = l->run[i];
    vis += r.visible();
    all += r.len;
    fresh->run[i - half] = std::move(r);
    r = TextRun();
  }
  fresh->n = l->n - half;
  l->n = half;
  fresh->vis = vis;
  fresh->all = all;
  l->vis -= vis;
  l->all -= all;
  for (int i = 0; i < fresh->n; ++i) {
    const TextRun& r = fresh->run[i];
    SetRange(r.replica, r.counter, r.counter + r.len, fresh);
  }
  fresh->prev = l;
  fresh->next = l->next;
  if (l->next != nullptr) l->next->prev = fresh;
  l->next = fresh;
  if (last_ == l) last_ = fresh;
  InsertChild(l, fresh);
  return fresh;
}

// Puts `fresh` right after `after` in after's parent (splitting parents
// that are full, and growing a new root when the root splits). The counts
// of `after` and `fresh` are already correct; the ancestors' totals do not
// change (the split only moved characters between siblings).
void RunTree::InsertChild(Node* after, Node* fresh) {
  Inner* par = after->parent;
  if (par == nullptr) {
    auto* root = new Inner();
    ++inners_;
    root->is_leaf = false;
    root->n = 2;
    root->child[0] = after;
    root->child[1] = fresh;
    root->cvis[0] = after->vis;
    root->call[0] = after->all;
    root->cvis[1] = fresh->vis;
    root->call[1] = fresh->all;
    root->vis = after->vis + fresh->vis;
    root->all = after->all + fresh->all;
    after->parent = fresh->parent = root;
    after->slot = 0;
    fresh->slot = 1;
    root_ = root;
    return;
  }
  int slot = after->slot;
  if (par->n == kInnerChildren) {
    // Split the parent first; then `after` sits in one of its halves.
    auto* sib = new Inner();
    ++inners_;
    sib->is_leaf = false;
    const int half = par->n / 2;
    for (int i = half; i < par->n; ++i) {
      sib->child[i - half] = par->child[i];
      sib->cvis[i - half] = par->cvis[i];
      sib->call[i - half] = par->call[i];
      sib->vis += par->cvis[i];
      sib->all += par->call[i];
      par->child[i]->parent = sib;
      par->child[i]->slot = i - half;
    }
    sib->n = par->n - half;
    par->n = half;
    par->vis -= sib->vis;
    par->all -= sib->all;
    InsertChild(par, sib);
    if (slot >= half) {
      par = sib;
      slot -= half;
    }
  }
  for (int i = par->n; i > slot + 1; --i) {
    par->child[i] = par->child[i - 1];
    par->child[i]->slot = i;
    par->cvis[i] = par->cvis[i - 1];
    par->call[i] = par->call[i - 1];
  }
  par->child[slot + 1] = fresh;
  par->n++;
  fresh->parent = par;
  fresh->slot = slot + 1;
  // `after` lost to `fresh` what `fresh` holds: the parent's total stays.
  par->cvis[slot] = after->vis;
  par->call[slot] = after->all;
  par->cvis[slot + 1] = fresh->vis;
  par->call[slot + 1] = fresh->all;
}

RunTree::Pos RunTree::Split(Pos p) {
  if (p.off == 0) return p;
  TextRun& r = p.leaf->run[p.idx];
  TextRun tail;
  tail.replica = r.replica;
  tail.counter = r.counter + p.off;
  tail.len = r.len - p.off;
  tail.left = CharId{r.replica, r.counter + p.off - 1};
  tail.right = r.right;
  if (r.deleted()) {
    tail.del_replica = r.del_replica;
    tail.del_counter = r.DelAt(p.off);
    tail.del_dir = r.del_dir;
  } else {
    const size_t cut = RunOffset(r, p.off);
    tail.text = r.text.substr(cut);
    r.text.resize(cut);
  }
  const uint32_t tail_vis = tail.visible();
  r.len = p.off;
  Leaf* l = p.leaf;
  if (l->n < kLeafRuns) {
    // Room in the leaf: the counts and the index stay as they are.
    for (int i = l->n; i > p.idx + 1; --i) l->run[i] = std::move(l->run[i - 1]);
    l->run[p.idx + 1] = std::move(tail);
    l->n++;
    ++runs_;
    return Pos{l, p.idx + 1, 0};
  }
  // Take the tail's characters off the leaf, then insert them back as a run.
  AdjustUp(p.leaf, -static_cast<int64_t>(tail_vis), -static_cast<int64_t>(tail.len));
  return Insert(Pos{p.leaf, p.idx + 1, 0}, std::move(tail), /*ids_in_leaf=*/true);
}

RunTree::Pos RunTree::Insert(Pos p, TextRun run, bool ids_in_leaf) {
  Leaf* l = p.leaf;
  int idx = p.idx;
  if (l->n == kLeafRuns) {
    Leaf* fresh = SplitLeaf(l);
    if (idx > l->n) {
      idx -= l->n;
      l = fresh;
      ids_in_leaf = false;
    }
  }
  for (int i = l->n; i > idx; --i) l->run[i] = std::move(l->run[i - 1]);
  const int64_t vis = run.visible();
  const int64_t all = run.len;
  const uint32_t replica = run.replica, lo = run.counter, hi = run.counter + run.len;
  l->run[idx] = std::move(run);
  l->n++;
  ++runs_;
  if (!ids_in_leaf) SetRange(replica, lo, hi, l);
  AdjustUp(l, vis, all);
  return Pos{l, idx, 0};
}

void RunTree::Extend(Pos p, std::string_view text, uint32_t chars) {
  TextRun& r = p.leaf->run[p.idx];
  r.text.append(text.data(), text.size());
  const uint32_t lo = r.counter + r.len;
  r.len += chars;
  // The new counters are this leaf's already when the last key of the
  // index (new counters come last) maps to it.
  auto& m = index_[r.replica];
  if (m.empty() || m.rbegin()->first > lo || m.rbegin()->second != p.leaf) {
    SetRange(r.replica, lo, r.counter + r.len, p.leaf);
  } else {
    index_end_[r.replica] = std::max(index_end_[r.replica], r.counter + r.len);
  }
  AdjustUp(p.leaf, chars, chars);
}

void RunTree::MarkDeleted(Pos p, uint32_t del_replica, uint32_t del_counter, int32_t dir) {
  TextRun& r = p.leaf->run[p.idx];
  const uint32_t was = r.visible();
  r.del_replica = del_replica;
  r.del_counter = del_counter;
  r.del_dir = dir;
  std::string().swap(r.text);
  AdjustUp(p.leaf, -static_cast<int64_t>(was), 0);
}

void RunTree::JoinNext(Pos p) {
  Leaf* l = p.leaf;
  TextRun& a = l->run[p.idx];
  TextRun& b = l->run[p.idx + 1];
  a.len += b.len;
  a.text += b.text;
  for (int i = p.idx + 1; i + 1 < l->n; ++i) l->run[i] = std::move(l->run[i + 1]);
  l->run[l->n - 1] = TextRun();
  l->n--;
  --runs_;
}

void RunTree::Load(std::vector<TextRun> runs) {
  FreeAll();
  Clear();
  if (runs.empty()) return;
  // Leaves three quarters full, so that edits do not split them at once.
  constexpr int kFill = kLeafRuns * 3 / 4;
  std::vector<Node*> level;
  Leaf* leaf = first_;
  // The index, built at the end from the runs' ranges in id order.
  struct Entry {
    uint64_t key;  // replica << 32 | lo
    uint32_t end;  // hi
    Leaf* leaf;
    bool operator<(const Entry& o) const { return key < o.key; }
  };
  std::vector<Entry> entries;
  entries.reserve(runs.size());
  for (TextRun& r : runs) {
    if (leaf->n == kFill) {
      auto* fresh = new Leaf();
      ++leaves_;
      fresh->prev = leaf;
      leaf->next = fresh;
      level.push_back(leaf);
      leaf = fresh;
    }
    leaf->vis += r.visible();
    leaf->all += r.len;
    entries.push_back(Entry{uint64_t{r.replica} << 32 | r.counter, r.counter + r.len, leaf});
    leaf->run[leaf->n++] = std::move(r);
  }
  std::sort(entries.begin(), entries.end());
  for (const Entry& e : entries) {
    const uint32_t replica = static_cast<uint32_t>(e.key >> 32);
    if (replica >= index_.size()) {
      index_.resize(replica + 1);
      index_end_.resize(replica + 1, 0);
    }
    index_end_[replica] = std::max(index_end_[replica], e.end);
    auto& m = index_[replica];
    // Counters between runs are no run's: the previous leaf may keep them.
    if (m.empty() || m.rbegin()->second != e.leaf) {
      m.emplace_hint(m.end(), static_cast<uint32_t>(e.key), e.leaf);
    }
  }
  level.push_back(leaf);
  last_ = leaf;
  runs_ = runs.size();
  while (level.size() > 1) {
    std::vector<Node*> up;
    constexpr int kInnerFill = kInnerChildren * 3 / 4;
    for (size_t i = 0; i < level.size(); i += kInnerFill) {
      auto* in = new Inner();
      ++inners_;
      in->is_leaf = false;
      for (size_t j = i; j < level.size() && j < i + kInnerFill; ++j) {
        Node* c = level[j];
        in->child[in->n] = c;
        in->cvis[in->n] = c->vis;
        in->call[in->n] = c->all;
        in->vis += c->vis;
        in->all += c->all;
        c->parent = in;
        c->slot = in->n;
        in->n++;
      }
      up.push_back(in);
    }
    level.swap(up);
  }
  root_ = level[0];
}

size_t RunTree::MemoryBytes() const {
  size_t bytes = leaves_ * sizeof(Leaf) + inners_ * sizeof(Inner);
  for (const Leaf* l = first_; l != nullptr; l = l->next) {
    for (int i = 0; i < l->n; ++i) {
      const std::string& t = l->run[i].text;
      // Heap storage beyond the small-string buffer.
      if (t.capacity() > sizeof(std::string) - 1) bytes += t.capacity() + 1;
    }
  }
  for (const auto& m : index_) {
    // A red-black tree node: three pointers, a colour, key and value.
    bytes += m.size() * (4 * sizeof(void*) + sizeof(uint32_t) + sizeof(void*));
  }
  return bytes;
}

}  // namespace meridian::crdt::text_internal
