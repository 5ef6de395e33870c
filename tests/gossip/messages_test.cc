// The gossip wire format (gossip/messages.h): every message type survives
// a round trip, the bytes have the documented shape, and Decode refuses
// every frame the grammar does not allow.
#define BOOST_TEST_MODULE gossip_messages
#include "gossip/messages.h"

#include <boost/test/unit_test.hpp>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "crdt/causal_context.h"
#include "crdt/codec.h"
#include "crdt/hlc.h"

using namespace meridian;
using namespace meridian::gossip;

namespace {

Header TestHeader() {
  Header h;
  h.cluster = "meridian-test";
  h.protocol = kProtocolVersion;
  h.from = crdt::ReplicaId{"eu-west-1", 1732550400123456};
  h.hlc = crdt::MakeHlc(1732550400123, 7);
  h.wall_ms = 1732550400120;
  return h;
}

std::vector<Message> OneOfEach() {
  std::vector<Message> all;
  Message m;
  m.header = TestHeader();

  m.type = MsgType::kHello;
  m.region = "eu-west";
  all.push_back(m);

  m = Message();
  m.header = TestHeader();
  m.type = MsgType::kWelcome;
  m.applied = 123456789;
  all.push_back(m);

  m = Message();
  m.header = TestHeader();
  m.type = MsgType::kRefuse;
  m.reason = RefuseReason::kClockAhead;
  m.text = "your hlc is 900 ms ahead";
  all.push_back(m);

  m = Message();
  m.header = TestHeader();
  m.type = MsgType::kDeltas;
  m.scope = "";
  m.deltas = {{1, "user/1", std::string("\x01\x02\x00\xff", 4)},
              {2, "user/2", ""},
              {70000, std::string(kMaxKeyBytes, 'k'), std::string(300, '\x7f')}};
  all.push_back(m);

  m = Message();
  m.header = TestHeader();
  m.type = MsgType::kAck;
  m.scope = "eu-only";
  m.seq = 1u << 31;
  all.push_back(m);

  m = Message();
  m.header = TestHeader();
  m.type = MsgType::kPing;
  m.sent_wall_ms = 1732550400120;
  all.push_back(m);

  m = Message();
  m.header = TestHeader();
  m.type = MsgType::kPong;
  m.echo_wall_ms = 1732550400120;
  m.pong_wall_ms = 1732550400999;
  all.push_back(m);
  return all;
}

// A frame built by hand: [header, type, body] where `body` and `header`
// are written by the callbacks.
template <typename H, typename B>
std::string Frame(uint8_t version, H header, uint64_t type, B body) {
  crdt::Encoder e(version);
  e.Array(3);
  header(&e);
  e.Uint(type);
  body(&e);
  return e.Take();
}

void GoodHeader(crdt::Encoder* e, uint64_t protocol = kProtocolVersion,
                const std::string& cluster = "c") {
  e->Array(5);
  e->Str(cluster);
  e->Uint(protocol);
  crdt::EncodeReplica(crdt::ReplicaId{"a", 2}, e);
  e->Uint(3);
  e->Uint(4);
}

void DeltasBody(crdt::Encoder* e, const std::vector<uint64_t>& seqs, const std::string& key = "k") {
  e->Array(2);
  e->Str("");
  e->Array(static_cast<uint32_t>(seqs.size()));
  for (uint64_t s : seqs) {
    e->Array(3);
    e->Uint(s);
    e->Str(key);
    e->Bin("d");
  }
}

std::string DeltasFrame(const std::vector<uint64_t>& seqs, const std::string& key = "k") {
  return Frame(
      kWireVersion, [](crdt::Encoder* e) { GoodHeader(e); },
      static_cast<uint64_t>(MsgType::kDeltas), [&](crdt::Encoder* e) { DeltasBody(e, seqs, key); });
}

void ExpectRefused(const std::string& bytes, const std::string& why_part) {
  Message m;
  Status s = Decode(bytes, &m);
  BOOST_TEST_CONTEXT("expecting a refusal mentioning '" << why_part << "'") {
    BOOST_TEST(!s.ok());
    BOOST_TEST((s.IsCorruption() || s.IsInvalidArgument()), s.ToString());
    BOOST_TEST(s.message().find(why_part) != std::string::npos, s.ToString());
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_type_round_trips) {
  for (const Message& m : OneOfEach()) {
    BOOST_TEST_CONTEXT("type " << TypeName(m.type)) {
      std::string bytes = Encode(m);
      Message back;
      Status s = Decode(bytes, &back);
      BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
      BOOST_TEST((back == m));
      BOOST_TEST(Encode(back) == bytes);  // canonical: same message, same bytes
    }
  }
}

BOOST_AUTO_TEST_CASE(equality_sees_every_field_of_the_type) {
  using Change = std::function<void(Message*)>;
  const std::vector<Change> header_changes = {
      [](Message* m) { m->header.cluster += "x"; },
      [](Message* m) { m->header.protocol++; },
      [](Message* m) { m->header.from.node += "x"; },
      [](Message* m) { m->header.from.incarnation++; },
      [](Message* m) { m->header.hlc++; },
      [](Message* m) { m->header.wall_ms++; },
      [](Message* m) { m->type = m->type == MsgType::kPing ? MsgType::kWelcome : MsgType::kPing; },
  };
  std::map<MsgType, std::vector<Change>> body_changes = {
      {MsgType::kHello, {[](Message* m) { m->region += "x"; }}},
      {MsgType::kWelcome, {[](Message* m) { m->applied++; }}},
      {MsgType::kRefuse,
       {[](Message* m) { m->reason = RefuseReason::kNoHandshake; },
        [](Message* m) { m->text += "x"; }}},
      {MsgType::kDeltas,
       {[](Message* m) { m->scope += "x"; }, [](Message* m) { m->deltas.pop_back(); },
        [](Message* m) { m->deltas[1].seq++; }, [](Message* m) { m->deltas[1].key += "x"; },
        [](Message* m) { m->deltas[1].delta = "z"; }}},
      {MsgType::kAck, {[](Message* m) { m->scope += "x"; }, [](Message* m) { m->seq++; }}},
      {MsgType::kPing, {[](Message* m) { m->sent_wall_ms++; }}},
      {MsgType::kPong,
       {[](Message* m) { m->echo_wall_ms++; }, [](Message* m) { m->pong_wall_ms++; }}},
  };
  for (const Message& m : OneOfEach()) {
    std::vector<Change> changes = header_changes;
    for (const Change& c : body_changes[m.type]) changes.push_back(c);
    for (size_t i = 0; i < changes.size(); ++i) {
      BOOST_TEST_CONTEXT(TypeName(m.type) << " change " << i) {
        Message other = m;
        changes[i](&other);
        BOOST_TEST(!(other == m));
        // What is sent tells the difference too.
        BOOST_TEST(Encode(other) != Encode(m));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(fields_of_other_types_are_not_encoded) {
  Message m;
  m.header = TestHeader();
  m.type = MsgType::kPing;
  m.sent_wall_ms = 5;
  Message noisy = m;
  noisy.region = "should not travel";
  noisy.deltas = {{1, "k", "d"}};
  noisy.seq = 99;
  BOOST_TEST(Encode(noisy) == Encode(m));
  Message back;
  BOOST_REQUIRE(Decode(Encode(noisy), &back).ok());
  BOOST_TEST(back.region.empty());
  BOOST_TEST(back.deltas.empty());
  BOOST_TEST((back == noisy));  // only the Ping's fields are compared
}

// The exact bytes of one small message, written out by hand from the
// grammar in messages.h: a change of the format shows up here.
BOOST_AUTO_TEST_CASE(golden_shape_of_a_ping_and_an_ack) {
  Message m;
  m.header.cluster = "c";
  m.header.protocol = 1;
  m.header.from = crdt::ReplicaId{"a", 2};
  m.header.hlc = 3;
  m.header.wall_ms = 4;
  m.type = MsgType::kPing;
  m.sent_wall_ms = 5;
  // clang-format off
  std::string bytes = Encode(m);
  BOOST_TEST(static_cast<uint8_t>(bytes[0]) == kWireVersion);
  // version, [ [ "c", 1, ["a", 2], 3, 4 ], 6, [5] ]
  BOOST_TEST(crdt::ToHex(bytes) == "01" "93" "95" "a163" "01" "92a16102" "03" "04" "06" "9105");

  m.type = MsgType::kAck;
  m.scope = "s";
  m.seq = 300;
  // ..., 5, ["s", 300 as uint16]
  BOOST_TEST(crdt::ToHex(Encode(m)) ==
             "01" "93" "95" "a163" "01" "92a16102" "03" "04" "05" "92" "a173" "cd012c");

  Message d;
  d.header = m.header;
  d.type = MsgType::kDeltas;
  d.deltas = {{1, "k", "\x09"}};
  // ..., 4, ["", [[1, "k", bin "\x09"]]]
  BOOST_TEST(crdt::ToHex(Encode(d)) ==
             "01" "93" "95" "a163" "01" "92a16102" "03" "04" "04" "92" "a0" "91" "93" "01" "a16b"
             "c40109");
  // clang-format on
}

BOOST_AUTO_TEST_CASE(wire_numbers_are_fixed) {
  BOOST_TEST(kWireVersion == 1);
  BOOST_TEST(static_cast<int>(MsgType::kHello) == 1);
  BOOST_TEST(static_cast<int>(MsgType::kPong) == 7);
  BOOST_TEST(static_cast<int>(RefuseReason::kWrongCluster) == 1);
  BOOST_TEST(static_cast<int>(RefuseReason::kClockAhead) == 5);
  BOOST_TEST(std::string(TypeName(MsgType::kDeltas)) == "deltas");
  BOOST_TEST(std::string(ReasonName(RefuseReason::kNoHandshake)) == "no_handshake");
}

BOOST_AUTO_TEST_CASE(refuses_wrong_version_byte) {
  std::string bytes = Encode(OneOfEach()[0]);
  bytes[0] = static_cast<char>(kWireVersion + 1);
  ExpectRefused(bytes, "version");
  ExpectRefused("", "version");
}

BOOST_AUTO_TEST_CASE(refuses_unknown_type_and_reason) {
  auto body = [](crdt::Encoder* e) {
    e->Array(1);
    e->Uint(5);
  };
  auto hdr = [](crdt::Encoder* e) { GoodHeader(e); };
  ExpectRefused(Frame(kWireVersion, hdr, 0, body), "unknown message type 0");
  ExpectRefused(Frame(kWireVersion, hdr, 8, body), "unknown message type 8");
  ExpectRefused(Frame(kWireVersion, hdr, 1u << 20, body), "unknown message type");
  // The same body under a known type decodes.
  Message m;
  BOOST_TEST(Decode(Frame(kWireVersion, hdr, 6, body), &m).ok());

  auto refuse = [](uint64_t reason) {
    return [reason](crdt::Encoder* e) {
      e->Array(2);
      e->Uint(reason);
      e->Str("why");
    };
  };
  ExpectRefused(Frame(kWireVersion, hdr, 3, refuse(0)), "unknown refusal reason 0");
  ExpectRefused(Frame(kWireVersion, hdr, 3, refuse(6)), "unknown refusal reason 6");
  BOOST_TEST(Decode(Frame(kWireVersion, hdr, 3, refuse(5)), &m).ok());
  BOOST_TEST((m.reason == RefuseReason::kClockAhead));
}

BOOST_AUTO_TEST_CASE(refuses_bad_delta_sequences) {
  Message m;
  BOOST_TEST(Decode(DeltasFrame({1, 2, 9}), &m).ok());
  BOOST_TEST(m.deltas.size() == 3u);
  ExpectRefused(DeltasFrame({0, 1}), "seq 0");
  ExpectRefused(DeltasFrame({3, 2}), "not strictly ascending");
  ExpectRefused(DeltasFrame({2, 2}), "not strictly ascending");
  ExpectRefused(DeltasFrame({1, 5, 4}), "not strictly ascending");
  // An empty Deltas is well-formed (nothing to apply).
  BOOST_TEST(Decode(DeltasFrame({}), &m).ok());
}

BOOST_AUTO_TEST_CASE(refuses_trailing_bytes) {
  for (const Message& m : OneOfEach()) {
    std::string bytes = Encode(m) + std::string(1, '\0');
    ExpectRefused(bytes, "trailing");
  }
}

BOOST_AUTO_TEST_CASE(refuses_oversized_and_empty_strings) {
  Message base;
  base.header = TestHeader();

  Message m = base;
  m.type = MsgType::kHello;
  m.header.cluster = std::string(kMaxClusterBytes, 'c');
  Message back;
  BOOST_TEST(Decode(Encode(m), &back).ok());
  m.header.cluster += "c";
  ExpectRefused(Encode(m), "cluster name");

  m = base;
  m.type = MsgType::kHello;
  m.region = std::string(kMaxRegionBytes, 'r');
  BOOST_TEST(Decode(Encode(m), &back).ok());
  m.region += "r";
  ExpectRefused(Encode(m), "region name");

  m = base;
  m.type = MsgType::kAck;
  m.scope = std::string(kMaxScopeBytes, 's');
  BOOST_TEST(Decode(Encode(m), &back).ok());
  m.scope += "s";
  ExpectRefused(Encode(m), "scope");

  m = base;
  m.type = MsgType::kDeltas;
  m.scope = std::string(kMaxScopeBytes + 1, 's');
  m.deltas = {{1, "k", "d"}};
  ExpectRefused(Encode(m), "scope");

  ExpectRefused(DeltasFrame({1}, std::string(kMaxKeyBytes + 1, 'k')), "delta key");
  ExpectRefused(DeltasFrame({1}, ""), "delta key");

  m = base;
  m.header.from.node = std::string(crdt::kMaxNodeIdBytes + 1, 'n');
  m.type = MsgType::kPing;
  ExpectRefused(Encode(m), "node id");
  m.header.from.node = "";
  ExpectRefused(Encode(m), "node id");
}

BOOST_AUTO_TEST_CASE(refusal_text_is_cut_to_the_limit_and_long_text_refused) {
  Message m;
  m.header = TestHeader();
  m.type = MsgType::kRefuse;
  m.text = std::string(kMaxTextBytes + 50, 't');
  Message back;
  BOOST_REQUIRE(Decode(Encode(m), &back).ok());
  BOOST_TEST(back.text == std::string(kMaxTextBytes, 't'));

  std::string long_text = Frame(
      kWireVersion, [](crdt::Encoder* e) { GoodHeader(e); }, 3,
      [](crdt::Encoder* e) {
        e->Array(2);
        e->Uint(1);
        e->Str(std::string(kMaxTextBytes + 1, 't'));
      });
  ExpectRefused(long_text, "refusal text");
}

BOOST_AUTO_TEST_CASE(refuses_wrong_shapes) {
  auto hdr = [](crdt::Encoder* e) { GoodHeader(e); };
  auto ping = [](crdt::Encoder* e) {
    e->Array(1);
    e->Uint(1);
  };
  // Body with a missing or an extra field.
  ExpectRefused(Frame(kWireVersion, hdr, 7, ping), "fields");
  ExpectRefused(Frame(kWireVersion, hdr, 6,
                      [](crdt::Encoder* e) {
                        e->Array(2);
                        e->Uint(1);
                        e->Uint(2);
                      }),
                "fields");
  // A string where a number belongs.
  ExpectRefused(Frame(kWireVersion, hdr, 6,
                      [](crdt::Encoder* e) {
                        e->Array(1);
                        e->Str("1");
                      }),
                "ping wall clock");
  // A header with four fields.
  ExpectRefused(Frame(
                    kWireVersion,
                    [](crdt::Encoder* e) {
                      e->Array(4);
                      e->Str("c");
                      e->Uint(1);
                      crdt::EncodeReplica(crdt::ReplicaId{"a", 2}, e);
                      e->Uint(3);
                    },
                    6, ping),
                "header");
  // The frame is not a 3-array.
  crdt::Encoder e(kWireVersion);
  e.Array(2);
  GoodHeader(&e);
  e.Uint(6);
  ExpectRefused(e.Take(), "elements");
  // A delta entry with the delta as a string instead of bytes.
  ExpectRefused(Frame(kWireVersion, hdr, 4,
                      [](crdt::Encoder* e) {
                        e->Array(2);
                        e->Str("");
                        e->Array(1);
                        e->Array(3);
                        e->Uint(1);
                        e->Str("k");
                        e->Str("d");
                      }),
                "delta bytes");
  // Truncated.
  std::string whole = Encode(OneOfEach()[3]);
  ExpectRefused(whole.substr(0, whole.size() - 1), "truncated");
}

BOOST_AUTO_TEST_CASE(refuses_too_many_deltas_and_too_large_frames) {
  std::vector<uint64_t> seqs;
  for (uint64_t i = 1; i <= kMaxDeltasPerMessage + 1; ++i) seqs.push_back(i);
  ExpectRefused(DeltasFrame(seqs), "entries");
  seqs.pop_back();
  Message m;
  BOOST_TEST(Decode(DeltasFrame(seqs), &m).ok());
  BOOST_TEST(m.deltas.size() == kMaxDeltasPerMessage);

  std::string huge(kMaxFrameBytes + 1, '\0');
  huge[0] = static_cast<char>(kWireVersion);
  ExpectRefused(huge, "exceeds the limit");
}

// A newer peer may append fields to a body; the header still decodes so
// that the Protocol can refuse it with kWrongProtocol. The same extra field
// under the current protocol is malformed.
BOOST_AUTO_TEST_CASE(newer_protocol_may_append_body_fields) {
  auto body = [](crdt::Encoder* e) {
    e->Array(2);
    e->Str("us-east");
    e->Str("a field from the future");
  };
  Message m;
  Status s = Decode(
      Frame(
          kWireVersion, [](crdt::Encoder* e) { GoodHeader(e, kProtocolVersion + 1); }, 1, body),
      &m);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(m.header.protocol == kProtocolVersion + 1);
  BOOST_TEST(m.region == "us-east");
  ExpectRefused(Frame(
                    kWireVersion, [](crdt::Encoder* e) { GoodHeader(e); }, 1, body),
                "fields");
  // Fewer fields than this version knows are malformed whatever the version.
  ExpectRefused(Frame(
                    kWireVersion, [](crdt::Encoder* e) { GoodHeader(e, kProtocolVersion + 1); }, 7,
                    [](crdt::Encoder* e) {
                      e->Array(1);
                      e->Uint(1);
                    }),
                "fields");
}
