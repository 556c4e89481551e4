// The agent's ControllerLink against the controller's real AgentLinkService, over real gRPC on
// loopback (port 0), in one process.
#include "agent/controller_link.h"

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <thread>

#include "common/clock.h"
#include "controller/agent_link_service.h"
#include "controller/agent_registry.h"
#include "controller/sqlite_db.h"
#include "controller/task_tracker.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"

namespace pghaul {
namespace {

// Polls `condition` until it holds or `timeout` passes.
template <typename Condition>
bool Eventually(Condition condition, absl::Duration timeout = absl::Seconds(10)) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return condition();
}

// A controller: registry + AgentLink service + ticker, on 127.0.0.1 at a given or a free port.
class TestController {
 public:
  explicit TestController(int port = 0, const std::string& db_path = ":memory:",
                          int missed_heartbeats = 3)
      : db_(*controller::SqliteDb::Open(db_path)),
        tasks_(*controller::TaskTracker::Open(db_.get())),
        registry_(Clock::Real(), absl::Milliseconds(100), missed_heartbeats),
        service_(&registry_, tasks_.get(), "test-controller", absl::Milliseconds(100)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ticker_ = std::thread([this] {
      while (!stopping_.WaitForNotificationWithTimeout(absl::Milliseconds(100))) service_.Tick();
    });
  }
  ~TestController() {
    stopping_.Notify();
    ticker_.join();
    server_->Shutdown(std::chrono::system_clock::now());
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  controller::AgentRegistry& registry() { return registry_; }
  controller::TaskTracker& tasks() { return *tasks_; }
  bool Online(const std::string& id) {
    auto info = registry_.Get(id);
    return info.ok() && info->online();
  }

 private:
  std::unique_ptr<controller::SqliteDb> db_;
  std::unique_ptr<controller::TaskTracker> tasks_;
  controller::AgentRegistry registry_;
  controller::AgentLinkService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  absl::Notification stopping_;
  std::thread ticker_;
};

class RunningLink {
 public:
  RunningLink(const std::string& address, const std::string& id, const std::string& incarnation,
              std::string state_dir = "")
      : state_dir_(state_dir.empty() ? MakeTempDir() : state_dir),
        owns_state_dir_(state_dir.empty()),
        tasks_(state_dir_,
               [](const v1::Task&) -> absl::StatusOr<std::unique_ptr<agent::TaskExecutor>> {
                 return std::make_unique<LinesExecutor>();
               }),
        link_(
            Options(address, id, incarnation),
            [] {
              v1::HostFacts facts;
              facts.set_hostname("test-host");
              facts.mutable_postgres()->set_reachable(true);
              facts.mutable_postgres()->set_server_version_num(150018);
              return facts;
            },
            &tasks_),
        thread_([this] {
          EXPECT_TRUE(tasks_.LoadPersisted().ok());
          link_.Run();
        }) {}
  ~RunningLink() {
    link_.Stop();
    thread_.join();
    if (owns_state_dir_) std::filesystem::remove_all(state_dir_);
  }
  agent::TaskManager& tasks() { return tasks_; }

  // Logs kLines lines, a line every millisecond until released, then succeeds.
  class LinesExecutor : public agent::TaskExecutor {
   public:
    static constexpr int kLines = 600;
    v1::TaskResult Run(agent::TaskContext& context) override {
      for (int i = 0; i < kLines; ++i) {
        context.Log("stdout", "line " + std::to_string(i));
        absl::SleepFor(absl::Milliseconds(1));
      }
      v1::TaskResult result;
      result.set_state(v1::TaskResult::SUCCEEDED);
      return result;
    }
  };

  static std::string MakeTempDir() {
    char pattern[] = "/tmp/pghaul-link-test-XXXXXX";
    return mkdtemp(pattern);
  }

 private:
  static agent::LinkOptions Options(const std::string& address, const std::string& id,
                                    const std::string& incarnation) {
    agent::LinkOptions options;
    options.agent_id = id;
    options.incarnation = incarnation;
    options.controller_address = address;
    options.reconnect_initial = absl::Milliseconds(50);
    options.reconnect_max = absl::Milliseconds(200);
    options.facts_interval = absl::Seconds(1);
    return options;
  }
  const std::string state_dir_;
  const bool owns_state_dir_;
  agent::TaskManager tasks_;
  agent::ControllerLink link_;
  std::thread thread_;
};

TEST(ControllerLinkTest, AgentComesOnlineWithItsFactsAndVersions) {
  TestController controller;
  RunningLink link(controller.address(), "legacy", "inc-a");
  ASSERT_TRUE(Eventually([&] { return controller.Online("legacy"); }));
  v1::AgentInfo info = *controller.registry().Get("legacy");
  EXPECT_EQ(info.facts().hostname(), "test-host");
  EXPECT_EQ(info.facts().postgres().server_version_num(), 150018);
  EXPECT_EQ(info.versions().protocol(), 1u);
  EXPECT_EQ(info.incarnation(), "inc-a");
}

TEST(ControllerLinkTest, HeartbeatsKeepAnIdleAgentOnlinePastTheTimeout) {
  // 20 missed heartbeats of 100 ms: tight enough that an idle stream without heartbeats goes
  // offline well inside the 6 s watched below, loose enough for a loaded 2-core CI machine
  // (3 x 100 ms once failed there with 399 ms between two messages, 8 x 100 ms with 800 ms
  // while the unit tests ran two at a time beside a build).
  TestController controller(0, ":memory:", 20);
  RunningLink link(controller.address(), "legacy", "inc-a");
  ASSERT_TRUE(Eventually([&] { return controller.Online("legacy"); }));
  // 3 offline timeouts with nothing but heartbeats on the stream.
  absl::Time until = absl::Now() + absl::Seconds(6);
  while (absl::Now() < until) {
    ASSERT_TRUE(controller.Online("legacy"));
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(controller.registry().Get("legacy")->reconnects(), 0u);
}

TEST(ControllerLinkTest, StoppedAgentGoesOffline) {
  TestController controller;
  {
    RunningLink link(controller.address(), "legacy", "inc-a");
    ASSERT_TRUE(Eventually([&] { return controller.Online("legacy"); }));
  }
  EXPECT_TRUE(Eventually([&] { return !controller.Online("legacy"); }, absl::Seconds(2)));
}

TEST(ControllerLinkTest, AgentReconnectsToARestartedControllerOnTheSamePort) {
  int port;
  std::unique_ptr<RunningLink> link;
  {
    TestController controller;
    port = controller.port();
    link = std::make_unique<RunningLink>(controller.address(), "target", "inc-b");
    ASSERT_TRUE(Eventually([&] { return controller.Online("target"); }));
  }
  {
    TestController restarted(port);
    ASSERT_EQ(restarted.port(), port);
    EXPECT_TRUE(Eventually([&] { return restarted.Online("target"); }));
    EXPECT_EQ(restarted.registry().Get("target")->incarnation(), "inc-b");
    link.reset();
  }
}

TEST(ControllerLinkTest, SecondAgentWithTheSameIdReplacesTheFirstStream) {
  TestController controller;
  RunningLink first(controller.address(), "legacy", "inc-1");
  ASSERT_TRUE(Eventually([&] { return controller.Online("legacy"); }));
  RunningLink second(controller.address(), "legacy", "inc-2");
  ASSERT_TRUE(
      Eventually([&] { return controller.registry().Get("legacy")->incarnation() == "inc-2"; }));
  EXPECT_GE(controller.registry().Get("legacy")->restarts(), 1u);
  EXPECT_TRUE(controller.Online("legacy"));
}

v1::Task LinesTask(const std::string& id) {
  v1::Task task;
  task.set_task_id(id);
  task.mutable_gather_facts();
  return task;
}

TEST(ControllerLinkTest, TaskEventsAreJournaledExactlyOnceWithTheResult) {
  TestController controller;
  RunningLink link(controller.address(), "legacy", "inc-a");
  ASSERT_TRUE(Eventually([&] { return controller.Online("legacy"); }));
  ASSERT_TRUE(controller.tasks().Register("legacy", LinesTask("t-1")).ok());
  controller.registry().Session("legacy")->Send([] {
    v1::ControllerMessage message;
    *message.mutable_task() = LinesTask("t-1");
    return message;
  }());
  ASSERT_TRUE(Eventually([&] { return controller.tasks().Get("t-1")->has_result(); }));
  v1::TaskInfo info = *controller.tasks().Get("t-1", 1000);
  EXPECT_EQ(info.state(), "succeeded");
  EXPECT_EQ(info.last_seq(), RunningLink::LinesExecutor::kLines + 1u);
  EXPECT_EQ(info.events_received(), info.last_seq());
  EXPECT_EQ(info.events_lost(), 0u);
}

TEST(ControllerLinkTest, ControllerRestartMidTaskLosesAndDuplicatesNoEvent) {
  char pattern[] = "/tmp/pghaul-link-db-XXXXXX";
  const std::string dir = mkdtemp(pattern);
  // Removed however the test ends (an ASSERT returns early).
  std::unique_ptr<const std::string, void (*)(const std::string*)> cleanup(
      &dir, [](const std::string* path) { std::filesystem::remove_all(*path); });
  const std::string db_path = dir + "/state.db";
  int port = 0;
  std::unique_ptr<RunningLink> link;
  {
    TestController controller(0, db_path);
    port = controller.port();
    link = std::make_unique<RunningLink>(controller.address(), "legacy", "inc-a");
    ASSERT_TRUE(Eventually([&] { return controller.Online("legacy"); }));
    ASSERT_TRUE(controller.tasks().Register("legacy", LinesTask("t-restart")).ok());
    v1::ControllerMessage message;
    *message.mutable_task() = LinesTask("t-restart");
    controller.registry().Session("legacy")->Send(message);
    ASSERT_TRUE(Eventually([&] { return controller.tasks().Get("t-restart")->last_seq() >= 50; }));
    ASSERT_FALSE(controller.tasks().Get("t-restart")->has_result());
  }  // the controller goes away mid-task
  {
    TestController restarted(port, db_path);
    ASSERT_TRUE(Eventually([&] { return restarted.tasks().Get("t-restart")->has_result(); }));
    v1::TaskInfo info = *restarted.tasks().Get("t-restart", 0);
    EXPECT_EQ(info.state(), "succeeded");
    EXPECT_EQ(info.last_seq(), RunningLink::LinesExecutor::kLines + 1u);
    EXPECT_EQ(info.events_received(), info.last_seq()) << "every event journaled exactly once";
    EXPECT_EQ(info.events_lost(), 0u);
    link.reset();
  }
}

}  // namespace
}  // namespace pghaul
