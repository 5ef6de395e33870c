// The collaborative editor's static files (GET /demo/...): the files of
// one directory (the repository's demo/ unless meridiand is told
// otherwise), plus Debian's pako module (package node-pako) at
// /demo/vendor/pako.esm.mjs, which the page's text replica packs and
// unpacks with. Only plain names directly in the directory are served
// (no path separators, no leading dot), with a content type by extension.
#ifndef MERIDIAN_NODE_DEMO_FILES_H_
#define MERIDIAN_NODE_DEMO_FILES_H_

#include <string>

#include "node/http_server.h"

namespace meridian::node {

struct DemoFiles {
  std::string dir;   // empty: no editor (404)
  std::string pako;  // path of pako.esm.mjs
};

// The response for `path` (which starts with "/demo"): 200 with the file,
// 301 from "/demo" to "/demo/", or 404 with a JSON error. Reads the disk:
// call it off the I/O threads.
HttpResponse ServeDemoFile(const DemoFiles& files, const std::string& path);

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_DEMO_FILES_H_
