// Following a migration until it stops: the loop behind `pghaul watch` and behind every phase
// command (run, backup, restore, verify, cutover, abort) that was not given --detach.
//
// It polls GetMigration every 500 ms, asking only for the events after the last one seen, and
// prints each new event as it arrives ("22:13:20  backup          text", or {"event": ...} per
// line with -o json). While the migration reports progress it draws a bar on the terminal
// (redrawn in place), or, without a terminal, prints a progress line at most every 5 s. It ends
// when the migration is no longer running, scheduled or aborting, and says how it ended.
//
// When the controller stops answering (a restart), it retries for 30 s, saying so, before it
// gives up; the migration goes on without it. Interrupting pghaul ends the following only.
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli/command_output.h"
#include "cli/controller_client.h"
#include "cli/json_output.h"
#include "common/clock.h"
#include "pghaul/v1/migrations.pb.h"

namespace pghaul::cli {

inline constexpr absl::Duration kFollowPollInterval = absl::Milliseconds(500);
// For its first seconds, following polls faster: a short phase (verify of a small database, a
// cutover's last steps) then ends on screen within 100 ms of its end, not up to 500 ms after.
inline constexpr absl::Duration kFollowEagerPollInterval = absl::Milliseconds(100);
inline constexpr absl::Duration kFollowEagerFor = absl::Seconds(10);
// Without a terminal, progress is printed at most this often.
inline constexpr absl::Duration kFollowProgressInterval = absl::Seconds(5);
// How long the controller may stay unreachable while following before pghaul gives up.
inline constexpr absl::Duration kFollowOutageGrace = absl::Seconds(30);
// Events asked for per poll once following; the first poll of `watch` asks for fewer.
inline constexpr uint32_t kFollowMaxEvents = 1000;
// How many of the last events `watch` and `status` show first.
inline constexpr uint32_t kRecentMigrationEvents = 20;

// What following needs from the process around it, injected so that tests step a FakeClock
// (through `sleep`) and fix the time zone.
struct FollowEnvironment {
  const Clock* clock = Clock::Real();
  std::function<void(absl::Duration)> sleep;    // between polls; null: absl::SleepFor
  absl::TimeZone zone = absl::LocalTimeZone();  // event times are shown in it
  std::ostream* out = nullptr;  // events (and, without a terminal, progress) as they arrive
  std::ostream* err = nullptr;  // notes about an unreachable controller; null: none
  // Standard error when it is a terminal: the progress bar or status line is drawn and redrawn
  // there, and erased at the end. Null: no terminal.
  std::ostream* terminal = nullptr;
  int terminal_columns = 80;
};

// What the person is waiting for, which decides the exit status.
enum class FollowGoal {
  kPhases,  // watch and the phase commands: 0 when completed or the goal phase succeeded
  kAbort,   // abort: 0 when aborted
};

struct FollowRequest {
  std::string migration_id;
  uint64_t events_after = 0;                     // print only events with a higher sequence number
  uint32_t first_max_events = kFollowMaxEvents;  // of the first poll (watch: the last 20)
  FollowGoal goal = FollowGoal::kPhases;
  // Whether an unreachable controller at the very first poll is retried like a later outage.
  // `watch` fails at once instead: a wrong --controller should not take 30 s to report.
  bool retry_first_poll = true;
  OutputFormat format = OutputFormat::kTable;
};

// Follows the migration until it stops, writing events to env.out as they arrive, and returns
// what remains to print (a closing line, or the final MigrationInfo as one JSON line) with the
// exit status: see FollowOutcome. Errors: NotFound for an unknown migration; InvalidArgument and
// the like from the controller unchanged; Unavailable/DeadlineExceeded when the controller did
// not answer for kFollowOutageGrace (or at the first poll, without retry_first_poll).
absl::StatusOr<CommandOutput> FollowMigration(ControllerClient& client,
                                              const FollowRequest& request,
                                              const FollowEnvironment& env);

// How a migration that stopped ends a follow, given what the person waited for. kPhases: exit 0
// when it completed or the phase named by `goal` succeeded, or when it was never started (no
// goal); 1 otherwise, with the migration's message as the error line (failed, aborted, or
// stopped short of its goal). kAbort: 0 when aborted, else 1. The text is a closing line for
// people, or the MigrationInfo as one JSON line.
absl::StatusOr<CommandOutput> FollowOutcome(const v1::MigrationInfo& migration, FollowGoal goal,
                                            OutputFormat format);

}  // namespace pghaul::cli
