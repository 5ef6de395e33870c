// Bearer tokens for the HTTP API (README "Security"): which role each
// route class needs, the table of known tokens, and the decision for one
// request. Pure functions and one immutable table: the token file itself is
// read by topology.cc (the only file that knows toml++), and api.cc asks
// Authorize once per request, before routing.
//
// Roles are ordered: admin includes write includes read.
//
// Route classes (by method and raw path, as api.cc routes them):
//   open   GET /v1/health, /demo and /demo/... (the editor's static files)
//   read   /v1/status, /metrics, GET of /v1/kv|counter|set|map|text/{key},
//          /v1/scan, /v1/watch, /v1/conflicts, GET /v1/conflicts/{key},
//          /v1/audit/{key}, and every path no route serves (so that a
//          client without a valid token learns nothing about which paths
//          exist: it gets 401, and 404 only once it holds a token)
//   write  any other method on /v1/kv|counter|set|map|text/{key},
//          /v1/batch, any other method on /v1/conflicts/{key} (resolve),
//          /v1/stream/text/{key} (the live editor writes)
//   admin  /v1/admin and everything under /v1/admin/
// A route answers 405 for a method it does not serve only after the
// token check, so the class of such a request is that of its path.
//
// Thread-safety: everything here is immutable after construction.
#ifndef MERIDIAN_NODE_AUTH_H_
#define MERIDIAN_NODE_AUTH_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace meridian::node {

enum class Role : uint8_t { kRead = 1, kWrite = 2, kAdmin = 3 };

// "read", "write", "admin".
const char* RoleName(Role role);
// False for anything but those three names (case-sensitive).
bool ParseRole(std::string_view name, Role* out);

enum class RouteClass : uint8_t { kOpen, kRead, kWrite, kAdmin };

// "open", "read", "write", "admin".
const char* RouteClassName(RouteClass c);
// The class of a request; `path` is the target without its query, not
// percent-decoded (exactly what api.cc routes on).
RouteClass ClassOf(std::string_view method, std::string_view path);
// True only for the live text WebSocket, the one route that also takes the
// token as ?access_token= (browsers cannot set headers on a WebSocket).
bool AcceptsQueryToken(std::string_view path);

// A token as read from the token file.
struct TokenSpec {
  std::string name;   // for logs and messages; never the secret
  std::string token;  // the secret, at least kMinTokenBytes
  Role role = Role::kRead;
  int line = 0;  // of its [[token]] table in the token file
};

constexpr size_t kMinTokenBytes = 16;

// The known tokens, kept as SHA-256 digests. Empty means the API is open
// (no token_file in the topology): every request is allowed.
class TokenTable {
 public:
  TokenTable() = default;
  explicit TokenTable(const std::vector<TokenSpec>& specs);

  bool open() const { return entries_.empty(); }

  struct Entry {
    std::string name;
    Role role;
    std::array<uint8_t, 32> digest;
  };
  // The entry holding `presented`, or nullptr. Compares digests with
  // CRYPTO_memcmp and always looks at every entry, so the time taken says
  // nothing about how much of a secret was right.
  const Entry* Find(std::string_view presented) const;

 private:
  std::vector<Entry> entries_;
};

struct AuthDecision {
  int http = 200;    // 200 allowed, 401 unauthorized, 403 forbidden
  std::string code;  // "" , "unauthorized", "forbidden"
  std::string message;
  const TokenTable::Entry* who = nullptr;  // the token used, when known
  bool allowed() const { return http == 200; }
};

// Decides one request. `authorization` is the Authorization header (empty
// when absent): "Bearer TOKEN", the scheme case-insensitive. `query_token`
// is ?access_token= (empty when absent), looked at only when the header is
// absent and AcceptsQueryToken(path).
AuthDecision Authorize(const TokenTable& table, std::string_view method, std::string_view path,
                       std::string_view authorization, std::string_view query_token);

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_AUTH_H_
