#include "controller/phase_tasks.h"

#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace pghaul::controller {

std::string ResultValue(const v1::TaskResult& result, const std::string& key) {
  auto it = result.values().find(key);
  return it == result.values().end() ? std::string() : it->second;
}

std::string Seconds(absl::Duration d) {
  return absl::StrFormat("%.1f s", absl::ToDoubleSeconds(d));
}

v1::Task SqlTask(v1::SqlQuery::Query query, const std::string& migration_id) {
  v1::Task task;
  task.mutable_sql()->set_query(query);
  if (!migration_id.empty()) task.mutable_sql()->set_migration_id(migration_id);
  return task;
}

v1::Task ServiceTask(v1::ServiceAction::Action action) {
  v1::Task task;
  task.mutable_service()->set_action(action);
  if (action == v1::ServiceAction::STOP) task.mutable_service()->set_stop_mode("fast");
  return task;
}

v1::Task PgBackRestTask(const Plan& plan) {
  v1::Task task;
  task.mutable_pgbackrest()->set_migration_id(plan.name);
  return task;
}

v1::Task PatroniTask(v1::PatroniAction::Action action, uint32_t wait_seconds) {
  v1::Task task;
  task.mutable_patroni()->set_action(action);
  task.mutable_patroni()->set_wait_seconds(wait_seconds);
  return task;
}

bool TargetUnderPatroni(const v1::MigrationRecord& record) {
  return record.info().target_manager() == "patroni";
}

absl::Status StopTarget(PhaseContext& ctx, absl::string_view step_prefix) {
  const std::string& target = ctx.plan().target_agent;
  if (TargetUnderPatroni(ctx.record())) {
    // Also stops a PostgreSQL that a killed Patroni left running (the agent's STOP does).
    return ctx
        .Run(target, absl::StrCat(step_prefix, "stop-patroni"),
             PatroniTask(v1::PatroniAction::STOP, 120))
        .status();
  }
  return ctx
      .Run(target, absl::StrCat(step_prefix, "stop-target"), ServiceTask(v1::ServiceAction::STOP))
      .status();
}

absl::Status StartTargetIfDown(PhaseContext& ctx, absl::string_view step_prefix,
                               absl::string_view why) {
  const Plan& plan = ctx.plan();
  if (TargetUnderPatroni(ctx.record())) {
    PGH_ASSIGN_OR_RETURN(v1::TaskResult status,
                         ctx.Run(plan.target_agent, absl::StrCat(step_prefix, "patroni-status"),
                                 PatroniTask(v1::PatroniAction::STATUS), {.read_only = true}));
    auto reachable = status.values().find("reachable");
    if (reachable == status.values().end() || reachable->second != "false") {
      return absl::OkStatus();
    }
    ctx.Event("warning", absl::StrCat("Patroni does not answer on the target: starting it ", why));
    PGH_RETURN_IF_ERROR(ctx.Run(plan.target_agent, absl::StrCat(step_prefix, "start-patroni"),
                                PatroniTask(v1::PatroniAction::START, 120))
                            .status());
    ctx.Event("info", "Patroni runs the target's PostgreSQL again");
    return absl::OkStatus();
  }
  PGH_ASSIGN_OR_RETURN(v1::TaskResult status,
                       ctx.Run(plan.target_agent, absl::StrCat(step_prefix, "target-status"),
                               ServiceTask(v1::ServiceAction::STATUS), {.read_only = true}));
  auto running = status.values().find("running");
  if (running == status.values().end() || running->second != "false") return absl::OkStatus();
  auto detail = status.values().find("detail");
  ctx.Event("warning",
            absl::StrCat("the target's PostgreSQL is not running (",
                         detail == status.values().end() ? "no detail" : detail->second,
                         "): starting it ", why));
  PGH_RETURN_IF_ERROR(ctx.Run(plan.target_agent, absl::StrCat(step_prefix, "start-target"),
                              ServiceTask(v1::ServiceAction::START))
                          .status());
  ctx.Event("info", "the target's PostgreSQL runs again");
  return absl::OkStatus();
}

absl::Status Configure(PhaseContext& ctx, const std::string& agent_id) {
  PGH_ASSIGN_OR_RETURN(v1::Secrets secrets, ctx.Secrets());
  v1::Task task;
  *task.mutable_configure_pgbackrest() = MakeConfigureTask(ctx.plan(), secrets);
  // Only the target ever archives into the new stanza; the source's config does not name it.
  if (agent_id != ctx.plan().target_agent) task.mutable_configure_pgbackrest()->clear_new_stanza();
  return ctx.Run(agent_id, agent_id == ctx.plan().source_agent ? "configure-source"
                                                               : "configure-target",
                 std::move(task))
      .status();
}

absl::StatusOr<uint64_t> ParseLsn(absl::string_view lsn) {
  std::vector<absl::string_view> parts = absl::StrSplit(lsn, '/');
  uint32_t high = 0, low = 0;
  if (parts.size() != 2 || !absl::SimpleHexAtoi(parts[0], &high) ||
      !absl::SimpleHexAtoi(parts[1], &low)) {
    return absl::InvalidArgumentError(absl::StrCat("not an LSN: '", lsn, "'"));
  }
  return (static_cast<uint64_t>(high) << 32) | low;
}

std::string FormatLsn(uint64_t lsn) {
  return absl::StrFormat("%X/%X", lsn >> 32, lsn & 0xffffffff);
}

std::string HumanBytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? absl::StrCat(bytes, " B") : absl::StrFormat("%.1f %s", value, units[unit]);
}

}  // namespace pghaul::controller
