// Ending a standby's recovery fast, for the cutover's fenced window.
//
//   Promote             pg_promote(false), then pg_is_in_recovery() polled every 10 ms for up
//                       to `wait` (pg_promote(true) itself looks only every 100 ms). With
//                       `without_restore_command`, restore_command is set to '' first (ALTER
//                       SYSTEM, reload, applied): ending recovery then asks the archive for
//                       nothing (no next segment, no timeline history: each ask is a pgBackRest
//                       process, 0.3 to 0.5 s in all here), and the new timeline is the next one
//                       after those in pg_wal. Only when every WAL the standby needs is replayed
//                       (the cutover checked the last LSN). If promotion fails or does not finish
//                       in time, the restore_command is put back. Values: promoted ("true", or
//                       "false" when still in recovery after `wait`), restore_command_cleared.
//   SetWalRetrieveRetry ALTER SYSTEM SET wal_retrieve_retry_interval = '<ms>ms', reload, applied
//                       (the startup process re-reads it too): how soon a standby that lacks the
//                       next segment asks the archive again. Values: before.
// Errors: InvalidArgument (wait over 3600 s; retry outside 10 to 60000 ms); FailedPrecondition
// for PROMOTE on a server not in recovery, and the server's own errors; those of PgConnection.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "agent/agent_config.h"

namespace pghaul::agent {

inline constexpr uint32_t kMaxPromoteWaitSeconds = 3600;
inline constexpr uint32_t kMinWalRetrieveRetryMs = 10;
inline constexpr uint32_t kMaxWalRetrieveRetryMs = 60000;

absl::StatusOr<std::map<std::string, std::string>> Promote(const PostgresConnection& target,
                                                           uint32_t wait_seconds,
                                                           bool without_restore_command);

absl::StatusOr<std::map<std::string, std::string>> SetWalRetrieveRetry(
    const PostgresConnection& target, uint32_t retry_ms);

}  // namespace pghaul::agent
