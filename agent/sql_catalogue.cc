#include "agent/sql_catalogue.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/hba_fence.h"
#include "agent/pg_connection.h"
#include "agent/promotion.h"
#include "agent/role_creation.h"
#include "agent/row_ranges.h"
#include "agent/schema_catalogue.h"
#include "agent/table_checksums.h"
#include "agent/wal_waits.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/validators.h"

namespace pghaul::agent {
namespace {

using Values = std::map<std::string, std::string>;

constexpr absl::Duration kDefaultStatementTimeout = absl::Seconds(60);
// WAIT_ARCHIVED, WAIT_REPLAYED (at most kMaxPromoteWaitSeconds, as PROMOTE).
constexpr uint32_t kDefaultWaitSeconds = 60;
// An immediate checkpoint of a large, busy buffer pool, or ending many sessions one by one (up
// to 5 s each), can take minutes.
constexpr absl::Duration kLongStatementTimeout = absl::Minutes(15);
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
// Walsenders too: a replication client could otherwise keep a session across the fence.
constexpr char kTerminateSessionsSql[] =
    "SELECT count(*) FILTER (WHERE ended)::text AS terminated,"
    " count(*) FILTER (WHERE NOT ended)::text AS not_terminated"
    " FROM (SELECT pg_terminate_backend(pid, 5000) AS ended FROM pg_stat_activity"
    " WHERE backend_type IN ('client backend', 'walsender') AND pid <> pg_backend_pid())"
    " AS sessions";
// The server's own pg_hba.conf path (superuser or pg_read_all_settings) and the role this
// session logged in as: the one role the fence lets in.
constexpr char kHbaFileSql[] =
    "SELECT current_setting('hba_file') AS hba_file, session_user::text AS agent_role";
// Every other role that can log in: pg_hba.conf has no negation, so each gets its own reject
// line.
constexpr char kOtherLoginRolesSql[] =
    "SELECT rolname::text FROM pg_roles WHERE rolcanlogin AND rolname <> session_user"
    " ORDER BY rolname";
// Sessions that the fence should have ended or kept out: other roles' client backends and
// walsenders (the agent's own role may log in on the socket; it is counted apart).
constexpr char kFenceSessionsSql[] =
    "SELECT count(*) FILTER (WHERE usename IS DISTINCT FROM session_user)::text AS other_roles,"
    " count(*) FILTER (WHERE usename = session_user)::text AS agent_role"
    " FROM pg_stat_activity WHERE backend_type IN ('client backend', 'walsender')"
    " AND pid <> pg_backend_pid()";
// pg_hba_file_rules parses the file on disk as a reload would. One bad line and the postmaster
// keeps the rules it had (without the fence), so the fence checks before it reloads.
constexpr char kHbaErrorsSql[] =
    "SELECT count(*)::text AS errors,"
    " coalesce(min(line_number)::text, '') AS first_line,"
    " coalesce((array_agg(error ORDER BY line_number))[1], '') AS first_error"
    " FROM pg_hba_file_rules WHERE error IS NOT NULL";

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

absl::StatusOr<Values> Checkpoint(const PostgresConnection& target) {
  PGH_ASSIGN_OR_RETURN(PgConnection conn, Connect(target, kLongStatementTimeout));
  PGH_RETURN_IF_ERROR(conn.Execute(kCheckpointSql).status());
  return Values{};
}

// The hba file's path and the agent's role, read from the server itself.
absl::StatusOr<Values> HbaFileAndRole(PgConnection& conn) {
  PGH_ASSIGN_OR_RETURN(Values found, conn.ExecuteOneRow(kHbaFileSql));
  if (found["hba_file"].empty() || found["hba_file"][0] != '/') {
    return absl::InternalError(
        absl::StrCat("the server reports hba_file '", found["hba_file"], "', not a path"));
  }
  return found;
}

// Writes the fence block into the hba file and checks that the server would load the result;
// when it would not, the file is put back as it was. Returns how the block changed: "added",
// "replaced" (the roles changed since an earlier fence) or "unchanged".
absl::StatusOr<std::string> WriteHbaFence(PgConnection& conn, const std::string& hba_file,
                                          const std::string& migration_id) {
  PGH_ASSIGN_OR_RETURN(PgResult roles, conn.Execute(kOtherLoginRolesSql));
  std::vector<std::string> rejected;
  for (int row = 0; row < roles.rows(); ++row) rejected.push_back(roles.Value(row, 0));
  PGH_ASSIGN_OR_RETURN(std::string before, ReadFile(hba_file));
  PGH_ASSIGN_OR_RETURN(std::string fenced, AddHbaFence(before, migration_id, rejected));
  if (fenced == before) return std::string("unchanged");
  const bool had_block = HasHbaFence(before, migration_id);
  PGH_RETURN_IF_ERROR(ReplaceFileKeepingOwner(hba_file, fenced));
  absl::StatusOr<Values> errors = conn.ExecuteOneRow(kHbaErrorsSql);
  if (!errors.ok() || (*errors)["errors"] != "0") {
    absl::Status put_back = ReplaceFileKeepingOwner(hba_file, before);
    if (!put_back.ok()) {
      PGH_LOG_ERROR("could not put {} back after a failed fence: {}", hba_file,
                    put_back.ToString());
    }
    if (!errors.ok()) return errors.status();
    return absl::FailedPreconditionError(absl::StrCat(
        hba_file, " would not load with the fence (", (*errors)["errors"],
        " error(s); line ", (*errors)["first_line"], ": ", (*errors)["first_error"],
        "), so the server would keep accepting connections; the file is as it was. Fix the "
        "file (SELECT * FROM pg_hba_file_rules WHERE error IS NOT NULL) and fence again"));
  }
  return std::string(had_block ? "replaced" : "added");
}

// Ends every other client backend and walsender. A client whose connection the postmaster had
// accepted just before the reload may still be authenticating under the old rules when the
// first pass runs, so passes repeat (bounded) until one finds nobody.
absl::StatusOr<Values> EndOtherSessions(PgConnection& conn) {
  constexpr int kMaxPasses = 5;
  constexpr absl::Duration kBetweenPasses = absl::Milliseconds(25);
  uint64_t terminated = 0, not_terminated = 0;
  for (int pass = 0; pass < kMaxPasses; ++pass) {
    PGH_ASSIGN_OR_RETURN(Values ended, conn.ExecuteOneRow(kTerminateSessionsSql));
    uint64_t now_ended = 0, now_left = 0;
    if (!absl::SimpleAtoi(ended["terminated"], &now_ended) ||
        !absl::SimpleAtoi(ended["not_terminated"], &now_left)) {
      return absl::InternalError("unexpected counts from pg_terminate_backend");
    }
    terminated += now_ended;
    not_terminated += now_left;
    if (now_ended + now_left == 0 && pass > 0) break;
    absl::SleepFor(kBetweenPasses);
  }
  return Values{{"terminated", absl::StrCat(terminated)},
                {"not_terminated", absl::StrCat(not_terminated)}};
}

// The hard fence. In this order:
//  1. default_transaction_read_only = on (ALTER SYSTEM), so a session that slips through still
//     starts read-only;
//  2. the reject block at the top of the hba file (see hba_fence.h), checked with
//     pg_hba_file_rules before the reload;
//  3. reload, and wait until this session has applied it: the postmaster has then re-read both
//     files, so from here on only the agent's own role can log in, and only on the socket;
//  4. end every other client backend and walsender, including those that had turned
//     transaction_read_only off for themselves.
// What remains open: a session of the agent's own role (give the agent a role of its own, not
// one that applications use) can still log in and turn read-only off.
absl::StatusOr<Values> FenceReadOnly(const PostgresConnection& target,
                                     const std::string& migration_id) {
  PGH_ASSIGN_OR_RETURN(PgConnection conn, Connect(target, kLongStatementTimeout));
  PGH_RETURN_IF_ERROR(conn.Execute(kFenceSql).status());
  PGH_ASSIGN_OR_RETURN(Values hba, HbaFileAndRole(conn));
  PGH_ASSIGN_OR_RETURN(std::string block, WriteHbaFence(conn, hba["hba_file"], migration_id));
  absl::Status reloaded = ReloadAndWait(conn, kFenceAppliedSql, /*pass_load_time=*/false);
  if (!reloaded.ok()) {
    return absl::Status(reloaded.code(),
                        absl::StrCat("the fence was written (postgresql.auto.conf and ",
                                     hba["hba_file"], ") but is not in effect: ",
                                     reloaded.message()));
  }
  PGH_ASSIGN_OR_RETURN(Values ended, EndOtherSessions(conn));
  PGH_LOG_INFO(
      "fence of {} in effect: new logins refused in {} except for role {} (block {}), "
      "new transactions read-only; ended {} sessions ({} not confirmed)",
      migration_id, hba["hba_file"], hba["agent_role"], block, ended["terminated"],
      ended["not_terminated"]);
  ended["hba_file"] = hba["hba_file"];
  ended["allowed_role"] = hba["agent_role"];
  ended["hba_block"] = block;
  return ended;
}

// Reads, changing nothing, whether the fence of `migration_id` holds: the read-only default is
// on, the hba file starts with the migration's reject block, and no session of another role is
// there. The cutover asks this right before it promotes the target.
absl::StatusOr<Values> FenceStatus(const PostgresConnection& target,
                                   const std::string& migration_id) {
  PGH_ASSIGN_OR_RETURN(PgConnection conn, Connect(target, kDefaultStatementTimeout));
  PGH_ASSIGN_OR_RETURN(Values setting, conn.ExecuteOneRow(kReadOnlySettingSql));
  PGH_ASSIGN_OR_RETURN(Values hba, HbaFileAndRole(conn));
  PGH_ASSIGN_OR_RETURN(std::string file, ReadFile(hba["hba_file"]));
  PGH_ASSIGN_OR_RETURN(Values sessions, conn.ExecuteOneRow(kFenceSessionsSql));
  const bool read_only = setting["value"] == "on";
  const bool block = HasHbaFence(file, migration_id);
  const bool alone = sessions["other_roles"] == "0";
  return Values{{"read_only", setting["value"]},
                {"hba_block", block ? "true" : "false"},
                {"hba_file", hba["hba_file"]},
                {"other_sessions", sessions["other_roles"]},
                {"agent_role_sessions", sessions["agent_role"]},
                {"fenced", read_only && block && alone ? "true" : "false"}};
}

absl::StatusOr<Values> Unfence(const PostgresConnection& target,
                               const std::string& migration_id) {
  PGH_ASSIGN_OR_RETURN(PgConnection conn, Connect(target, kDefaultStatementTimeout));
  PGH_RETURN_IF_ERROR(conn.Execute(kUnfenceSql).status());
  PGH_ASSIGN_OR_RETURN(Values hba, HbaFileAndRole(conn));
  PGH_ASSIGN_OR_RETURN(std::string before, ReadFile(hba["hba_file"]));
  bool removed = false;
  PGH_ASSIGN_OR_RETURN(std::string after, RemoveHbaFence(before, migration_id, &removed));
  if (removed) PGH_RETURN_IF_ERROR(ReplaceFileKeepingOwner(hba["hba_file"], after));
  PGH_RETURN_IF_ERROR(ReloadAndWait(conn, kUnfenceAppliedSql, /*pass_load_time=*/true));
  PGH_ASSIGN_OR_RETURN(Values setting, conn.ExecuteOneRow(kReadOnlySettingSql));
  if (setting["value"] != "off") {
    // postgresql.conf itself (or a role/database setting) keeps it on: the server was read-only
    // before pghaul fenced it too, so this is not pghaul's to change.
    PGH_LOG_WARN("unfenced, but default_transaction_read_only is still {} from postgresql.conf",
                 setting["value"]);
  }
  PGH_LOG_INFO("fence of {} lifted ({} {})", migration_id, hba["hba_file"],
               removed ? "had its block removed" : "held no block");
  return Values{{"hba_file", hba["hba_file"]}, {"hba_block_removed", removed ? "true" : "false"}};
}

}  // namespace

absl::Status ValidateSqlQueryFields(const v1::SqlQuery& query) {
  switch (query.query()) {
    case v1::SqlQuery::PROMOTE:
    case v1::SqlQuery::WAIT_ARCHIVED:
    case v1::SqlQuery::WAIT_REPLAYED:
      if (query.wait_seconds() > kMaxPromoteWaitSeconds) {
        return absl::InvalidArgumentError(absl::StrCat(
            v1::SqlQuery::Query_Name(query.query()), " wait_seconds must be at most ",
            kMaxPromoteWaitSeconds, ", got ", query.wait_seconds()));
      }
      if (query.query() == v1::SqlQuery::WAIT_ARCHIVED) {
        return ValidateWalFileName(query.walfile());
      }
      if (query.query() == v1::SqlQuery::WAIT_REPLAYED) return ValidateLsn(query.lsn());
      return absl::OkStatus();
    case v1::SqlQuery::SET_WAL_RETRIEVE_RETRY:
      if (query.retry_ms() < kMinWalRetrieveRetryMs ||
          query.retry_ms() > kMaxWalRetrieveRetryMs) {
        return absl::InvalidArgumentError(absl::StrCat(
            "SET_WAL_RETRIEVE_RETRY retry_ms must be ", kMinWalRetrieveRetryMs, " to ",
            kMaxWalRetrieveRetryMs, ", got ", query.retry_ms()));
      }
      return absl::OkStatus();
    case v1::SqlQuery::FENCE_READ_ONLY:
    case v1::SqlQuery::UNFENCE:
    case v1::SqlQuery::FENCE_STATUS:
      return ValidateMigrationId(query.migration_id());
    case v1::SqlQuery::ENSURE_ROLES:
    case v1::SqlQuery::DROP_ROLES:
      return ValidateRolesToEnsure(query);
    default:
      return absl::OkStatus();
  }
}

absl::Status ReloadConfigurationAndWait(PgConnection& conn) {
  return ReloadAndWait(conn, kSessionReloadedSql, /*pass_load_time=*/true);
}

absl::StatusOr<std::map<std::string, std::string>> RunSqlQuery(const PostgresConnection& conn,
                                                               const v1::SqlQuery& query,
                                                               QueryCanceller* canceller) {
  PGH_RETURN_IF_ERROR(ValidateSqlQueryFields(query));
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
      return Promote(conn, query.wait_seconds(), query.without_restore_command());
    case v1::SqlQuery::SET_WAL_RETRIEVE_RETRY:
      return SetWalRetrieveRetry(conn, query.retry_ms());
    case v1::SqlQuery::WAIT_ARCHIVED:
    case v1::SqlQuery::WAIT_REPLAYED: {
      const absl::Duration wait =
          absl::Seconds(query.wait_seconds() == 0 ? kDefaultWaitSeconds : query.wait_seconds());
      if (query.query() == v1::SqlQuery::WAIT_ARCHIVED) {
        return WaitArchived(conn, query.walfile(), wait, canceller);
      }
      return WaitReplayed(conn, query.lsn(), wait, canceller);
    }
    case v1::SqlQuery::CHECKPOINT:
      return Checkpoint(conn);
    case v1::SqlQuery::FENCE_READ_ONLY:
      return FenceReadOnly(conn, query.migration_id());
    case v1::SqlQuery::UNFENCE:
      return Unfence(conn, query.migration_id());
    case v1::SqlQuery::FENCE_STATUS:
      return FenceStatus(conn, query.migration_id());
    case v1::SqlQuery::ENSURE_ROLES:
      return EnsureRoles(conn, query);
    case v1::SqlQuery::DROP_ROLES:
      return DropRoles(conn, query);
    case v1::SqlQuery::TABLE_CHECKSUMS:
      return ComputeTableChecksums(conn);
    case v1::SqlQuery::SCHEMA_CATALOG:
      return ComputeSchemaCatalogue(conn);
    case v1::SqlQuery::ROW_RANGES:
      return ComputeRowRanges(conn, query.range());
    case v1::SqlQuery::ROW_DIGESTS:
      return ComputeRowDigests(conn, query.range());
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
