// text_trace: replays editing traces (tests/data/traces/README.md)
// through crdt::Text and prints what it cost.
//
//   text_trace replay [--json] [--runs N] FILE.json.gz
//   text_trace replay-concurrent [--json] [--seed N] FILE.json.gz
//   text_trace make-concurrent [--seed N] [--agents N] [--txns N] IN.json.gz OUT.json.gz
//
// replay: one replica applies every patch (Delete then Insert); apply_ms
// times that loop alone (the median of --runs replays, default 1, each
// into a fresh document). replay-concurrent: one replica per agent, each
// txn applied at its parents' version after merging what its replica lacks
// of their closure (apply_ms), then every delta into every replica in a
// shuffled order (final_merge_ms, --seed). Both check the text against
// endContent, encode the document (replica 0), and time DecodeTrusted +
// Content() of those bytes (load_ms, the median of 5 runs: how a node reads
// a document it stored) and Decode + Content() (load_verified_ms: bytes
// from elsewhere, the order re-derived from the origins and checked). make-concurrent writes a
// concurrent trace of --agents agents (default 3) made from the first
// --txns txns (default all) of a sequential one (bench/text_trace_gen.h).
//
// Output: one "name: value" line per figure, or one JSON object (--json).
// Exit status: 0 when the replay reproduced endContent and every check
// passed, 1 when it did not (the reason on stderr and in "error"), 2 for
// bad usage or a trace that cannot be read (missing file, not gzip, not
// JSON, wrong shape).
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "bench/text_replay.h"
#include "bench/text_trace_gen.h"
#include "bench/text_trace_io.h"

namespace {

using namespace meridian::bench;

int Usage() {
  std::fprintf(stderr,
               "usage: text_trace replay [--json] [--runs N] FILE.json.gz\n"
               "       text_trace replay-concurrent [--json] [--seed N] FILE.json.gz\n"
               "       text_trace make-concurrent [--seed N] [--agents N] [--txns N] "
               "IN.json.gz OUT.json.gz\n");
  return 2;
}

bool ParseCount(const char* s, uint64_t* out) {
  if (s == nullptr || *s == '\0') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || s[0] == '-') return false;
  *out = v;
  return true;
}

int Fail(const std::string& msg, int code) {
  std::fprintf(stderr, "text_trace: %s\n", msg.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage();
  const std::string cmd = argv[1];
  bool as_json = false;
  uint64_t seed = 1, agents = 3, txns = 0, runs = 1;
  std::vector<std::string> files;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    uint64_t* value = nullptr;
    if (a == "--json") {
      as_json = true;
    } else if (a == "--seed") {
      value = &seed;
    } else if (a == "--runs" && cmd == "replay") {
      value = &runs;
    } else if (a == "--agents" && cmd == "make-concurrent") {
      value = &agents;
    } else if (a == "--txns" && cmd == "make-concurrent") {
      value = &txns;
    } else if (a.size() > 1 && a[0] == '-') {
      return Fail("unknown option " + a, Usage());
    } else {
      files.push_back(a);
    }
    if (value != nullptr && (++i >= argc || !ParseCount(argv[i], value))) {
      return Fail(a + " needs a non-negative integer", Usage());
    }
  }

  if (cmd == "make-concurrent") {
    if (files.size() != 2 || as_json) return Usage();
    Trace source, out;
    meridian::Status s = LoadTrace(files[0], &source);
    if (!s.ok()) return Fail(s.message(), 2);
    ConcurrentTraceOptions opt;
    opt.seed = seed;
    opt.agents = static_cast<uint32_t>(std::min<uint64_t>(agents, 1000));
    opt.max_source_txns = static_cast<size_t>(txns);
    s = MakeConcurrentTrace(source, opt, &out);
    if (!s.ok()) return Fail(files[0] + ": " + s.message(), 2);
    s = WriteTrace(files[1], out);
    if (!s.ok()) return Fail(s.message(), 2);
    std::printf("txns: %zu\nagents: %u\nchars: %llu\n", out.txns.size(), out.num_agents,
                static_cast<unsigned long long>(CodePointCount(out.end_content)));
    return 0;
  }

  const bool concurrent = cmd == "replay-concurrent";
  if ((cmd != "replay" && !concurrent) || files.size() != 1) return Usage();
  Trace trace;
  meridian::Status s = LoadTrace(files[0], &trace);
  if (!s.ok()) return Fail(s.message(), 2);
  if (trace.concurrent != concurrent) {
    return Fail(files[0] + ": a " + (trace.concurrent ? "concurrent" : "sequential") +
                    " trace; replay it with " +
                    (trace.concurrent ? "replay-concurrent" : "replay"),
                2);
  }
  ReplayOptions options;
  options.seed = seed;
  options.apply_runs = static_cast<int>(std::min<uint64_t>(std::max<uint64_t>(runs, 1), 100));
  ReplayStats stats =
      concurrent ? ReplayConcurrent(trace, options) : ReplaySequential(trace, options);
  if (as_json) {
    std::cout << StatsToJson(stats) << std::endl;
  } else {
    std::cout << StatsToText(stats) << std::flush;
  }
  if (!stats.ok) return Fail(files[0] + ": " + stats.error, 1);
  return 0;
}
