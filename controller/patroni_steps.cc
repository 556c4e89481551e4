#include "controller/patroni_steps.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "controller/phase_tasks.h"

namespace pghaul::controller {
namespace {

constexpr absl::Duration kPollInterval = absl::Milliseconds(250);
// A Patroni that stops answering this long (killed, or exited on an error) fails a wait at
// once rather than at its deadline.
constexpr absl::Duration kPatroniGoneAfter = absl::Seconds(10);
}  // namespace

absl::StatusOr<v1::TaskResult> WaitForPatroniLeader(PhaseContext& ctx,
                                                    const std::string& system_identifier,
                                                    absl::string_view role,
                                                    absl::Duration timeout) {
  const absl::Time deadline = ctx.Now() + timeout;
  std::optional<absl::Time> unreachable_since;
  while (true) {
    PGH_ASSIGN_OR_RETURN(v1::TaskResult status,
                         ctx.Run(ctx.plan().target_agent, "patroni-status",
                                 PatroniTask(v1::PatroniAction::STATUS), {.read_only = true}));
    if (ctx.dry_run()) return status;
    if (ResultValue(status, "reachable") != "true") {
      if (!unreachable_since.has_value()) unreachable_since = ctx.Now();
      if (ctx.Now() - *unreachable_since >= kPatroniGoneAfter) {
        return absl::UnavailableError(absl::StrCat(
            "Patroni on the target stopped answering while it took the restored copy over (",
            ResultValue(status, "error"),
            "): it was killed or exited; see its log. The source "
            "is untouched: run the restore again (it starts over) or abort"));
      }
    } else {
      unreachable_since.reset();
      if (ResultValue(status, "leader") == "true" && ResultValue(status, "role") == role) {
        if (!system_identifier.empty() &&
            ResultValue(status, "system_identifier") != system_identifier) {
          return absl::FailedPreconditionError(absl::StrCat(
              "Patroni leads a cluster with system identifier ",
              ResultValue(status, "system_identifier"), ", not the restored copy's ",
              system_identifier, ": another node of its scope may have taken the lock"));
        }
        return status;
      }
    }
    if (ctx.Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "Patroni did not take the restored copy over within ", absl::FormatDuration(timeout),
          " (state ", ResultValue(status, "state"), ", role ", ResultValue(status, "role"),
          "); see Patroni's log on the target"));
    }
    if (!ctx.Sleep(kPollInterval)) return absl::CancelledError("stopped while waiting");
  }
}

absl::Status HandOverToPatroni(PhaseContext& ctx) {
  const Plan& plan = ctx.plan();
  const absl::Time started = ctx.Now();
  PGH_ASSIGN_OR_RETURN(
      v1::TaskResult prepared,
      ctx.Run(plan.target_agent, "prepare-for-patroni",
              PatroniTask(v1::PatroniAction::PREPARE_RESTORED, kMaxAgentWaitSeconds)));
  if (!ctx.dry_run()) {
    std::vector<std::string> roles =
        absl::StrSplit(ResultValue(prepared, "roles"), ", ", absl::SkipEmpty());
    PGH_RETURN_IF_ERROR(ctx.Update([&](v1::MigrationRecord& r) {
      r.mutable_info()->clear_target_patroni_roles();
      for (const std::string& role : roles) r.mutable_info()->add_target_patroni_roles(role);
    }));
    ctx.Event("info", absl::StrCat("recovery finished privately; Patroni's roles (",
                                   ResultValue(prepared, "roles"), ") are in the restored copy"));
  }
  PGH_ASSIGN_OR_RETURN(v1::TaskResult cleared,
                       ctx.Run(plan.target_agent, "clear-initialize",
                               PatroniTask(v1::PatroniAction::CLEAR_INITIALIZE)));
  if (!ctx.dry_run()) ctx.Event("info", absl::StrCat("etcd: ", ResultValue(cleared, "detail")));
  PGH_RETURN_IF_ERROR(
      ctx.Run(plan.target_agent, "start-patroni", PatroniTask(v1::PatroniAction::START, 300))
          .status());
  PGH_ASSIGN_OR_RETURN(v1::TaskResult leader,
                       WaitForPatroniLeader(ctx, ResultValue(prepared, "system_identifier"),
                                            "master", absl::Minutes(5)));
  if (!ctx.dry_run()) {
    ctx.Event("info", absl::StrCat("Patroni leads the restored copy: timeline ",
                                   ResultValue(leader, "timeline"), ", system identifier ",
                                   ResultValue(leader, "system_identifier"), ", ",
                                   Seconds(ctx.Now() - started), " after the pgBackRest restore"));
  }
  return absl::OkStatus();
}

absl::Status GiveSourcePatroniRoles(PhaseContext& ctx) {
  const Plan& plan = ctx.plan();
  PGH_ASSIGN_OR_RETURN(
      v1::TaskResult verifiers,
      ctx.Run(plan.target_agent, "patroni-role-verifiers",
              PatroniTask(v1::PatroniAction::ROLE_VERIFIERS), {.read_only = true}));
  v1::Task ensure = SqlTask(v1::SqlQuery::ENSURE_ROLES);
  for (const char* kind : {"superuser", "replication", "rewind"}) {
    const std::string name = ResultValue(verifiers, kind);
    if (name.empty()) continue;
    v1::RoleToEnsure* role = ensure.mutable_sql()->add_roles();
    role->set_name(name);
    role->set_superuser(std::string(kind) == "superuser");
    role->set_replication(std::string(kind) == "replication");
    role->set_scram_verifier(ResultValue(verifiers, absl::StrCat(kind, "_verifier")));
  }
  if (!ctx.dry_run() && ensure.sql().roles().empty()) {
    return absl::FailedPreconditionError(
        "the target's patroni.yml names none of Patroni's superuser, replication and rewind "
        "users (postgresql.authentication): nothing to give the source; nothing was changed");
  }
  PGH_ASSIGN_OR_RETURN(v1::TaskResult checked, ctx.Run(plan.source_agent, "source-roles-check",
                                                       ensure, {.read_only = true}));
  std::vector<std::string> missing =
      absl::StrSplit(ResultValue(checked, "missing"), ", ", absl::SkipEmpty());
  const std::string existing = ResultValue(checked, "existing");
  if (!existing.empty()) {
    ctx.Event("info", absl::StrCat("Patroni's role(s) ", existing,
                                   " exist on the source already and are left as they are: "
                                   "Patroni logs in to the standby with the source's passwords "
                                   "for them, which must be those of patroni.yml"));
  }
  if (!ctx.dry_run() && missing.empty()) return absl::OkStatus();
  if (!plan.source_patroni_roles_allowed) {
    return absl::FailedPreconditionError(absl::StrCat(
        "a standby under Patroni is read-only, so Patroni's role(s) ", absl::StrJoin(missing, ", "),
        " must come from the source, which lacks them. Nothing was changed. Either apply a new "
        "plan (another name: a started migration's plan cannot be replaced) with "
        "`source_patroni_roles_allowed: true` (pghaul then creates them on the source with "
        "patroni.yml's passwords, sent as SCRAM verifiers, and abort drops them), or create them "
        "on the source yourself with those passwords (docs/patroni.md) and restore again"));
  }
  // Journaled before the change, so that an abort after a crash here still drops them.
  PGH_RETURN_IF_ERROR(ctx.Update([&](v1::MigrationRecord& r) {
    for (const std::string& name : missing) {
      if (std::find(r.source_created_roles().begin(), r.source_created_roles().end(), name) ==
          r.source_created_roles().end()) {
        r.add_source_created_roles(name);
      }
    }
  }));
  ensure.mutable_sql()->set_create_roles(true);
  PGH_ASSIGN_OR_RETURN(v1::TaskResult created,
                       ctx.Run(plan.source_agent, "source-roles-create", ensure));
  // The roles reach the standby through the archive: this segment, archived now.
  PGH_RETURN_IF_ERROR(ctx.Run(plan.source_agent, "source-roles-switch",
                              SqlTask(v1::SqlQuery::SWITCH_WAL), {.read_only = true})
                          .status());
  if (!ctx.dry_run()) {
    ctx.Event("info", absl::StrCat("created Patroni's role(s) ", ResultValue(created, "created"),
                                   " on the source (the plan allows it; abort drops them): the "
                                   "standby gets them through the archive"));
  }
  return absl::OkStatus();
}

absl::Status FollowSourceUnderPatroni(PhaseContext& ctx) {
  const Plan& plan = ctx.plan();
  const absl::Time started = ctx.Now();
  PGH_ASSIGN_OR_RETURN(
      v1::TaskResult followed,
      ctx.Run(plan.target_agent, "follow-archive", PatroniTask(v1::PatroniAction::FOLLOW_ARCHIVE)));
  if (!ctx.dry_run()) ctx.Event("info", ResultValue(followed, "detail"));
  // Patroni says running once PostgreSQL accepts connections: a standby does after replaying
  // up to the backup's end.
  PGH_RETURN_IF_ERROR(ctx.Run(plan.target_agent, "start-patroni",
                              PatroniTask(v1::PatroniAction::START, kMaxAgentWaitSeconds))
                          .status());
  PGH_ASSIGN_OR_RETURN(v1::TaskResult leader,
                       WaitForPatroniLeader(ctx, "", "standby_leader", absl::Minutes(5)));
  if (!ctx.dry_run()) {
    ctx.Event("info", absl::StrCat("Patroni runs the restored copy as its standby leader, "
                                   "following the source's archive (timeline ",
                                   ResultValue(leader, "timeline"), ", system identifier ",
                                   ResultValue(leader, "system_identifier"), "), ",
                                   Seconds(ctx.Now() - started), " after the pgBackRest restore"));
  }
  return absl::OkStatus();
}

absl::Status DropSourcePatroniRoles(PhaseContext& ctx) {
  v1::MigrationRecord record = ctx.record();
  if (record.source_created_roles().empty()) return absl::OkStatus();
  v1::Task drop = SqlTask(v1::SqlQuery::DROP_ROLES);
  for (const std::string& name : record.source_created_roles()) {
    drop.mutable_sql()->add_roles()->set_name(name);
  }
  PGH_ASSIGN_OR_RETURN(v1::TaskResult dropped, ctx.Run(ctx.plan().source_agent, "drop-source-roles",
                                                       drop, {.allow_failure = true}));
  if (dropped.state() != v1::TaskResult::SUCCEEDED) {
    ctx.Event("warn",
              absl::StrCat("the role(s) ", absl::StrJoin(record.source_created_roles(), ", "),
                           " pghaul created on the source were not dropped (", dropped.message(),
                           "): drop them by hand"));
  } else if (!ctx.dry_run()) {
    const std::string kept = ResultValue(dropped, "not_created_by_pghaul");
    if (!kept.empty()) {
      ctx.Event("warn", absl::StrCat("the source's role(s) ", kept,
                                     " lack pghaul's mark (someone recreated or changed them): "
                                     "left in place; drop them by hand if they are not needed"));
    }
    const std::string names = ResultValue(dropped, "dropped");
    ctx.Event("info", names.empty() ? "the roles pghaul created on the source were gone already"
                                    : absl::StrCat("dropped the role(s) pghaul created on the "
                                                   "source: ",
                                                   names));
  }
  return ctx.Update([](v1::MigrationRecord& r) { r.clear_source_created_roles(); });
}

}  // namespace pghaul::controller
