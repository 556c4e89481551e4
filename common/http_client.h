// A small HTTP/1.1 client over one plain TCP connection, for local REST APIs the agent talks to
// (Patroni's, docs/patroni.md): one request per connection ("Connection: close"), a deadline
// for the whole exchange, and a bound on the size of the response, so a peer that talks too
// much or too slowly cannot hold the agent. No TLS, no redirects, no proxies.
//
// The response body may come with Content-Length, chunked, or end at the close of the
// connection; all three are handled.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pghaul {

struct HttpRequest {
  std::string method = "GET";  // GET, POST, PATCH, PUT or DELETE
  std::string host;            // DNS name, IPv4 address, or IPv6 address without brackets
  int port = 80;
  std::string target = "/";  // the request target: path and query, starting with '/'
  // Extra header lines (name, value); Host, Connection and Content-Length are set by the client.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // sent with Content-Length when not empty (and always for POST/PATCH/PUT)
  // For connect, send and receive together. Resolving a DNS name (getaddrinfo) is not bounded
  // by it: give an IP address where that matters.
  absl::Duration timeout = absl::Seconds(5);
  size_t max_response_bytes = 1 << 20;  // status line, headers and body together
};

struct HttpResponse {
  int status_code = 0;
  std::string reason;
  std::map<std::string, std::string> headers;  // names lower-cased; a repeated one keeps the last
  std::string body;                            // de-chunked
};

// Sends `request` and reads the whole response. Any status code is a response, not an error:
// the caller decides what a 503 means.
// Errors: InvalidArgument for a malformed request (method, target, header with CR or LF, port);
// Unavailable when the host does not resolve or the connection is refused or reset;
// DeadlineExceeded when the exchange did not finish within `timeout`; ResourceExhausted when
// the response is larger than max_response_bytes; DataLoss when the response is not HTTP/1.x
// or ends early (before Content-Length bytes or the last chunk).
absl::StatusOr<HttpResponse> SendHttpRequest(const HttpRequest& request);

// Parses the bytes of an HTTP/1.x response read so far. Exposed for tests. `complete` tells
// whether the peer has closed the connection (so a body without a length ends there).
// Errors: OutOfRange when more bytes are needed (only when `complete` is false); DataLoss as
// for SendHttpRequest.
absl::StatusOr<HttpResponse> ParseHttpResponse(const std::string& bytes, bool complete);

}  // namespace pghaul
