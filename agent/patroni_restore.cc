#include "agent/patroni_restore.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/patroni_rest.h"
#include "agent/scram_verifier.h"
#include "common/files.h"
#include "common/http_client.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/subprocess.h"
#include "nlohmann/json.hpp"

namespace pghaul::agent {
namespace {

using Values = std::map<std::string, std::string>;

constexpr absl::Duration kPollInterval = absl::Milliseconds(200);
constexpr absl::Duration kSingleUserTimeout = absl::Minutes(10);
// What pgBackRest's restore writes into postgresql.auto.conf (--archive-mode=off, the recovery
// options, pghaul's wal_retrieve_retry_interval): none of it may outlive the rehearsal, and
// archive_mode='off' would otherwise stay (Patroni sanitizes only the recovery settings).
constexpr const char* kResetSettings[] = {"archive_mode",
                                          "restore_command",
                                          "recovery_target",
                                          "recovery_target_action",
                                          "recovery_target_timeline",
                                          "recovery_target_lsn",
                                          "recovery_target_time",
                                          "recovery_target_xid",
                                          "recovery_target_name",
                                          "recovery_target_inclusive",
                                          "wal_retrieve_retry_interval"};

bool Exists(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0;
}

bool HasControlCharacter(absl::string_view text) {
  for (char c : text) {
    if (absl::ascii_iscntrl(static_cast<unsigned char>(c))) return true;
  }
  return false;
}

std::string QuoteIdentifier(absl::string_view name) {
  return absl::StrCat("\"", absl::StrReplaceAll(name, {{"\"", "\"\""}}), "\"");
}

std::string QuoteLiteral(absl::string_view text) {
  return absl::StrCat("'", absl::StrReplaceAll(text, {{"'", "''"}}), "'");
}

std::vector<std::string> WithPrefix(const std::vector<std::string>& prefix,
                                    std::vector<std::string> argv) {
  std::vector<std::string> full = prefix;
  full.insert(full.end(), std::make_move_iterator(argv.begin()),
              std::make_move_iterator(argv.end()));
  return full;
}

std::vector<std::string> ChildEnvironment() {
  return {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "LC_ALL=C"};
}

absl::StatusOr<ControlData> ReadControlData(const RestoredDataEnvironment& env) {
  SubprocessSpec spec;
  spec.argv =
      WithPrefix(env.run_as_prefix, {env.pg_bin_dir + "/pg_controldata", "-D", env.data_directory});
  spec.env = ChildEnvironment();
  spec.timeout = absl::Seconds(30);
  PGH_ASSIGN_OR_RETURN(CapturedOutput output, RunAndCapture(spec));
  if (!output.result.Succeeded()) {
    return absl::FailedPreconditionError(
        absl::StrCat("pg_controldata ", output.result.Describe(), ": ",
                     absl::StripAsciiWhitespace(output.stderr_text)));
  }
  return ParseControlData(output.stdout_text);
}

ServiceControlConfig PrivateServer(const RestoredDataEnvironment& env, const std::string& dir) {
  ServiceControlConfig service = PgCtlService(env);
  service.log_file = dir + "/recovery.log";
  // Command-line settings win over postgresql.conf and postgresql.auto.conf: nobody but this
  // user reaches the server, and it archives nothing (not into the source's stanza, not into
  // the target's) while it finishes the source's recovery.
  service.pg_ctl_options = {absl::StrCat("-c listen_addresses='' -c unix_socket_directories='", dir,
                                         "' -c hba_file='", dir,
                                         "/pg_hba.conf' -c archive_mode=off "
                                         "-c logging_collector=off")};
  return service;
}

// Runs the private recovery: start, wait for production, stop. Returns the control data seen.
absl::StatusOr<ControlData> RecoverPrivately(const RestoredDataEnvironment& env,
                                             const std::string& dir,
                                             const std::function<void(absl::string_view)>& on_line,
                                             const std::function<bool()>& cancelled) {
  PGH_RETURN_IF_ERROR(WriteFileAtomicallyWithMode(
      dir + "/pg_hba.conf", "# pghaul: private recovery of a restored copy\nlocal all all trust\n",
      0600));
  const ServiceControlConfig service = PrivateServer(env, dir);
  auto line = [&on_line](Stream, absl::string_view text) {
    if (on_line) on_line(text);
  };
  v1::ServiceAction start;
  start.set_action(v1::ServiceAction::START);
  start.set_wait_seconds(env.wait_seconds);
  if (on_line) on_line("finishing the restored copy's recovery in a private server");
  absl::StatusOr<Values> started = RunServiceAction(service, start, line);
  if (!started.ok()) {
    // (RunServiceAction's message ends with the server log's last lines.)
    return absl::FailedPreconditionError(absl::StrCat(
        "the private server on the restored copy did not start: ", started.status().message()));
  }
  v1::ServiceAction stop;
  stop.set_action(v1::ServiceAction::STOP);
  stop.set_stop_mode("fast");
  // Stopped on every way out, so no private server outlives the task.
  absl::Cleanup stop_server = [&] {
    absl::StatusOr<Values> stopped = RunServiceAction(service, stop, line);
    if (!stopped.ok())
      PGH_LOG_WARN("patroni restore: private stop: {}", stopped.status().message());
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(env.wait_seconds);
  ControlData control;
  while (true) {
    PGH_ASSIGN_OR_RETURN(control, ReadControlData(env));
    if (control.state == "in production") break;
    if (!Exists(env.data_directory + "/postmaster.pid")) {
      return absl::FailedPreconditionError(
          absl::StrCat("the private server stopped before the restored copy reached "
                       "production (cluster state: ",
                       control.state, "); its log ends: ", ServerLogTail(service.log_file)));
    }
    if (cancelled && cancelled()) {
      return absl::CancelledError("cancelled during the restored copy's private recovery");
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("the restored copy did not reach production within ", env.wait_seconds,
                       " s (cluster state: ", control.state,
                       "); its log ends: ", ServerLogTail(service.log_file)));
    }
    absl::SleepFor(kPollInterval);
  }
  std::move(stop_server).Cancel();
  PGH_ASSIGN_OR_RETURN(Values stopped, RunServiceAction(service, stop, line));
  if (on_line) {
    on_line(absl::StrCat("the restored copy is in production on timeline ", control.timeline,
                         "; private server stopped (", stopped["detail"], ")"));
  }
  return control;
}

// postgres --single on database postgres with `script` on stdin (from a 0600 file, removed at
// once). Errors carry single-user mode's ERROR/FATAL lines, which quote statements but never
// the password: a failing ALTER ROLE reports the role's name only.
absl::Status RunSingleUser(const RestoredDataEnvironment& env, const std::string& dir,
                           const std::string& script) {
  const std::string path = dir + "/roles.sql";
  PGH_RETURN_IF_ERROR(WriteFileAtomicallyWithMode(path, script, 0600));
  absl::Cleanup remove = [&path] { unlink(path.c_str()); };
  SubprocessSpec spec;
  spec.argv = WithPrefix(env.run_as_prefix,
                         {env.pg_bin_dir + "/postgres", "--single", "-D", env.data_directory, "-c",
                          "listen_addresses=", "-c", "archive_mode=off", "-c", "log_statement=none",
                          "-c", "log_min_error_statement=panic", "postgres"});
  spec.env = ChildEnvironment();
  spec.stdin_path = path;
  spec.timeout = kSingleUserTimeout;
  PGH_ASSIGN_OR_RETURN(CapturedOutput output, RunAndCapture(spec));
  std::vector<std::string> errors;
  for (absl::string_view text :
       {absl::string_view(output.stdout_text), absl::string_view(output.stderr_text)}) {
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      if (absl::StrContains(line, "ERROR:") || absl::StrContains(line, "FATAL:") ||
          absl::StrContains(line, "PANIC:")) {
        errors.emplace_back(absl::StripAsciiWhitespace(line));
      }
    }
  }
  if (!output.result.Succeeded() || !errors.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("single-user mode on the restored copy ", output.result.Describe(),
                     errors.empty() ? "" : absl::StrCat(": ", absl::StrJoin(errors, "; "))));
  }
  return absl::OkStatus();
}

}  // namespace

ServiceControlConfig PgCtlService(const RestoredDataEnvironment& env) {
  ServiceControlConfig service;
  service.method = ServiceControlConfig::Method::kPgCtl;
  service.pg_ctl = env.pg_bin_dir + "/pg_ctl";
  service.data_directory = env.data_directory;
  service.run_as_prefix = env.run_as_prefix;
  return service;
}

absl::StatusOr<ControlData> ParseControlData(absl::string_view text) {
  ControlData data;
  bool state = false, sysid = false, timeline = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    absl::string_view key = absl::StripAsciiWhitespace(line.substr(0, colon));
    absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
    if (key == "Database cluster state") {
      data.state = std::string(value);
      state = true;
    } else if (key == "Database system identifier") {
      sysid = absl::SimpleAtoi(value, &data.system_identifier);
    } else if (key == "Latest checkpoint's TimeLineID") {
      timeline = absl::SimpleAtoi(value, &data.timeline);
    }
  }
  if (!state || !sysid || !timeline) {
    return absl::InvalidArgumentError(
        "pg_controldata's output lacks the cluster state, system identifier or timeline");
  }
  return data;
}

absl::StatusOr<std::string> PatroniRolesScript(const PatroniFileSettings& settings) {
  struct Role {
    const char* kind;
    const std::string& name;
    const std::optional<std::string>& password;
    const char* attributes;
  };
  const Role roles[] = {
      {"superuser", settings.superuser, settings.superuser_password, "SUPERUSER LOGIN"},
      {"replication", settings.replication, settings.replication_password, "REPLICATION LOGIN"},
      {"rewind", settings.rewind, settings.rewind_password, "LOGIN"},
  };
  std::string script;
  for (const Role& role : roles) {
    if (role.name.empty()) continue;
    if (HasControlCharacter(role.name) ||
        (role.password.has_value() && HasControlCharacter(*role.password))) {
      return absl::InvalidArgumentError(
          absl::StrCat("patroni.yml's ", role.kind, " (", absl::CHexEscape(role.name),
                       ") has a control character in its name or password: single-user mode "
                       "cannot take it; change it in patroni.yml"));
    }
    // Created when missing, then given its attributes and password, as Patroni's own
    // post_bootstrap does for a custom bootstrap.
    absl::StrAppend(&script, "DO $pghaul$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles ",
                    "WHERE rolname = ", QuoteLiteral(role.name), ") THEN CREATE ROLE ",
                    QuoteIdentifier(role.name), "; END IF; END $pghaul$\n");
    absl::StrAppend(
        &script, "ALTER ROLE ", QuoteIdentifier(role.name), " WITH ", role.attributes,
        role.password.has_value() ? absl::StrCat(" PASSWORD ", QuoteLiteral(*role.password)) : "",
        "\n");
    if (std::string(role.kind) == "rewind") {
      for (const char* function :
           {"pg_ls_dir(text, boolean, boolean)", "pg_stat_file(text, boolean)",
            "pg_read_binary_file(text)", "pg_read_binary_file(text, bigint, bigint, boolean)"}) {
        absl::StrAppend(&script, "GRANT EXECUTE ON FUNCTION pg_catalog.", function, " TO ",
                        QuoteIdentifier(role.name), "\n");
      }
    }
  }
  for (const char* setting : kResetSettings) {
    absl::StrAppend(&script, "ALTER SYSTEM RESET ", setting, "\n");
  }
  return script;
}

absl::StatusOr<Values> PrepareRestoredData(const PatroniConfig& config,
                                           const RestoredDataEnvironment& env,
                                           const std::function<void(absl::string_view)>& on_line,
                                           const std::function<bool()>& cancelled) {
  PatroniRestClient client(&config);
  if (RestApiAnswers(client)) {
    return absl::FailedPreconditionError(
        absl::StrCat("Patroni's REST API at ", config.RestApiAddress(),
                     " answers: stop Patroni (patroni STOP) before preparing the restored copy"));
  }
  if (Exists(env.data_directory + "/postmaster.pid")) {
    return absl::FailedPreconditionError(
        absl::StrCat(env.data_directory,
                     "/postmaster.pid exists: a PostgreSQL still runs on the data "
                     "directory (or crashed); stop it before preparing the restored copy"));
  }
  if (Exists(env.data_directory + "/standby.signal")) {
    return absl::FailedPreconditionError(
        "the data directory holds standby.signal: a standby copy follows the source under "
        "Patroni's standby_cluster and is not prepared this way");
  }
  PGH_ASSIGN_OR_RETURN(PatroniFileSettings settings, ReadPatroniFileSettings(config.config_file));
  PGH_ASSIGN_OR_RETURN(std::string script, PatroniRolesScript(settings));
  const std::string dir = env.state_dir + "/patroni-restore";
  PGH_RETURN_IF_ERROR(MakeDirectories(dir, 0700));
  chmod(dir.c_str(), 0700);

  Values values;
  values["recovered"] = "false";
  if (Exists(env.data_directory + "/recovery.signal")) {
    PGH_RETURN_IF_ERROR(RecoverPrivately(env, dir, on_line, cancelled).status());
    values["recovered"] = "true";
  } else {
    PGH_ASSIGN_OR_RETURN(ControlData before, ReadControlData(env));
    if (before.state != "shut down") {
      return absl::FailedPreconditionError(absl::StrCat(
          "the data directory has no recovery.signal and its cluster state is '", before.state,
          "', not 'shut down': it is not a copy restored by pgBackRest and stopped cleanly"));
    }
  }
  if (cancelled && cancelled()) return absl::CancelledError("cancelled before single-user mode");
  if (on_line) on_line("giving Patroni its roles in single-user mode");
  PGH_RETURN_IF_ERROR(RunSingleUser(env, dir, script));
  PGH_ASSIGN_OR_RETURN(ControlData after, ReadControlData(env));
  std::vector<std::string> names;
  for (const std::string* name : {&settings.superuser, &settings.replication, &settings.rewind}) {
    if (!name->empty()) names.push_back(*name);
  }
  values["roles"] = absl::StrJoin(names, ", ");
  values["system_identifier"] = absl::StrCat(after.system_identifier);
  values["timeline"] = absl::StrCat(after.timeline);
  values["state"] = after.state;
  values["detail"] = absl::StrCat("restored copy ready for Patroni: roles ", values["roles"],
                                  ", timeline ", after.timeline);
  return values;
}

std::string EtcdDeleteRangeBody(absl::string_view key) {
  nlohmann::json body = {{"key", absl::Base64Escape(key)}, {"prev_kv", true}};
  return body.dump();
}

std::optional<std::string> AutoConfSetting(absl::string_view text, absl::string_view name) {
  std::optional<std::string> found;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&line, name)) continue;
    line = absl::StripLeadingAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&line, "=")) continue;
    line = absl::StripLeadingAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&line, "'")) continue;
    std::string value;
    bool closed = false;
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '\'' && i + 1 < line.size() && line[i + 1] == '\'') {
        value.push_back('\'');
        ++i;
      } else if (line[i] == '\'') {
        closed = true;
        break;
      } else if (line[i] == '\\' && i + 1 < line.size()) {
        value.push_back(line[++i]);
      } else {
        value.push_back(line[i]);
      }
    }
    if (closed) found = std::move(value);  // the last one wins, as in PostgreSQL
  }
  return found;
}

absl::StatusOr<std::string> StandbyClusterConfig(absl::string_view current,
                                                 absl::string_view restore_command) {
  nlohmann::json config = nlohmann::json::object();
  if (!current.empty()) {
    config = nlohmann::json::parse(current, nullptr, /*allow_exceptions=*/false);
    if (!config.is_object()) {
      return absl::FailedPreconditionError(
          absl::StrCat("Patroni's dynamic configuration in etcd is not a JSON object: ",
                       absl::CHexEscape(current.substr(0, 200))));
    }
  }
  config["standby_cluster"] = {{"restore_command", std::string(restore_command)}};
  return config.dump();
}

namespace {

// What etcd's JSON gateway answered, and which host of patroni.yml.
struct EtcdAnswer {
  std::string host;
  nlohmann::json body;
};

// Refuses what the agent cannot reach etcd with; `by_hand` says what to do instead.
absl::Status CheckEtcdUsable(const PatroniConfig& config, const PatroniFileSettings& settings,
                             absl::string_view by_hand) {
  if (settings.scope.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(config.config_file, " has no scope: cannot tell the cluster's DCS keys"));
  }
  if (!settings.etcd3_unsupported.empty() || settings.etcd3_hosts.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(config.config_file,
                     settings.etcd3_hosts.empty()
                         ? " names no etcd3 host or hosts"
                         : absl::StrCat(" asks for what the agent cannot do with etcd (",
                                        absl::StrJoin(settings.etcd3_unsupported, ", "), ")"),
                     ": ", by_hand));
  }
  return absl::OkStatus();
}

// POST `target` with `body` to each etcd3 host of patroni.yml in turn, until one answers 200
// with a JSON object.
absl::StatusOr<EtcdAnswer> EtcdPost(const PatroniConfig& config,
                                    const PatroniFileSettings& settings, absl::string_view target,
                                    const std::string& body, absl::string_view by_hand) {
  std::vector<std::string> errors;
  for (const std::string& host_port : settings.etcd3_hosts) {
    HttpRequest request;
    request.method = "POST";
    PGH_RETURN_IF_ERROR(SplitHostPort(host_port, &request.host, &request.port));
    request.target = std::string(target);
    request.headers.emplace_back("Content-Type", "application/json");
    request.body = body;
    request.timeout = config.request_timeout;
    absl::StatusOr<HttpResponse> response = SendHttpRequest(request);
    if (!response.ok()) {
      errors.push_back(absl::StrCat(host_port, ": ", response.status().message()));
      continue;
    }
    nlohmann::json json = nlohmann::json::parse(response->body, nullptr, false);
    if (response->status_code != 200 || !json.is_object()) {
      errors.push_back(absl::StrCat(host_port, ": HTTP ", response->status_code, " ",
                                    response->body.substr(0, 200)));
      continue;
    }
    return EtcdAnswer{host_port, std::move(json)};
  }
  return absl::FailedPreconditionError(absl::StrCat("no etcd host of ", config.config_file,
                                                    " answered: ", absl::StrJoin(errors, "; "),
                                                    "; ", by_hand));
}

// The value of the first key-value in a Range or DeleteRange answer (`field` "kvs" or
// "prev_kvs"), base64-decoded; nullopt when there is none.
std::optional<std::string> FirstValue(const nlohmann::json& answer, const char* field) {
  if (!answer.contains(field) || !answer[field].is_array() || answer[field].empty() ||
      !answer[field][0].is_object() || !answer[field][0].contains("value") ||
      !answer[field][0]["value"].is_string()) {
    return std::nullopt;
  }
  std::string value;
  if (!absl::Base64Unescape(answer[field][0]["value"].get<std::string>(), &value)) {
    return std::nullopt;
  }
  return value;
}

absl::Status RefuseWhileRunning(const PatroniConfig& config, absl::string_view what) {
  PatroniRestClient client(&config);
  if (!RestApiAnswers(client)) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("Patroni's REST API at ", config.RestApiAddress(),
                   " answers: stop Patroni (patroni STOP) ", what));
}

// Deletes <prefix>initialize. values: deleted, previous, etcd, key, detail.
absl::StatusOr<Values> DeleteInitializeKey(const PatroniConfig& config,
                                           const PatroniFileSettings& settings,
                                           const std::function<void(absl::string_view)>& on_line) {
  const std::string key = settings.ClusterPrefix() + "initialize";
  const std::string by_hand = absl::StrCat("delete the key ", key, " by hand (etcdctl del ", key,
                                           ") with Patroni stopped, then resume the phase");
  PGH_RETURN_IF_ERROR(CheckEtcdUsable(config, settings, by_hand));
  PGH_ASSIGN_OR_RETURN(EtcdAnswer answer, EtcdPost(config, settings, "/v3/kv/deleterange",
                                                   EtcdDeleteRangeBody(key), by_hand));
  const nlohmann::json& json = answer.body;
  Values values;
  values["etcd"] = answer.host;
  values["key"] = key;
  // int64 fields are strings in etcd's JSON, and a zero one is left out.
  values["deleted"] = "0";
  if (json.contains("deleted") && json["deleted"].is_string()) {
    values["deleted"] = json["deleted"].get<std::string>();
  } else if (json.contains("deleted") && json["deleted"].is_number_integer()) {
    values["deleted"] = absl::StrCat(json["deleted"].get<int64_t>());
  }
  values["previous"] = FirstValue(json, "prev_kvs").value_or("");
  values["detail"] = values["deleted"] == "0"
                         ? absl::StrCat(key, " was not set")
                         : absl::StrCat("deleted ", key, " (it held ", values["previous"], ")");
  if (on_line) on_line(values["detail"]);
  PGH_LOG_INFO("patroni: {} via etcd {}", values["detail"], answer.host);
  return values;
}

}  // namespace

absl::StatusOr<Values> ClearInitializeKey(const PatroniConfig& config,
                                          const std::function<void(absl::string_view)>& on_line) {
  PGH_RETURN_IF_ERROR(RefuseWhileRunning(config, "before clearing its initialize key"));
  PGH_ASSIGN_OR_RETURN(PatroniFileSettings settings, ReadPatroniFileSettings(config.config_file));
  return DeleteInitializeKey(config, settings, on_line);
}

absl::StatusOr<Values> RoleVerifiers(const PatroniConfig& config) {
  PGH_ASSIGN_OR_RETURN(PatroniFileSettings settings, ReadPatroniFileSettings(config.config_file));
  struct Role {
    const char* kind;
    const std::string& name;
    const std::optional<std::string>& password;
  };
  const Role roles[] = {{"superuser", settings.superuser, settings.superuser_password},
                        {"replication", settings.replication, settings.replication_password},
                        {"rewind", settings.rewind, settings.rewind_password}};
  Values values;
  for (const Role& role : roles) {
    if (role.name.empty()) continue;
    values[role.kind] = role.name;
    if (!role.password.has_value()) continue;
    PGH_ASSIGN_OR_RETURN(std::string verifier, NewScramSha256Verifier(*role.password));
    values[absl::StrCat(role.kind, "_verifier")] = std::move(verifier);
  }
  return values;
}

absl::StatusOr<Values> FollowArchive(const PatroniConfig& config,
                                     const RestoredDataEnvironment& env,
                                     const std::function<void(absl::string_view)>& on_line) {
  PGH_RETURN_IF_ERROR(RefuseWhileRunning(config, "before making it follow the archive"));
  if (!Exists(env.data_directory + "/standby.signal")) {
    return absl::FailedPreconditionError(absl::StrCat(
        env.data_directory,
        " holds no standby.signal: FOLLOW_ARCHIVE is for a copy pgBackRest restored with "
        "--type=standby"));
  }
  const std::string auto_conf = env.data_directory + "/postgresql.auto.conf";
  PGH_ASSIGN_OR_RETURN(std::string text, ReadFile(auto_conf));
  std::optional<std::string> restore_command = AutoConfSetting(text, "restore_command");
  if (!restore_command.has_value() || restore_command->empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        auto_conf, " has no restore_command: restore the standby copy with pgBackRest first"));
  }
  PGH_ASSIGN_OR_RETURN(PatroniFileSettings settings, ReadPatroniFileSettings(config.config_file));
  const std::string key = settings.ClusterPrefix() + "config";
  const std::string by_hand = absl::StrCat(
      "set standby_cluster.restore_command in Patroni's dynamic configuration (", key,
      ") and delete ", settings.ClusterPrefix(), "initialize by hand, with Patroni stopped");
  PGH_RETURN_IF_ERROR(CheckEtcdUsable(config, settings, by_hand));
  PGH_ASSIGN_OR_RETURN(EtcdAnswer current,
                       EtcdPost(config, settings, "/v3/kv/range",
                                nlohmann::json{{"key", absl::Base64Escape(key)}}.dump(), by_hand));
  PGH_ASSIGN_OR_RETURN(
      std::string updated,
      StandbyClusterConfig(FirstValue(current.body, "kvs").value_or(""), *restore_command));
  PGH_RETURN_IF_ERROR(EtcdPost(config, settings, "/v3/kv/put",
                               nlohmann::json{{"key", absl::Base64Escape(key)},
                                              {"value", absl::Base64Escape(updated)}}
                                   .dump(),
                               by_hand)
                          .status());
  if (on_line) on_line(absl::StrCat("etcd: ", key, " has standby_cluster.restore_command"));
  PGH_LOG_INFO("patroni: {} now has standby_cluster.restore_command = {}", key, *restore_command);
  PGH_ASSIGN_OR_RETURN(Values deleted, DeleteInitializeKey(config, settings, on_line));
  Values values;
  values["restore_command"] = *restore_command;
  values["initialize_deleted"] = deleted["deleted"];
  values["etcd"] = current.host;
  values["detail"] = absl::StrCat("Patroni's configuration (", key,
                                  ") follows the source's archive; ", deleted["detail"]);
  return values;
}

}  // namespace pghaul::agent
