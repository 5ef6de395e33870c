// The ZeroMQ gossip transport (gossip/transport.h) with real sockets on
// 127.0.0.1: two or three Transports in this process, each with its own
// storage::Store in a fresh directory and a small in-test Host that applies
// remote deltas by writing them into that Store on a thread of its own.
// Covers handshake and delivery both ways, shipping split below
// max_frame_bytes, a peer restarted on the same port (every seq applied
// exactly once), drop and delay faults, garbage frames, a taken port,
// RegionsHolding and peer states. Every wait is bounded by a deadline.
#define BOOST_TEST_MODULE transport
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "crdt/hlc.h"
#include "gossip/transport.h"
#include "storage/leveldb_store.h"
#include "storage/node_meta.h"
#include "tests/support/loopback.h"
#include "tests/support/temp_dir.h"

using namespace meridian;
using namespace meridian::gossip;
using meridian::testing::TempDir;
using Clock = std::chrono::steady_clock;

namespace meridian::gossip {
std::ostream& boost_test_print_type(std::ostream& os, PeerState s) {
  return os << PeerStateName(s);
}
}  // namespace meridian::gossip

namespace {

constexpr auto kWait = std::chrono::seconds(8);

// A loopback port nobody listens on right now (the kernel picks it).
int FreePort() {
  uint16_t port = meridian::testing::FreePort();
  BOOST_REQUIRE(port != 0);
  return port;
}

std::string Endpoint(int port) { return "tcp://127.0.0.1:" + std::to_string(port); }

// Polls `pred` every 10 ms until it holds or `limit` passes.
bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds limit = kWait) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

std::string Delta(const std::string& origin, uint64_t seq, size_t pad = 0) {
  return "delta " + origin + "#" + std::to_string(seq) + std::string(pad, 'x');
}

// What every Host incarnation of one node applied, in order; outlives a
// restart so that "exactly once per seq" can be checked across it.
struct ApplyRecord {
  std::mutex mu;
  std::map<std::string, std::vector<uint64_t>> applied;  // origin node -> seqs written
  std::map<std::string, Clock::time_point> applied_at;   // "node#seq" -> when written
  uint64_t duplicates = 0;

  std::vector<uint64_t> Seqs(const std::string& origin) {
    std::lock_guard<std::mutex> lock(mu);
    return applied[origin];
  }
  uint64_t Last(const std::string& origin) {
    std::lock_guard<std::mutex> lock(mu);
    auto& v = applied[origin];
    return v.empty() ? 0 : v.back();
  }
  Clock::time_point At(const std::string& origin, uint64_t seq) {
    std::lock_guard<std::mutex> lock(mu);
    return applied_at.at(origin + "#" + std::to_string(seq));
  }
};

// The node's side, kept small: remote deltas are written into the Store
// (state "r/<origin>/<seq>" = delta, plus the applied vector) by one
// applier thread, in the order handed over, and `done` is called from that
// thread. Entries at or below the applied seq are duplicates and skipped.
class TestHost : public Host {
 public:
  TestHost(std::string node, storage::Store* store, ApplyRecord* record)
      : node_(std::move(node)), store_(store), record_(record), clock_(&wall_, 500) {
    std::string bytes;
    if (store_->GetMeta(storage::kMetaApplied, &bytes).ok()) {
      Status s = storage::DecodeApplied(bytes, &applied_);
      BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
    }
    worker_ = std::thread([this] { Work(); });
  }
  ~TestHost() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }

  void ApplyRemote(const crdt::ReplicaId& origin, const std::string& scope,
                   std::vector<DeltaEntry> entries,
                   std::function<void(Status, uint64_t)> done) override {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(Job{origin, scope, std::move(entries), std::move(done)});
    cv_.notify_all();
  }
  void ObserveHlc(crdt::Hlc hlc) override {
    std::lock_guard<std::mutex> lock(clock_mu_);
    crdt::Hlc out;
    (void)clock_.Update(hlc, &out);
  }
  crdt::Hlc CurrentHlc() override {
    std::lock_guard<std::mutex> lock(clock_mu_);
    return clock_.Now();
  }
  void ReplicationProgress() override { ++progress_calls; }
  void Log(const std::string& line) override {
    if (std::getenv("MERIDIAN_TRANSPORT_TEST_LOG") != nullptr) {
      std::lock_guard<std::mutex> lock(mu_);
      std::cerr << node_ << ": " << line << "\n";
    }
  }

  // The applied vector as stored (for a Transport's constructor).
  Applied applied() {
    std::lock_guard<std::mutex> lock(mu_);
    return applied_;
  }

  std::atomic<uint64_t> progress_calls{0};

 private:
  struct Job {
    crdt::ReplicaId origin;
    std::string scope;
    std::vector<DeltaEntry> entries;
    std::function<void(Status, uint64_t)> done;
  };

  void Work() {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
        if (stop_) return;  // pending jobs are abandoned, as on a crash
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      auto key = std::make_pair(job.origin, job.scope);
      uint64_t last;
      std::vector<uint64_t> written;
      storage::WriteBatch batch;
      {
        std::lock_guard<std::mutex> lock(mu_);
        last = applied_[key];
      }
      uint64_t dups = 0;
      Status status;
      for (const DeltaEntry& e : job.entries) {
        if (e.seq <= last) {
          ++dups;
          continue;
        }
        if (e.seq != last + 1) {
          status = Status::Corruption("gap before seq " + std::to_string(e.seq));
          break;
        }
        batch.PutState("r/" + job.origin.node + "/" + std::to_string(e.seq), e.delta);
        written.push_back(e.seq);
        last = e.seq;
      }
      storage::AppliedVector next;
      {
        std::lock_guard<std::mutex> lock(mu_);
        next = applied_;
      }
      next[key] = last;
      storage::PutApplied(next, &batch);
      Status ws = store_->Write(&batch);
      uint64_t durable = last;
      if (!ws.ok()) {
        status = ws;
        std::lock_guard<std::mutex> lock(mu_);
        durable = applied_[key];
      } else {
        std::lock_guard<std::mutex> lock(mu_);
        applied_ = next;
        std::lock_guard<std::mutex> rlock(record_->mu);
        auto now = Clock::now();
        for (uint64_t seq : written) {
          record_->applied[job.origin.node].push_back(seq);
          record_->applied_at[job.origin.node + "#" + std::to_string(seq)] = now;
        }
        record_->duplicates += dups;
      }
      job.done(status, durable);
    }
  }

  std::string node_;
  storage::Store* store_;
  ApplyRecord* record_;
  crdt::SystemClock wall_;
  std::mutex clock_mu_;
  crdt::HybridClock clock_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::deque<Job> jobs_;
  Applied applied_;
  std::thread worker_;
};

struct NodeSpec {
  std::string id;
  std::string region;
  int port = 0;
};

// One node: a Store, a TestHost and a Transport, restartable on its port.
class TestNode {
 public:
  TestNode(const NodeSpec& self, std::vector<NodeSpec> all, const std::string& dir)
      : self_(self), all_(std::move(all)), dir_(dir) {
    storage::StoreOptions so;
    so.sync = false;  // a process crash loses nothing; fsync would only slow the test
    Status s = storage::Store::Open(dir_, so, &store_);
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  }
  ~TestNode() { Kill(); }

  crdt::ReplicaId replica() const { return crdt::ReplicaId{self_.id, 1}; }

  TransportOptions Options(size_t max_frame_bytes = size_t{4} << 20) const {
    TransportOptions o;
    o.bind = Endpoint(self_.port);
    o.max_frame_bytes = max_frame_bytes;
    o.protocol.cluster = "test";
    o.protocol.self = replica();
    o.protocol.region = self_.region;
    o.protocol.heartbeat_interval_ms = 50;
    o.protocol.resend_timeout_ms = 300;
    for (const NodeSpec& n : all_) {
      if (n.id == self_.id) continue;
      o.peers[n.id] = Endpoint(n.port);
      o.protocol.peers.push_back(PeerConfig{n.id, n.region});
    }
    return o;
  }

  // Creates the Host and the Transport and starts it.
  void Start(size_t max_frame_bytes = size_t{4} << 20) {
    BOOST_REQUIRE(transport_ == nullptr);
    host_ = std::make_unique<TestHost>(self_.id, store_.get(), &record);
    Applied applied = host_->applied();
    uint64_t last = 0;
    Status s = store_->LastLogSeq(kDefaultScope, &last);
    BOOST_REQUIRE(s.ok());
    applied[{replica(), kDefaultScope}] = last;
    transport_ = std::make_unique<Transport>(Options(max_frame_bytes), store_.get(), host_.get(),
                                             &wall_, applied);
    s = transport_->Start();
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  }

  // As a crash would: the Transport goes, then the Host (pending applies
  // are abandoned). The Store stays; what it holds is what survived.
  void Kill() {
    transport_.reset();
    host_.reset();
  }

  // Logs seqs [last+1, last+n] of this node's own log and tells the
  // Transport.
  void Append(uint64_t n, size_t pad = 0) {
    uint64_t last = 0;
    BOOST_REQUIRE(store_->LastLogSeq(kDefaultScope, &last).ok());
    storage::WriteBatch batch;
    uint64_t bytes = 0;
    for (uint64_t seq = last + 1; seq <= last + n; ++seq) {
      storage::LogEntry e;
      e.scope = kDefaultScope;
      e.seq = seq;
      e.key = "k/" + self_.id + "/" + std::to_string(seq);
      e.delta = Delta(self_.id, seq, pad);
      bytes += e.key.size() + e.delta.size();
      batch.AppendLog(e);
    }
    Status s = store_->Write(&batch);
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
    if (transport_) transport_->NotifyLocalAppend(kDefaultScope, last + n, bytes);
  }

  uint64_t LastLogged() {
    uint64_t last = 0;
    BOOST_REQUIRE(store_->LastLogSeq(kDefaultScope, &last).ok());
    return last;
  }

  PeerStatus Peer(const std::string& id) const {
    for (const PeerStatus& p : transport_->Snapshot().peers) {
      if (p.node == id) return p;
    }
    BOOST_FAIL("no peer " + id);
    return {};
  }

  // Every delta of `origin` up to `last` is stored here with its bytes.
  void CheckHolds(const std::string& origin, uint64_t last, size_t pad = 0) {
    for (uint64_t seq = 1; seq <= last; ++seq) {
      std::string v;
      Status s = store_->GetState("r/" + origin + "/" + std::to_string(seq), &v);
      BOOST_REQUIRE_MESSAGE(s.ok(), self_.id + " lacks " + origin + "#" + std::to_string(seq));
      BOOST_REQUIRE_EQUAL(v, Delta(origin, seq, pad));
    }
  }

  Transport& transport() { return *transport_; }
  TestHost& host() { return *host_; }
  const NodeSpec& spec() const { return self_; }

  ApplyRecord record;

 private:
  NodeSpec self_;
  std::vector<NodeSpec> all_;
  std::string dir_;
  crdt::SystemClock wall_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<TestHost> host_;
  std::unique_ptr<Transport> transport_;
};

std::vector<NodeSpec> Specs(size_t n) {
  std::vector<NodeSpec> out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(NodeSpec{std::string(1, static_cast<char>('a' + i)),
                           "region-" + std::to_string(i + 1), FreePort()});
  }
  return out;
}

uint64_t MsBetween(Clock::time_point from, Clock::time_point to) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count());
}

std::vector<uint64_t> Range(uint64_t from, uint64_t to) {
  std::vector<uint64_t> v;
  for (uint64_t s = from; s <= to; ++s) v.push_back(s);
  return v;
}

}  // namespace

BOOST_AUTO_TEST_CASE(handshake_and_delivery_both_ways) {
  TempDir dir;
  auto specs = Specs(2);
  TestNode a(specs[0], specs, dir.sub("a"));
  TestNode b(specs[1], specs, dir.sub("b"));
  a.Append(5);  // logged before the start: shipped after the Welcome
  b.Append(3);
  a.Start();
  b.Start();

  BOOST_REQUIRE(WaitFor([&] { return b.record.Last("a") == 5 && a.record.Last("b") == 3; }));
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").acked == 5 && b.Peer("a").acked == 3; }));
  BOOST_TEST(b.record.Seqs("a") == Range(1, 5));
  BOOST_TEST(a.record.Seqs("b") == Range(1, 3));
  b.CheckHolds("a", 5);
  a.CheckHolds("b", 3);

  TransportSnapshot sa = a.transport().Snapshot();
  BOOST_TEST(sa.peers.size() == 1u);
  BOOST_TEST(sa.peers[0].welcomed);
  BOOST_TEST(sa.peers[0].unacked_deltas == 0u);
  BOOST_TEST(sa.counters.deltas_applied == 3u);
  BOOST_TEST(sa.frames_in > 0u);
  BOOST_TEST(sa.frames_out > 0u);
  BOOST_TEST(sa.bad_frames == 0u);
  BOOST_TEST(b.transport().Snapshot().counters.deltas_applied == 5u);
  BOOST_TEST(a.host().progress_calls.load() > 0u);
}

BOOST_AUTO_TEST_CASE(appends_after_start_arrive_split_below_max_frame_bytes) {
  TempDir dir;
  auto specs = Specs(2);
  TestNode a(specs[0], specs, dir.sub("a"));
  TestNode b(specs[1], specs, dir.sub("b"));
  a.Start(/*max_frame_bytes=*/4096);
  b.Start();
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").welcomed; }));
  const uint64_t frames_before = a.transport().Snapshot().frames_out;

  // 40 deltas of ~1 KB: one ShipRequest, at least ten frames of <= 4 KB.
  a.Append(40, 1000);
  BOOST_REQUIRE(WaitFor([&] { return b.record.Last("a") == 40; }));
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").acked == 40; }));
  BOOST_TEST(b.record.Seqs("a") == Range(1, 40));
  b.CheckHolds("a", 40, 1000);
  BOOST_TEST(a.transport().Snapshot().frames_out - frames_before >= 10u);
  BOOST_TEST(b.transport().Snapshot().bad_frames == 0u);

  // More, in several appends, both ways.
  for (int i = 0; i < 5; ++i) {
    a.Append(3);
    b.Append(2);
  }
  BOOST_REQUIRE(WaitFor([&] { return b.record.Last("a") == 55 && a.record.Last("b") == 10; }));
  BOOST_TEST(b.record.Seqs("a") == Range(1, 55));
  BOOST_TEST(a.record.Seqs("b") == Range(1, 10));
}

// A fake peer "b" made of raw sockets sees the wire: a Hello first, then,
// once it sends a Welcome, Deltas frames that each stay within
// max_frame_bytes and together carry seqs 1..40 in order.
BOOST_AUTO_TEST_CASE(fake_peer_sees_hello_then_deltas_within_max_frame_bytes) {
  TempDir dir;
  auto specs = Specs(2);
  TestNode a(specs[0], specs, dir.sub("a"));
  a.Append(40, 1000);
  constexpr size_t kLimit = 4096;

  zmq::context_t ctx;
  zmq::socket_t in(ctx, zmq::socket_type::router);
  in.set(zmq::sockopt::linger, 0);
  in.bind(Endpoint(specs[1].port));
  zmq::socket_t out(ctx, zmq::socket_type::dealer);
  out.set(zmq::sockopt::linger, 0);
  out.connect(Endpoint(specs[0].port));
  a.Start(kLimit);

  // Receives one message from a (bounded wait); false on timeout.
  auto receive = [&](Message* msg, size_t* frame_bytes) {
    zmq::pollitem_t item{in.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(3000)) <= 0) return false;
    zmq::message_t id, payload;
    BOOST_REQUIRE(in.recv(id));
    BOOST_REQUIRE(id.more());
    BOOST_REQUIRE(in.recv(payload));
    BOOST_REQUIRE(!payload.more());
    *frame_bytes = payload.size();
    Status s = Decode(std::string_view(static_cast<const char*>(payload.data()), payload.size()),
                      msg);
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
    return true;
  };
  auto header = [&] {
    Header h;
    h.cluster = "test";
    h.from = crdt::ReplicaId{"b", 1};
    h.wall_ms = crdt::SystemClock().NowMs();
    h.hlc = crdt::MakeHlc(h.wall_ms, 0);
    return h;
  };

  Message msg;
  size_t bytes = 0;
  bool hello = false;
  for (int i = 0; i < 20 && !hello; ++i) {
    BOOST_REQUIRE(receive(&msg, &bytes));
    BOOST_TEST(msg.header.from.node == "a");
    hello = msg.type == MsgType::kHello;
  }
  BOOST_REQUIRE(hello);
  BOOST_TEST(msg.region == "region-1");

  Message welcome;
  welcome.header = header();
  welcome.type = MsgType::kWelcome;
  welcome.applied = 0;
  BOOST_REQUIRE(out.send(zmq::buffer(Encode(welcome)), zmq::send_flags::none));

  std::vector<uint64_t> seqs;
  size_t deltas_frames = 0;
  for (int i = 0; i < 500 && seqs.size() < 40; ++i) {
    BOOST_REQUIRE(receive(&msg, &bytes));
    if (msg.type != MsgType::kDeltas) continue;
    ++deltas_frames;
    BOOST_TEST(bytes <= kLimit);
    BOOST_TEST(msg.scope == kDefaultScope);
    for (const DeltaEntry& e : msg.deltas) {
      seqs.push_back(e.seq);
      BOOST_TEST(e.delta == Delta("a", e.seq, 1000));
    }
  }
  BOOST_TEST(seqs == Range(1, 40));
  BOOST_TEST(deltas_frames >= 10u);

  // An Ack of everything: a records that b holds it.
  Message ack;
  ack.header = header();
  ack.type = MsgType::kAck;
  ack.scope = kDefaultScope;
  ack.seq = 40;
  BOOST_REQUIRE(out.send(zmq::buffer(Encode(ack)), zmq::send_flags::none));
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").acked == 40; }));
  BOOST_TEST(a.transport().RegionsHolding(kDefaultScope, 40) == 2u);
  a.Kill();
}

BOOST_AUTO_TEST_CASE(peer_restarted_on_same_port_resumes_exactly_once) {
  TempDir dir;
  auto specs = Specs(2);
  TestNode a(specs[0], specs, dir.sub("a"));
  TestNode b(specs[1], specs, dir.sub("b"));
  a.Start();
  b.Start();
  a.Append(10);
  BOOST_REQUIRE(WaitFor([&] { return b.record.Last("a") == 10; }));
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").acked == 10; }));

  b.Kill();
  a.Append(10);  // 11..20 while b is away
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").state == PeerState::kDown; }));
  a.Append(10);  // 21..30
  b.Start();     // same port, same store: applied vector says 10

  BOOST_REQUIRE(WaitFor([&] { return b.record.Last("a") == 30; }));
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").acked == 30; }));
  // Every seq written exactly once across both Host incarnations.
  BOOST_TEST(b.record.Seqs("a") == Range(1, 30));
  b.CheckHolds("a", 30);
  BOOST_TEST(a.Peer("b").state == PeerState::kUp);

  // And it keeps going.
  a.Append(5);
  BOOST_REQUIRE(WaitFor([&] { return b.record.Last("a") == 35; }));
  BOOST_TEST(b.record.Seqs("a") == Range(1, 35));
}

BOOST_AUTO_TEST_CASE(drop_fault_cuts_both_ways_and_healing_restores) {
  TempDir dir;
  auto specs = Specs(2);
  TestNode a(specs[0], specs, dir.sub("a"));
  TestNode b(specs[1], specs, dir.sub("b"));
  a.Start();
  b.Start();
  a.Append(1);
  b.Append(1);
  BOOST_REQUIRE(WaitFor([&] { return b.record.Last("a") == 1 && a.record.Last("b") == 1; }));

  Faults cut;
  cut.drop.insert("b");
  a.transport().SetFaults(cut);  // only a knows: both directions must stop
  BOOST_TEST(a.transport().faults().drop.count("b") == 1u);
  a.Append(4);
  b.Append(4);
  // Longer than several resend timeouts and enough for both to see the
  // other down.
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  BOOST_TEST(b.record.Last("a") == 1u);
  BOOST_TEST(a.record.Last("b") == 1u);
  BOOST_TEST(a.transport().Snapshot().dropped_by_faults > 0u);
  BOOST_TEST(a.Peer("b").state == PeerState::kDown);
  BOOST_TEST(b.Peer("a").state == PeerState::kDown);

  a.transport().SetFaults(Faults{});
  BOOST_TEST(a.transport().faults().drop.empty());
  BOOST_REQUIRE(WaitFor([&] { return b.record.Last("a") == 5 && a.record.Last("b") == 5; }));
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").acked == 5 && b.Peer("a").acked == 5; }));
  BOOST_TEST(b.record.Seqs("a") == Range(1, 5));
  BOOST_TEST(a.record.Seqs("b") == Range(1, 5));
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").state == PeerState::kUp; }));
}

BOOST_AUTO_TEST_CASE(delay_fault_delays_delivery_both_ways) {
  TempDir dir;
  auto specs = Specs(2);
  TestNode a(specs[0], specs, dir.sub("a"));
  TestNode b(specs[1], specs, dir.sub("b"));
  a.Start();
  b.Start();
  a.Append(1);
  b.Append(1);
  BOOST_REQUIRE(WaitFor([&] { return b.record.Last("a") == 1 && a.record.Last("b") == 1; }));
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").acked == 1 && b.Peer("a").acked == 1; }));

  constexpr uint64_t kDelayMs = 400;  // below down_after_missed (500 ms)
  Faults slow;
  slow.delay_ms["b"] = kDelayMs;
  a.transport().SetFaults(slow);
  // Let messages already on their way land first.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));

  const auto t0 = Clock::now();
  a.Append(1);  // a -> b: held in a's outgoing queue
  b.Append(1);  // b -> a: held in a's incoming queue
  BOOST_REQUIRE(WaitFor([&] { return b.record.Last("a") == 2 && a.record.Last("b") == 2; }));
  const uint64_t ab = MsBetween(t0, b.record.At("a", 2));
  const uint64_t ba = MsBetween(t0, a.record.At("b", 2));
  BOOST_TEST(ab >= kDelayMs);
  BOOST_TEST(ba >= kDelayMs);
  BOOST_TEST(ab < kDelayMs + 3000);

  // Healed: quick again.
  a.transport().SetFaults(Faults{});
  std::this_thread::sleep_for(std::chrono::milliseconds(kDelayMs + 100));
  const auto t1 = Clock::now();
  a.Append(1);
  BOOST_REQUIRE(WaitFor([&] { return b.record.Last("a") == 3; }));
  BOOST_TEST(MsBetween(t1, b.record.At("a", 3)) < kDelayMs);
  BOOST_TEST(b.record.Seqs("a") == Range(1, 3));
}

BOOST_AUTO_TEST_CASE(garbage_frames_are_counted_and_dropped) {
  TempDir dir;
  auto specs = Specs(2);
  TestNode a(specs[0], specs, dir.sub("a"));
  TestNode b(specs[1], specs, dir.sub("b"));
  a.Start();
  b.Start();
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").welcomed && b.Peer("a").welcomed; }));

  {
    zmq::context_t ctx;
    zmq::socket_t raw(ctx, zmq::socket_type::dealer);
    raw.set(zmq::sockopt::linger, 1000);
    raw.connect(Endpoint(specs[0].port));
    BOOST_REQUIRE(raw.send(zmq::str_buffer("definitely not a gossip frame"),
                           zmq::send_flags::none));
    // A frame that starts like one: the wire version, then junk.
    std::string almost("\x01\x93\xff", 3);
    BOOST_REQUIRE(raw.send(zmq::buffer(almost), zmq::send_flags::none));
    // Two parts: not one message.
    BOOST_REQUIRE(raw.send(zmq::str_buffer("x"), zmq::send_flags::sndmore));
    BOOST_REQUIRE(raw.send(zmq::str_buffer("y"), zmq::send_flags::none));
    BOOST_REQUIRE(WaitFor([&] { return a.transport().Snapshot().bad_frames == 3; }));
    raw.close();
  }
  BOOST_TEST(b.transport().Snapshot().bad_frames == 0u);

  a.Append(3);
  b.Append(2);
  BOOST_REQUIRE(WaitFor([&] { return b.record.Last("a") == 3 && a.record.Last("b") == 2; }));
  BOOST_TEST(a.transport().Snapshot().bad_frames == 3u);
}

BOOST_AUTO_TEST_CASE(start_on_taken_or_bad_endpoint_fails_naming_it) {
  TempDir dir;
  auto specs = Specs(2);
  TestNode a(specs[0], specs, dir.sub("a"));
  a.Start();

  // A second node claiming a's port.
  storage::StoreOptions so;
  so.sync = false;
  std::unique_ptr<storage::Store> store;
  BOOST_REQUIRE(storage::Store::Open(dir.sub("x"), so, &store).ok());
  ApplyRecord record;
  TestHost host("x", store.get(), &record);
  crdt::SystemClock wall;
  TransportOptions o = a.Options();
  {
    Transport t(o, store.get(), &host, &wall, Applied{});
    Status s = t.Start();
    BOOST_REQUIRE(!s.ok());
    BOOST_TEST(s.message().find(o.bind) != std::string::npos, s.ToString());
    t.Stop();
    t.Stop();  // idempotent
  }
  {
    o.bind = "tcp://127.0.0.1:not-a-port";
    Transport t(o, store.get(), &host, &wall, Applied{});
    Status s = t.Start();
    BOOST_REQUIRE(!s.ok());
    BOOST_TEST(s.message().find(o.bind) != std::string::npos, s.ToString());
  }
  {
    o.bind = Endpoint(FreePort());
    o.peers.begin()->second = "nonsense://peer";
    Transport t(o, store.get(), &host, &wall, Applied{});
    Status s = t.Start();
    BOOST_REQUIRE(!s.ok());
    BOOST_TEST(s.message().find("nonsense://peer") != std::string::npos, s.ToString());
  }
  // a was not disturbed, and Start twice is refused.
  BOOST_TEST(!a.transport().Start().ok());
  BOOST_TEST(a.transport().Snapshot().bad_frames == 0u);
}

BOOST_AUTO_TEST_CASE(regions_holding_advances_with_acks) {
  TempDir dir;
  auto specs = Specs(3);
  TestNode a(specs[0], specs, dir.sub("a"));
  TestNode b(specs[1], specs, dir.sub("b"));
  TestNode c(specs[2], specs, dir.sub("c"));
  a.Start();
  BOOST_TEST(a.transport().RegionsHolding(kDefaultScope, 3) == 0u);  // not logged yet
  a.Append(3);
  BOOST_REQUIRE(WaitFor([&] { return a.transport().RegionsHolding(kDefaultScope, 3) == 1; }));
  BOOST_TEST(a.transport().RegionsHolding(kDefaultScope, 4) == 0u);

  const uint64_t progress_before = a.host().progress_calls.load();
  b.Start();
  BOOST_REQUIRE(WaitFor([&] { return a.transport().RegionsHolding(kDefaultScope, 3) == 2; }));
  BOOST_TEST(a.Peer("b").acked == 3u);
  BOOST_TEST(a.host().progress_calls.load() > progress_before);
  c.Start();
  BOOST_REQUIRE(WaitFor([&] { return a.transport().RegionsHolding(kDefaultScope, 3) == 3; }));
  BOOST_TEST(a.transport().RegionsHolding(kDefaultScope, 1) == 3u);

  // A new seq is held by this region only until the peers ack it.
  a.Append(1);
  BOOST_REQUIRE(WaitFor([&] { return a.transport().RegionsHolding(kDefaultScope, 4) == 3; }));
  BOOST_TEST(c.record.Seqs("a") == Range(1, 4));
  BOOST_TEST(b.record.Seqs("a") == Range(1, 4));
}

BOOST_AUTO_TEST_CASE(peer_states_and_gate_follow_heartbeats) {
  TempDir dir;
  auto specs = Specs(2);
  TestNode a(specs[0], specs, dir.sub("a"));
  TestNode b(specs[1], specs, dir.sub("b"));
  a.Start();
  // Alone: b not heard yet, and no clock sample: writes held.
  BOOST_TEST(a.Peer("b").state == PeerState::kUnknown);
  BOOST_TEST(a.Peer("b").last_heard_ms_ago == -1);
  BOOST_TEST(!a.transport().Gate().ok);
  BOOST_TEST(a.transport().Gate().code == "clock_skew");

  b.Start();
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").state == PeerState::kUp; }));
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").has_clock_sample; }));
  BOOST_REQUIRE(WaitFor([&] { return a.transport().Gate().ok; }));
  BOOST_TEST(std::abs(a.Peer("b").clock_offset_ms) < 100);  // same machine, same clock
  BOOST_TEST(a.Peer("b").last_heard_ms_ago >= 0);
  BOOST_REQUIRE(WaitFor([&] { return b.Peer("a").state == PeerState::kUp; }));
  // Heartbeats keep it up.
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  BOOST_TEST(a.Peer("b").state == PeerState::kUp);

  b.Kill();
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").state != PeerState::kUp; }));
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").state == PeerState::kDown; }));
  // All peers down: not held.
  BOOST_TEST(a.transport().Gate().ok);
}

BOOST_AUTO_TEST_CASE(stop_is_idempotent_and_late_apply_callbacks_are_harmless) {
  TempDir dir;
  auto specs = Specs(2);
  TestNode a(specs[0], specs, dir.sub("a"));
  TestNode b(specs[1], specs, dir.sub("b"));
  a.Start();
  b.Start();
  a.Append(50, 100);
  // Stop b while applies may be in flight; its Host outlives the Transport
  // for a moment and may still call `done`.
  b.transport().Stop();
  b.transport().Stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  b.Kill();
  b.Start();
  BOOST_REQUIRE(WaitFor([&] { return b.record.Last("a") == 50; }));
  BOOST_TEST(b.record.Seqs("a") == Range(1, 50));
}
