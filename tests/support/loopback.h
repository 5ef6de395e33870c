// TCP ports on 127.0.0.1 for tests: a port free right now, and a socket
// that holds one (to make a server's bind fail, or to keep picked ports
// distinct while more are picked).
#ifndef MERIDIAN_TESTS_SUPPORT_LOOPBACK_H_
#define MERIDIAN_TESTS_SUPPORT_LOOPBACK_H_

#include <cstdint>

namespace meridian::testing {

// Binds a TCP socket (close-on-exec) to 127.0.0.1:port (0: the kernel
// picks), without SO_REUSEADDR so that a port with lingering connections
// counts as taken, and listens (backlog 16) when `listen` is set. Returns
// the fd, with the port bound in *bound when `bound` is not null; -1 with
// errno set when the port could not be had. The caller closes the fd.
int BindLoopback(uint16_t port, bool listen, uint16_t* bound = nullptr);

// A TCP port on 127.0.0.1 that was free when asked (bound to port 0 and
// released, so another process may take it before it is used: callers
// retry); 0 when no socket could be bound.
uint16_t FreePort();

}  // namespace meridian::testing

#endif  // MERIDIAN_TESTS_SUPPORT_LOOPBACK_H_
