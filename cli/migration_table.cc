#include "cli/migration_table.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/agent_table.h"
#include "cli/progress_bar.h"
#include "cli/task_table.h"
#include "cli/text_layout.h"
#include "common/time_proto.h"
#include "google/protobuf/util/json_util.h"

namespace pghaul::cli {
namespace {

constexpr absl::string_view kMissing = "-";
constexpr size_t kPhaseNameWidth = 14;  // "prepare-source"

std::string OrMissing(absl::string_view text) {
  return text.empty() ? std::string(kMissing) : Printable(text);
}

// "2023-11-14 22:13:20 CET (3s ago)", "... (in 2h)" for a time ahead, or "-" when unset.
std::string LocalTimeAndRelative(bool present, const google::protobuf::Timestamp& timestamp,
                                 absl::Time now, absl::TimeZone zone) {
  if (!present) return std::string(kMissing);
  absl::Time time = FromProto(timestamp);
  std::string relative = time > now + absl::Seconds(1)
                             ? absl::StrCat("in ", HumanDuration(time - now))
                             : HumanAgo(now - time);
  return absl::StrCat(absl::FormatTime("%Y-%m-%d %H:%M:%S %Z", time, zone), " (", relative, ")");
}

std::string SourceToTarget(const v1::MigrationInfo& migration) {
  return absl::StrCat(OrMissing(migration.source_agent()), " -> ",
                      OrMissing(migration.target_agent()));
}

// From the phase's start to its end, or to `now` while it has not ended.
std::string PhaseDuration(const v1::PhaseInfo& phase, absl::Time now) {
  if (!phase.has_started_at()) return std::string(kMissing);
  absl::Time started = FromProto(phase.started_at());
  if (phase.has_finished_at()) return HumanDuration(FromProto(phase.finished_at()) - started);
  if (phase.state() == "running") return absl::StrCat(HumanDuration(now - started), " so far");
  return std::string(kMissing);
}

std::string PhaseTable(const v1::MigrationInfo& migration, absl::Time now, absl::TimeZone zone) {
  std::vector<std::vector<std::string>> rows = {
      {"PHASE", "STATE", "ATTEMPT", "STARTED", "DURATION", "MESSAGE"}};
  for (const v1::PhaseInfo& phase : migration.phases()) {
    std::string message = Truncate(Printable(phase.message()), kPhaseMessageWidth);
    rows.push_back({
        OrMissing(phase.name()),
        OrMissing(phase.state()),
        phase.attempt() > 0 ? absl::StrCat(phase.attempt()) : std::string(kMissing),
        phase.has_started_at() ? LocalClockTime(FromProto(phase.started_at()), now, zone)
                               : std::string(kMissing),
        PhaseDuration(phase, now),
        message.empty() ? std::string(kMissing) : message,
    });
  }
  return RenderColumns(rows, "  ");
}

std::string CheckTable(const google::protobuf::RepeatedPtrField<v1::CheckResult>& checks,
                       bool with_fix) {
  std::vector<std::vector<std::string>> rows = {
      {"CHECK", "STATUS", "SOURCE", "TARGET", with_fix ? "FIX" : "MESSAGE"}};
  for (const v1::CheckResult& check : checks) {
    // A check that passed needs no fix; one that did not may only explain itself.
    std::string last =
        with_fix && !check.fix().empty() ? Printable(check.fix()) : Printable(check.message());
    rows.push_back({
        OrMissing(check.name()),
        OrMissing(check.status()),
        OrMissing(Truncate(check.source(), kCheckValueWidth)),
        OrMissing(Truncate(check.target(), kCheckValueWidth)),
        last.empty() ? std::string(kMissing) : last,
    });
  }
  return RenderColumns(rows, "  ");
}

std::string VerifyReportText(const v1::VerifyReport& report, absl::Time now, absl::TimeZone zone) {
  std::string out =
      absl::StrCat("Verify: ", report.passed() ? "passed" : "FAILED", " (",
                   report.objects_matching(), " of ", report.objects_compared(), " objects match)");
  if (report.has_finished_at()) {
    absl::StrAppend(&out, ", finished ",
                    LocalClockTime(FromProto(report.finished_at()), now, zone));
  }
  absl::StrAppend(&out, "\n");
  if (!report.differences().empty()) {
    std::vector<std::vector<std::string>> rows = {
        {"OBJECT", "STATUS", "SOURCE ROWS", "TARGET ROWS", "DETAIL"}};
    // Data objects are named as they are; schema objects with their kind first ("index
    // app/public.orders_pkey").
    auto object = [](const v1::TableComparison& table) {
      const std::string& kind = table.kind();
      if (kind.empty() || kind == "rows" || kind == "large objects" || kind == "sequence value") {
        return OrMissing(table.table());
      }
      return OrMissing(absl::StrCat(kind, " ", table.table()));
    };
    for (const v1::TableComparison& table : report.differences()) {
      const std::string& kind = table.kind();
      // Schema objects have no rows.
      const bool schema = !kind.empty() && kind != "rows" && kind != "large objects" &&
                          kind != "sequence value";
      rows.push_back({object(table), OrMissing(table.status()),
                      schema ? std::string(kMissing) : absl::StrCat(table.source_rows()),
                      schema ? std::string(kMissing) : absl::StrCat(table.target_rows()),
                      OrMissing(table.detail())});
    }
    absl::StrAppend(&out, RenderColumns(rows, "  "));
    // Where each table's rows differ, located by primary key.
    for (const v1::TableComparison& table : report.differences()) {
      if (table.rows().empty() && table.locate().empty()) continue;
      std::vector<std::string> keys;
      for (const v1::RowDifference& row : table.rows()) {
        std::string change = row.change();
        if (change == "missing-on-target") change = "missing on target";
        if (change == "missing-on-source") change = "missing on source";
        keys.push_back(absl::StrCat(row.key(), " (", change, ")"));
      }
      std::string line = absl::StrCat("  ", Printable(table.table()), ": ");
      if (!keys.empty()) {
        absl::StrAppend(&line, "rows differ at ", Printable(absl::StrJoin(keys, ", ")));
        const uint64_t total =
            std::max<uint64_t>(table.rows_differing(), static_cast<uint64_t>(keys.size()));
        if (total > keys.size()) absl::StrAppend(&line, " and ", total - keys.size(), " more");
        if (table.locate() != "located") absl::StrAppend(&line, " (", Printable(table.locate()), ")");
      } else {
        absl::StrAppend(&line, Printable(table.locate()));
      }
      absl::StrAppend(&out, line, "\n");
    }
  }
  if (!report.application_checks().empty()) {
    absl::StrAppend(&out, "\nApplication checks\n",
                    CheckTable(report.application_checks(), /*with_fix=*/false));
  }
  return out;
}

absl::StatusOr<std::string> CompactJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot convert ", message.GetTypeName(), " to JSON: ", status.ToString()));
  }
  return json;
}

// How the times of a report are labelled: "local" for the system's zone, else its name.
std::string ZoneLabel(absl::TimeZone zone) {
  return zone == absl::LocalTimeZone() ? "local" : zone.name();
}

}  // namespace

bool MigrationIsActive(absl::string_view state) {
  return state == "running" || state == "scheduled" || state == "aborting";
}

std::string LocalClockTime(absl::Time time, absl::Time now, absl::TimeZone zone) {
  if (absl::ToCivilDay(time, zone) == absl::ToCivilDay(now, zone)) {
    return absl::FormatTime("%H:%M:%S", time, zone);
  }
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", time, zone);
}

std::string FormatMigrationTable(const v1::ListMigrationsResponse& response, absl::Time now) {
  if (response.migrations().empty()) {
    return "No migrations: `pghaul plan apply FILE` creates one (docs/plan.md).\n";
  }
  std::vector<std::vector<std::string>> rows = {
      {"MIGRATION", "STATE", "PHASE", "SOURCE -> TARGET", "UPDATED"}};
  for (const v1::MigrationInfo& migration : response.migrations()) {
    rows.push_back({
        OrMissing(migration.migration_id()),
        OrMissing(migration.state()),
        OrMissing(migration.phase()),
        SourceToTarget(migration),
        migration.has_updated_at() ? HumanAgo(now - FromProto(migration.updated_at()))
                                   : std::string(kMissing),
    });
  }
  return RenderColumns(rows);
}

namespace {

Section ReplicationLagSection(const v1::ReplicationLag& lag, absl::Time now,
                              absl::TimeZone zone) {
  Section section{"Replication (the standby target against the source)", {}};
  std::string source = OrMissing(lag.source_lsn());
  if (!lag.source_last_archived_wal().empty()) {
    absl::StrAppend(&source, ", last archived ", Printable(lag.source_last_archived_wal()));
    if (lag.has_source_last_archived_at()) {
      absl::StrAppend(&source, " at ",
                      LocalClockTime(FromProto(lag.source_last_archived_at()), now, zone));
    }
  }
  section.Add("Source LSN", source);
  std::string target =
      lag.target_replay_lsn().empty() ? "nothing replayed" : Printable(lag.target_replay_lsn());
  if (lag.has_target_last_replay_at()) {
    absl::StrAppend(&target, ", last replayed commit from ",
                    LocalClockTime(FromProto(lag.target_last_replay_at()), now, zone));
  }
  section.Add("Target replay LSN", target);
  std::string behind = lag.lag_bytes() == 0 ? "caught up (0 B)" : HumanBytes(lag.lag_bytes());
  if (lag.lag_bytes() > 0) {
    absl::StrAppend(&behind, ", ",
                    lag.has_lag_seconds() ? absl::StrFormat("%.1fs", lag.lag_seconds())
                                          : std::string("seconds unknown (no commit replayed)"));
  }
  section.Add("Lag", behind);
  section.Add("Measured", LocalTimeAndRelative(lag.has_measured_at(), lag.measured_at(), now, zone));
  return section;
}

}  // namespace

std::string FormatReplicationLag(const v1::ReplicationLag& lag, absl::Time now,
                                 absl::TimeZone zone) {
  return RenderSections({ReplicationLagSection(lag, now, zone)});
}

namespace {

bool ShowsLag(const v1::MigrationInfo& migration) {
  return migration.has_lag() && migration.lag().has_measured_at();
}

}  // namespace

std::string FormatMigrationStatus(const v1::MigrationInfo& migration, absl::Time now,
                                  absl::TimeZone zone) {
  Section section{"Migration", {}};
  section.Add("ID", OrMissing(migration.migration_id()));
  section.Add("State", OrMissing(migration.state()));
  std::string phase = OrMissing(migration.phase());
  if (!migration.goal().empty() && MigrationIsActive(migration.state())) {
    absl::StrAppend(&phase, " (running until ", Printable(migration.goal()), ")");
  }
  section.Add("Phase", phase);
  section.Add("Source -> target", SourceToTarget(migration));
  section.Add("Stanza", OrMissing(migration.stanza()));
  section.Add("Repository", OrMissing(migration.repository()));
  if (!migration.restore_mode().empty()) {
    section.Add("Restore mode", Printable(migration.restore_mode()));
  }
  if (migration.target_manager() == "patroni") section.Add("Target managed by", "Patroni");
  if (migration.has_not_before()) {
    section.Add("Not before", LocalTimeAndRelative(true, migration.not_before(), now, zone));
  }
  if (!migration.backup_label().empty()) {
    std::string backup = Printable(migration.backup_label());
    if (migration.backup_bytes() > 0) {
      absl::StrAppend(&backup, ", ", HumanBytes(migration.backup_bytes()));
    }
    section.Add("Backup", backup);
  }
  if (migration.downtime_seconds() > 0) {
    section.Add("Downtime", absl::StrFormat("%.1fs", migration.downtime_seconds()));
  }
  if (migration.has_cutover_compare()) {
    const v1::VerifyReport& exact = migration.cutover_compare();
    section.Add("Cutover compare",
                absl::StrCat(exact.passed() ? "passed" : "FAILED", " (", exact.objects_matching(),
                             " of ", exact.objects_compared(), " objects match, at the final LSN)"));
  }
  if (!migration.new_stanza().empty()) {
    section.Add("Target's stanza",
                migration.new_stanza_backup_label().empty()
                    ? absl::StrCat(Printable(migration.new_stanza()), " (no backup yet)")
                    : absl::StrCat(Printable(migration.new_stanza()), ", first full backup ",
                                   Printable(migration.new_stanza_backup_label())));
  }
  if (!migration.current_task_id().empty()) {
    section.Add("Current task",
                absl::StrCat(Printable(migration.current_task_id()), " (`pghaul task show ",
                             Printable(migration.current_task_id()), "`)"));
  }
  if (migration.has_progress()) {
    std::string progress = ProgressSummary(migration.progress());
    if (!progress.empty()) section.Add("Progress", progress);
  }
  if (!migration.plan_source().empty()) section.Add("Plan", Printable(migration.plan_source()));
  section.Add("Created",
              LocalTimeAndRelative(migration.has_created_at(), migration.created_at(), now, zone));
  section.Add("Updated",
              LocalTimeAndRelative(migration.has_updated_at(), migration.updated_at(), now, zone));
  std::vector<Section> sections = {section};
  if (ShowsLag(migration)) sections.push_back(ReplicationLagSection(migration.lag(), now, zone));
  std::string out = RenderSections(sections);

  if (!migration.phases().empty()) {
    absl::StrAppend(&out, "\nPhases (times ", ZoneLabel(zone), ")\n",
                    PhaseTable(migration, now, zone));
  }
  if (!migration.preflight().empty()) {
    absl::StrAppend(&out, "\nPreflight checks\n",
                    CheckTable(migration.preflight(), /*with_fix=*/true));
  }
  if (migration.has_verify()) {
    absl::StrAppend(&out, "\n", VerifyReportText(migration.verify(), now, zone));
  }
  if (!migration.events().empty()) {
    absl::StrAppend(&out, "\nRecent events (times ", ZoneLabel(zone), ")\n");
    for (const v1::MigrationEvent& event : migration.events()) {
      absl::StrAppend(&out, "  ", FormatEventLine(event, zone));
    }
  }
  if (!migration.message().empty()) {
    absl::StrAppend(&out, "\n", Printable(migration.message()), "\n");
  }
  return out;
}

std::string FormatEventLine(const v1::MigrationEvent& event, absl::TimeZone zone) {
  std::string time = event.has_time() ? absl::FormatTime("%H:%M:%S", FromProto(event.time()), zone)
                                      : std::string("--:--:--");
  std::string level;
  if (event.level() == "warn") level = "warning: ";
  if (event.level() == "error") level = "error: ";
  return absl::StrCat(time, "  ", PadRight(OrMissing(event.phase()), kPhaseNameWidth), "  ", level,
                      Printable(event.text()), "\n");
}

std::string FormatPlanApplied(const v1::MigrationInfo& migration, bool dry_run, bool replaced) {
  std::string summary =
      absl::StrCat("source ", OrMissing(migration.source_agent()), " -> target ",
                   OrMissing(migration.target_agent()), ", stanza ", OrMissing(migration.stanza()),
                   ", repository ", OrMissing(migration.repository()));
  if (dry_run) {
    return absl::StrCat("plan valid, nothing stored (migration ",
                        OrMissing(migration.migration_id()), ": ", summary, ")\n");
  }
  return absl::StrCat("migration ", OrMissing(migration.migration_id()),
                      replaced ? " planned again (the plan was replaced): " : " planned: ", summary,
                      "; next: pghaul run ", OrMissing(migration.migration_id()), "\n");
}

absl::StatusOr<std::string> FormatPlannedTasks(const v1::StartPhaseResponse& response) {
  if (response.planned().empty()) {
    return std::string("No agent would run anything: the phases asked for have nothing to do.\n");
  }
  // Agents in the order of their first task; each agent's tasks in the controller's order.
  std::vector<std::string> agents;
  std::map<std::string, std::vector<const v1::PlannedTask*>> by_agent;
  for (const v1::PlannedTask& planned : response.planned()) {
    auto [it, inserted] = by_agent.try_emplace(planned.agent_id());
    if (inserted) agents.push_back(planned.agent_id());
    it->second.push_back(&planned);
  }
  std::string out;
  for (const std::string& agent : agents) {
    absl::StrAppend(&out, out.empty() ? "" : "\n", "agent ", OrMissing(agent), " would run:\n");
    int number = 0;
    for (const v1::PlannedTask* planned : by_agent[agent]) {
      absl::StatusOr<std::string> json = CompactJson(planned->task());
      if (!json.ok()) return json.status();
      absl::StrAppend(&out, "  ", ++number, ". [", OrMissing(planned->phase()), "] ",
                      OrMissing(planned->description()), " ", Printable(*json), "\n");
    }
  }
  return out;
}

}  // namespace pghaul::cli
