// Child processes for tests that run a real binary (meridiand,
// meridianctl): fork and exec with the child's output in files, a bounded
// wait, and SIGKILL with a reap.
//
// SpawnChild is safe to call from a multi-threaded test: everything the
// child needs is prepared before fork, and after it the child makes only
// async-signal-safe calls. The child asks the kernel to SIGKILL it should
// the test binary die first (PR_SET_PDEATHSIG), so no child outlives a
// crashed or killed test; it inherits none of the test's descriptors above
// stderr (a socket the test closes really closes), starts with an empty
// signal mask and SIGPIPE at its default.
//
// The caller owns the pid it gets: it must reap it (WaitChild, KillChild).
#ifndef MERIDIAN_TESTS_SUPPORT_CHILD_PROCESS_H_
#define MERIDIAN_TESTS_SUPPORT_CHILD_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace meridian::testing {

struct ChildOptions {
  // The directory the child runs in; empty: the parent's.
  std::string cwd;
  // Files the child's stdout and stderr go to (created mode 0644); empty:
  // the parent's. One path for both opens the file once, so the two
  // streams share an offset and interleave in order.
  std::string stdout_path;
  std::string stderr_path;
  // Append to those files instead of truncating them.
  bool append = false;
  // Read stdin from /dev/null instead of the parent's.
  bool stdin_null = false;
};

// Forks and execs argv[0] (a path: no PATH search) with `argv`. Returns
// the child's pid, or -1 with the reason in *why when argv is empty or
// fork fails. In the child, a cwd, file or /dev/null that cannot be had
// ends it with exit status 126 and a failed exec with 127, so those show
// up as an early exit.
pid_t SpawnChild(const std::vector<std::string>& argv, const ChildOptions& options,
                 std::string* why);

enum class WaitResult {
  kReaped,     // the child ended and was reaped
  kTimedOut,   // it still runs at the deadline (not reaped)
  kNotAChild,  // waitpid failed other than by EINTR (ECHILD: not our child
               // or reaped already)
};

// Waits for child `pid` to end, polling every 5 ms, for up to `timeout`
// (0: one look). On kReaped its raw wait status is in *status, otherwise
// *status is untouched.
WaitResult WaitChild(pid_t pid, std::chrono::milliseconds timeout, int* status);

// SIGKILL to child `pid`, then a blocking reap (SIGKILL cannot be caught,
// so the wait is bounded by the kernel). Returns the raw wait status, or -1
// when there was nothing to reap. Does nothing for pid <= 0.
int KillChild(pid_t pid);

// A raw wait status in words: "exit status N", "signal N" or "wait
// status N".
std::string DescribeWaitStatus(int status);

// A Boost.Test global fixture (BOOST_TEST_GLOBAL_FIXTURE(Subreaper)) for a
// test that runs `meridianctl up`: the nodes it starts outlive it, and as a
// child subreaper the test process inherits and can reap them instead of
// init.
struct Subreaper {
  Subreaper();
};

}  // namespace meridian::testing

#endif  // MERIDIAN_TESTS_SUPPORT_CHILD_PROCESS_H_
