// The migration commands: `plan apply`, `migrations`, `status`, `watch`, the phase commands
// `run`, `backup`, `restore`, `verify`, `cutover`, and `abort` (docs/cli.md). Each asks the
// controller's Migrations service and returns what to print, or a Status for the one error line.
//
// The phase commands and `abort` return as soon as the controller accepted them with --detach;
// otherwise they follow the migration as `watch` does (migration_follow.h) and their exit status
// says how it ended: 0 when the phases asked for succeeded (abort: when aborted), 1 when the
// migration failed or was aborted.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "cli/command_output.h"
#include "cli/controller_client.h"
#include "cli/json_output.h"
#include "cli/migration_follow.h"

namespace pghaul::cli {

// The values the phase commands accept, for their flags' checks and help.
inline constexpr absl::string_view kBackupTypes[] = {"full", "diff", "incr"};
inline constexpr absl::string_view kRestoreModes[] = {"rehearsal", "standby"};
// Commands that start phases (StartPhaseRequest.command).
inline constexpr absl::string_view kPhaseCommands[] = {"run",     "preflight", "backup",
                                                       "restore", "verify",    "cutover"};

// Plan files and check files are read whole; larger ones are refused.
inline constexpr size_t kMaxPlanFileBytes = 1 << 20;

// OK when `value` is one of `allowed`, else InvalidArgument "--type must be one of full, diff,
// incr; got 'x'" naming `flag` (when not empty: CLI11 names the flag itself).
absl::Status CheckChoice(absl::string_view flag, absl::string_view value,
                         absl::Span<const absl::string_view> allowed);

// OK for a migration id (a plan name: 1 to 63 of a-z 0-9 _ -, starting with a letter or
// digit), else InvalidArgument saying so and how to list the known ones.
absl::Status CheckMigrationId(absl::string_view migration_id);

// Parses --at's "HH:MM" (00:00 to 23:59; "2:00" too) into minutes after midnight.
// InvalidArgument "expected a local time of day as HH:MM, ..." otherwise (CLI11 names the flag).
absl::StatusOr<int> ParseTimeOfDay(absl::string_view text);

// The next time the clock in `zone` shows `time_of_day` ("HH:MM"): today when that is still
// ahead of `now`, else tomorrow. Errors: those of ParseTimeOfDay.
absl::StatusOr<absl::Time> NextOccurrence(absl::string_view time_of_day, absl::Time now,
                                          absl::TimeZone zone);

struct PlanApplication {
  std::string path;  // the plan file
  bool dry_run = false;
  bool replace = false;
};

// Reads the plan file and every file its top-level `checks:` list names (absolute paths; other
// entries are left to the controller to report), sends them to ApplyPlan, and prints a one-line
// confirmation, or the MigrationInfo as JSON. Errors: InvalidArgument naming the path of a plan
// or check file that cannot be read (nothing is sent then); the controller's InvalidArgument,
// whose message lists every problem of the plan, one per line, unchanged; AlreadyExists with a
// hint about --replace; others as the client.
absl::StatusOr<std::string> RunApplyPlan(ControllerClient& client, const PlanApplication& request,
                                         OutputFormat format);

// The migrations table, or a JSON array of MigrationInfo. Errors: those of the client.
absl::StatusOr<std::string> RunListMigrations(ControllerClient& client, OutputFormat format,
                                              absl::Time now);

// One migration's report (migration_table.h) with its last 20 events, or the MigrationInfo as
// JSON. Errors: InvalidArgument for a malformed id; NotFound for an unknown one.
absl::StatusOr<std::string> RunMigrationStatus(ControllerClient& client,
                                               absl::string_view migration_id, OutputFormat format,
                                               absl::Time now, absl::TimeZone zone);

// Prints the last 20 events, then follows the migration until it stops (FollowMigration).
// An unreachable controller at the start fails at once (exit 69); later outages are retried.
absl::StatusOr<CommandOutput> RunWatch(ControllerClient& client, absl::string_view migration_id,
                                       OutputFormat format, const FollowEnvironment& env);

// One of run, backup, restore, verify, cutover, with its flags.
struct PhaseCommand {
  std::string migration_id;
  std::string command;                   // one of kPhaseCommands
  std::string until;                     // run: the last phase, one of kPhaseNames; "": finish
  std::string backup_type;               // backup: one of kBackupTypes; "": the plan's
  std::string restore_mode;              // run, restore: one of kRestoreModes; "": rehearsal
  std::string set;                       // restore: a backup label; "": the latest
  std::optional<absl::Time> not_before;  // backup --at
  // cutover --max-downtime ("30s", "1m30s"): the downtime budget instead of the plan's; "": the
  // plan's cutover.max_downtime.
  std::string max_downtime;
  bool dry_run = false;
  bool detach = false;
};

// Sends StartPhase. Unless dry_run or detach, first notes the newest event, so that following
// prints every event from the request on. With dry_run, prints the tasks each agent would run (or
// the response as JSON) and starts nothing. With detach, says what started (or the response as
// JSON). Otherwise follows the migration until it stops, exit status as FollowOutcome says. Errors:
// InvalidArgument for a malformed id or flag value (checked before anything is sent); the
// controller's NotFound (reworded) and FailedPrecondition (busy, aborted, an earlier phase
// missing) with its message; those of FollowMigration.
absl::StatusOr<CommandOutput> RunPhaseCommand(ControllerClient& client, const PhaseCommand& command,
                                              OutputFormat format, const FollowEnvironment& env);

// Sends AbortMigration and, unless `detach`, follows the migration until it stops: exit 0 when
// it ended aborted, 1 otherwise. Errors: as RunPhaseCommand; FailedPrecondition once cutover
// promoted the target.
absl::StatusOr<CommandOutput> RunAbortMigration(ControllerClient& client,
                                                absl::string_view migration_id, bool detach,
                                                OutputFormat format, const FollowEnvironment& env);

}  // namespace pghaul::cli
