// Exit codes of the `pghaul` CLI, from <sysexits.h>, so that scripts can tell "fix your input"
// from "try again later" from "report a bug".
//
//   0  EX_OK           success
//   1                  a task ran and ended badly (failed, cancelled or refused by its agent):
//                      `pghaul task submit --wait` only; the error line carries its message
//   64 EX_USAGE        bad flag, unknown command, missing argument
//   65 EX_DATAERR      the controller rejected the input: unknown id, invalid argument, a request
//                      the current state does not allow
//   69 EX_UNAVAILABLE  the controller could not be reached, or did not answer in time
//   70 EX_SOFTWARE     an internal error, here or in the controller: a bug, please report it
//   75 EX_TEMPFAIL     the controller was busy or the request was aborted: retrying may work
//   76 EX_PROTOCOL     the controller does not speak this CLI's protocol (version mismatch)
//   77 EX_NOPERM       the controller refused the caller
#pragma once

#include "absl/status/status.h"

namespace pghaul::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitTaskFailed = 1;  // not from <sysexits.h>: a result, not an error
inline constexpr int kExitUsage = 64;
inline constexpr int kExitDataError = 65;
inline constexpr int kExitUnavailable = 69;
inline constexpr int kExitSoftware = 70;
inline constexpr int kExitTempFail = 75;
inline constexpr int kExitProtocol = 76;
inline constexpr int kExitNoPermission = 77;

// The exit code for the outcome of a command. Every absl::StatusCode maps to one of the codes
// above; kOk maps to 0.
int ExitCodeForStatus(const absl::Status& status);

}  // namespace pghaul::cli
