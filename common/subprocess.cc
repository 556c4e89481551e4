#include "common/subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

// glibc 2.36's <sys/pidfd.h> lacks extern "C" guards.
extern "C" {
#include <sys/pidfd.h>
}

#include <algorithm>
#include <climits>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"

namespace pghaul {
namespace {

// After the direct child exited, how long Wait() keeps reading pipes that a descendant outside
// the process group may still hold open.
constexpr absl::Duration kDrainAfterExit = absl::Seconds(2);
// Without a pidfd, how often Wait() checks whether the child exited.
constexpr absl::Duration kExitPollInterval = absl::Milliseconds(50);
constexpr size_t kReadChunk = 64 * 1024;

std::string ErrnoText(int err) { return absl::StrCat(strerrordesc_np(err), " (errno ", err, ")"); }

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// Moves `fd` to a number >= 3 (keeping O_CLOEXEC), so that dup2 onto 0/1/2 in the child never
// finds source and target equal, which would leave the descriptor close-on-exec.
absl::Status MoveAboveStdio(int& fd) {
  if (fd > 2) return absl::OkStatus();
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (moved < 0) return absl::InternalError(absl::StrCat("fcntl: ", ErrnoText(errno)));
  close(fd);
  fd = moved;
  return absl::OkStatus();
}

// Signals the child's process group. ESRCH (the group is already gone) is not an error.
void SignalGroup(pid_t pgid, int signal) {
  if (kill(-pgid, signal) != 0 && errno != ESRCH) {
    PGH_LOG_WARN("kill(-{}, {}) failed: {}", pgid, signal, ErrnoText(errno));
  }
}

int PollTimeoutMs(absl::Time now, absl::Time wake_at) {
  if (wake_at == absl::InfiniteFuture()) return -1;
  if (wake_at <= now) return 0;
  int64_t ms = absl::ToInt64Milliseconds(absl::Ceil(wake_at - now, absl::Milliseconds(1)));
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

// Splits one stream into lines of at most kMaxLineBytes.
class LineSplitter {
 public:
  using Emit = std::function<void(absl::string_view fragment, bool ends_line)>;

  void Append(absl::string_view data, const Emit& emit) {
    while (!data.empty()) {
      size_t newline = data.find('\n');
      size_t length = newline == absl::string_view::npos ? data.size() : newline;
      size_t room = kMaxLineBytes - buffer_.size();
      if (length > room) {
        buffer_.append(data.data(), room);
        emit(buffer_, /*ends_line=*/false);
        buffer_.clear();
        data.remove_prefix(room);
        continue;
      }
      if (newline == absl::string_view::npos) {
        buffer_.append(data.data(), data.size());
        return;
      }
      if (buffer_.empty()) {
        emit(data.substr(0, newline), /*ends_line=*/true);
      } else {
        buffer_.append(data.data(), newline);
        emit(buffer_, /*ends_line=*/true);
        buffer_.clear();
      }
      data.remove_prefix(newline + 1);
    }
  }

  // At end of stream: delivers a final line that had no '\n'.
  void Flush(const Emit& emit) {
    if (!buffer_.empty()) emit(buffer_, /*ends_line=*/false);
    buffer_.clear();
  }

 private:
  std::string buffer_;
};

}  // namespace

bool SubprocessResult::Succeeded() const {
  return exit_code == 0 && term_signal == 0 && !timed_out && !cancelled;
}

std::string SubprocessResult::Describe() const {
  std::string text;
  if (term_signal != 0) {
    const char* name = sigabbrev_np(term_signal);
    text = absl::StrCat("killed by signal ", term_signal);
    if (name != nullptr) absl::StrAppend(&text, " (SIG", name, ")");
  } else {
    text = absl::StrCat("exited ", exit_code);
  }
  if (timed_out) absl::StrAppend(&text, " after timing out");
  if (cancelled) absl::StrAppend(&text, " after being cancelled");
  return text;
}

Subprocess::Subprocess(SubprocessSpec spec)
    : spec_(std::move(spec)), wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

Subprocess::~Subprocess() {
  if (started_ && !waited_) KillAndReap();
  CloseFd(stdout_fd_);
  CloseFd(stderr_fd_);
  CloseFd(pidfd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

absl::Status Subprocess::Start() {
  if (started_) return absl::FailedPreconditionError("Subprocess::Start called twice");
  if (spec_.argv.empty()) return absl::InvalidArgumentError("cannot run a command: argv is empty");
  const std::string& program = spec_.argv[0];
  if (program.empty() || program[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot run '", program, "': the program must be given as an absolute path"));
  }
  if (wake_fd_ < 0) {
    return absl::InternalError(absl::StrCat("cannot create an eventfd: ", ErrnoText(errno)));
  }

  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  auto close_pipes = [&] {
    for (int* fd : {&out_pipe[0], &out_pipe[1], &err_pipe[0], &err_pipe[1]}) CloseFd(*fd);
  };
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    int err = errno;
    close_pipes();
    return absl::InternalError(absl::StrCat("cannot create pipes: ", ErrnoText(err)));
  }
  for (int* fd : {&out_pipe[1], &err_pipe[1]}) {
    absl::Status moved = MoveAboveStdio(*fd);
    if (!moved.ok()) {
      close_pipes();
      return moved;
    }
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);

  if (!spec_.working_directory.empty()) {
    posix_spawn_file_actions_addchdir_np(&actions, spec_.working_directory.c_str());
  }
  posix_spawn_file_actions_addopen(
      &actions, STDIN_FILENO, spec_.stdin_path.empty() ? "/dev/null" : spec_.stdin_path.c_str(),
      O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  // Descriptors some library opened without O_CLOEXEC (sockets, files) must not leak into the
  // child, where they would keep connections or files open.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);

  // Own process group; no blocked signals; every signal at its default disposition, since an
  // ignored SIGPIPE or SIGTERM would otherwise be inherited across exec.
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  sigset_t all_signals;
  sigfillset(&all_signals);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &empty_mask);
  posix_spawnattr_setsigdefault(&attr, &all_signals);

  std::vector<char*> argv;
  argv.reserve(spec_.argv.size() + 1);
  for (std::string& arg : spec_.argv) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(spec_.env.size() + 1);
  for (std::string& var : spec_.env) envp.push_back(var.data());
  envp.push_back(nullptr);

  pid_t pid = -1;
  // glibc's posix_spawn waits until the child has exec'd, so failures of chdir and exec are
  // reported here, and the child is already in its own group when this returns.
  int rc = posix_spawn(&pid, program.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    close_pipes();
    std::string where;
    if (!spec_.working_directory.empty()) {
      where = absl::StrCat(" in '", spec_.working_directory, "'");
    }
    return absl::FailedPreconditionError(
        absl::StrCat("cannot start '", program, "'", where, ": ", ErrnoText(rc)));
  }

  CloseFd(out_pipe[1]);
  CloseFd(err_pipe[1]);
  stdout_fd_ = out_pipe[0];
  stderr_fd_ = err_pipe[0];
  pid_ = pid;
  started_ = true;
  started_at_ = absl::Now();
  // Optional: without it, Wait() checks for the child's exit on a short timer.
  pidfd_ = pidfd_open(pid, 0);
  return absl::OkStatus();
}

void Subprocess::Cancel() {
  cancel_requested_.store(true);
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    // Cannot fail in a way that matters: a full counter still leaves the eventfd readable.
    ssize_t written = write(wake_fd_, &one, sizeof(one));
    (void)written;
  }
}

void Subprocess::KillAndReap() {
  if (pid_ <= 0) return;
  SignalGroup(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  waited_ = true;
}

absl::StatusOr<SubprocessResult> Subprocess::Wait(const LineCallback& on_line) {
  return WaitForFragments(
      [&on_line](Stream stream, absl::string_view fragment, bool) { on_line(stream, fragment); });
}

absl::StatusOr<SubprocessResult> Subprocess::WaitForFragments(const FragmentCallback& on_fragment) {
  if (!started_) return absl::FailedPreconditionError("Subprocess::Wait called before Start");
  if (waited_) return absl::FailedPreconditionError("Subprocess::Wait called twice");

  SubprocessResult result;
  LineSplitter splitters[2];
  int* pipe_fds[2] = {&stdout_fd_, &stderr_fd_};
  const Stream streams[2] = {Stream::kStdout, Stream::kStderr};

  const absl::Time deadline = spec_.timeout == absl::InfiniteDuration()
                                  ? absl::InfiniteFuture()
                                  : started_at_ + spec_.timeout;
  bool term_sent = false;
  bool kill_sent = false;
  absl::Time kill_at = absl::InfiniteFuture();
  bool child_exited = false;
  absl::Time drain_until = absl::InfiniteFuture();
  std::string buffer(kReadChunk, '\0');

  auto fail = [this](absl::string_view what, int err) {
    KillAndReap();
    return absl::InternalError(absl::StrCat(what, ": ", ErrnoText(err)));
  };

  while (true) {
    if (!child_exited) {
      // Look without reaping: while the child is a zombie its pid still names the group, so
      // the group can be killed without racing a new process that reuses the pid.
      siginfo_t info;
      memset(&info, 0, sizeof(info));
      if (waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT) != 0 && errno != EINTR) {
        return fail("waitid", errno);
      }
      if (info.si_pid == pid_) {
        // Descendants that stayed in the group must not outlive the run.
        SignalGroup(pid_, SIGKILL);
        int status = 0;
        pid_t reaped;
        do {
          reaped = waitpid(pid_, &status, 0);
        } while (reaped < 0 && errno == EINTR);
        if (reaped < 0) return fail("waitpid", errno);
        waited_ = true;
        if (WIFEXITED(status)) {
          result.exit_code = WEXITSTATUS(status);
        } else if (WIFSIGNALED(status)) {
          result.term_signal = WTERMSIG(status);
        }
        child_exited = true;
        drain_until = absl::Now() + kDrainAfterExit;
        CloseFd(pidfd_);
      }
    }

    if (child_exited && stdout_fd_ < 0 && stderr_fd_ < 0) break;
    absl::Time now = absl::Now();
    if (child_exited && now >= drain_until) {
      PGH_LOG_WARN(
          "'{}' exited but a process outside its group still holds its output open; not "
          "reading more output",
          spec_.argv[0]);
      break;
    }

    if (!child_exited) {
      if (!term_sent && (cancel_requested_.load() || now >= deadline)) {
        if (cancel_requested_.load()) {
          result.cancelled = true;
        } else {
          result.timed_out = true;
        }
        SignalGroup(pid_, SIGTERM);
        term_sent = true;
        kill_at = now + spec_.kill_grace;
      }
      if (term_sent && !kill_sent && now >= kill_at) {
        SignalGroup(pid_, SIGKILL);
        kill_sent = true;
      }
    }

    absl::Time wake_at = absl::InfiniteFuture();
    if (child_exited) {
      wake_at = drain_until;
    } else {
      if (!term_sent) wake_at = deadline;
      if (term_sent && !kill_sent) wake_at = kill_at;
      if (pidfd_ < 0) wake_at = std::min(wake_at, now + kExitPollInterval);
    }

    pollfd fds[4];
    int count = 0;
    int stream_slot[2] = {-1, -1};
    for (int i = 0; i < 2; ++i) {
      if (*pipe_fds[i] < 0) continue;
      stream_slot[i] = count;
      fds[count++] = pollfd{*pipe_fds[i], POLLIN, 0};
    }
    int wake_slot = -1;
    if (!child_exited && !term_sent) {
      wake_slot = count;
      fds[count++] = pollfd{wake_fd_, POLLIN, 0};
    }
    // Its readiness needs no handling: the next iteration's waitid sees the exit.
    if (!child_exited && pidfd_ >= 0) fds[count++] = pollfd{pidfd_, POLLIN, 0};

    int ready = poll(fds, count, PollTimeoutMs(now, wake_at));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return fail("poll", errno);
    }
    if (wake_slot >= 0 && (fds[wake_slot].revents & POLLIN)) {
      uint64_t value;
      ssize_t drained = read(wake_fd_, &value, sizeof(value));
      (void)drained;
    }
    for (int i = 0; i < 2; ++i) {
      if (stream_slot[i] < 0 || fds[stream_slot[i]].revents == 0) continue;
      ssize_t n = read(*pipe_fds[i], buffer.data(), buffer.size());
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return fail("read", errno);
      }
      Stream stream = streams[i];
      auto emit = [&](absl::string_view fragment, bool ends_line) {
        on_fragment(stream, fragment, ends_line);
      };
      if (n == 0) {
        splitters[i].Flush(emit);
        CloseFd(*pipe_fds[i]);
      } else {
        splitters[i].Append(absl::string_view(buffer.data(), static_cast<size_t>(n)), emit);
      }
    }
  }

  // Pipes abandoned after the drain period: deliver what was read of a partial line.
  for (int i = 0; i < 2; ++i) {
    if (*pipe_fds[i] < 0) continue;
    Stream stream = streams[i];
    splitters[i].Flush([&](absl::string_view fragment, bool ends_line) {
      on_fragment(stream, fragment, ends_line);
    });
    CloseFd(*pipe_fds[i]);
  }
  return result;
}

absl::StatusOr<CapturedOutput> RunAndCapture(const SubprocessSpec& spec, size_t max_bytes) {
  Subprocess process(spec);
  absl::Status started = process.Start();
  if (!started.ok()) return started;
  CapturedOutput output;
  auto keep = [max_bytes](std::string& text, bool& truncated, absl::string_view piece) {
    size_t room = max_bytes - std::min(max_bytes, text.size());
    if (piece.size() > room) {
      truncated = true;
      piece = piece.substr(0, room);
    }
    text.append(piece.data(), piece.size());
  };
  absl::StatusOr<SubprocessResult> result =
      process.WaitForFragments([&](Stream stream, absl::string_view fragment, bool ends_line) {
        std::string& text = stream == Stream::kStdout ? output.stdout_text : output.stderr_text;
        bool& truncated =
            stream == Stream::kStdout ? output.stdout_truncated : output.stderr_truncated;
        keep(text, truncated, fragment);
        if (ends_line) keep(text, truncated, "\n");
      });
  if (!result.ok()) return result.status();
  output.result = *result;
  return output;
}

}  // namespace pghaul
