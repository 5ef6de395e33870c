// Traces for the text_trace tests: the automerge-paper trace from
// tests/data/traces (MERIDIAN_TRACES_DIR overrides the directory the build
// names), loaded once per test binary, and seeded synthetic typing sessions
// that need no file at all.
#ifndef MERIDIAN_TESTS_BENCH_TRACE_FIXTURES_H_
#define MERIDIAN_TESTS_BENCH_TRACE_FIXTURES_H_

#include <sys/stat.h>

#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <random>
#include <string>

#include "bench/text_trace_io.h"

namespace meridian::bench::testing {

inline std::string TracesDir() {
  if (const char* d = std::getenv("MERIDIAN_TRACES_DIR")) return d;
#ifdef MERIDIAN_TRACES_DIR
  return MERIDIAN_TRACES_DIR;
#else
  return "";
#endif
}

inline std::string AutomergePaperPath() { return TracesDir() + "/automerge-paper.json.gz"; }

// A precondition: tests of the real trace are skipped, with the path
// looked at, when it is not there.
inline boost::test_tools::assertion_result HaveAutomergePaper(boost::unit_test::test_unit_id) {
  struct stat st;
  boost::test_tools::assertion_result r(::stat(AutomergePaperPath().c_str(), &st) == 0);
  r.message() << "no trace at " << AutomergePaperPath()
              << " (set MERIDIAN_TRACES_DIR to the directory holding automerge-paper.json.gz)";
  return r;
}

inline const Trace& AutomergePaper() {
  static const Trace trace = [] {
    Trace t;
    Status s = LoadTrace(AutomergePaperPath(), &t);
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
    return t;
  }();
  return trace;
}

// A sequential typing session of `txns` txns: runs of typing and
// backspacing at a cursor that now and then jumps, a little non-ASCII text,
// sometimes a selection replaced; endContent by plain replay.
inline Trace TypingTrace(uint64_t seed, size_t txns) {
  std::mt19937_64 rng(seed);
  static const char32_t kAlphabet[] = U"abcdefghij klmnop\né€😀";
  const size_t alphabet = sizeof kAlphabet / sizeof kAlphabet[0] - 1;
  Trace t;
  t.start_content = "start: ";
  PlainText doc(U"start: ");
  uint64_t cursor = doc.size();
  for (size_t i = 0; i < txns; ++i) {
    if (rng() % 20 == 0) cursor = doc.size() == 0 ? 0 : rng() % (doc.size() + 1);
    cursor = std::min<uint64_t>(cursor, doc.size());
    TracePatch p;
    const unsigned r = rng() % 10;
    if (r < 2 && cursor > 0) {  // backspace
      p = TracePatch{cursor - 1, 1, ""};
      --cursor;
    } else if (r == 2 && doc.size() - cursor >= 3) {  // replace a selection
      p = TracePatch{cursor, 1 + rng() % 3, "Zz"};
      cursor += 2;
    } else {
      std::u32string s(1, kAlphabet[rng() % alphabet]);
      p = TracePatch{cursor, 0, EncodeUtf8(s)};
      ++cursor;
    }
    BOOST_REQUIRE(doc.ApplyPatch(p));
    TraceTxn txn;
    txn.patches.push_back(std::move(p));
    t.txns.push_back(std::move(txn));
  }
  t.end_content = doc.Utf8();
  return t;
}

}  // namespace meridian::bench::testing

#endif  // MERIDIAN_TESTS_BENCH_TRACE_FIXTURES_H_
