#include "tests/node/node_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "tests/support/child_process.h"
#include "tests/support/current_test.h"
#include "tests/support/loopback.h"

#ifndef MERIDIAN_MERIDIAND
#error "MERIDIAN_MERIDIAND must name the meridiand binary (set by tests/CMakeLists.txt)"
#endif

namespace meridian::testing {

NodeProcess::NodeProcess(NodeOptions options)
    : options_(std::move(options)), dir_("meridian-node") {
  data_dir_ = options_.data_dir.empty() ? dir_.sub("data") : options_.data_dir;
  config_path_ = dir_.sub("topology.toml");
  stderr_path_ = dir_.sub("meridiand.stderr");
  port_ = FreePort();
  gossip_port_ = FreePort();
  WriteTopology();
}

NodeProcess::~NodeProcess() {
  if (running()) Kill();
  if (CurrentTestFailed()) PrintStderr("the test case failed");
  // dir_ goes next, with everything in it.
}

void NodeProcess::WriteTopology() {
  for (const NodeOptions::File& file : options_.files) {
    const std::string path = dir_.sub(file.name);
    {
      std::ofstream out(path, std::ios::trunc);
      out << file.content;
    }
    ::chmod(path.c_str(), file.mode);
  }
  std::ofstream f(config_path_, std::ios::trunc);
  f << "[cluster]\n"
    << "name = \"test\"\n";
  if (options_.max_body_bytes != 0) f << "max_body_bytes = " << options_.max_body_bytes << "\n";
  for (const std::string& line : options_.cluster_lines) f << line << "\n";
  f << "sync = " << (options_.sync ? "true" : "false") << "\n\n"
    << "[[region]]\n"
    << "name = \"local\"\n"
    << "  [[region.node]]\n"
    << "  id       = \"" << options_.node_id << "\"\n"
    << "  http     = \"127.0.0.1:" << port_ << "\"\n"
    << "  gossip   = \"tcp://127.0.0.1:" << gossip_port_ << "\"\n"
    << "  data_dir = \"" << data_dir_ << "\"\n";
  for (const std::string& line : options_.node_lines) f << "  " << line << "\n";
}

std::string NodeProcess::url() const {
  return (options_.tls_ca.empty() ? "http://" : "https://") + std::string("127.0.0.1:") +
         std::to_string(port_);
}

std::string NodeProcess::Stderr() const {
  std::ifstream f(stderr_path_);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void NodeProcess::PrintStderr(const std::string& why) const {
  std::cerr << "---- meridiand stderr (" << why << "; " << stderr_path_ << ") ----\n"
            << Stderr() << "---- end of meridiand stderr ----" << std::endl;
}

std::unique_ptr<node::HttpClient> NodeProcess::Client() const {
  std::unique_ptr<node::HttpClient> c;
  const std::string ca = options_.tls_ca.empty() ? "" : dir_.sub(options_.tls_ca);
  Status st = node::HttpClient::Create(url(), ca, &c);
  if (!st.ok()) {
    std::cerr << "HttpClient::Create(" << url() << "): " << st.ToString() << "\n";
    std::abort();
  }
  c->set_timeout(std::chrono::milliseconds(10000));
  return c;
}

bool NodeProcess::Start() {
  if (running()) return true;
  // A port found free may be taken before meridiand binds it: pick another.
  for (int attempt = 0; attempt < 5; ++attempt) {
    bool port_in_use = false;
    if (StartOnce(&port_in_use)) return true;
    if (!port_in_use) return false;
    port_ = FreePort();
    gossip_port_ = FreePort();
    WriteTopology();
  }
  std::cerr << "meridiand: no free port after 5 attempts\n";
  return false;
}

bool NodeProcess::StartOnce(bool* port_in_use) {
  *port_in_use = false;
  const size_t stderr_offset = Stderr().size();
  ChildOptions child;
  child.stdout_path = child.stderr_path = stderr_path_;
  child.append = true;
  std::string spawn_error;
  std::vector<std::string> argv = {MERIDIAN_MERIDIAND, "--config", config_path_, "--node",
                                   options_.node_id};
  argv.insert(argv.end(), options_.args.begin(), options_.args.end());
  pid_t pid = SpawnChild(argv, child, &spawn_error);
  if (pid < 0) {
    std::cerr << "NodeProcess::Start: " << spawn_error << "\n";
    return false;
  }
  pid_ = pid;

  auto deadline = std::chrono::steady_clock::now() + options_.start_timeout;
  std::string why;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      std::string err = Stderr().substr(stderr_offset);
      if (err.find("cannot listen") != std::string::npos) {
        *port_in_use = true;
        return false;
      }
      why = "meridiand exited during start-up (wait status " + std::to_string(status) + ")";
      break;
    }
    std::unique_ptr<node::HttpClient> c = Client();
    c->set_timeout(std::chrono::milliseconds(500));
    node::ClientResponse res;
    if (c->Request("GET", "/v1/health", "", {}, &res).ok() && res.status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (why.empty()) why = "/v1/health did not answer 200 within the start timeout";
  std::cerr << "NodeProcess::Start: " << why << "\n";
  if (running()) Kill();
  PrintStderr(why);
  return false;
}

bool NodeProcess::WaitExit(std::chrono::milliseconds timeout, int* status) {
  if (WaitChild(pid_, timeout, status) == WaitResult::kTimedOut) return false;
  pid_ = -1;
  return true;
}

bool NodeProcess::Stop(std::chrono::milliseconds timeout) {
  if (!running()) return true;
  ::kill(pid_, SIGTERM);
  int status = 0;
  if (!WaitExit(timeout, &status)) {
    std::cerr << "NodeProcess::Stop: meridiand did not exit within " << timeout.count()
              << " ms of SIGTERM; killing it\n";
    Kill();
    PrintStderr("no exit after SIGTERM");
    return false;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::cerr << "NodeProcess::Stop: meridiand ended with " << DescribeWaitStatus(status) << "\n";
    PrintStderr("unclean stop");
    return false;
  }
  return true;
}

void NodeProcess::Kill() {
  if (!running()) return;
  KillChild(pid_);
  pid_ = -1;
}

bool NodeProcess::Restart() {
  bool stopped = Stop();
  bool started = Start();
  return stopped && started;
}

// --- RawExchange -------------------------------------------------------------

std::string RawResult::Body() const {
  size_t p = response.find("\r\n\r\n");
  return p == std::string::npos ? std::string() : response.substr(p + 4);
}

RawResult RawExchange(uint16_t port, const std::string& request, std::chrono::milliseconds timeout,
                      const std::string& tail, size_t repeat_tail) {
  RawResult out;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return out;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return out;
  }
  out.connected = true;
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);

  const size_t total = request.size() + tail.size() * repeat_tail;
  auto chunk_at = [&](size_t offset, const char** data, size_t* len) {
    if (offset < request.size()) {
      *data = request.data() + offset;
      *len = request.size() - offset;
    } else {
      size_t in_tail = (offset - request.size()) % tail.size();
      *data = tail.data() + in_tail;
      *len = tail.size() - in_tail;
    }
  };
  bool can_send = true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[65536];
  while (!out.closed_by_peer) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, static_cast<short>(POLLIN | (can_send && out.bytes_sent < total ? POLLOUT : 0)),
             0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 100)));
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      if (r > 0) {
        out.response.append(buf, static_cast<size_t>(r));
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        out.closed_by_peer = true;
      }
    }
    if ((p.revents & POLLOUT) && can_send && out.bytes_sent < total) {
      const char* data = nullptr;
      size_t len = 0;
      chunk_at(out.bytes_sent, &data, &len);
      ssize_t w = ::send(fd, data, len, MSG_NOSIGNAL);
      if (w > 0) {
        out.bytes_sent += static_cast<size_t>(w);
      } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        can_send = false;  // the server stopped reading and closed
      }
    }
  }
  ::close(fd);
  if (out.response.compare(0, 9, "HTTP/1.1 ") == 0 && out.response.size() >= 12) {
    out.status = std::atoi(out.response.substr(9, 3).c_str());
  }
  return out;
}

// --- Encodings ---------------------------------------------------------------

const char* MediaType(Encoding e) {
  return e == Encoding::kJson ? "application/json" : "application/msgpack";
}

const char* Name(Encoding e) { return e == Encoding::kJson ? "json" : "msgpack"; }

std::string EncodeBody(Encoding e, const nlohmann::json& body) {
  if (e == Encoding::kJson) return body.dump();
  std::vector<uint8_t> bytes = nlohmann::json::to_msgpack(body);
  return std::string(bytes.begin(), bytes.end());
}

bool DecodeReply(const node::ClientResponse& res, nlohmann::json* out, std::string* why) {
  std::string type = res.Header("content-type");
  try {
    if (type.compare(0, 16, "application/json") == 0) {
      *out = nlohmann::json::parse(res.body);
      return true;
    }
    if (type.compare(0, 19, "application/msgpack") == 0) {
      *out = nlohmann::json::from_msgpack(res.body);
      return true;
    }
    *why = "reply Content-Type is '" + type + "'";
  } catch (const nlohmann::json::exception& e) {
    *why = std::string("reply body (") + type + ") does not parse: " + e.what();
  }
  return false;
}

std::string CtlResult::Describe() const {
  return "`" + command + "` " +
         (finished ? "exited " + std::to_string(exit_code) : std::string("did not finish")) +
         "\n--- stdout ---\n" + out + "--- stderr ---\n" + err + "--- end ---";
}

CtlResult RunProgram(const std::string& program, const std::string& cwd,
                     const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  static int runs = 0;
  ++runs;
  CtlResult res;
  std::vector<std::string> argv = {program};
  argv.insert(argv.end(), args.begin(), args.end());
  for (const std::string& a : argv) res.command += (res.command.empty() ? "" : " ") + a;
  const std::string base =
      cwd + "/run-" + std::to_string(runs) + "-" + (args.empty() ? "none" : args[0]);
  ChildOptions child;
  child.cwd = cwd;
  child.stdout_path = base + ".stdout";
  child.stderr_path = base + ".stderr";
  child.stdin_null = true;
  pid_t pid = SpawnChild(argv, child, &res.err);
  if (pid < 0) return res;
  int status = 0;
  switch (WaitChild(pid, timeout, &status)) {
    case WaitResult::kReaped:
      res.finished = true;
      break;
    case WaitResult::kTimedOut:
      KillChild(pid);
      break;
    case WaitResult::kNotAChild:
      break;
  }
  if (res.finished && WIFEXITED(status)) res.exit_code = WEXITSTATUS(status);
  auto read = [](const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  res.out = read(child.stdout_path);
  res.err += read(child.stderr_path);
  return res;
}

}  // namespace meridian::testing
