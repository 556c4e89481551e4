#include "cli/commands_tasks.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "cli/agent_table.h"
#include "cli/task_table.h"
#include "cli/text_layout.h"
#include "common/identifiers.h"
#include "common/status_macros.h"
#include "common/task_names.h"

namespace pghaul::cli {
namespace {

// Erases the status line: back to its start, clear to the end of the line.
constexpr absl::string_view kClearLine = "\r\x1b[K";

absl::Status CheckTaskId(absl::string_view task_id) {
  absl::Status valid = ValidateTaskId(task_id);
  if (valid.ok()) return valid;
  return absl::InvalidArgumentError(
      absl::StrCat("'", Printable(task_id), "' is not a task id: ", valid.message()));
}

absl::Status CheckAgentId(absl::string_view agent_id) {
  absl::Status valid = ValidateAgentId(agent_id);
  if (valid.ok()) return valid;
  return absl::InvalidArgumentError(absl::StrCat("'", Printable(agent_id),
                                                 "' is not an agent id: ", valid.message(),
                                                 "; `pghaul agents` lists the known ones"));
}

// The controller's NotFound for a task, reworded to say what to run.
absl::Status UnknownTask(const absl::Status& status, absl::string_view task_id) {
  if (!absl::IsNotFound(status)) return status;
  return absl::NotFoundError(absl::StrCat("no task '", Printable(task_id),
                                          "' is known to the controller; `pghaul task list` "
                                          "lists the recent ones"));
}

absl::StatusOr<std::string> FormatTask(const v1::TaskInfo& task, OutputFormat format,
                                       absl::Time now) {
  if (format == OutputFormat::kJson) return MessageToJson(task);
  return FormatTaskDetails(task, now);
}

bool IsTransient(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status);
}

// Draws the status line while waiting, when there is a terminal to draw it on.
class StatusLine {
 public:
  explicit StatusLine(const WaitEnvironment& env) : env_(env) {}
  ~StatusLine() { Clear(); }

  void Show(absl::string_view text) {
    if (env_.status_line == nullptr) return;
    // Cut to the width: a wrapped line could not be erased by going back to its start.
    size_t width = static_cast<size_t>(std::max(env_.status_columns - 1, 10));
    *env_.status_line << kClearLine << Truncate(text, width) << std::flush;
    shown_ = true;
  }
  void Clear() {
    if (!shown_) return;
    *env_.status_line << kClearLine << std::flush;
    shown_ = false;
  }

 private:
  const WaitEnvironment& env_;
  bool shown_ = false;
};

// Polls the task until it has a result or `deadline` passes; returns the last TaskInfo seen.
// Transient failures (the controller restarting) are retried for kPollFailureGrace.
absl::StatusOr<v1::TaskInfo> WaitForTask(ControllerClient& client, v1::TaskInfo task,
                                         absl::Time deadline, const WaitEnvironment& env) {
  const std::string task_id = task.task_id();
  StatusLine status_line(env);
  absl::Duration interval = kMinPollInterval;
  absl::Status poll_error;  // of the last poll; OK once one succeeds again
  absl::Time failing_since = absl::InfiniteFuture();
  while (!task.has_result()) {
    absl::Time now = env.clock->Now();
    if (poll_error.ok()) {
      status_line.Show(FormatTaskStatusLine(task, now));
    } else {
      status_line.Show(absl::StrCat("task ", task_id, ": the controller does not answer (",
                                    HumanDuration(now - failing_since), "); retrying"));
    }
    if (now >= deadline) break;
    env.sleep(std::min(interval, deadline - now));
    interval = std::min(interval + absl::Milliseconds(100), kMaxPollInterval);
    absl::Duration remaining = deadline - env.clock->Now();
    if (remaining <= absl::ZeroDuration()) break;
    client.set_timeout(std::min(kDefaultCallTimeout, remaining));
    absl::StatusOr<v1::TaskInfo> polled = client.GetTask(task_id, kDefaultRecentEvents);
    if (polled.ok()) {
      task = *std::move(polled);
      poll_error = absl::OkStatus();
      failing_since = absl::InfiniteFuture();
      continue;
    }
    if (!IsTransient(polled.status())) return UnknownTask(polled.status(), task_id);
    poll_error = polled.status();
    failing_since = std::min(failing_since, now);
    if (env.clock->Now() - failing_since >= kPollFailureGrace) break;
  }
  if (!poll_error.ok()) {
    return absl::Status(poll_error.code(),
                        absl::StrCat(poll_error.message(), "; task ", task_id,
                                     " goes on without this pghaul: `pghaul task show ", task_id,
                                     "` once the controller answers again"));
  }
  return task;
}

}  // namespace

absl::StatusOr<std::string> RunListTasks(ControllerClient& client, absl::string_view agent_id,
                                         uint32_t limit, OutputFormat format, absl::Time now) {
  if (!agent_id.empty()) PGH_RETURN_IF_ERROR(CheckAgentId(agent_id));
  PGH_ASSIGN_OR_RETURN(v1::ListTasksResponse response, client.ListTasks(agent_id, limit));
  if (format == OutputFormat::kJson) return MessageToJson(response);
  if (response.tasks().empty()) {
    if (agent_id.empty()) return std::string("No tasks: the controller has not run any.\n");
    return absl::StrCat("No tasks for agent '", agent_id,
                        "'. (`pghaul agents` lists the agent ids.)\n");
  }
  return FormatTaskTable(response.tasks(), now, /*show_agent=*/agent_id.empty());
}

absl::StatusOr<std::string> RunShowTask(ControllerClient& client, absl::string_view task_id,
                                        uint32_t recent_events, OutputFormat format,
                                        absl::Time now) {
  PGH_RETURN_IF_ERROR(CheckTaskId(task_id));
  absl::StatusOr<v1::TaskInfo> task = client.GetTask(task_id, recent_events);
  if (!task.ok()) return UnknownTask(task.status(), task_id);
  return FormatTask(*task, format, now);
}

absl::StatusOr<std::string> RunCancelTask(ControllerClient& client, absl::string_view task_id,
                                          OutputFormat format, absl::Time now) {
  PGH_RETURN_IF_ERROR(CheckTaskId(task_id));
  absl::StatusOr<v1::TaskInfo> task = client.CancelTask(task_id);
  if (!task.ok()) return UnknownTask(task.status(), task_id);
  if (format == OutputFormat::kJson) return MessageToJson(*task);
  if (task->has_result()) {
    return absl::StrCat("Task ", Printable(task_id), " had already finished (", task->state(),
                        "); nothing to cancel.\n");
  }
  return absl::StrCat("Asked agent ", Printable(task->agent_id()), " to cancel task ",
                      Printable(task_id), " (", Printable(task->op()),
                      "). It ends as cancelled once the agent has stopped it; `pghaul task show ",
                      Printable(task_id), "` tells.\n");
}

absl::StatusOr<CommandOutput> RunSubmitTask(ControllerClient& client, const TaskSubmission& request,
                                            OutputFormat format, const WaitEnvironment& env) {
  PGH_RETURN_IF_ERROR(CheckAgentId(request.agent_id));
  v1::Task task = request.task;
  if (!request.task_id.empty()) {
    if (!task.task_id().empty() && task.task_id() != request.task_id) {
      return absl::InvalidArgumentError(
          absl::StrCat("--id ", Printable(request.task_id), " contradicts the task's own task_id '",
                       Printable(task.task_id()), "'; give the id once"));
    }
    task.set_task_id(request.task_id);
  }
  // An id made here rather than by the controller lets a submission whose answer was lost be
  // looked up, and retried without running twice.
  if (task.task_id().empty()) task.set_task_id(RandomHexId());
  PGH_RETURN_IF_ERROR(CheckTaskId(task.task_id()));

  const absl::Time deadline = env.clock->Now() + request.wait_timeout;
  if (request.wait) client.set_timeout(std::min(kDefaultCallTimeout, request.wait_timeout));
  absl::StatusOr<v1::TaskInfo> submitted = client.SubmitTask(request.agent_id, task);
  if (absl::IsNotFound(submitted.status())) {
    return absl::NotFoundError(absl::StrCat("no agent '", Printable(request.agent_id),
                                            "' is registered; `pghaul agents` lists the known "
                                            "ones"));
  }
  if (!submitted.ok()) return submitted.status();
  if (!request.wait) {
    PGH_ASSIGN_OR_RETURN(std::string out, FormatTask(*submitted, format, env.clock->Now()));
    return CommandOutput::Success(std::move(out));
  }

  PGH_ASSIGN_OR_RETURN(v1::TaskInfo final_task,
                       WaitForTask(client, *std::move(submitted), deadline, env));
  absl::Time now = env.clock->Now();
  CommandOutput output;
  PGH_ASSIGN_OR_RETURN(output.out, FormatTask(final_task, format, now));
  if (!final_task.has_result()) {
    output.exit_code = kExitTempFail;
    output.error = absl::StrCat(
        DescribeTaskEnd(final_task), " after ", HumanDuration(request.wait_timeout),
        " (the --timeout of --wait); it goes on: `pghaul task show ", final_task.task_id(),
        "` follows it, `pghaul task cancel ", final_task.task_id(), "` stops it");
  } else if (!TaskSucceeded(final_task)) {
    output.exit_code = kExitTaskFailed;
    output.error = DescribeTaskEnd(final_task);
  }
  return output;
}

}  // namespace pghaul::cli
