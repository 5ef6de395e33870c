#include "tests/node/committer_node.h"

#include <boost/test/unit_test.hpp>

#include "crdt/counter.h"
#include "crdt/map.h"
#include "crdt/mvregister.h"
#include "crdt/register.h"
#include "crdt/set.h"
#include "node/operation.h"

namespace meridian::testing {

CommitterNode::CommitterNode(std::string dir_in, std::string id_in, uint64_t incarnation)
    : dir(std::move(dir_in)), id(std::move(id_in)) {
  Open(incarnation);
}

void CommitterNode::Reopen() {
  committer.reset();
  store.reset();
  Open(0);
}

void CommitterNode::Open(uint64_t incarnation) {
  Status st = storage::Store::Open(dir, storage::StoreOptions{}, &store);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  st = storage::EnsureDigestIndex(store.get());
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  bool fresh = false;
  st = storage::LoadNodeMeta(*store, id, &meta, &fresh);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  if (fresh) {
    BOOST_REQUIRE(incarnation != 0);
    meta.replica = crdt::ReplicaId{id, incarnation};
    storage::WriteBatch batch;
    storage::InitIdentity(meta.replica, &batch);
    st = store->Write(&batch);
    BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  }
  clock = std::make_unique<crdt::HybridClock>(&wall, kCommitterMaxOffsetMs);
  clock->Restore(meta.hlc_bound);
  committer = std::make_unique<node::Committer>(store.get(), clock.get(), meta);
}

std::string CommitterNode::State(const std::string& key) {
  std::string bytes;
  Status st = store->GetState(key, &bytes);
  if (st.IsNotFound()) return "";
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  return bytes;
}

crdt::Envelope CommitterNode::Env(const std::string& key) {
  crdt::Envelope env;
  std::string bytes = State(key);
  if (!bytes.empty()) {
    Status st = crdt::Envelope::Decode(bytes, &env);
    BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  }
  return env;
}

nlohmann::json CommitterNode::Read(const std::string& key) {
  nlohmann::json out;
  int http = 0;
  std::string context;
  node::ApiError err;
  crdt::Envelope env = Env(key);
  BOOST_REQUIRE_MESSAGE(node::RenderRead(key, env, &out, &http, &context, &err), err.message);
  return out;
}

std::vector<storage::Store::KeyState> CommitterNode::States() {
  std::vector<storage::Store::KeyState> out;
  Status st = store->Scan("", "", 1000000, &out);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  return out;
}

std::vector<gossip::DeltaEntry> CommitterNode::Log(uint64_t from, size_t limit) {
  std::vector<storage::LogEntry> log;
  Status st = store->ReadLog("", from, limit, &log);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  std::vector<gossip::DeltaEntry> out;
  for (auto& e : log) out.push_back(gossip::DeltaEntry{e.seq, e.key, e.delta});
  return out;
}

storage::NodeMeta CommitterNode::Stored() {
  storage::NodeMeta m;
  bool fresh = true;
  Status st = storage::LoadNodeMeta(*store, id, &m, &fresh);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  BOOST_REQUIRE(!fresh);
  return m;
}

storage::BucketSums CommitterNode::DiskSums() {
  storage::BucketSums sums;
  Status st = storage::LoadBucketSums(*store, "", &sums);
  BOOST_REQUIRE_MESSAGE(st.ok(), st.ToString());
  return sums;
}

uint64_t CommitterNode::AppliedOf(const crdt::ReplicaId& origin) {
  auto it = c()->applied().find({origin, ""});
  return it == c()->applied().end() ? 0 : it->second;
}

node::Operation Put(const std::string& key, const nlohmann::json& value) {
  node::Operation op;
  op.kind = node::Operation::Kind::kPut;
  op.key = key;
  op.kv = true;
  op.type = crdt::Register::kTag;
  op.value = node::ValueToBytes(value);
  return op;
}
node::Operation MvPut(const std::string& key, const nlohmann::json& value) {
  node::Operation op = Put(key, value);
  op.type = crdt::MvRegister::kTag;
  return op;
}
node::Operation Add(const std::string& key, int64_t n) {
  node::Operation op;
  op.kind = node::Operation::Kind::kCounterAdd;
  op.key = key;
  op.type = crdt::Counter::kTag;
  op.amount = n;
  return op;
}
node::Operation SetUpdate(const std::string& key, std::vector<nlohmann::json> adds, std::vector<nlohmann::json> removes) {
  node::Operation op;
  op.kind = node::Operation::Kind::kSetUpdate;
  op.key = key;
  op.type = crdt::Set::kTag;
  for (auto& a : adds) op.adds.push_back(node::ValueToBytes(a));
  for (auto& r : removes) op.removes.push_back(node::ValueToBytes(r));
  return op;
}
node::Operation MapCount(const std::string& key, const std::string& field, int64_t n) {
  node::Operation op;
  op.kind = node::Operation::Kind::kMapUpdate;
  op.key = key;
  op.type = crdt::Map::kTag;
  crdt::FieldOp f;
  f.name = field;
  f.type = crdt::FieldType::kCounter;
  f.add = n;
  op.field_ops.push_back(f);
  return op;
}
node::Operation Delete(const std::string& key) {
  node::Operation op;
  op.kind = node::Operation::Kind::kDelete;
  op.key = key;
  return op;
}

}  // namespace meridian::testing
