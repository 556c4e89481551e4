// Patroni's REST API as the agent reads it (agent/patroni_rest.h), against canned answers of
// Patroni 3.0.2 served by a local test server.
#include "agent/patroni_rest.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/http_test_server.h"

namespace pghaul::agent {
namespace {

using ::pghaul::testing::HttpReply;
using ::pghaul::testing::HttpTestServer;
using ::testing::HasSubstr;

// GET /patroni of a Patroni 3.0.2 leader, as it printed it here.
constexpr char kLeaderStatus[] =
    R"({"state": "running", "postmaster_start_time": "2026-11-27 10:00:00.1+00:00",)"
    R"( "role": "master", "server_version": 150018, "xlog": {"location": 50331968},)"
    R"( "timeline": 1, "dcs_last_seen": 1795774000, "tags": {"nofailover": false},)"
    R"( "database_system_identifier": "7712463226578364238",)"
    R"( "patroni": {"version": "3.0.2", "scope": "newdb"}})";

PatroniConfig ConfigFor(int port) {
  PatroniConfig config;
  config.config_file = "/etc/patroni/patroni.yml";
  config.rest_api_host = "127.0.0.1";
  config.rest_api_port = port;
  config.request_timeout = absl::Seconds(10);
  return config;
}

TEST(PatroniStatusTest, ParsesALeadersStatus) {
  absl::StatusOr<PatroniStatus> status = ParsePatroniStatus(kLeaderStatus);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->state, "running");
  EXPECT_EQ(status->role, "master");
  EXPECT_EQ(status->timeline, 1u);
  EXPECT_EQ(status->server_version, 150018);
  EXPECT_FALSE(status->paused);
  EXPECT_FALSE(status->cluster_unlocked);
  EXPECT_EQ(status->system_identifier, 7712463226578364238u);
  EXPECT_EQ(status->version, "3.0.2");
  EXPECT_EQ(status->scope, "newdb");
  EXPECT_EQ(status->dcs_last_seen, 1795774000);
}

TEST(PatroniStatusTest, AStoppedPausedNodeLeavesTheRestAtDefaults) {
  absl::StatusOr<PatroniStatus> status = ParsePatroniStatus(
      R"({"state": "stopped", "role": "uninitialized", "cluster_unlocked": true,)"
      R"( "pause": true, "dcs_last_seen": 0, "patroni": {"version": "3.0.2", "scope": "x"}})");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->state, "stopped");
  EXPECT_TRUE(status->paused);
  EXPECT_TRUE(status->cluster_unlocked);
  EXPECT_EQ(status->timeline, 0u);
  EXPECT_EQ(status->system_identifier, 0u);
}

TEST(PatroniStatusTest, RefusesWhatIsNotPatronisJson) {
  EXPECT_TRUE(absl::IsDataLoss(ParsePatroniStatus("<html>502</html>").status()));
  EXPECT_TRUE(absl::IsDataLoss(ParsePatroniStatus("[1, 2]").status()));
  EXPECT_TRUE(absl::IsDataLoss(ParsePatroniStatus(R"({"timeline": "one"})").status()));
  EXPECT_TRUE(absl::IsDataLoss(ParsePatroniStatus(R"({"timeline": -1})").status()));
  EXPECT_TRUE(absl::IsDataLoss(ParsePatroniStatus(R"({"pause": "yes"})").status()));
  EXPECT_TRUE(
      absl::IsDataLoss(ParsePatroniStatus(R"({"database_system_identifier": "77x"})").status()));
  EXPECT_TRUE(absl::IsDataLoss(ParsePatroniStatus(R"({"patroni": "3.0.2"})").status()));
}

TEST(PatroniRestClientTest, ReadsStatusAndLeaderLock) {
  HttpTestServer server([](const std::string& request) -> std::vector<std::string> {
    if (absl::StartsWith(request, "GET /patroni ")) return {HttpReply(200, kLeaderStatus)};
    if (absl::StartsWith(request, "GET /leader ")) return {HttpReply(503, kLeaderStatus)};
    return {HttpReply(404, "")};
  });
  PatroniConfig config = ConfigFor(server.port());
  PatroniRestClient client(&config);
  absl::StatusOr<PatroniStatus> status = client.GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->role, "master");
  absl::StatusOr<bool> leader = client.HoldsLeaderLock();
  ASSERT_TRUE(leader.ok()) << leader.status();
  EXPECT_FALSE(*leader);
}

TEST(PatroniRestClientTest, PauseAndResumeSendWhatPatronictlSends) {
  HttpTestServer server([](const std::string&) -> std::vector<std::string> {
    return {HttpReply(200, R"({"ttl": 30, "pause": true})")};
  });
  PatroniConfig config = ConfigFor(server.port());
  PatroniRestClient client(&config);
  ASSERT_TRUE(client.SetPause(true).ok());
  ASSERT_TRUE(client.SetPause(false).ok());
  std::vector<std::string> requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_THAT(requests[0], ::testing::StartsWith("PATCH /config HTTP/1.1"));
  EXPECT_THAT(requests[0], ::testing::EndsWith("\r\n\r\n{\"pause\":true}"));
  EXPECT_THAT(requests[1], ::testing::EndsWith("\r\n\r\n{\"pause\":null}"));
  EXPECT_THAT(requests[0], ::testing::Not(HasSubstr("Authorization")));
}

TEST(PatroniRestClientTest, SendsBasicAuthenticationFromThePasswordFile) {
  HttpTestServer server(
      [](const std::string&) -> std::vector<std::string> { return {HttpReply(401, "no")}; });
  const std::string password_file = ::testing::TempDir() + "/patroni-rest-password";
  {
    FILE* file = fopen(password_file.c_str(), "w");
    ASSERT_NE(file, nullptr);
    fputs("s3cret\n", file);
    fclose(file);
  }
  PatroniConfig config = ConfigFor(server.port());
  config.rest_api_username = "patroni";
  config.rest_api_password_file = password_file;
  PatroniRestClient client(&config);
  absl::Status paused = client.SetPause(true);
  EXPECT_TRUE(absl::IsFailedPrecondition(paused)) << paused;
  EXPECT_THAT(paused.message(), HasSubstr("answered 401"));
  EXPECT_THAT(paused.message(), HasSubstr("rest_api.username"));
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_THAT(server.requests()[0], HasSubstr("\r\nAuthorization: Basic " +
                                              absl::Base64Escape("patroni:s3cret") + "\r\n"));
  remove(password_file.c_str());
}

TEST(PatroniRestClientTest, ANon200StatusIsAnErrorWithTheBody) {
  HttpTestServer server([](const std::string&) -> std::vector<std::string> {
    return {HttpReply(500, "internal trouble")};
  });
  PatroniConfig config = ConfigFor(server.port());
  PatroniRestClient client(&config);
  absl::StatusOr<PatroniStatus> status = client.GetStatus();
  EXPECT_TRUE(absl::IsFailedPrecondition(status.status()));
  EXPECT_THAT(status.status().message(), HasSubstr("internal trouble"));
  EXPECT_TRUE(absl::IsFailedPrecondition(client.HoldsLeaderLock().status()));
}

TEST(PatroniFactsTest, FillsEveryFieldFromALeader) {
  HttpTestServer server([](const std::string&) -> std::vector<std::string> {
    return {HttpReply(200, kLeaderStatus)};  // /patroni and /leader alike
  });
  v1::PatroniFacts facts = GatherPatroniFacts(ConfigFor(server.port()));
  EXPECT_TRUE(facts.reachable());
  EXPECT_EQ(facts.error(), "");
  EXPECT_EQ(facts.rest_api(), "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(facts.config_file(), "/etc/patroni/patroni.yml");
  EXPECT_EQ(facts.dcs(), "etcd3");
  EXPECT_EQ(facts.state(), "running");
  EXPECT_EQ(facts.role(), "master");
  EXPECT_TRUE(facts.leader());
  EXPECT_EQ(facts.timeline(), 1u);
  EXPECT_EQ(facts.system_identifier(), 7712463226578364238u);
  EXPECT_EQ(facts.version(), "3.0.2");
}

TEST(PatroniFactsTest, AnUnreachableApiIsAFactNotAFailure) {
  PatroniConfig config = ConfigFor(1);  // nothing listens on port 1
  v1::PatroniFacts facts = GatherPatroniFacts(config);
  EXPECT_FALSE(facts.reachable());
  EXPECT_THAT(facts.error(), HasSubstr("127.0.0.1:1"));
  EXPECT_EQ(facts.state(), "");
}

// Patroni 3.0.2 with its etcd stopped (tried here): GET /patroni still answers, with the old
// dcs_last_seen, while GET /cluster closes the connection without an answer once Patroni's etcd
// client gives up.
TEST(PatroniFactsTest, ADcsThatPatroniCannotReadIsReportedWithWhenItWasLastSeen) {
  HttpTestServer server([](const std::string& request) -> std::vector<std::string> {
    if (absl::StartsWith(request, "GET /cluster ")) return {};
    return {HttpReply(200, kLeaderStatus)};
  });
  v1::PatroniFacts facts = GatherPatroniFacts(ConfigFor(server.port()));
  EXPECT_TRUE(facts.reachable());
  EXPECT_FALSE(facts.dcs_reachable());
  EXPECT_THAT(facts.dcs_error(), HasSubstr(std::to_string(server.port())));
  EXPECT_EQ(facts.dcs_last_seen().seconds(), 1795774000);
  EXPECT_EQ(facts.error(), "") << "the DCS is not the REST API's error";
}

TEST(PatroniFactsTest, ADcsAnswerOfTheClusterMeansReachable) {
  HttpTestServer server([](const std::string& request) -> std::vector<std::string> {
    if (absl::StartsWith(request, "GET /cluster ")) {
      return {HttpReply(200, R"({"members": [{"name": "n0", "role": "leader"}]})")};
    }
    return {HttpReply(200, kLeaderStatus)};
  });
  v1::PatroniFacts facts = GatherPatroniFacts(ConfigFor(server.port()));
  EXPECT_TRUE(facts.dcs_reachable());
  EXPECT_EQ(facts.dcs_error(), "");
  std::vector<std::string> requests = server.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_THAT(requests[1], ::testing::StartsWith("GET /cluster HTTP/1.1"));
}

TEST(PatroniFactsTest, ReadsTheRolesAndPgHbaOfTheConfigFileButNoPassword) {
  const std::string path = ::testing::TempDir() + "/patroni-facts.yml";
  {
    FILE* file = fopen(path.c_str(), "w");
    ASSERT_NE(file, nullptr);
    fputs(
        "scope: newdb\n"
        "postgresql:\n"
        "  authentication:\n"
        "    superuser: {username: operator, password: op-secret}\n"
        "    replication: {username: replication, password: repl-secret}\n"
        "    rewind: {username: rewind, password: rewind-secret}\n"
        "  pg_hba:\n"
        "    - local all all trust\n"
        "    - host all all 127.0.0.1/32 scram-sha-256\n",
        file);
    fclose(file);
  }
  PatroniConfig config = ConfigFor(1);  // the file is read whether or not Patroni answers
  config.config_file = path;
  v1::PatroniFacts facts = GatherPatroniFacts(config);
  EXPECT_FALSE(facts.reachable());
  EXPECT_TRUE(facts.config_read()) << facts.config_error();
  EXPECT_EQ(facts.superuser(), "operator");
  EXPECT_EQ(facts.replication_user(), "replication");
  EXPECT_EQ(facts.rewind_user(), "rewind");
  EXPECT_THAT(facts.pg_hba(), ::testing::ElementsAre("local all all trust",
                                                     "host all all 127.0.0.1/32 scram-sha-256"));
  EXPECT_THAT(facts.DebugString(), ::testing::Not(HasSubstr("secret")));
  remove(path.c_str());

  facts = GatherPatroniFacts(config);
  EXPECT_FALSE(facts.config_read());
  EXPECT_THAT(facts.config_error(), HasSubstr(path));
}

}  // namespace
}  // namespace pghaul::agent
