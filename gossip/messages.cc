// The gossip wire format; the grammar is in messages.h. Decoding is strict
// (exact element counts, known types and reasons, canonical delta order)
// with one exception for forward compatibility: a body from a newer
// protocol version may end with fields this version does not know, which
// are skipped, so the Protocol sees the message and refuses it with
// kWrongProtocol and a reason.
#include "gossip/messages.h"

#include <cstdint>
#include <string>
#include <utility>

#include "crdt/codec.h"

namespace meridian::gossip {
namespace {

// Elements of each body in this protocol version.
size_t BodyFields(MsgType t) {
  switch (t) {
    case MsgType::kDeltas:
      return 2;
    case MsgType::kHello:
    case MsgType::kWelcome:
    case MsgType::kAck:
    case MsgType::kPong:
      return 3;
    case MsgType::kRefuse:
      return 4;
    case MsgType::kAntiEntropy:
      return 5;
    case MsgType::kPing:
      return 6;
  }
  return 0;
}

bool KnownType(uint64_t t) {
  return t >= static_cast<uint64_t>(MsgType::kHello) &&
         t <= static_cast<uint64_t>(MsgType::kAntiEntropy);
}

bool KnownAeKind(uint64_t k) {
  return k >= static_cast<uint64_t>(AeKind::kBegin) && k <= static_cast<uint64_t>(AeKind::kDone);
}

bool KnownReason(uint64_t r) {
  return r >= static_cast<uint64_t>(RefuseReason::kWrongCluster) &&
         r <= static_cast<uint64_t>(RefuseReason::kExpired);
}

Status BoundedStr(const crdt::Cursor& c, std::string* out, const char* what, size_t min_bytes,
                  size_t max_bytes) {
  MERIDIAN_RETURN_IF_ERROR(c.Str(out, what));
  if (out->size() < min_bytes || out->size() > max_bytes) {
    return Status::Corruption(std::string(what) + " is " + std::to_string(out->size()) +
                              " bytes; it must be " + std::to_string(min_bytes) + ".." +
                              std::to_string(max_bytes));
  }
  return Status::OK();
}

Status DecodeHeader(const crdt::Cursor& c, Header* h) {
  std::vector<crdt::Cursor> f;
  MERIDIAN_RETURN_IF_ERROR(c.Array(&f, "message header", 5));
  MERIDIAN_RETURN_IF_ERROR(BoundedStr(f[0], &h->cluster, "cluster name", 0, kMaxClusterBytes));
  MERIDIAN_RETURN_IF_ERROR(f[1].Uint(&h->protocol, "protocol version"));
  MERIDIAN_RETURN_IF_ERROR(crdt::DecodeReplica(f[2], &h->from));
  MERIDIAN_RETURN_IF_ERROR(f[3].Uint(&h->hlc, "header hlc"));
  return f[4].Uint(&h->wall_ms, "header wall clock");
}

Status DecodeDeltas(const crdt::Cursor& c, std::vector<DeltaEntry>* out) {
  std::vector<crdt::Cursor> items;
  MERIDIAN_RETURN_IF_ERROR(c.Array(&items, "delta entries"));
  if (items.size() > kMaxDeltasPerMessage) {
    return Status::Corruption("a Deltas message holds " + std::to_string(items.size()) +
                              " entries; at most " + std::to_string(kMaxDeltasPerMessage) +
                              " are allowed");
  }
  out->clear();
  out->reserve(items.size());
  uint64_t prev = 0;
  for (const crdt::Cursor& item : items) {
    std::vector<crdt::Cursor> f;
    MERIDIAN_RETURN_IF_ERROR(item.Array(&f, "delta entry", 3));
    DeltaEntry d;
    MERIDIAN_RETURN_IF_ERROR(f[0].Uint(&d.seq, "delta seq"));
    if (d.seq == 0) return Status::Corruption("delta seq 0: sequences start at 1");
    if (d.seq <= prev) {
      return Status::Corruption("delta seqs are not strictly ascending (" + std::to_string(d.seq) +
                                " after " + std::to_string(prev) + ")");
    }
    prev = d.seq;
    MERIDIAN_RETURN_IF_ERROR(BoundedStr(f[1], &d.key, "delta key", 1, kMaxKeyBytes));
    MERIDIAN_RETURN_IF_ERROR(f[2].Bin(&d.delta, "delta bytes"));
    out->push_back(std::move(d));
  }
  return Status::OK();
}

Status DecodeNodes(const crdt::Cursor& c, int level, std::vector<AeNode>* out) {
  std::vector<crdt::Cursor> items;
  MERIDIAN_RETURN_IF_ERROR(c.Array(&items, "anti-entropy nodes"));
  if (items.size() > size_t{kFanout} * 256) {
    return Status::Corruption("an anti-entropy message holds " + std::to_string(items.size()) +
                              " tree nodes; at most " + std::to_string(kFanout * 256) +
                              " are allowed");
  }
  const uint32_t on_level = NodesOnLevel(level);
  out->clear();
  out->reserve(items.size());
  for (const crdt::Cursor& item : items) {
    std::vector<crdt::Cursor> f;
    MERIDIAN_RETURN_IF_ERROR(item.Array(&f, "anti-entropy node", 2));
    uint64_t index = 0;
    MERIDIAN_RETURN_IF_ERROR(f[0].Uint(&index, "anti-entropy node index"));
    if (index >= on_level) {
      return Status::Corruption("anti-entropy node index " + std::to_string(index) +
                                " is not below " + std::to_string(on_level) +
                                ", the nodes on level " + std::to_string(level));
    }
    if (!out->empty() && index <= out->back().index) {
      return Status::Corruption("anti-entropy node indexes are not strictly ascending (" +
                                std::to_string(index) + " after " +
                                std::to_string(out->back().index) + ")");
    }
    std::string hash;
    MERIDIAN_RETURN_IF_ERROR(f[1].Bin(&hash, "anti-entropy node hash"));
    AeNode n;
    n.index = static_cast<uint32_t>(index);
    if (!storage::Digest::FromBytes(hash, &n.hash)) {
      return Status::Corruption("anti-entropy node hash is " + std::to_string(hash.size()) +
                                " bytes; it must be 16");
    }
    out->push_back(n);
  }
  return Status::OK();
}

Status DecodeApplied(const crdt::Cursor& c, AeApplied* out) {
  std::vector<crdt::Cursor> items;
  MERIDIAN_RETURN_IF_ERROR(c.Array(&items, "anti-entropy applied vector"));
  if (items.size() > kMaxAeAppliedEntries) {
    return Status::Corruption("an anti-entropy applied vector holds " +
                              std::to_string(items.size()) + " entries; at most " +
                              std::to_string(kMaxAeAppliedEntries) + " are allowed");
  }
  out->clear();
  for (const crdt::Cursor& item : items) {
    std::vector<crdt::Cursor> f;
    MERIDIAN_RETURN_IF_ERROR(item.Array(&f, "anti-entropy applied entry", 3));
    std::pair<crdt::ReplicaId, std::string> id;
    MERIDIAN_RETURN_IF_ERROR(crdt::DecodeReplica(f[0], &id.first));
    MERIDIAN_RETURN_IF_ERROR(BoundedStr(f[1], &id.second, "applied scope", 0, kMaxScopeBytes));
    uint64_t seq = 0;
    MERIDIAN_RETURN_IF_ERROR(f[2].Uint(&seq, "applied seq"));
    if (!out->empty() && !(out->rbegin()->first < id)) {
      return Status::Corruption("anti-entropy applied entries are not strictly ascending (" +
                                id.first.ToString() + " scope '" + id.second + "')");
    }
    out->emplace_hint(out->end(), std::move(id), seq);
  }
  return Status::OK();
}

Status DecodeRetired(const crdt::Cursor& c, std::vector<crdt::ReplicaId>* out) {
  std::vector<crdt::Cursor> items;
  MERIDIAN_RETURN_IF_ERROR(c.Array(&items, "retired incarnations"));
  if (items.size() > kMaxRetiredEntries) {
    return Status::Corruption("a ping names " + std::to_string(items.size()) +
                              " retired incarnations; at most " +
                              std::to_string(kMaxRetiredEntries) + " are allowed");
  }
  out->clear();
  for (const crdt::Cursor& item : items) {
    crdt::ReplicaId id;
    MERIDIAN_RETURN_IF_ERROR(crdt::DecodeReplica(item, &id));
    if (!out->empty() && !(out->back().node < id.node)) {
      return Status::Corruption("retired incarnations are not strictly ascending by node (" +
                                id.ToString() + ")");
    }
    out->push_back(std::move(id));
  }
  return Status::OK();
}

Status DecodeLevel(const crdt::Cursor& c, int* level) {
  uint64_t v = 0;
  MERIDIAN_RETURN_IF_ERROR(c.Uint(&v, "anti-entropy level"));
  if (v < 1 || v > static_cast<uint64_t>(kLeafLevel)) {
    return Status::Corruption("anti-entropy level " + std::to_string(v) + " is not 1.." +
                              std::to_string(kLeafLevel));
  }
  *level = static_cast<int>(v);
  return Status::OK();
}

Status DecodeAePayload(const crdt::Cursor& c, AeBody* b) {
  std::vector<crdt::Cursor> f;
  switch (b->kind) {
    case AeKind::kBegin:
      MERIDIAN_RETURN_IF_ERROR(c.Array(&f, "anti-entropy begin", 5));
      MERIDIAN_RETURN_IF_ERROR(DecodeLevel(f[0], &b->level));
      MERIDIAN_RETURN_IF_ERROR(DecodeNodes(f[1], b->level, &b->nodes));
      MERIDIAN_RETURN_IF_ERROR(DecodeApplied(f[2], &b->applied));
      MERIDIAN_RETURN_IF_ERROR(DecodeApplied(f[3], &b->floor));
      return f[4].Bool(&b->source, "anti-entropy begin source");
    case AeKind::kHashes:
      MERIDIAN_RETURN_IF_ERROR(c.Array(&f, "anti-entropy hashes", 2));
      MERIDIAN_RETURN_IF_ERROR(DecodeLevel(f[0], &b->level));
      return DecodeNodes(f[1], b->level, &b->nodes);
    case AeKind::kWant: {
      MERIDIAN_RETURN_IF_ERROR(c.Array(&f, "anti-entropy want", 1));
      std::vector<crdt::Cursor> items;
      MERIDIAN_RETURN_IF_ERROR(f[0].Array(&items, "wanted buckets"));
      if (items.empty() || items.size() > storage::kBuckets) {
        return Status::Corruption("an anti-entropy want names " + std::to_string(items.size()) +
                                  " buckets; it must name 1.." + std::to_string(storage::kBuckets));
      }
      for (const crdt::Cursor& item : items) {
        uint64_t bucket = 0;
        MERIDIAN_RETURN_IF_ERROR(item.Uint(&bucket, "wanted bucket"));
        if (bucket >= storage::kBuckets) {
          return Status::Corruption("wanted bucket " + std::to_string(bucket) + " is not below " +
                                    std::to_string(storage::kBuckets));
        }
        if (!b->buckets.empty() && bucket <= b->buckets.back()) {
          return Status::Corruption("wanted buckets are not strictly ascending (" +
                                    std::to_string(bucket) + " after " +
                                    std::to_string(b->buckets.back()) + ")");
        }
        b->buckets.push_back(static_cast<uint32_t>(bucket));
      }
      return Status::OK();
    }
    case AeKind::kStates: {
      MERIDIAN_RETURN_IF_ERROR(c.Array(&f, "anti-entropy states", 5));
      uint64_t part = 0;
      MERIDIAN_RETURN_IF_ERROR(f[0].Uint(&part, "anti-entropy states part"));
      if (part > UINT32_MAX) {
        return Status::Corruption("anti-entropy states part " + std::to_string(part) +
                                  " does not fit 32 bits");
      }
      b->part = static_cast<uint32_t>(part);
      MERIDIAN_RETURN_IF_ERROR(f[1].Bool(&b->last, "anti-entropy states last"));
      std::vector<crdt::Cursor> items;
      MERIDIAN_RETURN_IF_ERROR(f[2].Array(&items, "anti-entropy state entries"));
      if (items.size() > kMaxAeStatesPerMessage) {
        return Status::Corruption("an anti-entropy states message holds " +
                                  std::to_string(items.size()) + " states; at most " +
                                  std::to_string(kMaxAeStatesPerMessage) + " are allowed");
      }
      b->states.reserve(items.size());
      for (const crdt::Cursor& item : items) {
        std::vector<crdt::Cursor> kv;
        MERIDIAN_RETURN_IF_ERROR(item.Array(&kv, "anti-entropy state", 2));
        AeState st;
        MERIDIAN_RETURN_IF_ERROR(BoundedStr(kv[0], &st.key, "state key", 1, kMaxKeyBytes));
        MERIDIAN_RETURN_IF_ERROR(kv[1].Bin(&st.envelope, "state bytes"));
        b->states.push_back(std::move(st));
      }
      MERIDIAN_RETURN_IF_ERROR(DecodeApplied(f[3], &b->applied));
      MERIDIAN_RETURN_IF_ERROR(DecodeApplied(f[4], &b->floor));
      if (!b->last && (!b->applied.empty() || !b->floor.empty())) {
        return Status::Corruption(
            "an anti-entropy states message that is not the last carries "
            "an applied vector");
      }
      return Status::OK();
    }
    case AeKind::kDone:
      MERIDIAN_RETURN_IF_ERROR(c.Array(&f, "anti-entropy done", 3));
      MERIDIAN_RETURN_IF_ERROR(f[0].Bool(&b->in_sync, "anti-entropy in sync"));
      MERIDIAN_RETURN_IF_ERROR(DecodeApplied(f[1], &b->applied));
      MERIDIAN_RETURN_IF_ERROR(DecodeApplied(f[2], &b->floor));
      if (!b->in_sync && (!b->applied.empty() || !b->floor.empty())) {
        return Status::Corruption(
            "an anti-entropy done that is not in sync carries an applied "
            "vector");
      }
      return Status::OK();
  }
  return Status::Corruption("unknown anti-entropy kind");
}

Status DecodeAe(const std::vector<crdt::Cursor>& f, AeBody* b) {
  uint64_t kind = 0;
  MERIDIAN_RETURN_IF_ERROR(f[0].Uint(&kind, "anti-entropy kind"));
  if (!KnownAeKind(kind))
    return Status::Corruption("unknown anti-entropy kind " + std::to_string(kind));
  b->kind = static_cast<AeKind>(kind);
  MERIDIAN_RETURN_IF_ERROR(f[1].Uint(&b->round, "anti-entropy round"));
  MERIDIAN_RETURN_IF_ERROR(f[2].Bool(&b->from_initiator, "anti-entropy side"));
  MERIDIAN_RETURN_IF_ERROR(BoundedStr(f[3], &b->scope, "scope", 0, kMaxScopeBytes));
  return DecodeAePayload(f[4], b);
}

void EncodeNodes(const std::vector<AeNode>& nodes, crdt::Encoder* e) {
  e->Array(static_cast<uint32_t>(nodes.size()));
  for (const AeNode& n : nodes) {
    e->Array(2);
    e->Uint(n.index);
    e->Bin(n.hash.ToBytes());
  }
}

void EncodeApplied(const AeApplied& applied, crdt::Encoder* e) {
  e->Array(static_cast<uint32_t>(applied.size()));
  for (const auto& [id, seq] : applied) {
    e->Array(3);
    crdt::EncodeReplica(id.first, e);
    e->Str(id.second);
    e->Uint(seq);
  }
}

void EncodeAe(const AeBody& b, crdt::Encoder* e) {
  e->Uint(static_cast<uint64_t>(b.kind));
  e->Uint(b.round);
  e->Bool(b.from_initiator);
  e->Str(b.scope);
  switch (b.kind) {
    case AeKind::kBegin:
      e->Array(5);
      e->Uint(static_cast<uint64_t>(b.level));
      EncodeNodes(b.nodes, e);
      EncodeApplied(b.applied, e);
      EncodeApplied(b.floor, e);
      e->Bool(b.source);
      return;
    case AeKind::kHashes:
      e->Array(2);
      e->Uint(static_cast<uint64_t>(b.level));
      EncodeNodes(b.nodes, e);
      return;
    case AeKind::kWant:
      e->Array(1);
      e->Array(static_cast<uint32_t>(b.buckets.size()));
      for (uint32_t bucket : b.buckets) e->Uint(bucket);
      return;
    case AeKind::kStates:
      e->Array(5);
      e->Uint(b.part);
      e->Bool(b.last);
      e->Array(static_cast<uint32_t>(b.states.size()));
      for (const AeState& st : b.states) {
        e->Array(2);
        e->Str(st.key);
        e->Bin(st.envelope);
      }
      EncodeApplied(b.last ? b.applied : AeApplied(), e);
      EncodeApplied(b.last ? b.floor : AeApplied(), e);
      return;
    case AeKind::kDone:
      e->Array(3);
      e->Bool(b.in_sync);
      EncodeApplied(b.in_sync ? b.applied : AeApplied(), e);
      EncodeApplied(b.in_sync ? b.floor : AeApplied(), e);
      return;
  }
  e->Nil();  // an AeKind outside the enum: the frame will not decode
}

Status DecodeBody(const crdt::Cursor& c, uint64_t protocol, Message* m) {
  std::vector<crdt::Cursor> f;
  MERIDIAN_RETURN_IF_ERROR(c.Array(&f, "message body"));
  const size_t want = BodyFields(m->type);
  if (f.size() != want && !(protocol > kProtocolVersion && f.size() > want)) {
    return Status::Corruption(std::string("a ") + TypeName(m->type) + " body has " +
                              std::to_string(f.size()) + " fields; protocol " +
                              std::to_string(kProtocolVersion) + " expects " +
                              std::to_string(want));
  }
  switch (m->type) {
    case MsgType::kHello:
      MERIDIAN_RETURN_IF_ERROR(BoundedStr(f[0], &m->region, "region name", 0, kMaxRegionBytes));
      MERIDIAN_RETURN_IF_ERROR(
          BoundedStr(f[1], &m->policy_hash, "policy hash", 0, kMaxPolicyHashBytes));
      return BoundedStr(f[2], &m->scope, "scope", 0, kMaxScopeBytes);
    case MsgType::kWelcome:
      MERIDIAN_RETURN_IF_ERROR(f[0].Uint(&m->applied, "welcome applied seq"));
      MERIDIAN_RETURN_IF_ERROR(crdt::DecodeReplica(f[1], &m->to));
      return BoundedStr(f[2], &m->scope, "scope", 0, kMaxScopeBytes);
    case MsgType::kRefuse: {
      uint64_t r = 0;
      MERIDIAN_RETURN_IF_ERROR(f[0].Uint(&r, "refusal reason"));
      if (!KnownReason(r)) return Status::Corruption("unknown refusal reason " + std::to_string(r));
      m->reason = static_cast<RefuseReason>(r);
      MERIDIAN_RETURN_IF_ERROR(BoundedStr(f[1], &m->text, "refusal text", 0, kMaxTextBytes));
      MERIDIAN_RETURN_IF_ERROR(crdt::DecodeReplica(f[2], &m->to));
      return BoundedStr(f[3], &m->scope, "scope", 0, kMaxScopeBytes);
    }
    case MsgType::kDeltas:
      MERIDIAN_RETURN_IF_ERROR(BoundedStr(f[0], &m->scope, "scope", 0, kMaxScopeBytes));
      return DecodeDeltas(f[1], &m->deltas);
    case MsgType::kAck:
      MERIDIAN_RETURN_IF_ERROR(BoundedStr(f[0], &m->scope, "scope", 0, kMaxScopeBytes));
      MERIDIAN_RETURN_IF_ERROR(f[1].Uint(&m->seq, "ack seq"));
      return crdt::DecodeReplica(f[2], &m->to);
    case MsgType::kPing:
      MERIDIAN_RETURN_IF_ERROR(f[0].Uint(&m->sent_wall_ms, "ping wall clock"));
      MERIDIAN_RETURN_IF_ERROR(f[1].Uint(&m->seq, "ping log end"));
      MERIDIAN_RETURN_IF_ERROR(DecodeApplied(f[2], &m->vector));
      MERIDIAN_RETURN_IF_ERROR(DecodeRetired(f[3], &m->retired));
      MERIDIAN_RETURN_IF_ERROR(
          BoundedStr(f[4], &m->policy_hash, "policy hash", 0, kMaxPolicyHashBytes));
      return BoundedStr(f[5], &m->scope, "scope", 0, kMaxScopeBytes);
    case MsgType::kPong:
      MERIDIAN_RETURN_IF_ERROR(f[0].Uint(&m->echo_wall_ms, "pong echo"));
      MERIDIAN_RETURN_IF_ERROR(f[1].Uint(&m->pong_wall_ms, "pong wall clock"));
      return BoundedStr(f[2], &m->scope, "scope", 0, kMaxScopeBytes);
    case MsgType::kAntiEntropy:
      return DecodeAe(f, &m->ae);
  }
  return Status::Corruption("unknown message type");
}

}  // namespace

bool Message::operator==(const Message& o) const {
  if (!(header.cluster == o.header.cluster && header.protocol == o.header.protocol &&
        header.from == o.header.from && header.hlc == o.header.hlc &&
        header.wall_ms == o.header.wall_ms && type == o.type)) {
    return false;
  }
  switch (type) {
    case MsgType::kHello:
      return region == o.region && policy_hash == o.policy_hash && scope == o.scope;
    case MsgType::kWelcome:
      return applied == o.applied && to == o.to && scope == o.scope;
    case MsgType::kRefuse:
      return reason == o.reason && text == o.text && to == o.to && scope == o.scope;
    case MsgType::kDeltas:
      return scope == o.scope && deltas == o.deltas;
    case MsgType::kAck:
      return scope == o.scope && seq == o.seq && to == o.to;
    case MsgType::kPing:
      return sent_wall_ms == o.sent_wall_ms && seq == o.seq && vector == o.vector &&
             retired == o.retired && policy_hash == o.policy_hash && scope == o.scope;
    case MsgType::kPong:
      return echo_wall_ms == o.echo_wall_ms && pong_wall_ms == o.pong_wall_ms && scope == o.scope;
    case MsgType::kAntiEntropy:
      return ae == o.ae;
  }
  return true;
}

std::string Encode(const Message& m) {
  crdt::Encoder e(kWireVersion);
  e.Array(3);
  e.Array(5);
  e.Str(m.header.cluster);
  e.Uint(m.header.protocol);
  crdt::EncodeReplica(m.header.from, &e);
  e.Uint(m.header.hlc);
  e.Uint(m.header.wall_ms);
  e.Uint(static_cast<uint64_t>(m.type));
  e.Array(static_cast<uint32_t>(BodyFields(m.type)));
  switch (m.type) {
    case MsgType::kHello:
      e.Str(m.region);
      e.Str(std::string_view(m.policy_hash).substr(0, kMaxPolicyHashBytes));
      e.Str(m.scope);
      break;
    case MsgType::kWelcome:
      e.Uint(m.applied);
      crdt::EncodeReplica(m.to, &e);
      e.Str(m.scope);
      break;
    case MsgType::kRefuse:
      e.Uint(static_cast<uint64_t>(m.reason));
      e.Str(std::string_view(m.text).substr(0, kMaxTextBytes));
      crdt::EncodeReplica(m.to, &e);
      e.Str(m.scope);
      break;
    case MsgType::kDeltas:
      e.Str(m.scope);
      e.Array(static_cast<uint32_t>(m.deltas.size()));
      for (const DeltaEntry& d : m.deltas) {
        e.Array(3);
        e.Uint(d.seq);
        e.Str(d.key);
        e.Bin(d.delta);
      }
      break;
    case MsgType::kAck:
      e.Str(m.scope);
      e.Uint(m.seq);
      crdt::EncodeReplica(m.to, &e);
      break;
    case MsgType::kPing:
      e.Uint(m.sent_wall_ms);
      e.Uint(m.seq);
      EncodeApplied(m.vector, &e);
      e.Array(static_cast<uint32_t>(m.retired.size()));
      for (const crdt::ReplicaId& r : m.retired) crdt::EncodeReplica(r, &e);
      e.Str(std::string_view(m.policy_hash).substr(0, kMaxPolicyHashBytes));
      e.Str(m.scope);
      break;
    case MsgType::kPong:
      e.Uint(m.echo_wall_ms);
      e.Uint(m.pong_wall_ms);
      e.Str(m.scope);
      break;
    case MsgType::kAntiEntropy:
      EncodeAe(m.ae, &e);
      break;
  }
  return e.Take();
}

Status Decode(std::string_view bytes, Message* out) {
  if (bytes.size() > kMaxFrameBytes) {
    return Status::InvalidArgument("gossip frame of " + std::to_string(bytes.size()) +
                                   " bytes exceeds the limit of " + std::to_string(kMaxFrameBytes));
  }
  crdt::Decoder d;
  Status s = d.Parse(bytes, kWireVersion);
  if (!s.ok()) return s.WithContext("gossip frame");
  std::vector<crdt::Cursor> top;
  s = d.root().Array(&top, "gossip frame", 3);
  if (!s.ok()) return s;
  Message m;
  s = DecodeHeader(top[0], &m.header);
  if (!s.ok()) return s.WithContext("gossip frame header");
  uint64_t type = 0;
  MERIDIAN_RETURN_IF_ERROR(top[1].Uint(&type, "message type"));
  if (!KnownType(type)) return Status::Corruption("unknown message type " + std::to_string(type));
  m.type = static_cast<MsgType>(type);
  s = DecodeBody(top[2], m.header.protocol, &m);
  if (!s.ok()) return s.WithContext(std::string("gossip ") + TypeName(m.type) + " message");
  *out = std::move(m);
  return Status::OK();
}

const char* TypeName(MsgType t) {
  switch (t) {
    case MsgType::kHello:
      return "hello";
    case MsgType::kWelcome:
      return "welcome";
    case MsgType::kRefuse:
      return "refuse";
    case MsgType::kDeltas:
      return "deltas";
    case MsgType::kAck:
      return "ack";
    case MsgType::kPing:
      return "ping";
    case MsgType::kPong:
      return "pong";
    case MsgType::kAntiEntropy:
      return "anti_entropy";
  }
  return "unknown";
}

const std::string& MessageScope(const Message& m) {
  return m.type == MsgType::kAntiEntropy ? m.ae.scope : m.scope;
}

const char* ReasonName(RefuseReason r) {
  switch (r) {
    case RefuseReason::kWrongCluster:
      return "wrong_cluster";
    case RefuseReason::kWrongProtocol:
      return "wrong_protocol";
    case RefuseReason::kUnknownNode:
      return "unknown_node";
    case RefuseReason::kNoHandshake:
      return "no_handshake";
    case RefuseReason::kClockAhead:
      return "clock_ahead";
    case RefuseReason::kExpired:
      return "expired";
  }
  return "unknown";
}

}  // namespace meridian::gossip
