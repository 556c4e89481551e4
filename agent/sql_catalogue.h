// The agent's fixed catalogue of SQL operations (SqlQuery in tasks.proto), run through libpq on
// the local socket. Every SQL text is a constant in sql_catalogue.cc; the only values that vary
// (PROMOTE's wait, the LSN or WAL file waited for) travel as parameters; promotion.h and
// server_settings.h quote the two ALTER SYSTEM values that cannot be parameters. Each query opens its own short session (see
// PgConnection: application_name=pghaul-agent, connect timeout 5 s, TimeZone=UTC).
//
// Results, keyed by name (NULL is ""):
//   SWITCH_WAL       lsn, walfile. `lsn` is what pg_switch_wal() returned: the end of the
//                    switch record, inside the segment just completed, or, when nothing had been
//                    written since the previous switch, the start of the current (empty) segment.
//                    `walfile` is pg_walfile_name(lsn) of that same value. pg_walfile_name maps an
//                    LSN on a segment boundary to the segment *before* it, so in both cases
//                    `walfile` names the last segment holding WAL below `lsn`: once `walfile` is
//                    archived, every byte of WAL written before the switch is archived. (Asking
//                    for pg_walfile_name(pg_current_wal_lsn()) instead would race with new WAL.)
//   CURRENT_WAL_LSN  lsn (pg_current_wal_lsn: written), insert_lsn (pg_current_wal_insert_lsn)
//   LAST_REPLAY_LSN  lsn (pg_last_wal_replay_lsn; "" on a server that never replayed),
//                    replay_timestamp (pg_last_xact_replay_timestamp, ISO in UTC; "" if none),
//                    in_recovery ("true"/"false")
//   STAT_ARCHIVER    every column of pg_stat_archiver: archived_count, last_archived_wal,
//                    last_archived_time, failed_count, last_failed_wal, last_failed_time,
//                    stats_reset (times ISO in UTC)
//   PROMOTE          see promotion.h: promoted ("true"; "false" when promotion did not finish
//                    within wait_seconds, 0 -> 60, at most 3600), restore_command_cleared
//                    (without_restore_command). Refused (FailedPrecondition) on a server that is
//                    not in recovery.
//   SET_WAL_RETRIEVE_RETRY  see promotion.h: before.
//   WAIT_ARCHIVED, WAIT_REPLAYED  see wal_waits.h (wait_seconds 0 -> 60, at most 3600; the
//                    task executor passes a QueryCanceller).
//   CHECKPOINT       {}
//   FENCE_READ_ONLY  The hard fence of migration_id (required): read-only default, a reject
//                    block at the top of the server's hba file letting only this session's role
//                    log in, and only on the Unix socket (hba_fence.h), reload, then every other
//                    client backend and walsender ended. Values: terminated (sessions ended),
//                    not_terminated (still there 5 s after the signal, or gone before it),
//                    hba_file, allowed_role, hba_block ("added", "replaced" when the login
//                    roles changed since an earlier fence, "unchanged"). Fencing twice leaves one
//                    block. Not fenced against: a client logging in as the agent's own role.
//   UNFENCE          Removes exactly migration_id's block (none: fine) and the read-only
//                    default, reloads. Values: hba_file, hba_block_removed ("true"/"false").
//   TABLE_CHECKSUMS  see table_checksums.h (ComputeTableChecksums, run without cancellation here;
//                    the task executor runs it with a QueryCanceller).
//   SCHEMA_CATALOG   see schema_catalogue.h; ROW_RANGES, ROW_DIGESTS see row_ranges.h.
//   ENABLE_ARCHIVING, RESTORE_ARCHIVING need the migration's pgBackRest setup and the agent's
//                    state directory: see archiving.h. RunSqlQuery refuses them.
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "agent/agent_config.h"
#include "agent/pg_connection.h"
#include "agent/query_canceller.h"
#include "pghaul/v1/tasks.pb.h"

namespace pghaul::agent {

// Runs one query of the fixed catalogue and returns its values as strings keyed by name.
// Errors:
//   InvalidArgument     QUERY_UNSPECIFIED or an unknown query; PROMOTE wait_seconds > 3600;
//                       ENABLE_ARCHIVING and RESTORE_ARCHIVING (see archiving.h); FENCE_READ_ONLY
//                       or UNFENCE without a valid migration_id; a login role pg_hba.conf cannot
//                       name (a double quote or control character in it).
//   FailedPrecondition  (also) the hba file with the fence would not load (pg_hba_file_rules
//                       reports an error): the file is put back and nothing is reloaded.
//   DataLoss            UNFENCE or a second FENCE finds the block's BEGIN marker without its END.
//   NotFound, PermissionDenied  the hba file cannot be read or replaced by the agent's OS user.
//   Unavailable         cannot connect (libpq's message, one line), or the connection broke.
//   FailedPrecondition  the server refused the statement, with "ERROR <SQLSTATE>: message" and
//                       the SQLSTATE as payload (SqlStateOf in pg_connection.h), e.g. a WAL
//                       function on a standby (55000); PROMOTE on a primary; a fence that the
//                       reloaded configuration did not apply.
//   DeadlineExceeded    statement_timeout (60 s; PROMOTE wait + 60 s; CHECKPOINT and
//                       FENCE_READ_ONLY 15 min) or a configuration reload not seen within 10 s.
//   Internal            class XX errors, or a result of an unexpected shape.
// `canceller` (may be null) ends the WAIT_* queries early.
absl::StatusOr<std::map<std::string, std::string>> RunSqlQuery(const PostgresConnection& conn,
                                                               const v1::SqlQuery& query,
                                                               QueryCanceller* canceller = nullptr);

// The checks of a query's own fields that need no server (WAL file name, LSN, wait, retry
// interval, migration id): the task executor runs them when the task arrives, so a malformed
// task is REFUSED with nothing run. RunSqlQuery runs them too. Errors: InvalidArgument.
absl::Status ValidateSqlQueryFields(const v1::SqlQuery& query);

// Asks the postmaster to reload its configuration files and waits (up to 10 s) until `conn`'s
// own session has re-read them (its pg_conf_load_time() moved past the one from before), so what
// `conn` reads next (current_setting, pg_settings) is the reloaded configuration. A setting that
// needs a restart keeps its running value and is then marked pending_restart.
// Errors: those of PgConnection::Execute; Internal when the postmaster could not be signalled;
// DeadlineExceeded when the session did not reload within 10 s.
absl::Status ReloadConfigurationAndWait(PgConnection& conn);

}  // namespace pghaul::agent
