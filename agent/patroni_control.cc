#include "agent/patroni_control.h"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/patroni_rest.h"
#include "agent/patroni_restore.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/subprocess.h"

namespace pghaul::agent {
namespace {

using Values = std::map<std::string, std::string>;

constexpr uint32_t kDefaultWaitSeconds = 60;
constexpr uint32_t kMaxWaitSeconds = 3600;
constexpr absl::Duration kPollInterval = absl::Milliseconds(100);
constexpr absl::Duration kSystemctlGrace = absl::Seconds(30);
constexpr size_t kLogTailBytes = 2048;

// The Patroni processes this agent started and has not reaped yet: they are its children, so
// they must be reaped (or they linger as zombies that still look alive to kill(pid, 0)).
absl::Mutex started_mutex;
std::set<pid_t>* started_pids ABSL_GUARDED_BY(started_mutex) = new std::set<pid_t>;

void RememberStarted(pid_t pid) {
  absl::MutexLock lock(&started_mutex);
  started_pids->insert(pid);
}

// Reaps every started process that has exited. Returns the exit status of `pid` when it was
// one of them and has just been reaped.
std::optional<int> ReapStarted(pid_t pid) {
  absl::MutexLock lock(&started_mutex);
  std::optional<int> result;
  for (auto it = started_pids->begin(); it != started_pids->end();) {
    int status = 0;
    pid_t reaped = waitpid(*it, &status, WNOHANG);
    if (reaped == *it || (reaped < 0 && errno == ECHILD)) {
      if (*it == pid) result = status;
      it = started_pids->erase(it);
    } else {
      ++it;
    }
  }
  return result;
}

// Whether `pid` still runs: it exists and is not a zombie.
bool ProcessAlive(pid_t pid) {
  ReapStarted(pid);
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  if (text.empty()) return false;
  size_t close = text.rfind(')');
  if (close == std::string::npos || close + 2 >= text.size()) return false;
  const char state = text[close + 2];
  return state != 'Z' && state != 'X';
}

std::string LogTail(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return "(no log)";
  file.seekg(0, std::ios::end);
  const std::streamoff size = file.tellg();
  const std::streamoff start = size > static_cast<std::streamoff>(kLogTailBytes)
                                   ? size - static_cast<std::streamoff>(kLogTailBytes)
                                   : 0;
  file.seekg(start);
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipWhitespace());
  if (lines.size() > 5) lines.erase(lines.begin(), lines.end() - 5);
  return lines.empty() ? "(empty log)" : absl::StrJoin(lines, " | ");
}

// Polls `check` every kPollInterval until it returns true, `timeout` passes, or `cancelled`.
// A check error ends the wait at once. DeadlineExceeded names `what` and `last`'s final value.
absl::Status WaitUntil(absl::string_view what, absl::Duration timeout,
                       const std::function<absl::StatusOr<bool>(std::string* last)>& check,
                       const std::function<bool()>& cancelled) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string last;
  while (true) {
    PGH_ASSIGN_OR_RETURN(bool done, check(&last));
    if (done) return absl::OkStatus();
    if (cancelled && cancelled()) {
      return absl::CancelledError(absl::StrCat("cancelled while waiting until ", what));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("Patroni: not ", what, " after ", absl::FormatDuration(timeout),
                       last.empty() ? "" : absl::StrCat(" (last seen: ", last, ")"),
                       "; its state is unknown: ask STATUS"));
    }
    absl::SleepFor(kPollInterval);
  }
}

// The values every action reports: what GET /patroni and GET /leader say now.
Values StatusValues(const PatroniConfig& config) {
  v1::PatroniFacts facts = GatherPatroniFacts(config);
  Values values;
  values["reachable"] = facts.reachable() ? "true" : "false";
  if (!facts.reachable()) {
    values["error"] = facts.error();
    return values;
  }
  values["state"] = facts.state();
  values["role"] = facts.role();
  values["timeline"] = absl::StrCat(facts.timeline());
  values["paused"] = facts.paused() ? "true" : "false";
  values["leader"] = facts.leader() ? "true" : "false";
  values["system_identifier"] = absl::StrCat(facts.system_identifier());
  values["patroni_version"] = facts.version();
  return values;
}

absl::Status RunSystemctl(const PatroniConfig& config, absl::string_view verb, uint32_t wait,
                          const std::function<void(absl::string_view)>& on_line) {
  SubprocessSpec spec;
  spec.argv = {config.systemctl, "--no-ask-password", std::string(verb), config.unit};
  spec.env = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8"};
  spec.working_directory = "/";
  spec.timeout = absl::Seconds(wait) + kSystemctlGrace;
  if (on_line) on_line(absl::StrJoin(spec.argv, " "));
  Subprocess process(spec);
  PGH_RETURN_IF_ERROR(process.Start());
  std::deque<std::string> last;
  PGH_ASSIGN_OR_RETURN(SubprocessResult result, process.Wait([&](Stream, absl::string_view line) {
    if (on_line) on_line(line);
    last.emplace_back(absl::StripAsciiWhitespace(line));
    if (last.size() > 5) last.pop_front();
  }));
  if (!result.Succeeded()) {
    return absl::FailedPreconditionError(
        absl::StrCat("systemctl ", verb, " ", config.unit, " ", result.Describe(), ": ",
                     last.empty() ? "no output" : absl::StrJoin(last, "; ")));
  }
  return absl::OkStatus();
}

// HOME and USER of the agent's own user, so Patroni (and libpq under it) find ~/.pgpass.
std::vector<std::string> ChildEnvironment() {
  std::vector<std::string> env = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8"};
  if (const passwd* user = getpwuid(geteuid()); user != nullptr) {
    env.push_back(absl::StrCat("HOME=", user->pw_dir));
    env.push_back(absl::StrCat("USER=", user->pw_name));
  }
  return env;
}

absl::StatusOr<Values> Start(const PatroniConfig& config, uint32_t wait,
                             const std::function<void(absl::string_view)>& on_line,
                             const std::function<bool()>& cancelled) {
  PatroniRestClient client(&config);
  if (RestApiAnswers(client)) {
    Values values = StatusValues(config);
    values["detail"] = "already running";
    return values;
  }
  std::optional<pid_t> pid;
  if (config.control == PatroniConfig::Control::kSystemd) {
    PGH_RETURN_IF_ERROR(RunSystemctl(config, "start", wait, on_line));
  } else {
    PGH_ASSIGN_OR_RETURN(pid, StartDetached(config.command, ChildEnvironment(), config.log_file));
    RememberStarted(*pid);
    PGH_LOG_INFO("patroni: started {} as pid {} (output in {})", absl::StrJoin(config.command, " "),
                 *pid, config.log_file);
    if (on_line)
      on_line(absl::StrCat("started ", absl::StrJoin(config.command, " "), " (pid ", *pid, ")"));
  }
  PGH_RETURN_IF_ERROR(WaitUntil(
      "running", absl::Seconds(wait),
      [&](std::string* last) -> absl::StatusOr<bool> {
        if (pid.has_value() && !ProcessAlive(*pid)) {
          return absl::FailedPreconditionError(
              absl::StrCat("Patroni (pid ", *pid, ") exited right after its start; the end of ",
                           config.log_file, ": ", LogTail(config.log_file)));
        }
        absl::StatusOr<PatroniStatus> status = client.GetStatus();
        if (!status.ok()) {
          *last = std::string(status.status().message());
          return false;
        }
        *last = absl::StrCat("state ", status->state, ", role ", status->role);
        return status->state == "running";
      },
      cancelled));
  Values values = StatusValues(config);
  values["detail"] = "started";
  return values;
}

// The postmaster of `data_directory` when one runs: the first line of postmaster.pid, if that
// process exists and is not a zombie. nullopt otherwise (no file, a stale one).
std::optional<pid_t> RunningPostmaster(const std::string& data_directory) {
  std::ifstream file(absl::StrCat(data_directory, "/postmaster.pid"));
  std::string line;
  if (!std::getline(file, line)) return std::nullopt;
  pid_t pid = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &pid) || pid <= 0) return std::nullopt;
  if (!ProcessAlive(pid)) return std::nullopt;
  return pid;
}

// `stop_orphan`: stop a PostgreSQL left running afterwards (STOP); false for REJOIN, whose
// paused Patroni leaves its PostgreSQL running on purpose.
absl::StatusOr<Values> Stop(const PatroniConfig& config, const RestoredDataEnvironment& env,
                            uint32_t wait, const std::function<void(absl::string_view)>& on_line,
                            const std::function<bool()>& cancelled, bool stop_orphan = true) {
  const std::string& data_directory = env.data_directory;
  PatroniRestClient client(&config);
  std::optional<pid_t> pid;
  std::string detail = "stopped";
  if (!RestApiAnswers(client)) {
    detail = "already stopped";
  } else if (config.control == PatroniConfig::Control::kSystemd) {
    PGH_RETURN_IF_ERROR(RunSystemctl(config, "stop", wait, on_line));
  } else {
    PGH_ASSIGN_OR_RETURN(std::vector<pid_t> pids, FindProcessesListeningOn(config.rest_api_port));
    if (pids.size() != 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Patroni's REST API at ", config.RestApiAddress(), " answers, but ",
          pids.empty() ? "no process of this user listens on its port"
                       : absl::StrCat(pids.size(), " processes listen on its port (",
                                      absl::StrJoin(pids, ", "), ")"),
          ": cannot tell which one to stop; stop Patroni by the means that started it"));
    }
    pid = pids.front();
    if (on_line) on_line(absl::StrCat("SIGTERM to Patroni (pid ", *pid, ")"));
    PGH_LOG_INFO("patroni: SIGTERM to pid {}", *pid);
    if (kill(*pid, SIGTERM) != 0 && errno != ESRCH) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot signal Patroni (pid ", *pid, "): ", strerror(errno)));
    }
  }
  PGH_RETURN_IF_ERROR(WaitUntil(
      "stopped", absl::Seconds(wait),
      [&](std::string* last) -> absl::StatusOr<bool> {
        if (pid.has_value() && ProcessAlive(*pid)) {
          *last = absl::StrCat("pid ", *pid, " still runs");
          return false;
        }
        if (RestApiAnswers(client)) {
          *last = "the REST API still answers";
          return false;
        }
        return true;
      },
      cancelled));
  // A Patroni that was killed (SIGKILL, OOM) leaves its PostgreSQL running with nothing
  // managing it: stopped here (pg_ctl stop -m fast), since the callers of STOP (the restore,
  // abort) need the data directory free.
  if (std::optional<pid_t> orphan = RunningPostmaster(data_directory);
      stop_orphan && orphan.has_value() && !env.pg_bin_dir.empty()) {
    if (on_line) {
      on_line(absl::StrCat("PostgreSQL (pid ", *orphan,
                           ") runs without Patroni: stopping it with pg_ctl"));
    }
    PGH_LOG_WARN("patroni: PostgreSQL pid {} runs without Patroni; pg_ctl stop -m fast", *orphan);
    v1::ServiceAction stop;
    stop.set_action(v1::ServiceAction::STOP);
    stop.set_stop_mode("fast");
    stop.set_wait_seconds(wait);
    auto line = [&on_line](Stream, absl::string_view text) {
      if (on_line) on_line(text);
    };
    PGH_RETURN_IF_ERROR(RunServiceAction(PgCtlService(env), stop, line).status());
    detail =
        absl::StrCat(detail, "; stopped the PostgreSQL it had left running (pid ", *orphan, ")");
  }
  Values values = StatusValues(config);
  values["detail"] = detail;
  struct stat info;
  const bool pid_file = stat(absl::StrCat(data_directory, "/postmaster.pid").c_str(), &info) == 0;
  values["postgres_stopped"] = pid_file ? "false" : "true";
  return values;
}

absl::StatusOr<Values> SetPause(const PatroniConfig& config, bool paused, uint32_t wait,
                                const std::function<void(absl::string_view)>& on_line,
                                const std::function<bool()>& cancelled) {
  PatroniRestClient client(&config);
  PGH_ASSIGN_OR_RETURN(PatroniStatus before, client.GetStatus());
  std::string detail = paused ? "paused" : "resumed";
  if (before.paused == paused) {
    detail = paused ? "already paused" : "already resumed";
  } else {
    if (on_line) on_line(absl::StrCat("PATCH /config pause=", paused ? "true" : "null"));
    PGH_RETURN_IF_ERROR(client.SetPause(paused));
  }
  PGH_RETURN_IF_ERROR(WaitUntil(
      paused ? "paused" : "resumed", absl::Seconds(wait),
      [&](std::string* last) -> absl::StatusOr<bool> {
        absl::StatusOr<PatroniStatus> status = client.GetStatus();
        if (!status.ok()) {
          *last = std::string(status.status().message());
          return false;
        }
        *last = absl::StrCat("pause ", status->paused);
        return status->paused == paused;
      },
      cancelled));
  Values values = StatusValues(config);
  values["detail"] = detail;
  return values;
}

// PROMOTE: ends the standby cluster and waits, polling every kPromotePoll, until Patroni reports
// PostgreSQL out of recovery (role master; "promoted" is the moment between pg_ctl promote and
// the end of recovery). Done again after a success, it finds role master and changes nothing.
constexpr absl::Duration kPromotePoll = absl::Milliseconds(10);
absl::StatusOr<Values> Promote(const PatroniConfig& config, uint32_t wait,
                               const std::function<void(absl::string_view)>& on_line,
                               const std::function<bool()>& cancelled) {
  PatroniRestClient client(&config);
  PGH_ASSIGN_OR_RETURN(PatroniStatus before, client.GetStatus());
  auto primary = [](const PatroniStatus& status) {
    return status.role == "master" || status.role == "primary";
  };
  std::string detail = "already primary";
  const absl::Time started = absl::Now();
  if (!primary(before)) {
    if (on_line) on_line("PATCH /config standby_cluster=null");
    PGH_RETURN_IF_ERROR(client.PatchConfig(R"({"standby_cluster":null})"));
    const absl::Time deadline = started + absl::Seconds(wait);
    std::string last;
    while (true) {
      absl::StatusOr<PatroniStatus> status = client.GetStatus();
      if (status.ok() && primary(*status)) break;
      last = status.ok() ? absl::StrCat("state ", status->state, ", role ", status->role)
                         : std::string(status.status().message());
      if (cancelled && cancelled()) return absl::CancelledError("cancelled while promoting");
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat("Patroni did not promote within ", wait,
                                                        " s after standby_cluster was removed from "
                                                        "its configuration (last: ",
                                                        last, "); see Patroni's log"));
      }
      absl::SleepFor(kPromotePoll);
    }
    detail = "promoted";
  }
  const int64_t promoted_ms = absl::ToInt64Milliseconds(absl::Now() - started);
  Values values = StatusValues(config);
  values["detail"] = detail;
  values["promoted_ms"] = absl::StrCat(promoted_ms);
  values["timeline_before"] = absl::StrCat(before.timeline);
  PGH_LOG_INFO("patroni: {} (timeline {} -> {}) in {} ms", detail, before.timeline,
               values["timeline"], promoted_ms);
  return values;
}

// RESTART: POST /restart, which answers once PostgreSQL is back, then waits until Patroni says
// running.
absl::StatusOr<Values> Restart(const PatroniConfig& config, uint32_t wait,
                               const std::function<void(absl::string_view)>& on_line,
                               const std::function<bool()>& cancelled) {
  PatroniRestClient client(&config);
  if (on_line) on_line("POST /restart");
  // Right after a promotion Patroni is still finishing it (its HA loop updates the leader key)
  // and answers 503 "promote already in progress": asked again until it takes the restart.
  PGH_RETURN_IF_ERROR(WaitUntil(
      "ready to restart PostgreSQL", absl::Seconds(wait),
      [&](std::string* last) -> absl::StatusOr<bool> {
        absl::Status restarted = client.Restart(absl::Seconds(wait));
        if (!absl::IsUnavailable(restarted) ||
            !absl::StrContains(restarted.message(), "already in progress")) {
          PGH_RETURN_IF_ERROR(restarted);
          return true;
        }
        if (last->empty() && on_line) on_line(restarted.message());
        *last = std::string(restarted.message());
        return false;
      },
      cancelled));
  PGH_RETURN_IF_ERROR(WaitUntil(
      "running", absl::Seconds(wait),
      [&](std::string* last) -> absl::StatusOr<bool> {
        absl::StatusOr<PatroniStatus> status = client.GetStatus();
        if (!status.ok()) {
          *last = std::string(status.status().message());
          return false;
        }
        *last = absl::StrCat("state ", status->state, ", role ", status->role);
        return status->state == "running";
      },
      cancelled));
  Values values = StatusValues(config);
  values["detail"] = "restarted";
  return values;
}

// REJOIN (tasks.proto): pause, stop, start, resume, reload, PostgreSQL running throughout.
absl::StatusOr<Values> Rejoin(const PatroniConfig& config, const RestoredDataEnvironment& env,
                              uint32_t wait, const std::function<void(absl::string_view)>& on_line,
                              const std::function<bool()>& cancelled) {
  PatroniRestClient client(&config);
  PGH_ASSIGN_OR_RETURN(PatroniStatus before, client.GetStatus());
  if (before.state != "running" || (before.role != "master" && before.role != "primary")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "REJOIN needs PostgreSQL running as a primary under Patroni; Patroni reports state ",
        before.state, ", role ", before.role));
  }
  const std::optional<pid_t> postmaster = RunningPostmaster(env.data_directory);
  PGH_RETURN_IF_ERROR(SetPause(config, true, wait, on_line, cancelled).status());
  PGH_RETURN_IF_ERROR(Stop(config, env, wait, on_line, cancelled, /*stop_orphan=*/false).status());
  if (RunningPostmaster(env.data_directory) != postmaster) {
    return absl::InternalError(absl::StrCat(
        "PostgreSQL did not stay up while the paused Patroni stopped (postmaster ",
        postmaster.has_value() ? absl::StrCat(*postmaster) : "none",
        " before); Patroni is "
        "stopped and paused: start it (patroni START) and resume it (patroni RESUME)"));
  }
  PGH_RETURN_IF_ERROR(Start(config, wait, on_line, cancelled).status());
  PGH_RETURN_IF_ERROR(SetPause(config, false, wait, on_line, cancelled).status());
  if (on_line) on_line("POST /reload");
  PGH_RETURN_IF_ERROR(client.Reload());
  const std::string conf_path = absl::StrCat(env.data_directory, "/postgresql.conf");
  bool restore_command_in_conf = true;
  PGH_RETURN_IF_ERROR(WaitUntil(
      "without restore_command in postgresql.conf", absl::Seconds(wait),
      [&](std::string* last) -> absl::StatusOr<bool> {
        std::ifstream file(conf_path);
        std::string line;
        restore_command_in_conf = false;
        while (std::getline(file, line)) {
          if (absl::StartsWith(absl::StripLeadingAsciiWhitespace(line), "restore_command")) {
            restore_command_in_conf = true;
          }
        }
        *last = restore_command_in_conf ? "restore_command still there" : "";
        return !restore_command_in_conf;
      },
      cancelled));
  Values values = StatusValues(config);
  values["detail"] = "Patroni restarted around the running PostgreSQL";
  values["restore_command_in_conf"] = restore_command_in_conf ? "true" : "false";
  PGH_LOG_INFO("patroni: rejoined PostgreSQL pid {} (timeline {})",
               postmaster.has_value() ? *postmaster : 0, values["timeline"]);
  return values;
}

// The socket inodes listening on `port` in one /proc/net/tcp-style file.
void ListeningInodes(const std::string& path, int port, std::set<std::string>& inodes) {
  std::ifstream file(path);
  std::string line;
  std::getline(file, line);  // header
  while (std::getline(file, line)) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
    if (fields.size() < 10 || fields[3] != "0A") continue;
    size_t colon = fields[1].rfind(':');
    if (colon == absl::string_view::npos) continue;
    uint32_t local_port = 0;
    if (!absl::SimpleHexAtoi(fields[1].substr(colon + 1), &local_port)) continue;
    if (static_cast<int>(local_port) == port && fields[9] != "0") inodes.emplace(fields[9]);
  }
}

}  // namespace

absl::Status ValidatePatroniAction(const v1::PatroniAction& action) {
  switch (action.action()) {
    case v1::PatroniAction::STATUS:
    case v1::PatroniAction::START:
    case v1::PatroniAction::STOP:
    case v1::PatroniAction::PAUSE:
    case v1::PatroniAction::RESUME:
    case v1::PatroniAction::PREPARE_RESTORED:
    case v1::PatroniAction::CLEAR_INITIALIZE:
    case v1::PatroniAction::ROLE_VERIFIERS:
    case v1::PatroniAction::FOLLOW_ARCHIVE:
    case v1::PatroniAction::PROMOTE:
    case v1::PatroniAction::RESTART:
    case v1::PatroniAction::REJOIN:
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "patroni: unknown action ", static_cast<int>(action.action()),
          " (expected STATUS, START, STOP, PAUSE, RESUME, PREPARE_RESTORED, CLEAR_INITIALIZE, "
          "ROLE_VERIFIERS, FOLLOW_ARCHIVE, PROMOTE, RESTART or REJOIN)"));
  }
  if (action.wait_seconds() > kMaxWaitSeconds) {
    return absl::InvalidArgumentError(absl::StrCat("patroni: wait_seconds must be at most ",
                                                   kMaxWaitSeconds, ", got ",
                                                   action.wait_seconds()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, std::string>> RunPatroniAction(
    const PatroniConfig& config, const RestoredDataEnvironment& env,
    const v1::PatroniAction& action, const std::function<void(absl::string_view)>& on_line,
    const std::function<bool()>& cancelled) {
  PGH_RETURN_IF_ERROR(ValidatePatroniAction(action));
  const uint32_t wait = action.wait_seconds() == 0 ? kDefaultWaitSeconds : action.wait_seconds();
  switch (action.action()) {
    case v1::PatroniAction::STATUS:
      ReapStarted(0);
      return StatusValues(config);
    case v1::PatroniAction::START:
      return Start(config, wait, on_line, cancelled);
    case v1::PatroniAction::STOP:
      return Stop(config, env, wait, on_line, cancelled);
    case v1::PatroniAction::PAUSE:
      return SetPause(config, true, wait, on_line, cancelled);
    case v1::PatroniAction::RESUME:
      return SetPause(config, false, wait, on_line, cancelled);
    case v1::PatroniAction::PREPARE_RESTORED: {
      RestoredDataEnvironment bounded = env;
      // The private recovery replays what the backup needs: up to an hour unless told.
      bounded.wait_seconds = action.wait_seconds() == 0 ? kMaxWaitSeconds : action.wait_seconds();
      return PrepareRestoredData(config, bounded, on_line, cancelled);
    }
    case v1::PatroniAction::CLEAR_INITIALIZE:
      return ClearInitializeKey(config, on_line);
    case v1::PatroniAction::ROLE_VERIFIERS:
      return RoleVerifiers(config);
    case v1::PatroniAction::FOLLOW_ARCHIVE:
      return FollowArchive(config, env, on_line);
    case v1::PatroniAction::PROMOTE:
      return Promote(config, wait, on_line, cancelled);
    case v1::PatroniAction::RESTART:
      return Restart(config, wait, on_line, cancelled);
    case v1::PatroniAction::REJOIN:
      return Rejoin(config, env, wait, on_line, cancelled);
    default:
      break;
  }
  return absl::InvalidArgumentError("patroni: unknown action");
}

absl::StatusOr<std::vector<pid_t>> FindProcessesListeningOn(int port) {
  std::set<std::string> inodes;
  if (access("/proc/net/tcp", R_OK) != 0) {
    return absl::InternalError(absl::StrCat("cannot read /proc/net/tcp: ", strerror(errno)));
  }
  ListeningInodes("/proc/net/tcp", port, inodes);
  ListeningInodes("/proc/net/tcp6", port, inodes);
  std::vector<pid_t> pids;
  if (inodes.empty()) return pids;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return absl::InternalError("cannot list /proc");
  while (dirent* entry = readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry->d_name, &pid) || pid <= 0) continue;
    const std::string fd_dir = absl::StrCat("/proc/", pid, "/fd");
    DIR* fds = opendir(fd_dir.c_str());
    if (fds == nullptr) continue;  // another user's process, or gone
    bool found = false;
    while (dirent* fd = readdir(fds)) {
      if (fd->d_name[0] == '.') continue;
      char target[64];
      ssize_t n = readlinkat(dirfd(fds), fd->d_name, target, sizeof(target) - 1);
      if (n <= 0) continue;
      absl::string_view link(target, static_cast<size_t>(n));
      if (!absl::ConsumePrefix(&link, "socket:[") || !absl::ConsumeSuffix(&link, "]")) continue;
      if (inodes.count(std::string(link)) > 0) {
        found = true;
        break;
      }
    }
    closedir(fds);
    if (found) pids.push_back(pid);
  }
  closedir(proc);
  return pids;
}

absl::StatusOr<pid_t> StartDetached(const std::vector<std::string>& argv,
                                    const std::vector<std::string>& env,
                                    const std::string& log_file) {
  if (argv.empty()) return absl::InvalidArgumentError("patroni: no command to start");
  if (access(argv[0].c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("patroni: cannot execute ", argv[0], ": ", strerror(errno)));
  }
  // Opened here (not by the child) so a log we cannot write fails the task with a clear error.
  int log_fd = open(log_file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (log_fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("patroni: cannot open its log ", log_file, ": ", strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addchdir_np(&actions, "/");
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, log_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, log_fd, STDERR_FILENO);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  sigset_t all_signals;
  sigfillset(&all_signals);
  // A session of its own, so the agent's terminal or process group never signals it; no
  // blocked or ignored signals inherited from the agent (SIGTERM must reach it).
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setsigmask(&attr, &empty_mask);
  posix_spawnattr_setsigdefault(&attr, &all_signals);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& entry : env) envp.push_back(const_cast<char*>(entry.c_str()));
  envp.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0].c_str(), &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(log_fd);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("patroni: cannot start ", argv[0], ": ", strerror(rc)));
  }
  return pid;
}

}  // namespace pghaul::agent
