#include "node/http_client.h"

#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <algorithm>
#include <optional>

namespace meridian::node {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

std::string ClientResponse::Header(const std::string& lower_name) const {
  for (const auto& [k, v] : headers) {
    if (k == lower_name) return v;
  }
  return std::string();
}

namespace {

// One connection: plain TCP, or TLS over it (an https:// client).
struct Conn {
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;

  bool open() const { return plain.has_value() || tls.has_value(); }
  void reset() {
    plain.reset();
    tls.reset();
  }
  // The TCP stream underneath: timeouts and the socket.
  beast::tcp_stream& lowest() { return tls ? tls->next_layer() : *plain; }
  // Calls f with whichever stream reads and writes the HTTP bytes.
  template <class F>
  void Visit(F&& f) {
    if (tls) {
      f(*tls);
    } else {
      f(*plain);
    }
  }
};

}  // namespace

struct HttpClient::Impl {
  net::io_context ioc;
  std::optional<ssl::context> tls;  // set for an https:// URL
  Conn conn;                        // the kept-alive connection of Request

  ssl::context* tls_context() { return tls ? &*tls : nullptr; }
};

HttpClient::~HttpClient() {
  if (impl_ && impl_->conn.open()) {
    beast::error_code ec;
    impl_->conn.lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
  }
}

Status HttpClient::Create(const std::string& base_url, std::unique_ptr<HttpClient>* out) {
  return Create(base_url, std::string(), out);
}

Status HttpClient::Create(const std::string& base_url, const std::string& ca_file,
                          std::unique_ptr<HttpClient>* out) {
  std::string url = base_url;
  const bool https = url.compare(0, 8, "https://") == 0;
  if (!https && url.compare(0, 7, "http://") != 0) {
    return Status::InvalidArgument("URL must start with http:// or https:// ('" + base_url +
                                   "')");
  }
  url = url.substr(https ? 8 : 7);
  while (!url.empty() && url.back() == '/') url.pop_back();
  size_t colon = url.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == url.size() ||
      url.find('/') != std::string::npos) {
    return Status::InvalidArgument("URL must be http://HOST:PORT or https://HOST:PORT ('" +
                                   base_url + "')");
  }
  std::unique_ptr<HttpClient> c(new HttpClient());
  c->impl_ = std::make_unique<Impl>();
  if (https) {
    ssl::context ctx(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
    ctx.set_verify_mode(ssl::verify_peer);
    beast::error_code ec;
    if (ca_file.empty()) {
      ctx.set_default_verify_paths(ec);
    } else {
      ctx.load_verify_file(ca_file, ec);
    }
    if (ec) {
      return Status::InvalidArgument(
          (ca_file.empty() ? std::string("cannot load the system's CA certificates")
                           : "cannot load the CA file '" + ca_file + "'") +
          ": " + ec.message());
    }
    c->impl_->tls.emplace(std::move(ctx));
  }
  c->host_ = url.substr(0, colon);
  if (c->host_.size() > 2 && c->host_.front() == '[' && c->host_.back() == ']') {
    c->host_ = c->host_.substr(1, c->host_.size() - 2);
  }
  c->port_ = url.substr(colon + 1);
  *out = std::move(c);
  return Status::OK();
}

namespace {
// Beast's timeouts (tcp_stream::expires_after) apply only to asynchronous
// operations, so every operation here is started asynchronously and then
// run to completion: the stream's expiry closes it with
// beast::error::timeout instead of blocking forever on a peer that
// accepts but never answers.
void RunToCompletion(net::io_context& ioc) {
  ioc.restart();
  ioc.run();
}

// Connects, and with a TLS context (`tls` not null) completes the handshake
// too, verifying the server's certificate against the context's CAs and
// `host` (a DNS name, or an IP address matched against the certificate's IP
// addresses). A node that cannot be reached is Unavailable; one that
// answers but fails the handshake (a certificate that does not verify, a
// plain HTTP port) is IOError.
Status Connect(net::io_context& ioc, ssl::context* tls, const std::string& host,
               const std::string& port, std::chrono::milliseconds timeout, Conn* conn) {
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(host, port, ec);
  if (ec) return Status::Unavailable("cannot resolve " + host + ":" + port + ": " + ec.message());
  conn->reset();
  if (tls != nullptr) {
    conn->tls.emplace(ioc, *tls);
  } else {
    conn->plain.emplace(ioc);
  }
  conn->lowest().expires_after(timeout);
  conn->lowest().async_connect(results,
                               [&ec](beast::error_code e, const tcp::endpoint&) { ec = e; });
  RunToCompletion(ioc);
  if (ec) {
    conn->reset();
    return Status::Unavailable("cannot connect to " + host + ":" + port + ": " + ec.message());
  }
  if (tls == nullptr) return Status::OK();
  beast::error_code not_ip;
  net::ip::make_address(host, not_ip);
  // Server name indication for names only (RFC 6066 allows no addresses).
  if (not_ip && !SSL_set_tlsext_host_name(conn->tls->native_handle(), host.c_str())) {
    conn->reset();
    return Status::InvalidArgument("cannot use '" + host + "' as a TLS server name");
  }
  conn->tls->set_verify_callback(ssl::host_name_verification(host));
  conn->lowest().expires_after(timeout);
  conn->tls->async_handshake(ssl::stream_base::client, [&ec](beast::error_code e) { ec = e; });
  RunToCompletion(ioc);
  if (ec) {
    conn->reset();
    return Status::IOError("TLS handshake with " + host + ":" + port + " failed: " +
                           ec.message());
  }
  return Status::OK();
}
}  // namespace

Status HttpClient::Request(const std::string& method, const std::string& target,
                           const std::string& body,
                           const std::vector<std::pair<std::string, std::string>>& headers,
                           ClientResponse* out) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    Conn& conn = impl_->conn;
    bool reused = conn.open();
    if (!reused) {
      MERIDIAN_RETURN_IF_ERROR(
          Connect(impl_->ioc, impl_->tls_context(), host_, port_, timeout_, &conn));
    }
    http::request<http::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(http::field::host, host_ + ":" + port_);
    req.keep_alive(true);
    for (const auto& [k, v] : default_headers_) req.set(k, v);
    for (const auto& [k, v] : headers) req.set(k, v);
    req.body() = body;
    if (!body.empty() || method == "POST" || method == "PUT") req.prepare_payload();
    beast::error_code ec;
    // One deadline for writing the request and reading the whole reply.
    conn.lowest().expires_after(timeout_);
    conn.Visit([&](auto& stream) {
      http::async_write(stream, req, [&ec](beast::error_code e, size_t) { ec = e; });
    });
    RunToCompletion(impl_->ioc);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ull << 32);
    if (!ec) {
      conn.Visit([&](auto& stream) {
        http::async_read(stream, buffer, parser, [&ec](beast::error_code e, size_t) { ec = e; });
      });
      RunToCompletion(impl_->ioc);
    }
    if (ec) {
      conn.reset();
      // A kept-alive connection the server closed: try once on a new one,
      // but never a POST, which the server may have applied already (a
      // counter increment must not count twice).
      if (reused && method != "POST" &&
          (ec == http::error::end_of_stream || ec == net::error::connection_reset ||
           ec == net::error::broken_pipe || ec == net::error::eof ||
           ec == ssl::error::stream_truncated)) {
        continue;
      }
      return Status::IOError(method + " " + target + ": " + ec.message());
    }
    auto res = parser.release();
    out->status = static_cast<int>(res.result_int());
    out->body = std::move(res.body());
    out->headers.clear();
    for (const auto& f : res) {
      std::string name(f.name_string());
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      out->headers.emplace_back(std::move(name), std::string(f.value()));
    }
    if (!res.keep_alive()) conn.reset();
    return Status::OK();
  }
  return Status::IOError(method + " " + target + ": connection closed");
}

Status HttpClient::Download(const std::string& target,
                            const std::function<Status(std::string_view piece)>& sink,
                            std::chrono::milliseconds timeout, ClientResponse* out) {
  Conn s;
  MERIDIAN_RETURN_IF_ERROR(Connect(impl_->ioc, impl_->tls_context(), host_, port_, timeout, &s));
  http::request<http::empty_body> req;
  req.method(http::verb::get);
  req.target(target);
  req.version(11);
  req.set(http::field::host, host_ + ":" + port_);
  req.keep_alive(false);
  beast::error_code ec;
  s.lowest().expires_after(timeout);
  s.Visit([&](auto& stream) {
    http::async_write(stream, req, [&ec](beast::error_code e, size_t) { ec = e; });
  });
  RunToCompletion(impl_->ioc);
  if (ec) return Status::IOError("GET " + target + ": " + ec.message());

  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  s.lowest().expires_after(timeout);
  s.Visit([&](auto& stream) {
    http::async_read_header(stream, buffer, parser, [&ec](beast::error_code e, size_t) { ec = e; });
  });
  RunToCompletion(impl_->ioc);
  if (ec) return Status::IOError("GET " + target + ": reading the reply's head: " + ec.message());
  out->status = static_cast<int>(parser.get().result_int());
  out->headers.clear();
  out->body.clear();
  for (const auto& f : parser.get()) {
    std::string name(f.name_string());
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    out->headers.emplace_back(std::move(name), std::string(f.value()));
  }
  std::vector<char> piece(64 << 10);
  while (!parser.is_done()) {
    parser.get().body().data = piece.data();
    parser.get().body().size = piece.size();
    s.lowest().expires_after(timeout);
    s.Visit([&](auto& stream) {
      http::async_read(stream, buffer, parser, [&ec](beast::error_code e, size_t) { ec = e; });
    });
    RunToCompletion(impl_->ioc);
    if (ec == http::error::need_buffer) ec = {};
    const size_t n = piece.size() - parser.get().body().size;
    if (n > 0) {
      if (out->status == 200) {
        MERIDIAN_RETURN_IF_ERROR(sink(std::string_view(piece.data(), n)));
      } else if (out->body.size() < (1 << 20)) {
        out->body.append(piece.data(), n);
      }
    }
    if (ec) {
      return Status::IOError("GET " + target + ": the reply ended early: " + ec.message());
    }
  }
  return Status::OK();
}

Status HttpClient::ReadEvents(const std::string& target, size_t max_events,
                              std::chrono::milliseconds timeout, std::vector<std::string>* data) {
  data->clear();
  Conn s;
  MERIDIAN_RETURN_IF_ERROR(Connect(impl_->ioc, impl_->tls_context(), host_, port_, timeout, &s));
  std::string req =
      "GET " + target + " HTTP/1.1\r\nHost: " + host_ + "\r\nAccept: text/event-stream\r\n";
  for (const auto& [k, v] : default_headers_) req += k + ": " + v + "\r\n";
  req += "\r\n";
  beast::error_code ec;
  s.lowest().expires_after(timeout);
  s.Visit([&](auto& stream) {
    net::async_write(stream, net::buffer(req), [&ec](beast::error_code e, size_t) { ec = e; });
  });
  RunToCompletion(impl_->ioc);
  if (ec) return Status::IOError("watch request: " + ec.message());
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string text;
  char buf[4096];
  while (data->size() < max_events) {
    auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::milliseconds(0)) break;
    s.lowest().expires_after(std::chrono::duration_cast<std::chrono::milliseconds>(left));
    size_t n = 0;
    s.Visit([&](auto& stream) {
      stream.async_read_some(net::buffer(buf), [&ec, &n](beast::error_code e, size_t got) {
        ec = e;
        n = got;
      });
    });
    RunToCompletion(impl_->ioc);
    if (ec) break;
    text.append(buf, n);
    // Collect complete "data:" lines after the header block.
    size_t body = text.find("\r\n\r\n");
    if (body == std::string::npos) continue;
    data->clear();
    size_t pos = body + 4;
    while (true) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) break;
      std::string line = text.substr(pos, nl - pos);
      if (line.compare(0, 6, "data: ") == 0) data->push_back(line.substr(6));
      pos = nl + 1;
    }
  }
  return Status::OK();
}

std::string EncodeKeyForPath(const std::string& key) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : key) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string EncodeQueryValue(const std::string& v) {
  std::string out = EncodeKeyForPath(v);
  std::string fixed;
  for (char c : out) {
    if (c == '/') {
      fixed += "%2F";
    } else {
      fixed.push_back(c);
    }
  }
  return fixed;
}

}  // namespace meridian::node
