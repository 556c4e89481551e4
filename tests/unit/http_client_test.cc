#include "common/http_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/http_test_server.h"

namespace pghaul {
namespace {

using ::pghaul::testing::HttpReply;
using ::pghaul::testing::HttpTestServer;
using ::testing::HasSubstr;

HttpRequest Get(int port, const std::string& target = "/patroni") {
  HttpRequest request;
  request.host = "127.0.0.1";
  request.port = port;
  request.target = target;
  request.timeout = absl::Seconds(10);
  return request;
}

TEST(HttpClientTest, ReadsAResponseWithContentLength) {
  HttpTestServer server([](const std::string&) -> std::vector<std::string> {
    return {HttpReply(200, R"({"state":"running"})")};
  });
  absl::StatusOr<HttpResponse> response = SendHttpRequest(Get(server.port()));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status_code, 200);
  EXPECT_EQ(response->reason, "OK");
  EXPECT_EQ(response->headers.at("content-type"), "application/json");
  EXPECT_EQ(response->body, R"({"state":"running"})");
}

TEST(HttpClientTest, AssemblesAResponseSentInManySmallPieces) {
  const std::string whole = HttpReply(200, std::string(5000, 'x') + "end");
  HttpTestServer server([&](const std::string&) {
    std::vector<std::string> pieces;
    // Splits inside the status line, the header terminator and the body.
    for (size_t i = 0; i < whole.size(); i += 7) pieces.push_back(whole.substr(i, 7));
    return pieces;
  });
  absl::StatusOr<HttpResponse> response = SendHttpRequest(Get(server.port()));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body.size(), 5003u);
  EXPECT_EQ(response->body.substr(5000), "end");
}

TEST(HttpClientTest, DecodesAChunkedBody) {
  HttpTestServer server([](const std::string&) -> std::vector<std::string> {
    return {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "4\r\nWiki\r\n",
            "5;ext=1\r\npedia\r\n", "0\r\nX-Trailer: y\r\n\r\n"};
  });
  absl::StatusOr<HttpResponse> response = SendHttpRequest(Get(server.port()));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body, "Wikipedia");
}

TEST(HttpClientTest, ReadsABodyWithoutLengthUntilTheConnectionCloses) {
  HttpTestServer server([](const std::string&) -> std::vector<std::string> {
    return {"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n", "all ", "of it"};
  });
  absl::StatusOr<HttpResponse> response = SendHttpRequest(Get(server.port()));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body, "all of it");
}

TEST(HttpClientTest, ReturnsANon200StatusAsAResponseNotAnError) {
  HttpTestServer server([](const std::string&) -> std::vector<std::string> {
    return {HttpReply(503, R"({"state":"stopped"})")};
  });
  absl::StatusOr<HttpResponse> response = SendHttpRequest(Get(server.port(), "/leader"));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status_code, 503);
  EXPECT_EQ(response->body, R"({"state":"stopped"})");
}

TEST(HttpClientTest, SendsMethodTargetHostBodyAndHeaders) {
  HttpTestServer server(
      [](const std::string&) -> std::vector<std::string> { return {HttpReply(200, "{}")}; });
  HttpRequest request = Get(server.port(), "/config");
  request.method = "PATCH";
  request.body = R"({"pause":true})";
  request.headers.emplace_back("Content-Type", "application/json");
  ASSERT_TRUE(SendHttpRequest(request).ok());
  ASSERT_EQ(server.requests().size(), 1u);
  const std::string sent = server.requests()[0];
  EXPECT_THAT(sent, ::testing::StartsWith("PATCH /config HTTP/1.1\r\n"));
  EXPECT_THAT(sent, HasSubstr("\r\nHost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"));
  EXPECT_THAT(sent, HasSubstr("\r\nConnection: close\r\n"));
  EXPECT_THAT(sent, HasSubstr("\r\nContent-Type: application/json\r\n"));
  EXPECT_THAT(sent, HasSubstr("\r\nContent-Length: 14\r\n\r\n{\"pause\":true}"));
}

TEST(HttpClientTest, RefusesAResponseLargerThanTheBound) {
  HttpTestServer server([](const std::string&) -> std::vector<std::string> {
    return {HttpReply(200, std::string(200000, 'a'))};
  });
  HttpRequest request = Get(server.port());
  request.max_response_bytes = 64 * 1024;
  absl::StatusOr<HttpResponse> response = SendHttpRequest(request);
  EXPECT_TRUE(absl::IsResourceExhausted(response.status())) << response.status();
}

TEST(HttpClientTest, GivesUpWhenThePeerDoesNotAnswerInTime) {
  absl::Notification release;
  HttpTestServer server([&](const std::string&) -> std::vector<std::string> {
    release.WaitForNotification();  // holds the connection open, silent
    return {};
  });
  HttpRequest request = Get(server.port());
  request.timeout = absl::Milliseconds(200);
  const absl::Time start = absl::Now();
  absl::StatusOr<HttpResponse> response = SendHttpRequest(request);
  const absl::Duration took = absl::Now() - start;
  release.Notify();
  EXPECT_TRUE(absl::IsDeadlineExceeded(response.status())) << response.status();
  EXPECT_THAT(response.status().message(), HasSubstr("reading the response"));
  EXPECT_LT(took, absl::Seconds(5));
}

TEST(HttpClientTest, ReportsAResponseCutShortAsDataLoss) {
  HttpTestServer server([](const std::string&) -> std::vector<std::string> {
    return {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345"};
  });
  absl::StatusOr<HttpResponse> response = SendHttpRequest(Get(server.port()));
  EXPECT_TRUE(absl::IsDataLoss(response.status())) << response.status();
  EXPECT_THAT(response.status().message(), HasSubstr("5 of its 10"));
}

TEST(HttpClientTest, ReportsSomethingOtherThanHttpAsDataLoss) {
  HttpTestServer server([](const std::string&) -> std::vector<std::string> {
    return {"SSH-2.0-OpenSSH_9.2\r\n\r\n"};
  });
  absl::StatusOr<HttpResponse> response = SendHttpRequest(Get(server.port()));
  EXPECT_TRUE(absl::IsDataLoss(response.status())) << response.status();
}

TEST(HttpClientTest, ReportsARefusedConnectionAsUnavailable) {
  // A port that was just free: bind to port 0, learn it, close.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  absl::StatusOr<HttpResponse> response = SendHttpRequest(Get(ntohs(address.sin_port)));
  EXPECT_TRUE(absl::IsUnavailable(response.status())) << response.status();
}

TEST(HttpClientTest, RefusesRequestsThatCouldInjectHeaders) {
  HttpRequest request = Get(80, "/patroni\r\nX-Evil: 1");
  EXPECT_TRUE(absl::IsInvalidArgument(SendHttpRequest(request).status()));
  request = Get(80);
  request.headers.emplace_back("X-Ok", "a\r\nX-Evil: 1");
  EXPECT_TRUE(absl::IsInvalidArgument(SendHttpRequest(request).status()));
  request = Get(80);
  request.method = "CONNECT";
  EXPECT_TRUE(absl::IsInvalidArgument(SendHttpRequest(request).status()));
  request = Get(0);
  EXPECT_TRUE(absl::IsInvalidArgument(SendHttpRequest(request).status()));
}

TEST(HttpClientTest, ParserAsksForMoreUntilTheBodyIsComplete) {
  const std::string partial = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab";
  EXPECT_TRUE(absl::IsOutOfRange(ParseHttpResponse(partial, /*complete=*/false).status()));
  absl::StatusOr<HttpResponse> done = ParseHttpResponse(partial + "cdEXTRA", false);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->body, "abcd");
  EXPECT_TRUE(absl::IsOutOfRange(ParseHttpResponse("HTTP/1.1 20", false).status()));
  EXPECT_TRUE(absl::IsDataLoss(ParseHttpResponse("HTTP/1.1 20", true).status()));
}

}  // namespace
}  // namespace pghaul
