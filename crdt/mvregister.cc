#include "crdt/mvregister.h"

#include <tuple>

namespace meridian::crdt {

void MvRegisterStore::Encode(Encoder* e) const {
  e->Array(static_cast<uint32_t>(siblings.size()));
  for (const auto& [dot, tv] : siblings) {
    e->Array(3);
    EncodeDot(dot, e);
    e->Uint(tv.hlc);
    e->Bin(tv.value);
  }
}

Status MvRegisterStore::Decode(const Cursor& c, MvRegisterStore* out) {
  out->siblings.clear();
  std::vector<Cursor> items;
  MERIDIAN_RETURN_IF_ERROR(c.Array(&items, "mvregister siblings"));
  std::vector<Cursor> pair;
  for (const Cursor& item : items) {
    MERIDIAN_RETURN_IF_ERROR(item.Array(&pair, "mvregister sibling", 3));
    Dot dot;
    MERIDIAN_RETURN_IF_ERROR(DecodeDot(pair[0], &dot));
    if (!out->siblings.empty() && !(out->siblings.rbegin()->first < dot)) {
      return Status::Corruption("mvregister siblings are not in strictly ascending order");
    }
    TimedValue tv;
    MERIDIAN_RETURN_IF_ERROR(pair[1].Uint(&tv.hlc, "mvregister sibling hlc"));
    MERIDIAN_RETURN_IF_ERROR(pair[2].Bin(&tv.value, "mvregister value"));
    out->siblings.emplace_hint(out->siblings.end(), std::move(dot), std::move(tv));
  }
  return Status::OK();
}

std::vector<std::string> MvRegister::Values() const {
  std::vector<std::string> out;
  out.reserve(store_.siblings.size());
  for (const auto& entry : store_.siblings) out.push_back(entry.second.value);
  return out;
}

const std::pair<const Dot, TimedValue>* MvRegister::LwwWinner() const {
  const std::pair<const Dot, TimedValue>* best = nullptr;
  for (const auto& entry : store_.siblings) {
    if (best == nullptr ||
        std::tie(best->second.hlc, best->first.replica, best->first.counter) <
            std::tie(entry.second.hlc, entry.first.replica, entry.first.counter)) {
      best = &entry;
    }
  }
  return best;
}

CausalContext MvRegister::Superseded(const CausalContext* context) const {
  // Only live siblings matter: a dot this replica has seen but no longer
  // holds was superseded already, everywhere it travels.
  CausalContext out;
  for (const auto& entry : store_.siblings) {
    if (context == nullptr || context->Contains(entry.first)) out.Add(entry.first);
  }
  return out;
}

Status MvRegister::Write(const ReplicaId& replica, Hlc hlc, std::string value,
                         const CausalContext* context, MvRegister* delta) const {
  if (value.size() > kMaxRegisterValueBytes) {
    return Status::InvalidArgument("value of " + std::to_string(value.size()) +
                                   " bytes exceeds the limit of " +
                                   std::to_string(kMaxRegisterValueBytes));
  }
  Dot dot = ctx_.NextDot(replica);
  CausalContext dc = Superseded(context);
  dc.Add(dot);
  MvRegisterStore ds;
  ds.siblings.emplace(dot, TimedValue{hlc, std::move(value)});
  *delta = MvRegister();
  Assign(delta, std::move(ds), std::move(dc));
  return Status::OK();
}

MvRegister MvRegister::Delete(const CausalContext* context) const {
  MvRegister delta;
  Assign(&delta, MvRegisterStore(), Superseded(context));
  return delta;
}

}  // namespace meridian::crdt
