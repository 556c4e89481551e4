// Waits for a WAL position on this host's server, polled locally on one session every 10 ms,
// for the cutover's fenced window: a wait here ends within about 10 ms of the event, where one
// controller round trip per look would cost a task each time.
//
//   WaitArchived  until pg_stat_archiver.last_archived_wal has reached `walfile` (the source:
//                 the last segment is in the repository). Values: every STAT_ARCHIVER column.
//   WaitReplayed  until pg_last_wal_replay_lsn() >= `lsn` (a standby: it has replayed the
//                 source's last WAL). Values: lsn, replay_timestamp, in_recovery.
// Both add reached = "true", or "false" when `max_wait` passed first: running out of time is an
// answer (the caller decides what it means), not an error.
// Errors: InvalidArgument for a malformed walfile or lsn (nothing ran); Cancelled when
// `canceller` was cancelled; those of PgConnection (the server went away).
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/agent_config.h"
#include "agent/query_canceller.h"

namespace pghaul::agent {

absl::StatusOr<std::map<std::string, std::string>> WaitArchived(const PostgresConnection& target,
                                                                const std::string& walfile,
                                                                absl::Duration max_wait,
                                                                QueryCanceller* canceller);

absl::StatusOr<std::map<std::string, std::string>> WaitReplayed(const PostgresConnection& target,
                                                                const std::string& lsn,
                                                                absl::Duration max_wait,
                                                                QueryCanceller* canceller);

}  // namespace pghaul::agent
