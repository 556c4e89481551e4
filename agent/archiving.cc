#include "agent/archiving.h"

#include <sys/stat.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/pg_connection.h"
#include "agent/server_settings.h"
#include "agent/sql_catalogue.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/validators.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace pghaul::agent {
namespace {

using Values = std::map<std::string, std::string>;

constexpr absl::Duration kStatementTimeout = absl::Seconds(60);
constexpr size_t kMaxSavedFileBytes = 1 << 20;

// reset_val, not setting: pg_settings shows archive_command as "(disabled)" while archive_mode is
// off (a show hook), and reset_val is the raw value (the same as the running one for settings no
// session can SET). sourcefile is NULL for a user without pg_read_all_settings.
constexpr char kReadSettingsSql[] =
    "SELECT name, reset_val, source, sourcefile FROM pg_settings"
    " WHERE name IN ('archive_mode', 'archive_command', 'archive_library')";
// Fixed texts for the values pghaul itself chooses; anything else is quoted by QuoteLiteral.
constexpr char kSetArchiveModeOnSql[] = "ALTER SYSTEM SET archive_mode = 'on'";
constexpr char kSetArchiveModeAlwaysSql[] = "ALTER SYSTEM SET archive_mode = 'always'";
constexpr char kResetArchiveModeSql[] = "ALTER SYSTEM RESET archive_mode";
constexpr char kResetArchiveCommandSql[] = "ALTER SYSTEM RESET archive_command";

// One setting as the server reports it.
struct Setting {
  std::string value;
  // The value comes from postgresql.auto.conf (ALTER SYSTEM). When the file is not visible to
  // the agent's user but the value comes from some configuration file, this is true too: putting
  // the value back with ALTER SYSTEM SET is then right either way.
  bool in_auto_conf = false;
};

struct ArchivingSettings {
  Setting archive_mode;
  Setting archive_command;
  std::string archive_library;  // "" when unset
};

bool ArchivingOn(absl::string_view mode) { return mode == "on" || mode == "always"; }

absl::StatusOr<ArchivingSettings> ReadSettings(PgConnection& conn) {
  PGH_ASSIGN_OR_RETURN(PgResult result, conn.Execute(kReadSettingsSql));
  ArchivingSettings settings;
  bool saw_mode = false;
  bool saw_command = false;
  for (int row = 0; row < result.rows(); ++row) {
    const std::string name = result.Value(row, 0);
    Setting setting;
    setting.value = result.Value(row, 1);
    setting.in_auto_conf =
        result.Value(row, 2) == "configuration file" &&
        (result.IsNull(row, 3) || absl::EndsWith(result.Value(row, 3), "/postgresql.auto.conf"));
    if (name == "archive_mode") {
      settings.archive_mode = std::move(setting);
      saw_mode = true;
    } else if (name == "archive_command") {
      settings.archive_command = std::move(setting);
      saw_command = true;
    } else if (name == "archive_library") {
      settings.archive_library = setting.value;
    }
  }
  if (!saw_mode || !saw_command) {
    return absl::FailedPreconditionError(
        "archive_mode and archive_command are not visible to the agent's database user: it needs "
        "to be a superuser (or hold pg_read_all_settings and ALTER SYSTEM on both parameters)");
  }
  return settings;
}

// A word for /bin/sh, also safe from archive_command's own %-escapes.
std::string ShellWord(absl::string_view word) {
  std::string escaped = absl::StrReplaceAll(word, {{"%", "%%"}});
  const bool plain = !escaped.empty() && std::all_of(escaped.begin(), escaped.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
           absl::string_view("_./=:,+-%").find(c) != absl::string_view::npos;
  });
  if (plain) return escaped;
  return absl::StrCat("'", absl::StrReplaceAll(escaped, {{"'", "'\\''"}}), "'");
}

std::string SavedJson(const ArchivingSettings& settings) {
  google::protobuf::Struct saved;
  auto& fields = *saved.mutable_fields();
  fields["archive_mode"].set_string_value(settings.archive_mode.value);
  fields["archive_mode_in_auto_conf"].set_bool_value(settings.archive_mode.in_auto_conf);
  fields["archive_command"].set_string_value(settings.archive_command.value);
  fields["archive_command_in_auto_conf"].set_bool_value(settings.archive_command.in_auto_conf);
  fields["saved_at"].set_string_value(
      absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone()));
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  // A Struct of strings and bools always converts; an error would be a protobuf bug.
  if (!google::protobuf::util::MessageToJsonString(saved, &json, options).ok()) json.clear();
  return json;
}

absl::StatusOr<ArchivingSettings> ParseSaved(const std::string& json, const std::string& path) {
  google::protobuf::Struct saved;
  auto parsed = google::protobuf::util::JsonStringToMessage(json, &saved);
  auto invalid = [&path](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("the saved archiving settings in ", path,
                                            " cannot be used (", why,
                                            "): put archive_mode and archive_command back by "
                                            "hand, then remove the file"));
  };
  if (!parsed.ok()) return invalid(parsed.ToString());
  const auto& fields = saved.fields();
  auto string_field = [&fields](const char* name) -> std::optional<std::string> {
    auto it = fields.find(name);
    if (it == fields.end() || !it->second.has_string_value()) return std::nullopt;
    return it->second.string_value();
  };
  auto bool_field = [&fields](const char* name) -> std::optional<bool> {
    auto it = fields.find(name);
    if (it == fields.end() || it->second.kind_case() != google::protobuf::Value::kBoolValue) {
      return std::nullopt;
    }
    return it->second.bool_value();
  };
  std::optional<std::string> mode = string_field("archive_mode");
  std::optional<std::string> command = string_field("archive_command");
  std::optional<bool> mode_in_auto = bool_field("archive_mode_in_auto_conf");
  std::optional<bool> command_in_auto = bool_field("archive_command_in_auto_conf");
  if (!mode || !command || !mode_in_auto || !command_in_auto) return invalid("a field is missing");
  if (*mode != "off" && *mode != "on" && *mode != "always") {
    return invalid(
        absl::StrCat("archive_mode '", absl::CHexEscape(*mode), "' is not off|on|always"));
  }
  ArchivingSettings settings;
  settings.archive_mode = {*mode, *mode_in_auto};
  settings.archive_command = {*command, *command_in_auto};
  return settings;
}

absl::Status ValidateBinary(const PgBackRestEnvironment& env) {
  return ValidateAbsolutePath(env.binary, "pgbackrest binary");
}

// Reloads, and says plainly what happened when the reload is not seen.
absl::Status Reload(PgConnection& conn, absl::string_view what) {
  absl::Status reloaded = ReloadConfigurationAndWait(conn);
  if (!reloaded.ok()) {
    return absl::Status(reloaded.code(),
                        absl::StrCat(what,
                                     " written to postgresql.auto.conf, but the reload was not "
                                     "seen: ",
                                     reloaded.message()));
  }
  return absl::OkStatus();
}

}  // namespace

std::string SavedArchivingPath(const PgBackRestEnvironment& env, absl::string_view migration_id) {
  return absl::StrCat(MigrationDirectory(env, migration_id), "/archiving-before.json");
}

std::string ArchiveCommandFor(absl::string_view binary, absl::string_view config_path,
                              absl::string_view config_include_path, absl::string_view stanza) {
  return absl::StrCat(ShellWord(binary), " ", ShellWord(absl::StrCat("--config=", config_path)),
                      " ", ShellWord(absl::StrCat("--config-include-path=", config_include_path)),
                      " ", ShellWord(absl::StrCat("--stanza=", stanza)), " archive-push %p");
}

absl::StatusOr<std::map<std::string, std::string>> EnableArchiving(const PostgresConnection& target,
                                                                   const PgBackRestEnvironment& env,
                                                                   absl::string_view migration_id,
                                                                   absl::string_view stanza) {
  PGH_RETURN_IF_ERROR(ValidateMigrationId(migration_id));
  PGH_RETURN_IF_ERROR(ValidateStanza(stanza));
  PGH_RETURN_IF_ERROR(ValidateBinary(env));
  const std::string config = ConfigPath(env, migration_id);
  const std::string include_path = ConfigIncludePath(env, migration_id);
  // archive-push fails on a missing explicit include path (pgBackRest error 073).
  for (const std::string& needed : {config, include_path}) {
    struct stat st;
    if (stat(needed.c_str(), &st) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("no pgBackRest config for migration ", migration_id, " at ", needed,
                       ": run ConfigurePgBackRest first; nothing was changed"));
    }
  }
  const std::string command = ArchiveCommandFor(env.binary, config, include_path, stanza);

  PgSessionOptions options;
  options.statement_timeout = kStatementTimeout;
  PGH_ASSIGN_OR_RETURN(PgConnection conn, PgConnection::Open(target, options));
  PGH_ASSIGN_OR_RETURN(ArchivingSettings before, ReadSettings(conn));
  if (!before.archive_library.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("archive_library is set to '", absl::CHexEscape(before.archive_library),
                     "', which would be used instead of archive_command: pghaul archives through "
                     "archive_command, so clear archive_library first; nothing was changed"));
  }

  // Saved before anything changes, so a failure below still leaves the originals on disk.
  const std::string saved_path = SavedArchivingPath(env, migration_id);
  PGH_RETURN_IF_ERROR(CheckNoSymlinksBelow(env.state_dir, saved_path));
  absl::StatusOr<std::string> existing = ReadRegularFile(saved_path, kMaxSavedFileBytes);
  if (existing.ok()) {
    PGH_RETURN_IF_ERROR(ParseSaved(*existing, saved_path).status());
  } else if (absl::IsNotFound(existing.status())) {
    PGH_RETURN_IF_ERROR(WriteFileAtomically(saved_path, SavedJson(before), 0600));
    PGH_LOG_INFO("saved archive_mode '{}' and archive_command '{}' of migration {} in {}",
                 before.archive_mode.value, before.archive_command.value, migration_id, saved_path);
  } else {
    return existing.status();
  }

  const bool always = before.archive_mode.value == "always";
  PGH_RETURN_IF_ERROR(
      conn.Execute(always ? kSetArchiveModeAlwaysSql : kSetArchiveModeOnSql).status());
  PGH_RETURN_IF_ERROR(AlterSystemSet(conn, "archive_command", command));
  PGH_RETURN_IF_ERROR(Reload(conn, "archive_mode and archive_command were"));

  PGH_ASSIGN_OR_RETURN(ArchivingSettings after, ReadSettings(conn));
  if (after.archive_command.value != command) {
    return absl::FailedPreconditionError(absl::StrCat(
        "archive_command was written to postgresql.auto.conf but the server still runs '",
        absl::CHexEscape(after.archive_command.value),
        "' after the reload: check the server log for errors in the configuration files"));
  }
  const bool changed =
      before.archive_command.value != command || !ArchivingOn(before.archive_mode.value);
  const bool restart_needed = !ArchivingOn(after.archive_mode.value);
  PGH_LOG_INFO("archiving into stanza {} for migration {}: {}{}", stanza, migration_id,
               changed ? "settings changed" : "already set",
               restart_needed ? "; archive_mode = on waits for a restart" : "");
  return Values{{"restart_needed", restart_needed ? "true" : "false"},
                {"archive_mode_before", before.archive_mode.value},
                {"archive_command_before", before.archive_command.value},
                {"changed", changed ? "true" : "false"}};
}

absl::StatusOr<std::map<std::string, std::string>> RestoreArchiving(
    const PostgresConnection& target, const PgBackRestEnvironment& env,
    absl::string_view migration_id) {
  PGH_RETURN_IF_ERROR(ValidateMigrationId(migration_id));
  const std::string saved_path = SavedArchivingPath(env, migration_id);
  // The values read here go into ALTER SYSTEM: never from a file a link leads to.
  PGH_RETURN_IF_ERROR(CheckNoSymlinksBelow(env.state_dir, saved_path));
  absl::StatusOr<std::string> json = ReadRegularFile(saved_path, kMaxSavedFileBytes);
  if (absl::IsNotFound(json.status())) {
    return absl::NotFoundError(absl::StrCat(
        "no archiving settings were saved for migration ", migration_id, " (", saved_path,
        " does not exist): ENABLE_ARCHIVING never ran on this agent; nothing was "
        "changed"));
  }
  if (!json.ok()) return json.status();
  PGH_ASSIGN_OR_RETURN(ArchivingSettings saved, ParseSaved(*json, saved_path));

  PgSessionOptions options;
  options.statement_timeout = kStatementTimeout;
  PGH_ASSIGN_OR_RETURN(PgConnection conn, PgConnection::Open(target, options));
  if (saved.archive_mode.in_auto_conf) {
    PGH_RETURN_IF_ERROR(AlterSystemSet(conn, "archive_mode", saved.archive_mode.value));
  } else {
    PGH_RETURN_IF_ERROR(conn.Execute(kResetArchiveModeSql).status());
  }
  if (saved.archive_command.in_auto_conf) {
    PGH_RETURN_IF_ERROR(AlterSystemSet(conn, "archive_command", saved.archive_command.value));
  } else {
    PGH_RETURN_IF_ERROR(conn.Execute(kResetArchiveCommandSql).status());
  }
  PGH_RETURN_IF_ERROR(Reload(conn, "the saved archive_mode and archive_command were"));

  PGH_ASSIGN_OR_RETURN(ArchivingSettings after, ReadSettings(conn));
  if (after.archive_command.value != saved.archive_command.value) {
    // Only possible when the value now comes from postgresql.conf and that file was edited since
    // ENABLE_ARCHIVING: the operator's edit wins.
    PGH_LOG_WARN(
        "migration {}: archive_command is now '{}' from the configuration files, not the '{}' "
        "saved before the migration",
        migration_id, after.archive_command.value, saved.archive_command.value);
  }
  const bool restart_needed = after.archive_mode.value != saved.archive_mode.value;
  PGH_LOG_INFO("archiving settings of migration {} put back (archive_mode '{}'{})", migration_id,
               saved.archive_mode.value, restart_needed ? ", after a restart" : "");
  return Values{{"restart_needed", restart_needed ? "true" : "false"}};
}

}  // namespace pghaul::agent
