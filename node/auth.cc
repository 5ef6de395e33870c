// Bearer tokens (auth.h). SHA-256 and the constant-time comparison are
// OpenSSL's; this is the only file in node/ that knows OpenSSL.
#include "node/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <utility>

namespace meridian::node {
namespace {

std::array<uint8_t, 32> Sha256(std::string_view text) {
  std::array<uint8_t, 32> out{};
  unsigned int size = 0;
  if (EVP_Digest(text.data(), text.size(), out.data(), &size, EVP_sha256(), nullptr) != 1 ||
      size != out.size()) {
    // Without SHA-256 no token can be checked; refusing every request
    // silently would be worse than stopping.
    std::fprintf(stderr, "meridian: OpenSSL SHA-256 failed while checking a token\n");
    std::abort();
  }
  return out;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// The routes that name a key after a prefix: GET reads, anything else
// writes.
constexpr std::string_view kDataPrefixes[] = {"/v1/kv/", "/v1/counter/", "/v1/set/", "/v1/map/",
                                              "/v1/text/"};

bool EqualsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

AuthDecision Deny(int http, std::string message) {
  AuthDecision d;
  d.http = http;
  d.code = http == 401 ? "unauthorized" : "forbidden";
  d.message = std::move(message);
  return d;
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kRead:
      return "read";
    case Role::kWrite:
      return "write";
    case Role::kAdmin:
      return "admin";
  }
  return "?";
}

bool ParseRole(std::string_view name, Role* out) {
  for (Role r : {Role::kRead, Role::kWrite, Role::kAdmin}) {
    if (name == RoleName(r)) {
      *out = r;
      return true;
    }
  }
  return false;
}

const char* RouteClassName(RouteClass c) {
  switch (c) {
    case RouteClass::kOpen:
      return "open";
    case RouteClass::kRead:
      return "read";
    case RouteClass::kWrite:
      return "write";
    case RouteClass::kAdmin:
      return "admin";
  }
  return "?";
}

RouteClass ClassOf(std::string_view method, std::string_view path) {
  const bool get = method == "GET";
  if (path == "/v1/health" || path == "/demo" || StartsWith(path, "/demo/")) {
    return RouteClass::kOpen;
  }
  for (std::string_view prefix : kDataPrefixes) {
    if (StartsWith(path, prefix)) return get ? RouteClass::kRead : RouteClass::kWrite;
  }
  if (StartsWith(path, "/v1/conflicts/")) return get ? RouteClass::kRead : RouteClass::kWrite;
  if (path == "/v1/batch" || StartsWith(path, "/v1/stream/text/")) return RouteClass::kWrite;
  if (path == "/v1/admin" || StartsWith(path, "/v1/admin/")) return RouteClass::kAdmin;
  // /v1/status, /metrics, /v1/scan, /v1/watch, /v1/conflicts,
  // /v1/audit/{key}, and every path no route serves.
  return RouteClass::kRead;
}

bool AcceptsQueryToken(std::string_view path) { return StartsWith(path, "/v1/stream/text/"); }

TokenTable::TokenTable(const std::vector<TokenSpec>& specs) {
  entries_.reserve(specs.size());
  for (const TokenSpec& s : specs) entries_.push_back({s.name, s.role, Sha256(s.token)});
}

const TokenTable::Entry* TokenTable::Find(std::string_view presented) const {
  const std::array<uint8_t, 32> digest = Sha256(presented);
  const Entry* found = nullptr;
  for (const Entry& e : entries_) {
    // No early exit: every entry is compared whatever matched before.
    if (CRYPTO_memcmp(digest.data(), e.digest.data(), digest.size()) == 0) found = &e;
  }
  return found;
}

AuthDecision Authorize(const TokenTable& table, std::string_view method, std::string_view path,
                       std::string_view authorization, std::string_view query_token) {
  const RouteClass needed = ClassOf(method, path);
  if (table.open() || needed == RouteClass::kOpen) return AuthDecision();

  std::string_view presented;
  if (!authorization.empty()) {
    // RFC 6750 §2.1: "Bearer" 1*SP token; the scheme is case-insensitive.
    size_t space = authorization.find(' ');
    std::string_view scheme = authorization.substr(0, space);
    if (space == std::string_view::npos || !EqualsNoCase(scheme, "bearer")) {
      return Deny(401, "the Authorization header must be 'Bearer TOKEN'");
    }
    presented = authorization.substr(space + 1);
    while (!presented.empty() && presented.front() == ' ') presented.remove_prefix(1);
    while (!presented.empty() && presented.back() == ' ') presented.remove_suffix(1);
    if (presented.empty()) return Deny(401, "the Authorization header has no token after 'Bearer'");
  } else if (!query_token.empty() && AcceptsQueryToken(path)) {
    presented = query_token;
  } else if (!query_token.empty()) {
    return Deny(401,
                "?access_token= is accepted only on /v1/stream/text/{key}; send "
                "'Authorization: Bearer TOKEN'");
  } else {
    return Deny(401, "this route needs a token: send 'Authorization: Bearer TOKEN'");
  }

  const TokenTable::Entry* who = table.Find(presented);
  if (who == nullptr) return Deny(401, "unknown token");
  const Role needs = needed == RouteClass::kRead    ? Role::kRead
                     : needed == RouteClass::kWrite ? Role::kWrite
                                                    : Role::kAdmin;
  if (static_cast<uint8_t>(who->role) < static_cast<uint8_t>(needs)) {
    AuthDecision d =
        Deny(403, "token '" + who->name + "' has the role " + RoleName(who->role) + "; " +
                      std::string(method) + " " + std::string(path) + " needs " + RoleName(needs));
    d.who = who;
    return d;
  }
  AuthDecision d;
  d.who = who;
  return d;
}

}  // namespace meridian::node
