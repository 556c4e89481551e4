#include "cli/task_table.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/agent_table.h"
#include "cli/text_layout.h"
#include "common/time_proto.h"

namespace pghaul::cli {
namespace {

constexpr absl::string_view kMissing = "-";

std::string OrMissing(absl::string_view text) {
  return text.empty() ? std::string(kMissing) : Printable(text);
}

bool Finished(const v1::TaskInfo& task) { return task.has_result(); }

// Submission to the end, or to `now` while the task has not ended. Empty when unknown.
std::string DurationCell(const v1::TaskInfo& task, absl::Time now) {
  if (!task.has_created_at()) return "";
  absl::Time created = FromProto(task.created_at());
  if (!Finished(task)) return HumanDuration(now - created);
  if (!task.has_finished_at()) return "";
  return HumanDuration(FromProto(task.finished_at()) - created);
}

std::string ResultStateName(v1::TaskResult::State state) {
  // The controller calls an unspecified result "failed"; so do we.
  if (state == v1::TaskResult::STATE_UNSPECIFIED) return "failed";
  return absl::AsciiStrToLower(v1::TaskResult::State_Name(state));
}

std::string EventKind(const v1::TaskEvent& event) {
  switch (event.kind_case()) {
    case v1::TaskEvent::kLog:
      return OrMissing(event.log().stream());
    case v1::TaskEvent::kProgress:
      return "progress";
    case v1::TaskEvent::kResult:
      return "result";
    case v1::TaskEvent::KIND_NOT_SET:
      break;
  }
  return "?";
}

std::string EventText(const v1::TaskEvent& event) {
  switch (event.kind_case()) {
    case v1::TaskEvent::kLog:
      return Printable(event.log().text());
    case v1::TaskEvent::kProgress:
      return FormatProgress(event.progress(), /*with_bytes=*/true);
    case v1::TaskEvent::kResult: {
      std::string text = ResultStateName(event.result().state());
      if (!event.result().message().empty()) {
        absl::StrAppend(&text, ": ", Printable(event.result().message()));
      }
      return text;
    }
    case v1::TaskEvent::KIND_NOT_SET:
      break;
  }
  return "";
}

Section TaskSection(const v1::TaskInfo& task, absl::Time now) {
  Section section{"Task", {}};
  section.Add("ID", OrMissing(task.task_id()));
  section.Add("Agent", OrMissing(task.agent_id()));
  section.Add("Operation", OrMissing(task.op()));
  section.Add("State", OrMissing(task.state()));
  if (!Finished(task) && task.has_progress()) {
    std::string progress = FormatProgress(task.progress(), /*with_bytes=*/true);
    if (!progress.empty()) section.Add("Progress", progress);
  }
  section.Add("Submitted", TimeAndAgo(task.has_created_at(), task.created_at(), now));
  if (Finished(task)) {
    section.Add("Finished", TimeAndAgo(task.has_finished_at(), task.finished_at(), now));
  }
  std::string duration = DurationCell(task, now);
  if (!duration.empty()) {
    section.Add("Duration", Finished(task) ? duration : absl::StrCat(duration, " so far"));
  }
  std::string events = absl::StrCat(task.events_received(), " received");
  if (task.last_seq() > 0) absl::StrAppend(&events, ", last #", task.last_seq());
  if (task.events_lost() > 0) {
    absl::StrAppend(&events, ", ", task.events_lost(), " lost (e.g. in an agent restart)");
  }
  section.Add("Events", events);
  return section;
}

Section ResultSection(const v1::TaskResult& result) {
  Section section{"Result", {}};
  section.Add("State", ResultStateName(result.state()));
  section.Add("Message", OrMissing(result.message()));
  if (result.exit_code() != 0) section.Add("Exit code", absl::StrCat(result.exit_code()));
  if (result.signal() != 0) section.Add("Signal", absl::StrCat(result.signal()));
  if (!result.info_json().empty()) {
    section.Add("Repository status", absl::StrCat(result.repository_status_code(),
                                                  result.repository_status_code() == 0
                                                      ? " (ok)"
                                                      : " (see pgBackRest's status codes)"));
  }
  if (result.dropped_log_lines() > 0) {
    section.Add("Log lines dropped",
                absl::StrCat(result.dropped_log_lines(), " (the controller fell behind)"));
  }
  return section;
}

Section ValuesSection(const v1::TaskResult& result) {
  // Sorted, so that the output does not depend on the map's order.
  std::map<std::string, std::string> sorted(result.values().begin(), result.values().end());
  Section section{"Values", {}};
  for (const auto& [key, value] : sorted) section.Add(OrMissing(key), Printable(value));
  return section;
}

Section FactsSection(const v1::TaskResult& result, absl::string_view agent_id) {
  const v1::HostFacts& facts = result.facts();
  Section section{"Facts", {}};
  section.Add("Hostname", OrMissing(facts.hostname()));
  if (facts.has_postgres()) {
    const v1::PostgresFacts& postgres = facts.postgres();
    section.Add("PostgreSQL", postgres.reachable()
                                  ? OrMissing(ShortPostgresVersion(postgres))
                                  : absl::StrCat("down: ", OrMissing(postgres.error())));
  }
  section.Add("pgBackRest", OrMissing(facts.pgbackrest_version()));
  if (facts.data_dir_total_bytes() > 0) {
    section.Add("Free disk", absl::StrCat(HumanBytes(facts.data_dir_free_bytes()), " of ",
                                          HumanBytes(facts.data_dir_total_bytes())));
  }
  section.Note(absl::StrCat("(`pghaul agents show ", Printable(agent_id),
                            "` shows every fact; so does `-o json` here)"));
  return section;
}

std::string EventsTable(const v1::TaskInfo& task) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::TaskEvent& event : task.recent_events()) {
    rows.push_back({
        event.has_time()
            ? absl::FormatTime("%H:%M:%S", FromProto(event.time()), absl::UTCTimeZone())
            : std::string(kMissing),
        absl::StrCat("#", event.seq()),
        EventKind(event),
        EventText(event),
    });
  }
  return RenderColumns(rows, "  ");
}

// "task t1 (sql CURRENT_WAL_LSN) on agent db1"
std::string TaskName(const v1::TaskInfo& task) {
  return absl::StrCat("task ", OrMissing(task.task_id()), " (", OrMissing(task.op()), ") on agent ",
                      OrMissing(task.agent_id()));
}

}  // namespace

std::string HumanDuration(absl::Duration duration) {
  if (duration <= absl::ZeroDuration()) return "0s";
  if (duration < absl::Seconds(1)) return "<1s";
  int64_t seconds = absl::ToInt64Seconds(duration);
  struct Unit {
    int64_t seconds;
    const char* name;
  };
  static constexpr Unit kUnits[] = {{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}};
  // The two largest units that apply; a zero second part is left out ("2m", not "2m0s").
  for (size_t i = 0; i < std::size(kUnits); ++i) {
    if (seconds < kUnits[i].seconds) continue;
    std::string out = absl::StrCat(seconds / kUnits[i].seconds, kUnits[i].name);
    if (i + 1 < std::size(kUnits)) {
      int64_t rest = (seconds % kUnits[i].seconds) / kUnits[i + 1].seconds;
      if (rest > 0) absl::StrAppend(&out, rest, kUnits[i + 1].name);
    }
    return out;
  }
  return "0s";  // not reached: seconds >= 1 here
}

std::string HumanRate(double bytes_per_second) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (!std::isfinite(bytes_per_second) || bytes_per_second < 0) bytes_per_second = 0;
  double value = bytes_per_second;
  size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < std::size(kUnits)) {
    value /= 1024.0;
    ++unit;
  }
  // One decimal only where it carries information (below 10), and never for whole bytes.
  if (unit == 0 || std::round(value * 10.0) / 10.0 >= 10.0) {
    return absl::StrFormat("%.0f %s/s", value, kUnits[unit]);
  }
  return absl::StrFormat("%.1f %s/s", value, kUnits[unit]);
}

std::string FormatProgress(const v1::Progress& progress, bool with_bytes) {
  std::vector<std::string> parts;
  bool percent_known = progress.percent() > 0 || progress.bytes_total() > 0;
  if (percent_known && std::isfinite(progress.percent())) {
    // Rounded down: "100%" only when it is all done.
    double percent = std::clamp(progress.percent(), 0.0, 100.0);
    std::string text = absl::StrCat(static_cast<int>(std::floor(percent)), "%");
    if (with_bytes && progress.bytes_total() > 0) {
      absl::StrAppend(&text, " (", HumanBytes(progress.bytes_done()), " of ",
                      HumanBytes(progress.bytes_total()), ")");
    }
    parts.push_back(std::move(text));
  } else if (progress.bytes_done() > 0) {
    parts.push_back(absl::StrCat(HumanBytes(progress.bytes_done()), " done"));
  }
  if (progress.bytes_per_second() > 0) parts.push_back(HumanRate(progress.bytes_per_second()));
  // 0 is also what an agent that does not estimate sends (proto3's default); -1 is "unknown".
  if (progress.eta_seconds() > 0) {
    parts.push_back(absl::StrCat("ETA ", HumanDuration(absl::Seconds(progress.eta_seconds()))));
  }
  return absl::StrJoin(parts, " ");
}

std::string FormatTaskTable(const google::protobuf::RepeatedPtrField<v1::TaskInfo>& tasks,
                            absl::Time now, bool show_agent, absl::string_view indent) {
  if (tasks.empty()) return "";
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {"TASK",    "OPERATION", "STATE",  "PROGRESS",
                                     "STARTED", "DURATION",  "MESSAGE"};
  if (show_agent) header.insert(header.begin() + 1, "AGENT");
  rows.push_back(std::move(header));
  for (const v1::TaskInfo& task : tasks) {
    std::string progress;
    if (!Finished(task) && task.has_progress()) progress = FormatProgress(task.progress());
    std::string message;
    if (Finished(task)) message = Truncate(Printable(task.result().message()), kTaskMessageWidth);
    std::vector<std::string> row = {
        OrMissing(task.task_id()),
        OrMissing(task.op()),
        OrMissing(task.state()),
        progress.empty() ? std::string(kMissing) : progress,
        task.has_created_at() ? HumanAgo(now - FromProto(task.created_at()))
                              : std::string(kMissing),
        OrMissing(DurationCell(task, now)),
        message.empty() ? std::string(kMissing) : message,
    };
    if (show_agent) row.insert(row.begin() + 1, OrMissing(task.agent_id()));
    rows.push_back(std::move(row));
  }
  return RenderColumns(rows, indent);
}

std::string FormatTaskDetails(const v1::TaskInfo& task, absl::Time now) {
  std::vector<Section> sections = {TaskSection(task, now)};
  if (Finished(task)) {
    const v1::TaskResult& result = task.result();
    sections.push_back(ResultSection(result));
    if (!result.values().empty()) sections.push_back(ValuesSection(result));
    if (result.has_facts()) sections.push_back(FactsSection(result, task.agent_id()));
  }
  std::string out = RenderSections(sections);
  if (Finished(task) && !task.result().info_json().empty()) {
    // pgBackRest's own JSON, whole: operators debugging a repository want every field.
    absl::StrAppend(&out, "\npgBackRest info\n  ", Printable(task.result().info_json()), "\n");
  }
  if (task.recent_events_size() > 0) {
    std::string of_received;
    if (task.events_received() >= static_cast<uint64_t>(task.recent_events_size())) {
      of_received = absl::StrCat(" of ", task.events_received());
    }
    absl::StrAppend(&out, "\nRecent events (last ", task.recent_events_size(), of_received,
                    ", times UTC)\n", EventsTable(task));
  }
  return out;
}

std::string FormatTaskStatusLine(const v1::TaskInfo& task, absl::Time now) {
  std::string line =
      absl::StrCat("task ", OrMissing(task.task_id()), " (", OrMissing(task.op()), " on ",
                   OrMissing(task.agent_id()), "): ", OrMissing(task.state()));
  std::string duration = DurationCell(task, now);
  if (Finished(task)) {
    if (!duration.empty()) absl::StrAppend(&line, " in ", duration);
    return line;
  }
  if (task.state() == "pending") {
    absl::StrAppend(&line, ", waiting for the agent to take it");
  } else if (task.has_progress()) {
    std::string progress = FormatProgress(task.progress());
    if (!progress.empty()) absl::StrAppend(&line, " ", progress);
  }
  if (!duration.empty()) absl::StrAppend(&line, ", ", duration, " so far");
  return line;
}

std::string DescribeTaskEnd(const v1::TaskInfo& task) {
  std::string text = TaskName(task);
  if (!Finished(task)) return absl::StrCat(text, " is still ", OrMissing(task.state()));
  const v1::TaskResult& result = task.result();
  switch (result.state()) {
    case v1::TaskResult::SUCCEEDED:
      absl::StrAppend(&text, " succeeded");
      break;
    case v1::TaskResult::CANCELLED:
      absl::StrAppend(&text, " was cancelled");
      break;
    case v1::TaskResult::REFUSED:
      absl::StrAppend(&text, " was refused by the agent (nothing ran)");
      break;
    default:
      absl::StrAppend(&text, " failed");
      break;
  }
  if (!result.message().empty()) {
    absl::StrAppend(&text, ": ", Printable(result.message()));
  } else if (result.exit_code() != 0) {
    absl::StrAppend(&text, " with exit code ", result.exit_code());
  } else if (result.signal() != 0) {
    absl::StrAppend(&text, " by signal ", result.signal());
  }
  if (result.state() != v1::TaskResult::SUCCEEDED && result.message().empty()) {
    absl::StrAppend(&text, "; `pghaul task show ", OrMissing(task.task_id()),
                    "` shows its last log lines");
  }
  return text;
}

bool TaskSucceeded(const v1::TaskInfo& task) {
  return Finished(task) && task.result().state() == v1::TaskResult::SUCCEEDED;
}

}  // namespace pghaul::cli
