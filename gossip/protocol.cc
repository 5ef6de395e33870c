// The replication state machine (protocol.h). Everything here is driven by
// the caller's Now; nothing reads a clock, sleeps or touches a socket.
//
// Per peer it keeps three independent things:
//   - the outbound session (we ship our log to it): welcomed, acked,
//     cursor, the Hello retry timer and the resend timer;
//   - the inbound session (it ships its log to us): the replica whose
//     Hello we accepted; Deltas from any other replica are refused;
//   - liveness and clock: when it was last heard, its state, the Pings in
//     flight, the clock samples (round-trip ones from Pongs, and a one-way
//     one from the last message refused for its HLC) and whether it
//     refuses our messages for our HLC.
// Per origin (replica, scope) it keeps what is applied (durable, in
// applied), what is handed out in ApplyRequests (applying), and the
// entries held back behind a gap.
#include "gossip/protocol.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <set>
#include <utility>

namespace meridian::gossip {
namespace {

constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();
// Repeated log lines of one kind about one peer: at most one per window.
constexpr uint64_t kLogWindowMs = 10000;
constexpr size_t kMaxLogKeys = 1024;
// Pings kept for matching Pongs, per peer.
constexpr size_t kMaxPingsInFlight = 32;
// OnLocalAppend records kept for lag/bytes; beyond this the oldest two
// are merged (the oldest wall time is kept, so lag stays exact for the
// slowest peer).
constexpr size_t kMaxAppendRecords = 65536;
// Clock values from the network are clamped to this before any
// arithmetic, so no sender can make it overflow (2^62 ms is far beyond any
// real clock).
constexpr uint64_t kClockClamp = uint64_t{1} << 62;
// Rounding of whole-millisecond clocks when round-trip samples are compared.
constexpr uint64_t kClockSlackMs = 2;

uint64_t SatSub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }
uint64_t SatAdd(uint64_t a, uint64_t b) { return a > kNever - b ? kNever : a + b; }

// Node ids and texts from the network may hold anything; logs get them
// with control and non-ASCII bytes escaped.
std::string Printable(const std::string& s) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// |a - b| without overflow (any two int64_t are less than 2^64 apart).
uint64_t Gap(int64_t a, int64_t b) {
  return a >= b ? static_cast<uint64_t>(a) - static_cast<uint64_t>(b)
                : static_cast<uint64_t>(b) - static_cast<uint64_t>(a);
}

std::string SignedMs(int64_t v) { return (v >= 0 ? "+" : "") + std::to_string(v) + " ms"; }

// The hash as it travels (Encode cuts it there too), so that what peers
// compare with is what this node compares with.
std::string PolicyHashOf(std::string hash) {
  if (hash.size() > kMaxPolicyHashBytes) hash.resize(kMaxPolicyHashBytes);
  return hash;
}

}  // namespace

const char* PeerStateName(PeerState s) {
  switch (s) {
    case PeerState::kUnknown:
      return "unknown";
    case PeerState::kUp:
      return "up";
    case PeerState::kSuspect:
      return "suspect";
    case PeerState::kDown:
      return "down";
  }
  return "unknown";
}

void Effects::Clear() {
  sends.clear();
  ships.clear();
  applies.clear();
  peer_events.clear();
  ae_reads.clear();
  ae_repairs.clear();
  truncates.clear();
  expirations.clear();
  rejoin = false;
  observed_hlc = 0;
  logs.clear();
}

struct Protocol::Impl {
  struct ClockSample {
    uint64_t rtt_ms = 0;  // 0 for a one-way sample (round trip unknown)
    int64_t offset_ms = 0;
  };

  // What Admit decided about a message's header.
  enum class Admission { kAccepted, kRefusedClock, kRefused };

  struct Peer {
    std::string node;
    std::string region;

    // Liveness.
    PeerState state = PeerState::kUnknown;
    bool heard = false;
    uint64_t last_heard_ms = 0;  // mono
    crdt::ReplicaId replica;     // as last heard in an accepted header
    uint64_t max_incarnation = 0;  // the highest incarnation heard from it

    // Inbound session: the replica whose Hello we accepted (node empty:
    // none since start).
    crdt::ReplicaId inbound;

    // Outbound session.
    bool welcomed = false;
    crdt::ReplicaId welcomed_by;  // the replica that sent the Welcome
    uint64_t acked = 0;
    bool acked_known = false;    // a Welcome said how much it holds, since start
    uint64_t cursor = 0;
    uint64_t progress_ms = 0;    // last ack progress, or when shipping past acked began
    uint64_t hold_until_ms = 0;  // after OnShipFailed: no shipping before this
    uint64_t next_hello_ms = 0;

    // Clock.
    std::deque<std::pair<uint64_t, uint64_t>> pings;  // (sent wall, sent mono)
    std::deque<ClockSample> samples;                  // round trip: Pongs to our Pings
    // One-way: the header wall clock of the last message refused for its
    // HLC; the estimate only while no round-trip sample is kept.
    bool has_one_way = false;
    ClockSample one_way;
    // It refused a message of ours for our HLC (kClockAhead): this node's
    // clock is beyond the limit ahead of its. Cleared by a Pong to a Ping
    // sent at or after that Refuse arrived (the peer took a later message).
    bool refuses_our_clock = false;
    uint64_t refused_our_clock_ms = 0;  // mono, when the last such Refuse arrived
    // The samples are from before it was last down: they still count
    // against this node's clock, never for it, and the first new sample
    // replaces them all.
    bool clock_stale = false;

    // Its own log as its last Ping announced it (log_end of the replica
    // that sent it), and since when (mono) this node has not applied all
    // of it (kNever: it has).
    crdt::ReplicaId log_end_replica;
    uint64_t log_end = 0;
    uint64_t behind_since_ms = kNever;
    // Its last Ping said it holds nothing (log end 0, an applied vector of
    // zeros), and when (mono) it came; whether the last Begin of
    // begin_from said it may be bootstrapped from (AeBody::source).
    bool ping_holds_nothing = false;
    uint64_t ping_ms = 0;
    crdt::ReplicaId begin_from;
    bool begin_source = true;
    // It came up (from down or unknown): a round starts with it as soon as
    // it is ready for one (AeReady).
    bool ae_up_pending = false;

    // Log collection: whether it pinned the log at the last truncation
    // (for logging changes), and whether it was last seen beyond the log.
    bool pinning = true;
    bool beyond_log = false;

    // Causal stability: the applied vector its last Ping reported (of the
    // replica in reported_by), and the latest report this node's own
    // applied vector covered when it was made usable (has_usable).
    crdt::ReplicaId reported_by;
    Applied reported;
    Applied usable;
    bool has_usable = false;

    // Retention horizon: its incarnations up to this one are retired (0:
    // none).
    uint64_t expired_through = 0;
    uint64_t expired_before = 0;  // its value before the last expiration
    // Its last two-way contact with this node (mono): a Pong to our Ping,
    // or a Welcome or Ack addressed to us.
    bool contacted = false;
    uint64_t contact_ms = 0;
    // Anything from it at all, refused or not (mono; 0: nothing since the
    // start), and whether its retired incarnation is left out of Stable()
    // (retired, and nothing of it heard for longer than the horizon: a
    // successor that may hold less than this node collected has not shown
    // up either).
    uint64_t any_heard_ms = 0;
    bool excluded = false;

    // Policy set: its hash as its last accepted Hello or Ping said
    // (policy_known: one came since the start), and whether it differed
    // from this node's when last logged.
    bool policy_known = false;
    std::string policy_hash;
    bool policy_mismatch_logged = false;
  };

  struct Origin {
    uint64_t applying = 0;  // last seq handed out in ApplyRequests (>= applied)
    std::map<uint64_t, DeltaEntry> held;
  };

  // The own log ended at last_seq at wall_ms; cum_bytes: every byte
  // reported by OnLocalAppend since the start, up to this record.
  struct AppendRecord {
    uint64_t last_seq = 0;
    uint64_t wall_ms = 0;
    uint64_t cum_bytes = 0;
  };

  struct LogLimit {
    uint64_t last_ms = 0;
    uint64_t suppressed = 0;
  };

  ProtocolOptions opt;
  Now start;
  Applied applied;
  std::vector<Peer> peers;
  std::map<std::string, size_t> peer_index;
  std::map<std::pair<crdt::ReplicaId, std::string>, Origin> origins;
  // The own log (of this scope), ascending by last_seq; never empty once
  // something is logged.
  std::deque<AppendRecord> appends;
  uint64_t trimmed_cum_bytes = 0;  // cum_bytes of the last record trimmed away
  uint64_t log_start = 1;          // the lowest own seq not yet truncated
  uint64_t next_heartbeat_ms = 0;
  bool start_gate_passed = false;
  ProtocolCounters counters;
  std::map<std::pair<std::string, std::string>, LogLimit> log_limits;
  std::unique_ptr<AntiEntropy> ae;  // null: no anti-entropy
  uint64_t next_all_up_round_ms = 0;  // see ProtocolOptions::ae_all_up_interval_ms
  // Since when a scheduled round has been due while every peer is up
  // (kNever: none is); see ProtocolOptions::ae_all_up_max_wait_ms.
  uint64_t all_up_due_since_ms = kNever;
  // When this node last appended to its log or received deltas.
  uint64_t last_delta_activity_ms = 0;
  // Retention horizon, this node's side: when it last had two-way contact
  // with a majority of the cluster (mono; before any since the start, the
  // start less how long it had been absent then), and its wall clock then.
  bool contact_since_start = false;
  uint64_t last_contact_mono = 0;
  uint64_t absent_at_start_ms = 0;
  uint64_t last_contact_wall = 0;
  bool beyond_horizon = false;
  bool rejoining = false;
  // Repairs refused because this node has not applied all of the sender's
  // collection floor (see TakeAe): the floors not covered, and since when.
  Applied below_floor;
  uint64_t below_floor_since_ms = kNever;
  bool rejoin_below_floor = false;  // rejoining for that, not for a retirement

  Impl(ProtocolOptions o, Applied a, Now s, ViewSource* views)
      : opt(std::move(o)), start(s) {
    // This Protocol's scope alone: other scopes have their own.
    for (auto& [key, seq] : a) {
      if (key.second == opt.scope) applied.emplace(key, seq);
    }
    opt.anti_entropy.scope = opt.scope;
    opt.policy_hash = PolicyHashOf(std::move(opt.policy_hash));
    if (opt.heartbeat_interval_ms == 0) opt.heartbeat_interval_ms = 1;
    if (opt.max_deltas_per_message == 0) opt.max_deltas_per_message = 1;
    if (opt.max_deltas_per_message > kMaxDeltasPerMessage) {
      opt.max_deltas_per_message = kMaxDeltasPerMessage;
    }
    if (opt.window == 0) opt.window = 1;
    if (opt.clock_samples_kept == 0) opt.clock_samples_kept = 1;
    if (opt.down_after_missed < opt.suspect_after_missed) {
      opt.down_after_missed = opt.suspect_after_missed;
    }
    for (const PeerConfig& pc : opt.peers) {
      if (pc.node == opt.self.node || peer_index.count(pc.node) != 0) continue;
      Peer p;
      p.node = pc.node;
      p.region = pc.region;
      p.next_hello_ms = start.mono_ms;
      auto ex = opt.expired.find(p.node);
      if (ex != opt.expired.end()) p.expired_through = ex->second;
      peer_index[p.node] = peers.size();
      peers.push_back(std::move(p));
    }
    next_heartbeat_ms = start.mono_ms;
    if (views != nullptr) {
      std::vector<std::string> names;
      for (const Peer& p : peers) names.push_back(p.node);
      ae = std::make_unique<AntiEntropy>(opt.anti_entropy, std::move(names), views);
    }
    log_start = SatAdd(OwnLast(opt.scope), 1);
    if (opt.log_first_seq != 0) log_start = std::min(log_start, opt.log_first_seq);
    // Deltas logged before the start count as appended at the start.
    if (OwnLast(opt.scope) > 0) {
      appends.push_back(AppendRecord{OwnLast(opt.scope), start.wall_ms, 0});
    }
    last_contact_wall = opt.last_contact_wall_ms;
    if (last_contact_wall == 0 || last_contact_wall > start.wall_ms) {
      last_contact_wall = start.wall_ms;
    }
    absent_at_start_ms = start.wall_ms - last_contact_wall;
    UpdateHorizon(start, nullptr);
    UpdateStartGate();
  }

  // --- Small helpers -------------------------------------------------------

  uint64_t Interval(uint32_t n) const { return opt.heartbeat_interval_ms * uint64_t{n}; }

  uint64_t OwnLast(const std::string& scope) const {
    auto it = applied.find({opt.self, scope});
    return it == applied.end() ? 0 : it->second;
  }

  uint64_t AppliedOf(const crdt::ReplicaId& origin, const std::string& scope) const {
    auto it = applied.find({origin, scope});
    return it == applied.end() ? 0 : it->second;
  }

  Peer* FindPeer(const std::string& node) {
    auto it = peer_index.find(node);
    return it == peer_index.end() ? nullptr : &peers[it->second];
  }

  Header MakeHeader(const Now& now) const {
    Header h;
    h.cluster = opt.cluster;
    h.protocol = kProtocolVersion;
    h.from = opt.self;
    h.hlc = now.hlc;
    h.wall_ms = now.wall_ms;
    return h;
  }

  // Messages go only to nodes of the topology.
  void Send(const Now& now, const std::string& node, Message m, Effects* out) {
    if (peer_index.count(node) == 0) return;
    m.header = MakeHeader(now);
    if (m.type != MsgType::kAntiEntropy) m.scope = opt.scope;
    out->sends.emplace_back(node, std::move(m));
  }

  // Logs `text` unless a line with the same (who, what) went out within
  // kLogWindowMs; suppressed lines are counted in the next one.
  void LogLimited(const Now& now, const std::string& who, const std::string& what,
                  const std::string& text, Effects* out) {
    auto key = std::make_pair(who, what);
    auto it = log_limits.find(key);
    if (it == log_limits.end()) {
      if (log_limits.size() >= kMaxLogKeys) log_limits.clear();
      log_limits[key] = LogLimit{now.mono_ms, 0};
      out->logs.push_back(text);
      return;
    }
    LogLimit& l = it->second;
    if (now.mono_ms - std::min(now.mono_ms, l.last_ms) < kLogWindowMs) {
      ++l.suppressed;
      return;
    }
    std::string line = text;
    if (l.suppressed > 0) {
      line += " (" + std::to_string(l.suppressed) + " more like this since the last report)";
    }
    l.last_ms = now.mono_ms;
    l.suppressed = 0;
    out->logs.push_back(line);
  }

  void SetState(const Now& now, Peer& p, PeerState to, const std::string& why, Effects* out) {
    if (p.state == to) return;
    out->peer_events.push_back(PeerEvent{p.node, p.state, to});
    out->logs.push_back("gossip: peer " + p.node + " (" + p.region + ") is " + PeerStateName(to) +
                        " (was " + PeerStateName(p.state) + "): " + why);
    if (ae && to == PeerState::kUp &&
        (p.state == PeerState::kDown || p.state == PeerState::kUnknown)) {
      p.ae_up_pending = true;
    }
    p.state = to;
    if (ae && to == PeerState::kDown) {
      p.ae_up_pending = false;
      ae->PeerDown(p.node);
      DrainAe(now, out);
    }
    if (to == PeerState::kDown) {
      // It may come back restarted: welcome it afresh, resend from acked,
      // and measure its clock again. What was known of its clock is kept
      // until then (stale), so that a node whose clock it found off is not
      // taken as in range the moment it is back and not yet measured.
      EndOutbound(p);
      p.pings.clear();
      p.clock_stale = true;
    }
  }

  // Cursor back to what the peer acknowledged; the range goes again.
  void FallBack(Peer& p) {
    if (p.cursor > p.acked) ++counters.resends;
    p.cursor = p.acked;
  }

  void EndOutbound(Peer& p) {
    p.welcomed = false;
    FallBack(p);
  }

  void SendHello(const Now& now, Peer& p, Effects* out) {
    Message m;
    m.type = MsgType::kHello;
    m.region = opt.region;
    m.policy_hash = opt.policy_hash;
    Send(now, p.node, std::move(m), out);
    p.next_hello_ms = SatAdd(now.mono_ms, opt.heartbeat_interval_ms);
  }

  void SendRefuse(const Now& now, const std::string& node, RefuseReason r, std::string text,
                  const crdt::ReplicaId& to, Effects* out) {
    Message m;
    m.type = MsgType::kRefuse;
    m.reason = r;
    m.text = std::move(text);
    m.to = to;
    Send(now, node, std::move(m), out);
  }

  void SendAck(const Now& now, const crdt::ReplicaId& origin, const std::string& scope,
               Effects* out) {
    Peer* p = FindPeer(origin.node);
    // An Ack names no incarnation: send it only while `origin` is the
    // replica that node currently ships from, so a successor incarnation
    // never reads an Ack meant for its predecessor.
    if (p == nullptr || p->inbound != origin) return;
    Message m;
    m.type = MsgType::kAck;
    m.scope = scope;
    m.seq = AppliedOf(origin, scope);
    m.to = origin;
    Send(now, p->node, std::move(m), out);
  }

  // --- Shipping --------------------------------------------------------------

  void MaybeShip(const Now& now, Peer& p, Effects* out) {
    if (!p.welcomed || now.mono_ms < p.hold_until_ms || Withholding()) return;
    p.hold_until_ms = 0;
    if (p.cursor < p.acked) p.cursor = p.acked;
    if (BeyondLog(p)) {
      // What it lacks is truncated: anti-entropy repairs it, now.
      if (!p.beyond_log) {
        p.beyond_log = true;
        p.ae_up_pending = true;
        ++counters.beyond_log;
        out->logs.push_back("gossip: peer " + p.node + " holds this node's log up to seq " +
                            std::to_string(p.acked) + ", but the log now starts at seq " +
                            std::to_string(log_start) +
                            " (the rest was collected); anti-entropy repairs it");
      }
      return;
    }
    p.beyond_log = false;
    const uint64_t limit = std::min(OwnLast(opt.scope), SatAdd(p.acked, opt.window));
    if (p.cursor >= limit) return;
    if (p.cursor == p.acked) p.progress_ms = now.mono_ms;  // the resend timer starts now
    while (p.cursor < limit) {
      uint64_t to = std::min(limit, SatAdd(p.cursor, opt.max_deltas_per_message));
      out->ships.push_back(ShipRequest{p.node, opt.scope, p.cursor + 1, to});
      counters.deltas_shipped += to - p.cursor;
      p.cursor = to;
    }
  }

  // --- Receiving -------------------------------------------------------------

  // Header checks: kAccepted when the message may be handled. Any message
  // from a node of the topology marks it heard, even one refused here: the
  // node is alive, whatever it says. Accepted HLCs are collected; refused
  // ones never are.
  Admission Admit(const Now& now, const Message& msg, Effects* out) {
    const Header& h = msg.header;
    const bool is_refuse = msg.type == MsgType::kRefuse;
    Peer* p = FindPeer(h.from.node);
    if (p == nullptr) {
      ++counters.refused_other;
      // No DEALER leads to a node outside the topology: count and log only,
      // at most one line per window for all such nodes together (their ids
      // are whatever the sender chose).
      LogLimited(now, "", "unknown_node",
                 "gossip: refused a " + std::string(TypeName(msg.type)) + " from node '" +
                     Printable(h.from.node) + "', which is not a peer in this topology",
                 out);
      return Admission::kRefused;
    }
    if (h.from.incarnation < p->max_incarnation) {
      // From an earlier incarnation of that node, still in flight when it
      // lost its data (incarnations grow: DESIGN.md §3): its Welcome, Ack
      // or anything else would speak for a log and a state that are gone.
      ++counters.refused_other;
      LogLimited(now, p->node, "stale_incarnation",
                 "gossip: dropped a " + std::string(TypeName(msg.type)) + " from " +
                     h.from.ToString() + ", an earlier incarnation than " + p->node + "#" +
                     std::to_string(p->max_incarnation),
                 out);
      return Admission::kRefused;
    }
    p->any_heard_ms = now.mono_ms;
    if (p->excluded) p->excluded = false;  // something of it is alive: it counts again
    if (p->expired_through > 0 && h.from.incarnation <= p->expired_through) {
      // A retired incarnation (see "Retention horizon"): not a peer any
      // more, whatever it says; it must rejoin as a new one.
      ++counters.refused_expired;
      if (is_refuse && msg.reason == RefuseReason::kExpired && msg.to == opt.self) {
        OnRetiredBy(now, *p, msg, /*mutual=*/true, out);
        return Admission::kRefused;
      }
      LogLimited(now, p->node, "expired",
                 "gossip: refused a " + std::string(TypeName(msg.type)) + " from " +
                     h.from.ToString() + ": this node retired " + p->node +
                     "'s incarnations up to " + std::to_string(p->expired_through) +
                     " (away longer than the retention horizon)",
                 out);
      if (!is_refuse) {
        SendRefuse(now, p->node, RefuseReason::kExpired,
                   "this node retired your incarnation " + std::to_string(h.from.incarnation) +
                       ": it was not heard for longer than the retention horizon (" +
                       std::to_string(opt.retention_horizon_ms) +
                       " ms); rejoin as a new incarnation",
                   h.from, out);
      }
      return Admission::kRefused;
    }
    MarkHeard(now, *p, out);
    if (h.cluster != opt.cluster) {
      ++counters.refused_other;
      LogLimited(now, p->node, "wrong_cluster",
                 "gossip: refused a " + std::string(TypeName(msg.type)) + " from " + p->node +
                     ": it belongs to cluster '" + Printable(h.cluster) + "', this node to '" +
                     opt.cluster + "'",
                 out);
      if (!is_refuse) {
        SendRefuse(now, p->node, RefuseReason::kWrongCluster,
                   "this node belongs to cluster '" + opt.cluster + "', not '" +
                       Printable(h.cluster) + "'",
                   h.from, out);
      }
      return Admission::kRefused;
    }
    if (h.protocol != kProtocolVersion) {
      ++counters.refused_other;
      LogLimited(now, p->node, "wrong_protocol",
                 "gossip: refused a " + std::string(TypeName(msg.type)) + " from " + p->node +
                     ": it speaks protocol " + std::to_string(h.protocol) + ", this node " +
                     std::to_string(kProtocolVersion),
                 out);
      if (!is_refuse) {
        SendRefuse(now, p->node, RefuseReason::kWrongProtocol,
                   "this node speaks gossip protocol " + std::to_string(kProtocolVersion) +
                       ", not " + std::to_string(h.protocol),
                   h.from, out);
      }
      return Admission::kRefused;
    }
    const uint64_t phys = crdt::HlcPhysicalMs(h.hlc);
    const uint64_t limit = SatAdd(now.wall_ms, opt.max_clock_offset_ms);
    if (phys > limit) {
      ++counters.refused_clock_offset;
      const std::string ahead = std::to_string(phys - now.wall_ms);
      LogLimited(now, p->node, "clock_ahead",
                 "gossip: refused a " + std::string(TypeName(msg.type)) + " from " + p->node +
                     ": its clock is " + ahead + " ms ahead of this node's, beyond " +
                     "max_clock_offset_ms " + std::to_string(opt.max_clock_offset_ms),
                 out);
      if (!is_refuse) {
        SendRefuse(now, p->node, RefuseReason::kClockAhead,
                   "your hlc is " + ahead + " ms ahead of this node's wall clock; the limit is " +
                       std::to_string(opt.max_clock_offset_ms) + " ms",
                   h.from, out);
      }
      return Admission::kRefusedClock;
    }
    p->replica = h.from;
    p->max_incarnation = std::max(p->max_incarnation, h.from.incarnation);
    out->observed_hlc = std::max(out->observed_hlc, h.hlc);
    return Admission::kAccepted;
  }

  // A message refused for its HLC is not handled and its HLC is not
  // absorbed, but its clock values still tell this node how far off the
  // peer is, which is what the write gate needs (a peer beyond the limit
  // would otherwise never be measured again): a Pong gives a round-trip
  // sample as usual, anything else a one-way sample from its header's wall
  // clock. A Refuse saying our HLC is too far ahead is a fact about our
  // clock whatever the sender's clock is, so it counts too.
  void OnRefusedForClock(const Now& now, Peer& p, const Message& msg) {
    if (msg.type == MsgType::kPong) {
      OnPong(now, p, msg);
    } else {
      DropStaleClock(p);
      ClockSample s;
      s.offset_ms = static_cast<int64_t>(std::min(msg.header.wall_ms, kClockClamp)) -
                    static_cast<int64_t>(std::min(now.wall_ms, kClockClamp));
      // The true offset is this plus the one-way delay, so at least this: a
      // kept round-trip sample whose range ends below it is from before a
      // clock stepped, and they all go (the one-way sample is the estimate
      // until the next round trip).
      for (const ClockSample& old : p.samples) {
        if (s.offset_ms > old.offset_ms &&
            Gap(s.offset_ms, old.offset_ms) > old.rtt_ms / 2 + kClockSlackMs) {
          p.samples.clear();
          break;
        }
      }
      p.one_way = s;
      p.has_one_way = true;
    }
    if (msg.type == MsgType::kRefuse && msg.reason == RefuseReason::kClockAhead) {
      MarkRefusesOurClock(now, p);
    }
  }

  void MarkRefusesOurClock(const Now& now, Peer& p) {
    p.refuses_our_clock = true;
    p.refused_our_clock_ms = now.mono_ms;
  }

  void MarkHeard(const Now& now, Peer& p, Effects* out) {
    p.heard = true;
    p.last_heard_ms = now.mono_ms;
    if (p.state != PeerState::kUp) SetState(now, p, PeerState::kUp, "heard from it", out);
  }

  bool PolicyMismatch(const Peer& p) const {
    return p.policy_known && p.policy_hash != opt.policy_hash;
  }

  // A Hello or Ping accepted from `p` says its policy-set hash; whether it
  // differs from this node's is logged when that changes.
  void TakePolicyHash(Peer& p, const std::string& hash, Effects* out) {
    p.policy_known = true;
    p.policy_hash = hash;
    const bool mismatch = PolicyMismatch(p);
    if (mismatch == p.policy_mismatch_logged) return;
    p.policy_mismatch_logged = mismatch;
    if (mismatch) {
      out->logs.push_back("gossip: peer " + p.node + " (" + p.region + ") has policy set hash '" +
                          Printable(hash) + "', this node '" + Printable(opt.policy_hash) +
                          "': their conflict policies differ");
    } else {
      out->logs.push_back("gossip: peer " + p.node + " (" + p.region +
                          ") now has this node's policy set hash '" + Printable(opt.policy_hash) +
                          "'");
    }
  }

  // `was_down`: the peer's state before this message marked it up.
  void OnHello(const Now& now, Peer& p, const Message& msg, bool was_down, Effects* out) {
    const crdt::ReplicaId& from = msg.header.from;
    TakePolicyHash(p, msg.policy_hash, out);
    const bool changed = (!p.inbound.node.empty() && p.inbound != from) ||
                         (!p.welcomed_by.node.empty() && p.welcomed_by != from);
    if (msg.region != p.region) {
      LogLimited(now, p.node, "region",
                 "gossip: peer " + p.node + " says it is in region '" + Printable(msg.region) +
                     "', the topology says '" + p.region + "'; the topology is used",
                 out);
    }
    if (p.inbound != from) {
      if (!p.inbound.node.empty()) {
        // Its predecessor will not send again: drop what was held for it.
        for (auto it = origins.begin(); it != origins.end(); ++it) {
          if (it->first.first == p.inbound) it->second.held.clear();
        }
      }
      out->logs.push_back("gossip: accepted hello from " + from.ToString() + "; it holds " +
                          std::to_string(AppliedOf(from, opt.scope)) + " of its log here");
    }
    p.inbound = from;
    Message w;
    w.type = MsgType::kWelcome;
    w.applied = AppliedOf(from, opt.scope);
    w.to = from;
    Send(now, p.node, std::move(w), out);
    if (changed || was_down) {
      // It restarted or was away: its handshake state is gone, so ours
      // towards it starts again now. A new incarnation lost its data, so
      // what the old one acknowledged no longer counts.
      EndOutbound(p);
      if (changed) p.acked = p.cursor = 0;
      p.welcomed_by = crdt::ReplicaId();
      SendHello(now, p, out);
    }
  }

  void OnWelcome(const Now& now, Peer& p, const Message& msg, Effects* out) {
    const crdt::ReplicaId& from = msg.header.from;
    // An answer to a Hello of an earlier incarnation of this node (still
    // in flight when it lost its data): it counts another log.
    if (msg.to != opt.self) return;
    Contact(now, p, out);
    const uint64_t own_last = OwnLast(opt.scope);
    if (msg.applied > own_last) {
      LogLimited(now, p.node, "welcome_ahead",
                 "gossip: peer " + from.ToString() + " holds " + std::to_string(msg.applied) +
                     " of this node's log, which ends at " + std::to_string(own_last) +
                     " (log entries lost after they were shipped?)",
                 out);
    }
    if (p.welcomed && p.welcomed_by == from) {
      // A late answer to a repeated Hello: never move backwards.
      if (msg.applied > p.acked) {
        p.acked = msg.applied;
        p.progress_ms = now.mono_ms;
      }
      p.cursor = std::max(p.cursor, p.acked);
    } else {
      p.welcomed = true;
      p.welcomed_by = from;
      p.acked_known = true;
      p.acked = msg.applied;
      p.cursor = msg.applied;
      p.progress_ms = now.mono_ms;
      p.hold_until_ms = 0;
      out->logs.push_back("gossip: welcomed by " + from.ToString() + "; shipping from seq " +
                          std::to_string(msg.applied + 1));
    }
    MaybeShip(now, p, out);
  }

  void OnRefuse(const Now& now, Peer& p, const Message& msg, Effects* out) {
    ++counters.refusals_received;
    LogLimited(now, p.node, std::string("refused_") + ReasonName(msg.reason),
               "gossip: peer " + p.node + " refused our messages (" + ReasonName(msg.reason) +
                   "): " + Printable(msg.text),
               out);
    if (msg.reason == RefuseReason::kClockAhead) MarkRefusesOurClock(now, p);
    if (msg.reason == RefuseReason::kExpired && msg.to == opt.self) {
      OnRetiredBy(now, p, msg, /*mutual=*/false, out);
    }
    if (msg.reason == RefuseReason::kNoHandshake && p.welcomed) {
      // It lost our session (it restarted): say Hello again.
      EndOutbound(p);
      p.welcomed_by = crdt::ReplicaId();
      SendHello(now, p, out);
    }
  }

  void OnDeltas(const Now& now, Peer& p, const Message& msg, Effects* out) {
    const crdt::ReplicaId& origin = msg.header.from;
    if (p.inbound != origin) {
      ++counters.refused_other;
      LogLimited(now, p.node, "no_handshake",
                 "gossip: refused deltas from " + origin.ToString() +
                     ": no hello accepted from that replica since this node started",
                 out);
      SendRefuse(now, p.node, RefuseReason::kNoHandshake,
                 "no session with " + origin.ToString() + ": send hello", origin, out);
      return;
    }
    if (ae && !ae->bootstrapped()) {
      // A fresh incarnation takes its first state whole from a repair,
      // which advances its applied vector past the log entries it could
      // apply now. Applying them first could keep a value whose delete a
      // peer has since collected: the repair's states no longer hold that
      // delete, and its advance would then vouch for the stale value.
      // The origin resends them, and they count as duplicates after.
      counters.deltas_received += msg.deltas.size();
      counters.deltas_deferred += msg.deltas.size();
      return;
    }
    const auto key = std::make_pair(origin, msg.scope);
    Origin& o = origins[key];
    const uint64_t applied_seq = AppliedOf(origin, msg.scope);
    if (o.applying < applied_seq) o.applying = applied_seq;
    ApplyRequest req;
    bool reack = false;
    // Moves held entries that have become next into the request.
    auto drain = [&] {
      while (!o.held.empty() && o.held.begin()->first <= o.applying + 1) {
        auto it = o.held.begin();
        if (it->first == o.applying + 1) {
          req.entries.push_back(std::move(it->second));
          ++o.applying;
        }
        o.held.erase(it);
      }
    };
    drain();
    for (const DeltaEntry& e : msg.deltas) {
      ++counters.deltas_received;
      if (e.seq <= applied_seq) {
        ++counters.deltas_duplicate;
        reack = true;
      } else if (e.seq <= o.applying) {
        ++counters.deltas_duplicate;  // in flight to the applier already
      } else if (e.seq == o.applying + 1) {
        req.entries.push_back(e);
        ++o.applying;
        drain();
      } else if (o.held.count(e.seq) != 0) {
        ++counters.deltas_duplicate;
      } else if (o.held.size() < opt.max_held_back) {
        o.held.emplace(e.seq, e);
      } else if (!o.held.empty() && e.seq < o.held.rbegin()->first) {
        // Keep the entries nearest the gap; the farthest comes again.
        o.held.erase(std::prev(o.held.end()));
        o.held.emplace(e.seq, e);
      }
      // else: dropped; the sender resends it.
    }
    if (!req.entries.empty()) {
      req.origin = origin;
      req.scope = msg.scope;
      out->applies.push_back(std::move(req));
    }
    if (reack) SendAck(now, origin, msg.scope, out);
  }

  void OnAck(const Now& now, Peer& p, const Message& msg, Effects* out) {
    if (msg.scope != opt.scope) return;  // another scope's Ack
    if (msg.to != opt.self) return;          // about an earlier incarnation's log
    Contact(now, p, out);
    // Acks before the Welcome, or from another incarnation than the one
    // that welcomed us, may be about a different log: the Welcome says.
    if (!p.welcomed || p.welcomed_by != msg.header.from) return;
    if (msg.seq <= p.acked) return;
    p.acked = msg.seq;
    p.progress_ms = now.mono_ms;
    if (p.cursor < p.acked) p.cursor = p.acked;
    TrimAppends();
    MaybeShip(now, p, out);
  }

  // --- Causal stability ------------------------------------------------------

  // Whether this node has applied everything `v` holds (this scope).
  bool CoversReport(const Applied& v) const {
    for (const auto& [key, seq] : v) {
      if (key.second != opt.scope) continue;
      if (AppliedOf(key.first, opt.scope) < seq) return false;
    }
    return true;
  }

  // The peer's last report becomes usable once this node holds all of it.
  void PromoteReport(Peer& p) {
    if (p.reported_by.node.empty() || (p.has_usable && p.usable == p.reported)) return;
    if (!CoversReport(p.reported)) return;
    p.usable = p.reported;
    p.has_usable = true;
  }

  void PromoteReports() {
    for (Peer& p : peers) PromoteReport(p);
  }

  void OnPing(const Now& now, Peer& p, const Message& msg, Effects* out) {
    TakePolicyHash(p, msg.policy_hash, out);
    if (p.reported_by != msg.header.from) {
      // Another incarnation: what the earlier one reported no longer
      // counts (it is retired by its successor's reports).
      p.reported_by = msg.header.from;
      p.usable.clear();
      p.has_usable = false;
    }
    p.reported.clear();
    for (const auto& [key, seq] : msg.vector) {
      if (key.second == opt.scope) p.reported[key] = seq;
    }
    PromoteReport(p);
    if (p.log_end_replica != msg.header.from) {
      p.log_end_replica = msg.header.from;
      p.behind_since_ms = kNever;
    }
    p.log_end = msg.seq;
    p.ping_holds_nothing = msg.seq == 0;
    for (const auto& entry : msg.vector) {
      p.ping_holds_nothing = p.ping_holds_nothing && entry.second == 0;
    }
    p.ping_ms = now.mono_ms;
    UpdateBehind(now, p);
    for (const crdt::ReplicaId& r : msg.retired) AdoptRetirement(now, p, r, out);
    Message m;
    m.type = MsgType::kPong;
    m.echo_wall_ms = msg.sent_wall_ms;
    m.pong_wall_ms = now.wall_ms;
    Send(now, p.node, std::move(m), out);
  }

  // Whether it answers one of our Pings.
  bool OnPong(const Now& now, Peer& p, const Message& msg) {
    // Only answers to our own Pings count, timed by the monotonic clock.
    auto it = std::find_if(p.pings.begin(), p.pings.end(),
                           [&](const auto& ping) { return ping.first == msg.echo_wall_ms; });
    if (it == p.pings.end()) return false;
    const uint64_t sent_mono = it->second;
    p.pings.erase(p.pings.begin(), it + 1);
    if (now.mono_ms < sent_mono) return false;
    // It answered a Ping sent no earlier than its last refusal of our
    // clock arrived: it takes our messages again.
    if (p.refuses_our_clock && sent_mono >= p.refused_our_clock_ms) p.refuses_our_clock = false;
    ClockSample s;
    s.rtt_ms = std::min(now.mono_ms - sent_mono, kClockClamp);
    s.offset_ms = static_cast<int64_t>(std::min(msg.pong_wall_ms, kClockClamp)) -
                  static_cast<int64_t>(std::min(msg.echo_wall_ms, kClockClamp)) -
                  static_cast<int64_t>(s.rtt_ms / 2);
    DropStaleClock(p);
    // A round-trip sample puts the true offset within rtt/2 of its offset
    // (however the delay splits between the two ways). A new sample whose
    // range misses a kept one's means a clock stepped in between: the older
    // samples describe clocks that are gone, and would otherwise stay the
    // estimate while their round trip is the smallest. (The slack covers
    // whole-millisecond clocks.)
    for (const ClockSample& old : p.samples) {
      if (Gap(old.offset_ms, s.offset_ms) > SatAdd(old.rtt_ms, s.rtt_ms) / 2 + kClockSlackMs) {
        p.samples.clear();
        break;
      }
    }
    p.samples.push_back(s);
    while (p.samples.size() > opt.clock_samples_kept) p.samples.pop_front();
    return true;
  }

  // A new sample is about to be kept: samples from before the peer was
  // last down go.
  void DropStaleClock(Peer& p) {
    if (!p.clock_stale) return;
    p.samples.clear();
    p.has_one_way = false;
    p.clock_stale = false;
  }

  // The estimate: the kept round-trip sample with the smallest round trip
  // (the latest among equals); without one, the one-way sample.
  const ClockSample* BestSample(const Peer& p) const {
    const ClockSample* best = nullptr;
    for (const ClockSample& s : p.samples) {
      if (best == nullptr || s.rtt_ms <= best->rtt_ms) best = &s;
    }
    if (best == nullptr && p.has_one_way) best = &p.one_way;
    return best;
  }

  // This node knows how its clock stands to `p`'s: a sample, or the peer
  // says our HLC is too far ahead of its clock.
  bool KnowsClockOf(const Peer& p) const {
    return !p.samples.empty() || p.has_one_way || p.refuses_our_clock;
  }

  enum class ClockVerdict { kNone, kInRange, kOff };

  // What `p` says about this node's clock for the write gate (DESIGN.md
  // §3). Knowledge of any age speaks against it: a peer not down whose
  // estimate is beyond 40% of the limit, or that refuses our HLC, is off.
  // Only fresh knowledge speaks for it: a peer is in range only while it
  // is up (heard within suspect_after_missed intervals) and measured since
  // it was last down. Every other peer does not count. *sample gets the
  // estimate, if any.
  ClockVerdict Verdict(const Peer& p, const ClockSample** sample) const {
    *sample = nullptr;
    if (p.state == PeerState::kDown) return ClockVerdict::kNone;
    const ClockSample* s = BestSample(p);
    *sample = s;
    if (Beyond(s) || p.refuses_our_clock) return ClockVerdict::kOff;
    if (s != nullptr && p.state == PeerState::kUp && !p.clock_stale) return ClockVerdict::kInRange;
    return ClockVerdict::kNone;
  }

  // The estimate is more than 40% of the limit off.
  bool Beyond(const ClockSample* s) const {
    if (s == nullptr) return false;
    const uint64_t mag = s->offset_ms < 0 ? static_cast<uint64_t>(-(s->offset_ms + 1)) + 1
                                          : static_cast<uint64_t>(s->offset_ms);
    // mag is whole, so comparing with the rounded-down bound is exact.
    return mag > GateBoundMs();
  }

  uint64_t GateBoundMs() const {
    return SatAdd(opt.max_clock_offset_ms, opt.max_clock_offset_ms) / 5;
  }

  // --- Timers ------------------------------------------------------------------

  void UpdateStates(const Now& now, Effects* out) {
    for (Peer& p : peers) {
      const uint64_t since = p.heard ? p.last_heard_ms : start.mono_ms;
      const uint64_t silent = SatSub(now.mono_ms, since);
      if (p.state == PeerState::kDown) continue;
      if (silent >= Interval(opt.down_after_missed)) {
        SetState(now, p, PeerState::kDown,
                 p.heard
                     ? "not heard for " + std::to_string(silent) + " ms"
                     : "not heard since this node started " + std::to_string(silent) + " ms ago",
                 out);
      } else if (p.heard && p.state == PeerState::kUp &&
                 silent >= Interval(opt.suspect_after_missed)) {
        SetState(now, p, PeerState::kSuspect, "not heard for " + std::to_string(silent) + " ms", out);
      }
    }
  }

  uint64_t NextStateChange(const Peer& p) const {
    const uint64_t since = p.heard ? p.last_heard_ms : start.mono_ms;
    switch (p.state) {
      case PeerState::kUp:
        return SatAdd(since, Interval(opt.suspect_after_missed));
      case PeerState::kUnknown:
      case PeerState::kSuspect:
        return SatAdd(since, Interval(opt.down_after_missed));
      case PeerState::kDown:
        return kNever;
    }
    return kNever;
  }

  void UpdateStartGate() {
    if (start_gate_passed) return;
    size_t reachable = 0, sampled = 0;
    for (const Peer& p : peers) {
      if (p.state == PeerState::kDown) continue;
      ++reachable;
      if (KnowsClockOf(p)) ++sampled;
    }
    if (reachable == 0 || sampled * 2 > reachable) start_gate_passed = true;
  }

  // --- Retention horizon -------------------------------------------------------

  // Whether `p`'s current incarnation is retired: no later one has been
  // heard (headers of retired ones are refused before they count).
  bool Retired(const Peer& p) const {
    return p.expired_through > 0 && p.max_incarnation <= p.expired_through;
  }

  // The highest incarnation of `p` this node knows of (0: none).
  uint64_t KnownIncarnation(const Peer& p) const {
    uint64_t k = p.max_incarnation;
    auto scan = [&](const Applied& v) {
      for (const auto& entry : v) {
        if (entry.first.first.node == p.node) k = std::max(k, entry.first.first.incarnation);
      }
    };
    scan(applied);
    for (const Peer& q : peers) scan(q.reported);
    return k;
  }

  // Retires the incarnation of every peer not heard for longer than the
  // horizon, while this node is in contact with a majority.
  void MaybeExpire(const Now& now, Effects* out) {
    if (opt.retention_horizon_ms == 0) return;
    for (Peer& p : peers) {
      p.excluded = Retired(p) &&
                   SatSub(now.mono_ms, std::max(p.any_heard_ms, start.mono_ms)) >
                       opt.retention_horizon_ms;
    }
    // A node that has not bootstrapped collects nothing, and the peer it
    // does not hear may be the one that holds the data it waits for.
    if (!MajorityNow(now) || (ae && !ae->bootstrapped())) return;
    for (Peer& p : peers) {
      const uint64_t since = p.heard ? p.last_heard_ms : start.mono_ms;
      if (SatSub(now.mono_ms, since) <= opt.retention_horizon_ms) continue;
      const uint64_t k = KnownIncarnation(p);
      if (k <= p.expired_through) continue;
      p.expired_before = p.expired_through;
      p.expired_through = k;
      p.excluded = true;
      ++counters.expirations;
      out->expirations.push_back(crdt::ReplicaId{p.node, k});
      out->logs.push_back("gossip: retired " + p.node + "#" + std::to_string(k) +
                          " (and its earlier incarnations): not heard for " +
                          std::to_string(SatSub(now.mono_ms, since)) +
                          " ms, longer than the retention horizon (" +
                          std::to_string(opt.retention_horizon_ms) +
                          " ms); it no longer holds back collection, and it must rejoin as a "
                          "new incarnation");
      // Its reports no longer count (a successor starts without one), and
      // nothing more of it is taken: what was held for it goes.
      p.usable.clear();
      p.has_usable = false;
      for (auto& [key, origin] : origins) {
        if (key.first.node == p.node && key.first.incarnation <= k) origin.held.clear();
      }
      if (p.state != PeerState::kDown) SetState(now, p, PeerState::kDown, "retired", out);
    }
  }

  // The incarnations this node retired, per node the highest, ascending
  // by node (kPing `retired`).
  std::vector<crdt::ReplicaId> RetiredList() const {
    std::vector<crdt::ReplicaId> list;
    for (const Peer& p : peers) {
      if (p.expired_through > 0) list.push_back(crdt::ReplicaId{p.node, p.expired_through});
    }
    std::sort(list.begin(), list.end(),
              [](const crdt::ReplicaId& a, const crdt::ReplicaId& b) { return a.node < b.node; });
    return list;
  }

  // `from` says it retired `r` (and its earlier incarnations). A node that
  // does not hear `r` itself, or has not bootstrapped, retires it too: a
  // node that never learnt of the retirement (a fresh incarnation, say)
  // would otherwise take what `r` sends when it comes back, values whose
  // deletes `from` collected among them. A node that hears `r` leaves it
  // to the two of them (of two nodes that retired each other only one
  // rejoins, and a third taking sides could make both rejoin). `r` naming
  // this very incarnation: it rejoins.
  void AdoptRetirement(const Now& now, const Peer& from, const crdt::ReplicaId& r, Effects* out) {
    if (r.node == opt.self.node) {
      if (r.incarnation < opt.self.incarnation || rejoining) return;
      rejoining = true;
      out->rejoin = true;
      out->logs.push_back("gossip: " + from.node + " says this incarnation (" +
                          opt.self.ToString() +
                          ") was retired (away longer than the retention horizon); this node "
                          "rejoins as a new incarnation");
      return;
    }
    Peer* p = FindPeer(r.node);
    if (p == nullptr || r.incarnation <= p->expired_through) return;
    const bool hears_it = p->state == PeerState::kUp || p->state == PeerState::kSuspect;
    if (hears_it && (!ae || ae->bootstrapped())) return;
    p->expired_before = p->expired_through;
    p->expired_through = r.incarnation;
    ++counters.expirations_adopted;
    out->expirations.push_back(r);
    out->logs.push_back("gossip: retired " + r.ToString() + " (and its earlier incarnations), as " +
                        from.node + " did: it must rejoin as a new incarnation");
    if (!Retired(*p)) return;  // a later incarnation is already in
    p->usable.clear();
    p->has_usable = false;
    for (auto& [key, origin] : origins) {
      if (key.first.node == p->node && key.first.incarnation <= r.incarnation) origin.held.clear();
    }
    if (p->state != PeerState::kDown) SetState(now, *p, PeerState::kDown, "retired", out);
  }

  // Two-way contact with `p` now.
  void Contact(const Now& now, Peer& p, Effects* out) {
    p.contacted = true;
    p.contact_ms = now.mono_ms;
    UpdateMajority(now, out);
  }

  // When this node last was in two-way contact with a majority of the
  // cluster (itself counted): the latest time by which enough peers had
  // answered since the start (false: never).
  bool MajorityContactMs(uint64_t* at) const {
    const size_t needed = (peers.size() + 1) / 2;
    std::vector<uint64_t> times;
    for (const Peer& p : peers) {
      if (p.contacted) times.push_back(p.contact_ms);
    }
    if (needed == 0 || times.size() < needed) return false;
    std::nth_element(times.begin(), times.begin() + static_cast<std::ptrdiff_t>(needed - 1),
                     times.end(), std::greater<uint64_t>());
    *at = times[needed - 1];
    return true;
  }

  // In contact with a majority now: within down_after_missed heartbeats.
  bool MajorityNow(const Now& now) const {
    uint64_t at = 0;
    return MajorityContactMs(&at) && SatSub(now.mono_ms, at) <= Interval(opt.down_after_missed);
  }

  void UpdateMajority(const Now& now, Effects* out) {
    uint64_t at = 0;
    if (!MajorityContactMs(&at) || (contact_since_start && at <= last_contact_mono)) return;
    contact_since_start = true;
    last_contact_mono = at;
    last_contact_wall = std::max(last_contact_wall, SatSub(now.wall_ms, now.mono_ms - at));
    if (beyond_horizon && !rejoining && AbsentMs(now) <= opt.retention_horizon_ms) {
      beyond_horizon = false;
      out->logs.push_back(
          "gossip: in contact with a majority of the cluster again, none of which retired this "
          "incarnation: writes and shipping resume");
    }
  }

  // Beyond the horizon or rejoining, this node's data may be older than
  // what its peers collected: it gives none of it away (no deltas, no
  // anti-entropy) until a majority has taken it back.
  bool Withholding() const { return beyond_horizon || rejoining; }

  uint64_t AbsentMs(const Now& now) const {
    if (contact_since_start) return SatSub(now.mono_ms, last_contact_mono);
    return SatAdd(SatSub(now.mono_ms, start.mono_ms), absent_at_start_ms);
  }

  // `out` null: at the start.
  void UpdateHorizon(const Now& now, Effects* out) {
    if (beyond_horizon || peers.empty() || opt.retention_horizon_ms == 0) return;
    const uint64_t absent = AbsentMs(now);
    if (absent <= opt.retention_horizon_ms) return;
    beyond_horizon = true;
    if (out != nullptr) {
      out->logs.push_back(
          "gossip: no two-way contact with a majority of the cluster for " +
          std::to_string(absent) + " ms, longer than the retention horizon (" +
          std::to_string(opt.retention_horizon_ms) +
          " ms): peers may have retired this incarnation; writes, deltas and anti-entropy stop "
          "until a majority answers (and this node rejoins as a new incarnation if one "
          "retired it)");
    }
  }

  // `p` refused this replica as retired. `mutual`: this node retired `p`'s
  // incarnation too.
  void OnRetiredBy(const Now& now, const Peer& p, const Message& msg, bool mutual, Effects* out) {
    if (rejoining) return;
    if (mutual && opt.self.node < p.node) {
      LogLimited(now, p.node, "retired_each_other",
                 "gossip: " + msg.header.from.ToString() +
                     " and this node retired each other's incarnation; it rejoins (the greater "
                     "node id), this node keeps its data",
                 out);
      return;
    }
    rejoining = true;
    out->rejoin = true;
    out->logs.push_back("gossip: " + msg.header.from.ToString() + " retired this incarnation (" +
                        opt.self.ToString() + "): " + Printable(msg.text) +
                        "; this node rejoins as a new incarnation");
  }

  // --- Anti-entropy ------------------------------------------------------------

  // Whether this node has applied all of `p`'s log that its last Ping
  // announced; if not, since when.
  void UpdateBehind(const Now& now, Peer& p) {
    if (p.log_end_replica.node.empty()) return;
    if (AppliedOf(p.log_end_replica, opt.scope) >= p.log_end) {
      p.behind_since_ms = kNever;
    } else if (p.behind_since_ms == kNever) {
      p.behind_since_ms = now.mono_ms;
    }
  }

  // The append record holding the oldest delta `p` has not acknowledged
  // (appends.end() when it holds all of the log).
  std::deque<AppendRecord>::const_iterator OldestUnacked(const Peer& p) const {
    if (p.acked >= OwnLast(opt.scope)) return appends.end();
    return std::partition_point(appends.begin(), appends.end(),
                                [&](const AppendRecord& r) { return r.last_seq <= p.acked; });
  }

  // --- Log collection ---------------------------------------------------------

  // It lacks own log entries that are truncated: deltas cannot repair it.
  bool BeyondLog(const Peer& p) const {
    return p.welcomed && p.acked_known && SatAdd(p.acked, 1) < log_start;
  }

  // Whether `p` pins the own log, and up to which seq (*at: it holds the
  // log up to there).
  bool Pins(const Now& now, const Peer& p, uint64_t* at) const {
    const uint64_t own = OwnLast(opt.scope);
    uint64_t pin = p.acked_known ? p.acked : std::max(p.acked, log_start - 1);
    if (Retired(p)) {
      *at = pin;
      return false;
    }
    if (pin >= own) {
      *at = own;
      return true;
    }
    *at = pin;
    // Without anti-entropy nothing could repair it: it pins for good.
    if (!ae) return true;
    if (SatAdd(pin, 1) < log_start) return false;
    auto it = std::partition_point(appends.begin(), appends.end(),
                                   [&](const AppendRecord& r) { return r.last_seq <= pin; });
    if (it == appends.end()) return true;
    if (SatSub(now.wall_ms, it->wall_ms) > opt.log_retention_ms) return false;
    const uint64_t before = it == appends.begin() ? trimmed_cum_bytes : std::prev(it)->cum_bytes;
    return SatSub(appends.back().cum_bytes, before) <= opt.log_retention_bytes;
  }

  // Truncates the own log up to what every pinning peer holds.
  void MaybeTruncate(const Now& now, Effects* out) {
    uint64_t through = OwnLast(opt.scope);
    for (Peer& p : peers) {
      uint64_t at = 0;
      const bool pins = Pins(now, p, &at);
      if (pins) through = std::min(through, at);
      if (pins != p.pinning) {
        p.pinning = pins;
        if (!pins) {
          out->logs.push_back(
              "gossip: peer " + p.node + " lacks this node's log from seq " +
              std::to_string(SatAdd(at, 1)) + " beyond the retention limits (" +
              std::to_string(opt.log_retention_ms) + " ms, " +
              std::to_string(opt.log_retention_bytes) +
              " bytes): the log is no longer kept for it, and anti-entropy repairs it");
        }
      }
    }
    if (through < log_start) return;
    out->truncates.push_back(TruncateRequest{opt.scope, through});
    counters.log_truncated += through - log_start + 1;
    log_start = through + 1;
    TrimAppends();
  }

  // Whether rounds this node starts may include `p` (protocol.h,
  // "Anti-entropy"): delta shipping keeps up both ways.
  bool AeReady(const Now& now, const Peer& p) const {
    if (!ae || p.state != PeerState::kUp || Withholding()) return false;
    if (!ae->bootstrapped()) return true;
    if (!p.welcomed) return false;
    if (!BeyondLog(p) && p.acked < OwnLast(opt.scope)) {
      auto it = OldestUnacked(p);
      if (it == appends.end() || SatSub(now.wall_ms, it->wall_ms) > opt.ae_max_ship_lag_ms) {
        return false;
      }
    }
    return p.behind_since_ms == kNever ||
           SatSub(now.mono_ms, p.behind_since_ms) <= opt.ae_max_ship_lag_ms;
  }

  // Sends and effects of the AntiEntropy's calls.
  void TakeAe(const Now& now, AeEffects& fx, Effects* out) {
    for (AeSend& s : fx.sends) {
      Message m;
      m.type = MsgType::kAntiEntropy;
      m.ae = std::move(s.body);
      if (m.ae.kind == AeKind::kBegin) m.ae.source = IsSource();
      Send(now, s.peer, std::move(m), out);
    }
    for (AeReadStates& r : fx.reads) out->ae_reads.push_back(std::move(r));
    std::vector<AeRepair> refused;
    for (AeRepair& r : fx.repairs) {
      if (TakesRepair(now, r, out)) {
        out->ae_repairs.push_back(std::move(r));
      } else {
        refused.push_back(std::move(r));
      }
    }
    for (std::string& l : fx.logs) out->logs.push_back("gossip: " + l);
    fx = AeEffects();
    if (refused.empty()) return;
    for (const AeRepair& r : refused) ae->OnRepairFailed(r.peer, r.round, r.initiator);
    ae->TakePending(&fx);
    TakeAe(now, fx, out);
  }

  // Whether this node has applied every entry of `floor`.
  bool CoversFloor(const Applied& floor) const {
    for (const auto& [key, seq] : floor) {
      const uint64_t have =
          key.first == opt.self ? OwnLast(key.second) : AppliedOf(key.first, key.second);
      if (have < seq) return false;
    }
    return true;
  }

  // A repair's sender may have dropped the tombstones of deletes its
  // collection floor covers: its states lack them, and its advance would
  // vouch for any value they removed that this node still holds. So a node
  // that holds data (it has bootstrapped) takes a repair only once it has
  // applied all of that floor itself (by deltas, or a repair from a peer
  // that still holds those tombstones); a node that has not bootstrapped
  // holds nothing and takes any. One still refused after
  // BelowFloorLimitMs() may hold such values and cannot learn which: it
  // rejoins as a new incarnation (MaybeLeaveBelowFloor).
  bool TakesRepair(const Now& now, const AeRepair& r, Effects* out) {
    if (r.peer_floor.empty() || !ae->bootstrapped() || CoversFloor(r.peer_floor)) return true;
    ++counters.repairs_below_floor;
    for (const auto& [key, seq] : r.peer_floor) {
      uint64_t& f = below_floor[key];
      f = std::max(f, seq);
    }
    if (below_floor_since_ms == kNever) below_floor_since_ms = now.mono_ms;
    LogLimited(now, r.peer, "below_floor",
               "gossip: refused a repair from " + r.peer +
                   ": it has collected tombstones of deletes this node has not applied yet, so "
                   "its states could leave values those deletes removed here; waiting for them "
                   "by deltas or from another peer",
               out);
    return false;
  }

  // A node that has not bootstrapped, while every peer is up, its latest
  // Ping (within the last heartbeats) says it holds nothing and its latest
  // Begin says it is no source either, knows that no node of the cluster
  // holds data and none can be bootstrapped from: say the first node lost
  // its disk before any other bootstrapped from it, or every node
  // rejoined. As no round can ever bootstrap it, it bootstraps on its own,
  // as with --bootstrap (several may; each holds the cluster's state:
  // nothing). With any peer a source, a round with it does instead.
  void MaybeBootstrapAlone(const Now& now, Effects* out) {
    if (!ae || ae->bootstrapped() || OwnLast(opt.scope) != 0) return;
    const uint64_t fresh_ms = opt.heartbeat_interval_ms * opt.down_after_missed;
    for (const Peer& p : peers) {
      if (p.state != PeerState::kUp || !p.ping_holds_nothing ||
          p.log_end_replica != p.replica || SatSub(now.mono_ms, p.ping_ms) > fresh_ms ||
          p.begin_from != p.replica || p.begin_source) {
        return;
      }
    }
    for (const auto& entry : applied) {
      if (entry.second != 0) return;
    }
    ae->BootstrapAlone();
    out->logs.push_back(
        "gossip: no node of the cluster holds data (every peer is up, has neither a log nor "
        "applied anything, and has not bootstrapped either): this node bootstraps on its own, "
        "as the first node of a new cluster does with --bootstrap");
  }

  // Whether a fresh incarnation may bootstrap from this node (its Begins
  // say so in `source`). One that has not bootstrapped holds nothing yet,
  // and one that knows it lacks deletes a peer collected (refused for its
  // floor) may hold values they removed: a fresh incarnation that
  // completed its first round with either would count as bootstrapped on
  // that (and, from the second, fall below the floor in turn). So a round
  // that neither side may be bootstrapped from is declined by its
  // responder (the initiator abandons it), and a fresh incarnation
  // bootstraps only from a node that holds the cluster's data.
  bool IsSource() const { return ae->bootstrapped() && below_floor_since_ms == kNever; }

  void LogDeclined(const Now& now, const std::string& peer, Effects* out) {
    if (!ae->bootstrapped()) {
      LogLimited(now, peer, "declined",
                 "gossip: declined an anti-entropy round from " + peer +
                     ": this incarnation has not bootstrapped, so it has no data to give (it "
                     "bootstraps from a node that has; the first node of a new cluster, or of "
                     "one where no node has bootstrapped, starts with --bootstrap, as "
                     "`meridianctl up` does)",
                 out);
    } else {
      LogLimited(now, peer, "declined",
                 "gossip: declined an anti-entropy round from " + peer +
                     ": this node lacks deletes whose tombstones a peer collected, so no new "
                     "incarnation may bootstrap from it",
                 out);
    }
  }

  uint64_t BelowFloorLimitMs() const {
    return std::max(5 * opt.anti_entropy.interval_ms, Interval(10));
  }

  void MaybeLeaveBelowFloor(const Now& now, Effects* out) {
    if (below_floor_since_ms == kNever) return;
    if (CoversFloor(below_floor)) {
      below_floor.clear();
      below_floor_since_ms = kNever;
      return;
    }
    if (rejoining || SatSub(now.mono_ms, below_floor_since_ms) <= BelowFloorLimitMs()) return;
    rejoining = true;
    rejoin_below_floor = true;
    out->rejoin = true;
    out->logs.push_back(
        "gossip: for " + std::to_string(SatSub(now.mono_ms, below_floor_since_ms)) +
        " ms this node has lacked deletes whose tombstones its peers collected, and no peer or "
        "delta brought them: its data may hold values they removed, so it rejoins as a new "
        "incarnation");
  }

  void DrainAe(const Now& now, Effects* out) {
    if (!ae) return;
    AeEffects fx;
    ae->TakePending(&fx);
    TakeAe(now, fx, out);
  }

  // Rounds with peers that came up and are now ready.
  void StartPendingRounds(const Now& now, Effects* out) {
    if (!ae) return;
    for (Peer& p : peers) {
      if (!p.ae_up_pending || !AeReady(now, p)) continue;
      p.ae_up_pending = false;
      AeEffects fx;
      ae->PeerUp(now.mono_ms, p.node, &fx);
      TakeAe(now, fx, out);
    }
  }

  // The node's applied vector grew by a repair: raise ours, hand out what
  // was held back behind the gap it closed, acknowledge the origins.
  void AbsorbApplied(const Now& now, const Applied& after, Effects* out) {
    for (const auto& [key, seq] : after) {
      if (key.first == opt.self || key.second != opt.scope) continue;
      uint64_t& a = applied[key];
      if (seq <= a) continue;
      a = seq;
      Origin& o = origins[key];
      if (o.applying < a) o.applying = a;
      while (!o.held.empty() && o.held.begin()->first <= o.applying) o.held.erase(o.held.begin());
      ApplyRequest req;
      while (!o.held.empty() && o.held.begin()->first == o.applying + 1) {
        req.entries.push_back(std::move(o.held.begin()->second));
        o.held.erase(o.held.begin());
        ++o.applying;
      }
      if (!req.entries.empty()) {
        req.origin = key.first;
        req.scope = key.second;
        out->applies.push_back(std::move(req));
      }
      SendAck(now, key.first, key.second, out);
    }
    for (Peer& p : peers) UpdateBehind(now, p);
    PromoteReports();
  }

  // A peer's View in a round (its applied vector on kBegin, the last
  // kStates, kDone in_sync) says how much of the own log it holds durably:
  // news for its acknowledgement when an Ack or a Welcome of it was lost or
  // stale. (A peer repaired past the log start acknowledges nothing it
  // already had, so without this it could stay beyond the log for good.)
  void LearnAck(const Now& now, Peer& p, const crdt::ReplicaId& from, const std::string& scope,
                const AeApplied& view, Effects* out) {
    if (scope != opt.scope || !p.welcomed || p.welcomed_by != from) return;
    auto it = view.find({opt.self, opt.scope});
    if (it == view.end() || it->second <= p.acked) return;
    p.acked = std::min(it->second, OwnLast(opt.scope));
    p.progress_ms = now.mono_ms;
    if (p.cursor < p.acked) p.cursor = p.acked;
    TrimAppends();
    MaybeShip(now, p, out);
  }

  // Append records no peer needs any more (all acked past them) go. A peer
  // whose acked later falls below them (a new incarnation) is reported
  // from the oldest record kept.
  void TrimAppends() {
    uint64_t min_acked = OwnLast(opt.scope);
    for (const Peer& p : peers) min_acked = std::min(min_acked, std::max(p.acked, log_start - 1));
    while (appends.size() > 1 && appends.front().last_seq <= min_acked) {
      trimmed_cum_bytes = appends.front().cum_bytes;
      appends.pop_front();
    }
  }
};

Protocol::Protocol(ProtocolOptions options, Applied applied, Now start, ViewSource* views)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(applied), start, views)) {}

Protocol::~Protocol() = default;

void Protocol::OnTick(const Now& now, Effects* out) {
  Impl& m = *impl_;
  m.UpdateStates(now, out);
  if (now.mono_ms >= m.next_heartbeat_ms) {
    const std::vector<crdt::ReplicaId> retired = m.RetiredList();
    for (Impl::Peer& p : m.peers) {
      Message ping;
      ping.type = MsgType::kPing;
      ping.sent_wall_ms = now.wall_ms;
      ping.seq = m.OwnLast(m.opt.scope);
      for (const auto& [key, seq] : m.applied) {
        if (key.second == m.opt.scope) ping.vector[key] = seq;
      }
      ping.retired = retired;
      ping.policy_hash = m.opt.policy_hash;
      m.Send(now, p.node, std::move(ping), out);
      p.pings.emplace_back(now.wall_ms, now.mono_ms);
      while (p.pings.size() > kMaxPingsInFlight) p.pings.pop_front();
    }
    m.next_heartbeat_ms = SatAdd(now.mono_ms, m.opt.heartbeat_interval_ms);
    m.UpdateMajority(now, out);
    m.MaybeBootstrapAlone(now, out);
    m.MaybeExpire(now, out);
    m.UpdateHorizon(now, out);
    m.MaybeLeaveBelowFloor(now, out);
    m.MaybeTruncate(now, out);
  }
  for (Impl::Peer& p : m.peers) {
    if (!p.welcomed && now.mono_ms >= p.next_hello_ms) m.SendHello(now, p, out);
    if (p.welcomed && p.cursor > p.acked &&
        now.mono_ms >= SatAdd(p.progress_ms, m.opt.resend_timeout_ms)) {
      // Nothing acknowledged for a while: ship the range again.
      m.FallBack(p);
      p.progress_ms = now.mono_ms;
    }
    m.MaybeShip(now, p, out);
  }
  if (m.ae) {
    std::vector<std::string> ready;
    bool all_up = true;
    // No delta in flight to or from any peer, and none appended or
    // received for a heartbeat interval: an instant with nothing in flight
    // comes often under steady writes (while this node's fsync is slow, so
    // are the deltas it tells of), and a round then finds the many writes
    // about to move.
    bool quiet = SatSub(now.mono_ms, m.last_delta_activity_ms) >= m.opt.heartbeat_interval_ms;
    for (const Impl::Peer& p : m.peers) {
      if (m.AeReady(now, p)) ready.push_back(p.node);
      all_up = all_up && p.state == PeerState::kUp && !m.BeyondLog(p);
      quiet = quiet && p.acked >= m.OwnLast(m.opt.scope) && p.behind_since_ms == kNever;
    }
    const bool gated = all_up && m.ae->bootstrapped() && m.opt.ae_all_up_interval_ms > 0;
    // Delta shipping reaches everyone: a scheduled round now and then (the
    // wait starts over only once one did start), at a quiet moment while
    // one may still come.
    if (!gated) {
      m.all_up_due_since_ms = kNever;
    } else if (now.mono_ms < m.next_all_up_round_ms) {
      ready.clear();
    } else {
      if (m.all_up_due_since_ms == kNever) m.all_up_due_since_ms = now.mono_ms;
      if (!quiet && now.mono_ms < SatAdd(m.all_up_due_since_ms, m.opt.ae_all_up_max_wait_ms)) {
        ready.clear();
      }
    }
    const uint64_t started_before = m.ae->counters().rounds_started;
    AeEffects fx;
    m.ae->OnTick(now.mono_ms, ready, &fx);
    if (gated && m.ae->counters().rounds_started > started_before) {
      m.next_all_up_round_ms = SatAdd(now.mono_ms, m.opt.ae_all_up_interval_ms);
      m.all_up_due_since_ms = kNever;
    }
    m.TakeAe(now, fx, out);
    m.StartPendingRounds(now, out);
  }
  m.UpdateStartGate();
}

void Protocol::OnMessage(const Now& now, const Message& msg, Effects* out) {
  Impl& m = *impl_;
  if (MessageScope(msg) != m.opt.scope) {
    // Another scope's session (gossip/scoped_protocol.h routes by scope).
    ++m.counters.refused_other;
    m.LogLimited(now, msg.header.from.node, "scope",
                 "gossip: dropped a " + std::string(TypeName(msg.type)) + " of scope '" +
                     Printable(MessageScope(msg)) + "' from " + Printable(msg.header.from.node) +
                     " in the session of scope '" + Printable(m.opt.scope) + "'",
                 out);
    return;
  }
  Impl::Peer* p = m.FindPeer(msg.header.from.node);
  const bool was_down = p != nullptr && p->state == PeerState::kDown;
  const Impl::Admission admission = m.Admit(now, msg, out);
  if (admission != Impl::Admission::kAccepted) {
    if (admission == Impl::Admission::kRefusedClock) m.OnRefusedForClock(now, *p, msg);
    m.UpdateStartGate();
    return;
  }
  switch (msg.type) {
    case MsgType::kHello:
      m.OnHello(now, *p, msg, was_down, out);
      break;
    case MsgType::kWelcome:
      m.OnWelcome(now, *p, msg, out);
      break;
    case MsgType::kRefuse:
      m.OnRefuse(now, *p, msg, out);
      break;
    case MsgType::kDeltas:
      m.last_delta_activity_ms = now.mono_ms;
      m.OnDeltas(now, *p, msg, out);
      break;
    case MsgType::kAck:
      m.OnAck(now, *p, msg, out);
      break;
    case MsgType::kPing:
      m.OnPing(now, *p, msg, out);
      break;
    case MsgType::kPong:
      if (m.OnPong(now, *p, msg)) m.Contact(now, *p, out);
      break;
    case MsgType::kAntiEntropy:
      if (m.ae && !m.Withholding()) {
        const AeBody& b = msg.ae;
        AeEffects fx;
        const bool begin = b.kind == AeKind::kBegin && b.from_initiator;
        if (begin) {
          p->begin_from = msg.header.from;
          p->begin_source = b.source;
        }
        if (begin && !b.source && !m.IsSource()) {
          m.ae->Decline(p->node, b, &fx);
          m.LogDeclined(now, p->node, out);
        } else {
          m.ae->OnMessage(now.mono_ms, p->node, b, &fx);
        }
        m.TakeAe(now, fx, out);
        if (begin || (b.kind == AeKind::kStates && b.last) || (b.kind == AeKind::kDone && b.in_sync)) {
          m.LearnAck(now, *p, msg.header.from, b.scope, b.applied, out);
        }
      }
      break;
  }
  m.StartPendingRounds(now, out);
  m.UpdateStartGate();
}

void Protocol::OnLocalAppend(const Now& now, const std::string& scope, uint64_t last_seq,
                             uint64_t bytes, Effects* out) {
  Impl& m = *impl_;
  if (scope != m.opt.scope) return;  // another scope's Protocol ships it
  uint64_t& own = m.applied[{m.opt.self, scope}];
  if (last_seq <= own) return;
  own = last_seq;
  m.last_delta_activity_ms = now.mono_ms;
  const uint64_t cum = m.appends.empty() ? m.trimmed_cum_bytes : m.appends.back().cum_bytes;
  m.appends.push_back(Impl::AppendRecord{last_seq, now.wall_ms, SatAdd(cum, bytes)});
  while (m.appends.size() > kMaxAppendRecords) {
    // The oldest two become one (the older time, the later end).
    const uint64_t wall = m.appends.front().wall_ms;
    m.appends.pop_front();
    m.appends.front().wall_ms = std::min(m.appends.front().wall_ms, wall);
  }
  for (Impl::Peer& p : m.peers) m.MaybeShip(now, p, out);
}

void Protocol::OnApplied(const Now& now, const crdt::ReplicaId& origin, const std::string& scope,
                         uint64_t seq, Effects* out) {
  Impl& m = *impl_;
  if (origin == m.opt.self) return;
  uint64_t& a = m.applied[{origin, scope}];
  if (seq > a) {
    m.counters.deltas_applied += seq - a;
    a = seq;
  }
  Impl::Origin& o = m.origins[{origin, scope}];
  if (o.applying < a) o.applying = a;
  while (!o.held.empty() && o.held.begin()->first <= a) o.held.erase(o.held.begin());
  m.SendAck(now, origin, scope, out);
  for (Impl::Peer& p : m.peers) {
    if (p.log_end_replica == origin && scope == m.opt.scope) m.UpdateBehind(now, p);
  }
  m.PromoteReports();
  m.StartPendingRounds(now, out);
}

void Protocol::OnApplyFailed(const Now& now, const crdt::ReplicaId& origin,
                             const std::string& scope, Effects* out) {
  Impl& m = *impl_;
  auto it = m.origins.find({origin, scope});
  if (it != m.origins.end()) {
    it->second.applying = m.AppliedOf(origin, scope);
    it->second.held.clear();
  }
  m.LogLimited(now, origin.node, "apply_failed",
               "gossip: applying deltas of " + origin.ToString() + " failed; they come again by " +
                   "resend from seq " + std::to_string(m.AppliedOf(origin, scope) + 1),
               out);
}

void Protocol::OnShipFailed(const Now& now, const std::string& peer, const std::string& scope,
                            Effects* out) {
  Impl& m = *impl_;
  Impl::Peer* p = m.FindPeer(peer);
  if (p == nullptr || scope != m.opt.scope) return;
  m.FallBack(*p);
  p->hold_until_ms = SatAdd(now.mono_ms, m.opt.resend_timeout_ms);
  m.LogLimited(now, peer, "ship_failed",
               "gossip: could not read this node's log to ship to " + peer + "; retrying in " +
                   std::to_string(m.opt.resend_timeout_ms) + " ms",
               out);
}

void Protocol::OnAeStatesSent(const AeReadStates& read, uint64_t states_sent) {
  (void)read;
  if (impl_->ae) impl_->ae->NoteStatesSent(states_sent);
}

void Protocol::OnAeReadFailed(const Now& now, const AeReadStates& read, Effects* out) {
  Impl& m = *impl_;
  if (!m.ae) return;
  m.ae->OnReadFailed(read.peer, read.round, read.from_initiator);
  m.DrainAe(now, out);
}

void Protocol::OnAeRepaired(const Now& now, const AeRepair& repair, const Applied& applied_after,
                            Effects* out) {
  Impl& m = *impl_;
  if (!m.ae) return;
  AeEffects fx;
  m.ae->OnRepaired(now.mono_ms, repair.peer, repair.round, repair.initiator, repair.has_advance,
                   &fx);
  m.TakeAe(now, fx, out);
  m.AbsorbApplied(now, applied_after, out);
  m.StartPendingRounds(now, out);
}

void Protocol::OnAeRepairFailed(const Now& now, const AeRepair& repair, Effects* out) {
  Impl& m = *impl_;
  if (!m.ae) return;
  m.ae->OnRepairFailed(repair.peer, repair.round, repair.initiator);
  m.DrainAe(now, out);
}

Header Protocol::MakeHeader(const Now& now) const { return impl_->MakeHeader(now); }

uint64_t Protocol::NextTickMs() const {
  const Impl& m = *impl_;
  uint64_t next = m.next_heartbeat_ms;
  if (m.ae) next = std::min(next, m.ae->NextTickMs());
  for (const Impl::Peer& p : m.peers) {
    next = std::min(next, m.NextStateChange(p));
    if (!p.welcomed) next = std::min(next, p.next_hello_ms);
    if (p.welcomed && p.cursor > p.acked) {
      next = std::min(next, SatAdd(p.progress_ms, m.opt.resend_timeout_ms));
    }
    if (p.welcomed && p.hold_until_ms > 0) {
      // Shipping waits for the hold after a failed read; due only if there
      // is something to ship.
      const uint64_t limit = std::min(m.OwnLast(m.opt.scope), SatAdd(p.acked, m.opt.window));
      if (p.cursor < limit) next = std::min(next, p.hold_until_ms);
    }
  }
  return next;
}

WriteGate Protocol::Gate() const {
  const Impl& m = *impl_;
  size_t reachable = 0, sampled = 0, off = 0, in_range = 0;
  std::vector<std::string> skewed;
  const uint64_t limit = m.opt.max_clock_offset_ms;
  for (const Impl::Peer& p : m.peers) {
    if (p.state == PeerState::kDown) continue;
    ++reachable;
    if (m.KnowsClockOf(p)) ++sampled;
    const Impl::ClockSample* s = nullptr;
    switch (m.Verdict(p, &s)) {
      case Impl::ClockVerdict::kOff: {
        ++off;
        std::string what = p.node;
        if (m.Beyond(s)) what += " " + SignedMs(s->offset_ms);
        if (p.refuses_our_clock) {
          what += " (it refuses this node's messages: their HLC is more than " +
                  std::to_string(limit) + " ms ahead of its clock)";
        }
        skewed.push_back(what);
        break;
      }
      case Impl::ClockVerdict::kInRange:
        ++in_range;
        break;
      case Impl::ClockVerdict::kNone:
        break;
    }
  }
  WriteGate g;
  if (m.rejoining) {
    g.ok = false;
    g.code = "rejoining";
    g.message = m.rejoin_below_floor
                    ? "this node lacks deletes whose tombstones its peers collected; it is "
                      "restarting as a new incarnation"
                    : "a peer retired this incarnation (it was away longer than the retention "
                      "horizon); this node is restarting as a new incarnation";
    return g;
  }
  if (m.ae && !m.ae->bootstrapped()) {
    g.ok = false;
    g.code = "bootstrapping";
    g.message =
        "this node started on an empty data dir as a new incarnation; it takes writes once it "
        "has completed one anti-entropy round with a peer";
    return g;
  }
  if (m.beyond_horizon) {
    g.ok = false;
    g.code = "beyond_horizon";
    g.message = "this node has had no two-way contact with a majority of the cluster for longer "
                "than the retention horizon (" + std::to_string(m.opt.retention_horizon_ms) +
                " ms), so its peers may have retired this incarnation; it takes writes again once "
                "a majority answers";
    return g;
  }
  if (reachable == 0) return g;
  if (!m.start_gate_passed && sampled * 2 <= reachable) {
    g.ok = false;
    g.code = "clock_skew";
    g.message = "this node has clock samples from " + std::to_string(sampled) + " of its " +
                std::to_string(reachable) +
                " reachable peers since it started; it takes writes once it has them from a "
                "majority";
    return g;
  }
  if (off > in_range) {
    std::string list;
    for (const std::string& s : skewed) list += (list.empty() ? "" : ", ") + s;
    g.ok = false;
    g.code = "clock_skew";
    g.message = "this node's clock is off by more than " + std::to_string(m.GateBoundMs()) +
                " ms (40% of max_clock_offset_ms " + std::to_string(limit) + ") from " +
                std::to_string(off) + " of the " + std::to_string(off + in_range) +
                " reachable peers that have measured it: " + list +
                "; writes resume when it is back in range";
  }
  return g;
}

std::vector<PeerStatus> Protocol::Peers(const Now& now) const {
  const Impl& m = *impl_;
  const uint64_t own_last = m.OwnLast(m.opt.scope);
  std::vector<PeerStatus> out;
  for (const Impl::Peer& p : m.peers) {
    PeerStatus s;
    s.node = p.node;
    s.region = p.region;
    s.state = p.state;
    s.welcomed = p.welcomed;
    s.replica = p.replica;
    s.last_heard_ms_ago =
        p.heard ? static_cast<int64_t>(SatSub(now.mono_ms, p.last_heard_ms)) : int64_t{-1};
    s.acked = p.acked;
    s.shipped = p.cursor;
    s.unacked_deltas = SatSub(own_last, p.acked);
    if (s.unacked_deltas > 0) {
      // The first record past acked holds the oldest unacknowledged delta.
      auto it = m.OldestUnacked(p);
      if (it != m.appends.end()) {
        s.lag_ms = SatSub(now.wall_ms, it->wall_ms);
        const uint64_t before =
            it == m.appends.begin() ? m.trimmed_cum_bytes : std::prev(it)->cum_bytes;
        s.unacked_bytes = SatSub(m.appends.back().cum_bytes, before);
      }
    }
    const Impl::ClockSample* best = m.BestSample(p);
    if (best != nullptr) {
      s.has_clock_sample = true;
      s.clock_offset_ms = best->offset_ms;
      s.rtt_ms = best->rtt_ms;
    }
    s.log_end = p.log_end;
    if (!p.log_end_replica.node.empty()) {
      s.behind = SatSub(p.log_end, m.AppliedOf(p.log_end_replica, m.opt.scope));
    }
    s.ae_ready = m.AeReady(now, p);
    uint64_t pinned_at = 0;
    s.pins_log = m.Pins(now, p, &pinned_at);
    s.beyond_log = m.BeyondLog(p);
    s.expired_through = p.expired_through;
    s.retired = m.Retired(p);
    s.policy_hash = p.policy_hash;
    s.policy_mismatch = m.PolicyMismatch(p);
    out.push_back(std::move(s));
  }
  return out;
}

size_t Protocol::RegionsHolding(const std::string& scope, uint64_t seq) const {
  const Impl& m = *impl_;
  std::set<std::string> regions;
  if (seq <= m.OwnLast(scope)) regions.insert(m.opt.region);
  if (scope == m.opt.scope) {
    for (const Impl::Peer& p : m.peers) {
      if (p.region != m.opt.region && p.acked >= seq) regions.insert(p.region);
    }
  }
  return regions.size();
}

const Applied& Protocol::applied() const { return impl_->applied; }
uint64_t Protocol::log_start() const { return impl_->log_start; }

Applied Protocol::Stable() const {
  const Impl& m = *impl_;
  Applied out;
  // A retired incarnation no longer counts while nothing of it is heard
  // (see "Retention horizon").
  for (const Impl::Peer& p : m.peers) {
    if (!p.has_usable && !p.excluded) return out;
  }
  for (const auto& [key, seq] : m.applied) {
    if (key.second != m.opt.scope) continue;
    uint64_t v = seq;
    for (const Impl::Peer& p : m.peers) {
      if (p.excluded) continue;
      auto it = p.usable.find(key);
      v = std::min(v, it == p.usable.end() ? 0 : it->second);
    }
    if (v > 0) out[key] = v;
  }
  return out;
}
void Protocol::OnExpirationFailed(const crdt::ReplicaId& expired) {
  Impl::Peer* p = impl_->FindPeer(expired.node);
  if (p == nullptr || p->expired_through != expired.incarnation) return;
  p->expired_through = p->expired_before;
  p->excluded = false;
}

void Protocol::SetPolicyHash(std::string hash) {
  impl_->opt.policy_hash = PolicyHashOf(std::move(hash));
}

HorizonStatus Protocol::Horizon(const Now& now) const {
  const Impl& m = *impl_;
  HorizonStatus h;
  h.horizon_ms = m.opt.retention_horizon_ms;
  h.absent_ms = m.peers.empty() ? 0 : m.AbsentMs(now);
  h.last_contact_wall_ms = m.last_contact_wall;
  h.beyond = m.beyond_horizon;
  h.rejoining = m.rejoining;
  return h;
}

const ProtocolCounters& Protocol::counters() const { return impl_->counters; }
bool Protocol::anti_entropy() const { return impl_->ae != nullptr; }
AeCounters Protocol::ae_counters() const {
  return impl_->ae ? impl_->ae->counters() : AeCounters();
}
bool Protocol::bootstrapped() const { return !impl_->ae || impl_->ae->bootstrapped(); }
const ProtocolOptions& Protocol::options() const { return impl_->opt; }

}  // namespace meridian::gossip
