// Editing traces (the josephg/editing-traces format, see
// tests/data/traces/README.md): loading a .json.gz into a Trace,
// writing one back, and a plain-string replay that says what a trace's
// text must be without any CRDT.
//
// A sequential trace is {startContent, endContent, txns: [{time, patches}]};
// a concurrent one has "kind": "concurrent", numAgents, and txns with
// `parents` (indexes of earlier txns; empty: the empty start document) and
// an `agent`. A patch [pos, numDeleted, insertedText] deletes numDeleted
// code points at pos and then inserts insertedText there; the patches of a
// txn apply in order, each seeing the ones before it. In a concurrent
// trace, positions refer to the document as merged from the txn's parents.
#ifndef MERIDIAN_BENCH_TEXT_TRACE_IO_H_
#define MERIDIAN_BENCH_TEXT_TRACE_IO_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/status.h"

namespace meridian::bench {

struct TracePatch {
  uint64_t pos = 0;
  uint64_t del = 0;     // code points deleted at pos
  std::string insert;   // UTF-8, inserted at pos after the delete
};

struct TraceTxn {
  std::vector<TracePatch> patches;
  // Concurrent traces only: indexes of earlier txns, and who typed it.
  std::vector<size_t> parents;
  uint32_t agent = 0;
};

struct Trace {
  bool concurrent = false;
  uint32_t num_agents = 1;  // concurrent traces: agents are 0..num_agents-1
  std::string start_content;
  std::string end_content;
  std::vector<TraceTxn> txns;

  // Patches over all txns.
  uint64_t PatchCount() const;
};

// Reads a gzipped JSON trace. Errors name the file and say what is wrong:
// IOError (missing or unreadable file), Corruption (not gzip, or damaged
// or truncated gzip data), InvalidArgument (not JSON, or JSON of the wrong
// shape: the message gives the txn and patch).
Status LoadTrace(const std::string& path, Trace* out);
// The same from JSON text already in memory.
Status ParseTrace(std::string_view json, Trace* out);

// The trace as JSON text in the format above (concurrent traces get
// "kind", "numAgents", "parents", "numChildren" and "agent").
std::string TraceToJson(const Trace& trace);
// TraceToJson, gzipped, to `path` (replaced).
Status WriteTrace(const std::string& path, const Trace& trace);

// Gzip (de)compression of whole buffers, for the above and for tests that
// build damaged files.
Status Gunzip(std::string_view gz, std::string* out);
Status Gzip(std::string_view data, std::string* out);

// ---- UTF-8 ------------------------------------------------------------

// Code points of valid UTF-8; false on anything else (overlong forms,
// surrogates, values past U+10FFFF, truncated sequences).
bool DecodeUtf8(std::string_view utf8, std::u32string* out);
void AppendUtf8(char32_t cp, std::string* out);
std::string EncodeUtf8(std::u32string_view cps);
// Code points in valid UTF-8 (counts lead bytes).
uint64_t CodePointCount(std::string_view utf8);

// ---- Plain replay -------------------------------------------------------

// A text of code points in a gap buffer: edits near the previous one (as
// typing is) cost little, so a 260k-keystroke trace replays in milliseconds.
class PlainText {
 public:
  PlainText() = default;
  explicit PlainText(std::u32string_view initial);

  uint64_t size() const { return buf_.size() - (gap_end_ - gap_begin_); }
  // False (and nothing changes) when the range is not inside the text.
  bool Erase(uint64_t pos, uint64_t n);
  bool Insert(uint64_t pos, std::u32string_view cps);
  // Delete then insert, as a trace patch does; false when out of range or
  // the text is not UTF-8.
  bool ApplyPatch(const TracePatch& p);
  std::u32string CodePoints() const;
  std::string Utf8() const;

 private:
  void MoveGap(uint64_t pos);
  void Reserve(uint64_t n);

  std::u32string buf_;
  uint64_t gap_begin_ = 0;
  uint64_t gap_end_ = 0;
};

// Applies every patch of a sequential trace to its startContent. On a
// patch out of range, InvalidArgument naming the txn and patch.
Status PlainReplay(const Trace& sequential, std::string* out);

// "" when equal; otherwise where the two texts first differ, in code
// points, with a little of each around it.
std::string DescribeTextMismatch(std::string_view got, std::string_view want);

}  // namespace meridian::bench

#endif  // MERIDIAN_BENCH_TEXT_TRACE_IO_H_
