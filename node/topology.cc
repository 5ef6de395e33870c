#include "node/topology.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <map>
#include <set>
#include <string_view>
#include <system_error>
#include <utility>

#include "gossip/curve_keys.h"

namespace meridian::node {
namespace {

// A file with hundreds of mistakes is better fixed from the top; the rest
// are summarised in one line.
constexpr size_t kMaxProblemsShown = 20;
constexpr size_t kMaxNodeIdBytes = 64;
constexpr std::string_view kTcpScheme = "tcp://";

std::string ErrnoText(int err) { return std::error_code(err, std::generic_category()).message(); }

// toml++ numbers lines from 1; 0 means "unknown", which only the root
// table of an empty document has. Messages always carry a real line.
int LineOf(const toml::source_region& where) {
  return where.begin.line == 0 ? 1 : static_cast<int>(where.begin.line);
}

// Problems found in one file, reported together in line order, so fixing a
// file is one pass from top to bottom.
class Problems {
 public:
  explicit Problems(std::string file) : file_(std::move(file)) {}

  void Add(int line, std::string sentence) { list_.push_back({line, std::move(sentence)}); }
  void Add(const toml::node& at, std::string sentence) {
    Add(LineOf(at.source()), std::move(sentence));
  }
  void Add(const toml::key& at, std::string sentence) {
    Add(LineOf(at.source()), std::move(sentence));
  }

  bool empty() const { return list_.empty(); }

  Status ToStatus() {
    std::stable_sort(list_.begin(), list_.end(),
                     [](const Problem& a, const Problem& b) { return a.line < b.line; });
    std::string message;
    for (size_t i = 0; i < list_.size() && i < kMaxProblemsShown; ++i) {
      if (i > 0) message += '\n';
      message += file_ + ":" + std::to_string(list_[i].line) + ": " + list_[i].sentence;
    }
    if (list_.size() > kMaxProblemsShown) {
      message += "\n" + file_ + ": " + std::to_string(list_.size() - kMaxProblemsShown) +
                 " more problems not shown";
    }
    return Status::InvalidArgument(message);
  }

 private:
  struct Problem {
    int line;
    std::string sentence;
  };
  std::string file_;
  std::vector<Problem> list_;
};

// Long or multi-line strings are cut so one problem stays one line.
std::string Quote(std::string_view s) {
  constexpr size_t kMax = 48;
  std::string out;
  for (char c : s.substr(0, kMax)) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += '?';
    } else {
      out += c;
    }
  }
  if (s.size() > kMax) out += "...";
  return out;
}

// What a value is, for "X must be Y, not Z".
std::string Describe(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "the string \"" + Quote(n.as_string()->get()) + "\"";
    case toml::node_type::integer:
      return std::to_string(n.as_integer()->get());
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return n.as_boolean()->get() ? "true" : "false";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// Edits (insert, delete, substitute, swap two neighbours) from a to b.
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min(
          {d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// Reports every key of `table` not in `allowed`, suggesting a near miss
// (a typo is the usual cause). `where` completes "unknown key 'x' ...".
void CheckKeys(const toml::table& table, std::initializer_list<std::string_view> allowed,
               std::string_view where, Problems* problems) {
  for (auto&& [key, value] : table) {
    std::string_view name = key.str();
    if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) continue;
    std::string sentence = "unknown key '" + Quote(name) + "' " + std::string(where);
    // A suggestion must be closer than a guess: one edit, or one per four
    // characters of the key it suggests ("zone" is not a typo of "node").
    std::string_view best;
    size_t best_distance = SIZE_MAX;
    for (std::string_view candidate : allowed) {
      size_t d = EditDistance(name, candidate);
      if (d <= std::max<size_t>(1, candidate.size() / 4) && d < best_distance) {
        best = candidate;
        best_distance = d;
      }
    }
    if (!best.empty()) sentence += " (did you mean '" + std::string(best) + "'?)";
    problems->Add(key, std::move(sentence));
  }
}

// An optional positive integer; *out keeps its default when absent.
void ReadPositive(const toml::table& table, std::string_view key, uint64_t* out,
                  Problems* problems) {
  const toml::node* n = table.get(key);
  if (n == nullptr) return;
  if (const auto* i = n->as_integer(); i != nullptr && i->get() > 0) {
    *out = static_cast<uint64_t>(i->get());
    return;
  }
  problems->Add(*n, std::string(key) + " must be a positive integer, not " + Describe(*n));
}

// An optional boolean; *out keeps its default when absent.
void ReadBool(const toml::table& table, std::string_view key, bool* out, Problems* problems) {
  const toml::node* n = table.get(key);
  if (n == nullptr) return;
  if (const auto* b = n->as_boolean()) {
    *out = b->get();
    return;
  }
  problems->Add(*n, std::string(key) + " must be true or false, not " + Describe(*n));
}

// A required non-empty string. Returns nullptr (after reporting) when it
// is missing, of another type or empty. `header` names the table, e.g.
// "[[region.node]]".
const toml::value<std::string>* RequireString(const toml::table& table, std::string_view key,
                                              std::string_view header, Problems* problems) {
  const toml::node* n = table.get(key);
  if (n == nullptr) {
    problems->Add(table,
                  "missing required key '" + std::string(key) + "' in " + std::string(header));
    return nullptr;
  }
  const auto* s = n->as_string();
  if (s == nullptr) {
    problems->Add(*n, std::string(key) + " must be a string, not " + Describe(*n));
    return nullptr;
  }
  if (s->get().empty()) {
    problems->Add(*n, std::string(key) + " in " + std::string(header) + " must not be empty");
    return nullptr;
  }
  return s;
}

struct Endpoint {
  std::string host;  // IPv6 without brackets
  uint16_t port = 0;
  std::string canonical;  // for duplicate checks: 127.000.0.1 and 127.0.0.1 are one address
};

// Parses "HOST:PORT". Returns the empty string on success, otherwise the
// sentence saying what is wrong. `what` names the address in that sentence,
// e.g. "http address '1.2.3.4'".
std::string ParseHostPort(std::string_view text, const std::string& what, Endpoint* out) {
  std::string_view host;
  std::string_view port;
  bool ipv6 = false;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return what + " has no closing ']' after its IPv6 host";
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (rest.empty()) return what + " has no port; write it as [IPV6]:PORT, e.g. [::1]:7100";
    if (rest.front() != ':') return what + " must have ':PORT' right after ']'";
    port = rest.substr(1);
    ipv6 = true;
  } else {
    size_t colon = text.find(':');
    if (colon == std::string_view::npos) {
      return what + " has no port; write it as HOST:PORT, e.g. 127.0.0.1:7100";
    }
    if (text.find(':', colon + 1) != std::string_view::npos) {
      return what + " has more than one ':'; write an IPv6 host in brackets, e.g. [::1]:7100";
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty()) return what + " has no host";
  if (port.empty()) return what + " has no port after ':'";
  if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return "port '" + Quote(port) + "' in " + what + " is not a number";
  }
  // More than five digits is out of range whatever they are; this also
  // keeps the conversion below from overflowing.
  unsigned long value = port.size() > 5 ? 0 : std::stoul(std::string(port));
  if (value < 1 || value > 65535) {
    return "port " + std::string(port) + " in " + what + " is out of range; it must be 1 to 65535";
  }

  std::string host_str(host);
  char buf[INET6_ADDRSTRLEN];
  if (ipv6) {
    in6_addr addr;
    if (inet_pton(AF_INET6, host_str.c_str(), &addr) != 1) {
      return "host '" + Quote(host) + "' in " + what + " is not an IPv6 address";
    }
    out->canonical = std::string("[") + inet_ntop(AF_INET6, &addr, buf, sizeof(buf)) + "]";
  } else if (host == "localhost") {
    out->canonical = host_str;
  } else {
    in_addr addr;
    if (inet_pton(AF_INET, host_str.c_str(), &addr) != 1) {
      return "host '" + Quote(host) + "' in " + what +
             " is not an IP address; use an IPv4 address, localhost or a bracketed IPv6 address";
    }
    out->canonical = inet_ntop(AF_INET, &addr, buf, sizeof(buf));
  }
  out->host = std::move(host_str);
  out->port = static_cast<uint16_t>(value);
  out->canonical += ":" + std::to_string(value);
  return "";
}

bool IsIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// Checks done across the whole file (uniqueness), with the line of the
// first use so the message can point at both.
class Parser {
 public:
  Parser(Problems* problems, Topology* topo) : problems_(problems), topo_(topo) {}

  void Root(const toml::table& root) {
    CheckKeys(root, {"cluster", "region", "policy", "placement"}, "at the top level", problems_);
    if (const toml::node* policies = root.get("policy")) Policies(*policies);
    if (const toml::node* placements = root.get("placement")) Placements(*placements);
    const toml::node* cluster = root.get("cluster");
    if (cluster == nullptr) {
      problems_->Add(1, "missing [cluster] table; it must give at least the cluster's name");
    } else if (const toml::table* t = cluster->as_table()) {
      Cluster(*t);
    } else {
      problems_->Add(*cluster, "cluster must be a table ([cluster]), not " + Describe(*cluster));
    }

    const toml::node* regions = root.get("region");
    const toml::array* list = regions == nullptr ? nullptr : regions->as_array();
    if (regions != nullptr && list == nullptr) {
      problems_->Add(*regions,
                     "region must be an array of tables ([[region]]), not " + Describe(*regions));
      return;
    }
    if (list == nullptr || list->empty()) {
      problems_->Add(regions == nullptr ? 1 : LineOf(regions->source()),
                     "the topology has no regions; add a [[region]] with at least one "
                     "[[region.node]]");
      return;
    }
    for (const toml::node& r : *list) {
      if (const toml::table* t = r.as_table()) {
        Region(*t);
      } else {
        problems_->Add(r, "each region must be a table ([[region]]), not " + Describe(r));
      }
    }
    CurveKeysEverywhereOrNowhere();
  }

 private:
  // [[policy]] tables become PolicySpecs; the set is checked as a whole
  // (conflict::PolicySet::Build) once the rest of the file is sound.
  void Policies(const toml::node& node) {
    const toml::array* list = node.as_array();
    if (list == nullptr) {
      problems_->Add(node, "policy must be an array of tables ([[policy]]), not " + Describe(node));
      return;
    }
    for (const toml::node& n : *list) {
      const toml::table* t = n.as_table();
      if (t == nullptr) {
        problems_->Add(n, "each policy must be a table ([[policy]]), not " + Describe(n));
        continue;
      }
      CheckKeys(*t, {"prefix", "type", "resolve", "on_unresolved", "audit", "json_max", "prefer_region"},
                "in [[policy]]", problems_);
      conflict::PolicySpec spec;
      spec.line = LineOf(t->source());
      if (const auto* prefix = RequireString(*t, "prefix", "[[policy]]", problems_)) {
        spec.prefix = prefix->get();
      } else {
        continue;
      }
      if (const auto* type = RequireString(*t, "type", "[[policy]]", problems_)) {
        spec.type = type->get();
      } else {
        continue;
      }
      bool ok = StringList(*t, "resolve", &spec.resolve) &&
                StringList(*t, "prefer_region", &spec.prefer_region) &&
                OptionalString(*t, "on_unresolved", &spec.on_unresolved) &&
                OptionalString(*t, "json_max", &spec.json_max);
      spec.has_prefer_region = t->contains("prefer_region");
      spec.has_on_unresolved = t->contains("on_unresolved");
      spec.has_json_max = t->contains("json_max");
      ReadBool(*t, "audit", &spec.audit, problems_);
      if (ok) topo_->policy_specs.push_back(std::move(spec));
    }
  }

  // [[placement]] tables become PlacementSpecs; the set is checked as a
  // whole (gossip::Placement::Build) once the rest of the file is sound.
  void Placements(const toml::node& node) {
    const toml::array* list = node.as_array();
    if (list == nullptr) {
      problems_->Add(node,
                     "placement must be an array of tables ([[placement]]), not " + Describe(node));
      return;
    }
    for (const toml::node& n : *list) {
      const toml::table* t = n.as_table();
      if (t == nullptr) {
        problems_->Add(n, "each placement must be a table ([[placement]]), not " + Describe(n));
        continue;
      }
      CheckKeys(*t, {"prefix", "regions"}, "in [[placement]]", problems_);
      gossip::PlacementSpec spec;
      spec.line = LineOf(t->source());
      const auto* prefix = RequireString(*t, "prefix", "[[placement]]", problems_);
      if (prefix != nullptr) spec.prefix = prefix->get();
      if (!t->contains("regions")) {
        problems_->Add(*t, "missing required key 'regions' in [[placement]]");
        continue;
      }
      if (StringList(*t, "regions", &spec.regions, "[\"eu-west\"]") && prefix != nullptr) {
        topo_->placement_specs.push_back(std::move(spec));
      }
    }
  }

  // An optional array of strings; false (after reporting) when it is
  // something else.
  bool StringList(const toml::table& t, std::string_view key, std::vector<std::string>* out,
                  std::string_view example = "[\"max\"]") {
    const toml::node* n = t.get(key);
    if (n == nullptr) return true;
    const toml::array* a = n->as_array();
    bool ok = a != nullptr;
    if (ok) {
      for (const toml::node& item : *a) {
        if (const auto* s = item.as_string()) {
          out->push_back(s->get());
        } else {
          ok = false;
        }
      }
    }
    if (!ok) {
      problems_->Add(*n, std::string(key) + " must be an array of strings, like " +
                             std::string(example) + ", not " + Describe(*n));
    }
    return ok;
  }

  bool OptionalString(const toml::table& t, std::string_view key, std::string* out) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return true;
    if (const auto* s = n->as_string()) {
      *out = s->get();
      return true;
    }
    problems_->Add(*n, std::string(key) + " must be a string, not " + Describe(*n));
    return false;
  }

  struct EndpointUse {
    std::string kind;  // "http" or "gossip"
    std::string node;  // its id, or "" when the node has none
    int line;
  };

  void Cluster(const toml::table& t) {
    CheckKeys(t,
              {"name", "max_clock_offset_ms", "heartbeat_interval_ms", "anti_entropy_interval_ms",
               "sync", "max_body_bytes", "log_retention_ms", "log_retention_bytes",
               "retention_horizon_ms", "token_file", "tls_ca"},
              "in [cluster]", problems_);
    if (const auto* name = RequireString(t, "name", "[cluster]", problems_)) {
      topo_->cluster_name = name->get();
    }
    ReadPositive(t, "max_clock_offset_ms", &topo_->max_clock_offset_ms, problems_);
    ReadPositive(t, "heartbeat_interval_ms", &topo_->heartbeat_interval_ms, problems_);
    ReadPositive(t, "anti_entropy_interval_ms", &topo_->anti_entropy_interval_ms, problems_);
    ReadPositive(t, "max_body_bytes", &topo_->max_body_bytes, problems_);
    ReadPositive(t, "log_retention_ms", &topo_->log_retention_ms, problems_);
    ReadPositive(t, "log_retention_bytes", &topo_->log_retention_bytes, problems_);
    ReadPositive(t, "retention_horizon_ms", &topo_->retention_horizon_ms, problems_);
    if (const toml::node* h = t.get("retention_horizon_ms");
        h != nullptr && topo_->retention_horizon_ms < 20 * topo_->heartbeat_interval_ms) {
      // A peer must count as down (10 heartbeats) long before it is retired.
      problems_->Add(*h, "retention_horizon_ms (" + std::to_string(topo_->retention_horizon_ms) +
                             ") must be at least 20 heartbeat intervals (" +
                             std::to_string(20 * topo_->heartbeat_interval_ms) + " ms)");
    }
    ReadBool(t, "sync", &topo_->sync, problems_);
    if (t.contains("token_file")) {
      if (const auto* f = RequireString(t, "token_file", "[cluster]", problems_)) {
        topo_->token_file = f->get();
        topo_->token_file_line = LineOf(f->source());
      }
    }
    if (t.contains("tls_ca")) {
      if (const auto* f = RequireString(t, "tls_ca", "[cluster]", problems_)) {
        topo_->tls_ca = f->get();
        topo_->tls_ca_line = LineOf(f->source());
      }
    }
  }

  // Gossip is either all CurveZMQ or all plaintext: a node without a key
  // could neither reach nor be reached by the others.
  void CurveKeysEverywhereOrNowhere() {
    if (keyed_nodes_.empty()) return;
    for (const NodeConfig* n : topo_->AllNodes()) {
      if (!keyed_nodes_.count(n->line) && !n->id.empty()) {
        problems_->Add(n->line, "node '" + n->id +
                                    "' has no public_key, but other nodes have one; list a key "
                                    "for every node (meridianctl keygen) or for none");
      }
    }
  }

  void Region(const toml::table& t) {
    CheckKeys(t, {"name", "node"}, "in [[region]]", problems_);
    RegionConfig region;
    if (const auto* name = RequireString(t, "name", "[[region]]", problems_)) {
      region.name = name->get();
      int line = LineOf(name->source());
      auto [it, inserted] = region_lines_.emplace(region.name, line);
      if (!inserted) {
        problems_->Add(line, "region name '" + Quote(region.name) + "' is already used on line " +
                                 std::to_string(it->second));
      }
    }

    std::string which = region.name.empty() ? "this region" : "region '" + Quote(region.name) + "'";
    const toml::node* nodes = t.get("node");
    const toml::array* list = nodes == nullptr ? nullptr : nodes->as_array();
    if (nodes != nullptr && list == nullptr) {
      problems_->Add(*nodes,
                     "node must be an array of tables ([[region.node]]), not " + Describe(*nodes));
    } else if (list == nullptr || list->empty()) {
      problems_->Add(t, which + " has no nodes; add at least one [[region.node]] under it");
    } else {
      for (const toml::node& n : *list) {
        if (const toml::table* nt = n.as_table()) {
          region.nodes.push_back(Node(*nt, region.name));
        } else {
          problems_->Add(n, "each node must be a table ([[region.node]]), not " + Describe(n));
        }
      }
    }
    topo_->regions.push_back(std::move(region));
  }

  NodeConfig Node(const toml::table& t, const std::string& region) {
    constexpr std::string_view kHeader = "[[region.node]]";
    CheckKeys(t,
              {"id", "http", "gossip", "data_dir", "sync", "public_key", "secret_key_file",
               "tls_cert", "tls_key"},
              "in [[region.node]]", problems_);
    NodeConfig node;
    node.region = region;
    node.line = LineOf(t.source());
    node.sync = topo_->sync;

    if (const auto* id = RequireString(t, "id", kHeader, problems_)) {
      const std::string& s = id->get();
      int line = LineOf(id->source());
      if (s.size() > kMaxNodeIdBytes) {
        problems_->Add(line, "node id '" + Quote(s) + "' is " + std::to_string(s.size()) +
                                 " bytes long; the limit is " + std::to_string(kMaxNodeIdBytes));
      } else if (!std::all_of(s.begin(), s.end(), IsIdChar)) {
        problems_->Add(
            line, "node id '" + Quote(s) + "' may contain only letters, digits, '.', '_' and '-'");
      } else {
        node.id = s;
        auto [it, inserted] = id_lines_.emplace(s, line);
        if (!inserted) {
          problems_->Add(
              line, "node id '" + s + "' is already used on line " + std::to_string(it->second));
        }
      }
    }

    if (const auto* http = RequireString(t, "http", kHeader, problems_)) {
      Endpoint ep;
      std::string error =
          ParseHostPort(http->get(), "http address '" + Quote(http->get()) + "'", &ep);
      if (!error.empty()) {
        problems_->Add(*http, error);
      } else {
        node.http_host = ep.host;
        node.http_port = ep.port;
        Claim(ep.canonical, "http", http->get(), node.id, LineOf(http->source()));
      }
    }

    if (const auto* gossip = RequireString(t, "gossip", kHeader, problems_)) {
      std::string_view text = gossip->get();
      std::string what = "gossip address '" + Quote(text) + "'";
      Endpoint ep;
      std::string error;
      if (text.substr(0, kTcpScheme.size()) != kTcpScheme) {
        error = what + " must start with tcp://, e.g. tcp://127.0.0.1:7200";
      } else {
        error = ParseHostPort(text.substr(kTcpScheme.size()), what, &ep);
      }
      if (!error.empty()) {
        problems_->Add(*gossip, error);
      } else {
        node.gossip = gossip->get();
        Claim(ep.canonical, "gossip", gossip->get(), node.id, LineOf(gossip->source()));
      }
    }

    if (const auto* dir = RequireString(t, "data_dir", kHeader, problems_)) {
      if (dir->get().find('\0') != std::string::npos) {
        problems_->Add(*dir, "data_dir must not contain a NUL character");
      } else {
        node.data_dir = dir->get();
        node.data_dir_line = LineOf(dir->source());
      }
    }

    ReadBool(t, "sync", &node.sync, problems_);
    CurveKeys(t, &node);
    Tls(t, &node);
    return node;
  }

  // public_key (checked, unique) and secret_key_file (read only by the
  // node itself: LoadSecretKey).
  void CurveKeys(const toml::table& t, NodeConfig* node) {
    const toml::node* key = t.get("public_key");
    if (key != nullptr) {
      keyed_nodes_.insert(node->line);  // even a bad key: that is the problem to report
      const auto* s = key->as_string();
      if (s == nullptr || !gossip::IsCurveKey(s->get())) {
        problems_->Add(*key,
                       "public_key must be a 40-character Z85 CURVE key as meridianctl "
                       "keygen prints it, not " +
                           Describe(*key));
      } else {
        node->public_key = s->get();
        auto [it, inserted] = key_lines_.emplace(node->public_key, LineOf(s->source()));
        if (!inserted) {
          problems_->Add(*s, "public_key is already the key of the node on line " +
                                 std::to_string(it->second) + "; each node needs its own pair");
        }
      }
    }
    const toml::node* file = t.get("secret_key_file");
    if (file == nullptr) return;
    const auto* f = file->as_string();
    if (f == nullptr || f->get().empty() || f->get().find('\0') != std::string::npos) {
      problems_->Add(*file, "secret_key_file must be a file name, not " + Describe(*file));
    } else if (key == nullptr) {
      problems_->Add(*file, "secret_key_file is given but public_key is not; give both");
    } else {
      node->secret_key_file = f->get();
      node->secret_key_file_line = LineOf(f->source());
    }
  }

  // tls_cert and tls_key: both (the API speaks only TLS) or neither.
  void Tls(const toml::table& t, NodeConfig* node) {
    const toml::node* cert = t.get("tls_cert");
    const toml::node* key = t.get("tls_key");
    if ((cert == nullptr) != (key == nullptr)) {
      const bool has_cert = cert != nullptr;
      problems_->Add(has_cert ? *cert : *key,
                     std::string(has_cert ? "tls_cert is given without tls_key"
                                          : "tls_key is given without tls_cert") +
                         "; give both for TLS on the API, or neither for plain HTTP");
      return;
    }
    if (cert == nullptr) return;
    std::string cert_path, key_path;
    bool ok = OptionalString(t, "tls_cert", &cert_path);
    ok = OptionalString(t, "tls_key", &key_path) && ok;
    if (!ok) return;
    if (cert_path.empty() || key_path.empty()) {
      problems_->Add(cert_path.empty() ? *cert : *key,
                     std::string(cert_path.empty() ? "tls_cert" : "tls_key") +
                         " must name a file, not be empty");
      return;
    }
    node->tls_cert = cert_path;
    node->tls_key = key_path;
    node->tls_cert_line = LineOf(cert->source());
    node->tls_key_line = LineOf(key->source());
  }

  // Two nodes listening on one address cannot both start, whichever of
  // http and gossip each uses it for.
  void Claim(const std::string& canonical, const std::string& kind, const std::string& written,
             const std::string& node, int line) {
    auto [it, inserted] = endpoints_.emplace(canonical, EndpointUse{kind, node, line});
    if (inserted) return;
    const EndpointUse& first = it->second;
    std::string owner = first.node.empty() ? "a node" : "node '" + first.node + "'";
    problems_->Add(line, kind + " address '" + Quote(written) + "' is already the " + first.kind +
                             " address of " + owner + " on line " + std::to_string(first.line));
  }

  Problems* problems_;
  Topology* topo_;
  std::map<std::string, int> region_lines_;
  std::map<std::string, int> id_lines_;
  std::map<std::string, int> key_lines_;  // public_key -> its line
  std::set<int> keyed_nodes_;             // [[region.node]] lines with a public_key
  std::map<std::string, EndpointUse> endpoints_;
};

// "a/b/" -> "a", "a" -> ".", "/a" -> "/".
std::string Parent(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  path.resize(slash);
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

// Creating or writing entries in a directory needs write and search
// permission on it, for the effective user.
bool Writable(const std::string& dir, int* err) {
  if (faccessat(AT_FDCWD, dir.c_str(), W_OK | X_OK, AT_EACCESS) == 0) return true;
  *err = errno;
  return false;
}

}  // namespace

const NodeConfig* Topology::FindNode(const std::string& id) const {
  for (const RegionConfig& region : regions) {
    for (const NodeConfig& node : region.nodes) {
      if (node.id == id) return &node;
    }
  }
  return nullptr;
}

bool Topology::curve() const {
  for (const RegionConfig& region : regions) {
    for (const NodeConfig& node : region.nodes) {
      if (!node.public_key.empty()) return true;
    }
  }
  return false;
}

std::vector<const NodeConfig*> Topology::AllNodes() const {
  std::vector<const NodeConfig*> all;
  for (const RegionConfig& region : regions) {
    for (const NodeConfig& node : region.nodes) all.push_back(&node);
  }
  return all;
}

std::vector<std::string> Topology::RegionNames() const {
  std::vector<std::string> names;
  for (const RegionConfig& region : regions) names.push_back(region.name);
  return names;
}

namespace {

// A Lua script named by a policy, relative to the topology file's
// directory unless absolute.
std::string ScriptPath(const std::string& topology_file, const std::string& script) {
  if (!script.empty() && script[0] == '/') return script;
  size_t slash = topology_file.rfind('/');
  return slash == std::string::npos ? script : topology_file.substr(0, slash + 1) + script;
}

constexpr size_t kMaxScriptBytes = size_t{1} << 20;

// Checks the [[policy]] tables as a set, reading each Lua script once.
Status BuildPolicies(Topology* topo) {
  const std::vector<std::string> regions = topo->RegionNames();
  std::map<std::string, std::string> scripts;
  auto check = [&](const std::string& script, std::string* digest) {
    const std::string path = ScriptPath(topo->file, script);
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) return Status::NotFound("cannot open '" + path + "': " + ErrnoText(errno));
    std::string text;
    char buf[8192];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0 && text.size() <= kMaxScriptBytes) {
      text.append(buf, n);
    }
    bool failed = std::ferror(f) != 0;
    std::fclose(f);
    if (failed) return Status::IOError("cannot read '" + path + "'");
    if (text.size() > kMaxScriptBytes) {
      return Status::InvalidArgument("'" + path + "' is larger than 1 MiB");
    }
    if (!text.empty() && text[0] == '\x1b') {
      return Status::InvalidArgument("'" + path + "' is precompiled Lua; give the source");
    }
    *digest = conflict::Fnv1a64Hex(text);
    scripts[script] = std::move(text);
    return Status::OK();
  };
  MERIDIAN_RETURN_IF_ERROR(
      conflict::PolicySet::Build(topo->policy_specs, regions, topo->file, check, &topo->policies));
  topo->scripts = std::move(scripts);
  return Status::OK();
}

// Parses TOML text; a syntax error is "NAME:LINE: description".
Status ParseToml(const std::string& text, const std::string& name, toml::table* out) {
  try {
    *out = toml::parse(std::string_view(text), std::string_view(name));
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(name + ":" + std::to_string(LineOf(e.source())) + ": " +
                                   std::string(e.description()));
  }
  return Status::OK();
}

// The [[token]] tables of a token file's text (auth.h's TokenSpec), every
// problem listed against `name`.
Status ParseTokens(const std::string& text, const std::string& name, std::vector<TokenSpec>* out) {
  toml::table root;
  MERIDIAN_RETURN_IF_ERROR(ParseToml(text, name, &root));
  Problems problems(name);
  CheckKeys(root, {"token"}, "in the token file (it holds only [[token]] tables)", &problems);
  std::vector<TokenSpec> tokens;
  const toml::node* list_node = root.get("token");
  const toml::array* list = list_node == nullptr ? nullptr : list_node->as_array();
  if (list_node != nullptr && list == nullptr) {
    problems.Add(*list_node,
                 "token must be an array of tables ([[token]]), not " + Describe(*list_node));
  } else if (list == nullptr || list->empty()) {
    problems.Add(1,
                 "the token file has no [[token]]; give at least one, or remove token_file "
                 "from the topology to leave the API open");
  }
  std::map<std::string, int> name_lines;
  std::map<std::string, std::pair<std::string, int>> secrets;  // secret -> (name, line)
  static const toml::array kNone;
  for (const toml::node& n : list == nullptr ? kNone : *list) {
    const toml::table* t = n.as_table();
    if (t == nullptr) {
      problems.Add(n, "each token must be a table ([[token]]), not " + Describe(n));
      continue;
    }
    CheckKeys(*t, {"name", "token", "role"}, "in [[token]]", &problems);
    TokenSpec spec;
    spec.line = LineOf(t->source());
    bool ok = true;
    if (const auto* s = RequireString(*t, "name", "[[token]]", &problems)) {
      spec.name = s->get();
      auto [it, inserted] = name_lines.emplace(spec.name, LineOf(s->source()));
      if (!inserted) {
        problems.Add(*s, "token name '" + Quote(spec.name) + "' is already used on line " +
                             std::to_string(it->second));
        ok = false;
      }
    } else {
      ok = false;
    }
    // The secret is never quoted back: messages name the token instead.
    if (const auto* s = RequireString(*t, "token", "[[token]]", &problems)) {
      spec.token = s->get();
      const std::string who = spec.name.empty() ? "this token" : "token '" + Quote(spec.name) + "'";
      bool printable = std::all_of(spec.token.begin(), spec.token.end(),
                                   [](char c) { return c > 0x20 && c < 0x7f; });
      if (spec.token.size() < kMinTokenBytes) {
        problems.Add(*s, "the secret of " + who + " is " + std::to_string(spec.token.size()) +
                             " characters long; it must be at least " +
                             std::to_string(kMinTokenBytes) + " (e.g. openssl rand -hex 32)");
        ok = false;
      } else if (!printable) {
        problems.Add(*s, "the secret of " + who +
                             " must be printable ASCII without spaces (e.g. openssl rand -hex 32)");
        ok = false;
      } else if (auto [it, inserted] =
                     secrets.emplace(spec.token, std::make_pair(spec.name, LineOf(s->source())));
                 !inserted) {
        problems.Add(*s, "the secret of " + who + " is the same as that of token '" +
                             Quote(it->second.first) + "' on line " +
                             std::to_string(it->second.second) + "; give each its own");
        ok = false;
      }
    } else {
      ok = false;
    }
    if (const auto* s = RequireString(*t, "role", "[[token]]", &problems)) {
      if (!ParseRole(s->get(), &spec.role)) {
        problems.Add(*s, "role must be \"read\", \"write\" or \"admin\", not " + Describe(*s));
        ok = false;
      }
    } else {
      ok = false;
    }
    if (ok) tokens.push_back(std::move(spec));
  }
  if (!problems.empty()) return problems.ToStatus();
  *out = std::move(tokens);
  return Status::OK();
}

constexpr size_t kMaxNamedFileBytes = size_t{1} << 20;

// Reads a file the topology names by the key `what` on the line `at`
// ("FILE:LINE: ") points to: a regular file of at most 1 MiB. A `secret`
// one (a token file, a CURVE secret key, a TLS key) must be one its group
// and others cannot access (mode & 077 == 0). Every problem is
// InvalidArgument, prefixed with `at`.
Status ReadNamedFile(const std::string& path, const std::string& what, const std::string& at,
                     bool secret, std::string* text) {
  // O_NONBLOCK: a FIFO named by mistake is refused below instead of
  // blocking the start until something writes to it.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    return Status::InvalidArgument(at + "cannot open " + what + " '" + path +
                                   "': " + ErrnoText(errno));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return Status::InvalidArgument(at + "cannot stat " + what + " '" + path +
                                   "': " + ErrnoText(err));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return Status::InvalidArgument(at + what + " '" + path + "' is not a regular file");
  }
  if (secret && (st.st_mode & 077) != 0) {
    close(fd);
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Status::InvalidArgument(at + what + " '" + path +
                                   "' is open to its group or others (mode " + mode +
                                   "); it holds secrets: chmod 600 '" + path + "'");
  }
  text->clear();
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0 && text->size() <= kMaxNamedFileBytes) {
    text->append(buf, static_cast<size_t>(n));
  }
  int err = errno;
  close(fd);
  if (n < 0) {
    return Status::InvalidArgument(at + "cannot read " + what + " '" + path +
                                   "': " + ErrnoText(err));
  }
  if (text->size() > kMaxNamedFileBytes) {
    return Status::InvalidArgument(at + what + " '" + path + "' is larger than 1 MiB");
  }
  return Status::OK();
}

// "FILE:LINE: " of the topology, for a problem with a file it names.
std::string At(const Topology& topo, int line) {
  return topo.file + ":" + std::to_string(line) + ": ";
}

// Reads topo->token_file (relative to the topology's directory). Problems
// with the file as a whole point at the token_file line of the topology.
Status LoadTokens(Topology* topo) {
  const std::string path = ScriptPath(topo->file, topo->token_file);
  const std::string at = topo->file + ":" + std::to_string(topo->token_file_line) + ": ";
  std::string text;
  MERIDIAN_RETURN_IF_ERROR(ReadNamedFile(path, "token_file", at, true, &text));
  return ParseTokens(text, path, &topo->tokens);
}

// Reads every node's tls_cert and tls_key (the key a secret), and checks
// that [cluster] tls_ca can be read, so a missing or too open file stops
// the start before anything runs. Whether the PEM inside is a usable
// certificate and key is for the HTTP server to say (CheckTlsCredentials
// in node/http_server.h).
Status LoadTlsFiles(Topology* topo) {
  for (RegionConfig& region : topo->regions) {
    for (NodeConfig& n : region.nodes) {
      if (n.tls_cert.empty()) continue;
      MERIDIAN_RETURN_IF_ERROR(ReadNamedFile(ScriptPath(topo->file, n.tls_cert), "tls_cert",
                                             At(*topo, n.tls_cert_line), false, &n.tls_cert_pem));
      MERIDIAN_RETURN_IF_ERROR(ReadNamedFile(ScriptPath(topo->file, n.tls_key), "tls_key",
                                             At(*topo, n.tls_key_line), true, &n.tls_key_pem));
    }
  }
  if (!topo->tls_ca.empty()) {
    topo->tls_ca_path = ScriptPath(topo->file, topo->tls_ca);
    std::string unused;
    MERIDIAN_RETURN_IF_ERROR(
        ReadNamedFile(topo->tls_ca_path, "tls_ca", At(*topo, topo->tls_ca_line), false, &unused));
  }
  return Status::OK();
}

// The topology's tables as read (every problem of the text, each at its
// line), before anything they name is built or read.
Status ReadTables(const std::string& text, const std::string& name, Topology* topo) {
  toml::table root;
  MERIDIAN_RETURN_IF_ERROR(ParseToml(text, name, &root));
  Problems problems(name);
  topo->file = name;
  Parser(&problems, topo).Root(root);
  return problems.empty() ? Status::OK() : problems.ToStatus();
}

}  // namespace

Status ParseTopology(const std::string& text, const std::string& name, Topology* out) {
  Topology topo;
  MERIDIAN_RETURN_IF_ERROR(ReadTables(text, name, &topo));
  MERIDIAN_RETURN_IF_ERROR(BuildPolicies(&topo));
  MERIDIAN_RETURN_IF_ERROR(gossip::Placement::Build(topo.placement_specs, topo.RegionNames(),
                                                    topo.file, &topo.placement));
  if (!topo.token_file.empty()) MERIDIAN_RETURN_IF_ERROR(LoadTokens(&topo));
  MERIDIAN_RETURN_IF_ERROR(LoadTlsFiles(&topo));
  *out = std::move(topo);
  return Status::OK();
}

Status LoadSecretKey(const Topology& topo, const NodeConfig& node, std::string* secret_z85) {
  secret_z85->clear();
  if (!topo.curve()) return Status::OK();
  if (node.secret_key_file.empty()) {
    return Status::InvalidArgument(
        topo.file + ":" + std::to_string(node.line) + ": node '" + node.id +
        "' has no secret_key_file, and the cluster's gossip uses CURVE keys; name the file "
        "meridianctl keygen --out-secret wrote for it");
  }
  const std::string path = ScriptPath(topo.file, node.secret_key_file);
  const std::string at = topo.file + ":" + std::to_string(node.secret_key_file_line) + ": ";
  std::string text, secret, public_key;
  MERIDIAN_RETURN_IF_ERROR(ReadNamedFile(path, "secret_key_file", at, true, &text));
  Status s = gossip::ParseSecretKeyFile(text, &secret);
  if (s.ok()) s = gossip::CurvePublicOf(secret, &public_key);
  if (!s.ok()) {
    return Status::InvalidArgument(at + "secret_key_file '" + path +
                                   "' is not a CURVE secret key file: " + s.message());
  }
  if (public_key != node.public_key) {
    return Status::InvalidArgument(at + "secret_key_file '" + path +
                                   "' holds the secret key of public key " + public_key +
                                   ", but the public_key listed for node '" + node.id + "' is " +
                                   node.public_key + ": the pair does not match");
  }
  *secret_z85 = std::move(secret);
  return Status::OK();
}

namespace {

// The topology file's text; "PATH: sentence" when it cannot be read.
Status ReadTopologyText(const std::string& path, std::string* text) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    int err = errno;
    std::string message = path + ": cannot open the topology file: " + ErrnoText(err);
    return err == ENOENT ? Status::NotFound(message) : Status::IOError(message);
  }
  char buf[8192];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text->append(buf, n);
  int err = errno;
  bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return Status::IOError(path + ": cannot read the topology file: " + ErrnoText(err));
  return Status::OK();
}

}  // namespace

Status LoadTopology(const std::string& path, Topology* out) {
  std::string text;
  MERIDIAN_RETURN_IF_ERROR(ReadTopologyText(path, &text));
  return ParseTopology(text, path, out);
}

Status SecretFilesOf(const std::string& path, std::vector<std::string>* out) {
  std::string text;
  MERIDIAN_RETURN_IF_ERROR(ReadTopologyText(path, &text));
  Topology topo;
  MERIDIAN_RETURN_IF_ERROR(ReadTables(text, path, &topo));
  out->clear();
  if (!topo.token_file.empty()) out->push_back(ScriptPath(path, topo.token_file));
  for (const NodeConfig* n : topo.AllNodes()) {
    if (!n->tls_key.empty()) out->push_back(ScriptPath(path, n->tls_key));
    if (!n->secret_key_file.empty()) out->push_back(ScriptPath(path, n->secret_key_file));
  }
  return Status::OK();
}

Status CheckDataDir(const std::string& data_dir) {
  if (data_dir.empty()) return Status::InvalidArgument("data dir is empty");
  const std::string quoted = "'" + data_dir + "'";
  struct stat st;
  if (stat(data_dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return Status::FailedPrecondition("data dir " + quoted + " exists but is not a directory");
    }
    int err = 0;
    if (!Writable(data_dir, &err)) {
      return Status::FailedPrecondition("data dir " + quoted +
                                        " is not writable: " + ErrnoText(err));
    }
    return Status::OK();
  }
  // ENOTDIR: some component is a file; the walk up finds it and says so.
  if (errno != ENOENT && errno != ENOTDIR) {
    return Status::FailedPrecondition("cannot use data dir " + quoted + ": " + ErrnoText(errno));
  }
  std::string ancestor = data_dir;
  for (;;) {
    std::string parent = Parent(ancestor);
    if (parent == ancestor) {
      // "." or "/" missing: nothing above to create it in.
      return Status::FailedPrecondition("cannot create data dir " + quoted + ": '" + ancestor +
                                        "' does not exist");
    }
    ancestor = std::move(parent);
    if (stat(ancestor.c_str(), &st) == 0) break;
    if (errno != ENOENT && errno != ENOTDIR) {
      return Status::FailedPrecondition("cannot create data dir " + quoted + ": cannot access '" +
                                        ancestor + "': " + ErrnoText(errno));
    }
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status::FailedPrecondition("cannot create data dir " + quoted + ": '" + ancestor +
                                      "' is not a directory");
  }
  int err = 0;
  if (!Writable(ancestor, &err)) {
    return Status::FailedPrecondition("cannot create data dir " + quoted +
                                      ": its nearest existing parent '" + ancestor +
                                      "' is not writable: " + ErrnoText(err));
  }
  return Status::OK();
}

}  // namespace meridian::node
