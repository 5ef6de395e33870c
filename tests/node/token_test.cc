// API tokens (README "Security") on a real meridiand with a token file
// holding one token per role: every route class answered with no token,
// an unknown token, a role too weak and a role enough; denied writes leave
// nothing behind; ?access_token= on the live text WebSocket only; a node
// that refuses a token file open to others or a bad role; meridianctl with
// --token and $MERIDIAN_TOKEN.
#define BOOST_TEST_MODULE token
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "node/http_client.h"
#include "tests/node/node_process.h"

using meridian::node::ClientResponse;
using meridian::node::HttpClient;
using meridian::testing::CtlResult;
using meridian::testing::NodeOptions;
using meridian::testing::NodeProcess;
using meridian::testing::RawExchange;
using meridian::testing::RawResult;
using meridian::testing::RunProgram;
using nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;

namespace {

const std::string kRead = "read-0123456789abcdef";
const std::string kWrite = "write-0123456789abcdef";
const std::string kAdmin = "admin-0123456789abcdef";
const std::string kUnknown = "nobody-0123456789abcdef";

const std::string kTokenFile =
    "[[token]]\nname = \"dashboard\"\ntoken = \"" + kRead + "\"\nrole = \"read\"\n" +
    "[[token]]\nname = \"app\"\ntoken = \"" + kWrite + "\"\nrole = \"write\"\n" +
    "[[token]]\nname = \"ops\"\ntoken = \"" + kAdmin + "\"\nrole = \"admin\"\n";

NodeOptions TokenOptions(const std::string& tokens = kTokenFile, mode_t mode = 0600) {
  NodeOptions o;
  o.cluster_lines = {"token_file = \"tokens.toml\""};
  o.files = {{"tokens.toml", tokens, mode}};
  o.args = {"--enable-fault-injection"};
  return o;
}

Headers Bearer(const std::string& token) {
  if (token.empty()) return {};
  return {{"Authorization", "Bearer " + token}};
}

// One route of the API: how to call it, the least role it needs ("" for
// none) and what it answers with that role.
struct Route {
  std::string method, target, body;
  std::string needs;  // "", "read", "write", "admin"
  int ok_status;
};

struct TokenFixture {
  TokenFixture() : node(TokenOptions()) {
    BOOST_REQUIRE_MESSAGE(node.Start(), "meridiand did not start");
    client = node.Client();
  }

  ClientResponse Call(const std::string& method, const std::string& target, const std::string& body,
                      Headers headers) {
    if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
    ClientResponse res;
    auto st = client->Request(method, target, body, headers, &res);
    BOOST_REQUIRE_MESSAGE(st.ok(), method << " " << target << ": " << st.ToString());
    return res;
  }
  ClientResponse As(const std::string& token, const std::string& method, const std::string& target,
                    const std::string& body = "") {
    return Call(method, target, body, Bearer(token));
  }

  // With the write token, one key of each type: kv, counter (`add`), set
  // (`element`), map and text, named `<prefix>kv`, `c`, `s`, `m`, `t`.
  void WriteOneOfEach(const std::string& prefix, int add, const std::string& element) {
    BOOST_REQUIRE(As(kWrite, "PUT", "/v1/kv" + prefix + "kv", "1").status == 200);
    BOOST_REQUIRE(As(kWrite, "POST", "/v1/counter" + prefix + "c",
                     json{{"add", add}}.dump()).status == 200);
    BOOST_REQUIRE(As(kWrite, "POST", "/v1/set" + prefix + "s",
                     json{{"add", {element}}}.dump()).status == 200);
    BOOST_REQUIRE(As(kWrite, "POST", "/v1/map" + prefix + "m",
                     R"({"update": {"f": {"type": "counter", "add": 1}}})").status == 200);
    BOOST_REQUIRE(As(kWrite, "POST", "/v1/text" + prefix + "t",
                     R"({"ops": [{"insert": {"pos": 0, "text": "hi"}}]})").status == 200);
  }

  // The error code of a JSON error reply ("" when there is none).
  static std::string ErrorOf(const ClientResponse& r) {
    json j = json::parse(r.body, nullptr, false);
    return j.is_object() && j.contains("error") && j["error"].is_string()
               ? j["error"].get<std::string>()
               : "";
  }

  void Expect401(const ClientResponse& r, const std::string& what) {
    BOOST_TEST_INFO(what << ": " << r.status << " " << r.body);
    BOOST_TEST(r.status == 401);
    BOOST_TEST(ErrorOf(r) == "unauthorized");
    BOOST_TEST(r.Header("www-authenticate") == "Bearer");
  }
  void Expect403(const ClientResponse& r, const std::string& what) {
    BOOST_TEST_INFO(what << ": " << r.status << " " << r.body);
    BOOST_TEST(r.status == 403);
    BOOST_TEST(ErrorOf(r) == "forbidden");
  }

  NodeProcess node;
  std::unique_ptr<HttpClient> client;
};

const std::vector<std::string> kRoles = {"read", "write", "admin"};
const std::string& TokenOf(const std::string& role) {
  return role == "read" ? kRead : role == "write" ? kWrite : kAdmin;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(tokens, TokenFixture)

BOOST_AUTO_TEST_CASE(status_says_tokens_and_the_log_names_them) {
  ClientResponse r = As(kRead, "GET", "/v1/status");
  BOOST_REQUIRE(r.status == 200);
  BOOST_TEST(json::parse(r.body)["auth"] == "tokens");
  const std::string log = node.Stderr();
  BOOST_TEST(log.find("API tokens from tokens.toml: dashboard (read), app (write), ops (admin)") !=
             std::string::npos);
  BOOST_TEST(log.find("the API is open") == std::string::npos);
  // The secrets never reach the log.
  BOOST_TEST(log.find("0123456789abcdef") == std::string::npos);
}

// Reads and the node's own routes: no token and an unknown token are 401
// (health excepted), every role is enough.
BOOST_AUTO_TEST_CASE(every_read_route) {
  // Something to read behind each typed route.
  WriteOneOfEach("/r/", 2, "x");
  const std::vector<Route> routes = {
      {"GET", "/v1/health", "", "", 200},
      {"GET", "/v1/status", "", "read", 200},
      {"GET", "/metrics", "", "read", 200},
      {"GET", "/v1/kv/r/kv", "", "read", 200},
      {"GET", "/v1/counter/r/c", "", "read", 200},
      {"GET", "/v1/set/r/s", "", "read", 200},
      {"GET", "/v1/map/r/m", "", "read", 200},
      {"GET", "/v1/text/r/t", "", "read", 200},
      {"GET", "/v1/kv/r/missing", "", "read", 404},
      {"GET", "/v1/scan?prefix=r/", "", "read", 200},
      {"GET", "/v1/conflicts", "", "read", 200},
      {"GET", "/v1/conflicts/r/kv", "", "read", 404},
      {"GET", "/v1/audit/r/kv", "", "read", 200},
      // A path no route serves: 401 before 404.
      {"GET", "/v1/nothing", "", "read", 404},
      // A method a route does not serve: 401 before 405.
      {"POST", "/v1/status", "", "read", 405},
  };
  for (const Route& r : routes) {
    const std::string what = r.method + " " + r.target;
    ClientResponse none = Call(r.method, r.target, r.body, {});
    if (r.needs.empty()) {
      BOOST_TEST(none.status == r.ok_status, what << " without a token: " << none.status);
    } else {
      Expect401(none, what + " without a token");
      Expect401(As(kUnknown, r.method, r.target, r.body), what + " with an unknown token");
    }
    for (const std::string& role : kRoles) {
      ClientResponse res = As(TokenOf(role), r.method, r.target, r.body);
      BOOST_TEST(res.status == r.ok_status,
                 what << " as " << role << ": " << res.status << " " << res.body);
    }
  }
  // The read answers what it answers on an open node.
  json kv = json::parse(As(kRead, "GET", "/v1/kv/r/kv").body);
  BOOST_TEST(kv["value"] == 1);
  BOOST_TEST(json::parse(As(kRead, "GET", "/v1/counter/r/c").body)["value"] == 2);
  BOOST_TEST(As(kRead, "GET", "/metrics").body.find("meridian_") != std::string::npos);
}

// Writes: 401 without or with an unknown token, 403 with read (and nothing
// is written), the normal answer with write and admin.
BOOST_AUTO_TEST_CASE(every_write_route) {
  WriteOneOfEach("/w/del-", 1, "a");
  struct WriteRoute {
    Route route;
    std::string read_back;  // a GET that shows whether the write happened
  };
  const std::vector<WriteRoute> routes = {
      {{"PUT", "/v1/kv/w/kv", "\"v\"", "write", 200}, "/v1/kv/w/kv"},
      {{"DELETE", "/v1/kv/w/del-kv", "", "write", 200}, "/v1/kv/w/del-kv"},
      {{"POST", "/v1/counter/w/c", R"({"add": 5})", "write", 200}, "/v1/counter/w/c"},
      {{"DELETE", "/v1/counter/w/del-c", "", "write", 200}, "/v1/counter/w/del-c"},
      {{"POST", "/v1/set/w/s", R"({"add": ["a"]})", "write", 200}, "/v1/set/w/s"},
      {{"DELETE", "/v1/set/w/del-s", "", "write", 200}, "/v1/set/w/del-s"},
      {{"DELETE", "/v1/map/w/del-m", "", "write", 200}, "/v1/map/w/del-m"},
      {{"DELETE", "/v1/text/w/del-t", "", "write", 200}, "/v1/text/w/del-t"},
      {{"POST", "/v1/map/w/m", R"({"update": {"o": {"type": "register", "set": "ada"}}})", "write",
        200},
       "/v1/map/w/m"},
      {{"POST", "/v1/text/w/t", R"({"ops": [{"insert": {"pos": 0, "text": "x"}}]})", "write", 200},
       "/v1/text/w/t"},
      {{"POST", "/v1/batch", R"([{"op": "put", "key": "w/batch", "value": 1}])", "write", 200},
       "/v1/kv/w/batch"},
  };
  // What a read shows of a key: its status and value.
  auto state = [&](const std::string& target) {
    ClientResponse r = As(kRead, "GET", target);
    json j = json::parse(r.body, nullptr, false);
    return std::to_string(r.status) + " " +
           (j.is_object() && j.contains("value") ? j["value"].dump() : std::string("-"));
  };
  for (const WriteRoute& w : routes) {
    const Route& r = w.route;
    const std::string what = r.method + " " + r.target;
    const std::string before = state(w.read_back);
    Expect401(Call(r.method, r.target, r.body, {}), what + " without a token");
    Expect401(As(kUnknown, r.method, r.target, r.body), what + " with an unknown token");
    Expect401(Call(r.method, r.target, r.body, {{"Authorization", "Basic " + kWrite}}),
              what + " with another scheme");
    Expect403(As(kRead, r.method, r.target, r.body), what + " as read");
    BOOST_TEST(state(w.read_back) == before, what << ": a denied write changed " << w.read_back);
    ClientResponse ok = As(kWrite, r.method, r.target, r.body);
    BOOST_TEST(ok.status == r.ok_status, what << " as write: " << ok.status << " " << ok.body);
    BOOST_TEST(state(w.read_back) != before, what << " as write did not change " << w.read_back);
  }
  // admin includes write.
  BOOST_TEST(As(kAdmin, "POST", "/v1/counter/w/c", R"({"add": 1})").status == 200);
  BOOST_TEST(json::parse(As(kRead, "GET", "/v1/counter/w/c").body)["value"] == 6);
  // A 403 names the token and what the route needs, never the secret.
  ClientResponse r = As(kRead, "PUT", "/v1/kv/w/kv", "1");
  BOOST_TEST(json::parse(r.body)["message"] ==
             "token 'dashboard' has the role read; PUT /v1/kv/w/kv needs write");
}

// POST /v1/conflicts/{key} (resolve) is a write; GET of it a read.
BOOST_AUTO_TEST_CASE(conflicts_resolve_needs_write) {
  const std::string body = R"({"pick": 0, "context": ""})";
  Expect401(Call("POST", "/v1/conflicts/k", body, {}), "resolve without a token");
  Expect401(As(kUnknown, "POST", "/v1/conflicts/k", body), "resolve with an unknown token");
  Expect403(As(kRead, "POST", "/v1/conflicts/k", body), "resolve as read");
  for (const std::string& token : {kWrite, kAdmin}) {
    ClientResponse r = As(token, "POST", "/v1/conflicts/k", body);
    // The route's own answer: this key has nothing to resolve.
    BOOST_TEST(r.status != 401);
    BOOST_TEST(r.status != 403);
    BOOST_TEST(ErrorOf(r) != "unauthorized");
    BOOST_TEST(ErrorOf(r) != "forbidden");
  }
}

BOOST_AUTO_TEST_CASE(admin_routes_need_admin) {
  const std::string body = R"({"drop": [], "delay_ms": {}})";
  for (const std::string method : {"GET", "POST"}) {
    const std::string what = method + " /v1/admin/faults";
    const std::string b = method == "POST" ? body : "";
    Expect401(Call(method, "/v1/admin/faults", b, {}), what + " without a token");
    Expect401(As(kUnknown, method, "/v1/admin/faults", b), what + " with an unknown token");
    Expect403(As(kRead, method, "/v1/admin/faults", b), what + " as read");
    Expect403(As(kWrite, method, "/v1/admin/faults", b), what + " as write");
    ClientResponse ok = As(kAdmin, method, "/v1/admin/faults", b);
    BOOST_TEST(ok.status == 200, what << " as admin: " << ok.status << " " << ok.body);
  }
  // The backup is an admin route too.
  Expect401(Call("GET", "/v1/admin/backup", "", {}), "GET /v1/admin/backup without a token");
  Expect403(As(kRead, "GET", "/v1/admin/backup"), "GET /v1/admin/backup as read");
  Expect403(As(kWrite, "GET", "/v1/admin/backup"), "GET /v1/admin/backup as write");
  ClientResponse backup = As(kAdmin, "GET", "/v1/admin/backup");
  BOOST_TEST(backup.status == 200, "GET /v1/admin/backup as admin: " << backup.status);
  BOOST_TEST(backup.body.rfind("MRDNBKUP", 0) == 0);
}

BOOST_AUTO_TEST_CASE(watch_needs_read) {
  auto watch = [&](const std::string& auth) {
    std::string req = "GET /v1/watch?prefix=x/ HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth + "\r\n";
    return RawExchange(node.port(), req, std::chrono::milliseconds(700));
  };
  BOOST_TEST(watch("").status == 401);
  BOOST_TEST(watch("Authorization: Bearer " + kUnknown + "\r\n").status == 401);
  for (const std::string& token : {kRead, kWrite, kAdmin}) {
    RawResult r = watch("Authorization: Bearer " + token + "\r\n");
    BOOST_TEST(r.status == 200);
    BOOST_TEST(r.response.find("text/event-stream") != std::string::npos);
  }
  // ?access_token= is for the WebSocket only.
  RawResult q = RawExchange(
      node.port(),
      "GET /v1/watch?prefix=x/&access_token=" + kRead + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      std::chrono::milliseconds(700));
  BOOST_TEST(q.status == 401);
  BOOST_TEST(q.Body().find("access_token= is accepted only on") != std::string::npos);
}

// The live text WebSocket needs write, by header or by ?access_token=.
BOOST_AUTO_TEST_CASE(text_websocket_needs_write) {
  auto open = [&](const std::string& query, const std::string& auth) {
    std::string req = "GET /v1/stream/text/doc" + query +
                      " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n" +
                      auth + "\r\n";
    return RawExchange(node.port(), req, std::chrono::milliseconds(700));
  };
  auto header = [](const std::string& t) { return "Authorization: Bearer " + t + "\r\n"; };
  BOOST_TEST(open("", "").status == 401);
  BOOST_TEST(open("", header(kUnknown)).status == 401);
  BOOST_TEST(open("", header(kRead)).status == 403);
  BOOST_TEST(open("", header(kWrite)).status == 101);
  BOOST_TEST(open("", header(kAdmin)).status == 101);
  BOOST_TEST(open("?access_token=" + kUnknown, "").status == 401);
  BOOST_TEST(open("?access_token=" + kRead, "").status == 403);
  BOOST_TEST(open("?access_token=" + kWrite, "").status == 101);
  BOOST_TEST(open("?access_token=" + kAdmin, "").status == 101);
  RawResult denied = open("?access_token=" + kRead, "");
  BOOST_TEST(denied.Body().find("\"forbidden\"") != std::string::npos);
  // ?access_token= on any other route is refused, even a good one.
  Expect401(Call("GET", "/v1/text/doc?access_token=" + kWrite, "", {}),
            "GET /v1/text with ?access_token=");
  Expect401(Call("POST", "/v1/text/doc?access_token=" + kWrite,
                 R"({"ops": [{"insert": {"pos": 0, "text": "x"}}]})", {}),
            "POST /v1/text with ?access_token=");
  // Nothing was typed through any of them.
  BOOST_TEST(json::parse(As(kRead, "GET", "/v1/text/doc").body)["value"] == "");
}

BOOST_AUTO_TEST_CASE(demo_files_stay_open) {
  ClientResponse r = Call("GET", "/demo/", "", {});
  BOOST_TEST(r.status != 401);
  BOOST_TEST(r.status != 403);
}

BOOST_AUTO_TEST_CASE(meridianctl_sends_the_token) {
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--url", node.url()});
    return RunProgram(MERIDIAN_MERIDIANCTL, node.dir(), args, std::chrono::seconds(20));
  };
  ::unsetenv("MERIDIAN_TOKEN");
  CtlResult denied = ctl({"put", "c/k", "1"});
  BOOST_TEST(denied.exit_code == 1, denied.Describe());
  BOOST_TEST(denied.err.find("HTTP 401 unauthorized") != std::string::npos, denied.Describe());
  CtlResult weak = ctl({"--token", kRead, "put", "c/k", "1"});
  BOOST_TEST(weak.exit_code == 1, weak.Describe());
  BOOST_TEST(weak.err.find("HTTP 403 forbidden") != std::string::npos, weak.Describe());
  CtlResult put = ctl({"put", "c/k", "1", "--token=" + kWrite});
  BOOST_TEST(put.exit_code == 0, put.Describe());
  CtlResult get = ctl({"--token", kRead, "--json", "get", "c/k"});
  BOOST_TEST(get.exit_code == 0, get.Describe());
  BOOST_TEST(get.out.find("\"value\":1") != std::string::npos, get.Describe());
  // $MERIDIAN_TOKEN when there is no --token; --token wins over it.
  ::setenv("MERIDIAN_TOKEN", kWrite.c_str(), 1);
  CtlResult env = ctl({"incr", "c/n", "3"});
  BOOST_TEST(env.exit_code == 0, env.Describe());
  CtlResult status = ctl({"--json", "status"});
  BOOST_TEST(status.exit_code == 0, status.Describe());
  BOOST_TEST(status.out.find("\"auth\":\"tokens\"") != std::string::npos, status.Describe());
  CtlResult over = ctl({"--token", kRead, "incr", "c/n", "3"});
  BOOST_TEST(over.exit_code == 1, over.Describe());
  ::setenv("MERIDIAN_TOKEN", kUnknown.c_str(), 1);
  CtlResult unknown = ctl({"get", "c/k"});
  BOOST_TEST(unknown.exit_code == 1, unknown.Describe());
  BOOST_TEST(unknown.err.find("unknown token") != std::string::npos, unknown.Describe());
  ::unsetenv("MERIDIAN_TOKEN");
  CtlResult empty = ctl({"--token", "", "get", "c/k"});
  BOOST_TEST(empty.exit_code == 2, empty.Describe());
  BOOST_TEST(json::parse(As(kRead, "GET", "/v1/counter/c/n").body)["value"] == 3);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(start_up)

BOOST_AUTO_TEST_CASE(without_a_token_file_the_api_is_open) {
  NodeProcess node;
  BOOST_REQUIRE(node.Start());
  auto client = node.Client();
  ClientResponse r;
  BOOST_REQUIRE(
      client->Request("PUT", "/v1/kv/k", "1", {{"Content-Type", "application/json"}}, &r).ok());
  BOOST_TEST(r.status == 200);
  BOOST_REQUIRE(client->Request("GET", "/v1/status", "", {}, &r).ok());
  BOOST_TEST(json::parse(r.body)["auth"] == "open");
  // A token sent to an open node is not looked at.
  BOOST_REQUIRE(client->Request("GET", "/v1/kv/k", "", Bearer(kUnknown), &r).ok());
  BOOST_TEST(r.status == 200);
  BOOST_TEST(node.Stderr().find("no token_file: the API is open (development)") !=
             std::string::npos);
}

// A node that cannot start: false from Start, and what it said.
std::string FailedStart(NodeOptions o) {
  o.start_timeout = std::chrono::milliseconds(5000);
  NodeProcess node(std::move(o));
  BOOST_TEST(!node.Start());
  return node.Stderr();
}

BOOST_AUTO_TEST_CASE(a_group_readable_token_file_is_refused) {
  std::string err = FailedStart(TokenOptions(kTokenFile, 0640));
  BOOST_TEST(err.find("topology.toml:3: token_file '") != std::string::npos, err);
  BOOST_TEST(err.find("tokens.toml' is open to its group or others (mode 0640); it holds "
                      "secrets: chmod 600") != std::string::npos,
             err);
}

BOOST_AUTO_TEST_CASE(a_bad_role_is_refused) {
  std::string err = FailedStart(
      TokenOptions("[[token]]\nname = \"x\"\ntoken = \"" + kRead + "\"\nrole = \"superuser\"\n"));
  BOOST_TEST(err.find("tokens.toml:4: role must be \"read\", \"write\" or \"admin\", not the "
                      "string \"superuser\"") != std::string::npos,
             err);
}

BOOST_AUTO_TEST_SUITE_END()
