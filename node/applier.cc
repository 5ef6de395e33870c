#include "node/applier.h"

#include <map>
#include <unordered_map>
#include <unordered_set>

namespace meridian::node {

namespace {
const std::string kScope;  // one placement scope until [[placement]] exists
}

std::string FormatSessionToken(const storage::AppliedVector& applied) {
  std::string out;
  for (const auto& [origin, seq] : applied) {
    if (!out.empty()) out += ',';
    out += origin.first.ToString() + ":" + std::to_string(seq);
  }
  return out;
}

bool ParseSessionToken(const std::string& text, storage::AppliedVector* out) {
  out->clear();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(pos, end - pos);
    size_t hash = item.rfind('#');
    size_t colon = item.rfind(':');
    if (hash == std::string::npos || colon == std::string::npos || hash == 0 || colon < hash + 2 ||
        colon + 1 >= item.size()) {
      return false;
    }
    crdt::ReplicaId r;
    r.node = item.substr(0, hash);
    try {
      size_t used = 0;
      std::string inc = item.substr(hash + 1, colon - hash - 1);
      r.incarnation = std::stoull(inc, &used);
      if (used != inc.size()) return false;
      std::string seq = item.substr(colon + 1);
      uint64_t s = std::stoull(seq, &used);
      if (used != seq.size()) return false;
      (*out)[{r, kScope}] = s;
    } catch (const std::exception&) {
      return false;
    }
    pos = end + 1;
  }
  return true;
}

Applier::Applier(storage::Store* store, crdt::HybridClock* clock, storage::NodeMeta meta,
                 size_t max_group)
    : store_(store), clock_(clock), meta_(std::move(meta)), max_group_(max_group) {
  last_seq_ = meta_.applied[{meta_.replica, kScope}];
  key_count_ = meta_.key_count;
  token_ = FormatSessionToken(meta_.applied);
}

Applier::~Applier() { Stop(); }

void Applier::Start() { thread_ = std::thread([this] { Run(); }); }

void Applier::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Applier::Submit(Operation op, Done done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(Pending{std::move(op), std::move(done)});
  }
  cv_.notify_one();
}

void Applier::SubmitMany(std::vector<Operation> ops,
                         std::function<void(std::vector<WriteResult>)> done) {
  if (ops.empty()) {
    done({});
    return;
  }
  // The results are gathered as each completes; the last one answers.
  struct Gather {
    std::vector<WriteResult> results;
    size_t remaining;
    std::function<void(std::vector<WriteResult>)> done;
  };
  auto g = std::make_shared<Gather>();
  g->results.resize(ops.size());
  g->remaining = ops.size();
  g->done = std::move(done);
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < ops.size(); ++i) {
    queue_.push_back(Pending{std::move(ops[i]), [g, i](WriteResult r) {
                               // Runs on the applier thread only: no lock needed.
                               g->results[i] = std::move(r);
                               if (--g->remaining == 0) g->done(std::move(g->results));
                             }});
  }
  cv_.notify_one();
}

std::string Applier::SessionToken() const {
  std::lock_guard<std::mutex> lock(token_mu_);
  return token_;
}

size_t Applier::queue_depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void Applier::Run() {
  std::vector<Pending> group;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything answered
      size_t n = std::min(queue_.size(), max_group_);
      group.clear();
      group.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    ApplyGroup(&group);
  }
}

void Applier::ApplyGroup(std::vector<Pending>* group) {
  storage::WriteBatch batch;
  std::vector<WriteResult> results(group->size());
  // The latest state of each key touched by this group, so that two writes
  // to one key in a group build on each other.
  std::unordered_map<std::string, crdt::Envelope> states;
  std::unordered_set<std::string> new_keys;  // keys without a state before this group
  uint64_t seq = last_seq_.load();
  const uint64_t first_seq = seq + 1;
  uint64_t added_keys = 0;

  for (size_t i = 0; i < group->size(); ++i) {
    const Operation& op = (*group)[i].op;
    WriteResult& res = results[i];
    auto it = states.find(op.key);
    if (it == states.end()) {
      crdt::Envelope current;
      std::string bytes;
      Status st = store_->GetState(op.key, &bytes);
      if (st.ok()) st = crdt::Envelope::DecodeStored(bytes, &current);
      if (st.IsNotFound()) new_keys.insert(op.key);
      if (!st.ok() && !st.IsNotFound()) {
        res.error = ApiError{500, "storage", st.ToString()};
        continue;
      }
      it = states.emplace(op.key, std::move(current)).first;
    }
    crdt::Hlc now = 0;
    Status st = clock_->NowChecked(&now);
    if (!st.ok()) {
      res.error = ApiError{503, "clock", st.ToString()};
      continue;
    }
    crdt::Envelope next, delta;
    if (!ApplyOperation(op, it->second, meta_.replica, now, &next, &delta, &res.error)) continue;
    it->second = std::move(next);
    if (new_keys.erase(op.key)) ++added_keys;
    res.ok = true;
    res.seq = ++seq;
    res.envelope = it->second.Encode();
    batch.PutState(op.key, res.envelope);
    batch.AppendLog(storage::LogEntry{kScope, res.seq, op.key, delta.Encode()});
  }

  crdt::Hlc bound = 0;
  if (clock_->NeedsNewBound()) {
    bound = clock_->ProposeBound();
    storage::PutHlcBound(bound, &batch);
  }
  Status st;
  if (seq >= first_seq || bound != 0) {
    storage::AppliedVector applied = meta_.applied;
    applied[{meta_.replica, kScope}] = seq;
    storage::PutApplied(applied, &batch);
    if (added_keys > 0) storage::PutKeyCount(meta_.key_count + added_keys, &batch);
    st = store_->Write(&batch);
    if (st.ok()) {
      meta_.applied = std::move(applied);
      meta_.key_count += added_keys;
      key_count_ = meta_.key_count;
      if (bound != 0) clock_->BoundPersisted(bound);
      last_seq_ = seq;
      std::lock_guard<std::mutex> lock(token_mu_);
      token_ = FormatSessionToken(meta_.applied);
    }
  }
  stats_.groups++;
  stats_.last_group_size = group->size();
  if (group->size() > stats_.max_group_size) stats_.max_group_size = group->size();
  if (!st.ok()) {
    stats_.failed_groups++;
    ApiError err = storage::Store::IsNoSpace(st)
                       ? ApiError{507, "insufficient_storage",
                                  "the node's disk is full; reads are still served"}
                       : ApiError{500, "storage", st.ToString()};
    for (auto& res : results) {
      if (res.ok) {
        res = WriteResult();
        res.error = err;
      }
    }
  } else {
    std::string token = SessionToken();
    for (size_t i = 0; i < results.size(); ++i) {
      if (!results[i].ok) continue;
      stats_.writes++;
      results[i].session_token = token;
      if (listener_) listener_((*group)[i].op.key, results[i].envelope);
    }
  }
  for (size_t i = 0; i < group->size(); ++i) (*group)[i].done(std::move(results[i]));
}

}  // namespace meridian::node
