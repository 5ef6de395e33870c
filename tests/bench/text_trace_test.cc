// The editing-trace replay (bench/text_trace_io.h, bench/text_replay.h) and
// the text_trace tool: loading and its errors, the sequential replay of
// automerge-paper (260k keystrokes) through crdt::Text with an encode and
// decode, a small concurrent trace whose txns do not all name their agent's
// previous txn, and text_trace's output and exit status.
#define BOOST_TEST_MODULE text_trace
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/text_replay.h"
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

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << bytes;
  BOOST_REQUIRE_MESSAGE(f.good(), "cannot write " << path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::string GzJson(const std::string& json) {
  std::string gz;
  Status s = Gzip(json, &gz);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  return gz;
}

// Loads `json` (gzipped into a temp file) and returns the status.
Status LoadJson(const TempDir& dir, const std::string& json, Trace* out) {
  const std::string path = dir.sub("t.json.gz");
  WriteFile(path, GzJson(json));
  return LoadTrace(path, out);
}

// The checks the replay test makes of a final document.
void CheckRoundTrip(const Text& doc, const std::string& want) {
  BOOST_TEST(doc.Content() == want);
  const std::string bytes = doc.Encode();
  Text decoded;
  Status s = Text::Decode(bytes, &decoded);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(decoded.Content() == want);
  BOOST_TEST((decoded.Encode() == bytes), "the decoded state re-encodes to other bytes");
  BOOST_TEST((decoded == doc));
}

// Runs text_trace with `args`; returns its exit status (-1: not a normal
// exit) with stdout and stderr in *out and *err.
int RunTool(const TempDir& dir, const std::vector<std::string>& args, std::string* out,
            std::string* err) {
  std::vector<std::string> argv{MERIDIAN_TEXT_TRACE};
  argv.insert(argv.end(), args.begin(), args.end());
  meridian::testing::ChildOptions opt;
  opt.stdout_path = dir.sub("tool.out");
  opt.stderr_path = dir.sub("tool.err");
  opt.stdin_null = true;
  std::string why;
  pid_t pid = meridian::testing::SpawnChild(argv, opt, &why);
  BOOST_REQUIRE_MESSAGE(pid > 0, why);
  int status = 0;
  auto r = meridian::testing::WaitChild(pid, std::chrono::seconds(120), &status);
  if (r != meridian::testing::WaitResult::kReaped) {
    meridian::testing::KillChild(pid);
    BOOST_FAIL("text_trace did not finish in 120 s");
  }
  *out = ReadFile(opt.stdout_path);
  *err = ReadFile(opt.stderr_path);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void CheckJsonKeys(const nlohmann::json& j) {
  for (const char* key : {"ops", "apply_ms", "doc_bytes_in_memory", "encoded_bytes", "load_ms",
                          "ok", "runs", "chars", "txns", "load_runs", "load_verified_ms"}) {
    BOOST_TEST(j.contains(key), "--json output lacks " << key << ": " << j.dump());
  }
}

}  // namespace

// ---- Loading -------------------------------------------------------------

BOOST_AUTO_TEST_CASE(loads_sequential_and_concurrent_traces) {
  TempDir dir;
  Trace t;
  Status s = LoadJson(dir,
                      R"({"startContent":"ab","endContent":"aé😀b","txns":[
                          {"time":"x","patches":[[1,0,"é"],[2,0,"😀"]]}]})",
                      &t);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(!t.concurrent);
  BOOST_TEST(t.start_content == "ab");
  BOOST_REQUIRE(t.txns.size() == 1u);
  BOOST_TEST(t.txns[0].patches[1].insert == "😀");
  BOOST_TEST(t.PatchCount() == 2u);

  s = LoadJson(dir,
               R"({"kind":"concurrent","endContent":"ba","numAgents":2,"txns":[
                   {"parents":[],"numChildren":1,"agent":0,"patches":[[0,0,"a"]]},
                   {"parents":[0],"numChildren":0,"agent":1,"patches":[[0,0,"b"]]}]})",
               &t);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(t.concurrent);
  BOOST_TEST(t.num_agents == 2u);
  BOOST_TEST(t.txns[1].parents == std::vector<size_t>{0});
  BOOST_TEST(t.txns[1].agent == 1u);
}

// Keys in any order ("kind" last), and keys the format does not name, nested
// or not, are skipped.
BOOST_AUTO_TEST_CASE(key_order_and_unknown_keys_do_not_matter) {
  TempDir dir;
  Trace t;
  Status s = LoadJson(dir,
                      R"({"meta":{"a":[1,{"b":[]}],"c":null},"txns":[
                          {"x":[[1]],"patches":[[0,0,"ab"]],"time":"t","agent":1,"parents":[]},
                          {"parents":[0],"patches":[[2,0,"c"]],"agent":0,"extra":{"patches":3}}],
                          "endContent":"abc","numAgents":2,"kind":"concurrent","more":true})",
                      &t);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(t.concurrent);
  BOOST_TEST(t.num_agents == 2u);
  BOOST_REQUIRE(t.txns.size() == 2u);
  BOOST_TEST(t.txns[0].agent == 1u);
  BOOST_TEST(t.txns[1].parents == std::vector<size_t>{0});
  BOOST_TEST(t.txns[1].patches[0].insert == "c");
  BOOST_TEST(t.end_content == "abc");
  // A sequential trace ignores parents and agents.
  s = LoadJson(dir, R"({"txns":[{"patches":[],"parents":[5],"agent":9}],"endContent":""})", &t);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(t.txns[0].parents.empty());
}

BOOST_AUTO_TEST_CASE(written_traces_load_back) {
  TempDir dir;
  Trace t = TypingTrace(7, 300);
  BOOST_REQUIRE(WriteTrace(dir.sub("w.json.gz"), t).ok());
  Trace back;
  Status s = LoadTrace(dir.sub("w.json.gz"), &back);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(TraceToJson(back) == TraceToJson(t));
  std::string text;
  BOOST_REQUIRE(PlainReplay(back, &text).ok());
  BOOST_TEST(text == t.end_content);
}

BOOST_AUTO_TEST_CASE(unreadable_traces_say_why) {
  TempDir dir;
  Trace t;
  Status s = LoadTrace(dir.sub("absent.json.gz"), &t);
  BOOST_TEST((s.code() == Status::Code::kIOError), s.ToString());
  BOOST_TEST(s.message().find("absent.json.gz: No such file or directory") != std::string::npos,
             s.message());

  WriteFile(dir.sub("plain.json"), R"({"endContent":"","txns":[]})");
  s = LoadTrace(dir.sub("plain.json"), &t);
  BOOST_TEST(s.IsCorruption());
  BOOST_TEST(s.message().find("not gzip") != std::string::npos, s.message());

  const std::string gz = GzJson(R"({"endContent":"abc","txns":[]})");
  WriteFile(dir.sub("cut.json.gz"), gz.substr(0, gz.size() - 6));
  s = LoadTrace(dir.sub("cut.json.gz"), &t);
  BOOST_TEST(s.IsCorruption());
  BOOST_TEST(s.message().find("truncated") != std::string::npos, s.message());

  std::string damaged = gz;
  damaged[12] = static_cast<char>(damaged[12] ^ 0x5a);
  damaged[13] = static_cast<char>(damaged[13] ^ 0xa5);
  WriteFile(dir.sub("bad.json.gz"), damaged);
  s = LoadTrace(dir.sub("bad.json.gz"), &t);
  BOOST_TEST(s.IsCorruption(), s.ToString());
}

BOOST_AUTO_TEST_CASE(json_of_the_wrong_shape_is_refused_with_where) {
  TempDir dir;
  Trace t;
  struct Case {
    const char* json;
    const char* says;
  };
  const Case cases[] = {
      {R"({"endContent":"", "txns":[)", "not JSON"},
      {R"([1,2])", "top level"},
      {R"({"txns":[]})", "endContent"},
      {R"({"endContent":""})", "txns"},
      {R"({"endContent":"","txns":[{"patches":[[0,0]]}]})", "txns[0].patches[0]"},
      {R"({"endContent":"","txns":[{},{"patches":[]}]})", "txns[0]: has no patches"},
      {R"({"endContent":"","txns":[{"patches":[[-1,0,"a"]]}]})", "pos must be"},
      {R"({"endContent":"","txns":[{"patches":[[0,1.5,"a"]]}]})", "numDeleted must be"},
      {R"({"endContent":"","txns":[{"patches":[[0,0,7]]}]})", "insertedText must be"},
      {R"({"kind":"weird","endContent":"","txns":[]})", "unknown kind"},
      {R"({"kind":"concurrent","endContent":"","txns":[]})", "numAgents"},
      {R"({"kind":"concurrent","numAgents":1,"endContent":"","txns":[
           {"parents":[0],"agent":0,"patches":[]}]})",
       "txns[0].parents"},
      {R"({"kind":"concurrent","numAgents":1,"endContent":"","txns":[
           {"parents":[],"agent":1,"patches":[]}]})",
       "txns[0].agent"},
      {R"({"kind":"concurrent","numAgents":1,"endContent":"","txns":[
           {"parents":[],"agent":0,"patches":[]}, {"parents":["0"],"agent":0,"patches":[]}]})",
       "txns[1].parents: each parent"},
      {R"({"kind":"concurrent","numAgents":1,"endContent":"","txns":[
           {"parents":{},"agent":0,"patches":[]}]})",
       "txns[0].parents: missing or not an array"},
      {R"({"endContent":"","txns":[{"patches":[[0,0,"a",1]]}]})", "txns[0].patches[0]: must be"},
      {R"({"endContent":"","txns":[{"patches":[[0,0,"a"],{}]}]})", "txns[0].patches[1]: must be"},
      {R"({"endContent":"","txns":[3]})", "txns[0]: must be an object"},
      {R"({"endContent":"a\xff"})", "not JSON"},
      {"{\"endContent\":\"\xff\",\"txns\":[]}", "not JSON"},
      {R"({"endContent":"","txns":[]} x)", "not JSON"},
  };
  for (const Case& c : cases) {
    Status s = LoadJson(dir, c.json, &t);
    BOOST_TEST(s.IsInvalidArgument(), c.json << " -> " << s.ToString());
    BOOST_TEST(s.message().find(c.says) != std::string::npos,
               c.json << " -> " << s.message() << " (expected to mention " << c.says << ")");
  }
}

// ---- Replays ----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(automerge_paper_replays_to_its_end_content,
                     *boost::unit_test::precondition(HaveAutomergePaper)) {
  const Trace& trace = AutomergePaper();
  BOOST_TEST(trace.txns.size() == 259778u);
  std::string plain;
  BOOST_REQUIRE(PlainReplay(trace, &plain).ok());
  BOOST_REQUIRE(plain == trace.end_content);

  ReplayOptions opt;
  opt.load_runs = 1;
  Text doc;
  ReplayStats st = ReplaySequential(trace, opt, &doc);
  BOOST_TEST(st.ok, st.error);
  BOOST_TEST(st.ops == 259778u);
  BOOST_TEST(st.chars == 104852u);
  BOOST_TEST(st.encoded_bytes > 0u);
  std::cout << "automerge-paper: " << StatsToJson(st) << "\n";
  CheckRoundTrip(doc, trace.end_content);
}

BOOST_AUTO_TEST_CASE(typing_sessions_replay_with_code_point_positions) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    Trace trace = TypingTrace(seed, 3000);
    Text doc;
    ReplayStats st = ReplaySequential(trace, ReplayOptions(), &doc);
    BOOST_TEST(st.ok, "seed " << seed << ": " << st.error);
    BOOST_TEST(st.ops == 3000u);
    CheckRoundTrip(doc, trace.end_content);
  }
}

BOOST_AUTO_TEST_CASE(a_wrong_end_content_or_position_fails_the_replay) {
  Trace trace = TypingTrace(3, 200);
  trace.end_content += "!";
  ReplayStats st = ReplaySequential(trace, ReplayOptions());
  BOOST_TEST(!st.ok);
  BOOST_TEST(st.error.find("content after replay: text differs at character") == 0u, st.error);

  trace = TypingTrace(3, 200);
  trace.txns[150].patches[0].pos = 10000;
  st = ReplaySequential(trace, ReplayOptions());
  BOOST_TEST(!st.ok);
  BOOST_TEST(st.error.find("txns[150].patches[0] [10000, ") == 0u, st.error);
  BOOST_TEST(st.ops == 150u);
}

// Agent 1's second txn names only txn 0, not its own first one, so its
// replica holds more than the txn's parents: positions refer to the parents.
BOOST_AUTO_TEST_CASE(concurrent_positions_refer_to_the_parents_version) {
  Trace t;
  t.concurrent = true;
  t.num_agents = 2;
  auto txn = [&](std::vector<size_t> parents, uint32_t agent, std::vector<TracePatch> patches) {
    TraceTxn x;
    x.parents = std::move(parents);
    x.agent = agent;
    x.patches = std::move(patches);
    t.txns.push_back(std::move(x));
  };
  txn({}, 0, {{0, 0, "abc"}});          // 0: "abc"
  txn({0}, 1, {{3, 0, "X"}});           // 1: "abcX"
  txn({0}, 1, {{0, 1, ""}});            // 2: at "abc": delete 'a'
  txn({0}, 0, {{1, 1, "é"}, {2, 0, "!"}});  // 3: at "abc": "aéc", then "aé!c"
  txn({1, 2, 3}, 0, {{0, 0, ">"}});     // 4: at "é!cX" (2 deleted 'a', 3 'b')
  t.end_content = ">é!cX";
  for (double ahead : {0.0, 1.0}) {
    ReplayOptions opt;
    opt.gossip_ahead = ahead;
    Text doc;
    ReplayStats st = ReplayConcurrent(t, opt, &doc);
    BOOST_TEST(st.ok, st.error);
    BOOST_TEST(st.ops == 6u);
    BOOST_TEST(st.agents == 2u);
    BOOST_TEST(st.txns_at_older_version >= 1u);  // txn 2 at least
    CheckRoundTrip(doc, t.end_content);
  }
  t.end_content = ">é!c";
  BOOST_TEST(!ReplayConcurrent(t, ReplayOptions()).ok);
}

// ---- The tool -----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(text_trace_prints_figures_and_fails_on_a_wrong_trace) {
  TempDir dir;
  Trace good = TypingTrace(11, 2000);
  BOOST_REQUIRE(WriteTrace(dir.sub("good.json.gz"), good).ok());
  std::string out, err;
  BOOST_TEST(RunTool(dir, {"replay", "--json", dir.sub("good.json.gz")}, &out, &err) == 0, err);
  nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  BOOST_REQUIRE_MESSAGE(j.is_object(), "not one JSON object: " << out);
  CheckJsonKeys(j);
  BOOST_TEST(j.value("ok", false) == true);
  BOOST_TEST(j.value("ops", 0) == 2000);
  BOOST_TEST(j.value("chars", uint64_t{0}) == CodePointCount(good.end_content));

  // Without --json: one "name: value" line per figure.
  BOOST_TEST(RunTool(dir, {"replay", dir.sub("good.json.gz")}, &out, &err) == 0, err);
  BOOST_TEST(out.find("\nops: 2000\n") != std::string::npos, out);
  BOOST_TEST(out.find("\nok: true\n") != std::string::npos, out);

  Trace wrong = good;
  wrong.end_content = "not what was typed";
  BOOST_REQUIRE(WriteTrace(dir.sub("wrong.json.gz"), wrong).ok());
  BOOST_TEST(RunTool(dir, {"replay", "--json", dir.sub("wrong.json.gz")}, &out, &err) == 1);
  j = nlohmann::json::parse(out, nullptr, false);
  BOOST_REQUIRE_MESSAGE(j.is_object(), "not one JSON object: " << out);
  CheckJsonKeys(j);
  BOOST_TEST(j.value("ok", true) == false);
  BOOST_TEST(err.find("text differs at character 0") != std::string::npos, err);

  Trace out_of_range = good;
  out_of_range.txns[10].patches[0].pos = 99999;
  BOOST_REQUIRE(WriteTrace(dir.sub("range.json.gz"), out_of_range).ok());
  BOOST_TEST(RunTool(dir, {"replay", dir.sub("range.json.gz")}, &out, &err) == 1);
  BOOST_TEST(err.find("txns[10].patches[0] [99999, ") != std::string::npos, err);

  // Unreadable traces and bad usage: status 2, the reason on stderr.
  BOOST_TEST(RunTool(dir, {"replay", dir.sub("absent.json.gz")}, &out, &err) == 2);
  BOOST_TEST(err.find("No such file or directory") != std::string::npos, err);
  WriteFile(dir.sub("junk.json.gz"), GzJson("{\"txns\": ["));
  BOOST_TEST(RunTool(dir, {"replay", dir.sub("junk.json.gz")}, &out, &err) == 2);
  BOOST_TEST(err.find("not JSON") != std::string::npos, err);
  BOOST_TEST(RunTool(dir, {"replay-concurrent", dir.sub("good.json.gz")}, &out, &err) == 2);
  BOOST_TEST(err.find("a sequential trace; replay it with replay") != std::string::npos, err);
  BOOST_TEST(RunTool(dir, {"rewind", dir.sub("good.json.gz")}, &out, &err) == 2);
  BOOST_TEST(err.find("usage:") != std::string::npos, err);
}
