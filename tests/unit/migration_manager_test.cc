// The migration state machine against fake agents that answer tasks at once (a unit test of the
// controller's logic: the real agents, PostgreSQL and pgBackRest are in
// tests/integration/migration_test.cc).
#include "controller/migration_manager.h"

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/time_proto.h"
#include "controller/agent_registry.h"
#include "controller/migration_store.h"
#include "controller/sqlite_db.h"
#include "controller/task_tracker.h"
#include "gtest/gtest.h"

namespace pghaul::controller {
namespace {

// Polls `condition` (real time) until it holds or 10 s pass.
template <typename Condition>
bool Eventually(Condition condition) {
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return condition();
}

v1::HostFacts Facts(const std::string& host, uint64_t system_id, const std::string& data_dir) {
  v1::HostFacts facts;
  facts.set_hostname(host);
  facts.set_architecture("x86_64");
  facts.set_libc_version("2.36");
  facts.set_data_directory(data_dir);
  facts.set_data_dir_free_bytes(uint64_t{100} << 30);
  facts.set_pgbackrest_version("2.45");
  v1::PostgresFacts* pg = facts.mutable_postgres();
  pg->set_reachable(true);
  pg->set_server_version_num(150018);
  pg->set_system_identifier(system_id);
  pg->set_data_directory(data_dir);
  pg->set_block_size(8192);
  pg->set_wal_segment_size(16 << 20);
  pg->set_encoding("UTF8");
  pg->set_lc_collate("C.UTF-8");
  pg->set_lc_ctype("C.UTF-8");
  pg->set_archive_mode("on");
  pg->set_archive_command("pgbackrest archive-push %p");
  pg->set_current_user("postgres");
  pg->set_is_superuser(true);
  pg->set_database_size_bytes(100 << 20);
  return facts;
}

// An agent that answers every task at once, like a healthy host would, and remembers what it
// was sent. Tasks for which `hold` returns true get no answer until Release().
class FakeAgent : public AgentSession {
 public:
  FakeAgent(std::string id, TaskTracker* tracker, v1::HostFacts facts)
      : id_(std::move(id)), tracker_(tracker), facts_(std::move(facts)) {}

  void Send(const v1::ControllerMessage& message) override {
    if (message.has_cancel()) {
      v1::TaskResult result;
      result.set_state(v1::TaskResult::CANCELLED);
      Answer(message.cancel().task_id(), result);
      return;
    }
    if (!message.has_task()) return;
    const v1::Task& task = message.task();
    {
      absl::MutexLock lock(&mu_);
      received_.push_back(task);
      if (hold_ && hold_(task)) {
        held_.push_back(task);
        return;
      }
    }
    Answer(task.task_id(), Result(task));
  }
  void Close(absl::string_view) override {}

  // What `pgbackrest info` answers (read when a task arrives).
  std::string info_json_ =
      R"([{"name":"main","status":{"code":0,"message":"ok"},"db":[{"id":1,"system-id":)"
      "7000000000000000001"
      R"(}],"backup":[{"label":"20261126-010203F","type":"full","info":{"size":104857600}}]}])";

  void HoldWhen(std::function<bool(const v1::Task&)> hold) {
    absl::MutexLock lock(&mu_);
    hold_ = std::move(hold);
  }
  void Release() {
    std::vector<v1::Task> held;
    {
      absl::MutexLock lock(&mu_);
      held.swap(held_);
      hold_ = nullptr;
    }
    for (const v1::Task& task : held) Answer(task.task_id(), Result(task));
  }
  size_t held() {
    absl::MutexLock lock(&mu_);
    return held_.size();
  }
  std::vector<v1::Task> received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }
  // "sql ENABLE_ARCHIVING", "pgbackrest backup", ... in the order received.
  std::vector<std::string> Operations() {
    std::vector<std::string> ops;
    for (const v1::Task& task : received()) ops.push_back(DescribeOp(task));
    return ops;
  }
  static std::string DescribeOp(const v1::Task& task) {
    if (task.has_sql()) return "sql " + v1::SqlQuery::Query_Name(task.sql().query());
    if (task.has_service()) return "service " + v1::ServiceAction::Action_Name(task.service().action());
    if (task.has_pgbackrest()) {
      const auto& c = task.pgbackrest();
      if (c.has_backup()) return "pgbackrest backup";
      if (c.has_restore()) return "pgbackrest restore";
      if (c.has_info()) return "pgbackrest info";
      if (c.has_stanza_create()) return "pgbackrest stanza-create";
      if (c.has_check()) return "pgbackrest check";
      return "pgbackrest other";
    }
    if (task.has_configure_pgbackrest()) return "configure";
    if (task.has_gather_facts()) return "facts";
    if (task.has_check()) return "check";
    return "?";
  }

  // How many of the next tasks of each SQL query to report interrupted.
  std::map<v1::SqlQuery::Query, int> interrupt_;
  bool restored_standby = false;
  bool promoted = false;
  bool restart_needed = false;
  std::map<std::string, std::string> checksums = {
      {"postgres/public.t", "rows=3 md5=0123456789abcdef0123456789abcdef persistence=p kind=r"}};

 private:
  void Answer(const std::string& task_id, const v1::TaskResult& result) {
    v1::TaskEvent event;
    event.set_task_id(task_id);
    event.set_seq(1);
    *event.mutable_result() = result;
    ASSERT_TRUE(tracker_->Record(id_, event).ok());
  }

  v1::TaskResult Result(const v1::Task& task) {
    v1::TaskResult result;
    if (task.has_sql() && interrupt_.count(task.sql().query()) > 0 &&
        interrupt_[task.sql().query()] > 0) {
      // As an agent restarted under the task reports it.
      --interrupt_[task.sql().query()];
      result.set_state(v1::TaskResult::FAILED);
      result.set_interrupted(true);
      result.set_message("interrupted: the agent stopped while this task ran");
      return result;
    }
    result.set_state(v1::TaskResult::SUCCEEDED);
    auto& values = *result.mutable_values();
    if (task.has_gather_facts()) *result.mutable_facts() = facts_;
    if (task.has_pgbackrest() && task.pgbackrest().has_info()) {
      result.set_info_json(info_json_);
    }
    if (task.has_pgbackrest() && task.pgbackrest().has_restore()) {
      restored_standby = task.pgbackrest().restore().type() == "standby";
    }
    if (task.has_sql()) {
      switch (task.sql().query()) {
        case v1::SqlQuery::ENABLE_ARCHIVING:
          values["restart_needed"] = restart_needed ? "true" : "false";
          break;
        case v1::SqlQuery::LAST_REPLAY_LSN:
          values["lsn"] = "0/9000000";
          values["in_recovery"] = restored_standby && !promoted ? "true" : "false";
          break;
        case v1::SqlQuery::SWITCH_WAL:
          values["lsn"] = "0/8000100";
          values["walfile"] = "000000010000000000000008";
          break;
        case v1::SqlQuery::STAT_ARCHIVER:
          values["last_archived_wal"] = "000000010000000000000008";
          break;
        case v1::SqlQuery::WAIT_ARCHIVED:
          values["last_archived_wal"] = task.sql().walfile();
          values["reached"] = "true";
          break;
        case v1::SqlQuery::WAIT_REPLAYED:
          values["lsn"] = task.sql().lsn();
          values["in_recovery"] = restored_standby && !promoted ? "true" : "false";
          values["reached"] = "true";
          break;
        case v1::SqlQuery::PROMOTE:
          promoted = true;
          values["promoted"] = "true";
          break;
        case v1::SqlQuery::TABLE_CHECKSUMS:
          for (const auto& [k, v] : checksums) values[k] = v;
          break;
        case v1::SqlQuery::FENCE_STATUS:
          values["read_only"] = "on";
          values["hba_block"] = "true";
          values["other_sessions"] = "0";
          values["fenced"] = "true";
          break;
        default:
          break;
      }
    }
    return result;
  }

  const std::string id_;
  TaskTracker* const tracker_;
  const v1::HostFacts facts_;
  absl::Mutex mu_;
  std::vector<v1::Task> received_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::Task> held_ ABSL_GUARDED_BY(mu_);
  std::function<bool(const v1::Task&)> hold_ ABSL_GUARDED_BY(mu_);
};

constexpr char kPlan[] = R"yaml(
name: m1
source: {agent: legacy}
target: {agent: target, data_directory: /var/lib/postgresql/15/main, allow_overwrite: true}
stanza: main
repository: {posix: {path: /srv/repo}}
source_restart_allowed: true
)yaml";

class MigrationManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = *SqliteDb::Open(":memory:");
    tasks_ = *TaskTracker::Open(db_.get());
    store_path_ = absl::StrCat(::testing::TempDir(), "/migrations-", getpid(), "-",
                               ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                               ".db");
    std::remove(store_path_.c_str());
    store_ = *MigrationStore::Open(store_path_);
    source_ = std::make_shared<FakeAgent>(
        "legacy", tasks_.get(), Facts("old", 7000000000000000001u, "/var/lib/postgresql/15/main"));
    target_ = std::make_shared<FakeAgent>(
        "target", tasks_.get(), Facts("new", 7000000000000000002u, "/var/lib/postgresql/15/main"));
    Connect("legacy", source_);
    Connect("target", target_);
    manager_ = MakeManager();
  }
  void TearDown() override {
    manager_.reset();
    std::remove(store_path_.c_str());
  }

  void Connect(const std::string& id, std::shared_ptr<FakeAgent> agent) {
    v1::Hello hello;
    hello.set_agent_id(id);
    hello.set_incarnation("inc-" + id);
    registry_.Connect(hello, "test", agent);
  }
  std::unique_ptr<MigrationManager> MakeManager() {
    auto manager = std::make_unique<MigrationManager>(
        MigrationDeps{.registry = &registry_,
                      .tasks = tasks_.get(),
                      .store = store_.get(),
                      .clock = &clock_,
                      .env = [](const char*) -> const char* { return nullptr; },
                      .poll_interval = absl::Milliseconds(2)});
    EXPECT_TRUE(manager->Load().ok());
    return manager;
  }
  absl::StatusOr<v1::MigrationInfo> Apply(const std::string& yaml = kPlan) {
    v1::ApplyPlanRequest request;
    request.set_plan_yaml(yaml);
    request.set_source_name("plan.yaml");
    return manager_->Apply(request);
  }
  absl::StatusOr<v1::StartPhaseResponse> Start(const std::string& command,
                                               const std::string& until = "") {
    v1::StartPhaseRequest request;
    request.set_migration_id("m1");
    request.set_command(command);
    request.set_until(until);
    return manager_->Start(request);
  }
  v1::MigrationInfo Info() { return *manager_->Get("m1", 0, 200); }
  bool SettlesIn(const std::string& state) {
    return Eventually([&] { return Info().state() == state; });
  }
  std::string PhaseState(const std::string& phase) {
    const v1::MigrationInfo info = Info();
    for (const v1::PhaseInfo& p : info.phases()) {
      if (p.name() == phase) return p.state();
    }
    return "?";
  }

  FakeClock clock_{absl::FromCivil(absl::CivilSecond(2026, 11, 26, 12, 0, 0), absl::UTCTimeZone())};
  AgentRegistry registry_{&clock_, absl::Seconds(3600), 3};
  std::unique_ptr<SqliteDb> db_;
  std::unique_ptr<TaskTracker> tasks_;
  std::string store_path_;
  std::unique_ptr<MigrationStore> store_;
  std::shared_ptr<FakeAgent> source_;
  std::shared_ptr<FakeAgent> target_;
  std::unique_ptr<MigrationManager> manager_;
};

TEST_F(MigrationManagerTest, ApplyRefusesUnknownAgentsNamingTheKeyAndTheKnownOnes) {
  std::string yaml = kPlan;
  yaml.replace(yaml.find("agent: target"), 13, "agent: nobody");
  absl::StatusOr<v1::MigrationInfo> applied = Apply(yaml);
  ASSERT_FALSE(applied.ok());
  EXPECT_EQ(applied.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(applied.status().message(), "target.agent: no agent 'nobody'"))
      << applied.status();
  EXPECT_TRUE(absl::StrContains(applied.status().message(), "known: legacy, target"));
  EXPECT_TRUE(manager_->List().empty());
}

TEST_F(MigrationManagerTest, ApplyRefusesASecondPlanWithTheSameNameUnlessReplacedBeforeRunning) {
  ASSERT_TRUE(Apply().ok());
  absl::StatusOr<v1::MigrationInfo> again = Apply();
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  v1::ApplyPlanRequest replace;
  replace.set_plan_yaml(kPlan);
  replace.set_replace(true);
  EXPECT_TRUE(manager_->Apply(replace).ok());
}

TEST_F(MigrationManagerTest, RunGoesThroughEveryPhaseInOrderAndCompletes) {
  ASSERT_TRUE(Apply().ok());
  ASSERT_TRUE(Start("run").ok());
  ASSERT_TRUE(SettlesIn("completed")) << Info().DebugString();
  const v1::MigrationInfo done = Info();
  for (const v1::PhaseInfo& phase : done.phases()) {
    EXPECT_EQ(phase.state(), "succeeded") << phase.name();
    EXPECT_EQ(phase.attempt(), 1u) << phase.name();
  }
  EXPECT_EQ(Info().backup_label(), "20261126-010203F");
  EXPECT_EQ(Info().restore_mode(), "standby");  // a run through cutover restores a standby
  EXPECT_TRUE(Info().verify().passed());
  // The source is fenced before the final switch, and the target promoted only after both.
  std::vector<std::string> ops = source_->Operations();
  auto fence = std::find(ops.begin(), ops.end(), "sql FENCE_READ_ONLY");
  ASSERT_NE(fence, ops.end());
  EXPECT_NE(std::find(fence, ops.end(), "sql SWITCH_WAL"), ops.end());
  EXPECT_TRUE(target_->promoted);
  std::vector<std::string> target_ops = target_->Operations();
  EXPECT_EQ(std::count(target_ops.begin(), target_ops.end(), "pgbackrest restore"), 1);
  EXPECT_EQ(std::count(ops.begin(), ops.end(), "pgbackrest backup"), 1);
}

TEST_F(MigrationManagerTest, AReadOnlyTaskInterruptedByAnAgentRestartIsSentAgain) {
  target_->interrupt_[v1::SqlQuery::WAIT_REPLAYED] = 2;  // the catch-up's wait, twice
  source_->interrupt_[v1::SqlQuery::ENABLE_ARCHIVING] = 1;  // not read-only: never sent again
  ASSERT_TRUE(Apply().ok());
  ASSERT_TRUE(Start("run").ok());
  ASSERT_TRUE(SettlesIn("failed")) << Info().DebugString();
  EXPECT_EQ(PhaseState("prepare-source"), "failed");
  std::vector<std::string> ops = source_->Operations();
  EXPECT_EQ(std::count(ops.begin(), ops.end(), "sql ENABLE_ARCHIVING"), 1);
  EXPECT_TRUE(absl::StrContains(Info().DebugString(), "interrupted")) << Info().DebugString();

  // The read-only waits of the cutover are sent again and it completes. (Start is refused while
  // the failed run's worker is still ending.)
  ASSERT_TRUE(Eventually([&] { return Start("run").ok(); }));
  ASSERT_TRUE(SettlesIn("completed")) << Info().DebugString();
  std::vector<v1::Task> waits;
  for (const v1::Task& task : target_->received()) {
    if (task.has_sql() && task.sql().query() == v1::SqlQuery::WAIT_REPLAYED) waits.push_back(task);
  }
  // catch-up (2 interrupted + 1), settle, probe, final-replay.
  ASSERT_EQ(waits.size(), 6u);
  EXPECT_NE(waits[0].task_id(), waits[1].task_id());
  EXPECT_NE(waits[1].task_id(), waits[2].task_id());
  EXPECT_TRUE(absl::StrContains(waits[2].task_id(), ".catch-up")) << waits[2].task_id();
}

TEST_F(MigrationManagerTest, PreflightFailureStopsBeforeAnythingChanges) {
  std::string yaml = kPlan;
  yaml.replace(yaml.find("allow_overwrite: true"), 21, "allow_overwrite: false");
  ASSERT_TRUE(Apply(yaml).ok());
  ASSERT_TRUE(Start("run").ok());
  ASSERT_TRUE(SettlesIn("failed"));
  EXPECT_EQ(PhaseState("preflight"), "failed");
  EXPECT_TRUE(absl::StrContains(Info().message(), "target-overwrite")) << Info().message();
  for (const std::string& op : source_->Operations()) {
    EXPECT_TRUE(op == "configure" || op == "facts" || op == "pgbackrest info") << op;
  }
}

TEST_F(MigrationManagerTest, VerifyNamesTheTablesThatDiffer) {
  target_->checksums["postgres/public.t"] =
      "rows=2 md5=ffffffffffffffffffffffffffffffff persistence=p kind=r";
  ASSERT_TRUE(Apply().ok());
  ASSERT_TRUE(Start("run", "verify").ok());
  ASSERT_TRUE(SettlesIn("failed"));
  EXPECT_EQ(PhaseState("verify"), "failed");
  EXPECT_TRUE(absl::StrContains(Info().message(), "postgres/public.t")) << Info().message();
  EXPECT_FALSE(Info().verify().passed());
}

TEST_F(MigrationManagerTest, PhaseCommandsSayWhatMustRunFirst) {
  ASSERT_TRUE(Apply().ok());
  absl::StatusOr<v1::StartPhaseResponse> restore = Start("restore");
  EXPECT_EQ(restore.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(restore.status().message(), "pghaul backup m1"));
  EXPECT_EQ(Start("cutover").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Start("dance").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Start("run", "lunch").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(source_->received().empty());
}

TEST_F(MigrationManagerTest, DryRunListsEveryTaskAndSendsNothing) {
  ASSERT_TRUE(Apply().ok());
  v1::StartPhaseRequest request;
  request.set_migration_id("m1");
  request.set_command("backup");
  request.set_dry_run(true);
  absl::StatusOr<v1::StartPhaseResponse> dry = manager_->Start(request);
  ASSERT_TRUE(dry.ok()) << dry.status();
  std::vector<std::string> planned;
  for (const v1::PlannedTask& task : dry->planned()) {
    planned.push_back(absl::StrCat(task.agent_id(), ":", task.description()));
    EXPECT_FALSE(task.task().configure_pgbackrest().has_secrets());
  }
  EXPECT_NE(std::find(planned.begin(), planned.end(), "legacy:pgbackrest backup"), planned.end());
  EXPECT_NE(std::find(planned.begin(), planned.end(), "legacy:sql ENABLE_ARCHIVING"),
            planned.end());
  EXPECT_TRUE(source_->received().empty());
  EXPECT_TRUE(target_->received().empty());
  EXPECT_EQ(Info().state(), "planned");
}

TEST_F(MigrationManagerTest, TheBackupWaitsForTheWindowAndNeverStartsOutsideIt) {
  std::string yaml = kPlan;
  yaml += "window: {start: \"02:00\", end: \"04:00\", timezone: UTC}\n";
  clock_.Set(absl::FromCivil(absl::CivilSecond(2026, 11, 26, 1, 30, 0), absl::UTCTimeZone()));
  ASSERT_TRUE(Apply(yaml).ok());
  ASSERT_TRUE(Start("backup").ok());
  ASSERT_TRUE(SettlesIn("scheduled"));
  // Preflight only reads: it runs at once. prepare-source (which may restart the source) waits.
  EXPECT_EQ(PhaseState("preflight"), "succeeded");
  EXPECT_EQ(PhaseState("prepare-source"), "waiting");
  absl::SleepFor(absl::Milliseconds(50));  // many polls of the (fake) clock
  for (const std::string& op : source_->Operations()) {
    EXPECT_NE(op, "sql ENABLE_ARCHIVING");
    EXPECT_NE(op, "pgbackrest backup");
  }
  EXPECT_TRUE(absl::StrContains(Info().message(), "02:00-04:00")) << Info().message();
  clock_.Set(absl::FromCivil(absl::CivilSecond(2026, 11, 26, 2, 0, 0), absl::UTCTimeZone()));
  ASSERT_TRUE(SettlesIn("ready")) << Info().DebugString();
  EXPECT_EQ(PhaseState("backup"), "succeeded");
}

TEST_F(MigrationManagerTest, AtDelaysTheBackupUntilTheGivenTime) {
  ASSERT_TRUE(Apply().ok());
  v1::StartPhaseRequest request;
  request.set_migration_id("m1");
  request.set_command("backup");
  *request.mutable_not_before() = ToProto(clock_.Now() + absl::Hours(2));
  ASSERT_TRUE(manager_->Start(request).ok());
  ASSERT_TRUE(SettlesIn("scheduled"));
  clock_.Advance(absl::Hours(1));
  absl::SleepFor(absl::Milliseconds(30));
  EXPECT_EQ(Info().state(), "scheduled");
  clock_.Advance(absl::Hours(1));
  ASSERT_TRUE(SettlesIn("ready"));
}

TEST_F(MigrationManagerTest, ARestartedControllerResumesTheBackupWithoutSendingASecondOne) {
  source_->HoldWhen([](const v1::Task& task) {
    return task.has_pgbackrest() && task.pgbackrest().has_backup();
  });
  ASSERT_TRUE(Apply().ok());
  ASSERT_TRUE(Start("backup").ok());
  ASSERT_TRUE(Eventually([&] { return source_->held() == 1; }));
  manager_.reset();  // the controller stops (the journal says: backup running)
  manager_ = MakeManager();
  ASSERT_TRUE(Eventually([&] { return source_->held() == 2; }));
  std::set<std::string> backup_ids;
  std::vector<bool> reattach;
  for (const v1::Task& task : source_->received()) {
    if (task.has_pgbackrest() && task.pgbackrest().has_backup()) {
      backup_ids.insert(task.task_id());
      reattach.push_back(task.reattach_only());
    }
  }
  // The first controller starts the backup; the restarted one only re-attaches to it.
  EXPECT_EQ(reattach, (std::vector<bool>{false, true}));
  EXPECT_EQ(backup_ids.size(), 1u);  // the same task id: the agent re-attaches
  EXPECT_TRUE(source_->received().back().reattach_only());
  source_->Release();
  ASSERT_TRUE(SettlesIn("ready")) << Info().DebugString();
  EXPECT_EQ(PhaseState("backup"), "succeeded");
  const v1::MigrationInfo info = Info();
  for (const v1::PhaseInfo& p : info.phases()) {
    if (p.name() == "backup") {
      EXPECT_EQ(p.attempt(), 1u);
    }
  }
}

TEST_F(MigrationManagerTest, AbortPutsTheSourceBackAndStopsTheTarget) {
  ASSERT_TRUE(Apply().ok());
  ASSERT_TRUE(Start("run", "restore").ok());
  ASSERT_TRUE(SettlesIn("ready"));
  ASSERT_TRUE(manager_->Abort("m1").ok());
  ASSERT_TRUE(SettlesIn("aborted")) << Info().DebugString();
  std::vector<std::string> ops = source_->Operations();
  EXPECT_EQ(ops.back(), "sql RESTORE_ARCHIVING");
  EXPECT_EQ(target_->Operations().back(), "service STOP");
  EXPECT_EQ(Start("run").status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(MigrationManagerTest, AbortCancelsTheRunningTask) {
  source_->HoldWhen([](const v1::Task& task) {
    return task.has_pgbackrest() && task.pgbackrest().has_backup();
  });
  ASSERT_TRUE(Apply().ok());
  ASSERT_TRUE(Start("backup").ok());
  ASSERT_TRUE(Eventually([&] { return source_->held() == 1; }));
  ASSERT_TRUE(manager_->Abort("m1").ok());
  ASSERT_TRUE(SettlesIn("aborted")) << Info().DebugString();
  EXPECT_EQ(PhaseState("backup"), "aborted");
}

TEST_F(MigrationManagerTest, AbortIsRefusedOnceTheTargetIsPromoted) {
  ASSERT_TRUE(Apply().ok());
  ASSERT_TRUE(Start("run").ok());
  ASSERT_TRUE(SettlesIn("completed"));
  absl::StatusOr<v1::MigrationInfo> abort = manager_->Abort("m1");
  EXPECT_EQ(abort.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Info().state(), "completed");
}

TEST_F(MigrationManagerTest, AFailureAfterPromotionSaysToFinishWithRunNotAbort) {
  target_->interrupt_[v1::SqlQuery::CHECKPOINT] = 1;  // finish's first task
  ASSERT_TRUE(Apply().ok());
  ASSERT_TRUE(Start("run").ok());
  ASSERT_TRUE(SettlesIn("failed")) << Info().DebugString();
  EXPECT_EQ(PhaseState("finish"), "failed");
  EXPECT_TRUE(absl::StrContains(Info().message(), "The target is already promoted: fix the "
                                                  "cause, then finish with pghaul run m1"))
      << Info().message();
  EXPECT_FALSE(absl::StrContains(Info().message(), "pghaul finish")) << Info().message();
  EXPECT_FALSE(absl::StrContains(Info().message(), "pghaul abort")) << Info().message();
  // What it says works.
  ASSERT_TRUE(Eventually([&] { return Start("run").ok(); }));
  ASSERT_TRUE(SettlesIn("completed")) << Info().DebugString();
}

TEST_F(MigrationManagerTest, ABackupListOfTheWrongShapeFailsTheBackupWithoutCrashing) {
  // A label that is not a string and a size that is not an integer: before, nlohmann threw out
  // of the phase (and the float size was undefined behaviour).
  source_->info_json_ =
      R"([{"name":"main","status":{"code":0,"message":"ok"},"db":[{"id":1,"system-id":)"
      "7000000000000000001"
      R"(}],"backup":[{"label":5,"type":"full","info":{"size":1e300}}]}])";
  target_->info_json_ = source_->info_json_;
  ASSERT_TRUE(Apply().ok());
  ASSERT_TRUE(Start("run").ok());
  ASSERT_TRUE(SettlesIn("failed")) << Info().DebugString();
  EXPECT_TRUE(absl::StrContains(Info().message(), "lists no backup")) << Info().message();
}

TEST_F(MigrationManagerTest, EventsAreJournaledInOrderAndSurviveARestart) {
  ASSERT_TRUE(Apply().ok());
  ASSERT_TRUE(Start("run", "backup").ok());
  ASSERT_TRUE(SettlesIn("ready"));
  v1::MigrationInfo before = Info();
  ASSERT_GT(before.events_size(), 5);
  manager_ = MakeManager();
  v1::MigrationInfo after = Info();
  EXPECT_EQ(after.state(), "ready");
  ASSERT_EQ(after.events_size(), before.events_size());
  for (int i = 0; i < after.events_size(); ++i) {
    EXPECT_EQ(after.events(i).seq(), static_cast<uint64_t>(i + 1));
    EXPECT_EQ(after.events(i).text(), before.events(i).text());
  }
  v1::MigrationInfo tail = *manager_->Get("m1", after.events(2).seq(), 2);
  ASSERT_EQ(tail.events_size(), 2);
  EXPECT_EQ(tail.events(1).seq(), after.last_event_seq());
}

}  // namespace
}  // namespace pghaul::controller
