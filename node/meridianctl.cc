// meridianctl: a command-line client for one node's HTTP API (DESIGN.md
// §7 and §9).
//
//   meridianctl [--url URL] [--token T] [--cacert FILE] [--json] COMMAND [ARGS] [OPTIONS]
//
// The node is --url, else $MERIDIAN_URL, else http://127.0.0.1:7100. A
// bearer token (README "Security") is --token, else $MERIDIAN_TOKEN; when
// given it is sent as "Authorization: Bearer TOKEN" with every request. An
// https:// node's certificate is verified with the CA certificates in
// --cacert, else $MERIDIAN_CACERT, else the system's; `up` verifies a
// topology's TLS nodes with its [cluster] tls_ca when it has one.
// Options may come before or after the command; an argument that starts
// with a single '-' (a negative number) is an argument, and "--" ends the
// options. Output is plain text or a table; with --json, the node's JSON
// reply on one line (an error reply too; `get` adds the X-Causal-Context
// header as "context"). Exit status: 0 on success, 1 on any error (node
// unreachable, HTTP error, a failed batch operation), 2 on bad usage,
// each with one sentence on stderr.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gossip/curve_keys.h"
#include "node/http_client.h"
#include "node/launcher.h"
#include "storage/backup.h"
#include "storage/backup_format.h"
#include "storage/leveldb_store.h"

using meridian::Status;
using meridian::node::ClientResponse;
using meridian::node::EncodeKeyForPath;
using meridian::node::EncodeQueryValue;
using meridian::node::HttpClient;
using nlohmann::json;

namespace {

constexpr char kDefaultUrl[] = "http://127.0.0.1:7100";
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

using Args = std::vector<std::string>;

struct Options {
  std::string url;
  std::string token;  // --token, else $MERIDIAN_TOKEN; empty: none sent
  std::string cacert;  // --cacert, else $MERIDIAN_CACERT; empty: the system's CAs
  bool json = false;
  bool msgpack = false;
  bool fault_injection = false;
  std::string type, context, prefix, after, limit;
  std::string config, wait, meridiand;  // up, down
  std::string pick, value, file;        // conflicts resolve
  std::string out, data_dir;            // backup, restore
  bool force = false;                   // backup, keygen
  std::string out_secret;               // keygen
  std::set<std::string> given;  // every option named, to refuse those a command ignores
};

// A parsed reply: the status, the body as JSON, and the raw exchange (for
// headers).
struct Reply {
  int status = 0;
  json body;
  ClientResponse raw;
};

std::string Show(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

// A string member of `o`, or "" when `o` is not an object or the member is
// not a string (batch input is whatever the user piped in).
std::string Field(const json& o, const char* name) {
  if (!o.is_object()) return "";
  auto it = o.find(name);
  return it != o.end() && it->is_string() ? it->get<std::string>() : "";
}

int Fail(const std::string& sentence) {
  std::cerr << "meridianctl: " << sentence << "\n";
  return kExitError;
}

// What every command works with: the options and one kept-alive
// connection to the node.
class Ctl {
 public:
  Ctl(Options opts, std::unique_ptr<HttpClient> client)
      : opts_(std::move(opts)), client_(std::move(client)) {}

  const Options& opts() const { return opts_; }

  // Sends one request; on any failure (unreachable node, broken exchange,
  // a reply that is not JSON, an HTTP error status) says so on stderr and
  // returns false. 300 counts as success only when `multiple_ok`.
  bool Exchange(const std::string& method, const std::string& target, const std::string& body,
                const std::string& content_type, Reply* out, bool multiple_ok = false) {
    std::vector<std::pair<std::string, std::string>> headers = {{"Accept", "application/json"}};
    if (!content_type.empty()) headers.emplace_back("Content-Type", content_type);
    if (!opts_.context.empty()) headers.emplace_back("X-Causal-Context", opts_.context);
    Status st = client_->Request(method, target, body, headers, &out->raw);
    if (!st.ok()) {
      if (st.code() == Status::Code::kUnavailable) {
        Fail("cannot reach the node at " + opts_.url + " (" + st.message() + ")");
      } else {
        Fail("the request to " + opts_.url + " failed (" + st.message() + ")");
      }
      return false;
    }
    out->status = out->raw.status;
    out->body = json::parse(out->raw.body, nullptr, false);
    if (out->body.is_discarded()) {
      Fail("the node at " + opts_.url + " answered HTTP " + std::to_string(out->status) +
           " with a body that is not JSON");
      return false;
    }
    bool ok = (out->status >= 200 && out->status < 300) || (multiple_ok && out->status == 300);
    if (ok) return true;
    // Scripts that asked for JSON get the error object too.
    if (opts_.json) PrintJson(out->body);
    std::string message = Field(out->body, "message");
    std::string code = Field(out->body, "error");
    if (message.empty()) message = "the node at " + opts_.url + " refused the request";
    Fail(message + " (HTTP " + std::to_string(out->status) + (code.empty() ? "" : " " + code) +
         ")");
    return false;
  }

  bool SendJson(const std::string& method, const std::string& target, const json& body,
                Reply* out) {
    return Exchange(method, target, Show(body), "application/json", out);
  }

  void PrintJson(const json& body) const { std::cout << Show(body) << "\n"; }

  HttpClient& client() { return *client_; }

 private:
  Options opts_;
  std::unique_ptr<HttpClient> client_;
};

// --- Output -----------------------------------------------------------------

// Prints rows as aligned columns; the first row is the header.
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line += std::string(width[c] - row[c].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

// A read reply ({"key", "type", "value" | "siblings", ...}) as plain text.
// Values print as JSON, so what `get` shows `put` takes back unchanged.
void PrintRead(const json& item, const std::string& context) {
  std::string type = Field(item, "type");
  if (item.contains("siblings")) {
    const json& sibs = item["siblings"];
    std::cout << sibs.size() << " siblings (put with --context to replace them):\n";
    std::vector<std::vector<std::string>> rows = {{"VALUE", "REPLICA", "DOT"}};
    for (const json& s : sibs)
      rows.push_back({Show(s["value"]), Field(s, "replica"), Show(s["dot"])});
    PrintTable(rows);
  } else if (type == "set") {
    if (item["value"].empty()) std::cout << "(empty set)\n";
    for (const json& e : item["value"]) std::cout << Show(e) << "\n";
  } else if (type == "map") {
    std::vector<std::vector<std::string>> rows = {{"FIELD", "TYPE", "VALUE"}};
    for (const auto& [name, field] : item["value"].items()) {
      // A name held by fields of several types lists each.
      const json& variants = field.contains("types") ? field["types"] : json::array({field});
      for (const json& f : variants) rows.push_back({name, Field(f, "type"), Show(f["value"])});
    }
    if (rows.size() == 1) {
      std::cout << "(empty map)\n";
    } else {
      PrintTable(rows);
    }
  } else if (type == "text") {
    // The text itself, as typed (not a JSON string), then its version.
    std::string text = Field(item, "value");
    std::cout << text << (text.empty() || text.back() != '\n' ? "\n" : "");
    std::cout << "version: " << Field(item, "version") << "\n";
  } else {
    std::cout << Show(item["value"]) << "\n";
  }
  if (!context.empty()) std::cout << "context: " << context << "\n";
}

int PrintWrite(const Ctl& ctl, const Reply& r) {
  if (ctl.opts().json) {
    ctl.PrintJson(r.body);
  } else {
    std::cout << "ok (seq " << Show(r.body["seq"]) << ")\n";
  }
  return 0;
}

// --- Arguments ----------------------------------------------------------------

// A command-line value: JSON when it parses ("42", "[1,2]", "\"x\""),
// otherwise the text itself as a JSON string.
json LooseValue(const std::string& text) {
  json v = json::parse(text, nullptr, false);
  return v.is_discarded() ? json(text) : v;
}

bool Int64Arg(const std::string& text, int64_t* out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}

// The route prefix for a --type; "" for a type the route table lacks.
std::string RouteFor(const std::string& type) {
  if (type.empty() || type == "kv" || type == "register" || type == "mvregister") return "/v1/kv/";
  if (type == "counter") return "/v1/counter/";
  if (type == "set") return "/v1/set/";
  if (type == "map") return "/v1/map/";
  if (type == "text") return "/v1/text/";
  return "";
}

// --- Commands -----------------------------------------------------------------

int Usage(const std::string& why);

int Get(Ctl& ctl, const Args& a) {
  std::string route = RouteFor(ctl.opts().type);
  if (route.empty()) return Usage("--type takes kv, counter, set, map or text");
  Reply r;
  if (!ctl.Exchange("GET", route + EncodeKeyForPath(a[0]), "", "", &r, true)) return kExitError;
  // The context travels in a header; --json keeps it, since a script
  // needs it to replace the siblings it read.
  std::string context = r.raw.Header("x-causal-context");
  if (ctl.opts().json) {
    if (!context.empty() && r.body.is_object() && !r.body.contains("context")) {
      r.body["context"] = context;
    }
    ctl.PrintJson(r.body);
  } else {
    PrintRead(r.body, context);
  }
  return 0;
}

int Put(Ctl& ctl, const Args& a) {
  const std::string& type = ctl.opts().type;
  if (!type.empty() && type != "kv" && type != "register" && type != "mvregister") {
    return Usage("put writes registers: --type takes register or mvregister");
  }
  std::string target = "/v1/kv/" + EncodeKeyForPath(a[0]);
  if (type == "mvregister") target += "?type=mvregister";
  Reply r;
  if (!ctl.SendJson("PUT", target, LooseValue(a[1]), &r)) return kExitError;
  return PrintWrite(ctl, r);
}

int Del(Ctl& ctl, const Args& a) {
  std::string route = RouteFor(ctl.opts().type);
  if (route.empty()) return Usage("--type takes kv, counter, set, map or text");
  Reply r;
  if (!ctl.Exchange("DELETE", route + EncodeKeyForPath(a[0]), "", "", &r)) return kExitError;
  return PrintWrite(ctl, r);
}

int Incr(Ctl& ctl, const Args& a) {
  int64_t n = 1;
  if (a.size() > 1 && !Int64Arg(a[1], &n)) {
    return Usage("N must be a 64-bit integer, not '" + a[1] + "'");
  }
  Reply r;
  if (!ctl.SendJson("POST", "/v1/counter/" + EncodeKeyForPath(a[0]), json{{"add", n}}, &r)) {
    return kExitError;
  }
  return PrintWrite(ctl, r);
}

int SetUpdate(Ctl& ctl, const Args& a, const char* field) {
  json elements = json::array();
  for (size_t i = 1; i < a.size(); ++i) elements.push_back(LooseValue(a[i]));
  Reply r;
  if (!ctl.SendJson("POST", "/v1/set/" + EncodeKeyForPath(a[0]), json{{field, elements}}, &r)) {
    return kExitError;
  }
  return PrintWrite(ctl, r);
}

int Sadd(Ctl& ctl, const Args& a) { return SetUpdate(ctl, a, "add"); }
int Srem(Ctl& ctl, const Args& a) { return SetUpdate(ctl, a, "remove"); }

int Scan(Ctl& ctl, const Args&) {
  const Options& o = ctl.opts();
  std::string query;
  auto param = [&](const char* name, const std::string& value) {
    if (!o.given.count(name)) return;
    query += (query.empty() ? "?" : "&") + std::string(name) + "=" + EncodeQueryValue(value);
  };
  param("prefix", o.prefix);
  param("after", o.after);
  param("limit", o.limit);
  Reply r;
  if (!ctl.Exchange("GET", "/v1/scan" + query, "", "", &r)) return kExitError;
  if (o.json) {
    ctl.PrintJson(r.body);
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"KEY", "TYPE", "VALUE"}};
  for (const json& item : r.body["items"]) {
    std::string value =
        item.contains("siblings") ? "siblings " + Show(item["siblings"]) : Show(item["value"]);
    rows.push_back({Field(item, "key"), Field(item, "type"), value});
  }
  if (rows.size() == 1) {
    std::cout << "(no keys)\n";
  } else {
    PrintTable(rows);
  }
  if (r.body["next"].is_string()) {
    std::cout << "next: " << r.body["next"].get<std::string>() << "  (continue with --after)\n";
  }
  return 0;
}

int StatusCmd(Ctl& ctl, const Args&) {
  Reply r;
  if (!ctl.Exchange("GET", "/v1/status", "", "", &r)) return kExitError;
  if (ctl.opts().json) {
    ctl.PrintJson(r.body);
    return 0;
  }
  // Scalars one per row, objects flattened ("clock.writable"), then the
  // peers as a table of their own.
  std::vector<std::vector<std::string>> rows = {{"FIELD", "VALUE"}};
  auto cell = [](const json& v) { return v.is_string() ? v.get<std::string>() : Show(v); };
  for (const auto& [name, v] : r.body.items()) {
    if (v.is_object()) {
      for (const auto& [k, x] : v.items()) rows.push_back({name + "." + k, cell(x)});
    } else if (!v.is_array()) {
      rows.push_back({name, cell(v)});
    }
  }
  PrintTable(rows);
  const json peers = r.body.value("peers", json::array());
  if (peers.is_array() && !peers.empty()) {
    static const char* const kColumns[] = {"node",   "region", "state",          "last_heard_ms_ago",
                                           "lag_ms", "acked",  "unacked_deltas", "unacked_bytes",
                                           "clock_offset_ms", "rtt_ms"};
    std::vector<std::vector<std::string>> table(1);
    for (const char* c : kColumns) {
      std::string h = c;
      for (char& ch : h) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      table[0].push_back(h);
    }
    for (const json& p : peers) {
      std::vector<std::string> row;
      for (const char* c : kColumns) row.push_back(p.is_object() && p.contains(c) ? cell(p[c]) : "");
      table.push_back(std::move(row));
    }
    std::cout << "\n";
    PrintTable(table);
  }
  return 0;
}

int Health(Ctl& ctl, const Args&) {
  Reply r;
  if (!ctl.Exchange("GET", "/v1/health", "", "", &r)) return kExitError;
  if (ctl.opts().json) {
    ctl.PrintJson(r.body);
  } else {
    std::cout << Field(r.body, "status") << " (node " << Field(r.body, "node") << ")";
    if (r.body.value("writable", true) == false) {
      std::cout << ", not writable: " << Field(r.body, "reason");
    }
    std::cout << "\n";
  }
  return 0;
}

// One operation object per non-blank line.
bool ReadJsonLines(std::istream& in, std::vector<json>* ops, std::string* err) {
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json op = json::parse(line, nullptr, false);
    if (op.is_discarded()) {
      *err = "stdin line " + std::to_string(n) + " is not JSON";
      return false;
    }
    ops->push_back(std::move(op));
  }
  return true;
}

// Concatenated msgpack values, one operation each.
bool ReadMsgpackStream(std::istream& in, std::vector<json>* ops, std::string* err) {
  while (in.peek() != std::char_traits<char>::eof()) {
    try {
      // Not strict: reading stops after one value, leaving the rest.
      ops->push_back(json::from_msgpack(in, false));
    } catch (const json::exception& e) {
      *err = "msgpack value " + std::to_string(ops->size() + 1) + " on stdin is malformed (" +
             e.what() + ")";
      return false;
    }
  }
  return true;
}

int Batch(Ctl& ctl, const Args&) {
  bool msgpack = ctl.opts().msgpack;
  std::vector<json> ops;
  std::string err;
  if (!(msgpack ? ReadMsgpackStream(std::cin, &ops, &err) : ReadJsonLines(std::cin, &ops, &err))) {
    return Fail(err);
  }
  if (ops.empty()) return Fail("batch read no operations from stdin");
  std::string body;
  if (msgpack) {
    std::vector<uint8_t> bytes = json::to_msgpack(json(ops));
    body.assign(bytes.begin(), bytes.end());
  } else {
    body = Show(json(ops));
  }
  Reply r;
  if (!ctl.Exchange("POST", "/v1/batch", body, msgpack ? "application/msgpack" : "application/json",
                    &r)) {
    return kExitError;
  }
  const json& results = r.body["results"];
  if (ctl.opts().json) ctl.PrintJson(r.body);
  std::vector<std::vector<std::string>> rows = {{"#", "OP", "KEY", "RESULT"}};
  size_t failed = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    const json& res = results[i];
    std::string text;
    if (res.value("status", 0) == 200) {
      text = "ok (seq " + Show(res["seq"]) + ")";
    } else {
      ++failed;
      text = Show(res["status"]) + " " + Field(res, "error") + ": " + Field(res, "message");
    }
    const json& op = i < ops.size() ? ops[i] : json();
    rows.push_back({std::to_string(i), Field(op, "op"), Field(op, "key"), text});
  }
  if (!ctl.opts().json) PrintTable(rows);
  if (results.size() != ops.size()) {
    return Fail("the node answered " + std::to_string(results.size()) + " results for " +
                std::to_string(ops.size()) + " operations");
  }
  if (failed > 0) {
    return Fail(std::to_string(failed) + " of " + std::to_string(ops.size()) +
                " operations failed");
  }
  return 0;
}

// up / down: every node of a topology on this machine (node/launcher.h).
bool LaunchArgs(const Ctl& ctl, meridian::node::LaunchOptions* lo) {
  const Options& o = ctl.opts();
  if (o.config.empty()) {
    Usage("--config FILE is required");
    return false;
  }
  lo->config = o.config;
  lo->meridiand = o.meridiand;
  lo->ca_file = o.cacert;
  if (o.fault_injection) lo->extra_args.push_back("--enable-fault-injection");
  if (!o.wait.empty()) {
    int64_t w = 0;
    if (!Int64Arg(o.wait, &w) || w < 1 || w > 3600) {
      Usage("--wait must be a number of seconds from 1 to 3600");
      return false;
    }
    lo->wait_seconds = static_cast<int>(w);
  }
  return true;
}

// --- conflicts ----------------------------------------------------------------

// An HLC (or wall milliseconds) as a UTC time, "2026-11-27 08:30:01.123Z".
std::string ReadableTime(uint64_t hlc_or_ms, bool is_hlc) {
  const uint64_t ms = is_hlc ? hlc_or_ms >> 16 : hlc_or_ms;
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03uZ", buf, static_cast<unsigned>(ms % 1000));
  return out;
}

std::string Age(uint64_t since_ms) {
  const uint64_t now = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 std::chrono::system_clock::now().time_since_epoch())
                                                 .count());
  uint64_t s = now > since_ms ? (now - since_ms) / 1000 : 0;
  if (s < 120) return std::to_string(s) + "s";
  if (s < 7200) return std::to_string(s / 60) + "m";
  if (s < 172800) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

// A line diff from `a` to `b` (longest common subsequence): "  " kept,
// "- " only in a, "+ " only in b.
std::vector<std::string> LineDiff(const std::vector<std::string>& a,
                                  const std::vector<std::string>& b) {
  std::vector<std::vector<size_t>> lcs(a.size() + 1, std::vector<size_t>(b.size() + 1, 0));
  for (size_t i = a.size(); i-- > 0;) {
    for (size_t j = b.size(); j-- > 0;) {
      lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  std::vector<std::string> out;
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    if (i < a.size() && j < b.size() && a[i] == b[j]) {
      out.push_back("  " + a[i++]);
      ++j;
    } else if (j < b.size() && (i == a.size() || lcs[i][j + 1] > lcs[i + 1][j])) {
      out.push_back("+ " + b[j++]);
    } else {
      out.push_back("- " + a[i++]);
    }
  }
  return out;
}

// The review entry of KEY, or false (after saying why).
bool ConflictEntry(Ctl& ctl, const std::string& key, Reply* r) {
  return ctl.Exchange("GET", "/v1/conflicts/" + EncodeKeyForPath(key), "", "", r);
}

int ConflictsList(Ctl& ctl) {
  std::string target = "/v1/conflicts?limit=1000";
  if (!ctl.opts().prefix.empty()) target += "&prefix=" + EncodeQueryValue(ctl.opts().prefix);
  Reply r;
  if (!ctl.Exchange("GET", target, "", "", &r)) return kExitError;
  if (ctl.opts().json) {
    ctl.PrintJson(r.body);
    return 0;
  }
  if (r.body["conflicts"].empty()) {
    std::cout << "no conflicts to review\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"KEY", "SIBLINGS", "REGIONS", "AGE", "REASON"}};
  for (const json& e : r.body["conflicts"]) {
    std::string regions;
    for (const json& reg : e["regions"]) regions += (regions.empty() ? "" : ",") + reg.get<std::string>();
    std::string reason = Field(e, "reason");
    if (reason.size() > 60) reason = reason.substr(0, 57) + "...";
    rows.push_back({Field(e, "key"), std::to_string(e["siblings"].size()), regions,
                    Age(e["detected_ms"].get<uint64_t>()), reason});
  }
  PrintTable(rows);
  if (r.body.contains("next")) std::cout << "(more: list with --prefix to narrow)\n";
  return 0;
}

int ConflictsShow(Ctl& ctl, const std::string& key) {
  Reply r;
  if (!ConflictEntry(ctl, key, &r)) return kExitError;
  if (ctl.opts().json) {
    ctl.PrintJson(r.body);
    return 0;
  }
  const json& e = r.body;
  std::cout << Field(e, "key") << ": " << e["siblings"].size() << " siblings, "
            << Field(e, "reason") << "\n"
            << "policy: " << (e["policy"].is_string() ? e["policy"].get<std::string>() : "(none)")
            << ", detected " << ReadableTime(e["detected_ms"].get<uint64_t>(), false) << "\n";
  std::vector<std::vector<std::string>> texts;
  size_t i = 0;
  for (const json& s : e["siblings"]) {
    std::cout << "\n[" << i++ << "] " << Field(s, "region") << " " << Field(s, "replica") << " "
              << ReadableTime(s["hlc"].get<uint64_t>(), true)
              << (s.contains("type") ? " (" + Field(s, "type") + ")" : std::string()) << "\n";
    const std::string pretty = s["value"].dump(2, ' ', false, json::error_handler_t::replace);
    for (const std::string& line : SplitLines(pretty)) std::cout << "    " << line << "\n";
    // Strings are compared by their own lines (a document's), other
    // values by their pretty-printed JSON.
    texts.push_back(SplitLines(s["value"].is_string() ? s["value"].get<std::string>() : pretty));
  }
  for (size_t k = 1; k < texts.size(); ++k) {
    std::cout << "\ndiff [0] -> [" << k << "]:\n";
    for (const std::string& line : LineDiff(texts[0], texts[k])) std::cout << "  " << line << "\n";
  }
  if (e.contains("context")) {
    std::cout << "\nresolve with: meridianctl conflicts resolve " << Field(e, "key")
              << " --pick N | --value JSON | --file F\n";
  }
  return 0;
}

int ConflictsResolve(Ctl& ctl, const std::string& key) {
  const Options& o = ctl.opts();
  const int given = !o.pick.empty() + !o.value.empty() + !o.file.empty();
  if (given != 1) return Usage("resolve takes exactly one of --pick N, --value JSON, --file F");
  json body;
  if (!o.pick.empty()) {
    int64_t n = 0;
    if (!Int64Arg(o.pick, &n) || n < 0) return Usage("--pick takes a sibling's number (0, 1, ...)");
    body["pick"] = n;
  } else {
    std::string text = o.value;
    if (!o.file.empty()) {
      std::ifstream f(o.file, std::ios::binary);
      if (!f) return Fail("cannot read " + o.file);
      text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    }
    body["value"] = json::parse(text, nullptr, false);
    if (body["value"].is_discarded()) {
      return Fail((o.file.empty() ? std::string("--value") : o.file) + " is not JSON");
    }
  }
  Reply entry;
  if (!ConflictEntry(ctl, key, &entry)) return kExitError;
  if (!entry.body.contains("context")) {
    return Fail("key '" + key + "' holds a " + Field(entry.body, "reason") +
                ", which a write cannot resolve");
  }
  if (body.contains("pick") && body["pick"].get<size_t>() >= entry.body["siblings"].size()) {
    return Fail("there is no sibling " + o.pick + " (key '" + key + "' has " +
                std::to_string(entry.body["siblings"].size()) + ")");
  }
  body["context"] = entry.body["context"];
  Reply r;
  if (!ctl.SendJson("POST", "/v1/conflicts/" + EncodeKeyForPath(key), body, &r)) return kExitError;
  if (ctl.opts().json) {
    ctl.PrintJson(r.body);
  } else {
    std::cout << "resolved " << key << " (seq " << Show(r.body["seq"])
              << "); it replicates to every region\n";
  }
  return 0;
}

// Polls the queue and prints each entry as it opens and closes.
int ConflictsWatch(Ctl& ctl) {
  std::map<std::string, json> open;
  bool first = true;
  for (;;) {
    std::string target = "/v1/conflicts?limit=1000";
    if (!ctl.opts().prefix.empty()) target += "&prefix=" + EncodeQueryValue(ctl.opts().prefix);
    Reply r;
    if (!ctl.Exchange("GET", target, "", "", &r)) return kExitError;
    std::map<std::string, json> now;
    for (const json& e : r.body["conflicts"]) now[Field(e, "key")] = e;
    auto print = [&](const char* what, const json& e) {
      if (ctl.opts().json) {
        ctl.PrintJson(json{{"event", what}, {"entry", e}});
      } else {
        std::cout << what << " " << Field(e, "key") << " (" << e["siblings"].size()
                  << " siblings, " << Field(e, "reason") << ")\n";
      }
    };
    for (const auto& [key, e] : now) {
      if (!open.count(key) || open[key]["siblings"] != e["siblings"]) print(first ? "open" : "opened", e);
    }
    for (const auto& [key, e] : open) {
      if (!now.count(key)) print("closed", e);
    }
    std::cout.flush();
    open = std::move(now);
    first = false;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

int ConflictsAudit(Ctl& ctl, const std::string& key) {
  Reply r;
  if (!ctl.Exchange("GET", "/v1/audit/" + EncodeKeyForPath(key), "", "", &r)) return kExitError;
  if (ctl.opts().json) {
    ctl.PrintJson(r.body);
    return 0;
  }
  if (r.body["records"].empty()) {
    std::cout << "no concurrent write to " << key << " has lost\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {
      {"LOST VALUE", "REGION", "WRITTEN", "WINNER REGION", "WINNER WRITTEN"}};
  for (const json& rec : r.body["records"]) {
    rows.push_back({Show(rec["value"]), Field(rec, "region"),
                    ReadableTime(rec["hlc"].get<uint64_t>(), true), Field(rec["winner"], "region"),
                    ReadableTime(rec["winner"]["hlc"].get<uint64_t>(), true)});
  }
  PrintTable(rows);
  return 0;
}

int Conflicts(Ctl& ctl, const Args& a) {
  const std::string& sub = a[0];
  const bool needs_key = sub == "show" || sub == "resolve" || sub == "audit";
  if (sub != "list" && sub != "watch" && !needs_key) {
    return Usage("unknown conflicts command '" + sub + "' (list, show, resolve, watch, audit)");
  }
  if (needs_key != (a.size() == 2)) {
    return Usage(needs_key ? "conflicts " + sub + " needs a KEY" : "conflicts " + sub + " takes no KEY");
  }
  const bool resolve_opts =
      !ctl.opts().pick.empty() || !ctl.opts().value.empty() || !ctl.opts().file.empty();
  if (resolve_opts && sub != "resolve") return Usage("--pick, --value and --file are for resolve");
  if (!ctl.opts().prefix.empty() && sub != "list" && sub != "watch") {
    return Usage("--prefix is for list and watch");
  }
  if (sub == "list") return ConflictsList(ctl);
  if (sub == "watch") return ConflictsWatch(ctl);
  if (sub == "show") return ConflictsShow(ctl, a[1]);
  if (sub == "resolve") return ConflictsResolve(ctl, a[1]);
  return ConflictsAudit(ctl, a[1]);
}

int Up(Ctl& ctl, const Args&) {
  meridian::node::LaunchOptions lo;
  if (!LaunchArgs(ctl, &lo)) return kExitUsage;
  Status st = meridian::node::ClusterUp(lo, std::cout);
  if (!st.ok()) return Fail(st.message());
  return 0;
}

int Down(Ctl& ctl, const Args&) {
  meridian::node::LaunchOptions lo;
  if (!LaunchArgs(ctl, &lo)) return kExitUsage;
  Status st = meridian::node::ClusterDown(lo, std::cout);
  if (!st.ok()) return Fail(st.message());
  return 0;
}

// --- Backup and restore ------------------------------------------------------

// "2026-11-27T16:30:00.123Z"
std::string IsoTime(uint64_t ms) {
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<unsigned>(ms % 1000));
  return buf;
}

std::string HumanBytes(uint64_t n) {
  char buf[32];
  if (n < 1024) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  } else if (n < (1 << 20)) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", n / 1024.0);
  } else if (n < (uint64_t{1} << 30)) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", n / 1048576.0);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f GiB", n / 1073741824.0);
  }
  return buf;
}

// GET /v1/admin/backup into --out: FILE.partial first, checked as it
// arrives (storage::BackupDecoder), renamed to FILE only once the trailer's
// checksum matched. Nothing is left behind on failure.
int Backup(Ctl& ctl, const Args&) {
  namespace fs = std::filesystem;
  const Options& o = ctl.opts();
  if (o.out.empty()) return Usage("--out FILE is required");
  std::error_code ec;
  if (fs::exists(o.out, ec) && !o.force) {
    return Fail(o.out + " exists; pass --force to replace it");
  }
  const std::string partial = o.out + ".partial";
  std::FILE* f = std::fopen(partial.c_str(), "wb");
  if (f == nullptr) return Fail("cannot create " + partial + ": " + std::strerror(errno));
  auto discard = [&](const std::string& why) {
    if (f != nullptr) std::fclose(f);
    f = nullptr;
    std::remove(partial.c_str());
    if (isatty(2)) std::cerr << "\n";
    return Fail(why);
  };

  const bool tty = isatty(2) != 0;
  uint64_t keys = 0;
  meridian::storage::BackupDecoder decoder([&keys](std::string_view key, std::string_view) {
    if (meridian::storage::KindOfRecord(key) == meridian::storage::RecordKind::kState) ++keys;
    return Status::OK();
  });
  const auto start = std::chrono::steady_clock::now();
  auto last_draw = start - std::chrono::seconds(1);
  auto draw = [&](bool final) {
    const auto now = std::chrono::steady_clock::now();
    if (!tty || (!final && now - last_draw < std::chrono::milliseconds(100))) return;
    last_draw = now;
    const double secs = std::chrono::duration<double>(now - start).count();
    // A spinner-style bar: the total is not known in advance.
    static const char* kBar[] = {"[=    ]", "[ =   ]", "[  =  ]", "[   = ]", "[    =]"};
    const int phase = static_cast<int>(secs * 5) % 5;
    std::cerr << "\r" << (final ? "[=====]" : kBar[phase]) << " " << HumanBytes(decoder.bytes())
              << ", " << keys << " keys, " << decoder.records() << " records, "
              << HumanBytes(static_cast<uint64_t>(decoder.bytes() / std::max(secs, 0.001)))
              << "/s   " << std::flush;
  };
  ClientResponse head;
  Status st = ctl.client().Download(
      "/v1/admin/backup",
      [&](std::string_view piece) -> Status {
        if (std::fwrite(piece.data(), 1, piece.size(), f) != piece.size()) {
          return Status::IOError("cannot write " + partial + ": " + std::strerror(errno));
        }
        MERIDIAN_RETURN_IF_ERROR(decoder.Feed(piece));
        draw(false);
        return Status::OK();
      },
      std::chrono::seconds(60), &head);
  if (!st.ok()) {
    if (st.code() == Status::Code::kUnavailable) {
      return discard("cannot reach the node at " + o.url + " (" + st.message() + ")");
    }
    return discard("the backup from " + o.url + " failed: " + st.message());
  }
  if (head.status != 200) {
    json body = json::parse(head.body, nullptr, false);
    std::string message = Field(body, "message");
    std::string code = Field(body, "error");
    if (message.empty()) message = "the node at " + o.url + " refused the backup";
    return discard(message + " (HTTP " + std::to_string(head.status) +
                   (code.empty() ? "" : " " + code) + ")");
  }
  st = decoder.Finish();
  if (!st.ok())
    return discard("the backup stream from " + o.url + " is not whole: " + st.message());
  if (std::fflush(f) != 0 || fsync(fileno(f)) != 0) {
    return discard("cannot write " + partial + ": " + std::strerror(errno));
  }
  std::fclose(f);
  f = nullptr;
  if (std::rename(partial.c_str(), o.out.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(partial.c_str());
    return Fail("cannot rename " + partial + " to " + o.out + ": " + why);
  }
  draw(true);
  if (tty) std::cerr << "\n";
  const meridian::storage::BackupHeader& h = decoder.header();
  if (o.json) {
    ctl.PrintJson(json{{"file", o.out},
                       {"node", h.node},
                       {"region", h.region},
                       {"cluster", h.cluster},
                       {"incarnation", h.incarnation},
                       {"snapshot_ms", h.snapshot_ms},
                       {"keys", keys},
                       {"records", decoder.records()},
                       {"bytes", decoder.bytes()}});
  } else {
    std::cout << "backup of node " << h.node << " (region " << h.region << ", cluster " << h.cluster
              << ") as of " << IsoTime(h.snapshot_ms) << " written to " << o.out << ": " << keys
              << " keys, " << decoder.records() << " records, " << decoder.bytes()
              << " bytes, checksum verified\n";
  }
  return 0;
}

// Writes a new file `path` with mode 0600 holding `text` (refusing an
// existing one unless `force`, which replaces it with a new file, so an
// old file's mode never carries over).
Status WriteSecretFile(const std::string& path, const std::string& text, bool force) {
  if (force && unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status::IOError("cannot replace " + path + ": " + std::strerror(errno));
  }
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) {
      return Status::FailedPrecondition(path + " exists; pass --force to replace it");
    }
    return Status::IOError("cannot create " + path + ": " + std::strerror(errno));
  }
  bool ok = fchmod(fd, 0600) == 0;  // whatever the umask
  size_t done = 0;
  while (ok && done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  ok = ok && fsync(fd) == 0;
  const int err = errno;
  ok = close(fd) == 0 && ok;
  if (!ok) {
    unlink(path.c_str());
    return Status::IOError("cannot write " + path + ": " + std::strerror(err));
  }
  return Status::OK();
}

// A CURVE key pair for a node's gossip (README "Security"): with
// --out-secret, the secret goes to a new mode-0600 file and the lines to
// paste into the node's topology entry are printed; without, both keys
// are printed.
int Keygen(Ctl& ctl, const Args&) {
  const Options& o = ctl.opts();
  meridian::gossip::CurveKeyPair pair;
  Status st = meridian::gossip::GenerateCurveKeyPair(&pair);
  if (!st.ok()) return Fail(st.message());
  if (!o.out_secret.empty()) {
    st = WriteSecretFile(o.out_secret, meridian::gossip::FormatSecretKeyFile(pair), o.force);
    if (!st.ok()) return Fail(st.message());
    if (o.json) {
      ctl.PrintJson(json{{"public_key", pair.public_key}, {"secret_key_file", o.out_secret}});
    } else {
      std::cout << "public_key = \"" << pair.public_key << "\"\n"
                << "secret_key_file = \"" << o.out_secret << "\"\n";
    }
    return 0;
  }
  if (o.json) {
    ctl.PrintJson(json{{"public_key", pair.public_key}, {"secret_key", pair.secret_key}});
  } else {
    std::cout << "public_key = \"" << pair.public_key << "\"\n"
              << "# SECRET key: keep it private; store it alone in a mode 0600 file that the\n"
              << "# node's secret_key_file names (or run keygen --out-secret FILE instead)\n"
              << pair.secret_key << "\n";
  }
  return 0;
}

int Restore(Ctl& ctl, const Args& a) {
  const Options& o = ctl.opts();
  if (o.data_dir.empty()) return Usage("--data-dir DIR is required");
  meridian::storage::RestoreReport r;
  Status st = meridian::storage::RestoreBackup(a[0], o.data_dir, &r);
  if (!st.ok()) return Fail(st.message());
  const meridian::storage::BackupHeader& h = r.file.header;
  if (o.json) {
    ctl.PrintJson(json{{"data_dir", o.data_dir},
                       {"node", h.node},
                       {"region", h.region},
                       {"cluster", h.cluster},
                       {"incarnation", h.incarnation},
                       {"snapshot_ms", h.snapshot_ms},
                       {"keys", r.states},
                       {"conflicts", r.conflicts},
                       {"audit_records", r.audit},
                       {"gc_candidates", r.gc},
                       {"dropped_records", r.dropped},
                       {"bytes", r.file.bytes}});
  } else {
    std::cout << "restored " << r.states << " keys (" << r.conflicts << " conflict entries, "
              << r.audit << " audit records, " << r.gc << " collection candidates; " << r.dropped
              << " records of the old identity, log and digest index dropped) into " << o.data_dir
              << " from " << a[0] << " (" << r.file.bytes << " bytes): a backup of node " << h.node
              << " (region " << h.region << ", cluster " << h.cluster << ", incarnation "
              << h.incarnation << ") as of " << IsoTime(h.snapshot_ms)
              << ". At its next start the node takes a new incarnation and catches up by "
                 "anti-entropy.\n";
  }
  return 0;
}

// --- Command table and main ---------------------------------------------------

struct Command {
  const char* name;
  const char* args;  // usage after the name
  const char* help;
  size_t min_args, max_args;
  std::set<std::string> options;  // besides --url and --json
  int (*run)(Ctl&, const Args&);
};

constexpr size_t kMany = SIZE_MAX;

const std::vector<Command>& Commands() {
  // clang-format off
  static const std::vector<Command> kCommands = {
      {"get", "KEY [--type kv|counter|set|map|text]",
       "read a key; an unresolved mvregister shows every sibling and the context", 1, 1,
       {"type"}, Get},
      {"put", "KEY VALUE [--type register|mvregister] [--context CTX]",
       "set a register (VALUE is JSON if it parses, else a string); --context replaces the "
       "siblings it names",
       2, 2, {"type", "context"}, Put},
      {"del", "KEY [--type kv|counter|set|map|text] [--context CTX]", "delete a key", 1, 1,
       {"type", "context"}, Del},
      {"incr", "KEY [N]", "add N (default 1, may be negative) to a counter", 1, 2, {}, Incr},
      {"sadd", "KEY ELEM...", "add elements to a set (JSON if they parse, else strings)", 2,
       kMany, {}, Sadd},
      {"srem", "KEY ELEM...", "remove elements from a set", 2, kMany, {}, Srem},
      {"scan", "[--prefix P] [--after KEY] [--limit N]",
       "list one page of keys in order, and the cursor for the next", 0, 0,
       {"prefix", "after", "limit"}, Scan},
      {"batch", "[--msgpack]",
       "send the operations on stdin (JSON lines, or a msgpack stream) as one request", 0, 0,
       {"msgpack"}, Batch},
      {"status", "", "the node's identity, counters and peers", 0, 0, {}, StatusCmd},
      {"conflicts", "list|show KEY|resolve KEY|watch|audit KEY [--prefix P] [--pick N | "
       "--value JSON | --file F]",
       "the review queue: list entries (--prefix), show one with its siblings and a diff, "
       "resolve it (--pick a sibling, or --value / --file a new value), watch entries open "
       "and close, or list the writes an audited register lost",
       1, 2, {"prefix", "pick", "value", "file"}, Conflicts},
      {"health", "", "whether the node is up", 0, 0, {}, Health},
      {"backup", "--out FILE [--force]",
       "save a consistent snapshot of the node (GET /v1/admin/backup) to FILE, checksum "
       "verified; a progress bar on a terminal; --force replaces an existing FILE",
       0, 0, {"out", "force"}, Backup},
      {"restore", "FILE --data-dir DIR",
       "check a backup file and load it into an empty (or missing) data dir, without the old "
       "identity: the node started on it is a new incarnation (no --url needed)",
       1, 1, {"data-dir"}, Restore},
      {"keygen", "[--out-secret FILE] [--force]",
       "make a CURVE key pair for a node's gossip: the secret goes to FILE (mode 0600; --force "
       "replaces an existing FILE) and the public_key line to paste into the topology is "
       "printed; without --out-secret both keys are printed (no --url needed)",
       0, 0, {"out-secret", "force"}, Keygen},
      {"up", "--config FILE [--enable-fault-injection] [--wait S] [--meridiand PATH]",
       "start every node of a topology on this machine (pid in DATA_DIR.pid, log in "
       "DATA_DIR.log) and wait until each takes writes",
       0, 0, {"config", "fault-injection", "wait", "meridiand"}, Up},
      {"down", "--config FILE [--wait S]",
       "stop every node of a topology started by up (SIGTERM; SIGKILL after --wait, default 30)",
       0, 0, {"config", "wait"}, Down},
  };
  // clang-format on
  return kCommands;
}

const Command* FindCommand(const std::string& name) {
  for (const Command& c : Commands()) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

const Command* g_command = nullptr;  // for the usage line of a failing command

int Usage(const std::string& why) {
  std::string usage =
      "meridianctl [--url URL] [--token T] [--cacert FILE] [--json] COMMAND ...; see "
      "meridianctl --help";
  if (g_command) {
    usage = std::string("meridianctl ") + g_command->name + (*g_command->args ? " " : "") +
            g_command->args;
  }
  std::cerr << "meridianctl: " << why << " (usage: " << usage << ")\n";
  return kExitUsage;
}

void PrintHelp() {
  std::cout << "usage: meridianctl [--url URL] [--token T] [--cacert FILE] [--json] COMMAND [ARGS] "
               "[OPTIONS]\n\n"
               "Talks to one Meridian node over HTTP.\n\ncommands:\n";
  for (const Command& c : Commands()) {
    std::cout << "  " << c.name << (*c.args ? " " : "") << c.args << "\n      " << c.help << "\n";
  }
  std::cout << "\noptions (before or after the command):\n"
               "  --url URL   the node (default $MERIDIAN_URL, else "
            << kDefaultUrl
            << ")\n"
               "  --token T   send 'Authorization: Bearer T' (default $MERIDIAN_TOKEN)\n"
               "  --cacert FILE  verify an https:// node with the CA certificates (PEM) in FILE\n"
               "              (default $MERIDIAN_CACERT, else the system's; up: the topology's\n"
               "              [cluster] tls_ca first)\n"
               "  --json      print the node's JSON reply on one line\n"
               "  --help      this text\n"
               "\"--\" ends the options; an argument starting with one '-' (like -5) is an "
               "argument.\n"
               "exit status: 0 success, 1 error (node unreachable, HTTP error, a failed batch "
               "operation), 2 bad usage.\n";
}

// Splits argv into options and positional arguments.
bool ParseArgs(int argc, char** argv, Options* o, Args* positional, bool* help, std::string* err) {
  static const std::map<std::string, std::string Options::*> kValued = {
      {"url", &Options::url},
      {"token", &Options::token},
      {"cacert", &Options::cacert},
      {"type", &Options::type},
      {"context", &Options::context},
      {"prefix", &Options::prefix},
      {"after", &Options::after},
      {"limit", &Options::limit},
      {"config", &Options::config},
      {"wait", &Options::wait},
      {"meridiand", &Options::meridiand},
      {"pick", &Options::pick},
      {"value", &Options::value},
      {"file", &Options::file},
      {"out", &Options::out},
      {"out-secret", &Options::out_secret},
      {"data-dir", &Options::data_dir}};
  bool options_done = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (options_done || a.size() < 2 || a[0] != '-' || (a[1] != '-' && a != "-h")) {
      positional->push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    if (a == "--help" || a == "-h") {
      *help = true;
      continue;
    }
    std::string name = a.substr(2), value;
    size_t eq = name.find('=');
    bool has_value = eq != std::string::npos;
    if (has_value) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    if (kValued.count(name)) {
      if (!has_value) {
        if (i + 1 >= argc) {
          *err = "--" + name + " needs a value";
          return false;
        }
        value = argv[++i];
      }
      o->*kValued.at(name) = value;
    } else if (name == "json" || name == "msgpack" || name == "enable-fault-injection" ||
               name == "force") {
      if (has_value) {
        *err = "--" + name + " takes no value";
        return false;
      }
      if (name == "enable-fault-injection") {
        o->fault_injection = true;
        name = "fault-injection";
      } else if (name == "force") {
        o->force = true;
      } else {
        (name == "json" ? o->json : o->msgpack) = true;
      }
    } else {
      *err = "unknown option '" + a + "'";
      return false;
    }
    o->given.insert(name);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  Args args;
  bool help = false;
  std::string err;
  if (!ParseArgs(argc, argv, &opts, &args, &help, &err)) return Usage(err);
  if (help) {
    PrintHelp();
    return 0;
  }
  if (args.empty()) return Usage("no command given");
  g_command = FindCommand(args[0]);
  if (g_command == nullptr) {
    return Usage("unknown command '" + args[0] + "'");
  }
  args.erase(args.begin());
  for (const std::string& name : opts.given) {
    if (name != "url" && name != "json" && name != "token" && name != "cacert" &&
        !g_command->options.count(name)) {
      return Usage(std::string(g_command->name) + " does not take --" + name);
    }
  }
  if (args.size() < g_command->min_args || args.size() > g_command->max_args) {
    return Usage(args.size() < g_command->min_args ? "missing arguments" : "too many arguments");
  }
  if (opts.url.empty()) {
    const char* env = std::getenv("MERIDIAN_URL");
    opts.url = env && *env ? env : kDefaultUrl;
  }
  if (!opts.given.count("token")) {
    const char* env = std::getenv("MERIDIAN_TOKEN");
    if (env) opts.token = env;
  } else if (opts.token.empty()) {
    return Usage("--token needs a non-empty value");
  }
  if (opts.token.find_first_of("\r\n") != std::string::npos) {
    return Usage("a token cannot hold a line break");
  }
  if (!opts.given.count("cacert")) {
    const char* env = std::getenv("MERIDIAN_CACERT");
    if (env) opts.cacert = env;
  } else if (opts.cacert.empty()) {
    return Usage("--cacert needs a file name");
  }
  std::unique_ptr<HttpClient> client;
  Status st = HttpClient::Create(opts.url, opts.cacert, &client);
  if (!st.ok()) {
    std::cerr << "meridianctl: " << st.message() << "\n";
    return kExitUsage;
  }
  if (!opts.token.empty()) client->set_default_headers({{"Authorization", "Bearer " + opts.token}});
  Ctl ctl(std::move(opts), std::move(client));
  try {
    return g_command->run(ctl, args);
  } catch (const json::exception& e) {
    // Only a reply of an unexpected shape gets here.
    return Fail("the node's reply has an unexpected shape (" + std::string(e.what()) + ")");
  }
}
