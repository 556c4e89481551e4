// pghaul: the command-line interface to the pghaul-controller. All logic is in app.cc.
#include <sys/ioctl.h>
#include <unistd.h>

#include <iostream>

#include "cli/app.h"
#include "common/clock.h"

namespace {

// The width of the terminal on stderr, or 0 when stderr is not a terminal (progress is drawn
// only on a terminal: a log file or a pipe gets results and errors only).
int StderrTerminalColumns() {
  if (isatty(STDERR_FILENO) != 1) return 0;
  winsize size{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

}  // namespace

int main(int argc, char** argv) {
  pghaul::cli::RunContext context;
  context.clock = pghaul::Clock::Real();
  context.in = &std::cin;
  context.err_terminal_columns = StderrTerminalColumns();
  return pghaul::cli::RunPghaul(argc, argv, std::cout, std::cerr, context);
}
