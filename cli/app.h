// The `pghaul` command line: flags, the command tree, and turning each command's outcome into
// output and an exit status. main.cc only forwards to RunPghaul, so all of this is unit-tested.
//
//   pghaul [global options] agents                         list the agents
//   pghaul [global options] agents show ID [--tasks]       every fact of one agent
//   pghaul [global options] task list [--agent ID]         recent tasks
//   pghaul [global options] task show TASK_ID              one task and its last events
//   pghaul [global options] task cancel TASK_ID
//   pghaul [global options] task submit AGENT (--file F | --json T) [--wait] [--id TASK_ID]
//
//   pghaul certs init|issue ...                            a small CA (commands_certs.h)
//
// Global options (accepted before or after the command): --controller ADDR (env
// PGHAUL_CONTROLLER), -o/--output table|json, --timeout DURATION, --version, --help, and the
// link: --tls-ca FILE, --tls-cert FILE, --tls-key FILE, --tls-server-name NAME (env
// PGHAUL_TLS_CA, _CERT, _KEY, _SERVER_NAME) for mutual TLS, or --insecure (PGHAUL_INSECURE) for
// plaintext; one of the two is required by every command that calls the controller.
#pragma once

#include <functional>
#include <istream>
#include <ostream>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace pghaul::cli {

// What an invocation needs from the process around it. main() passes the real ones; tests pass
// a FakeClock and a `sleep` that advances it, so that waiting is tested without sleeping.
struct RunContext {
  const Clock* clock = Clock::Real();         // "now" for relative times, and wait deadlines
  std::function<void(absl::Duration)> sleep;  // between polls; null: absl::SleepFor
  std::istream* in = nullptr;                 // for `--file -`; null: none
  int err_terminal_columns = 0;  // > 0: `err` is a terminal this wide, to draw progress on
};

// Runs one invocation of the CLI. Results go to `out`, errors to `err` as one line starting
// "pghaul: ". Returns the process exit status: 0, 1 for a task that ended badly (task submit
// --wait), or a sysexits code (exit_codes.h); 64 for a bad flag or command. Never throws.
int RunPghaul(int argc, const char* const* argv, std::ostream& out, std::ostream& err,
              const RunContext& context);

// The same with `clock` and otherwise RunContext's defaults (no standard input, no terminal).
int RunPghaul(int argc, const char* const* argv, std::ostream& out, std::ostream& err,
              const Clock& clock);

// Parses a --timeout value: an Abseil duration ("10s", "1m30s", "500ms") or a bare number of
// seconds ("10", "2.5"). InvalidArgument unless it is a positive, finite duration.
absl::StatusOr<absl::Duration> ParseTimeout(absl::string_view text);

}  // namespace pghaul::cli
