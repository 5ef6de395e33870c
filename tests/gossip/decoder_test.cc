// Robustness of gossip::Decode against untrusted frames: seeded random
// bytes, and valid frames of every type with bits flipped, cut short,
// extended, or with bytes inserted and removed. Whatever the input, Decode
// returns a Status or a message that re-encodes to a frame which decodes to
// the same message (and is canonical from then on). It never crashes or
// throws; run it under ASan+UBSan.
//
// MERIDIAN_SEED=<n> replays one run; MERIDIAN_FRAMES=<n> changes how many
// frames each case tries.
#define BOOST_TEST_MODULE gossip_decoder
#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "crdt/causal_context.h"
#include "crdt/hlc.h"
#include "gossip/anti_entropy.h"
#include "gossip/messages.h"
#include "storage/digests.h"

using namespace meridian;
using namespace meridian::gossip;

namespace {

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 10);
}

uint64_t Seed() {
  static const uint64_t seed = EnvOr("MERIDIAN_SEED", std::random_device{}());
  return seed;
}

size_t Frames() { return static_cast<size_t>(EnvOr("MERIDIAN_FRAMES", 5000)); }

using Rng = std::mt19937_64;

uint64_t Pick(Rng& rng, uint64_t n) {
  return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng);
}

// Numbers that sit on msgpack's encoding boundaries.
uint64_t Number(Rng& rng) {
  static const uint64_t kEdges[] = {0,
                                    1,
                                    127,
                                    128,
                                    255,
                                    256,
                                    65535,
                                    65536,
                                    4294967295,
                                    4294967296,
                                    ~0ull,
                                    1ull << 62,
                                    1732550400123ull};
  if (Pick(rng, 2) == 0) return kEdges[Pick(rng, sizeof(kEdges) / sizeof(kEdges[0]))];
  return rng() >> Pick(rng, 64);
}

std::string Bytes(Rng& rng, size_t max_len) {
  std::string s(Pick(rng, max_len + 1), '\0');
  for (char& c : s) c = static_cast<char>(Pick(rng, 256));
  return s;
}

std::string Text(Rng& rng, size_t max_len) {
  std::string s(Pick(rng, max_len + 1), 'a');
  for (char& c : s) c = static_cast<char>('a' + Pick(rng, 26));
  return s;
}

AeApplied RandomApplied(Rng& rng) {
  AeApplied a;
  const size_t n = Pick(rng, 4);
  for (size_t i = 0; i < n; ++i) {
    a[{crdt::ReplicaId{"n" + Text(rng, 3), Number(rng)}, Text(rng, 2)}] = Number(rng);
  }
  return a;
}

std::vector<AeNode> RandomNodes(Rng& rng, int level) {
  std::vector<AeNode> nodes;
  const uint32_t on_level = NodesOnLevel(level);
  uint32_t index = static_cast<uint32_t>(Pick(rng, 4));
  const size_t n = Pick(rng, 20);
  for (size_t i = 0; i < n && index < on_level; ++i) {
    storage::Digest d;
    d.hi = Number(rng);
    d.lo = Number(rng);
    nodes.push_back(AeNode{index, d});
    index += 1 + static_cast<uint32_t>(Pick(rng, 40));
  }
  return nodes;
}

// A well-formed anti-entropy body of a random kind.
AeBody RandomAe(Rng& rng) {
  AeBody b;
  b.kind = static_cast<AeKind>(1 + Pick(rng, 5));
  b.round = Number(rng);
  b.from_initiator = Pick(rng, 2) == 0;
  b.scope = Text(rng, 4);
  switch (b.kind) {
    case AeKind::kBegin:
    case AeKind::kHashes:
      b.level = static_cast<int>(1 + Pick(rng, kLeafLevel));
      b.nodes = RandomNodes(rng, b.level);
      if (b.kind == AeKind::kBegin) {
        b.applied = RandomApplied(rng);
        b.source = Pick(rng, 2) == 0;
      }
      break;
    case AeKind::kWant: {
      uint32_t bucket = static_cast<uint32_t>(Pick(rng, 8));
      const size_t n = 1 + Pick(rng, 12);
      for (size_t i = 0; i < n && bucket < storage::kBuckets; ++i) {
        b.buckets.push_back(bucket);
        bucket += 1 + static_cast<uint32_t>(Pick(rng, 700));
      }
      break;
    }
    case AeKind::kStates: {
      b.part = static_cast<uint32_t>(Number(rng));
      b.last = Pick(rng, 2) == 0;
      const size_t n = Pick(rng, 5);
      for (size_t i = 0; i < n; ++i)
        b.states.push_back(AeState{"k" + Text(rng, 6), Bytes(rng, 24)});
      if (b.last) b.applied = RandomApplied(rng);
      break;
    }
    case AeKind::kDone:
      b.in_sync = Pick(rng, 2) == 0;
      if (b.in_sync) b.applied = RandomApplied(rng);
      break;
  }
  return b;
}

Message RandomMessage(Rng& rng) {
  Message m;
  m.header.cluster = Text(rng, 12);
  m.header.protocol = Pick(rng, 4) == 0 ? Number(rng) : kProtocolVersion;
  m.header.from = crdt::ReplicaId{"n" + Text(rng, 8), Number(rng)};
  m.header.hlc = Number(rng);
  m.header.wall_ms = Number(rng);
  m.type = static_cast<MsgType>(1 + Pick(rng, 8));
  switch (m.type) {
    case MsgType::kHello:
      m.region = Text(rng, 10);
      m.policy_hash = Bytes(rng, kMaxPolicyHashBytes);
      break;
    case MsgType::kWelcome:
      m.applied = Number(rng);
      m.to = crdt::ReplicaId{Text(rng, 6) + "n", Number(rng)};
      break;
    case MsgType::kRefuse:
      m.reason = static_cast<RefuseReason>(1 + Pick(rng, 6));
      m.text = Bytes(rng, 40);
      m.to = crdt::ReplicaId{Text(rng, 6) + "n", Number(rng)};
      break;
    case MsgType::kDeltas: {
      m.scope = Text(rng, 4);
      uint64_t seq = 0;
      size_t n = Pick(rng, 6);
      for (size_t i = 0; i < n; ++i) {
        seq += 1 + Pick(rng, 3);
        m.deltas.push_back(DeltaEntry{seq, "k" + Text(rng, 6), Bytes(rng, 24)});
      }
      break;
    }
    case MsgType::kAck:
      m.scope = Text(rng, 4);
      m.seq = Number(rng);
      m.to = crdt::ReplicaId{Text(rng, 6) + "n", Number(rng)};
      break;
    case MsgType::kPing:
      m.sent_wall_ms = Number(rng);
      m.seq = Number(rng);
      m.vector = RandomApplied(rng);
      m.policy_hash = Bytes(rng, kMaxPolicyHashBytes);
      break;
    case MsgType::kPong:
      m.echo_wall_ms = Number(rng);
      m.pong_wall_ms = Number(rng);
      break;
    case MsgType::kAntiEntropy:
      m.ae = RandomAe(rng);
      break;
  }
  // Refuse texts are bytes on the wire as msgpack str; any byte is allowed.
  return m;
}

std::string Mutate(Rng& rng, std::string s) {
  const size_t rounds = 1 + Pick(rng, 4);
  for (size_t r = 0; r < rounds; ++r) {
    switch (Pick(rng, 7)) {
      case 0:  // flip a bit
        if (!s.empty()) s[Pick(rng, s.size())] ^= static_cast<char>(1u << Pick(rng, 8));
        break;
      case 1:  // cut short
        if (!s.empty()) s.resize(Pick(rng, s.size()));
        break;
      case 2:  // extend
        s += Bytes(rng, 8);
        break;
      case 3:  // insert a byte
        s.insert(s.begin() + static_cast<long>(Pick(rng, s.size() + 1)),
                 static_cast<char>(Pick(rng, 256)));
        break;
      case 4:  // remove a byte
        if (!s.empty()) s.erase(s.begin() + static_cast<long>(Pick(rng, s.size())));
        break;
      case 6:  // overwrite a byte with a small number (seqs, types, reasons)
        if (!s.empty()) s[Pick(rng, s.size())] = static_cast<char>(Pick(rng, 9));
        break;
      case 5:  // overwrite a byte with a msgpack marker
        if (!s.empty()) {
          static const unsigned char kMarkers[] = {0x90, 0x9f, 0xc0, 0xc4, 0xcc, 0xcd, 0xce,
                                                   0xcf, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xff};
          s[Pick(rng, s.size())] = static_cast<char>(kMarkers[Pick(rng, sizeof(kMarkers))]);
        }
        break;
    }
  }
  return s;
}

struct Tally {
  size_t ok = 0;
  size_t refused = 0;
};

void CheckApplied(const AeApplied& applied) {
  BOOST_TEST(applied.size() <= kMaxAeAppliedEntries);
  for (const auto& [id, seq] : applied) {
    BOOST_TEST(!id.first.node.empty());
    BOOST_TEST(id.first.node.size() <= crdt::kMaxNodeIdBytes);
    BOOST_TEST(id.second.size() <= kMaxScopeBytes);
  }
}

void CheckAeInvariants(const AeBody& b) {
  const int kind = static_cast<int>(b.kind);
  BOOST_TEST((kind >= 1 && kind <= 5), "anti-entropy kind " << kind);
  BOOST_TEST(b.scope.size() <= kMaxScopeBytes);
  switch (b.kind) {
    case AeKind::kBegin:
    case AeKind::kHashes: {
      BOOST_TEST((b.level >= 1 && b.level <= kLeafLevel), "level " << b.level);
      BOOST_TEST(b.nodes.size() <= size_t{kFanout} * 256);
      for (size_t i = 0; i < b.nodes.size(); ++i) {
        BOOST_TEST(b.nodes[i].index < NodesOnLevel(b.level));
        if (i > 0) BOOST_TEST(b.nodes[i].index > b.nodes[i - 1].index);
      }
      CheckApplied(b.applied);
      break;
    }
    case AeKind::kWant:
      BOOST_TEST(!b.buckets.empty());
      for (size_t i = 0; i < b.buckets.size(); ++i) {
        BOOST_TEST(b.buckets[i] < storage::kBuckets);
        if (i > 0) BOOST_TEST(b.buckets[i] > b.buckets[i - 1]);
      }
      break;
    case AeKind::kStates:
      BOOST_TEST(b.states.size() <= kMaxAeStatesPerMessage);
      for (const AeState& s : b.states) {
        BOOST_TEST(!s.key.empty());
        BOOST_TEST(s.key.size() <= kMaxKeyBytes);
      }
      if (!b.last) BOOST_TEST(b.applied.empty());
      CheckApplied(b.applied);
      break;
    case AeKind::kDone:
      if (!b.in_sync) BOOST_TEST(b.applied.empty());
      CheckApplied(b.applied);
      break;
  }
}

// What messages.h promises about any message Decode accepts, checked
// independently of the decoder.
void CheckInvariants(const Message& m) {
  BOOST_TEST(m.header.cluster.size() <= kMaxClusterBytes);
  BOOST_TEST(!m.header.from.node.empty());
  BOOST_TEST(m.header.from.node.size() <= crdt::kMaxNodeIdBytes);
  const int type = static_cast<int>(m.type);
  BOOST_TEST((type >= 1 && type <= 8), "type " << type);
  switch (m.type) {
    case MsgType::kHello:
      BOOST_TEST(m.region.size() <= kMaxRegionBytes);
      BOOST_TEST(m.policy_hash.size() <= kMaxPolicyHashBytes);
      break;
    case MsgType::kRefuse: {
      const int reason = static_cast<int>(m.reason);
      BOOST_TEST((reason >= 1 && reason <= 6), "reason " << reason);
      BOOST_TEST(m.text.size() <= kMaxTextBytes);
      break;
    }
    case MsgType::kDeltas: {
      BOOST_TEST(m.scope.size() <= kMaxScopeBytes);
      BOOST_TEST(m.deltas.size() <= kMaxDeltasPerMessage);
      uint64_t prev = 0;
      for (const DeltaEntry& d : m.deltas) {
        BOOST_TEST(d.seq > prev, "seq " << d.seq << " after " << prev);
        prev = d.seq;
        BOOST_TEST(!d.key.empty());
        BOOST_TEST(d.key.size() <= kMaxKeyBytes);
      }
      break;
    }
    case MsgType::kAck:
      BOOST_TEST(m.scope.size() <= kMaxScopeBytes);
      break;
    case MsgType::kPing:
      CheckApplied(m.vector);
      BOOST_TEST(m.policy_hash.size() <= kMaxPolicyHashBytes);
      break;
    case MsgType::kAntiEntropy:
      CheckAeInvariants(m.ae);
      break;
    default:
      break;
  }
}

// The property every input must satisfy.
void CheckOne(const std::string& bytes, Tally* tally) {
  Message m;
  Status s = Decode(bytes, &m);
  if (!s.ok()) {
    ++tally->refused;
    BOOST_TEST((s.IsCorruption() || s.IsInvalidArgument()), s.ToString());
    BOOST_TEST(!s.message().empty());
    return;
  }
  ++tally->ok;
  CheckInvariants(m);
  std::string again = Encode(m);
  Message m2;
  Status s2 = Decode(again, &m2);
  BOOST_REQUIRE_MESSAGE(s2.ok(),
                        "a decoded message re-encodes to an undecodable frame: " + s2.ToString() +
                            " (MERIDIAN_SEED=" + std::to_string(Seed()) + ")");
  BOOST_TEST((m2 == m), "re-decoded message differs (MERIDIAN_SEED=" << Seed() << ")");
  BOOST_TEST(Encode(m2) == again);
  BOOST_TEST(again[0] == static_cast<char>(kWireVersion));
}

}  // namespace

BOOST_AUTO_TEST_CASE(valid_random_messages_round_trip) {
  Rng rng(Seed());
  BOOST_TEST_MESSAGE("MERIDIAN_SEED=" << Seed());
  for (size_t i = 0; i < Frames(); ++i) {
    Message m = RandomMessage(rng);
    std::string bytes = Encode(m);
    Message back;
    Status s = Decode(bytes, &back);
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString() + " (MERIDIAN_SEED=" + std::to_string(Seed()) + ")");
    BOOST_REQUIRE((back == m));
  }
}

BOOST_AUTO_TEST_CASE(random_bytes_never_crash) {
  Rng rng(Seed() + 1);
  Tally tally;
  for (size_t i = 0; i < Frames(); ++i) {
    std::string bytes = Bytes(rng, 64);
    if (!bytes.empty() && Pick(rng, 2) == 0) bytes[0] = static_cast<char>(kWireVersion);
    CheckOne(bytes, &tally);
  }
  BOOST_TEST_MESSAGE("random bytes: " << tally.ok << " decoded, " << tally.refused << " refused");
  BOOST_TEST(tally.refused > 0u);
}

BOOST_AUTO_TEST_CASE(mutated_frames_never_crash) {
  Rng rng(Seed() + 2);
  Tally tally;
  for (size_t i = 0; i < 4 * Frames(); ++i) {
    CheckOne(Mutate(rng, Encode(RandomMessage(rng))), &tally);
  }
  BOOST_TEST_MESSAGE("mutated frames: " << tally.ok << " decoded, " << tally.refused
                                        << " refused (MERIDIAN_SEED=" << Seed() << ")");
  // Both outcomes must be exercised, or the mutations test nothing.
  BOOST_TEST(tally.ok > 0u);
  BOOST_TEST(tally.refused > 0u);
}

BOOST_AUTO_TEST_CASE(every_truncation_and_extension_of_valid_frames) {
  Rng rng(Seed() + 3);
  Tally tally;
  for (size_t i = 0; i < Frames() / 10 + 1; ++i) {
    std::string bytes = Encode(RandomMessage(rng));
    // Every proper prefix is truncated: none may decode.
    for (size_t n = 0; n < bytes.size(); ++n) {
      Message m;
      BOOST_TEST(!Decode(bytes.substr(0, n), &m).ok(), "prefix " << n << " of " << bytes.size());
    }
    // Anything appended is trailing bytes.
    for (int k = 0; k < 4; ++k) {
      Message m;
      std::string longer = bytes + Bytes(rng, 8) + "x";
      BOOST_TEST(!Decode(longer, &m).ok());
      CheckOne(longer, &tally);
    }
  }
}

// Anti-entropy frames alone (their grammar is the deepest): mutated, they
// decode to well-formed bodies or are refused.
BOOST_AUTO_TEST_CASE(mutated_anti_entropy_frames_never_crash) {
  Rng rng(Seed() + 4);
  Tally tally;
  size_t decoded_ae = 0;
  for (size_t i = 0; i < 4 * Frames(); ++i) {
    Message m = RandomMessage(rng);
    m.type = MsgType::kAntiEntropy;
    m.ae = RandomAe(rng);
    const std::string bytes = Mutate(rng, Encode(m));
    const size_t ok_before = tally.ok;
    CheckOne(bytes, &tally);
    if (tally.ok > ok_before) {
      Message back;
      if (Decode(bytes, &back).ok() && back.type == MsgType::kAntiEntropy) ++decoded_ae;
    }
  }
  BOOST_TEST_MESSAGE("mutated anti-entropy frames: "
                     << tally.ok << " decoded (" << decoded_ae << " as anti-entropy), "
                     << tally.refused << " refused (MERIDIAN_SEED=" << Seed() << ")");
  BOOST_TEST(decoded_ae > 0u);
  BOOST_TEST(tally.refused > 0u);
}
