#include "agent/promotion.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/pg_connection.h"
#include "agent/server_settings.h"
#include "agent/sql_catalogue.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace pghaul::agent {
namespace {

using Values = std::map<std::string, std::string>;

constexpr uint32_t kDefaultPromoteWaitSeconds = 60;
constexpr absl::Duration kStatementTimeout = absl::Seconds(60);
constexpr absl::Duration kPromotePollInterval = absl::Milliseconds(10);

constexpr char kInRecoverySql[] = "SELECT pg_is_in_recovery()::text AS in_recovery";
constexpr char kRestoreCommandSql[] = "SELECT current_setting('restore_command') AS value";
constexpr char kClearRestoreCommandSql[] = "ALTER SYSTEM SET restore_command = ''";
constexpr char kPromoteNoWaitSql[] = "SELECT pg_promote(false)::text AS signalled";
constexpr char kRetryIntervalSql[] =
    "SELECT current_setting('wal_retrieve_retry_interval') AS value";

absl::StatusOr<PgConnection> Connect(const PostgresConnection& target) {
  PgSessionOptions options;
  options.statement_timeout = kStatementTimeout;
  return PgConnection::Open(target, options);
}

// Signals the promotion and polls until the server has left recovery or `wait` passed.
absl::StatusOr<bool> PromoteAndWait(PgConnection& conn, absl::Duration wait) {
  PGH_ASSIGN_OR_RETURN(Values signalled, conn.ExecuteOneRow(kPromoteNoWaitSql));
  if (signalled["signalled"] != "true") {
    return absl::InternalError("pg_promote() could not signal the postmaster");
  }
  const absl::Time deadline = absl::Now() + wait;
  while (true) {
    PGH_ASSIGN_OR_RETURN(Values recovery, conn.ExecuteOneRow(kInRecoverySql));
    if (recovery["in_recovery"] == "false") return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(kPromotePollInterval);
  }
}

}  // namespace

absl::StatusOr<Values> Promote(const PostgresConnection& target, uint32_t wait_seconds,
                               bool without_restore_command) {
  if (wait_seconds > kMaxPromoteWaitSeconds) {
    return absl::InvalidArgumentError(absl::StrCat("PROMOTE wait_seconds must be at most ",
                                                   kMaxPromoteWaitSeconds, ", got ", wait_seconds));
  }
  if (wait_seconds == 0) wait_seconds = kDefaultPromoteWaitSeconds;
  PGH_ASSIGN_OR_RETURN(PgConnection conn, Connect(target));
  // pg_promote() would fail too (55000 "recovery is not in progress"), but say it plainly.
  PGH_ASSIGN_OR_RETURN(Values recovery, conn.ExecuteOneRow(kInRecoverySql));
  if (recovery["in_recovery"] != "true") {
    return absl::FailedPreconditionError(
        "PROMOTE refused: the server is not in recovery (it is already a primary), so there is "
        "nothing to promote");
  }
  std::optional<std::string> cleared;  // the restore_command before, once cleared
  if (without_restore_command) {
    PGH_ASSIGN_OR_RETURN(Values restore, conn.ExecuteOneRow(kRestoreCommandSql));
    if (!restore["value"].empty()) {
      PGH_RETURN_IF_ERROR(conn.Execute(kClearRestoreCommandSql).status());
      cleared = restore["value"];
      PGH_RETURN_IF_ERROR(ReloadConfigurationAndWait(conn));
    }
  }
  absl::StatusOr<bool> promoted = PromoteAndWait(conn, absl::Seconds(wait_seconds));
  if (cleared.has_value() && !(promoted.ok() && *promoted)) {
    // Still a standby: it must be able to follow the archive again.
    absl::Status put_back = AlterSystemSet(conn, "restore_command", *cleared);
    if (put_back.ok()) put_back = ReloadConfigurationAndWait(conn);
    if (!put_back.ok()) {
      PGH_LOG_ERROR("promotion did not finish and restore_command could not be put back ({}): "
                    "set it again in postgresql.auto.conf before the standby needs the archive",
                    put_back.ToString());
    }
  }
  if (!promoted.ok()) return promoted.status();
  if (!*promoted) {
    PGH_LOG_WARN("the server was still in recovery {} s after pg_promote(); promotion may still "
                 "complete", wait_seconds);
  }
  return Values{{"promoted", *promoted ? "true" : "false"},
                {"restore_command_cleared", cleared.has_value() && *promoted ? "true" : "false"}};
}

absl::StatusOr<Values> SetWalRetrieveRetry(const PostgresConnection& target, uint32_t retry_ms) {
  if (retry_ms < kMinWalRetrieveRetryMs || retry_ms > kMaxWalRetrieveRetryMs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SET_WAL_RETRIEVE_RETRY retry_ms must be ", kMinWalRetrieveRetryMs, " to ", kMaxWalRetrieveRetryMs, ", got ",
        retry_ms));
  }
  PGH_ASSIGN_OR_RETURN(PgConnection conn, Connect(target));
  PGH_ASSIGN_OR_RETURN(Values before, conn.ExecuteOneRow(kRetryIntervalSql));
  PGH_RETURN_IF_ERROR(
      AlterSystemSet(conn, "wal_retrieve_retry_interval", absl::StrCat(retry_ms, "ms")));
  PGH_RETURN_IF_ERROR(ReloadConfigurationAndWait(conn));
  return Values{{"before", before["value"]}};
}

}  // namespace pghaul::agent
