// The write path's fast paths against their slow twins:
// RenderReadText (node/operation.h) must give exactly the text of
// RenderRead's JSON dumped the way the watch feed dumped it, for registers
// holding every kind of value (strings with control characters, non-ASCII
// and invalid UTF-8, integers at every msgpack width, floats, containers,
// malformed bytes), other types and deleted keys; text edits apply and
// render (operation.h: ApplyOperation, RenderRead, RenderText); and EventStream
// (node/http_server.h) must deliver every pushed chunk in order while
// waking its session only when its queue turns non-empty.
#define BOOST_TEST_MODULE render
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <limits>
#include <optional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "crdt/envelope.h"
#include "crdt/mvregister.h"
#include "crdt/register.h"
#include "crdt/text.h"
#include "node/http_server.h"
#include "node/operation.h"

namespace meridian::node {
namespace {

using nlohmann::json;

const crdt::ReplicaId kMe{"us-east-1", 117681758068854538ull};

// The slow path as PublishChange used it before RenderReadText existed.
bool SlowText(const std::string& key, const crdt::Envelope& env, std::string* out) {
  json r;
  int http = 0;
  std::string context;
  ApiError err;
  if (!RenderRead(key, env, &r, &http, &context, &err)) return false;
  *out = r.dump(-1, ' ', false, json::error_handler_t::replace);
  return true;
}

crdt::Envelope Put(const std::string& key, const std::string& value_bytes, uint8_t type,
                   crdt::Hlc now) {
  Operation op;
  op.kind = Operation::Kind::kPut;
  op.key = key;
  op.kv = true;
  op.type = type;
  op.value = value_bytes;
  crdt::Envelope next, delta;
  ApiError err;
  BOOST_REQUIRE_MESSAGE(ApplyOperation(op, crdt::Envelope(), kMe, now, &next, &delta, &err),
                        err.message);
  return next;
}

void ExpectSame(const std::string& key, const crdt::Envelope& env) {
  std::string fast, slow;
  ApiError err;
  const bool fast_ok = RenderReadText(key, env, &fast, &err);
  const bool slow_ok = SlowText(key, env, &slow);
  BOOST_REQUIRE_EQUAL(fast_ok, slow_ok);
  if (fast_ok) BOOST_REQUIRE_EQUAL(fast, slow);
}

std::string Msgpack(const json& v) { return ValueToBytes(v); }

BOOST_AUTO_TEST_CASE(register_values_of_every_kind_render_like_nlohmann) {
  std::vector<json> values = {
      json("plain"), json(""), json(std::string(100, 'x')), json("quote \" backslash \\ slash /"),
      json("tab\tnl\ncr\rbs\bff\f"), json(std::string("nul\0x\x01\x1f\x7f", 9)),
      json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), json("bad \xff utf8"),
      json("truncated \xe2\x82"), json("surrogate \xed\xa0\x80"), json("overlong \xc0\xaf"),
      json(std::string(40, 'y')), json(std::string(300, 'z')), json(std::string(70000, 'w')),
      json(nullptr), json(true), json(false), json(0), json(1), json(127), json(128), json(255),
      json(256), json(65535), json(65536), json(4294967295ull), json(4294967296ull),
      json(std::numeric_limits<uint64_t>::max()), json(-1), json(-32), json(-33), json(-128),
      json(-129), json(-32768), json(-32769), json(-2147483648ll), json(-2147483649ll),
      json(std::numeric_limits<int64_t>::min()), json(1.5), json(-0.25), json(1e300),
      json::array({1, "a", nullptr}), json::object({{"b", 1}, {"a", "x"}}), json::array()};
  crdt::Hlc hlc = 1;
  for (const json& v : values) {
    for (const std::string key : {"k", "weird \"key\"\n", "caf\xc3\xa9", "bad\xfe"}) {
      ExpectSame(key, Put(key, Msgpack(v), crdt::Register::kTag, hlc++ << 20));
    }
  }
  // Hand-made msgpack the JSON library would not write: non-shortest
  // widths, binary, floats, and malformed or trailing bytes.
  const std::vector<std::string> raw = {
      std::string("\xd0\x05", 2), std::string("\xd1\xff\xfe", 3),
      std::string("\xcc\x01", 2), std::string("\xd9\x03" "abc", 5),
      std::string("\xda\x00\x02" "hi", 5), std::string("\xdb\x00\x00\x00\x01" "!", 6),
      std::string("\xc4\x01x", 3), std::string("\xca\x3f\x80\x00\x00", 5),
      std::string("\xa3" "ab", 3), std::string("\xa1" "ab", 3), std::string("\xc0\xc0", 2),
      std::string("\xc3\x00", 2), std::string("\x05\x05", 2), std::string("\xcd\x01", 2),
      std::string("\xd9", 1), std::string("\xc1", 1), std::string(), std::string("\x91\x01", 2)};
  for (const std::string& bytes : raw) {
    ExpectSame("k", Put("k", bytes, crdt::Register::kTag, hlc++));
  }
}

BOOST_AUTO_TEST_CASE(random_values_render_like_nlohmann) {
  std::mt19937_64 rng(42);
  const std::string alphabet =
      std::string("ab\"\\/\t\n\x01\x1f\x7f ", 12) + "\xc3\xa9\xe2\x82\xac\xff";
  for (int i = 0; i < 3000; ++i) {
    std::string bytes;
    const int shape = static_cast<int>(rng() % 4);
    if (shape == 0) {  // a random string value
      std::string s;
      const size_t n = rng() % 40;
      for (size_t k = 0; k < n; ++k) s.push_back(alphabet[rng() % alphabet.size()]);
      bytes = Msgpack(json(s));
    } else if (shape == 1) {  // a random integer
      const uint64_t u = rng() >> (rng() % 64);
      bytes = Msgpack(rng() % 2 ? json(u) : json(-static_cast<int64_t>(u >> 1) - 1));
    } else {  // random bytes
      const size_t n = rng() % 12;
      for (size_t k = 0; k < n; ++k) bytes.push_back(static_cast<char>(rng()));
    }
    ExpectSame("key-" + std::to_string(i), Put("key-" + std::to_string(i), bytes,
                                               crdt::Register::kTag, 1 + rng() % (1ull << 50)));
  }
}

BOOST_AUTO_TEST_CASE(other_types_and_deleted_keys_take_the_general_path) {
  // An mvregister (not a register) and a deleted register.
  ExpectSame("mv", Put("mv", Msgpack(json("v")), crdt::MvRegister::kTag, 7 << 20));
  crdt::Envelope env = Put("gone", Msgpack(json("v")), crdt::Register::kTag, 7 << 20);
  Operation del;
  del.kind = Operation::Kind::kDelete;
  del.key = "gone";
  del.kv = true;
  del.type = crdt::Register::kTag;
  crdt::Envelope next, delta;
  ApiError err;
  BOOST_REQUIRE(ApplyOperation(del, env, kMe, 8 << 20, &next, &delta, &err));
  std::string text;
  BOOST_CHECK(!RenderReadText("gone", next, &text, &err));
  BOOST_CHECK_EQUAL(err.http, 404);
  BOOST_CHECK(!RenderReadText("none", crdt::Envelope(), &text, &err));
  // The register's text is the read shape itself.
  BOOST_REQUIRE(RenderReadText("k", Put("k", Msgpack(json("v")), crdt::Register::kTag, 5 << 20),
                               &text, &err));
  json parsed = json::parse(text);
  BOOST_CHECK_EQUAL(parsed["value"], "v");
  BOOST_CHECK_EQUAL(parsed["type"], "register");
  BOOST_CHECK_EQUAL(parsed["writer"], kMe.ToString());
  BOOST_CHECK_EQUAL(parsed["hlc"].get<uint64_t>(), 5u << 20);
}

Operation TextEdit(const std::string& key, std::vector<crdt::TextEdit> edits,
                   std::optional<crdt::TextVersion> at = std::nullopt) {
  Operation op;
  op.kind = Operation::Kind::kTextEdit;
  op.key = key;
  op.type = crdt::Text::kTag;
  op.text_edits = std::move(edits);
  op.text_at = std::move(at);
  return op;
}

crdt::TextEdit Ins(uint64_t pos, std::string text) {
  crdt::TextEdit e;
  e.insert = true;
  e.pos = pos;
  e.text = std::move(text);
  return e;
}

crdt::TextEdit Del(uint64_t pos, uint64_t len) {
  crdt::TextEdit e;
  e.insert = false;
  e.pos = pos;
  e.len = len;
  return e;
}

BOOST_AUTO_TEST_CASE(text_edits_apply_and_render) {
  // A never-written key renders as the empty text at the empty version.
  json r;
  ApiError err;
  BOOST_REQUIRE(RenderText("t", nullptr, &r, &err));
  BOOST_CHECK_EQUAL(r["value"], "");
  BOOST_CHECK_EQUAL(r["length"], 0);
  BOOST_CHECK_EQUAL(r["version"], EncodeTextVersion(crdt::TextVersion()));
  crdt::TextVersion empty;
  BOOST_REQUIRE(DecodeTextVersion(r["version"].get<std::string>(), &empty));
  BOOST_CHECK(empty.empty());
  BOOST_CHECK(!DecodeTextVersion("", &empty));
  BOOST_CHECK(!DecodeTextVersion("@@", &empty));

  crdt::Envelope env, next, delta;
  BOOST_REQUIRE_MESSAGE(ApplyOperation(TextEdit("t", {Ins(0, "h\xc3\xa9llo"), Ins(5, "!")}), env,
                                       kMe, 1 << 20, &next, &delta, &err),
                        err.message);
  env = next;
  int http = 0;
  std::string context;
  BOOST_REQUIRE(RenderRead("t", env, &r, &http, &context, &err));
  BOOST_CHECK_EQUAL(http, 200);
  BOOST_CHECK_EQUAL(r["type"], "text");
  BOOST_CHECK_EQUAL(r["value"], "h\xc3\xa9llo!");
  BOOST_CHECK_EQUAL(r["length"], 6);
  const std::string v1 = r["version"];
  // The delta alone holds the edit.
  json d;
  BOOST_REQUIRE(RenderRead("t", delta, &d, &http, &context, &err));
  BOOST_CHECK_EQUAL(d["value"], "h\xc3\xa9llo!");
  ExpectSame("t", env);

  // At v1, after a later edit: positions count what v1 showed.
  BOOST_REQUIRE(ApplyOperation(TextEdit("t", {Ins(0, ">")}), env, kMe, 2 << 20, &next, &delta,
                               &err));
  env = next;
  crdt::TextVersion at;
  BOOST_REQUIRE(DecodeTextVersion(v1, &at));
  BOOST_REQUIRE(ApplyOperation(TextEdit("t", {Del(1, 4), Ins(2, "?")}, at), env, kMe, 3 << 20,
                               &next, &delta, &err));
  env = next;
  BOOST_REQUIRE(RenderRead("t", env, &r, &http, &context, &err));
  BOOST_CHECK_EQUAL(r["value"], ">h!?");

  // Positions past the end: 400 bad_position; a version with dots the
  // state lacks: 409 unknown_version; nothing changes either way.
  BOOST_CHECK(
      !ApplyOperation(TextEdit("t", {Ins(5, "x")}), env, kMe, 4 << 20, &next, &delta, &err));
  BOOST_CHECK_EQUAL(err.http, 400);
  BOOST_CHECK_EQUAL(err.code, "bad_position");
  BOOST_CHECK(!ApplyOperation(TextEdit("t", {Ins(0, "x"), Del(0, 9)}), env, kMe, 4 << 20, &next,
                              &delta, &err));
  BOOST_CHECK_EQUAL(err.code, "bad_position");
  crdt::TextVersion future;
  future.Add(crdt::ReplicaId{"eu-west-1", 3}, 1, 2);
  BOOST_CHECK(!ApplyOperation(TextEdit("t", {Ins(0, "x")}, future), env, kMe, 4 << 20, &next,
                              &delta, &err));
  BOOST_CHECK_EQUAL(err.http, 409);
  BOOST_CHECK_EQUAL(err.code, "unknown_version");

  // Another type's route: 409; a text's delete empties it, and an empty
  // text has no value for the common read.
  Operation put;
  put.kind = Operation::Kind::kPut;
  put.key = "t";
  put.kv = true;
  put.type = crdt::Register::kTag;
  put.value = Msgpack(json(1));
  BOOST_CHECK(!ApplyOperation(put, env, kMe, 5 << 20, &next, &delta, &err));
  BOOST_CHECK_EQUAL(err.code, "type_mismatch");
  Operation del;
  del.kind = Operation::Kind::kDelete;
  del.key = "t";
  del.type = crdt::Text::kTag;
  BOOST_REQUIRE(ApplyOperation(del, env, kMe, 5 << 20, &next, &delta, &err));
  BOOST_CHECK(!RenderRead("t", next, &r, &http, &context, &err));
  BOOST_CHECK_EQUAL(err.http, 404);
  BOOST_REQUIRE(RenderText("t", next.winner(), &r, &err));
  BOOST_CHECK_EQUAL(r["value"], "");
  BOOST_CHECK(r["version"] != v1);
  // A delete of whatever the key holds (batch "del") takes the text's.
  del.type = 0;
  BOOST_REQUIRE(ApplyOperation(del, env, kMe, 5 << 20, &next, &delta, &err));
}

BOOST_AUTO_TEST_CASE(event_stream_wakes_once_per_empty_to_non_empty) {
  EventStream stream(1 << 10);
  int wakes = 0;
  stream.SetWaker([&wakes] { ++wakes; });
  BOOST_CHECK(stream.Push("a"));
  BOOST_CHECK(stream.Push("b"));
  BOOST_CHECK(stream.Push("c"));
  BOOST_CHECK_EQUAL(wakes, 1);  // the session takes all three at once
  std::string got;
  BOOST_CHECK(stream.TakeAll(&got));
  BOOST_CHECK_EQUAL(got, "abc");
  BOOST_CHECK(stream.Push("d"));
  BOOST_CHECK_EQUAL(wakes, 2);
  BOOST_CHECK(stream.TakeAll(&got));
  BOOST_CHECK_EQUAL(got, "d");
  // Too slow: more than the limit queued closes it, and the close wakes.
  BOOST_CHECK(stream.Push(std::string(1000, 'x')));
  BOOST_CHECK_EQUAL(wakes, 3);
  BOOST_CHECK(!stream.Push(std::string(100, 'y')));
  BOOST_CHECK(stream.closed());
  BOOST_CHECK_EQUAL(wakes, 4);
  BOOST_CHECK(!stream.Push("z"));
  BOOST_CHECK(!stream.TakeAll(&got));
  // Close wakes once.
  EventStream other;
  int other_wakes = 0;
  other.SetWaker([&other_wakes] { ++other_wakes; });
  other.Close();
  other.Close();
  BOOST_CHECK_EQUAL(other_wakes, 1);
}

}  // namespace
}  // namespace meridian::node
