// text_cross_driver: the C++ side of tests/demo/text_cross_test.mjs, which
// checks that demo/text.js (the page's JavaScript replica of the text
// CRDT) is byte-compatible with crdt/text.cc.
//
// Reads one JSON document on stdin:
//   {"histories": [{"replicas": [{"node": "...", "inc": "<decimal>"}...],
//                   "full": bool,          // states as bytes, not hashes
//                   "ops": [op...]}...],
//    "decode": ["<hex>"...]}               // encodings to Text::Decode
// replays every history with meridian::crdt::Text and writes on stdout
//   {"histories": [{"out": [record per op...]}...],
//    "decode": [{"ok": true, "e": "<hex re-encoding>", "c": content,
//                "p": pending?} | {"ok": false, "err": "..."}...]}
//
// Ops (replica indices r, f; messages m and versions v are ids the
// history names; positions and lengths are clamped to the document, so a
// shortened history still replays):
//   ins  {"r","p","s","m"}  Insert at p; the delta is message m
//   del  {"r","p","n","m"}  Delete n at p; the delta is message m
//   dlv  {"r","m"}          r merges message m (skipped when m is unknown)
//   snap {"r","v"}          version v := r's version()
//   sd   {"f","r","v","m"}  message m := f.DeltaSince(version v, or r's
//                           version() when v < 0); r merges it
//   st   {"f","r"}          r merges Text::Decode(f.Encode())
//   apl  {"r","v","e","m"}  r's Text::Apply of edits e ([{"i": true, "p",
//                           "s"} | {"i": false, "p", "n"}]) at version v;
//                           the delta is message m (the JS side merges
//                           the bytes the op carries in "x")
//   cp   {}                 every replica's bytes, content, version
// Records: {"d": delta hex} for ins/del/sd/apl, then for the replica the op
// changed {"h": FNV-1a of its Encode()} (or {"e": hex} when "full") and
// {"n": length}; snap gives {"v": hex of TextVersion::Encode()}; cp gives
// {"cp": [{"e", "c", "v", "p"}...]}; a refused step gives {"err": "..."}
// (for st, "decode: " and the Status message: a refusal the JS side must
// make alike).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "crdt/codec.h"
#include "crdt/text.h"

using meridian::Status;
using meridian::crdt::FromHex;
using meridian::crdt::ReplicaId;
using meridian::crdt::Text;
using meridian::crdt::TextVersion;
using meridian::crdt::ToHex;
using nlohmann::json;

namespace {

std::string Fnv(const std::string& b) {
  uint32_t h = 2166136261u;
  for (unsigned char c : b) {
    h ^= c;
    h *= 16777619u;
  }
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", h);
  return buf;
}

json ReplayHistory(const json& hist) {
  std::vector<ReplicaId> ids;
  std::vector<Text> reps;
  for (const json& r : hist.at("replicas")) {
    ids.push_back(ReplicaId{r.at("node").get<std::string>(),
                            std::stoull(r.at("inc").get<std::string>())});
    reps.emplace_back();
  }
  const bool full = hist.value("full", false);
  std::map<int64_t, Text> msgs;
  std::map<int64_t, TextVersion> versions;
  json out = json::array();
  auto state = [&](json* rec, size_t r) {
    const std::string e = reps[r].Encode();
    if (full) {
      (*rec)["e"] = ToHex(e);
    } else {
      (*rec)["h"] = Fnv(e);
    }
    (*rec)["n"] = reps[r].Length();
  };
  for (const json& op : hist.at("ops")) {
    const std::string t = op.at("t").get<std::string>();
    json rec = json::object();
    if (t == "ins" || t == "del") {
      const size_t r = op.at("r").get<size_t>();
      Text& x = reps[r];
      const uint64_t len = x.Length();
      const uint64_t p = std::min<uint64_t>(op.at("p").get<uint64_t>(), len);
      Text delta;
      Status s;
      if (t == "ins") {
        s = x.Insert(ids[r], p, op.at("s").get<std::string>(), &delta);
      } else {
        const uint64_t n = std::min<uint64_t>(op.at("n").get<uint64_t>(), len - p);
        s = x.Delete(ids[r], p, n, &delta);
      }
      if (!s.ok()) {
        rec["err"] = s.ToString();
      } else {
        rec["d"] = ToHex(delta.Encode());
        msgs[op.at("m").get<int64_t>()] = std::move(delta);
        state(&rec, r);
      }
    } else if (t == "apl") {
      // Edits at an older version (Text::Apply), which text.js does not
      // make: the JS side merges the delta this gives.
      const size_t r = op.at("r").get<size_t>();
      auto vit = versions.find(op.at("v").get<int64_t>());
      std::vector<meridian::crdt::TextEdit> edits;
      for (const json& e : op.at("e")) {
        meridian::crdt::TextEdit te;
        te.insert = e.at("i").get<bool>();
        te.pos = e.at("p").get<uint64_t>();
        if (te.insert) {
          te.text = e.at("s").get<std::string>();
        } else {
          te.len = e.at("n").get<uint64_t>();
        }
        edits.push_back(std::move(te));
      }
      Text delta;
      const Status s = reps[r].Apply(ids[r], vit == versions.end() ? nullptr : &vit->second, edits, &delta);
      if (!s.ok()) {
        rec["err"] = s.message();
      } else {
        rec["d"] = ToHex(delta.Encode());
        msgs[op.at("m").get<int64_t>()] = std::move(delta);
        state(&rec, r);
      }
    } else if (t == "dlv") {
      const size_t r = op.at("r").get<size_t>();
      auto it = msgs.find(op.at("m").get<int64_t>());
      if (it == msgs.end()) {
        rec["skip"] = true;
      } else {
        reps[r].Merge(it->second);
        state(&rec, r);
      }
    } else if (t == "snap") {
      const size_t r = op.at("r").get<size_t>();
      TextVersion v = reps[r].version();
      rec["v"] = ToHex(v.Encode());
      versions[op.at("v").get<int64_t>()] = std::move(v);
    } else if (t == "sd") {
      const size_t f = op.at("f").get<size_t>(), r = op.at("r").get<size_t>();
      const int64_t vid = op.at("v").get<int64_t>();
      TextVersion v;
      if (vid < 0) {
        v = reps[r].version();
      } else {
        auto it = versions.find(vid);
        if (it != versions.end()) v = it->second;
      }
      Text delta = reps[f].DeltaSince(v);
      rec["d"] = ToHex(delta.Encode());
      reps[r].Merge(delta);
      msgs[op.at("m").get<int64_t>()] = std::move(delta);
      state(&rec, r);
    } else if (t == "st") {
      const size_t f = op.at("f").get<size_t>(), r = op.at("r").get<size_t>();
      Text copy;
      const Status s = Text::Decode(reps[f].Encode(), &copy);
      if (!s.ok()) {
        // C++ refusing its own bytes: the JS side must refuse them alike.
        rec["err"] = "decode: " + s.message();
      } else {
        reps[r].Merge(copy);
        state(&rec, r);
      }
    } else if (t == "cp") {
      json cp = json::array();
      for (const Text& x : reps) {
        cp.push_back(json{{"e", ToHex(x.Encode())},
                          {"c", x.Content()},
                          {"v", ToHex(x.version().Encode())},
                          {"p", x.PendingCount() > 0}});
      }
      rec["cp"] = std::move(cp);
    } else {
      rec["err"] = "unknown op " + t;
    }
    out.push_back(std::move(rec));
  }
  return json{{"out", std::move(out)}};
}

json DecodeOne(const std::string& hex) {
  std::string bytes;
  if (!FromHex(hex, &bytes)) return json{{"ok", false}, {"err", "bad hex"}};
  Text t;
  const Status s = Text::Decode(bytes, &t);
  if (!s.ok()) return json{{"ok", false}, {"err", s.message()}};
  return json{{"ok", true}, {"e", ToHex(t.Encode())}, {"c", t.Content()}, {"p", t.PendingCount() > 0}};
}

}  // namespace

int main() {
  json in;
  try {
    std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    in = json::parse(text);
  } catch (const std::exception& e) {
    std::cerr << "text_cross_driver: bad input: " << e.what() << "\n";
    return 2;
  }
  json out = json::object();
  try {
    json hs = json::array();
    for (const json& h : in.value("histories", json::array())) hs.push_back(ReplayHistory(h));
    out["histories"] = std::move(hs);
    json ds = json::array();
    for (const json& d : in.value("decode", json::array())) ds.push_back(DecodeOne(d.get<std::string>()));
    out["decode"] = std::move(ds);
  } catch (const std::exception& e) {
    std::cerr << "text_cross_driver: " << e.what() << "\n";
    return 2;
  }
  std::cout << out.dump() << "\n";
  return 0;
}
