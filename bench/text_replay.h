// Replaying an editing trace (bench/text_trace_io.h) through crdt::Text, for
// the text_trace tool and the tests.
//
// Sequential: one replica applies every patch as Delete then Insert.
// Concurrent: one replica per agent. Before a txn of agent a, replica a
// merges the delta of every txn in the causal closure of the txn's parents
// that it does not hold yet, then applies the txn's patches in one
// Text::Apply at the version of that closure (a replica may hold more than
// the closure; positions refer to the closure). At the end every replica
// merges every txn's delta, each in its own shuffled order, and all must
// show endContent and encode to the same bytes.
#ifndef MERIDIAN_BENCH_TEXT_REPLAY_H_
#define MERIDIAN_BENCH_TEXT_REPLAY_H_

#include <cstdint>
#include <string>

#include "bench/text_trace_io.h"
#include "crdt/text.h"

namespace meridian::bench {

struct ReplayOptions {
  // load_ms and load_verified_ms are the median of this many
  // DecodeTrusted (or Decode) + Content() runs.
  int load_runs = 5;
  // Sequential: apply_ms is the median of this many replays, each into a
  // fresh document (the first run also pays for warming the allocator).
  int apply_runs = 1;
  // Concurrent: seeds the order of the final merges.
  uint64_t seed = 1;
  // Concurrent: before each txn, the chance that its replica first merges
  // the closure of some other txn already applied (a replica ahead of the
  // txn's parents, as after gossip). 0 in the tool; tests raise it so that
  // Apply's `at` differs from the replica's version.
  double gossip_ahead = 0;
};

struct ReplayStats {
  bool concurrent = false;
  uint64_t txns = 0;
  uint64_t ops = 0;  // patches applied
  uint32_t agents = 1;
  double apply_ms = 0;        // the apply loop (concurrent: Apply and merges of closures)
  double final_merge_ms = 0;  // concurrent: every delta into every replica
  // Concurrent: txns applied at a version older than their replica's (it
  // held more than the txn's parents).
  uint64_t txns_at_older_version = 0;
  int apply_runs = 1;          // replays apply_ms is the median of
  // Decode and read: the median DecodeTrusted + Content() of the encoding
  // (how a node reads a document it stored), and the same with Decode (how
  // it takes bytes from elsewhere: the order re-derived and checked).
  double load_ms = 0;
  double load_verified_ms = 0;
  int load_runs = 0;
  uint64_t encoded_bytes = 0;
  uint64_t doc_bytes_in_memory = 0;
  uint64_t runs = 0;   // Text::RunCount()
  uint64_t chars = 0;  // code points of the final text
  bool ok = false;
  // Why not ok: the first edit refused or the first mismatch.
  std::string error;
};

// The Text (replica 0 for a concurrent trace) is left in *final when not
// null, also on failure.
ReplayStats ReplaySequential(const Trace& trace, const ReplayOptions& options,
                             crdt::Text* final = nullptr);
ReplayStats ReplayConcurrent(const Trace& trace, const ReplayOptions& options,
                             crdt::Text* final = nullptr);

// One JSON object: mode, txns, ops, agents, apply_ms, final_merge_ms and
// txns_at_older_version (concurrent), load_ms, load_verified_ms, load_runs,
// encoded_bytes, doc_bytes_in_memory, runs, chars, ok, and error when not
// ok.
std::string StatsToJson(const ReplayStats& stats);
// The same, one "name: value" line each.
std::string StatsToText(const ReplayStats& stats);

}  // namespace meridian::bench

#endif  // MERIDIAN_BENCH_TEXT_REPLAY_H_
