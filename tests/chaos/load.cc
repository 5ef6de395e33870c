#include "tests/chaos/load.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>
#include <utility>

#include "node/http_client.h"

namespace meridian::chaos {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// Relative frequencies of the operations.
struct Weighted {
  OpKind kind;
  int weight;
};
constexpr Weighted kMix[] = {
    {OpKind::kRegister, 6},   {OpKind::kMvRegister, 4},    {OpKind::kCounter, 6},
    {OpKind::kSetAdd, 6},     {OpKind::kSetRemove, 2},     {OpKind::kMapCounter, 2},
    {OpKind::kMapSetAdd, 2},  {OpKind::kMapSetRemove, 1},  {OpKind::kMapRegister, 2},
    {OpKind::kTextInsert, 6}, {OpKind::kTextDelete, 2},
};

// Elements this client added and saw acknowledged, for its removes.
constexpr size_t kRemembered = 256;

// What one HTTP exchange came to.
struct Reply {
  Outcome outcome = Outcome::kFailed;
  int status = 0;
  json body;
  std::string error;
};

}  // namespace

struct Load::Client {
  int index = 0;
  std::string url;
  std::unique_ptr<node::HttpClient> http;
  std::mt19937_64 rng;
  uint64_t next_id = 1;
  std::atomic<bool> enabled{true};
  std::atomic<bool> busy{false};
  std::thread thread;
  std::vector<Op> ops;  // written by the thread only; read after Stop
  // (key, element) of acknowledged adds not yet removed by this client.
  std::vector<std::pair<std::string, std::string>> set_adds, map_adds;

  Reply Send(const std::string& method, const std::string& target, const json* body) {
    Reply r;
    if (!http) {
      r.error = "no client for " + url;
      return r;
    }
    node::ClientResponse res;
    std::vector<std::pair<std::string, std::string>> headers;
    if (body != nullptr) headers.emplace_back("Content-Type", "application/json");
    Status s = http->Request(method, target, body != nullptr ? body->dump() : std::string(),
                             headers, &res);
    if (!s.ok()) {
      // Not connected: nothing was sent. Anything else: it may have been.
      r.outcome = s.code() == Status::Code::kUnavailable ? Outcome::kFailed
                                                          : Outcome::kIndeterminate;
      r.error = s.message();
      return r;
    }
    r.status = res.status;
    r.body = json::parse(res.body, nullptr, /*allow_exceptions=*/false);
    if (res.status >= 200 && res.status < 300) {
      r.outcome = Outcome::kAcknowledged;
    } else {
      r.outcome = Outcome::kFailed;
      r.error = r.body.is_object() ? r.body.value("error", "") : std::string();
      if (r.error.empty()) r.error = "status " + std::to_string(res.status);
    }
    return r;
  }
};

Load::Load(LoadOptions options, Clock::time_point t0) : options_(std::move(options)), t0_(t0) {
  for (size_t i = 0; i < options_.urls.size(); ++i) {
    auto c = std::make_unique<Client>();
    c->index = static_cast<int>(i);
    c->url = options_.urls[i];
    c->rng.seed(options_.seed * 1000003u + i);
    if (node::HttpClient::Create(c->url, &c->http).ok()) {
      c->http->set_timeout(options_.request_timeout);
    } else {
      c->http.reset();  // every op of this client fails, saying why
    }
    clients_.push_back(std::move(c));
  }
}

Load::~Load() { Stop(); }

void Load::Start() {
  for (auto& c : clients_) {
    Client* p = c.get();
    c->thread = std::thread([this, p] { Run(p); });
  }
}

void Load::Stop() {
  stop_ = true;
  for (auto& c : clients_) {
    if (c->thread.joinable()) c->thread.join();
  }
}

void Load::Enable(int node, bool on) { clients_.at(node)->enabled = on; }

bool Load::WaitIdle(int node, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (clients_.at(node)->busy) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

std::vector<Op> Load::History() const {
  std::vector<Op> all;
  for (const auto& c : clients_) all.insert(all.end(), c->ops.begin(), c->ops.end());
  return all;
}

void Load::Run(Client* c) {
  int total_weight = 0;
  for (const Weighted& w : kMix) total_weight += w.weight;
  const auto period = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(1.0 / std::max(options_.ops_per_second, 0.1)));
  auto next = Clock::now();
  auto ms_since_start = [this] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0_).count();
  };

  while (!stop_) {
    c->busy = true;
    if (!c->enabled) {
      c->busy = false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      next = Clock::now();
      continue;
    }
    int pick = static_cast<int>(c->rng() % total_weight);
    OpKind kind = kMix[0].kind;
    for (const Weighted& w : kMix) {
      if (pick < w.weight) {
        kind = w.kind;
        break;
      }
      pick -= w.weight;
    }
    if (kind == OpKind::kSetRemove && c->set_adds.empty()) kind = OpKind::kSetAdd;
    if (kind == OpKind::kMapSetRemove && c->map_adds.empty()) kind = OpKind::kMapSetAdd;

    Op op;
    op.client = c->index;
    op.id = c->next_id++;
    op.node = c->index;
    op.kind = kind;
    const int64_t generation = ms_since_start() / std::max<int64_t>(options_.generation.count(), 1);
    op.key = std::string(KeyPrefix(kind)) + std::to_string(generation) + "." +
             std::to_string(c->rng() % std::max(options_.keys_per_generation, 1));
    const std::string tag = "c" + std::to_string(c->index) + "." + std::to_string(op.id);
    op.start_ms = ms_since_start();

    auto take = [&](std::vector<std::pair<std::string, std::string>>* from) {
      size_t i = c->rng() % from->size();
      std::swap((*from)[i], from->back());
      op.key = from->back().first;
      op.arg = from->back().second;
      from->pop_back();
    };
    // An acknowledged add, kept for a later remove.
    Reply r;
    auto remember = [&](std::vector<std::pair<std::string, std::string>>* to) {
      if (r.outcome != Outcome::kAcknowledged) return;
      to->emplace_back(op.key, op.arg);
      if (to->size() > kRemembered) to->erase(to->begin());
    };
    const std::string key_path = node::EncodeKeyForPath(op.key);
    bool sent = true;
    switch (kind) {
      case OpKind::kRegister:
      case OpKind::kMvRegister: {
        op.arg = tag;
        json body = op.arg;
        r = c->Send("PUT", "/v1/kv/" + key_path, &body);
        if (r.outcome == Outcome::kAcknowledged && r.body.is_object()) {
          op.hlc = r.body.value("hlc", uint64_t{0});
        }
        break;
      }
      case OpKind::kCounter: {
        op.amount = 1 + static_cast<int64_t>(c->rng() % 5);
        json body = {{"add", op.amount}};
        r = c->Send("POST", "/v1/counter/" + key_path, &body);
        break;
      }
      case OpKind::kSetAdd:
      case OpKind::kSetRemove: {
        if (kind == OpKind::kSetRemove) {
          take(&c->set_adds);
        } else {
          op.arg = tag;
        }
        json body = {{kind == OpKind::kSetAdd ? "add" : "remove", json::array({op.arg})}};
        r = c->Send("POST", "/v1/set/" + node::EncodeKeyForPath(op.key), &body);
        if (kind == OpKind::kSetAdd) remember(&c->set_adds);
        break;
      }
      case OpKind::kMapCounter:
      case OpKind::kMapSetAdd:
      case OpKind::kMapSetRemove:
      case OpKind::kMapRegister: {
        json field;
        const char* name = "";
        if (kind == OpKind::kMapCounter) {
          op.amount = 1 + static_cast<int64_t>(c->rng() % 5);
          name = "hits";
          field = {{"type", "counter"}, {"add", op.amount}};
        } else if (kind == OpKind::kMapRegister) {
          op.arg = tag;
          name = "owner";
          field = {{"type", "register"}, {"set", op.arg}};
        } else {
          if (kind == OpKind::kMapSetRemove) {
            take(&c->map_adds);
          } else {
            op.arg = tag;
          }
          name = "tags";
          field = {{"type", "set"},
                   {kind == OpKind::kMapSetAdd ? "sadd" : "srem", json::array({op.arg})}};
        }
        json body = {{"update", {{name, field}}}};
        r = c->Send("POST", "/v1/map/" + node::EncodeKeyForPath(op.key), &body);
        if (kind == OpKind::kMapSetAdd) remember(&c->map_adds);
        break;
      }
      case OpKind::kTextInsert:
      case OpKind::kTextDelete: {
        // Read the document here, then edit at the version read.
        Reply read = c->Send("GET", "/v1/text/" + key_path, nullptr);
        if (read.outcome != Outcome::kAcknowledged || !read.body.is_object() ||
            !read.body["value"].is_string() || !read.body["version"].is_string()) {
          op.kind = OpKind::kTextInsert;
          op.arg = "[" + tag + "]";
          op.outcome = Outcome::kFailed;  // nothing was written
          op.http_status = read.status;
          op.error = "read before the edit: " + (read.error.empty() ? "bad reply" : read.error);
          sent = false;
          break;
        }
        const std::string text = read.body["value"].get<std::string>();
        // Marker boundaries: 0 and after each ']' (the text is ASCII, so
        // bytes are code points).
        std::vector<std::pair<size_t, size_t>> markers;  // [start, end)
        for (size_t i = 0; i < text.size();) {
          size_t close = text.find(']', i);
          if (close == std::string::npos) break;
          markers.emplace_back(i, close + 1);
          i = close + 1;
        }
        json edit;
        if (kind == OpKind::kTextDelete && !markers.empty()) {
          auto [from, to] = markers[c->rng() % markers.size()];
          op.arg = text.substr(from, to - from);
          edit = {{"delete", {{"pos", from}, {"len", to - from}}}};
        } else {
          op.kind = OpKind::kTextInsert;
          op.arg = "[" + tag + "]";
          size_t slot = c->rng() % (markers.size() + 1);
          size_t pos = slot == 0 ? 0 : markers[slot - 1].second;
          edit = {{"insert", {{"pos", pos}, {"text", op.arg}}}};
        }
        json body = {{"version", read.body["version"]}, {"ops", json::array({edit})}};
        r = c->Send("POST", "/v1/text/" + key_path, &body);
        break;
      }
    }
    if (sent) {
      op.outcome = r.outcome;
      op.http_status = r.status;
      op.error = r.error;
    }
    op.end_ms = ms_since_start();
    ++attempted_;
    if (op.outcome == Outcome::kAcknowledged) ++acknowledged_;
    c->ops.push_back(std::move(op));
    c->busy = false;

    next += period;
    const auto now = Clock::now();
    if (next < now - std::chrono::seconds(1)) next = now;  // no burst after a stall
    while (!stop_ && Clock::now() < next) {
      std::this_thread::sleep_for(std::min<Clock::duration>(next - Clock::now(),
                                                            std::chrono::milliseconds(50)));
    }
  }
  c->busy = false;
}

}  // namespace meridian::chaos
