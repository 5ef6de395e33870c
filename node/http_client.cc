#include "node/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <optional>

namespace meridian::node {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

std::string ClientResponse::Header(const std::string& lower_name) const {
  for (const auto& [k, v] : headers) {
    if (k == lower_name) return v;
  }
  return std::string();
}

struct HttpClient::Impl {
  net::io_context ioc;
  std::optional<beast::tcp_stream> stream;
};

HttpClient::~HttpClient() {
  if (impl_ && impl_->stream) {
    beast::error_code ec;
    impl_->stream->socket().shutdown(tcp::socket::shutdown_both, ec);
  }
}

Status HttpClient::Create(const std::string& base_url, std::unique_ptr<HttpClient>* out) {
  std::string url = base_url;
  const std::string scheme = "http://";
  if (url.compare(0, scheme.size(), scheme) != 0) {
    return Status::InvalidArgument("URL must start with http:// ('" + base_url + "')");
  }
  url = url.substr(scheme.size());
  while (!url.empty() && url.back() == '/') url.pop_back();
  size_t colon = url.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == url.size() ||
      url.find('/') != std::string::npos) {
    return Status::InvalidArgument("URL must be http://HOST:PORT ('" + base_url + "')");
  }
  std::unique_ptr<HttpClient> c(new HttpClient());
  c->impl_ = std::make_unique<Impl>();
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

Status Connect(net::io_context& ioc, const std::string& host, const std::string& port,
               std::chrono::milliseconds timeout, std::optional<beast::tcp_stream>* stream) {
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(host, port, ec);
  if (ec) return Status::Unavailable("cannot resolve " + host + ":" + port + ": " + ec.message());
  stream->emplace(ioc);
  (*stream)->expires_after(timeout);
  (*stream)->async_connect(results,
                           [&ec](beast::error_code e, const tcp::endpoint&) { ec = e; });
  RunToCompletion(ioc);
  if (ec) {
    stream->reset();
    return Status::Unavailable("cannot connect to " + host + ":" + port + ": " + ec.message());
  }
  return Status::OK();
}
}  // namespace

Status HttpClient::Request(const std::string& method, const std::string& target,
                           const std::string& body,
                           const std::vector<std::pair<std::string, std::string>>& headers,
                           ClientResponse* out) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool reused = impl_->stream.has_value();
    if (!reused) MERIDIAN_RETURN_IF_ERROR(Connect(impl_->ioc, host_, port_, timeout_, &impl_->stream));
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
    impl_->stream->expires_after(timeout_);
    http::async_write(*impl_->stream, req, [&ec](beast::error_code e, size_t) { ec = e; });
    RunToCompletion(impl_->ioc);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ull << 32);
    if (!ec) {
      http::async_read(*impl_->stream, buffer, parser,
                       [&ec](beast::error_code e, size_t) { ec = e; });
      RunToCompletion(impl_->ioc);
    }
    if (ec) {
      impl_->stream.reset();
      // A kept-alive connection the server closed: try once on a new one,
      // but never a POST, which the server may have applied already (a
      // counter increment must not count twice).
      if (reused && method != "POST" && (ec == http::error::end_of_stream || ec == net::error::connection_reset ||
                     ec == net::error::broken_pipe || ec == net::error::eof)) {
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
    if (!res.keep_alive()) impl_->stream.reset();
    return Status::OK();
  }
  return Status::IOError(method + " " + target + ": connection closed");
}

Status HttpClient::Download(const std::string& target,
                            const std::function<Status(std::string_view piece)>& sink,
                            std::chrono::milliseconds timeout, ClientResponse* out) {
  std::optional<beast::tcp_stream> s;
  MERIDIAN_RETURN_IF_ERROR(Connect(impl_->ioc, host_, port_, timeout, &s));
  http::request<http::empty_body> req;
  req.method(http::verb::get);
  req.target(target);
  req.version(11);
  req.set(http::field::host, host_ + ":" + port_);
  req.keep_alive(false);
  beast::error_code ec;
  s->expires_after(timeout);
  http::async_write(*s, req, [&ec](beast::error_code e, size_t) { ec = e; });
  RunToCompletion(impl_->ioc);
  if (ec) return Status::IOError("GET " + target + ": " + ec.message());

  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  s->expires_after(timeout);
  http::async_read_header(*s, buffer, parser, [&ec](beast::error_code e, size_t) { ec = e; });
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
    s->expires_after(timeout);
    http::async_read(*s, buffer, parser, [&ec](beast::error_code e, size_t) { ec = e; });
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
  std::optional<beast::tcp_stream> s;
  MERIDIAN_RETURN_IF_ERROR(Connect(impl_->ioc, host_, port_, timeout, &s));
  std::string req =
      "GET " + target + " HTTP/1.1\r\nHost: " + host_ + "\r\nAccept: text/event-stream\r\n";
  for (const auto& [k, v] : default_headers_) req += k + ": " + v + "\r\n";
  req += "\r\n";
  beast::error_code ec;
  s->expires_after(timeout);
  net::async_write(*s, net::buffer(req), [&ec](beast::error_code e, size_t) { ec = e; });
  RunToCompletion(impl_->ioc);
  if (ec) return Status::IOError("watch request: " + ec.message());
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string text;
  char buf[4096];
  while (data->size() < max_events) {
    auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::milliseconds(0)) break;
    s->expires_after(std::chrono::duration_cast<std::chrono::milliseconds>(left));
    size_t n = 0;
    s->async_read_some(net::buffer(buf), [&ec, &n](beast::error_code e, size_t got) {
      ec = e;
      n = got;
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
