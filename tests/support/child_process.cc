#include "tests/support/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace meridian::testing {

pid_t SpawnChild(const std::vector<std::string>& argv, const ChildOptions& options,
                 std::string* why) {
  if (argv.empty()) {
    *why = "SpawnChild: no argv";
    return -1;
  }
  // Everything the child needs is prepared before fork: after it, only
  // async-signal-safe calls (the parent may have other threads).
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (std::string& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  const char* const cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();
  const char* const out_path = options.stdout_path.empty() ? nullptr : options.stdout_path.c_str();
  const char* const err_path = options.stderr_path.empty() ? nullptr : options.stderr_path.c_str();
  const bool same_file = out_path != nullptr && options.stdout_path == options.stderr_path;
  const int flags = O_WRONLY | O_CREAT | (options.append ? O_APPEND : O_TRUNC);
  const bool stdin_null = options.stdin_null;
  const pid_t parent = getpid();

  pid_t pid = fork();
  if (pid < 0) {
    *why = std::string("fork: ") + std::strerror(errno);
    return -1;
  }
  if (pid != 0) return pid;

  // The child. Die with the test binary, whatever kills it (and at once
  // when it died before this line).
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);
  if (cwd != nullptr && chdir(cwd) != 0) _exit(126);
  if (stdin_null) {
    int in = ::open("/dev/null", O_RDONLY);
    if (in < 0 || ::dup2(in, STDIN_FILENO) < 0) _exit(126);
  }
  if (out_path != nullptr) {
    int out = ::open(out_path, flags, 0644);
    if (out < 0 || ::dup2(out, STDOUT_FILENO) < 0) _exit(126);
    if (same_file && ::dup2(out, STDERR_FILENO) < 0) _exit(126);
  }
  if (err_path != nullptr && !same_file) {
    int err = ::open(err_path, flags, 0644);
    if (err < 0 || ::dup2(err, STDERR_FILENO) < 0) _exit(126);
  }
  // The test's own descriptors (sockets above all) must not live on in the
  // child: a connection the test closes has to close.
  if (syscall(SYS_close_range, 3, ~0U, 0) != 0) {
    for (int fd = 3; fd < 4096; ++fd) ::close(fd);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);
  execv(cargv[0], cargv.data());
  _exit(127);
}

WaitResult WaitChild(pid_t pid, std::chrono::milliseconds timeout, int* status) {
  if (pid <= 0) return WaitResult::kNotAChild;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int st = 0;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      *status = st;
      return WaitResult::kReaped;
    }
    if (r < 0 && errno != EINTR) return WaitResult::kNotAChild;
    if (std::chrono::steady_clock::now() >= deadline) return WaitResult::kTimedOut;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

int KillChild(pid_t pid) {
  if (pid <= 0) return -1;
  ::kill(pid, SIGKILL);
  int status = 0;
  for (;;) {
    if (waitpid(pid, &status, 0) == pid) return status;
    if (errno != EINTR) return -1;
  }
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

Subreaper::Subreaper() { prctl(PR_SET_CHILD_SUBREAPER, 1); }

}  // namespace meridian::testing
