// Runs one child process without a shell: explicit argv, explicit environment, its own process
// group, output streamed line by line, and a timeout or Cancel() that ends the whole group.
//
// Lifecycle of a Subprocess:
//
//   constructed ──Start()──> running ──Wait()──> finished (result returned)
//        │                      │
//        │                      └─ Cancel() / timeout: SIGTERM to the group, SIGKILL after
//        │                         `kill_grace`; Wait() still returns the result
//        └─ Cancel() before Start(): Wait() kills the group as soon as it runs
//
// Why each choice:
// - posix_spawn, not fork+exec: safe in a multi-threaded process (gRPC), and no shell means no
//   quoting bugs and no injection. argv[0] must be absolute: no PATH search.
// - The child gets exactly `env`, nothing inherited, so secrets reach only the processes meant to
//   see them and a daemon's environment does not leak into pgBackRest.
// - Own process group (pgid == pid): signals reach every descendant (pgBackRest's local workers,
//   a shell's children) and never the caller. When the direct child exits, the group is killed
//   too, so no descendant that stayed in the group outlives the run. A descendant that moved to
//   its own session (e.g. a daemonizing postmaster) is left alone; if it keeps the output pipes
//   open, Wait() stops reading two seconds after the direct child exited.
// - stdin is /dev/null (or a file the caller names), so a child never blocks reading a terminal.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pghaul {

enum class Stream { kStdout, kStderr };

// Lines longer than this are delivered in pieces of at most this many bytes.
inline constexpr size_t kMaxLineBytes = 64 * 1024;

struct SubprocessSpec {
  std::vector<std::string> argv;                      // argv[0] is an absolute path
  std::vector<std::string> env;                       // the child's whole environment, "K=V"
  std::string working_directory;                      // empty: inherit the caller's
  // A file opened read-only as the child's stdin (by the caller's user, before exec); empty:
  // /dev/null. A file that cannot be opened fails Start() (FailedPrecondition).
  std::string stdin_path;
  absl::Duration timeout = absl::InfiniteDuration();  // counted from Start()
  absl::Duration kill_grace = absl::Seconds(10);      // between SIGTERM and SIGKILL
};

struct SubprocessResult {
  int exit_code = -1;      // set when the child exited; -1 when a signal ended it
  int term_signal = 0;     // set when a signal ended the child
  bool timed_out = false;  // the timeout expired and pghaul signalled the group
  bool cancelled = false;  // Cancel() was called and pghaul signalled the group

  // Exited 0, on its own (not timed out, not cancelled).
  bool Succeeded() const;
  // For people: "exited 3", "killed by signal 9 (SIGKILL)", "killed by signal 15 (SIGTERM)
  // after timing out", "exited 0 after being cancelled".
  std::string Describe() const;
};

// Convenience: runs `spec` to completion and keeps its output. Each stream keeps at most
// `max_bytes` (the excess is dropped, and `*_truncated` says so). The result says how the child
// ended; a non-zero exit is not an error here. Errors: those of Start() and Wait().
struct CapturedOutput {
  SubprocessResult result;
  std::string stdout_text;
  std::string stderr_text;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
};
absl::StatusOr<CapturedOutput> RunAndCapture(const SubprocessSpec& spec,
                                             size_t max_bytes = 1 << 20);

// One run of one child process. Start() then Wait(), not concurrently; Cancel() may be
// called from any thread at any time, including before Start() and after Wait() returned.
class Subprocess {
 public:
  // `line` excludes the '\n'. Bytes are passed through untouched (not necessarily UTF-8).
  using LineCallback = std::function<void(Stream stream, absl::string_view line)>;

  explicit Subprocess(SubprocessSpec spec);
  // If the child is still running (Wait() never called), kills its group and reaps it.
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // Spawns the child. Errors: InvalidArgument for an empty argv or a relative argv[0];
  // FailedPrecondition for a second Start(), and when posix_spawn fails (e.g. the binary does not
  // exist or the working directory cannot be entered), with the errno text; Internal for pipe
  // errors.
  absl::Status Start();

  // Reads the child's output until it has exited, calling `on_line` in this thread for every
  // line, then reaps it. Errors: FailedPrecondition if Start() did not succeed or Wait() was
  // already called; Internal if poll/waitpid fail (the group is killed first).
  absl::StatusOr<SubprocessResult> Wait(const LineCallback& on_line);

  // Asks Wait() to end the child's whole process group: SIGTERM, then SIGKILL after kill_grace.
  void Cancel();

  // The child's pid (and process group id), or -1 before a successful Start().
  pid_t pid() const { return pid_; }

 private:
  // A piece of output: `ends_line` is false for a piece cut at kMaxLineBytes or a final line
  // without '\n'. RunAndCapture uses it to rebuild the exact bytes.
  using FragmentCallback =
      std::function<void(Stream stream, absl::string_view fragment, bool ends_line)>;
  friend absl::StatusOr<CapturedOutput> RunAndCapture(const SubprocessSpec& spec, size_t max_bytes);
  absl::StatusOr<SubprocessResult> WaitForFragments(const FragmentCallback& on_fragment);

  // Kills the group with SIGKILL (ignoring ESRCH) and reaps the child; used on error paths.
  void KillAndReap();

  SubprocessSpec spec_;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  int pidfd_ = -1;     // readable when the child exits; -1 if pidfd_open is unavailable
  const int wake_fd_;  // eventfd written by Cancel() to wake Wait()'s poll; -1 if none
  absl::Time started_at_;
  bool started_ = false;
  bool waited_ = false;
  std::atomic<bool> cancel_requested_{false};
};

}  // namespace pghaul
