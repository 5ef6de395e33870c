// A concurrent trace made from a sequential one, with a text known without
// any CRDT: for tests of the concurrent replay (and `text_trace
// make-concurrent`).
//
// The sequential trace's patches are cut into `agents` contiguous slices;
// agent k replays slice k in a section of its own. Txn 0 (agent 0, no
// parents) types agents-1 newlines, the separators between the sections,
// and every other txn has it in its closure. Agent k's first txn types the
// text the sequential trace had where slice k starts (so its patches are in
// range), at the start of section k; its later txns take the next 1..
// max_patches_per_txn patches of its slice, shifted by the section's offset.
//
// Parents: every txn names its agent's previous txn (txn 0 for the first)
// and, with merge_probability for each other agent, that agent's latest
// txn. A txn's positions refer to the merge of its parents, where section j
// holds agent j's edits up to the last of its txns in that closure: the
// offset of section k is the sum of those section lengths for j < k plus k
// separators. Only agent k ever types inside section k, and the separators
// are there before anyone types, so no two agents insert concurrently at
// one place and the expected text is unambiguous: the sections, each the
// plain replay of its agent's edits, joined by the separators.
#ifndef MERIDIAN_BENCH_TEXT_TRACE_GEN_H_
#define MERIDIAN_BENCH_TEXT_TRACE_GEN_H_

#include <cstdint>

#include "bench/text_trace_io.h"
#include "crdt/status.h"

namespace meridian::bench {

struct ConcurrentTraceOptions {
  uint64_t seed = 1;
  uint32_t agents = 3;  // 2..64
  // Use only the first this many txns of the source (0: all of them).
  size_t max_source_txns = 0;
  uint32_t max_patches_per_txn = 4;  // >= 1
  double merge_probability = 0.1;
};

// Builds the concurrent trace from a sequential `source`; its endContent
// comes from plain string replays of each agent's own edits (and is checked
// against the source's own replay). InvalidArgument on bad options or a
// source whose patches are out of range.
Status MakeConcurrentTrace(const Trace& source, const ConcurrentTraceOptions& options, Trace* out);

}  // namespace meridian::bench

#endif  // MERIDIAN_BENCH_TEXT_TRACE_GEN_H_
