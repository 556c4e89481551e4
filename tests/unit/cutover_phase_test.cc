// The cutover phase against a scripted PhaseContext: the lag gate before the fence, the lag
// journaled for `pghaul status`, and the downtime budget (plan or --max-downtime) after it. Time
// is the context's own clock: each step may cost some, and Sleep advances it.
#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/time_proto.h"
#include "controller/migration_phases.h"
#include "controller/phase_context.h"
#include "controller/phase_tasks.h"
#include "tests/unit/scripted_phase_context.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::controller {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t kMiB = 1 << 20;

google::protobuf::Map<std::string, std::string> FencedStatus() {
  google::protobuf::Map<std::string, std::string> values;
  values["read_only"] = "on";
  values["hba_block"] = "true";
  values["hba_file"] = "/etc/postgresql/15/main/pg_hba.conf";
  values["other_sessions"] = "0";
  values["agent_role_sessions"] = "0";
  values["fenced"] = "true";
  return values;
}

class ScriptedContext : public ScriptedPhaseContextBase {
 public:
  ScriptedContext() {
    plan_.name = "m1";
    plan_.source_agent = "legacy";
    plan_.target_agent = "target";
    plan_.cutover.max_lag_bytes = 16 * kMiB;
    plan_.cutover.max_downtime = absl::Seconds(30);
    record_.mutable_info()->set_restore_mode("standby");
  }

  absl::StatusOr<v1::TaskResult> Run(const std::string& agent_id, absl::string_view step,
                                     v1::Task task, StepOptions) override {
    steps_.push_back(std::string(step));
    tasks_[std::string(step)] = task;
    auto cost = step_cost_.find(std::string(step));
    if (cost != step_cost_.end()) now_ += cost->second;
    v1::TaskResult result;
    result.set_state(v1::TaskResult::SUCCEEDED);
    auto& values = *result.mutable_values();
    if (task.has_sql()) {
      switch (task.sql().query()) {
        case v1::SqlQuery::SWITCH_WAL:
          values["lsn"] = step == "final-switch" ? final_lsn_ : source_lsn_;
          values["walfile"] = "000000010000000000000009";
          break;
        case v1::SqlQuery::LAST_REPLAY_LSN:
          values["lsn"] = step == "final-replay" ? final_replay_lsn_ : replay_lsn_;
          values["replay_timestamp"] = replay_timestamp_;
          values["in_recovery"] = "true";
          break;
        case v1::SqlQuery::STAT_ARCHIVER:
          values["last_archived_wal"] = "000000010000000000000009";
          values["last_archived_time"] = "2026-11-26 22:00:01.5+00";
          break;
        case v1::SqlQuery::WAIT_REPLAYED: {
          // As the agent does: answers when the LSN is reached, or after wait_seconds.
          values["lsn"] = step == "final-replay" ? final_replay_lsn_ : replay_lsn_;
          // The settle waits for one segment past the catch-up: it arrives unless told not to.
          if (step == "settle" && settle_arrives_) values["lsn"] = task.sql().lsn();
          if (step == "probe") values["lsn"] = probe_arrives_ ? task.sql().lsn() : "0/1000000";
          values["replay_timestamp"] = replay_timestamp_;
          values["in_recovery"] = "true";
          const bool reached = *ParseLsn(values["lsn"]) >= *ParseLsn(task.sql().lsn());
          values["reached"] = reached ? "true" : "false";
          if (!reached) now_ += absl::Seconds(task.sql().wait_seconds());
          break;
        }
        case v1::SqlQuery::WAIT_ARCHIVED:
          values["last_archived_wal"] = last_archived_wal_;
          values["last_archived_time"] = "2026-11-26 22:00:01.5+00";
          values["reached"] = last_archived_wal_ >= task.sql().walfile() ? "true" : "false";
          if (values["reached"] != "true") now_ += absl::Seconds(task.sql().wait_seconds());
          break;
        case v1::SqlQuery::FENCE_STATUS:
          values = fence_status_;
          break;
        case v1::SqlQuery::ENABLE_ARCHIVING:
          values["restart_needed"] = "true";  // a restore leaves archive_mode = off
          break;
        case v1::SqlQuery::TABLE_CHECKSUMS:
          values["app/public.t"] = agent_id == plan_.source_agent ? source_sum_ : target_sum_;
          break;
        default:
          break;
      }
    }
    if (task.has_service() && task.service().action() == v1::ServiceAction::STATUS) {
      values["running"] = target_running_ ? "true" : "false";
      values["detail"] = target_running_ ? "server is running" : "no server running";
    }
    if (task.has_service() && task.service().action() == v1::ServiceAction::START) {
      target_running_ = true;
    }
    if (std::string(step) == empty_values_step_) values.clear();
    return result;
  }

  bool Ran(absl::string_view step) const {
    return std::find(steps_.begin(), steps_.end(), step) != steps_.end();
  }

  std::string source_lsn_ = "0/9000000";
  std::string replay_lsn_ = "0/9000000";
  std::string final_lsn_ = "0/9000100";
  std::string final_replay_lsn_ = "0/9000100";
  std::string replay_timestamp_ = "";
  std::string last_archived_wal_ = "000000010000000000000009";
  bool target_running_ = true;  // what the target's service STATUS says
  bool settle_arrives_ = true;
  bool probe_arrives_ = true;
  google::protobuf::Map<std::string, std::string> fence_status_ = FencedStatus();
  std::string source_sum_ = "rows=3 md5=0123456789abcdef0123456789abcdef persistence=p kind=r";
  std::string target_sum_ = source_sum_;
  std::map<std::string, absl::Duration> step_cost_;
  std::string empty_values_step_;  // this step's result comes back with no values at all
  std::vector<std::string> steps_;
  std::map<std::string, v1::Task> tasks_;
};

TEST(CutoverPhaseTest, AResultMissingItsValuesFailsTheStepInsteadOfAbortingTheController) {
  // An agent of another version, or one gone wrong, answers SUCCEEDED without the values the
  // step reads. Each step in turn: the phase ends with a status (before, Map::at aborted the
  // controller), and the steps that read an LSN fail.
  ScriptedContext complete;
  ASSERT_TRUE(RunPhase("cutover", complete).ok());
  ASSERT_GT(complete.steps_.size(), 5u);
  int failed = 0;
  for (const std::string& step : complete.steps_) {
    ScriptedContext ctx;
    ctx.empty_values_step_ = step;
    absl::Status status = RunPhase("cutover", ctx);
    if (!status.ok()) ++failed;
    if (step == "gate-switch" || step == "final-switch") {
      EXPECT_FALSE(status.ok()) << step;
    }
  }
  EXPECT_GE(failed, 4);
}

TEST(CutoverPhaseTest, CatchUpThatNeverArrivesFailsBeforeFencing) {
  ScriptedContext ctx;
  ctx.source_lsn_ = "0/D000000";                   // the catch-up switch
  ctx.replay_lsn_ = "0/9000000";                   // the target stays 64 MiB behind
  ctx.step_cost_["catch-up"] = absl::Minutes(31);  // past the catch-up's 30 minutes
  absl::Status status = RunPhase("cutover", ctx);
  EXPECT_TRUE(absl::IsDeadlineExceeded(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("64.0 MiB behind"));
  EXPECT_FALSE(ctx.Ran("fence"));
  EXPECT_FALSE(ctx.record_.source_fenced());
  EXPECT_EQ(ctx.record_.info().lag().lag_bytes(), 64 * kMiB);
}

// The gate looks at the source's position from its own WAL switch: a context whose gate switch
// answers further ahead than the target's replay.
class GateContext : public ScriptedContext {
 public:
  absl::StatusOr<v1::TaskResult> Run(const std::string& agent_id, absl::string_view step,
                                     v1::Task task, StepOptions options) override {
    absl::StatusOr<v1::TaskResult> result =
        ScriptedContext::Run(agent_id, step, std::move(task), options);
    if (result.ok() && step == "gate-switch") (*result->mutable_values())["lsn"] = gate_lsn_;
    return result;
  }
  std::string gate_lsn_;
};

TEST(CutoverPhaseTest, LagAboveMaxLagAtTheGateFailsWithBothNumbersAndFencesNothing) {
  GateContext ctx;
  ctx.gate_lsn_ = "0/D000000";  // 64 MiB past the replayed 0/9000000
  absl::Status status = RunPhase("cutover", ctx);
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("64.0 MiB"));
  EXPECT_THAT(status.message(), HasSubstr("cutover.max_lag 16.0 MiB"));
  EXPECT_THAT(status.message(), HasSubstr("Nothing was fenced"));
  EXPECT_FALSE(ctx.Ran("fence"));
  EXPECT_FALSE(ctx.record_.source_fenced());
  EXPECT_EQ(ctx.record_.info().lag().lag_bytes(), 64 * kMiB);
  EXPECT_EQ(ctx.record_.info().lag().source_lsn(), "0/D000000");
  EXPECT_EQ(ctx.record_.info().lag().target_replay_lsn(), "0/9000000");
}

TEST(CutoverPhaseTest, GateJournalsLagInBytesAndSecondsAndTheArchiverForStatus) {
  GateContext ctx;
  ctx.gate_lsn_ = "0/9100000";  // 1 MiB behind: under max_lag
  ctx.replay_timestamp_ = "2026-11-26 21:59:55.25+00";
  ctx.step_cost_["fence"] = absl::Seconds(1);
  absl::Status status = RunPhase("cutover", ctx);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(ctx.record_.target_promoted());
  // The last measurement (final replay) is caught up; the gate's is in the events.
  const v1::ReplicationLag& lag = ctx.record_.info().lag();
  EXPECT_EQ(lag.lag_bytes(), 0u);
  EXPECT_EQ(lag.lag_seconds(), 0.0);
  EXPECT_EQ(lag.source_last_archived_wal(), "000000010000000000000009");
  EXPECT_EQ(FromProto(lag.source_last_archived_at()),
            absl::FromUnixSeconds(1795730401) + absl::Milliseconds(500));
  EXPECT_EQ(FromProto(lag.target_last_replay_at()),
            absl::FromUnixSeconds(1795730395) + absl::Milliseconds(250));
  EXPECT_THAT(ctx.events_,
              Contains(HasSubstr("the target lags 1.0 MiB (cutover.max_lag 16.0 MiB)")));
}

TEST(CutoverPhaseTest, LagSecondsCountFromTheLastReplayedCommitWhileBehind) {
  GateContext ctx;
  ctx.gate_lsn_ = "0/D000000";
  ctx.replay_timestamp_ = "2026-11-26 21:59:50+00";  // 10 s before the context's now
  ASSERT_FALSE(RunPhase("cutover", ctx).ok());
  const v1::ReplicationLag& lag = ctx.record_.info().lag();
  ASSERT_TRUE(lag.has_lag_seconds());
  EXPECT_DOUBLE_EQ(lag.lag_seconds(), 10.0);
  EXPECT_EQ(FromProto(lag.measured_at()), ctx.now_);
}

TEST(CutoverPhaseTest, TheStandbyRetriesFastFromTheGateAndReplaysUpToItBeforeTheFence) {
  GateContext ctx;
  ctx.gate_lsn_ = "0/9100000";
  ASSERT_TRUE(RunPhase("cutover", ctx).ok());
  auto at = [&ctx](absl::string_view step) {
    return std::find(ctx.steps_.begin(), ctx.steps_.end(), step) - ctx.steps_.begin();
  };
  ASSERT_TRUE(ctx.Ran("fast-retrieval"));
  EXPECT_EQ(ctx.tasks_["fast-retrieval"].sql().query(), v1::SqlQuery::SET_WAL_RETRIEVE_RETRY);
  EXPECT_EQ(ctx.tasks_["fast-retrieval"].sql().retry_ms(), 10u);
  EXPECT_LT(at("gate"), at("fast-retrieval"));
  EXPECT_LT(at("fast-retrieval"), at("settle"));
  EXPECT_LT(at("settle"), at("fence"));
  EXPECT_EQ(ctx.tasks_["settle"].sql().lsn(), "0/9100000");
  // Both agents wait for the last segment, each on its own server.
  EXPECT_EQ(ctx.tasks_["archiver"].sql().query(), v1::SqlQuery::WAIT_ARCHIVED);
  EXPECT_EQ(ctx.tasks_["archiver"].sql().walfile(), "000000010000000000000009");
  EXPECT_EQ(ctx.tasks_["final-replay"].sql().query(), v1::SqlQuery::WAIT_REPLAYED);
  EXPECT_EQ(ctx.tasks_["final-replay"].sql().lsn(), "0/9000100");
  EXPECT_GE(ctx.tasks_["final-replay"].sql().wait_seconds(), 29u);  // the budget left, 30 s
  EXPECT_TRUE(ctx.tasks_["promote"].sql().without_restore_command());
  EXPECT_FALSE(ctx.Ran("normal-retrieval"));  // promoted: the standby's pace no longer matters
}

TEST(CutoverPhaseTest, ATargetThatCannotReplayUpToTheGateFencesNothingAndSlowsItsRetryAgain) {
  GateContext ctx;
  ctx.gate_lsn_ = "0/9100000";
  ctx.settle_arrives_ = false;
  absl::Status status = RunPhase("cutover", ctx);
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("did not replay up to the source's position at the "
                                          "gate (0/9100000)"));
  EXPECT_THAT(status.message(), HasSubstr("Nothing was fenced"));
  EXPECT_FALSE(ctx.Ran("fence"));
  EXPECT_FALSE(ctx.record_.source_fenced());
  ASSERT_TRUE(ctx.Ran("settle-retrieval"));
  EXPECT_EQ(ctx.tasks_["settle-retrieval"].sql().retry_ms(), 250u);
}

TEST(CutoverPhaseTest, ASegmentSlowerThanTheBudgetBeforeTheFenceFencesNothing) {
  ScriptedContext ctx;
  ctx.record_.mutable_request()->set_max_downtime_seconds(5);
  ctx.probe_arrives_ = false;  // one segment's trip takes longer than 5 s
  absl::Status status = RunPhase("cutover", ctx);
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("took longer than the downtime budget 5.0 s "
                                          "(--max-downtime)"));
  EXPECT_THAT(status.message(), HasSubstr("Nothing was fenced"));
  EXPECT_FALSE(ctx.Ran("fence"));
  EXPECT_FALSE(ctx.record_.source_fenced());
  // Waited for up to the 5 s budget, the lag journaled every 2 s: 2 + 2 + 1.
  EXPECT_EQ(std::count(ctx.steps_.begin(), ctx.steps_.end(), "probe"), 3);
  EXPECT_EQ(ctx.tasks_["probe"].sql().wait_seconds(), 1u);
  ASSERT_TRUE(ctx.Ran("probe-retrieval"));
  EXPECT_EQ(ctx.tasks_["probe-retrieval"].sql().retry_ms(), 250u);

  // A segment that fits: fenced and promoted, and the trip is in the events.
  ScriptedContext fits;
  fits.record_.mutable_request()->set_max_downtime_seconds(5);
  ASSERT_TRUE(RunPhase("cutover", fits).ok());
  EXPECT_THAT(fits.events_, Contains(HasSubstr("a WAL segment reached the target in 0.0 s "
                                               "(downtime budget 5.0 s)")));
  auto at = [&fits](absl::string_view step) {
    return std::find(fits.steps_.begin(), fits.steps_.end(), step) - fits.steps_.begin();
  };
  EXPECT_LT(at("settle"), at("probe-switch"));
  EXPECT_LT(at("probe"), at("fence"));
}

TEST(CutoverPhaseTest, ALastSegmentNeverArchivedLiftsTheFenceNamingTheArchiver) {
  ScriptedContext ctx;
  ctx.last_archived_wal_ = "000000010000000000000008";  // the final switch's 09 never arrives
  ctx.final_replay_lsn_ = "0/9000000";
  absl::Status status = RunPhase("cutover", ctx);
  EXPECT_TRUE(absl::IsDeadlineExceeded(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("(archiver)"));
  EXPECT_THAT(status.message(),
              HasSubstr("000000010000000000000009 was not archived (last archived: "
                        "000000010000000000000008)"));
  EXPECT_TRUE(ctx.Ran("unfence"));
  EXPECT_FALSE(ctx.Ran("promote"));
  ASSERT_TRUE(ctx.Ran("normal-retrieval"));
  EXPECT_EQ(ctx.tasks_["normal-retrieval"].sql().retry_ms(), 250u);
}

TEST(CutoverPhaseTest, MaxDowntimeFromTheCommandOverridesThePlanAndAnOverrunLiftsTheFence) {
  ScriptedContext ctx;
  ctx.plan_.cutover.max_downtime = absl::Seconds(60);
  ctx.record_.mutable_request()->set_max_downtime_seconds(5);
  ctx.step_cost_["fence"] = absl::Seconds(10);  // ending sessions took longer than the budget
  absl::Status status = RunPhase("cutover", ctx);
  EXPECT_TRUE(absl::IsDeadlineExceeded(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("the downtime budget is 5.0 s (--max-downtime)"));
  EXPECT_THAT(status.message(), HasSubstr("10.0 s had passed since the fence"));
  EXPECT_TRUE(ctx.Ran("unfence"));
  EXPECT_EQ(ctx.tasks_["unfence"].sql().migration_id(), "m1");
  EXPECT_FALSE(ctx.Ran("final-switch"));
  EXPECT_FALSE(ctx.Ran("promote"));
  EXPECT_FALSE(ctx.record_.source_fenced());
  EXPECT_FALSE(ctx.record_.target_promoted());

  // Within the plan's 60 s the same 10 s fence is fine.
  ScriptedContext relaxed;
  relaxed.plan_.cutover.max_downtime = absl::Seconds(60);
  relaxed.step_cost_["fence"] = absl::Seconds(10);
  absl::Status done = RunPhase("cutover", relaxed);
  EXPECT_TRUE(done.ok()) << done;
  EXPECT_TRUE(relaxed.record_.target_promoted());
  EXPECT_EQ(relaxed.tasks_["fence"].sql().migration_id(), "m1");
}

TEST(CutoverPhaseTest, ReplayThatMissesTheBudgetLiftsTheFenceWithThePlansNumbers) {
  ScriptedContext ctx;
  ctx.final_replay_lsn_ = "0/9000000";  // never reaches the final 0/9000100
  absl::Status status = RunPhase("cutover", ctx);
  EXPECT_TRUE(absl::IsDeadlineExceeded(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("final-replay"));
  EXPECT_THAT(status.message(), HasSubstr("the downtime budget is 30.0 s (cutover.max_downtime)"));
  EXPECT_TRUE(ctx.Ran("unfence"));
  EXPECT_THAT(ctx.steps_, Not(Contains("promote")));
  EXPECT_EQ(ctx.record_.info().lag().lag_bytes(), 0x100u);
}

TEST(CutoverPhaseTest, PromotesOnlyAfterTheExactCompareAndTheFenceCheckInThatOrder) {
  ScriptedContext ctx;
  ASSERT_TRUE(RunPhase("cutover", ctx).ok());
  auto at = [&ctx](absl::string_view step) {
    return std::find(ctx.steps_.begin(), ctx.steps_.end(), step) - ctx.steps_.begin();
  };
  ASSERT_TRUE(ctx.Ran("exact-checksums-source"));
  ASSERT_TRUE(ctx.Ran("exact-checksums-target"));
  ASSERT_TRUE(ctx.Ran("confirm-fence"));
  EXPECT_LT(at("final-replay"), at("exact-checksums-source"));
  EXPECT_LT(at("exact-checksums-target"), at("confirm-fence"));
  EXPECT_LT(at("confirm-fence"), at("promote"));
  EXPECT_EQ(ctx.tasks_["confirm-fence"].sql().migration_id(), "m1");
  EXPECT_TRUE(ctx.record_.info().cutover_compare().passed());
  EXPECT_EQ(ctx.record_.info().cutover_compare().objects_compared(), 1u);
}

TEST(CutoverPhaseTest, RefusesToPromoteWhileTheSourceIsWritableAndSaysWhy) {
  ScriptedContext ctx;
  ctx.fence_status_["read_only"] = "off";  // someone lifted the fence by hand
  ctx.fence_status_["hba_block"] = "false";
  ctx.fence_status_["fenced"] = "false";
  absl::Status status = RunPhase("cutover", ctx);
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("refusing to promote"));
  EXPECT_THAT(status.message(), HasSubstr("default_transaction_read_only=off"));
  EXPECT_THAT(status.message(), HasSubstr("pg_hba.conf: false"));
  EXPECT_FALSE(ctx.Ran("promote"));
  EXPECT_FALSE(ctx.record_.target_promoted());
}

TEST(CutoverPhaseTest, RefusesToPromoteWhenAnotherRolesSessionGotIn) {
  ScriptedContext ctx;
  ctx.fence_status_["other_sessions"] = "1";
  ctx.fence_status_["fenced"] = "false";
  absl::Status status = RunPhase("cutover", ctx);
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("sessions of other roles: 1"));
  EXPECT_FALSE(ctx.Ran("promote"));
}

TEST(CutoverPhaseTest, DataThatDiffersAtTheSameLsnLiftsTheFenceAndNeverPromotes) {
  ScriptedContext ctx;
  ctx.target_sum_ = "rows=2 md5=fedcba9876543210fedcba9876543210 persistence=p kind=r";
  absl::Status status = RunPhase("cutover", ctx);
  EXPECT_TRUE(absl::IsDeadlineExceeded(status)) << status;  // lift_fence's "gave up" error
  EXPECT_THAT(status.message(), HasSubstr("does not hold exactly the source's data"));
  EXPECT_THAT(status.message(), HasSubstr("app/public.t"));
  EXPECT_TRUE(ctx.Ran("unfence"));
  EXPECT_FALSE(ctx.Ran("promote"));
  EXPECT_FALSE(ctx.record_.source_fenced());
  EXPECT_FALSE(ctx.record_.info().cutover_compare().passed());
}

TEST(CutoverPhaseTest, VerifyChecksumsFalseSkipsTheCompareButNotTheFenceCheck) {
  ScriptedContext ctx;
  ctx.plan_.cutover.verify_checksums = false;
  ctx.target_sum_ = "rows=2 md5=fedcba9876543210fedcba9876543210 persistence=p kind=r";
  ASSERT_TRUE(RunPhase("cutover", ctx).ok());
  EXPECT_FALSE(ctx.Ran("exact-checksums-source"));
  EXPECT_TRUE(ctx.Ran("confirm-fence"));
  EXPECT_TRUE(ctx.record_.target_promoted());
}

TEST(CutoverPhaseTest, StopFenceStopsTheSourceInsteadOfCheckingTheFence) {
  ScriptedContext ctx;
  ctx.plan_.fence = FenceMethod::kStop;
  ASSERT_TRUE(RunPhase("cutover", ctx).ok());
  EXPECT_TRUE(ctx.Ran("stop-source"));
  EXPECT_FALSE(ctx.Ran("confirm-fence"));
}

// A context whose pgBackRest info lists one backup in the new stanza.
class FinishContext : public ScriptedContext {
 public:
  absl::StatusOr<v1::TaskResult> Run(const std::string& agent_id, absl::string_view step,
                                     v1::Task task, StepOptions options) override {
    absl::StatusOr<v1::TaskResult> result =
        ScriptedContext::Run(agent_id, step, task, options);
    if (result.ok() && task.has_pgbackrest() && task.pgbackrest().has_info()) {
      result->set_info_json(info_json_);
    }
    return result;
  }
  std::string info_json_ =
      R"([{"name":"main-new","backup":[{"label":"20261127-031500F","info":{"size":1024}}]}])";
};

TEST(CutoverPhaseTest, FinishGivesThePromotedTargetItsOwnStanzaAndFirstFullBackup) {
  FinishContext ctx;
  ctx.plan_.stanza = "main";
  ctx.plan_.cutover.new_stanza = "main-new";
  ctx.record_.set_target_promoted(true);
  absl::Status status = RunPhase("finish", ctx);
  ASSERT_TRUE(status.ok()) << status;
  std::vector<std::string> expected = {"configure-target",  "target-status",
                                       "checkpoint",        "new-stanza-create",
                                       "new-stanza-check",  "new-stanza-backup",
                                       "new-stanza-info"};
  EXPECT_EQ(ctx.steps_, expected);
  for (const char* step : {"new-stanza-create", "new-stanza-check", "new-stanza-backup"}) {
    EXPECT_TRUE(ctx.tasks_[step].pgbackrest().new_stanza()) << step;
  }
  EXPECT_EQ(ctx.tasks_["new-stanza-backup"].pgbackrest().backup().type(), "full");
  EXPECT_EQ(ctx.tasks_["configure-target"].configure_pgbackrest().new_stanza(), "main-new");
  EXPECT_EQ(ctx.record_.info().new_stanza(), "main-new");
  EXPECT_EQ(ctx.record_.info().new_stanza_backup_label(), "20261127-031500F");

  // Run again (say after a controller restart): the backup is not taken twice.
  ctx.steps_.clear();
  ASSERT_TRUE(RunPhase("finish", ctx).ok());
  EXPECT_FALSE(ctx.Ran("new-stanza-backup"));
}

// Under Patroni the promotion is Patroni's (standby_cluster removed), and finish restarts
// Patroni around the running target (REJOIN) before its first backup, never PostgreSQL.
TEST(CutoverPhaseTest, UnderPatroniPatroniPromotesAndFinishRejoinsBeforeTheBackup) {
  ScriptedContext cutover;
  cutover.record_.mutable_info()->set_target_manager("patroni");
  ASSERT_TRUE(RunPhase("cutover", cutover).ok());
  ASSERT_TRUE(cutover.Ran("promote"));
  EXPECT_EQ(cutover.tasks_["promote"].patroni().action(), v1::PatroniAction::PROMOTE);
  EXPECT_TRUE(cutover.record_.target_promoted());

  FinishContext ctx;
  ctx.plan_.cutover.new_stanza = "main-new";
  ctx.record_.mutable_info()->set_target_manager("patroni");
  ctx.record_.set_target_promoted(true);
  absl::Status status = RunPhase("finish", ctx);
  ASSERT_TRUE(status.ok()) << status;
  std::vector<std::string> expected = {"configure-target",  "patroni-status",    "patroni-rejoin",
                                       "checkpoint",        "new-stanza-create", "new-stanza-check",
                                       "new-stanza-backup", "new-stanza-info"};
  EXPECT_EQ(ctx.steps_, expected);
  EXPECT_EQ(ctx.tasks_["patroni-rejoin"].patroni().action(), v1::PatroniAction::REJOIN);
}

TEST(CutoverPhaseTest, FinishBeforePromotionIsRefused) {
  FinishContext ctx;
  absl::Status status = RunPhase("finish", ctx);
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("not promoted"));
  EXPECT_TRUE(ctx.steps_.empty());
}

TEST(CutoverPhaseTest, FinishWithoutABackupListedIsDataLoss) {
  FinishContext ctx;
  ctx.record_.set_target_promoted(true);
  ctx.info_json_ = R"([{"name":"main-new","backup":[]}])";
  absl::Status status = RunPhase("finish", ctx);
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_TRUE(ctx.record_.info().new_stanza_backup_label().empty());
}

TEST(CutoverPhaseTest, StandbyRestorePointsTheTargetsArchivingAtTheNewStanzaAndRestartsIt) {
  ScriptedContext ctx;
  ctx.plan_.cutover.new_stanza = "main-new";
  absl::Status status = RunPhase("restore", ctx);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_TRUE(ctx.Ran("target-archiving"));
  const v1::SqlQuery& enable = ctx.tasks_["target-archiving"].sql();
  EXPECT_EQ(enable.query(), v1::SqlQuery::ENABLE_ARCHIVING);
  EXPECT_TRUE(enable.new_stanza());
  EXPECT_EQ(enable.migration_id(), "m1");
  EXPECT_TRUE(ctx.Ran("restart-standby"));
  EXPECT_EQ(ctx.tasks_["restart-standby"].service().action(), v1::ServiceAction::RESTART);
  EXPECT_THAT(ctx.events_, Contains(HasSubstr("archives into stanza main-new")));

  // A rehearsal copy archives nowhere.
  ScriptedContext rehearsal;
  rehearsal.record_.mutable_info()->set_restore_mode("rehearsal");
  (void)RunPhase("restore", rehearsal);
  EXPECT_FALSE(rehearsal.Ran("target-archiving"));
}

TEST(CutoverPhaseTest, AbortWhileFencedLiftsTheFenceAndAfterPromotionIsRefused) {
  ScriptedContext ctx;
  ctx.record_.set_source_fenced(true);
  ctx.record_.set_target_restored(true);
  absl::Status status = RunAbort(ctx);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_TRUE(ctx.Ran("unfence"));
  EXPECT_EQ(ctx.tasks_["unfence"].sql().query(), v1::SqlQuery::UNFENCE);
  EXPECT_EQ(ctx.tasks_["unfence"].sql().migration_id(), "m1");
  EXPECT_FALSE(ctx.record_.source_fenced());
  EXPECT_TRUE(ctx.Ran("stop-target"));
  EXPECT_FALSE(ctx.Ran("promote"));

  ScriptedContext promoted;
  promoted.record_.set_source_fenced(true);
  promoted.record_.set_target_promoted(true);
  absl::Status refused = RunAbort(promoted);
  EXPECT_TRUE(absl::IsFailedPrecondition(refused)) << refused;
  EXPECT_FALSE(promoted.Ran("unfence"));
  EXPECT_TRUE(promoted.record_.source_fenced());
}

TEST(CutoverPhaseTest, SourceConfigNeverNamesTheNewStanza) {
  ScriptedContext ctx;
  ctx.plan_.cutover.new_stanza = "main-new";
  ASSERT_TRUE(RunPhase("cutover", ctx).ok());
  EXPECT_TRUE(ctx.tasks_["configure-source"].configure_pgbackrest().new_stanza().empty());
  EXPECT_EQ(ctx.tasks_["configure-target"].configure_pgbackrest().new_stanza(), "main-new");
}

size_t StepIndex(const ScriptedContext& ctx, absl::string_view step) {
  return std::find(ctx.steps_.begin(), ctx.steps_.end(), step) - ctx.steps_.begin();
}

// A target that crashed, or was stopped by hand, after the restore: the cutover starts it again
// (a standby that starts goes on following the archive) before anything else, and says so.
TEST(CutoverPhaseTest, ATargetFoundStoppedIsStartedBeforeTheCutoverFencesAnything) {
  ScriptedContext ctx;
  ctx.target_running_ = false;
  absl::Status status = RunPhase("cutover", ctx);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_TRUE(ctx.Ran("start-target"));
  EXPECT_LT(StepIndex(ctx, "target-status"), StepIndex(ctx, "start-target"));
  EXPECT_LT(StepIndex(ctx, "start-target"), StepIndex(ctx, "catch-up-switch"));
  EXPECT_LT(StepIndex(ctx, "start-target"), StepIndex(ctx, "fence"));
  EXPECT_THAT(ctx.events_, Contains(AllOf(HasSubstr("warning: the target's PostgreSQL is not "
                                                    "running (no server running)"),
                                          HasSubstr("before the cutover"))));
}

TEST(CutoverPhaseTest, ARunningTargetIsLeftAloneByTheCutover) {
  ScriptedContext ctx;
  ASSERT_TRUE(RunPhase("cutover", ctx).ok());
  EXPECT_TRUE(ctx.Ran("target-status"));
  EXPECT_FALSE(ctx.Ran("start-target"));
}

TEST(CutoverPhaseTest, FinishStartsAPromotedTargetFoundStoppedBeforeBackingItUp) {
  FinishContext ctx;
  ctx.plan_.stanza = "main";
  ctx.plan_.cutover.new_stanza = "main-new";
  ctx.record_.set_target_promoted(true);
  ctx.target_running_ = false;
  absl::Status status = RunPhase("finish", ctx);
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_TRUE(ctx.Ran("start-target"));
  EXPECT_LT(StepIndex(ctx, "start-target"), StepIndex(ctx, "checkpoint"));
  EXPECT_THAT(ctx.events_,
              Contains(HasSubstr("starting it to back it up into the new stanza")));
}

}  // namespace
}  // namespace pghaul::controller
