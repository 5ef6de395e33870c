#include "node/demo_files.h"

#include <fstream>
#include <sstream>

namespace meridian::node {

namespace {

HttpResponse NotFound(const std::string& path, const std::string& why) {
  HttpResponse r;
  r.status = 404;
  r.body = "{\"error\":\"not_found\",\"message\":\"no file for " + path + " (" + why + ")\"}\n";
  return r;
}

const char* TypeOf(const std::string& name) {
  static const std::pair<const char*, const char*> kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".png", "image/png"},
      {".svg", "image/svg+xml"},
      {".json", "application/json"},
  };
  for (const auto& [ext, type] : kTypes) {
    const std::string e(ext);
    if (name.size() > e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0) {
      return type;
    }
  }
  return nullptr;
}

bool PlainName(const std::string& name) {
  if (name.empty() || name[0] == '.' || name.size() > 128) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

HttpResponse ServeDemoFile(const DemoFiles& files, const std::string& path) {
  if (path == "/demo") {
    HttpResponse r;
    r.status = 301;
    r.headers.emplace_back("Location", "/demo/");
    r.body = "{\"moved\":\"/demo/\"}\n";
    return r;
  }
  if (files.dir.empty()) return NotFound(path, "this node serves no editor");
  std::string name = path.substr(std::string("/demo/").size());
  std::string file;
  if (name.empty()) name = "index.html";
  if (name == "vendor/pako.esm.mjs") {
    file = files.pako;
  } else if (PlainName(name)) {
    file = files.dir + "/" + name;
  } else {
    return NotFound(path, "not a file of the editor");
  }
  const char* type = TypeOf(name);
  if (type == nullptr) return NotFound(path, "not a file of the editor");
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return NotFound(path, name == "vendor/pako.esm.mjs"
                              ? "pako is missing: install Debian's node-pako (./dev deps)"
                              : "no such file");
  }
  std::ostringstream body;
  body << in.rdbuf();
  HttpResponse r;
  r.status = 200;
  r.content_type = type;
  r.body = body.str();
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

}  // namespace meridian::node
