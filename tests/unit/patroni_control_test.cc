// PatroniAction tasks (agent/patroni_control.h) against a fake Patroni REST API served locally,
// the process helpers against real local processes and sockets, and the executor factory's
// validation of patroni tasks.
#include "agent/patroni_control.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/agent_config.h"
#include "agent/task_executors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pghaul/v1/agent_link.pb.h"
#include "tests/unit/http_test_server.h"

namespace pghaul::agent {
namespace {

// Patroni's PostgreSQL is not looked at by these tests.
RestoredDataEnvironment NoData() {
  RestoredDataEnvironment env;
  env.data_directory = "/nonexistent/data";
  return env;
}

using ::pghaul::testing::HttpReply;
using ::pghaul::testing::HttpTestServer;
using ::testing::Contains;
using ::testing::HasSubstr;

v1::PatroniAction Action(v1::PatroniAction::Action verb, uint32_t wait_seconds = 10) {
  v1::PatroniAction action;
  action.set_action(verb);
  action.set_wait_seconds(wait_seconds);
  return action;
}

PatroniConfig ConfigFor(int port) {
  PatroniConfig config;
  config.config_file = "/etc/patroni/patroni.yml";
  config.rest_api_host = "127.0.0.1";
  config.rest_api_port = port;
  config.request_timeout = absl::Seconds(5);
  return config;
}

// A fake Patroni whose pause flag follows PATCH /config (unless `obey` is false).
class FakePatroni {
 public:
  explicit FakePatroni(bool obey = true)
      : obey_(obey), server_([this](const std::string& request) { return Answer(request); }) {}
  int port() const { return server_.port(); }
  int patches() const {
    const std::vector<std::string> requests = server_.requests();
    return static_cast<int>(std::count_if(
        requests.begin(), requests.end(),
        [](const std::string& request) { return absl::StartsWith(request, "PATCH "); }));
  }
  std::vector<std::string> requests() const { return server_.requests(); }

 private:
  std::vector<std::string> Answer(const std::string& request) {
    if (absl::StartsWith(request, "PATCH /config ")) {
      if (obey_) paused_ = absl::EndsWith(request, "{\"pause\":true}");
      return {HttpReply(200, "{}")};
    }
    return {HttpReply(200, absl::StrCat(R"({"state": "running", "role": "master", "timeline": 3,)",
                                        paused_ ? R"( "pause": true,)" : "",
                                        R"( "database_system_identifier": "42",)",
                                        R"( "patroni": {"version": "3.0.2", "scope": "s"}})"))};
  }

  const bool obey_;
  std::atomic<bool> paused_{false};
  HttpTestServer server_;  // last: its thread must stop before the rest goes
};

absl::StatusOr<std::map<std::string, std::string>> RunAction(const PatroniConfig& config,
                                                             const v1::PatroniAction& action) {
  return RunPatroniAction(config, NoData(), action, nullptr, nullptr);
}

TEST(PatroniControlTest, PauseWaitsUntilPatroniReportsItAndIsIdempotent) {
  FakePatroni patroni;
  PatroniConfig config = ConfigFor(patroni.port());
  auto paused = RunAction(config, Action(v1::PatroniAction::PAUSE));
  ASSERT_TRUE(paused.ok()) << paused.status();
  EXPECT_EQ(paused->at("paused"), "true");
  EXPECT_EQ(paused->at("detail"), "paused");
  EXPECT_EQ(paused->at("timeline"), "3");
  EXPECT_EQ(paused->at("system_identifier"), "42");
  EXPECT_EQ(patroni.patches(), 1);

  auto again = RunAction(config, Action(v1::PatroniAction::PAUSE));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->at("detail"), "already paused");
  EXPECT_EQ(patroni.patches(), 1);

  auto resumed = RunAction(config, Action(v1::PatroniAction::RESUME));
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->at("paused"), "false");
  EXPECT_EQ(resumed->at("detail"), "resumed");
  EXPECT_EQ(patroni.patches(), 2);
}

TEST(PatroniControlTest, PauseThatNeverShowsRunsOutOfTime) {
  FakePatroni patroni(/*obey=*/false);
  absl::StatusOr<std::map<std::string, std::string>> paused =
      RunAction(ConfigFor(patroni.port()), Action(v1::PatroniAction::PAUSE, /*wait_seconds=*/1));
  EXPECT_TRUE(absl::IsDeadlineExceeded(paused.status())) << paused.status();
  EXPECT_THAT(paused.status().message(), HasSubstr("not paused"));
}

TEST(PatroniControlTest, PauseStopsWaitingWhenCancelled) {
  FakePatroni patroni(/*obey=*/false);
  absl::StatusOr<std::map<std::string, std::string>> paused =
      RunPatroniAction(ConfigFor(patroni.port()), NoData(), Action(v1::PatroniAction::PAUSE, 3600),
                       nullptr, [] { return true; });
  EXPECT_TRUE(absl::IsCancelled(paused.status())) << paused.status();
}

// Right after a promotion Patroni answers POST /restart with 503 "promote already in
// progress" (seen with Patroni 3.0.2): RESTART asks again until Patroni takes it.
TEST(PatroniControlTest, RestartWaitsOutAPromotionStillInProgress) {
  std::atomic<int> restarts{0};
  HttpTestServer server([&restarts](const std::string& request) -> std::vector<std::string> {
    if (absl::StartsWith(request, "POST /restart ")) {
      if (++restarts < 3) return {HttpReply(503, "promote already in progress")};
      return {HttpReply(200, "restarted successfully")};
    }
    return {HttpReply(200, R"({"state": "running", "role": "master", "timeline": 2})")};
  });
  auto restarted = RunAction(ConfigFor(server.port()), Action(v1::PatroniAction::RESTART));
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  EXPECT_EQ(restarts.load(), 3);
  EXPECT_EQ(restarted->at("detail"), "restarted");
}

TEST(PatroniControlTest, RestartRefusedForAnotherReasonFailsAtOnceWithPatronisWords) {
  std::atomic<int> restarts{0};
  HttpTestServer server([&restarts](const std::string& request) -> std::vector<std::string> {
    if (absl::StartsWith(request, "POST /restart ")) {
      ++restarts;
      return {HttpReply(503, "restart failed")};
    }
    return {HttpReply(200, R"({"state": "running", "role": "master", "timeline": 2})")};
  });
  auto restarted = RunAction(ConfigFor(server.port()), Action(v1::PatroniAction::RESTART));
  EXPECT_TRUE(absl::IsFailedPrecondition(restarted.status())) << restarted.status();
  EXPECT_THAT(restarted.status().message(), HasSubstr("answered 503: restart failed"));
  EXPECT_EQ(restarts.load(), 1);
}

TEST(PatroniControlTest, StatusOfAStoppedPatroniIsUnreachableNotAnError) {
  absl::StatusOr<std::map<std::string, std::string>> status =
      RunAction(ConfigFor(1), Action(v1::PatroniAction::STATUS));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->at("reachable"), "false");
}

TEST(PatroniControlTest, StopOfAStoppedPatroniSucceedsAtOnce) {
  PatroniConfig config = ConfigFor(1);
  config.control = PatroniConfig::Control::kCommand;
  absl::StatusOr<std::map<std::string, std::string>> stopped =
      RunAction(config, Action(v1::PatroniAction::STOP));
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->at("detail"), "already stopped");
  EXPECT_EQ(stopped->at("postgres_stopped"), "true");
}

TEST(PatroniControlTest, StartOfARunningPatroniDoesNothing) {
  FakePatroni patroni;
  PatroniConfig config = ConfigFor(patroni.port());
  config.control = PatroniConfig::Control::kCommand;
  config.command = {"/bin/false"};
  config.log_file = "/nonexistent/log";
  absl::StatusOr<std::map<std::string, std::string>> started =
      RunAction(config, Action(v1::PatroniAction::START));
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(started->at("detail"), "already running");
  EXPECT_EQ(started->at("state"), "running");
}

TEST(PatroniControlTest, StartReportsACommandThatExitsWithTheEndOfItsLog) {
  const std::string log = ::testing::TempDir() + "/patroni-start-test.log";
  remove(log.c_str());
  PatroniConfig config = ConfigFor(1);
  config.control = PatroniConfig::Control::kCommand;
  config.command = {"/bin/sh", "-c", "echo 'FATAL: config broken'; exit 3"};
  config.log_file = log;
  absl::StatusOr<std::map<std::string, std::string>> started =
      RunAction(config, Action(v1::PatroniAction::START));
  EXPECT_TRUE(absl::IsFailedPrecondition(started.status())) << started.status();
  EXPECT_THAT(started.status().message(), HasSubstr("exited right after its start"));
  EXPECT_THAT(started.status().message(), HasSubstr("FATAL: config broken"));
  remove(log.c_str());
}

TEST(PatroniControlTest, ValidationRefusesUnknownActionsAndLongWaits) {
  EXPECT_TRUE(ValidatePatroniAction(Action(v1::PatroniAction::STOP, 3600)).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(
      ValidatePatroniAction(Action(v1::PatroniAction::ACTION_UNSPECIFIED))));
  EXPECT_TRUE(absl::IsInvalidArgument(
      ValidatePatroniAction(Action(static_cast<v1::PatroniAction::Action>(99)))));
  EXPECT_TRUE(
      absl::IsInvalidArgument(ValidatePatroniAction(Action(v1::PatroniAction::STOP, 3601))));
}

TEST(PatroniProcessTest, FindsTheProcessListeningOnAPort) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  const int port = ntohs(address.sin_port);
  // Bound but not listening: not found.
  absl::StatusOr<std::vector<pid_t>> before = FindProcessesListeningOn(port);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_TRUE(before->empty());
  ASSERT_EQ(listen(fd, 1), 0);
  absl::StatusOr<std::vector<pid_t>> found = FindProcessesListeningOn(port);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(*found, ::testing::ElementsAre(getpid()));
  close(fd);
}

TEST(PatroniProcessTest, StartsACommandDetachedWithItsOutputInTheLog) {
  const std::string log = ::testing::TempDir() + "/patroni-detached-test.log";
  remove(log.c_str());
  absl::StatusOr<pid_t> pid =
      StartDetached({"/bin/sh", "-c", "echo \"sid=$(cut -d' ' -f6 /proc/$$/stat) pid=$$ x=$X\""},
                    {"PATH=/usr/bin:/bin", "X=y"}, log);
  ASSERT_TRUE(pid.ok()) << pid.status();
  int status = 0;
  ASSERT_EQ(waitpid(*pid, &status, 0), *pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::ifstream file(log);
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  // Its own session (session id = its pid), and only the environment given.
  EXPECT_THAT(text, HasSubstr(absl::StrCat("sid=", *pid, " pid=", *pid, " x=y")));
  remove(log.c_str());
}

TEST(PatroniProcessTest, RefusesACommandThatIsNotExecutable) {
  absl::StatusOr<pid_t> pid = StartDetached({"/nonexistent/patroni"}, {}, "/tmp/x.log");
  EXPECT_TRUE(absl::IsFailedPrecondition(pid.status())) << pid.status();
}

// The executor factory: what an agent refuses before anything runs.
class PatroniTaskValidationTest : public ::testing::Test {
 protected:
  PatroniTaskValidationTest() {
    config_.agent_id = "db1";
    config_.data_directory = "/nonexistent/data";
    config_.state_dir = "/nonexistent/state";
    config_.service.data_directory = config_.data_directory;
  }
  absl::Status Validate(const v1::PatroniAction& action) {
    ExecutorFactory factory = MakeExecutorFactory(&config_);
    v1::Task task;
    task.set_task_id("t1");
    *task.mutable_patroni() = action;
    return factory(task).status();
  }
  AgentConfig config_;
};

TEST_F(PatroniTaskValidationTest, AnAgentWithoutPatroniRefusesPatroniTasks) {
  absl::Status status = Validate(Action(v1::PatroniAction::STATUS));
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("not configured for Patroni"));
}

TEST_F(PatroniTaskValidationTest, APatroniAgentAcceptsEveryActionAndRefusesBadOnes) {
  config_.patroni = ConfigFor(8008);
  for (auto verb : {v1::PatroniAction::STATUS, v1::PatroniAction::START, v1::PatroniAction::STOP,
                    v1::PatroniAction::PAUSE, v1::PatroniAction::RESUME}) {
    EXPECT_TRUE(Validate(Action(verb)).ok()) << v1::PatroniAction::Action_Name(verb);
  }
  EXPECT_TRUE(absl::IsInvalidArgument(Validate(Action(v1::PatroniAction::ACTION_UNSPECIFIED))));
  EXPECT_TRUE(absl::IsInvalidArgument(Validate(Action(v1::PatroniAction::PAUSE, 100000))));
}

}  // namespace
}  // namespace pghaul::agent
