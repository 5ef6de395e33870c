// TLS on the API (README "Security") on a real meridiand with the committed
// development certificates (regions/secure-local/): curl --cacert and
// HttpClient over https (plain requests, an event stream, a chunked backup
// download, the text WebSocket); a client without the CA is refused; a
// plaintext client on the TLS port is closed promptly while HTTPS clients
// keep being served; TLS 1.1 is refused and 1.2 works; meridianctl with
// --cacert, and `up --config` with the topology's tls_ca; a bad certificate
// or key stops the node at its topology line; /v1/status says api_tls.
#define BOOST_TEST_MODULE tls
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/test/unit_test.hpp>
#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "node/http_client.h"
#include "tests/node/node_process.h"
#include "tests/support/loopback.h"
#include "tests/support/temp_dir.h"

#ifndef MERIDIAN_SECURE_LOCAL
#error "MERIDIAN_SECURE_LOCAL must name regions/secure-local (set by tests/CMakeLists.txt)"
#endif

using meridian::node::ClientResponse;
using meridian::node::HttpClient;
using meridian::testing::CtlResult;
using meridian::testing::NodeOptions;
using meridian::testing::NodeProcess;
using meridian::testing::RawExchange;
using meridian::testing::RawResult;
using meridian::testing::RunProgram;
using meridian::testing::TempDir;
using nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace beast = boost::beast;
namespace net = boost::asio;
namespace ssl = net::ssl;
namespace websocket = beast::websocket;

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  BOOST_REQUIRE_MESSAGE(in.good(), "cannot read " << path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A committed development file (regions/secure-local/NAME).
std::string DevFile(const std::string& name) {
  return ReadFile(std::string(MERIDIAN_SECURE_LOCAL) + "/" + name);
}

// A node with the us-east-1 development certificate and key (the key
// written 0600: git does not keep the mode) and the CA next to its
// topology. `cert` and `key` replace the files' contents when not empty.
NodeOptions TlsOptions(const std::string& cert = "", const std::string& key = "",
                       mode_t key_mode = 0600) {
  NodeOptions o;
  o.node_lines = {"tls_cert = \"node.pem\"", "tls_key = \"node-key.pem\""};
  o.files = {{"node.pem", cert.empty() ? DevFile("us-east-1.pem") : cert, 0644},
             {"node-key.pem", key.empty() ? DevFile("us-east-1-key.pem") : key, key_mode},
             {"ca.pem", DevFile("ca.pem"), 0644}};
  o.tls_ca = "ca.pem";
  return o;
}

// The 1-based line of the topology file that starts with `prefix` (after
// indentation); 0 when none does.
int LineOf(const std::string& topology, const std::string& prefix) {
  std::istringstream in(ReadFile(topology));
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(' ') != std::string::npos &&
        line.compare(line.find_first_not_of(' '), prefix.size(), prefix) == 0) {
      return n;
    }
  }
  return 0;
}

CtlResult Run(const std::string& program, const NodeProcess& node,
              const std::vector<std::string>& args) {
  return RunProgram(program, node.dir(), args, std::chrono::seconds(20));
}

CtlResult Curl(const NodeProcess& node, std::vector<std::string> args) {
  args.insert(args.begin(), {"--silent", "--show-error", "--max-time", "10"});
  return Run("/usr/bin/curl", node, args);
}

// A TCP connection to 127.0.0.1:port that sends `bytes` (maybe none) and
// then only waits; -1 when it cannot connect.
int OpenPlain(uint16_t port, const std::string& bytes) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      (!bytes.empty() && send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) < 0)) {
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

// Waits up to `timeout` for the server to close `fd` (EOF or reset); what
// arrived before goes to *got.
bool ClosedByPeer(int fd, milliseconds timeout, std::string* got) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return true;
    got->append(buf, static_cast<size_t>(n));
  }
}

// Milliseconds since `start`.
long long MsSince(Clock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
}

const std::string kPlainRequest = "GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

struct TlsFixture {
  TlsFixture() : node(TlsOptions()) {
    BOOST_REQUIRE_MESSAGE(node.Start(), "meridiand did not start with TLS");
    client = node.Client();
  }
  std::string Ca() const { return node.dir() + "/ca.pem"; }
  std::string Url(const std::string& path) const { return node.url() + path; }

  NodeProcess node;
  std::unique_ptr<HttpClient> client;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(tls, TlsFixture)

BOOST_AUTO_TEST_CASE(status_and_log_say_tls) {
  BOOST_TEST(node.url().rfind("https://", 0) == 0u);
  ClientResponse r;
  BOOST_REQUIRE(client->Request("GET", "/v1/status", "", {}, &r).ok());
  BOOST_REQUIRE(r.status == 200);
  BOOST_TEST(json::parse(r.body)["api_tls"] == true);
  const std::string log = node.Stderr();
  BOOST_TEST(log.find("API over TLS (https, TLS 1.2 or newer) with certificate node.pem") !=
             std::string::npos);
  BOOST_TEST(log.find("serving https://127.0.0.1:") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(curl_with_the_ca_works_and_without_it_is_refused) {
  CtlResult health = Curl(node, {"--cacert", Ca(), Url("/v1/health")});
  BOOST_TEST(health.exit_code == 0, health.Describe());
  BOOST_TEST(json::parse(health.out, nullptr, false)["writable"] == true, health.Describe());

  // A write and a read back over curl; localhost matches the DNS name.
  CtlResult put = Curl(node, {"--cacert", Ca(), "-X", "PUT", "-H", "Content-Type: application/json",
                              "--data", "\"over tls\"", "--fail", Url("/v1/kv/greeting")});
  BOOST_TEST(put.exit_code == 0, put.Describe());
  CtlResult get = Curl(node, {"--cacert", Ca(), "--fail",
                              "https://localhost:" + std::to_string(node.port()) +
                                  "/v1/kv/greeting"});
  BOOST_TEST(get.exit_code == 0, get.Describe());
  BOOST_TEST(json::parse(get.out, nullptr, false)["value"] == "over tls", get.Describe());

  // Without the development CA the certificate does not verify (curl's 60).
  CtlResult no_ca = Curl(node, {Url("/v1/health")});
  BOOST_TEST(no_ca.exit_code == 60, no_ca.Describe());
  BOOST_TEST(no_ca.out.empty());
  // Nor for HttpClient with the system's CAs.
  std::unique_ptr<HttpClient> system_ca;
  BOOST_REQUIRE(HttpClient::Create(node.url(), &system_ca).ok());
  ClientResponse r;
  auto st = system_ca->Request("GET", "/v1/health", "", {}, &r);
  BOOST_TEST(!st.ok());
  BOOST_TEST(st.message().find("TLS handshake") != std::string::npos, st.ToString());
}

// The certificate names 127.0.0.1 and localhost only.
BOOST_AUTO_TEST_CASE(a_host_the_certificate_does_not_name_is_refused) {
  CtlResult other = Curl(node, {"--cacert", Ca(), "--resolve",
                                "node.example:" + std::to_string(node.port()) + ":127.0.0.1",
                                "https://node.example:" + std::to_string(node.port()) +
                                    "/v1/health"});
  BOOST_TEST(other.exit_code == 60, other.Describe());
}

BOOST_AUTO_TEST_CASE(plaintext_clients_are_closed_while_https_is_served) {
  // One plaintext connection that sent a request and idles, one that
  // sent nothing (it stalls the handshake: cut off after the server's
  // 10 s read timeout), and several plaintext attempts, while HTTPS
  // requests on fresh connections keep being answered promptly.
  int idle_request = OpenPlain(node.port(), kPlainRequest);
  int silent = OpenPlain(node.port(), "");
  BOOST_REQUIRE(idle_request >= 0);
  BOOST_REQUIRE(silent >= 0);
  for (int i = 0; i < 5; ++i) {
    const auto start = Clock::now();
    RawResult plain = RawExchange(node.port(), kPlainRequest, std::chrono::seconds(5));
    BOOST_TEST(plain.connected);
    BOOST_TEST(plain.closed_by_peer, "the TLS port did not close a plaintext request");
    BOOST_TEST(plain.status != 200);
    BOOST_TEST(plain.response.find("HTTP/1.1") == std::string::npos, plain.response);
    BOOST_TEST(MsSince(start) < 2000);

    const auto https_start = Clock::now();
    std::unique_ptr<HttpClient> fresh = node.Client();
    ClientResponse r;
    auto st = fresh->Request("GET", "/v1/health", "", {}, &r);
    BOOST_TEST(st.ok(), st.ToString());
    BOOST_TEST(r.status == 200);
    BOOST_TEST(MsSince(https_start) < 2000);
  }
  // The kept-alive HTTPS connection of the fixture is served too.
  ClientResponse r;
  BOOST_TEST(client->Request("GET", "/v1/health", "", {}, &r).ok());
  BOOST_TEST(r.status == 200);

  // An http:// client on the TLS port gets an error, not a hang.
  std::unique_ptr<HttpClient> plain_client;
  BOOST_REQUIRE(HttpClient::Create("http://127.0.0.1:" + std::to_string(node.port()),
                                   &plain_client)
                    .ok());
  plain_client->set_timeout(std::chrono::seconds(5));
  const auto start = Clock::now();
  BOOST_TEST(!plain_client->Request("GET", "/v1/health", "", {}, &r).ok());
  BOOST_TEST(MsSince(start) < 2000);

  std::string got;
  BOOST_TEST(ClosedByPeer(idle_request, std::chrono::seconds(2), &got));
  BOOST_TEST(got.find("HTTP/1.1") == std::string::npos, got);
  BOOST_TEST(ClosedByPeer(silent, std::chrono::seconds(15), &got),
             "a connection that never sent a TLS hello was not closed");
  close(idle_request);
  close(silent);
  BOOST_TEST(client->Request("GET", "/v1/health", "", {}, &r).ok());
  // Each plaintext connection was counted: 5 attempts, the idle request,
  // the silent one and the http:// client's (it may have tried twice).
  // A failure is counted as the server gives the connection up, which may
  // come a moment after the client saw it closed: read until 8 (bounded).
  const std::string name = "\nmeridian_http_tls_handshake_failures_total ";
  int failures = 0;
  for (int k = 0; k < 100 && failures < 8; ++k) {
    if (k > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    BOOST_REQUIRE(client->Request("GET", "/metrics", "", {}, &r).ok());
    const size_t at = r.body.find(name);
    BOOST_REQUIRE_MESSAGE(at != std::string::npos, r.body);
    failures = std::stoi(r.body.substr(at + name.size()));
  }
  BOOST_TEST(failures >= 8);
  BOOST_TEST(failures <= 9);
}

BOOST_AUTO_TEST_CASE(tls_1_1_is_refused_and_1_2_works) {
  const std::string connect = "127.0.0.1:" + std::to_string(node.port());
  // SECLEVEL=0: the client's OpenSSL would not offer TLS 1.1 otherwise, and
  // it must be the server that refuses it.
  CtlResult old = Run("/usr/bin/openssl", node,
                      {"s_client", "-connect", connect, "-CAfile", Ca(),
                       "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"});
  BOOST_TEST(old.exit_code != 0, old.Describe());
  // The server answers the hello with a protocol_version alert (70).
  BOOST_TEST(old.err.find("alert protocol version") != std::string::npos, old.Describe());
  BOOST_TEST(old.out.find("Cipher is (NONE)") != std::string::npos, old.Describe());
  CtlResult curl_old = Curl(node, {"--cacert", Ca(), "--tlsv1.1", "--tls-max", "1.1", "--ciphers",
                                   "DEFAULT@SECLEVEL=0", Url("/v1/health")});
  BOOST_TEST(curl_old.exit_code != 0, curl_old.Describe());
  BOOST_TEST(curl_old.out.empty());

  CtlResult v12 = Run("/usr/bin/openssl", node,
                      {"s_client", "-connect", connect, "-CAfile", Ca(),
                       "-tls1_2", "-verify_return_error"});
  BOOST_TEST(v12.exit_code == 0, v12.Describe());
  BOOST_TEST(v12.out.find("Verify return code: 0 (ok)") != std::string::npos, v12.Describe());
  CtlResult curl_12 = Curl(node, {"--cacert", Ca(), "--tlsv1.2", "--tls-max", "1.2", "--fail",
                                  Url("/v1/health")});
  BOOST_TEST(curl_12.exit_code == 0, curl_12.Describe());
}

BOOST_AUTO_TEST_CASE(event_streams_and_downloads_work_over_tls) {
  std::vector<std::string> events;
  meridian::Status watch_status;
  std::atomic<bool> watched{false};
  std::unique_ptr<HttpClient> watcher = node.Client();
  std::thread t([&] {
    watch_status = watcher->ReadEvents("/v1/watch?prefix=w%2F", 1, std::chrono::seconds(10),
                                       &events);
    watched = true;
  });
  struct Joiner {
    std::thread& t;
    ~Joiner() {
      if (t.joinable()) t.join();
    }
  } joiner{t};
  // Write until the watcher has its event (it may subscribe after a write).
  ClientResponse r;
  const auto deadline = Clock::now() + std::chrono::seconds(8);
  for (int i = 0; !watched && Clock::now() < deadline; ++i) {
    BOOST_REQUIRE(client->Request("PUT", "/v1/kv/w/" + std::to_string(i), "1",
                                  {{"Content-Type", "application/json"}}, &r)
                      .ok());
    std::this_thread::sleep_for(milliseconds(100));
  }
  t.join();
  BOOST_TEST(watch_status.ok(), watch_status.ToString());
  BOOST_TEST(events.size() == 1u);

  // The chunked backup stream, whole (its last chunk arrives over TLS).
  std::string backup;
  auto st = client->Download(
      "/v1/admin/backup",
      [&](std::string_view piece) {
        backup.append(piece);
        return meridian::Status::OK();
      },
      std::chrono::seconds(10), &r);
  BOOST_TEST(st.ok(), st.ToString());
  BOOST_TEST(r.status == 200, r.body);
  BOOST_TEST(!backup.empty());
}

BOOST_AUTO_TEST_CASE(the_text_websocket_works_over_tls) {
  net::io_context ioc;
  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file(Ca());
  ctx.set_verify_mode(ssl::verify_peer);
  websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws(ioc, ctx);
  ws.next_layer().set_verify_callback(ssl::host_name_verification("127.0.0.1"));
  beast::error_code ec = net::error::would_block;
  auto run = [&] {
    ioc.restart();
    ioc.run_for(std::chrono::seconds(5));
  };
  net::ip::tcp::endpoint ep(net::ip::make_address("127.0.0.1"), node.port());
  beast::get_lowest_layer(ws).async_connect(ep, [&](beast::error_code e) { ec = e; });
  run();
  BOOST_REQUIRE_MESSAGE(!ec, "connect: " << ec.message());
  ec = net::error::would_block;
  ws.next_layer().async_handshake(ssl::stream_base::client, [&](beast::error_code e) { ec = e; });
  run();
  BOOST_REQUIRE_MESSAGE(!ec, "TLS handshake: " << ec.message());
  ec = net::error::would_block;
  ws.async_handshake("127.0.0.1:" + std::to_string(node.port()), "/v1/stream/text/doc",
                     [&](beast::error_code e) { ec = e; });
  run();
  BOOST_REQUIRE_MESSAGE(!ec, "WebSocket handshake: " << ec.message());
  beast::flat_buffer buf;
  ec = net::error::would_block;
  ws.async_read(buf, [&](beast::error_code e, std::size_t) { ec = e; });
  run();
  BOOST_REQUIRE_MESSAGE(!ec, "read: " << ec.message());
  json hello = json::parse(beast::buffers_to_string(buf.data()), nullptr, false);
  BOOST_TEST(hello["type"] == "hello", hello.dump());
  BOOST_TEST(hello["key"] == "doc", hello.dump());
  ec = net::error::would_block;
  ws.async_close(websocket::close_code::normal, [&](beast::error_code e) { ec = e; });
  run();
}

// SIGTERM closes TLS connections as it closes plain ones: one kept alive, an
// event stream, one in its handshake; the node exits 0 in time.
BOOST_AUTO_TEST_CASE(stops_cleanly_with_tls_connections_open) {
  ClientResponse r;
  BOOST_REQUIRE(client->Request("GET", "/v1/health", "", {}, &r).ok());
  int silent = OpenPlain(node.port(), "");
  BOOST_REQUIRE(silent >= 0);
  std::vector<std::string> events;
  std::unique_ptr<HttpClient> watcher = node.Client();
  std::thread t([&] {
    (void)watcher->ReadEvents("/v1/watch?prefix=", 1000, std::chrono::seconds(20), &events);
  });
  struct Joiner {
    std::thread& t;
    ~Joiner() {
      if (t.joinable()) t.join();
    }
  } joiner{t};
  std::this_thread::sleep_for(milliseconds(300));
  const auto start = Clock::now();
  BOOST_TEST(node.Stop(std::chrono::seconds(10)));
  BOOST_TEST(MsSince(start) < 8000);
  std::string got;
  BOOST_TEST(ClosedByPeer(silent, std::chrono::seconds(2), &got));
  close(silent);
  t.join();
  BOOST_TEST(MsSince(start) < 10000, "the event stream outlived the node");
}

BOOST_AUTO_TEST_CASE(meridianctl_uses_cacert) {
  CtlResult ok = Run(MERIDIAN_MERIDIANCTL, node,
                     {"--url", node.url(), "--cacert", Ca(), "--json",
                      "status"});
  BOOST_TEST(ok.exit_code == 0, ok.Describe());
  BOOST_TEST(json::parse(ok.out, nullptr, false)["api_tls"] == true, ok.Describe());
  CtlResult put = Run(MERIDIAN_MERIDIANCTL, node,
                      {"--url", node.url(), "--cacert", Ca(), "put", "k",
                       "\"v\""});
  BOOST_TEST(put.exit_code == 0, put.Describe());
  // Without the CA: the system's CAs do not know the development CA.
  ::unsetenv("MERIDIAN_CACERT");
  CtlResult no_ca = Run(MERIDIAN_MERIDIANCTL, node, {"--url", node.url(), "status"});
  BOOST_TEST(no_ca.exit_code == 1, no_ca.Describe());
  BOOST_TEST(no_ca.err.find("certificate verify failed") != std::string::npos, no_ca.Describe());
  CtlResult bad_ca = Run(MERIDIAN_MERIDIANCTL, node,
                         {"--url", node.url(), "--cacert",
                          node.dir() + "/missing.pem", "status"});
  BOOST_TEST(bad_ca.exit_code == 2, bad_ca.Describe());
  BOOST_TEST(bad_ca.err.find("cannot load the CA file") != std::string::npos, bad_ca.Describe());
  // $MERIDIAN_CACERT stands in for --cacert.
  ::setenv("MERIDIAN_CACERT", Ca().c_str(), 1);
  CtlResult env = Run(MERIDIAN_MERIDIANCTL, node, {"--url", node.url(), "health"});
  ::unsetenv("MERIDIAN_CACERT");
  BOOST_TEST(env.exit_code == 0, env.Describe());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(without_tls)

BOOST_AUTO_TEST_CASE(a_node_without_tls_files_speaks_plain_http) {
  NodeProcess node;
  BOOST_REQUIRE(node.Start());
  ClientResponse r;
  BOOST_REQUIRE(node.Client()->Request("GET", "/v1/status", "", {}, &r).ok());
  BOOST_TEST(json::parse(r.body)["api_tls"] == false);
  BOOST_TEST(node.Stderr().find("no tls_cert: the API is plain http (development)") !=
             std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(refused_at_start)

namespace {

// Starts a node that must refuse to start; returns its stderr.
std::string Refused(NodeOptions options) {
  options.start_timeout = std::chrono::seconds(5);
  NodeProcess node(std::move(options));
  BOOST_TEST(!node.Start(), "meridiand started with bad TLS files");
  return node.Stderr();
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_bad_certificate_or_key_is_named_at_its_line) {
  {
    NodeOptions o = TlsOptions("not a certificate\n");
    NodeProcess probe(o);  // for the file's lines only
    const std::string err = Refused(o);
    BOOST_TEST(err.find("topology.toml:") != std::string::npos, err);
    BOOST_TEST(err.find(":" + std::to_string(LineOf(probe.config_path(), "tls_cert")) +
                        ": node 'test-1': tls_cert 'node.pem': the TLS certificate does not "
                        "load as a PEM certificate chain") != std::string::npos,
               err);
  }
  {
    // Another node's key is not this certificate's.
    NodeOptions o = TlsOptions("", DevFile("eu-west-1-key.pem"));
    NodeProcess probe(o);
    const std::string err = Refused(o);
    BOOST_TEST(err.find(":" + std::to_string(LineOf(probe.config_path(), "tls_key")) +
                        ": node 'test-1': tls_key 'node-key.pem': the TLS key is not the key of "
                        "the TLS certificate") != std::string::npos,
               err);
  }
  {
    const std::string err = Refused(TlsOptions("", "garbage\n"));
    BOOST_TEST(err.find("tls_key 'node-key.pem': the TLS key does not load as an unencrypted PEM "
                        "private key") != std::string::npos,
               err);
  }
  {
    // A key open to others is refused by the topology, at its line.
    const std::string err = Refused(TlsOptions("", "", 0644));
    BOOST_TEST(err.find("node-key.pem' is open to its group or others (mode 0644)") !=
                   std::string::npos,
               err);
  }
}

BOOST_AUTO_TEST_SUITE_END()

// `meridianctl up --config` with a TLS node: it health-checks over https with
// the topology's tls_ca, prints the https URL, and `down` stops it.
BOOST_AUTO_TEST_CASE(meridianctl_up_checks_a_tls_node_with_the_topology_ca) {
  TempDir dir("meridian-tls-up");
  auto write = [&](const std::string& name, const std::string& text, mode_t mode) {
    const std::string path = dir.sub(name);
    std::ofstream(path) << text;
    BOOST_REQUIRE(chmod(path.c_str(), mode) == 0);
  };
  write("us-east-1.pem", DevFile("us-east-1.pem"), 0644);
  write("us-east-1-key.pem", DevFile("us-east-1-key.pem"), 0600);
  write("ca.pem", DevFile("ca.pem"), 0644);
  const uint16_t http = meridian::testing::FreePort();
  const uint16_t gossip = meridian::testing::FreePort();
  write("t.toml",
        "[cluster]\nname = \"tls-up\"\ntls_ca = \"ca.pem\"\n[[region]]\nname = \"us-east\"\n"
        "[[region.node]]\nid = \"us-east-1\"\nhttp = \"127.0.0.1:" +
            std::to_string(http) + "\"\ngossip = \"tcp://127.0.0.1:" + std::to_string(gossip) +
            "\"\ndata_dir = \"" + dir.sub("data") +
            "\"\ntls_cert = \"us-east-1.pem\"\ntls_key = \"us-east-1-key.pem\"\n",
        0644);
  auto ctl = [&](std::vector<std::string> args) {
    return RunProgram(MERIDIAN_MERIDIANCTL, dir.path(), args, std::chrono::seconds(40));
  };
  CtlResult up = ctl({"up", "--config", dir.sub("t.toml"), "--meridiand", MERIDIAN_MERIDIAND,
                      "--wait", "20"});
  BOOST_TEST(up.exit_code == 0, up.Describe());
  BOOST_TEST(up.out.find("us-east  us-east-1  https://127.0.0.1:" + std::to_string(http)) !=
                 std::string::npos,
             up.Describe());
  CtlResult status = ctl({"--url", "https://localhost:" + std::to_string(http), "--cacert",
                          dir.sub("ca.pem"), "--json", "status"});
  BOOST_TEST(status.exit_code == 0, status.Describe());
  BOOST_TEST(json::parse(status.out, nullptr, false)["node"] == "us-east-1", status.Describe());
  CtlResult down = ctl({"down", "--config", dir.sub("t.toml")});
  BOOST_TEST(down.exit_code == 0, down.Describe());
}
