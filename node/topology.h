// The topology file (DESIGN.md §8): regions, their nodes and the cluster's
// settings. This header and topology.cc are the only files that know
// toml++.
//
// Every problem is reported before anything starts, as
// "FILE:LINE: plain sentence" (unknown keys, duplicate ids, bad addresses,
// unusable data dirs, values out of range).
//
// Accepted keys (anything else, anywhere, is an error):
//   [cluster]        name (required, non-empty string),
//                    max_clock_offset_ms, heartbeat_interval_ms,
//                    anti_entropy_interval_ms, max_body_bytes,
//                    log_retention_ms, log_retention_bytes,
//                    retention_horizon_ms (positive integers; the horizon
//                    at least 20 heartbeat intervals), sync (bool, default
//                    true), token_file (string: the API's bearer tokens,
//                    below; absent: the API is open), tls_ca (string: the
//                    CA bundle, PEM, that clients of the cluster —
//                    meridianctl, its launcher, tests — verify the nodes'
//                    TLS certificates with; the nodes themselves do not
//                    use it)
//   [[region]]       name (required, unique), node (the nodes below; at
//                    least one)
//   [[region.node]]  id (required, unique across the cluster, 1..64 bytes of
//                    [A-Za-z0-9._-]), http (required, "HOST:PORT"), gossip
//                    (required, "tcp://HOST:PORT"), data_dir (required,
//                    non-empty), sync (bool, default [cluster] sync),
//                    tls_cert, tls_key (strings, both or neither: the PEM
//                    certificate chain and private key of the node's API;
//                    with them its http port speaks only TLS 1.2 or newer,
//                    without them plain HTTP), public_key (string: the node's CURVE public key, 40
//                    Z85 characters as meridianctl keygen prints it;
//                    unique), secret_key_file (string: the file holding
//                    the matching secret key, below; only with public_key)
// HOST is an IPv4 address, "localhost" or a bracketed IPv6 address; PORT is
// 1..65535. No two endpoints (http or gossip, of any nodes) may be equal.
//   [[policy]]       prefix, type (required strings), resolve (array of
//                    strings), on_unresolved, json_max (strings),
//                    prefer_region (array of strings), audit (bool): the
//                    conflict policies of DESIGN.md §5, checked as a set by
//                    conflict::PolicySet::Build (conflict/policy.h). A
//                    "lua:PATH" resolver's PATH is relative to the topology
//                    file's directory (or absolute); the script is read
//                    here (at most 1 MiB of Lua source).
// token_file is relative to the topology file's directory (or absolute). It
// must not be accessible to group or others (mode & 077 == 0). It holds
//   [[token]]        name (required, unique, for logs), token (required,
//                    unique, at least 16 printable ASCII characters without
//                    spaces: the secret), role (required: "read", "write"
//                    or "admin")
// and nothing else; at least one [[token]]. Its problems are reported as
// "TOKEN_FILE:LINE: sentence"; one that cannot be opened or is too open, at
// the token_file line of the topology.
// tls_cert, tls_key and tls_ca are relative to the topology file's directory
// (or absolute) and read here (at most 1 MiB each), so a missing file is
// reported at its line before anything starts; tls_key must not be
// accessible to group or others, as token_file. Whether the PEM text is a
// usable certificate and key is checked by the HTTP server
// (CheckTlsCredentials in node/http_server.h).
//   [[placement]]    prefix (required string), regions (required array of
//                    region names): keys under the prefix are held only
//                    by those regions (gossip/placement.h), checked as a
//                    set by gossip::Placement::Build.
// CurveZMQ for gossip (gossip/transport.h "Security"): either every node
// has a public_key or none does (then gossip is plaintext: development
// only). secret_key_file is optional per node because a node reads only
// its own (LoadSecretKey, at start): a topology shared by several hosts
// need not name the others' secrets. meridiand refuses to start a node of
// a cluster with keys when that node has no secret_key_file, when the
// file is open to group or others (the token_file rule), when it does not
// hold a key, or when the key's public half is not the node's public_key.
// The path is relative to the topology file's directory (or absolute);
// its format is gossip/curve_keys.h's (comment lines starting with '#',
// then the Z85 secret key on a line of its own).
#ifndef MERIDIAN_NODE_TOPOLOGY_H_
#define MERIDIAN_NODE_TOPOLOGY_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "conflict/policy.h"
#include "crdt/status.h"
#include "gossip/placement.h"
#include "node/auth.h"

namespace meridian::node {

struct NodeConfig {
  std::string id;         // unique across the cluster
  std::string region;     // the region it belongs to
  std::string http_host;  // from http = "HOST:PORT"; an IPv6 host without its brackets
  uint16_t http_port = 0;
  std::string gossip;    // "tcp://HOST:PORT"
  std::string data_dir;  // as written; relative to the node's working directory
  bool sync = true;      // per node; default from [cluster] sync
  // Lines in the topology file, so that problems found later (CheckDataDir
  // when the node starts) can be reported as "FILE:LINE: sentence" too.
  int line = 0;           // the node's [[region.node]] header
  int data_dir_line = 0;  // its data_dir value
  // tls_cert and tls_key as written (both empty: plain HTTP), their lines,
  // and the PEM text read from them.
  std::string tls_cert, tls_key;
  int tls_cert_line = 0, tls_key_line = 0;
  std::string tls_cert_pem, tls_key_pem;

  bool api_tls() const { return !tls_cert.empty(); }
  // CurveZMQ: the public key as listed (Z85; empty when gossip is
  // plaintext) and secret_key_file as written (empty when not given), with
  // its line.
  std::string public_key;
  std::string secret_key_file;
  int secret_key_file_line = 0;
};

struct RegionConfig {
  std::string name;
  std::vector<NodeConfig> nodes;
};

struct Topology {
  std::string file;  // the path it was read from
  std::string cluster_name;
  uint64_t max_clock_offset_ms = 500;
  uint64_t heartbeat_interval_ms = 500;
  uint64_t anti_entropy_interval_ms = 1000;
  bool sync = true;                   // [cluster] sync: default for every node
  uint64_t max_body_bytes = 8 << 20;  // [cluster] max_body_bytes: HTTP request body limit
  // [cluster] log_retention_ms / _bytes: how long and how much of its
  // delta log a node keeps for a peer that has not acknowledged it
  // (DESIGN.md §4 "Garbage"); past either, that peer is repaired by
  // anti-entropy instead. Default one day and 1 GiB.
  uint64_t log_retention_ms = uint64_t{24} * 3600 * 1000;
  uint64_t log_retention_bytes = uint64_t{1} << 30;
  // [cluster] retention_horizon_ms: a node not heard from for longer is
  // retired by its peers and must rejoin as a new incarnation (DESIGN.md
  // §4 "Garbage"; gossip/protocol.h "Retention horizon"). Default 7 days.
  uint64_t retention_horizon_ms = uint64_t{7} * 24 * 3600 * 1000;
  std::vector<RegionConfig> regions;  // in file order, each region's nodes in file order
  // [[policy]] tables as read, and the checked set.
  std::vector<conflict::PolicySpec> policy_specs;
  conflict::PolicySet policies;
  // The text of every Lua script the policies name, by PATH as written.
  std::map<std::string, std::string> scripts;
  // [cluster] token_file as written (empty: no tokens, the API is open)
  // and the tokens it holds, in file order.
  std::string token_file;
  int token_file_line = 0;
  std::vector<TokenSpec> tokens;
  // [cluster] tls_ca as written, its line, and the path it names (relative
  // paths resolved against the topology's directory); empty: none given.
  std::string tls_ca;
  int tls_ca_line = 0;
  std::string tls_ca_path;
  // [[placement]] tables as read, and the checked set (built on every
  // successful parse, empty when the file has none).
  std::vector<gossip::PlacementSpec> placement_specs;
  gossip::Placement placement;

  // Whether gossip uses CurveZMQ: the nodes have public keys (all do, or
  // the file was refused).
  bool curve() const;
  // nullptr when no node has that id.
  const NodeConfig* FindNode(const std::string& id) const;
  // Every node, region by region, in file order.
  std::vector<const NodeConfig*> AllNodes() const;
  // Every region's name, in file order.
  std::vector<std::string> RegionNames() const;
};

// Parses and validates a topology file. The Status message lists the
// first problem found as "FILE:LINE: sentence" (several, one per line, when
// more than one is found).
// Problems in the file are InvalidArgument, listed in line order. A file
// that cannot be read is NotFound (missing) or IOError, "FILE: sentence".
// *out is written only on success. Does not touch the file system beyond
// reading the file, the Lua scripts it names, its token_file and its TLS
// files: data dirs
// are checked by CheckDataDir.
Status LoadTopology(const std::string& path, Topology* out);
// The same from text; `name` stands for the file in messages.
Status ParseTopology(const std::string& text, const std::string& name, Topology* out);

// The secret files the topology at `path` names (token_file, every node's
// tls_key and secret_key_file), as the paths a node opens them by
// (relative to the topology's directory unless absolute), read from the
// file's tables alone: the files themselves are neither read nor checked.
// For `meridianctl up`, which makes them private (mode 0600) before it
// loads the topology, as git does not keep file modes. The topology's own
// problems are reported as LoadTopology reports them.
Status SecretFilesOf(const std::string& path, std::vector<std::string>* out);

// This node's CURVE secret key (Z85) from its secret_key_file, checked
// against its public_key (the rules above); empty, and OK, when the
// topology has no keys. Problems are InvalidArgument "FILE:LINE: sentence"
// pointing at the node's secret_key_file line (or its [[region.node]]
// line when it has none).
Status LoadSecretKey(const Topology& topo, const NodeConfig& node, std::string* secret_z85);

// Checks that a node's data dir can be used: it exists and is a writable
// directory, or it does not exist and its nearest existing ancestor is a
// writable directory. Relative paths resolve against the working
// directory.
// Writability is access(2) for the effective user (faccessat with
// AT_EACCESS), so for root only a read-only file system fails it. Returns
// InvalidArgument for an empty path, FailedPrecondition otherwise; the
// message names the path but no file or line: prefix it with the
// topology's file and NodeConfig::data_dir_line.
Status CheckDataDir(const std::string& data_dir);

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_TOPOLOGY_H_
