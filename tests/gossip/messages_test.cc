// The gossip wire format (gossip/messages.h): every message type survives
// a round trip, the bytes have the documented shape, and Decode refuses
// every frame the grammar does not allow.
#define BOOST_TEST_MODULE gossip_messages
#include "gossip/messages.h"

#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "crdt/causal_context.h"
#include "crdt/codec.h"
#include "crdt/hlc.h"
#include "gossip/anti_entropy.h"
#include "storage/digests.h"

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

storage::Digest D(uint64_t hi, uint64_t lo) {
  storage::Digest d;
  d.hi = hi;
  d.lo = lo;
  return d;
}

AeApplied SomeApplied() {
  AeApplied a;
  a[{crdt::ReplicaId{"ap-south-1", 3}, ""}] = 17;
  a[{crdt::ReplicaId{"eu-west-1", 1732550400123456}, ""}] = 1u << 20;
  a[{crdt::ReplicaId{"eu-west-1", 1732550400123456}, "eu-only"}] = 0;
  return a;
}

// One anti-entropy message of every kind, each with every field of its
// kind set away from its default.
std::vector<Message> AeOfEach() {
  std::vector<Message> all;
  Message m;
  m.header = TestHeader();
  m.type = MsgType::kAntiEntropy;
  m.ae.round = 1732550400777;
  m.ae.scope = "eu-only";

  Message b = m;
  b.ae.kind = AeKind::kBegin;
  b.ae.level = 1;
  for (uint32_t i = 0; i < kFanout; ++i) b.ae.nodes.push_back(AeNode{i, D(i, ~0ull - i)});
  b.ae.applied = SomeApplied();
  b.ae.floor = {{{crdt::ReplicaId{"n1", 1}, ""}, 2}};
  b.ae.source = false;
  all.push_back(b);

  Message h = m;
  h.ae.kind = AeKind::kHashes;
  h.ae.from_initiator = false;
  h.ae.level = 3;
  h.ae.nodes = {{0, D(0, 0)}, {17, D(1, 2)}, {4095, D(~0ull, ~0ull)}};
  all.push_back(h);

  Message w = m;
  w.ae.kind = AeKind::kWant;
  w.ae.from_initiator = false;
  w.ae.buckets = {0, 1, 300, 4095};
  all.push_back(w);

  Message st = m;
  st.ae.kind = AeKind::kStates;
  st.ae.part = 7;
  st.ae.last = true;
  st.ae.states = {{"user/1", std::string("\x01\x02\x00\xff", 4)},
                  {std::string(kMaxKeyBytes, 'k'), ""},
                  {"user/3", std::string(300, '\x7f')}};
  st.ae.applied = SomeApplied();
  st.ae.floor = {{{crdt::ReplicaId{"n1", 1}, ""}, 2}};
  all.push_back(st);

  Message d = m;
  d.ae.kind = AeKind::kDone;
  d.ae.from_initiator = false;
  d.ae.in_sync = true;
  d.ae.applied = SomeApplied();
  d.ae.floor = {{{crdt::ReplicaId{"n1", 1}, ""}, 2}};
  all.push_back(d);
  return all;
}

std::vector<Message> OneOfEach() {
  std::vector<Message> all;
  Message m;
  m.header = TestHeader();

  m.type = MsgType::kHello;
  m.region = "eu-west";
  m.policy_hash = "0123456789abcdef";
  m.scope = "eu/";
  all.push_back(m);

  m = Message();
  m.header = TestHeader();
  m.type = MsgType::kWelcome;
  m.applied = 123456789;
  m.to = crdt::ReplicaId{"ap-south-1", 77};
  all.push_back(m);

  m = Message();
  m.header = TestHeader();
  m.type = MsgType::kRefuse;
  m.reason = RefuseReason::kClockAhead;
  m.text = "your hlc is 900 ms ahead";
  m.to = crdt::ReplicaId{"us-east-1", 5};
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
  m.to = crdt::ReplicaId{"us-east-1", 1};
  all.push_back(m);

  m = Message();
  m.header = TestHeader();
  m.type = MsgType::kPing;
  m.sent_wall_ms = 1732550400120;
  m.seq = 4242;
  m.vector = SomeApplied();
  m.retired = {crdt::ReplicaId{"n2", 3}, crdt::ReplicaId{"n7", 1}};
  m.policy_hash = std::string("\x00\xffopaque", 8);  // any bytes
  all.push_back(m);

  m = Message();
  m.header = TestHeader();
  m.type = MsgType::kPong;
  m.echo_wall_ms = 1732550400120;
  m.pong_wall_ms = 1732550400999;
  all.push_back(m);
  for (const Message& ae : AeOfEach()) all.push_back(ae);
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

void ExpectDecodes(const std::string& bytes) {
  Message m;
  Status s = Decode(bytes, &m);
  BOOST_TEST(s.ok(), s.ToString());
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
      {MsgType::kHello,
       {[](Message* m) { m->region += "x"; }, [](Message* m) { m->policy_hash += "x"; }}},
      {MsgType::kWelcome,
       {[](Message* m) { m->applied++; }, [](Message* m) { m->to.node += "x"; }}},
      {MsgType::kRefuse,
       {[](Message* m) { m->reason = RefuseReason::kNoHandshake; },
        [](Message* m) { m->text += "x"; }, [](Message* m) { m->to.incarnation++; }}},
      {MsgType::kDeltas,
       {[](Message* m) { m->scope += "x"; }, [](Message* m) { m->deltas.pop_back(); },
        [](Message* m) { m->deltas[1].seq++; }, [](Message* m) { m->deltas[1].key += "x"; },
        [](Message* m) { m->deltas[1].delta = "z"; }}},
      {MsgType::kAck,
       {[](Message* m) { m->scope += "x"; }, [](Message* m) { m->seq++; },
        [](Message* m) { m->to.incarnation++; }}},
      {MsgType::kPing,
       {[](Message* m) { m->sent_wall_ms++; }, [](Message* m) { m->seq++; },
        [](Message* m) { m->vector.begin()->second++; },
        [](Message* m) {
          m->retired.push_back(crdt::ReplicaId{"zz", 1});
        },
        [](Message* m) { m->policy_hash.back()++; }}},
      {MsgType::kPong,
       {[](Message* m) { m->echo_wall_ms++; }, [](Message* m) { m->pong_wall_ms++; }}},
      // The fields every kind has; those of each kind: anti_entropy_equality_by_kind.
      {MsgType::kAntiEntropy,
       {[](Message* m) { m->ae.round++; },
        [](Message* m) { m->ae.from_initiator = !m->ae.from_initiator; },
        [](Message* m) { m->ae.scope += "x"; },
        [](Message* m) {
          m->ae.kind = m->ae.kind == AeKind::kWant ? AeKind::kDone : AeKind::kWant;
        }}},
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
  noisy.echo_wall_ms = 99;
  BOOST_TEST(Encode(noisy) == Encode(m));
  Message back;
  BOOST_REQUIRE(Decode(Encode(noisy), &back).ok());
  BOOST_TEST(back.region.empty());
  BOOST_TEST(back.deltas.empty());
  BOOST_TEST((back == noisy));  // only the Ping's fields are compared
  // The policy hash travels only in a Hello or a Ping.
  Message pong;
  pong.header = TestHeader();
  pong.type = MsgType::kPong;
  Message noisy_pong = pong;
  noisy_pong.policy_hash = "0123456789abcdef";
  BOOST_TEST(Encode(noisy_pong) == Encode(pong));
  BOOST_TEST((noisy_pong == pong));
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
  m.seq = 7;
  // clang-format off
  std::string bytes = Encode(m);
  BOOST_TEST(static_cast<uint8_t>(bytes[0]) == kWireVersion);
  // version, [ [ "c", 1, ["a", 2], 3, 4 ], 6, [5, 7, [], [], "", ""] ]
  BOOST_TEST(crdt::ToHex(bytes) == "01" "93" "95" "a163" "01" "92a16102" "03" "04" "06" "960507" "90" "90" "a0" "a0");
  m.vector[{crdt::ReplicaId{"b", 9}, ""}] = 8;
  m.retired = {crdt::ReplicaId{"d", 3}};
  m.policy_hash = "h";
  m.scope = "s";
  // ..., 6, [5, 7, [[["b", 9], "", 8]], [["d", 3]], "h", "s"]
  BOOST_TEST(crdt::ToHex(Encode(m)) ==
             "01" "93" "95" "a163" "01" "92a16102" "03" "04" "06" "960507" "91" "93" "92a16209" "a0" "08"
             "91" "92a16403" "a168" "a173");

  Message hello;
  hello.header = m.header;
  hello.type = MsgType::kHello;
  hello.region = "r";
  hello.policy_hash = "0123456789abcdef";
  // ..., 1, ["r", "0123456789abcdef", ""]
  BOOST_TEST(crdt::ToHex(Encode(hello)) ==
             "01" "93" "95" "a163" "01" "92a16102" "03" "04" "01" "93" "a172"
             "b0" "30313233343536373839616263646566" "a0");

  m.type = MsgType::kAck;
  m.scope = "s";
  m.seq = 300;
  m.to = crdt::ReplicaId{"b", 9};
  // ..., 5, ["s", 300 as uint16, ["b", 9]]
  BOOST_TEST(crdt::ToHex(Encode(m)) ==
             "01" "93" "95" "a163" "01" "92a16102" "03" "04" "05" "93" "a173" "cd012c" "92a16209");

  m.type = MsgType::kWelcome;
  m.applied = 8;
  // ..., 2, [8, ["b", 9], "s"]
  BOOST_TEST(crdt::ToHex(Encode(m)) ==
             "01" "93" "95" "a163" "01" "92a16102" "03" "04" "02" "93" "08" "92a16209" "a173");

  Message pong;
  pong.header = m.header;
  pong.type = MsgType::kPong;
  pong.echo_wall_ms = 1;
  pong.pong_wall_ms = 2;
  pong.scope = "s";
  // ..., 7, [1, 2, "s"]
  BOOST_TEST(crdt::ToHex(Encode(pong)) ==
             "01" "93" "95" "a163" "01" "92a16102" "03" "04" "07" "93" "01" "02" "a173");

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
  BOOST_TEST(static_cast<int>(MsgType::kAntiEntropy) == 8);
  BOOST_TEST(kProtocolVersion == 9u);
  BOOST_TEST(kMaxPolicyHashBytes == 64u);  // older decoders refuse longer
  BOOST_TEST(static_cast<int>(AeKind::kBegin) == 1);
  BOOST_TEST(static_cast<int>(AeKind::kHashes) == 2);
  BOOST_TEST(static_cast<int>(AeKind::kWant) == 3);
  BOOST_TEST(static_cast<int>(AeKind::kStates) == 4);
  BOOST_TEST(static_cast<int>(AeKind::kDone) == 5);
  BOOST_TEST(std::string(TypeName(MsgType::kAntiEntropy)) == "anti_entropy");
  BOOST_TEST(static_cast<int>(RefuseReason::kWrongCluster) == 1);
  BOOST_TEST(static_cast<int>(RefuseReason::kClockAhead) == 5);
  BOOST_TEST(static_cast<int>(RefuseReason::kExpired) == 6);
  BOOST_TEST(std::string(ReasonName(RefuseReason::kExpired)) == "expired");
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
  ExpectRefused(Frame(kWireVersion, hdr, 9, body), "unknown message type 9");
  ExpectRefused(Frame(kWireVersion, hdr, 1u << 20, body), "unknown message type");
  // A body of the right shape under a known type decodes (a Hello).
  Message m;
  BOOST_TEST(Decode(Frame(kWireVersion, hdr, 1,
                          [](crdt::Encoder* e) {
                            e->Array(3);
                            e->Str("r");
                            e->Str("h");
                            e->Str("");
                          }),
                    &m)
                 .ok());

  auto refuse = [](uint64_t reason) {
    return [reason](crdt::Encoder* e) {
      e->Array(4);
      e->Uint(reason);
      e->Str("why");
      crdt::EncodeReplica(crdt::ReplicaId{"n1", 2}, e);
      e->Str("");
    };
  };
  ExpectRefused(Frame(kWireVersion, hdr, 3, refuse(0)), "unknown refusal reason 0");
  ExpectRefused(Frame(kWireVersion, hdr, 3, refuse(7)), "unknown refusal reason 7");
  BOOST_TEST(Decode(Frame(kWireVersion, hdr, 3, refuse(6)), &m).ok());
  BOOST_TEST((m.reason == RefuseReason::kExpired));
  BOOST_TEST((m.to == crdt::ReplicaId{"n1", 2}));
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
  m.to = crdt::ReplicaId{"n", 1};
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
  m.to = crdt::ReplicaId{"n1", 1};
  Message back;
  BOOST_REQUIRE(Decode(Encode(m), &back).ok());
  BOOST_TEST(back.text == std::string(kMaxTextBytes, 't'));

  std::string long_text = Frame(
      kWireVersion, [](crdt::Encoder* e) { GoodHeader(e); }, 3,
      [](crdt::Encoder* e) {
        e->Array(4);
        e->Uint(1);
        e->Str(std::string(kMaxTextBytes + 1, 't'));
        crdt::EncodeReplica(crdt::ReplicaId{"n1", 1}, e);
        e->Str("");
      });
  ExpectRefused(long_text, "refusal text");
}

// Hello and Ping carry the sender's policy-set hash: opaque bytes up to
// kMaxPolicyHashBytes. Encode cuts a longer one, and Decode refuses a
// frame that carries one (a sender that does not cut).
BOOST_AUTO_TEST_CASE(hello_and_ping_carry_a_bounded_policy_hash) {
  for (MsgType type : {MsgType::kHello, MsgType::kPing}) {
    BOOST_TEST_CONTEXT(TypeName(type)) {
      Message m;
      m.header = TestHeader();
      m.type = type;
      for (const std::string& hash :
           {std::string(), std::string("0000000000000000"), std::string("\x00\x80\xff", 3),
            std::string(kMaxPolicyHashBytes, 'h')}) {
        m.policy_hash = hash;
        Message back;
        Status s = Decode(Encode(m), &back);
        BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
        BOOST_TEST(back.policy_hash == hash);
        BOOST_TEST((back == m));
      }
      m.policy_hash = std::string(kMaxPolicyHashBytes + 10, 'h');
      Message back;
      BOOST_REQUIRE(Decode(Encode(m), &back).ok());
      BOOST_TEST(back.policy_hash == std::string(kMaxPolicyHashBytes, 'h'));
    }
  }
  auto hdr = [](crdt::Encoder* e) { GoodHeader(e); };
  auto hello = [](size_t hash_bytes) {
    return [hash_bytes](crdt::Encoder* e) {
      e->Array(3);
      e->Str("r");
      e->Str(std::string(hash_bytes, 'h'));
      e->Str("");
    };
  };
  auto ping = [](size_t hash_bytes) {
    return [hash_bytes](crdt::Encoder* e) {
      e->Array(6);
      e->Uint(1);
      e->Uint(2);
      e->Array(0);
      e->Array(0);
      e->Str(std::string(hash_bytes, 'h'));
      e->Str("");
    };
  };
  ExpectDecodes(Frame(kWireVersion, hdr, 1, hello(kMaxPolicyHashBytes)));
  ExpectDecodes(Frame(kWireVersion, hdr, 6, ping(kMaxPolicyHashBytes)));
  ExpectRefused(Frame(kWireVersion, hdr, 1, hello(kMaxPolicyHashBytes + 1)),
                "policy hash is 65 bytes");
  ExpectRefused(Frame(kWireVersion, hdr, 6, ping(kMaxPolicyHashBytes + 1)),
                "policy hash is 65 bytes");
  ExpectRefused(Frame(kWireVersion, hdr, 6, ping(1000)), "policy hash");
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
                        e->Array(7);
                        e->Uint(1);
                        e->Uint(2);
                        e->Array(0);
                        e->Array(0);
                        e->Str("h");
                        e->Str("");
                        e->Uint(3);
                      }),
                "fields");
  ExpectRefused(Frame(kWireVersion, hdr, 6, ping), "fields");
  // A ping of six good fields but field `bad`, written by `write_bad`.
  using Field = std::function<void(crdt::Encoder*)>;
  auto ping_with = [&](int bad, const Field& write_bad) {
    const Field good[6] = {
        [](crdt::Encoder* e) { e->Uint(1); }, [](crdt::Encoder* e) { e->Uint(2); },
        [](crdt::Encoder* e) { e->Array(0); }, [](crdt::Encoder* e) { e->Array(0); },
        [](crdt::Encoder* e) { e->Str("0123456789abcdef"); },
        [](crdt::Encoder* e) { e->Str("eu/"); }};
    return Frame(kWireVersion, hdr, 6, [&](crdt::Encoder* e) {
      e->Array(6);
      for (int i = 0; i < 6; ++i) (i == bad ? write_bad : good[i])(e);
    });
  };
  // A string where a number belongs.
  ExpectRefused(ping_with(0, [](crdt::Encoder* e) { e->Str("1"); }), "ping wall clock");
  ExpectRefused(ping_with(1, [](crdt::Encoder* e) { e->Str("2"); }), "ping log end");
  ExpectRefused(ping_with(2, [](crdt::Encoder* e) { e->Uint(3); }), "applied vector");
  ExpectRefused(ping_with(3, [](crdt::Encoder* e) { e->Uint(3); }), "retired incarnations");
  ExpectRefused(ping_with(4, [](crdt::Encoder* e) { e->Uint(4); }), "policy hash");
  ExpectRefused(ping_with(4, [](crdt::Encoder* e) { e->Bin("h"); }), "policy hash");
  ExpectRefused(ping_with(5, [](crdt::Encoder* e) { e->Uint(5); }), "scope");
  ExpectRefused(ping_with(5, [&](crdt::Encoder* e) { e->Str(std::string(kMaxScopeBytes + 1, 's')); }),
                "scope is 1025 bytes");
  // Retired incarnations out of order (one per node, ascending).
  ExpectRefused(ping_with(3,
                          [](crdt::Encoder* e) {
                            e->Array(2);
                            crdt::EncodeReplica(crdt::ReplicaId{"b", 2}, e);
                            crdt::EncodeReplica(crdt::ReplicaId{"b", 3}, e);
                          }),
                "ascending");
  {
    Message good;  // the six good fields decode: each refusal above is its field's
    Status st = Decode(ping_with(-1, nullptr), &good);
    BOOST_TEST(st.ok(), st.ToString());
  }
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
    e->Array(4);
    e->Str("us-east");
    e->Str("0123456789abcdef");
    e->Str("eu/");
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
  BOOST_TEST(m.policy_hash == "0123456789abcdef");
  BOOST_TEST(m.scope == "eu/");
  ExpectRefused(Frame(
                    kWireVersion, [](crdt::Encoder* e) { GoodHeader(e); }, 1, body),
                "fields");
  // A protocol 8 Hello (no scope) is malformed here: see Decode.
  ExpectRefused(Frame(
                    kWireVersion, [](crdt::Encoder* e) { GoodHeader(e, 8); }, 1,
                    [](crdt::Encoder* e) {
                      e->Array(2);
                      e->Str("us-east");
                      e->Str("0123456789abcdef");
                    }),
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

// Anti-entropy bodies: each kind compares and encodes exactly its own
// fields.
BOOST_AUTO_TEST_CASE(anti_entropy_equality_by_kind) {
  using Change = std::function<void(AeBody*)>;
  std::map<AeKind, std::vector<Change>> own = {
      {AeKind::kBegin,
       {[](AeBody* b) { b->level = 2; }, [](AeBody* b) { b->nodes.pop_back(); },
        [](AeBody* b) { b->nodes[3].hash.lo++; }, [](AeBody* b) { b->nodes[3].index = 99; },
        [](AeBody* b) { b->applied.begin()->second++; }, [](AeBody* b) { b->applied.clear(); },
        [](AeBody* b) { b->floor.clear(); }, [](AeBody* b) { b->source = !b->source; }}},
      {AeKind::kHashes,
       {[](AeBody* b) { b->level = 2; }, [](AeBody* b) { b->nodes[1].hash.hi++; },
        [](AeBody* b) { b->nodes[1].index++; }, [](AeBody* b) { b->nodes.pop_back(); }}},
      {AeKind::kWant,
       {[](AeBody* b) { b->buckets.pop_back(); }, [](AeBody* b) { b->buckets[1] = 2; }}},
      {AeKind::kStates,
       {[](AeBody* b) { b->part++; }, [](AeBody* b) { b->last = false; },
        [](AeBody* b) { b->states.pop_back(); }, [](AeBody* b) { b->states[0].key += "x"; },
        [](AeBody* b) { b->states[0].envelope += "x"; },
        [](AeBody* b) { b->applied.rbegin()->second++; },
        [](AeBody* b) { b->floor.begin()->second++; }}},
      {AeKind::kDone,
       {[](AeBody* b) { b->in_sync = false; }, [](AeBody* b) { b->applied.clear(); },
        [](AeBody* b) { b->floor.clear(); }}},
  };
  // Fields of other kinds, which neither compare nor travel.
  const std::vector<Change> foreign = {
      [](AeBody* b) { b->level = 3; },
      [](AeBody* b) {
        b->nodes = {{5, storage::Digest()}};
      },
      [](AeBody* b) { b->buckets = {9}; },
      [](AeBody* b) {
        b->states = {{"k", "v"}};
      },
      [](AeBody* b) { b->part = 3; },
      [](AeBody* b) { b->last = !b->last; },
      [](AeBody* b) { b->in_sync = !b->in_sync; },
      [](AeBody* b) {
        b->applied[{crdt::ReplicaId{"zz", 1}, ""}] = 5;
      },
      [](AeBody* b) { b->source = !b->source; },
  };
  for (const Message& m : AeOfEach()) {
    const AeKind kind = m.ae.kind;
    const auto& changes = own[kind];
    for (size_t i = 0; i < changes.size(); ++i) {
      BOOST_TEST_CONTEXT("kind " << static_cast<int>(kind) << " change " << i) {
        Message other = m;
        changes[i](&other.ae);
        BOOST_TEST(!(other == m));
        BOOST_TEST(Encode(other) != Encode(m));
      }
    }
    for (size_t i = 0; i < foreign.size(); ++i) {
      // The fields this kind does have are left alone.
      const bool is_own =
          (i == 0 && (kind == AeKind::kBegin || kind == AeKind::kHashes)) ||
          (i == 1 && (kind == AeKind::kBegin || kind == AeKind::kHashes)) ||
          (i == 2 && kind == AeKind::kWant) || (i == 3 && kind == AeKind::kStates) ||
          (i == 4 && kind == AeKind::kStates) || (i == 5 && kind == AeKind::kStates) ||
          (i == 6 && kind == AeKind::kDone) ||
          (i == 7 && (kind == AeKind::kBegin || kind == AeKind::kStates || kind == AeKind::kDone)) ||
          (i == 8 && kind == AeKind::kBegin);
      if (is_own) continue;
      BOOST_TEST_CONTEXT("kind " << static_cast<int>(kind) << " foreign change " << i) {
        Message noisy = m;
        foreign[i](&noisy.ae);
        BOOST_TEST((noisy == m));
        BOOST_TEST(Encode(noisy) == Encode(m));
      }
    }
  }
  // An applied vector travels only on the last states message and on an
  // in-sync done.
  Message st = AeOfEach()[3];
  st.ae.last = false;
  Message bare = st;
  bare.ae.applied.clear();
  BOOST_TEST((st == bare));
  BOOST_TEST(Encode(st) == Encode(bare));
  Message back;
  BOOST_REQUIRE(Decode(Encode(st), &back).ok());
  BOOST_TEST(back.ae.applied.empty());
  Message done = AeOfEach()[4];
  done.ae.in_sync = false;
  BOOST_REQUIRE(Decode(Encode(done), &back).ok());
  BOOST_TEST(back.ae.applied.empty());
  BOOST_TEST(!back.ae.in_sync);
}

// The exact bytes of anti-entropy messages, written out by hand from the
// grammar in messages.h.
BOOST_AUTO_TEST_CASE(golden_shape_of_anti_entropy) {
  Message m;
  m.header.cluster = "c";
  m.header.protocol = 2;
  m.header.from = crdt::ReplicaId{"a", 2};
  m.header.hlc = 3;
  m.header.wall_ms = 4;
  m.type = MsgType::kAntiEntropy;
  m.ae.round = 5;
  // clang-format off
  const std::string hdr = "01" "93" "95" "a163" "02" "92a16102" "03" "04" "08";

  m.ae.kind = AeKind::kWant;
  m.ae.from_initiator = false;
  m.ae.buckets = {1, 300};
  // [3, 5, false, "", [[1, 300]]]
  BOOST_TEST(crdt::ToHex(Encode(m)) == hdr + "95" "03" "05" "c2" "a0" "91" "92" "01" "cd012c");

  m.ae.kind = AeKind::kDone;
  m.ae.from_initiator = true;
  m.ae.scope = "s";
  m.ae.in_sync = true;
  m.ae.applied = {{{crdt::ReplicaId{"a", 2}, ""}, 9}};
  m.ae.floor = {{{crdt::ReplicaId{"b", 1}, ""}, 3}};
  // [5, 5, true, "s", [true, [[["a", 2], "", 9]], [[["b", 1], "", 3]]]]
  BOOST_TEST(crdt::ToHex(Encode(m)) ==
             hdr + "95" "05" "05" "c3" "a173" "93" "c3" "91" "93" "92a16102" "a0" "09"
                   "91" "93" "92a16201" "a0" "03");

  m.ae.kind = AeKind::kHashes;
  m.ae.scope = "";
  m.ae.level = 2;
  m.ae.nodes = {{1, D(1, 2)}};
  // [2, 5, true, "", [2, [[1, bin16 (hi, lo big-endian)]]]]
  BOOST_TEST(crdt::ToHex(Encode(m)) ==
             hdr + "95" "02" "05" "c3" "a0" "92" "02" "91" "92" "01" "c410"
                   "0000000000000001" "0000000000000002");

  m.ae.kind = AeKind::kStates;
  m.ae.part = 0;
  m.ae.last = false;
  m.ae.states = {{"k", "\x09"}};
  // [4, 5, true, "", [0, false, [["k", bin "\x09"]], [], []]]: no applied
  // vector or floor unless last
  BOOST_TEST(crdt::ToHex(Encode(m)) ==
             hdr + "95" "04" "05" "c3" "a0" "95" "00" "c2" "91" "92" "a16b" "c40109" "90" "90");
  // clang-format on
}

namespace {

// An anti-entropy frame built by hand: [kind, round 1, side, scope, payload].
template <typename P>
std::string AeFrame(uint64_t kind, P payload, const std::string& scope = "") {
  return Frame(
      kWireVersion, [](crdt::Encoder* e) { GoodHeader(e); },
      static_cast<uint64_t>(MsgType::kAntiEntropy),
      [&](crdt::Encoder* e) {
        e->Array(5);
        e->Uint(kind);
        e->Uint(1);
        e->Bool(true);
        e->Str(scope);
        payload(e);
      });
}

const uint64_t kBegin = 1, kHashes = 2, kWant = 3, kStates = 4, kDone = 5;

void Nodes(crdt::Encoder* e, const std::vector<uint64_t>& indexes, size_t hash_bytes = 16) {
  e->Array(static_cast<uint32_t>(indexes.size()));
  for (uint64_t i : indexes) {
    e->Array(2);
    e->Uint(i);
    e->Bin(std::string(hash_bytes, '\x05'));
  }
}

std::vector<uint64_t> Range(uint64_t from, uint64_t to) {  // [from, to)
  std::vector<uint64_t> v;
  for (uint64_t i = from; i < to; ++i) v.push_back(i);
  return v;
}

std::string HashesFrame(uint64_t level, const std::vector<uint64_t>& indexes,
                        size_t hash_bytes = 16) {
  return AeFrame(kHashes, [&](crdt::Encoder* e) {
    e->Array(2);
    e->Uint(level);
    Nodes(e, indexes, hash_bytes);
  });
}

std::string WantFrame(const std::vector<uint64_t>& buckets) {
  return AeFrame(kWant, [&](crdt::Encoder* e) {
    e->Array(1);
    e->Array(static_cast<uint32_t>(buckets.size()));
    for (uint64_t b : buckets) e->Uint(b);
  });
}

struct RawState {
  std::string key;
  std::string envelope;
  bool as_bin = true;
};

// `applied` entries: (node, incarnation, scope, seq), written as given.
struct RawApplied {
  std::string node;
  uint64_t incarnation;
  std::string scope;
  uint64_t seq;
};

void Applied(crdt::Encoder* e, const std::vector<RawApplied>& entries) {
  e->Array(static_cast<uint32_t>(entries.size()));
  for (const RawApplied& a : entries) {
    e->Array(3);
    e->Array(2);
    e->Str(a.node);
    e->Uint(a.incarnation);
    e->Str(a.scope);
    e->Uint(a.seq);
  }
}

std::string StatesFrame(uint64_t part, bool last, const std::vector<RawState>& states,
                        const std::vector<RawApplied>& applied = {},
                        const std::vector<RawApplied>& floor = {}) {
  return AeFrame(kStates, [&](crdt::Encoder* e) {
    e->Array(5);
    e->Uint(part);
    e->Bool(last);
    e->Array(static_cast<uint32_t>(states.size()));
    for (const RawState& s : states) {
      e->Array(2);
      e->Str(s.key);
      if (s.as_bin) {
        e->Bin(s.envelope);
      } else {
        e->Str(s.envelope);
      }
    }
    Applied(e, applied);
    Applied(e, floor);
  });
}

std::string DoneFrame(bool in_sync, const std::vector<RawApplied>& applied,
                      const std::vector<RawApplied>& floor = {}) {
  return AeFrame(kDone, [&](crdt::Encoder* e) {
    e->Array(3);
    e->Bool(in_sync);
    Applied(e, applied);
    Applied(e, floor);
  });
}

}  // namespace

BOOST_AUTO_TEST_CASE(anti_entropy_refuses_bad_kinds_levels_and_nodes) {
  auto done = [](crdt::Encoder* e) {
    e->Array(3);
    e->Bool(true);
    e->Array(0);
    e->Array(0);
  };
  ExpectDecodes(AeFrame(kDone, done));
  ExpectRefused(AeFrame(0, done), "unknown anti-entropy kind 0");
  ExpectRefused(AeFrame(6, done), "unknown anti-entropy kind 6");
  ExpectRefused(AeFrame(kDone, done, std::string(kMaxScopeBytes + 1, 's')), "scope");
  // The side is a bool.
  ExpectRefused(Frame(
                    kWireVersion, [](crdt::Encoder* e) { GoodHeader(e); }, 8,
                    [&](crdt::Encoder* e) {
                      e->Array(5);
                      e->Uint(kDone);
                      e->Uint(1);
                      e->Uint(1);
                      e->Str("");
                      done(e);
                    }),
                "anti-entropy side");
  // Four body fields where the protocol has five.
  ExpectRefused(Frame(
                    kWireVersion, [](crdt::Encoder* e) { GoodHeader(e); }, 8,
                    [&](crdt::Encoder* e) {
                      e->Array(4);
                      e->Uint(kDone);
                      e->Uint(1);
                      e->Bool(true);
                      e->Str("");
                    }),
                "fields");

  ExpectDecodes(HashesFrame(1, Range(0, 16)));
  ExpectDecodes(HashesFrame(2, {0, 255}));
  ExpectDecodes(HashesFrame(3, Range(0, 4096)));
  ExpectRefused(HashesFrame(0, {0}), "anti-entropy level 0");
  ExpectRefused(HashesFrame(4, {0}), "anti-entropy level 4");
  ExpectRefused(HashesFrame(1, {16}), "not below 16");
  ExpectRefused(HashesFrame(2, {256}), "not below 256");
  ExpectRefused(HashesFrame(3, {4096}), "not below 4096");
  ExpectRefused(HashesFrame(3, Range(0, 4097)), "tree nodes");
  ExpectRefused(HashesFrame(2, {3, 3}), "not strictly ascending");
  ExpectRefused(HashesFrame(2, {4, 3}), "not strictly ascending");
  ExpectRefused(HashesFrame(2, {1}, 15), "must be 16");
  ExpectRefused(HashesFrame(2, {1}, 17), "must be 16");
  ExpectRefused(HashesFrame(2, {1}, 0), "must be 16");
  // A hash as a string instead of bytes.
  ExpectRefused(AeFrame(kHashes,
                        [](crdt::Encoder* e) {
                          e->Array(2);
                          e->Uint(2);
                          e->Array(1);
                          e->Array(2);
                          e->Uint(1);
                          e->Str(std::string(16, 'h'));
                        }),
                "anti-entropy node hash");
  // A begin has a level, nodes, an applied vector, a floor and a bool
  // (`source`, written by `last`; none: the four fields of protocol 6).
  auto begin = [](const std::function<void(crdt::Encoder*)>& last) {
    return AeFrame(kBegin, [&](crdt::Encoder* e) {
      e->Array(last ? 5 : 4);
      e->Uint(1);
      Nodes(e, Range(0, 16));
      Applied(e, {{"a", 1, "", 4}});
      Applied(e, {{"a", 1, "", 2}});
      if (last) last(e);
    });
  };
  ExpectDecodes(begin([](crdt::Encoder* e) { e->Bool(false); }));
  ExpectRefused(begin(nullptr), "anti-entropy begin");
  ExpectRefused(begin([](crdt::Encoder* e) { e->Uint(1); }), "begin source");
  ExpectRefused(AeFrame(kBegin,
                        [](crdt::Encoder* e) {
                          e->Array(3);
                          e->Uint(1);
                          Nodes(e, Range(0, 16));
                          Applied(e, {{"a", 1, "", 4}});
                        }),
                "anti-entropy begin");
}

BOOST_AUTO_TEST_CASE(anti_entropy_refuses_bad_buckets_states_and_applied) {
  ExpectDecodes(WantFrame({0, 7, 4095}));
  ExpectDecodes(WantFrame(Range(0, 4096)));
  ExpectRefused(WantFrame({}), "buckets");
  ExpectRefused(WantFrame({4096}), "not below 4096");
  ExpectRefused(WantFrame({5, 5}), "not strictly ascending");
  ExpectRefused(WantFrame({6, 5}), "not strictly ascending");

  ExpectDecodes(StatesFrame(0, false, {{"k", "v"}}));
  ExpectDecodes(StatesFrame(UINT32_MAX, true, {}, {{"a", 1, "", 2}}));
  ExpectDecodes(StatesFrame(0, true, {{std::string(kMaxKeyBytes, 'k'), ""}}));
  ExpectRefused(StatesFrame(uint64_t{UINT32_MAX} + 1, true, {}), "32 bits");
  ExpectRefused(StatesFrame(0, false, {{"", "v"}}), "state key");
  ExpectRefused(StatesFrame(0, false, {{std::string(kMaxKeyBytes + 1, 'k'), "v"}}), "state key");
  ExpectRefused(StatesFrame(0, false, {{"k", "v", false}}), "state bytes");
  ExpectRefused(StatesFrame(0, false, {}, {{"a", 1, "", 2}}), "not the last");
  ExpectRefused(StatesFrame(0, false, {}, {}, {{"a", 1, "", 2}}), "not the last");
  ExpectDecodes(StatesFrame(3, true, {}, {{"a", 1, "", 2}}, {{"a", 1, "", 1}}));
  {
    std::vector<RawState> many(kMaxAeStatesPerMessage + 1, RawState{"k", ""});
    ExpectRefused(StatesFrame(0, true, many), "states");
    many.pop_back();
    ExpectDecodes(StatesFrame(0, true, many));
  }

  ExpectDecodes(
      DoneFrame(true, {{"a", 1, "", 2}, {"a", 1, "s", 0}, {"a", 2, "", 1}, {"b", 0, "", 1}}));
  ExpectDecodes(DoneFrame(false, {}));
  ExpectRefused(DoneFrame(false, {{"a", 1, "", 2}}), "not in sync");
  ExpectRefused(DoneFrame(false, {}, {{"a", 1, "", 2}}), "not in sync");
  ExpectRefused(DoneFrame(true, {}, {{"b", 1, "", 2}, {"a", 1, "", 3}}), "not strictly ascending");
  ExpectRefused(DoneFrame(true, {{"a", 1, "", 2}, {"a", 1, "", 3}}), "not strictly ascending");
  ExpectRefused(DoneFrame(true, {{"b", 1, "", 2}, {"a", 1, "", 3}}), "not strictly ascending");
  ExpectRefused(DoneFrame(true, {{"a", 2, "", 2}, {"a", 1, "s", 3}}), "not strictly ascending");
  ExpectRefused(DoneFrame(true, {{"", 1, "", 2}}), "node id");
  ExpectRefused(DoneFrame(true, {{"a", 1, std::string(kMaxScopeBytes + 1, 's'), 2}}),
                "applied scope");
  {
    std::vector<RawApplied> many;
    for (size_t i = 0; i <= kMaxAeAppliedEntries; ++i) many.push_back({"a", i, "", 1});
    ExpectRefused(DoneFrame(true, many), "applied vector holds");
    many.pop_back();
    ExpectDecodes(DoneFrame(true, many));
  }
  // A seq that is not a number.
  ExpectRefused(AeFrame(kDone,
                        [](crdt::Encoder* e) {
                          e->Array(3);
                          e->Bool(true);
                          e->Array(1);
                          e->Array(3);
                          crdt::EncodeReplica(crdt::ReplicaId{"a", 1}, e);
                          e->Str("");
                          e->Str("9");
                          e->Array(0);
                        }),
                "applied seq");
  ExpectRefused(AeFrame(kDone,
                        [](crdt::Encoder* e) {
                          e->Array(3);
                          e->Uint(1);
                          e->Array(0);
                          e->Array(0);
                        }),
                "anti-entropy in sync");
}

BOOST_AUTO_TEST_CASE(anti_entropy_from_a_newer_protocol_may_append_fields) {
  auto body = [](crdt::Encoder* e) {
    e->Array(6);
    e->Uint(kWant);
    e->Uint(1);
    e->Bool(false);
    e->Str("");
    e->Array(1);
    e->Array(1);
    e->Uint(12);
    e->Str("a field from the future");
  };
  Message m;
  Status s = Decode(
      Frame(
          kWireVersion, [](crdt::Encoder* e) { GoodHeader(e, kProtocolVersion + 1); }, 8, body),
      &m);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST((m.ae.buckets == std::vector<uint32_t>{12}));
  ExpectRefused(Frame(
                    kWireVersion, [](crdt::Encoder* e) { GoodHeader(e); }, 8, body),
                "fields");
}
