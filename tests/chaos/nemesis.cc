#include "tests/chaos/nemesis.h"

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <thread>
#include <utility>

#include "node/http_client.h"

namespace meridian::chaos {

namespace {

using json = nlohmann::json;

// The failure detector calls a peer down after this many missed heartbeats
// (DESIGN.md §4).
constexpr int kDownHeartbeats = 10;

std::string Seconds(std::chrono::milliseconds d) {
  std::ostringstream s;
  s.precision(1);
  s << std::fixed << d.count() / 1000.0 << " s";
  return s.str();
}

}  // namespace

Nemesis::Nemesis(testing::ClusterProcess* cluster, Load* load, uint64_t seed,
                 std::vector<std::string> base_args, Clock::time_point t0, std::ostream* log)
    : cluster_(cluster),
      load_(load),
      rng_(seed * 7919u + 17u),
      base_args_(std::move(base_args)),
      t0_(t0),
      log_(log),
      paused_(cluster->size(), false) {}

int64_t Nemesis::Ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0_).count();
}

void Nemesis::Say(const std::string& what) {
  std::ostringstream s;
  s.precision(1);
  s << std::fixed << "chaos: t=" << Ms() / 1000.0 << "s " << what << "\n";
  *log_ << s.str() << std::flush;
}

bool Nemesis::Hold(std::chrono::milliseconds d, Clock::time_point until) {
  const auto end = Clock::now() + d;
  while (Clock::now() < end) {
    if (Clock::now() >= until) return false;
    std::this_thread::sleep_for(std::min<Clock::duration>(end - Clock::now(),
                                                          std::chrono::milliseconds(50)));
  }
  return true;
}

std::chrono::milliseconds Nemesis::Between(int lo_ms, int hi_ms) {
  return std::chrono::milliseconds(lo_ms + static_cast<int>(rng_() % (hi_ms - lo_ms + 1)));
}

int Nemesis::PickNode() { return static_cast<int>(rng_() % cluster_->size()); }

bool Nemesis::PostFaults(int node, const json& body) {
  std::unique_ptr<node::HttpClient> http;
  if (!node::HttpClient::Create(cluster_->url(node), &http).ok()) return false;
  http->set_timeout(std::chrono::milliseconds(5000));
  // A busy node may be slow to answer: a few tries.
  std::string why;
  for (int attempt = 0; attempt < 3; ++attempt) {
    node::ClientResponse res;
    Status s = http->Request("POST", "/v1/admin/faults", body.dump(),
                             {{"Content-Type", "application/json"}}, &res);
    if (s.ok() && res.status == 200) return true;
    why = s.ok() ? "status " + std::to_string(res.status) + " " + res.body : s.message();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  problems_.push_back("POST /v1/admin/faults " + body.dump() + " to " + cluster_->node_id(node) +
                      " failed: " + why);
  return false;
}

bool Nemesis::SetDrops(const std::vector<std::vector<int>>& drops) {
  bool ok = true;
  for (int i = 0; i < cluster_->size(); ++i) {
    json ids = json::array();
    for (int j : drops[i]) ids.push_back(cluster_->node_id(j));
    ok = PostFaults(i, json{{"drop", ids}}) && ok;
  }
  return ok;
}

bool Nemesis::ClearFaults() {
  bool ok = true;
  for (int i = 0; i < cluster_->size(); ++i) {
    if (cluster_->running(i)) {
      ok = PostFaults(i, json{{"drop", json::array()}, {"delay_ms", json::object()}}) && ok;
    }
  }
  return ok;
}

bool Nemesis::Restart(int node, int64_t offset_ms) {
  std::vector<std::string> args = base_args_;
  if (offset_ms != 0) {
    args.push_back("--clock-offset-ms");
    args.push_back(std::to_string(offset_ms));
  }
  cluster_->SetNodeArgs(node, args);
  if (cluster_->running(node) && !cluster_->StopNode(node)) {
    Say(cluster_->node_id(node) + " did not stop cleanly");  // killed by StopNode
  }
  if (!cluster_->StartNode(node)) {
    problems_.push_back(cluster_->node_id(node) + " did not start again");
    return false;
  }
  return true;
}

bool Nemesis::StatusOf(int node, json* out) {
  std::unique_ptr<node::HttpClient> http;
  if (!node::HttpClient::Create(cluster_->url(node), &http).ok()) return false;
  http->set_timeout(std::chrono::milliseconds(5000));
  node::ClientResponse res;
  if (!http->Request("GET", "/v1/status", "", {}, &res).ok() || res.status != 200) return false;
  *out = json::parse(res.body, nullptr, false);
  return out->is_object();
}

bool Nemesis::Run(Clock::time_point until) {
  while (Clock::now() < until && problems_.empty()) {
    if (deck_.empty()) {
      deck_ = {0, 1, 2, 3, 4, 5};
      std::shuffle(deck_.begin(), deck_.end(), rng_);
    }
    const int kind = deck_.back();
    deck_.pop_back();
    switch (kind) {
      case 0: Kill(until); break;
      case 1: Pause(until); break;
      case 2: Partition(until); break;
      case 3: Skew(until); break;
      case 4: Wipe(); break;
      default: Delay(until); break;
    }
    if (Clock::now() >= until) break;
    if (pending_heal_) {
      std::function<void()> heal = std::move(pending_heal_);
      pending_heal_ = nullptr;
      heal();
    }
    Hold(Between(1000, 3000), until);
  }
  return problems_.empty();
}

bool Nemesis::Heal() {
  if (pending_heal_) {
    std::function<void()> heal = std::move(pending_heal_);
    pending_heal_ = nullptr;
    heal();
  }
  for (int i = 0; i < cluster_->size(); ++i) {
    if (paused_[i] && cluster_->running(i)) ::kill(cluster_->pid(i), SIGCONT);
    paused_[i] = false;
    if (!cluster_->running(i)) Restart(i, 0);
    load_->Enable(i, true);
  }
  ClearFaults();
  Say("healed: every node running on its own clock, every link whole");
  return problems_.empty();
}

void Nemesis::Kill(Clock::time_point until) {
  ++counts_.kill;
  const int n = PickNode();
  const auto down = Between(1000, 4000);
  Say("kill " + cluster_->node_id(n) + " (SIGKILL), restart in " + Seconds(down));
  cluster_->KillNode(n);
  pending_heal_ = [this, n] {
    if (cluster_->StartNode(n)) {
      Say("restarted " + cluster_->node_id(n));
    } else {
      problems_.push_back(cluster_->node_id(n) + " did not start again after SIGKILL");
    }
  };
  Hold(down, until);
}

void Nemesis::Pause(Clock::time_point until) {
  ++counts_.pause;
  const int n = PickNode();
  const int down_ms =
      static_cast<int>(cluster_->options().heartbeat_interval_ms) * kDownHeartbeats;
  const auto hold = Between(down_ms + 500, down_ms + 3000);
  Say("pause " + cluster_->node_id(n) + " (SIGSTOP) for " + Seconds(hold));
  ::kill(cluster_->pid(n), SIGSTOP);
  paused_[n] = true;
  pending_heal_ = [this, n] {
    ::kill(cluster_->pid(n), SIGCONT);
    paused_[n] = false;
    Say("resumed " + cluster_->node_id(n) + " (SIGCONT)");
  };
  Hold(hold, until);
}

void Nemesis::Partition(Clock::time_point until) {
  ++counts_.partition;
  const int size = cluster_->size();
  std::vector<std::vector<int>> drops(size);
  // Cuts every link between a node of `a` and a node of `b`.
  auto cut = [&](const std::vector<int>& a, const std::vector<int>& b) {
    for (int x : a) {
      for (int y : b) {
        drops[x].push_back(y);
        drops[y].push_back(x);
      }
    }
  };
  std::vector<int> all(size);
  for (int i = 0; i < size; ++i) all[i] = i;
  std::string what;
  switch (rng_() % 4) {
    case 0: {  // isolate one node
      const int n = PickNode();
      std::vector<int> rest;
      for (int i : all) {
        if (i != n) rest.push_back(i);
      }
      cut({n}, rest);
      what = "isolate " + cluster_->node_id(n);
      break;
    }
    case 1: {  // split regions: one against the others, or each alone
      const int regions = cluster_->regions();
      if (rng_() % 2 == 0 || regions < 3) {
        const int r = static_cast<int>(rng_() % regions);
        std::vector<int> in = cluster_->NodesOfRegion(r), out;
        for (int i : all) {
          if (cluster_->region_index(i) != r) out.push_back(i);
        }
        cut(in, out);
        what = "split region " + cluster_->region(in.front()) + " from the others";
      } else {
        for (int r = 0; r < regions; ++r) {
          for (int q = r + 1; q < regions; ++q) cut(cluster_->NodesOfRegion(r), cluster_->NodesOfRegion(q));
        }
        what = "split every region from the others";
      }
      break;
    }
    case 2: {  // bridge: two sides that both reach one node
      std::vector<int> order = all;
      std::shuffle(order.begin(), order.end(), rng_);
      const int bridge = order.back();
      order.pop_back();
      std::vector<int> a(order.begin(), order.begin() + order.size() / 2);
      std::vector<int> b(order.begin() + order.size() / 2, order.end());
      cut(a, b);
      what = "bridge: two sides that reach each other only through " + cluster_->node_id(bridge);
      break;
    }
    default: {  // ring: each node reaches only its two neighbours
      std::vector<int> order = all;
      std::shuffle(order.begin(), order.end(), rng_);
      for (int k = 0; k < size; ++k) {
        const int x = order[k];
        const int prev = order[(k + size - 1) % size], next = order[(k + 1) % size];
        for (int y : all) {
          if (y != x && y != prev && y != next) drops[x].push_back(y);
        }
      }
      what = "ring:";
      for (int x : order) what += " " + cluster_->node_id(x);
      break;
    }
  }
  for (auto& d : drops) {
    std::sort(d.begin(), d.end());
    d.erase(std::unique(d.begin(), d.end()), d.end());
  }
  const auto hold = Between(3000, 8000);
  Say("partition, " + what + ", for " + Seconds(hold));
  SetDrops(drops);
  pending_heal_ = [this] {
    ClearFaults();
    Say("partition healed");
  };
  Hold(hold, until);
}

void Nemesis::Skew(Clock::time_point until) {
  ++counts_.skew;
  const int n = PickNode();
  const int64_t max = static_cast<int64_t>(cluster_->options().max_clock_offset_ms);
  const bool beyond = rng_() % 2 == 0;
  int64_t offset = beyond ? max * 3 / 2 + static_cast<int64_t>(rng_() % (max * 5 / 2 + 1))
                          : max / 10 + static_cast<int64_t>(rng_() % (max * 7 / 10 + 1));
  if (rng_() % 2 == 0) offset = -offset;
  const auto hold = Between(4000, 8000);
  Say("skew " + cluster_->node_id(n) + " by " + std::to_string(offset) + " ms (" +
      (beyond ? "beyond" : "within") + " max_clock_offset_ms " + std::to_string(max) + ") for " +
      Seconds(hold));
  if (!Restart(n, offset)) return;
  // The window opens once the shifted process answers (the one before it
  // may still have acknowledged operations sent during the restart).
  SkewWindow w;
  w.node = n;
  w.offset_ms = offset;
  w.beyond = beyond;
  w.from_ms = Ms();
  skews_.push_back(w);
  const size_t index = skews_.size() - 1;
  pending_heal_ = [this, n, index] {
    // The window ends when the restart on the true clock begins.
    skews_[index].to_ms = Ms();
    if (Restart(n, 0)) Say(cluster_->node_id(n) + " back on its own clock");
  };
  Hold(hold, until);
}

void Nemesis::Wipe() {
  ++counts_.wipe;
  const int n = PickNode();
  const std::string id = cluster_->node_id(n);
  Say("wipe " + id + ": load to it stopped, waiting for its deltas to be acknowledged");
  load_->Enable(n, false);
  if (!load_->WaitIdle(n, std::chrono::seconds(30))) {
    problems_.push_back("wipe: the client of " + id + " did not finish its operation in 30 s");
    load_->Enable(n, true);
    return;
  }
  // Until every peer has acknowledged every delta the node wrote, what it
  // acknowledged may exist nowhere else.
  json status;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  bool drained = false;
  std::string last;
  while (Clock::now() < deadline) {
    if (StatusOf(n, &status) && status["peers"].is_array()) {
      drained = true;
      last.clear();
      for (const json& p : status["peers"]) {
        if (p.value("unacked_deltas", uint64_t{1}) != 0) {
          drained = false;
          last += " " + p.value("node", std::string("?")) + ":" +
                  std::to_string(p.value("unacked_deltas", uint64_t{0}));
        }
      }
      if (drained) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!drained) {
    problems_.push_back("wipe: " + id + " still had unacknowledged deltas after 60 s:" + last);
    load_->Enable(n, true);
    return;
  }
  const std::string before = status.value("replica", std::string());
  cluster_->KillNode(n);
  std::error_code ec;
  std::filesystem::remove_all(cluster_->data_dir(n), ec);
  if (ec) {
    problems_.push_back("wipe: cannot remove " + cluster_->data_dir(n) + ": " + ec.message());
    return;
  }
  if (!cluster_->StartNode(n)) {
    problems_.push_back(id + " did not start again after its wipe");
    return;
  }
  json after;
  if (!StatusOf(n, &after) || after.value("replica", std::string()) == before) {
    problems_.push_back("wipe: " + id + " came back as " + after.value("replica", std::string("?")) +
                        ", not a new incarnation of " + before);
  } else {
    Say(id + " wiped and restarted: " + before + " -> " + after.value("replica", std::string()));
  }
  load_->Enable(n, true);
}

void Nemesis::Delay(Clock::time_point until) {
  ++counts_.delay;
  const int size = cluster_->size();
  const int links = 1 + static_cast<int>(rng_() % 3);
  std::vector<json> delays(size, json::object());
  std::string what;
  for (int k = 0; k < links; ++k) {
    const int a = PickNode();
    int b = PickNode();
    if (b == a) b = (a + 1) % size;
    const int ms = 50 + static_cast<int>(rng_() % 451);
    // Set on one end: a delay holds the link's messages both ways.
    delays[a][cluster_->node_id(b)] = ms;
    what += " " + cluster_->node_id(a) + "-" + cluster_->node_id(b) + ":" + std::to_string(ms) + "ms";
  }
  const auto hold = Between(3000, 8000);
  Say("delay" + what + " for " + Seconds(hold));
  for (int i = 0; i < size; ++i) {
    if (!delays[i].empty()) PostFaults(i, json{{"delay_ms", delays[i]}});
  }
  pending_heal_ = [this] {
    ClearFaults();
    Say("delays removed");
  };
  Hold(hold, until);
}

}  // namespace meridian::chaos
