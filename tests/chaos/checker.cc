#include "tests/chaos/checker.h"

#include <algorithm>
#include <set>
#include <sstream>

namespace meridian::chaos {

namespace {

using nlohmann::json;

const char* const kKinds[] = {"register",   "mvregister",   "counter",      "set_add",
                              "set_remove", "map_counter",  "map_set_add",  "map_set_remove", "map_register",
                              "text_insert", "text_delete"};

// The ops of one key, and what the final state holds there.
struct KeyOps {
  std::vector<const Op*> ops;
  const json* item = nullptr;  // null: the scan did not list the key
};

bool Acked(const Op* op) { return op->outcome == Outcome::kAcknowledged; }

// The item's value when it is of `type`, else null.
const json* ValueOf(const json* item, const char* type) {
  if (item == nullptr || !item->is_object() || item->value("type", "") != type) return nullptr;
  auto it = item->find("value");
  return it == item->end() ? nullptr : &*it;
}

std::string Show(const json* j) { return j == nullptr ? "nothing" : j->dump(); }

class Checker {
 public:
  explicit Checker(CheckResult* out) : out_(out) {}

  void Fail(bool loss, size_t lost, std::string what, std::vector<const Op*> ops) {
    Violation v;
    v.loss = loss;
    v.lost = loss ? std::max<size_t>(lost, 1) : 0;
    v.what = std::move(what);
    v.ops = std::move(ops);
    out_->lost += v.lost;
    out_->violations.push_back(std::move(v));
  }

  void Register(const std::string& key, const KeyOps& k) {
    const json* value = ValueOf(k.item, "register");
    const Op* best = nullptr;  // the acknowledged write with the greatest hlc
    for (const Op* op : k.ops) {
      if (Acked(op) && (best == nullptr || op->hlc > best->hlc)) best = op;
    }
    if (value == nullptr) {
      if (best != nullptr) {
        Fail(true, 1, "register " + key + ": acknowledged writes but the key holds " + Show(k.item),
             {best});
      }
      return;
    }
    const Op* writer = FindArg(k.ops, *value);
    if (writer == nullptr) {
      Fail(false, 0, "register " + key + ": holds " + value->dump() + ", which no op wrote", {});
      return;
    }
    const uint64_t hlc = k.item->value("hlc", uint64_t{0});
    if (best != nullptr && hlc < best->hlc) {
      Fail(true, 1,
           "register " + key + ": holds " + value->dump() + " (hlc " + std::to_string(hlc) +
               "), older than the acknowledged " + best->arg + " (hlc " +
               std::to_string(best->hlc) + ")",
           {best, writer});
    }
  }

  void MvRegister(const std::string& key, const KeyOps& k) {
    std::vector<json> values;
    if (k.item != nullptr && k.item->is_object() && k.item->value("type", "") == "mvregister") {
      if (k.item->contains("siblings")) {
        for (const json& s : (*k.item)["siblings"]) values.push_back(s.value("value", json()));
        if (values.size() > 1) ++out_->conflicts;
      } else if (k.item->contains("value")) {
        values.push_back((*k.item)["value"]);
      }
    }
    const Op* acked = nullptr;
    for (const Op* op : k.ops) {
      if (Acked(op)) acked = op;
    }
    if (values.empty() && acked != nullptr) {
      Fail(true, 1, "mvregister " + key + ": acknowledged writes but the key holds " + Show(k.item),
           {acked});
    }
    for (const json& v : values) {
      if (FindArg(k.ops, v) == nullptr) {
        Fail(false, 0, "mvregister " + key + ": holds " + v.dump() + ", which no op wrote", {});
      }
    }
  }

  // Counter bounds for ops of `kind` (the key's counter, or a map field).
  void Counter(const std::string& what, const std::vector<const Op*>& ops, OpKind kind,
               const json* value) {
    int64_t acked = 0, attempted = 0;
    std::vector<const Op*> involved;
    for (const Op* op : ops) {
      if (op->kind != kind) continue;
      involved.push_back(op);
      attempted += op->amount;
      if (Acked(op)) acked += op->amount;
    }
    if (involved.empty()) return;
    int64_t v = 0;
    if (value != nullptr && value->is_number_integer()) {
      v = value->get<int64_t>();
    } else if (value != nullptr) {
      Fail(false, 0, what + ": holds " + value->dump() + ", not a number", involved);
      return;
    }
    if (v < acked) {
      // Say how many acknowledged increments are missing at least: the
      // fewest whose amounts reach the gap.
      std::vector<int64_t> amounts;
      for (const Op* op : involved) {
        if (Acked(op)) amounts.push_back(op->amount);
      }
      std::sort(amounts.rbegin(), amounts.rend());
      size_t n = 0;
      for (int64_t gap = acked - v; gap > 0 && n < amounts.size(); ++n) gap -= amounts[n];
      Fail(true, n,
           what + ": value " + std::to_string(v) + " below the acknowledged sum " +
               std::to_string(acked) + " (attempted " + std::to_string(attempted) + ")",
           involved);
    } else if (v > attempted) {
      Fail(false, 0,
           what + ": value " + std::to_string(v) + " above the attempted sum " +
               std::to_string(attempted),
           involved);
    }
  }

  // Set rules for adds of `add` and removes of `remove` (kind counts).
  void SetLike(const std::string& what, const std::vector<const Op*>& ops, OpKind add,
               OpKind remove, const json* value) {
    std::set<std::string> present, removed;
    std::map<std::string, const Op*> added;  // element → its add op
    bool any = false;
    for (const Op* op : ops) {
      if (op->kind == add) {
        added.emplace(op->arg, op);
        any = true;
      } else if (op->kind == remove) {
        removed.insert(op->arg);
        any = true;
      }
    }
    if (!any) return;
    if (value != nullptr && value->is_array()) {
      for (const json& e : *value) {
        if (e.is_string()) {
          present.insert(e.get<std::string>());
        } else {
          Fail(false, 0, what + ": holds " + e.dump() + ", which no op added", {});
        }
      }
    } else if (value != nullptr) {
      Fail(false, 0, what + ": holds " + value->dump() + ", not a set", {});
    }
    std::vector<const Op*> missing;
    for (const auto& [element, op] : added) {
      if (Acked(op) && !removed.count(element) && !present.count(element)) {
        missing.push_back(op);
      }
    }
    if (!missing.empty()) {
      std::vector<const Op*> involved = missing;
      for (const Op* op : ops) {
        if (op->kind == remove && std::any_of(missing.begin(), missing.end(), [&](const Op* m) {
              return m->arg == op->arg;
            })) {
          involved.push_back(op);
        }
      }
      Fail(true, missing.size(),
           what + ": " + std::to_string(missing.size()) +
               " acknowledged adds (never removed) are missing",
           involved);
    }
    for (const std::string& e : present) {
      if (!added.count(e)) Fail(false, 0, what + ": holds \"" + e + "\", which no op added", {});
    }
  }

  void Map(const std::string& key, const KeyOps& k) {
    const json* value = ValueOf(k.item, "map");
    auto field = [&](const char* name, const char* type) -> const json* {
      if (value == nullptr || !value->is_object() || !value->contains(name)) return nullptr;
      const json& f = (*value)[name];
      if (f.value("type", "") != type || !f.contains("value")) return &f;  // shown as wrong
      return &f["value"];
    };
    Counter("map " + key + " hits", k.ops, OpKind::kMapCounter, field("hits", "counter"));
    SetLike("map " + key + " tags", k.ops, OpKind::kMapSetAdd, OpKind::kMapSetRemove,
            field("tags", "set"));
    const json* owner = field("owner", "register");
    const Op* acked = nullptr;
    std::vector<const Op*> writes;
    for (const Op* op : k.ops) {
      if (op->kind != OpKind::kMapRegister) continue;
      writes.push_back(op);
      if (Acked(op)) acked = op;
    }
    if (owner == nullptr && acked != nullptr) {
      Fail(true, 1, "map " + key + " owner: acknowledged writes but the field is missing", {acked});
    } else if (owner != nullptr && FindArg(writes, *owner) == nullptr) {
      Fail(false, 0, "map " + key + " owner: holds " + owner->dump() + ", which no op wrote",
           writes);
    }
  }

  void Text(const std::string& key, const KeyOps& k) {
    const json* value = ValueOf(k.item, "text");
    std::string text;
    if (value != nullptr && value->is_string()) {
      text = value->get<std::string>();
    } else if (value != nullptr) {
      Fail(false, 0, "text " + key + ": holds " + value->dump() + ", not a string", {});
      return;
    }
    std::map<std::string, const Op*> inserted;
    std::set<std::string> deleted;
    for (const Op* op : k.ops) {
      if (op->kind == OpKind::kTextInsert) inserted.emplace(op->arg, op);
      if (op->kind == OpKind::kTextDelete) deleted.insert(op->arg);
    }
    // Split into markers "[...]"; anything else is a broken document.
    std::map<std::string, int> seen;
    size_t i = 0;
    while (i < text.size()) {
      size_t close = text.find(']', i);
      if (text[i] != '[' || close == std::string::npos ||
          text.find('[', i + 1) < close) {
        Fail(false, 0,
             "text " + key + ": not a run of whole markers at byte " + std::to_string(i) + ": \"" +
                 text.substr(i, 80) + "\"",
             {});
        break;
      }
      ++seen[text.substr(i, close + 1 - i)];
      i = close + 1;
    }
    for (const auto& [marker, n] : seen) {
      auto it = inserted.find(marker);
      if (it == inserted.end()) {
        Fail(false, 0, "text " + key + ": holds " + marker + ", which no op inserted", {});
      } else if (n != 1) {
        Fail(false, 0, "text " + key + ": holds " + marker + " " + std::to_string(n) + " times",
             {it->second});
      }
    }
    std::vector<const Op*> missing;
    for (const auto& [marker, op] : inserted) {
      if (Acked(op) && !deleted.count(marker) && !seen.count(marker)) missing.push_back(op);
    }
    if (!missing.empty()) {
      Fail(true, missing.size(),
           "text " + key + ": " + std::to_string(missing.size()) +
               " acknowledged inserts (never deleted) are missing",
           missing);
    }
  }

  void ReviewQueues(const FinalState& f) {
    std::set<std::string> expected;
    for (const auto& [key, item] : f.items) {
      if (key.rfind(KeyPrefix(OpKind::kMvRegister), 0) == 0 && item.is_object() &&
          item.contains("siblings") && item["siblings"].size() > 1) {
        expected.insert(key);
      }
    }
    for (size_t n = 0; n < f.review_keys.size(); ++n) {
      std::map<std::string, int> listed;
      for (const std::string& key : f.review_keys[n]) ++listed[key];
      for (const auto& [key, count] : listed) {
        if (count != 1) {
          Fail(false, 0,
               "review queue of node " + std::to_string(n) + " lists " + key + " " +
                   std::to_string(count) + " times",
               {});
        } else if (!expected.count(key)) {
          Fail(false, 0,
               "review queue of node " + std::to_string(n) + " lists " + key +
                   ", which holds no siblings",
               {});
        }
      }
      for (const std::string& key : expected) {
        if (!listed.count(key)) {
          Fail(false, 0,
               "review queue of node " + std::to_string(n) + " misses " + key +
                   ", which holds siblings",
               {});
        }
      }
    }
  }

 private:
  // The op that wrote `value` (a string arg), null when none did.
  static const Op* FindArg(const std::vector<const Op*>& ops, const json& value) {
    if (!value.is_string()) return nullptr;
    const std::string& s = value.get_ref<const std::string&>();
    for (const Op* op : ops) {
      if (op->arg == s) return op;
    }
    return nullptr;
  }

  CheckResult* out_;
};

bool HasPrefix(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

const char* KindName(OpKind k) { return kKinds[static_cast<int>(k)]; }

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kAcknowledged: return "acknowledged";
    case Outcome::kFailed: return "failed";
    case Outcome::kIndeterminate: return "indeterminate";
  }
  return "?";
}

const char* KeyPrefix(OpKind k) {
  switch (k) {
    case OpKind::kRegister: return "chaos/reg/";
    case OpKind::kMvRegister: return "chaos/mv/";
    case OpKind::kCounter: return "chaos/ctr/";
    case OpKind::kSetAdd:
    case OpKind::kSetRemove: return "chaos/set/";
    case OpKind::kMapCounter:
    case OpKind::kMapSetAdd:
    case OpKind::kMapSetRemove:
    case OpKind::kMapRegister: return "chaos/map/";
    case OpKind::kTextInsert:
    case OpKind::kTextDelete: return "chaos/text/";
  }
  return "chaos/";
}

std::string Describe(const Op& op, const std::vector<std::string>& nodes) {
  std::ostringstream s;
  s << "client " << op.client << " op " << op.id << " at "
    << (op.node >= 0 && op.node < static_cast<int>(nodes.size()) ? nodes[op.node]
                                                                 : std::to_string(op.node))
    << " t=" << op.start_ms << ".." << op.end_ms << "ms " << KindName(op.kind) << " " << op.key;
  if (!op.arg.empty()) s << " " << op.arg;
  if (op.amount != 0) s << " +" << op.amount;
  s << ": " << OutcomeName(op.outcome);
  if (op.http_status != 0) s << " " << op.http_status;
  if (!op.error.empty()) s << " (" << op.error << ")";
  if (op.hlc != 0) s << " hlc " << op.hlc;
  return s.str();
}

CheckResult Check(const std::vector<Op>& ops, const FinalState& final_state) {
  CheckResult out;
  std::map<std::string, KeyOps> keys;
  for (const Op& op : ops) keys[op.key].ops.push_back(&op);
  for (auto& [key, k] : keys) {
    auto it = final_state.items.find(key);
    if (it != final_state.items.end()) k.item = &it->second;
  }
  Checker c(&out);
  for (const auto& [key, k] : keys) {
    ++out.keys;
    if (HasPrefix(key, KeyPrefix(OpKind::kRegister))) {
      c.Register(key, k);
    } else if (HasPrefix(key, KeyPrefix(OpKind::kMvRegister))) {
      c.MvRegister(key, k);
    } else if (HasPrefix(key, KeyPrefix(OpKind::kCounter))) {
      c.Counter("counter " + key, k.ops, OpKind::kCounter, ValueOf(k.item, "counter"));
    } else if (HasPrefix(key, KeyPrefix(OpKind::kSetAdd))) {
      c.SetLike("set " + key, k.ops, OpKind::kSetAdd, OpKind::kSetRemove, ValueOf(k.item, "set"));
    } else if (HasPrefix(key, KeyPrefix(OpKind::kMapCounter))) {
      c.Map(key, k);
    } else if (HasPrefix(key, KeyPrefix(OpKind::kTextInsert))) {
      c.Text(key, k);
    }
  }
  // Keys nobody wrote.
  for (const auto& [key, item] : final_state.items) {
    if (!keys.count(key)) {
      c.Fail(false, 0, "key " + key + " holds " + item.dump() + ", but no op wrote it", {});
    }
  }
  c.ReviewQueues(final_state);
  return out;
}

}  // namespace meridian::chaos
