#include "bench/text_trace_gen.h"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace meridian::bench {

namespace {

struct AgentState {
  size_t next = 0;  // next patch of its slice
  size_t end = 0;   // one past its slice's last patch
  bool started = false;
  size_t last = 0;  // its latest txn (txn 0 before it has one)
  // lens[i]: its section's length after its first i txns.
  std::vector<uint64_t> lens{0};
  PlainText section;  // the plain replay of its own edits

  bool HasWork(const std::u32string& initial) const {
    return next < end || (!started && !initial.empty());
  }
};

}  // namespace

Status MakeConcurrentTrace(const Trace& source, const ConcurrentTraceOptions& opt, Trace* out) {
  if (source.concurrent) return Status::InvalidArgument("the source must be a sequential trace");
  if (opt.agents < 2 || opt.agents > 64) return Status::InvalidArgument("agents must be 2..64");
  if (opt.max_patches_per_txn < 1) {
    return Status::InvalidArgument("max_patches_per_txn must be at least 1");
  }
  const uint32_t agents = opt.agents;

  // The source's patches, cut into one contiguous slice per agent.
  const size_t source_txns = opt.max_source_txns == 0
                                 ? source.txns.size()
                                 : std::min(opt.max_source_txns, source.txns.size());
  std::vector<const TracePatch*> patches;
  for (size_t i = 0; i < source_txns; ++i) {
    for (const TracePatch& p : source.txns[i].patches) patches.push_back(&p);
  }
  std::vector<size_t> bound(agents + 1);
  for (uint32_t k = 0; k <= agents; ++k) bound[k] = patches.size() * k / agents;

  // The source's text where each slice starts (snap[k]) and at the end
  // (snap[agents]), by a plain replay.
  std::u32string start;
  if (!DecodeUtf8(source.start_content, &start)) {
    return Status::InvalidArgument("startContent is not UTF-8");
  }
  std::vector<std::u32string> snap(agents + 1);
  {
    PlainText doc(start);
    uint32_t k = 0;
    for (size_t i = 0; i <= patches.size(); ++i) {
      while (k <= agents && bound[k] == i) snap[k++] = doc.CodePoints();
      if (i == patches.size()) break;
      if (!doc.ApplyPatch(*patches[i])) {
        return Status::InvalidArgument("source patch " + std::to_string(i) +
                                       " is out of range or not UTF-8");
      }
    }
  }

  std::mt19937_64 rng(opt.seed);
  std::uniform_real_distribution<double> coin(0, 1);
  Trace& tr = *out;
  tr = Trace();
  tr.concurrent = true;
  tr.num_agents = agents;
  {
    TraceTxn seed;
    seed.agent = 0;
    seed.patches.push_back(TracePatch{0, 0, std::string(agents - 1, '\n')});
    tr.txns.push_back(std::move(seed));
  }
  // seen[t][j]: how many of agent j's txns the closure of txn t holds (a
  // prefix of them: every txn names its agent's previous one).
  std::vector<std::vector<uint32_t>> seen{std::vector<uint32_t>(agents, 0)};
  std::vector<AgentState> st(agents);
  for (uint32_t k = 0; k < agents; ++k) {
    st[k].next = bound[k];
    st[k].end = bound[k + 1];
  }

  std::vector<uint32_t> candidates;
  for (;;) {
    candidates.clear();
    for (uint32_t k = 0; k < agents; ++k) {
      if (st[k].HasWork(snap[k])) candidates.push_back(k);
    }
    if (candidates.empty()) break;
    const uint32_t k = candidates[rng() % candidates.size()];
    AgentState& me = st[k];

    TraceTxn txn;
    txn.agent = k;
    txn.parents.push_back(me.last);
    for (uint32_t j = 0; j < agents; ++j) {
      if (j != k && coin(rng) < opt.merge_probability) txn.parents.push_back(st[j].last);
    }
    std::sort(txn.parents.begin(), txn.parents.end());
    txn.parents.erase(std::unique(txn.parents.begin(), txn.parents.end()), txn.parents.end());

    std::vector<uint32_t> view(agents, 0);
    for (size_t p : txn.parents) {
      for (uint32_t j = 0; j < agents; ++j) view[j] = std::max(view[j], seen[p][j]);
    }
    uint64_t offset = k;  // the separators before section k
    for (uint32_t j = 0; j < k; ++j) offset += st[j].lens[view[j]];

    if (!me.started) {
      me.started = true;
      if (!snap[k].empty()) {
        txn.patches.push_back(TracePatch{offset, 0, EncodeUtf8(snap[k])});
        me.section.Insert(0, snap[k]);
      }
    }
    const size_t take =
        std::min<size_t>(1 + rng() % opt.max_patches_per_txn, me.end - me.next);
    for (size_t i = 0; i < take; ++i) {
      TracePatch p = *patches[me.next++];
      if (!me.section.ApplyPatch(p)) {
        return Status::InvalidArgument("source patch out of range in agent " +
                                       std::to_string(k) + "'s section");
      }
      p.pos += offset;
      txn.patches.push_back(std::move(p));
    }
    me.lens.push_back(me.section.size());
    view[k] = static_cast<uint32_t>(me.lens.size() - 1);
    me.last = tr.txns.size();
    tr.txns.push_back(std::move(txn));
    seen.push_back(std::move(view));
  }

  for (uint32_t k = 0; k < agents; ++k) {
    if (k > 0) tr.end_content += '\n';
    std::u32string section = st[k].section.CodePoints();
    if (section != snap[k + 1]) {
      return Status::InvalidArgument("agent " + std::to_string(k) +
                                     "'s section differs from the source replay (a generator bug)");
    }
    tr.end_content += EncodeUtf8(section);
  }
  return Status::OK();
}

}  // namespace meridian::bench
