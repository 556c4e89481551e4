// Pure formatting of migrations (pghaul.v1.MigrationInfo) for people: the `pghaul migrations`
// table, the `pghaul status` report, event lines as `watch` prints them, the confirmation of
// `plan apply` and the task list of `--dry-run`. No I/O: the caller passes the current time and
// the time zone to show times in (the local one, in the CLI).
//
// Messages, event texts, check values and task descriptions may carry text from the hosts and
// are shown through Printable (agent_table.h): they cannot forge lines or terminal escapes.
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pghaul/v1/migrations.pb.h"

namespace pghaul::cli {

// The phases in order, as the controller names them.
inline constexpr absl::string_view kPhaseNames[] = {
    "preflight", "prepare-source", "backup", "restore", "verify", "cutover", "finish"};

// Widest MESSAGE cell of the phase table, in characters; longer messages end in "...".
inline constexpr size_t kPhaseMessageWidth = 60;
// Widest SOURCE and TARGET cell of the check tables.
inline constexpr size_t kCheckValueWidth = 40;

// Whether a migration in `state` is still doing something: running, scheduled (waiting for
// its --at time or window) or aborting. `watch` follows it as long as this holds.
bool MigrationIsActive(absl::string_view state);

// A time in `zone`: "22:13:20" on the same day as `now` there, else "2023-11-13 22:13:20".
std::string LocalClockTime(absl::Time time, absl::Time now, absl::TimeZone zone);

// The `pghaul migrations` table: MIGRATION, STATE, PHASE, SOURCE -> TARGET, UPDATED (relative
// to `now`), in the controller's order. With no migrations, a one-line hint instead.
std::string FormatMigrationTable(const v1::ListMigrationsResponse& response, absl::Time now);

// The `pghaul status` report: the migration's settings and state, a phase table (PHASE, STATE,
// ATTEMPT, STARTED, DURATION, MESSAGE), the progress of the running task, the preflight checks
// and the verify report when there are any, the events the MigrationInfo carries, and its
// message last.
std::string FormatMigrationStatus(const v1::MigrationInfo& migration, absl::Time now,
                                  absl::TimeZone zone);

// The lag of a standby target as `pghaul status` shows it (a section of its own, also part of
// FormatMigrationStatus when the migration carries a measured lag):
//
//   Replication (the standby target against the source)
//     Source LSN         0/9000100, last archived 000000010000000000000008 at 22:13:19
//     Target replay LSN  0/8000000, last replayed commit from 22:13:10
//     Lag                16.0 MiB, 10.0s        ("caught up (0 B)" when there is none)
//     Measured           2026-11-26 22:13:20 UTC (3s ago)
std::string FormatReplicationLag(const v1::ReplicationLag& lag, absl::Time now,
                                 absl::TimeZone zone);

// One event as `watch` prints it, with newline: "22:13:20  backup          text". The phase is
// padded to the longest phase name so that texts line up; warnings and errors say so first
// ("error: ...").
std::string FormatEventLine(const v1::MigrationEvent& event, absl::TimeZone zone);

// What `plan apply` prints once the controller accepted the plan: "migration m1 planned: source
// a -> target b, stanza s, repository r; next: pghaul run m1", or with `dry_run` "plan valid,
// nothing stored (...)".
std::string FormatPlanApplied(const v1::MigrationInfo& migration, bool dry_run, bool replaced);

// The tasks a `--dry-run` would send, grouped by agent in the order the controller listed them:
//
//   agent legacy-db1 would run:
//     1. [prepare-source] configure-pgbackrest {"migration_id":"m1",...}
//
// Each task as compact JSON (fields holding their default value left out; secrets are already
// cleared by the controller). Internal if a task cannot be converted (a bug).
absl::StatusOr<std::string> FormatPlannedTasks(const v1::StartPhaseResponse& response);

}  // namespace pghaul::cli
