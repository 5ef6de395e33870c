#include "node/applier.h"

#include <algorithm>
#include <memory>
#include <utility>

namespace meridian::node {

namespace {
const std::string kScope;  // one placement scope until [[placement]] exists
}

Applier::Applier(storage::Store* store, crdt::HybridClock* clock, storage::NodeMeta meta,
                 size_t max_group)
    : committer_(store, clock, std::move(meta)), store_(store), clock_(clock), max_group_(max_group) {
  current_hlc_ = clock_->last();
  last_seq_ = committer_.last_seq();
  key_count_ = committer_.key_count();
  applied_ = committer_.applied();
  token_ = committer_.SessionToken();
  digest_sums_ = committer_.digest_sums();
  state_digest_ = digest_sums_.Total();
  view_applied_ = applied_;
  view_floor_ = committer_.collect_floor();
  if (!store_->TakeSnapshot(&view_snapshot_).ok()) view_snapshot_.reset();
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
      // Runs on the applier thread only: no lock needed.
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

storage::BucketSums Applier::DigestSums() const {
  std::lock_guard<std::mutex> lock(digest_mu_);
  return digest_sums_;
}

storage::Digest Applier::StateDigest() const {
  std::lock_guard<std::mutex> lock(digest_mu_);
  return state_digest_;
}

void Applier::View(storage::BucketSums* sums, storage::AppliedVector* applied,
                   storage::AppliedVector* floor, storage::SnapshotRef* snapshot) const {
  std::lock_guard<std::mutex> lock(digest_mu_);
  *sums = digest_sums_;
  *applied = view_applied_;
  *floor = view_floor_;
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

void Applier::Published() {
  last_seq_ = committer_.last_seq();
  key_count_ = committer_.key_count();
  type_conflicts_ = committer_.type_conflicts();
  // Only this thread writes states, so a snapshot taken now holds exactly
  // the states of the commit just made.
  storage::SnapshotRef snapshot;
  if (!store_->TakeSnapshot(&snapshot).ok()) snapshot.reset();
  {
    std::lock_guard<std::mutex> lock(digest_mu_);
    for (const DigestChange& c : committer_.last_digest_changes()) {
      digest_sums_.Replace(c.bucket, c.before, c.after);
      state_digest_ -= c.before;
      state_digest_ += c.after;
    }
    view_applied_ = committer_.applied();
    view_floor_ = committer_.collect_floor();
    view_snapshot_ = std::move(snapshot);
  }
  std::lock_guard<std::mutex> lock(token_mu_);
  applied_ = committer_.applied();
  token_ = committer_.SessionToken();
}

void Applier::ApplyRepair(Pending* p) {
  RepairResult result;
  committer_.Repair(p->repair, &result);
  stats_.repairs++;
  if (result.status.ok()) {
    Published();
    if (commit_listener_) commit_listener_();
  } else {
    stats_.failed_repairs++;
  }
  p->repair_done(std::move(result));
}

void Applier::ApplyCollect(Pending* p) {
  CollectResult result;
  committer_.Collect(p->stable, p->collect_limit, &result);
  if (!result.status.ok()) {
    stats_.failed_collections++;
  } else if (result.collected > 0) {
    stats_.tombstones_collected += result.collected;
    Published();
  } else {
    std::lock_guard<std::mutex> lock(digest_mu_);
    view_floor_ = committer_.collect_floor();
  }
  p->collect_done(std::move(result));
}

void Applier::ApplyGroup(std::vector<Pending>* group) {
  // Peers' clocks first, so that no timestamp of this group is below them.
  crdt::Hlc observed = observed_hlc_.exchange(0);
  if (observed != 0) committer_.ObserveHlc(observed);

  std::vector<const Operation*> ops;
  std::vector<size_t> op_index;  // group position of each op
  std::vector<const RemoteApply*> remotes;
  std::vector<size_t> remote_index;
  for (size_t i = 0; i < group->size(); ++i) {
    const Pending& p = (*group)[i];
    if (p.remote_done) {
      remotes.push_back(&p.remote);
      remote_index.push_back(i);
    } else {
      ops.push_back(&p.op);
      op_index.push_back(i);
    }
  }
  std::vector<WriteResult> results;
  std::vector<RemoteResult> remote_results;
  const uint64_t seq_before = committer_.last_seq();
  committer_.Commit(ops, &results, remotes, &remote_results);
  const bool ok = committer_.last_status().ok();

  current_hlc_ = clock_->last();
  if (ok) Published();
  stats_.groups++;
  stats_.last_group_size = group->size();
  if (group->size() > stats_.max_group_size) stats_.max_group_size = group->size();
  if (!ok) {
    stats_.failed_groups++;
  } else {
    for (const WriteResult& r : results) {
      if (r.ok) stats_.writes++;
    }
    if (append_listener_ && committer_.last_seq() > seq_before) {
      append_listener_(kScope, committer_.last_seq(), committer_.last_log_bytes());
    }
    if (commit_listener_) commit_listener_();
  }
  for (size_t k = 0; k < ops.size(); ++k) (*group)[op_index[k]].done(std::move(results[k]));
  for (size_t k = 0; k < remotes.size(); ++k) {
    (*group)[remote_index[k]].remote_done(std::move(remote_results[k]));
  }
}

}  // namespace meridian::node
