// meridiand: one Meridian node.
//
//   meridiand --config regions/FILE.toml --node ID
//             [--enable-fault-injection] [--clock-offset-ms N]
//
// Reads and checks the topology before anything starts, opens the node's
// LevelDB (creating a new incarnation on an empty data dir), restores its
// clock bound, starts gossip with the other nodes of the topology (DESIGN.md
// §4), and serves the HTTP API until SIGTERM or SIGINT, when it answers
// the requests still waiting (w=N, session tokens) as they stand, stops
// accepting, finishes what is in flight, stops gossip, closes LevelDB and
// exits 0.
//
// Rejoining (DESIGN.md §4 "Garbage", gossip/protocol.h "Retention
// horizon"): when a peer retired this incarnation (it was away longer than
// the retention horizon), the node stops as above, renames its data dir to
// DATA_DIR.retired-INCARNATION (kept for an operator; nothing in it is
// used again) and starts over on an empty one as a new incarnation, which
// bootstraps from its peers (--bootstrap does not apply). A data dir left
// with the stored retired mark (a crash in between) is moved aside the
// same way at the next start.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <random>
#include <string>

#include "crdt/hlc.h"
#include "node/api.h"
#include "node/applier.h"
#include "node/clock_offset.h"
#include "node/gossip_host.h"
#include "node/http_server.h"
#include "node/metrics.h"
#include "node/policy_holder.h"
#include "node/text_stream.h"
#include "node/topology.h"
#include "node/waiters.h"
#include "node/watch_hub.h"
#include "storage/backup.h"
#include "storage/digests.h"
#include "storage/leveldb_store.h"
#include "storage/node_meta.h"

using namespace meridian;
using namespace meridian::node;

namespace {

void Log(const std::string& msg) { std::cerr << "meridiand: " << msg << std::endl; }

int Usage(const char* why) {
  if (why) std::cerr << "meridiand: " << why << "\n";
  std::cerr << "usage: meridiand --config FILE.toml --node ID [--bootstrap]\n"
               "                 [--enable-fault-injection] [--clock-offset-ms N]\n"
               "                 [--demo-dir DIR]\n"
               "  --bootstrap               take writes at once on an empty data dir (the first\n"
               "                            node of a new cluster); otherwise a new incarnation\n"
               "                            waits for an anti-entropy round with a peer\n"
               "  --enable-fault-injection  serve POST /v1/admin/faults (tests only)\n"
               "  --clock-offset-ms N       shift this node's wall clock by N ms, N a signed\n"
               "                            integer (tests only)\n"
               "  --demo-dir DIR            serve the editor (GET /demo/) from DIR (default: the\n"
               "                            source tree's demo/; '' serves none)\n";
  return 2;
}

// A signed decimal integer and nothing else.
bool ParseInt64(const std::string& text, int64_t* out) {
  if (text.empty() || text[0] == '+' || std::isspace(static_cast<unsigned char>(text[0]))) {
    return false;
  }
  try {
    size_t used = 0;
    long long v = std::stoll(text, &used, 10);
    if (used != text.size()) return false;
    *out = v;
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// A fresh incarnation: the wall clock in milliseconds with 16 random bits,
// so that a node that lost its data never reuses an earlier incarnation
// (unless its clock went back by more than its whole earlier life).
uint64_t NewIncarnation() {
  crdt::SystemClock wall;
  std::random_device rd;
  return (wall.NowMs() << 16) | (rd() & 0xffff);
}

struct Flags {
  bool fault_injection = false;
  bool bootstrap = false;
  int64_t clock_offset_ms = 0;
  std::string demo_dir = MERIDIAN_DEMO_DIR;
};

// Set by the gossip thread when a peer retired this incarnation; SIGUSR2
// then wakes the main thread's sigwait.
std::atomic<bool> g_rejoin{false};

// Renames the data dir of a retired incarnation out of the way.
Status MoveAside(const std::string& dir, const crdt::ReplicaId& old, std::string* moved_to) {
  std::string base = dir;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  base += ".retired-" + std::to_string(old.incarnation);
  std::string to = base;
  for (int i = 1; access(to.c_str(), F_OK) == 0; ++i) {
    if (i > 1000) return Status::IOError("cannot find a free name next to " + base);
    to = base + "." + std::to_string(i);
  }
  if (rename(dir.c_str(), to.c_str()) != 0) {
    return Status::IOError("cannot rename " + dir + " to " + to + ": " + std::strerror(errno));
  }
  *moved_to = to;
  return Status::OK();
}

// SIGHUP: reads the topology file again and puts its conflict policies in
// force (and tells the peers their new hash). A file that does not load
// is refused and the policies in force stay. Other changes to the file
// (regions, nodes, settings) need a restart and are ignored here.
void ReloadPolicies(const std::string& file, PolicyHolder* policies, gossip::Transport* transport) {
  Topology fresh;
  Status st = LoadTopology(file, &fresh);
  if (!st.ok()) {
    Log("SIGHUP: the topology file does not load; the policies in force stay:\n" + st.message());
    return;
  }
  policies->Set(SettlerFor(fresh));
  const std::string hash = fresh.policies.Hash();
  if (transport != nullptr) transport->SetPolicyHash(hash);
  Log("SIGHUP: reloaded " + std::to_string(fresh.policies.policies().size()) +
      " conflict policies (hash " + hash + ")");
}

// Runs the node until a stop signal (returns the exit status) or until a
// peer retired its incarnation (*rejoin: the data dir is closed, and the
// caller runs it again, which moves the data aside). `rejoined`: this run
// follows such a move.
// `secret_key`: this node's CURVE secret key (LoadSecretKey; empty when
// gossip is plaintext).
int RunNode(const Topology& topo, const NodeConfig* me, const std::string& secret_key,
            const Flags& flags, bool rejoined, const sigset_t& signals, bool* rejoin);

}  // namespace

int main(int argc, char** argv) {
  std::string config, node_id;
  bool fault_injection = false;
  bool bootstrap = false;
  int64_t clock_offset_ms = 0;
  std::string demo_dir = MERIDIAN_DEMO_DIR;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--config" || a == "--node") && i + 1 < argc) {
      (a == "--config" ? config : node_id) = argv[++i];
    } else if (a == "--enable-fault-injection") {
      fault_injection = true;
    } else if (a == "--demo-dir") {
      if (i + 1 >= argc) return Usage("--demo-dir needs a directory");
      demo_dir = argv[++i];
    } else if (a == "--bootstrap") {
      bootstrap = true;
    } else if (a == "--clock-offset-ms") {
      if (i + 1 >= argc) return Usage("--clock-offset-ms needs a value");
      std::string v = argv[++i];
      if (!ParseInt64(v, &clock_offset_ms)) {
        return Usage(("--clock-offset-ms: '" + v + "' is not an integer").c_str());
      }
    } else if (a == "--help" || a == "-h") {
      Usage(nullptr);
      return 0;
    } else {
      return Usage(("unknown argument '" + a + "'").c_str());
    }
  }
  if (config.empty() || node_id.empty()) return Usage("--config and --node are required");
  Flags flags;
  flags.fault_injection = fault_injection;
  flags.bootstrap = bootstrap;
  flags.clock_offset_ms = clock_offset_ms;
  flags.demo_dir = demo_dir;

  Topology topo;
  Status st = LoadTopology(config, &topo);
  if (!st.ok()) {
    std::cerr << st.message() << "\n";
    return 1;
  }
  const NodeConfig* me = topo.FindNode(node_id);
  if (me == nullptr) {
    std::cerr << config << ": no node with id '" << node_id << "'\n";
    return 1;
  }
  st = CheckDataDir(me->data_dir);
  if (!st.ok()) {
    std::cerr << topo.file << ":" << me->data_dir_line << ": node '" << node_id
              << "': " << st.message() << "\n";
    return 1;
  }
  std::string secret_key;
  st = LoadSecretKey(topo, *me, &secret_key);
  if (!st.ok()) {
    std::cerr << st.message() << "\n";
    return 1;
  }
  if (me->api_tls()) {
    // A certificate or key that does not load stops the node here, at its
    // line, before the data dir is opened.
    bool bad_key = false;
    st = CheckTlsCredentials({me->tls_cert_pem, me->tls_key_pem}, &bad_key);
    if (!st.ok()) {
      std::cerr << topo.file << ":" << (bad_key ? me->tls_key_line : me->tls_cert_line)
                << ": node '" << node_id << "': "
                << (bad_key ? "tls_key '" + me->tls_key : "tls_cert '" + me->tls_cert)
                << "': " << st.message() << "\n";
      return 1;
    }
  }

  // Signals are taken by sigwait in this thread only.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGUSR2);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  bool rejoined = false;
  for (;;) {
    bool rejoin = false;
    const int rc = RunNode(topo, me, secret_key, flags, rejoined, signals, &rejoin);
    if (!rejoin) return rc;
    rejoined = true;
  }
}

namespace {

int RunNode(const Topology& topo, const NodeConfig* me, const std::string& secret_key,
            const Flags& flags, bool rejoined, const sigset_t& signals, bool* rejoin) {
  *rejoin = false;
  const std::string& node_id = me->id;
  bool bootstrap = flags.bootstrap && !rejoined;
  const bool fault_injection = flags.fault_injection;
  const int64_t clock_offset_ms = flags.clock_offset_ms;
  Status st;

  storage::StoreOptions options;
  options.sync = me->sync;
  std::unique_ptr<storage::Store> store;
  st = storage::Store::Open(me->data_dir, options, &store);
  if (!st.ok()) {
    Log("cannot open data dir: " + st.ToString());
    return 1;
  }
  {
    // A retired incarnation (this run follows a rejoin, or one was cut
    // short): its data goes aside, and the node starts on an empty dir.
    storage::NodeMeta old;
    bool empty = false;
    st = storage::LoadNodeMeta(*store, node_id, &old, &empty);
    if (st.ok() && !empty && (old.retired || rejoined)) {
      store.reset();
      std::string moved_to;
      st = MoveAside(me->data_dir, old.replica, &moved_to);
      if (!st.ok()) {
        Log("cannot move the retired incarnation's data aside: " + st.ToString());
        return 1;
      }
      Log("incarnation " + old.replica.ToString() +
          " was retired by a peer (away longer than the retention horizon): its data dir is "
          "now " + moved_to + "; starting over as a new incarnation");
      bootstrap = false;
      st = storage::Store::Open(me->data_dir, options, &store);
      if (!st.ok()) {
        Log("cannot open data dir: " + st.ToString());
        return 1;
      }
    }
  }
  // A data dir written before the anti-entropy digest index existed gets
  // it now (a no-op otherwise), before the metadata loads the sums from it.
  const auto index_start = std::chrono::steady_clock::now();
  // The index is also built again when the placement scopes differ from
  // those it was built under (a restored backup is indexed without them).
  storage::DigestIndexReport index;
  storage::DigestScoping scoping;
  scoping.name = topo.placement.ScopesName();
  scoping.scope_of = [&topo](std::string_view key) { return topo.placement.ScopeOf(key); };
  st = storage::EnsureDigestIndex(store.get(), &index, scoping);
  if (!st.ok()) {
    Log("cannot build the digest index: " + st.ToString());
    return 1;
  }
  // (A fresh data dir "builds" an empty index: not worth a line.)
  if (index.built && (index.keys > 0 || index.stale_removed > 0)) {
    Log("built the digest index of " + std::to_string(index.keys) + " keys in " +
        std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - index_start)
                           .count()) +
        " ms" +
        (index.rescoped ? " (its placement scopes changed)"
         : index.stale_removed > 0
             ? " (after removing " + std::to_string(index.stale_removed) +
                   " records of an unfinished build)"
             : std::string()));
  }
  storage::NodeMeta meta;
  bool fresh = false;
  st = storage::LoadNodeMeta(*store, node_id, &meta, &fresh);
  if (!st.ok()) {
    Log(st.ToString());
    return 1;
  }
  // A fresh incarnation must complete an anti-entropy round with a peer
  // before it takes writes (DESIGN.md §3), unless it starts a new cluster
  // (--bootstrap) or has no peers. The mark is stored, so a restart before
  // that round still waits.
  const bool bootstraps_from_peers = topo.AllNodes().size() > 1;
  if (fresh) {
    // A data dir `meridianctl restore` filled holds states but no identity
    // (storage/backup.h): it starts as a new incarnation like a wiped one.
    storage::BackupHeader from;
    bool restored = false;
    st = storage::ReadRestoredMarker(*store, &from, &restored);
    if (!st.ok()) {
      Log("cannot read the restored marker: " + st.ToString());
      return 1;
    }
    if (restored && from.cluster != topo.cluster_name) {
      Log("data dir " + me->data_dir + " was restored from a backup of cluster '" + from.cluster +
          "', not of this cluster ('" + topo.cluster_name + "'); refusing to start");
      return 1;
    }
    if (restored) {
      Log("data dir restored from a backup of node " + from.node + " (incarnation " +
          std::to_string(from.incarnation) + ", snapshot at " + std::to_string(from.snapshot_ms) +
          " ms): " + std::to_string(meta.key_count) + " keys; its old identity is gone");
    }
    meta.replica = crdt::ReplicaId{node_id, NewIncarnation()};
    meta.bootstrap_pending = bootstraps_from_peers && !bootstrap;
    storage::WriteBatch batch;
    storage::InitIdentity(meta.replica, &batch);
    storage::PutBootstrapPending(meta.bootstrap_pending, &batch);
    st = store->Write(&batch);
    if (!st.ok()) {
      Log("cannot record the new identity: " + st.ToString());
      return 1;
    }
    Log(std::string(restored ? "restored" : "empty") + " data dir: new incarnation " +
        meta.replica.ToString() +
        (meta.bootstrap_pending
             ? "; refusing writes (503 bootstrapping) until an anti-entropy round with a peer "
               "completes"
             : (bootstrap ? " (--bootstrap: the first node of a new cluster)" : "")));
  } else if (meta.bootstrap_pending && (bootstrap || !bootstraps_from_peers)) {
    storage::WriteBatch batch;
    storage::PutBootstrapPending(false, &batch);
    st = store->Write(&batch);
    if (!st.ok()) {
      Log("cannot clear the bootstrap mark: " + st.ToString());
      return 1;
    }
    meta.bootstrap_pending = false;
    Log(bootstrap ? "--bootstrap: this incarnation takes writes without a first anti-entropy round"
                  : "no peers to bootstrap from: this incarnation takes writes without an "
                    "anti-entropy round");
  } else if (meta.bootstrap_pending) {
    Log("this incarnation has not bootstrapped yet: refusing writes (503 bootstrapping) until an "
        "anti-entropy round with a peer completes");
  }

  crdt::SystemClock system_clock;
  OffsetClock wall(&system_clock, clock_offset_ms);
  if (clock_offset_ms != 0) {
    Log("test only: wall clock shifted by " + std::to_string(clock_offset_ms) + " ms");
  }
  if (bootstraps_from_peers && meta.last_contact_ms != 0 &&
      wall.NowMs() > meta.last_contact_ms + topo.retention_horizon_ms) {
    Log("no two-way contact with any peer for " +
        std::to_string(wall.NowMs() - meta.last_contact_ms) +
        " ms, longer than the retention horizon (" + std::to_string(topo.retention_horizon_ms) +
        " ms): peers may have retired this incarnation; refusing writes (503 beyond_horizon) "
        "until a peer answers, and rejoining as a new incarnation if one retired it");
  }
  if (fault_injection) Log("test only: fault injection enabled (POST /v1/admin/faults)");
  crdt::HybridClock clock(&wall, topo.max_clock_offset_ms);
  clock.Restore(meta.hlc_bound);

  Metrics metrics;
  WatchHub watch;
  Applier applier(store.get(), &clock, meta);
  PolicyHolder policies(SettlerFor(topo));
  applier.SetAuditPredicate([&policies](const std::string& key) { return policies.Audited(key); });
  if (!topo.policies.empty()) {
    Log("conflict policies: " + std::to_string(topo.policies.policies().size()) + " (hash " +
        topo.policies.Hash() + ")");
  }
  if (topo.tokens.empty()) {
    Log("no token_file: the API is open (development)");
  } else {
    std::string names;
    for (const TokenSpec& t : topo.tokens) {
      names += (names.empty() ? "" : ", ") + t.name + " (" + RoleName(t.role) + ")";
    }
    Log("API tokens from " + topo.token_file + ": " + names);
  }
  if (me->api_tls()) {
    Log("API over TLS (https, TLS 1.2 or newer) with certificate " + me->tls_cert);
  } else {
    Log("no tls_cert: the API is plain http (development)");
  }
  Log(topo.curve() ? "gossip: curve (CurveZMQ; only the topology's public keys may connect)"
                   : "gossip: plaintext (no keys in the topology; development only)");
  Waiters waiters;
  GossipHost gossip(topo, *me, store.get(), &applier, &wall, &waiters, Log);
  gossip.set_must_bootstrap(meta.bootstrap_pending);
  gossip.set_horizon_state(meta.expired, meta.last_contact_ms);
  gossip.set_secret_key(secret_key);
  gossip.set_on_rejoin([] {
    g_rejoin.store(true);
    kill(getpid(), SIGUSR2);
  });
  // Before the applier starts: it sets the applier's listeners.
  st = gossip.Start();
  if (!st.ok()) {
    Log(st.ToString());
    return 1;
  }
  ApiContext ctx;
  ctx.topology = &topo;
  ctx.node = me;
  ctx.store = store.get();
  ctx.applier = &applier;
  ctx.watch = &watch;
  ctx.metrics = &metrics;
  ctx.started = std::chrono::steady_clock::now();
  ctx.fault_injection = fault_injection;
  ctx.waiters = &waiters;
  ctx.transport = gossip.transport();
  ctx.policies = &policies;
  ctx.demo.dir = flags.demo_dir;
  ctx.demo.pako = MERIDIAN_PAKO_PATH;
  Api api(ctx);
  TextStreamContext streams_ctx;
  streams_ctx.topology = &topo;
  streams_ctx.node = me;
  streams_ctx.store = store.get();
  streams_ctx.applier = &applier;
  streams_ctx.fault_injection = fault_injection;
  streams_ctx.policy_type = [&api](Operation* op, ApiError* err) { return api.PolicyTypeOf(op, err); };
  streams_ctx.writable = [&api](ApiError* err) { return api.WritableNow(err); };
  TextStreamHub text_streams(streams_ctx);
  api.set_text_streams(&text_streams);
  applier.SetChangeListener(
      [&api](const std::string& key, const std::string& env) { api.PublishChange(key, env); });
  // Each key's writes are logged, digested and replicated in its placement
  // scope (DESIGN.md §4).
  applier.SetScopeOf([placement = topo.placement](const std::string& key) {
    return placement.ScopeOf(key);
  });
  applier.Start();

  HttpServerOptions http;
  http.host = me->http_host;
  http.port = me->http_port;
  http.body_limit = topo.max_body_bytes;
  if (me->api_tls()) {
    http.tls = {me->tls_cert_pem, me->tls_key_pem};
    http.on_tls_failure = [&metrics] { metrics.CountTlsHandshakeFailure(); };
  }
  HttpServer server(http, [&api](HttpRequest&& req, Reply reply) {
    api.Handle(std::move(req), std::move(reply));
  });
  st = server.Start();
  if (!st.ok()) {
    Log(st.ToString());
    waiters.Stop();
    gossip.Stop();
    applier.Stop();
    return 1;
  }
  Log("node " + node_id + " (" + meta.replica.ToString() + ", region " + me->region +
      ") serving " + (me->api_tls() ? "https://" : "http://") + me->http_host + ":" +
      std::to_string(server.port()) +
      (gossip.transport() ? ", gossip " + me->gossip : std::string(", no peers")) +
      (me->sync ? "" : " with sync = false"));

  int sig = 0;
  for (;;) {
    sigwait(&signals, &sig);
    if (sig == SIGHUP) {
      ReloadPolicies(topo.file, &policies, gossip.transport());
      continue;
    }
    // SIGUSR2 from anyone but the rejoin hook is ignored.
    if (sig != SIGUSR2 || g_rejoin.exchange(false)) break;
  }
  if (sig == SIGUSR2) {
    *rejoin = true;
    Log("a peer retired incarnation " + meta.replica.ToString() + ": stopping it to rejoin");
  } else {
    Log(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ", stopping");
  }
  auto stop_start = std::chrono::steady_clock::now();
  waiters.Stop();
  server.Stop();
  gossip.Stop();
  applier.Stop();
  store.reset();
  Log("stopped cleanly in " +
      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - stop_start)
                         .count()) +
      " ms");
  return 0;
}

}  // namespace
