#include "node/text_stream.h"

#include <random>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "crdt/envelope.h"
#include "crdt/register.h"
#include "crdt/text.h"

namespace meridian::node {

using json = nlohmann::json;

struct TextStreamHub::Session {
  uint64_t id = 0;
  std::string key;
  crdt::ReplicaId agent;
  std::shared_ptr<WebSocketChannel> channel;
  crdt::TextVersion held;  // every dot the client holds: what it was sent and what it sent
  bool joined = false;
};

struct TextStreamHub::Queue {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::function<void()>> tasks;
  std::map<std::string, std::string> changed;  // key -> its latest envelope
  bool stopping = false;
};

namespace {

constexpr int64_t kPresenceRefreshMs = 10000;
constexpr int64_t kPresenceTtlMs = 30000;

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool IsPresenceKey(const std::string& key) {
  return key.compare(0, sizeof(kPresencePrefix) - 1, kPresencePrefix) == 0;
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string ErrorMessage(const json& seq, const std::string& code, const std::string& message) {
  return Dump(json{{"type", "error"}, {"seq", seq}, {"code", code}, {"message", message}});
}

// The text held in a stored envelope: false when the key holds another
// type (*other names it); an absent key or state is the empty text.
bool TextOf(const std::string& envelope, crdt::Text* out, std::string* other) {
  *out = crdt::Text();
  if (envelope.empty()) return true;
  crdt::Envelope env;
  if (!crdt::Envelope::DecodeStored(envelope, &env).ok()) {
    *other = "an undecodable state";
    return false;
  }
  const crdt::TypedState* w = env.winner();
  if (w == nullptr) return true;
  if (w->tag != crdt::Text::kTag) {
    *other = TypeName(w->tag);
    return false;
  }
  if (!crdt::Text::DecodeTrusted(w->state, out).ok()) {
    *other = "an undecodable text";
    return false;
  }
  return true;
}

}  // namespace

bool ParseClientMessage(const std::string& message, ClientOps* out, std::string* error) {
  json m = json::parse(message, nullptr, false);
  out->seq = nullptr;
  if (m.is_object() && m.contains("seq") && m["seq"].is_number_unsigned()) out->seq = m["seq"];
  if (!m.is_object() || !m.contains("type") || m["type"] != "ops" || out->seq.is_null() ||
      !m.contains("state") || !m["state"].is_string()) {
    *error = "a client message is {\"type\": \"ops\", \"seq\": n, \"state\": "
             "base64url of a text delta}";
    return false;
  }
  if (!UnBase64Url(m["state"].get<std::string>(), &out->bytes)) {
    *error = "'state' is not base64url (no padding)";
    return false;
  }
  Status st = crdt::Text::Decode(out->bytes, &out->delta);
  if (!st.ok()) {
    *error = "not a text in its wire form: " + st.ToString();
    return false;
  }
  return true;
}

TextStreamHub::TextStreamHub(TextStreamContext ctx)
    : ctx_(std::move(ctx)), queue_(std::make_shared<Queue>()) {
  thread_ = std::thread([this] { Run(); });
}

TextStreamHub::~TextStreamHub() {
  {
    std::lock_guard<std::mutex> lock(queue_->mu);
    queue_->stopping = true;
  }
  queue_->cv.notify_all();
  thread_.join();
  for (auto& [id, s] : sessions_) s->channel->Close();
}

void TextStreamHub::Post(Queue* q, std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(q->mu);
    if (q->stopping) return;
    q->tasks.push_back(std::move(task));
  }
  q->cv.notify_one();
}

void TextStreamHub::Run() {
  LoadPresence();
  for (;;) {
    std::deque<std::function<void()>> tasks;
    std::map<std::string, std::string> changed;
    {
      std::unique_lock<std::mutex> lock(queue_->mu);
      // Woken by work, or each second for presence (refresh, expiry).
      queue_->cv.wait_for(lock, std::chrono::seconds(1), [&] {
        return queue_->stopping || !queue_->tasks.empty() || !queue_->changed.empty();
      });
      if (queue_->stopping) return;
      tasks.swap(queue_->tasks);
      changed.swap(queue_->changed);
    }
    // Tasks first: a session that joins loads the text after these changes
    // committed, and fan-out covers whatever it missed.
    for (auto& t : tasks) t();
    for (const auto& [key, envelope] : changed) {
      if (IsPresenceKey(key)) {
        TakePresence(key.substr(sizeof(kPresencePrefix) - 1), envelope);
      } else {
        Fanout(key, envelope);
      }
    }
    PresenceTick();
  }
}

void TextStreamHub::LoadPresence() {
  std::vector<storage::Store::KeyState> rows;
  if (!ctx_.store->Scan(kPresencePrefix, "", 1000, &rows).ok()) return;
  for (const auto& row : rows) {
    TakePresence(row.key.substr(sizeof(kPresencePrefix) - 1), row.envelope);
  }
}

void TextStreamHub::TakePresence(const std::string& node, const std::string& envelope) {
  if (node == ctx_.node->id) return;
  crdt::Envelope env;
  if (!crdt::Envelope::DecodeStored(envelope, &env).ok()) return;
  const crdt::TypedState* w = env.winner();
  crdt::Register reg;
  json value;
  if (w == nullptr || w->tag != crdt::Register::kTag || !crdt::Register::Decode(w->state, &reg).ok() ||
      !reg.HasValue() || !BytesToValue(reg.value(), &value) || !value.is_object() ||
      !value.contains("at") || !value["at"].is_number_integer() || !value.contains("docs") ||
      !value["docs"].is_object()) {
    return;
  }
  Remote& r = remote_[node];
  json before = r.expired ? json::object() : r.docs;
  r.at_ms = value["at"].get<int64_t>();
  r.expired = WallMs() - r.at_ms > kPresenceTtlMs;
  r.docs = value["docs"];
  SendSessionsForDocs(before);
  if (!r.expired) SendSessionsForDocs(r.docs);
}

void TextStreamHub::SendSessionsForDocs(const json& docs) {
  if (!docs.is_object()) return;
  for (const auto& item : docs.items()) {
    bool here;
    {
      std::lock_guard<std::mutex> lock(keys_mu_);
      here = keys_.count(item.key()) > 0;
    }
    if (here) SendSessions(item.key());
  }
}

void TextStreamHub::PresenceTick() {
  const int64_t now = WallMs();
  for (auto& [node, r] : remote_) {
    if (!r.expired && now - r.at_ms > kPresenceTtlMs) {
      r.expired = true;
      SendSessionsForDocs(r.docs);
    }
  }
  const bool any = !sessions_.empty();
  const bool due = any && now - presence_written_ms_ >= kPresenceRefreshMs;
  if (!presence_dirty_ && !due && !(presence_published_any_ && !any)) return;
  json docs = json::object();
  for (const auto& [id, s] : sessions_) {
    docs[s->key].push_back(
        {{"agent", s->agent.node}, {"region", ctx_.node->region}, {"node", ctx_.node->id}});
  }
  Operation op;
  op.kind = Operation::Kind::kPut;
  op.type = crdt::Register::kTag;
  op.kv = true;
  op.key = std::string(kPresencePrefix) + ctx_.node->id;
  op.value = ValueToBytes(json{{"node", ctx_.node->id},
                               {"region", ctx_.node->region},
                               {"at", now},
                               {"docs", docs}});
  ApiError err;
  presence_dirty_ = false;
  presence_written_ms_ = now;
  presence_published_any_ = any;
  // Best effort: a refused write (the write gate, a policy of another
  // type under the prefix) is tried again at the next refresh.
  if ((ctx_.writable && !ctx_.writable(&err)) || (ctx_.policy_type && !ctx_.policy_type(&op, &err))) {
    return;
  }
  ctx_.applier->Submit(std::move(op), [](WriteResult) {});
}

std::string TextStreamHub::NewAgent() {
  static thread_local std::mt19937_64 rng(std::random_device{}() ^
                                          (static_cast<uint64_t>(std::random_device{}()) << 32));
  const uint64_t r = rng() ^ next_id_.load();
  static const char kHex[] = "0123456789abcdef";
  std::string out = ctx_.node->id + "~";
  for (int shift = 44; shift >= 0; shift -= 4) out.push_back(kHex[(r >> shift) & 15]);
  return out;
}

std::shared_ptr<WebSocketChannel> TextStreamHub::Open(const std::string& key) {
  auto channel = std::make_shared<WebSocketChannel>(ctx_.max_queued_bytes);
  auto s = std::make_shared<Session>();
  s->id = next_id_.fetch_add(1);
  s->key = key;
  s->channel = channel;
  s->agent.node = NewAgent();
  s->agent.incarnation = ctx_.applier->replica().incarnation;
  std::weak_ptr<Queue> weak = queue_;
  const uint64_t id = s->id;
  // The callbacks hold the queue weakly and touch nothing else of the hub:
  // once it is stopping, what they queue is never run.
  channel->on_message = [this, weak, id](std::string message) {
    if (auto q = weak.lock()) Post(q.get(), [this, id, m = std::move(message)] { Receive(id, m); });
  };
  channel->on_close = [this, weak, id] {
    if (auto q = weak.lock()) Post(q.get(), [this, id] { Leave(id); });
  };
  opened_++;
  Post(queue_.get(), [this, s] { Join(s); });
  return channel;
}

void TextStreamHub::OnChange(const std::string& key, const std::string& envelope) {
  if (!IsPresenceKey(key)) {
    std::lock_guard<std::mutex> lock(keys_mu_);
    if (keys_.find(key) == keys_.end()) return;
  }
  {
    std::lock_guard<std::mutex> lock(queue_->mu);
    if (queue_->stopping) return;
    queue_->changed[key] = envelope;
  }
  queue_->cv.notify_one();
}

void TextStreamHub::Join(const std::shared_ptr<Session>& s) {
  if (s->channel->closed()) return;  // gone before it was served (Leave came first or comes next)
  Operation probe;
  probe.kind = Operation::Kind::kTextMerge;
  probe.type = crdt::Text::kTag;
  probe.key = s->key;
  ApiError err;
  if (ctx_.policy_type && !ctx_.policy_type(&probe, &err)) {
    s->channel->Send(ErrorMessage(nullptr, err.code, err.message));
    s->channel->Close();
    return;
  }
  std::string envelope;
  Status st = ctx_.store->GetState(s->key, &envelope);
  if (!st.ok() && !st.IsNotFound()) {
    s->channel->Send(ErrorMessage(nullptr, "storage", st.ToString()));
    s->channel->Close();
    return;
  }
  crdt::Text text;
  std::string other;
  if (!TextOf(st.ok() ? envelope : std::string(), &text, &other)) {
    s->channel->Send(ErrorMessage(nullptr, "type_mismatch",
                                  "key '" + s->key + "' holds " + other + ", not a text"));
    s->channel->Close();
    return;
  }
  s->held = text.Dots();
  s->joined = true;
  sessions_[s->id] = s;
  open_++;
  {
    std::lock_guard<std::mutex> lock(keys_mu_);
    keys_[s->key]++;
  }
  json others = json::array();
  for (const RegionConfig& r : ctx_.topology->regions) {
    if (r.name == ctx_.node->region) continue;
    for (const NodeConfig& n : r.nodes) others.push_back(n.id);
  }
  s->channel->Send(Dump(json{{"type", "hello"},
                             {"key", s->key},
                             {"region", ctx_.node->region},
                             {"node", ctx_.node->id},
                             {"agent",
                              {{"node", s->agent.node},
                               {"incarnation", std::to_string(s->agent.incarnation)}}},
                             {"state", Base64Url(text.Encode())},
                             {"faults", ctx_.fault_injection},
                             {"others", others},
                             {"sessions", json::array()}}));
  presence_dirty_ = true;
  SendSessions(s->key);
}

void TextStreamHub::Leave(uint64_t id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  std::shared_ptr<Session> s = it->second;
  sessions_.erase(it);
  open_--;
  if (s->channel->dropped()) dropped_++;
  {
    std::lock_guard<std::mutex> lock(keys_mu_);
    auto k = keys_.find(s->key);
    if (k != keys_.end() && --k->second == 0) keys_.erase(k);
  }
  presence_dirty_ = true;
  SendSessions(s->key);
}

void TextStreamHub::SendSessions(const std::string& key) {
  json list = json::array();
  for (const auto& [id, s] : sessions_) {
    if (s->key != key) continue;
    list.push_back({{"agent", s->agent.node}, {"region", ctx_.node->region}, {"node", ctx_.node->id}});
  }
  for (const auto& [node, r] : remote_) {
    if (r.expired || !r.docs.contains(key) || !r.docs[key].is_array()) continue;
    for (const json& a : r.docs[key]) {
      if (a.is_object() && a.contains("agent") && a["agent"].is_string()) {
        list.push_back({{"agent", a["agent"]},
                        {"region", a.value("region", std::string())},
                        {"node", node}});
      }
    }
  }
  const std::string message = Dump(json{{"type", "sessions"}, {"sessions", list}});
  for (const auto& [id, s] : sessions_) {
    if (s->key == key) s->channel->Send(message);
  }
}

void TextStreamHub::Receive(uint64_t id, const std::string& message) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  std::shared_ptr<Session> s = it->second;
  ClientOps parsed;
  std::string problem;
  if (!ParseClientMessage(message, &parsed, &problem)) {
    s->channel->Send(ErrorMessage(parsed.seq, "bad_request", problem));
    return;
  }
  json seq = std::move(parsed.seq);
  std::string bytes = std::move(parsed.bytes);
  crdt::Text delta = std::move(parsed.delta);
  ApiError err;
  if (ctx_.writable && !ctx_.writable(&err)) {
    s->channel->Send(ErrorMessage(seq, err.code, err.message));
    return;
  }
  // The client holds what it sent: it is not sent back.
  s->held.Merge(delta.Dots());
  if (delta.IsBottom()) {
    s->channel->Send(Dump(json{{"type", "ack"}, {"seq", seq}}));
    return;
  }
  Operation op;
  op.kind = Operation::Kind::kTextMerge;
  op.type = crdt::Text::kTag;
  op.key = s->key;
  op.text_state = std::move(bytes);
  if (ctx_.policy_type && !ctx_.policy_type(&op, &err)) {
    s->channel->Send(ErrorMessage(seq, err.code, err.message));
    return;
  }
  std::weak_ptr<WebSocketChannel> channel = s->channel;
  ctx_.applier->Submit(std::move(op), [channel, seq](WriteResult r) {
    auto ch = channel.lock();
    if (!ch) return;
    if (r.ok) {
      ch->Send(Dump(json{{"type", "ack"}, {"seq", seq}}));
    } else {
      ch->Send(ErrorMessage(seq, r.error.code, r.error.message));
    }
  });
}

void TextStreamHub::Fanout(const std::string& key, const std::string& envelope) {
  bool loaded = false, is_text = false;
  crdt::Text text;
  for (const auto& [id, s] : sessions_) {
    if (s->key != key) continue;
    if (!loaded) {
      std::string other;
      is_text = TextOf(envelope, &text, &other);
      loaded = true;
    }
    if (!is_text) break;  // another type won the key: its editors keep what they have
    crdt::Text delta = text.DeltaSince(s->held);
    if (delta.IsBottom()) continue;
    s->held.Merge(text.Dots());
    s->channel->Send(Dump(json{{"type", "ops"}, {"state", Base64Url(delta.Encode())}}));
  }
}

}  // namespace meridian::node
