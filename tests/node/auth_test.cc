// API tokens (node/auth.h): the route-class table, roles, the
// Authorization header's shape and the decisions built from them.
#define BOOST_TEST_MODULE auth
#include "node/auth.h"

#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

using namespace meridian::node;

namespace {

const char* ClassName(const char* method, const char* path) {
  return RouteClassName(ClassOf(method, path));
}

TokenTable Table() {
  return TokenTable({{"reader", "r-0123456789abcdef", Role::kRead, 1},
                     {"writer", "w-0123456789abcdef", Role::kWrite, 5},
                     {"admin", "a-0123456789abcdef", Role::kAdmin, 9}});
}

}  // namespace

BOOST_AUTO_TEST_CASE(roles_round_trip) {
  for (Role r : {Role::kRead, Role::kWrite, Role::kAdmin}) {
    Role back;
    BOOST_TEST(ParseRole(RoleName(r), &back));
    BOOST_TEST((back == r));
  }
  Role out;
  for (const char* bad : {"", "Read", "owner", "admin "}) BOOST_TEST(!ParseRole(bad, &out));
}

BOOST_AUTO_TEST_CASE(every_route_has_its_class) {
  struct Row {
    const char* method;
    const char* path;
    const char* cls;
  };
  const std::vector<Row> rows = {
      {"GET", "/v1/health", "open"},
      {"POST", "/v1/health", "open"},  // 405, which needs no token either
      {"GET", "/demo", "open"},
      {"GET", "/demo/", "open"},
      {"GET", "/demo/editor.js", "open"},
      {"GET", "/v1/status", "read"},
      {"GET", "/metrics", "read"},
      {"GET", "/v1/kv/a", "read"},
      {"GET", "/v1/counter/a", "read"},
      {"GET", "/v1/set/a", "read"},
      {"GET", "/v1/map/a", "read"},
      {"GET", "/v1/text/a/b", "read"},
      {"GET", "/v1/scan", "read"},
      {"GET", "/v1/watch", "read"},
      {"GET", "/v1/conflicts", "read"},
      {"GET", "/v1/conflicts/a", "read"},
      {"GET", "/v1/audit/a", "read"},
      {"PUT", "/v1/kv/a", "write"},
      {"DELETE", "/v1/kv/a", "write"},
      {"POST", "/v1/counter/a", "write"},
      {"DELETE", "/v1/counter/a", "write"},
      {"POST", "/v1/set/a", "write"},
      {"POST", "/v1/map/a", "write"},
      {"POST", "/v1/text/a", "write"},
      {"DELETE", "/v1/text/a", "write"},
      {"PATCH", "/v1/kv/a", "write"},  // 405 after the check
      {"HEAD", "/v1/kv/a", "write"},
      {"POST", "/v1/batch", "write"},
      {"GET", "/v1/batch", "write"},
      {"POST", "/v1/conflicts/a", "write"},
      {"GET", "/v1/stream/text/a", "write"},
      {"GET", "/v1/admin/faults", "admin"},
      {"POST", "/v1/admin/faults", "admin"},
      {"GET", "/v1/admin/backup", "admin"},
      {"GET", "/v1/admin", "admin"},
      // Paths no route serves need a token (401 before 404).
      {"GET", "/", "read"},
      {"GET", "/v1/nothing", "read"},
      {"GET", "/v1/kv", "read"},
      {"GET", "/v1/healthz", "read"},
      {"GET", "/demos", "read"},
      {"GET", "/v1/administrator", "read"},
  };
  for (const Row& r : rows) {
    BOOST_TEST_INFO(r.method << " " << r.path);
    BOOST_TEST(std::string(ClassName(r.method, r.path)) == r.cls);
  }
}

BOOST_AUTO_TEST_CASE(only_the_websocket_takes_a_query_token) {
  BOOST_TEST(AcceptsQueryToken("/v1/stream/text/a"));
  BOOST_TEST(!AcceptsQueryToken("/v1/text/a"));
  BOOST_TEST(!AcceptsQueryToken("/v1/kv/a"));
  BOOST_TEST(!AcceptsQueryToken("/v1/watch"));
}

BOOST_AUTO_TEST_CASE(an_empty_table_is_open) {
  TokenTable open;
  BOOST_TEST(open.open());
  for (const char* path : {"/v1/kv/a", "/v1/admin/faults", "/v1/stream/text/a", "/nothing"}) {
    BOOST_TEST(Authorize(open, "POST", path, "", "").allowed());
    BOOST_TEST(Authorize(open, "POST", path, "Bearer whatever", "").allowed());
  }
}

BOOST_AUTO_TEST_CASE(find_matches_whole_secrets_only) {
  TokenTable t = Table();
  BOOST_TEST(!t.open());
  BOOST_REQUIRE(t.Find("w-0123456789abcdef") != nullptr);
  BOOST_TEST(t.Find("w-0123456789abcdef")->name == "writer");
  BOOST_TEST(t.Find("w-0123456789abcde") == nullptr);
  BOOST_TEST(t.Find("w-0123456789abcdef0") == nullptr);
  BOOST_TEST(t.Find("W-0123456789ABCDEF") == nullptr);
  BOOST_TEST(t.Find("") == nullptr);
}

BOOST_AUTO_TEST_CASE(role_against_class) {
  TokenTable t = Table();
  struct Row {
    const char* method;
    const char* path;
    int reader, writer, admin;
  };
  const std::vector<Row> rows = {
      {"GET", "/v1/health", 200, 200, 200},        {"GET", "/v1/status", 200, 200, 200},
      {"GET", "/v1/kv/a", 200, 200, 200},          {"PUT", "/v1/kv/a", 403, 200, 200},
      {"POST", "/v1/batch", 403, 200, 200},        {"GET", "/v1/stream/text/a", 403, 200, 200},
      {"POST", "/v1/admin/faults", 403, 403, 200}, {"GET", "/v1/nothing", 200, 200, 200},
  };
  for (const Row& r : rows) {
    BOOST_TEST_INFO(r.method << " " << r.path);
    BOOST_TEST(Authorize(t, r.method, r.path, "Bearer r-0123456789abcdef", "").http == r.reader);
    BOOST_TEST(Authorize(t, r.method, r.path, "Bearer w-0123456789abcdef", "").http == r.writer);
    BOOST_TEST(Authorize(t, r.method, r.path, "Bearer a-0123456789abcdef", "").http == r.admin);
  }
  AuthDecision d = Authorize(t, "PUT", "/v1/kv/a", "Bearer r-0123456789abcdef", "");
  BOOST_TEST(d.code == "forbidden");
  BOOST_TEST(d.message == "token 'reader' has the role read; PUT /v1/kv/a needs write");
  BOOST_REQUIRE(d.who != nullptr);
  BOOST_TEST(d.who->name == "reader");
}

BOOST_AUTO_TEST_CASE(missing_malformed_and_unknown_are_401) {
  TokenTable t = Table();
  struct Row {
    const char* authorization;
    const char* message;
  };
  const std::vector<Row> rows = {
      {"", "this route needs a token: send 'Authorization: Bearer TOKEN'"},
      {"Bearer", "the Authorization header must be 'Bearer TOKEN'"},
      {"Bearer   ", "the Authorization header has no token after 'Bearer'"},
      {"Basic dXNlcjpwYXNz", "the Authorization header must be 'Bearer TOKEN'"},
      {"r-0123456789abcdef", "the Authorization header must be 'Bearer TOKEN'"},
      {"Bearer r-0123456789abcdeX", "unknown token"},
      {"Bearer r-0123456789abcdef r", "unknown token"},
  };
  for (const Row& r : rows) {
    BOOST_TEST_INFO("Authorization: " << r.authorization);
    AuthDecision d = Authorize(t, "GET", "/v1/kv/a", r.authorization, "");
    BOOST_TEST(d.http == 401);
    BOOST_TEST(d.code == "unauthorized");
    BOOST_TEST(d.message == r.message);
    BOOST_TEST(d.who == nullptr);
  }
  // The scheme is case-insensitive; spaces around the token do not count.
  BOOST_TEST(Authorize(t, "GET", "/v1/kv/a", "bearer r-0123456789abcdef", "").allowed());
  BOOST_TEST(Authorize(t, "GET", "/v1/kv/a", "BEARER  r-0123456789abcdef ", "").allowed());
}

BOOST_AUTO_TEST_CASE(access_token_counts_on_the_websocket_only) {
  TokenTable t = Table();
  BOOST_TEST(Authorize(t, "GET", "/v1/stream/text/a", "", "w-0123456789abcdef").allowed());
  BOOST_TEST(Authorize(t, "GET", "/v1/stream/text/a", "", "r-0123456789abcdef").http == 403);
  BOOST_TEST(Authorize(t, "GET", "/v1/stream/text/a", "", "nope-nope-nope-nope").http == 401);
  // The header wins when both are there.
  BOOST_TEST(
      Authorize(t, "GET", "/v1/stream/text/a", "Bearer r-0123456789abcdef", "w-0123456789abcdef")
          .http == 403);
  AuthDecision d = Authorize(t, "GET", "/v1/kv/a", "", "w-0123456789abcdef");
  BOOST_TEST(d.http == 401);
  BOOST_TEST(d.message ==
             "?access_token= is accepted only on /v1/stream/text/{key}; send "
             "'Authorization: Bearer TOKEN'");
}
