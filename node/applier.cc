#include "node/applier.h"

#include <algorithm>
#include <iterator>
#include <memory>
#include <utility>

namespace meridian::node {

namespace {
// The entries of `v` in `scope`.
storage::AppliedVector InScope(const storage::AppliedVector& v, const std::string& scope) {
  storage::AppliedVector out;
  for (const auto& [origin, seq] : v) {
    if (origin.second == scope) out.emplace_hint(out.end(), origin, seq);
  }
  return out;
}
}  // namespace

Applier::Applier(storage::Store* store, crdt::HybridClock* clock, storage::NodeMeta meta,
                 size_t max_group)
    : committer_(store, clock, std::move(meta)), store_(store), clock_(clock), max_group_(max_group) {
  committer_.set_defer_sync(true);
  current_hlc_ = clock_->last();
  last_seq_ = committer_.last_seq();
  key_count_ = committer_.key_count();
  applied_ = committer_.applied();
  token_ = committer_.SessionToken();
  digest_sums_[""] = committer_.digest_sums();
  state_digest_ = committer_.digest_sums().Total();
  for (const auto& [scope, sums] : committer_.placed_sums()) {
    digest_sums_[scope] = sums;
    state_digest_ += sums.Total();
  }
  view_applied_ = applied_;
  view_floor_ = committer_.collect_floor();
  if (!store_->TakeSnapshot(&view_snapshot_).ok()) view_snapshot_.reset();
}

Applier::~Applier() { Stop(); }

void Applier::Start() {
  acker_ = std::thread([this] { RunAcks(); });
  thread_ = std::thread([this] { Run(); });
}

void Applier::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard<std::mutex> lock(ack_mu_);
    acks_stopping_ = true;
  }
  ack_cv_.notify_all();
  if (acker_.joinable()) acker_.join();
}

void Applier::Submit(Operation op, Done done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Pending p;
    p.op = std::move(op);
    p.done = std::move(done);
    queue_.push_back(std::move(p));
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
    Pending p;
    p.op = std::move(ops[i]);
    p.done = [g, i](WriteResult r) {
      // Runs on the acknowledger thread only: no lock needed.
      g->results[i] = std::move(r);
      if (--g->remaining == 0) g->done(std::move(g->results));
    };
    queue_.push_back(std::move(p));
  }
  cv_.notify_one();
}

void Applier::SubmitRemote(RemoteApply apply, std::function<void(RemoteResult)> done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Pending p;
    p.remote = std::move(apply);
    p.remote_done = std::move(done);
    queue_.push_back(std::move(p));
  }
  cv_.notify_one();
}

void Applier::SubmitRepair(StateRepair repair, std::function<void(RepairResult)> done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Pending p;
    p.repair = std::move(repair);
    p.repair_done = std::move(done);
    queue_.push_back(std::move(p));
  }
  cv_.notify_one();
}

void Applier::SubmitCollect(storage::AppliedVector stable, size_t limit,
                            std::function<void(CollectResult)> done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Pending p;
    p.stable = std::move(stable);
    p.collect_limit = limit;
    p.collect_done = std::move(done);
    queue_.push_back(std::move(p));
  }
  cv_.notify_one();
}

void Applier::ObserveHlc(crdt::Hlc hlc) {
  crdt::Hlc cur = observed_hlc_.load();
  while (hlc > cur && !observed_hlc_.compare_exchange_weak(cur, hlc)) {
  }
}

std::string Applier::SessionToken() const {
  std::lock_guard<std::mutex> lock(token_mu_);
  return token_;
}

storage::AppliedVector Applier::Applied() const {
  std::lock_guard<std::mutex> lock(token_mu_);
  return applied_;
}

storage::BucketSums Applier::DigestSums(const std::string& scope) const {
  std::lock_guard<std::mutex> lock(digest_mu_);
  auto it = digest_sums_.find(scope);
  return it == digest_sums_.end() ? storage::BucketSums() : it->second;
}

std::map<std::string, storage::Digest> Applier::ScopeDigests() const {
  std::lock_guard<std::mutex> lock(digest_mu_);
  std::map<std::string, storage::Digest> out;
  out[""];
  for (const auto& [scope, sums] : digest_sums_) out[scope] = sums.Total();
  return out;
}

storage::Digest Applier::StateDigest() const {
  std::lock_guard<std::mutex> lock(digest_mu_);
  return state_digest_;
}

void Applier::View(const std::string& scope, storage::BucketSums* sums,
                   storage::AppliedVector* applied, storage::AppliedVector* floor,
                   storage::SnapshotRef* snapshot) const {
  std::lock_guard<std::mutex> lock(digest_mu_);
  auto it = digest_sums_.find(scope);
  *sums = it == digest_sums_.end() ? storage::BucketSums() : it->second;
  *applied = InScope(view_applied_, scope);
  *floor = InScope(view_floor_, scope);
  *snapshot = view_snapshot_;
}

size_t Applier::queue_depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void Applier::Run() {
  std::vector<Pending> group;
  for (;;) {
    Pending repair;
    bool is_repair = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything answered
      group.clear();
      if (queue_.front().solo()) {
        // A repair or a collection runs alone, in its place in the queue.
        repair = std::move(queue_.front());
        queue_.pop_front();
        is_repair = true;
      } else {
        // A group: everything up to the next repair, at most max_group_.
        size_t n = std::min(queue_.size(), max_group_);
        group.reserve(n);
        for (size_t i = 0; i < n && !queue_.front().solo(); ++i) {
          group.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
    }
    if (is_repair && repair.collect_done) {
      ApplyCollect(&repair);
    } else if (is_repair) {
      ApplyRepair(&repair);
    } else {
      ApplyGroup(&group);
    }
  }
}

void Applier::PublishVisible() {
  current_hlc_ = clock_->last();
  last_seq_ = committer_.last_seq();
  key_count_ = committer_.key_count();
  type_conflicts_ = committer_.type_conflicts();
  conflicts_opened_ = committer_.conflict_counts().opened;
  conflicts_closed_ = committer_.conflict_counts().closed;
  audit_records_ = committer_.conflict_counts().audited;
  std::lock_guard<std::mutex> lock(token_mu_);
  applied_ = committer_.applied();
  token_ = committer_.SessionToken();
}

void Applier::CaptureView(Settle* s) {
  s->view = true;
  s->digest_changes = committer_.last_digest_changes();
  s->view_applied = committer_.applied();
  s->view_floor = committer_.collect_floor();
  // Only this thread writes states, so a snapshot taken now holds exactly
  // the states of the commit just made.
  if (!store_->TakeSnapshot(&s->snapshot).ok()) s->snapshot.reset();
}

void Applier::Enqueue(Settle s) {
  {
    std::lock_guard<std::mutex> lock(ack_mu_);
    acks_.push_back(std::move(s));
  }
  ack_cv_.notify_one();
}

void Applier::ApplyRepair(Pending* p) {
  Settle s;
  committer_.Repair(p->repair, &s.repair_result);
  stats_.repairs++;
  if (s.repair_result.status.ok()) {
    PublishVisible();
    CaptureView(&s);
    s.needs_sync = true;
    if (commit_listener_) commit_listener_();
  } else {
    stats_.failed_repairs++;
  }
  s.items.push_back(std::move(*p));
  Enqueue(std::move(s));
}

void Applier::ApplyCollect(Pending* p) {
  Settle s;
  committer_.Collect(p->stable, p->collect_limit, &s.collect_result);
  if (!s.collect_result.status.ok()) {
    stats_.failed_collections++;
  } else if (s.collect_result.collected > 0) {
    stats_.tombstones_collected += s.collect_result.collected;
    PublishVisible();
    CaptureView(&s);
    s.needs_sync = true;
  } else {
    s.floor_only = true;
    s.view_floor = committer_.collect_floor();
  }
  s.items.push_back(std::move(*p));
  Enqueue(std::move(s));
}

void Applier::ApplyGroup(std::vector<Pending>* group) {
  // Peers' clocks first, so that no timestamp of this group is below them.
  crdt::Hlc observed = observed_hlc_.exchange(0);
  if (observed != 0) committer_.ObserveHlc(observed);

  Settle s;
  std::vector<const Operation*> ops;
  std::vector<const RemoteApply*> remotes;
  for (size_t i = 0; i < group->size(); ++i) {
    const Pending& p = (*group)[i];
    if (p.remote_done) {
      remotes.push_back(&p.remote);
      s.remote_index.push_back(i);
    } else {
      ops.push_back(&p.op);
      s.op_index.push_back(i);
    }
  }
  committer_.Commit(ops, &s.results, remotes, &s.remote_results);
  const bool ok = committer_.last_status().ok();

  current_hlc_ = clock_->last();
  stats_.groups++;
  stats_.last_group_size = group->size();
  if (group->size() > stats_.max_group_size) stats_.max_group_size = group->size();
  if (!ok) {
    stats_.failed_groups++;
  } else {
    PublishVisible();
    CaptureView(&s);
    s.needs_sync = true;
    for (const WriteResult& r : s.results) {
      if (r.ok) stats_.writes++;
    }
    s.appended = committer_.last_appends();
    if (commit_listener_) commit_listener_();
  }
  s.items = std::move(*group);
  group->clear();
  Enqueue(std::move(s));
}

void Applier::RunAcks() {
  std::vector<Settle> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(ack_mu_);
      ack_cv_.wait(lock, [this] { return acks_stopping_ || !acks_.empty(); });
      if (acks_.empty()) return;  // stopping, and everything answered
      batch.assign(std::make_move_iterator(acks_.begin()), std::make_move_iterator(acks_.end()));
      acks_.clear();
    }
    // One sync covers every commit taken: each was written before it was
    // queued here.
    Status synced;
    if (std::any_of(batch.begin(), batch.end(), [](const Settle& s) { return s.needs_sync; })) {
      synced = store_->Sync();
      if (!synced.ok()) stats_.failed_syncs++;
    }
    for (Settle& s : batch) Answer(&s, synced);
    batch.clear();
  }
}

void Applier::Answer(Settle* s, const Status& synced) {
  if (s->view || s->floor_only) {
    // Even after a failed sync: the changes are in the store, and the
    // mirrored sums must follow every change the store holds.
    std::lock_guard<std::mutex> lock(digest_mu_);
    for (const DigestChange& c : s->digest_changes) {
      digest_sums_[c.scope].Replace(c.bucket, c.before, c.after);
      state_digest_ -= c.before;
      state_digest_ += c.after;
    }
    view_floor_ = s->view_floor;
    if (s->view) {
      view_applied_ = std::move(s->view_applied);
      view_snapshot_ = std::move(s->snapshot);
    }
  }
  const bool lost = s->needs_sync && !synced.ok();
  if (lost) {
    // Visible, but not known to be durable: nobody is told it succeeded.
    const ApiError err = storage::Store::IsNoSpace(synced)
                             ? ApiError{507, "insufficient_storage",
                                        "the node's disk is full; reads are still served"}
                             : ApiError{500, "storage", synced.ToString()};
    for (WriteResult& r : s->results) {
      if (r.ok) {
        r = WriteResult();
        r.error = err;
      }
    }
    for (RemoteResult& r : s->remote_results) {
      r.status = synced;
      r.last_durable = 0;
    }
    if (s->repair_result.status.ok()) s->repair_result = RepairResult{synced, 0, 0, {}};
    if (s->collect_result.status.ok()) s->collect_result.status = synced;
  } else if (append_listener_) {
    for (const auto& [scope, a] : s->appended) append_listener_(scope, a.last_seq, a.bytes);
  }
  std::vector<Pending>& items = s->items;
  if (items.size() == 1 && items[0].repair_done) {
    items[0].repair_done(std::move(s->repair_result));
  } else if (items.size() == 1 && items[0].collect_done) {
    items[0].collect_done(std::move(s->collect_result));
  } else {
    for (size_t k = 0; k < s->op_index.size(); ++k) {
      items[s->op_index[k]].done(std::move(s->results[k]));
    }
    for (size_t k = 0; k < s->remote_index.size(); ++k) {
      items[s->remote_index[k]].remote_done(std::move(s->remote_results[k]));
    }
  }
}

}  // namespace meridian::node
