// The restore phase into a target managed by Patroni, against a scripted PhaseContext: the
// steps in their order, what is journaled, and the refusals and failures (the whole hand-over
// runs against real Patroni and etcd in tests/integration/patroni_test.cc).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "controller/migration_phases.h"
#include "controller/phase_context.h"
#include "tests/unit/scripted_phase_context.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pghaul::controller {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kSourceId[] = "7712462926390867333";

class RestoreContext : public ScriptedPhaseContextBase {
 public:
  RestoreContext() {
    plan_.name = "m1";
    plan_.source_agent = "legacy";
    plan_.target_agent = "target";
    record_.mutable_info()->set_restore_mode("rehearsal");
    record_.mutable_info()->set_backup_label("20261127-100000F");
  }

  absl::StatusOr<v1::TaskResult> Run(const std::string&, absl::string_view step, v1::Task task,
                                     StepOptions) override {
    steps_.push_back(std::string(step));
    v1::TaskResult result;
    result.set_state(v1::TaskResult::SUCCEEDED);
    auto& values = *result.mutable_values();
    if (task.has_gather_facts() && patroni_) result.mutable_facts()->mutable_patroni();
    if (task.has_patroni()) {
      switch (task.patroni().action()) {
        case v1::PatroniAction::PREPARE_RESTORED:
          values["roles"] = "operator, replicator, rewind";
          values["system_identifier"] = kSourceId;
          break;
        case v1::PatroniAction::CLEAR_INITIALIZE:
          values["detail"] = "deleted /service/db/initialize (it held 1)";
          break;
        case v1::PatroniAction::ROLE_VERIFIERS:
          values["superuser"] = "operator";
          values["superuser_verifier"] = "SCRAM-SHA-256$4096:c2FsdA==$a:b";
          break;
        case v1::PatroniAction::STATUS:
          ++statuses_;
          values["reachable"] = patroni_answers_ ? "true" : "false";
          if (patroni_answers_ && statuses_ >= leader_after_) {
            values["leader"] = "true";
            values["role"] = leader_role_;
            values["timeline"] = "3";
            values["system_identifier"] = leader_id_;
          }
          break;
        default:
          break;
      }
    }
    if (task.has_sql() && task.sql().query() == v1::SqlQuery::ENSURE_ROLES) {
      ensured_.push_back(task.sql());
      values["missing"] = "operator";
      if (task.sql().create_roles()) {
        created_journaled_ = record_.source_created_roles_size() == 1;
        values["created"] = "operator";
      }
    }
    if (task.has_sql() && task.sql().query() == v1::SqlQuery::LAST_REPLAY_LSN) {
      values["in_recovery"] = record_.info().restore_mode() == "standby" ? "true" : "false";
      values["lsn"] = "0/3000000";
    }
    return result;
  }

  std::vector<std::string> steps_;
  bool patroni_ = true;
  bool patroni_answers_ = true;
  int statuses_ = 0;
  int leader_after_ = 3;  // the third STATUS sees the Leader
  std::string leader_id_ = kSourceId;
  std::string leader_role_ = "master";
  std::vector<v1::SqlQuery> ensured_;
  bool created_journaled_ = false;
};

TEST(PatroniRestorePhaseTest, HandsTheCopyToPatroniStepByStep) {
  RestoreContext ctx;
  absl::Status status = RunPhase(kPhaseRestore, ctx);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_THAT(ctx.steps_,
              ElementsAre("configure-target", "facts-target", "stop-patroni", "restore",
                          "prepare-for-patroni", "clear-initialize", "start-patroni",
                          "patroni-status", "patroni-status", "patroni-status", "recovery-state"));
  EXPECT_EQ(ctx.record_.info().target_manager(), "patroni");
  EXPECT_TRUE(ctx.record_.target_restored());
  EXPECT_THAT(ctx.record_.info().target_patroni_roles(),
              ElementsAre("operator", "replicator", "rewind"));
  EXPECT_THAT(ctx.events_,
              testing::Contains(HasSubstr(absl::StrCat(
                  "Patroni leads the restored copy: timeline 3, system identifier ", kSourceId))));
}

TEST(PatroniRestorePhaseTest, APlainTargetIsStartedByItsAgent) {
  RestoreContext ctx;
  ctx.patroni_ = false;
  ASSERT_TRUE(RunPhase(kPhaseRestore, ctx).ok());
  EXPECT_THAT(ctx.steps_, ElementsAre("configure-target", "facts-target", "stop-target", "restore",
                                      "start-target", "recovery-state"));
  EXPECT_EQ(ctx.record_.info().target_manager(), "");
}

TEST(PatroniRestorePhaseTest, AStandbyWithoutPatronisRolesOnTheSourceIsRefusedBeforeAnyChange) {
  RestoreContext ctx;
  ctx.record_.mutable_info()->set_restore_mode("standby");
  absl::Status status = RunPhase(kPhaseRestore, ctx);
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("Nothing was changed"));
  EXPECT_THAT(status.message(), HasSubstr("source_patroni_roles_allowed: true"));
  EXPECT_THAT(ctx.steps_, ElementsAre("configure-target", "facts-target", "patroni-role-verifiers",
                                      "source-roles-check"));
  ASSERT_EQ(ctx.ensured_.size(), 1u);
  EXPECT_FALSE(ctx.ensured_[0].create_roles());
  EXPECT_FALSE(ctx.record_.target_restored());
  EXPECT_EQ(ctx.record_.source_created_roles_size(), 0);
}

TEST(PatroniRestorePhaseTest, AStandbyGetsPatronisRolesThroughTheSourceThenFollowsUnderPatroni) {
  RestoreContext ctx;
  ctx.plan_.source_patroni_roles_allowed = true;
  ctx.record_.mutable_info()->set_restore_mode("standby");
  ctx.leader_role_ = "standby_leader";
  absl::Status restored = RunPhase(kPhaseRestore, ctx);
  ASSERT_TRUE(restored.ok()) << restored;
  EXPECT_THAT(
      ctx.steps_,
      ElementsAre("configure-target", "facts-target", "patroni-role-verifiers",
                  "source-roles-check", "source-roles-create", "source-roles-switch",
                  "stop-patroni", "restore", "follow-archive", "start-patroni", "patroni-status",
                  "patroni-status", "patroni-status", "recovery-state", "target-archiving"));
  ASSERT_EQ(ctx.ensured_.size(), 2u);
  EXPECT_TRUE(ctx.ensured_[1].create_roles());
  ASSERT_EQ(ctx.ensured_[1].roles_size(), 1);
  EXPECT_EQ(ctx.ensured_[1].roles(0).name(), "operator");
  EXPECT_TRUE(ctx.ensured_[1].roles(0).superuser());
  EXPECT_EQ(ctx.ensured_[1].roles(0).scram_verifier(), "SCRAM-SHA-256$4096:c2FsdA==$a:b");
  EXPECT_TRUE(ctx.created_journaled_) << "journaled before the role is created";

  // Abort drops what it created.
  ctx.steps_.clear();
  absl::Status aborted = RunAbort(ctx);
  ASSERT_TRUE(aborted.ok()) << aborted;
  EXPECT_THAT(ctx.steps_, ElementsAre("stop-patroni", "drop-source-roles"));
  EXPECT_EQ(ctx.record_.source_created_roles_size(), 0);
}

TEST(PatroniRestorePhaseTest, APatroniThatStopsAnsweringFailsTheRestoreWithinTenSeconds) {
  RestoreContext ctx;
  ctx.patroni_answers_ = false;
  const absl::Time started = ctx.now_;
  absl::Status status = RunPhase(kPhaseRestore, ctx);
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("Patroni on the target stopped answering"));
  EXPECT_THAT(status.message(), HasSubstr("The source is untouched"));
  EXPECT_LE(ctx.now_ - started, absl::Seconds(11));
}

TEST(PatroniRestorePhaseTest, ALeaderOfAnotherClusterIsAnError) {
  RestoreContext ctx;
  ctx.leader_id_ = "1111";
  absl::Status status = RunPhase(kPhaseRestore, ctx);
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("system identifier 1111, not the restored copy's"));
}

TEST(PatroniRestorePhaseTest, AbortStopsPatroniNotTheAgentsService) {
  RestoreContext ctx;
  ctx.record_.set_target_restored(true);
  ctx.record_.mutable_info()->set_target_manager("patroni");
  ASSERT_TRUE(RunAbort(ctx).ok());
  EXPECT_THAT(ctx.steps_, ElementsAre("stop-patroni"));
  EXPECT_THAT(ctx.events_,
              testing::Contains("info: the target's Patroni and PostgreSQL are stopped"));
}

}  // namespace
}  // namespace pghaul::controller
