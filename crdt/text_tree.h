// The document order of a text (crdt/text.h): runs of characters in a B+
// tree whose inner nodes count, per child, the visible characters and all
// characters (tombstones included) below it. That makes the tree an
// order-statistic tree: finding the run that holds visible character n,
// and the index of a run's character among all characters, both cost
// O(log n). A per-replica interval index maps a character's id to the leaf
// that holds it, so an id is found in O(log n) too.
//
// A run is a stretch of characters of one replica with consecutive
// counters, each (after the first) typed right after the one before it,
// sharing one right origin and one state (live with its UTF-8 text, or
// deleted with consecutive delete counters). Runs split when an edit lands
// inside them; the encoder rejoins what can be joined (text.cc), so the
// in-memory split never shows in the bytes.
//
// Internal to crdt/: only text.cc uses it.
#ifndef MERIDIAN_CRDT_TEXT_TREE_H_
#define MERIDIAN_CRDT_TEXT_TREE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace meridian::crdt::text_internal {

constexpr uint32_t kNone = 0xffffffffu;  // "no replica": no origin, not deleted

struct CharId {
  uint32_t replica = kNone;  // index into the document's replica table
  uint32_t counter = 0;
  bool none() const { return replica == kNone; }
  bool operator==(const CharId& o) const { return replica == o.replica && counter == o.counter; }
  bool operator!=(const CharId& o) const { return !(*this == o); }
};

struct TextRun {
  uint32_t replica = 0;  // ids (replica, counter + i), i < len
  uint32_t counter = 0;
  uint32_t len = 0;      // characters (code points), >= 1
  CharId left;           // left origin of the first character
  CharId right;          // right origin of every character
  uint32_t del_replica = kNone;  // deleted by (del_replica, DelAt(i)), or live
  uint32_t del_counter = 0;
  int32_t del_dir = 1;           // +1 or -1
  std::string text;              // UTF-8 of the characters while live

  bool deleted() const { return del_replica != kNone; }
  uint32_t visible() const { return deleted() ? 0 : len; }
  CharId IdAt(uint32_t off) const { return CharId{replica, counter + off}; }
  uint32_t DelAt(uint32_t off) const {
    return del_dir > 0 ? del_counter + off : del_counter - off;
  }
};

// Byte offset of code point `n` in UTF-8 `s` (s.size() when n is past it).
size_t Utf8Offset(std::string_view s, uint32_t n);
// The same in a live run's text (O(1) when the text is ASCII).
size_t RunOffset(const TextRun& r, uint32_t n);

class RunTree {
 public:
  struct Leaf;
  struct Inner;
  // A character position: run `idx` of `leaf`, character `off` in it.
  // idx == leaf->n (off 0) is the end of that leaf (an insertion point).
  struct Pos {
    Leaf* leaf = nullptr;
    int idx = 0;
    uint32_t off = 0;
  };

  RunTree();
  ~RunTree();
  RunTree(const RunTree&) = delete;
  RunTree& operator=(const RunTree&) = delete;

  uint64_t visible() const;
  uint64_t total() const;
  size_t runs() const { return runs_; }

  // The position of visible character `n`; End() for n == visible().
  // REQUIRES: n <= visible().
  Pos FindVisible(uint64_t n) const;
  Pos Begin() const;
  Pos End() const;
  bool AtEnd(Pos p) const { return p.idx >= RunCount(p.leaf) && p.leaf == last_; }
  // Characters (tombstones included) before p.
  uint64_t IndexOf(Pos p) const;
  // The character with `id`; false when it is not in the tree.
  bool Find(CharId id, Pos* out) const;

  TextRun& RunAt(Pos p) const;
  // The character before p; false at the beginning.
  bool Prev(Pos p, Pos* out) const;
  // The first character of the run after p's run (End() after the last).
  Pos NextRun(Pos p) const;
  // p normalised so that idx < n unless at End() (a leaf end moves to the
  // next leaf's first run).
  Pos Normalize(Pos p) const;

  // Splits p's run so that p starts a run; returns p's new position.
  Pos Split(Pos p);
  // Inserts `run` before position p (p.off == 0); returns where it is.
  // `ids_in_leaf`: the index already maps the run's ids to p.leaf (a
  // split-off tail).
  Pos Insert(Pos p, TextRun run, bool ids_in_leaf = false);
  // Appends `text` (`chars` code points) to the live run at p, whose ids
  // the caller has checked continue.
  void Extend(Pos p, std::string_view text, uint32_t chars);
  // Marks the whole run at p deleted (it must be live).
  void MarkDeleted(Pos p, uint32_t del_replica, uint32_t del_counter, int32_t dir);
  // `dvis` more visible characters in leaf `l` (a run there changed state
  // in place; the caller keeps its runs consistent).
  void AdjustVisible(Leaf* l, int64_t dvis);
  // Joins run p.idx + 1 of p's leaf into run p.idx (the caller checked
  // that they join).
  void JoinNext(Pos p);

  // Replaces the tree by `runs` in document order (decoding).
  void Load(std::vector<TextRun> runs);

  // Calls f(const TextRun&) for every run in document order.
  template <class F>
  void ForEach(F f) const;

  // Bytes held by the tree and its index (for the benchmark).
  size_t MemoryBytes() const;

  struct Node;

 private:
  static int RunCount(const Leaf* l);
  void AdjustUp(Node* n, int64_t dvis, int64_t dall);
  void SetRange(uint32_t replica, uint32_t lo, uint32_t hi, Leaf* leaf);
  void InsertChild(Node* after, Node* fresh);
  Leaf* SplitLeaf(Leaf* l);
  void Clear();
  void FreeAll();

  Node* root_ = nullptr;
  Leaf* first_ = nullptr;
  Leaf* last_ = nullptr;
  size_t runs_ = 0;
  size_t leaves_ = 0;
  size_t inners_ = 0;
  // Per replica: counter -> the leaf holding that counter and those after
  // it up to the next key (interval map).
  std::vector<std::map<uint32_t, Leaf*>> index_;
  // Per replica: one past the highest counter any range of the index has
  // covered.
  std::vector<uint32_t> index_end_;
  // The leaf FindVisible found last and the visible characters before it,
  // so that edits near the last one skip the descent. Reset when counts
  // change outside that leaf.
  mutable Leaf* cache_leaf_ = nullptr;
  mutable uint64_t cache_start_ = 0;
};

constexpr int kLeafRuns = 16;
constexpr int kInnerChildren = 32;

struct RunTree::Node {
  Inner* parent = nullptr;
  int slot = 0;  // index in parent->child
  bool is_leaf = true;
  int n = 0;
  uint64_t vis = 0;  // visible characters below
  uint64_t all = 0;  // all characters below
};

struct RunTree::Leaf : RunTree::Node {
  Leaf* prev = nullptr;
  Leaf* next = nullptr;
  TextRun run[kLeafRuns];
};

struct RunTree::Inner : RunTree::Node {
  Node* child[kInnerChildren] = {};
  uint64_t cvis[kInnerChildren] = {};  // child[i]->vis, kept here for the descent
  uint64_t call[kInnerChildren] = {};  // child[i]->all
};

template <class F>
void RunTree::ForEach(F f) const {
  for (const Leaf* l = first_; l != nullptr; l = l->next) {
    for (int i = 0; i < l->n; ++i) f(l->run[i]);
  }
}

}  // namespace meridian::crdt::text_internal

#endif  // MERIDIAN_CRDT_TEXT_TREE_H_
