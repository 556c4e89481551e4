// What a CLI command produced when it ran to its end: text for stdout and, for outcomes that are
// not errors of pghaul or the controller but still not success (a task that failed), a line for
// stderr and an exit status. Errors are absl::Status instead (exit_codes.h maps them).
#pragma once

#include <string>
#include <utility>

#include "cli/exit_codes.h"

namespace pghaul::cli {

struct CommandOutput {
  std::string out;    // for stdout, complete lines
  std::string error;  // one line for stderr, without "pghaul: " and newline; empty: none
  int exit_code = kExitOk;

  // Success with `out` on stdout.
  static CommandOutput Success(std::string out) {
    CommandOutput output;
    output.out = std::move(out);
    return output;
  }
};

}  // namespace pghaul::cli
