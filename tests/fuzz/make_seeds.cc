// Writes the generated part of the seed corpora (run by hand when a wire
// format changes; not part of any build by default):
//   ninja -C build fuzz_make_seeds
//   build/tests/fuzz/fuzz_make_seeds tests/golden tests/fuzz/corpus
// crdt_state: the golden states and envelopes (tests/golden/*.hex) behind
// their selector byte, and text versions; gossip_frame: a frame of every
// message type (deltas carrying golden envelopes); text_message: client
// messages carrying golden texts. The http_body and topology seeds are
// files written by hand (README examples, regions/*.toml).
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "crdt/hlc.h"
#include "crdt/text.h"
#include "gossip/messages.h"
#include "node/operation.h"

using namespace meridian;

namespace {

std::vector<std::pair<std::string, std::string>> Golden(const std::string& dir,
                                                        const std::string& type) {
  std::vector<std::pair<std::string, std::string>> out;
  std::ifstream in(dir + "/" + type + ".hex");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string name, hex;
    ls >> name >> hex;
    std::string bytes;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
      bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    out.emplace_back(name, bytes);
  }
  if (out.empty()) std::fprintf(stderr, "make_seeds: nothing in %s/%s.hex\n", dir.c_str(), type.c_str());
  return out;
}

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  if (!out) {
    std::fprintf(stderr, "make_seeds: cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

gossip::Header TestHeader() {
  gossip::Header h;
  h.cluster = "meridian-local";
  h.from = crdt::ReplicaId{"eu-west-1", 1732550400123456};
  h.hlc = crdt::MakeHlc(1732550400123, 7);
  h.wall_ms = 1732550400120;
  return h;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: fuzz_make_seeds GOLDEN_DIR CORPUS_DIR\n");
    return 2;
  }
  const std::string golden = argv[1], corpus = argv[2];

  // crdt_state: selector byte (tag - 1, 7 envelope, 8 stored envelope, 9
  // text version), then the bytes.
  const std::vector<std::pair<std::string, int>> types = {
      {"register", 0}, {"mvregister", 1}, {"counter", 2}, {"set", 3},
      {"map", 4},      {"text", 5},       {"flag", 6}};
  for (const auto& [type, sel] : types) {
    for (const auto& [name, bytes] : Golden(golden, type)) {
      Write(corpus + "/crdt_state/" + type + "-" + name, std::string(1, char(sel)) + bytes);
    }
  }
  const auto envelopes = Golden(golden, "envelope");
  for (const auto& [name, bytes] : envelopes) {
    Write(corpus + "/crdt_state/envelope-" + name, std::string(1, char(7)) + bytes);
    Write(corpus + "/crdt_state/stored-envelope-" + name, std::string(1, char(8)) + bytes);
  }
  const auto texts = Golden(golden, "text");
  for (const auto& [name, bytes] : texts) {
    crdt::Text t;
    if (!crdt::Text::Decode(bytes, &t).ok()) continue;
    Write(corpus + "/crdt_state/textversion-" + name,
          std::string(1, char(9)) + t.version().Encode());
  }

  // gossip_frame: one frame of every message type.
  std::vector<std::pair<std::string, gossip::Message>> frames;
  gossip::Message m;
  m.header = TestHeader();
  m.type = gossip::MsgType::kHello;
  m.region = "eu-west";
  m.policy_hash = "0123456789abcdef";
  m.scope = "eu/";
  frames.emplace_back("hello", m);
  m = gossip::Message();
  m.header = TestHeader();
  m.type = gossip::MsgType::kWelcome;
  m.applied = 123456789;
  m.to = crdt::ReplicaId{"ap-south-1", 77};
  frames.emplace_back("welcome", m);
  m = gossip::Message();
  m.header = TestHeader();
  m.type = gossip::MsgType::kRefuse;
  m.reason = gossip::RefuseReason::kClockAhead;
  m.text = "your hlc is 900 ms ahead";
  m.to = crdt::ReplicaId{"us-east-1", 5};
  frames.emplace_back("refuse", m);
  m = gossip::Message();
  m.header = TestHeader();
  m.type = gossip::MsgType::kDeltas;
  uint64_t seq = 1;
  for (const auto& [name, bytes] : envelopes) m.deltas.push_back({seq++, "user/" + name, bytes});
  frames.emplace_back("deltas", m);
  m = gossip::Message();
  m.header = TestHeader();
  m.type = gossip::MsgType::kAck;
  m.scope = "eu-only";
  m.seq = 4242;
  m.to = crdt::ReplicaId{"us-east-1", 1};
  frames.emplace_back("ack", m);
  m = gossip::Message();
  m.header = TestHeader();
  m.type = gossip::MsgType::kPing;
  m.sent_wall_ms = 1732550400120;
  m.seq = 4242;
  m.vector[{crdt::ReplicaId{"ap-south-1", 3}, ""}] = 17;
  m.vector[{crdt::ReplicaId{"eu-west-1", 1732550400123456}, "eu-only"}] = 5;
  m.retired = {crdt::ReplicaId{"n2", 3}};
  m.policy_hash = "0123456789abcdef";
  frames.emplace_back("ping", m);
  m = gossip::Message();
  m.header = TestHeader();
  m.type = gossip::MsgType::kPong;
  m.echo_wall_ms = 1732550400120;
  m.pong_wall_ms = 1732550400999;
  m.scope = "eu/";
  frames.emplace_back("pong", m);
  gossip::Message ae;
  ae.header = TestHeader();
  ae.type = gossip::MsgType::kAntiEntropy;
  ae.ae.round = 1732550400777;
  m = ae;
  m.ae.kind = gossip::AeKind::kWant;
  m.ae.scope = "eu/";
  m.ae.buckets = {0, 1, 300, 4095};
  frames.emplace_back("ae-want", m);
  m = ae;
  m.ae.kind = gossip::AeKind::kStates;
  m.ae.part = 0;
  m.ae.last = true;
  for (const auto& [name, bytes] : envelopes) m.ae.states.push_back({"user/" + name, bytes});
  frames.emplace_back("ae-states", m);
  m = ae;
  m.ae.kind = gossip::AeKind::kDone;
  m.ae.in_sync = true;
  frames.emplace_back("ae-done", m);
  for (const auto& [name, msg] : frames) {
    std::string bytes = gossip::Encode(msg);
    gossip::Message check;
    if (!gossip::Decode(bytes, &check).ok()) {
      std::fprintf(stderr, "make_seeds: the %s frame does not decode\n", name.c_str());
      return 1;
    }
    Write(corpus + "/gossip_frame/" + name, bytes);
  }

  // text_message: the golden texts as client messages.
  uint64_t n = 1;
  for (const auto& [name, bytes] : texts) {
    nlohmann::json msg = {{"type", "ops"}, {"seq", n++}, {"state", node::Base64Url(bytes)}};
    Write(corpus + "/text_message/" + name + ".json", msg.dump());
  }

  // http_body: the README's request bodies, as JSON (selector byte 0) and
  // as msgpack (selector byte 1).
  const std::vector<std::string> bodies = {
      R"("hello")",
      R"({"qty": 3})",
      R"({"add": 1})",
      R"({"drop": [], "delay_ms": {"eu-west-1": 300}})",
      R"("Meridian\nstores data")",
      R"({"add": ["red", "blue"], "remove": ["green"]})",
      R"({"update": {"owner": {"type": "register", "set": "ada"}, "items": {"type": "counter", "add": 2},
          "skus": {"type": "set", "sadd": ["A1"], "srem": ["B2"]}, "gift": {"type": "flag", "enable": true}},
          "remove": ["coupon"]})",
      R"({"ops": [{"insert": {"pos": 0, "text": "Hello wörld"}}]})",
      R"({"version": "AQ", "ops": [{"delete": {"pos": 6, "len": 5}}, {"insert": {"pos": 6, "text": "world"}}]})",
      R"([{"op": "put", "key": "a", "value": 1}, {"op": "incr", "key": "hits", "by": -2.5e3},
          {"op": "sadd", "key": "s", "elements": ["x", null, false]}, {"op": "del", "key": "a"}])",
  };
  n = 0;
  for (const std::string& body : bodies) {
    ++n;
    Write(corpus + "/http_body/json-" + std::to_string(n), std::string(1, '\0') + body);
    std::vector<uint8_t> packed = nlohmann::json::to_msgpack(nlohmann::json::parse(body));
    Write(corpus + "/http_body/msgpack-" + std::to_string(n),
          std::string(1, '\1') + std::string(packed.begin(), packed.end()));
  }
  return 0;
}
