#include "common/http_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"

namespace pghaul {
namespace {

// Closes the descriptor when it goes out of scope.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

bool HasLineBreak(absl::string_view text) {
  return text.find_first_of("\r\n") != absl::string_view::npos;
}

absl::Status ValidateRequest(const HttpRequest& request) {
  static const char* const kMethods[] = {"GET", "POST", "PATCH", "PUT", "DELETE"};
  bool known = false;
  for (const char* method : kMethods) known = known || request.method == method;
  if (!known) {
    return absl::InvalidArgumentError(
        absl::StrCat("http: unsupported method \"", request.method, "\""));
  }
  if (request.port < 1 || request.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("http: port ", request.port, " out of range"));
  }
  if (request.host.empty() || HasLineBreak(request.host) ||
      request.host.find_first_of(" /") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("http: bad host \"", request.host, "\""));
  }
  if (!absl::StartsWith(request.target, "/") || HasLineBreak(request.target) ||
      request.target.find(' ') != std::string::npos) {
    return absl::InvalidArgumentError(
        "http: the request target must start with '/' and hold "
        "no space or line break");
  }
  for (const auto& [name, value] : request.headers) {
    if (name.empty() || HasLineBreak(name) || HasLineBreak(value) ||
        name.find(':') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("http: bad header \"", name, "\""));
    }
  }
  return absl::OkStatus();
}

std::string HostHeader(const HttpRequest& request) {
  const bool ipv6 = request.host.find(':') != std::string::npos;
  return absl::StrCat(ipv6 ? "[" : "", request.host, ipv6 ? "]" : "", ":", request.port);
}

std::string SerializeRequest(const HttpRequest& request) {
  std::string text =
      absl::StrCat(request.method, " ", request.target, " HTTP/1.1\r\nHost: ", HostHeader(request),
                   "\r\nConnection: close\r\n");
  for (const auto& [name, value] : request.headers)
    absl::StrAppend(&text, name, ": ", value, "\r\n");
  const bool has_body = !request.body.empty() || request.method == "POST" ||
                        request.method == "PATCH" || request.method == "PUT";
  if (has_body) absl::StrAppend(&text, "Content-Length: ", request.body.size(), "\r\n");
  absl::StrAppend(&text, "\r\n", request.body);
  return text;
}

// Milliseconds left until `deadline` for poll(), at least 0.
int PollTimeout(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1 << 30));
}

absl::Status TimeoutError(const HttpRequest& request, absl::string_view during) {
  return absl::DeadlineExceededError(absl::StrCat(
      "http: ", request.method, " ", HostHeader(request), request.target, ": no answer within ",
      absl::FormatDuration(request.timeout), " (while ", during, ")"));
}

// Waits until `fd` is ready for `events`. Errors: DeadlineExceeded, Internal.
absl::Status WaitReady(int fd, short events, absl::Time deadline, const HttpRequest& request,
                       absl::string_view during) {
  while (true) {
    pollfd entry{fd, events, 0};
    int ready = poll(&entry, 1, PollTimeout(deadline));
    if (ready > 0) return absl::OkStatus();
    if (ready == 0) return TimeoutError(request, during);
    if (errno != EINTR) return absl::InternalError(absl::StrCat("http: poll: ", strerror(errno)));
  }
}

// Connects to one resolved address, non-blocking, bounded by `deadline`.
absl::StatusOr<int> ConnectTo(const addrinfo& address, absl::Time deadline,
                              const HttpRequest& request) {
  int fd = socket(address.ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("http: socket: ", strerror(errno)));
  ScopedFd guard(fd);
  if (connect(fd, address.ai_addr, address.ai_addrlen) != 0) {
    if (errno != EINPROGRESS) {
      return absl::UnavailableError(
          absl::StrCat("http: connect to ", HostHeader(request), ": ", strerror(errno)));
    }
    PGH_RETURN_IF_ERROR(WaitReady(fd, POLLOUT, deadline, request, "connecting"));
    int error = 0;
    socklen_t length = sizeof(error);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) {
      return absl::UnavailableError(
          absl::StrCat("http: connect to ", HostHeader(request), ": ", strerror(error)));
    }
  }
  return guard.release();
}

// Parses the chunked body starting at `data`. OutOfRange when incomplete.
absl::StatusOr<std::string> Dechunk(absl::string_view data) {
  std::string body;
  while (true) {
    size_t line_end = data.find("\r\n");
    if (line_end == absl::string_view::npos) return absl::OutOfRangeError("chunk size");
    absl::string_view size_text = data.substr(0, line_end);
    size_text = size_text.substr(0, size_text.find(';'));
    size_text = absl::StripAsciiWhitespace(size_text);
    uint64_t size = 0;
    if (size_text.empty() || size_text.size() > 8 || !absl::SimpleHexAtoi(size_text, &size)) {
      return absl::DataLossError("http: malformed chunk size in the response");
    }
    data.remove_prefix(line_end + 2);
    if (size == 0) {
      // Trailers (ignored) end with an empty line.
      while (true) {
        size_t end = data.find("\r\n");
        if (end == absl::string_view::npos) return absl::OutOfRangeError("trailers");
        if (end == 0) return body;
        data.remove_prefix(end + 2);
      }
    }
    if (data.size() < size + 2) return absl::OutOfRangeError("chunk data");
    body.append(data.data(), size);
    if (data.substr(size, 2) != "\r\n") {
      return absl::DataLossError("http: a chunk of the response does not end with CRLF");
    }
    data.remove_prefix(size + 2);
  }
}

}  // namespace

absl::StatusOr<HttpResponse> ParseHttpResponse(const std::string& bytes, bool complete) {
  const size_t header_end = bytes.find("\r\n\r\n");
  if (header_end == std::string::npos) {
    if (complete) return absl::DataLossError("http: the response ended inside its headers");
    return absl::OutOfRangeError("headers");
  }
  std::vector<absl::string_view> lines =
      absl::StrSplit(absl::string_view(bytes).substr(0, header_end), "\r\n");
  HttpResponse response;
  // "HTTP/1.1 200 OK"
  absl::string_view status_line = lines[0];
  if (!absl::StartsWith(status_line, "HTTP/1.") || status_line.size() < 12 ||
      status_line[8] != ' ') {
    return absl::DataLossError(absl::StrCat("http: not an HTTP/1.x response: \"",
                                            absl::CEscape(status_line.substr(0, 40)), "\""));
  }
  if (!absl::SimpleAtoi(status_line.substr(9, 3), &response.status_code) ||
      response.status_code < 100 || response.status_code > 599) {
    return absl::DataLossError("http: bad status code in the response");
  }
  if (status_line.size() > 13) response.reason = std::string(status_line.substr(13));
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos || colon == 0) {
      return absl::DataLossError("http: malformed header line in the response");
    }
    response.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  absl::string_view rest = absl::string_view(bytes).substr(header_end + 4);
  const bool no_body =
      response.status_code == 204 || response.status_code == 304 || response.status_code < 200;
  if (no_body) return response;
  auto encoding = response.headers.find("transfer-encoding");
  if (encoding != response.headers.end() && absl::AsciiStrToLower(encoding->second) == "chunked") {
    absl::StatusOr<std::string> body = Dechunk(rest);
    if (absl::IsOutOfRange(body.status()) && complete) {
      return absl::DataLossError("http: the response ended before its last chunk");
    }
    if (!body.ok()) return body.status();
    response.body = *std::move(body);
    return response;
  }
  auto length_header = response.headers.find("content-length");
  if (length_header != response.headers.end()) {
    uint64_t length = 0;
    if (!absl::SimpleAtoi(length_header->second, &length)) {
      return absl::DataLossError("http: bad Content-Length in the response");
    }
    if (rest.size() < length) {
      if (complete) {
        return absl::DataLossError(absl::StrCat("http: the response ended after ", rest.size(),
                                                " of its ", length, " body bytes"));
      }
      return absl::OutOfRangeError("body");
    }
    response.body = std::string(rest.substr(0, length));
    return response;
  }
  if (!complete) return absl::OutOfRangeError("body until close");
  response.body = std::string(rest);
  return response;
}

absl::StatusOr<HttpResponse> SendHttpRequest(const HttpRequest& request) {
  PGH_RETURN_IF_ERROR(ValidateRequest(request));
  const absl::Time deadline = absl::Now() + request.timeout;

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addresses = nullptr;
  const std::string port = absl::StrCat(request.port);
  int rc = getaddrinfo(request.host.c_str(), port.c_str(), &hints, &addresses);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("http: cannot resolve \"", request.host, "\": ", gai_strerror(rc)));
  }
  absl::StatusOr<int> connected = absl::UnavailableError("http: no address to connect to");
  for (addrinfo* address = addresses; address != nullptr; address = address->ai_next) {
    connected = ConnectTo(*address, deadline, request);
    if (connected.ok() || absl::IsDeadlineExceeded(connected.status())) break;
  }
  freeaddrinfo(addresses);
  if (!connected.ok()) return connected.status();
  ScopedFd fd(*connected);

  const std::string out = SerializeRequest(request);
  size_t sent = 0;
  while (sent < out.size()) {
    ssize_t n = send(fd.get(), out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      PGH_RETURN_IF_ERROR(WaitReady(fd.get(), POLLOUT, deadline, request, "sending"));
      continue;
    }
    return absl::UnavailableError(
        absl::StrCat("http: sending to ", HostHeader(request), ": ", strerror(errno)));
  }

  std::string in;
  char buffer[16384];
  while (true) {
    PGH_RETURN_IF_ERROR(WaitReady(fd.get(), POLLIN, deadline, request, "reading the response"));
    ssize_t n = recv(fd.get(), buffer, sizeof(buffer), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      return absl::UnavailableError(
          absl::StrCat("http: reading from ", HostHeader(request), ": ", strerror(errno)));
    }
    if (n == 0) return ParseHttpResponse(in, /*complete=*/true);
    in.append(buffer, static_cast<size_t>(n));
    if (in.size() > request.max_response_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("http: the response from ",
                                                       HostHeader(request), " is larger than ",
                                                       request.max_response_bytes, " bytes"));
    }
    absl::StatusOr<HttpResponse> response = ParseHttpResponse(in, /*complete=*/false);
    if (!absl::IsOutOfRange(response.status())) return response;
  }
}

}  // namespace pghaul
