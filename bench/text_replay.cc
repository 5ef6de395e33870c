#include "bench/text_replay.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <sstream>

namespace meridian::bench {

using crdt::ReplicaId;
using crdt::Text;
using crdt::TextEdit;
using crdt::TextVersion;
using Clock = std::chrono::steady_clock;

namespace {

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

std::string PatchName(size_t txn, size_t patch) {
  return "txns[" + std::to_string(txn) + "].patches[" + std::to_string(patch) + "]";
}

void Fail(ReplayStats* st, const std::string& why) {
  st->ok = false;
  if (st->error.empty()) st->error = why;
}

// The figures of the final document, and the checks every replay ends
// with: its text is `want` (also after an encode and a decode, trusted or
// not), Length() agrees with Content(), and the decoded state re-encodes
// to the same bytes.
void Finish(const Text& doc, const std::string& want, int load_runs, ReplayStats* st) {
  const std::string content = doc.Content();
  std::string diff = DescribeTextMismatch(content, want);
  if (!diff.empty()) Fail(st, "content after replay: " + diff);
  st->chars = CodePointCount(content);
  if (doc.Length() != st->chars) {
    Fail(st, "Length() is " + std::to_string(doc.Length()) + " but Content() has " +
                 std::to_string(st->chars) + " characters");
  }
  st->runs = doc.RunCount();
  st->doc_bytes_in_memory = doc.MemoryBytes();
  const std::string bytes = doc.Encode();
  st->encoded_bytes = bytes.size();
  st->load_runs = std::max(1, load_runs);
  std::vector<double> times;
  for (int r = 0; r < st->load_runs; ++r) {
    const auto t0 = Clock::now();
    Text decoded;
    Status s = Text::Decode(bytes, &decoded);
    std::string text = s.ok() ? decoded.Content() : std::string();
    times.push_back(MsSince(t0));  // load_verified_ms
    if (!s.ok()) {
      Fail(st, "the encoding does not decode: " + s.ToString());
      break;
    }
    if (r == 0) {
      diff = DescribeTextMismatch(text, want);
      if (!diff.empty()) Fail(st, "content after encode and decode: " + diff);
      if (decoded.Encode() != bytes) Fail(st, "the decoded state re-encodes to other bytes");
    }
  }
  st->load_verified_ms = Median(times);
  // The same with DecodeTrusted, as a node reads its own store: load_ms.
  times.clear();
  for (int r = 0; r < st->load_runs; ++r) {
    const auto t0 = Clock::now();
    Text decoded;
    Status s = Text::DecodeTrusted(bytes, &decoded);
    std::string text = s.ok() ? decoded.Content() : std::string();
    times.push_back(MsSince(t0));
    if (!s.ok()) {
      Fail(st, "the encoding does not decode (trusted): " + s.ToString());
      break;
    }
    if (r == 0) {
      diff = DescribeTextMismatch(text, want);
      if (!diff.empty()) Fail(st, "content after encode and trusted decode: " + diff);
    }
  }
  st->load_ms = Median(times);
}

}  // namespace

ReplayStats ReplaySequential(const Trace& trace, const ReplayOptions& options, Text* final) {
  ReplayStats st;
  st.txns = trace.txns.size();
  if (trace.concurrent) {
    Fail(&st, "a concurrent trace (replay it as one)");
    return st;
  }
  const ReplicaId me{"trace", 1};
  Text doc;
  std::vector<double> apply_times;
  for (int run = 0; run < std::max(1, options.apply_runs) && st.error.empty(); ++run) {
  doc = Text();
  st.ops = 0;
  if (!trace.start_content.empty()) {
    Status s = doc.Insert(me, 0, trace.start_content, nullptr);
    if (!s.ok()) Fail(&st, "startContent refused: " + s.ToString());
  }
  const auto t0 = Clock::now();
  for (size_t i = 0; i < trace.txns.size() && st.error.empty(); ++i) {
    const auto& patches = trace.txns[i].patches;
    for (size_t j = 0; j < patches.size(); ++j) {
      const TracePatch& p = patches[j];
      Status s;
      if (p.del > 0) s = doc.Delete(me, p.pos, p.del, nullptr);
      if (s.ok() && !p.insert.empty()) s = doc.Insert(me, p.pos, p.insert, nullptr);
      if (!s.ok()) {
        Fail(&st, PatchName(i, j) + " [" + std::to_string(p.pos) + ", " + std::to_string(p.del) +
                      ", ...] on a document of " + std::to_string(doc.Length()) +
                      " characters is refused: " + s.ToString());
        break;
      }
      ++st.ops;
    }
  }
  apply_times.push_back(MsSince(t0));
  }
  st.apply_runs = static_cast<int>(apply_times.size());
  st.apply_ms = Median(apply_times);
  if (st.error.empty()) {
    st.ok = true;
    Finish(doc, trace.end_content, options.load_runs, &st);
  }
  if (final != nullptr) *final = std::move(doc);
  return st;
}

ReplayStats ReplayConcurrent(const Trace& trace, const ReplayOptions& options, Text* final) {
  ReplayStats st;
  st.concurrent = true;
  st.txns = trace.txns.size();
  st.agents = trace.num_agents;
  if (!trace.concurrent) {
    Fail(&st, "a sequential trace (replay it as one)");
    return st;
  }
  const size_t n = trace.txns.size();
  const uint32_t agents = trace.num_agents;
  std::vector<ReplicaId> ids;
  for (uint32_t a = 0; a < agents; ++a) ids.push_back(ReplicaId{"agent-" + std::to_string(a), 1});
  std::vector<Text> replicas(agents);

  // A startContent (concurrent traces normally have none) is typed by a
  // replica of its own before everything; every replica starts from it.
  Text start;
  if (!trace.start_content.empty()) {
    Status s = start.Insert(ReplicaId{"start", 1}, 0, trace.start_content, nullptr);
    if (!s.ok()) Fail(&st, "startContent refused: " + s.ToString());
    for (Text& r : replicas) r.Merge(start);
  }
  const TextVersion base = start.version();

  // deltas[t]: txn t's delta, appended as txns are applied (an empty Text
  // is not free: no slots are made ahead).
  std::vector<Text> deltas;
  deltas.reserve(n);
  // closure[t]: the version of t's causal closure (t included).
  std::vector<TextVersion> closure(n);
  // held[a][t]: replica a holds txn t; always closed under parents.
  std::vector<std::vector<char>> held(agents, std::vector<char>(n, 0));
  std::mt19937_64 rng(options.seed);
  std::vector<size_t> stack, missing;
  // Merges into replica a every txn of the closure of `roots` it lacks, in
  // trace order (parents before children).
  auto merge_closure = [&](uint32_t a, const std::vector<size_t>& roots) {
    stack.clear();
    missing.clear();
    std::vector<char>& h = held[a];
    for (size_t r : roots) {
      if (!h[r]) {
        h[r] = 1;
        stack.push_back(r);
      }
    }
    while (!stack.empty()) {
      size_t x = stack.back();
      stack.pop_back();
      missing.push_back(x);
      for (size_t p : trace.txns[x].parents) {
        if (!h[p]) {
          h[p] = 1;
          stack.push_back(p);
        }
      }
    }
    std::sort(missing.begin(), missing.end());
    for (size_t x : missing) replicas[a].Merge(deltas[x]);
  };

  std::uniform_real_distribution<double> coin(0, 1);
  std::vector<TextEdit> edits;
  const auto t0 = Clock::now();
  for (size_t t = 0; t < n && st.error.empty(); ++t) {
    const TraceTxn& txn = trace.txns[t];
    const uint32_t a = txn.agent;
    if (options.gossip_ahead > 0 && t > 0 && coin(rng) < options.gossip_ahead) {
      merge_closure(a, {static_cast<size_t>(rng() % t)});
    }
    merge_closure(a, txn.parents);
    TextVersion at = base;
    for (size_t p : txn.parents) at.Merge(closure[p]);
    edits.clear();
    for (const TracePatch& p : txn.patches) {
      if (p.del > 0) edits.push_back(TextEdit{false, p.pos, std::string(), p.del});
      if (!p.insert.empty()) edits.push_back(TextEdit{true, p.pos, p.insert, 0});
    }
    Text& r = replicas[a];
    if (r.version() != at) ++st.txns_at_older_version;
    const uint64_t before = r.version().Next(ids[a]);
    Text delta;
    Status s = r.Apply(ids[a], &at, edits, &delta);
    if (!s.ok()) {
      Fail(&st, "txns[" + std::to_string(t) + "] (agent " + std::to_string(a) + ", " +
                    std::to_string(txn.patches.size()) + " patches) is refused: " + s.ToString());
      break;
    }
    const uint64_t after = r.version().Next(ids[a]);
    if (after > before) at.Add(ids[a], before, after);
    closure[t] = std::move(at);
    deltas.push_back(std::move(delta));
    held[a][t] = 1;
    st.ops += txn.patches.size();
  }
  st.apply_ms = MsSince(t0);

  if (st.error.empty()) {
    const auto t1 = Clock::now();
    std::vector<size_t> order(n);
    for (Text& r : replicas) {
      std::iota(order.begin(), order.end(), size_t{0});
      std::shuffle(order.begin(), order.end(), rng);
      for (size_t x : order) r.Merge(deltas[x]);
    }
    st.final_merge_ms = MsSince(t1);
    st.ok = true;
    std::string bytes0;
    for (uint32_t a = 0; a < agents; ++a) {
      const std::string who = "replica " + std::to_string(a);
      if (replicas[a].PendingCount() != 0) {
        Fail(&st, who + " still has " + std::to_string(replicas[a].PendingCount()) +
                      " pending after every delta");
      }
      if (a == 0) {
        Finish(replicas[0], trace.end_content, options.load_runs, &st);
        bytes0 = replicas[0].Encode();
        continue;
      }
      std::string diff = DescribeTextMismatch(replicas[a].Content(), trace.end_content);
      if (!diff.empty()) Fail(&st, who + ": " + diff);
      std::string bytes = replicas[a].Encode();
      if (bytes != bytes0) {
        Fail(&st, who + " encodes to other bytes than replica 0 (" + std::to_string(bytes.size()) +
                      " against " + std::to_string(bytes0.size()) + ")");
      }
    }
  }
  if (final != nullptr) *final = std::move(replicas[0]);
  return st;
}

namespace {

double Round3(double ms) { return std::round(ms * 1000) / 1000; }

nlohmann::ordered_json StatsObject(const ReplayStats& st) {
  nlohmann::ordered_json j;
  j["mode"] = st.concurrent ? "concurrent" : "sequential";
  j["txns"] = st.txns;
  j["ops"] = st.ops;
  j["agents"] = st.agents;
  j["apply_ms"] = Round3(st.apply_ms);
  j["apply_runs"] = st.apply_runs;
  if (st.concurrent) {
    j["final_merge_ms"] = Round3(st.final_merge_ms);
    j["txns_at_older_version"] = st.txns_at_older_version;
  }
  j["load_ms"] = Round3(st.load_ms);
  j["load_verified_ms"] = Round3(st.load_verified_ms);
  j["load_runs"] = st.load_runs;
  j["encoded_bytes"] = st.encoded_bytes;
  j["doc_bytes_in_memory"] = st.doc_bytes_in_memory;
  j["runs"] = st.runs;
  j["chars"] = st.chars;
  j["ok"] = st.ok;
  if (!st.ok) j["error"] = st.error;
  return j;
}

}  // namespace

std::string StatsToJson(const ReplayStats& stats) { return StatsObject(stats).dump(); }

std::string StatsToText(const ReplayStats& stats) {
  std::ostringstream out;
  const nlohmann::ordered_json j = StatsObject(stats);
  for (const auto& [key, value] : j.items()) {
    out << key << ": " << (value.is_string() ? value.get<std::string>() : value.dump()) << "\n";
  }
  return out.str();
}

}  // namespace meridian::bench
