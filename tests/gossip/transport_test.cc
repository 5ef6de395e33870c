// The ZeroMQ gossip transport (gossip/transport.h) with real sockets on
// 127.0.0.1: two or three Transports in this process, each with its own
// storage::Store in a fresh directory and a small in-test Host.
//
// The test node's data. Every key holds an immutable value, so the join of
// two states of a key is "keep the one there is" (a differing value would
// be a bug, counted as a conflict). A node's own Append logs seq s with key
// "k/<node>/<s>" and, in the same batch, writes that key's state (the delta
// bytes) and its digest record; a remote delta writes the state of the
// entry's key the same way, and a repair joins the states it carries. The
// Host keeps a mirror of the digest bucket sums, the applied vector (its
// own entry: the last logged seq) and a store snapshot, replaced together
// after each write, so its View's sums, applied vector and snapshot are of
// one commit, as the node's are. Writes are serialised: the worker thread
// runs remote applies and repairs in the order handed over, and the test
// thread's appends take the same write lock.
//
// Anti-entropy (TransportOptions::anti_entropy) is on in every test here
// unless the test says otherwise, with rounds every 150 ms.
// Where a node logged entries before its peer's session was up, a round
// may bring some states before their deltas (a round needs only one
// direction's session, shipping needs the other); such tests check that
// every seq's state arrived (by a delta, a repair, or both: joins) and that
// no delta was applied twice, and the two that are about delta shipping
// itself also run without anti-entropy and check exact delta delivery.
//
// Covers handshake and delivery both ways, shipping split below
// max_frame_bytes, a peer restarted on the same port (every seq applied
// exactly once), drop and delay faults, garbage frames, a taken port,
// RegionsHolding and peer states, the policy-set hash (options and
// SetPolicyHash); and anti-entropy itself: a partial
// partition repaired through the third node (the cut-off node holds the
// states and covers the applied vector with no delta shipped, and after
// healing the origin finds its log acknowledged without reshipping), a
// round whose states need many kStates parts under a small max_frame_bytes
// (between real nodes: convergence, one repair per round and exact state
// counts; against a fake peer of raw sockets: every frame within the limit,
// parts numbered 0..last, the last carrying the View's applied vector), and
// the snapshot's anti-entropy fields (on and off); and CurveZMQ (transport.h
// "Security"): keyed nodes replicate, an unlisted key (a real node's or a
// raw socket's) and a plaintext socket neither connect nor inject, and a
// listed key cannot speak for another node. Every wait is bounded by a
// deadline.
#define BOOST_TEST_MODULE transport
#include <algorithm>
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
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "crdt/hlc.h"
#include "gossip/curve_keys.h"
#include "gossip/transport.h"
#include "storage/digests.h"
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
constexpr size_t kDefaultFrameBytes = size_t{4} << 20;

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

std::string KeyOf(const std::string& origin, uint64_t seq) {
  return "k/" + origin + "/" + std::to_string(seq);
}

// The origin and seq of a key "k/<origin>/<seq>"; false for anything else.
bool ParseKey(const std::string& key, std::string* origin, uint64_t* seq) {
  if (key.rfind("k/", 0) != 0) return false;
  const size_t slash = key.rfind('/');
  if (slash <= 2 || slash + 1 >= key.size()) return false;
  char* end = nullptr;
  const char* digits = key.c_str() + slash + 1;
  const unsigned long long v = std::strtoull(digits, &end, 10);
  if (end == digits || *end != '\0') return false;
  *origin = key.substr(2, slash - 2);
  *seq = v;
  return true;
}

std::vector<uint64_t> Range(uint64_t from, uint64_t to) {
  std::vector<uint64_t> v;
  for (uint64_t s = from; s <= to; ++s) v.push_back(s);
  return v;
}

bool StrictlyIncreasing(const std::vector<uint64_t>& v) {
  for (size_t i = 1; i < v.size(); ++i) {
    if (v[i] <= v[i - 1]) return false;
  }
  return true;
}

// What every Host incarnation of one node wrote, in order; outlives a
// restart so that "exactly once per seq" can be checked across it.
struct ApplyRecord {
  std::mutex mu;
  std::map<std::string, std::vector<uint64_t>> applied;   // origin node -> seqs applied from deltas
  std::map<std::string, Clock::time_point> applied_at;    // "node#seq" -> when applied
  std::map<std::string, std::vector<uint64_t>> repaired;  // origin node -> seqs whose state a
                                                          // repair wrote (absent before)
  uint64_t duplicates = 0;     // delta entries at or below the applied seq
  uint64_t repairs = 0;        // successful Repair calls that carried states
  uint64_t repair_states = 0;  // states those carried (written or already held)
  size_t max_repair_bytes = 0; // the most key + state bytes one Repair carried
  uint64_t advances = 0;       // successful Repair calls with an advance
  uint64_t conflicts = 0;      // a key offered with a value differing from the one held
  std::vector<std::string> logs;  // every line the Hosts logged

  // Whether a logged line contains `text`.
  bool Logged(const std::string& text) {
    std::lock_guard<std::mutex> lock(mu);
    return std::any_of(logs.begin(), logs.end(),
                       [&](const std::string& l) { return l.find(text) != std::string::npos; });
  }

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
  // In the order written.
  std::vector<uint64_t> Repaired(const std::string& origin) {
    std::lock_guard<std::mutex> lock(mu);
    return repaired[origin];
  }
  // Seqs of `origin` whose state arrived by a delta or by a repair, sorted,
  // each once.
  std::vector<uint64_t> Covered(const std::string& origin) {
    std::lock_guard<std::mutex> lock(mu);
    std::set<uint64_t> all(applied[origin].begin(), applied[origin].end());
    all.insert(repaired[origin].begin(), repaired[origin].end());
    return std::vector<uint64_t>(all.begin(), all.end());
  }
  uint64_t Get(uint64_t ApplyRecord::*field) {
    std::lock_guard<std::mutex> lock(mu);
    return this->*field;
  }
  size_t MaxRepairBytes() {
    std::lock_guard<std::mutex> lock(mu);
    return max_repair_bytes;
  }
};

// A state written by a batch, for the bucket sums mirror.
struct DigestChange {
  uint32_t bucket = 0;
  storage::Digest digest;  // of a key that had no state before
};

// Adds seqs [last+1, last+n] of `node`'s own log to `batch`, each with its
// state and digest record; returns the bytes logged (key + delta).
uint64_t AddOwnEntries(const std::string& node, uint64_t last, uint64_t n, size_t pad,
                       storage::WriteBatch* batch, std::vector<DigestChange>* changes) {
  uint64_t bytes = 0;
  for (uint64_t seq = last + 1; seq <= last + n; ++seq) {
    storage::LogEntry e;
    e.scope = kDefaultScope;
    e.seq = seq;
    e.key = KeyOf(node, seq);
    e.delta = Delta(node, seq, pad);
    bytes += e.key.size() + e.delta.size();
    batch->AppendLog(e);
    batch->PutState(e.key, e.delta);
    const uint32_t bucket = storage::BucketOf(e.key);
    const storage::Digest digest = storage::KeyDigest(e.key, e.delta);
    batch->PutDigest(kDefaultScope, bucket, e.key, digest);
    if (changes != nullptr) changes->push_back(DigestChange{bucket, digest});
  }
  return bytes;
}

// The node's side, kept small (see the top of the file). Remote deltas
// and repairs are written by one worker thread, in the order handed over,
// and `done` is called from that thread. Delta entries at or below the
// applied seq are duplicates and skipped.
class TestHost : public Host {
 public:
  TestHost(crdt::ReplicaId self, storage::Store* store, ApplyRecord* record)
      : self_(std::move(self)), store_(store), record_(record), clock_(&wall_, 500) {
    std::string bytes;
    if (store_->GetMeta(storage::kMetaApplied, &bytes).ok()) {
      Status s = storage::DecodeApplied(bytes, &applied_);
      BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
    }
    Status s = store_->LastLogSeq(kDefaultScope, &own_last_);
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
    s = storage::LoadBucketSums(*store_, kDefaultScope, &sums_);
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
    s = store_->TakeSnapshot(&snapshot_);
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
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
    Job job;
    job.origin = origin;
    job.scope = scope;
    job.entries = std::move(entries);
    job.done = std::move(done);
    Enqueue(std::move(job));
  }
  void Repair(const AeRepair& repair,
              std::function<void(Status, Applied applied_after)> done) override {
    Job job;
    job.is_repair = true;
    job.repair = repair;
    job.repair_done = std::move(done);
    Enqueue(std::move(job));
  }
  void ReadView(const std::string& scope, View* out) override {
    std::lock_guard<std::mutex> lock(mu_);
    out->sums = scope == kDefaultScope ? sums_ : storage::BucketSums();
    out->applied = FullLocked();
    out->snapshot = snapshot_;
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
    {
      std::lock_guard<std::mutex> lock(record_->mu);
      record_->logs.push_back(line);
    }
    if (std::getenv("MERIDIAN_TRANSPORT_TEST_LOG") != nullptr) {
      static std::mutex log_mu;
      std::lock_guard<std::mutex> lock(log_mu);
      std::cerr << self_.node << ": " << line << "\n";
    }
  }

  // The node's own writes (the test thread's Append): logs seqs
  // [last+1, last+n] with their states and digests in one batch, in turn
  // with the worker's writes. *last_seq: the new log end.
  Status AppendOwn(uint64_t n, size_t pad, uint64_t* last_seq, uint64_t* bytes) {
    std::lock_guard<std::mutex> wlock(write_mu_);
    uint64_t last = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      last = own_last_;
    }
    storage::WriteBatch batch;
    std::vector<DigestChange> changes;
    *bytes = AddOwnEntries(self_.node, last, n, pad, &batch, &changes);
    Status s = store_->Write(&batch);
    if (!s.ok()) return s;
    storage::SnapshotRef snap = Snap();
    std::lock_guard<std::mutex> lock(mu_);
    own_last_ = last + n;
    for (const DigestChange& c : changes) sums_.Replace(c.bucket, storage::Digest(), c.digest);
    snapshot_ = std::move(snap);
    *last_seq = own_last_;
    return Status::OK();
  }

  // The applied vector with the node's own entry (its last logged seq):
  // what a Transport starts with and what a View carries.
  Applied applied() {
    std::lock_guard<std::mutex> lock(mu_);
    return FullLocked();
  }
  storage::BucketSums sums() {
    std::lock_guard<std::mutex> lock(mu_);
    return sums_;
  }

  std::atomic<uint64_t> progress_calls{0};

 private:
  struct Job {
    bool is_repair = false;
    // A remote apply.
    crdt::ReplicaId origin;
    std::string scope;
    std::vector<DeltaEntry> entries;
    std::function<void(Status, uint64_t)> done;
    // A repair.
    AeRepair repair;
    std::function<void(Status, Applied)> repair_done;
  };

  // What one batch writes, before it is written.
  struct Pending {
    storage::WriteBatch batch;
    std::map<std::string, std::string> states;  // keys this batch writes
    std::vector<DigestChange> changes;
  };

  void Enqueue(Job job) {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
    cv_.notify_all();
  }

  // REQUIRES: mu_ held.
  Applied FullLocked() const {
    Applied out = applied_;
    out[{self_, kDefaultScope}] = own_last_;
    return out;
  }

  // The join: writes `value` under `key` (with its digest) unless the key
  // holds a state already, which must then be `value`. *wrote: it did.
  Status Join(const std::string& key, const std::string& value, Pending* p, bool* wrote) {
    *wrote = false;
    std::string held;
    auto it = p->states.find(key);
    if (it != p->states.end()) {
      held = it->second;
    } else {
      Status s = store_->GetState(key, &held);
      if (s.IsNotFound()) {
        p->batch.PutState(key, value);
        const uint32_t bucket = storage::BucketOf(key);
        const storage::Digest digest = storage::KeyDigest(key, value);
        p->batch.PutDigest(kDefaultScope, bucket, key, digest);
        p->changes.push_back(DigestChange{bucket, digest});
        p->states[key] = value;
        *wrote = true;
        return Status::OK();
      }
      if (!s.ok()) return s;
    }
    if (held != value) {
      std::lock_guard<std::mutex> rlock(record_->mu);
      ++record_->conflicts;
      return Status::Corruption("key " + key + " offered with a value differing from the one held");
    }
    return Status::OK();
  }

  // REQUIRES: write_mu_ held (no write since the one to snapshot). The
  // store as of the last write; null if it cannot be had (Views then
  // fail to serve states, and rounds are abandoned).
  storage::SnapshotRef Snap() {
    storage::SnapshotRef snap;
    Status s = store_->TakeSnapshot(&snap);
    if (!s.ok()) {
      Log("test host: cannot take a store snapshot: " + s.ToString());
      snap.reset();
    }
    return snap;
  }

  // REQUIRES: write_mu_ held; the batch was written. Publishes it with a
  // snapshot of the store as it left it, so a View's sums, applied vector
  // and snapshot are of one commit.
  void Publish(const Applied& next, const Pending& p) {
    storage::SnapshotRef snap = Snap();
    std::lock_guard<std::mutex> lock(mu_);
    applied_ = next;
    for (const DigestChange& c : p.changes) sums_.Replace(c.bucket, storage::Digest(), c.digest);
    snapshot_ = std::move(snap);
  }

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
      if (job.is_repair) {
        RunRepair(&job);
      } else {
        RunDeltas(&job);
      }
    }
  }

  void RunDeltas(Job* job) {
    const auto key = std::make_pair(job->origin, job->scope);
    Status status;
    uint64_t durable = 0;
    {
      std::lock_guard<std::mutex> wlock(write_mu_);
      Applied next;
      {
        std::lock_guard<std::mutex> lock(mu_);
        next = applied_;
      }
      const uint64_t before = next[key];
      uint64_t last = before;
      std::vector<uint64_t> written;
      uint64_t dups = 0;
      Pending p;
      for (const DeltaEntry& e : job->entries) {
        if (e.seq <= last) {
          ++dups;
          continue;
        }
        if (e.seq != last + 1) {
          status = Status::Corruption("gap before seq " + std::to_string(e.seq));
          break;
        }
        bool wrote = false;
        Status js = Join(e.key, e.delta, &p, &wrote);
        if (!js.ok()) {
          status = js;
          break;
        }
        written.push_back(e.seq);
        last = e.seq;
      }
      next[key] = last;
      storage::PutApplied(next, &p.batch);
      Status ws = store_->Write(&p.batch);
      if (!ws.ok()) {
        status = ws;
        durable = before;
      } else {
        durable = last;
        Publish(next, p);
        std::lock_guard<std::mutex> rlock(record_->mu);
        const auto now = Clock::now();
        for (uint64_t seq : written) {
          record_->applied[job->origin.node].push_back(seq);
          record_->applied_at[job->origin.node + "#" + std::to_string(seq)] = now;
        }
        record_->duplicates += dups;
      }
    }
    job->done(status, durable);
  }

  // Joins the states, raises the applied vector to cover the advance
  // (never this node's own entry), all in one batch; nothing of it on an
  // error.
  void RunRepair(Job* job) {
    const AeRepair& r = job->repair;
    Status status;
    Applied after;
    {
      std::lock_guard<std::mutex> wlock(write_mu_);
      Applied next;
      {
        std::lock_guard<std::mutex> lock(mu_);
        next = applied_;
      }
      Pending p;
      std::vector<std::pair<std::string, uint64_t>> repaired;
      size_t bytes = 0;
      for (const AeState& st : r.states) {
        bytes += st.key.size() + st.envelope.size();
        bool wrote = false;
        status = Join(st.key, st.envelope, &p, &wrote);
        if (!status.ok()) break;
        std::string origin;
        uint64_t seq = 0;
        if (wrote && ParseKey(st.key, &origin, &seq)) repaired.emplace_back(origin, seq);
      }
      if (status.ok() && r.has_advance) {
        for (const auto& [id, seq] : r.advance) {
          if (id.first == self_) continue;
          uint64_t& a = next[id];
          a = std::max(a, seq);
        }
      }
      if (status.ok()) {
        storage::PutApplied(next, &p.batch);
        status = store_->Write(&p.batch);
      }
      if (status.ok()) {
        Publish(next, p);
        {
          std::lock_guard<std::mutex> lock(mu_);
          after = FullLocked();
        }
        std::lock_guard<std::mutex> rlock(record_->mu);
        for (const auto& [origin, seq] : repaired) record_->repaired[origin].push_back(seq);
        if (!r.states.empty()) {
          ++record_->repairs;
          record_->repair_states += r.states.size();
          record_->max_repair_bytes = std::max(record_->max_repair_bytes, bytes);
        }
        if (r.has_advance) ++record_->advances;
      }
    }
    job->repair_done(status, status.ok() ? after : Applied());
  }

  crdt::ReplicaId self_;
  storage::Store* store_;
  ApplyRecord* record_;
  crdt::SystemClock wall_;
  std::mutex clock_mu_;
  crdt::HybridClock clock_;

  // Serialises the writers (the worker and AppendOwn); taken before mu_.
  std::mutex write_mu_;
  // Guards what follows; the published state changes only under it, so a
  // View reads sums and applied vector as of the same write.
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::deque<Job> jobs_;
  Applied applied_;    // remote origins, as stored
  uint64_t own_last_ = 0;
  storage::BucketSums sums_;
  storage::SnapshotRef snapshot_;  // the store as of the last write published
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

  // Anti-entropy on unless asked otherwise.
  TransportOptions Options(size_t max_frame_bytes = kDefaultFrameBytes,
                           bool anti_entropy = true) const {
    TransportOptions o;
    o.bind = Endpoint(self_.port);
    o.max_frame_bytes = max_frame_bytes;
    o.anti_entropy = anti_entropy;
    o.protocol.cluster = "test";
    o.protocol.self = replica();
    o.protocol.region = self_.region;
    o.protocol.heartbeat_interval_ms = 50;
    o.protocol.resend_timeout_ms = 300;
    o.protocol.anti_entropy.interval_ms = 150;
    o.protocol.anti_entropy.round_timeout_ms = 2000;
    o.protocol.ae_max_ship_lag_ms = 200;
    for (const NodeSpec& n : all_) {
      if (n.id == self_.id) continue;
      o.peers[n.id] = Endpoint(n.port);
      o.protocol.peers.push_back(PeerConfig{n.id, n.region});
    }
    return o;
  }

  // Creates the Host and the Transport and starts it.
  void Start(size_t max_frame_bytes = kDefaultFrameBytes) { StartWith(Options(max_frame_bytes)); }
  // The same with the caller's options and with `faults` in place before
  // the first message goes out.
  void StartWith(TransportOptions options, const Faults& faults = Faults()) {
    BOOST_REQUIRE(transport_ == nullptr);
    host_ = std::make_unique<TestHost>(replica(), store_.get(), &record);
    transport_ = std::make_unique<Transport>(std::move(options), store_.get(), host_.get(),
                                             &wall_, host_->applied());
    transport_->SetFaults(faults);
    Status s = transport_->Start();
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  }

  // As a crash would: the Transport goes, then the Host (pending applies
  // are abandoned). The Store stays; what it holds is what survived.
  void Kill() {
    transport_.reset();
    host_.reset();
  }

  // Logs seqs [last+1, last+n] of this node's own log, each with its state,
  // and tells the Transport.
  void Append(uint64_t n, size_t pad = 0) {
    uint64_t last = 0, bytes = 0;
    if (host_ != nullptr) {
      Status s = host_->AppendOwn(n, pad, &last, &bytes);
      BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
    } else {
      // Not running: nothing else writes, and the next Host loads the sums.
      BOOST_REQUIRE(store_->LastLogSeq(kDefaultScope, &last).ok());
      storage::WriteBatch batch;
      bytes = AddOwnEntries(self_.id, last, n, pad, &batch, nullptr);
      Status s = store_->Write(&batch);
      BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
      last += n;
    }
    if (transport_) transport_->NotifyLocalAppend(kDefaultScope, last, bytes);
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

  // What this node's applied vector holds of `origin`'s log.
  uint64_t AppliedOf(const crdt::ReplicaId& origin) {
    Applied a = host_->applied();
    auto it = a.find({origin, kDefaultScope});
    return it == a.end() ? 0 : it->second;
  }

  // Whether every state of `origin` up to `last` is stored here.
  bool Holds(const std::string& origin, uint64_t last) {
    for (uint64_t seq = 1; seq <= last; ++seq) {
      std::string v;
      if (!store_->GetState(KeyOf(origin, seq), &v).ok()) return false;
    }
    return true;
  }

  // Every state of `origin` up to `last` is stored here with its bytes.
  void CheckHolds(const std::string& origin, uint64_t last, size_t pad = 0) {
    for (uint64_t seq = 1; seq <= last; ++seq) {
      std::string v;
      Status s = store_->GetState(KeyOf(origin, seq), &v);
      BOOST_REQUIRE_MESSAGE(s.ok(), self_.id + " lacks " + origin + "#" + std::to_string(seq));
      BOOST_REQUIRE_EQUAL(v, Delta(origin, seq, pad));
    }
  }

  // The digest records on disk sum to the Host's mirror, and that mirror
  // is what the store's states digest to.
  void CheckDigestIndex() {
    storage::BucketSums on_disk;
    Status s = storage::LoadBucketSums(*store_, kDefaultScope, &on_disk);
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
    BOOST_TEST((on_disk == host_->sums()), self_.id + ": digest records differ from the mirror");
    std::vector<storage::Store::KeyState> states;
    s = store_->Scan("", "", 1000000, &states);
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
    storage::BucketSums computed;
    for (const auto& st : states) {
      computed.Replace(storage::BucketOf(st.key), storage::Digest(),
                       storage::KeyDigest(st.key, st.envelope));
    }
    BOOST_TEST((computed == on_disk), self_.id + ": digest records differ from the states");
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

}  // namespace

// Logged before the start: shipped after the Welcome. Without
// anti-entropy every seq arrives as a delta; with it, a round may bring
// some first (one side can be welcomed, and start a round, before the
// other's Hello got through), and every seq arrives one way or the other
// (or both).
BOOST_AUTO_TEST_CASE(handshake_and_delivery_both_ways) {
  for (bool ae : {false, true}) {
    BOOST_TEST_CONTEXT("anti_entropy " << ae) {
      TempDir dir;
      auto specs = Specs(2);
      TestNode a(specs[0], specs, dir.sub("a"));
      TestNode b(specs[1], specs, dir.sub("b"));
      a.Append(5);
      b.Append(3);
      a.StartWith(a.Options(kDefaultFrameBytes, ae));
      b.StartWith(b.Options(kDefaultFrameBytes, ae));

      BOOST_REQUIRE(WaitFor([&] {
        return b.AppliedOf(a.replica()) == 5 && a.AppliedOf(b.replica()) == 3;
      }));
      BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").acked == 5 && b.Peer("a").acked == 3; }));
      b.CheckHolds("a", 5);
      a.CheckHolds("b", 3);
      TransportSnapshot sa = a.transport().Snapshot();
      TransportSnapshot sb = b.transport().Snapshot();
      if (!ae) {
        BOOST_TEST(b.record.Seqs("a") == Range(1, 5));
        BOOST_TEST(a.record.Seqs("b") == Range(1, 3));
        BOOST_TEST(sa.counters.deltas_applied == 3u);
        BOOST_TEST(sb.counters.deltas_applied == 5u);
      } else {
        BOOST_TEST(StrictlyIncreasing(b.record.Seqs("a")));
        BOOST_TEST(StrictlyIncreasing(a.record.Seqs("b")));
        BOOST_TEST(b.record.Covered("a") == Range(1, 5));
        BOOST_TEST(a.record.Covered("b") == Range(1, 3));
        BOOST_TEST(sa.counters.deltas_applied == a.record.Seqs("b").size());
        BOOST_TEST(sb.counters.deltas_applied == b.record.Seqs("a").size());
        BOOST_TEST(a.record.Get(&ApplyRecord::conflicts) == 0u);
        BOOST_TEST(b.record.Get(&ApplyRecord::conflicts) == 0u);
      }
      BOOST_TEST(sa.peers.size() == 1u);
      BOOST_TEST(sa.peers[0].welcomed);
      BOOST_TEST(sa.peers[0].unacked_deltas == 0u);
      BOOST_TEST(sa.frames_in > 0u);
      BOOST_TEST(sa.frames_out > 0u);
      BOOST_TEST(sa.bad_frames == 0u);
      BOOST_TEST(a.host().progress_calls.load() > 0u);
    }
  }
}

// Exact delta delivery is checked without anti-entropy: with it, a round
// can start between an Append's commit and its shipping (more likely on a
// loaded machine) and bring the states first, after which the deltas are
// skipped as already applied; so with it the test checks that every seq is
// covered, each delta at most once and in order.
BOOST_AUTO_TEST_CASE(appends_after_start_arrive_split_below_max_frame_bytes) {
  for (bool ae : {false, true}) {
    BOOST_TEST_CONTEXT("anti_entropy " << ae) {
      TempDir dir;
      auto specs = Specs(2);
      TestNode a(specs[0], specs, dir.sub("a"));
      TestNode b(specs[1], specs, dir.sub("b"));
      a.StartWith(a.Options(/*max_frame_bytes=*/4096, ae));
      b.StartWith(b.Options(kDefaultFrameBytes, ae));
      BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").welcomed && b.Peer("a").welcomed; }));
      const uint64_t frames_before = a.transport().Snapshot().frames_out;

      // 40 deltas of ~1 KB: one ShipRequest, at least ten frames of <= 4 KB.
      a.Append(40, 1000);
      BOOST_REQUIRE(WaitFor([&] { return b.AppliedOf(a.replica()) == 40; }));
      BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").acked == 40; }));
      b.CheckHolds("a", 40, 1000);
      BOOST_TEST(b.transport().Snapshot().bad_frames == 0u);
      if (!ae) {
        BOOST_TEST(b.record.Seqs("a") == Range(1, 40));
        BOOST_TEST(a.transport().Snapshot().frames_out - frames_before >= 10u);
      } else {
        BOOST_TEST(StrictlyIncreasing(b.record.Seqs("a")));
        BOOST_TEST(b.record.Covered("a") == Range(1, 40));
      }

      // More, in several appends, both ways.
      for (int i = 0; i < 5; ++i) {
        a.Append(3);
        b.Append(2);
      }
      BOOST_REQUIRE(WaitFor([&] {
        return b.AppliedOf(a.replica()) == 55 && a.AppliedOf(b.replica()) == 10;
      }));
      a.CheckHolds("b", 10);
      if (!ae) {
        BOOST_TEST(b.record.Seqs("a") == Range(1, 55));
        BOOST_TEST(a.record.Seqs("b") == Range(1, 10));
      } else {
        BOOST_TEST(StrictlyIncreasing(b.record.Seqs("a")));
        BOOST_TEST(b.record.Covered("a") == Range(1, 55));
        BOOST_TEST(a.record.Covered("b") == Range(1, 10));
      }
    }
  }
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
  welcome.to = a.replica();
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
  ack.to = a.replica();
  BOOST_REQUIRE(out.send(zmq::buffer(Encode(ack)), zmq::send_flags::none));
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").acked == 40; }));
  BOOST_TEST(a.transport().RegionsHolding(kDefaultScope, 40) == 2u);
  a.Kill();
}

// b goes away long enough for a to see it down and comes back on the same
// port with the same store. Without anti-entropy a resumes shipping past
// what b's Welcome says it holds and b applies every seq exactly once
// across both Host incarnations; with it, b's first round with a may bring
// some of the missed states first: then every seq arrives one way or the
// other (or both), and no delta is applied twice.
BOOST_AUTO_TEST_CASE(peer_restarted_on_same_port_resumes_exactly_once) {
  for (bool ae : {false, true}) {
    BOOST_TEST_CONTEXT("anti_entropy " << ae) {
      TempDir dir;
      auto specs = Specs(2);
      TestNode a(specs[0], specs, dir.sub("a"));
      TestNode b(specs[1], specs, dir.sub("b"));
      a.StartWith(a.Options(kDefaultFrameBytes, ae));
      b.StartWith(b.Options(kDefaultFrameBytes, ae));
      BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").welcomed && b.Peer("a").welcomed; }));
      a.Append(10);
      BOOST_REQUIRE(WaitFor([&] { return b.record.Last("a") == 10; }));
      BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").acked == 10; }));
      BOOST_TEST(b.record.Seqs("a") == Range(1, 10));

      b.Kill();
      a.Append(10);  // 11..20 while b is away
      BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").state == PeerState::kDown; }));
      a.Append(10);  // 21..30
      b.StartWith(b.Options(kDefaultFrameBytes, ae));  // same port, same store: it holds 10

      BOOST_REQUIRE(WaitFor([&] { return b.AppliedOf(a.replica()) == 30; }));
      BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").acked == 30; }));
      b.CheckHolds("a", 30);
      if (!ae) {
        BOOST_TEST(b.record.Seqs("a") == Range(1, 30));
      } else {
        BOOST_TEST(StrictlyIncreasing(b.record.Seqs("a")));
        BOOST_TEST(b.record.Covered("a") == Range(1, 30));
        BOOST_TEST(b.record.Get(&ApplyRecord::conflicts) == 0u);
      }
      BOOST_TEST(a.Peer("b").state == PeerState::kUp);

      // And it keeps going, by deltas (both sessions are up).
      BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").welcomed && b.Peer("a").welcomed; }));
      const size_t before = b.record.Seqs("a").size();
      a.Append(5);
      BOOST_REQUIRE(WaitFor([&] { return b.record.Last("a") == 35; }));
      const std::vector<uint64_t> seqs = b.record.Seqs("a");
      BOOST_TEST(std::vector<uint64_t>(seqs.begin() + before, seqs.end()) == Range(31, 35));
    }
  }
}

BOOST_AUTO_TEST_CASE(drop_fault_cuts_both_ways_and_healing_restores) {
  TempDir dir;
  auto specs = Specs(2);
  TestNode a(specs[0], specs, dir.sub("a"));
  TestNode b(specs[1], specs, dir.sub("b"));
  a.Start();
  b.Start();
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").welcomed && b.Peer("a").welcomed; }));
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
  BOOST_REQUIRE(WaitFor([&] {
    return b.AppliedOf(a.replica()) == 5 && a.AppliedOf(b.replica()) == 5;
  }));
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").acked == 5 && b.Peer("a").acked == 5; }));
  b.CheckHolds("a", 5);
  a.CheckHolds("b", 5);
  // Both sessions start again after healing and the two handshakes race:
  // an anti-entropy round may bring a state before its delta is resent.
  BOOST_TEST(StrictlyIncreasing(b.record.Seqs("a")));
  BOOST_TEST(StrictlyIncreasing(a.record.Seqs("b")));
  BOOST_TEST(b.record.Covered("a") == Range(1, 5));
  BOOST_TEST(a.record.Covered("b") == Range(1, 5));
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").state == PeerState::kUp; }));
}

BOOST_AUTO_TEST_CASE(delay_fault_delays_delivery_both_ways) {
  TempDir dir;
  auto specs = Specs(2);
  TestNode a(specs[0], specs, dir.sub("a"));
  TestNode b(specs[1], specs, dir.sub("b"));
  a.Start();
  b.Start();
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").welcomed && b.Peer("a").welcomed; }));
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
  TestHost host(crdt::ReplicaId{"x", 1}, store.get(), &record);
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
  // a logged 1..3 before b and c were up: their states may come by a round
  // (a peer's session can be up, and a round start, before the other
  // one's) as well as by deltas; each delta applied at most once, and
  // together they cover a's log.
  BOOST_TEST(StrictlyIncreasing(b.record.Seqs("a")));
  BOOST_TEST(b.record.Covered("a") == Range(1, 4));
  b.CheckHolds("a", 4);
  BOOST_TEST(StrictlyIncreasing(c.record.Seqs("a")));
  BOOST_TEST(c.record.Covered("a") == Range(1, 4));
  c.CheckHolds("a", 4);
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

// The policy-set hash of TransportOptions reaches the peer, the snapshot
// counts the mismatch, and SetPolicyHash (from another thread) reaches the
// peer with the next Ping.
BOOST_AUTO_TEST_CASE(policy_hash_travels_and_set_policy_hash_reaches_the_peer) {
  TempDir dir;
  auto specs = Specs(2);
  TestNode a(specs[0], specs, dir.sub("a"));
  TestNode b(specs[1], specs, dir.sub("b"));
  const std::string hash_a = "00000000000000aa", hash_b = "00000000000000bb";
  TransportOptions oa = a.Options();
  oa.protocol.policy_hash = hash_a;
  TransportOptions ob = b.Options();
  ob.protocol.policy_hash = hash_b;
  a.StartWith(oa);
  b.StartWith(ob);
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").policy_hash == hash_b; }));
  BOOST_REQUIRE(WaitFor([&] { return b.Peer("a").policy_hash == hash_a; }));
  TransportSnapshot sa = a.transport().Snapshot();
  BOOST_TEST(sa.policy_hash == hash_a);
  BOOST_TEST(sa.policy_mismatches == 1u);
  BOOST_REQUIRE(sa.peers.size() == 1u);
  BOOST_TEST(sa.peers[0].policy_mismatch);
  BOOST_TEST(b.Peer("a").policy_mismatch);

  b.transport().SetPolicyHash(hash_a);
  BOOST_REQUIRE(WaitFor([&] { return b.transport().Snapshot().policy_hash == hash_a; }));
  BOOST_TEST(b.transport().Snapshot().policy_mismatches == 0u);
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").policy_hash == hash_a; }));
  BOOST_TEST(!a.Peer("b").policy_mismatch);
  BOOST_REQUIRE(WaitFor([&] { return a.transport().Snapshot().policy_mismatches == 0; }));
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
  // a never saw b down, so it resends only after b refuses its deltas for
  // want of a handshake, while b's first anti-entropy round with a may
  // bring the states sooner: every seq arrives one way or the other (or
  // both), no delta is applied twice across both Host incarnations.
  BOOST_REQUIRE(WaitFor([&] { return b.AppliedOf(a.replica()) == 50 && b.Holds("a", 50); }));
  BOOST_TEST(StrictlyIncreasing(b.record.Seqs("a")));
  BOOST_TEST(b.record.Covered("a") == Range(1, 50));
  b.CheckHolds("a", 50, 100);
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").acked == 50; }));
  BOOST_TEST(b.record.Get(&ApplyRecord::conflicts) == 0u);
}

// --- Anti-entropy --------------------------------------------------------------

// a and c cannot reach each other (a drop fault on both sides, from before
// the first message); b reaches both. a's log reaches b by deltas and c only
// by anti-entropy rounds between b and c: c holds every state and covers
// a's seq N in its applied vector with no delta of a applied. Healed, a is
// welcomed by c with N already held: acknowledged without reshipping.
BOOST_AUTO_TEST_CASE(partial_partition_is_repaired_through_the_third_node) {
  TempDir dir;
  auto specs = Specs(3);
  TestNode a(specs[0], specs, dir.sub("a"));
  TestNode b(specs[1], specs, dir.sub("b"));
  TestNode c(specs[2], specs, dir.sub("c"));
  Faults cut_c, cut_a;
  cut_c.drop.insert("c");
  cut_a.drop.insert("a");
  a.StartWith(a.Options(), cut_c);
  b.Start();
  c.StartWith(c.Options(), cut_a);
  BOOST_REQUIRE(WaitFor([&] {
    return a.Peer("b").welcomed && b.Peer("a").welcomed && b.Peer("c").welcomed &&
           c.Peer("b").welcomed;
  }));

  constexpr uint64_t kN = 30;
  a.Append(kN);
  BOOST_REQUIRE(WaitFor([&] { return b.record.Last("a") == kN; }));
  BOOST_REQUIRE(WaitFor([&] { return c.AppliedOf(a.replica()) == kN && c.Holds("a", kN); }));
  c.CheckHolds("a", kN);
  BOOST_TEST(c.record.Seqs("a").empty());  // nothing came by delta shipping
  std::vector<uint64_t> repaired = c.record.Repaired("a");
  std::sort(repaired.begin(), repaired.end());
  BOOST_TEST(repaired == Range(1, kN));  // each state written once, by a repair
  BOOST_TEST(c.record.Get(&ApplyRecord::advances) > 0u);
  // b got a's log by deltas; repairs from a found it there already.
  BOOST_TEST(b.record.Seqs("a") == Range(1, kN));
  BOOST_TEST(b.record.Repaired("a").empty());

  // The transport's counters follow the host's records: it counts a
  // repair when it hears the repair is durable, a moment after the host
  // wrote it (and a sent state after the send).
  BOOST_TEST(WaitFor([&] {
    TransportSnapshot s = c.transport().Snapshot();
    return s.ae.states_received >= kN && s.ae.buckets_repaired > 0u;
  }));
  BOOST_TEST(WaitFor([&] { return b.transport().Snapshot().ae.states_sent >= kN; }));
  TransportSnapshot sc = c.transport().Snapshot();
  BOOST_TEST(sc.counters.deltas_received == 0u);
  BOOST_TEST(sc.ae.states_received >= kN);
  BOOST_TEST(sc.ae.buckets_repaired > 0u);
  BOOST_TEST(c.Peer("a").state != PeerState::kUp);  // never heard
  BOOST_TEST(c.Peer("a").last_heard_ms_ago == -1);
  BOOST_TEST(a.transport().Snapshot().dropped_by_faults > 0u);
  BOOST_TEST(b.transport().Snapshot().ae.states_sent >= kN);

  // All three hold the same states, and their digests are right.
  BOOST_REQUIRE(WaitFor([&] {
    return a.host().sums() == b.host().sums() && b.host().sums() == c.host().sums();
  }));
  a.CheckDigestIndex();
  b.CheckDigestIndex();
  c.CheckDigestIndex();

  // Healed: c's Welcome says it holds N of a's log.
  a.transport().SetFaults(Faults{});
  c.transport().SetFaults(Faults{});
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("c").welcomed && a.Peer("c").acked == kN; }));
  BOOST_TEST(a.Peer("c").unacked_deltas == 0u);
  BOOST_TEST(a.Peer("c").shipped == kN);
  BOOST_TEST(a.transport().RegionsHolding(kDefaultScope, kN) == 3u);
  BOOST_REQUIRE(WaitFor([&] { return c.Peer("a").state == PeerState::kUp; }));
  // Give a stray resend time to show, then: nothing of 1..N was shipped.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  BOOST_TEST(c.transport().Snapshot().counters.deltas_received == 0u);
  BOOST_TEST(c.record.Seqs("a").empty());
  BOOST_TEST(a.Peer("c").acked == kN);

  // Delta shipping to c goes on from N + 1.
  a.Append(5);
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("c").acked == kN + 5 && c.Holds("a", kN + 5); }));
  c.CheckHolds("a", kN + 5);
  const std::vector<uint64_t> deltas = c.record.Seqs("a");
  BOOST_TEST(StrictlyIncreasing(deltas));
  BOOST_TEST((deltas.empty() || deltas.front() > kN));
  BOOST_TEST(c.record.Covered("a") == Range(1, kN + 5));
  for (TestNode* n : {&a, &b, &c}) {
    BOOST_TEST(n->record.Get(&ApplyRecord::conflicts) == 0u);
    BOOST_TEST(n->transport().Snapshot().bad_frames == 0u);
  }
}

// The same partition with b's max_frame_bytes at 4 KiB and states of ~1 KB:
// b's states for c leave as many kStates parts (their framing on the wire
// is checked by the next test), which c joins in one repair once it holds
// them all. c starts no round after its first (its interval is an hour)
// and a's log reaches b in one batch, so exactly one round carries states
// to c: c receives exactly a's N states, writes each once, and the counts
// of the cluster agree.
BOOST_AUTO_TEST_CASE(repair_states_split_into_parts_below_max_frame_bytes) {
  TempDir dir;
  auto specs = Specs(3);
  TestNode a(specs[0], specs, dir.sub("a"));
  TestNode b(specs[1], specs, dir.sub("b"));
  TestNode c(specs[2], specs, dir.sub("c"));
  constexpr size_t kLimit = 4096;
  constexpr uint64_t kN = 40;
  constexpr size_t kPad = 1000;
  Faults cut_c, cut_a;
  cut_c.drop.insert("c");
  cut_a.drop.insert("a");
  a.StartWith(a.Options(), cut_c);
  b.Start(kLimit);
  TransportOptions co = c.Options();
  co.protocol.anti_entropy.interval_ms = 3600 * 1000;
  c.StartWith(co, cut_a);

  // c's only round of its own (b came up) is over before a writes.
  BOOST_REQUIRE(WaitFor([&] {
    return c.Peer("b").ae_ready && a.Peer("b").welcomed && b.Peer("a").welcomed;
  }));
  BOOST_REQUIRE(WaitFor([&] {
    const AeCounters ae = c.transport().Snapshot().ae;
    return ae.rounds_completed >= 1 &&
           ae.rounds_started == ae.rounds_completed + ae.rounds_abandoned;
  }));
  const AeCounters before = c.transport().Snapshot().ae;
  BOOST_TEST(before.states_received == 0u);

  a.Append(kN, kPad);  // one batch, shipped to b in one frame
  BOOST_REQUIRE(WaitFor([&] { return b.record.Last("a") == kN; }));
  BOOST_REQUIRE(WaitFor([&] { return c.AppliedOf(a.replica()) == kN && c.Holds("a", kN); }));
  c.CheckHolds("a", kN, kPad);
  BOOST_TEST(c.record.Seqs("a").empty());
  std::vector<uint64_t> repaired = c.record.Repaired("a");
  std::sort(repaired.begin(), repaired.end());
  BOOST_TEST(repaired == Range(1, kN));

  // The round's parts are joined together, in one repair with the advance.
  BOOST_TEST(c.record.Get(&ApplyRecord::repairs) == 1u);
  BOOST_TEST(c.record.MaxRepairBytes() > kN * kPad);

  // Converged; then nothing more is in flight.
  BOOST_REQUIRE(WaitFor([&] {
    return a.host().sums() == b.host().sums() && b.host().sums() == c.host().sums();
  }));
  auto totals = [&](uint64_t* sent, uint64_t* received) {
    *sent = *received = 0;
    for (TestNode* n : {&a, &b, &c}) {
      const AeCounters ae = n->transport().Snapshot().ae;
      *sent += ae.states_sent;
      *received += ae.states_received;
    }
  };
  BOOST_REQUIRE(WaitFor([&] {
    uint64_t sent = 0, received = 0;
    totals(&sent, &received);
    return sent == received;
  }));

  // Exactly one round brought a's states to c, and only a's. (The round
  // counts as completed once the gossip thread hears that its repair is
  // durable, a moment after the states are readable.)
  BOOST_REQUIRE(WaitFor([&] {
    const AeCounters now = c.transport().Snapshot().ae;
    return now.rounds_completed > now.rounds_in_sync &&
           now.rounds_started == now.rounds_completed + now.rounds_abandoned;
  }));
  const AeCounters ae = c.transport().Snapshot().ae;
  BOOST_TEST(ae.states_received == kN);
  BOOST_TEST(c.record.Get(&ApplyRecord::repair_states) == kN);
  BOOST_TEST(ae.states_sent == 0u);  // c held nothing of the differing buckets
  std::set<uint32_t> buckets;
  for (uint64_t seq = 1; seq <= kN; ++seq) buckets.insert(storage::BucketOf(KeyOf("a", seq)));
  BOOST_TEST(ae.buckets_repaired == buckets.size());
  BOOST_TEST(ae.rounds_completed - ae.rounds_in_sync == 1u);
  BOOST_TEST(ae.rounds_abandoned == 0u);
  // Every state b sent was received: to c, and to a (joins of what a held).
  BOOST_TEST(b.transport().Snapshot().ae.states_sent >= kN);
  BOOST_TEST(b.record.Repaired("a").empty());
  c.CheckDigestIndex();
  for (TestNode* n : {&a, &b, &c}) {
    BOOST_TEST(n->record.Get(&ApplyRecord::conflicts) == 0u);
    BOOST_TEST(n->transport().Snapshot().bad_frames == 0u);
  }
}

// A fake peer "b" of raw sockets runs a round with a as its initiator,
// claiming to hold nothing. a answers down the tree to the buckets that
// hold its states, wants those, and sends its states of them as kStates
// parts numbered from 0, each frame within a's max_frame_bytes, the last
// flagged and carrying a's View applied vector: together every state of a,
// once. Answered with an empty last part, a completes the round.
BOOST_AUTO_TEST_CASE(fake_peer_sees_repair_states_in_parts_within_max_frame_bytes) {
  TempDir dir;
  auto specs = Specs(2);
  TestNode a(specs[0], specs, dir.sub("a"));
  constexpr size_t kLimit = 4096;
  constexpr uint64_t kN = 40;
  constexpr size_t kPad = 1000;
  a.Append(kN, kPad);

  zmq::context_t ctx;
  zmq::socket_t in(ctx, zmq::socket_type::router);
  in.set(zmq::sockopt::linger, 0);
  in.bind(Endpoint(specs[1].port));
  zmq::socket_t out(ctx, zmq::socket_type::dealer);
  out.set(zmq::sockopt::linger, 0);
  out.connect(Endpoint(specs[0].port));
  a.Start(kLimit);

  // Receives the next anti-entropy message from a (others are skipped);
  // false after 3 s without one.
  auto receive_ae = [&](Message* msg, size_t* frame_bytes) {
    const auto deadline = Clock::now() + std::chrono::seconds(3);
    while (Clock::now() < deadline) {
      zmq::pollitem_t item{in.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) <= 0) continue;
      zmq::message_t id, payload;
      BOOST_REQUIRE(in.recv(id));
      BOOST_REQUIRE(id.more());
      BOOST_REQUIRE(in.recv(payload));
      BOOST_REQUIRE(!payload.more());
      Status s = Decode(
          std::string_view(static_cast<const char*>(payload.data()), payload.size()), msg);
      BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
      if (msg->type != MsgType::kAntiEntropy) continue;
      *frame_bytes = payload.size();
      return true;
    }
    return false;
  };
  constexpr uint64_t kRound = 7;
  auto send_ae = [&](AeBody body) {
    Message m;
    m.header.cluster = "test";
    m.header.from = crdt::ReplicaId{"b", 1};
    m.header.wall_ms = crdt::SystemClock().NowMs();
    m.header.hlc = crdt::MakeHlc(m.header.wall_ms, 0);
    m.type = MsgType::kAntiEntropy;
    body.round = kRound;
    body.from_initiator = true;
    body.scope = kDefaultScope;
    m.ae = std::move(body);
    BOOST_REQUIRE(out.send(zmq::buffer(Encode(m)), zmq::send_flags::none));
  };
  auto zero_children = [](const std::vector<uint32_t>& parents) {
    std::vector<AeNode> nodes;
    for (uint32_t p : parents) {
      for (uint32_t c = p * kFanout; c < (p + 1) * kFanout; ++c) nodes.push_back(AeNode{c, {}});
    }
    return nodes;
  };

  // a's DEALER reaches us once something of a's arrives (its Hellos):
  // from then on its answers are not dropped for want of a connection.
  {
    zmq::pollitem_t item{in.handle(), 0, ZMQ_POLLIN, 0};
    BOOST_REQUIRE(zmq::poll(&item, 1, std::chrono::milliseconds(3000)) > 0);
  }

  // Level 1: every hash zero (nothing held).
  AeBody begin;
  begin.kind = AeKind::kBegin;
  begin.level = 1;
  begin.nodes = zero_children({0});
  send_ae(begin);
  Message msg;
  size_t bytes = 0;
  BOOST_REQUIRE(receive_ae(&msg, &bytes));
  BOOST_REQUIRE(msg.ae.kind == AeKind::kHashes);
  BOOST_TEST(msg.ae.round == kRound);
  BOOST_TEST(!msg.ae.from_initiator);
  BOOST_TEST(msg.ae.level == 2);
  std::vector<uint32_t> differing;
  for (const AeNode& n : msg.ae.nodes) {
    if (!n.hash.zero()) differing.push_back(n.index);
  }
  BOOST_REQUIRE(!differing.empty());

  // Level 3: the buckets under the level-2 nodes that differ.
  AeBody leaves;
  leaves.kind = AeKind::kHashes;
  leaves.level = kLeafLevel;
  leaves.nodes = zero_children(differing);
  send_ae(leaves);

  // a wants the buckets holding its keys and sends its states of them.
  std::set<uint32_t> expected_buckets;
  for (uint64_t seq = 1; seq <= kN; ++seq) {
    expected_buckets.insert(storage::BucketOf(KeyOf("a", seq)));
  }
  bool want_seen = false, last_seen = false;
  std::set<uint32_t> parts;
  uint32_t last_part = 0;
  std::map<std::string, std::string> states;
  size_t state_count = 0, largest = 0;
  for (int i = 0; i < 200 && !(want_seen && last_seen); ++i) {
    BOOST_REQUIRE(receive_ae(&msg, &bytes));
    BOOST_TEST(msg.ae.round == kRound);
    BOOST_TEST(!msg.ae.from_initiator);
    if (msg.ae.kind == AeKind::kWant) {
      BOOST_TEST(!want_seen);
      want_seen = true;
      BOOST_TEST(std::set<uint32_t>(msg.ae.buckets.begin(), msg.ae.buckets.end()) ==
                 expected_buckets);
      continue;
    }
    BOOST_REQUIRE(msg.ae.kind == AeKind::kStates);
    BOOST_TEST(bytes <= kLimit);
    largest = std::max(largest, bytes);
    BOOST_TEST(parts.insert(msg.ae.part).second);  // each part once
    for (const AeState& st : msg.ae.states) {
      ++state_count;
      states[st.key] = st.envelope;
    }
    if (msg.ae.last) {
      BOOST_TEST(!last_seen);
      last_seen = true;
      last_part = msg.ae.part;
      // a's View: its own log end, nothing else applied.
      const AeApplied want{{{a.replica(), kDefaultScope}, kN}};
      BOOST_TEST((msg.ae.applied == want));
    } else {
      BOOST_TEST(msg.ae.applied.empty());
    }
  }
  BOOST_REQUIRE(want_seen && last_seen);
  // Parts 0..last, all of them, and as many as the bytes need.
  BOOST_TEST(parts.size() == size_t{last_part} + 1);
  BOOST_TEST(*parts.rbegin() == last_part);
  const size_t state_bytes = KeyOf("a", kN).size() + Delta("a", kN, kPad).size();
  BOOST_TEST(parts.size() >= (kN * state_bytes + kLimit - 1) / kLimit);
  BOOST_TEST(largest > kLimit / 2);  // parts are filled, not one state each
  BOOST_TEST(state_count == kN);
  BOOST_REQUIRE(states.size() == kN);
  for (uint64_t seq = 1; seq <= kN; ++seq) {
    BOOST_TEST(states[KeyOf("a", seq)] == Delta("a", seq, kPad));
  }

  // b's own states of those buckets: none, in one empty last part.
  AeBody mine;
  mine.kind = AeKind::kStates;
  mine.part = 0;
  mine.last = true;
  send_ae(mine);
  BOOST_REQUIRE(WaitFor([&] { return a.transport().Snapshot().ae.rounds_completed == 1; }));
  const AeCounters ae = a.transport().Snapshot().ae;
  BOOST_TEST(ae.states_sent == kN);
  BOOST_TEST(ae.states_received == 0u);
  BOOST_TEST(ae.buckets_repaired == expected_buckets.size());
  BOOST_TEST(ae.rounds_abandoned == 0u);
  BOOST_TEST(a.transport().Snapshot().bad_frames == 0u);
  a.Kill();
}

// The snapshot says anti-entropy runs and counts its rounds and bytes;
// with TransportOptions::anti_entropy off it says so, counts nothing, and
// deltas flow as before. Pings carry the sender's log end.
BOOST_AUTO_TEST_CASE(snapshot_shows_anti_entropy_on_and_off) {
  TempDir dir;
  {
    auto specs = Specs(2);
    TestNode a(specs[0], specs, dir.sub("on-a"));
    TestNode b(specs[1], specs, dir.sub("on-b"));
    a.Start();
    b.Start();
    BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").welcomed && b.Peer("a").welcomed; }));
    a.Append(4);
    BOOST_REQUIRE(WaitFor([&] { return b.record.Last("a") == 4; }));
    BOOST_REQUIRE(WaitFor([&] {
      return a.transport().Snapshot().ae.rounds_completed > 0 &&
             b.transport().Snapshot().ae.rounds_completed > 0;
    }));
    BOOST_REQUIRE(WaitFor([&] { return b.Peer("a").log_end == 4 && b.Peer("a").behind == 0; }));
    BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").ae_ready && b.Peer("a").ae_ready; }));
    BOOST_REQUIRE(WaitFor([&] {
      return a.transport().Snapshot().ae.rounds_in_sync > 0 &&
             b.transport().Snapshot().ae.rounds_in_sync > 0;
    }));
    for (TestNode* n : {&a, &b}) {
      const TransportSnapshot s = n->transport().Snapshot();
      BOOST_TEST(s.anti_entropy);
      BOOST_TEST(s.bootstrapped);
      BOOST_TEST(s.ae.rounds_started >= s.ae.rounds_completed);
      BOOST_TEST(s.ae.rounds_in_sync > 0u);
      BOOST_TEST(s.ae.rounds_abandoned == 0u);
      BOOST_TEST(s.bytes_in > 0u);
      BOOST_TEST(s.bytes_out > 0u);
    }
    BOOST_TEST(a.Peer("b").log_end == 0u);
    // Rounds keep coming (every 150 ms here).
    const uint64_t done = a.transport().Snapshot().ae.rounds_completed;
    BOOST_REQUIRE(WaitFor([&] { return a.transport().Snapshot().ae.rounds_completed > done; }));
  }
  {
    auto specs = Specs(2);
    TestNode a(specs[0], specs, dir.sub("off-a"));
    TestNode b(specs[1], specs, dir.sub("off-b"));
    TransportOptions ao = a.Options(), bo = b.Options();
    ao.anti_entropy = false;
    bo.anti_entropy = false;
    a.StartWith(ao);
    b.StartWith(bo);
    BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").welcomed && b.Peer("a").welcomed; }));
    a.Append(3);
    BOOST_REQUIRE(WaitFor([&] { return b.record.Last("a") == 3; }));
    BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").acked == 3; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(400));  // several intervals
    for (TestNode* n : {&a, &b}) {
      const TransportSnapshot s = n->transport().Snapshot();
      BOOST_TEST(!s.anti_entropy);
      BOOST_TEST(s.bootstrapped);
      BOOST_TEST(s.ae.rounds_started == 0u);
      BOOST_TEST(s.ae.rounds_completed == 0u);
      BOOST_TEST(s.ae.states_sent == 0u);
      BOOST_TEST(s.bytes_in > 0u);
      BOOST_TEST(s.bytes_out > 0u);
      BOOST_TEST(n->record.Get(&ApplyRecord::advances) == 0u);
    }
    BOOST_TEST(!a.Peer("b").ae_ready);
    BOOST_TEST(b.record.Seqs("a") == Range(1, 3));
  }
}

// --- CurveZMQ (transport.h "Security") ---------------------------------------

namespace {

CurveKeyPair NewPair() {
  BOOST_REQUIRE_MESSAGE(CurveAvailable(),
                        "this ZeroMQ library was built without CURVE (zmq_has(\"curve\") is "
                        "false); the CurveZMQ tests cannot run");
  CurveKeyPair pair;
  Status s = GenerateCurveKeyPair(&pair);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  return pair;
}

// A pair per node: the keys the topology lists.
std::map<std::string, CurveKeyPair> ListedPairs(const std::vector<NodeSpec>& specs) {
  std::map<std::string, CurveKeyPair> pairs;
  for (const NodeSpec& n : specs) pairs[n.id] = NewPair();
  return pairs;
}

// `node`'s options with CURVE: every listed public key, and `own` as its
// pair (its listed one, or an impostor's).
TransportOptions WithCurve(TransportOptions o, const std::map<std::string, CurveKeyPair>& listed,
                           const CurveKeyPair& own) {
  o.curve.public_key = own.public_key;
  o.curve.secret_key = own.secret_key;
  for (const auto& [id, pair] : listed) o.curve.node_keys[id] = pair.public_key;
  return o;
}

Header RawHeader(const crdt::ReplicaId& from) {
  Header h;
  h.cluster = "test";
  h.from = from;
  h.wall_ms = crdt::SystemClock().NowMs();
  h.hlc = crdt::MakeHlc(h.wall_ms, 0);
  return h;
}

// A well-formed Hello and a Deltas of seqs 1..3 from `from`: what a node
// would send to open a session and ship its log.
std::vector<std::string> HelloAndDeltas(const crdt::ReplicaId& from, const std::string& region) {
  Message hello;
  hello.header = RawHeader(from);
  hello.type = MsgType::kHello;
  hello.region = region;
  Message deltas;
  deltas.header = RawHeader(from);
  deltas.type = MsgType::kDeltas;
  deltas.scope = kDefaultScope;
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    deltas.deltas.push_back(DeltaEntry{seq, KeyOf(from.node, seq), Delta(from.node, seq)});
  }
  return {Encode(hello), Encode(deltas)};
}

// A raw DEALER to `endpoint`: plaintext when `own` is null, else a CURVE
// client with that pair that expects `server_key`.
zmq::socket_t RawDealer(zmq::context_t& ctx, const std::string& endpoint,
                        const CurveKeyPair* own = nullptr, const std::string& server_key = "") {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  if (own != nullptr) {
    s.set(zmq::sockopt::curve_serverkey, server_key);
    s.set(zmq::sockopt::curve_publickey, own->public_key);
    s.set(zmq::sockopt::curve_secretkey, own->secret_key);
  }
  s.connect(endpoint);
  return s;
}

// Three nodes a, b, c in a fresh directory, each with a listed pair.
struct CurveSetup {
  TempDir dir;
  std::vector<NodeSpec> specs = Specs(3);
  std::map<std::string, CurveKeyPair> listed = ListedPairs(specs);

  // Node i, started with `own` as its pair (null: its listed one).
  std::unique_ptr<TestNode> Start(size_t i, const CurveKeyPair* own = nullptr) {
    const std::string& id = specs[i].id;
    auto node = std::make_unique<TestNode>(specs[i], specs, dir.sub(id));
    node->StartWith(WithCurve(node->Options(), listed, own ? *own : listed.at(id)));
    return node;
  }
};

void SendAll(zmq::socket_t& s, const std::vector<std::string>& frames) {
  for (const std::string& f : frames) {
    BOOST_REQUIRE(s.send(zmq::buffer(f), zmq::send_flags::none));
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(curve_nodes_replicate_both_ways) {
  CurveSetup setup;
  std::vector<std::unique_ptr<TestNode>> nodes;
  for (size_t i = 0; i < setup.specs.size(); ++i) nodes.push_back(setup.Start(i));
  for (auto& n : nodes) n->Append(3);
  for (auto& to : nodes) {
    for (auto& from : nodes) {
      if (to == from) continue;
      BOOST_REQUIRE_MESSAGE(WaitFor([&] { return to->AppliedOf(from->replica()) == 3; }),
                            to->spec().id << " lacks " << from->spec().id << "'s log");
      to->CheckHolds(from->spec().id, 3);
    }
  }
  for (auto& n : nodes) {
    const TransportSnapshot snap = n->transport().Snapshot();
    BOOST_TEST(snap.curve);
    BOOST_TEST(snap.zap_refused == 0u);
    BOOST_TEST(snap.forged_frames == 0u);
    BOOST_TEST(snap.bad_frames == 0u);
    BOOST_TEST(n->record.Logged("(CurveZMQ)"));
  }
}

// a and b listed (b not running); c listed, but the c that runs has
// another pair. Neither it, nor a raw CURVE socket with an unlisted key,
// nor a plaintext socket gets a single frame to a's Protocol: their Hello
// and Deltas (claiming b, a listed node) are never welcomed nor applied.
BOOST_AUTO_TEST_CASE(curve_an_unlisted_key_cannot_connect_or_inject) {
  CurveSetup setup;
  std::unique_ptr<TestNode> a_node = setup.Start(0);
  const CurveKeyPair impostor = NewPair();
  std::unique_ptr<TestNode> c_node = setup.Start(2, &impostor);
  TestNode& a = *a_node;
  TestNode& c = *c_node;
  c.Append(2);

  zmq::context_t ctx;
  const CurveKeyPair unlisted = NewPair();
  const std::string a_endpoint = Endpoint(setup.specs[0].port);
  zmq::socket_t curve_raw = RawDealer(ctx, a_endpoint, &unlisted, setup.listed.at("a").public_key);
  zmq::socket_t plain_raw = RawDealer(ctx, a_endpoint);
  const crdt::ReplicaId b{"b", 1};
  SendAll(curve_raw, HelloAndDeltas(b, "region-2"));
  SendAll(plain_raw, HelloAndDeltas(b, "region-2"));

  // c and the raw CURVE socket each keep being refused as they redial.
  BOOST_REQUIRE(WaitFor([&] { return a.transport().Snapshot().zap_refused >= 2; }));
  BOOST_TEST(a.record.Logged("unlisted CURVE key"));
  // Long enough for many Hello retries and heartbeats of c.
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  const TransportSnapshot snap = a.transport().Snapshot();
  BOOST_TEST(snap.frames_in == 0u);  // nothing reached the ROUTER's reader
  BOOST_TEST(snap.forged_frames == 0u);
  BOOST_TEST(snap.counters.deltas_received == 0u);
  BOOST_TEST(a.AppliedOf(b) == 0u);
  BOOST_TEST(a.AppliedOf(c.replica()) == 0u);
  BOOST_TEST(!a.Holds("b", 1));
  BOOST_TEST(!a.Holds("c", 1));
  BOOST_TEST(a.record.Seqs("b").empty());
  BOOST_TEST(!a.Peer("c").welcomed);
  BOOST_TEST(!c.Peer("a").welcomed);  // a's DEALER does not accept the impostor's server key
  BOOST_TEST(c.transport().Snapshot().frames_in == 0u);
}

// a and b run with their listed keys; a raw socket with c's listed key
// claims to be b (a new incarnation of it, so that the Protocol alone would
// take it): its Hello and Deltas are dropped before the Protocol, counted
// and logged. As c it is heard; b's own deltas still arrive; and a socket
// with a's own key is refused.
BOOST_AUTO_TEST_CASE(curve_a_listed_key_cannot_forge_another_origin) {
  CurveSetup setup;
  std::unique_ptr<TestNode> a_node = setup.Start(0);
  std::unique_ptr<TestNode> b_node = setup.Start(1);
  TestNode& a = *a_node;
  TestNode& b = *b_node;
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("b").welcomed && b.Peer("a").welcomed; }));

  zmq::context_t ctx;
  zmq::socket_t as_c = RawDealer(ctx, Endpoint(setup.specs[0].port), &setup.listed.at("c"),
                                 setup.listed.at("a").public_key);
  const crdt::ReplicaId fake_b{"b", 7};
  SendAll(as_c, HelloAndDeltas(fake_b, "region-2"));
  BOOST_REQUIRE(WaitFor([&] { return a.transport().Snapshot().forged_frames == 2; }));
  BOOST_TEST(a.record.Logged("claiming to be from b#7, sent with the key of c"));
  BOOST_TEST(a.AppliedOf(fake_b) == 0u);
  BOOST_TEST(!a.Holds("b", 1));
  BOOST_TEST(a.transport().Snapshot().counters.deltas_received == 0u);
  BOOST_TEST(a.transport().Snapshot().zap_refused == 0u);  // c's key itself is welcome

  // As itself, c is heard: its Hello reaches the Protocol (the Welcome goes
  // to c's endpoint, where nobody listens).
  const uint64_t refused_before = a.transport().Snapshot().counters.refused_other;
  SendAll(as_c, {HelloAndDeltas(crdt::ReplicaId{"c", 1}, "region-3")[0]});
  BOOST_REQUIRE(WaitFor([&] { return a.Peer("c").replica.node == "c"; }));
  BOOST_TEST(a.transport().Snapshot().forged_frames == 2u);
  BOOST_TEST(a.transport().Snapshot().counters.refused_other == refused_before);

  b.Append(3);
  BOOST_REQUIRE(WaitFor([&] { return a.AppliedOf(b.replica()) == 3; }));
  a.CheckHolds("b", 3);
  BOOST_TEST(a.AppliedOf(fake_b) == 0u);
  BOOST_TEST(a.transport().Snapshot().forged_frames == 2u);

  // a's own key is listed but never admitted as a client: nobody else
  // should hold a's secret.
  zmq::socket_t as_a = RawDealer(ctx, Endpoint(setup.specs[0].port), &setup.listed.at("a"),
                                 setup.listed.at("a").public_key);
  SendAll(as_a, {HelloAndDeltas(crdt::ReplicaId{"c", 1}, "region-3")[0]});
  BOOST_REQUIRE(WaitFor([&] { return a.transport().Snapshot().zap_refused >= 1; }));
}

// Start refuses keys it cannot use instead of falling back to plaintext.
BOOST_AUTO_TEST_CASE(curve_start_refuses_a_peer_without_a_key_or_a_bad_key) {
  CurveSetup setup;
  TestNode a(setup.specs[0], setup.specs, setup.dir.sub("a"));
  TransportOptions no_peer_key = WithCurve(a.Options(), setup.listed, setup.listed.at("a"));
  no_peer_key.curve.node_keys.erase("c");
  TransportOptions bad_key = WithCurve(a.Options(), setup.listed, setup.listed.at("a"));
  bad_key.curve.node_keys["b"] = "not a key";
  const std::vector<std::pair<TransportOptions, std::string>> cases = {
      {no_peer_key, "peer c has no public key, and gossip uses CURVE"},
      {bad_key, "the public key of node b is not 40 Z85 characters"}};
  for (const auto& [options, why] : cases) {
    BOOST_TEST_CONTEXT(why) {
      storage::StoreOptions so;
      so.sync = false;
      std::unique_ptr<storage::Store> store;
      TempDir store_dir;
      BOOST_REQUIRE(storage::Store::Open(store_dir.sub("s"), so, &store).ok());
      ApplyRecord record;
      TestHost host(a.replica(), store.get(), &record);
      crdt::SystemClock wall;
      Transport t(options, store.get(), &host, &wall, host.applied());
      Status s = t.Start();
      BOOST_TEST(s.IsInvalidArgument());
      BOOST_TEST(s.message() == why);
    }
  }
}
