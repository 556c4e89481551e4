#include "cli/demo_process.h"

#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

extern char** environ;

namespace pghaul::cli {
namespace {

constexpr size_t kMaxCapturedBytes = 1 << 20;
constexpr std::array<int, 3> kInterruptSignals = {SIGINT, SIGTERM, SIGHUP};
constexpr absl::Duration kChildPollInterval = absl::Milliseconds(100);

// The write end of the self-pipe the signal handler writes to; -1 when no DemoInterrupts lives.
std::atomic<int> signal_pipe_write{-1};
struct sigaction previous_actions[kInterruptSignals.size()];
struct sigaction previous_sigpipe_action;

void OnInterruptSignal(int signal_number) {
  int saved_errno = errno;
  int fd = signal_pipe_write.load();
  if (fd >= 0) {
    unsigned char byte = static_cast<unsigned char>(signal_number);
    ssize_t written = write(fd, &byte, 1);
    (void)written;  // a full pipe already holds a wake-up
  }
  errno = saved_errno;
}

std::string ErrnoText(int error) {
  return absl::StrCat(strerrordesc_np(error), " (errno ", error, ")");
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (std::string& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

// posix_spawn with `actions` and `flags` (plus a clean signal mask and default dispositions, so an
// ignored SIGPIPE or our SIGINT handler setup never reaches the child).
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv,
                            const std::vector<std::string>& env,
                            posix_spawn_file_actions_t* actions, short flags) {
  if (argv.empty() || argv[0].empty() || argv[0][0] != '/') {
    return absl::InvalidArgumentError("the program to start must be an absolute path");
  }
  std::vector<std::string> argv_copy = argv;
  std::vector<std::string> env_copy = env;
  std::vector<char*> argv_pointers = CStrings(argv_copy);
  std::vector<char*> env_pointers = CStrings(env_copy);

  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  sigset_t all_signals;
  sigfillset(&all_signals);
  posix_spawnattr_setsigmask(&attributes, &empty_mask);
  posix_spawnattr_setsigdefault(&attributes, &all_signals);
  if ((flags & POSIX_SPAWN_SETPGROUP) != 0) posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setflags(
      &attributes, static_cast<short>(flags | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF));
  pid_t pid = -1;
  int error = posix_spawn(&pid, argv_copy[0].c_str(), actions, &attributes, argv_pointers.data(),
                          env_pointers.data());
  posix_spawnattr_destroy(&attributes);
  if (error != 0) {
    return absl::InternalError(absl::StrCat("cannot start ", argv[0], ": ", ErrnoText(error)));
  }
  return pid;
}

int ExitCodeOf(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return 128;
}

}  // namespace

std::vector<std::string> WrapForUser(const std::vector<std::string>& argv,
                                     const std::string& run_as, bool die_with_parent) {
  if (run_as.empty() && !die_with_parent) return argv;
  std::vector<std::string> wrapped = {kSetprivBinary};
  if (!run_as.empty()) {
    wrapped.push_back("--reuid=" + run_as);
    wrapped.push_back("--regid=" + run_as);
    wrapped.push_back("--init-groups");
  }
  // After the uid change, which would otherwise clear it.
  if (die_with_parent) wrapped.push_back("--pdeathsig=KILL");
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  return wrapped;
}

absl::StatusOr<std::vector<std::string>> DemoEnvironment(const std::string& run_as) {
  struct passwd* user = run_as.empty() ? getpwuid(geteuid()) : getpwnam(run_as.c_str());
  if (user == nullptr) {
    return absl::NotFoundError(run_as.empty()
                                   ? std::string("this process's user has no passwd entry")
                                   : absl::StrCat("there is no OS user '", run_as, "'"));
  }
  std::vector<std::string> env = {
      "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
      absl::StrCat("HOME=", user->pw_dir),
      absl::StrCat("USER=", user->pw_name),
      absl::StrCat("LOGNAME=", user->pw_name),
      "LANG=C.UTF-8",
  };
  if (const char* tz = std::getenv("TZ"); tz != nullptr) env.push_back(absl::StrCat("TZ=", tz));
  return env;
}

std::vector<std::string> InheritedEnvironment() {
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    env.emplace_back(*entry);
  }
  return env;
}

absl::StatusOr<std::unique_ptr<DemoInterrupts>> DemoInterrupts::Install() {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    return absl::InternalError(absl::StrCat("cannot create a pipe: ", ErrnoText(errno)));
  }
  int expected = -1;
  if (!signal_pipe_write.compare_exchange_strong(expected, pipe_fds[1])) {
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return absl::FailedPreconditionError("signal handlers for the demo are already installed");
  }
  std::unique_ptr<DemoInterrupts> interrupts(new DemoInterrupts());
  interrupts->read_fd_ = pipe_fds[0];
  interrupts->watcher_ = std::thread([raw = interrupts.get()] { raw->WatchSignals(); });
  struct sigaction action {};
  action.sa_handler = OnInterruptSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (size_t i = 0; i < kInterruptSignals.size(); ++i) {
    sigaction(kInterruptSignals[i], &action, &previous_actions[i]);
  }
  // `pghaul demo | head` must not kill the demo before it cleaned up: a closed stdout becomes
  // failed writes instead. Children get every signal back at its default (Spawn, Subprocess).
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  sigaction(SIGPIPE, &ignore, &previous_sigpipe_action);
  return interrupts;
}

DemoInterrupts::~DemoInterrupts() {
  for (size_t i = 0; i < kInterruptSignals.size(); ++i) {
    sigaction(kInterruptSignals[i], &previous_actions[i], nullptr);
  }
  sigaction(SIGPIPE, &previous_sigpipe_action, nullptr);
  int write_fd = signal_pipe_write.exchange(-1);
  // A zero byte asks the watcher to stop; written blocking, so that it cannot be lost.
  fcntl(write_fd, F_SETFL, 0);
  unsigned char stop = 0;
  ssize_t written = write(write_fd, &stop, 1);
  (void)written;
  if (watcher_.joinable()) watcher_.join();
  close(write_fd);
  close(read_fd_);
}

void DemoInterrupts::WatchSignals() {
  while (true) {
    pollfd readable{read_fd_, POLLIN, 0};
    if (poll(&readable, 1, -1) < 0 && errno != EINTR) return;
    unsigned char bytes[16];
    ssize_t count = read(read_fd_, bytes, sizeof(bytes));
    if (count < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (count <= 0) return;
    for (ssize_t i = 0; i < count; ++i) {
      if (bytes[i] == 0) return;
      absl::MutexLock lock(&mutex_);
      if (signal_number_ == 0) signal_number_ = bytes[i];
      if (cancel_on_signal_ != nullptr) cancel_on_signal_->Cancel();
    }
  }
}

bool DemoInterrupts::interrupted() const {
  absl::MutexLock lock(&mutex_);
  return signal_number_ != 0;
}

int DemoInterrupts::signal_number() const {
  absl::MutexLock lock(&mutex_);
  return signal_number_;
}

bool DemoInterrupts::Sleep(absl::Duration duration) {
  absl::MutexLock lock(&mutex_);
  auto signalled = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return signal_number_ != 0; };
  mutex_.AwaitWithTimeout(absl::Condition(&signalled), duration);
  return signal_number_ == 0;
}

DemoInterrupts::CancelScope::CancelScope(DemoInterrupts& interrupts, Subprocess& process)
    : interrupts_(interrupts) {
  absl::MutexLock lock(&interrupts_.mutex_);
  interrupts_.cancel_on_signal_ = &process;
  if (interrupts_.signal_number_ != 0) process.Cancel();
}

DemoInterrupts::CancelScope::~CancelScope() {
  absl::MutexLock lock(&interrupts_.mutex_);
  interrupts_.cancel_on_signal_ = nullptr;
}

std::string CommandRun::Describe() const {
  const std::string& text = stderr_text.empty() ? stdout_text : stderr_text;
  std::vector<absl::string_view> lines =
      absl::StrSplit(absl::StripTrailingAsciiWhitespace(text), '\n', absl::SkipEmpty());
  constexpr size_t kLines = 15;
  if (lines.size() > kLines) lines.erase(lines.begin(), lines.end() - kLines);
  std::string description = result.Describe();
  if (!lines.empty()) absl::StrAppend(&description, ":\n  ", absl::StrJoin(lines, "\n  "));
  return description;
}

absl::StatusOr<CommandRun> RunCapturedCommand(const SubprocessSpec& spec,
                                              DemoInterrupts& interrupts,
                                              const std::string& log_path) {
  std::ofstream log;
  if (!log_path.empty()) {
    log.open(log_path, std::ios::app);
    if (!log) return absl::InternalError(absl::StrCat("cannot open ", log_path, " for writing"));
  }
  Subprocess process(spec);
  absl::Status started = process.Start();
  if (!started.ok()) return started;
  CommandRun run;
  absl::StatusOr<SubprocessResult> result;
  {
    DemoInterrupts::CancelScope scope(interrupts, process);
    result = process.Wait([&](Stream stream, absl::string_view line) {
      std::string& text = stream == Stream::kStdout ? run.stdout_text : run.stderr_text;
      if (text.size() < kMaxCapturedBytes) absl::StrAppend(&text, line, "\n");
      if (log.is_open()) log << line << "\n";
    });
  }
  if (!result.ok()) return result.status();
  run.result = *result;
  if (run.result.cancelled && interrupts.interrupted()) {
    return absl::CancelledError(absl::StrCat("interrupted by signal ", interrupts.signal_number()));
  }
  return run;
}

absl::StatusOr<pid_t> SpawnDaemon(const std::vector<std::string>& argv,
                                  const std::vector<std::string>& env,
                                  const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0640);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  // A new session: no terminal signal (Ctrl-C, hang-up) reaches the daemon, which is what --keep
  // needs; the demo itself stops it by PID.
  absl::StatusOr<pid_t> pid = Spawn(argv, env, &actions, POSIX_SPAWN_SETSID);
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

absl::StatusOr<pid_t> SpawnForeground(const std::vector<std::string>& argv,
                                      const std::vector<std::string>& env) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  // Its own process group, so that Ctrl-C reaches only the demo, which then ends this child
  // before it cleans up (rather than the two racing).
  absl::StatusOr<pid_t> pid = Spawn(argv, env, &actions, POSIX_SPAWN_SETPGROUP);
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

bool ChildExited(pid_t pid, int* wait_status) {
  int status = 0;
  pid_t waited = waitpid(pid, &status, WNOHANG);
  if (waited == pid) {
    if (wait_status != nullptr) *wait_status = status;
    return true;
  }
  // ECHILD: not (or no longer) ours, e.g. already reaped: as good as exited.
  return waited < 0 && errno == ECHILD;
}

absl::StatusOr<int> WaitForChild(pid_t pid, DemoInterrupts& interrupts) {
  while (true) {
    int status = 0;
    if (ChildExited(pid, &status)) return ExitCodeOf(status);
    if (!interrupts.Sleep(kChildPollInterval)) {
      StopChild(pid, absl::Seconds(5));
      return absl::CancelledError(
          absl::StrCat("interrupted by signal ", interrupts.signal_number()));
    }
  }
}

void StopChild(pid_t pid, absl::Duration grace) {
  if (pid <= 0) return;
  kill(-pid, SIGTERM);
  absl::Time deadline = absl::Now() + grace;
  while (absl::Now() < deadline) {
    if (ChildExited(pid, nullptr)) return;
    absl::SleepFor(absl::Milliseconds(50));
  }
  kill(-pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

std::string TailOfFile(const std::string& path, int lines) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return "";
  constexpr std::streamoff kWindow = 64 * 1024;
  file.seekg(0, std::ios::end);
  std::streamoff size = file.tellg();
  file.seekg(std::max<std::streamoff>(0, size - kWindow));
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::vector<absl::string_view> all =
      absl::StrSplit(absl::StripTrailingAsciiWhitespace(text), '\n');
  if (all.size() == 1 && all[0].empty()) return "";
  size_t first = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0;
  std::string tail;
  for (size_t i = first; i < all.size(); ++i) absl::StrAppend(&tail, all[i], "\n");
  return tail;
}

}  // namespace pghaul::cli
