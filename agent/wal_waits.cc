#include "agent/wal_waits.h"

#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/pg_connection.h"
#include "common/status_macros.h"
#include "common/validators.h"

namespace pghaul::agent {
namespace {

using Values = std::map<std::string, std::string>;

constexpr absl::Duration kPollInterval = absl::Milliseconds(10);
constexpr absl::Duration kStatementTimeout = absl::Seconds(30);

// Segment names of one timeline sort in WAL order, and a later timeline's sort after; equal
// length keeps ".partial" and history files out.
constexpr char kArchivedSql[] =
    "SELECT archived_count::text AS archived_count, coalesce(last_archived_wal, '') AS "
    "last_archived_wal, last_archived_time::text AS last_archived_time,"
    " failed_count::text AS failed_count, last_failed_wal,"
    " last_failed_time::text AS last_failed_time, stats_reset::text AS stats_reset,"
    " (length(coalesce(last_archived_wal, '')) = length($1::text)"
    "  AND last_archived_wal COLLATE \"C\" >= $1::text)::text AS reached"
    " FROM pg_stat_archiver";
constexpr char kReplayedSql[] =
    "SELECT pg_last_wal_replay_lsn()::text AS lsn,"
    " pg_last_xact_replay_timestamp()::text AS replay_timestamp,"
    " pg_is_in_recovery()::text AS in_recovery,"
    " coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)::text AS reached";

// Runs `sql` with `param` until its row says reached = "true" or `max_wait` passes.
absl::StatusOr<Values> PollUntilReached(const PostgresConnection& target, const char* sql,
                                        const std::string& param, absl::Duration max_wait,
                                        QueryCanceller* canceller) {
  PgSessionOptions options;
  options.statement_timeout = kStatementTimeout;
  PGH_ASSIGN_OR_RETURN(PgConnection conn, PgConnection::Open(target, options));
  ScopedCancelAttachment attached(canceller, conn.raw());
  const absl::Time deadline = absl::Now() + max_wait;
  const std::vector<std::optional<std::string>> params = {param};
  while (true) {
    if (canceller != nullptr && canceller->cancelled()) {
      return absl::CancelledError("the wait was cancelled");
    }
    PGH_ASSIGN_OR_RETURN(Values row, conn.ExecuteOneRow(sql, params));
    if (row["reached"] == "true" || absl::Now() >= deadline) return row;
    absl::SleepFor(kPollInterval);
  }
}

}  // namespace

absl::StatusOr<Values> WaitArchived(const PostgresConnection& target, const std::string& walfile,
                                    absl::Duration max_wait, QueryCanceller* canceller) {
  PGH_RETURN_IF_ERROR(ValidateWalFileName(walfile));
  return PollUntilReached(target, kArchivedSql, walfile, max_wait, canceller);
}

absl::StatusOr<Values> WaitReplayed(const PostgresConnection& target, const std::string& lsn,
                                    absl::Duration max_wait, QueryCanceller* canceller) {
  PGH_RETURN_IF_ERROR(ValidateLsn(lsn));
  return PollUntilReached(target, kReplayedSql, lsn, max_wait, canceller);
}

}  // namespace pghaul::agent
