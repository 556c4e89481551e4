#include "agent/pgbackrest_command.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/task_names.h"
#include "common/validators.h"

namespace pghaul::agent {
namespace {

bool TypeHasTarget(absl::string_view type) { return type == "time" || type == "lsn"; }

// pgBackRest 2.45 allows target-action only with these types (others are refused by pgBackRest
// with error 031, so pghaul refuses them first with a clearer message).
bool TypeAllowsTargetAction(absl::string_view type) {
  return type == "immediate" || type == "time" || type == "lsn";
}

// pgBackRest 2.45 allows target-timeline with default, standby, time and lsn (and name/xid,
// which pghaul does not offer); an empty type means default.
bool TypeAllowsTargetTimeline(absl::string_view type) {
  return type.empty() || type == "default" || type == "standby" || type == "time" || type == "lsn";
}

absl::Status AppendRestoreOptions(const v1::PgBackRestRestore& restore,
                                  std::vector<std::string>& argv) {
  const std::string& type = restore.type();
  if (restore.delta()) argv.push_back("--delta");
  if (!type.empty()) {
    PGH_RETURN_IF_ERROR(ValidateRestoreType(type));
    argv.push_back(absl::StrCat("--type=", type));
  }
  if (TypeHasTarget(type)) {
    if (restore.target().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "restore type '", type, "' needs a target (",
          type == "time" ? "'YYYY-MM-DD HH:MM:SS[.ffffff](+|-)HH[:MM]'" : "an LSN 'X/X'", ")"));
    }
    PGH_RETURN_IF_ERROR(type == "time" ? ValidateTargetTime(restore.target())
                                       : ValidateLsn(restore.target()));
    argv.push_back(absl::StrCat("--target=", restore.target()));
  } else if (!restore.target().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("a restore target is only valid with restore type 'time' or 'lsn', not '",
                     type.empty() ? "default" : type, "'"));
  }
  if (!restore.target_action().empty()) {
    PGH_RETURN_IF_ERROR(ValidateTargetAction(restore.target_action()));
    if (!TypeAllowsTargetAction(type)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "target action is only valid with restore type 'immediate', 'time' or 'lsn', not '",
          type.empty() ? "default" : type, "'"));
    }
    argv.push_back(absl::StrCat("--target-action=", restore.target_action()));
  }
  if (!restore.set().empty()) {
    PGH_RETURN_IF_ERROR(ValidateBackupLabel(restore.set()));
    argv.push_back(absl::StrCat("--set=", restore.set()));
  }
  if (!restore.target_timeline().empty()) {
    PGH_RETURN_IF_ERROR(ValidateTargetTimeline(restore.target_timeline()));
    if (!TypeAllowsTargetTimeline(type)) {
      return absl::InvalidArgumentError(
          absl::StrCat("target timeline is only valid with restore type 'default', 'standby', "
                       "'time' or 'lsn', not '",
                       type, "'"));
    }
    argv.push_back(absl::StrCat("--target-timeline=", restore.target_timeline()));
  }
  if (restore.process_max() != 0) {
    PGH_RETURN_IF_ERROR(ValidateProcessMax(restore.process_max()));
    argv.push_back(absl::StrCat("--process-max=", restore.process_max()));
  }
  if (restore.wal_retrieve_retry_ms() != 0) {
    if (type != "standby") {
      return absl::InvalidArgumentError(absl::StrCat(
          "wal_retrieve_retry_ms is only valid with restore type 'standby', not '",
          type.empty() ? "default" : type, "'"));
    }
    if (restore.wal_retrieve_retry_ms() < 50 || restore.wal_retrieve_retry_ms() > 60000) {
      return absl::InvalidArgumentError(absl::StrCat("wal_retrieve_retry_ms must be 50 to 60000, got ",
                                                     restore.wal_retrieve_retry_ms()));
    }
    argv.push_back(absl::StrCat("--recovery-option=wal_retrieve_retry_interval=",
                                restore.wal_retrieve_retry_ms(), "ms"));
  }
  argv.push_back("--archive-mode=off");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> BuildPgBackRestArgv(const PgBackRestEnvironment& env,
                                                             const v1::PgBackRestCommand& command,
                                                             const std::string& stanza) {
  PGH_RETURN_IF_ERROR(ValidateAbsolutePath(env.binary, "pgbackrest binary"));
  const std::string name = PgBackRestCommandName(command);
  if (name.empty()) {
    return absl::InvalidArgumentError(
        "pgbackrest task names no command: expected one of version, info, stanza-create, check, "
        "backup, restore, verify, expire");
  }
  if (command.has_version()) return std::vector<std::string>{env.binary, "version"};

  PGH_RETURN_IF_ERROR(ValidateMigrationId(command.migration_id()));
  PGH_RETURN_IF_ERROR(ValidateStanza(stanza));
  std::vector<std::string> argv = {
      env.binary,
      absl::StrCat("--config=", ConfigPath(env, command.migration_id())),
      // The secrets (secrets.conf). Given explicitly because with an explicit --config
      // pgBackRest reads no include path by default; restore copies it into restore_command.
      absl::StrCat("--config-include-path=", ConfigIncludePath(env, command.migration_id())),
      absl::StrCat("--stanza=", stanza),
      name,
  };
  switch (command.command_case()) {
    case v1::PgBackRestCommand::kInfo:
      argv.push_back("--output=json");
      break;
    case v1::PgBackRestCommand::kBackup: {
      const v1::PgBackRestBackup& backup = command.backup();
      if (backup.type().empty()) {
        return absl::InvalidArgumentError(
            "backup type is required: expected one of full, diff, incr");
      }
      PGH_RETURN_IF_ERROR(ValidateBackupType(backup.type()));
      argv.push_back(absl::StrCat("--type=", backup.type()));
      if (backup.process_max() != 0) {
        PGH_RETURN_IF_ERROR(ValidateProcessMax(backup.process_max()));
        argv.push_back(absl::StrCat("--process-max=", backup.process_max()));
      }
      if (!backup.compress_type().empty()) {
        PGH_RETURN_IF_ERROR(ValidateCompressType(backup.compress_type()));
        argv.push_back(absl::StrCat("--compress-type=", backup.compress_type()));
      }
      break;
    }
    case v1::PgBackRestCommand::kRestore:
      PGH_RETURN_IF_ERROR(AppendRestoreOptions(command.restore(), argv));
      break;
    case v1::PgBackRestCommand::kExpire:
      if (!command.expire().set().empty()) {
        PGH_RETURN_IF_ERROR(ValidateBackupLabel(command.expire().set()));
        argv.push_back(absl::StrCat("--set=", command.expire().set()));
      }
      break;
    default:
      break;
  }
  return argv;
}

std::vector<std::string> WithRunAsPrefix(const PgBackRestEnvironment& env,
                                         std::vector<std::string> argv) {
  if (env.run_as_prefix.empty()) return argv;
  std::vector<std::string> full = env.run_as_prefix;
  full.insert(full.end(), std::make_move_iterator(argv.begin()),
              std::make_move_iterator(argv.end()));
  return full;
}

std::vector<std::string> PgBackRestChildEnvironment(const PgBackRestEnvironment& env,
                                                    const v1::Secrets& secrets) {
  std::vector<std::string> child = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8",
                                    absl::StrCat("HOME=", env.state_dir)};
  for (std::string& entry : SecretEnvironment(secrets)) child.push_back(std::move(entry));
  return child;
}

}  // namespace pghaul::agent
