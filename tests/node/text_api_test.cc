// The text type through real meridiand processes (issue 7): POST, GET and
// DELETE /v1/text/{key} on one node in both encodings (positions in code
// points: ASCII, accents, emoji), edits at an older version from several
// clients, versions the node has not got (409 unknown_version), bad
// requests (400, nothing written), type mismatches, scans, batches and
// meridianctl; then three regions typing into one document at once, cut
// apart and healed, converging to the same text with every character
// present, runs typed concurrently at one place not interleaved, a version
// from another region refused until it has replicated, w=N, session
// tokens, and a text and a counter first-written apart listed as a type
// conflict.
//
// Every wait is a poll with a deadline.
#define BOOST_TEST_MODULE text
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "crdt/text.h"
#include "node/http_client.h"
#include "node/operation.h"
#include "tests/node/cluster_process.h"
#include "tests/node/node_process.h"
#include "tests/support/utf8.h"
#include "tests/support/wait_for.h"

using meridian::node::ClientResponse;
using meridian::node::EncodeKeyForPath;
using meridian::node::HttpClient;
using meridian::testing::ClusterOptions;
using meridian::testing::ClusterProcess;
using meridian::testing::DecodeReply;
using meridian::testing::EncodeBody;
using meridian::testing::Encoding;
using meridian::testing::MediaType;
using meridian::testing::Name;
using meridian::testing::Utf8;
using meridian::testing::NodeProcess;
using meridian::testing::WaitFor;
using nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kConverge{20000};
constexpr milliseconds kWritable{10000};
constexpr milliseconds kPeerState{8000};
const Encoding kEncodings[] = {Encoding::kJson, Encoding::kMsgpack};

// --- Code points ------------------------------------------------------------

std::vector<uint32_t> CodePoints(const std::string& s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int extra = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : 3;
    uint32_t cp = extra == 0 ? c : extra == 1 ? (c & 0x1f) : extra == 2 ? (c & 0x0f) : (c & 0x07);
    for (int k = 1; k <= extra && i + k < s.size(); ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    }
    out.push_back(cp);
    i += static_cast<size_t>(extra) + 1;
  }
  return out;
}


// What a sequence of edits does to a text, for the cases with one writer.
std::string Edited(const std::string& text, const json& ops) {
  std::vector<uint32_t> cps = CodePoints(text);
  for (const json& op : ops) {
    if (op.contains("insert")) {
      std::vector<uint32_t> ins = CodePoints(op["insert"]["text"].get<std::string>());
      size_t pos = op["insert"]["pos"].get<size_t>();
      cps.insert(cps.begin() + static_cast<long>(pos), ins.begin(), ins.end());
    } else {
      size_t pos = op["delete"]["pos"].get<size_t>(), len = op["delete"]["len"].get<size_t>();
      cps.erase(cps.begin() + static_cast<long>(pos), cps.begin() + static_cast<long>(pos + len));
    }
  }
  return Utf8(cps);
}

json Insert(uint64_t pos, const std::string& text) {
  return json{{"insert", {{"pos", pos}, {"text", text}}}};
}
json Delete(uint64_t pos, uint64_t len) { return json{{"delete", {{"pos", pos}, {"len", len}}}}; }

std::string EmptyVersion() { return meridian::node::EncodeTextVersion(meridian::crdt::TextVersion()); }

// --- One node -----------------------------------------------------------------

struct NodeFixture {
  NodeFixture() {
    BOOST_REQUIRE_MESSAGE(node.Start(), "meridiand did not start");
    client = node.Client();
  }

  ClientResponse Call(const std::string& method, const std::string& target,
                      const std::string& body = "", const Headers& headers = {}) {
    ClientResponse res;
    auto st = client->Request(method, target, body, headers, &res);
    BOOST_REQUIRE_MESSAGE(st.ok(), method << " " << target << ": " << st.ToString());
    return res;
  }
  ClientResponse Send(Encoding enc, const std::string& method, const std::string& target,
                      const json& body) {
    return Call(method, target, EncodeBody(enc, body),
                {{"Content-Type", MediaType(enc)}, {"Accept", MediaType(enc)}});
  }
  static json Body(const ClientResponse& res, Encoding enc = Encoding::kJson) {
    BOOST_TEST(res.Header("content-type") == MediaType(enc));
    json out;
    std::string why;
    BOOST_REQUIRE_MESSAGE(DecodeReply(res, &out, &why), why << ": " << res.body);
    return out;
  }

  // POST /v1/text/KEY that must succeed: the reply's new version and
  // length, with a session token at the write's seq.
  json Edit(const std::string& key, const json& ops, const std::optional<std::string>& version,
            Encoding enc = Encoding::kJson) {
    json body{{"ops", ops}};
    if (version) body["version"] = *version;
    ClientResponse res = Send(enc, "POST", "/v1/text/" + EncodeKeyForPath(key), body);
    BOOST_REQUIRE_MESSAGE(res.status == 200,
                          "POST /v1/text/" << key << " " << body.dump() << " answered "
                                           << res.status << ": " << res.body);
    json b = Body(res, enc);
    BOOST_TEST(b.value("ok", false));
    BOOST_TEST(b["seq"].is_number_unsigned());
    BOOST_TEST(b["version"].is_string());
    BOOST_TEST(b["length"].is_number_unsigned());
    BOOST_TEST(res.Header("x-session-token") == Replica() + ":" + b["seq"].dump());
    return b;
  }
  // GET /v1/text/KEY that must answer 200.
  json Read(const std::string& key, Encoding enc = Encoding::kJson) {
    ClientResponse res =
        Call("GET", "/v1/text/" + EncodeKeyForPath(key), "", {{"Accept", MediaType(enc)}});
    BOOST_REQUIRE_MESSAGE(res.status == 200, "GET /v1/text/" << key << " answered " << res.status
                                                             << ": " << res.body);
    BOOST_TEST(!res.Header("x-session-token").empty());
    json b = Body(res, enc);
    BOOST_TEST(b.value("key", "") == key);
    BOOST_TEST(b.value("type", "") == "text");
    BOOST_REQUIRE(b["value"].is_string());
    BOOST_REQUIRE(b["version"].is_string());
    BOOST_TEST(b["length"] == CodePoints(b["value"].get<std::string>()).size());
    return b;
  }
  void ExpectError(const ClientResponse& res, int status, const std::string& code,
                   const std::string& what) {
    BOOST_TEST(res.status == status,
               what << ": status " << res.status << " (want " << status << "), body " << res.body);
    json b;
    std::string why;
    if (!DecodeReply(res, &b, &why)) b = json();
    BOOST_TEST((b.is_object() && b.value("error", "") == code),
               what << ": error code (want " << code << "), body " << res.body);
    BOOST_TEST((b.is_object() && b.contains("message") && b["message"].is_string() &&
                !b["message"].get<std::string>().empty()),
               what << ": a message, body " << res.body);
  }
  uint64_t LastSeq() {
    ClientResponse r = Call("GET", "/v1/status");
    BOOST_REQUIRE_EQUAL(r.status, 200);
    return Body(r)["last_seq"].get<uint64_t>();
  }
  const std::string& Replica() {
    if (replica.empty()) {
      ClientResponse r = Call("GET", "/v1/status");
      replica = Body(r)["replica"].get<std::string>();
    }
    return replica;
  }

  NodeProcess node;
  std::unique_ptr<HttpClient> client;
  std::string replica;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(one_node, NodeFixture)

BOOST_AUTO_TEST_CASE(post_and_get_round_trip_in_code_points_in_both_encodings) {
  for (Encoding enc : kEncodings) {
    BOOST_TEST_CONTEXT("encoding " << Name(enc)) {
      const std::string key = std::string("doc/") + Name(enc) + "/é";
      std::string expect;
      json ops = json::array({Insert(0, "héllo wörld")});
      expect = Edited(expect, ops);
      json r = Edit(key, ops, std::nullopt, enc);
      BOOST_TEST(r["length"] == 11u);
      // Emoji: one code point each, four UTF-8 bytes; a flag is two.
      ops = json::array({Insert(5, " 👋🏽"), Insert(14, "🇫🇷!")});
      expect = Edited(expect, ops);
      r = Edit(key, ops, std::nullopt, enc);
      json g = Read(key, enc);
      BOOST_TEST(g["value"] == expect);
      BOOST_TEST(g["value"] == "héllo 👋🏽 wörld🇫🇷!");
      BOOST_TEST(g["length"] == 17u);
      BOOST_TEST(g["version"] == r["version"]);
      BOOST_TEST(r["length"] == g["length"]);
      // Deletes count code points too: "👋🏽" is two, at 6 and 7.
      ops = json::array({Delete(6, 2), Insert(0, "Ça va? "), Delete(7, 1)});
      expect = Edited(expect, ops);
      r = Edit(key, ops, g["version"].get<std::string>(), enc);
      g = Read(key, enc);
      BOOST_TEST(g["value"] == expect);
      BOOST_TEST(g["value"] == "Ça va? éllo  wörld🇫🇷!");
      BOOST_TEST(r["version"] == g["version"]);
      BOOST_TEST(r["length"] == g["length"]);
      // The other encoding reads the same.
      Encoding other = enc == Encoding::kJson ? Encoding::kMsgpack : Encoding::kJson;
      BOOST_TEST(Read(key, other) == g);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_never_written_key_reads_empty_and_a_delete_of_it_is_404) {
  json g = Read("nothing/here");
  BOOST_TEST(g["value"] == "");
  BOOST_TEST(g["length"] == 0u);
  BOOST_TEST(g["version"] == EmptyVersion());
  json gm = Read("nothing/here", Encoding::kMsgpack);
  BOOST_TEST(gm == g);
  ExpectError(Call("DELETE", "/v1/text/nothing/here"), 404, "not_found", "DELETE of a new key");
  // The empty version is a version like any other.
  Edit("nothing/here", json::array({Insert(0, "x")}), EmptyVersion());
  BOOST_TEST(Read("nothing/here")["value"] == "x");
  // And nothing at all was stored by the reads or the refused delete.
  ClientResponse scan = Call("GET", "/v1/scan?prefix=nothing/");
  BOOST_TEST(Body(scan)["items"].size() == 1u);
}

BOOST_AUTO_TEST_CASE(edits_at_an_older_version_land_without_clobbering) {
  const std::string key = "old/1";
  Edit(key, json::array({Insert(0, "abc")}), std::nullopt);
  const std::string v1 = Read(key)["version"];
  // Client 1 inserts between a and b.
  Edit(key, json::array({Insert(1, "X")}), v1);
  BOOST_TEST(Read(key)["value"] == "aXbc");
  // Client 2, also at v1 ("abc"): deletes b, then (seeing that) appends at 2.
  Edit(key, json::array({Delete(1, 1), Insert(2, "Y")}), v1);
  BOOST_TEST(Read(key)["value"] == "aXcY");
  // Client 3 at v1 inserts where client 1 did: both stay, in an order the
  // node decides the same way every time.
  Edit(key, json::array({Insert(1, "Z")}), v1);
  json g = Read(key);
  const std::string got = g["value"];
  BOOST_TEST((got == "aXZcY" || got == "aZXcY"), "got " << got);
  // Client 4 at v1 deletes "abc" whole: what the others typed stays.
  Edit(key, json::array({Delete(0, 3)}), v1);
  g = Read(key);
  const std::string after = g["value"];
  BOOST_TEST((after == "XZY" || after == "ZXY"), "got " << after);
  // Reads agree, and the same history on another key gives the same text.
  BOOST_TEST(Read(key) == g);
  const std::string key2 = "old/2";
  Edit(key2, json::array({Insert(0, "abc")}), std::nullopt);
  const std::string w1 = Read(key2)["version"];
  Edit(key2, json::array({Insert(1, "X")}), w1);
  Edit(key2, json::array({Delete(1, 1), Insert(2, "Y")}), w1);
  Edit(key2, json::array({Insert(1, "Z")}), w1);
  Edit(key2, json::array({Delete(0, 3)}), w1);
  BOOST_TEST(Read(key2)["value"] == after);
  // An intermediate version works too: at v2 ("aXbc"), delete "Xb".
  const std::string key3 = "old/3";
  Edit(key3, json::array({Insert(0, "abc")}), std::nullopt);
  Edit(key3, json::array({Insert(1, "X")}), std::nullopt);
  const std::string v2 = Read(key3)["version"];
  Edit(key3, json::array({Insert(4, "!")}), std::nullopt);  // "aXbc!"
  Edit(key3, json::array({Delete(1, 2)}), v2);
  BOOST_TEST(Read(key3)["value"] == "ac!");
}

BOOST_AUTO_TEST_CASE(a_version_the_node_has_not_got_is_409_and_writes_nothing) {
  const std::string key = "future/1";
  json r = Edit(key, json::array({Insert(0, "hello")}), std::nullopt);
  const uint64_t seq = LastSeq();
  // Dots of a replica this node never heard of.
  meridian::crdt::TextVersion v;
  v.Add(meridian::crdt::ReplicaId{"elsewhere-1", 7}, 1, 4);
  std::string token = meridian::node::EncodeTextVersion(v);
  ExpectError(Send(Encoding::kJson, "POST", "/v1/text/" + key,
                   json{{"version", token}, {"ops", json::array({Insert(0, "x")})}}),
              409, "unknown_version", "a version of another replica");
  // More of this node's own dots than the key has.
  json other = Edit("future/long", json::array({Insert(0, "a much longer text")}), std::nullopt);
  ExpectError(Send(Encoding::kJson, "POST", "/v1/text/" + key,
                   json{{"version", other["version"]}, {"ops", json::array({Insert(0, "x")})}}),
              409, "unknown_version", "a version of another key");
  // A version on a key never written.
  ExpectError(Send(Encoding::kMsgpack, "POST", "/v1/text/future/new",
                   json{{"version", r["version"]}, {"ops", json::array({Insert(0, "x")})}}),
              409, "unknown_version", "a version on a new key");
  BOOST_TEST(LastSeq() == seq + 1);  // only future/long's write
  json g = Read(key);
  BOOST_TEST(g["value"] == "hello");
  BOOST_TEST(g["version"] == r["version"]);
  BOOST_TEST(Read("future/new")["version"] == EmptyVersion());
}

BOOST_AUTO_TEST_CASE(bad_requests_are_400_and_write_nothing) {
  const std::string key = "bad/1";
  json r = Edit(key, json::array({Insert(0, "abc")}), std::nullopt);
  const std::string v = r["version"];
  const uint64_t seq = LastSeq();
  auto post = [&](const json& body, const std::string& code, const std::string& what) {
    for (Encoding enc : kEncodings) {
      ClientResponse res = Send(enc, "POST", "/v1/text/" + key, body);
      BOOST_TEST(res.status == 400, what << " (" << Name(enc) << "): " << res.status << " "
                                         << res.body);
      json b = Body(res, enc);
      BOOST_TEST(b.value("error", "") == code, what << " (" << Name(enc) << "): " << b.dump());
    }
  };
  post(json::array(), "bad_request", "a body that is not an object");
  post(json{{"version", v}}, "bad_request", "no ops");
  post(json{{"ops", json::array()}}, "bad_request", "empty ops");
  post(json{{"ops", json{{"insert", {{"pos", 0}, {"text", "x"}}}}}}, "bad_request",
       "ops not an array");
  post(json{{"ops", json::array({json{{"insert", {{"pos", 0}, {"text", "x"}}},
                                      {"delete", {{"pos", 0}, {"len", 1}}}}})}},
       "bad_request", "an op both insert and delete");
  post(json{{"ops", json::array({json{{"replace", {{"pos", 0}, {"text", "x"}}}}})}},
       "bad_request", "an unknown op");
  post(json{{"ops", json::array({Insert(0, "x"), json{{"insert", {{"pos", -1}, {"text", "x"}}}}})}},
       "bad_request", "a negative position");
  post(json{{"ops", json::array({json{{"insert", {{"pos", 1.5}, {"text", "x"}}}}})}},
       "bad_request", "a fractional position");
  post(json{{"ops", json::array({json{{"insert", {{"pos", "1"}, {"text", "x"}}}}})}},
       "bad_request", "a position that is a string");
  post(json{{"ops", json::array({json{{"insert", {{"pos", 1}}}}})}}, "bad_request",
       "an insert without text");
  post(json{{"ops", json::array({json{{"insert", {{"pos", 1}, {"text", 5}}}}})}}, "bad_request",
       "text that is not a string");
  post(json{{"ops", json::array({Insert(1, "")})}}, "bad_request", "empty text");
  post(json{{"ops", json::array({json{{"delete", {{"pos", 0}, {"len", -2}}}}})}}, "bad_request",
       "a negative length");
  post(json{{"ops", json::array({Delete(0, 0)})}}, "bad_request", "a zero length");
  post(json{{"ops", json::array({json{{"delete", {{"pos", 0}, {"len", 1}, {"x", 1}}}}})}},
       "bad_request", "an extra field");
  post(json{{"version", 5}, {"ops", json::array({Insert(0, "x")})}}, "bad_version",
       "a version that is not a string");
  post(json{{"version", "not base64!"}, {"ops", json::array({Insert(0, "x")})}}, "bad_version",
       "a version that is not base64url");
  post(json{{"version", "AAAA"}, {"ops", json::array({Insert(0, "x")})}}, "bad_version",
       "a version that does not decode");
  post(json{{"version", v + "="}, {"ops", json::array({Insert(0, "x")})}}, "bad_version",
       "a padded version");
  // Positions past the end, at the current version or an older one, and
  // in the middle of a request whose first op is fine.
  post(json{{"ops", json::array({Insert(4, "x")})}}, "bad_position", "an insert past the end");
  post(json{{"ops", json::array({Delete(2, 2)})}}, "bad_position", "a delete past the end");
  post(json{{"ops", json::array({Delete(3, 1)})}}, "bad_position", "a delete at the end");
  post(json{{"version", v}, {"ops", json::array({Insert(0, "xy"), Delete(0, 6)})}},
       "bad_position", "a second op past the end the first made");
  post(json{{"version", EmptyVersion()}, {"ops", json::array({Insert(1, "x")})}}, "bad_position",
       "an insert past the end of an older version");
  // Not UTF-8: refused by the body's decoder.
  ClientResponse res = Call("POST", "/v1/text/" + key,
                            "{\"ops\": [{\"insert\": {\"pos\": 0, \"text\": \"\xff\xfe\"}}]}",
                            {{"Content-Type", "application/json"}});
  ExpectError(res, 400, "bad_json", "JSON text that is not UTF-8");
  res = Call("POST", "/v1/text/" + key,
             "{\"ops\": [{\"insert\": {\"pos\": 0, \"text\": \"\\ud800\"}}]}",
             {{"Content-Type", "application/json"}});
  ExpectError(res, 400, "bad_json", "a lone surrogate");
  // msgpack {"ops": [{"insert": {"pos": 0, "text": <str "\xc3\x28">}}]}
  static const char kBadMsgpack[] =
      "\x81\xa3ops\x91\x81\xa6insert\x82\xa3pos\x00\xa4text\xa2\xc3\x28";
  res = Call("POST", "/v1/text/" + key, std::string(kBadMsgpack, sizeof(kBadMsgpack) - 1),
             {{"Content-Type", "application/msgpack"}});
  ExpectError(res, 400, "bad_msgpack", "msgpack text that is not UTF-8");
  ExpectError(Call("POST", "/v1/text/" + key, "{\"ops\": [", {{"Content-Type", "application/json"}}),
              400, "bad_json", "malformed JSON");
  ExpectError(Call("PUT", "/v1/text/" + key, "{}", {{"Content-Type", "application/json"}}), 405,
              "method_not_allowed", "PUT");
  // Nothing was written.
  BOOST_TEST(LastSeq() == seq);
  json g = Read(key);
  BOOST_TEST(g["value"] == "abc");
  BOOST_TEST(g["version"] == v);
}

BOOST_AUTO_TEST_CASE(types_do_not_mix_and_delete_empties_the_text) {
  Send(Encoding::kJson, "POST", "/v1/counter/mixed/c", json{{"add", 1}});
  ExpectError(Send(Encoding::kJson, "POST", "/v1/text/mixed/c",
                   json{{"ops", json::array({Insert(0, "x")})}}),
              409, "type_mismatch", "a text write to a counter");
  ExpectError(Call("GET", "/v1/text/mixed/c"), 409, "type_mismatch", "a text read of a counter");
  ExpectError(Call("DELETE", "/v1/text/mixed/c"), 409, "type_mismatch", "a text delete of a counter");
  Edit("mixed/t", json::array({Insert(0, "text")}), std::nullopt);
  ClientResponse res = Call("GET", "/v1/kv/mixed/t");
  ExpectError(res, 409, "type_mismatch", "a kv read of a text");
  BOOST_TEST(res.body.find("/v1/text/") != std::string::npos, res.body);
  ExpectError(Send(Encoding::kJson, "PUT", "/v1/kv/mixed/t", json("x")), 409, "type_mismatch",
              "a kv write to a text");
  ExpectError(Send(Encoding::kJson, "POST", "/v1/set/mixed/t", json{{"add", {"x"}}}), 409,
              "type_mismatch", "a set write to a text");

  // DELETE: every character goes; the version moves on, and edits go on
  // from it.
  const std::string v = Read("mixed/t")["version"];
  ClientResponse del = Call("DELETE", "/v1/text/mixed/t");
  BOOST_REQUIRE_MESSAGE(del.status == 200, del.body);
  json d = Body(del);
  BOOST_TEST(d["length"] == 0u);
  json g = Read("mixed/t");
  BOOST_TEST(g["value"] == "");
  BOOST_TEST(g["version"] == d["version"]);
  BOOST_TEST(g["version"] != v);
  ExpectError(Call("DELETE", "/v1/text/mixed/t"), 404, "not_found", "a second DELETE");
  ExpectError(Call("GET", "/v1/kv/mixed/t"), 404, "not_found", "a kv read of an empty text");
  // An edit at the version before the delete sees "text"; its insert stays.
  Edit("mixed/t", json::array({Insert(4, "!")}), v);
  BOOST_TEST(Read("mixed/t")["value"] == "!");
  Edit("mixed/t", json::array({Insert(0, "new")}), std::nullopt);
  BOOST_TEST(Read("mixed/t")["value"] == "new!");
  // The batch "del" deletes a text too.
  ClientResponse b = Send(Encoding::kJson, "POST", "/v1/batch",
                          json::array({json{{"op", "del"}, {"key", "mixed/t"}}}));
  BOOST_TEST(Body(b)["results"][0]["status"] == 200);
  BOOST_TEST(Read("mixed/t")["value"] == "");
}

BOOST_AUTO_TEST_CASE(scans_batches_and_meridianctl_show_text) {
  Edit("list/a", json::array({Insert(0, "first line\nsecond")}), std::nullopt);
  // Batch "text" ops, one with a bad position answered in place.
  ClientResponse b = Send(
      Encoding::kJson, "POST", "/v1/batch",
      json::array({json{{"op", "text"}, {"key", "list/b"}, {"ops", json::array({Insert(0, "bé")})}},
                   json{{"op", "text"}, {"key", "list/b"}, {"ops", json::array({Insert(9, "x")})}},
                   json{{"op", "text"},
                        {"key", "list/b"},
                        {"version", EmptyVersion()},
                        {"ops", json::array({Insert(0, "0")})}}}));
  json results = Body(b)["results"];
  BOOST_TEST(results[0]["status"] == 200);
  BOOST_TEST(results[1]["status"] == 400);
  BOOST_TEST(results[1]["error"] == "bad_position");
  BOOST_TEST(results[2]["status"] == 200);
  // At the empty version "0" and "bé" went in at one place concurrently.
  const std::string b_text = Read("list/b")["value"];
  BOOST_TEST((b_text == "0bé" || b_text == "bé0"), "got " << b_text);
  ClientResponse s = Call("GET", "/v1/scan?prefix=list/");
  json items = Body(s)["items"];
  BOOST_REQUIRE_EQUAL(items.size(), 2u);
  BOOST_TEST(items[0]["type"] == "text");
  BOOST_TEST(items[0]["value"] == "first line\nsecond");
  BOOST_TEST(items[0]["version"] == Read("list/a")["version"]);
  BOOST_TEST(items[1]["value"] == b_text);
  // The status counts the key; /v1/keys does not exist, scan is the list.
  ClientResponse st = Call("GET", "/v1/status");
  BOOST_TEST(Body(st)["keys"].get<uint64_t>() >= 2u);

  // meridianctl shows the text as typed, then its version.
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--url", node.url()});
    return meridian::testing::RunProgram(MERIDIAN_MERIDIANCTL, node.dir(), args,
                                         std::chrono::milliseconds(20000));
  };
  const json a = Read("list/a");
  meridian::testing::CtlResult c = ctl({"get", "list/a", "--type", "text"});
  BOOST_TEST(c.exit_code == 0, c.Describe());
  BOOST_TEST(c.out == "first line\nsecond\nversion: " + a["version"].get<std::string>() + "\n",
             c.Describe());
  c = ctl({"--json", "get", "list/a", "--type", "text"});
  BOOST_TEST(c.exit_code == 0, c.Describe());
  BOOST_TEST(json::parse(c.out, nullptr, false) == a, c.Describe());
  c = ctl({"get", "list/a"});  // the kv route: a text is elsewhere
  BOOST_TEST(c.exit_code == 1, c.Describe());
  BOOST_TEST(c.err.find("/v1/text/") != std::string::npos, c.Describe());
  c = ctl({"del", "list/a", "--type", "text"});
  BOOST_TEST(c.exit_code == 0, c.Describe());
  BOOST_TEST(Read("list/a")["value"] == "");
}

BOOST_AUTO_TEST_CASE(the_watch_feed_shows_every_change_of_a_text) {
  std::vector<std::string> events;
  meridian::Status watch_status;
  std::unique_ptr<HttpClient> watcher = node.Client();
  std::thread t([&] {
    watch_status =
        watcher->ReadEvents("/v1/watch?prefix=live%2F", 3, std::chrono::seconds(10), &events);
  });
  struct Joiner {
    std::thread& t;
    ~Joiner() {
      if (t.joinable()) t.join();
    }
  } joiner{t};
  bool subscribed = false;
  for (int i = 0; i < 250 && !subscribed; ++i) {
    ClientResponse r = Call("GET", "/v1/status");
    subscribed = Body(r)["watchers"] == 1;
    if (!subscribed) std::this_thread::sleep_for(milliseconds(20));
  }
  BOOST_CHECK_MESSAGE(subscribed, "the watch never showed up in /v1/status");
  json a = Edit("live/doc", json::array({Insert(0, "hi")}), std::nullopt);
  json b = Edit("live/doc", json::array({Insert(2, " 🙂")}), std::nullopt);
  ClientResponse del = Call("DELETE", "/v1/text/live/doc");
  BOOST_REQUIRE_EQUAL(del.status, 200);
  t.join();
  BOOST_TEST(watch_status.ok(), watch_status.ToString());
  BOOST_REQUIRE_EQUAL(events.size(), 3u);
  std::vector<json> e;
  for (const auto& text : events) e.push_back(json::parse(text));
  BOOST_TEST(e[0]["value"] == "hi");
  BOOST_TEST(e[0]["version"] == a["version"]);
  BOOST_TEST(e[1]["value"] == "hi 🙂");
  BOOST_TEST(e[1]["length"] == 4u);
  BOOST_TEST(e[1]["version"] == b["version"]);
  // Emptied, not deleted: the version goes on.
  BOOST_TEST(e[2]["type"] == "text");
  BOOST_TEST(e[2]["value"] == "");
  BOOST_TEST(e[2]["version"] == Body(del)["version"]);
}

BOOST_AUTO_TEST_SUITE_END()

// --- Three regions ------------------------------------------------------------

namespace {

struct Reply {
  int status = 0;
  std::string transport, raw, token;
  json body;
  std::string Describe() const {
    if (status == 0) return "no reply (" + transport + ")";
    return std::to_string(status) + " " + (raw.size() > 600 ? raw.substr(0, 600) + "..." : raw);
  }
  std::string Error() const { return body.is_object() ? body.value("error", "") : ""; }
};

class Regions {
 public:
  Regions() : cluster_(Options()) {
    clients_.resize(cluster_.size());
    BOOST_REQUIRE_MESSAGE(cluster_.Start(), "the cluster did not start (see the stderr above)");
    std::string why;
    BOOST_REQUIRE_MESSAGE(cluster_.WaitWritable(kWritable, {}, &why),
                          "expected every node writable; last replies:\n" << why);
  }

  static ClusterOptions Options() {
    ClusterOptions o;
    o.regions = 3;
    o.nodes_per_region = 1;
    o.cluster_name = "text-test";
    o.args_for_all.push_back("--enable-fault-injection");
    o.extra_toml = "[[policy]]\nprefix = \"notes/\"\ntype = \"text\"\n";
    return o;
  }

  int size() const { return cluster_.size(); }
  const std::string& id(int i) const { return cluster_.node_id(i); }

  // Thread-safe across different i (each node has its own client).
  Reply Call(int i, const std::string& method, const std::string& target,
             const std::optional<json>& body = std::nullopt, Headers headers = {}) {
    if (!clients_[i]) clients_[i] = cluster_.Client(i);
    if (body) headers.emplace_back("Content-Type", "application/json");
    ClientResponse res;
    Reply r;
    meridian::Status st =
        clients_[i]->Request(method, target, body ? body->dump() : std::string(), headers, &res);
    if (!st.ok()) {
      r.transport = st.ToString();
      clients_[i].reset();
      return r;
    }
    r.status = res.status;
    r.raw = res.body;
    r.token = res.Header("x-session-token");
    r.body = json::parse(res.body, nullptr, false);
    return r;
  }
  Reply Edit(int i, const std::string& key, const json& ops,
             const std::optional<std::string>& version, const std::string& query = "") {
    json body{{"ops", ops}};
    if (version) body["version"] = *version;
    return Call(i, "POST", "/v1/text/" + EncodeKeyForPath(key) + query, body);
  }
  Reply Read(int i, const std::string& key, Headers headers = {}) {
    return Call(i, "GET", "/v1/text/" + EncodeKeyForPath(key), std::nullopt, std::move(headers));
  }

  std::string PeerState(int i, const std::string& peer) {
    Reply r = Call(i, "GET", "/v1/status");
    if (r.body.is_object() && r.body["peers"].is_array()) {
      for (const json& p : r.body["peers"]) {
        if (p.value("node", "") == peer) return p.value("state", "");
      }
    }
    return "(absent)";
  }
  void Faults(int i, const json& body) {
    Reply r = Call(i, "POST", "/v1/admin/faults", body);
    BOOST_REQUIRE_MESSAGE(r.status == 200, "faults at " << id(i) << ": " << r.Describe());
  }
  // Cuts node i from every other node, both ways, and waits until the cut
  // shows.
  void Isolate(int i) {
    json drop = json::array();
    for (int p = 0; p < size(); ++p) {
      if (p != i) drop.push_back(id(p));
    }
    Faults(i, json{{"drop", drop}});
    bool cut = WaitFor(
        [&] {
          for (int p = 0; p < size(); ++p) {
            if (p != i && (PeerState(i, id(p)) == "up" || PeerState(p, id(i)) == "up")) {
              return false;
            }
          }
          return true;
        },
        kPeerState);
    BOOST_REQUIRE_MESSAGE(cut, id(i) << " still seen up after the cut");
  }
  void Heal(int i) { Faults(i, json{{"drop", json::array()}, {"delay_ms", json::object()}}); }

  // Waits until every node reads the same text at `key`; returns it.
  std::string ExpectConverged(const std::string& key) {
    std::string diff, text;
    bool ok = WaitFor(
        [&] {
          std::vector<std::string> seen;
          for (int i = 0; i < size(); ++i) {
            Reply r = Read(i, key);
            seen.push_back(r.status == 200 ? r.body["value"].get<std::string>() + " @ " +
                                                 r.body["version"].get<std::string>()
                                           : r.Describe());
          }
          diff.clear();
          for (int i = 0; i < size(); ++i) diff += "  " + id(i) + ": " + seen[i] + "\n";
          if (std::adjacent_find(seen.begin(), seen.end(), std::not_equal_to<>()) != seen.end()) {
            return false;
          }
          text = Read(0, key).body.value("value", "");
          return true;
        },
        kConverge, milliseconds(50));
    BOOST_TEST(ok, "expected the same text at " << key << " everywhere; last reads:\n" << diff);
    return text;
  }

 private:
  ClusterProcess cluster_;
  std::vector<std::unique_ptr<HttpClient>> clients_;
};

// Unique characters: writer w's n-th is one code point of its own block
// (CJK for 0-2, so 3 UTF-8 bytes each).
uint32_t CharOf(int writer, int n) { return 0x4E00 + static_cast<uint32_t>(writer) * 0x1000 + n; }

}  // namespace

BOOST_AUTO_TEST_CASE(three_regions_typing_at_once_converge_with_every_character) {
  Regions h;
  const std::string key = "doc/shared";
  // Everyone starts from one line.
  Reply seed = h.Edit(0, key, json::array({Insert(0, "Meridian: ")}), std::nullopt, "?w=3");
  BOOST_REQUIRE_MESSAGE(seed.status == 200, seed.Describe());
  BOOST_TEST(seed.body["length"] == 10u);
  h.ExpectConverged(key);

  // Each region's writer reads its node's text and inserts at a random
  // place of what it read, as fast as it can: the edits cross in flight.
  constexpr int kEdits = 40;
  std::vector<std::vector<uint32_t>> typed(h.size());
  std::vector<std::string> failures(h.size());
  auto writer = [&](int w) {
    std::mt19937 rng(1234 + w);
    int n = 0;
    for (int e = 0; e < kEdits; ++e) {
      Reply r = h.Read(w, key);
      if (r.status != 200) {
        failures[w] = "read: " + r.Describe();
        return;
      }
      const uint64_t len = r.body["length"].get<uint64_t>();
      const uint64_t pos = std::uniform_int_distribution<uint64_t>(0, len)(rng);
      std::vector<uint32_t> run;
      const int k = 1 + static_cast<int>(rng() % 3);
      for (int j = 0; j < k; ++j) run.push_back(CharOf(w, n++));
      Reply p = h.Edit(w, key, json::array({Insert(pos, Utf8(run))}),
                       r.body["version"].get<std::string>());
      if (p.status != 200) {
        failures[w] = "edit: " + p.Describe();
        return;
      }
      typed[w].insert(typed[w].end(), run.begin(), run.end());
    }
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < h.size(); ++w) threads.emplace_back(writer, w);
  for (auto& t : threads) t.join();
  for (int w = 0; w < h.size(); ++w) BOOST_TEST(failures[w].empty(), h.id(w) << ": " << failures[w]);

  const std::string text = h.ExpectConverged(key);
  std::vector<uint32_t> want = CodePoints("Meridian: ");
  for (const auto& t : typed) want.insert(want.end(), t.begin(), t.end());
  std::vector<uint32_t> got = CodePoints(text);
  std::sort(want.begin(), want.end());
  std::sort(got.begin(), got.end());
  BOOST_TEST((got == want), "expected every typed character exactly once; got " << text);
  // Each writer's characters keep the order it gave them among themselves
  // only when it typed forwards; what must hold is that the seed line
  // is still there in order.
  std::vector<uint32_t> seed_cps = CodePoints("Meridian: ");
  std::vector<uint32_t> seen_seed;
  for (uint32_t c : CodePoints(text)) {
    if (c < 0x4E00) seen_seed.push_back(c);
  }
  BOOST_TEST((seen_seed == seed_cps), "the first line's characters moved: " << text);
}

BOOST_AUTO_TEST_CASE(a_partition_heals_runs_stay_whole_and_foreign_versions_wait) {
  Regions h;
  const std::string key = "notes/meeting";  // under the policy of type text
  Reply first = h.Edit(0, key, json::array({Insert(0, "[]")}), std::nullopt, "?w=3");
  BOOST_REQUIRE_MESSAGE(first.status == 200, first.Describe());
  // The policy gives notes/ its type: another route is 409.
  Reply wrong = h.Call(1, "PUT", "/v1/kv/notes/other", json("x"));
  BOOST_TEST((wrong.status == 409 && wrong.Error() == "type_mismatch"), wrong.Describe());
  h.ExpectConverged(key);
  const std::string base = h.Read(2, key).body["version"];

  h.Isolate(2);
  // Both sides type a word at the same place (between the brackets), one
  // character per request, each at the version its last reply gave.
  const std::string left = "alpha", right = "omega";
  std::string v0 = base, v2 = base;
  for (size_t k = 0; k < left.size(); ++k) {
    Reply a = h.Edit(0, key, json::array({Insert(1 + k, left.substr(k, 1))}), v0);
    BOOST_REQUIRE_MESSAGE(a.status == 200, a.Describe());
    v0 = a.body["version"];
    Reply b = h.Edit(2, key, json::array({Insert(1 + k, right.substr(k, 1))}), v2);
    BOOST_REQUIRE_MESSAGE(b.status == 200, b.Describe());
    v2 = b.body["version"];
  }
  BOOST_TEST(h.Read(0, key).body["value"] == "[alpha]");
  BOOST_TEST(h.Read(2, key).body["value"] == "[omega]");
  // A version from the other side of the cut names edits node 2 has not
  // got: 409, nothing written.
  Reply foreign = h.Edit(2, key, json::array({Insert(0, ">")}), v0);
  BOOST_TEST((foreign.status == 409 && foreign.Error() == "unknown_version"), foreign.Describe());
  BOOST_TEST(h.Read(2, key).body["version"] == v2);
  // w=3 cannot be met while cut off: 504, the write kept.
  Reply held = h.Edit(0, key, json::array({Insert(0, "#")}), std::nullopt, "?w=3&timeout_ms=300");
  BOOST_TEST(held.status == 504, held.Describe());
  BOOST_TEST(h.Read(0, key).body["value"] == "#[alpha]");

  h.Heal(2);
  const std::string text = h.ExpectConverged(key);
  // Runs typed concurrently at one place do not interleave.
  BOOST_TEST((text == "#[alphaomega]" || text == "#[omegaalpha]"), "got " << text);
  // Once replicated, the foreign version is known: the same edit lands.
  Reply again = h.Edit(2, key, json::array({Insert(0, ">")}), v0);
  BOOST_TEST(again.status == 200, again.Describe());
  // Read-your-writes in another region with the reply's session token.
  // (">" and "#" both went in before "[" at versions that did not see
  // each other: either may come first.)
  Reply seen = h.Read(1, key, {{"X-Session-Token", again.token}});
  BOOST_TEST(seen.status == 200, seen.Describe());
  const std::string rest = text.substr(1);
  BOOST_TEST((seen.body["value"] == ">#" + rest || seen.body["value"] == "#>" + rest),
             seen.Describe());
  // A delete everywhere converges to the empty text with one version.
  Reply del = h.Call(1, "DELETE", "/v1/text/" + EncodeKeyForPath(key) + "?w=3");
  BOOST_TEST(del.status == 200, del.Describe());
  BOOST_TEST(h.ExpectConverged(key) == "");
}

BOOST_AUTO_TEST_CASE(a_text_and_a_counter_first_written_apart_are_a_type_conflict) {
  Regions h;
  const std::string key = "clash/k";
  h.Isolate(2);
  Reply t = h.Edit(0, key, json::array({Insert(0, "draft")}), std::nullopt);
  BOOST_REQUIRE_MESSAGE(t.status == 200, t.Describe());
  Reply c = h.Call(2, "POST", "/v1/counter/" + key, json{{"add", 3}});
  BOOST_REQUIRE_MESSAGE(c.status == 200, c.Describe());
  h.Heal(2);
  // Every region lists it for review with both values, the text's as its
  // string, and reads it as the winner's type.
  for (int i = 0; i < h.size(); ++i) {
    json entry;
    bool listed = WaitFor(
        [&] {
          Reply r = h.Call(i, "GET", "/v1/conflicts/" + key);
          entry = r.body;
          return r.status == 200 && r.body.is_object() && r.body["siblings"].size() == 2;
        },
        kConverge, milliseconds(50));
    BOOST_REQUIRE_MESSAGE(listed, h.id(i) << ": no type conflict listed; last " << entry.dump());
    BOOST_TEST(entry["reason"] == "type_conflict");
    std::map<std::string, json> by_type;
    for (const json& s : entry["siblings"]) by_type[s["type"].get<std::string>()] = s;
    BOOST_TEST(by_type["text"]["value"] == "draft", entry.dump());
    BOOST_TEST(by_type["counter"]["value"] == 3, entry.dump());
    const bool text_won = by_type["text"]["winner"] == true;
    Reply as_text = h.Read(i, key);
    Reply as_counter = h.Call(i, "GET", "/v1/counter/" + key);
    BOOST_TEST((text_won ? as_text.status == 200 && as_text.body["value"] == "draft"
                         : as_text.status == 409 && as_text.Error() == "type_mismatch"),
               as_text.Describe());
    BOOST_TEST((text_won ? as_counter.status == 409 : as_counter.status == 200),
               as_counter.Describe());
  }
}
