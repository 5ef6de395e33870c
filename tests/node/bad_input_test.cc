// Hostile and broken clients against a real meridiand: malformed and
// mistyped JSON and msgpack, a 100 MB body, 10,000 headers, and clients
// that send half a request and stall. Each gets its error or is timed out;
// meanwhile other clients are served normally, and every test case ends by
// checking that nothing written before it was lost.
#define BOOST_TEST_MODULE bad_input
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "node/http_client.h"
#include "tests/node/node_process.h"

using meridian::node::ClientResponse;
using meridian::node::HttpClient;
using meridian::testing::DecodeReply;
using meridian::testing::EncodeBody;
using meridian::testing::Encoding;
using meridian::testing::NodeProcess;
using meridian::testing::RawExchange;
using meridian::testing::RawResult;
using nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;

namespace {

const Headers kJson = {{"Content-Type", "application/json"}};
const Headers kMsgpack = {{"Content-Type", "application/msgpack"}};

// Every write route, with a key of its own type.
const std::vector<std::pair<std::string, std::string>> kWriteRoutes = {
    {"PUT", "/v1/kv/fuzz/r"},   {"POST", "/v1/counter/fuzz/c"}, {"POST", "/v1/set/fuzz/s"},
    {"POST", "/v1/map/fuzz/m"}, {"POST", "/v1/batch"},
};

struct Fixture {
  Fixture() {
    BOOST_REQUIRE_MESSAGE(node.Start(), "meridiand did not start");
    client = node.Client();
    // Data written before the abuse, checked after it.
    for (int i = 0; i < 10; ++i) {
      Write("PUT", "/v1/kv/seed/r" + std::to_string(i), json{{"i", i}});
      Write("POST", "/v1/counter/seed/c", json{{"add", i}});
      Write("POST", "/v1/set/seed/s", json{{"add", {"e" + std::to_string(i)}}});
    }
    Write("POST", "/v1/map/seed/m",
          json{{"update",
                {{"f", {{"type", "counter"}, {"add", 3}}},
                 {"g", {{"type", "set"}, {"sadd", {"x"}}}}}}});
    for (const auto& target : SeedTargets()) expected.push_back(Read(target));
  }

  // Boost.Test calls this after each case (assertions may throw here, unlike
  // in a destructor): every case ends with the node alive and holding what
  // it held.
  void teardown() {
    BOOST_REQUIRE_MESSAGE(node.running(), "meridiand is no longer running");
    client = node.Client();
    std::vector<std::string> targets = SeedTargets();
    for (size_t i = 0; i < targets.size(); ++i) {
      BOOST_TEST_CONTEXT("seed data " << targets[i]) {
        BOOST_TEST(Read(targets[i]) == expected[i]);
      }
    }
  }

  static std::vector<std::string> SeedTargets() {
    std::vector<std::string> t = {"/v1/counter/seed/c", "/v1/set/seed/s", "/v1/map/seed/m"};
    for (int i = 0; i < 10; ++i) t.push_back("/v1/kv/seed/r" + std::to_string(i));
    return t;
  }

  ClientResponse Call(const std::string& method, const std::string& target,
                      const std::string& body = "", const Headers& headers = {}) {
    ClientResponse res;
    auto st = client->Request(method, target, body, headers, &res);
    BOOST_REQUIRE_MESSAGE(st.ok(), method << " " << target << ": " << st.ToString());
    return res;
  }

  void Write(const std::string& method, const std::string& target, const json& body) {
    ClientResponse r = Call(method, target, body.dump(), kJson);
    BOOST_REQUIRE_MESSAGE(r.status == 200,
                          method << " " << target << " -> " << r.status << " " << r.body);
  }

  json Read(const std::string& target) {
    ClientResponse r = Call("GET", target);
    BOOST_REQUIRE_MESSAGE(r.status == 200, "GET " << target << " -> " << r.status << " " << r.body);
    json out;
    std::string why;
    BOOST_REQUIRE_MESSAGE(DecodeReply(r, &out, &why), why);
    return out;
  }

  // A 400 with the error shape; the connection stays usable.
  void Expect400(const std::string& method, const std::string& target, const std::string& body,
                 const Headers& headers) {
    ClientResponse r = Call(method, target, body, headers);
    BOOST_TEST(r.status == 400, method << " " << target << " body of " << body.size()
                                       << " bytes -> " << r.status << " " << r.body.substr(0, 200));
    json e;
    std::string why;
    BOOST_TEST(DecodeReply(r, &e, &why), why);
    BOOST_TEST((e.is_object() && e["error"].is_string() && e["message"].is_string()));
  }

  void ExpectHealthy() {
    ClientResponse r;
    std::unique_ptr<HttpClient> fresh = node.Client();
    auto st = fresh->Request("GET", "/v1/health", "", {}, &r);
    BOOST_TEST(st.ok(), st.ToString());
    BOOST_TEST(r.status == 200);
  }

  NodeProcess node;
  std::unique_ptr<HttpClient> client;
  std::vector<json> expected;
};

std::string Bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(bad_input, Fixture)

BOOST_AUTO_TEST_CASE(malformed_json_is_400_on_every_route) {
  const std::vector<std::string> bodies = {
      "",
      "{",
      "{\"add\": ",
      "{\"add\": 1,}",
      "[1, 2",
      "{'add': 1}",
      "{\"add\": NaN}",
      "{\"add\": 1} trailing",
      "\"unterminated",
      "\"bad escape \\q\"",
      "\"\\ud800\"",                 // lone surrogate
      std::string("\"\xc3\x28\""),   // invalid UTF-8
      std::string("{\"a\":\0}", 7),  // NUL
      std::string(100000, '['),      // deep nesting, unclosed
      std::string(5000, '{') + std::string(5000, '}'),
      "[" + std::string(100000, '1'),  // an endless number
  };
  for (const auto& [method, target] : kWriteRoutes) {
    for (const auto& body : bodies) Expect400(method, target, body, kJson);
  }
  ExpectHealthy();
}

BOOST_AUTO_TEST_CASE(malformed_msgpack_is_400_on_every_route) {
  const std::vector<std::string> bodies = {
      "",
      Bytes({0xc1}),                                                 // never used
      Bytes({0x81, 0xa3, 'a', 'd', 'd'}),                            // map without its value
      Bytes({0x92, 0x01}),                                           // array one short
      Bytes({0xdd, 0xff, 0xff, 0xff, 0xff}),                         // array32 of 4G elements
      Bytes({0xdf, 0x7f, 0xff, 0xff, 0xff}),                         // map32 of 2G pairs
      Bytes({0xdb, 0xff, 0xff, 0xff, 0xf0, 'a'}),                    // str32 longer than the body
      Bytes({0xc6, 0x00, 0x10, 0x00, 0x00}),                         // bin32 with no bytes
      Bytes({0xcb, 0x00}),                                           // truncated float64
      Bytes({0x01, 0x02}),                                           // trailing bytes
      Bytes({0xa2, 0xc3, 0x28}),                                     // a string that is not UTF-8
      // JSON has no form for these: the value would read back altered.
      Bytes({0xc4, 0x02, 'h', 'i'}),                                 // bin8
      Bytes({0xd6, 0x01, 0x01, 0x02, 0x03, 0x04}),                   // fixext4
      Bytes({0xcb, 0x7f, 0xf8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}), // NaN
      Bytes({0x81, 0xa3, 'a', 'd', 'd', 0xca, 0x7f, 0x80, 0x00, 0x00}),  // {"add": +inf}
      std::string(100000, static_cast<char>(0x91)) + Bytes({0x01}),  // deep nesting
  };
  for (const auto& [method, target] : kWriteRoutes) {
    for (const auto& body : bodies) Expect400(method, target, body, kMsgpack);
  }
  ExpectHealthy();
}

BOOST_AUTO_TEST_CASE(well_formed_bodies_of_the_wrong_types_are_400) {
  struct Case {
    const char* method;
    const char* target;
    json body;
  };
  const std::vector<Case> cases = {
      {"POST", "/v1/counter/fuzz/c", json{{"add", "1"}}},
      {"POST", "/v1/counter/fuzz/c", json{{"add", 1.0}}},
      {"POST", "/v1/counter/fuzz/c", json{{"add", true}}},
      {"POST", "/v1/counter/fuzz/c", json{{"add", nullptr}}},
      {"POST", "/v1/counter/fuzz/c", json{{"add", json::array({1})}}},
      {"POST", "/v1/counter/fuzz/c", json(5)},
      {"POST", "/v1/set/fuzz/s", json{{"add", "e"}}},
      {"POST", "/v1/set/fuzz/s", json{{"add", 1}}},
      {"POST", "/v1/set/fuzz/s", json{{"remove", json::object()}}},
      {"POST", "/v1/set/fuzz/s", json::array({"e"})},
      {"POST", "/v1/map/fuzz/m", json{{"update", json::array()}}},
      {"POST", "/v1/map/fuzz/m", json{{"update", {{"f", {{"type", 7}, {"set", 1}}}}}}},
      {"POST", "/v1/map/fuzz/m", json{{"update", {{"f", {{"type", "counter"}, {"add", 0.5}}}}}}},
      {"POST", "/v1/map/fuzz/m", json{{"update", {{"f", {{"type", "flag"}}}}}}},
      {"POST", "/v1/map/fuzz/m", json{{"remove", json::array({json::object()})}}},
      {"POST", "/v1/batch", json{{"ops", 1}}},
      {"POST", "/v1/batch", json(nullptr)},
  };
  for (Encoding enc : {Encoding::kJson, Encoding::kMsgpack}) {
    const Headers& h = enc == Encoding::kJson ? kJson : kMsgpack;
    for (const Case& c : cases) {
      BOOST_TEST_CONTEXT(c.method << " " << c.target << " " << c.body.dump()) {
        Expect400(c.method, c.target, EncodeBody(enc, c.body), h);
      }
    }
  }
  // Nothing of it was written.
  for (const char* t : {"/v1/counter/fuzz/c", "/v1/set/fuzz/s", "/v1/map/fuzz/m"}) {
    BOOST_TEST(Call("GET", t).status == 404);
  }
}

BOOST_AUTO_TEST_CASE(random_bytes_never_crash_the_node) {
  const uint64_t seed = std::random_device()();
  BOOST_TEST_MESSAGE("random bodies from seed " << seed);
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 300; ++i) {
    std::string body(rng() % 200, '\0');
    for (char& c : body) c = static_cast<char>(rng());
    const auto& [method, target] = kWriteRoutes[rng() % kWriteRoutes.size()];
    const Headers& h = rng() % 2 ? kJson : kMsgpack;
    ClientResponse r = Call(method, target, body, h);
    // A few random byte strings are valid msgpack values: those may be
    // written (200); anything else is a client error, never a 5xx.
    BOOST_TEST((r.status == 200 || r.status == 400 || r.status == 409),
               "seed " << seed << " body " << i << " -> " << r.status << " " << r.body);
  }
  ExpectHealthy();
}

BOOST_AUTO_TEST_CASE(hundred_megabyte_body_is_413_and_the_connection_closed) {
  const std::string chunk(1 << 20, 'x');
  const size_t kChunks = 100;
  auto t0 = std::chrono::steady_clock::now();
  RawResult r = RawExchange(node.port(),
                            "PUT /v1/kv/huge HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Content-Type: application/json\r\nContent-Length: " +
                                std::to_string(chunk.size() * kChunks) + "\r\n\r\n\"",
                            std::chrono::seconds(20), chunk, kChunks);
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  BOOST_TEST(r.connected);
  BOOST_TEST(r.status == 413, r.response.substr(0, 300));
  BOOST_TEST(r.closed_by_peer, "the connection stayed open after 413");
  if (r.status == 413) BOOST_TEST(json::parse(r.Body())["error"] == "body_too_large");
  BOOST_TEST_MESSAGE("413 after " << r.bytes_sent << " bytes sent, " << secs << " s");

  // The same without a Content-Length: 100 chunks of 1 MiB.
  std::string hex_chunk = "100000\r\n" + chunk + "\r\n";
  r = RawExchange(node.port(),
                  "PUT /v1/kv/huge HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                  std::chrono::seconds(20), hex_chunk, kChunks);
  BOOST_TEST(r.status == 413, r.response.substr(0, 300));
  BOOST_TEST(r.closed_by_peer);

  ExpectHealthy();
  BOOST_TEST(Call("GET", "/v1/kv/huge").status == 404);
  // A large body under the 8 MiB default is still taken.
  std::string two_mb = "\"" + std::string(2 << 20, 'y') + "\"";
  BOOST_TEST(Call("PUT", "/v1/kv/two-mb", two_mb, kJson).status == 200);
  BOOST_TEST(Read("/v1/kv/two-mb")["value"].get<std::string>().size() == size_t{2} << 20);
}

BOOST_AUTO_TEST_CASE(ten_thousand_headers_are_431) {
  std::string req = "GET /v1/kv/seed/r1 HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (int i = 0; i < 10000; ++i) req += "X-Header-" + std::to_string(i) + ": value\r\n";
  req += "\r\n";
  RawResult r = RawExchange(node.port(), req, std::chrono::seconds(20));
  BOOST_TEST(r.status == 431, r.response.substr(0, 300));
  BOOST_TEST(r.closed_by_peer);
  if (r.status == 431) BOOST_TEST(json::parse(r.Body())["error"] == "headers_too_large");

  // One enormous header line too.
  r = RawExchange(node.port(),
                  "GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " +
                      std::string(200000, 'h') + "\r\n\r\n",
                  std::chrono::seconds(20));
  BOOST_TEST(r.status == 431, r.response.substr(0, 300));
  ExpectHealthy();
}

BOOST_AUTO_TEST_CASE(garbage_instead_of_http_is_400_and_closed) {
  for (const std::string& req :
       {std::string("HELLO\r\n\r\n"),
        std::string("GET /v1/health HTTP/1.1\r\nContent-Length: -5\r\n\r\n"),
        std::string("PUT /v1/kv/x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
        std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11)}) {  // a TLS hello
    RawResult r = RawExchange(node.port(), req, std::chrono::seconds(15));
    BOOST_TEST_CONTEXT(
        "request " << json(req).dump(-1, ' ', false, json::error_handler_t::replace)) {
      BOOST_TEST(r.closed_by_peer);
      BOOST_TEST((r.status == 400 || r.status == 0), r.response.substr(0, 200));
    }
  }
  ExpectHealthy();
}

BOOST_AUTO_TEST_CASE(stalled_half_requests_time_out_while_others_are_served) {
  // Three stallers: half a request line and headers, full headers with
  // half the body, and a connection that sends nothing.
  const std::vector<std::string> halves = {
      "PUT /v1/kv/stall/a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty",
      "PUT /v1/kv/stall/b HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Content-Length: 100\r\n\r\n\"abc",
      "",
  };
  constexpr auto kPatience = std::chrono::seconds(25);  // the server allows 10 s
  std::vector<RawResult> results(halves.size());
  std::vector<double> closed_after(halves.size(), 0);
  std::atomic<int> done{0};
  std::vector<std::thread> stallers;
  for (size_t i = 0; i < halves.size(); ++i) {
    stallers.emplace_back([&, i] {
      auto t0 = std::chrono::steady_clock::now();
      results[i] = RawExchange(node.port(), halves[i], kPatience);
      closed_after[i] =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      done++;
    });
  }
  struct Joiner {
    std::vector<std::thread>& threads;
    ~Joiner() {
      for (auto& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } joiner{stallers};

  // Meanwhile, normal service on another connection: each request answered
  // promptly. Bounded by count and by the stallers' patience.
  int served = 0;
  double slowest = 0;
  const auto deadline = std::chrono::steady_clock::now() + kPatience + std::chrono::seconds(5);
  for (int i = 0; i < 100000 && done < static_cast<int>(halves.size()) &&
                  std::chrono::steady_clock::now() < deadline;
       ++i) {
    auto t0 = std::chrono::steady_clock::now();
    Write("POST", "/v1/counter/during-stall", json{{"add", 1}});
    BOOST_REQUIRE(Read("/v1/counter/during-stall")["value"] == i + 1);
    slowest = std::max(
        slowest, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    served++;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& t : stallers) t.join();

  for (size_t i = 0; i < halves.size(); ++i) {
    BOOST_TEST_CONTEXT("staller " << i) {
      BOOST_TEST(results[i].connected);
      BOOST_TEST(results[i].closed_by_peer, "not timed out within " << kPatience.count() << " s");
      BOOST_TEST(results[i].response.empty(), results[i].response.substr(0, 200));
      BOOST_TEST_MESSAGE("staller " << i << " closed after " << closed_after[i] << " s");
    }
  }
  BOOST_TEST(served > 50, "only " << served << " requests served while clients stalled");
  BOOST_TEST(slowest < 2.0, "slowest request took " << slowest << " s while clients stalled");
  BOOST_TEST(Call("GET", "/v1/kv/stall/a").status == 404);
  BOOST_TEST(Call("GET", "/v1/kv/stall/b").status == 404);
}

BOOST_AUTO_TEST_CASE(abuse_then_restart_loses_nothing) {
  // A bit of everything, then a clean restart.
  Expect400("PUT", "/v1/kv/x", "{", kJson);
  Expect400("PUT", "/v1/kv/x", Bytes({0xc1}), kMsgpack);
  RawResult r = RawExchange(node.port(),
                            "PUT /v1/kv/x HTTP/1.1\r\nHost: h\r\nContent-Length: 104857600\r\n\r\n",
                            std::chrono::seconds(10), std::string(1 << 20, 'z'), 100);
  BOOST_TEST(r.status == 413);
  BOOST_REQUIRE(node.Stop());
  BOOST_REQUIRE(node.Start());
  // The destructor compares the seed data after the restart.
}

BOOST_AUTO_TEST_SUITE_END()
