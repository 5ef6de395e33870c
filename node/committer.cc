#include "node/committer.h"

#include "conflict/conflict_index.h"

#include <algorithm>
#include <set>
#include <unordered_map>
#include <utility>

#include "crdt/envelope.h"
#include "crdt/register.h"
#include "node/http_client.h"

namespace meridian::node {

namespace {
const std::string kScope;  // the default placement scope

// A register tombstone: the key's only state is a deleted register (see
// "Collection" in committer.h); *writer gets the delete's replica.
bool IsRegisterTombstone(const crdt::Envelope& env, crdt::ReplicaId* writer) {
  if (env.entries().size() != 1) return false;
  const crdt::TypedState& t = env.entries().begin()->second;
  if (t.tag != crdt::Register::kTag) return false;
  crdt::Register r;
  if (!crdt::Register::Decode(t.state, &r).ok() || r.IsBottom() || !r.deleted()) return false;
  *writer = r.writer();
  return true;
}

uint64_t AppliedOf(const storage::AppliedVector& applied, const crdt::ReplicaId& origin,
                   const std::string& scope) {
  auto it = applied.find({origin, scope});
  return it == applied.end() ? 0 : it->second;
}

// Whether the key's only state is a register (live or deleted); *writer
// gets the replica of its latest write.
bool IsRegisterOnly(const crdt::Envelope& env, crdt::ReplicaId* writer) {
  if (env.entries().size() != 1) return false;
  const crdt::TypedState& t = env.entries().begin()->second;
  if (t.tag != crdt::Register::kTag) return false;
  crdt::Register r;
  if (!crdt::Register::Decode(t.state, &r).ok() || r.IsBottom()) return false;
  *writer = r.writer();
  return true;
}

// The bytes EncodeKeyForPath writes as they are.
bool TokenSafe(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-' || c == '/' || c == '~';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // lower case is not the canonical form: refused
}

// The inverse of EncodeKeyForPath (how a token writes a scope); false on
// anything it would not write (so each vector has one token) and on an
// empty scope.
bool UnescapeScope(const std::string& text, std::string* out) {
  out->clear();
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c != '%') {
      if (!TokenSafe(c)) return false;
      out->push_back(static_cast<char>(c));
      continue;
    }
    if (i + 2 >= text.size()) return false;
    const int hi = HexValue(text[i + 1]);
    const int lo = HexValue(text[i + 2]);
    if (hi < 0 || lo < 0) return false;
    const unsigned char b = static_cast<unsigned char>(hi * 16 + lo);
    if (TokenSafe(b)) return false;
    out->push_back(static_cast<char>(b));
    i += 2;
  }
  return !out->empty();
}

}  // namespace

std::string FormatSessionToken(const storage::AppliedVector& applied) {
  std::string out;
  for (const auto& [origin, seq] : applied) {
    if (!out.empty()) out += ',';
    out += origin.first.ToString();
    if (!origin.second.empty()) out += "@" + EncodeKeyForPath(origin.second);
    out += ":" + std::to_string(seq);
  }
  return out;
}

namespace {

// Decimal digits only (no sign, no spaces), within uint64_t.
bool ParseDecimal(const std::string& text, uint64_t* out) {
  if (text.empty() || text.size() > 20 || text.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  try {
    *out = std::stoull(text);
    return true;
  } catch (const std::exception&) {
    return false;  // out of range
  }
}

bool ValidNodeId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

bool ParseSessionToken(const std::string& text, storage::AppliedVector* out) {
  out->clear();
  if (text.empty()) return true;
  size_t pos = 0;
  for (;;) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(pos, end - pos);
    size_t hash = item.find('#');
    size_t colon = item.rfind(':');
    if (hash == std::string::npos || colon == std::string::npos || colon < hash) return false;
    size_t at = item.find('@', hash);
    if (at == std::string::npos || at > colon) at = colon;
    crdt::ReplicaId r;
    r.node = item.substr(0, hash);
    uint64_t seq = 0;
    std::string scope;
    if (!ValidNodeId(r.node) || !ParseDecimal(item.substr(hash + 1, at - hash - 1), &r.incarnation) ||
        !ParseDecimal(item.substr(colon + 1), &seq) ||
        (at != colon && !UnescapeScope(item.substr(at + 1, colon - at - 1), &scope))) {
      return false;
    }
    auto key = std::make_pair(r, scope);
    if (out->count(key) != 0) return false;  // one entry per origin
    (*out)[key] = seq;
    if (end == text.size()) return true;
    pos = end + 1;  // a trailing ',' leaves an empty item, refused above
  }
}

bool Covers(const storage::AppliedVector& applied, const storage::AppliedVector& token,
            uint64_t* behind) {
  uint64_t missing = 0;
  for (const auto& [origin, seq] : token) {
    auto it = applied.find(origin);
    uint64_t have = it == applied.end() ? 0 : it->second;
    if (have < seq) missing += seq - have;
  }
  if (behind != nullptr) *behind = missing;
  return missing == 0;
}

Committer::Committer(storage::Store* store, crdt::HybridClock* clock, storage::NodeMeta meta)
    : store_(store), clock_(clock), meta_(std::move(meta)) {
  // The node's own origin is always in its applied vector (and token), at 0
  // before its first write.
  meta_.applied.try_emplace({meta_.replica, kScope}, 0);
  // The collect floor survives restarts: a round a peer started before one
  // may still reach this node after it. Unreadable: the applied vector,
  // which bounds every stable vector this node can have collected with.
  std::string floor;
  Status st = store_->GetMeta(storage::kMetaCollectFloor, &floor);
  if (st.ok() && !storage::DecodeApplied(floor, &collect_floor_).ok()) {
    collect_floor_ = meta_.applied;
  } else if (!st.ok() && !st.IsNotFound()) {
    collect_floor_ = meta_.applied;
  }
}

uint64_t Committer::last_seq(const std::string& scope) const {
  return AppliedOf(meta_.applied, meta_.replica, scope);
}

const storage::BucketSums& Committer::digest_sums(const std::string& scope) const {
  if (scope.empty()) return meta_.digest_sums;
  auto it = meta_.placed_sums.find(scope);
  static const storage::BucketSums kNone;
  return it == meta_.placed_sums.end() ? kNone : it->second;
}

storage::BucketSums& Committer::SumsOf(const std::string& scope) {
  return scope.empty() ? meta_.digest_sums : meta_.placed_sums[scope];
}

void Committer::ApplyDigestChanges(const std::vector<DigestChange>& changes) {
  for (const DigestChange& c : changes) SumsOf(c.scope).Replace(c.bucket, c.before, c.after);
}

std::string Committer::SessionToken() const { return FormatSessionToken(meta_.applied); }

void Committer::ObserveHlc(crdt::Hlc hlc) {
  crdt::Hlc ignored = 0;
  // A refusal (beyond the offset limit) leaves the clock unchanged; the
  // gossip protocol has already counted and refused such a message.
  (void)clock_->Update(hlc, &ignored);
}

namespace {

// The state of every key a group touches, shared by its local operations
// and remote deltas: one map entry per key (node-based, so pointers to its
// entries stay valid while the group runs) rather than one copy of the key
// in each of several maps and sets.
struct GroupStates {
  struct KeyState {
    crdt::Envelope state;   // the key's latest state in this group
    storage::Digest before;  // digest of its stored bytes (zero when it had none)
    bool had_state = false;  // it had a stored state before this group
    bool conflict_before = false;  // its stored state held a conflict (conflict_index.h)
    bool counted = false;    // counted in added_keys
    // The bytes of the batch's last put of its state (owned by the caller
    // or by joined_bytes, kept in place until the batch is written); null
    // until the batch writes one.
    const std::string* final_bytes = nullptr;
    bool joined = false;       // in `joined`
    std::string joined_bytes;  // its encoded final state, when joined
  };
  using Entry = std::unordered_map<std::string, KeyState>::value_type;

  storage::Store* store = nullptr;
  const Committer* committer = nullptr;  // for ScopeOf
  std::unordered_map<std::string, KeyState> keys;
  uint64_t added_keys = 0;
  // Keys the batch writes a state for, in first-write order.
  std::vector<Entry*> written;
  // Keys that joins changed, in first-change order: their final state goes
  // into the batch once (PutJoined).
  std::vector<Entry*> joined;

  // The key's entry, its state read from the store on first use.
  Status Get(const std::string& key, Entry** out) {
    auto it = keys.find(key);
    if (it == keys.end()) {
      KeyState ks;
      std::string bytes;
      Status st = store->GetState(key, &bytes);
      if (st.ok()) st = crdt::Envelope::DecodeStored(bytes, &ks.state);
      if (!st.ok() && !st.IsNotFound()) return st;
      if (st.ok()) {
        ks.had_state = true;
        ks.before = storage::KeyDigest(key, bytes);
        ks.conflict_before = conflict::HoldsConflict(ks.state);
      }
      it = keys.emplace(key, std::move(ks)).first;
    }
    *out = &*it;
    return Status::OK();
  }
  // Reads the states of `wanted` keys not yet loaded with one store call
  // (Store::GetStates), so that Get finds them loaded. Best effort: a key
  // whose read or decode fails is left for Get, which reports the error.
  void Prefetch(std::vector<std::string_view> wanted) {
    std::sort(wanted.begin(), wanted.end());
    wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
    wanted.erase(std::remove_if(wanted.begin(), wanted.end(),
                                [this](std::string_view k) { return keys.count(std::string(k)) != 0; }),
                 wanted.end());
    std::vector<std::string> bytes;
    std::vector<bool> found;
    if (wanted.empty() || !store->GetStates(wanted, &bytes, &found).ok()) return;
    for (size_t i = 0; i < wanted.size(); ++i) {
      KeyState ks;
      if (found[i]) {
        if (!crdt::Envelope::DecodeStored(bytes[i], &ks.state).ok()) continue;
        ks.had_state = true;
        ks.before = storage::KeyDigest(wanted[i], bytes[i]);
        ks.conflict_before = conflict::HoldsConflict(ks.state);
      }
      keys.emplace(std::string(wanted[i]), std::move(ks));
    }
  }
  // Records that the key now holds a state.
  void Stored(Entry* e) {
    if (!e->second.had_state && !e->second.counted) {
      e->second.counted = true;
      ++added_keys;
    }
  }
  // Records that the batch puts `bytes` as the key's state (replacing any
  // earlier put of this group).
  void Wrote(Entry* e, const std::string* bytes) {
    if (e->second.final_bytes == nullptr) written.push_back(e);
    e->second.final_bytes = bytes;
  }

  // Joins `incoming` (decoded with the CHECKED decoder) into the key's
  // latest state: the one join of remote deltas (Commit) and of repaired
  // whole states (Repair). Types that lose a concurrent first write are
  // added to *conflicts; *changed (may be null) says whether the state
  // changed. On error the key's state is left as it was. `what` names the
  // incoming state in the error ("delta", "state").
  Status Join(const std::string& key, const crdt::Envelope& incoming, const char* what,
              uint64_t* conflicts, bool* changed) {
    if (changed != nullptr) *changed = false;
    Entry* e = nullptr;
    Status st = Get(key, &e);
    if (!st.ok()) return st.WithContext("reading the state of the key");
    crdt::Envelope& current = e->second.state;
    crdt::Envelope next = current;
    std::vector<crdt::TypedState> lost;
    st = next.Merge(incoming, &lost);
    if (!st.ok()) return st.WithContext(std::string("cannot join the ") + what);
    *conflicts += lost.size();
    if (!(next == current)) {
      current = std::move(next);
      if (!current.empty()) Stored(e);
      if (!e->second.joined) {
        e->second.joined = true;
        joined.push_back(e);
      }
      if (changed != nullptr) *changed = true;
    }
    return Status::OK();
  }

  // Puts the final state of every joined key into `batch`, once (after any
  // local write of this group to it, which the state includes). The
  // encoded bytes stay in the key's entry (joined_bytes).
  void PutJoined(storage::WriteBatch* batch) {
    for (Entry* e : joined) {
      KeyState& ks = e->second;
      ks.joined_bytes = ks.state.Encode();
      batch->PutState(e->first, ks.joined_bytes);
      Wrote(e, &ks.joined_bytes);
    }
  }

  // One digest record per written key, for its final bytes; returns the
  // digest changes (for the sums, which change only after the batch is
  // durable).
  std::vector<DigestChange> PutDigests(storage::WriteBatch* batch) const {
    std::vector<DigestChange> changes;
    changes.reserve(written.size());
    for (const Entry* e : written) {
      DigestChange change;
      change.scope = committer->ScopeOf(e->first);
      change.bucket = storage::BucketOf(e->first);
      change.before = e->second.before;
      change.after = storage::KeyDigest(e->first, *e->second.final_bytes);
      batch->PutDigest(change.scope, change.bucket, e->first, change.after);
      if (change.before != change.after) changes.push_back(change);
    }
    return changes;
  }

  // The conflict index of every written key (conflict/conflict_index.h):
  // an entry put when its final state holds a conflict its stored one did
  // not (detected at `now_ms`), deleted when it no longer does; audit
  // records of the LWW losers of each conflicted key `audited` names.
  void PutConflicts(uint64_t now_ms, const std::function<bool(const std::string&)>& audited,
                    storage::WriteBatch* batch, ConflictCounts* counts) const {
    for (const Entry* e : written) {
      const bool now = conflict::HoldsConflict(e->second.state);
      if (now && !e->second.conflict_before) {
        batch->PutConflict(e->first, conflict::EncodeConflictEntry({now_ms}));
        ++counts->opened;
      } else if (!now && e->second.conflict_before) {
        batch->DeleteConflict(e->first);
        ++counts->closed;
      }
      if (now && audited && audited(e->first)) {
        for (const auto& [id, record] : conflict::AuditRecordsOf(e->second.state, now_ms)) {
          batch->PutAudit(e->first, id, conflict::EncodeAuditRecord(record));
          ++counts->audited;
        }
      }
    }
  }

  // A collection candidate for every written key whose final state is a
  // register tombstone, bounded by `applied` (the vector after the batch).
  // Returns how many it put.
  size_t PutGcCandidates(const storage::AppliedVector& applied, storage::WriteBatch* batch) const {
    size_t put = 0;
    for (const Entry* e : written) {
      crdt::ReplicaId writer;
      if (!IsRegisterTombstone(e->second.state, &writer)) continue;
      const uint64_t seq = AppliedOf(applied, writer, committer->ScopeOf(e->first));
      if (seq == 0) continue;  // a writer this node has no entry for: never collected
      batch->PutGcCandidate(storage::GcCandidate{e->first, writer, seq});
      ++put;
    }
    return put;
  }
};

// Whether `incoming` (a repair's state of `key`, as of `view`) is a
// register tombstone this node already collected: the key holds nothing
// here and the delete is below `floor` (committer.h "Collection").
// Rejoining it would only make it collected again, and rounds would find
// the key differing meanwhile.
bool AlreadyCollected(const storage::AppliedVector& floor, const std::string& key,
                      const std::string& scope, const crdt::Envelope& incoming,
                      const storage::AppliedVector& view, GroupStates* group) {
  crdt::ReplicaId writer;
  if (!IsRegisterTombstone(incoming, &writer)) return false;
  // The delete's seq is at most view[writer]; at most the floor, it was
  // stable when this node collected with it.
  const uint64_t bound = AppliedOf(view, writer, scope);
  if (bound == 0 || bound > AppliedOf(floor, writer, scope)) return false;
  GroupStates::Entry* e = nullptr;
  if (!group->Get(key, &e).ok()) return false;  // the join reports the error
  return !e->second.had_state && e->second.state.empty();
}

// Bounded, printable form of a key for error messages (keys are untrusted
// here: they may be long or not UTF-8).
std::string KeyForError(const std::string& key) {
  std::string out = "'";
  for (size_t i = 0; i < key.size() && i < 64; ++i) {
    unsigned char c = static_cast<unsigned char>(key[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out += static_cast<char>(c);
    } else {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  out += "'";
  if (key.size() > 64) out += "... (" + std::to_string(key.size()) + " bytes)";
  return out;
}

}  // namespace

void Committer::Commit(const std::vector<const Operation*>& ops, std::vector<WriteResult>* results,
                       const std::vector<const RemoteApply*>& remotes,
                       std::vector<RemoteResult>* remote_results) {
  storage::WriteBatch batch;
  if (defer_sync_) batch.DeferSync();
  if (results != nullptr) {
    results->clear();
    results->resize(ops.size());
  }
  if (remote_results != nullptr) {
    remote_results->clear();
    remote_results->resize(remotes.size());
  }
  GroupStates group;
  group.store = store_;
  group.committer = this;
  {
    // Every key the group may touch, read at once.
    std::vector<std::string_view> wanted;
    for (const Operation* op : ops) wanted.push_back(op->key);
    for (const RemoteApply* ra : remotes) {
      for (const gossip::DeltaEntry& e : ra->entries) wanted.push_back(e.key);
    }
    group.Prefetch(std::move(wanted));
  }

  // --- Local operations ----------------------------------------------------
  storage::AppliedVector applied = meta_.applied;
  size_t logged = 0;
  uint64_t log_bytes = 0;
  std::map<std::string, LogAppend> appends;
  std::vector<WriteResult> local_scratch;
  std::vector<WriteResult>& res_all = results != nullptr ? *results : local_scratch;
  if (results == nullptr) res_all.resize(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    const Operation& op = *ops[i];
    WriteResult& res = res_all[i];
    GroupStates::Entry* entry = nullptr;
    Status st = group.Get(op.key, &entry);
    if (!st.ok()) {
      res.error = ApiError{500, "storage", st.ToString()};
      continue;
    }
    crdt::Hlc now = 0;
    st = clock_->NowChecked(&now);
    if (!st.ok()) {
      res.error = ApiError{503, "clock", st.ToString()};
      continue;
    }
    crdt::Envelope& current = entry->second.state;
    crdt::Envelope next, delta;
    if (!ApplyOperation(op, current, meta_.replica, now, &next, &delta, &res.error)) continue;
    current = std::move(next);
    group.Stored(entry);
    res.ok = true;
    res.scope = ScopeOf(op.key);
    res.seq = ++applied[{meta_.replica, res.scope}];
    ++logged;
    res.envelope = current.Encode();
    batch.PutState(op.key, res.envelope);
    group.Wrote(entry, &res.envelope);
    std::string delta_bytes = delta.Encode();
    log_bytes += op.key.size() + delta_bytes.size();
    LogAppend& la = appends[res.scope];
    la.last_seq = res.seq;
    la.bytes += op.key.size() + delta_bytes.size();
    batch.AppendLog(storage::LogEntry{res.scope, res.seq, op.key, std::move(delta_bytes)});
  }

  // --- Remote deltas -------------------------------------------------------
  std::vector<RemoteResult> remote_scratch;
  std::vector<RemoteResult>& rres_all = remote_results != nullptr ? *remote_results : remote_scratch;
  if (remote_results == nullptr) rres_all.resize(remotes.size());
  uint64_t conflicts = 0;
  bool remote_advanced = false;
  for (size_t r = 0; r < remotes.size(); ++r) {
    const RemoteApply& ra = *remotes[r];
    RemoteResult& rr = rres_all[r];
    const std::string origin_name = ra.origin.ToString();
    if (ra.origin == meta_.replica) {
      rr.status = Status::InvalidArgument("deltas of this node's own origin " + origin_name +
                                          " are never applied as remote");
      continue;
    }
    uint64_t at = AppliedOf(applied, ra.origin, ra.scope);
    const uint64_t from = at;
    for (const gossip::DeltaEntry& e : ra.entries) {
      if (e.seq <= at) continue;  // a duplicate
      // Named only in errors (not built for every delta).
      auto where = [&] { return "delta " + origin_name + " seq " + std::to_string(e.seq); };
      if (e.seq > at + 1) {
        rr.status = Status::FailedPrecondition(where() + ": gap after seq " + std::to_string(at));
        break;
      }
      ApiError key_err;
      if (!ValidKey(e.key, &key_err)) {
        rr.status = Status::InvalidArgument(where() + ": " + key_err.message);
        break;
      }
      if (ScopeOf(e.key) != ra.scope) {
        rr.status = Status::InvalidArgument(where() + ": key " + KeyForError(e.key) +
                                            " is not in the placement scope " +
                                            KeyForError(ra.scope) + " it came for");
        break;
      }
      crdt::Envelope delta;
      Status st = crdt::Envelope::Decode(e.delta, &delta);
      if (!st.ok()) {
        rr.status = st.WithContext(where() + ": delta does not decode");
        break;
      }
      st = group.Join(e.key, delta, "delta", &conflicts, nullptr);
      if (!st.ok()) {
        rr.status = st.WithContext(where());
        break;
      }
      at = e.seq;
    }
    if (at > from) {
      applied[{ra.origin, ra.scope}] = at;
      remote_advanced = true;
    }
  }
  // Remote-changed keys go in once, with their final state.
  group.PutJoined(&batch);

  // --- Digest records ------------------------------------------------------
  std::vector<DigestChange> digest_changes = group.PutDigests(&batch);
  if (group.PutGcCandidates(applied, &batch) > 0) gc_candidates_maybe_ = true;
  ConflictCounts conflict_counts;
  group.PutConflicts(clock_->WallMs(), audited_, &batch, &conflict_counts);

  // --- Commit --------------------------------------------------------------
  crdt::Hlc bound = 0;
  if (clock_->NeedsNewBound()) {
    bound = clock_->ProposeBound();
    storage::PutHlcBound(bound, &batch);
  }
  Status st;
  bool wrote = false;
  const bool restored_done =
      !meta_.restored_applied.empty() && (logged > 0 || remote_advanced || !group.joined.empty());
  if (restored_done) {
    // States change now: from here on they are not all the backup's.
    batch.PutMeta(storage::kMetaRestoredApplied, storage::EncodeApplied({}));
  }
  if (logged > 0 || bound != 0 || remote_advanced || group.added_keys > 0 || restored_done) {
    storage::PutApplied(applied, &batch);
    if (group.added_keys > 0) storage::PutKeyCount(meta_.key_count + group.added_keys, &batch);
    st = store_->Write(&batch);
    wrote = true;
  }
  last_status_ = st;
  last_digest_changes_.clear();
  last_appends_.clear();
  if (!st.ok()) {
    ApiError err = storage::Store::IsNoSpace(st)
                       ? ApiError{507, "insufficient_storage",
                                  "the node's disk is full; reads are still served"}
                       : ApiError{500, "storage", st.ToString()};
    for (auto& res : res_all) {
      if (res.ok) {
        res = WriteResult();
        res.error = err;
      }
    }
    for (size_t r = 0; r < remotes.size(); ++r) {
      rres_all[r].status = st;
      rres_all[r].last_durable = AppliedOf(meta_.applied, remotes[r]->origin, remotes[r]->scope);
    }
    return;
  }
  if (wrote) {
    meta_.applied = std::move(applied);
    if (restored_done) meta_.restored_applied.clear();
    meta_.key_count += group.added_keys;
    if (bound != 0) clock_->BoundPersisted(bound);
    ApplyDigestChanges(digest_changes);
    last_digest_changes_ = std::move(digest_changes);
  }
  last_log_bytes_ = log_bytes;
  last_appends_ = std::move(appends);
  type_conflicts_ += conflicts;
  conflict_counts_.Add(conflict_counts);
  const std::string token = SessionToken();
  for (auto& res : res_all) {
    if (res.ok) res.session_token = token;
  }
  for (size_t r = 0; r < remotes.size(); ++r) {
    rres_all[r].last_durable = AppliedOf(meta_.applied, remotes[r]->origin, remotes[r]->scope);
  }
  if (listener_) {
    // Every local write, as before; then each key remote deltas changed,
    // once, with its final state.
    for (size_t i = 0; i < ops.size(); ++i) {
      if (res_all[i].ok) listener_(ops[i]->key, res_all[i].envelope);
    }
    for (const GroupStates::Entry* e : group.joined) listener_(e->first, e->second.joined_bytes);
  }
}

void Committer::Repair(const StateRepair& repair, RepairResult* result) {
  RepairResult scratch;
  RepairResult& out = result != nullptr ? *result : scratch;
  out = RepairResult();
  last_digest_changes_.clear();

  // Every state is checked before anything is joined: one bad state fails
  // the whole repair, with nothing written.
  std::vector<crdt::Envelope> decoded(repair.states.size());
  for (size_t i = 0; i < repair.states.size(); ++i) {
    const auto& [key, bytes] = repair.states[i];
    auto where = [&repair, i] {
      return "repair state " + std::to_string(i) + " of key " + KeyForError(repair.states[i].first);
    };
    ApiError key_err;
    if (!ValidKey(key, &key_err)) {
      out.status = Status::InvalidArgument(where() + ": " + key_err.message);
      return;
    }
    if (ScopeOf(key) != repair.scope) {
      out.status = Status::InvalidArgument(where() + ": not in the placement scope " +
                                           KeyForError(repair.scope) + " it came for");
      return;
    }
    Status st = crdt::Envelope::Decode(bytes, &decoded[i]);
    if (!st.ok()) {
      out.status = st.WithContext(where() + ": state does not decode");
      return;
    }
  }

  if (!repair.states.empty() && repair.has_view) {
    uint64_t behind = 0;
    storage::AppliedVector floor_here;  // the collect floor's entries of the repair's scope
    for (const auto& [origin, seq] : collect_floor_) {
      if (origin.second == repair.scope) floor_here[origin] = seq;
    }
    if (!Covers(repair.view, floor_here, &behind)) {
      out.status = Status::FailedPrecondition(
          "the repair's states are as of a view " + std::to_string(behind) +
          " sequences older than tombstones already collected here; a later round brings them");
      return;
    }
  }

  GroupStates group;
  group.store = store_;
  group.committer = this;
  uint64_t conflicts = 0;
  for (size_t i = 0; i < repair.states.size(); ++i) {
    const std::string& key = repair.states[i].first;
    if (repair.has_view &&
        AlreadyCollected(collect_floor_, key, repair.scope, decoded[i], repair.view, &group)) {
      continue;
    }
    Status st = group.Join(key, decoded[i], "state", &conflicts, nullptr);
    if (!st.ok()) {
      out.status =
          st.WithContext("repair state " + std::to_string(i) + " of key " + KeyForError(key));
      return;
    }
  }

  // Restored states the peer had and dropped (see "A restored backup").
  struct Drop {
    std::string key;
    uint32_t bucket = 0;
    storage::Digest digest;
    bool conflict = false;
  };
  std::vector<Drop> drops;
  if (!meta_.restored_applied.empty() && repair.has_view && !repair.buckets.empty()) {
    std::set<std::string> sent;
    for (const auto& st : repair.states) sent.insert(st.first);
    std::vector<std::pair<std::string, storage::Digest>> keys;
    for (uint32_t bucket : repair.buckets) {
      Status st = storage::ScanBucket(*store_, repair.scope, bucket, &keys);
      if (!st.ok()) {
        out.status = st.WithContext("reading bucket " + std::to_string(bucket) + " for the repair");
        return;
      }
      for (const auto& [key, digest] : keys) {
        if (sent.count(key) != 0) continue;
        GroupStates::Entry* e = nullptr;
        if (!group.Get(key, &e).ok() || !e->second.had_state || e->second.joined) continue;
        crdt::ReplicaId writer;
        if (!IsRegisterOnly(e->second.state, &writer)) continue;
        const uint64_t backed_up = AppliedOf(meta_.restored_applied, writer, repair.scope);
        if (backed_up == 0 || AppliedOf(repair.view, writer, repair.scope) < backed_up) continue;
        drops.push_back(Drop{key, bucket, digest, e->second.conflict_before});
      }
    }
  }
  const bool restored_done = !meta_.restored_applied.empty() && repair.has_advance;

  // The advance: entry by entry the max, except this node's own origin
  // (its own log is the truth).
  storage::AppliedVector applied = meta_.applied;
  bool advanced = false;
  if (repair.has_advance) {
    for (const auto& [origin, seq] : repair.advance) {
      if (origin.first == meta_.replica) continue;
      uint64_t& have = applied[origin];
      if (seq > have) {
        have = seq;
        advanced = true;
      }
    }
  }

  storage::WriteBatch batch;
  if (defer_sync_) batch.DeferSync();
  group.PutJoined(&batch);
  std::vector<DigestChange> digest_changes = group.PutDigests(&batch);
  if (group.PutGcCandidates(advanced ? applied : meta_.applied, &batch) > 0) {
    gc_candidates_maybe_ = true;
  }
  ConflictCounts conflict_counts;
  group.PutConflicts(clock_->WallMs(), audited_, &batch, &conflict_counts);
  storage::AppliedVector floor = collect_floor_;
  bool floor_raised = false;
  for (const auto& [origin, seq] : repair.peer_floor) {
    uint64_t& f = floor[origin];
    if (seq > f) {
      f = seq;
      floor_raised = true;
    }
  }
  for (const Drop& d : drops) {
    batch.DeleteState(d.key);
    batch.DeleteDigest(repair.scope, d.bucket, d.key);
    batch.DeleteGcCandidate(d.key);
    if (d.conflict) batch.DeleteConflict(d.key);
    digest_changes.push_back(DigestChange{repair.scope, d.bucket, d.digest, storage::Digest()});
  }
  if (restored_done) batch.PutMeta(storage::kMetaRestoredApplied, storage::EncodeApplied({}));
  if (group.joined.empty() && !advanced && !floor_raised && drops.empty() && !restored_done) {
    last_status_ = Status::OK();
    type_conflicts_ += conflicts;
    out.applied = meta_.applied;
    return;  // nothing to write
  }
  if (floor_raised) batch.PutMeta(storage::kMetaCollectFloor, storage::EncodeApplied(floor));
  storage::PutApplied(advanced ? applied : meta_.applied, &batch);
  const uint64_t keys_after = meta_.key_count + group.added_keys -
                              std::min<uint64_t>(meta_.key_count + group.added_keys, drops.size());
  if (group.added_keys > 0 || !drops.empty()) storage::PutKeyCount(keys_after, &batch);
  Status st = store_->Write(&batch);
  last_status_ = st;
  if (!st.ok()) {
    out.status = st;
    return;
  }
  if (advanced) meta_.applied = std::move(applied);
  if (floor_raised) collect_floor_ = std::move(floor);
  if (restored_done) meta_.restored_applied.clear();
  meta_.key_count = keys_after;
  out.dropped = drops.size();
  ApplyDigestChanges(digest_changes);
  last_digest_changes_ = std::move(digest_changes);
  type_conflicts_ += conflicts;
  conflict_counts_.Add(conflict_counts);
  out.changed = group.joined.size();
  out.applied = meta_.applied;
  if (listener_) {
    for (const GroupStates::Entry* e : group.joined) listener_(e->first, e->second.joined_bytes);
  }
}

void Committer::Collect(const storage::AppliedVector& stable, size_t limit,
                        CollectResult* result) {
  CollectResult scratch;
  CollectResult& out = result != nullptr ? *result : scratch;
  out = CollectResult();
  last_digest_changes_.clear();
  if (!gc_candidates_maybe_) {
    // None are stored: skip the scan (see gc_candidates_maybe_).
    out.wrapped = true;
    return;
  }
  std::vector<storage::GcCandidate> candidates;
  Status st = store_->ScanGcCandidates(gc_cursor_, limit, &candidates);
  if (!st.ok()) {
    out.status = st;
    return;
  }
  // A full scan found none: none are stored until a batch puts one.
  if (gc_cursor_.empty() && candidates.empty()) gc_candidates_maybe_ = false;
  out.examined = candidates.size();
  out.wrapped = candidates.size() < limit;
  const std::string next_cursor = out.wrapped ? std::string() : candidates.back().key;

  storage::WriteBatch batch;
  if (defer_sync_) batch.DeferSync();
  std::vector<DigestChange> changes;
  for (const storage::GcCandidate& c : candidates) {
    const std::string scope = ScopeOf(c.key);
    if (AppliedOf(stable, c.writer, scope) < c.seq) continue;  // not stable yet
    std::string bytes;
    st = store_->GetState(c.key, &bytes);
    if (st.IsNotFound()) {
      batch.DeleteGcCandidate(c.key);
      continue;
    }
    crdt::Envelope env;
    if (st.ok()) st = crdt::Envelope::DecodeStored(bytes, &env);
    if (!st.ok()) {
      out.status = st.WithContext("collecting key " + KeyForError(c.key));
      return;
    }
    crdt::ReplicaId writer;
    if (!IsRegisterTombstone(env, &writer)) {
      batch.DeleteGcCandidate(c.key);  // written since: nothing to collect
      continue;
    }
    if (writer != c.writer) continue;  // a later delete's candidate replaces this one
    DigestChange change;
    change.scope = scope;
    change.bucket = storage::BucketOf(c.key);
    change.before = storage::KeyDigest(c.key, bytes);
    batch.DeleteState(c.key);
    batch.DeleteDigest(scope, change.bucket, c.key);
    batch.DeleteGcCandidate(c.key);
    changes.push_back(change);
  }
  storage::AppliedVector floor = collect_floor_;
  if (!changes.empty()) {
    for (const auto& [origin, seq] : stable) {
      uint64_t& f = floor[origin];
      f = std::max(f, seq);
    }
    batch.PutMeta(storage::kMetaCollectFloor, storage::EncodeApplied(floor));
  }
  if (batch.Count() > 0) {
    const uint64_t keys_after = meta_.key_count - std::min<uint64_t>(meta_.key_count, changes.size());
    if (!changes.empty()) storage::PutKeyCount(keys_after, &batch);
    st = store_->Write(&batch);
    last_status_ = st;
    if (!st.ok()) {
      out.status = st;
      return;
    }
    meta_.key_count = keys_after;
    ApplyDigestChanges(changes);
    collect_floor_ = std::move(floor);
    out.collected = changes.size();
    last_digest_changes_ = std::move(changes);
  }
  gc_cursor_ = next_cursor;
}

}  // namespace meridian::node
