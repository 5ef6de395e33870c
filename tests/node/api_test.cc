// The HTTP API of DESIGN.md §7 against a real meridiand process on
// loopback: every route in both encodings (request bodies by Content-Type,
// replies by Accept), the read shapes of every type, batches, scans, the
// watch feed, health/status/metrics, every error status the node answers
// itself, and persistence across a clean restart.
#define BOOST_TEST_MODULE api
#include <boost/test/unit_test.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "node/http_client.h"
#include "tests/node/node_process.h"

using meridian::node::ClientResponse;
using meridian::node::EncodeKeyForPath;
using meridian::node::EncodeQueryValue;
using meridian::node::HttpClient;
using meridian::testing::DecodeReply;
using meridian::testing::EncodeBody;
using meridian::testing::Encoding;
using meridian::testing::MediaType;
using meridian::testing::Name;
using meridian::testing::NodeOptions;
using meridian::testing::NodeProcess;
using meridian::testing::RawExchange;
using nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;

namespace {

constexpr uint64_t kBodyLimit = 16 << 10;  // small, so 413 is cheap to reach
const Encoding kEncodings[] = {Encoding::kJson, Encoding::kMsgpack};

NodeOptions Options() {
  NodeOptions o;
  o.max_body_bytes = kBodyLimit;
  return o;
}

uint64_t WallMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

struct NodeFixture {
  NodeFixture() : node(Options()) {
    BOOST_REQUIRE_MESSAGE(node.Start(), "meridiand did not start");
    client = node.Client();
  }

  // One exchange; a failed exchange (no HTTP reply) fails the test case.
  ClientResponse Call(const std::string& method, const std::string& target,
                      const std::string& body = "", const Headers& headers = {}) {
    ClientResponse res;
    auto st = client->Request(method, target, body, headers, &res);
    BOOST_REQUIRE_MESSAGE(st.ok(), method << " " << target << ": " << st.ToString());
    return res;
  }

  // A request whose body is `body` in `enc`, asking for a reply in `enc`.
  ClientResponse Send(Encoding enc, const std::string& method, const std::string& target,
                      const json& body, Headers headers = {}) {
    headers.emplace_back("Content-Type", MediaType(enc));
    headers.emplace_back("Accept", MediaType(enc));
    return Call(method, target, EncodeBody(enc, body), headers);
  }

  ClientResponse Get(Encoding enc, const std::string& target, Headers headers = {}) {
    headers.emplace_back("Accept", MediaType(enc));
    return Call("GET", target, "", headers);
  }

  // The decoded reply; checks that it came in `enc`.
  static json Body(const ClientResponse& res, Encoding enc) {
    BOOST_TEST(res.Header("content-type") == MediaType(enc));
    json out;
    std::string why;
    BOOST_REQUIRE_MESSAGE(DecodeReply(res, &out, &why), why);
    return out;
  }

  // A successful write: 200 {"ok": true, "seq": n} with an X-Session-Token
  // naming this node's replica at that seq. Returns seq.
  uint64_t ExpectWritten(const ClientResponse& res, Encoding enc) {
    BOOST_REQUIRE_MESSAGE(res.status == 200, "write answered " << res.status << ": " << res.body);
    json b = Body(res, enc);
    BOOST_TEST(b.value("ok", false));
    BOOST_REQUIRE(b["seq"].is_number_unsigned());
    uint64_t seq = b["seq"].get<uint64_t>();
    std::string token = res.Header("x-session-token");
    BOOST_TEST(token == Replica() + ":" + std::to_string(seq));
    return seq;
  }

  // An error reply: the status, and {"error": code, "message": text} in `enc`.
  void ExpectError(const ClientResponse& res, int status, const std::string& code,
                   Encoding enc = Encoding::kJson) {
    BOOST_TEST(res.status == status,
               "status " << res.status << " (want " << status << "), body " << res.body);
    json b = Body(res, enc);
    BOOST_TEST(b.value("error", "") == code);
    BOOST_TEST((b.contains("message") && b["message"].is_string() &&
                !b["message"].get<std::string>().empty()));
  }

  json Status() {
    ClientResponse r = Call("GET", "/v1/status");
    BOOST_REQUIRE_EQUAL(r.status, 200);
    return Body(r, Encoding::kJson);
  }

  const std::string& Replica() {
    if (replica.empty()) replica = Status()["replica"].get<std::string>();
    return replica;
  }

  NodeProcess node;
  std::unique_ptr<HttpClient> client;
  std::string replica;
};

std::set<json> AsSet(const json& array) {
  std::set<json> out;
  for (const json& v : array) out.insert(v);
  return out;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(api, NodeFixture)

BOOST_AUTO_TEST_CASE(register_set_read_delete_in_both_encodings) {
  for (Encoding enc : kEncodings) {
    BOOST_TEST_CONTEXT("encoding " << Name(enc)) {
      // A key with a slash and bytes that need escaping.
      const std::string key = std::string("stock/") + Name(enc) + "/wid get%é";
      const std::string path = "/v1/kv/" + EncodeKeyForPath(key);
      const json value = {{"price", 12.5}, {"tags", {"a", "b"}}, {"n", nullptr}, {"i", -7}};
      uint64_t before = WallMs();
      ExpectWritten(Send(enc, "PUT", path, value), enc);

      ClientResponse r = Get(enc, path);
      BOOST_REQUIRE_EQUAL(r.status, 200);
      json b = Body(r, enc);
      BOOST_TEST(b["key"] == key);
      BOOST_TEST(b["type"] == "register");
      BOOST_TEST(b["value"] == value);
      BOOST_REQUIRE(b["hlc"].is_number_unsigned());
      uint64_t hlc = b["hlc"].get<uint64_t>();
      // High 48 bits: the wall clock in ms when the write was applied.
      BOOST_TEST((hlc >> 16) + 1000 >= before);
      BOOST_TEST((hlc >> 16) <= WallMs() + 1000);

      // A later write wins and carries a larger HLC; its reply names the
      // hlc and writer a read then shows.
      ClientResponse w = Send(enc, "PUT", path, json("second"));
      ExpectWritten(w, enc);
      json wb = Body(w, enc);
      b = Body(Get(enc, path), enc);
      BOOST_TEST(b["value"] == "second");
      BOOST_TEST(b["hlc"].get<uint64_t>() > hlc);
      BOOST_TEST(wb["hlc"] == b["hlc"]);
      BOOST_TEST(wb["writer"] == b["writer"]);
      BOOST_TEST(wb["writer"] == Replica());

      // Scalars of every JSON kind round-trip.
      for (const json& v : {json(true), json(0), json(-1), json(1.25), json(nullptr), json::array(),
                            json::object(), json(std::string(300, 'x'))}) {
        ExpectWritten(Send(enc, "PUT", path, v), enc);
        BOOST_TEST(Body(Get(enc, path), enc)["value"] == v);
      }

      ClientResponse d = Call("DELETE", path, "", {{"Accept", MediaType(enc)}});
      ExpectWritten(d, enc);
      ExpectError(Get(enc, path), 404, "not_found", enc);
      ExpectError(Call("DELETE", path, "", {{"Accept", MediaType(enc)}}), 404, "not_found", enc);
      // A deleted register can be written again.
      ExpectWritten(Send(enc, "PUT", path, json(3)), enc);
      BOOST_TEST(Body(Get(enc, path), enc)["value"] == 3);
    }
  }
}

BOOST_AUTO_TEST_CASE(request_and_reply_encodings_are_independent) {
  // msgpack in, JSON out, and the other way round.
  ClientResponse r =
      Call("PUT", "/v1/kv/mixed", EncodeBody(Encoding::kMsgpack, json{{"a", 1}}),
           {{"Content-Type", "application/msgpack"}, {"Accept", "application/json"}});
  ExpectWritten(r, Encoding::kJson);
  r = Call("GET", "/v1/kv/mixed", "", {{"Accept", "application/msgpack"}});
  BOOST_TEST(Body(r, Encoding::kMsgpack)["value"] == (json{{"a", 1}}));
  // No Accept, */*, and a media type with parameters all give JSON.
  for (const Headers& h : {Headers{}, Headers{{"Accept", "*/*"}}}) {
    r = Call("GET", "/v1/kv/mixed", "", h);
    BOOST_TEST(Body(r, Encoding::kJson)["value"] == (json{{"a", 1}}));
  }
  r = Call("PUT", "/v1/kv/mixed", "[1,2]", {{"Content-Type", "application/json; charset=utf-8"}});
  ExpectWritten(r, Encoding::kJson);
  BOOST_TEST(Body(Call("GET", "/v1/kv/mixed"), Encoding::kJson)["value"] == json::parse("[1,2]"));
}

BOOST_AUTO_TEST_CASE(mvregister_siblings_and_causal_context_round_trip) {
  for (Encoding enc : kEncodings) {
    BOOST_TEST_CONTEXT("encoding " << Name(enc)) {
      const std::string path = std::string("/v1/kv/mv/") + Name(enc);
      ExpectWritten(Send(enc, "PUT", path + "?type=mvregister", json("v1")), enc);
      ClientResponse r = Get(enc, path);
      BOOST_REQUIRE_EQUAL(r.status, 200);
      json b = Body(r, enc);
      BOOST_TEST(b["type"] == "mvregister");
      BOOST_TEST(b["value"] == "v1");
      const std::string ctx1 = r.Header("x-causal-context");
      BOOST_REQUIRE(!ctx1.empty());

      // Two writes that both saw only v1: the second cannot supersede the
      // first, so they stand as siblings.
      ExpectWritten(Send(enc, "PUT", path, json("v2"), {{"X-Causal-Context", ctx1}}), enc);
      b = Body(Get(enc, path), enc);
      BOOST_TEST(b["value"] == "v2");
      ExpectWritten(Send(enc, "PUT", path, json({{"v", 3}}), {{"X-Causal-Context", ctx1}}), enc);

      r = Get(enc, path);
      BOOST_REQUIRE_EQUAL(r.status, 300);
      b = Body(r, enc);
      BOOST_TEST(b["key"] == std::string("mv/") + Name(enc));
      BOOST_TEST(b["type"] == "mvregister");
      BOOST_TEST(!b.contains("value"));
      BOOST_REQUIRE(b["siblings"].is_array());
      std::set<json> values;
      for (const json& s : b["siblings"]) {
        values.insert(s["value"]);
        BOOST_TEST(s["replica"] == Replica());
        BOOST_TEST(s["dot"].is_number_unsigned());
      }
      BOOST_TEST((values == std::set<json>{json("v2"), json({{"v", 3}})}));
      const std::string ctx3 = r.Header("x-causal-context");
      BOOST_REQUIRE(!ctx3.empty());
      BOOST_TEST(ctx3 != ctx1);

      // A write carrying the context of the 300 reply resolves them.
      ExpectWritten(Send(enc, "PUT", path, json("resolved"), {{"X-Causal-Context", ctx3}}), enc);
      r = Get(enc, path);
      BOOST_REQUIRE_EQUAL(r.status, 200);
      BOOST_TEST(Body(r, enc)["value"] == "resolved");

      // A context that misses "resolved" leaves it standing beside the new
      // value; a write without a context supersedes everything. Neither
      // names ?type: the key stays an mvregister.
      ExpectWritten(Send(enc, "PUT", path, json("plain"), {{"X-Causal-Context", ctx3}}), enc);
      r = Get(enc, path);
      BOOST_REQUIRE_EQUAL(r.status, 300);
      values.clear();
      b = Body(r, enc);
      for (const json& s : b["siblings"]) values.insert(s["value"]);
      BOOST_TEST((values == std::set<json>{json("resolved"), json("plain")}));
      ExpectWritten(Send(enc, "PUT", path, json("last")), enc);
      r = Get(enc, path);
      BOOST_REQUIRE_EQUAL(r.status, 200);
      b = Body(r, enc);
      BOOST_TEST(b["type"] == "mvregister");
      BOOST_TEST(b["value"] == "last");

      ExpectError(Send(enc, "PUT", path, json(1), {{"X-Causal-Context", "!!not base64!!"}}), 400,
                  "bad_context", enc);
      ClientResponse d =
          Call("DELETE", path, "",
               {{"Accept", MediaType(enc)}, {"X-Causal-Context", r.Header("x-causal-context")}});
      ExpectWritten(d, enc);
      ExpectError(Get(enc, path), 404, "not_found", enc);
    }
  }
}

BOOST_AUTO_TEST_CASE(counter_in_both_encodings) {
  for (Encoding enc : kEncodings) {
    BOOST_TEST_CONTEXT("encoding " << Name(enc)) {
      const std::string path = std::string("/v1/counter/hits/") + Name(enc);
      ExpectWritten(Send(enc, "POST", path, json{{"add", 5}}), enc);
      ExpectWritten(Send(enc, "POST", path, json{{"add", -2}}), enc);
      ExpectWritten(Send(enc, "POST", path, json{{"add", int64_t{1} << 40}}), enc);
      json b = Body(Get(enc, path), enc);
      BOOST_TEST(b["type"] == "counter");
      BOOST_TEST(b["value"].get<int64_t>() == 3 + (int64_t{1} << 40));

      for (const json& bad : {json{{"add", "5"}}, json{{"add", 1.5}}, json{{"sub", 1}},
                              json::array({1}), json{{"add", 18446744073709551615ull}}}) {
        ExpectError(Send(enc, "POST", path, bad), 400, "bad_request", enc);
      }
      BOOST_TEST(Body(Get(enc, path), enc)["value"].get<int64_t>() == 3 + (int64_t{1} << 40));

      ExpectWritten(Call("DELETE", path, "", {{"Accept", MediaType(enc)}}), enc);
      ExpectError(Get(enc, path), 404, "not_found", enc);
      // After a delete the counter starts again from zero.
      ExpectWritten(Send(enc, "POST", path, json{{"add", 4}}), enc);
      BOOST_TEST(Body(Get(enc, path), enc)["value"] == 4);
    }
  }
}

BOOST_AUTO_TEST_CASE(set_in_both_encodings) {
  for (Encoding enc : kEncodings) {
    BOOST_TEST_CONTEXT("encoding " << Name(enc)) {
      const std::string path = std::string("/v1/set/tags/") + Name(enc);
      const json obj = {{"x", 1}};
      ExpectWritten(Send(enc, "POST", path, json{{"add", {"a", "b", 1, obj}}}), enc);
      json b = Body(Get(enc, path), enc);
      BOOST_TEST(b["type"] == "set");
      BOOST_TEST((AsSet(b["value"]) == std::set<json>{"a", "b", 1, obj}));

      ExpectWritten(Send(enc, "POST", path, json{{"remove", {"a", 1}}, {"add", {"c", "b"}}}), enc);
      BOOST_TEST((AsSet(Body(Get(enc, path), enc)["value"]) == std::set<json>{"b", "c", obj}));
      // Removing what is absent changes nothing.
      ExpectWritten(Send(enc, "POST", path, json{{"remove", {"zzz"}}}), enc);
      BOOST_TEST(Body(Get(enc, path), enc)["value"].size() == 3u);

      for (const json& bad :
           {json{{"add", "a"}}, json{{"remove", 1}}, json::object(), json::array({"a"})}) {
        ExpectError(Send(enc, "POST", path, bad), 400, "bad_request", enc);
      }

      ExpectWritten(Call("DELETE", path, "", {{"Accept", MediaType(enc)}}), enc);
      ExpectError(Get(enc, path), 404, "not_found", enc);
      ExpectWritten(Send(enc, "POST", path, json{{"add", {"again"}}}), enc);
      BOOST_TEST((AsSet(Body(Get(enc, path), enc)["value"]) == std::set<json>{"again"}));
    }
  }
}

BOOST_AUTO_TEST_CASE(map_every_nested_operation_in_both_encodings) {
  for (Encoding enc : kEncodings) {
    BOOST_TEST_CONTEXT("encoding " << Name(enc)) {
      const std::string path = std::string("/v1/map/cart/") + Name(enc);
      json update = {{"update",
                      {{"owner", {{"type", "register"}, {"set", "ann"}}},
                       {"items", {{"type", "counter"}, {"add", 3}}},
                       {"tags", {{"type", "set"}, {"sadd", {"red", "blue"}}}},
                       {"paid", {{"type", "flag"}, {"enable", true}}},
                       {"gone", {{"type", "register"}, {"set", 0}}}}}};
      ExpectWritten(Send(enc, "POST", path, update), enc);
      json b = Body(Get(enc, path), enc);
      BOOST_TEST(b["type"] == "map");
      json v = b["value"];
      BOOST_TEST(v["owner"] == (json{{"type", "register"}, {"value", "ann"}}));
      BOOST_TEST(v["items"] == (json{{"type", "counter"}, {"value", 3}}));
      BOOST_TEST(v["tags"]["type"] == "set");
      BOOST_TEST((AsSet(v["tags"]["value"]) == std::set<json>{"red", "blue"}));
      BOOST_TEST(v["paid"] == (json{{"type", "flag"}, {"value", true}}));
      BOOST_TEST(v.size() == 5u);

      // add (negative), srem with sadd, disable, register overwrite, remove.
      json second = {{"update",
                      {{"owner", {{"type", "register"}, {"set", {{"name", "bo"}}}}},
                       {"items", {{"type", "counter"}, {"add", -1}}},
                       {"tags", {{"type", "set"}, {"srem", {"red"}}, {"sadd", {"green"}}}},
                       {"paid", {{"type", "flag"}, {"disable", true}}}}},
                     {"remove", {"gone"}}};
      ExpectWritten(Send(enc, "POST", path, second), enc);
      v = Body(Get(enc, path), enc)["value"];
      BOOST_TEST(v["owner"]["value"] == (json{{"name", "bo"}}));
      BOOST_TEST(v["items"]["value"] == 2);
      BOOST_TEST((AsSet(v["tags"]["value"]) == std::set<json>{"blue", "green"}));
      // A disabled flag holds no dot, so the field is absent (not false).
      BOOST_TEST(!v.contains("paid"));
      BOOST_TEST(!v.contains("gone"));

      // One name with fields of two types reads as {"types": [...]}.
      ExpectWritten(
          Send(enc, "POST", path, json{{"update", {{"owner", {{"type", "counter"}, {"add", 9}}}}}}),
          enc);
      v = Body(Get(enc, path), enc)["value"];
      BOOST_REQUIRE(v["owner"].contains("types"));
      std::set<json> kinds = AsSet(v["owner"]["types"]);
      BOOST_TEST((kinds == std::set<json>{json{{"type", "register"}, {"value", {{"name", "bo"}}}},
                                          json{{"type", "counter"}, {"value", 9}}}));

      for (const json& bad :
           {json{{"update", {{"f", {{"type", "tensor"}, {"set", 1}}}}}},
            json{{"update", {{"f", {{"type", "counter"}, {"add", "x"}}}}}},
            json{{"update", {{"f", {{"type", "register"}}}}}},
            json{{"update", {{"f", {{"type", "set"}, {"sadd", "x"}}}}}},
            json{{"update", {{"f", {{"type", "flag"}, {"enable", true}, {"disable", true}}}}}},
            json{{"update", {{"f", 3}}}}, json{{"update", 1}}, json{{"remove", "gone"}},
            json{{"remove", json::array({1})}}, json::object(), json::array()}) {
        BOOST_TEST_CONTEXT("body " << bad.dump()) {
          ClientResponse r = Send(enc, "POST", path, bad);
          BOOST_TEST(r.status == 400);
          json e = Body(r, enc);
          BOOST_TEST((e["error"] == "bad_request" || e["error"] == "unknown_type"));
        }
      }

      ExpectWritten(Call("DELETE", path, "", {{"Accept", MediaType(enc)}}), enc);
      ExpectError(Get(enc, path), 404, "not_found", enc);
    }
  }
}

BOOST_AUTO_TEST_CASE(batch_mixed_operations_answered_per_operation) {
  for (Encoding enc : kEncodings) {
    BOOST_TEST_CONTEXT("encoding " << Name(enc)) {
      const std::string p = std::string("b/") + Name(enc) + "/";
      ExpectWritten(Send(enc, "PUT", "/v1/kv/" + p + "reg", json("x")), enc);
      ExpectWritten(Send(enc, "PUT", "/v1/kv/" + p + "doomed", json("x")), enc);
      json ops = json::array({
          {{"op", "put"}, {"key", p + "k1"}, {"value", {{"a", 1}}}},
          {{"op", "put"}, {"key", p + "mv"}, {"value", 2}, {"type", "mvregister"}},
          {{"op", "incr"}, {"key", p + "c"}},
          {{"op", "incr"}, {"key", p + "c"}, {"by", 41}},
          {{"op", "sadd"}, {"key", p + "s"}, {"elements", {"a", "b", "c"}}},
          {{"op", "srem"}, {"key", p + "s"}, {"elements", {"b"}}},
          {{"op", "map"}, {"key", p + "m"}, {"update", {{"f", {{"type", "counter"}, {"add", 2}}}}}},
          {{"op", "del"}, {"key", p + "doomed"}},
          {{"op", "frobnicate"}, {"key", p + "x"}},           // unknown operation
          {{"op", "incr"}, {"key", p + "reg"}},               // type mismatch
          {{"op", "del"}, {"key", p + "never"}},              // missing key
          {{"op", "put"}, {"key", p + "k2"}},                 // no value
          {{"op", "incr"}, {"key", p + "c"}, {"by", "one"}},  // wrong type
          {{"key", p + "k3"}},                                // no op
          json(42),                                           // not an object
          {{"op", "sadd"}, {"key", p + "s"}, {"elements", json::array()}},
      });
      ClientResponse r = Send(enc, "POST", "/v1/batch", ops);
      BOOST_REQUIRE_EQUAL(r.status, 200);
      BOOST_TEST(!r.Header("x-session-token").empty());
      json res = Body(r, enc)["results"];
      BOOST_REQUIRE_EQUAL(res.size(), ops.size());
      const int want[] = {200, 200, 200, 200, 200, 200, 200, 200,
                          400, 409, 404, 400, 400, 400, 400, 400};
      uint64_t last_seq = 0;
      for (size_t i = 0; i < res.size(); ++i) {
        BOOST_TEST_CONTEXT("operation " << i << ": " << ops[i].dump() << " -> " << res[i].dump()) {
          BOOST_TEST(res[i]["status"] == want[i]);
          if (want[i] == 200) {
            // Sequence numbers follow the request's order.
            BOOST_TEST(res[i]["seq"].get<uint64_t>() > last_seq);
            last_seq = res[i]["seq"].get<uint64_t>();
          } else {
            BOOST_TEST(res[i]["error"].is_string());
            BOOST_TEST(res[i]["message"].is_string());
          }
        }
      }
      BOOST_TEST(res[8]["error"] == "unknown_operation");
      BOOST_TEST(res[9]["error"] == "type_mismatch");
      BOOST_TEST(r.Header("x-session-token") == Replica() + ":" + std::to_string(last_seq));

      BOOST_TEST(Body(Get(enc, "/v1/kv/" + p + "k1"), enc)["value"] == (json{{"a", 1}}));
      json mv = Body(Get(enc, "/v1/kv/" + p + "mv"), enc);
      BOOST_TEST(mv["type"] == "mvregister");
      BOOST_TEST(mv["value"] == 2);
      BOOST_TEST(Body(Get(enc, "/v1/counter/" + p + "c"), enc)["value"] == 42);
      BOOST_TEST(
          (AsSet(Body(Get(enc, "/v1/set/" + p + "s"), enc)["value"]) == std::set<json>{"a", "c"}));
      BOOST_TEST(Body(Get(enc, "/v1/map/" + p + "m"), enc)["value"]["f"]["value"] == 2);
      ExpectError(Get(enc, "/v1/kv/" + p + "doomed"), 404, "not_found", enc);
      ExpectError(Get(enc, "/v1/kv/" + p + "x"), 404, "not_found", enc);
      ExpectError(Get(enc, "/v1/kv/" + p + "k2"), 404, "not_found", enc);
      BOOST_TEST(Body(Get(enc, "/v1/kv/" + p + "reg"), enc)["value"] == "x");

      // The {"ops": [...]} form, and bodies that are no batch at all.
      r = Send(enc, "POST", "/v1/batch",
               json{{"ops", json::array({json{{"op", "incr"}, {"key", p + "c"}}})}});
      BOOST_REQUIRE_EQUAL(r.status, 200);
      BOOST_TEST(Body(r, enc)["results"][0]["status"] == 200);
      BOOST_TEST(Body(Get(enc, "/v1/counter/" + p + "c"), enc)["value"] == 43);
      ExpectError(Send(enc, "POST", "/v1/batch", json{{"op", "incr"}}), 400, "bad_request", enc);
      ExpectError(Send(enc, "POST", "/v1/batch", json("ops")), 400, "bad_request", enc);
      // An empty batch is answered with no results.
      r = Send(enc, "POST", "/v1/batch", json::array());
      BOOST_REQUIRE_EQUAL(r.status, 200);
      BOOST_TEST(Body(r, enc)["results"].empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(scan_prefix_after_limit_next) {
  const std::vector<std::string> keys = {"sca",    "scan/a", "scan/b", "scan/c",
                                         "scan/d", "scan/e", "scan0",  "scan/b/x"};
  for (const auto& k : keys) {
    ExpectWritten(Send(Encoding::kJson, "PUT", "/v1/kv/" + EncodeKeyForPath(k), json(k)),
                  Encoding::kJson);
  }
  ExpectWritten(Send(Encoding::kJson, "POST", "/v1/counter/scan/cnt", json{{"add", 7}}),
                Encoding::kJson);
  ExpectWritten(Send(Encoding::kJson, "PUT", "/v1/kv/scan/deleted", json(0)), Encoding::kJson);
  ExpectWritten(Call("DELETE", "/v1/kv/scan/deleted"), Encoding::kJson);

  for (Encoding enc : kEncodings) {
    BOOST_TEST_CONTEXT("encoding " << Name(enc)) {
      // Paging through the prefix two at a time visits every live key
      // under it once, in byte order.
      std::vector<std::string> seen;
      std::string after;
      for (int page = 0; page < 20; ++page) {
        std::string target = "/v1/scan?prefix=" + EncodeQueryValue("scan/") + "&limit=2";
        if (!after.empty()) target += "&after=" + EncodeQueryValue(after);
        ClientResponse r = Get(enc, target);
        BOOST_REQUIRE_EQUAL(r.status, 200);
        json b = Body(r, enc);
        BOOST_REQUIRE(b["items"].is_array());
        BOOST_TEST(b["items"].size() <= 2u);
        for (const json& item : b["items"]) {
          seen.push_back(item["key"]);
          if (item["type"] == "register") BOOST_TEST(item["value"] == item["key"]);
        }
        if (b["next"].is_null()) break;
        after = b["next"].get<std::string>();
      }
      BOOST_TEST((seen == std::vector<std::string>{"scan/a", "scan/b", "scan/b/x", "scan/c",
                                                   "scan/cnt", "scan/d", "scan/e"}));

      // Without a limit: everything under the prefix in one page.
      json b = Body(Get(enc, "/v1/scan?prefix=scan%2F"), enc);
      BOOST_TEST(b["items"].size() == 7u);
      BOOST_TEST(b["next"].is_null());
      json cnt;
      for (const json& item : b["items"]) {
        if (item["key"] == "scan/cnt") cnt = item;
      }
      BOOST_TEST(cnt["type"] == "counter");
      BOOST_TEST(cnt["value"] == 7);

      // `after` alone, and a limit that ends exactly at the last key.
      b = Body(Get(enc, "/v1/scan?prefix=scan%2F&after=scan%2Fd"), enc);
      BOOST_TEST(b["items"].size() == 1u);
      BOOST_TEST(b["items"][0]["key"] == "scan/e");
      b = Body(Get(enc, "/v1/scan?after=scan%2Fe&limit=1"), enc);
      BOOST_TEST(b["items"][0]["key"] == "scan0");

      for (const char* bad : {"0", "-1", "abc", "1001", ""}) {
        ExpectError(Get(enc, std::string("/v1/scan?limit=") + bad), 400, "bad_limit", enc);
      }
      ExpectError(Get(enc, "/v1/scan?prefix=%zz"), 400, "bad_query", enc);
    }
  }
}

BOOST_AUTO_TEST_CASE(watch_streams_changes_under_the_prefix_only) {
  std::vector<std::string> events;
  meridian::Status watch_status;
  std::unique_ptr<HttpClient> watcher = node.Client();
  std::thread t([&] {
    watch_status =
        watcher->ReadEvents("/v1/watch?prefix=w%2F", 4, std::chrono::seconds(10), &events);
  });
  // Joined however the test case ends (the read is bounded by its timeout).
  struct Joiner {
    std::thread& t;
    ~Joiner() {
      if (t.joinable()) t.join();
    }
  } joiner{t};
  // Writes start once the subscription is registered.
  bool subscribed = false;
  for (int i = 0; i < 250 && !subscribed; ++i) {
    subscribed = Status()["watchers"] == 1;
    if (!subscribed) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  BOOST_CHECK_MESSAGE(subscribed, "the watch never showed up in /v1/status");

  const Encoding j = Encoding::kJson;
  ExpectWritten(Send(j, "PUT", "/v1/kv/other/x", json(1)), j);
  ExpectWritten(Send(j, "PUT", "/v1/kv/w/a", json("hello")), j);
  ExpectWritten(Send(j, "PUT", "/v1/kv/wx", json(2)), j);  // shares "w", not "w/"
  ExpectWritten(Send(j, "POST", "/v1/counter/w/n", json{{"add", 5}}), j);
  ClientResponse batch =
      Send(j, "POST", "/v1/batch",
           json::array({json{{"op", "sadd"}, {"key", "w/s"}, {"elements", {"e"}}},
                        json{{"op", "incr"}, {"key", "other/c"}}}));
  BOOST_TEST(batch.status == 200);
  BOOST_TEST(Body(batch, j)["results"][0]["status"] == 200);
  BOOST_TEST(Body(batch, j)["results"][1]["status"] == 200);
  ExpectWritten(Call("DELETE", "/v1/kv/w/a"), j);
  t.join();

  BOOST_TEST(watch_status.ok(), watch_status.ToString());
  BOOST_REQUIRE_EQUAL(events.size(), 4u);
  std::vector<json> e;
  for (const auto& text : events) e.push_back(json::parse(text));
  BOOST_TEST(e[0]["key"] == "w/a");
  BOOST_TEST(e[0]["type"] == "register");
  BOOST_TEST(e[0]["value"] == "hello");
  BOOST_TEST(e[1]["key"] == "w/n");
  BOOST_TEST(e[1]["value"] == 5);
  BOOST_TEST(e[2]["key"] == "w/s");
  BOOST_TEST(e[2]["value"] == json::array({"e"}));
  BOOST_TEST(e[3]["key"] == "w/a");
  BOOST_TEST(e[3]["deleted"] == true);
}

// CPU ticks (user + system) the process has used, from /proc/PID/stat.
uint64_t CpuTicks(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t at = stat.rfind(')');
  BOOST_REQUIRE(at != std::string::npos);
  std::istringstream rest(stat.substr(at + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return utime + stime;
}

// A watch stream whose client went away is closed once, and the node goes
// idle (it used to close it again and again, spinning a core forever).
BOOST_AUTO_TEST_CASE(a_closed_watch_stream_leaves_the_node_idle) {
  {
    std::unique_ptr<HttpClient> watcher = node.Client();
    std::vector<std::string> events;
    // Ends by its timeout: the client closes the connection.
    (void)watcher->ReadEvents("/v1/watch?prefix=idle%2F", 1, std::chrono::milliseconds(300),
                              &events);
  }
  bool gone = false;
  for (int i = 0; i < 250 && !gone; ++i) {
    gone = Status()["watchers"] == 0;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  BOOST_REQUIRE_MESSAGE(gone, "the closed watch stream is still counted");
  const uint64_t before = CpuTicks(node.pid());
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const uint64_t used = CpuTicks(node.pid()) - before;
  // An idle node uses a few ticks a second (100 per CPU-second); a
  // spinning one about 100.
  BOOST_TEST(used < 40u, "the node used " << used << " CPU ticks in one idle second");
}

BOOST_AUTO_TEST_CASE(sigterm_ends_open_watch_streams_and_exits_zero) {
  std::vector<std::string> events;
  std::unique_ptr<HttpClient> watcher = node.Client();
  double open_for = 0;
  std::thread t([&] {
    auto t0 = std::chrono::steady_clock::now();
    // Its Status is not checked: how the stream ends is what is measured.
    (void)watcher->ReadEvents("/v1/watch?prefix=", 1000, std::chrono::seconds(20), &events);
    open_for = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  });
  struct Joiner {
    std::thread& t;
    ~Joiner() {
      if (t.joinable()) t.join();
    }
  } joiner{t};
  bool subscribed = false;
  for (int i = 0; i < 250 && !subscribed; ++i) {
    subscribed = Status()["watchers"] == 1;
    if (!subscribed) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  BOOST_REQUIRE(subscribed);
  ExpectWritten(Send(Encoding::kJson, "PUT", "/v1/kv/any", json(1)), Encoding::kJson);

  auto t0 = std::chrono::steady_clock::now();
  BOOST_TEST(node.Stop(), "SIGTERM with an open watch stream did not exit 0");
  double stop_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  BOOST_TEST(stop_secs < 8.0, "stopping took " << stop_secs << " s");
  t.join();
  // The server closed the stream; the reader did not wait out its timeout.
  BOOST_TEST(open_for < 15.0);
  BOOST_REQUIRE_EQUAL(events.size(), 1u);
  BOOST_TEST(json::parse(events[0])["key"] == "any");
}

BOOST_AUTO_TEST_CASE(health_status_and_metrics) {
  ClientResponse r = Call("GET", "/v1/health");
  BOOST_REQUIRE_EQUAL(r.status, 200);
  json h = Body(r, Encoding::kJson);
  BOOST_TEST(h["status"] == "ok");
  BOOST_TEST(h["node"] == "test-1");
  BOOST_TEST(Body(Get(Encoding::kMsgpack, "/v1/health"), Encoding::kMsgpack)["status"] == "ok");

  json s = Status();
  BOOST_TEST(Body(Get(Encoding::kMsgpack, "/v1/status"), Encoding::kMsgpack)["node"] == "test-1");
  BOOST_TEST(s["node"] == "test-1");
  BOOST_TEST(s["region"] == "local");
  BOOST_TEST(s["cluster"] == "test");
  BOOST_TEST(s["sync"] == true);
  BOOST_TEST(s["last_seq"] == 0);
  const std::string replica = s["replica"];
  BOOST_TEST(replica == "test-1#" + std::to_string(s["incarnation"].get<uint64_t>()));
  BOOST_TEST(s["incarnation"].get<uint64_t>() > 0);
  BOOST_TEST(s["peers"].empty());

  const int kPuts = 7;
  uint64_t seq = 0;
  for (int i = 0; i < kPuts; ++i) {
    seq = ExpectWritten(Send(Encoding::kJson, "PUT", "/v1/kv/m" + std::to_string(i), json(i)),
                        Encoding::kJson);
  }
  ExpectError(Call("GET", "/v1/kv/absent"), 404, "not_found");
  s = Status();
  BOOST_TEST(s["last_seq"] == seq);
  BOOST_TEST(s["writes"] == kPuts);
  BOOST_TEST(s["session_token"] == replica + ":" + std::to_string(seq));
  BOOST_TEST(s["uptime_ms"].get<uint64_t>() > 0);

  r = Call("GET", "/metrics");
  BOOST_REQUIRE_EQUAL(r.status, 200);
  BOOST_TEST(r.Header("content-type").find("text/plain") == 0);
  const std::string& m = r.body;
  auto has = [&](const std::string& line) {
    BOOST_TEST_CONTEXT("metrics line '" << line << "'") {
      BOOST_TEST((m.find("\n" + line + "\n") != std::string::npos));
    }
  };
  has("meridian_http_requests_total{route=\"kv\",method=\"PUT\",status=\"200\"} " +
      std::to_string(kPuts));
  has("meridian_http_requests_total{route=\"kv\",method=\"GET\",status=\"404\"} 1");
  has("meridian_http_requests_total{route=\"status\",method=\"GET\",status=\"200\"} 4");
  has("meridian_http_request_seconds_bucket{route=\"kv\",le=\"+Inf\"} " +
      std::to_string(kPuts + 1));
  has("meridian_http_request_seconds_count{route=\"kv\"} " + std::to_string(kPuts + 1));
  has("meridian_writes_total " + std::to_string(kPuts));
  has("meridian_last_seq " + std::to_string(seq));
  has("# TYPE meridian_http_request_seconds histogram");
  for (const char* family : {"meridian_group_commits_total", "meridian_group_size_max",
                             "meridian_fsyncs_total", "meridian_state_bytes"}) {
    BOOST_TEST_CONTEXT("family " << family) {
      size_t at = m.find(std::string("\n") + family + " ");
      BOOST_REQUIRE(at != std::string::npos);
      uint64_t v = std::stoull(m.substr(at + 2 + std::string(family).size()));
      // Sequential requests: every write is its own group and fsync.
      if (std::string(family) != "meridian_state_bytes") {
        BOOST_TEST(v >= 1u);
        BOOST_TEST(v <= static_cast<uint64_t>(kPuts) + 1);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(malformed_and_mistyped_bodies_are_400) {
  const std::string put = "/v1/kv/bad";
  const Headers as_json = {{"Content-Type", "application/json"}};
  const Headers as_msgpack = {{"Content-Type", "application/msgpack"}};
  ExpectError(Call("PUT", put, "{\"a\":", as_json), 400, "bad_json");
  ExpectError(Call("PUT", put, "", as_json), 400, "bad_json");
  ExpectError(Call("PUT", put, "[1,]", as_json), 400, "bad_json");
  ExpectError(Call("PUT", put, "\"\xff\xfe\"", as_json), 400, "bad_json");
  ExpectError(Call("PUT", put, std::string(100, '[') + std::string(100, ']'), as_json), 400,
              "too_deep");
  ExpectError(Call("PUT", put, "\xc1", as_msgpack), 400, "bad_msgpack");  // never used
  ExpectError(Call("PUT", put,
                   "\x82\xa3"
                   "add",
                   as_msgpack),
              400, "bad_msgpack");  // truncated
  ExpectError(Call("PUT", put, "", as_msgpack), 400, "bad_msgpack");
  ExpectError(Call("PUT", put, std::string("\x91\x01\x02", 3), as_msgpack), 400, "bad_msgpack");
  // The error comes back in msgpack when asked for.
  ExpectError(Call("PUT", put, "{",
                   {{"Content-Type", "application/json"}, {"Accept", "application/msgpack"}}),
              400, "bad_json", Encoding::kMsgpack);

  // Well-formed bodies of the wrong shape.
  ExpectError(Call("POST", "/v1/counter/c", "{\"add\": true}", as_json), 400, "bad_request");
  ExpectError(
      Call("POST", "/v1/counter/c", EncodeBody(Encoding::kMsgpack, json{{"add", "1"}}), as_msgpack),
      400, "bad_request");
  ExpectError(Call("POST", "/v1/set/s", "{\"add\": {\"a\": 1}}", as_json), 400, "bad_request");
  ExpectError(Call("POST", "/v1/map/m", "[]", as_json), 400, "bad_request");
  ExpectError(
      Call("POST", "/v1/map/m", "{\"update\": {\"f\": {\"type\": \"tree\", \"set\": 1}}}", as_json),
      400, "unknown_type");
  ExpectError(Call("PUT", "/v1/kv/k?type=tree", "1", as_json), 400, "unknown_type");
  ClientResponse r = Call("POST", "/v1/batch", "[{\"op\": \"teleport\", \"key\": \"k\"}]", as_json);
  BOOST_REQUIRE_EQUAL(r.status, 200);
  BOOST_TEST(Body(r, Encoding::kJson)["results"][0]["error"] == "unknown_operation");
  BOOST_TEST(Body(r, Encoding::kJson)["results"][0]["status"] == 400);

  // Keys: empty, too long, not UTF-8, a broken escape.
  ExpectError(Call("PUT", "/v1/kv/", "1", as_json), 400, "bad_key");
  ExpectError(Call("PUT", "/v1/kv/" + std::string(1025, 'k'), "1", as_json), 400, "bad_key");
  ExpectError(Call("PUT", "/v1/kv/%ff%fe", "1", as_json), 400, "bad_key");
  ExpectError(Call("GET", "/v1/kv/a%zz"), 400, "bad_key");
  ExpectWritten(Call("PUT", "/v1/kv/" + std::string(1024, 'k'), "1", as_json), Encoding::kJson);

  // None of it wrote anything.
  ExpectError(Call("GET", put), 404, "not_found");
  ExpectError(Call("GET", "/v1/counter/c"), 404, "not_found");
  ExpectError(Call("GET", "/v1/map/m"), 404, "not_found");
}

BOOST_AUTO_TEST_CASE(not_found_method_not_allowed_conflict_media_type) {
  ExpectError(Call("GET", "/v1/kv/nothing-here"), 404, "not_found");
  ExpectError(Call("GET", "/v1/counter/nothing-here"), 404, "not_found");
  ExpectError(Call("GET", "/v1/nope"), 404, "not_found");
  ExpectError(Call("GET", "/"), 404, "not_found");
  ExpectError(Call("GET", "/v1/kvx/a"), 404, "not_found");

  struct Case {
    const char* method;
    const char* target;
    const char* allow;
  };
  for (const Case& c :
       {Case{"POST", "/v1/kv/a", "GET, PUT, DELETE"}, Case{"PATCH", "/v1/kv/a", "GET, PUT, DELETE"},
        Case{"PUT", "/v1/counter/a", "GET, POST, DELETE"},
        Case{"PUT", "/v1/set/a", "GET, POST, DELETE"},
        Case{"PUT", "/v1/map/a", "GET, POST, DELETE"}, Case{"GET", "/v1/batch", "POST"},
        Case{"POST", "/v1/scan", "GET"}, Case{"DELETE", "/v1/watch", "GET"},
        Case{"POST", "/v1/health", "GET"}, Case{"PUT", "/v1/status", "GET"},
        Case{"POST", "/metrics", "GET"}}) {
    BOOST_TEST_CONTEXT(c.method << " " << c.target) {
      ClientResponse r = Call(c.method, c.target, "{}", {{"Content-Type", "application/json"}});
      ExpectError(r, 405, "method_not_allowed");
      BOOST_TEST(r.Header("allow") == c.allow);
    }
  }

  // The first write fixes the type.
  ExpectWritten(Call("PUT", "/v1/kv/typed", "1", {{"Content-Type", "application/json"}}),
                Encoding::kJson);
  ExpectError(Call("POST", "/v1/counter/typed", "{\"add\":1}"), 409, "type_mismatch");
  ExpectError(Call("POST", "/v1/set/typed", "{\"add\":[1]}"), 409, "type_mismatch");
  ExpectError(Call("POST", "/v1/map/typed", "{\"remove\":[\"f\"]}"), 409, "type_mismatch");
  ExpectError(Call("DELETE", "/v1/counter/typed"), 409, "type_mismatch");
  ExpectWritten(Call("POST", "/v1/counter/cnt", "{\"add\":1}"), Encoding::kJson);
  ExpectError(Call("PUT", "/v1/kv/cnt", "1"), 409, "type_mismatch");
  ExpectError(Call("PUT", "/v1/kv/cnt?type=mvregister", "1"), 409, "type_mismatch");
  ExpectError(Call("DELETE", "/v1/set/cnt"), 409, "type_mismatch");
  // Reading through another type's route is refused too.
  ExpectError(Call("GET", "/v1/set/cnt"), 409, "type_mismatch");
  ExpectError(Call("GET", "/v1/kv/cnt"), 409, "type_mismatch");
  ExpectError(Call("GET", "/v1/counter/typed"), 409, "type_mismatch");
  BOOST_TEST(Body(Call("GET", "/v1/counter/cnt"), Encoding::kJson)["value"] == 1);

  for (const char* type : {"text/plain", "application/xml", "application/x-www-form-urlencoded",
                           "multipart/form-data; boundary=x"}) {
    BOOST_TEST_CONTEXT("Content-Type " << type) {
      ExpectError(Call("PUT", "/v1/kv/typed", "1", {{"Content-Type", type}}), 415,
                  "unsupported_media_type");
      ExpectError(Call("POST", "/v1/batch", "[]", {{"Content-Type", type}}), 415,
                  "unsupported_media_type");
    }
  }
  BOOST_TEST(Body(Call("GET", "/v1/kv/typed"), Encoding::kJson)["value"] == 1);
}

BOOST_AUTO_TEST_CASE(oversized_body_target_and_headers) {
  const Headers as_json = {{"Content-Type", "application/json"}};
  // A body exactly at the limit is accepted; one byte more is 413.
  std::string at_limit = "\"" + std::string(kBodyLimit - 2, 'v') + "\"";
  ExpectWritten(Call("PUT", "/v1/kv/big", at_limit, as_json), Encoding::kJson);
  std::string over = "\"" + std::string(kBodyLimit - 1, 'v') + "\"";
  ClientResponse r = Call("PUT", "/v1/kv/big", over, as_json);
  ExpectError(r, 413, "body_too_large");
  BOOST_TEST(r.Header("connection") == "close");
  r = Call("POST", "/v1/batch", std::string(kBodyLimit + 100, ' '), as_json);
  ExpectError(r, 413, "body_too_large");
  BOOST_TEST(Body(Call("GET", "/v1/kv/big"), Encoding::kJson)["value"] ==
             at_limit.substr(1, kBodyLimit - 2));

  // A target over 8 KiB.
  r = Call("GET", "/v1/kv/" + std::string(9000, 'k'));
  ExpectError(r, 414, "uri_too_long");
  r = Call("GET", "/v1/scan?prefix=" + std::string(9000, 'p'));
  ExpectError(r, 414, "uri_too_long");

  // Headers over 64 KiB: the server answers 431 and closes, even though
  // the client is still sending.
  std::string req = "GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (int i = 0; i < 5000; ++i) req += "X-Filler-" + std::to_string(i) + ": some value here\r\n";
  req += "\r\n";
  auto raw = RawExchange(node.port(), req, std::chrono::seconds(10));
  BOOST_TEST(raw.status == 431, raw.response.substr(0, 200));
  BOOST_TEST(raw.closed_by_peer);
  if (raw.status == 431) BOOST_TEST(json::parse(raw.Body())["error"] == "headers_too_large");

  // The node is still serving, on the old client connection and new ones.
  BOOST_TEST(Call("GET", "/v1/health").status == 200);
  client = node.Client();
  BOOST_TEST(Body(Call("GET", "/v1/kv/big"), Encoding::kJson)["key"] == "big");
}

BOOST_AUTO_TEST_CASE(every_write_reply_carries_a_session_token) {
  const Encoding j = Encoding::kJson;
  std::vector<ClientResponse> writes = {
      Send(j, "PUT", "/v1/kv/t/r", json(1)),
      Send(j, "PUT", "/v1/kv/t/mv?type=mvregister", json(1)),
      Send(j, "POST", "/v1/counter/t/c", json{{"add", 1}}),
      Send(j, "POST", "/v1/set/t/s", json{{"add", {1}}}),
      Send(j, "POST", "/v1/map/t/m",
           json{{"update", {{"f", {{"type", "flag"}, {"enable", true}}}}}}),
      Call("DELETE", "/v1/kv/t/r"),
      Call("DELETE", "/v1/kv/t/mv"),
      Call("DELETE", "/v1/counter/t/c"),
      Call("DELETE", "/v1/set/t/s"),
      Call("DELETE", "/v1/map/t/m"),
  };
  uint64_t last = 0;
  for (size_t i = 0; i < writes.size(); ++i) {
    BOOST_TEST_CONTEXT("write " << i) {
      uint64_t seq = ExpectWritten(writes[i], j);  // checks the token
      BOOST_TEST(seq == last + 1);
      last = seq;
    }
  }
}

BOOST_AUTO_TEST_CASE(data_survives_a_clean_restart) {
  const Encoding j = Encoding::kJson;
  ExpectWritten(Send(j, "PUT", "/v1/kv/p/reg", json{{"v", 1}}), j);
  ExpectWritten(Send(j, "PUT", "/v1/kv/p/mv?type=mvregister", json("a")), j);
  std::string ctx = Call("GET", "/v1/kv/p/mv").Header("x-causal-context");
  ExpectWritten(Send(j, "PUT", "/v1/kv/p/mv", json("b"), {{"X-Causal-Context", ctx}}), j);
  ExpectWritten(Send(j, "PUT", "/v1/kv/p/mv", json("c"), {{"X-Causal-Context", ctx}}), j);
  ExpectWritten(Send(j, "POST", "/v1/counter/p/c", json{{"add", -12}}), j);
  ExpectWritten(Send(j, "POST", "/v1/set/p/s", json{{"add", {"x", "y"}}}), j);
  ExpectWritten(Send(j, "POST", "/v1/map/p/m",
                     json{{"update",
                           {{"n", {{"type", "counter"}, {"add", 2}}},
                            {"t", {{"type", "set"}, {"sadd", {"q"}}}}}}}),
                j);
  ExpectWritten(Send(j, "PUT", "/v1/kv/p/gone", json(1)), j);
  uint64_t seq = ExpectWritten(Call("DELETE", "/v1/kv/p/gone"), j);

  const std::vector<std::string> paths = {"/v1/kv/p/reg", "/v1/kv/p/mv", "/v1/counter/p/c",
                                          "/v1/set/p/s", "/v1/map/p/m"};
  std::map<std::string, std::pair<int, json>> before;
  for (const auto& p : paths) {
    ClientResponse r = Call("GET", p);
    before[p] = {r.status, Body(r, j)};
  }
  BOOST_TEST(before["/v1/kv/p/mv"].first == 300);
  const json status = Status();
  const uint64_t hlc = before["/v1/kv/p/reg"].second["hlc"];

  BOOST_REQUIRE_MESSAGE(node.Stop(), "SIGTERM did not end meridiand with exit status 0");
  BOOST_REQUIRE(node.Start());
  client = node.Client();
  BOOST_TEST(node.Stderr().find("stopped cleanly") != std::string::npos);

  for (const auto& p : paths) {
    BOOST_TEST_CONTEXT(p) {
      ClientResponse r = Call("GET", p);
      BOOST_TEST(r.status == before[p].first);
      BOOST_TEST(Body(r, j) == before[p].second);
    }
  }
  ExpectError(Call("GET", "/v1/kv/p/gone"), 404, "not_found");
  json after = Status();
  BOOST_TEST(after["incarnation"] == status["incarnation"]);
  BOOST_TEST(after["replica"] == status["replica"]);
  BOOST_TEST(after["last_seq"] == seq);
  // The sequence and the clock continue where they were.
  BOOST_TEST(ExpectWritten(Send(j, "PUT", "/v1/kv/p/reg", json(2)), j) == seq + 1);
  BOOST_TEST(Body(Call("GET", "/v1/kv/p/reg"), j)["hlc"].get<uint64_t>() > hlc);

  // A second restart after SIGKILL keeps the identity too.
  node.Kill();
  BOOST_REQUIRE(node.Start());
  client = node.Client();
  BOOST_TEST(Status()["incarnation"] == status["incarnation"]);
  BOOST_TEST(Body(Call("GET", "/v1/kv/p/reg"), j)["value"] == 2);
}

// SIGTERM while clients are writing: the node answers what it took in,
// exits 0 promptly (it once lost the replies of in-flight writes and sat out
// its whole grace period, because its I/O threads ran out of work when the
// acceptor closed), and keeps every acknowledged increment.
BOOST_AUTO_TEST_CASE(sigterm_under_write_load_exits_promptly_and_keeps_acknowledged_writes) {
  using namespace std::chrono_literals;
  std::atomic<bool> done{false};
  std::atomic<int64_t> acked{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&] {
      std::unique_ptr<HttpClient> c = node.Client();
      c->set_timeout(10000ms);
      for (int i = 0; i < 200000 && !done; ++i) {
        ClientResponse r;
        if (!c->Request("POST", "/v1/counter/term/c", R"({"add": 1})",
                        {{"Content-Type", "application/json"}}, &r)
                 .ok()) {
          return;
        }
        if (r.status == 200) acked++;
      }
    });
  }
  std::this_thread::sleep_for(400ms);
  auto start = std::chrono::steady_clock::now();
  bool clean = node.Stop(15000ms);
  auto took = std::chrono::steady_clock::now() - start;
  done = true;
  for (auto& w : writers) w.join();
  BOOST_TEST(clean, "SIGTERM under load did not end meridiand with exit status 0");
  BOOST_TEST(std::chrono::duration_cast<std::chrono::milliseconds>(took).count() < 3000,
             "stopping under load took "
                 << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  BOOST_TEST(acked.load() > 0);
  BOOST_REQUIRE(node.Start());
  client = node.Client();
  ClientResponse r = Call("GET", "/v1/counter/term/c");
  BOOST_REQUIRE(r.status == 200);
  BOOST_TEST(Body(r, Encoding::kJson)["value"].get<int64_t>() >= acked.load());
}

BOOST_AUTO_TEST_SUITE_END()
