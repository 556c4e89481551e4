// Formatting of tasks for people (cli/task_table.h) and the text layout helpers it uses.
#include <string>

#include "absl/time/time.h"
#include "cli/task_table.h"
#include "cli/text_layout.h"
#include "common/time_proto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);  // 2023-11-14 22:13:20 UTC

v1::TaskInfo Task(absl::string_view id, absl::string_view op, absl::string_view state,
                  absl::Duration age) {
  v1::TaskInfo task;
  task.set_task_id(std::string(id));
  task.set_agent_id("legacy-db1");
  task.set_op(std::string(op));
  task.set_state(std::string(state));
  *task.mutable_created_at() = ToProto(kNow - age);
  return task;
}

v1::TaskInfo Finished(v1::TaskInfo task, v1::TaskResult::State state, absl::string_view message,
                      absl::Duration took) {
  task.set_state(state == v1::TaskResult::SUCCEEDED   ? "succeeded"
                 : state == v1::TaskResult::CANCELLED ? "cancelled"
                 : state == v1::TaskResult::REFUSED   ? "refused"
                                                      : "failed");
  task.mutable_result()->set_state(state);
  task.mutable_result()->set_message(std::string(message));
  *task.mutable_finished_at() = ToProto(FromProto(task.created_at()) + took);
  return task;
}

v1::Progress Progress(double percent, double bytes_per_second, int64_t eta_seconds) {
  v1::Progress progress;
  progress.set_percent(percent);
  progress.set_bytes_total(uint64_t{4} << 30);
  progress.set_bytes_done(static_cast<uint64_t>(percent / 100.0 * (uint64_t{4} << 30)));
  progress.set_bytes_per_second(bytes_per_second);
  progress.set_eta_seconds(eta_seconds);
  return progress;
}

TEST(HumanDurationTest, UsesTheTwoLargestUnits) {
  EXPECT_EQ(HumanDuration(absl::ZeroDuration()), "0s");
  EXPECT_EQ(HumanDuration(absl::Seconds(-5)), "0s");
  EXPECT_EQ(HumanDuration(absl::Milliseconds(300)), "<1s");
  EXPECT_EQ(HumanDuration(absl::Seconds(45)), "45s");
  EXPECT_EQ(HumanDuration(absl::Seconds(80)), "1m20s");
  EXPECT_EQ(HumanDuration(absl::Minutes(2)), "2m");
  EXPECT_EQ(HumanDuration(absl::Hours(2) + absl::Minutes(3) + absl::Seconds(59)), "2h3m");
  EXPECT_EQ(HumanDuration(absl::Hours(76)), "3d4h");
}

TEST(HumanRateTest, KeepsOneDecimalOnlyBelowTen) {
  EXPECT_EQ(HumanRate(0), "0 B/s");
  EXPECT_EQ(HumanRate(512), "512 B/s");
  EXPECT_EQ(HumanRate(1.5 * 1024 * 1024), "1.5 MiB/s");
  EXPECT_EQ(HumanRate(120.0 * 1024 * 1024), "120 MiB/s");
  EXPECT_EQ(HumanRate(-1), "0 B/s");
}

TEST(FormatProgressTest, ShowsPercentRateAndEta) {
  EXPECT_EQ(FormatProgress(Progress(45.7, 120.0 * 1024 * 1024, 80)), "45% 120 MiB/s ETA 1m20s");
  EXPECT_EQ(FormatProgress(Progress(45.7, 120.0 * 1024 * 1024, 80), /*with_bytes=*/true),
            "45% (1.8 GiB of 4.0 GiB) 120 MiB/s ETA 1m20s");
}

TEST(FormatProgressTest, LeavesOutWhatTheAgentDidNotReport) {
  v1::Progress bytes_only;
  bytes_only.set_bytes_done(uint64_t{3} << 20);
  bytes_only.set_eta_seconds(-1);
  EXPECT_EQ(FormatProgress(bytes_only), "3.0 MiB done");
  EXPECT_EQ(FormatProgress(v1::Progress()), "");
  // Never "100%" before the end: 99.9 rounds down.
  EXPECT_EQ(FormatProgress(Progress(99.9, 0, 0)), "99%");
}

TEST(TaskTableTest, RunningTaskShowsProgressAndDurationSoFar) {
  google::protobuf::RepeatedPtrField<v1::TaskInfo> tasks;
  v1::TaskInfo running = Task("backup-1", "pgbackrest backup", "running", absl::Seconds(130));
  *running.mutable_progress() = Progress(45, 120.0 * 1024 * 1024, 80);
  *tasks.Add() = running;
  EXPECT_EQ(FormatTaskTable(tasks, kNow, /*show_agent=*/false),
            "TASK       OPERATION           STATE     PROGRESS                  STARTED   "
            "DURATION   MESSAGE\n"
            "backup-1   pgbackrest backup   running   45% 120 MiB/s ETA 1m20s   2m ago    "
            "2m10s      -\n");
}

TEST(TaskTableTest, FinishedTasksShowTheirDurationAndMessageInTheControllersOrder) {
  google::protobuf::RepeatedPtrField<v1::TaskInfo> tasks;
  *tasks.Add() = Finished(Task("t3", "sql CURRENT_WAL_LSN", "", absl::Seconds(5)),
                          v1::TaskResult::SUCCEEDED, "", absl::Milliseconds(40));
  v1::TaskInfo failed =
      Finished(Task("t2", "pgbackrest check", "", absl::Hours(3)), v1::TaskResult::FAILED,
               "archive-push failed\nsee log", absl::Seconds(95));
  *failed.mutable_progress() = Progress(50, 1, 1);  // stale progress of a finished task: hidden
  *tasks.Add() = failed;
  *tasks.Add() = Finished(Task("t1", "sql PROMOTE", "", absl::Hours(50)), v1::TaskResult::REFUSED,
                          "not a standby", absl::ZeroDuration());
  std::string table = FormatTaskTable(tasks, kNow, /*show_agent=*/false);
  EXPECT_EQ(table,
            "TASK   OPERATION             STATE       PROGRESS   STARTED   DURATION   MESSAGE\n"
            "t3     sql CURRENT_WAL_LSN   succeeded   -          5s ago    <1s        -\n"
            "t2     pgbackrest check      failed      -          3h ago    1m35s      "
            "archive-push failed\\nsee log\n"
            "t1     sql PROMOTE           refused     -          2d ago    0s         "
            "not a standby\n");
}

TEST(TaskTableTest, AgentColumnAndIndentWhenAsked) {
  google::protobuf::RepeatedPtrField<v1::TaskInfo> tasks;
  *tasks.Add() = Task("t1", "gather-facts", "pending", absl::Seconds(3));
  std::string table = FormatTaskTable(tasks, kNow, /*show_agent=*/true, "  ");
  EXPECT_THAT(table, StartsWith("  TASK   AGENT        OPERATION      STATE     PROGRESS"));
  EXPECT_THAT(table,
              HasSubstr("\n  t1     legacy-db1   gather-facts   pending   -          3s ago"));
}

TEST(TaskTableTest, LongMessagesAreCutAndNoTasksGiveNothing) {
  google::protobuf::RepeatedPtrField<v1::TaskInfo> tasks;
  EXPECT_EQ(FormatTaskTable(tasks, kNow, false), "");
  *tasks.Add() = Finished(Task("t1", "pgbackrest backup", "", absl::Seconds(9)),
                          v1::TaskResult::FAILED, std::string(200, 'x'), absl::Seconds(1));
  std::string table = FormatTaskTable(tasks, kNow, false);
  EXPECT_THAT(table, HasSubstr(std::string(kTaskMessageWidth - 3, 'x') + "...\n"));
  EXPECT_THAT(table, Not(HasSubstr(std::string(kTaskMessageWidth - 2, 'x'))));
}

TEST(TaskDetailsTest, FinishedSqlTaskShowsResultValuesAndEvents) {
  v1::TaskInfo task = Finished(Task("lsn-1", "sql CURRENT_WAL_LSN", "", absl::Seconds(4)),
                               v1::TaskResult::SUCCEEDED, "ok", absl::Seconds(1));
  task.set_events_received(2);
  task.set_last_seq(2);
  (*task.mutable_result()->mutable_values())["lsn"] = "0/3000060";
  (*task.mutable_result()->mutable_values())["a_first"] = "1";
  v1::TaskEvent* log = task.add_recent_events();
  log->set_seq(1);
  *log->mutable_time() = ToProto(kNow - absl::Seconds(4));
  log->mutable_log()->set_stream("agent");
  log->mutable_log()->set_text("running pg_current_wal_lsn()\x1b[2J");
  v1::TaskEvent* result = task.add_recent_events();
  result->set_seq(2);
  *result->mutable_time() = ToProto(kNow - absl::Seconds(3));
  *result->mutable_result() = task.result();
  EXPECT_EQ(FormatTaskDetails(task, kNow),
            "Task\n"
            "  ID:        lsn-1\n"
            "  Agent:     legacy-db1\n"
            "  Operation: sql CURRENT_WAL_LSN\n"
            "  State:     succeeded\n"
            "  Submitted: 2023-11-14 22:13:16 UTC (4s ago)\n"
            "  Finished:  2023-11-14 22:13:17 UTC (3s ago)\n"
            "  Duration:  1s\n"
            "  Events:    2 received, last #2\n"
            "\n"
            "Result\n"
            "  State:     succeeded\n"
            "  Message:   ok\n"
            "\n"
            "Values\n"
            "  a_first:   1\n"
            "  lsn:       0/3000060\n"
            "\n"
            "Recent events (last 2 of 2, times UTC)\n"
            "  22:13:16   #1   agent    running pg_current_wal_lsn()\\x1b[2J\n"
            "  22:13:17   #2   result   succeeded: ok\n");
}

TEST(TaskDetailsTest, RunningTaskShowsProgressWithBytesAndLostEvents) {
  v1::TaskInfo task = Task("b1", "pgbackrest backup", "running", absl::Minutes(2));
  *task.mutable_progress() = Progress(45, 120.0 * 1024 * 1024, 80);
  task.set_events_received(10);
  task.set_last_seq(12);
  task.set_events_lost(2);
  std::string details = FormatTaskDetails(task, kNow);
  EXPECT_THAT(details, HasSubstr("  Progress:  45% (1.8 GiB of 4.0 GiB) 120 MiB/s ETA 1m20s\n"));
  EXPECT_THAT(details, HasSubstr("  Duration:  2m so far\n"));
  EXPECT_THAT(details, HasSubstr("10 received, last #12, 2 lost"));
  EXPECT_THAT(details, Not(HasSubstr("Result")));
  EXPECT_THAT(details, Not(HasSubstr("Finished")));
}

TEST(TaskDetailsTest, PgBackRestInfoShowsTheRepositoryStatusAndTheJson) {
  v1::TaskInfo task = Finished(Task("i1", "pgbackrest info", "", absl::Seconds(9)),
                               v1::TaskResult::FAILED, "stanza missing", absl::Seconds(2));
  task.mutable_result()->set_exit_code(55);
  task.mutable_result()->set_info_json("[{\"name\":\"main\",\"status\":{\"code\":1}}]");
  task.mutable_result()->set_repository_status_code(1);
  std::string details = FormatTaskDetails(task, kNow);
  EXPECT_THAT(details, HasSubstr("  Exit code:         55\n"));
  EXPECT_THAT(details, HasSubstr("  Repository status: 1 (see pgBackRest's status codes)\n"));
  EXPECT_THAT(details,
              HasSubstr("\npgBackRest info\n  [{\"name\":\"main\",\"status\":{\"code\":1}}]\n"));
}

TEST(TaskStatusLineTest, SaysWhatTheTaskIsDoing) {
  v1::TaskInfo task = Task("b1", "pgbackrest backup", "pending", absl::Seconds(5));
  EXPECT_EQ(FormatTaskStatusLine(task, kNow),
            "task b1 (pgbackrest backup on legacy-db1): pending, waiting for the agent to take "
            "it, 5s so far");
  task.set_state("running");
  *task.mutable_progress() = Progress(45, 120.0 * 1024 * 1024, 80);
  EXPECT_EQ(FormatTaskStatusLine(task, kNow),
            "task b1 (pgbackrest backup on legacy-db1): running 45% 120 MiB/s ETA 1m20s, 5s so "
            "far");
}

TEST(DescribeTaskEndTest, NamesTheTaskAndHowItEnded) {
  v1::TaskInfo task = Task("t1", "sql CURRENT_WAL_LSN", "running", absl::Seconds(5));
  EXPECT_EQ(DescribeTaskEnd(task),
            "task t1 (sql CURRENT_WAL_LSN) on agent legacy-db1 is still running");
  EXPECT_FALSE(TaskSucceeded(task));
  v1::TaskInfo failed =
      Finished(task, v1::TaskResult::FAILED, "could not connect", absl::Seconds(1));
  EXPECT_EQ(DescribeTaskEnd(failed),
            "task t1 (sql CURRENT_WAL_LSN) on agent legacy-db1 failed: could not connect");
  EXPECT_FALSE(TaskSucceeded(failed));
  v1::TaskInfo silent = Finished(task, v1::TaskResult::FAILED, "", absl::Seconds(1));
  silent.mutable_result()->set_exit_code(56);
  EXPECT_EQ(DescribeTaskEnd(silent),
            "task t1 (sql CURRENT_WAL_LSN) on agent legacy-db1 failed with exit code 56; "
            "`pghaul task show t1` shows its last log lines");
  EXPECT_EQ(DescribeTaskEnd(Finished(task, v1::TaskResult::REFUSED, "bad LSN", absl::Seconds(0))),
            "task t1 (sql CURRENT_WAL_LSN) on agent legacy-db1 was refused by the agent (nothing "
            "ran): bad LSN");
  EXPECT_EQ(
      DescribeTaskEnd(Finished(task, v1::TaskResult::CANCELLED, "by request", absl::Seconds(0))),
      "task t1 (sql CURRENT_WAL_LSN) on agent legacy-db1 was cancelled: by request");
  v1::TaskInfo succeeded = Finished(task, v1::TaskResult::SUCCEEDED, "", absl::Seconds(1));
  EXPECT_TRUE(TaskSucceeded(succeeded));
  EXPECT_EQ(DescribeTaskEnd(succeeded),
            "task t1 (sql CURRENT_WAL_LSN) on agent legacy-db1 succeeded");
}

TEST(TruncateTest, CutsOnCharacterBoundaries) {
  EXPECT_EQ(Truncate("short", 10), "short");
  EXPECT_EQ(Truncate("exactly10!", 10), "exactly10!");
  EXPECT_EQ(Truncate("eleven char", 10), "eleven ...");
  // Seven two-byte characters cut to 6 columns: three characters and "...", no half character.
  EXPECT_EQ(Truncate("ééééééé", 6), "ééé...");
}

TEST(RenderColumnsTest, AlignsByCharactersAndIndents) {
  EXPECT_EQ(RenderColumns({{"A", "B"}, {"héllo", "x"}}, "> "), "> A       B\n> héllo   x\n");
}

}  // namespace
}  // namespace pghaul::cli
