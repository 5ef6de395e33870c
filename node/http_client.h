// A small blocking HTTP/1.1 client with keep-alive, for meridianctl and the
// multi-process tests, over plain HTTP or TLS (https://, TLS 1.2 or newer,
// the server's certificate verified). This header and http_client.cc are
// the only files that know Beast/Asio on the client side.
#ifndef MERIDIAN_NODE_HTTP_CLIENT_H_
#define MERIDIAN_NODE_HTTP_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crdt/status.h"

namespace meridian::node {

struct ClientResponse {
  int status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string Header(const std::string& lower_name) const;
};

class HttpClient {
 public:
  // `base_url`: "http://HOST:PORT" or "https://HOST:PORT" (a trailing slash
  // is ignored). For https, the server's certificate must verify against
  // the CA certificates (PEM) in `ca_file`, or the system's when it is
  // empty, and name HOST (an IP address HOST is matched against the
  // certificate's IP addresses); a CA file that does not load is
  // InvalidArgument here. `ca_file` is ignored for http.
  static Status Create(const std::string& base_url, const std::string& ca_file,
                       std::unique_ptr<HttpClient>* out);
  // The same with the system's CA certificates.
  static Status Create(const std::string& base_url, std::unique_ptr<HttpClient>* out);
  ~HttpClient();

  // One request; reconnects once if a kept-alive connection was closed
  // (except for POST, which is not repeated).
  // Fails with Unavailable when the node cannot be reached and IOError on a
  // broken exchange (a failed TLS handshake too: a certificate that does
  // not verify); an HTTP error status is a successful exchange.
  Status Request(const std::string& method, const std::string& target, const std::string& body,
                 const std::vector<std::pair<std::string, std::string>>& headers,
                 ClientResponse* out);

  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }
  // Headers sent with every request (Request and ReadEvents) before the
  // request's own, e.g. {"Authorization", "Bearer TOKEN"}.
  void set_default_headers(std::vector<std::pair<std::string, std::string>> headers) {
    default_headers_ = std::move(headers);
  }
  const std::string& host() const { return host_; }
  const std::string& port() const { return port_; }

  // GET `target` on a connection of its own and hand the body to `sink`
  // piece by piece as it arrives (a backup: it is never held whole). Only a
  // 200's body goes to the sink; another status fills out->body (up to
  // 1 MiB) instead. out->headers is filled either way. `timeout` bounds
  // each wait for data, not the whole transfer. An error the sink returns
  // ends the transfer with it; a body that ends early (the connection
  // closed before a chunked body's last chunk) is IOError.
  Status Download(const std::string& target,
                  const std::function<Status(std::string_view piece)>& sink,
                  std::chrono::milliseconds timeout, ClientResponse* out);

  // Reads a server-sent event stream from `target` until `max_events`
  // "data:" lines arrived or `timeout` passed; returns those data lines.
  Status ReadEvents(const std::string& target, size_t max_events, std::chrono::milliseconds timeout,
                    std::vector<std::string>* data);

 private:
  HttpClient() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string host_, port_;
  std::chrono::milliseconds timeout_{10000};
  std::vector<std::pair<std::string, std::string>> default_headers_;
};

// Percent-encodes a key for use in a path ("/" kept, so keys with slashes
// read naturally).
std::string EncodeKeyForPath(const std::string& key);
// Percent-encodes a query value.
std::string EncodeQueryValue(const std::string& v);

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_HTTP_CLIENT_H_
