#include "agent/task_manager.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "common/task_names.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::agent {
namespace {

// Logs `lines` lines, then succeeds; or, with wait_for_cancel, blocks until cancelled.
class ScriptedExecutor : public TaskExecutor {
 public:
  ScriptedExecutor(int lines, bool wait_for_cancel, std::atomic<int>* runs)
      : lines_(lines), wait_for_cancel_(wait_for_cancel), runs_(runs) {}
  v1::TaskResult Run(TaskContext& context) override {
    ++*runs_;
    for (int i = 0; i < lines_; ++i) context.Log("stdout", "line " + std::to_string(i));
    v1::TaskResult result;
    if (wait_for_cancel_) {
      absl::Notification cancelled;
      context.OnCancel([&] { cancelled.Notify(); });
      cancelled.WaitForNotification();
      result.set_state(v1::TaskResult::FAILED);
      result.set_message("ended by cancel");
      return result;
    }
    result.set_state(v1::TaskResult::SUCCEEDED);
    return result;
  }

 private:
  int lines_;
  bool wait_for_cancel_;
  std::atomic<int>* runs_;
};

class TaskManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pghaul-task-manager-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<TaskManager> MakeManager() {
    auto manager = std::make_unique<TaskManager>(
        dir_, [this](const v1::Task& task) -> absl::StatusOr<std::unique_ptr<TaskExecutor>> {
          if (!task.has_gather_facts()) return absl::InvalidArgumentError("only gather_facts here");
          return std::make_unique<ScriptedExecutor>(lines_, wait_for_cancel_, &runs_);
        });
    EXPECT_TRUE(manager->LoadPersisted().ok());
    manager->SetSink([this](const v1::TaskEvent& event) {
      absl::MutexLock lock(&mu_);
      received_.push_back(event);
    });
    return manager;
  }

  static v1::Task GatherTask(const std::string& id) {
    v1::Task task;
    task.set_task_id(id);
    task.mutable_gather_facts();
    return task;
  }

  std::vector<v1::TaskEvent> Received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }
  void ClearReceived() {
    absl::MutexLock lock(&mu_);
    received_.clear();
  }

  std::string dir_;
  int lines_ = 3;
  bool wait_for_cancel_ = false;
  std::atomic<int> runs_{0};
  absl::Mutex mu_;
  std::vector<v1::TaskEvent> received_;
};

TEST_F(TaskManagerTest, EventsAreNumberedWithoutGapsAndEndWithTheResult) {
  auto manager = MakeManager();
  manager->Submit(GatherTask("t1"));
  ASSERT_TRUE(manager->WaitFinished("t1", absl::Seconds(10)));
  std::vector<v1::TaskEvent> events = Received();
  ASSERT_EQ(events.size(), 4u);
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].seq(), i + 1);
    EXPECT_EQ(events[i].task_id(), "t1");
  }
  EXPECT_EQ(events[0].log().text(), "line 0");
  ASSERT_TRUE(events[3].has_result());
  EXPECT_EQ(events[3].result().state(), v1::TaskResult::SUCCEEDED);
}

TEST_F(TaskManagerTest, InvalidTaskIsRefusedAndNothingRuns) {
  auto manager = MakeManager();
  v1::Task task;
  task.set_task_id("bad-op");
  task.mutable_sql();
  manager->Submit(task);
  ASSERT_TRUE(manager->WaitFinished("bad-op", absl::Seconds(1)));
  std::vector<v1::TaskEvent> events = Received();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].result().state(), v1::TaskResult::REFUSED);
  EXPECT_EQ(events[0].result().message(), "only gather_facts here");
  EXPECT_EQ(runs_, 0);
}

TEST_F(TaskManagerTest, ATaskBeyondTheRunningLimitIsRefusedAndStartsNothing) {
  wait_for_cancel_ = true;  // every task runs until cancelled
  auto manager = MakeManager();
  for (size_t i = 0; i < TaskManager::kMaxRunningTasks; ++i) {
    manager->Submit(GatherTask("run-" + std::to_string(i)));
  }
  manager->Submit(GatherTask("one-too-many"));
  ASSERT_TRUE(manager->WaitFinished("one-too-many", absl::Seconds(5)));
  v1::TaskEvent refused;
  for (const v1::TaskEvent& event : Received()) {
    if (event.task_id() == "one-too-many") refused = event;
  }
  ASSERT_TRUE(refused.has_result());
  EXPECT_EQ(refused.result().state(), v1::TaskResult::REFUSED);
  EXPECT_THAT(refused.result().message(), ::testing::HasSubstr("already runs 16 tasks"));

  // Once one has finished, the next one starts.
  manager->Cancel("run-0");
  ASSERT_TRUE(manager->WaitFinished("run-0", absl::Seconds(10)));
  manager->Submit(GatherTask("next"));
  for (int i = 0; i < 500 && runs_ < static_cast<int>(TaskManager::kMaxRunningTasks) + 1; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(runs_, static_cast<int>(TaskManager::kMaxRunningTasks) + 1);
  for (size_t i = 1; i < TaskManager::kMaxRunningTasks; ++i) {
    manager->Cancel("run-" + std::to_string(i));
  }
  manager->Cancel("next");
}

TEST_F(TaskManagerTest, UnacknowledgedEventsAreReplayedOnANewSink) {
  auto manager = MakeManager();
  manager->Submit(GatherTask("t1"));
  ASSERT_TRUE(manager->WaitFinished("t1", absl::Seconds(10)));
  manager->Ack("t1", 2);
  ClearReceived();
  manager->SetSink([this](const v1::TaskEvent& event) {
    absl::MutexLock lock(&mu_);
    received_.push_back(event);
  });
  std::vector<v1::TaskEvent> events = Received();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].seq(), 3u);
  EXPECT_EQ(events[1].seq(), 4u);
  manager->Ack("t1", 4);
  ClearReceived();
  manager->SetSink([this](const v1::TaskEvent& event) {
    absl::MutexLock lock(&mu_);
    received_.push_back(event);
  });
  EXPECT_TRUE(Received().empty());
}

TEST_F(TaskManagerTest, SendsAtMostAWindowAheadOfTheAcks) {
  lines_ = 1000;
  auto manager = MakeManager();
  manager->Submit(GatherTask("big"));
  ASSERT_TRUE(manager->WaitFinished("big", absl::Seconds(10)));
  EXPECT_EQ(Received().size(), TaskManager::kSendWindow);
  manager->Ack("big", 100);
  EXPECT_EQ(Received().size(), TaskManager::kSendWindow + 100);
  EXPECT_EQ(Received().back().seq(), 100 + TaskManager::kSendWindow);
  // The controller acks what it received, as it does on the link, until the result arrives.
  for (int round = 0; round < 10 && Received().back().seq() < 1001; ++round) {
    uint64_t acked = Received().back().seq();
    manager->Ack("big", acked);
    EXPECT_LE(Received().back().seq(), acked + TaskManager::kSendWindow);
  }
  ASSERT_EQ(Received().back().seq(), 1001u);
  EXPECT_TRUE(Received().back().has_result());
  EXPECT_EQ(Received().size(), 1001u);
}

TEST_F(TaskManagerTest, SameTaskIdReattachesInsteadOfRunningTwice) {
  wait_for_cancel_ = true;
  auto manager = MakeManager();
  manager->Submit(GatherTask("once"));
  manager->Submit(GatherTask("once"));
  manager->Cancel("once");
  ASSERT_TRUE(manager->WaitFinished("once", absl::Seconds(10)));
  manager->Submit(GatherTask("once"));
  EXPECT_EQ(runs_, 1);
  std::vector<v1::TaskEvent> events = Received();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().result().state(), v1::TaskResult::CANCELLED);
}

TEST_F(TaskManagerTest, FinishedResultSurvivesAnAgentRestart) {
  {
    auto manager = MakeManager();
    manager->Submit(GatherTask("kept"));
    ASSERT_TRUE(manager->WaitFinished("kept", absl::Seconds(10)));
  }
  ClearReceived();
  auto restarted = MakeManager();
  EXPECT_TRUE(Received().empty()) << "a loaded result waits until the controller asks";
  restarted->Submit(GatherTask("kept"));
  std::vector<v1::TaskEvent> events = Received();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].seq(), 4u);
  EXPECT_EQ(events[0].result().state(), v1::TaskResult::SUCCEEDED);
  EXPECT_EQ(runs_, 1);
}

TEST_F(TaskManagerTest, TaskRunningWhenTheAgentDiedIsReportedInterruptedNotRunAgain) {
  ASSERT_TRUE(MakeDirectories(dir_ + "/tasks").ok());
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/tasks/lost.started", "pgbackrest backup").ok());
  auto manager = MakeManager();
  manager->Submit(GatherTask("lost"));
  std::vector<v1::TaskEvent> events = Received();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].result().state(), v1::TaskResult::FAILED);
  EXPECT_NE(events[0].result().message().find("interrupted"), std::string::npos);
  EXPECT_NE(events[0].result().message().find("pgbackrest backup"), std::string::npos);
  EXPECT_EQ(runs_, 0);
}

TEST_F(TaskManagerTest, RejectsTaskIdsThatCouldEscapeTheStateDirectory) {
  EXPECT_FALSE(ValidateTaskId("../x").ok());
  EXPECT_FALSE(ValidateTaskId("a/b").ok());
  EXPECT_FALSE(ValidateTaskId("").ok());
  EXPECT_FALSE(ValidateTaskId(".hidden").ok());
  EXPECT_FALSE(ValidateTaskId(std::string(65, 'a')).ok());
  EXPECT_TRUE(ValidateTaskId("mig1.backup-2_x").ok());
}

}  // namespace
}  // namespace pghaul::agent
