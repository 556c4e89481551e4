// A tiny HTTP server for unit tests of HTTP clients: listens on 127.0.0.1 port 0, serves one
// connection at a time on its own thread, and answers each request with what a handler
// returns, sent piece by piece (one send() each, TCP_NODELAY), then closes the connection.
// Header-only, because only tests use it.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"

namespace pghaul::testing {

class HttpTestServer {
 public:
  // The pieces of the response to a request (the whole request text, headers and body).
  using Handler = std::function<std::vector<std::string>(const std::string& request)>;

  explicit HttpTestServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    listen(listen_fd_, 16);
    socklen_t length = sizeof(address);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    if (pipe2(stop_pipe_, O_CLOEXEC) != 0) stop_pipe_[0] = stop_pipe_[1] = -1;
    thread_ = std::thread([this] { Serve(); });
  }

  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;

  ~HttpTestServer() {
    char byte = 0;
    (void)!write(stop_pipe_[1], &byte, 1);
    thread_.join();
    close(listen_fd_);
    close(stop_pipe_[0]);
    close(stop_pipe_[1]);
  }

  int port() const { return port_; }

  std::vector<std::string> requests() const {
    absl::MutexLock lock(&mutex_);
    return requests_;
  }

 private:
  void Serve() {
    while (true) {
      pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) continue;
      if (fds[1].revents != 0) return;
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      std::string request = ReadRequest(fd);
      {
        absl::MutexLock lock(&mutex_);
        requests_.push_back(request);
      }
      for (const std::string& piece : handler_(request)) {
        size_t sent = 0;
        while (sent < piece.size()) {
          ssize_t n = send(fd, piece.data() + sent, piece.size() - sent, MSG_NOSIGNAL);
          if (n <= 0) break;
          sent += static_cast<size_t>(n);
        }
      }
      close(fd);
    }
  }

  // Headers, then Content-Length bytes of body.
  static std::string ReadRequest(int fd) {
    std::string in;
    char buffer[4096];
    size_t want = std::string::npos;
    while (want == std::string::npos || in.size() < want) {
      ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      in.append(buffer, static_cast<size_t>(n));
      size_t end = in.find("\r\n\r\n");
      if (want == std::string::npos && end != std::string::npos) {
        size_t length = 0;
        for (absl::string_view line : absl::StrSplit(in.substr(0, end), "\r\n")) {
          std::string lower = absl::AsciiStrToLower(line);
          if (absl::StartsWith(lower, "content-length:")) {
            (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(15)), &length);
          }
        }
        want = end + 4 + length;
      }
    }
    return in;
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  int stop_pipe_[2] = {-1, -1};
  std::thread thread_;
  mutable absl::Mutex mutex_;
  std::vector<std::string> requests_ ABSL_GUARDED_BY(mutex_);
};

// "HTTP/1.1 <code> <reason>" with Content-Length and the body.
inline std::string HttpReply(int code, const std::string& body,
                             const std::string& content_type = "application/json") {
  std::string reason = code == 200 ? "OK" : (code == 503 ? "Service Unavailable" : "Status");
  return "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\nContent-Type: " + content_type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace pghaul::testing
