#pragma once
// A listening TCP socket on 127.0.0.1 at a port the kernel picks, for the tests' fake servers
// and proxies.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <stdexcept>

namespace kaiwa::test {

/// The socket, listening; its port in `port`. Throws when the kernel refuses.
inline int listen_on_loopback(std::uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(fd, 16) != 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("can't listen on 127.0.0.1");
  }
  port = ntohs(a.sin_port);
  return fd;
}

}  // namespace kaiwa::test
