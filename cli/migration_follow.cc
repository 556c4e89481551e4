#include "cli/migration_follow.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli/agent_table.h"
#include "cli/migration_table.h"
#include "cli/progress_bar.h"
#include "cli/task_table.h"
#include "cli/text_layout.h"
#include "common/time_proto.h"

namespace pghaul::cli {
namespace {

// Erases the status line: back to its start, clear to the end of the line.
constexpr absl::string_view kClearLine = "\r\x1b[K";

bool IsTransient(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status);
}

// The controller's NotFound for a migration, reworded to say what to run.
absl::Status UnknownMigration(const absl::Status& status, absl::string_view migration_id) {
  if (!absl::IsNotFound(status)) return status;
  return absl::NotFoundError(absl::StrCat("no migration '", Printable(migration_id),
                                          "' is known to the controller; `pghaul migrations` "
                                          "lists them"));
}

const v1::PhaseInfo* FindPhase(const v1::MigrationInfo& migration, absl::string_view name) {
  for (const v1::PhaseInfo& phase : migration.phases()) {
    if (phase.name() == name) return &phase;
  }
  return nullptr;
}

// The line on a terminal: the progress bar while there is progress, else what is going on.
std::string StatusText(const v1::MigrationInfo& migration, absl::Time now, absl::TimeZone zone,
                       int columns) {
  const std::string& phase = migration.phase();
  if (migration.state() == "running" && migration.has_progress()) {
    return RenderProgressLine(phase, migration.progress(), columns);
  }
  std::string text =
      absl::StrCat(Printable(migration.migration_id()), ": ", Printable(migration.state()));
  if (migration.state() == "scheduled" && migration.has_not_before()) {
    absl::Time start = FromProto(migration.not_before());
    absl::StrAppend(&text, ", starts ", LocalClockTime(start, now, zone), " (in ",
                    HumanDuration(start - now), ")");
  } else if (!phase.empty()) {
    absl::StrAppend(&text, " ", Printable(phase));
    const v1::PhaseInfo* info = FindPhase(migration, phase);
    if (info != nullptr && info->has_started_at() && !info->has_finished_at()) {
      absl::StrAppend(&text, ", ", HumanDuration(now - FromProto(info->started_at())), " so far");
    }
  }
  return text;
}

// Draws one line on the terminal, if there is one, and erases it before anything else is
// printed to the same screen.
class TerminalLine {
 public:
  explicit TerminalLine(const FollowEnvironment& env) : env_(env) {}
  ~TerminalLine() { Clear(); }

  void Show(absl::string_view text) {
    if (env_.terminal == nullptr) return;
    // Cut to the width: a wrapped line could not be erased by going back to its start.
    size_t width = static_cast<size_t>(std::max(env_.terminal_columns - 1, 10));
    *env_.terminal << kClearLine << Truncate(text, width) << std::flush;
    shown_ = true;
  }
  void Clear() {
    if (!shown_) return;
    *env_.terminal << kClearLine << std::flush;
    shown_ = false;
  }

 private:
  const FollowEnvironment& env_;
  bool shown_ = false;
};

// Prints the events of `migration` above `*after`, oldest first, and moves `*after` on.
absl::Status PrintNewEvents(const v1::MigrationInfo& migration, OutputFormat format,
                            const FollowEnvironment& env, TerminalLine& line, uint64_t* after) {
  std::vector<const v1::MigrationEvent*> events;
  for (const v1::MigrationEvent& event : migration.events()) {
    if (event.seq() > *after) events.push_back(&event);
  }
  std::sort(events.begin(), events.end(),
            [](const auto* a, const auto* b) { return a->seq() < b->seq(); });
  if (!events.empty()) line.Clear();
  for (const v1::MigrationEvent* event : events) {
    if (format == OutputFormat::kJson) {
      absl::StatusOr<std::string> json = MessageToJsonObject(*event);
      if (!json.ok()) return json.status();
      *env.out << "{\"event\":" << *json << "}\n";
    } else {
      *env.out << FormatEventLine(*event, env.zone);
    }
    *after = std::max(*after, event->seq());
  }
  if (!events.empty()) env.out->flush();
  // Events beyond those returned (more than asked for at once) are skipped, not asked again.
  *after = std::max(*after, migration.last_event_seq());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CommandOutput> FollowMigration(ControllerClient& client,
                                              const FollowRequest& request,
                                              const FollowEnvironment& env) {
  auto sleep = [&env](absl::Duration d) {
    if (env.sleep) {
      env.sleep(d);
    } else {
      absl::SleepFor(d);
    }
  };
  TerminalLine line(env);
  uint64_t after = request.events_after;
  uint32_t max_events = request.first_max_events;
  bool answered_once = false;
  absl::Status outage;  // the last poll's error while the controller does not answer
  absl::Time outage_since = absl::InfiniteFuture();
  absl::Time last_progress_line = absl::InfinitePast();
  v1::MigrationInfo migration;
  const absl::Time started = env.clock->Now();
  auto poll_interval = [&env, started] {
    return env.clock->Now() - started < kFollowEagerFor ? kFollowEagerPollInterval
                                                        : kFollowPollInterval;
  };
  while (true) {
    absl::StatusOr<v1::MigrationInfo> polled =
        client.GetMigration(request.migration_id, after, max_events);
    absl::Time now = env.clock->Now();
    if (!polled.ok()) {
      if (!IsTransient(polled.status()) || (!answered_once && !request.retry_first_poll)) {
        return UnknownMigration(polled.status(), request.migration_id);
      }
      if (outage.ok()) {
        outage_since = now;
        if (env.terminal == nullptr && env.err != nullptr) {
          *env.err << "pghaul: " << Printable(polled.status().message()) << "; retrying for up to "
                   << HumanDuration(kFollowOutageGrace) << "\n"
                   << std::flush;
        }
      }
      outage = polled.status();
      if (now - outage_since >= kFollowOutageGrace) {
        return absl::Status(
            outage.code(),
            absl::StrCat(outage.message(), "; gave up after ", HumanDuration(now - outage_since),
                         ". The migration goes on without this pghaul: `pghaul watch ",
                         Printable(request.migration_id), "` once the controller answers again"));
      }
      line.Show(absl::StrCat("the controller does not answer (", HumanDuration(now - outage_since),
                             "); retrying for up to ", HumanDuration(kFollowOutageGrace)));
      sleep(poll_interval());
      continue;
    }
    if (!outage.ok() && env.terminal == nullptr && env.err != nullptr) {
      *env.err << "pghaul: the controller answers again\n" << std::flush;
    }
    outage = absl::OkStatus();
    answered_once = true;
    max_events = kFollowMaxEvents;
    migration = *std::move(polled);
    absl::Status printed = PrintNewEvents(migration, request.format, env, line, &after);
    if (!printed.ok()) return printed;
    if (!MigrationIsActive(migration.state())) break;

    if (env.terminal != nullptr) {
      line.Show(StatusText(migration, now, env.zone, env.terminal_columns));
    } else if (request.format == OutputFormat::kTable && migration.state() == "running" &&
               migration.has_progress() && now - last_progress_line >= kFollowProgressInterval) {
      std::string summary = ProgressSummary(migration.progress());
      if (!summary.empty()) {
        v1::MigrationEvent progress_line;
        *progress_line.mutable_time() = ToProto(now);
        progress_line.set_phase(migration.phase());
        progress_line.set_text(absl::StrCat("progress ", summary));
        *env.out << FormatEventLine(progress_line, env.zone) << std::flush;
        last_progress_line = now;
      }
    }
    sleep(poll_interval());
  }
  line.Clear();
  return FollowOutcome(migration, request.goal, request.format);
}

absl::StatusOr<CommandOutput> FollowOutcome(const v1::MigrationInfo& migration, FollowGoal goal,
                                            OutputFormat format) {
  const std::string id = Printable(migration.migration_id());
  const std::string& state = migration.state();
  const std::string message = Printable(migration.message());
  auto with_message = [&message](std::string text) {
    if (!message.empty()) absl::StrAppend(&text, ": ", message);
    return text;
  };
  CommandOutput output;
  std::string closing;  // for people, on stdout
  if (goal == FollowGoal::kAbort) {
    if (state == "aborted") {
      closing = with_message(absl::StrCat("migration ", id, " aborted"));
    } else {
      output.exit_code = kExitTaskFailed;
      output.error =
          with_message(absl::StrCat("migration ", id, " is ", Printable(state), ", not aborted"));
    }
  } else if (state == "completed") {
    closing = with_message(absl::StrCat("migration ", id, " completed"));
  } else if (state == "failed") {
    output.exit_code = kExitTaskFailed;
    std::string where =
        migration.phase().empty() ? "" : absl::StrCat(" in phase ", Printable(migration.phase()));
    output.error = with_message(absl::StrCat("migration ", id, " failed", where));
  } else if (state == "aborted") {
    output.exit_code = kExitTaskFailed;
    output.error = with_message(absl::StrCat("migration ", id, " was aborted"));
  } else if (migration.goal().empty()) {
    // Nothing was ever started: there is nothing to have failed.
    closing =
        with_message(absl::StrCat("migration ", id, " is ", Printable(state), ", not running"));
  } else {
    const v1::PhaseInfo* phase = FindPhase(migration, migration.goal());
    if (phase != nullptr && phase->state() == "succeeded") {
      closing = with_message(
          absl::StrCat("migration ", id, ": ", Printable(migration.goal()), " succeeded"));
    } else {
      output.exit_code = kExitTaskFailed;
      output.error =
          with_message(absl::StrCat("migration ", id, " stopped (", Printable(state), ") before ",
                                    Printable(migration.goal()), " succeeded"));
    }
  }
  if (format == OutputFormat::kJson) {
    absl::StatusOr<std::string> json = MessageToJson(migration);
    if (!json.ok()) return json.status();
    output.out = *std::move(json);
  } else if (!closing.empty()) {
    output.out = absl::StrCat(closing, "\n");
  }
  return output;
}

}  // namespace pghaul::cli
