// The node's HTTP/1.1 server on Boost.Beast: keep-alive, a small pool of
// I/O threads, limits on headers and bodies, and timeouts for clients that
// stall, and TLS (OpenSSL, TLS 1.2 or newer) when given a certificate and
// key. This header and http_server.cc are the only files that know
// Beast/Asio on the server side; handlers see plain HttpRequest/HttpResponse
// values, the same over TLS as over plain HTTP.
//
// A handler must answer without blocking the I/O thread: it calls `reply`
// exactly once, from any thread, whenever the answer is ready (after the
// applier commits a write, after a reader thread loads a key).
#ifndef MERIDIAN_NODE_HTTP_SERVER_H_
#define MERIDIAN_NODE_HTTP_SERVER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crdt/status.h"

namespace meridian::node {

struct HttpRequest {
  std::string method;  // "GET", "PUT", ...
  std::string target;  // path and query, as sent
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  // The value of a header (name in lower case); empty when absent.
  std::string Header(std::string_view lower_name) const;
  // True for a WebSocket upgrade request (GET with Upgrade: websocket).
  bool websocket_upgrade = false;
};

// A server-sent event stream (text/event-stream). The handler keeps it and
// pushes events from any thread; the server writes them in order.
class EventStream {
 public:
  explicit EventStream(size_t max_queued_bytes = 1 << 20) : max_queued_(max_queued_bytes) {}
  // Queues `chunk` (already formatted as SSE lines). Returns false once
  // the client is gone, or when it is too slow: more than max_queued bytes
  // waiting drops it (it reconnects and resyncs), so a slow client never
  // grows server memory without bound.
  bool Push(std::string chunk);
  // Queues `chunk` after waiting, on the calling thread, while max_queued
  // bytes or more wait: for a producer that must not lose data (a backup)
  // and may block. Returns false once the client is gone or the stream is
  // closed (nothing queued then).
  bool PushWait(std::string chunk);
  bool closed() const;
  void Close();
  // Closes the stream as complete: a chunked response (HttpResponse::
  // chunked) then ends with its last chunk. A stream closed otherwise
  // (Close, a client gone) is cut off without it, so the client can tell
  // an incomplete body from a whole one.
  void End();
  bool ended() const;

  // Server side.
  void SetWaker(std::function<void()> wake);
  bool TakeAll(std::string* out);  // false when closed and nothing left

 private:
  mutable std::mutex mu_;
  std::condition_variable drained_;  // PushWait waits on it
  std::string queued_;
  size_t max_queued_;
  bool closed_ = false;
  bool ended_ = false;
  std::function<void()> wake_;
};

// A WebSocket (RFC 6455) a handler accepts: it answers an upgrade request
// with a response holding the channel, and from then on the server delivers
// each message the client sends to on_message (in order, on an I/O thread,
// never two at once) and writes what is sent, in order, as text messages.
class WebSocketChannel {
 public:
  explicit WebSocketChannel(size_t max_queued_bytes = 4 << 20) : max_queued_(max_queued_bytes) {}

  // Set by the handler before it replies; not changed afterwards. Both may
  // be left empty.
  std::function<void(std::string)> on_message;
  std::function<void()> on_close;  // once, when the socket is gone (or never opened)

  // Queues a text message. Returns false once the channel is closed, or
  // when the client is too slow: more than max_queued bytes waiting closes
  // it (dropped() says so), so a client that stops reading never grows
  // server memory without bound; it reconnects and resyncs.
  bool Send(std::string message);
  // Closes the socket once what is queued is written.
  void Close();
  bool closed() const;
  bool dropped() const;

  // Server side.
  void SetWaker(std::function<void()> wake);
  // Moves the next message to *out (its bytes count as queued until the
  // next call: the write in flight is part of what waits); false when
  // there is none (*out empty). *open is false once the channel is closed.
  bool TakeNext(std::string* out, bool* open);
  // The socket is gone (or never opened): calls on_close the first time.
  void Finish();

 private:
  mutable std::mutex mu_;
  std::deque<std::string> queued_;
  size_t queued_bytes_ = 0;  // queued_ and the message being written
  size_t in_flight_ = 0;
  size_t max_queued_;
  bool closed_ = false;
  bool dropped_ = false;
  bool finished_ = false;
  std::function<void()> wake_;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, the response is a server-sent event stream: headers, then
  // whatever is pushed, until either side closes.
  std::shared_ptr<EventStream> stream;
  // For a stream: Transfer-Encoding: chunked, each write one chunk, and
  // the last chunk only once the stream is End()ed.
  bool chunked = false;
  // When set (in answer to a WebSocket upgrade request), the connection
  // becomes this WebSocket; status and body are not sent. A request that
  // is not an upgrade gets 426 upgrade_required instead.
  std::shared_ptr<WebSocketChannel> websocket;
};

using Reply = std::function<void(HttpResponse)>;
using HttpHandler = std::function<void(HttpRequest&&, Reply)>;

// A certificate chain (the server's certificate first, then any
// intermediates) and its private key, as PEM text.
struct TlsCredentials {
  std::string cert_pem;
  std::string key_pem;
};

// Checks credentials as HttpServer::Start loads them: InvalidArgument with
// a sentence naming what is wrong, and *bad_key true when it is the key
// (unreadable, or not the certificate's), false when it is the certificate.
Status CheckTlsCredentials(const TlsCredentials& tls, bool* bad_key);

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: pick a free port (see port())
  int threads = 2;
  uint64_t body_limit = 8 << 20;        // 413 above this
  uint32_t header_limit = 64 << 10;     // 431 above this (request line + headers)
  size_t max_target_bytes = 8 << 10;    // 414 above this
  std::chrono::milliseconds read_timeout{10000};  // a request must arrive within this
  std::chrono::milliseconds idle_timeout{60000};  // keep-alive connection idle limit
  // When set, the port speaks only TLS (1.2 or newer): every connection
  // completes a TLS handshake within read_timeout before its first request,
  // and one that does not (a plain HTTP client, a client offering only old
  // versions, a stalled one) is closed and counted
  // (tls_handshake_failures, on_tls_failure), without a log line: anyone
  // can cause them. Empty: plain HTTP.
  TlsCredentials tls;
  // Called (on an I/O thread) for each such connection; may be empty.
  std::function<void()> on_tls_failure;
  bool tls_enabled() const { return !tls.cert_pem.empty(); }
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();

  // Loads the TLS credentials (if any; InvalidArgument when they do not
  // load, as CheckTlsCredentials says), binds, listens and starts the I/O
  // threads.
  Status Start();
  uint16_t port() const;
  // Stops accepting, lets in-flight requests finish (up to `grace`), then
  // closes every connection and joins the threads.
  void Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));

  uint64_t connections_accepted() const;
  // Connections closed because their TLS handshake failed or timed out.
  uint64_t tls_handshake_failures() const;

  struct Impl;  // opaque; public so that http_server.cc's sessions can name it

 private:
  std::unique_ptr<Impl> impl_;
};

// Percent-decodes `in` (a path segment or query component; '+' stays '+'
// in paths and becomes ' ' in queries when `plus_is_space`). False on a
// malformed escape.
bool PercentDecode(std::string_view in, bool plus_is_space, std::string* out);
// Splits "a=1&b=2" into decoded pairs. False on a malformed escape.
bool ParseQuery(std::string_view query, std::vector<std::pair<std::string, std::string>>* out);

}  // namespace meridian::node

#endif  // MERIDIAN_NODE_HTTP_SERVER_H_
