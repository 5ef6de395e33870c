#include "node/text_stream.h"

#include <random>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "crdt/envelope.h"
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

void TextStreamHub::Post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(queue_->mu);
    if (queue_->stopping) return;
    queue_->tasks.push_back(std::move(task));
  }
  queue_->cv.notify_one();
}

void TextStreamHub::Run() {
  for (;;) {
    std::deque<std::function<void()>> tasks;
    std::map<std::string, std::string> changed;
    {
      std::unique_lock<std::mutex> lock(queue_->mu);
      queue_->cv.wait(lock, [&] {
        return queue_->stopping || !queue_->tasks.empty() || !queue_->changed.empty();
      });
      if (queue_->stopping) return;
      tasks.swap(queue_->tasks);
      changed.swap(queue_->changed);
    }
    // Tasks first: a session that joins loads the text after these changes
    // committed, and fan-out covers whatever it missed.
    for (auto& t : tasks) t();
    for (const auto& [key, envelope] : changed) Fanout(key, envelope);
  }
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
  // The callbacks hold the queue weakly: once the hub is gone they do nothing.
  channel->on_message = [this, weak, id](std::string message) {
    if (auto q = weak.lock()) Post([this, id, m = std::move(message)] { Receive(id, m); });
  };
  channel->on_close = [this, weak, id] {
    if (auto q = weak.lock()) Post([this, id] { Leave(id); });
  };
  opened_++;
  Post([this, s] { Join(s); });
  return channel;
}

void TextStreamHub::OnChange(const std::string& key, const std::string& envelope) {
  {
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
  SendSessions(s->key);
}

void TextStreamHub::SendSessions(const std::string& key) {
  json list = json::array();
  for (const auto& [id, s] : sessions_) {
    if (s->key != key) continue;
    list.push_back({{"agent", s->agent.node}, {"region", ctx_.node->region}, {"node", ctx_.node->id}});
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
  json m = json::parse(message, nullptr, false);
  json seq = nullptr;
  if (m.is_object() && m.contains("seq") && m["seq"].is_number_unsigned()) seq = m["seq"];
  if (!m.is_object() || !m.contains("type") || m["type"] != "ops" || seq.is_null() ||
      !m.contains("state") || !m["state"].is_string()) {
    s->channel->Send(ErrorMessage(seq, "bad_request",
                                  "a client message is {\"type\": \"ops\", \"seq\": n, \"state\": "
                                  "base64url of a text delta}"));
    return;
  }
  std::string bytes;
  crdt::Text delta;
  if (!UnBase64Url(m["state"].get<std::string>(), &bytes)) {
    s->channel->Send(ErrorMessage(seq, "bad_request", "'state' is not base64url (no padding)"));
    return;
  }
  Status st = crdt::Text::Decode(bytes, &delta);
  if (!st.ok()) {
    s->channel->Send(ErrorMessage(seq, "bad_request", "not a text in its wire form: " + st.ToString()));
    return;
  }
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
