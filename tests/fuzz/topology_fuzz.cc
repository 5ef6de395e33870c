// Fuzz target: the topology loader (node/topology.h ParseTopology).
// Properties of an accepted topology: every field is within the bounds
// topology.h documents (non-empty cluster name, positive intervals and
// limits, a retention horizon of at least 20 heartbeat intervals, at
// least one region, unique region names, at least one node per region,
// node ids of 1..64 bytes of [A-Za-z0-9._-] unique across the cluster,
// ports 1..65535, a tcp:// gossip address, a non-empty data dir, no two
// equal endpoints); and parsing the same text again gives the same nodes.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "node/topology.h"
#include "tests/fuzz/fuzz_check.h"

using namespace meridian;

namespace {

// As if the text were a file in regions/, so that "lua:resolvers/..."
// policies find the repository's scripts.
#ifdef MERIDIAN_REGIONS_DIR
const std::string kName = std::string(MERIDIAN_REGIONS_DIR) + "/fuzz.toml";
#else
const std::string kName = "fuzz.toml";
#endif

bool IdByte(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// One spelling per address where inet_pton knows it (conservative: two
// spellings it does not know stay apart).
std::string Canonical(const std::string& host) {
  char buf[INET6_ADDRSTRLEN];
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1 && inet_ntop(AF_INET, &v4, buf, sizeof(buf))) {
    return buf;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1 && inet_ntop(AF_INET6, &v6, buf, sizeof(buf))) {
    return std::string("[") + buf + "]";
  }
  return host;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  node::Topology topo;
  Status st = node::ParseTopology(text, kName, &topo);
  if (!st.ok()) {
    FUZZ_CHECK(!st.message().empty());
    return 0;
  }
  FUZZ_CHECK(!topo.cluster_name.empty());
  FUZZ_CHECK(topo.max_clock_offset_ms > 0);
  FUZZ_CHECK(topo.heartbeat_interval_ms > 0);
  FUZZ_CHECK(topo.anti_entropy_interval_ms > 0);
  FUZZ_CHECK(topo.max_body_bytes > 0);
  FUZZ_CHECK(topo.log_retention_ms > 0);
  FUZZ_CHECK(topo.log_retention_bytes > 0);
  FUZZ_CHECK(topo.retention_horizon_ms > 0);
  FUZZ_CHECK(topo.heartbeat_interval_ms <= topo.retention_horizon_ms / 20);
  FUZZ_CHECK(!topo.regions.empty());

  std::set<std::string> regions, ids, endpoints;
  size_t nodes = 0;
  for (const node::RegionConfig& r : topo.regions) {
    FUZZ_CHECK(regions.insert(r.name).second);
    FUZZ_CHECK(!r.nodes.empty());
    for (const node::NodeConfig& n : r.nodes) {
      ++nodes;
      FUZZ_CHECK(n.region == r.name);
      FUZZ_CHECK(!n.id.empty() && n.id.size() <= 64);
      for (char c : n.id) FUZZ_CHECK(IdByte(c));
      FUZZ_CHECK(ids.insert(n.id).second);
      FUZZ_CHECK(topo.FindNode(n.id) == &n);
      FUZZ_CHECK(!n.http_host.empty());
      FUZZ_CHECK(n.http_port >= 1);
      FUZZ_CHECK(endpoints.insert(Canonical(n.http_host) + ":" + std::to_string(n.http_port)).second);
      const std::string_view scheme = "tcp://";
      FUZZ_CHECK(n.gossip.compare(0, scheme.size(), scheme) == 0);
      std::string hostport = n.gossip.substr(scheme.size());
      size_t colon = hostport.rfind(':');
      FUZZ_CHECK(colon != std::string::npos && colon > 0);
      std::string host = hostport.substr(0, colon);
      if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
      }
      const std::string port = hostport.substr(colon + 1);
      FUZZ_CHECK(!port.empty() && port.size() <= 5);
      for (char c : port) FUZZ_CHECK(c >= '0' && c <= '9');
      const unsigned long p = std::stoul(port);
      FUZZ_CHECK(p >= 1 && p <= 65535);
      FUZZ_CHECK(endpoints.insert(Canonical(host) + ":" + std::to_string(p)).second);
      FUZZ_CHECK(!n.data_dir.empty());
      FUZZ_CHECK(n.data_dir.find('\0') == std::string::npos);
      FUZZ_CHECK(n.line > 0 && n.data_dir_line > 0);
    }
  }
  FUZZ_CHECK(topo.AllNodes().size() == nodes);

  node::Topology again;
  FUZZ_CHECK(node::ParseTopology(text, kName, &again).ok());
  FUZZ_CHECK(again.cluster_name == topo.cluster_name);
  FUZZ_CHECK(again.regions.size() == topo.regions.size());
  FUZZ_CHECK(again.AllNodes().size() == nodes);
  return 0;
}
