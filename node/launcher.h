// Starting and stopping every node of a topology on this machine, for
// development (`meridianctl up|down --config FILE`, `./dev up|down`).
//
// Up: for each node of the file whose recorded process is not already
// running, fork and exec meridiand directly (no wrapper process stays
// behind) in its own session, in the current working directory (so a
// relative data_dir is relative to it, as for a hand-started node), with
// stdout and stderr appended to DATA_DIR.log and its process id written to
// DATA_DIR.pid (for regions/local.toml: data/us-east-1.pid). When no node
// of the file has a data dir with anything in it yet (a brand-new
// cluster), the first node is started with --bootstrap and the others
// bootstrap from it (DESIGN.md §3). Then wait
// until every node answers GET /v1/health with "writable": true (over
// https for a node with tls_cert, verified with the topology's [cluster]
// tls_ca, else LaunchOptions::ca_file, else the system's CAs). If a node
// exits or does not become writable in time, the nodes this call started
// are stopped again and the error names the node and quotes its log.
//
// Down: for each node with a pid file whose process is that node's
// meridiand (checked in /proc, so a recycled pid is never signalled), send
// SIGTERM, wait for it to exit (SIGKILL after the timeout), and remove the
// pid file. Nodes not running are reported and skipped.
//
// Both are safe to run twice.
#ifndef MERIDIAN_NODE_LAUNCHER_H_
#define MERIDIAN_NODE_LAUNCHER_H_

#include <ostream>
#include <string>
#include <vector>

#include "crdt/status.h"

namespace meridian::node {

struct LaunchOptions {
  std::string config;                   // topology file
  std::string meridiand;                // the binary; "" = next to this program, else $PATH
  std::vector<std::string> extra_args;  // passed to every meridiand (e.g. --enable-fault-injection)
  int wait_seconds = 30;                // for up: writable; for down: exit before SIGKILL
  // For up: the CA file (PEM) that TLS nodes' certificates are verified
  // with when the topology has no [cluster] tls_ca; "": the system's.
  std::string ca_file;
};

// Progress and the URLs go to `out`, one line each; up ends with one line
// per node: "REGION  ID  URL  editor URL/demo/", URL http://HOST:PORT or,
// for a node with TLS, https://HOST:PORT
// (the collaborative editor demo each node serves).
Status ClusterUp(const LaunchOptions& options, std::ostream& out);
Status ClusterDown(const LaunchOptions& options, std::ostream& out);

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_LAUNCHER_H_
