#include "cli/commands_migrations.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "cli/agent_table.h"
#include "cli/migration_table.h"
#include "cli/task_table.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/time_proto.h"
#include "common/validators.h"
#include "yaml-cpp/yaml.h"

namespace pghaul::cli {
namespace {

constexpr size_t kMaxMigrationIdLength = 63;

// The controller's NotFound for a migration, reworded to say what to run.
absl::Status UnknownMigration(const absl::Status& status, absl::string_view migration_id) {
  if (!absl::IsNotFound(status)) return status;
  return absl::NotFoundError(absl::StrCat("no migration '", Printable(migration_id),
                                          "' is known to the controller; `pghaul migrations` "
                                          "lists them"));
}

// The paths the plan's top-level `checks:` list names, as far as this can tell. A plan that is
// not YAML, or whose `checks` is not a list of absolute paths, yields what it can: the
// controller reports such problems with all the others, in its own words.
std::vector<std::string> CheckPaths(const std::string& plan_yaml) {
  std::vector<std::string> paths;
  try {
    const YAML::Node document = YAML::Load(plan_yaml);
    if (!document.IsMap()) return paths;
    const YAML::Node checks = document["checks"];
    if (!checks.IsSequence()) return paths;
    for (const YAML::Node& item : checks) {
      if (!item.IsScalar() || !absl::StartsWith(item.Scalar(), "/")) continue;
      if (std::find(paths.begin(), paths.end(), item.Scalar()) == paths.end()) {
        paths.push_back(item.Scalar());
      }
    }
  } catch (const YAML::Exception&) {
    // Not YAML: the controller says where and why.
  }
  return paths;
}

std::string PhaseCommandName(const PhaseCommand& command) {
  std::string name = command.command;
  if (!command.restore_mode.empty()) absl::StrAppend(&name, " (", command.restore_mode, ")");
  if (!command.until.empty()) absl::StrAppend(&name, " until ", command.until);
  return name;
}

// "backup of migration m1 started" / "... scheduled for 02:00 (in 3h)".
std::string Accepted(const PhaseCommand& command, const v1::MigrationInfo& migration,
                     absl::Time now, absl::TimeZone zone) {
  std::string text =
      absl::StrCat(PhaseCommandName(command), " of migration ", Printable(command.migration_id));
  if (migration.state() == "scheduled" && migration.has_not_before()) {
    absl::Time start = FromProto(migration.not_before());
    absl::StrAppend(&text, " scheduled for ", LocalClockTime(start, now, zone), " (in ",
                    HumanDuration(start - now), ")");
  } else {
    absl::StrAppend(&text, " started");
  }
  return text;
}

// The sequence number of the migration's newest event, asked for before a command that is then
// followed: the events the command itself causes come after it, and are all printed.
absl::StatusOr<uint64_t> LastEventSeq(ControllerClient& client, absl::string_view migration_id) {
  absl::StatusOr<v1::MigrationInfo> migration =
      client.GetMigration(migration_id, /*events_after=*/0, /*max_events=*/1);
  if (!migration.ok()) return UnknownMigration(migration.status(), migration_id);
  uint64_t last = migration->last_event_seq();
  for (const v1::MigrationEvent& event : migration->events()) last = std::max(last, event.seq());
  return last;
}

}  // namespace

absl::Status CheckChoice(absl::string_view flag, absl::string_view value,
                         absl::Span<const absl::string_view> allowed) {
  if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(flag, flag.empty() ? "" : " ", "must be one of ",
                                                 absl::StrJoin(allowed, ", "), "; got '",
                                                 Printable(value), "'"));
}

absl::Status CheckMigrationId(absl::string_view migration_id) {
  bool valid = !migration_id.empty() && migration_id.size() <= kMaxMigrationIdLength;
  for (size_t i = 0; valid && i < migration_id.size(); ++i) {
    char c = migration_id[i];
    bool letter_or_digit = absl::ascii_islower(c) || absl::ascii_isdigit(c);
    valid = letter_or_digit || (i > 0 && (c == '_' || c == '-'));
  }
  if (valid) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("'", Printable(migration_id),
                   "' is not a migration id: expected the plan's name, 1 to 63 of a-z 0-9 _ -, "
                   "starting with a letter or digit; `pghaul migrations` lists them"));
}

absl::StatusOr<int> ParseTimeOfDay(absl::string_view text) {
  auto invalid = [text] {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a local time of day as HH:MM, 00:00 to 23:59, such as 02:00; got '",
                     Printable(text), "'"));
  };
  std::vector<absl::string_view> parts = absl::StrSplit(text, ':');
  if (parts.size() != 2 || parts[0].empty() || parts[0].size() > 2 || parts[1].size() != 2) {
    return invalid();
  }
  for (absl::string_view part : parts) {
    if (!std::all_of(part.begin(), part.end(), absl::ascii_isdigit)) return invalid();
  }
  int hour = 0;
  int minute = 0;
  if (!absl::SimpleAtoi(parts[0], &hour) || !absl::SimpleAtoi(parts[1], &minute) || hour > 23 ||
      minute > 59) {
    return invalid();
  }
  return hour * 60 + minute;
}

absl::StatusOr<absl::Time> NextOccurrence(absl::string_view time_of_day, absl::Time now,
                                          absl::TimeZone zone) {
  PGH_ASSIGN_OR_RETURN(int minutes, ParseTimeOfDay(time_of_day));
  absl::CivilDay day = absl::ToCivilDay(now, zone);
  for (int days_ahead = 0; days_ahead < 2; ++days_ahead) {
    absl::CivilDay candidate_day = day + days_ahead;
    absl::Time candidate =
        absl::FromCivil(absl::CivilMinute(candidate_day.year(), candidate_day.month(),
                                          candidate_day.day(), minutes / 60, minutes % 60),
                        zone);
    if (candidate > now) return candidate;
  }
  // Tomorrow's occurrence is always ahead; this is for a clock in a zone that skips a day.
  absl::CivilDay later = day + 2;
  return absl::FromCivil(
      absl::CivilMinute(later.year(), later.month(), later.day(), minutes / 60, minutes % 60),
      zone);
}

absl::StatusOr<std::string> RunApplyPlan(ControllerClient& client, const PlanApplication& request,
                                         OutputFormat format) {
  absl::StatusOr<std::string> plan = ReadFile(request.path, kMaxPlanFileBytes);
  if (!plan.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read the plan file: ", plan.status().message()));
  }
  v1::ApplyPlanRequest apply;
  apply.set_plan_yaml(*plan);
  apply.set_source_name(request.path);
  apply.set_dry_run(request.dry_run);
  apply.set_replace(request.replace);
  for (const std::string& path : CheckPaths(*plan)) {
    absl::StatusOr<std::string> check = ReadFile(path, kMaxPlanFileBytes);
    if (!check.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read the check file ", path, " that the plan's `checks` names: ",
                       check.status().message(), "; nothing was sent to the controller"));
    }
    (*apply.mutable_check_files())[path] = *std::move(check);
  }
  absl::StatusOr<v1::MigrationInfo> migration = client.ApplyPlan(apply);
  if (absl::IsAlreadyExists(migration.status()) && !request.replace &&
      !absl::StrContains(migration.status().message(), "--replace")) {
    return absl::AlreadyExistsError(
        absl::StrCat(migration.status().message(),
                     "; `pghaul plan apply FILE --replace` replaces the plan of a migration "
                     "that has not started any phase"));
  }
  if (!migration.ok()) return migration.status();
  if (format == OutputFormat::kJson) return MessageToJson(*migration);
  return FormatPlanApplied(*migration, request.dry_run, request.replace);
}

absl::StatusOr<std::string> RunListMigrations(ControllerClient& client, OutputFormat format,
                                              absl::Time now) {
  PGH_ASSIGN_OR_RETURN(v1::ListMigrationsResponse response, client.ListMigrations());
  if (format == OutputFormat::kTable) return FormatMigrationTable(response, now);
  std::vector<std::string> objects;
  for (const v1::MigrationInfo& migration : response.migrations()) {
    PGH_ASSIGN_OR_RETURN(std::string json, MessageToJsonObject(migration));
    objects.push_back(std::move(json));
  }
  return absl::StrCat("[", absl::StrJoin(objects, ","), "]\n");
}

absl::StatusOr<std::string> RunMigrationStatus(ControllerClient& client,
                                               absl::string_view migration_id, OutputFormat format,
                                               absl::Time now, absl::TimeZone zone) {
  PGH_RETURN_IF_ERROR(CheckMigrationId(migration_id));
  absl::StatusOr<v1::MigrationInfo> migration =
      client.GetMigration(migration_id, /*events_after=*/0, kRecentMigrationEvents);
  if (!migration.ok()) return UnknownMigration(migration.status(), migration_id);
  if (format == OutputFormat::kJson) return MessageToJson(*migration);
  return FormatMigrationStatus(*migration, now, zone);
}

absl::StatusOr<CommandOutput> RunWatch(ControllerClient& client, absl::string_view migration_id,
                                       OutputFormat format, const FollowEnvironment& env) {
  PGH_RETURN_IF_ERROR(CheckMigrationId(migration_id));
  FollowRequest follow;
  follow.migration_id = std::string(migration_id);
  follow.first_max_events = kRecentMigrationEvents;
  follow.retry_first_poll = false;
  follow.format = format;
  return FollowMigration(client, follow, env);
}

absl::StatusOr<CommandOutput> RunPhaseCommand(ControllerClient& client, const PhaseCommand& command,
                                              OutputFormat format, const FollowEnvironment& env) {
  PGH_RETURN_IF_ERROR(CheckMigrationId(command.migration_id));
  PGH_RETURN_IF_ERROR(CheckChoice("the command", command.command, kPhaseCommands));
  if (!command.until.empty())
    PGH_RETURN_IF_ERROR(CheckChoice("--until", command.until, kPhaseNames));
  if (!command.backup_type.empty()) {
    PGH_RETURN_IF_ERROR(CheckChoice("--type", command.backup_type, kBackupTypes));
  }
  if (!command.restore_mode.empty()) {
    PGH_RETURN_IF_ERROR(CheckChoice("--mode", command.restore_mode, kRestoreModes));
  }
  if (!command.set.empty()) PGH_RETURN_IF_ERROR(ValidateBackupLabel(command.set));
  absl::Duration max_downtime = absl::ZeroDuration();
  if (!command.max_downtime.empty()) {
    if (!absl::ParseDuration(command.max_downtime, &max_downtime) ||
        max_downtime <= absl::ZeroDuration() || max_downtime > absl::Hours(24)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--max-downtime: expected a duration above 0 and at most 24h such as 30s, 90s or "
          "1m30s, got \"", command.max_downtime, "\""));
    }
  }

  v1::StartPhaseRequest request;
  request.set_migration_id(command.migration_id);
  request.set_command(command.command);
  request.set_until(command.until);
  request.set_backup_type(command.backup_type);
  request.set_restore_mode(command.restore_mode);
  request.set_set(command.set);
  if (command.not_before.has_value()) *request.mutable_not_before() = ToProto(*command.not_before);
  request.set_dry_run(command.dry_run);
  request.set_max_downtime_seconds(absl::ToDoubleSeconds(max_downtime));
  uint64_t events_before = 0;
  if (!command.dry_run && !command.detach) {
    PGH_ASSIGN_OR_RETURN(events_before, LastEventSeq(client, command.migration_id));
  }
  absl::StatusOr<v1::StartPhaseResponse> response = client.StartPhase(request);
  if (!response.ok()) return UnknownMigration(response.status(), command.migration_id);

  if (command.dry_run) {
    if (format == OutputFormat::kJson) {
      PGH_ASSIGN_OR_RETURN(std::string json, MessageToJson(*response));
      return CommandOutput::Success(std::move(json));
    }
    PGH_ASSIGN_OR_RETURN(std::string planned, FormatPlannedTasks(*response));
    return CommandOutput::Success(absl::StrCat("Dry run of ", PhaseCommandName(command),
                                               " for migration ", Printable(command.migration_id),
                                               ": nothing was started.\n\n", planned));
  }
  const absl::Time now = env.clock->Now();
  if (command.detach) {
    if (format == OutputFormat::kJson) {
      PGH_ASSIGN_OR_RETURN(std::string json, MessageToJson(*response));
      return CommandOutput::Success(std::move(json));
    }
    return CommandOutput::Success(
        absl::StrCat(Accepted(command, response->migration(), now, env.zone), "; `pghaul watch ",
                     Printable(command.migration_id), "` follows it, `pghaul status ",
                     Printable(command.migration_id), "` shows where it is.\n"));
  }
  if (format == OutputFormat::kTable) {
    *env.out << Accepted(command, response->migration(), now, env.zone)
             << "; following it (Ctrl-C stops following, not the migration)\n"
             << std::flush;
  }
  FollowRequest follow;
  follow.migration_id = command.migration_id;
  follow.events_after = events_before;
  follow.format = format;
  return FollowMigration(client, follow, env);
}

absl::StatusOr<CommandOutput> RunAbortMigration(ControllerClient& client,
                                                absl::string_view migration_id, bool detach,
                                                OutputFormat format, const FollowEnvironment& env) {
  PGH_RETURN_IF_ERROR(CheckMigrationId(migration_id));
  uint64_t events_before = 0;
  if (!detach) {
    PGH_ASSIGN_OR_RETURN(events_before, LastEventSeq(client, migration_id));
  }
  absl::StatusOr<v1::MigrationInfo> migration = client.AbortMigration(migration_id);
  if (!migration.ok()) return UnknownMigration(migration.status(), migration_id);
  if (detach) {
    if (format == OutputFormat::kJson) {
      PGH_ASSIGN_OR_RETURN(std::string json, MessageToJson(*migration));
      return CommandOutput::Success(std::move(json));
    }
    return CommandOutput::Success(absl::StrCat("abort of migration ", Printable(migration_id),
                                               " requested (state: ", Printable(migration->state()),
                                               "); `pghaul watch ", Printable(migration_id),
                                               "` follows it.\n"));
  }
  if (format == OutputFormat::kTable) {
    *env.out << "abort of migration " << Printable(migration_id)
             << " requested; following it until the source is back as it was\n"
             << std::flush;
  }
  FollowRequest follow;
  follow.migration_id = std::string(migration_id);
  follow.events_after = events_before;
  follow.goal = FollowGoal::kAbort;
  follow.format = format;
  return FollowMigration(client, follow, env);
}

}  // namespace pghaul::cli
