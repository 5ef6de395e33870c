// The ZeroMQ driver of the gossip Protocol. Contract: gossip/transport.h.
// With gossip/curve_keys.cc (key functions only), this is the only file
// of gossip/ that knows ZeroMQ.
//
// Threads. The gossip thread (Run) owns the Protocol, the ROUTER, the
// DEALERs, the delay queue and the counters. Everything else reaches it
// through the Mailbox: a mutex-protected queue of commands plus an inproc
// PAIR pair whose only job is to wake the poll. The Mailbox is shared with
// the Host's apply callbacks, which may outlive the Transport: once closed
// it swallows whatever is posted. What the gossip thread wants readers to
// see (gate, peers, counters) it copies into `published` under pub_mu
// after each step that can change it.
//
// Locks: Mailbox::mu, pub_mu, faults_mu and policy_mu are leaves; none is
// held while calling the Host or the Protocol.
#include "gossip/transport.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <limits>
#include <mutex>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <zmq.hpp>

#include "gossip/curve_keys.h"
#include "storage/digests.h"
#include "storage/node_meta.h"

namespace meridian::gossip {
namespace {

// The longest the thread sleeps in zmq::poll: bounds how late a tick or a
// delayed message can be handled even if the Protocol asks for later.
constexpr uint64_t kMaxPollMs = 100;
// Messages taken from the ROUTER per loop turn, so that ticks, the inbox
// and the published snapshot keep up under a flood.
constexpr int kMaxReceivesPerTurn = 256;
// Queue bounds, in messages (per connection). The Protocol's window bounds
// what is in flight anyway; these only stop a stuck peer from growing
// memory without limit.
constexpr int kSendHwm = 1000;
constexpr int kRecvHwm = 1000;
constexpr int kReconnectIvlMs = 100;
// Refused input (frames that do not decode, connections the ZAP handler
// refuses, forged frames) is logged at most this often per kind, with a
// count.
constexpr uint64_t kRefusalLogIntervalMs = 10000;
// ZeroMQ's ZAP endpoint (RFC 27) and the domain the ROUTER asks it about.
constexpr char kZapEndpoint[] = "inproc://zeromq.zap.01";
constexpr char kZapDomain[] = "meridian";
// ZMTP heartbeats on the DEALERs: a connection whose peer vanished without
// closing it (host gone, cable cut) is dropped and redialled instead of
// swallowing messages until its queue fills. Liveness for the Protocol
// still comes from its own Pings.
constexpr int kZmtpHeartbeatIvlMs = 1000;
constexpr int kZmtpHeartbeatTimeoutMs = 5000;
// Per-entry overhead of a kDeltas body beyond the key and delta bytes
// (array header, seq, str and bin headers), rounded up generously; the
// encoded size is checked afterwards anyway.
constexpr size_t kEntryOverheadBytes = 32;
// The same for a state of a kStates body ([str key, bin envelope]).
constexpr size_t kStateOverheadBytes = 16;

uint64_t MonoMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// When a message held for `delay_ms` at `mono_ms` may go: one more
// millisecond because mono_ms is truncated, so the hold is never shorter.
uint64_t ReleaseTime(uint64_t mono_ms, uint64_t delay_ms) { return mono_ms + delay_ms + 1; }

// Counts refusals of one kind and says when a log line about them is due:
// the first at once, then at most one per kRefusalLogIntervalMs.
class RefusalLog {
 public:
  // Counts one; true when a line is due, with *count the refusals since
  // the last line (this one included).
  bool Count(uint64_t mono_ms, uint64_t* count) {
    ++unlogged_;
    if (logged_ms_ != 0 && mono_ms < logged_ms_ + kRefusalLogIntervalMs) return false;
    logged_ms_ = mono_ms;
    *count = unlogged_;
    unlogged_ = 0;
    return true;
  }

 private:
  uint64_t logged_ms_ = 0, unlogged_ = 0;
};

// A Z85 key as the 32 bytes ZeroMQ compares (ZAP credentials) or takes as
// a socket option; empty when it is not a key.
std::string KeyBytes(const std::string& z85) {
  if (!IsCurveKey(z85)) return std::string();
  uint8_t bytes[32];
  if (zmq_z85_decode(bytes, z85.c_str()) == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(bytes), sizeof(bytes));
}

std::string PartText(const zmq::message_t& m) {
  return std::string(static_cast<const char*>(m.data()), m.size());
}

// A command for the gossip thread.
struct Command {
  enum class Kind { kWake, kLocalAppend, kApplyDone, kRepairDone };
  Kind kind = Kind::kWake;
  // kLocalAppend
  std::string scope;
  uint64_t seq = 0;
  uint64_t bytes = 0;
  // kApplyDone (scope above too)
  crdt::ReplicaId origin;
  Status status;
  uint64_t last_durable = 0;
  // kRepairDone: the repair (without its states) and the applied vector
  // after it.
  AeRepair repair;
  Applied applied_after;
};

// The hand-off point into the gossip thread. Shared (shared_ptr) with the
// Host's apply callbacks so that a callback arriving after Stop() finds a
// closed mailbox rather than freed memory.
struct Mailbox {
  std::mutex mu;
  bool closed = true;          // opened by Start()
  bool wake_pending = false;   // a wake message is (or may be) in the pipe
  std::deque<Command> items;
  zmq::socket_t wake_tx;       // PAIR; used only under mu

  void Post(Command c) {
    std::lock_guard<std::mutex> lock(mu);
    if (closed) return;
    if (c.kind != Command::Kind::kWake) items.push_back(std::move(c));
    if (!wake_pending) {
      wake_pending = true;
      try {
        // One wake in flight is enough; EAGAIN (never expected with one
        // message queued) leaves wake_pending set and the poll timeout
        // still bounds the delay.
        (void)wake_tx.send(zmq::const_buffer("", 0), zmq::send_flags::dontwait);
      } catch (const zmq::error_t&) {
        // Context terminating: Stop() is under way.
      }
    }
  }

  // Gossip thread: takes everything queued.
  std::deque<Command> Take() {
    std::lock_guard<std::mutex> lock(mu);
    wake_pending = false;
    std::deque<Command> out;
    out.swap(items);
    return out;
  }
};

// A message held back by a delay fault.
struct Delayed {
  uint64_t release_ms = 0;
  uint64_t order = 0;      // FIFO among equal release times
  bool outgoing = false;
  std::string peer;        // the other node
  std::string frame;       // outgoing: encoded frame
  Message msg;             // incoming: decoded message
};

struct DelayedLater {
  bool operator()(const Delayed& a, const Delayed& b) const {
    return std::tie(a.release_ms, a.order) > std::tie(b.release_ms, b.order);
  }
};

}  // namespace

struct Transport::Impl {
  Impl(TransportOptions opts, storage::Store* st, Host* h, crdt::PhysicalClock* w, Applied applied)
      : options(std::move(opts)),
        store(st),
        host(h),
        wall(w),
        mailbox(std::make_shared<Mailbox>()),
        views(h),
        protocol(WithLogStart(options.protocol, st), WithLogStarts(options.placed, st),
                 std::move(applied), StartNow(), options.anti_entropy ? &views : nullptr),
        stored_expired(options.protocol.expired),
        stored_contact_ms(options.protocol.last_contact_wall_ms) {
    Publish();
  }

  // --- Configuration and collaborators (immutable after construction) ---
  const TransportOptions options;
  storage::Store* const store;
  Host* const host;
  crdt::PhysicalClock* const wall;

  // --- Lifecycle (guarded by life_mu) ---
  std::mutex life_mu;
  bool started = false;
  bool stopped = false;
  std::thread thread;
  std::atomic<bool> stop_requested{false};

  // --- ZeroMQ (the gossip thread's once started) ---
  zmq::context_t ctx;
  zmq::socket_t router;
  zmq::socket_t wake_rx;
  std::map<std::string, zmq::socket_t> dealers;  // peer node id -> DEALER
  // CurveZMQ only: the ZAP handler's REP, and the listed keys (32 bytes)
  // -> node id.
  zmq::socket_t zap;
  std::map<std::string, std::string> node_of_key;
  std::shared_ptr<Mailbox> mailbox;

  // Anti-entropy's Views, from the Host.
  struct HostViews : ViewSource {
    explicit HostViews(Host* h) : host(h) {}
    void ReadView(const std::string& scope, View* out) override { host->ReadView(scope, out); }
    Host* host;
  };

  // --- Gossip thread state ---
  HostViews views;
  ScopedProtocol protocol;
  Faults faults_local;          // the thread's copy of `faults`
  uint64_t faults_seen = 0;     // version of that copy
  std::vector<Delayed> delayed; // heap ordered by DelayedLater
  uint64_t delayed_order = 0;
  uint64_t frames_in = 0, frames_out = 0, bad_frames = 0, dropped_by_faults = 0;
  uint64_t bytes_in = 0, bytes_out = 0;
  // The last log range Ship read (complete and contiguous): each group's
  // new entries go to every peer, and a log entry never changes once
  // written (collection only deletes), so the next peer's ship of the same
  // range copies them instead of reading LevelDB again.
  std::string ship_cache_scope;
  std::vector<storage::LogEntry> ship_cache;
  // Log collection: truncate each scope's own log up to its truncate_goal
  // (the last TruncateRequest of the scope). The gossip thread only hands
  // the goals to the truncator thread (RunTruncator), which deletes in bounded
  // chunks: a deletion is a store Write, which waits behind the applier's
  // group commit and its fsync, and must not hold up shipping and
  // receiving meanwhile.
  std::map<std::string, uint64_t> truncate_goal;  // per scope
  bool truncate_pending = false;
  std::thread truncator;
  std::mutex truncate_mu;
  std::condition_variable truncate_cv;
  std::map<std::string, uint64_t> truncate_wanted;  // guarded by truncate_mu
  bool truncate_stop = false;       // guarded by truncate_mu
  std::string truncate_error;       // guarded by truncate_mu: the last failure, not yet logged
  uint64_t truncate_failures_logged_ms = 0;
  uint64_t next_stable_ms = 0;  // when Host::Stable is next called
  // Retention horizon: the retired incarnations as stored, and the last
  // contact time as stored (written again once it moved on by a step).
  std::map<std::string, uint64_t> stored_expired;
  uint64_t stored_contact_ms = 0;
  bool rejoin_told = false;
  bool bootstrapped_told = false;  // Host::Bootstrapped called (or never needed)
  std::set<std::string> warned_no_endpoint;
  RefusalLog bad_frames_log;
  uint64_t zap_refused = 0, forged_frames = 0;
  RefusalLog zap_log, forged_log;

  // --- Faults (guarded by faults_mu) ---
  mutable std::mutex faults_mu;
  Faults faults;
  std::atomic<uint64_t> faults_version{0};

  // --- Policy-set hash (guarded by policy_mu): the latest SetPolicyHash,
  // taken by the gossip thread when policy_version moved past policy_seen.
  std::mutex policy_mu;
  std::string policy_hash;
  std::atomic<uint64_t> policy_version{0};
  uint64_t policy_seen = 0;  // the gossip thread's

  // --- Published snapshot (guarded by pub_mu) ---
  mutable std::mutex pub_mu;
  TransportSnapshot published;
  std::map<std::string, uint64_t> published_own_last;  // scope -> this node's last seq

  // The options with the own log's first retained seq read from the store
  // (on a read error, 0: the Protocol then takes the log as empty, and a
  // peer that lacks entries is repaired by anti-entropy instead).
  static ProtocolOptions WithLogStart(ProtocolOptions o, storage::Store* st) {
    uint64_t first = 0;
    if (st->FirstLogSeq(kDefaultScope, &first).ok()) o.log_first_seq = first;
    return o;
  }
  static std::vector<ScopeConfig> WithLogStarts(std::vector<ScopeConfig> placed,
                                                storage::Store* st) {
    for (ScopeConfig& sc : placed) {
      uint64_t first = 0;
      if (st->FirstLogSeq(sc.scope, &first).ok()) sc.log_first_seq = first;
    }
    return placed;
  }

  // The Protocol's start. No HLC: the Host is called on the gossip thread
  // only, and the Protocol's timers need just the two clocks.
  Now StartNow() const {
    Now now;
    now.mono_ms = MonoMs();
    now.wall_ms = wall->NowMs();
    return now;
  }

  Now CurrentNow() const {
    Now now;
    now.mono_ms = MonoMs();
    now.wall_ms = wall->NowMs();
    now.hlc = host->CurrentHlc();
    return now;
  }

  Status Start();
  Status SetUpCurve();
  void SetUpCurveClient(const std::string& peer, zmq::socket_t* dealer);
  void Stop();
  void CloseSockets();

  void Run();
  void Turn();
  void RefreshFaults();
  void RefreshPolicyHash();
  void DrainInbox();
  void ReceiveFrames();
  void HandleFrame(std::string_view payload, const char* user_id);
  void CountBadFrame(const Status& why);
  void ServeZap();
  void ReleaseDelayed(uint64_t mono_ms);
  uint64_t PollTimeoutMs();

  // Runs one Protocol call and then every effect it produced, including
  // the follow-up calls effects may need (OnShipFailed). `acks_may_change`:
  // the call handled an Ack or a Welcome.
  template <typename Fn>
  void Step(bool acks_may_change, Fn&& fn);
  void Execute(const Now& now, Effects* fx, bool* progress);
  void Ship(const Now& now, const ShipRequest& req, Effects* follow_up);
  void ServeAeRead(const Now& now, const AeReadStates& read, Effects* follow_up);
  void Repair(AeRepair repair);
  void TruncateSome();
  void RunTruncator();
  void StopTruncator();
  void StoreExpirations(const std::vector<crdt::ReplicaId>& expired);
  void StoreContact();
  void Rejoin();
  // Sends now, holds for a delay fault, or drops for a drop fault.
  void Dispatch(const std::string& peer, std::string frame, uint64_t mono_ms);
  void SendFrame(const std::string& peer, const std::string& frame);
  void HandleMessage(const Message& msg);
  void Apply(ApplyRequest req);
  void Publish();
};

// --- Lifecycle ---------------------------------------------------------------

Status Transport::Impl::Start() {
  std::lock_guard<std::mutex> lock(life_mu);
  if (started || stopped) {
    return Status::FailedPrecondition("the gossip transport on " + options.bind +
                                      " was already started or stopped");
  }
  try {
    router = zmq::socket_t(ctx, zmq::socket_type::router);
    router.set(zmq::sockopt::linger, 0);
    router.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(kMaxFrameBytes));
    router.set(zmq::sockopt::rcvhwm, kRecvHwm);
    router.set(zmq::sockopt::sndhwm, kSendHwm);
    if (options.curve.enabled()) {
      // The ZAP handler first: with none bound, libzmq would let every
      // CURVE client in.
      Status s = SetUpCurve();
      if (!s.ok()) {
        CloseSockets();
        return s;
      }
    }
    try {
      router.bind(options.bind);
    } catch (const zmq::error_t& e) {
      CloseSockets();
      return Status::Unavailable("cannot bind the gossip endpoint " + options.bind + ": " +
                                 e.what());
    }

    // The wake pipe: bind before connect (inproc).
    const std::string wake_endpoint =
        "inproc://meridian-gossip-wake-" + std::to_string(reinterpret_cast<uintptr_t>(this));
    wake_rx = zmq::socket_t(ctx, zmq::socket_type::pair);
    wake_rx.set(zmq::sockopt::linger, 0);
    wake_rx.bind(wake_endpoint);
    {
      std::lock_guard<std::mutex> mlock(mailbox->mu);
      mailbox->wake_tx = zmq::socket_t(ctx, zmq::socket_type::pair);
      mailbox->wake_tx.set(zmq::sockopt::linger, 0);
      mailbox->wake_tx.connect(wake_endpoint);
    }

    for (const auto& [node, endpoint] : options.peers) {
      zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
      dealer.set(zmq::sockopt::linger, 0);
      dealer.set(zmq::sockopt::immediate, true);
      dealer.set(zmq::sockopt::sndhwm, kSendHwm);
      dealer.set(zmq::sockopt::rcvhwm, kRecvHwm);
      dealer.set(zmq::sockopt::reconnect_ivl, kReconnectIvlMs);
      dealer.set(zmq::sockopt::heartbeat_ivl, kZmtpHeartbeatIvlMs);
      dealer.set(zmq::sockopt::heartbeat_timeout, kZmtpHeartbeatTimeoutMs);
      if (options.curve.enabled()) SetUpCurveClient(node, &dealer);
      try {
        dealer.connect(endpoint);
      } catch (const zmq::error_t& e) {
        dealer.close();
        CloseSockets();
        return Status::InvalidArgument("cannot connect to the gossip endpoint " + endpoint +
                                       " of peer " + node + ": " + e.what());
      }
      dealers.emplace(node, std::move(dealer));
    }
  } catch (const zmq::error_t& e) {
    CloseSockets();
    return Status::IOError(std::string("cannot set up the gossip sockets: ") + e.what());
  }

  {
    std::lock_guard<std::mutex> mlock(mailbox->mu);
    mailbox->closed = false;
  }
  started = true;
  try {
    truncator = std::thread([this] { RunTruncator(); });
    thread = std::thread([this] { Run(); });
  } catch (const std::exception& e) {
    started = false;
    StopTruncator();
    {
      std::lock_guard<std::mutex> mlock(mailbox->mu);
      mailbox->closed = true;
    }
    CloseSockets();
    return Status::IOError(std::string("cannot start the gossip thread: ") + e.what());
  }
  return Status::OK();
}

// Checks the keys, binds the ZAP handler and makes the ROUTER a CURVE
// server. Called from Start (under life_mu) before the ROUTER binds.
Status Transport::Impl::SetUpCurve() {
  const CurveOptions& c = options.curve;
  if (!CurveAvailable()) {
    return Status::FailedPrecondition(
        "the topology lists CURVE keys, but this ZeroMQ library was built without CURVE");
  }
  if (!IsCurveKey(c.secret_key) || !IsCurveKey(c.public_key)) {
    return Status::InvalidArgument("this node's CURVE key pair is not two 40-character Z85 keys");
  }
  for (const auto& [node, key] : c.node_keys) {
    std::string bytes = KeyBytes(key);
    if (bytes.empty()) {
      return Status::InvalidArgument("the public key of node " + node +
                                     " is not 40 Z85 characters");
    }
    // This node's own key is never a client here: nobody else should
    // hold its secret.
    if (node != options.protocol.self.node) node_of_key[bytes] = node;
  }
  for (const auto& [node, endpoint] : options.peers) {
    if (!c.node_keys.count(node)) {
      return Status::InvalidArgument("peer " + node + " has no public key, and gossip uses CURVE");
    }
  }
  zap = zmq::socket_t(ctx, zmq::socket_type::rep);
  zap.set(zmq::sockopt::linger, 0);
  zap.bind(kZapEndpoint);
  router.set(zmq::sockopt::zap_domain, kZapDomain);
  router.set(zmq::sockopt::curve_server, true);
  router.set(zmq::sockopt::curve_secretkey, KeyBytes(c.secret_key));
  return Status::OK();
}

// A DEALER that speaks CURVE with this node's pair and accepts only the
// peer's listed server key. REQUIRES: SetUpCurve succeeded.
void Transport::Impl::SetUpCurveClient(const std::string& peer, zmq::socket_t* dealer) {
  dealer->set(zmq::sockopt::curve_serverkey, KeyBytes(options.curve.node_keys.at(peer)));
  dealer->set(zmq::sockopt::curve_publickey, KeyBytes(options.curve.public_key));
  dealer->set(zmq::sockopt::curve_secretkey, KeyBytes(options.curve.secret_key));
}

void Transport::Impl::StopTruncator() {
  {
    std::lock_guard<std::mutex> lock(truncate_mu);
    truncate_stop = true;
  }
  truncate_cv.notify_one();
  if (truncator.joinable()) truncator.join();
}

void Transport::Impl::CloseSockets() {
  router.close();
  zap.close();
  wake_rx.close();
  for (auto& [node, dealer] : dealers) dealer.close();
  dealers.clear();
  std::lock_guard<std::mutex> mlock(mailbox->mu);
  mailbox->closed = true;
  mailbox->items.clear();
  mailbox->wake_tx.close();
}

void Transport::Impl::Stop() {
  std::lock_guard<std::mutex> lock(life_mu);
  if (stopped) return;
  stopped = true;
  if (started) {
    stop_requested.store(true);
    mailbox->Post(Command{});  // kWake
    if (thread.joinable()) thread.join();
    StopTruncator();
  }
  CloseSockets();
  ctx.close();
}

// --- The gossip thread -------------------------------------------------------

void Transport::Impl::Run() {
  host->Log("gossip: listening on " + options.bind +
            (options.curve.enabled() ? " (CurveZMQ), " : " (plaintext), ") +
            std::to_string(dealers.size()) + " peer(s)");
  while (!stop_requested.load()) {
    try {
      Turn();
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) break;
      if (e.num() == EINTR) continue;
      host->Log(std::string("gossip: socket error: ") + e.what());
      // Do not spin on a persistent error.
      std::this_thread::sleep_for(std::chrono::milliseconds(kMaxPollMs));
    } catch (const std::exception& e) {
      host->Log(std::string("gossip: error: ") + e.what());
      std::this_thread::sleep_for(std::chrono::milliseconds(kMaxPollMs));
    }
  }
}

uint64_t Transport::Impl::PollTimeoutMs() {
  const uint64_t mono = MonoMs();
  uint64_t due = protocol.NextTickMs();
  if (!delayed.empty()) due = std::min(due, delayed.front().release_ms);
  uint64_t timeout = due > mono ? due - mono : 0;
  // At least 1 ms: even if the Protocol asks for a tick that is already
  // due (it was just handled below), the loop never spins.
  return std::clamp<uint64_t>(timeout, 1, kMaxPollMs);
}

void Transport::Impl::Turn() {
  zmq::pollitem_t items[] = {
      {wake_rx.handle(), 0, ZMQ_POLLIN, 0},
      {router.handle(), 0, ZMQ_POLLIN, 0},
      {zap.handle(), 0, ZMQ_POLLIN, 0},
  };
  const size_t polled = zap ? 3 : 2;
  zmq::poll(items, polled, std::chrono::milliseconds(static_cast<long>(PollTimeoutMs())));
  if (stop_requested.load()) return;

  RefreshFaults();
  RefreshPolicyHash();
  if (items[0].revents & ZMQ_POLLIN) {
    zmq::message_t m;
    while (wake_rx.recv(m, zmq::recv_flags::dontwait)) {
    }
  }
  DrainInbox();
  if (polled == 3 && (items[2].revents & ZMQ_POLLIN)) ServeZap();
  if (items[1].revents & ZMQ_POLLIN) ReceiveFrames();
  ReleaseDelayed(MonoMs());
  if (MonoMs() >= protocol.NextTickMs()) {
    Step(false, [this](const Now& now, Effects* fx) { protocol.OnTick(now, fx); });
  }
  TruncateSome();
  if (MonoMs() >= next_stable_ms) {
    next_stable_ms = MonoMs() + options.protocol.heartbeat_interval_ms;
    Applied stable = protocol.Stable();
    if (!stable.empty()) host->Stable(stable);
    StoreContact();
  }
  Publish();
}

void Transport::Impl::StoreExpirations(const std::vector<crdt::ReplicaId>& expired) {
  std::map<std::string, uint64_t> next = stored_expired;
  for (const crdt::ReplicaId& r : expired) {
    uint64_t& through = next[r.node];
    through = std::max(through, r.incarnation);
  }
  storage::WriteBatch batch;
  storage::PutExpired(next, &batch);
  Status s = store->Write(&batch);
  if (s.ok()) {
    stored_expired = std::move(next);
    return;
  }
  host->Log("gossip: cannot store the retired incarnations (" + s.ToString() +
            "); they are retired again at a later heartbeat");
  for (const crdt::ReplicaId& r : expired) protocol.OnExpirationFailed(r);
}

// The last two-way contact, stored once it moved on by a step (a 32nd of
// the horizon, from 1 to 60 s): a restart then knows how long this node
// has been away (protocol.h "Retention horizon").
void Transport::Impl::StoreContact() {
  Now now;
  now.mono_ms = MonoMs();
  now.wall_ms = wall->NowMs();
  const HorizonStatus h = protocol.Horizon(now);
  if (h.horizon_ms == 0 || h.rejoining) return;
  const uint64_t step = std::clamp<uint64_t>(h.horizon_ms / 32, 1000, 60000);
  if (h.last_contact_wall_ms < stored_contact_ms + step) return;
  storage::WriteBatch batch;
  storage::PutLastContact(h.last_contact_wall_ms, &batch);
  if (store->Write(&batch).ok()) stored_contact_ms = h.last_contact_wall_ms;
}

void Transport::Impl::Rejoin() {
  if (rejoin_told) return;
  rejoin_told = true;
  storage::WriteBatch batch;
  storage::PutRetired(&batch);
  Status s = store->Write(&batch);
  if (!s.ok()) host->Log("gossip: cannot store the retired mark: " + s.ToString());
  host->Rejoin();
}

// Hands the goal to the truncator thread and logs its failures, at most
// one line per 10 s (quick: the Host is called on this thread only).
void Transport::Impl::TruncateSome() {
  std::string error;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(truncate_mu);
    error.swap(truncate_error);
    if (truncate_pending) {
      for (const auto& [scope, goal] : truncate_goal) {
        uint64_t& wanted = truncate_wanted[scope];
        if (goal > wanted) {
          wanted = goal;
          wake = true;
        }
      }
    }
  }
  truncate_pending = false;
  if (wake) truncate_cv.notify_one();
  if (!error.empty()) {
    // Harmless: the entries stay until a later try removes them.
    const uint64_t mono = MonoMs();
    if (mono >= truncate_failures_logged_ms + 10000) {
      truncate_failures_logged_ms = mono;
      host->Log("gossip: cannot truncate the log: " + error);
    }
  }
}

// The truncator thread: deletes up to the latest goal, one chunk per
// Write, so that a long truncation (after a peer was away) never holds
// the store's write path for long. A failure is retried after a second.
void Transport::Impl::RunTruncator() {
  constexpr size_t kChunk = 8192;
  // Per scope: truncated through this seq (as far as this thread knows).
  std::map<std::string, uint64_t> done;
  bool failing = false;
  // The next scope (round robin after `scope`) whose goal is not done
  // yet, into *next; false when none is.
  std::string scope;
  auto pending = [&](std::string* next) {
    for (int pass = 0; pass < 2; ++pass) {
      for (const auto& [sc, wanted] : truncate_wanted) {
        if ((pass == 0 && sc <= scope) || wanted <= done[sc]) continue;
        *next = sc;
        return true;
      }
    }
    return false;
  };
  std::string next;
  std::unique_lock<std::mutex> lock(truncate_mu);
  for (;;) {
    if (failing) {
      truncate_cv.wait_for(lock, std::chrono::seconds(1), [this] { return truncate_stop; });
    } else {
      truncate_cv.wait(lock, [&] { return truncate_stop || pending(&next); });
    }
    if (truncate_stop) return;
    if (!pending(&next)) continue;
    scope = next;
    const uint64_t goal = truncate_wanted[scope];
    lock.unlock();
    size_t removed = 0;
    Status s = store->TruncateLog(scope, goal, kChunk, &removed);
    failing = !s.ok();
    if (!failing && removed < kChunk) done[scope] = goal;
    lock.lock();
    if (failing) truncate_error = s.ToString();
  }
}

void Transport::Impl::RefreshFaults() {
  const uint64_t version = faults_version.load();
  if (version == faults_seen) return;
  std::lock_guard<std::mutex> lock(faults_mu);
  faults_local = faults;
  faults_seen = faults_version.load();
}

void Transport::Impl::RefreshPolicyHash() {
  const uint64_t version = policy_version.load();
  if (version == policy_seen) return;
  std::string hash;
  {
    std::lock_guard<std::mutex> lock(policy_mu);
    hash = policy_hash;
    policy_seen = policy_version.load();
  }
  protocol.SetPolicyHash(std::move(hash));
}

void Transport::Impl::DrainInbox() {
  std::deque<Command> commands = mailbox->Take();
  for (Command& c : commands) {
    switch (c.kind) {
      case Command::Kind::kWake:
        break;
      case Command::Kind::kLocalAppend:
        Step(false, [&](const Now& now, Effects* fx) {
          protocol.OnLocalAppend(now, c.scope, c.seq, c.bytes, fx);
        });
        break;
      case Command::Kind::kApplyDone: {
        uint64_t current = 0;
        const auto& applied = protocol.applied();
        auto it = applied.find({c.origin, c.scope});
        if (it != applied.end()) current = it->second;
        if (c.last_durable > current) {
          Step(false, [&](const Now& now, Effects* fx) {
            protocol.OnApplied(now, c.origin, c.scope, c.last_durable, fx);
          });
        }
        if (!c.status.ok()) {
          host->Log("gossip: applying deltas of " + c.origin.ToString() + " failed: " +
                    c.status.ToString() + "; they will be shipped again");
          Step(false, [&](const Now& now, Effects* fx) {
            protocol.OnApplyFailed(now, c.origin, c.scope, fx);
          });
        }
        break;
      }
      case Command::Kind::kRepairDone:
        if (c.status.ok()) {
          // The applied vector may have grown: waiters look again.
          Step(true, [&](const Now& now, Effects* fx) {
            protocol.OnAeRepaired(now, c.repair, c.applied_after, fx);
          });
        } else {
          host->Log("gossip: an anti-entropy repair from " + c.repair.peer +
                    " could not be applied: " + c.status.ToString());
          Step(false, [&](const Now& now, Effects* fx) {
            protocol.OnAeRepairFailed(now, c.repair, fx);
          });
        }
        break;
    }
  }
}

void Transport::Impl::ReceiveFrames() {
  for (int n = 0; n < kMaxReceivesPerTurn; ++n) {
    // [routing id (added by the ROUTER), payload]; anything else is
    // garbage. Every part is read so that the next message starts clean
    // (the parts of one message arrive together).
    zmq::message_t id;
    if (!router.recv(id, zmq::recv_flags::dontwait)) return;  // nothing more
    ++frames_in;
    size_t parts = 1;
    bool more = id.more();
    zmq::message_t payload;
    while (more) {
      zmq::message_t part;
      if (!router.recv(part, zmq::recv_flags::dontwait)) break;
      more = part.more();
      bytes_in += part.size();
      if (++parts == 2) payload = std::move(part);
    }
    if (parts != 2) {
      CountBadFrame(Status::Corruption("a message of " + std::to_string(parts - 1) +
                                       " frames, not one"));
      continue;
    }
    // With CURVE, the node the ZAP handler bound the sender's key to (null
    // when there is none: never expected, and then nothing is trusted).
    const char* user_id = nullptr;
    if (options.curve.enabled()) user_id = zmq_msg_gets(payload.handle(), "User-Id");
    HandleFrame(std::string_view(static_cast<const char*>(payload.data()), payload.size()),
                user_id);
  }
}

void Transport::Impl::CountBadFrame(const Status& why) {
  ++bad_frames;
  uint64_t count = 0;
  if (!bad_frames_log.Count(MonoMs(), &count)) return;
  host->Log("gossip: dropped " + std::to_string(count) +
            " incoming frame(s) that are not gossip messages (latest: " + why.ToString() + ")");
}

// Answers the ZAP requests queued (RFC 27): request := version "1.0",
// request id, domain, address, routing id, mechanism, credentials...;
// reply := version, request id, status code, status text, user id,
// metadata. Accepted: mechanism CURVE in domain "meridian" with a listed
// client key (the one credential, 32 bytes); the user id is its node.
void Transport::Impl::ServeZap() {
  for (int n = 0; n < kMaxReceivesPerTurn; ++n) {
    std::vector<zmq::message_t> parts;
    zmq::message_t part;
    if (!zap.recv(part, zmq::recv_flags::dontwait)) return;
    bool more = part.more();
    parts.push_back(std::move(part));
    while (more) {
      zmq::message_t next;
      if (!zap.recv(next, zmq::recv_flags::dontwait)) break;
      more = next.more();
      parts.push_back(std::move(next));
    }
    std::string status = "400", text, user;
    std::string address = parts.size() > 3 ? PartText(parts[3]) : "?";
    if (parts.size() < 6 || PartText(parts[0]) != "1.0") {
      text = "malformed ZAP request";
    } else if (PartText(parts[2]) != kZapDomain) {
      text = "unknown ZAP domain";
    } else if (PartText(parts[5]) != "CURVE") {
      text = "mechanism " + PartText(parts[5]).substr(0, 16) + " refused: CURVE only";
    } else if (parts.size() != 7 || parts[6].size() != 32) {
      text = "malformed CURVE credentials";
    } else if (auto it = node_of_key.find(PartText(parts[6])); it == node_of_key.end()) {
      text = "unlisted CURVE key";
    } else {
      status = "200";
      text = "OK";
      user = it->second;
    }
    if (status != "200") {
      ++zap_refused;
      uint64_t count = 0;
      if (zap_log.Count(MonoMs(), &count)) {
        host->Log("gossip: refused " + std::to_string(count) +
                  " connection(s) to the gossip port (latest: from " + address + ", " + text + ")");
      }
    }
    const std::string request_id = parts.size() > 1 ? PartText(parts[1]) : std::string();
    zap.send(zmq::str_buffer("1.0"), zmq::send_flags::sndmore);
    zap.send(zmq::buffer(request_id), zmq::send_flags::sndmore);
    zap.send(zmq::buffer(status), zmq::send_flags::sndmore);
    zap.send(zmq::buffer(text), zmq::send_flags::sndmore);
    zap.send(zmq::buffer(user), zmq::send_flags::sndmore);
    zap.send(zmq::const_buffer("", 0), zmq::send_flags::none);
  }
}

void Transport::Impl::HandleFrame(std::string_view payload, const char* user_id) {
  Message msg;
  Status s = Decode(payload, &msg);
  if (!s.ok()) {
    CountBadFrame(s);
    return;
  }
  const std::string& peer = msg.header.from.node;
  if (options.curve.enabled() && (user_id == nullptr || peer != user_id)) {
    // A listed key speaking for another node (or no key at all): the
    // Protocol never sees it.
    ++forged_frames;
    uint64_t count = 0;
    if (forged_log.Count(MonoMs(), &count)) {
      host->Log("gossip: refused " + std::to_string(count) +
                " frame(s) whose sender is not the node of their CURVE key (latest: a " +
                TypeName(msg.type) + " claiming to be from " + msg.header.from.ToString() +
                ", sent with the key of " + (user_id ? user_id : "no listed node") + ")");
    }
    return;
  }
  if (faults_local.drop.count(peer)) {
    ++dropped_by_faults;
    return;
  }
  auto d = faults_local.delay_ms.find(peer);
  if (d != faults_local.delay_ms.end() && d->second > 0) {
    Delayed item;
    item.release_ms = ReleaseTime(MonoMs(), d->second);
    item.order = delayed_order++;
    item.outgoing = false;
    item.peer = peer;
    item.msg = std::move(msg);
    delayed.push_back(std::move(item));
    std::push_heap(delayed.begin(), delayed.end(), DelayedLater());
    return;
  }
  HandleMessage(msg);
}

void Transport::Impl::HandleMessage(const Message& msg) {
  const bool acks = msg.type == MsgType::kAck || msg.type == MsgType::kWelcome;
  Step(acks, [&](const Now& now, Effects* fx) { protocol.OnMessage(now, msg, fx); });
}

void Transport::Impl::ReleaseDelayed(uint64_t mono_ms) {
  while (!delayed.empty() && delayed.front().release_ms <= mono_ms) {
    std::pop_heap(delayed.begin(), delayed.end(), DelayedLater());
    Delayed item = std::move(delayed.back());
    delayed.pop_back();
    // A partition that began while the message waited cuts it too.
    if (faults_local.drop.count(item.peer)) {
      ++dropped_by_faults;
      continue;
    }
    if (item.outgoing) {
      SendFrame(item.peer, item.frame);
    } else {
      HandleMessage(item.msg);
    }
  }
}

// --- Steps and effects -------------------------------------------------------

static bool Empty(const Effects& fx) {
  return fx.sends.empty() && fx.ships.empty() && fx.applies.empty() && fx.peer_events.empty() &&
         fx.ae_reads.empty() && fx.ae_repairs.empty() && fx.truncates.empty() && fx.logs.empty() &&
         fx.expirations.empty() && !fx.rejoin &&
         fx.observed_hlc == 0;
}

template <typename Fn>
void Transport::Impl::Step(bool acks_may_change, Fn&& fn) {
  Now now = CurrentNow();
  Effects fx;
  fn(now, &fx);
  bool progress = acks_may_change;
  // Effects may need follow-up calls into the Protocol (a ship that cannot
  // be served); Execute leaves their effects in fx. Bounded in case the
  // Protocol keeps asking for a range the log cannot serve.
  for (int rounds = 0; rounds < 16 && !Empty(fx); ++rounds) Execute(now, &fx, &progress);
  if (!bootstrapped_told && protocol.bootstrapped()) {
    bootstrapped_told = true;
    if (options.protocol.anti_entropy.must_bootstrap) host->Bootstrapped();
    progress = true;  // the gate opened
  }
  if (progress) {
    // Waiters woken by ReplicationProgress read the snapshot: publish first.
    Publish();
    host->ReplicationProgress();
  }
}

// Carries out *fx and leaves in it the effects of any follow-up Protocol
// call (empty when there was none).
void Transport::Impl::Execute(const Now& now, Effects* fx, bool* progress) {
  Effects next;
  if (fx->observed_hlc != 0) host->ObserveHlc(fx->observed_hlc);
  for (const std::string& line : fx->logs) host->Log(line);
  // Stored before anything else of the step: Stable() no longer waits on
  // a retired incarnation, so a restart must still refuse it.
  if (!fx->expirations.empty()) StoreExpirations(fx->expirations);
  if (fx->rejoin) Rejoin();
  if (!fx->peer_events.empty()) *progress = true;
  for (const auto& [peer, msg] : fx->sends) Dispatch(peer, Encode(msg), now.mono_ms);
  for (const ShipRequest& req : fx->ships) Ship(now, req, &next);
  for (ApplyRequest& req : fx->applies) Apply(std::move(req));
  for (const AeReadStates& read : fx->ae_reads) ServeAeRead(now, read, &next);
  for (AeRepair& repair : fx->ae_repairs) Repair(std::move(repair));
  for (const TruncateRequest& t : fx->truncates) {
    uint64_t& goal = truncate_goal[t.scope];
    goal = std::max(goal, t.through_seq);
    truncate_pending = true;
  }
  *fx = std::move(next);
}

void Transport::Impl::Ship(const Now& now, const ShipRequest& req, Effects* follow_up) {
  if (req.to_seq < req.from_seq) return;
  if (faults_local.drop.count(req.peer)) {
    // Cut: nothing would leave. The Protocol resends after its timeout.
    ++dropped_by_faults;
    return;
  }
  const uint64_t count = req.to_seq - req.from_seq + 1;
  std::vector<storage::LogEntry> entries;
  Status s;
  if (!ship_cache.empty() && ship_cache_scope == req.scope &&
      ship_cache.front().seq <= req.from_seq && req.to_seq <= ship_cache.back().seq) {
    const auto first =
        ship_cache.begin() + static_cast<std::ptrdiff_t>(req.from_seq - ship_cache.front().seq);
    entries.assign(first, first + static_cast<std::ptrdiff_t>(count));
  } else {
    s = store->ReadLog(req.scope, req.from_seq, static_cast<size_t>(count), &entries);
    if (s.ok()) {
      bool complete = entries.size() == count;
      for (size_t i = 0; complete && i < entries.size(); ++i) {
        complete = entries[i].seq == req.from_seq + i;
      }
      if (!complete) {
        s = Status::NotFound("the log of scope '" + req.scope + "' lacks seqs " +
                             std::to_string(req.from_seq) + ".." + std::to_string(req.to_seq));
      } else {
        ship_cache_scope = req.scope;
        ship_cache = entries;
      }
    }
  }
  if (!s.ok()) {
    host->Log("gossip: cannot ship to " + req.peer + ": " + s.ToString());
    protocol.OnShipFailed(now, req.peer, req.scope, follow_up);
    return;
  }

  Message base;
  base.header = protocol.MakeHeader(now);
  base.type = MsgType::kDeltas;
  base.scope = req.scope;
  const size_t base_bytes = Encode(base).size();
  const size_t limit = options.max_frame_bytes;

  // Greedy packing by estimated size, then a check of the real encoding:
  // a message that still comes out too large is split in halves.
  std::vector<std::vector<DeltaEntry>> groups(1);
  size_t estimate = base_bytes;
  for (storage::LogEntry& e : entries) {
    const size_t bytes = e.key.size() + e.delta.size() + kEntryOverheadBytes;
    if (!groups.back().empty() &&
        (estimate + bytes > limit || groups.back().size() >= kMaxDeltasPerMessage)) {
      groups.emplace_back();
      estimate = base_bytes;
    }
    groups.back().push_back(DeltaEntry{e.seq, std::move(e.key), std::move(e.delta)});
    estimate += bytes;
  }
  std::deque<std::vector<DeltaEntry>> todo(std::make_move_iterator(groups.begin()),
                                           std::make_move_iterator(groups.end()));
  while (!todo.empty()) {
    Message m = base;
    m.deltas = std::move(todo.front());
    todo.pop_front();
    std::string frame = Encode(m);
    if (frame.size() > limit && m.deltas.size() > 1) {
      const size_t half = m.deltas.size() / 2;
      std::vector<DeltaEntry> second(std::make_move_iterator(m.deltas.begin() + half),
                                     std::make_move_iterator(m.deltas.end()));
      m.deltas.resize(half);
      todo.push_front(std::move(second));
      todo.push_front(std::move(m.deltas));
      continue;
    }
    if (frame.size() > kMaxFrameBytes) {
      // One entry larger than any peer accepts: it can never be delivered.
      host->Log("gossip: seq " + std::to_string(m.deltas.front().seq) + " of scope '" +
                req.scope + "' encodes to " + std::to_string(frame.size()) +
                " bytes, beyond the frame limit; it cannot be shipped");
      protocol.OnShipFailed(now, req.peer, req.scope, follow_up);
      return;
    }
    if (frame.size() > limit) {
      host->Log("gossip: seq " + std::to_string(m.deltas.front().seq) + " alone encodes to " +
                std::to_string(frame.size()) + " bytes, above max_frame_bytes; sent anyway");
    }
    Dispatch(req.peer, std::move(frame), now.mono_ms);
  }
}

// Reads the states of the buckets asked for as of the View's snapshot and
// sends them as kStates parts 0, 1, ... below max_frame_bytes, bucket by
// bucket (one part is held back so that the last can be flagged; with no
// states, one empty last part).
void Transport::Impl::ServeAeRead(const Now& now, const AeReadStates& read, Effects* follow_up) {
  if (faults_local.drop.count(read.peer)) {
    // Cut: nothing would leave; the round times out.
    ++dropped_by_faults;
    return;
  }
  Message base;
  base.header = protocol.MakeHeader(now);
  base.type = MsgType::kAntiEntropy;
  base.ae.kind = AeKind::kStates;
  base.ae.round = read.round;
  base.ae.from_initiator = read.from_initiator;
  base.ae.scope = read.scope;
  base.ae.part = std::numeric_limits<uint32_t>::max();
  base.ae.last = true;
  base.ae.applied = read.applied;  // sized in as if every part carried it
  base.ae.floor = read.floor;
  const size_t base_bytes = Encode(base).size();
  const size_t limit = std::max(options.max_frame_bytes, base_bytes + 1);
  base.ae.last = false;
  base.ae.applied.clear();
  base.ae.floor.clear();

  uint32_t next_part = 0;
  uint64_t states_sent = 0;
  Message pending = base;  // the part being filled
  size_t pending_bytes = base_bytes;
  bool have_full = false;  // `full` holds a finished part not yet sent
  Message full;
  auto send = [&](Message m) {
    states_sent += m.ae.states.size();
    Dispatch(read.peer, Encode(m), now.mono_ms);
  };
  auto finish_part = [&] {
    if (have_full) send(std::move(full));
    full = std::move(pending);
    full.ae.part = next_part++;
    have_full = true;
    pending = base;
    pending_bytes = base_bytes;
  };
  auto fail = [&](const std::string& why) {
    host->Log("gossip: cannot send anti-entropy states to " + read.peer + ": " + why);
    protocol.OnAeReadFailed(now, read, follow_up);
  };

  if (read.snapshot == nullptr) return fail("no snapshot of the store was taken with the View");
  const storage::StoreSnapshot* at = read.snapshot.get();
  std::vector<std::pair<std::string, storage::Digest>> keys;
  for (uint32_t bucket : read.buckets) {
    Status s = storage::ScanBucket(*store, read.scope, bucket, &keys, at);
    if (!s.ok()) return fail(s.ToString());
    for (const auto& [key, digest] : keys) {
      AeState st;
      st.key = key;
      s = store->GetState(key, &st.envelope, at);
      if (s.IsNotFound()) continue;  // no state: nothing to send
      if (!s.ok()) return fail(s.ToString());
      const size_t bytes = st.key.size() + st.envelope.size() + kStateOverheadBytes;
      if (base_bytes + bytes > kMaxFrameBytes) {
        return fail("the state of a key in bucket " + std::to_string(bucket) + " encodes to " +
                    std::to_string(bytes) + " bytes, beyond the frame limit");
      }
      if (!pending.ae.states.empty() &&
          (pending_bytes + bytes > limit || pending.ae.states.size() >= kMaxAeStatesPerMessage)) {
        finish_part();
      }
      pending.ae.states.push_back(std::move(st));
      pending_bytes += bytes;
    }
  }
  if (!pending.ae.states.empty() || !have_full) finish_part();
  full.ae.last = true;
  full.ae.applied = read.applied;
  full.ae.floor = read.floor;
  send(std::move(full));
  protocol.OnAeStatesSent(read, states_sent);
}

void Transport::Impl::Repair(AeRepair repair) {
  std::weak_ptr<Mailbox> weak = mailbox;
  AeRepair ids;  // what the Protocol needs back: no states
  ids.peer = repair.peer;
  ids.round = repair.round;
  ids.initiator = repair.initiator;
  ids.scope = repair.scope;
  ids.has_advance = repair.has_advance;
  host->Repair(repair, [weak, ids = std::move(ids)](Status status, Applied applied_after) {
    std::shared_ptr<Mailbox> box = weak.lock();
    if (!box) return;  // the Transport is gone
    Command c;
    c.kind = Command::Kind::kRepairDone;
    c.repair = ids;
    c.status = std::move(status);
    c.applied_after = std::move(applied_after);
    box->Post(std::move(c));
  });
}

void Transport::Impl::Dispatch(const std::string& peer, std::string frame, uint64_t mono_ms) {
  if (faults_local.drop.count(peer)) {
    ++dropped_by_faults;
    return;
  }
  auto d = faults_local.delay_ms.find(peer);
  if (d != faults_local.delay_ms.end() && d->second > 0) {
    Delayed item;
    item.release_ms = ReleaseTime(mono_ms, d->second);
    item.order = delayed_order++;
    item.outgoing = true;
    item.peer = peer;
    item.frame = std::move(frame);
    delayed.push_back(std::move(item));
    std::push_heap(delayed.begin(), delayed.end(), DelayedLater());
    return;
  }
  SendFrame(peer, frame);
}

void Transport::Impl::SendFrame(const std::string& peer, const std::string& frame) {
  auto it = dealers.find(peer);
  if (it == dealers.end()) {
    // The Protocol sends only to topology peers; say once if one has no
    // gossip endpoint in the options.
    if (warned_no_endpoint.insert(peer).second) {
      host->Log("gossip: no endpoint for peer " + peer + "; its messages are dropped");
    }
    return;
  }
  // ZMQ_IMMEDIATE: with no live connection (or a full queue) the send
  // fails at once with EAGAIN and the message is dropped; the Protocol
  // resends what matters.
  if (it->second.send(zmq::buffer(frame), zmq::send_flags::dontwait)) {
    ++frames_out;
    bytes_out += frame.size();
  }
}

void Transport::Impl::Apply(ApplyRequest req) {
  std::weak_ptr<Mailbox> weak = mailbox;
  crdt::ReplicaId origin = req.origin;
  std::string scope = req.scope;
  host->ApplyRemote(req.origin, req.scope, std::move(req.entries),
                    [weak, origin, scope](Status status, uint64_t last_durable) {
                      std::shared_ptr<Mailbox> box = weak.lock();
                      if (!box) return;  // the Transport is gone
                      Command c;
                      c.kind = Command::Kind::kApplyDone;
                      c.origin = origin;
                      c.scope = scope;
                      c.status = std::move(status);
                      c.last_durable = last_durable;
                      box->Post(std::move(c));
                    });
}

void Transport::Impl::Publish() {
  TransportSnapshot snap;
  snap.gate = protocol.Gate();
  Now now;  // Peers() needs only the timers' clock
  now.mono_ms = MonoMs();
  now.wall_ms = wall->NowMs();
  snap.peers = protocol.Peers(now);
  snap.scopes = protocol.Scopes(now);
  snap.unknown_scope = protocol.unknown_scope();
  snap.counters = protocol.counters();
  snap.anti_entropy = protocol.anti_entropy();
  snap.bootstrapped = protocol.bootstrapped();
  snap.ae = protocol.ae_counters();
  snap.log_start = protocol.log_start();
  snap.horizon = protocol.Horizon(now);
  snap.bytes_in = bytes_in;
  snap.bytes_out = bytes_out;
  snap.frames_in = frames_in;
  snap.frames_out = frames_out;
  snap.bad_frames = bad_frames;
  snap.curve = options.curve.enabled();
  snap.zap_refused = zap_refused;
  snap.forged_frames = forged_frames;
  snap.dropped_by_faults = dropped_by_faults;
  snap.policy_hash = protocol.options().policy_hash;
  for (const PeerStatus& p : snap.peers) snap.policy_mismatches += p.policy_mismatch ? 1 : 0;
  std::map<std::string, uint64_t> own_last;
  for (const auto& [key, seq] : protocol.applied()) {
    if (key.first == options.protocol.self) own_last[key.second] = seq;
  }
  std::lock_guard<std::mutex> lock(pub_mu);
  published = std::move(snap);
  published_own_last = std::move(own_last);
}

// --- Transport ---------------------------------------------------------------

Transport::Transport(TransportOptions options, storage::Store* store, Host* host,
                     crdt::PhysicalClock* wall, Applied applied)
    : impl_(std::make_unique<Impl>(std::move(options), store, host, wall, std::move(applied))) {}

Transport::~Transport() { Stop(); }

Status Transport::Start() { return impl_->Start(); }

void Transport::Stop() { impl_->Stop(); }

void Transport::NotifyLocalAppend(const std::string& scope, uint64_t last_seq, uint64_t bytes) {
  Command c;
  c.kind = Command::Kind::kLocalAppend;
  c.scope = scope;
  c.seq = last_seq;
  c.bytes = bytes;
  impl_->mailbox->Post(std::move(c));
}

void Transport::SetFaults(const Faults& faults) {
  {
    std::lock_guard<std::mutex> lock(impl_->faults_mu);
    impl_->faults = faults;
    impl_->faults_version.fetch_add(1);
  }
  impl_->mailbox->Post(Command{});  // apply at once
}

void Transport::SetPolicyHash(std::string hash) {
  {
    std::lock_guard<std::mutex> lock(impl_->policy_mu);
    impl_->policy_hash = std::move(hash);
    impl_->policy_version.fetch_add(1);
  }
  impl_->mailbox->Post(Command{});  // take it at once
}

Faults Transport::faults() const {
  std::lock_guard<std::mutex> lock(impl_->faults_mu);
  return impl_->faults;
}

WriteGate Transport::Gate() const {
  std::lock_guard<std::mutex> lock(impl_->pub_mu);
  return impl_->published.gate;
}

TransportSnapshot Transport::Snapshot() const {
  std::lock_guard<std::mutex> lock(impl_->pub_mu);
  return impl_->published;
}

size_t Transport::RegionsHolding(const std::string& scope, uint64_t seq) const {
  // Protocol::RegionsHolding over the published copy: this region once
  // the seq is logged here; PeerStatus::acked is what a peer holds of this
  // node's log of the scope.
  std::lock_guard<std::mutex> lock(impl_->pub_mu);
  const std::string& self_region = impl_->options.protocol.region;
  std::set<std::string> regions;
  auto own = impl_->published_own_last.find(scope);
  if (seq == 0 || (own != impl_->published_own_last.end() && seq <= own->second)) {
    regions.insert(self_region);
  }
  for (const ScopeStatus& sc : impl_->published.scopes) {
    if (sc.scope != scope) continue;
    for (const PeerStatus& p : sc.peers) {
      if (p.region != self_region && p.acked >= seq) regions.insert(p.region);
    }
  }
  return regions.size();
}

}  // namespace meridian::gossip
