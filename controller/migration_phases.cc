#include "controller/migration_phases.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "common/time_proto.h"
#include "controller/patroni_steps.h"
#include "controller/phase_tasks.h"
#include "controller/preflight_checks.h"
#include "controller/verify_phase.h"
#include "controller/verify_report.h"
#include "nlohmann/json.hpp"

namespace pghaul::controller {
namespace {

constexpr absl::Duration kPollInterval = absl::Milliseconds(250);
// wal_retrieve_retry_interval of a standby target: a few GETs a second on an S3 repository while
// the migration follows the archive, for a catch-up and a last segment fetched in a quarter second.
constexpr uint32_t kStandbyWalRetrieveRetryMs = 250;
// ... and from the cutover's gate to the promotion (or until the fence is lifted): every wait is
// downtime then, so the standby asks for the last segment as fast as pgBackRest answers.
constexpr uint32_t kCutoverWalRetrieveRetryMs = 10;
// How long the target may take to replay up to the gate's switch before the fence (about one
// segment: seconds), and how often the catch-up journals the lag while it waits.
constexpr absl::Duration kSettleTimeout = absl::Minutes(2);
constexpr absl::Duration kLagJournalInterval = absl::Seconds(2);

// The label of the newest backup in `pgbackrest info --output=json` of one stanza ("" when it
// lists none), and its database size when `bytes` is not null.
std::string LastBackupLabel(const std::string& info_json, uint64_t* bytes = nullptr) {
  nlohmann::json json = nlohmann::json::parse(info_json, nullptr, false);
  if (!json.is_array() || json.empty() || !json[0].is_object() || !json[0].contains("backup") ||
      !json[0]["backup"].is_array() || json[0]["backup"].empty()) {
    return "";
  }
  const nlohmann::json& last = json[0]["backup"].back();
  if (!last.is_object()) return "";
  if (bytes != nullptr && last.contains("info") && last["info"].is_object() &&
      last["info"].contains("size") && last["info"]["size"].is_number_unsigned()) {
    *bytes = last["info"]["size"].get<uint64_t>();
  }
  if (!last.contains("label") || !last["label"].is_string()) return "";
  return last["label"].get<std::string>();
}

absl::Status Preflight(PhaseContext& ctx) {
  const Plan& plan = ctx.plan();
  PGH_RETURN_IF_ERROR(Configure(ctx, plan.source_agent));
  PGH_RETURN_IF_ERROR(Configure(ctx, plan.target_agent));
  v1::Task facts;
  facts.mutable_gather_facts();
  std::vector<absl::StatusOr<v1::TaskResult>> gathered =
      ctx.RunAll({{plan.source_agent, "facts-source", facts, {.read_only = true}},
                  {plan.target_agent, "facts-target", facts, {.read_only = true}}});
  v1::Task info = PgBackRestTask(plan);
  info.mutable_pgbackrest()->mutable_info();
  PGH_ASSIGN_OR_RETURN(v1::TaskResult stanza,
                       ctx.Run(plan.source_agent, "stanza-info", info,
                               {.read_only = true, .allow_failure = true}));
  if (ctx.dry_run()) return absl::OkStatus();

  PreflightInput input;
  input.plan = &plan;
  input.source_agent = plan.source_agent;
  input.target_agent = plan.target_agent;
  input.source_online = gathered[0].ok();
  input.target_online = gathered[1].ok();
  if (gathered[0].ok()) input.source = gathered[0]->facts();
  if (gathered[1].ok()) input.target = gathered[1]->facts();
  // info "fails" on a stanza that does not exist yet (status code 1) but still prints its JSON,
  // which is what the stanza check reads; only an info without output is an error.
  auto writable = stanza.values().find("repository_writable");
  // Only when info itself saw nothing wrong (a valid or a not-yet-created stanza): its own
  // error says more about an unreachable repository than the write probe.
  const bool info_clean = !stanza.info_json().empty() && (stanza.repository_status_code() == 0 ||
                                                          stanza.repository_status_code() == 1);
  if (info_clean && writable != stanza.values().end() && writable->second == "false") {
    auto path = stanza.values().find("repository_write_path");
    input.repository_not_writable =
        path == stanza.values().end() ? plan.repository.posix.path : path->second;
  }
  if (stanza.state() == v1::TaskResult::SUCCEEDED || !stanza.info_json().empty()) {
    input.stanza_info_json = stanza.info_json();
    input.stanza_status_code = stanza.repository_status_code();
  } else {
    input.stanza_info_error = stanza.message();
  }
  std::vector<v1::CheckResult> checks = RunPreflightChecks(input);
  PGH_RETURN_IF_ERROR(ctx.Update([&](v1::MigrationRecord& record) {
    record.mutable_info()->clear_preflight();
    for (const v1::CheckResult& check : checks) *record.mutable_info()->add_preflight() = check;
  }));
  std::vector<std::string> failed;
  for (const v1::CheckResult& check : checks) {
    if (check.status() == "fail") {
      failed.push_back(check.name());
      ctx.Event("error", absl::StrCat("check ", check.name(), " failed: ", check.message(),
                                      check.fix().empty() ? "" : " (fix: " + check.fix() + ")"));
    } else if (check.status() == "warn") {
      ctx.Event("warn", absl::StrCat("check ", check.name(), ": ", check.message()));
    }
  }
  if (!PreflightPassed(checks)) {
    return absl::FailedPreconditionError(absl::StrCat(
        failed.size(), " preflight check(s) failed: ", absl::StrJoin(failed, ", "),
        ". `pghaul status ", plan.name, "` shows each with its fix; nothing was changed on "
        "either host."));
  }
  ctx.Event("info", absl::StrCat("all ", checks.size(), " preflight checks pass"));
  return absl::OkStatus();
}

absl::Status PrepareSource(PhaseContext& ctx) {
  const Plan& plan = ctx.plan();
  PGH_RETURN_IF_ERROR(Configure(ctx, plan.source_agent));
  // Journaled before the change, so an abort after a crash here still puts it back.
  PGH_RETURN_IF_ERROR(
      ctx.Update([](v1::MigrationRecord& record) { record.set_source_archiving_enabled(true); }));
  PGH_ASSIGN_OR_RETURN(
      v1::TaskResult archiving,
      ctx.Run(plan.source_agent, "enable-archiving",
              SqlTask(v1::SqlQuery::ENABLE_ARCHIVING, plan.name)));
  auto restart = archiving.values().find("restart_needed");
  if (restart != archiving.values().end() && restart->second == "true") {
    if (!plan.source_restart_allowed) {
      return absl::FailedPreconditionError(
          "archive_mode is off on the source and turning it on needs a restart, which the plan "
          "does not allow: set `source_restart_allowed: true` in the plan (the restart happens "
          "inside the window, if any), or set archive_mode = on and restart the source "
          "yourself, then run this phase again");
    }
    ctx.Event("info", "restarting the source to turn archive_mode on (the plan allows it)");
    PGH_RETURN_IF_ERROR(
        ctx.Update([](v1::MigrationRecord& record) { record.set_source_restarted(true); }));
    PGH_RETURN_IF_ERROR(
        ctx.Run(plan.source_agent, "restart", ServiceTask(v1::ServiceAction::RESTART)).status());
  }
  v1::Task create = PgBackRestTask(plan);
  create.mutable_pgbackrest()->mutable_stanza_create();
  PGH_RETURN_IF_ERROR(ctx.Run(plan.source_agent, "stanza-create", create).status());
  v1::Task check = PgBackRestTask(plan);
  check.mutable_pgbackrest()->mutable_check();
  PGH_RETURN_IF_ERROR(ctx.Run(plan.source_agent, "check", check).status());
  ctx.Event("info", absl::StrCat("the source archives WAL into stanza ", plan.stanza,
                                 " and pgbackrest check passes"));
  return absl::OkStatus();
}

absl::Status Backup(PhaseContext& ctx) {
  const Plan& plan = ctx.plan();
  v1::MigrationRecord record = ctx.record();
  PGH_RETURN_IF_ERROR(Configure(ctx, plan.source_agent));
  v1::Task backup = PgBackRestTask(plan);
  v1::PgBackRestBackup* options = backup.mutable_pgbackrest()->mutable_backup();
  options->set_type(record.request().backup_type().empty() ? plan.backup.type
                                                           : record.request().backup_type());
  options->set_process_max(static_cast<uint32_t>(plan.backup.process_max));
  options->set_compress_type(plan.backup.compress_type);
  ctx.Event("info", absl::StrCat(options->type(), " backup of ", plan.source_agent,
                                 " into stanza ", plan.stanza, " started"));
  PGH_RETURN_IF_ERROR(
      ctx.Run(plan.source_agent, "backup", backup, {.track_progress = true}).status());
  v1::Task info = PgBackRestTask(plan);
  info.mutable_pgbackrest()->mutable_info();
  PGH_ASSIGN_OR_RETURN(v1::TaskResult listed,
                       ctx.Run(plan.source_agent, "info", info, {.read_only = true}));
  if (ctx.dry_run()) return absl::OkStatus();
  uint64_t bytes = 0;
  std::string label = LastBackupLabel(listed.info_json(), &bytes);
  if (label.empty()) {
    return absl::DataLossError(
        "the backup finished but `pgbackrest info` lists no backup in the stanza; see the "
        "source agent's log");
  }
  PGH_RETURN_IF_ERROR(ctx.Update([&](v1::MigrationRecord& r) {
    r.mutable_info()->set_backup_label(label);
    r.mutable_info()->set_backup_bytes(bytes);
  }));
  ctx.Event("info", absl::StrCat("backup ", label, " done: ", HumanBytes(bytes), " of data"));
  return absl::OkStatus();
}

// Points the standby target's archiving at the migration's new stanza, so that once promoted it
// archives there and never into the source's. A standby archives nothing while it recovers
// (archive_mode = on, not always), and archive_mode needs a restart, which a standby takes
// without losing anything: done here, it costs the cutover nothing. Under Patroni the restart
// is Patroni's (POST /restart), and the settings in postgresql.auto.conf override its own.
absl::Status ArchiveIntoNewStanza(PhaseContext& ctx) {
  const Plan& plan = ctx.plan();
  v1::Task enable = SqlTask(v1::SqlQuery::ENABLE_ARCHIVING, plan.name);
  enable.mutable_sql()->set_new_stanza(true);
  PGH_ASSIGN_OR_RETURN(v1::TaskResult archiving,
                       ctx.Run(plan.target_agent, "target-archiving", enable));
  auto restart = archiving.values().find("restart_needed");
  if (restart != archiving.values().end() && restart->second == "true") {
    PGH_RETURN_IF_ERROR(ctx.Run(plan.target_agent, "restart-standby",
                                TargetUnderPatroni(ctx.record())
                                    ? PatroniTask(v1::PatroniAction::RESTART, 300)
                                    : ServiceTask(v1::ServiceAction::RESTART))
                            .status());
  }
  ctx.Event("info", absl::StrCat("once promoted, the target archives into stanza ",
                                 plan.cutover.new_stanza, " (the source's stanza ", plan.stanza,
                                 " never receives its WAL)"));
  return absl::OkStatus();
}

// Finds out whether Patroni manages the target (its agent's facts have a patroni section) and
// journals it in info.target_manager, which later phases and abort go by.
absl::StatusOr<bool> DetectTargetManager(PhaseContext& ctx) {
  v1::Task facts;
  facts.mutable_gather_facts();
  PGH_ASSIGN_OR_RETURN(v1::TaskResult gathered, ctx.Run(ctx.plan().target_agent, "facts-target",
                                                        facts, {.read_only = true}));
  const bool patroni = gathered.facts().has_patroni();
  if (ctx.dry_run()) return TargetUnderPatroni(ctx.record());
  PGH_RETURN_IF_ERROR(ctx.Update([&](v1::MigrationRecord& r) {
    r.mutable_info()->set_target_manager(patroni ? "patroni" : "");
  }));
  return patroni;
}

absl::Status Restore(PhaseContext& ctx) {
  const Plan& plan = ctx.plan();
  v1::MigrationRecord record = ctx.record();
  const bool standby = record.info().restore_mode() == "standby";
  std::string set = record.request().set().empty() ? record.info().backup_label()
                                                   : record.request().set();
  PGH_RETURN_IF_ERROR(Configure(ctx, plan.target_agent));
  PGH_ASSIGN_OR_RETURN(const bool patroni, DetectTargetManager(ctx));
  if (patroni && standby) PGH_RETURN_IF_ERROR(GiveSourcePatroniRoles(ctx));
  PGH_RETURN_IF_ERROR(
      ctx.Update([](v1::MigrationRecord& r) { r.set_target_restored(true); }));
  PGH_RETURN_IF_ERROR(StopTarget(ctx, ""));
  v1::Task restore = PgBackRestTask(plan);
  v1::PgBackRestRestore* options = restore.mutable_pgbackrest()->mutable_restore();
  options->set_delta(true);
  options->set_set(set);
  options->set_process_max(static_cast<uint32_t>(plan.backup.process_max));
  if (standby) {
    options->set_type("standby");
    options->set_target_timeline("current");
    // A segment archived by the source is fetched within this, not PostgreSQL's 5 s: it bounds
    // the catch-up before the fence and the wait for the last segment inside the downtime.
    options->set_wal_retrieve_retry_ms(kStandbyWalRetrieveRetryMs);
  } else {
    options->set_type("immediate");
    options->set_target_action("promote");
  }
  ctx.Event("info", absl::StrCat("restoring ", set.empty() ? "the latest backup" : set, " on ",
                                 plan.target_agent, " as a ", standby ? "standby" : "rehearsal",
                                 " copy"));
  PGH_RETURN_IF_ERROR(
      ctx.Run(plan.target_agent, "restore", restore, {.track_progress = true}).status());
  if (patroni) {
    PGH_RETURN_IF_ERROR(standby ? FollowSourceUnderPatroni(ctx) : HandOverToPatroni(ctx));
  } else {
    PGH_RETURN_IF_ERROR(
        ctx.Run(plan.target_agent, "start-target", ServiceTask(v1::ServiceAction::START)).status());
  }
  if (ctx.dry_run()) return absl::OkStatus();
  absl::Time deadline = ctx.Now() + absl::Minutes(30);
  for (int poll = 0;; ++poll) {
    PGH_ASSIGN_OR_RETURN(v1::TaskResult replay,
                         ctx.Run(plan.target_agent, "recovery-state",
                                 SqlTask(v1::SqlQuery::LAST_REPLAY_LSN), {.read_only = true}));
    bool in_recovery = ResultValue(replay, "in_recovery") == "true";
    if (standby && in_recovery) {
      ctx.Event("info", absl::StrCat("the target is a standby following the archive, replayed "
                                     "up to ", ResultValue(replay, "lsn")));
      return ArchiveIntoNewStanza(ctx);
    }
    if (!standby && !in_recovery) {
      ctx.Event("info", "the rehearsal copy reached consistency and was promoted");
      return absl::OkStatus();
    }
    if (standby && !in_recovery) {
      return absl::FailedPreconditionError(
          "the target left recovery after a standby restore; it is no longer following the "
          "source: restore again");
    }
    if (ctx.Now() >= deadline) {
      return absl::DeadlineExceededError(
          "the rehearsal copy did not finish recovery within 30 minutes; see the target's "
          "PostgreSQL log");
    }
    if (!ctx.Sleep(kPollInterval)) return absl::CancelledError("stopped while waiting");
  }
}

// PostgreSQL's timestamptz text in UTC, as the agent's sessions print it
// ("2026-11-26 22:13:20.123456+00"); nullopt for "" or anything else.
std::optional<absl::Time> ParsePgUtcTime(absl::string_view text) {
  if (!absl::ConsumeSuffix(&text, "+00")) return std::nullopt;
  absl::Time time;
  std::string error;
  if (!absl::ParseTime("%Y-%m-%d %H:%M:%E*S", text, absl::UTCTimeZone(), &time, &error)) {
    return std::nullopt;
  }
  return time;
}


// What one look at both sides saw: the source's position (`source_lsn`, from a WAL switch), its
// archiver (when read: values of STAT_ARCHIVER), and the target's LAST_REPLAY_LSN values.
// Computes the lag and journals it in the migration's info for `pghaul status`.
absl::StatusOr<v1::ReplicationLag> RecordLag(PhaseContext& ctx, uint64_t source_lsn,
                                             const v1::TaskResult* archiver,
                                             const v1::TaskResult& replay) {
  v1::ReplicationLag lag = ctx.record().info().lag();
  const absl::Time now = ctx.Now();
  lag.set_source_lsn(FormatLsn(source_lsn));
  if (archiver != nullptr) {
    auto wal = archiver->values().find("last_archived_wal");
    lag.set_source_last_archived_wal(wal == archiver->values().end() ? "" : wal->second);
    auto at = archiver->values().find("last_archived_time");
    std::optional<absl::Time> archived_at =
        at == archiver->values().end() ? std::nullopt : ParsePgUtcTime(at->second);
    if (archived_at.has_value()) {
      *lag.mutable_source_last_archived_at() = ToProto(*archived_at);
    } else {
      lag.clear_source_last_archived_at();
    }
  }
  auto replay_lsn = replay.values().find("lsn");
  if (replay_lsn == replay.values().end()) {
    return absl::InternalError("the target's LAST_REPLAY_LSN result has no lsn");
  }
  lag.set_target_replay_lsn(replay_lsn->second);
  uint64_t replayed = 0;
  if (!replay_lsn->second.empty()) {
    PGH_ASSIGN_OR_RETURN(replayed, ParseLsn(replay_lsn->second));
  }
  auto replay_at = replay.values().find("replay_timestamp");
  std::optional<absl::Time> replayed_at =
      replay_at == replay.values().end() ? std::nullopt : ParsePgUtcTime(replay_at->second);
  if (replayed_at.has_value()) {
    *lag.mutable_target_last_replay_at() = ToProto(*replayed_at);
  } else {
    lag.clear_target_last_replay_at();
  }
  const bool caught_up = replayed >= source_lsn;
  lag.set_lag_bytes(caught_up ? 0 : source_lsn - replayed);
  if (caught_up) {
    lag.set_lag_seconds(0);
  } else if (replayed_at.has_value()) {
    lag.set_lag_seconds(std::max(0.0, absl::ToDoubleSeconds(now - *replayed_at)));
  } else {
    lag.clear_lag_seconds();
  }
  *lag.mutable_measured_at() = ToProto(now);
  PGH_RETURN_IF_ERROR(
      ctx.Update([&](v1::MigrationRecord& r) { *r.mutable_info()->mutable_lag() = lag; }));
  return lag;
}

// Whole seconds an agent-side wait may take to reach `deadline` from now: at least 1, at most
// `cap` and the agents' limit.
uint32_t WaitSecondsUntil(PhaseContext& ctx, absl::Time deadline,
                          absl::Duration cap = absl::InfiniteDuration()) {
  const absl::Duration left = std::min(deadline - ctx.Now(), cap);
  const double seconds = std::ceil(absl::ToDoubleSeconds(left));
  return static_cast<uint32_t>(std::clamp(seconds, 1.0, double{kMaxAgentWaitSeconds}));
}

v1::Task WaitReplayedTask(uint64_t lsn, uint32_t wait_seconds) {
  v1::Task task = SqlTask(v1::SqlQuery::WAIT_REPLAYED);
  task.mutable_sql()->set_lsn(FormatLsn(lsn));
  task.mutable_sql()->set_wait_seconds(wait_seconds);
  return task;
}

v1::Task WaitArchivedTask(const std::string& walfile, uint32_t wait_seconds) {
  v1::Task task = SqlTask(v1::SqlQuery::WAIT_ARCHIVED);
  task.mutable_sql()->set_walfile(walfile);
  task.mutable_sql()->set_wait_seconds(wait_seconds);
  return task;
}

v1::Task WalRetrieveRetryTask(uint32_t retry_ms) {
  v1::Task task = SqlTask(v1::SqlQuery::SET_WAL_RETRIEVE_RETRY);
  task.mutable_sql()->set_retry_ms(retry_ms);
  return task;
}

std::string BehindMessage(const v1::ReplicationLag& lag, uint64_t lsn) {
  return absl::StrCat("the target replayed only up to ",
                      lag.target_replay_lsn().empty() ? "nothing" : lag.target_replay_lsn(),
                      " by the deadline; it needs ", FormatLsn(lsn), " (",
                      HumanBytes(lag.lag_bytes()), " behind)");
}

// Waits, on the target agent (WAIT_REPLAYED), until the target's replay LSN reaches `lsn` or
// `deadline` passes, journaling the lag against `lsn` (the source's position) every `slice`.
absl::Status WaitReplayRecordingLag(PhaseContext& ctx, const std::string& step, uint64_t lsn,
                                    absl::Time deadline,
                                    absl::Duration slice = kLagJournalInterval) {
  if (ctx.dry_run()) return absl::OkStatus();
  while (true) {
    PGH_ASSIGN_OR_RETURN(
        v1::TaskResult result,
        ctx.Run(ctx.plan().target_agent, step,
                WaitReplayedTask(lsn, WaitSecondsUntil(ctx, deadline, slice)),
                {.read_only = true}));
    PGH_ASSIGN_OR_RETURN(v1::ReplicationLag lag, RecordLag(ctx, lsn, nullptr, result));
    if (lag.lag_bytes() == 0) return absl::OkStatus();
    if (ctx.Now() >= deadline) return absl::DeadlineExceededError(BehindMessage(lag, lsn));
  }
}

// Puts the standby's wal_retrieve_retry_interval back to the following pace when a cutover
// stops before promotion. Best effort: a failure is an event, since it only costs archive GETs.
void RestoreWalRetrieveRetry(PhaseContext& ctx, absl::string_view step) {
  absl::Status restored =
      ctx.Run(ctx.plan().target_agent, step, WalRetrieveRetryTask(kStandbyWalRetrieveRetryMs))
          .status();
  if (!restored.ok()) {
    ctx.Event("warn", absl::StrCat("the target's wal_retrieve_retry_interval stays at ",
                                   kCutoverWalRetrieveRetryMs, "ms (", restored.message(),
                                   "); it asks the archive for the next segment that often"));
  }
}

// The cutover, each step journaled (a restarted controller re-attaches to the task it sent):
//
//   catch-up-switch ─> catch-up (target replays up to it, ≤ 30 min)
//     ─> gate-switch + gate (the lag: source position - target replay; more than
//        cutover.max_lag: fail, nothing fenced)
//     ─> fast-retrieval (the standby retries the archive every 10 ms) ─> settle (target
//        replays up to the gate's switch, ≤ 2 min: the archiver has no backlog at the fence)
//     ─> probe-switch + probe (one segment's trip, timed: longer than the downtime budget:
//        fail, nothing fenced)
//     ─> [source_fenced journaled] fence (hard fence, see sql_catalogue.h)
//     ─> final-switch ─> archiver ‖ final-replay (both agents wait at once, 10 ms polls)
//     ─> exact compare (cutover.verify_checksums) ─> confirm-fence, or stop-source (fence: stop)
//     ─> promote (restore_command cleared first) [target_promoted journaled]
//
// From the fence on, the downtime budget (--max-downtime, else cutover.max_downtime) runs: a
// step that ends past it, before promotion, lifts the fence and fails with the numbers. A
// failure that is not a budget overrun (a task failed) leaves the source fenced: `pghaul abort`
// lifts it, or cutover runs again.
absl::Status Cutover(PhaseContext& ctx) {
  const Plan& plan = ctx.plan();
  v1::MigrationRecord record = ctx.record();
  if (record.target_promoted()) return absl::OkStatus();
  if (record.info().restore_mode() != "standby") {
    return absl::FailedPreconditionError(
        "cutover needs a target that follows the source's archive: run `pghaul restore " +
        plan.name + " --mode standby` first (the last restore was a rehearsal copy)");
  }
  const absl::Duration budget = record.request().max_downtime_seconds() > 0
                                    ? absl::Seconds(record.request().max_downtime_seconds())
                                    : plan.cutover.max_downtime;
  const std::string budget_source =
      record.request().max_downtime_seconds() > 0 ? "--max-downtime" : "cutover.max_downtime";
  PGH_RETURN_IF_ERROR(Configure(ctx, plan.source_agent));
  PGH_RETURN_IF_ERROR(Configure(ctx, plan.target_agent));
  PGH_RETURN_IF_ERROR(StartTargetIfDown(ctx, "", "before the cutover"));

  if (!record.source_fenced()) {
    // Catch up first, so the fenced time covers only the last segment.
    PGH_ASSIGN_OR_RETURN(v1::TaskResult pre,
                         ctx.Run(plan.source_agent, "catch-up-switch",
                                 SqlTask(v1::SqlQuery::SWITCH_WAL), {.read_only = true}));
    if (!ctx.dry_run()) {
      PGH_ASSIGN_OR_RETURN(uint64_t lsn, ParseLsn(ResultValue(pre, "lsn")));
      ctx.Event("info", absl::StrCat("waiting for the target to replay up to ",
                                     ResultValue(pre, "lsn"), " before fencing"));
      PGH_RETURN_IF_ERROR(
          WaitReplayRecordingLag(ctx, "catch-up", lsn, ctx.Now() + absl::Minutes(30)));
    }
    // The gate: what the target still lacks right now is what must cross while fenced.
    PGH_ASSIGN_OR_RETURN(v1::TaskResult gate_switch,
                         ctx.Run(plan.source_agent, "gate-switch",
                                 SqlTask(v1::SqlQuery::SWITCH_WAL), {.read_only = true}));
    std::vector<absl::StatusOr<v1::TaskResult>> gate = ctx.RunAll(
        {{plan.source_agent, "gate-archiver", SqlTask(v1::SqlQuery::STAT_ARCHIVER),
          {.read_only = true}},
         {plan.target_agent, "gate", SqlTask(v1::SqlQuery::LAST_REPLAY_LSN),
          {.read_only = true}}});
    for (const auto& result : gate) PGH_RETURN_IF_ERROR(result.status());
    if (!ctx.dry_run()) {
      PGH_ASSIGN_OR_RETURN(uint64_t source_lsn, ParseLsn(ResultValue(gate_switch, "lsn")));
      PGH_ASSIGN_OR_RETURN(v1::ReplicationLag lag,
                           RecordLag(ctx, source_lsn, &*gate[0], *gate[1]));
      if (lag.lag_bytes() > plan.cutover.max_lag_bytes) {
        return absl::FailedPreconditionError(absl::StrCat(
            "not fencing: the target lags ", HumanBytes(lag.lag_bytes()), " (",
            lag.lag_bytes(), " bytes: source at ", lag.source_lsn(), ", target replayed ",
            lag.target_replay_lsn().empty() ? "nothing" : lag.target_replay_lsn(),
            ") behind the source, more than cutover.max_lag ",
            HumanBytes(plan.cutover.max_lag_bytes), " (", plan.cutover.max_lag_bytes,
            " bytes). Nothing was fenced; run cutover again when writes are lighter, or raise "
            "cutover.max_lag"));
      }
      ctx.Event("info", absl::StrCat("the target lags ", HumanBytes(lag.lag_bytes()),
                                     " (cutover.max_lag ", HumanBytes(plan.cutover.max_lag_bytes),
                                     "); downtime budget ", Seconds(budget), " (",
                                     budget_source, ")"));
    }
    // From here every wait is downtime or about to be: the standby asks for the next segment as
    // fast as pgBackRest answers, and first replays up to the gate's switch, so that only what
    // was written since must cross while fenced (not a backlog of segments still archiving).
    PGH_RETURN_IF_ERROR(ctx.Run(plan.target_agent, "fast-retrieval",
                                WalRetrieveRetryTask(kCutoverWalRetrieveRetryMs))
                            .status());
    if (!ctx.dry_run()) {
      PGH_ASSIGN_OR_RETURN(uint64_t gate_lsn, ParseLsn(ResultValue(gate_switch, "lsn")));
      absl::Status settled =
          WaitReplayRecordingLag(ctx, "settle", gate_lsn, ctx.Now() + kSettleTimeout);
      if (!settled.ok()) {
        RestoreWalRetrieveRetry(ctx, "settle-retrieval");
        return absl::FailedPreconditionError(absl::StrCat(
            "not fencing: the target did not replay up to the source's position at the gate (",
            FormatLsn(gate_lsn), ") within ", absl::FormatDuration(kSettleTimeout), ": ",
            settled.message(), ". Nothing was fenced; look at the archiving and the target's "
            "replay (pghaul status) and run cutover again"));
      }
      // Would the last segment fit in the budget? One segment's trip, timed now while the
      // source is still writable: a WAL switch and the wait until the target replayed it.
      PGH_ASSIGN_OR_RETURN(v1::TaskResult probe_switch,
                           ctx.Run(plan.source_agent, "probe-switch",
                                   SqlTask(v1::SqlQuery::SWITCH_WAL), {.read_only = true}));
      PGH_ASSIGN_OR_RETURN(uint64_t probe_lsn, ParseLsn(ResultValue(probe_switch, "lsn")));
      const absl::Time probe_start = ctx.Now();
      absl::Status probed = WaitReplayRecordingLag(ctx, "probe", probe_lsn, probe_start + budget);
      if (!probed.ok()) {
        RestoreWalRetrieveRetry(ctx, "probe-retrieval");
        if (!absl::IsDeadlineExceeded(probed)) return probed;
        return absl::FailedPreconditionError(absl::StrCat(
            "not fencing: one WAL segment took longer than the downtime budget ", Seconds(budget),
            " (", budget_source, ") to reach the target just now (", probed.message(),
            "), so the last one would not fit either. Nothing was fenced; raise the budget "
            "(--max-downtime or cutover.max_downtime) or cut over when the archive is faster"));
      }
      ctx.Event("info", absl::StrCat("a WAL segment reached the target in ",
                                     Seconds(ctx.Now() - probe_start), " (downtime budget ",
                                     Seconds(budget), ")"));
    }
    PGH_RETURN_IF_ERROR(ctx.Update([&](v1::MigrationRecord& r) {
      r.set_source_fenced(true);
      *r.mutable_fenced_at() = ToProto(ctx.Now());
    }));
    ctx.Event("info", "fencing the source: new logins refused but the agent's, other sessions "
                      "ended, read-only");
  }
  PGH_RETURN_IF_ERROR(ctx.Run(plan.source_agent, "fence",
                              SqlTask(v1::SqlQuery::FENCE_READ_ONLY, plan.name))
                          .status());
  absl::Time fenced_at = FromProto(ctx.record().fenced_at());
  absl::Time deadline = fenced_at + budget;

  auto lift_fence = [&](absl::string_view step, const absl::Status& why) -> absl::Status {
    const std::string numbers =
        absl::StrCat("the downtime budget is ", Seconds(budget), " (", budget_source,
                     "), and ", Seconds(ctx.Now() - fenced_at), " had passed since the fence");
    ctx.Event("error", absl::StrCat("cutover stopped before promotion at ", step, ": ",
                                    why.message(), "; ", numbers, "; lifting the fence"));
    PGH_RETURN_IF_ERROR(ctx.Run(plan.source_agent, "unfence",
                                SqlTask(v1::SqlQuery::UNFENCE, plan.name))
                            .status());
    PGH_RETURN_IF_ERROR(
        ctx.Update([](v1::MigrationRecord& r) { r.set_source_fenced(false); }));
    RestoreWalRetrieveRetry(ctx, "normal-retrieval");
    return absl::DeadlineExceededError(absl::StrCat(
        "cutover gave up before promoting the target (", step, "): ", why.message(), "; ",
        numbers, ". The source is writable again and nothing was lost; look at the archiving "
        "and the target's replay (pghaul status), then run cutover again (--max-downtime sets "
        "a larger budget)"));
  };
  // A step that ended past the budget.
  auto over_budget = [&](absl::string_view step) -> absl::Status {
    if (ctx.dry_run() || ctx.Now() <= deadline) return absl::OkStatus();
    return lift_fence(step, absl::DeadlineExceededError("the budget ran out"));
  };
  PGH_RETURN_IF_ERROR(over_budget("fence"));

  PGH_ASSIGN_OR_RETURN(v1::TaskResult final_switch,
                       ctx.Run(plan.source_agent, "final-switch",
                               SqlTask(v1::SqlQuery::SWITCH_WAL)));
  PGH_RETURN_IF_ERROR(over_budget("final-switch"));
  if (!ctx.dry_run()) {
    const std::string walfile = ResultValue(final_switch, "walfile");
    PGH_ASSIGN_OR_RETURN(uint64_t final_lsn, ParseLsn(ResultValue(final_switch, "lsn")));
    ctx.Event("info", absl::StrCat("final WAL position ", ResultValue(final_switch, "lsn"),
                                   "; waiting for ", walfile, " to be archived and replayed"));
    // Both agents wait at once, each polling its own server every 10 ms: the archiver is there
    // to say which side was slow when the budget runs out.
    while (true) {
      const uint32_t wait_seconds = WaitSecondsUntil(ctx, deadline);
      std::vector<absl::StatusOr<v1::TaskResult>> waits = ctx.RunAll(
          {{plan.source_agent, "archiver", WaitArchivedTask(walfile, wait_seconds),
            {.read_only = true}},
           {plan.target_agent, "final-replay", WaitReplayedTask(final_lsn, wait_seconds),
            {.read_only = true}}});
      for (const auto& result : waits) PGH_RETURN_IF_ERROR(result.status());
      PGH_ASSIGN_OR_RETURN(v1::ReplicationLag lag,
                           RecordLag(ctx, final_lsn, &*waits[0], *waits[1]));
      const bool archived = waits[0]->values().count("reached") > 0 &&
                            ResultValue(*waits[0], "reached") == "true";
      if (lag.lag_bytes() == 0) break;
      if (ctx.Now() < deadline) continue;
      if (!archived) {
        const std::string& last = lag.source_last_archived_wal();
        return lift_fence("archiver", absl::DeadlineExceededError(absl::StrCat(
                                          walfile, " was not archived (last archived: ",
                                          last.empty() ? "none" : last, ")")));
      }
      return lift_fence("final-replay",
                        absl::DeadlineExceededError(BehindMessage(lag, final_lsn)));
    }
    ctx.Event("info", "the target replayed the source's last WAL");
  }
  PGH_RETURN_IF_ERROR(over_budget("final-replay"));
  if (plan.cutover.verify_checksums) {
    // Both sides at the same LSN and nothing can write: any difference is real.
    ctx.Event("info", "comparing every table's rows and checksum on both sides before promoting");
    PGH_ASSIGN_OR_RETURN(v1::VerifyReport exact, CompareData(ctx, "exact-"));
    if (!ctx.dry_run()) {
      *exact.mutable_finished_at() = ToProto(ctx.Now());
      PGH_RETURN_IF_ERROR(ctx.Update(
          [&](v1::MigrationRecord& r) { *r.mutable_info()->mutable_cutover_compare() = exact; }));
      if (!exact.passed()) {
        return lift_fence("exact-compare",
                          absl::DataLossError(absl::StrCat(
                              "the target does not hold exactly the source's data at the same "
                              "WAL position (", SummarizeVerify(exact), "); it was not promoted")));
      }
      ctx.Event("info", absl::StrCat("source and target are identical: ", SummarizeVerify(exact)));
    }
    PGH_RETURN_IF_ERROR(over_budget("exact-compare"));
  }
  if (plan.fence == FenceMethod::kStop) {
    PGH_RETURN_IF_ERROR(
        ctx.Run(plan.source_agent, "stop-source", ServiceTask(v1::ServiceAction::STOP)).status());
  } else {
    // Safety rule 1, checked rather than assumed: nothing may have lifted the fence since.
    PGH_ASSIGN_OR_RETURN(v1::TaskResult fence,
                         ctx.Run(plan.source_agent, "confirm-fence",
                                 SqlTask(v1::SqlQuery::FENCE_STATUS, plan.name),
                                 {.read_only = true}));
    if (!ctx.dry_run() && fence.values().count("fenced") > 0 &&
        ResultValue(fence, "fenced") != "true") {
      const auto& v = fence.values();
      auto value = [&v](const char* key) {
        auto it = v.find(key);
        return it == v.end() ? std::string("?") : it->second;
      };
      return absl::FailedPreconditionError(absl::StrCat(
          "refusing to promote the target: the source is not fenced any more "
          "(default_transaction_read_only=", value("read_only"), ", fence block in ",
          value("hba_file"), ": ", value("hba_block"), ", sessions of other roles: ",
          value("other_sessions"), "), so it could still accept writes the target would never "
          "see. Nothing was promoted. Run `pghaul cutover ", plan.name,
          "` again (it fences again) or `pghaul abort ", plan.name, "`"));
    }
    if (!ctx.dry_run() && fence.values().count("fenced") == 0) {
      return absl::InternalError("the source's FENCE_STATUS result has no 'fenced' value");
    }
  }
  if (TargetUnderPatroni(record)) {
    // Patroni promotes its standby leader once standby_cluster leaves its configuration.
    PGH_ASSIGN_OR_RETURN(
        v1::TaskResult promoted,
        ctx.Run(plan.target_agent, "promote", PatroniTask(v1::PatroniAction::PROMOTE, 300)));
    if (!ctx.dry_run()) {
      ctx.Event("info", absl::StrCat("Patroni promoted the target in ",
                                     ResultValue(promoted, "promoted_ms"), " ms: timeline ",
                                     ResultValue(promoted, "timeline_before"), " -> ",
                                     ResultValue(promoted, "timeline")));
    }
  } else {
    // Everything the target needs is replayed: it ends recovery without asking the archive for
    // anything (promotion.h in the agent), and its new timeline's history goes to the new
    // stanza.
    v1::Task promote = SqlTask(v1::SqlQuery::PROMOTE);
    promote.mutable_sql()->set_without_restore_command(true);
    PGH_RETURN_IF_ERROR(ctx.Run(plan.target_agent, "promote", promote).status());
  }
  double downtime = absl::ToDoubleSeconds(ctx.Now() - fenced_at);
  PGH_RETURN_IF_ERROR(ctx.Update([&](v1::MigrationRecord& r) {
    r.set_target_promoted(true);
    r.mutable_info()->set_downtime_seconds(downtime);
  }));
  ctx.Event("info", absl::StrFormat("the target is promoted; the source was fenced for %.1f s",
                                    downtime));
  return absl::OkStatus();
}

// The promoted target gets a stanza of its own in the same repository and its first full backup
// there (it has archived into that stanza since promotion, see ArchiveIntoNewStanza). A
// CHECKPOINT first: pgBackRest refuses a backup while pg_control still shows the old timeline.
absl::Status Finish(PhaseContext& ctx) {
  const Plan& plan = ctx.plan();
  v1::MigrationRecord record = ctx.record();
  if (!record.target_promoted()) {
    return absl::FailedPreconditionError(
        "finish comes after the cutover: the target is not promoted yet (pghaul cutover " +
        plan.name + ")");
  }
  if (record.info().new_stanza_backup_label().empty()) {
    PGH_RETURN_IF_ERROR(Configure(ctx, plan.target_agent));
    PGH_RETURN_IF_ERROR(StartTargetIfDown(ctx, "", "to back it up into the new stanza"));
    if (TargetUnderPatroni(record)) {
      // Patroni keeps the standby's restore_command (the source's archive) in memory and writes
      // it into postgresql.conf again at every reload and restart of PostgreSQL, until Patroni
      // itself restarts. REJOIN restarts Patroni around the running server: no downtime.
      PGH_ASSIGN_OR_RETURN(v1::TaskResult rejoined,
                           ctx.Run(plan.target_agent, "patroni-rejoin",
                                   PatroniTask(v1::PatroniAction::REJOIN, 300)));
      if (!ctx.dry_run()) {
        ctx.Event("info", absl::StrCat("Patroni restarted around the running target (timeline ",
                                       ResultValue(rejoined, "timeline"),
                                       "): its configuration no longer points at the source's "
                                       "archive"));
      }
    }
    PGH_RETURN_IF_ERROR(
        ctx.Run(plan.target_agent, "checkpoint", SqlTask(v1::SqlQuery::CHECKPOINT)).status());
    auto on_new_stanza = [&plan]() {
      v1::Task task = PgBackRestTask(plan);
      task.mutable_pgbackrest()->set_new_stanza(true);
      return task;
    };
    v1::Task create = on_new_stanza();
    create.mutable_pgbackrest()->mutable_stanza_create();
    PGH_RETURN_IF_ERROR(ctx.Run(plan.target_agent, "new-stanza-create", create).status());
    v1::Task check = on_new_stanza();
    check.mutable_pgbackrest()->mutable_check();
    PGH_RETURN_IF_ERROR(ctx.Run(plan.target_agent, "new-stanza-check", check).status());
    PGH_RETURN_IF_ERROR(ctx.Update(
        [&](v1::MigrationRecord& r) { r.mutable_info()->set_new_stanza(plan.cutover.new_stanza); }));
    ctx.Event("info", absl::StrCat("the target archives into stanza ", plan.cutover.new_stanza,
                                   " and pgbackrest check passes; taking its first full backup"));
    v1::Task backup = on_new_stanza();
    v1::PgBackRestBackup* options = backup.mutable_pgbackrest()->mutable_backup();
    options->set_type("full");
    options->set_process_max(static_cast<uint32_t>(plan.backup.process_max));
    options->set_compress_type(plan.backup.compress_type);
    PGH_RETURN_IF_ERROR(
        ctx.Run(plan.target_agent, "new-stanza-backup", backup, {.track_progress = true})
            .status());
    v1::Task info = on_new_stanza();
    info.mutable_pgbackrest()->mutable_info();
    PGH_ASSIGN_OR_RETURN(v1::TaskResult listed, ctx.Run(plan.target_agent, "new-stanza-info",
                                                        info, {.read_only = true}));
    if (!ctx.dry_run()) {
      std::string label = LastBackupLabel(listed.info_json());
      if (label.empty()) {
        return absl::DataLossError(absl::StrCat(
            "the target's first backup finished but `pgbackrest info` lists no backup in stanza ",
            plan.cutover.new_stanza, "; see the target agent's log"));
      }
      PGH_RETURN_IF_ERROR(ctx.Update([&](v1::MigrationRecord& r) {
        r.mutable_info()->set_new_stanza_backup_label(label);
      }));
      ctx.Event("info", absl::StrCat("the target's first full backup in stanza ",
                                     plan.cutover.new_stanza, " is ", label));
    }
  }
  ctx.Event("info", absl::StrCat("migration complete: ", plan.target_agent,
                                 " is the primary; ", plan.source_agent, " is left ",
                                 plan.fence == FenceMethod::kStop ? "stopped" : "read-only",
                                 " and must not be unfenced while applications use the target"));
  return absl::OkStatus();
}

}  // namespace

const std::vector<std::string>& AllPhases() {
  static const auto* phases = new std::vector<std::string>{
      std::string(kPhasePreflight), std::string(kPhasePrepareSource), std::string(kPhaseBackup),
      std::string(kPhaseRestore),   std::string(kPhaseVerify),        std::string(kPhaseCutover),
      std::string(kPhaseFinish)};
  return *phases;
}

int PhaseIndex(absl::string_view phase) {
  const auto& phases = AllPhases();
  auto it = std::find(phases.begin(), phases.end(), phase);
  return it == phases.end() ? -1 : static_cast<int>(it - phases.begin());
}

absl::Status RunPhase(absl::string_view phase, PhaseContext& ctx) {
  if (phase == kPhasePreflight) return Preflight(ctx);
  if (phase == kPhasePrepareSource) return PrepareSource(ctx);
  if (phase == kPhaseBackup) return Backup(ctx);
  if (phase == kPhaseRestore) return Restore(ctx);
  if (phase == kPhaseVerify) return RunVerify(ctx);
  if (phase == kPhaseCutover) return Cutover(ctx);
  if (phase == kPhaseFinish) return Finish(ctx);
  return absl::InvalidArgumentError(absl::StrCat("unknown phase '", phase, "'"));
}

absl::Status RunAbort(PhaseContext& ctx) {
  const Plan& plan = ctx.plan();
  v1::MigrationRecord record = ctx.record();
  if (record.target_promoted()) {
    return absl::FailedPreconditionError(
        "the target was promoted: a cutover cannot be aborted after promotion");
  }
  if (record.source_fenced()) {
    PGH_RETURN_IF_ERROR(
        ctx.Run(plan.source_agent, "unfence", SqlTask(v1::SqlQuery::UNFENCE, plan.name)).status());
    PGH_RETURN_IF_ERROR(ctx.Update([](v1::MigrationRecord& r) { r.set_source_fenced(false); }));
    ctx.Event("info", "the source's fence is lifted: it accepts writes again");
  }
  if (record.source_archiving_enabled()) {
    PGH_ASSIGN_OR_RETURN(v1::TaskResult restored,
                         ctx.Run(plan.source_agent, "restore-archiving",
                                 SqlTask(v1::SqlQuery::RESTORE_ARCHIVING, plan.name),
                                 {.allow_failure = true}));
    if (restored.state() != v1::TaskResult::SUCCEEDED) {
      ctx.Event("warn", absl::StrCat("the source's archiving settings were not put back: ",
                                     restored.message()));
    } else {
      auto restart = restored.values().find("restart_needed");
      if (restart != restored.values().end() && restart->second == "true") {
        if (record.source_restarted()) {
          ctx.Event("info", "restarting the source to put archive_mode back");
          PGH_RETURN_IF_ERROR(
              ctx.Run(plan.source_agent, "restart", ServiceTask(v1::ServiceAction::RESTART))
                  .status());
        } else {
          ctx.Event("warn",
                    "archive_mode goes back to its old value at the source's next restart");
        }
      }
      ctx.Event("info", "the source's archive_mode and archive_command are as before");
    }
    PGH_RETURN_IF_ERROR(ctx.Update([](v1::MigrationRecord& r) {
      r.set_source_archiving_enabled(false);
      r.set_source_restarted(false);
    }));
  }
  if (record.target_restored()) {
    PGH_RETURN_IF_ERROR(StopTarget(ctx, ""));
    ctx.Event("info", TargetUnderPatroni(record) ? "the target's Patroni and PostgreSQL are stopped"
                                                 : "the target is stopped");
  }
  return DropSourcePatroniRoles(ctx);
}

bool MayStartNow(absl::string_view phase, const Plan& plan, const v1::StartPhaseRequest& request,
                 absl::Time when, std::string* why) {
  const bool gated = phase == kPhasePrepareSource || phase == kPhaseBackup ||
                     phase == kPhaseCutover;
  if (!gated) return true;
  if (request.has_not_before() && when < FromProto(request.not_before())) {
    *why = absl::StrCat("waiting until ",
                        absl::FormatTime("%Y-%m-%d %H:%M:%S %Z", FromProto(request.not_before()),
                                         absl::LocalTimeZone()),
                        " (--at) to start ", phase);
    return false;
  }
  if (plan.window.has_value() && !plan.window->Contains(when)) {
    *why = absl::StrFormat("waiting for the off-peak window %02d:%02d-%02d:%02d %s to start %s",
                           plan.window->start_minute / 60, plan.window->start_minute % 60,
                           plan.window->end_minute / 60, plan.window->end_minute % 60,
                           plan.window->timezone, std::string(phase));
    return false;
  }
  return true;
}

}  // namespace pghaul::controller
