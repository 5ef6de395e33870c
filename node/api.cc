#include "node/api.h"

#include "node/body.h"
#include "node/review_queue.h"
#include "node/text_stream.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <limits>

#include <nlohmann/json.hpp>

#include "crdt/codec.h"
#include "crdt/counter.h"
#include "crdt/map.h"
#include "conflict/conflict_index.h"
#include "crdt/mvregister.h"
#include "crdt/register.h"
#include "crdt/set.h"
#include "crdt/text.h"
#include "node/committer.h"
#include "storage/backup_format.h"

namespace meridian::node {

using nlohmann::json;

// --- WorkerPool -------------------------------------------------------------

WorkerPool::WorkerPool(int threads) {
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back([this] {
      for (;;) {
        std::function<void()> task;
        {
          std::unique_lock<std::mutex> lock(mu_);
          cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
          if (tasks_.empty()) return;
          task = std::move(tasks_.front());
          tasks_.pop_front();
        }
        task();
      }
    });
  }
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void WorkerPool::Post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

// --- Request plumbing -------------------------------------------------------

namespace {

constexpr size_t kDefaultScanLimit = 100;
constexpr uint64_t kMaxConflictsLimit = 1000;
constexpr size_t kConflictScanChunk = 256;
constexpr size_t kMaxQueueDepthCounted = 10000;
constexpr size_t kMaxAuditRecords = 1000;

// A Prometheus label value: backslash, quote and newline escaped.
std::string MetricLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}
constexpr size_t kMaxScanLimit = 1000;
// A register write's reply names its hlc when the stored state is at most
// this big (decoding it runs on the acknowledger thread; a bigger value's
// writer can read the key instead).
constexpr size_t kRegisterReplyBytes = 64 << 10;
constexpr uint64_t kDefaultWriteTimeoutMs = 5000;  // ?w=N waits this long by default
constexpr uint64_t kDefaultReadTimeoutMs = 1000;   // a session-token read likewise
constexpr uint64_t kMaxTimeoutMs = 60000;
constexpr uint64_t kMaxFaultDelayMs = 60000;

// ?w=N&timeout_ms=T of a write.
struct WriteWait {
  uint64_t w = 1;
  std::chrono::steady_clock::time_point deadline;
};

ApiError Err(int http, std::string code, std::string message) {
  return ApiError{http, std::move(code), std::move(message)};
}

bool Int64Of(const json& v, int64_t* out) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      return false;
    }
    *out = v.get<int64_t>();
    return true;
  }
  return false;
}

bool ElementsOf(const json& v, const char* what, std::vector<std::string>* out, ApiError* err) {
  out->clear();
  if (v.is_null()) return true;
  if (!v.is_array()) {
    *err = Err(400, "bad_request", std::string("'") + what + "' must be an array");
    return false;
  }
  for (const json& e : v) out->push_back(ValueToBytes(e));
  return true;
}

// Builds the map update of a POST /v1/map body (or batch "map" op).
bool MapOpsOf(const json& body, Operation* op, ApiError* err) {
  if (body.contains("update")) {
    const json& update = body["update"];
    if (!update.is_object()) {
      *err = Err(400, "bad_request", "'update' must be an object of field name to operation");
      return false;
    }
    for (const auto& [name, spec] : update.items()) {
      if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
        *err = Err(400, "bad_request",
                   "field '" + name + "': expected {\"type\": t, <operation>: argument}");
        return false;
      }
      crdt::FieldOp f;
      f.name = name;
      std::string type = spec["type"];
      if (type == "register") {
        f.type = crdt::FieldType::kRegister;
        if (!spec.contains("set")) {
          *err = Err(400, "bad_request", "field '" + name + "': a register takes \"set\"");
          return false;
        }
        f.value = ValueToBytes(spec["set"]);
      } else if (type == "counter") {
        f.type = crdt::FieldType::kCounter;
        if (!spec.contains("add") || !Int64Of(spec["add"], &f.add)) {
          *err = Err(400, "bad_request",
                     "field '" + name + "': a counter takes \"add\" with a 64-bit integer");
          return false;
        }
      } else if (type == "set") {
        f.type = crdt::FieldType::kSet;
        if (!spec.contains("sadd") && !spec.contains("srem")) {
          *err = Err(400, "bad_request", "field '" + name + "': a set takes \"sadd\" or \"srem\"");
          return false;
        }
        if (spec.contains("sadd") && !ElementsOf(spec["sadd"], "sadd", &f.sadd, err)) return false;
        if (spec.contains("srem") && !ElementsOf(spec["srem"], "srem", &f.srem, err)) return false;
      } else if (type == "flag") {
        f.type = crdt::FieldType::kFlag;
        bool enable = spec.contains("enable"), disable = spec.contains("disable");
        if (enable == disable) {
          *err = Err(400, "bad_request",
                     "field '" + name + "': a flag takes \"enable\" or \"disable\"");
          return false;
        }
        f.enable = enable;
      } else {
        *err = Err(400, "unknown_type",
                   "field '" + name + "': unknown type '" + type +
                       "' (register, counter, set or flag)");
        return false;
      }
      op->field_ops.push_back(std::move(f));
    }
  }
  if (body.contains("remove")) {
    const json& rm = body["remove"];
    if (!rm.is_array()) {
      *err = Err(400, "bad_request", "'remove' must be an array of field names");
      return false;
    }
    for (const json& n : rm) {
      if (!n.is_string()) {
        *err = Err(400, "bad_request", "'remove' must be an array of field names");
        return false;
      }
      op->field_removes.push_back(n.get<std::string>());
    }
  }
  if (op->field_ops.empty() && op->field_removes.empty()) {
    *err = Err(400, "bad_request", "a map update needs \"update\" or \"remove\"");
    return false;
  }
  return true;
}

bool SetOpsOf(const json& body, Operation* op, ApiError* err) {
  if (!body.is_object() || (!body.contains("add") && !body.contains("remove"))) {
    *err = Err(400, "bad_request", "a set update is {\"add\": [...], \"remove\": [...]}");
    return false;
  }
  if (body.contains("add") && !ElementsOf(body["add"], "add", &op->adds, err)) return false;
  if (body.contains("remove") && !ElementsOf(body["remove"], "remove", &op->removes, err)) {
    return false;
  }
  return true;
}

// A text position or length: a JSON integer >= 0.
bool CountOf(const json& v, uint64_t* out) {
  if (!v.is_number_unsigned()) return false;
  *out = v.get<uint64_t>();
  return true;
}

// Builds the text edit of a POST /v1/text body (or batch "text" op):
// {"version": v, "ops": [{"insert": {"pos": p, "text": s}}, {"delete":
// {"pos": p, "len": n}}, ...]}; "version" absent or null: the node's
// current one.
bool TextOpsOf(const json& body, Operation* op, ApiError* err) {
  static const char kShape[] =
      "a text update is {\"version\": v, \"ops\": [{\"insert\": {\"pos\": p, \"text\": s}}, "
      "{\"delete\": {\"pos\": p, \"len\": n}}, ...]}";
  auto bad = [&](const std::string& why) {
    *err = Err(400, "bad_request", why);
    return false;
  };
  if (!body.is_object() || !body.contains("ops")) return bad(kShape);
  op->kind = Operation::Kind::kTextEdit;
  op->text_at.reset();
  op->text_edits.clear();
  if (body.contains("version") && !body["version"].is_null()) {
    crdt::TextVersion v;
    if (!body["version"].is_string() ||
        !DecodeTextVersion(body["version"].get<std::string>(), &v)) {
      *err = Err(400, "bad_version",
                 "\"version\" must be a text version as a read or a write reply gave it");
      return false;
    }
    op->text_at = std::move(v);
  }
  const json& ops = body["ops"];
  if (!ops.is_array() || ops.empty()) {
    return bad(std::string("\"ops\" must be a non-empty array; ") + kShape);
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    const json& o = ops[i];
    const std::string at = "ops[" + std::to_string(i) + "]: ";
    if (!o.is_object() || o.size() != 1 || (!o.contains("insert") && !o.contains("delete"))) {
      return bad(at + "each op is {\"insert\": {\"pos\": p, \"text\": s}} or {\"delete\": "
                      "{\"pos\": p, \"len\": n}}");
    }
    crdt::TextEdit e;
    e.insert = o.contains("insert");
    const json& a = e.insert ? o["insert"] : o["delete"];
    const char* second = e.insert ? "text" : "len";
    if (!a.is_object() || a.size() != 2 || !a.contains("pos") || !a.contains(second)) {
      return bad(at + (e.insert ? "an insert is {\"pos\": p, \"text\": s}"
                                : "a delete is {\"pos\": p, \"len\": n}"));
    }
    if (!CountOf(a["pos"], &e.pos)) {
      return bad(at + "\"pos\" must be an integer >= 0 (a position in code points)");
    }
    if (e.insert) {
      if (!a["text"].is_string() || a["text"].get_ref<const std::string&>().empty()) {
        return bad(at + "\"text\" must be a non-empty string");
      }
      e.text = a["text"].get<std::string>();
      if (!ValidUtf8(e.text)) {
        *err = Err(400, "bad_text", at + "\"text\" is not valid UTF-8");
        return false;
      }
      if (e.text.size() > crdt::kMaxTextInsertBytes) {
        return bad(at + "one insert holds at most " + std::to_string(crdt::kMaxTextInsertBytes) +
                   " bytes");
      }
    } else if (!CountOf(a["len"], &e.len) || e.len == 0) {
      return bad(at + "\"len\" must be an integer >= 1 (code points)");
    }
    op->text_edits.push_back(std::move(e));
  }
  return true;
}

}  // namespace

struct Api::Call {
  HttpRequest req;
  Reply reply;
  std::string path;
  std::vector<std::pair<std::string, std::string>> query;
  bool msgpack_out = false;
  std::string route = "other";
  std::chrono::steady_clock::time_point start;
  Metrics* metrics = nullptr;

  std::string Query(const std::string& name, bool* present = nullptr) const {
    for (const auto& [k, v] : query) {
      if (k == name) {
        if (present) *present = true;
        return v;
      }
    }
    if (present) *present = false;
    return std::string();
  }

  // Query parameter `name` as an integer in [min, max]; `fallback` when
  // absent. False (and a 400 bad_request) otherwise.
  bool UintParam(const std::string& name, uint64_t min, uint64_t max, uint64_t fallback,
                 uint64_t* out, ApiError* err) const {
    bool present = false;
    std::string v = Query(name, &present);
    *out = fallback;
    if (!present) return true;
    bool digits = !v.empty() && v.size() <= 12 &&
                  v.find_first_not_of("0123456789") == std::string::npos;
    uint64_t n = digits ? std::stoull(v) : 0;
    if (!digits || n < min || n > max) {
      *err = Err(400, "bad_request",
                 name + " must be an integer from " + std::to_string(min) + " to " +
                     std::to_string(max) + ", not '" + v + "'");
      return false;
    }
    *out = n;
    return true;
  }

  bool WriteWaitOf(const Topology& topo, WriteWait* out, ApiError* err) const {
    uint64_t timeout_ms = 0;
    if (!UintParam("w", 1, topo.regions.size(), 1, &out->w, err) ||
        !UintParam("timeout_ms", 1, kMaxTimeoutMs, kDefaultWriteTimeoutMs, &timeout_ms, err)) {
      return false;
    }
    out->deadline = start + std::chrono::milliseconds(timeout_ms);
    return true;
  }

  void Send(int status, const json& body,
            std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpResponse r;
    r.status = status;
    if (msgpack_out) {
      std::vector<uint8_t> bytes = json::to_msgpack(body);
      r.body.assign(bytes.begin(), bytes.end());
      r.content_type = "application/msgpack";
    } else {
      r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
      r.body += '\n';
      r.content_type = "application/json";
    }
    r.headers = std::move(headers);
    Finish(std::move(r));
  }

  void SendText(int status, std::string text, std::string content_type) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(text);
    r.content_type = std::move(content_type);
    Finish(std::move(r));
  }

  void Fail(const ApiError& e, std::vector<std::pair<std::string, std::string>> headers = {}) {
    Send(e.http, json{{"error", e.code}, {"message", e.message}}, std::move(headers));
  }

  void Finish(HttpResponse r) {
    if (metrics) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      metrics->Observe(route, req.method, r.status, secs);
    }
    reply(std::move(r));
  }

  // Parses the request body by Content-Type: JSON (the default) or
  // msgpack (node/body.h). Refuses other media types (415) and deep
  // nesting (400).
  bool Body(json* out, ApiError* err) const {
    return ParseBody(MediaType(req.Header("content-type")), req.body, out, err);
  }
};

// Each backup streams from a thread of its own: it may last minutes and
// block on a slow client, which a reader thread must not.
class Api::BackupRunner {
 public:
  ~BackupRunner() {
    std::vector<Job> jobs;
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs = std::move(jobs_);
    }
    for (Job& j : jobs) j.stream->Close();  // wakes a producer waiting on the client
    for (Job& j : jobs) j.thread.join();
  }

  // Runs `work` on a new thread unless kMaxBackups run already.
  bool Start(std::shared_ptr<EventStream> stream, std::function<void()> work) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = jobs_.erase(it);
      } else {
        ++it;
      }
    }
    if (jobs_.size() >= static_cast<size_t>(kMaxBackups)) return false;
    Job job;
    job.stream = std::move(stream);
    job.done = std::make_shared<std::atomic<bool>>(false);
    job.thread = std::thread([work = std::move(work), done = job.done] {
      work();
      done->store(true);
    });
    jobs_.push_back(std::move(job));
    return true;
  }

 private:
  struct Job {
    std::thread thread;
    std::shared_ptr<EventStream> stream;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::mutex mu_;
  std::vector<Job> jobs_;
};

Api::Api(ApiContext ctx, int reader_threads)
    : ctx_(std::move(ctx)),
      tokens_(ctx_.topology->tokens),
      readers_(reader_threads),
      backups_(std::make_unique<BackupRunner>()) {}

Api::~Api() = default;

void Api::Handle(HttpRequest&& req, Reply reply) {
  auto call = std::make_shared<Call>();
  call->start = std::chrono::steady_clock::now();
  call->metrics = ctx_.metrics;
  call->req = std::move(req);
  call->reply = std::move(reply);
  std::string accept = call->req.Header("accept");
  call->msgpack_out = accept.find("application/msgpack") != std::string::npos &&
                      accept.find("application/json") == std::string::npos;
  const std::string& target = call->req.target;
  size_t q = target.find('?');
  call->path = target.substr(0, q);
  if (q != std::string::npos && !ParseQuery(std::string_view(target).substr(q + 1), &call->query)) {
    return call->Fail(Err(400, "bad_query", "malformed percent-escape in the query string"));
  }
  // The one token check, before any route sees the request (auth.h).
  AuthDecision auth = Authorize(tokens_, call->req.method, call->path,
                                call->req.Header("authorization"), call->Query("access_token"));
  if (!auth.allowed()) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (auth.http == 401) headers.emplace_back("WWW-Authenticate", "Bearer");
    return call->Fail(Err(auth.http, auth.code, auth.message), std::move(headers));
  }
  Route(call);
}

void Api::Route(const std::shared_ptr<Call>& call) {
  const std::string& path = call->path;
  const std::string& method = call->req.method;
  auto method_not_allowed = [&](const char* allow) {
    call->Fail(Err(405, "method_not_allowed", method + " is not allowed on " + path),
               {{"Allow", allow}});
  };
  struct TypedRoute {
    const char* prefix;
    const char* label;
    uint8_t tag;
  };
  static const TypedRoute kTyped[] = {
      {"/v1/kv/", "kv", crdt::Register::kTag},
      {"/v1/counter/", "counter", crdt::Counter::kTag},
      {"/v1/set/", "set", crdt::Set::kTag},
      {"/v1/map/", "map", crdt::Map::kTag},
      {"/v1/text/", "text", crdt::Text::kTag},
  };
  for (const TypedRoute& r : kTyped) {
    std::string_view prefix(r.prefix);
    if (path.compare(0, prefix.size(), prefix) != 0) continue;
    call->route = r.label;
    std::string key;
    if (!PercentDecode(std::string_view(path).substr(prefix.size()), false, &key)) {
      return call->Fail(Err(400, "bad_key", "malformed percent-escape in the key"));
    }
    ApiError err;
    if (!ValidKey(key, &err)) return call->Fail(err);
    if (!PlacedHere(key, method != "GET", &err)) return call->Fail(err);
    if (method == "GET") return Read(call, key, r.tag);
    Operation op;
    op.key = key;
    op.type = r.tag;
    op.kv = r.tag == crdt::Register::kTag;
    if (method == "DELETE") {
      op.kind = Operation::Kind::kDelete;
      if (op.kv) {
        std::string ctx = call->req.Header("x-causal-context");
        if (!ctx.empty()) {
          crdt::CausalContext c;
          if (!DecodeContextHeader(ctx, &c)) {
            return call->Fail(Err(400, "bad_context", "X-Causal-Context is not a valid context"));
          }
          op.context = std::move(c);
        }
      }
      return Write(call, std::move(op));
    }
    bool is_put = method == "PUT", is_post = method == "POST";
    if ((op.kv && !is_put) || (!op.kv && !is_post)) {
      return method_not_allowed(op.kv ? "GET, PUT, DELETE" : "GET, POST, DELETE");
    }
    json body;
    if (!call->Body(&body, &err)) return call->Fail(err);
    if (op.kv) {
      op.kind = Operation::Kind::kPut;
      std::string type = call->Query("type");
      if (type == "mvregister") {
        op.type = crdt::MvRegister::kTag;
      } else if (!type.empty() && type != "register") {
        return call->Fail(Err(400, "unknown_type",
                              "?type= takes register or mvregister, not '" + type + "'"));
      }
      op.value = ValueToBytes(body);
      std::string ctx = call->req.Header("x-causal-context");
      if (!ctx.empty()) {
        crdt::CausalContext c;
        if (!DecodeContextHeader(ctx, &c)) {
          return call->Fail(Err(400, "bad_context", "X-Causal-Context is not a valid context"));
        }
        op.context = std::move(c);
      }
    } else if (r.tag == crdt::Counter::kTag) {
      op.kind = Operation::Kind::kCounterAdd;
      if (!body.is_object() || !body.contains("add") || !Int64Of(body["add"], &op.amount)) {
        return call->Fail(Err(400, "bad_request", "a counter update is {\"add\": <64-bit integer>}"));
      }
    } else if (r.tag == crdt::Set::kTag) {
      op.kind = Operation::Kind::kSetUpdate;
      if (!SetOpsOf(body, &op, &err)) return call->Fail(err);
    } else if (r.tag == crdt::Text::kTag) {
      if (!TextOpsOf(body, &op, &err)) return call->Fail(err);
    } else {
      op.kind = Operation::Kind::kMapUpdate;
      if (!body.is_object() || !MapOpsOf(body, &op, &err)) {
        if (err.code.empty()) err = Err(400, "bad_request", "a map update is an object");
        return call->Fail(err);
      }
    }
    return Write(call, std::move(op));
  }
  struct SimpleRoute {
    const char* path;
    const char* label;
    const char* method;
    void (Api::*serve)(const std::shared_ptr<Call>&);
  };
  static const SimpleRoute kSimple[] = {
      {"/v1/batch", "batch", "POST", &Api::Batch},
      {"/v1/scan", "scan", "GET", &Api::Scan},
      {"/v1/watch", "watch", "GET", &Api::Watch},
      {"/v1/health", "health", "GET", &Api::Health},
      {"/v1/status", "status", "GET", &Api::NodeStatus},
      {"/metrics", "metrics", "GET", &Api::MetricsText},
  };
  if (path.rfind("/v1/stream/text/", 0) == 0) {
    call->route = "stream_text";
    std::string key;
    if (!PercentDecode(std::string_view(path).substr(16), false, &key)) {
      return call->Fail(Err(400, "bad_key", "malformed percent-escape in the key"));
    }
    ApiError err;
    if (!ValidKey(key, &err)) return call->Fail(err);
    if (method != "GET") return method_not_allowed("GET");
    // A live stream writes as well as reads: refused where a write is.
    if (!PlacedHere(key, true, &err)) return call->Fail(err);
    if (text_streams_ == nullptr) return call->Fail(Err(404, "not_found", "no live text here"));
    if (!call->req.websocket_upgrade) {
      return call->Fail(Err(426, "upgrade_required",
                            "GET /v1/stream/text/{key} is a WebSocket (Upgrade: websocket)"),
                        {{"Upgrade", "websocket"}});
    }
    HttpResponse r;
    r.status = 101;
    r.websocket = text_streams_->Open(key);
    return call->Finish(std::move(r));
  }
  if (path == "/demo" || path.rfind("/demo/", 0) == 0) {
    call->route = "demo";
    if (method != "GET") return method_not_allowed("GET");
    return readers_.Post([this, call] { call->Finish(ServeDemoFile(ctx_.demo, call->path)); });
  }
  if (path == "/v1/conflicts") {
    call->route = "conflicts";
    if (method != "GET") return method_not_allowed("GET");
    return Conflicts(call);
  }
  if (path.rfind("/v1/conflicts/", 0) == 0) {
    call->route = "conflict";
    std::string key;
    if (!PercentDecode(std::string_view(path).substr(14), false, &key)) {
      return call->Fail(Err(400, "bad_key", "malformed percent-escape in the key"));
    }
    ApiError err;
    if (!ValidKey(key, &err)) return call->Fail(err);
    if (!PlacedHere(key, method != "GET", &err)) return call->Fail(err);
    if (method == "GET") return ConflictOf(call, key);
    if (method == "POST") return ResolveConflict(call, key);
    return method_not_allowed("GET, POST");
  }
  if (path.rfind("/v1/audit/", 0) == 0) {
    call->route = "audit";
    std::string key;
    if (!PercentDecode(std::string_view(path).substr(10), false, &key)) {
      return call->Fail(Err(400, "bad_key", "malformed percent-escape in the key"));
    }
    ApiError err;
    if (!ValidKey(key, &err)) return call->Fail(err);
    if (method != "GET") return method_not_allowed("GET");
    if (!PlacedHere(key, false, &err)) return call->Fail(err);
    return Audit(call, key);
  }
  if (path == "/v1/admin/backup") {
    call->route = "backup";
    if (method != "GET") return method_not_allowed("GET");
    return Backup(call);
  }
  if (path == "/v1/admin/faults") {
    call->route = "admin_faults";
    if (!ctx_.fault_injection) {
      return call->Fail(Err(404, "not_found",
                            "no route for " + path + " (meridiand runs without "
                            "--enable-fault-injection)"));
    }
    if (method != "GET" && method != "POST") return method_not_allowed("GET, POST");
    return Faults(call);
  }
  for (const SimpleRoute& r : kSimple) {
    if (path != r.path) continue;
    call->route = r.label;
    if (method != r.method) return method_not_allowed(r.method);
    return (this->*r.serve)(call);
  }
  call->Fail(Err(404, "not_found", "no route for " + path));
}

void Api::Read(const std::shared_ptr<Call>& call, const std::string& key, uint8_t route_tag) {
  WhenCaughtUp(call, [this, call, key, route_tag] { readers_.Post([this, call, key, route_tag] {
    std::string bytes;
    Status st = ctx_.store->GetState(key, &bytes);
    const bool text = route_tag == crdt::Text::kTag;
    if (st.IsNotFound() && !text) {
      return call->Fail(Err(404, "not_found", "key '" + key + "' not found"));
    }
    if (!st.ok() && !st.IsNotFound()) return call->Fail(Err(500, "storage", st.ToString()));
    crdt::Envelope env;
    if (st.ok()) st = crdt::Envelope::DecodeStored(bytes, &env);
    if (!st.ok() && !st.IsNotFound()) return call->Fail(Err(500, "corrupt_state", st.ToString()));
    if (text && (env.winner() == nullptr || env.winner()->tag == crdt::Text::kTag)) {
      // A text always reads, empty or never written (its version is what
      // an editor starts from); another type goes the common way below.
      json out;
      ApiError err;
      if (!RenderText(key, env.winner(), &out, &err)) return call->Fail(err);
      return call->Send(200, out, {{"X-Session-Token", ctx_.applier->SessionToken()}});
    }
    json out;
    int http = 200;
    std::string context, resolved_by;
    ApiError err;
    std::shared_ptr<const conflict::Settler> settler = Policies();
    if (!RenderRead(key, env, &out, &http, &context, &err, settler.get(), &resolved_by)) {
      return call->Fail(err);
    }
    if (const crdt::TypedState* w = env.winner()) {
      bool kv = route_tag == crdt::Register::kTag;
      bool fits = kv ? (w->tag == crdt::Register::kTag || w->tag == crdt::MvRegister::kTag)
                     : w->tag == route_tag;
      if (!fits) {
        return call->Fail(Err(409, "type_mismatch",
                              "key '" + key + "' holds a " + TypeName(w->tag) + "; read it at /v1/" +
                                  (w->tag == crdt::MvRegister::kTag || w->tag == crdt::Register::kTag
                                       ? std::string("kv")
                                       : TypeName(w->tag)) +
                                  "/"));
      }
    }
    std::vector<std::pair<std::string, std::string>> headers = {
        {"X-Session-Token", ctx_.applier->SessionToken()}};
    if (!context.empty()) headers.emplace_back("X-Causal-Context", context);
    if (!resolved_by.empty()) headers.emplace_back("X-Resolved-By", resolved_by);
    call->Send(http, out, std::move(headers));
  }); });
}

void Api::Conflicts(const std::shared_ptr<Call>& call) {
  const std::string prefix = call->Query("prefix");
  const std::string after = call->Query("after");
  uint64_t limit = 0;
  ApiError err;
  if (!call->UintParam("limit", 1, kMaxConflictsLimit, kDefaultScanLimit, &limit, &err)) {
    return call->Fail(err);
  }
  readers_.Post([this, call, prefix, after, limit] {
    std::shared_ptr<const conflict::Settler> settler = Policies();
    json list = json::array();
    std::string cursor = after;
    bool more = true;
    // Index entries the policies settle are skipped; read on in chunks
    // until `limit` entries are found or the index ends.
    while (more && list.size() < limit) {
      std::vector<storage::Store::KeyValue> chunk;
      Status st = ctx_.store->ScanConflicts(prefix, cursor, kConflictScanChunk, &chunk);
      if (!st.ok()) return call->Fail(Err(500, "storage", st.ToString()));
      more = chunk.size() == kConflictScanChunk;
      for (const auto& kv : chunk) {
        cursor = kv.key;
        if (!Held(kv.key)) continue;
        json entry;
        if (ConflictEntryAt(kv.key, kv.value, settler.get(), &entry, nullptr)) {
          list.push_back(std::move(entry));
          if (list.size() == limit) break;
        }
      }
    }
    json out = {{"conflicts", std::move(list)}};
    if (out["conflicts"].size() == limit) out["next"] = cursor;
    call->Send(200, out);
  });
}

bool Api::ConflictEntryAt(const std::string& key, const std::string& index_entry,
                          const conflict::Settler* settler, json* out,
                          crdt::CausalContext* context) const {
  conflict::ConflictEntry ce;
  if (!conflict::DecodeConflictEntry(index_entry, &ce).ok()) return false;
  std::string bytes;
  crdt::Envelope env;
  if (!ctx_.store->GetState(key, &bytes).ok() || !crdt::Envelope::DecodeStored(bytes, &env).ok()) {
    return false;
  }
  return ReviewEntry(key, env, ce.detected_ms, settler, out, context);
}

void Api::ConflictOf(const std::shared_ptr<Call>& call, const std::string& key) {
  readers_.Post([this, call, key] {
    std::string index_entry;
    Status st = ctx_.store->GetConflict(key, &index_entry);
    json entry;
    crdt::CausalContext context;
    if (!st.ok() || !ConflictEntryAt(key, index_entry, Policies().get(), &entry, &context)) {
      if (!st.ok() && !st.IsNotFound()) return call->Fail(Err(500, "storage", st.ToString()));
      return call->Fail(Err(404, "not_found", "key '" + key + "' has no conflict to review"));
    }
    if (!context.empty()) entry["context"] = EncodeContextHeader(context);
    call->Send(200, entry);
  });
}

void Api::ResolveConflict(const std::shared_ptr<Call>& call, const std::string& key) {
  json body;
  ApiError err;
  if (!call->Body(&body, &err)) return call->Fail(err);
  const bool has_value = body.is_object() && body.contains("value");
  const bool has_pick = body.is_object() && body.contains("pick");
  if (!body.is_object() || !body.contains("context") || !body["context"].is_string() ||
      has_value == has_pick || (has_pick && !body["pick"].is_number_unsigned())) {
    return call->Fail(Err(400, "bad_request",
                          "a resolution is {\"context\": ..., \"value\": V} or {\"context\": "
                          "..., \"pick\": N} (N a sibling's index from GET /v1/conflicts/KEY)"));
  }
  crdt::CausalContext sent;
  if (!DecodeContextHeader(body["context"].get<std::string>(), &sent)) {
    return call->Fail(Err(400, "bad_context", "context is not a valid causal context"));
  }
  readers_.Post([this, call, key, body = std::move(body), sent, has_pick] {
    std::string index_entry;
    Status st = ctx_.store->GetConflict(key, &index_entry);
    json entry;
    crdt::CausalContext held;
    if (!st.ok() || !ConflictEntryAt(key, index_entry, Policies().get(), &entry, &held)) {
      return call->Fail(Err(409, "stale",
                            "key '" + key + "' has no conflict to resolve any more; read it again"));
    }
    if (held.empty()) {
      return call->Fail(Err(409, "type_conflict",
                            "key '" + key + "' holds a type conflict, which a write cannot "
                            "resolve; the losing values are listed for review"));
    }
    if (held != sent) {
      return call->Fail(Err(409, "stale",
                            "the siblings of key '" + key + "' changed since the context was "
                            "read; read GET /v1/conflicts/" + key + " again"));
    }
    Operation op;
    op.key = key;
    op.kind = Operation::Kind::kPut;
    op.type = crdt::MvRegister::kTag;
    op.context = held;
    if (has_pick) {
      const uint64_t pick = body["pick"].get<uint64_t>();
      if (pick >= entry["siblings"].size()) {
        return call->Fail(Err(400, "bad_request",
                              "pick " + std::to_string(pick) + " is not a sibling (there are " +
                                  std::to_string(entry["siblings"].size()) + ")"));
      }
      op.value = ValueToBytes(entry["siblings"][pick]["value"]);
    } else {
      op.value = ValueToBytes(body["value"]);
    }
    Write(call, std::move(op));
  });
}

void Api::Audit(const std::shared_ptr<Call>& call, const std::string& key) {
  readers_.Post([this, call, key] {
    std::vector<storage::Store::KeyValue> stored;
    Status st = ctx_.store->ScanAudit(key, kMaxAuditRecords, &stored);
    if (!st.ok()) return call->Fail(Err(500, "storage", st.ToString()));
    std::shared_ptr<const conflict::Settler> settler = Policies();
    auto region_of = [&](const crdt::ReplicaId& r) {
      if (!settler) return std::string();
      auto it = settler->regions().find(r.node);
      return it == settler->regions().end() ? std::string() : it->second;
    };
    json records = json::array();
    for (const auto& kv : stored) {
      conflict::AuditRecord rec;
      if (!conflict::DecodeAuditRecord(kv.value, &rec).ok()) continue;
      json value;
      if (!BytesToValue(rec.value, &value)) value = nullptr;
      records.push_back({{"value", value},
                         {"region", region_of(rec.writer)},
                         {"replica", rec.writer.ToString()},
                         {"hlc", rec.hlc},
                         {"winner",
                          {{"region", region_of(rec.winner)},
                           {"replica", rec.winner.ToString()},
                           {"hlc", rec.winner_hlc}}},
                         {"recorded_ms", rec.recorded_ms}});
    }
    call->Send(200, json{{"key", key}, {"records", std::move(records)}});
  });
}

bool Api::Writable(ApiError* err) const {
  if (ctx_.transport == nullptr) return true;
  gossip::WriteGate gate = ctx_.transport->Gate();
  if (gate.ok) return true;
  *err = Err(503, gate.code.empty() ? "clock_skew" : gate.code, gate.message);
  return false;
}

bool Api::Held(const std::string& key) const {
  return ctx_.node == nullptr || ctx_.topology->placement.Holds(key, ctx_.node->region);
}

namespace {

// "region 'eu-west'" or "regions 'eu-west', 'us-east'".
std::string RegionList(const std::vector<std::string>& regions) {
  std::string out = regions.size() == 1 ? "region " : "regions ";
  for (size_t i = 0; i < regions.size(); ++i) {
    if (i > 0) out += ", ";
    out += "'" + regions[i] + "'";
  }
  return out;
}

}  // namespace

bool Api::PlacedHere(const std::string& key, bool write, ApiError* err) const {
  if (Held(key)) return true;
  const gossip::PlacementSpec* s = ctx_.topology->placement.Find(key);
  const std::string where = "key '" + key + "' is placed in " + RegionList(s->regions) +
                            " (prefix '" + s->prefix + "')";
  if (write) {
    *err = Err(403, "placement", where + "; write it at a node of " +
                                     (s->regions.size() == 1 ? "that region" : "those regions"));
  } else {
    *err = Err(404, "placement", where + "; region '" + ctx_.node->region + "' does not hold it");
  }
  return false;
}

bool Api::WithinPlacement(const std::string& key, uint64_t w, ApiError* err) const {
  const gossip::PlacementSpec* s = ctx_.topology->placement.Find(key);
  if (s == nullptr || w <= s->regions.size()) return true;
  *err = Err(400, "placement", "w=" + std::to_string(w) + " but key '" + key +
                                   "' is placed in " + RegionList(s->regions) + " only");
  return false;
}

std::shared_ptr<const conflict::Settler> Api::Policies() const {
  return ctx_.policies != nullptr ? ctx_.policies->Get() : nullptr;
}

bool Api::TakePolicyType(Operation* op, ApiError* err) const {
  std::shared_ptr<const conflict::Settler> policies = Policies();
  return ApplyPolicyType(policies ? policies->Match(op->key) : nullptr, op, err);
}

void Api::Write(const std::shared_ptr<Call>& call, Operation op) {
  ApiError err;
  if (!TakePolicyType(&op, &err)) return call->Fail(err);
  WriteWait ww;
  if (!call->WriteWaitOf(*ctx_.topology, &ww, &err)) return call->Fail(err);
  if (!WithinPlacement(op.key, ww.w, &err)) return call->Fail(err);
  if (!Writable(&err)) return call->Fail(err);
  const bool text = op.type == crdt::Text::kTag;
  ctx_.applier->Submit(std::move(op), [this, call, ww, text](WriteResult r) {
    if (!r.ok) return call->Fail(r.error);
    uint64_t seq = r.seq;
    const ScopeSeqs held_seqs{{r.scope, r.seq}};
    std::string token = r.session_token;
    if (!text) {
      json body{{"ok", true}, {"seq", seq}};
      // A register write answers its hlc and writer (what a read shows),
      // so that a client can order its writes by last-writer-wins.
      crdt::Envelope env;
      crdt::Register reg;
      if (r.envelope.size() <= kRegisterReplyBytes &&
          crdt::Envelope::DecodeStored(r.envelope, &env).ok() && env.winner() != nullptr &&
          env.winner()->tag == crdt::Register::kTag &&
          crdt::Register::Decode(env.winner()->state, &reg).ok()) {
        body["hlc"] = reg.hlc();
        body["writer"] = reg.writer().ToString();
      }
      return ReplyWhenHeld(call, held_seqs, ww.w, ww.deadline, token,
                           [call, token, body = std::move(body)] {
                             call->Send(200, body, {{"X-Session-Token", token}});
                           });
    }
    // A text write also answers the text's new version and length, read
    // from the state it left; decoding a document is no work for the
    // acknowledger thread, so a reader does it.
    auto state = std::make_shared<std::string>(std::move(r.envelope));
    readers_.Post([this, call, ww, seq, held_seqs, token, state] {
      auto body = std::make_shared<json>(json{{"ok", true}, {"seq", seq}});
      crdt::Envelope env;
      crdt::Text t;
      if (crdt::Envelope::DecodeStored(*state, &env).ok() && env.winner() != nullptr &&
          env.winner()->tag == crdt::Text::kTag &&
          crdt::Text::DecodeTrusted(env.winner()->state, &t).ok()) {
        (*body)["version"] = EncodeTextVersion(t.version());
        (*body)["length"] = t.Length();
      }
      ReplyWhenHeld(call, held_seqs, ww.w, ww.deadline, token, [call, body, token] {
        call->Send(200, *body, {{"X-Session-Token", token}});
      });
    });
  });
}

void Api::ReplyWhenHeld(const std::shared_ptr<Call>& call, const ScopeSeqs& seqs, uint64_t w,
                        std::chrono::steady_clock::time_point deadline, const std::string& token,
                        std::function<void()> send_ok) {
  gossip::Transport* t = ctx_.transport;
  if (w <= 1 || t == nullptr) return send_ok();
  // Regions holding every scope's writes: the fewest over the scopes.
  auto held = [t, seqs] {
    size_t fewest = std::numeric_limits<size_t>::max();
    for (const auto& [scope, seq] : seqs) fewest = std::min(fewest, t->RegionsHolding(scope, seq));
    return seqs.empty() ? size_t{0} : fewest;
  };
  ctx_.waiters->Add([held, w] { return held() >= w; }, deadline,
                    [call, held, w, token, send_ok = std::move(send_ok)](bool ok) {
                      if (ok) return send_ok();
                      size_t k = held();
                      uint64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now() - call->start)
                                        .count();
                      call->Send(504,
                                 json{{"error", "timeout"},
                                      {"message", "acknowledged by " + std::to_string(k) + " of " +
                                                      std::to_string(w) + " regions within " +
                                                      std::to_string(ms) +
                                                      " ms; the write is kept and keeps "
                                                      "replicating"},
                                      {"acknowledged", k},
                                      {"required", w}},
                                 {{"X-Session-Token", token}});
                    });
}

void Api::WhenCaughtUp(const std::shared_ptr<Call>& call, std::function<void()> read) {
  ApiError err;
  uint64_t timeout_ms = 0;
  if (!call->UintParam("timeout_ms", 1, kMaxTimeoutMs, kDefaultReadTimeoutMs, &timeout_ms, &err)) {
    return call->Fail(err);
  }
  std::string text = call->req.Header("x-session-token");
  if (text.empty()) return read();
  auto token = std::make_shared<storage::AppliedVector>();
  if (!ParseSessionToken(text, token.get())) {
    return call->Fail(Err(400, "bad_request",
                          "X-Session-Token must be a write reply's token "
                          "(node#incarnation:seq[,...]), not '" + text + "'"));
  }
  // Placement scopes this region does not hold never arrive here: the
  // token's entries of those are for other regions' reads.
  for (auto it = token->begin(); it != token->end();) {
    it = ctx_.topology->placement.HoldsScope(it->first.second, ctx_.node->region)
             ? std::next(it)
             : token->erase(it);
  }
  Applier* a = ctx_.applier;
  auto covered = [a, token] {
    uint64_t behind = 0;
    return Covers(a->Applied(), *token, &behind);
  };
  if (covered()) return read();
  ctx_.waiters->Add(covered, call->start + std::chrono::milliseconds(timeout_ms),
                    [call, a, token, timeout_ms, read = std::move(read)](bool ok) {
                      if (ok) return read();
                      uint64_t behind = 0;
                      (void)Covers(a->Applied(), *token, &behind);
                      call->Send(503, json{{"error", "not_caught_up"},
                                           {"message", "this node is " + std::to_string(behind) +
                                                           " sequences behind the session token "
                                                           "after " + std::to_string(timeout_ms) +
                                                           " ms"},
                                           {"behind", behind}});
                    });
}

void Api::Batch(const std::shared_ptr<Call>& call) {
  json body;
  ApiError err;
  WriteWait ww;
  if (!call->WriteWaitOf(*ctx_.topology, &ww, &err)) return call->Fail(err);
  if (!call->Body(&body, &err)) return call->Fail(err);
  if (!Writable(&err)) return call->Fail(err);
  const json* ops = &body;
  if (body.is_object() && body.contains("ops")) ops = &body["ops"];
  if (!ops->is_array()) {
    return call->Fail(Err(400, "bad_request", "a batch is an array of operations or {\"ops\": [...]}"));
  }
  // Each entry is parsed on its own; a malformed one is answered in place
  // and the others still run.
  std::vector<Operation> parsed;
  std::vector<int> slot;  // index into results for each parsed op
  std::vector<json> results(ops->size());
  for (size_t i = 0; i < ops->size(); ++i) {
    const json& o = (*ops)[i];
    Operation op;
    ApiError e;
    bool ok = o.is_object() && o.contains("op") && o["op"].is_string() && o.contains("key") &&
              o["key"].is_string();
    if (!ok) {
      e = Err(400, "bad_request", "each operation is {\"op\": ..., \"key\": ...}");
    } else {
      op.key = o["key"].get<std::string>();
      std::string name = o["op"];
      ok = ValidKey(op.key, &e);
      if (ok && name == "put") {
        op.kind = Operation::Kind::kPut;
        op.kv = true;
        op.type = crdt::Register::kTag;
        if (o.contains("type") && o["type"] == "mvregister") op.type = crdt::MvRegister::kTag;
        if (!o.contains("value")) {
          ok = false;
          e = Err(400, "bad_request", "put needs \"value\"");
        } else {
          op.value = ValueToBytes(o["value"]);
        }
      } else if (ok && name == "del") {
        op.kind = Operation::Kind::kDelete;
        op.type = 0;
      } else if (ok && name == "incr") {
        op.kind = Operation::Kind::kCounterAdd;
        op.type = crdt::Counter::kTag;
        op.amount = 1;
        if (o.contains("by") && !Int64Of(o["by"], &op.amount)) {
          ok = false;
          e = Err(400, "bad_request", "incr \"by\" must be a 64-bit integer");
        }
      } else if (ok && (name == "sadd" || name == "srem")) {
        op.kind = Operation::Kind::kSetUpdate;
        op.type = crdt::Set::kTag;
        ok = ElementsOf(o.value("elements", json::array()), "elements",
                        name == "sadd" ? &op.adds : &op.removes, &e);
        if (ok && op.adds.empty() && op.removes.empty()) {
          ok = false;
          e = Err(400, "bad_request", name + " needs a non-empty \"elements\" array");
        }
      } else if (ok && name == "map") {
        op.kind = Operation::Kind::kMapUpdate;
        op.type = crdt::Map::kTag;
        ok = MapOpsOf(o, &op, &e);
      } else if (ok && name == "text") {
        op.type = crdt::Text::kTag;
        ok = TextOpsOf(o, &op, &e);
      } else if (ok) {
        ok = false;
        e = Err(400, "unknown_operation",
                "unknown operation '" + name + "' (put, del, incr, sadd, srem, map, text)");
      }
    }
    if (ok) ok = PlacedHere(op.key, true, &e) && WithinPlacement(op.key, ww.w, &e);
    if (ok) ok = TakePolicyType(&op, &e);
    if (!ok) {
      results[i] = json{{"status", e.http}, {"error", e.code}, {"message", e.message}};
      continue;
    }
    slot.push_back(static_cast<int>(i));
    parsed.push_back(std::move(op));
  }
  const bool all_parsed = parsed.size() == ops->size();
  auto finish = [this, call, ww, results = std::move(results), slot,
                 all_parsed](std::vector<WriteResult> done) mutable {
    std::string token;
    ScopeSeqs top_seqs;  // per scope, the batch's last seq
    if (all_parsed && !call->msgpack_out &&
        std::all_of(done.begin(), done.end(), [](const WriteResult& r) { return r.ok; })) {
      // The common case, written directly: the same text as the JSON tree
      // below dumps to ({"results":[{"seq":N,"status":200},...]}).
      auto text = std::make_shared<std::string>();
      text->reserve(16 + done.size() * 32);
      text->append("{\"results\":[");
      for (size_t k = 0; k < done.size(); ++k) {
        if (k > 0) text->push_back(',');
        text->append("{\"seq\":");
        text->append(std::to_string(done[k].seq));
        text->append(",\"status\":200}");
        uint64_t& top = top_seqs[done[k].scope];
        top = std::max(top, done[k].seq);
      }
      text->append("]}\n");
      if (!done.empty()) token = done.back().session_token;
      auto send_text = [call, text, token] {
        HttpResponse r;
        r.status = 200;
        r.body = *text;
        r.content_type = "application/json";
        if (!token.empty()) r.headers.emplace_back("X-Session-Token", token);
        call->Finish(std::move(r));
      };
      if (top_seqs.empty()) return send_text();
      return ReplyWhenHeld(call, top_seqs, ww.w, ww.deadline, token, send_text);
    }
    for (size_t k = 0; k < done.size(); ++k) {
      const WriteResult& r = done[k];
      if (r.ok) {
        results[slot[k]] = json{{"status", 200}, {"seq", r.seq}};
        token = r.session_token;
        uint64_t& top = top_seqs[r.scope];
        top = std::max(top, r.seq);
      } else {
        results[slot[k]] =
            json{{"status", r.error.http}, {"error", r.error.code}, {"message", r.error.message}};
      }
    }
    auto reply = std::make_shared<json>(json{{"results", std::move(results)}});
    auto send_ok = [call, reply, token] {
      std::vector<std::pair<std::string, std::string>> headers;
      if (!token.empty()) headers.emplace_back("X-Session-Token", token);
      call->Send(200, *reply, std::move(headers));
    };
    if (top_seqs.empty()) return send_ok();
    ReplyWhenHeld(call, top_seqs, ww.w, ww.deadline, token, send_ok);
  };
  // The reply (one entry per operation) is built on a reader thread: the
  // applier's acknowledger thread only answers writes.
  auto shared_finish = std::make_shared<decltype(finish)>(std::move(finish));
  ctx_.applier->SubmitMany(std::move(parsed),
                           [this, shared_finish](std::vector<WriteResult> done) {
                             auto results = std::make_shared<std::vector<WriteResult>>(std::move(done));
                             readers_.Post([shared_finish, results] {
                               (*shared_finish)(std::move(*results));
                             });
                           });
}

void Api::Scan(const std::shared_ptr<Call>& call) {
  std::string prefix = call->Query("prefix");
  std::string after = call->Query("after");
  size_t limit = kDefaultScanLimit;
  bool has_limit = false;
  std::string l = call->Query("limit", &has_limit);
  if (has_limit) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(l.c_str(), &end, 10);
    if (l.empty() || *end != '\0' || v == 0 || v > kMaxScanLimit) {
      return call->Fail(Err(400, "bad_limit",
                            "limit must be an integer from 1 to " + std::to_string(kMaxScanLimit)));
    }
    limit = static_cast<size_t>(v);
  }
  WhenCaughtUp(call, [this, call, prefix, after, limit] { readers_.Post([this, call, prefix, after, limit] {
    std::vector<storage::Store::KeyState> rows;
    Status st = ctx_.store->Scan(prefix, after, limit, &rows);
    if (!st.ok()) return call->Fail(Err(500, "storage", st.ToString()));
    json items = json::array();
    for (const auto& row : rows) {
      if (!Held(row.key)) continue;  // placed elsewhere: not this region's to show
      crdt::Envelope env;
      if (!crdt::Envelope::DecodeStored(row.envelope, &env).ok()) continue;
      json out;
      int http = 200;
      std::string context;
      ApiError err;
      if (!RenderRead(row.key, env, &out, &http, &context, &err)) continue;  // deleted
      items.push_back(std::move(out));
    }
    json next = rows.size() == limit ? json(rows.back().key) : json(nullptr);
    call->Send(200, json{{"items", items}, {"next", next}});
  }); });
}

void Api::Watch(const std::shared_ptr<Call>& call) {
  auto stream = std::make_shared<EventStream>();
  ctx_.watch->Subscribe(call->Query("prefix"), stream);
  HttpResponse r;
  r.status = 200;
  r.content_type = "text/event-stream";
  r.stream = stream;
  call->Finish(std::move(r));
}

void Api::Backup(const std::shared_ptr<Call>& call) {
  if (ctx_.transport != nullptr && !ctx_.transport->Snapshot().bootstrapped) {
    return call->Fail(Err(503, "bootstrapping",
                          "this incarnation has not completed its first anti-entropy round: "
                          "its states are partial, so it gives no backup yet"));
  }
  storage::SnapshotRef snap;
  Status st = ctx_.store->TakeSnapshot(&snap);
  if (!st.ok()) {
    return call->Fail(Err(503, "unavailable", "cannot take a snapshot: " + st.message()));
  }
  storage::BackupHeader header;
  header.node = ctx_.node->id;
  header.cluster = ctx_.topology->cluster_name;
  header.region = ctx_.node->region;
  header.incarnation = ctx_.applier->replica().incarnation;
  header.snapshot_ms =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  auto stream = std::make_shared<EventStream>(size_t{1} << 20);
  storage::Store* store = ctx_.store;
  const bool started = backups_->Start(stream, [store, snap, header, stream] {
    constexpr size_t kChunk = 256 << 10;
    std::string buf;
    storage::BackupEncoder enc(header, &buf);
    Status s = store->ExportRecords(*snap, [&](std::string_view key, std::string_view value) {
      enc.Add(key, value, &buf);
      if (buf.size() >= kChunk) {
        if (!stream->PushWait(std::move(buf))) return Status::Unavailable("the client left");
        buf.clear();
      }
      return Status::OK();
    });
    if (!s.ok()) {
      stream->Close();  // cut off without the last chunk
      return;
    }
    enc.Finish(&buf);
    if (stream->PushWait(std::move(buf))) stream->End();
  });
  if (!started) {
    return call->Fail(
        Err(503, "busy", std::to_string(kMaxBackups) + " backups are running; try again later"));
  }
  HttpResponse r;
  r.status = 200;
  r.content_type = "application/vnd.meridian.backup";
  r.stream = stream;
  r.chunked = true;
  r.headers = {{"X-Meridian-Node", header.node},
               {"X-Meridian-Cluster", header.cluster},
               {"X-Meridian-Snapshot-Ms", std::to_string(header.snapshot_ms)}};
  call->Finish(std::move(r));
}

void Api::PublishChange(const std::string& key, const std::string& envelope) {
  if (!Held(key)) return;
  if (text_streams_ != nullptr) text_streams_->OnChange(key, envelope);
  if (!ctx_.watch->HasSubscriberFor(key)) return;
  crdt::Envelope env;
  std::string text;
  ApiError err;
  const bool decoded = crdt::Envelope::DecodeStored(envelope, &env).ok();
  json t;
  if (decoded && env.winner() != nullptr && env.winner()->tag == crdt::Text::kTag &&
      RenderText(key, env.winner(), &t, &err)) {
    // A text shows even when empty: its version is what an editor goes on
    // from.
    text = t.dump(-1, ' ', false, json::error_handler_t::replace);
  } else if (!decoded || !RenderReadText(key, env, &text, &err)) {
    text = json{{"key", key}, {"deleted", true}}.dump(-1, ' ', false,
                                                      json::error_handler_t::replace);
  }
  ctx_.watch->Publish(key, text);
}

void Api::Health(const std::shared_ptr<Call>& call) {
  json out{{"status", "ok"}, {"node", ctx_.node->id}, {"pid", getpid()}, {"writable", true}};
  ApiError why;
  if (!Writable(&why)) {
    out["writable"] = false;
    out["reason"] = why.message;
  }
  call->Send(200, out);
}

void Api::NodeStatus(const std::shared_ptr<Call>& call) {
  const Applier& a = *ctx_.applier;
  auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - ctx_.started)
                    .count();
  gossip::TransportSnapshot snap;
  if (ctx_.transport) snap = ctx_.transport->Snapshot();
  json peers = json::array();
  for (const gossip::PeerStatus& p : snap.peers) {
    auto or_null = [](bool has, auto v) { return has ? json(v) : json(nullptr); };
    peers.push_back({{"node", p.node},
                     {"region", p.region},
                     {"state", gossip::PeerStateName(p.state)},
                     {"welcomed", p.welcomed},
                     {"replica", p.replica.node.empty() ? json(nullptr) : json(p.replica.ToString())},
                     {"last_heard_ms_ago", or_null(p.last_heard_ms_ago >= 0, p.last_heard_ms_ago)},
                     {"lag_ms", p.lag_ms},
                     {"unacked_deltas", p.unacked_deltas},
                     {"unacked_bytes", p.unacked_bytes},
                     {"acked", p.acked},
                     {"clock_offset_ms", or_null(p.has_clock_sample, p.clock_offset_ms)},
                     {"rtt_ms", or_null(p.has_clock_sample, p.rtt_ms)},
                     {"log_end", p.log_end},
                     {"behind", p.behind},
                     {"anti_entropy_ready", p.ae_ready},
                     {"pins_log", p.pins_log},
                     {"beyond_log", p.beyond_log},
                     {"retired_through", or_null(p.expired_through > 0, p.expired_through)},
                     {"retired", p.retired},
                     {"policy_hash", p.policy_hash.empty() ? json(nullptr) : json(p.policy_hash)},
                     {"policy_mismatch", p.policy_mismatch}});
  }
  ApiError why;
  bool writable = Writable(&why);
  json clock{{"writable", writable},
             {"reason", writable ? std::string() : why.message},
             {"hlc", crdt::HlcToString(a.CurrentHlc())},
             {"max_clock_offset_ms", ctx_.topology->max_clock_offset_ms},
             {"refused_clock_offset", snap.counters.refused_clock_offset}};
  json gossip_json{{"endpoint", ctx_.transport ? json(ctx_.node->gossip) : json(nullptr)},
                   {"frames_in", snap.frames_in},
                   {"frames_out", snap.frames_out},
                   {"bytes_in", snap.bytes_in},
                   {"bytes_out", snap.bytes_out},
                   {"bad_frames", snap.bad_frames},
                   {"unknown_scope", snap.unknown_scope},
                   {"zap_refused", snap.zap_refused},
                   {"forged_frames", snap.forged_frames},
                   {"refused_other", snap.counters.refused_other},
                   {"deltas_received", snap.counters.deltas_received},
                   {"deltas_applied", snap.counters.deltas_applied},
                   {"deltas_shipped", snap.counters.deltas_shipped},
                   {"resends", snap.counters.resends},
                   {"log_start", snap.log_start},
                   {"log_truncated", snap.counters.log_truncated}};
  json anti_entropy{{"enabled", snap.anti_entropy},
                    {"rounds_started", snap.ae.rounds_started},
                    {"rounds_completed", snap.ae.rounds_completed},
                    {"rounds_in_sync", snap.ae.rounds_in_sync},
                    {"rounds_abandoned", snap.ae.rounds_abandoned},
                    {"rounds_declined", snap.ae.rounds_declined},
                    {"buckets_repaired", snap.ae.buckets_repaired},
                    {"states_sent", snap.ae.states_sent},
                    {"states_received", snap.ae.states_received},
                    {"repairs", a.stats().repairs.load()},
                    {"failed_repairs", a.stats().failed_repairs.load()},
                    {"repairs_below_floor", snap.counters.repairs_below_floor},
                    {"tombstones_collected", a.stats().tombstones_collected.load()},
                    {"failed_collections", a.stats().failed_collections.load()}};
  // This node's side of the retention horizon (gossip/protocol.h).
  json horizon{{"horizon_ms", ctx_.topology->retention_horizon_ms},
               {"absent_ms", snap.horizon.absent_ms},
               {"last_contact_ms", snap.horizon.last_contact_wall_ms},
               {"beyond", snap.horizon.beyond},
               {"rejoining", snap.horizon.rejoining},
               {"retired_incarnations", snap.counters.expirations},
               {"retirements_adopted", snap.counters.expirations_adopted},
               {"refused_retired", snap.counters.refused_expired}};
  // Placement (gossip/placement.h): each placed prefix, its regions and
  // whether this node's region holds it; where it does, the scope's own
  // replication (its log end here, the digest of its keys here, and each
  // peer of the scope's session).
  json placement = json::array();
  const std::map<std::string, storage::Digest> digests = a.ScopeDigests();
  for (const gossip::PlacementSpec& p : ctx_.topology->placement.specs()) {
    json entry{{"prefix", p.prefix}, {"regions", p.regions}, {"held_here", Held(p.prefix)}};
    for (const gossip::ScopeStatus& sc : snap.scopes) {
      if (sc.scope != p.prefix) continue;
      json scope_peers = json::array();
      for (const gossip::PeerStatus& ps : sc.peers) {
        scope_peers.push_back({{"node", ps.node},
                               {"region", ps.region},
                               {"state", gossip::PeerStateName(ps.state)},
                               {"acked", ps.acked},
                               {"unacked_deltas", ps.unacked_deltas},
                               {"behind", ps.behind}});
      }
      entry["log_end"] = sc.log_end;
      entry["bootstrapped"] = sc.bootstrapped;
      entry["peers"] = std::move(scope_peers);
    }
    auto d = digests.find(p.prefix);
    if (entry["held_here"].get<bool>()) {
      entry["digest"] = (d == digests.end() ? storage::Digest() : d->second).Hex();
    }
    placement.push_back(std::move(entry));
  }
  call->Send(200, json{{"node", ctx_.node->id},
                       {"region", ctx_.node->region},
                       {"cluster", ctx_.topology->cluster_name},
                       {"auth", tokens_.open() ? "open" : "tokens"},
                       {"api_tls", ctx_.node->api_tls()},
                       {"replica", a.replica().ToString()},
                       {"incarnation", a.replica().incarnation},
                       {"bootstrapped", snap.bootstrapped},
                       {"sync", ctx_.store->sync()},
                       {"last_seq", a.last_seq()},
                       {"keys", a.key_count()},
                       {"session_token", a.SessionToken()},
                       {"queue_depth", a.queue_depth()},
                       {"group_commits", a.stats().groups.load()},
                       {"writes", a.stats().writes.load()},
                       {"watchers", ctx_.watch->subscribers()},
                       {"text_streams",
                        {{"open", text_streams_ ? text_streams_->sessions() : 0},
                         {"opened", text_streams_ ? text_streams_->opened() : 0},
                         {"dropped_slow", text_streams_ ? text_streams_->dropped() : 0}}},
                       {"uptime_ms", uptime},
                       {"type_conflicts", a.type_conflicts()},
                       {"conflicts", ConflictStatus(snap)},
                       {"state_digest", a.StateDigest().Hex()},
                       {"gossip_security", ctx_.topology->curve() ? "curve" : "plaintext"},
                       {"peers", peers},
                       {"clock", clock},
                       {"gossip", gossip_json},
                       {"anti_entropy", anti_entropy},
                       {"retention", horizon},
                       {"placement", placement}});
}

size_t Api::ReviewQueueDepth(bool* capped) const {
  std::shared_ptr<const conflict::Settler> settler = Policies();
  size_t depth = 0, seen = 0;
  std::string cursor;
  *capped = false;
  for (;;) {
    std::vector<storage::Store::KeyValue> chunk;
    if (!ctx_.store->ScanConflicts("", cursor, kConflictScanChunk, &chunk).ok()) break;
    for (const auto& kv : chunk) {
      json entry;
      if (ConflictEntryAt(kv.key, kv.value, settler.get(), &entry, nullptr)) ++depth;
      cursor = kv.key;
      if (++seen == kMaxQueueDepthCounted) {
        *capped = true;
        return depth;
      }
    }
    if (chunk.size() < kConflictScanChunk) break;
  }
  return depth;
}

json Api::ConflictStatus(const gossip::TransportSnapshot& snap) const {
  const Applier& a = *ctx_.applier;
  std::shared_ptr<const conflict::Settler> settler = Policies();
  json resolvers = json::object();
  if (settler) {
    for (const auto& [name, c] : settler->Counts()) {
      resolvers[name] = {{"decided", c.decided}, {"undecided", c.undecided}, {"errors", c.errors}};
    }
  }
  bool capped = false;
  const size_t depth = ReviewQueueDepth(&capped);
  return {{"policies", settler ? settler->policies().policies().size() : 0},
          {"policy_hash", settler ? settler->hash() : ctx_.topology->policies.Hash()},
          {"policy_mismatches", snap.policy_mismatches},
          {"review_queue", depth},
          {"review_queue_capped", capped},
          {"opened", a.conflicts_opened()},
          {"closed", a.conflicts_closed()},
          {"audit_records", a.audit_records()},
          {"resolvers", resolvers}};
}

void Api::MetricsText(const std::shared_ptr<Call>& call) {
  std::string out;
  ctx_.metrics->Render(&out);
  const Applier& a = *ctx_.applier;
  auto family = [&](const char* name, const char* type, const char* help, uint64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           name + " " + std::to_string(v) + "\n";
  };
  family("meridian_writes_total", "counter", "Writes committed.", a.stats().writes);
  family("meridian_group_commits_total", "counter", "Group commits (one WriteBatch each).",
         a.stats().groups);
  family("meridian_group_commit_failures_total", "counter", "Group commits that failed.",
         a.stats().failed_groups);
  family("meridian_sync_failures_total", "counter",
         "Syncs of LevelDB's log that failed (their writes were refused).", a.stats().failed_syncs);
  family("meridian_group_size_last", "gauge", "Requests in the last group commit.",
         a.stats().last_group_size);
  family("meridian_group_size_max", "gauge", "Most requests in one group commit.",
         a.stats().max_group_size);
  family("meridian_fsyncs_total", "counter",
         "Syncs of LevelDB's log (writes with fsync, and syncs after deferred writes).",
         ctx_.store->syncs());
  family("meridian_applier_queue_depth", "gauge", "Writes waiting for the applier.",
         a.queue_depth());
  family("meridian_keys", "gauge", "Keys with a stored state.", a.key_count());
  family("meridian_state_bytes", "gauge", "Approximate bytes of stored states.",
         ctx_.store->ApproximateStateBytes());
  family("meridian_watchers", "gauge", "Open watch streams.", ctx_.watch->subscribers());
  family("meridian_text_streams", "gauge", "Open live text streams (WebSockets).",
         text_streams_ ? text_streams_->sessions() : 0);
  family("meridian_text_stream_drops_total", "counter",
         "Live text streams dropped because their client fell too far behind.",
         text_streams_ ? text_streams_->dropped() : 0);
  family("meridian_last_seq", "gauge", "This node's last delta-log sequence.", a.last_seq());
  gossip::TransportSnapshot snap;
  if (ctx_.transport) snap = ctx_.transport->Snapshot();
  ApiError why;
  family("meridian_clock_writable", "gauge", "1 while the clock-skew gate takes writes.",
         Writable(&why) ? 1 : 0);
  family("meridian_clock_refused_total", "counter",
         "Gossip messages refused for an HLC too far ahead.", snap.counters.refused_clock_offset);
  family("meridian_gossip_bad_frames_total", "counter", "Gossip frames that did not decode.",
         snap.bad_frames);
  family("meridian_gossip_zap_refused_total", "counter",
         "Gossip connections refused by CURVE authentication (an unlisted key).", snap.zap_refused);
  family("meridian_gossip_forged_frames_total", "counter",
         "Gossip frames dropped for naming a node other than the one whose key sent them.",
         snap.forged_frames);
  family("meridian_deltas_received_total", "counter", "Remote deltas received (with duplicates).",
         snap.counters.deltas_received);
  family("meridian_deltas_applied_total", "counter", "Remote deltas applied durably.",
         snap.counters.deltas_applied);
  family("meridian_gossip_resends_total", "counter", "Times a peer's cursor fell back to resend.",
         snap.counters.resends);
  family("meridian_tombstones_collected_total", "counter",
         "Register tombstones dropped once causally stable.", a.stats().tombstones_collected);
  family("meridian_incarnations_retired_total", "counter",
         "Peer incarnations retired for an absence beyond the retention horizon.",
         snap.counters.expirations);
  family("meridian_beyond_horizon", "gauge",
         "1 while this node has had no contact with a peer for longer than the retention horizon.",
         snap.horizon.beyond ? 1 : 0);
  {
    json c = ConflictStatus(snap);
    family("meridian_policy_mismatches", "gauge",
           "Peers whose conflict-policy hash differs from this node's.", snap.policy_mismatches);
    family("meridian_review_queue_depth", "gauge",
           "Conflicts waiting for a person (counted over at most 10,000 conflicted keys).",
           c["review_queue"].get<uint64_t>());
    family("meridian_conflicts_opened_total", "counter",
           "Keys this node found holding concurrent values.", a.conflicts_opened());
    family("meridian_conflicts_closed_total", "counter",
           "Conflicted keys whose concurrent values a write superseded.", a.conflicts_closed());
    family("meridian_audit_records_total", "counter",
           "Concurrent writes recorded as lost under last-writer-wins (audit = true).",
           a.audit_records());
    out += "# HELP meridian_resolver_calls_total Resolver calls by resolver and outcome.\n"
           "# TYPE meridian_resolver_calls_total counter\n";
    for (const auto& [name, counts] : c["resolvers"].items()) {
      for (const char* outcome : {"decided", "undecided", "errors"}) {
        out += "meridian_resolver_calls_total{resolver=\"" + MetricLabel(name) + "\",outcome=\"" +
               outcome + "\"} " + std::to_string(counts[outcome].get<uint64_t>()) + "\n";
      }
    }
  }
  family("meridian_log_truncated_total", "counter",
         "Own delta log entries collected (every peer held them, or is past retention).",
         snap.counters.log_truncated);
  out +=
      "# HELP meridian_gossip_frames_total Gossip frames sent and received.\n"
      "# TYPE meridian_gossip_frames_total counter\n"
      "meridian_gossip_frames_total{dir=\"in\"} " + std::to_string(snap.frames_in) + "\n"
      "meridian_gossip_frames_total{dir=\"out\"} " + std::to_string(snap.frames_out) + "\n"
      "# HELP meridian_gossip_bytes_total Gossip bytes sent and received.\n"
      "# TYPE meridian_gossip_bytes_total counter\n"
      "meridian_gossip_bytes_total{dir=\"in\"} " + std::to_string(snap.bytes_in) + "\n"
      "meridian_gossip_bytes_total{dir=\"out\"} " + std::to_string(snap.bytes_out) + "\n";
  family("meridian_ae_rounds_completed_total", "counter", "Anti-entropy rounds completed.",
         snap.ae.rounds_completed);
  family("meridian_ae_rounds_abandoned_total", "counter", "Anti-entropy rounds given up.",
         snap.ae.rounds_abandoned);
  family("meridian_ae_rounds_declined_total", "counter",
         "Anti-entropy rounds peers began that this node declined (not bootstrapped, or below a "
         "peer's collection floor).",
         snap.ae.rounds_declined);
  family("meridian_ae_buckets_repaired_total", "counter",
         "Differing buckets found by anti-entropy rounds.", snap.ae.buckets_repaired);
  family("meridian_ae_states_sent_total", "counter", "States sent by anti-entropy.",
         snap.ae.states_sent);
  family("meridian_ae_states_received_total", "counter", "States received by anti-entropy.",
         snap.ae.states_received);
  struct PeerGauge {
    const char* name;
    const char* help;
    std::function<std::string(const gossip::PeerStatus&)> value;
  };
  const PeerGauge gauges[] = {
      {"meridian_peer_up", "1 up, 0.5 suspect, 0 down or not heard yet.",
       [](const gossip::PeerStatus& p) {
         return std::string(p.state == gossip::PeerState::kUp        ? "1"
                            : p.state == gossip::PeerState::kSuspect ? "0.5"
                                                                     : "0");
       }},
      {"meridian_peer_lag_ms", "Age of the oldest delta the peer has not acknowledged.",
       [](const gossip::PeerStatus& p) { return std::to_string(p.lag_ms); }},
      {"meridian_peer_unacked_deltas", "This node's deltas the peer has not acknowledged.",
       [](const gossip::PeerStatus& p) { return std::to_string(p.unacked_deltas); }},
      {"meridian_peer_unacked_bytes", "Bytes of those deltas.",
       [](const gossip::PeerStatus& p) { return std::to_string(p.unacked_bytes); }},
      {"meridian_peer_clock_offset_ms", "The peer's clock minus this node's (0 until sampled).",
       [](const gossip::PeerStatus& p) { return std::to_string(p.clock_offset_ms); }},
  };
  for (const PeerGauge& g : gauges) {
    out += std::string("# HELP ") + g.name + " " + g.help + "\n# TYPE " + g.name + " gauge\n";
    for (const gossip::PeerStatus& p : snap.peers) {
      out += std::string(g.name) + "{peer=\"" + p.node + "\",region=\"" + p.region + "\"} " +
             g.value(p) + "\n";
    }
  }
  call->SendText(200, std::move(out), "text/plain; version=0.0.4");
}

void Api::Faults(const std::shared_ptr<Call>& call) {
  gossip::Faults faults;
  if (ctx_.transport) faults = ctx_.transport->faults();
  if (call->req.method == "POST") {
    json body;
    ApiError err;
    if (!call->Body(&body, &err)) return call->Fail(err);
    auto bad = [&](const std::string& why) { call->Fail(Err(400, "bad_request", why)); };
    if (!body.is_object()) return bad("faults are {\"drop\": [node ids], \"delay_ms\": {node id: ms}}");
    auto peer = [&](const std::string& id) {
      const NodeConfig* n = ctx_.topology->FindNode(id);
      return n != nullptr && n->id != ctx_.node->id;
    };
    for (const auto& [field, value] : body.items()) {
      if (field != "drop" && field != "delay_ms") {
        return bad("unknown field '" + field + "' (drop, delay_ms)");
      }
    }
    gossip::Faults next = faults;
    if (body.contains("drop")) {
      const json& drop = body["drop"];
      if (!drop.is_array()) return bad("'drop' must be an array of node ids");
      next.drop.clear();
      for (const json& id : drop) {
        if (!id.is_string()) return bad("'drop' must be an array of node ids");
        if (!peer(id)) return bad("'" + id.get<std::string>() + "' is not a peer of this node");
        next.drop.insert(id.get<std::string>());
      }
    }
    if (body.contains("delay_ms")) {
      const json& delay = body["delay_ms"];
      if (!delay.is_object()) return bad("'delay_ms' must be an object of node id to milliseconds");
      next.delay_ms.clear();
      for (const auto& [id, ms] : delay.items()) {
        if (!peer(id)) return bad("'" + id + "' is not a peer of this node");
        int64_t v = 0;
        if (!Int64Of(ms, &v) || v < 0 || static_cast<uint64_t>(v) > kMaxFaultDelayMs) {
          return bad("delay_ms of '" + id + "' must be an integer from 0 to " +
                     std::to_string(kMaxFaultDelayMs));
        }
        if (v > 0) next.delay_ms[id] = static_cast<uint64_t>(v);
      }
    }
    if (ctx_.transport) ctx_.transport->SetFaults(next);
    faults = std::move(next);
  }
  json delay = json::object();
  for (const auto& [id, ms] : faults.delay_ms) delay[id] = ms;
  call->Send(200, json{{"drop", faults.drop}, {"delay_ms", delay}});
}

}  // namespace meridian::node
