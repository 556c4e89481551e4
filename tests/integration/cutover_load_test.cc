// The cutover's promise under a real write load, through the real CLI, controller and agents:
// every commit a client saw acknowledged is on the promoted target, the source stays fenced,
// and the target archives into a stanza of its own, never the source's.
//
//   controller 198.18.0.10    legacy 198.18.0.11 (PG 15, pgbench tables, `app` role writing)
//                             target 198.18.0.12 (PG 15, restored over)
//
// The writer: fixture/acked_writer.h, a client of role `app` that records every commit it saw
// acknowledged.
#include <libpq-fe.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/fixture/acked_writer.h"
#include "tests/integration/fixture/child_process.h"
#include "tests/integration/fixture/command.h"
#include "tests/integration/fixture/json_paths.h"
#include "tests/integration/fixture/migration_fixture.h"
#include "tests/integration/fixture/test_support.h"
#include "tests/integration/fixture/wait_for.h"

namespace pghaul::integration {
namespace {

using nlohmann::json;

constexpr char kPgBench[] = "/usr/lib/postgresql/15/bin/pgbench";
CommandOptions RunAsPostgres(absl::Duration timeout) {
  CommandOptions options;
  options.launch.run_as = "postgres";
  options.timeout = timeout;
  return options;
}

std::string PhaseState(const json& status, absl::string_view name) {
  for (const json& phase : At(status, "phases")) {
    if (Str(phase, "name") == name) return Str(phase, "state");
  }
  return "absent";
}

class CutoverLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RequireRoot();
    if (HasFatalFailure()) return;
    PGH_ASSERT_OK_AND_ASSIGN(rig_, MigrationRig::Create("pghaul-cutover-load-"));
    RigHostOptions legacy;
    legacy.octet = 11;
    PGH_ASSERT_OK(rig_->AddHost("legacy", legacy).status());
    RigHostOptions target;
    target.octet = 12;
    PGH_ASSERT_OK(rig_->AddHost("target", target).status());
  }

  void TearDown() override {
    if (stopped_pid_ > 0) kill(stopped_pid_, SIGCONT);  // a failure left it stopped
    if (writer_ != nullptr) writer_->Stop();
    if (pgbench_ != nullptr && pgbench_->IsRunning()) (void)pgbench_->Kill(SIGKILL);
    if (HasFailure() && rig_ != nullptr) {
      std::vector<std::string> logs = rig_->LogPaths();
      if (pgbench_ != nullptr) logs.push_back(pgbench_->log_path());
      PrintLogTails(logs);
    }
  }

  PgCluster& Legacy() { return rig_->Cluster("legacy"); }
  PgCluster& Target() { return rig_->Cluster("target"); }
  std::string AppConninfo() {
    return absl::StrCat("host=", Legacy().socket_dir(), " port=", Legacy().port(),
                        " user=app dbname=postgres connect_timeout=2");
  }

  // pgbench tables at `scale` and the writer's tables, in the source.
  void LoadSource(int scale) {
    PgCluster& legacy = Legacy();
    PGH_ASSERT_OK_AND_ASSIGN(
        CommandResult init,
        RunCommand({kPgBench, "-i", "-q", "-s", absl::StrCat(scale), "-h", legacy.socket_dir(),
                    "-p", absl::StrCat(legacy.port()), "postgres"},
                   RunAsPostgres(absl::Seconds(300))));
    ASSERT_EQ(init.exit_code, 0) << init.stderr_text;
    PGH_ASSERT_OK(rig_->RunSqlScript(legacy, kAckedWriterSetupSql));
  }

  // pgbench as `app` for at most `duration`: the background write load.
  void StartPgBench(absl::Duration duration) {
    PgCluster& legacy = Legacy();
    ChildProcessOptions options;
    options.argv = {kPgBench, "-n", "-c", "2", "-j", "1", "-T",
                    absl::StrCat(absl::ToInt64Seconds(duration)), "-h", legacy.socket_dir(),
                    "-p", absl::StrCat(legacy.port()), "-U", "app", "postgres"};
    options.launch.run_as = "postgres";
    options.log_path = rig_->dir().path() + "/pgbench.log";
    PGH_ASSERT_OK_AND_ASSIGN(pgbench_, ChildProcess::Start(std::move(options)));
  }

  void ApplyPlan(absl::string_view cutover) {
    PlanSpec spec = rig_->PosixPlan();
    spec.cutover = std::string(cutover);
    PGH_ASSERT_OK(rig_->ApplyPlan(spec));
  }

  absl::StatusOr<CommandResult> Pghaul(const std::vector<std::string>& args,
                                       absl::Duration timeout = absl::Seconds(600)) {
    return rig_->Cli(args, timeout);
  }

  // Files of the source's stanza archive whose name starts with a timeline other than 1.
  std::vector<std::string> ForeignTimelineFiles() {
    std::vector<std::string> found;
    const std::string archive = rig_->repo_path() + "/archive/" + kRigStanza;
    std::error_code error;
    for (auto it = std::filesystem::recursive_directory_iterator(archive, error);
         it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
      if (error) break;
      const std::string name = it->path().filename().string();
      if (name.size() >= 8 && name[0] == '0' && !absl::StartsWith(name, "00000001") &&
          (absl::StrContains(name, ".history") || name.size() >= 24)) {
        found.push_back(it->path().string());
      }
    }
    return found;
  }

  // Every value the writer saw acknowledged that the target does not hold.
  std::vector<int64_t> MissingOnTarget(const std::vector<int64_t>& acked) {
    absl::StatusOr<std::string> rows = Target().Query("SELECT n FROM acked ORDER BY n");
    EXPECT_TRUE(rows.ok()) << rows.status();
    return MissingAcked(acked, rows.value_or(""));
  }

  // The source must refuse `app` entirely (the fence's reject line) and refuse writes to the
  // agent's own role (read-only default).
  void ExpectSourceRefusesWrites() {
    PGconn* conn = PQconnectdb(AppConninfo().c_str());
    EXPECT_NE(PQstatus(conn), CONNECTION_OK) << "app could still log in to the fenced source";
    EXPECT_TRUE(absl::StrContains(PQerrorMessage(conn), "rejects")) << PQerrorMessage(conn);
    PQfinish(conn);
    absl::StatusOr<std::string> write = Legacy().Query("INSERT INTO acked VALUES (-1)");
    EXPECT_FALSE(write.ok()) << "the fenced source accepted a write";
  }

  std::unique_ptr<MigrationRig> rig_;
  std::unique_ptr<ChildProcess> pgbench_;
  std::unique_ptr<AckedWriter> writer_;
  pid_t stopped_pid_ = 0;
};

TEST_F(CutoverLoadTest, UnderWriteLoadEveryAcknowledgedCommitArrivesAndTheTargetGetsItsOwnStanza) {
  LoadSource(5);
  if (HasFatalFailure()) return;
  ApplyPlan("{max_downtime: 60s, verify_checksums: true}");

  // A rehearsal first: its promoted copy must not leave timeline 2 in the source's stanza.
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult rehearsal, Pghaul({"run", "m1", "--until", "restore"}));
  ASSERT_EQ(rehearsal.exit_code, 0) << rehearsal.stdout_text << rehearsal.stderr_text;
  EXPECT_EQ(Target().Query("SELECT pg_is_in_recovery()").value_or("?"), "f");
  EXPECT_EQ(ForeignTimelineFiles(), std::vector<std::string>{})
      << "the rehearsal copy archived into the source's stanza";

  writer_ = std::make_unique<AckedWriter>(AppConninfo());
  writer_->Start();
  StartPgBench(absl::Minutes(8));
  if (HasFatalFailure()) return;

  // The standby follows the archive while both write; then the cutover, under that load.
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult standby,
                           Pghaul({"restore", "m1", "--mode", "standby"}));
  ASSERT_EQ(standby.exit_code, 0) << standby.stdout_text << standby.stderr_text;
  const size_t before_cutover = writer_->AckedCount();
  PGH_ASSERT_OK(WaitFor("more writes after the standby restore", absl::Seconds(30),
                        [&]() -> absl::Status {
                          if (writer_->AckedCount() > before_cutover + 200) {
                            return absl::OkStatus();
                          }
                          return absl::UnavailableError(writer_->LastError());
                        }));
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult cutover, Pghaul({"cutover", "m1"}));
  ASSERT_EQ(cutover.exit_code, 0) << cutover.stdout_text << cutover.stderr_text;
  writer_->Stop();
  const std::vector<int64_t> acked = writer_->Acked();
  std::cout << acked.size() << " acknowledged commits; the writer's last error: "
            << writer_->LastError() << "\n";
  ASSERT_GT(acked.size(), before_cutover + 200);
  EXPECT_TRUE(absl::StrContains(writer_->LastError(), "rejects") ||
              absl::StrContains(writer_->LastError(), "terminat") ||
              absl::StrContains(writer_->LastError(), "read-only"))
      << "the writer was never stopped by the fence: " << writer_->LastError();

  EXPECT_EQ(MissingOnTarget(acked), std::vector<int64_t>{});
  // Nothing on the target that was not committed on the source: the counter and the rows agree.
  EXPECT_EQ(Target().Query("SELECT (SELECT n FROM counter) = (SELECT count(*) FROM acked)")
                .value_or("?"),
            "t");
  ExpectSourceRefusesWrites();

  // `cutover` runs on through finish: the target's own stanza and first full backup.
  PGH_ASSERT_OK_AND_ASSIGN(json status, rig_->Status());
  EXPECT_EQ(Str(status, "state"), "completed") << status.dump(2);
  EXPECT_EQ(Str(status, "new_stanza"), std::string(kRigStanza) + "-new");
  EXPECT_FALSE(Str(status, "new_stanza_backup_label").empty()) << status.dump(2);
  EXPECT_EQ(At(status, "cutover_compare.passed"), true) << status.dump(2);
  const double downtime = At(status, "downtime_seconds").get<double>();
  std::cout << "downtime under load: " << downtime << " s\n";
  EXPECT_GT(downtime, 0.0);

  EXPECT_EQ(Target().Query("SELECT pg_is_in_recovery()").value_or("?"), "f");
  EXPECT_EQ(Target().Query("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")
                .value_or("?"),
            "00000002");
  EXPECT_EQ(Target().Query("SELECT timeline_id FROM pg_control_checkpoint()").value_or("?"), "2");
  // Promoted without its restore_command: nothing points at the source's archive any more.
  EXPECT_EQ(Target().Query("SELECT current_setting('restore_command')").value_or("?"), "");
  // pgbackrest check on the new stanza, with the target agent's own config, as the migration
  // left it: archiving into it works.
  const std::string config_dir =
      rig_->FindHost("target")->agent->state_dir() + "/pgbackrest/m1";
  PGH_ASSERT_OK_AND_ASSIGN(
      CommandResult check,
      RunCommand({"/usr/bin/pgbackrest", "--config=" + config_dir + "/pgbackrest.conf",
                  "--config-include-path=" + config_dir + "/conf.d",
                  "--stanza=" + std::string(kRigStanza) + "-new", "check"},
                 RunAsPostgres(absl::Seconds(120))));
  EXPECT_EQ(check.exit_code, 0) << check.stdout_text << check.stderr_text;
  // And the source's stanza never saw the target's timeline.
  EXPECT_EQ(ForeignTimelineFiles(), std::vector<std::string>{});
}

TEST_F(CutoverLoadTest, AgentKilledInCatchUpAndControllerKilledWhileFencedStillLoseNothing) {
  // Big enough that comparing the checksums while fenced takes a few seconds: the window in
  // which the controller is killed.
  LoadSource(20);
  if (HasFatalFailure()) return;
  ApplyPlan("{max_downtime: 5m, verify_checksums: true}");
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult backup, Pghaul({"run", "m1", "--until", "backup"}));
  ASSERT_EQ(backup.exit_code, 0) << backup.stdout_text << backup.stderr_text;

  // A stray history file in the stanza (as a promoted copy with archiving on would leave): the
  // standby must still follow the source's own timeline 1.
  const std::string archive_id_dir = rig_->repo_path() + "/archive/" + kRigStanza + "/15-1";
  ASSERT_TRUE(std::filesystem::is_directory(archive_id_dir)) << archive_id_dir;
  const std::string stray = archive_id_dir + "/00000002.history";
  PGH_ASSERT_OK(WriteFileAtomically(stray, "1\t0/3000000\tno recovery target specified\n", 0640));
  PGH_ASSERT_OK(RunChecked({"chown", "postgres:postgres", stray}).status());

  PGH_ASSERT_OK_AND_ASSIGN(CommandResult standby,
                           Pghaul({"restore", "m1", "--mode", "standby"}));
  ASSERT_EQ(standby.exit_code, 0) << standby.stdout_text << standby.stderr_text;
  writer_ = std::make_unique<AckedWriter>(AppConninfo());
  writer_->Start();
  PGH_ASSERT_OK(WaitFor("writes", absl::Seconds(30), [&]() -> absl::Status {
    return writer_->AckedCount() > 100 ? absl::OkStatus()
                                       : absl::UnavailableError(writer_->LastError());
  }));

  // The target's recovery (its startup process, by PID) is stopped: nothing is replayed, so the
  // cutover waits in its catch-up.
  PGH_ASSERT_OK_AND_ASSIGN(
      std::string startup_pid_text,
      Target().Query("SELECT pid FROM pg_stat_activity WHERE backend_type = 'startup'"));
  pid_t startup_pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(startup_pid_text, &startup_pid)) << startup_pid_text;
  ASSERT_EQ(kill(startup_pid, SIGSTOP), 0);
  stopped_pid_ = startup_pid;
  PGH_ASSERT_OK_AND_ASSIGN(CommandResult started, Pghaul({"cutover", "m1", "--detach"}));
  ASSERT_EQ(started.exit_code, 0) << started.stderr_text;
  // A step is under way when its task runs or its event was journaled (the catch-up's polls
  // take milliseconds each, so the running task is mostly between two of them).
  auto step_is = [&](absl::string_view step, absl::string_view event) {
    return [this, step, event]() -> absl::Status {
      PGH_ASSIGN_OR_RETURN(json status, rig_->Status());
      if (absl::StrContains(Str(status, "current_task_id"), step)) return absl::OkStatus();
      if (status.contains("events") && status["events"].is_array()) {
        for (const json& e : status["events"]) {
          if (absl::StrContains(Str(e, "text"), event)) return absl::OkStatus();
        }
      }
      return absl::UnavailableError(absl::StrCat(Str(status, "state"), " ",
                                                 Str(status, "current_task_id")));
    };
  };
  PGH_ASSERT_OK(WaitFor("the catch-up", absl::Seconds(60), step_is(".cutover.1.catch-up", "before fencing")));

  // kill -9 of the target's agent in the catch-up (nothing fenced yet), then it comes back.
  absl::SleepFor(absl::Seconds(1));
  PGH_ASSERT_OK_AND_ASSIGN(json waiting, rig_->Status());
  EXPECT_EQ(Str(waiting, "state"), "running") << waiting.dump(2);
  for (const json& e : At(waiting, "events")) {
    ASSERT_FALSE(absl::StrContains(Str(e, "text"), "fencing the source")) << waiting.dump(2);
  }
  MigrationRig::Host* target_host = rig_->FindHost("target");
  PGH_ASSERT_OK(target_host->agent->process()->Kill(SIGKILL));
  PGH_ASSERT_OK(target_host->agent->Start());
  ASSERT_EQ(kill(startup_pid, SIGCONT), 0);
  stopped_pid_ = 0;

  // kill -9 of the controller while the source is fenced, before promotion.
  PGH_ASSERT_OK(WaitFor("the exact compare", absl::Seconds(180), step_is(".exact-", "comparing every table")));
  PGH_ASSERT_OK_AND_ASSIGN(json fenced, rig_->Status());
  ASSERT_EQ(Target().Query("SELECT pg_is_in_recovery()").value_or("?"), "t");
  PGH_ASSERT_OK(rig_->RestartController());

  PGH_ASSERT_OK_AND_ASSIGN(json status, rig_->WaitUntilSettled("m1", absl::Seconds(300)));
  ASSERT_EQ(Str(status, "state"), "completed") << status.dump(2);
  EXPECT_EQ(PhaseState(status, "cutover"), "succeeded") << status.dump(2);
  EXPECT_FALSE(Str(status, "new_stanza_backup_label").empty()) << status.dump(2);
  writer_->Stop();
  const std::vector<int64_t> acked = writer_->Acked();
  std::cout << acked.size() << " acknowledged commits\n";
  EXPECT_EQ(MissingOnTarget(acked), std::vector<int64_t>{});
  EXPECT_EQ(Target().Query("SELECT pg_is_in_recovery()").value_or("?"), "f");
  // Promoted without a restore_command, PostgreSQL picks the next timeline from pg_wal alone: 2,
  // whatever stray history the source's stanza holds; its own history starts the new stanza.
  EXPECT_EQ(Target().Query("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")
                .value_or("?"),
            "00000002");
  const std::string new_history =
      rig_->repo_path() + "/archive/" + kRigStanza + "-new/15-1/00000002.history";
  EXPECT_TRUE(std::filesystem::exists(new_history)) << new_history;
  EXPECT_EQ(ReadFile(stray).value_or("?"), "1\t0/3000000\tno recovery target specified\n");
  ExpectSourceRefusesWrites();
  EXPECT_TRUE(absl::StrContains(ReadFile(rig_->controller().log_path()).value_or(""),
                                "cutover resumed after a controller restart"))
      << "the restarted controller did not take the cutover over";
}

}  // namespace
}  // namespace pghaul::integration
