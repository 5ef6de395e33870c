// Live text over WebSocket (issue 8): GET /v1/stream/text/{key} on real
// meridiand processes in two regions, with a real WebSocket client
// (Boost.Beast) holding a C++ replica of the text.
//
// - hello: an agent id of this node's, the whole text, region, faults and
//   the other regions' nodes;
// - a client's own edits (a Text delta in the wire form) are acknowledged,
//   reach the other editors of its node and of the other region, and are
//   never sent back to it; HTTP writes reach every editor;
// - who is connected, when editors come and go;
// - bad input: a refused message leaves the socket open and nothing
//   written; not an upgrade is 426; a key of another type is refused;
// - a client that stops reading is dropped (bounded memory) and a new
//   connection resyncs from its hello.
//
// Every wait is bounded.
#define BOOST_TEST_MODULE text_stream
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "crdt/text.h"
#include "node/http_client.h"
#include "node/operation.h"
#include "tests/node/cluster_process.h"
#include "tests/node/node_process.h"
#include "tests/support/wait_for.h"

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using meridian::crdt::ReplicaId;
using meridian::crdt::Text;
using meridian::node::Base64Url;
using meridian::node::ClientResponse;
using meridian::node::EncodeKeyForPath;
using meridian::node::UnBase64Url;
using meridian::testing::ClusterOptions;
using meridian::testing::ClusterProcess;
using meridian::testing::NodeProcess;
using meridian::testing::WaitFor;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kMessage{10000};
constexpr milliseconds kQuiet{400};

// A WebSocket client with a C++ replica of the streamed text.
class Editor {
 public:
  // `small_buffer`: a 4 KiB socket receive buffer (no autotuning), for a
  // client that is meant to fall behind.
  Editor(uint16_t port, const std::string& key, bool small_buffer = false) {
    net::ip::tcp::endpoint ep(net::ip::make_address("127.0.0.1"), port);
    auto& sock = beast::get_lowest_layer(ws_).socket();
    sock.open(ep.protocol());
    if (small_buffer) sock.set_option(net::socket_base::receive_buffer_size(4096));
    sock.connect(ep);
    ws_.handshake("127.0.0.1:" + std::to_string(port),
                  "/v1/stream/text/" + EncodeKeyForPath(key));
  }

  // The next message within `timeout`; false when none came (or the
  // socket closed: *closed).
  bool Read(json* out, milliseconds timeout = kMessage, bool* closed = nullptr) {
    if (closed) *closed = false;
    if (!pending_) {
      pending_ = true;
      done_ = false;
      ws_.async_read(buf_, [this](beast::error_code ec, std::size_t) {
        done_ = true;
        pending_ = false;
        ec_ = ec;
      });
    }
    ioc_.restart();
    ioc_.run_for(timeout);
    if (!done_) return false;
    done_ = false;
    if (ec_) {
      if (closed) *closed = true;
      return false;
    }
    *out = json::parse(beast::buffers_to_string(buf_.data()));
    buf_.consume(buf_.size());
    return true;
  }

  // Reads until a message of `type` (applying ops and noting sessions
  // on the way); false after `timeout`.
  bool ReadUntil(const std::string& type, json* out = nullptr, milliseconds timeout = kMessage) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      json m;
      if (!Read(&m, left)) return false;
      Take(m);
      if (m["type"] == type) {
        if (out) *out = m;
        return true;
      }
    }
  }

  // Applies what a server message carries to the replica.
  void Take(const json& m) {
    messages.push_back(m);
    if (m["type"] == "hello") {
      agent.node = m["agent"]["node"].get<std::string>();
      agent.incarnation = std::stoull(m["agent"]["incarnation"].get<std::string>());
      Text t = Decode(m["state"].get<std::string>());
      text.Merge(t);
    } else if (m["type"] == "ops") {
      text.Merge(Decode(m["state"].get<std::string>()));
    } else if (m["type"] == "sessions") {
      sessions = m["sessions"];
    }
  }

  // Reads whatever arrives within `quiet` (applying it).
  void Drain(milliseconds quiet = kQuiet) {
    json m;
    while (Read(&m, quiet)) Take(m);
  }

  void Send(const std::string& message) {
    ws_.text(true);
    ws_.write(net::buffer(message));
  }

  // Types `s` at `pos` and sends the delta as message `seq`.
  void Type(uint64_t pos, const std::string& s, uint64_t seq) {
    Text delta;
    BOOST_REQUIRE(text.Insert(agent, pos, s, &delta).ok());
    SendDelta(delta, seq);
  }
  void Erase(uint64_t pos, uint64_t len, uint64_t seq) {
    Text delta;
    BOOST_REQUIRE(text.Delete(agent, pos, len, &delta).ok());
    SendDelta(delta, seq);
  }
  void SendDelta(const Text& delta, uint64_t seq) {
    Send(json{{"type", "ops"}, {"seq", seq}, {"state", Base64Url(delta.Encode())}}.dump());
  }

  static Text Decode(const std::string& b64) {
    std::string bytes;
    BOOST_REQUIRE_MESSAGE(UnBase64Url(b64, &bytes), "state is not base64url");
    Text t;
    auto st = Text::Decode(bytes, &t);
    BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
    return t;
  }

  Text text;
  ReplicaId agent;
  json sessions = json::array();
  std::vector<json> messages;

 private:
  net::io_context ioc_;
  websocket::stream<beast::tcp_stream> ws_{ioc_};
  beast::flat_buffer buf_;
  bool pending_ = false, done_ = false;
  beast::error_code ec_;
};

struct Cluster {
  Cluster() : cluster(Options()) {
    BOOST_REQUIRE(cluster.Start());
    BOOST_REQUIRE(cluster.WaitWritable(milliseconds(15000)));
  }
  static ClusterOptions Options() {
    ClusterOptions o;
    o.regions = 2;
    o.args_for_all = {"--enable-fault-injection"};
    return o;
  }
  ClientResponse Call(int i, const std::string& method, const std::string& target,
                      const std::string& body = "") {
    ClientResponse res;
    auto st = cluster.Client(i)->Request(method, target, body,
                                         {{"Content-Type", "application/json"}}, &res);
    BOOST_REQUIRE_MESSAGE(st.ok(), method << " " << target << ": " << st.ToString());
    return res;
  }
  std::string Content(int i, const std::string& key) {
    ClientResponse r = Call(i, "GET", "/v1/text/" + EncodeKeyForPath(key));
    BOOST_REQUIRE_EQUAL(r.status, 200);
    return json::parse(r.body)["value"].get<std::string>();
  }
  json Status(int i) { return json::parse(Call(i, "GET", "/v1/status").body); }
  ClusterProcess cluster;
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(editors_in_two_regions, Cluster) {
  const std::string key = "doc/live ü";
  Editor a(cluster.http_port(0), key);
  json hello;
  BOOST_REQUIRE(a.ReadUntil("hello", &hello));
  BOOST_TEST(hello["key"] == key);
  BOOST_TEST(hello["region"] == cluster.region(0));
  BOOST_TEST(hello["node"] == cluster.node_id(0));
  BOOST_TEST(hello["faults"] == true);
  BOOST_TEST(hello["others"] == json::array({cluster.node_id(1)}));
  BOOST_TEST(a.agent.node.rfind(cluster.node_id(0) + "~", 0) == 0);
  const std::string replica = Status(0)["replica"].get<std::string>();
  BOOST_TEST(replica == cluster.node_id(0) + "#" + std::to_string(a.agent.incarnation));
  BOOST_TEST(a.text.Content().empty());
  json sessions;
  BOOST_REQUIRE(a.ReadUntil("sessions", &sessions));
  BOOST_TEST(sessions["sessions"].size() == 1u);

  // A second editor here: both are told; it gets another agent.
  Editor b(cluster.http_port(0), key);
  BOOST_REQUIRE(b.ReadUntil("hello"));
  BOOST_TEST(b.agent.node != a.agent.node);
  BOOST_REQUIRE(a.ReadUntil("sessions", &sessions));
  BOOST_TEST(sessions["sessions"].size() == 2u);
  Editor c(cluster.http_port(1), key);
  BOOST_REQUIRE(c.ReadUntil("hello"));
  // Presence crosses regions (through the replicated presence registers).
  auto lists = [](const json& sessions, const std::string& agent, const std::string& region) {
    for (const json& e : sessions) {
      if (e["agent"] == agent && e["region"] == region) return true;
    }
    return false;
  };
  BOOST_REQUIRE_MESSAGE(WaitFor([&] {
    a.Drain(milliseconds(50));
    c.Drain(milliseconds(50));
    return lists(a.sessions, c.agent.node, cluster.region(1)) &&
           lists(c.sessions, a.agent.node, cluster.region(0)) &&
           lists(c.sessions, b.agent.node, cluster.region(0)) && a.sessions.size() == 3u;
  }, milliseconds(15000)), "presence: a sees " << a.sessions.dump() << ", c sees " << c.sessions.dump());

  // A types: acknowledged, and B and C (the other region) get it.
  a.Type(0, "héllo 👋", 1);
  json ack;
  BOOST_REQUIRE(a.ReadUntil("ack", &ack));
  BOOST_TEST(ack["seq"] == 1);
  BOOST_REQUIRE(b.ReadUntil("ops"));
  BOOST_TEST(b.text.Content() == "héllo 👋");
  BOOST_REQUIRE(WaitFor([&] {
    c.Drain(milliseconds(100));
    return c.text.Content() == "héllo 👋";
  }, milliseconds(15000)));

  // Concurrent edits on both sides, one of them a delete.
  b.Type(5, ", world", 1);
  c.Erase(0, 1, 1);
  c.Type(0, "H", 2);
  BOOST_REQUIRE(b.ReadUntil("ack"));
  BOOST_REQUIRE(c.ReadUntil("ack"));
  // And an HTTP write in region 1.
  ClientResponse w = Call(1, "POST", "/v1/text/" + EncodeKeyForPath(key),
                          json{{"ops", json::array({{{"insert", {{"pos", 0}, {"text", ">> "}}}}})}}.dump());
  BOOST_REQUIRE_MESSAGE(w.status == 200, w.body);
  std::vector<Editor*> all = {&a, &b, &c};
  std::string expect;
  BOOST_REQUIRE_MESSAGE(WaitFor([&] {
    for (Editor* e : all) e->Drain(milliseconds(50));
    expect = Content(0, key);
    if (Content(1, key) != expect) return false;
    for (Editor* e : all) {
      if (e->text.Content() != expect) return false;
    }
    return true;
  }, milliseconds(20000)), "editors did not converge: a='" << a.text.Content() << "' b='"
                                                           << b.text.Content() << "' c='"
                                                           << c.text.Content() << "' node0='"
                                                           << Content(0, key) << "'");
  BOOST_TEST(expect == ">> Héllo, world 👋");
  BOOST_TEST(a.text.Encode() == c.text.Encode());

  // Nobody was sent its own edits: every ops message A got names dots of
  // others only.
  for (const json& m : a.messages) {
    if (m["type"] != "ops") continue;
    Text d = Editor::Decode(m["state"].get<std::string>());
    const meridian::crdt::TextVersion dots = d.Dots();
    for (const auto& [r, ranges] : dots.ranges()) BOOST_TEST(r.node != a.agent.node);
  }
}

BOOST_FIXTURE_TEST_CASE(presence_and_bad_input, Cluster) {
  const std::string key = "doc/bad";
  Editor a(cluster.http_port(0), key);
  BOOST_REQUIRE(a.ReadUntil("hello"));
  {
    Editor b(cluster.http_port(0), key);
    BOOST_REQUIRE(b.ReadUntil("hello"));
    json s;
    BOOST_REQUIRE(a.ReadUntil("sessions", &s));
    BOOST_REQUIRE(WaitFor([&] {
      a.Drain(milliseconds(50));
      return a.sessions.size() == 2u;
    }, milliseconds(5000)));
  }
  BOOST_REQUIRE(WaitFor([&] {
    a.Drain(milliseconds(50));
    return a.sessions.size() == 1u;
  }, milliseconds(5000)));

  // Refused messages: an error each, nothing written, the socket open.
  const std::vector<std::pair<std::string, json>> bad = {
      {"not json", nullptr},
      {R"({"type":"ops","seq":1})", 1},
      {R"({"type":"ops","seq":2,"state":"***"})", 2},
      {R"({"type":"ops","seq":3,"state":")" + Base64Url("\x01garbage") + "\"}", 3},
      {R"({"type":"nope","seq":4,"state":""})", 4},
      {R"([1,2,3])", nullptr},
  };
  for (const auto& [message, seq] : bad) {
    a.Send(message);
    json err;
    BOOST_REQUIRE_MESSAGE(a.ReadUntil("error", &err), message);
    BOOST_TEST(err["seq"] == seq, message);
    BOOST_TEST(err["code"] == "bad_request", message);
    BOOST_TEST(!err["message"].get<std::string>().empty());
  }
  BOOST_TEST(Content(0, key).empty());
  a.Type(0, "still here", 5);
  json ack;
  BOOST_REQUIRE(a.ReadUntil("ack", &ack));
  BOOST_TEST(ack["seq"] == 5);
  BOOST_TEST(Content(0, key) == "still here");

  // Not an upgrade: 426. Another type's key: an error, then closed.
  ClientResponse r = Call(0, "GET", "/v1/stream/text/" + EncodeKeyForPath(key));
  BOOST_TEST(r.status == 426);
  BOOST_TEST(json::parse(r.body)["error"] == "upgrade_required");
  BOOST_REQUIRE_EQUAL(Call(0, "POST", "/v1/counter/a-counter", R"({"add": 1})").status, 200);
  Editor x(cluster.http_port(0), "a-counter");
  json m;
  BOOST_REQUIRE(x.Read(&m));
  BOOST_TEST(m["type"] == "error");
  BOOST_TEST(m["code"] == "type_mismatch");
  bool closed = false;
  BOOST_TEST(!x.Read(&m, kMessage, &closed));
  BOOST_TEST(closed);
  // A bad key is 400 before any upgrade.
  BOOST_TEST(Call(0, "GET", "/v1/stream/text/%zz").status == 400);
}

// One node without peers: the load here would otherwise delay heartbeats
// enough for the clock-skew gate to shut on a busy machine.
struct OneNode {
  OneNode() { BOOST_REQUIRE(node.Start()); }
  ClientResponse Call(int, const std::string& method, const std::string& target,
                      const std::string& body = "") {
    ClientResponse res;
    auto st = node.Client()->Request(method, target, body,
                                     {{"Content-Type", "application/json"}}, &res);
    BOOST_REQUIRE_MESSAGE(st.ok(), method << " " << target << ": " << st.ToString());
    return res;
  }
  json Status(int i) { return json::parse(Call(i, "GET", "/v1/status").body); }
  NodeProcess node;
};

BOOST_FIXTURE_TEST_CASE(slow_client_dropped_then_resyncs, OneNode) {
  const std::string key = "doc/slow";
  Editor slow(node.port(), key, /*small_buffer=*/true);
  json hello;
  BOOST_REQUIRE(slow.ReadUntil("hello", &hello));
  // The slow client reads nothing more. Each round inserts 64 KiB of
  // hard-to-pack text and, a moment later (once the insert has streamed:
  // the node sends the latest state's delta), deletes it again, so the
  // document stays small while the inserts stream to the client in full.
  std::mt19937 rng(7);
  const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const std::string target = "/v1/text/" + EncodeKeyForPath(key);
  bool dropped = false;
  for (int round = 0; round < 600 && !dropped; ++round) {
    std::string chunk(64 << 10, 'x');
    for (char& ch : chunk) ch = alphabet[rng() % alphabet.size()];
    ClientResponse w = Call(0, "POST", target,
                            json{{"ops", json::array({{{"insert", {{"pos", 0}, {"text", chunk}}}}})}}.dump());
    BOOST_REQUIRE_MESSAGE(w.status == 200, w.body);
    std::this_thread::sleep_for(milliseconds(10));
    w = Call(0, "POST", target, json{{"ops", json::array({{{"delete", {{"pos", 0}, {"len", chunk.size()}}}}})}}.dump());
    BOOST_REQUIRE_MESSAGE(w.status == 200, w.body);
    if (round % 10 == 9) dropped = Status(0)["text_streams"]["dropped_slow"].get<uint64_t>() >= 1;
  }
  BOOST_REQUIRE_MESSAGE(WaitFor([&] {
    return Status(0)["text_streams"]["dropped_slow"].get<uint64_t>() >= 1;
  }, milliseconds(10000)), "the slow client was never dropped");
  BOOST_TEST(Status(0)["text_streams"]["open"] == 0);
  // The dropped client reads what the kernel buffered, then the end.
  bool closed = false;
  json m;
  BOOST_REQUIRE(WaitFor([&] { return !slow.Read(&m, milliseconds(2000), &closed) && closed; },
                        milliseconds(60000)));
  // A new connection resyncs: the whole text (empty, with every tombstone).
  ClientResponse w = Call(0, "POST", target, json{{"ops", json::array({{{"insert", {{"pos", 0}, {"text", "after"}}}}})}}.dump());
  BOOST_REQUIRE_EQUAL(w.status, 200);
  Editor again(node.port(), key);
  BOOST_REQUIRE(again.ReadUntil("hello"));
  BOOST_TEST(again.text.Content() == "after");
  BOOST_TEST(Status(0)["text_streams"]["open"] == 1);
}
