// Processes of `pghaul demo`: what common/subprocess.h cannot do for it, and Ctrl-C.
//
// Short commands (initdb, pg_ctl, psql, pgbench, `pghaul status`) run through pghaul::Subprocess
// (RunCapturedCommand below). Two kinds of children need what Subprocess does not offer:
// - the daemons (controller, agents) write to a log file and must outlive the demo with --keep,
//   so they are spawned into their own session with stdout and stderr on the file (SpawnDaemon);
// - `pghaul run demo` draws its progress bar on our terminal, so it inherits our stdout and
//   stderr (SpawnForeground) instead of writing into a pipe.
// Both are still spawned without a shell, with an explicit argv and environment.
//
// Ctrl-C: DemoInterrupts turns SIGINT, SIGTERM and SIGHUP into a flag that every wait of the
// demo checks, and cancels the Subprocess running at that moment, so the demo can clean up.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/subprocess.h"

namespace pghaul::cli {

inline constexpr char kSetprivBinary[] = "/usr/bin/setpriv";

// `argv` as run by OS user `run_as` ("": the current user) through setpriv, which execs (so the
// PID stays the program's own, unlike runuser). With `die_with_parent`, the program gets SIGKILL
// when the demo dies, even as the current user.
std::vector<std::string> WrapForUser(const std::vector<std::string>& argv,
                                     const std::string& run_as, bool die_with_parent);

// A minimal environment for the demo's PostgreSQL tools and daemons: PATH, HOME, USER and
// LOGNAME of `run_as` (the current user when empty), LANG=C.UTF-8, and TZ when we have one.
// Errors: NotFound for an unknown user.
absl::StatusOr<std::vector<std::string>> DemoEnvironment(const std::string& run_as);

// This process's own environment, for the `pghaul` children.
std::vector<std::string> InheritedEnvironment();

// Turns SIGINT, SIGTERM and SIGHUP into a flag while it lives (one instance at a time), ignores
// SIGPIPE, and restores the previous handlers when destroyed.
class DemoInterrupts {
 public:
  // Errors: FailedPrecondition when another instance lives; Internal when the handlers or the
  // watcher thread cannot be set up.
  static absl::StatusOr<std::unique_ptr<DemoInterrupts>> Install();
  ~DemoInterrupts();
  DemoInterrupts(const DemoInterrupts&) = delete;
  DemoInterrupts& operator=(const DemoInterrupts&) = delete;

  bool interrupted() const;
  // The signal that interrupted the demo, 0 if none.
  int signal_number() const;
  // Waits `duration`, or less when a signal arrives. Returns false when interrupted.
  bool Sleep(absl::Duration duration);

  // While a scope lives, a signal cancels `process` (at once if one arrived already).
  class CancelScope {
   public:
    CancelScope(DemoInterrupts& interrupts, Subprocess& process);
    ~CancelScope();
    CancelScope(const CancelScope&) = delete;
    CancelScope& operator=(const CancelScope&) = delete;

   private:
    DemoInterrupts& interrupts_;
  };

 private:
  DemoInterrupts() = default;
  // The watcher thread: reads signal numbers from the self-pipe, records the first, cancels the
  // registered Subprocess; returns when it reads the zero byte the destructor writes.
  void WatchSignals();

  int read_fd_ = -1;  // the self-pipe's read end
  mutable absl::Mutex mutex_;
  int signal_number_ ABSL_GUARDED_BY(mutex_) = 0;
  Subprocess* cancel_on_signal_ ABSL_GUARDED_BY(mutex_) = nullptr;
  std::thread watcher_;
};

// The output of a short command run to its end.
struct CommandRun {
  SubprocessResult result;
  std::string stdout_text;  // at most 1 MiB of each
  std::string stderr_text;
  std::string Describe() const;  // result and the last lines of stderr (or stdout)
};

// Runs `spec` to completion, keeping its output; a signal cancels it (see DemoInterrupts). When
// `log_path` is not empty, every line is also appended to that file. A non-zero exit is not an
// error here. Errors: those of Subprocess::Start and Wait; Cancelled when interrupted.
absl::StatusOr<CommandRun> RunCapturedCommand(const SubprocessSpec& spec,
                                              DemoInterrupts& interrupts,
                                              const std::string& log_path = "");

// Starts a daemon in a new session (its PID is its process group and session id), stdin from
// /dev/null, stdout and stderr appended to `log_path`. Errors: Internal naming the program.
absl::StatusOr<pid_t> SpawnDaemon(const std::vector<std::string>& argv,
                                  const std::vector<std::string>& env, const std::string& log_path);

// Starts a command in its own process group with our stdout and stderr (and /dev/null as stdin).
// Errors: Internal naming the program.
absl::StatusOr<pid_t> SpawnForeground(const std::vector<std::string>& argv,
                                      const std::vector<std::string>& env);

// Whether our child `pid` has exited; reaps it and stores its wait status if so.
bool ChildExited(pid_t pid, int* wait_status);

// Waits for our child `pid` to exit and returns its exit code (128 + signal when a signal ended
// it). A signal to the demo ends the child's group (SIGTERM, SIGKILL after 5 s) and returns
// Cancelled.
absl::StatusOr<int> WaitForChild(pid_t pid, DemoInterrupts& interrupts);

// Ends the process group of our child `pid`: SIGTERM, then SIGKILL after `grace`; reaps it.
void StopChild(pid_t pid, absl::Duration grace);

// The last `lines` lines of the file at `path`, "" when it cannot be read.
std::string TailOfFile(const std::string& path, int lines);

}  // namespace pghaul::cli
