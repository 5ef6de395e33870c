// Concurrent replays of generated traces (bench/text_trace_gen.h): a
// sequential trace cut into three agents' sections with random merge
// points, replayed with one crdt::Text replica per agent; every replica
// must end at the text the plain string replays give, with equal bytes.
// Seeds over synthetic typing sessions and over prefixes of
// automerge-paper, with replicas now and then ahead of a txn's parents;
// then one generated trace written as .json.gz, loaded back, and replayed
// by the library and by the text_trace binary.
//
// MERIDIAN_TRACE_SEEDS=n sets the number of seeds per case (default 6).
#define BOOST_TEST_MODULE text_concurrent
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "bench/text_replay.h"
#include "bench/text_trace_gen.h"
#include "bench/text_trace_io.h"
#include "crdt/text.h"
#include "tests/bench/trace_fixtures.h"
#include "tests/support/child_process.h"
#include "tests/support/temp_dir.h"

using meridian::Status;
using meridian::crdt::Text;
using meridian::testing::TempDir;
using namespace meridian::bench;
using namespace meridian::bench::testing;

namespace {

uint64_t Seeds() {
  if (const char* s = std::getenv("MERIDIAN_TRACE_SEEDS")) return std::max(1, std::atoi(s));
  return 6;
}

// The source's text after its first `txns` txns.
std::string PrefixText(const Trace& source, size_t txns) {
  Trace prefix = source;
  prefix.txns.resize(std::min(txns, prefix.txns.size()));
  std::string text;
  Status s = PlainReplay(prefix, &text);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  return text;
}

// Generates, checks the generated trace's own claims, replays, and checks
// the replay. The expected text is the three sections joined by the two
// separators; the last section ends as the source prefix does.
void CheckGenerated(const Trace& source, const ConcurrentTraceOptions& opt, double ahead) {
  Trace trace;
  Status s = MakeConcurrentTrace(source, opt, &trace);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_REQUIRE(trace.concurrent);
  BOOST_TEST(trace.num_agents == opt.agents);
  const size_t used = opt.max_source_txns == 0 ? source.txns.size() : opt.max_source_txns;
  const std::string last_section = PrefixText(source, used);
  BOOST_TEST(trace.end_content.size() >= last_section.size());
  BOOST_TEST((trace.end_content.compare(trace.end_content.size() - last_section.size(),
                                        std::string::npos, last_section) == 0),
             "the last section is not the source's text");
  size_t merges = 0;
  for (const TraceTxn& t : trace.txns) merges += t.parents.size() > 1;
  BOOST_TEST(merges > 0u, "no txn merges another agent's work");

  ReplayOptions ropt;
  ropt.seed = opt.seed;
  ropt.gossip_ahead = ahead;
  ropt.load_runs = 1;
  Text doc;
  ReplayStats st = ReplayConcurrent(trace, ropt, &doc);
  BOOST_TEST(st.ok, "seed " << opt.seed << ", " << opt.max_source_txns << " source txns, ahead "
                            << ahead << ": " << st.error);
  BOOST_TEST(st.ops == trace.PatchCount());
  if (ahead > 0) BOOST_TEST(st.txns_at_older_version > 0u);
  BOOST_TEST(doc.Content() == trace.end_content);
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

}  // namespace

BOOST_AUTO_TEST_CASE(generated_traces_from_typing_sessions_converge) {
  for (uint64_t seed = 1; seed <= Seeds(); ++seed) {
    const Trace source = TypingTrace(seed, 6000);
    ConcurrentTraceOptions opt;
    opt.seed = seed;
    opt.merge_probability = 0.05 * static_cast<double>(seed % 4 + 1);
    CheckGenerated(source, opt, seed % 2 == 0 ? 0.2 : 0.0);
  }
}

BOOST_AUTO_TEST_CASE(generated_traces_from_automerge_paper_converge,
                     *boost::unit_test::precondition(HaveAutomergePaper)) {
  const Trace& source = AutomergePaper();
  for (uint64_t seed = 1; seed <= Seeds(); ++seed) {
    ConcurrentTraceOptions opt;
    opt.seed = seed;
    opt.max_source_txns = 8000 + 4000 * static_cast<size_t>(seed);
    opt.max_patches_per_txn = static_cast<uint32_t>(1 + seed % 8);
    CheckGenerated(source, opt, seed % 2 == 0 ? 0.1 : 0.0);
  }
}

BOOST_AUTO_TEST_CASE(a_generated_trace_replays_from_its_file_and_in_text_trace) {
  TempDir dir;
  const Trace source = TypingTrace(42, 9000);
  ConcurrentTraceOptions opt;
  opt.seed = 42;
  Trace trace;
  BOOST_REQUIRE(MakeConcurrentTrace(source, opt, &trace).ok());
  const std::string path = dir.sub("concurrent.json.gz");
  BOOST_REQUIRE(WriteTrace(path, trace).ok());
  Trace loaded;
  Status s = LoadTrace(path, &loaded);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(TraceToJson(loaded) == TraceToJson(trace));
  ReplayStats st = ReplayConcurrent(loaded, ReplayOptions());
  BOOST_TEST(st.ok, st.error);

  std::vector<std::string> argv{MERIDIAN_TEXT_TRACE, "replay-concurrent", "--json", path};
  meridian::testing::ChildOptions copt;
  copt.stdout_path = dir.sub("out");
  copt.stderr_path = dir.sub("err");
  copt.stdin_null = true;
  std::string why;
  pid_t pid = meridian::testing::SpawnChild(argv, copt, &why);
  BOOST_REQUIRE_MESSAGE(pid > 0, why);
  int status = 0;
  if (meridian::testing::WaitChild(pid, std::chrono::seconds(120), &status) !=
      meridian::testing::WaitResult::kReaped) {
    meridian::testing::KillChild(pid);
    BOOST_FAIL("text_trace did not finish in 120 s");
  }
  BOOST_TEST(meridian::testing::DescribeWaitStatus(status) == "exit status 0",
             ReadFile(copt.stderr_path));
  nlohmann::json j = nlohmann::json::parse(ReadFile(copt.stdout_path), nullptr, false);
  BOOST_REQUIRE_MESSAGE(j.is_object(), "not one JSON object: " << ReadFile(copt.stdout_path));
  BOOST_TEST(j.value("mode", "") == "concurrent");
  BOOST_TEST(j.value("ok", false) == true);
  BOOST_TEST(j.value("agents", 0) == 3);
  BOOST_TEST(j.value("ops", uint64_t{0}) == trace.PatchCount());
  std::cout << "text_trace replay-concurrent: " << j.dump() << "\n";
}
