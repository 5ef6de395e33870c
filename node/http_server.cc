#include "node/http_server.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <optional>
#include <set>
#include <thread>
#include <type_traits>

namespace meridian::node {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

std::string HttpRequest::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return std::string();
}

// --- EventStream ------------------------------------------------------------

bool EventStream::Push(std::string chunk) {
  std::function<void()> wake;
  bool open = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return false;
    if (queued_.size() + chunk.size() > max_queued_) {
      closed_ = true;  // too slow: drop the client
      open = false;
      queued_.clear();
      wake = wake_;
    } else {
      // Only the first chunk after the session last took the queue wakes
      // it: until it runs TakeAll, whatever follows rides on that wake (and
      // a session busy writing takes the queue when its write completes).
      if (queued_.empty()) wake = wake_;
      queued_ += chunk;
    }
  }
  if (wake) wake();
  return open;
}

bool EventStream::PushWait(std::string chunk) {
  std::function<void()> wake;
  {
    std::unique_lock<std::mutex> lock(mu_);
    drained_.wait(lock, [this] { return closed_ || queued_.size() < max_queued_; });
    if (closed_) return false;
    if (queued_.empty()) wake = wake_;
    queued_ += chunk;
  }
  if (wake) wake();
  return true;
}

void EventStream::End() {
  std::function<void()> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = true;
    ended_ = true;
    wake = wake_;
  }
  drained_.notify_all();
  if (wake) wake();
}

bool EventStream::ended() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ended_;
}

bool EventStream::closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

void EventStream::Close() {
  std::function<void()> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Closing twice wakes nobody: the session's own close comes back here,
    // and waking it again would close it again, forever.
    if (closed_) return;
    closed_ = true;
    wake = wake_;
  }
  drained_.notify_all();
  if (wake) wake();
}

void EventStream::SetWaker(std::function<void()> wake) {
  std::lock_guard<std::mutex> lock(mu_);
  wake_ = std::move(wake);
}

bool EventStream::TakeAll(std::string* out) {
  bool open;
  {
    std::lock_guard<std::mutex> lock(mu_);
    out->swap(queued_);
    queued_.clear();
    open = !(closed_ && out->empty());
  }
  drained_.notify_all();
  return open;
}

// --- WebSocketChannel -------------------------------------------------------

bool WebSocketChannel::Send(std::string message) {
  std::function<void()> wake;
  bool open = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return false;
    if (queued_bytes_ + message.size() > max_queued_) {
      closed_ = true;  // too slow: drop the client
      dropped_ = true;
      open = false;
      queued_.clear();
    } else {
      queued_bytes_ += message.size();
      queued_.push_back(std::move(message));
    }
    wake = wake_;
  }
  if (wake) wake();
  return open;
}

void WebSocketChannel::Close() {
  std::function<void()> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = true;
    wake = wake_;
  }
  if (wake) wake();
}

bool WebSocketChannel::closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

bool WebSocketChannel::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

void WebSocketChannel::SetWaker(std::function<void()> wake) {
  std::lock_guard<std::mutex> lock(mu_);
  wake_ = std::move(wake);
}

bool WebSocketChannel::TakeNext(std::string* out, bool* open) {
  std::lock_guard<std::mutex> lock(mu_);
  out->clear();
  queued_bytes_ -= in_flight_;
  in_flight_ = 0;
  *open = !closed_;
  // A dropped client gets nothing more, not even what was queued.
  if (dropped_ || queued_.empty()) return false;
  *out = std::move(queued_.front());
  queued_.pop_front();
  in_flight_ = out->size();
  return true;
}

void WebSocketChannel::Finish() {
  std::function<void()> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    if (finished_) return;
    finished_ = true;
    done = on_close;
    wake_ = nullptr;
  }
  if (done) done();
}

// --- Server -----------------------------------------------------------------

namespace {

const char* Reason(int status) {
  return http::obsolete_reason(static_cast<http::status>(status)).data();
}

// A connection the server closes at Stop: an HTTP session or a WebSocket.
class Conn {
 public:
  virtual ~Conn() = default;
  virtual void Close() = 0;
};

// What a connection is read and written through: the TCP stream itself, or
// TLS over it. Sessions and WebSockets are templates on it; the TCP stream
// underneath (timeouts, close) is beast::get_lowest_layer of either.
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
template <class Stream>
constexpr bool kIsTls = std::is_same_v<Stream, TlsStream>;

// The server's TLS context from PEM text: TLS 1.2 is the oldest version
// offered, and an encrypted key is refused rather than prompted for.
Status MakeTlsContext(const TlsCredentials& tls, std::optional<ssl::context>* out, bool* bad_key) {
  ssl::context ctx(ssl::context::tls_server);
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  ctx.set_password_callback([](std::size_t, ssl::context::password_purpose) { return ""; });
  beast::error_code ec;
  ctx.use_certificate_chain(net::buffer(tls.cert_pem), ec);
  if (ec) {
    *bad_key = false;
    return Status::InvalidArgument(
        "the TLS certificate does not load as a PEM certificate chain (" + ec.message() + ")");
  }
  *bad_key = true;
  ctx.use_private_key(net::buffer(tls.key_pem), ssl::context::pem, ec);
  // OpenSSL checks the key against the certificate as it loads it.
  if ((ec && ERR_GET_REASON(static_cast<unsigned long>(ec.value())) ==
                 X509_R_KEY_VALUES_MISMATCH) ||
      (!ec && SSL_CTX_check_private_key(ctx.native_handle()) != 1)) {
    return Status::InvalidArgument("the TLS key is not the key of the TLS certificate");
  }
  if (ec) {
    return Status::InvalidArgument(
        "the TLS key does not load as an unencrypted PEM private key (" + ec.message() + ")");
  }
  out->emplace(std::move(ctx));
  return Status::OK();
}

}  // namespace

Status CheckTlsCredentials(const TlsCredentials& tls, bool* bad_key) {
  std::optional<ssl::context> unused;
  return MakeTlsContext(tls, &unused, bad_key);
}

struct HttpServer::Impl {
  HttpServerOptions options;
  HttpHandler handler;
  net::io_context ioc;
  // Keeps the I/O threads running while no operation is pending: once the
  // acceptor closes at Stop, requests still in the applier have no pending
  // socket operation, and their replies must still find a running thread.
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::optional<tcp::acceptor> acceptor;
  std::vector<std::thread> threads;
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> tls_failures{0};
  std::optional<ssl::context> tls;  // set: every connection speaks TLS
  std::atomic<int> in_flight{0};
  std::atomic<bool> stopping{false};
  uint16_t port = 0;
  std::mutex sessions_mu;
  std::set<std::weak_ptr<Conn>, std::owner_less<std::weak_ptr<Conn>>> sessions;

  explicit Impl(HttpServerOptions o, HttpHandler h)
      : options(std::move(o)), handler(std::move(h)), ioc(options.threads) {}
  void Accept();
  template <class S>
  void Begin(std::shared_ptr<S> session) {
    Track(session);
    session->Start();
  }
  void Track(const std::shared_ptr<Conn>& c) {
    std::lock_guard<std::mutex> lock(sessions_mu);
    for (auto it = sessions.begin(); it != sessions.end();) {
      it = it->expired() ? sessions.erase(it) : std::next(it);
    }
    sessions.insert(c);
  }
};

namespace {

namespace websocket = beast::websocket;

// A WebSocket after the upgrade: one read always pending (it keeps the
// session alive and notices a client that leaves), one write at a time
// from the channel's queue.
template <class Stream>
class WsSession : public Conn, public std::enable_shared_from_this<WsSession<Stream>> {
 public:
  using std::enable_shared_from_this<WsSession>::shared_from_this;

  WsSession(Stream stream, std::shared_ptr<WebSocketChannel> channel, HttpServer::Impl* server)
      : ws_(std::move(stream)), channel_(std::move(channel)), server_(server) {}

  void Start(http::request<http::string_body> req) {
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(10);
    t.idle_timeout = std::chrono::seconds(60);  // pinged when idle; gone after two silent halves
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.read_message_max(server_->options.body_limit);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "meridiand"); }));
    auto req_ptr = std::make_shared<http::request<http::string_body>>(std::move(req));
    ws_.async_accept(*req_ptr, [self = shared_from_this(), req_ptr](beast::error_code ec) {
      if (ec) return self->Finish();
      std::weak_ptr<WsSession> weak = self;
      self->channel_->SetWaker([weak] {
        if (auto s = weak.lock()) {
          // A dropped client is cut off at once, even with a write stuck
          // on its full socket.
          net::post(s->ws_.get_executor(), [s] {
            if (s->channel_->dropped()) return s->Finish();
            s->Pump();
          });
        }
      });
      self->DoRead();
      self->Pump();
    });
  }

  void Close() override {
    net::post(ws_.get_executor(), [self = shared_from_this()] {
      self->channel_->Close();
      self->Finish();
    });
  }

 private:
  void DoRead() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->Finish();
      std::string message = beast::buffers_to_string(self->buffer_.data());
      self->buffer_.consume(self->buffer_.size());
      if (self->channel_->on_message && !self->channel_->closed()) {
        self->channel_->on_message(std::move(message));
      }
      self->DoRead();
    });
  }

  void Pump() {
    if (writing_ || finished_) return;
    bool open = true;
    if (!channel_->TakeNext(&out_, &open)) {
      if (!open || server_->stopping) {
        if (channel_->dropped()) return Finish();  // too slow: no goodbye
        writing_ = true;
        ws_.async_close(websocket::close_code::normal,
                        [self = shared_from_this()](beast::error_code) { self->Finish(); });
      }
      return;
    }
    writing_ = true;
    ws_.text(true);
    ws_.async_write(net::buffer(out_),
                    [self = shared_from_this()](beast::error_code ec, std::size_t) {
                      self->writing_ = false;
                      if (ec) return self->Finish();
                      self->Pump();
                    });
  }

  void Finish() {
    if (finished_) return;
    finished_ = true;
    channel_->Close();
    beast::error_code ec;
    auto& sock = beast::get_lowest_layer(ws_).socket();
    sock.shutdown(tcp::socket::shutdown_both, ec);
    sock.close(ec);
    channel_->Finish();
  }

  websocket::stream<Stream> ws_;
  std::shared_ptr<WebSocketChannel> channel_;
  HttpServer::Impl* server_;
  beast::flat_buffer buffer_;
  std::string out_;  // the message being written
  bool writing_ = false;
  bool finished_ = false;
};

template <class Stream>
class Session : public Conn, public std::enable_shared_from_this<Session<Stream>> {
 public:
  using std::enable_shared_from_this<Session>::shared_from_this;

  Session(tcp::socket socket, HttpServer::Impl* server)
      : stream_(MakeStream(std::move(socket), server)),
        exec_(stream_.get_executor()),
        server_(server) {}

  void Start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if constexpr (kIsTls<Stream>) {
        self->Handshake();
      } else {
        self->DoRead();
      }
    });
  }

  void Close() override {
    // exec_, not stream_'s: a WebSocket may have taken the stream.
    net::post(exec_, [self = shared_from_this()] {
      if (self->closed_) return;
      if (self->events_) self->events_->Close();
      beast::error_code ec;
      self->lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
      self->lowest().close();
    });
  }

 private:
  static Stream MakeStream(tcp::socket socket, HttpServer::Impl* server) {
    if constexpr (kIsTls<Stream>) {
      return Stream(std::move(socket), *server->tls);
    } else {
      return Stream(std::move(socket));
    }
  }

  // The TCP stream under stream_: its timeouts and its socket.
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  // TLS first, within the time a request has to arrive. A client that
  // does not speak TLS (plain HTTP), offers only versions older than 1.2,
  // or stalls is closed here; nothing is answered in plaintext.
  void Handshake() {
    lowest().expires_after(server_->options.read_timeout);
    stream_.async_handshake(ssl::stream_base::server,
                            [self = shared_from_this()](beast::error_code ec) {
                              if (ec) {
                                self->server_->tls_failures++;
                                if (self->server_->options.on_tls_failure) {
                                  self->server_->options.on_tls_failure();
                                }
                                return self->DoClose();
                              }
                              self->DoRead();
                            });
  }

  void DoRead() {
    if (server_->stopping) return DoClose();
    parser_.emplace();
    parser_->body_limit(server_->options.body_limit);
    parser_->header_limit(server_->options.header_limit);
    // The first byte of a keep-alive request may take up to idle_timeout;
    // a stalled half request is cut off after read_timeout.
    lowest().expires_after(first_request_ ? server_->options.read_timeout
                                          : server_->options.idle_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t) {
    first_request_ = false;
    if (ec == http::error::end_of_stream || ec == net::error::eof ||
        ec == beast::error::timeout || ec == net::error::operation_aborted ||
        ec == net::error::connection_reset || ec == ssl::error::stream_truncated) {
      return DoClose();
    }
    if (ec) {
      HttpResponse r;
      if (ec == http::error::body_limit) {
        r.status = 413;
        r.body = R"({"error":"body_too_large","message":"request body exceeds )" +
                 std::to_string(server_->options.body_limit) + R"( bytes"})";
      } else if (ec == http::error::header_limit) {
        r.status = 431;
        r.body = R"({"error":"headers_too_large","message":"request line and headers exceed )" +
                 std::to_string(server_->options.header_limit) + R"( bytes"})";
      } else {
        r.status = 400;
        r.body = R"({"error":"bad_request","message":"malformed HTTP request"})";
      }
      keep_alive_ = false;
      return Write(std::move(r));
    }
    http::request<http::string_body> req = parser_->release();
    keep_alive_ = req.keep_alive();
    if (req.target().size() > server_->options.max_target_bytes) {
      HttpResponse r;
      r.status = 414;
      r.body = R"({"error":"uri_too_long","message":"request target exceeds )" +
               std::to_string(server_->options.max_target_bytes) + R"( bytes"})";
      keep_alive_ = false;
      return Write(std::move(r));
    }
    HttpRequest out;
    out.websocket_upgrade = websocket::is_upgrade(req);
    if (out.websocket_upgrade) upgrade_ = req;  // the handshake answers it
    out.method = std::string(req.method_string());
    out.target = std::string(req.target());
    out.body = std::move(req.body());
    for (const auto& field : req) {
      std::string name(field.name_string());
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      out.headers.emplace_back(std::move(name), std::string(field.value()));
    }
    // No timeout while the handler works; the handler bounds its own waits.
    lowest().expires_never();
    server_->in_flight++;
    auto self = shared_from_this();
    server_->handler(std::move(out), [self](HttpResponse r) {
      net::post(self->exec_, [self, r = std::move(r)]() mutable {
        self->server_->in_flight--;
        self->Write(std::move(r));
      });
    });
  }

  void Write(HttpResponse r) {
    if (r.stream) return StartStream(std::move(r));
    if (r.websocket) {
      if (!upgrade_) {
        r.websocket->Finish();
        r.status = 426;
        r.content_type = "application/json";
        r.headers.emplace_back("Upgrade", "websocket");
        r.body = R"({"error":"upgrade_required","message":"this route is a WebSocket"})";
        keep_alive_ = false;
      } else {
        closed_ = true;  // the WebSocket owns the socket now
        auto ws = std::make_shared<WsSession<Stream>>(std::move(stream_), std::move(r.websocket),
                                                      server_);
        server_->Track(ws);
        ws->Start(std::move(*upgrade_));
        upgrade_.reset();
        return;
      }
    }
    upgrade_.reset();
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(static_cast<unsigned>(r.status));
    res->set(http::field::server, "meridiand");
    if (!r.content_type.empty()) res->set(http::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) res->set(name, value);
    res->body() = std::move(r.body);
    res->keep_alive(keep_alive_ && !server_->stopping);
    res->prepare_payload();
    lowest().expires_after(server_->options.idle_timeout);
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
                        if (ec || !res->keep_alive()) return self->DoClose();
                        self->DoRead();
                      });
  }

  void StartStream(HttpResponse r) {
    events_ = r.stream;
    std::string head = "HTTP/1.1 " + std::to_string(r.status) + " " + Reason(r.status) + "\r\n";
    head += "Content-Type: " + (r.content_type.empty() ? std::string("text/event-stream")
                                                        : r.content_type) + "\r\n";
    head += "Cache-Control: no-cache\r\nConnection: close\r\n";
    chunked_ = r.chunked;
    if (chunked_) head += "Transfer-Encoding: chunked\r\n";
    for (const auto& [name, value] : r.headers) head += name + ": " + value + "\r\n";
    head += "\r\n";
    std::weak_ptr<Session> weak = shared_from_this();
    events_->SetWaker([weak] {
      if (auto self = weak.lock()) {
        net::post(self->stream_.get_executor(), [self] { self->PumpEvents(); });
      }
    });
    pending_ = std::move(head);
    writing_ = false;
    // The read below is pending from now on, so the write timeouts
    // PumpEvents sets never reach it: it waits as long as the stream lasts.
    lowest().expires_never();
    WatchPeer();
    PumpEvents();
  }

  // Between events no write is pending, and the waker holds the session
  // only weakly: without a pending read the session would be destroyed
  // (closing the stream) right after the first write. The read also
  // notices a client that leaves. Whatever the client sends is ignored.
  // (Through stream_, so that over TLS the bytes are decrypted: one read
  // and one write in flight at once is what both stream types allow.)
  void WatchPeer() {
    stream_.async_read_some(
        net::buffer(peer_buf_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
          if (ec) {
            self->events_->Close();
            return self->DoClose();
          }
          self->WatchPeer();
        });
  }

  // The three buffers keep their capacity from write to write (TakeAll
  // swaps taken_ with the stream's queue, handing it back an emptied one),
  // so a busy stream does not allocate and free a large string per write.
  void PumpEvents() {
    if (writing_) return;
    bool open = events_->TakeAll(&taken_);
    if (chunked_) {
      if (!taken_.empty()) {
        char size[32];
        std::snprintf(size, sizeof size, "%zx\r\n", taken_.size());
        pending_ += size;
        pending_ += taken_;
        pending_ += "\r\n";
      }
      // A complete stream ends with the last chunk; one cut off does not.
      if (!open && !last_chunk_sent_ && events_->ended()) {
        pending_ += "0\r\n\r\n";
        last_chunk_sent_ = true;
      }
    } else if (pending_.empty()) {
      pending_.swap(taken_);
    } else {
      pending_ += taken_;
    }
    if (pending_.empty()) {
      if (!open || server_->stopping) DoClose();
      return;
    }
    writing_ = true;
    writing_buf_.swap(pending_);
    pending_.clear();
    lowest().expires_after(std::chrono::seconds(30));
    // writing_buf_ is not touched again until this write completes.
    net::async_write(stream_, net::buffer(writing_buf_),
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       self->writing_ = false;
                       if (ec) {
                         self->events_->Close();
                         return self->DoClose();
                       }
                       self->lowest().expires_never();
                       self->PumpEvents();
                     });
  }

  // Over TLS too the TCP connection is just closed, without waiting for the
  // client's close_notify: every response the server sends is delimited
  // (Content-Length, the last chunk) or, for an event stream, ends only
  // when the connection does anyway.
  void DoClose() {
    if (closed_) return;
    closed_ = true;
    if (events_) events_->Close();
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    lowest().close();
  }

  Stream stream_;
  net::any_io_executor exec_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::request<http::string_body>> upgrade_;  // a WebSocket upgrade in the handler
  HttpServer::Impl* server_;
  bool keep_alive_ = true;
  bool first_request_ = true;
  std::shared_ptr<EventStream> events_;
  bool chunked_ = false;          // HttpResponse::chunked
  bool last_chunk_sent_ = false;  // a chunked stream's "0\r\n\r\n" is queued
  std::string pending_;      // the stream head, then events not yet written
  std::string taken_;        // scratch for EventStream::TakeAll
  std::string writing_buf_;  // what the write in flight sends
  bool writing_ = false;
  bool closed_ = false;  // DoClose ran
  char peer_buf_[512];
};

}  // namespace

void HttpServer::Impl::Accept() {
  acceptor->async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || stopping) return;
    } else {
      accepted++;
      socket.set_option(tcp::no_delay(true), ec);
      if (tls) {
        Begin(std::make_shared<Session<TlsStream>>(std::move(socket), this));
      } else {
        Begin(std::make_shared<Session<PlainStream>>(std::move(socket), this));
      }
    }
    if (!stopping) Accept();
  });
}

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

HttpServer::~HttpServer() { Stop(std::chrono::milliseconds(0)); }

Status HttpServer::Start() {
  if (impl_->options.tls_enabled()) {
    bool bad_key = false;
    MERIDIAN_RETURN_IF_ERROR(MakeTlsContext(impl_->options.tls, &impl_->tls, &bad_key));
  }
  beast::error_code ec;
  auto address = net::ip::make_address(impl_->options.host, ec);
  if (ec) return Status::InvalidArgument("bad HTTP address '" + impl_->options.host + "'");
  tcp::endpoint ep(address, impl_->options.port);
  impl_->acceptor.emplace(impl_->ioc);
  auto& acc = *impl_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::IOError("cannot listen on " + impl_->options.host + ":" +
                           std::to_string(impl_->options.port) + ": " + ec.message());
  }
  impl_->port = acc.local_endpoint().port();
  impl_->work.emplace(impl_->ioc.get_executor());
  impl_->Accept();
  for (int i = 0; i < std::max(1, impl_->options.threads); ++i) {
    impl_->threads.emplace_back([this] { impl_->ioc.run(); });
  }
  return Status::OK();
}

uint16_t HttpServer::port() const { return impl_->port; }

uint64_t HttpServer::connections_accepted() const { return impl_->accepted; }

uint64_t HttpServer::tls_handshake_failures() const { return impl_->tls_failures; }

void HttpServer::Stop(std::chrono::milliseconds grace) {
  if (impl_->threads.empty()) return;
  impl_->stopping = true;
  net::post(impl_->ioc, [this] {
    beast::error_code ec;
    if (impl_->acceptor) impl_->acceptor->close(ec);
  });
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (impl_->in_flight > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  {
    std::lock_guard<std::mutex> lock(impl_->sessions_mu);
    for (const auto& weak : impl_->sessions) {
      if (auto s = weak.lock()) s->Close();
    }
  }
  // Let the closes and final writes run, then stop.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  impl_->work.reset();
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

// --- URL helpers ------------------------------------------------------------

bool PercentDecode(std::string_view in, bool plus_is_space, std::string* out) {
  out->clear();
  out->reserve(in.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi << 4 | lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return true;
}

bool ParseQuery(std::string_view query, std::vector<std::pair<std::string, std::string>>* out) {
  out->clear();
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t end = query.find('&', pos);
    if (end == std::string_view::npos) end = query.size();
    std::string_view item = query.substr(pos, end - pos);
    if (!item.empty()) {
      size_t eq = item.find('=');
      std::string k, v;
      if (!PercentDecode(item.substr(0, eq), true, &k)) return false;
      if (eq != std::string_view::npos && !PercentDecode(item.substr(eq + 1), true, &v)) {
        return false;
      }
      out->emplace_back(std::move(k), std::move(v));
    }
    pos = end + 1;
  }
  return true;
}

}  // namespace meridian::node
