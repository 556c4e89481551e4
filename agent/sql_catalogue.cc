#include "agent/sql_catalogue.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/pg_connection.h"
#include "agent/table_checksums.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace pghaul::agent {
namespace {

using Values = std::map<std::string, std::string>;

constexpr absl::Duration kDefaultStatementTimeout = absl::Seconds(60);
// An immediate checkpoint of a large, busy buffer pool, or ending many sessions one by one (up
// to 5 s each), can take minutes.
constexpr absl::Duration kLongStatementTimeout = absl::Minutes(15);
// pg_promote's own wait plus room for the call itself.
constexpr absl::Duration kPromoteExtraTimeout = absl::Seconds(60);
constexpr uint32_t kDefaultPromoteWaitSeconds = 60;
constexpr uint32_t kMaxPromoteWaitSeconds = 3600;
// How long a configuration reload may take to reach this session.
constexpr absl::Duration kReloadTimeout = absl::Seconds(10);
constexpr absl::Duration kReloadPollInterval = absl::Milliseconds(20);

// Every statement the catalogue runs. Fixed texts only: anything variable is a $n parameter.

// pg_switch_wal() is called once, in FROM, so `lsn` and `walfile` describe the same switch.
constexpr char kSwitchWalSql[] =
    "SELECT s.lsn::text AS lsn, pg_walfile_name(s.lsn) AS walfile FROM pg_switch_wal() AS s(lsn)";
constexpr char kCurrentWalLsnSql[] =
    "SELECT pg_current_wal_lsn()::text AS lsn, pg_current_wal_insert_lsn()::text AS insert_lsn";
constexpr char kLastReplayLsnSql[] =
    "SELECT pg_last_wal_replay_lsn()::text AS lsn,"
    " pg_last_xact_replay_timestamp()::text AS replay_timestamp,"
    " pg_is_in_recovery()::text AS in_recovery";
constexpr char kStatArchiverSql[] =
    "SELECT archived_count::text AS archived_count, last_archived_wal,"
    " last_archived_time::text AS last_archived_time, failed_count::text AS failed_count,"
    " last_failed_wal, last_failed_time::text AS last_failed_time,"
    " stats_reset::text AS stats_reset FROM pg_stat_archiver";
constexpr char kInRecoverySql[] = "SELECT pg_is_in_recovery()::text AS in_recovery";
constexpr char kPromoteSql[] = "SELECT pg_promote(true, $1::integer)::text AS promoted";
constexpr char kCheckpointSql[] = "CHECKPOINT";
constexpr char kFenceSql[] = "ALTER SYSTEM SET default_transaction_read_only = on";
constexpr char kUnfenceSql[] = "ALTER SYSTEM RESET default_transaction_read_only";
// pg_conf_load_time() is read in the same statement as the reload request: this backend only
// processes the SIGHUP between statements, so the value is the one from before this reload.
constexpr char kReloadSql[] =
    "SELECT pg_reload_conf()::text AS signalled, pg_conf_load_time()::text AS loaded_before";
constexpr char kFenceAppliedSql[] =
    "SELECT (current_setting('default_transaction_read_only') = 'on')::text AS applied";
// Unfenced once this session has reloaded the configuration (the setting then comes from
// postgresql.conf again, normally off), or the setting is already off.
constexpr char kUnfenceAppliedSql[] =
    "SELECT (pg_conf_load_time() > $1::timestamptz"
    " OR current_setting('default_transaction_read_only') = 'off')::text AS applied";
// This session has re-read the configuration files since $1 (pg_conf_load_time() before the
// reload).
constexpr char kSessionReloadedSql[] =
    "SELECT (pg_conf_load_time() > $1::timestamptz)::text AS applied";
constexpr char kReadOnlySettingSql[] =
    "SELECT current_setting('default_transaction_read_only') AS value";
// pg_terminate_backend(pid, 5000) waits up to 5 s for each session to exit and returns false
// (with a WARNING, logged) if it is still there, or if it had already gone before the signal.
constexpr char kTerminateSessionsSql[] =
    "SELECT count(*) FILTER (WHERE ended)::text AS terminated,"
    " count(*) FILTER (WHERE NOT ended)::text AS not_terminated"
    " FROM (SELECT pg_terminate_backend(pid, 5000) AS ended FROM pg_stat_activity"
    " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()) AS sessions";

absl::StatusOr<PgConnection> Connect(const PostgresConnection& target,
                                     absl::Duration statement_timeout) {
  PgSessionOptions options;
  options.statement_timeout = statement_timeout;
  return PgConnection::Open(target, options);
}

absl::StatusOr<Values> RunOneRow(const PostgresConnection& target, const char* sql) {
  PGH_ASSIGN_OR_RETURN(PgConnection conn, Connect(target, kDefaultStatementTimeout));
  return conn.ExecuteOneRow(sql);
}

// Asks the postmaster to reload its configuration and waits (bounded) until this session has
// applied it, judged by `applied_sql` (a one-row query returning applied = "true"; $1 is
// pg_conf_load_time() from before the reload). The postmaster re-reads the files before it
// signals its children, so once this session sees the change, every session started from now on
// starts with it and every existing one applies it before its next statement.
absl::Status ReloadAndWait(PgConnection& conn, const char* applied_sql, bool pass_load_time) {
  PGH_ASSIGN_OR_RETURN(Values reload, conn.ExecuteOneRow(kReloadSql));
  if (reload["signalled"] != "true") {
    return absl::InternalError("pg_reload_conf() could not signal the postmaster");
  }
  std::vector<std::optional<std::string>> params;
  if (pass_load_time) params.push_back(reload["loaded_before"]);
  const absl::Time deadline = absl::Now() + kReloadTimeout;
  while (true) {
    PGH_ASSIGN_OR_RETURN(Values applied, conn.ExecuteOneRow(applied_sql, params));
    if (applied["applied"] == "true") return absl::OkStatus();
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the configuration reload was not applied within ", absl::FormatDuration(kReloadTimeout),
          " (check the server log for errors in postgresql.conf or postgresql.auto.conf)"));
    }
    absl::SleepFor(kReloadPollInterval);
  }
}

absl::StatusOr<Values> Promote(const PostgresConnection& target, uint32_t wait_seconds) {
  if (wait_seconds > kMaxPromoteWaitSeconds) {
    return absl::InvalidArgumentError(absl::StrCat("PROMOTE wait_seconds must be at most ",
                                                   kMaxPromoteWaitSeconds, ", got ", wait_seconds));
  }
  if (wait_seconds == 0) wait_seconds = kDefaultPromoteWaitSeconds;
  PGH_ASSIGN_OR_RETURN(PgConnection conn,
                       Connect(target, absl::Seconds(wait_seconds) + kPromoteExtraTimeout));
  // pg_promote() would fail too (55000 "recovery is not in progress"), but say it plainly.
  PGH_ASSIGN_OR_RETURN(Values recovery, conn.ExecuteOneRow(kInRecoverySql));
  if (recovery["in_recovery"] != "true") {
    return absl::FailedPreconditionError(
        "PROMOTE refused: the server is not in recovery (it is already a primary), so there is "
        "nothing to promote");
  }
  PGH_ASSIGN_OR_RETURN(Values promoted,
                       conn.ExecuteOneRow(kPromoteSql, {absl::StrCat(wait_seconds)}));
  if (promoted["promoted"] != "true") {
    PGH_LOG_WARN("pg_promote() did not finish within {} s; promotion may still complete",
                 wait_seconds);
  }
  return Values{{"promoted", promoted["promoted"] == "true" ? "true" : "false"}};
}

absl::StatusOr<Values> Checkpoint(const PostgresConnection& target) {
  PGH_ASSIGN_OR_RETURN(PgConnection conn, Connect(target, kLongStatementTimeout));
  PGH_RETURN_IF_ERROR(conn.Execute(kCheckpointSql).status());
  return Values{};
}

// A SOFT fence: it makes new transactions default to read-only and ends every other client
// session, but a session that connects afterwards may still `SET transaction_read_only = off`
// (or `SET default_transaction_read_only = off`) and write, and that write would be lost at
// cutover. The hard fence (pg_hba reject plus ending sessions, or a
// clean stop) comes with the cutover work; until then the controller must not treat this alone
// as proof that nothing can write. Order matters: reload first and wait until it is applied, so
// no session started after the scan of pg_stat_activity begins read-write.
absl::StatusOr<Values> FenceReadOnly(const PostgresConnection& target) {
  PGH_ASSIGN_OR_RETURN(PgConnection conn, Connect(target, kLongStatementTimeout));
  PGH_RETURN_IF_ERROR(conn.Execute(kFenceSql).status());
  absl::Status reloaded = ReloadAndWait(conn, kFenceAppliedSql, /*pass_load_time=*/false);
  if (!reloaded.ok()) {
    return absl::Status(reloaded.code(),
                        absl::StrCat("default_transaction_read_only = on was written to "
                                     "postgresql.auto.conf but is not in effect: ",
                                     reloaded.message()));
  }
  PGH_ASSIGN_OR_RETURN(Values ended, conn.ExecuteOneRow(kTerminateSessionsSql));
  PGH_LOG_INFO("read-only fence in effect; ended {} client sessions ({} not confirmed)",
               ended["terminated"], ended["not_terminated"]);
  return ended;
}

absl::StatusOr<Values> Unfence(const PostgresConnection& target) {
  PGH_ASSIGN_OR_RETURN(PgConnection conn, Connect(target, kDefaultStatementTimeout));
  PGH_RETURN_IF_ERROR(conn.Execute(kUnfenceSql).status());
  PGH_RETURN_IF_ERROR(ReloadAndWait(conn, kUnfenceAppliedSql, /*pass_load_time=*/true));
  PGH_ASSIGN_OR_RETURN(Values setting, conn.ExecuteOneRow(kReadOnlySettingSql));
  if (setting["value"] != "off") {
    // postgresql.conf itself (or a role/database setting) keeps it on: the server was read-only
    // before pghaul fenced it too, so this is not pghaul's to change.
    PGH_LOG_WARN("unfenced, but default_transaction_read_only is still {} from postgresql.conf",
                 setting["value"]);
  }
  return Values{};
}

}  // namespace

absl::Status ReloadConfigurationAndWait(PgConnection& conn) {
  return ReloadAndWait(conn, kSessionReloadedSql, /*pass_load_time=*/true);
}

absl::StatusOr<std::map<std::string, std::string>> RunSqlQuery(const PostgresConnection& conn,
                                                               const v1::SqlQuery& query) {
  switch (query.query()) {
    case v1::SqlQuery::SWITCH_WAL:
      return RunOneRow(conn, kSwitchWalSql);
    case v1::SqlQuery::CURRENT_WAL_LSN:
      return RunOneRow(conn, kCurrentWalLsnSql);
    case v1::SqlQuery::LAST_REPLAY_LSN:
      return RunOneRow(conn, kLastReplayLsnSql);
    case v1::SqlQuery::STAT_ARCHIVER:
      return RunOneRow(conn, kStatArchiverSql);
    case v1::SqlQuery::PROMOTE:
      return Promote(conn, query.wait_seconds());
    case v1::SqlQuery::CHECKPOINT:
      return Checkpoint(conn);
    case v1::SqlQuery::FENCE_READ_ONLY:
      return FenceReadOnly(conn);
    case v1::SqlQuery::UNFENCE:
      return Unfence(conn);
    case v1::SqlQuery::TABLE_CHECKSUMS:
      return ComputeTableChecksums(conn);
    case v1::SqlQuery::ENABLE_ARCHIVING:
    case v1::SqlQuery::RESTORE_ARCHIVING:
      return absl::InvalidArgumentError(
          absl::StrCat(v1::SqlQuery::Query_Name(query.query()),
                       " needs the migration's pgBackRest setup: it runs through archiving.h"));
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown SqlQuery.query ", static_cast<int>(query.query())));
  }
}

}  // namespace pghaul::agent
