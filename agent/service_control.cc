#include "agent/service_control.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace pghaul::agent {
namespace {

using Values = std::map<std::string, std::string>;
using Method = ServiceControlConfig::Method;

constexpr uint32_t kDefaultWaitSeconds = 60;
constexpr uint32_t kMaxWaitSeconds = 86400;
// The command's own wait (-w -t) ends first; this is the backstop for a command that hangs.
constexpr absl::Duration kCommandGrace = absl::Seconds(30);
constexpr absl::Duration kStatusTimeout = absl::Seconds(30);
// Lines of output kept for an error message.
constexpr size_t kKeptLines = 5;

absl::Status CheckAbsolute(absl::string_view field, absl::string_view value) {
  if (!absl::StartsWith(value, "/")) {
    return absl::InvalidArgumentError(
        absl::StrCat("service control: ", field, " must be an absolute path, got \"", value, "\""));
  }
  return absl::OkStatus();
}

// pg_ctl puts -D and -l values inside double quotes of a /bin/sh command line: these are the
// characters that would still be interpreted there.
absl::Status CheckForPgCtlQuotes(absl::string_view field, absl::string_view value) {
  PGH_RETURN_IF_ERROR(CheckAbsolute(field, value));
  if (value.find_first_of("\"$`\\\n\r") != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "service control: ", field, " must not contain '\"', '$', '`', '\\' or a line break"));
  }
  return absl::OkStatus();
}

absl::Status CheckServerOption(absl::string_view option) {
  if (option.find_first_of(";&|$<>`\n\r") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("service control: pg_ctl option \"", option,
                     "\" contains a shell control character (one of ;&|$<>` or a line break)"));
  }
  return absl::OkStatus();
}

// A name made of letters, digits and `extra`, not starting with '-' (so it is never an option).
bool IsPlainName(absl::string_view value, absl::string_view extra) {
  if (value.empty() || value.front() == '-') return false;
  for (char c : value) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) &&
        extra.find(c) == absl::string_view::npos) {
      return false;
    }
  }
  return true;
}

// "15" or "9.6".
bool IsClusterVersion(absl::string_view value) {
  size_t dot = value.find('.');
  absl::string_view major = value.substr(0, dot);
  absl::string_view minor = dot == absl::string_view::npos ? "0" : value.substr(dot + 1);
  auto all_digits = [](absl::string_view part) {
    if (part.empty()) return false;
    for (char c : part) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
    }
    return true;
  };
  return all_digits(major) && all_digits(minor);
}

absl::StatusOr<std::string> StopMode(const v1::ServiceAction& action) {
  const std::string& mode = action.stop_mode();
  if (mode.empty()) return std::string("fast");
  if (mode == "smart" || mode == "fast" || mode == "immediate") return mode;
  return absl::InvalidArgumentError(absl::StrCat(
      "service control: stop_mode must be smart, fast or immediate, got \"", mode, "\""));
}

absl::StatusOr<uint32_t> WaitSeconds(const v1::ServiceAction& action) {
  if (action.wait_seconds() > kMaxWaitSeconds) {
    return absl::InvalidArgumentError(absl::StrCat("service control: wait_seconds must be at most ",
                                                   kMaxWaitSeconds, ", got ",
                                                   action.wait_seconds()));
  }
  return action.wait_seconds() == 0 ? kDefaultWaitSeconds : action.wait_seconds();
}

absl::Status CheckPgCtl(const ServiceControlConfig& config) {
  PGH_RETURN_IF_ERROR(CheckAbsolute("pg_ctl", config.pg_ctl));
  if (config.data_directory.empty()) {
    return absl::InvalidArgumentError("service control: data_directory is not set (pg_ctl -D)");
  }
  return CheckForPgCtlQuotes("data_directory", config.data_directory);
}

// `pg_ctl promote -D DATA -w -t W`: also the systemd method's promote.
std::vector<std::string> PgCtlPromote(const ServiceControlConfig& config, uint32_t wait) {
  return {config.pg_ctl, "promote", "-D", config.data_directory, "-w", "-t", absl::StrCat(wait)};
}

absl::StatusOr<std::vector<std::string>> PgCtlCommand(const ServiceControlConfig& config,
                                                      v1::ServiceAction::Action verb,
                                                      const std::string& mode, uint32_t wait) {
  PGH_RETURN_IF_ERROR(CheckPgCtl(config));
  const std::string timeout = absl::StrCat(wait);
  std::vector<std::string> argv;
  auto add_start_options = [&]() -> absl::Status {
    if (!config.log_file.empty()) {
      PGH_RETURN_IF_ERROR(CheckForPgCtlQuotes("log_file", config.log_file));
      argv.insert(argv.end(), {"-l", config.log_file});
    }
    for (const std::string& option : config.pg_ctl_options) {
      PGH_RETURN_IF_ERROR(CheckServerOption(option));
      argv.insert(argv.end(), {"-o", option});
    }
    return absl::OkStatus();
  };
  switch (verb) {
    case v1::ServiceAction::START:
      argv = {config.pg_ctl, "start", "-D", config.data_directory, "-w", "-t", timeout};
      PGH_RETURN_IF_ERROR(add_start_options());
      return argv;
    case v1::ServiceAction::STOP:
      return std::vector<std::string>{
          config.pg_ctl, "stop", "-D", config.data_directory, "-m", mode, "-w", "-t", timeout};
    case v1::ServiceAction::RESTART:
      argv = {config.pg_ctl, "restart", "-D",   config.data_directory, "-m", mode,
              "-w",          "-t",      timeout};
      PGH_RETURN_IF_ERROR(add_start_options());
      return argv;
    case v1::ServiceAction::STATUS:
      return std::vector<std::string>{config.pg_ctl, "status", "-D", config.data_directory};
    case v1::ServiceAction::PROMOTE:
      return PgCtlPromote(config, wait);
    default:
      return absl::InvalidArgumentError("service control: unknown action");
  }
}

absl::StatusOr<std::vector<std::string>> PgCtlClusterCommand(const ServiceControlConfig& config,
                                                             v1::ServiceAction::Action verb,
                                                             const std::string& mode,
                                                             uint32_t wait) {
  PGH_RETURN_IF_ERROR(CheckAbsolute("pg_ctlcluster", config.pg_ctlcluster));
  if (!IsClusterVersion(config.cluster_version)) {
    return absl::InvalidArgumentError(
        absl::StrCat("service control: cluster_version must look like 15 or 9.6, got \"",
                     config.cluster_version, "\""));
  }
  if (!IsPlainName(config.cluster_name, "._-")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "service control: cluster_name must be letters, digits, '.', '_' or '-' (not starting "
        "with '-'), got \"",
        config.cluster_name, "\""));
  }
  // pg_ctlcluster passes what follows "--" on to pg_ctl.
  const std::vector<std::string> pg_ctl_wait = {"--", "-w", "-t", absl::StrCat(wait)};
  std::vector<std::string> argv = {config.pg_ctlcluster};
  switch (verb) {
    case v1::ServiceAction::START:
      argv.insert(argv.end(), {config.cluster_version, config.cluster_name, "start"});
      break;
    case v1::ServiceAction::STOP:
      argv.insert(argv.end(), {"-m", mode, config.cluster_version, config.cluster_name, "stop"});
      break;
    case v1::ServiceAction::RESTART:
      argv.insert(argv.end(), {"-m", mode, config.cluster_version, config.cluster_name, "restart"});
      break;
    case v1::ServiceAction::STATUS:
      argv.insert(argv.end(), {config.cluster_version, config.cluster_name, "status"});
      return argv;
    case v1::ServiceAction::PROMOTE:
      argv.insert(argv.end(), {config.cluster_version, config.cluster_name, "promote"});
      break;
    default:
      return absl::InvalidArgumentError("service control: unknown action");
  }
  argv.insert(argv.end(), pg_ctl_wait.begin(), pg_ctl_wait.end());
  return argv;
}

absl::StatusOr<std::vector<std::string>> SystemdCommand(const ServiceControlConfig& config,
                                                        v1::ServiceAction::Action verb,
                                                        const std::string& mode, uint32_t wait) {
  if (verb == v1::ServiceAction::PROMOTE) {
    PGH_RETURN_IF_ERROR(CheckPgCtl(config));
    return PgCtlPromote(config, wait);
  }
  PGH_RETURN_IF_ERROR(CheckAbsolute("systemctl", config.systemctl));
  if (!IsPlainName(config.unit, "@:._-\\")) {
    return absl::InvalidArgumentError(
        absl::StrCat("service control: unit \"", config.unit, "\" is not a systemd unit name"));
  }
  if ((verb == v1::ServiceAction::STOP || verb == v1::ServiceAction::RESTART) && mode != "fast") {
    return absl::InvalidArgumentError(
        absl::StrCat("service control: a systemd unit stops in its own mode (fast for Debian's "
                     "postgresql@.service); stop_mode \"",
                     mode, "\" needs the pg_ctl or pg_ctlcluster method"));
  }
  switch (verb) {
    case v1::ServiceAction::START:
      return std::vector<std::string>{config.systemctl, "--no-ask-password", "start", config.unit};
    case v1::ServiceAction::STOP:
      return std::vector<std::string>{config.systemctl, "--no-ask-password", "stop", config.unit};
    case v1::ServiceAction::RESTART:
      return std::vector<std::string>{config.systemctl, "--no-ask-password", "restart",
                                      config.unit};
    case v1::ServiceAction::STATUS:
      return std::vector<std::string>{config.systemctl, "is-active", config.unit};
    default:
      return absl::InvalidArgumentError("service control: unknown action");
  }
}

// One finished command and what it printed.
struct CommandOutcome {
  SubprocessResult result;
  std::string first_stdout_line;
  std::string first_line;
  std::deque<std::string> last_lines;  // at most kKeptLines, both streams
};

absl::StatusOr<CommandOutcome> RunCommand(const std::vector<std::string>& argv,
                                          absl::Duration timeout,
                                          const Subprocess::LineCallback& on_line) {
  SubprocessSpec spec;
  spec.argv = argv;
  spec.env = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8"};
  // The agent's own working directory may not be readable by the cluster owner (runuser).
  spec.working_directory = "/";
  spec.timeout = timeout;
  Subprocess process(std::move(spec));
  PGH_RETURN_IF_ERROR(process.Start());
  CommandOutcome outcome;
  PGH_ASSIGN_OR_RETURN(outcome.result, process.Wait([&](Stream stream, absl::string_view line) {
    if (on_line) on_line(stream, line);
    absl::string_view trimmed = absl::StripAsciiWhitespace(line);
    if (trimmed.empty()) return;
    if (stream == Stream::kStdout && outcome.first_stdout_line.empty()) {
      outcome.first_stdout_line = std::string(trimmed);
    }
    if (outcome.first_line.empty()) outcome.first_line = std::string(trimmed);
    outcome.last_lines.emplace_back(trimmed);
    if (outcome.last_lines.size() > kKeptLines) outcome.last_lines.pop_front();
  }));
  return outcome;
}

// "pg_ctl stop", "systemctl is-active": the command without the run_as prefix, for messages.
std::string CommandName(const ServiceControlConfig& config, const std::vector<std::string>& argv,
                        v1::ServiceAction::Action verb) {
  absl::string_view binary = argv[config.run_as_prefix.size()];
  binary = binary.substr(binary.rfind('/') + 1);
  const bool is_active = config.method == Method::kSystemd && verb == v1::ServiceAction::STATUS;
  return absl::StrCat(
      binary, " ",
      is_active ? "is-active" : absl::AsciiStrToLower(v1::ServiceAction::Action_Name(verb)));
}

// The error for a command that did not succeed.
absl::Status CommandError(const std::string& name, const CommandOutcome& outcome,
                          uint32_t timeout_seconds) {
  std::string output = absl::StrJoin(outcome.last_lines, "; ");
  if (output.empty()) output = "no output";
  if (outcome.result.timed_out) {
    return absl::DeadlineExceededError(
        absl::StrCat(name, " did not finish within ", timeout_seconds,
                     " s and was killed; the server's state is unknown (ask STATUS): ", output));
  }
  if (outcome.result.cancelled) {
    return absl::CancelledError(absl::StrCat(name, " was cancelled: ", output));
  }
  return absl::FailedPreconditionError(
      absl::StrCat(name, " ", outcome.result.Describe(), ": ", output));
}

absl::Status ValidatePrefix(const ServiceControlConfig& config) {
  if (!config.run_as_prefix.empty()) {
    PGH_RETURN_IF_ERROR(CheckAbsolute("run_as_prefix[0]", config.run_as_prefix.front()));
  }
  return absl::OkStatus();
}

absl::StatusOr<Values> RunStatus(const ServiceControlConfig& config,
                                 const Subprocess::LineCallback& on_line) {
  v1::ServiceAction status_action;
  status_action.set_action(v1::ServiceAction::STATUS);
  PGH_ASSIGN_OR_RETURN(std::vector<std::string> argv, ServiceCommand(config, status_action));
  const std::string name = CommandName(config, argv, v1::ServiceAction::STATUS);
  PGH_ASSIGN_OR_RETURN(CommandOutcome outcome, RunCommand(argv, kStatusTimeout, on_line));
  const SubprocessResult& result = outcome.result;
  if (result.timed_out || result.cancelled || result.exit_code < 0) {
    return CommandError(name, outcome, absl::ToInt64Seconds(kStatusTimeout));
  }
  Values values;
  values["detail"] =
      outcome.first_stdout_line.empty() ? outcome.first_line : outcome.first_stdout_line;
  if (result.exit_code == 0) {
    values["running"] = "true";
    return values;
  }
  if (config.method == Method::kSystemd) {
    // is-active prints the unit's state (inactive, failed, activating, ...) and exits non-zero
    // when it is not active; anything else (no state word: no systemd, no bus) is an error.
    if (!outcome.first_stdout_line.empty() && IsPlainName(outcome.first_stdout_line, "-")) {
      values["running"] = "false";
      return values;
    }
  } else if (result.exit_code == 3) {
    values["running"] = "false";  // pg_ctl: no server running
    return values;
  }
  return CommandError(name, outcome, absl::ToInt64Seconds(kStatusTimeout));
}

}  // namespace

std::string ServerLogTail(const std::string& path) {
  constexpr off_t kTailBytes = 4096;
  constexpr size_t kTailLines = 5;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return "";
  struct stat st;
  std::string text;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    const off_t from = st.st_size > kTailBytes ? st.st_size - kTailBytes : 0;
    text.resize(static_cast<size_t>(st.st_size - from));
    const ssize_t n = pread(fd, text.data(), text.size(), from);
    text.resize(n > 0 ? static_cast<size_t>(n) : 0);
    if (from > 0) {  // the first line is cut: drop it
      const size_t newline = text.find('\n');
      text.erase(0, newline == std::string::npos ? text.size() : newline + 1);
    }
  }
  close(fd);
  std::deque<std::string> lines;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    lines.emplace_back(line);
    if (lines.size() > kTailLines) lines.pop_front();
  }
  return absl::StrJoin(lines, " | ");
}

absl::StatusOr<std::vector<std::string>> ServiceCommand(const ServiceControlConfig& config,
                                                        const v1::ServiceAction& action) {
  PGH_RETURN_IF_ERROR(ValidatePrefix(config));
  const v1::ServiceAction::Action verb = action.action();
  switch (verb) {
    case v1::ServiceAction::START:
    case v1::ServiceAction::STOP:
    case v1::ServiceAction::STATUS:
    case v1::ServiceAction::PROMOTE:
    case v1::ServiceAction::RESTART:
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("service control: unknown action ", static_cast<int>(verb)));
  }
  PGH_ASSIGN_OR_RETURN(std::string mode, StopMode(action));
  PGH_ASSIGN_OR_RETURN(uint32_t wait, WaitSeconds(action));
  absl::StatusOr<std::vector<std::string>> command;
  switch (config.method) {
    case Method::kPgCtl:
      command = PgCtlCommand(config, verb, mode, wait);
      break;
    case Method::kPgCtlCluster:
      command = PgCtlClusterCommand(config, verb, mode, wait);
      break;
    case Method::kSystemd:
      command = SystemdCommand(config, verb, mode, wait);
      break;
  }
  if (!command.ok()) return command.status();
  std::vector<std::string> argv = config.run_as_prefix;
  argv.insert(argv.end(), command->begin(), command->end());
  return argv;
}

absl::StatusOr<std::map<std::string, std::string>> RunServiceAction(
    const ServiceControlConfig& config, const v1::ServiceAction& action,
    const Subprocess::LineCallback& on_line) {
  // Validate everything before anything runs, including the status check below.
  PGH_ASSIGN_OR_RETURN(std::vector<std::string> argv, ServiceCommand(config, action));
  const v1::ServiceAction::Action verb = action.action();
  if (verb == v1::ServiceAction::STATUS) return RunStatus(config, on_line);

  // pg_ctl and pg_ctlcluster fail when asked to start a running server or to stop a stopped
  // one; a repeated task must succeed instead (systemctl already behaves so).
  if ((verb == v1::ServiceAction::START || verb == v1::ServiceAction::STOP) &&
      config.method != Method::kSystemd) {
    PGH_ASSIGN_OR_RETURN(Values status, RunStatus(config, on_line));
    const bool running = status["running"] == "true";
    if (verb == v1::ServiceAction::START && running) {
      return Values{{"running", "true"}, {"detail", "already running"}};
    }
    if (verb == v1::ServiceAction::STOP && !running) {
      return Values{{"running", "false"}, {"detail", "already stopped"}};
    }
  }

  PGH_ASSIGN_OR_RETURN(const uint32_t wait, WaitSeconds(action));
  const absl::Duration timeout = absl::Seconds(wait) + kCommandGrace;
  const std::string name = CommandName(config, argv, verb);
  PGH_LOG_INFO("service control: running {}", absl::StrJoin(argv, " "));
  PGH_ASSIGN_OR_RETURN(CommandOutcome outcome, RunCommand(argv, timeout, on_line));
  if (!outcome.result.Succeeded()) {
    absl::Status error = CommandError(name, outcome, absl::ToInt64Seconds(timeout));
    // pg_ctl only says "Examine the log output": the reason (no space left, a bad setting, a
    // missing WAL file) is in the server's log, so the message carries its last lines.
    if ((verb == v1::ServiceAction::START || verb == v1::ServiceAction::RESTART) &&
        config.method == Method::kPgCtl && !config.log_file.empty()) {
      const std::string tail = ServerLogTail(config.log_file);
      if (!tail.empty()) {
        error = absl::Status(error.code(), absl::StrCat(error.message(), "; the server log (",
                                                        config.log_file, ") ends: ", tail));
      }
    }
    return error;
  }
  const std::string detail = outcome.last_lines.empty() ? "" : outcome.last_lines.back();
  if (verb == v1::ServiceAction::PROMOTE) {
    return Values{{"promoted", "true"}, {"detail", detail}};
  }
  return Values{{"running", verb == v1::ServiceAction::STOP ? "false" : "true"},
                {"detail", detail}};
}

}  // namespace pghaul::agent
